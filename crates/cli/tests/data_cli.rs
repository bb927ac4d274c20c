//! The data commands end to end through the `tierforge` binary, on the bundled corpus.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

fn corpus() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../data/samples.jsonl")
}

fn tierforge(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_tierforge"))
        .args(args)
        .output()
        .expect("run tierforge")
}

fn s(p: &Path) -> &str {
    p.to_str().unwrap()
}

fn lines(p: &Path) -> usize {
    std::fs::read_to_string(p).unwrap().lines().count()
}

#[test]
fn check_prints_file_line_field_reason_and_exits_1() {
    let dir = tempfile::tempdir().unwrap();
    let bad = dir.path().join("bad.jsonl");
    let good = std::fs::read_to_string(corpus())
        .unwrap()
        .lines()
        .next()
        .unwrap()
        .to_owned();
    std::fs::write(
        &bad,
        format!("{good}\n{{\"input\": 1, \"output\": {{}}}}\nnot json\n"),
    )
    .unwrap();
    let out = tierforge(&["data", "check", s(&bad)]);
    assert_eq!(out.status.code(), Some(1));
    let stdout = String::from_utf8(out.stdout).unwrap();
    let want2 = format!("{}:2: input: ", bad.display());
    let want3 = format!("{}:3: -: invalid JSON", bad.display());
    assert!(stdout.contains(&want2), "{stdout}");
    assert!(stdout.contains(&want3), "{stdout}");
    let ok = tierforge(&["data", "check", s(&corpus())]);
    assert_eq!(ok.status.code(), Some(0));
}

/// The summary table (scored a piece at a time) says what the `--json` summary (everything in
/// memory) says, with the unreadable records of a mixed file reported and written by both.
#[test]
fn score_summary_agrees_with_the_json_summary() {
    let dir = tempfile::tempdir().unwrap();
    let mixed = dir.path().join("mixed.jsonl");
    let corpus_text = std::fs::read_to_string(corpus()).unwrap();
    let records: Vec<&str> = corpus_text.lines().collect();
    std::fs::write(
        &mixed,
        format!(
            "{}\n{{\"broken\":\n[1]\n{}\n",
            records[..300].join("\n"),
            records[300..].join("\n")
        ),
    )
    .unwrap();
    let (rj, rt) = (dir.path().join("rj.jsonl"), dir.path().join("rt.jsonl"));
    let json = tierforge(&["data", "score", s(&mixed), "--json", "--rejects", s(&rj)]);
    let table = tierforge(&["data", "score", s(&mixed), "--rejects", s(&rt)]);
    assert_eq!(json.status.code(), Some(1));
    assert_eq!(table.status.code(), Some(1));
    assert_eq!(std::fs::read(&rj).unwrap(), std::fs::read(&rt).unwrap());
    assert_eq!(lines(&rt), 2);
    let v: serde_json::Value = serde_json::from_slice(&json.stdout).unwrap();
    let sum = &v["summary"];
    let table = String::from_utf8(table.stdout).unwrap();
    let row = |name: &str| -> String {
        table
            .lines()
            .find(|l| l.starts_with(name))
            .unwrap_or_else(|| panic!("no {name} row in {table}"))
            .trim_start_matches(name)
            .trim()
            .to_owned()
    };
    assert_eq!(row("samples"), sum["count"].to_string());
    assert!(
        row("passed").starts_with(&sum["passed"].to_string()),
        "{table}"
    );
    assert_eq!(
        row("mean score"),
        format!("{:.1}", sum["mean_score"].as_f64().unwrap())
    );
    let top = &sum["most_failed_rules"][0];
    let id = top["id"].as_str().unwrap();
    assert!(
        row(id).starts_with(&top["failed"].to_string()),
        "{id}: {table}"
    );
}

