"""Build the embedded demo data (forensics/demo/data/fashion_mnist_demo.npz) from Debian's Fashion-MNIST.

    apt-get install dataset-fashion-mnist
    python scripts/make_demo_data.py

Splits (class-balanced, pairwise disjoint; all but `test` drawn from the official training file
so that the held-out pool comes from the same collection as the victim's private data):
  private  3,000  the victim's private training set D
  heldout  2,000  same collection, never seen by the victim (controls of the membership test)
  aux      3,000  the thief's auxiliary data (distillation / extraction queries)
  innocent 3,000  data of the innocent models
  test     1,000  from the official test file: accuracy only
Fashion-MNIST is (c) Zalando SE, MIT licence: see forensics/demo/data/LICENSE-fashion-mnist.txt.
"""
from __future__ import annotations

import argparse
import gzip
from pathlib import Path

import numpy as np

SRC = Path("/usr/share/datasets/fashion-mnist")
OUT = Path(__file__).resolve().parent.parent / "forensics" / "demo" / "data" / "fashion_mnist_demo.npz"
CLASSES = ["T-shirt/top", "Trouser", "Pullover", "Dress", "Coat",
           "Sandal", "Shirt", "Sneaker", "Bag", "Ankle boot"]
SPLITS = {"private": 3000, "heldout": 2000, "aux": 3000, "innocent": 3000}
TEST = 1000


def read_idx(path: Path) -> np.ndarray:
    with gzip.open(path, "rb") as f:
        data = f.read()
    ndim = data[3]
    shape = tuple(int.from_bytes(data[4 + 4 * i: 8 + 4 * i], "big") for i in range(ndim))
    return np.frombuffer(data, dtype=np.uint8, offset=4 + 4 * ndim).reshape(shape)


def balanced_take(labels: np.ndarray, pool: np.ndarray, n: int, rng: np.random.Generator) -> np.ndarray:
    per = n // 10
    out = []
    for c in range(10):
        cand = pool[labels[pool] == c]
        out.append(rng.choice(cand, size=per, replace=False))
    idx = np.concatenate(out)
    rng.shuffle(idx)
    return idx


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--src", type=Path, default=SRC)
    ap.add_argument("--out", type=Path, default=OUT)
    ap.add_argument("--seed", type=int, default=2507)
    args = ap.parse_args()
    rng = np.random.default_rng(args.seed)
    x_tr = read_idx(args.src / "train-images-idx3-ubyte.gz")
    y_tr = read_idx(args.src / "train-labels-idx1-ubyte.gz")
    x_te = read_idx(args.src / "t10k-images-idx3-ubyte.gz")
    y_te = read_idx(args.src / "t10k-labels-idx1-ubyte.gz")
    arrays: dict[str, np.ndarray] = {}
    remaining = np.arange(len(y_tr))
    for name, n in SPLITS.items():
        idx = balanced_take(y_tr, remaining, n, rng)
        remaining = np.setdiff1d(remaining, idx)
        arrays[f"{name}_images"] = x_tr[idx]
        arrays[f"{name}_labels"] = y_tr[idx].astype(np.int64)
        arrays[f"{name}_source_index"] = idx.astype(np.int64)  # row in the official training file
    idx = balanced_take(y_te, np.arange(len(y_te)), TEST, rng)
    arrays["test_images"] = x_te[idx]
    arrays["test_labels"] = y_te[idx].astype(np.int64)
    arrays["test_source_index"] = idx.astype(np.int64)
    arrays["classes"] = np.array(CLASSES)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    np.savez_compressed(args.out, **arrays)
    print(f"wrote {args.out} ({args.out.stat().st_size / 1e6:.1f} MB)")


if __name__ == "__main__":
    main()
