//! Element-wise math that the compiler can vectorise: `exp` without a library call, and sums
//! and dot products over independent lanes.
//!
//! The training kernels take `exp` of every attention probability, every SwiGLU gate and every
//! logit of the loss, half a billion values per SmolLM2 step at batch 4 × 512. The C library's
//! `expf` is a call per value that no loop around it can vectorise (6% of a training step on
//! an AVX2 CPU); [`exp_f32`] is straight-line arithmetic that a loop runs several lanes at a
//! time. Sums and dot products kept in one accumulator are a chain of dependent additions;
//! eight accumulators let the additions overlap and vectorise (a different, equally accurate
//! order of the same sum).

use crate::fused_grad::Real;

/// Lanes of the partial sums.
const LANES: usize = 8;

/// `e^x` in f32 within 2 ulp of the correctly rounded value for `x` in `[-87.3, 88.7]`; `0`
/// below that range (where `e^x` is subnormal or zero), `inf` above it, NaN for NaN.
///
/// Range reduction `x = n·ln 2 + r` with `|r| ≤ ln 2 / 2` (ln 2 split in two so that `n·ln 2`
/// is exact), a degree-7 polynomial for `e^r` (Cephes's `expf` coefficients), and `2^n`
/// assembled from its exponent bits. No branches, so loops over slices vectorise.
#[inline(always)]
pub fn exp_f32(x: f32) -> f32 {
    const LOG2_E: f32 = std::f32::consts::LOG2_E;
    const LN2_HI: f32 = 0.693_359_4;
    const LN2_LO: f32 = -2.121_944_4e-4;
    // 1.5 · 2^23: adding it rounds to an integer, kept in the low mantissa bits.
    const SHIFTER: f32 = 12_582_912.0;
    const LO: f32 = -87.336_55;
    const HI: f32 = 88.722_83;
    let xc = x.clamp(LO, HI);
    let t = xc * LOG2_E + SHIFTER;
    let n = t - SHIFTER;
    let r = (xc - n * LN2_HI) - n * LN2_LO;
    let mut p = 1.987_569_2e-4_f32;
    p = p * r + 1.398_199_9e-3;
    p = p * r + 8.333_452e-3;
    p = p * r + 4.166_579_6e-2;
    p = p * r + 1.666_666_5e-1;
    p = p * r + 0.5;
    let er = p * r * r + r + 1.0;
    // n is in [-126, 128]: 2^n as two halves so that n = 128 (x near HI) stays finite.
    let ni = (t.to_bits() as i32).wrapping_sub(0x4B40_0000);
    let half = ni >> 1;
    let a = f32::from_bits(((half + 127) << 23) as u32);
    let b = f32::from_bits(((ni - half + 127) << 23) as u32);
    let y = er * a * b;
    let y = if x < LO { 0.0 } else { y };
    if x > HI {
        f32::INFINITY
    } else {
        y
    }
}

/// `silu(g) · u` in candle's arithmetic for f32 (`g / (1 + e^(−g))` with libm's `expf`, then
/// the product), which the llama.cpp logit goldens of the quantized path were taken with.
#[inline(always)]
pub(crate) fn silu_mul(g: f32, u: f32) -> f32 {
    g / (1.0 + (-g).exp()) * u
}

/// `Σ xs` over [`LANES`] partial sums.
#[inline(always)]
pub(crate) fn sum<T: Real>(xs: &[T]) -> T {
    let mut acc = [T::zero(); LANES];
    let chunks = xs.chunks_exact(LANES);
    let tail = chunks.remainder();
    for c in chunks {
        for (a, &x) in acc.iter_mut().zip(c) {
            *a += x;
        }
    }
    fold_lanes(acc, tail.iter().fold(T::zero(), |s, &x| s + x))
}

/// `Σ a·b` over [`LANES`] partial sums.
#[inline(always)]
pub(crate) fn dot<T: Real>(a: &[T], b: &[T]) -> T {
    let n = a.len().min(b.len());
    let (a, b) = (&a[..n], &b[..n]);
    let mut acc = [T::zero(); LANES];
    let (ca, cb) = (a.chunks_exact(LANES), b.chunks_exact(LANES));
    let tail = ca
        .remainder()
        .iter()
        .zip(cb.remainder())
        .fold(T::zero(), |s, (&x, &y)| s + x * y);
    for (x, y) in ca.zip(cb) {
        for ((s, &x), &y) in acc.iter_mut().zip(x).zip(y) {
            *s += x * y;
        }
    }
    fold_lanes(acc, tail)
}

