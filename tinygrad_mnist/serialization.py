"""Save and load model weights as one .npz file, with JSON metadata inside.

    save(model, "mnist.npz", metadata={"model": "mlp", "accuracy": 0.982})
    state, meta = load("mnist.npz")
    meta = load_into(model, "mnist.npz")

The file is an ordinary NumPy archive: one array per parameter under its
dotted name, plus `__metadata__`, a 0-d string array holding JSON.  It loads
with np.load(path) and no pickle.  Saving is atomic: the archive is written to
a temporary file beside the target, flushed to disk and renamed over it, so a
crash never leaves a half-written checkpoint or destroys the previous one.
"""

from __future__ import annotations

import json
import os
import tempfile
import zipfile
import zlib
from collections import OrderedDict

import numpy as np

from .engine import Tensor

METADATA_KEY = "__metadata__"
_SAVEZ_ARGS = ("file", "allow_pickle")  # names np.savez takes as its own arguments


class SerializationError(ValueError):
    """A checkpoint file can't be read, or doesn't fit the model."""


def _json_default(obj):
    if isinstance(obj, np.generic):
        return obj.item()
    if isinstance(obj, np.ndarray):
        return obj.tolist()
    raise TypeError(f"metadata value of type {type(obj).__name__} is not JSON serializable")


def save(model_or_state_dict, path, metadata: dict | None = None) -> None:
    """Write a Module's state_dict (or a name -> array mapping) and metadata to `path` atomically."""
    path = os.fspath(path)
    sd = model_or_state_dict.state_dict() if hasattr(model_or_state_dict, "state_dict") else model_or_state_dict
    arrays = OrderedDict()
    for key, value in sd.items():
        if not isinstance(key, str) or not key:
            raise ValueError(f"save: state dict keys must be non-empty strings, got {key!r}")
        if key == METADATA_KEY or key in _SAVEZ_ARGS:
            raise ValueError(f"save: the key {key!r} is reserved; rename that parameter")
        arrays[key] = value.data if isinstance(value, Tensor) else np.asarray(value)
    try:
        meta_json = json.dumps({} if metadata is None else metadata, default=_json_default, allow_nan=True)
    except (TypeError, ValueError) as e:
        raise TypeError(f"save: metadata must be JSON serializable: {e}") from None
    arrays[METADATA_KEY] = np.array(meta_json)

    directory = os.path.dirname(os.path.abspath(path))
    fd, tmp = tempfile.mkstemp(dir=directory, prefix=f".{os.path.basename(path)}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as f:
            np.savez(f, allow_pickle=False, **arrays)
            f.flush()
            os.fsync(f.fileno())
        # mkstemp makes the file private (0600); give it the mode a checkpoint would normally have
        os.chmod(tmp, os.stat(path).st_mode & 0o777 if os.path.exists(path) else 0o644)
        os.replace(tmp, path)
    except BaseException:
        try:
            os.unlink(tmp)
        except FileNotFoundError:
            pass
        raise
    _fsync_dir(directory)


def _fsync_dir(directory: str) -> None:
    """Make the rename itself durable (POSIX); harmless to skip where directories can't be opened."""
    try:
        fd = os.open(directory, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def load(path) -> tuple[OrderedDict, dict]:
    """Read a checkpoint: (name -> ndarray in saved order, metadata dict).

    Raises SerializationError naming the file when it isn't a readable .npz
    archive (empty, corrupt, truncated, a lone .npy, not a zip at all) or its
    metadata is not valid JSON.  A missing file raises FileNotFoundError.
    """
    path = os.fspath(path)
    with open(path, "rb") as f:  # look at the signature first: np.load would guess pickle for anything else
        head = f.read(6)
    if not head:
        raise SerializationError(f"{path}: the file is empty, not an .npz checkpoint")
    if head.startswith(b"\x93NUMPY"):
        raise SerializationError(f"{path}: holds a single array (.npy format), not an .npz checkpoint")
    if not head.startswith(b"PK"):
        raise SerializationError(f"{path}: not an .npz checkpoint (no zip signature at the start of the file)")
    try:
        archive = np.load(path, allow_pickle=False)
    except (OSError, ValueError, EOFError, zipfile.BadZipFile) as e:
        raise SerializationError(f"{path}: not a readable .npz checkpoint, the file is corrupt or truncated "
                              f"({type(e).__name__}: {e})") from e
    with archive:
        arrays = OrderedDict()
        try:
            for key in archive.files:
                arrays[key] = archive[key]
        except (OSError, ValueError, EOFError, KeyError, zipfile.BadZipFile, zlib.error) as e:
            raise SerializationError(f"{path}: damaged or truncated entry {key!r} "
                                  f"({type(e).__name__}: {e})") from e
    for key, value in arrays.items():
        if not isinstance(value, np.ndarray):
            raise SerializationError(f"{path}: entry {key!r} is not a NumPy array; this is not a checkpoint")
    metadata = {}
    if METADATA_KEY in arrays:
        raw = arrays.pop(METADATA_KEY)
        try:
            metadata = json.loads(str(raw[()]))
        except (ValueError, TypeError, IndexError) as e:
            raise SerializationError(f"{path}: the metadata entry is not valid JSON ({e})") from e
        if not isinstance(metadata, dict):
            raise SerializationError(f"{path}: the metadata is a JSON {type(metadata).__name__}, expected an object")
    return arrays, metadata


def load_into(model, path, strict: bool = True) -> dict:
    """Load a checkpoint into `model` (shapes, dtypes and, if strict, key sets must match); returns its metadata."""
    state, metadata = load(path)
    try:
        model.load_state_dict(state, strict=strict)
    except ValueError as e:
        raise SerializationError(f"{os.fspath(path)}: does not fit the model: {e}") from None
    return metadata
