//! Attention of a few new tokens over a KV cache, on the CPU, for inference.
//!
//! Decoding feeds one token per row per step. Done with tensor ops, attention is then two tiny
//! matrix products per (row, kv head, layer): `(group, head_dim) · (head_dim, keys)` and back.
//! candle runs each batch entry of a batched matmul as its own `gemm` call with its own thread
//! dispatch, so a batch of 12 rows cost 2 × 36 × 30 = 2,160 dispatches per step, more than the
//! projections themselves. This kernel does scores, the masked softmax and the weighted sum of
//! values in one pass per (row, kv head), all blocks in one parallel loop, reading keys and values
//! in place from the cache (no copy of the cache, no mask tensor).
//!
//! It gives the same result as `softmax(scale · q·kᵀ + mask) · v` up to float rounding (tested
//! below against exactly that).

use candle_core::{CpuStorage, Layout, Storage, Tensor};
use rayon::prelude::*;

use crate::fused_grad::AttentionMask;

/// New tokens per row up to which [`attend`] is used: decoding (1), and short prompts or the
/// padded prompts of a batch, where candle's gemm call per (row, kv head) costs more in
/// dispatch than the product itself (a batch of 32 prompts of 16 tokens: prefill 1.1–1.3 s
/// with gemm, 1.0 s here; a 64-token prompt alone: 350–370 against 450 tokens/s). Longer
/// prompts go to gemm, which is faster for long rows.
pub const MAX_NEW_TOKENS: usize = 64;

/// `softmax(scale · q·kᵀ + mask) · v` per (batch, kv head) block.
///
/// - `q`: `(batch, kv_heads, rows, head_dim)`, where `rows` is the query heads sharing a kv head
///   times the new tokens (`rows % mask.seq == 0`, row `r` is token `r % mask.seq`);
/// - `k`, `v`: `(batch, kv_heads, keys, head_dim)`, any strides with a unit last stride (e.g. a
///   narrowed view of a preallocated cache);
/// - `mask`: the causal mask and each row's left padding, as in training.
///
/// Returns `None` (the caller then uses tensor ops) unless all three are f32 on the CPU and none
/// is part of a graph that needs gradients.
pub fn attend(
    q: &Tensor,
    k: &Tensor,
    v: &Tensor,
    scale: f32,
    mask: &AttentionMask,
) -> candle_core::Result<Option<Tensor>> {
    attend_with(q, k, v, scale, mask, true)
}

/// [`attend`]; `simd: false` keeps to the loop form of [`attend_block`] (for tests).
fn attend_with(
    q: &Tensor,
    k: &Tensor,
    v: &Tensor,
    scale: f32,
    mask: &AttentionMask,
    simd: bool,
) -> candle_core::Result<Option<Tensor>> {
    let tensors = [q, k, v];
    if tensors
        .iter()
        .any(|t| !t.device().is_cpu() || t.dtype() != candle_core::DType::F32 || t.track_op())
    {
        return Ok(None);
    }
    let (b, h, rows, d) = q.dims4()?;
    let (kb, kh, keys, kd) = k.dims4()?;
    if (kb, kh, kd) != (b, h, d) || v.dims4()? != (b, h, keys, d) {
        candle_core::bail!(
            "cached attention: q {:?}, k {:?}, v {:?} do not match",
            q.dims(),
            k.dims(),
            v.dims()
        );
    }
    if !mask.fits(rows, keys) {
        candle_core::bail!("cached attention: mask does not fit {rows} rows over {keys} keys");
    }
    let q = q.contiguous()?;
    let (qs, ql) = q.storage_and_layout();
    let (ks, kl) = k.storage_and_layout();
    let (vs, vl) = v.storage_and_layout();
    let (Storage::Cpu(qs), Storage::Cpu(ks), Storage::Cpu(vs)) = (&*qs, &*ks, &*vs) else {
        return Ok(None);
    };
    let q = crate::fused_grad::slice::<f32>(qs, ql, "cached attention")?;
    let kv = KvView::new(ks, kl)?;
    let vv = KvView::new(vs, vl)?;
    let mut out = vec![0f32; b * h * rows * d];
    let shape = Shape {
        h,
        rows,
        keys,
        d,
        scale,
    };
    let inputs = Inputs {
        shape,
        k: kv,
        v: vv,
        mask,
    };
    #[cfg(target_arch = "x86_64")]
    let avx2 = std::is_x86_feature_detected!("avx2");
    out.par_chunks_mut(rows * d)
        .enumerate()
        .for_each(|(block, out)| {
            let q = &q[block * rows * d..(block + 1) * rows * d];
            #[cfg(target_arch = "x86_64")]
            if simd && avx2 && d % 8 == 0 {
                // SAFETY: the CPU has AVX2 (checked above), `d` is a multiple of 8, and every
                // row handed over is `d` long.
                unsafe { attend_block_simd(&inputs, block, q, out) };
                return;
            }
            #[cfg(target_arch = "x86_64")]
            if avx2 {
                // SAFETY: the CPU has AVX2, checked above.
                unsafe { attend_block_avx2(&inputs, block, q, out) };
                return;
            }
            attend_block(&inputs, block, q, out);
        });
    Tensor::from_vec(out, (b, h, rows, d), &candle_core::Device::Cpu).map(Some)
}

