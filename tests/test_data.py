"""Tests of tinygrad_mnist.data: IDX files, where the data comes from, the sample, batching.

Offline and fast: downloads go through a fake urlopen. Tests that need the full MNIST read it from
$TINYGRAD_MNIST_DATA or ../shared/data/mnist (relative to the repo root) and skip without it.
"""

from __future__ import annotations

import gzip
import hashlib
import io
import json
import os
import urllib.error
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from tinygrad_mnist import data as D
from tinygrad_mnist.data import DataError

REPO = Path(__file__).resolve().parents[1]


def full_mnist_dir() -> Path:
    d = Path(os.environ.get(D.ENV_VAR) or REPO.parent / "shared" / "data" / "mnist")
    if D._find_files(d)[1]:
        pytest.skip(f"full MNIST not found in {d} (set {D.ENV_VAR} to a directory with the four files)")
    return d


def make_set(d: Path, n_train: int, n_test: int = 2, gz: bool = True, seed: int = 0) -> Path:
    """Write a tiny MNIST-shaped data set into d; n_train tells sets apart."""
    rng = np.random.default_rng(seed)
    d.mkdir(parents=True, exist_ok=True)
    ext = ".gz" if gz else ""
    for split, n in (("train", n_train), ("t10k", n_test)):
        D.write_idx(d / f"{split}-images-idx3-ubyte{ext}", rng.integers(0, 256, (n, 28, 28), dtype=np.uint8))
        D.write_idx(d / f"{split}-labels-idx1-ubyte{ext}", rng.integers(0, 10, n, dtype=np.uint8))
    return d


@pytest.fixture
def no_data(tmp_path, monkeypatch):
    """No env var, an empty cache dir, no OS package dirs: nothing to find."""
    monkeypatch.delenv(D.ENV_VAR, raising=False)
    monkeypatch.delenv(D.OFFLINE_ENV, raising=False)
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    for name, spec in D.DATASETS.items():
        monkeypatch.setitem(D.DATASETS, name, replace(spec, system_dirs=()))
    return tmp_path / "cache"


# --- IDX ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize("name", ["a-idx3-ubyte", "a-idx3-ubyte.gz"])
@pytest.mark.parametrize("dtype", [np.uint8, np.int8, np.int16, np.int32, np.float32, np.float64])
def test_idx_round_trip(tmp_path, name, dtype):
    arr = (np.arange(2 * 3 * 4) - 5).astype(dtype).reshape(2, 3, 4)
    D.write_idx(tmp_path / name, arr)
    back = D.read_idx(tmp_path / name)
    assert back.dtype == dtype and back.shape == (2, 3, 4) and np.array_equal(back, arr)
    assert back.flags.writeable
    assert (tmp_path / name).read_bytes()[:2] == (b"\x1f\x8b" if name.endswith(".gz") else b"\0\0")
    assert os.listdir(tmp_path) == [name]  # no temp file left


@settings(max_examples=40, suppress_health_check=[HealthCheck.function_scoped_fixture], deadline=None)
@given(arr=hnp.arrays(st.sampled_from([np.uint8, np.int16, np.float64]),
                      hnp.array_shapes(min_dims=1, max_dims=4, min_side=0, max_side=5)),
       gz=st.booleans())
def test_idx_round_trip_property(tmp_path, arr, gz):
    path = tmp_path / ("x.gz" if gz else "x")
    D.write_idx(path, arr)
    np.testing.assert_array_equal(D.read_idx(path), arr)


def test_gzip_detected_by_magic_not_name(tmp_path):
    arr = np.arange(10, dtype=np.uint8)
    D.write_idx(tmp_path / "x.gz", arr)
    os.replace(tmp_path / "x.gz", tmp_path / "gzipped-without-suffix")
    D.write_idx(tmp_path / "raw", arr)
    os.replace(tmp_path / "raw", tmp_path / "raw-with-suffix.gz")
    assert np.array_equal(D.read_idx(tmp_path / "gzipped-without-suffix"), arr)
    assert np.array_equal(D.read_idx(tmp_path / "raw-with-suffix.gz"), arr)


def test_gzip_is_reproducible(tmp_path):
    arr = np.arange(100, dtype=np.uint8)
    D.write_idx(tmp_path / "a.gz", arr)
    D.write_idx(tmp_path / "b.gz", arr)
    assert (tmp_path / "a.gz").read_bytes() == (tmp_path / "b.gz").read_bytes()


