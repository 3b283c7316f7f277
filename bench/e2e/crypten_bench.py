#!/usr/bin/env python3
"""CrypTen peer for the end-to-end benchmark: one ONNX model, two parties on this machine.

    crypten_bench.py --model M.onnx --name resnet20 [--image IMG] [--threads 1]

Party 0 (the server) secret-shares the model's weights, party 1 (the client) the image; both
run CrypTen's launcher (`crypten.mpc.context.run_multiprocess`: one process per party, gloo
over localhost). The timed part is the private forward pass plus opening the logits to the
client; sharing the weights and the image is measured apart ("setup"). CrypTen's default
provider, the trusted first party (TFP), makes the Beaver triples without communication: the
trusted dealer privinfer does not need.

Prints one JSON object: wall time, bytes each party sent, rounds (CrypTen's own counter: one
per communication call), CrypTen's raw communication stats, and the opened logits checked
against onnxruntime on the same input.

Bytes sent are counted per party from the tensors each collective makes that party send (int64
shares, 8 bytes an element): send/isend, the source of broadcast and scatter, a non-root of
gather and reduce, and for all_reduce and all_gather with two parties one tensor each (gloo's
ring). CrypTen's own `bytes` stat counts an all_reduce as sent plus received, so its sum over
the parties is twice the traffic.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time

import numpy as np


def load_input(image: str | None, size: int) -> np.ndarray:
    """float32 [1, 3, size, size], normalized like privinfer's loader (pixels/255, ImageNet mean/std)."""
    from privinfer_models import data as D

    if image:
        px = D.load_png_chw(image)
    else:
        px = np.zeros((3, size, size), dtype=np.uint8)
    if px.shape[1:] != (size, size):
        from PIL import Image

        px = np.asarray(Image.fromarray(px.transpose(1, 2, 0)).resize((size, size), Image.BILINEAR))
        px = px.transpose(2, 0, 1).copy()
    return D.normalize_chw(px)[None].astype(np.float32)


def crypten_compatible(path: str, x: np.ndarray, out_path: str) -> list[str]:
    """Writes a copy of the ONNX model that CrypTen 0.4.1's importer runs, computing the same
    function: CrypTen rejects Slice with a step other than 1 and reads a Pad's `pads` input in
    torch's order (last axis first) rather than ONNX's. So each strided Slice (start 0, to the
    end) becomes an AveragePool with a 1x1 kernel and that stride (exact subsampling, no
    communication), and each Pad whose pads are computed in the graph gets them as a constant
    in torch's order. Returns what was rewritten."""
    import onnx
    import onnxruntime as ort
    from onnx import helper, numpy_helper

    m = onnx.load(path)
    g = m.graph
    consts = {i.name: numpy_helper.to_array(i) for i in g.initializer}
    for n in g.node:
        if n.op_type == "Constant" and n.attribute and n.attribute[0].name == "value":
            consts[n.output[0]] = numpy_helper.to_array(n.attribute[0].t)

    # The pads each computed Pad gets, read off one onnxruntime run of the original graph.
    pad_inputs = [n.input[1] for n in g.node if n.op_type == "Pad" and len(n.input) > 1 and n.input[1] not in consts]
    pad_values = {}
    if pad_inputs:
        probe = onnx.load(path)
        for name in pad_inputs:
            probe.graph.output.append(helper.make_tensor_value_info(name, onnx.TensorProto.INT64, None))
        sess = ort.InferenceSession(probe.SerializeToString(), providers=["CPUExecutionProvider"])
        vals = sess.run(pad_inputs, {sess.get_inputs()[0].name: x})
        pad_values = dict(zip(pad_inputs, vals))

    notes = []
    new_nodes = []
    pools = {}
    readers = {}
    for n in g.node:
        for i in n.input:
            readers[i] = readers.get(i, 0) + 1
    for n in g.node:
        if n.op_type == "Slice" and len(n.input) == 5 and all(i in consts for i in n.input[1:]):
            starts, ends, axes, steps = (consts[i].tolist() for i in n.input[1:])
            rank4 = all(a in (2, 3) for a in axes)
            if rank4 and any(s != 1 for s in steps) and all(s0 == 0 for s0 in starts) and all(e >= 2**62 for e in ends) and all(s > 0 for s in steps):
                strides = [1, 1]
                for a, s in zip(axes, steps):
                    strides[a - 2] = s
                src = n.input[0]
                prev = pools.get(src)
                if prev is not None and readers[src] == 1:
                    # Slice on H then Slice on W: one pool with both strides (CrypTen wants them equal).
                    pnode, pstrides = prev
                    strides = [a * b for a, b in zip(pstrides, strides)]
                    new_nodes.remove(pnode)
                    src = pnode.input[0]
                node = helper.make_node("AveragePool", [src], list(n.output), name=n.name + "_as_pool",
                                        kernel_shape=[1, 1], strides=strides)
                new_nodes.append(node)
                pools[n.output[0]] = (node, strides)
                notes.append(f"{n.name}: Slice step {steps} on axes {axes} -> AveragePool 1x1 stride {strides}")
                continue
        if n.op_type == "Pad" and len(n.input) > 1 and n.input[1] in pad_values:
            pads = pad_values[n.input[1]].tolist()
            k = len(pads) // 2
            torch_order = []
            for ax in reversed(range(k)):
                torch_order += [pads[ax], pads[ax + k]]
            while len(torch_order) > 2 and torch_order[-2:] == [0, 0]:
                torch_order = torch_order[:-2]
            cname = n.name + "_pads_torch_order"
            # A Constant node, not an initializer: CrypTen makes initializers float parameters.
            new_nodes.append(helper.make_node("Constant", [], [cname], name=cname,
                                              value=numpy_helper.from_array(np.array(torch_order, dtype=np.int64))))
            new_nodes.append(helper.make_node("Pad", [n.input[0], cname], list(n.output), name=n.name, mode="constant"))
            notes.append(f"{n.name}: computed pads {pads} (ONNX order) -> constant {torch_order} (torch order)")
            continue
        new_nodes.append(n)

    # Drop the nodes nothing reads any more (the pads computation).
    live = {o.name for o in g.output}
    kept = []
    for n in reversed(new_nodes):
        if any(o in live for o in n.output):
            kept.append(n)
            live.update(i for i in n.input if i)
    del g.node[:]
    g.node.extend(reversed(kept))
    used = {i for n in g.node for i in n.input}
    keep_init = [i for i in g.initializer if i.name in used]
    del g.initializer[:]
    g.initializer.extend(keep_init)
    onnx.save(m, out_path)
    return notes


