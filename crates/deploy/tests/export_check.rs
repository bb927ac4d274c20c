//! The merged q8_0 GGUF against llama.cpp: `scripts/check-export` ran llama.cpp (llama-cpp-python)
//! on our export of a deterministic adapter and committed its greedy output for 5 product
//! prompts in `golden/export_check.json`. Here the same adapter is rebuilt from its formula,
//! exported again and run through our own loader: the prompt ids must equal llama.cpp's; fed
//! llama.cpp's greedy continuation (teacher forcing), our top-1 must be llama.cpp's token, or its
//! end-of-turn stop, at every step where llama.cpp's top-2 margin is decisive; and our own free
//! greedy run may leave llama.cpp's only at a near tie. The margin is the model crate's tolerance
//! for the quantized path (`QUANT_DECISIVE` in crates/model/tests/smollm2.rs).

use std::path::{Path, PathBuf};

use candle_core::{Device, Tensor};
use tierforge_deploy::export::{self, GgufOptions, Quant};
use tierforge_model::generate::{generate, NoReporter};
use tierforge_model::{GenerateOptions, LoadOptions, SamplingParams};

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

/// The adapter of `scripts/check-export`, in PEFT's layout: rank 4 on all 7 projections,
/// lora_A = 0.04·sin(0.37i + 1.3r + 0.11l + p), lora_B = 0.05·cos(0.23o + 0.7r + 0.17l + p).
fn formula_adapter(dir: &Path, golden: &serde_json::Value, model: &tierforge_model::Config) {
    let a = &golden["meta"]["adapter"];
    let rank = a["rank"].as_u64().expect("rank") as usize;
    let (embd, ff) = (model.hidden_size, model.intermediate_size);
    let kv = embd / model.num_attention_heads * model.num_key_value_heads;
    let projs = [
        ("q_proj", "self_attn", embd, embd),
        ("k_proj", "self_attn", embd, kv),
        ("v_proj", "self_attn", embd, kv),
        ("o_proj", "self_attn", embd, embd),
        ("gate_proj", "mlp", embd, ff),
        ("up_proj", "mlp", embd, ff),
        ("down_proj", "mlp", ff, embd),
    ];
    let mut header = serde_json::Map::new();
    let mut data: Vec<u8> = Vec::new();
    for l in 0..model.num_hidden_layers {
        for (p, (name, block, fan_in, fan_out)) in projs.iter().enumerate() {
            let base = format!("base_model.model.model.layers.{l}.{block}.{name}");
            let (l, p) = (l as f64, p as f64);
            let mut am = Vec::with_capacity(rank * fan_in);
            for r in 0..rank {
                for i in 0..*fan_in {
                    let x = 0.37 * i as f64 + 1.3 * r as f64 + 0.11 * l + p;
                    am.push((0.04 * x.sin()) as f32);
                }
            }
            let mut bm = Vec::with_capacity(fan_out * rank);
            for o in 0..*fan_out {
                for r in 0..rank {
                    let x = 0.23 * o as f64 + 0.7 * r as f64 + 0.17 * l + p;
                    bm.push((0.05 * x.cos()) as f32);
                }
            }
            for (suffix, vals, shape) in [
                ("lora_A", am, [rank, *fan_in]),
                ("lora_B", bm, [*fan_out, rank]),
            ] {
                let start = data.len();
                data.extend(vals.iter().flat_map(|v| v.to_le_bytes()));
                header.insert(
                    format!("{base}.{suffix}.weight"),
                    serde_json::json!({"dtype": "F32", "shape": shape, "data_offsets": [start, data.len()]}),
                );
            }
        }
    }
    let mut h = serde_json::Value::Object(header).to_string().into_bytes();
    while !h.len().is_multiple_of(8) {
        h.push(b' ');
    }
    std::fs::create_dir_all(dir).expect("mkdir");
    let mut bytes = (h.len() as u64).to_le_bytes().to_vec();
    bytes.extend_from_slice(&h);
    bytes.extend_from_slice(&data);
    std::fs::write(dir.join("adapter_model.safetensors"), bytes).expect("weights");
    let cfg = serde_json::json!({
        "peft_type": "LORA", "task_type": "CAUSAL_LM", "r": rank, "lora_alpha": a["alpha"],
        "lora_dropout": 0.0, "target_modules": a["targets"], "use_rslora": false, "bias": "none",
        "fan_in_fan_out": false, "inference_mode": true, "use_dora": false,
        "base_model_name_or_path": golden["meta"]["model"]
    });
    std::fs::write(dir.join("adapter_config.json"), cfg.to_string()).expect("config");
}

/// Prompts also checked by a free greedy run.
const FREE_RUNS: usize = 2;

