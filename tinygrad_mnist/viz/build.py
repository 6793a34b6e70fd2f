"""Read the recorded graph once into the picture's model: one node per tensor and per op."""

from __future__ import annotations

import numpy as np

from ..engine import Tensor
from . import source
from .model import Graph, Node, TensorInfo


class Source:
    """The walk and the lookups the passes need while one picture is made (dropped afterwards)."""

    def __init__(self, objects: list):
        self.objects = objects                      # Tensor or released record, walk order
        self.index = {source.key(t): i for i, t in enumerate(objects)}
        self.calls: dict = {}                       # call id -> Call record

    def find(self, t) -> int | None:
        return self.index.get(source.key(t))

    def add(self, t) -> int:
        i = self.find(t)
        if i is None:
            i = len(self.objects)
            self.objects.append(t)
            self.index[source.key(t)] = i
        return i


def named_tensors(params) -> tuple[list, dict]:
    """([(name, tensor)], {module name: class name}) from a Module-like object or a dict name -> Tensor."""
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


def fmt(v: float) -> str:
    return f"{v:.4g}"


def value_lines(arr) -> list:
    """mean/std/min/max of an array (NaN and inf counted apart)."""
    if arr is None:
        return []
    if arr.size == 0:
        return ["empty"]
    if arr.size == 1:
        return [f"value {fmt(float(arr.reshape(-1)[0]))}"]
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
    out = [f"mean {fmt(vals.mean())} std {fmt(vals.std())}", f"min {fmt(vals.min())} max {fmt(vals.max())}"]
    return out + ([extra] if extra else [])


def grad_status(arr, threshold: float):
    """(norm, status) of a gradient array; status is None, 'zero', 'nonfinite' or 'exploding'."""
    if arr.size == 0:
        return 0.0, None
    if arr.dtype.kind in "fc" and not np.isfinite(arr).all():
        return float(np.linalg.norm(arr.astype(np.float64).ravel())), "nonfinite"
    if not arr.any():
        return 0.0, "zero"
    norm = float(np.linalg.norm(arr.astype(np.float64).ravel()))
    return norm, ("exploding" if norm > threshold else None)


def shape_text(shape) -> str:
    return "scalar" if len(shape) == 0 else str(tuple(shape))


def _info(t, show_values: bool, show_grads: bool, threshold: float) -> TensorInfo:
    fn = t.grad_fn
    info = TensorInfo(shape=tuple(t.shape), dtype=str(t.dtype), is_leaf=fn is None,
                      requires_grad=bool(t.requires_grad))
    arr = source.data(t)
    if fn is not None:
        info.op = fn.name
        info.released = source.released(fn)
        bw = source.backward_of(fn)
        info.backward_of = None if bw is None else bw.name
        info.calls = tuple((c.id, c.name) for c in reversed(source.calls(fn)))
    tip = [f"{shape_text(info.shape)} {info.dtype}"]
    stats = value_lines(arr) if arr is not None and arr.dtype.kind in "biuf" else []
    if show_values:
        info.values = stats
    tip += [f"value {s}" if not s.startswith("value") else s for s in stats]
    g = source.grad_array(t) if show_grads else None
    if g is not None:
        info.grad = grad_status(g, threshold)
        tip.append(f"grad ‖g‖ {fmt(info.grad[0])}")
        tip += [f"grad {s}" for s in value_lines(g)]
    info.tooltip = tip
    return info


