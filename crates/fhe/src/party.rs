//! FHE mode over a [`transport::Channel`] (docs/protocols/hyphen.md § Parties).
//!
//! Messages, in order:
//! 1. server → client: tag 0 + JSON `{version, params, digest, offer}` ([`Hello`]);
//! 2. client → server: JSON `{galois, encaps}` (counts), the relinearization key, each Galois
//!    key as `u32 g ‖ key`, the encapsulation keys if any, then `u32 count` and each input
//!    ciphertext — every object in its own message, validated by `ckks::serialize`;
//! 3. server → client: tag 0 + `u32 count` and each output ciphertext in its own message, or
//!    tag 1 + a one-line error (after which the server closes the connection and keeps serving).

use std::collections::BTreeMap;
use std::time::Instant;

use ckks::{serialize, EvaluationKeys, Evaluator};
use rand_core::{CryptoRng, RngCore};
use serde::{Deserialize, Serialize};
use transport::Channel;

use crate::error::{FheError, Result};
use crate::session::{Client, Deployment, Offer};

/// Protocol version: 2 since the P and I layouts are copy-major (an offer's layouts mean
/// something else to a version-1 peer, which must refuse it).
pub const VERSION: u32 = 3;
/// Largest message of the protocol (a Galois key at the top level of the 128-bit preset is
/// about 150 MB).
pub const MAX_MESSAGE: usize = 1 << 30;

#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Hello {
    pub version: u32,
    /// Name of the CKKS parameter preset (the client uses its own copy of it).
    pub params: String,
    /// Digest of the served model (as the 2PC handshake's).
    pub digest: String,
    pub offer: Offer,
}

#[derive(Serialize, Deserialize)]
struct KeysHeader {
    galois: usize,
    encaps: bool,
}

/// Reads and validates a server hello (untrusted bytes from the server, after the tag): the
/// layouts must describe the offered input shape and slot count, the key list be bounded.
pub fn parse_hello(bytes: &[u8]) -> Result<Hello> {
    let h: Hello = serde_json::from_slice(bytes).map_err(|e| bad(format!("server hello: {e}")))?;
    let o = &h.offer;
    let n = o.slots;
    let [c, hh, ww] = o.input_shape;
    let sane = n.is_power_of_two()
        && n <= 1 << 20
        && o.range.is_finite()
        && o.range > 0.0
        && o.input_level <= 64
        && o.output_level <= 64
        && o.flood_bits.is_none_or(|b| (1..=40).contains(&b))
        && o.galois.len() <= 4096
        && (1..=4096).contains(&c)
        && (1..=4096).contains(&hh)
        && (1..=4096).contains(&ww);
    if !sane {
        return Err(bad("server offer out of range"));
    }
    // A grid's block, without overflow on untrusted sizes.
    let block = |g: &crate::layout::Grid| {
        (g.k.is_power_of_two() && g.k <= 4096 && g.h <= 4096 && g.w <= 4096)
            .then(|| {
                g.k.checked_mul(g.hp())?
                    .checked_mul(g.k)?
                    .checked_mul(g.wp())
            })
            .flatten()
    };
    let fits = |l: &crate::layout::Layout| match *l {
        crate::layout::Layout::P {
            c,
            grid,
            g,
            r,
            parts,
            bands,
        } => {
            let Some(b) = block(&grid) else {
                return false;
            };
            let per_part = if bands == 1 {
                g.checked_mul(r).and_then(|x| x.checked_mul(b)) == Some(n)
                    && (parts == 1 || (r == 1 && parts <= 4096))
            } else {
                bands >= 2
                    && grid.k.checked_mul(grid.wp()).is_some_and(|wb| wb <= n)
                    && g == 1
                    && r == 1
                    && bands.checked_mul(n) == Some(b)
                    && parts % bands == 0
                    && parts <= 4096
            };
            per_part
                && g.checked_mul(grid.phases())
                    .and_then(|x| x.checked_mul(parts / bands.max(1)))
                    .is_some_and(|x| x >= c)
        }
        crate::layout::Layout::I { c, grid, r, g } => {
            r >= 1
                && block(&grid).and_then(|b| g.checked_mul(r)?.checked_mul(b)) == Some(n)
                && c <= 4096
        }
        crate::layout::Layout::Vector { len, stride } => {
            stride >= 1 && len <= 4096 && len.checked_mul(stride).is_some_and(|x| x <= n)
        }
    };
    let input_ok = match o.input {
        crate::layout::Layout::P { c: ci, grid, .. }
        | crate::layout::Layout::I { c: ci, grid, .. } => {
            ci == c && grid.h == hh && grid.w == ww && grid.k == 1
        }
        crate::layout::Layout::Vector { .. } => false,
    };
    if !(fits(&o.input) && fits(&o.output) && input_ok && o.output.cts() <= 4096) {
        return Err(bad(
            "server offer: layouts do not match the input shape and slots",
        ));
    }
    Ok(h)
}

