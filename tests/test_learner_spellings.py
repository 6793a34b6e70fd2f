"""`.data` as the lectures use it, torch.Size, tolist, one_hot(...).float(), allclose/all(...).item()
(issue 18, items 3 and 6), under both imports (the runner of test_pytorch_idioms.py).

`.data` here is the tensor's NumPy array (PyTorch's is a detached Tensor sharing the memory); NumPy
accepts a Tensor as the operand of an in-place update, so `p.data += -lr * p.grad` and
`p.data -= lr * p.grad` update the parameter exactly as in PyTorch.  Assigning a Tensor to `.data`
(`p.data = p.data - lr * p.grad`) is the one spelling that differs: the next op on p raises and says
what to write instead (see docs/pytorch.md).
"""

from __future__ import annotations

import numpy as np
import pytest
from test_pytorch_idioms import _check, run_both

import tinygrad_mnist as tg

MLP = """
    g = np.random.default_rng(0)
    params = [torch.tensor(g.standard_normal((4, 5)).astype(np.float32) * 0.5),
              torch.tensor(np.zeros(5, np.float32)),
              torch.tensor(g.standard_normal((5, 3)).astype(np.float32) * 0.5)]
    for p in params:
        p.requires_grad = True
    x, y = torch.tensor(X), torch.tensor(np.array([0, 2, 1, 1, 0, 2]))
    losses = []
    for step in range(5):
        h = torch.tanh(x @ params[0] + params[1])
        loss = F.cross_entropy(h @ params[2], y)
        for p in params:
            p.grad = None
        loss.backward()
        for p in params:
            UPDATE
        losses.append(loss.item())
"""

SNIPPETS = {
    "data_plus_equals_minus_lr_grad": MLP.replace("UPDATE", "p.data += -0.5 * p.grad") + """
        result = losses, params, [p.requires_grad for p in params], [p.is_leaf for p in params]
    """,
    "data_minus_equals_lr_grad": MLP.replace("UPDATE", "p.data -= 0.5 * p.grad") + """
        result = losses, params
    """,
    "grad_data_and_in_place_scaling": """
        w = torch.tensor(A, requires_grad=True)
        (w * w).sum().backward()
        g = w.grad.data
        w.data *= 0.1                      # the lectures' init scaling
        w.data += g                        # NumPy in place, the Tensor as operand
        result = torch.as_tensor(g), w, w.requires_grad, w.grad_fn is None
    """,
    "data_values_print_and_shape": """
        w = torch.tensor(A, requires_grad=True)
        text = str(w.data)
        result = (torch.as_tensor(w.data), tuple(w.data.shape), "0.1257" in text or "0.12573" in text,
                  w.data.sum().item() == w.sum().item())
    """,
    "size_equality": """
        x = torch.zeros(2, 3)
        result = (x.shape == torch.Size([2, 3]), x.size() == torch.Size([2, 3]), x.shape == (2, 3),
                  torch.Size([2, 3]).numel(), x.size(1), isinstance(x.size(), tuple), list(x.size()),
                  torch.Size([2, 3]) == torch.Size((2, 3)), x.shape != torch.Size([3, 2]))
    """,
    "tensor_of_floats": """
        t = torch.Tensor([[1.5, 2.0], [3.0, 4.25]])
        result = t, t.dtype, torch.Tensor(np.array([1.5, 2.5], np.float32)).dtype
    """,
    "tolist": """
        result = (torch.tensor([[1.0, 2.5], [3.0, 4.0]]).tolist(), torch.arange(4).tolist(),
                  type(torch.arange(4).tolist()[0]).__name__, torch.tensor(3.5).tolist())
    """,
    "one_hot_float": """
        y = torch.tensor([0, 2, 1, 2])
        oh = F.one_hot(y, num_classes=3).float()
        xenc = F.one_hot(y).float() @ torch.tensor(W[:3])     # the bigram lecture's xenc @ W
        result = oh, oh.dtype, xenc
    """,
    "allclose_and_all_item": """
        a = torch.tensor(A)
        result = (torch.allclose(a, a + 1e-9), torch.allclose(a, a + 1.0), torch.all(a > -10).item(),
                  torch.all(a > 0).item(), type(torch.all(a > 0).item()).__name__, (a == a).all().item())
    """,
}


@pytest.mark.parametrize("name", sorted(SNIPPETS))
def test_learner_spellings(name, tmp_path):
    _check(SNIPPETS[name], tmp_path)


def test_data_assigned_a_tensor_stops_at_the_next_op_with_a_clear_error(tmp_path):
    code = MLP.replace("UPDATE", "p.data = p.data - 0.5 * p.grad") + "\n        result = losses\n"
    ours, theirs = run_both(code, tmp_path)
    assert isinstance(theirs, list) and len(theirs) == 5  # PyTorch trains
    assert isinstance(ours, TypeError)  # never a silent difference: the next op refuses
    assert ".data is a Tensor" in str(ours) and "t.data -= lr * t.grad" in str(ours)


def test_ndarray_in_place_with_a_tensor_writes_the_arrays_values():
    a = np.ones((2, 3), np.float32)
    t = tg.tensor(np.arange(6, dtype=np.float32).reshape(2, 3), requires_grad=True)
    before = a
    a += t
    a *= tg.tensor(2.0)
    assert a is before and a.dtype == np.float32
    np.testing.assert_array_equal(a, (1 + np.arange(6, dtype=np.float32).reshape(2, 3)) * 2)
    # an ndarray on the left of a plain operator still gives the Tensor's result, in the graph
    out = np.ones(3, np.float32) - tg.tensor([1.0, 2.0, 3.0], requires_grad=True)
    assert isinstance(out, tg.Tensor) and out.grad_fn is not None
    with pytest.raises(TypeError):
        np.exp(t)  # other NumPy functions of a Tensor: use t.exp() (or np.exp(t.numpy()))


def test_torch_tensor_of_integers_keeps_the_integer_dtype_here(tmp_path):
    """Different on purpose (docs/pytorch.md): Tensor(data) infers the dtype as torch.tensor does, so
    Tensor([1, 2]) is int64 (PyTorch's legacy torch.Tensor([1, 2]) makes float32); floats agree."""
    ours, theirs = run_both("result = torch.Tensor([1, 2]), torch.tensor([1, 2])", tmp_path)
    assert theirs[0].dtype == np.float32 and theirs[1].dtype == np.int64
    assert ours[0].dtype == np.int64 and ours[1].dtype == np.int64
    np.testing.assert_array_equal(ours[0], theirs[0])
