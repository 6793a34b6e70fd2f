"""DOT emission, the last step: labels, colours, tooltips, clusters and the legend."""

from __future__ import annotations

import html
import weakref

import graphviz

from .build import fmt, shape_text
from .model import Graph
from .passes import human_bytes, op_indices, saved_bytes
from .render import INSTALL_HINT

# fill colours by role, gradient status colours, and the marks
COLORS = {
    "param": "#c7e9c0",      # a named parameter
    "leaf": "#fff7bc",       # another leaf that requires grad
    "const": "#eeeeee",      # data: a leaf that needs no grad
    "tensor": "#ffffff",     # an intermediate result
    "output": "#9ecae1",     # the tensor(s) drawn from
    "op": "#deebf7",         # a primitive op
    "call": "#dadaeb",       # a functional call (conv2d, cross_entropy, ...)
    "module": "#fdd49e",     # a module drawn as one box
    "fold": "#fdae6b",       # a run of repeated blocks
    "more": "#f0f0f0",       # the "… N more ops" node
    "zero": "#b39ddb",       # gradient exactly zero
    "nonfinite": "#ef3b2c",  # gradient with NaN or inf
    "exploding": "#fd8d3c",  # gradient norm above grad_threshold
    "highlight": "#e7298a",  # path from the highlighted tensor to the output
    "saved": "#cb181d",      # border of a tensor kept alive for backward
}

_STATUS_TEXT = {
    "zero": "gradient exactly zero",
    "nonfinite": "gradient has NaN / inf",
    "exploding": "gradient norm > {threshold:g}",
}

_KIND_TEXT = {"param": "parameter", "const": "data (no grad)", "leaf": "leaf that requires grad",
              "tensor": "tensor", "output": "output", "op": "op", "call": "functional call",
              "module": "module", "fold": "repeated blocks", "more": "hidden ops"}


class VizGraph(graphviz.Digraph):
    """The `graphviz.Digraph` returned by draw_graph, plus a map from tensors to their node ids.

    `node_id(tensor_or_name)` gives the id of the node that shows a tensor (a
    tensor node "t<i>", or the call / module / "more" node that absorbed it), or None.
    `info` summarizes the drawing (counts, modules, hidden ops, totals).
    In Jupyter the object displays itself as SVG (graphviz's `_repr_mimebundle_`); without Graphviz's
    `dot` program it shows how to install it and the DOT text instead of a traceback.
    """

    _viz_ids: dict = {}
    _viz_names: dict = {}
    info: dict = {}

    def node_id(self, what) -> str | None:
        if isinstance(what, str):
            return self._viz_names.get(what)
        hit = self._viz_ids.get(id(what))
        if hit is None:
            return None
        ref, nid = hit
        return nid if ref is None or ref() is what else None

    def _repr_svg_(self) -> str:
        return self.pipe(format="svg", encoding="utf-8")

    def _repr_mimebundle_(self, include=None, exclude=None, **kwargs) -> dict:
        try:
            return super()._repr_mimebundle_(include, exclude, **kwargs)
        except graphviz.ExecutableNotFound:
            return {"text/plain": f"(no picture: Graphviz's `dot` is not installed. {INSTALL_HINT})\n{self.source}"}


def esc(s: str) -> str:
    """Text for a DOT label: backslashes kept literal (lines are joined with \\n afterwards)."""
    return str(s).replace("\\", "\\\\")


def _tip(lines) -> str:
    # tooltips take the same escapes as labels; "\n" is a line break in the SVG's title
    return "\\n".join(esc(s) for s in lines if s)


