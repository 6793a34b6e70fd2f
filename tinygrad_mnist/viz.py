"""Pictures of the computation graph that stay readable for whole models.

    from tinygrad_mnist import viz
    loss.backward(retain_graph=True)          # keep the graph to draw it with gradients
    dot = viz.draw_graph(loss, params=model, output_name="loss", collapse="modules")
    viz.render_graph(dot, "step.svg")         # .svg / .png / .pdf / .dot, via Graphviz's `dot`

One node per tensor (a box) and one per op (an ellipse); edges follow the data:
tensor -> op -> tensor.  Tensor boxes show the name (parameters get their
dotted module names, e.g. ``fc1.weight``), shape and dtype, optionally a value
summary, and after ``backward()`` the gradient's norm, coloured when the
gradient is exactly zero, not finite, or larger than ``grad_threshold``.

Readable at scale:

* ``collapse="modules"`` draws each module as one summary node inside a
  cluster (``subgraph cluster_fc1``) next to its parameters; ``expand=["fc2"]``
  draws chosen modules op by op inside their cluster.  The engine records no
  module calls, so membership is either *inferred* from parameter names (see
  ``infer_module_groups``) or *recorded* exactly by running the forward pass
  inside ``with viz.trace_modules(model) as trace:`` and passing ``trace=trace``.
* ``max_nodes`` bounds the picture: past it, the nodes nearest the output and
  nearest the parameters are kept and everything else becomes one
  "… N more ops (Matmul×3, Add×5, …)" node.
* ``highlight="fc1.weight"`` colours every path from that tensor to the output.
* ``backward_order=True`` numbers op nodes in the order backward() visits them.

Drawing only reads the graph: it records no ops, touches no ``.grad`` and works
on graphs already released by ``backward()`` (such ops are drawn as
"(graph released)").  This module never imports ``nn``: anything with
``named_parameters()`` (and optionally ``named_modules()``) or a dict
name -> Tensor will do.
"""

from __future__ import annotations

import contextlib
import heapq
import html
import os
import re
import shutil
import tempfile
import weakref
from collections import Counter, deque
from pathlib import Path

import graphviz
import numpy as np

from . import engine as _tensor
from .engine import Tensor

__all__ = [
    "COLORS", "INSTALL_HINT", "GraphvizNotFound", "ModuleTrace", "VizGraph", "draw_graph", "infer_module_groups",
    "render_graph", "save", "trace_modules",
]

# fill colours by role, gradient status colours, and the highlight colour
COLORS = {
    "param": "#c7e9c0",      # a named parameter
    "leaf": "#fff7bc",       # another leaf that requires grad
    "const": "#eeeeee",      # data: a leaf that needs no grad
    "tensor": "#ffffff",     # an intermediate result
    "output": "#9ecae1",     # the tensor(s) drawn from
    "op": "#deebf7",
    "module": "#fdd49e",     # a collapsed module
    "more": "#f0f0f0",       # the "… N more ops" node
    "zero": "#b39ddb",       # gradient exactly zero
    "nonfinite": "#ef3b2c",  # gradient with NaN or inf
    "exploding": "#fd8d3c",  # gradient norm above grad_threshold
    "highlight": "#e7298a",  # path from the highlighted tensor to the output
}

_STATUS_TEXT = {
    "zero": "gradient exactly zero",
    "nonfinite": "gradient has NaN / inf",
    "exploding": "gradient norm > {threshold:g}",
}

# ops that only move or reshape data: at a module's border they are drawn as part of it
_MOVEMENT_OPS = frozenset({"Reshape", "Permute", "Expand", "Pad", "Unfold", "Cast"})

INSTALL_HINT = ("Install Graphviz (it provides `dot`): apt-get install graphviz (Debian/Ubuntu), "
                "brew install graphviz (macOS), conda install graphviz (conda), or see "
                "https://graphviz.org/download/")

_FORMATS = frozenset({"svg", "png", "pdf", "jpg", "jpeg", "gif", "ps", "eps", "json", "plain", "xdot"})


class GraphvizNotFound(RuntimeError):
    """Graphviz's `dot` program is not installed; `dot_path` is where the DOT text was written instead."""

    def __init__(self, message: str, dot_path: Path | None = None):
        super().__init__(message)
        self.dot_path = dot_path


class VizGraph(graphviz.Digraph):
    """The `graphviz.Digraph` returned by draw_graph, plus a map from tensors to their node ids.

    `node_id(tensor_or_name)` gives the id of the node that shows a tensor (a
    tensor node "t<i>", or the module / "more" node that absorbed it), or None.
    `info` summarizes the drawing (counts, modules, hidden ops).
    """

    _viz_ids: dict = {}
    _viz_names: dict = {}
    info: dict = {}

    def node_id(self, what) -> str | None:
        if isinstance(what, str):
            return self._viz_names.get(what)
        hit = self._viz_ids.get(id(what))
        return hit[1] if hit is not None and hit[0]() is what else None


# ---------------------------------------------------------------------------
# reading the graph (never writes to it)
# ---------------------------------------------------------------------------


def _parents(t: Tensor):
    """The inputs of t's op; None for a leaf or when the graph was released."""
    ctx = t._ctx
    return None if ctx is None or ctx.released else ctx.parents