struct Shape {
    h: usize,
    rows: usize,
    keys: usize,
    d: usize,
    scale: f32,
}

/// What every block of one [`attend`] call reads besides its own queries and output.
struct Inputs<'a> {
    shape: Shape,
    k: KvView<'a>,
    v: KvView<'a>,
    mask: &'a AttentionMask,
}

impl Shape {
    /// Block `block`'s batch row and kv head, and the query heads that share the kv head
    /// (rows per token of `seq`).
    fn block(&self, block: usize, seq: usize) -> (usize, usize, usize) {
        (block / self.h, block % self.h, self.rows / seq)
    }
}

/// One (batch row, kv head) block: every query row against its unmasked keys. The query
/// heads that share this kv head see the same keys for the same token (rows `tok`,
/// `tok + seq`, ...), so they go through the keys together: each key and value row is read
/// from memory once per token instead of once per head (a long cache does not stay in cache
/// between heads). Per row, the arithmetic and its order are those of one row at a time.
#[inline(always)]
fn attend_block(inputs: &Inputs, block: usize, q: &[f32], out: &mut [f32]) {
    let (s, k, v, mask) = (&inputs.shape, &inputs.k, &inputs.v, inputs.mask);
    let (d, seq) = (s.d, mask.seq);
    let (bi, hi, heads) = s.block(block, seq);
    let mut scores = vec![0f32; heads * s.keys];
    let mut max = vec![f32::NEG_INFINITY; heads];
    let mut sum = vec![0f32; heads];
    for tok in 0..seq {
        let segs = mask.segments(bi, tok);
        let keys = || segs.iter().flat_map(|s| s.clone());
        let row = |g: usize| g * seq + tok;
        max.fill(f32::NEG_INFINITY);
        sum.fill(0.0);
        for j in keys() {
            let kj = k.row(bi, hi, j, d);
            for g in 0..heads {
                let r = row(g);
                let sc = dot(&q[r * d..(r + 1) * d], kj) * s.scale;
                scores[g * s.keys + j] = sc;
                max[g] = max[g].max(sc);
            }
        }
        for g in 0..heads {
            for j in keys() {
                let e = (scores[g * s.keys + j] - max[g]).exp();
                scores[g * s.keys + j] = e;
                sum[g] += e;
            }
        }
        for j in keys() {
            let vj = v.row(bi, hi, j, d);
            for g in 0..heads {
                let r = row(g);
                axpy(
                    scores[g * s.keys + j] / sum[g],
                    vj,
                    &mut out[r * d..(r + 1) * d],
                );
            }
        }
    }
}

/// [`attend_block`] compiled for AVX2 (8-wide dot products and updates).
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2")]
unsafe fn attend_block_avx2(inputs: &Inputs, block: usize, q: &[f32], out: &mut [f32]) {
    attend_block(inputs, block, q, out)
}

