//! Compact, versioned, validated serialization of ciphertexts and evaluation keys.
//!
//! Residues are bit-packed to the width of their prime. Reading checks the format version, the
//! parameter id, levels, degrees, slot counts, scales, lengths, that every residue is below its
//! prime, and that no bytes trail: bytes from the other party are never trusted.
//!
//! Layout (little-endian): `version u8 | kind u8 | params_id u64 | body`.
//! * ciphertext body: `level u16 | degree u8 | slots u32 | scale f64 | (degree+1) × poly(Q_level)`
//! * switching key body: `level u16 | digits u8 | seed [u8; 32] | digits × [b_Q, b_P]`: the `a`
//!   parts are not sent, the reader expands them from the seed (`keys::expand_a`)
//! * evaluation keys body: `has_relin u8 | [len u64 | key] | count u32 | count × (galois u32 | len u64 | key)`
//!   (a Galois key for `g` is stored as `σ_g^{-1}` of the key from `σ_g(s)`, NTT slots permuted)
//! * encapsulation keys body: `key (s → s', level 0) | key (s' → s)`
//! * seeded ciphertext body: `level u16 | slots u32 | scale f64 | seed [u8; 32] | c0 (Q_level)`:
//!   a fresh secret-key encryption, `c1` expanded from the seed by the reader (`scheme::expand_c1`)

use math::pack::{pack_bits, packed_len, unpack_bits};
use math::{Poly, Representation, RnsContext};
use std::sync::Arc;

use crate::bootstrap::EncapsulationKeys;
use crate::error::{CkksError, DecodeProblem};
use crate::keys::{expand_a, EvaluationKeys, SwitchingKey};
use crate::params::Params;
use crate::scheme::{expand_c1, Ciphertext, SeededCiphertext};

/// Format version. 2: Galois keys hold `σ_g^{-1}(K)` (see `keys::SwitchingKey`); version-1 Galois
/// keys would rotate wrongly, so version 1 is refused. 3: switching keys carry the seed of their
/// `a` parts instead of the parts.
const VERSION: u8 = 3;
const KIND_CT: u8 = 1;
const KIND_SWK: u8 = 2;
const KIND_EVK: u8 = 3;
const KIND_ENCAPS: u8 = 4;
const KIND_CT_SEEDED: u8 = 5;

fn err(p: DecodeProblem) -> CkksError {
    CkksError::Decode(p)
}

struct Reader<'a> {
    b: &'a [u8],
}

impl<'a> Reader<'a> {
    fn take(&mut self, n: usize) -> Result<&'a [u8], CkksError> {
        if self.b.len() < n {
            return Err(err(DecodeProblem::Truncated));
        }
        let (h, t) = self.b.split_at(n);
        self.b = t;
        Ok(h)
    }
    fn u8(&mut self) -> Result<u8, CkksError> {
        Ok(self.take(1)?[0])
    }
    fn u16(&mut self) -> Result<u16, CkksError> {
        Ok(u16::from_le_bytes(
            self.take(2)?.try_into().expect("2 bytes"),
        ))
    }
    fn u32(&mut self) -> Result<u32, CkksError> {
        Ok(u32::from_le_bytes(
            self.take(4)?.try_into().expect("4 bytes"),
        ))
    }
    fn u64(&mut self) -> Result<u64, CkksError> {
        Ok(u64::from_le_bytes(
            self.take(8)?.try_into().expect("8 bytes"),
        ))
    }
    fn header(&mut self, params: &Params, kind: u8) -> Result<(), CkksError> {
        let v = self.u8()?;
        if v != VERSION {
            return Err(err(DecodeProblem::Version(v)));
        }
        if self.u8()? != kind {
            return Err(err(DecodeProblem::Range));
        }
        if self.u64()? != params.id() {
            return Err(err(DecodeProblem::ParamsId));
        }
        Ok(())
    }
    fn poly(&mut self, ctx: &Arc<RnsContext>, k: usize) -> Result<Poly, CkksError> {
        let n = ctx.n();
        let mut data = Vec::with_capacity(k * n);
        for m in &ctx.moduli()[..k] {
            let bits = m.bits();
            let bytes = self.take(packed_len(n, bits))?;
            let vals = unpack_bits(bytes, bits, n).map_err(|_| err(DecodeProblem::Range))?;
            if vals.iter().any(|&v| v >= m.value()) {
                return Err(err(DecodeProblem::Range));
            }
            data.extend(vals);
        }
        Poly::from_residues(ctx, k, Representation::Ntt, data)
            .map_err(|_| err(DecodeProblem::Range))
    }
    /// A ciphertext's slot count and scale, validated.
    fn slots_scale(&mut self, params: &Params) -> Result<(usize, f64), CkksError> {
        let slots = self.u32()? as usize;
        params.encoder().check_slots(slots)?;
        let scale = f64::from_bits(self.u64()?);
        if !(scale.is_finite() && scale >= 1.0) {
            return Err(err(DecodeProblem::Range));
        }
        Ok((slots, scale))
    }
    fn finish(&self) -> Result<(), CkksError> {
        if !self.b.is_empty() {
            return Err(err(DecodeProblem::Trailing));
        }
        Ok(())
    }
}

