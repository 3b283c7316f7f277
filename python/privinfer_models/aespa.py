"""AESPA activations for the CIFAR ResNets (HyPHEN's activation; docs/protocols/hyphen.md § AESPA).

    python -m privinfer_models.aespa --model resnet20 --out build/aespa/r20 --epochs 6

Every BN + ReLU pair of the pretrained network (the stem's, each block's first, and the ReLU
after each residual add) becomes AESPA [Park et al.]: with the first Hermite polynomials
h_1(x) = x and h_2(x) = (x² − 1)/√2 and ReLU's Hermite coefficients
f̂ = (1/√(2π), 1/2, 1/√(4π)),

    aespa(x) = w_0 + w_1 · BN_1(h_1(x)) + w_2 · BN_2(h_2(x)),

one BatchNorm per basis term (no affine of its own) and per-channel weights w. AESPA writes
w_i = γ·f̂_i (+ β in w_0), which ties the three weights of a channel to two parameters; we
train the three freely (a superset) and start them, per channel, at the least-squares fit of the
replaced ReLU(BN(x)) on training images rather than at γ = 1, β = 0: the pretrained BN's shift
and scale would otherwise be lost at the start and the fine-tuning would begin near chance. The
convolution before it keeps no BN (AESPA normalizes); the BN before a residual add stays and is
folded into its convolution at export. The network is fine-tuned with distillation from the ReLU
model. At inference each AESPA folds to one degree-2 polynomial per channel,
a·x² + b·x + c, exported as the ONNX subgraph x·(a·x + b) + c (Mul, Add with [1, C, 1, 1]
constants) that `privinfer` evaluates as written, in the fixed-point reference and in FHE mode.
"""

from __future__ import annotations

import argparse
import json
import math
import os

import torch
import torch.nn as nn

from .copriv import distill_loss, run_epochs
from .export import OPSET, set_metadata
from .train import DEFAULT_DATA, cifar_splits, evaluate, frozen_pretrained, run_logger
from .zoo import ZOO, _BasicBlockA

F0, F1, F2 = 1 / math.sqrt(2 * math.pi), 0.5, 1 / math.sqrt(4 * math.pi)


class Aespa(nn.Module):
    def __init__(self, c: int):
        super().__init__()
        self.bn1 = nn.BatchNorm2d(c, affine=False)
        self.bn2 = nn.BatchNorm2d(c, affine=False)
        self.w = nn.Parameter(torch.tensor([F0, F1, F2]).repeat(c, 1))
        self.teacher_bn = None  # the replaced BN (for the least-squares start)

    def basis(self, x):
        return self.bn1(x), self.bn2((x * x - 1) / math.sqrt(2))

    def forward(self, x):
        b1, b2 = self.basis(x)
        w = self.w[None, :, :, None, None]
        return w[:, :, 0] + w[:, :, 1] * b1 + w[:, :, 2] * b2

    def coefficients(self):
        """(a, b, c) per channel with aespa(x) = a·x² + b·x + c (inference-mode BN)."""
        s1 = torch.sqrt(self.bn1.running_var + self.bn1.eps)
        s2 = torch.sqrt(self.bn2.running_var + self.bn2.eps)
        m1, m2 = self.bn1.running_mean, self.bn2.running_mean
        w0, w1, w2 = self.w[:, 0], self.w[:, 1], self.w[:, 2]
        qa = w2 / (math.sqrt(2) * s2)
        qb = w1 / s1
        qc = w0 - w1 * m1 / s1 - w2 * (1 / math.sqrt(2) + m2) / s2
        return qa.detach(), qb.detach(), qc.detach()

    @torch.no_grad()
    def fit(self, x, target):
        """Per-channel least squares of `target` (the replaced ReLU(BN(x))) on the basis."""
        b1, b2 = self.basis(x)
        for ch in range(x.shape[1]):
            A = torch.stack([torch.ones_like(b1[:, ch]).flatten(), b1[:, ch].flatten(), b2[:, ch].flatten()], 1)
            sol = torch.linalg.lstsq(A.double(), target[:, ch].flatten().double()[:, None]).solution
            self.w[ch] = sol[:, 0].float()


