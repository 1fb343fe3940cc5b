"""Vectorised chains: C chains advanced as one batch, ``chain_method="vectorized"``.

One concern per module:

* :mod:`~inference.mcmc.vectorized.potential`: the potential energy and gradient of all chains
  from one evaluation, the Pyro model traced once under an outer chain plate;
* :mod:`~inference.mcmc.vectorized.integrator`: leapfrog, kinetic energy, U-turn test;
* :mod:`~inference.mcmc.vectorized.adaptation`: per-chain dual averaging, Stan's windows,
  Welford variances (per chain or pooled);
* :mod:`~inference.mcmc.vectorized.base`: the batched kernel contract and shared set-up;
* :mod:`~inference.mcmc.vectorized.nuts`, :mod:`~inference.mcmc.vectorized.hmc`,
  :mod:`~inference.mcmc.vectorized.chees`, :mod:`~inference.mcmc.vectorized.meads`: the kernels
  (iterative NUTS in lockstep, HMC with fixed or jittered steps, ChEES-HMC, MEADS: generalised
  HMC tuned across folds of chains);
* :mod:`~inference.mcmc.vectorized.runner`: the chain runner registered in
  :data:`inference.mcmc.chains.CHAIN_RUNNERS`.

``jit_compile=True`` hands each kernel's inner step (a NUTS leaf, a leapfrog step) with the
potential inlined to ``torch.compile``: the first run of a model pays the compilation, later
runs in the same process or with torch's on-disk cache are much cheaper.

Usage::

    from inference.mcmc import run_mcmc
    result = run_mcmc(model, {"y": y}, kernel="nuts", chain_method="vectorized",
                      num_chains=32, jit_compile=True)
    result = run_mcmc(model, {"y": y}, kernel="chees", num_chains=32)
    result = run_mcmc(model, {"y": y}, kernel="meads", num_chains=32, num_warmup=1000)
"""
