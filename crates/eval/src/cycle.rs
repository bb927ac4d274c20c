//! One pass of the loop (`tierforge loop --once`), per tier:
//!
//! 1. decide from the feedback store ([`crate::decide`]); no retrain → log and stop;
//! 2. update the tier's instructions ([`crate::instructions`]); `--instructions-only` stops here;
//! 3. build a dataset: the tier's set plus feedback positives and corrections, rubric-filtered
//!    and deduplicated, rendered with the tier's current instructions;
//! 4. train a candidate from the production adapter ([`CandidateTrainer`]);
//! 5. register it as a candidate, evaluate it against production on the same products
//!    ([`CandidateEvaluator`]); promote it only when the comparison says `better`, else mark it
//!    rejected with the reason. Promotion and rejection are registry transactions.
//!
//! Every decision, with its numbers, is appended to `<state>/training_log.jsonl` (and to the
//! registry's event log when a candidate exists). A lock per tier keeps two loops apart. Each
//! phase is written to `<state>/runs/<tier>/<run>/run.json` before the next starts, so a killed
//! run is resumed from its last finished phase on the next start; a candidate is never half
//! promoted.

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use std::collections::BTreeMap;
use std::io::Write;
use std::path::{Path, PathBuf};

use tierforge_data::dedup::{dedup, DedupConfig};
use tierforge_data::export::{export_line, ExportFormat};
use tierforge_data::tiers::TiersConfig;
use tierforge_data::{Rubric, Tier};
use tierforge_deploy::registry::{Registry, Status, VersionRecord};

use crate::clock;
use crate::compare::Comparison;
use crate::decide::{decide, DecideConfig, Decision, Outcome};
use crate::evaluate::ModelUnderTest;
use crate::feedback::{Store, POSITIVE_RATING};
use crate::instructions::{self, InstructionStore, InstructionsConfig, Proposal};
use crate::lock::{self, Acquired};
use crate::loop_error::LoopError;

/// Paths of one tier (`[tiers.<tier>]` in `configs/loop.toml`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TierPaths {
    /// The tier's training set (records, as `tierforge data tiers` writes it).
    pub data: PathBuf,
    /// The tier's training config.
    pub train_config: PathBuf,
}

/// `[retrain]` in `configs/loop.toml`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RetrainConfig {
    /// Overrides the training config's step budget (keeps a nightly run short).
    pub max_steps: Option<usize>,
    /// Evaluate on the first N products only.
    pub eval_limit: Option<usize>,
    /// Upper bound on generated tokens per product in the evaluation.
    pub eval_max_tokens: usize,
    /// Near-duplicate threshold (estimated Jaccard of word 5-gram shingles).
    pub dedup_threshold: f64,
    /// Minimum compliance score of a training sample; default: the tier's `min_score`.
    pub min_score: Option<u8>,
    /// A lock older than this is taken over, in hours.
    pub lock_stale_after_hours: f64,
}

impl Default for RetrainConfig {
    fn default() -> Self {
        Self {
            max_steps: None,
            eval_limit: None,
            eval_max_tokens: 400,
            dedup_threshold: 0.8,
            min_score: None,
            lock_stale_after_hours: 12.0,
        }
    }
}

/// `[deploy]`: how a promoted candidate is built.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct DeployConfig {
    /// Quantization of its merged GGUF (`f16`, `q8_0`, `q4_0`, `q4_k_m`).
    pub quant: String,
    /// Where its bundle goes (`<out_dir>/<tier>-<version>/`); default `<state_dir>/deploy`.
    pub out_dir: Option<PathBuf>,
}

impl Default for DeployConfig {
    fn default() -> Self {
        Self {
            quant: "q8_0".into(),
            out_dir: None,
        }
    }
}

/// `configs/loop.toml`: every key documented there.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct LoopConfig {
    /// Locks, run journals, instruction versions and `training_log.jsonl`.
    pub state_dir: PathBuf,
    /// The feedback store.
    pub store: PathBuf,
    /// The model registry.
    pub registry: PathBuf,
    /// The base model every adapter belongs to.
    pub base_model: String,
    /// Held-out products for champion/challenger evaluation.
    pub eval_products: PathBuf,
    pub decide: DecideConfig,
    pub instructions: InstructionsConfig,
    pub retrain: RetrainConfig,
    pub deploy: DeployConfig,
    /// Per tier; default `runs/tiers/<tier>.jsonl` and `configs/<tier>.toml`.
    pub tiers: BTreeMap<Tier, TierPaths>,
}

impl Default for LoopConfig {
    fn default() -> Self {
        Self {
            state_dir: "runs/loop".into(),
            store: crate::feedback::DEFAULT_STORE.into(),
            registry: "runs/registry.db".into(),
            base_model: "models/SmolLM2-135M-Instruct.Q4_1.gguf".into(),
            eval_products: "data/eval-products.jsonl".into(),
            decide: DecideConfig::default(),
            instructions: InstructionsConfig::default(),
            retrain: RetrainConfig::default(),
            deploy: DeployConfig::default(),
            tiers: BTreeMap::new(),
        }
    }
}

