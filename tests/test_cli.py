"""The command line end to end: `python -m tinygrad_mnist {train,evaluate,predict,graph}` on data the tests write.

Most runs call cli.main(argv) in-process (fast; output captured with capsys); a few go through
`python -m tinygrad_mnist` in a subprocess to check the module entry point and clean exits.
"""

from __future__ import annotations

import json
import math
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest
from PIL import Image

from tinygrad_mnist import cli, data

REPO = Path(__file__).resolve().parent.parent
SUMMARY = re.compile(r"^test accuracy: (\d\.\d{4}) on ([\d,]+) images", re.M)
PREDICTION = re.compile(r"^(.+): (\d) \((\d+\.\d)%\)$", re.M)


@pytest.fixture(autouse=True)
def _offline(monkeypatch):
    monkeypatch.setenv(data.OFFLINE_ENV, "1")  # whatever a test gets wrong, it never downloads


def run(argv, capsys) -> tuple[int, str, str]:
    rc = cli.main([str(a) for a in argv])
    out, err = capsys.readouterr()
    return rc, out, err


def run_module(*args, env_extra=None) -> subprocess.CompletedProcess:
    env = dict(os.environ, **(env_extra or {}))
    env[data.OFFLINE_ENV] = "1"
    env["PYTHONPATH"] = os.pathsep.join([str(REPO), *filter(None, [env.get("PYTHONPATH")])])
    return subprocess.run([sys.executable, "-m", "tinygrad_mnist", *map(str, args)], env=env,
                          capture_output=True, text=True, timeout=600)


def to_uint8(x: np.ndarray) -> np.ndarray:
    return np.rint(x * 255).astype(np.uint8)  # the sample was uint8 / 255, so this is exact


def write_png(path: Path, digit_row: np.ndarray, big: bool = False) -> Path:
    """A test digit as a PNG: 28x28 white on black as in MNIST, or big=True: 100x80 black on white."""
    img = Image.fromarray(to_uint8(digit_row.reshape(28, 28)))
    if big:
        canvas = Image.new("L", (100, 80), 0)
        canvas.paste(img.resize((70, 70), Image.Resampling.BILINEAR), (20, 4))
        img = Image.fromarray(255 - np.asarray(canvas))  # dark ink on white paper
    img.save(path)
    return path


@pytest.fixture(scope="module")
def tiny_dir(tmp_path_factory) -> Path:
    """300 train / 100 test digits from the bundled sample, as the four gzipped IDX files."""
    d = tmp_path_factory.mktemp("tiny_mnist")
    s = data.load_sample()
    arrays = [to_uint8(s.x_train[:300]).reshape(-1, 28, 28), s.y_train[:300].astype(np.uint8),
              to_uint8(s.x_test[:100]).reshape(-1, 28, 28), s.y_test[:100].astype(np.uint8)]
    for name, arr in zip(data.FILES, arrays):
        data.write_idx(d / f"{name}.gz", arr)
    return d


@pytest.fixture(scope="module")
def tiny_model(tiny_dir, tmp_path_factory):
    """An MLP trained for one epoch on the tiny set, through the `python -m tinygrad_mnist` entry point."""
    out = tmp_path_factory.mktemp("tiny_model")
    proc = run_module("train", "--model", "mlp", "--epochs", 1, "--data", tiny_dir, "--save", out / "m.npz",
                      "--metrics-json", out / "m.json", "--no-progress")
    return SimpleNamespace(proc=proc, npz=out / "m.npz", json=out / "m.json", dir=out)


@pytest.fixture(scope="module")
def sample_model(tmp_path_factory):
    """An MLP trained for one epoch on the whole bundled sample (10,000 digits): good enough to read digits."""
    path = tmp_path_factory.mktemp("sample_model") / "mlp.npz"
    rc = cli.main(["train", "--model", "mlp", "--epochs", "1", "--data", str(data.SAMPLE_DIR), "--save", str(path),
                   "--no-progress"])
    assert rc == 0
    return path


# ---------------------------------------------------------------------------------------------------------
# train / evaluate


