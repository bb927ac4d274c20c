//! `x · Wᵀ` for 16-bit float weights on the CPU (GGUF `F16` and `BF16` tensors), read as such.
//!
//! candle turns a GGUF's `F16` and `BF16` tensors into f32 ones when it loads them, which doubles
//! the bytes every decoding step reads: on a 2-core box SmolLM2's F16 file decoded at a third of
//! the speed of its Q4_1 file. Here the weights keep their 16 bits and are widened as they are
//! used: one token's row of activations meets each weight row in a dot product that widens 8
//! values at a time (F16C for f16, a shift for bf16), and several rows (prefill, batched
//! decoding) widen a chunk of weight rows once into f32 and multiply it with all of them through
//! gemm. The products are f32 throughout, as the dense f32 weights candle would have made hold
//! the same values.

use candle_core::quantized::{GgmlDType, QTensor};
use candle_core::Tensor;
use half::{bf16, f16};
use rayon::prelude::*;

use crate::cpu_gemm::{matmul, rows_of, transposed, Threads};
use crate::quant_matmul::cpu_forward;

/// Weight rows per task.
const CHUNK: usize = 64;

/// The 16-bit float formats.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Half {
    F16,
    Bf16,
}

impl Half {
    /// The format of a GGUF tensor type, if it is one of these.
    pub fn of(dtype: GgmlDType) -> Option<Self> {
        match dtype {
            GgmlDType::F16 => Some(Half::F16),
            GgmlDType::BF16 => Some(Half::Bf16),
            _ => None,
        }
    }

    /// The value of the little-endian bytes `b`.
    fn value(self, b: &[u8]) -> f32 {
        match self {
            Half::F16 => f16::from_le_bytes([b[0], b[1]]).to_f32(),
            Half::Bf16 => bf16::from_le_bytes([b[0], b[1]]).to_f32(),
        }
    }
}

/// `x` (`m × cols`, row-major) times the transpose of the `rows × cols` matrix of `half` values
/// whose little-endian bytes are `w`: `m × rows`, row-major.
pub fn matmul_half(
    half: Half,
    w: &[u8],
    rows: usize,
    cols: usize,
    x: &[f32],
) -> candle_core::Result<Vec<f32>> {
    if cols == 0 || w.len() != 2 * rows * cols || !x.len().is_multiple_of(cols) {
        candle_core::bail!(
            "{half:?} matmul: {} bytes for {rows}×{cols} weights and {} inputs",
            w.len(),
            x.len()
        );
    }
    let m = x.len() / cols;
    let mut out = vec![0f32; m * rows];
    if m == 0 || rows == 0 {
        return Ok(out);
    }
    let simd = has_avx2_f16c();
    let row = |r: usize| &w[2 * r * cols..2 * (r + 1) * cols];
    if m == 1 {
        out.par_chunks_mut(CHUNK).enumerate().for_each(|(c, out)| {
            for (i, o) in out.iter_mut().enumerate() {
                *o = dot(half, row(c * CHUNK + i), x, simd);
            }
        });
        return Ok(out);
    }
    // Each task widens its chunk of weight rows once and multiplies it with every input row;
    // its `m × n` results go to their columns of `out` afterwards.
    let parts: Vec<(usize, Vec<f32>)> = (0..rows.div_ceil(CHUNK))
        .into_par_iter()
        .map(|c| {
            let first = c * CHUNK;
            let n = CHUNK.min(rows - first);
            let mut wide = vec![0f32; n * cols];
            let bytes = &w[2 * first * cols..2 * (first + n) * cols];
            widen(half, bytes, &mut wide, simd);
            let mut y = vec![0f32; m * n];
            matmul(
                Threads::One,
                (m, n, cols),
                &mut y,
                rows_of(x, cols),
                transposed(&wide, cols),
                1.0,
            );
            (first, y)
        })
        .collect();
    for (first, y) in parts {
        let n = y.len() / m;
        for (i, part) in y.chunks_exact(n).enumerate() {
            out[i * rows + first..i * rows + first + n].copy_from_slice(part);
        }
    }
    Ok(out)
}