impl LoopConfig {
    /// `[deploy] quant`, parsed.
    pub fn deploy_quant(&self) -> Result<tierforge_deploy::export::Quant, String> {
        self.deploy.quant.parse()
    }

    /// Where promoted candidates' bundles go.
    pub fn deploy_dir(&self) -> PathBuf {
        self.deploy
            .out_dir
            .clone()
            .unwrap_or_else(|| self.state_dir.join("deploy"))
    }

    /// Parses `configs/loop.toml`; unknown keys are errors that name the key.
    pub fn from_toml(text: &str, origin: &str) -> Result<Self, LoopError> {
        let cfg: LoopConfig =
            toml::from_str(text).map_err(|e| LoopError::Config(format!("{origin}: {e}")))?;
        cfg.decide.validate(origin).map_err(LoopError::Config)?;
        cfg.deploy_quant()
            .map_err(|e| LoopError::Config(format!("{origin}: [deploy] quant: {e}")))?;
        Ok(cfg)
    }

    pub fn from_file(path: &Path) -> Result<Self, LoopError> {
        let text = std::fs::read_to_string(path).map_err(LoopError::io(path))?;
        Self::from_toml(&text, &path.display().to_string())
    }

    pub fn tier_paths(&self, tier: Tier) -> TierPaths {
        self.tiers.get(&tier).cloned().unwrap_or_else(|| TierPaths {
            data: format!("runs/tiers/{tier}.jsonl").into(),
            train_config: format!("configs/{tier}.toml").into(),
        })
    }

    pub fn training_log(&self) -> PathBuf {
        self.state_dir.join("training_log.jsonl")
    }
}

/// What a candidate is trained from.
#[derive(Debug, Clone)]
pub struct TrainRequest {
    pub tier: Tier,
    /// Chat `messages` JSONL.
    pub data: PathBuf,
    /// The production adapter (PEFT folder) the candidate continues from.
    pub init_adapter: Option<PathBuf>,
    /// Output folder; it may hold a checkpoint of a killed run, which is resumed.
    pub out: PathBuf,
    pub train_config: PathBuf,
    pub max_steps: Option<usize>,
}

/// A trained candidate.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Trained {
    /// The adapter folder.
    pub adapter: PathBuf,
    pub metrics: serde_json::Value,
}

/// Trains a candidate (real: [`CandleTrainer`]; tests: stubs).
pub trait CandidateTrainer {
    fn train(&mut self, req: &TrainRequest) -> Result<Trained, LoopError>;
}

/// Compares a candidate with production on the same products (real: [`RubricEvaluator`]).
pub trait CandidateEvaluator {
    /// `production` is `a`, `candidate` is `b`: `better` means the candidate wins.
    fn compare(
        &mut self,
        tier: Tier,
        production: &ModelUnderTest,
        candidate: &ModelUnderTest,
    ) -> Result<Comparison, LoopError>;
}

/// What a promoted candidate is built from.
#[derive(Debug, Clone)]
pub struct DeployRequest {
    pub tier: Tier,
    /// The candidate's registry version; the model is `tierforge-<tier>:<version>`.
    pub version: String,
    pub adapter: PathBuf,
    /// The SYSTEM prompt it was trained and evaluated with (`None`: the tier's built-in one).
    pub system: Option<String>,
}

/// A built candidate model.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Deployed {
    pub gguf: PathBuf,
    pub sha256: String,
    pub bytes: u64,
    pub modelfile: PathBuf,
    /// `tierforge-<tier>:<version>` when it was created in Ollama.
    pub ollama_name: Option<String>,
    pub ollama_digest: Option<String>,
}

/// Builds the model of a candidate about to be promoted (real: [`BundleDeployer`]): merged
/// GGUF and Modelfile with the SYSTEM prompt it was trained with, created in Ollama when there
/// is one; and points `tierforge-<tier>:latest` at a version.
pub trait CandidateDeployer {
    /// `None`: nothing is built (the registry alone records the promotion).
    fn deploy(&mut self, req: &DeployRequest) -> Result<Option<Deployed>, LoopError>;
    /// Points `:latest` at `version` where the models live (nothing without Ollama).
    fn point_latest(&mut self, _tier: Tier, _version: &str) -> Result<(), LoopError> {
        Ok(())
    }
}

/// A deployer that builds nothing: promotion is recorded in the registry only.
pub struct RegistryOnly;
impl CandidateDeployer for RegistryOnly {
    fn deploy(&mut self, _req: &DeployRequest) -> Result<Option<Deployed>, LoopError> {
        Ok(None)
    }
}

