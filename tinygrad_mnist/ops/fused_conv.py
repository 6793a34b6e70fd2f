"""Convolution and pooling fused for speed: each op equals a composite of Unfold/Fold (conv.py),
Matmul and a reduction (its docstring says which; tests/test_ops_conv.py checks values and gradients).
"""

from __future__ import annotations

import concurrent.futures
import os

import numpy as np

from ..engine import Function
from .shape import _empty_in, _layout, _memory_order

# ---------------------------------------------------------------------------
# convolution and pooling as whole ops
#
# Inside these ops images live in (C, H, W, N) memory order: with the batch
# last, every kernel offset (i, j) addresses one slab x[:, i:i+OH, j:j+OW, :]
# whose rows are OW*N contiguous numbers, so im2col, col2im and the pooling
# windows are kh*kw long, fast copies or adds, and the convolution GEMM writes
# its (O, OH*OW*N) result straight into that order.  Callers see NCHW: the
# results are transposed views, and the next op reads the memory order through
# the strides (NumPy's elementwise ops keep it).  A user's NCHW array costs one
# small transposing copy on the way in.
# ---------------------------------------------------------------------------


# The copies, adds and comparisons around the GEMMs run on one core in NumPy while BLAS uses
# them all.  They can be split into contiguous chunks (of channels) run side by side in a few
# threads (NumPy releases the GIL inside them); each element is computed by the same kernel as in
# one piece, so results are the same bit for bit with any number of threads.  Off by default: on
# its own col2im runs ~1.8x faster on 2 free cores, but inside a training step OpenBLAS's idle
# worker thread keeps spinning on the other core for tens of ms after every GEMM, and a whole CNN
# step measured no faster (2-core machine).  `set_num_threads(n)` turns it on (it may pay where
# BLAS runs one thread, OPENBLAS_NUM_THREADS=1; not measured in a whole step).
_num_threads = 1
_PARALLEL_MIN = 1 << 20  # elements: below ~1M a thread hand-off (~40 us) costs more than it saves
_pool = None
_pool_pid = None


def set_num_threads(n: int) -> None:
    """How many threads the conv/pool ops split their big copies over (default 1: never split); BLAS keeps its own."""
    global _num_threads
    if int(n) < 1:
        raise ValueError(f"set_num_threads: need at least 1 thread, got {n}")
    _num_threads = int(n)


def get_num_threads() -> int:
    return _num_threads