fn header(out: &mut Vec<u8>, params: &Params, kind: u8) {
    out.push(VERSION);
    out.push(kind);
    out.extend(params.id().to_le_bytes());
}

fn put_poly(out: &mut Vec<u8>, p: &Poly) {
    let n = p.n();
    for (i, m) in p.moduli().iter().enumerate() {
        pack_bits(&p.data()[i * n..(i + 1) * n], m.bits(), out);
    }
}

/// Serializes a ciphertext.
pub fn ciphertext_to_bytes(params: &Params, ct: &Ciphertext) -> Vec<u8> {
    let mut out = Vec::with_capacity(ct.memory_bytes());
    header(&mut out, params, KIND_CT);
    out.extend((ct.level as u16).to_le_bytes());
    out.push(ct.degree() as u8);
    out.extend((ct.slots as u32).to_le_bytes());
    out.extend(ct.scale.to_le_bytes());
    for p in &ct.c {
        put_poly(&mut out, p);
    }
    out
}

/// Reads and validates a ciphertext for `params`.
pub fn ciphertext_from_bytes(params: &Params, bytes: &[u8]) -> Result<Ciphertext, CkksError> {
    let mut r = Reader { b: bytes };
    r.header(params, KIND_CT)?;
    let level = r.u16()? as usize;
    params.check_level(level)?;
    let degree = r.u8()? as usize;
    if !(1..=2).contains(&degree) {
        return Err(err(DecodeProblem::Range));
    }
    let (slots, scale) = r.slots_scale(params)?;
    let c = (0..=degree)
        .map(|_| r.poly(params.ctx_q(), level + 1))
        .collect::<Result<Vec<_>, _>>()?;
    r.finish()?;
    Ok(Ciphertext {
        c,
        level,
        scale,
        slots,
        params_id: params.id(),
    })
}

/// Serializes a seeded encryption: its seed instead of `c1` (half a ciphertext's bytes).
pub fn seeded_ciphertext_to_bytes(params: &Params, ct: &SeededCiphertext) -> Vec<u8> {
    let c = &ct.ct;
    debug_assert_eq!(c.c[1].data(), expand_c1(params, &ct.seed, c.level).data());
    let mut out = Vec::with_capacity(c.memory_bytes() / 2 + 64);
    header(&mut out, params, KIND_CT_SEEDED);
    out.extend((c.level as u16).to_le_bytes());
    out.extend((c.slots as u32).to_le_bytes());
    out.extend(c.scale.to_bits().to_le_bytes());
    out.extend(ct.seed);
    put_poly(&mut out, &c.c[0]);
    out
}

