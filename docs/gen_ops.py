"""Write docs/ops.md, the reference of every primitive op, from the code.

    python docs/gen_ops.py               # rewrite docs/ops.md (runs the op tests once to see which check what)
    python docs/gen_ops.py --keep-tests  # rewrite it from the code, keeping the recorded test columns (seconds)
    python docs/gen_ops.py --check       # exit 1 when docs/ops.md is stale (what tests/test_ops_doc.py does)

What comes from where:
- the primitives: every `Function` subclass defined in `tinygrad_mnist.ops` (a module or a package);
- forward, gradient and composite: the op's docstring. Its first paragraph is the forward in one line; a
  paragraph starting `Gradient:` states the gradient rule in math; a fused op has a paragraph starting
  `Equals` naming the composite it equals;
- what it saves: the class attributes `saves_inputs`, `saves_output` and `saved`;
- who uses it: the source of every Tensor method and of every function and method in the package
  (wherever it lives), read for references to the op class (`ops.Exp.apply`, `Exp.apply`); a private
  helper is replaced by the public callers that name it; an op named in another op's backward is listed
  as part of that op's gradient;
- which tests check it: the op tests are run once (in this process, see TEST_FILES) with the op's
  forward and backward watched: an op that runs inside `gradcheck` is checked against central
  differences, inside `compare_with_reference` against PyTorch, whose backward runs with grad mode on
  inside either of them has its gradient of gradient checked, and that runs while
  `tinygrad_mnist.compile` records a step is checked by replay (the recording verifies that replaying
  equals the eager step bit for bit).

`--check` regenerates everything but the test columns (running the tests would take minutes) and
compares; it also fails when the recorded test columns name an op that no longer exists or miss one.
"""

from __future__ import annotations

import argparse
import ast
import contextlib
import functools
import importlib
import inspect
import json
import pkgutil
import re
import sys
import textwrap
from collections import defaultdict
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
OUT = REPO / "docs" / "ops.md"
OWN_TEST = REPO / "tests" / "test_ops_doc.py"  # checks this page: not one of the op tests
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

import tinygrad_mnist  # noqa: E402
from tinygrad_mnist import engine, ops  # noqa: E402
from tinygrad_mnist.engine import Function, Tensor  # noqa: E402

# the tests run to learn which checks reach each op (globs under tests/)
TEST_FILES = ["test_ops*.py", "test_compile*.py", "test_rules_capture.py", "test_conv*.py", "test_autograd.py",
              "test_functional.py", "test_losses.py", "test_tensor_api.py", "test_torch_api.py", "test_nn.py",
              "test_inplace.py", "test_recurrent_attention.py", "test_properties.py", "test_gradcheck_module.py",
              "test_spellings.py", "test_pytorch_idioms.py"]
# modules whose functions are not "users" of an op in the reader's sense (tooling around the engine)
SKIP_MODULES = ("tinygrad_mnist.capture", "tinygrad_mnist.viz", "tinygrad_mnist.cli", "tinygrad_mnist.train",
                "tinygrad_mnist.gradcheck", "tinygrad_mnist.plots", "tinygrad_mnist.data")
CHECKS = [("gradcheck", "gradcheck"), ("torch", "PyTorch"), ("gradgrad", "grad of grad"), ("replay", "replay")]
HOW_TO_FIX = ("run `python docs/gen_ops.py` (or `python docs/gen_ops.py --keep-tests` to reuse the recorded "
              "test columns: seconds instead of minutes)")
BEGIN_TESTS, END_TESTS = "<!-- test columns, written by a run of the tests:", "-->"


# ---------------------------------------------------------------------------------------------------------
# the primitives and their docstrings


def ops_modules() -> list:
    mods = [ops]
    if hasattr(ops, "__path__"):  # a package: its submodules too
        mods += [importlib.import_module(m.name) for m in pkgutil.walk_packages(ops.__path__, ops.__name__ + ".")]
    return mods


