//! Training on the real SmolLM2-135M-Instruct GGUF (fetched by `scripts/fetch-model`): loss
//! masking with its own chat template, bad input caught before any step, and a short overfit.

use std::path::{Path, PathBuf};
use std::sync::OnceLock;

use tierforge_data::sample::Message;
use tierforge_model::{LoadOptions, LoadedModel};
use tierforge_train::tokens::encode_conversation;
use tierforge_train::{NoReporter, PrepareReporter, TrainConfig, TrainError, TrainOptions};

mod common;
use common::model_path;

/// Quantized load: same tokenizer and template as the dense one, faster to read.
fn model() -> &'static LoadedModel {
    static M: OnceLock<LoadedModel> = OnceLock::new();
    M.get_or_init(|| {
        tierforge_model::load(
            &model_path().display().to_string(),
            &LoadOptions::quantized(),
        )
        .expect("model loads")
    })
}

fn msg(role: &str, content: &str, weight: Option<u8>) -> Message {
    Message {
        role: role.into(),
        content: content.into(),
        weight,
    }
}

struct Quiet;
impl PrepareReporter for Quiet {}

#[test]
fn only_assistant_content_and_its_end_of_turn_are_supervised() {
    let m = model();
    let tmpl = m.template().expect("SmolLM2 has a chat template");
    let eot = m.end_of_turn().expect("an end-of-turn token");
    assert_eq!(m.tokenizer.id_to_token(eot), Some("<|im_end|>"));
    let conv = vec![
        msg("system", "You write product listings.", None),
        msg("user", "Lamp, walnut.", None),
        msg("assistant", "A walnut lamp.", None),
        msg("user", "Shorter.", None),
        msg("assistant", "Skip me.", Some(0)),
        msg("user", "Again.", None),
        msg("assistant", "Walnut lamp.", Some(1)),
    ];
    let (ids, sup) =
        encode_conversation(tmpl, &m.tokenizer, &conv, &m.stop_tokens()).expect("encodes");
    // The supervised runs, decoded, are exactly the trained answers plus their <|im_end|>.
    let mut runs = Vec::new();
    let mut i = 0;
    while i < ids.len() {
        if sup[i] {
            let j = (i..ids.len()).find(|&j| !sup[j]).unwrap_or(ids.len());
            runs.push(m.tokenizer.decode(&ids[i..j], false).expect("decodes"));
            i = j;
        } else {
            i += 1;
        }
    }
    assert_eq!(
        runs,
        vec!["A walnut lamp.<|im_end|>", "Walnut lamp.<|im_end|>"]
    );
    // Every <|im_end|> closing a system or user turn (and the weight-0 answer) is masked.
    let closing: Vec<bool> = ids
        .iter()
        .zip(&sup)
        .filter(|(&id, _)| id == eot)
        .map(|(_, &s)| s)
        .collect();
    assert_eq!(closing, vec![false, false, true, false, false, false, true]);
}

fn write(dir: &Path, name: &str, lines: &[String]) -> PathBuf {
    let p = dir.join(name);
    std::fs::write(&p, lines.join("\n")).expect("write data");
    p
}

fn chat(user: &str, assistant: &str) -> String {
    // A short system turn replaces SmolLM2's default system prompt (about 20 tokens).
    serde_json::json!({"messages": [
        {"role": "system", "content": "Be brief."},
        {"role": "user", "content": user},
        {"role": "assistant", "content": assistant}
    ]})
    .to_string()
}

