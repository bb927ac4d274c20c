//! Generation throughput on the CPU, printed as JSON for `scripts/bench-generate`.
//!
//! Usage: bench_generate MODEL.gguf [--quick]
//! Measures, with quantized weights: prefill tokens/s (512-token prompt) and decode tokens/s
//! (128 tokens) at batch 1, and total generated tokens/s at batch 16 and 32 (128 tokens each).

use std::time::Instant;

use candle_core::{Device, Tensor};
use tierforge_model::generate::{generate_batch, NoReporter};
use tierforge_model::llama::Cache;
use tierforge_model::{GenerateOptions, LoadOptions, SamplingParams};

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args: Vec<String> = std::env::args().collect();
    let model = args
        .get(1)
        .ok_or("usage: bench_generate MODEL.gguf [--quick]")?;
    let quick = args.iter().any(|a| a == "--quick");
    let (prompt_len, gen_len) = if quick { (64, 16) } else { (512, 128) };
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

    // Prefill at batch 1.
    let mut cache = Cache::new(llama.config(), 1, prompt_len + 1);
    let t = Instant::now();
    llama.forward_last(
        &Tensor::new(prompt.as_slice(), &Device::Cpu)?.unsqueeze(0)?,
        Some(&mut cache),
    )?;
    let prefill_tps = prompt_len as f64 / t.elapsed().as_secs_f64();

    // Decode at batch 1 from a 1-token context, like llama-bench's tg test.
    let mut cache = Cache::new(llama.config(), 1, gen_len + 1);
    let mut tok = prompt[0];
    let t = Instant::now();
    for _ in 0..gen_len {
        let logits = llama.forward_last(&Tensor::new(&[[tok]], &Device::Cpu)?, Some(&mut cache))?;
        tok = tierforge_model::generate::argmax(&logits.squeeze(0)?.to_vec1::<f32>()?);
    }
    let decode_tps = gen_len as f64 / t.elapsed().as_secs_f64();

    let mut batched = Vec::new();
    for b in [16usize, 32] {
        let prompts: Vec<Vec<u32>> = (0..b).map(|i| base[i % 7..i % 7 + 16].to_vec()).collect();
        let opts = GenerateOptions {
            max_tokens: gen_len,
            sampling: SamplingParams::greedy(),
            stop_tokens: vec![],
            schema: None,
        };
        let t = Instant::now();
        let outs = generate_batch(llama, &prompts, &opts, b, &mut NoReporter)?;
        let secs = t.elapsed().as_secs_f64();
        let generated: usize = outs.iter().map(|o| o.completion_tokens).sum();
        let decode_secs = outs.first().map_or(secs, |o| o.decode_secs);
        batched.push(serde_json::json!({
            "batch": b,
            "prompt_tokens_each": 16,
            "generated_tokens": generated,
            "total_tps": generated as f64 / secs,
            "decode_tps": generated as f64 / decode_secs,
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
