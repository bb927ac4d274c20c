//! Fused CPU kernels that keep a backward pass: RMSNorm, SwiGLU, rotary embeddings, the masked
//! attention softmax and the cross-entropy loss, for LoRA training.
//!
//! Built from primitive ops, each of these is five to ten element-wise passes, and each pass
//! allocates a fresh tensor that its backward pass reads again; on a CPU that traffic (and the
//! page faults of the allocations) cost more than the matrix products. Here each is one pass
//! forward and one pass backward, parallel over rows. candle's own fused kernels
//! (`rms_norm`, `rope`, `softmax_last_dim`) have no backward at all, which silently cuts the graph.
//!
//! CPU only, f32 and f64 (f64 for the gradient checks); callers fall back to primitive ops on
//! other devices and dtypes ([`supported`]). Frozen operands (the norm weight, the rotary tables,
//! the targets) live inside the op, so they never enter the graph.

use std::mem::MaybeUninit;

use candle_core::{CpuStorage, CustomOp1, CustomOp2, DType, Layout, Result, Shape, Tensor};
use rayon::prelude::*;

/// Whether the fused kernels run for a tensor like `x` (CPU, f32 or f64).
pub fn supported(x: &Tensor) -> bool {
    x.device().is_cpu() && matches!(x.dtype(), DType::F32 | DType::F64)
}

/// The float types the kernels are written for.
pub(crate) trait Real:
    candle_core::WithDType
    + Copy
    + Send
    + Sync
    + std::ops::Add<Output = Self>
    + std::ops::Sub<Output = Self>
    + std::ops::Mul<Output = Self>
    + std::ops::Div<Output = Self>
    + std::ops::AddAssign
    + std::ops::SubAssign
    + std::ops::MulAssign
    + PartialOrd
{
    /// `e^self`; for f32 the vectorisable [`crate::vector_math::exp_f32`].
    fn exp(self) -> Self;
    fn sqrt(self) -> Self;
    fn cast(v: f64) -> Self;
}

impl Real for f32 {
    #[inline(always)]
    fn exp(self) -> Self {
        crate::vector_math::exp_f32(self)
    }
    fn sqrt(self) -> Self {
        f32::sqrt(self)
    }
    fn cast(v: f64) -> Self {
        v as f32
    }
}

impl Real for f64 {
    fn exp(self) -> Self {
        f64::exp(self)
    }
    fn sqrt(self) -> Self {
        f64::sqrt(self)
    }
    fn cast(v: f64) -> Self {
        v
    }
}

/// An output of `len` values for a kernel that writes every one of them: allocated, not
/// cleared. The allocator hands back recycled memory, which `vec![0.0; len]` clears first;
/// for the kernels' outputs that clearing was 3–4% of a training step. [`assume_init`] turns it
/// into values once written.
pub(crate) fn uninit<T>(len: usize) -> Vec<MaybeUninit<T>> {
    let mut v = Vec::with_capacity(len);
    // SAFETY: MaybeUninit<T> needs no initialisation; the capacity is `len`.
    unsafe { v.set_len(len) };
    v
}

/// The values of an [`uninit`] output.
///
/// # Safety
/// Every element of `v` has been written.
pub(crate) unsafe fn assume_init<T>(v: Vec<MaybeUninit<T>>) -> Vec<T> {
    let mut v = std::mem::ManuallyDrop::new(v);
    // SAFETY: MaybeUninit<T> has T's layout, the caller promises every element is written, and
    // the allocation moves over unchanged (`v` is not dropped).
    unsafe { Vec::from_raw_parts(v.as_mut_ptr().cast::<T>(), v.len(), v.capacity()) }
}

/// The values of a written part of an [`uninit`] output.
///
/// # Safety
/// Every element of `s` has been written.
pub(crate) unsafe fn written<T>(s: &mut [MaybeUninit<T>]) -> &mut [T] {
    // SAFETY: as in `assume_init`.
    unsafe { &mut *(s as *mut [MaybeUninit<T>] as *mut [T]) }
}

/// The contiguous slice of a CPU storage, or an error naming the op.
pub(crate) fn slice<'a, T: Real>(s: &'a CpuStorage, l: &Layout, op: &str) -> Result<&'a [T]> {
    let Some((a, b)) = l.contiguous_offsets() else {
        candle_core::bail!("{op}: input is not contiguous");
    };
    let all = T::cpu_storage_as_slice(s)?;
    Ok(&all[a..b])
}

/// A frozen tensor's values as a contiguous `Vec<T>`.
fn values<T: Real>(t: &Tensor) -> Result<Vec<T>> {
    t.flatten_all()?.to_dtype(T::DTYPE)?.to_vec1::<T>()
}

