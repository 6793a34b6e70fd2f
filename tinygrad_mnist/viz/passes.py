"""The passes: each takes the picture (model.Graph) and merges, groups or marks nodes.

draw_graph runs them in this order: module scopes are found, repeated blocks
folded, functional calls collapsed, modules grouped (depth), then backward
numbers, highlight, saved memory, the node limit, and the backward view.
Each is a plain function and can be read (and tested) on its own.
"""

from __future__ import annotations

import heapq
import re
from collections import Counter, deque

from . import source
from .build import fmt, shape_text
from .model import Cluster, Graph, Node, Scope

# ops that only move or reshape data: at a module's border they are drawn as part of it
MOVEMENT_OPS = frozenset({"Reshape", "Permute", "Expand", "Pad", "Unfold", "Cast"})


def ident(s: str) -> str:
    return re.sub(r"\W", "_", s) or "_"


def human_bytes(n: int) -> str:
    for unit in ("B", "KiB", "MiB", "GiB"):
        if n < 1024 or unit == "GiB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.3g} {unit}"
        n /= 1024
    return f"{n} B"


def counts(counter: Counter, limit: int = 4) -> str:
    items = counter.most_common()
    parts = [f"{name}×{n}" if n > 1 else name for name, n in items[:limit]]
    if len(items) > limit:
        parts.append("…")
    return ", ".join(parts)


def op_indices(node: Node) -> list:
    return sorted(int(k[2:]) for k in node.members if k.startswith("op"))


# ---------------------------------------------------------------------------
# module scopes: recorded by trace_modules, or inferred from parameter names
# ---------------------------------------------------------------------------


def scopes_from_trace(g: Graph, src, trace) -> list:
    """One Scope per recorded module call whose ops are in the picture, in call order."""
    scopes = []
    by_id = {}
    for call in trace.calls:
        stop = {src.find(t) for t in call["inputs"]} - {None}
        outs = [i for i in (src.find(t) for t in call["outputs"]) if i is not None]
        ops, seen = set(), set()
        stack = [i for i in outs if i not in stop]
        while stack:
            i = stack.pop()
            if i in seen or g.tensors[i].op is None:
                continue
            seen.add(i)
            ops.add(i)
            stack.extend(j for j in g.tensors[i].inputs if j is not None and j not in stop)
        s = Scope(id=call["name"], module=call.get("module", call["name"]), cls=call["cls"],
                  parent=call.get("parent"), level=call["depth"] + 1, ops=ops,
                  inputs=sorted(stop), outputs=outs)
        scopes.append(s)
        by_id[s.id] = s
    for s in scopes:
        if s.parent in by_id:
            by_id[s.parent].children.append(s.id)
        else:
            s.parent = None
    return [s for s in scopes if s.ops]


def infer_module_groups(g: Graph) -> dict:
    """Guess which module each op belongs to, from the dotted names of the parameters.

    Returns op index -> module name.  The rules:

    1. A tensor is *owned* by module M if it is a parameter of M, or the result
       of an op whose inputs are all owned by M or are one-element constants
       (W.T, W.reshape, W * 0.5).  Such ops belong to M.
    2. An op with an input owned by exactly one module M belongs to M: that is
       where M's parameters meet the data (Linear's Matmul, a conv2d).
    3. Movement ops (Reshape, Permute, Expand, Pad, Unfold, Cast) at a module's
       border join it: after it when their input comes from M, before it when
       every reader of their result is in M (a flatten feeding fc1).
    Everything else (activations, pooling, the loss) stays outside modules.
    For exact (and nested) groups, record the forward with `trace_modules`.
    """
    owner: dict = {}
    group: dict = {}
    ts = g.tensors
    roots = set(g.roots)
    for i, t in enumerate(ts):
        if t.param is not None:
            owner[i] = t.param.rpartition(".")[0] or None
            continue
        if t.op is None or any(j is None for j in t.inputs):
            continue
        owners = {owner.get(j) for j in t.inputs if ts[j].requires_grad or _size(ts[j].shape) > 1}
        if len(owners) == 1 and None not in owners:
            owner[i] = group[i] = owners.pop()
            continue
        direct = {owner[j] for j in t.inputs if owner.get(j) is not None}
        if len(direct) == 1:
            group[i] = direct.pop()
    for i, t in enumerate(ts):
        if i in group or t.op not in MOVEMENT_OPS:
            continue
        mods = {group.get(j) for j in t.inputs if j is not None and ts[j].requires_grad}
        if len(mods) == 1 and None not in mods:
            group[i] = mods.pop()
    for i in range(len(ts) - 1, -1, -1):
        t = ts[i]
        if i in group or i in roots or t.op not in MOVEMENT_OPS:
            continue
        mods = {group.get(j) for j in g.consumers.get(i, ())}
        if len(mods) == 1 and None not in mods:
            group[i] = mods.pop()
    return group


