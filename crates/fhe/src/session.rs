//! The two parties of FHE mode. The server lowers the model ([`Deployment`]) and publishes an
//! [`Offer`]: everything the client needs to generate keys, encrypt and decrypt, and nothing
//! about the weights. The client ([`Client`]) generates exactly the keys the offer lists,
//! encrypts the image and decrypts the logits; the server evaluates with evaluation keys only.

use std::collections::BTreeMap;

use ckks::{
    BootstrapConfig, Bootstrapper, Ciphertext, Complex, Decryptor, EncapsulationKeys, Encryptor,
    EvaluationKeys, Evaluator, KeyGenerator, Params, ParamsLiteral, SecretKey, SeededCiphertext,
    SwitchingKey,
};
use rand_core::{CryptoRng, RngCore};
use serde::{Deserialize, Serialize};

use crate::backend::{Ckks, Sim, SimCt};
use crate::error::{FheError, Result};
use crate::exec::{run, Run};
use crate::layout::Layout;
use crate::lower::{ConvAlgo, Kind, Options, Program};

/// What the server tells the client (public: shapes, layouts, levels, key list).
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub struct Offer {
    pub input_shape: [usize; 3],
    pub slots: usize,
    pub range: f64,
    pub input_level: usize,
    pub input: Layout,
    pub output: Layout,
    /// (Galois element, highest level) of every key the evaluation uses, bootstrapping's
    /// included.
    pub galois: Vec<(usize, usize)>,
    /// Hamming weight of bootstrapping's ephemeral secret, when it encapsulates.
    pub ephemeral_h: Option<usize>,
    /// Level of the returned ciphertexts, at which the client also sends an encryption of
    /// zero for the server's re-randomization ([`Deployment::evaluate`]).
    pub output_level: usize,
    /// Flooding noise added to the returned ciphertexts: standard deviation `2^-b` of the range
    /// per slot (`None`: re-randomization only). docs/security.md § FHE mode.
    pub flood_bits: Option<u32>,
}

/// Default flooding of the output: `2^-12` of the range per slot (docs/security.md § FHE mode).
pub const FLOOD_BITS: u32 = 12;

/// A model lowered for one parameter set.
pub struct Deployment {
    pub params: Params,
    /// One bootstrapping circuit per slot count the program's bootstraps need (ascending):
    /// a value whose layout repeats every `n/r` slots bootstraps with `n/r` (sparse packing).
    pub boot: Vec<Bootstrapper>,
    pub prog: Program,
    /// Rotation amounts of the program (mod slots) → highest level (for reports).
    pub rotations: BTreeMap<usize, usize>,
    pub offer: Offer,
}

/// The client's keys: the secret key stays with the client; the rest is sent once.
pub struct ClientKeys {
    pub sk: SecretKey,
    pub eval: EvaluationKeys,
    pub encaps: Option<EncapsulationKeys>,
    /// An encryption of zero at the output level: the server's re-randomizer.
    pub zero: SeededCiphertext,
}

impl Deployment {
    /// Lowers `model` for `lit` (with bootstrapping when `boot` is given), every value divided
    /// by `range`; a dry run on clear slots lists the rotations.
    pub fn new(
        model: &nn::Model,
        lit: ParamsLiteral,
        boot: Option<BootstrapConfig>,
        range: f64,
    ) -> Result<Self> {
        Self::with_conv(model, lit, boot, range, ConvAlgo::default())
    }

    /// As [`Deployment::new`] with the convolution algorithm chosen.
    pub fn with_conv(
        model: &nn::Model,
        lit: ParamsLiteral,
        boot: Option<BootstrapConfig>,
        range: f64,
        conv: ConvAlgo,
    ) -> Result<Self> {
        Self::with_options(model, lit, boot, range, conv, &crate::lower::RELU_DEGREES)
    }