/// What one served session cost.
#[derive(Clone, Debug, Serialize)]
pub struct ServerReport {
    pub eval_key_bytes: usize,
    pub ciphertext_bytes_c2s: usize,
    pub ciphertext_bytes_s2c: usize,
    pub ms: f64,
    pub bootstraps: usize,
}

fn bad(msg: impl Into<String>) -> FheError {
    FheError::BadInput(msg.into())
}

fn tr(e: transport::TransportError) -> FheError {
    FheError::BadInput(format!("transport: {e}"))
}

fn u32_at(b: &[u8]) -> Result<(u32, &[u8])> {
    if b.len() < 4 {
        return Err(bad("message shorter than its 4-byte prefix"));
    }
    Ok((
        u32::from_le_bytes(b[..4].try_into().expect("4 bytes")),
        &b[4..],
    ))
}

/// Server side of one session: offer, keys, ciphertexts, evaluation, result. On an error after
/// the hello, the client is told why in one line.
/// `rng` draws the re-randomization and flooding of the returned ciphertexts.
pub fn serve<C: Channel, R: RngCore + CryptoRng>(
    dep: &Deployment,
    params: &str,
    digest: &str,
    ch: &mut C,
    rng: &mut R,
) -> Result<ServerReport> {
    let hello = Hello {
        version: VERSION,
        params: params.into(),
        digest: digest.into(),
        offer: dep.offer.clone(),
    };
    let mut msg = vec![0u8];
    msg.extend(serde_json::to_vec(&hello).map_err(|e| bad(e.to_string()))?);
    ch.send(&msg).map_err(tr)?;
    ch.flush().map_err(tr)?;
    match serve_rest(dep, ch, rng) {
        Ok(r) => Ok(r),
        Err(e) => {
            let mut m = vec![1u8];
            m.extend(e.to_string().replace('\n', " ").as_bytes());
            let _ = ch.send(&m);
            let _ = ch.flush();
            Err(e)
        }
    }
}

fn serve_rest<C: Channel, R: RngCore + CryptoRng>(
    dep: &Deployment,
    ch: &mut C,
    rng: &mut R,
) -> Result<ServerReport> {
    let p = &dep.params;
    let before = ch.stats();
    let hdr: KeysHeader = serde_json::from_slice(&ch.recv().map_err(tr)?)
        .map_err(|e| bad(format!("keys header: {e}")))?;
    if hdr.galois > dep.offer.galois.len() {
        return Err(bad(format!(
            "{} Galois keys offered, the evaluation uses {}",
            hdr.galois,
            dep.offer.galois.len()
        )));
    }
    let relin = serialize::switching_key_from_bytes(p, &ch.recv().map_err(tr)?)?;
    let mut galois = BTreeMap::new();
    for _ in 0..hdr.galois {
        let m = ch.recv().map_err(tr)?;
        let (g, rest) = u32_at(&m)?;
        galois.insert(g as usize, serialize::switching_key_from_bytes(p, rest)?);
    }
    let encaps = if hdr.encaps {
        Some(serialize::encapsulation_keys_from_bytes(
            p,
            &ch.recv().map_err(tr)?,
        )?)
    } else {
        None
    };
    let zero = serialize::ciphertext_from_seeded_bytes(p, &ch.recv().map_err(tr)?)?;
    let keys = EvaluationKeys::from_parts(p, Some(relin), galois);
    dep.check_keys(&keys, encaps.as_ref())?;
    dep.check_zero(&zero)?;
    let eval_key_bytes = (ch.stats().bytes_received - before.bytes_received) as usize;
    let m = ch.recv().map_err(tr)?;
    let (count, _) = u32_at(&m)?;
    if count as usize != dep.offer.input.cts() {
        return Err(bad(format!(
            "{count} input ciphertexts, the layout has {}",
            dep.offer.input.cts()
        )));
    }
    let mut c2s = 0;
    let mut input = Vec::with_capacity(count as usize);
    for _ in 0..count {
        let b = ch.recv().map_err(tr)?;
        c2s += b.len();
        input.push(serialize::ciphertext_from_seeded_bytes(p, &b)?);
    }
    let eval = Evaluator::new(p, keys)?;
    let t = Instant::now();
    let run = dep.evaluate(&eval, encaps.as_ref(), &zero, input, rng)?;
    let ms = t.elapsed().as_secs_f64() * 1e3;
    let mut head = vec![0u8];
    head.extend((run.output.len() as u32).to_le_bytes());
    ch.send(&head).map_err(tr)?;
    let mut s2c = 0;
    for c in &run.output {
        let b = serialize::ciphertext_to_bytes(p, c);
        s2c += b.len();
        ch.send(&b).map_err(tr)?;
    }
    ch.flush().map_err(tr)?;
    Ok(ServerReport {
        eval_key_bytes,
        ciphertext_bytes_c2s: c2s,
        ciphertext_bytes_s2c: s2c,
        ms,
        bootstraps: run.steps.iter().map(|s| s.counts.bootstraps).sum(),
    })
}

