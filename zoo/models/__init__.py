"""Built-in models; importing this package registers every one of them."""

from zoo.models.base import ZooModel
from zoo.models import eight_schools, linear_regression, posteriordb_models  # noqa: F401
from zoo.models import ppca, vae  # noqa: F401  (helper E: vae, dlgm2, ppca)
from zoo.models import bnn  # noqa: F401  (helper F: bnn, bnn_classifier, lenet300100, lenet5)

__all__ = ["ZooModel"]