class Poly2(nn.Module):
    """x·(a·x + b) + c per channel: the folded AESPA as exported."""

    def __init__(self, a, b, c):
        super().__init__()
        self.register_buffer("a", a.reshape(1, -1, 1, 1).clone())
        self.register_buffer("b", b.reshape(1, -1, 1, 1).clone())
        self.register_buffer("c", c.reshape(1, -1, 1, 1).clone())

    def forward(self, x):
        return x * (self.a * x + self.b) + self.c


class AespaBlock(nn.Module):
    def __init__(self, block: _BasicBlockA):
        super().__init__()
        self.conv1, self.conv2, self.bn2, self.shortcut = block.conv1, block.conv2, block.bn2, block.shortcut
        self.act1 = Aespa(block.conv1.out_channels)
        self.act2 = Aespa(block.conv2.out_channels)
        object.__setattr__(self.act1, "teacher_bn", block.bn1)  # not a submodule

    def forward(self, x):
        out = self.act1(self.conv1(x))
        out = self.bn2(self.conv2(out))
        return self.act2(out + self.shortcut(x))


class AespaResNet(nn.Module):
    def __init__(self, base):
        super().__init__()
        self.conv1 = base.conv1
        self.act1 = Aespa(base.conv1.out_channels)
        object.__setattr__(self.act1, "teacher_bn", base.bn1)  # not a submodule
        self.layer1 = nn.Sequential(*[AespaBlock(b) for b in base.layer1])
        self.layer2 = nn.Sequential(*[AespaBlock(b) for b in base.layer2])
        self.layer3 = nn.Sequential(*[AespaBlock(b) for b in base.layer3])
        self.linear = base.linear

    def forward(self, x):
        out = self.act1(self.conv1(x))
        out = self.layer3(self.layer2(self.layer1(out)))
        out = torch.nn.functional.adaptive_avg_pool2d(out, 1)
        return self.linear(torch.flatten(out, 1))


def fold(model: AespaResNet) -> AespaResNet:
    """Inference form: each Aespa replaced by its Poly2 (exact in eval mode)."""
    for m in list(model.modules()):
        for name, child in list(m.named_children()):
            if isinstance(child, Aespa):
                setattr(m, name, Poly2(*child.coefficients()))
    return model


@torch.no_grad()
def least_squares_start(model, x):
    """Each Aespa set to the least-squares fit of the ReLU it replaces, on the activations the
    network itself produces (earlier layers already replaced), in network order."""
    acts = [m for m in model.modules() if isinstance(m, Aespa)]
    for act in acts:
        seen = {}
        h = act.register_forward_hook(lambda m, i, o: seen.setdefault("x", i[0]))
        model.eval()
        model(x)
        h.remove()
        xin = seen["x"]
        # This activation's basis statistics from its actual input (upstream ones already set).
        for bn, v in zip((act.bn1, act.bn2), (xin, (xin * xin - 1) / math.sqrt(2))):
            bn.running_mean.copy_(v.mean((0, 2, 3)))
            bn.running_var.copy_(v.var((0, 2, 3)))
        # The replaced op: ReLU of the old BN (stem, first conv of a block), or plain ReLU of the
        # residual sum (whose BN stays in conv2's branch).
        target = torch.relu(act.teacher_bn(xin) if act.teacher_bn is not None else xin)
        act.fit(xin, target)


@torch.no_grad()
def recalibrate(model, x, batches: int = 40, batch: int = 256):
    """Running statistics of every BN from training images (cumulative average)."""
    bns = [m for m in model.modules() if isinstance(m, nn.BatchNorm2d)]
    for m in bns:
        m.reset_running_stats()
        m.momentum = None
    model.train()
    for k in range(batches):
        model(x[k * batch:(k + 1) * batch])
    for m in bns:
        m.momentum = 0.1
    model.eval()


@torch.no_grad()
def value_range(model, x, quantile: float = 99.5) -> float:
    """The `quantile` (percent) over the images `x` of the largest |value| entering or leaving
    any module of `model` on that image. A quadratic network blows up on a few inputs (3 of
    1,000 CIFAR-10 training images overflow float32 with the shipped ResNet-20); FHE mode's
    range covers the others, and such an input gives a wrong answer in FHE as it gives inf in
    float."""
    import numpy as np

    cur = [0.0]

    def hook(mod, inp, out):
        for t in list(inp) + [out]:
            if torch.is_tensor(t):
                cur[0] = max(cur[0], float(t.abs().max()))

    hs = [mod.register_forward_hook(hook) for mod in model.modules() if not list(mod.children())]
    model.eval()
    per = []
    for k in range(len(x)):
        cur[0] = 0.0
        model(x[k:k + 1])
        per.append(cur[0])
    for h in hs:
        h.remove()
    return float(np.percentile(np.array(per), quantile))