/// Calls `self.method::<T>(args)` with `T` the element type of `storage` (f32 or f64); `op`
/// names the operation in the error for other types. Shared by every fused CPU kernel.
macro_rules! dispatch {
    ($op:expr, $storage:expr, $this:ident . $m:ident ( $($arg:expr),* )) => {
        match $storage {
            candle_core::CpuStorage::F32(_) => $this.$m::<f32>($($arg),*),
            candle_core::CpuStorage::F64(_) => $this.$m::<f64>($($arg),*),
            _ => candle_core::bail!("{}: only f32 and f64 are supported", $op),
        }
    };
}
pub(crate) use dispatch;

// ---------------------------------------------------------------------------------------------
// RMSNorm
// ---------------------------------------------------------------------------------------------

/// `y = x / sqrt(mean(x²) + eps) · w` over the last axis; `w` is frozen.
struct RmsNorm {
    weight: Tensor,
    eps: f64,
}

impl RmsNorm {
    fn fwd<T: Real>(&self, s: &CpuStorage, l: &Layout) -> Result<(CpuStorage, Shape)> {
        let x = slice::<T>(s, l, "rms-norm")?;
        let w = values::<T>(&self.weight)?;
        let n = w.len();
        if n == 0 || x.len() % n != 0 {
            candle_core::bail!("rms-norm: {} values are not rows of {n}", x.len());
        }
        let mut y = uninit::<T>(x.len());
        let eps = T::cast(self.eps);
        let inv_n = T::cast(1.0 / n as f64);
        y.par_chunks_mut(n).zip(x.par_chunks(n)).for_each(|(y, x)| {
            let ms = x.iter().fold(T::zero(), |a, &v| a + v * v) * inv_n;
            let r = T::one() / (ms + eps).sqrt();
            for ((y, &x), &w) in y.iter_mut().zip(x).zip(&w) {
                y.write(x * r * w);
            }
        });
        // SAFETY: `x` is whole rows of `n`, each written above.
        let y = unsafe { assume_init(y) };
        Ok((T::to_cpu_storage_owned(y), l.shape().clone()))
    }
}

impl CustomOp1 for RmsNorm {
    fn name(&self) -> &'static str {
        "rms-norm-grad"
    }
    fn cpu_fwd(&self, s: &CpuStorage, l: &Layout) -> Result<(CpuStorage, Shape)> {
        dispatch!("rms-norm", s, self.fwd(s, l))
    }
    fn bwd(&self, x: &Tensor, _y: &Tensor, dy: &Tensor) -> Result<Option<Tensor>> {
        let op = RmsNormBackward {
            weight: self.weight.clone(),
            eps: self.eps,
        };
        Ok(Some(x.apply_op2_no_bwd(&dy.contiguous()?, &op)?))
    }
}

/// `dx = r·g − x·r³·mean(x·g)` with `g = w·dy` and `r = 1/sqrt(mean(x²) + eps)`.
struct RmsNormBackward {
    weight: Tensor,
    eps: f64,
}

impl RmsNormBackward {
    fn run<T: Real>(
        &self,
        xs: &CpuStorage,
        xl: &Layout,
        gs: &CpuStorage,
        gl: &Layout,
    ) -> Result<(CpuStorage, Shape)> {
        let x = slice::<T>(xs, xl, "rms-norm backward")?;
        let dy = slice::<T>(gs, gl, "rms-norm backward")?;
        let w = values::<T>(&self.weight)?;
        let n = w.len();
        let eps = T::cast(self.eps);
        let inv_n = T::cast(1.0 / n as f64);
        if n == 0 || x.len() % n != 0 || dy.len() != x.len() {
            candle_core::bail!(
                "rms-norm backward: {} values and {} gradients for rows of {n}",
                x.len(),
                dy.len()
            );
        }
        let mut dx = uninit::<T>(x.len());
        dx.par_chunks_mut(n)
            .zip(x.par_chunks(n).zip(dy.par_chunks(n)))
            .for_each(|(dx, (x, dy))| {
                let ms = x.iter().fold(T::zero(), |a, &v| a + v * v) * inv_n;
                let r = T::one() / (ms + eps).sqrt();
                let mut xg = T::zero();
                for i in 0..n {
                    xg += x[i] * w[i] * dy[i];
                }
                let c = r * r * r * xg * inv_n;
                for i in 0..n {
                    dx[i].write(r * w[i] * dy[i] - x[i] * c);
                }
            });
        // SAFETY: `x` is whole rows of `n`, each written above.
        let dx = unsafe { assume_init(dx) };
        Ok((T::to_cpu_storage_owned(dx), xl.shape().clone()))
    }
}

impl CustomOp2 for RmsNormBackward {
    fn name(&self) -> &'static str {
        "rms-norm-backward"
    }
    fn cpu_fwd(
        &self,
        xs: &CpuStorage,
        xl: &Layout,
        gs: &CpuStorage,
        gl: &Layout,
    ) -> Result<(CpuStorage, Shape)> {
        dispatch!("rms-norm backward", xs, self.run(xs, xl, gs, gl))
    }
}

