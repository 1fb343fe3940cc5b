"""The contract every zoo model follows: a Pyro model, an optional guide, and its data binding.

A zoo model knows nothing about inference. Drivers in :mod:`inference` receive only
``model.model`` (a plain Pyro callable), optionally ``model.guide``, and keyword arguments built
by :meth:`ZooModel.model_kwargs`.

Usage::

    import zoo
    from zoo.data import load
    m = zoo.get("eight_schools-eight_schools_noncentered")
    kwargs = m.model_kwargs(load(m.default_data))
    m.model(**kwargs)            # one prior/likelihood draw under Pyro's default handlers

Conventions for model authors:

* Observations are keyword arguments that default to ``None``; with ``None`` the model samples
  them (prior / posterior predictive). ``observed_names`` lists those keywords.
* Data sites live inside ``pyro.plate`` with ``dim=-1`` so pointwise log-likelihoods can be read
  off the trace; models accept an optional ``subsample_size`` keyword when they support
  mini-batches (the plate then subsamples and Pyro rescales the likelihood).
* Models are written to broadcast over extra leading batch dimensions of their latent variables
  so draws can be evaluated in a vectorised way. A global vector arrives as ``(D,)``, as
  ``(S, D)`` (vectorised log-likelihood, ``Predictive(parallel=True)``) or as ``(S, 1, D)``
  (vectorised ELBO particles); :func:`zoo.models.posteriordb_base.align_global` brings all
  three to a form that broadcasts against the data plate.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable, ClassVar, Mapping

from zoo.data.dataset import Dataset

if TYPE_CHECKING:  # the model never calls a driver; it may read a finished result
    from inference.result import InferenceResult


class ZooModel:
    """Base class of registered models: subclasses define ``model`` and ``model_kwargs``."""

    #: registry name, set by :func:`zoo.registry.register`
    name: ClassVar[str] = ""
    #: keywords of ``model`` that carry observations (set to ``None`` to simulate them)
    observed_names: ClassVar[tuple[str, ...]] = ("y",)
    #: observation keywords that may hold NaN to mark missing values; the model leaves those
    #: entries out of its likelihood (every other NaN input is refused before inference)
    missing_value_names: ClassVar[tuple[str, ...]] = ()
    #: the model's own guide, or ``None`` when an autoguide should be used
    guide: Callable[..., Any] | None = None

    def model(self, *args: Any, **kwargs: Any) -> Any:
        """The Pyro model."""
        raise NotImplementedError

    def model_kwargs(self, dataset: Dataset, split: str = "train") -> dict[str, Any]:
        """Keyword arguments of :meth:`model` built from one split of a data set."""
        raise NotImplementedError

    def predictive_kwargs(self, dataset: Dataset, split: str = "test") -> dict[str, Any]:
        """Like :meth:`model_kwargs` but with the observations removed, for prediction."""
        kwargs = self.model_kwargs(dataset, split)
        for name in self.observed_names:
            if name in kwargs:
                kwargs[name] = None
        return kwargs

    def reference_posterior(self, dataset: Dataset) -> Mapping[str, Any] | None:
        """Known posterior draws or moments for checking inference, when the model has them."""
        return None

    def driver_defaults(self, family: str) -> dict[str, Any]:
        """Method settings this model needs, for methods of ``family`` (``"mcmc"``, ``"vi"``),
        unless the caller sets them (merged under theirs; keys a method does not take are
        dropped).

        Amortised models with one local latent per data point return
        ``{"num_posterior_draws": 0, "log_likelihood": False}``: draws of every local latent do
        not fit in memory on large data, and their held-out figures come from :meth:`evaluate`.
        """
        return {}

    def data_driver_defaults(self, family: str, dataset: Dataset,
                             settings: Mapping[str, Any]) -> dict[str, Any]:
        """Method settings that depend on the loaded data, merged over :meth:`driver_defaults`
        and under the caller's settings (keys a method does not take are dropped).

        ``settings`` are the method's values so far (defaults and the caller's). A model that
        early-stops on a validation split cut from its training data returns
        ``{"validation_kwargs": ..., "patience": ..., "eval_every": ...}`` here, since the
        split exists only once the data are loaded. Default: none.
        """
        return {}

    def network_view(self, model_kwargs: Mapping[str, Any]) -> Any | None:
        """The model's network as a stack of linear layers (an
        :class:`inference.kfac.NetworkView`) for the inputs in ``model_kwargs``, or ``None``.

        Curvature methods that need layer structure (``kfac_laplace``) use it; a model that
        offers it for some configurations registers the trait ``layered_network`` and returns
        ``None`` for the others (a BNN with a non-Gaussian prior). Default: ``None``.
        """
        return None

    def guide_defaults(self, guide: str | None) -> dict[str, Any]:
        """Method settings the guide named ``guide`` needs (``None``: the model's default
        guide), merged over :meth:`driver_defaults` and under the caller's; default none.

        E.g. a guide in log space needs a smaller step size than one in softplus space.
        """
        return {}

    def guides(self) -> Mapping[str, Callable[..., Any]]:
        """Model-specific guides by name (``--guide NAME`` on the CLI).

        Autoguides (``auto_normal`` ...) are named by the SVI driver and need no entry here.
        A model's own guides implement :class:`inference.guide_protocol.ZooGuide` and are listed
        under their ``kind`` (the configured one also under ``"model"``), so that callers read
        ``guide.kind``, ``guide.median(**kwargs)`` and ``guide.report()`` instead of probing.
        """
        return {"model": self.guide} if self.guide is not None else {}

    # ------------------------------------------------------------- what evaluation needs
    def evaluation_kwargs(self, dataset: Dataset, split: str = "test") -> dict[str, Any]:
        """Keyword arguments of :meth:`model` for held-out evaluation (observations included).

        Default: :meth:`model_kwargs`; a model whose training data are randomised (dynamic
        binarisation) fixes them here so that every evaluation sees the same data.
        """
        return self.model_kwargs(dataset, split)

    def heldout_extras(self, kwargs: Mapping[str, Any]) -> dict[str, float]:
        """Held-out figures of the model's own deterministic parts (a CVAE's baseline network's
        masked cross-entropy) on evaluation keywords ``kwargs``, added to the metrics by
        :func:`zoo.evaluation.evaluate_fit`; default none. Names must be in
        :data:`inference.evaluation.metrics.METRICS`."""
        return {}

    def shifted_inputs(self, kwargs: Mapping[str, Any]) -> dict[str, dict[str, Any]]:
        """Out-of-distribution versions of held-out keywords ``kwargs``, by name (a
        classifier's images with noise, inverted, rotated), on which
        :func:`zoo.evaluation.evaluate_fit` reports the mean predictive entropy and its AUROC
        against the test inputs (``ood_entropy_<name>``, ``ood_auroc_<name>``); default none.

        Usage: ``model.shifted_inputs({"x": x, "y": y})["noise"]["x"]``.
        """
        return {}

    def evaluation_defaults(self) -> dict[str, Any]:
        """Evaluation settings this model asks for (keys of
        :class:`inference.evaluation.EvalSettings`), under the caller's; default none."""
        return {}

    def exact_log_likelihood_of(self, kwargs: Mapping[str, Any]) -> Any | None:
        """Exact per-point ``log p(x_i)`` of held-out data where the model has a closed form
        (PPCA), else ``None``; reported beside the importance-sampled estimate."""
        return None

    def evaluate(
        self, dataset: Dataset, result: "InferenceResult | None" = None, split: str = "test",
        settings: Mapping[str, Any] | None = None,
    ) -> dict[str, float]:
        """Held-out metrics of a fit: :func:`zoo.evaluation.evaluate_fit` (a convenience).

        The metrics are chosen by what the model is (local latents: importance-sampled
        ``test_ll`` with its k-hat; otherwise predictive metrics from posterior draws), not
        by the model's own code.
        """
        from zoo.evaluation import evaluate_fit

        return evaluate_fit(self, dataset, result, split, settings)

    def plot(self, dataset: Dataset, result: "InferenceResult", out_dir: Path) -> list[Path]:
        """Model-specific figures written under ``out_dir`` (e.g. VAE samples); default none."""
        return []
