//! Attention for training as one op: `softmax(scale · q·kᵀ + mask) · v` forward and its three
//! gradients backward, without keeping a layer's score or probability matrices.
//!
//! Composed of two matmuls and a softmax, attention keeps its `(rows × keys)` scores and
//! probabilities in the graph until the backward pass: for SmolLM2 at batch 4 × 512 tokens that
//! is 75 MB a layer, 2.3 GB over 30 layers, written and read again by several passes. Here the
//! forward pass works through blocks of query rows and keeps only its output; the backward pass
//! recomputes a block's probabilities (one more `q·kᵀ` product) right where it needs them. A
//! block also stops at the last key any of its rows may see, so the causal half of the products
//! is never computed.
//!
//! CPU only, f32 and f64, like the other kernels of [`crate::fused_grad`].

use std::mem::MaybeUninit;
use std::ops::Range;

use candle_core::{CpuStorage, CustomOp3, Layout, Result, Shape, Storage, Tensor};
use rayon::prelude::*;

use crate::cpu_gemm::{matmul, matmul_uninit, rows_of, transposed, Threads};
use crate::fused_grad::{assume_init, dispatch, slice, uninit, AttentionMask, Real};
use crate::vector_math;

/// Query rows per task. Small enough that causal blocks skip most hidden keys and that two
/// cores share even a single sequence's heads; large enough for the matmuls to run near peak.
const BLOCK: usize = 64;

/// `softmax(scale · q·kᵀ)` under `mask`, times `v`, differentiable in `q`, `k` and `v`.
///
/// `q`: `(batch, kv_heads, rows, head_dim)` where `rows` repeats `mask.seq` query positions
/// (the query heads that share a kv head, folded into rows); `k`, `v`:
/// `(batch, kv_heads, keys, head_dim)`. Returns `(batch, seq, heads · head_dim)`, the layout the
/// output projection reads, so that no transposed copy of it enters the graph.
pub fn attention(
    q: &Tensor,
    k: &Tensor,
    v: &Tensor,
    scale: f64,
    mask: AttentionMask,
) -> Result<Tensor> {
    let op = FusedAttention { scale, mask };
    q.contiguous()?
        .apply_op3(&k.contiguous()?, &v.contiguous()?, op)
}

/// Sizes shared by the forward and backward passes.
struct Dims {
    /// kv heads per batch row.
    heads: usize,
    rows: usize,
    keys: usize,
    hd: usize,
}

impl Dims {
    fn of(mask: &AttentionMask, q: &Shape, k: &Shape, v: &Shape) -> Result<Self> {
        let (b, h, rows, hd) = q.dims4()?;
        let kd = k.dims4()?;
        if kd != v.dims4()? || kd.0 != b || kd.1 != h || kd.3 != hd {
            candle_core::bail!("fused attention: q {q:?}, k {k:?} and v {v:?} do not match");
        }
        if !mask.fits(rows, kd.2) {
            candle_core::bail!(
                "fused attention: mask does not fit {rows} rows over {} keys",
                kd.2
            );
        }
        Ok(Self {
            heads: h,
            rows,
            keys: kd.2,
            hd,
        })
    }
}

/// The probabilities of one block of query rows over keys `..width`, row-major `(n, width)`,
/// where `width` is the last key any row of the block sees; masked entries are exactly zero.
struct Block<T> {
    p: Vec<T>,
    width: usize,
}

/// Recomputes (or computes) the probabilities of rows `r0..` of `pair` whose queries are `q`.
fn probabilities<T: Real>(
    mask: &AttentionMask,
    d: &Dims,
    scale: T,
    pair: usize,
    r0: usize,
    q: &[T],
    k: &[T],
) -> Block<T> {
    let n = q.len() / d.hd;
    let batch = pair / d.heads;
    let segments: Vec<[Range<usize>; 2]> = (r0..r0 + n)
        .map(|r| mask.segments(batch, r % mask.seq))
        .collect();
    let width = segments
        .iter()
        .flat_map(|s| s.iter().map(|r| r.end))
        .max()
        .unwrap_or(0)
        .min(d.keys);
    let mut p = uninit::<T>(n * width);
    matmul_uninit(
        Threads::One,
        (n, width, d.hd),
        &mut p,
        rows_of(q, d.hd),
        transposed(k, d.hd),
        scale,
    );
    // SAFETY: the product wrote all `n × width` values.
    let mut p = unsafe { assume_init(p) };
    if width == 0 {
        return Block { p, width };
    }
    for (row, segs) in p.chunks_mut(width).zip(&segments) {
        let seen = || segs.iter().flat_map(|s| s.clone());
        let max = seen().fold(T::cast(f64::NEG_INFINITY), |m, j| {
            if row[j] > m {
                row[j]
            } else {
                m
            }
        });
        let mut hidden_from = 0;
        for s in segs.iter().filter(|s| !s.is_empty()) {
            row[hidden_from..s.start].fill(T::zero());
            hidden_from = s.end;
        }
        row[hidden_from..].fill(T::zero());
        let mut sum = T::zero();
        for s in segs {
            sum += vector_math::exp_shifted_sum(&mut row[s.clone()], max);
        }
        let inv = T::one() / sum;
        for s in segs {
            for p in &mut row[s.clone()] {
                *p *= inv;
            }
        }
    }
    Block { p, width }
}