def test_train_via_module_entry_point(tiny_model):
    p = tiny_model.proc
    assert p.returncode == 0, p.stderr
    assert "Traceback" not in p.stderr
    assert tiny_model.npz.is_file() and f"saved model to {tiny_model.npz}" in p.stdout
    metrics = json.loads(tiny_model.json.read_text())
    assert [e["epoch"] for e in metrics["epochs"]] == [1]
    epoch = metrics["epochs"][0]
    assert math.isfinite(epoch["train_loss"]) and 0 <= epoch["eval_acc"] <= 1
    assert metrics["recipe"]["model"] == "mlp" and metrics["recipe"]["epochs"] == 1
    assert metrics["eval_split"] == "test" and metrics["is_sample"] is False
    m = SUMMARY.search(p.stdout)
    assert m, p.stdout
    assert m.group(2) == "100" and float(m.group(1)) == pytest.approx(metrics["test_acc"], abs=5e-5)
    assert "on 300 images" in p.stdout  # the header names the training set size


def test_evaluate_reports_the_training_accuracy(tiny_model, tiny_dir, capsys):
    rc, out, _ = run(["evaluate", "--load", tiny_model.npz, "--data", tiny_dir], capsys)
    assert rc == 0
    test_acc = json.loads(tiny_model.json.read_text())["test_acc"]
    assert f"mlp: test accuracy {test_acc:.4f} on 100 images" in out


@pytest.mark.parametrize("model", ["nielsen", "cnn"])
def test_train_other_models(model, tiny_dir, tmp_path, capsys):
    rc, out, _ = run(["train", "--model", model, "--epochs", 1, "--batch-size", 32, "--data", tiny_dir,
                      "--metrics-json", tmp_path / "m.json", "--no-progress"], capsys)
    assert rc == 0
    assert f"training {model} (" in out and "batch 32" in out
    metrics = json.loads((tmp_path / "m.json").read_text())
    assert metrics["recipe"]["batch_size"] == 32 and math.isfinite(metrics["epochs"][0]["train_loss"])
    assert SUMMARY.search(out).group(2) == "100"


def test_validation_split(tiny_dir, tmp_path, capsys):
    rc, out, _ = run(["train", "--epochs", 1, "--validation", "--data", tiny_dir,
                      "--metrics-json", tmp_path / "v.json", "--no-progress"], capsys)
    assert rc == 0
    assert re.search(r"epoch  1/1: .* validation acc \d\.\d{4}", out), out
    metrics = json.loads((tmp_path / "v.json").read_text())
    assert metrics["eval_split"] == "validation"
    assert metrics["test_acc"] is not None  # the test set is used once, at the end


def test_plot_writes_three_pngs(tiny_dir, tmp_path, capsys):
    pytest.importorskip("matplotlib")
    rc, out, _ = run(["train", "--epochs", 1, "--data", tiny_dir, "--plot", tmp_path / "plots", "--no-progress"],
                     capsys)
    assert rc == 0
    pngs = sorted((tmp_path / "plots").glob("*.png"))
    assert [p.name for p in pngs] == ["confusion.png", "curves.png", "misclassified.png"]
    for p in pngs:
        assert p.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
        assert f"wrote {p}" in out


def test_sample_fallback_notice(tmp_path, monkeypatch, capsys):
    monkeypatch.delenv(data.ENV_VAR, raising=False)
    monkeypatch.delenv(data.OFFLINE_ENV, raising=False)  # --no-download alone must keep it offline
    monkeypatch.setenv("HOME", str(tmp_path))
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))

    def no_network(*args, **kwargs):
        raise AssertionError("tried to download despite --no-download")

    monkeypatch.setattr(data, "urlopen", no_network)
    rc, out, err = run(["train", "--limit", 500, "--epochs", 1, "--no-download", "--no-progress"], capsys)
    assert rc == 0
    notices = [line for line in err.splitlines() if "bundled sample" in line]
    assert len(notices) == 1, err
    assert "full MNIST not found" in notices[0] and "download disabled" in notices[0]
    assert "on 500 images" in out and "(bundled sample, not the full MNIST test set)" in out


# ---------------------------------------------------------------------------------------------------------
# predict