def _walk(roots, follow=None, argument_order: bool = True) -> list:
    """Tensors reachable from roots, parents before children (iterative DFS).

    `follow(p)` decides which parents to enter (default: all, constants included);
    `argument_order` visits parents left to right, otherwise in the order of tensor._toposort.
    """
    seq = reversed if argument_order else list
    order, seen = [], set()
    stack = [(r, False) for r in seq(list(roots))]
    while stack:
        node, expanded = stack.pop()
        if expanded:
            order.append(node)
            continue
        if id(node) in seen:
            continue
        seen.add(id(node))
        stack.append((node, True))
        for p in seq(list(_parents(node) or ())):
            if id(p) not in seen and (follow is None or follow(p)):
                stack.append((p, False))
    return order


def _backward_visit_order(roots) -> list:
    """The tensors in the order backward() visits them: reversed(tensor._toposort(roots))."""
    roots = [r for r in roots if r._requires_grad]
    try:
        order = _tensor._toposort(roots)
    except RuntimeError:  # a released graph: the same traversal, stopping where the graph ends
        order = _walk(roots, follow=lambda p: p._requires_grad, argument_order=False)
    return list(reversed(order))


def _named_tensors(params) -> tuple[list, dict]:
    """(list of (name, tensor), {module name: class name}) from a Module-like object or a dict."""
    if params is None:
        return [], {}
    modules = {}
    if hasattr(params, "named_parameters"):
        items = list(params.named_parameters())
        if hasattr(params, "named_modules"):
            modules = {name: type(m).__name__ for name, m in params.named_modules()}
    elif isinstance(params, dict):
        items = list(params.items())
    else:
        raise TypeError(f"draw_graph: params must be a Module (anything with named_parameters()) or a dict "
                        f"name -> Tensor, got {type(params).__name__}")
    for name, t in items:
        if not isinstance(t, Tensor):
            raise TypeError(f"draw_graph: parameter {name!r} is a {type(t).__name__}, not a Tensor")
    return [(str(n), t) for n, t in items], modules


def _grad_status(t: Tensor, threshold: float):
    """(norm, status) of t.grad; status is None, 'zero', 'nonfinite' or 'exploding'."""
    g = t._grad
    if g is None:
        return None, None
    arr = np.asarray(g.data)
    if arr.size == 0:
        return 0.0, None
    if arr.dtype.kind in "fc" and not np.isfinite(arr).all():
        return float(np.linalg.norm(arr.astype(np.float64).ravel())), "nonfinite"
    if not arr.any():
        return 0.0, "zero"
    norm = float(np.linalg.norm(arr.astype(np.float64).ravel()))
    return norm, ("exploding" if norm > threshold else None)


def _fmt(v: float) -> str:
    return f"{v:.4g}"


def _value_lines(arr: np.ndarray) -> list:
    if arr.size == 0:
        return ["empty"]
    if arr.size == 1:
        return [f"value {_fmt(float(arr.reshape(-1)[0]))}"]
    vals, extra = arr.astype(np.float64), ""
    if arr.dtype.kind == "f":
        finite = np.isfinite(vals)
        if not finite.all():
            nan = int(np.isnan(vals).sum())
            inf = int((~finite).sum()) - nan
            extra = ", ".join(s for s in (f"NaN×{nan}" if nan else "", f"inf×{inf}" if inf else "") if s)
            vals = vals[finite]
    if vals.size == 0:
        return [extra]
    out = [f"mean {_fmt(vals.mean())} std {_fmt(vals.std())}", f"min {_fmt(vals.min())} max {_fmt(vals.max())}"]
    return out + ([extra] if extra else [])


def _shape_text(t: Tensor) -> str:
    shape = "scalar" if t.ndim == 0 else str(tuple(t.shape))
    return f"{shape} {t.dtype}"


def _esc(s: str) -> str:
    """Text for a DOT label: backslashes kept literal (lines are joined with \\n afterwards)."""
    return str(s).replace("\\", "\\\\")


def _ident(s: str) -> str:
    return re.sub(r"\W", "_", s) or "_"


# ---------------------------------------------------------------------------
# module groups: inferred from parameter names, or recorded by trace_modules
# ---------------------------------------------------------------------------


class ModuleTrace:
    """Module calls recorded by `trace_modules`: one entry per call, in call order.

    Each call is a dict with `name` (dotted module name, "#2" appended for a
    second call of the same module), `cls`, `depth`, `inputs` and `outputs`
    (the Tensors passed in and returned).  It holds references to those
    tensors, so keep it only as long as the drawing needs.
    """

    def __init__(self):
        self.calls: list = []
        self._depth = 0
        self._count: Counter = Counter()

    def __len__(self) -> int:
        return len(self.calls)

    def __repr__(self) -> str:
        return f"ModuleTrace({[c['name'] for c in self.calls]})"


def _tensors_in(obj) -> list:
    if isinstance(obj, Tensor):
        return [obj]
    if isinstance(obj, (list, tuple)):
        return [t for o in obj for t in _tensors_in(o)]
    if isinstance(obj, dict):
        return [t for o in obj.values() for t in _tensors_in(o)]
    return []


