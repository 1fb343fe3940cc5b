"""Built-in models; importing this package registers every one of them."""

from zoo.models.base import ZooModel

__all__ = ["ZooModel"]
