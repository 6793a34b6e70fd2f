"""Per-kernel breakdown: the compiled step's replayed lines beside the hand-written NumPy step's statements.

    python -m benchmarks.kernels W1          # W1..W4 (--repeats N, --blocks B)

Both sides are timed statement by statement in sequence, as they run in a real step: an instrumented
copy of each function reads a clock after every statement (the generated replay `body` of
`tinygrad_mnist.compile`, the reference's `step` in benchmarks/numpy_ref.py, loop bodies included).
The clock's own cost, measured the same way on empty statements, is subtracted; each line's time is
the lowest mean over `--blocks` blocks of `--repeats` steps.  The totals underneath compare the
instrumented sums with the plain functions: the compiled step also runs its prologue (argument and
Python-state guards, reading the parameters) and epilogue (.grad, the returned copy), which the
`run` line shows.  Labels name the op each replayed line belongs to.
"""

from __future__ import annotations

import argparse
import ast
import inspect
import itertools
import re
import textwrap
import time

from benchmarks import engine_impl, numpy_ref
from benchmarks.workloads import WORKLOADS, init_params, make_batches
from tinygrad_mnist import Tensor

_TICK = "_t1 = _pc(); _acc[{i}] += _t1 - _t0; _t0 = _t1"


def instrument(fn: ast.FunctionDef) -> tuple[ast.FunctionDef, list[str]]:
    """fn with a clock read after every simple statement, adding the time since the last read to _acc[i].

    Returns the new function and the source of each timed statement (`return x` is timed as its value)."""
    timed: list[str] = []

    def tick(st, text=None):
        timed.append(text or ast.unparse(st).splitlines()[0])
        return ast.parse(_TICK.format(i=len(timed) - 1)).body

    def walk(body):
        out = []
        for st in body:
            if isinstance(st, ast.Return) and st.value is not None:
                out += [ast.Assign([ast.Name("_ret", ast.Store())], st.value, lineno=0), *tick(st)]
                out.append(ast.Return(ast.Name("_ret", ast.Load())))
            elif isinstance(st, (ast.For, ast.While, ast.If, ast.With)):
                st.body = walk(st.body)
                if getattr(st, "orelse", None):
                    st.orelse = walk(st.orelse)
                out.append(st)
            else:
                out += [st, *tick(st)]
        return out

    fn.body = ast.parse("_t0 = _pc()").body + walk(fn.body)
    fn.decorator_list = []
    return ast.fix_missing_locations(fn), timed


def _compile_timed(source: str, glob: dict):
    """The first function in source, instrumented, with its accumulators: (function, statements, _acc)."""
    tree = ast.parse(textwrap.dedent(source))
    fn, timed = instrument(next(n for n in tree.body if isinstance(n, ast.FunctionDef)))
    acc = [0.0] * len(timed)
    g = dict(glob, _pc=time.perf_counter, _acc=acc)
    exec(compile(ast.Module([fn], type_ignores=[]), "<timed>", "exec"), g)
    return g[fn.name], timed, acc


def _clock_cost(blocks: int, repeats: int) -> float:
    """What one clock read adds to a timed statement: measured on `pass` statements."""
    fn, _, acc = _compile_timed("def empty():\n" + "    pass\n" * 50, {})
    return min(_per_call(fn, (), acc, repeats, blocks)) if acc else 0.0


def _per_call(fn, args, acc, repeats: int, blocks: int) -> list[float]:
    """Each statement's lowest mean time over the blocks, in seconds."""
    best = [float("inf")] * len(acc)
    for _ in range(blocks):
        acc[:] = [0.0] * len(acc)
        for _ in range(repeats):
            fn(*args)
        best = [min(b, a / repeats) for b, a in zip(best, acc)]
    return best


def _plain(fn, args_list, repeats: int, blocks: int) -> float:
    best = float("inf")
    for _ in range(blocks):
        t0 = time.perf_counter()
        for i in range(repeats):
            fn(*args_list[i % len(args_list)])
        best = min(best, (time.perf_counter() - t0) / repeats)
    return best


def _labels(prog, timed: list[str]) -> list[str]:
    """The op each replayed line belongs to (a line writing vN belongs to the op making slot N)."""
    by_slot = {op.out: type(op.ctx).__name__ for op in prog.rec_ops}
    by_index = {k: type(op.ctx).__name__ for k, op in enumerate(prog.rec_ops)}
    labels, last = [], ""
    for line in timed:
        m = re.match(r"[vs](\d+) = ", line)  # (sN: a one-element value held as a NumPy scalar)
        c = re.match(r"c(\d+)_", line)
        if line.startswith("del "):
            labels.append("(del)")
            continue
        if m and int(m.group(1)) in by_slot:
            last = by_slot[int(m.group(1))]
        elif m:
            last = "(read)"  # a parameter's or constant's value read as a scalar
        elif c:
            last = by_index.get(int(c.group(1)), last)
        elif line.startswith("return"):
            last = "(result)"
        labels.append(last)
    return labels


