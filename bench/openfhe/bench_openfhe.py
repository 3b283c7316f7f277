#!/usr/bin/env python3
"""OpenFHE CKKS bootstrapping at N = 2^16 with full slots, the closest OpenFHE configuration to
privinfer's N16_LogQP1534_H192_H32 preset: 128-bit (HEStd_128_classic), FLEXIBLEAUTO scaling,
47-bit scaling primes and 5 key-switching digits (59-bit primes need N = 2^17 at this depth), first prime 8 bits above the scaling primes (OpenFHE's limit), level budget [3, 3] (three CoeffsToSlots and three
SlotsToCoeffs levels, as ours), 9 levels left for computation, uniform ternary secret
(OpenFHE's default; its sparse option is not h = 192).

Prints one JSON line per thread count, in the format of `privinfer bench ckks --json`:
{"op": "bootstrap", "n", "threads", "ms", "precision_bits", "min_precision_bits", "levels_left",
 "peak_mib", "peer": "openfhe"}. Threads are set with OMP_NUM_THREADS by run.sh.
"""
import json
import math
import os
import random
import resource
import sys
import time

from openfhe import (
    CCParamsCKKSRNS,
    CryptoContext,
    GenCryptoContext,
    PKESchemeFeature,
    ScalingTechnique,
    SecretKeyDist,
    SecurityLevel,
)


def main():
    levels_after = int(os.environ.get("LEVELS_AFTER", "9"))
    level_budget = [3, 3]
    secret = SecretKeyDist.UNIFORM_TERNARY
    p = CCParamsCKKSRNS()
    p.SetSecretKeyDist(secret)
    p.SetSecurityLevel(SecurityLevel.HEStd_128_classic)
    p.SetRingDim(1 << 16)
    p.SetScalingTechnique(ScalingTechnique.FLEXIBLEAUTO)
    # 59-bit scaling primes need N = 2^17 at this depth; 47 bits with 5 digits is the largest that keeps
    # N = 2^16 under OpenFHE's 128-bit check with 9 levels left (SCALE_BITS overrides).
    p.SetScalingModSize(int(os.environ.get("SCALE_BITS", "47")))
    # OpenFHE's FLEXIBLEAUTO bootstrapping requires first-prime bits − scaling bits ≤ 8.
    p.SetFirstModSize(int(os.environ.get("SCALE_BITS", "47")) + 8)
    p.SetNumLargeDigits(int(os.environ.get("NUM_DIGITS", "5")))
    depth = levels_after + CryptoContext.GetBootstrapDepth(level_budget, secret)
    p.SetMultiplicativeDepth(depth)
    cc = GenCryptoContext(p)
    for f in (
        PKESchemeFeature.PKE,
        PKESchemeFeature.KEYSWITCH,
        PKESchemeFeature.LEVELEDSHE,
        PKESchemeFeature.ADVANCEDSHE,
        PKESchemeFeature.FHE,
    ):
        cc.Enable(f)
    n = cc.GetRingDimension()
    slots = n // 2
    cc.EvalBootstrapSetup(level_budget, [0, 0], slots)
    keys = cc.KeyGen()
    cc.EvalMultKeyGen(keys.secretKey)
    cc.EvalBootstrapKeyGen(keys.secretKey, slots)
    rng = random.Random(2026)
    x = [rng.uniform(-1.0, 1.0) for _ in range(slots)]
    pt = cc.MakeCKKSPackedPlaintext(x, 1, depth - 1, None, slots)
    pt.SetLength(slots)
    ct = cc.Encrypt(keys.publicKey, pt)
    r0 = resource.getrusage(resource.RUSAGE_SELF)
    t = time.time()
    out = cc.EvalBootstrap(ct)
    ms = (time.time() - t) * 1e3
    r1 = resource.getrusage(resource.RUSAGE_SELF)
    cpu_ms = (r1.ru_utime + r1.ru_stime - r0.ru_utime - r0.ru_stime) * 1e3
    res = cc.Decrypt(out, keys.secretKey)
    res.SetLength(slots)
    got = res.GetRealPackedValue()
    errs = [max(abs(a - b), 1e-300) for a, b in zip(got, x)]
    mean_bits = -sum(math.log2(e) for e in errs) / len(errs)
    min_bits = -math.log2(max(errs))
    left = depth - out.GetLevel() - (out.GetNoiseScaleDeg() - 1)
    peak_mib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss // 1024
    print(
        json.dumps(
            {
                "op": "bootstrap",
                "n": n,
                "threads": int(os.environ.get("OMP_NUM_THREADS", "0")),
                "ms": ms,
                "precision_bits": mean_bits,
                "min_precision_bits": min_bits,
                "levels_left": left,
                "peak_mib": peak_mib,
                "cpu_ms": cpu_ms,
                "slots": slots,
                "scale_bits": int(os.environ.get("SCALE_BITS", "47")),
                "depth": depth,
                "peer": "openfhe",
            }
        )
    )
    sys.stdout.flush()


if __name__ == "__main__":
    main()