/// `xs[i] = e^(xs[i] − shift)` for all `i`; returns their sum.
#[inline(always)]
pub(crate) fn exp_shifted_sum<T: Real>(xs: &mut [T], shift: T) -> T {
    for x in xs.iter_mut() {
        *x = (*x - shift).exp();
    }
    sum(xs)
}

/// `Σ e^(xs[i] − shift)` accumulated in f64 (tens of thousands of f32 terms would lose digits).
#[inline(always)]
pub(crate) fn sum_exp_f64<T: Real>(xs: &[T], shift: T) -> f64 {
    let mut acc = [0f64; LANES];
    let chunks = xs.chunks_exact(LANES);
    let tail = chunks
        .remainder()
        .iter()
        .fold(0f64, |s, &x| s + (x - shift).exp().to_f64());
    for c in chunks {
        for (a, &x) in acc.iter_mut().zip(c) {
            *a += (x - shift).exp().to_f64();
        }
    }
    let pairs = [
        acc[0] + acc[4],
        acc[1] + acc[5],
        acc[2] + acc[6],
        acc[3] + acc[7],
    ];
    (pairs[0] + pairs[2]) + (pairs[1] + pairs[3]) + tail
}

fn fold_lanes<T: Real>(acc: [T; LANES], tail: T) -> T {
    let pairs = [
        acc[0] + acc[4],
        acc[1] + acc[5],
        acc[2] + acc[6],
        acc[3] + acc[7],
    ];
    (pairs[0] + pairs[2]) + (pairs[1] + pairs[3]) + tail
}

/// x86 vector helpers shared by the SIMD kernels.
#[cfg(target_arch = "x86_64")]
pub(crate) mod x86 {
    use std::arch::x86_64::*;

    /// The 8 × 8 transpose of `v` (vector `i` of the result holds lane `i` of each input).
    #[target_feature(enable = "avx2")]
    #[inline]
    pub(crate) fn transpose8(v: [__m256; 8]) -> [__m256; 8] {
        let t0 = _mm256_unpacklo_ps(v[0], v[1]);
        let t1 = _mm256_unpackhi_ps(v[0], v[1]);
        let t2 = _mm256_unpacklo_ps(v[2], v[3]);
        let t3 = _mm256_unpackhi_ps(v[2], v[3]);
        let t4 = _mm256_unpacklo_ps(v[4], v[5]);
        let t5 = _mm256_unpackhi_ps(v[4], v[5]);
        let t6 = _mm256_unpacklo_ps(v[6], v[7]);
        let t7 = _mm256_unpackhi_ps(v[6], v[7]);
        let u0 = _mm256_shuffle_ps(t0, t2, 0b01_00_01_00);
        let u1 = _mm256_shuffle_ps(t0, t2, 0b11_10_11_10);
        let u2 = _mm256_shuffle_ps(t1, t3, 0b01_00_01_00);
        let u3 = _mm256_shuffle_ps(t1, t3, 0b11_10_11_10);
        let u4 = _mm256_shuffle_ps(t4, t6, 0b01_00_01_00);
        let u5 = _mm256_shuffle_ps(t4, t6, 0b11_10_11_10);
        let u6 = _mm256_shuffle_ps(t5, t7, 0b01_00_01_00);
        let u7 = _mm256_shuffle_ps(t5, t7, 0b11_10_11_10);
        [
            _mm256_permute2f128_ps(u0, u4, 0x20),
            _mm256_permute2f128_ps(u1, u5, 0x20),
            _mm256_permute2f128_ps(u2, u6, 0x20),
            _mm256_permute2f128_ps(u3, u7, 0x20),
            _mm256_permute2f128_ps(u0, u4, 0x31),
            _mm256_permute2f128_ps(u1, u5, 0x31),
            _mm256_permute2f128_ps(u2, u6, 0x31),
            _mm256_permute2f128_ps(u3, u7, 0x31),
        ]
    }

    /// The sum of `v`'s eight lanes `l` as `((l0+l4)+(l2+l6)) + ((l1+l5)+(l3+l7))`, ggml's
    /// `hsum_float_8` (the quantized kernels keep its order so that results match llama.cpp's).
    #[target_feature(enable = "avx2")]
    #[inline]
    pub(crate) fn hsum(v: __m256) -> f32 {
        let s = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
        let s = _mm_add_ps(s, _mm_movehl_ps(s, s));
        _mm_cvtss_f32(_mm_add_ss(s, _mm_movehdup_ps(s)))
    }