/// RMSNorm of `x` over its last axis with the frozen `weight`, differentiable in `x`.
pub fn rms_norm(x: &Tensor, weight: &Tensor, eps: f64) -> Result<Tensor> {
    let n = x.dim(candle_core::D::Minus1)?;
    if weight.elem_count() != n {
        candle_core::bail!(
            "rms-norm: weight has {} values for {n}",
            weight.elem_count()
        );
    }
    x.contiguous()?.apply_op1(RmsNorm {
        weight: weight.clone(),
        eps,
    })
}

// ---------------------------------------------------------------------------------------------
// SwiGLU
// ---------------------------------------------------------------------------------------------

/// `silu(gate) · up`, element-wise.
struct SwiGlu;

#[inline(always)]
fn sigmoid<T: Real>(x: T) -> T {
    T::one() / (T::one() + (T::zero() - x).exp())
}

impl SwiGlu {
    fn fwd<T: Real>(
        &self,
        gs: &CpuStorage,
        gl: &Layout,
        us: &CpuStorage,
        ul: &Layout,
    ) -> Result<(CpuStorage, Shape)> {
        let g = slice::<T>(gs, gl, "swiglu")?;
        let u = slice::<T>(us, ul, "swiglu")?;
        if gl.shape() != ul.shape() {
            candle_core::bail!(
                "swiglu: gate {:?} and up {:?} differ",
                gl.shape(),
                ul.shape()
            );
        }
        if g.len() != u.len() {
            candle_core::bail!("swiglu: {} gate and {} up values", g.len(), u.len());
        }
        let mut y = uninit::<T>(g.len());
        y.par_chunks_mut(4096)
            .zip(g.par_chunks(4096).zip(u.par_chunks(4096)))
            .for_each(|(y, (g, u))| {
                for ((y, &g), &u) in y.iter_mut().zip(g).zip(u) {
                    y.write(g * sigmoid(g) * u);
                }
            });
        // SAFETY: `g` and `u` have `y`'s length, so every chunk is written in full.
        let y = unsafe { assume_init(y) };
        Ok((T::to_cpu_storage_owned(y), gl.shape().clone()))
    }
}

impl CustomOp2 for SwiGlu {
    fn name(&self) -> &'static str {
        "swiglu-grad"
    }
    fn cpu_fwd(
        &self,
        gs: &CpuStorage,
        gl: &Layout,
        us: &CpuStorage,
        ul: &Layout,
    ) -> Result<(CpuStorage, Shape)> {
        dispatch!("swiglu", gs, self.fwd(gs, gl, us, ul))
    }
    fn bwd(
        &self,
        g: &Tensor,
        u: &Tensor,
        _y: &Tensor,
        dy: &Tensor,
    ) -> Result<(Option<Tensor>, Option<Tensor>)> {
        let op = SwiGluBackward {
            dy: dy.contiguous()?,
        };
        let both = g.apply_op2_no_bwd(u, &op)?;
        let n = g.elem_count();
        let dg = both.narrow(0, 0, n)?.reshape(g.shape())?;
        let du = both.narrow(0, n, n)?.reshape(u.shape())?;
        Ok((Some(dg), Some(du)))
    }
}

/// `dgate = dy · up · silu'(gate)` and `dup = dy · silu(gate)`, one after the other, with
/// `silu'(g) = σ(g) · (1 + g · (1 − σ(g)))`.
struct SwiGluBackward {
    dy: Tensor,
}

impl SwiGluBackward {
    fn run<T: Real>(
        &self,
        gs: &CpuStorage,
        gl: &Layout,
        us: &CpuStorage,
        ul: &Layout,
    ) -> Result<(CpuStorage, Shape)> {
        let g = slice::<T>(gs, gl, "swiglu backward")?;
        let u = slice::<T>(us, ul, "swiglu backward")?;
        let (dys, dyl) = self.dy.storage_and_layout();
        let candle_core::Storage::Cpu(dys) = &*dys else {
            candle_core::bail!("swiglu backward: CPU tensors only");
        };
        let dy = slice::<T>(dys, dyl, "swiglu backward")?;
        if g.len() != u.len() || g.len() != dy.len() {
            candle_core::bail!("swiglu backward: gate, up and gradient sizes differ");
        }
        let mut out = uninit::<T>(2 * g.len());
        let (dg, du) = out.split_at_mut(g.len());
        dg.par_chunks_mut(4096)
            .zip(du.par_chunks_mut(4096))
            .zip(
                g.par_chunks(4096)
                    .zip(u.par_chunks(4096))
                    .zip(dy.par_chunks(4096)),
            )
            .for_each(|((dg, du), ((g, u), dy))| {
                let n = g.len();
                let (dg, du, u, dy) = (&mut dg[..n], &mut du[..n], &u[..n], &dy[..n]);
                for i in 0..n {
                    let s = sigmoid(g[i]);
                    let silu = g[i] * s;
                    du[i].write(dy[i] * silu);
                    dg[i].write(dy[i] * u[i] * s * (T::one() + g[i] * (T::one() - s)));
                }
            });
        // SAFETY: `g`, `u` and `dy` have one length (checked above), so both halves are written
        // in full.
        let out = unsafe { assume_init(out) };
        let n = out.len();
        Ok((T::to_cpu_storage_owned(out), Shape::from(n)))
    }
}

