//! `tierforge pipeline` through the binary: a whole (tiny) progression on the bundled data with
//! the real model, then a second run that skips every finished stage; and bad input.

use std::path::PathBuf;
use std::process::Output;

mod common;
use common::{model, tierforge};

fn text(o: &Output) -> (String, String) {
    (
        String::from_utf8_lossy(&o.stdout).into_owned(),
        String::from_utf8_lossy(&o.stderr).into_owned(),
    )
}

/// Two optimizer steps of one 420-token sequence per tier, expert's two checkpoints compared on one
/// validation product, 2 products × 8 tokens of evaluation: every stage runs for real, in about a
/// minute.
#[test]
fn tiny_pipeline_runs_every_stage_then_resumes_by_skipping_them() {
    let model = model();
    let dir = tempfile::tempdir().expect("tmp");
    let out = dir.path().join("run");
    let registry = dir.path().join("registry.db");
    let args = [
        "pipeline",
        "--model",
        &model,
        "--out",
        out.to_str().expect("utf8"),
        "--registry",
        registry.to_str().expect("utf8"),
        "--steps",
        "2",
        "--select-from",
        "1",
        "--select-every",
        "1",
        "--select-products",
        "1",
        "--grad-accum-steps",
        "1",
        "--max-seq-len",
        "420",
        "--eval-limit",
        "2",
        "--eval-max-tokens",
        "8",
        "--json",
    ];
    let o = tierforge(&args);
    let (stdout, stderr) = text(&o);
    assert!(o.status.success(), "pipeline failed:\n{stderr}");
    let s: serde_json::Value = serde_json::from_str(&stdout).expect("--json summary");
    let tiers = s["tiers"].as_array().expect("tiers");
    let names: Vec<&str> = tiers.iter().map(|t| t["tier"].as_str().unwrap()).collect();
    assert_eq!(names, ["basic", "advanced", "expert"]);
    for t in tiers {
        assert_eq!(t["steps"], 2, "{t}");
        let gguf = PathBuf::from(t["gguf"].as_str().expect("gguf path"));
        assert!(gguf.exists(), "{} missing", gguf.display());
        assert_eq!(
            std::fs::metadata(&gguf).unwrap().len(),
            t["gguf_bytes"].as_u64().unwrap()
        );
        assert!(gguf.with_file_name("Modelfile").exists());
        assert!(
            t["pass_rate"].is_number() && t["mean_score"].is_number(),
            "{t}"
        );
        assert_eq!(t["pushed"], false);
    }
    assert!(s["base_pass_rate"].is_number());
    // Expert's adapter is the checkpoint chosen on the validation products, and it is what was
    // exported and evaluated.
    let expert = &tiers[2];
    let sel: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(out.join("train/expert/selection.json")).expect("selection.json"),
    )
    .expect("selection json");
    let steps: Vec<u64> = sel["candidates"]
        .as_array()
        .expect("candidates")
        .iter()
        .map(|c| c["step"].as_u64().unwrap())
        .collect();
    assert_eq!(steps, [1, 2]);
    assert_eq!(sel["products"], 1);
    assert_eq!(expert["selected_step"], sel["chosen"]["step"]);
    assert_eq!(expert["adapter"], sel["chosen"]["adapter"]);
    assert!(expert["adapter"]
        .as_str()
        .unwrap()
        .contains("train/expert/candidates/step-"));
    assert!(
        tiers[0]["selected_step"].is_null(),
        "basic is not chosen this way"
    );
    assert!(
        s["findings"].as_array().unwrap().iter().any(|f| f
            .as_str()
            .unwrap()
            .contains("was chosen by rubric pass rate")),
        "{}",
        s["findings"]
    );
    let products = std::fs::read_to_string(out.join("data/val-products.jsonl")).unwrap();
    assert!(!products.trim().is_empty());
    // The data stage read the bundled samples and dropped the planted duplicates.
    assert_eq!(s["data"]["read"], 900);
    assert!(s["data"]["exact_duplicates"].as_u64().unwrap() > 0);
    let report = PathBuf::from(s["report"].as_str().expect("report path"));
    assert!(report.ends_with("report.html") && report.exists());
    // The candidates were scored as merged GGUFs, which are not kept.
    let left: Vec<_> = std::fs::read_dir(out.join("train/expert/candidates"))
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .filter(|n| n.to_string_lossy().ends_with(".gguf"))
        .collect();
    assert!(left.is_empty(), "{left:?}");
    // The tiers were evaluated as they ship: their exported GGUFs, with quantized weights.
    let eval: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(out.join("eval/eval.json")).unwrap())
            .unwrap();
    assert_eq!(
        eval["options"]["weights"], "quantized",
        "{}",
        eval["options"]
    );
    for (m, t) in eval["models"].as_array().unwrap()[1..].iter().zip(tiers) {
        assert_eq!(m["model"]["model"], t["gguf"], "{}", m["model"]);
        assert!(m["model"]["adapter"].is_null(), "{}", m["model"]);
    }
    // Each tier continued from the one before.
    for stage in [
        "data",
        "train-basic",
        "train-advanced",
        "train-expert",
        "select-expert",
        "export-expert",
        "eval",
    ] {
        assert!(
            stderr.contains(&format!("{stage}: done in")),
            "{stage} did not run:\n{stderr}"
        );
    }

    // Same inputs: every stage is skipped and the summary is the same.
    let o2 = tierforge(&args);
    let (stdout2, stderr2) = text(&o2);
    assert!(o2.status.success(), "second run failed:\n{stderr2}");
    assert!(
        !stderr2.contains("done in"),
        "a stage ran again:\n{stderr2}"
    );
    assert_eq!(stderr2.matches("skipped").count(), 9, "{stderr2}");
    let s2: serde_json::Value = serde_json::from_str(&stdout2).expect("json");
    assert_eq!(s2["tiers"], s["tiers"]);
    assert_eq!(s2["base_pass_rate"], s["base_pass_rate"]);
}

#[test]
fn a_missing_data_folder_is_a_clear_error_and_nothing_is_trained() {
    let dir = tempfile::tempdir().expect("tmp");
    let out = dir.path().join("run");
    let o = tierforge(&[
        "pipeline",
        "--data",
        dir.path().join("nope").to_str().unwrap(),
        "--model",
        "unused.gguf",
        "--out",
        out.to_str().unwrap(),
    ]);
    let (_, stderr) = text(&o);
    assert_eq!(o.status.code(), Some(1), "{stderr}");
    assert!(stderr.contains("nope"), "{stderr}");
    assert!(!out.join("train").exists());
}
