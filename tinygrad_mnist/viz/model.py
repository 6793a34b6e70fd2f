"""The picture before it becomes DOT: plain dataclasses for tensors, nodes, edges and clusters.

`build` (build.py) reads the recorded graph once into `TensorInfo` records and
makes one `Node` per tensor ("t<i>") and one per op ("op<i>", the op that made
tensor i).  Those ids are the *base keys*.  The passes (passes.py) then merge
nodes (a functional call, a module, a folded run of blocks, the "more" node),
put nodes into clusters and mark them; `Graph.rep` always says which node
shows each base key.  Emission (dot.py) only formats what is here.
"""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass
class TensorInfo:
    """What the drawing needs to know about one tensor of the graph (read once, then the tensor is let go)."""

    shape: tuple
    dtype: str
    is_leaf: bool
    requires_grad: bool
    names: list = field(default_factory=list)
    param: str | None = None             # dotted parameter name, e.g. "fc1.weight"
    op: str | None = None                # name of the op that made it ("Matmul")
    released: bool = False               # the op's saved arrays were freed by a backward()
    backward_of: str | None = None       # "Linear": this op was recorded by Linear's backward
    calls: tuple = ()                    # (call id, call name) of the composite calls, outermost first
    inputs: list = field(default_factory=list)  # tensor indices the op read, in argument order
    grad: tuple | None = None            # (norm, status) of .grad; status None, zero, nonfinite, exploding
    values: list = field(default_factory=list)  # value summary lines (show_values)
    tooltip: list = field(default_factory=list)  # lines shown on hover
    saved_bytes: int = 0                 # bytes this op keeps alive for backward (show_saved)
    saved_output: bool = False           # this tensor's own array is kept alive for backward
    extra: bool = False                  # not reached by the walk: a tensor a composite call was given

    @property
    def nbytes(self) -> int:
        n = 1
        for s in self.shape:
            n *= s
        return n * _itemsize(self.dtype)


def _itemsize(dtype: str) -> int:
    import numpy as np
    try:
        return np.dtype(dtype).itemsize
    except TypeError:
        return 0


@dataclass
class Node:
    id: str
    kind: str                            # tensor, op, call, module, fold, more
    title: str
    lines: list = field(default_factory=list)
    members: set = field(default_factory=set)   # base keys this node shows
    cluster: tuple = ()                  # enclosing cluster ids, outermost first
    fill: str | None = None              # a COLORS key; None: by kind
    marks: set = field(default_factory=set)     # highlight, saved, output, status names
    tooltip: list = field(default_factory=list)
    order: float = 0.0                   # where it is written in the DOT text (data-flow order)


@dataclass
class Edge:
    src: str
    dst: str
    count: int = 0
    keys: set = field(default_factory=set)  # base edges it stands for
    highlight: bool = False


@dataclass
class Cluster:
    id: str
    label: str
    kind: str                            # module, call, backward


@dataclass
class Graph:
    tensors: list                        # TensorInfo, in walk order (parents first)
    roots: list                          # indices of the outputs
    nodes: dict = field(default_factory=dict)     # id -> Node, in drawing order
    edges: dict = field(default_factory=dict)     # (src, dst) -> Edge
    clusters: dict = field(default_factory=dict)  # id -> Cluster
    rep: dict = field(default_factory=dict)       # base key -> node id (None: not drawn)
    consumers: dict = field(default_factory=dict)  # tensor index -> op indices reading it (with repeats)
    notes: list = field(default_factory=list)
    totals: dict = field(default_factory=dict)    # summary lines for the graph label
    info: dict = field(default_factory=dict)      # counts for tests and callers
    param_index: dict = field(default_factory=dict)  # parameter name -> tensor index

    # -- editing -------------------------------------------------------------------
    def add_node(self, node: Node) -> Node:
        self.nodes[node.id] = node
        for k in node.members:
            self.rep[k] = node.id
        return node

    def add_edge(self, src: str, dst: str, key=None, count: int = 1) -> None:
        if src == dst:
            return
        e = self.edges.get((src, dst))
        if e is None:
            e = self.edges[(src, dst)] = Edge(src, dst)
        e.count += count
        if key is not None:
            e.keys.add(key)

    def merge(self, ids, node: Node) -> Node:
        """Replace the nodes `ids` by `node` (which shows all their members); edges follow, loops vanish."""
        self.merge_many([(ids, node)])
        return node

    def merge_many(self, groups) -> None:
        """merge() for many disjoint groups [(ids, node)] in one pass over the nodes and edges."""
        owner = {}
        for ids, node in groups:
            ids = [i for i in dict.fromkeys(ids) if i in self.nodes and i not in owner]
            if not ids:
                continue
            node.order = min(self.nodes[i].order for i in ids)
            for i in ids:
                owner[i] = node
                node.members |= self.nodes[i].members
            for k in node.members:
                self.rep[k] = node.id
        if not owner:
            return
        nodes = {}
        for nid, n in self.nodes.items():
            new = owner.get(nid)
            if new is None:
                nodes[nid] = n
            elif new.id not in nodes:  # the merged node sits where its first member was
                nodes[new.id] = new
        self.nodes = nodes
        edges, self.edges = self.edges, {}
        for (s, d), e in edges.items():
            s2 = owner[s].id if s in owner else s
            d2 = owner[d].id if d in owner else d
            if s2 == d2:
                continue
            new = self.edges.get((s2, d2))
            if new is None:
                new = self.edges[(s2, d2)] = Edge(s2, d2)
            new.count += e.count
            new.keys |= e.keys
            new.highlight |= e.highlight

    def remove(self, ids) -> None:
        """Drop nodes (and their edges) from the picture."""
        gone = set(ids)
        for nid in gone:
            node = self.nodes.pop(nid, None)
            if node is not None:
                for k in node.members:
                    self.rep[k] = None
        self.edges = {k: e for k, e in self.edges.items() if k[0] not in gone and k[1] not in gone}

    def node_of(self, base_key: str) -> Node | None:
        nid = self.rep.get(base_key)
        return None if nid is None else self.nodes.get(nid)

    def preds(self) -> dict:
        out: dict = {}
        for s, d in self.edges:
            out.setdefault(d, set()).add(s)
        return out

    def succs(self) -> dict:
        out: dict = {}
        for s, d in self.edges:
            out.setdefault(s, set()).add(d)
        return out


@dataclass
class Scope:
    """One module call (from a trace, or inferred from parameter names), or a folded run of them."""

    id: str                              # "fc1", "blocks.3", "fc1#2" for a second call
    module: str                          # the module's dotted name: its parameters start with module + "."
    cls: str | None
    parent: str | None                   # id of the enclosing scope
    level: int                           # 1: a child of the model
    ops: set = field(default_factory=set)       # op indices made inside (nested scopes included)
    inputs: list = field(default_factory=list)  # tensor indices passed in
    outputs: list = field(default_factory=list)  # tensor indices returned
    children: list = field(default_factory=list)  # ids of nested scopes, in call order
    fold: list = field(default_factory=list)     # a folded run: the scopes it stands for
