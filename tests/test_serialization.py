"""Tests of tinygrad_mnist.serialization: round trips, atomic saves, clear errors for bad files."""

from __future__ import annotations

import io
import json
import os
from collections import OrderedDict

import numpy as np
import pytest

import tinygrad_mnist as tm
from tinygrad_mnist import nn, optim
from tinygrad_mnist.engine import Tensor
from tinygrad_mnist.models import MODELS
from tinygrad_mnist.serialization import METADATA_KEY, TREE_KEY, SerializationError, load, load_into, save

try:
    import torch
except ImportError:  # PyTorch is only a reference
    torch = None

needs_torch = pytest.mark.skipif(torch is None, reason="PyTorch (reference only) is not installed")


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


# ---------------------------------------------------------------------------
# tinygrad_mnist.save / tinygrad_mnist.load (torch.save / torch.load)
# ---------------------------------------------------------------------------


def test_save_load_tensor_keeps_dtype_requires_grad_and_class(tmp_path):
    t = Tensor(np.arange(6, dtype=np.float64).reshape(2, 3), requires_grad=True)
    tm.save(t, tmp_path / "t.pt")
    u = tm.load(tmp_path / "t.pt")
    assert type(u) is Tensor and u.dtype == np.float64 and u.requires_grad and u.is_leaf
    np.testing.assert_array_equal(u.data, t.data)
    p = nn.Parameter(np.ones(3, np.float32))
    tm.save([p, Tensor(np.array([1, 2]))], tmp_path / "p.pt")
    q, ints = tm.load(tmp_path / "p.pt")
    assert isinstance(q, nn.Parameter) and q.requires_grad and ints.dtype == np.int64 and not ints.requires_grad


def test_save_load_state_dict_into_a_fresh_model(tmp_path):
    a, b = model(0), model(1)
    tm.save(a.state_dict(), tmp_path / "sd.pt")
    sd = tm.load(tmp_path / "sd.pt")
    assert isinstance(sd, OrderedDict) and list(sd) == list(a.state_dict())
    b.load_state_dict(sd)
    assert_same_state(a.state_dict(), b.state_dict())
    # the CLI's reader takes it too, and tinygrad_mnist.load reads the CLI's checkpoints
    state, meta = load(tmp_path / "sd.pt")
    assert meta == {} and list(state) == list(sd)
    save(a, tmp_path / "ckpt.npz", {"epoch": 3})
    assert_same_state({k: v.data for k, v in tm.load(tmp_path / "ckpt.npz").items()}, a.state_dict())


def test_save_load_nested_structures_exactly(tmp_path):
    shared = Tensor(np.ones(2, np.float32))
    obj = {"epoch": 3, "lr": 0.1, "name": "run", "none": None, "flag": True, 7: "int key", (1, 2): "tuple key",
           "nan": float("nan"), "big": 2 ** 70, "np": np.float32(1.5), "i64": np.int64(-4), "bytes": b"\x00\xff",
           "nested": [shared, (shared, np.arange(3)), {"deep": [1, 2.0, "x"]}], "empty": [], "etuple": (),
           "strings": np.array(["a", "bc"]), "od": OrderedDict([("b", 1), ("a", 2)])}
    tm.save(obj, tmp_path / "o.pt")
    got = tm.load(tmp_path / "o.pt")
    assert list(got) == list(obj) and type(got) is dict
    for k in ("epoch", "lr", "name", "none", "flag", 7, (1, 2), "big", "bytes", "empty", "etuple"):
        assert got[k] == obj[k] and type(got[k]) is type(obj[k]), k
    assert np.isnan(got["nan"])
    assert type(got["np"]) is np.float32 and got["np"] == 1.5 and type(got["i64"]) is np.int64
    a, (b, arr), deep = got["nested"]
    assert a is b and isinstance(arr, np.ndarray) and arr.dtype == obj["nested"][1][1].dtype  # shared stays shared
    assert deep == {"deep": [1, 2.0, "x"]} and type(got["nested"][1]) is tuple
    assert got["strings"].tolist() == ["a", "bc"]
    assert type(got["od"]) is OrderedDict and list(got["od"]) == ["b", "a"]


