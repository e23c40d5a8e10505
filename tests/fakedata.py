"""Small dataset files in the exact on-disk formats (MNIST idx, CIFAR-10/100 python pickles, image folders), for
loader tests.

Run as a script to make a CIFAR-100-format data root by hand:
    python -m tests.fakedata cifar100 DIR [--train N] [--test N]
"""

from __future__ import annotations

import argparse
import gzip
import pickle
import struct
from pathlib import Path

import numpy as np

# CIFAR-100's real superclass of each fine class is not needed here: any fixed many-to-one map is the format.
N_FINE, N_COARSE = 100, 20


def fine_to_coarse() -> np.ndarray:
    return np.arange(N_FINE) % N_COARSE


def _idx_images(images: np.ndarray) -> bytes:
    n, h, w = images.shape
    return struct.pack(">IIII", 2051, n, h, w) + images.astype(np.uint8).tobytes()


def _idx_labels(labels: np.ndarray) -> bytes:
    return struct.pack(">II", 2049, len(labels)) + labels.astype(np.uint8).tobytes()


def write_mnist(root: Path, n_train: int = 200, n_test: int = 50, seed: int = 0, gz: bool = False) -> dict:
    """MNIST-format files (extracted, or .gz archives with `gz`) under root/MNIST/raw; returns the arrays."""
    rng = np.random.default_rng(seed)
    raw = Path(root) / "MNIST" / "raw"
    raw.mkdir(parents=True, exist_ok=True)
    arrays = {}
    for split, n in (("train", n_train), ("t10k", n_test)):
        x = rng.integers(0, 256, size=(n, 28, 28), dtype=np.uint8)
        y = rng.integers(0, 10, size=n)
        for name, payload in ((f"{split}-images-idx3-ubyte", _idx_images(x)), (f"{split}-labels-idx1-ubyte", _idx_labels(y))):
            if gz:
                with gzip.open(raw / (name + ".gz"), "wb") as f:
                    f.write(payload)
            else:
                (raw / name).write_bytes(payload)
        arrays[split] = (x, y)
    return arrays


def _cifar_images(fine: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    # Learnable on purpose: each fine class has its own colour and a stripe position, plus noise.
    n = len(fine)
    colour = np.stack([(fine * 37) % 256, (fine * 91) % 256, (fine * 53) % 256], 1).astype(np.int16)
    img = np.repeat(colour[:, :, None, None], 32, 2).repeat(32, 3)
    img = img + rng.integers(-40, 41, size=(n, 3, 32, 32))
    rows = fine % 32
    img[np.arange(n), :, rows, :] = 255
    return np.clip(img, 0, 255).astype(np.uint8).reshape(n, 3072)


def write_cifar100(root: Path, n_train: int = 1000, n_test: int = 200, seed: int = 0) -> dict:
    """CIFAR-100-format pickles under root/cifar-100-python/{train,test,meta}; returns what was written."""
    rng = np.random.default_rng(seed)
    d = Path(root) / "cifar-100-python"
    d.mkdir(parents=True, exist_ok=True)
    f2c = fine_to_coarse()
    written = {}
    for split, n in (("train", n_train), ("test", n_test)):
        fine = rng.integers(0, N_FINE, size=n)
        entry = {
            "filenames": [f"img_{i}.png" for i in range(n)],
            "batch_label": f"{split}ing batch 1 of 1",
            "fine_labels": fine.tolist(),
            "coarse_labels": f2c[fine].tolist(),
            "data": _cifar_images(fine, rng),
        }
        with open(d / split, "wb") as f:
            pickle.dump(entry, f, protocol=2)
        written[split] = entry
    meta = {
        "fine_label_names": [f"fine_{i:02d}" for i in range(N_FINE)],
        "coarse_label_names": [f"coarse_{i:02d}" for i in range(N_COARSE)],
    }
    with open(d / "meta", "wb") as f:
        pickle.dump(meta, f, protocol=2)
    written["meta"] = meta
    return written


def write_cifar10(root: Path, n_train: int = 500, n_test: int = 100, seed: int = 0, batches: int = 5) -> dict:
    """CIFAR-10-format pickles under root/cifar-10-batches-py/{data_batch_1..5,test_batch,batches.meta} (the training
    images spread over `batches` files, as the official archive has them); returns what was written."""
    rng = np.random.default_rng(seed)
    d = Path(root) / "cifar-10-batches-py"
    d.mkdir(parents=True, exist_ok=True)
    written: dict = {"train": []}
    per = -(-n_train // batches)
    files = [(f"data_batch_{b + 1}", min(per, n_train - b * per)) for b in range(batches)] + [("test_batch", n_test)]
    for name, n in files:
        labels = rng.integers(0, 10, size=max(n, 0))
        entry = {"batch_label": name, "labels": labels.tolist(), "data": _cifar_images(labels * 10, rng),
                 "filenames": [f"{name}_{i}.png" for i in range(len(labels))]}
        with open(d / name, "wb") as f:
            pickle.dump(entry, f, protocol=2)
        if name == "test_batch":
            written["test"] = entry
        else:
            written["train"].append(entry)
    meta = {"label_names": ["airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck"],
            "num_cases_per_batch": per, "num_vis": 3072}
    with open(d / "batches.meta", "wb") as f:
        pickle.dump(meta, f, protocol=2)
    written["meta"] = meta
    return written


def write_image_folder(root: Path, classes: dict[str, int], size: tuple[int, int] = (20, 20), mode: str = "RGB",
                       seed: int = 0, ext: str = "png") -> dict[str, list[Path]]:
    """An ImageFolder layout: root/CLASS/img_I.EXT, `classes[CLASS]` images each, learnable (each class its own
    brightness and a bar at its own row); returns the files written by class."""
    from PIL import Image

    rng = np.random.default_rng(seed)
    out: dict[str, list[Path]] = {}
    for k, (name, n) in enumerate(classes.items()):
        folder = Path(root) / name
        folder.mkdir(parents=True, exist_ok=True)
        out[name] = []
        for i in range(n):
            w, h = size
            base = rng.integers(0, 60, size=(h, w, 3)) + 40 * (k % 5)
            base[(k * 3) % h, :, :] = 255
            img = Image.fromarray(base.clip(0, 255).astype(np.uint8), "RGB")
            if mode != "RGB":
                img = img.convert(mode)
            path = folder / f"img_{i}.{ext}"
            img.save(path)
            out[name].append(path)
    return out


if __name__ == "__main__":
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("dataset", choices=["cifar100", "cifar10", "mnist"])
    ap.add_argument("root", type=Path)
    ap.add_argument("--train", type=int, default=2000)
    ap.add_argument("--test", type=int, default=500)
    a = ap.parse_args()
    {"cifar100": write_cifar100, "cifar10": write_cifar10, "mnist": write_mnist}[a.dataset](a.root, a.train, a.test)
    print(f"wrote {a.dataset}-format files under {a.root}")
