//! The two parties of FHE mode over one [`Deployment`]: the client generates keys, encrypts the
//! image and decrypts the logits; the server evaluates with evaluation keys only.

use std::collections::BTreeMap;

use ckks::{
    BootstrapConfig, Bootstrapper, Ciphertext, Complex, Decryptor, EncapsulationKeys, Encryptor,
    EvaluationKeys, Evaluator, KeyGenerator, Params, ParamsLiteral, SecretKey,
};
use rand_core::{CryptoRng, RngCore};

use crate::backend::{Ckks, Sim, SimCt};
use crate::error::{FheError, Result};
use crate::exec::{run, Run};
use crate::lower::{Options, Program};

/// A model lowered for one parameter set, with the rotation keys its program uses.
pub struct Deployment {
    pub params: Params,
    pub boot: Option<Bootstrapper>,
    pub prog: Program,
    /// (Galois element, highest level) of every rotation of the program.
    pub galois: Vec<(usize, usize)>,
    /// Rotation amounts of the program (for reports).
    pub rotations: BTreeMap<usize, usize>,
}

/// The client's keys: the secret key stays with the client; the rest is sent once.
pub struct ClientKeys {
    pub sk: SecretKey,
    pub eval: EvaluationKeys,
    pub encaps: Option<EncapsulationKeys>,
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
        let params = Params::new(lit)?;
        let boot = boot.map(|c| Bootstrapper::new(&params, c)).transpose()?;
        let n = params.max_slots();
        let boot_level = boot.as_ref().map(|b| b.output_level());
        let lower = |input_level: usize| {
            Program::lower(
                model,
                &Options {
                    slots: n,
                    range,
                    boot_level,
                    input_level,
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
        let sim = Sim::new(n, boot_level.unwrap_or(0));
        let input: Vec<SimCt> = (0..prog.layouts[0].cts())
            .map(|_| SimCt::real(vec![0.0; n], prog.input_level))
            .collect();
        let dry = run(&prog, &sim, input)?;
        let mut galois: Vec<(usize, usize)> = dry
            .rotation_keys
            .iter()
            .map(|(&k, &l)| (params.galois_element(k as isize), l))
            .collect();
        if let Some(l) = dry.conjugation_level {
            galois.push((params.conjugation_element(), l));
        }
        Ok(Deployment {
            params,
            boot,
            prog,
            galois,
            rotations: dry.rotation_keys,
        })
    }

    /// Client: a secret key and exactly the evaluation keys the program and bootstrapping use.
    pub fn keygen<R: RngCore + CryptoRng>(&self, rng: &mut R) -> Result<ClientKeys> {
        let sk = SecretKey::generate(&self.params, rng);
        let kg = KeyGenerator::new(&self.params, &sk)?;
        let (mut eval, encaps) = match &self.boot {
            Some(b) => b.generate_keys(&sk, rng)?,
            None => (kg.evaluation_keys(&[], rng)?, None),
        };
        kg.extend_at(&mut eval, &self.galois, rng)?;
        Ok(ClientKeys { sk, eval, encaps })
    }

    /// Client: the image `[C, H, W]` (normalized floats) encrypted in the program's input layout.
    pub fn encrypt<R: RngCore + CryptoRng>(
        &self,
        sk: &SecretKey,
        image: &[f32],
        rng: &mut R,
    ) -> Result<Vec<Ciphertext>> {
        let [c, h, w] = self.prog.input_shape;
        if image.len() != c * h * w {
            return Err(FheError::BadInput(format!(
                "image has {} values, the model takes {c}×{h}×{w}",
                image.len()
            )));
        }
        let x: Vec<f64> = image.iter().map(|&v| v as f64 / self.prog.range).collect();
        let enc = Encryptor::with_secret_key(&self.params, sk)?;
        self.prog.layouts[0]
            .pack(&x, self.prog.n)
            .into_iter()
            .map(|v| {
                let z: Vec<Complex> = v.into_iter().map(Complex::from).collect();
                let pt = self.params.encode(
                    &z,
                    self.prog.n,
                    self.prog.input_level,
                    self.params.default_scale(),
                )?;
                Ok(enc.encrypt(&pt, rng)?)
            })
            .collect()
    }

    /// Server: evaluates the program on the client's ciphertexts.
    pub fn evaluate(
        &self,
        eval: &Evaluator,
        encaps: Option<&EncapsulationKeys>,
        input: Vec<Ciphertext>,
    ) -> Result<Run<Ciphertext>> {
        let backend = Ckks {
            params: &self.params,
            eval,
            boot: self.boot.as_ref().map(|b| (b, encaps)),
            n: self.prog.n,
        };
        run(&self.prog, &backend, input)
    }

    /// Client: the model output (logits) from the returned ciphertexts.
    pub fn decrypt(&self, sk: &SecretKey, out: &[Ciphertext]) -> Result<Vec<f64>> {
        let layout = &self.prog.layouts[self.prog.output];
        if out.len() != layout.cts() {
            return Err(FheError::BadInput(format!(
                "{} output ciphertexts, expected {}",
                out.len(),
                layout.cts()
            )));
        }
        let dec = Decryptor::new(&self.params, sk)?;
        let v: Vec<Vec<f64>> = out
            .iter()
            .map(|c| Ok(dec.decrypt(c)?.into_iter().map(|z| z.re).collect()))
            .collect::<Result<_>>()?;
        Ok(layout
            .unpack(&v)
            .into_iter()
            .map(|y| y * self.prog.range)
            .collect())
    }
}
