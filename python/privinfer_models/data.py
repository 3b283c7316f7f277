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


def fit_image(img: Image.Image, out_h: int, out_w: int) -> Image.Image:
    """The preprocessing for an image of another size than the model's input (the same rule as
    the Rust loader, crates/nn/src/data.rs `fit_planar`): RGB (grayscale replicated, alpha
    dropped), a bilinear resize to the smallest size with the image's aspect ratio that covers
    out_h x out_w (for a square target torchvision's Resize(int): shorter side to the target,
    longer side floor(target * long / short)), then a centre crop with torchvision's rounding."""
    img = img.convert("RGB")
    w, h = img.size
    if (h, w) == (out_h, out_w):
        return img
    if h * out_w <= w * out_h:
        sh, sw = out_h, max(out_w, out_h * w // h)
    else:
        sh, sw = max(out_h, out_w * h // w), out_w
    img = img.resize((sw, sh), Image.BILINEAR)
    top, left = int(round((sh - out_h) / 2.0)), int(round((sw - out_w) / 2.0))
    return img.crop((left, top, left + out_w, top + out_h))


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


def write_fit_fixtures(out_dir: str, size: int = 32) -> None:
    """crates/nn/tests/fixtures/fit/: seeded images of other sizes and modes (RGB, grayscale,
    RGBA; down- and up-scaling) as PNG, each with PIL's `fit_image` result at size x size as raw
    planar RGB bytes (`NAME.fit32.bin`), the oracle of the Rust loader's `fit_planar`.

        python -c "from privinfer_models.data import write_fit_fixtures as w; w('../crates/nn/tests/fixtures/fit')"
    """
    import os

    rng = np.random.default_rng(7)

    def smooth(h, w, c):
        y, x = np.mgrid[0:h, 0:w]
        base = np.stack([(128 + 100 * np.sin(x / 5.0 + k) * np.cos(y / 7.0 - k)) for k in range(c)], -1)
        return np.clip(base + rng.normal(0, 12, base.shape), 0, 255).astype(np.uint8)

    cases = [("rgb_45x37.png", Image.fromarray(smooth(37, 45, 3), "RGB")),
             ("gray_40x64.png", Image.fromarray(smooth(64, 40, 1)[:, :, 0], "L")),
             ("rgba_50x50.png", Image.fromarray(smooth(50, 50, 4), "RGBA")),
             ("rgb_200x120.png", Image.fromarray(smooth(120, 200, 3), "RGB")),
             ("rgb_17x17.png", Image.fromarray(smooth(17, 17, 3), "RGB"))]
    os.makedirs(out_dir, exist_ok=True)
    for name, img in cases:
        path = os.path.join(out_dir, name)
        img.save(path)
        fitted = np.asarray(fit_image(Image.open(path), size, size)).transpose(2, 0, 1).copy()
        fitted.tofile(path.replace(".png", f".fit{size}.bin"))
