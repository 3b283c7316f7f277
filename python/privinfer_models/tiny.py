"""Tiny models for the committed Rust fixtures (models/tiny/): every IR op on small shapes.

- TinyCNN (3x16x16): conv, BatchNorm that cannot be folded (after a residual Add), depthwise
  conv, ReLU6, max-pool with padding, average pool with padding (count_include_pad = 0),
  option-A-style strided slice + channel zero padding, global average pool, linear.
- TinyViT (3x8x8): patch conv, class-token Concat, position Add, LayerNorm, attention
  (MatMul of activations, Transpose, Softmax, scaling Mul), GELU, Gather of the class token.
- TinyTEViT (3x8x8): the same built on torch.nn.TransformerEncoderLayer (norm-first, GELU,
  batch-first): a packed q/k/v projection split by Slice, sequence-first transposes, the scaled
  query, Gemm, and the class-token expand as Shape/Equal/Where/Expand arithmetic.
- TinyFHE (3x8x8): an AESPA-style ResNet for FHE mode: per-channel x·(a·x + b) + c
  activations, a BatchNorm after a residual Add (a degree-1 polynomial), a stride-2 block with
  an option-A shortcut, global average pool, linear; `tiny_fhe_relu`: the same with ReLUs.
- TinyFHEProj (3x16x16): the same activations in a ResNet-18-shaped net (option-B 1x1
  projection shortcut on the stride-2 block, 12 classes), whose maps split over ciphertexts at
  the small test parameters (FHE mode's PRCR path).
- TinyFHEBands (3x24x24): an ImageNet-ResNet-shaped net on a map that is not a power of two
  (7x7 stride-2 stem, 3x3 stride-2 average pool with padding, a residual block, a stride-2 block
  with a 1x1 projection), whose maps split into row bands at the small test parameters (FHE
  mode's maps larger than a ciphertext).
Weights are random (seeded).
"""

import torch
import torch.nn as nn
import torch.nn.functional as F

from .zoo import ViT


class TinyCNN(nn.Module):
    def __init__(self):
        super().__init__()
        self.conv1 = nn.Conv2d(3, 8, 3, 1, 1)
        self.conv2 = nn.Conv2d(8, 8, 3, 1, 1, bias=False)
        self.bn = nn.BatchNorm2d(8)
        self.dw = nn.Conv2d(8, 8, 3, 2, 1, groups=8, bias=False)
        self.pw = nn.Conv2d(8, 16, 1)
        self.fc = nn.Linear(16, 5)

    def forward(self, x):
        x = F.relu(self.conv1(x))
        x = self.bn(self.conv2(x) + x)          # BN after Add: not foldable
        x = F.relu6(x)
        x = F.max_pool2d(x, 3, 1, 1)             # padded max-pool
        y = F.relu6(self.pw(self.dw(x)))         # 8x8
        s = F.pad(x[:, :, ::2, ::2], (0, 0, 0, 0, 4, 4))  # option-A shortcut 8 -> 16 channels
        y = y + s
        y = F.avg_pool2d(y, 3, 2, 1, count_include_pad=False)  # 4x4
        y = F.adaptive_avg_pool2d(y, 1)
        return self.fc(torch.flatten(y, 1))


class _Poly(nn.Module):
    def __init__(self, c):
        super().__init__()
        self.a = nn.Parameter(torch.empty(1, c, 1, 1).uniform_(0.05, 0.3))
        self.b = nn.Parameter(torch.empty(1, c, 1, 1).uniform_(0.3, 0.7))
        self.c = nn.Parameter(torch.empty(1, c, 1, 1).uniform_(-0.2, 0.2))

    def forward(self, x):
        return x * (self.a * x + self.b) + self.c


class TinyFHE(nn.Module):
    def __init__(self, relu: bool = False):
        super().__init__()
        cbn = lambda i, o, s: nn.Sequential(nn.Conv2d(i, o, 3, s, 1, bias=False), nn.BatchNorm2d(o))
        act = (lambda c: nn.ReLU()) if relu else _Poly
        self.stem, self.p0 = cbn(3, 4, 1), act(4)
        self.c1, self.p1, self.c2, self.p2 = cbn(4, 4, 1), act(4), cbn(4, 4, 1), act(4)
        self.bn = nn.BatchNorm2d(4)
        self.c3, self.p3, self.c4, self.p4 = cbn(4, 8, 2), act(8), cbn(8, 8, 1), act(8)
        self.fc = nn.Linear(8, 5)

    def forward(self, x):
        x = self.p0(self.stem(x))
        x = self.p2(self.bn(self.c2(self.p1(self.c1(x))) + x))   # BN after Add: a degree-1 poly
        s = F.pad(x[:, :, ::2, ::2], (0, 0, 0, 0, 2, 2))
        x = self.p4(self.c4(self.p3(self.c3(x))) + s)
        return self.fc(torch.flatten(F.adaptive_avg_pool2d(x, 1), 1))