def test_predict_prints_a_digit(tiny_model, tmp_path, capsys):
    x = data.load_sample().x_test[0]
    for png in (write_png(tmp_path / "small.png", x), write_png(tmp_path / "big.png", x, big=True)):
        rc, out, _ = run(["predict", "--load", tiny_model.npz, png], capsys)
        assert rc == 0
        m = PREDICTION.search(out)
        assert m and m.group(1) == str(png), out
        probs = [float(p) for p in re.findall(r"\d:(\d\.\d\d)", out)]
        assert len(probs) == 10 and sum(probs) == pytest.approx(1, abs=0.06)


@pytest.mark.parametrize("big", [False, True], ids=["28x28", "100x80-inverted"])
def test_predict_reads_digits_correctly(sample_model, tmp_path, capsys, big):
    s = data.load_sample()
    correct = 0
    for i in range(10):
        png = write_png(tmp_path / f"digit{i}.png", s.x_test[i], big=big)
        rc, out, _ = run(["predict", "--load", sample_model, png], capsys)
        assert rc == 0
        correct += int(PREDICTION.search(out).group(2)) == s.y_test[i]
    assert correct >= 8, f"{correct}/10 digits read correctly"


def test_predict_resizing_and_inversion(tmp_path):
    """A big, dark-on-light copy of a digit comes back close to the original 28x28 MNIST digit."""
    s = data.load_sample()
    for i in range(5):
        x = s.x_test[i]
        got = cli.load_digit_image(write_png(tmp_path / f"big{i}.png", x, big=True))
        assert got.shape == (1, 784) and got.min() >= 0 and got.max() <= 1
        assert np.corrcoef(got[0], x)[0, 1] > 0.8  # the same strokes in the same place


# ---------------------------------------------------------------------------------------------------------
# graph


def test_graph_dot(tmp_path, capsys):
    rc, out, _ = run(["graph", "--model", "mlp", "-o", tmp_path / "g.dot"], capsys)
    assert rc == 0 and f"wrote {tmp_path / 'g.dot'}" in out
    text = (tmp_path / "g.dot").read_text()
    assert text.lstrip().startswith("digraph") and "loss" in text


@pytest.mark.skipif(shutil.which("dot") is None, reason="Graphviz's `dot` program is not installed")
def test_graph_svg(tmp_path, capsys):
    rc, _, _ = run(["graph", "--model", "mlp", "-o", tmp_path / "g.svg"], capsys)
    assert rc == 0
    assert "<svg" in (tmp_path / "g.svg").read_text()


# ---------------------------------------------------------------------------------------------------------
# errors: a clear message and exit code, no traceback


def test_data_dir_without_mnist(tmp_path, capsys):
    empty = tmp_path / "empty"
    empty.mkdir()
    rc, out, err = run(["train", "--epochs", 1, "--data", empty, "--no-progress"], capsys)
    assert rc == 2
    assert str(empty) in err and "missing" in err and "train-images-idx3-ubyte" in err


def test_evaluate_corrupt_checkpoint(tmp_path, tiny_dir, tiny_model, capsys):
    garbage = tmp_path / "corrupt.npz"
    garbage.write_bytes(b"this is not a checkpoint\n" * 10)
    truncated = tmp_path / "truncated.npz"
    truncated.write_bytes(tiny_model.npz.read_bytes()[:5000])
    for path in (garbage, truncated):
        rc, _, err = run(["evaluate", "--load", path, "--data", tiny_dir], capsys)
        assert rc == 2
        assert str(path) in err and ".npz checkpoint" in err, err


def test_predict_non_image(tmp_path, tiny_model):
    notes = tmp_path / "notes.txt"
    notes.write_text("not an image\n")
    p = run_module("predict", "--load", tiny_model.npz, notes)
    assert p.returncode == 2
    assert f"can't read image {notes}" in p.stderr and "Traceback" not in p.stderr


def test_missing_checkpoint(tmp_path):
    p = run_module("evaluate", "--load", tmp_path / "nope.npz", "--data", data.SAMPLE_DIR)
    assert p.returncode == 2 and str(tmp_path / "nope.npz") in p.stderr and "Traceback" not in p.stderr