class _Emitter:
    def __init__(self, g: Graph, threshold: float, show_saved: bool, bw_numbers: dict):
        self.g = g
        self.threshold = threshold
        self.show_saved = show_saved
        self.bw = bw_numbers
        self.backward = g.info.get("direction") == "backward"
        self.used: set = set()   # legend rows
        self.status_used: set = set()

    # -- labels ----------------------------------------------------------------------
    def tensor(self, node):
        i = int(node.id[1:])
        t = self.g.tensors[i]
        lines = []
        if t.names:
            name = " = ".join(t.names)
            lines.append(f"∂ {name}" if self.backward else name)
        elif self.backward:
            lines.append("grad")
        elif t.is_leaf:
            lines.append("leaf" if t.requires_grad else "const")
        lines.append(f"{shape_text(t.shape)} {t.dtype}")
        lines += t.values
        if i in self.g.roots:
            role = "output"
        elif not t.is_leaf:
            role = "tensor"
        elif t.param is not None:
            role = "param"
        else:
            role = "leaf" if t.requires_grad else "const"
        self.used.add(role)
        attrs = {"shape": "box", "style": "rounded,filled", "fillcolor": COLORS[role]}
        if t.grad is not None:
            norm, status = t.grad
            text = f"‖grad‖ {fmt(norm)}"
            if status is not None:
                text += {"zero": " (zero)", "nonfinite": " (NaN/inf)", "exploding": " (exploding)"}[status]
                attrs["fillcolor"] = COLORS[status]
                self.status_used.add(status)
            lines.append(text)
        elif self.g.info.get("any_grad") and t.is_leaf and t.requires_grad:
            lines.append("grad None")
        if self.show_saved and t.saved_output:
            lines.append(f"saved for backward {human_bytes(t.nbytes)}")
            attrs["color"] = COLORS["saved"]
            attrs["penwidth"] = "2"
            self.used.add("saved")
        if i in self.g.roots:
            attrs["penwidth"] = "2"
        tip = ([" = ".join(t.names)] if t.names else []) + t.tooltip
        if self.show_saved and t.saved_output:
            tip.append("kept alive for backward")
        return lines, attrs, tip

    def op(self, node):
        i = int(node.id[2:])
        t = self.g.tensors[i]
        inlined = self.g.info.get("inlined", {})
        name = t.op
        if any(j in inlined for j in t.inputs):
            name = f"{name}({', '.join(inlined.get(j, '·') for j in t.inputs)})"
        if self.backward:
            name = f"{name} backward"
        if i in self.bw:
            name = f"[{self.bw[i]}] {name}"
        lines = [name]
        if t.backward_of:
            lines.append(f"backward of {t.backward_of}")
        self.used.add("op")
        attrs = {"shape": "ellipse", "style": "filled", "fillcolor": COLORS["op"]}
        held = saved_bytes(self.g, [i]) if self.show_saved else 0
        if held:
            lines.append(f"keeps {human_bytes(held)}")
        tip = [t.op, f"→ {shape_text(t.shape)} {t.dtype}"]
        if t.backward_of:
            tip.append(f"recorded by the backward of {t.backward_of}")
        if t.calls:
            tip.append("inside " + " › ".join(name for _, name in t.calls))
        if t.released:
            tip.append("saved arrays freed by backward()")
        return lines, attrs, tip

    def group(self, node):
        """A call, module, fold or "more" node: its title and lines were written by the pass."""
        title = node.title
        if self.backward and node.kind in ("call", "module", "fold"):
            title = f"{title} backward"
        ops = op_indices(node)
        steps = sorted(self.bw[i] for i in ops if i in self.bw)
        if steps and node.kind == "call":
            title = f"[{steps[0]}–{steps[-1]}] {title}" if len(steps) > 1 else f"[{steps[0]}] {title}"
        lines = [title] + list(node.lines)
        if steps and node.kind in ("module", "fold"):
            lines.append(f"backward [{steps[0]}]–[{steps[-1]}]" if len(steps) > 1 else f"backward [{steps[0]}]")
        if self.show_saved and node.kind != "more":
            held = saved_bytes(self.g, ops)
            if held:
                lines.append(f"saved {human_bytes(held)}")
        self.used.add(node.kind)
        attrs = {"shape": "box", "style": "filled", "fillcolor": COLORS[node.kind]}
        if node.kind == "call":
            attrs["style"] = "rounded,filled"
        elif node.kind == "fold":
            attrs["peripheries"] = "2"
        elif node.kind == "more":
            attrs["shape"] = "note"
        return lines, attrs, list(node.tooltip) or lines

    # -- the graph -------------------------------------------------------------------------
    def emit(self, rankdir: str, legend: bool, title: str | None) -> VizGraph:
        g = self.g
        dot = VizGraph(name="tinygrad_mnist",
                       graph_attr={"rankdir": rankdir, "fontname": "Helvetica", "fontsize": "12",
                                   "nodesep": "0.25", "ranksep": "0.35"},
                       node_attr={"fontname": "Helvetica", "fontsize": "10", "margin": "0.12,0.06",
                                  "height": "0.3"},
                       edge_attr={"arrowsize": "0.6", "color": "#555555", "fontname": "Helvetica",
                                  "fontsize": "9"})
        label_lines = ([title] if title else []) + list(g.notes) + list(g.totals.values())
        if label_lines:
            dot.attr(label="\\n".join(esc(s) for s in label_lines), labelloc="t")
        items = []
        for nid, node in g.nodes.items():
            if node.kind == "tensor":
                lines, attrs, tip = self.tensor(node)
            elif node.kind == "op":
                lines, attrs, tip = self.op(node)
            else:
                lines, attrs, tip = self.group(node)
            if "highlight" in node.marks:
                attrs["color"] = COLORS["highlight"]
                attrs["penwidth"] = "3"
                self.used.add("highlight")
            attrs["tooltip"] = _tip(tip)
            items.append((node.cluster, nid, "\\n".join(esc(s) for s in lines), attrs))
        self._write_nodes(dot, items)
        for (s, d), e in g.edges.items():
            attrs = {}
            if e.count > 1:
                attrs["label"] = f"×{e.count}"
            if e.highlight:
                attrs["color"] = COLORS["highlight"]
                attrs["penwidth"] = "2.5"
            dot.edge(s, d, **attrs)
        if legend:
            self._legend(dot)
        return dot

    def _write_nodes(self, dot, items):
        """Nodes outside clusters first, then each cluster (nested as the paths say), in drawing order."""
        tree: dict = {"nodes": [], "subs": {}}
        for path, nid, label, attrs in items:
            level = tree
            for c in path:
                level = level["subs"].setdefault(c, {"nodes": [], "subs": {}})
            level["nodes"].append((nid, label, attrs))

        def write(target, level):
            for nid, label, attrs in level["nodes"]:
                target.node(nid, label, **attrs)
            for cid, sub in level["subs"].items():
                cl = self.g.clusters.get(cid)
                with target.subgraph(name=cid) as c:
                    kind = cl.kind if cl else "module"
                    if kind == "frame":
                        c.attr(label="", style="rounded", color="#cccccc")
                    elif kind == "call":
                        c.attr(label=esc(cl.label), style="rounded,dashed", color="#756bb1", fontsize="10")
                    else:
                        text = cl.label if cl else cid
                        c.attr(label=esc(text), style="rounded,filled", color="#999999", fillcolor="#fafafa",
                               fontsize="11")
                    write(c, sub)

        write(dot, tree)

    def _legend(self, dot):
        """One node with an HTML table: the kinds of node and the colours used, whatever the rankdir."""
        order = ["output", "param", "const", "leaf", "tensor", "op", "call", "module", "fold", "more"]
        rows = [(_KIND_TEXT[k], COLORS[k], "") for k in order if k in self.used]
        rows += [(_STATUS_TEXT[s].format(threshold=self.threshold), COLORS[s], "")
                 for s in ("zero", "nonfinite", "exploding") if s in self.status_used]
        if "saved" in self.used:
            rows.append(("kept alive for backward", "#ffffff", f' COLOR="{COLORS["saved"]}" BORDER="2"'))
        if "highlight" in self.used:
            rows.append(("path to the output", "#ffffff", f' COLOR="{COLORS["highlight"]}" BORDER="3"'))
        cells = "".join(f'<TR><TD BGCOLOR="{color}"{extra}>{html.escape(text)}</TD></TR>'
                        for text, color, extra in rows)
        dot.node("legend", f'<<TABLE BORDER="0" CELLBORDER="1" CELLSPACING="2" CELLPADDING="4">'
                           f'<TR><TD BORDER="0"><B>legend</B></TD></TR>{cells}</TABLE>>',
                 shape="plaintext", fontsize="9")


