"""Model zoo: the architectures privinfer benchmarks, as plain PyTorch modules.

- ResNet-20/32/44/56 for CIFAR-10 (He et al. 2016, CIFAR variant, option-A shortcuts), with
  the key layout of the pretrained checkpoints in ../shared/data/resnet-cifar10.
- ResNet-18 (option-B shortcuts) at 64x64 (Tiny ImageNet shape: 3x3 stem, no max-pool,
  200 classes) and 224x224 (ImageNet stem: 7x7/2 conv + 3x3/2 max-pool, 1000 classes).
- MobileNetV2 (width 1.0) at 32x32 (CIFAR variant: stride-1 stem and first bottleneck stage,
  10 classes) and 224x224 (1000 classes).
- A small ViT for 32x32 (patch 4, dim 128, depth 6, 4 heads, MLP 256, class token).

Every forward pass is written for batch 1 export with static shapes (reshape targets are
Python ints), so the ONNX graphs contain only the ops privinfer imports.
"""

from __future__ import annotations

import math

import torch
import torch.nn as nn
import torch.nn.functional as F


# --------------------------------------------------------------------------- CIFAR ResNets
class _ShortcutA(nn.Module):
    """Option A: subsample by 2 in H and W, zero-pad planes/4 channels on each side."""

    def __init__(self, pad: int):
        super().__init__()
        self.pad = pad

    def forward(self, x):
        return F.pad(x[:, :, ::2, ::2], (0, 0, 0, 0, self.pad, self.pad))


