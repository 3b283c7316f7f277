//! Errors of FHE-mode lowering and evaluation.

use thiserror::Error;

#[derive(Debug, Error)]
pub enum FheError {
    /// The model uses an op or a shape the FHE lowering does not evaluate.
    #[error("FHE mode cannot lower node `{node}`: {reason}")]
    Unsupported { node: String, reason: String },
    /// The levels between two bootstrapping points exceed what a bootstrap leaves.
    #[error("node `{node}` needs {needed} levels after the last possible bootstrapping point, the parameters leave {available}")]
    Levels {
        node: String,
        needed: usize,
        available: usize,
    },
    /// An input of the wrong length or a ciphertext of the wrong shape.
    #[error("bad input: {0}")]
    BadInput(String),
    /// A model value outside the range the plan was made for (bootstrapping needs |x| ≤ 1
    /// after the range scaling).
    #[error("value range: {0}")]
    Range(String),
    #[error(transparent)]
    Ckks(#[from] ckks::CkksError),
    #[error(transparent)]
    Nn(#[from] nn::NnError),
}

pub type Result<T> = std::result::Result<T, FheError>;
