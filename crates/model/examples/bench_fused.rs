//! The fused quantized products against one product per matrix, on SmolLM2-135M's shapes
//! (`Q4_1` weights, 576 wide): a layer's query, key and value projections (576, 192 and 192
//! rows) as three products or as one ([`forward_many`]), and its MLP's gate and up projections
//! (1,536 rows each) as two products and a SiLU pass or as one ([`forward_swiglu`]). The
//! unfused side runs what `tierforge-model` ran before the fusion: the two products, then one
//! parallel pass of `silu(g) · u`. Prints the best time of ten rounds for each and the ratio.
//!
//! Usage: `cargo run --release -p tierforge-model --example bench_fused -- [M]` (M input rows,
//! default 32; 1 is decoding one token).

use std::time::Instant;

use candle_core::quantized::{GgmlDType, QTensor};
use candle_core::{Device, Tensor};
use rayon::prelude::*;
use tierforge_model::quant_matmul::{forward, forward_many, forward_swiglu};

/// A `rows × cols` `Q4_1` matrix of seeded values in [-0.1, 0.1].
fn weights(rows: usize, cols: usize, seed: u64) -> Result<QTensor, candle_core::Error> {
    let mut s = seed;
    let v: Vec<f32> = (0..rows * cols)
        .map(|_| {
            s = s
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            ((s >> 40) as f32 / (1u64 << 24) as f32) * 0.2 - 0.1
        })
        .collect();
    QTensor::quantize(
        &Tensor::from_vec(v, (rows, cols), &Device::Cpu)?,
        GgmlDType::Q4_1,
    )
}

/// The best seconds per call of `f` over ten rounds of `reps` calls.
fn best(
    reps: usize,
    best: &mut f64,
    mut f: impl FnMut() -> candle_core::Result<()>,
) -> candle_core::Result<()> {
    let t = Instant::now();
    for _ in 0..reps {
        f()?;
    }
    *best = best.min(t.elapsed().as_secs_f64() / reps as f64);
    Ok(())
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let m: usize = match std::env::args().nth(1) {
        Some(a) => a.parse().map_err(|_| format!("not a number: {a}"))?,
        None => 32,
    };
    let (gate, up) = (weights(1536, 576, 1)?, weights(1536, 576, 2)?);
    let (q, k, v) = (
        weights(576, 576, 3)?,
        weights(192, 576, 4)?,
        weights(192, 576, 5)?,
    );
    let xs: Vec<f32> = (0..m * 576)
        .map(|i| ((i * 7919) % 1000) as f32 / 500.0 - 1.0)
        .collect();
    let x = Tensor::from_vec(xs, (m, 576), &Device::Cpu)?;
    let product = |w: &QTensor| -> candle_core::Result<Vec<f32>> {
        forward(w, &x)?
            .ok_or_else(|| candle_core::Error::Msg("kernel not taken".into()))?
            .flatten_all()?
            .to_vec1::<f32>()
    };
    let reps = if m == 1 { 400 } else { (1280 / m).max(4) };
    let [mut mlp, mut mlp_fused, mut qkv, mut qkv_fused] = [f64::INFINITY; 4];
    for _ in 0..10 {
        best(reps, &mut mlp, || {
            let (g, u) = (product(&gate)?, product(&up)?);
            let mut h = vec![0f32; g.len()];
            h.par_chunks_mut(4096)
                .zip(g.par_chunks(4096).zip(u.par_chunks(4096)))
                .for_each(|(h, (g, u))| {
                    for ((h, &g), &u) in h.iter_mut().zip(g).zip(u) {
                        *h = g / (1.0 + (-g).exp()) * u;
                    }
                });
            std::hint::black_box(h);
            Ok(())
        })?;
        best(reps, &mut mlp_fused, || {
            std::hint::black_box(forward_swiglu(&gate, &up, &x)?);
            Ok(())
        })?;
        best(reps, &mut qkv, || {
            std::hint::black_box((product(&q)?, product(&k)?, product(&v)?));
            Ok(())
        })?;
        best(reps, &mut qkv_fused, || {
            std::hint::black_box(forward_many(&[&q, &k, &v], &x)?);
            Ok(())
        })?;
    }
    println!(
        "{m} rows, {} threads: gate/up + SiLU {:.2}x ({:.1} vs {:.1} us fused); q/k/v {:.2}x ({:.1} vs {:.1} us fused)",
        rayon::current_num_threads(),
        mlp / mlp_fused,
        mlp * 1e6,
        mlp_fused * 1e6,
        qkv / qkv_fused,
        qkv * 1e6,
        qkv_fused * 1e6
    );
    Ok(())
}