class _BasicBlockA(nn.Module):
    def __init__(self, in_planes: int, planes: int, stride: int):
        super().__init__()
        self.conv1 = nn.Conv2d(in_planes, planes, 3, stride, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(planes)
        self.conv2 = nn.Conv2d(planes, planes, 3, 1, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(planes)
        self.shortcut = nn.Identity()
        if stride != 1 or in_planes != planes:
            self.shortcut = _ShortcutA(planes // 4)

    def forward(self, x):
        out = F.relu(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        return F.relu(out + self.shortcut(x))


class ResNetCifar(nn.Module):
    """ResNet-(6n+2) for CIFAR-10; parameter names match pytorch_resnet_cifar10 checkpoints."""

    def __init__(self, depth: int, num_classes: int = 10):
        super().__init__()
        assert (depth - 2) % 6 == 0, "depth must be 6n + 2"
        n = (depth - 2) // 6
        self.in_planes = 16
        self.conv1 = nn.Conv2d(3, 16, 3, 1, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(16)
        self.layer1 = self._stage(16, n, 1)
        self.layer2 = self._stage(32, n, 2)
        self.layer3 = self._stage(64, n, 2)
        self.linear = nn.Linear(64, num_classes)

    def _stage(self, planes: int, n: int, stride: int) -> nn.Sequential:
        blocks = []
        for s in [stride] + [1] * (n - 1):
            blocks.append(_BasicBlockA(self.in_planes, planes, s))
            self.in_planes = planes
        return nn.Sequential(*blocks)

    def forward(self, x):
        out = F.relu(self.bn1(self.conv1(x)))
        out = self.layer3(self.layer2(self.layer1(out)))
        out = F.adaptive_avg_pool2d(out, 1)
        return self.linear(torch.flatten(out, 1))


def load_cifar_resnet(depth: int, checkpoint: str) -> ResNetCifar:
    """A CIFAR ResNet with pretrained weights (checkpoint keys carry a `module.` prefix)."""
    model = ResNetCifar(depth)
    ckpt = torch.load(checkpoint, map_location="cpu")
    state = ckpt.get("state_dict", ckpt)
    state = {k[len("module."):] if k.startswith("module.") else k: v for k, v in state.items()}
    model.load_state_dict(state, strict=True)
    return model.eval()


# --------------------------------------------------------------------------- ResNet-18
class _BasicBlockB(nn.Module):
    def __init__(self, in_planes: int, planes: int, stride: int, act=None):
        super().__init__()
        act = act or (lambda c: nn.ReLU())
        self.conv1 = nn.Conv2d(in_planes, planes, 3, stride, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(planes)
        self.act1 = act(planes)
        self.conv2 = nn.Conv2d(planes, planes, 3, 1, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(planes)
        self.act2 = act(planes)
        self.shortcut = nn.Sequential()
        if stride != 1 or in_planes != planes:
            self.shortcut = nn.Sequential(
                nn.Conv2d(in_planes, planes, 1, stride, bias=False), nn.BatchNorm2d(planes)
            )

    def forward(self, x):
        out = self.act1(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        return self.act2(out + self.shortcut(x))


class HermiteRelu(nn.Module):
    """ReLU's degree-2 Hermite expansion for a standard normal input (AESPA's fixed start,
    F0 + F1·h1(x) + F2·h2(x)), exported as x·(a·x + b) + c with per-channel constants: the
    HE-friendly activation of the seeded FHE-mode ResNet-18, a cost benchmark. Untrained, a
    17-deep composition of squares is chaotic (BENCHMARKS.md § FHE mode: its logits barely depend
    on the image); AESPA's training is what makes such a network useful."""

    def __init__(self, c: int):
        super().__init__()
        f0, f1, f2 = 1 / math.sqrt(2 * math.pi), 0.5, 1 / math.sqrt(4 * math.pi)
        self.register_buffer("a", torch.full((1, c, 1, 1), f2 / math.sqrt(2)))
        self.register_buffer("b", torch.full((1, c, 1, 1), f1))
        self.register_buffer("c", torch.full((1, c, 1, 1), f0 - f2 / math.sqrt(2)))

    def forward(self, x):
        return x * (self.a * x + self.b) + self.c


class ResNet18(nn.Module):
    def __init__(self, num_classes: int, imagenet_stem: bool, act=None, avg_pool_stem: bool = False):
        super().__init__()
        mk = act or (lambda c: nn.ReLU())
        if imagenet_stem:
            # FHE mode evaluates no comparison: its ImageNet stem averages where torchvision's
            # takes the maximum (`avg_pool_stem`).
            pool = nn.AvgPool2d(3, 2, 1) if avg_pool_stem else nn.MaxPool2d(3, 2, 1)
            self.stem = nn.Sequential(
                nn.Conv2d(3, 64, 7, 2, 3, bias=False), nn.BatchNorm2d(64), mk(64), pool,
            )
        else:
            self.stem = nn.Sequential(nn.Conv2d(3, 64, 3, 1, 1, bias=False), nn.BatchNorm2d(64), mk(64))
        layers, in_planes = [], 64
        for planes, stride in [(64, 1), (128, 2), (256, 2), (512, 2)]:
            layers.append(nn.Sequential(_BasicBlockB(in_planes, planes, stride, act),
                                        _BasicBlockB(planes, planes, 1, act)))
            in_planes = planes
        self.layers = nn.Sequential(*layers)
        self.fc = nn.Linear(512, num_classes)

    def forward(self, x):
        out = self.layers(self.stem(x))
        out = F.adaptive_avg_pool2d(out, 1)
        return self.fc(torch.flatten(out, 1))


# --------------------------------------------------------------------------- MobileNetV2
class _InvertedResidual(nn.Module):
    def __init__(self, inp: int, oup: int, stride: int, expand: int):
        super().__init__()
        hidden = inp * expand
        self.use_res = stride == 1 and inp == oup
        layers = []
        if expand != 1:
            layers += [nn.Conv2d(inp, hidden, 1, bias=False), nn.BatchNorm2d(hidden), nn.ReLU6()]
        layers += [
            nn.Conv2d(hidden, hidden, 3, stride, 1, groups=hidden, bias=False), nn.BatchNorm2d(hidden), nn.ReLU6(),
            nn.Conv2d(hidden, oup, 1, bias=False), nn.BatchNorm2d(oup),
        ]
        self.conv = nn.Sequential(*layers)

    def forward(self, x):
        return x + self.conv(x) if self.use_res else self.conv(x)


class MobileNetV2(nn.Module):
    # (expansion t, channels c, repeats n, stride s) [Sandler et al. 2018, Table 2]
    CFG = [(1, 16, 1, 1), (6, 24, 2, 2), (6, 32, 3, 2), (6, 64, 4, 2), (6, 96, 3, 1), (6, 160, 3, 2), (6, 320, 1, 1)]

    def __init__(self, num_classes: int, cifar: bool):
        super().__init__()
        stem_stride = 1 if cifar else 2
        layers = [nn.Conv2d(3, 32, 3, stem_stride, 1, bias=False), nn.BatchNorm2d(32), nn.ReLU6()]
        inp = 32
        for i, (t, c, n, s) in enumerate(self.CFG):
            if cifar and i == 1:
                s = 1  # keep 32x32 resolution longer on CIFAR inputs
            for j in range(n):
                layers.append(_InvertedResidual(inp, c, s if j == 0 else 1, t))
                inp = c
        layers += [nn.Conv2d(inp, 1280, 1, bias=False), nn.BatchNorm2d(1280), nn.ReLU6()]
        self.features = nn.Sequential(*layers)
        self.classifier = nn.Linear(1280, num_classes)

    def forward(self, x):
        out = F.adaptive_avg_pool2d(self.features(x), 1)
        return self.classifier(torch.flatten(out, 1))


# --------------------------------------------------------------------------- ViT
class _Attention(nn.Module):
    def __init__(self, dim: int, heads: int, tokens: int):
        super().__init__()
        self.heads, self.tokens, self.dh = heads, tokens, dim // heads
        self.q = nn.Linear(dim, dim)
        self.k = nn.Linear(dim, dim)
        self.v = nn.Linear(dim, dim)
        self.proj = nn.Linear(dim, dim)
        self.scale = 1.0 / math.sqrt(self.dh)

    def forward(self, x):
        # Batch 1 (export) keeps literal shapes so the ONNX graph has no Shape/Gather ops;
        # training batches take the leading dimension from the input.
        b = 1 if x.shape[0] == 1 else x.shape[0]
        t, h, dh = self.tokens, self.heads, self.dh
        q = self.q(x).reshape(b, t, h, dh).transpose(1, 2)
        k = self.k(x).reshape(b, t, h, dh).permute(0, 2, 3, 1)
        v = self.v(x).reshape(b, t, h, dh).transpose(1, 2)
        att = torch.softmax(torch.matmul(q, k) * self.scale, dim=-1)
        out = torch.matmul(att, v).transpose(1, 2).reshape(b, t, h * dh)
        return self.proj(out)


class _Block(nn.Module):
    def __init__(self, dim: int, heads: int, mlp: int, tokens: int):
        super().__init__()
        self.ln1 = nn.LayerNorm(dim)
        self.attn = _Attention(dim, heads, tokens)
        self.ln2 = nn.LayerNorm(dim)
        self.fc1 = nn.Linear(dim, mlp)
        self.fc2 = nn.Linear(mlp, dim)

    def forward(self, x):
        x = x + self.attn(self.ln1(x))
        return x + self.fc2(F.gelu(self.fc1(self.ln2(x))))


class ViT(nn.Module):
    def __init__(self, image: int = 32, patch: int = 4, dim: int = 128, depth: int = 6, heads: int = 4,
                 mlp: int = 256, num_classes: int = 10):
        super().__init__()
        self.n = (image // patch) ** 2
        self.dim = dim
        self.patch = nn.Conv2d(3, dim, patch, patch)
        self.cls = nn.Parameter(torch.randn(1, 1, dim) * 0.02)
        self.pos = nn.Parameter(torch.randn(1, self.n + 1, dim) * 0.02)
        self.blocks = nn.Sequential(*[_Block(dim, heads, mlp, self.n + 1) for _ in range(depth)])
        self.ln = nn.LayerNorm(dim)
        self.head = nn.Linear(dim, num_classes)

    def forward(self, x):
        if x.shape[0] == 1:
            x = self.patch(x).reshape(1, self.dim, self.n).transpose(1, 2)
            x = torch.cat([self.cls, x], dim=1) + self.pos
        else:
            b = x.shape[0]
            x = self.patch(x).reshape(b, self.dim, self.n).transpose(1, 2)
            x = torch.cat([self.cls.expand(b, -1, -1), x], dim=1) + self.pos
        x = self.ln(self.blocks(x))
        return self.head(x[:, 0])


class Vgg16Cifar(nn.Module):
    """VGG-16 (configuration D) on 32x32 inputs with BN after every conv, 2x2 max pools after the
    blocks of 2, 2, 3, 3, 3 convs and one FC 512 -> 10: `privinfer bench linear`'s vgg16-32 shapes."""

    def __init__(self, num_classes: int = 10):
        super().__init__()
        layers, c = [], 3
        for widths in ([64, 64], [128, 128], [256, 256, 256], [512, 512, 512], [512, 512, 512]):
            for m in widths:
                layers += [nn.Conv2d(c, m, 3, padding=1, bias=False), nn.BatchNorm2d(m), nn.ReLU()]
                c = m
            layers.append(nn.MaxPool2d(2))
        self.features = nn.Sequential(*layers)
        self.classifier = nn.Linear(512, num_classes)

    def forward(self, x):
        return self.classifier(torch.flatten(self.features(x), 1))


# --------------------------------------------------------------------------- registry
CIFAR_CHECKPOINTS = {
    20: "resnet20-12fca82f.th",
    32: "resnet32-d509ac18.th",
    44: "resnet44-014dd654.th",
    56: "resnet56-4bfd9763.th",
}

# name -> (input H = W, builder(data_dir) -> (model, weights description))
def _cifar(depth):
    def build(data_dir):
        ck = CIFAR_CHECKPOINTS[depth]
        return (
            load_cifar_resnet(depth, f"{data_dir}/resnet-cifar10/{ck}"),
            f"pretrained: {ck} (pytorch_resnet_cifar10, BSD-2-Clause), CIFAR-10",
        )
    return build


def _random(ctor):
    def build(data_dir, seed=0):
        torch.manual_seed(seed)
        return ctor().eval(), f"random-seeded (seed {seed}); no trained weights available; BN statistics calibrated on CIFAR-10 images"
    return build


ZOO = {
    "resnet20": (32, _cifar(20)),
    "resnet32": (32, _cifar(32)),
    "resnet44": (32, _cifar(44)),
    "resnet56": (32, _cifar(56)),
    "resnet18_64": (64, _random(lambda: ResNet18(200, imagenet_stem=False))),
    # FHE mode's ResNet-18 (HyPHEN's Tiny ImageNet shape) with degree-2 activations.
    "resnet18_64_aespa": (64, _random(lambda: ResNet18(200, imagenet_stem=False, act=HermiteRelu))),
    # The ImageNet stem (7x7 stride 2, max-pool) at 64x64: `privinfer bench linear`'s resnet18-64 shapes.
    "resnet18_64_imagenet": (64, _random(lambda: ResNet18(200, imagenet_stem=True))),
    "resnet18_224": (224, _random(lambda: ResNet18(1000, imagenet_stem=True))),
    # FHE mode's ImageNet ResNet-18 (HyPHEN's): degree-2 activations, an average-pooling stem.
    "resnet18_224_aespa": (224, _random(lambda: ResNet18(1000, imagenet_stem=True, act=HermiteRelu,
                                                         avg_pool_stem=True))),
    "mobilenetv2_32": (32, _random(lambda: MobileNetV2(10, cifar=True))),
    "mobilenetv2_224": (224, _random(lambda: MobileNetV2(1000, cifar=False))),
    "vit_32": (32, _random(lambda: ViT())),
    "vgg16_32": (32, _random(lambda: Vgg16Cifar(10))),
}