impl CustomOp2 for SwiGluBackward {
    fn name(&self) -> &'static str {
        "swiglu-backward"
    }
    fn cpu_fwd(
        &self,
        gs: &CpuStorage,
        gl: &Layout,
        us: &CpuStorage,
        ul: &Layout,
    ) -> Result<(CpuStorage, Shape)> {
        dispatch!("swiglu backward", gs, self.run(gs, gl, us, ul))
    }
}

/// The gated activation of a llama MLP, `silu(gate) · up`, differentiable in both; one pass
/// each way, and the graph keeps no `silu(gate)` tensor.
pub fn swiglu(gate: &Tensor, up: &Tensor) -> Result<Tensor> {
    gate.contiguous()?.apply_op2(&up.contiguous()?, SwiGlu)
}

// ---------------------------------------------------------------------------------------------
// Rotary embeddings
// ---------------------------------------------------------------------------------------------

/// Half-split rotary embedding of `(batch, heads, seq, head_dim)` with frozen tables of shape
/// `(seq, head_dim/2)` (shared by every row) or `(batch, seq, head_dim/2)`. The backward pass is
/// the inverse rotation.
struct Rope {
    cos: Tensor,
    sin: Tensor,
    inverse: bool,
}

impl Rope {
    fn fwd<T: Real>(&self, s: &CpuStorage, l: &Layout) -> Result<(CpuStorage, Shape)> {
        let (b, h, t, d) = l.shape().dims4()?;
        // Any layout with contiguous rows of `head_dim`: the heads of a projection come in as a
        // transposed view, and reading them in place saves a copy that the graph would keep.
        let [sb, sh, st, sd] = *l.stride() else {
            candle_core::bail!("rope: input of shape {:?}", l.shape());
        };
        if sd != 1 && d > 1 {
            candle_core::bail!("rope: head_dim values are not contiguous");
        }
        let all = T::cpu_storage_as_slice(s)?;
        let last =
            l.start_offset() + (b.max(1) - 1) * sb + (h.max(1) - 1) * sh + (t.max(1) - 1) * st + d;
        if all.len() < last {
            candle_core::bail!("rope: input layout reaches past its storage");
        }
        let d2 = d / 2;
        let cos = values::<T>(&self.cos)?;
        let sin = values::<T>(&self.sin)?;
        let per_row = match self.cos.rank() {
            2 => false,
            3 => true,
            r => candle_core::bail!("rope: tables of rank {r}"),
        };
        let want = if per_row { b * t * d2 } else { t * d2 };
        if cos.len() != want || sin.len() != want || d % 2 != 0 {
            candle_core::bail!(
                "rope: tables do not match an input of shape {:?}",
                l.shape()
            );
        }
        let mut y = vec![T::zero(); b * h * t * d];
        if y.is_empty() {
            return Ok((T::to_cpu_storage_owned(y), l.shape().clone()));
        }
        y.par_chunks_mut(d).enumerate().for_each(|(row, y)| {
            let pos = row % t;
            let bi = row / (h * t);
            let hi = (row / t) % h;
            let from = l.start_offset() + bi * sb + hi * sh + pos * st;
            let x = &all[from..from + d];
            let at = if per_row {
                (bi * t + pos) * d2
            } else {
                pos * d2
            };
            let (c, s) = (&cos[at..at + d2], &sin[at..at + d2]);
            for i in 0..d2 {
                let (x1, x2) = (x[i], x[i + d2]);
                let (c, s) = (c[i], s[i]);
                if self.inverse {
                    y[i] = x1 * c + x2 * s;
                    y[i + d2] = x2 * c - x1 * s;
                } else {
                    y[i] = x1 * c - x2 * s;
                    y[i + d2] = x2 * c + x1 * s;
                }
            }
        });
        Ok((T::to_cpu_storage_owned(y), l.shape().clone()))
    }
}

impl CustomOp1 for Rope {
    fn name(&self) -> &'static str {
        "rope-grad"
    }
    fn cpu_fwd(&self, s: &CpuStorage, l: &Layout) -> Result<(CpuStorage, Shape)> {
        dispatch!("rope", s, self.fwd(s, l))
    }
    fn bwd(&self, _x: &Tensor, _y: &Tensor, dy: &Tensor) -> Result<Option<Tensor>> {
        let inv = Rope {
            cos: self.cos.clone(),
            sin: self.sin.clone(),
            inverse: !self.inverse,
        };
        Ok(Some(dy.contiguous()?.apply_op1_no_bwd(&inv)?))
    }
}

