"""Every script in examples/ runs as `python examples/NAME.py` and does what its docstring promises.

Short runs on the bundled 10k/2k sample: the environment hides any full MNIST and any cache and forbids
downloads, so the results (and the accuracy floors below, set well under what the runs reach) are the
same on every machine.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from tinygrad_mnist import data

REPO = Path(__file__).resolve().parent.parent
EXAMPLES = REPO / "examples"


@pytest.fixture
def env(tmp_path):
    e = {k: v for k, v in os.environ.items() if k != data.ENV_VAR}
    e.update({data.OFFLINE_ENV: "1", "XDG_CACHE_HOME": str(tmp_path / "cache"), "HOME": str(tmp_path)})
    return e


def run_example(name: str, *args: str, env: dict) -> str:
    proc = subprocess.run([sys.executable, str(EXAMPLES / name), *args], env=env, cwd=REPO,
                          capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, f"{name} exited {proc.returncode}\n{proc.stdout}\n{proc.stderr}"
    return proc.stdout


def accuracies(out: str) -> list[float]:
    return [float(a) for a in re.findall(r"test accuracy (\d\.\d+)", out)]


def test_nielsen(env):
    # Nielsen's N(0, 1) sigmoid net starts slowly: two epochs on the 10k sample reach about 67%
    # (about 95% after 30 epochs on the full MNIST)
    out = run_example("nielsen.py", "--epochs", "2", env=env)
    assert re.search(r"^Epoch 0: \d+ / 2000", out, re.M), out  # Nielsen's own output format
    acc = accuracies(out)
    assert len(acc) == 2 and acc[-1] > 0.5, out


def test_nielsen_is_short_and_plain():
    src = (EXAMPLES / "nielsen.py").read_text()
    assert len(src.splitlines()) < 60
    assert "nn.Module" not in src and "requires_grad=True" in src  # the math, not a layer library


def test_mlp_100_200(env):
    out = run_example("mlp_100_200.py", "--epochs", "1", "--limit", "2000", env=env)
    assert "100,710 parameters" in out  # 784*100+100 + 100*200+200 + 200*10+10
    assert accuracies(out)[-1] > 0.6, out  # about 75%


def test_mlp_100_200_with_data_dir(env):
    out = run_example("mlp_100_200.py", "--epochs", "1", "--limit", "500", "--data", str(data.SAMPLE_DIR), env=env)
    assert "500 training images" in out and len(accuracies(out)) == 1


def test_xor_learns_the_truth_table(env):
    out = run_example("xor.py", env=env)
    assert "gradcheck" in out and ": ok" in out
    rows = re.findall(r"^ (\d)  (\d) \|  (\d)  \| (\d\.\d+) -> (\d)$", out, re.M)
    assert len(rows) == 4, out
    for a, b, want, prob, pred in rows:
        assert int(want) == int(a) ^ int(b)
        assert int(pred) == int(want) and abs(float(prob) - int(want)) < 0.1, out
    assert "4/4 correct" in out


def test_xor_other_seeds():
    # In-process: the examples define main(argv); a stuck run would return 1.
    sys.path.insert(0, str(EXAMPLES))
    try:
        import xor
    finally:
        sys.path.remove(str(EXAMPLES))
    for seed in (1, 2, 3):
        assert xor.main(["--seed", str(seed), "--steps", "2000"]) == 0


def test_cnn(env):
    out = run_example("cnn.py", "--epochs", "1", "--limit", "2000", env=env)
    assert accuracies(out)[-1] > 0.6, out  # about 78%


@pytest.mark.parametrize("loss, limit", [("focal", "2000"), ("smooth", "1000")])
def test_custom_loss(env, loss, limit):
    out = run_example("custom_loss.py", "--loss", loss, "--epochs", "1", "--limit", limit, env=env)
    assert "gradcheck focal: ok" in out and "gradcheck smooth: ok" in out
    assert accuracies(out)[-1] > 0.5, out  # about 76% (focal, 2000 images)


def test_custom_losses_match_the_formulas():
    """The example's losses equal straightforward NumPy formulas, and gradcheck rejects a wrong gradient."""
    import numpy as np

    from tinygrad_mnist import Tensor
    from tinygrad_mnist.gradcheck import GradcheckError, gradcheck

    sys.path.insert(0, str(EXAMPLES))
    try:
        import custom_loss
    finally:
        sys.path.remove(str(EXAMPLES))
    rng = np.random.default_rng(1)
    z, y = rng.normal(size=(6, 10)), rng.integers(0, 10, 6)
    logp = z - np.log(np.exp(z).sum(1, keepdims=True))
    lpt = logp[np.arange(6), y]
    focal = np.mean(-(1 - np.exp(lpt)) ** 2 * lpt)
    target = 0.9 * np.eye(10)[y] + 0.01
    smooth = np.mean(-(target * logp).sum(1))
    np.testing.assert_allclose(custom_loss.focal_loss(Tensor(z), y).item(), focal, rtol=1e-12)
    np.testing.assert_allclose(custom_loss.smoothed_cross_entropy(Tensor(z), y).item(), smooth, rtol=1e-12)

    # detach() cuts the (1 - p_t)^gamma factor out of the graph: a wrong gradient that gradcheck must catch
    def wrong(logits, labels=y):
        log_pt = (logits.log_softmax(axis=1) * np.eye(10)[labels]).sum(axis=1)
        return ((1 - log_pt.exp()).detach() ** 2 * -log_pt).mean()

    with pytest.raises(GradcheckError):
        gradcheck(wrong, [Tensor(z, requires_grad=True)])


def test_pytorch_mnist_example(env):
    # PyTorch's MNIST example, unchanged but for the data source and Adam: its DataLoader loop, log lines
    # and test report; 6 steps of 64 images reach about 60% (chance is 10%)
    env = {**env, "PYTHONPATH": str(REPO)}  # this checkout's package, whatever is installed
    out = run_example("pytorch_mnist.py", "--epochs", "1", "--limit", "384", "--test-limit", "200",
                      "--test-batch-size", "100", "--log-interval", "3", env=env)
    assert re.search(r"^Train Epoch: 1 \[0/384 \(0%\)\]\tLoss: \d\.\d{6}$", out, re.M), out
    assert re.search(r"^Train Epoch: 1 \[192/384 \(50%\)\]\tLoss: \d\.\d{6}$", out, re.M), out
    m = re.search(r"^Test set: Average loss: \d+\.\d{4}, Accuracy: (\d+)/200 \(\d+%\)$", out, re.M)
    assert m and int(m.group(1)) > 80, out