/// What one inference cost the client.
#[derive(Clone, Debug, Serialize)]
pub struct ClientReport {
    pub logits: Vec<f64>,
    pub digest: String,
    pub params: String,
    pub eval_key_bytes: usize,
    pub ciphertext_bytes_c2s: usize,
    pub ciphertext_bytes_s2c: usize,
    pub keygen_ms: f64,
    pub wait_ms: f64,
}

fn server_msg<C: Channel>(ch: &mut C) -> Result<Vec<u8>> {
    let mut m = ch.recv().map_err(tr)?;
    match m.first() {
        Some(0) => Ok(m.split_off(1)),
        Some(1) => Err(bad(format!("server: {}", String::from_utf8_lossy(&m[1..])))),
        _ => Err(bad("malformed server message")),
    }
}

/// Client side: `image` gives the normalized input for the offered `[C, H, W]`; `params_of` maps the offered preset name to the client's own parameters (a
/// client never takes parameters from the server).
pub fn infer<C: Channel, R: RngCore + CryptoRng>(
    ch: &mut C,
    image: impl FnOnce([usize; 3]) -> Result<Vec<f32>>,
    params_of: impl Fn(&str) -> Result<ckks::Params>,
    expect_digest: Option<&str>,
    rng: &mut R,
) -> Result<ClientReport> {
    let hello = parse_hello(&server_msg(ch)?)?;
    if hello.version != VERSION {
        return Err(bad(format!(
            "server speaks FHE protocol {}, this client {VERSION}",
            hello.version
        )));
    }
    if let Some(d) = expect_digest {
        if !d.eq_ignore_ascii_case(&hello.digest) {
            return Err(bad(format!(
                "server model digest {} ≠ expected {d}",
                hello.digest
            )));
        }
    }
    let params = params_of(&hello.params)?;
    if params.max_slots() < hello.offer.slots || hello.offer.input_level > params.max_level() {
        return Err(bad("server offer does not fit its parameters"));
    }
    let client = Client {
        params: params.clone(),
        offer: hello.offer.clone(),
    };
    let x = image(hello.offer.input_shape)?;
    // Each key is sent as soon as it is generated and then dropped: the client holds one key
    // at a time. `keygen_ms` counts generation and encryption, not the sending.
    let before = ch.stats();
    let hdr = KeysHeader {
        galois: hello.offer.galois.len(),
        encaps: hello.offer.ephemeral_h.is_some(),
    };
    ch.send(&serde_json::to_vec(&hdr).map_err(|e| bad(e.to_string()))?)
        .map_err(tr)?;
    let mut gen = std::time::Duration::ZERO;
    let mut t = Instant::now();
    let (sk, zero) = client.keygen_each(rng, |part| {
        gen += t.elapsed();
        let msg = match &part {
            crate::session::KeyPart::Relin(k) => serialize::switching_key_to_bytes(&params, k),
            crate::session::KeyPart::Galois(g, k) => {
                let mut m = (*g as u32).to_le_bytes().to_vec();
                m.extend(serialize::switching_key_to_bytes(&params, k));
                m
            }
            crate::session::KeyPart::Encaps(e) => {
                serialize::encapsulation_keys_to_bytes(&params, e)
            }
        };
        drop(part);
        ch.send(&msg).map_err(tr)?;
        ch.flush().map_err(tr)?;
        t = Instant::now();
        Ok(())
    })?;
    let input = client.encrypt_seeded(&sk, &x, rng)?;
    let keygen_ms = (gen + t.elapsed()).as_secs_f64() * 1e3;
    ch.send(&serialize::seeded_ciphertext_to_bytes(&params, &zero))
        .map_err(tr)?;
    let eval_key_bytes = (ch.stats().bytes_sent - before.bytes_sent) as usize;
    ch.send(&(input.len() as u32).to_le_bytes()).map_err(tr)?;
    let mut c2s = 0;
    for c in &input {
        let b = serialize::seeded_ciphertext_to_bytes(&params, c);
        c2s += b.len();
        ch.send(&b).map_err(tr)?;
    }
    ch.flush().map_err(tr)?;
    let t = Instant::now();
    let head = server_msg(ch)?;
    let wait_ms = t.elapsed().as_secs_f64() * 1e3;
    let (count, _) = u32_at(&head)?;
    if count as usize != hello.offer.output.cts() {
        return Err(bad(format!(
            "{count} output ciphertexts, the layout has {}",
            hello.offer.output.cts()
        )));
    }
    let mut s2c = 0;
    let mut out = Vec::with_capacity(count as usize);
    for _ in 0..count {
        let b = ch.recv().map_err(tr)?;
        s2c += b.len();
        out.push(serialize::ciphertext_from_bytes(&params, &b)?);
    }
    let logits = client.decrypt(&sk, &out)?;
    Ok(ClientReport {
        logits,
        digest: hello.digest,
        params: hello.params,
        eval_key_bytes,
        ciphertext_bytes_c2s: c2s,
        ciphertext_bytes_s2c: s2c,
        keygen_ms,
        wait_ms,
    })
}
