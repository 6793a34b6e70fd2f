"""A kit for testing gradients: your own ops, losses and whole modules.

    from tinygrad_mnist.testing import gradcheck, gradgradcheck, assert_module_matches
    gradcheck(fn, [x, w])                          # first order: central differences in float64
    gradgradcheck(fn, [x, w])                      # second order: the backward's own backward
    assert_module_matches(model, torch_model, x)   # outputs and every gradient against PyTorch

Each failure raises `GradcheckError` (an AssertionError) naming what differs (the input, the
parameter, the buffer), the first element, the order and both values.  Also here:

- `tinygrad_mnist.testing.strategies`: hypothesis strategies for shapes, tensors, index arrays
  (needs hypothesis);
- `tinygrad_mnist.testing.plugin`: a pytest plugin, active once the package is installed (a `seed`
  fixture, got/want tables under failing gradient checks); `-p no:tinygrad_mnist` switches it off.

Neither PyTorch nor hypothesis is imported until you use what needs it.
"""

from ..gradcheck import (
    GradcheckError,
    analytical_jacobian,
    assert_close,
    compare_with_reference,
    format_table,
    gradcheck,
    gradgradcheck,
    numerical_jacobian,
    torch_reference,
)
from .modules import assert_module_matches

__all__ = ["GradcheckError", "analytical_jacobian", "assert_close", "assert_module_matches",
           "compare_with_reference", "format_table", "gradcheck", "gradgradcheck", "numerical_jacobian",
           "torch_reference"]
