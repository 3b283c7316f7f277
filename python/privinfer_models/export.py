"""Export the model zoo to ONNX, and (with --fixtures) regenerate the committed fixtures.

    python -m privinfer_models.export --data ../shared/data --out build/models [--models a,b]
    python -m privinfer_models.export --data ../shared/data --fixtures ../models

ONNX files carry metadata_props: `weights` (pretrained checkpoint, or "random-seeded ..."),
`dataset`, `normalization`, `input_shape`, `source`.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil

import numpy as np
import onnx
import torch

from . import data as D
from .zoo import ZOO

OPSET = 17


def calibrate_bn(model: torch.nn.Module, size: int, data_dir: str, n: int = 32) -> None:
    """Sets BatchNorm running statistics of a randomly initialised model from n real CIFAR-10
    test images (resized to size x size), so activations have realistic ranges."""
    imgs, _ = D.load_cifar_bin(os.path.join(data_dir, "cifar10", "test_batch.bin"))
    idx = np.random.default_rng(0).choice(len(imgs), n, replace=False)
    x = torch.from_numpy(D.normalize_chw(imgs[idx]))
    if size != 32:
        x = torch.nn.functional.interpolate(x, size=(size, size), mode="bilinear", align_corners=False)
    bns = [m for m in model.modules() if isinstance(m, torch.nn.BatchNorm2d)]
    if not bns:
        return
    for m in bns:
        m.reset_running_stats()
        m.momentum = None  # cumulative average over the calibration batches
    model.train()
    with torch.no_grad():
        for chunk in x.split(8):
            model(chunk)
    model.eval()


def build(name: str, data_dir: str):
    size, builder = ZOO[name]
    model, weights = builder(data_dir)
    if weights.startswith("random"):
        calibrate_bn(model, size, data_dir)
    return model.eval(), size, weights


def export(name: str, data_dir: str, path: str, keep_bn: bool = False, opset: int = OPSET) -> str:
    """Exports zoo model `name` to `path` (static batch-1 shape). With keep_bn the
    BatchNormalization nodes stay in the graph (the importer folds them)."""
    model, size, weights = build(name, data_dir)
    x = torch.zeros(1, 3, size, size)
    mode = torch.onnx.TrainingMode.PRESERVE if keep_bn else torch.onnx.TrainingMode.EVAL
    torch.onnx.export(
        model, x, path, opset_version=opset, input_names=["input"], output_names=["logits"],
        training=mode, do_constant_folding=True,
    )
    dataset = "CIFAR-10" if name.startswith(("resnet20", "resnet32", "resnet44", "resnet56")) or size == 32 else "ImageNet-shaped"
    return set_metadata(path, name, weights, dataset, size, "privinfer python/privinfer_models (torch %s, opset %d)" % (torch.__version__, opset))


def set_metadata(path: str, name: str, weights: str, dataset: str, size: int, source: str) -> str:
    """Replaces the metadata_props of the ONNX file at `path` (name, weights, dataset,
    normalization, input shape, source), names its graph, checks and saves it."""
    m = onnx.load(path)
    meta = {
        "name": name,
        "weights": weights,
        "dataset": dataset,
        "normalization": "pixels/255, mean (0.485, 0.456, 0.406), std (0.229, 0.224, 0.225)",
        "input_shape": f"1x3x{size}x{size}",
        "source": source,
    }
    del m.metadata_props[:]
    for k, v in meta.items():
        p = m.metadata_props.add()
        p.key, p.value = k, v
    m.graph.name = name
    onnx.checker.check_model(m)
    onnx.save(m, path)
    return path


def ort_run(path: str, x: np.ndarray, optimize: bool = True) -> np.ndarray:
    import onnxruntime as ort

    so = ort.SessionOptions()
    so.intra_op_num_threads = 1
    if not optimize:
        so.graph_optimization_level = ort.GraphOptimizationLevel.ORT_DISABLE_ALL
    sess = ort.InferenceSession(path, so, providers=["CPUExecutionProvider"])
    return sess.run(None, {sess.get_inputs()[0].name: x.astype(np.float32)})[0]


def write_fixtures(data_dir: str, out_dir: str) -> None:
    """models/: resnet20.onnx (BN kept, folded at import), the 20 lossless sample PNGs and
    resnet20_expected.json with onnxruntime float logits and the fixed-point (l=37, s=12)
    logits of the independent numpy reference (fixedpoint.py)."""
    from .fixedpoint import run_fixed

    os.makedirs(os.path.join(out_dir, "samples"), exist_ok=True)
    onnx_path = export("resnet20", data_dir, os.path.join(out_dir, "resnet20.onnx"), keep_bn=True)
    entries = []
    for fname, label, px in D.lossless_images(data_dir):
        shutil.copyfile(os.path.join(data_dir, "cifar10", "lossless", fname), os.path.join(out_dir, "samples", fname))
        x = D.normalize_chw(px)[None]
        logits = ort_run(onnx_path, x)[0]
        fixed = run_fixed(onnx_path, x, ell=37, scale=12)
        entries.append({
            "file": f"samples/{fname}",
            "label": label,
            "float": [float(v) for v in logits],
            "fixed_q": [int(v) for v in fixed["output_q"]],
            "fixed_overflows": int(fixed["overflows"]),
        })
    with open(os.path.join(out_dir, "resnet20_expected.json"), "w") as f:
        json.dump({
            "model": "resnet20.onnx",
            "float_source": "onnxruntime (CPU, float32)",
            "fixed_source": "python/privinfer_models/fixedpoint.py (numpy int64, docs/fixed-point.md)",
            "ell": 37,
            "scale": 12,
            "images": entries,
        }, f, indent=1)


def _export_fixture(model, shape, out_dir: str, name: str) -> str:
    """models/tiny/<name>.onnx from a seeded model, marked as a test fixture."""
    path = os.path.join(out_dir, f"{name}.onnx")
    torch.onnx.export(model, torch.zeros(shape), path, opset_version=OPSET, input_names=["input"],
                      output_names=["logits"], training=torch.onnx.TrainingMode.PRESERVE)
    m = onnx.load(path)
    p = m.metadata_props.add()
    p.key, p.value = "weights", "random-seeded (seed 0); test fixture"
    onnx.save(m, path)
    return path


def write_tiny_fixtures(out_dir: str, n: int = 3) -> None:
    """models/tiny/: tiny_cnn, tiny_vit, tiny_fhe(_relu), tiny_te_vit and tiny_fhe_proj (BN kept), n seeded random inputs each and
    tiny_expected.json with onnxruntime outputs (both) and numpy fixed-point outputs (CNN)."""
    from .fixedpoint import run_fixed
    from .tiny import tiny_cnn, tiny_fhe, tiny_fhe_proj, tiny_te_vit, tiny_vit

    os.makedirs(out_dir, exist_ok=True)
    rng = np.random.default_rng(1)
    res = {"ell": 37, "scale": 12, "models": {}}
    for name, model, shape, fixed in [("tiny_cnn", tiny_cnn(), (1, 3, 16, 16), True),
                                      ("tiny_vit", tiny_vit(), (1, 3, 8, 8), False),
                                      ("tiny_fhe", tiny_fhe(), (1, 3, 8, 8), False),
                                      ("tiny_fhe_relu", tiny_fhe(relu=True), (1, 3, 8, 8), False),
                                      ("tiny_te_vit", tiny_te_vit(), (1, 3, 8, 8), False),
                                      ("tiny_fhe_proj", tiny_fhe_proj(), (1, 3, 16, 16), False)]:
        path = _export_fixture(model, shape, out_dir, name)
        cases = []
        for _ in range(n):
            x = rng.standard_normal(shape).astype(np.float32)
            case = {"input": [float(v) for v in x.reshape(-1)],
                    "float": [float(v) for v in ort_run(path, x).reshape(-1)]}
            if fixed:
                f = run_fixed(path, x, ell=37, scale=12)
                case["fixed_q"] = [int(v) for v in f["output_q"]]
                case["fixed_overflows"] = int(f["overflows"])
            cases.append(case)
        res["models"][name] = {"file": f"{name}.onnx", "input_shape": list(shape), "cases": cases}
    with open(os.path.join(out_dir, "tiny_expected.json"), "w") as f:
        json.dump(res, f)


def add_tiny_fixture(out_dir: str, name: str, n: int = 3) -> None:
    """Adds one tiny model to models/tiny/ and its cases to tiny_expected.json, leaving the other
    fixtures as they are (their files and cases are what the tests were written against)."""
    from . import tiny

    shapes = {"tiny_fhe_bands": (1, 3, 24, 24)}
    shape = shapes[name]
    model = getattr(tiny, name)()
    path = _export_fixture(model, shape, out_dir, name)
    rng = np.random.default_rng(2)
    cases = []
    for _ in range(n):
        x = rng.standard_normal(shape).astype(np.float32)
        # onnxruntime 1.20's graph optimizer fuses an explicit zero Pad into the next
        # AveragePool without counting the padding in the divisor (PyTorch's export of a padded
        # AvgPool2d): the unoptimized graph is the ONNX semantics, checked against PyTorch.
        y = ort_run(path, x, optimize=False)
        with torch.no_grad():
            t = model(torch.from_numpy(x)).numpy()
        assert np.abs(y - t).max() < 1e-5, np.abs(y - t).max()
        cases.append({"input": [float(v) for v in x.reshape(-1)],
                      "float": [float(v) for v in y.reshape(-1)]})
    exp = os.path.join(out_dir, "tiny_expected.json")
    with open(exp) as f:
        res = json.load(f)
    res["models"][name] = {"file": f"{name}.onnx", "input_shape": list(shape), "cases": cases}
    with open(exp, "w") as f:
        json.dump(res, f)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--data", default=os.path.join(os.path.dirname(__file__), "..", "..", "..", "shared", "data"))
    ap.add_argument("--out", default=os.path.join(os.path.dirname(__file__), "..", "build", "models"))
    ap.add_argument("--models", default="all", help="comma-separated zoo names, or 'all'")
    ap.add_argument("--fixtures", help="write the committed fixtures into this directory instead")
    ap.add_argument("--add-tiny", help="add this one tiny fixture to models/tiny/ (keeping the others)")
    a = ap.parse_args()
    torch.set_num_threads(max(1, os.cpu_count() or 1))
    if a.add_tiny:
        add_tiny_fixture(os.path.join(os.path.dirname(__file__), "..", "..", "models", "tiny"), a.add_tiny)
        return
    if a.fixtures:
        write_fixtures(a.data, a.fixtures)
        write_tiny_fixtures(os.path.join(a.fixtures, "tiny"))
        return
    os.makedirs(a.out, exist_ok=True)
    names = list(ZOO) if a.models == "all" else a.models.split(",")
    for n in names:
        p = export(n, a.data, os.path.join(a.out, f"{n}.onnx"))
        print(f"{n}: {p} ({os.path.getsize(p) / 1e6:.1f} MB)")


if __name__ == "__main__":
    main()
