//! Test harness: both parties in two threads over a channel pair, with seeded sessions.
#![allow(dead_code)]

use privinfer_mpc as mpc;

use mpc::{share, Party, Ring, Session, SessionConfig};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha20Rng;
use transport::{Channel, MemoryChannel};

pub const RINGS: [u32; 4] = [32, 37, 41, 64];

/// Runs `f(party, session, channel)` on both sides of a fresh session over `(c0, c1)`.
pub fn run_on<C, T, F>(c0: C, c1: C, seed: u64, f: F) -> (T, T)
where
    C: Channel + Send + 'static,
    T: Send + 'static,
    F: Fn(Party, &mut Session, &mut C) -> T + Send + Sync + Clone + 'static,
{
    run_with(c0, c1, seed, test_config(), f)
}

/// As [`run_on`] with an explicit session configuration.
pub fn run_with<C, T, F>(c0: C, c1: C, seed: u64, cfg: SessionConfig, f: F) -> (T, T)
where
    C: Channel + Send + 'static,
    T: Send + 'static,
    F: Fn(Party, &mut Session, &mut C) -> T + Send + Sync + Clone + 'static,
{
    let f1 = f.clone();
    let h = std::thread::spawn(move || {
        let mut c1 = c1;
        let mut rng = ChaCha20Rng::seed_from_u64(seed ^ 0xa5a5);
        let mut s = Session::setup_with(&mut c1, Party::P1, &mut rng, cfg).expect("setup P1");
        f1(Party::P1, &mut s, &mut c1)
    });
    let mut c0 = c0;
    let mut rng = ChaCha20Rng::seed_from_u64(seed);
    let mut s = Session::setup_with(&mut c0, Party::P0, &mut rng, cfg).expect("setup P0");
    let a = f(Party::P0, &mut s, &mut c0);
    let b = h.join().expect("P1 thread");
    (a, b)
}

/// As [`run_on`] over an in-memory pair.
pub fn run<T, F>(seed: u64, f: F) -> (T, T)
where
    T: Send + 'static,
    F: Fn(Party, &mut Session, &mut MemoryChannel) -> T + Send + Sync + Clone + 'static,
{
    let (c0, c1) = MemoryChannel::pair();
    run_on(c0, c1, seed, f)
}

/// Edge values: 0, ±1, ±2, the extremes, values around 2^s, plus `random` uniform values.
pub fn edge_values(ring: Ring, s: u32, random: usize, rng: &mut impl Rng) -> Vec<u64> {
    let mut v: Vec<i64> = vec![
        0,
        1,
        -1,
        2,
        -2,
        ring.max_signed(),
        ring.min_signed(),
        ring.max_signed() - 1,
        ring.min_signed() + 1,
    ];
    for d in [-2i64, -1, 0, 1, 2] {
        v.push((1i64 << s) + d);
        v.push(-(1i64 << s) + d);
        v.push((1i64 << (ring.bits() - 2)) + d);
        v.push(-(1i64 << (ring.bits() - 2)) + d);
    }
    let mut out: Vec<u64> = v.into_iter().map(|x| ring.from_signed(x)).collect();
    out.extend((0..random).map(|_| ring.random(rng)));
    out
}

/// `values` with those outside the known-sign range (|x| < 2^{ℓ−2}) cut to their low ℓ − 3 bits.
pub fn into_known_sign_range(ring: Ring, values: Vec<u64>) -> Vec<u64> {
    values
        .into_iter()
        .map(|x| {
            if mpc::plain::in_known_sign_range(ring, x) {
                x
            } else {
                x & (ring.mask() >> 3)
            }
        })
        .collect()
}

/// Sharings of `values`: for each value a random sharing, one with share 0 = 0, one with
/// share 0 = 2^ℓ − 1 (so the shares wrap) and one with share 0 = 2^{ℓ−1}.
pub fn sharings(ring: Ring, values: &[u64], rng: &mut impl Rng) -> (Vec<u64>, Vec<u64>, Vec<u64>) {
    let mut xs = Vec::new();
    let mut s0 = Vec::new();
    for &v in values {
        let (r, _) = share(ring, &[v], rng);
        for a in [r[0], 0, ring.mask(), 1u64 << (ring.bits() - 1)] {
            xs.push(v);
            s0.push(a);
        }
    }
    let s1 = xs.iter().zip(&s0).map(|(&v, &a)| ring.sub(v, a)).collect();
    (xs, s0, s1)
}

pub fn rng(seed: u64) -> ChaCha20Rng {
    ChaCha20Rng::seed_from_u64(seed)
}

/// Sessions for most tests: IKNP COTs (cheap setup; protocol correctness does not depend on
/// the COT backend) in small refills.
pub fn test_config() -> SessionConfig {
    SessionConfig {
        refill: 1 << 12,
        cot: ot::CotConfig {
            backend: ot::CotBackend::Iknp,
        },
    }
}

/// Sessions on the default silent-OT backend, in small refills.
pub fn silent_config() -> SessionConfig {
    SessionConfig {
        refill: 1 << 12,
        ..SessionConfig::default()
    }
}
