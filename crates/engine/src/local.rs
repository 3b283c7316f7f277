//! Steps that each party computes on its own share, with no communication: they are linear maps
//! over Z_{2^ℓ}, so applying them to both shares yields shares of the result.

use crate::plan::{Plan, Step, StepKind};

/// Row-major strides of a shape.
fn strides(shape: &[usize]) -> Vec<usize> {
    let mut s = vec![1; shape.len()];
    for a in (0..shape.len().saturating_sub(1)).rev() {
        s[a] = s[a + 1] * shape[a + 1];
    }
    s
}

/// Applies a local step to this party's shares of its inputs. `mask` reduces mod 2^ℓ.
/// The plan has been validated, so shapes and indices are consistent.
pub(crate) fn apply(plan: &Plan, step: &Step, inputs: &[&[u64]], mask: u64) -> Vec<u64> {
    let out_len: usize = step.shape.iter().product();
    let in_shape = |k: usize| &plan.steps[step.inputs[k]].shape;
    match &step.kind {
        StepKind::Add => inputs[0]
            .iter()
            .zip(inputs[1])
            .map(|(a, b)| a.wrapping_add(*b) & mask)
            .collect(),
        StepKind::Reshape => inputs[0].to_vec(),
        StepKind::Slice { starts, steps } => {
            let is = strides(in_shape(0));
            let os = strides(&step.shape);
            (0..out_len)
                .map(|o| {
                    let src: usize = (0..os.len())
                        .map(|a| (starts[a] + (o / os[a]) % step.shape[a] * steps[a]) * is[a])
                        .sum();
                    inputs[0][src]
                })
                .collect()
        }
        StepKind::Pad { before, .. } => {
            let ishape = in_shape(0);
            let is = strides(ishape);
            let os = strides(&step.shape);
            let mut out = vec![0u64; out_len];
            for (i, &v) in inputs[0].iter().enumerate() {
                let dst: usize = (0..is.len())
                    .map(|a| ((i / is[a]) % ishape[a] + before[a]) * os[a])
                    .sum();
                out[dst] = v;
            }
            out
        }
        StepKind::Concat { axis } => {
            let outer: usize = step.shape[..*axis].iter().product();
            let mut out = Vec::with_capacity(out_len);
            for o in 0..outer {
                for (k, x) in inputs.iter().enumerate() {
                    let block: usize = in_shape(k)[*axis..].iter().product();
                    out.extend_from_slice(&x[o * block..(o + 1) * block]);
                }
            }
            out
        }
        _ => unreachable!("not a local step: {}", step.op),
    }
}
