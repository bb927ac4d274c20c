//! `tierforge loop` through the binary, on the bundled feedback stream: an instructions-only
//! pass decides per tier from the ingested events, writes versioned prompt additions for the
//! tiers that triggered, logs every decision, and a second pass over the same feedback changes
//! nothing. A config that does not exist exits 1 and names it. A real retrain (candle training
//! and evaluation, one step and one product) is rejected when it is not better, and production
//! stays; a loop process killed after training is finished by the next start.

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

/// Ingests the bundled feedback stream into `store`.
fn ingest_bundled_feedback(store: &Path) {
    let o = tierforge(&[
        "feedback",
        "ingest",
        "data/feedback.jsonl",
        "--store",
        path(store),
        "--samples",
        "data/samples.jsonl",
    ]);
    assert!(o.status.success(), "ingest: {}", text(&o.stderr));
}

#[test]
fn an_instructions_only_pass_updates_the_tiers_whose_feedback_dropped_once() {
    let dir = tempfile::tempdir().expect("tmp");
    let store = dir.path().join("state.sqlite");
    ingest_bundled_feedback(&store);

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

/// Runs `tierforge` and asserts it succeeded.
fn run(args: &[&str]) -> Output {
    let o = tierforge(args);
    assert!(
        o.status.success(),
        "{args:?}: {}\n{}",
        text(&o.stderr),
        text(&o.stdout)
    );
    o
}

/// A project ready for a real retrain of basic, shrunk to seconds: a one-step production adapter
/// built with `tierforge deploy` and promoted (health check on one product), the bundled
/// feedback ingested, and a loop config that trains one step and evaluates one product with 8
/// tokens. Returns the loop command's arguments.
struct RetrainProject {
    dir: tempfile::TempDir,
    model: String,
}

impl RetrainProject {
    fn at(&self, name: &str) -> std::path::PathBuf {
        self.dir.path().join(name)
    }

    fn new() -> Self {
        let p = Self {
            dir: tempfile::tempdir().expect("tmp"),
            model: model(),
        };
        let model = p.model.as_str();
        // A small tier set (the first 30 bundled samples) and a one-sequence training config
        // (420 tokens hold the system prompt, the product and the start of the answer).
        let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
        let samples =
            std::fs::read_to_string(root.join("data/samples.jsonl")).expect("bundled samples");
        let first: Vec<&str> = samples.lines().take(30).collect();
        std::fs::write(p.at("basic.jsonl"), first.join("\n") + "\n").expect("write tier set");
        std::fs::write(
            p.at("tiny.toml"),
            "lora_rank = 4\nlora_alpha = 8.0\nbatch_size = 1\ngrad_accum_steps = 1\n\
             max_seq_len = 420\nmax_steps = 1\nwarmup_steps = 0\nsave_every = 1\neval_every = 0\n",
        )
        .expect("write train config");
        let registry = p.at("registry.db");
        run(&[
            "train",
            "--model",
            model,
            "--data",
            path(&p.at("basic.jsonl")),
            "--config",
            path(&p.at("tiny.toml")),
            "--out",
            path(&p.at("prod")),
            "--quiet",
        ]);
        run(&[
            "deploy",
            "--tier",
            "basic",
            "--adapter",
            path(&p.at("prod")),
            "--model",
            model,
            "--out",
            path(&p.at("deploy")),
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
        let store = p.at("state.sqlite");
        ingest_bundled_feedback(&store);
        std::fs::write(
            p.at("loop.toml"),
            format!(
                "state_dir = {:?}\nstore = {:?}\nregistry = {:?}\nbase_model = {:?}\n\
                 eval_products = \"data/eval-products.jsonl\"\n\
                 [retrain]\nmax_steps = 1\neval_limit = 1\neval_max_tokens = 8\n\
                 [tiers.basic]\ndata = {:?}\ntrain_config = {:?}\n",
                path(&p.at("loop")),
                path(&store),
                path(&registry),
                model,
                path(&p.at("basic.jsonl")),
                path(&p.at("tiny.toml")),
            ),
        )
        .expect("write loop config");
        p
    }

    /// `loop --once --tier basic` at the bundled stream's dip.
    fn loop_args(&self) -> Vec<String> {
        [
            "loop",
            "--once",
            "--tier",
            "basic",
            "--as-of",
            "2026-10-18",
            "--config",
            path(&self.at("loop.toml")),
            "--json",
        ]
        .iter()
        .map(|s| s.to_string())
        .collect()
    }

    /// `models list --json`: the registry's versions.
    fn versions(&self) -> serde_json::Value {
        let o = run(&[
            "models",
            "list",
            "--registry",
            path(&self.at("registry.db")),
            "--json",
        ]);
        serde_json::from_slice(&o.stdout).expect("models list --json")
    }
}

/// `(status, parent)` of every basic version but 1.0.0, and 1.0.0's status.
fn basic_candidates(list: &serde_json::Value) -> (Vec<(String, String)>, String) {
    let rows = list.as_array().expect("versions");
    let mut cands = Vec::new();
    let mut prod = String::new();
    for r in rows.iter().filter(|r| r["tier"] == "basic") {
        let status = r["status"].as_str().unwrap_or_default().to_string();
        if r["version"] == "1.0.0" {
            prod = status;
        } else {
            cands.push((
                status,
                r["parent_version"].as_str().unwrap_or_default().into(),
            ));
        }
    }
    (cands, prod)
}

/// 1.0.0 is still basic's production version, and the one candidate trained from it was rejected.
fn assert_one_rejected_candidate(list: &serde_json::Value) {
    let (cands, prod) = basic_candidates(list);
    assert_eq!(prod, "production", "{list}");
    assert_eq!(
        cands,
        [("rejected".to_string(), "1.0.0".to_string())],
        "{list}"
    );
}

/// The whole retrain path with the real trainer and evaluator: the loop trains a candidate from
/// production's adapter for one step, both write 8 tokens for one product (neither parses, so
/// neither is better), and the candidate is rejected with its reason while production stays.
#[test]
fn a_real_retrain_that_is_not_better_is_rejected_and_production_stays() {
    let p = RetrainProject::new();
    let args = p.loop_args();
    let o = run(&args.iter().map(String::as_str).collect::<Vec<_>>());
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).expect("loop --json");
    let t = &v["tiers"][0];
    assert_eq!(t["tier"], "basic", "{v}");
    assert_eq!(t["action"], "rejected", "{v}");

    // The registry: the candidate trained from 1.0.0 is rejected; 1.0.0 is still production.
    let list = p.versions();
    assert_one_rejected_candidate(&list);
    let candidate = list
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["tier"] == "basic" && r["version"] != "1.0.0")
        .expect("a candidate version");
    let adapter = candidate["train_metrics"]["adapter"]
        .as_str()
        .map(std::path::PathBuf::from)
        .expect("the candidate's adapter");
    assert!(
        adapter.join("adapter_model.safetensors").is_file(),
        "{}",
        adapter.display()
    );
    let log = std::fs::read_to_string(p.at("loop/training_log.jsonl")).expect("training log");
    assert!(log.contains("rejected"), "{log}");

    // What the loop builds for a candidate it promotes (the real deployer): a merged GGUF and
    // a Modelfile whose SYSTEM is the prompt the candidate was trained with; nothing registered.
    use tierforge_eval::cycle::{BundleDeployer, CandidateDeployer, DeployRequest};
    let mut deployer = BundleDeployer {
        base_model: p.model.clone(),
        out_dir: p.at("loop-deploy"),
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
    assert_eq!(p.versions(), list, "the deployer registers nothing itself");
}

/// A loop process killed right after training (SIGKILL to itself: lock and journal left
/// behind, as after `kill -9`) is finished by the next start: it takes the dead process's lock
/// over, continues from the journal without training again, and registers one candidate.
#[test]
fn a_loop_killed_after_training_is_finished_by_the_next_run() {
    let p = RetrainProject::new();
    let args = p.loop_args();
    let killed = std::process::Command::new(env!("CARGO_BIN_EXE_tierforge"))
        .args(&args)
        .current_dir(Path::new(env!("CARGO_MANIFEST_DIR")).join("../.."))
        .env_remove("OLLAMA_HOST")
        .env("TIERFORGE_LOOP_ABORT_AFTER", "trained")
        .output()
        .expect("run tierforge");
    assert!(
        killed.status.code().is_none(),
        "the process must die by a signal: {:?}\n{}",
        killed.status,
        text(&killed.stderr)
    );
    let lock = p.at("loop/locks/basic.lock");
    assert!(lock.is_file(), "a killed run leaves its lock");
    let journals: Vec<std::path::PathBuf> = std::fs::read_dir(p.at("loop/runs/basic"))
        .expect("runs")
        .map(|e| e.expect("entry").path().join("run.json"))
        .collect();
    assert_eq!(journals.len(), 1);
    let journal = || -> serde_json::Value {
        serde_json::from_str(&std::fs::read_to_string(&journals[0]).expect("run.json")).unwrap()
    };
    assert_eq!(journal()["phase"], "trained");
    let (cands, _) = basic_candidates(&p.versions());
    assert!(cands.is_empty(), "nothing registered before the kill");

    let o = tierforge(&args.iter().map(String::as_str).collect::<Vec<_>>());
    assert!(o.status.success(), "{}", text(&o.stderr));
    let err = text(&o.stderr);
    assert!(
        !err.contains("training the candidate"),
        "the candidate was trained again:\n{err}"
    );
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).expect("loop --json");
    assert_eq!(v["tiers"][0]["action"], "rejected", "{v}");
    assert!(!lock.exists(), "the lock is released");
    assert_eq!(journal()["phase"], "done");
    assert_one_rejected_candidate(&p.versions());
}