def _size(shape) -> int:
    n = 1
    for s in shape:
        n *= s
    return n


def scopes_inferred(g: Graph, module_classes: dict) -> list:
    """Module scopes without a trace: leaf modules from parameter names (infer_module_groups), their
    containers from the dotted names ("blocks.3.fc1" is in "blocks.3", in "blocks").  An op in no leaf
    module joins the container of the module its newest input came from (the ReLU between a block's two
    Linears, the block's residual Add), never the model itself."""
    groups = infer_module_groups(g)
    leaves = set(groups.values())
    scope_of = dict(groups)
    for i, t in enumerate(g.tensors):
        if t.op is None or i in scope_of:
            continue
        ins = [j for j in t.inputs if j is not None]
        home = scope_of.get(max(ins)) if ins else None
        if home is not None:
            home = home.rpartition(".")[0] if home in leaves else home
            if home:
                scope_of[i] = home
    members: dict = {}
    for i, name in scope_of.items():
        parts = name.split(".")
        for k in range(1, len(parts) + 1):
            members.setdefault(".".join(parts[:k]), set()).add(i)
    scopes, by_id = [], {}
    for name in sorted(members, key=lambda n: (min(members[n]), n.count("."))):
        ops = members[name]
        ins = sorted({j for i in ops for j in g.tensors[i].inputs if j is not None and j not in ops})
        outs = sorted(i for i in ops if i in g.roots or any(c not in ops for c in g.consumers.get(i, ())))
        parent = name.rpartition(".")[0] or None
        s = Scope(id=name, module=name, cls=module_classes.get(name), parent=parent if parent in members else None,
                  level=name.count(".") + 1, ops=ops, inputs=ins, outputs=outs)
        scopes.append(s)
        by_id[name] = s
    for s in scopes:
        if s.parent is not None:
            by_id[s.parent].children.append(s.id)
    return scopes


def scope_params(g: Graph, scope: Scope) -> list:
    """Tensor indices of the parameters of a scope's module (all of a fold's modules)."""
    mods = [scope] + list(scope.fold)
    prefixes = tuple(m.module + "." for m in mods if m.module)
    return [i for name, i in g.param_index.items() if name.startswith(prefixes)]


# ---------------------------------------------------------------------------
# folding repeated blocks
# ---------------------------------------------------------------------------


def fold_repeats(g: Graph, scopes: list, min_run: int = 2) -> list:
    """Runs of consecutive sibling calls of one class, with equal parameter shapes, each feeding the next,
    become one Scope (drawn as "Block × 12").  Their nested calls disappear into it."""
    by_id = {s.id: s for s in scopes}
    siblings: dict = {}
    for s in scopes:
        siblings.setdefault(s.parent, []).append(s)

    def shapes(s):
        return [g.tensors[i].shape for i in sorted(scope_params(g, s))]

    folds = []
    for group in siblings.values():
        run = [group[0]]
        for s in group[1:] + [None]:
            prev = run[-1]
            if (s is not None and s.cls == prev.cls and s.cls is not None and shapes(s) == shapes(prev)
                    and set(prev.outputs) & set(s.inputs)):
                run.append(s)
                continue
            if len(run) >= min_run:
                folds.append(run)
            run = [s]
    if not folds:
        return scopes
    out = list(scopes)
    for run in folds:
        first, last = run[0], run[-1]
        f = Scope(id=f"{first.id}…{last.id}", module="", cls=first.cls, parent=first.parent, level=first.level,
                  ops=set().union(*(s.ops for s in run)), inputs=first.inputs, outputs=last.outputs, fold=run)
        hidden = set()
        stack = [s.id for s in run]
        while stack:
            sid = stack.pop()
            hidden.add(sid)
            stack.extend(by_id[sid].children if sid in by_id else ())
        pos = out.index(first)
        out = [s for s in out if s.id not in hidden]
        out.insert(min(pos, len(out)), f)
        if f.parent in by_id:
            kids = by_id[f.parent].children
            k = kids.index(first.id)
            by_id[f.parent].children = [c for c in kids if c not in hidden]
            by_id[f.parent].children.insert(k, f.id)
    return out


