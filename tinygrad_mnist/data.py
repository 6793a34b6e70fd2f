"""The MNIST data layer: IDX files, finding/downloading the data set, the bundled sample, batching.

Images come back as float32 arrays of shape (N, 784) scaled to [0, 1]; use ``images_2d(x)`` to get the
(N, 1, 28, 28) layout a CNN wants. Labels are int64.

This module imports nothing else from the package but ``fileio`` (atomic writes), so it can be used (and
tested) on its own.
"""

from __future__ import annotations

import gzip
import hashlib
import http.client
import json
import os
import struct
import sys
import time
import zlib
from collections.abc import Iterator
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import NamedTuple
from urllib.request import urlopen  # module global so tests can monkeypatch it (they never download)

import numpy as np
from tqdm.auto import tqdm  # a widget in Jupyter (with ipywidgets), text elsewhere

from .fileio import atomic_write, write_text_atomic

ENV_VAR = "TINYGRAD_MNIST_DATA"  # a directory holding the four MNIST files
OFFLINE_ENV = "TINYGRAD_MNIST_OFFLINE"  # set to 1 (e.g. in CI) to never download
DOWNLOAD_HINT = "python -m tinygrad_mnist download"
CONNECT_TIMEOUT_S = 10  # per socket operation: a dead network fails in seconds, not minutes
RETRY_DOWNLOAD_AFTER_S = 3600  # after a failed automatic download, don't wait on the network again for this long
FAILED_MARKER = ".download-failed"  # in the cache dir: when and why the last automatic download failed
SAMPLE_DIR = Path(__file__).with_name("sample_data")

# The four files of MNIST-format data sets; each may be gzipped (.gz) or raw.
FILES = (
    "train-images-idx3-ubyte",
    "train-labels-idx1-ubyte",
    "t10k-images-idx3-ubyte",
    "t10k-labels-idx1-ubyte",
)


class DataError(ValueError):
    """Missing or malformed data; the message names the file or directory and what was expected."""


# ---------------------------------------------------------------------------------------------------------
# IDX format: magic = 0x00 0x00 <type code> <number of dims>, then one big-endian uint32 per dim, then data.

_IDX_DTYPES = {0x08: ">u1", 0x09: ">i1", 0x0B: ">i2", 0x0C: ">i4", 0x0D: ">f4", 0x0E: ">f8"}
_GZIP_MAGIC = b"\x1f\x8b"