@pytest.mark.parametrize("make", [
    lambda ps: optim.SGD(ps, lr=0.1, momentum=0.9, nesterov=True, weight_decay=1e-3),
    lambda ps: optim.Adam(ps, lr=1e-2, betas=(0.8, 0.99)),
    lambda ps: optim.AdamW(ps, lr=1e-2),
], ids=["sgd", "adam", "adamw"])
def test_optimizer_and_scheduler_state_round_trip_through_a_file(tmp_path, make):
    def run(net, opt, sched, steps):
        x = Tensor(np.random.default_rng(5).standard_normal((4, 6)).astype(np.float32))
        for _ in range(steps):
            opt.zero_grad()
            (net(x) ** 2).mean().backward()
            opt.step()
            sched.step()

    net = model(0)
    opt = make(net.parameters())
    sched = optim.lr_scheduler.MultiStepLR(opt, milestones=[2, 4], gamma=0.5)
    run(net, opt, sched, 3)
    tm.save({"model": net.state_dict(), "optimizer": opt.state_dict(), "scheduler": sched.state_dict()},
            tmp_path / "ckpt.pt")
    run(net, opt, sched, 3)  # the reference: three more steps without interruption

    ck = tm.load(tmp_path / "ckpt.pt")
    net2 = model(1)
    opt2 = make(net2.parameters())
    sched2 = optim.lr_scheduler.MultiStepLR(opt2, milestones=[2, 4], gamma=0.5)
    net2.load_state_dict(ck["model"])
    opt2.load_state_dict(ck["optimizer"])
    sched2.load_state_dict(ck["scheduler"])
    assert opt2.state_dict()["param_groups"] == ck["optimizer"]["param_groups"]
    run(net2, opt2, sched2, 3)
    assert_same_state(net.state_dict(), net2.state_dict())  # bit for bit
    assert sched2.get_last_lr() == sched.get_last_lr()


def test_save_refuses_what_needs_pickle(tmp_path):
    with pytest.raises(TypeError, match=r"state_dict\(\) instead"):
        tm.save(model(), tmp_path / "m.pt")
    with pytest.raises(TypeError, match=r"obj\['f'\] of type function"):
        tm.save({"f": lambda: 0}, tmp_path / "m.pt")
    with pytest.raises(TypeError, match="array of Python objects"):
        tm.save([np.array([{}, 1], dtype=object)], tmp_path / "m.pt")
    assert os.listdir(tmp_path) == []


def test_save_to_a_file_object():
    buf = io.BytesIO()
    tm.save({"w": Tensor([1.0, 2.0])}, buf)
    buf.seek(0)
    np.testing.assert_array_equal(tm.load(buf)["w"].data, [1.0, 2.0])


def test_load_foreign_files_names_them(tmp_path):
    text = tmp_path / "notes.txt"
    text.write_text("hello\n")
    with pytest.raises(SerializationError, match="notes.txt: not a file written by tinygrad_mnist.save"):
        tm.load(text)
    pickled = tmp_path / "legacy.pt"
    pickled.write_bytes(b"\x80\x02}q\x00." + b"\x00" * 20)
    with pytest.raises(SerializationError, match="legacy.pt: .*looks like a pickle"):
        tm.load(pickled)
    tm.save({"w": Tensor([1.0])}, tmp_path / "ok.pt")
    (tmp_path / "cut.pt").write_bytes((tmp_path / "ok.pt").read_bytes()[:-40])
    with pytest.raises(SerializationError, match="cut.pt: .*corrupt or truncated"):
        tm.load(tmp_path / "cut.pt")
    with pytest.raises(RuntimeError, match="runs on the CPU"):
        tm.load(tmp_path / "ok.pt", map_location="cuda:0")
    assert tm.load(tmp_path / "ok.pt", map_location="cpu", weights_only=True)["w"].item() == 1.0


@needs_torch
def test_load_refuses_a_real_torch_file_without_unpickling(tmp_path):
    path = tmp_path / "model.pt"
    torch.save({"w": torch.ones(2)}, path)
    with pytest.raises(SerializationError, match=r"model.pt: .*PyTorch checkpoint"):
        tm.load(path)
    with pytest.raises(SerializationError, match=r"model.pt"):
        load(path)


def _write_tree(path, tree, arrays=None):
    arrays = dict(arrays or {})
    arrays[TREE_KEY] = np.array(json.dumps({"format": "tinygrad_mnist.save", "version": 1, "tree": tree}))
    np.savez(path, **arrays)


@pytest.mark.parametrize("tree,arrays,message", [
    ({"tensor": 3}, {}, "missing array 3"),
    ({"tensor": [0]}, {"a0": np.zeros(1)}, "missing array"),
    ({"object": "os.system"}, {}, "unsupported contents"),
    ({"dict": [[{"list": []}, 1]]}, {}, "unhashable"),
    ({"dict": [1, 2]}, {}, "not a \\[key, value\\] pair"),
], ids=["missing", "bad_index", "unknown_node", "unhashable_key", "bad_pair"])
def test_crafted_structure_fails_cleanly(tmp_path, tree, arrays, message):
    path = tmp_path / "crafted.npz"
    _write_tree(path, tree, arrays)
    with pytest.raises(SerializationError, match=message) as e:
        tm.load(path)
    assert "crafted.npz" in str(e.value)


def test_object_arrays_are_never_unpickled(tmp_path):
    path = tmp_path / "evil.npz"
    np.savez(path, a0=np.array([{"x": 1}], dtype=object), **{TREE_KEY: np.array("{}")})  # savez pickles these
    with pytest.raises(SerializationError, match="evil.npz: entry 'a0' holds Python objects"):
        tm.load(path)
