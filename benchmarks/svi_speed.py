"""Milliseconds per SVI step: a hand-written PyTorch loop, Pyro's SVI loop and the zoo's
``fit_svi`` (plain and with the compiled ELBO), on the same VAE, each in a fresh process.

The model is the zoo's ``vae`` (one stochastic layer, tanh MLPs, Bernoulli likelihood with
dynamic binarisation, the diagonal-Gaussian encoder) on two cases:

* ``digits``: sklearn's 8x8 digits (1438 training images), 64-200-200-10, batch 128;
* ``mnist``: MNIST (60000 training images from ``shared/data`` via ``zoo.data``),
  784-400-400-50, batch 128.

Every variant computes the same one-particle ``Trace_ELBO`` estimator on a random mini-batch
(indices from a random permutation, a fresh binarisation, one reparameterised draw, the
mini-batch terms scaled by N / batch) with Adam at the same learning rate from the same
initial weights:

* ``hand``: the encoder and decoder modules of the same VAE stepped by a plain loop (one
  ``torch.optim.Adam`` over all weights, ``loss.item()`` recorded every step);
* ``pyro``: ``pyro.infer.SVI(model, guide, pyro.optim.Adam, Trace_ELBO()).step``;
* ``zoo``: ``inference.svi.fit_svi`` with its defaults (divergence check, best-state keeper,
  Ctrl-C handler, progress bar; no posterior draws);
* ``zoo_compiled``: the same with ``compile_elbo=True`` (compilation happens before the
  first step and is reported apart, as ``compile_s``).

A step's time is the wall time of the steps after ``--warmup`` warm-up steps, over their
number (and the process CPU time over the same steps, fairer on a shared machine). Runs are
interleaved (every variant once, then again), one torch thread each, and the
table holds medians over ``--repeats``, with ours/hand-written; ``final loss`` (the mean
training loss of the last 100 steps, nats for the whole training set) shows that every
variant reaches a similar ELBO.

Usage::

    python -m benchmarks.svi_speed                                  # 3 repeats, both cases
    python -m benchmarks.svi_speed --cases digits --repeats 1 --steps 300
    python -m benchmarks.svi_speed --out runs/svi_speed.json
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

#: case -> data set, hidden widths, latent size
CASES: dict[str, dict[str, Any]] = {
    "digits": {"data": "digits", "hidden": (200, 200), "latent": 10},
    "mnist": {"data": "mnist", "hidden": (400, 400), "latent": 50},
}
VARIANTS = ("hand", "pyro", "zoo", "zoo_compiled")
LABELS = {"hand": "hand-written PyTorch", "pyro": "Pyro SVI.step", "zoo": "zoo fit_svi",
          "zoo_compiled": "zoo fit_svi, compile_elbo"}
BATCH = 128
LR = 1e-3
#: the final loss is the mean of this many last steps
TAIL = 100


# ---------------------------------------------------------------------------- worker side
def _now() -> tuple[float, float]:
    """Wall and process CPU time (the CPU figure is fairer on a shared machine)."""
    return time.perf_counter(), time.process_time()


def _since(start: tuple[float, float]) -> tuple[float, float]:
    wall, cpu = _now()
    return wall - start[0], cpu - start[1]


def _setup(case: str) -> tuple[Any, dict[str, Any]]:
    import zoo
    from zoo.data import load

    spec = CASES[case]
    vae = zoo.get("vae", latent_dim=spec["latent"], hidden=spec["hidden"])
    return vae, vae.model_kwargs(load(spec["data"]))


def _hand_loop(vae: Any, x: Any, warmup: int, steps: int
               ) -> tuple[tuple[float, float], list[float]]:
    """The estimator written out in PyTorch with the VAE's own modules."""
    import torch
    import torch.nn.functional as F

    enc, head = vae.enc_nets[0], vae.enc_heads[0]
    modules = [enc, head, vae.dec_net, vae.dec_out]
    params = [p for m in modules for p in m.parameters()]
    opt = torch.optim.Adam(params, lr=LR)
    n = len(x)
    scale = n / BATCH
    log_2pi = float(torch.log(torch.tensor(2 * torch.pi)))
    losses: list[float] = []
    t_start = (0.0, 0.0)
    for step in range(warmup + steps):
        if step == warmup:
            t_start = _now()
        idx = torch.randperm(n)[:BATCH]
        xb = torch.bernoulli(x[idx])
        loc, sd = head(enc(xb))
        eps = torch.randn_like(loc)
        z = loc + sd * eps
        logits = vae.dec_out(vae.dec_net(z))
        log_px = -F.binary_cross_entropy_with_logits(logits, xb, reduction="none").sum(-1)
        log_pz = -0.5 * (z * z + log_2pi).sum(-1)
        log_qz = -0.5 * (eps * eps + log_2pi).sum(-1) - sd.log().sum(-1)
        loss = -scale * (log_px + log_pz - log_qz).sum()
        opt.zero_grad()
        loss.backward()
        opt.step()
        losses.append(loss.item())
    return _since(t_start), losses