class TinyFHEProj(nn.Module):
    def __init__(self):
        super().__init__()
        cbn = lambda i, o, s, k=3: nn.Sequential(nn.Conv2d(i, o, k, s, k // 2, bias=False), nn.BatchNorm2d(o))
        self.stem, self.p0 = cbn(3, 16, 1), _Poly(16)
        self.c1, self.p1, self.c2, self.p2 = cbn(16, 16, 1), _Poly(16), cbn(16, 16, 1), _Poly(16)
        self.c3, self.p3, self.c4, self.p4 = cbn(16, 32, 2), _Poly(32), cbn(32, 32, 1), _Poly(32)
        self.proj = cbn(16, 32, 2, k=1)
        self.fc = nn.Linear(32, 12)

    def forward(self, x):
        x = self.p0(self.stem(x))
        x = self.p2(self.c2(self.p1(self.c1(x))) + x)
        x = self.p4(self.c4(self.p3(self.c3(x))) + self.proj(x))
        return self.fc(torch.flatten(F.adaptive_avg_pool2d(x, 1), 1))


class TinyFHEBands(nn.Module):
    def __init__(self):
        super().__init__()
        cbn = lambda i, o, s, k=3: nn.Sequential(nn.Conv2d(i, o, k, s, k // 2, bias=False), nn.BatchNorm2d(o))
        self.stem, self.p0 = cbn(3, 4, 2, k=7), _Poly(4)
        self.pool = nn.AvgPool2d(3, 2, 1)
        self.c1, self.p1, self.c2, self.p2 = cbn(4, 4, 1), _Poly(4), cbn(4, 4, 1), _Poly(4)
        self.c3, self.p3, self.c4, self.p4 = cbn(4, 8, 2), _Poly(8), cbn(8, 8, 1), _Poly(8)
        self.proj = cbn(4, 8, 2, k=1)
        self.fc = nn.Linear(8, 5)

    def forward(self, x):
        x = self.pool(self.p0(self.stem(x)))
        x = self.p2(self.c2(self.p1(self.c1(x))) + x)
        x = self.p4(self.c4(self.p3(self.c3(x))) + self.proj(x))
        return self.fc(torch.flatten(F.adaptive_avg_pool2d(x, 1), 1))


def tiny_fhe_bands(seed=0):
    torch.manual_seed(seed)
    return _seed_bns(TinyFHEBands(), var=(1.0, 4.0), weight=(0.3, 0.6))


def _seed_bns(m: nn.Module, var=(0.5, 2.0), weight=(0.5, 1.0)) -> nn.Module:
    """Random BN statistics and affine parameters (the fixtures' BNs are not identities)."""
    with torch.no_grad():
        for bn in [mod for mod in m.modules() if isinstance(mod, nn.BatchNorm2d)]:
            bn.running_mean.uniform_(-0.3, 0.3)
            bn.running_var.uniform_(*var)
            bn.weight.uniform_(*weight)
            bn.bias.uniform_(-0.3, 0.3)
    return m.eval()


def tiny_fhe_proj(seed=0):
    torch.manual_seed(seed)
    return _seed_bns(TinyFHEProj(), var=(1.0, 4.0), weight=(0.3, 0.6))


def tiny_fhe(seed=0, relu=False):
    torch.manual_seed(seed)
    return _seed_bns(TinyFHE(relu))


def tiny_cnn(seed=0):
    torch.manual_seed(seed)
    m = TinyCNN()
    with torch.no_grad():
        m.bn.running_mean.uniform_(-0.5, 0.5)
        m.bn.running_var.uniform_(0.5, 2.0)
        m.bn.weight.uniform_(0.5, 1.5)
        m.bn.bias.uniform_(-0.5, 0.5)
    return m.eval()


def tiny_vit(seed=0):
    torch.manual_seed(seed)
    return ViT(image=8, patch=2, dim=16, depth=1, heads=2, mlp=32, num_classes=5).eval()


class TinyTEViT(nn.Module):
    """A ViT on torch.nn.TransformerEncoderLayer, as users write one."""

    def __init__(self, dim=16, heads=2, mlp=32, depth=1, classes=4):
        super().__init__()
        self.patch = nn.Conv2d(3, dim, 4, 4)
        self.cls = nn.Parameter(torch.randn(1, 1, dim) * 0.1)
        self.pos = nn.Parameter(torch.randn(1, 5, dim) * 0.1)
        layer = nn.TransformerEncoderLayer(dim, heads, mlp, dropout=0.0, activation="gelu",
                                           norm_first=True, batch_first=True)
        self.enc = nn.TransformerEncoder(layer, depth, enable_nested_tensor=False)
        self.norm = nn.LayerNorm(dim)
        self.head = nn.Linear(dim, classes)

    def forward(self, x):
        x = self.patch(x).flatten(2).transpose(1, 2)
        x = torch.cat([self.cls.expand(x.shape[0], -1, -1), x], 1) + self.pos
        return self.head(self.norm(self.enc(x))[:, 0])


def tiny_te_vit(seed=0):
    torch.manual_seed(seed)
    return TinyTEViT().eval()
