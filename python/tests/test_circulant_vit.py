"""The circulant ViT toolkit (privinfer_models.circulant_vit): the dense weights read back from
an export equal the model's, folding the LayerNorms changes no output, the projected layers are
exactly block-circulant, and a smoke run exports a model whose linear weights are
block-circulant with identity LayerNorms and match torch under onnxruntime."""

import json
import os

import numpy as np
import pytest
import torch

from privinfer_models import circulant_vit as cv
from privinfer_models.circulant import CirLinear, is_block_circulant
from privinfer_models.export import ort_run
from privinfer_models.train_vit import export
from privinfer_models.zoo import ViT

HERE = os.path.dirname(__file__)
REPO = os.path.abspath(os.path.join(HERE, "..", ".."))
DATA = os.environ.get("PRIVINFER_DATA", os.path.join(REPO, "..", "shared", "data"))
SHAPE = dict(patch=8, dim=32, depth=2, heads=2, mlp=64)


def small_vit(tmp_path, seed=0):
    torch.manual_seed(seed)
    model = ViT(image=32, num_classes=10, **SHAPE).eval()
    with torch.no_grad():  # non-trivial LayerNorm affines, as after training
        for blk in model.blocks:
            for ln in (blk.ln1, blk.ln2):
                ln.weight.uniform_(0.5, 1.5)
                ln.bias.uniform_(-0.3, 0.3)
    path = str(tmp_path / "vit.onnx")
    export(model, path, "test")
    return model, path


def test_weights_load_back_and_folding_keeps_the_function(tmp_path):
    model, path = small_vit(tmp_path)
    loaded = cv.load_onnx_vit(path, *SHAPE.values())
    for (k, a), (_, b) in zip(model.state_dict().items(), loaded.state_dict().items()):
        assert torch.equal(a, b), k
    x = torch.randn(4, 3, 32, 32)
    with torch.no_grad():
        want = model(x)
        cv.fold_layernorms(loaded)
        got = loaded(x)
    assert torch.allclose(got, want, atol=1e-5)
    for blk in loaded.blocks:
        assert torch.equal(blk.ln1.weight, torch.ones(32)) and not blk.ln1.weight.requires_grad
        assert torch.equal(blk.ln2.bias, torch.zeros(32)) and not blk.ln2.bias.requires_grad
    paths = cv.make_circulant(loaded, 8)
    assert len(paths) == 2 * len(cv.LINEARS)
    for p in paths:
        m = cv.get(loaded, p)
        assert isinstance(m, CirLinear) and is_block_circulant(m.weight().detach(), 8)
    with pytest.raises(ValueError):
        cv.load_onnx_vit(path, 8, 64, 2, 2, 64)


@pytest.mark.skipif(not os.path.isfile(os.path.join(DATA, "cifar10", "train_jpeg.tar.gz")), reason="no CIFAR-10 data")
def test_smoke_run_exports_a_block_circulant_vit(tmp_path):
    _, path = small_vit(tmp_path)
    out = tmp_path / "circ"
    cv.main(["--onnx", path, *sum([[f"--{k}", str(v)] for k, v in SHAPE.items()], []), "--block", "4",
             "--epochs", "1", "--max-batches", "2", "--batch-size", "16", "--train-limit", "64",
             "--test-limit", "20", "--data", DATA, "--out", str(out)])
    log = json.load(open(out / "train_log.json"))
    assert log["export"]["circulant_matmuls"] == 2 * len(cv.LINEARS)
    assert log["export"]["ort_max_abs_diff"] < 1e-4
    x = np.random.default_rng(1).normal(size=(1, 3, 32, 32)).astype(np.float32)
    assert ort_run(str(out / (cv.NAME + ".onnx")), x).shape == (1, 10)
