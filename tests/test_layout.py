"""The package's layout (issue 16): the core imports nothing above it at load, and files stay readable in size."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

import tinygrad_mnist

PKG = Path(tinygrad_mnist.__file__).resolve().parent

# Load tinygrad_mnist.engine by itself: an empty stand-in for the package keeps its __init__ (which joins
# all the layers) from running, so whatever else gets imported was imported by the core.
CORE_ALONE = """
import json, sys, types
pkg = types.ModuleType("tinygrad_mnist")
pkg.__path__ = [sys.argv[1]]
sys.modules["tinygrad_mnist"] = pkg
import numpy as np
import tinygrad_mnist.engine as E

class Square(E.Function):  # a primitive written against the core alone
    def forward(self, x):
        return x * x

x = E.Tensor(np.array([1.0, 2.0]), requires_grad=True)
y = Square.apply(x)
print(json.dumps({
    "modules": sorted(m for m in sys.modules if m.startswith("tinygrad_mnist")),
    "bound": [E.ops is not None, E.inplace is not None],
    "surface": [hasattr(E.Tensor, n) for n in ("__add__", "sum", "reshape", "zeros", "add_", "softmax")],
    "y": y.data.tolist(), "recorded": y.grad_fn.name, "walk": [n is x for n in E.walk(y)],
}))
"""


def test_the_core_imports_no_ops_and_no_surface():
    out = subprocess.run([sys.executable, "-c", CORE_ALONE, str(PKG)], capture_output=True, text=True, check=True)
    seen = json.loads(out.stdout)
    # the core's one helper module (what a released graph keeps) and nothing above: no ops, no inplace,
    # no tensor_methods, nn, compile or viz
    assert seen["modules"] == ["tinygrad_mnist", "tinygrad_mnist.engine", "tinygrad_mnist.records"]
    assert seen["bound"] == [False, False]  # the late binding is the package __init__'s, not the core's
    assert seen["surface"] == [False] * 6  # Tensor's PyTorch methods are attached by tensor_methods, later
    # ... yet the core alone records an op and walks the graph
    assert seen["y"] == [1.0, 4.0] and seen["recorded"] == "Square" and seen["walk"] == [True, False]


def test_the_package_binds_the_core_late_in_one_place():
    from tinygrad_mnist import engine, inplace, ops, tensor_methods

    assert engine.ops is ops and engine.inplace is inplace
    # every method of every group is Tensor's own, with its kind kept
    for group in tensor_methods.GROUPS:
        for name, member in vars(group).items():
            if name not in tensor_methods._CLASS_ONLY:
                assert engine.Tensor.__dict__[name] is member, name
    assert isinstance(engine.Tensor.__dict__["shape"], property)
    assert isinstance(engine.Tensor.__dict__["T"], property)
    assert isinstance(engine.Tensor.__dict__["zeros"], classmethod)
    assert isinstance(engine.Tensor.__dict__["cat"], staticmethod)
    assert engine.Tensor.sum.__qualname__ == "Tensor.sum"
    assert "largest value" in engine.Tensor.max.__doc__


def test_attaching_a_name_twice_is_an_error():
    from tinygrad_mnist import tensor_methods

    class Twice:
        def sum(self):
            return None

    class Host:
        def sum(self):
            return None

    with pytest.raises(RuntimeError, match="Twice.sum would replace Host.sum"):
        tensor_methods.attach(Host, (Twice,))


def line_count(path: Path) -> int:
    return len(path.read_text().splitlines())


def test_engine_is_at_most_700_lines():
    assert line_count(PKG / "engine.py") <= 700


def test_no_package_module_over_1000_lines():
    sizes = {str(p.relative_to(PKG)): line_count(p) for p in PKG.rglob("*.py")}
    assert "engine.py" in sizes and "tensor_methods/shape.py" in sizes and "ops/fused.py" in sizes  # the walk found it
    over = {name: n for name, n in sizes.items() if n > 1000}
    assert not over, f"modules over 1000 lines: {over}"


# What each layer may import when it loads (docs/engine.md, "Reading the engine"): itself and the layers below.
CORE = {"engine", "records"}
LAYERS = {
    "records": {"records"},
    "engine": CORE,
    "ops": CORE | {"ops"},
    "inplace": CORE | {"ops", "inplace"},
    "generator": CORE | {"generator"},
    "tensor_methods": CORE | {"ops", "inplace", "generator", "tensor_methods"},
    "functions": CORE | {"ops", "inplace", "generator", "tensor_methods", "functions"},
}

LAYER_ALONE = """
import json, sys, types
pkg = types.ModuleType("tinygrad_mnist")
pkg.__path__ = [sys.argv[1]]
sys.modules["tinygrad_mnist"] = pkg
__import__("tinygrad_mnist." + sys.argv[2])
print(json.dumps(sorted({m.split(".")[1] for m in sys.modules if m.startswith("tinygrad_mnist.")})))
"""


@pytest.mark.parametrize("layer", sorted(LAYERS))
def test_each_layer_imports_only_the_layers_below_it(layer):
    out = subprocess.run([sys.executable, "-c", LAYER_ALONE, str(PKG), layer], capture_output=True, text=True,
                         check=True)
    assert set(json.loads(out.stdout)) == LAYERS[layer]
