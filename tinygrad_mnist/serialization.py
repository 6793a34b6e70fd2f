"""Saving and loading, without pickle: NumPy .npz archives plus JSON.

Two spellings share one reader and one (atomic) writer:

    tinygrad_mnist.save(obj, path)          # like torch.save: tensors, state dicts, optimizer
    obj = tinygrad_mnist.load(path)         # state dicts, nested dicts/lists/tuples of them

    save(model, "mnist.npz", metadata={"model": "mlp", "accuracy": 0.982})   # the CLI's checkpoints
    state, meta = load("mnist.npz")
    meta = load_into(model, "mnist.npz")

A checkpoint (`save`) is an ordinary NumPy archive: one array per parameter
under its dotted name, plus `__metadata__`, a 0-d string array holding JSON.
A `save_object` file stores each array of `obj` as `a0`, `a1`, ... and the
structure around them (dicts with their key types, lists, tuples, Python
scalars, strings, None) as JSON in `__tinygrad_mnist__`.  Both read back with
np.load(path, allow_pickle=False): a crafted file can't run code, it can only
fail to load, with an error that names the file.  Writing goes through
fileio.atomic_write, so a crash never leaves a half-written file or destroys
the previous one.
"""

from __future__ import annotations

import io
import json
import os
import zipfile
import zlib
from collections import OrderedDict

import numpy as np

from .engine import Tensor, _check_device
from .fileio import atomic_write

METADATA_KEY = "__metadata__"
TREE_KEY = "__tinygrad_mnist__"  # present in files written by save_object
FORMAT = "tinygrad_mnist.save"
VERSION = 1
_SAVEZ_ARGS = ("file", "allow_pickle")  # names np.savez takes as its own arguments


class SerializationError(ValueError):
    """A file can't be read (empty, truncated, corrupt, foreign), or doesn't fit the model."""


# ---------------------------------------------------------------------------
# the one writer and the one reader
# ---------------------------------------------------------------------------


def _write_npz(path, arrays: dict) -> None:
    """np.savez(allow_pickle=False) to `path` atomically (keeping an existing file's mode), or to a file object."""
    if hasattr(path, "write"):
        np.savez(path, allow_pickle=False, **arrays)
        return
    path = os.fspath(path)
    mode = os.stat(path).st_mode & 0o777 if os.path.isfile(path) else None
    with atomic_write(path, "wb") as f:
        np.savez(f, allow_pickle=False, **arrays)
        if mode is not None:
            os.fchmod(f.fileno(), mode)  # overwriting a checkpoint keeps its permissions


def _name(path) -> str:
    return getattr(path, "name", None) or repr(path) if hasattr(path, "read") else os.fspath(path)


def _read_npz(path, what: str) -> OrderedDict:
    """Every array of an .npz file (a path or a binary file object), in stored order; SerializationError
    naming the file for anything that is not a readable archive of plain (non-object) arrays."""
    name = _name(path)
    if hasattr(path, "read"):
        raw = path.read()
    else:
        with open(os.fspath(path), "rb") as f:  # FileNotFoundError stays what it is
            raw = f.read()
    if not raw:
        raise SerializationError(f"{name}: the file is empty, not {what}")
    if raw.startswith(b"\x93NUMPY"):
        raise SerializationError(f"{name}: holds a single array (.npy format), not {what}")
    if not raw.startswith(b"PK"):
        hint = " (it looks like a pickle, e.g. PyTorch's legacy torch.save format, which is never unpickled " \
               "here)" if raw[:1] == b"\x80" else ""
        raise SerializationError(f"{name}: not {what} (no zip signature at the start of the file){hint}")
    try:
        members = zipfile.ZipFile(io.BytesIO(raw)).namelist()
    except (zipfile.BadZipFile, OSError, ValueError, EOFError) as e:
        raise SerializationError(f"{name}: not readable as {what}, the file is corrupt or truncated "
                                 f"({type(e).__name__}: {e})") from e
    foreign = [m for m in members if not m.endswith(".npy")]
    if foreign:
        torch = any(m.endswith("data.pkl") for m in foreign)
        raise SerializationError(
            f"{name}: not {what}: a zip archive holding {foreign[0]!r}"
            + (" - a PyTorch checkpoint (torch.save); this library never unpickles; in PyTorch, convert it with "
               "{k: v.numpy() for k, v in torch.load(path).items()} and np.savez" if torch else ""))
    try:
        archive = np.load(io.BytesIO(raw), allow_pickle=False)
    except (OSError, ValueError, EOFError, zipfile.BadZipFile) as e:
        raise SerializationError(f"{name}: not readable as {what}, the file is corrupt or truncated "
                                 f"({type(e).__name__}: {e})") from e
    arrays = OrderedDict()
    with archive:
        key = None
        try:
            for key in archive.files:
                arrays[key] = archive[key]
        except (OSError, ValueError, EOFError, KeyError, zipfile.BadZipFile, zlib.error) as e:
            if "pickle" in str(e):
                raise SerializationError(f"{name}: entry {key!r} holds Python objects (pickled), which are never "
                                         f"loaded") from e
            raise SerializationError(f"{name}: damaged or truncated entry {key!r} "
                                     f"({type(e).__name__}: {e})") from e
    return arrays


