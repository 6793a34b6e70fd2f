"""viz features of issue 10: functional calls, names, depth and folding, parameter totals, saved memory,
backward and higher-order graphs, tooltips and notebook display, text that fits its box."""

from __future__ import annotations

import json
import shutil
import subprocess

import numpy as np
import pytest
from test_viz import edge_set, label, param, parse

from tinygrad_mnist import Tensor, grad, manual_seed, nn, viz
from tinygrad_mnist.models import CNN

HAVE_DOT = shutil.which("dot") is not None
needs_dot = pytest.mark.skipif(not HAVE_DOT, reason="Graphviz's dot program is not installed")


# ---------------------------------------------------------------------------
# models
# ---------------------------------------------------------------------------


class Block(nn.Module):
    """Linear -> ReLU -> Linear plus the skip."""

    def __init__(self, d):
        self.fc1, self.act, self.fc2 = nn.Linear(d, d), nn.ReLU(), nn.Linear(d, d)

    def forward(self, x):
        return self.fc2(self.act(self.fc1(x))) + x


class ResMLP(nn.Module):
    def __init__(self, d=16, n=12, n_in=8, n_out=3):
        self.inp = nn.Linear(n_in, d)
        self.blocks = nn.Sequential(*[Block(d) for _ in range(n)])
        self.head = nn.Linear(d, n_out)

    def forward(self, x):
        return self.head(self.blocks(self.inp(x).relu()))


def res_step(n=12, backward=True):
    manual_seed(0)
    model = ResMLP(n=n)
    x = Tensor(np.random.default_rng(0).random((4, 8), dtype=np.float32))
    with viz.trace_modules(model) as trace:
        loss = model(x).cross_entropy(np.array([0, 1, 2, 0]))
    if backward:
        loss.backward()
    return model, trace, x, loss


def cnn_step(batch=4, backward=True, retain=False):
    manual_seed(0)
    model = CNN(channels=(4, 8), hidden=16)
    x = Tensor(np.random.default_rng(1).random((batch, 784), dtype=np.float32))
    labels = Tensor(np.arange(batch) % 10)
    with viz.trace_modules(model) as trace:
        loss = model(x).cross_entropy(labels)
    if backward:
        loss.backward(retain_graph=retain)
    return model, trace, x, labels, loss


def kinds(nodes) -> dict:
    out = {}
    for n in nodes:
        k = n.rstrip("0123456789_").split("_")[0]
        out[k] = out.get(k, 0) + 1
    return out


# ---------------------------------------------------------------------------
# 1. functional calls as one node
# ---------------------------------------------------------------------------


def test_softmax_call_is_one_node_with_shapes_and_expands():
    x = param(2, 5)
    y = x.softmax(-1).sum()
    nodes, edges = parse(viz.draw_graph(y, names={"x": x}))
    assert sorted(nodes) == ["call1", "op3", "t0", "t2", "t3"]
    assert label(nodes, "call1") == ["softmax", "(2, 5) → (2, 5)"]
    assert edge_set(edges) == {("t0", "call1"), ("call1", "t2"), ("t2", "op3"), ("op3", "t3")}
    nodes, _ = parse(viz.draw_graph(y, names={"x": x}, expand=["softmax"]))  # one level: log_softmax, then exp
    assert sorted(label(nodes, n)[0] for n in nodes if n.startswith(("op", "call"))) == ["Exp", "Sum", "log_softmax"]
    nodes, _ = parse(viz.draw_graph(y, names={"x": x}, expand=True))
    assert sorted(label(nodes, n)[0] for n in nodes if n.startswith(("op", "call"))) == ["Exp", "LogSoftmax", "Sum"]


def test_max_pool_is_one_node_not_four_ovals():
    x = param(1, 2, 4, 4)
    out = x.max_pool2d(2).sum()
    nodes, edges = parse(viz.draw_graph(out, names={"x": x}, collapse=None))
    (call,) = [n for n in nodes if n.startswith("call")]
    assert label(nodes, call) == ["max_pool2d", "(1, 2, 4, 4) → (1, 2, 2, 2)"]
    assert [label(nodes, n)[0] for n in nodes if n.startswith("op")] == ["Sum"]
    assert len(nodes) == 5 and len(edges) == 4  # x -> max_pool2d -> t -> Sum -> output