# ---------------------------------------------------------------------------
# functional calls (conv2d, max_pool2d, cross_entropy, ...) as one node
# ---------------------------------------------------------------------------


def collapse_calls(g: Graph, src, expanded) -> None:
    """Draw each composite call the user made as one node named after it, fed by the tensors the user passed.

    `expanded(call_name, op_index)` says whether a call is drawn op by op instead (inside a cluster
    named after it).  Constants made inside a call (masks, unfolded columns) vanish into its node.
    """
    collapsed: dict = {}
    paths: dict = {}  # op index -> clusters of the expanded calls around it
    first: dict = {}  # call id -> index of its first op
    for i, t in enumerate(g.tensors):
        if t.op is None or not t.calls:
            continue
        path = []
        for cid, cname in t.calls:  # outermost first
            if expanded(cname, i):
                # named after the call's first op (Call.id counts calls process-wide): the same step, the same DOT
                cl = f"cluster_call{first.setdefault(cid, i)}"
                path.append(cl)
                g.clusters.setdefault(cl, Cluster(cl, cname, "call"))
                continue
            collapsed.setdefault(cid, []).append(i)
            break
        if path and f"op{i}" in g.nodes:
            g.nodes[f"op{i}"].cluster = tuple(path)
            paths[i] = tuple(path)
    # a result read only inside the expanded calls that made it sits in their cluster too
    for i, path in paths.items():
        readers = g.consumers.get(i, ())
        if f"t{i}" in g.nodes and i not in g.roots and readers:
            shared = _common_prefix([list(path)] + [list(paths.get(c, ())) for c in readers])
            g.nodes[f"t{i}"].cluster = tuple(shared)
    plans = []
    for cid, ops in collapsed.items():
        call = src.calls.get(cid)
        ops_set = set(ops)
        name = dict(g.tensors[ops[0]].calls)[cid]
        given = [] if call is None else [j for j in (src.find(x) for x in call.inputs) if j is not None]
        given_set = set(given)
        members = [f"op{i}" for i in ops]
        outputs = []
        for i in ops:
            if i in g.roots or any(c not in ops_set for c in g.consumers.get(i, ())) or g.tensors[i].names:
                outputs.append(i)
            else:
                members.append(f"t{i}")
        # constants made inside the call, read only by it
        for i in ops:
            for j in g.tensors[i].inputs:
                t = g.tensors[j]
                if (t.is_leaf and not t.requires_grad and not t.names and j not in given_set and not t.extra
                        and all(c in ops_set for c in g.consumers.get(j, ()))):
                    members.append(f"t{j}")
        cur = [g.rep.get(k) for k in members]
        node = Node(f"call{min(ops)}", "call", name)
        plans.append((node, ops, given, outputs, call, name, [c for c in cur if c is not None]))
    g.merge_many([(plan[-1], plan[0]) for plan in plans])
    for node, ops, given, outputs, call, name, _ in plans:
        for j in given:
            tid = g.rep.get(f"t{j}")
            if g.tensors[j].extra:  # read by the call (through ops that were not recorded)
                g.consumers.setdefault(j, []).append(min(ops))
            if tid is not None and tid != node.id and (tid, node.id) not in g.edges:
                g.add_edge(tid, node.id, (f"t{j}", f"op{min(ops)}"))
        ins = [shape_text(g.tensors[j].shape) for j in given if g.tensors[j].param is None]
        if call is not None and getattr(call, "output_shape", None) is not None:
            out = [shape_text(tuple(call.output_shape))]
        else:
            out = [shape_text(g.tensors[i].shape) for i in outputs]
        node.lines = [f"{', '.join(ins) or '·'} → {', '.join(out) or '·'}"]
        node.tooltip = [name, f"{len(ops)} op{'s' if len(ops) != 1 else ''}: "
                        + counts(Counter(g.tensors[i].op for i in ops), 8)]
    n_calls = len(plans)
    # tensors handed to calls that are drawn op by op are not part of the picture
    linked = {s for s, _ in g.edges} | {d for _, d in g.edges}
    g.remove([nid for nid, n in g.nodes.items() if n.kind == "tensor" and nid not in linked
              and g.tensors[int(nid[1:])].extra])
    g.info["calls"] = n_calls