def primitives() -> list[type]:
    found = {}
    for mod in ops_modules():
        for obj in vars(mod).values():
            if (inspect.isclass(obj) and issubclass(obj, Function) and obj is not Function
                    and obj.__module__.startswith(ops.__name__) and not obj.__name__.startswith("_")):
                found[obj] = (obj.__module__, inspect.getsourcelines(obj)[1])
    return sorted(found, key=lambda c: found[c])


def paragraphs(doc: str | None) -> list[str]:
    text = inspect.cleandoc(doc or "")
    return [" ".join(line.strip() for line in p.splitlines()) for p in re.split(r"\n\s*\n", text) if p.strip()]


def gradient_rule(cls: type) -> str | None:
    """The `Gradient:` paragraph of the op's docstring, or of the nearest base class that states one
    (the in-place writes share theirs)."""
    for c in cls.__mro__:
        if c is Function:
            return None
        rule = next((p for p in paragraphs(c.__dict__.get("__doc__")) if p.startswith("Gradient:")), None)
        if rule:
            return rule[len("Gradient:"):].strip()
    return None


def describe(cls: type) -> dict:
    paras = paragraphs(cls.__doc__)
    gradient = gradient_rule(cls)
    equals = next((p for p in paras if re.match(r"Equals\b", p)), None)
    si = cls.saves_inputs
    saves = []
    if si is True:
        saves.append("its inputs")
    elif si:
        saves.append("input" + ("s " if len(si) > 1 else " ") + ", ".join(str(i) for i in si))
    if cls.saves_output:
        saves.append("its output")
    if cls.saved:
        saves.append(", ".join(f"`{s}`" for s in cls.saved))
    return {"name": cls.__name__, "module": cls.__module__, "forward": paras[0] if paras else None,
            "gradient": gradient, "equals": equals, "saves": "; ".join(saves) or "nothing (shapes only)"}


# ---------------------------------------------------------------------------------------------------------
# who uses each op: read the source of every function and method


def _function(obj):
    """The function behind a class attribute (a method, static/class method, property or other descriptor)."""
    if isinstance(obj, (staticmethod, classmethod)):
        obj = obj.__func__
    elif isinstance(obj, property):
        obj = obj.fget
    elif not inspect.isfunction(obj):  # a descriptor of the package's own: the function it holds
        obj = next((v for v in getattr(obj, "__dict__", {}).values() if inspect.isfunction(v)), None)
    return inspect.unwrap(obj) if inspect.isfunction(obj) else None


def _references(fn, op_classes: dict[str, type]) -> tuple[set[str], set[str]]:
    """(op class names, other names) that `fn`'s source refers to."""
    try:
        tree = ast.parse(textwrap.dedent(inspect.getsource(fn)))
    except (OSError, TypeError, SyntaxError):
        return set(), set()
    found, names = _op_refs(tree, fn.__globals__, op_classes)
    tables = _module_tables(fn.__module__, op_classes)
    found |= {op for name in names & set(tables) for op in tables[name]}  # a module-level table of ops
    return found, names


_TABLES: dict[str, dict[str, set[str]]] = {}  # module name -> its module-level tables of ops


def _module_tables(module: str, op_classes: dict[str, type]) -> dict[str, set[str]]:
    """Module-level names bound to expressions that name ops (`_BINARY = {"add": (AddInPlace, ops.Add)}`)."""
    if module not in _TABLES:
        mod = sys.modules.get(module)
        tables = {}
        try:
            tree = ast.parse(inspect.getsource(mod))
        except (OSError, TypeError, SyntaxError):
            tree = ast.Module(body=[], type_ignores=[])
        for node in tree.body:
            if isinstance(node, (ast.Assign, ast.AnnAssign)) and node.value is not None:
                found, _ = _op_refs(node.value, vars(mod), op_classes)
                targets = node.targets if isinstance(node, ast.Assign) else [node.target]
                for target in targets:
                    if isinstance(target, ast.Name) and found:
                        tables[target.id] = found
        _TABLES[module] = tables
    return _TABLES[module]


