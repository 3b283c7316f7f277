//! Compact, versioned, validated wire format.
//!
//! Every object starts with a 12-byte header: `b"PI"`, version (1), kind, and
//! the 8-byte little-endian parameter id. Residues modulo `q_i` are bit-packed
//! with `bits(q_i)` bits each. Readers check the header against the caller's
//! parameters, every count and level against them, every residue against its
//! modulus, the zero padding, and that no byte is left over; any violation is a
//! typed [`RlweError`], never a panic.

use crate::eval::GaloisKeys;
use crate::keyswitch::KeySwitchingKey;
use crate::lwe::LweCiphertext;
use crate::{Ciphertext, Params, Plaintext, PublicKey, RelinKey, RlweError, SecretKey};
use math::pack::{pack_bits, packed_len, unpack_bits};
use math::sample::expand_seed;
use math::{Modulus, Poly, Representation, RnsContext};
use std::collections::BTreeMap;
use std::sync::Arc;

pub const MAGIC: [u8; 2] = *b"PI";
pub const VERSION: u8 = 1;

/// Object kinds in the header.
pub mod kind {
    pub const CIPHERTEXT: u8 = 1;
    pub const CIPHERTEXT_SEEDED: u8 = 2;
    pub const CIPHERTEXT_SELECTED: u8 = 3;
    pub const PLAINTEXT: u8 = 4;
    pub const PUBLIC_KEY: u8 = 5;
    pub const GALOIS_KEYS: u8 = 6;
    pub const RELIN_KEY: u8 = 7;
    pub const LWE: u8 = 8;
    pub const SMALL_MODULUS: u8 = 9;
}

/// Wire form of a ciphertext.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Form {
    /// All parts bit-packed.
    Full,
    /// `c_0` bit-packed, `c_1` as its 32-byte seed (fresh secret-key encryptions only).
    Seeded,
}

fn header(out: &mut Vec<u8>, kind: u8, params: &Params) {
    out.extend_from_slice(&MAGIC);
    out.push(VERSION);
    out.push(kind);
    out.extend_from_slice(&params.id().to_le_bytes());
}

fn repr_byte(r: Representation) -> u8 {
    match r {
        Representation::Coefficient => 0,
        Representation::Ntt => 1,
    }
}

fn pack_poly(out: &mut Vec<u8>, p: &Poly) {
    for (i, m) in p.moduli().iter().enumerate() {
        pack_bits(p.residue(i), m.bits(), out);
    }
}

struct Reader<'a> {
    buf: &'a [u8],
    pos: usize,
}

impl<'a> Reader<'a> {
    fn new(buf: &'a [u8], params: &Params, kinds: &[u8]) -> Result<(Self, u8), RlweError> {
        if buf.len() < 12 {
            return Err(RlweError::BadLength {
                expected: 12,
                found: buf.len(),
            });
        }
        if buf[..2] != MAGIC || buf[2] != VERSION {
            return Err(RlweError::BadHeader);
        }
        let k = buf[3];
        if !kinds.contains(&k) {
            return Err(RlweError::WrongKind {
                expected: kinds[0],
                found: k,
            });
        }
        let id = u64::from_le_bytes(buf[4..12].try_into().expect("8 bytes"));
        if id != params.id() {
            return Err(RlweError::WrongParamsId {
                expected: params.id(),
                found: id,
            });
        }
        Ok((Self { buf, pos: 12 }, k))
    }