    /// `[hsum(v[0]), .., hsum(v[7])]` ([`hsum`]): eight horizontal sums in one vector, four
    /// vectors at a time, with [`hsum`]'s order of additions for each.
    #[target_feature(enable = "avx2")]
    #[inline]
    pub(crate) fn hsum8(v: [__m256; 8]) -> __m256 {
        // [v[i] low + high | v[j] low + high]: four partial sums of each.
        let halves = |i: usize, j: usize| {
            _mm256_add_ps(
                _mm256_permute2f128_ps(v[i], v[j], 0x20),
                _mm256_permute2f128_ps(v[i], v[j], 0x31),
            )
        };
        // Of `[A|B]` and `[C|D]` (four partial sums p each):
        // `[A0+A2, C0+C2, A1+A3, C1+C3 | B.., D..]`.
        let pairs = |u: __m256, w: __m256| {
            _mm256_add_ps(_mm256_unpacklo_ps(u, w), _mm256_unpackhi_ps(u, w))
        };
        let x = pairs(halves(0, 4), halves(1, 5));
        let y = pairs(halves(2, 6), halves(3, 7));
        // (p0+p2) + (p1+p3) of each: `[v0, v1, v2, v3 | v4, v5, v6, v7]`.
        _mm256_add_ps(
            _mm256_shuffle_ps(x, y, 0b01_00_01_00),
            _mm256_shuffle_ps(x, y, 0b11_10_11_10),
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Distance in units in the last place between two finite positive floats.
    fn ulps(a: f32, b: f32) -> u32 {
        (a.to_bits() as i64 - b.to_bits() as i64).unsigned_abs() as u32
    }

    #[test]
    fn exp_is_within_two_ulp_of_the_f64_exp_over_its_whole_range() {
        let mut worst = (0u32, 0f32);
        let mut x = -87.3f32;
        while x < 88.7 {
            let want = (x as f64).exp() as f32;
            let got = exp_f32(x);
            let d = ulps(got, want);
            if d > worst.0 {
                worst = (d, x);
            }
            x += 0.000_37;
        }
        assert!(worst.0 <= 2, "{} ulp at x = {}", worst.0, worst.1);
    }

    #[test]
    fn exp_at_the_edges_and_special_values() {
        assert_eq!(exp_f32(0.0), 1.0);
        assert_eq!(exp_f32(f32::NEG_INFINITY), 0.0);
        assert_eq!(exp_f32(-1000.0), 0.0);
        assert_eq!(exp_f32(f32::INFINITY), f32::INFINITY);
        assert_eq!(exp_f32(89.0), f32::INFINITY);
        assert!(exp_f32(f32::NAN).is_nan());
        let top = exp_f32(88.72);
        assert!(
            top.is_finite() && ulps(top, (88.72f32 as f64).exp() as f32) <= 2,
            "{top}"
        );
        let low = exp_f32(-87.3);
        assert!(
            low > 0.0 && ulps(low, (-87.3f32 as f64).exp() as f32) <= 2,
            "{low}"
        );
    }

    #[test]
    fn lane_sums_equal_plain_sums() {
        let xs: Vec<f64> = (0..1003).map(|i| ((i * 37) % 101) as f64 / 7.0).collect();
        let ys: Vec<f64> = (0..1003).map(|i| ((i * 13) % 17) as f64 - 8.0).collect();
        let plain: f64 = xs.iter().sum();
        assert!((sum(&xs) - plain).abs() < 1e-9 * plain.abs());
        let plain_dot: f64 = xs.iter().zip(&ys).map(|(a, b)| a * b).sum();
        assert!((dot(&xs, &ys) - plain_dot).abs() < 1e-9 * plain_dot.abs().max(1.0));
        for n in 0..20 {
            let s: f64 = xs[..n].iter().sum();
            assert!((sum(&xs[..n]) - s).abs() <= 1e-12 * s.abs(), "n = {n}");
        }
        let mut e: Vec<f64> = xs[..50].to_vec();
        let total = exp_shifted_sum(&mut e, 3.0);
        let want: f64 = xs[..50].iter().map(|x| (x - 3.0).exp()).sum();
        assert!((total - want).abs() < 1e-9 * want);
        assert!((sum_exp_f64(&xs[..50], 3.0) - want).abs() < 1e-9 * want);
    }
}
