//! AdamW with decoupled weight decay (the maths of `torch.optim.AdamW`), learning-rate
//! schedules with linear warmup (those of Hugging Face `transformers`), and global-norm gradient
//! clipping. Unlike candle-nn's optimizer, the state is public so it can be checkpointed.

use std::collections::HashMap;

use candle_core::{Tensor, Var};

use crate::config::Schedule;
use crate::error::{Result, TrainError};

/// AdamW hyper-parameters.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct AdamWParams {
    pub beta1: f64,
    pub beta2: f64,
    pub eps: f64,
    pub weight_decay: f64,
}

/// AdamW state: first and second moments per parameter, and the number of steps taken.
#[derive(Debug, Clone)]
pub struct AdamW {
    pub params: AdamWParams,
    /// Optimizer steps taken so far.
    pub step: usize,
    /// `exp_avg` per parameter, same shape and dtype as the parameter.
    pub m: Vec<Tensor>,
    /// `exp_avg_sq` per parameter.
    pub v: Vec<Tensor>,
}

impl AdamW {
    /// Zero state for `vars`.
    pub fn new(vars: &[&Var], params: AdamWParams) -> Result<Self> {
        let m = vars
            .iter()
            .map(|v| v.zeros_like())
            .collect::<candle_core::Result<Vec<_>>>()?;
        let v = m.clone();
        Ok(Self {
            params,
            step: 0,
            m,
            v,
        })
    }

    /// One update with learning rate `lr`, `grads[i]` belonging to `vars[i]`:
    /// `p ← p·(1 − lr·wd)`, then `p ← p − lr/(1−β1ᵗ) · m / (sqrt(v)/sqrt(1−β2ᵗ) + eps)`.
    pub fn step(&mut self, vars: &[&Var], grads: &[Tensor], lr: f64) -> Result<()> {
        let AdamWParams {
            beta1,
            beta2,
            eps,
            weight_decay,
        } = self.params;
        self.step += 1;
        let t = self.step as i32;
        let bc1 = 1.0 - beta1.powi(t);
        let bc2_sqrt = (1.0 - beta2.powi(t)).sqrt();
        for (i, (var, g)) in vars.iter().zip(grads).enumerate() {
            let m = ((&self.m[i] * beta1)? + (g * (1.0 - beta1))?)?;
            let v = ((&self.v[i] * beta2)? + (g.sqr()? * (1.0 - beta2))?)?;
            let p = var.as_tensor();
            let p = if weight_decay != 0.0 {
                (p * (1.0 - lr * weight_decay))?
            } else {
                p.clone()
            };
            let denom = ((v.sqrt()? / bc2_sqrt)? + eps)?;
            let update = (m.div(&denom)? * (lr / bc1))?;
            var.set(&(p - update)?)?;
            self.m[i] = m;
            self.v[i] = v;
        }
        Ok(())
    }

    /// The moments by name (`{name}.exp_avg`, `{name}.exp_avg_sq`) for a safetensors file.
    pub fn state_tensors(&self, names: &[String]) -> HashMap<String, Tensor> {
        let mut out = HashMap::new();
        for (i, n) in names.iter().enumerate() {
            out.insert(format!("{n}.exp_avg"), self.m[i].clone());
            out.insert(format!("{n}.exp_avg_sq"), self.v[i].clone());
        }
        out
    }

    /// Restore moments saved by [`AdamW::state_tensors`]; `origin` names the file for errors.
    pub fn load_state(
        &mut self,
        names: &[String],
        tensors: &HashMap<String, Tensor>,
        step: usize,
        origin: &std::path::Path,
    ) -> Result<()> {
        for (i, n) in names.iter().enumerate() {
            for (suffix, slot) in [("exp_avg", &mut self.m[i]), ("exp_avg_sq", &mut self.v[i])] {
                let key = format!("{n}.{suffix}");
                let t = tensors.get(&key).ok_or_else(|| {
                    TrainError::checkpoint(origin, format!("missing optimizer tensor {key}"))
                })?;
                if t.shape() != slot.shape() {
                    return Err(TrainError::checkpoint(
                        origin,
                        format!(
                            "optimizer tensor {key} has shape {:?}, expected {:?}",
                            t.dims(),
                            slot.dims()
                        ),
                    ));
                }
                *slot = t.to_dtype(slot.dtype())?;
            }
        }
        self.step = step;
        Ok(())
    }
}

