"""Train or fine-tune a zoo model on CIFAR-10 (train_jpeg.tar.gz), evaluate on the binary test
file, save the weights and export ONNX.

    # fine-tune the pretrained ResNet-20 for 5 epochs
    python -m privinfer_models.train --model resnet20 --epochs 5 --lr 0.01 --out build/train/r20
    # train MobileNetV2 (CIFAR variant) from scratch
    python -m privinfer_models.train --model mobilenetv2_32 --epochs 200 --lr 0.1 --out build/train/mnv2
    # smoke run: one batch of 32 images
    python -m privinfer_models.train --model resnet20 --epochs 1 --max-batches 1 --batch-size 32 \
        --train-limit 256 --test-limit 64 --out /tmp/smoke

Standard CIFAR recipe: random crop 32 with 4-pixel zero padding, horizontal flip, SGD with
Nesterov momentum 0.9, weight decay 5e-4, cosine learning-rate schedule, cross-entropy with
optional label smoothing. Uses CUDA when available. Inputs are normalized exactly as the Rust
loader does (mean/std in data.py). The decoded training set is cached as a .npy file next to
the output so later runs skip JPEG decoding.

Block-circulant (PrivCirNet) and Winograd-aware (CoPriv) training reuse this loop through
`--init-checkpoint` and by replacing modules in the zoo model before training.
"""

from __future__ import annotations

import argparse
import json
import os
import time

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F

from . import data as D
from .export import OPSET
from .zoo import ZOO

DEFAULT_DATA = os.path.join(os.path.dirname(__file__), "..", "..", "..", "shared", "data")