def _op_refs(tree, g: dict, op_classes: dict[str, type]) -> tuple[set[str], set[str]]:
    """(op class names, all names) referred to in `tree`, resolved in the globals `g`."""
    found, names = set(), set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Name):
            names.add(node.id)
            if g.get(node.id) is op_classes.get(node.id, ()):  # the op class itself, not a namesake (nn.Linear)
                found.add(node.id)
        elif isinstance(node, ast.Attribute):
            names.add(node.attr)
            base = node.value
            if node.attr in op_classes and isinstance(base, ast.Name):
                mod = g.get(base.id)
                if (inspect.ismodule(mod) and mod.__name__.startswith(ops.__name__)) or (
                        mod is None and base.id in ("ops", "_ops")):  # `from . import ops` inside the function
                    found.add(node.attr)
    return found, names


def callables() -> dict[str, object]:
    """Display name -> function, for Tensor's methods and every function and method of the package."""
    out = {}
    for name in dir(Tensor):  # its own methods and those of the package's classes it inherits them from
        fn = _function(inspect.getattr_static(Tensor, name))
        if fn is not None and fn.__module__.startswith(tinygrad_mnist.__name__):
            out[f"Tensor.{name}"] = fn
    tensor_fns = set(out.values())
    prefix = tinygrad_mnist.__name__ + "."
    for info in pkgutil.walk_packages(tinygrad_mnist.__path__, prefix):
        if info.name.startswith(SKIP_MODULES) or info.name.endswith("__main__"):
            continue
        mod = importlib.import_module(info.name)
        short = info.name[len(prefix):]
        for name, obj in vars(mod).items():
            if inspect.isfunction(obj) and obj.__module__ == info.name:
                out[f"{short}.{name}"] = inspect.unwrap(obj)
            elif inspect.isclass(obj) and obj.__module__ == info.name and not issubclass(Tensor, obj):
                for mname, m in vars(obj).items():
                    fn = _function(m)
                    if fn is not None and fn not in tensor_fns:  # a group of methods copied onto Tensor
                        out[f"{short}.{name}.{mname}"] = fn
    return out


def _public(display: str) -> bool:
    last = display.split(".")[-1]
    return not last.startswith("_") or last.startswith("__")


def users(prims: list[type]) -> dict[str, list[str]]:
    op_classes = {c.__name__: c for c in prims}
    prim_set = set(prims)
    refs, names_of = {}, {}
    for display, fn in callables().items():
        refs[display], names_of[display] = _references(fn, op_classes)
    used = defaultdict(set)
    for display, found in refs.items():
        parts = display.split(".")
        owner = next((c for c in prim_set if len(parts) >= 3 and parts[-2] == c.__name__
                      and display.startswith(c.__module__.split(".", 1)[1] + ".")), None)
        for op in found:
            if owner is not None:  # an op used by another op's rule
                if owner.__name__ != op:
                    used[op].add(f"the gradient of {owner.__name__}" if parts[-1] == "backward"
                                 else f"{owner.__name__}.{parts[-1]}")
                continue
            name = parts[-1]
            if name.startswith("_") and not name.startswith("__"):  # a private helper: its public callers
                callers = {d for d, ns in names_of.items() if name in ns and d != display and _public(d)}
                used[op] |= callers or {display}
            else:
                used[op].add(display)
    return {op: sorted(v, key=lambda s: (not s.startswith("Tensor."), s.startswith("the gradient"), s))
            for op, v in used.items()}


# ---------------------------------------------------------------------------------------------------------
# which tests check each op: run them once, watching every primitive


