"""Draw computation graphs: a micrograd-style expression, one MLP training step, and its backward pass.

    python examples/draw_graph.py                 # SVGs in ./graphs
    python examples/draw_graph.py --out /tmp/g --format png

Without Graphviz's `dot` program the .dot files are written instead (render
them later with `dot -Tsvg file.dot -o file.svg`).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np

from tinygrad_mnist import Tensor, manual_seed, viz


def expression():
    """d = a*b + c; e = d.relu(); L = e * f, with scalar tensors, after backward."""
    a = Tensor(2.0, requires_grad=True)
    b = Tensor(-3.0, requires_grad=True)
    c = Tensor(10.0, requires_grad=True)
    f = Tensor(-2.0, requires_grad=True)
    d = a * b + c
    e = d.relu()
    loss = e * f
    loss.backward(retain_graph=True)  # keep the graph so it can be drawn with its gradients
    return loss, {"a": a, "b": b, "c": c, "f": f, "d": d, "e": e}


def mlp_step(batch: int = 8):
    """One training step of a 784-32-10 ReLU MLP with cross-entropy (forward and backward).

    Uses tinygrad_mnist.nn.MLP when it is available (recording module calls with
    viz.trace_modules), else a two-layer MLP written with plain Tensors.
    """
    manual_seed(0)
    rng = np.random.default_rng(0)
    x = Tensor(rng.random((batch, 784), dtype=np.float32))
    labels = rng.integers(0, 10, batch)
    try:
        from tinygrad_mnist import nn
        model = nn.MLP([784, 32, 10], activation="relu")
    except (ImportError, AttributeError, TypeError):
        model = None
    if model is not None:
        with viz.trace_modules(model) as trace:
            logits = model(x)
        params = model
    else:
        w1 = (Tensor.randn(32, 784) * (2 / 784) ** 0.5).requires_grad_()
        b1 = Tensor.zeros(32, requires_grad=True)
        w2 = (Tensor.randn(10, 32) * (2 / 32) ** 0.5).requires_grad_()
        b2 = Tensor.zeros(10, requires_grad=True)
        params = {"fc1.weight": w1, "fc1.bias": b1, "fc2.weight": w2, "fc2.bias": b2}
        logits = (x @ w1.T + b1).relu() @ w2.T + b2
        trace = None
    loss = logits.cross_entropy(labels)
    loss.backward()  # frees what ops saved for backward; the graph keeps its structure for drawing
    first_weight = next(iter(dict(params.named_parameters()) if model is not None else params))
    return loss, params, trace, {"x": x, "logits": logits}, first_weight


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", default="graphs", help="output directory (default: ./graphs)")
    ap.add_argument("--format", default="svg", choices=["svg", "png", "pdf"], help="image format (default: svg)")
    args = ap.parse_args(argv)
    out = Path(args.out)

    loss, names = expression()
    expr_loss = loss
    step_loss, params, trace, step_names, first = mlp_step()
    drawings = {
        "expression": viz.draw_graph(expr_loss, names=names, output_name="L", show_values=True),
        "expression_backward": viz.draw_graph(expr_loss, names=names, output_name="L", backward_order=True,
                                              rankdir="TB"),
        "mlp_step": viz.draw_graph(step_loss, params, names=step_names, output_name="loss", trace=trace,
                                   rankdir="TB"),
        "mlp_step_full": viz.draw_graph(step_loss, params, names=step_names, output_name="loss", highlight=first,
                                        backward_order=True, collapse=None, expand=True, rankdir="TB"),
        "mlp_step_backward": viz.draw_graph(step_loss, params, names=step_names, output_name="loss", trace=trace,
                                            direction="backward", rankdir="TB"),
    }
    missing = None
    for name, dot in drawings.items():
        path = out / f"{name}.{args.format}"
        try:
            viz.render_graph(dot, path)
            print(f"wrote {path}")
        except viz.GraphvizNotFound as e:
            missing = e
            print(f"wrote {e.dot_path} (no Graphviz: not rendered)")
    if missing is not None:
        print(f"\nGraphviz's `dot` program is not installed, so only .dot files were written. "
              f"{viz.INSTALL_HINT}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
