//! The retrain decision flow with a stub trainer and evaluator (real training and evaluation
//! are tested in their own crates/modules): a candidate that is not better is rejected, a better
//! one promoted, an untriggered tier left alone, a busy lock respected, and a run killed in the
//! middle resumed cleanly by the next start.

use std::path::{Path, PathBuf};

use tierforge_data::Tier;
use tierforge_deploy::registry::{Registry, Status, VersionRecord};
use tierforge_eval::clock::parse_rfc3339;
use tierforge_eval::compare::{Comparison, Interval};
use tierforge_eval::cycle::*;
use tierforge_eval::evaluate::ModelUnderTest;
use tierforge_eval::feedback::{ingest, IngestOptions};
use tierforge_eval::LoopError;

fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

struct StubTrainer {
    calls: usize,
}
impl CandidateTrainer for StubTrainer {
    fn train(&mut self, req: &TrainRequest) -> Result<Trained, LoopError> {
        self.calls += 1;
        assert!(
            req.init_adapter.as_ref().unwrap().is_dir(),
            "trains from production"
        );
        assert!(std::fs::read_to_string(&req.data).unwrap().lines().count() > 10);
        let adapter = req.out.join("last");
        std::fs::create_dir_all(&adapter).unwrap();
        Ok(Trained {
            adapter,
            metrics: serde_json::json!({"final_loss": 0.5}),
        })
    }
}

struct StubEvaluator {
    better: bool,
    calls: usize,
    /// System prompts of (production, candidate) per call.
    prompts: Vec<(String, String)>,
}
impl CandidateEvaluator for StubEvaluator {
    fn compare(
        &mut self,
        _tier: Tier,
        production: &ModelUnderTest,
        candidate: &ModelUnderTest,
    ) -> Result<Comparison, LoopError> {
        self.calls += 1;
        assert_ne!(production.adapter, candidate.adapter);
        self.prompts.push((
            production.system_prompt().to_owned(),
            candidate.system_prompt().to_owned(),
        ));
        let d = if self.better { 4.0 } else { -0.5 };
        Ok(Comparison {
            a: production.label.clone(),
            b: candidate.label.clone(),
            n: 48,
            wins: if self.better { 20 } else { 10 },
            ties: 20,
            losses: if self.better { 8 } else { 18 },
            mean_a: 80.0,
            mean_b: 80.0 + d,
            mean_diff: d,
            mean_diff_ci: Interval {
                low: d - 2.0,
                high: d + 2.0,
            },
            pass_rate_a: 0.5,
            pass_rate_b: 0.5,
            pass_rate_diff: 0.0,
            pass_rate_diff_ci: Interval {
                low: -0.1,
                high: 0.1,
            },
            confidence: 0.95,
            better: self.better,
        })
    }
}

/// A project in a temp dir: feedback ingested, a small advanced tier set, production 1.0.0.
fn setup(dir: &Path) -> LoopOptions {
    let samples = repo().join("data/samples.jsonl");
    let text = std::fs::read_to_string(&samples).unwrap();
    let tier_set: Vec<&str> = text.lines().take(60).collect();
    std::fs::create_dir_all(dir.join("tiers")).unwrap();
    std::fs::write(dir.join("tiers/advanced.jsonl"), tier_set.join("\n")).unwrap();
    let mut cfg = LoopConfig {
        state_dir: dir.join("state"),
        store: dir.join("state.sqlite"),
        registry: dir.join("registry.db"),
        ..LoopConfig::default()
    };
    cfg.tiers.insert(
        Tier::Advanced,
        TierPaths {
            data: dir.join("tiers/advanced.jsonl"),
            train_config: repo().join("configs/advanced.toml"),
        },
    );
    ingest(&IngestOptions {
        files: vec![repo().join("data/feedback.jsonl")],
        store: cfg.store.clone(),
        samples: vec![samples],
        lexicons: None,
    })
    .unwrap();
    let prod_adapter = dir.join("prod-adapter");
    std::fs::create_dir_all(&prod_adapter).unwrap();
    let mut reg = Registry::open(&cfg.registry).unwrap();
    reg.add(&VersionRecord {
        tier: "advanced".into(),
        version: "1.0.0".into(),
        parent_version: None,
        base_model: "base".into(),
        dataset_hash: "x".into(),
        dataset_size: 60,
        config_hash: "y".into(),
        train_metrics: serde_json::json!({"adapter": prod_adapter}),
        eval_metrics: serde_json::json!({}),
        gguf_path: None,
        gguf_sha256: None,
        gguf_size: None,
        ollama_name: None,
        ollama_digest: None,
        created_at: "2026-10-01T00:00:00Z".into(),
        status: Status::Candidate,
        note: None,
    })
    .unwrap();
    reg.promote("advanced", "1.0.0", "2026-10-01T00:00:00Z", |_| {
        Ok("ok".into())
    })
    .unwrap();
    LoopOptions {
        config: cfg,
        // The planted dip of the bundled stream.
        as_of: parse_rfc3339("2026-10-18T23:59:59Z").unwrap(),
        instructions_only: false,
        tiers: vec![Tier::Advanced],
        crash_after: None,
        abort_after: None,
    }
}