#[derive(Clone)]
struct FusedAttention {
    scale: f64,
    mask: AttentionMask,
}

impl FusedAttention {
    #[allow(clippy::too_many_arguments)]
    fn fwd<T: Real>(
        &self,
        qs: &CpuStorage,
        ql: &Layout,
        ks: &CpuStorage,
        kl: &Layout,
        vs: &CpuStorage,
        vl: &Layout,
    ) -> Result<(CpuStorage, Shape)> {
        let d = Dims::of(&self.mask, ql.shape(), kl.shape(), vl.shape())?;
        let (q, k, v) = (
            slice::<T>(qs, ql, "fused attention")?,
            slice::<T>(ks, kl, "fused attention")?,
            slice::<T>(vs, vl, "fused attention")?,
        );
        let (y, shape) = forward_heads(self.scale, &self.mask, &d, q, k, v);
        Ok((T::to_cpu_storage_owned(y), shape))
    }
}

/// The forward pass over `q`, `k`, `v` in the kernels' head layout (see [`attention`]):
/// the output in token layout `(batch, seq, heads · head_dim)`.
fn forward_heads<T: Real>(
    scale: f64,
    mask: &AttentionMask,
    d: &Dims,
    q: &[T],
    k: &[T],
    v: &[T],
) -> (Vec<T>, Shape) {
    let (rows, keys, hd) = (d.rows, d.keys, d.hd);
    let scale = T::cast(scale);
    let (seq, heads) = (mask.seq, d.heads * rows / mask.seq);
    let shape = Shape::from((q.len() / (heads * seq * hd).max(1), seq, heads * hd));
    if q.is_empty() {
        return (Vec::new(), shape);
    }
    let mut y = uninit::<T>(q.len());
    y.par_chunks_mut(rows * hd)
        .enumerate()
        .for_each(|(pair, y)| {
            let (q, k, v) = (
                &q[pair * rows * hd..][..rows * hd],
                &k[pair * keys * hd..][..keys * hd],
                &v[pair * keys * hd..][..keys * hd],
            );
            y.par_chunks_mut(BLOCK * hd)
                .enumerate()
                .for_each(|(blk, y)| {
                    let r0 = blk * BLOCK;
                    let n = y.len() / hd;
                    let qb = &q[r0 * hd..(r0 + n) * hd];
                    let b = probabilities(mask, d, scale, pair, r0, qb, k);
                    matmul_uninit(
                        Threads::One,
                        (n, hd, b.width),
                        y,
                        rows_of(&b.p, b.width),
                        rows_of(v, hd),
                        T::one(),
                    );
                });
        });
    // SAFETY: `q` is whole pairs of `rows × hd` (its layout's shape), and every block of every
    // pair was written by its product.
    let y = unsafe { assume_init(y) };
    (heads_to_tokens(&y, heads, seq, hd), shape)
}

/// `(batch, heads, seq, head_dim)` → `(batch, seq, heads, head_dim)`. The kernels' rows of kv
/// head `g` are query heads `g · group ..` one after the other, so their layout is the former.
fn heads_to_tokens<T: Real>(x: &[T], heads: usize, seq: usize, hd: usize) -> Vec<T> {
    if x.is_empty() {
        return Vec::new();
    }
    let mut out = uninit::<T>(x.len());
    out.par_chunks_mut(heads * hd)
        .enumerate()
        .for_each(|(token, out)| {
            let (b, i) = (token / seq, token % seq);
            for (h, out) in out.chunks_mut(hd).enumerate() {
                let from = ((b * heads + h) * seq + i) * hd;
                copy_into(out, &x[from..from + hd]);
            }
        });
    // SAFETY: `x` is whole tokens of `heads × hd`, each copied in full.
    unsafe { assume_init(out) }
}

/// `out = src`, element for element, into an [`uninit`] output.
fn copy_into<T: Copy>(out: &mut [MaybeUninit<T>], src: &[T]) {
    assert_eq!(out.len(), src.len(), "copy_into: lengths differ");
    for (o, &v) in out.iter_mut().zip(src) {
        o.write(v);
    }
}

