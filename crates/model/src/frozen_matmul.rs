//! `x · Wᵀ` for a frozen weight `W`, as one custom op whose backward pass returns the input's
//! gradient only.
//!
//! candle's `matmul` backward always computes both operands' gradients; for LoRA training the
//! base weights never get one, yet computing it costs as much as the forward matmul itself (and a
//! weight-sized allocation per layer per step). Holding `W` inside the op instead of passing it
//! as an operand keeps it out of the graph.

use candle_core::backend::BackendStorage;
use candle_core::{CpuStorage, CudaStorage, CustomOp1, Layout, Result, Shape, Storage, Tensor};

/// The op: `apply_op1` on `x` of shape `(n, in)` with `W` of shape `(out, in)` gives `(n, out)`.
pub struct FrozenMatmul {
    /// `(out, in)`, contiguous, same dtype and device as the input.
    pub weight: Tensor,
}

impl FrozenMatmul {
    fn dims(&self, layout: &Layout) -> Result<(usize, usize, usize)> {
        let (n, k) = layout.shape().dims2()?;
        let (out, k2) = self.weight.dims2()?;
        if k != k2 {
            candle_core::bail!("frozen matmul: input has {k} features, the weight expects {k2}");
        }
        Ok((n, k, out))
    }

    fn run<S: BackendStorage>(&self, x: &S, xl: &Layout, w: &S, wl: &Layout) -> Result<(S, Shape)> {
        let (n, k, out) = self.dims(xl)?;
        let wt = wl.transpose(0, 1)?;
        let y = x.matmul(w, (1, n, out, k), xl, &wt)?;
        Ok((y, Shape::from((n, out))))
    }
}

impl CustomOp1 for FrozenMatmul {
    fn name(&self) -> &'static str {
        "frozen-matmul"
    }

    fn cpu_fwd(&self, storage: &CpuStorage, layout: &Layout) -> Result<(CpuStorage, Shape)> {
        let (ws, wl) = self.weight.storage_and_layout();
        match &*ws {
            Storage::Cpu(w) => self.run(storage, layout, w, wl),
            _ => candle_core::bail!("frozen matmul: the weight is not on the CPU"),
        }
    }

    fn cuda_fwd(&self, storage: &CudaStorage, layout: &Layout) -> Result<(CudaStorage, Shape)> {
        let (ws, wl) = self.weight.storage_and_layout();
        match &*ws {
            Storage::Cuda(w) => self.run(storage, layout, w, wl),
            _ => candle_core::bail!("frozen matmul: the weight is not on the CUDA device"),
        }
    }

    fn bwd(&self, _arg: &Tensor, _res: &Tensor, grad_res: &Tensor) -> Result<Option<Tensor>> {
        // d(x·Wᵀ)/dx = grad · W; the weight gets nothing.
        Ok(Some(grad_res.matmul(&self.weight)?))
    }
}

/// `x · Wᵀ` where only `x` is differentiated. `x`: `(n, in)`, `weight`: `(out, in)`.
pub fn frozen_matmul(x: &Tensor, weight: &Tensor) -> Result<Tensor> {
    let x = x.contiguous()?;
    let weight = weight.contiguous()?;
    x.apply_op1(FrozenMatmul { weight })
}

#[cfg(test)]
mod tests {
    use super::*;
    use candle_core::{Device, Var};

    #[test]
    fn forward_and_input_gradient_equal_plain_matmul() -> Result<()> {
        let dev = Device::Cpu;
        let x0 = Tensor::randn(0f32, 1., (5, 7), &dev)?;
        let w = Tensor::randn(0f32, 1., (3, 7), &dev)?;
        let up = Tensor::randn(0f32, 1., (5, 3), &dev)?;

        let xa = Var::from_tensor(&x0)?;
        let ya = frozen_matmul(xa.as_tensor(), &w)?;
        let ga = (&ya * &up)?.sum_all()?.backward()?;

        let xb = Var::from_tensor(&x0)?;
        let yb = xb.as_tensor().matmul(&w.t()?)?;
        let gb = (&yb * &up)?.sum_all()?.backward()?;

        let diff = (&ya - &yb)?.abs()?.max_all()?.to_scalar::<f32>()?;
        assert!(diff < 1e-5, "forward differs by {diff}");
        let (Some(da), Some(db)) = (ga.get(xa.as_tensor()), gb.get(xb.as_tensor())) else {
            panic!("no input gradient");
        };
        let diff = (da - db)?.abs()?.max_all()?.to_scalar::<f32>()?;
        assert!(diff < 1e-5, "input gradient differs by {diff}");
        // The frozen weight gets no gradient.
        assert!(ga.get(&w).is_none());
        Ok(())
    }
}