/// The real deployer: `tierforge_deploy::bundle::build_tier` without a registry entry of its
/// own (the loop registered the candidate), and Ollama's copy for `:latest`.
pub struct BundleDeployer {
    pub base_model: String,
    /// Bundles go in `out_dir/<tier>-<version>/`.
    pub out_dir: PathBuf,
    pub quant: tierforge_deploy::export::Quant,
    /// `None`: bundles only, as `tierforge deploy` without `OLLAMA_HOST`.
    pub ollama_host: Option<String>,
}

impl CandidateDeployer for BundleDeployer {
    fn deploy(&mut self, req: &DeployRequest) -> Result<Option<Deployed>, LoopError> {
        use tierforge_deploy::bundle::{build_tier, TierBuild};
        let mut b = TierBuild::new(req.tier, &self.base_model, &req.adapter, &self.out_dir);
        b.version = Some(req.version.clone());
        b.registry = None;
        b.quant = self.quant;
        b.ollama_host = self.ollama_host.clone();
        b.system_prompt = req.system.clone();
        let bundle =
            build_tier(&b, &mut |_| {}).map_err(|e| LoopError::Other(format!("deploy: {e}")))?;
        Ok(Some(Deployed {
            gguf: bundle.gguf,
            sha256: bundle.sha256,
            bytes: bundle.gguf_bytes,
            modelfile: bundle.modelfile,
            ollama_name: bundle.pushed.then_some(bundle.name),
            ollama_digest: bundle.ollama_digest,
        }))
    }

    fn point_latest(&mut self, tier: Tier, version: &str) -> Result<(), LoopError> {
        use tierforge_deploy::promote::{latest_name, model_name};
        if let Some(host) = &self.ollama_host {
            let o = tierforge_deploy::ollama::Ollama::new(host)
                .map_err(|e| LoopError::Other(format!("ollama: {e}")))?;
            o.copy(&model_name(tier, version), &latest_name(tier))
                .map_err(|e| LoopError::Other(format!("ollama: {e}")))?;
        }
        Ok(())
    }
}

/// Progress messages (stderr in the CLI).
pub trait LoopReporter {
    fn on_message(&mut self, _msg: &str) {}
}

/// A reporter that prints nothing.
pub struct Quiet;
impl LoopReporter for Quiet {}

/// LoRA training with candle through `tierforge_train::train`.
pub struct CandleTrainer {
    pub base_model: String,
    pub device: tierforge_train::DeviceKind,
}

impl CandidateTrainer for CandleTrainer {
    fn train(&mut self, req: &TrainRequest) -> Result<Trained, LoopError> {
        let mut config = tierforge_train::TrainConfig::from_file(&req.train_config)
            .map_err(|e| LoopError::Train(e.to_string()))?;
        if req.max_steps.is_some() {
            config.max_steps = req.max_steps;
        }
        // A killed run left a checkpoint: continue it instead of starting over.
        let resume = req.out.join("last").is_dir().then(|| req.out.clone());
        let opts = tierforge_train::TrainOptions {
            model: self.base_model.clone(),
            data: req.data.clone(),
            val: None,
            config,
            out: req.out.clone(),
            init_adapter: if resume.is_some() {
                None
            } else {
                req.init_adapter.clone()
            },
            resume,
            device: self.device,
            stop_after: None,
        };
        struct NoPrep;
        impl tierforge_train::PrepareReporter for NoPrep {}
        let (summary, _) =
            tierforge_train::train(&opts, &mut NoPrep, &mut tierforge_train::NoReporter)
                .map_err(|e| LoopError::Train(e.to_string()))?;
        let adapter = summary
            .adapter
            .clone()
            .ok_or_else(|| LoopError::Train("training wrote no adapter".into()))?;
        Ok(Trained {
            adapter,
            metrics: serde_json::to_value(&summary).unwrap_or_default(),
        })
    }
}

/// Generation with candle, rubric scores and the paired bootstrap comparison of
/// `crate::evaluate` / `crate::compare`.
pub struct RubricEvaluator {
    pub products: Vec<crate::evaluate::EvalProduct>,
    pub options: crate::evaluate::EvalOptions,
}

impl CandidateEvaluator for RubricEvaluator {
    fn compare(
        &mut self,
        _tier: Tier,
        production: &ModelUnderTest,
        candidate: &ModelUnderTest,
    ) -> Result<Comparison, LoopError> {
        let run = crate::evaluate::evaluate(
            &[production.clone(), candidate.clone()],
            &self.products,
            &self.options,
            &mut crate::evaluate::NoReporter,
        )
        .map_err(|e| LoopError::Eval(e.to_string()))?;
        run.comparison(&production.label, &candidate.label)
            .cloned()
            .ok_or_else(|| LoopError::Eval("the evaluation returned no comparison".into()))
    }
}