# ---------------------------------------------------------------------------
# modules: boxes and clusters, down to a depth
# ---------------------------------------------------------------------------


def group_modules(g: Graph, scopes: list, depth: int | None, expand: set, expand_all: bool) -> None:
    """Draw module calls as boxes (collapsed) or clusters (expanded).

    A scope is a box when it is a folded run, when it sits at level `depth`, or when it has no nested
    module calls (unless named in `expand`); otherwise a cluster holding its contents.  Scopes inside
    a box are not drawn.
    """
    by_id = {s.id: s for s in scopes}
    status = {}
    for s in sorted(scopes, key=lambda s: s.level):
        parent = status.get(s.parent)
        if parent in ("box", "hidden"):
            status[s.id] = "hidden"
        elif s.fold:
            status[s.id] = "box"
        elif s.id in expand or s.module in expand or expand_all:
            status[s.id] = "cluster"
        elif depth is not None and s.level >= depth:
            status[s.id] = "box"
        elif s.children:
            status[s.id] = "cluster"
        else:
            status[s.id] = "box"
    g.info["modules"] = sorted(s.id for s in scopes)
    g.info["collapsed"] = sorted(sid for sid, st in status.items() if st == "box")
    # the path of drawn scopes around each op, outermost first
    path: dict = {}
    for s in sorted(scopes, key=lambda s: s.level):
        if status[s.id] == "hidden":
            continue
        for i in s.ops:
            path.setdefault(i, []).append(s.id)
    for p in path.values():
        p.sort(key=lambda sid: by_id[sid].level)

    def inside(i, s):  # tensor i is made in s and read only in s
        return i in s.ops and i not in g.roots and all(c in s.ops for c in g.consumers.get(i, ()))

    # boxes (disjoint: a box hides everything below it), merged in one pass
    boxes, taken = [], set()
    for s in scopes:
        if status[s.id] != "box":
            continue
        members = [f"op{i}" for i in s.ops] + [f"t{i}" for i in s.ops if inside(i, s)]
        params = scope_params(g, s)
        absorb = bool(s.fold) or bool(s.children)
        for j in params:
            if absorb and g.consumers.get(j) and all(c in s.ops for c in g.consumers[j]):
                members.append(f"t{j}")
        given = set(s.inputs)
        for i in s.ops:  # constants made inside this module (a dropout mask), read only by it
            for j in g.tensors[i].inputs:
                t = g.tensors[j]
                if (t.is_leaf and not t.requires_grad and not t.names and not t.extra and j not in given
                        and all(c in s.ops for c in g.consumers.get(j, ()))):
                    members.append(f"t{j}")
        cur = {g.rep.get(k) for k in members} - {None}
        nid = ("fold_" if s.fold else "mod_") + ident(s.id)
        while nid in g.nodes or nid in taken:
            nid += "_"
        taken.add(nid)
        boxes.append((s, params, absorb, cur, Node(nid, "fold" if s.fold else "module", "", members=set())))
    g.merge_many([(cur, box) for _, _, _, cur, box in boxes])
    for s, params, absorb, _, box in boxes:
        box.title, box.lines = _box_label(g, s, params)
        box.tooltip = [box.title] + box.lines
        box.cluster = tuple(f"cluster_{ident(p)}" for p in path.get(min(s.ops), []) if p != s.id
                            and status[p] == "cluster")
        if not absorb and params:  # a leaf module's parameters sit beside it, in a frame of their own
            frame = f"cluster_{ident(s.id)}"
            g.clusters[frame] = Cluster(frame, "", "frame")
            box.cluster += (frame,)
            for j in params:
                pn = g.node_of(f"t{j}")
                if pn is not None and pn.kind == "tensor" and all(c in s.ops for c in g.consumers.get(j, ())):
                    pn.cluster = box.cluster
    for s in scopes:
        if status[s.id] != "cluster":
            continue
        cid = f"cluster_{ident(s.id)}"
        g.clusters[cid] = Cluster(cid, f"{s.id} · {s.cls}" if s.cls else s.id, "module")
    # every op, call and inner tensor of an expanded scope goes into its cluster (call clusters stay inside)
    for node in g.nodes.values():
        if node.kind not in ("op", "call", "tensor"):
            continue
        if node.kind == "tensor":
            i = int(node.id[1:])
            t = g.tensors[i]
            if t.is_leaf:
                readers = g.consumers.get(i, ())
                ps = [path.get(c, []) for c in readers]
                scope_path = _common_prefix(ps) if ps and t.param is not None else []
            else:
                scope_path = [sid for sid in path.get(i, []) if inside(i, by_id[sid])]
        else:
            ops = op_indices(node)
            scope_path = _common_prefix([path.get(i, []) for i in ops])
        clusters = tuple(f"cluster_{ident(sid)}" for sid in scope_path if status.get(sid) == "cluster")
        if clusters:  # call clusters and a parameter's frame stay inside
            keep = tuple(c for c in node.cluster if c in g.clusters and g.clusters[c].kind in ("call", "frame"))
            node.cluster = clusters + keep


