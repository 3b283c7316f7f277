//! NTT-friendly prime generation: primes `q ≡ 1 (mod 2N)` so that `Z_q`
//! contains a primitive `2N`-th root of unity (negacyclic NTT of size `N`).

use crate::MathError;

fn mul_mod(a: u64, b: u64, m: u64) -> u64 {
    (a as u128 * b as u128 % m as u128) as u64
}

fn pow_mod(mut b: u64, mut e: u64, m: u64) -> u64 {
    let mut r = 1 % m;
    b %= m;
    while e > 0 {
        if e & 1 == 1 {
            r = mul_mod(r, b, m);
        }
        b = mul_mod(b, b, m);
        e >>= 1;
    }
    r
}

/// Deterministic Miller–Rabin for all 64-bit integers (witnesses: the first
/// 12 primes suffice below 3.3·10^24).
pub fn is_prime(n: u64) -> bool {
    const W: [u64; 12] = [2, 3, 5, 7, 11, 13, 17, 19, 23, 29, 31, 37];
    if n < 2 {
        return false;
    }
    for &p in &W {
        if n.is_multiple_of(p) {
            return n == p;
        }
    }
    let s = (n - 1).trailing_zeros();
    let d = (n - 1) >> s;
    'outer: for &a in &W {
        let mut x = pow_mod(a, d, n);
        if x == 1 || x == n - 1 {
            continue;
        }
        for _ in 1..s {
            x = mul_mod(x, x, n);
            if x == n - 1 {
                continue 'outer;
            }
        }
        return false;
    }
    true
}

/// Whether `q` is a prime with `q ≡ 1 (mod 2n)`, below 2^62.
pub fn is_ntt_friendly(q: u64, n: usize) -> bool {
    q < (1 << crate::MAX_MODULUS_BITS) && is_prime(q) && (q - 1).is_multiple_of(2 * n as u64)
}

/// The `count` largest primes `q < 2^bits` with `q ≡ 1 (mod 2n)`, in
/// decreasing order, skipping the values in `exclude`.
pub fn generate_primes(
    bits: u32,
    n: usize,
    count: usize,
    exclude: &[u64],
) -> Result<Vec<u64>, MathError> {
    let err = MathError::NotEnoughPrimes {
        bits,
        degree: n,
        count,
    };
    if !(2..=crate::MAX_MODULUS_BITS).contains(&bits) || !n.is_power_of_two() {
        return Err(err);
    }
    let step = 2 * n as u64;
    let top = 1u64 << bits;
    if top <= step {
        return Err(err);
    }
    // largest candidate ≡ 1 mod 2n below 2^bits
    let mut c = ((top - 1) / step) * step + 1;
    if c >= top {
        c -= step;
    }
    let floor = 1u64 << (bits - 1);
    let mut out = Vec::with_capacity(count);
    while out.len() < count {
        if c < floor || c <= step {
            return Err(err);
        }
        if is_prime(c) && !exclude.contains(&c) {
            out.push(c);
        }
        c -= step;
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn primes_are_ntt_friendly() {
        for &(bits, n) in &[(30u32, 1024usize), (50, 4096), (60, 8192), (62, 65536)] {
            let ps = generate_primes(bits, n, 4, &[]).unwrap();
            for w in ps.windows(2) {
                assert!(w[0] > w[1]);
            }
            for p in ps {
                assert!(is_ntt_friendly(p, n));
                assert_eq!(64 - p.leading_zeros(), bits);
            }
        }
        let a = generate_primes(40, 1024, 2, &[]).unwrap();
        let b = generate_primes(40, 1024, 1, &a[..1]).unwrap();
        assert_eq!(b[0], a[1]);
    }

    #[test]
    fn miller_rabin() {
        let small: Vec<u64> = (0..200).filter(|&x| is_prime(x)).collect();
        let naive: Vec<u64> = (0..200u64)
            .filter(|&x| x >= 2 && (2..x).all(|d| x % d != 0))
            .collect();
        assert_eq!(small, naive);
        assert!(is_prime((1u64 << 61) - 1));
        assert!(!is_prime(3215031751)); // strong pseudoprime to bases 2,3,5,7
    }
}
