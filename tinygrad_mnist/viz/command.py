"""The `graph` command: python -m tinygrad_mnist graph --model cnn -o step.svg

cli.py adds these arguments to its `graph` subparser and calls run_graph_command.
"""

from __future__ import annotations

import argparse
import sys


def _positive_int(text: str) -> int:
    try:
        v = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {text!r}") from None
    if v < 1:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {v}")
    return v


def _max_nodes(text: str) -> int:
    v = _positive_int(text)
    if v < 3:
        raise argparse.ArgumentTypeError(f"must be at least 3, got {v}")
    return v


def add_graph_arguments(p: argparse.ArgumentParser) -> None:
    from ..train import RECIPES

    p.add_argument("--model", choices=sorted(RECIPES), default="mlp")
    p.add_argument("-o", "--output", default="graph.svg", help="output file: .svg, .png, .pdf or .dot")
    p.add_argument("--batch-size", type=_positive_int, default=4, help="images in the drawn batch (default 4)")
    p.add_argument("--expand", metavar="NAME", nargs="?", const="all", action="append",
                   help="draw a module (e.g. conv1) or a functional call (e.g. max_pool2d) op by op; "
                        "repeatable; without NAME: everything")
    p.add_argument("--depth", type=_positive_int, metavar="K",
                   help="draw modules down to nesting level K as boxes (1: the model's children)")
    p.add_argument("--no-fold", action="store_true", help="don't fold repeated blocks into one 'Block × n' box")
    p.add_argument("--no-grads", action="store_true", help="don't run backward / show gradient norms")
    p.add_argument("--values", action="store_true", help="show mean/std/min/max of every tensor")
    p.add_argument("--saved", action="store_true",
                   help="mark tensors kept alive for backward, with the bytes held per module and in total "
                        "(drawn before the backward frees them)")
    p.add_argument("--highlight", metavar="NAME", help="highlight the paths from this parameter (or x) to the loss")
    p.add_argument("--backward-order", action="store_true", help="number ops in the order backward visits them")
    p.add_argument("--direction", choices=["forward", "backward"], default="forward",
                   help="draw the forward pass (default) or the backward pass")
    p.add_argument("--rankdir", choices=["LR", "TB"], default="TB")
    p.add_argument("--max-nodes", type=_max_nodes, default=200, metavar="N",
                   help="summarize the graph past N nodes (default 200)")
    p.add_argument("--no-legend", action="store_true", help="leave out the legend")


def draw_step(args):
    """Build the model, run one training step on a few sample images, draw it (a viz.VizGraph).

    Raises ValueError for an --expand or --highlight name the graph does not have."""
    from .. import data, viz
    from ..engine import Tensor
    from ..generator import manual_seed
    from ..train import RECIPES, build_model, compute_loss

    manual_seed(0)
    model = build_model(args.model)
    sample = data.load_sample()
    x = Tensor(sample.x_test[:args.batch_size])
    labels = Tensor(sample.y_test[:args.batch_size])
    x.name, labels.name = "x", "labels"
    with viz.trace_modules(model) as trace:  # records module calls so each draws as one box
        loss = compute_loss(RECIPES[args.model], model(x), labels)
    if not args.no_grads:
        # a plain backward frees what ops saved but keeps the structure; --saved draws it before that
        loss.backward(retain_graph=args.saved)
    expand = args.expand or []
    return viz.draw_graph(loss, params=model, names={"x": x, "labels": labels}, output_name="loss",
                          trace=trace, expand=True if "all" in expand else expand, depth=args.depth,
                          fold_repeats=not args.no_fold, show_values=args.values, show_grads=not args.no_grads,
                          highlight=args.highlight, backward_order=args.backward_order, show_saved=args.saved,
                          direction=args.direction, rankdir=args.rankdir, max_nodes=args.max_nodes,
                          legend=not args.no_legend,
                          title=f"one training step of {args.model} on {args.batch_size} images")


def run_graph_command(args) -> int:
    """draw_step, then render to args.output (what cli.py does, without its argument checks)."""
    from . import GraphvizNotFound, render_graph

    try:
        path = render_graph(draw_step(args), args.output)
    except (ValueError, GraphvizNotFound) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    print(f"wrote {path}")
    return 0