#[test]
fn bad_data_is_refused_before_any_step() {
    let m = model();
    let dir = tempfile::tempdir().expect("tmp");
    let prep = |p: &Path, len: usize| tierforge_train::prepare_file(m, p, len);

    let empty = write(dir.path(), "empty.jsonl", &[]);
    let e = prep(&empty, 64).expect_err("empty");
    assert!(e.to_string().contains("empty"), "{e}");

    let long = write(
        dir.path(),
        "long.jsonl",
        &[chat(&"very long question ".repeat(40), "Short.")],
    );
    let e = prep(&long, 32).expect_err("truncated away").to_string();
    assert!(
        e.contains("no supervised token left after truncation to max_seq_len = 32"),
        "{e}"
    );
    assert!(e.contains("long.jsonl:1"), "{e}");

    let unweighted = serde_json::json!({"messages": [
        {"role": "user", "content": "Hi"},
        {"role": "assistant", "content": "Hello", "weight": 0}
    ]})
    .to_string();
    let none = write(dir.path(), "none.jsonl", &[chat("a", "b"), unweighted]);
    let e = prep(&none, 64)
        .expect_err("no supervised token")
        .to_string();
    assert!(
        e.contains("none.jsonl:2") && e.contains("no supervised token"),
        "{e}"
    );

    let tiny_share = write(
        dir.path(),
        "share.jsonl",
        &[chat(&"word ".repeat(400), "A")],
    );
    let e = prep(&tiny_share, 4096).expect_err("under 1%").to_string();
    assert!(e.contains("at least 1% is required"), "{e}");

    // Truncation that keeps supervised tokens is reported, not fatal.
    let cut = write(
        dir.path(),
        "cut.jsonl",
        &[chat("Name a colour.", &"blue and green ".repeat(20))],
    );
    let p = prep(&cut, 48).expect("truncation keeps some answer tokens");
    assert_eq!(p.truncated_samples, 1);
    assert!(p.tokens_lost > 0 && p.supervised_lost > 0);

    // A sequence budget beyond the model's context is a config error.
    let opts = TrainOptions {
        model: model_path().display().to_string(),
        data: cut,
        val: None,
        config: TrainConfig {
            max_seq_len: 1 << 20,
            ..TrainConfig::default()
        },
        out: dir.path().join("out"),
        resume: None,
        init_adapter: None,
        device: tierforge_train::DeviceKind::Cpu,
        stop_after: None,
    };
    let e = tierforge_train::train(&opts, &mut Quiet, &mut NoReporter).expect_err("too long");
    assert!(matches!(e, TrainError::Config { .. }), "{e}");
    assert!(
        !dir.path().join("out").exists(),
        "nothing written before the checks pass"
    );
}

/// 16 short samples, 12 steps (3 epochs): the loss must fall below half its start.
/// About 3 minutes on 2 busy cores; the frozen-weight gradients candle computes (see the
/// crate docs) are a third of that.
#[test]
fn overfits_sixteen_short_samples() {
    let dir = tempfile::tempdir().expect("tmp");
    let colours = [
        "red", "blue", "green", "amber", "violet", "teal", "black", "white",
    ];
    let items = ["lamp", "mat"];
    let mut lines = Vec::new();
    for c in colours {
        for it in items {
            lines.push(chat(
                &format!("Title for a {c} {it}?"),
                &format!("Glowfield {c} {it}, {}", c.len() * 3),
            ));
        }
    }
    let data = write(dir.path(), "train.jsonl", &lines);
    let out = dir.path().join("run");
    let opts = TrainOptions {
        model: model_path().display().to_string(),
        data,
        val: None,
        config: TrainConfig {
            lora_rank: 8,
            lora_alpha: 16.0,
            learning_rate: 3e-3,
            lr_scheduler: tierforge_train::Schedule::Constant,
            warmup_steps: 1,
            batch_size: 4,
            max_steps: Some(12),
            max_seq_len: 64,
            save_every: 0,
            ..TrainConfig::default()
        },
        out: out.clone(),
        resume: None,
        init_adapter: None,
        device: tierforge_train::DeviceKind::Cpu,
        stop_after: None,
    };
    let (summary, data) =
        tierforge_train::train(&opts, &mut Quiet, &mut NoReporter).expect("trains");
    assert_eq!(data.train.truncated_samples, 0);
    let (first, last) = (
        summary.first_loss.expect("a step"),
        summary.final_loss.expect("a step"),
    );
    assert!(last < first / 2.0, "loss {first:.4} -> {last:.4}");
    // PEFT layout.
    let last_dir = out.join("last");
    let cfg: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(last_dir.join("adapter_config.json")).expect("config"),
    )
    .expect("json");
    assert_eq!(cfg["peft_type"], "LORA");
    assert_eq!(cfg["r"], 8);
    let tensors = candle_core::safetensors::load(
        last_dir.join("adapter_model.safetensors"),
        &candle_core::Device::Cpu,
    )
    .expect("loads");
    assert_eq!(tensors.len(), 30 * 7 * 2);
    assert_eq!(
        tensors["base_model.model.model.layers.0.self_attn.q_proj.lora_A.weight"].dims(),
        &[8, 576]
    );
    assert_eq!(
        tensors["base_model.model.model.layers.29.mlp.down_proj.lora_B.weight"].dims(),
        &[576, 8]
    );
    let metrics = std::fs::read_to_string(out.join("metrics.jsonl")).expect("metrics");
    assert_eq!(metrics.lines().count(), 12);
    assert!(out.join("loss.svg").is_file() && out.join("train_config.toml").is_file());
}