/// `(batch, seq, heads, head_dim)` → `(batch, heads, seq, head_dim)`, the inverse of
/// [`heads_to_tokens`].
fn tokens_to_heads<T: Real>(x: &[T], heads: usize, seq: usize, hd: usize) -> Vec<T> {
    if x.is_empty() {
        return Vec::new();
    }
    let mut out = uninit::<T>(x.len());
    out.par_chunks_mut(hd).enumerate().for_each(|(row, out)| {
        let (b, h, i) = (row / (heads * seq), (row / seq) % heads, row % seq);
        let from = ((b * seq + i) * heads + h) * hd;
        copy_into(out, &x[from..from + hd]);
    });
    // SAFETY: `x` is whole rows of `hd`, each copied in full.
    unsafe { assume_init(out) }
}

impl CustomOp3 for FusedAttention {
    fn name(&self) -> &'static str {
        "fused-attention"
    }

    fn cpu_fwd(
        &self,
        qs: &CpuStorage,
        ql: &Layout,
        ks: &CpuStorage,
        kl: &Layout,
        vs: &CpuStorage,
        vl: &Layout,
    ) -> Result<(CpuStorage, Shape)> {
        dispatch!("fused attention", qs, self.fwd(qs, ql, ks, kl, vs, vl))
    }

    fn bwd(
        &self,
        q: &Tensor,
        k: &Tensor,
        v: &Tensor,
        _y: &Tensor,
        dy: &Tensor,
    ) -> Result<(Option<Tensor>, Option<Tensor>, Option<Tensor>)> {
        let op = FusedAttentionBackward {
            scale: self.scale,
            mask: self.mask.clone(),
            dy: dy.contiguous()?,
        };
        three_gradients(q, k, v, &op)
    }
}

/// Runs a backward op that writes `dq`, `dk` and `dv` one after the other and splits them into
/// the shapes of `q`, `k` and `v`.
fn three_gradients(
    q: &Tensor,
    k: &Tensor,
    v: &Tensor,
    op: &impl CustomOp3,
) -> Result<(Option<Tensor>, Option<Tensor>, Option<Tensor>)> {
    let (q, k, v) = (q.contiguous()?, k.contiguous()?, v.contiguous()?);
    let all = q.apply_op3_no_bwd(&k, &v, op)?;
    let (nq, nk) = (q.elem_count(), k.elem_count());
    let dq = all.narrow(0, 0, nq)?.reshape(q.shape())?;
    let dk = all.narrow(0, nq, nk)?.reshape(k.shape())?;
    let dv = all.narrow(0, nq + nk, nk)?.reshape(v.shape())?;
    Ok((Some(dq), Some(dk), Some(dv)))
}

/// `dq`, `dk` and `dv` for an upstream gradient `dy`, flattened one after the other.
struct FusedAttentionBackward {
    scale: f64,
    mask: AttentionMask,
    dy: Tensor,
}

impl FusedAttentionBackward {
    #[allow(clippy::too_many_arguments)]
    fn run<T: Real>(
        &self,
        qs: &CpuStorage,
        ql: &Layout,
        ks: &CpuStorage,
        kl: &Layout,
        vs: &CpuStorage,
        vl: &Layout,
    ) -> Result<(CpuStorage, Shape)> {
        let d = Dims::of(&self.mask, ql.shape(), kl.shape(), vl.shape())?;
        if self.dy.elem_count() != ql.shape().elem_count() {
            candle_core::bail!(
                "fused attention: gradient {:?} does not match the output {:?}",
                self.dy.shape(),
                ql.shape()
            );
        }
        let (q, k, v) = (
            slice::<T>(qs, ql, "fused attention")?,
            slice::<T>(ks, kl, "fused attention")?,
            slice::<T>(vs, vl, "fused attention")?,
        );
        let (dys, dyl) = self.dy.storage_and_layout();
        let Storage::Cpu(dys) = &*dys else {
            candle_core::bail!("fused attention: CPU tensors only");
        };
        let (seq, heads) = (self.mask.seq, d.heads * d.rows / self.mask.seq);
        let dy = tokens_to_heads(slice::<T>(dys, dyl, "fused attention")?, heads, seq, d.hd);
        let out = backward_heads(self.scale, &self.mask, &d, q, k, v, &dy);
        let shape = Shape::from(out.len());
        Ok((T::to_cpu_storage_owned(out), shape))
    }
}