/// `x · Wᵀ` for a CPU `F16` or `BF16` tensor `w` of shape `(rows, cols)` and an f32 CPU input
/// `(.., cols)`; `None` when this kernel does not apply (other dtype, device or shape).
pub fn forward(w: &QTensor, x: &Tensor) -> candle_core::Result<Option<Tensor>> {
    let Some(half) = Half::of(w.dtype()) else {
        return Ok(None);
    };
    cpu_forward(
        w,
        x,
        |_| true,
        |data, rows, cols, xs| matmul_half(half, data, rows, cols, xs),
    )
}

fn has_avx2_f16c() -> bool {
    #[cfg(target_arch = "x86_64")]
    {
        is_x86_feature_detected!("avx2")
            && is_x86_feature_detected!("fma")
            && is_x86_feature_detected!("f16c")
    }
    #[cfg(not(target_arch = "x86_64"))]
    {
        false
    }
}

/// Σ w·x over one weight row (its bytes).
fn dot(half: Half, w: &[u8], x: &[f32], simd: bool) -> f32 {
    #[cfg(target_arch = "x86_64")]
    if simd {
        // SAFETY: `simd` is only true when the CPU has AVX2, FMA and F16C (`has_avx2_f16c`).
        return unsafe { avx2::dot(half, w, x) };
    }
    let _ = simd;
    w.chunks_exact(2)
        .zip(x)
        .map(|(w, &x)| half.value(w) * x)
        .sum()
}

/// `out = w` (its bytes) as f32.
fn widen(half: Half, w: &[u8], out: &mut [f32], simd: bool) {
    #[cfg(target_arch = "x86_64")]
    if simd {
        // SAFETY: as in `dot`.
        return unsafe { avx2::widen(half, w, out) };
    }
    let _ = simd;
    for (o, v) in out.iter_mut().zip(w.chunks_exact(2)) {
        *o = half.value(v);
    }
}

#[cfg(target_arch = "x86_64")]
mod avx2 {
    use super::Half;
    use std::arch::x86_64::*;

    /// Eight values at `p` (16 bytes) as f32.
    ///
    /// # Safety
    /// The CPU has AVX2 and F16C; `p` points at 16 readable bytes.
    #[target_feature(enable = "avx2,fma,f16c")]
    #[inline]
    unsafe fn eight(half: Half, p: *const u8) -> __m256 {
        let v = _mm_loadu_si128(p as *const __m128i);
        match half {
            Half::F16 => _mm256_cvtph_ps(v),
            // A bf16 value is the high half of an f32.
            Half::Bf16 => _mm256_castsi256_ps(_mm256_slli_epi32::<16>(_mm256_cvtepu16_epi32(v))),
        }
    }

    /// # Safety
    /// The CPU has AVX2, FMA and F16C.
    #[target_feature(enable = "avx2,fma,f16c")]
    pub unsafe fn dot(half: Half, w: &[u8], x: &[f32]) -> f32 {
        let n = (w.len() / 2).min(x.len());
        let (wp, xp) = (w.as_ptr(), x.as_ptr());
        let mut acc = [_mm256_setzero_ps(); 4];
        let mut i = 0;
        while i + 32 <= n {
            for (k, acc) in acc.iter_mut().enumerate() {
                let at = i + 8 * k;
                *acc = _mm256_fmadd_ps(
                    eight(half, wp.add(2 * at)),
                    _mm256_loadu_ps(xp.add(at)),
                    *acc,
                );
            }
            i += 32;
        }
        while i + 8 <= n {
            acc[0] = _mm256_fmadd_ps(
                eight(half, wp.add(2 * i)),
                _mm256_loadu_ps(xp.add(i)),
                acc[0],
            );
            i += 8;
        }
        let s = _mm256_add_ps(_mm256_add_ps(acc[0], acc[1]), _mm256_add_ps(acc[2], acc[3]));
        let mut sum = crate::vector_math::x86::hsum(s);
        for j in i..n {
            sum += half.value(&w[2 * j..]) * x[j];
        }
        sum
    }

