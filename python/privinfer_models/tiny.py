"""Tiny models for the committed Rust fixtures (models/tiny/): every IR op on small shapes.

- TinyCNN (3x16x16): conv, BatchNorm that cannot be folded (after a residual Add), depthwise
  conv, ReLU6, max-pool with padding, average pool with padding (count_include_pad = 0),
  option-A-style strided slice + channel zero padding, global average pool, linear.
- TinyViT (3x8x8): patch conv, class-token Concat, position Add, LayerNorm, attention
  (MatMul of activations, Transpose, Softmax, scaling Mul), GELU, Gather of the class token.
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
