//! A LoRA linear layer as one op: `y = x·Wᵀ + s·(x·Aᵀ)·Bᵀ` with `W` frozen, and backward
//! `dx = dy·W + s·(dy·B)·A`, `dA = s·(dy·B)ᵀ·x`, `dB = s·dyᵀ·(x·Aᵀ)`.
//!
//! Composed of primitive ops, an adapted projection keeps three output-sized tensors in the graph
//! until the backward pass (the base product, the adapter's product and their sum) and makes two
//! more passes over them (the scaling and the sum). Here the graph keeps only the input and the
//! output, which it holds anyway, and the rank-sized `x·Aᵀ` is recomputed in the backward pass.
//! For SmolLM2 that is about 40% of a training step's activation memory.
//!
//! CPU only, f32 and f64, like the other kernels of [`crate::fused_grad`]; the frozen weight
//! lives inside the op, as in [`crate::frozen_matmul`], so it never enters the graph.

use candle_core::{CpuStorage, CustomOp3, Layout, Result, Shape, Storage, Tensor};

use crate::cpu_gemm::{matmul_add, matmul_uninit, rows_of, transposed, Threads};
use crate::fused_grad::{assume_init, dispatch, slice, uninit, written, Real};
use crate::llama::Lora;

/// Whether [`lora_linear`] runs for this input, frozen weight and adapter: CPU, and one float
/// type (f32 or f64) for all of them.
pub fn supported(x: &Tensor, weight: &Tensor, lora: &Lora) -> bool {
    crate::fused_grad::supported(x)
        && [weight, &lora.a, &lora.b]
            .iter()
            .all(|t| t.dtype() == x.dtype() && t.device().is_cpu())
}

/// `x`: `(.., in)` → `(.., out)` for a frozen `weight` `(out, in)` and `lora` (`a`: `(r, in)`,
/// `b`: `(out, r)`), differentiable in `x`, `a` and `b`.
pub fn lora_linear(x: &Tensor, weight: &Tensor, lora: &Lora) -> Result<Tensor> {
    let (out, input) = weight.dims2()?;
    let mut dims = x.dims().to_vec();
    let x2 = x.reshape(((), input))?.contiguous()?;
    let op = FusedLora {
        weight: weight.contiguous()?,
        scale: lora.scale,
    };
    let y = x2.apply_op3(&lora.a.contiguous()?, &lora.b.contiguous()?, op)?;
    if let Some(last) = dims.last_mut() {
        *last = out;
    }
    y.reshape(dims)
}

/// `(n, in, out, rank)`, checked against each other.
fn dims(
    weight: &Tensor,
    xl: &Layout,
    al: &Layout,
    bl: &Layout,
) -> Result<(usize, usize, usize, usize)> {
    let (n, input) = xl.shape().dims2()?;
    let (out, w_in) = weight.dims2()?;
    let (rank, a_in) = al.shape().dims2()?;
    let (b_out, b_rank) = bl.shape().dims2()?;
    if w_in != input || a_in != input || b_out != out || b_rank != rank {
        candle_core::bail!(
            "LoRA linear: input {:?}, weight {:?}, a {:?} and b {:?} do not fit",
            xl.shape(),
            weight.shape(),
            al.shape(),
            bl.shape()
        );
    }
    Ok((n, input, out, rank))
}

/// The CPU values of a tensor held by an op.
fn held<'a, T: Real>(storage: &'a Storage, layout: &Layout) -> Result<&'a [T]> {
    match storage {
        Storage::Cpu(s) => slice::<T>(s, layout, "LoRA linear"),
        _ => candle_core::bail!("LoRA linear: CPU tensors only"),
    }
}

struct FusedLora {
    /// `(out, in)`, contiguous.
    weight: Tensor,
    scale: f64,
}

impl FusedLora {
    #[allow(clippy::too_many_arguments)]
    fn fwd<T: Real>(
        &self,
        xs: &CpuStorage,
        xl: &Layout,
        a_s: &CpuStorage,
        al: &Layout,
        bs: &CpuStorage,
        bl: &Layout,
    ) -> Result<(CpuStorage, Shape)> {
        let x = slice::<T>(xs, xl, "LoRA linear")?;
        let a = slice::<T>(a_s, al, "LoRA linear")?;
        let b = slice::<T>(bs, bl, "LoRA linear")?;
        let (y, shape) = self.product(x, xl, a, al, b, bl)?;
        Ok((T::to_cpu_storage_owned(y), shape))
    }

