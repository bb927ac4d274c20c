//! `x · Wᵀ` for f16 weights on the CPU (GGUF `F16` tensors), read as f16.
//!
//! candle turns a GGUF's `F16` tensors into f32 ones when it loads them, which doubles the bytes
//! every decoding step reads: on a 2-core box SmolLM2's F16 file decoded at a third of the speed
//! of its Q4_1 file. Here the weights stay f16 and are widened as they are used: one token's row
//! of activations meets each weight row in a dot product that widens 8 values at a time (F16C),
//! and several rows (prefill, batched decoding) widen a chunk of weight rows once into f32 and
//! multiply it with all of them through gemm. The products are f32 throughout, as the dense f32
//! weights candle would have made hold the same values.

use candle_core::{DType, Device, Tensor};
use half::f16;
use rayon::prelude::*;

use crate::cpu_gemm::{matmul, rows_of, transposed, Threads};

/// Weight rows per task.
const CHUNK: usize = 64;

/// `x` (`m × cols`, row-major) times the transpose of the `rows × cols` f16 matrix whose
/// little-endian bytes are `w`: `m × rows`, row-major.
pub fn matmul_f16(w: &[u8], rows: usize, cols: usize, x: &[f32]) -> candle_core::Result<Vec<f32>> {
    if cols == 0 || w.len() != 2 * rows * cols || !x.len().is_multiple_of(cols) {
        candle_core::bail!(
            "f16 matmul: {} bytes for {rows}×{cols} f16 weights and {} inputs",
            w.len(),
            x.len()
        );
    }
    let m = x.len() / cols;
    let mut out = vec![0f32; m * rows];
    if m == 0 || rows == 0 {
        return Ok(out);
    }
    let simd = has_f16c();
    if m == 1 {
        out.par_chunks_mut(CHUNK).enumerate().for_each(|(c, out)| {
            for (i, o) in out.iter_mut().enumerate() {
                let r = c * CHUNK + i;
                *o = dot(&w[2 * r * cols..2 * (r + 1) * cols], x, simd);
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
            widen(
                &w[2 * first * cols..2 * (first + n) * cols],
                &mut wide,
                simd,
            );
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

/// `x · Wᵀ` for a CPU `F16` tensor `w` of shape `(rows, cols)` and an f32 CPU input
/// `(.., cols)`; `None` when this kernel does not apply (other dtype, device or shape).
pub fn forward(
    w: &candle_core::quantized::QTensor,
    x: &Tensor,
) -> candle_core::Result<Option<Tensor>> {
    if w.dtype() != candle_core::quantized::GgmlDType::F16
        || !matches!(w.device(), Device::Cpu)
        || !matches!(x.device(), Device::Cpu)
        || x.dtype() != DType::F32
    {
        return Ok(None);
    }
    let (rows, cols) = w.shape().dims2()?;
    if x.dims().last() != Some(&cols) {
        return Ok(None);
    }
    let data = w.data()?;
    let xs = x.flatten_all()?.to_vec1::<f32>()?;
    let y = matmul_f16(&data, rows, cols, &xs)?;
    let mut dims = x.dims().to_vec();
    if let Some(last) = dims.last_mut() {
        *last = rows;
    }
    Ok(Some(Tensor::from_vec(y, dims, &Device::Cpu)?))
}

fn has_f16c() -> bool {
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

/// The f16 value of the little-endian bytes `b`.
fn value(b: &[u8]) -> f32 {
    f16::from_le_bytes([b[0], b[1]]).to_f32()
}

/// Σ w·x over one weight row (its f16 bytes).
fn dot(w: &[u8], x: &[f32], simd: bool) -> f32 {
    #[cfg(target_arch = "x86_64")]
    if simd {
        // SAFETY: `simd` is only true when the CPU has AVX2, FMA and F16C (`has_f16c`).
        return unsafe { avx2::dot(w, x) };
    }
    let _ = simd;
    w.chunks_exact(2).zip(x).map(|(w, &x)| value(w) * x).sum()
}

/// `out = w` (f16 bytes) as f32.
fn widen(w: &[u8], out: &mut [f32], simd: bool) {
    #[cfg(target_arch = "x86_64")]
    if simd {
        // SAFETY: as in `dot`.
        return unsafe { avx2::widen(w, out) };
    }
    let _ = simd;
    for (o, v) in out.iter_mut().zip(w.chunks_exact(2)) {
        *o = value(v);
    }
}

#[cfg(target_arch = "x86_64")]
mod avx2 {
    use super::value;
    use std::arch::x86_64::*;

    /// # Safety
    /// The CPU has AVX2, FMA and F16C.
    #[target_feature(enable = "avx2,fma,f16c")]
    pub unsafe fn dot(w: &[u8], x: &[f32]) -> f32 {
        let n = (w.len() / 2).min(x.len());
        let (wp, xp) = (w.as_ptr(), x.as_ptr());
        let wide = |i: usize| _mm256_cvtph_ps(_mm_loadu_si128(wp.add(2 * i) as *const __m128i));
        let mut acc = [_mm256_setzero_ps(); 4];
        let mut i = 0;
        while i + 32 <= n {
            for (k, acc) in acc.iter_mut().enumerate() {
                let at = i + 8 * k;
                *acc = _mm256_fmadd_ps(wide(at), _mm256_loadu_ps(xp.add(at)), *acc);
            }
            i += 32;
        }
        while i + 8 <= n {
            acc[0] = _mm256_fmadd_ps(wide(i), _mm256_loadu_ps(xp.add(i)), acc[0]);
            i += 8;
        }
        let s = _mm256_add_ps(_mm256_add_ps(acc[0], acc[1]), _mm256_add_ps(acc[2], acc[3]));
        let h = _mm_add_ps(_mm256_castps256_ps128(s), _mm256_extractf128_ps(s, 1));
        let h = _mm_add_ps(h, _mm_movehl_ps(h, h));
        let mut sum = _mm_cvtss_f32(_mm_add_ss(h, _mm_movehdup_ps(h)));
        for j in i..n {
            sum += value(&w[2 * j..]) * x[j];
        }
        sum
    }

    /// # Safety
    /// The CPU has AVX2, FMA and F16C.
    #[target_feature(enable = "avx2,fma,f16c")]
    pub unsafe fn widen(w: &[u8], out: &mut [f32]) {
        let n = (w.len() / 2).min(out.len());
        let (wp, op) = (w.as_ptr(), out.as_mut_ptr());
        let mut i = 0;
        while i + 8 <= n {
            let v = _mm256_cvtph_ps(_mm_loadu_si128(wp.add(2 * i) as *const __m128i));
            _mm256_storeu_ps(op.add(i), v);
            i += 8;
        }
        for j in i..n {
            out[j] = value(&w[2 * j..]);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

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

    /// Every path (one row and several, SIMD and plain, odd widths) against the product of the
    /// widened weights written out in f64, and against candle's own (dense f32) product.
    #[test]
    fn f16_products_match_the_widened_weights() {
        for (rows, cols) in [(70, 40), (130, 77), (3, 5)] {
            let w: Vec<f16> = pseudo(rows * cols, 5)
                .into_iter()
                .map(f16::from_f32)
                .collect();
            let bytes: Vec<u8> = w.iter().flat_map(|v| v.to_le_bytes()).collect();
            for m in [1usize, 2, 9] {
                let x = pseudo(m * cols, 9 + m as u32);
                let mut want = vec![0f64; m * rows];
                for i in 0..m {
                    for r in 0..rows {
                        want[i * rows + r] = (0..cols)
                            .map(|c| w[r * cols + c].to_f32() as f64 * x[i * cols + c] as f64)
                            .sum();
                    }
                }
                let got = matmul_f16(&bytes, rows, cols, &x).unwrap();
                for (g, e) in got.iter().zip(&want) {
                    assert!(
                        (*g as f64 - e).abs() < 1e-4,
                        "{rows}×{cols} m {m}: {g} vs {e}"
                    );
                }
                for simd in [false, has_f16c()] {
                    for (r, row) in bytes.chunks_exact(2 * cols).enumerate() {
                        let d = dot(row, &x[..cols], simd) as f64;
                        assert!((d - want[r]).abs() < 1e-4, "dot {r} simd {simd}");
                    }
                    let mut wide = vec![0f32; w.len()];
                    widen(&bytes, &mut wide, simd);
                    assert!(wide.iter().zip(&w).all(|(a, b)| *a == b.to_f32()));
                }
            }
        }
        let w = Tensor::from_vec(pseudo(50 * 64, 3), (50, 64), &Device::Cpu).unwrap();
        let q =
            candle_core::quantized::QTensor::quantize(&w, candle_core::quantized::GgmlDType::F16)
                .unwrap();
        let x = Tensor::from_vec(pseudo(2 * 3 * 64, 4), (2, 3, 64), &Device::Cpu).unwrap();
        let ours = forward(&q, &x).unwrap().unwrap();
        assert_eq!(ours.dims(), &[2, 3, 50]);
        let theirs = x
            .broadcast_matmul(&q.dequantize(&Device::Cpu).unwrap().t().unwrap())
            .unwrap();
        let diff = (ours - theirs)
            .unwrap()
            .abs()
            .unwrap()
            .flatten_all()
            .unwrap()
            .max(0)
            .unwrap()
            .to_scalar::<f32>()
            .unwrap();
        assert!(diff < 1e-4, "against candle: {diff}");
        let q8 =
            candle_core::quantized::QTensor::quantize(&w, candle_core::quantized::GgmlDType::Q8_0)
                .unwrap();
        assert!(forward(&q8, &x).unwrap().is_none());
    }
}
