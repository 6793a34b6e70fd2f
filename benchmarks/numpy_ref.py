"""Hand-written NumPy forward + backward + SGD for W1-W5: the floor the engine is measured against.

Written the way a careful NumPy programmer would: float32 throughout (constants are np.float32,
never Python floats turned into float64 arrays), BLAS for every matmul (transposes are passed as
views, which NumPy hands to BLAS as a transpose flag, not a copy), in-place updates, and temporaries
reused where that is free. The learning rate (and 1/batch) is folded into the output delta once,
so every parameter update is a single in-place subtraction.

Each model: ``prepare(*batch) -> args``, ``step(*args) -> loss`` (NumPy float32 scalar),
``params() -> {name: array copy}``.
"""

from __future__ import annotations

import numpy as np
from numpy.lib.stride_tricks import sliding_window_view

from benchmarks.workloads import ADD, CHAIN_ADD, CHAIN_MUL, CHAIN_OPS, CHAIN_X0, MUL, Workload

F32 = np.float32
ZERO = F32(0)
ONE = F32(1)


class _Model:
    def __init__(self, params: dict[str, np.ndarray], lr: float):
        self.p = {k: np.array(v, dtype=F32, order="C", copy=True) for k, v in params.items()}
        self.lr = lr

    def prepare(self, *batch):
        return batch

    def params(self) -> dict[str, np.ndarray]:
        return {k: v.copy() for k, v in self.p.items()}

    @staticmethod
    def loss_float(loss) -> float:
        return float(loss)


def _sigmoid_(z: np.ndarray) -> np.ndarray:
    """1 / (1 + exp(-z)) in place on a temporary we own: no extra arrays."""
    np.negative(z, out=z)
    np.exp(z, out=z)  # may overflow to inf for z < -88: 1/(1+inf) = 0 is the right answer
    z += ONE
    np.reciprocal(z, out=z)
    return z


class NielsenMLP(_Model):
    """W1: 784-30-10 sigmoid/sigmoid, C = 1/(2n) sum ||y - a||^2, plain SGD."""

    def step(self, x, y):
        p = self.p
        w0, b0, w1, b1 = p["w0"], p["b0"], p["w1"], p["b1"]
        n = x.shape[0]
        a1 = x @ w0
        a1 += b0
        _sigmoid_(a1)
        a2 = a1 @ w1
        a2 += b1
        _sigmoid_(a2)
        diff = a2 - y
        loss = np.vdot(diff, diff) * F32(0.5 / n)  # vdot: one BLAS call for the sum of squares
        # output delta (a - y) * a(1 - a), already scaled by lr/n
        d2 = ONE - a2
        d2 *= a2
        d2 *= diff
        d2 *= F32(self.lr / n)
        d1 = d2 @ w1.T  # before w1 is updated
        s1 = ONE - a1
        s1 *= a1
        d1 *= s1
        w1 -= a1.T @ d2
        b1 -= d2.sum(axis=0)
        w0 -= x.T @ d1
        b0 -= d1.sum(axis=0)
        return loss


class ReluMLP(_Model):
    """W2/W3: ReLU hidden layers, linear output, mean softmax cross-entropy, plain SGD."""

    def __init__(self, params, lr):
        super().__init__(params, lr)
        n_layers = len(self.p) // 2
        self.ws = [self.p[f"w{i}"] for i in range(n_layers)]
        self.bs = [self.p[f"b{i}"] for i in range(n_layers)]
        self._rows: dict[int, np.ndarray] = {}

    def prepare(self, x, labels):
        n = x.shape[0]
        if n not in self._rows:
            self._rows[n] = np.arange(n)
        return x, labels, self._rows[n]

    def step(self, x, labels, rows):
        ws, bs = self.ws, self.bs
        n = x.shape[0]
        acts = [x]
        h = x
        for w, b in zip(ws[:-1], bs[:-1]):
            h = h @ w
            h += b
            np.maximum(h, ZERO, out=h)
            acts.append(h)
        z = h @ ws[-1]
        z += bs[-1]
        # stable log-softmax: shift by the row max, then log(sum(exp))
        z -= z.max(axis=1, keepdims=True)
        e = np.exp(z)
        s = e.sum(axis=1, keepdims=True)
        loss = np.log(s).mean() - z[rows, labels].mean()
        # dL/dz * lr = lr/n * (softmax - onehot), computed in place in e
        e *= F32(self.lr / n) / s
        e[rows, labels] -= F32(self.lr / n)
        g = e
        for i in range(len(ws) - 1, -1, -1):
            a = acts[i]
            if i > 0:
                g_prev = g @ ws[i].T  # before ws[i] is updated
                g_prev *= a > 0  # relu'(z) = [relu(z) > 0]
            ws[i] -= a.T @ g
            bs[i] -= g.sum(axis=0)
            if i > 0:
                g = g_prev
        return loss