/// Keys per score pass of [`attend_block_simd`] (one vector of scores).
#[cfg(target_arch = "x86_64")]
const SCORE_KEYS: usize = 8;
/// Keys per pass over the values: their rows stay in L1 for every head of the block.
#[cfg(target_arch = "x86_64")]
const VALUE_KEYS: usize = 16;

/// [`attend_block`] with AVX2 intrinsics for head dims that are a multiple of 8, to the bit
/// the same arithmetic in the same order (the quantized path's logits move by whole units
/// when one rounding changes: the llama.cpp goldens were taken with this order), laid out for
/// throughput: the dot products of eight keys at a time (eight independent chains instead of
/// one, their lanes summed in order after an 8 × 8 transpose), and each output row kept in
/// registers over a chunk of keys instead of loaded and stored for every key. Keys and values
/// are read a chunk at a time for all query heads of the block.
///
/// # Safety
/// The CPU has AVX2, the head dim is a multiple of 8, and `q`, `out` and every row of the
/// keys and values are as [`attend_block`] takes them.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2")]
unsafe fn attend_block_simd(inputs: &Inputs, block: usize, q: &[f32], out: &mut [f32]) {
    use std::arch::x86_64::*;
    let (s, k, v, mask) = (&inputs.shape, &inputs.k, &inputs.v, inputs.mask);
    let (d, seq) = (s.d, mask.seq);
    let (bi, hi, heads) = s.block(block, seq);
    let vecs = d / 8;
    assert!(
        q.len() >= s.rows * d && out.len() >= s.rows * d,
        "cached attention: rows out of range"
    );
    let mut keys: Vec<usize> = Vec::with_capacity(s.keys);
    let mut probs = vec![0f32; heads * s.keys];
    for tok in 0..seq {
        keys.clear();
        for seg in mask.segments(bi, tok) {
            keys.extend(seg);
        }
        let row = |g: usize| g * seq + tok;
        // Scores, eight keys at a time for every head (the last chunk repeats its last key):
        // per key, eight lanes of `acc + q·k` (not fused), then the lanes summed in order.
        for (c, chunk) in keys.chunks(SCORE_KEYS).enumerate() {
            let rows: [*const f32; SCORE_KEYS] =
                std::array::from_fn(|i| k.row(bi, hi, chunk[i.min(chunk.len() - 1)], d).as_ptr());
            for g in 0..heads {
                let qr = q.as_ptr().add(row(g) * d);
                let mut acc = [_mm256_setzero_ps(); SCORE_KEYS];
                for c8 in 0..vecs {
                    let qv = _mm256_loadu_ps(qr.add(c8 * 8));
                    for (a, r) in acc.iter_mut().zip(&rows) {
                        *a = _mm256_add_ps(*a, _mm256_mul_ps(qv, _mm256_loadu_ps(r.add(c8 * 8))));
                    }
                }
                let lanes = crate::vector_math::x86::transpose8(acc);
                let mut dots = lanes[0];
                for l in &lanes[1..] {
                    dots = _mm256_add_ps(dots, *l);
                }
                let sc = _mm256_mul_ps(dots, _mm256_set1_ps(s.scale));
                let mut vals = [0f32; SCORE_KEYS];
                _mm256_storeu_ps(vals.as_mut_ptr(), sc);
                let at = g * s.keys + c * SCORE_KEYS;
                probs[at..at + chunk.len()].copy_from_slice(&vals[..chunk.len()]);
            }
        }
        // The softmax as in `attend_block`: `e^(score − max)` summed in key order, then each
        // key's weight `e / sum`.
        for g in 0..heads {
            let p = &mut probs[g * s.keys..g * s.keys + keys.len()];
            let max = p.iter().fold(f32::NEG_INFINITY, |m, &x| m.max(x));
            crate::vector_math::exp_shifted_libm(p, max);
            let sum = p.iter().fold(0f32, |s, &e| s + e);
            let sums = _mm256_set1_ps(sum);
            let mut chunks = p.chunks_exact_mut(8);
            for c in &mut chunks {
                _mm256_storeu_ps(
                    c.as_mut_ptr(),
                    _mm256_div_ps(_mm256_loadu_ps(c.as_ptr()), sums),
                );
            }
            for e in chunks.into_remainder() {
                *e /= sum;
            }
        }
        // `out += weight · v` per key in key order (not fused), a chunk of keys at a time
        // with the output row in registers.
        for (c, chunk) in keys.chunks(VALUE_KEYS).enumerate() {
            for g in 0..heads {
                let o = out.as_mut_ptr().add(row(g) * d);
                let p = &probs[g * s.keys + c * VALUE_KEYS..];
                for c0 in (0..vecs).step_by(8) {
                    let nv = (vecs - c0).min(8);
                    let mut y = [_mm256_setzero_ps(); 8];
                    for (i, y) in y.iter_mut().enumerate().take(nv) {
                        *y = _mm256_loadu_ps(o.add((c0 + i) * 8));
                    }
                    for (j, &key) in chunk.iter().enumerate() {
                        let vr = v.row(bi, hi, key, d).as_ptr().add(c0 * 8);
                        let w = _mm256_set1_ps(p[j]);
                        for (i, y) in y.iter_mut().enumerate().take(nv) {
                            *y =
                                _mm256_add_ps(*y, _mm256_mul_ps(w, _mm256_loadu_ps(vr.add(i * 8))));
                        }
                    }
                    for (i, y) in y.iter().enumerate().take(nv) {
                        _mm256_storeu_ps(o.add((c0 + i) * 8), *y);
                    }
                }
            }
        }
    }
}

