"""Pictures of the computation graph that stay readable for whole models.

    from tinygrad_mnist import viz
    with viz.trace_modules(model) as trace:   # optional: exact (nested) module boxes
        loss = model(x).cross_entropy(labels)
    loss.backward()                           # the graph keeps its structure: draw it with gradients
    dot = viz.draw_graph(loss, params=model, trace=trace, names={"x": x})
    viz.render_graph(dot, "step.svg")         # .svg / .png / .pdf / .dot, via Graphviz's `dot`

Tensors are boxes, ops ellipses; edges follow the data.  What keeps it readable:

* a functional call (``conv2d``, ``max_pool2d``, ``cross_entropy``, ``softmax``, ...) is one node named
  after the call, fed by the tensors the user passed (the image as (N, 1, 28, 28), not its im2col
  columns); ``expand=["conv2d"]`` draws its primitives;
* modules are boxes with their shapes and parameter counts (nested modules are clusters; ``depth=k``
  stops at level k); runs of identical blocks, each feeding the next, fold into "Block × 12";
* ``max_nodes`` summarizes the rest in one "… N more ops" node;
* ``show_saved`` marks the tensors kept alive for backward and totals their bytes;
* ``direction="backward"`` draws the backward pass; ops recorded by a backward with
  ``create_graph=True`` say which forward op's backward they belong to;
* every node has a tooltip (shape, dtype, value and gradient statistics), and the returned object
  displays inline in Jupyter.

The package is small: source.py reads the engine's public API, build.py makes the picture's model
(model.py's dataclasses), passes.py transforms it, dot.py writes DOT, render.py runs Graphviz, and
command.py is the `graph` CLI command.  Drawing only reads the graph.
"""

from __future__ import annotations

import graphviz

from ..engine import Tensor
from . import passes
from .build import build
from .command import add_graph_arguments, run_graph_command
from .dot import COLORS, VizGraph, emit
from .render import INSTALL_HINT, GraphvizNotFound, render_graph, save
from .trace import ModuleTrace, trace_modules

__all__ = [
    "COLORS", "INSTALL_HINT", "GraphvizNotFound", "ModuleTrace", "VizGraph", "add_graph_arguments",
    "draw_graph", "graphviz", "render_graph", "run_graph_command", "save", "trace_modules",
]


def _resolve_outputs(output, output_name):
    """(roots, names); a name is None where the caller gave none (drawn as "output" unless named otherwise)."""
    if isinstance(output, Tensor):
        roots = [output]
        names = [output_name if isinstance(output_name, str) else None]
    elif isinstance(output, dict):
        roots, names = list(output.values()), [str(k) for k in output]
    elif isinstance(output, (list, tuple)):
        roots = list(output)
        if output_name is None:
            names = [None] * len(roots)
        else:
            names = [output_name] if isinstance(output_name, str) else [str(n) for n in output_name]
    else:
        raise TypeError(f"draw_graph: output must be a Tensor, a list of Tensors or a dict name -> Tensor, "
                        f"got {type(output).__name__}")
    if not roots:
        raise ValueError("draw_graph: no output tensor given")
    for r in roots:
        if not isinstance(r, Tensor):
            raise TypeError(f"draw_graph: outputs must be Tensors, got {type(r).__name__}")
    if len(names) != len(roots):
        raise ValueError(f"draw_graph: {len(names)} output names for {len(roots)} outputs")
    return roots, names