    /// As [`Deployment::with_conv`] with the odd stage degrees of the composite sign behind
    /// ReLU (a server-side choice: the client sees only the levels and keys it implies).
    pub fn with_options(
        model: &nn::Model,
        lit: ParamsLiteral,
        boot: Option<BootstrapConfig>,
        range: f64,
        conv: ConvAlgo,
        relu_degrees: &[usize],
    ) -> Result<Self> {
        let params = Params::new(lit)?;
        let ephemeral_h = boot.as_ref().and_then(|c| c.ephemeral_h);
        let n = params.max_slots();
        // Checked here, before any circuit is encoded.
        let boot_level = boot.as_ref().map(|c| c.output_level(&params)).transpose()?;
        let lower = |input_level: usize| {
            Program::lower(
                model,
                &Options {
                    slots: n,
                    range,
                    boot_level,
                    input_level,
                    relu_degrees: relu_degrees.to_vec(),
                    conv,
                },
            )
        };
        // The client may encrypt above the bootstrapping output level, on the primes that
        // SlotsToCoeffs uses (up to three levels here): the fewest bootstraps, then the lowest
        // level (smaller upload and rotation keys).
        let prog = match boot_level {
            None => lower(params.max_level())?,
            Some(bl) => {
                let mut best = lower(bl)?;
                for l in bl + 1..=(bl + 3).min(params.max_level()) {
                    if let Ok(p) = lower(l) {
                        if p.bootstraps() < best.bootstraps() {
                            best = p;
                        }
                    }
                }
                best
            }
        };
        // The circuits: a bootstrapped value of period p can use any circuit whose slot count
        // p divides. One sparse circuit, at the largest period below the full count, serves
        // every sparse value (a smaller one saves little: at N = 2^16, 2^12 slots bootstrap in
        // the time 2^14 do, its trace costing what its shorter transforms save), plus the full
        // circuit when a value fills the slots (layout I).
        let mut boot_slots: std::collections::BTreeSet<usize> = Default::default();
        if let Some(cfg) = &boot {
            let mut sparse = None;
            for s in prog
                .steps
                .iter()
                .filter(|s| matches!(s.kind, Kind::Bootstrap))
            {
                let mut p = prog.layouts[s.inputs[0]].period(n);
                while p < cfg.slots && cfg.with_slots(p).is_none() {
                    p *= 2;
                }
                if p >= cfg.slots {
                    boot_slots.insert(cfg.slots);
                } else {
                    sparse = sparse.max(Some(p));
                }
            }
            boot_slots.extend(sparse);
        }
        let boot: Vec<Bootstrapper> = match &boot {
            Some(cfg) => boot_slots
                .iter()
                .map(|&p| {
                    let c = cfg.with_slots(p).unwrap_or_else(|| cfg.clone());
                    Bootstrapper::new(&params, c).map_err(Into::into)
                })
                .collect::<Result<_>>()?,
            None => vec![],
        };
        let sim = Sim::new(n, boot_level.unwrap_or(0));
        let input: Vec<SimCt> = (0..prog.layouts[0].cts())
            .map(|_| SimCt::real(vec![0.0; n], prog.input_level))
            .collect();
        let dry = run(&prog, &sim, input)?;
        let mut galois: BTreeMap<usize, usize> = BTreeMap::new();
        let mut need = |g: usize, l: usize| {
            let e = galois.entry(g).or_insert(l);
            *e = (*e).max(l);
        };
        for (&k, &l) in &dry.rotation_keys {
            need(params.galois_element(k as isize), l);
        }
        if let Some(l) = dry.conjugation_level {
            need(params.conjugation_element(), l);
        }
        for b in &boot {
            for (g, l) in b.galois_elements_at() {
                need(g, l);
            }
        }
        let offer = Offer {
            input_shape: prog.input_shape,
            slots: n,
            range,
            input_level: prog.input_level,
            input: prog.layouts[0].clone(),
            output: prog.layouts[prog.output].clone(),
            galois: galois.into_iter().collect(),
            ephemeral_h: if boot.is_empty() { None } else { ephemeral_h },
            output_level: dry.output.iter().map(|c| c.level).min().unwrap_or(0),
            flood_bits: Some(FLOOD_BITS),
        };
        Ok(Deployment {
            params,
            boot,
            prog,
            rotations: dry.rotation_keys,
            offer,
        })
    }

    /// The same deployment with the output flooded at `2^-bits` of the range per slot (`None`:
    /// re-randomization only).
    pub fn with_flooding(mut self, bits: Option<u32>) -> Result<Self> {
        if bits.is_some_and(|b| !(1..=40).contains(&b)) {
            return Err(FheError::BadInput(format!(
                "flooding of 2^-{} per slot: choose 1 to 40 bits",
                bits.unwrap_or(0)
            )));
        }
        self.offer.flood_bits = bits;
        Ok(self)
    }