@contextlib.contextmanager
def trace_modules(model):
    """Record which tensors each submodule of `model` takes and returns during the block.

        with viz.trace_modules(model) as trace:
            loss = loss_fn(model(x), y)
        viz.draw_graph(loss, params=model, collapse="modules", trace=trace)

    Every submodule (not the model itself, unless it has none) is called
    through a temporary subclass whose `__call__` records the call; the
    original classes are restored when the block ends, even on error.  nn.py
    is not changed and nothing about the computation is.
    """
    if not hasattr(model, "named_modules"):
        raise TypeError(f"trace_modules: expected a Module (anything with named_modules()), "
                        f"got {type(model).__name__}")
    trace = ModuleTrace()
    mods = list(model.named_modules())
    named = [(n, m) for n, m in mods if n] or [(n or type(m).__name__, m) for n, m in mods]
    names: dict = {}
    subclasses: dict = {}
    patched = []

    def make_subclass(cls):
        orig_call = cls.__call__

        def __call__(self, *args, **kwargs):
            name = names.get(id(self), type(self).__name__)
            trace._count[name] += 1
            n = trace._count[name]
            rec = {"name": name if n == 1 else f"{name}#{n}", "cls": cls.__name__, "depth": trace._depth,
                   "inputs": _tensors_in((args, kwargs)), "outputs": []}
            trace.calls.append(rec)
            trace._depth += 1
            try:
                out = orig_call(self, *args, **kwargs)
            finally:
                trace._depth -= 1
            rec["outputs"] = _tensors_in(out)
            return out

        return type(cls.__name__, (cls,), {"__slots__": (), "__call__": __call__, "__module__": cls.__module__,
                                            "__qualname__": cls.__qualname__, "__doc__": cls.__doc__})

    try:
        for name, m in named:
            if id(m) in names or not callable(m):
                continue
            cls = type(m)
            sub = subclasses.get(cls) or subclasses.setdefault(cls, make_subclass(cls))
            try:
                m.__class__ = sub
            except TypeError:  # an unusual class layout: leave this module untraced
                continue
            names[id(m)] = name
            patched.append((m, cls))
        yield trace
    finally:
        for m, cls in reversed(patched):
            m.__class__ = cls


def _groups_from_trace(trace: ModuleTrace, tensors: list, index: dict) -> tuple[dict, dict]:
    """op index -> call name (innermost call wins), and call name -> class name."""
    group, classes = {}, {}
    for call in sorted(trace.calls, key=lambda c: c["depth"]):
        stop = {id(t) for t in call["inputs"]}
        stack = [t for t in call["outputs"] if id(t) in index and id(t) not in stop]
        seen = set()
        members = []
        while stack:
            t = stack.pop()
            if id(t) in seen or t._ctx is None:
                continue
            seen.add(id(t))
            members.append(index[id(t)])
            for p in _parents(t) or ():
                if id(p) not in stop and id(p) in index:
                    stack.append(p)
        for i in members:
            group[i] = call["name"]
        classes[call["name"]] = call["cls"]
    used = set(group.values())
    return group, {g: c for g, c in classes.items() if g in used}


def infer_module_groups(tensors: list, param_names: dict, consumers: dict, roots: set) -> dict:
    """Guess which module each op belongs to, from the dotted names of the parameters.

    `tensors` is in topological order; `param_names[i]` is the name of parameter
    tensor i (e.g. "fc1.weight": module "fc1"); `consumers[i]` lists the op
    indices that read tensor i; `roots` the indices of the outputs.  Returns
    op index -> module name.  The rules:

    1. A tensor is *owned* by module M if it is a parameter of M, or the result
       of an op whose inputs are all owned by M or are one-element constants
       (W.T, W.reshape, W * 0.5).  Such ops belong to M.
    2. An op with an input owned by exactly one module M belongs to M: that is
       where M's parameters meet the data (Linear's Matmul, then its bias Add).
    3. Movement ops (Reshape, Permute, Expand, Pad, Unfold, Cast) at a module's
       border join it: after it when their input comes from M (conv's reshape
       and permute back to NCHW), before it when every reader of their result
       is in M (conv's pad and im2col; a flatten feeding fc1).
    Everything else (activations, pooling, the loss) stays outside modules.
    A loss term computed from parameters alone (an L2 penalty) lands in their
    module by rule 2.  For exact groups, record the forward with `trace_modules`.
    """
    index = {id(t): i for i, t in enumerate(tensors)}
    owner: dict = {}
    group: dict = {}
    for i, t in enumerate(tensors):
        if i in param_names:
            owner[i] = param_names[i].rpartition(".")[0] or None
            continue
        ps = _parents(t)
        if t._ctx is None or ps is None:
            continue
        idx = [index[id(p)] for p in ps]
        owners = {owner.get(j) for j, p in zip(idx, ps) if p._requires_grad or p.data.size > 1}
        if len(owners) == 1 and None not in owners:
            owner[i] = group[i] = owners.pop()
            continue
        direct = {owner[j] for j in idx if owner.get(j) is not None}
        if len(direct) == 1:
            group[i] = direct.pop()
    # 3a. movement ops right after a module's op (in topological order, so chains follow)
    for i, t in enumerate(tensors):
        ps = _parents(t)
        if i in group or ps is None or t._ctx.name not in _MOVEMENT_OPS:
            continue
        mods = {group.get(index[id(p)]) for p in ps if p._requires_grad}
        if len(mods) == 1 and None not in mods:
            group[i] = mods.pop()
    # 3b. movement ops right before a module's op (in reverse order, so chains follow)
    for i in range(len(tensors) - 1, -1, -1):
        t = tensors[i]
        if i in group or i in roots or t._ctx is None or t._ctx.name not in _MOVEMENT_OPS:
            continue
        mods = {group.get(j) for j in consumers.get(i, ())}
        if len(mods) == 1 and None not in mods:
            group[i] = mods.pop()
    return group


