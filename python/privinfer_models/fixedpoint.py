"""An independent numpy implementation of the fixed-point semantics of docs/fixed-point.md,
interpreting an ONNX graph directly (CNN op subset: Conv, BatchNormalization, Relu, Clip(0, 6),
Add, Slice, Pad, MaxPool, AveragePool, GlobalAveragePool, Flatten, Reshape, Gemm/MatMul),
used to produce the committed expected fixed-point outputs the Rust executor is tested
against bit for bit.

Ring elements are int64 arrays holding values in [0, 2^l); constants (weights, shape tensors)
are plain numpy arrays.
"""

from __future__ import annotations

import numpy as np
import onnx
from onnx import numpy_helper


class Ring:
    def __init__(self, ell: int, scale: int):
        self.ell, self.s = ell, scale
        self.mask = (1 << ell) - 1

    def signed(self, v):
        v = np.asarray(v, dtype=np.int64) & self.mask
        return (v ^ (1 << (self.ell - 1))) - (1 << (self.ell - 1))

    def red(self, v):
        return np.asarray(v, dtype=np.int64) & self.mask

    @staticmethod
    def round_half_away(v):
        v = np.asarray(v, dtype=np.float64)
        return (np.sign(v) * np.floor(np.abs(v) + 0.5)).astype(np.int64)

    def encode(self, x, scale_bits):
        return self.red(self.round_half_away(np.asarray(x, dtype=np.float32).astype(np.float64) * float(1 << scale_bits)))

    def trunc(self, y):
        """t(y) = (signed((y + 2^{s-1}) mod 2^l) >> s) mod 2^l, and the overflow count."""
        v = self.signed(self.red(y) + (1 << (self.s - 1)))
        over = int(np.count_nonzero(np.abs(v) >= (1 << (self.ell - 2))))
        return self.red(v >> self.s), over


def _attrs(node):
    return {a.name: onnx.helper.get_attribute_value(a) for a in node.attribute}


def _fold_bn(w, b, gamma, beta, mean, var, eps):
    """Same arithmetic as the Rust importer: float64 factors, float32 results."""
    a = gamma.astype(np.float64) / np.sqrt(var.astype(np.float64) + np.float64(np.float32(eps)))
    sh = beta.astype(np.float64) - mean.astype(np.float64) * a
    w2 = (w.astype(np.float64) * a.reshape(-1, *([1] * (w.ndim - 1)))).astype(np.float32)
    b2 = (b.astype(np.float64) * a + sh).astype(np.float32)
    return w2, b2


def _conv(R, x, w_q, b_q, strides, pads, group):
    """x: ring [1, C, H, W]; w_q at scale s, b_q at 2s (ring); returns W*x + b at scale 2s."""
    _, c, h, wd = x.shape
    o, cpg, kh, kw = w_q.shape
    xs = R.signed(x)[0]
    xp = np.zeros((c, h + pads[0] + pads[2], wd + pads[1] + pads[3]), dtype=np.int64)
    xp[:, pads[0]:pads[0] + h, pads[1]:pads[1] + wd] = xs
    oh = (xp.shape[1] - kh) // strides[0] + 1
    ow = (xp.shape[2] - kw) // strides[1] + 1
    ws = R.signed(w_q)
    out = np.zeros((o, oh * ow), dtype=np.int64)
    opg = o // group
    for g in range(group):
        cols = np.empty((cpg * kh * kw, oh * ow), dtype=np.int64)
        r = 0
        for ci in range(g * cpg, (g + 1) * cpg):
            for ky in range(kh):
                for kx in range(kw):
                    cols[r] = xp[ci, ky:ky + strides[0] * oh:strides[0], kx:kx + strides[1] * ow:strides[1]].reshape(-1)
                    r += 1
        wg = ws[g * opg:(g + 1) * opg].reshape(opg, -1)
        out[g * opg:(g + 1) * opg] = wg @ cols  # int64 wrap-around is reduction mod 2^64
    out = out + R.signed(b_q)[:, None]
    return R.red(out.reshape(1, o, oh, ow))