def _pyro_loop(vae: Any, kwargs: dict[str, Any], warmup: int, steps: int
               ) -> tuple[tuple[float, float], list[float]]:
    import pyro
    from pyro.infer import SVI, Trace_ELBO

    svi = SVI(vae.model, vae.guide, pyro.optim.Adam({"lr": LR}), Trace_ELBO())
    losses: list[float] = []
    t_start = (0.0, 0.0)
    for step in range(warmup + steps):
        if step == warmup:
            t_start = _now()
        losses.append(svi.step(subsample_size=BATCH, **kwargs))
    return _since(t_start), losses


def _zoo_fit(vae: Any, kwargs: dict[str, Any], warmup: int, steps: int, compiled: bool
             ) -> tuple[tuple[float, float], list[float], dict[str, Any]]:
    from inference.svi import fit_svi
    from inference.svi.callbacks import Callback

    class Clock(Callback):
        """The time at the end of the warm-up and at the end of the run."""

        def __init__(self) -> None:
            self.start = (0.0, 0.0)
            self.elapsed = (0.0, 0.0)

        def on_step_end(self, engine: Any, loss: float) -> None:
            if engine.step_count == warmup:
                self.start = _now()

        def on_run_end(self, engine: Any) -> None:
            self.elapsed = _since(self.start)

    clock = Clock()
    t0 = time.perf_counter()
    result = fit_svi(vae.model, kwargs, guide=vae.guide, num_steps=warmup + steps, lr=LR,
                     batch_size=BATCH, num_posterior_draws=0, log_likelihood=False,
                     compile_elbo=compiled, callbacks=[clock])
    total = time.perf_counter() - t0
    info = {"elbo_path": result.settings["elbo_path"],
            "compile_error": result.settings["compile_error"],
            # set-up before the first step: site probe, guide init and (if asked) compilation
            "setup_s": total - result.timings["training"] - result.timings["posterior_draws"]
            - result.timings["log_likelihood"]}
    return clock.elapsed, list(result.loss_history), info


def worker(variant: str, case: str, warmup: int, steps: int, seed: int) -> dict[str, Any]:
    """One variant on one case in this process; returns its figures as a dict."""
    import pyro
    import torch

    torch.set_num_threads(1)
    vae, kwargs = _setup(case)
    pyro.clear_param_store()
    pyro.set_rng_seed(seed)
    info: dict[str, Any] = {}
    if variant == "hand":
        seconds, losses = _hand_loop(vae, kwargs["x"], warmup, steps)
    elif variant == "pyro":
        seconds, losses = _pyro_loop(vae, kwargs, warmup, steps)
    elif variant in ("zoo", "zoo_compiled"):
        seconds, losses, info = _zoo_fit(vae, kwargs, warmup, steps, variant == "zoo_compiled")
    else:
        raise ValueError(f"unknown variant {variant!r}; choose one of {VARIANTS}")
    tail = losses[-TAIL:]
    return {"variant": variant, "case": case, "ms_per_step": 1e3 * seconds[0] / steps,
            "cpu_ms_per_step": 1e3 * seconds[1] / steps,
            "final_loss": sum(tail) / len(tail), "steps": steps, "warmup": warmup, **info}