#[test]
fn score_filter_dedup_split_tiers_export_stats() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let out = tierforge(&["data", "score", s(&corpus()), "--json"]);
    assert!(out.status.success());
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["summary"]["count"], 900);
    assert!(v["samples"][0]["report"]["rules"].as_array().unwrap().len() == 16);

    let kept = d.join("kept.jsonl");
    let rej = d.join("rejects.jsonl");
    let out = tierforge(&[
        "data",
        "filter",
        s(&corpus()),
        "--min-score",
        "80",
        "-o",
        s(&kept),
        "--rejects",
        s(&rej),
    ]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(lines(&kept) + lines(&rej), 900);
    let first_reject: serde_json::Value = serde_json::from_str(
        std::fs::read_to_string(&rej)
            .unwrap()
            .lines()
            .next()
            .unwrap(),
    )
    .unwrap();
    assert!(!first_reject["reasons"].as_array().unwrap().is_empty());
    assert!(
        first_reject["record"]["input"].is_object(),
        "rejects carry the sample"
    );

    let dd = d.join("dedup.jsonl");
    let out = tierforge(&[
        "data",
        "dedup",
        s(&kept),
        "-o",
        s(&dd),
        "--report",
        s(&d.join("clusters.json")),
    ]);
    assert!(out.status.success());
    assert!(lines(&dd) < lines(&kept));

    let sp = d.join("split");
    let out = tierforge(&[
        "data",
        "split",
        s(&dd),
        "--val",
        "0.1",
        "--seed",
        "3",
        "-o",
        s(&sp),
    ]);
    assert!(out.status.success());
    assert_eq!(
        lines(&sp.join("train.jsonl")) + lines(&sp.join("val.jsonl")),
        lines(&dd)
    );

    let tiers = d.join("tiers");
    let out = tierforge(&[
        "data",
        "tiers",
        s(&sp.join("train.jsonl")),
        "-o",
        s(&tiers),
        "--json",
    ]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(
        lines(&tiers.join("basic.messages.jsonl")),
        lines(&tiers.join("basic.jsonl"))
    );
    assert!(lines(&tiers.join("expert.jsonl")) >= 500);

    let cfg = d.join("tight.toml");
    std::fs::write(&cfg, "[basic]\nmin_samples = 50\nmin_score = 70\n[advanced]\nmin_samples = 200\nmin_score = 80\n[expert]\nmin_samples = 5000\nmin_score = 90\n").unwrap();
    let out = tierforge(&[
        "data",
        "tiers",
        s(&sp.join("train.jsonl")),
        "-o",
        s(&d.join("t2")),
        "--config",
        s(&cfg),
    ]);
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("missing"));
    std::fs::write(
        &cfg,
        "[basic]\nmin_samples = 50\nmin_score = 70\nmin_scroe = 3\n",
    )
    .unwrap();
    let out = tierforge(&[
        "data",
        "tiers",
        s(&sp.join("train.jsonl")),
        "-o",
        s(&d.join("t3")),
        "--config",
        s(&cfg),
    ]);
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("min_scroe"),
        "unknown keys are named"
    );

    let pc = d.join("pc.jsonl");
    let out = tierforge(&[
        "data",
        "export",
        s(&tiers.join("basic.jsonl")),
        "--format",
        "prompt-completion",
        "--tier",
        "basic",
        "-o",
        s(&pc),
    ]);
    assert!(out.status.success());
    let first: serde_json::Value = serde_json::from_str(
        std::fs::read_to_string(&pc)
            .unwrap()
            .lines()
            .next()
            .unwrap(),
    )
    .unwrap();
    assert!(first["prompt"].as_str().unwrap().contains("Product: "));

    let aug = d.join("aug.jsonl");
    let out = tierforge(&[
        "data",
        "augment",
        s(&tiers.join("basic.jsonl")),
        "--per-sample",
        "2",
        "-o",
        s(&aug),
    ]);
    assert!(out.status.success());
    assert!(lines(&aug) > lines(&tiers.join("basic.jsonl")));

    let svg = d.join("stats.svg");
    let out = tierforge(&["data", "stats", s(&corpus()), "--svg", s(&svg)]);
    assert!(out.status.success());
    let text = std::fs::read_to_string(&svg).unwrap();
    assert!(text.starts_with("<?xml") && text.contains("<svg") && text.contains("Electronics"));
}

#[test]
fn schema_prints_the_listing_json_schema() {
    let out = tierforge(&["data", "schema"]);
    assert_eq!(out.status.code(), Some(0));
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v, tierforge_data::completion::json_schema());
    assert_eq!(
        v["required"],
        serde_json::json!(["title", "features", "description"])
    );
    // The hard gates JSON Schema can state, from the rubric's defaults.
    let p = &v["properties"];
    assert_eq!(
        (
            p["title"]["minLength"].as_u64(),
            p["title"]["maxLength"].as_u64()
        ),
        (Some(50), Some(100))
    );
    assert_eq!(
        (
            p["features"]["minItems"].as_u64(),
            p["features"]["maxItems"].as_u64()
        ),
        (Some(3), Some(10))
    );
    assert_eq!(p["features"]["items"]["maxLength"].as_u64(), Some(80));
    assert_eq!(p["description"]["minLength"].as_u64(), Some(900));
    let out = tierforge(&["data", "schema", "--shape"]);
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v, tierforge_data::completion::shape_schema());
    assert!(!v.to_string().contains("minLength"));
}