/// Options of one pass.
#[derive(Debug, Clone)]
pub struct LoopOptions {
    pub config: LoopConfig,
    /// The decision time (Unix seconds): windows look back from here.
    pub as_of: i64,
    /// Apply instruction updates only; no training.
    pub instructions_only: bool,
    /// The tiers to check (all when empty).
    pub tiers: Vec<Tier>,
    /// Crash simulation for tests: stop right after this phase as a killed process would
    /// (lock and journal left behind).
    pub crash_after: Option<Phase>,
    /// For end-to-end tests: the process kills itself (SIGKILL) right after this phase, so the
    /// lock and journal stay as after `kill -9`. The CLI sets it from
    /// `TIERFORGE_LOOP_ABORT_AFTER`.
    pub abort_after: Option<Phase>,
}

/// Dies at once as `kill -9` would: no unwinding, no destructors, no core file.
fn kill_self() -> ! {
    #[cfg(unix)]
    // SAFETY: kill(2) with this process's own pid and a valid signal number.
    unsafe {
        libc::kill(libc::getpid(), libc::SIGKILL);
    }
    std::process::abort()
}

/// The phases of a retrain run, in order.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Phase {
    Started,
    Dataset,
    Trained,
    Registered,
    Evaluated,
    Done,
}

/// The dataset a candidate trains on.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DatasetInfo {
    pub path: PathBuf,
    pub tier_samples: usize,
    pub feedback_samples: usize,
    /// Dropped: under the rubric's pass line or the minimum score.
    pub rubric_dropped: usize,
    pub duplicates_dropped: usize,
    pub samples: usize,
    pub sha256: String,
    pub instructions_version: u32,
}

/// The journal of one retrain run (`run.json`), rewritten after every phase.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct RunState {
    pub run_id: String,
    pub tier: Tier,
    pub started_at: String,
    pub phase: Phase,
    pub decision: serde_json::Value,
    pub production_version: Option<String>,
    pub production_adapter: Option<PathBuf>,
    pub dataset: Option<DatasetInfo>,
    pub trained: Option<Trained>,
    pub candidate_version: Option<String>,
    pub comparison: Option<Comparison>,
    /// The promoted candidate's model, once built.
    #[serde(default)]
    pub deployed: Option<Deployed>,
    pub outcome: Option<String>,
}

/// What happened to a tier.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Action {
    NoRetrain,
    InstructionsOnly,
    Promoted,
    Rejected,
    Skipped,
    Locked,
}

/// One tier's result of a pass.
#[derive(Debug, Clone, Serialize)]
pub struct TierReport {
    pub tier: Tier,
    pub action: Action,
    pub reason: String,
    pub decision: Decision,
    pub instructions: Option<Proposal>,
    pub run_id: Option<String>,
    pub resumed: bool,
    pub recovered_lock: Option<String>,
    pub dataset: Option<DatasetInfo>,
    pub candidate_version: Option<String>,
    pub production_version: Option<String>,
    pub comparison: Option<Comparison>,
}

/// One pass over the tiers.
#[derive(Debug, Clone, Serialize)]
pub struct LoopReport {
    pub as_of: String,
    pub tiers: Vec<TierReport>,
}

fn sha256_file(path: &Path) -> Result<String, LoopError> {
    let bytes = std::fs::read(path).map_err(LoopError::io(path))?;
    Ok(Sha256::digest(&bytes)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect())
}

fn append_log(path: &Path, value: &serde_json::Value) -> Result<(), LoopError> {
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir).map_err(LoopError::write(dir))?;
    }
    let mut f = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(path)
        .map_err(LoopError::write(path))?;
    // One write of one line: an O_APPEND write is not interleaved with another process's.
    let line = format!("{value}\n");
    f.write_all(line.as_bytes())
        .and_then(|_| f.sync_all())
        .map_err(LoopError::write(path))
}

fn save_state(dir: &Path, st: &RunState) -> Result<(), LoopError> {
    tierforge_data::write::write_string(
        &dir.join("run.json"),
        &serde_json::to_string_pretty(st).unwrap_or_default(),
    )?;
    Ok(())
}

/// The unfinished run of a tier, if a killed loop left one.
fn unfinished_run(runs: &Path) -> Result<Option<(PathBuf, RunState)>, LoopError> {
    if !runs.is_dir() {
        return Ok(None);
    }
    let mut found = Vec::new();
    for e in std::fs::read_dir(runs).map_err(LoopError::io(runs))? {
        let dir = e.map_err(LoopError::io(runs))?.path();
        let p = dir.join("run.json");
        if let Ok(text) = std::fs::read_to_string(&p) {
            if let Ok(st) = serde_json::from_str::<RunState>(&text) {
                if st.phase != Phase::Done {
                    found.push((dir, st));
                }
            }
        }
    }
    found.sort_by(|a, b| a.1.run_id.cmp(&b.1.run_id));
    Ok(found.pop())
}