/// Rotary embedding (Hugging Face half-split layout) of `x`: `(batch, heads, seq, head_dim)`;
/// `cos`/`sin`: `(seq, head_dim/2)` or `(batch, seq, head_dim/2)`. Differentiable in `x`.
pub fn rope(x: &Tensor, cos: &Tensor, sin: &Tensor) -> Result<Tensor> {
    let x = if x.rank() == 4 && x.stride()[3] == 1 {
        x.clone()
    } else {
        x.contiguous()?
    };
    x.apply_op1(Rope {
        cos: cos.clone(),
        sin: sin.clone(),
        inverse: false,
    })
}

// ---------------------------------------------------------------------------------------------
// Masked attention softmax
// ---------------------------------------------------------------------------------------------

/// Which keys a query row may see: causal, shifted by the cached length, and blind to each
/// batch row's padding (a padding query sees itself only, so no row is empty).
///
/// Row `b`'s padding is the `pad[b]` positions from `pad_at` on: `pad_at = 0` is plain left
/// padding; a shared prompt prefix computed once puts the padding after the prefix instead.
#[derive(Debug, Clone, Default)]
pub struct AttentionMask {
    /// Query rows per (batch, head) block that repeat the same `seq` positions (grouped heads).
    pub seq: usize,
    /// Keys already cached before the first query.
    pub offset: usize,
    /// Padding per batch row (empty: none).
    pub pad: Vec<usize>,
    /// Position where every row's padding starts.
    pub pad_at: usize,
}

impl AttentionMask {
    /// The keys that query `i` of batch row `b` attends to: two half-open ranges, before and
    /// after the row's padding (either may be empty).
    pub(crate) fn segments(&self, b: usize, i: usize) -> [std::ops::Range<usize>; 2] {
        let q = self.offset + i;
        let p = self.pad.get(b).copied().unwrap_or(0);
        let (start, end) = (self.pad_at, self.pad_at + p);
        if (start..end).contains(&q) {
            [q..q + 1, 0..0]
        } else if q < start {
            [0..q + 1, 0..0]
        } else {
            [0..start, end..q + 1]
        }
    }

    /// Whether query `i` of batch row `b` attends to key `j`.
    pub(crate) fn allows(&self, b: usize, i: usize, j: usize) -> bool {
        self.segments(b, i).iter().any(|s| s.contains(&j))
    }

    /// The rotary position of query `i` of batch row `b`: its index with the row's padding
    /// skipped (a padding token's own position is never seen by anything).
    pub(crate) fn position(&self, b: usize, i: usize) -> usize {
        let q = self.offset + i;
        let p = self.pad.get(b).copied().unwrap_or(0);
        if q < self.pad_at {
            q
        } else {
            self.pad_at + (q - self.pad_at).saturating_sub(p)
        }
    }

    /// Whether the mask describes `rows` query rows (whole repeats of `seq`) over `keys` keys.
    pub(crate) fn fits(&self, rows: usize, keys: usize) -> bool {
        self.seq > 0 && rows.is_multiple_of(self.seq) && self.offset + self.seq <= keys
    }
}

/// `softmax(scale · scores + mask)` over the last axis of `(batch, heads, rows, keys)` scores,
/// where `rows` repeats `mask.seq` query positions; masked probabilities are exactly zero.
struct MaskedSoftmax {
    scale: f64,
    mask: AttentionMask,
}

impl MaskedSoftmax {
    fn dims(&self, shape: &Shape) -> Result<(usize, usize, usize)> {
        let (_, h, rows, keys) = shape.dims4()?;
        if !self.mask.fits(rows, keys) {
            candle_core::bail!("masked softmax: mask does not fit scores of shape {shape:?}");
        }
        Ok((h * rows, rows, keys))
    }

    fn fwd<T: Real>(&self, s: &CpuStorage, l: &Layout) -> Result<(CpuStorage, Shape)> {
        let x = slice::<T>(s, l, "masked softmax")?;
        let (per_batch, rows, keys) = self.dims(l.shape())?;
        let scale = T::cast(self.scale);
        let mut y = vec![T::zero(); x.len()];
        y.par_chunks_mut(keys)
            .zip(x.par_chunks(keys))
            .enumerate()
            .for_each(|(r, (y, x))| {
                let segs = self
                    .mask
                    .segments(r / per_batch, (r % rows) % self.mask.seq);
                let keys = || segs.iter().flat_map(|s| s.clone());
                let max = keys().fold(
                    T::cast(f64::NEG_INFINITY),
                    |m, j| {
                        if x[j] > m {
                            x[j]
                        } else {
                            m
                        }
                    },
                );
                let mut sum = T::zero();
                for j in keys() {
                    y[j] = ((x[j] - max) * scale).exp();
                    sum += y[j];
                }
                let inv = T::one() / sum;
                for j in keys() {
                    y[j] *= inv;
                }
            });
        Ok((T::to_cpu_storage_owned(y), l.shape().clone()))
    }
}