def test_cnn_input_is_drawn_with_its_true_shape_and_name():
    model, trace, x, labels, loss = cnn_step()
    dot = viz.draw_graph(loss, model, trace=trace, names={"x": x, "labels": labels}, output_name="loss")
    nodes, edges = parse(dot)
    image = [n for n in nodes if n.startswith("t") and label(nodes, n)[0] == "x"]
    assert len(image) == 1 and label(nodes, image[0])[1] == "(4, 1, 28, 28) float32"
    assert (image[0], "mod_conv1") in edge_set(edges)
    assert "(25, 2304)" not in dot.source and "(576, 4)" not in dot.source  # no im2col columns
    calls = sorted(label(nodes, n)[0] for n in nodes if n.startswith("call"))
    assert calls == ["cross_entropy", "flatten", "max_pool2d", "max_pool2d"] or calls == [
        "cross_entropy", "max_pool2d", "max_pool2d"]
    assert label(nodes, "mod_conv1")[:2] == ["conv1 · Conv2d", "(4, 1, 28, 28) → (4, 4, 24, 24)"]
    lab = [n for n in nodes if label(nodes, n)[0] == "labels"]
    assert len(lab) == 1 and label(nodes, lab[0])[1] == "(4,) int64"


def test_same_step_same_dot_and_highlight_by_drawn_name():
    a = cnn_step()
    b = cnn_step()
    draw = [viz.draw_graph(s[4], s[0], trace=s[1], names={"x": s[2]}, expand=["max_pool2d"]) for s in (a, b)]
    assert draw[0].source == draw[1].source  # call ids count process-wide; node ids do not depend on them
    dot = viz.draw_graph(a[4], a[0], trace=a[1], names={"x": a[2]}, highlight="x")
    nodes, _ = parse(dot)
    lit = [n for n, attrs in nodes.items() if attrs.get("color") == viz.COLORS["highlight"]]
    assert "mod_conv1" in lit and dot.node_id("x") in lit and "mod_fc2" in lit


# ---------------------------------------------------------------------------
# 2. names and the legend
# ---------------------------------------------------------------------------


def test_tensor_name_attribute_is_used():
    a = Tensor([1.0, 2.0], requires_grad=True)
    a.name = "alpha"
    b = (a * a)
    b.name = "square"
    nodes, _ = parse(viz.draw_graph(b.sum()))
    assert label(nodes, "t0")[0] == "alpha" and label(nodes, "t1")[0] == "square"


def test_legend_by_default_lists_what_is_drawn():
    model, trace, x, labels, loss = cnn_step()
    dot = viz.draw_graph(loss, model, trace=trace, names={"x": x})
    legend = dot.source.split("legend [label=<")[1]
    for row in ("output", "parameter", "data (no grad)", "functional call", "module", "op"):
        assert f">{row}<" in legend
    assert "repeated blocks" not in legend
    assert "legend" not in viz.draw_graph(loss, model, trace=trace, legend=False).source


# ---------------------------------------------------------------------------
# 3. depth and folding; 4. parameter counts
# ---------------------------------------------------------------------------


def test_residual_mlp_folds_into_block_times_12():
    model, trace, x, loss = res_step()
    dot = viz.draw_graph(loss, model, trace=trace, names={"x": x}, output_name="loss")
    nodes, edges = parse(dot)
    assert len(nodes) == 15 and len(edges) == 14
    (fold,) = [n for n in nodes if n.startswith("fold_")]
    assert label(nodes, fold) == ["Block × 12", "blocks.0 … blocks.11", "each: (16, 16), (16,), (16, 16), (16,)",
                                  "(4, 16) → (4, 16)", "6,528 params · 25.5 KiB"]
    assert dot.info["folds"] == ["blocks.0…blocks.11"]
    assert "6,723 parameters · 26.3 KiB" in dot.source
    assert 'label="blocks · Sequential"' in dot.source  # the container is a cluster around the fold


def test_residual_mlp_folds_without_a_trace_too():
    model, trace, x, loss = res_step()
    plain = viz.draw_graph(loss, model, names={"x": x}, output_name="loss")  # modules from parameter names
    assert plain.info["nodes"] == 15 and plain.info["folds"] == ["blocks.0…blocks.11"]
    assert plain.source == viz.draw_graph(loss, model, trace=trace, names={"x": x}, output_name="loss").source
    nodes, _ = parse(viz.draw_graph(loss, model, fold_repeats=False))
    # inferred: each block's ReLU is a plain op (a module without parameters leaves no trace)
    assert len(nodes) == 15 - 1 - 1 + 12 * 12 and kinds(nodes)["mod"] == 2 + 2 * 12


def test_fold_repeats_off_draws_every_block():
    model, trace, x, loss = res_step()
    nodes, edges = parse(viz.draw_graph(loss, model, trace=trace, fold_repeats=False))
    # per block: fc1, act and fc2 boxes, 4 parameters, the Add, 3 inner tensors and its output: 12 nodes
    assert len(nodes) == 15 - 1 - 1 + 12 * 12
    assert kinds(nodes)["mod"] == 2 + 3 * 12