/// The backward pass in the kernels' head layout: `dq`, `dk` and `dv` (each in the layout of
/// its input) one after the other, for an upstream gradient `dy` in head layout.
fn backward_heads<T: Real>(
    scale: f64,
    mask: &AttentionMask,
    d: &Dims,
    q: &[T],
    k: &[T],
    v: &[T],
    dy: &[T],
) -> Vec<T> {
    let (rows, keys, hd) = (d.rows, d.keys, d.hd);
    let scale = T::cast(scale);
    let mut out = vec![T::zero(); q.len() + 2 * k.len()];
    if q.is_empty() || k.is_empty() {
        return out;
    }
    let (dq, dkv) = out.split_at_mut(q.len());
    let (dk, dv) = dkv.split_at_mut(k.len());
    dq.par_chunks_mut(rows * hd)
        .zip(dk.par_chunks_mut(keys * hd))
        .zip(dv.par_chunks_mut(keys * hd))
        .enumerate()
        .for_each(|(pair, ((dq, dk), dv))| {
            let (q, k, v, dy) = (
                &q[pair * rows * hd..][..rows * hd],
                &k[pair * keys * hd..][..keys * hd],
                &v[pair * keys * hd..][..keys * hd],
                &dy[pair * rows * hd..][..rows * hd],
            );
            // Each block's share of dk and dv; summed per pair below.
            let parts: Vec<(usize, Vec<T>, Vec<T>)> = dq
                .par_chunks_mut(BLOCK * hd)
                .enumerate()
                .map(|(blk, dq)| {
                    let r0 = blk * BLOCK;
                    let n = dq.len() / hd;
                    let qb = &q[r0 * hd..(r0 + n) * hd];
                    let dyb = &dy[r0 * hd..(r0 + n) * hd];
                    let Block { p, width } = probabilities(mask, d, scale, pair, r0, qb, k);
                    // dp = dy · vᵀ, then ds = scale · p ⊙ (dp − Σ p·dp), in place.
                    let mut ds = uninit::<T>(n * width);
                    matmul_uninit(
                        Threads::One,
                        (n, width, hd),
                        &mut ds,
                        rows_of(dyb, hd),
                        transposed(v, hd),
                        T::one(),
                    );
                    // SAFETY: the product wrote all `n × width` values.
                    let mut ds = unsafe { assume_init(ds) };
                    if width > 0 {
                        for (ds, p) in ds.chunks_mut(width).zip(p.chunks(width)) {
                            let dot = vector_math::dot(p, ds);
                            for (g, &p) in ds.iter_mut().zip(p) {
                                *g = scale * p * (*g - dot);
                            }
                        }
                    }
                    // dq = ds · k; dk += dsᵀ · q; dv += pᵀ · dy.
                    matmul(
                        Threads::One,
                        (n, hd, width),
                        dq,
                        rows_of(&ds, width),
                        rows_of(k, hd),
                        T::one(),
                    );
                    let mut dk = uninit::<T>(width * hd);
                    matmul_uninit(
                        Threads::One,
                        (width, hd, n),
                        &mut dk,
                        transposed(&ds, width),
                        rows_of(qb, hd),
                        T::one(),
                    );
                    // SAFETY: the product wrote all `width × hd` values.
                    let dk = unsafe { assume_init(dk) };
                    let mut dv = uninit::<T>(width * hd);
                    matmul_uninit(
                        Threads::One,
                        (width, hd, n),
                        &mut dv,
                        transposed(&p, width),
                        rows_of(dyb, hd),
                        T::one(),
                    );
                    // SAFETY: the product wrote all `width × hd` values.
                    let dv = unsafe { assume_init(dv) };
                    (width, dk, dv)
                })
                .collect();
            for (width, pk, pv) in parts {
                for (a, b) in dk[..width * hd].iter_mut().zip(pk) {
                    *a += b;
                }
                for (a, b) in dv[..width * hd].iter_mut().zip(pv) {
                    *a += b;
                }
            }
        });
    out
}

impl CustomOp3 for FusedAttentionBackward {
    fn name(&self) -> &'static str {
        "fused-attention-backward"
    }

    fn cpu_fwd(
        &self,
        qs: &CpuStorage,
        ql: &Layout,
        ks: &CpuStorage,
        kl: &Layout,
        vs: &CpuStorage,
        vl: &Layout,
    ) -> Result<(CpuStorage, Shape)> {
        dispatch!("fused attention", qs, self.run(qs, ql, ks, kl, vs, vl))
    }
}