def _common_prefix(paths) -> list:
    if not paths:
        return []
    out = []
    for items in zip(*paths):
        if all(x == items[0] for x in items):
            out.append(items[0])
        else:
            break
    return out


def _box_label(g: Graph, s: Scope, params: list) -> tuple[str, list]:
    ins = [shape_text(g.tensors[j].shape) for j in s.inputs if g.tensors[j].param is None]
    outs = [shape_text(g.tensors[i].shape) for i in s.outputs]
    n_params = sum(_size(g.tensors[j].shape) for j in params)
    n_bytes = sum(g.tensors[j].nbytes for j in params)
    lines = []
    if s.fold:
        first, last = s.fold[0], s.fold[-1]
        title = f"{s.cls} × {len(s.fold)}"
        lines.append(f"{first.id} … {last.id}")
        one = sorted(scope_params(g, first))
        if one:
            shown = [shape_text(g.tensors[j].shape) for j in one]
            lines.append("each: " + ", ".join(shown[:4]) + (", …" if len(shown) > 4 else ""))
    else:
        title = f"{s.id} · {s.cls}" if s.cls else s.id
    if ins or outs:
        lines.append(f"{', '.join(ins) or '·'} → {', '.join(outs) or '·'}")
    if params:
        lines.append(f"{n_params:,} params · {human_bytes(n_bytes)}")
    return title, lines


# ---------------------------------------------------------------------------
# marks: backward order, highlight, saved memory, backward-of
# ---------------------------------------------------------------------------


def number_backward(g: Graph, src, roots) -> dict:
    """op index -> k, the order in which backward() visits the ops (the engine's own walk, reversed)."""
    order = source.walk([r for r in roots if r.requires_grad], constants=False)
    numbers = {}
    for t in reversed(order):
        i = src.find(t)
        if i is not None and g.tensors[i].op is not None:
            numbers[i] = len(numbers) + 1
    g.info["backward_numbers"] = numbers
    return numbers


def highlight(g: Graph, starts: list) -> None:
    """Mark every node and edge on a path from the tensors `starts` (indices) to the outputs."""
    on = set()
    queue = deque(starts)
    while queue:
        i = queue.popleft()
        if i in on:
            continue
        on.add(i)
        queue.extend(g.consumers.get(i, ()))
    keys, edges = set(), set()
    for i in on:
        keys.add(f"t{i}")
        if i not in starts and g.tensors[i].op is not None:
            keys.add(f"op{i}")
            edges.add((f"op{i}", f"t{i}"))
        for c in g.consumers.get(i, ()):
            edges.add((f"t{i}", f"op{c}"))
    g.info["highlight_keys"] = keys
    g.info["highlight_edges"] = edges
    for node in g.nodes.values():
        if node.members & keys:
            node.marks.add("highlight")
    for e in g.edges.values():
        if e.keys & edges:
            e.highlight = True


