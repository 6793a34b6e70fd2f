"""Matrix products: Matmul (batched, transposes read in place by BLAS) and Einsum.
"""

from __future__ import annotations

import numpy as np

from ..engine import Function


class Einsum(Function):
    """np.einsum for explicit subscripts (spec = (input subscripts, output subscripts)).

    The gradient for operand k is itself an einsum: of g and the other operands, to operand k's
    subscripts; letters summed in operand k alone come back by broadcasting.

    Gradient: dx_k = einsum of g with the other operands, to x_k's subscripts (broadcast along letters only x_k
    has).
    """

    def forward(self, *xs, spec):
        self.spec = spec
        ins, out = spec
        return np.asarray(np.einsum(",".join(ins) + "->" + out, *xs, optimize=len(xs) > 2))

    def backward(self, g):
        ins, out = self.spec
        grads = []
        for k, p in enumerate(self.parents):
            if not p._requires_grad:
                grads.append(None)
                continue
            sk = ins[k]
            if len(set(sk)) != len(sk):
                raise NotImplementedError(f"einsum: no gradient through a repeated index within one operand "
                                          f"({sk!r}, a diagonal); use Tensor.diagonal instead")
            others = [j for j in range(len(ins)) if j != k]
            avail = set(out).union(*[ins[j] for j in others])
            keep = "".join(c for c in sk if c in avail)
            gk = Einsum.apply(g, *[self.parents[j] for j in others], spec=((out, *[ins[j] for j in others]), keep))
            if keep != sk:  # broadcast along the letters only this operand had
                gk = gk.reshape(tuple(n if c in avail else 1 for c, n in zip(sk, p.shape))).expand(p.shape)
            grads.append(gk)
        return tuple(grads)


class Matmul(Function):
    """Batched matrix product of operands with ndim >= 2 (Tensor.matmul reshapes 1-D cases).

    `ta`/`tb` multiply by the transpose of the last two axes of x/y instead:
    BLAS reads the transpose in place, and every gradient below is then one
    product with no transpose op of its own.

    Gradient: for y = A @ B: dA = g @ Bᵀ, dB = Aᵀ @ g (with `ta`/`tb`, the same products, transposes read in place).
    """

    def forward(self, x, y, ta=False, tb=False):
        self.ta, self.tb = ta, tb
        return np.matmul(x.swapaxes(-1, -2) if ta else x, y.swapaxes(-1, -2) if tb else y)

    def backward(self, g):
        x, y = self.parents
        ta, tb = self.ta, self.tb
        gx = gy = None
        # d/dA of op(A) @ op(B), transposed back when op(A) = A^T.  An operand stored transposed
        # (h @ W.T: W.T's data is W's memory read column-first) gets its gradient computed in that
        # layout too, as the transpose of a product: the gradient it hands back to W is then W's
        # own C-order array instead of a transposing copy (~3x the GEMM's time for a 784x512 W).
        if x._requires_grad:
            if ta or (_transposed_2d(x.data) and y.ndim == 2):
                gx = Matmul.apply(y, g, ta=tb, tb=True)
                gx = gx if ta else gx.T
            else:
                gx = Matmul.apply(g, y, tb=not tb)
        if y._requires_grad:
            if tb or (_transposed_2d(y.data) and x.ndim == 2):
                gy = Matmul.apply(g, x, ta=True, tb=ta)
                gy = gy if tb else gy.T
            else:
                gy = Matmul.apply(x, g, ta=not ta)
        return gx, gy


def _transposed_2d(a: np.ndarray) -> bool:
    """A matrix whose transpose is C-contiguous (and that is not C-contiguous itself)."""
    return a.ndim == 2 and not a.flags.c_contiguous and a.flags.f_contiguous
