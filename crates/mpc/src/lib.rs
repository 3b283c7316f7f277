//! Fixed point on additive secret shares and the two-party non-linear protocols.
//!
//! Values are two's-complement integers in Z_{2^ℓ} (see [`Ring`]), additively shared between two
//! semi-honest parties [`Party::P0`] and [`Party::P1`]. Every protocol is a method of
//! [`Session`], which owns both directions of random correlated OT (COT) from the `ot` crate and
//! runs one party's side over any [`transport::Channel`]. The two parties call the same method
//! with their own shares in the same order.
//!
//! Protocols are built from random COTs plus short derandomization messages (docs/protocols/
//! nonlinear.md gives each message flow and its exact cost in bits):
//! - [`Session::millionaire`]: CrypTFlow2's comparison tree with 1-of-4 OT leaves and AND gates
//!   from COTs;
//! - [`Session::drelu`], [`Session::relu`], [`Session::relu6`], [`Session::relu_approx`];
//! - [`Session::trunc`] (exact floor of signed values), [`Session::trunc_known_sign`] (exact,
//!   under the range assumption |x| < 2^{ℓ−2});
//! - [`Session::mux`], [`Session::b2a`], [`Session::mul`];
//! - [`Session::maxpool`], [`Session::argmax`], [`Session::open_to`];
//! - [`Session::field_to_ring`], [`Session::ring_to_field`].
//!
//! [`plain`] holds the plaintext functions every protocol is tested against.
//!
//! ```
//! use privinfer_mpc::{plain, reconstruct, share, Party, Ring, Session, SessionConfig, Shares};
//! use rand_chacha::{rand_core::SeedableRng, ChaCha20Rng};
//! use transport::MemoryChannel;
//!
//! let ring = Ring::new(37)?;
//! let x: Vec<u64> = [-3i64, 0, 5 << 12, 7].iter().map(|&v| ring.from_signed(v)).collect();
//! let (x0, x1) = share(ring, &x, &mut ChaCha20Rng::seed_from_u64(1));
//! let (mut c0, mut c1) = MemoryChannel::pair();
//! // Small refills keep this example light; real sessions use the default.
//! let cfg = SessionConfig { refill: 1 << 12, ..SessionConfig::default() };
//! let client = std::thread::spawn(move || -> privinfer_mpc::Result<Vec<u64>> {
//!     let mut s = Session::setup_with(&mut c1, Party::P1, &mut ChaCha20Rng::from_entropy(), cfg)?;
//!     Ok(s.trunc_relu(&mut c1, &Shares::new(ring, 24, x1)?, 12)?.data)
//! });
//! let mut s = Session::setup_with(&mut c0, Party::P0, &mut ChaCha20Rng::from_entropy(), cfg)?;
//! let y0 = s.trunc_relu(&mut c0, &Shares::new(ring, 24, x0)?, 12)?.data;
//! let y1 = client.join().unwrap()?;
//! let y = reconstruct(ring, &y0, &y1)?;
//! for (i, &v) in x.iter().enumerate() {
//!     assert_eq!(y[i], plain::relu(ring, plain::trunc(ring, v, 12)));
//! }
//! # Ok::<(), privinfer_mpc::MpcError>(())
//! ```

mod approx;
mod bits;
pub mod cost;
mod cots;
mod error;
mod field;
mod hash;
mod millionaire;
mod nonlinear;
mod open;
pub mod plain;
mod pool;
mod product;
mod ring;
mod session;
mod trunc;

pub use approx::{BoxError, GeluSpec, LayerNormSpec, NormLinear, SoftmaxSpec};
pub use error::{MpcError, Result};
pub use field::FieldModulus;
pub use pool::{PoolShape, PoolSpec};
pub use product::{product_cost, Columns, ProductCost, CHUNK_BITS};
pub use ring::{reconstruct, share, Ring, Shares};
pub use session::{OtUsage, Party, Session, SessionConfig, DEFAULT_REFILL};
pub use trunc::TruncForm;
