"""CoPriv's re-parameterization: a block without its inner ReLU equals the merged conv away from
the map border (exactly up to float rounding), for identity and option-A shortcuts."""

import torch
import torch.nn.functional as F

from privinfer_models.copriv import MergedBlock, merge_block
from privinfer_models.zoo import _BasicBlockA


def linear_block(b, x):
    h = b.bn1(b.conv1(x))
    return F.relu(b.bn2(b.conv2(h)) + b.shortcut(x))


def randomize(b, seed):
    g = torch.Generator().manual_seed(seed)
    for bn in (b.bn1, b.bn2):
        bn.running_mean.copy_(torch.randn(bn.num_features, generator=g) * 0.1)
        bn.running_var.copy_(torch.rand(bn.num_features, generator=g) + 0.5)
        bn.weight.data.copy_(torch.randn(bn.num_features, generator=g))
        bn.bias.data.copy_(torch.randn(bn.num_features, generator=g) * 0.1)
    b.eval()


def test_merged_block_equals_the_linear_block_inside_the_map():
    torch.manual_seed(0)
    for in_c, planes, stride, border in [(8, 8, 1, 2), (8, 16, 2, 2)]:
        b = _BasicBlockA(in_c, planes, stride)
        randomize(b, stride)
        x = torch.randn(2, in_c, 16, 16)
        with torch.no_grad():
            want = linear_block(b, x)
            got = MergedBlock(merge_block(b))(x)
        assert got.shape == want.shape
        inner = (slice(None), slice(None), slice(border, -border), slice(border, -border))
        assert torch.allclose(got[inner], want[inner], atol=1e-4), (got[inner] - want[inner]).abs().max()
        # At the border the original's intermediate zero padding differs (not asserted equal).