def install_sent_counter():
    """Wraps DistributedCommunicator's collectives to count the bytes this party sends."""
    from crypten.communicator.distributed_communicator import DistributedCommunicator as DC

    counter = {"bytes_sent": 0}

    def nbytes(t, batched=False):
        if batched:
            return sum(x.nelement() * x.element_size() for x in t)
        return t.nelement() * t.element_size()

    def wrap(name, sent):
        orig = getattr(DC, name)

        def f(self, *args, **kwargs):
            counter["bytes_sent"] += sent(self, *args, **kwargs)
            return orig(self, *args, **kwargs)

        f.__name__ = name
        setattr(DC, name, f)

    me = lambda self: self.get_rank()  # noqa: E731
    wrap("send", lambda self, t, dst: nbytes(t))
    wrap("isend", lambda self, t, dst: nbytes(t))
    wrap("broadcast", lambda self, t, src, group=None, batched=False: nbytes(t, batched) if src == me(self) else 0)
    wrap("all_reduce", lambda self, t, op=None, batched=False: nbytes(t, batched))
    wrap("all_gather", lambda self, t: nbytes(t))
    wrap("gather", lambda self, t, dst: 0 if dst == me(self) else nbytes(t))
    wrap("reduce", lambda self, t, dst, op=None, batched=False: 0 if dst == me(self) else nbytes(t, batched))
    wrap(
        "scatter",
        lambda self, lst, src, size=None, device=None: sum(nbytes(x) for i, x in enumerate(lst) if i != src)
        if src == me(self) else 0,
    )
    return counter