def _parallel(fn, n: int, size: int) -> None:
    """Run fn(lo, hi) over contiguous chunks of range(n), side by side when `size` elements of work
    are worth it.  The chunks must write disjoint parts of the result."""
    global _pool, _pool_pid
    k = min(_num_threads, n)
    if k < 2 or size < _PARALLEL_MIN:
        fn(0, n)
        return
    if _pool_pid != os.getpid():  # first use, or a forked child: its parent's threads don't exist here
        _pool, _pool_pid = concurrent.futures.ThreadPoolExecutor(_num_threads - 1), os.getpid()
    bounds = [n * i // k for i in range(k + 1)]
    rest = [_pool.submit(fn, lo, hi) for lo, hi in zip(bounds[1:-1], bounds[2:])]
    fn(bounds[0], bounds[1])
    for f in rest:
        f.result()


def _chwn(x: np.ndarray) -> np.ndarray:
    """(N, C, H, W) -> (C, H, W, N), a view."""
    return x.transpose(1, 2, 3, 0)


def _nchw(x: np.ndarray) -> np.ndarray:
    """(C, H, W, N) -> (N, C, H, W), a view."""
    return x.transpose(3, 0, 1, 2)


def _out_size(size: int, k: int, s: int, p: int) -> int:
    return (size + 2 * p - k) // s + 1


def _window(i: int, j: int, oh: int, ow: int, stride) -> tuple:
    """Index of the slab of a (C, H, W, N) array that kernel offset (i, j) reads for every output pixel."""
    sh, sw = stride
    return slice(None), slice(i, i + sh * (oh - 1) + 1, sh), slice(j, j + sw * (ow - 1) + 1, sw)


def _padded_chwn(x: np.ndarray, padding, value=0) -> np.ndarray:
    """x (N, C, H, W) as a C-contiguous (C, H+2ph, W+2pw, N) array (a view when it already is one)."""
    ph, pw = padding
    xc = _chwn(x)
    if not (ph or pw):
        return xc if xc.flags.c_contiguous else np.ascontiguousarray(xc)
    c, h, w, n = xc.shape
    out = np.full((c, h + 2 * ph, w + 2 * pw, n), value, x.dtype) if value else \
        np.zeros((c, h + 2 * ph, w + 2 * pw, n), x.dtype)
    out[:, ph:ph + h, pw:pw + w] = xc
    return out


def _im2col(x: np.ndarray, kernel, stride, padding) -> np.ndarray:
    """Columns (C*kh*kw, OH*OW*N) of x (N, C, H, W): one copy per kernel offset."""
    xp = _padded_chwn(x, padding)
    (kh, kw), (c, h, w, n) = kernel, xp.shape
    oh, ow = (h - kh) // stride[0] + 1, (w - kw) // stride[1] + 1
    cols = np.empty((c, kh, kw, oh, ow, n), x.dtype)

    def channels(lo, hi):
        for i in range(kh):
            for j in range(kw):
                cols[lo:hi, i, j] = xp[lo:hi][_window(i, j, oh, ow, stride)]

    _parallel(channels, c, cols.size)  # (one channel, the image entering the net: fast as it is)
    return cols.reshape(c * kh * kw, oh * ow * n)


_BAND_BYTES = 2 << 20  # columns made and added back at a time by _conv_transpose


def _conv_transpose(wt: np.ndarray, g: np.ndarray, shape, kernel, stride, padding) -> np.ndarray:
    """Columns ``wt @ g`` (wt (C*kh*kw, O), g (O, OH*OW*N)) added back onto an (N, C, H, W) image
    (col2im, the adjoint of _im2col; overlapping windows add up).

    Done in bands of output rows, each band's GEMM result added in while it is still in cache (~2 MB
    of columns at a time, not all of them at once: one GEMM + col2im of the demo CNN's second layer
    takes ~15% less CPU).  The bands run bottom to top, so each pixel still receives its kernel
    offsets in the order (i, j) ascending: the same sums, bit for bit, as one GEMM then one col2im.
    """
    n, c, h, w = shape
    (kh, kw), (sh, sw), (ph, pw) = kernel, stride, padding
    hp, wp = h + 2 * ph, w + 2 * pw
    oh, ow = (hp - kh) // sh + 1, (wp - kw) // sw + 1
    out = np.zeros((c, hp, wp, n), g.dtype)
    per_row = ow * n  # columns of one output row
    band = max(1, _BAND_BYTES // (wt.shape[0] * per_row * g.itemsize))
    for y0 in reversed(range(0, oh, band)):
        r = min(band, oh - y0)
        cols = (wt @ g[:, y0 * per_row:(y0 + r) * per_row]).reshape(c, kh, kw, r, ow, n)

        def channels(lo, hi, cols=cols, rows=slice(y0 * sh, y0 * sh + sh * (r - 1) + 1, sh)):
            part, cs = out[lo:hi], cols[lo:hi]
            for i in range(kh):
                for j in range(kw):
                    part[:, rows.start + i:rows.stop + i:sh, j:j + sw * (ow - 1) + 1:sw] += cs[:, i, j]

        _parallel(channels, c, cols.size)
    return _nchw(out[:, ph:ph + h, pw:pw + w] if ph or pw else out)


def _rows(g: np.ndarray) -> np.ndarray:
    """An (N, O, OH, OW) gradient as the (O, OH*OW*N) matrix the GEMMs use (free in (C, H, W, N) order)."""
    gc = _chwn(g)
    return gc.reshape(gc.shape[0], -1)


class Conv2d(Function):
    """conv2d of x (N, C, H, W) with w (O, C, kh, kw) and an optional bias (O,), as one op.

    Equals the composite ``x.pad(...).unfold2d(kernel, stride)`` -> ``w.reshape(O, -1) @ cols`` -> ``+ b`` ->
    reshape and permute to NCHW, fused for speed (tests/test_ops_conv.py checks values and gradients against it).

    The forward's columns are kept for the weight gradient; the input gradient is
    ConvTranspose2d (one GEMM and a col2im) and is skipped for inputs that need none, such as
    the image entering the first layer.  Every gradient is itself one of these three ops, so
    gradients of gradients work.

    Gradient: dx = ConvTranspose2d(g, w), dw = Conv2dWeightGrad(x, g), db = Σ of g over N, OH, OW.
    """

    saved = ("cols",)

    def forward(self, x, w, b=None, stride=(1, 1), padding=(0, 0)):
        self.stride, self.padding = stride, padding
        o, kernel = w.shape[0], w.shape[2:]
        cols = _im2col(x, kernel, stride, padding)
        self.cols = cols  # reused by the weight gradient
        out = w.reshape(o, -1) @ cols  # (O, OH*OW*N): one GEMM
        if b is not None:
            out += b[:, None]  # in place
        oh = _out_size(x.shape[2], kernel[0], stride[0], padding[0])
        ow = _out_size(x.shape[3], kernel[1], stride[1], padding[1])
        return _nchw(out.reshape(o, oh, ow, x.shape[0]))

    def backward(self, g):
        x, w = self.parents[:2]
        geometry = {"stride": self.stride, "padding": self.padding}
        gx = ConvTranspose2d.apply(g, w, shape=x.shape, **geometry) if x._requires_grad else None
        # the columns reach the weight gradient through this op (read when it runs), never as an array param
        gw = Conv2dWeightGrad.apply(x, g, kernel=w.shape[2:], conv=self, **geometry) \
            if w._requires_grad else None
        if len(self.parents) == 2:
            return gx, gw
        b = self.parents[2]
        return gx, gw, (g.sum((0, 2, 3)) if b._requires_grad else None)


class ConvTranspose2d(Function):
    """The input gradient of Conv2d: g (N, O, OH, OW) and w (O, C, kh, kw) -> (N, C, H, W).

    Equals the transpose of the composite's im2col GEMM: ``Fold(w.reshape(O, -1).T @ g)``.
    Linear in g and in w; its own gradients are a Conv2d and a Conv2dWeightGrad.

    Gradient: dg = Conv2d(gg, w), dw = Conv2dWeightGrad(gg, g).
    """

    def forward(self, g, w, shape, stride, padding):
        self.shape, self.stride, self.padding = shape, stride, padding
        o = w.shape[0]
        return _conv_transpose(w.reshape(o, -1).T, _rows(g), shape, w.shape[2:], stride, padding)

    def backward(self, gg):
        g, w = self.parents
        geometry = {"stride": self.stride, "padding": self.padding}
        dg = Conv2d.apply(gg, w, **geometry) if g._requires_grad else None
        dw = Conv2dWeightGrad.apply(gg, g, kernel=w.shape[2:], **geometry) if w._requires_grad else None
        return dg, dw


class Conv2dWeightGrad(Function):
    """The weight gradient of Conv2d: x (N, C, H, W) and g (N, O, OH, OW) -> (O, C, kh, kw).

    Equals the composite's ``g.reshape(O, -1) @ unfold(x).T``: one GEMM over the columns.  `conv`
    is the Conv2d whose gradient this is: its forward kept x's columns, read here when this op
    runs (a replay re-runs that forward first, so they are fresh).  Linear in x and in g.

    Gradient: dx = ConvTranspose2d(g, ggw), dg = Conv2d(x, ggw).
    """

    def forward(self, x, g, kernel, stride, padding, conv=None):
        self.kernel, self.stride, self.padding = kernel, stride, padding
        cols = None if conv is None else conv.cols
        if cols is None:
            cols = _im2col(x, kernel, stride, padding)
        # (C*kh*kw, O) = cols @ g^T, reshaped (copied) to (O, C, kh, kw): BLAS runs this orientation
        # of the long-K product ~20% faster than g @ cols^T (1 and 2 threads, the demo's conv layers)
        gw = (cols @ _rows(g).T).T
        return gw.reshape(gw.shape[0], x.shape[1], *kernel)

    def backward(self, ggw):
        x, g = self.parents
        geometry = {"stride": self.stride, "padding": self.padding}
        dx = ConvTranspose2d.apply(g, ggw, shape=x.shape, **geometry) if x._requires_grad else None
        dg = Conv2d.apply(x, ggw, **geometry) if g._requires_grad else None
        return dx, dg


def _pad_hw(x: np.ndarray, padding, value) -> np.ndarray:
    """Pad the H and W axes of (N, C, H, W), keeping x's memory order."""
    ph, pw = padding
    if not (ph or pw):
        return x
    n, c, h, w = x.shape
    out = _empty_in(_layout(x), (n, c, h + 2 * ph, w + 2 * pw), x.dtype, fill=value)
    out[:, :, ph:ph + h, pw:pw + w] = x
    return out


class _PoolGeometry:
    """Windows of a 2-D pooling over (N, C, H, W): kernel, stride, padding and the slab of each offset.

    Equal by value (a recording compares the params of two calls)."""

    def __init__(self, shape, kernel, stride, padding):
        self.shape, self.kernel, self.stride, self.padding = shape, kernel, stride, padding
        n, c, h, w = shape
        self.padded = (n, c, h + 2 * padding[0], w + 2 * padding[1])
        self.out = (n, c, (self.padded[2] - kernel[0]) // stride[0] + 1,
                    (self.padded[3] - kernel[1]) // stride[1] + 1)
        self.overlap = kernel[0] > stride[0] or kernel[1] > stride[1]
        # the windows cover every padded pixel exactly once (2x2 pooling of an even image)
        self.tiles = kernel == stride and self.out[2] * kernel[0] == self.padded[2] \
            and self.out[3] * kernel[1] == self.padded[3]

    def _key(self):
        return self.shape, self.kernel, self.stride, self.padding

    def __eq__(self, other):
        return isinstance(other, _PoolGeometry) and self._key() == other._key()

    def __hash__(self):
        return hash(self._key())

    def __repr__(self):
        return "_PoolGeometry(shape={}, kernel={}, stride={}, padding={})".format(*self._key())

    def slabs(self):
        """For each kernel offset, the index of the (N, C, OH, OW) slab of the padded input it reads."""
        (kh, kw), (sh, sw), (oh, ow) = self.kernel, self.stride, self.out[2:]
        return [(slice(None), slice(None), slice(i, i + sh * (oh - 1) + 1, sh), slice(j, j + sw * (ow - 1) + 1, sw))
                for i in range(kh) for j in range(kw)]

    def unpad(self, a: np.ndarray) -> np.ndarray:
        (ph, pw), (h, w) = self.padding, self.shape[2:]
        return a[:, :, ph:ph + h, pw:pw + w] if ph or pw else a


def _low(dtype):
    """Max pooling's padding value: below every value of the dtype."""
    return -np.inf if dtype.kind == "f" else np.iinfo(dtype).min


def _tie_shares(hits: np.ndarray, dtype):
    """Max pooling's weight of each window offset from the 0/1 hits (k, N, C, OH, OW): the hits
    themselves, or where k > 1 offsets tie for the max, 1/k for each (Tensor.max's tie rule)."""
    if np.count_nonzero(hits) == hits[0].size:
        return hits
    count = hits.sum(0, dtype=np.uint16 if len(hits) > 255 else np.uint8)
    return hits * np.reciprocal(count, dtype=dtype)


def _weight(weights, k: int, scale, dtype):
    """The multiplier of window offset k: a slab of the weights, or the scalar scale."""
    return dtype.type(scale) if weights is None else weights[k]


class PoolHits(Function):
    """Which window offsets hold the max: bool (kh*kw, N, C, OH, OW), `x`'s window slab == `out`.

    Max pooling's gradient routes each output gradient to these offsets (PoolScatter/PoolGather
    with the hits as weights).  A 0/1 mask: its own derivative is zero, so its gradient is None.

    Gradient: none: a 0/1 mask.
    """

    saves_inputs = False

    def forward(self, x, out, geometry):
        xp = _pad_hw(x, geometry.padding, _low(x.dtype))
        slabs = geometry.slabs()
        hits = _empty_in(_layout(out), out.shape, np.bool_, lead=(len(slabs),))
        for k, slab in enumerate(slabs):
            np.equal(xp[slab], out, out=hits[k])
        return hits

    def backward(self, g):
        return None, None


class PoolGather(Function):
    """out = sum over the window offsets k of weight_k * (window slab k of x): a weighted 2-D pooling.

    With no weights and `scale` 1/(kh*kw) it is avg_pool2d (zero padding counted, as PyTorch's
    default).  With the hits of max pooling (PoolHits, a second input) the weights are their
    tie-sharing shares.  Linear in x; the gradient is PoolScatter.

    Equals the composite ``x.pad(...).unfold2d(...)`` -> ``.mean(0)`` (avg_pool2d; with the hits: the tie-sharing
    weights of max pooling).

    Gradient: dx = PoolScatter(g): each output gradient times weight_k back to window slab k; the hits get none.
    """

    saves_inputs = (1,)  # the hits, when given; x's value is never read back

    def forward(self, x, hits=None, geometry=None, scale=1.0):
        self.geometry, self.scale, self.layout = geometry, scale, _layout(x)
        weights = None if hits is None else _tie_shares(hits, x.dtype)
        xp = _pad_hw(x, geometry.padding, 0)
        out = _empty_in(_layout(x), geometry.out, x.dtype)
        for k, slab in enumerate(geometry.slabs()):
            wk = _weight(weights, k, scale, x.dtype)
            if k == 0:
                np.multiply(xp[slab], wk, out=out)
            else:
                out += xp[slab] * wk
        return out

    def backward(self, g):
        hits = self.parents[1] if len(self.parents) > 1 else None
        inputs = (g,) if hits is None else (g, hits)
        gx = PoolScatter.apply(*inputs, geometry=self.geometry, scale=self.scale, layout=self.layout)
        return (gx,) if hits is None else (gx, None)


class PoolScatter(Function):
    """The adjoint of PoolGather: each output gradient times weight_k goes back to window slab k.

    Overlapping windows add up; the result has the pooled input's shape (N, C, H, W), its axes in
    memory in the order `layout`.  Linear in g; the gradient is PoolGather.

    Gradient: dg = PoolGather(gg) (with the same hits); the hits get none.
    """

    saves_inputs = (1,)

    def forward(self, g, hits=None, geometry=None, scale=1.0, layout=(0, 1, 2, 3)):
        self.geometry, self.scale = geometry, scale
        weights = None if hits is None else _tie_shares(hits, g.dtype)
        out = _empty_in(layout, geometry.padded, g.dtype, fill=None if geometry.tiles else 0)
        relayout = _memory_order(g) != _memory_order(out)  # one copy, not a mixed-layout op per offset
        buf = _empty_in(layout, g.shape, g.dtype) if relayout else g
        slabs = geometry.slabs()

        def channels(lo, hi):
            gc = buf[:, lo:hi]
            if relayout:
                gc[...] = g[:, lo:hi]
            for k, slab in enumerate(slabs):
                wk = _weight(weights, k, scale, g.dtype)
                wk = wk if weights is None else wk[:, lo:hi]
                if geometry.overlap:
                    out[slab][:, lo:hi] += gc * wk
                else:  # disjoint windows: write each slab once
                    np.multiply(gc, wk, out=out[slab][:, lo:hi])

        _parallel(channels, g.shape[1], out.size)
        return geometry.unpad(out)

    def backward(self, gg):
        hits = self.parents[1] if len(self.parents) > 1 else None
        inputs = (gg,) if hits is None else (gg, hits)
        dg = PoolGather.apply(*inputs, geometry=self.geometry, scale=self.scale)
        return (dg,) if hits is None else (dg, None)


class MaxPool2d(Function):
    """Max over each 2-D window of x (N, C, H, W), padding with -inf; ties share the gradient equally.

    Equals the composite ``x.pad(..., value=-inf).unfold2d(...)`` -> ``.max(0)`` (Tensor.max's tie
    rule).  One elementwise maximum per window offset; the gradient is MaxPoolGrad (PoolScatter
    weighted by PoolHits: which offsets hold the max, found by comparing each slab with the result).

    Gradient: dx = g routed to each window's maximum, tied maxima sharing equally: MaxPoolGrad(g, x, y).
    """

    saves_output = True

    def forward(self, x, geometry):
        self.geometry, self.layout = geometry, _layout(x)
        xp = _pad_hw(x, geometry.padding, _low(x.dtype))
        slabs = geometry.slabs()
        out = _empty_in(self.layout, geometry.out, x.dtype)
        np.maximum(xp[slabs[0]], xp[slabs[1]], out=out) if len(slabs) > 1 else np.copyto(out, xp[slabs[0]])
        for slab in slabs[2:]:
            np.maximum(out, xp[slab], out=out)
        return out

    def backward(self, g):
        return (MaxPoolGrad.apply(g, self.parents[0], self.output(), geometry=self.geometry, layout=self.layout),)


class MaxPoolGrad(Function):
    """Max pooling's input gradient: g (N, C, OH, OW) routed to the window offsets where x (N, C, H, W)
    held the max `out`, tied maxima sharing.  The result has x's shape and memory order (`layout`).

    Equals ``PoolScatter(g, PoolHits(x, out))``, fused: one pass over chunks of channels (split
    across threads) makes each chunk's hits and uses them while they are in cache.  Linear in g;
    its gradient is PoolGather with the hits; x and out get none (the hits are a 0/1 choice).

    Gradient: dg = PoolGather(gg, PoolHits(x, out)); x and out get none (the hits are a 0/1 choice).
    """

    saves_inputs = (1, 2)  # x and out; g's value is never read back

    def forward(self, g, x, out, geometry, layout):
        self.geometry = geometry
        xp = _pad_hw(x, geometry.padding, _low(x.dtype))
        slabs = geometry.slabs()
        dst = _empty_in(layout, geometry.padded, g.dtype, fill=None if geometry.tiles else 0)
        relayout = _memory_order(g) != _memory_order(dst)  # one copy, not a mixed-layout op per offset
        buf = _empty_in(layout, g.shape, g.dtype) if relayout else g

        if geometry.tiles:  # windows tile the image: one compare, one multiply over (N, C, OH, kh, OW, kw) views
            (kh, kw), (n, c, oh, ow) = geometry.kernel, out.shape
            six = (n, c, oh, kh, ow, kw)
            x6, d6 = xp.reshape(six, copy=False), dst.reshape(six, copy=False)
            h6 = _empty_in(layout, geometry.padded, np.bool_).reshape(six, copy=False)

            def tiles(lo, hi):
                gc, h = buf[:, lo:hi], h6[:, lo:hi]
                if relayout:
                    gc[...] = g[:, lo:hi]
                np.equal(x6[:, lo:hi], out[:, lo:hi, :, None, :, None], out=h)
                if np.count_nonzero(h) != gc.size:  # ties share: g/k to each of k tied maxima (as _tie_shares)
                    gc = gc * np.reciprocal(h.sum((3, 5), dtype=np.uint16 if kh * kw > 255 else np.uint8),
                                            dtype=g.dtype)  # scaling g, not the hits: a 1/(kh*kw) size temporary
                np.multiply(gc[:, :, :, None, :, None], h, out=d6[:, lo:hi])

            _parallel(tiles, g.shape[1], dst.size)
            return geometry.unpad(dst)

        def channels(lo, hi):
            gc, h = buf[:, lo:hi], hits[:, :, lo:hi]
            if relayout:
                gc[...] = g[:, lo:hi]
            for k, slab in enumerate(slabs):
                np.equal(xp[slab][:, lo:hi], out[:, lo:hi], out=h[k])
            shares = _tie_shares(h, g.dtype)  # elementwise: the same whatever the chunks
            for k, slab in enumerate(slabs):
                if geometry.overlap:
                    dst[slab][:, lo:hi] += gc * shares[k]
                else:  # disjoint windows: write each slab once
                    np.multiply(gc, shares[k], out=dst[slab][:, lo:hi])

        hits = _empty_in(_layout(out), out.shape, np.bool_, lead=(len(slabs),))
        _parallel(channels, g.shape[1], dst.size)
        return geometry.unpad(dst)

    def backward(self, gg):
        g, x, out = self.parents
        hits = PoolHits.apply(x, out, geometry=self.geometry)
        return PoolGather.apply(gg, hits, geometry=self.geometry), None, None