    /// The client side of this deployment (same process).
    pub fn client(&self) -> Client {
        Client {
            params: self.params.clone(),
            offer: self.offer.clone(),
        }
    }

    pub fn keygen<R: RngCore + CryptoRng>(&self, rng: &mut R) -> Result<ClientKeys> {
        self.client().keygen(rng)
    }
    pub fn encrypt<R: RngCore + CryptoRng>(
        &self,
        sk: &SecretKey,
        image: &[f32],
        rng: &mut R,
    ) -> Result<Vec<Ciphertext>> {
        self.client().encrypt(sk, image, rng)
    }
    pub fn encrypt_seeded<R: RngCore + CryptoRng>(
        &self,
        sk: &SecretKey,
        image: &[f32],
        rng: &mut R,
    ) -> Result<Vec<SeededCiphertext>> {
        self.client().encrypt_seeded(sk, image, rng)
    }
    pub fn decrypt(&self, sk: &SecretKey, out: &[Ciphertext]) -> Result<Vec<f64>> {
        self.client().decrypt(sk, out)
    }

    /// Server: checks that `keys` hold every key of the offer, each up to its level.
    pub fn check_keys(
        &self,
        keys: &EvaluationKeys,
        encaps: Option<&EncapsulationKeys>,
    ) -> Result<()> {
        if keys.relin_key().is_none() {
            return Err(FheError::BadInput("no relinearization key".into()));
        }
        for &(g, l) in &self.offer.galois {
            match keys.galois_key(g) {
                Some(k) if k.max_level() >= l => {}
                Some(k) => {
                    return Err(FheError::BadInput(format!(
                        "Galois key {g} reaches level {}, the evaluation uses it at level {l}",
                        k.max_level()
                    )))
                }
                None => return Err(FheError::BadInput(format!("missing Galois key {g}"))),
            }
        }
        if self.offer.ephemeral_h.is_some() && encaps.is_none() {
            return Err(FheError::BadInput(
                "missing the bootstrapping encapsulation keys".into(),
            ));
        }
        Ok(())
    }

    /// Server: checks the client's ciphertexts against the offer.
    pub fn check_input(&self, input: &[Ciphertext]) -> Result<()> {
        if input.len() != self.offer.input.cts() {
            return Err(FheError::BadInput(format!(
                "{} input ciphertexts, the layout has {}",
                input.len(),
                self.offer.input.cts()
            )));
        }
        for c in input {
            if c.level() != self.offer.input_level
                || c.slots() != self.offer.slots
                || c.degree() != 1
            {
                return Err(FheError::BadInput(format!(
                    "input ciphertext at level {} with {} slots, expected level {} with {}",
                    c.level(),
                    c.slots(),
                    self.offer.input_level,
                    self.offer.slots
                )));
            }
            if !ckks::scale_eq(c.scale(), self.params.default_scale()) {
                return Err(FheError::BadInput(format!(
                    "input ciphertext at scale {}",
                    c.scale()
                )));
            }
        }
        Ok(())
    }

    /// Server: checks the client's encryption of zero against the offer.
    pub fn check_zero(&self, zero: &Ciphertext) -> Result<()> {
        if zero.level() != self.offer.output_level
            || zero.slots() != self.offer.slots
            || zero.degree() != 1
        {
            return Err(FheError::BadInput(format!(
                "encryption of zero at level {} with {} slots, expected level {} with {}",
                zero.level(),
                zero.slots(),
                self.offer.output_level,
                self.offer.slots
            )));
        }
        Ok(())
    }

    /// Server: evaluates the program on the client's ciphertexts, then re-randomizes each
    /// returned ciphertext with the client's encryption of zero and floods it
    /// ([`Evaluator::rerandomize`]; σ = `2^-b·Δ/√N` per coefficient gives a per-slot deviation
    /// of `2^-b` of the range). The run's output is what the client receives.
    pub fn evaluate<R: RngCore + CryptoRng>(
        &self,
        eval: &Evaluator,
        encaps: Option<&EncapsulationKeys>,
        zero: &Ciphertext,
        input: Vec<Ciphertext>,
        rng: &mut R,
    ) -> Result<Run<Ciphertext>> {
        Ok(self.evaluate_sweep(eval, encaps, zero, input, &[], rng)?.0)
    }