def build(roots, root_names, params, names, *, show_values=False, show_grads=True, threshold=1e3,
          inline_constants=True, extra_inputs=True, live=()) -> tuple[Graph, Source]:
    """The base picture: tensors and ops of everything `roots` depend on, named and measured."""
    src = Source(source.walk(roots))
    param_items, module_classes = named_tensors(params)
    if names is not None and not isinstance(names, dict):
        raise TypeError(f"draw_graph: names must be a dict name -> Tensor, got {type(names).__name__}")
    for name, t in (names or {}).items():
        if not isinstance(t, Tensor):
            raise TypeError(f"draw_graph: names[{name!r}] is a {type(t).__name__}, not a Tensor")

    # tensors the user passed to composite calls (the image before im2col) join the picture
    n_walk = len(src.objects)
    if extra_inputs:
        for t in list(src.objects):
            fn = t.grad_fn
            for c in source.calls(fn) if fn is not None else ():
                src.calls.setdefault(c.id, c)
                for x in c.inputs:
                    if isinstance(x, Tensor) or hasattr(x, "grad_fn"):
                        src.add(x)
    infos = []
    for i, t in enumerate(src.objects):
        info = _info(t, show_values, show_grads, threshold)
        info.extra = i >= n_walk
        if info.op is not None:
            info.inputs = [src.find(p) for p in source.inputs(t.grad_fn)]
        infos.append(info)
    g = Graph(tensors=infos, roots=[])
    g.info["module_classes"] = module_classes

    # names: parameters, then names=, outputs and Tensor.name
    unused = []
    for name, t in param_items:
        i = src.find(t)
        if i is None:
            unused.append(name)
            continue
        infos[i].names.append(name)
        if infos[i].param is None:
            infos[i].param = name
            g.param_index.setdefault(name, i)
    g.info["name_to_tensor"] = dict(param_items)
    extra_names = list((names or {}).items())
    for name, t in extra_names:
        g.info["name_to_tensor"].setdefault(name, t)
    for name, r in zip(root_names, roots):
        i = src.find(r)
        if i not in g.roots:
            g.roots.append(i)
        if name is not None:
            extra_names.append((name, r))
            g.info["name_to_tensor"].setdefault(name, r)
    for name, t in extra_names:
        i = src.find(t)
        if i is not None and name not in infos[i].names:
            infos[i].names.append(name)
    for i, t in enumerate(src.objects):
        own = source.name(t)
        if own and own not in infos[i].names:
            infos[i].names.insert(0, str(own))
    # a constant the model made from a named batch by a view (x.reshape(-1, 1, 28, 28)) keeps the name;
    # `live` are tensors the caller still holds (a trace's module inputs), for graphs already released
    roots_by_name = {}
    for name, t in extra_names:
        arr = source.data(t)
        if arr is not None and not t.requires_grad:
            roots_by_name.setdefault(id(source.array_root(arr)), name)
    if roots_by_name:
        for t in list(src.objects) + list(live):
            i = src.find(t)
            arr = source.data(t)
            if i is None or arr is None or infos[i].names or not infos[i].is_leaf or infos[i].requires_grad:
                continue
            hit = roots_by_name.get(id(source.array_root(arr)))
            if hit is not None:
                infos[i].names.append(hit)
    unnamed = [i for i in g.roots if not infos[i].names]
    for k, i in enumerate(unnamed):
        infos[i].names.append("output" if len(unnamed) == 1 else f"output {k}")
    if unused and len(unused) < len(param_items):
        shown = ", ".join(unused[:6]) + (", …" if len(unused) > 6 else "")
        g.notes.append(f"parameters not in this graph: {shown}")

    # one-element constants are written into the op that reads them ("Mul(·, 0.5)")
    inlined = set()
    if inline_constants:
        for i, (t, info) in enumerate(zip(src.objects, infos)):
            arr = source.data(t)
            if (info.is_leaf and not info.requires_grad and not info.names and arr is not None and arr.size <= 1
                    and not info.extra):
                inlined.add(i)
    g.info["inlined"] = {i: fmt(float(source.data(src.objects[i]).reshape(-1)[0])) for i in inlined}

    for i, info in enumerate(infos):
        for j in info.inputs:
            g.consumers.setdefault(j, []).append(i)
    for i, info in enumerate(infos):
        if info.op is not None:
            g.add_node(Node(f"op{i}", "op", info.op, members={f"op{i}"}, order=i - 0.5))
        if i not in inlined:
            g.add_node(Node(f"t{i}", "tensor", "", members={f"t{i}"}, order=float(i)))
    for i, info in enumerate(infos):
        if info.op is None:
            continue
        for j in info.inputs:
            if j not in inlined:
                g.add_edge(f"t{j}", f"op{i}", (f"t{j}", f"op{i}"))
        g.add_edge(f"op{i}", f"t{i}", (f"op{i}", f"t{i}"))
    released = sum(1 for info in infos if info.released)
    if released:
        g.notes.append(f"drawn after backward(): {released} op{'s' if released != 1 else ''} freed their saved "
                       f"arrays, the structure is kept")
    # extra tensors that no collapsed call ends up using are removed by collapse_calls
    return g, src