    /// `x·Wᵀ + s·(x·Aᵀ)·Bᵀ` for the values of `x`, `a` and `b` in their layouts.
    fn product<T: Real>(
        &self,
        x: &[T],
        xl: &Layout,
        a: &[T],
        al: &Layout,
        b: &[T],
        bl: &Layout,
    ) -> Result<(Vec<T>, Shape)> {
        let (n, input, out, rank) = dims(&self.weight, xl, al, bl)?;
        let (ws, wl) = self.weight.storage_and_layout();
        let w = held::<T>(&ws, wl)?;
        let mut xa = uninit::<T>(n * rank);
        matmul_uninit(
            Threads::All,
            (n, rank, input),
            &mut xa,
            rows_of(x, input),
            transposed(a, input),
            T::one(),
        );
        // SAFETY: the product wrote all `n × rank` values.
        let xa = unsafe { assume_init(xa) };
        let mut y = uninit::<T>(n * out);
        matmul_uninit(
            Threads::All,
            (n, out, input),
            &mut y,
            rows_of(x, input),
            transposed(w, input),
            T::one(),
        );
        // SAFETY: the product wrote all `n × out` values.
        let mut y = unsafe { assume_init(y) };
        let s = T::cast(self.scale);
        matmul_add(
            Threads::All,
            (n, out, rank),
            &mut y,
            rows_of(&xa, rank),
            transposed(b, rank),
            s,
        );
        Ok((y, Shape::from((n, out))))
    }
}

impl CustomOp3 for FusedLora {
    fn name(&self) -> &'static str {
        "lora-linear"
    }

    fn cpu_fwd(
        &self,
        xs: &CpuStorage,
        xl: &Layout,
        a_s: &CpuStorage,
        al: &Layout,
        bs: &CpuStorage,
        bl: &Layout,
    ) -> Result<(CpuStorage, Shape)> {
        dispatch!("LoRA linear", xs, self.fwd(xs, xl, a_s, al, bs, bl))
    }

    fn bwd(
        &self,
        x: &Tensor,
        a: &Tensor,
        b: &Tensor,
        _y: &Tensor,
        dy: &Tensor,
    ) -> Result<(Option<Tensor>, Option<Tensor>, Option<Tensor>)> {
        let (dx, da, db) = self.grads(x, a, b, dy)?;
        Ok((Some(dx), Some(da), Some(db)))
    }
}

impl FusedLora {
    /// `dx`, `da` and `db` for an upstream gradient `dy`.
    fn grads(
        &self,
        x: &Tensor,
        a: &Tensor,
        b: &Tensor,
        dy: &Tensor,
    ) -> Result<(Tensor, Tensor, Tensor)> {
        let op = FusedLoraBackward {
            weight: self.weight.clone(),
            scale: self.scale,
            dy: dy.contiguous()?,
        };
        let (x, a, b) = (x.contiguous()?, a.contiguous()?, b.contiguous()?);
        let all = x.apply_op3_no_bwd(&a, &b, &op)?;
        let (nx, na, nb) = (x.elem_count(), a.elem_count(), b.elem_count());
        let dx = all.narrow(0, 0, nx)?.reshape(x.shape())?;
        let da = all.narrow(0, nx, na)?.reshape(a.shape())?;
        let db = all.narrow(0, nx + na, nb)?.reshape(b.shape())?;
        Ok((dx, da, db))
    }
}

/// `residual + lora_linear(x)` as one op, so that the layer's own output, which only the sum
/// would read, never enters the graph (two of them per llama block: the attention's and the
/// MLP's output projections). The adapter's `a` and `b` travel as one flat tensor, since an op
/// has three inputs at most.
pub fn lora_linear_residual(
    x: &Tensor,
    weight: &Tensor,
    lora: &Lora,
    residual: &Tensor,
) -> Result<Tensor> {
    let (out, input) = weight.dims2()?;
    let mut dims = x.dims().to_vec();
    if let Some(last) = dims.last_mut() {
        *last = out;
    }
    if residual.dims() != dims.as_slice() {
        candle_core::bail!(
            "LoRA linear: residual {:?} does not match the output {dims:?}",
            residual.shape()
        );
    }
    let x2 = x.reshape(((), input))?.contiguous()?;
    let r2 = residual.reshape(((), out))?.contiguous()?;
    let (a, b) = (lora.a.contiguous()?, lora.b.contiguous()?);
    let ab = Tensor::cat(&[a.flatten_all()?, b.flatten_all()?], 0)?;
    let op = FusedLoraResidual {
        lora: FusedLora {
            weight: weight.contiguous()?,
            scale: lora.scale,
        },
        a_shape: a.shape().clone(),
        b_shape: b.shape().clone(),
    };
    x2.apply_op3(&ab, &r2, op)?.reshape(dims)
}