fn log_lines(opts: &LoopOptions) -> Vec<serde_json::Value> {
    std::fs::read_to_string(opts.config.training_log())
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect()
}

#[test]
fn a_candidate_that_is_not_better_is_rejected_with_the_reason() {
    let dir = tempfile::tempdir().unwrap();
    let opts = setup(dir.path());
    let (mut t, mut e) = (
        StubTrainer { calls: 0 },
        StubEvaluator {
            better: false,
            calls: 0,
            prompts: vec![],
        },
    );
    let rep = run_once(&opts, &mut t, &mut e, &mut RegistryOnly, &mut Quiet).unwrap();
    let r = &rep.tiers[0];
    assert_eq!(r.action, Action::Rejected, "{}", r.reason);
    assert!(r.decision.retrain);
    assert_eq!((t.calls, e.calls), (1, 1));
    let ds = r.dataset.as_ref().unwrap();
    assert!(ds.feedback_samples > 50, "{ds:?}");
    assert!(ds.samples <= ds.tier_samples + ds.feedback_samples - ds.rubric_dropped);
    let reg = Registry::open(&opts.config.registry).unwrap();
    assert_eq!(
        reg.production("advanced").unwrap().unwrap().version,
        "1.0.0"
    );
    let cand = reg.get("advanced", "1.1.0").unwrap();
    assert_eq!(cand.status, Status::Rejected);
    assert!(cand.note.unwrap().contains("not better"));
    assert_eq!(cand.eval_metrics["better"], false);
    let log = log_lines(&opts);
    assert_eq!(log.len(), 1);
    assert_eq!(log[0]["action"], "rejected");
    assert_eq!(log[0]["comparison"]["mean_diff"], -0.5);
    assert!(log[0]["decision"]["success_rate"].as_f64().unwrap() < 0.7);
    // Instructions were updated from the low-rated listings, and the lock is gone.
    let p = r.instructions.as_ref().unwrap();
    assert!(p.changed && !p.additions.is_empty(), "{p:?}");
    let v1 = opts
        .config
        .state_dir
        .join("instructions/advanced/v0001.txt");
    assert!(v1.is_file());
    assert!(!opts.config.state_dir.join("locks/advanced.lock").exists());
    // The candidate trained on the v0001 instructions is evaluated with them; production, trained
    // before any update, with the tier's built-in prompt.
    let v1 = std::fs::read_to_string(v1).unwrap();
    assert_eq!(e.prompts.len(), 1);
    assert_eq!(e.prompts[0].0, Tier::Advanced.system_prompt());
    assert_eq!(e.prompts[0].1, v1.trim_end());
    assert_ne!(e.prompts[0].0, e.prompts[0].1);
    assert_eq!(cand_iv(&reg, "1.1.0"), 1);
}

fn cand_iv(reg: &Registry, version: &str) -> u64 {
    reg.get("advanced", version).unwrap().train_metrics["instructions_version"]
        .as_u64()
        .unwrap()
}

#[test]
fn a_better_candidate_is_promoted_and_an_untriggered_tier_is_left_alone() {
    let dir = tempfile::tempdir().unwrap();
    let mut opts = setup(dir.path());
    let (mut t, mut e) = (
        StubTrainer { calls: 0 },
        StubEvaluator {
            better: true,
            calls: 0,
            prompts: vec![],
        },
    );
    let rep = run_once(&opts, &mut t, &mut e, &mut RegistryOnly, &mut Quiet).unwrap();
    assert_eq!(rep.tiers[0].action, Action::Promoted);
    let reg = Registry::open(&opts.config.registry).unwrap();
    assert_eq!(
        reg.production("advanced").unwrap().unwrap().version,
        "1.1.0"
    );
    assert_eq!(
        reg.get("advanced", "1.0.0").unwrap().status,
        Status::Retired
    );
    // October 31: advanced recovered, nothing to do.
    opts.as_of = parse_rfc3339("2026-10-31T23:59:59Z").unwrap();
    let rep = run_once(&opts, &mut t, &mut e, &mut RegistryOnly, &mut Quiet).unwrap();
    assert_eq!(rep.tiers[0].action, Action::NoRetrain);
    assert_eq!(t.calls, 1);
    assert_eq!(log_lines(&opts)[1]["action"], "no_retrain");
}

