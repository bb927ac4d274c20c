//! `tierforge loop` through the binary, on the bundled feedback stream: an instructions-only
//! pass decides per tier from the ingested events, writes versioned prompt additions for the
//! tiers that triggered, logs every decision, and a second pass over the same feedback changes
//! nothing. A config that does not exist exits 1 and names it. A real retrain (candle training
//! and evaluation, one step and one product) is rejected when it is not better, and production
//! stays.

use std::path::Path;
use std::process::Output;

mod common;
use common::{model, tierforge};

fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

fn path(p: &Path) -> &str {
    p.to_str().expect("utf8 path")
}

/// `(tier, action, instructions changed)` of each tier in a `loop --json` report.
fn actions(o: &Output) -> Vec<(String, String, Option<bool>)> {
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).expect("loop --json");
    v["tiers"]
        .as_array()
        .expect("tiers")
        .iter()
        .map(|t| {
            (
                t["tier"].as_str().expect("tier").to_string(),
                t["action"].as_str().expect("action").to_string(),
                t["instructions"]["changed"].as_bool(),
            )
        })
        .collect()
}

#[test]
fn an_instructions_only_pass_updates_the_tiers_whose_feedback_dropped_once() {
    let dir = tempfile::tempdir().expect("tmp");
    let store = dir.path().join("state.sqlite");
    let o = tierforge(&[
        "feedback",
        "ingest",
        "data/feedback.jsonl",
        "--store",
        path(&store),
        "--samples",
        "data/samples.jsonl",
    ]);
    assert!(o.status.success(), "ingest: {}", text(&o.stderr));

    let state = dir.path().join("loop");
    let config = dir.path().join("loop.toml");
    std::fs::write(
        &config,
        format!(
            "state_dir = {:?}\nstore = {:?}\nregistry = {:?}\n",
            path(&state),
            path(&store),
            path(&dir.path().join("registry.db"))
        ),
    )
    .expect("write config");
    let pass = || {
        tierforge(&[
            "loop",
            "--once",
            "--instructions-only",
            "--as-of",
            "2026-10-18",
            "--config",
            path(&config),
            "--json",
        ])
    };

    let first = pass();
    assert!(first.status.success(), "loop: {}", text(&first.stderr));
    // On the bundled stream at 2026-10-18: advanced dropped (52% over 7 days), basic's 3-day
    // average is under 75%, expert has too few recent events to decide.
    assert_eq!(
        actions(&first),
        vec![
            ("basic".into(), "instructions_only".into(), Some(true)),
            ("advanced".into(), "instructions_only".into(), Some(true)),
            ("expert".into(), "no_retrain".into(), None),
        ]
    );
    let added = std::fs::read_to_string(state.join("instructions/advanced/v0001.txt"))
        .expect("advanced v0001");
    assert!(
        added.contains("(rule "),
        "the additions name the rubric rules users' low ratings broke:\n{added}"
    );
    assert!(state.join("instructions/basic/v0001.txt").exists());
    assert!(!state.join("instructions/expert").join("v0001.txt").exists());
    let log = || {
        std::fs::read_to_string(state.join("training_log.jsonl"))
            .expect("training log")
            .lines()
            .count()
    };
    assert_eq!(log(), 3, "one decision per tier");

    // Same feedback, same time: the same decisions, no new instruction versions.
    let second = pass();
    assert!(second.status.success(), "loop: {}", text(&second.stderr));
    assert!(actions(&second)
        .iter()
        .all(|(_, _, changed)| *changed != Some(true)));
    assert!(!state.join("instructions/advanced/v0002.txt").exists());
    assert_eq!(log(), 6);
}

#[test]
fn a_missing_loop_config_exits_1_and_names_it() {
    let o = tierforge(&["loop", "--once", "--config", "no/such/loop.toml"]);
    assert_eq!(o.status.code(), Some(1), "{}", text(&o.stderr));
    assert!(text(&o.stderr).contains("no/such/loop.toml"));
}