    fn take(&mut self, len: usize) -> Result<&'a [u8], RlweError> {
        let end = self
            .pos
            .checked_add(len)
            .filter(|&e| e <= self.buf.len())
            .ok_or(RlweError::BadLength {
                expected: self.pos.saturating_add(len),
                found: self.buf.len(),
            })?;
        let s = &self.buf[self.pos..end];
        self.pos = end;
        Ok(s)
    }

    fn u8(&mut self) -> Result<u8, RlweError> {
        Ok(self.take(1)?[0])
    }

    fn u32(&mut self) -> Result<u32, RlweError> {
        Ok(u32::from_le_bytes(
            self.take(4)?.try_into().expect("4 bytes"),
        ))
    }

    fn residues(&mut self, m: &Modulus, count: usize) -> Result<Vec<u64>, RlweError> {
        let bits = m.bits();
        let bytes = self.take(packed_len(count, bits))?;
        let v = unpack_bits(bytes, bits, count)?;
        if let Some(&x) = v.iter().find(|&&x| x >= m.value()) {
            return Err(RlweError::ValueOutOfRange {
                value: x,
                modulus: m.value(),
            });
        }
        Ok(v)
    }

    fn poly(
        &mut self,
        ctx: &Arc<RnsContext>,
        l: usize,
        repr: Representation,
    ) -> Result<Poly, RlweError> {
        let n = ctx.n();
        let mut data = Vec::with_capacity(l * n);
        for m in &ctx.moduli()[..l] {
            data.extend(self.residues(m, n)?);
        }
        Ok(Poly::from_residues(ctx, l, repr, data)?)
    }

    fn level(&mut self, params: &Params) -> Result<usize, RlweError> {
        let l = self.u8()? as usize;
        if l == 0 || l > params.max_level() {
            return Err(RlweError::BadField {
                field: "level",
                value: l as u64,
            });
        }
        Ok(l)
    }

    fn repr(&mut self) -> Result<Representation, RlweError> {
        match self.u8()? {
            0 => Ok(Representation::Coefficient),
            1 => Ok(Representation::Ntt),
            v => Err(RlweError::BadField {
                field: "representation",
                value: v as u64,
            }),
        }
    }

    fn finish(&self) -> Result<(), RlweError> {
        if self.pos != self.buf.len() {
            return Err(RlweError::BadLength {
                expected: self.pos,
                found: self.buf.len(),
            });
        }
        Ok(())
    }
}

/// Serializes a ciphertext. `Form::Seeded` needs a fresh secret-key encryption
/// (size 2 with its seed).
pub fn ciphertext_to_bytes(ct: &Ciphertext, form: Form) -> Result<Vec<u8>, RlweError> {
    let p = &ct.params;
    let mut out = Vec::new();
    match form {
        Form::Full => {
            header(&mut out, kind::CIPHERTEXT, p);
            out.push(ct.num_moduli() as u8);
            out.push(repr_byte(ct.representation()));
            out.push(ct.size() as u8);
            for poly in &ct.polys {
                pack_poly(&mut out, poly);
            }
        }
        Form::Seeded => {
            let seed = ct.seed.ok_or(RlweError::BadField {
                field: "seed",
                value: 0,
            })?;
            header(&mut out, kind::CIPHERTEXT_SEEDED, p);
            out.push(ct.num_moduli() as u8);
            out.push(repr_byte(ct.representation()));
            pack_poly(&mut out, &ct.polys[0]);
            out.extend_from_slice(&seed);
        }
    }
    Ok(out)
}

/// Reads a ciphertext in either form, validating against `params`.
pub fn ciphertext_from_bytes(params: &Arc<Params>, bytes: &[u8]) -> Result<Ciphertext, RlweError> {
    let (mut r, k) = Reader::new(bytes, params, &[kind::CIPHERTEXT, kind::CIPHERTEXT_SEEDED])?;
    let l = r.level(params)?;
    let repr = r.repr()?;
    let ctx = params.ctx_q();
    let ct = if k == kind::CIPHERTEXT {
        let size = r.u8()? as usize;
        if !(2..=3).contains(&size) {
            return Err(RlweError::BadField {
                field: "size",
                value: size as u64,
            });
        }
        let polys = (0..size)
            .map(|_| r.poly(ctx, l, repr))
            .collect::<Result<Vec<_>, _>>()?;
        Ciphertext {
            params: params.clone(),
            polys,
            seed: None,
        }
    } else {
        let c0 = r.poly(ctx, l, repr)?;
        let seed: [u8; 32] = r.take(32)?.try_into().expect("32 bytes");
        let mut c1 = expand_seed(ctx, l, &seed);
        c1.to_representation(repr);
        Ciphertext {
            params: params.clone(),
            polys: vec![c0, c1],
            seed: Some(seed),
        }
    };
    r.finish()?;
    Ok(ct)
}