/// Rows of a `(batch, heads, keys, head_dim)` tensor with a unit last stride.
struct KvView<'a> {
    data: &'a [f32],
    start: usize,
    strides: [usize; 3],
}

impl<'a> KvView<'a> {
    fn new(s: &'a CpuStorage, l: &Layout) -> candle_core::Result<Self> {
        let st = l.stride();
        if st.len() != 4 || (st[3] != 1 && l.dims()[3] > 1) {
            candle_core::bail!("cached attention: keys/values need a unit last stride");
        }
        Ok(Self {
            data: s.as_slice::<f32>()?,
            start: l.start_offset(),
            strides: [st[0], st[1], st[2]],
        })
    }

    #[inline]
    fn row(&self, b: usize, h: usize, j: usize, d: usize) -> &'a [f32] {
        let at = self.start + b * self.strides[0] + h * self.strides[1] + j * self.strides[2];
        &self.data[at..at + d]
    }
}

/// Dot product with eight independent partial sums, so that it vectorises.
#[inline(always)]
fn dot(a: &[f32], b: &[f32]) -> f32 {
    let mut acc = [0f32; 8];
    let (ac, ar) = a.split_at(a.len() / 8 * 8);
    let (bc, br) = b.split_at(ac.len());
    for (x, y) in ac.chunks_exact(8).zip(bc.chunks_exact(8)) {
        for l in 0..8 {
            acc[l] += x[l] * y[l];
        }
    }
    let mut s = acc.iter().sum::<f32>();
    for (x, y) in ar.iter().zip(br) {
        s += x * y;
    }
    s
}

