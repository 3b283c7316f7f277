//! The Cheetah linear-layer flow on the lattice core, with sizes and timings:
//! client encrypts its share (seeded), server adds its share, multiplies by
//! weights, subtracts a mask, floods, switches to a small modulus and returns
//! only the needed coefficients; the client decrypts its new share.
//!
//! `cargo run --release -p privinfer-rlwe --example cheetah_flow`
use rand::{Rng, SeedableRng};
use rlwe::serialize::{self, Form};
use rlwe::*;
use std::time::Instant;

fn main() -> Result<(), RlweError> {
    let mut rng = rand_chacha::ChaCha20Rng::seed_from_u64(7);
    let ell = 37;
    let t = 1u64 << ell;
    let params = Params::new(presets::bfv_n8192_q180_t2l(ell)?)?;
    let n = params.n();
    let sk = SecretKey::generate(&params, &mut rng);
    let pk = PublicKey::generate(&sk, &mut rng)?;
    let pk_bytes = serialize::public_key_to_bytes(&pk);
    let ev = Evaluator::new(&params);

    // client
    let x: Vec<u64> = (0..n).map(|_| rng.gen_range(0..t)).collect();
    let t0 = Instant::now();
    let ct = sk.encrypt(&Plaintext::from_unsigned(&params, &x)?, &mut rng)?;
    let query = serialize::ciphertext_to_bytes(&ct, Form::Seeded)?;
    let t_client = t0.elapsed();

    // server: weights of 12 bits, keep every 4th coefficient
    let pk = serialize::public_key_from_bytes(&params, &pk_bytes)?;
    let y: Vec<u64> = (0..n).map(|_| rng.gen_range(0..t)).collect();
    let mask: Vec<u64> = (0..n).map(|_| rng.gen_range(0..t)).collect();
    let w: Vec<i64> = (0..n).map(|_| rng.gen_range(-2048..2048)).collect();
    let keep: Vec<usize> = (0..n).step_by(4).collect();
    let t0 = Instant::now();
    let mut ct = serialize::ciphertext_from_bytes(&params, &query)?;
    ev.add_plain_assign(&mut ct, &Plaintext::from_unsigned(&params, &y)?)?;
    let wn = PlaintextNtt::from_signed(&params, &w, ct.num_moduli())?;
    ev.mul_plain_assign(&mut ct, &wn)?;
    ev.sub_plain_assign(&mut ct, &Plaintext::from_unsigned(&params, &mask)?)?;
    let noise_bits = noise::ct_pt(&params, noise::fresh_sk(&params), 2048.0 / 3f64.sqrt()).log2();
    let cfg = FloodingConfig {
        stat_sec_bits: 40,
        noise_bits,
        revealed_coeffs: keep.len(),
    };
    let b = ev.flood(&mut ct, &pk, &cfg, &mut rng)?;
    let q_prime = 1u64 << 52;
    let response = ev.switch_to_small_modulus(&ct, q_prime, &keep)?.to_bytes();
    let t_server = t0.elapsed();

    // client
    let t0 = Instant::now();
    let share = SmallModCiphertext::from_bytes(&params, &response, q_prime, &keep)?.decrypt(&sk)?;
    let t_dec = t0.elapsed();

    // check: share = (x + y)·w − mask (negacyclic, mod 2^ℓ) at the kept coefficients
    let tm = math::Modulus::new(t)?;
    let xy: Vec<u64> = x.iter().zip(&y).map(|(&a, &b)| tm.add(a, b)).collect();
    let wp = Plaintext::from_signed(&params, &w)?;
    let prod = math::PolyMultiplier::new(n, t, math::Wrap::Negacyclic)?.mul(&xy, wp.coeffs())?;
    let ok = keep
        .iter()
        .zip(&share)
        .all(|(&i, &s)| s == tm.sub(prod[i], mask[i]));
    println!(
        "N = {n}, log Q = {:.0}, t = 2^{ell}, flooding 2^{b}, response modulus 2^52",
        params.log_q(3)
    );
    println!(
        "public key {} B, query {} B, response {} B ({} of {} coefficients kept)",
        pk_bytes.len(),
        query.len(),
        response.len(),
        keep.len(),
        n
    );
    println!(
        "client encrypt {t_client:?}, server {t_server:?}, client decrypt {t_dec:?}, correct: {ok}"
    );
    assert!(ok);
    Ok(())
}
