"""The Rust executors (through `privinfer eval --json --logits`) against independent oracles
on real CIFAR-10 test images, for every zoo model:

- float32 executor vs onnxruntime: max |rust - ort| <= 1e-4 * max |ort| per image;
- fixed-point executor (l = 37, s = 12) vs the numpy reference fixedpoint.py: identical
  outputs, on the CNNs whose ops the numpy reference covers.

Needs the privinfer binary (PRIVINFER_BIN, or target/{release,debug}/privinfer: build with
`cargo build -p privinfer`) and ../shared/data; skips with the reason otherwise.
"""

from __future__ import annotations

import json
import os
import subprocess

import numpy as np
import pytest
from PIL import Image

from privinfer_models import data as D
from privinfer_models.export import export, ort_run
from privinfer_models.fixedpoint import run_fixed
from privinfer_models.zoo import ZOO

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.abspath(os.path.join(HERE, "..", ".."))
DATA = os.environ.get("PRIVINFER_DATA", os.path.join(REPO, "..", "shared", "data"))
BUILD = os.path.join(REPO, "python", "build", "models")
N_IMAGES = int(os.environ.get("PRIVINFER_TEST_IMAGES", "3"))


def _binary():
    cands = [os.environ.get("PRIVINFER_BIN", "")] + [
        os.path.join(REPO, "target", p, "privinfer") for p in ("release", "debug")
    ]
    for c in cands:
        if c and os.path.isfile(c) and os.access(c, os.X_OK):
            return c
    pytest.skip("privinfer binary not built (cargo build -p privinfer, or set PRIVINFER_BIN)")


def _need_data():
    if not os.path.isfile(os.path.join(DATA, "cifar10", "test_batch.bin")):
        pytest.skip(f"CIFAR-10 data not found under {DATA}")


def _model(name: str) -> str:
    os.makedirs(BUILD, exist_ok=True)
    path = os.path.join(BUILD, f"{name}.onnx")
    if not os.path.isfile(path):
        export(name, DATA, path)
    return path


def _images(tmp_path, size: int):
    """N_IMAGES real test images (spread over the classes), resized to the model's input size,
    written as PNG files named img_II_L.png; returns (dir, list of uint8 [3, H, W])."""
    imgs, labels = D.load_cifar_bin(os.path.join(DATA, "cifar10", "test_batch.bin"))
    idx = np.linspace(0, len(imgs) - 1, N_IMAGES).astype(int)
    d = tmp_path / f"imgs{size}"
    d.mkdir()
    out = []
    for k, i in enumerate(idx):
        im = Image.fromarray(imgs[i].transpose(1, 2, 0))
        if size != 32:
            im = im.resize((size, size), Image.BILINEAR)
        p = d / f"img_{k:02d}_{labels[i]}.png"
        im.save(p)
        out.append(D.load_png_chw(str(p)))
    return str(d), out


def _rust(model: str, img_dir: str, fixed: bool):
    cmd = [_binary(), "eval", "--model", model, "--data", img_dir, "--json", "--logits"]
    if fixed:
        cmd.append("--fixed-point")
    res = subprocess.run(cmd, capture_output=True, text=True, timeout=1800)
    assert res.returncode == 0, res.stderr
    lines = [json.loads(line) for line in res.stdout.strip().splitlines()]
    return lines[:-1], lines[-1]


@pytest.mark.parametrize("name", list(ZOO))
def test_float_executor_matches_onnxruntime(name, tmp_path):
    _need_data()
    _binary()
    size = ZOO[name][0]
    path = _model(name)
    img_dir, imgs = _images(tmp_path, size)
    per_image, summary = _rust(path, img_dir, fixed=False)
    assert summary["images"] == len(imgs)
    for row, px in zip(per_image, imgs):
        ref = ort_run(path, D.normalize_chw(px)[None])[0]
        got = np.asarray(row["float"], dtype=np.float64)
        err = np.abs(got - ref).max()
        assert err <= 1e-4 * np.abs(ref).max(), f"{name} image {row['image']}: {err} vs {np.abs(ref).max()}"


@pytest.mark.parametrize("name,opset,keep_bn", [("resnet20", 13, True), ("mobilenetv2_32", 13, False), ("resnet20", 15, False)])
def test_other_opsets_and_unfolded_export(name, opset, keep_bn, tmp_path):
    """Exports at opsets 13 and 15 (the zoo uses 17), with and without BatchNorm nodes."""
    _need_data()
    _binary()
    path = str(tmp_path / f"{name}_{opset}.onnx")
    export(name, DATA, path, keep_bn=keep_bn, opset=opset)
    img_dir, imgs = _images(tmp_path, ZOO[name][0])
    per_image, _ = _rust(path, img_dir, fixed=False)
    for row, px in zip(per_image, imgs):
        ref = ort_run(path, D.normalize_chw(px)[None])[0]
        assert np.abs(np.asarray(row["float"]) - ref).max() <= 1e-4 * np.abs(ref).max()


@pytest.mark.parametrize("name", ["resnet20", "resnet56", "mobilenetv2_32", "resnet18_224"])
def test_fixed_point_executor_matches_numpy_reference(name, tmp_path):
    _need_data()
    _binary()
    size = ZOO[name][0]
    path = _model(name)
    img_dir, imgs = _images(tmp_path, size)
    per_image, summary = _rust(path, img_dir, fixed=True)
    for row, px in zip(per_image, imgs):
        ref = run_fixed(path, D.normalize_chw(px)[None], ell=37, scale=12)
        got = np.asarray(row["fixed"], dtype=np.float64)
        assert np.array_equal(got, ref["output"]), f"{name} image {row['image']}: {got} vs {ref['output']}"
    assert summary["images"] == len(imgs)


def test_pretrained_resnet20_on_lossless_images():
    """The pretrained ResNet-20 classifies all 20 lossless test images correctly (data README)
    in PyTorch, onnxruntime and the committed fixture's expected outputs."""
    _need_data()
    import torch
    from privinfer_models.zoo import load_cifar_resnet

    model = load_cifar_resnet(20, os.path.join(DATA, "resnet-cifar10", "resnet20-12fca82f.th"))
    fixture = os.path.join(REPO, "models", "resnet20.onnx")
    for fname, label, px in D.lossless_images(DATA):
        x = D.normalize_chw(px)[None]
        with torch.no_grad():
            t = model(torch.from_numpy(x)).numpy()[0]
        o = ort_run(fixture, x)[0]
        assert t.argmax() == label and o.argmax() == label, fname
        assert np.abs(t - o).max() <= 1e-4 * np.abs(t).max()


def test_training_smoke_run(tmp_path):
    """One optimisation step of the training script on a few real training images; the
    exported ONNX runs in onnxruntime and keeps the pretrained model's behaviour."""
    _need_data()
    from privinfer_models.train import main

    out = tmp_path / "train"
    main(["--model", "resnet20", "--epochs", "1", "--max-batches", "1", "--batch-size", "20",
          "--lr", "0.001", "--train-limit", "40", "--test-limit", "50", "--out", str(out), "--data", DATA])
    log = json.load(open(out / "train_log.json"))
    assert len(log["epochs"]) == 1 and np.isfinite(log["epochs"][0]["loss"])
    assert log["epochs"][0]["test_accuracy"] > 0.5  # one tiny step keeps the pretrained accuracy
    x = D.normalize_chw(D.load_cifar_bin(os.path.join(DATA, "cifar10", "test_batch.bin"), 1)[0])
    assert ort_run(str(out / "resnet20.onnx"), x).shape == (1, 10)