/// Rotary embedding and the head layout inside the op: [`attention`] for `q`, `k` and `v`
/// straight from their projections, `(batch, seq, heads · head_dim)`, before rope.
///
/// Composed, rope and the head layout put three more tensors in the graph until the backward
/// pass: the rotated `q` and `k` and a head-major copy of `v`, a tenth of a SmolLM2 training
/// step's activations. Here they are rebuilt where they are needed, in the forward pass and
/// again in the backward pass, whose gradients are rotated back. `cos`/`sin`: `(seq,
/// head_dim/2)`, or `(batch, seq, head_dim/2)` for positions that differ per batch row; Hugging
/// Face's half-split rope. Without cached keys (`mask.offset` is 0).
#[allow(clippy::too_many_arguments)]
pub fn rope_attention(
    q: &Tensor,
    k: &Tensor,
    v: &Tensor,
    heads: usize,
    kv_heads: usize,
    cos: &Tensor,
    sin: &Tensor,
    scale: f64,
    mask: AttentionMask,
) -> Result<Tensor> {
    let op = RopeAttention {
        attn: FusedAttention { scale, mask },
        heads,
        kv_heads,
        cos: cos.clone(),
        sin: sin.clone(),
    };
    q.contiguous()?
        .apply_op3(&k.contiguous()?, &v.contiguous()?, op)
}

#[derive(Clone)]
struct RopeAttention {
    attn: FusedAttention,
    heads: usize,
    kv_heads: usize,
    cos: Tensor,
    sin: Tensor,
}

/// The sizes of a [`rope_attention`] call: `(batch, seq, head_dim)` and the kernels' [`Dims`].
fn rope_dims(
    op: &RopeAttention,
    q: &Shape,
    k: &Shape,
    v: &Shape,
) -> Result<(usize, usize, usize, Dims)> {
    let (b, t, qw) = q.dims3()?;
    let (h, kvh) = (op.heads, op.kv_heads);
    let mask = &op.attn.mask;
    if h == 0 || kvh == 0 || h % kvh != 0 || qw % h != 0 {
        candle_core::bail!("rope attention: {h} heads over {kvh} kv heads, q {q:?}");
    }
    let hd = qw / h;
    if k.dims3()? != (b, t, kvh * hd) || v.dims3()? != (b, t, kvh * hd) || hd % 2 != 0 {
        candle_core::bail!("rope attention: q {q:?}, k {k:?} and v {v:?} do not match");
    }
    let rows = h / kvh * t;
    if mask.seq != t || mask.offset != 0 || !mask.fits(rows, t) {
        candle_core::bail!("rope attention: mask does not fit {t} positions without a cache");
    }
    let d = Dims {
        heads: kvh,
        rows,
        keys: t,
        hd,
    };
    Ok((b, t, hd, d))
}

/// The rope tables as values, and whether they hold a row per batch row.
fn rope_tables<T: Real>(op: &RopeAttention, b: usize, t: usize, hd: usize) -> Result<Rotation<T>> {
    let values =
        |x: &Tensor| -> Result<Vec<T>> { x.flatten_all()?.to_dtype(T::DTYPE)?.to_vec1::<T>() };
    let (cos, sin) = (values(&op.cos)?, values(&op.sin)?);
    let per_row = match op.cos.rank() {
        2 => false,
        3 => true,
        r => candle_core::bail!("rope attention: rope tables of rank {r}"),
    };
    let want = if per_row { b * t * hd / 2 } else { t * hd / 2 };
    if cos.len() != want || sin.len() != want {
        candle_core::bail!("rope attention: rope tables do not fit {b} × {t} positions");
    }
    Ok(Rotation {
        cos,
        sin,
        per_row,
        seq: t,
        hd,
    })
}

struct Rotation<T> {
    cos: Vec<T>,
    sin: Vec<T>,
    per_row: bool,
    seq: usize,
    hd: usize,
}

impl<T: Real> Rotation<T> {
    /// Token layout `(batch, seq, heads, head_dim)` → head layout `(batch, heads, seq,
    /// head_dim)`, rotated (`inverse`: by the opposite angle).
    fn to_heads(&self, x: &[T], heads: usize, inverse: bool) -> Vec<T> {
        let mut out = tokens_to_heads(x, heads, self.seq, self.hd);
        self.rotate(&mut out, heads, inverse);
        out
    }

    /// Head layout → token layout, rotated back.
    fn to_tokens(&self, mut x: Vec<T>, heads: usize) -> Vec<T> {
        self.rotate(&mut x, heads, true);
        heads_to_tokens(&x, heads, self.seq, self.hd)
    }

