"""Standard figures of an inference run, written to files: trace, rank, pair and ELBO curve.

The first three are ArviZ's plots (``az.plot_trace``, ``az.plot_rank``, ``az.plot_pair``) of the
result's InferenceData; the ELBO curve is the SVI loss history. Matplotlib's non-interactive
Agg backend is used so this works on machines without a display.

Usage::

    from inference.plots import save_standard_plots
    paths = save_standard_plots(result, "runs/eight_schools/plots")
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any, Sequence

import numpy as np

if TYPE_CHECKING:
    from inference.result import InferenceResult

__all__ = ["plot_trace", "plot_rank", "plot_pair", "plot_elbo", "save_standard_plots"]

#: variables with more elements than this are left out of the default trace/rank/pair plots
_MAX_ELEMENTS = 16


def _pyplot() -> Any:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def _default_vars(result: "InferenceResult", limit: int = _MAX_ELEMENTS) -> list[str]:
    """Posterior variables small enough to plot (global parameters, not local latents)."""
    chosen = [name for name, arr in result.posterior.items()
              if int(np.prod(arr.shape[2:], dtype=int)) <= limit]
    return sorted(chosen)


def _save(fig_or_axes: Any, path: Path) -> Path:
    plt = _pyplot()
    axes = np.ravel(np.asarray(fig_or_axes, dtype=object))
    fig = axes[0].get_figure() if hasattr(axes[0], "get_figure") else plt.gcf()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=90, bbox_inches="tight")
    plt.close(fig)
    return path


def plot_trace(result: "InferenceResult", path: str | Path,
               var_names: Sequence[str] | None = None) -> Path:
    """``az.plot_trace`` (densities and traces per chain) saved to ``path``."""
    import arviz as az

    axes = az.plot_trace(result.to_inference_data(), var_names=list(var_names or
                         _default_vars(result)), compact=True)
    np.ravel(axes)[0].get_figure().tight_layout()  # keep row titles clear of the tick labels
    return _save(axes, Path(path))


def plot_rank(result: "InferenceResult", path: str | Path,
              var_names: Sequence[str] | None = None) -> Path:
    """``az.plot_rank`` (rank histograms per chain, uniform when chains agree) saved."""
    import arviz as az

    axes = az.plot_rank(result.to_inference_data(), var_names=list(var_names or
                        _default_vars(result)))
    return _save(axes, Path(path))


def plot_pair(result: "InferenceResult", path: str | Path,
              var_names: Sequence[str] | None = None) -> Path:
    """``az.plot_pair`` (pairwise scatter, divergences marked when recorded) saved."""
    import arviz as az

    idata = result.to_inference_data()
    names = list(var_names or _default_vars(result, limit=6))
    divergences = "diverging" in (result.sample_stats or {})
    axes = az.plot_pair(idata, var_names=names, divergences=divergences, kind="scatter")
    return _save(axes, Path(path))


def plot_elbo(result: "InferenceResult", path: str | Path) -> Path:
    """The SVI loss (negative ELBO) per step, on a symmetric-log scale, saved to ``path``."""
    if result.loss_history is None or len(result.loss_history) == 0:
        raise ValueError("the result has no loss_history (only SVI results have an ELBO curve)")
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(6, 3.5))
    losses = np.asarray(result.loss_history, dtype=float)
    ax.plot(np.arange(1, len(losses) + 1), losses, lw=0.8)
    ax.set_xlabel("step")
    ax.set_ylabel("loss (-ELBO)")
    ax.set_yscale("symlog")
    ax.set_title(f"{result.method}: loss history")
    return _save(ax, Path(path))


def save_standard_plots(result: "InferenceResult", out_dir: str | Path) -> list[Path]:
    """Trace and rank plots (MCMC, several chains), pair plot, and ELBO curve (SVI) in ``out_dir``.

    Returns the written paths. Plots that do not apply (rank plots of one chain, an ELBO curve
    without a loss history, a pair plot of a single scalar) are skipped.
    """
    out = Path(out_dir)
    paths = []
    names = _default_vars(result)
    if names:
        paths.append(plot_trace(result, out / "trace.png", names))
        if result.num_chains > 1:
            paths.append(plot_rank(result, out / "rank.png", names))
        pair_names = _default_vars(result, limit=6)
        elements = sum(int(np.prod(result.posterior[n].shape[2:], dtype=int)) for n in pair_names)
        if elements >= 2:
            paths.append(plot_pair(result, out / "pair.png", pair_names))
    if result.loss_history is not None and len(result.loss_history) > 0:
        paths.append(plot_elbo(result, out / "elbo.png"))
    return paths