def test_bad_magic(tmp_path):
    (tmp_path / "f").write_bytes(bytes.fromhex("12345678") + bytes(8))
    with pytest.raises(DataError, match=r"f: bad magic 0x12345678, expected 0x0000080x"):
        D.read_idx(tmp_path / "f")


def test_unknown_type_code(tmp_path):
    (tmp_path / "f").write_bytes(bytes([0, 0, 0x0F, 1]) + (3).to_bytes(4, "big") + bytes(3))
    with pytest.raises(DataError, match=r"unknown IDX type code 0x0f, expected one of 0x08"):
        D.read_idx(tmp_path / "f")


def test_zero_dims_and_short_header(tmp_path):
    (tmp_path / "f").write_bytes(bytes([0, 0, 8, 0]))
    with pytest.raises(DataError, match="0 dimensions"):
        D.read_idx(tmp_path / "f")
    (tmp_path / "f").write_bytes(bytes([0, 0, 8, 3]) + bytes(4))
    with pytest.raises(DataError, match="truncated header: 3 dimensions need 16 bytes, found 8"):
        D.read_idx(tmp_path / "f")
    (tmp_path / "f").write_bytes(b"\0\0")
    with pytest.raises(DataError, match="too short"):
        D.read_idx(tmp_path / "f")


@pytest.mark.parametrize("gz", [False, True])
def test_truncated_and_trailing_payload(tmp_path, gz):
    header = bytes([0, 0, 8, 3]) + b"".join(n.to_bytes(4, "big") for n in (5, 28, 28))
    path = tmp_path / "train-images-idx3-ubyte.gz"
    for payload, what in ((bytes(1234), "truncated"), (bytes(5 * 784 + 1), "trailing data")):
        blob = header + payload
        path.write_bytes(gzip.compress(blob) if gz else blob)
        found = len(payload)
        msg = f"train-images-idx3-ubyte.gz: {what}: header says 5x28x28 = 3920 bytes of data, found {found}"
        with pytest.raises(DataError, match=msg):
            D.read_idx(path)