impl CustomOp1 for MaskedSoftmax {
    fn name(&self) -> &'static str {
        "masked-softmax-grad"
    }
    fn cpu_fwd(&self, s: &CpuStorage, l: &Layout) -> Result<(CpuStorage, Shape)> {
        dispatch!("masked softmax", s, self.fwd(s, l))
    }
    fn bwd(&self, _x: &Tensor, p: &Tensor, dp: &Tensor) -> Result<Option<Tensor>> {
        let op = SoftmaxBackward { scale: self.scale };
        Ok(Some(
            p.contiguous()?.apply_op2_no_bwd(&dp.contiguous()?, &op)?,
        ))
    }
}

/// `dx = scale · p · (dp − Σ p·dp)` per row (masked entries have `p = 0`, hence `dx = 0`).
struct SoftmaxBackward {
    scale: f64,
}

impl SoftmaxBackward {
    fn run<T: Real>(
        &self,
        ps: &CpuStorage,
        pl: &Layout,
        gs: &CpuStorage,
        gl: &Layout,
    ) -> Result<(CpuStorage, Shape)> {
        let p = slice::<T>(ps, pl, "softmax backward")?;
        let dp = slice::<T>(gs, gl, "softmax backward")?;
        let keys = pl.shape().dims().last().copied().unwrap_or(1).max(1);
        let scale = T::cast(self.scale);
        let mut dx = vec![T::zero(); p.len()];
        dx.par_chunks_mut(keys)
            .zip(p.par_chunks(keys).zip(dp.par_chunks(keys)))
            .for_each(|(dx, (p, dp))| {
                let dot = p.iter().zip(dp).fold(T::zero(), |a, (&p, &g)| a + p * g);
                for ((dx, &p), &g) in dx.iter_mut().zip(p).zip(dp) {
                    *dx = scale * p * (g - dot);
                }
            });
        Ok((T::to_cpu_storage_owned(dx), pl.shape().clone()))
    }
}

impl CustomOp2 for SoftmaxBackward {
    fn name(&self) -> &'static str {
        "softmax-backward"
    }
    fn cpu_fwd(
        &self,
        ps: &CpuStorage,
        pl: &Layout,
        gs: &CpuStorage,
        gl: &Layout,
    ) -> Result<(CpuStorage, Shape)> {
        dispatch!("softmax backward", ps, self.run(ps, pl, gs, gl))
    }
}

/// Attention probabilities from raw `q·kᵀ` scores `(batch, heads, rows, keys)`:
/// `softmax(scale · scores)` under `mask`, differentiable in the scores.
pub fn masked_softmax(scores: &Tensor, scale: f64, mask: AttentionMask) -> Result<Tensor> {
    scores
        .contiguous()?
        .apply_op1(MaskedSoftmax { scale, mask })
}

// ---------------------------------------------------------------------------------------------
// Cross-entropy
// ---------------------------------------------------------------------------------------------

/// Per-row `logsumexp(logits) − logits[target]` of `(rows, vocab)` logits.
struct CrossEntropy {
    targets: Vec<u32>,
}

impl CrossEntropy {
    fn check(&self, shape: &Shape) -> Result<(usize, usize)> {
        let (n, v) = shape.dims2()?;
        if n != self.targets.len() {
            candle_core::bail!("cross-entropy: {n} rows, {} targets", self.targets.len());
        }
        if let Some(t) = self.targets.iter().find(|&&t| t as usize >= v) {
            candle_core::bail!("cross-entropy: target {t} outside a vocabulary of {v}");
        }
        Ok((n, v))
    }

    fn fwd<T: Real>(&self, s: &CpuStorage, l: &Layout) -> Result<(CpuStorage, Shape)> {
        let x = slice::<T>(s, l, "cross-entropy")?;
        let (n, v) = self.check(l.shape())?;
        let mut loss = vec![T::zero(); n];
        loss.par_iter_mut()
            .zip(x.par_chunks(v).zip(self.targets.par_iter()))
            .for_each(|(loss, (x, &t))| {
                *loss = log_sum_exp(x) - x[t as usize];
            });
        Ok((T::to_cpu_storage_owned(loss), Shape::from(n)))
    }
}

fn log_sum_exp<T: Real>(x: &[T]) -> T {
    let max = x.iter().fold(x[0], |m, &v| if v > m { v } else { m });
    let sum = crate::vector_math::sum_exp_f64(x, max);
    max + T::cast(sum.ln())
}

