"""torch.utils's spelling: `tinygrad_mnist.utils.data` holds Dataset, DataLoader, random_split, ..."""

from . import data

__all__ = ["data"]