    /// # Safety
    /// The CPU has AVX2, FMA and F16C.
    #[target_feature(enable = "avx2,fma,f16c")]
    pub unsafe fn widen(half: Half, w: &[u8], out: &mut [f32]) {
        let n = (w.len() / 2).min(out.len());
        let (wp, op) = (w.as_ptr(), out.as_mut_ptr());
        let mut i = 0;
        while i + 8 <= n {
            _mm256_storeu_ps(op.add(i), eight(half, wp.add(2 * i)));
            i += 8;
        }
        for j in i..n {
            out[j] = half.value(&w[2 * j..]);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::quant_matmul::tests::pseudo;
    use candle_core::Device;

    /// The weights as `half` bytes and the values those bytes hold.
    fn encoded(half: Half, v: &[f32]) -> (Vec<u8>, Vec<f32>) {
        let bytes: Vec<u8> = match half {
            Half::F16 => v
                .iter()
                .flat_map(|&x| f16::from_f32(x).to_le_bytes())
                .collect(),
            Half::Bf16 => v
                .iter()
                .flat_map(|&x| bf16::from_f32(x).to_le_bytes())
                .collect(),
        };
        let values = bytes.chunks_exact(2).map(|b| half.value(b)).collect();
        (bytes, values)
    }

    /// Every path (one row and several, SIMD and plain, odd widths) against the product of the
    /// widened weights written out in f64.
    #[test]
    fn half_products_match_the_widened_weights() {
        for half in [Half::F16, Half::Bf16] {
            for (rows, cols) in [(70, 40), (130, 77), (3, 5)] {
                let (bytes, w) = encoded(half, &pseudo(rows * cols, 5));
                for m in [1usize, 2, 9] {
                    let x = pseudo(m * cols, 9 + m as u32);
                    let mut want = vec![0f64; m * rows];
                    for i in 0..m {
                        for r in 0..rows {
                            want[i * rows + r] = (0..cols)
                                .map(|c| w[r * cols + c] as f64 * x[i * cols + c] as f64)
                                .sum();
                        }
                    }
                    let got = matmul_half(half, &bytes, rows, cols, &x).unwrap();
                    for (g, e) in got.iter().zip(&want) {
                        let d = (*g as f64 - e).abs();
                        assert!(d < 1e-4, "{half:?} {rows}×{cols} m {m}: {g} vs {e}");
                    }
                    for simd in [false, has_avx2_f16c()] {
                        for (r, row) in bytes.chunks_exact(2 * cols).enumerate() {
                            let d = dot(half, row, &x[..cols], simd) as f64;
                            assert!((d - want[r]).abs() < 1e-4, "{half:?} dot {r} simd {simd}");
                        }
                        let mut wide = vec![0f32; w.len()];
                        widen(half, &bytes, &mut wide, simd);
                        assert_eq!(wide, w, "{half:?} widen simd {simd}");
                    }
                }
            }
        }
    }

    /// Through a candle tensor of each type: candle's own (dense f32) product, leading dims
    /// kept; other types are left to candle.
    #[test]
    fn half_tensors_match_candle() {
        let w = Tensor::from_vec(pseudo(50 * 64, 3), (50, 64), &Device::Cpu).unwrap();
        let x = Tensor::from_vec(pseudo(2 * 3 * 64, 4), (2, 3, 64), &Device::Cpu).unwrap();
        for dtype in [GgmlDType::F16, GgmlDType::BF16] {
            let q = QTensor::quantize(&w, dtype).unwrap();
            let ours = forward(&q, &x).unwrap().unwrap();
            assert_eq!(ours.dims(), &[2, 3, 50]);
            let theirs = x
                .broadcast_matmul(&q.dequantize(&Device::Cpu).unwrap().t().unwrap())
                .unwrap();
            let diff = (ours - theirs)
                .and_then(|d| d.abs())
                .and_then(|d| d.max_all())
                .and_then(|d| d.to_scalar::<f32>())
                .unwrap();
            assert!(diff < 1e-4, "{dtype:?} against candle: {diff}");
        }
        let q8 = QTensor::quantize(&w, GgmlDType::Q8_0).unwrap();
        assert!(forward(&q8, &x).unwrap().is_none());
    }
}
