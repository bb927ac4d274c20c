//! `x · Wᵀ` for ggml `Q4_0`, `Q4_1`, `Q5_0`, `Q5_1` and `Q8_0` weights on the CPU, read in
//! place from the GGUF's blocks (the formats whose blocks hold 32 values; llama.cpp's quantizer
//! also falls back to `Q5_0`, `Q5_1` and `Q8_0` for k-quant files whose rows are not whole
//! blocks of 256, as in SmolLM2's 576-wide layers).
//!
//! candle multiplies `Q4_1` blocks with a scalar loop (85% of a decoding step in a profile of
//! SmolLM2's Q4_1 file, whose output layer is `Q8_0`). Here, as in ggml, each row of `x` is
//! quantized to 8 bits per block of 32 (a scale `d` and, for `Q4_1`, `s = d · Σq`). A `Q4_1`
//! weight block `(d, m, q[32])` (value `d·q + m`, `q` in 0..16) contributes
//! `d_w·d_x·Σ q_w·q_x + m_w·s_x`; a `Q8_0` block `(d, q[32])` contributes `d_w·d_x·Σ q_w·q_x`.
//! The integer sums use AVX2 where the CPU has it (`maddubs`, or VNNI's `dpbusd` where there is
//! AVX-512 VNNI), a plain loop elsewhere. Work is split over weight rows with rayon. One token's
//! decoding takes four weight rows at a time. Several rows of `x` (prefill, batched decoding)
//! go through a tiled kernel: `x` quantized once into tiles of four rows, each pair of weight
//! rows decoded once and multiplied with every tile while it is in L1; the arithmetic of each
//! product stays ggml's, so batched and single-row results agree. Matrices that take the same
//! input run as one product (`x` quantized once, their rows shared out together): a layer's
//! query, key and value projections ([`forward_many`]), its gate and up projections with the
//! SiLU taken as each gate/up pair of rows is written ([`forward_swiglu`]), and a projection
//! with the residual sum ([`forward_residual`]), each to the bit what the separate products
//! and candle's arithmetic give.

use candle_core::{DType, Device, Tensor};
use half::f16;
use rayon::prelude::*;

/// Values per block.
pub const BLOCK: usize = 32;

/// The block formats this kernel reads: ggml's formats with blocks of 32 values. "Signed"
/// formats hold `d·q` with `q` signed (ggml multiplies them with `Q8_0` activations), the
/// others `d·q + m` with `q` unsigned (`Q8_1` activations, whose sums `s` carry `m`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// `d` (f16), 16 bytes of nibbles (elements 0..16 low, 16..32 high), `q = nibble − 8`.
    Q4_0,
    /// `d` (f16), `m` (f16), 16 bytes of nibbles: elements 0..16 low, 16..32 high.
    Q4_1,
    /// `d` (f16), 32 high bits (bit `j` for element `j`), 16 bytes of nibbles as in `Q4_0`;
    /// `q = (nibble | high << 4) − 16`.
    Q5_0,
    /// `d` (f16), `m` (f16), 32 high bits and 16 bytes of nibbles as in `Q5_0`, unsigned.
    Q5_1,
    /// `d` (f16), 32 signed bytes.
    Q8_0,
}

impl Kind {
    pub fn block_bytes(self) -> usize {
        match self {
            Kind::Q4_0 => 18,
            Kind::Q4_1 => 20,
            Kind::Q5_0 => 22,
            Kind::Q5_1 => 24,
            Kind::Q8_0 => 34,
        }
    }

    /// Whether the weights are signed (`d·q`) rather than `d·q + m`.
    pub fn signed(self) -> bool {
        matches!(self, Kind::Q4_0 | Kind::Q5_0 | Kind::Q8_0)
    }

    /// Whether the tiled kernel reads the weight bytes in place (already one byte per value)
    /// rather than decoded into its panel.
    fn in_place(self) -> bool {
        self == Kind::Q8_0
    }

    fn of(dtype: candle_core::quantized::GgmlDType) -> Option<Self> {
        use candle_core::quantized::GgmlDType as G;
        match dtype {
            G::Q4_0 => Some(Kind::Q4_0),
            G::Q4_1 => Some(Kind::Q4_1),
            G::Q5_0 => Some(Kind::Q5_0),
            G::Q5_1 => Some(Kind::Q5_1),
            G::Q8_0 => Some(Kind::Q8_0),
            _ => None,
        }
    }
}

