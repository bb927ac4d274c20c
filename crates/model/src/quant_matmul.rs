//! `x · Wᵀ` for ggml `Q4_1` and `Q8_0` weights on the CPU, read in place from the GGUF's blocks.
//!
//! candle multiplies `Q4_1` blocks with a scalar loop (85% of a decoding step in a profile of
//! SmolLM2's Q4_1 file, whose output layer is `Q8_0`). Here, as in ggml, each row of `x` is
//! quantized to 8 bits per block of 32 (a scale `d` and, for `Q4_1`, `s = d · Σq`). A `Q4_1`
//! weight block `(d, m, q[32])` (value `d·q + m`, `q` in 0..16) contributes
//! `d_w·d_x·Σ q_w·q_x + m_w·s_x`; a `Q8_0` block `(d, q[32])` contributes `d_w·d_x·Σ q_w·q_x`.
//! The integer sums use AVX2 where the CPU has it (`maddubs`), a plain loop elsewhere. Work is
//! split over weight rows with rayon; every weight row is used for all rows of `x` while it
//! is in cache, and one token's decoding takes four weight rows at a time.

use candle_core::{DType, Device, Tensor};
use half::f16;
use rayon::prelude::*;

/// Values per block.
pub const BLOCK: usize = 32;

/// The block formats this kernel reads.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// `d` (f16), `m` (f16), 16 bytes of nibbles: elements 0..16 low, 16..32 high.
    Q4_1,
    /// `d` (f16), 32 signed bytes.
    Q8_0,
}

impl Kind {
    pub fn block_bytes(self) -> usize {
        match self {
            Kind::Q4_1 => 20,
            Kind::Q8_0 => 34,
        }
    }

    fn of(dtype: candle_core::quantized::GgmlDType) -> Option<Self> {
        match dtype {
            candle_core::quantized::GgmlDType::Q4_1 => Some(Kind::Q4_1),
            candle_core::quantized::GgmlDType::Q8_0 => Some(Kind::Q8_0),
            _ => None,
        }
    }
}

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

fn f16_at(block: &[u8], at: usize) -> f32 {
    f16::from_le_bytes([block[at], block[at + 1]]).to_f32()
}

/// Dot product of one weight row (its blocks) with one quantized activation row.
fn row_dot_scalar(kind: Kind, w: &[u8], x: &Q8Row) -> f32 {
    let mut acc = 0f32;
    for (b, block) in w.chunks_exact(kind.block_bytes()).enumerate() {
        let q = &x.q[b * BLOCK..(b + 1) * BLOCK];
        let d = f16_at(block, 0);
        match kind {
            Kind::Q4_1 => {
                let mut isum = 0i32;
                for (j, &byte) in block[4..].iter().enumerate() {
                    isum += (byte & 0x0f) as i32 * q[j] as i32;
                    isum += (byte >> 4) as i32 * q[j + BLOCK / 2] as i32;
                }
                acc += d * x.d[b] * isum as f32 + f16_at(block, 2) * x.s[b];
            }
            Kind::Q8_0 => {
                let isum: i32 = block[2..]
                    .iter()
                    .zip(q)
                    .map(|(&w, &v)| w as i8 as i32 * v as i32)
                    .sum();
                acc += d * x.d[b] * isum as f32;
            }
        }
    }
    acc
}

#[cfg(target_arch = "x86_64")]
mod avx2 {
    use super::{Kind, Q8Row, BLOCK};
    use std::arch::x86_64::*;

    /// Rows of `x` that share one pass over a weight row.
    const GROUP: usize = 4;

    #[target_feature(enable = "avx2,fma")]
    fn hsum(v: __m256) -> f32 {
        let s = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
        let s = _mm_add_ps(s, _mm_movehl_ps(s, s));
        _mm_cvtss_f32(_mm_add_ss(s, _mm_movehdup_ps(s)))
    }

    /// One weight block at `p`: `(d, m, w)` with `w` the 32 weights as bytes, ready for
    /// [`products`] (unsigned nibbles for Q4_1, the signed bytes for Q8_0; `m` is 0 there).
    ///
    /// # Safety
    /// `p` points at a whole block of `kind`.
    #[target_feature(enable = "avx2,fma,f16c")]
    #[inline]
    unsafe fn weights(kind: Kind, p: *const u8) -> (f32, f32, __m256i) {
        match kind {
            Kind::Q4_1 => {
                let dm = _mm_cvtph_ps(_mm_cvtsi32_si128((p as *const i32).read_unaligned()));
                let packed = _mm_loadu_si128(p.add(4) as *const __m128i);
                let low = _mm_set1_epi8(0x0f);
                let lo = _mm_and_si128(packed, low);
                let hi = _mm_and_si128(_mm_srli_epi16(packed, 4), low);
                let m = _mm_cvtss_f32(_mm_movehdup_ps(dm));
                (_mm_cvtss_f32(dm), m, _mm256_set_m128i(hi, lo))
            }
            Kind::Q8_0 => {
                let bits = (p as *const u16).read_unaligned() as i32;
                let d = _mm_cvtss_f32(_mm_cvtph_ps(_mm_cvtsi32_si128(bits)));
                (d, 0.0, _mm256_loadu_si256(p.add(2) as *const __m256i))
            }
        }
    }