/// Reads and validates a seeded encryption ([`seeded_ciphertext_to_bytes`]), expanding `c1`.
pub fn ciphertext_from_seeded_bytes(
    params: &Params,
    bytes: &[u8],
) -> Result<Ciphertext, CkksError> {
    let mut r = Reader { b: bytes };
    r.header(params, KIND_CT_SEEDED)?;
    let level = r.u16()? as usize;
    params.check_level(level)?;
    let (slots, scale) = r.slots_scale(params)?;
    let seed: [u8; 32] = r.take(32)?.try_into().expect("32 bytes");
    let c0 = r.poly(params.ctx_q(), level + 1)?;
    r.finish()?;
    Ok(Ciphertext {
        c: vec![c0, expand_c1(params, &seed, level)],
        level,
        scale,
        slots,
        params_id: params.id(),
    })
}

fn put_swk(out: &mut Vec<u8>, k: &SwitchingKey) {
    out.extend((k.max_level() as u16).to_le_bytes());
    out.push(k.parts.len() as u8);
    out.extend(k.seed);
    for [(bq, bp), _] in &k.parts {
        put_poly(out, bq);
        put_poly(out, bp);
    }
}

fn read_swk(r: &mut Reader<'_>, params: &Params) -> Result<SwitchingKey, CkksError> {
    let level = r.u16()? as usize;
    params.check_level(level)?;
    let digits = r.u8()? as usize;
    if digits != params.digits_at(level) {
        return Err(err(DecodeProblem::Range));
    }
    let kp = params.p().len();
    let seed: [u8; 32] = r.take(32)?.try_into().expect("32 bytes");
    let b = (0..digits)
        .map(|_| {
            Ok((
                r.poly(params.ctx_q(), level + 1)?,
                r.poly(params.ctx_p(), kp)?,
            ))
        })
        .collect::<Result<Vec<_>, CkksError>>()?;
    let parts = b
        .into_iter()
        .zip(expand_a(params, &seed, level, digits))
        .map(|(b, a)| [b, a])
        .collect();
    Ok(SwitchingKey { parts, seed })
}

/// Serializes one switching key.
pub fn switching_key_to_bytes(params: &Params, k: &SwitchingKey) -> Vec<u8> {
    let mut out = Vec::with_capacity(k.memory_bytes() / 2 + 64);
    header(&mut out, params, KIND_SWK);
    put_swk(&mut out, k);
    out
}

/// Reads and validates one switching key.
pub fn switching_key_from_bytes(params: &Params, bytes: &[u8]) -> Result<SwitchingKey, CkksError> {
    let mut r = Reader { b: bytes };
    r.header(params, KIND_SWK)?;
    let k = read_swk(&mut r, params)?;
    r.finish()?;
    Ok(k)
}

/// Serializes evaluation keys (relinearization and every Galois key).
pub fn evaluation_keys_to_bytes(params: &Params, keys: &EvaluationKeys) -> Vec<u8> {
    let mut out = Vec::with_capacity(keys.memory_bytes() / 2 + 64);
    header(&mut out, params, KIND_EVK);
    match &keys.relin {
        Some(k) => {
            out.push(1);
            put_swk(&mut out, k);
        }
        None => out.push(0),
    }
    out.extend((keys.galois.len() as u32).to_le_bytes());
    for (&g, k) in &keys.galois {
        out.extend((g as u32).to_le_bytes());
        put_swk(&mut out, k);
    }
    out
}

/// Length of [`evaluation_keys_to_bytes`]'s output, serializing one key at a time (the keys of
/// a network can be gigabytes).
pub fn evaluation_keys_len(params: &Params, keys: &EvaluationKeys) -> usize {
    let mut buf = Vec::new();
    header(&mut buf, params, KIND_EVK);
    let mut len = buf.len() + 1 + 4;
    for k in keys.relin.iter().chain(keys.galois.values()) {
        buf.clear();
        put_swk(&mut buf, k);
        len += buf.len();
    }
    len + 4 * keys.galois.len()
}

