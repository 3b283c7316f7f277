"""Train the zoo's small ViT (class token, pre-norm blocks, GELU MLP) on CIFAR-10 from scratch,
then export it with the zoo's batch-1 graph (the one `privinfer` imports).

    # on a GPU machine (the run that made models/vit_cifar10.onnx; see models/README.md)
    python -m privinfer_models.train_vit --epochs 300 --time-budget 420 --out build/train/vit
    # export a trained state_dict here (torch 1.13's tracing exporter, opset 17)
    python -m privinfer_models.train_vit --export-only build/train/vit/vit_cifar10.pt \\
        --out build/train/vit
    # the CPU run that made models/vit_cifar10.onnx (2 cores, no GPU; models/README.md)
    python -m privinfer_models.train_vit --patch 8 --dim 64 --depth 4 --heads 4 --mlp 128 \\
        --epochs 40 --warmup 1 --time-budget 3000 --out build/train/vit_cpu
    # the ViT-Lite shape of PrivCirNet's CIFAR ViT (7 layers, width 256, MLP 512, 65 tokens)
    # with seeded, untrained weights, for cost benchmarks (BENCHMARKS.md § Private ViT)
    python -m privinfer_models.train_vit --seeded --depth 7 --dim 256 --mlp 512 --out build/vitlite
    # smoke run on CPU
    python -m privinfer_models.train_vit --epochs 1 --max-batches 2 --batch-size 32 \\
        --train-limit 256 --test-limit 64 --out /tmp/vit_smoke

Recipe (ViT-from-scratch on small data, after Compact-Transformers' CIFAR setting, scaled down):
AdamW (β = 0.9, 0.999), weight decay 0.05 on weight matrices only, linear warm-up then cosine
decay, label smoothing 0.1, random 4-pixel-padded crop and horizontal flip, CutMix (α = 1) on
half of the batches, bf16 autocast on CUDA. Augmentation runs on the training device. A time
budget shortens the schedule after the first epoch so the run ends in time; the state_dict is
saved after every epoch.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import time

import numpy as np
import torch
import torch.nn.functional as F

from . import data as D
from .train import DEFAULT_DATA, load_train
from .zoo import ViT

NAME = "vit_cifar10"


def build(a) -> ViT:
    return ViT(image=32, patch=a.patch, dim=a.dim, depth=a.depth, heads=a.heads, mlp=a.mlp, num_classes=10)


def augment(x: torch.Tensor, gen: torch.Generator) -> torch.Tensor:
    """Random crop of the 4-pixel zero-padded batch and random horizontal flip, on x's device."""
    n, dev = x.shape[0], x.device
    padded = F.pad(x, (4, 4, 4, 4))
    i = torch.randint(0, 9, (n,), generator=gen).to(dev)
    j = torch.randint(0, 9, (n,), generator=gen).to(dev)
    ar = torch.arange(32, device=dev)
    rows = i[:, None] + ar[None, :]
    cols = j[:, None] + ar[None, :]
    out = padded[torch.arange(n, device=dev)[:, None, None, None], torch.arange(3, device=dev)[None, :, None, None],
                 rows[:, None, :, None], cols[:, None, None, :]]
    flip = (torch.rand(n, generator=gen) < 0.5).to(dev)
    return torch.where(flip[:, None, None, None], out.flip(-1), out)