def read_idx(path) -> np.ndarray:
    """Read an IDX file, gzipped or raw (told apart by the gzip magic bytes, not the name)."""
    name = str(path)
    data = Path(path).read_bytes()
    if data[:2] == _GZIP_MAGIC:
        try:
            data = gzip.decompress(data)
        except (OSError, EOFError, zlib.error) as e:  # BadGzipFile is an OSError; truncation is EOFError
            raise DataError(f"{name}: corrupt gzip stream ({e})") from None
    if len(data) < 4:
        raise DataError(f"{name}: {len(data)} bytes, too short for an IDX header (4 bytes or more)")
    magic = int.from_bytes(data[:4], "big")
    if data[0] or data[1]:
        raise DataError(f"{name}: bad magic 0x{magic:08x}, expected 0x0000080x (not an IDX file?)")
    code, ndim = data[2], data[3]
    if code not in _IDX_DTYPES:
        known = ", ".join(f"0x{c:02x}" for c in _IDX_DTYPES)
        raise DataError(f"{name}: bad magic 0x{magic:08x}: unknown IDX type code 0x{code:02x}, "
                        f"expected one of {known}")
    if ndim == 0:
        raise DataError(f"{name}: IDX header says 0 dimensions, expected at least 1")
    start = 4 + 4 * ndim
    if len(data) < start:
        raise DataError(f"{name}: truncated header: {ndim} dimensions need {start} bytes, found {len(data)}")
    dims = struct.unpack(f">{ndim}I", data[4:start])
    dtype = np.dtype(_IDX_DTYPES[code])
    expected, found = int(np.prod(dims, dtype=np.int64)) * dtype.itemsize, len(data) - start
    if found != expected:
        what = "truncated" if found < expected else "trailing data"
        shape = "x".join(map(str, dims))
        raise DataError(f"{name}: {what}: header says {shape} = {expected} bytes of data, found {found}")
    arr = np.frombuffer(data, dtype=dtype, count=expected // dtype.itemsize, offset=start).reshape(dims)
    return arr.astype(dtype.newbyteorder("="))  # native byte order, and a writable copy


def write_idx(path, array) -> None:
    """Write ``array`` as an IDX file (gzipped if the name ends with .gz), atomically.

    Gzip uses mtime=0 and no file name in the header, so the same array gives the same bytes.
    """
    array = np.asarray(array)
    kind = (array.dtype.kind, array.dtype.itemsize)  # byte order is ours to choose, so ignore it
    code = next((c for c, t in _IDX_DTYPES.items() if (np.dtype(t).kind, np.dtype(t).itemsize) == kind), None)
    if code is None:
        raise DataError(f"{path}: IDX cannot store dtype {array.dtype}; use uint8, int8/16/32, float32/64")
    if not 1 <= array.ndim <= 255:
        raise DataError(f"{path}: IDX needs 1 to 255 dimensions, got {array.ndim}")
    header = bytes([0, 0, code, array.ndim]) + struct.pack(f">{array.ndim}I", *array.shape)
    data = header + array.astype(_IDX_DTYPES[code]).tobytes()
    with atomic_write(path, "wb", make_parents=False) as f:
        if str(path).endswith(".gz"):
            # GzipFile rather than gzip.compress: some Python versions ignore gzip.compress(mtime=0).
            with gzip.GzipFile(filename="", mode="wb", compresslevel=9, fileobj=f, mtime=0) as gz:
                gz.write(data)
        else:
            f.write(data)


# ---------------------------------------------------------------------------------------------------------
# Data sets and where they live.


@dataclass(frozen=True)
class DatasetSpec:
    mirrors: tuple[str, ...]  # base URLs, tried in order
    hash_name: str  # hashlib name of the sums below
    sums: dict[str, str]  # file name -> hex digest of the published .gz file
    system_dirs: tuple[Path, ...] = ()  # where an OS package installs it


DATASETS = {
    "mnist": DatasetSpec(
        mirrors=(
            "https://ossci-datasets.s3.amazonaws.com/mnist/",
            "https://storage.googleapis.com/cvdf-datasets/mnist/",
        ),
        hash_name="sha256",
        sums={
            "train-images-idx3-ubyte.gz": "440fcabf73cc546fa21475e81ea370265605f56be210a4024d2ca8f203523609",
            "train-labels-idx1-ubyte.gz": "3552534a0a558bbed6aed32b30c495cca23d567ec52cac8be1a0730e8010255c",
            "t10k-images-idx3-ubyte.gz": "8d422c7b0a1c1c79245a5bcf07fe86e33eeafee792b84584aec276f5a2dbc4e6",
            "t10k-labels-idx1-ubyte.gz": "f7ae60f92e00ec6debd23a6088c31dbd2371eca3ffa0defaefb259924204aec6",
        },
    ),
    # Fashion-MNIST publishes only MD5 sums (README of zalandoresearch/fashion-mnist, also shipped as
    # /usr/share/doc/dataset-fashion-mnist/README.md.gz). We cannot derive SHA-256 sums from the Debian
    # package: it re-wrote the gzip headers (no file name, new mtime), so its .gz files are not the
    # published bytes. MD5 still catches corrupt or truncated downloads, which is what it is for here.
    "fashion": DatasetSpec(
        mirrors=("http://fashion-mnist.s3-website.eu-central-1.amazonaws.com/",),
        hash_name="md5",
        sums={
            "train-images-idx3-ubyte.gz": "8d4fb7e6c68d591d4c3dfef9ec88bf0d",
            "train-labels-idx1-ubyte.gz": "25c81989df183df01b3e8a0aad5dffbe",
            "t10k-images-idx3-ubyte.gz": "bef4ecab320f06d8554ea6380940ec79",
            "t10k-labels-idx1-ubyte.gz": "bb300cfdad3c16e7a12a480ee83cd310",
        },
        # `apt-get install dataset-fashion-mnist` puts the four standard .gz names flat in here.
        system_dirs=(Path("/usr/share/datasets/fashion-mnist"),),
    ),
}


@dataclass(frozen=True, eq=False)
class Dataset:
    x_train: np.ndarray = field(repr=False)  # (N, 784) float32 in [0, 1]
    y_train: np.ndarray = field(repr=False)  # (N,) int64 in 0..9
    x_test: np.ndarray = field(repr=False)
    y_test: np.ndarray = field(repr=False)
    source: str  # where it was loaded from, for logs
    is_sample: bool = False


class Split(NamedTuple):
    x_train: np.ndarray
    y_train: np.ndarray
    x_val: np.ndarray
    y_val: np.ndarray
    x_test: np.ndarray
    y_test: np.ndarray


def images_2d(x: np.ndarray) -> np.ndarray:
    """(N, 784) -> (N, 1, 28, 28), the channels-first layout for a CNN (a view, no copy)."""
    return x.reshape(-1, 1, 28, 28)


def _spec(dataset: str) -> DatasetSpec:
    if dataset not in DATASETS:
        raise ValueError(f"unknown dataset {dataset!r}, expected one of {', '.join(DATASETS)}")
    return DATASETS[dataset]


def cache_dir(dataset: str = "mnist") -> Path:
    """$XDG_CACHE_HOME/tinygrad_mnist/<dataset>, or ~/.cache/tinygrad_mnist/<dataset>."""
    base = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(base) / "tinygrad_mnist" / dataset


def _find_files(d: Path) -> tuple[dict[str, Path], list[str]]:
    """Locate the four files in ``d``: (stem -> path of the ones found, names of the missing ones)."""
    found, missing = {}, []
    for stem in FILES:
        dotted = stem.replace("-idx", ".idx")  # some copies are named train-images.idx3-ubyte
        names = (stem + ".gz", stem, dotted + ".gz", dotted)
        hit = next((d / n for n in names if (d / n).is_file()), None)
        if hit is None:
            missing.append(stem + "[.gz]")
        else:
            found[stem] = hit
    return found, missing


def _images_and_labels(img_path: Path, lbl_path: Path) -> tuple[np.ndarray, np.ndarray]:
    """Read one split, check its structure, and convert to (N, 784) float32 in [0, 1] and int64 labels."""
    images, labels = read_idx(img_path), read_idx(lbl_path)
    if images.ndim != 3 or images.shape[1:] != (28, 28) or images.dtype != np.uint8:
        raise DataError(f"{img_path}: expected N x 28 x 28 unsigned bytes, found shape "
                        f"{'x'.join(map(str, images.shape))} of {images.dtype}")
    if labels.ndim != 1 or labels.dtype.kind not in "iu":
        raise DataError(f"{lbl_path}: expected a 1-d array of integer labels, found shape "
                        f"{'x'.join(map(str, labels.shape))} of {labels.dtype}")
    if len(images) != len(labels):
        raise DataError(f"{img_path} has {len(images)} images but {lbl_path} has {len(labels)} labels")
    if len(labels) and (labels.min() < 0 or labels.max() > 9):
        raise DataError(f"{lbl_path}: labels must be 0..9, found {labels.min()}..{labels.max()}")
    x = images.reshape(len(images), 784).astype(np.float32)
    x /= 255.0
    return x, labels.astype(np.int64)


# The first 20 training labels of each data set: enough to tell MNIST files from Fashion-MNIST files
# (the two use the same file names and formats, so a mix-up otherwise goes unnoticed).
_FIRST_TRAIN_LABELS = {
    "mnist": [5, 0, 4, 1, 9, 2, 1, 3, 1, 4, 3, 5, 3, 6, 1, 7, 2, 8, 6, 9],
    "fashion": [9, 0, 0, 3, 0, 2, 7, 2, 5, 5, 0, 9, 5, 5, 7, 9, 1, 0, 6, 4],
}


def identify(y_train: np.ndarray) -> str | None:
    """"mnist" or "fashion" when the labels start like that data set's training labels, else None."""
    head = y_train[:20].tolist()
    return next((name for name, first in _FIRST_TRAIN_LABELS.items() if len(head) == 20 and head == first), None)


def _load_dir(d: Path, source: str, is_sample: bool = False, dataset: str | None = None) -> Dataset:
    found, missing = _find_files(d)
    if missing:
        raise DataError(f"{d}: missing {', '.join(missing)}")
    x_train, y_train = _images_and_labels(found[FILES[0]], found[FILES[1]])
    x_test, y_test = _images_and_labels(found[FILES[2]], found[FILES[3]])
    actual = identify(y_train)
    if dataset is not None and actual is not None and actual != dataset:
        raise DataError(f"{d}: these are {_TITLES[actual]} files, not {_TITLES[dataset]} (their labels start like "
                        f"{_TITLES[actual]}'s); pass --dataset {actual} or point --data at the {dataset} files")
    return Dataset(x_train, y_train, x_test, y_test, source=source, is_sample=is_sample)


_TITLES = {"mnist": "MNIST", "fashion": "Fashion-MNIST"}


def load_sample() -> Dataset:
    """The bundled real sample: the first 10,000 training and 2,000 test digits of MNIST."""
    ds = _load_dir(SAMPLE_DIR, "", is_sample=True)
    counts = f"{len(ds.y_train):,} train / {len(ds.y_test):,} test MNIST digits"
    return replace(ds, source=f"bundled sample ({counts}, {SAMPLE_DIR})")


def _recent_failure(dataset: str) -> str | None:
    """Why the last automatic download failed, if it failed less than RETRY_DOWNLOAD_AFTER_S ago."""
    marker = cache_dir(dataset) / FAILED_MARKER
    try:
        note = json.loads(marker.read_text())
        age = time.time() - float(note["time"])
    except (OSError, ValueError, KeyError, TypeError):
        return None
    if not 0 <= age < RETRY_DOWNLOAD_AFTER_S:
        return None
    return f"download failed {age / 60:.0f} min ago, not retried until {RETRY_DOWNLOAD_AFTER_S // 60} min have " \
           f"passed ({note.get('error', '?')})"


def _remember_failure(dataset: str, error: str) -> None:
    try:
        write_text_atomic(cache_dir(dataset) / FAILED_MARKER, json.dumps({"time": time.time(), "error": error}))
    except OSError:  # an unwritable cache only means the next run tries again
        pass


def load_mnist(data_dir=None, dataset: str = "mnist", download: bool = True, allow_sample: bool = True,
               verbose: bool = True, details: bool = False) -> Dataset:
    """Load MNIST (or dataset="fashion" for Fashion-MNIST) from the first place that has all four files.

    A place the user named is used or is an error, never skipped: ``data_dir``, then $TINYGRAD_MNIST_DATA
    (for fashion: its ``fashion`` subdirectory, skipped if absent). Otherwise the search goes on: the
    per-user cache dir, OS package dirs (fashion: Debian's /usr/share/datasets/fashion-mnist), a download
    into the cache dir (a failure is remembered for RETRY_DOWNLOAD_AFTER_S, so later runs don't wait on
    the network again), then (mnist only, if ``allow_sample``) the bundled sample, announced in two short
    lines on stderr (``details=True`` adds where it looked). Local files need not match the checksums
    (they may be raw copies) but their structure is checked, and MNIST files loaded as Fashion-MNIST (or
    the other way round) are an error.
    """
    spec = _spec(dataset)
    files = f"the four {_TITLES[dataset]} files {', '.join(FILES)} (each gzipped .gz or raw)"
    if data_dir is not None:
        d = Path(data_dir).expanduser()
        found, missing = _find_files(d)
        if missing:
            why = "no such directory" if not d.is_dir() else f"missing {', '.join(missing)}"
            raise DataError(f"--data {d}: {why}; expected {files}")
        return _load_dir(d, f"{d} (--data)", dataset=dataset)

    env = os.environ.get(ENV_VAR)
    if env:
        d = Path(env).expanduser() / ("" if dataset == "mnist" else dataset)
        found, missing = _find_files(d)
        if not missing:
            return _load_dir(d, f"{d} (${ENV_VAR})", dataset=dataset)
        if dataset == "mnist" or d.is_dir():  # $TINYGRAD_MNIST_DATA names MNIST; fashion/ below it is optional
            why = "no such directory" if not d.is_dir() else f"missing {', '.join(missing)}"
            inside = f" in {d}" if d != Path(env).expanduser() else ""
            raise DataError(f"${ENV_VAR}={env}: {why}{inside}; expected {files} (or unset {ENV_VAR} to search "
                            "elsewhere)")

    looked = [f"${ENV_VAR} ({'not set' if not env else f'no {dataset} subdirectory'})"]
    for label, d in [("cache", cache_dir(dataset))] + [("OS package", d) for d in spec.system_dirs]:
        found, missing = _find_files(d)
        if not missing:
            return _load_dir(d, f"{d} ({label})", dataset=dataset)
        why = "no such directory" if not d.is_dir() else f"{len(missing)} of 4 files missing"
        looked.append(f"{d} ({why})")

    failure = None
    if not download or os.environ.get(OFFLINE_ENV):
        failure = "download disabled"
    elif (failure := _recent_failure(dataset)) is None:
        try:
            d = download_mnist(cache_dir(dataset), dataset, verbose=verbose)
            return _load_dir(d, f"{d} (downloaded)", dataset=dataset)
        except (DataError, OSError) as e:
            failure = f"download failed: {e}"
            _remember_failure(dataset, str(e))
    looked.append(failure)

    where = "; ".join(looked)
    hint = DOWNLOAD_HINT if dataset == "mnist" else f"{DOWNLOAD_HINT} --dataset {dataset}"
    if allow_sample and dataset == "mnist":
        ds = load_sample()
        if verbose:
            short = "download disabled" if failure == "download disabled" else "download failed"
            print(f"tinygrad_mnist: full MNIST not found ({short}); using the bundled sample "
                  f"({len(ds.y_train):,} train / {len(ds.y_test):,} test digits)\n"
                  f"  get the full set: {hint}  (or set {ENV_VAR}=DIR)"
                  + (f"\n  looked in: {where}" if details else "  (--debug: details)"), file=sys.stderr)
        return ds
    raise DataError(
        f"{dataset} data not found. Looked in: {where}. "
        f"Put {files} in one directory and pass --data DIR or set {ENV_VAR}=DIR"
        f"{'' if dataset == 'mnist' else f' (fashion: DIR/{dataset})'}, "
        f"or put them in {cache_dir(dataset)}, or run: {hint}"
        + (" (or: apt-get install dataset-fashion-mnist)" if dataset == "fashion" else "")
    )


# ---------------------------------------------------------------------------------------------------------
# Downloading.


def _file_digest(path: Path, hash_name: str) -> str:
    h = hashlib.new(hash_name)
    with open(path, "rb") as f:
        while chunk := f.read(1 << 20):
            h.update(chunk)
    return h.hexdigest()


def _download(urls: list[str], dest: Path, hash_name: str, expected: str, verbose: bool) -> None:
    """Fetch the first URL that works into ``dest``; it appears only once its checksum matches."""
    errors = []
    for url in urls:
        try:
            with urlopen(url, timeout=CONNECT_TIMEOUT_S) as resp, atomic_write(dest, "wb") as f:
                h = hashlib.new(hash_name)
                total = int(resp.headers.get("Content-Length") or 0) or None
                with tqdm(total=total, unit="B", unit_scale=True, unit_divisor=1024, desc=dest.name,
                          disable=not verbose, file=sys.stderr) as bar:
                    while chunk := resp.read(1 << 16):
                        f.write(chunk)
                        h.update(chunk)
                        bar.update(len(chunk))
                if h.hexdigest() != expected:  # raising here makes atomic_write delete the temp file
                    raise DataError(f"{hash_name} mismatch: expected {expected}, got {h.hexdigest()}")
            return
        except (OSError, http.client.HTTPException, DataError) as e:  # URLError/timeouts are OSErrors
            errors.append(f"{url}: {e}")
    raise DataError(f"{dest}: could not download it ({'; '.join(errors)}); check the network (or proxy), or put "
                    f"the files in {dest.parent} by hand")


def download_mnist(dest_dir=None, dataset: str = "mnist", *, verbose: bool = True) -> Path:
    """Download the four .gz files of ``dataset`` into ``dest_dir`` (default: the cache dir).

    Files already there with the right checksum are kept. Each file is checked against the table in
    DATASETS before it is moved into place, so a failed download leaves nothing behind. Returns the dir.
    """
    spec = _spec(dataset)
    dest = Path(dest_dir).expanduser() if dest_dir is not None else cache_dir(dataset)
    dest.mkdir(parents=True, exist_ok=True)
    for name, expected in spec.sums.items():
        target = dest / name
        if target.is_file() and _file_digest(target, spec.hash_name) == expected:
            continue
        _download([m + name for m in spec.mirrors], target, spec.hash_name, expected, verbose)
    try:  # the network works again: let automatic downloads try again
        (cache_dir(dataset) / FAILED_MARKER).unlink(missing_ok=True)
    except OSError:
        pass
    return dest


# ---------------------------------------------------------------------------------------------------------
# Splits and batching.


def validation_split(ds: Dataset, n_val: int) -> Split:
    """Hold out the last ``n_val`` training examples as the validation set (no shuffling, reproducible)."""
    n = len(ds.y_train)
    if not 0 <= n_val < n:
        raise ValueError(f"n_val must be in 0..{n - 1} for {n} training examples, got {n_val}")
    cut = n - n_val
    return Split(ds.x_train[:cut], ds.y_train[:cut], ds.x_train[cut:], ds.y_train[cut:], ds.x_test, ds.y_test)


def nielsen_split(ds: Dataset) -> Split:
    """Nielsen's split: first 50,000 train / last 10,000 as validation. Smaller sets (the bundled
    sample) keep the same 1/6 validation share, e.g. 8,334 / 1,666 for 10,000 examples."""
    return validation_split(ds, len(ds.y_train) // 6)


def iterate_minibatches(x: np.ndarray, y: np.ndarray, batch_size: int, shuffle: bool = True, seed=None,
                        rng: np.random.Generator | None = None,
                        drop_last: bool = False) -> Iterator[tuple[np.ndarray, np.ndarray]]:
    """Yield (xb, yb) minibatches covering every example once (the last one smaller unless drop_last).

    Shuffling uses ``rng`` or else ``np.random.default_rng(seed)``: the same seed gives the same batches,
    and passing one Generator for every epoch gives a new permutation each epoch.
    """
    if len(x) != len(y):
        raise ValueError(f"x has {len(x)} examples but y has {len(y)}")
    if batch_size < 1:
        raise ValueError(f"batch_size must be at least 1, got {batch_size}")
    if seed is not None and rng is not None:
        raise ValueError("pass seed or rng, not both")
    n = len(x)
    stop = n - n % batch_size if drop_last else n
    order = (rng if rng is not None else np.random.default_rng(seed)).permutation(n) if shuffle else None
    for i in range(0, stop, batch_size):
        if order is None:
            yield x[i:i + batch_size], y[i:i + batch_size]  # views, no copy
        else:
            idx = order[i:i + batch_size]
            yield x[idx], y[idx]


def one_hot(labels, num_classes: int = 10, dtype=np.float32) -> np.ndarray:
    """Integer labels of any shape -> that shape + (num_classes,), with a 1 at each label."""
    labels = np.asarray(labels)
    if labels.dtype.kind not in "iu":
        raise ValueError(f"labels must be integers, got {labels.dtype}")
    if labels.size and (labels.min() < 0 or labels.max() >= num_classes):
        raise ValueError(f"labels must be in 0..{num_classes - 1}, found {labels.min()}..{labels.max()}")
    out = np.zeros((labels.size, num_classes), dtype=dtype)
    out[np.arange(labels.size), labels.ravel()] = 1
    return out.reshape(*labels.shape, num_classes)
