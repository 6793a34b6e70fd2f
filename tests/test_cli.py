"""The command line end to end: `python -m tinygrad_mnist {train,evaluate,predict,graph,download}`.

Each command's test checks what the command is for (a held-out split really held out, models that learn,
`evaluate` agreeing with the weights), and every mistake a user can make ends in one line on stderr with
its own exit code, no traceback, and nothing half-written.  Runs go through a subprocess (the real entry
point, real signals, real exit codes) on small data written by the tests or the bundled sample.
"""

from __future__ import annotations

import json
import math
import os
import re
import shutil
import signal
import struct
import subprocess
import sys
import textwrap
import zlib
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest
from PIL import Image

from tinygrad_mnist import cli, data, serialization, train
from tinygrad_mnist.train import load_checkpoint

REPO = Path(__file__).resolve().parent.parent
SUMMARY = re.compile(r"^test accuracy: (\d\.\d{4}) on ([\d,]+) images", re.M)
PREDICTION = re.compile(r"^(.+): (\d) \((\d+\.\d)%\)", re.M)
ERROR_LINE = re.compile(r"^error: .+ \(.+\): .+$")  # error: <what> (<where>): <how to fix>


@pytest.fixture(autouse=True)
def _offline(monkeypatch):
    monkeypatch.setenv(data.OFFLINE_ENV, "1")  # whatever a test gets wrong, it never downloads


def child_env(env_extra=None, tmp_home=None) -> dict:
    env = {k: v for k, v in os.environ.items() if k not in (data.ENV_VAR, cli.DEBUG_ENV)}
    env[data.OFFLINE_ENV] = "1"
    env["PYTHONPATH"] = os.pathsep.join([str(REPO), *filter(None, [os.environ.get("PYTHONPATH")])])
    if tmp_home is not None:  # no cache, no full MNIST: what a fresh machine sees
        env.update(HOME=str(tmp_home), XDG_CACHE_HOME=str(tmp_home / "cache"))
    env.update(env_extra or {})
    return env


def run_module(*args, env_extra=None, cwd=None, tmp_home=None) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "tinygrad_mnist", *map(str, args)], cwd=cwd,
                          env=child_env(env_extra, tmp_home), capture_output=True, text=True, timeout=600)


# Runs cli.main with hooks that deliver real signals at chosen moments (argv after the script's own).
DRIVER = textwrap.dedent("""
    import os, signal, sys
    from tinygrad_mnist import cli, train
    mode, at = sys.argv[1], int(sys.argv[2])
    count = [0]

    def after_step(hook):  # run hook(optimizer) right after training step number `at` (compiled or eager)
        make = train.make_train_step
        def make_train_step(model, opt, recipe, compiled=True):
            step = make(model, opt, recipe, compiled)
            def counted(*args):
                out = step(*args)
                count[0] += 1
                if count[0] == at:
                    hook(opt)
                return out
            return counted
        train.make_train_step = make_train_step

    if mode in ("sigint-after-step", "sigterm-after-step"):  # Ctrl-C (or `kill`) right after step number `at`
        sig = signal.SIGINT if mode == "sigint-after-step" else signal.SIGTERM
        after_step(lambda opt: os.kill(os.getpid(), sig))
    elif mode == "poison-after-step":  # a NaN in the weights after optimizer step `at`, as a blow-up leaves
        def poison(opt):
            opt.params[0].data[0, 0] = float("nan")
        after_step(poison)
    elif mode == "disk-full-in-save":  # the `at`-th checkpoint write finds the disk full
        real_fsync = os.fsync
        def fsync(fd):
            if os.readlink(f"/proc/self/fd/{fd}").split("/")[-1].startswith(".m.ckpt.npz."):
                count[0] += 1
                if count[0] == at:
                    raise OSError(28, "No space left on device")
            return real_fsync(fd)
        os.fsync = fsync
    elif mode == "kill-in-save":  # SIGKILL inside the `at`-th checkpoint write, before its rename
        real_replace = os.replace
        def replace(src, dst):
            if str(dst).endswith(".ckpt.npz"):
                count[0] += 1
                if count[0] == at:
                    os.kill(os.getpid(), signal.SIGKILL)
            return real_replace(src, dst)
        os.replace = replace
    sys.exit(cli.main(sys.argv[3:]))
""")


def run_driver(mode, at, *args) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-c", DRIVER, mode, str(at), *map(str, args)], env=child_env(),
                          capture_output=True, text=True, timeout=600)


def one_error_line(p: subprocess.CompletedProcess, code: int, *needles: str) -> str:
    """The run failed with `code` and said so in exactly one `error: ...` line naming every needle."""
    assert p.returncode == code, f"exit {p.returncode}, expected {code}\n{p.stdout}\n{p.stderr}"
    assert "Traceback" not in p.stderr, p.stderr
    lines = [line for line in p.stderr.splitlines() if line.startswith("error: ")]
    assert len(lines) == 1, p.stderr
    assert ERROR_LINE.match(lines[0]), f"not 'error: <what> (<where>): <how to fix>': {lines[0]}"
    for needle in needles:
        assert needle in lines[0], f"{needle!r} not in: {lines[0]}"
    return lines[0]


def strict_json(path: Path):
    def no_constants(name):
        raise AssertionError(f"{path}: non-standard JSON token {name}")
    return json.loads(path.read_text(), parse_constant=no_constants)


def to_uint8(x: np.ndarray) -> np.ndarray:
    return np.rint(x * 255).astype(np.uint8)  # the sample was uint8 / 255, so this is exact


def write_set(d: Path, x_train, y_train, x_test, y_test) -> Path:
    d.mkdir(parents=True, exist_ok=True)
    arrays = [to_uint8(x_train).reshape(-1, 28, 28), y_train.astype(np.uint8),
              to_uint8(x_test).reshape(-1, 28, 28), y_test.astype(np.uint8)]
    for name, arr in zip(data.FILES, arrays):
        data.write_idx(d / f"{name}.gz", arr)
    return d


