"""CoPriv's network optimization for the CIFAR ResNets: cost-aware ReLU pruning and
re-parameterization of the linear layers it leaves adjacent (docs/protocols/copriv.md § 5).

    python -m privinfer_models.copriv --model resnet32 --costs build/copriv/plan.jsonl \
        --out build/copriv/r32 --target 0.5 --gate-batches 200 --epochs 3

1. Costs from our own cost model: `privinfer inspect M.onnx --plan --json` of the unoptimized
   model gives, per plan step, the predicted linear-layer bytes and the non-linear bytes (the
   fused rescale-and-ReLU and COT generation). A block's inner ReLU costs what its first conv
   step costs: removing the ReLU lets that conv merge into the second (step 3), so the whole
   step disappears.
2. Differentiable ReLU pruning: one gate g = sigmoid(θ) per block's inner ReLU,
   act(x) = g·relu(x) + (1 − g)·x, trained with distillation from the unoptimized model and the
   penalty λ·Σ g_l·bytes_l / Σ bytes_l. Gates are then ranked, and the lowest are linearized until
   the predicted communication of the whole inference falls to `--target` of the unoptimized
   model's; an annealing phase takes the chosen gates to 0 (and the others to 1) while the
   weights follow by distillation.
3. Re-parameterization: a linearized block computes relu(conv2(conv1(x)) + shortcut(x)) with BN
   folded; conv2 ∘ conv1 is one (3 + 2s)×(3 + 2s) conv of stride s (s = conv1's stride) and
   padding 1 + s, and the shortcut (identity, or option A's subsample-and-pad) is a 1 at the
   centre tap of the matching channels: the block becomes relu(conv(x)), one linear layer and one
   truncation instead of two of each. Exact away from the map border; at the border the
   original's intermediate zero padding differs, which the fine-tuning absorbs.
4. Fine-tuning of the merged network with distillation, then ONNX export (runs through
   `privinfer`), with the plan and accuracies in `copriv.json` next to it.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import time

import torch
import torch.nn as nn
import torch.nn.functional as F

from .export import OPSET, set_metadata
from .train import DEFAULT_DATA, augment, cifar_splits, evaluate, frozen_pretrained, run_logger
from .zoo import ZOO, _BasicBlockA, _ShortcutA

COT_BITS = 0.45  # silent OT's traffic per COT (linear::ot::COT_BITS)


def fold_bn(conv: nn.Conv2d, bn: nn.BatchNorm2d):
    """(W, b) of conv followed by inference-mode BN."""
    s = bn.weight / torch.sqrt(bn.running_var + bn.eps)
    w = conv.weight * s[:, None, None, None]
    b = bn.bias - bn.running_mean * s
    if conv.bias is not None:
        b = b + conv.bias * s
    return w.detach(), b.detach()


def merge_block(block: _BasicBlockA) -> nn.Conv2d:
    """conv2 ∘ conv1 (BN folded) plus the shortcut as one conv: kernel 3 + 2s, stride s,
    padding 1 + s."""
    w1, b1 = fold_bn(block.conv1, block.bn1)
    w2, b2 = fold_bn(block.conv2, block.bn2)
    s = block.conv1.stride[0]
    k = 3 + 2 * s
    out_c, in_c = w2.shape[0], w1.shape[1]
    w = torch.zeros(out_c, in_c, k, k)
    for i in range(3):
        for j in range(3):
            # Output pixel p reads intermediate p + i − 1, which reads input s(p + i − 1) + u − 1.
            w[:, :, s * i:s * i + 3, s * j:s * j + 3] += torch.einsum("om,mcuv->ocuv", w2[:, :, i, j], w1)
    b = b2 + torch.einsum("omij,m->o", w2, b1)
    c = (k - 1) // 2  # the centre tap reads input s·p, the shortcut's pixel
    if isinstance(block.shortcut, _ShortcutA):
        pad = block.shortcut.pad
        for ch in range(in_c):
            w[ch + pad, ch, c, c] += 1.0
    else:
        for ch in range(in_c):
            w[ch, ch, c, c] += 1.0
    conv = nn.Conv2d(in_c, out_c, k, s, 1 + s, bias=True)
    conv.weight.data.copy_(w)
    conv.bias.data.copy_(b)
    return conv


class GatedBlock(nn.Module):
    """A basic block whose inner ReLU is act(x) = g·relu(x) + (1 − g)·x, g = sigmoid(θ)."""

    def __init__(self, block: _BasicBlockA):
        super().__init__()
        self.b = block
        self.theta = nn.Parameter(torch.tensor(3.0))
        # During annealing: the gate's value, set by the schedule instead of θ.
        self.fixed: float | None = None

    def gate(self):
        if self.fixed is not None:
            return torch.tensor(self.fixed)
        return torch.sigmoid(self.theta)

    def forward(self, x):
        b, g = self.b, self.gate()
        h = b.bn1(b.conv1(x))
        h = g * F.relu(h) + (1 - g) * h
        return F.relu(b.bn2(b.conv2(h)) + b.shortcut(x))


class MergedBlock(nn.Module):
    """A linearized block: relu(conv(x)) with the merged conv."""

    def __init__(self, conv: nn.Conv2d):
        super().__init__()
        self.conv = conv

    def forward(self, x):
        return F.relu(self.conv(x))


def blocks(model):
    return [(si, bi) for si in (1, 2, 3) for bi in range(len(getattr(model, f"layer{si}")))]


def step_costs(plan_jsonl: str):
    """Bytes per plan step (linear prediction + non-linear bits + COT generation), by step name."""
    out = {}
    total = 0.0
    for line in open(plan_jsonl):
        r = json.loads(line)
        if r.get("layer") == "total":
            continue
        b = 0.0
        if r.get("predicted"):
            b += r["predicted"]["bytes_c2s"] + r["predicted"]["bytes_s2c"]
        nl = r.get("nonlinear") or {}
        b += nl.get("bytes", 0) + nl.get("cots", 0) * COT_BITS / 8
        out[r["name"]] = b
        total += b
    return out, total


def plan_of(privinfer: str, onnx_path: str, out_jsonl: str, mbps: int) -> None:
    with open(out_jsonl, "w") as f:
        subprocess.run([privinfer, "inspect", onnx_path, "--plan", "--json", "--plan-mbps", str(mbps)],
                       check=True, stdout=f)


def distill_loss(student_logits, teacher_logits, y, t: float = 4.0, alpha: float = 0.9):
    kd = F.kl_div(F.log_softmax(student_logits / t, 1), F.softmax(teacher_logits / t, 1),
                  reduction="batchmean") * t * t
    return alpha * kd + (1 - alpha) * F.cross_entropy(student_logits, y)


def run_epochs(model, teacher, xtr, ytr, params, lr, epochs, max_batches, batch, gen, penalty=None, log=print,
               on_step=None):
    opt = torch.optim.SGD(params, lr=lr, momentum=0.9, nesterov=True, weight_decay=5e-4)
    steps = -(-len(xtr) // batch)
    if max_batches:
        steps = min(steps, max_batches)
    sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=max(1, epochs * steps))
    for epoch in range(epochs):
        model.train()
        perm = torch.randperm(len(xtr), generator=gen)
        t0 = time.time()
        for step in range(steps):
            if on_step is not None:
                on_step(step, steps)
            idx = perm[step * batch:(step + 1) * batch]
            xb = augment(xtr[idx], gen)
            with torch.no_grad():
                tl = teacher(xb)
            sl = model(xb)
            loss = distill_loss(sl, tl, ytr[idx])
            if penalty is not None:
                loss = loss + penalty()
            opt.zero_grad()
            loss.backward()
            # Removing ReLUs can make early steps steep: bounded updates.
            torch.nn.utils.clip_grad_norm_([p for g in opt.param_groups for p in g["params"]], 5.0)
            opt.step()
            sched.step()
            if step % 50 == 0:
                log(f"  epoch {epoch + 1} step {step}/{steps} loss {loss.item():.3f} ({time.time() - t0:.0f} s)")


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", default="resnet32", choices=["resnet20", "resnet32", "resnet44", "resnet56"])
    ap.add_argument("--data", default=DEFAULT_DATA)
    ap.add_argument("--out", required=True)
    ap.add_argument("--privinfer", default=os.path.join(os.path.dirname(__file__), "..", "..", "target", "release", "privinfer"))
    ap.add_argument("--plan-mbps", type=int, default=400, help="network profile of the cost model")
    ap.add_argument("--target", type=float, default=0.5, help="predicted communication to reach, as a fraction of the unoptimized model's")
    ap.add_argument("--lam", type=float, default=2.0, help="weight of the communication penalty on the gates")
    ap.add_argument("--gate-batches", type=int, default=200)
    ap.add_argument("--anneal-batches", type=int, default=400)
    ap.add_argument("--epochs", type=int, default=3)
    ap.add_argument("--max-batches", type=int, help="batches per fine-tuning epoch (default: all)")
    ap.add_argument("--lr", type=float, default=0.02)
    ap.add_argument("--batch-size", type=int, default=128)
    ap.add_argument("--test-limit", type=int)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--teacher", choices=sorted(ZOO),
                    help="distill from this pretrained zoo model (default: the pretrained --model itself)")
    ap.add_argument("--finetune-lr", type=float,
                    help="learning rate of the first fine-tuning epoch after merging (default: --lr), halved every epoch")
    a = ap.parse_args(argv)
    torch.manual_seed(a.seed)
    torch.set_num_threads(os.cpu_count() or 1)
    log = run_logger(a.out)

    size, builder = ZOO[a.model]
    teacher, weights = frozen_pretrained(a.model, a.data)

    # 1. Costs of the unoptimized model from our cost model.
    base_onnx = os.path.join(a.out, f"{a.model}_base.onnx")
    torch.onnx.export(teacher, torch.zeros(1, 3, 32, 32), base_onnx, opset_version=OPSET,
                      input_names=["input"], output_names=["logits"])
    plan_jsonl = os.path.join(a.out, "plan_base.jsonl")
    plan_of(a.privinfer, base_onnx, plan_jsonl, a.plan_mbps)
    costs, total = step_costs(plan_jsonl)
    names = blocks(teacher)
    saving = {}
    for si, bi in names:
        key = f"/layer{si}/layer{si}.{bi}/conv1/Conv"
        saving[(si, bi)] = costs.get(key, 0.0)
    log(f"unoptimized: predicted {total / 1e6:.2f} MB per inference at {a.plan_mbps} Mbit/s; "
        f"per-block saving {', '.join(f'{si}.{bi}:{saving[(si, bi)] / 1e6:.2f}' for si, bi in names)} MB")

    # Data.
    xtr_f, ytr_t, xte, yte = cifar_splits(a.data, a.out, a.test_limit)
    gen = torch.Generator().manual_seed(a.seed)
    acc_base = evaluate(teacher, xte, yte, "cpu")
    log(f"unoptimized test accuracy {100 * acc_base:.2f} % on {len(xte)} images")
    if a.teacher and a.teacher != a.model:
        # Costs and the unoptimized accuracy stay the pretrained --model's; only the
        # distillation target changes.
        teacher, _ = frozen_pretrained(a.teacher, a.data)
        log(f"teacher {a.teacher}: test accuracy {100 * evaluate(teacher, xte, yte, 'cpu'):.2f} %")

    # 2. Gates with the communication penalty.
    student, _ = builder(a.data)
    gated = {}
    for si, bi in names:
        stage = getattr(student, f"layer{si}")
        gated[(si, bi)] = GatedBlock(stage[bi])
        stage[bi] = gated[(si, bi)]
    wsum = sum(saving.values())

    def penalty():
        return a.lam * sum(gated[k].gate() * saving[k] for k in names) / wsum

    thetas = [g.theta for g in gated.values()]
    others = [p for n, p in student.named_parameters() if not n.endswith("theta")]
    log(f"gate training: {a.gate_batches} batches")
    run_epochs(student, teacher, xtr_f, ytr_t, [{"params": others}, {"params": thetas, "lr": 10 * a.lr, "weight_decay": 0.0}],
               a.lr, 1, a.gate_batches, a.batch_size, gen, penalty, log)
    gates = {k: float(gated[k].gate()) for k in names}
    log("gates " + ", ".join(f"{si}.{bi}:{gates[(si, bi)]:.3f}" for si, bi in names))

    # Linearize the lowest gates until the predicted communication reaches the target.
    order = sorted(names, key=lambda k: gates[k])
    chosen, predicted = [], total
    for k in order:
        if predicted <= a.target * total:
            break
        chosen.append(k)
        predicted -= saving[k]
    log(f"linearized blocks {chosen}: predicted {predicted / 1e6:.2f} MB ({predicted / total:.2f} of unoptimized)")

    # Annealing: the chosen blocks' gates go linearly to 0 over the first half of
    # `--anneal-batches` and stay there, the kept ones back to 1 (a plain ReLU), while the
    # weights follow by distillation; merging then changes the function at the border only.
    start = {k: gates[k] for k in names}

    def schedule(step, steps):
        f = min(1.0, step / max(1, a.anneal_batches // 2))
        for k in names:
            end = 0.0 if k in chosen else 1.0
            gated[k].fixed = start[k] + (end - start[k]) * f

    log(f"annealing: {a.anneal_batches} batches")
    run_epochs(student, teacher, xtr_f, ytr_t, others, a.lr, 1, a.anneal_batches, a.batch_size, gen, None, log,
               on_step=schedule)
    acc_annealed = evaluate(student, xte, yte, "cpu")
    log(f"annealed (chosen blocks linear, unmerged): {100 * acc_annealed:.2f} %")

    # 3. Merge: from the annealed weights.
    model, _ = builder(a.data)
    model.load_state_dict({k.replace(".b.", ".", 1) if ".b." in k else k: v
                           for k, v in student.state_dict().items() if not k.endswith("theta")})
    for si, bi in chosen:
        stage = getattr(model, f"layer{si}")
        stage[bi] = MergedBlock(merge_block(stage[bi]))
    acc_merged = evaluate(model, xte, yte, "cpu")
    log(f"merged, before fine-tuning: {100 * acc_merged:.2f} %")

    # 4. Fine-tuning with distillation.
    for e in range(a.epochs):
        run_epochs(model, teacher, xtr_f, ytr_t, model.parameters(), (a.finetune_lr or a.lr) * (0.5 ** e), 1, a.max_batches,
                   a.batch_size, gen, None, log)
        acc = evaluate(model, xte, yte, "cpu")
        log(f"fine-tuning epoch {e + 1}: {100 * acc:.2f} %")
    model.eval()
    path = os.path.join(a.out, f"{a.model}_copriv.onnx")
    torch.onnx.export(model, torch.zeros(1, 3, 32, 32), path, opset_version=OPSET,
                      input_names=["input"], output_names=["logits"])
    set_metadata(path, f"{a.model}_copriv", f"CoPriv-optimized from {weights}: blocks {chosen} linearized and merged",
                 "CIFAR-10", 32, "privinfer python/privinfer_models/copriv.py")
    plan_opt = os.path.join(a.out, "plan_copriv.jsonl")
    plan_of(a.privinfer, path, plan_opt, a.plan_mbps)
    _, total_opt = step_costs(plan_opt)
    summary = {
        "model": a.model, "linearized": [f"layer{si}.{bi}" for si, bi in chosen], "gates": {f"layer{si}.{bi}": g for (si, bi), g in gates.items()},
        "predicted_bytes_base": total, "predicted_bytes_copriv": total_opt, "plan_mbps": a.plan_mbps,
        "accuracy_base": acc_base, "accuracy_annealed": acc_annealed, "accuracy_merged_before_finetune": acc_merged, "accuracy": acc,
        "command": "python -m privinfer_models.copriv " + " ".join(argv if argv is not None else __import__("sys").argv[1:]),
        "test_images": len(xte), "epochs": a.epochs, "gate_batches": a.gate_batches, "anneal_batches": a.anneal_batches, "lr": a.lr, "target": a.target,
    }
    json.dump(summary, open(os.path.join(a.out, "copriv.json"), "w"), indent=1)
    log(json.dumps(summary))


if __name__ == "__main__":
    main()