    /// Σ w·x per group of four bytes, as 8 floats.
    #[target_feature(enable = "avx2,fma")]
    #[inline]
    fn products(kind: Kind, w: __m256i, x: __m256i) -> __m256 {
        let pairs = match kind {
            Kind::Q4_1 => _mm256_maddubs_epi16(w, x),
            // maddubs wants one unsigned operand: |w| times x with w's sign.
            Kind::Q8_0 => _mm256_maddubs_epi16(_mm256_sign_epi8(w, w), _mm256_sign_epi8(x, w)),
        };
        _mm256_cvtepi32_ps(_mm256_madd_epi16(pairs, _mm256_set1_epi16(1)))
    }

    /// Dot products of four weight rows with one activation row (decoding one token): four
    /// independent accumulators instead of one dependent chain of `fmadd`s.
    ///
    /// # Safety
    /// As [`row_dots`]; the four rows have as many blocks as `x`.
    #[target_feature(enable = "avx2,fma,f16c")]
    pub unsafe fn dot4(kind: Kind, ws: [&[u8]; 4], x: &Q8Row) -> [f32; 4] {
        let bb = kind.block_bytes();
        let mut acc = [_mm256_setzero_ps(); 4];
        let mut acc_m = _mm_setzero_ps();
        for b in 0..x.d.len() {
            let xq = _mm256_loadu_si256(x.q.as_ptr().add(b * BLOCK) as *const __m256i);
            let xd = x.d[b];
            let mut ms = [0f32; 4];
            for k in 0..4 {
                let (d, m, w) = weights(kind, ws[k].as_ptr().add(b * bb));
                ms[k] = m;
                acc[k] = _mm256_fmadd_ps(_mm256_set1_ps(d * xd), products(kind, w, xq), acc[k]);
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

    /// `out[i]` = dot product of the weight row `w` with `xs[i]`.
    ///
    /// # Safety
    /// The CPU must have AVX2, FMA and F16C; `w` holds whole blocks of `kind`, every row of
    /// `xs` has as many blocks, and `out` is as long as `xs`.
    #[target_feature(enable = "avx2,fma,f16c")]
    pub unsafe fn row_dots(kind: Kind, w: &[u8], xs: &[Q8Row], out: &mut [f32]) {
        let bb = kind.block_bytes();
        for (xg, og) in xs.chunks(GROUP).zip(out.chunks_mut(GROUP)) {
            let mut acc = [_mm256_setzero_ps(); GROUP];
            let mut acc_m = [0f32; GROUP];
            for b in 0..w.len() / bb {
                let (d, m, wq) = weights(kind, w.as_ptr().add(b * bb));
                for (k, x) in xg.iter().enumerate() {
                    let xq = _mm256_loadu_si256(x.q.as_ptr().add(b * BLOCK) as *const __m256i);
                    let sums = products(kind, wq, xq);
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

fn row_dots(kind: Kind, w: &[u8], xs: &[Q8Row], out: &mut [f32], simd: bool) {
    #[cfg(target_arch = "x86_64")]
    if simd {
        // SAFETY: `simd` is only true when the CPU has AVX2, FMA and F16C (`has_avx2`);
        // `matmul_slices` passes whole blocks of one weight row, activation rows of the same
        // length and an output row as long as `xs`.
        unsafe { avx2::row_dots(kind, w, xs, out) };
        return;
    }
    let _ = simd;
    for (o, x) in out.iter_mut().zip(xs) {
        *o = row_dot_scalar(kind, w, x);
    }
}

/// Whether [`matmul_slices`] takes weights of this shape: whole blocks per row.
pub fn supported(cols: usize) -> bool {
    cols > 0 && cols.is_multiple_of(BLOCK)
}

/// `x` (`m × cols`, row-major f32) times the transpose of the `rows × cols` matrix of
/// `kind` blocks in `blocks`: `m × rows`, row-major. `simd: false` forces the plain loop.
pub fn matmul_slices(
    kind: Kind,
    blocks: &[u8],
    rows: usize,
    cols: usize,
    x: &[f32],
    simd: bool,
) -> candle_core::Result<Vec<f32>> {
    if !supported(cols) {
        candle_core::bail!("{kind:?} matmul: {cols} columns are not whole blocks of {BLOCK}");
    }
    let row_bytes = cols / BLOCK * kind.block_bytes();
    if blocks.len() != rows * row_bytes {
        candle_core::bail!(
            "{kind:?} matmul: {} bytes for a {rows}×{cols} matrix (expected {})",
            blocks.len(),
            rows * row_bytes
        );
    }
    if !x.len().is_multiple_of(cols) {
        candle_core::bail!(
            "{kind:?} matmul: input of {} values is not rows of {cols}",
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
                    let y = unsafe {
                        avx2::dot4(kind, [row(r), row(r + 1), row(r + 2), row(r + 3)], &xq[0])
                    };
                    out[r..r + 4].copy_from_slice(&y);
                    r += 4;
                }
            }
            for (i, out_row) in out.chunks_exact_mut(m).enumerate().skip(r) {
                row_dots(kind, row(i), &xq, out_row, simd);
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

/// `x · Wᵀ` for a CPU `Q4_1` or `Q8_0` tensor `w` of shape `(rows, cols)` and an f32 CPU
/// input `(.., cols)`; `None` when this kernel does not apply (other dtype, device or shape).
pub fn forward(
    w: &candle_core::quantized::QTensor,
    x: &Tensor,
) -> candle_core::Result<Option<Tensor>> {
    let Some(kind) = Kind::of(w.dtype()) else {
        return Ok(None);
    };
    if !matches!(w.device(), Device::Cpu)
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
    let y = matmul_slices(kind, &data, rows, cols, &xs, true)?;
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

    fn quantized(dtype: GgmlDType, rows: usize, cols: usize) -> QTensor {
        let w = Tensor::from_vec(pseudo(rows * cols, 7), (rows, cols), &Device::Cpu).unwrap();
        QTensor::quantize(&w, dtype).unwrap()
    }

    /// The exact arithmetic of ggml's Q4_1 × Q8_1 and Q8_0 × Q8_0 dot products, written out
    /// per element in f64.
    fn reference(kind: Kind, w: &QTensor, x: &[f32], cols: usize) -> Vec<f32> {
        let data = w.data().unwrap();
        let rows = w.shape().dims2().unwrap().0;
        let bb = kind.block_bytes();
        let row_bytes = cols / BLOCK * bb;
        let mut out = Vec::new();
        for xr in x.chunks(cols) {
            let q = quantize_row(xr);
            for r in 0..rows {
                let mut acc = 0f64;
                for b in 0..cols / BLOCK {
                    let block = &data[r * row_bytes + b * bb..][..bb];
                    let d = f16_at(block, 0) as f64;
                    for j in 0..BLOCK {
                        let wq = match kind {
                            Kind::Q4_1 if j < 16 => (block[4 + j] & 15) as f64,
                            Kind::Q4_1 => (block[4 + j - 16] >> 4) as f64,
                            Kind::Q8_0 => block[2 + j] as i8 as f64,
                        };
                        acc += d * wq * q.q[b * BLOCK + j] as f64 * q.d[b] as f64;
                    }
                    if kind == Kind::Q4_1 {
                        acc += f16_at(block, 2) as f64 * q.s[b] as f64;
                    }
                }
                out.push(acc as f32);
            }
        }
        out
    }

    #[test]
    fn simd_and_scalar_match_the_written_out_arithmetic_and_candle() {
        let (rows, cols) = (77, 192);
        for (kind, dtype) in [(Kind::Q4_1, GgmlDType::Q4_1), (Kind::Q8_0, GgmlDType::Q8_0)] {
            let w = quantized(dtype, rows, cols);
            for m in [1usize, 3, 9] {
                let x = pseudo(m * cols, 11 + m as u32);
                let want = reference(kind, &w, &x, cols);
                let data = w.data().unwrap();
                for simd in [false, true] {
                    let got = matmul_slices(kind, &data, rows, cols, &x, simd).unwrap();
                    for (g, e) in got.iter().zip(&want) {
                        assert!(
                            (g - e).abs() <= 1e-4 * (1.0 + e.abs()),
                            "{kind:?} m {m} simd {simd}: {g} vs {e}"
                        );
                    }
                }
                // candle's own product: the same up to how the input's 8-bit rounding falls
                // (its path for several rows rounds differently by ~0.1%).
                let xt = Tensor::from_vec(x.clone(), (m, cols), &Device::Cpu).unwrap();
                let candle = QMatMul::from_qtensor(quantized(dtype, rows, cols))
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
                        "{kind:?} m {m}: {g} vs candle {e}"
                    );
                }
            }
        }
    }

    #[test]
    fn batched_input_keeps_its_leading_dims_and_other_dtypes_are_left_to_candle() {
        let w = quantized(GgmlDType::Q4_1, 40, 64);
        let x = Tensor::from_vec(pseudo(2 * 3 * 64, 5), (2, 3, 64), &Device::Cpu).unwrap();
        let y = forward(&w, &x).unwrap().unwrap();
        assert_eq!(y.dims(), &[2, 3, 40]);
        let other = quantized(GgmlDType::Q4_0, 40, 64);
        assert!(forward(&other, &x).unwrap().is_none());
        let bad = matmul_slices(Kind::Q4_1, &w.data().unwrap(), 40, 64, &pseudo(65, 1), true);
        assert!(bad.is_err());
    }
}