def test_depth_controls_what_is_a_box():
    model, trace, x, loss = res_step()
    d1 = viz.draw_graph(loss, model, trace=trace, depth=1, fold_repeats=False)
    nodes, edges = parse(d1)
    assert d1.info["collapsed"] == ["blocks", "head", "inp"]
    assert label(nodes, "mod_blocks") == ["blocks · Sequential", "(4, 16) → (4, 16)", "6,528 params · 25.5 KiB"]
    assert len(nodes) == 15 and len(edges) == 14
    d2 = viz.draw_graph(loss, model, trace=trace, depth=2, fold_repeats=False)
    nodes, edges = parse(d2)
    assert [label(nodes, f"mod_blocks_{k}")[0] for k in range(12)] == [f"blocks.{k} · Block" for k in range(12)]
    assert len(nodes) == 15 - 1 + 12 + 11 and len(edges) == 14 - 2 + 2 * 12
    with pytest.raises(ValueError, match="depth"):
        viz.draw_graph(loss, model, trace=trace, depth=0)


def test_fold_needs_a_chain_and_equal_shapes():
    class Two(nn.Module):
        def __init__(self):
            self.a, self.b = nn.Linear(4, 4), nn.Linear(4, 4)

        def forward(self, x):
            return self.a(x) + self.b(x)  # siblings of one class, but not a chain

    manual_seed(0)
    m = Two()
    with viz.trace_modules(m) as tr:
        out = m(Tensor(np.ones((2, 4), np.float32))).sum()
    assert viz.draw_graph(out, m, trace=tr).info["folds"] == []


# ---------------------------------------------------------------------------
# 5. saved for backward
# ---------------------------------------------------------------------------


def test_show_saved_marks_tensors_and_totals_bytes():
    w = param(3, 4)
    x = Tensor(np.ones((2, 4), np.float32))
    h = (x @ w.T).relu()  # Matmul keeps x and w.T (a view of the parameter: not counted)
    loss = (h * h).sum()  # Mul keeps h (twice: one buffer)
    dot = viz.draw_graph(loss, {"w": w}, names={"x": x, "h": h}, show_saved=True, collapse=None)
    nodes, _ = parse(dot)
    assert "saved for backward 32 B" in label(nodes, dot.node_id(x))
    assert "saved for backward 24 B" in label(nodes, dot.node_id(h))
    assert not any("saved" in s for s in label(nodes, dot.node_id(w)))
    assert not any("saved" in s for s in label(nodes, "t2"))  # w.T
    assert label(nodes, "op3") == ["Matmul", "keeps 32 B"] and label(nodes, "op5") == ["Mul", "keeps 24 B"]
    relu = {id(a): a.nbytes for a in h.grad_fn.saved_arrays()}  # h, and its input if Relu keeps that too
    assert dot.info["saved_bytes"] == 32 + sum({**relu, id(h.data): 24}.values())
    assert f"saved for backward: {dot.info['saved_bytes']} B" in dot.source
    assert "kept alive for backward" in dot.source  # the legend row
    loss.backward()
    after = viz.draw_graph(loss, {"w": w}, show_saved=True)
    assert after.info["saved_bytes"] == 0  # released: nothing held any more


def test_show_saved_per_module():
    model, trace, x, labels, loss = cnn_step(backward=False)
    dot = viz.draw_graph(loss, model, trace=trace, show_saved=True)
    nodes, _ = parse(dot)
    held = [s for s in label(nodes, "mod_fc1") if s.startswith("saved ")]
    assert len(held) == 1
    assert dot.info["saved_bytes"] > 0


# ---------------------------------------------------------------------------
# 6. backward and higher-order graphs
# ---------------------------------------------------------------------------


def test_create_graph_ops_say_which_backward_they_belong_to():
    w = Tensor([1.0, 2.0, 3.0], requires_grad=True)
    loss = (w * w * w).sum()
    (g,) = grad(loss, w, create_graph=True)
    dot = viz.draw_graph(g.sum(), names={"w": w}, collapse=None)
    nodes, _ = parse(dot)
    tagged = [label(nodes, n) for n in nodes if n.startswith("op") and len(label(nodes, n)) > 1]
    assert tagged and all(lines[1].startswith("backward of ") for lines in tagged)
    assert {lines[1] for lines in tagged} >= {"backward of Mul"}


