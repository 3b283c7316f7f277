"""AESPA: the inference fold x·(a·x + b) + c equals the trained activation (basis-wise BN in eval
mode), and the least-squares start fits the ReLU it replaces better than AESPA's fixed Hermite
weights."""

import math

import torch

from privinfer_models.aespa import F0, F1, F2, Aespa, Poly2


def test_fold_equals_the_activation_in_eval_mode():
    torch.manual_seed(0)
    act = Aespa(6)
    with torch.no_grad():
        act.bn1.running_mean.uniform_(-1, 1)
        act.bn1.running_var.uniform_(0.5, 2)
        act.bn2.running_mean.uniform_(-1, 1)
        act.bn2.running_var.uniform_(0.5, 2)
        act.w.uniform_(-1, 1)
    act.eval()
    x = torch.randn(4, 6, 5, 5) * 2
    y = act(x)
    z = Poly2(*act.coefficients())(x)
    assert torch.allclose(y, z, atol=1e-5), (y - z).abs().max()


def test_least_squares_start_beats_the_fixed_hermite_weights():
    torch.manual_seed(1)
    x = torch.randn(64, 3, 4, 4) * 1.5 + 0.3
    target = torch.relu(x)
    act = Aespa(3)
    with torch.no_grad():
        for bn, v in zip((act.bn1, act.bn2), (x, (x * x - 1) / math.sqrt(2))):
            bn.running_mean.copy_(v.mean((0, 2, 3)))
            bn.running_var.copy_(v.var((0, 2, 3)))
    act.eval()
    assert torch.allclose(act.w, torch.tensor([F0, F1, F2]).repeat(3, 1))
    before = (act(x) - target).pow(2).mean()
    act.fit(x, target)
    after = (act(x) - target).pow(2).mean()
    assert after < 0.5 * before, (before, after)