# ---------------------------------------------------------------------------
# the drawing
# ---------------------------------------------------------------------------


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
               show_grads: bool = True, collapse: str | None = None, expand=None, trace: ModuleTrace | None = None,
               max_nodes: int | None = 200, rankdir: str = "LR", highlight=None, backward_order: bool = False,
               grad_threshold: float = 1e3, inline_constants: bool = True, legend: bool | None = None,
               title: str | None = None) -> VizGraph:
    """Draw the graph that computed `output` (a Tensor, a list of them, or a dict name -> Tensor).

    params: a Module (its named_parameters() name the parameters, named_modules()
        gives module classes) or a dict name -> Tensor.
    names: more tensors to name, dict name -> Tensor (e.g. {"x": x, "logits": logits}).
    output_name: the output's name (default "output"), e.g. "loss".
    show_values: add mean/std/min/max of every tensor.
    show_grads: add ‖grad‖ where a tensor has .grad, coloured when zero / NaN-inf / > grad_threshold.
    collapse: None (every op) or "modules" (one summary node per module, inside a cluster).
    expand: module names drawn op by op inside their cluster when collapsing (True: all of them).
    trace: a ModuleTrace from trace_modules(): exact module groups instead of inferred ones
        (implies collapse="modules" unless collapse is given).
    max_nodes: past this many nodes, keep those nearest the output and the parameters and replace
        the rest by one "… N more ops" node (None: no limit).
    rankdir: "LR" (left to right) or "TB" (top to bottom).
    highlight: a parameter name, a name from `names`, a Tensor, or a list of them: colour every
        path from it to the output.
    backward_order: prefix op nodes with "[k]", the order in which backward() visits them.
    inline_constants: draw one-element constants inside the op that reads them ("Mul(·, 0.5)")
        instead of as nodes of their own.
    legend: draw a legend (None: when gradient colours or a highlight are shown).

    Returns a VizGraph, a graphviz.Digraph (`.source` is the DOT text; render with render_graph) with
    `node_id(tensor_or_name)` and `info`.  Node ids: "t<i>" for tensor i and "op<i>" for the op that
    made it (i in a parents-first order), "mod_<name>" for a collapsed module, "more", "legend".
    The graph and every .grad are only read.
    """
    if rankdir not in ("LR", "TB", "RL", "BT"):
        raise ValueError(f"draw_graph: rankdir must be 'LR' or 'TB' (or 'RL', 'BT'), got {rankdir!r}")
    if collapse not in (None, "modules"):
        raise ValueError(f"draw_graph: collapse must be None or 'modules', got {collapse!r}")
    if max_nodes is not None and max_nodes < 3:
        raise ValueError(f"draw_graph: max_nodes must be at least 3 (or None), got {max_nodes}")
    if trace is not None and collapse is None:
        collapse = "modules"
    roots, root_names = _resolve_outputs(output, output_name)
    b = _Builder(roots, root_names, params, names, show_values, show_grads, grad_threshold, inline_constants)
    if backward_order:
        b.number_backward()
    if collapse == "modules":
        b.collapse_modules(trace, expand)
    if highlight is not None:
        b.highlight(highlight)
    if max_nodes is not None:
        b.limit(max_nodes)
    return b.emit(rankdir, legend, title)


