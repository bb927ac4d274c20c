//! The quantized matmul kernel alone: `x · Wᵀ` for a `rows × cols` weight matrix of `Q4_0`,
//! `Q4_1`, `Q5_0`, `Q5_1` or `Q8_0` blocks (filled with seeded bytes, realistic f16 scales) and
//! `m` activation rows, in billions of multiply-adds per second. A profile of batched decoding
//! spends most of its time here; this isolates the kernel from the rest of a decoding step.
//!
//! Usage: `RAYON_NUM_THREADS=1 cargo run --release -p tierforge-model --example bench_matmul
//! -- [ROWS COLS M [q4_0|q4_1|q5_0|q5_1|q8_0]]` (default: SmolLM2-135M's MLP up-projection,
//! 1536 × 576, at batch 32, `Q4_1`).

use std::time::Instant;
use tierforge_model::quant_matmul::{matmul_slices, Kind};

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let num = |i: usize, default: usize| -> Result<usize, Box<dyn std::error::Error>> {
        Ok(match args.get(i) {
            Some(a) => a.parse().map_err(|_| format!("not a number: {a}"))?,
            None => default,
        })
    };
    let (rows, cols, m) = (num(0, 1536)?, num(1, 576)?, num(2, 32)?);
    let kind = match args.get(3).map(String::as_str) {
        None | Some("q4_1") => Kind::Q4_1,
        Some("q4_0") => Kind::Q4_0,
        Some("q5_0") => Kind::Q5_0,
        Some("q5_1") => Kind::Q5_1,
        Some("q8_0") => Kind::Q8_0,
        Some(other) => {
            return Err(format!("unknown kind {other} (q4_0, q4_1, q5_0, q5_1 or q8_0)").into())
        }
    };
    let bb = kind.block_bytes();
    let mut w = vec![0u8; rows * cols / 32 * bb];
    let mut s = 12345u32;
    for (i, b) in w.iter_mut().enumerate() {
        s = s.wrapping_mul(1664525).wrapping_add(1013904223);
        // The high byte of each f16 scale (and minimum) set to 0x2c: about 0.06.
        *b = if i % bb == 1 || (!kind.signed() && i % bb == 3) {
            0x2c
        } else {
            (s >> 24) as u8
        };
    }
    let x: Vec<f32> = (0..m * cols)
        .map(|i| ((i * 7919) % 1000) as f32 / 500.0 - 1.0)
        .collect();
    let _ = matmul_slices(kind, &w, rows, cols, &x, true)?;
    let reps = (2e10 / (rows * cols * m) as f64).clamp(3.0, 2000.0) as usize;
    let t = Instant::now();
    let mut check = 0f32;
    for _ in 0..reps {
        check += matmul_slices(kind, &w, rows, cols, &x, true)?[0];
    }
    let dt = t.elapsed().as_secs_f64();
    let macs = (rows * cols * m * reps) as f64;
    println!(
        "{kind:?} {rows}x{cols}, {m} rows, {} threads: {:.2} GMAC/s ({:.1} us per product; check {check})",
        rayon::current_num_threads(),
        macs / dt / 1e9,
        dt / reps as f64 * 1e6
    );
    Ok(())
}