fn ids(v: &serde_json::Value) -> Vec<u32> {
    v.as_array()
        .expect("array")
        .iter()
        .map(|x| x.as_u64().expect("id") as u32)
        .collect()
}

#[test]
fn merged_q8_0_greedy_matches_llama_cpp() {
    let golden: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(
            Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/golden/export_check.json"),
        )
        .expect("golden"),
    )
    .expect("golden json");
    let model = root()
        .join("models")
        .join(golden["meta"]["model"].as_str().expect("model"));
    if !model.is_file() {
        eprintln!(
            "skipping: {} is absent (run scripts/fetch-model)",
            model.display()
        );
        return;
    }
    let spec = model.display().to_string();
    let t0 = std::time::Instant::now();
    let tmp = tempfile::tempdir().expect("tmp");
    let base = export::load_base(&spec).expect("base");
    formula_adapter(&tmp.path().join("adapter"), &golden, base.llama.config());
    drop(base);
    let out = tmp.path().join("merged-q8_0.gguf");
    export::export_gguf(
        &spec,
        Some(&tmp.path().join("adapter")),
        &out,
        &GgufOptions::new(Quant::Q8_0),
    )
    .expect("export");
    eprintln!("export: {:.1}s", t0.elapsed().as_secs_f64());
    let m = tierforge_model::load(out.to_str().expect("utf8"), &LoadOptions::quantized())
        .expect("load merged");
    let system = golden["system"].as_str().expect("system");
    let tie = golden["meta"]["tie_margin"].as_f64().expect("tie");
    let opts = GenerateOptions {
        max_tokens: golden["meta"]["max_tokens"].as_u64().expect("max") as usize,
        sampling: SamplingParams::greedy(),
        stop_tokens: m.stop_tokens(),
        schema: None,
    };
    let users = golden["users"].as_array().expect("users");
    let (mut decisive, mut total) = (0usize, 0usize);
    for (i, u) in users.iter().enumerate() {
        let want = &golden["llama_cpp"]["q8_0"][i];
        let prompt = m
            .chat_prompt(u.as_str().expect("user"), Some(system))
            .expect("prompt");
        assert_eq!(prompt, ids(&want["prompt_ids"]), "prompt {i}: token ids");
        let theirs = ids(&want["tokens"]);
        let margins: Vec<f64> = want["margins"]
            .as_array()
            .expect("margins")
            .iter()
            .map(|x| x.as_f64().unwrap_or(0.0))
            .collect();
        // Free greedy runs cost a forward pass per token: two prompts are enough next to the
        // teacher-forced check of all five (scripts/check-export runs all five both ways).
        let got = if i < FREE_RUNS {
            generate(&m.llama, &prompt, &opts, &mut NoReporter)
                .expect("generate")
                .token_ids
        } else {
            theirs.clone()
        };
        if let Some(n) = (0..got.len().max(theirs.len())).find(|&k| got.get(k) != theirs.get(k)) {
            let margin = margins.get(n).copied().unwrap_or(0.0);
            assert!(
                margin < tie,
                "prompt {i}: ours and llama.cpp diverge at token {n} (llama.cpp margin {margin}): {got:?} vs {theirs:?}"
            );
        }

        // Teacher forcing: every step of llama.cpp's continuation, including its stop.
        let mut want_steps = theirs.clone();
        if let Some(stop) = want["stop"].as_u64() {
            want_steps.push(stop as u32);
        }
        let mut seq = prompt.clone();
        seq.extend_from_slice(&theirs);
        let x = Tensor::new(seq.as_slice(), &Device::Cpu)
            .and_then(|t| t.unsqueeze(0))
            .expect("ids");
        let logits: Vec<Vec<f32>> = m
            .llama
            .forward(&x, None)
            .and_then(|l| l.squeeze(0))
            .and_then(|l| l.to_dtype(candle_core::DType::F32))
            .and_then(|l| l.to_vec2())
            .expect("forward");
        for (k, &w) in want_steps.iter().enumerate() {
            let row = &logits[prompt.len() - 1 + k];
            let top = row
                .iter()
                .enumerate()
                .fold(
                    (0usize, f32::MIN),
                    |b, (j, &v)| if v > b.1 { (j, v) } else { b },
                )
                .0 as u32;
            total += 1;
            if margins[k] >= tie {
                decisive += 1;
                assert_eq!(
                    top, w,
                    "prompt {i}, step {k}: llama.cpp picks {w} by a margin of {}, we pick {top}",
                    margins[k]
                );
            }
        }
    }
    eprintln!(
        "teacher-forced steps checked: {decisive} of {total} (the rest are near ties), {:.1}s",
        t0.elapsed().as_secs_f64()
    );
    assert!(decisive * 2 > total, "most steps must be decisive");
}