/// Builds the candidate's dataset under `dir`.
fn build_dataset(
    cfg: &LoopConfig,
    tier: Tier,
    store: &Store,
    as_of: i64,
    system: &str,
    instructions_version: u32,
    dir: &Path,
) -> Result<DatasetInfo, LoopError> {
    let paths = cfg.tier_paths(tier);
    if !paths.data.is_file() {
        return Err(LoopError::Config(format!(
            "the {tier} training set {} does not exist: build it with `tierforge data tiers data/samples.jsonl -o runs/tiers`, or set [tiers.{tier}] data in the loop config",
            paths.data.display()
        )));
    }
    let mut read = tierforge_data::read_file(&paths.data)?;
    let tier_samples = read.samples.len();
    let fb = store.training_samples(tier, Some(as_of))?;
    let mut lines = String::new();
    for s in &fb {
        let rec = serde_json::json!({
            "id": format!("feedback:{}", s.key),
            "input": s.input,
            "output": {
                "title": s.listing.title,
                "features_formatted": s.listing.features,
                "description": s.listing.description,
            },
        });
        lines.push_str(&rec.to_string());
        lines.push('\n');
    }
    let fb_read = tierforge_data::read::read_bytes(lines.as_bytes(), "feedback");
    let feedback_samples = fb_read.samples.len();
    read.samples.extend(fb_read.samples);
    let rubric = Rubric::default();
    let scored = tierforge_data::score_all(&rubric, &read.samples);
    let min_score = cfg
        .retrain
        .min_score
        .unwrap_or_else(|| TiersConfig::default().spec(tier).min_score);
    let keep: Vec<usize> = (0..read.samples.len())
        .filter(|&i| scored[i].passed() && scored[i].score() >= min_score)
        .collect();
    let rubric_dropped = read.samples.len() - keep.len();
    let kept: Vec<tierforge_data::Sample> = keep.iter().map(|&i| read.samples[i].clone()).collect();
    let scores: Vec<u8> = keep.iter().map(|&i| scored[i].score()).collect();
    let d = dedup(
        &kept,
        &scores,
        DedupConfig {
            threshold: cfg.retrain.dedup_threshold,
            ..DedupConfig::default()
        },
    );
    let duplicates_dropped = kept.len() - d.keep.len();
    let out: Vec<String> = d
        .keep
        .iter()
        .filter_map(|&i| export_line(&kept[i], ExportFormat::Messages, Some(system)))
        .collect();
    if out.is_empty() {
        return Err(LoopError::Other(format!(
            "no {tier} sample passes the rubric at score {min_score}: nothing to train on"
        )));
    }
    let path = dir.join("data.messages.jsonl");
    tierforge_data::write::write_lines(&path, out.iter().map(String::as_str))?;
    Ok(DatasetInfo {
        sha256: sha256_file(&path)?,
        path,
        tier_samples,
        feedback_samples,
        rubric_dropped,
        duplicates_dropped,
        samples: out.len(),
        instructions_version,
    })
}

/// One pass of the loop over the tiers.
pub fn run_once(
    opts: &LoopOptions,
    trainer: &mut dyn CandidateTrainer,
    evaluator: &mut dyn CandidateEvaluator,
    deployer: &mut dyn CandidateDeployer,
    reporter: &mut dyn LoopReporter,
) -> Result<LoopReport, LoopError> {
    let cfg = &opts.config;
    let store = Store::open(&cfg.store)?;
    let tiers: Vec<Tier> = if opts.tiers.is_empty() {
        Tier::ALL.to_vec()
    } else {
        opts.tiers.clone()
    };
    let mut reports = Vec::new();
    for tier in tiers {
        let r = run_tier(opts, tier, &store, trainer, evaluator, deployer, reporter)?;
        reporter.on_message(&format!("{tier}: {:?}: {}", r.action, r.reason));
        reports.push(r);
    }
    Ok(LoopReport {
        as_of: clock::format_rfc3339(opts.as_of),
        tiers: reports,
    })
}