struct FusedLoraResidual {
    lora: FusedLora,
    a_shape: Shape,
    b_shape: Shape,
}

impl FusedLoraResidual {
    /// `a` and `b` as views of the packed tensor.
    fn split(&self, ab: &Tensor) -> Result<(Tensor, Tensor)> {
        let (na, nb) = (self.a_shape.elem_count(), self.b_shape.elem_count());
        if ab.elem_count() != na + nb {
            candle_core::bail!("LoRA linear: packed adapter of {} values", ab.elem_count());
        }
        Ok((
            ab.narrow(0, 0, na)?.reshape(&self.a_shape)?,
            ab.narrow(0, na, nb)?.reshape(&self.b_shape)?,
        ))
    }

    #[allow(clippy::too_many_arguments)]
    fn fwd<T: Real>(
        &self,
        xs: &CpuStorage,
        xl: &Layout,
        abs: &CpuStorage,
        abl: &Layout,
        rs: &CpuStorage,
        rl: &Layout,
    ) -> Result<(CpuStorage, Shape)> {
        let ab = slice::<T>(abs, abl, "LoRA linear")?;
        let na = self.a_shape.elem_count();
        if ab.len() != na + self.b_shape.elem_count() {
            candle_core::bail!("LoRA linear: packed adapter of {} values", ab.len());
        }
        let al = Layout::contiguous(&self.a_shape);
        let bl = Layout::contiguous(&self.b_shape);
        let x = slice::<T>(xs, xl, "LoRA linear")?;
        let (mut y, shape) = self.lora.product(x, xl, &ab[..na], &al, &ab[na..], &bl)?;
        let residual = slice::<T>(rs, rl, "LoRA linear")?;
        if shape.elem_count() != residual.len() {
            candle_core::bail!("LoRA linear: residual {:?} is not {shape:?}", rl.shape());
        }
        // The same sum as `residual + y` composed, value for value.
        for (y, &r) in y.iter_mut().zip(residual) {
            *y = r + *y;
        }
        Ok((T::to_cpu_storage_owned(y), shape))
    }
}

impl CustomOp3 for FusedLoraResidual {
    fn name(&self) -> &'static str {
        "lora-linear-residual"
    }

    fn cpu_fwd(
        &self,
        xs: &CpuStorage,
        xl: &Layout,
        abs: &CpuStorage,
        abl: &Layout,
        rs: &CpuStorage,
        rl: &Layout,
    ) -> Result<(CpuStorage, Shape)> {
        dispatch!("LoRA linear", xs, self.fwd(xs, xl, abs, abl, rs, rl))
    }

    fn bwd(
        &self,
        x: &Tensor,
        ab: &Tensor,
        _residual: &Tensor,
        _y: &Tensor,
        dy: &Tensor,
    ) -> Result<(Option<Tensor>, Option<Tensor>, Option<Tensor>)> {
        let (a, b) = self.split(ab)?;
        let (dx, da, db) = self.lora.grads(x, &a, &b, dy)?;
        let dab = Tensor::cat(&[da.flatten_all()?, db.flatten_all()?], 0)?;
        Ok((Some(dx), Some(dab), Some(dy.clone())))
    }
}

/// `dx`, `da` and `db` for an upstream gradient `dy`, flattened one after the other.
struct FusedLoraBackward {
    weight: Tensor,
    scale: f64,
    dy: Tensor,
}