def write_png(path: Path, digit_row: np.ndarray, big: bool = False) -> Path:
    """A test digit as a PNG: 28x28 white on black as in MNIST, or big=True: 100x80 black on white."""
    img = Image.fromarray(to_uint8(digit_row.reshape(28, 28)))
    if big:
        canvas = Image.new("L", (100, 80), 0)
        canvas.paste(img.resize((70, 70), Image.Resampling.BILINEAR), (20, 4))
        img = Image.fromarray(255 - np.asarray(canvas))  # dark ink on white paper
    img.save(path)
    return path


def png_header(path: Path, width: int, height: int) -> Path:
    """A PNG that only claims to be huge: the header says width x height, the pixel data is a stub."""
    def chunk(kind, payload):
        return struct.pack(">I", len(payload)) + kind + payload + struct.pack(">I", zlib.crc32(kind + payload))
    ihdr = struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)
    path.write_bytes(b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", zlib.compress(b"\0" * 64))
                     + chunk(b"IEND", b""))
    return path


@pytest.fixture(scope="module")
def sample():
    return data.load_sample()


@pytest.fixture(scope="module")
def tiny_dir(tmp_path_factory, sample) -> Path:
    """300 train / 100 test digits from the bundled sample, as the four gzipped IDX files."""
    return write_set(tmp_path_factory.mktemp("tiny_mnist"), sample.x_train[:300], sample.y_train[:300],
                     sample.x_test[:100], sample.y_test[:100])


@pytest.fixture(scope="module")
def small_dir(tmp_path_factory, sample) -> Path:
    """1,000 train / 200 test digits."""
    return write_set(tmp_path_factory.mktemp("small_mnist"), sample.x_train[:1000], sample.y_train[:1000],
                     sample.x_test[:200], sample.y_test[:200])


@pytest.fixture(scope="module")
def tiny_model(tiny_dir, tmp_path_factory):
    """An MLP trained for one epoch on the tiny set."""
    out = tmp_path_factory.mktemp("tiny_model")
    proc = run_module("train", "--model", "mlp", "--epochs", 1, "--data", tiny_dir, "--save", out / "m.npz",
                      "--metrics-json", out / "m.json", "--no-progress")
    assert proc.returncode == 0, proc.stderr
    return SimpleNamespace(proc=proc, npz=out / "m.npz", json=out / "m.json", dir=out)


@pytest.fixture(scope="module")
def sample_model(tmp_path_factory):
    """An MLP trained for one epoch on the whole bundled sample (10,000 digits): good enough to read digits."""
    out = tmp_path_factory.mktemp("sample_model")
    proc = run_module("train", "--model", "mlp", "--epochs", 1, "--data", data.SAMPLE_DIR, "--save", out / "m.npz",
                      "--no-progress")
    assert proc.returncode == 0, proc.stderr
    return out / "m.npz"


@pytest.fixture(scope="module")
def small_model(small_dir, tmp_path_factory):
    """An MLP trained for one epoch on 1,000 digits: reads most digits right."""
    out = tmp_path_factory.mktemp("small_model")
    proc = run_module("train", "--model", "mlp", "--epochs", 1, "--data", small_dir, "--save", out / "m.npz",
                      "--metrics-json", out / "m.json", "--no-progress")
    assert proc.returncode == 0, proc.stderr
    return SimpleNamespace(proc=proc, npz=out / "m.npz", json=out / "m.json")


# ---------------------------------------------------------------------------------------------------------
# train / evaluate do what they are for


def test_train_via_module_entry_point(tiny_model):
    p = tiny_model.proc
    assert "Traceback" not in p.stderr
    assert sorted(f.name for f in tiny_model.dir.iterdir()) == ["m.json", "m.npz"]  # checkpoint gone when done
    assert f"saved model to {tiny_model.npz}" in p.stdout
    metrics = strict_json(tiny_model.json)
    assert metrics["status"] == "completed" and metrics["stopped_at"] is None
    assert [e["epoch"] for e in metrics["epochs"]] == [1]
    assert math.isfinite(metrics["epochs"][0]["train_loss"])
    assert metrics["recipe"]["model"] == "mlp" and metrics["recipe"]["epochs"] == 1
    assert metrics["eval_split"] == "test" and metrics["is_sample"] is False
    assert metrics["train_size"] == 300 and metrics["eval_size"] == 100
    m = SUMMARY.search(p.stdout)
    assert m, p.stdout
    assert m.group(2) == "100" and float(m.group(1)) == pytest.approx(metrics["test_acc"], abs=5e-5)
    assert "on 300 images" in p.stdout  # the header names the training set size
    for f in tiny_model.dir.iterdir():
        assert f.stat().st_mode & 0o777 == 0o644 & ~current_umask()


def current_umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def mlp_accuracy_from_weights(npz: Path, data_dir: Path) -> float:
    """Test accuracy computed from the saved arrays by plain NumPy: Linear layers with ReLU between them
    (the file also holds the run's final training state, under TRAIN_STATE_PREFIX, and its metadata)."""
    arrays = np.load(npz)
    layers = sorted({int(k.split(".")[0]) for k in arrays.files if k != serialization.METADATA_KEY
                     and not k.startswith(serialization.TRAIN_STATE_PREFIX)})
    x = data.read_idx(data_dir / "t10k-images-idx3-ubyte.gz").reshape(-1, 784).astype(np.float64) / 255
    y = data.read_idx(data_dir / "t10k-labels-idx1-ubyte.gz")
    h = x
    for i, layer in enumerate(layers):
        h = h @ arrays[f"{layer}.weight"].T.astype(np.float64) + arrays[f"{layer}.bias"]
        if i < len(layers) - 1:
            h = np.maximum(h, 0)
    return float((h.argmax(axis=1) == y).mean())