    /// [`Deployment::evaluate`], and besides the run's output (flooded as the offer says) the
    /// same evaluation sanitized once more for each flooding in `sweep` (`None`:
    /// re-randomization only), each from fresh randomness: what the client would receive at
    /// that flooding. For measuring the flooding's cost in agreement on one evaluation per
    /// image (`privinfer eval --fhe-flood-sweep`); no unsanitized ciphertext leaves.
    pub fn evaluate_sweep<R: RngCore + CryptoRng>(
        &self,
        eval: &Evaluator,
        encaps: Option<&EncapsulationKeys>,
        zero: &Ciphertext,
        input: Vec<Ciphertext>,
        sweep: &[Option<u32>],
        rng: &mut R,
    ) -> Result<(Run<Ciphertext>, Vec<Vec<Ciphertext>>)> {
        self.check_input(&input)?;
        self.check_zero(zero)?;
        if let Some(b) = sweep.iter().flatten().find(|b| !(1..=40).contains(*b)) {
            return Err(FheError::BadInput(format!(
                "flooding of 2^-{b} per slot: choose 1 to 40 bits"
            )));
        }
        let backend = Ckks {
            params: &self.params,
            eval,
            boot: (!self.boot.is_empty()).then_some((self.boot.as_slice(), encaps)),
            n: self.prog.n,
        };
        let mut r = run(&self.prog, &backend, input)?;
        let sqrt_n = (self.params.n() as f64).sqrt();
        let sanitize = |bits: Option<u32>, rng: &mut R| -> Result<Vec<Ciphertext>> {
            r.output
                .iter()
                .map(|c| {
                    let sigma = bits.map_or(0.0, |b| c.scale() / sqrt_n * 2f64.powi(-(b as i32)));
                    Ok(eval.rerandomize(c, zero, sigma, rng)?)
                })
                .collect()
        };
        let swept = sweep
            .iter()
            .map(|&b| sanitize(b, rng))
            .collect::<Result<Vec<_>>>()?;
        r.output = sanitize(self.offer.flood_bits, rng)?;
        Ok((r, swept))
    }
}

/// The client of an [`Offer`].
pub struct Client {
    pub params: Params,
    pub offer: Offer,
}

/// One evaluation key of an offer, in the order a client generates and sends them.
pub enum KeyPart {
    Relin(SwitchingKey),
    /// A Galois element's key, generated up to the level the offer lists for it.
    Galois(usize, SwitchingKey),
    Encaps(EncapsulationKeys),
}

impl Client {
    /// A secret key and exactly the evaluation keys the offer lists.
    pub fn keygen<R: RngCore + CryptoRng>(&self, rng: &mut R) -> Result<ClientKeys> {
        let (mut relin, mut galois, mut encaps) = (None, BTreeMap::new(), None);
        let (sk, zero) = self.keygen_each(rng, |part| {
            match part {
                KeyPart::Relin(k) => relin = Some(k),
                KeyPart::Galois(g, k) => {
                    galois.insert(g, k);
                }
                KeyPart::Encaps(e) => encaps = Some(e),
            }
            Ok(())
        })?;
        Ok(ClientKeys {
            sk,
            eval: EvaluationKeys::from_parts(&self.params, relin, galois),
            encaps,
            zero,
        })
    }

    /// A secret key and the offer's evaluation keys generated one at a time, each handed to
    /// `take` (relinearization, the Galois keys in the offer's order, the encapsulation keys),
    /// then the re-randomizer's encryption of zero: a client that sends each key as it comes
    /// holds one key at a time instead of all of them (gigabytes at `N = 2^16`).
    pub fn keygen_each<R: RngCore + CryptoRng>(
        &self,
        rng: &mut R,
        mut take: impl FnMut(KeyPart) -> Result<()>,
    ) -> Result<(SecretKey, SeededCiphertext)> {
        let sk = SecretKey::generate(&self.params, rng);
        let kg = KeyGenerator::new(&self.params, &sk)?;
        take(KeyPart::Relin(kg.relin_key(rng)))?;
        for &(g, level) in &self.offer.galois {
            take(KeyPart::Galois(g, kg.galois_key_at(g, level, rng)?))?;
        }
        if let Some(h) = self.offer.ephemeral_h {
            take(KeyPart::Encaps(EncapsulationKeys::generate(
                &self.params,
                &sk,
                h,
                rng,
            )?))?;
        }
        let zeros = vec![Complex::from(0.0); self.offer.slots];
        let pt = self.params.encode(
            &zeros,
            self.offer.slots,
            self.offer.output_level,
            self.params.default_scale(),
        )?;
        let zero = Encryptor::with_secret_key(&self.params, &sk)?.encrypt_seeded(&pt, rng)?;
        Ok((sk, zero))
    }