# ---------------------------------------------------------------------------
# checkpoints: save / load / load_into (the CLI's)
# ---------------------------------------------------------------------------


def _json_default(obj):
    if isinstance(obj, np.generic):
        return obj.item()
    if isinstance(obj, np.ndarray):
        return obj.tolist()
    raise TypeError(f"metadata value of type {type(obj).__name__} is not JSON serializable")


# A model file may carry the state its training run ended in (optimizer state, position, RNG states), so the
# run can go on later (train --resume m.npz --epochs N).  Those arrays are stored under this prefix and the
# state's metadata under metadata["train_state"]; load() leaves them out, so the file reads as a model.
TRAIN_STATE_PREFIX = "train_state/"


def save(model_or_state_dict, path, metadata: dict | None = None, train_state: tuple | None = None) -> None:
    """Write a Module's state_dict (or a name -> array mapping) and metadata to `path` atomically.

    train_state: (arrays, metadata) of the run's final training state (train.load_checkpoint's form), kept
    in the file beside the model; read it back with load_train_state."""
    sd = model_or_state_dict.state_dict() if hasattr(model_or_state_dict, "state_dict") else model_or_state_dict
    arrays = OrderedDict()
    for key, value in sd.items():
        if not isinstance(key, str) or not key:
            raise ValueError(f"save: state dict keys must be non-empty strings, got {key!r}")
        if key in (METADATA_KEY, TREE_KEY) or key in _SAVEZ_ARGS:
            raise ValueError(f"save: the key {key!r} is reserved; rename that parameter")
        arrays[key] = value.data if isinstance(value, Tensor) else np.asarray(value)
    metadata = {} if metadata is None else metadata
    if train_state is not None:
        state_arrays, state_meta = train_state
        arrays.update((TRAIN_STATE_PREFIX + k, np.asarray(v)) for k, v in state_arrays.items())
        metadata = {**metadata, "train_state": state_meta}
    try:
        meta_json = json.dumps(metadata, default=_json_default, allow_nan=True)
    except (TypeError, ValueError) as e:
        raise TypeError(f"save: metadata must be JSON serializable: {e}") from None
    arrays[METADATA_KEY] = np.array(meta_json)
    _write_npz(path, arrays)


def load(path) -> tuple[OrderedDict, dict]:
    """Read a checkpoint: (name -> ndarray in saved order, metadata dict).

    Raises SerializationError naming the file when it isn't a readable .npz
    archive (empty, corrupt, truncated, a lone .npy, not a zip at all) or its
    metadata is not valid JSON.  A missing file raises FileNotFoundError.  A
    file written by tinygrad_mnist.save that holds a state dict loads too.
    """
    arrays = _read_npz(path, "an .npz checkpoint")
    if TREE_KEY in arrays:
        obj = _decode_file(arrays, _name(path))
        if not (isinstance(obj, dict) and all(isinstance(k, str) and isinstance(v, Tensor) for k, v in obj.items())):
            raise SerializationError(f"{_name(path)}: holds a {type(obj).__name__} saved by tinygrad_mnist.save, "
                                     f"not a state dict; read it with tinygrad_mnist.load")
        return OrderedDict((k, v.data) for k, v in obj.items()), {}
    metadata = _metadata(arrays, path)
    for key in [k for k in arrays if k.startswith(TRAIN_STATE_PREFIX)]:
        del arrays[key]  # a finished run's training state: not part of the model (load_train_state reads it)
    metadata.pop("train_state", None)
    return arrays, metadata


