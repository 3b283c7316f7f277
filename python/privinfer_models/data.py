"""CIFAR-10 loading and the pretrained models' normalization (float32, same order of
operations as the Rust loader in crates/nn/src/data.rs)."""

from __future__ import annotations

import io
import re
import tarfile

import numpy as np
from PIL import Image

MEAN = np.array([0.485, 0.456, 0.406], dtype=np.float32)
STD = np.array([0.229, 0.224, 0.225], dtype=np.float32)
CLASSES = ["airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck"]


def normalize_chw(pixels: np.ndarray) -> np.ndarray:
    """uint8 [..., 3, H, W] -> float32 normalized, (p / 255 - mean) / std per channel."""
    x = pixels.astype(np.float32) / np.float32(255.0)
    return (x - MEAN[:, None, None]) / STD[:, None, None]


def load_cifar_bin(path: str, limit: int | None = None):
    """The CIFAR-10 binary file: returns (uint8 images [N, 3, 32, 32], labels [N])."""
    raw = np.fromfile(path, dtype=np.uint8)
    assert raw.size % 3073 == 0, f"{path}: not a CIFAR-10 binary file"
    rec = raw.reshape(-1, 3073)
    if limit is not None:
        rec = rec[:limit]
    return rec[:, 1:].reshape(-1, 3, 32, 32), rec[:, 0].astype(np.int64)


def load_png_chw(path: str) -> np.ndarray:
    """A PNG/JPEG as uint8 [3, H, W] (RGB)."""
    return np.asarray(Image.open(path).convert("RGB")).transpose(2, 0, 1).copy()


def lossless_images(data_dir: str):
    """The 20 lossless CIFAR-10 test images: list of (file name, label, uint8 [3, 32, 32])."""
    import glob
    import os

    out = []
    for p in sorted(glob.glob(os.path.join(data_dir, "cifar10", "lossless", "cifar10_*_*.png"))):
        m = re.match(r"cifar10_(\d+)_(\d)\.png", os.path.basename(p))
        out.append((os.path.basename(p), int(m.group(2)), load_png_chw(p)))
    return out


def iter_train_jpeg(tar_path: str, per_class: int | None = None):
    """Yields (uint8 [3, 32, 32], label) from train_jpeg.tar.gz (train/<class>/NNNN.jpg), at
    most `per_class` images of each class when given (the archive is grouped by class)."""
    counts = [0] * len(CLASSES)
    with tarfile.open(tar_path, "r:gz") as tar:
        for member in tar:
            if not member.isfile() or not member.name.endswith(".jpg"):
                continue
            parts = member.name.split("/")
            label = CLASSES.index(parts[-2])
            if per_class is not None and counts[label] >= per_class:
                continue
            counts[label] += 1
            img = Image.open(io.BytesIO(tar.extractfile(member).read())).convert("RGB")
            yield np.asarray(img).transpose(2, 0, 1).copy(), label
