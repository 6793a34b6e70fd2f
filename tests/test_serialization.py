"""Tests of tinygrad_mnist.serialization: round trips, atomic saves, clear errors for bad files."""

from __future__ import annotations

import json
import os

import numpy as np
import pytest

import tinygrad_mnist as tm
from tinygrad_mnist import nn
from tinygrad_mnist.engine import Tensor
from tinygrad_mnist.models import MODELS
from tinygrad_mnist.serialization import METADATA_KEY, SerializationError, load, load_into, save


def model(seed=0, sizes=(6, 5, 3)):
    tm.manual_seed(seed)
    return nn.MLP(list(sizes))


def assert_same_state(a, b):
    assert list(a) == list(b)
    for k in a:
        assert a[k].dtype == b[k].dtype
        np.testing.assert_array_equal(a[k], b[k])


def leftovers(directory, keep):
    return sorted(set(os.listdir(directory)) - set(keep))


# ---------------------------------------------------------------------------
# round trips
# ---------------------------------------------------------------------------


def test_round_trip_with_metadata(tmp_path):
    m = model()
    path = tmp_path / "m.npz"
    meta = {"model": "mlp", "sizes": [6, 5, 3], "accuracy": np.float64(0.98), "epochs": np.int64(3),
            "hist": np.array([0.5, 0.25]), "note": None}
    assert save(m, path, metadata=meta) is None
    state, got = load(path)
    assert_same_state(state, m.state_dict())
    assert got == {"model": "mlp", "sizes": [6, 5, 3], "accuracy": 0.98, "epochs": 3, "hist": [0.5, 0.25],
                   "note": None}
    assert leftovers(tmp_path, ["m.npz"]) == []


def test_file_is_a_plain_npz(tmp_path):
    path = tmp_path / "m.npz"
    save(model(), str(path), {"a": 1})
    with np.load(path, allow_pickle=False) as f:  # no pickle needed to read it
        assert f.files == ["0.weight", "0.bias", "2.weight", "2.bias", METADATA_KEY]
        assert json.loads(str(f[METADATA_KEY])) == {"a": 1}


def test_save_state_dict_and_tensors(tmp_path):
    sd = {"w": Tensor(np.arange(6, dtype=np.float32).reshape(2, 3)), "b": np.zeros(2, np.float64)}
    save(sd, tmp_path / "sd.npz")
    state, meta = load(tmp_path / "sd.npz")
    assert meta == {} and list(state) == ["w", "b"]
    np.testing.assert_array_equal(state["w"], sd["w"].data)
    assert state["b"].dtype == np.float64


def test_load_into_restores_the_model(tmp_path):
    a, b = model(0), model(1)
    save(a, tmp_path / "a.npz", {"epoch": 7})
    assert load_into(b, tmp_path / "a.npz") == {"epoch": 7}
    x = Tensor(np.ones((2, 6), np.float32))
    np.testing.assert_array_equal(a(x).data, b(x).data)


@pytest.mark.parametrize("name", sorted(MODELS))
def test_zoo_models_round_trip(tmp_path, name):
    tm.manual_seed(0)
    a = MODELS[name]()
    tm.manual_seed(1)
    b = MODELS[name]()
    save(a, tmp_path / f"{name}.npz", {"model": name})
    assert load_into(b, tmp_path / f"{name}.npz")["model"] == name
    assert_same_state(a.state_dict(), b.state_dict())


def test_overwrite_replaces_and_keeps_mode(tmp_path):
    path = tmp_path / "m.npz"
    save(model(0), path)
    os.chmod(path, 0o640)
    save(model(1), path)
    assert_same_state(load(path)[0], model(1).state_dict())
    assert os.stat(path).st_mode & 0o777 == 0o640
    assert leftovers(tmp_path, ["m.npz"]) == []


def test_save_rejects_bad_input_without_writing(tmp_path):
    path = tmp_path / "m.npz"
    with pytest.raises(TypeError, match="JSON serializable"):
        save(model(), path, metadata={"f": object()})
    with pytest.raises(ValueError, match="reserved"):
        save({METADATA_KEY: np.zeros(1)}, path)
    with pytest.raises(ValueError, match="reserved"):
        save({"file": np.zeros(1)}, path)
    assert os.listdir(tmp_path) == []


# ---------------------------------------------------------------------------
# atomicity: a crash mid-write leaves the old file and no temporary
# ---------------------------------------------------------------------------


class Crash(Exception):
    pass