impl CustomOp1 for CrossEntropy {
    fn name(&self) -> &'static str {
        "cross-entropy-grad"
    }
    fn cpu_fwd(&self, s: &CpuStorage, l: &Layout) -> Result<(CpuStorage, Shape)> {
        dispatch!("cross-entropy", s, self.fwd(s, l))
    }
    fn bwd(&self, logits: &Tensor, _loss: &Tensor, dloss: &Tensor) -> Result<Option<Tensor>> {
        let op = CrossEntropyBackward {
            targets: self.targets.clone(),
        };
        Ok(Some(logits.apply_op2_no_bwd(&dloss.contiguous()?, &op)?))
    }
}

/// `dlogits = (softmax(logits) − onehot(target)) · dloss` per row.
struct CrossEntropyBackward {
    targets: Vec<u32>,
}

impl CrossEntropyBackward {
    fn run<T: Real>(
        &self,
        xs: &CpuStorage,
        xl: &Layout,
        gs: &CpuStorage,
        gl: &Layout,
    ) -> Result<(CpuStorage, Shape)> {
        let x = slice::<T>(xs, xl, "cross-entropy backward")?;
        let g = slice::<T>(gs, gl, "cross-entropy backward")?;
        let (n, v) = xl.shape().dims2()?;
        if g.len() != n || self.targets.len() != n {
            candle_core::bail!("cross-entropy backward: shapes do not match");
        }
        let mut dx = uninit::<T>(x.len());
        dx.par_chunks_mut(v)
            .zip(x.par_chunks(v))
            .zip(g.par_iter().zip(self.targets.par_iter()))
            .for_each(|((dx, x), (&g, &t))| {
                let lse = log_sum_exp(x);
                for (dx, &x) in dx.iter_mut().zip(x) {
                    dx.write((x - lse).exp() * g);
                }
                // SAFETY: the row was written in full just above.
                let dx = unsafe { written(dx) };
                dx[t as usize] -= g;
            });
        // SAFETY: `x` is `n` rows of `v` (its layout's shape), one for each gradient and target
        // (checked above), all written.
        let dx = unsafe { assume_init(dx) };
        Ok((T::to_cpu_storage_owned(dx), xl.shape().clone()))
    }
}

impl CustomOp2 for CrossEntropyBackward {
    fn name(&self) -> &'static str {
        "cross-entropy-backward"
    }
    fn cpu_fwd(
        &self,
        xs: &CpuStorage,
        xl: &Layout,
        gs: &CpuStorage,
        gl: &Layout,
    ) -> Result<(CpuStorage, Shape)> {
        dispatch!("cross-entropy backward", xs, self.run(xs, xl, gs, gl))
    }
}

