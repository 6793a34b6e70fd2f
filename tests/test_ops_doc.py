"""docs/ops.md, the op reference, is generated from the code (docs/gen_ops.py) and must be fresh.

Also checks the generator itself: every primitive states its forward and gradient rule, "used by" finds
the callers wherever they live (and not a namesake class), and the test watcher sees which check an op
ran under.
"""

from __future__ import annotations

import importlib.util
import re
import textwrap
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
_spec = importlib.util.spec_from_file_location("gen_ops", REPO / "docs" / "gen_ops.py")
gen_ops = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(gen_ops)

PRIMS = gen_ops.primitives()


def test_ops_md_is_fresh():
    why = gen_ops.stale_reason()
    assert why is None, f"{why}: {gen_ops.HOW_TO_FIX}"


def test_ops_md_lists_every_primitive():
    text = (REPO / "docs" / "ops.md").read_text(encoding="utf-8")
    headings = set(re.findall(r"^## (\w+)$", text, flags=re.M))
    assert headings == {c.__name__ for c in PRIMS}
    assert len(PRIMS) > 50  # the walk found the ops (a module or a package)


@pytest.mark.parametrize("cls", PRIMS, ids=[c.__name__ for c in PRIMS])
def test_every_op_docstring_states_its_forward_and_gradient_rule(cls):
    d = gen_ops.describe(cls)
    assert d["forward"], f"{cls.__name__}: the docstring's first line must state the forward"
    assert d["gradient"], f"{cls.__name__}: the docstring needs a 'Gradient:' paragraph (the rule in math)"


def test_used_by_finds_methods_functions_and_rules_but_not_namesakes():
    used = gen_ops.users(PRIMS)
    assert "Tensor.exp" in used["Exp"]
    assert "Tensor.linear" in used["Linear"]
    assert not any("CNN" in u or "MLP" in u for u in used["Linear"])  # nn.Linear is another class
    assert "nn.functional.gelu" in used["Erf"]  # through a decorator
    assert "the gradient of Sigmoid" in used["SigmoidGrad"]


def test_the_watcher_sees_which_check_an_op_ran_under(tmp_path):
    test_file = tmp_path / "test_watched.py"
    test_file.write_text(textwrap.dedent("""
        import numpy as np
        import tinygrad_mnist as tg
        from tinygrad_mnist import Tensor
        from tinygrad_mnist.gradcheck import gradcheck

        def test_exp_under_gradcheck():
            gradcheck(lambda x: x.exp().sum(), [Tensor(np.ones(3), requires_grad=True)])

        def test_tanh_grad_of_grad():
            def first(x):
                (g,) = tg.grad(x.tanh().sum(), [x], create_graph=True)
                return g.sum()
            gradcheck(first, [Tensor(np.full(3, 0.3), requires_grad=True)])

        def test_sigmoid_replayed():
            w = Tensor(np.ones(3, np.float32), requires_grad=True)
            step = tg.compile(lambda x: (x * w).sigmoid().sum())
            for _ in range(3):
                step(tg.from_numpy(np.ones(3, np.float32)))

        def test_log_outside_any_check():
            Tensor(np.ones(3)).log()
    """))
    watch = gen_ops.Watch(PRIMS)
    code = pytest.main(["-q", "-p", "no:cacheprovider", str(test_file)], plugins=[watch])
    assert code == 0
    seen = {op: {check: set(files) for check, files in checks.items()} for op, checks in watch.seen.items()}
    assert seen["Exp"]["gradcheck"] == {"test_watched.py"}
    assert "gradgrad" in seen["Tanh"] and "gradgrad" not in seen.get("Exp", {})
    assert seen["Sigmoid"].get("replay") == {"test_watched.py"} and "gradcheck" not in seen["Sigmoid"]
    assert "Log" not in seen or not seen["Log"]
    assert gen_ops.describe(PRIMS[0]) is not None  # the ops are restored: describing them still works
    for cls in PRIMS:
        assert "forward" not in cls.__dict__ or cls.__dict__["forward"].__qualname__.startswith(cls.__name__)