def test_evaluate_equals_the_accuracy_of_the_weights(small_model, small_dir):
    p = run_module("evaluate", "--load", small_model.npz, "--data", small_dir)
    assert p.returncode == 0, p.stderr
    m = re.search(r"^mlp: test accuracy (\d\.\d{4}) on the 200 test images of (.+)$", p.stdout, re.M)
    assert m, p.stdout
    assert str(small_dir) in m.group(2)  # it says what it evaluated on
    expected = mlp_accuracy_from_weights(small_model.npz, small_dir)
    assert float(m.group(1)) == pytest.approx(expected, abs=5e-5)
    assert float(m.group(1)) == pytest.approx(strict_json(small_model.json)["test_acc"], abs=5e-5)
    assert expected >= 0.7  # 1 epoch on 1,000 digits: about 0.77


def test_evaluate_on_the_bundled_sample_says_so(tiny_model, tmp_path):
    p = run_module("evaluate", "--load", tiny_model.npz, "--no-download", tmp_home=tmp_path)
    assert p.returncode == 0, p.stderr
    assert "on the 2,000 test images of bundled sample" in p.stdout and "not the full MNIST test set" in p.stdout
    assert "training" not in p.stderr  # the notice says "using", not "training on"


@pytest.mark.parametrize("model, args, floor", [
    # measured: nielsen 0.70 (10,000 digits, its own recipe), mlp 0.77, cnn 0.50 (300 digits, one epoch)
    ("nielsen", ["--no-download"], 0.60),
    ("mlp", ["--data", "{small}"], 0.70),
    ("cnn", ["--data", "{small}", "--limit", "300", "--batch-size", "32"], 0.42),
])
def test_each_model_learns(model, args, floor, small_dir, tmp_path):
    args = [a.replace("{small}", str(small_dir)) for a in args]
    p = run_module("train", "--model", model, "--epochs", 1, *args, "--metrics-json", tmp_path / "m.json",
                   "--no-progress", tmp_home=tmp_path)
    assert p.returncode == 0, p.stderr
    assert f"training {model} (" in p.stdout
    metrics = strict_json(tmp_path / "m.json")
    assert metrics["recipe"]["model"] == model
    acc = float(SUMMARY.search(p.stdout).group(1))
    assert acc >= floor, f"{model}: test accuracy {acc:.4f} after one epoch, expected at least {floor}"


def test_validation_split_is_held_out(sample, tmp_path):
    """The last sixth of the training images is held out: here it holds all the 9s, and nothing else does.

    A model trained on the first 250 images never sees a 9, so it gets (almost) none of the held-out
    images right; training on all 300, or evaluating on the test set, would score far higher.
    """
    not9 = np.flatnonzero(sample.y_train != 9)[:250]
    nines = np.flatnonzero(sample.y_train == 9)[:50]
    idx = np.concatenate([not9, nines])
    d = write_set(tmp_path / "heldout", sample.x_train[idx], sample.y_train[idx], sample.x_test[:100],
                  sample.y_test[:100])
    p = run_module("train", "--validation", "--epochs", 3, "--batch-size", 32, "--data", d,
                   "--metrics-json", tmp_path / "v.json", "--no-progress")
    assert p.returncode == 0, p.stderr
    assert "on 250 images" in p.stdout and "held out for validation: 50" in p.stdout
    metrics = strict_json(tmp_path / "v.json")
    assert metrics["eval_split"] == "validation"
    assert metrics["train_size"] == 250 and metrics["eval_size"] == 50
    val = [e["eval_acc"] for e in metrics["epochs"]]
    assert len(re.findall(r"validation acc \d\.\d{4}", p.stdout)) == 3
    assert max(val) <= 0.04, f"validation accuracy {val}: the held-out 9s leaked into training or evaluation"
    train_acc = metrics["epochs"][-1]["train_acc"]
    assert train_acc > 0.6 and metrics["test_acc"] > 0.5  # it did learn the digits it saw


def test_plot_writes_three_pngs(tiny_dir, tmp_path):
    pytest.importorskip("matplotlib")
    p = run_module("train", "--epochs", 1, "--data", tiny_dir, "--plot", tmp_path / "plots", "--no-progress")
    assert p.returncode == 0, p.stderr
    pngs = sorted((tmp_path / "plots").iterdir())
    assert [f.name for f in pngs] == ["confusion.png", "curves.png", "misclassified.png"]  # no temp files
    for f in pngs:
        assert f.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
        assert f"wrote {f}" in p.stdout
        assert f.stat().st_mode & 0o777 == 0o644 & ~current_umask()


def test_sample_fallback_notice(tmp_path):
    p = run_module("train", "--limit", 500, "--epochs", 1, "--no-download", "--no-progress", tmp_home=tmp_path,
                   env_extra={data.OFFLINE_ENV: ""})  # --no-download alone keeps it offline
    assert p.returncode == 0, p.stderr
    notice = p.stderr.strip().splitlines()
    assert len(notice) <= 2 and all(len(line) <= 120 for line in notice), p.stderr
    assert "full MNIST not found (download disabled)" in notice[0] and "bundled sample" in notice[0]
    assert "on 500 images" in p.stdout and "(bundled sample, not the full MNIST test set)" in p.stdout
    p = run_module("train", "--limit", 100, "--epochs", 1, "--no-download", "--no-progress", "--debug",
                   tmp_home=tmp_path)
    assert "looked in:" in p.stderr and str(tmp_path / "cache") in p.stderr  # details with --debug


# ---------------------------------------------------------------------------------------------------------
# checkpoints, resume, interrupts, divergence


RESUME_RUN = ["train", "--epochs", 3, "--batch-size", 32, "--no-progress"]  # 10 steps per epoch on 300 images


