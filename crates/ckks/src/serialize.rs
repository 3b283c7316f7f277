//! Compact, versioned, validated serialization of ciphertexts and evaluation keys.
//!
//! Residues are bit-packed to the width of their prime. Reading checks the format version, the
//! parameter id, levels, degrees, slot counts, scales, lengths, that every residue is below its
//! prime, and that no bytes trail: bytes from the other party are never trusted.
//!
//! Layout (little-endian): `version u8 | kind u8 | params_id u64 | body`.
//! * ciphertext body: `level u16 | degree u8 | slots u32 | scale f64 | (degree+1) × poly(Q_level)`
//! * switching key body: `level u16 | digits u8 | digits × [b_Q, b_P, a_Q, a_P]`
//! * evaluation keys body: `has_relin u8 | [len u64 | key] | count u32 | count × (galois u32 | len u64 | key)`
//!   (a Galois key for `g` is stored as `σ_g^{-1}` of the key from `σ_g(s)`, NTT slots permuted)
//! * encapsulation keys body: `key (s → s', level 0) | key (s' → s)`

use math::pack::{pack_bits, packed_len, unpack_bits};
use math::{Poly, Representation, RnsContext};
use std::sync::Arc;

use crate::bootstrap::EncapsulationKeys;
use crate::error::{CkksError, DecodeProblem};
use crate::keys::{EvaluationKeys, SwitchingKey};
use crate::params::Params;
use crate::scheme::Ciphertext;

/// Format version. 2: Galois keys hold `σ_g^{-1}(K)` (see `keys::SwitchingKey`); version-1 Galois
/// keys would rotate wrongly, so version 1 is refused.
const VERSION: u8 = 2;
const KIND_CT: u8 = 1;
const KIND_SWK: u8 = 2;
const KIND_EVK: u8 = 3;
const KIND_ENCAPS: u8 = 4;

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
    let slots = r.u32()? as usize;
    params.encoder().check_slots(slots)?;
    let scale = f64::from_bits(r.u64()?);
    if !(scale.is_finite() && scale >= 1.0) {
        return Err(err(DecodeProblem::Range));
    }
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

fn put_swk(out: &mut Vec<u8>, k: &SwitchingKey) {
    out.extend((k.max_level() as u16).to_le_bytes());
    out.push(k.parts.len() as u8);
    for part in &k.parts {
        for (q, p) in part {
            put_poly(out, q);
            put_poly(out, p);
        }
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
    let mut parts = Vec::with_capacity(digits);
    for _ in 0..digits {
        let bq = r.poly(params.ctx_q(), level + 1)?;
        let bp = r.poly(params.ctx_p(), kp)?;
        let aq = r.poly(params.ctx_q(), level + 1)?;
        let ap = r.poly(params.ctx_p(), kp)?;
        parts.push([(bq, bp), (aq, ap)]);
    }
    Ok(SwitchingKey { parts })
}

/// Serializes one switching key.
pub fn switching_key_to_bytes(params: &Params, k: &SwitchingKey) -> Vec<u8> {
    let mut out = Vec::with_capacity(k.memory_bytes());
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
    let mut out = Vec::with_capacity(keys.memory_bytes() + 64);
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
    let mut out = Vec::with_capacity(keys.memory_bytes() + 32);
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