    /// Rotates every row of a head-layout buffer in place.
    fn rotate(&self, x: &mut [T], heads: usize, inverse: bool) {
        let (t, d2) = (self.seq, self.hd / 2);
        if x.is_empty() || d2 == 0 {
            return;
        }
        x.par_chunks_mut(self.hd).enumerate().for_each(|(row, x)| {
            let pos = row % t;
            let b = row / (heads * t);
            let at = if self.per_row {
                (b * t + pos) * d2
            } else {
                pos * d2
            };
            let (c, s) = (&self.cos[at..at + d2], &self.sin[at..at + d2]);
            for i in 0..d2 {
                let (x1, x2) = (x[i], x[i + d2]);
                if inverse {
                    x[i] = x1 * c[i] + x2 * s[i];
                    x[i + d2] = x2 * c[i] - x1 * s[i];
                } else {
                    x[i] = x1 * c[i] - x2 * s[i];
                    x[i + d2] = x2 * c[i] + x1 * s[i];
                }
            }
        });
    }
}

impl RopeAttention {
    /// `q`, `k` (rotated) and `v` in head layout, and the kernels' sizes.
    #[allow(clippy::type_complexity)]
    #[allow(clippy::too_many_arguments)]
    fn heads<T: Real>(
        &self,
        qs: &CpuStorage,
        ql: &Layout,
        ks: &CpuStorage,
        kl: &Layout,
        vs: &CpuStorage,
        vl: &Layout,
    ) -> Result<(Rotation<T>, Dims, [Vec<T>; 3])> {
        let (b, t, hd, d) = rope_dims(self, ql.shape(), kl.shape(), vl.shape())?;
        let rot = rope_tables::<T>(self, b, t, hd)?;
        let q = rot.to_heads(slice::<T>(qs, ql, "rope attention")?, self.heads, false);
        let k = rot.to_heads(slice::<T>(ks, kl, "rope attention")?, self.kv_heads, false);
        let v = tokens_to_heads(slice::<T>(vs, vl, "rope attention")?, self.kv_heads, t, hd);
        Ok((rot, d, [q, k, v]))
    }

    #[allow(clippy::too_many_arguments)]
    fn fwd<T: Real>(
        &self,
        qs: &CpuStorage,
        ql: &Layout,
        ks: &CpuStorage,
        kl: &Layout,
        vs: &CpuStorage,
        vl: &Layout,
    ) -> Result<(CpuStorage, Shape)> {
        let (_, d, [q, k, v]) = self.heads::<T>(qs, ql, ks, kl, vs, vl)?;
        let (y, shape) = forward_heads(self.attn.scale, &self.attn.mask, &d, &q, &k, &v);
        Ok((T::to_cpu_storage_owned(y), shape))
    }
}

impl CustomOp3 for RopeAttention {
    fn name(&self) -> &'static str {
        "rope-attention"
    }

    fn cpu_fwd(
        &self,
        qs: &CpuStorage,
        ql: &Layout,
        ks: &CpuStorage,
        kl: &Layout,
        vs: &CpuStorage,
        vl: &Layout,
    ) -> Result<(CpuStorage, Shape)> {
        dispatch!("rope attention", qs, self.fwd(qs, ql, ks, kl, vs, vl))
    }

    fn bwd(
        &self,
        q: &Tensor,
        k: &Tensor,
        v: &Tensor,
        _y: &Tensor,
        dy: &Tensor,
    ) -> Result<(Option<Tensor>, Option<Tensor>, Option<Tensor>)> {
        let op = RopeAttentionBackward {
            fwd: self.clone(),
            dy: dy.contiguous()?,
        };
        three_gradients(q, k, v, &op)
    }
}

/// `dq`, `dk` and `dv` of [`rope_attention`] in token layout, flattened one after the other.
struct RopeAttentionBackward {
    fwd: RopeAttention,
    dy: Tensor,
}

impl RopeAttentionBackward {
    #[allow(clippy::too_many_arguments)]
    fn run<T: Real>(
        &self,
        qs: &CpuStorage,
        ql: &Layout,
        ks: &CpuStorage,
        kl: &Layout,
        vs: &CpuStorage,
        vl: &Layout,
    ) -> Result<(CpuStorage, Shape)> {
        let (rot, d, [q, k, v]) = self.fwd.heads::<T>(qs, ql, ks, kl, vs, vl)?;
        if self.dy.elem_count() != q.len() {
            candle_core::bail!(
                "rope attention: gradient {:?} does not match the output {:?}",
                self.dy.shape(),
                ql.shape()
            );
        }
        let (dys, dyl) = self.dy.storage_and_layout();
        let Storage::Cpu(dys) = &*dys else {
            candle_core::bail!("rope attention: CPU tensors only");
        };
        let dy = tokens_to_heads(
            slice::<T>(dys, dyl, "rope attention")?,
            self.fwd.heads,
            rot.seq,
            rot.hd,
        );
        let mut all = backward_heads(
            self.fwd.attn.scale,
            &self.fwd.attn.mask,
            &d,
            &q,
            &k,
            &v,
            &dy,
        );
        let dv = all.split_off(q.len() + k.len());
        let dk = all.split_off(q.len());
        let mut out = rot.to_tokens(all, self.fwd.heads);
        out.extend(rot.to_tokens(dk, self.fwd.kv_heads));
        out.extend(heads_to_tokens(&dv, self.fwd.kv_heads, rot.seq, rot.hd));
        let shape = Shape::from(out.len());
        Ok((T::to_cpu_storage_owned(out), shape))
    }
}