def cutmix(x: torch.Tensor, y: torch.Tensor, gen: torch.Generator):
    """CutMix with λ ~ Beta(1, 1): returns the mixed batch, the partner labels and the kept area."""
    n = x.shape[0]
    lam = float(torch.rand(1, generator=gen))
    cut = math.sqrt(1.0 - lam)
    ch, cw = int(32 * cut), int(32 * cut)
    cy, cx = int(torch.randint(0, 32, (1,), generator=gen)), int(torch.randint(0, 32, (1,), generator=gen))
    y0, y1 = max(cy - ch // 2, 0), min(cy + ch // 2, 32)
    x0, x1 = max(cx - cw // 2, 0), min(cx + cw // 2, 32)
    perm = torch.randperm(n, generator=gen).to(x.device)
    x = x.clone()
    x[:, :, y0:y1, x0:x1] = x[perm, :, y0:y1, x0:x1]
    kept = 1.0 - (y1 - y0) * (x1 - x0) / 1024.0
    return x, y[perm], kept


@torch.no_grad()
def evaluate(model, x: torch.Tensor, y: torch.Tensor, batch: int = 1000) -> float:
    model.eval()
    correct = 0
    for k in range(0, len(x), batch):
        correct += int((model(x[k:k + batch]).argmax(1) == y[k:k + batch]).sum())
    return correct / len(x)


def export(model: ViT, path: str, note: str, name: str = NAME, tool: str = "train_vit.py") -> str:
    """The zoo's batch-1 graph of `model` at `path` with the metadata `privinfer` reads."""
    from .export import OPSET, set_metadata

    model = model.cpu().eval()
    torch.onnx.export(model, torch.zeros(1, 3, 32, 32), path, opset_version=OPSET, input_names=["input"],
                      output_names=["logits"], do_constant_folding=True)
    return set_metadata(path, name, note, "CIFAR-10", 32,
                        "privinfer python/privinfer_models/%s (torch %s, opset %d)" % (tool, torch.__version__, OPSET))


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--data", default=DEFAULT_DATA)
    ap.add_argument("--out", required=True)
    ap.add_argument("--patch", type=int, default=4, help="patch size (4: 65 tokens; 8: 17 tokens)")
    ap.add_argument("--dim", type=int, default=128)
    ap.add_argument("--depth", type=int, default=6)
    ap.add_argument("--heads", type=int, default=4)
    ap.add_argument("--mlp", type=int, default=256)
    ap.add_argument("--epochs", type=int, default=200)
    ap.add_argument("--warmup", type=float, default=5.0, help="warm-up epochs")
    ap.add_argument("--batch-size", type=int, default=256)
    ap.add_argument("--lr", type=float, default=1e-3)
    ap.add_argument("--weight-decay", type=float, default=0.05)
    ap.add_argument("--label-smoothing", type=float, default=0.1)
    ap.add_argument("--cutmix", type=float, default=0.5, help="fraction of batches mixed by CutMix")
    ap.add_argument("--time-budget", type=float, help="seconds: shorten the schedule after epoch 1 to fit")
    ap.add_argument("--max-batches", type=int)
    ap.add_argument("--train-limit", type=int)
    ap.add_argument("--test-limit", type=int)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--no-export", action="store_true")
    ap.add_argument("--export-only", metavar="STATE_DICT", help="only export this state_dict")
    ap.add_argument("--seeded", action="store_true",
                    help="only export the untrained model, weights drawn with --seed (cost benchmarks)")
    a = ap.parse_args(argv)
    os.makedirs(a.out, exist_ok=True)

    if a.seeded:
        torch.manual_seed(a.seed)
        note = "seeded untrained weights (seed %d) for cost benchmarks" % a.seed
        print("exported", export(build(a), os.path.join(a.out, NAME + "_seeded.onnx"), note))
        return

    if a.export_only:
        model = build(a)
        model.load_state_dict(torch.load(a.export_only, map_location="cpu"))
        log = os.path.join(os.path.dirname(a.export_only), "train_log.json")
        note = "trained from scratch on CIFAR-10 train_jpeg"
        if os.path.isfile(log):
            with open(log) as f:
                L = json.load(f)
            note += " (%d epochs, %s; test_batch.bin top-1 %.2f %% in training)" % (
                len(L["epochs"]), L["device"], 100 * L["epochs"][-1]["test_accuracy"])
        print("exported", export(model, os.path.join(a.out, NAME + ".onnx"), note))
        return

    torch.manual_seed(a.seed)
    dev = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    cache = os.path.join(os.path.dirname(os.path.abspath(a.out)), "cifar10_train_uint8.npz")
    t_load = time.time()
    xtr, ytr = load_train(a.data, cache, a.train_limit)
    xte, yte = D.load_cifar_bin(os.path.join(a.data, "cifar10", "test_batch.bin"))
    if a.test_limit:
        pick = np.linspace(0, len(xte) - 1, a.test_limit).astype(int)
        xte, yte = xte[pick], yte[pick]
    xtr_t = torch.from_numpy(D.normalize_chw(xtr)).to(dev)
    ytr_t = torch.from_numpy(ytr).to(dev)
    xte_t = torch.from_numpy(D.normalize_chw(xte)).to(dev)
    yte_t = torch.from_numpy(yte).to(dev)
    print(f"train {len(xtr)} test {len(xte)} images on {dev}, loaded in {time.time() - t_load:.1f} s", flush=True)

    model = build(a).to(dev)
    decay = [p for n, p in model.named_parameters() if p.ndim >= 2 and n not in ("cls", "pos")]
    no_decay = [p for n, p in model.named_parameters() if not (p.ndim >= 2 and n not in ("cls", "pos"))]
    opt = torch.optim.AdamW([{"params": decay, "weight_decay": a.weight_decay},
                             {"params": no_decay, "weight_decay": 0.0}], lr=a.lr, betas=(0.9, 0.999))
    steps_per_epoch = -(-len(xtr) // a.batch_size)
    if a.max_batches:
        steps_per_epoch = min(steps_per_epoch, a.max_batches)
    epochs = a.epochs
    gen = torch.Generator().manual_seed(a.seed)
    use_amp = dev.type == "cuda"
    log, t_start, step = [], time.time(), 0

    def lr_at(step: int) -> float:
        total, warm = epochs * steps_per_epoch, a.warmup * steps_per_epoch
        if step < warm:
            return a.lr * (step + 1) / warm
        p = min(1.0, (step - warm) / max(1.0, total - warm))
        return 1e-5 + (a.lr - 1e-5) * 0.5 * (1 + math.cos(math.pi * p))

    epoch = 0
    while epoch < epochs:
        epoch += 1
        model.train()
        perm = torch.randperm(len(xtr_t), generator=gen).to(dev)
        t0, total, seen = time.time(), 0.0, 0
        for s in range(steps_per_epoch):
            idx = perm[s * a.batch_size:(s + 1) * a.batch_size]
            xb, yb = augment(xtr_t[idx], gen), ytr_t[idx]
            mix = float(torch.rand(1, generator=gen)) < a.cutmix
            if mix:
                xb, yb2, kept = cutmix(xb, yb, gen)
            for g in opt.param_groups:
                g["lr"] = lr_at(step)
            with torch.autocast(device_type=dev.type, dtype=torch.bfloat16, enabled=use_amp):
                out = model(xb)
                loss = F.cross_entropy(out, yb, label_smoothing=a.label_smoothing)
                if mix:
                    loss = kept * loss + (1 - kept) * F.cross_entropy(out, yb2, label_smoothing=a.label_smoothing)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
            opt.step()
            step += 1
            total += float(loss) * len(idx)
            seen += len(idx)
        dt = time.time() - t0
        if epoch == 1 and a.time_budget:
            fit = int((a.time_budget - (time.time() - t_start)) / dt) + 1
            if fit < epochs:
                print(f"time budget: {epochs} -> {fit} epochs ({dt:.1f} s per epoch)", flush=True)
                epochs = max(1, fit)
        acc = evaluate(model, xte_t, yte_t) if (epoch % 10 == 0 or epoch == epochs) else None
        rec = {"epoch": epoch, "loss": total / max(seen, 1), "lr": lr_at(step - 1), "seconds": dt, "test_accuracy": acc}
        log.append(rec)
        print(json.dumps(rec), flush=True)
        torch.save({k: v.detach().cpu() for k, v in model.state_dict().items()}, os.path.join(a.out, NAME + ".pt"))
        with open(os.path.join(a.out, "train_log.json"), "w") as f:
            json.dump({"model": NAME, "args": vars(a), "device": torch.cuda.get_device_name() if use_amp else "cpu",
                       "torch": torch.__version__, "epochs": log}, f, indent=1)
    print(f"done: {epochs} epochs in {time.time() - t_start:.0f} s, test top-1 {100 * log[-1]['test_accuracy']:.2f} %")
    if not a.no_export:
        print("exported", export(model, os.path.join(a.out, NAME + ".onnx"), "trained from scratch on CIFAR-10 train_jpeg"))


if __name__ == "__main__":
    main()