/// Records what it is asked to build and answers with a GGUF file it writes.
struct StubDeployer {
    dir: PathBuf,
    requests: Vec<DeployRequest>,
    latest: Vec<String>,
}
impl CandidateDeployer for StubDeployer {
    fn deploy(&mut self, req: &DeployRequest) -> Result<Option<Deployed>, LoopError> {
        self.requests.push(req.clone());
        std::fs::create_dir_all(&self.dir).unwrap();
        let gguf = self
            .dir
            .join(format!("tierforge-{}-{}.gguf", req.tier, req.version));
        std::fs::write(&gguf, b"GGUF").unwrap();
        Ok(Some(Deployed {
            gguf,
            sha256: "ab".repeat(32),
            bytes: 4,
            modelfile: self.dir.join("Modelfile"),
            ollama_name: Some(format!("tierforge-{}:{}", req.tier, req.version)),
            ollama_digest: Some("sha256:0123".into()),
        }))
    }
    fn point_latest(&mut self, _tier: Tier, version: &str) -> Result<(), LoopError> {
        self.latest.push(version.to_owned());
        Ok(())
    }
}

#[test]
fn a_promoted_candidate_is_built_with_its_instructions_and_becomes_latest() {
    let dir = tempfile::tempdir().unwrap();
    let opts = setup(dir.path());
    let mut d = StubDeployer {
        dir: dir.path().join("deploy"),
        requests: vec![],
        latest: vec![],
    };
    let mut t = StubTrainer { calls: 0 };
    let mut worse = StubEvaluator {
        better: false,
        calls: 0,
        prompts: vec![],
    };
    // Not better: nothing is built.
    run_once(&opts, &mut t, &mut worse, &mut d, &mut Quiet).unwrap();
    assert!(d.requests.is_empty() && d.latest.is_empty());

    let dir2 = tempfile::tempdir().unwrap();
    let opts = setup(dir2.path());
    let mut better = StubEvaluator {
        better: true,
        calls: 0,
        prompts: vec![],
    };
    let rep = run_once(&opts, &mut t, &mut better, &mut d, &mut Quiet).unwrap();
    assert_eq!(
        rep.tiers[0].action,
        Action::Promoted,
        "{}",
        rep.tiers[0].reason
    );
    assert_eq!(d.requests.len(), 1);
    let req = &d.requests[0];
    assert_eq!((req.tier, req.version.as_str()), (Tier::Advanced, "1.1.0"));
    // The Modelfile gets the instructions the candidate was trained and evaluated with.
    let v1 = std::fs::read_to_string(
        opts.config
            .state_dir
            .join("instructions/advanced/v0001.txt"),
    )
    .unwrap();
    assert_eq!(req.system.as_deref(), Some(v1.trim_end()));
    assert_eq!(req.system.as_deref(), Some(better.prompts[0].1.as_str()));
    assert_eq!(d.latest, ["1.1.0"]);
    let reg = Registry::open(&opts.config.registry).unwrap();
    let rec = reg.get("advanced", "1.1.0").unwrap();
    assert_eq!(rec.status, Status::Production);
    assert!(rec
        .gguf_path
        .unwrap()
        .ends_with("tierforge-advanced-1.1.0.gguf"));
    assert_eq!(rec.gguf_size, Some(4));
    assert_eq!(rec.ollama_name.as_deref(), Some("tierforge-advanced:1.1.0"));
    assert_eq!(rec.ollama_digest.as_deref(), Some("sha256:0123"));
}

#[test]
fn a_live_lock_keeps_a_second_loop_out() {
    let dir = tempfile::tempdir().unwrap();
    let opts = setup(dir.path());
    let lock = opts.config.state_dir.join("locks/advanced.lock");
    std::fs::create_dir_all(lock.parent().unwrap()).unwrap();
    let now = tierforge_eval::clock::now_unix();
    std::fs::write(
        &lock,
        format!("{{\"pid\":{},\"started_at\":{now}}}", std::process::id()),
    )
    .unwrap();
    let (mut t, mut e) = (
        StubTrainer { calls: 0 },
        StubEvaluator {
            better: true,
            calls: 0,
            prompts: vec![],
        },
    );
    let rep = run_once(&opts, &mut t, &mut e, &mut RegistryOnly, &mut Quiet).unwrap();
    assert_eq!(
        rep.tiers[0].action,
        Action::Locked,
        "{}",
        rep.tiers[0].reason
    );
    assert_eq!(t.calls, 0);
    assert!(lock.exists(), "someone else's lock is not removed");
}

