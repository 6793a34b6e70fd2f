"""Tests of tinygrad_mnist.viz: the DOT text must match the recorded DAG, and drawing must not touch it."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from tinygrad_mnist import Tensor, viz
from tinygrad_mnist.engine import walk

HAVE_DOT = shutil.which("dot") is not None
ROOT = Path(__file__).resolve().parent.parent

# ---------------------------------------------------------------------------
# a tiny DOT reader: node declarations and edges of the graph viz emits
# ---------------------------------------------------------------------------

_ATTR = re.compile(r'(\w+)=("(?:[^"\\]|\\.)*"|<.*>|[^\s\]]+)')
_NODE = re.compile(r"^\s*(\w+) \[(.*)\]$")
_EDGE = re.compile(r"^\s*(\w+) -> (\w+)(?: \[(.*)\])?$")


def _attrs(text: str) -> dict:
    return {k: v[1:-1] if v.startswith('"') else v for k, v in _ATTR.findall(text or "")}


def parse(dot):
    """(nodes: id -> attrs, edges: list of (src, dst, attrs)), legend left out."""
    nodes, edges = {}, []
    for line in dot.source.splitlines():
        m = _EDGE.match(line)
        if m:
            edges.append((m.group(1), m.group(2), _attrs(m.group(3))))
            continue
        m = _NODE.match(line)
        if m and m.group(1) not in ("graph", "node", "edge", "legend"):
            nodes[m.group(1)] = _attrs(m.group(2))
    return nodes, edges


def label(nodes, nid) -> list:
    return nodes[nid]["label"].split("\\n")


def edge_set(edges) -> set:
    return {(s, d) for s, d, _ in edges}


def param(*shape, seed=0):
    return Tensor(np.random.default_rng(seed).standard_normal(shape).astype(np.float32), requires_grad=True)


# ---------------------------------------------------------------------------
# structure
# ---------------------------------------------------------------------------


def test_diamond_exact_nodes_edges_and_labels():
    a = Tensor([1.0, 2.0], requires_grad=True)
    b = a.exp()
    c = a.log()
    d = b + c
    dot = viz.draw_graph(d, names={"a": a, "b": b, "c": c}, output_name="d")
    nodes, edges = parse(dot)
    assert isinstance(dot, viz.graphviz.Digraph)
    ida, idb, idc, idd = (dot.node_id(t) for t in (a, b, c, d))
    assert [ida, idb, idc, idd] == ["t0", "t1", "t2", "t3"]  # topological, arguments in order
    assert set(nodes) == {"t0", "t1", "t2", "t3", "op1", "op2", "op3"}
    assert len(edges) == 7
    assert edge_set(edges) == {("t0", "op1"), ("op1", "t1"), ("t0", "op2"), ("op2", "t2"),
                               ("t1", "op3"), ("t2", "op3"), ("op3", "t3")}
    assert [label(nodes, f"op{i}")[0] for i in (1, 2, 3)] == ["Exp", "Log", "Add"]
    assert label(nodes, "t0") == ["a", "(2,) float32"]
    assert label(nodes, "t3") == ["d", "(2,) float32"]
    assert nodes["t0"]["shape"] == "box" and nodes["op1"]["shape"] == "ellipse"


def test_fan_out_reuse_is_one_edge_with_multiplicity():
    x = Tensor([[1.0, 2.0, 3.0]], requires_grad=True)
    y = x * x
    nodes, edges = parse(viz.draw_graph(y, names={"x": x}, output_name="y"))
    assert set(nodes) == {"t0", "op1", "t1"}
    assert len(edges) == 2
    (e,) = [e for e in edges if e[:2] == ("t0", "op1")]
    assert e[2]["label"] == "×2"
    assert label(nodes, "t0") == ["x", "(1, 3) float32"]
    assert label(nodes, "t1") == ["y", "(1, 3) float32"]


def test_shared_subexpression_and_dtype_and_scalar_shape():
    x = Tensor(np.arange(6, dtype=np.float64).reshape(2, 3), requires_grad=True)
    h = x.exp()
    out = (h * h + h).sum()  # h read by Mul (twice) and by Add
    nodes, edges = parse(viz.draw_graph(out))
    tensors = [n for n in nodes if n.startswith("t")]
    ops = [n for n in nodes if n.startswith("op")]
    assert len(tensors) == 5 and len(ops) == 4
    assert len(edges) == 4 + 5  # one op -> tensor edge per op; x->Exp, h->Mul (x2), h*h->Add, h->Add, ->Sum
    assert label(nodes, "t0") == ["leaf", "(2, 3) float64"]
    assert label(nodes, f"t{len(tensors) - 1}") == ["output", "scalar float64"]
    assert sum(1 for s, d, a in edges if a.get("label") == "×2") == 1


def test_ids_are_stable_and_deterministic():
    def build():
        w = Tensor(np.ones((2, 2), np.float32), requires_grad=True)
        return (w @ w.T).relu().sum(), w
    (l1, w1), (l2, w2) = build(), build()
    d1, d2 = viz.draw_graph(l1, {"w": w1}), viz.draw_graph(l2, {"w": w2})
    assert d1.source == d2.source
    assert d1.node_id(w1) == d1.node_id("w") == "t0"
    assert d1.node_id(w2) is None  # identity, not equality


def test_parameter_names_from_dict_and_colour():
    w = param(3, 4)
    b = param(3, seed=1)
    x = Tensor(np.ones((2, 4), np.float32))
    out = (x @ w.T + b).sum()
    dot = viz.draw_graph(out, params={"fc1.weight": w, "fc1.bias": b}, output_name="loss")
    nodes, _ = parse(dot)
    assert label(nodes, dot.node_id(w)) == ["fc1.weight", "(3, 4) float32"]
    assert label(nodes, dot.node_id(b)) == ["fc1.bias", "(3,) float32"]
    assert nodes[dot.node_id(w)]["fillcolor"] == viz.COLORS["param"]
    assert label(nodes, dot.node_id(x)) == ["const", "(2, 4) float32"]
    assert label(nodes, dot.node_id(out))[0] == "loss"


def test_unused_parameter_is_noted():
    w, unused = param(2), param(2, seed=1)
    dot = viz.draw_graph((w * w).sum(), {"w": w, "extra.weight": unused})
    assert "parameters not in this graph: extra.weight" in dot.source


def test_inline_scalar_constants():
    x = Tensor([1.0, 2.0], requires_grad=True)
    y = 1.0 - x * 2.0
    nodes, edges = parse(viz.draw_graph(y))
    assert len(nodes) == 5 and len(edges) == 4
    assert sorted(label(nodes, n)[0] for n in nodes if n.startswith("op")) == ["Mul(·, 2)", "Sub(1, ·)"]
    nodes, edges = parse(viz.draw_graph(y, inline_constants=False))
    assert len(nodes) == 7 and len(edges) == 6


def test_multiple_outputs_named_by_dict():
    x = Tensor([1.0, -2.0], requires_grad=True)
    a, b = x.relu(), x.exp()
    dot = viz.draw_graph({"a": a, "b": b})
    nodes, _ = parse(dot)
    assert label(nodes, dot.node_id(a))[0] == "a" and label(nodes, dot.node_id(b))[0] == "b"
    nodes, _ = parse(viz.draw_graph([a, b]))
    assert {label(nodes, n)[0] for n in nodes if n.startswith("t")} >= {"output 0", "output 1"}


def test_rankdir_and_argument_checks():
    x = Tensor([1.0], requires_grad=True)
    assert "rankdir=TB" in viz.draw_graph(x * x, rankdir="TB").source
    assert "rankdir=LR" in viz.draw_graph(x * x).source
    with pytest.raises(ValueError, match="rankdir"):
        viz.draw_graph(x * x, rankdir="XY")
    with pytest.raises(ValueError, match="collapse"):
        viz.draw_graph(x * x, collapse="layers")
    with pytest.raises(TypeError):
        viz.draw_graph(np.ones(3))
    with pytest.raises(TypeError, match="params"):
        viz.draw_graph(x * x, params=[x])


def test_leaf_output_and_no_grad_graph():
    x = Tensor([1.0, 2.0])
    nodes, edges = parse(viz.draw_graph(x * 3.0))  # no grad: nothing recorded, one leaf
    assert list(nodes) == ["t0"] and edges == []


def test_show_values_summary():
    x = Tensor(np.array([1.0, 2.0, 3.0, np.nan], np.float32), requires_grad=True)
    dot = viz.draw_graph(x * x, names={"x": x}, show_values=True)
    lines = label(parse(dot)[0], dot.node_id(x))
    assert "mean 2 std 0.8165" in lines and "min 1 max 3" in lines and "NaN×1" in lines
    s = Tensor(2.5, requires_grad=True)
    assert "value 2.5" in label(parse(viz.draw_graph(s * s, names={"s": s}, show_values=True))[0], "t0")


# ---------------------------------------------------------------------------
# gradients: norms, colours, legend
# ---------------------------------------------------------------------------


def test_gradient_status_colours_and_legend():
    zero, bad, big, ok = (Tensor(np.full(3, v, np.float32), requires_grad=True) for v in (1.0, 0.0, 1.0, 2.0))
    loss = (zero * 0.0).sum() + bad.sqrt().sum() + (big * 1e6).sum() + (ok * ok).sum()
    with np.errstate(divide="ignore"):  # sqrt'(0) = inf, on purpose
        loss.backward(retain_graph=True)
    names = {"zero": zero, "bad": bad, "big": big, "ok": ok}
    dot = viz.draw_graph(loss, names=names)
    nodes, _ = parse(dot)
    fill = {n: nodes[dot.node_id(t)]["fillcolor"] for n, t in names.items()}
    assert fill == {"zero": viz.COLORS["zero"], "bad": viz.COLORS["nonfinite"], "big": viz.COLORS["exploding"],
                    "ok": viz.COLORS["leaf"]}
    assert label(nodes, dot.node_id(zero))[-1] == "‖grad‖ 0 (zero)"
    assert label(nodes, dot.node_id(bad))[-1].endswith("(NaN/inf)")
    assert label(nodes, dot.node_id(big))[-1] == f"‖grad‖ {np.sqrt(3) * 1e6:.4g} (exploding)"
    assert label(nodes, dot.node_id(ok))[-1] == f"‖grad‖ {np.linalg.norm([4.0] * 3):.4g}"
    assert "legend [label=<" in dot.source and "gradient has NaN / inf" in dot.source
    # a higher threshold: not exploding any more; show_grads=False: no norms, no colours, no legend
    dot = viz.draw_graph(loss, names=names, grad_threshold=1e7)
    assert parse(dot)[0][dot.node_id(big)]["fillcolor"] == viz.COLORS["leaf"]
    dot = viz.draw_graph(loss, names=names, show_grads=False)
    assert "‖grad‖" not in dot.source and "gradient has NaN" not in dot.source
    assert "legend [label=<" in dot.source  # a legend by default
    assert "legend" not in viz.draw_graph(loss, names=names, legend=False).source


def test_relu_dead_unit_gives_zero_gradient_colour():
    w = Tensor([-1.0, -2.0], requires_grad=True)
    loss = w.relu().sum()
    loss.backward(retain_graph=True)
    dot = viz.draw_graph(loss, {"w": w})
    assert parse(dot)[0][dot.node_id(w)]["fillcolor"] == viz.COLORS["zero"]


# ---------------------------------------------------------------------------
# highlight, backward order
# ---------------------------------------------------------------------------


def _two_branches():
    w1, w2 = param(3, seed=1), param(3, seed=2)
    x = Tensor(np.ones(3, np.float32))
    loss = ((x * w1).relu() + (x * w2).exp()).sum()
    return loss, w1, w2, x


def test_highlight_path_from_parameter_to_output():
    loss, w1, w2, x = _two_branches()
    dot = viz.draw_graph(loss, {"w1": w1, "w2": w2}, output_name="loss", highlight="w1")
    nodes, edges = parse(dot)
    hl = viz.COLORS["highlight"]
    lit = {n for n, a in nodes.items() if a.get("color") == hl}
    t = dot.node_id
    # w1 -> Mul -> t -> Relu -> t -> Add -> t -> Sum -> loss: 5 tensors and 4 ops
    assert t(w1) in lit and t(loss) in lit and t(w2) not in lit and t(x) not in lit
    assert len(lit) == 9
    lit_edges = {(s, d) for s, d, a in edges if a.get("color") == hl}
    assert len(lit_edges) == 8
    assert all(s in lit and d in lit for s, d in lit_edges)
    assert not any(t(w2) in e or t(x) in e for e in lit_edges)
    assert "path to the output" in dot.source  # the legend explains the colour
    # by tensor, the same picture
    assert viz.draw_graph(loss, {"w1": w1, "w2": w2}, output_name="loss", highlight=w1).source == dot.source
    with pytest.raises(ValueError, match="known names"):
        viz.draw_graph(loss, {"w1": w1}, highlight="nope")


def test_backward_order_is_reverse_toposort():
    w1, w2 = param(4, 3, seed=1), param(2, 4, seed=2)
    x = Tensor(np.ones((5, 3), np.float32))
    h = (x @ w1.T).tanh()
    loss = ((h @ w2.T) * (h @ w2.T)).mean() + (w1 * w1).sum() * 0.01
    dot = viz.draw_graph(loss, {"w1": w1, "w2": w2}, backward_order=True, max_nodes=None, expand=True)
    nodes, _ = parse(dot)
    visit = [t for t in reversed(walk([loss], constants=False)) if t.grad_fn is not None]
    assert len(visit) == sum(1 for n in nodes if n.startswith("op"))
    for k, t in enumerate(visit, 1):
        nid = dot.node_id(t).replace("t", "op", 1)
        assert label(nodes, nid)[0].startswith(f"[{k}] {t.grad_fn.name}")


# ---------------------------------------------------------------------------
# readable at scale: modules and the node limit
# ---------------------------------------------------------------------------


class _Linear:
    def __init__(self, n_in, n_out, seed):
        self.weight = param(n_out, n_in, seed=seed)
        self.bias = param(n_out, seed=seed + 100)

    def __call__(self, x):
        return x @ self.weight.T + self.bias


class _ReLU:
    def __call__(self, x):
        return x.relu()


class _Net:
    """Duck-typed like nn.Module: named_parameters() and named_modules(), no import of nn."""

    def __init__(self):
        self.fc1, self.act, self.fc2 = _Linear(6, 5, 1), _ReLU(), _Linear(5, 3, 2)

    def named_modules(self):
        return [("", self), ("fc1", self.fc1), ("act", self.act), ("fc2", self.fc2)]

    def named_parameters(self):
        return [("fc1.weight", self.fc1.weight), ("fc1.bias", self.fc1.bias),
                ("fc2.weight", self.fc2.weight), ("fc2.bias", self.fc2.bias)]

    def __call__(self, x):
        return self.fc2(self.act(self.fc1(x)))


def _net_loss(net, trace=False):
    x = Tensor(np.random.default_rng(3).random((4, 6), dtype=np.float32))
    if trace:
        with viz.trace_modules(net) as tr:
            logits = net(x)
    else:
        tr, logits = None, net(x)
    loss = logits.cross_entropy(np.array([0, 1, 2, 0]))
    return loss, tr, x


def test_collapse_modules_inferred_from_parameter_names():
    net = _Net()
    loss, _, x = _net_loss(net)
    full_nodes, _ = parse(viz.draw_graph(loss, net, collapse=None))
    dot = viz.draw_graph(loss, net, output_name="loss")  # collapse="modules" is the default
    nodes, edges = parse(dot)
    assert dot.info["modules"] == ["fc1", "fc2"] and dot.info["collapsed"] == ["fc1", "fc2"]
    assert "subgraph cluster_fc1 {" in dot.source and "subgraph cluster_fc2 {" in dot.source
    assert label(nodes, "mod_fc1") == ["fc1 · _Linear", "(4, 6) → (4, 5)", "35 params · 140 B"]
    assert label(nodes, "mod_fc2") == ["fc2 · _Linear", "(4, 5) → (4, 3)", "18 params · 72 B"]
    # each Linear's Permute, Matmul and Add and their two inner tensors become one node: 2 x 5 -> 2 x 1
    assert len(nodes) == len(full_nodes) - 8
    assert ("t0", "mod_fc1") in edge_set(edges) and dot.node_id(x) == "t0"
    for name in ("fc1.weight", "fc1.bias"):  # parameters sit beside their module's box, feeding it
        assert (dot.node_id(name), "mod_fc1") in edge_set(edges)
    block = dot.source.split("subgraph cluster_fc1 {")[1].split("}")[0]
    assert f"\t\t{dot.node_id('fc1.weight')} [" in block and "\t\tmod_fc1 [" in block
    # the ReLU between the layers and the loss stay visible; the graph's total is in its label
    labels = [label(nodes, n)[0] for n in nodes if not n.startswith(("t", "mod_"))]
    assert labels == ["Relu", "cross_entropy"]
    assert dot.info["params"] == 53 and "53 parameters · 212 B" in dot.source


def test_collapse_with_expand_draws_chosen_module_in_full():
    net = _Net()
    loss, _, _ = _net_loss(net)
    dot = viz.draw_graph(loss, net, expand=["fc2"])
    nodes, _ = parse(dot)
    assert "mod_fc1" in nodes and "mod_fc2" not in nodes
    block = dot.source.split("subgraph cluster_fc2 {")[1].split("subgraph")[0]
    assert block.count("shape=ellipse") == 3  # Permute, Matmul, Add drawn inside the cluster
    assert 'label="fc2 · _Linear"' in block
    dot = viz.draw_graph(loss, net, expand=True)
    assert not [n for n in parse(dot)[0] if n.startswith(("mod_", "call"))]
    with pytest.raises(ValueError, match="unknown module"):
        viz.draw_graph(loss, net, expand=["fc9"])


def test_trace_modules_records_calls_and_restores_classes():
    net = _Net()
    classes = {n: type(m) for n, m in net.named_modules()}
    loss, trace, _ = _net_loss(net, trace=True)
    assert {n: type(m) for n, m in net.named_modules()} == classes
    assert [c["name"] for c in trace.calls] == ["fc1", "act", "fc2"]
    assert [c["cls"] for c in trace.calls] == ["_Linear", "_ReLU", "_Linear"]
    assert [c["parent"] for c in trace.calls] == [None, None, None]
    dot = viz.draw_graph(loss, net, trace=trace)
    nodes, _ = parse(dot)
    assert dot.info["collapsed"] == ["act", "fc1", "fc2"]
    assert label(nodes, "mod_act") == ["act · _ReLU", "(4, 5) → (4, 5)"]
    assert "subgraph cluster_act" not in dot.source  # no parameters: no frame needed
    # restored on error too
    with pytest.raises(RuntimeError), viz.trace_modules(net):
        raise RuntimeError("boom")
    assert {n: type(m) for n, m in net.named_modules()} == classes


def test_trace_modules_with_library_nn():
    from tinygrad_mnist import nn
    model = nn.MLP([6, 5, 3], activation="relu")
    classes = [type(m) for m in model.modules()]
    x = Tensor(np.ones((2, 6), np.float32))
    with viz.trace_modules(model) as trace:
        loss = model(x).cross_entropy(np.array([0, 1]))
    assert [type(m) for m in model.modules()] == classes
    assert [c["cls"] for c in trace.calls] == ["Linear", "ReLU", "Linear"]
    dot = viz.draw_graph(loss, model, trace=trace)
    assert dot.info["collapsed"] == ["0", "1", "2"]
    inferred = viz.draw_graph(loss, model)
    assert inferred.info["collapsed"] == ["0", "2"]  # Linear layers only; the ReLU op stays an op


def test_conv_module_is_one_box_fed_by_the_image():
    w, b = param(4, 2, 3, 3), param(4, seed=1)
    x = Tensor(np.ones((1, 2, 6, 6), np.float32), requires_grad=True)
    out = x.conv2d(w, b, padding=1).relu().sum()
    dot = viz.draw_graph(out, {"conv.weight": w, "conv.bias": b}, names={"x": x})
    nodes, edges = parse(dot)
    assert label(nodes, "mod_conv") == ["conv", "(1, 2, 6, 6) → (1, 4, 6, 6)", "76 params · 304 B"]
    assert sorted(label(nodes, n)[0] for n in nodes if n.startswith("op")) == ["Relu", "Sum"]
    assert (dot.node_id(x), "mod_conv") in edge_set(edges)
    # without modules, the conv2d call is one node; expanded, its primitive (one fused op: pad, im2col,
    # GEMM and bias inside)
    nodes, _ = parse(viz.draw_graph(out, {"conv.weight": w, "conv.bias": b}, collapse=None))
    (call,) = [n for n in nodes if n.startswith("call")]
    assert label(nodes, call) == ["conv2d", "(1, 2, 6, 6) → (1, 4, 6, 6)"]
    dot = viz.draw_graph(out, {"conv.weight": w, "conv.bias": b}, collapse=None, expand=["conv2d"])
    nodes, _ = parse(dot)
    assert sorted(label(nodes, n)[0] for n in nodes if n.startswith("op")) == ["Conv2d", "Relu", "Sum"]
    assert 'label=conv2d' in dot.source.split("subgraph cluster_call")[1]


def test_parameters_without_module_names_draw_no_boxes():
    x = Tensor([1.0], requires_grad=True)
    w = Tensor([2.0], requires_grad=True)
    dot = viz.draw_graph(x * w, params={"w": w})  # a name without a dot: no module, nothing to say about it
    assert dot.info["modules"] == [] and "module" not in dot.source.split("legend")[0]


def _chain(n):
    x = Tensor([1.0, 2.0], requires_grad=True)
    y = x
    for k in range(n):
        y = y * 1.001 if k % 2 else y + 0.5
    return y.sum(), x


def test_node_limit_summarizes_a_long_chain():
    loss, x = _chain(300)
    dot = viz.draw_graph(loss, {"x": x}, output_name="loss", max_nodes=50)
    nodes, edges = parse(dot)
    assert len(nodes) <= 55
    more = label(nodes, "more")
    hidden = dot.info["hidden_ops"]
    assert more[0] == f"… {hidden} more ops, {hidden} tensors"
    assert "Add×" in more[1] and "Mul×" in more[1]
    shown_ops = sum(1 for n in nodes if n.startswith("op"))
    assert shown_ops + hidden == 301  # 300 chain ops and the sum
    assert dot.node_id(x) == "t0" and dot.node_id(loss) in nodes  # both ends are kept
    assert sum(1 for s, d, _ in edges if d == "more") == 1 and sum(1 for s, d, _ in edges if s == "more") == 1
    # the full graph, for comparison
    assert len(parse(viz.draw_graph(loss, max_nodes=None))[0]) == 1 + 2 * 301


def _acyclic(nodes, edges) -> bool:
    indeg = dict.fromkeys(nodes, 0)
    for _, d, _ in edges:
        indeg[d] += 1
    ready = [n for n, k in indeg.items() if k == 0]
    seen = 0
    while ready:
        n = ready.pop()
        seen += 1
        for s, d, _ in edges:
            if s == n:
                indeg[d] -= 1
                if indeg[d] == 0:
                    ready.append(d)
    return seen == len(nodes)


@pytest.mark.parametrize("collapse", [None, "modules"])
def test_node_limit_keeps_the_picture_a_dag(collapse):
    net = _Net()
    loss, _, _ = _net_loss(net)
    total = len(parse(viz.draw_graph(loss, net, collapse=collapse, max_nodes=None))[0])
    for limit in range(3, total + 2):
        dot = viz.draw_graph(loss, net, collapse=collapse, max_nodes=limit, highlight="fc1.weight")
        nodes, edges = parse(dot)
        assert len(nodes) <= limit
        assert ("more" in nodes) == (limit < total)
        assert _acyclic(nodes, edges), limit
        assert dot.node_id(loss) in nodes


def test_node_limit_not_applied_to_small_graphs():
    loss, x = _chain(10)
    assert "more" not in parse(viz.draw_graph(loss, max_nodes=200))[0]
    with pytest.raises(ValueError, match="max_nodes"):
        viz.draw_graph(loss, max_nodes=1)


# ---------------------------------------------------------------------------
# drawing changes nothing
# ---------------------------------------------------------------------------


def _mlp_loss(seed=0):
    w1, w2 = param(5, 4, seed=seed), param(3, 5, seed=seed + 1)
    x = Tensor(np.random.default_rng(9).random((6, 4), dtype=np.float32))
    loss = (x @ w1.T).relu().__matmul__(w2.T).cross_entropy(np.array([0, 1, 2, 0, 1, 2]))
    return loss, {"fc1.weight": w1, "fc2.weight": w2}


def _draw_everything(loss, params):
    for kw in ({}, {"collapse": "modules"}, {"show_values": True, "backward_order": True, "highlight": "fc1.weight"},
               {"max_nodes": 5}, {"collapse": "modules", "expand": True, "rankdir": "TB"}):
        viz.draw_graph(loss, params, output_name="loss", **kw)


def test_drawing_does_not_change_graph_or_gradients():
    ref_loss, ref_params = _mlp_loss()
    ref_loss.backward()
    loss, params = _mlp_loss()
    before = [(t, t.grad_fn, t.grad_fn.inputs if t.grad_fn else None) for t in walk([loss])]
    _draw_everything(loss, params)
    after = [(t, t.grad_fn, t.grad_fn.inputs if t.grad_fn else None) for t in walk([loss])]
    assert len(before) == len(after)
    for (t0, c0, p0), (t1, c1, p1) in zip(before, after):
        assert t0 is t1 and c0 is c1 and (p0 == p1 if p0 is None else all(a is b for a, b in zip(p0, p1)))
    assert all(p.grad is None for p in params.values())
    loss.backward(retain_graph=True)  # the graph still backpropagates, to the same gradients
    for name in params:
        np.testing.assert_array_equal(params[name].grad.data, ref_params[name].grad.data)
    grads = {n: p.grad for n, p in params.items()}
    arrays = {n: p.grad.data.copy() for n, p in params.items()}
    _draw_everything(loss, params)  # drawing with gradients shown leaves .grad alone
    for name, p in params.items():
        assert p.grad is grads[name]
        np.testing.assert_array_equal(p.grad.data, arrays[name])
    loss.backward()  # and the retained graph can be backpropagated again: gradients accumulate
    for name in params:
        np.testing.assert_allclose(params[name].grad.data, 2 * ref_params[name].grad.data, rtol=1e-6)


def test_released_graph_keeps_its_structure():
    loss, params = _mlp_loss()
    retained = viz.draw_graph(loss, params, output_name="loss", show_grads=False, show_values=False)
    loss.backward()  # frees what ops saved, keeps names, shapes and edges
    for kw in ({}, {"backward_order": True}, {"collapse": None}, {"show_values": True}, {"max_nodes": 5}):
        dot = viz.draw_graph(loss, params, output_name="loss", **kw)
        nodes, edges = parse(dot)
        full = parse(viz.draw_graph(loss, params, output_name="loss", **{**kw, "show_grads": False}))
        assert len(nodes) == len(full[0]) and len(edges) == len(full[1])
    nodes, edges = parse(viz.draw_graph(loss, params, output_name="loss", show_grads=False))
    assert (len(nodes), len(edges)) == tuple(len(p) for p in parse(retained))
    dot = viz.draw_graph(loss, params, output_name="loss")
    nodes, _ = parse(dot)
    for name, p in params.items():  # the whole step, with gradient norms
        assert label(nodes, dot.node_id(name))[-1] == f"‖grad‖ {np.linalg.norm(p.grad.data):.4g}"
    assert "drawn after backward()" in dot.source


def test_partially_released_graph():
    x = Tensor([1.0, 2.0], requires_grad=True)
    h = x.exp()
    h.sum().backward()  # releases Exp; its structure stays
    y = (h * 2.0).sum()
    nodes, edges = parse(viz.draw_graph(y, names={"x": x, "h": h}, backward_order=True))
    assert [label(nodes, n)[0] for n in ("op1", "op3", "op4")] == ["[3] Exp", "[2] Mul(·, 2)", "[1] Sum"]
    assert len(nodes) == 7 and len(edges) == 6


# ---------------------------------------------------------------------------
# rendering
# ---------------------------------------------------------------------------


def _small_dot():
    x = Tensor([1.0, 2.0], requires_grad=True)
    return viz.draw_graph((x * x).sum(), names={"x": x}, output_name="loss")


@pytest.mark.skipif(not HAVE_DOT, reason="Graphviz's dot program is not installed")
@pytest.mark.parametrize("ext,magic", [("svg", b"<svg"), ("png", b"\x89PNG"), ("pdf", b"%PDF")])
def test_render_formats_by_extension(tmp_path, ext, magic):
    path = viz.render_graph(_small_dot(), tmp_path / "sub" / f"graph.{ext}")
    data = path.read_bytes()
    assert magic in data[:400]
    assert sorted(p.name for p in path.parent.iterdir()) == [f"graph.{ext}"]  # no temp files left
    umask = os.umask(0)
    os.umask(umask)
    assert path.stat().st_mode & 0o777 == 0o666 & ~umask


@pytest.mark.skipif(not HAVE_DOT, reason="Graphviz's dot program is not installed")
def test_render_replaces_existing_file_and_save_alias(tmp_path):
    path = tmp_path / "g.svg"
    path.write_text("old")
    viz.save(_small_dot(), path)
    assert "<svg" in path.read_text()


def test_render_dot_extension_needs_no_graphviz(tmp_path, monkeypatch):
    monkeypatch.setenv("PATH", "")
    dot = _small_dot()
    path = viz.render_graph(dot, tmp_path / "g.dot")
    assert path.read_text() == dot.source
    with pytest.raises(ValueError, match="extension"):
        viz.render_graph(dot, tmp_path / "g")
    with pytest.raises(ValueError, match="unsupported"):
        viz.render_graph(dot, tmp_path / "g.docx")


def _check_missing(err, tmp_path, dot):
    e = err.value
    assert isinstance(e, RuntimeError)
    msg = str(e)
    assert "`dot` program was not found" in msg
    for cmd in ("apt-get install graphviz", "brew install graphviz", "conda install graphviz"):
        assert cmd in msg
    assert e.dot_path == tmp_path / "graph.dot" and str(e.dot_path) in msg
    assert e.dot_path.read_text() == dot.source
    assert not (tmp_path / "graph.svg").exists()


def test_missing_dot_empty_path(tmp_path, monkeypatch):
    monkeypatch.setenv("PATH", "")
    dot = _small_dot()
    with pytest.raises(viz.GraphvizNotFound) as err:
        viz.render_graph(dot, tmp_path / "graph.svg")
    _check_missing(err, tmp_path, dot)


def test_missing_dot_patched_which(tmp_path, monkeypatch):
    monkeypatch.setattr(shutil, "which", lambda name, *a, **k: None)
    dot = _small_dot()
    with pytest.raises(viz.GraphvizNotFound) as err:
        viz.render_graph(dot, tmp_path / "graph.svg")
    _check_missing(err, tmp_path, dot)


def test_missing_dot_found_by_which_but_not_runnable(tmp_path, monkeypatch):
    # which() says yes, but graphviz cannot start it: graphviz.ExecutableNotFound is turned into the same error
    monkeypatch.setattr(shutil, "which", lambda name, *a, **k: "/usr/bin/dot")
    monkeypatch.setenv("PATH", str(tmp_path / "empty"))
    dot = _small_dot()
    with pytest.raises(viz.GraphvizNotFound) as err:
        viz.render_graph(dot, tmp_path / "graph.svg")
    _check_missing(err, tmp_path, dot)


# ---------------------------------------------------------------------------
# the example script
# ---------------------------------------------------------------------------


def _run_example(out, env=None):
    return subprocess.run([sys.executable, str(ROOT / "examples" / "draw_graph.py"), "--out", str(out)],
                          capture_output=True, text=True, env=env, cwd=ROOT)


@pytest.mark.skipif(not HAVE_DOT, reason="Graphviz's dot program is not installed")
def test_example_writes_svgs(tmp_path):
    r = _run_example(tmp_path)
    assert r.returncode == 0, r.stderr
    names = sorted(p.name for p in tmp_path.iterdir())
    assert names == ["expression.svg", "expression_backward.svg", "mlp_step.svg", "mlp_step_backward.svg",
                     "mlp_step_full.svg"]


def test_example_without_graphviz_writes_dot_files(tmp_path):
    env = {**os.environ, "PATH": ""}
    r = _run_example(tmp_path, env)
    assert r.returncode == 0, r.stderr
    assert sorted(p.suffix for p in tmp_path.iterdir()) == [".dot"] * 5
    assert "apt-get install graphviz" in r.stderr
