"""Build the bundled MNIST sample: the first 10,000 training and first 2,000 test digits.

How the shipped files were made (from the repository root, Python 3.11, zlib 1.2.13)::

    python -m tinygrad_mnist.sample_data.build_sample ../shared/data/mnist

Source files (the original MNIST distribution; MD5 sums match the published ones):

    440fcabf73cc546fa21475e81ea370265605f56be210a4024d2ca8f203523609  train-images-idx3-ubyte.gz
    3552534a0a558bbed6aed32b30c495cca23d567ec52cac8be1a0730e8010255c  train-labels-idx1-ubyte.gz
    8d422c7b0a1c1c79245a5bcf07fe86e33eeafee792b84584aec276f5a2dbc4e6  t10k-images-idx3-ubyte.gz
    f7ae60f92e00ec6debd23a6088c31dbd2371eca3ffa0defaefb259924204aec6  t10k-labels-idx1-ubyte.gz

The script takes the first N images/labels of each split (no shuffling, no other change) and writes
them with ``tinygrad_mnist.data.write_idx`` as gzip IDX files (level 9, mtime 0, no file name in the
header), so a rebuild with the same zlib gives byte-identical files. It also writes SHA256SUMS.

Attribution: the MNIST database of handwritten digits, by Yann LeCun and Corinna Cortes (with
Christopher J. C. Burges), http://yann.lecun.com/exdb/mnist/ , licensed under Creative Commons
Attribution-Share Alike 3.0. This sample is a derivative under the same license.
"""

from __future__ import annotations

import argparse
import hashlib
import os
from pathlib import Path

from tinygrad_mnist.data import ENV_VAR, FILES, _find_files, read_idx, write_idx

HERE = Path(__file__).resolve().parent
N_TRAIN, N_TEST = 10_000, 2_000


def sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def build(src: Path, out: Path, n_train: int = N_TRAIN, n_test: int = N_TEST) -> list[Path]:
    found, missing = _find_files(src)
    if missing:
        raise SystemExit(f"{src}: missing {', '.join(missing)}")
    for stem in FILES:
        print(f"source  {sha256(found[stem])}  {found[stem].name}")
    out.mkdir(parents=True, exist_ok=True)
    written = []
    for stem in FILES:
        n = n_train if stem.startswith("train") else n_test
        arr = read_idx(found[stem])
        if len(arr) < n:
            raise SystemExit(f"{found[stem]}: has {len(arr)} entries, need {n}")
        path = out / f"{stem}.gz"
        write_idx(path, arr[:n])
        written.append(path)
    sums = "".join(f"{sha256(p)}  {p.name}\n" for p in written)
    (out / "SHA256SUMS").write_text(sums)
    print(sums, end="")
    return written


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("src", nargs="?", default=os.environ.get(ENV_VAR),
                        help=f"directory with the full MNIST files (default: ${ENV_VAR})")
    parser.add_argument("--out", default=str(HERE), help="output directory (default: this one)")
    parser.add_argument("--train", type=int, default=N_TRAIN, help="training digits to keep")
    parser.add_argument("--test", type=int, default=N_TEST, help="test digits to keep")
    args = parser.parse_args()
    if not args.src:
        parser.error(f"give the MNIST directory or set {ENV_VAR}")
    build(Path(args.src), Path(args.out), args.train, args.test)


if __name__ == "__main__":
    main()