fn run_tier(
    opts: &LoopOptions,
    tier: Tier,
    store: &Store,
    trainer: &mut dyn CandidateTrainer,
    evaluator: &mut dyn CandidateEvaluator,
    deployer: &mut dyn CandidateDeployer,
    reporter: &mut dyn LoopReporter,
) -> Result<TierReport, LoopError> {
    let cfg = &opts.config;
    let now = clock::format_rfc3339(clock::now_unix());
    let outcomes: Vec<Outcome> = store
        .events(Some(tier), None, Some(opts.as_of))?
        .iter()
        .map(|e| Outcome {
            ts: e.ts,
            positive: e.rating >= POSITIVE_RATING,
        })
        .collect();
    let decision = decide(tier, &outcomes, opts.as_of, &cfg.decide);
    let mut report = TierReport {
        tier,
        action: Action::NoRetrain,
        reason: decision.reason.clone(),
        decision: decision.clone(),
        instructions: None,
        run_id: None,
        resumed: false,
        recovered_lock: None,
        dataset: None,
        candidate_version: None,
        production_version: None,
        comparison: None,
    };
    let log = |r: &TierReport| -> Result<(), LoopError> {
        append_log(
            &cfg.training_log(),
            &serde_json::json!({
                "at": now,
                "as_of": clock::format_rfc3339(opts.as_of),
                "tier": tier,
                "action": r.action,
                "reason": r.reason,
                "run_id": r.run_id,
                "resumed": r.resumed,
                "decision": {
                    "events": r.decision.events,
                    "positives": r.decision.positives,
                    "success_rate": r.decision.success_rate,
                    "recent_events": r.decision.recent_events,
                    "recent_average": r.decision.recent_average,
                    "triggers": r.decision.triggers,
                },
                "instructions_version": r.instructions.as_ref().map(|p| p.new_version),
                "dataset": r.dataset,
                "production_version": r.production_version,
                "candidate_version": r.candidate_version,
                "comparison": r.comparison,
            }),
        )
    };

    let runs_dir = cfg.state_dir.join("runs").join(tier.name());
    let lock_path = cfg.state_dir.join("locks").join(format!("{tier}.lock"));
    let unfinished = unfinished_run(&runs_dir)?;
    if !decision.retrain && unfinished.is_none() {
        log(&report)?;
        return Ok(report);
    }
    let stale_s = (cfg.retrain.lock_stale_after_hours * 3600.0) as i64;
    let lock = match lock::acquire(&lock_path, stale_s)? {
        Acquired::Busy(who) => {
            report.action = Action::Locked;
            report.reason = format!("another loop is working on {tier}: {who}");
            log(&report)?;
            return Ok(report);
        }
        Acquired::Held { lock, recovered } => {
            if let Some(r) = &recovered {
                reporter.on_message(&format!("{tier}: {r}"));
            }
            report.recovered_lock = recovered;
            lock
        }
    };
    // Read the journal again under the lock: another loop may have finished it meanwhile.
    let unfinished = unfinished_run(&runs_dir)?;

    let instr = InstructionStore::new(&cfg.state_dir);
    let (run_dir, mut st) = match unfinished {
        Some((dir, st)) => {
            reporter.on_message(&format!(
                "{tier}: resuming the interrupted run {} after phase {:?}",
                st.run_id, st.phase
            ));
            report.resumed = true;
            (dir, st)
        }
        None => {
            let mut p = instructions::propose(store, &instr, tier, opts.as_of, &cfg.instructions)?;
            instructions::apply(&instr, &mut p)?;
            if p.changed {
                reporter.on_message(&format!(
                    "{tier}: instructions v{:04} written to {}",
                    p.new_version,
                    p.path.as_deref().unwrap_or("-")
                ));
            }
            report.instructions = Some(p);
            if opts.instructions_only {
                report.action = Action::InstructionsOnly;
                report.reason = format!("{}; instructions only", decision.reason);
                log(&report)?;
                drop(lock);
                return Ok(report);
            }
            // Time, pid and a counter: unique even for two runs in the same second.
            let stem = format!(
                "{}-{}",
                clock::format_rfc3339(clock::now_unix()).replace([':', '-'], ""),
                std::process::id()
            );
            let mut n = 1;
            while runs_dir.join(format!("{stem}-{n}")).exists() {
                n += 1;
            }
            let run_id = format!("{stem}-{n}");
            let dir = runs_dir.join(&run_id);
            std::fs::create_dir_all(&dir).map_err(LoopError::write(&dir))?;
            let st = RunState {
                run_id,
                tier,
                started_at: now.clone(),
                phase: Phase::Started,
                decision: serde_json::to_value(&decision).unwrap_or_default(),
                production_version: None,
                production_adapter: None,
                dataset: None,
                trained: None,
                candidate_version: None,
                comparison: None,
                deployed: None,
                outcome: None,
            };
            save_state(&dir, &st)?;
            (dir, st)
        }
    };
    report.run_id = Some(st.run_id.clone());
    let crash = |phase: Phase| {
        if opts.abort_after == Some(phase) {
            kill_self();
        }
        opts.crash_after == Some(phase)
    };

    let mut registry = Registry::open(&cfg.registry)?;
    if st.phase == Phase::Started {
        let Some(prod) = registry.production(tier.name())? else {
            st.phase = Phase::Done;
            st.outcome = Some("skipped: no production version".into());
            save_state(&run_dir, &st)?;
            report.action = Action::Skipped;
            report.reason = format!(
                "{}; but {tier} has no production version in {} to train from (deploy one first)",
                decision.reason,
                cfg.registry.display()
            );
            log(&report)?;
            return Ok(report);
        };
        let adapter = prod.train_metrics["adapter"].as_str().map(PathBuf::from);
        let Some(adapter) = adapter.filter(|a| a.is_dir()) else {
            st.phase = Phase::Done;
            st.outcome = Some("skipped: production has no adapter".into());
            save_state(&run_dir, &st)?;
            report.action = Action::Skipped;
            report.reason = format!(
                "{}; but production {tier} {} records no adapter folder (train_metrics.adapter) to continue from",
                decision.reason, prod.version
            );
            log(&report)?;
            return Ok(report);
        };
        let (iv, system) = instr.current(tier)?;
        let ds = build_dataset(
            cfg,
            tier,
            store,
            opts.as_of,
            system.trim_end(),
            iv,
            &run_dir,
        )?;
        reporter.on_message(&format!(
            "{tier}: dataset of {} samples ({} from the tier set, {} from feedback; {} dropped by the rubric, {} duplicates)",
            ds.samples, ds.tier_samples, ds.feedback_samples, ds.rubric_dropped, ds.duplicates_dropped
        ));
        st.production_version = Some(prod.version.clone());
        st.production_adapter = Some(adapter);
        st.dataset = Some(ds);
        st.phase = Phase::Dataset;
        save_state(&run_dir, &st)?;
        if crash(Phase::Dataset) {
            lock.abandon();
            return Err(LoopError::Other("simulated crash after the dataset".into()));
        }
    }
    let paths = cfg.tier_paths(tier);
    if st.phase == Phase::Dataset {
        let ds = st.dataset.clone().ok_or_else(|| {
            LoopError::Other(format!("{}: run.json has no dataset", run_dir.display()))
        })?;
        reporter.on_message(&format!("{tier}: training the candidate"));
        let trained = trainer.train(&TrainRequest {
            tier,
            data: ds.path.clone(),
            init_adapter: st.production_adapter.clone(),
            out: run_dir.join("train"),
            train_config: paths.train_config.clone(),
            max_steps: cfg.retrain.max_steps,
        })?;
        st.trained = Some(trained);
        st.phase = Phase::Trained;
        save_state(&run_dir, &st)?;
        if crash(Phase::Trained) {
            lock.abandon();
            return Err(LoopError::Other("simulated crash after training".into()));
        }
    }
    let trained = st.trained.clone().ok_or_else(|| {
        LoopError::Other(format!(
            "{}: run.json has no trained adapter",
            run_dir.display()
        ))
    })?;
    if st.phase == Phase::Trained {
        // Registered under the run id: a resumed run finds its own candidate again.
        let existing = registry
            .list(Some(tier.name()))?
            .into_iter()
            .find(|v| v.note.as_deref() == Some(st.run_id.as_str()));
        let version = match existing {
            Some(v) => v.version,
            None => {
                let version = registry.next_version(tier.name())?;
                let ds = st.dataset.clone();
                let mut metrics = match trained.metrics.clone() {
                    serde_json::Value::Object(m) => m,
                    _ => serde_json::Map::new(),
                };
                metrics.insert(
                    "adapter".into(),
                    trained.adapter.display().to_string().into(),
                );
                // The instructions the candidate was trained with: it is evaluated, and later
                // compared as production, with the same system prompt.
                metrics.insert(
                    "instructions_version".into(),
                    ds.as_ref().map_or(0, |d| d.instructions_version).into(),
                );
                let config_hash = sha256_file(&paths.train_config).unwrap_or_default();
                registry.add(&VersionRecord {
                    tier: tier.name().into(),
                    version: version.clone(),
                    parent_version: st.production_version.clone(),
                    base_model: cfg.base_model.clone(),
                    dataset_hash: ds.as_ref().map(|d| d.sha256.clone()).unwrap_or_default(),
                    dataset_size: ds.as_ref().map_or(0, |d| d.samples as u64),
                    config_hash,
                    train_metrics: serde_json::Value::Object(metrics),
                    eval_metrics: serde_json::json!({}),
                    gguf_path: None,
                    gguf_sha256: None,
                    gguf_size: None,
                    ollama_name: None,
                    ollama_digest: None,
                    created_at: clock::format_rfc3339(clock::now_unix()),
                    status: Status::Candidate,
                    note: Some(st.run_id.clone()),
                })?;
                version
            }
        };
        st.candidate_version = Some(version);
        st.phase = Phase::Registered;
        save_state(&run_dir, &st)?;
        if crash(Phase::Registered) {
            lock.abandon();
            return Err(LoopError::Other("simulated crash after registering".into()));
        }
    }
    let cand_version = st.candidate_version.clone().ok_or_else(|| {
        LoopError::Other(format!(
            "{}: run.json has no candidate version",
            run_dir.display()
        ))
    })?;
    report.candidate_version = Some(cand_version.clone());
    report.production_version = st.production_version.clone();
    report.dataset = st.dataset.clone();
    // The instructions version the candidate was trained with.
    let cand_iv = st.dataset.as_ref().map_or(0, |d| d.instructions_version);
    if st.phase == Phase::Registered {
        // Each side answers under the instructions it was trained with (production: as recorded
        // when the loop registered it; the built-in prompt otherwise).
        let prod_iv = match &st.production_version {
            Some(v) => registry.get(tier.name(), v)?.train_metrics["instructions_version"]
                .as_u64()
                .unwrap_or(0) as u32,
            None => 0,
        };
        let prod_system = instr.system_prompt(tier, prod_iv)?;
        let cand_system = instr.system_prompt(tier, cand_iv)?;
        let prod = ModelUnderTest {
            label: "production".into(),
            model: cfg.base_model.clone(),
            adapter: st.production_adapter.clone(),
            tier,
            ollama_name: None,
            system_prompt: prod_system,
        };
        let cand = ModelUnderTest {
            label: "candidate".into(),
            model: cfg.base_model.clone(),
            adapter: Some(trained.adapter.clone()),
            tier,
            ollama_name: None,
            system_prompt: cand_system,
        };
        reporter.on_message(&format!(
            "{tier}: evaluating the candidate against production"
        ));
        let cmp = evaluator.compare(tier, &prod, &cand)?;
        registry.set_eval(
            tier.name(),
            &cand_version,
            &serde_json::to_value(&cmp).unwrap_or_default(),
        )?;
        st.comparison = Some(cmp);
        st.phase = Phase::Evaluated;
        save_state(&run_dir, &st)?;
        if crash(Phase::Evaluated) {
            lock.abandon();
            return Err(LoopError::Other("simulated crash after evaluating".into()));
        }
    }
    let cmp = st.comparison.clone().ok_or_else(|| {
        LoopError::Other(format!("{}: run.json has no comparison", run_dir.display()))
    })?;
    report.comparison = Some(cmp.clone());
    let evidence = format!(
        "candidate {cand_version} vs production {}: mean score {:.1} vs {:.1}, difference {:+.2} ({:.0}% interval {:+.2} to {:+.2}), {} wins, {} ties, {} losses on {} products",
        st.production_version.as_deref().unwrap_or("-"),
        cmp.mean_b,
        cmp.mean_a,
        cmp.mean_diff,
        cmp.confidence * 100.0,
        cmp.mean_diff_ci.low,
        cmp.mean_diff_ci.high,
        cmp.wins,
        cmp.ties,
        cmp.losses,
        cmp.n
    );
    // The registry is the truth: a run killed after its decision only needs its journal closed.
    let status = registry.get(tier.name(), &cand_version)?.status;
    let at = clock::format_rfc3339(clock::now_unix());
    if status == Status::Candidate {
        if cmp.better {
            // Build its model first (GGUF, Modelfile with the SYSTEM prompt it was trained with,
            // Ollama when there is one); a killed run finds it in the journal and goes on.
            if st.deployed.is_none() {
                reporter.on_message(&format!(
                    "{tier}: building tierforge-{tier}:{cand_version} (GGUF and Modelfile)"
                ));
                let deployed = deployer.deploy(&DeployRequest {
                    tier,
                    version: cand_version.clone(),
                    adapter: trained.adapter.clone(),
                    system: instr.system_prompt(tier, cand_iv)?,
                })?;
                if let Some(d) = &deployed {
                    registry.set_gguf(
                        tier.name(),
                        &cand_version,
                        &d.gguf.display().to_string(),
                        &d.sha256,
                        d.bytes,
                    )?;
                    if let Some(name) = &d.ollama_name {
                        registry.set_ollama(
                            tier.name(),
                            &cand_version,
                            name,
                            d.ollama_digest.as_deref(),
                        )?;
                    }
                }
                st.deployed = deployed;
                save_state(&run_dir, &st)?;
            }
            let previous = registry.production(tier.name())?.map(|p| p.version);
            let in_ollama = st
                .deployed
                .as_ref()
                .is_some_and(|d| d.ollama_name.is_some());
            if in_ollama {
                deployer.point_latest(tier, &cand_version)?;
            }
            let adapter = trained.adapter.clone();
            let gguf = st.deployed.as_ref().map(|d| d.gguf.clone());
            let promoted = registry.promote(tier.name(), &cand_version, &at, |_| {
                if !adapter.is_dir() {
                    return Err(format!("adapter {} is missing", adapter.display()));
                }
                match &gguf {
                    Some(g) if !g.is_file() => Err(format!("GGUF {} is missing", g.display())),
                    Some(g) => Ok(format!(
                        "adapter {} and GGUF {} present",
                        adapter.display(),
                        g.display()
                    )),
                    None => Ok(format!("adapter {} present", adapter.display())),
                }
            });
            if let Err(e) = promoted {
                // Keep Ollama's :latest where the registry's production is.
                if let (true, Some(p)) = (in_ollama, &previous) {
                    let _ = deployer.point_latest(tier, p);
                }
                return Err(e.into());
            }
        } else {
            registry.reject(
                tier.name(),
                &cand_version,
                &format!("not better: {evidence}"),
                &at,
            )?;
        }
    }
    let status = registry.get(tier.name(), &cand_version)?.status;
    let (action, what) = match status {
        Status::Production => (Action::Promoted, "promoted"),
        Status::Rejected => (Action::Rejected, "rejected (not better)"),
        _ => (Action::Skipped, "left as a candidate"),
    };
    report.action = action;
    report.reason = format!("{}; {what}: {evidence}", decision.reason);
    st.outcome = Some(report.reason.clone());
    st.phase = Phase::Done;
    save_state(&run_dir, &st)?;
    log(&report)?;
    drop(lock);
    Ok(report)
}
