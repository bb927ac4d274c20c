//! Element-wise math that the compiler can vectorise: `exp` without a library call, and sums
//! and dot products over independent lanes.
//!
//! The training kernels take `exp` of every attention probability, every SwiGLU gate and every
//! logit of the loss, half a billion values per SmolLM2 step at batch 4 × 512. The C library's
//! `expf` is a call per value that no loop around it can vectorise (6% of a training step on
//! an AVX2 CPU); [`exp_f32`] is straight-line arithmetic that a loop runs several lanes at a
//! time. Where results must keep the C library's bits (the SiLU of batched generation, whose
//! logits are checked against llama.cpp's), `silu_mul_pairs` and `silu_mul_slices` run
//! glibc's own `expf` algorithm four lanes at a time, checked bit for bit against `expf`.
//! Sums and dot products kept in one accumulator are a chain of dependent additions;
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

/// `out[i] = silu_mul(gu[2i], gu[2i + 1])`: [`silu_mul`] of interleaved gate/up pairs, eight
/// at a time where [`x86::expf_matches_libm`] holds, with the same bits.
pub(crate) fn silu_mul_pairs(gu: &[f32], out: &mut [f32]) {
    let n = out.len().min(gu.len() / 2);
    let mut done = 0;
    #[cfg(target_arch = "x86_64")]
    if x86::expf_matches_libm() {
        // SAFETY: `expf_matches_libm` holds only where the CPU has AVX2 and FMA.
        done = unsafe { x86::silu_mul_pairs(&gu[..2 * n], &mut out[..n]) };
    }
    for (o, p) in out[done..n].iter_mut().zip(gu[2 * done..].chunks_exact(2)) {
        *o = silu_mul(p[0], p[1]);
    }
}

/// `xs[i] = e^(xs[i] − shift)` with the C library's `expf` bits (eight lanes at a time where
/// [`x86::expf_matches_libm`] holds).
pub(crate) fn exp_shifted_libm(xs: &mut [f32], shift: f32) {
    let mut done = 0;
    #[cfg(target_arch = "x86_64")]
    if x86::expf_matches_libm() {
        // SAFETY: `expf_matches_libm` holds only where the CPU has AVX2 and FMA.
        done = unsafe { x86::exp_shifted(xs, shift) };
    }
    for x in &mut xs[done..] {
        *x = (*x - shift).exp();
    }
}

/// candle-nn's f32 `rms_norm` to the bit, for rows of `alpha.len()` values: per row
/// `m = sqrt(Σ v² / n + eps)` with the squares summed left to right, then `v / m · alpha`.
/// The sums of eight rows run side by side, one per vector lane (each in its own row's
/// order), instead of one dependent chain of additions per row; groups of eight rows are
/// shared out over the pool when there are more than 32 rows, as candle does.
pub(crate) fn rms_norm_rows(x: &[f32], alpha: &[f32], eps: f32, out: &mut [f32]) {
    use rayon::prelude::*;
    let n = alpha.len();
    assert!(
        n > 0 && x.len().is_multiple_of(n) && out.len() == x.len(),
        "rms_norm_rows: rows of {n} values expected"
    );
    let group = |(x, out): (&[f32], &mut [f32])| rms_norm_group(x, alpha, eps, out);
    if x.len() / n <= 32 {
        x.chunks(8 * n).zip(out.chunks_mut(8 * n)).for_each(group);
    } else {
        x.par_chunks(8 * n)
            .zip(out.par_chunks_mut(8 * n))
            .for_each(group);
    }
}