class _Builder:
    """Builds a display graph from the tensor graph, then transforms it (collapse, limit) and emits DOT.

    Original keys: tensor i -> "t<i>", the op that made tensor i -> "op<i>".  Display nodes are dicts;
    `rep` maps every original key to the display node that shows it (None: not drawn).
    """

    def __init__(self, roots, root_names, params, names, show_values, show_grads, threshold, inline):
        self.roots = roots
        self.threshold = threshold
        self.tensors = _walk(roots)
        self.index = {id(t): i for i, t in enumerate(self.tensors)}
        self.root_idx = {self.index[id(r)] for r in roots}
        self.notes = []

        param_items, self.module_classes = _named_tensors(params)
        if names is not None and not isinstance(names, dict):
            raise TypeError(f"draw_graph: names must be a dict name -> Tensor, got {type(names).__name__}")
        extra = list(names.items()) if names else []
        self.names: dict = {}  # tensor index -> list of names
        self.param_names: dict = {}  # tensor index -> first parameter name
        self.name_to_tensor: dict = {}
        unused = []
        for name, t in param_items:
            self.name_to_tensor.setdefault(name, t)
            i = self.index.get(id(t))
            if i is None:
                unused.append(name)
                continue
            self.names.setdefault(i, []).append(name)
            self.param_names.setdefault(i, name)
        for name, t in extra + [(n, r) for n, r in zip(root_names, roots) if n is not None]:
            if not isinstance(t, Tensor):
                raise TypeError(f"draw_graph: names[{name!r}] is a {type(t).__name__}, not a Tensor")
            self.name_to_tensor.setdefault(name, t)
            i = self.index.get(id(t))
            if i is not None and name not in self.names.get(i, []):
                self.names.setdefault(i, []).append(name)
        unnamed = [i for i in sorted(self.root_idx) if i not in self.names]
        for k, i in enumerate(unnamed):
            self.names[i] = ["output" if len(unnamed) == 1 else f"output {k}"]
        if unused and len(unused) < len(param_items):
            shown = ", ".join(unused[:6]) + (", …" if len(unused) > 6 else "")
            self.notes.append(f"parameters not in this graph: {shown}")

        # constants drawn inside the op that reads them
        self.inlined = set()
        if inline:
            for i, t in enumerate(self.tensors):
                if (t._ctx is None and not t._requires_grad and t.data.size <= 1 and i not in self.names
                        and i not in self.root_idx):
                    self.inlined.add(i)

        # consumers: tensor index -> op indices that read it (with multiplicity)
        self.consumers: dict = {}
        released = 0
        for i, t in enumerate(self.tensors):
            if t._ctx is None:
                continue
            ps = _parents(t)
            if ps is None:
                released += 1
                continue
            for p in ps:
                self.consumers.setdefault(self.index[id(p)], []).append(i)
        if released:
            self.notes.append(f"{released} op(s) drawn as '(graph released)': backward() freed their inputs; "
                              f"call backward(retain_graph=True) to draw the whole graph with gradients")

        self.grad_info = {}
        if show_grads:
            for i, t in enumerate(self.tensors):
                if t._grad is not None:
                    self.grad_info[i] = _grad_status(t, threshold)
        self.any_grad = bool(self.grad_info)
        self.show_values = show_values
        self.bw_number: dict = {}
        self.hl_keys: set = set()
        self.hl_edges: set = set()
        self.status_used: set = set()
        self.groups: dict = {}  # op index -> group name (set by collapse_modules)
        self.group_classes: dict = {}
        self.collapsed: set = set()
        self.hidden: dict | None = None  # set by limit(): summary of what the "more" node hides
        self._build_nodes()

    # -- the full display graph ------------------------------------------------
    def _build_nodes(self):
        self.nodes: dict = {}  # id -> node dict (insertion order = drawing order)
        self.edges: dict = {}  # (src, dst) -> {"count": n, "keys": set of original edges}
        for i, t in enumerate(self.tensors):
            if t._ctx is not None:
                self.nodes[f"op{i}"] = {"kind": "op", "i": i, "members": {f"op{i}"}, "cluster": None}
            if i not in self.inlined:
                self.nodes[f"t{i}"] = {"kind": "tensor", "i": i, "members": {f"t{i}"}, "cluster": None}
        self.rep = {k: k for k in self.nodes}
        for i, t in enumerate(self.tensors):
            if t._ctx is None:
                continue
            for p in _parents(t) or ():
                j = self.index[id(p)]
                if j not in self.inlined:
                    self._add_edge(f"t{j}", f"op{i}", (f"t{j}", f"op{i}"))
            self._add_edge(f"op{i}", f"t{i}", (f"op{i}", f"t{i}"))

    def _add_edge(self, src, dst, key, count=1):
        e = self.edges.setdefault((src, dst), {"count": 0, "keys": set()})
        e["count"] += count
        e["keys"].add(key)

    def _remap(self, new_rep: dict):
        """Replace display nodes: new_rep maps old display id -> new display id (absent: unchanged)."""
        for k, v in self.rep.items():
            if v is not None:
                self.rep[k] = new_rep.get(v, v)
        edges, self.edges = self.edges, {}
        for (s, d), e in edges.items():
            s2, d2 = new_rep.get(s, s), new_rep.get(d, d)
            if s2 == d2:
                continue
            for key in e["keys"]:
                self._add_edge(s2, d2, key, 0)
            self.edges[(s2, d2)]["count"] += e["count"]

    # -- options ---------------------------------------------------------------
    def number_backward(self):
        k = 0
        for t in _backward_visit_order(self.roots):
            if t._ctx is not None and id(t) in self.index:
                k += 1
                self.bw_number[self.index[id(t)]] = k

    def collapse_modules(self, trace, expand):
        if trace is not None:
            groups, classes = _groups_from_trace(trace, self.tensors, self.index)
        else:
            groups = infer_module_groups(self.tensors, self.param_names, self.consumers, self.root_idx)
            classes = {}
            for g in set(groups.values()):
                classes[g] = self.module_classes.get(g)
        if not groups:
            self.notes.append("collapse='modules': no module found (pass params=model, a dict with dotted "
                              "names, or trace=)")
            return
        self.groups, self.group_classes = groups, classes
        if expand is True:
            expanded = set(classes)
        else:
            expanded = {str(e) for e in (expand or ())}
            unknown = expanded - set(classes)
            if unknown:
                raise ValueError(f"draw_graph: expand names unknown module(s) {sorted(unknown)}; "
                                 f"modules in this graph: {sorted(classes)}")
        members: dict = {}
        for i, g in groups.items():
            members.setdefault(g, []).append(i)
        order = sorted(members, key=lambda g: min(members[g]))
        new_rep = {}
        for g in order:
            ops = sorted(members[g])
            cluster = "cluster_" + _ident(g)
            # tensors made inside g and read only inside g are internal
            internal = [i for i in ops if i not in self.root_idx and f"t{i}" in self.nodes
                        and all(groups.get(c) == g for c in self.consumers.get(i, ()))]
            params = [i for i in self.param_names
                      if self.consumers.get(i) and all(groups.get(c) == g for c in self.consumers[i])]
            for i in params:
                self.nodes[f"t{i}"]["cluster"] = cluster
            if g in expanded:
                for i in ops:
                    self.nodes[f"op{i}"]["cluster"] = cluster
                for i in internal:
                    self.nodes[f"t{i}"]["cluster"] = cluster
                continue
            self.collapsed.add(g)
            nid = "mod_" + _ident(g)
            while nid in self.nodes:
                nid += "_"
            # a cluster holds the summary and the module's parameters; a module without any needs none
            self.nodes[nid] = {"kind": "module", "group": g, "ops": ops, "cluster": cluster if params else None,
                               "members": {f"op{i}" for i in ops} | {f"t{i}" for i in internal}}
            for i in ops:
                new_rep[f"op{i}"] = nid
            for i in internal:
                new_rep[f"t{i}"] = nid
        self._remap(new_rep)
        for old in new_rep:
            del self.nodes[old]
        self._order_modules()

    def _order_modules(self):
        """Move each module node to where its first op was (the DOT text then reads in data-flow order)."""
        def pos(item):
            nid, node = item
            if node["kind"] == "module":
                return min(node["ops"]) - 0.5
            return node["i"] - (0.5 if node["kind"] == "op" else 0.0)
        self.nodes = dict(sorted(self.nodes.items(), key=pos))

    def highlight(self, highlight):
        targets = highlight if isinstance(highlight, (list, tuple)) else [highlight]
        start = []
        for h in targets:
            if isinstance(h, Tensor):
                t = h
            elif isinstance(h, str):
                t = self.name_to_tensor.get(h)
                if t is None:
                    known = sorted(self.name_to_tensor)
                    raise ValueError(f"draw_graph: highlight={h!r} names no tensor; known names: "
                                     f"{', '.join(known[:20]) or '(none: pass params= or names=)'}")
            else:
                raise TypeError(f"draw_graph: highlight must be a name or a Tensor, got {type(h).__name__}")
            i = self.index.get(id(t))
            if i is None:
                self.notes.append(f"highlight: {h if isinstance(h, str) else 'the tensor'} is not in this graph")
                continue
            start.append(i)
        # forward closure: every tensor in the drawing is an ancestor of an output, so all of it is on a path
        on = set()
        queue = deque(start)
        while queue:
            i = queue.popleft()
            if i in on:
                continue
            on.add(i)
            queue.extend(self.consumers.get(i, ()))
        for i in on:
            self.hl_keys.add(f"t{i}")
            if i not in start and self.tensors[i]._ctx is not None:
                self.hl_keys.add(f"op{i}")
                self.hl_edges.add((f"op{i}", f"t{i}"))
                for p in _parents(self.tensors[i]) or ():
                    j = self.index[id(p)]
                    if j in on:
                        self.hl_edges.add((f"t{j}", f"op{i}"))

    def limit(self, max_nodes: int):
        """Keep max_nodes - 1 nodes and fold the rest into one "more" node.

        Two frontiers grow by distance, one back from the outputs and one forward
        from the sources (parameters first, then other leaves).  A node joins the
        output side only once all its readers have, and the source side only once
        all its inputs have, so every edge into "more" comes from the source side
        and every edge out of it goes to the output side: the summary adds no cycle.
        """
        if len(self.nodes) <= max_nodes:
            return
        preds, succs = {}, {}
        for s, d in self.edges:
            preds.setdefault(d, set()).add(s)
            succs.setdefault(s, set()).add(d)
        position = {nid: k for k, nid in enumerate(self.nodes)}
        root_nodes = {self.rep[f"t{i}"] for i in self.root_idx} - {None}
        params = {self.rep[f"t{i}"] for i in self.param_names}
        sources = [n for n in self.nodes if not preds.get(n)]
        d_src = _bfs(sources, succs)
        sides = {0: set(), 1: set()}  # 0: output side, 1: source side
        heap = [(0, 0, -position[n], n) for n in root_nodes]
        heap += [(0 if n in params else 0.5, 1, position[n], n) for n in sources]
        heapq.heapify(heap)
        keep: set = set()
        while heap and len(keep) < max_nodes - 1:
            dist, side, _, nid = heapq.heappop(heap)
            if nid in sides[side]:
                continue
            sides[side].add(nid)
            keep.add(nid)
            if side == 0:
                for p in preds.get(nid, ()):
                    if p not in sides[0] and succs[p] <= sides[0]:
                        heapq.heappush(heap, (dist + 1, 0, -position[p], p))
            else:
                for c in succs.get(nid, ()):
                    if c not in sides[1] and preds[c] <= sides[1]:
                        heapq.heappush(heap, (d_src.get(c, dist + 1), 1, position[c], c))
        hidden = [nid for nid in self.nodes if nid not in keep]
        op_types, n_ops, n_tensors = Counter(), 0, 0
        members = set()
        for nid in hidden:
            node = self.nodes[nid]
            members |= node["members"]
            for key in node["members"]:
                if key.startswith("op"):
                    n_ops += 1
                    op_types[self.tensors[int(key[2:])]._ctx.name] += 1
                else:
                    n_tensors += 1
        self.hidden = {"ops": n_ops, "tensors": n_tensors, "types": op_types}
        more = {"kind": "more", "members": members, "cluster": None}
        self._remap({nid: "more" for nid in hidden})
        # the "more" node sits where the first hidden node was
        first = hidden[0]
        nodes = {}
        for nid, node in self.nodes.items():
            if nid == first:
                nodes["more"] = more
            if nid in keep:
                nodes[nid] = node
        self.nodes = nodes

    # -- output ------------------------------------------------------------------
    def _tensor_node(self, i):
        t = self.tensors[i]
        lines = []
        if i in self.names:
            lines.append(" = ".join(self.names[i]))
        elif t._ctx is None:
            lines.append("leaf" if t._requires_grad else "const")
        lines.append(_shape_text(t))
        if self.show_values:
            lines += _value_lines(np.asarray(t.data))
        if i in self.root_idx:
            fill = COLORS["output"]
        elif t._ctx is not None:
            fill = COLORS["tensor"]
        elif i in self.param_names:
            fill = COLORS["param"]
        else:
            fill = COLORS["leaf"] if t._requires_grad else COLORS["const"]
        attrs = {"shape": "box", "style": "rounded,filled"}
        info = self.grad_info.get(i)
        if info is not None:
            norm, status = info
            text = f"‖grad‖ {_fmt(norm)}"
            if status is not None:
                text += {"zero": " (zero)", "nonfinite": " (NaN/inf)", "exploding": " (exploding)"}[status]
                fill = COLORS[status]
                self.status_used.add(status)
            lines.append(text)
        elif self.any_grad and t._ctx is None and t._requires_grad:
            lines.append("grad None")
        if i in self.root_idx:
            attrs["penwidth"] = "2"
        attrs["fillcolor"] = fill
        return lines, attrs

    def _op_node(self, i):
        t = self.tensors[i]
        ctx = t._ctx
        ps = _parents(t)
        name = ctx.name
        if ps is not None and any(self.index[id(p)] in self.inlined for p in ps):
            args = [_fmt(float(p.data.reshape(-1)[0])) if self.index[id(p)] in self.inlined else "·" for p in ps]
            name = f"{name}({', '.join(args)})"
        if i in self.bw_number:
            name = f"[{self.bw_number[i]}] {name}"
        lines = [name]
        attrs = {"shape": "ellipse", "style": "filled", "fillcolor": COLORS["op"]}
        if ps is None:
            lines.append("(graph released)")
            attrs["style"] = "dashed,filled"
            attrs["fillcolor"] = "#ffffff"
        return lines, attrs

    def _module_node(self, nid, node):
        g = node["group"]
        cls = self.group_classes.get(g)
        lines = [f"{g} ({cls})" if cls else g]
        types = Counter(self.tensors[i]._ctx.name for i in node["ops"])
        parts = _counts(types, 8).split(", ")
        head = f"{len(node['ops'])} op{'s' if len(node['ops']) != 1 else ''}: "
        lines += [(head if k == 0 else "") + ", ".join(parts[k:k + 4]) for k in range(0, len(parts), 4)]
        ins = [self._shape_only(int(s[1:])) for s, d in self.edges
               if d == nid and s.startswith("t") and int(s[1:]) not in self.param_names]
        outs = [self._shape_only(i) for i in node["ops"] if f"t{i}" not in node["members"]]
        if ins or outs:
            lines.append(f"{', '.join(ins) or '∅'} → {', '.join(outs) or '∅'}")
        steps = sorted(self.bw_number[i] for i in node["ops"] if i in self.bw_number)
        if steps:
            lines.append(f"backward [{steps[0]}]–[{steps[-1]}]" if len(steps) > 1 else f"backward [{steps[0]}]")
        attrs = {"shape": "box3d", "style": "filled", "fillcolor": COLORS["module"]}
        return lines, attrs

    def _shape_only(self, i):
        t = self.tensors[i]
        return "scalar" if t.ndim == 0 else str(tuple(t.shape))

    def _more_node(self):
        h = self.hidden
        lines = [f"… {h['ops']} more op{'s' if h['ops'] != 1 else ''}, {h['tensors']} tensors",
                 f"({_counts(h['types'], 6)})"]
        attrs = {"shape": "note", "style": "filled", "fillcolor": COLORS["more"]}
        return lines, attrs

    def emit(self, rankdir, legend, title) -> VizGraph:
        dot = VizGraph(name="tinygrad_mnist", graph_attr={"rankdir": rankdir, "fontname": "Helvetica",
                                                           "fontsize": "12", "nodesep": "0.25",
                                                           "ranksep": "0.35"},
                       node_attr={"fontname": "Helvetica", "fontsize": "10", "margin": "0.08,0.04",
                                  "height": "0.3"},
                       edge_attr={"arrowsize": "0.6", "color": "#555555", "fontname": "Helvetica",
                                  "fontsize": "9"})
        label_lines = ([title] if title else []) + self.notes
        if label_lines:
            dot.attr(label="\\n".join(_esc(s) for s in label_lines), labelloc="t")
        hl_nodes = {self.rep[k] for k in self.hl_keys if self.rep.get(k) is not None}
        clusters: dict = {}
        for nid, node in self.nodes.items():
            kind = node["kind"]
            if kind == "tensor":
                lines, attrs = self._tensor_node(node["i"])
            elif kind == "op":
                lines, attrs = self._op_node(node["i"])
            elif kind == "module":
                lines, attrs = self._module_node(nid, node)
            else:
                lines, attrs = self._more_node()
            if nid in hl_nodes:
                attrs["color"] = COLORS["highlight"]
                attrs["penwidth"] = "3"
            label = "\\n".join(_esc(s) for s in lines)
            clusters.setdefault(node["cluster"], []).append((nid, label, attrs))
        for nid, label, attrs in clusters.pop(None, []):
            dot.node(nid, label, **attrs)
        titles = {"cluster_" + _ident(g): g for g in self.group_classes}
        for cname, items in clusters.items():
            g = titles.get(cname, cname)
            with dot.subgraph(name=cname) as c:
                c.attr(label=_esc(g), style="rounded,filled", color="#999999",
                       fillcolor="#fafafa", fontsize="11")
                for nid, label, attrs in items:
                    c.node(nid, label, **attrs)
        for (s, d), e in self.edges.items():
            attrs = {}
            if e["count"] > 1:
                attrs["label"] = f"×{e['count']}"
            if e["keys"] & self.hl_edges:
                attrs["color"] = COLORS["highlight"]
                attrs["penwidth"] = "2.5"
            dot.edge(s, d, **attrs)
        if legend is None:
            legend = bool(self.status_used or hl_nodes)
        if legend:
            self._legend(dot, hl_nodes)
        # weak references: the drawing does not keep the tensors (and their arrays) alive
        dot._viz_ids = {id(t): (weakref.ref(t), self.rep.get(f"t{i}")) for i, t in enumerate(self.tensors)}
        dot._viz_names = {n: self.rep.get(f"t{i}") for i, ns in self.names.items() for n in ns}
        dot.info = {
            "tensors": len(self.tensors), "ops": sum(t._ctx is not None for t in self.tensors),
            "nodes": len(self.nodes), "edges": len(self.edges),
            "modules": sorted(self.group_classes), "collapsed": sorted(self.collapsed),
            "hidden_ops": self.hidden["ops"] if self.hidden else 0, "notes": list(self.notes),
        }
        return dot

    def _legend(self, dot, hl_nodes):
        """One node with an HTML table: the colours used, whatever the rankdir."""
        rows = [("parameter", COLORS["param"], ""), ("tensor", COLORS["tensor"], ""), ("op", COLORS["op"], "")]
        if self.any_grad or self.status_used:
            rows += [(_STATUS_TEXT[s].format(threshold=self.threshold), COLORS[s], "")
                     for s in ("zero", "nonfinite", "exploding")]
        if hl_nodes:
            rows.append(("path to the output", "#ffffff", f' COLOR="{COLORS["highlight"]}" BORDER="3"'))
        cells = "".join(f'<TR><TD BGCOLOR="{color}"{extra}>{html.escape(text)}</TD></TR>'
                        for text, color, extra in rows)
        dot.node("legend", f'<<TABLE BORDER="0" CELLBORDER="1" CELLSPACING="2" CELLPADDING="3">'
                           f'<TR><TD BORDER="0"><B>legend</B></TD></TR>{cells}</TABLE>>',
                 shape="plaintext", fontsize="9")


