"""Figures for zoo models (matplotlib, Agg backend): one module per model family.

Usage::

    from zoo.viz.vae import vae_figures
    paths = vae_figures(vae, dataset, Path("runs/vae/figures"))
"""
