"""PrivCirNet's ViT: the zoo's trained ViT with block-circulant q/k/v, projection and MLP layers,
fine-tuned by distillation from the dense model (docs/protocols/privcirnet.md § The circulant
ViT).

    # the two runs that made models/vit_cifar10_circulant.onnx (models/README.md)
    python -m privinfer_models.circulant_vit --onnx ../models/vit_cifar10.onnx --block 4 \\
        --epochs 8 --time-budget 1200 --out build/circulant/vit_b4
    python -m privinfer_models.circulant_vit --onnx ../models/vit_cifar10.onnx --block 4 \\
        --student build/circulant/vit_b4/vit_cifar10_circulant.onnx --epochs 8 --lr 3e-4 \\
        --time-budget 960 --out build/circulant/vit_b4_more
    # projection only (no training: a cost benchmark of the structure)
    python -m privinfer_models.circulant_vit --onnx ../models/vit_cifar10.onnx --block 8 \\
        --epochs 0 --out build/circulant/vit_b8_proj

1. The dense model's weights are read from its ONNX export (`train_vit`'s graph: initializers
   named after the torch parameters, the token × weight products as MatMul nodes named
   `/blocks/blocks.<i>/<path>/MatMul` whose weight is Wᵀ) and checked against onnxruntime.
2. Each LayerNorm's γ and β are folded into the linear layers that read it (q, k, v after ln1;
   fc1 after ln2): W' = W·diag(γ), b' = b + W·β, and the LayerNorm becomes the identity-affine
   one, frozen. `nn` folds γ into the readers' weights at import, which would break their
   circulant blocks (γ differs within a block); folded first, the trained layer is the one the
   protocol sees, as the CNN toolkit trains the BN-folded convolution.
3. q, k, v, proj, fc1 and fc2 of every block become block-circulant (`CirLinear`, row 0 of each
   b×b block; the projection keeps the mean of every wrapped diagonal). The patch embedding (a
   3-channel input) and the 10-class head stay dense.
4. Fine-tuning: AdamW, cosine learning rate, random crop and flip, loss 0.9 · KL(teacher ‖
   student) at temperature 4 + 0.1 · cross-entropy, the folded dense model as the teacher.
5. Export through the zoo's batch-1 graph with the expanded weights: `nn` finds b in them
   (`linear::circulant::detect_block`), so no metadata is needed; the export is checked to be
   exactly block-circulant with identity LayerNorms and to match torch under onnxruntime.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import time

import numpy as np
import onnx
import torch
import torch.nn as nn
import torch.nn.functional as F
from onnx import numpy_helper

from . import data as D
from .circulant import CirLinear, is_block_circulant
from .export import ort_run
from .train import DEFAULT_DATA, load_train
from .train_vit import augment, evaluate, export
from .zoo import ViT

NAME = "vit_cifar10_circulant"
LINEARS = ("attn.q", "attn.k", "attn.v", "attn.proj", "fc1", "fc2")


def get(module: nn.Module, path: str) -> nn.Module:
    for p in path.split("."):
        module = getattr(module, p)
    return module


def put(module: nn.Module, path: str, new: nn.Module) -> None:
    *head, last = path.split(".")
    for p in head:
        module = getattr(module, p)
    setattr(module, last, new)


def load_onnx_vit(path: str, patch: int, dim: int, depth: int, heads: int, mlp: int) -> ViT:
    """The zoo ViT with the weights of `train_vit`'s export at `path`."""
    m = onnx.load(path)
    init = {i.name: torch.from_numpy(numpy_helper.to_array(i).copy()) for i in m.graph.initializer}
    # The exporter shares identical initializers (e.g. untrained γ = 1) through Identity nodes.
    for n in m.graph.node:
        if n.op_type == "Identity" and n.input[0] in init:
            init[n.output[0]] = init[n.input[0]]
    model = ViT(image=32, patch=patch, dim=dim, depth=depth, heads=heads, mlp=mlp, num_classes=10)
    state = model.state_dict()
    for n in m.graph.node:
        # "/blocks/blocks.0/attn/q/MatMul" -> "blocks.0.attn.q"; "/ln/LayerNormalization" -> "ln"
        mod = ".".join(n.name.strip("/").split("/")[:-1])
        mod = mod[len("blocks."):] if mod.startswith("blocks.blocks.") else mod
        if n.op_type == "MatMul" and n.input[1] in init:
            if mod + ".weight" not in state:
                raise ValueError(f"{path}: MatMul {n.name!r} has no parameter {mod}.weight")
            init[mod + ".weight"] = init[n.input[1]].t().contiguous()
        elif n.op_type == "LayerNormalization":
            init[mod + ".weight"], init[mod + ".bias"] = init[n.input[1]], init[n.input[2]]
    missing = [k for k in state if k not in init]
    if missing:
        raise ValueError(f"{path}: no weights for {missing[:4]} (not a train_vit export of this shape?)")
    wrong = [k for k in state if tuple(init[k].shape) != tuple(state[k].shape)]
    if wrong:
        raise ValueError(f"{path}: {wrong[0]} is {tuple(init[wrong[0]].shape)}, the ViT of these shape "
                         f"flags has {tuple(state[wrong[0]].shape)}")
    model.load_state_dict({k: init[k] for k in state})
    return model.eval()