/// Killed after each phase in turn; the next start takes over the dead process's lock, resumes
/// the run where it stopped (no second training, no second candidate) and decides once.
#[test]
fn a_killed_run_is_resumed_by_the_next_start() {
    for phase in [
        Phase::Dataset,
        Phase::Trained,
        Phase::Registered,
        Phase::Evaluated,
    ] {
        let dir = tempfile::tempdir().unwrap();
        let mut opts = setup(dir.path());
        opts.crash_after = Some(phase);
        let (mut t, mut e) = (
            StubTrainer { calls: 0 },
            StubEvaluator {
                better: true,
                calls: 0,
                prompts: vec![],
            },
        );
        assert!(run_once(&opts, &mut t, &mut e, &mut RegistryOnly, &mut Quiet).is_err());
        // The killed process left its lock; its pid no longer runs.
        let lock = opts.config.state_dir.join("locks/advanced.lock");
        assert!(lock.exists());
        std::fs::write(&lock, "{\"pid\":4294967294,\"started_at\":1}").unwrap();
        {
            let reg = Registry::open(&opts.config.registry).unwrap();
            assert_eq!(
                reg.production("advanced").unwrap().unwrap().version,
                "1.0.0"
            );
        }
        opts.crash_after = None;
        let rep = run_once(&opts, &mut t, &mut e, &mut RegistryOnly, &mut Quiet).unwrap();
        let r = &rep.tiers[0];
        assert!(r.resumed, "{phase:?}");
        assert!(r.recovered_lock.as_deref().unwrap().contains("stale lock"));
        assert_eq!(r.action, Action::Promoted, "{phase:?}: {}", r.reason);
        assert_eq!(t.calls, 1, "{phase:?}: trained once");
        assert_eq!(e.calls, 1, "{phase:?}: evaluated once");
        let reg = Registry::open(&opts.config.registry).unwrap();
        assert_eq!(reg.list(Some("advanced")).unwrap().len(), 2, "{phase:?}");
        assert_eq!(
            reg.production("advanced").unwrap().unwrap().version,
            "1.1.0"
        );
        assert!(!lock.exists());
        // A third start finds nothing unfinished and trains a fresh run (the dip still triggers).
        let rep = run_once(&opts, &mut t, &mut e, &mut RegistryOnly, &mut Quiet).unwrap();
        assert!(!rep.tiers[0].resumed);
    }
}

#[test]
fn instructions_only_trains_nothing_and_is_idempotent() {
    let dir = tempfile::tempdir().unwrap();
    let mut opts = setup(dir.path());
    opts.instructions_only = true;
    let (mut t, mut e) = (
        StubTrainer { calls: 0 },
        StubEvaluator {
            better: true,
            calls: 0,
            prompts: vec![],
        },
    );
    let rep = run_once(&opts, &mut t, &mut e, &mut RegistryOnly, &mut Quiet).unwrap();
    let p = rep.tiers[0].instructions.as_ref().unwrap();
    assert_eq!(rep.tiers[0].action, Action::InstructionsOnly);
    assert_eq!((p.current_version, p.new_version), (0, 1));
    assert!(
        p.diff
            .starts_with("--- advanced/v0000.txt\n+++ advanced/v0001.txt\n"),
        "{}",
        p.diff
    );
    assert!(p.diff.contains("\n+- "), "{}", p.diff);
    let rep = run_once(&opts, &mut t, &mut e, &mut RegistryOnly, &mut Quiet).unwrap();
    let p = rep.tiers[0].instructions.as_ref().unwrap();
    assert!(!p.changed);
    assert_eq!(p.new_version, 1);
    assert_eq!(t.calls, 0);
}

#[test]
fn the_shipped_loop_config_parses_and_a_bad_deploy_quant_is_named() {
    let path = repo().join("configs/loop.toml");
    let cfg = LoopConfig::from_file(&path).expect("configs/loop.toml parses");
    assert_eq!(cfg.deploy.quant, "q8_0");
    assert_eq!(cfg.deploy_dir(), cfg.state_dir.join("deploy"));
    let e = LoopConfig::from_toml("[deploy]\nquant = \"q5\"\n", "loop.toml")
        .expect_err("unknown quant")
        .to_string();
    assert!(
        e.contains("loop.toml") && e.contains("[deploy] quant"),
        "{e}"
    );
    let cfg =
        LoopConfig::from_toml("[deploy]\nquant = \"f16\"\nout_dir = \"out\"\n", "x").expect("f16");
    assert_eq!(cfg.deploy_dir(), PathBuf::from("out"));
}