# ---------------------------------------------------------------------------- driver side
def _run_worker(variant: str, case: str, args: argparse.Namespace) -> dict[str, Any]:
    root = Path(__file__).resolve().parent.parent
    env = {**os.environ, "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1",
           "PYTHONPATH": os.pathsep.join(filter(None, [str(root),
                                                        os.environ.get("PYTHONPATH")]))}
    cmd = [sys.executable, "-m", "benchmarks.svi_speed", "--worker", variant, "--cases", case,
           "--warmup", str(args.warmup), "--steps", str(args.steps), "--seed", str(args.seed)]
    proc = subprocess.run(cmd, cwd=root, env=env, capture_output=True, text=True)
    if proc.returncode != 0:
        raise RuntimeError(f"{variant} on {case} failed:\n{proc.stderr[-3000:]}")
    return json.loads(proc.stdout.strip().splitlines()[-1])


def table(rows: list[dict[str, Any]]) -> str:
    """The median table (markdown) of worker results, with ours/hand-written."""
    lines = ["| case | variant | ms per step | / hand-written | CPU ms per step | / hand-written "
             "| final loss | set-up s | runs |", "|---|---|---|---|---|---|---|---|---|"]
    for case in CASES:
        by = {v: [r for r in rows if r["case"] == case and r["variant"] == v] for v in VARIANTS}
        if not any(by.values()):
            continue
        hand = statistics.median(r["ms_per_step"] for r in by["hand"]) if by["hand"] else None
        hand_cpu = (statistics.median(r["cpu_ms_per_step"] for r in by["hand"])
                    if by["hand"] else None)
        for variant in VARIANTS:
            runs = by[variant]
            if not runs:
                continue
            ms = statistics.median(r["ms_per_step"] for r in runs)
            cpu = statistics.median(r["cpu_ms_per_step"] for r in runs)
            loss = statistics.median(r["final_loss"] for r in runs)
            setup = [r["setup_s"] for r in runs if "setup_s" in r]
            paths = {r.get("elbo_path") for r in runs} - {None}
            label = LABELS[variant] + (f" ({'/'.join(sorted(paths))} ELBO)"
                                       if variant == "zoo_compiled" else "")
            ratio = f"{ms / hand:.2f}" if hand else ""
            cpu_ratio = f"{cpu / hand_cpu:.2f}" if hand_cpu else ""
            setup_s = f"{statistics.median(setup):.1f}" if setup else ""
            lines.append(f"| {case} | {label} | {ms:.2f} | {ratio} | {cpu:.2f} | {cpu_ratio} | "
                         f"{loss:.1f} | {setup_s} | {len(runs)} |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cases", default=",".join(CASES), help="comma-separated cases")
    parser.add_argument("--variants", default=",".join(VARIANTS))
    parser.add_argument("--warmup", type=int, default=50, help="untimed steps first")
    parser.add_argument("--steps", type=int, default=500, help="timed steps")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", default=None, help="also write the raw results (JSON)")
    parser.add_argument("--worker", default=None, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    cases = [c for c in args.cases.split(",") if c]
    unknown = sorted(set(cases) - set(CASES))
    if unknown:
        parser.error(f"unknown case(s) {unknown}; choose from {sorted(CASES)}")
    if args.worker is not None:
        print(json.dumps(worker(args.worker, cases[0], args.warmup, args.steps, args.seed)))
        return 0
    variants = [v for v in args.variants.split(",") if v]
    rows: list[dict[str, Any]] = []
    for repeat in range(args.repeats):
        for case in cases:
            for variant in variants:
                row = _run_worker(variant, case, args)
                row["repeat"] = repeat
                rows.append(row)
                print(f"[{repeat + 1}/{args.repeats}] {case:6s} {variant:12s} "
                      f"{row['ms_per_step']:8.2f} ms/step {row['cpu_ms_per_step']:8.2f} CPU "
                      f"ms/step  final loss {row['final_loss']:.1f}",
                      file=sys.stderr, flush=True)
    print(table(rows))
    for row in rows:
        if row.get("compile_error"):
            print(f"note: {row['case']}: not compiled: {row['compile_error']}")
            break
    if args.out:
        Path(args.out).parent.mkdir(parents=True, exist_ok=True)
        Path(args.out).write_text(json.dumps(rows, indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