class Watch:
    """A pytest plugin: which test files reach each op inside which check."""

    def __init__(self, prims):
        self.prims = prims
        self.mode: list[str] = []
        self.file = None
        self.seen = defaultdict(lambda: defaultdict(set))  # op name -> check -> test files
        self._undo = []

    def _set(self, owner, attr, value):
        self._undo.append((owner, attr, owner.__dict__[attr] if isinstance(owner, type) else getattr(owner, attr)))
        setattr(owner, attr, value)

    def _checking(self, fn, check):
        @functools.wraps(fn)  # tests read its signature (the default tolerances)
        def wrapped(*a, **k):
            self.mode.append(check)
            try:
                return fn(*a, **k)
            finally:
                self.mode.pop()
        return wrapped

    def _watching(self, fn, meth):
        watch = self

        @functools.wraps(fn)
        def wrapped(ctx, *a, **k):
            if watch.file is not None:
                seen = watch.seen[type(ctx).__name__]
                if meth == "forward":
                    for check in watch.mode:
                        seen[check].add(watch.file)
                    tracer = engine._tracer
                    if tracer is not None and type(tracer).__module__.startswith("tinygrad_mnist.capture"):
                        seen["replay"].add(watch.file)
                elif watch.mode and engine.is_grad_enabled():  # a backward recorded for grad of grad
                    seen["gradgrad"].add(watch.file)
            return fn(ctx, *a, **k)
        return wrapped

    def pytest_configure(self, config):
        """Before the test modules import anything: wrap the checks and every op's forward and backward."""
        from tinygrad_mnist import gradcheck as gc
        for attr, check in (("gradcheck", "gradcheck"), ("compare_with_reference", "torch")):
            orig = getattr(gc, attr)
            wrapped = self._checking(orig, check)
            for mod in list(sys.modules.values()):  # the package may already hold the name
                if getattr(mod, "__name__", "").startswith("tinygrad_mnist") and getattr(mod, attr, None) is orig:
                    self._set(mod, attr, wrapped)
        for cls in self.prims:
            for meth in ("forward", "backward"):
                if meth in cls.__dict__:
                    self._set(cls, meth, self._watching(cls.__dict__[meth], meth))

    def pytest_unconfigure(self, config):
        for owner, attr, orig in reversed(self._undo):
            setattr(owner, attr, orig)

    def pytest_runtest_setup(self, item):
        self.file = Path(str(item.fspath)).name

    def pytest_runtest_teardown(self, item):
        self.file = None


def run_tests(prims) -> dict:
    import pytest

    files = sorted({str(p) for pat in TEST_FILES for p in (REPO / "tests").glob(pat)} - {str(OWN_TEST)})
    watch = Watch(prims)
    with contextlib.chdir(REPO):
        code = pytest.main(["-q", "-p", "no:cacheprovider", "-x", *files], plugins=[watch])
    if code != 0:
        raise SystemExit(f"gen_ops: the op tests failed (exit {code}); fix them before writing docs/ops.md")
    return {op: {check: sorted(files) for check, files in checks.items()} for op, checks in watch.seen.items()}


# ---------------------------------------------------------------------------------------------------------
# the page


def _code(s: str) -> str:
    return f"`{s}`"