@torch.no_grad()
def fold_layernorms(model: ViT) -> None:
    """γ, β of ln1 into q, k, v and of ln2 into fc1 (module docs, step 2); the LayerNorms become
    identity-affine and frozen."""
    for blk in model.blocks:
        for ln, readers in ((blk.ln1, (blk.attn.q, blk.attn.k, blk.attn.v)), (blk.ln2, (blk.fc1,))):
            g, b = ln.weight.clone(), ln.bias.clone()
            for fc in readers:
                fc.bias.add_(fc.weight @ b)
                fc.weight.mul_(g[None, :])
            ln.weight.fill_(1.0)
            ln.bias.zero_()
            ln.weight.requires_grad_(False)
            ln.bias.requires_grad_(False)


def make_circulant(model: ViT, b: int) -> list[str]:
    paths = []
    for i, blk in enumerate(model.blocks):
        for p in LINEARS:
            fc = get(blk, p)
            if fc.in_features % b == 0 and fc.out_features % b == 0:
                put(blk, p, CirLinear(fc, b))
                paths.append(f"blocks.{i}.{p}")
    return paths


def to_dense(model: ViT) -> ViT:
    for blk in model.blocks:
        for p in LINEARS:
            m = get(blk, p)
            if isinstance(m, CirLinear):
                put(blk, p, m.to_dense())
    return model


def distill_loss(s, t, y, temp: float = 4.0, alpha: float = 0.9):
    kd = F.kl_div(F.log_softmax(s / temp, 1), F.softmax(t / temp, 1), reduction="batchmean") * temp * temp
    return alpha * kd + (1 - alpha) * F.cross_entropy(s, y)