def test_backward_direction_reverses_the_step():
    w = param(3)
    x = Tensor(np.ones(3, np.float32))
    loss = (x * w).sum()
    fwd = viz.draw_graph(loss, {"w": w}, collapse=None)
    bwd = viz.draw_graph(loss, {"w": w}, collapse=None, direction="backward")
    fn, fe = parse(fwd)
    bn, be = parse(bwd)
    assert len(fn) == 6 and len(bn) == 5  # x needs no gradient
    assert edge_set(be) == {(d, s) for s, d in edge_set(fe) if fwd.node_id(x) not in (s, d)}
    assert [label(bn, n)[0] for n in bn if n.startswith("op")] == ["Mul backward", "Sum backward"]
    assert label(bn, bwd.node_id(w))[0] == "∂ w"
    with pytest.raises(ValueError, match="direction"):
        viz.draw_graph(loss, direction="sideways")


# ---------------------------------------------------------------------------
# 7. drawn after a plain backward
# ---------------------------------------------------------------------------


def test_cnn_step_drawn_after_plain_backward_has_gradients():
    model, trace, x, labels, loss = cnn_step(retain=True)
    before = viz.draw_graph(loss, model, trace=trace, names={"x": x}, show_values=False)
    model2, trace2, x2, labels2, loss2 = cnn_step(retain=False)
    after = viz.draw_graph(loss2, model2, trace=trace2, names={"x": x2}, show_values=False)
    assert (after.info["nodes"], after.info["edges"]) == (before.info["nodes"], before.info["edges"])
    nodes, _ = parse(after)
    assert label(nodes, after.node_id("fc1.weight"))[-1].startswith("‖grad‖ ")


# ---------------------------------------------------------------------------
# 9. notebook and browser
# ---------------------------------------------------------------------------


def test_tooltips_carry_shape_dtype_value_and_grad_stats():
    w = Tensor([1.0, -2.0, 3.0], requires_grad=True)
    loss = (w * w).sum()
    loss.backward()
    dot = viz.draw_graph(loss, {"w": w})
    tip = parse(dot)[0][dot.node_id(w)]["tooltip"].split("\\n")
    assert tip[:2] == ["w", "(3,) float32"]
    assert "value mean 0.6667 std 2.055" in tip
    assert f"grad ‖g‖ {np.linalg.norm([2.0, -4.0, 6.0]):.4g}" in tip
    assert "grad min -4 max 6" in tip


@needs_dot
def test_jupyter_rich_display_and_svg_tooltips():
    w = Tensor([1.0, 2.0], requires_grad=True)
    dot = viz.draw_graph((w * w).sum(), {"w": w})
    bundle = dot._repr_mimebundle_()
    svg = bundle["image/svg+xml"]
    assert svg.lstrip().startswith("<?xml") or "<svg" in svg
    assert dot._repr_svg_() == svg or "<svg" in dot._repr_svg_()
    assert 'xlink:title="w&#10;(2,) float32' in svg


def test_jupyter_display_without_dot_shows_the_install_hint_and_dot_text(monkeypatch, tmp_path):
    w = Tensor([1.0, 2.0], requires_grad=True)
    dot = viz.draw_graph((w * w).sum(), {"w": w})
    monkeypatch.setenv("PATH", str(tmp_path))  # no `dot` program on the PATH
    bundle = dot._repr_mimebundle_()
    assert list(bundle) == ["text/plain"]
    assert viz.INSTALL_HINT in bundle["text/plain"] and dot.source in bundle["text/plain"]


@needs_dot
def test_text_fits_its_box_in_the_rendered_cnn_step():
    """Graphviz's own layout (JSON): every label line lies inside its node's box."""
    model, trace, x, labels, loss = cnn_step()
    dot = viz.draw_graph(loss, model, trace=trace, names={"x": x, "labels": labels}, show_saved=False,
                         backward_order=True, rankdir="TB")
    out = subprocess.run(["dot", "-Tjson"], input=dot.source, capture_output=True, text=True, check=True).stdout
    layout = json.loads(out)
    checked = 0
    for obj in layout["objects"]:
        if "pos" not in obj or "_ldraw_" not in obj or obj.get("name") == "legend":
            continue
        cx, _ = map(float, obj["pos"].split(","))
        half = float(obj["width"]) * 72 / 2
        for op in obj["_ldraw_"]:
            if op["op"] != "T":
                continue
            x0 = op["pt"][0] - (op["width"] / 2 if op["align"] == "c" else 0)
            assert cx - half <= x0 and x0 + op["width"] <= cx + half, (obj["name"], op["text"])
            checked += 1
    assert checked > 40
