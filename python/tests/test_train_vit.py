"""A smoke run of the ViT trainer: a few batches, a saved state_dict, and an export whose graph
has the op set the privinfer importer reads (that of models/tiny/tiny_vit.onnx) and whose outputs
match the PyTorch model (onnxruntime)."""

import collections
import os

import numpy as np
import onnx
from onnx import numpy_helper
import pytest
import torch

from privinfer_models import train_vit
from privinfer_models.export import ort_run

HERE = os.path.dirname(__file__)
REPO = os.path.abspath(os.path.join(HERE, "..", ".."))
DATA = os.environ.get("PRIVINFER_DATA", os.path.join(REPO, "..", "shared", "data"))


@pytest.mark.skipif(not os.path.isfile(os.path.join(DATA, "cifar10", "train_jpeg.tar.gz")), reason="no CIFAR-10 data")
def test_train_vit_smoke(tmp_path):
    out = tmp_path / "vit"
    train_vit.main(["--data", DATA, "--out", str(out), "--epochs", "1", "--max-batches", "2", "--batch-size", "16",
                    "--train-limit", "100", "--test-limit", "20"])
    path = out / "vit_cifar10.onnx"
    assert (out / "vit_cifar10.pt").is_file() and path.is_file()
    ops = lambda p: set(n.op_type for n in onnx.load(str(p)).graph.node) - {"Identity", "Constant"}
    assert ops(path) == ops(os.path.join(REPO, "models", "tiny", "tiny_vit.onnx"))
    model = train_vit.build(type("A", (), {"patch": 4, "dim": 128, "depth": 6, "heads": 4, "mlp": 256})())
    model.load_state_dict(torch.load(out / "vit_cifar10.pt"))
    x = np.random.default_rng(0).normal(size=(1, 3, 32, 32)).astype(np.float32)
    want = model.eval()(torch.from_numpy(x)).detach().numpy()
    assert np.allclose(ort_run(str(path), x), want, atol=1e-4)
    # A training batch and the export path agree on the same image.
    xb = torch.from_numpy(np.concatenate([x, x]))
    assert np.allclose(model(xb).detach().numpy()[0], want[0], atol=1e-5)
    assert os.path.getsize(path) <= 4 << 20


def test_seeded_export_is_deterministic(tmp_path):
    """`--seeded` exports the untrained model with weights drawn from the seed: the same seed
    gives the same graph and weights, another seed other weights, and the export matches the
    PyTorch model built from the same seed."""
    args = ["--seeded", "--patch", "8", "--dim", "32", "--depth", "1", "--heads", "2", "--mlp", "64"]
    paths = []
    for run, seed in [("a", "3"), ("b", "3"), ("c", "4")]:
        out = tmp_path / run
        train_vit.main(args + ["--seed", seed, "--out", str(out)])
        paths.append(out / "vit_cifar10_seeded.onnx")
    init = lambda p: [numpy_helper.to_array(t) for t in onnx.load(str(p)).graph.initializer]
    a, b, c = (init(p) for p in paths)
    assert all(np.array_equal(x, y) for x, y in zip(a, b))
    assert any(not np.array_equal(x, y) for x, y in zip(a, c))
    torch.manual_seed(3)
    model = train_vit.build(type("A", (), {"patch": 8, "dim": 32, "depth": 1, "heads": 2, "mlp": 64})()).eval()
    x = np.random.default_rng(1).normal(size=(1, 3, 32, 32)).astype(np.float32)
    assert np.allclose(ort_run(str(paths[0]), x), model(torch.from_numpy(x)).detach().numpy(), atol=1e-4)
