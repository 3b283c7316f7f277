//! Steps that each party computes on its own share, with no communication: they are linear maps
//! over Z_{2^ℓ}, so applying them to both shares yields shares of the result.

use crate::plan::{Plan, Step, StepKind};

/// Applies a local step to this party's shares of its inputs. `mask` reduces mod 2^ℓ.
/// The plan has been validated, so shapes and indices are consistent.
pub(crate) fn apply(plan: &Plan, step: &Step, inputs: &[&[u64]], mask: u64) -> Vec<u64> {
    match &step.kind {
        StepKind::Add => inputs[0]
            .iter()
            .zip(inputs[1])
            .map(|(a, b)| a.wrapping_add(*b) & mask)
            .collect(),
        StepKind::Reshape => inputs[0].to_vec(),
        StepKind::Slice { starts, steps } => gather(
            &nn::Op::Slice(nn::ir::Slice {
                starts: starts.clone(),
                steps: steps.clone(),
            }),
            plan,
            step,
            inputs,
        ),
        StepKind::Pad { before, after } => gather(
            &nn::Op::Pad(nn::ir::Pad {
                before: before.clone(),
                after: after.clone(),
            }),
            plan,
            step,
            inputs,
        ),
        StepKind::Concat { axis } => gather(&nn::Op::Concat { axis: *axis }, plan, step, inputs),
        StepKind::Transpose { perm } => gather(
            &nn::Op::Transpose { perm: perm.clone() },
            plan,
            step,
            inputs,
        ),
        _ => unreachable!("not a local step: {}", step.op),
    }
}

/// The transpose of a row-major `r × c` matrix.
pub(crate) fn transpose2(x: &[u64], r: usize, c: usize) -> Vec<u64> {
    let mut t = vec![0; x.len()];
    for i in 0..r {
        for j in 0..c {
            t[j * r + i] = x[i * c + j];
        }
    }
    t
}

/// Data movement by the reference executor's own index map, applied to this party's shares.
fn gather(op: &nn::Op, plan: &Plan, step: &Step, inputs: &[&[u64]]) -> Vec<u64> {
    let shapes: Vec<&[usize]> = step
        .inputs
        .iter()
        .map(|&j| plan.steps[j].shape.as_slice())
        .collect();
    nn::ir::gather_indices(op, &shapes, &step.shape)
        .into_iter()
        .map(|m| m.map_or(0, |(k, p)| inputs[k][p]))
        .collect()
}