/// candle-nn's f32 `rope` (the non-interleaved rotation) to the bit, for a contiguous
/// `(b, h, t, d)` input: per position, `x1·cos − x2·sin` and `x1·sin + x2·cos` for the two
/// halves of each head, with `cos`/`sin` rows of `d / 2` per position (`batched`: per batch
/// row and position). Written as plain loops over the halves, which the compiler vectorises
/// (candle's loop indexes each value and ran one at a time); large inputs go over the pool.
pub(crate) fn rope_rows(
    x: &[f32],
    cos: &[f32],
    sin: &[f32],
    (b, h, t, d): (usize, usize, usize, usize),
    batched: bool,
    out: &mut [f32],
) {
    use rayon::prelude::*;
    let half = d / 2;
    let cs_rows = if batched { b * t } else { t };
    assert!(
        d % 2 == 0
            && x.len() == b * h * t * d
            && out.len() == x.len()
            && cos.len() >= cs_rows * half
            && sin.len() >= cs_rows * half,
        "rope_rows: shapes do not match"
    );
    let head = |(bh, (x, o)): (usize, (&[f32], &mut [f32]))| {
        for (i_t, (x, o)) in x.chunks_exact(d).zip(o.chunks_exact_mut(d)).enumerate() {
            let row = if batched { (bh / h) * t + i_t } else { i_t };
            let (c, s) = (
                &cos[row * half..(row + 1) * half],
                &sin[row * half..(row + 1) * half],
            );
            let (x1, x2) = x.split_at(half);
            let (o1, o2) = o.split_at_mut(half);
            for i in 0..half {
                o1[i] = x1[i] * c[i] - x2[i] * s[i];
                o2[i] = x1[i] * s[i] + x2[i] * c[i];
            }
        }
    };
    if x.len() <= 1 << 16 {
        x.chunks(t * d)
            .zip(out.chunks_mut(t * d))
            .enumerate()
            .for_each(head);
    } else {
        x.par_chunks(t * d)
            .zip(out.par_chunks_mut(t * d))
            .enumerate()
            .for_each(head);
    }
}

/// [`rms_norm_rows`] for up to eight rows.
fn rms_norm_group(x: &[f32], alpha: &[f32], eps: f32, out: &mut [f32]) {
    let n = alpha.len();
    let rows = x.len() / n;
    let mut sums = [0f32; 8];
    let mut done = false;
    #[cfg(target_arch = "x86_64")]
    if rows == 8 && n.is_multiple_of(8) && is_x86_feature_detected!("avx2") {
        // SAFETY: the CPU has AVX2; eight rows of `n` values, `n` a multiple of 8.
        sums = unsafe { x86::square_sums8(x, n) };
        done = true;
    }
    if !done {
        for (s, row) in sums.iter_mut().zip(x.chunks_exact(n)) {
            *s = row.iter().map(|&v| v * v).sum::<f32>();
        }
    }
    for ((row, o), &sum2) in x.chunks_exact(n).zip(out.chunks_exact_mut(n)).zip(&sums) {
        let m = (sum2 / n as f32 + eps).sqrt();
        for ((o, &v), &a) in o.iter_mut().zip(row).zip(alpha) {
            *o = v / m * a;
        }
    }
}

