//! The float32 executor (checked against onnxruntime, see python/tests).

use crate::error::{NnError, Result};
use crate::ir::{broadcast_index_map, gather_map, numel, Model, NodeId, Op, Tensor};
use crate::kernels;

/// Runs the model on one input (flat, in the layout of [`Model::input_shape`]) and returns the
/// output tensor.
pub fn run(model: &Model, input: &[f32]) -> Result<Tensor<f32>> {
    let mut values = run_trace(model, input)?;
    let out = std::mem::take(&mut values[model.output]);
    Ok(Tensor::new(model.output_shape().to_vec(), out))
}

/// Runs the model and returns the value of every node (index = [`NodeId`]).
pub fn run_trace(model: &Model, input: &[f32]) -> Result<Vec<Vec<f32>>> {
    let expected = numel(model.input_shape());
    if input.len() != expected {
        return Err(NnError::InputLength {
            expected,
            got: input.len(),
            shape: model.input_shape().to_vec(),
        });
    }
    let mut values: Vec<Vec<f32>> = Vec::with_capacity(model.nodes.len());
    for id in 0..model.nodes.len() {
        let v = if id == 0 {
            input.to_vec()
        } else {
            let ins: Vec<&[f32]> = model.nodes[id]
                .inputs
                .iter()
                .map(|&i| values[i].as_slice())
                .collect();
            eval_node(model, id, &ins)?
        };
        values.push(v);
    }
    Ok(values)
}

/// Evaluates node `id` of `model` on the values of its inputs (in [`crate::ir::Node::inputs`]
/// order).
pub fn eval_node(model: &Model, id: NodeId, inputs: &[&[f32]]) -> Result<Vec<f32>> {
    let node = &model.nodes[id];
    if inputs.len() != node.inputs.len() {
        return Err(NnError::Arity {
            node: id,
            expected: node.inputs.len(),
            got: inputs.len(),
        });
    }
    for (k, (&i, x)) in node.inputs.iter().zip(inputs).enumerate() {
        let want = numel(&model.nodes[i].shape);
        if x.len() != want {
            return Err(NnError::InputLength {
                expected: want,
                got: x.len(),
                shape: model.nodes[node.inputs[k]].shape.clone(),
            });
        }
    }
    let x = inputs.first().copied().unwrap_or(&[]);
    let out = match &node.op {
        Op::Input => x.to_vec(),
        Op::Constant(t) => t.data.clone(),
        Op::Conv(c) => kernels::conv2d(c, &c.weight, &c.bias, x),
        Op::Linear(l) => {
            kernels::linear(l.rows, l.in_features, l.out_features, &l.weight, &l.bias, x)
        }
        Op::BatchNorm(a) => {
            let c = a.scale.len();
            let inner = x.len() / c;
            x.iter()
                .enumerate()
                .map(|(i, &v)| {
                    let ch = (i / inner) % c;
                    v * a.scale[ch] + a.shift[ch]
                })
                .collect()
        }
        Op::Relu => x.iter().map(|&v| v.max(0.0)).collect(),
        Op::Relu6 => x.iter().map(|&v| v.clamp(0.0, 6.0)).collect(),
        Op::MaxPool(p) | Op::AvgPool(p) => {
            let is = &model.nodes[node.inputs[0]].shape;
            let os = &node.shape;
            let wins = kernels::pool_windows(p, is[1], is[2], is[3], os[2], os[3]);
            let max = matches!(node.op, Op::MaxPool(_));
            wins.iter()
                .map(|(idx, size)| {
                    if max {
                        idx.iter().map(|&i| x[i]).fold(f32::NEG_INFINITY, f32::max)
                    } else {
                        let s: f32 = idx.iter().map(|&i| x[i]).sum();
                        let k = if p.count_include_pad {
                            *size
                        } else {
                            idx.len()
                        };
                        s / k as f32
                    }
                })
                .collect()
        }
        Op::GlobalAvgPool => {
            let c = node.shape[1];
            let hw = x.len() / c;
            x.chunks_exact(hw)
                .map(|ch| (ch.iter().map(|&v| v as f64).sum::<f64>() / hw as f64) as f32)
                .collect()
        }
        Op::Add | Op::Mul => {
            let ma = broadcast_index_map(&model.nodes[node.inputs[0]].shape, &node.shape);
            let mb = broadcast_index_map(&model.nodes[node.inputs[1]].shape, &node.shape);
            let (a, b) = (inputs[0], inputs[1]);
            let add = matches!(node.op, Op::Add);
            ma.iter()
                .zip(&mb)
                .map(|(&i, &j)| if add { a[i] + b[j] } else { a[i] * b[j] })
                .collect()
        }
        Op::Slice(_) | Op::Pad(_) | Op::Concat { .. } | Op::Transpose { .. } => {
            gather_map(model, id)
                .iter()
                .map(|m| m.map_or(0.0, |(k, p)| inputs[k][p]))
                .collect()
        }
        Op::Reshape => x.to_vec(),
        Op::MatMul => {
            let s = &node.shape;
            let r = s.len();
            let k = model.nodes[node.inputs[0]].shape[r - 1];
            let batch = numel(&s[..r - 2]);
            kernels::matmul(batch, s[r - 2], k, s[r - 1], inputs[0], inputs[1])
        }
        Op::LayerNorm(l) => {
            let d = l.gamma.len();
            let mut y = Vec::with_capacity(x.len());
            for row in x.chunks_exact(d) {
                let mean = row.iter().map(|&v| v as f64).sum::<f64>() / d as f64;
                let var = row.iter().map(|&v| (v as f64 - mean).powi(2)).sum::<f64>() / d as f64;
                let inv = 1.0 / (var + l.epsilon as f64).sqrt();
                for (i, &v) in row.iter().enumerate() {
                    y.push(((v as f64 - mean) * inv * l.gamma[i] as f64 + l.beta[i] as f64) as f32);
                }
            }
            y
        }
        Op::Softmax => {
            let d = *node.shape.last().expect("rank >= 1");
            let mut y = Vec::with_capacity(x.len());
            for row in x.chunks_exact(d) {
                let m = row.iter().copied().fold(f32::NEG_INFINITY, f32::max);
                let e: Vec<f64> = row.iter().map(|&v| ((v - m) as f64).exp()).collect();
                let s: f64 = e.iter().sum();
                y.extend(e.iter().map(|&v| (v / s) as f32));
            }
            y
        }
        Op::Gelu => x
            .iter()
            .map(|&v| {
                let v = v as f64;
                (0.5 * v * (1.0 + erf(v * std::f64::consts::FRAC_1_SQRT_2))) as f32
            })
            .collect(),
    };
    Ok(out)
}

