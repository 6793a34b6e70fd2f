"""The pytest plugin, run in fresh pytest processes (nothing is installed):

- "installed" is simulated by a dist-info folder on PYTHONPATH that declares the entry point written in
  pyproject.toml, so the test checks the declaration itself: pytest loads the plugin from it, and
  `-p no:tinygrad_mnist` switches it off;
- the `seed` fixture seeds the engine, --tinygrad-seed sets it, a failing test reports it;
- a failing gradient check gets a got/want section, and its traceback ends at the user's line;
- the project's own suite (its conftest.py) runs unchanged with the plugin on.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
import textwrap
import zlib
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent

tomllib = pytest.importorskip("tomllib", reason="reading pyproject.toml needs Python 3.11")

USER_TESTS = textwrap.dedent('''
    import numpy as np
    import tinygrad_mnist as tg
    from tinygrad_mnist import Function, Tensor
    from tinygrad_mnist.testing import assert_close, gradcheck

    class WrongCube(Function):
        def forward(self, x):
            return x ** 3

        def backward(self, g):
            (x,) = self.parents
            return (g * x * x * 2,)

    def test_wrong_rule():
        x = Tensor(np.array([[0.5, 1.0], [1.5, 2.0]]), requires_grad=True)
        gradcheck(lambda t: WrongCube.apply(t), [x])

    def test_right_rule():
        x = Tensor(np.array([0.5, 1.0]), requires_grad=True)
        assert gradcheck(lambda t: t ** 3, [x])

    def test_wrong_parameter_gradient():  # what assert_module_matches reports, without needing PyTorch
        assert_close(np.array([[1.0, 2.0], [3.0, 4.0]]), np.array([[1.0, 2.0], [3.0, 4.5]]),
                     what="gradient of parameter 'fc.weight'", reference="PyTorch module")

    def test_seed_is_applied(seed):
        drawn = tg.randn(3).data
        tg.manual_seed(seed)
        assert np.array_equal(drawn, tg.randn(3).data)
        print(f"SEED={seed}")

    def test_seed_is_reported(seed):
        assert seed < 0, "fails on purpose"
''')


def entry_point() -> tuple[str, str]:
    eps = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["entry-points"]["pytest11"]
    assert list(eps) == ["tinygrad_mnist"], eps
    return "tinygrad_mnist", eps["tinygrad_mnist"]


def fake_install(tmp_path: Path) -> Path:
    """A folder that importlib.metadata reads as an installed distribution declaring our pytest11 entry point."""
    name, value = entry_point()
    dist = tmp_path / "site" / "tinygrad_mnist_plugin_probe-0.dist-info"
    dist.mkdir(parents=True)
    (dist / "METADATA").write_text("Metadata-Version: 2.1\nName: tinygrad-mnist-plugin-probe\nVersion: 0\n")
    (dist / "entry_points.txt").write_text(f"[pytest11]\n{name} = {value}\n")
    return dist.parent


def run_pytest(cwd: Path, *args: str, site: Path | None = None) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if k not in ("PYTEST_DISABLE_PLUGIN_AUTOLOAD", "PYTEST_ADDOPTS",
                                                            "PYTEST_PLUGINS")}
    paths = [str(ROOT)] + ([str(site)] if site else []) + [p for p in [env.get("PYTHONPATH")] if p]
    env["PYTHONPATH"] = os.pathsep.join(paths)  # this checkout's package first
    return subprocess.run([sys.executable, "-m", "pytest", "-p", "no:cacheprovider", *args], cwd=cwd, env=env,
                          capture_output=True, text=True)


@pytest.fixture
def user_project(tmp_path):
    (tmp_path / "test_user.py").write_text(USER_TESTS)
    return tmp_path


def test_entry_point_names_the_plugin_module():
    import importlib

    name, value = entry_point()
    module = importlib.import_module(value)
    assert hasattr(module, "seed") and hasattr(module, "pytest_runtest_makereport")


def test_installed_plugin_reports_seeds_and_gradient_tables(user_project):
    out = run_pytest(user_project, "-q", site=fake_install(user_project))
    text = out.stdout + out.stderr
    assert "3 failed, 2 passed" in text, text

    wrong = text[text.index("_ test_wrong_rule _"):text.index("_ test_wrong_parameter_gradient _")]
    assert "gradcheck(lambda t: WrongCube.apply(t), [x])" in wrong  # the user's line...
    assert "gradcheck.py" not in wrong  # ...and none of the kit's
    assert "d output[0, 0] / d input[0, 0]: analytic 0.5, numeric 0.75" in wrong
    section = wrong[wrong.index("gradient check: input 0"):]
    assert re.search(r"analytic d output\[0, 0\] / d input 0:\n +0 +1\n +0 +0\.5\* +0\n +1 +0 +0\nnumeric:\n"
                     r" +0 +1\n +0 +0\.75\* +0\n +1 +0 +0", section), section
    assert "tinygrad_mnist seed" not in wrong  # this test did not ask for a seed

    param = text[text.index("_ test_wrong_parameter_gradient _"):text.index("_ test_seed_is_reported _")]
    assert "gradcheck.py" not in param  # the traceback ends at the user's line
    section = param[param.index("gradient check: gradient of parameter 'fc.weight'"):]
    assert re.search(r"first difference at \[1, 1\].*\nours:\n +0 +1\n +0 +1 +2\n +1 +3 +4\*\n"
                     r"PyTorch module:\n +0 +1\n +0 +1 +2\n +1 +3 +4\.5\*", section), section

    reported = text[text.index("_ test_seed_is_reported _"):]
    expected = zlib.crc32(b"test_user.py::test_seed_is_reported")  # the default: fixed per test
    assert (f"this test ran with seed={expected} (tinygrad_mnist.manual_seed({expected})); "
            f"rerun it with --tinygrad-seed={expected}") in reported, reported
    assert "gradient check" not in reported


def test_seed_option_and_explicit_plugin(user_project):
    # not installed: switched on by module name (blocking the entry point's name keeps this safe where it is)
    explicit = ("-p", "no:tinygrad_mnist", "-p", "tinygrad_mnist.testing.plugin")
    out = run_pytest(user_project, *explicit, "-q", "-s", "--tinygrad-seed=5", "-k", "seed_is_applied")
    assert "1 passed" in out.stdout and "SEED=5" in out.stdout, out.stdout + out.stderr
    bad = run_pytest(user_project, *explicit, "--tinygrad-seed=five")
    assert bad.returncode != 0 and "--tinygrad-seed: expected an integer or 'random', got 'five'" in bad.stderr


def test_no_tinygrad_mnist_switches_the_installed_plugin_off(user_project):
    out = run_pytest(user_project, "-q", "-p", "no:tinygrad_mnist", "-k", "seed_is_applied",
                     site=fake_install(user_project))
    assert "fixture 'seed' not found" in out.stdout, out.stdout + out.stderr


def test_the_project_suite_runs_unchanged_with_the_plugin(tmp_path):
    """The project's conftest.py and tests next to the installed plugin: no clash, everything passes."""
    out = run_pytest(ROOT, "-q", "--trace-config", "tests/test_errors.py", site=fake_install(tmp_path))
    assert "tinygrad_mnist.testing.plugin" in out.stdout  # it was loaded, and
    assert out.returncode == 0 and re.search(r"^\d+ passed", out.stdout, flags=re.M), out.stdout + out.stderr
