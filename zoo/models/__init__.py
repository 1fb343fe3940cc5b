"""Built-in models; importing this package registers every one of them."""

from zoo.models.base import ZooModel
# reference models: eight schools, conjugate regression, posteriordb ports
from zoo.models import eight_schools, linear_regression, posteriordb_models  # noqa: F401
# deep latent Gaussian models: vae, dlgm2, ppca
from zoo.models import ppca, vae  # noqa: F401
# Bayesian neural nets: bnn, bnn_classifier, lenet300100, lenet5
from zoo.models import bnn  # noqa: F401

__all__ = ["ZooModel"]