@pytest.fixture(scope="module")
def uninterrupted(tiny_dir, tmp_path_factory):
    """The reference: mlp (dropout, Adam, cosine schedule) and nielsen with momentum SGD and a step schedule."""
    runs = {}
    for name, extra in (("mlp", []), ("nielsen", ["--optimizer", "momentum", "--schedule", "step", "--lr", "0.5"])):
        out = tmp_path_factory.mktemp(f"uninterrupted_{name}")
        p = run_module(*RESUME_RUN, "--model", name, *extra, "--data", tiny_dir, "--save", out / "m.npz",
                       "--metrics-json", out / "m.json")
        assert p.returncode == 0, p.stderr
        runs[name] = SimpleNamespace(npz=out / "m.npz", json=out / "m.json", extra=extra)
    return runs


def assert_same_run(a: SimpleNamespace, npz_b: Path, json_b: Path) -> None:
    wa, _ = serialization.load(a.npz)
    wb, _ = serialization.load(npz_b)
    assert list(wa) == list(wb)
    for k in wa:
        assert np.array_equal(wa[k], wb[k]), f"{k} differs from the uninterrupted run"
    ma, mb = strict_json(a.json), strict_json(json_b)
    keys = ("epoch", "train_loss", "train_acc", "eval_acc", "lr")
    assert [[e[k] for k in keys] for e in ma["epochs"]] == [[e[k] for k in keys] for e in mb["epochs"]]
    assert ma["test_acc"] == mb["test_acc"] and mb["status"] == "completed"


@pytest.mark.parametrize("model", ["mlp", "nielsen"])
def test_compiled_steps_equal_eager_steps(model, tiny_dir, uninterrupted, tmp_path):
    """train replays a recorded step by default; --no-compile runs every step eagerly: the same run bit for bit
    (mlp: dropout, Adam, cosine schedule; nielsen: momentum SGD, step schedule, and a shorter last batch)."""
    ref = uninterrupted[model]
    p = run_module(*RESUME_RUN, "--model", model, *ref.extra, "--data", tiny_dir, "--no-compile",
                   "--save", tmp_path / "m.npz", "--metrics-json", tmp_path / "m.json")
    assert p.returncode == 0, p.stderr
    assert_same_run(ref, tmp_path / "m.npz", tmp_path / "m.json")


def test_compiled_cnn_equals_eager(tiny_dir, tmp_path):
    runs = []
    for flag in ([], ["--no-compile"]):
        out = tmp_path / ("eager" if flag else "compiled")
        out.mkdir()
        p = run_module("train", "--model", "cnn", "--epochs", 1, "--batch-size", 64, "--limit", 200, "--no-progress",
                       "--data", tiny_dir, *flag, "--save", out / "m.npz", "--metrics-json", out / "m.json")
        assert p.returncode == 0, p.stderr
        runs.append(SimpleNamespace(npz=out / "m.npz", json=out / "m.json"))
    assert_same_run(runs[0], runs[1].npz, runs[1].json)


@pytest.mark.parametrize("model, at", [("mlp", 14), ("mlp", 10), ("nielsen", 23)],
                         ids=["mid-epoch", "epoch-end", "sgd-momentum-steplr"])
