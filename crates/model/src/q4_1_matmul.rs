//! `x · Wᵀ` for ggml `Q4_1` weights on the CPU, read in place from the GGUF's blocks.
//!
//! candle multiplies `Q4_1` blocks with a scalar loop (85% of a decoding step in a profile of
//! SmolLM2's Q4_1 file). Here, as in ggml, each row of `x` is quantized to 8 bits per block of
//! 32 (`Q8_1`: a scale `d` and `s = d · Σq`), and a weight block `(d, m, q[32])` (value
//! `d·q + m`, `q` in 0..16) contributes `d_w·d_x·Σ q_w·q_x + m_w·s_x`. The integer sums use
//! AVX2 where the CPU has it (`maddubs`: unsigned nibbles times signed bytes), a plain loop
//! elsewhere. Work is split over weight rows with rayon, and every weight row is used for all
//! rows of `x` while it is in cache.

use candle_core::{DType, Device, Tensor};
use half::f16;
use rayon::prelude::*;

/// Values per block.
pub const BLOCK: usize = 32;
/// Bytes of one `Q4_1` block: `d` (f16), `m` (f16), 16 bytes of nibbles.
pub const BLOCK_BYTES: usize = 20;

/// One row of activations quantized per block of 32.
#[derive(Debug, Clone, Default)]
struct Q8Row {
    /// Per block: scale, and scale times the sum of the quantized values.
    d: Vec<f32>,
    s: Vec<f32>,
    q: Vec<i8>,
}

/// ggml's `Q8_1` rounding: `d = max|x| / 127`, `q = round(x / d)`; `d` and `s` are stored
/// as f16 there, so they are rounded through f16 here too.
fn quantize_row(x: &[f32]) -> Q8Row {
    let blocks = x.len() / BLOCK;
    let mut row = Q8Row {
        d: Vec::with_capacity(blocks),
        s: Vec::with_capacity(blocks),
        q: vec![0; x.len()],
    };
    for (xs, qs) in x.chunks_exact(BLOCK).zip(row.q.chunks_exact_mut(BLOCK)) {
        let amax = xs.iter().fold(0f32, |m, v| m.max(v.abs()));
        let d = amax / 127.0;
        let id = if d != 0.0 { 1.0 / d } else { 0.0 };
        let mut sum = 0i32;
        for (q, &v) in qs.iter_mut().zip(xs) {
            let v = (v * id).round() as i32;
            *q = v as i8;
            sum += v;
        }
        row.d.push(f16::from_f32(d).to_f32());
        row.s.push(f16::from_f32(d * sum as f32).to_f32());
    }
    row
}

fn block_d_m(block: &[u8]) -> (f32, f32) {
    let d = f16::from_le_bytes([block[0], block[1]]).to_f32();
    let m = f16::from_le_bytes([block[2], block[3]]).to_f32();
    (d, m)
}

/// Σ q_w·q_x over one block, scalar.
fn block_isum_scalar(nibbles: &[u8], q: &[i8]) -> i32 {
    let mut sum = 0i32;
    for (j, &byte) in nibbles.iter().enumerate() {
        sum += (byte & 0x0f) as i32 * q[j] as i32;
        sum += (byte >> 4) as i32 * q[j + BLOCK / 2] as i32;
    }
    sum
}

/// Dot product of one weight row (its blocks) with one quantized activation row.
fn row_dot_scalar(w: &[u8], x: &Q8Row) -> f32 {
    let mut acc = 0f32;
    for (b, block) in w.chunks_exact(BLOCK_BYTES).enumerate() {
        let (d, m) = block_d_m(block);
        let isum = block_isum_scalar(&block[4..], &x.q[b * BLOCK..(b + 1) * BLOCK]);
        acc += d * x.d[b] * isum as f32 + m * x.s[b];
    }
    acc
}

#[cfg(target_arch = "x86_64")]
mod avx2 {
    use super::{Q8Row, BLOCK, BLOCK_BYTES};
    use std::arch::x86_64::*;

    /// Rows of `x` that share one pass over a weight row.
    const GROUP: usize = 4;

    #[target_feature(enable = "avx2,fma")]
    fn hsum(v: __m256) -> f32 {
        let s = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
        let s = _mm_add_ps(s, _mm_movehl_ps(s, s));
        _mm_cvtss_f32(_mm_add_ss(s, _mm_movehdup_ps(s)))
    }