def load_train(data_dir: str, cache: str | None, limit: int | None):
    """All training images (or `limit` of them, balanced over the classes) as uint8
    [N, 3, 32, 32] and int64 labels."""
    if cache and limit is None and os.path.isfile(cache):
        z = np.load(cache)
        return z["x"], z["y"]
    xs, ys = [], []
    per_class = None if limit is None else -(-limit // len(D.CLASSES))
    for x, y in D.iter_train_jpeg(os.path.join(data_dir, "cifar10", "train_jpeg.tar.gz"), per_class):
        xs.append(x)
        ys.append(y)
    x, y = np.stack(xs), np.asarray(ys, dtype=np.int64)
    if cache and limit is None:
        os.makedirs(os.path.dirname(cache) or ".", exist_ok=True)
        np.savez(cache, x=x, y=y)
    return x, y


def augment(x: torch.Tensor, gen: torch.Generator) -> torch.Tensor:
    """Random 32x32 crop of the 4-pixel zero-padded batch and random horizontal flip
    (padding with zeros after normalization, as is standard)."""
    n = x.shape[0]
    padded = F.pad(x, (4, 4, 4, 4))
    i = torch.randint(0, 9, (n,), generator=gen)
    j = torch.randint(0, 9, (n,), generator=gen)
    rows = (i[:, None] + torch.arange(32)[None, :])  # [n, 32]
    cols = (j[:, None] + torch.arange(32)[None, :])
    out = padded[torch.arange(n)[:, None, None, None], torch.arange(3)[None, :, None, None],
                 rows[:, None, :, None], cols[:, None, None, :]]
    flip = torch.rand(n, generator=gen) < 0.5
    out[flip] = out[flip].flip(-1)
    return out


def run_logger(out: str):
    """Creates `out` and returns log(msg): printed and appended to out/log.txt."""
    os.makedirs(out, exist_ok=True)
    logf = open(os.path.join(out, "log.txt"), "a")

    def log(msg):
        print(msg, flush=True)
        logf.write(msg + "\n")
        logf.flush()

    return log


def cifar_splits(data_dir: str, out: str, test_limit: int | None):
    """All training images as normalized tensors with their labels (cached next to `out`), and
    the test set as uint8 with labels (or `test_limit` images spread over it)."""
    cache = os.path.join(os.path.dirname(os.path.abspath(out)), "cifar10_train_uint8.npz")
    xtr, ytr = load_train(data_dir, cache, None)
    xte, yte = D.load_cifar_bin(os.path.join(data_dir, "cifar10", "test_batch.bin"))
    if test_limit:
        pick = np.linspace(0, len(xte) - 1, test_limit).astype(int)
        xte, yte = xte[pick], yte[pick]
    return torch.from_numpy(D.normalize_chw(xtr)), torch.from_numpy(ytr), xte, yte


def frozen_pretrained(name: str, data_dir: str):
    """The pretrained zoo model `name` in eval mode with its parameters frozen (a distillation
    teacher or a reference), and the name of its weights."""
    model, weights = ZOO[name][1](data_dir)
    model.eval()
    for p in model.parameters():
        p.requires_grad_(False)
    return model, weights


@torch.no_grad()
def evaluate(model: nn.Module, x: np.ndarray, y: np.ndarray, device, batch: int = 500) -> float:
    model.eval()
    correct = 0
    for k in range(0, len(x), batch):
        xb = torch.from_numpy(D.normalize_chw(x[k:k + batch])).to(device)
        correct += (model(xb).argmax(1).cpu().numpy() == y[k:k + batch]).sum()
    return float(correct) / len(x)


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", default="resnet20", help="CIFAR-sized zoo model: " + ", ".join(n for n, (s, _) in ZOO.items() if s == 32))
    ap.add_argument("--data", default=DEFAULT_DATA)
    ap.add_argument("--out", required=True, help="output directory (weights, ONNX, log)")
    ap.add_argument("--init-checkpoint", help="state_dict (.pt) to start from instead of the zoo weights")
    ap.add_argument("--epochs", type=int, default=1)
    ap.add_argument("--batch-size", type=int, default=128)
    ap.add_argument("--lr", type=float, default=0.1)
    ap.add_argument("--weight-decay", type=float, default=5e-4)
    ap.add_argument("--label-smoothing", type=float, default=0.0)
    ap.add_argument("--max-batches", type=int, help="stop each epoch after this many batches (smoke runs)")
    ap.add_argument("--train-limit", type=int, help="use only N training images (balanced over the classes)")
    ap.add_argument("--test-limit", type=int, help="evaluate on N test images (spread over the classes)")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--no-export", action="store_true")
    a = ap.parse_args(argv)

    size, builder = ZOO[a.model]
    if size != 32:
        ap.error(f"{a.model} takes {size}x{size} inputs; CIFAR-10 training needs a 32x32 model")
    torch.manual_seed(a.seed)
    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    model, weights = builder(a.data)
    if a.init_checkpoint:
        model.load_state_dict(torch.load(a.init_checkpoint, map_location="cpu"))
        weights = f"fine-tuned from {a.init_checkpoint}"
    model.to(device)

    os.makedirs(a.out, exist_ok=True)
    cache = os.path.join(os.path.dirname(os.path.abspath(a.out)), "cifar10_train_uint8.npz")
    xtr, ytr = load_train(a.data, cache, a.train_limit)
    xte, yte = D.load_cifar_bin(os.path.join(a.data, "cifar10", "test_batch.bin"))
    if a.test_limit:
        # The test file is grouped by class: take evenly spaced images.
        pick = np.linspace(0, len(xte) - 1, a.test_limit).astype(int)
        xte, yte = xte[pick], yte[pick]
    print(f"train {len(xtr)} images, test {len(xte)} images, device {device}")

    opt = torch.optim.SGD(model.parameters(), lr=a.lr, momentum=0.9, nesterov=True, weight_decay=a.weight_decay)
    steps_per_epoch = -(-len(xtr) // a.batch_size)
    if a.max_batches:
        steps_per_epoch = min(steps_per_epoch, a.max_batches)
    sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=max(1, a.epochs * steps_per_epoch))
    gen = torch.Generator().manual_seed(a.seed)
    xtr_f = torch.from_numpy(D.normalize_chw(xtr))
    ytr_t = torch.from_numpy(ytr)
    log = []
    acc0 = evaluate(model, xte, yte, device)
    print(f"epoch 0: test accuracy {100 * acc0:.2f} %")
    for epoch in range(1, a.epochs + 1):
        model.train()
        perm = torch.randperm(len(xtr_f), generator=gen)
        t0, total, seen = time.time(), 0.0, 0
        for step in range(steps_per_epoch):
            idx = perm[step * a.batch_size:(step + 1) * a.batch_size]
            xb = augment(xtr_f[idx], gen).to(device)
            yb = ytr_t[idx].to(device)
            loss = F.cross_entropy(model(xb), yb, label_smoothing=a.label_smoothing)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            sched.step()
            total += float(loss) * len(idx)
            seen += len(idx)
        acc = evaluate(model, xte, yte, device)
        rec = {"epoch": epoch, "loss": total / max(seen, 1), "test_accuracy": acc, "seconds": time.time() - t0}
        log.append(rec)
        print(json.dumps(rec))

    model.cpu().eval()
    torch.save(model.state_dict(), os.path.join(a.out, f"{a.model}.pt"))
    with open(os.path.join(a.out, "train_log.json"), "w") as f:
        json.dump({"model": a.model, "start": weights, "args": vars(a), "initial_accuracy": acc0, "epochs": log}, f, indent=1)
    if not a.no_export:
        import onnx

        path = os.path.join(a.out, f"{a.model}.onnx")
        torch.onnx.export(model, torch.zeros(1, 3, 32, 32), path, opset_version=OPSET,
                          input_names=["input"], output_names=["logits"])
        m = onnx.load(path)
        for k, v in {"name": a.model, "weights": f"trained on CIFAR-10 train_jpeg ({a.epochs} epochs from {weights})",
                     "dataset": "CIFAR-10", "input_shape": "1x3x32x32",
                     "normalization": "pixels/255, mean (0.485, 0.456, 0.406), std (0.229, 0.224, 0.225)"}.items():
            p = m.metadata_props.add()
            p.key, p.value = k, v
        onnx.save(m, path)
        print(f"exported {path}")


if __name__ == "__main__":
    main()