def check_export(path: str, model: ViT, b: int, x: torch.Tensor) -> dict:
    """The export's linear weights are exactly block-circulant, its LayerNorms in the blocks
    identity-affine, and onnxruntime matches torch."""
    m = onnx.load(path)
    init = {i.name: numpy_helper.to_array(i) for i in m.graph.initializer}
    circ = 0
    for n in m.graph.node:
        if n.op_type == "MatMul" and n.input[1] in init and "/blocks/" in n.name:
            w = torch.from_numpy(init[n.input[1]].T.copy())
            if not is_block_circulant(w, b):
                raise AssertionError(f"{path}: {n.name} is not {b}-circulant")
            circ += 1
    for k, v in init.items():
        if k.startswith("blocks.") and (".ln1." in k or ".ln2." in k):
            want = 1.0 if k.endswith("weight") else 0.0
            if not np.all(v == want):
                raise AssertionError(f"{path}: {k} is not identity-affine")
    with torch.no_grad():
        ref = torch.cat([model(x[i:i + 1]) for i in range(len(x))]).numpy()
    got = np.concatenate([ort_run(path, x[i:i + 1].numpy()) for i in range(len(x))])
    return {"circulant_matmuls": circ, "ort_max_abs_diff": float(np.abs(got - ref).max())}


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--onnx", required=True, help="the dense ViT (train_vit's export)")
    ap.add_argument("--patch", type=int, default=8)
    ap.add_argument("--dim", type=int, default=64)
    ap.add_argument("--depth", type=int, default=4)
    ap.add_argument("--heads", type=int, default=4)
    ap.add_argument("--mlp", type=int, default=128)
    ap.add_argument("--block", type=int, default=4, help="b of every q/k/v/proj/fc1/fc2 (a power of two)")
    ap.add_argument("--student", help="continue from this export of an earlier run instead of projecting --onnx")
    ap.add_argument("--data", default=DEFAULT_DATA)
    ap.add_argument("--out", required=True)
    ap.add_argument("--epochs", type=int, default=8, help="0: project and export only")
    ap.add_argument("--batch-size", type=int, default=128)
    ap.add_argument("--lr", type=float, default=5e-4)
    ap.add_argument("--max-batches", type=int)
    ap.add_argument("--time-budget", type=float, help="seconds of fine-tuning: stop after the epoch that passes it")
    ap.add_argument("--train-limit", type=int)
    ap.add_argument("--test-limit", type=int)
    ap.add_argument("--seed", type=int, default=0)
    a = ap.parse_args(argv)
    if a.block < 2 or a.block & (a.block - 1):
        ap.error(f"--block {a.block}: expected a power of two ≥ 2")
    os.makedirs(a.out, exist_ok=True)
    torch.manual_seed(a.seed)
    shape = (a.patch, a.dim, a.depth, a.heads, a.mlp)
    try:
        teacher = load_onnx_vit(a.onnx, *shape)
    except (OSError, ValueError) as e:
        raise SystemExit(f"circulant_vit: {e}")
    xte, yte = D.load_cifar_bin(os.path.join(a.data, "cifar10", "test_batch.bin"))
    if a.test_limit:
        pick = np.linspace(0, len(xte) - 1, a.test_limit).astype(int)
        xte, yte = xte[pick], yte[pick]
    xte_t, yte_t = torch.from_numpy(D.normalize_chw(xte)), torch.from_numpy(yte)
    probe = xte_t[:8]
    with torch.no_grad():
        ort = np.concatenate([ort_run(a.onnx, probe[i:i + 1].numpy()) for i in range(len(probe))])
        diff = float(np.abs(ort - teacher(probe).numpy()).max())
    if diff > 1e-3:
        raise SystemExit(f"{a.onnx}: torch and onnxruntime differ by {diff:.2e}: wrong shape flags?")
    fold_layernorms(teacher)
    log = {"onnx": a.onnx, "student": a.student, "block": a.block, "dense_accuracy": evaluate(teacher, xte_t, yte_t),
           "epochs": []}
    try:
        student = load_onnx_vit(a.student or a.onnx, *shape)
    except (OSError, ValueError) as e:
        raise SystemExit(f"circulant_vit: {e}")
    fold_layernorms(student)
    log["layers"] = make_circulant(student, a.block)
    log["projected_accuracy"] = evaluate(student, xte_t, yte_t)
    print(f"dense {100 * log['dense_accuracy']:.2f} %, projected b={a.block} "
          f"{100 * log['projected_accuracy']:.2f} % ({len(log['layers'])} layers)", flush=True)
    if a.epochs > 0:
        cache = os.path.join(os.path.dirname(os.path.abspath(a.out)), "cifar10_train_uint8.npz")
        xtr, ytr = load_train(a.data, cache, a.train_limit)
        xtr_t, ytr_t = torch.from_numpy(D.normalize_chw(xtr)), torch.from_numpy(ytr)
        params = [p for p in student.parameters() if p.requires_grad]
        opt = torch.optim.AdamW(params, lr=a.lr, weight_decay=0.0)
        steps = -(-len(xtr) // a.batch_size)
        if a.max_batches:
            steps = min(steps, a.max_batches)
        total, gen, t0, step = a.epochs * steps, torch.Generator().manual_seed(a.seed), time.time(), 0
        for epoch in range(a.epochs):
            student.train()
            perm = torch.randperm(len(xtr), generator=gen)
            loss_sum = 0.0
            for k in range(steps):
                idx = perm[k * a.batch_size:(k + 1) * a.batch_size]
                x, y = augment(xtr_t[idx], gen), ytr_t[idx]
                for g in opt.param_groups:
                    g["lr"] = a.lr * 0.5 * (1 + math.cos(math.pi * step / total))
                with torch.no_grad():
                    t = teacher(x)
                loss = distill_loss(student(x), t, y)
                opt.zero_grad(set_to_none=True)
                loss.backward()
                opt.step()
                loss_sum += float(loss)
                step += 1
            acc = evaluate(student, xte_t, yte_t)
            log["epochs"].append({"epoch": epoch + 1, "loss": loss_sum / steps, "test_accuracy": acc,
                                  "seconds": time.time() - t0})
            print(f"epoch {epoch + 1}: loss {loss_sum / steps:.4f} test {100 * acc:.2f} % "
                  f"({time.time() - t0:.0f} s)", flush=True)
            with open(os.path.join(a.out, "train_log.json"), "w") as f:
                json.dump(log, f, indent=1)
            if a.time_budget and time.time() - t0 > a.time_budget:
                break
    student = to_dense(student.eval())
    path = os.path.join(a.out, NAME + ".onnx")
    trained = (f"fine-tuned {len(log['epochs'])} epochs by distillation" if log["epochs"]
               else "projected, not fine-tuned (a cost benchmark)")
    if a.student:
        trained += f" after {os.path.basename(a.student)}"
    note = (f"{os.path.basename(a.onnx)} with LayerNorms folded and q/k/v/proj/fc1/fc2 "
            f"block-circulant (b = {a.block}), {trained}")
    export(student, path, note, NAME, "circulant_vit.py")
    log["final_accuracy"] = evaluate(student, xte_t, yte_t)
    log["export"] = check_export(path, student, a.block, probe)
    with open(os.path.join(a.out, "train_log.json"), "w") as f:
        json.dump(log, f, indent=1)
    print(json.dumps({k: log[k] for k in ("dense_accuracy", "projected_accuracy", "final_accuracy", "export")}))
    print("exported", path)


if __name__ == "__main__":
    main()