/// Reads and validates evaluation keys.
pub fn evaluation_keys_from_bytes(
    params: &Params,
    bytes: &[u8],
) -> Result<EvaluationKeys, CkksError> {
    let mut r = Reader { b: bytes };
    r.header(params, KIND_EVK)?;
    let relin = match r.u8()? {
        0 => None,
        1 => Some(read_swk(&mut r, params)?),
        _ => return Err(err(DecodeProblem::Range)),
    };
    let count = r.u32()? as usize;
    if count > params.n() {
        return Err(err(DecodeProblem::Range));
    }
    let mut galois = std::collections::BTreeMap::new();
    for _ in 0..count {
        let g = r.u32()? as usize;
        if g.is_multiple_of(2) || g >= 2 * params.n() || galois.contains_key(&g) {
            return Err(err(DecodeProblem::Range));
        }
        galois.insert(g, read_swk(&mut r, params)?);
    }
    r.finish()?;
    Ok(EvaluationKeys {
        relin,
        galois,
        params_id: params.id(),
    })
}

/// Serializes the bootstrapping encapsulation keys (`s → s'` modulo `q_0·P`, `s' → s`).
pub fn encapsulation_keys_to_bytes(params: &Params, keys: &EncapsulationKeys) -> Vec<u8> {
    let mut out = Vec::with_capacity(keys.memory_bytes() / 2 + 128);
    header(&mut out, params, KIND_ENCAPS);
    put_swk(&mut out, &keys.to_sparse);
    put_swk(&mut out, &keys.from_sparse);
    out
}

