//! `tierforge eval` through the binary: bad input exits 1 naming the file and line; a tiny real
//! run (2 products, 16 tokens) of the base model and a zero LoRA adapter writes the report, and
//! the zero adapter, merged, gives the base model's outputs exactly.

use std::process::Output;

mod common;
use common::{model, tierforge};

fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

#[test]
fn bad_products_and_missing_adapters_exit_1_with_the_place() {
    let dir = tempfile::tempdir().expect("tmp");
    let p = dir.path().join("products.jsonl");
    std::fs::write(
        &p,
        "{\"id\":\"a\",\"input\":{\"product_name\":\"Lamp\"}}\n{\"id\":\"b\",\"input\":{\"product_name\":\"X\",\"features\":7}}\n",
    )
    .expect("write");
    let o = tierforge(&[
        "eval",
        "--models",
        "base",
        "--model",
        "unused.gguf",
        "--products",
        p.to_str().expect("utf8"),
    ]);
    assert_eq!(o.status.code(), Some(1), "{}", stderr(&o));
    assert!(
        stderr(&o).contains("products.jsonl:2: input: not a product"),
        "{}",
        stderr(&o)
    );

    let o = tierforge(&["eval", "--models", "base,basic", "--model", "unused.gguf"]);
    assert_eq!(o.status.code(), Some(1), "{}", stderr(&o));
    assert!(
        stderr(&o).contains("no adapter for basic"),
        "{}",
        stderr(&o)
    );

    let o = tierforge(&["eval", "--backend", "tpu"]);
    assert_eq!(o.status.code(), Some(2), "clap rejects unknown values");
}

#[test]
fn tiny_real_run_of_base_and_a_zero_adapter() {
    let model = model();
    let dir = tempfile::tempdir().expect("tmp");
    // A fresh LoRA adapter has B = 0: merged, it must leave every output unchanged.
    let lm = tierforge_model::load(&model, &tierforge_model::LoadOptions::default()).expect("load");
    let shape = tierforge_train::lora::LoraShape {
        rank: 4,
        alpha: 8.0,
        dropout: 0.0,
        rslora: false,
        targets: vec![tierforge_model::Proj::QProj, tierforge_model::Proj::VProj],
    };
    let mut rng = tierforge_data::rng::Rng::new(3);
    let device = lm.llama.device().clone();
    let adapter =
        tierforge_train::lora::Adapter::init(&lm.llama, shape, &mut rng, &device).expect("init");
    let adir = dir.path().join("basic-adapter");
    adapter.save(&adir, &model).expect("save");
    drop(lm);

    let report = dir.path().join("report");
    let adapters = format!("basic={}", adir.display());
    let o = tierforge(&[
        "eval",
        "--models",
        "base,basic",
        "--model",
        &model,
        "--adapters",
        &adapters,
        // The same system prompt for both, so that only the weights differ.
        "--base-tier",
        "basic",
        "--limit",
        "2",
        "--max-tokens",
        "16",
        "--batch-size",
        "2",
        "--json",
        "-q",
        "--report",
        report.to_str().expect("utf8"),
    ]);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    let run: serde_json::Value = serde_json::from_slice(&o.stdout).expect("json on stdout");
    let models = run["models"].as_array().expect("models");
    assert_eq!(models.len(), 2);
    for m in models {
        assert_eq!(m["products"].as_array().map(Vec::len), Some(2));
        assert!(m["summary"]["tokens_per_s"].as_f64().unwrap_or(0.0) > 0.0);
    }
    let outputs = |m: &serde_json::Value| -> Vec<String> {
        m["products"]
            .as_array()
            .expect("products")
            .iter()
            .map(|p| p["output"].as_str().unwrap_or_default().to_string())
            .collect()
    };
    assert_eq!(outputs(&models[0]), outputs(&models[1]));
    assert!(outputs(&models[0]).iter().all(|t| !t.is_empty()));
    let c = &run["comparisons"][0];
    assert_eq!(
        (c["a"].as_str(), c["b"].as_str()),
        (Some("base"), Some("basic"))
    );
    assert_eq!(c["better"], false);
    let html = std::fs::read_to_string(report.join("report.html")).expect("report.html");
    assert!(html.contains("basic is NOT shown to be better than base"));
    assert!(report.join("eval.json").is_file());

    // `tierforge generate --adapter` applies the same adapter: dense weights, same tokens.
    let gen = |extra: &[&str]| -> serde_json::Value {
        let mut args = vec![
            "generate",
            "--model",
            &model,
            "--dense",
            "--prompt",
            "Write a title for a steel bottle",
            "--max-tokens",
            "8",
            "--json",
        ];
        args.extend_from_slice(extra);
        let o = tierforge(&args);
        assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
        serde_json::from_slice(&o.stdout).expect("json")
    };
    // Products through the listing schema: every answer is a valid start of a listing, and a
    // finished one parses.
    let out = dir.path().join("listings.jsonl");
    let products = dir.path().join("two.jsonl");
    let two: String = std::fs::read_to_string(
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../data/eval-products.jsonl"),
    )
    .expect("eval products")
    .lines()
    .take(2)
    .map(|l| format!("{l}\n"))
    .collect();
    std::fs::write(&products, two).expect("write");
    let o = tierforge(&[
        "generate",
        "--model",
        &model,
        "--dense",
        "--input",
        products.to_str().expect("utf8"),
        "-o",
        out.to_str().expect("utf8"),
        "--format",
        "schema",
        "--max-tokens",
        "24",
    ]);
    assert!(o.status.code().is_some_and(|c| c <= 1), "{}", stderr(&o));
    let grammar = tierforge_model::JsonSchema::compile(&tierforge_data::completion::json_schema())
        .expect("schema");
    let rows: Vec<serde_json::Value> = std::fs::read_to_string(&out)
        .expect("listings")
        .lines()
        .map(|l| serde_json::from_str(l).expect("row"))
        .collect();
    assert_eq!(rows.len(), 2);
    for r in &rows {
        let text = r["completion"].as_str().expect("completion");
        assert!(text.starts_with('{'), "{text:?}");
        assert!(grammar.accepts_text(text, false), "{text:?}");
        if r["stop_reason"] == "eos" {
            assert!(r["listing"].is_object(), "{r}");
        }
    }

    let plain = gen(&[]);
    let adir_s = adir.to_str().expect("utf8");
    let adapted = gen(&["--adapter", adir_s]);
    assert_eq!(plain["token_ids"], adapted["token_ids"]);
    let o = tierforge(&[
        "generate",
        "--model",
        &model,
        "--adapter",
        dir.path().join("nope").to_str().expect("utf8"),
        "--prompt",
        "x",
    ]);
    assert!(!o.status.success());
    assert!(
        stderr(&o).contains("Failed to load the adapter"),
        "{}",
        stderr(&o)
    );
}