def add_metadata(path: str, key: str, value: str) -> None:
    import onnx
    mo = onnx.load(path)
    p = mo.metadata_props.add()
    p.key, p.value = key, value
    onnx.save(mo, path)


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", default="resnet20", choices=["resnet20", "resnet32", "resnet44", "resnet56"])
    ap.add_argument("--data", default=DEFAULT_DATA)
    ap.add_argument("--out", required=True)
    ap.add_argument("--epochs", type=int, default=6)
    ap.add_argument("--max-batches", type=int, help="batches per epoch (default: all)")
    ap.add_argument("--lr", type=float, default=0.02)
    ap.add_argument("--batch-size", type=int, default=128)
    ap.add_argument("--test-limit", type=int)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--threads", type=int, default=os.cpu_count() or 1)
    ap.add_argument("--export-only", action="store_true", help="fold and export OUT/student.pt without training")
    a = ap.parse_args(argv)
    torch.manual_seed(a.seed)
    torch.set_num_threads(a.threads)
    log = run_logger(a.out)

    _, builder = ZOO[a.model]
    teacher, weights = frozen_pretrained(a.model, a.data)
    xtr, ytr, xte, yte = cifar_splits(a.data, a.out, a.test_limit)
    gen = torch.Generator().manual_seed(a.seed)
    acc_relu = evaluate(teacher, xte, yte, "cpu")
    log(f"ReLU {a.model}: {100 * acc_relu:.2f} % on {len(xte)} test images")

    student = AespaResNet(builder(a.data)[0])
    if a.export_only:
        student.load_state_dict(torch.load(os.path.join(a.out, "student.pt"), map_location="cpu"))
        a.epochs = 0
    else:
        calib = xtr[torch.randperm(len(xtr), generator=gen)]
        least_squares_start(student, calib[:512])
    log(f"AESPA, {'trained' if a.export_only else 'least-squares start, before fine-tuning'}: {100 * evaluate(student, xte, yte, 'cpu'):.2f} %")
    for e in range(a.epochs):
        run_epochs(student, teacher, xtr, ytr, student.parameters(), a.lr * (0.5 ** e), 1, a.max_batches,
                   a.batch_size, gen, None, log)
        acc = evaluate(student, xte, yte, "cpu")
        log(f"epoch {e + 1}: {100 * acc:.2f} %")
        torch.save(student.state_dict(), os.path.join(a.out, "student.pt"))
    student.eval()
    folded = fold(student)
    acc_folded = evaluate(folded, xte, yte, "cpu")
    log(f"folded (x·(a·x + b) + c per channel): {100 * acc_folded:.2f} %")
    path = os.path.join(a.out, f"{a.model}_aespa.onnx")
    torch.onnx.export(folded, torch.zeros(1, 3, 32, 32), path, opset_version=OPSET,
                      input_names=["input"], output_names=["logits"])
    set_metadata(path, f"{a.model}_aespa", f"AESPA fine-tuned from {weights}", "CIFAR-10", 32,
                 "privinfer python/privinfer_models/aespa.py")
    # FHE mode's range: 1.5 × the 99.5th percentile over 1,000 training images of each image's
    # largest |value|, rounded up to a power of two (docs/protocols/hyphen.md § Range).
    vmax = value_range(folded, xtr[:1000])
    fhe_range = float(2 ** math.ceil(math.log2(1.5 * vmax)))
    add_metadata(path, "privinfer.fhe_range", f"{fhe_range:g}")
    log(f"largest |value| per image, 99.5th percentile over 1000 training images {vmax:.2f}: privinfer.fhe_range = {fhe_range:g}")
    summary = {"model": a.model, "accuracy_relu": acc_relu, "accuracy": acc_folded, "epochs": a.epochs,
               "fhe_range": fhe_range, "max_abs_value": vmax,
               "lr": a.lr, "test_images": len(xte),
               "command": "python -m privinfer_models.aespa " + " ".join(argv if argv is not None else __import__("sys").argv[1:])}
    json.dump(summary, open(os.path.join(a.out, "aespa.json"), "w"), indent=1)
    log(json.dumps(summary))


if __name__ == "__main__":
    main()