def _metadata(arrays: dict, path) -> dict:
    """Pop the metadata entry off a file's arrays and parse it ({} when there is none)."""
    if METADATA_KEY not in arrays:
        return {}
    raw = arrays.pop(METADATA_KEY)
    try:
        metadata = json.loads(str(raw[()]))
    except (ValueError, TypeError, IndexError) as e:
        raise SerializationError(f"{_name(path)}: the metadata entry is not valid JSON ({e})") from e
    if not isinstance(metadata, dict):
        raise SerializationError(f"{_name(path)}: the metadata is a JSON {type(metadata).__name__}, "
                                 f"expected an object")
    return metadata


def load_train_state(path) -> tuple[dict, dict] | None:
    """(arrays, metadata) of the training state a model file was saved with (save(train_state=)), or None."""
    arrays = _read_npz(path, "an .npz checkpoint")
    meta = _metadata(arrays, path)
    if "train_state" not in meta:
        return None
    n = len(TRAIN_STATE_PREFIX)
    return {k[n:]: v for k, v in arrays.items() if k.startswith(TRAIN_STATE_PREFIX)}, meta["train_state"]


def load_into(model, path, strict: bool = True) -> dict:
    """Load a checkpoint into `model` (shapes, dtypes and, if strict, key sets must match); returns its metadata."""
    state, metadata = load(path)
    try:
        model.load_state_dict(state, strict=strict)
    except ValueError as e:
        raise SerializationError(f"{_name(path)}: does not fit the model: {e}") from None
    return metadata


# ---------------------------------------------------------------------------
# torch.save / torch.load: any tree of tensors, arrays and plain values
# ---------------------------------------------------------------------------


class _Encoder:
    """Turns an object into a JSON tree; arrays go to self.arrays, referenced by index.

    Tree nodes: JSON null/bool/int/float/str for Python scalars; {"tensor": i, "requires_grad": b,
    "parameter": b}, {"ndarray": i}, {"scalar": i} (a NumPy scalar), {"bytes": i}, {"list": [...]},
    {"tuple": [...]}, {"dict": [[key, value], ...], "ordered": b}.  The same tensor or array saved
    twice is stored once and loads as one object, as torch.load keeps shared tensors shared.
    """

    def __init__(self):
        self.arrays: dict[str, np.ndarray] = {}
        self.index: dict[int, int] = {}
        self.keep = []  # keep encoded objects alive so their ids stay unique

    def array(self, obj, arr: np.ndarray, where: str) -> int:
        if id(obj) not in self.index:
            if arr.dtype.hasobject:
                raise TypeError(f"save: {where} is an array of Python objects; only numeric, bool and string "
                                f"arrays can be saved without pickle")
            self.index[id(obj)] = len(self.arrays)
            self.arrays[f"a{len(self.arrays)}"] = arr
            self.keep.append(obj)
        return self.index[id(obj)]

    def encode(self, obj, where: str = "obj"):
        if obj is None or isinstance(obj, (bool, str)):
            return obj
        if isinstance(obj, (int, float)) and type(obj) in (int, float):
            return obj
        if isinstance(obj, Tensor):
            return {"tensor": self.array(obj, obj.data, where), "requires_grad": obj.requires_grad,
                    "parameter": type(obj).__name__ == "Parameter"}
        if isinstance(obj, np.ndarray):
            return {"ndarray": self.array(obj, obj, where)}
        if isinstance(obj, np.generic):
            return {"scalar": self.array(obj, np.asarray(obj), where)}
        if isinstance(obj, bytes):
            return {"bytes": self.array(obj, np.frombuffer(obj, np.uint8), where)}
        if isinstance(obj, (list, tuple)) and type(obj) in (list, tuple):
            return {type(obj).__name__: [self.encode(v, f"{where}[{i}]") for i, v in enumerate(obj)]}
        if isinstance(obj, dict):
            return {"dict": [[self.encode(k, f"a key of {where}"), self.encode(v, f"{where}[{k!r}]")]
                             for k, v in obj.items()], "ordered": isinstance(obj, OrderedDict)}
        hint = ""
        if hasattr(obj, "state_dict"):
            hint = "; save its state_dict() instead and restore it with load_state_dict()"
        raise TypeError(f"save: can't save {where} of type {type(obj).__name__} without pickle (supported: "
                        f"tensors, arrays, dicts, lists, tuples, numbers, strings, bytes, None){hint}")


