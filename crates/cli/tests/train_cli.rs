//! `tierforge train` through the binary: config errors, device errors, the mask preview.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

mod common;
use common::model;

fn tierforge(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_tierforge"))
        .args(args)
        .output()
        .expect("run tierforge")
}

fn data(dir: &Path) -> PathBuf {
    let p = dir.join("train.jsonl");
    let line = serde_json::json!({"messages": [
        {"role": "user", "content": "Title for a red lamp?"},
        {"role": "assistant", "content": "Glowfield red lamp"}
    ]});
    std::fs::write(&p, format!("{line}\n{line}\n")).expect("write");
    p
}

fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

#[test]
fn unknown_config_key_is_named_and_nothing_runs() {
    let dir = tempfile::tempdir().expect("tmp");
    let cfg = dir.path().join("tier.toml");
    std::fs::write(&cfg, "lora_rank = 8\nlearning_rat = 0.1\n").expect("write");
    let d = data(dir.path());
    let o = tierforge(&[
        "train",
        "--model",
        "unused.gguf",
        "--data",
        d.to_str().expect("utf8"),
        "--config",
        cfg.to_str().expect("utf8"),
        "--out",
        dir.path().join("out").to_str().expect("utf8"),
    ]);
    assert!(!o.status.success());
    let e = stderr(&o);
    assert!(
        e.contains("learning_rat") && e.contains("tier.toml:2"),
        "{e}"
    );
    assert!(!dir.path().join("out").exists());
}

#[test]
fn shipped_tier_configs_parse() {
    for tier in ["basic", "advanced", "expert"] {
        let p = Path::new(env!("CARGO_MANIFEST_DIR")).join(format!("../../configs/{tier}.toml"));
        let c =
            tierforge_train::TrainConfig::from_file(&p).unwrap_or_else(|e| panic!("{tier}: {e}"));
        c.validate(tier).unwrap_or_else(|e| panic!("{tier}: {e}"));
    }
}

#[test]
fn flag_overrides_are_validated() {
    let dir = tempfile::tempdir().expect("tmp");
    let d = data(dir.path());
    let o = tierforge(&[
        "train",
        "--model",
        "unused.gguf",
        "--data",
        d.to_str().expect("utf8"),
        "--out",
        "x",
        "--lora-dropout",
        "1.5",
    ]);
    assert!(!o.status.success());
    assert!(stderr(&o).contains("lora_dropout"), "{}", stderr(&o));
    let o = tierforge(&[
        "train",
        "--model",
        "m",
        "--data",
        "d",
        "--out",
        "x",
        "--target-modules",
        "q_proj,qkv",
    ]);
    assert!(!o.status.success());
    assert!(
        stderr(&o).contains("unknown module \"qkv\""),
        "{}",
        stderr(&o)
    );
}

#[cfg(not(feature = "cuda"))]
#[test]
fn cuda_without_the_feature_is_a_clear_error() {
    let dir = tempfile::tempdir().expect("tmp");
    let d = data(dir.path());
    let m = model();
    let o = tierforge(&[
        "train",
        "--model",
        &m,
        "--data",
        d.to_str().expect("utf8"),
        "--out",
        dir.path().join("out").to_str().expect("utf8"),
        "--device",
        "cuda",
    ]);
    assert!(!o.status.success());
    assert!(stderr(&o).contains("--features cuda"), "{}", stderr(&o));
}

#[test]
fn preview_mask_marks_trained_tokens() {
    let dir = tempfile::tempdir().expect("tmp");
    let d = data(dir.path());
    let m = model();
    let o = tierforge(&[
        "train",
        "--model",
        &m,
        "--data",
        d.to_str().expect("utf8"),
        "--preview-mask",
        "1",
    ]);
    assert!(o.status.success(), "{}", stderr(&o));
    let out = String::from_utf8_lossy(&o.stdout);
    assert!(out.contains("[[Glowfield red lamp<|im_end|>]]"), "{out}");
    assert_eq!(out.matches("---").count(), 2, "one sample shown: {out}");
    assert!(
        out.contains("supervised: ") && out.contains("in 2 samples"),
        "{out}"
    );
}

#[test]
fn unreadable_rows_are_skipped_into_a_rejects_file_and_training_goes_on() {
    let dir = tempfile::tempdir().expect("tmp");
    let d = data(dir.path());
    let mut text = std::fs::read_to_string(&d).expect("read");
    text.push_str("{\"messages\": [{\"role\": \"wizard\", \"content\": \"hi\"}]}\nnot json\n");
    std::fs::write(&d, text).expect("write");
    let out = dir.path().join("run");
    let m = model();
    let o = tierforge(&[
        "train",
        "--model",
        &m,
        "--data",
        d.to_str().expect("utf8"),
        "--out",
        out.to_str().expect("utf8"),
        "--max-steps",
        "1",
        "--batch-size",
        "1",
        "--grad-accum-steps",
        "1",
        "--quiet",
    ]);
    assert!(o.status.success(), "{}", stderr(&o));
    let err = stderr(&o);
    assert!(
        err.contains("skipped 2 of 4 records") && err.contains("train.jsonl:3"),
        "{err}"
    );
    let rejects = std::fs::read_to_string(out.join("rejects.jsonl")).expect("rejects file");
    let rows: Vec<serde_json::Value> = rejects
        .lines()
        .map(|l| serde_json::from_str(l).expect("json"))
        .collect();
    assert_eq!(rows.len(), 2, "{rejects}");
    assert_eq!(rows[0]["line"], 3);
    assert_eq!(rows[1]["line"], 4);
    assert!(
        rows[0]["reasons"][0]
            .as_str()
            .expect("reason")
            .contains("wizard"),
        "{rejects}"
    );
    assert!(out.join("last").is_dir(), "trained anyway");

    // Nothing readable at all: an error before any step, naming the first line.
    let bad = dir.path().join("bad.jsonl");
    std::fs::write(&bad, "not json\n").expect("write");
    let o = tierforge(&[
        "train",
        "--model",
        &m,
        "--data",
        bad.to_str().expect("utf8"),
        "--out",
        dir.path().join("run2").to_str().expect("utf8"),
        "--quiet",
    ]);
    assert!(!o.status.success());
    assert!(stderr(&o).contains("bad.jsonl:1"), "{}", stderr(&o));
    assert!(!dir.path().join("run2/last").exists());
}
