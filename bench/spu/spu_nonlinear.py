"""SPU (SecretFlow, PyPI `spu`) Cheetah protocol: bits per element of ReLU, GELU, softmax and
LayerNorm, the peer row of `privinfer bench nonlinear` (issue 18).

SPU's simulator sets up fresh links (and OT) on every call, so the per-element cost is the
difference of two runs: bits/el = (bytes(2n) − bytes(n)) · 8 / n, where bytes is what party 0
sent plus received (both directions), read from SPU's own profiling log ("Link details").
Accuracy: max |SPU − float| over the 2n-element run. Run by bench/spu/run.sh.
"""
import json
import re
import subprocess
import sys
import time

import numpy as np

OPS = ["relu", "gelu", "gelu_tanh", "softmax65", "softmax257", "layernorm256"]


def child(op: str, n: int, seed: int) -> None:
    import jax
    import jax.numpy as jnp
    import spu.libspu as libspu
    import spu.utils.simulation as spsim

    cfg = libspu.RuntimeConfig(protocol=libspu.ProtocolKind.CHEETAH, field=libspu.FieldType.FM64)
    cfg.enable_pphlo_profile = True
    sim = spsim.Simulator(2, cfg)
    rng = np.random.default_rng(seed)
    if op == "relu":
        x = rng.normal(0, 4, n).astype(np.float32)
        f = jax.nn.relu
    elif op in ("gelu", "gelu_tanh"):
        # Inputs and reference as in `privinfer bench nonlinear`: uniform in [-8, 8), erf GELU.
        x = rng.uniform(-8, 8, n).astype(np.float32)
        f = lambda v: jax.nn.gelu(v, approximate=op == "gelu_tanh")
        ref = lambda v: jax.nn.gelu(v, approximate=False)
    elif op.startswith("softmax"):
        w = int(op[len("softmax"):])
        x = rng.uniform(-12, 12, (n // w, w)).astype(np.float32)
        f = lambda v: jax.nn.softmax(v, axis=-1)
    else:
        w = int(op[len("layernorm"):])
        x = rng.uniform(-3, 4, (n // w, w)).astype(np.float32)

        def f(v):
            mu = jnp.mean(v, axis=-1, keepdims=True)
            var = jnp.mean((v - mu) ** 2, axis=-1, keepdims=True)
            return (v - mu) * jax.lax.rsqrt(var + 1e-5)

    t = time.time()
    got = np.asarray(spsim.sim_jax(sim, f)(x))
    secs = time.time() - t
    want = np.asarray((ref if op.startswith("gelu") else f)(x.astype(np.float64)))
    err = float(np.max(np.abs(got - want)))
    print(json.dumps({"elements": int(x.size), "max_abs_err": err, "s": secs}))


def measure(op: str, n: int):
    p = subprocess.run([sys.executable, __file__, "--child", op, str(n)], capture_output=True, text=True)
    if p.returncode != 0:
        raise SystemExit(f"{op} n={n}: SPU run failed: {p.stderr[-2000:]}")
    m = re.findall(r"Link details: total send bytes (\d+), recv bytes (\d+)", p.stdout + p.stderr)
    if not m:
        raise SystemExit(f"{op}: no 'Link details' line in SPU's log")
    sent, recv = map(int, m[-1])
    res = json.loads(p.stdout.strip().splitlines()[-1])
    return sent + recv, res


def main() -> None:
    n = int(sys.argv[1]) if len(sys.argv) > 1 else 1 << 13
    ops = sys.argv[2:] or OPS
    for op in ops:
        unit = 1
        if op.startswith("softmax"):
            unit = int(op[len("softmax"):])
        elif op.startswith("layernorm"):
            unit = int(op[len("layernorm"):])
        n1 = max(unit, (n // unit) * unit)
        b1, _ = measure(op, n1)
        b2, r2 = measure(op, 2 * n1)
        bits = (b2 - b1) * 8 / n1
        print(json.dumps({"peer": "spu-0.9.5-cheetah-fm64", "op": op, "elements": n1,
                          "bits_per_element": round(bits, 1), "max_abs_err": r2["max_abs_err"],
                          "s_2n": round(r2["s"], 2)}), flush=True)


if __name__ == "__main__":
    if len(sys.argv) > 1 and sys.argv[1] == "--child":
        child(sys.argv[2], int(sys.argv[3]), 1)
    else:
        main()