def _bfs(starts, adj) -> dict:
    dist = {}
    queue = deque()
    for s in starts:
        if s is not None and s not in dist:
            dist[s] = 0
            queue.append(s)
    while queue:
        n = queue.popleft()
        for m in adj.get(n, ()):
            if m not in dist:
                dist[m] = dist[n] + 1
                queue.append(m)
    return dist


def _counts(counter: Counter, limit: int = 4) -> str:
    items = counter.most_common()
    parts = [f"{name}×{n}" if n > 1 else name for name, n in items[:limit]]
    if len(items) > limit:
        parts.append("…")
    return ", ".join(parts)


# ---------------------------------------------------------------------------
# rendering
# ---------------------------------------------------------------------------


def _write_atomic(path: Path, data: bytes) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
        os.chmod(tmp, 0o666 & ~_umask())  # mkstemp makes 0600 files; give the usual permissions
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def render_graph(dot: graphviz.Digraph, path, *, format: str | None = None) -> Path:
    """Write `dot` to `path`, the format chosen by the extension (.svg, .png, .pdf, ...; .dot: the DOT text).

    Rendering runs Graphviz's `dot` program.  Without it, the DOT text is written
    to path.with_suffix(".dot") and GraphvizNotFound (a RuntimeError) says where
    and how to install Graphviz.  Files are written atomically (temp file + rename).
    """
    path = Path(path)
    fmt = (format or path.suffix.lstrip(".")).lower()
    if not fmt:
        raise ValueError(f"render_graph: {path} has no extension; use .svg, .png, .pdf or .dot (or format=)")
    if fmt in ("dot", "gv"):
        _write_atomic(path, dot.source.encode("utf-8"))
        return path
    if fmt not in _FORMATS:
        raise ValueError(f"render_graph: unsupported format {fmt!r}; use one of svg, png, pdf, dot")

    def missing() -> GraphvizNotFound:
        dot_path = path.with_suffix(".dot")
        _write_atomic(dot_path, dot.source.encode("utf-8"))
        return GraphvizNotFound(
            f"Graphviz's `dot` program was not found on PATH, so {path} could not be rendered. "
            f"The DOT text was written to {dot_path} instead (render it later with "
            f"`dot -T{fmt} {dot_path} -o {path}`). {INSTALL_HINT}", dot_path)

    if shutil.which("dot") is None:
        raise missing()
    try:
        data = dot.pipe(format=fmt, engine="dot")
    except graphviz.ExecutableNotFound:
        raise missing() from None
    except graphviz.CalledProcessError as e:
        err = e.stderr.decode(errors="replace").strip() if isinstance(e.stderr, bytes) else e.stderr
        raise RuntimeError(f"render_graph: Graphviz's dot failed on {path}: {err}") from None
    _write_atomic(path, data)
    return path


save = render_graph