def render(prims, used, tests) -> str:
    rows = [describe(c) for c in prims]
    out = [
        "# The primitive ops",
        "",
        "Every primitive of `tinygrad_mnist.ops`, generated from the code by `python docs/gen_ops.py` (do not edit"
        " by hand; `tests/test_ops_doc.py` fails when this page is stale). Each op is a `Function`: a NumPy"
        " forward and a gradient rule written with Tensor operations (so gradients can be differentiated"
        " again). In the rules, *g* is the gradient arriving at the op's output, *y* the output.",
        "",
        "Read from each op: the forward (the first paragraph of its docstring), the gradient rule (its `Gradient:`"
        " paragraph), whether it is a fused op and the composite it equals (its `Equals` paragraph), what it"
        " keeps for its backward (`saves_inputs`, `saves_output`, `saved`). *Used by* lists the Tensor methods"
        " and package functions whose source applies the op (a private helper is replaced by its public"
        " callers). *Checked by* lists the test files in which the op ran inside `gradcheck` (central"
        " differences in float64), `compare_with_reference` (PyTorch), a gradient of its gradient inside"
        " either, and a `tinygrad_mnist.compile` recording (replay equals eager bit for bit), found by running"
        " the op tests once with every op watched.",
        "",
        "| op | forward | saves | fused | " + " | ".join(label for _, label in CHECKS) + " |",
        "| --- | --- | --- | --- | " + " | ".join("---" for _ in CHECKS) + " |",
    ]
    for r in rows:
        marks = ["✓" if tests.get(r["name"], {}).get(check) else "" for check, _ in CHECKS]
        out.append(f"| [{r['name']}](#{r['name'].lower()}) | {_table(r['forward'])} | {r['saves']} | "
                   f"{'yes' if r['equals'] else ''} | " + " | ".join(marks) + " |")
    for r in rows:
        out += ["", f"## {r['name']}", ""]
        out.append(f"`{r['module']}.{r['name']}`")
        out.append("")
        out.append(f"- **forward**: {r['forward'] or '(no docstring)'}")
        out.append(f"- **gradient**: {r['gradient'] or '(not stated in the docstring)'}")
        out.append(f"- **saves for backward**: {r['saves']}")
        out.append(f"- **fused**: {r['equals'] if r['equals'] else 'no'}")
        by = used.get(r["name"], [])
        out.append("- **used by**: " + (", ".join(_code(u) if not u.startswith("the gradient") else u for u in by)
                                         if by else "(no direct caller)"))
        checks = tests.get(r["name"], {})
        lines = [f"{label}: " + ", ".join(_code(f) for f in checks[check])
                 for check, label in CHECKS if checks.get(check)]
        out.append("- **checked by**: " + ("; ".join(lines) if lines else "(none found)"))
    return "\n".join(out) + "\n"


def _table(s):
    return (s or "").replace("|", "\\|")


def _tests_block(tests) -> str:
    return BEGIN_TESTS + "\n" + json.dumps(tests, indent=0, sort_keys=True) + "\n" + END_TESTS + "\n"


def recorded_tests(text: str) -> dict | None:
    m = re.search(re.escape(BEGIN_TESTS) + r"\n(.*?)\n" + re.escape(END_TESTS), text, flags=re.S)
    return json.loads(m.group(1)) if m else None


def generate(tests: dict) -> str:
    prims = primitives()
    return render(prims, users(prims), tests) + "\n" + _tests_block(tests)


def stale_reason() -> str | None:
    """Why docs/ops.md is stale, or None when it is fresh (the test columns are taken from the page)."""
    if not OUT.exists():
        return "docs/ops.md is missing"
    text = OUT.read_text(encoding="utf-8")
    tests = recorded_tests(text)
    if tests is None:
        return "docs/ops.md has no recorded test columns"
    names = {c.__name__ for c in primitives()}
    gone = sorted(set(tests) - names)
    if gone:
        return f"the recorded test columns name ops that no longer exist: {gone}"
    if generate(tests) != text:
        return "docs/ops.md differs from what the code says"
    return None


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--check", action="store_true", help="exit 1 when docs/ops.md is stale")
    ap.add_argument("--keep-tests", action="store_true",
                    help="keep the test columns recorded in docs/ops.md instead of running the op tests")
    args = ap.parse_args(argv)
    if args.check:
        why = stale_reason()
        if why:
            print(f"{why}: {HOW_TO_FIX}", file=sys.stderr)
            return 1
        return 0
    if args.keep_tests:
        recorded = recorded_tests(OUT.read_text(encoding="utf-8")) if OUT.exists() else None
        if recorded is None:
            raise SystemExit("gen_ops: docs/ops.md has no recorded test columns to keep; run without --keep-tests")
        names = {c.__name__ for c in primitives()}
        tests = {op: checks for op, checks in recorded.items() if op in names}
    else:
        tests = run_tests(primitives())
    OUT.write_text(generate(tests), encoding="utf-8")
    print(f"wrote {OUT.relative_to(REPO)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
