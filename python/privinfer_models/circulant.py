"""PrivCirNet's training side for the CIFAR ResNets: block-circulant layers, per-layer block
sizes from second-order sensitivity and our own latency model by an integer program, and
distillation fine-tuning (docs/protocols/privcirnet.md § Toolkit).

    python -m privinfer_models.circulant --model resnet20 --out build/circulant/r20 --epochs 6

1. Conv + BN fusion that stays exactly block-circulant: the BatchNorm after a circulant conv is
   trained with one scale per group of b channels (γ and the variance shared by the group,
   `TiedBatchNorm2d`), so the scale γ/√(var + ε) that `nn` folds into the conv is bitwise equal
   within each group and the fused conv keeps its circulant blocks (PrivCirNet's fusion after
   training is only approximate). Latencies and sensitivities use the BN-folded dense model.
2. Candidates b ∈ {1, 2, 4, 8, 16} per conv and FC layer (b a power of two dividing both channel
   counts; the 3-channel stem stays dense). The projection onto block-circulant weights keeps
   the mean of every wrapped diagonal of every b×b block (the Frobenius-nearest circulant).
3. Sensitivity Ω_{l,b} = Σ (W − W_b)² ⊙ (∂L/∂W)², the squared gradients averaged over
   `--fisher-batches` training batches of the dense model (PrivCirNet's second-order proxy).
4. Latency T_{l,b} from our own cost model: `privinfer bench linear --model <folded>.onnx
   --dry-run --json` with `--protocol cheetah` (b = 1, our dense plan) and `--protocol circulant
   --circulant b`: the planner's estimated compute time plus the predicted bytes at
   `--plan-mbps`.
5. The integer program (PuLP/CBC): one b per layer, minimize Σ Ω under Σ T ≤ the latency of the
   uniform choice b = `--budget-block` (4 by default; each layer at the largest candidate ≤ it).
6. Fine-tuning with distillation from the pretrained model, then ONNX export with plain Conv /
   Gemm nodes holding the expanded weights and the chosen blocks in the metadata key
   `privinfer.circulant_blocks` (JSON: ONNX node name -> b), which `nn` reads (and checks
   against the weights).
"""

from __future__ import annotations

import argparse
import copy
import json
import os
import subprocess

import numpy as np
import onnx
import torch
import torch.nn as nn
import torch.nn.functional as F

from . import data as D
from .copriv import fold_bn, run_epochs
from .export import OPSET, set_metadata
from .train import DEFAULT_DATA, cifar_splits, evaluate, frozen_pretrained, load_train, run_logger
from .zoo import ZOO

METADATA_KEY = "privinfer.circulant_blocks"
CANDIDATES = (1, 2, 4, 8, 16)


def _diag_index(b: int) -> torch.Tensor:
    """idx[r][c] = (c − r) mod b: entry (r, c) of a circulant block is row 0's entry idx[r][c]."""
    r = torch.arange(b)
    return (r[None, :] - r[:, None]) % b