/// Cheetah's response form [Cheetah §4.1]: only the chosen coefficients of
/// `c_0` (coefficient form) and all of `c_1`. The indices themselves are not
/// sent: both sides know them from the layer's shape.
pub fn ciphertext_to_bytes_selected(
    ct: &Ciphertext,
    indices: &[usize],
) -> Result<Vec<u8>, RlweError> {
    let p = &ct.params;
    let n = p.n();
    if ct.size() != 2 {
        return Err(RlweError::InvalidCiphertextSize { size: ct.size() });
    }
    if let Some(&i) = indices.iter().find(|&&i| i >= n) {
        return Err(RlweError::IndexOutOfRange { index: i, n });
    }
    let mut c = ct.clone();
    c.to_representation(Representation::Coefficient);
    let mut out = Vec::new();
    header(&mut out, kind::CIPHERTEXT_SELECTED, p);
    out.push(c.num_moduli() as u8);
    out.extend_from_slice(&(indices.len() as u32).to_le_bytes());
    for (i, m) in c.polys[0].moduli().iter().enumerate() {
        let r = c.polys[0].residue(i);
        let sel: Vec<u64> = indices.iter().map(|&j| r[j]).collect();
        pack_bits(&sel, m.bits(), &mut out);
    }
    pack_poly(&mut out, &c.polys[1]);
    Ok(out)
}

/// A ciphertext of which only some coefficients of `c_0` were kept.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SelectedCiphertext {
    params: Arc<Params>,
    indices: Vec<usize>,
    /// kept `c_0` residues, prime-major (`num_moduli × indices.len()`).
    c0: Vec<u64>,
    c1: Poly,
}

impl SelectedCiphertext {
    pub fn indices(&self) -> &[usize] {
        &self.indices
    }

    /// Decrypts the kept coefficients (values mod `t`, in `indices` order).
    pub fn decrypt(&self, sk: &SecretKey) -> Result<Vec<u64>, RlweError> {
        crate::core::same(&self.params, sk.params())?;
        let l = self.c1.num_moduli();
        let k = self.indices.len();
        let mut c1s = self.c1.clone();
        c1s.ntt_forward();
        c1s.mul_assign_prefix(sk.poly_q_ntt_top())?;
        c1s.ntt_inverse();
        let mut phase = vec![0u64; l * k];
        for (i, m) in self.c1.moduli().iter().enumerate() {
            let r = c1s.residue(i);
            for (c, &j) in self.indices.iter().enumerate() {
                phase[i * k + c] = m.add(self.c0[i * k + c], r[j]);
            }
        }
        let mut out = vec![0u64; k];
        self.params
            .decrypt_rounder(l)
            .scale_round(k, &phase, &mut out);
        Ok(out)
    }
}

/// Reads [`ciphertext_to_bytes_selected`] output; `indices` must be the sender's.
pub fn selected_from_bytes(
    params: &Arc<Params>,
    bytes: &[u8],
    indices: &[usize],
) -> Result<SelectedCiphertext, RlweError> {
    let n = params.n();
    if let Some(&i) = indices.iter().find(|&&i| i >= n) {
        return Err(RlweError::IndexOutOfRange { index: i, n });
    }
    let (mut r, _) = Reader::new(bytes, params, &[kind::CIPHERTEXT_SELECTED])?;
    let l = r.level(params)?;
    let count = r.u32()? as usize;
    if count != indices.len() {
        return Err(RlweError::BadField {
            field: "count",
            value: count as u64,
        });
    }
    let mut c0 = Vec::with_capacity(l * count);
    for m in &params.ctx_q().moduli()[..l] {
        c0.extend(r.residues(m, count)?);
    }
    let c1 = r.poly(params.ctx_q(), l, Representation::Coefficient)?;
    r.finish()?;
    Ok(SelectedCiphertext {
        params: params.clone(),
        indices: indices.to_vec(),
        c0,
        c1,
    })
}