def test_sigint_then_resume_equals_uninterrupted(model, at, tiny_dir, uninterrupted, tmp_path):
    ref = uninterrupted[model]
    save, ckpt, metrics = tmp_path / "m.npz", tmp_path / "m.ckpt.npz", tmp_path / "m.json"
    p = run_driver("sigint-after-step", at, *RESUME_RUN, "--model", model, *ref.extra, "--data", tiny_dir,
                   "--save", save, "--metrics-json", metrics)
    assert p.returncode == 130, p.stderr
    assert "Traceback" not in p.stderr
    epoch, step = (at // 10 + 1, at % 10)
    lines = [line for line in p.stderr.splitlines() if line.startswith("interrupted")]
    assert lines == [f"interrupted at epoch {epoch}, step {step}: checkpoint saved to {ckpt}; resume with: "
                     f"python -m tinygrad_mnist train --resume {ckpt}"]
    assert sorted(f.name for f in tmp_path.iterdir()) == ["m.ckpt.npz", "m.json"]  # no model yet, no temp files
    assert strict_json(metrics)["status"] == "interrupted"
    _, meta = load_checkpoint(ckpt)
    assert (meta["position"]["epoch"], meta["position"]["step"]) == (epoch - 1, step)

    p = run_module("train", "--resume", ckpt, "--no-progress", "--metrics-json", metrics)
    assert p.returncode == 0, p.stderr
    assert f"resuming from {ckpt}" in p.stdout
    assert sorted(f.name for f in tmp_path.iterdir()) == ["m.json", "m.npz"]
    assert_same_run(ref, save, metrics)


def test_sigterm_is_handled_like_ctrl_c(tiny_dir, tmp_path):
    ckpt = tmp_path / "m.ckpt.npz"
    p = run_driver("sigterm-after-step", 4, *RESUME_RUN, "--data", tiny_dir, "--save", tmp_path / "m.npz")
    assert p.returncode == cli.EXIT_TERMINATED == 143, p.stderr
    assert f"terminated at epoch 1, step 4: checkpoint saved to {ckpt}; resume with" in p.stderr
    assert load_checkpoint(ckpt)[1]["position"]["step"] == 4


def test_kill_during_checkpoint_save(tiny_dir, uninterrupted, tmp_path):
    """SIGKILL inside the second checkpoint write: the first stays whole, the resume cleans up and is exact."""
    save, ckpt = tmp_path / "m.npz", tmp_path / "m.ckpt.npz"
    p = run_driver("kill-in-save", 2, *RESUME_RUN, "--model", "mlp", "--data", tiny_dir, "--save", save)
    assert p.returncode == -signal.SIGKILL
    _, meta = load_checkpoint(ckpt)  # complete and readable: the epoch-1 checkpoint
    assert (meta["position"]["epoch"], meta["position"]["step"]) == (1, 0)
    stale = [f.name for f in tmp_path.iterdir() if f.name.startswith(".m.ckpt.npz.") and f.name.endswith(".tmp")]
    assert len(stale) == 1, sorted(f.name for f in tmp_path.iterdir())
    p = run_module("train", "--resume", ckpt, "--no-progress", "--metrics-json", tmp_path / "m.json")
    assert p.returncode == 0, p.stderr
    assert sorted(f.name for f in tmp_path.iterdir()) == ["m.json", "m.npz"]  # the stale temp file is gone
    assert_same_run(uninterrupted["mlp"], save, tmp_path / "m.json")


@pytest.mark.skipif(not Path("/proc/self/fd").is_dir(), reason="needs /proc to tell which file is synced")
def test_disk_full_during_checkpoint(tiny_dir, tmp_path):
    save, ckpt = tmp_path / "m.npz", tmp_path / "m.ckpt.npz"
    p = run_driver("disk-full-in-save", 2, *RESUME_RUN, "--data", tiny_dir, "--save", save)
    one_error_line(p, cli.EXIT_IO, "can't write the checkpoint", "No space left on device",
                   f"resume it with --resume {ckpt}")
    assert sorted(f.name for f in tmp_path.iterdir()) == ["m.ckpt.npz"]  # the epoch-1 checkpoint, no temp file
    assert load_checkpoint(ckpt)[1]["position"]["epoch"] == 1


def test_fresh_run_does_not_overwrite_an_unfinished_one(tiny_dir, tmp_path):
    save, ckpt = tmp_path / "m.npz", tmp_path / "m.ckpt.npz"
    p = run_driver("sigint-after-step", 3, *RESUME_RUN, "--data", tiny_dir, "--save", save)
    assert p.returncode == 130
    before = ckpt.read_bytes()
    p = run_module(*RESUME_RUN, "--data", tiny_dir, "--save", save)
    one_error_line(p, cli.EXIT_USAGE, "unfinished run", f"--resume {ckpt}", "delete it to start over")
    assert ckpt.read_bytes() == before


def test_real_ctrl_c(tmp_path):
    """A real SIGINT from outside, as a terminal sends it: the step finishes, the checkpoint is written."""
    save, ckpt = tmp_path / "cnn.npz", tmp_path / "cnn.ckpt.npz"
    proc = subprocess.Popen([sys.executable, "-m", "tinygrad_mnist", "train", "--model", "cnn", "--no-download",
                             "--save", str(save), "--no-progress"], env=child_env(tmp_home=tmp_path),
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    header = proc.stdout.readline()  # printed once Ctrl-C is handled; the CNN then needs minutes
    assert header.startswith("training cnn"), header + proc.stderr.read()
    proc.send_signal(signal.SIGINT)
    out, err = proc.communicate(timeout=600)
    assert proc.returncode == 130, err
    assert "Traceback" not in err
    assert f"checkpoint saved to {ckpt}; resume with: python -m tinygrad_mnist train --resume {ckpt}" in err
    _, meta = load_checkpoint(ckpt)
    assert meta["position"]["epoch"] == 0 and meta["position"]["step"] >= 1
    assert not save.exists()


def test_divergence_stops_at_once(tiny_dir, tiny_model, tmp_path):
    save = tmp_path / "m.npz"
    shutil.copy(tiny_model.npz, save)  # a good model from an earlier run: it must survive
    before = save.read_bytes()
    p = run_module("train", "--optimizer", "sgd", "--lr", 1000, "--epochs", 2, "--data", tiny_dir, "--save", save,
                   "--metrics-json", tmp_path / "m.json", "--no-progress")
    line = one_error_line(p, cli.EXIT_DIVERGED, "training diverged", "--lr 100 (it was 1000)")
    assert ERROR_LINE.match(line) and re.search(r"\(epoch \d, step \d+: loss is (nan|inf)\)", line), line
    assert "RuntimeWarning" not in p.stderr  # numpy's overflow chatter stays out of it
    assert save.read_bytes() == before
    metrics = strict_json(tmp_path / "m.json")
    assert metrics["status"] == "diverged" and metrics["stopped_at"]["epoch"] == len(metrics["epochs"]) + 1


def test_divergence_keeps_the_last_good_checkpoint(tiny_dir, tmp_path):
    save, ckpt = tmp_path / "m.npz", tmp_path / "m.ckpt.npz"
    p = run_driver("poison-after-step", 12, *RESUME_RUN, "--data", tiny_dir, "--save", save,
                   "--metrics-json", tmp_path / "m.json")
    one_error_line(p, cli.EXIT_DIVERGED, "training diverged (epoch 2, step 3: loss is nan)",
                   f"the last good checkpoint is {ckpt}")
    _, meta = load_checkpoint(ckpt)
    assert meta["position"]["epoch"] == 1
    assert sorted(f.name for f in tmp_path.iterdir()) == ["m.ckpt.npz", "m.json"]  # no model file
    metrics = strict_json(tmp_path / "m.json")
    assert metrics["status"] == "diverged" and len(metrics["epochs"]) == 1
    assert metrics["stopped_at"]["epoch"] == 2 and metrics["stopped_at"]["step"] == 3


def test_non_finite_model_is_refused(tiny_model, tiny_dir, tmp_path):
    state, meta = serialization.load(tiny_model.npz)
    state["0.weight"][3, 5] = np.nan
    bad = tmp_path / "nan.npz"
    serialization.save(state, bad, metadata=meta)
    p = run_module("evaluate", "--load", bad, "--data", tiny_dir)
    one_error_line(p, cli.EXIT_DIVERGED, "NaN or infinite", str(bad), "smaller --lr")
    png = write_png(tmp_path / "d.png", data.load_sample().x_test[0])
    p = run_module("predict", "--load", bad, png)
    one_error_line(p, cli.EXIT_DIVERGED, "NaN or infinite")
    assert p.stdout == ""


def test_resume_refuses_recipe_changes_and_other_data(tiny_dir, small_dir, tmp_path):
    p = run_driver("sigint-after-step", 3, *RESUME_RUN, "--data", tiny_dir, "--save", tmp_path / "m.npz")
    assert p.returncode == 130
    ckpt = tmp_path / "m.ckpt.npz"
    p = run_module("train", "--resume", ckpt, "--lr", 0.1)
    one_error_line(p, cli.EXIT_USAGE, "--lr", "can't change")
    p = run_module("train", "--resume", ckpt, "--data", small_dir)
    one_error_line(p, cli.EXIT_IO, "differ from the ones the checkpoint was trained on", str(tiny_dir))
    p = run_module("train", "--resume", tmp_path / "nope.ckpt.npz")
    one_error_line(p, cli.EXIT_IO, "no checkpoint file")
    p = run_module("evaluate", "--load", ckpt, "--data", tiny_dir)  # a checkpoint's weights can be evaluated
    assert p.returncode == 0 and "mlp: test accuracy" in p.stdout, p.stderr


def test_a_finished_run_goes_on_for_more_epochs_from_its_model_file(tiny_dir, uninterrupted, tmp_path):
    """train --save keeps the final training state in the model file: --resume m.npz --epochs N continues with
    the optimizer's momentum, the schedule and the batch order, twice over, exactly as one 3-epoch run."""
    ref = uninterrupted["nielsen"]  # momentum SGD, a step schedule (step_size 1 at 1 epoch as at 3)
    save, metrics = tmp_path / "m.npz", tmp_path / "m.json"
    p = run_module("train", "--epochs", 1, "--batch-size", 32, "--no-progress", "--model", "nielsen", *ref.extra,
                   "--data", tiny_dir, "--save", save)
    assert p.returncode == 0, p.stderr
    assert serialization.load(save)[0].keys() == serialization.load(ref.npz)[0].keys()  # reads as a model
    for epochs in (2, 3):
        p = run_module("train", "--resume", save, "--epochs", epochs, "--no-progress", "--metrics-json", metrics)
        assert p.returncode == 0, p.stderr
        assert f"resuming from {save}: {epochs - 1} epoch(s) and 0 step(s) of the next done" in p.stdout
    assert sorted(f.name for f in tmp_path.iterdir()) == ["m.json", "m.npz"]
    assert_same_run(ref, save, metrics)
    p = run_module("evaluate", "--load", save, "--data", tiny_dir)
    assert p.returncode == 0 and "nielsen: test accuracy" in p.stdout, p.stderr


def test_a_checkpoint_from_before_a_recipe_field_resumes_with_that_fields_old_default(tiny_dir, tmp_path):
    """A checkpoint written before Recipe had label_smoothing was a run without it: resuming must not pick up
    the fast recipe's smoothing of today (a field missing from the checkpoint takes Recipe's default)."""
    ckpt, metrics = tmp_path / "m.ckpt.npz", tmp_path / "m.json"
    p = run_driver("sigint-after-step", 3, *RESUME_RUN, "--model", "fast", "--data", tiny_dir,
                   "--save", tmp_path / "m.npz")
    assert p.returncode == 130, p.stderr
    assert "with label smoothing 0.1" in p.stdout  # today's fast recipe smooths
    arrays, meta = load_checkpoint(ckpt)
    del meta["recipe"]["label_smoothing"]  # as the older code wrote it
    train._write_npz(ckpt, arrays, meta)
    p = run_module("train", "--resume", ckpt, "--no-progress", "--metrics-json", metrics)
    assert p.returncode == 0, p.stderr
    assert "label smoothing" not in p.stdout
    assert strict_json(metrics)["recipe"]["label_smoothing"] == 0.0


def test_more_epochs_are_refused_where_the_schedule_depends_on_the_total(tiny_model, tmp_path):
    """tiny_model is mlp's recipe, a cosine schedule, 1 epoch: extending it would bend the cosine."""
    p = run_module("train", "--resume", tiny_model.npz, "--epochs", 3)
    one_error_line(p, cli.EXIT_USAGE, "can't change a cosine schedule", "start a new run with --epochs 3",
                   "--schedule none or step")
    p = run_module("train", "--resume", tiny_model.npz)
    one_error_line(p, cli.EXIT_USAGE, "this run is complete (1 of 1 epochs)", "--epochs N with N > 1")
    p = run_module("train", "--resume", tiny_model.npz, "--epochs", 1)
    one_error_line(p, cli.EXIT_USAGE, "--epochs 1: the run has done 1 epoch(s)", "N > 1")


def test_closed_stdout_does_not_kill_the_run(tiny_dir, tmp_path):
    """`train ... | head -1`: the reader goes away after one line; the run still finishes and saves."""
    save = tmp_path / "m.npz"
    proc = subprocess.Popen([sys.executable, "-m", "tinygrad_mnist", "train", "--epochs", "3", "--data", str(tiny_dir),
                             "--save", str(save), "--no-progress"], env=child_env(), stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)
    assert proc.stdout.readline().startswith("training mlp")
    proc.stdout.close()
    err = proc.stderr.read()
    proc.stderr.close()
    assert proc.wait(timeout=600) == 0, err
    assert "Traceback" not in err and "BrokenPipe" not in err
    assert serialization.load(save)[1]["model"] == "mlp"


# ---------------------------------------------------------------------------------------------------------
# everything is checked before the first step: one line, its exit code, nothing written


@pytest.mark.parametrize("args, needle", [
    (["train", "--epochs", "0"], "--epochs"),
    (["train", "--epochs", "-1"], "--epochs"),
    (["train", "--limit", "0"], "--limit"),
    (["train", "--limit", "-100"], "--limit"),
    (["train", "--batch-size", "0"], "--batch-size"),
    (["train", "--lr", "-3"], "--lr"),
    (["train", "--lr", "nan"], "--lr"),
    (["train", "--lr", "inf"], "--lr"),
    (["train", "--weight-decay", "-1"], "--weight-decay"),
    (["train", "--seed", "-1"], "--seed"),
    (["train", "--epochs", "two"], "--epochs"),
    (["train", "--modle", "cnn"], "--modle"),
    (["graph", "--batch-size", "0"], "--batch-size"),
    (["graph", "--max-nodes", "0"], "--max-nodes"),
    (["graph", "--highlight", "nope", "-o", "g.dot"], "0.weight"),
    (["graph", "-o", "graph.jpg"], ".jpg"),
])
def test_usage_errors(args, needle, tmp_path):
    p = run_module(*args, cwd=tmp_path)
    line = one_error_line(p, cli.EXIT_USAGE, needle)
    assert ERROR_LINE.match(line), line
    assert p.stdout == "" and list(tmp_path.iterdir()) == []  # nothing ran, nothing was written


def test_output_paths_are_checked_first(tiny_dir, tmp_path):
    (tmp_path / "a_dir").mkdir()
    (tmp_path / "a_file").write_text("x")
    cases = [
        (["train", "--save", "a_dir"], "--save names a directory"),
        (["train", "--save", "a_file/m.npz"], "a_file is a file, not a directory"),
        (["train", "--metrics-json", "a_dir"], "--metrics-json names a directory"),
        (["train", "--plot", "a_file"], "a_file is a file, not a directory"),
        (["train", "--save", "m.npz", "--metrics-json", "m.npz"], "same file"),
        (["train", "--save", ""], "--save is empty"),
        (["train", "--metrics-json", "/dev/null"], "not a regular file"),
        (["graph", "-o", "a_dir"], "-o names a directory"),
        (["download", "--dest", "a_file/sub"], "a_file is a file"),
    ]
    for args, needle in cases:
        extra = ["--data", str(tiny_dir)] if args[0] == "train" else []
        p = run_module(*args, *extra, cwd=tmp_path)
        usage = "same file" in needle or "empty" in needle
        one_error_line(p, cli.EXIT_USAGE if usage else cli.EXIT_IO, needle)
        assert "epoch" not in p.stdout, args  # refused before training
        assert sorted(f.name for f in tmp_path.iterdir()) == ["a_dir", "a_file"], args
    # a missing parent is created, and the run writes there
    p = run_module("train", "--epochs", 1, "--data", tiny_dir, "--limit", 50, "--save", "new/sub/m.npz", cwd=tmp_path)
    assert p.returncode == 0 and (tmp_path / "new" / "sub" / "m.npz").is_file(), p.stderr


@pytest.mark.skipif(os.geteuid() == 0, reason="root can write into read-only directories")
def test_read_only_output_dir(tiny_dir, tmp_path):
    ro = tmp_path / "ro"
    ro.mkdir()
    ro.chmod(0o555)
    try:
        p = run_module("train", "--data", tiny_dir, "--save", ro / "m.npz")
        one_error_line(p, cli.EXIT_IO, "can't write into directory", str(ro))
    finally:
        ro.chmod(0o755)


def test_missing_matplotlib_is_reported_before_training(tiny_dir, tmp_path):
    fake = tmp_path / "no_matplotlib" / "matplotlib"
    fake.mkdir(parents=True)
    (fake / "__init__.py").write_text("raise ImportError('No module named matplotlib')\n")
    env = {"PYTHONPATH": os.pathsep.join([str(fake.parent), str(REPO)])}
    p = run_module("train", "--data", tiny_dir, "--plot", tmp_path / "plots", env_extra=env)
    one_error_line(p, cli.EXIT_MISSING_DEPENDENCY, "--plot needs matplotlib", "pip install matplotlib")
    assert "epoch" not in p.stdout


def test_missing_graphviz_is_reported(tmp_path):
    empty = tmp_path / "bin"
    empty.mkdir()
    p = run_module("graph", "-o", tmp_path / "g.svg", env_extra={"PATH": str(empty)})
    one_error_line(p, cli.EXIT_MISSING_DEPENDENCY, "Graphviz's `dot`", "apt-get install graphviz", "-o graph.dot")
    p = run_module("graph", "-o", tmp_path / "g.dot", env_extra={"PATH": str(empty)})  # DOT text needs no dot
    assert p.returncode == 0 and (tmp_path / "g.dot").read_text().lstrip().startswith("digraph"), p.stderr


def test_named_data_source_is_never_replaced(tiny_dir, tmp_path):
    p = run_module("train", "--epochs", 1, env_extra={data.ENV_VAR: str(tmp_path / "nonexistent")},
                   tmp_home=tmp_path)
    one_error_line(p, cli.EXIT_IO, "$TINYGRAD_MNIST_DATA", "no such directory")
    assert "bundled sample" not in p.stderr + p.stdout
    empty = tmp_path / "empty"
    empty.mkdir()
    p = run_module("train", "--epochs", 1, "--data", empty)
    one_error_line(p, cli.EXIT_IO, str(empty), "missing", "train-images-idx3-ubyte")
    p = run_module("train", "--epochs", 1, "--dataset", "fashion", "--data", tiny_dir)
    one_error_line(p, cli.EXIT_IO, "are MNIST files, not Fashion-MNIST", "--dataset mnist")


def test_bad_model_files(tmp_path, tiny_dir, tiny_model):
    garbage = tmp_path / "corrupt.npz"
    garbage.write_bytes(b"this is not a checkpoint\n" * 10)
    truncated = tmp_path / "truncated.npz"
    truncated.write_bytes(tiny_model.npz.read_bytes()[:5000])
    for path in (garbage, truncated):
        p = run_module("evaluate", "--load", path, "--data", tiny_dir)
        one_error_line(p, cli.EXIT_IO, str(path), ".npz checkpoint")
    state, meta = serialization.load(tiny_model.npz)
    other = tmp_path / "other.npz"
    serialization.save(state, other, metadata={**meta, "model": "cnn"})  # mlp weights labelled as a cnn
    p = run_module("evaluate", "--load", other, "--data", tiny_dir)
    one_error_line(p, cli.EXIT_IO, "does not fit a cnn model", str(other))
    p = run_module("evaluate", "--load", tmp_path / "nope.npz", "--data", tiny_dir)
    one_error_line(p, cli.EXIT_IO, "no model file", str(tmp_path / "nope.npz"))
    p = run_module("train", "--resume", other)  # a model without a training state, not a checkpoint
    one_error_line(p, cli.EXIT_IO, "not a training checkpoint", "other.ckpt.npz")


def test_debug_shows_the_traceback(tmp_path):
    p = run_module("evaluate", "--load", tmp_path / "nope.npz", "--debug")
    assert p.returncode == cli.EXIT_IO and "Traceback" in p.stderr
    p = run_module("evaluate", "--load", tmp_path / "nope.npz", env_extra={cli.DEBUG_ENV: "1"})
    assert p.returncode == cli.EXIT_IO and "Traceback" in p.stderr


def test_help_documents_the_exit_codes():
    p = run_module("train", "--help")
    assert p.returncode == 0
    for code in (2, 3, 4, 5, 130, 143):
        assert re.search(rf"^\s+{code}\s+\w", p.stdout, re.M), p.stdout
    cli_page = (REPO / "docs" / "cli.md").read_text()
    for code in (2, 3, 4, 5, 130, 143):
        assert f"| {code} |" in cli_page


# ---------------------------------------------------------------------------------------------------------
# predict


def test_predict_reads_digits_correctly(sample_model, tmp_path, sample):
    digits = tmp_path / "digits"
    digits.mkdir()
    for i in range(10):
        write_png(digits / f"d{i}.png", sample.x_test[i], big=i % 2 == 1)  # half big, inverted copies
    (digits / "notes.txt").write_text("not an image, skipped in a directory\n")
    p = run_module("predict", "--load", sample_model, digits, "--probs")
    assert p.returncode == 0, p.stderr
    lines = p.stdout.splitlines()
    assert len(lines) == 10  # one line per image
    correct = 0
    for i, line in enumerate(lines):
        m = PREDICTION.match(line)
        assert m and m.group(1) == str(digits / f"d{i}.png"), line
        probs = [float(v) for v in re.findall(r" \d:(\d\.\d\d)", line)]
        assert len(probs) == 10 and sum(probs) == pytest.approx(1, abs=0.06)
        correct += int(m.group(2)) == sample.y_test[i]
    assert correct >= 8, f"{correct}/10 digits read correctly"


def test_predict_several_files_blank_and_broken(tiny_model, tmp_path, sample):
    good = write_png(tmp_path / "good.png", sample.x_test[0])
    blank = tmp_path / "blank.png"
    Image.new("L", (60, 60), 255).save(blank)
    broken = tmp_path / "broken.png"
    broken.write_text("not an image\n")
    p = run_module("predict", "--load", tiny_model.npz, good, blank, broken)
    assert p.returncode == cli.EXIT_IO and "Traceback" not in p.stderr
    assert [PREDICTION.match(line).group(1) for line in p.stdout.splitlines()] == [str(good), str(blank)]
    assert re.search(rf"^warning: {re.escape(str(blank))} looks blank", p.stderr, re.M), p.stderr
    assert re.search(rf"^error: can't read image \({re.escape(str(broken))}\): ", p.stderr, re.M), p.stderr


@pytest.mark.parametrize("size", [(5000, 5000), (14000, 14000)])
def test_predict_rejects_huge_images(tiny_model, tmp_path, size):
    huge = png_header(tmp_path / "huge.png", *size)
    p = run_module("predict", "--load", tiny_model.npz, huge)
    one_error_line(p, cli.EXIT_IO, "too large", str(huge), "scale it down")
    assert "DecompressionBomb" not in p.stderr


def test_predict_resizing_and_inversion(tmp_path, sample):
    """A big, dark-on-light copy of a digit comes back close to the original 28x28 MNIST digit."""
    for i in range(5):
        x = sample.x_test[i]
        got = cli.load_digit_image(write_png(tmp_path / f"big{i}.png", x, big=True))
        assert got.shape == (1, 784) and got.min() >= 0 and got.max() <= 1
        assert np.corrcoef(got[0], x)[0, 1] > 0.8  # the same strokes in the same place


# ---------------------------------------------------------------------------------------------------------
# graph


def test_graph_dot(tmp_path, capsys):
    rc = cli.main(["graph", "--model", "mlp", "-o", tmp_path / "g.dot"])
    out = capsys.readouterr().out
    assert rc == 0 and f"wrote {tmp_path / 'g.dot'}" in out
    text = (tmp_path / "g.dot").read_text()
    assert text.lstrip().startswith("digraph") and "loss" in text


@pytest.mark.skipif(shutil.which("dot") is None, reason="Graphviz's `dot` program is not installed")
def test_graph_svg(tmp_path, capsys):
    assert cli.main(["graph", "--model", "mlp", "-o", tmp_path / "g.svg", "--highlight", "0.weight"]) == 0
    assert "<svg" in (tmp_path / "g.svg").read_text()


# ---------------------------------------------------------------------------------------------------------
# progress


def test_progress_numbers_refresh_by_time(sample, monkeypatch):
    """The bar's loss/accuracy follow the clock (every 0.2 s), not a step count."""
    from dataclasses import replace

    from tinygrad_mnist import manual_seed, train

    shown = []

    class Bar:
        def __init__(self, *a, **kw):
            pass

        def update(self, n):
            pass

        def set_postfix(self, **kw):
            shown.append(kw)

        def close(self):
            pass

    clock = iter(np.arange(0, 1000, 0.3))  # each step "takes" 0.3 s
    monkeypatch.setattr(train, "tqdm", Bar)
    monkeypatch.setattr(train.time, "perf_counter", lambda: float(next(clock)))
    manual_seed(0)
    model = train.build_model("nielsen")
    recipe = replace(train.RECIPES["nielsen"], epochs=1, batch_size=100)
    ds = replace(sample, x_train=sample.x_train[:1000], y_train=sample.y_train[:1000])
    train.fit(model, ds, recipe, log=lambda s: None)
    assert len(shown) == 10  # every one of the 10 steps, since each took longer than 0.2 s
    assert len({d["loss"] for d in shown}) > 1