/// `y += a · x`.
#[inline(always)]
fn axpy(a: f32, x: &[f32], y: &mut [f32]) {
    for (y, x) in y.iter_mut().zip(x) {
        *y += a * x;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::quant_matmul::tests::f32_bits;
    use candle_core::{DType, Device, D};

    /// The reference: tensor ops with an additive mask.
    fn reference(q: &Tensor, k: &Tensor, v: &Tensor, scale: f32, mask: &AttentionMask) -> Tensor {
        let (b, _, rows, _) = q.dims4().unwrap();
        let keys = k.dim(2).unwrap();
        let mut m = vec![0f32; b * rows * keys];
        for bi in 0..b {
            for r in 0..rows {
                for j in 0..keys {
                    if !mask.allows(bi, r % mask.seq, j) {
                        m[(bi * rows + r) * keys + j] = f32::NEG_INFINITY;
                    }
                }
            }
        }
        let m = Tensor::from_vec(m, (b, 1, rows, keys), &Device::Cpu).unwrap();
        let s = (q.matmul(&k.t().unwrap()).unwrap() * scale as f64).unwrap();
        let p = candle_nn::ops::softmax(&s.broadcast_add(&m).unwrap(), D::Minus1).unwrap();
        p.matmul(&v.contiguous().unwrap()).unwrap()
    }

    fn max_diff(a: &Tensor, b: &Tensor) -> f32 {
        (a - b)
            .unwrap()
            .abs()
            .unwrap()
            .flatten_all()
            .unwrap()
            .max(0)
            .unwrap()
            .to_scalar::<f32>()
            .unwrap()
    }

    #[test]
    fn matches_masked_softmax_attention_over_a_narrowed_cache_with_padding() {
        let dev = Device::Cpu;
        let (b, h, group, cap) = (3, 2, 3, 40);
        // (new tokens, cached keys, padding per row, where the padding starts); head dims that
        // the SIMD kernel takes (multiples of 8, over 64 too) and one it leaves to the loop.
        let cases = [
            (1, 10, vec![0, 4, 10], 0),
            (3, 7, vec![2, 0, 9], 0),
            (1, 0, vec![], 0),
            (2, 5, vec![], 0),
            // A shared prefix of 6, then padding: decoding, and the suffix's first tokens.
            (1, 14, vec![3, 0, 5], 6),
            (3, 6, vec![2, 0, 1], 6),
            // A padded prompt of a batch with nothing cached yet, as in batched prefill.
            (17, 0, vec![0, 5, 16], 0),
            (9, 6, vec![4, 0, 8], 6),
        ];
        for (d, (t, offset, pad, pad_at)) in [20, 64, 72]
            .into_iter()
            .flat_map(|d| cases.iter().cloned().map(move |c| (d, c)))
        {
            let keys = offset + t;
            // Keys and values live in a larger preallocated buffer, as in the KV cache.
            let kbuf = Tensor::randn(0f32, 1., (b, h, cap, d), &dev).unwrap();
            let vbuf = Tensor::randn(0f32, 1., (b, h, cap, d), &dev).unwrap();
            let k = kbuf.narrow(2, 0, keys).unwrap();
            let v = vbuf.narrow(2, 0, keys).unwrap();
            let q = Tensor::randn(0f32, 1., (b, h, group * t, d), &dev).unwrap();
            let mask = AttentionMask {
                seq: t,
                offset,
                pad: pad.clone(),
                pad_at,
            };
            let got = attend(&q, &k, &v, 0.3, &mask).unwrap().unwrap();
            // The SIMD layout changes no rounding: the same values as the loop, to the bit.
            let looped = attend_with(&q, &k, &v, 0.3, &mask, false).unwrap().unwrap();
            assert!(
                f32_bits(&got) == f32_bits(&looped),
                "d={d} t={t} offset={offset}: SIMD and loop differ"
            );
            let want = reference(&q, &k, &v, 0.3, &mask);
            assert_eq!(got.dims(), want.dims());
            let diff = max_diff(&got, &want);
            assert!(
                diff < 1e-5,
                "d={d} t={t} offset={offset} pad={pad:?} at {pad_at}: {diff}"
            );
        }
    }

    #[test]
    fn declines_what_it_does_not_handle() {
        let dev = Device::Cpu;
        let q = Tensor::zeros((1, 1, 1, 4), DType::F64, &dev).unwrap();
        let mask = AttentionMask {
            seq: 1,
            offset: 0,
            ..Default::default()
        };
        assert!(attend(&q, &q, &q, 1.0, &mask).unwrap().is_none());
        let q = Tensor::zeros((1, 1, 1, 4), DType::F32, &dev).unwrap();
        let k = Tensor::zeros((1, 1, 3, 4), DType::F32, &dev).unwrap();
        let bad = AttentionMask {
            seq: 1,
            offset: 5,
            ..Default::default()
        };
        assert!(attend(&q, &k, &k, 1.0, &bad).is_err());
    }
}