/// The error function, to about 1e-15 relative: Maclaurin series for |x| < 2.5, and a
/// continued fraction for erfc beyond [Abramowitz & Stegun 7.1.5 and 7.1.14].
pub fn erf(x: f64) -> f64 {
    let a = x.abs();
    let r = if a < 2.5 {
        // erf(x) = 2/√π Σ_n (−1)^n x^{2n+1} / (n! (2n+1))
        let x2 = a * a;
        let mut term = a;
        let mut sum = a;
        let mut n = 0.0;
        while term.abs() > 1e-17 * sum.abs() {
            n += 1.0;
            term *= -x2 / n;
            sum += term / (2.0 * n + 1.0);
        }
        sum * std::f64::consts::FRAC_2_SQRT_PI
    } else {
        // erfc(a) = e^{−a²}/√π · 1/(a + (1/2)/(a + 1/(a + (3/2)/(a + 2/(a + ...))))),
        // evaluated bottom-up with 60 terms (ample for a ≥ 2.5).
        let mut f = a;
        for k in (1..60).rev() {
            f = a + (k as f64 / 2.0) / f;
        }
        1.0 - (-a * a).exp() / (std::f64::consts::PI.sqrt() * f)
    };
    if x < 0.0 {
        -r
    } else {
        r
    }
}

#[cfg(test)]
mod tests {
    use super::erf;

    #[test]
    fn erf_matches_known_values() {
        // Reference values of erf from tables (A&S Table 7.1 and standard high-precision values).
        let cases = [
            (0.0, 0.0),
            (0.5, 0.520_499_877_813_046_5),
            (1.0, 0.842_700_792_949_714_9),
            (2.0, 0.995_322_265_018_952_7),
            (3.0, 0.999_977_909_503_001_4),
            (-1.5, -0.966_105_146_475_310_7),
        ];
        for (x, e) in cases {
            assert!((erf(x) - e).abs() < 1e-13, "erf({x}) = {} vs {e}", erf(x));
        }
    }
}
