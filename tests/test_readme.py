"""The README's Python examples run exactly as written (examples must not rot).

Each block runs in a fresh interpreter, as a user would paste it, so a block that registers a
model does not leak into the rest of the test session.
"""

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

README = Path(__file__).resolve().parents[1] / "README.md"
BLOCKS = re.findall(r"```python\n(.*?)```", README.read_text(), flags=re.S)


def test_readme_has_python_examples():
    assert len(BLOCKS) >= 3


@pytest.mark.parametrize("index", range(len(BLOCKS)))
def test_readme_example_runs_as_written(index, tmp_path):
    done = subprocess.run([sys.executable, "-c", BLOCKS[index]], capture_output=True, text=True,
                          cwd=tmp_path, timeout=600, env={**os.environ, "OMP_NUM_THREADS": "1"})
    assert done.returncode == 0, done.stderr[-3000:]
    assert done.stdout.strip(), "each README example prints what it shows"