    /// The image `[C, H, W]` (normalized floats) encrypted in the offer's input layout.
    pub fn encrypt<R: RngCore + CryptoRng>(
        &self,
        sk: &SecretKey,
        image: &[f32],
        rng: &mut R,
    ) -> Result<Vec<Ciphertext>> {
        Ok(self
            .encrypt_seeded(sk, image, rng)?
            .into_iter()
            .map(SeededCiphertext::into_ciphertext)
            .collect())
    }

    /// [`Client::encrypt`] with each `c1` expanded from a seed: what the client uploads
    /// (`ckks::serialize::seeded_ciphertext_to_bytes`, half a ciphertext's bytes).
    pub fn encrypt_seeded<R: RngCore + CryptoRng>(
        &self,
        sk: &SecretKey,
        image: &[f32],
        rng: &mut R,
    ) -> Result<Vec<SeededCiphertext>> {
        let [c, h, w] = self.offer.input_shape;
        if image.len() != c * h * w {
            return Err(FheError::BadInput(format!(
                "image has {} values, the model takes {c}×{h}×{w}",
                image.len()
            )));
        }
        let x: Vec<f64> = image.iter().map(|&v| v as f64 / self.offer.range).collect();
        let enc = Encryptor::with_secret_key(&self.params, sk)?;
        self.offer
            .input
            .pack(&x, self.offer.slots)
            .into_iter()
            .map(|v| {
                let z: Vec<Complex> = v.into_iter().map(Complex::from).collect();
                let pt = self.params.encode(
                    &z,
                    self.offer.slots,
                    self.offer.input_level,
                    self.params.default_scale(),
                )?;
                Ok(enc.encrypt_seeded(&pt, rng)?)
            })
            .collect()
    }

    /// The model output (logits) from the returned ciphertexts.
    pub fn decrypt(&self, sk: &SecretKey, out: &[Ciphertext]) -> Result<Vec<f64>> {
        Ok(self.logits(&self.decrypt_slots(sk, out)?))
    }

    /// Every slot of the returned ciphertexts (real parts, in held units: value / range).
    pub fn decrypt_slots(&self, sk: &SecretKey, out: &[Ciphertext]) -> Result<Vec<Vec<f64>>> {
        let layout = &self.offer.output;
        if out.len() != layout.cts() {
            return Err(FheError::BadInput(format!(
                "{} output ciphertexts, expected {}",
                out.len(),
                layout.cts()
            )));
        }
        let dec = Decryptor::new(&self.params, sk)?;
        out.iter()
            .map(|c| Ok(dec.decrypt(c)?.into_iter().map(|z| z.re).collect()))
            .collect()
    }

    /// The logits from [`Client::decrypt_slots`]'s slots.
    pub fn logits(&self, slots: &[Vec<f64>]) -> Vec<f64> {
        self.offer
            .output
            .unpack(slots)
            .into_iter()
            .map(|y| y * self.offer.range)
            .collect()
    }

    /// Root mean square of the slots the output layout leaves empty (held units), from
    /// [`Client::decrypt_slots`]'s slots: what the client sees beyond the logits, the residue
    /// of the masked values, the evaluation's noise and the flooding.
    pub fn empty_slot_rms(&self, slots: &[Vec<f64>]) -> f64 {
        let (mut sum, mut count) = (0.0, 0usize);
        for (t, vt) in slots.iter().enumerate() {
            for (q, x) in vt.iter().enumerate() {
                if self.offer.output.at(t, q).is_none() {
                    sum += x * x;
                    count += 1;
                }
            }
        }
        (sum / count.max(1) as f64).sqrt()
    }
}