def test_crash_inside_savez_keeps_old_file(tmp_path, monkeypatch):
    path = tmp_path / "m.npz"
    good = model(0)
    save(good, path, {"v": 1})
    before = path.read_bytes()
    real_savez = np.savez

    def half_write_then_crash(file, *args, **kwargs):
        real_savez(file, *args, **kwargs)  # the bytes go out ...
        file.truncate(file.tell() // 2)  # ... half of them survive ...
        raise Crash("disk full")  # ... and the writer dies

    monkeypatch.setattr(np, "savez", half_write_then_crash)
    with pytest.raises(Crash):
        save(model(1), path, {"v": 2})
    assert path.read_bytes() == before
    assert leftovers(tmp_path, ["m.npz"]) == []
    monkeypatch.undo()
    state, meta = load(path)
    assert meta == {"v": 1}
    assert_same_state(state, good.state_dict())


def test_crash_at_rename_keeps_old_file(tmp_path, monkeypatch):
    path = tmp_path / "m.npz"
    save(model(0), path)
    before = path.read_bytes()

    def fail(*args, **kwargs):
        raise OSError("rename failed")

    monkeypatch.setattr(os, "replace", fail)
    with pytest.raises(OSError, match="rename failed"):
        save(model(1), path)
    assert path.read_bytes() == before
    assert leftovers(tmp_path, ["m.npz"]) == []


def test_crash_leaves_nothing_when_there_was_no_file(tmp_path, monkeypatch):
    monkeypatch.setattr(np, "savez", lambda *a, **k: (_ for _ in ()).throw(Crash()))
    with pytest.raises(Crash):
        save(model(), tmp_path / "new.npz")
    assert os.listdir(tmp_path) == []


# ---------------------------------------------------------------------------
# bad files: clear errors that name the file
# ---------------------------------------------------------------------------


@pytest.fixture
def good_bytes(tmp_path):
    save(model(), tmp_path / "good.npz", {"model": "mlp"})
    return (tmp_path / "good.npz").read_bytes()


@pytest.mark.parametrize("damage,message", [
    (lambda b: b[: len(b) // 2], "corrupt or truncated"),
    (lambda b: b[:-30], "corrupt or truncated"),
    (lambda b: b[:3], "corrupt or truncated"),
    (lambda b: b"", "empty"),
    (lambda b: bytes(range(256)) * 4, "no zip signature"),
    (lambda b: b"\x80\x04K\x01." + b"\x00" * 50, "no zip signature"),  # a pickle
], ids=["half", "tail_cut", "three_bytes", "empty", "garbage", "pickle"])
def test_truncated_or_corrupt_file(tmp_path, good_bytes, damage, message):
    path = tmp_path / "bad.npz"
    path.write_bytes(damage(good_bytes))
    with pytest.raises(SerializationError, match=message) as e:
        load(path)
    assert str(path) in str(e.value)
    with pytest.raises(SerializationError):
        load_into(model(), path)


def test_damaged_member_is_reported(tmp_path, good_bytes):
    """Flip bytes inside the first array's data: the zip's CRC check catches it."""
    i = good_bytes.index(b"\x93NUMPY") + 200
    path = tmp_path / "bad.npz"
    path.write_bytes(good_bytes[:i] + bytes(b ^ 0xFF for b in good_bytes[i:i + 8]) + good_bytes[i + 8:])
    with pytest.raises(SerializationError, match=r"damaged or truncated entry '0.weight'") as e:
        load(path)
    assert str(path) in str(e.value)


def test_npy_file_is_not_a_checkpoint(tmp_path):
    np.save(tmp_path / "x.npy", np.zeros(3))
    with pytest.raises(SerializationError, match=r"x.npy: holds a single array"):
        load(tmp_path / "x.npy")


def test_bad_metadata(tmp_path):
    np.savez(tmp_path / "m.npz", w=np.zeros(2), **{METADATA_KEY: np.array("{not json")})
    with pytest.raises(SerializationError, match="metadata entry is not valid JSON"):
        load(tmp_path / "m.npz")
    np.savez(tmp_path / "m.npz", w=np.zeros(2), **{METADATA_KEY: np.array("[1, 2]")})
    with pytest.raises(SerializationError, match="expected an object"):
        load(tmp_path / "m.npz")


def test_missing_file(tmp_path):
    with pytest.raises(FileNotFoundError):
        load(tmp_path / "nope.npz")


def test_missing_keys_named(tmp_path):
    sd = model().state_dict()
    del sd["2.bias"]
    save(sd, tmp_path / "m.npz")
    with pytest.raises(SerializationError) as e:
        load_into(model(), tmp_path / "m.npz")
    assert "m.npz" in str(e.value) and "missing keys: 2.bias" in str(e.value)
    load_into(model(), tmp_path / "m.npz", strict=False)  # allowed when not strict


def test_shape_mismatch_names_key_and_both_shapes(tmp_path):
    save(model(sizes=(6, 7, 3)), tmp_path / "m.npz")
    with pytest.raises(SerializationError) as e:
        load_into(model(), tmp_path / "m.npz")
    msg = str(e.value)
    assert "m.npz" in msg and "0.weight: expected shape (5, 6), found (7, 6)" in msg


def test_wrong_model_kind(tmp_path):
    save(MODELS["nielsen"](), tmp_path / "n.npz")
    with pytest.raises(SerializationError, match="missing keys: conv1.weight"):
        load_into(MODELS["cnn"](), tmp_path / "n.npz")