    /// Dot products of four weight rows with one activation row (decoding one token): four
    /// independent accumulators instead of one dependent chain of `fmadd`s.
    ///
    /// # Safety
    /// As [`row_dots`]; the four rows have as many blocks as `x`.
    #[target_feature(enable = "avx2,fma,f16c")]
    pub unsafe fn dot4(ws: [&[u8]; 4], x: &Q8Row) -> [f32; 4] {
        let low = _mm_set1_epi8(0x0f);
        let ones = _mm256_set1_epi16(1);
        let mut acc = [_mm256_setzero_ps(); 4];
        let mut acc_m = _mm_setzero_ps();
        for b in 0..x.d.len() {
            let xq = _mm256_loadu_si256(x.q.as_ptr().add(b * BLOCK) as *const __m256i);
            let xd = x.d[b];
            let mut ms = [0f32; 4];
            for k in 0..4 {
                let p = ws[k].as_ptr().add(b * BLOCK_BYTES);
                let dm = _mm_cvtph_ps(_mm_cvtsi32_si128((p as *const i32).read_unaligned()));
                ms[k] = _mm_cvtss_f32(_mm_movehdup_ps(dm));
                let packed = _mm_loadu_si128(p.add(4) as *const __m128i);
                let lo = _mm_and_si128(packed, low);
                let hi = _mm_and_si128(_mm_srli_epi16(packed, 4), low);
                let pairs = _mm256_maddubs_epi16(_mm256_set_m128i(hi, lo), xq);
                let sums = _mm256_cvtepi32_ps(_mm256_madd_epi16(pairs, ones));
                acc[k] = _mm256_fmadd_ps(_mm256_set1_ps(_mm_cvtss_f32(dm) * xd), sums, acc[k]);
            }
            acc_m = _mm_fmadd_ps(_mm_loadu_ps(ms.as_ptr()), _mm_set1_ps(x.s[b]), acc_m);
        }
        let mut m = [0f32; 4];
        _mm_storeu_ps(m.as_mut_ptr(), acc_m);
        [
            hsum(acc[0]) + m[0],
            hsum(acc[1]) + m[1],
            hsum(acc[2]) + m[2],
            hsum(acc[3]) + m[3],
        ]
    }

    /// `out[i]` = dot product of the weight row `w` (whole blocks) with `xs[i]`.
    ///
    /// # Safety
    /// The CPU must have AVX2, FMA and F16C; every row of `xs` has as many blocks as `w`, and
    /// `out` is as long as `xs`.
    #[target_feature(enable = "avx2,fma,f16c")]
    pub unsafe fn row_dots(w: &[u8], xs: &[Q8Row], out: &mut [f32]) {
        let low = _mm_set1_epi8(0x0f);
        let ones = _mm256_set1_epi16(1);
        for (xg, og) in xs.chunks(GROUP).zip(out.chunks_mut(GROUP)) {
            let mut acc = [_mm256_setzero_ps(); GROUP];
            let mut acc_m = [0f32; GROUP];
            for (b, block) in w.chunks_exact(BLOCK_BYTES).enumerate() {
                let p = block.as_ptr();
                // d and m: two f16 at the block's start.
                let dm = _mm_cvtph_ps(_mm_cvtsi32_si128((p as *const i32).read_unaligned()));
                let d = _mm_cvtss_f32(dm);
                let m = _mm_cvtss_f32(_mm_movehdup_ps(dm));
                let packed = _mm_loadu_si128(p.add(4) as *const __m128i);
                // Elements 0..16 are the low nibbles, 16..32 the high ones.
                let lo = _mm_and_si128(packed, low);
                let hi = _mm_and_si128(_mm_srli_epi16(packed, 4), low);
                let wq = _mm256_set_m128i(hi, lo);
                for (k, x) in xg.iter().enumerate() {
                    let xq = _mm256_loadu_si256(x.q.as_ptr().add(b * BLOCK) as *const __m256i);
                    let pairs = _mm256_maddubs_epi16(wq, xq);
                    let sums = _mm256_cvtepi32_ps(_mm256_madd_epi16(pairs, ones));
                    acc[k] = _mm256_fmadd_ps(_mm256_set1_ps(d * x.d[b]), sums, acc[k]);
                    acc_m[k] += m * x.s[b];
                }
            }
            for (k, o) in og.iter_mut().enumerate() {
                *o = hsum(acc[k]) + acc_m[k];
            }
        }
    }
}

fn has_avx2() -> bool {
    #[cfg(target_arch = "x86_64")]
    {
        std::arch::is_x86_feature_detected!("avx2")
            && std::arch::is_x86_feature_detected!("fma")
            && std::arch::is_x86_feature_detected!("f16c")
    }
    #[cfg(not(target_arch = "x86_64"))]
    {
        false
    }
}