def save_object(obj, f) -> None:
    """torch.save(obj, f): write tensors, state dicts, optimizer state dicts and nested dicts/lists/tuples of
    tensors, arrays and plain Python values to `f` (a path, written atomically, or a binary file object)."""
    enc = _Encoder()
    tree = enc.encode(obj)
    arrays = dict(enc.arrays)
    arrays[TREE_KEY] = np.array(json.dumps({"format": FORMAT, "version": VERSION, "tree": tree}, allow_nan=True))
    _write_npz(f, arrays)


def _decode_file(arrays: dict, name: str):
    try:
        header = json.loads(str(arrays[TREE_KEY][()]))
    except (ValueError, TypeError, IndexError) as e:
        raise SerializationError(f"{name}: the structure entry is not valid JSON ({e})") from e
    if not isinstance(header, dict) or header.get("format") != FORMAT or "tree" not in header:
        raise SerializationError(f"{name}: the structure entry is not a {FORMAT} header")
    if header.get("version") != VERSION:
        raise SerializationError(f"{name}: written by format version {header.get('version')!r}; this version of "
                                 f"tinygrad_mnist reads version {VERSION}")
    loaded: dict = {}  # array index -> the object built for it (shared tensors stay shared)

    def array(i):
        key = f"a{i}" if isinstance(i, int) and not isinstance(i, bool) else None
        if key not in arrays:
            raise SerializationError(f"{name}: the structure refers to a missing array {i!r}")
        return arrays[key]

    def decode(node):
        if node is None or isinstance(node, (bool, int, float, str)):
            return node
        if not isinstance(node, dict) or not node:
            raise SerializationError(f"{name}: unsupported contents in the structure entry: {node!r:.80}")
        if "tensor" in node:
            i = node["tensor"]
            a = array(i)  # checks the index
            if i not in loaded:
                from .nn import Parameter  # nn sits below this module; only needed here

                cls = Parameter if node.get("parameter") else Tensor
                t = cls(a, requires_grad=False)
                if node.get("requires_grad") is True:
                    t.requires_grad_(True)
                loaded[i] = t
            return loaded[i]
        if "ndarray" in node:
            a = array(node["ndarray"])
            return loaded.setdefault(("nd", node["ndarray"]), a)
        if "scalar" in node:
            a = array(node["scalar"])
            if a.ndim != 0:
                raise SerializationError(f"{name}: a NumPy scalar entry has shape {a.shape}")
            return a[()]
        if "bytes" in node:
            return array(node["bytes"]).astype(np.uint8).tobytes()
        if "list" in node and isinstance(node["list"], list):
            return [decode(v) for v in node["list"]]
        if "tuple" in node and isinstance(node["tuple"], list):
            return tuple(decode(v) for v in node["tuple"])
        if "dict" in node and isinstance(node["dict"], list):
            pairs = []
            for pair in node["dict"]:
                if not (isinstance(pair, list) and len(pair) == 2):
                    raise SerializationError(f"{name}: a dict entry in the structure is not a [key, value] pair")
                key = decode(pair[0])
                try:
                    hash(key)
                except TypeError:
                    raise SerializationError(f"{name}: a dict key in the structure is unhashable") from None
                pairs.append((key, decode(pair[1])))
            return OrderedDict(pairs) if node.get("ordered") else dict(pairs)
        raise SerializationError(f"{name}: unsupported contents in the structure entry: {node!r:.80}")

    return decode(header["tree"])


def _check_location(map_location) -> None:
    if not (callable(map_location) or isinstance(map_location, dict)):  # a function or a mapping: nothing to move
        _check_device(map_location, "load: map_location")


def load_object(f, map_location=None, weights_only=None, **kwargs):
    """torch.load(f): read what save_object wrote (or a checkpoint from `save`, as an OrderedDict of tensors).

    Never unpickles.  map_location may name the CPU; weights_only is accepted (loading is always "weights
    only" here).  Errors name the file: empty, truncated, corrupt, a PyTorch .pt file, a text file, ...
    """
    _check_location(map_location)
    if kwargs:
        raise TypeError(f"load: unexpected arguments {', '.join(kwargs)}")
    arrays = _read_npz(f, "a file written by tinygrad_mnist.save")
    if TREE_KEY in arrays:
        return _decode_file(arrays, _name(f))
    arrays.pop(METADATA_KEY, None)  # a CLI checkpoint: its state dict (without a finished run's training state)
    return OrderedDict((k, Tensor(v)) for k, v in arrays.items() if not k.startswith(TRAIN_STATE_PREFIX))