/// `out[i] = silu_mul(g[i], u[i])` ([`silu_mul_pairs`] for separate slices).
pub(crate) fn silu_mul_slices(g: &[f32], u: &[f32], out: &mut [f32]) {
    let n = out.len().min(g.len()).min(u.len());
    let mut done = 0;
    #[cfg(target_arch = "x86_64")]
    if x86::expf_matches_libm() {
        // SAFETY: as in `silu_mul_pairs`.
        done = unsafe { x86::silu_mul_slices(&g[..n], &u[..n], &mut out[..n]) };
    }
    for ((o, &g), &u) in out[done..n].iter_mut().zip(&g[done..]).zip(&u[done..]) {
        *o = silu_mul(g, u);
    }
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

    /// `2^(i/32)` rounded to the nearest double, as bits, less `i << 47`: adding `k << 47` for
    /// an integer `k` with `k mod 32 = i` then gives `2^(k/32)`.
    const EXP2_TABLE: [u64; 32] = {
        let mut t = [0u64; 32];
        let mut i = 0;
        while i < 32 {
            t[i] = EXP2_32[i].wrapping_sub((i as u64) << 47);
            i += 1;
        }
        t
    };

    /// `2^(i/32)` for `i` in `0..32`, each rounded to the nearest double (checked against a
    /// 60-digit computation when written).
    const EXP2_32: [u64; 32] = [
        0x3ff0000000000000,
        0x3ff059b0d3158574,
        0x3ff0b5586cf9890f,
        0x3ff11301d0125b51,
        0x3ff172b83c7d517b,
        0x3ff1d4873168b9aa,
        0x3ff2387a6e756238,
        0x3ff29e9df51fdee1,
        0x3ff306fe0a31b715,
        0x3ff371a7373aa9cb,
        0x3ff3dea64c123422,
        0x3ff44e086061892d,
        0x3ff4bfdad5362a27,
        0x3ff5342b569d4f82,
        0x3ff5ab07dd485429,
        0x3ff6247eb03a5585,
        0x3ff6a09e667f3bcd,
        0x3ff71f75e8ec5f74,
        0x3ff7a11473eb0187,
        0x3ff82589994cce13,
        0x3ff8ace5422aa0db,
        0x3ff93737b0cdc5e5,
        0x3ff9c49182a3f090,
        0x3ffa5503b23e255d,
        0x3ffae89f995ad3ad,
        0x3ffb7f76f2fb5e47,
        0x3ffc199bdd85529c,
        0x3ffcb720dcef9069,
        0x3ffd5818dcfba487,
        0x3ffdfc97337b9b5f,
        0x3ffea4afa2a490da,
        0x3fff50765b6e4540,
    ];

    /// Whether [`expf4`] is in use: the CPU has AVX2 and FMA, and it gives the C library's
    /// `expf` bits on a spread of inputs (checked once). glibc's `expf` (since 2.27, and
    /// musl's) computes `e^x` as `2^(k/32) · p(r)` in double precision with a 32-entry table
    /// and a cubic, which [`expf4`] does four lanes at a time with the same constants and the
    /// same fused multiply-adds as its FMA build; a C library that computes otherwise keeps
    /// the scalar path.
    pub(crate) fn expf_matches_libm() -> bool {
        static OK: std::sync::OnceLock<bool> = std::sync::OnceLock::new();
        *OK.get_or_init(|| {
            if !(is_x86_feature_detected!("avx2") && is_x86_feature_detected!("fma")) {
                return false;
            }
            // Every 4099th bit pattern of the normal range and its neighbours: ~2 million
            // values, a few milliseconds.
            let mut xs = Vec::with_capacity(1 << 21);
            let mut b = 0u32;
            while b < 0x42b0_0000 {
                xs.push(f32::from_bits(b));
                xs.push(-f32::from_bits(b));
                b += 4099;
            }
            // SAFETY: the CPU has AVX2 and FMA (checked above).
            unsafe { first_expf_mismatch(&xs) }.is_none()
        })
    }

    /// The first `x` of `xs` where [`expf4`] and the C library's `expf` differ in any bit.
    ///
    /// # Safety
    /// The CPU has AVX2 and FMA.
    #[target_feature(enable = "avx2,fma")]
    pub(crate) unsafe fn first_expf_mismatch(xs: &[f32]) -> Option<f32> {
        for c in xs.chunks(4) {
            let mut lanes = [0f32; 4];
            lanes[..c.len()].copy_from_slice(c);
            let mut got = [0f32; 4];
            _mm_storeu_ps(got.as_mut_ptr(), expf4(_mm_loadu_ps(lanes.as_ptr())));
            for (&x, &y) in c.iter().zip(&got) {
                if y.to_bits() != x.exp().to_bits() {
                    return Some(x);
                }
            }
        }
        None
    }

    /// `e^x` for four lanes with glibc's `expf` algorithm (see [`expf_matches_libm`]); lanes
    /// with `|x| ≥ 88` or NaN go to the C library one by one.
    #[target_feature(enable = "avx2,fma")]
    #[inline]
    pub(crate) fn expf4(x: __m128) -> __m128 {
        // 32 / ln 2, and 1.5 · 2^52, whose addition rounds to an integer in the low bits.
        let inv_ln2_n = f64::from_bits(0x4047_1547_652b_82fe);
        let shift = f64::from_bits(0x4338_0000_0000_0000);
        // The cubic of `2^(r/32)`'s approximation, coefficients of r³, r², r.
        let c0 = _mm256_set1_pd(f64::from_bits(0x3ebc_6af8_4b91_2394));
        let c1 = _mm256_set1_pd(f64::from_bits(0x3f2e_bfce_50fa_c4f3));
        let c2 = _mm256_set1_pd(f64::from_bits(0x3f96_2e42_ff0c_52d6));
        // |x| ≥ 88 (also inf and NaN): the rare lanes of overflow, underflow and specials.
        let big = big_lanes(x);
        let xd = _mm256_cvtps_pd(x);
        let inv = _mm256_set1_pd(inv_ln2_n);
        let shift = _mm256_set1_pd(shift);
        let kd = _mm256_fmadd_pd(xd, inv, shift);
        let ki = _mm256_castpd_si256(kd);
        let kd = _mm256_sub_pd(kd, shift);
        let r = _mm256_fmsub_pd(xd, inv, kd);
        let idx = _mm256_and_si256(ki, _mm256_set1_epi64x(31));
        // SAFETY: every index is masked to 0..32, the table's length.
        let t = unsafe { _mm256_i64gather_epi64::<8>(EXP2_TABLE.as_ptr() as *const i64, idx) };
        let s = _mm256_castsi256_pd(_mm256_add_epi64(t, _mm256_slli_epi64::<47>(ki)));
        let z = _mm256_fmadd_pd(r, c0, c1);
        let r2 = _mm256_mul_pd(r, r);
        let y = _mm256_fmadd_pd(r, c2, _mm256_set1_pd(1.0));
        let y = _mm256_fmadd_pd(z, r2, y);
        let y = _mm256_cvtpd_ps(_mm256_mul_pd(y, s));
        if big == 0 {
            return y;
        }
        let (mut xs, mut ys) = ([0f32; 4], [0f32; 4]);
        // SAFETY: four floats each.
        unsafe {
            _mm_storeu_ps(xs.as_mut_ptr(), x);
            _mm_storeu_ps(ys.as_mut_ptr(), y);
        }
        for (i, (&x, y)) in xs.iter().zip(ys.iter_mut()).enumerate() {
            if big & (1 << i) != 0 {
                *y = x.exp();
            }
        }
        // SAFETY: four floats.
        unsafe { _mm_loadu_ps(ys.as_ptr()) }
    }

    /// [`expf4`] of eight lanes, as two halves.
    #[target_feature(enable = "avx2,fma")]
    #[inline]
    fn expf8(x: __m256) -> __m256 {
        _mm256_set_m128(
            expf4(_mm256_extractf128_ps(x, 1)),
            expf4(_mm256_castps256_ps128(x)),
        )
    }

    /// A bit per lane of `x` whose magnitude is at least 88 or that is NaN.
    #[target_feature(enable = "avx2")]
    #[inline]
    fn big_lanes(x: __m128) -> i32 {
        // The top 12 bits of |x| against those of 88.0 (glibc's test), as integers.
        let abs = _mm_and_si128(_mm_castps_si128(x), _mm_set1_epi32(0x7fff_ffff));
        let top = _mm_srli_epi32::<20>(abs);
        let big = _mm_cmpgt_epi32(top, _mm_set1_epi32(0x42a));
        _mm_movemask_ps(_mm_castsi128_ps(big))
    }

    /// [`super::silu_mul`] of eight interleaved gate/up pairs at a time: `g / (1 + e^(−g)) · u`
    /// with [`expf4`]; returns how many outputs it wrote (a multiple of eight).
    ///
    /// # Safety
    /// The CPU has AVX2 and FMA; `gu.len() == 2 * out.len()`.
    #[target_feature(enable = "avx2,fma")]
    pub(crate) unsafe fn silu_mul_pairs(gu: &[f32], out: &mut [f32]) -> usize {
        assert!(gu.len() == 2 * out.len(), "silu_mul_pairs: lengths differ");
        let n = out.len() / 8 * 8;
        for i in (0..n).step_by(8) {
            let a = _mm256_loadu_ps(gu.as_ptr().add(2 * i));
            let b = _mm256_loadu_ps(gu.as_ptr().add(2 * i + 8));
            // [g0 g1 g4 g5 | g2 g3 g6 g7] and the same of u, then back in order.
            let g = _mm256_shuffle_ps(a, b, 0b10_00_10_00);
            let u = _mm256_shuffle_ps(a, b, 0b11_01_11_01);
            let order = _mm256_setr_epi32(0, 1, 4, 5, 2, 3, 6, 7);
            let g = _mm256_permutevar8x32_ps(g, order);
            let u = _mm256_permutevar8x32_ps(u, order);
            _mm256_storeu_ps(out.as_mut_ptr().add(i), silu_mul8(g, u));
        }
        n
    }

    /// [`silu_mul_pairs`] for separate gate and up slices.
    ///
    /// # Safety
    /// The CPU has AVX2 and FMA; the three slices have one length.
    #[target_feature(enable = "avx2,fma")]
    pub(crate) unsafe fn silu_mul_slices(g: &[f32], u: &[f32], out: &mut [f32]) -> usize {
        assert!(
            g.len() == out.len() && u.len() == out.len(),
            "silu_mul_slices: lengths differ"
        );
        let n = out.len() / 8 * 8;
        for i in (0..n).step_by(8) {
            let gv = _mm256_loadu_ps(g.as_ptr().add(i));
            let uv = _mm256_loadu_ps(u.as_ptr().add(i));
            _mm256_storeu_ps(out.as_mut_ptr().add(i), silu_mul8(gv, uv));
        }
        n
    }

    /// [`super::exp_shifted_libm`] eight lanes at a time; returns how many it did (a multiple
    /// of eight).
    ///
    /// # Safety
    /// The CPU has AVX2 and FMA.
    #[target_feature(enable = "avx2,fma")]
    pub(crate) unsafe fn exp_shifted(xs: &mut [f32], shift: f32) -> usize {
        let n = xs.len() / 8 * 8;
        let sh = _mm256_set1_ps(shift);
        for i in (0..n).step_by(8) {
            let p = xs.as_mut_ptr().add(i);
            _mm256_storeu_ps(p, expf8(_mm256_sub_ps(_mm256_loadu_ps(p), sh)));
        }
        n
    }

    /// `Σ v²` of each of eight rows of `n` values (`n` a multiple of 8), each summed left to
    /// right as a scalar loop would: lane `r` of every step holds row `r`, eight columns at a
    /// time through an 8 × 8 transpose.
    ///
    /// # Safety
    /// The CPU has AVX2; `x` holds eight rows of `n` values.
    #[target_feature(enable = "avx2")]
    pub(crate) unsafe fn square_sums8(x: &[f32], n: usize) -> [f32; 8] {
        assert!(
            x.len() == 8 * n && n.is_multiple_of(8),
            "square_sums8: eight rows expected"
        );
        // Starting from −0.0 as `Iterator::sum` does (the same as +0.0 here: squares are
        // never −0.0).
        let mut acc = _mm256_set1_ps(-0.0);
        for c in (0..n).step_by(8) {
            let cols = transpose8(std::array::from_fn(|r| {
                _mm256_loadu_ps(x.as_ptr().add(r * n + c))
            }));
            for col in cols {
                acc = _mm256_add_ps(acc, _mm256_mul_ps(col, col));
            }
        }
        let mut out = [0f32; 8];
        _mm256_storeu_ps(out.as_mut_ptr(), acc);
        out
    }

    /// `g / (1 + e^(−g)) · u` lane by lane, each operation rounded as the scalar one.
    #[target_feature(enable = "avx2,fma")]
    #[inline]
    fn silu_mul8(g: __m256, u: __m256) -> __m256 {
        let e = expf8(_mm256_xor_ps(g, _mm256_set1_ps(-0.0)));
        let one = _mm256_set1_ps(1.0);
        _mm256_mul_ps(_mm256_div_ps(g, _mm256_add_ps(one, e)), u)
    }

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

    /// The first float whose bit pattern is `start + k·stride` (all of them, in parallel) where
    /// the vector `expf` and the C library's differ.
    #[cfg(target_arch = "x86_64")]
    fn expf_mismatch(stride: u64) -> Option<f32> {
        use rayon::prelude::*;
        let per_task = 1u64 << 22;
        (0..(1u64 << 32).div_ceil(per_task))
            .into_par_iter()
            .find_map_any(|t| {
                let xs: Vec<f32> = (t * per_task..((t + 1) * per_task).min(1 << 32))
                    .step_by(stride as usize)
                    .map(|b| f32::from_bits(b as u32))
                    .collect();
                // SAFETY: only called where `expf_matches_libm` found AVX2 and FMA.
                unsafe { x86::first_expf_mismatch(&xs) }
            })
    }

    #[test]
    #[cfg(target_arch = "x86_64")]
    fn vector_expf_has_the_c_librarys_bits() {
        if !x86::expf_matches_libm() {
            // Only glibc and musl on a CPU with AVX2 and FMA are expected to agree.
            assert!(
                !(cfg!(target_env = "gnu")
                    && is_x86_feature_detected!("avx2")
                    && is_x86_feature_detected!("fma")),
                "glibc's expf and the vector expf differ"
            );
            return;
        }
        // Every 7th bit pattern: every exponent, NaNs, infinities, subnormals, the overflow
        // and underflow edges' neighbourhoods.
        assert_eq!(expf_mismatch(7), None);
        for x in [
            88.0f32, 88.72283, 88.72284, -87.33655, -103.27893, -103.97208, -104.0,
        ] {
            for b in x.to_bits() - 64..x.to_bits() + 64 {
                let x = f32::from_bits(b);
                // SAFETY: `expf_matches_libm` found AVX2 and FMA.
                assert_eq!(unsafe { x86::first_expf_mismatch(&[x]) }, None, "at {x}");
            }
        }
    }

    /// All 2^32 inputs (about a minute on two cores): `cargo test --release -p
    /// tierforge-model vector_expf_has_the_c_librarys_bits_everywhere -- --ignored`.
    #[test]
    #[ignore]
    #[cfg(target_arch = "x86_64")]
    fn vector_expf_has_the_c_librarys_bits_everywhere() {
        if x86::expf_matches_libm() {
            assert_eq!(expf_mismatch(1), None);
        }
    }

    #[test]
    fn rms_norm_rows_is_candles_rms_norm_to_the_bit() {
        use candle_core::{Device, Tensor};
        let dev = Device::Cpu;
        for (rows, n) in [(1, 576), (8, 576), (13, 64), (32, 576), (40, 24), (3, 5)] {
            let x = (Tensor::randn(0f32, 3., (rows, n), &dev).unwrap() * 50.0).unwrap();
            let alpha = Tensor::randn(1f32, 0.2, n, &dev).unwrap();
            let want = candle_nn::ops::rms_norm(&x, &alpha, 1e-5).unwrap();
            let want: Vec<u32> = want
                .flatten_all()
                .unwrap()
                .to_vec1::<f32>()
                .unwrap()
                .iter()
                .map(|v| v.to_bits())
                .collect();
            let xs = x.flatten_all().unwrap().to_vec1::<f32>().unwrap();
            let al = alpha.to_vec1::<f32>().unwrap();
            let mut out = vec![0f32; xs.len()];
            rms_norm_rows(&xs, &al, 1e-5, &mut out);
            let got: Vec<u32> = out.iter().map(|v| v.to_bits()).collect();
            assert_eq!(got, want, "{rows} rows of {n}");
        }
    }

    #[test]
    fn rope_rows_is_candles_rope_to_the_bit() {
        use candle_core::{Device, Tensor};
        let dev = Device::Cpu;
        for (b, h, t, d, batched) in [
            (32, 9, 1, 64, false),
            (3, 2, 5, 8, true),
            (2, 4, 300, 64, false),
            (1, 1, 1, 2, true),
        ] {
            let x = (Tensor::randn(0f32, 3., (b, h, t, d), &dev).unwrap() * 10.0).unwrap();
            let cs = if batched {
                vec![b, t, d / 2]
            } else {
                vec![t, d / 2]
            };
            let cos = Tensor::randn(0f32, 1., cs.clone(), &dev).unwrap();
            let sin = Tensor::randn(0f32, 1., cs, &dev).unwrap();
            let want = candle_nn::rotary_emb::rope(&x, &cos, &sin).unwrap();
            let bits = |t: &Tensor| -> Vec<u32> {
                let v = t.flatten_all().unwrap().to_vec1::<f32>().unwrap();
                v.iter().map(|v| v.to_bits()).collect()
            };
            let flat = |t: &Tensor| t.flatten_all().unwrap().to_vec1::<f32>().unwrap();
            let mut out = vec![0f32; b * h * t * d];
            rope_rows(
                &flat(&x),
                &flat(&cos),
                &flat(&sin),
                (b, h, t, d),
                batched,
                &mut out,
            );
            let got: Vec<u32> = out.iter().map(|v| v.to_bits()).collect();
            assert_eq!(got, bits(&want), "{b}x{h}x{t}x{d} batched={batched}");
        }
    }

    #[test]
    fn silu_and_shifted_exp_equal_the_scalar_ones_to_the_bit() {
        let mut s = 7u32;
        let mut next = || {
            s = s.wrapping_mul(1_664_525).wrapping_add(1_013_904_223);
            s
        };
        // Gates over every scale SmolLM2's MLP sees and beyond (up to ±3·2^8), a few extremes.
        let mut g: Vec<f32> = (0..1001)
            .map(|_| {
                let m = (next() >> 8) as f32 / (1u32 << 24) as f32 - 0.5;
                m * (2f32).powi((next() % 20) as i32 - 10) * 6.0
            })
            .collect();
        g.extend([
            0.0,
            -0.0,
            88.5,
            -88.5,
            104.0,
            -104.0,
            f32::INFINITY,
            f32::NEG_INFINITY,
        ]);
        let u: Vec<f32> = g.iter().map(|&x| x * 0.37 - 1.25).collect();
        let want: Vec<u32> = g
            .iter()
            .zip(&u)
            .map(|(&g, &u)| silu_mul(g, u).to_bits())
            .collect();
        let pairs: Vec<f32> = g.iter().zip(&u).flat_map(|(&g, &u)| [g, u]).collect();
        let mut e = g.clone();
        exp_shifted_libm(&mut e, 1.5);
        for (&x, &y) in g.iter().zip(&e) {
            assert_eq!(y.to_bits(), (x - 1.5).exp().to_bits(), "exp at {x}");
        }
        for n in [0, 1, 7, 8, 9, 16, 1001, g.len()] {
            let mut out = vec![0f32; n];
            silu_mul_pairs(&pairs[..2 * n], &mut out);
            let got: Vec<u32> = out.iter().map(|v| v.to_bits()).collect();
            assert_eq!(got, want[..n], "pairs, n = {n}");
            silu_mul_slices(&g[..n], &u[..n], &mut out);
            let got: Vec<u32> = out.iter().map(|v| v.to_bits()).collect();
            assert_eq!(got, want[..n], "slices, n = {n}");
        }
    }

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