def test_truncated_and_corrupt_gzip(tmp_path):
    path = tmp_path / "t10k-labels-idx1-ubyte.gz"
    D.write_idx(path, np.random.default_rng(0).integers(0, 10, 5000, dtype=np.uint8))
    good = path.read_bytes()
    path.write_bytes(good[: len(good) // 2])
    with pytest.raises(DataError, match=r"t10k-labels-idx1-ubyte.gz: corrupt gzip stream"):
        D.read_idx(path)
    bad = bytearray(good)
    bad[len(bad) // 2] ^= 0xFF  # breaks the deflate data or, failing that, the CRC
    path.write_bytes(bytes(bad))
    with pytest.raises(DataError, match=r"t10k-labels-idx1-ubyte.gz: corrupt gzip stream"):
        D.read_idx(path)


def test_write_idx_rejects_unsupported_dtype(tmp_path):
    with pytest.raises(DataError, match="int64"):
        D.write_idx(tmp_path / "x", np.zeros(3, dtype=np.int64))
    assert os.listdir(tmp_path) == []


# --- loading and validation --------------------------------------------------------------------------


@pytest.mark.parametrize("gz", [True, False])
def test_load_dir_converts(tmp_path, gz):
    d = make_set(tmp_path / "d", 5, 3, gz=gz)
    ds = D.load_mnist(d, download=False)
    assert ds.x_train.shape == (5, 784) and ds.x_test.shape == (3, 784)
    assert ds.x_train.dtype == np.float32 and ds.y_train.dtype == np.int64
    assert 0 <= ds.x_train.min() and ds.x_train.max() <= 1
    raw = D.read_idx(d / f"train-images-idx3-ubyte{'.gz' if gz else ''}")
    np.testing.assert_array_equal(ds.x_train * 255, raw.reshape(5, 784).astype(np.float32))
    assert not ds.is_sample and str(d) in ds.source
    assert D.images_2d(ds.x_train).shape == (5, 1, 28, 28)


def test_dotted_names_are_found(tmp_path):
    d = make_set(tmp_path / "d", 4, gz=False)
    for stem in D.FILES:
        os.replace(d / stem, d / stem.replace("-idx", ".idx"))
    assert len(D.load_mnist(d, download=False).y_train) == 4


def test_count_mismatch_between_images_and_labels(tmp_path):
    d = make_set(tmp_path / "d", 5)
    D.write_idx(d / "train-labels-idx1-ubyte.gz", np.zeros(4, dtype=np.uint8))
    with pytest.raises(DataError, match="has 5 images but .*train-labels-idx1-ubyte.gz has 4 labels"):
        D.load_mnist(d, download=False)


def test_wrong_image_size_and_bad_labels(tmp_path):
    d = make_set(tmp_path / "d", 5)
    D.write_idx(d / "t10k-images-idx3-ubyte.gz", np.zeros((2, 27, 28), dtype=np.uint8))
    with pytest.raises(DataError, match=r"t10k-images-idx3-ubyte.gz: expected N x 28 x 28 .* found shape 2x27x28"):
        D.load_mnist(d, download=False)
    d = make_set(tmp_path / "e", 5)
    D.write_idx(d / "train-labels-idx1-ubyte.gz", np.array([0, 1, 2, 3, 10], dtype=np.uint8))
    with pytest.raises(DataError, match=r"labels must be 0..9, found 0..10"):
        D.load_mnist(d, download=False)


def test_explicit_dir_missing_files(tmp_path, no_data):
    d = make_set(tmp_path / "d", 5)
    (d / "t10k-labels-idx1-ubyte.gz").unlink()
    with pytest.raises(DataError, match=r"missing t10k-labels-idx1-ubyte\[\.gz\]") as e:
        D.load_mnist(d, download=False)
    assert str(d) in str(e.value)
    with pytest.raises(DataError, match="no such directory"):
        D.load_mnist(tmp_path / "nope", download=False)  # does not fall through to the sample


def test_search_order(tmp_path, monkeypatch, no_data):
    explicit, env = make_set(tmp_path / "explicit", 3), make_set(tmp_path / "env", 4)
    make_set(no_data / "tinygrad_mnist" / "mnist", 5)
    monkeypatch.setenv(D.ENV_VAR, str(env))
    assert len(D.load_mnist(explicit, download=False).y_train) == 3
    ds = D.load_mnist(download=False)
    assert len(ds.y_train) == 4 and D.ENV_VAR in ds.source
    monkeypatch.delenv(D.ENV_VAR)
    ds = D.load_mnist(download=False)
    assert len(ds.y_train) == 5 and "cache" in ds.source
    # Without XDG_CACHE_HOME the cache is ~/.cache.
    monkeypatch.delenv("XDG_CACHE_HOME")
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    make_set(tmp_path / "home" / ".cache" / "tinygrad_mnist" / "mnist", 6)
    assert len(D.load_mnist(download=False).y_train) == 6


def test_named_env_dir_missing_or_incomplete_is_an_error(tmp_path, monkeypatch, no_data):
    # A data set the user named is used or reported, never silently replaced by the cache or the sample.
    env = make_set(tmp_path / "env", 4)
    (env / "train-images-idx3-ubyte.gz").unlink()
    monkeypatch.setenv(D.ENV_VAR, str(env))
    make_set(no_data / "tinygrad_mnist" / "mnist", 5)
    with pytest.raises(DataError, match=r"\$TINYGRAD_MNIST_DATA=.*env: missing train-images-idx3-ubyte"):
        D.load_mnist(download=False)
    monkeypatch.setenv(D.ENV_VAR, str(tmp_path / "nonexistent"))
    with pytest.raises(DataError, match=r"nonexistent: no such directory.*unset TINYGRAD_MNIST_DATA"):
        D.load_mnist(download=False)


def test_fashion_and_mnist_files_are_told_apart(tmp_path):
    """The two data sets share file names and formats; loading one as the other is an error naming both."""
    sample = D.load_sample()
    d = tmp_path / "mnist-files"
    d.mkdir()
    for name, arr in zip(D.FILES, [np.rint(sample.x_train[:30] * 255).astype(np.uint8).reshape(-1, 28, 28),
                                   sample.y_train[:30].astype(np.uint8),
                                   np.rint(sample.x_test[:5] * 255).astype(np.uint8).reshape(-1, 28, 28),
                                   sample.y_test[:5].astype(np.uint8)]):
        D.write_idx(d / name, arr)
    assert D.identify(D.load_mnist(d, download=False).y_train) == "mnist"
    with pytest.raises(DataError, match=r"are MNIST files, not Fashion-MNIST.*--dataset mnist"):
        D.load_mnist(d, dataset="fashion", download=False)
    other = make_set(tmp_path / "random", 30)
    assert D.identify(D.load_mnist(other, dataset="fashion", download=False).y_train) is None  # loaded as asked


def test_fashion_search(tmp_path, monkeypatch, no_data):
    # $TINYGRAD_MNIST_DATA holds MNIST; fashion is looked for in its fashion/ subdirectory.
    env = make_set(tmp_path / "env", 4)
    monkeypatch.setenv(D.ENV_VAR, str(env))
    system = make_set(tmp_path / "usr-share-datasets-fashion-mnist", 7)
    monkeypatch.setitem(D.DATASETS, "fashion", replace(D.DATASETS["fashion"], system_dirs=(system,)))
    ds = D.load_mnist(dataset="fashion", download=False)
    assert len(ds.y_train) == 7 and str(system) in ds.source
    make_set(env / "fashion", 8)
    assert len(D.load_mnist(dataset="fashion", download=False).y_train) == 8
    with pytest.raises(ValueError, match="unknown dataset"):
        D.load_mnist(dataset="cifar", download=False)


def test_fashion_from_debian_package():
    d = Path("/usr/share/datasets/fashion-mnist")
    if D._find_files(d)[1]:
        pytest.skip("Fashion-MNIST Debian package not installed (apt-get install dataset-fashion-mnist)")
    ds = D.load_mnist(d, dataset="fashion", download=False)  # what load_mnist(dataset="fashion") finds by itself
    assert ds.x_train.shape == (60000, 784) and ds.x_test.shape == (10000, 784)
    assert np.bincount(ds.y_train).tolist() == [6000] * 10


def test_sample_fallback(no_data, capsys):
    ds = D.load_mnist(download=False)
    err = capsys.readouterr().err
    lines = err.strip().splitlines()
    assert len(lines) == 2 and all(len(line) <= 120 for line in lines), err  # two short lines
    assert "full MNIST not found (download disabled)" in err and "bundled sample" in err
    assert "10,000 train / 2,000 test digits" in err and D.DOWNLOAD_HINT in err
    assert ds.is_sample and "bundled sample" in ds.source
    assert ds.x_train.shape == (10000, 784) and ds.x_test.shape == (2000, 784)
    assert ds.x_train.dtype == np.float32 and ds.y_train.dtype == np.int64
    D.load_mnist(download=False, verbose=False)
    assert capsys.readouterr().err == ""
    D.load_mnist(download=False, details=True)  # --debug: where it looked, too
    err = capsys.readouterr().err
    assert str(no_data) in err and "download disabled" in err


def test_no_data_error_lists_places(tmp_path, monkeypatch, no_data):
    with pytest.raises(DataError) as e:
        D.load_mnist(download=False, allow_sample=False)
    msg = str(e.value)
    assert "\n" not in msg  # the CLI prints it as one line
    assert "TINYGRAD_MNIST_DATA (not set)" in msg and str(no_data / "tinygrad_mnist" / "mnist") in msg
    assert "download disabled" in msg and "train-images-idx3-ubyte" in msg and D.DOWNLOAD_HINT in msg
    with pytest.raises(DataError, match="fashion data not found"):  # no sample for fashion
        D.load_mnist(dataset="fashion", download=False)


def test_sample_files_match_their_sums():
    sums = (D.SAMPLE_DIR / "SHA256SUMS").read_text().split()
    for digest, name in zip(sums[::2], sums[1::2]):
        assert hashlib.sha256((D.SAMPLE_DIR / name).read_bytes()).hexdigest() == digest
    assert sum((D.SAMPLE_DIR / n).stat().st_size for n in sums[1::2]) < 3_000_000


# --- downloading (never for real) --------------------------------------------------------------------


class FakeResponse(io.BytesIO):
    def __init__(self, blob: bytes):
        super().__init__(blob)
        self.headers = {"Content-Length": str(len(blob))}


def fake_urlopen(monkeypatch, served: dict[str, bytes]) -> list[str]:
    """Serve ``served[url]``; any other URL fails like an offline machine. Returns the URLs asked for."""
    calls = []

    def urlopen(url, timeout=None):
        calls.append(url)
        if url not in served:
            raise urllib.error.URLError("offline")
        return FakeResponse(served[url])

    monkeypatch.setattr(D, "urlopen", urlopen)
    return calls


@pytest.fixture
def fake_remote(tmp_path, monkeypatch, no_data):
    """A tiny data set standing in for MNIST on the second mirror, with its sums in the table."""
    src = make_set(tmp_path / "remote", 6, 3)
    blobs = {f"{stem}.gz": (src / f"{stem}.gz").read_bytes() for stem in D.FILES}
    sums = {n: hashlib.sha256(b).hexdigest() for n, b in blobs.items()}
    spec = replace(D.DATASETS["mnist"], mirrors=("https://a.invalid/", "https://b.invalid/"), sums=sums)
    monkeypatch.setitem(D.DATASETS, "mnist", spec)
    return blobs


def test_download_success(monkeypatch, no_data, fake_remote):
    calls = fake_urlopen(monkeypatch, {f"https://b.invalid/{n}": b for n, b in fake_remote.items()})
    ds = D.load_mnist(verbose=False)
    assert not ds.is_sample and "downloaded" in ds.source and len(ds.y_train) == 6
    dest = no_data / "tinygrad_mnist" / "mnist"
    assert sorted(os.listdir(dest)) == sorted(fake_remote)  # verified files only, no temp files
    assert all((dest / n).read_bytes() == b for n, b in fake_remote.items())
    assert len(calls) == 8  # each file: first mirror fails, second works
    # A second call finds the cache; downloading again keeps files whose sums match.
    calls.clear()
    assert len(D.load_mnist(verbose=False).y_train) == 6 and calls == []
    D.download_mnist(dest, verbose=False)
    assert calls == []


def test_download_checksum_mismatch_leaves_nothing(monkeypatch, no_data, fake_remote, capsys):
    served = {f"https://b.invalid/{n}": b for n, b in fake_remote.items()}
    served["https://b.invalid/train-images-idx3-ubyte.gz"] += b"tampered"
    fake_urlopen(monkeypatch, served)
    dest = no_data / "tinygrad_mnist" / "mnist"
    with pytest.raises(DataError, match=r"train-images-idx3-ubyte.gz: could not download it \(.*sha256 mismatch"):
        D.download_mnist(dest, verbose=False)
    assert os.listdir(dest) == []  # train-images comes first: no file, no temp file, nothing after it
    # load_mnist reports the failure, then falls back to the sample (or raises without it).
    assert D.load_mnist(verbose=True, details=True).is_sample
    assert "sha256 mismatch" in capsys.readouterr().err
    with pytest.raises(DataError, match="download failed 0 min ago, not retried .*sha256 mismatch"):
        D.load_mnist(allow_sample=False, verbose=False)
    assert "train-images-idx3-ubyte.gz" not in os.listdir(dest)
    assert not [n for n in os.listdir(dest) if n.endswith(".tmp")]


def test_download_offline_and_disabled(monkeypatch, no_data):
    calls = fake_urlopen(monkeypatch, {})
    assert D.load_mnist(verbose=False).is_sample and len(calls) == 2  # both mirrors of the first file
    calls.clear()
    monkeypatch.setenv(D.OFFLINE_ENV, "1")
    assert D.load_mnist(verbose=False).is_sample and calls == []
    assert D.load_mnist(download=False, verbose=False).is_sample and calls == []


def test_failed_download_is_remembered(monkeypatch, no_data, fake_remote, capsys):
    """A dead network costs one wait, not one per run; `download` (or time) tries again."""
    timeouts = []
    served = {}

    def urlopen(url, timeout=None):
        timeouts.append(timeout)
        if url not in served:
            raise urllib.error.URLError("timed out")
        return FakeResponse(served[url])

    monkeypatch.setattr(D, "urlopen", urlopen)
    assert D.load_mnist(verbose=False).is_sample
    assert timeouts == [D.CONNECT_TIMEOUT_S] * 2 and D.CONNECT_TIMEOUT_S <= 15
    assert D.load_mnist(verbose=True).is_sample and len(timeouts) == 2  # no second wait on the network
    assert "download failed" in capsys.readouterr().err
    with pytest.raises(DataError, match="download failed 0 min ago.*timed out"):
        D.load_mnist(allow_sample=False, verbose=False)
    # an hour later it tries again
    marker = no_data / "tinygrad_mnist" / "mnist" / D.FAILED_MARKER
    note = json.loads(marker.read_text())
    note["time"] -= D.RETRY_DOWNLOAD_AFTER_S + 1
    marker.write_text(json.dumps(note))
    served.update({f"https://b.invalid/{n}": b for n, b in fake_remote.items()})
    assert not D.load_mnist(verbose=False).is_sample and not marker.exists()


# --- full MNIST (skipped without it) -----------------------------------------------------------------


def test_full_mnist():
    ds = D.load_mnist(full_mnist_dir(), download=False)
    assert ds.x_train.shape == (60000, 784) and ds.x_test.shape == (10000, 784)
    assert ds.x_train.dtype == ds.x_test.dtype == np.float32
    assert ds.y_train.dtype == ds.y_test.dtype == np.int64
    assert ds.x_train.min() == 0 and ds.x_train.max() == 1 and ds.x_test.max() == 1
    assert np.bincount(ds.y_train, minlength=10).sum() == 60000 and len(np.bincount(ds.y_train)) == 10
    assert np.bincount(ds.y_test, minlength=10).sum() == 10000 and len(np.bincount(ds.y_test)) == 10
    assert ds.y_train[:3].tolist() == [5, 0, 4] and ds.y_test[:3].tolist() == [7, 2, 1]
    split = D.nielsen_split(ds)
    assert len(split.y_train) == 50000 and len(split.y_val) == 10000 and len(split.y_test) == 10000
    np.testing.assert_array_equal(split.x_val, ds.x_train[50000:])


def test_sample_is_first_digits_of_full_set():
    d = full_mnist_dir()
    found, _ = D._find_files(d)
    for stem in D.FILES:
        sample = D.read_idx(D.SAMPLE_DIR / f"{stem}.gz")
        n = 10000 if stem.startswith("train") else 2000
        assert len(sample) == n
        np.testing.assert_array_equal(sample, D.read_idx(found[stem])[:n])


# --- splits and batching -----------------------------------------------------------------------------


def test_sample_and_splits():
    ds = D.load_sample()
    assert ds.is_sample and len(ds.y_train) == 10000 and len(ds.y_test) == 2000
    s = D.nielsen_split(ds)
    assert (len(s.y_train), len(s.y_val)) == (8334, 1666)
    s = D.validation_split(ds, 1000)
    assert (len(s.x_train), len(s.x_val)) == (9000, 1000)
    np.testing.assert_array_equal(s.y_val, ds.y_train[9000:])
    with pytest.raises(ValueError, match="n_val"):
        D.validation_split(ds, 10000)


def batches(n=23, bs=5, **kw):
    x, y = np.arange(n * 2).reshape(n, 2), np.arange(n)
    out = list(D.iterate_minibatches(x, y, bs, **kw))
    for xb, yb in out:
        np.testing.assert_array_equal(xb[:, 0], 2 * yb)  # x and y stay paired
    return [yb for _, yb in out]


def test_minibatches_cover_each_example_once():
    for kw in ({"seed": 1}, {"shuffle": False}):
        ys = batches(**kw)
        assert [len(b) for b in ys] == [5, 5, 5, 5, 3]
        assert sorted(np.concatenate(ys).tolist()) == list(range(23))
    assert np.concatenate(batches(shuffle=False)).tolist() == list(range(23))
    assert [len(b) for b in batches(seed=1, drop_last=True)] == [5] * 4
    assert batches(n=3, bs=5, drop_last=True) == []


def test_minibatches_seeded():
    a, b, c = batches(seed=7), batches(seed=7), batches(seed=8)
    assert all(np.array_equal(u, v) for u, v in zip(a, b))
    assert not all(np.array_equal(u, v) for u, v in zip(a, c))
    rng = np.random.default_rng(7)
    epoch1, epoch2 = batches(rng=rng), batches(rng=rng)  # one generator: a new order each epoch
    assert all(np.array_equal(u, v) for u, v in zip(epoch1, a))
    assert not all(np.array_equal(u, v) for u, v in zip(epoch1, epoch2))
    with pytest.raises(ValueError):
        batches(seed=1, rng=rng)
    with pytest.raises(ValueError):
        list(D.iterate_minibatches(np.zeros(3), np.zeros(4), 2))


def test_one_hot():
    out = D.one_hot(np.array([3, 0, 9]))
    assert out.dtype == np.float32 and out.shape == (3, 10)
    assert out.argmax(1).tolist() == [3, 0, 9] and out.sum() == 3
    assert D.one_hot([[1, 2]], num_classes=3, dtype=np.int64).tolist() == [[[0, 1, 0], [0, 0, 1]]]
    with pytest.raises(ValueError):
        D.one_hot([10])