impl CustomOp3 for RopeAttentionBackward {
    fn name(&self) -> &'static str {
        "rope-attention-backward"
    }

    fn cpu_fwd(
        &self,
        qs: &CpuStorage,
        ql: &Layout,
        ks: &CpuStorage,
        kl: &Layout,
        vs: &CpuStorage,
        vl: &Layout,
    ) -> Result<(CpuStorage, Shape)> {
        dispatch!("rope attention", qs, self.run(qs, ql, ks, kl, vs, vl))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use candle_core::{DType, Device, Var};

    fn randn(shape: &[usize], dtype: DType) -> Result<Tensor> {
        Tensor::randn(0f64, 1., shape, &Device::Cpu)?.to_dtype(dtype)
    }

    /// The composed reference: `q·kᵀ`, the fused masked softmax, `·v`.
    fn composed(
        q: &Tensor,
        k: &Tensor,
        v: &Tensor,
        scale: f64,
        mask: &AttentionMask,
    ) -> Result<Tensor> {
        let (b, h, rows, hd) = q.dims4()?;
        let scores = q.matmul(&k.t()?)?;
        let y = crate::fused_grad::masked_softmax(&scores, scale, mask.clone())?.matmul(v)?;
        let heads = h * rows / mask.seq;
        y.reshape((b, heads, mask.seq, hd))?
            .transpose(1, 2)?
            .reshape((b, mask.seq, heads * hd))
    }

    /// Output and all three gradients of `sum(attention · up)` against the composed ops.
    fn check(
        b: usize,
        h: usize,
        group: usize,
        mask: AttentionMask,
        keys: usize,
        dtype: DType,
    ) -> Result<()> {
        let (rows, hd) = (group * mask.seq, 8);
        let q0 = randn(&[b, h, rows, hd], dtype)?;
        let k0 = randn(&[b, h, keys, hd], dtype)?;
        let v0 = randn(&[b, h, keys, hd], dtype)?;
        let up = randn(&[b, mask.seq, h * group * hd], dtype)?;
        let run = |f: &dyn Fn(&Tensor, &Tensor, &Tensor) -> Result<Tensor>| -> Result<Vec<Tensor>> {
            let (q, k, v) = (
                Var::from_tensor(&q0)?,
                Var::from_tensor(&k0)?,
                Var::from_tensor(&v0)?,
            );
            let y = f(q.as_tensor(), k.as_tensor(), v.as_tensor())?;
            let g = (&y * &up)?.sum_all()?.backward()?;
            let grad = |t: &Var| g.get(t.as_tensor()).cloned().expect("gradient");
            Ok(vec![y, grad(&q), grad(&k), grad(&v)])
        };
        let fused = run(&|q, k, v| attention(q, k, v, 0.35, mask.clone()))?;
        let reference = run(&|q, k, v| composed(q, k, v, 0.35, &mask))?;
        let tol = if dtype == DType::F64 { 1e-10 } else { 1e-4 };
        for (name, (a, b)) in ["output", "dq", "dk", "dv"]
            .iter()
            .zip(fused.iter().zip(&reference))
        {
            let diff = (a - b)?
                .abs()?
                .max_all()?
                .to_dtype(DType::F64)?
                .to_scalar::<f64>()?;
            assert!(diff < tol, "{name} differs by {diff} ({dtype:?}, {mask:?})");
        }
        Ok(())
    }

    #[test]
    fn matches_composed_attention_causal_over_several_blocks() -> Result<()> {
        for dtype in [DType::F64, DType::F32] {
            let mask = AttentionMask {
                seq: 150,
                ..Default::default()
            };
            check(2, 2, 3, mask, 150, dtype)?;
        }
        Ok(())
    }

    #[test]
    fn matches_composed_attention_with_padding_and_cached_keys() -> Result<()> {
        // Left padding, then padding after a shared prefix, both behind 3 cached keys.
        for pad_at in [0, 5] {
            let mask = AttentionMask {
                seq: 70,
                offset: 3,
                pad: vec![0, 9],
                pad_at,
            };
            check(2, 1, 2, mask, 73, DType::F64)?;
        }
        Ok(())
    }

    /// [`rope_attention`] against rope on the projections' views, then [`attention`]: output and
    /// the gradients of `q`, `k` and `v` before rope.
    fn check_rope(
        b: usize,
        kvh: usize,
        group: usize,
        mask: AttentionMask,
        per_row: bool,
    ) -> Result<()> {
        let (t, hd, dtype) = (mask.seq, 8, DType::F64);
        let h = kvh * group;
        let q0 = randn(&[b, t, h * hd], dtype)?;
        let k0 = randn(&[b, t, kvh * hd], dtype)?;
        let v0 = randn(&[b, t, kvh * hd], dtype)?;
        let up = randn(&[b, t, h * hd], dtype)?;
        let table = if per_row {
            vec![b, t, hd / 2]
        } else {
            vec![t, hd / 2]
        };
        let angle = (randn(&table, dtype)? * 3.0)?;
        let (cos, sin) = (angle.cos()?, angle.sin()?);
        let run = |f: &dyn Fn(&Tensor, &Tensor, &Tensor) -> Result<Tensor>| -> Result<Vec<Tensor>> {
            let (q, k, v) = (
                Var::from_tensor(&q0)?,
                Var::from_tensor(&k0)?,
                Var::from_tensor(&v0)?,
            );
            let y = f(q.as_tensor(), k.as_tensor(), v.as_tensor())?;
            let g = (&y * &up)?.sum_all()?.backward()?;
            let grad = |t: &Var| g.get(t.as_tensor()).cloned().expect("gradient");
            Ok(vec![y, grad(&q), grad(&k), grad(&v)])
        };
        let fused =
            run(&|q, k, v| rope_attention(q, k, v, h, kvh, &cos, &sin, 0.35, mask.clone()))?;
        let reference = run(&|q, k, v| {
            let heads = |x: &Tensor, n: usize| x.reshape((b, t, n, hd))?.transpose(1, 2);
            let q = crate::fused_grad::rope(&heads(q, h)?, &cos, &sin)?;
            let k = crate::fused_grad::rope(&heads(k, kvh)?, &cos, &sin)?;
            let v = heads(v, kvh)?.contiguous()?;
            let q = q.reshape((b, kvh, group * t, hd))?;
            attention(&q, &k, &v, 0.35, mask.clone())
        })?;
        for (name, (a, b)) in ["output", "dq", "dk", "dv"]
            .iter()
            .zip(fused.iter().zip(&reference))
        {
            assert_eq!(a.shape(), b.shape(), "{name}");
            let diff = (a - b)?.abs()?.max_all()?.to_scalar::<f64>()?;
            assert!(
                diff < 1e-10,
                "{name} differs by {diff} ({mask:?}, per_row {per_row})"
            );
        }
        Ok(())
    }

    #[test]
    fn rope_attention_matches_rope_then_attention() -> Result<()> {
        let causal = AttentionMask {
            seq: 70,
            ..Default::default()
        };
        check_rope(2, 2, 3, causal, false)?;
        let padded = AttentionMask {
            seq: 40,
            offset: 0,
            pad: vec![0, 7],
            pad_at: 0,
        };
        check_rope(2, 1, 2, padded, true)
    }

    #[test]
    fn rope_attention_rejects_a_cache_and_mismatched_heads() -> Result<()> {
        let q = randn(&[1, 4, 16], DType::F32)?;
        let k = randn(&[1, 4, 8], DType::F32)?;
        let tables = randn(&[4, 4], DType::F32)?;
        let mask = |offset| AttentionMask {
            seq: 4,
            offset,
            ..Default::default()
        };
        assert!(rope_attention(&q, &k, &k, 2, 1, &tables, &tables, 1.0, mask(0)).is_ok());
        assert!(rope_attention(&q, &k, &k, 2, 1, &tables, &tables, 1.0, mask(2)).is_err());
        assert!(rope_attention(&q, &k, &k, 3, 1, &tables, &tables, 1.0, mask(0)).is_err());
        assert!(rope_attention(&q, &q, &k, 2, 1, &tables, &tables, 1.0, mask(0)).is_err());
        Ok(())
    }

    #[test]
    fn rejects_mismatched_shapes() -> Result<()> {
        let mask = AttentionMask {
            seq: 4,
            ..Default::default()
        };
        let q = randn(&[1, 1, 4, 8], DType::F32)?;
        let k = randn(&[1, 1, 4, 6], DType::F32)?;
        assert!(attention(&q, &k, &k, 1.0, mask).is_err());
        Ok(())
    }
}