/// Plaintext: coefficients packed with `bits(t − 1)` bits.
pub fn plaintext_to_bytes(pt: &Plaintext) -> Vec<u8> {
    let mut out = Vec::new();
    header(&mut out, kind::PLAINTEXT, &pt.params);
    let bits = (64 - (pt.params.t().value() - 1).leading_zeros()).max(1);
    pack_bits(&pt.coeffs, bits, &mut out);
    out
}

pub fn plaintext_from_bytes(params: &Arc<Params>, bytes: &[u8]) -> Result<Plaintext, RlweError> {
    let (mut r, _) = Reader::new(bytes, params, &[kind::PLAINTEXT])?;
    let t = params.t().value();
    let bits = (64 - (t - 1).leading_zeros()).max(1);
    let v = unpack_bits(r.take(packed_len(params.n(), bits))?, bits, params.n())?;
    r.finish()?;
    if let Some(&x) = v.iter().find(|&&x| x >= t) {
        return Err(RlweError::ValueOutOfRange {
            value: x,
            modulus: t,
        });
    }
    Ok(Plaintext {
        params: params.clone(),
        coeffs: v,
    })
}

/// Public key: `p_0` packed, `p_1` as its seed.
pub fn public_key_to_bytes(pk: &PublicKey) -> Vec<u8> {
    let mut out = Vec::new();
    header(&mut out, kind::PUBLIC_KEY, &pk.params);
    pack_poly(&mut out, &pk.p0);
    out.extend_from_slice(&pk.seed);
    out
}

pub fn public_key_from_bytes(params: &Arc<Params>, bytes: &[u8]) -> Result<PublicKey, RlweError> {
    let (mut r, _) = Reader::new(bytes, params, &[kind::PUBLIC_KEY])?;
    let l = params.max_level();
    let p0 = r.poly(params.ctx_q(), l, Representation::Ntt)?;
    let seed: [u8; 32] = r.take(32)?.try_into().expect("32 bytes");
    r.finish()?;
    let p1 = expand_seed(params.ctx_q(), l, &seed);
    Ok(PublicKey {
        params: params.clone(),
        p0,
        p1,
        seed,
    })
}

/// Bytes of [`public_key_to_raw`]'s output: the 32-byte seed and `p_0` over all of `Q`.
pub fn public_key_raw_len(params: &Params) -> usize {
    32 + params
        .ctx_q()
        .moduli()
        .iter()
        .map(|m| packed_len(params.n(), m.bits()))
        .sum::<usize>()
}

/// Headerless public key, for protocols whose own framing fixes the parameters: the 32-byte
/// seed of `p_1`, then `p_0` (NTT form, all of `Q`, residues bit-packed at `bits(q_i)` per
/// prime). Exactly [`public_key_raw_len`] bytes.
pub fn public_key_to_raw(pk: &PublicKey, out: &mut Vec<u8>) {
    out.extend_from_slice(&pk.seed);
    pack_poly(out, &pk.p0);
}

/// Reads [`public_key_to_raw`] output for `params`: exact length, every residue below its
/// prime, zero padding bits; `p_1` is re-expanded from the seed.
pub fn public_key_from_raw(params: &Arc<Params>, bytes: &[u8]) -> Result<PublicKey, RlweError> {
    let want = public_key_raw_len(params);
    if bytes.len() != want {
        return Err(RlweError::BadLength {
            expected: want,
            found: bytes.len(),
        });
    }
    let mut r = Reader { buf: bytes, pos: 0 };
    let seed: [u8; 32] = r.take(32)?.try_into().expect("32 bytes");
    let l = params.max_level();
    let p0 = r.poly(params.ctx_q(), l, Representation::Ntt)?;
    r.finish()?;
    let p1 = expand_seed(params.ctx_q(), l, &seed);
    Ok(PublicKey {
        params: params.clone(),
        p0,
        p1,
        seed,
    })
}

fn pack_ksk(out: &mut Vec<u8>, k: &KeySwitchingKey) {
    // b_j packed; the a_j as their common seed
    out.push(k.digits.len() as u8);
    for (b, _) in &k.digits {
        pack_poly(out, b);
    }
    out.extend_from_slice(&k.seed);
}