/// The whole retrain path with the real trainer and evaluator, shrunk to seconds: production
/// basic is a one-step adapter built with `tierforge deploy` and promoted; the bundled feedback
/// makes basic retrain at 2026-10-18; the loop trains a candidate from production's adapter
/// for one step, both write 8 tokens for one product (neither parses, so neither is better),
/// and the candidate is rejected with its reason while production stays.
#[test]
fn a_real_retrain_that_is_not_better_is_rejected_and_production_stays() {
    let dir = tempfile::tempdir().expect("tmp");
    let at = |name: &str| dir.path().join(name);
    let model = model();
    let run = |args: &[&str]| {
        let o = tierforge(args);
        assert!(
            o.status.success(),
            "{args:?}: {}\n{}",
            text(&o.stderr),
            text(&o.stdout)
        );
        o
    };

    // A small tier set (the first 30 bundled samples) and a one-sequence training config (420 tokens hold the system prompt, the product and the start of the answer).
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
    let samples =
        std::fs::read_to_string(root.join("data/samples.jsonl")).expect("bundled samples");
    let first: Vec<&str> = samples.lines().take(30).collect();
    std::fs::write(at("basic.jsonl"), first.join("\n") + "\n").expect("write tier set");
    std::fs::write(
        at("tiny.toml"),
        "lora_rank = 4\nlora_alpha = 8.0\nbatch_size = 1\ngrad_accum_steps = 1\n\
         max_seq_len = 420\nmax_steps = 1\nwarmup_steps = 0\nsave_every = 1\neval_every = 0\n",
    )
    .expect("write train config");
    let registry = at("registry.db");

    run(&[
        "train",
        "--model",
        &model,
        "--data",
        path(&at("basic.jsonl")),
        "--config",
        path(&at("tiny.toml")),
        "--out",
        path(&at("prod")),
        "--quiet",
    ]);
    run(&[
        "deploy",
        "--tier",
        "basic",
        "--adapter",
        path(&at("prod")),
        "--model",
        &model,
        "--out",
        path(&at("deploy")),
        "--registry",
        path(&registry),
        "--no-push",
    ]);
    run(&[
        "models",
        "promote",
        "basic",
        "1.0.0",
        "--registry",
        path(&registry),
        "--check-products",
        "1",
        "--min-pass-rate",
        "0",
        "--max-tokens",
        "8",
        "--no-ollama",
    ]);

    let store = at("state.sqlite");
    run(&[
        "feedback",
        "ingest",
        "data/feedback.jsonl",
        "--store",
        path(&store),
        "--samples",
        "data/samples.jsonl",
    ]);
    let state = at("loop");
    std::fs::write(
        at("loop.toml"),
        format!(
            "state_dir = {:?}\nstore = {:?}\nregistry = {:?}\nbase_model = {:?}\n\
             eval_products = \"data/eval-products.jsonl\"\n\
             [retrain]\nmax_steps = 1\neval_limit = 1\neval_max_tokens = 8\n\
             [tiers.basic]\ndata = {:?}\ntrain_config = {:?}\n",
            path(&state),
            path(&store),
            path(&registry),
            model,
            path(&at("basic.jsonl")),
            path(&at("tiny.toml")),
        ),
    )
    .expect("write loop config");
    let o = run(&[
        "loop",
        "--once",
        "--tier",
        "basic",
        "--as-of",
        "2026-10-18",
        "--config",
        path(&at("loop.toml")),
        "--json",
        "--quiet",
    ]);
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).expect("loop --json");
    let t = &v["tiers"][0];
    assert_eq!(t["tier"], "basic", "{v}");
    assert_eq!(t["action"], "rejected", "{v}");

    // The registry: the candidate trained from 1.0.0 is rejected with a reason; 1.0.0 is still
    // production.
    let o = run(&["models", "list", "--registry", path(&registry), "--json"]);
    let list: serde_json::Value = serde_json::from_slice(&o.stdout).expect("models list --json");
    let rows = list.as_array().expect("versions");
    let status = |version: &str| {
        rows.iter()
            .find(|r| r["tier"] == "basic" && r["version"] == version)
            .map(|r| r["status"].as_str().unwrap_or_default().to_string())
    };
    assert_eq!(status("1.0.0").as_deref(), Some("production"), "{list}");
    let candidate = rows
        .iter()
        .find(|r| r["tier"] == "basic" && r["version"] != "1.0.0")
        .expect("a candidate version");
    assert_eq!(candidate["status"], "rejected", "{list}");
    assert_eq!(candidate["parent_version"], "1.0.0", "{list}");
    let adapter = candidate["train_metrics"]["adapter"]
        .as_str()
        .map(std::path::PathBuf::from)
        .expect("the candidate's adapter");
    assert!(
        adapter.join("adapter_model.safetensors").is_file(),
        "{}",
        adapter.display()
    );
    let log = std::fs::read_to_string(state.join("training_log.jsonl")).expect("training log");
    assert!(log.contains("rejected"), "{log}");

    // What the loop builds for a candidate it promotes (the real deployer): a merged GGUF and
    // a Modelfile whose SYSTEM is the prompt the candidate was trained with; nothing registered.
    use tierforge_eval::cycle::{BundleDeployer, CandidateDeployer, DeployRequest};
    let mut deployer = BundleDeployer {
        base_model: model.clone(),
        out_dir: at("loop-deploy"),
        quant: tierforge_deploy::export::Quant::Q8_0,
        ollama_host: None,
    };
    let system = "Write listings.\nAvoid the word \"best\" (rule X-PROMO).";
    let built = deployer
        .deploy(&DeployRequest {
            tier: tierforge_data::Tier::Basic,
            version: "1.2.0".into(),
            adapter: adapter.clone(),
            system: Some(system.into()),
        })
        .expect("deploy")
        .expect("built");
    assert!(built.gguf.is_file() && built.bytes > 0);
    assert!(built.ollama_name.is_none(), "no Ollama here");
    let modelfile = std::fs::read_to_string(&built.modelfile).expect("Modelfile");
    assert!(
        modelfile.contains(&format!("SYSTEM \"\"\"{system}\"\"\"")),
        "{modelfile}"
    );
    let o = run(&["models", "list", "--registry", path(&registry), "--json"]);
    let after: serde_json::Value = serde_json::from_slice(&o.stdout).expect("json");
    assert_eq!(after, list, "the deployer registers nothing itself");
}