/// Learning rate of optimizer step `step` (0-based) out of `total`, as Hugging Face's
/// `get_{cosine,linear,constant}_schedule_with_warmup` compute it (step 0 of a warmup has lr 0).
pub fn learning_rate(
    schedule: Schedule,
    peak: f64,
    warmup: usize,
    total: usize,
    step: usize,
) -> f64 {
    if step < warmup {
        return peak * step as f64 / warmup.max(1) as f64;
    }
    let progress = (step - warmup) as f64 / (total.saturating_sub(warmup)).max(1) as f64;
    let factor = match schedule {
        Schedule::Constant => 1.0,
        Schedule::Linear => (1.0 - progress).max(0.0),
        Schedule::Cosine => (0.5 * (1.0 + (std::f64::consts::PI * progress).cos())).max(0.0),
    };
    peak * factor
}

/// Global L2 norm of `grads`.
pub fn global_norm(grads: &[Tensor]) -> Result<f64> {
    let mut sum = 0f64;
    for g in grads {
        sum += g
            .sqr()?
            .sum_all()?
            .to_dtype(candle_core::DType::F64)?
            .to_scalar::<f64>()?;
    }
    Ok(sum.sqrt())
}

/// Scale `grads` so their global norm is at most `max_norm` (torch's `clip_grad_norm_`,
/// coefficient `max_norm / (norm + 1e-6)`); `max_norm = 0` disables clipping.
pub fn clip(grads: &mut [Tensor], norm: f64, max_norm: f64) -> Result<()> {
    if max_norm > 0.0 {
        let coef = max_norm / (norm + 1e-6);
        if coef < 1.0 {
            for g in grads.iter_mut() {
                *g = (&*g * coef)?;
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use candle_core::{DType, Device};

    #[test]
    fn schedules_match_transformers() {
        // get_cosine_schedule_with_warmup(num_warmup_steps=2, num_training_steps=10)
        let lr = |s| learning_rate(Schedule::Cosine, 1.0, 2, 10, s);
        assert_eq!(lr(0), 0.0);
        assert_eq!(lr(1), 0.5);
        assert_eq!(lr(2), 1.0);
        assert!((lr(6) - 0.5).abs() < 1e-12);
        assert!(lr(10).abs() < 1e-12);
        assert!((learning_rate(Schedule::Linear, 1.0, 0, 4, 1) - 0.75).abs() < 1e-12);
        assert_eq!(learning_rate(Schedule::Constant, 3.0, 0, 4, 3), 3.0);
    }

    #[test]
    fn adamw_matches_hand_computed_step() -> Result<()> {
        let dev = Device::Cpu;
        let var = Var::from_tensor(&Tensor::new(&[1.0f32, -2.0], &dev)?)?;
        let p = AdamWParams {
            beta1: 0.9,
            beta2: 0.999,
            eps: 1e-8,
            weight_decay: 0.1,
        };
        let mut opt = AdamW::new(&[&var], p)?;
        let g = Tensor::new(&[0.5f32, 0.25], &dev)?;
        opt.step(&[&var], &[g], 0.01)?;
        // Step 1: m̂ = g, v̂ = g², so the update is lr·sign(g) (up to eps), after decay.
        let got = var.as_tensor().to_vec1::<f32>()?;
        let want = [1.0 * (1.0 - 0.001) - 0.01, -2.0 * (1.0 - 0.001) - 0.01];
        for (a, b) in got.iter().zip(want) {
            assert!((*a as f64 - b).abs() < 1e-6, "{got:?} vs {want:?}");
        }
        assert_eq!(opt.step, 1);
        assert_eq!(opt.m[0].dtype(), DType::F32);
        Ok(())
    }

    #[test]
    fn clipping_caps_the_global_norm() -> Result<()> {
        let dev = Device::Cpu;
        let mut g = vec![Tensor::new(&[3.0f32], &dev)?, Tensor::new(&[4.0f32], &dev)?];
        let n = global_norm(&g)?;
        assert!((n - 5.0).abs() < 1e-9);
        clip(&mut g, n, 1.0)?;
        assert!((global_norm(&g)? - 1.0).abs() < 1e-5);
        Ok(())
    }
}
