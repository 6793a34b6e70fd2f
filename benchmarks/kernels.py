"""Per-kernel breakdown: the compiled step's replayed lines beside the hand-written NumPy step's statements.

    python -m benchmarks.kernels W1          # W1..W4 (--repeats N, --blocks B)
    python -m benchmarks.kernels fast        # one replayed step of `train --model fast`, by op (--batch)

Both sides are timed statement by statement in sequence, as they run in a real step: an instrumented
copy of each function reads a clock after every statement (the generated replay `body` of
`tinygrad_mnist.compile`, the reference's `step` in benchmarks/numpy_ref.py, loop bodies included).
The clock's own cost, measured the same way on empty statements, is subtracted; each line's time is
the lowest mean over `--blocks` blocks of `--repeats` steps.  The totals underneath compare the
instrumented sums with the plain functions: the compiled step also runs its prologue (argument and
Python-state guards, reading the parameters) and epilogue (.grad, the returned copy), which the
`run` line shows.  Labels name the op each replayed line belongs to.

`fast` times the compiled step `train --model fast` replays (its recipe's model, optimizer and loss, a
batch of random images) the same way, by op; it has no NumPy reference (`python -m benchmarks.fast`
compares the whole run with PyTorch).  Run it under OPENBLAS_NUM_THREADS=1 and as the machine is set
to see which ops gain from BLAS threads.
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


def fast_breakdown(batch: int = 256, repeats: int = 10, blocks: int = 3) -> dict:
    """Time each replayed line of the `fast` recipe's compiled training step on one batch of `batch` images."""
    import numpy as np

    import tinygrad_mnist as tg
    from tinygrad_mnist import train

    recipe = train.RECIPES["fast"]
    tg.manual_seed(0)
    model = train.build_model("fast")
    step = train.make_train_step(model, train.make_optimizer(recipe, model.parameters()), recipe)
    rng = np.random.default_rng(0)
    x, y = tg.from_numpy(rng.random((batch, 784), dtype=np.float32)), rng.integers(0, 10, batch)
    for _ in range(4):  # two recordings, then replays
        step(x, y)
    prog = step._last
    sources = [(x.data, y)[s.value] if s.kind == "input" else
               (s.tensor if s.owner is None else s.owner._grad).data for s in prog.sources]
    body_src = prog.source.split("\n\n")[0]
    body, lines, acc = _compile_timed(body_src, prog.body.__globals__)
    clock = _clock_cost(blocks, repeats)
    times = [max(t - clock, 0.0) for t in _per_call(body, sources, acc, repeats, blocks)]
    return {"batch": batch, "compiled": list(zip(_labels(prog, lines), lines, times)),
            "body": _plain(prog.body, [sources], repeats, blocks), "run": _plain(step, [(x, y)], repeats, blocks),
            "torch": _torch_fast_step(model, recipe, x.data, y, repeats, blocks)}


def _torch_fast_step(model, recipe, x, y, repeats: int, blocks: int) -> float | None:
    """PyTorch eager's time for the same step (benchmarks/fast.py's mirror, the model's weights), or None."""
    try:
        import torch
    except ImportError:
        return None
    import numpy as np

    from benchmarks.fast import torch_fast

    net = torch_fast()
    with torch.no_grad():
        for tp, p in zip([*net.parameters(), *net.buffers()], [*model.parameters(), *model.buffers()]):
            tp.copy_(torch.from_numpy(np.array(p.data)))
    opt = torch.optim.Adam(net.parameters(), lr=recipe.lr, betas=(0.9, recipe.adam_beta2))
    xt, yt = torch.from_numpy(x), torch.from_numpy(y)

    def step():
        loss = torch.nn.functional.cross_entropy(net(xt), yt, label_smoothing=recipe.label_smoothing)
        opt.zero_grad()
        loss.backward()
        opt.step()

    for _ in range(3):
        step()
    return _plain(step, [()], repeats, blocks)


def fast_report(r: dict) -> str:
    total = sum(t for *_, t in r["compiled"])
    torch = "not installed" if r["torch"] is None else f"{r['torch'] * 1e3:.2f} ms"
    lines = [f"fast: one training step of `train --model fast` on {r['batch']} images: compiled step "
             f"{r['run'] * 1e3:.2f} ms (replayed body {r['body'] * 1e3:.2f} ms, {total * 1e3:.2f} ms summed over "
             f"lines); PyTorch eager, the same step: {torch}", "compiled time by op (lines):"]
    for name, (t, n) in sorted(by_op(r["compiled"]).items(), key=lambda kv: -kv[1][0]):
        lines.append(f"  {name:<18}{t * 1e3:8.3f} ms  {t / total:6.1%}  ({n})")
    return "\n".join(lines)


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
    ap.add_argument("workloads", nargs="*", default=["W1"], help="W1..W4 or fast (default W1)")
    ap.add_argument("--batch", type=int, default=256, help="fast: images per step (default 256, the recipe's)")
    ap.add_argument("--repeats", type=int, default=200, help="steps per timed block (default 200)")
    ap.add_argument("--blocks", type=int, default=7, help="timed blocks; each line keeps its best (default 7)")
    a = ap.parse_args(argv)
    for key in a.workloads:
        if key not in ("W1", "W2", "W3", "W4", "fast"):
            ap.error(f"workload {key!r}: the breakdown covers W1, W2, W3, W4 and fast")
        if key == "fast":
            print(fast_report(fast_breakdown(a.batch, min(a.repeats, 20), min(a.blocks, 3))))
        else:
            print(report(breakdown(key, a.repeats, a.blocks)))
        print()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