class SmallCNN(_Model):
    """W5: conv 3x3 (1->8, bias) -> ReLU -> max-pool 2x2 -> flatten -> linear 1352->10, softmax CE.

    Convolution is im2col + one GEMM. The im2col columns are laid out as
    (C*kh*kw, qi, qj, N, 13, 13) where an output pixel (i, j) = (2*pi + qi, 2*pj + qj): the GEMM
    then yields the 26x26 maps with the four positions of each 2x2 pooling window as four
    contiguous slabs, so pooling is one reduction over a size-4 axis and its backward mask is one
    broadcast compare. (Reducing the literal (N, C, 13, 2, 13, 2) view over its size-2 axes is
    30x slower in NumPy; this is the same reshape idea with the window axes moved outward.)
    """

    def prepare(self, x, labels):
        return x, labels, np.arange(x.shape[0])

    def step(self, x, labels, rows):
        p = self.p
        cw, cb, fw, fb = p["conv_w"], p["conv_b"], p["fc_w"], p["fc_b"]
        n = x.shape[0]
        # im2col, each step (the input changes): (N, 1, 26, 26, 3, 3) window view, 26 split as
        # 13 * 2 (still a view), then one copy into (C*kh*kw, qi, qj, N, pi, pj)
        win = sliding_window_view(x, (3, 3), axis=(2, 3)).reshape(n, 1, 13, 2, 13, 2, 3, 3)
        cols = win.transpose(1, 6, 7, 3, 5, 0, 2, 4).reshape(9, 4 * n * 169)
        z = cw.reshape(8, 9) @ cols  # (8, 4*N*169): conv output, window positions outermost
        z += cb[:, None]
        np.maximum(z, ZERO, out=z)
        z4 = z.reshape(8, 4, n * 169)
        m = z4.max(axis=1)  # (8, N*169): pooled maps, (C, N, 13, 13)
        flat = m.reshape(8, n, 169).transpose(1, 0, 2).reshape(n, 8 * 169)  # NCHW flatten (small copy)
        logits = flat @ fw
        logits += fb
        logits -= logits.max(axis=1, keepdims=True)
        e = np.exp(logits)
        s = e.sum(axis=1, keepdims=True)
        loss = np.log(s).mean() - logits[rows, labels].mean()
        e *= F32(self.lr / n) / s
        e[rows, labels] -= F32(self.lr / n)
        g = e  # dL/dlogits * lr
        dflat = g @ fw.T  # before fw is updated
        fw -= flat.T @ g
        fb -= g.sum(axis=0)
        # back through flatten -> (C, N*169); a window whose max is 0 had all-zero ReLU outputs,
        # so relu' kills its gradient: masking the small pooled grad covers ReLU's backward too
        gm = dflat.reshape(n, 8, 169).transpose(1, 0, 2).reshape(8, n * 169)
        gm *= m > 0
        dz = (z4 == m[:, None, :]) * gm[:, None, :]  # route to the argmax of each window
        dz = dz.reshape(8, 4 * n * 169)
        cw -= (cols @ dz.T).T.reshape(8, 1, 3, 3)  # cols @ dz.T is faster than dz @ cols.T here
        cb -= dz.sum(axis=1)
        return loss


class OpChain:
    """W4: the add/mul/tanh chain on a one-element array, forward then backward by hand."""

    def __init__(self, params=None, lr=0.0):
        self.x0 = np.array([CHAIN_X0], F32)
        self.ca = np.array([CHAIN_ADD], F32)
        self.cm = np.array([CHAIN_MUL], F32)
        self.grad = None

    def prepare(self):
        return ()

    def step(self):
        ca, cm = self.ca, self.cm
        x = self.x0
        saved = []
        for op in CHAIN_OPS:
            if op == ADD:
                x = x + ca
            elif op == MUL:
                x = x * cm
            else:
                x = np.tanh(x)
                saved.append(x)
        loss = x.sum()
        g = np.ones_like(x)
        for op in reversed(CHAIN_OPS):
            if op == MUL:
                g = g * cm
            elif op != ADD:  # tanh' = 1 - tanh^2; add passes the gradient through unchanged
                t = saved.pop()
                g = g * (ONE - t * t)
        self.grad = g
        return loss

    def params(self):
        return {"x_grad": self.grad.copy()}

    @staticmethod
    def loss_float(loss) -> float:
        return float(loss)


def build(w: Workload, params: dict[str, np.ndarray]):
    cls = {"sigmoid_mse": NielsenMLP, "relu_ce": ReluMLP, "cnn": SmallCNN, "chain": OpChain}[w.kind]
    return cls(params, w.lr)