impl FusedLoraBackward {
    #[allow(clippy::too_many_arguments)]
    fn run<T: Real>(
        &self,
        xs: &CpuStorage,
        xl: &Layout,
        a_s: &CpuStorage,
        al: &Layout,
        bs: &CpuStorage,
        bl: &Layout,
    ) -> Result<(CpuStorage, Shape)> {
        let (n, input, out, rank) = dims(&self.weight, xl, al, bl)?;
        if self.dy.dims() != [n, out] {
            candle_core::bail!(
                "LoRA linear: gradient {:?} is not ({n}, {out})",
                self.dy.shape()
            );
        }
        let x = slice::<T>(xs, xl, "LoRA linear")?;
        let a = slice::<T>(a_s, al, "LoRA linear")?;
        let b = slice::<T>(bs, bl, "LoRA linear")?;
        let (ws, wl) = self.weight.storage_and_layout();
        let w = held::<T>(&ws, wl)?;
        let (dys, dyl) = self.dy.storage_and_layout();
        let dy = held::<T>(&dys, dyl)?;
        let s = T::cast(self.scale);
        // dx (n × input), da (rank × input) and db (out × rank), each written in full below.
        let mut grads = uninit::<T>(n * input + rank * input + out * rank);
        let (dx, dab) = grads.split_at_mut(n * input);
        let (da, db) = dab.split_at_mut(rank * input);
        // dy·B, the adapter's share of the gradient at its bottleneck.
        let mut dyb = uninit::<T>(n * rank);
        matmul_uninit(
            Threads::All,
            (n, rank, out),
            &mut dyb,
            rows_of(dy, out),
            rows_of(b, rank),
            T::one(),
        );
        // SAFETY: the product wrote all `n × rank` values.
        let dyb = unsafe { assume_init(dyb) };
        matmul_uninit(
            Threads::All,
            (n, input, out),
            dx,
            rows_of(dy, out),
            rows_of(w, input),
            T::one(),
        );
        matmul_add(
            Threads::All,
            (n, input, rank),
            // SAFETY: the product above wrote all of `dx`.
            unsafe { written(dx) },
            rows_of(&dyb, rank),
            rows_of(a, input),
            s,
        );
        matmul_uninit(
            Threads::All,
            (rank, input, n),
            da,
            transposed(&dyb, rank),
            rows_of(x, input),
            s,
        );
        let mut xa = uninit::<T>(n * rank);
        matmul_uninit(
            Threads::All,
            (n, rank, input),
            &mut xa,
            rows_of(x, input),
            transposed(a, input),
            T::one(),
        );
        // SAFETY: the product wrote all `n × rank` values.
        let xa = unsafe { assume_init(xa) };
        matmul_uninit(
            Threads::All,
            (out, rank, n),
            db,
            transposed(dy, out),
            rows_of(&xa, rank),
            s,
        );
        // SAFETY: dx, da and db, which tile `grads`, were written by the products above.
        let grads = unsafe { assume_init(grads) };
        let len = grads.len();
        Ok((T::to_cpu_storage_owned(grads), Shape::from(len)))
    }
}

impl CustomOp3 for FusedLoraBackward {
    fn name(&self) -> &'static str {
        "lora-linear-backward"
    }

    fn cpu_fwd(
        &self,
        xs: &CpuStorage,
        xl: &Layout,
        a_s: &CpuStorage,
        al: &Layout,
        bs: &CpuStorage,
        bl: &Layout,
    ) -> Result<(CpuStorage, Shape)> {
        dispatch!("LoRA linear", xs, self.run(xs, xl, a_s, al, bs, bl))
    }
}