def project_rows(w: torch.Tensor, b: int) -> torch.Tensor:
    """Row 0 of every b×b block of the nearest block-circulant matrix: w is (O, I, *taps); the
    result is (O/b, I/b, b, *taps) with entry l the mean of the block's wrapped diagonal l,
    {(r, (r + l) mod b)}."""
    o, i = w.shape[:2]
    k = w.shape[2:]
    wb = w.reshape(o // b, b, i // b, b, *k)
    r = torch.arange(b)
    cols = (r[:, None] + r[None, :]) % b  # [r, l]
    diag = wb[:, r[:, None], :, cols]  # [r, l, O/b, I/b, *k]
    return diag.mean(0).movedim(0, 2).contiguous()


def expand(rows: torch.Tensor, b: int) -> torch.Tensor:
    """The dense (O, I, *taps) weights of row-0 parameters (O/b, I/b, b, *taps)."""
    ob, ib = rows.shape[:2]
    k = rows.shape[3:]
    full = rows[:, :, _diag_index(b)]  # [O/b, I/b, r, c, *k]
    return full.permute(0, 2, 1, 3, *range(4, 4 + len(k))).reshape(ob * b, ib * b, *k)


def project(w: torch.Tensor, b: int) -> torch.Tensor:
    return w.clone() if b == 1 else expand(project_rows(w, b), b)


def is_block_circulant(w: torch.Tensor, b: int) -> bool:
    """Whether every b×b block of w (O, I, *taps) equals the circulant matrix of its row 0."""
    if b == 1:
        return True
    o, i = w.shape[:2]
    row0 = w.reshape(o // b, b, i // b, b, *w.shape[2:])[:, 0]  # [O/b, I/b, b, *k]
    return bool(torch.equal(w, expand(row0, b)))


class CirConv2d(nn.Module):
    """A convolution whose (out, in) weight matrix is block-circulant with block b for every
    kernel tap: the parameters are row 0 of each block."""

    def __init__(self, conv: nn.Conv2d, b: int):
        super().__init__()
        assert conv.groups == 1 and conv.in_channels % b == 0 and conv.out_channels % b == 0
        self.b, self.stride, self.padding = b, conv.stride, conv.padding
        self.rows = nn.Parameter(project_rows(conv.weight.detach(), b))
        self.bias = None if conv.bias is None else nn.Parameter(conv.bias.detach().clone())

    def weight(self) -> torch.Tensor:
        return expand(self.rows, self.b)

    def forward(self, x):
        return F.conv2d(x, self.weight(), self.bias, self.stride, self.padding)

    def to_dense(self) -> nn.Conv2d:
        w = self.weight().detach()
        conv = nn.Conv2d(w.shape[1], w.shape[0], tuple(w.shape[2:]), self.stride, self.padding, bias=self.bias is not None)
        conv.weight.data.copy_(w)
        if self.bias is not None:
            conv.bias.data.copy_(self.bias.detach())
        return conv


class CirLinear(nn.Module):
    """A fully connected layer with a block-circulant weight matrix (row 0 of each block)."""

    def __init__(self, fc: nn.Linear, b: int):
        super().__init__()
        assert fc.in_features % b == 0 and fc.out_features % b == 0
        self.b = b
        self.rows = nn.Parameter(project_rows(fc.weight.detach(), b))
        self.bias = None if fc.bias is None else nn.Parameter(fc.bias.detach().clone())

    def weight(self) -> torch.Tensor:
        return expand(self.rows, self.b)

    def forward(self, x):
        return F.linear(x, self.weight(), self.bias)

    def to_dense(self) -> nn.Linear:
        w = self.weight().detach()
        fc = nn.Linear(w.shape[1], w.shape[0], bias=self.bias is not None)
        fc.weight.data.copy_(w)
        if self.bias is not None:
            fc.bias.data.copy_(self.bias.detach())
        return fc


class TiedBatchNorm2d(nn.Module):
    """The BatchNorm after a block-circulant conv, with one scale per group of b channels: γ and
    the variance are shared by the group (the variance pooled over its channels, each around
    its own mean), the mean and β stay per channel. Folded into the conv, the scale γ/√(var + ε)
    is then bitwise equal within each group, so the fused conv stays exactly block-circulant
    (the bias absorbs the means and β)."""

    def __init__(self, bn: nn.BatchNorm2d, b: int):
        super().__init__()
        c = bn.num_features
        self.b, self.eps, self.momentum = b, bn.eps, 0.1
        var_g = bn.running_var.detach().reshape(c // b, b).mean(1)
        scale = (bn.weight.detach() / torch.sqrt(bn.running_var.detach() + bn.eps)).reshape(c // b, b).mean(1)
        self.weight = nn.Parameter(scale * torch.sqrt(var_g + bn.eps))
        self.bias = nn.Parameter(bn.bias.detach().clone())
        self.register_buffer("running_mean", bn.running_mean.detach().clone())
        self.register_buffer("running_var", var_g.clone())

    def forward(self, x):
        if self.training:
            mu = x.mean((0, 2, 3))
            var_c = ((x - mu[None, :, None, None]) ** 2).mean((0, 2, 3))
            var_g = var_c.reshape(-1, self.b).mean(1)
            n = x.numel() / x.shape[1] * self.b
            with torch.no_grad():
                self.running_mean.mul_(1 - self.momentum).add_(self.momentum * mu)
                self.running_var.mul_(1 - self.momentum).add_(self.momentum * var_g * n / max(1.0, n - 1))
        else:
            mu, var_g = self.running_mean, self.running_var
        scale = (self.weight / torch.sqrt(var_g + self.eps)).repeat_interleave(self.b)
        return (x - mu[None, :, None, None]) * scale[None, :, None, None] + self.bias[None, :, None, None]

    def to_bn(self) -> nn.BatchNorm2d:
        bn = nn.BatchNorm2d(self.bias.numel(), eps=self.eps).eval()
        bn.weight.data.copy_(self.weight.detach().repeat_interleave(self.b))
        bn.bias.data.copy_(self.bias.detach())
        bn.running_mean.copy_(self.running_mean)
        bn.running_var.copy_(self.running_var.repeat_interleave(self.b))
        return bn


def folded(conv: nn.Conv2d, bn: nn.BatchNorm2d) -> nn.Conv2d:
    """conv followed by inference-mode bn as one conv with bias."""
    w, b = fold_bn(conv, bn)
    out = nn.Conv2d(conv.in_channels, conv.out_channels, conv.kernel_size, conv.stride, conv.padding, bias=True)
    out.weight.data.copy_(w)
    out.bias.data.copy_(b)
    return out


def fold_model(model: nn.Module) -> nn.Module:
    """A copy of a CIFAR ResNet with every BatchNorm folded into the conv before it."""
    m = copy.deepcopy(model).eval()
    m.conv1, m.bn1 = folded(m.conv1, m.bn1), nn.Identity()
    for si in (1, 2, 3):
        for blk in getattr(m, f"layer{si}"):
            blk.conv1, blk.bn1 = folded(blk.conv1, blk.bn1), nn.Identity()
            blk.conv2, blk.bn2 = folded(blk.conv2, blk.bn2), nn.Identity()
    for p in m.parameters():
        p.requires_grad_(True)
    return m


def linear_layers(model: nn.Module):
    """(module path, module) of every Conv2d and Linear, in forward order."""
    return [(n, m) for n, m in model.named_modules() if isinstance(m, (nn.Conv2d, nn.Linear))]


def onnx_scope(path: str) -> str:
    """The scope torch's exporter gives module `path` ("layer1.0.conv1" ->
    "/layer1/layer1.0/conv1"): one scope per enclosing module, each named by the last atom of its
    dotted path together with the numeric atoms just before it (torch's unqualified variable
    name: "layer1.0" stays whole)."""
    parts = path.split(".")

    def unqualified(k: int) -> str:
        start = k
        while start > 0 and parts[start].isdigit():
            start -= 1
        return ".".join(parts[start:k + 1])

    return "/" + "/".join(unqualified(k) for k in range(len(parts)))


def onnx_name(path: str, module: nn.Module) -> str:
    """The ONNX node name of conv or FC module `path` ("/layer1/layer1.0/conv1/Conv")."""
    return onnx_scope(path) + ("/Conv" if isinstance(module, (nn.Conv2d, CirConv2d)) else "/Gemm")


def candidates(module: nn.Module):
    if isinstance(module, nn.Conv2d):
        i, o, ok = module.in_channels, module.out_channels, module.groups == 1
    else:
        i, o, ok = module.in_features, module.out_features, True
    return [b for b in CANDIDATES if b == 1 or (ok and i % b == 0 and o % b == 0)]


def set_module(model: nn.Module, path: str, new: nn.Module) -> None:
    parent, _, leaf = path.rpartition(".")
    setattr(model.get_submodule(parent) if parent else model, leaf, new)


def sensitivities(model, layers, xtr, ytr, batches: int, batch: int, gen) -> dict:
    """Ω[path][b] = Σ (W − W_b)² ⊙ E[(∂L/∂W)²] over `batches` training batches."""
    model.eval()
    sq = {p: torch.zeros_like(m.weight) for p, m in layers}
    perm = torch.randperm(len(xtr), generator=gen)
    for k in range(batches):
        idx = perm[k * batch:(k + 1) * batch]
        model.zero_grad()
        F.cross_entropy(model(xtr[idx]), ytr[idx]).backward()
        for p, m in layers:
            sq[p] += m.weight.grad.detach() ** 2 / batches
    out = {}
    for p, m in layers:
        w = m.weight.detach()
        out[p] = {b: float(((w - project(w, b)) ** 2 * sq[p]).sum()) for b in candidates(m)}
    return out


def latencies(privinfer: str, onnx_path: str, blocks, mbps: float) -> dict:
    """T[onnx node name][b] in ms from `privinfer bench linear --dry-run --json`."""
    out: dict = {}
    for b in blocks:
        cmd = [privinfer, "bench", "linear", "--model", onnx_path, "--dry-run", "--json", "--plan-mbps", str(mbps)]
        cmd += ["--protocol", "cheetah"] if b == 1 else ["--protocol", "circulant", "--circulant", str(b)]
        res = subprocess.run(cmd, check=True, capture_output=True, text=True)
        for line in res.stdout.splitlines():
            r = json.loads(line)
            if "layer" not in r:
                continue
            bytes_ = r["predicted_c2s"] + r["predicted_s2c"]
            out.setdefault(r["layer"], {})[b] = r["estimated_compute_ms"] + bytes_ * 8 / (mbps * 1e3)
    return out


def solve(omega: dict, lat: dict, budget: float) -> dict:
    """One b per layer minimizing Σ Ω subject to Σ T ≤ budget (PuLP/CBC)."""
    import pulp

    prob = pulp.LpProblem("block_sizes", pulp.LpMinimize)
    x = {(l, b): pulp.LpVariable(f"x_{k}_{b}", cat="Binary") for k, l in enumerate(omega) for b in omega[l]}
    scale = max(1e-30, max(v for l in omega for v in omega[l].values()))
    prob += pulp.lpSum(omega[l][b] / scale * x[l, b] for (l, b) in x)
    for l in omega:
        prob += pulp.lpSum(x[l, b] for b in omega[l]) == 1
    prob += pulp.lpSum(lat[l][b] * x[l, b] for (l, b) in x) <= budget
    status = prob.solve(pulp.PULP_CBC_CMD(msg=0))
    if pulp.LpStatus[status] != "Optimal":
        raise SystemExit(f"block-size ILP: {pulp.LpStatus[status]} (budget {budget:.1f} ms)")
    return {l: b for (l, b), v in x.items() if v.value() > 0.5}


def export(model: nn.Module, path: str, blocks_by_node: dict, name: str, weights: str) -> None:
    m = copy.deepcopy(model).eval()
    for p, mod in list(m.named_modules()):
        if isinstance(mod, (CirConv2d, CirLinear)):
            set_module(m, p, mod.to_dense())
        elif isinstance(mod, TiedBatchNorm2d):
            set_module(m, p, mod.to_bn())
    # BatchNormalization nodes kept: `nn` folds them (the tied scales keep the fold circulant).
    torch.onnx.export(m, torch.zeros(1, 3, 32, 32), path, opset_version=OPSET,
                      input_names=["input"], output_names=["logits"], training=torch.onnx.TrainingMode.PRESERVE)
    set_metadata(path, name, weights, "CIFAR-10", 32, "privinfer python/privinfer_models/circulant.py")
    om = onnx.load(path)
    nodes = {n.name: n for n in om.graph.node}
    missing = [n for n in blocks_by_node if n not in nodes]
    if missing:
        raise SystemExit(f"export: no ONNX node named {missing}")
    p = om.metadata_props.add()
    p.key, p.value = METADATA_KEY, json.dumps({k: v for k, v in blocks_by_node.items() if v > 1}, sort_keys=True)
    onnx.checker.check_model(om)
    onnx.save(om, path)


def conv_bn_pairs(model: nn.Module, size: int):
    """{conv module path: its BatchNorm2d} for every BN applied directly to a conv's output (found
    by tracing one forward pass)."""
    outputs, pairs, paths = {}, {}, {m: p for p, m in model.named_modules()}
    hooks = []
    for m in model.modules():
        if isinstance(m, nn.Conv2d):
            hooks.append(m.register_forward_hook(lambda mod, i, o: outputs.__setitem__(id(o), mod)))
        elif isinstance(m, nn.BatchNorm2d):
            hooks.append(m.register_forward_hook(
                lambda mod, i, o: pairs.__setitem__(paths[outputs[id(i[0])]], mod) if id(i[0]) in outputs else None))
    with torch.no_grad():
        model.eval()(torch.zeros(1, 3, size, size))
    for h in hooks:
        h.remove()
    return pairs


def project_model(model: nn.Module, choice: dict, size: int) -> None:
    """Projects the chosen layers' weights in place; a conv's BatchNorm gets, per group of b
    channels, one γ and one running variance (their means), so the folded scale γ/√(var + ε) is
    bitwise equal within each group and the folded conv stays exactly block-circulant (means
    and β, which only move the bias, stay per channel). For cost benchmarks of seeded models."""
    pairs = conv_bn_pairs(model, size)
    mods = dict(model.named_modules())
    with torch.no_grad():
        for p, b in choice.items():
            if b == 1:
                continue
            m = mods[p]
            m.weight.copy_(project(m.weight, b))
            bn = pairs.get(p)
            if bn is not None:
                for t in (bn.weight, bn.running_var):
                    t.copy_(t.reshape(-1, b).mean(1, keepdim=True).expand(-1, b).reshape(-1))


@torch.no_grad()
def load_onnx_weights(model: nn.Module, path: str) -> None:
    """Loads an exported model's Conv/Gemm/BatchNormalization initializers into `model` (the
    structure `export` was given: circulant layers take row 0 of each block, tied BatchNorms one
    scale and variance per group)."""
    from onnx import numpy_helper

    om = onnx.load(path)
    init = {t.name: torch.from_numpy(numpy_helper.to_array(t).copy()) for t in om.graph.initializer}
    for n in om.graph.node:  # the exporter shares equal initializers through Identity nodes
        if n.op_type == "Identity" and n.input[0] in init:
            init[n.output[0]] = init[n.input[0]]
    by_name = {n.name: [init.get(i) for i in n.input] for n in om.graph.node}
    for p, m in model.named_modules():
        scope = onnx_scope(p) if p else ""
        if isinstance(m, (nn.Conv2d, CirConv2d)):
            w, *bias = by_name[scope + "/Conv"][1:]
            if isinstance(m, CirConv2d):
                o, i = w.shape[:2]
                m.rows.copy_(w.reshape(o // m.b, m.b, i // m.b, m.b, *w.shape[2:])[:, 0])
            else:
                m.weight.copy_(w)
            if bias and bias[0] is not None and m.bias is not None:
                m.bias.copy_(bias[0])
        elif isinstance(m, (nn.Linear, CirLinear)):
            w, b = by_name[scope + "/Gemm"][1:3]
            if isinstance(m, CirLinear):
                m.rows.copy_(w.reshape(w.shape[0] // m.b, m.b, w.shape[1] // m.b, m.b)[:, 0])
            else:
                m.weight.copy_(w)
            m.bias.copy_(b)
        elif isinstance(m, (nn.BatchNorm2d, TiedBatchNorm2d)):
            g, b, mu, var = by_name[scope + "/BatchNormalization"][1:5]
            step = m.b if isinstance(m, TiedBatchNorm2d) else 1
            m.weight.copy_(g[::step])
            m.bias.copy_(b)
            m.running_mean.copy_(mu)
            m.running_var.copy_(var[::step])


@torch.no_grad()
def recalibrate(model: nn.Module, x: torch.Tensor, batch: int, batches: int, gen) -> None:
    """Re-estimates every BatchNorm's running statistics as the average over `batches` training
    batches (the projection changed what each BN sees)."""
    bns = [m for m in model.modules() if isinstance(m, (nn.BatchNorm2d, TiedBatchNorm2d))]
    perm = torch.randperm(len(x), generator=gen)
    batches = max(1, min(batches, len(x) // batch))
    model.train()
    for k in range(batches):
        for m in bns:
            m.momentum = 1.0 / (k + 1)
        model(x[perm[k * batch:(k + 1) * batch]])
    for m in bns:
        m.momentum = 0.1
    model.eval()


def average_into(avg: dict | None, n: int, model: nn.Module) -> tuple[dict, int]:
    """Running mean of the trainable parameters (SWA, Izmailov et al. 2018). The averaged model
    keeps the structure: circulant layers hold their row-0 parameters and tied BatchNorms one
    scale per group, so a mean of such models is such a model."""
    cur = {k: v.detach().clone() for k, v in model.named_parameters()}
    if avg is None:
        return cur, 1
    for k, v in cur.items():
        avg[k].mul_(n / (n + 1)).add_(v / (n + 1))
    return avg, n + 1


def load_average(model: nn.Module, avg: dict, x: torch.Tensor, batch: int, gen) -> None:
    """Loads averaged parameters and re-estimates the BatchNorm statistics for them (the running
    statistics of the last epoch belong to other weights)."""
    with torch.no_grad():
        for k, v in model.named_parameters():
            v.copy_(avg[k])
    recalibrate(model, x, batch, 100, gen)


def solve_only(a, log) -> None:
    """Steps 2-5 on any zoo model (BN as exported, seeded weights as built): blocks.json."""
    from . import export as E

    model, size, weights = E.build(a.model, a.data)
    onnx_path = os.path.join(a.out, f"{a.model}.onnx")
    E.export(a.model, a.data, onnx_path)
    layers = linear_layers(model)
    names = {p: onnx_name(p, m) for p, m in layers}
    lat_by_node = latencies(a.privinfer, onnx_path, CANDIDATES, a.plan_mbps)
    layers = [(p, m) for p, m in layers if names[p] in lat_by_node]
    xtr, ytr = load_train(a.data, None, a.fisher_images)
    x = torch.from_numpy(D.normalize_chw(xtr))
    if size != 32:
        x = F.interpolate(x, size=(size, size), mode="bilinear", align_corners=False)
    for p in model.parameters():
        p.requires_grad_(True)
    gen = torch.Generator().manual_seed(a.seed)
    omega = sensitivities(model, layers, x, torch.from_numpy(ytr), a.fisher_batches, min(a.batch_size, len(x) // max(1, a.fisher_batches)), gen)
    latency = {p: {b: lat_by_node[names[p]][b] for b in omega[p]} for p in omega}
    budget = sum(lat[max(b for b in lat if b <= a.budget_block)] for lat in latency.values())
    choice = solve(omega, latency, budget) if a.uniform is None else \
        {p: max(b for b in lat if b <= a.uniform) for p, lat in latency.items()}
    blocks = {names[p]: b for p, b in choice.items() if b > 1}
    json.dump(blocks, open(os.path.join(a.out, "blocks.json"), "w"), indent=1, sort_keys=True)
    # The seeded model projected onto the choice, with the blocks declared (cost benchmarks).
    project_model(model, choice, size)
    path = os.path.join(a.out, f"{a.model}_circulant_projected.onnx")
    torch.onnx.export(model.eval(), torch.zeros(1, 3, size, size), path, opset_version=OPSET,
                      input_names=["input"], output_names=["logits"], training=torch.onnx.TrainingMode.PRESERVE)
    set_metadata(path, f"{a.model}_circulant_projected", f"{weights}; projected onto block-circulant weights",
                 "ImageNet-shaped" if size != 32 else "CIFAR-10", size, "privinfer python/privinfer_models/circulant.py --solve-only")
    om = onnx.load(path)
    p = om.metadata_props.add()
    p.key, p.value = METADATA_KEY, json.dumps(blocks, sort_keys=True)
    onnx.save(om, path)
    log(f"{a.model} ({weights}): ILP budget {budget:.1f} ms (uniform b={a.budget_block}), chosen "
        f"{sum(latency[p][choice[p]] for p in choice):.1f} ms, dense {sum(l[1] for l in latency.values()):.1f} ms; "
        f"blocks " + ", ".join(f"{p}:{choice[p]}" for p, _ in layers))


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", default="resnet20", choices=sorted(ZOO),
                    help="a CIFAR ResNet to fine-tune, or any zoo model with --solve-only")
    ap.add_argument("--solve-only", action="store_true",
                    help="stop after the ILP: write blocks.json (ONNX node name -> b) for "
                         "`privinfer bench linear --circulant-blocks` (cost benchmarks of seeded models)")
    ap.add_argument("--uniform", type=int, help="with --solve-only: every layer at its largest candidate ≤ this b, no ILP")
    ap.add_argument("--fisher-images", type=int, default=2560, help="training images for the sensitivities with --solve-only")
    ap.add_argument("--data", default=DEFAULT_DATA)
    ap.add_argument("--out", required=True)
    ap.add_argument("--privinfer", default=os.path.join(os.path.dirname(__file__), "..", "..", "target", "release", "privinfer"))
    ap.add_argument("--plan-mbps", type=float, default=400.0, help="network profile of the latency model")
    ap.add_argument("--budget-block", type=int, default=4, help="latency budget: the uniform choice of this block size")
    ap.add_argument("--blocks", help="skip the ILP: JSON file of module path -> b (e.g. uniform)")
    ap.add_argument("--resume", help="continue fine-tuning the student of an earlier --out directory (its blocks and weights)")
    ap.add_argument("--fisher-batches", type=int, default=20)
    ap.add_argument("--epochs", type=int, default=6)
    ap.add_argument("--max-batches", type=int, help="batches per fine-tuning epoch (default: all)")
    ap.add_argument("--lr", type=float, default=0.01)
    ap.add_argument("--schedule", choices=("cosine", "constant"), default="cosine",
                    help="each epoch anneals from a peak to 0; the peaks follow a cosine over the epochs or stay at --lr")
    ap.add_argument("--swa", action="store_true",
                    help="export the mean of the epoch ends (stochastic weight averaging, BN recalibrated)")
    ap.add_argument("--teacher", choices=sorted(ZOO),
                    help="distill from this pretrained zoo model (default: the pretrained --model itself)")
    ap.add_argument("--batch-size", type=int, default=128)
    ap.add_argument("--test-limit", type=int)
    ap.add_argument("--seed", type=int, default=0)
    a = ap.parse_args(argv)
    torch.manual_seed(a.seed)
    torch.set_num_threads(os.cpu_count() or 1)
    log = run_logger(a.out)

    if a.solve_only:
        return solve_only(a, log)
    if not a.model.startswith("resnet") or a.model.startswith("resnet18"):
        raise SystemExit(f"--model {a.model}: fine-tuning supports the CIFAR ResNets; use --solve-only")
    size = ZOO[a.model][0]
    teacher, weights = frozen_pretrained(a.model, a.data)
    dense = fold_model(teacher)
    layers = linear_layers(dense)
    names = {p: onnx_name(p, m) for p, m in layers}

    xtr_f, ytr_t, xte, yte = cifar_splits(a.data, a.out, a.test_limit)
    gen = torch.Generator().manual_seed(a.seed)
    acc_base = evaluate(teacher, xte, yte, "cpu")
    log(f"{a.model}: test accuracy {100 * acc_base:.2f} % on {len(xte)} images")
    distiller = teacher
    if a.teacher and a.teacher != a.model:
        distiller, _ = frozen_pretrained(a.teacher, a.data)
        log(f"teacher {a.teacher}: test accuracy {100 * evaluate(distiller, xte, yte, 'cpu'):.2f} %")

    omega = latency = None
    prev = None
    if a.resume:
        prev = json.load(open(os.path.join(a.resume, "circulant.json")))
        choice, omega, latency, budget = prev["blocks"], prev["sensitivity"], prev["latency_ms"], prev["budget_ms"]
    elif a.blocks:
        choice = json.load(open(a.blocks))
        budget = None
    else:
        # Latency per (layer, b) from our cost model, on the folded dense model.
        dense_onnx = os.path.join(a.out, f"{a.model}_folded.onnx")
        export(dense, dense_onnx, {}, f"{a.model}_folded", weights)
        lat_by_node = latencies(a.privinfer, dense_onnx, CANDIDATES, a.plan_mbps)
        missing = [names[p] for p, _ in layers if names[p] not in lat_by_node]
        if missing:
            raise SystemExit(f"latency model has no rows for {missing}")
        omega = sensitivities(dense, layers, xtr_f, ytr_t, a.fisher_batches, a.batch_size, gen)
        latency = {p: {b: lat_by_node[names[p]][b] for b in omega[p]} for p in omega}
        budget = sum(lat[max(b for b in lat if b <= a.budget_block)] for lat in latency.values())
        choice = solve(omega, latency, budget)
        log(f"ILP: budget {budget:.1f} ms (uniform b={a.budget_block}), chosen "
            f"{sum(latency[p][choice[p]] for p in choice):.1f} ms (dense {sum(l[1] for l in latency.values()):.1f} ms)")
    log("blocks " + ", ".join(f"{p}:{choice.get(p, 1)}" for p, _ in layers))

    # The student keeps its BatchNorms (tied per group after a circulant conv) for training.
    student = copy.deepcopy(teacher)
    for p in student.parameters():
        p.requires_grad_(True)
    bn_of = conv_bn_pairs(student, size)
    paths = {m: q for q, m in student.named_modules()}
    mods = dict(student.named_modules())
    for p, _ in layers:
        b = choice.get(p, 1)
        if b == 1:
            continue
        m = mods[p]
        if isinstance(m, nn.Conv2d):
            set_module(student, p, CirConv2d(m, b))
            if p in bn_of:
                set_module(student, paths[bn_of[p]], TiedBatchNorm2d(bn_of[p], b))
        else:
            set_module(student, p, CirLinear(m, b))
    if prev is not None:
        pt = os.path.join(a.resume, "student.pt")
        if os.path.exists(pt):
            student.load_state_dict(torch.load(pt))
        else:
            load_onnx_weights(student, os.path.join(a.resume, f"{a.model}_circulant.onnx"))
        acc_proj = prev["accuracy_projected"]
        acc = evaluate(student, xte, yte, "cpu")
        log(f"resumed from {a.resume} ({100 * prev['accuracy']:.2f} % after {prev['epochs']} epochs; "
            f"loaded: {100 * acc:.2f} %)")
    else:
        acc_proj = evaluate(student, xte, yte, "cpu")
        recalibrate(student, xtr_f, a.batch_size, 30, gen)
        acc_cal = evaluate(student, xte, yte, "cpu")
        log(f"projected, before fine-tuning: {100 * acc_proj:.2f} %; BN statistics recalibrated: {100 * acc_cal:.2f} %")
        acc = acc_cal
    swa, swa_n = None, 0
    for e in range(a.epochs):
        # Each epoch anneals from its peak to 0 (run_epochs); the peaks follow a cosine over the
        # epochs, or stay at --lr (`--schedule constant`, the cyclic schedule of SWA).
        peak = a.lr if a.schedule == "constant" else a.lr * 0.5 * (1 + np.cos(np.pi * e / a.epochs))
        run_epochs(student, distiller, xtr_f, ytr_t, student.parameters(), peak,
                   1, a.max_batches, a.batch_size, gen, None, log)
        acc = evaluate(student, xte, yte, "cpu")
        log(f"fine-tuning epoch {e + 1}: {100 * acc:.2f} %")
        if a.swa:
            swa, swa_n = average_into(swa, swa_n, student)
    acc_last = acc
    if a.swa:
        load_average(student, swa, xtr_f, a.batch_size, gen)
        acc = evaluate(student, xte, yte, "cpu")
        log(f"weights averaged over the {swa_n} epoch ends, BN statistics recalibrated: {100 * acc:.2f} % "
            f"(last epoch {100 * acc_last:.2f} %)")
    torch.save(student.state_dict(), os.path.join(a.out, "student.pt"))
    path = os.path.join(a.out, f"{a.model}_circulant.onnx")
    export(student, path, {names[p]: choice.get(p, 1) for p, _ in layers}, f"{a.model}_circulant",
           f"block-circulant fine-tuned from {weights}")
    summary = {
        "model": a.model, "blocks": {p: choice.get(p, 1) for p, _ in layers},
        "onnx_blocks": {names[p]: choice.get(p, 1) for p, _ in layers},
        "sensitivity": omega, "latency_ms": latency, "budget_ms": budget, "plan_mbps": a.plan_mbps,
        "accuracy_base": acc_base, "accuracy_projected": acc_proj, "accuracy": acc,
        "accuracy_last_epoch": acc_last, "swa_epochs": swa_n, "schedule": a.schedule,
        "teacher": a.teacher or a.model,
        "command": "python -m privinfer_models.circulant " + " ".join(argv if argv is not None else __import__("sys").argv[1:]),
        "test_images": len(xte), "epochs": a.epochs + (prev["epochs"] if prev else 0), "lr": a.lr,
        "resumed_from": prev["command"] if prev else None,
    }
    json.dump(summary, open(os.path.join(a.out, "circulant.json"), "w"), indent=1)
    log(json.dumps({k: summary[k] for k in ("blocks", "accuracy_base", "accuracy_projected", "accuracy")}))


if __name__ == "__main__":
    main()