fn row_dots(w: &[u8], xs: &[Q8Row], out: &mut [f32], simd: bool) {
    #[cfg(target_arch = "x86_64")]
    if simd {
        // SAFETY: `simd` is only true when the CPU has AVX2, FMA and F16C (`has_avx2`);
        // `matmul_slices` passes whole blocks of one weight row, activation rows of the same
        // length and an output row as long as `xs`.
        unsafe { avx2::row_dots(w, xs, out) };
        return;
    }
    let _ = simd;
    for (o, x) in out.iter_mut().zip(xs) {
        *o = row_dot_scalar(w, x);
    }
}

/// Whether [`matmul_slices`] takes weights of this shape: whole blocks per row.
pub fn supported(cols: usize) -> bool {
    cols > 0 && cols.is_multiple_of(BLOCK)
}

/// `x` (`m × cols`, row-major f32) times the transpose of the `rows × cols` `Q4_1` matrix
/// held in `blocks`: `m × rows`, row-major. `simd: false` forces the plain loop (tests).
pub fn matmul_slices(
    blocks: &[u8],
    rows: usize,
    cols: usize,
    x: &[f32],
    simd: bool,
) -> candle_core::Result<Vec<f32>> {
    if !supported(cols) {
        candle_core::bail!("Q4_1 matmul: {cols} columns are not whole blocks of {BLOCK}");
    }
    let row_bytes = cols / BLOCK * BLOCK_BYTES;
    if blocks.len() != rows * row_bytes {
        candle_core::bail!(
            "Q4_1 matmul: {} bytes for a {rows}×{cols} matrix (expected {})",
            blocks.len(),
            rows * row_bytes
        );
    }
    if !x.len().is_multiple_of(cols) {
        candle_core::bail!(
            "Q4_1 matmul: input of {} values is not rows of {cols}",
            x.len()
        );
    }
    let simd = simd && has_avx2();
    let m = x.len() / cols;
    let xq: Vec<Q8Row> = if m > 4 {
        x.par_chunks_exact(cols).map(quantize_row).collect()
    } else {
        x.chunks_exact(cols).map(quantize_row).collect()
    };
    // Output transposed (weight row-major) so every task writes one contiguous piece; a
    // chunk of weight rows is a few KB of blocks that stays in cache across the rows of `x`.
    let chunk = (rows / (rayon::current_num_threads() * 8)).clamp(16, 512);
    let mut out_t = vec![0f32; rows * m];
    out_t
        .par_chunks_mut(chunk * m)
        .enumerate()
        .for_each(|(c, out)| {
            let first = c * chunk;
            let row = |r: usize| &blocks[(first + r) * row_bytes..(first + r + 1) * row_bytes];
            let mut r = 0;
            #[cfg(target_arch = "x86_64")]
            if simd && m == 1 {
                while r + 4 <= out.len() {
                    // SAFETY: as in `row_dots`; four whole weight rows and one activation row.
                    let y =
                        unsafe { avx2::dot4([row(r), row(r + 1), row(r + 2), row(r + 3)], &xq[0]) };
                    out[r..r + 4].copy_from_slice(&y);
                    r += 4;
                }
            }
            for (i, out_row) in out.chunks_exact_mut(m).enumerate().skip(r) {
                row_dots(row(i), &xq, out_row, simd);
            }
        });
    if m == 1 {
        return Ok(out_t);
    }
    let mut out = vec![0f32; rows * m];
    for (r, vals) in out_t.chunks_exact(m).enumerate() {
        for (i, &v) in vals.iter().enumerate() {
            out[i * rows + r] = v;
        }
    }
    Ok(out)
}

/// `x · Wᵀ` for a CPU `Q4_1` tensor `w` of shape `(rows, cols)` and an f32 CPU input
/// `(.., cols)`; `None` when this kernel does not apply (other dtype, device or shape).
pub fn forward(
    w: &candle_core::quantized::QTensor,
    x: &Tensor,
) -> candle_core::Result<Option<Tensor>> {
    if w.dtype() != candle_core::quantized::GgmlDType::Q4_1
        || !matches!(w.device(), Device::Cpu)
        || !matches!(x.device(), Device::Cpu)
        || x.dtype() != DType::F32
    {
        return Ok(None);
    }
    let (rows, cols) = w.shape().dims2()?;
    if !supported(cols) || x.dims().last() != Some(&cols) {
        return Ok(None);
    }
    let data = w.data()?;
    let xs = x.flatten_all()?.to_vec1::<f32>()?;
    let y = matmul_slices(&data, rows, cols, &xs, true)?;
    let mut dims = x.dims().to_vec();
    if let Some(last) = dims.last_mut() {
        *last = rows;
    }
    Ok(Some(Tensor::from_vec(y, dims, &Device::Cpu)?))
}