def measure_saved(g: Graph, src) -> None:
    """What each op keeps alive for backward.  Arrays that are tensors of the picture mark those tensors;
    the rest (masks, columns, statistics) count for the op.  Memory is counted per buffer (a view keeps
    its whole base alive, two views of one base count once), and parameters' buffers not at all: this is
    the memory a step needs beyond them.  Fills g.info["saved"]: op index -> {id(buffer): nbytes}."""
    by_array = {}
    param_buffers = set()
    for i, t in enumerate(src.objects):
        arr = source.data(t)
        if arr is None:
            continue
        by_array.setdefault(id(arr), i)
        if g.tensors[i].is_leaf and g.tensors[i].requires_grad:
            param_buffers.add(id(source.array_root(arr)))
    saved: dict = {}
    for i, t in enumerate(src.objects):
        fn = t.grad_fn
        if fn is None:
            continue
        own = {}
        for arr in source.saved_arrays(fn):
            root = source.array_root(arr)
            if id(root) in param_buffers:
                continue  # a parameter or a view of one (W.T): held anyway
            j = by_array.get(id(arr))
            if j is not None:
                g.tensors[j].saved_output = True
            own[id(root)] = root.nbytes
        saved[i] = own
    g.info["saved"] = saved
    total = {}
    for own in saved.values():
        total.update(own)
    g.info["saved_total"] = sum(total.values())


def saved_bytes(g: Graph, ops) -> int:
    held = {}
    for i in ops:
        held.update(g.info.get("saved", {}).get(i, {}))
    return sum(held.values())


# ---------------------------------------------------------------------------
# the node limit
# ---------------------------------------------------------------------------


def limit_nodes(g: Graph, max_nodes: int) -> None:
    """Keep max_nodes - 1 nodes and fold the rest into one "more" node.

    Two frontiers grow by distance, one back from the outputs and one forward
    from the sources (parameters first, then other leaves).  A node joins the
    output side only once all its readers have, and the source side only once
    all its inputs have, so every edge into "more" comes from the source side
    and every edge out of it goes to the output side: the summary adds no cycle.
    """
    if len(g.nodes) <= max_nodes:
        return
    preds, succs = g.preds(), g.succs()
    position = {nid: k for k, nid in enumerate(g.nodes)}
    root_nodes = {g.rep.get(f"t{i}") for i in g.roots} - {None}
    params = {g.rep.get(f"t{i}") for i in g.param_index.values()} - {None}
    sources = [n for n in g.nodes if not preds.get(n)]
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
    hidden = [nid for nid in g.nodes if nid not in keep]
    members = set().union(*(g.nodes[n].members for n in hidden))
    ops = [int(k[2:]) for k in members if k.startswith("op")]
    n_tensors = sum(1 for k in members if k.startswith("t"))
    types = Counter(g.tensors[i].op for i in ops)
    more = g.merge(hidden, Node("more", "more", f"… {len(ops)} more op{'s' if len(ops) != 1 else ''}, "
                                               f"{n_tensors} tensors"))
    more.lines = [f"({counts(types, 6)})"]
    more.cluster = ()
    g.info["hidden_ops"] = len(ops)


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


# ---------------------------------------------------------------------------
# the backward view
# ---------------------------------------------------------------------------


def backward_view(g: Graph) -> None:
    """Turn the picture into the backward pass: gradients flow from the output to the leaves that need them.

    Tensors that need no gradient (data, constants) and what only they feed drop out; every edge turns
    around; ops become the backward functions that run them (emission names them "<op> backward").
    """
    keep = set()
    for nid, node in g.nodes.items():
        if node.kind == "tensor":
            t = g.tensors[int(nid[1:])]
            if t.requires_grad:
                keep.add(nid)
        else:
            keep.add(nid)
    g.remove([nid for nid in g.nodes if nid not in keep])
    edges, g.edges = g.edges, {}
    for (s, d), e in edges.items():
        e.src, e.dst = d, s
        g.edges[(d, s)] = e
    for node in g.nodes.values():  # "(4, 784) → (4, 512)" becomes the gradient's way: (4, 512) → (4, 784)
        node.lines = [" → ".join(reversed(s.split(" → "))) if s.count(" → ") == 1 else s for s in node.lines]
    g.info["direction"] = "backward"


def fmt_norm(norm: float) -> str:
    return fmt(norm)
