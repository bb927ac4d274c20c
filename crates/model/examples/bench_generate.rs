//! Generation throughput on the CPU, printed as JSON for `scripts/bench-generate`.
//!
//! Usage: bench_generate MODEL.gguf [--quick | --decode-only]
//! Measures, with quantized weights: prefill tokens/s (512-token prompt) and decode tokens/s
//! (128 tokens) at batch 1 (each the mean of 5 runs), and total generated tokens/s at batch 16
//! and 32 (128 tokens each, the mean of 3 runs).
//! `--decode-only` runs only the batch-1 decode, 1,024 tokens, and `--batched-only` only the
//! batch-32 generation (each for a profiler).

use std::time::Instant;

use candle_core::{Device, Tensor};
use tierforge_model::generate::{generate, generate_batch, NoReporter};
use tierforge_model::llama::Cache;
use tierforge_model::{GenerateOptions, LoadOptions, SamplingParams};

/// Repetitions of the batch-1 measurements.
const REPS: usize = 5;
/// Repetitions of each batched measurement.
const BATCH_REPS: usize = 3;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args: Vec<String> = std::env::args().collect();
    let model = args
        .get(1)
        .ok_or("usage: bench_generate MODEL.gguf [--quick | --decode-only | --batched-only]")?;
    let quick = args.iter().any(|a| a == "--quick");
    let decode_only = args.iter().any(|a| a == "--decode-only");
    let batched_only = args.iter().any(|a| a == "--batched-only");
    let (prompt_len, gen_len) = match (quick, decode_only) {
        (true, _) => (64, 16),
        (false, true) => (64, 1024),
        (false, false) => (512, 128),
    };
    let m = tierforge_model::load(model, &LoadOptions::quantized())?;
    let llama = &m.llama;
    // A fixed, realistic token stream: the tokenized text repeated to the prompt length.
    let text =
        "Stainless steel water bottle, 750 ml, keeps drinks cold for 24 hours and hot for 12. ";
    let base = m.tokenizer.encode(&text.repeat(64), false)?;
    let prompt: Vec<u32> = base.iter().copied().cycle().take(prompt_len).collect();

    // Warm-up (page in weights, repack caches).
    let mut cache = Cache::new(llama.config(), 1, 80);
    llama.forward_last(
        &Tensor::new(&prompt[..64], &Device::Cpu)?.unsqueeze(0)?,
        Some(&mut cache),
    )?;

    // Prefill and decode at batch 1, each repeated `REPS` times and averaged as llama-bench
    // does (its default `-r 5`): one 128-token decode lasts about a second, and single runs
    // moved by ±15% here.
    let reps = if quick || decode_only { 1 } else { REPS };
    let reps = if batched_only { 0 } else { reps };
    let mut prefill_tps = 0.0;
    for _ in 0..reps {
        let mut cache = Cache::new(llama.config(), 1, prompt_len + 1);
        let t = Instant::now();
        llama.forward_last(
            &Tensor::new(prompt.as_slice(), &Device::Cpu)?.unsqueeze(0)?,
            Some(&mut cache),
        )?;
        prefill_tps += prompt_len as f64 / t.elapsed().as_secs_f64() / reps as f64;
    }

    // Decode from a 1-token context, like llama-bench's tg test: the library's own generation
    // loop (greedy, no stop token), timed from the first pass to the last token. The batched
    // runs below use the same options.
    let opts = GenerateOptions {
        max_tokens: gen_len,
        sampling: SamplingParams::greedy(),
        stop_tokens: vec![],
        schema: None,
    };
    let mut decode_tps = 0.0;
    for _ in 0..reps {
        let g = generate(llama, &prompt[..1], &opts, &mut NoReporter)?;
        decode_tps += g.completion_tokens as f64 / (g.prefill_secs + g.decode_secs) / reps as f64;
    }
    if decode_only {
        println!(
            "{}",
            serde_json::json!({ "decode_tps": decode_tps, "generated_tokens": gen_len })
        );
        return Ok(());
    }

    let mut batched = Vec::new();
    let sizes: &[usize] = if batched_only { &[32] } else { &[16, 32] };
    for &b in sizes {
        let prompts: Vec<Vec<u32>> = (0..b).map(|i| base[i % 7..i % 7 + 16].to_vec()).collect();
        // Averaged over runs like the batch-1 figures (a batch-32 run lasts ~12 s here, and
        // single runs moved by ±15%); the spread is printed too.
        let (mut total, mut decode) = (Vec::new(), Vec::new());
        let mut generated = 0;
        for _ in 0..reps.clamp(1, BATCH_REPS) {
            let t = Instant::now();
            let outs = generate_batch(llama, &prompts, &opts, b, &mut NoReporter)?;
            let secs = t.elapsed().as_secs_f64();
            generated = outs.iter().map(|o| o.completion_tokens).sum::<usize>();
            let decode_secs = outs.first().map_or(secs, |o| o.decode_secs);
            total.push(generated as f64 / secs);
            decode.push(generated as f64 / decode_secs);
        }
        let mean = |v: &[f64]| v.iter().sum::<f64>() / v.len() as f64;
        batched.push(serde_json::json!({
            "batch": b,
            "prompt_tokens_each": 16,
            "generated_tokens": generated,
            "runs": total.len(),
            "total_tps": mean(&total),
            "total_tps_min": total.iter().copied().fold(f64::INFINITY, f64::min),
            "total_tps_max": total.iter().copied().fold(0.0, f64::max),
            "decode_tps": mean(&decode),
        }));
    }
    let out = serde_json::json!({
        "prompt_tokens": prompt_len,
        "generated_tokens": gen_len,
        "threads": rayon_threads(),
        "prefill_tps": prefill_tps,
        "decode_tps": decode_tps,
        "batched": batched,
    });
    println!("{}", serde_json::to_string_pretty(&out)?);
    Ok(())
}

fn rayon_threads() -> usize {
    std::env::var("RAYON_NUM_THREADS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or_else(|| std::thread::available_parallelism().map_or(1, |n| n.get()))
}