fn read_ksk(r: &mut Reader<'_>, params: &Params) -> Result<KeySwitchingKey, RlweError> {
    let ks = params.key_switcher().ok_or(RlweError::NoSpecialPrimes)?;
    let d = r.u8()? as usize;
    if d != ks.dnum() {
        return Err(RlweError::BadField {
            field: "digits",
            value: d as u64,
        });
    }
    let ctx = params.ctx_qp();
    let bs = (0..d)
        .map(|_| r.poly(ctx, ctx.len(), Representation::Ntt))
        .collect::<Result<Vec<_>, RlweError>>()?;
    let seed: [u8; 32] = r.take(32)?.try_into().expect("32 bytes");
    let digits = bs
        .into_iter()
        .enumerate()
        .map(|(j, b)| {
            (
                b,
                math::sample::expand_seed_stream(ctx, ctx.len(), &seed, j as u64),
            )
        })
        .collect();
    Ok(KeySwitchingKey { digits, seed })
}

pub fn galois_keys_to_bytes(gk: &GaloisKeys) -> Vec<u8> {
    let mut out = Vec::new();
    header(&mut out, kind::GALOIS_KEYS, &gk.params);
    out.extend_from_slice(&(gk.keys.len() as u32).to_le_bytes());
    for (&k, key) in &gk.keys {
        out.extend_from_slice(&(k as u32).to_le_bytes());
        pack_ksk(&mut out, key);
    }
    out
}

pub fn galois_keys_from_bytes(params: &Arc<Params>, bytes: &[u8]) -> Result<GaloisKeys, RlweError> {
    let (mut r, _) = Reader::new(bytes, params, &[kind::GALOIS_KEYS])?;
    let n = params.n();
    let count = r.u32()? as usize;
    if count > n {
        return Err(RlweError::BadField {
            field: "key count",
            value: count as u64,
        });
    }
    let mut keys = BTreeMap::new();
    for _ in 0..count {
        let k = r.u32()? as usize;
        if k.is_multiple_of(2) || k >= 2 * n || keys.contains_key(&k) {
            return Err(RlweError::BadField {
                field: "galois element",
                value: k as u64,
            });
        }
        keys.insert(k, read_ksk(&mut r, params)?);
    }
    r.finish()?;
    Ok(GaloisKeys {
        params: params.clone(),
        keys,
    })
}

pub fn relin_key_to_bytes(rk: &RelinKey) -> Vec<u8> {
    let mut out = Vec::new();
    header(&mut out, kind::RELIN_KEY, &rk.params);
    pack_ksk(&mut out, &rk.key);
    out
}

pub fn relin_key_from_bytes(params: &Arc<Params>, bytes: &[u8]) -> Result<RelinKey, RlweError> {
    let (mut r, _) = Reader::new(bytes, params, &[kind::RELIN_KEY])?;
    let key = read_ksk(&mut r, params)?;
    r.finish()?;
    Ok(RelinKey {
        params: params.clone(),
        key,
    })
}

pub fn lwe_to_bytes(lwe: &LweCiphertext) -> Vec<u8> {
    let mut out = Vec::new();
    header(&mut out, kind::LWE, &lwe.params);
    let l = lwe.num_moduli();
    let n = lwe.params.n();
    out.push(l as u8);
    for (i, m) in lwe.params.ctx_q().moduli()[..l].iter().enumerate() {
        pack_bits(&[lwe.b[i]], m.bits(), &mut out);
        pack_bits(&lwe.a[i * n..(i + 1) * n], m.bits(), &mut out);
    }
    out
}

pub fn lwe_from_bytes(params: &Arc<Params>, bytes: &[u8]) -> Result<LweCiphertext, RlweError> {
    let (mut r, _) = Reader::new(bytes, params, &[kind::LWE])?;
    let l = r.level(params)?;
    let n = params.n();
    let mut b = Vec::with_capacity(l);
    let mut a = Vec::with_capacity(l * n);
    for m in &params.ctx_q().moduli()[..l] {
        b.push(r.residues(m, 1)?[0]);
        a.extend(r.residues(m, n)?);
    }
    r.finish()?;
    Ok(LweCiphertext {
        params: params.clone(),
        b,
        a,
    })
}
