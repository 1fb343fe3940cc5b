# Two commands do all set-up: `make demo` and `make test`.
# TORCH_SPEC chooses the torch build (default: the CPU wheel); e.g. a GPU user runs
#   make test TORCH_SPEC="torch==2.13.0 --index-url https://download.pytorch.org/whl/cu128"
PYTHON ?= python3
VENV ?= .venv
TORCH_SPEC ?= torch==2.13.0
BIN := $(VENV)/bin
STAMP := $(VENV)/.ppl-zoo-installed
export OMP_NUM_THREADS ?= 1

.PHONY: setup test demo clean

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	$(BIN)/python -m pip install -q $(TORCH_SPEC)
	$(BIN)/python -m pip install -q -e ".[test]"
	touch $(STAMP)

setup: $(STAMP)

# the test files run on two worker processes, each file on one (module fixtures run once)
test: setup
	$(BIN)/python -m pytest -q -n 2 --dist loadfile tests

demo: setup
	$(BIN)/zoo bench quick --out runs/quick --jobs 2 --report

clean:
	rm -rf $(VENV) runs .pytest_cache