def run_fixed(onnx_path: str, x: np.ndarray, ell: int = 37, scale: int = 12):
    """Runs the graph in fixed point on float input x [1, C, H, W]; returns the output ring
    elements, their decoded values and the truncation overflow count."""
    R = Ring(ell, scale)
    m = onnx.load(onnx_path)
    g = m.graph
    consts = {t.name: numpy_helper.to_array(t) for t in g.initializer}
    inputs = [i.name for i in g.input if i.name not in consts]
    vals = {inputs[0]: R.encode(x, scale)}
    uses = {}
    for n in g.node:
        for i in n.input:
            uses[i] = uses.get(i, 0) + 1
    bn_folded = {}  # conv output name -> (w, b) once a BN is folded in
    overflows = 0
    producers = {o: n for n in g.node for o in n.output}

    def is_const(name):
        return name in consts

    nodes = list(g.node)
    # Fold BN into the producing Conv when the Conv output has one consumer.
    for n in nodes:
        if n.op_type == "BatchNormalization":
            p = producers.get(n.input[0])
            if p is not None and p.op_type == "Conv" and uses[n.input[0]] == 1:
                w = consts[p.input[1]]
                b = consts[p.input[2]] if len(p.input) > 2 and p.input[2] else np.zeros(w.shape[0], np.float32)
                eps = _attrs(n).get("epsilon", 1e-5)
                bn_folded[p.output[0]] = _fold_bn(w, b, *(consts[i] for i in n.input[1:5]), eps)
    alias = {}
    for n in nodes:
        op, A = n.op_type, _attrs(n)
        ins = [alias.get(i, i) for i in n.input]
        out = n.output[0]
        cin = [i for i in ins if i]
        if op == "Constant":
            consts[out] = numpy_helper.to_array(A["value"])
        elif all(is_const(i) for i in cin) and op != "Conv":
            # Constant shape arithmetic, evaluated in numpy.
            c = [consts[i] if i else None for i in ins]
            if op == "ConstantOfShape":
                v = numpy_helper.to_array(A["value"]) if "value" in A else np.zeros(1, np.float32)
                consts[out] = np.full(tuple(c[0]), v.reshape(-1)[0], dtype=v.dtype)
            elif op == "Concat":
                consts[out] = np.concatenate(c, axis=A.get("axis", 0))
            elif op == "Reshape":
                consts[out] = c[0].reshape(tuple(c[1]))
            elif op == "Transpose":
                consts[out] = np.transpose(c[0], A.get("perm"))
            elif op == "Cast":
                consts[out] = c[0].astype(onnx.helper.tensor_dtype_to_np_dtype(A["to"]))
            elif op == "Slice":
                sl = [slice(None)] * c[0].ndim
                axes = c[3] if len(c) > 3 and c[3] is not None else range(len(c[1]))
                steps = c[4] if len(c) > 4 and c[4] is not None else [1] * len(c[1])
                for st, en, ax, sp in zip(c[1], c[2], axes, steps):
                    sl[ax] = slice(int(st), int(en), int(sp))
                consts[out] = c[0][tuple(sl)]
            elif op == "Identity":
                consts[out] = c[0]
            else:
                raise NotImplementedError(f"constant {op}")
        elif op == "Conv":
            w, b = bn_folded.get(out) or (consts[ins[1]], consts[ins[2]] if len(ins) > 2 and ins[2] else np.zeros(consts[ins[1]].shape[0], np.float32))
            y = _conv(R, vals[ins[0]], R.encode(w, scale), R.encode(b, 2 * scale), A.get("strides", [1, 1]),
                      A.get("pads", [0, 0, 0, 0]), A.get("group", 1))
            if out in bn_folded:
                vals[out] = ("pre", y)  # truncated once the BN (folded) is passed
            else:
                vals[out], o = R.trunc(y)
                overflows += o
        elif op == "BatchNormalization":
            v = vals[ins[0]]
            if isinstance(v, tuple):  # folded into the producing Conv
                vals[out], o = R.trunc(v[1])
            else:
                # Unfolded: y = x * a + b per channel, a at 2^s, b at 2^{2s}; same float
                # arithmetic as the Rust importer (f64 factors rounded to f32).
                gamma, beta, mean, var = (consts[i] for i in ins[1:5])
                eps = np.float64(np.float32(A.get("epsilon", 1e-5)))
                a64 = gamma.astype(np.float64) / np.sqrt(var.astype(np.float64) + eps)
                sh = (beta.astype(np.float64) - mean.astype(np.float64) * a64).astype(np.float32)
                a_q = R.signed(R.encode(a64.astype(np.float32), scale))
                b_q = R.signed(R.encode(sh, 2 * scale))
                shape = (1, -1) + (1,) * (v.ndim - 2)
                y = R.signed(v) * a_q.reshape(shape) + b_q.reshape(shape)
                vals[out], o = R.trunc(y)
            overflows += o
        elif op == "Relu":
            v = vals[ins[0]]
            vals[out] = np.where(R.signed(v) < 0, 0, v)
        elif op == "Clip":
            six = 6 << scale
            vals[out] = R.red(np.clip(R.signed(vals[ins[0]]), 0, six))
        elif op == "Add":
            vals[out] = R.red(vals[ins[0]] + vals[ins[1]])
        elif op == "Slice":
            c = [consts[i] if i in consts else None for i in ins]
            sl = [slice(None)] * vals[ins[0]].ndim
            axes = c[3] if len(c) > 3 and c[3] is not None else range(len(c[1]))
            steps = c[4] if len(c) > 4 and c[4] is not None else [1] * len(c[1])
            for st, en, ax, sp in zip(c[1], c[2], axes, steps):
                sl[ax] = slice(int(st), int(en), int(sp))
            vals[out] = vals[ins[0]][tuple(sl)]
        elif op == "Pad":
            p = consts[ins[1]].astype(np.int64)
            r = len(p) // 2
            vals[out] = np.pad(vals[ins[0]], [(int(p[i]), int(p[i + r])) for i in range(r)])
        elif op == "GlobalAveragePool":
            v = vals[ins[0]]
            k = v.shape[2] * v.shape[3]
            c = int(np.floor((1 << scale) / k + 0.5))
            sums = R.red(v.reshape(v.shape[0], v.shape[1], -1).sum(axis=2))
            vals[out], o = R.trunc(R.red(sums * c).reshape(v.shape[0], v.shape[1], 1, 1))
            overflows += o
        elif op == "AveragePool":
            v = vals[ins[0]][0]
            kh, kw = A["kernel_shape"]
            sh, sw = A.get("strides", [1, 1])
            pt, pl, pb, pr = A.get("pads", [0, 0, 0, 0])
            include = A.get("count_include_pad", 0)
            c_, h, w = v.shape
            oh = (h + pt + pb - kh) // sh + 1
            ow = (w + pl + pr - kw) // sw + 1
            y = np.zeros((c_, oh, ow), dtype=np.int64)
            for oy in range(oh):
                for ox in range(ow):
                    y0, x0 = oy * sh - pt, ox * sw - pl
                    ys, xs = max(y0, 0), max(x0, 0)
                    ye, xe = min(y0 + kh, h), min(x0 + kw, w)
                    win = v[:, ys:ye, xs:xe].reshape(c_, -1)
                    if include:
                        k = (min(y0 + kh, h + pb) - y0) * (min(x0 + kw, w + pr) - x0)
                    else:
                        k = win.shape[1]
                    cst = int(np.floor((1 << scale) / k + 0.5))
                    y[:, oy, ox] = R.red(R.red(win.sum(axis=1)) * cst)
            vals[out], o = R.trunc(y[None])
            overflows += o
        elif op == "MaxPool":
            v = R.signed(vals[ins[0]])[0]
            kh, kw = A["kernel_shape"]
            sh, sw = A.get("strides", [1, 1])
            pt, pl, pb, pr = A.get("pads", [0, 0, 0, 0])
            neg = np.iinfo(np.int64).min
            vp = np.full((v.shape[0], v.shape[1] + pt + pb, v.shape[2] + pl + pr), neg, dtype=np.int64)
            vp[:, pt:pt + v.shape[1], pl:pl + v.shape[2]] = v
            oh = (vp.shape[1] - kh) // sh + 1
            ow = (vp.shape[2] - kw) // sw + 1
            best = np.full((v.shape[0], oh, ow), neg, dtype=np.int64)
            for ky in range(kh):
                for kx in range(kw):
                    best = np.maximum(best, vp[:, ky:ky + sh * oh:sh, kx:kx + sw * ow:sw])
            vals[out] = R.red(best[None])
        elif op in ("Flatten", "Reshape"):
            v = vals[ins[0]]
            if op == "Flatten":
                ax = A.get("axis", 1)
                shape = (int(np.prod(v.shape[:ax])), -1)
            else:
                shape = tuple(int(d) if d != 0 else v.shape[i] for i, d in enumerate(consts[ins[1]]))
            vals[out] = v.reshape(shape)
        elif op == "Gemm":
            w = consts[ins[1]]
            if not A.get("transB", 0):
                w = w.T
            b = consts[ins[2]] if len(ins) > 2 and ins[2] else np.zeros(w.shape[0], np.float32)
            y = R.signed(vals[ins[0]]) @ R.signed(R.encode(w, scale)).T + R.signed(R.encode(b, 2 * scale))
            vals[out], o = R.trunc(y)
            overflows += o
        elif op == "Identity":
            alias[out] = ins[0]
        else:
            raise NotImplementedError(f"op {op} in the numpy fixed-point reference")
    res = vals[g.output[0].name]
    return {
        "output_q": R.red(res).reshape(-1),
        "output": R.signed(res).reshape(-1).astype(np.float64) / float(1 << scale),
        "overflows": overflows,
    }
