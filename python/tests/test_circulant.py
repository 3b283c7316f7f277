"""The circulant toolkit: projection, layers, the ILP against brute force, export metadata."""

import itertools
import json

import onnx
import pytest
import torch
import torch.nn as nn

pulp = pytest.importorskip("pulp")

from privinfer_models import circulant as C  # noqa: E402


def test_projection_is_the_nearest_block_circulant_matrix():
    torch.manual_seed(0)
    for shape, b in [((8, 12, 3, 3), 4), ((16, 16), 8), ((6, 4, 1, 1), 2)]:
        w = torch.randn(*shape, dtype=torch.float64)
        p = C.project(w, b)
        # Every b×b block of every tap is circulant: entry (r, c) = entry (0, (c − r) mod b).
        for i in range(shape[0]):
            for j in range(shape[1]):
                src = p[(i // b) * b, (j // b) * b + ((j % b) - (i % b)) % b]
                assert torch.equal(p[i, j], src)
        assert torch.allclose(C.project(p, b), p, rtol=0, atol=1e-12)
        # Orthogonal projection: the residual is orthogonal to every block-circulant matrix.
        v = C.project(torch.randn(*shape, dtype=torch.float64), b)
        assert abs(float(((w - p) * v).sum())) < 1e-9
        assert C.is_block_circulant(p, b) and not C.is_block_circulant(w, b)


def test_layers_compute_with_their_expanded_weights():
    torch.manual_seed(1)
    conv = nn.Conv2d(8, 16, 3, 2, 1, bias=True)
    cc = C.CirConv2d(conv, 4)
    x = torch.randn(2, 8, 9, 9)
    assert torch.allclose(cc(x), cc.to_dense()(x), atol=1e-6)
    assert C.is_block_circulant(cc.to_dense().weight.detach(), 4)
    fc = nn.Linear(16, 8)
    cl = C.CirLinear(fc, 8)
    y = torch.randn(3, 16)
    assert torch.allclose(cl(y), cl.to_dense()(y), atol=1e-6)
    assert torch.allclose(cl.to_dense().weight, C.project(fc.weight.detach(), 8))


def test_ilp_matches_brute_force():
    omega = {"a": {1: 0.0, 2: 1.0, 4: 3.0}, "b": {1: 0.0, 2: 0.5, 4: 4.0}, "c": {1: 0.0, 4: 0.2}}
    lat = {"a": {1: 10.0, 2: 6.0, 4: 3.0}, "b": {1: 8.0, 2: 5.0, 4: 2.0}, "c": {1: 9.0, 4: 2.5}}
    for budget in [12.0, 15.0, 18.0, 27.0]:
        got = C.solve(omega, lat, budget)
        best = min(
            (sum(omega[l][b] for l, b in zip(omega, bs)), bs)
            for bs in itertools.product(*(omega[l] for l in omega))
            if sum(lat[l][b] for l, b in zip(omega, bs)) <= budget
        )
        assert sum(omega[l][got[l]] for l in omega) == pytest.approx(best[0])
        assert sum(lat[l][got[l]] for l in omega) <= budget


class _Net(nn.Module):
    def __init__(self):
        super().__init__()
        self.layer1 = nn.Sequential(nn.Conv2d(3, 8, 3, 1, 1), nn.ReLU(), nn.Conv2d(8, 8, 3, 1, 1))
        self.linear = nn.Linear(8, 4)

    def forward(self, x):
        return self.linear(self.layer1(x).mean((2, 3)))


def test_export_names_and_metadata(tmp_path):
    net = _Net()
    C.set_module(net, "layer1.2", C.CirConv2d(net.layer1[2], 4))
    C.set_module(net, "linear", C.CirLinear(net.linear, 4))
    layers = C.linear_layers(_Net())
    names = {p: C.onnx_name(p, m) for p, m in layers}
    path = str(tmp_path / "m.onnx")
    C.export(net, path, {names["layer1.2"]: 4, names["linear"]: 4, names["layer1.0"]: 1}, "t", "test")
    m = onnx.load(path)
    meta = {p.key: p.value for p in m.metadata_props}
    assert json.loads(meta[C.METADATA_KEY]) == {"/layer1/layer1.2/Conv": 4, "/linear/Gemm": 4}
    assert {n.name for n in m.graph.node} >= set(names.values())
    init = {t.name: onnx.numpy_helper.to_array(t) for t in m.graph.initializer}
    node = next(n for n in m.graph.node if n.name == "/layer1/layer1.2/Conv")
    assert C.is_block_circulant(torch.from_numpy(init[node.input[1]].copy()), 4)
    with pytest.raises(SystemExit):
        C.export(net, path, {"/nope/Conv": 2}, "t", "test")


def test_tied_batchnorm_folds_into_a_block_circulant_conv():
    torch.manual_seed(2)
    conv = nn.Conv2d(8, 8, 3, 1, 1, bias=False)
    bn = nn.BatchNorm2d(8)
    bn.running_mean.uniform_(-1, 1)
    bn.running_var.uniform_(0.5, 2)
    bn.weight.data.uniform_(0.5, 1.5)
    cc, tb = C.CirConv2d(conv, 4), C.TiedBatchNorm2d(bn, 4)
    tb.train()
    x = torch.randn(4, 8, 6, 6)
    for _ in range(3):
        tb(cc(x))  # running statistics move
    tb.eval()
    ref = tb.to_bn()
    y = cc(x)
    assert torch.allclose(tb(y), ref(y), atol=1e-5)
    # The fold W·γ/√(var + ε), per output channel as `nn` computes it, stays block-circulant.
    s = ref.weight / torch.sqrt(ref.running_var + ref.eps)
    assert C.is_block_circulant((cc.to_dense().weight * s[:, None, None, None]).detach(), 4)


def test_exported_weights_load_back(tmp_path):
    torch.manual_seed(3)

    class Net(nn.Module):
        def __init__(self):
            super().__init__()
            self.conv = nn.Conv2d(3, 8, 3, 1, 1, bias=False)
            self.bn = nn.BatchNorm2d(8)
            self.layer = nn.Sequential(nn.Conv2d(8, 8, 3, 1, 1, bias=False), nn.BatchNorm2d(8))
            self.fc = nn.Linear(8, 4)

        def forward(self, x):
            return self.fc(self.layer(torch.relu(self.bn(self.conv(x)))).mean((2, 3)))

    def circ(net):
        C.set_module(net, "layer.1", C.TiedBatchNorm2d(net.layer[1], 4))
        C.set_module(net, "layer.0", C.CirConv2d(net.layer[0], 4))
        C.set_module(net, "fc", C.CirLinear(net.fc, 4))
        return net

    a = circ(Net()).eval()
    a.bn.running_mean.uniform_(-1, 1)
    a.layer[1].running_var.uniform_(0.5, 2)
    names = {p: C.onnx_name(p, m) for p, m in C.linear_layers(Net())}
    path = str(tmp_path / "n.onnx")
    C.export(a, path, {names["layer.0"]: 4, names["fc"]: 4}, "n", "test")
    torch.manual_seed(4)
    b = circ(Net()).eval()
    C.load_onnx_weights(b, path)
    x = torch.randn(2, 3, 6, 6)
    assert torch.allclose(a(x), b(x), atol=1e-5)


def test_weight_average_is_the_mean_and_stays_block_circulant():
    torch.manual_seed(5)
    nets = []
    for _ in range(3):
        net = nn.Sequential(C.CirConv2d(nn.Conv2d(8, 8, 3, 1, 1, bias=False), 4),
                            C.TiedBatchNorm2d(nn.BatchNorm2d(8), 4))
        for p in net.parameters():
            p.data.normal_()
        nets.append(net)
    avg, n = None, 0
    for net in nets:
        avg, n = C.average_into(avg, n, net)
    assert n == 3
    for k, v in nets[0].named_parameters():
        mean = sum(dict(m.named_parameters())[k].detach() for m in nets) / 3
        assert torch.allclose(avg[k], mean, atol=1e-6)
    target = nets[0]
    x = torch.randn(16, 8, 6, 6)
    C.load_average(target, avg, x, 16, torch.Generator().manual_seed(0))
    assert C.is_block_circulant(target[0].to_dense().weight.detach(), 4)
    # The running statistics are re-estimated for the averaged weights (one batch: its own).
    with torch.no_grad():
        y = target[0](x)
    assert torch.allclose(target[1].running_mean, y.mean((0, 2, 3)), atol=1e-5)