#[cfg(test)]
mod tests {
    use super::*;
    use candle_core::quantized::{GgmlDType, QMatMul, QTensor};
    use candle_core::Module;

    fn pseudo(n: usize, seed: u32) -> Vec<f32> {
        let mut s = seed.wrapping_mul(2654435761).wrapping_add(1);
        (0..n)
            .map(|_| {
                s ^= s << 13;
                s ^= s >> 17;
                s ^= s << 5;
                (s as f32 / u32::MAX as f32) * 2.0 - 1.0
            })
            .collect()
    }

    fn quantized(rows: usize, cols: usize) -> QTensor {
        let w = Tensor::from_vec(pseudo(rows * cols, 7), (rows, cols), &Device::Cpu).unwrap();
        QTensor::quantize(&w, GgmlDType::Q4_1).unwrap()
    }

    /// The exact arithmetic of ggml's Q4_1 × Q8_1 dot product, written out per element.
    fn reference(w: &QTensor, x: &[f32], cols: usize) -> Vec<f32> {
        let data = w.data().unwrap();
        let rows = w.shape().dims2().unwrap().0;
        let row_bytes = cols / BLOCK * BLOCK_BYTES;
        let mut out = Vec::new();
        for xr in x.chunks(cols) {
            let q = quantize_row(xr);
            for r in 0..rows {
                let mut acc = 0f64;
                for b in 0..cols / BLOCK {
                    let block = &data[r * row_bytes + b * BLOCK_BYTES..][..BLOCK_BYTES];
                    let (d, m) = block_d_m(block);
                    for j in 0..BLOCK {
                        let nib = if j < 16 {
                            block[4 + j] & 15
                        } else {
                            block[4 + j - 16] >> 4
                        };
                        let xv = q.q[b * BLOCK + j] as f64 * q.d[b] as f64;
                        acc += (d as f64 * nib as f64) * xv;
                    }
                    acc += m as f64 * q.s[b] as f64;
                }
                out.push(acc as f32);
            }
        }
        out
    }

    #[test]
    fn simd_and_scalar_match_the_written_out_arithmetic_and_candle() {
        let (rows, cols) = (77, 192);
        let w = quantized(rows, cols);
        for m in [1usize, 3, 9] {
            let x = pseudo(m * cols, 11 + m as u32);
            let want = reference(&w, &x, cols);
            let data = w.data().unwrap();
            for simd in [false, true] {
                let got = matmul_slices(&data, rows, cols, &x, simd).unwrap();
                for (g, e) in got.iter().zip(&want) {
                    assert!(
                        (g - e).abs() <= 1e-4 * (1.0 + e.abs()),
                        "m {m} simd {simd}: {g} vs {e}"
                    );
                }
            }
            // candle's own Q4_1 path: the same up to how the input's 8-bit rounding falls (its
            // path for several rows differs from ggml's per-block Q8_1 by ~0.1%).
            let xt = Tensor::from_vec(x.clone(), (m, cols), &Device::Cpu).unwrap();
            let candle = QMatMul::from_qtensor(quantized(rows, cols))
                .unwrap()
                .forward(&xt)
                .unwrap()
                .flatten_all()
                .unwrap()
                .to_vec1::<f32>()
                .unwrap();
            let ours = forward(&w, &xt)
                .unwrap()
                .unwrap()
                .flatten_all()
                .unwrap()
                .to_vec1::<f32>()
                .unwrap();
            for (g, e) in ours.iter().zip(&candle) {
                assert!(
                    (g - e).abs() <= 5e-3 * (1.0 + e.abs()),
                    "m {m}: {g} vs candle {e}"
                );
            }
        }
    }

    #[test]
    fn batched_input_keeps_its_leading_dims_and_other_dtypes_are_left_to_candle() {
        let w = quantized(40, 64);
        let x = Tensor::from_vec(pseudo(2 * 3 * 64, 5), (2, 3, 64), &Device::Cpu).unwrap();
        let y = forward(&w, &x).unwrap().unwrap();
        assert_eq!(y.dims(), &[2, 3, 40]);
        let w8 = QTensor::quantize(
            &Tensor::from_vec(pseudo(40 * 64, 3), (40, 64), &Device::Cpu).unwrap(),
            GgmlDType::Q8_0,
        )
        .unwrap();
        assert!(forward(&w8, &x).unwrap().is_none());
        let bad = matmul_slices(&w.data().unwrap(), 40, 64, &pseudo(65, 1), true);
        assert!(bad.is_err());
    }
}