def emit(g: Graph, src, *, rankdir="LR", legend=True, title=None, threshold=1e3, show_saved=False,
         bw_numbers=None) -> VizGraph:
    em = _Emitter(g, threshold, show_saved, bw_numbers or {})
    dot = em.emit(rankdir, legend, title)
    ids = {}
    for i, t in enumerate(src.objects):
        try:
            ref = weakref.ref(t)
        except TypeError:  # a record without weak references: identity by id only
            ref = None
        ids[id(t)] = (ref, g.rep.get(f"t{i}"))
    # weak references: the drawing does not keep the tensors (and their arrays) alive
    dot._viz_ids = ids
    dot._viz_names = {}
    for i, t in enumerate(g.tensors):
        for n in t.names:
            dot._viz_names.setdefault(n, g.rep.get(f"t{i}"))
    for n, i in g.param_index.items():
        dot._viz_names.setdefault(n, g.rep.get(f"t{i}"))
    dot.info = {
        "tensors": sum(1 for t in g.tensors if not t.extra),
        "ops": sum(t.op is not None for t in g.tensors),
        "nodes": len(g.nodes), "edges": len(g.edges),
        "modules": g.info.get("modules", []), "collapsed": g.info.get("collapsed", []),
        "folds": g.info.get("folds", []), "calls": g.info.get("calls", 0),
        "hidden_ops": g.info.get("hidden_ops", 0), "notes": list(g.notes),
        "params": g.info.get("params", 0), "param_bytes": g.info.get("param_bytes", 0),
        "saved_bytes": g.info.get("saved_total", 0) if show_saved else None,
        "direction": g.info.get("direction", "forward"),
    }
    return dot
