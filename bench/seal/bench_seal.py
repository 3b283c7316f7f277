#!/usr/bin/env python3
"""Microsoft SEAL (seal-python 4.4) timings of the ops `privinfer bench he` measures.

Same N, same coefficient-modulus bit sizes (SEAL's 128-bit BFVDefault; the
last prime is the special prime), 20-bit batching plaintext modulus. Prints one
JSON object per line: {"op", "n", "log_q", "ns", "impl": "seal"} with the
median of repeated runs.
"""
import argparse
import json
import time

import numpy as np
import seal


def median(budget_ns, setup, op):
    for _ in range(2):
        op(setup())
    x = setup()
    t0 = time.perf_counter_ns()
    op(x)
    probe = max(time.perf_counter_ns() - t0, 1)
    reps = min(max(budget_ns // probe, 7), 2001)
    times = []
    for _ in range(reps):
        x = setup()
        t0 = time.perf_counter_ns()
        op(x)
        times.append(time.perf_counter_ns() - t0)
    times.sort()
    return times[len(times) // 2]


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--n", default="4096,8192")
    ap.add_argument("--budget-ms", type=int, default=300)
    a = ap.parse_args()
    budget = a.budget_ms * 1_000_000
    for n in [int(x) for x in a.n.split(",")]:
        parms = seal.EncryptionParameters(seal.scheme_type.bfv)
        parms.set_poly_modulus_degree(n)
        cm = seal.CoeffModulus.BFVDefault(n)
        parms.set_coeff_modulus(cm)
        parms.set_plain_modulus(seal.PlainModulus.Batching(n, 20))
        ctx = seal.SEALContext(parms)
        bits = [m.bit_count() for m in cm]
        log_q = sum(bits[:-1])
        keygen = seal.KeyGenerator(ctx)
        sk = keygen.secret_key()
        pk = keygen.create_public_key()
        rk = keygen.create_relin_keys()
        gk = seal.GaloisKeys()
        keygen.create_galois_keys([1], gk)  # row rotation by one step
        enc = seal.Encryptor(ctx, pk)
        enc.set_secret_key(sk)
        ev = seal.Evaluator(ctx)
        be = seal.BatchEncoder(ctx)
        t = parms.plain_modulus().value()
        pt = be.encode(np.array([(i * 7919) % t for i in range(n)], dtype=np.uint64))
        L = len(bits) - 1

        def out(op, ns):
            print(json.dumps({"op": op, "n": n, "log_q": log_q, "ns": int(ns), "impl": "seal"}), flush=True)

        ct = enc.encrypt_symmetric(pt)
        # SEAL exposes no raw NTT: forward+inverse of a 2-part ciphertext, per prime and part
        c = enc.encrypt_symmetric(pt)

        def ntt_rt(_):
            ev.transform_to_ntt_inplace(c)
            ev.transform_from_ntt_inplace(c)

        out("ntt_fwd_inv", median(budget, lambda: None, ntt_rt) / (2 * L))
        out("encrypt_sk", median(budget, lambda: None, lambda _: enc.encrypt_symmetric(pt)))
        ct_ntt = ev.transform_to_ntt(ct)
        pt_ntt = be.encode(np.array([(i * 7919) % t for i in range(n)], dtype=np.uint64))
        ev.transform_to_ntt_inplace(pt_ntt, ct.parms_id())
        out("ct_pt_mul", median(budget, lambda: None, lambda _: ev.multiply_plain_inplace(ct_ntt, pt_ntt)))

        def mul_coeff(_):
            x = ev.transform_to_ntt(ct)
            ev.multiply_plain_inplace(x, pt_ntt)
            ev.transform_from_ntt_inplace(x)

        out("ct_pt_mul_coeff", median(budget, lambda: None, mul_coeff))
        out("ct_pt_mul_seal_default", median(budget, lambda: None, lambda _: ev.multiply_plain(ct, pt)))

        def mul_relin(_):
            x = ev.multiply(ct, ct)
            ev.relinearize_inplace(x, rk)

        out("ct_ct_mul_relin", median(budget, lambda: None, mul_relin))
        out("rotate", median(budget, lambda: None, lambda _: ev.rotate_rows(ct, 1, gk)))
        out("mod_switch", median(budget, lambda: None, lambda _: ev.mod_switch_to_next(ct)))
        out("serialize_ct", median(budget, lambda: None, lambda _: ct.to_string(seal.compr_mode_type.none)))
        print(json.dumps({"op": "ct_bytes", "n": n, "log_q": log_q, "bytes": len(ct.to_string(seal.compr_mode_type.none)), "impl": "seal"}), flush=True)


if __name__ == "__main__":
    main()