def draw_graph(output, params=None, *, names=None, output_name: str | None = None, show_values: bool = False,
               show_grads: bool = True, collapse: str | None = "modules", expand=None,
               trace: ModuleTrace | None = None, depth: int | None = None, fold_repeats: bool = True,
               max_nodes: int | None = 200, rankdir: str = "LR", highlight=None, backward_order: bool = False,
               show_saved: bool = False, direction: str = "forward", grad_threshold: float = 1e3,
               inline_constants: bool = True, legend: bool = True, title: str | None = None) -> VizGraph:
    """Draw the graph that computed `output` (a Tensor, a list of them, or a dict name -> Tensor).

    params: a Module (named_parameters() names the parameters, named_modules() gives classes) or a
        dict name -> Tensor.  Totals (parameter count and bytes) are written under the title.
    names: more tensors to name, dict name -> Tensor (e.g. {"x": x, "labels": y}); a tensor's own
        `name` is used too.  A constant the model made from a named batch by a view keeps its name.
    output_name: the output's name (default "output"), e.g. "loss".
    show_values: add mean/std/min/max of every tensor (they are always in the tooltips).
    show_grads: add ‖grad‖ where a tensor has .grad, coloured when zero / NaN-inf / > grad_threshold.
    collapse: "modules" (default): modules as boxes; None: no module boxes (calls are still one node).
    expand: names drawn op by op: a module ("fc1": its box becomes a cluster with its calls drawn
        op by op) or a functional call ("conv2d": every conv2d call); True: everything, every op.
    trace: a ModuleTrace from trace_modules(): exact, nested module calls (without one, modules are
        inferred from parameter names, flat).
    depth: draw modules down to nesting level `depth` (1: the model's children) as boxes; deeper
        levels are inside them.  None: every module that contains no other module is a box.
    fold_repeats: fold runs of consecutive sibling modules of one class with equal parameter shapes,
        each feeding the next, into one "Block × n" box (False: draw each).
    max_nodes: past this many nodes, keep those nearest the output and the parameters and replace
        the rest by one "… N more ops" node (None: no limit).
    rankdir: "LR" (left to right) or "TB" (top to bottom).
    highlight: a parameter name, a name from `names`, a Tensor, or a list of them: colour every
        path from it to the output.
    backward_order: number ops "[k]" in the order backward() visits them.
    show_saved: mark tensors kept alive for backward and label bytes held per op, module and in total.
    direction: "forward" (the data flow) or "backward" (the backward pass: gradients flow from the
        output to the leaves that need them).
    inline_constants: draw one-element constants inside the op that reads them ("Mul(·, 0.5)").
    legend: draw a legend of the node kinds and colours used (default True).

    Returns a VizGraph, a graphviz.Digraph (`.source` is the DOT text; render with render_graph;
    Jupyter shows it inline) with `node_id(tensor_or_name)` and `info`.  The graph and every .grad
    are only read.
    """
    if rankdir not in ("LR", "TB", "RL", "BT"):
        raise ValueError(f"draw_graph: rankdir must be 'LR' or 'TB' (or 'RL', 'BT'), got {rankdir!r}")
    if collapse not in (None, "modules"):
        raise ValueError(f"draw_graph: collapse must be None or 'modules', got {collapse!r}")
    if max_nodes is not None and max_nodes < 3:
        raise ValueError(f"draw_graph: max_nodes must be at least 3 (or None), got {max_nodes}")
    if depth is not None and (not isinstance(depth, int) or depth < 1):
        raise ValueError(f"draw_graph: depth must be a positive int (or None), got {depth!r}")
    if direction not in ("forward", "backward"):
        raise ValueError(f"draw_graph: direction must be 'forward' or 'backward', got {direction!r}")
    if trace is not None and not isinstance(trace, ModuleTrace):
        raise TypeError(f"draw_graph: trace must come from viz.trace_modules(), got {type(trace).__name__}")
    roots, root_names = _resolve_outputs(output, output_name)
    expand_all = expand is True
    expand_names = set() if expand in (None, True, False) else (
        {expand} if isinstance(expand, str) else {str(e) for e in expand})

    live = [t for c in trace.calls for t in c["inputs"] + c["outputs"]] if trace is not None else []
    g, src = build(roots, root_names, params, names, show_values=show_values, show_grads=show_grads,
                   threshold=grad_threshold, inline_constants=inline_constants, live=live)
    g.info["any_grad"] = any(t.grad is not None for t in g.tensors)
    module_classes = g.info.get("module_classes", {})

    # module calls: recorded, or inferred from parameter names
    scopes = []
    if collapse == "modules":
        if trace is not None:
            scopes = passes.scopes_from_trace(g, src, trace)
        elif g.param_index:
            scopes = passes.scopes_inferred(g, module_classes)
    call_names = {name for t in g.tensors for _, name in t.calls}
    unknown = expand_names - {s.id for s in scopes} - {s.module for s in scopes} - call_names
    if unknown:
        known = sorted({s.id for s in scopes} | call_names)
        raise ValueError(f"draw_graph: expand names unknown module(s) or call(s) {sorted(unknown)}; "
                         f"in this graph: {', '.join(known) or '(none)'}")
    if fold_repeats and scopes:
        scopes = passes.fold_repeats(g, scopes)
    g.info["folds"] = [s.id for s in scopes if s.fold]

    # the module directly around each op: expanding a module expands the calls made in it
    innermost: dict = {}
    for s in sorted(scopes, key=lambda s: s.level):
        for i in s.ops:
            innermost[i] = s
    expanded_modules = {s.id for s in scopes if s.id in expand_names or s.module in expand_names}

    def call_expanded(name, i):
        if expand_all or name in expand_names:
            return True
        s = innermost.get(i)
        return s is not None and s.id in expanded_modules and not s.fold

    passes.collapse_calls(g, src, call_expanded)
    if scopes:
        passes.group_modules(g, scopes, depth, expand_names, expand_all)

    n_params = sum(passes._size(g.tensors[i].shape) for i in g.param_index.values())
    n_bytes = sum(g.tensors[i].nbytes for i in g.param_index.values())
    g.info["params"], g.info["param_bytes"] = n_params, n_bytes
    if g.param_index:
        g.totals["params"] = f"{n_params:,} parameters · {passes.human_bytes(n_bytes)}"
    bw_numbers = passes.number_backward(g, src, roots) if backward_order else {}
    if show_saved:
        passes.measure_saved(g, src)
        total = g.info["saved_total"]
        released = any(t.released for t in g.tensors)
        g.totals["saved"] = (f"saved for backward: {passes.human_bytes(total)}"
                             + (" (after backward(): freed)" if released and not total else ""))
    if highlight is not None:
        passes.highlight(g, _highlight_starts(g, src, highlight))
    if direction == "backward":
        passes.backward_view(g)
    if max_nodes is not None:
        passes.limit_nodes(g, max_nodes)
    return emit(g, src, rankdir=rankdir, legend=legend, title=title, threshold=grad_threshold,
                show_saved=show_saved, bw_numbers=bw_numbers)


def _highlight_starts(g, src, highlight) -> list:
    targets = highlight if isinstance(highlight, (list, tuple)) else [highlight]
    known = g.info.get("name_to_tensor", {})
    starts = []
    for h in targets:
        if isinstance(h, str):  # a name drawn in the picture (x on the CNN's reshaped image, too)
            drawn = [i for i, t in enumerate(g.tensors) if h in t.names]
            if drawn:
                starts += drawn
                continue
        if isinstance(h, Tensor):
            t = h
        elif isinstance(h, str):
            t = known.get(h)
            if t is None:
                names = sorted(known)
                raise ValueError(f"draw_graph: highlight={h!r} names no tensor; known names: "
                                 f"{', '.join(names[:20]) or '(none: pass params= or names=)'}")
        else:
            raise TypeError(f"draw_graph: highlight must be a name or a Tensor, got {type(h).__name__}")
        i = src.find(t)
        if i is None:
            g.notes.append(f"highlight: {h if isinstance(h, str) else 'the tensor'} is not in this graph")
            continue
        starts.append(i)
    return starts