def breakdown(key: str, repeats: int = 200, blocks: int = 7) -> dict:
    """Time the compiled replay's lines and the NumPy reference's statements for workload `key`."""
    w = WORKLOADS[key]
    params = init_params(w)
    batches = [()] if w.kind == "chain" else make_batches(w)
    compiled = engine_impl.build(w, params, "compiled")
    prep = [compiled.prepare(*b) for b in batches]
    for a in (prep * 4)[:4]:  # two recordings, then replays
        compiled.step(*a)
    prog = compiled._step._last
    ref = numpy_ref.build(w, params)
    rprep = [ref.prepare(*b) for b in batches]

    sources = []  # the body's arguments: the batch's arrays and the live tensors' arrays, as run() reads them
    for s in prog.sources:
        if s.kind == "input":
            v = prep[0][s.value]
            sources.append(v.data if isinstance(v, Tensor) else v)
        else:
            t = s.tensor if s.owner is None else s.owner._grad
            sources.append(t.data)
    body_src = prog.source.split("\n\n")[0]
    body, c_lines, c_acc = _compile_timed(body_src, prog.body.__globals__)
    step_src = inspect.getsource(type(ref).step)
    ref_step, r_lines, r_acc = _compile_timed(step_src, vars(numpy_ref))

    clock = _clock_cost(blocks, repeats)
    c_times = [max(t - clock, 0.0) for t in _per_call(body, sources, c_acc, repeats, blocks)]
    r_times = [max(t - clock, 0.0) for t in _per_call(ref_step, (ref, *rprep[0]), r_acc, repeats, blocks)]
    return {
        "key": key, "clock": clock, "source": body_src,
        "compiled": list(zip(_labels(prog, c_lines), c_lines, c_times)),
        "numpy": list(zip(r_lines, r_times)),
        "body": _plain(prog.body, [sources], repeats, blocks),
        "run": _plain(compiled.step, prep, repeats, blocks),
        "reference": _plain(ref.step, rprep, repeats, blocks),
    }


def by_op(rows) -> dict:
    """Compiled time and line count per op class."""
    out: dict[str, list] = {}
    for label, _, t in rows:
        out.setdefault(label, [0.0, 0])
        out[label][0] += t
        out[label][1] += 1
    return out


def report(r: dict, width: int = 58) -> str:
    us = 1e6
    lines = [f"{r['key']}: compiled replay (instrumented body lines)  |  hand-written NumPy step (statements); "
             f"us per step, clock read ({r['clock'] * us:.3f} us) subtracted",
             f"{'op':<14}{'us':>7}  {'replayed line':<{width}}|{'us':>7}  numpy statement"]
    for c, n in itertools.zip_longest(r["compiled"], r["numpy"]):
        left = f"{c[0]:<14}{c[2] * us:7.2f}  {c[1][:width]:<{width}}" if c else " " * (23 + width)
        right = f"{n[1] * us:7.2f}  {n[0][:60]}" if n else ""
        lines.append(f"{left}|{right}")
    c_sum = sum(t for *_, t in r["compiled"])
    n_sum = sum(t for _, t in r["numpy"])
    lines += ["", f"sum of lines: compiled {c_sum * us:.1f} us, numpy {n_sum * us:.1f} us",
              f"plain calls: compiled body {r['body'] * us:.1f} us, compiled step (run: guards, reads, "
              f"writes back) {r['run'] * us:.1f} us, numpy step {r['reference'] * us:.1f} us; "
              f"ratio run/numpy {r['run'] / r['reference']:.3f}",
              "", "compiled time by op (lines):"]
    for name, (t, n) in sorted(by_op(r["compiled"]).items(), key=lambda kv: -kv[1][0]):
        lines.append(f"  {name:<18}{t * us:9.2f} us  ({n})")
    return "\n".join(lines)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(prog="python -m benchmarks.kernels", description=__doc__.splitlines()[0])
    ap.add_argument("workloads", nargs="*", default=["W1"], help="W1..W4 (default W1)")
    ap.add_argument("--repeats", type=int, default=200, help="steps per timed block (default 200)")
    ap.add_argument("--blocks", type=int, default=7, help="timed blocks; each line keeps its best (default 7)")
    a = ap.parse_args(argv)
    for key in a.workloads:
        if key not in ("W1", "W2", "W3", "W4"):
            ap.error(f"workload {key!r}: the breakdown covers W1, W2, W3, W4")
        print(report(breakdown(key, a.repeats, a.blocks)))
        print()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