/// One block's `(d, m, q)`: its scale, its minimum (0 for signed formats) and its 32 values
/// (see [`Kind`]).
fn decode_block(kind: Kind, block: &[u8]) -> (f32, f32, [i32; BLOCK]) {
    let mut q = [0i32; BLOCK];
    let nibbles = |q: &mut [i32; BLOCK], bytes: &[u8]| {
        for (j, &b) in bytes[..BLOCK / 2].iter().enumerate() {
            q[j] = (b & 0x0f) as i32;
            q[j + BLOCK / 2] = (b >> 4) as i32;
        }
    };
    let high = |q: &mut [i32; BLOCK], bits: &[u8]| {
        let h = u32::from_le_bytes([bits[0], bits[1], bits[2], bits[3]]);
        for (j, q) in q.iter_mut().enumerate() {
            *q |= (((h >> j) & 1) << 4) as i32;
        }
    };
    let d = f16_at(block, 0);
    match kind {
        Kind::Q4_0 => {
            nibbles(&mut q, &block[2..]);
            q.iter_mut().for_each(|v| *v -= 8);
            (d, 0.0, q)
        }
        Kind::Q4_1 => {
            nibbles(&mut q, &block[4..]);
            (d, f16_at(block, 2), q)
        }
        Kind::Q5_0 => {
            nibbles(&mut q, &block[6..]);
            high(&mut q, &block[2..]);
            q.iter_mut().for_each(|v| *v -= 16);
            (d, 0.0, q)
        }
        Kind::Q5_1 => {
            nibbles(&mut q, &block[8..]);
            high(&mut q, &block[4..]);
            (d, f16_at(block, 2), q)
        }
        Kind::Q8_0 => {
            for (q, &b) in q.iter_mut().zip(&block[2..2 + BLOCK]) {
                *q = b as i8 as i32;
            }
            (d, 0.0, q)
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

/// ggml's `Q8_1` rounding of one block: `d = max|x| / 127`, `q = round(x / d)` (halves away
/// from zero, as `roundf`: rounding them to even instead moves SmolLM2's greedy tokens away
/// from llama.cpp's), and `(d, d·Σq)` before their rounding through f16 (see
/// [`quantize_block`]).
#[inline(always)]
fn quantize_block_generic(xs: &[f32], qs: &mut [i8]) -> (f32, f32) {
    let amax = xs.iter().fold(0f32, |m, v| m.max(v.abs()));
    let d = amax / 127.0;
    let id = if d != 0.0 { 1.0 / d } else { 0.0 };
    let mut sum = 0i32;
    for (q, &v) in qs.iter_mut().zip(xs) {
        let v = (v * id).round() as i32;
        *q = v as i8;
        sum += v;
    }
    (d, d * sum as f32)
}

/// One block quantized as ggml's `Q8_1`: `(d, d·Σq)`, stored as f16 there, so rounded
/// through f16 here too.
fn quantize_block(xs: &[f32], qs: &mut [i8], simd: Simd) -> (f32, f32) {
    let (d, s) = match simd {
        #[cfg(target_arch = "x86_64")]
        Simd::Avx2 | Simd::Vnni => {
            assert!(
                xs.len() == BLOCK && qs.len() == BLOCK,
                "quantize_block: not one block"
            );
            // SAFETY: `simd` is only Avx2 or Vnni when the CPU has AVX2, FMA and F16C; both
            // slices hold one block.
            unsafe { avx2::quantize_block(xs.as_ptr(), qs.as_mut_ptr()) }
        }
        _ => quantize_block_generic(xs, qs),
    };
    (f16::from_f32(d).to_f32(), f16::from_f32(s).to_f32())
}

fn quantize_row(x: &[f32], simd: Simd) -> Q8Row {
    let blocks = x.len() / BLOCK;
    let mut row = Q8Row {
        d: Vec::with_capacity(blocks),
        s: Vec::with_capacity(blocks),
        q: vec![0; x.len()],
    };
    for (xs, qs) in x.chunks_exact(BLOCK).zip(row.q.chunks_exact_mut(BLOCK)) {
        let (d, s) = quantize_block(xs, qs, simd);
        row.d.push(d);
        row.s.push(s);
    }
    row
}

/// Rows of `x` that one pass of the tiled kernel multiplies with each weight row.
const TILE: usize = 4;

/// Activation rows quantized for the tiled kernel: per tile of [`TILE`] rows and per block,
/// the `TILE × 32` values of those rows one after the other, their `TILE` scales and their
/// `TILE` sums. A last, partial tile is padded with zero rows.
#[derive(Debug, Clone, Default)]
struct Q8Tiles {
    tiles: usize,
    blocks: usize,
    /// The quantized values; with `offset`, as unsigned bytes `q + 128` (their bits hold
    /// `q ^ 0x80`).
    q: Vec<i8>,
    d: Vec<f32>,
    s: Vec<f32>,
    offset: bool,
}

impl Q8Tiles {
    /// `x`: rows of `cols` values, `cols` a multiple of [`BLOCK`]. `offset` stores each value
    /// plus 128 as an unsigned byte, for VNNI's unsigned-times-signed products with signed
    /// weights ([`avx2::tile2_vnni`]).
    fn quantize(x: &[f32], cols: usize, simd: Simd, offset: bool) -> Self {
        let blocks = cols / BLOCK;
        let m = x.len() / cols;
        let tiles = m.div_ceil(TILE);
        let mut t = Q8Tiles {
            tiles,
            blocks,
            q: vec![0; tiles * blocks * TILE * BLOCK],
            d: vec![0.0; tiles * blocks * TILE],
            s: vec![0.0; tiles * blocks * TILE],
            offset,
        };
        let tile_rows = |i: usize| &x[i * TILE * cols..((i + 1) * TILE).min(m) * cols];
        let work = |i: usize, q: &mut [i8], d: &mut [f32], s: &mut [f32]| {
            for (k, row) in tile_rows(i).chunks_exact(cols).enumerate() {
                for (b, xs) in row.chunks_exact(BLOCK).enumerate() {
                    let at = b * TILE + k;
                    let qs = &mut q[at * BLOCK..(at + 1) * BLOCK];
                    let (db, sb) = quantize_block(xs, qs, simd);
                    if offset {
                        for v in qs.iter_mut() {
                            *v ^= i8::MIN;
                        }
                    }
                    d[at] = db;
                    s[at] = sb;
                }
            }
            if offset {
                // The zero rows that pad a last tile are 128 too.
                let rows = tile_rows(i).len() / cols;
                for b in 0..blocks {
                    for k in rows..TILE {
                        q[(b * TILE + k) * BLOCK..(b * TILE + k + 1) * BLOCK].fill(i8::MIN);
                    }
                }
            }
        };
        t.q.par_chunks_mut(blocks * TILE * BLOCK)
            .zip(t.d.par_chunks_mut(blocks * TILE))
            .zip(t.s.par_chunks_mut(blocks * TILE))
            .enumerate()
            .for_each(|(i, ((q, d), s))| work(i, q, d, s));
        t
    }
}

/// Two weight rows unpacked for the tiled kernel: per block, the two rows' scales as
/// `[d_0 ×4 | d_1 ×4]` and minimums (0 for signed formats) as `[m_0 ×4 | m_1 ×4]` (a vector
/// each, as the kernel multiplies them with [`TILE`] activation rows), and (but for `Q8_0`,
/// read in place) their 32 values as bytes, interleaved per block.
#[derive(Debug, Default)]
struct Panel {
    q: Vec<u8>,
    d: Vec<f32>,
    m: Vec<f32>,
}

impl Panel {
    /// Unpacks `rows` (whole blocks of `kind`, as many in each), interleaved per block.
    #[cfg(target_arch = "x86_64")]
    fn fill(&mut self, kind: Kind, rows: [&[u8]; 2]) {
        let bb = kind.block_bytes();
        let blocks = rows[0].len() / bb;
        assert!(
            rows.iter().all(|r| r.len() == blocks * bb),
            "Panel::fill: rows of different lengths"
        );
        if !kind.in_place() {
            self.q.resize(2 * blocks * BLOCK, 0);
        }
        self.d.resize(2 * TILE * blocks, 0.0);
        self.m.resize(2 * TILE * blocks, 0.0);
        // SAFETY: the panel is only used where `detect_simd` found AVX2, FMA and F16C; the
        // rows hold `blocks` whole blocks each and the panel was sized for them above.
        unsafe { avx2::fill_panel(kind, rows, blocks, self) };
    }

    /// Where the tiled kernel reads the weight bytes of `rows` (those of the last `fill`):
    /// the first block of each row and the distance between blocks. `Q8_0` bytes are read in
    /// place from the rows themselves, the other formats' values decoded from the panel.
    fn weight_bytes(&self, kind: Kind, rows: [&[u8]; 2]) -> ([*const u8; 2], usize) {
        if kind.in_place() {
            (
                [rows[0][2..].as_ptr(), rows[1][2..].as_ptr()],
                kind.block_bytes(),
            )
        } else {
            ([self.q.as_ptr(), self.q[BLOCK..].as_ptr()], 2 * BLOCK)
        }
    }
}

fn f16_at(block: &[u8], at: usize) -> f32 {
    f16::from_le_bytes([block[at], block[at + 1]]).to_f32()
}

/// Dot product of one weight row (its blocks) with one quantized activation row.
fn row_dot_scalar(kind: Kind, w: &[u8], x: &Q8Row) -> f32 {
    let mut acc = 0f32;
    for (b, block) in w.chunks_exact(kind.block_bytes()).enumerate() {
        let q = &x.q[b * BLOCK..(b + 1) * BLOCK];
        let (d, m, wq) = decode_block(kind, block);
        let isum: i32 = wq.iter().zip(q).map(|(&w, &v)| w * v as i32).sum();
        // m is 0 for signed formats; Q4_1's sum in ggml's association.
        acc += d * x.d[b] * isum as f32 + m * x.s[b];
    }
    acc
}

#[cfg(target_arch = "x86_64")]
mod avx2 {
    use super::{Kind, Panel, Q8Row, Q8Tiles, BLOCK, TILE};
    use crate::vector_math::x86::{hsum, hsum8};
    use std::arch::x86_64::*;

    /// One weight block at `p`: `(d, m, w)` with `w` the 32 weights as bytes, ready for
    /// [`products`] (unsigned for `d·q + m` formats, signed for the others, whose `m` is 0).
    ///
    /// # Safety
    /// `p` points at a whole block of `kind`.
    #[target_feature(enable = "avx2,fma,f16c")]
    #[inline]
    unsafe fn weights(kind: Kind, p: *const u8) -> (f32, f32, __m256i) {
        // The scale and minimum as f32: two f16 values at `p`.
        let d_m = || {
            let dm = _mm_cvtph_ps(_mm_cvtsi32_si128((p as *const i32).read_unaligned()));
            (_mm_cvtss_f32(dm), _mm_cvtss_f32(_mm_movehdup_ps(dm)))
        };
        let d_only = || {
            let bits = (p as *const u16).read_unaligned() as i32;
            _mm_cvtss_f32(_mm_cvtph_ps(_mm_cvtsi32_si128(bits)))
        };
        // 16 bytes of nibbles at `q`: elements 0..16 the low ones, 16..32 the high ones.
        let nibbles = |q: *const u8| {
            let packed = _mm_loadu_si128(q as *const __m128i);
            let low = _mm_set1_epi8(0x0f);
            let lo = _mm_and_si128(packed, low);
            let hi = _mm_and_si128(_mm_srli_epi16(packed, 4), low);
            _mm256_set_m128i(hi, lo)
        };
        // 32 bits at `h`, bit `j` becoming 16 in byte `j` (0 where it is clear).
        let fifth = |h: *const u8| {
            let bits = _mm256_set1_epi32((h as *const i32).read_unaligned());
            // Byte j takes the byte of `bits` that holds bit j, then keeps that bit alone.
            let which = _mm256_set_epi64x(
                0x0303_0303_0303_0303,
                0x0202_0202_0202_0202,
                0x0101_0101_0101_0101,
                0,
            );
            let select = _mm256_set1_epi64x(0x8040_2010_0804_0201u64 as i64);
            let set = _mm256_cmpeq_epi8(
                _mm256_and_si256(_mm256_shuffle_epi8(bits, which), select),
                select,
            );
            _mm256_and_si256(set, _mm256_set1_epi8(0x10))
        };
        match kind {
            Kind::Q4_0 => (
                d_only(),
                0.0,
                _mm256_sub_epi8(nibbles(p.add(2)), _mm256_set1_epi8(8)),
            ),
            Kind::Q4_1 => {
                let (d, m) = d_m();
                (d, m, nibbles(p.add(4)))
            }
            Kind::Q5_0 => {
                let q = _mm256_or_si256(nibbles(p.add(6)), fifth(p.add(2)));
                (d_only(), 0.0, _mm256_sub_epi8(q, _mm256_set1_epi8(16)))
            }
            Kind::Q5_1 => {
                let (d, m) = d_m();
                (d, m, _mm256_or_si256(nibbles(p.add(8)), fifth(p.add(4))))
            }
            Kind::Q8_0 => (
                d_only(),
                0.0,
                _mm256_loadu_si256(p.add(2) as *const __m256i),
            ),
        }
    }

    /// Σ w·x per group of four bytes, as 8 floats.
    #[target_feature(enable = "avx2,fma")]
    #[inline]
    fn products(kind: Kind, w: __m256i, x: __m256i) -> __m256 {
        let sums = if kind.signed() {
            // maddubs wants one unsigned operand: |w| times x with w's sign.
            sums_avx2(_mm256_sign_epi8(w, w), _mm256_sign_epi8(x, w))
        } else {
            sums_avx2(w, x)
        };
        _mm256_cvtepi32_ps(sums)
    }

    /// Dot products of four weight rows with one activation row (decoding one token): four
    /// independent accumulators instead of one dependent chain of `fmadd`s.
    ///
    /// # Safety
    /// As [`row_dot`]; the four rows have as many blocks as `x`.
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

    /// `roundf` per lane: truncate, then step away from zero when the dropped fraction is at
    /// least one half (exact: `v - trunc(v)` is representable for every |v| < 2²³).
    #[target_feature(enable = "avx2,fma,f16c")]
    #[inline]
    fn round_away(v: __m256) -> __m256 {
        const TRUNC: i32 = _MM_FROUND_TO_ZERO | _MM_FROUND_NO_EXC;
        let sign = _mm256_set1_ps(-0.0);
        let t = _mm256_round_ps::<TRUNC>(v);
        let frac = _mm256_andnot_ps(sign, _mm256_sub_ps(v, t));
        let up = _mm256_cmp_ps::<_CMP_GE_OQ>(frac, _mm256_set1_ps(0.5));
        let step = _mm256_or_ps(_mm256_and_ps(v, sign), _mm256_set1_ps(1.0));
        _mm256_add_ps(t, _mm256_and_ps(up, step))
    }

    /// [`super::quantize_block_generic`] in AVX2, to the bit (halves away from zero, the same
    /// `d` and sum).
    ///
    /// # Safety
    /// The CPU has AVX2, FMA and F16C; `xs` and `qs` point at 32 values.
    #[target_feature(enable = "avx2,fma,f16c")]
    pub unsafe fn quantize_block(xs: *const f32, qs: *mut i8) -> (f32, f32) {
        let v0 = _mm256_loadu_ps(xs);
        let v1 = _mm256_loadu_ps(xs.add(8));
        let v2 = _mm256_loadu_ps(xs.add(16));
        let v3 = _mm256_loadu_ps(xs.add(24));
        let sign = _mm256_set1_ps(-0.0);
        let amax = _mm256_max_ps(
            _mm256_max_ps(_mm256_andnot_ps(sign, v0), _mm256_andnot_ps(sign, v1)),
            _mm256_max_ps(_mm256_andnot_ps(sign, v2), _mm256_andnot_ps(sign, v3)),
        );
        let m4 = _mm_max_ps(_mm256_castps256_ps128(amax), _mm256_extractf128_ps(amax, 1));
        let m2 = _mm_max_ps(m4, _mm_movehl_ps(m4, m4));
        let amax = _mm_cvtss_f32(_mm_max_ss(m2, _mm_movehdup_ps(m2)));
        let d = amax / 127.0;
        let id = _mm256_set1_ps(if d != 0.0 { 1.0 / d } else { 0.0 });
        let i0 = _mm256_cvtps_epi32(round_away(_mm256_mul_ps(v0, id)));
        let i1 = _mm256_cvtps_epi32(round_away(_mm256_mul_ps(v1, id)));
        let i2 = _mm256_cvtps_epi32(round_away(_mm256_mul_ps(v2, id)));
        let i3 = _mm256_cvtps_epi32(round_away(_mm256_mul_ps(v3, id)));
        let sum = _mm256_add_epi32(_mm256_add_epi32(i0, i1), _mm256_add_epi32(i2, i3));
        let s4 = _mm_add_epi32(
            _mm256_castsi256_si128(sum),
            _mm256_extracti128_si256(sum, 1),
        );
        let s2 = _mm_add_epi32(s4, _mm_unpackhi_epi64(s4, s4));
        let sum = _mm_cvtsi128_si32(_mm_add_epi32(s2, _mm_shuffle_epi32(s2, 1)));
        // Packing works per 128-bit half: put the 4-byte groups back in order.
        let packed = _mm256_packs_epi16(_mm256_packs_epi32(i0, i1), _mm256_packs_epi32(i2, i3));
        let order = _mm256_setr_epi32(0, 4, 1, 5, 2, 6, 3, 7);
        _mm256_storeu_si256(
            qs as *mut __m256i,
            _mm256_permutevar8x32_epi32(packed, order),
        );
        (d, d * sum as f32)
    }

    /// Decodes each block of two weight rows once into `panel` (see [`Panel::fill`]).
    ///
    /// # Safety
    /// The CPU has AVX2, FMA and F16C; both rows hold `blocks` whole blocks of `kind`; the
    /// panel has room for `2 × blocks` blocks.
    #[target_feature(enable = "avx2,fma,f16c")]
    pub unsafe fn fill_panel(kind: Kind, rows: [&[u8]; 2], blocks: usize, panel: &mut Panel) {
        let bb = kind.block_bytes();
        let (q, d, m) = (
            panel.q.as_mut_ptr(),
            panel.d.as_mut_ptr(),
            panel.m.as_mut_ptr(),
        );
        if matches!(kind, Kind::Q4_1 | Kind::Q5_1) {
            // Both rows' f16 scale and minimum (the first four bytes of a block) converted in
            // one instruction, `[d0 m0 d1 m1]`, and spread into the panel's layout by two
            // permutes instead of four scalar broadcasts.
            let (pick_d, pick_m) = (
                _mm256_setr_epi32(0, 0, 0, 0, 2, 2, 2, 2),
                _mm256_setr_epi32(1, 1, 1, 1, 3, 3, 3, 3),
            );
            for b in 0..blocks {
                let (p0, p1) = (rows[0].as_ptr().add(b * bb), rows[1].as_ptr().add(b * bb));
                let (_, _, w0) = weights(kind, p0);
                let (_, _, w1) = weights(kind, p1);
                _mm256_storeu_si256(q.add(2 * b * BLOCK) as *mut __m256i, w0);
                _mm256_storeu_si256(q.add((2 * b + 1) * BLOCK) as *mut __m256i, w1);
                let halves = _mm_set_epi32(
                    0,
                    0,
                    (p1 as *const i32).read_unaligned(),
                    (p0 as *const i32).read_unaligned(),
                );
                let dm = _mm256_castps128_ps256(_mm_cvtph_ps(halves));
                _mm256_storeu_ps(d.add(b * 2 * TILE), _mm256_permutevar8x32_ps(dm, pick_d));
                _mm256_storeu_ps(m.add(b * 2 * TILE), _mm256_permutevar8x32_ps(dm, pick_m));
            }
            return;
        }
        for b in 0..blocks {
            let (d0, m0, w0) = weights(kind, rows[0].as_ptr().add(b * bb));
            let (d1, m1, w1) = weights(kind, rows[1].as_ptr().add(b * bb));
            if !kind.in_place() {
                _mm256_storeu_si256(q.add(2 * b * BLOCK) as *mut __m256i, w0);
                _mm256_storeu_si256(q.add((2 * b + 1) * BLOCK) as *mut __m256i, w1);
            }
            let pair = |a: f32, b: f32| _mm256_set_m128(_mm_set1_ps(b), _mm_set1_ps(a));
            _mm256_storeu_ps(d.add(b * 2 * TILE), pair(d0, d1));
            _mm256_storeu_ps(m.add(b * 2 * TILE), pair(m0, m1));
        }
    }

    /// Σ w·x per group of four bytes, as 8 integers: `maddubs` then `madd` (no VNNI).
    #[target_feature(enable = "avx2")]
    #[inline]
    fn sums_avx2(w: __m256i, x: __m256i) -> __m256i {
        sums_avx2_ones(w, x, _mm256_set1_epi16(1))
    }

    /// [`sums_avx2`] with the vector of 16-bit ones passed in (kept in a register by loops).
    #[target_feature(enable = "avx2")]
    #[inline]
    fn sums_avx2_ones(w: __m256i, x: __m256i, ones: __m256i) -> __m256i {
        _mm256_madd_epi16(_mm256_maddubs_epi16(w, x), ones)
    }

    /// The same sums in one VNNI instruction.
    #[target_feature(enable = "avx2,avx512vnni,avx512vl")]
    #[inline]
    fn sums_vnni(w: __m256i, x: __m256i, _ones: __m256i) -> __m256i {
        _mm256_dpbusd_epi32(_mm256_setzero_si256(), w, x)
    }

    /// `acc +` [`sums_avx2`]: unused (the offset form of the kernel is VNNI's alone), there
    /// for the kernel macro.
    #[target_feature(enable = "avx2")]
    #[inline]
    fn sums_acc_avx2(acc: __m256i, w: __m256i, x: __m256i, ones: __m256i) -> __m256i {
        _mm256_add_epi32(acc, sums_avx2_ones(w, x, ones))
    }

    /// `acc +` [`sums_vnni`] in the one instruction.
    #[target_feature(enable = "avx2,avx512vnni,avx512vl")]
    #[inline]
    fn sums_acc_vnni(acc: __m256i, w: __m256i, x: __m256i, _ones: __m256i) -> __m256i {
        _mm256_dpbusd_epi32(acc, w, x)
    }

    /// Dot products of two weight rows with the [`TILE`] activation rows of one tile, as
    /// `[weight row][activation row]`, in ggml's order of operations for one row pair
    /// (`ggml_vec_dot_q4_1_q8_1`, `ggml_vec_dot_q8_0_q8_0`): per block, eight integer lanes
    /// scaled by `d_w·d_x` into eight float lanes, `m_w·s_x` added separately (not fused),
    /// the lanes summed at the end. The activations SmolLM2's MLP sees reach 3,000, where
    /// another order moves greedy tokens away from llama.cpp's. Each weight block is loaded
    /// once for the four activation rows and each activation block once for the two weight
    /// rows.
    macro_rules! tile_kernel {
        ($name:ident, $features:literal, $sums:ident, $sums_acc:ident) => {
            /// Every tile of `x` in turn, tile `t`'s results into `res[t]`; `SIGNED` for the
            /// `d·q` formats ([`Kind::signed`]), which have no `m_w·s_x` sum. `OFFSET`
            /// (VNNI, signed formats, `x.offset`): `x` holds `q + 128` as unsigned bytes,
            /// multiplied by the signed weights directly, each sum starting from
            /// `−128·Σw` over its four bytes instead of 0, which leaves exactly `Σ q·w`
            /// without the two sign instructions per product the other form needs.
            ///
            /// # Safety
            /// The CPU has the features named; `w` holds the scales of two rows of
            /// `x.blocks` blocks, whose 32 weight bytes each lie at `wq[r] + b·stride`;
            /// `res` has at most `x.tiles` entries.
            #[target_feature(enable = $features)]
            pub unsafe fn $name<const SIGNED: bool, const OFFSET: bool>(
                w: &Panel,
                wq: [*const u8; 2],
                stride: usize,
                x: &Q8Tiles,
                res: &mut [[[f32; TILE]; 2]],
                scales: &mut [f32],
            ) {
                let blocks = x.blocks;
                assert!(
                    scales.len() >= blocks * 2 * TILE + if OFFSET { blocks * 16 } else { 0 }
                        && w.d.len() >= blocks * 2 * TILE
                        && w.m.len() >= blocks * 2 * TILE
                        && OFFSET == (SIGNED && x.offset),
                    "tile kernel: panel or scale scratch too short, or the wrong offset"
                );
                let ones = _mm256_set1_epi16(1);
                let dws = w.d.as_ptr();
                // With `OFFSET`, per block the two rows' starting sums `−128·Σw` (eight lanes
                // each), after the tile scales in the scratch.
                let starts = scales.as_mut_ptr().add(blocks * 2 * TILE) as *mut __m256i;
                if OFFSET {
                    let bias = _mm256_set1_epi8(i8::MIN);
                    for b in 0..blocks {
                        for (r, &row) in wq.iter().enumerate() {
                            let wv = _mm256_loadu_si256(row.add(b * stride) as *const __m256i);
                            let up = $sums(bias, wv, ones);
                            _mm256_storeu_si256(
                                starts.add(2 * b + r),
                                _mm256_sub_epi32(_mm256_setzero_si256(), up),
                            );
                        }
                    }
                }
                let starts = starts as *const __m256i;
                for (tile, res) in res.iter_mut().enumerate() {
                    // Eight accumulators, [weight row][activation row], as named registers:
                    // with arrays of them the compiler spilled to the stack in the hot loop.
                    let (mut a00, mut a01, mut a02, mut a03) = (
                        _mm256_setzero_ps(),
                        _mm256_setzero_ps(),
                        _mm256_setzero_ps(),
                        _mm256_setzero_ps(),
                    );
                    let (mut a10, mut a11, mut a12, mut a13) = (
                        _mm256_setzero_ps(),
                        _mm256_setzero_ps(),
                        _mm256_setzero_ps(),
                        _mm256_setzero_ps(),
                    );
                    // Σ m_w·s_x per block, in block order (ggml's separate scalar sum, not
                    // fused), `[row 0's four activation rows | row 1's]`; in the main loop,
                    // where its chain of additions hides behind the products.
                    let mut msum = _mm256_setzero_ps();
                    let base = tile * blocks;
                    let xq = x.q.as_ptr().add(base * TILE * BLOCK);
                    let xs = x.s.as_ptr().add(base * TILE);
                    // Before the block loop, so that it only loads these: per block the
                    // products `[d_w0·d_x ×4 rows | d_w1·d_x]` (ggml's scalar products; one
                    // vector multiply gives the same rounding lane by lane), for this tile
                    // only, so that they stay in L1 however many tiles there are.
                    for b in 0..blocks {
                        let dw = _mm256_loadu_ps(dws.add(b * 2 * TILE));
                        let dx = _mm256_broadcast_ps(
                            &*(x.d.as_ptr().add((base + b) * TILE) as *const __m128),
                        );
                        _mm256_storeu_ps(
                            scales.as_mut_ptr().add(b * 2 * TILE),
                            _mm256_mul_ps(dw, dx),
                        );
                    }
                    let scales = scales.as_ptr();
                    for b in 0..blocks {
                        let xp = xq.add(b * TILE * BLOCK);
                        let w0 = _mm256_loadu_si256(wq[0].add(b * stride) as *const __m256i);
                        let w1 = _mm256_loadu_si256(wq[1].add(b * stride) as *const __m256i);
                        let sc = scales.add(b * 2 * TILE);
                        // One unsigned operand for signed weights: |w| times x with w's sign
                        // (or, with `OFFSET`, x + 128 times w from a start of −128·Σw).
                        let (u0, u1) = if SIGNED && !OFFSET {
                            (_mm256_sign_epi8(w0, w0), _mm256_sign_epi8(w1, w1))
                        } else {
                            (w0, w1)
                        };
                        let (c0, c1) = if OFFSET {
                            (
                                _mm256_loadu_si256(starts.add(2 * b)),
                                _mm256_loadu_si256(starts.add(2 * b + 1)),
                            )
                        } else {
                            (_mm256_setzero_si256(), _mm256_setzero_si256())
                        };
                        macro_rules! step {
                            ($k:literal, $acc0:ident, $acc1:ident) => {{
                                let xk = _mm256_loadu_si256(xp.add($k * BLOCK) as *const __m256i);
                                let (s0, s1) = if OFFSET {
                                    ($sums_acc(c0, xk, u0, ones), $sums_acc(c1, xk, u1, ones))
                                } else if SIGNED {
                                    let x0 = _mm256_sign_epi8(xk, w0);
                                    let x1 = _mm256_sign_epi8(xk, w1);
                                    ($sums(u0, x0, ones), $sums(u1, x1, ones))
                                } else {
                                    ($sums(u0, xk, ones), $sums(u1, xk, ones))
                                };
                                let s0 = _mm256_cvtepi32_ps(s0);
                                let s1 = _mm256_cvtepi32_ps(s1);
                                let d0 = _mm256_broadcast_ss(&*sc.add($k));
                                let d1 = _mm256_broadcast_ss(&*sc.add(TILE + $k));
                                $acc0 = _mm256_fmadd_ps(d0, s0, $acc0);
                                $acc1 = _mm256_fmadd_ps(d1, s1, $acc1);
                            }};
                        }
                        step!(0, a00, a10);
                        step!(1, a01, a11);
                        step!(2, a02, a12);
                        step!(3, a03, a13);
                        if !SIGNED {
                            let mw = _mm256_loadu_ps(w.m.as_ptr().add(b * 2 * TILE));
                            let sx = _mm256_broadcast_ps(&*(xs.add(b * TILE) as *const __m128));
                            msum = _mm256_add_ps(msum, _mm256_mul_ps(mw, sx));
                        }
                    }
                    // The eight sums `[a00 a01 a02 a03 | a10 a11 a12 a13]` in one vector, each
                    // in `hsum`'s order, plus the minimums' sums; one store for the tile.
                    let sums = hsum8([a00, a01, a02, a03, a10, a11, a12, a13]);
                    _mm256_storeu_ps(res.as_mut_ptr() as *mut f32, _mm256_add_ps(sums, msum));
                }
            }
        };
    }

    tile_kernel!(tile2_avx2, "avx2,fma,f16c", sums_avx2_ones, sums_acc_avx2);
    tile_kernel!(
        tile2_vnni,
        "avx2,fma,f16c,avx512vnni,avx512vl",
        sums_vnni,
        sums_acc_vnni
    );

    /// Dot product of the weight row `w` with `x` (decoding's rows left over from [`dot4`];
    /// several input rows go through the tiled kernel).
    ///
    /// # Safety
    /// The CPU must have AVX2, FMA and F16C; `w` holds whole blocks of `kind`, as many as `x`.
    #[target_feature(enable = "avx2,fma,f16c")]
    pub unsafe fn row_dot(kind: Kind, w: &[u8], x: &Q8Row) -> f32 {
        let bb = kind.block_bytes();
        let mut acc = _mm256_setzero_ps();
        let mut acc_m = 0f32;
        for b in 0..w.len() / bb {
            let (d, m, wq) = weights(kind, w.as_ptr().add(b * bb));
            let xq = _mm256_loadu_si256(x.q.as_ptr().add(b * BLOCK) as *const __m256i);
            acc = _mm256_fmadd_ps(_mm256_set1_ps(d * x.d[b]), products(kind, wq, xq), acc);
            acc_m += m * x.s[b];
        }
        hsum(acc) + acc_m
    }
}

/// The integer dot-product instructions the CPU offers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Simd {
    /// Plain loops.
    None,
    /// AVX2 `maddubs` + `madd`, with FMA and F16C.
    Avx2,
    /// AVX2 with AVX-512 VNNI's `dpbusd` on 256-bit vectors.
    Vnni,
}

fn detect_simd() -> Simd {
    #[cfg(target_arch = "x86_64")]
    {
        if std::arch::is_x86_feature_detected!("avx2")
            && std::arch::is_x86_feature_detected!("fma")
            && std::arch::is_x86_feature_detected!("f16c")
        {
            if std::arch::is_x86_feature_detected!("avx512vnni")
                && std::arch::is_x86_feature_detected!("avx512vl")
            {
                return Simd::Vnni;
            }
            return Simd::Avx2;
        }
    }
    Simd::None
}

fn row_dots(kind: Kind, w: &[u8], xs: &[Q8Row], out: &mut [f32], simd: Simd) {
    for (o, x) in out.iter_mut().zip(xs) {
        *o = match simd {
            // SAFETY: `simd` is only Avx2 or Vnni when the CPU has AVX2, FMA and F16C
            // (`detect_simd`); `matmul_at` passes whole blocks of one weight row and
            // activation rows of the same length.
            #[cfg(target_arch = "x86_64")]
            Simd::Avx2 | Simd::Vnni => unsafe { avx2::row_dot(kind, w, x) },
            _ => row_dot_scalar(kind, w, x),
        };
    }
}

/// Two weight rows (`rows`, unpacked into `w` by [`Panel::fill`]) times every tile of
/// activation rows, tile `t`'s results into `res[t]`.
#[cfg(target_arch = "x86_64")]
fn tile2(
    simd: Simd,
    kind: Kind,
    w: &Panel,
    rows: [&[u8]; 2],
    x: &Q8Tiles,
    res: &mut [[[f32; TILE]; 2]],
    sc: &mut Vec<f32>,
) {
    let bb = kind.block_bytes();
    // A tile's scale products, and with `x.offset` the weight rows' starting sums.
    sc.resize(
        x.blocks * 2 * TILE + if x.offset { x.blocks * 16 } else { 0 },
        0.0,
    );
    assert!(
        rows.iter().all(|r| r.len() == x.blocks * bb)
            && w.d.len() == 2 * TILE * x.blocks
            && w.m.len() == 2 * TILE * x.blocks
            && (kind.in_place() || w.q.len() == 2 * x.blocks * BLOCK)
            && res.len() <= x.tiles,
        "tile2: weight panel or tiles out of range"
    );
    let (wq, stride) = w.weight_bytes(kind, rows);
    // SAFETY: the CPU has the features of the kernel called (`detect_simd` chose `simd`), and
    // the assertion above bounds every read: block `b < x.blocks` of row `r` starts at
    // `wq[r] + b·stride` inside the panel or (Q8_0) the row itself, 2 bytes into it.
    unsafe {
        match (simd, kind.signed(), x.offset) {
            (Simd::Vnni, false, _) => avx2::tile2_vnni::<false, false>(w, wq, stride, x, res, sc),
            (Simd::Vnni, true, false) => avx2::tile2_vnni::<true, false>(w, wq, stride, x, res, sc),
            (Simd::Vnni, true, true) => avx2::tile2_vnni::<true, true>(w, wq, stride, x, res, sc),
            (_, false, _) => avx2::tile2_avx2::<false, false>(w, wq, stride, x, res, sc),
            (_, true, _) => avx2::tile2_avx2::<true, false>(w, wq, stride, x, res, sc),
        }
    }
}

/// Writes the tiled kernel's results for weight rows `r` and `r1` (`res[t][j][k]`: row `r` or
/// `r1` times activation row `t·TILE + k`) into `local`, `m` rows of `n` columns.
#[cfg(target_arch = "x86_64")]
fn scatter_pair(
    res: &[[[f32; TILE]; 2]],
    m: usize,
    n: usize,
    r: usize,
    r1: usize,
    local: &mut [std::mem::MaybeUninit<f32>],
) {
    assert!(
        r <= r1 && r1 < n && m * n <= local.len() && res.len() * TILE >= m,
        "scatter_pair: out of range"
    );
    let out = local.as_mut_ptr() as *mut f32;
    for (t, y) in res.iter().enumerate() {
        let first = t * TILE;
        if first >= m {
            break;
        }
        let rows = TILE.min(m - first);
        // SAFETY: `first + k < m` and `r, r1 < n`, so every index is below `m · n`, inside
        // `local` (asserted above).
        unsafe {
            for (k, (&a, &b)) in y[0].iter().zip(&y[1]).take(rows).enumerate() {
                let row = out.add((first + k) * n);
                *row.add(r) = a;
                *row.add(r1) = b;
            }
        }
    }
}

/// Asks the CPU to bring `bytes` into cache (a hint: no effect on results).
#[cfg(target_arch = "x86_64")]
fn prefetch(bytes: &[u8]) {
    for line in bytes.chunks(64) {
        // SAFETY: prefetching is a hint that never faults; the address is inside `bytes`.
        unsafe {
            std::arch::x86_64::_mm_prefetch::<{ std::arch::x86_64::_MM_HINT_T0 }>(
                line.as_ptr() as *const i8
            )
        };
    }
}

/// A result buffer written by several tasks at disjoint indices.
struct SharedOut(*mut f32);

// SAFETY: only `write` reaches the pointer, and its callers write disjoint indices.
unsafe impl Sync for SharedOut {}

impl SharedOut {
    /// # Safety
    /// `at` is inside the buffer and no other task writes or reads it meanwhile.
    unsafe fn write(&self, at: usize, val: f32) {
        self.0.add(at).write(val);
    }

    /// # Safety
    /// `at..at + vals.len()` is inside the buffer and no other task writes or reads it
    /// meanwhile.
    unsafe fn write_run(&self, at: usize, vals: &[f32]) {
        std::ptr::copy_nonoverlapping(vals.as_ptr(), self.0.add(at), vals.len());
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
    let simd = if simd { detect_simd() } else { Simd::None };
    matmul_at(kind, blocks, rows, cols, x, simd)
}

fn matmul_at(
    kind: Kind,
    blocks: &[u8],
    rows: usize,
    cols: usize,
    x: &[f32],
    simd: Simd,
) -> candle_core::Result<Vec<f32>> {
    let mut out = product(
        kind,
        &[Matrix { blocks, rows }],
        cols,
        x,
        simd,
        Epilogue::Separate { residual: None },
    )?;
    Ok(out.pop().unwrap_or_default())
}

/// One weight matrix of a [`product`]: `rows` rows of whole blocks.
#[derive(Debug, Clone, Copy)]
struct Matrix<'a> {
    blocks: &'a [u8],
    rows: usize,
}

/// What a [`product`] makes of its matrices' results.
#[derive(Debug, Clone, Copy)]
enum Epilogue<'a> {
    /// Each matrix's `x · Wᵀ` (`m × rows`) on its own, plus `residual` (one matrix only, of
    /// the result's shape) where given.
    Separate { residual: Option<&'a [f32]> },
    /// Two matrices of one shape, gate and up: `silu(x · gateᵀ) · (x · upᵀ)`, `m × rows`. Row
    /// `j` of each is one pair of the tiled kernel, so both values meet in registers' reach.
    SwiGlu,
}

/// Weight rows `first..first + n` of matrix `part` (for [`Epilogue::SwiGlu`], of the gate and
/// up rows interleaved: row `2j` is gate row `j`, `2j + 1` up row `j`).
#[derive(Debug, Clone, Copy)]
struct Chunk {
    part: usize,
    first: usize,
    n: usize,
}

/// `x` (`m × cols`) times the transpose of each matrix in `mats` (all of `kind`, `cols` wide),
/// in one parallel pass: `x` is quantized once, the rows of every matrix are shared out
/// together, and `epilogue` says what is written. Every value is the one [`matmul_slices`]
/// gives for that matrix alone, to the bit.
fn product(
    kind: Kind,
    mats: &[Matrix],
    cols: usize,
    x: &[f32],
    simd: Simd,
    epilogue: Epilogue,
) -> candle_core::Result<Vec<Vec<f32>>> {
    if !supported(cols) {
        candle_core::bail!("{kind:?} matmul: {cols} columns are not whole blocks of {BLOCK}");
    }
    let row_bytes = cols / BLOCK * kind.block_bytes();
    for w in mats {
        if w.blocks.len() != w.rows * row_bytes {
            candle_core::bail!(
                "{kind:?} matmul: {} bytes for a {}×{cols} matrix (expected {})",
                w.blocks.len(),
                w.rows,
                w.rows * row_bytes
            );
        }
    }
    if !x.len().is_multiple_of(cols) {
        candle_core::bail!(
            "{kind:?} matmul: input of {} values is not rows of {cols}",
            x.len()
        );
    }
    let m = x.len() / cols;
    let swiglu = matches!(epilogue, Epilogue::SwiGlu);
    match epilogue {
        Epilogue::SwiGlu if mats.len() != 2 || mats[0].rows != mats[1].rows => {
            candle_core::bail!("SwiGLU matmul: needs a gate and an up matrix of one shape")
        }
        Epilogue::Separate {
            residual: Some(res),
        } if mats.len() != 1 || res.len() != m * mats[0].rows => {
            candle_core::bail!("matmul: the residual is not of the result's shape")
        }
        _ => {}
    }
    let tiled = m > 1 && simd != Simd::None;
    let xq: Vec<Q8Row> = if tiled {
        Vec::new()
    } else if m > 4 {
        x.par_chunks_exact(cols)
            .map(|r| quantize_row(r, simd))
            .collect()
    } else {
        x.chunks_exact(cols)
            .map(|r| quantize_row(r, simd))
            .collect()
    };
    let tiles =
        tiled.then(|| Q8Tiles::quantize(x, cols, simd, simd == Simd::Vnni && kind.signed()));

    // The columns of each output, and the weight rows the kernels walk for it: one per
    // column, SwiGLU's gate and up rows interleaved two per column. They are shared out in
    // chunks of an even number of rows (SwiGLU's pairs stay together), never across two
    // outputs.
    let out_rows: Vec<usize> = if swiglu {
        vec![mats[0].rows]
    } else {
        mats.iter().map(|w| w.rows).collect()
    };
    let per_column = if swiglu { 2 } else { 1 };
    let total = out_rows.iter().sum::<usize>() * per_column;
    let chunk = (total / (rayon::current_num_threads() * 8)).clamp(16, 512);
    let chunk = chunk + chunk % 2;
    let chunks: Vec<Chunk> = out_rows
        .iter()
        .enumerate()
        .flat_map(|(part, &columns)| {
            let rows = columns * per_column;
            (0..rows.div_ceil(chunk)).map(move |c| Chunk {
                part,
                first: c * chunk,
                n: chunk.min(rows - c * chunk),
            })
        })
        .collect();
    let row = |part: usize, r: usize| -> &[u8] {
        let (w, r) = if swiglu {
            (&mats[r & 1], r >> 1)
        } else {
            (&mats[part], r)
        };
        &w.blocks[r * row_bytes..(r + 1) * row_bytes]
    };

    // Every value of every output is written below (the chunks cover all rows of all parts,
    // each for all `m` rows of `x`): no clearing first.
    let mut outs: Vec<Vec<std::mem::MaybeUninit<f32>>> = out_rows
        .iter()
        .map(|&rows| crate::fused_grad::uninit::<f32>(m * rows))
        .collect();
    let dst: Vec<SharedOut> = outs
        .iter_mut()
        .map(|o| SharedOut(o.as_mut_ptr() as *mut f32))
        .collect();

    chunks.par_iter().for_each(|&Chunk { part, first, n }| {
        let row = |r: usize| row(part, first + r);
        // This chunk's results, `m × n`: gathered here and written out a row of `x` at a time
        // (straight into the output, each pair of weight rows would touch `m` cache lines
        // `rows` floats apart, a page apart and more for the output layer).
        let mut local = crate::fused_grad::uninit::<f32>(m * n);
        let mut done = 0;
        #[cfg(target_arch = "x86_64")]
        if let Some(tiles) = &tiles {
            // Two weight rows at a time (the last one twice when the count is odd), decoded
            // once and run against every tile of activation rows while they are in L1.
            let mut panel = Panel::default();
            let mut res = vec![[[0f32; TILE]; 2]; tiles.tiles];
            let mut scales = Vec::new();
            for r in (0..n).step_by(2) {
                let r1 = (r + 1).min(n - 1);
                let pair = [row(r), row(r1)];
                panel.fill(kind, pair);
                // The next pair comes from memory while this one runs against every tile.
                for next in (r + 2..n).take(2) {
                    prefetch(row(next));
                }
                tile2(simd, kind, &panel, pair, tiles, &mut res, &mut scales);
                scatter_pair(&res, m, n, r, r1, &mut local);
            }
            done = n;
        }
        #[cfg(target_arch = "x86_64")]
        if simd != Simd::None && m == 1 {
            while done + 4 <= n {
                // Decoding one token is bound by how fast weights arrive from memory: ask
                // for the next four rows while these four are multiplied.
                for next in (done + 4..n).take(4) {
                    prefetch(row(next));
                }
                let r = done;
                // SAFETY: as in `row_dots`; four whole weight rows and one activation row.
                let y = unsafe {
                    avx2::dot4(kind, [row(r), row(r + 1), row(r + 2), row(r + 3)], &xq[0])
                };
                for (k, v) in y.into_iter().enumerate() {
                    local[r + k].write(v);
                }
                done += 4;
            }
        }
        let mut one = vec![0f32; if done < n { m } else { 0 }];
        for r in done..n {
            row_dots(kind, row(r), &xq, &mut one, simd);
            for (i, &v) in one.iter().enumerate() {
                local[i * n + r].write(v);
            }
        }
        // SAFETY: every value was written above: the pairs, the groups of four or the single
        // rows cover all `n` weight rows, each for every row of `x`.
        let local = unsafe { crate::fused_grad::written(&mut local) };
        let rows = out_rows[part];
        let mut swiglu_row = vec![0f32; if swiglu { n / 2 } else { 0 }];
        for (i, part_row) in local.chunks_exact(n).enumerate() {
            match epilogue {
                // SAFETY (all three): `i < m` and the chunk's columns lie inside its part's
                // `rows` (`first + n <= rows`, for SwiGLU `(first + n) / 2 <= rows`); tasks
                // own disjoint chunks, hence disjoint columns.
                Epilogue::Separate { residual: None } => unsafe {
                    dst[part].write_run(i * rows + first, part_row)
                },
                Epilogue::Separate {
                    residual: Some(res),
                } => {
                    let res = &res[i * rows + first..i * rows + first + n];
                    for (c, (&y, &r)) in part_row.iter().zip(res).enumerate() {
                        unsafe { dst[part].write(i * rows + first + c, r + y) };
                    }
                }
                Epilogue::SwiGlu => {
                    crate::vector_math::silu_mul_pairs(part_row, &mut swiglu_row);
                    unsafe { dst[0].write_run(i * rows + first / 2, &swiglu_row) };
                }
            }
        }
    });
    // SAFETY: see above; the chunks wrote every value of every output.
    Ok(outs
        .into_iter()
        .map(|o| unsafe { crate::fused_grad::assume_init(o) })
        .collect())
}

/// `x · Wᵀ` for a CPU tensor `w` of one of the [`Kind`]s of shape `(rows, cols)` and an f32 CPU
/// input `(.., cols)`; `None` when this kernel does not apply (other dtype, device or shape).
pub fn forward(
    w: &candle_core::quantized::QTensor,
    x: &Tensor,
) -> candle_core::Result<Option<Tensor>> {
    let Some(kind) = Kind::of(w.dtype()) else {
        return Ok(None);
    };
    cpu_forward(w, x, supported, |data, rows, cols, xs| {
        matmul_slices(kind, data, rows, cols, xs, true)
    })
}

/// `residual + x · Wᵀ` in one pass (the sum written with the product instead of a second
/// pass over the result); the same values as `residual + forward(w, x)`. `None` where
/// [`forward_many`] would give `None`, or when `residual` is not an f32 CPU tensor of the
/// result's shape.
pub fn forward_residual(
    w: &candle_core::quantized::QTensor,
    x: &Tensor,
    residual: &Tensor,
) -> candle_core::Result<Option<Tensor>> {
    Ok(fused_forward(&[w], x, Fused::Residual(residual))?.and_then(|mut ys| ys.pop()))
}

/// `x · Wᵢᵀ` for every `Wᵢ` of `ws` (a layer's query, key and value projections) in one pass:
/// `x` quantized once and the rows of all of them shared out among the threads together.
/// Each result is, to the bit, what [`forward`] gives for that matrix. `None` (the caller
/// then multiplies them one by one) unless all are CPU tensors of one [`Kind`] and width,
/// and `x` is f32 on the CPU outside a graph.
pub fn forward_many(
    ws: &[&candle_core::quantized::QTensor],
    x: &Tensor,
) -> candle_core::Result<Option<Vec<Tensor>>> {
    fused_forward(ws, x, Fused::Separate)
}

/// `silu(x · gateᵀ) · (x · upᵀ)`, a SwiGLU MLP's hidden state, in one pass: each pair of the
/// tiled kernel is a gate row and its up row, and the SiLU is taken as their results are
/// written, in candle's arithmetic, so the values are those of `silu(forward(gate, x)) ·
/// forward(up, x)` to the bit. `None` as for [`forward_many`], or when the two differ in shape.
pub fn forward_swiglu(
    gate: &candle_core::quantized::QTensor,
    up: &candle_core::quantized::QTensor,
    x: &Tensor,
) -> candle_core::Result<Option<Tensor>> {
    if gate.shape() != up.shape() {
        return Ok(None);
    }
    Ok(fused_forward(&[gate, up], x, Fused::SwiGlu)?.and_then(|mut ys| ys.pop()))
}

/// What [`fused_forward`] makes of its matrices' products.
enum Fused<'a> {
    Separate,
    Residual(&'a Tensor),
    SwiGlu,
}

fn fused_forward(
    ws: &[&candle_core::quantized::QTensor],
    x: &Tensor,
    fused: Fused,
) -> candle_core::Result<Option<Vec<Tensor>>> {
    if !x.device().is_cpu() || x.dtype() != DType::F32 || x.track_op() {
        return Ok(None);
    }
    let Some(first) = ws.first() else {
        return Ok(None);
    };
    let Some(kind) = Kind::of(first.dtype()) else {
        return Ok(None);
    };
    let mut shapes = Vec::with_capacity(ws.len());
    for w in ws {
        let (rows, cols) = w.shape().dims2()?;
        if Kind::of(w.dtype()) != Some(kind)
            || !w.device().is_cpu()
            || !supported(cols)
            || x.dims().last() != Some(&cols)
        {
            return Ok(None);
        }
        shapes.push((rows, cols));
    }
    let cols = shapes[0].1;
    let dims_of = |rows: usize| {
        let mut dims = x.dims().to_vec();
        if let Some(last) = dims.last_mut() {
            *last = rows;
        }
        dims
    };
    let residual = match fused {
        Fused::Residual(r) => {
            if !r.device().is_cpu() || r.dtype() != DType::F32 || r.dims() != dims_of(shapes[0].0) {
                return Ok(None);
            }
            Some(r.contiguous()?)
        }
        _ => None,
    };
    let datas = ws
        .iter()
        .map(|w| w.data())
        .collect::<candle_core::Result<Vec<_>>>()?;
    let mats: Vec<Matrix> = datas
        .iter()
        .zip(&shapes)
        .map(|(d, &(rows, _))| Matrix { blocks: d, rows })
        .collect();
    let x = x.contiguous()?;
    let (xs, xl) = x.storage_and_layout();
    let candle_core::Storage::Cpu(xs) = &*xs else {
        return Ok(None);
    };
    let xv = crate::fused_grad::slice::<f32>(xs, xl, "quantized matmul")?;
    let guard = residual.as_ref().map(|r| r.storage_and_layout());
    let res = match &guard {
        Some((rs, rl)) => {
            let candle_core::Storage::Cpu(rs) = &**rs else {
                return Ok(None);
            };
            Some(crate::fused_grad::slice::<f32>(rs, rl, "quantized matmul")?)
        }
        None => None,
    };
    let epilogue = match fused {
        Fused::SwiGlu => Epilogue::SwiGlu,
        _ => Epilogue::Separate { residual: res },
    };
    let outs = product(kind, &mats, cols, xv, detect_simd(), epilogue)?;
    outs.into_iter()
        .zip(&shapes)
        .map(|(y, &(rows, _))| Tensor::from_vec(y, dims_of(rows), &Device::Cpu))
        .collect::<candle_core::Result<Vec<_>>>()
        .map(Some)
}

/// `x · Wᵀ` by `product` (of `w`'s bytes, its rows and columns, and `x`'s values, giving
/// `m × rows` values) for a `(rows, cols)` CPU tensor `w` and an f32 CPU input `(.., cols)`,
/// whose leading dims the result keeps. `None` when either is elsewhere, `x` is not f32, or
/// `x`'s width is not `cols` or not one `takes` (the CPU kernels' shared checks).
pub(crate) fn cpu_forward(
    w: &candle_core::quantized::QTensor,
    x: &Tensor,
    takes: impl Fn(usize) -> bool,
    product: impl FnOnce(&[u8], usize, usize, &[f32]) -> candle_core::Result<Vec<f32>>,
) -> candle_core::Result<Option<Tensor>> {
    if !matches!(w.device(), Device::Cpu)
        || !matches!(x.device(), Device::Cpu)
        || x.dtype() != DType::F32
    {
        return Ok(None);
    }
    let (rows, cols) = w.shape().dims2()?;
    if !takes(cols) || x.dims().last() != Some(&cols) {
        return Ok(None);
    }
    let data = w.data()?;
    // The input's values in place (a copy only when it is not contiguous).
    let x = x.contiguous()?;
    let y = {
        let (storage, layout) = x.storage_and_layout();
        let candle_core::Storage::Cpu(cpu) = &*storage else {
            return Ok(None);
        };
        product(
            &data,
            rows,
            cols,
            crate::fused_grad::slice::<f32>(cpu, layout, "quantized matmul")?,
        )?
    };
    let mut dims = x.dims().to_vec();
    if let Some(last) = dims.last_mut() {
        *last = rows;
    }
    Ok(Some(Tensor::from_vec(y, dims, &Device::Cpu)?))
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use candle_core::quantized::{GgmlDType, QMatMul, QTensor};
    use candle_core::Module;

    /// A tensor's values as bits, for tests that hold two computations to the same bits.
    pub(crate) fn f32_bits(t: &Tensor) -> Vec<u32> {
        let v: Vec<f32> = t.flatten_all().unwrap().to_vec1().unwrap();
        v.into_iter().map(f32::to_bits).collect()
    }

    /// Seeded values in [-1, 1] (xorshift), for the kernels' tests.
    pub(crate) fn pseudo(n: usize, seed: u32) -> Vec<f32> {
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

    const KINDS: [(Kind, GgmlDType); 5] = [
        (Kind::Q4_0, GgmlDType::Q4_0),
        (Kind::Q4_1, GgmlDType::Q4_1),
        (Kind::Q5_0, GgmlDType::Q5_0),
        (Kind::Q5_1, GgmlDType::Q5_1),
        (Kind::Q8_0, GgmlDType::Q8_0),
    ];

    fn quantized(dtype: GgmlDType, rows: usize, cols: usize) -> QTensor {
        quantized_from(dtype, rows, cols, 7)
    }

    fn quantized_from(dtype: GgmlDType, rows: usize, cols: usize, seed: u32) -> QTensor {
        let w = Tensor::from_vec(pseudo(rows * cols, seed), (rows, cols), &Device::Cpu).unwrap();
        QTensor::quantize(&w, dtype).unwrap()
    }

    /// The exact arithmetic of ggml's dot products (signed formats × Q8_0, the others × Q8_1),
    /// written out per element in f64.
    fn reference(kind: Kind, w: &QTensor, x: &[f32], cols: usize) -> Vec<f32> {
        let data = w.data().unwrap();
        let rows = w.shape().dims2().unwrap().0;
        let bb = kind.block_bytes();
        let row_bytes = cols / BLOCK * bb;
        let mut out = Vec::new();
        for xr in x.chunks(cols) {
            let q = quantize_row(xr, Simd::None);
            for r in 0..rows {
                let mut acc = 0f64;
                for b in 0..cols / BLOCK {
                    let block = &data[r * row_bytes + b * bb..][..bb];
                    let (d, m, wq) = decode_block(kind, block);
                    for (&w, &v) in wq.iter().zip(&q.q[b * BLOCK..(b + 1) * BLOCK]) {
                        acc += d as f64 * w as f64 * v as f64 * q.d[b] as f64;
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
        for (kind, dtype) in KINDS {
            let w = quantized(dtype, rows, cols);
            for m in [1usize, 2, 3, 4, 9, 32] {
                let x = pseudo(m * cols, 11 + m as u32);
                let want = reference(kind, &w, &x, cols);
                let data = w.data().unwrap();
                // Every kernel this CPU can run: plain loops, AVX2, and AVX2 with VNNI.
                let levels = match detect_simd() {
                    Simd::None => vec![Simd::None],
                    Simd::Avx2 => vec![Simd::None, Simd::Avx2],
                    Simd::Vnni => vec![Simd::None, Simd::Avx2, Simd::Vnni],
                };
                for simd in levels {
                    let got = matmul_at(kind, &data, rows, cols, &x, simd).unwrap();
                    for (g, e) in got.iter().zip(&want) {
                        assert!(
                            (g - e).abs() <= 1e-4 * (1.0 + e.abs()),
                            "{kind:?} m {m} simd {simd:?}: {g} vs {e}"
                        );
                    }
                }
                // candle's own product: the same up to how the input's 8-bit rounding falls
                // (its path for several rows rounds differently by ~0.1%; from 16 rows on it
                // multiplies dequantized f32 weights, which the tolerance here does not cover).
                if m > 9 {
                    continue;
                }
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

    /// The tiled kernel (several input rows) gives, to the bit, what the one-row kernel gives
    /// each row alone: ggml's order of operations, whatever the tile layout.
    #[test]
    fn tiled_rows_equal_one_row_at_a_time_to_the_bit() {
        let simd = detect_simd();
        if simd == Simd::None {
            return;
        }
        let (rows, cols) = (37, 320);
        for (kind, dtype) in KINDS {
            let w = quantized(dtype, rows, cols);
            let data = w.data().unwrap();
            let row_bytes = cols / BLOCK * kind.block_bytes();
            for m in [2usize, 5, 8, 32] {
                let x = pseudo(m * cols, 7 + m as u32);
                let got = matmul_at(kind, &data, rows, cols, &x, simd).unwrap();
                for (i, xi) in x.chunks_exact(cols).enumerate() {
                    let q = [quantize_row(xi, simd)];
                    for r in 0..rows {
                        let mut one = [0f32];
                        row_dots(
                            kind,
                            &data[r * row_bytes..(r + 1) * row_bytes],
                            &q,
                            &mut one,
                            simd,
                        );
                        assert_eq!(
                            got[i * rows + r].to_bits(),
                            one[0].to_bits(),
                            "{kind:?} m {m} row {i} weight row {r}: {} vs {}",
                            got[i * rows + r],
                            one[0]
                        );
                    }
                }
            }
        }
    }

    #[test]
    fn simd_quantization_is_the_plain_one_to_the_bit() {
        if detect_simd() == Simd::None {
            return;
        }
        let mut x = pseudo(BLOCK * 64, 3);
        // A block of zeros, and one of ties: with a maximum of 127 the scale is 1, so the
        // x.5 values round away from zero.
        x[BLOCK..2 * BLOCK].iter_mut().for_each(|v| *v = 0.0);
        for (i, v) in x[2 * BLOCK..3 * BLOCK].iter_mut().enumerate() {
            *v = if i == 0 { 127.0 } else { i as f32 - 15.5 };
        }
        for (k, xs) in x.chunks_exact(BLOCK).enumerate() {
            let (mut a, mut b) = ([0i8; BLOCK], [0i8; BLOCK]);
            let plain = quantize_block(xs, &mut a, Simd::None);
            let simd = quantize_block(xs, &mut b, detect_simd());
            assert_eq!(
                (a, plain.0.to_bits(), plain.1.to_bits()),
                (b, simd.0.to_bits(), simd.1.to_bits()),
                "block {k}"
            );
        }
    }

    /// The fused products (a layer's projections together, SwiGLU, the residual sum) give, to
    /// the bit, what one product per matrix followed by candle's arithmetic gives.
    #[test]
    fn fused_products_equal_one_product_per_matrix_to_the_bit() {
        let cols = 96;
        let vals = |t: &Tensor| t.flatten_all().unwrap().to_vec1::<f32>().unwrap();
        for (kind, dtype) in KINDS {
            // Odd row counts: the tiled kernel's last pair repeats a row.
            let (a, b, c) = (
                quantized_from(dtype, 37, cols, 3),
                quantized_from(dtype, 13, cols, 5),
                quantized_from(dtype, 13, cols, 9),
            );
            for m in [1usize, 3, 8, 33] {
                let x = Tensor::from_vec(pseudo(m * cols, 11 + m as u32), (m, cols), &Device::Cpu)
                    .unwrap();
                let one = |w: &QTensor| forward(w, &x).unwrap().unwrap();
                let many = forward_many(&[&a, &b, &c], &x).unwrap().expect("taken");
                assert_eq!(many.len(), 3);
                for (got, w) in many.iter().zip([&a, &b, &c]) {
                    assert_eq!(got.dims(), &[m, w.shape().dims2().unwrap().0]);
                    assert_eq!(f32_bits(got), f32_bits(&one(w)), "{kind:?} m {m}");
                }

                let (g, u) = (one(&b), one(&c));
                let want: Vec<u32> = vals(&g)
                    .iter()
                    .zip(vals(&u))
                    .map(|(&g, u)| crate::vector_math::silu_mul(g, u).to_bits())
                    .collect();
                let got = forward_swiglu(&b, &c, &x).unwrap().expect("taken");
                assert_eq!(got.dims(), &[m, 13]);
                assert_eq!(f32_bits(&got), want, "{kind:?} m {m}: SwiGLU");
                // candle's own silu and product, which the unfused path runs.
                let candle = (g.silu().unwrap() * &u).unwrap();
                assert_eq!(f32_bits(&got), f32_bits(&candle), "{kind:?} m {m}: candle");

                let residual = Tensor::from_vec(pseudo(m * 37, 2), (m, 37), &Device::Cpu).unwrap();
                let got = forward_residual(&a, &x, &residual).unwrap().expect("taken");
                let want = (&residual + one(&a)).unwrap();
                assert_eq!(f32_bits(&got), f32_bits(&want), "{kind:?} m {m}: residual");
            }
        }
    }

    #[test]
    fn fused_products_leave_what_they_do_not_take_to_the_caller() {
        let x = Tensor::from_vec(pseudo(2 * 3 * 64, 5), (2, 3, 64), &Device::Cpu).unwrap();
        let (q4, q8) = (
            quantized(GgmlDType::Q4_1, 40, 64),
            quantized(GgmlDType::Q8_0, 40, 64),
        );
        // Leading dims are kept.
        let ys = forward_many(&[&q4, &q4], &x).unwrap().expect("taken");
        assert_eq!(ys[1].dims(), &[2, 3, 40]);
        // Two kinds, two shapes, a residual of another shape, an input in a graph: not taken.
        assert!(forward_many(&[&q4, &q8], &x).unwrap().is_none());
        let narrow = quantized(GgmlDType::Q4_1, 20, 64);
        assert!(forward_swiglu(&q4, &narrow, &x).unwrap().is_none());
        let wrong = Tensor::zeros((2, 3, 39), DType::F32, &Device::Cpu).unwrap();
        assert!(forward_residual(&q4, &x, &wrong).unwrap().is_none());
        let var = candle_core::Var::from_tensor(&x).unwrap();
        let tracked = (var.as_tensor() * 1.0).unwrap();
        assert!(forward_many(&[&q4], &tracked).unwrap().is_none());
    }

    #[test]
    fn batched_input_keeps_its_leading_dims_and_other_dtypes_are_left_to_candle() {
        let w = quantized(GgmlDType::Q4_1, 40, 64);
        let x = Tensor::from_vec(pseudo(2 * 3 * 64, 5), (2, 3, 64), &Device::Cpu).unwrap();
        let y = forward(&w, &x).unwrap().unwrap();
        assert_eq!(y.dims(), &[2, 3, 40]);
        let other = quantized(GgmlDType::Q2K, 40, 256);
        assert!(forward(&other, &x).unwrap().is_none());
        let bad = matmul_slices(Kind::Q4_1, &w.data().unwrap(), 40, 64, &pseudo(65, 1), true);
        assert!(bad.is_err());
    }
}