/// Merges a LoRA update into a weight matrix in place: `w (rows × cols) += scale · b (rows ×
/// rank) · a (rank × cols)`, all row-major f32, on the calling thread (exporters merge many
/// matrices in parallel). Errors when a slice does not hold its matrix.
pub fn merge_low_rank(
    w: &mut [f32],
    (rows, cols, rank): (usize, usize, usize),
    b: &[f32],
    a: &[f32],
    scale: f32,
) -> Result<()> {
    if w.len() != rows * cols || b.len() != rows * rank || a.len() != rank * cols {
        candle_core::bail!(
            "merge_low_rank: weight {} / b {} / a {} values for {rows} × {cols} at rank {rank}",
            w.len(),
            b.len(),
            a.len()
        );
    }
    matmul_add(
        Threads::One,
        (rows, cols, rank),
        w,
        rows_of(b, rank),
        rows_of(a, cols),
        scale,
    );
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use candle_core::{DType, Device, Var};

    fn randn(shape: &[usize], dtype: DType) -> Result<Tensor> {
        Tensor::randn(0f64, 1., shape, &Device::Cpu)?.to_dtype(dtype)
    }

    #[test]
    fn matches_composed_ops_in_value_and_all_gradients() -> Result<()> {
        for dtype in [DType::F64, DType::F32] {
            let (input, out, rank) = (24, 40, 4);
            let w = randn(&[out, input], dtype)?;
            let x0 = randn(&[2, 7, input], dtype)?;
            let a0 = randn(&[rank, input], dtype)?;
            let b0 = randn(&[out, rank], dtype)?;
            let up = randn(&[2, 7, out], dtype)?;
            type Linear<'a> = &'a dyn Fn(&Tensor, &Lora) -> Result<Tensor>;
            let run = |f: Linear| -> Result<Vec<Tensor>> {
                let (x, a, b) = (
                    Var::from_tensor(&x0)?,
                    Var::from_tensor(&a0)?,
                    Var::from_tensor(&b0)?,
                );
                let lora = Lora {
                    a: a.as_tensor().clone(),
                    b: b.as_tensor().clone(),
                    scale: 2.5,
                };
                let y = f(x.as_tensor(), &lora)?;
                let g = (&y * &up)?.sum_all()?.backward()?;
                let grad = |t: &Var| g.get(t.as_tensor()).cloned().expect("gradient");
                Ok(vec![y, grad(&x), grad(&a), grad(&b)])
            };
            let fused = run(&|x, l| lora_linear(x, &w, l))?;
            let composed = run(&|x, l| {
                let base = x.broadcast_matmul(&w.t()?)?;
                let delta = x.broadcast_matmul(&l.a.t()?)?.broadcast_matmul(&l.b.t()?)?;
                base + (delta * l.scale)?
            })?;
            let tol = if dtype == DType::F64 { 1e-10 } else { 1e-3 };
            for (name, (f, c)) in ["y", "dx", "da", "db"]
                .iter()
                .zip(fused.iter().zip(&composed))
            {
                let diff = (f - c)?
                    .abs()?
                    .max_all()?
                    .to_dtype(DType::F64)?
                    .to_scalar::<f64>()?;
                assert!(diff < tol, "{name} differs by {diff} ({dtype:?})");
            }
        }
        Ok(())
    }

    #[test]
    fn residual_variant_equals_the_composed_sum_and_its_gradients() -> Result<()> {
        let dtype = DType::F64;
        let (input, out, rank) = (24, 40, 4);
        let w = randn(&[out, input], dtype)?;
        let x0 = randn(&[2, 7, input], dtype)?;
        let r0 = randn(&[2, 7, out], dtype)?;
        let a0 = randn(&[rank, input], dtype)?;
        let b0 = randn(&[out, rank], dtype)?;
        let up = randn(&[2, 7, out], dtype)?;
        type Residual<'a> = &'a dyn Fn(&Tensor, &Lora, &Tensor) -> Result<Tensor>;
        let run = |f: Residual| -> Result<Vec<Tensor>> {
            let vars = [&x0, &a0, &b0, &r0]
                .iter()
                .map(|t| Var::from_tensor(t))
                .collect::<Result<Vec<_>>>()?;
            let lora = Lora {
                a: vars[1].as_tensor().clone(),
                b: vars[2].as_tensor().clone(),
                scale: 2.5,
            };
            let y = f(vars[0].as_tensor(), &lora, vars[3].as_tensor())?;
            let g = (&y * &up)?.sum_all()?.backward()?;
            let mut outs = vec![y];
            for v in &vars {
                outs.push(g.get(v.as_tensor()).cloned().expect("gradient"));
            }
            Ok(outs)
        };
        let fused = run(&|x, l, r| lora_linear_residual(x, &w, l, r))?;
        let composed = run(&|x, l, r| r + lora_linear(x, &w, l)?)?;
        for (name, (f, c)) in ["y", "dx", "da", "db", "dresidual"]
            .iter()
            .zip(fused.iter().zip(&composed))
        {
            let diff = (f - c)?.abs()?.max_all()?.to_scalar::<f64>()?;
            assert!(diff == 0.0, "{name} differs by {diff}");
        }
        let lora = Lora {
            a: a0.clone(),
            b: b0.clone(),
            scale: 1.0,
        };
        assert!(lora_linear_residual(&x0, &w, &lora, &x0).is_err());
        Ok(())
    }

    #[test]
    fn rejects_an_adapter_that_does_not_fit() -> Result<()> {
        let w = randn(&[8, 6], DType::F32)?;
        let lora = Lora {
            a: randn(&[2, 5], DType::F32)?,
            b: randn(&[8, 2], DType::F32)?,
            scale: 1.0,
        };
        assert!(lora_linear(&randn(&[3, 6], DType::F32)?, &w, &lora).is_err());
        Ok(())
    }

    #[test]
    fn merging_a_low_rank_update_adds_scale_b_a() {
        let (rows, cols, rank) = (3, 4, 2);
        let b: Vec<f32> = (0..rows * rank).map(|i| i as f32 * 0.5 - 1.0).collect();
        let a: Vec<f32> = (0..rank * cols).map(|i| (i as f32).sin()).collect();
        let w0: Vec<f32> = (0..rows * cols).map(|i| i as f32 * 0.1).collect();
        let mut w = w0.clone();
        super::merge_low_rank(&mut w, (rows, cols, rank), &b, &a, 0.25).unwrap();
        for r in 0..rows {
            for c in 0..cols {
                let d: f32 = (0..rank).map(|k| b[r * rank + k] * a[k * cols + c]).sum();
                let want = w0[r * cols + c] + 0.25 * d;
                assert!((w[r * cols + c] - want).abs() < 1e-6, "({r}, {c})");
            }
        }
        assert!(super::merge_low_rank(&mut w, (rows, cols, 3), &b, &a, 1.0).is_err());
    }
}