/// Reads and validates encapsulation keys; the `s → s'` key must be at level 0 (a sparse-secret
/// key at a larger modulus would weaken security and is refused).
pub fn encapsulation_keys_from_bytes(
    params: &Params,
    bytes: &[u8],
) -> Result<EncapsulationKeys, CkksError> {
    let mut r = Reader { b: bytes };
    r.header(params, KIND_ENCAPS)?;
    let to_sparse = read_swk(&mut r, params)?;
    if to_sparse.max_level() != 0 {
        return Err(err(DecodeProblem::Range));
    }
    let from_sparse = read_swk(&mut r, params)?;
    r.finish()?;
    Ok(EncapsulationKeys {
        to_sparse,
        from_sparse,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::keys::{KeyGenerator, SecretKey};
    use crate::presets;
    use rand_chacha::ChaCha20Rng;
    use rand_core::SeedableRng;

    fn same(a: &SwitchingKey, b: &SwitchingKey) -> bool {
        a.seed == b.seed
            && a.parts.len() == b.parts.len()
            && a.parts.iter().zip(&b.parts).all(|(x, y)| {
                x.iter()
                    .zip(y)
                    .all(|((q1, p1), (q2, p2))| q1.data() == q2.data() && p1.data() == p2.data())
            })
    }

    /// Bytes of the `b` parts alone, bit-packed: what a seeded key sends besides its header,
    /// level, digit count and seed.
    fn b_bytes(k: &SwitchingKey) -> usize {
        let packed =
            |p: &Poly| -> usize { p.moduli().iter().map(|m| packed_len(p.n(), m.bits())).sum() };
        k.parts
            .iter()
            .map(|[(bq, bp), _]| packed(bq) + packed(bp))
            .sum()
    }

    /// A switching key travels as its seed and its `b` parts, and the reader rebuilds every `a`
    /// part bit for bit: relinearization, Galois (stored permuted) and encapsulation keys, at
    /// the top level and below it.
    #[test]
    fn seeded_keys_round_trip_at_half_the_bytes() {
        let params = Params::new(presets::insecure_fuzz_n6()).unwrap();
        let mut rng = ChaCha20Rng::seed_from_u64(5);
        let sk = SecretKey::generate(&params, &mut rng);
        let kg = KeyGenerator::new(&params, &sk).unwrap();
        let keys = [
            kg.relin_key(&mut rng),
            kg.galois_key(params.galois_element(1), &mut rng).unwrap(),
            kg.galois_key_at(params.galois_element(-3), 0, &mut rng)
                .unwrap(),
        ];
        for k in &keys {
            let bytes = switching_key_to_bytes(&params, k);
            assert_eq!(bytes.len(), 10 + 2 + 1 + 32 + b_bytes(k));
            // The a parts are as large as the b parts: half the key is not sent.
            assert_eq!(2 * b_bytes(k), {
                let full: usize = k
                    .parts
                    .iter()
                    .flat_map(|part| part.iter())
                    .map(|(q, p)| {
                        [q, p]
                            .iter()
                            .flat_map(|x| x.moduli().iter().map(|m| packed_len(x.n(), m.bits())))
                            .sum::<usize>()
                    })
                    .sum();
                full
            });
            let back = switching_key_from_bytes(&params, &bytes).unwrap();
            assert!(same(k, &back));
            // Another seed gives other a parts (the seed is what they come from).
            let mut other = bytes.clone();
            other[13] ^= 1;
            assert!(!same(
                k,
                &switching_key_from_bytes(&params, &other).unwrap()
            ));
        }
        let encaps =
            crate::bootstrap::EncapsulationKeys::generate(&params, &sk, 8, &mut rng).unwrap();
        let back =
            encapsulation_keys_from_bytes(&params, &encapsulation_keys_to_bytes(&params, &encaps))
                .unwrap();
        assert!(same(&encaps.to_sparse, &back.to_sparse));
        assert!(same(&encaps.from_sparse, &back.from_sparse));
    }

    /// A seeded encryption travels as its seed and `c0`, and reads back bit for bit; it decrypts
    /// like any ciphertext; a public-key encryptor refuses to seed.
    #[test]
    fn seeded_ciphertexts_round_trip_at_half_the_bytes() {
        use crate::{Complex, Decryptor, Encryptor};
        let params = Params::new(presets::insecure_test_n11()).unwrap();
        let mut rng = ChaCha20Rng::seed_from_u64(6);
        let sk = SecretKey::generate(&params, &mut rng);
        let enc = Encryptor::with_secret_key(&params, &sk).unwrap();
        let x: Vec<Complex> = (0..params.max_slots())
            .map(|i| Complex::new((i as f64 * 0.37).sin(), (i as f64 * 0.11).cos()))
            .collect();
        for level in [params.max_level(), 1] {
            let pt = params
                .encode(&x, params.max_slots(), level, params.default_scale())
                .unwrap();
            let sc = enc.encrypt_seeded(&pt, &mut rng).unwrap();
            let bytes = seeded_ciphertext_to_bytes(&params, &sc);
            let full = ciphertext_to_bytes(&params, sc.ciphertext());
            assert_eq!(
                bytes.len(),
                10 + 2 + 4 + 8 + 32 + (full.len() - (10 + 2 + 1 + 4 + 8)) / 2
            );
            let back = ciphertext_from_seeded_bytes(&params, &bytes).unwrap();
            assert_eq!(back.level, level);
            for (a, b) in back.c.iter().zip(&sc.ciphertext().c) {
                assert_eq!(a.data(), b.data());
            }
            let y = Decryptor::new(&params, &sk)
                .unwrap()
                .decrypt(&back)
                .unwrap();
            let err = x
                .iter()
                .zip(&y)
                .map(|(a, b)| (*a - *b).norm_sqr().sqrt())
                .fold(0.0, f64::max);
            assert!(err < 1e-6, "decryption error {err}");
            // Another seed expands another c1.
            let mut other = bytes.clone();
            other[24] ^= 1;
            let o = ciphertext_from_seeded_bytes(&params, &other).unwrap();
            assert_ne!(o.c[1].data(), back.c[1].data());
        }
        let pk = KeyGenerator::new(&params, &sk)
            .unwrap()
            .public_key(&mut rng);
        let pt = params
            .encode(&x, params.max_slots(), 1, params.default_scale())
            .unwrap();
        assert!(matches!(
            Encryptor::with_public_key(&params, &pk)
                .unwrap()
                .encrypt_seeded(&pt, &mut rng),
            Err(CkksError::NotSecretKey)
        ));
    }
}