/// Per-row cross-entropy `(rows,)` of `(rows, vocab)` logits against `targets`, differentiable
/// in the logits.
pub fn cross_entropy(logits: &Tensor, targets: &[u32]) -> Result<Tensor> {
    logits.contiguous()?.apply_op1(CrossEntropy {
        targets: targets.to_vec(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use candle_core::{Device, Var, D};

    /// Value and input gradient of `sum(f(x) · up)` for a fused and a reference implementation.
    fn check(
        x0: &Tensor,
        fused: impl Fn(&Tensor) -> Result<Tensor>,
        reference: impl Fn(&Tensor) -> Result<Tensor>,
    ) -> Result<()> {
        let xa = Var::from_tensor(x0)?;
        let ya = fused(xa.as_tensor())?;
        let up = Tensor::randn(0f64, 1., ya.shape(), x0.device())?.to_dtype(x0.dtype())?;
        let ga = (&ya * &up)?.sum_all()?.backward()?;
        let xb = Var::from_tensor(x0)?;
        let yb = reference(xb.as_tensor())?;
        let gb = (&yb * &up)?.sum_all()?.backward()?;
        let tol = if x0.dtype() == DType::F64 {
            1e-10
        } else {
            1e-4
        };
        let diff = (&ya - &yb)?.abs()?.max_all()?.to_dtype(DType::F64)?;
        assert!(diff.to_scalar::<f64>()? < tol, "forward differs by {diff}");
        let (Some(da), Some(db)) = (ga.get(xa.as_tensor()), gb.get(xb.as_tensor())) else {
            panic!("no gradient");
        };
        let diff = (da - db)?.abs()?.max_all()?.to_dtype(DType::F64)?;
        assert!(diff.to_scalar::<f64>()? < tol, "gradient differs by {diff}");
        Ok(())
    }

    fn randn(shape: &[usize], dtype: DType) -> Result<Tensor> {
        Tensor::randn(0f64, 1., shape, &Device::Cpu)?.to_dtype(dtype)
    }

    #[test]
    fn rms_norm_matches_primitive_ops() -> Result<()> {
        for dtype in [DType::F32, DType::F64] {
            let w = randn(&[8], dtype)?;
            let x = randn(&[2, 3, 8], dtype)?;
            check(
                &x,
                |x| rms_norm(x, &w, 1e-5),
                |x| {
                    let ms = x.sqr()?.mean_keepdim(D::Minus1)?;
                    x.broadcast_div(&(ms + 1e-5)?.sqrt()?)?.broadcast_mul(&w)
                },
            )?;
        }
        Ok(())
    }

    #[test]
    fn swiglu_matches_primitive_ops_in_both_inputs() -> Result<()> {
        for dtype in [DType::F32, DType::F64] {
            let up = randn(&[3, 5, 16], dtype)?;
            let gate = randn(&[3, 5, 16], dtype)?;
            // Gradient in the gate, then in `up`.
            check(&gate, |g| swiglu(g, &up), |g| g.silu()? * &up)?;
            check(&up, |u| swiglu(&gate, u), |u| gate.silu()? * u)?;
        }
        Ok(())
    }

    #[test]
    fn rope_matches_primitive_ops_with_shared_and_per_row_tables() -> Result<()> {
        let (b, h, t, d) = (2, 3, 5, 8);
        for per_row in [false, true] {
            let tshape: Vec<usize> = if per_row {
                vec![b, t, d / 2]
            } else {
                vec![t, d / 2]
            };
            let cos = randn(&tshape, DType::F64)?;
            let sin = randn(&tshape, DType::F64)?;
            let x = randn(&[b, h, t, d], DType::F64)?;
            let full = |c: &Tensor| -> Result<Tensor> {
                let c = Tensor::cat(&[c, c], D::Minus1)?;
                if per_row {
                    c.reshape((b, 1, t, d))
                } else {
                    c.reshape((1, 1, t, d))
                }
            };
            let (cf, sf) = (full(&cos)?, full(&sin)?);
            let reference = |x: &Tensor| -> Result<Tensor> {
                let x1 = x.narrow(D::Minus1, 0, d / 2)?;
                let x2 = x.narrow(D::Minus1, d / 2, d / 2)?;
                let rot = Tensor::cat(&[&x2.neg()?, &x1], D::Minus1)?;
                x.broadcast_mul(&cf)? + rot.broadcast_mul(&sf)?
            };
            check(&x, |x| rope(x, &cos, &sin), reference)?;
            // The heads of a projection, `(batch, seq, heads, head_dim)` seen transposed: read
            // in place, same values and gradient.
            let xt = randn(&[b, t, h, d], DType::F64)?;
            check(
                &xt,
                |x| rope(&x.transpose(1, 2)?, &cos, &sin),
                |x| reference(&x.transpose(1, 2)?),
            )?;
        }
        Ok(())
    }

    #[test]
    fn masked_softmax_matches_additive_mask() -> Result<()> {
        // Two batch rows (the second left-padded by 2), 2 heads, 2 grouped query blocks of 3
        // positions each, after 1 cached key.
        let (b, h, seq, offset) = (2, 2, 3, 1);
        let (rows, keys) = (2 * seq, offset + seq);
        let mask = AttentionMask {
            seq,
            offset,
            pad: vec![0, 2],
            pad_at: 0,
        };
        let mut m = vec![0f64; b * rows * keys];
        for bi in 0..b {
            for r in 0..rows {
                for j in 0..keys {
                    if !mask.allows(bi, r % seq, j) {
                        m[(bi * rows + r) * keys + j] = -1e30;
                    }
                }
            }
        }
        let m = Tensor::from_vec(m, (b, 1, rows, keys), &Device::Cpu)?;
        let x = randn(&[b, h, rows, keys], DType::F64)?;
        check(
            &x,
            |x| masked_softmax(x, 0.5, mask.clone()),
            |x| {
                let s = (x * 0.5)?.broadcast_add(&m)?;
                let max = s.max_keepdim(D::Minus1)?.detach();
                let e = s.broadcast_sub(&max)?.exp()?;
                e.broadcast_div(&e.sum_keepdim(D::Minus1)?)
            },
        )
    }

    #[test]
    fn cross_entropy_matches_log_softmax() -> Result<()> {
        let targets = [3u32, 0, 6, 6];
        let x = randn(&[4, 7], DType::F64)?;
        let t = Tensor::new(&targets, &Device::Cpu)?.reshape((4, 1))?;
        check(
            &x,
            |x| cross_entropy(x, &targets),
            |x| {
                let max = x.max_keepdim(D::Minus1)?.detach();
                let s = x.broadcast_sub(&max)?;
                let lse = s.exp()?.sum_keepdim(D::Minus1)?.log()?;
                (lse - s.gather(&t, D::Minus1)?)?.squeeze(1)
            },
        )?;
        assert!(cross_entropy(&x, &[9, 0, 0, 0]).is_err());
        Ok(())
    }
}