def party(model_path: str, x: np.ndarray, threads: int, counter_box: list):
    import crypten
    import crypten.communicator as comm
    import torch

    torch.set_num_threads(threads)
    crypten.cfg.communicator.verbose = True
    counter = counter_box[0]
    c = comm.get()
    rank = c.get_rank()
    SERVER, CLIENT = 0, 1

    # Setup: the server shares its weights, the client its image.
    c.barrier()
    c.reset_communication_stats()
    counter["bytes_sent"] = 0
    t0 = time.perf_counter()
    with open(model_path, "rb") as f:
        model = crypten.nn.from_onnx(f)
    model.encrypt(src=SERVER)
    model.eval()
    xin = torch.from_numpy(x) if rank == CLIENT else torch.zeros(x.shape)
    x_enc = crypten.cryptensor(xin, src=CLIENT)
    c.barrier()
    setup_s = time.perf_counter() - t0
    setup_stats = dict(c.get_communication_stats())
    setup_sent = counter["bytes_sent"]

    # Online: the private forward pass, the logits opened to the client.
    c.reset_communication_stats()
    counter["bytes_sent"] = 0
    t0 = time.perf_counter()
    c0 = time.process_time()
    with crypten.no_grad():
        y = model(x_enc)
    logits = y.get_plain_text(dst=CLIENT)
    online_s = time.perf_counter() - t0
    online_cpu_s = time.process_time() - c0
    stats = dict(c.get_communication_stats())
    return {
        "rank": rank,
        "setup_s": setup_s,
        "setup_bytes_sent": setup_sent,
        "setup_rounds": setup_stats["rounds"],
        "online_s": online_s,
        "online_cpu_s": online_cpu_s,
        "bytes_sent": counter["bytes_sent"],
        "rounds": stats["rounds"],
        "crypten_stats": {k: float(v) for k, v in stats.items()},
        "logits": [float(v) for v in logits.flatten()] if rank == CLIENT else None,
    }


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--model", required=True)
    ap.add_argument("--name", required=True)
    ap.add_argument("--image")
    ap.add_argument("--threads", type=int, default=1, help="torch threads per party")
    a = ap.parse_args()

    import onnx

    m = onnx.load(a.model)
    dims = [d.dim_value for d in m.graph.input[0].type.tensor_type.shape.dim]
    size = dims[-1]
    x = load_input(a.image, size)

    import onnxruntime as ort

    so = ort.SessionOptions()
    so.intra_op_num_threads = 1
    sess = ort.InferenceSession(a.model, so, providers=["CPUExecutionProvider"])
    ref = sess.run(None, {sess.get_inputs()[0].name: x})[0].flatten()

    import tempfile

    ct_model = os.path.join(tempfile.mkdtemp(prefix="crypten_bench_"), os.path.basename(a.model))
    rewrites = crypten_compatible(a.model, x, ct_model)
    for r in rewrites:
        print("rewrite for CrypTen:", r, file=sys.stderr)

    import crypten
    from crypten.mpc.context import run_multiprocess

    counter_box = [install_sent_counter()]  # inherited by the forked parties
    t0 = time.perf_counter()
    out = run_multiprocess(world_size=2)(party)(ct_model, x, a.threads, counter_box)
    total_s = time.perf_counter() - t0
    if out is None:
        print(json.dumps({"system": "crypten", "model": a.name, "error": "a CrypTen party failed (see log above)"}))
        sys.exit(1)
    s, c = out  # rank 0 = server, rank 1 = client
    logits = np.array(c["logits"])
    res = {
        "system": "crypten",
        "crypten_version": crypten.__version__,
        "model": a.name,
        "input_shape": dims,
        "threads_per_party": a.threads,
        "ms": 1000 * max(s["online_s"], c["online_s"]),
        "bytes_c2s": c["bytes_sent"],
        "bytes_s2c": s["bytes_sent"],
        "rounds": max(s["rounds"], c["rounds"]),
        "cpu_ms_server": 1000 * s["online_cpu_s"],
        "cpu_ms_client": 1000 * c["online_cpu_s"],
        "setup_ms": 1000 * max(s["setup_s"], c["setup_s"]),
        "setup_bytes_c2s": c["setup_bytes_sent"],
        "setup_bytes_s2c": s["setup_bytes_sent"],
        "setup_rounds": max(s["setup_rounds"], c["setup_rounds"]),
        "crypten_stats": {"server": s["crypten_stats"], "client": c["crypten_stats"]},
        "launcher_wall_ms": 1000 * total_s,
        "top1": int(logits.argmax()),
        "top1_reference": int(ref.argmax()),
        "matches_reference": bool(logits.argmax() == ref.argmax()),
        "max_abs_diff_float": float(np.abs(logits - ref).max()),
        "provider": str(crypten.cfg.mpc.provider),
        "onnx_rewrites": len(rewrites),
    }
    print(json.dumps(res))


if __name__ == "__main__":
    main()
