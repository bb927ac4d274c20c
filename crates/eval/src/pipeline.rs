//! `tierforge pipeline`: the whole progression on one data folder. check → score → filter →
//! dedup → split → tier sets → train basic → advanced → expert (each from the one before) →
//! export a merged GGUF and a Modelfile per tier (and create them in Ollama when a host is
//! given) → evaluate the base model and the tiers on held-out products → report.
//!
//! Every stage records the hash of what it was computed from in `pipeline.json`; a second run
//! with the same inputs skips finished stages, and an interrupted training stage continues from
//! its last checkpoint.

use std::cell::RefCell;
use std::path::{Path, PathBuf};
use std::time::Instant;

use serde::Serialize;
use serde_json::json;
use tierforge_data::completion::Tier;
use tierforge_data::dedup::{self, DedupConfig};
use tierforge_data::export::{self, ExportFormat};
use tierforge_data::read::read_files;
use tierforge_data::score::score_all;
use tierforge_data::split::split;
use tierforge_data::tiers::{build_tiers, TiersConfig};
use tierforge_data::{write, Rubric};
use tierforge_train::{DeviceKind, TrainOptions, TrainReporter, TrainSummary};

use crate::evaluate::{self, Backend, EvalOptions, EvalReporter, EvalRun, ModelUnderTest, Weights};
use crate::manifest::{self, Manifest, StageRecord, StageStatus};
use crate::profile::{ProfileSettings, Selection};

/// What can stop the pipeline.
#[derive(Debug, thiserror::Error)]
pub enum PipelineError {
    /// The user's input or options (exit code 1).
    #[error("{0}")]
    Input(String),
    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error(transparent)]
    Data(#[from] tierforge_data::DataError),
    #[error(transparent)]
    Train(#[from] tierforge_train::TrainError),
    #[error(transparent)]
    Model(#[from] tierforge_model::ModelError),
    #[error(transparent)]
    Eval(#[from] crate::EvalError),
    #[error(transparent)]
    Bundle(#[from] tierforge_deploy::bundle::BundleError),
    #[error(transparent)]
    Export(#[from] tierforge_deploy::export::ExportError),
    #[error("{0}")]
    Stage(String),
}

impl PipelineError {
    /// Whether the user's input or options are at fault (a missing file, bad data, a bad
    /// config), as opposed to an unexpected failure.
    pub fn is_input(&self) -> bool {
        use tierforge_train::TrainError as T;
        match self {
            Self::Input(_) | Self::Io { .. } | Self::Data(_) => true,
            Self::Train(e) => matches!(
                e,
                T::Io { .. }
                    | T::Config { .. }
                    | T::Data { .. }
                    | T::Checkpoint { .. }
                    | T::Device(_)
            ),
            _ => false,
        }
    }

    pub fn io(path: &Path, source: std::io::Error) -> Self {
        Self::Io {
            path: path.to_owned(),
            source,
        }
    }
}

/// A pipeline run as the CLI describes it.
#[derive(Debug, Clone)]
pub struct PipelineOptions {
    /// A data folder (every `*.jsonl`/`*.json` in it except `eval-products.jsonl` and
    /// `feedback.jsonl` is read as samples) or one samples file.
    pub data: PathBuf,
    /// Held-out products to evaluate on; default `<data>/eval-products.jsonl`.
    pub products: Option<PathBuf>,
    /// Base model: a GGUF file, a Hugging Face folder or `org/name[@revision]`.
    pub model: String,
    pub settings: ProfileSettings,
    pub tiers: TiersConfig,
    pub out: PathBuf,
    pub device: DeviceKind,
    /// Create the tiers in this Ollama (`OLLAMA_HOST`); `None` writes the bundles only.
    pub ollama_host: Option<String>,
    /// The model registry (SQLite) the tiers are recorded in; `None` records nothing.
    pub registry: Option<PathBuf>,
}

/// Progress callbacks; the CLI prints stage lines and draws bars.
pub trait PipelineReporter {
    fn on_stage_start(&mut self, _stage: &str, _what: &str) {}
    /// A finished stage (`skipped` when an earlier run had already done it).
    fn on_stage_done(&mut self, _rec: &StageRecord, _skipped: bool) {}
    fn on_message(&mut self, _msg: &str) {}
    /// Training progress of the current stage.
    fn train(&mut self) -> &mut dyn TrainReporter;
    /// Evaluation progress.
    fn eval(&mut self) -> &mut dyn EvalReporter;
}

/// The data stage's result.
#[derive(Debug, Clone, Serialize, serde::Deserialize)]
pub struct DataOutcome {
    pub files: Vec<PathBuf>,
    pub read: usize,
    pub rejected: usize,
    pub passed: usize,
    pub exact_duplicates: usize,
    pub near_duplicates: usize,
    pub train: usize,
    pub val: usize,
    /// Per tier, in training order: (tier, samples, chat file).
    pub tiers: Vec<(Tier, usize, PathBuf)>,
    pub val_file: PathBuf,
    /// The validation split's products (passing listings only), for choosing checkpoints.
    #[serde(default)]
    pub val_products: PathBuf,
    pub rejects_file: Option<PathBuf>,
}

/// One trained tier.
#[derive(Debug, Clone, Serialize, serde::Deserialize)]
pub struct TrainOutcome {
    pub tier: Tier,
    pub samples: usize,
    pub steps: usize,
    pub final_train_loss: Option<f64>,
    pub final_eval_loss: Option<f64>,
    pub tokens_per_s: f64,
    /// The adapter the later stages use: the last checkpoint, or the chosen one.
    pub adapter: PathBuf,
    pub dir: PathBuf,
    /// The checkpoint choice, when checkpoints were compared (`adapter` is the chosen one).
    #[serde(default)]
    pub selection: Option<SelectOutcome>,
}

/// One candidate checkpoint of a tier, scored on the validation products.
#[derive(Debug, Clone, Serialize, serde::Deserialize)]
pub struct Candidate {
    pub step: usize,
    pub adapter: PathBuf,
    pub pass_rate: f64,
    pub mean_score: f64,
}

/// The choice among a tier's checkpoints.
#[derive(Debug, Clone, Serialize, serde::Deserialize)]
pub struct SelectOutcome {
    pub tier: Tier,
    /// Validation products each candidate generated listings for.
    pub products: usize,
    pub candidates: Vec<Candidate>,
    pub chosen: Candidate,
}

impl SelectOutcome {
    /// One sentence for the summary.
    pub fn sentence(&self) -> String {
        let all: Vec<String> = self
            .candidates
            .iter()
            .map(|c| format!("{} {:.0}%", c.step, c.pass_rate * 100.0))
            .collect();
        format!(
            "{}: the checkpoint of step {} was chosen by rubric pass rate on {} validation products (steps: {})",
            self.tier,
            self.chosen.step,
            self.products,
            all.join(", ")
        )
    }
}

/// The best candidate: highest pass rate, then mean score, then the later step.
pub fn choose(candidates: &[Candidate]) -> Option<&Candidate> {
    candidates.iter().max_by(|a, b| {
        a.pass_rate
            .total_cmp(&b.pass_rate)
            .then(a.mean_score.total_cmp(&b.mean_score))
            .then(a.step.cmp(&b.step))
    })
}

/// The samples files of a data folder (sorted), or the file itself.
pub fn sample_files(data: &Path) -> Result<Vec<PathBuf>, PipelineError> {
    if data.is_file() {
        return Ok(vec![data.to_owned()]);
    }
    let rd = std::fs::read_dir(data).map_err(|e| PipelineError::io(data, e))?;
    let mut files = Vec::new();
    for entry in rd {
        let p = entry.map_err(|e| PipelineError::io(data, e))?.path();
        let name = p.file_name().and_then(|n| n.to_str()).unwrap_or_default();
        let ext_ok = name.ends_with(".jsonl") || name.ends_with(".json");
        if p.is_file() && ext_ok && !matches!(name, "eval-products.jsonl" | "feedback.jsonl") {
            files.push(p);
        }
    }
    files.sort();
    if files.is_empty() {
        return Err(PipelineError::Input(format!(
            "{}: no samples files (*.jsonl or *.json besides eval-products.jsonl and feedback.jsonl)",
            data.display()
        )));
    }
    Ok(files)
}

fn hash_json<T: Serialize>(v: &T) -> Vec<u8> {
    serde_json::to_vec(v).unwrap_or_default()
}

/// Read, score, dedup, split and build the tier sets into `dir`.
pub fn prepare_data(
    files: &[PathBuf],
    tiers: &TiersConfig,
    val_fraction: f64,
    dir: &Path,
) -> Result<DataOutcome, PipelineError> {
    std::fs::create_dir_all(dir).map_err(|e| PipelineError::io(dir, e))?;
    let read = read_files(files)?;
    let rejects_file = if read.rejects.is_empty() {
        None
    } else {
        let p = dir.join("rejects.jsonl");
        write::write_jsonl(&p, read.rejects.iter())?;
        Some(p)
    };
    let rubric = Rubric::default();
    let scored = score_all(&rubric, &read.samples);
    let passed = scored.iter().filter(|s| s.passed()).count();
    let scores: Vec<u8> = scored.iter().map(|s| s.score()).collect();
    let dd = dedup::dedup(&read.samples, &scores, DedupConfig::default());
    let kept: Vec<_> = dd.keep.iter().map(|&i| read.samples[i].clone()).collect();
    let kept_scored: Vec<_> = dd.keep.iter().map(|&i| scored[i].clone()).collect();
    let sp = split(&kept, val_fraction, tiers.seed);
    let train: Vec<_> = sp.train.iter().map(|&i| kept[i].clone()).collect();
    let train_scored: Vec<_> = sp.train.iter().map(|&i| kept_scored[i].clone()).collect();
    let sets = build_tiers(tiers, &train, &train_scored)?;
    let mut tier_files = Vec::new();
    for set in &sets {
        let path = dir.join(format!("{}.messages.jsonl", set.tier.name()));
        let lines: Vec<String> = set
            .members
            .iter()
            .filter_map(|&i| {
                export::export_line(
                    &train[i],
                    ExportFormat::Messages,
                    Some(set.tier.system_prompt()),
                )
            })
            .collect();
        write::write_lines(&path, lines.iter().map(String::as_str))?;
        tier_files.push((set.tier, lines.len(), path));
    }
    // Validation samples: passing listings only (the loss a tier should reach), with the expert
    // prompt, the last tier's.
    let passing_val: Vec<_> = sp
        .val
        .iter()
        .filter(|&&i| kept_scored[i].passed())
        .map(|&i| &kept[i])
        .collect();
    let val_file = dir.join("val.messages.jsonl");
    let val_lines: Vec<String> = passing_val
        .iter()
        .filter_map(|s| {
            export::export_line(
                s,
                ExportFormat::Messages,
                Some(Tier::Expert.system_prompt()),
            )
        })
        .collect();
    write::write_lines(&val_file, val_lines.iter().map(String::as_str))?;
    let val_products = dir.join("val-products.jsonl");
    let product_lines: Vec<String> = passing_val
        .iter()
        .filter_map(|s| {
            s.input
                .as_ref()
                .map(|input| json!({ "id": s.id, "input": input }).to_string())
        })
        .collect();
    write::write_lines(&val_products, product_lines.iter().map(String::as_str))?;
    Ok(DataOutcome {
        files: files.to_vec(),
        read: read.samples.len(),
        rejected: read.rejects.len(),
        passed,
        exact_duplicates: dd.exact_dropped,
        near_duplicates: dd.near_dropped,
        train: sp.train.len(),
        val: val_lines.len(),
        tiers: tier_files,
        val_file,
        val_products,
        rejects_file,
    })
}

/// Runs (or resumes) the pipeline.
pub struct Pipeline<'a> {
    pub opts: &'a PipelineOptions,
    manifest: Manifest,
}

impl<'a> Pipeline<'a> {
    pub fn new(opts: &'a PipelineOptions) -> Result<Self, PipelineError> {
        std::fs::create_dir_all(&opts.out).map_err(|e| PipelineError::io(&opts.out, e))?;
        let manifest = Manifest::load(&opts.out)?;
        Ok(Self { opts, manifest })
    }

    /// Runs `f` as stage `name` unless a finished record with `key` exists.
    fn stage<T, F>(
        &mut self,
        name: &str,
        what: &str,
        key: &str,
        reporter: &mut dyn PipelineReporter,
        f: F,
    ) -> Result<T, PipelineError>
    where
        T: Serialize + serde::de::DeserializeOwned,
        F: FnOnce(&mut dyn PipelineReporter, bool) -> Result<T, PipelineError>,
    {
        if let Some(rec) = self.manifest.done(name, key) {
            if let Ok(v) = serde_json::from_value::<T>(rec.detail.clone()) {
                reporter.on_stage_done(rec, true);
                return Ok(v);
            }
        }
        // An unfinished record with the same key means an interrupted run: continue it.
        let resuming = self
            .manifest
            .get(name)
            .is_some_and(|r| r.key == key && r.status == StageStatus::Running);
        reporter.on_stage_start(name, what);
        self.manifest.record(StageRecord {
            name: name.into(),
            key: key.into(),
            status: StageStatus::Running,
            seconds: 0.0,
            detail: serde_json::Value::Null,
        })?;
        let t0 = Instant::now();
        let out = f(reporter, resuming)?;
        let rec = StageRecord {
            name: name.into(),
            key: key.into(),
            status: StageStatus::Done,
            seconds: t0.elapsed().as_secs_f64(),
            detail: serde_json::to_value(&out)
                .map_err(|e| PipelineError::Stage(format!("{name}: {e}")))?,
        };
        self.manifest.record(rec.clone())?;
        reporter.on_stage_done(&rec, false);
        Ok(out)
    }

    /// The data stage.
    pub fn data(
        &mut self,
        reporter: &mut dyn PipelineReporter,
    ) -> Result<(DataOutcome, String), PipelineError> {
        let opts = self.opts;
        let files = sample_files(&opts.data)?;
        // "data2": the stage also writes the validation products.
        let mut parts: Vec<Vec<u8>> = vec![b"data2".to_vec()];
        for f in &files {
            parts.push(manifest::file_hash(f)?.into_bytes());
        }
        parts.push(hash_json(&opts.tiers));
        parts.push(hash_json(&opts.settings.val_fraction));
        let refs: Vec<&[u8]> = parts.iter().map(Vec::as_slice).collect();
        let key = manifest::key(&refs);
        let dir = opts.out.join("data");
        let what = format!(
            "check, score, dedup, split and build the tier sets from {} file(s)",
            files.len()
        );
        let out = self.stage("data", &what, &key, reporter, |_, _| {
            prepare_data(&files, &opts.tiers, opts.settings.val_fraction, &dir)
        })?;
        Ok((out, key))
    }

    /// Trains the tiers in order, each from the previous tier's adapter.
    pub fn train(
        &mut self,
        data: &DataOutcome,
        data_key: &str,
        reporter: &mut dyn PipelineReporter,
    ) -> Result<Vec<(TrainOutcome, String)>, PipelineError> {
        let opts = self.opts;
        let mut prev: Option<(PathBuf, String)> = None;
        let mut out = Vec::new();
        for (tier, cfg) in &opts.settings.train {
            let Some((_, samples, file)) = data.tiers.iter().find(|(t, _, _)| t == tier) else {
                return Err(PipelineError::Stage(format!("no data for tier {tier}")));
            };
            let name = format!("train-{tier}");
            let key = manifest::key(&[
                name.as_bytes(),
                data_key.as_bytes(),
                opts.model.as_bytes(),
                &hash_json(cfg),
                &hash_json(&opts.settings.val_limit),
                prev.as_ref().map_or(&b""[..], |p| p.1.as_bytes()),
            ]);
            let dir = opts.out.join("train").join(tier.name());
            let init = prev.as_ref().map(|p| p.0.clone());
            let what = format!(
                "LoRA on {samples} {tier} samples{}",
                if init.is_some() {
                    ", starting from the previous tier's adapter"
                } else {
                    ""
                }
            );
            let val_file = val_subset(&data.val_file, opts.settings.val_limit, &opts.out)?;
            let t = self.stage(&name, &what, &key, reporter, |rep, resuming| {
                let resume = (resuming && dir.join("last").exists()).then(|| dir.clone());
                if resume.is_none() && dir.exists() {
                    std::fs::remove_dir_all(&dir).map_err(|e| PipelineError::io(&dir, e))?;
                }
                if resume.is_some() {
                    rep.on_message(&format!("continuing {name} from its last checkpoint"));
                }
                let topts = TrainOptions {
                    model: opts.model.clone(),
                    data: file.clone(),
                    val: val_file.clone(),
                    config: cfg.clone(),
                    out: dir.clone(),
                    init_adapter: if resume.is_some() { None } else { init.clone() },
                    resume,
                    device: opts.device,
                    stop_after: None,
                };
                let shared = RefCell::new(rep);
                let keep = opts
                    .settings
                    .select
                    .as_ref()
                    .filter(|s| s.tiers.contains(tier))
                    .map(|s| Keep {
                        selection: s.clone(),
                        dir: dir.join(CANDIDATES),
                        // Set when training starts (`TrainReporter::on_start`).
                        last_step: usize::MAX,
                    });
                let mut steps = Steps {
                    to: &shared,
                    keep,
                    error: None,
                };
                let (summary, _) = tierforge_train::train(&topts, &mut Prep(&shared), &mut steps)?;
                if let Some(e) = steps.error {
                    return Err(PipelineError::Stage(format!("{name}: {e}")));
                }
                train_outcome(*tier, *samples, &summary, &dir)
            })?;
            let (t, key) = self.select(t, key, data, reporter)?;
            prev = Some((t.adapter.clone(), key.clone()));
            out.push((t, key));
        }
        Ok(out)
    }

    /// The pipeline's evaluation settings (the final evaluation's and the checkpoint choice's),
    /// for models as they ship (merged GGUFs): quantized weights on the CPU, multiplied as
    /// llama.cpp multiplies them; dense on CUDA.
    fn eval_options(&self) -> EvalOptions {
        let s = &self.opts.settings;
        EvalOptions {
            max_tokens: s.eval_max_tokens,
            batch_size: s.eval_batch_size,
            backend: Backend::Candle,
            limit: s.eval_limit,
            device: self.opts.device,
            weights: match self.opts.device {
                DeviceKind::Cpu => Weights::Quantized,
                DeviceKind::Cuda => Weights::Dense,
            },
            ..EvalOptions::default()
        }
    }

    /// Chooses the tier's adapter among its kept checkpoints when the profile says so (see
    /// [`Selection`]); returns the outcome the later stages use, with its key.
    fn select(
        &mut self,
        mut t: TrainOutcome,
        train_key: String,
        data: &DataOutcome,
        reporter: &mut dyn PipelineReporter,
    ) -> Result<(TrainOutcome, String), PipelineError> {
        let opts = self.opts;
        let Some(sel) = opts
            .settings
            .select
            .as_ref()
            .filter(|s| s.tiers.contains(&t.tier))
        else {
            return Ok((t, train_key));
        };
        let candidates = candidates_in(&t.dir.join(CANDIDATES));
        if candidates.len() < 2 || !data.val_products.is_file() {
            return Ok((t, train_key));
        }
        let products = evaluate::load_products(&data.val_products)?;
        let n = products.len().min(sel.products);
        if n == 0 {
            return Ok((t, train_key));
        }
        // Each candidate is scored as it would ship: merged and quantized as the export stage
        // will write it, evaluated like the tiers in the eval stage.
        let quant: tierforge_deploy::export::Quant =
            opts.settings.quant.parse().map_err(PipelineError::Input)?;
        let eval_opts = EvalOptions {
            limit: Some(n),
            ..self.eval_options()
        };
        let name = format!("select-{}", t.tier);
        let key = manifest::key(&[
            name.as_bytes(),
            train_key.as_bytes(),
            &hash_json(sel),
            manifest::file_hash(&data.val_products)?.as_bytes(),
            &hash_json(&eval_opts),
            opts.settings.quant.as_bytes(),
        ]);
        let what = format!(
            "choose the {} checkpoint (steps {}) by the rubric pass rate of its merged {} GGUF on {n} validation products",
            t.tier,
            candidates
                .iter()
                .map(|(s, _)| s.to_string())
                .collect::<Vec<_>>()
                .join(", "),
            opts.settings.quant,
        );
        let tier = t.tier;
        let dir = t.dir.clone();
        let chosen = self.stage(&name, &what, &key, reporter, |rep, _| {
            let gguf_opts = tierforge_deploy::export::GgufOptions::new(quant);
            let mut merged = Vec::new();
            for (step, path) in &candidates {
                let gguf = dir
                    .join(CANDIDATES)
                    .join(format!("step-{step}.{}.gguf", opts.settings.quant));
                rep.on_message(&format!("merging step {step} into {}", gguf.display()));
                tierforge_deploy::export::export_gguf(&opts.model, Some(path), &gguf, &gguf_opts)?;
                merged.push(gguf);
            }
            let models: Vec<ModelUnderTest> = candidates
                .iter()
                .zip(&merged)
                .map(|((step, _), gguf)| ModelUnderTest {
                    label: format!("step-{step}"),
                    model: gguf.to_string_lossy().into_owned(),
                    adapter: None,
                    tier,
                    ollama_name: None,
                    system_prompt: None,
                })
                .collect();
            let run = evaluate::evaluate(&models, &products, &eval_opts, rep.eval());
            // The merged files only served the choice (the export stage writes the chosen one
            // again, with its name and version): do not keep 145 MB per candidate.
            for gguf in &merged {
                let _ = std::fs::remove_file(gguf);
            }
            let run = run?;
            let scored: Vec<Candidate> = candidates
                .iter()
                .zip(&run.models)
                .map(|((step, path), m)| Candidate {
                    step: *step,
                    adapter: path.clone(),
                    pass_rate: m.summary.pass_rate,
                    mean_score: m.summary.mean_score,
                })
                .collect();
            let chosen = choose(&scored)
                .cloned()
                .ok_or_else(|| PipelineError::Stage(format!("{name}: no candidates")))?;
            let out = SelectOutcome {
                tier,
                products: n,
                candidates: scored,
                chosen,
            };
            let text = serde_json::to_string_pretty(&out)
                .map_err(|e| PipelineError::Stage(format!("{name}: {e}")))?;
            write::write_string(&dir.join("selection.json"), &text)?;
            Ok(out)
        })?;
        reporter.on_message(&chosen.sentence());
        t.adapter = chosen.chosen.adapter.clone();
        t.selection = Some(chosen);
        Ok((t, key))
    }
}

/// One tier's deployable bundle, as the pipeline records it.
#[derive(Debug, Clone, Serialize, serde::Deserialize)]
pub struct ExportOutcome {
    pub tier: Tier,
    pub name: String,
    pub gguf: PathBuf,
    pub gguf_bytes: u64,
    pub sha256: String,
    pub modelfile: PathBuf,
    pub ollama_create: String,
    pub pushed: bool,
}

impl Pipeline<'_> {
    /// Merges each tier's adapter into a GGUF with its Modelfile (and creates it in Ollama when
    /// a host is set).
    pub fn export(
        &mut self,
        data_key: &str,
        trained: &[(TrainOutcome, String)],
        reporter: &mut dyn PipelineReporter,
    ) -> Result<Vec<ExportOutcome>, PipelineError> {
        let opts = self.opts;
        let quant: tierforge_deploy::export::Quant =
            opts.settings.quant.parse().map_err(PipelineError::Input)?;
        let mut out = Vec::new();
        for (t, train_key) in trained {
            let name = format!("export-{}", t.tier);
            let key = manifest::key(&[
                name.as_bytes(),
                train_key.as_bytes(),
                opts.settings.quant.as_bytes(),
                opts.ollama_host.as_deref().unwrap_or("").as_bytes(),
            ]);
            let what = format!(
                "merge the {} adapter into a {} GGUF, write its Modelfile{}",
                t.tier,
                opts.settings.quant,
                if opts.ollama_host.is_some() {
                    " and create it in Ollama"
                } else {
                    " (OLLAMA_HOST is not set: bundle only)"
                }
            );
            let e = self.stage(&name, &what, &key, reporter, |rep, _| {
                let mut b = tierforge_deploy::bundle::TierBuild::new(
                    t.tier,
                    &opts.model,
                    &t.adapter,
                    &opts.out.join("deploy"),
                );
                b.quant = quant;
                b.registry = opts.registry.clone();
                b.ollama_host = opts.ollama_host.clone();
                b.dataset_hash = data_key.to_owned();
                b.dataset_size = t.samples as u64;
                b.config_hash = train_key.clone();
                b.train_metrics = serde_json::json!({
                    // Absolute, so that the loop finds it from any working directory.
                    "adapter": std::fs::canonicalize(&t.adapter).unwrap_or_else(|_| t.adapter.clone()),
                    "steps": t.steps,
                    "final_train_loss": t.final_train_loss,
                    "final_eval_loss": t.final_eval_loss,
                });
                let bundle =
                    tierforge_deploy::bundle::build_tier(&b, &mut |m: &str| rep.on_message(m))?;
                Ok(ExportOutcome {
                    tier: t.tier,
                    name: bundle.name,
                    gguf: bundle.gguf,
                    gguf_bytes: bundle.gguf_bytes,
                    sha256: bundle.sha256,
                    modelfile: bundle.modelfile,
                    ollama_create: bundle.ollama_create,
                    pushed: bundle.pushed,
                })
            })?;
            out.push(e);
        }
        Ok(out)
    }

    /// Evaluates the base model and every tier on the held-out products, with candle. A tier is
    /// evaluated as it ships: its exported GGUF (the adapter merged, quantized as the profile
    /// says), which is what `ollama run` serves. On the CPU the GGUF's blocks are multiplied
    /// in place with activations quantized as llama.cpp quantizes them ([`Weights::Quantized`]),
    /// so the scores describe llama.cpp's arithmetic rather than the f32 model that trained.
    pub fn evaluate(
        &mut self,
        trained: &[(TrainOutcome, String)],
        exported: &[ExportOutcome],
        reporter: &mut dyn PipelineReporter,
    ) -> Result<EvalRun, PipelineError> {
        let opts = self.opts;
        let products_path = opts
            .products
            .clone()
            .unwrap_or_else(|| products_default(&opts.data));
        let products = evaluate::load_products(&products_path)?;
        let mut models = vec![ModelUnderTest {
            label: "base".into(),
            model: opts.model.clone(),
            adapter: None,
            tier: Tier::Expert,
            ollama_name: None,
            system_prompt: None,
        }];
        for (t, _) in trained {
            let e = exported.iter().find(|e| e.tier == t.tier).ok_or_else(|| {
                PipelineError::Stage(format!("eval: the {} tier was not exported", t.tier))
            })?;
            models.push(ModelUnderTest {
                label: t.tier.name().into(),
                model: e.gguf.to_string_lossy().into_owned(),
                adapter: None,
                tier: t.tier,
                ollama_name: None,
                system_prompt: None,
            });
        }
        let eval_opts = self.eval_options();
        let mut parts: Vec<Vec<u8>> = vec![
            b"eval".to_vec(),
            manifest::file_hash(&products_path)?.into_bytes(),
            hash_json(&eval_opts),
            opts.model.as_bytes().to_vec(),
        ];
        parts.extend(trained.iter().map(|(_, k)| k.as_bytes().to_vec()));
        parts.extend(exported.iter().map(|e| e.sha256.as_bytes().to_vec()));
        let refs: Vec<&[u8]> = parts.iter().map(Vec::as_slice).collect();
        let key = manifest::key(&refs);
        let n = opts
            .settings
            .eval_limit
            .map_or(products.len(), |l| l.min(products.len()));
        let what = format!(
            "generate listings for {n} held-out products with base + {} tiers, parse and score them",
            trained.len()
        );
        let path = opts.out.join("eval").join("eval.json");
        let run = self.stage("eval", &what, &key, reporter, |rep, _| {
            let run = evaluate::evaluate(&models, &products, &eval_opts, rep.eval())?;
            let text = serde_json::to_string_pretty(&run)
                .map_err(|e| PipelineError::Stage(format!("eval.json: {e}")))?;
            write::write_string(&path, &text)?;
            Ok(path.clone())
        })?;
        let text = std::fs::read_to_string(&run).map_err(|e| PipelineError::io(&run, e))?;
        serde_json::from_str(&text)
            .map_err(|e| PipelineError::Stage(format!("{}: {e}", run.display())))
    }
}

/// `<data>/eval-products.jsonl` (or next to a samples file).
fn products_default(data: &Path) -> PathBuf {
    let dir = if data.is_file() {
        data.parent().unwrap_or(Path::new(".")).to_owned()
    } else {
        data.to_owned()
    };
    dir.join("eval-products.jsonl")
}

/// Loading messages and training steps both go to the one pipeline reporter.
struct Prep<'s, 'r>(&'s RefCell<&'r mut dyn PipelineReporter>);
impl tierforge_train::PrepareReporter for Prep<'_, '_> {
    fn on_message(&mut self, msg: &str) {
        self.0.borrow_mut().on_message(msg);
    }
}

/// Where a tier's candidate checkpoints go, under its training folder.
const CANDIDATES: &str = "candidates";

/// Which checkpoints to keep as candidates, and where.
struct Keep {
    selection: Selection,
    dir: PathBuf,
    last_step: usize,
}

/// The adapter files of a checkpoint (what PEFT and the evaluation read).
const ADAPTER_FILES: [&str; 2] = ["adapter_model.safetensors", "adapter_config.json"];

impl Keep {
    /// Copies the adapter of the checkpoint in `dir` to `<candidates>/step-<step>/`.
    fn keep(&self, dir: &Path, step: usize) -> Result<(), String> {
        if !self.selection.keeps(step, self.last_step) {
            return Ok(());
        }
        let to = self.dir.join(format!("step-{step}"));
        std::fs::create_dir_all(&to).map_err(|e| format!("{}: {e}", to.display()))?;
        for f in ADAPTER_FILES {
            let (a, b) = (dir.join(f), to.join(f));
            let tmp = to.join(format!(".{f}.tmp"));
            std::fs::copy(&a, &tmp)
                .and_then(|_| std::fs::rename(&tmp, &b))
                .map_err(|e| format!("keeping {} as {}: {e}", a.display(), b.display()))?;
        }
        Ok(())
    }
}

struct Steps<'s, 'r> {
    to: &'s RefCell<&'r mut dyn PipelineReporter>,
    keep: Option<Keep>,
    /// The first failure to keep a candidate (training goes on; the stage fails after it).
    error: Option<String>,
}
impl TrainReporter for Steps<'_, '_> {
    fn on_start(&mut self, start: usize, total: usize) {
        if let Some(k) = &mut self.keep {
            k.last_step = total;
        }
        self.to.borrow_mut().train().on_start(start, total);
    }
    fn on_step(&mut self, m: &tierforge_train::StepMetrics) {
        self.to.borrow_mut().train().on_step(m);
    }
    fn on_checkpoint(&mut self, dir: &Path, step: usize) {
        if let Some(k) = &self.keep {
            if let Err(e) = k.keep(dir, step) {
                self.error.get_or_insert(e);
            }
        }
        self.to.borrow_mut().train().on_checkpoint(dir, step);
    }
    fn on_message(&mut self, msg: &str) {
        self.to.borrow_mut().train().on_message(msg);
    }
}

/// The candidate checkpoints kept in `dir` (`step-<n>` folders with an adapter), by step.
fn candidates_in(dir: &Path) -> Vec<(usize, PathBuf)> {
    let Ok(rd) = std::fs::read_dir(dir) else {
        return Vec::new();
    };
    let mut out: Vec<(usize, PathBuf)> = rd
        .filter_map(Result::ok)
        .filter_map(|e| {
            let name = e.file_name();
            let step = name.to_str()?.strip_prefix("step-")?.parse().ok()?;
            let p = e.path();
            ADAPTER_FILES
                .iter()
                .all(|f| p.join(f).is_file())
                .then_some((step, p))
        })
        .collect();
    out.sort();
    out
}

fn train_outcome(
    tier: Tier,
    samples: usize,
    s: &TrainSummary,
    dir: &Path,
) -> Result<TrainOutcome, PipelineError> {
    let adapter = s.adapter.clone().ok_or_else(|| {
        PipelineError::Stage(format!("training {tier} finished without an adapter"))
    })?;
    let final_eval = read_last_eval_loss(dir);
    Ok(TrainOutcome {
        tier,
        samples,
        steps: s.steps,
        final_train_loss: s.final_loss,
        final_eval_loss: final_eval.or(s.best_eval_loss),
        tokens_per_s: s.tokens_per_s,
        adapter,
        dir: dir.to_owned(),
        selection: None,
    })
}

fn read_last_eval_loss(dir: &Path) -> Option<f64> {
    let text = std::fs::read_to_string(dir.join("metrics.jsonl")).ok()?;
    text.lines()
        .rev()
        .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
        .find_map(|v| v.get("eval_loss").and_then(serde_json::Value::as_f64))
}

/// The first `limit` lines of the validation file (a stable subset), or the file itself.
fn val_subset(
    val: &Path,
    limit: Option<usize>,
    out: &Path,
) -> Result<Option<PathBuf>, PipelineError> {
    let text = std::fs::read_to_string(val).map_err(|e| PipelineError::io(val, e))?;
    let lines: Vec<&str> = text.lines().filter(|l| !l.trim().is_empty()).collect();
    if lines.is_empty() {
        return Ok(None);
    }
    match limit {
        Some(n) if n < lines.len() => {
            let p = out.join("data").join(format!("val-{n}.messages.jsonl"));
            write::write_lines(&p, lines[..n].iter().copied())?;
            Ok(Some(p))
        }
        _ => Ok(Some(val.to_owned())),
    }
}

/// Serialises a value for the summary (`json!` with a fallback).
pub fn to_json<T: Serialize>(v: &T) -> serde_json::Value {
    serde_json::to_value(v).unwrap_or_else(|e| json!({ "error": e.to_string() }))
}

/// One tier's line of the final summary.
#[derive(Debug, Clone, Serialize)]
pub struct TierSummary {
    pub tier: Tier,
    pub samples: usize,
    pub steps: usize,
    pub final_train_loss: Option<f64>,
    pub final_eval_loss: Option<f64>,
    pub adapter: PathBuf,
    /// The step of the checkpoint chosen on the validation products (see `Selection`).
    pub selected_step: Option<usize>,
    pub pass_rate: Option<f64>,
    pub mean_score: Option<f64>,
    pub gguf: Option<PathBuf>,
    pub gguf_bytes: Option<u64>,
    pub ollama_name: Option<String>,
    pub pushed: bool,
}

/// What `tierforge pipeline` reports at the end (and prints with `--json`).
#[derive(Debug, Clone, Serialize)]
pub struct PipelineSummary {
    pub out: PathBuf,
    pub profile: String,
    pub model: String,
    pub data: DataOutcome,
    pub tiers: Vec<TierSummary>,
    pub base_pass_rate: Option<f64>,
    pub base_mean_score: Option<f64>,
    /// Every stage with its time, in order.
    pub stages: Vec<StageRecord>,
    pub seconds: f64,
    /// Seconds spent in training stages (this run's and the finished ones').
    pub training_seconds: f64,
    pub report: Option<PathBuf>,
    /// Plain sentences about tiers that did not improve on the one before, and other findings.
    pub findings: Vec<String>,
}

/// Runs every stage (skipping finished ones) and returns the summary.
pub fn run(
    opts: &PipelineOptions,
    reporter: &mut dyn PipelineReporter,
) -> Result<PipelineSummary, PipelineError> {
    let t0 = Instant::now();
    let mut p = Pipeline::new(opts)?;
    if let Some(dir) = opts.registry.as_deref().and_then(Path::parent) {
        if !dir.as_os_str().is_empty() {
            std::fs::create_dir_all(dir).map_err(|e| PipelineError::io(dir, e))?;
        }
    }
    tierforge_data::write::write_string(
        &opts.out.join("profile.json"),
        &serde_json::to_string_pretty(&opts.settings).unwrap_or_default(),
    )?;
    let (data, data_key) = p.data(reporter)?;
    let trained = p.train(&data, &data_key, reporter)?;
    let exported = p.export(&data_key, &trained, reporter)?;
    let eval = p.evaluate(&trained, &exported, reporter)?;
    let curves: Vec<(String, Vec<(usize, f64)>)> = trained
        .iter()
        .map(|(t, _)| {
            // A curve is decoration for the report: an unreadable metrics file shows none.
            let curve = crate::report::read_loss_curve(&t.dir.join("metrics.jsonl"));
            (t.tier.name().to_owned(), curve.unwrap_or_default())
        })
        .collect();
    reporter.on_stage_start("report", "write report.html and eval.json");
    let report = crate::report::write_report(&opts.out.join("eval"), &eval, &curves)?;
    let mut tiers = Vec::new();
    for (t, _) in &trained {
        let m = eval.model(t.tier.name()).map(|m| &m.summary);
        let e = exported.iter().find(|e| e.tier == t.tier);
        tiers.push(TierSummary {
            tier: t.tier,
            samples: t.samples,
            steps: t.steps,
            final_train_loss: t.final_train_loss,
            final_eval_loss: t.final_eval_loss,
            adapter: t.adapter.clone(),
            selected_step: t.selection.as_ref().map(|s| s.chosen.step),
            pass_rate: m.map(|m| m.pass_rate),
            mean_score: m.map(|m| m.mean_score),
            gguf: e.map(|e| e.gguf.clone()),
            gguf_bytes: e.map(|e| e.gguf_bytes),
            ollama_name: e.map(|e| e.name.clone()),
            pushed: e.is_some_and(|e| e.pushed),
        });
    }
    let base = eval.model("base").map(|m| &m.summary);
    let mut findings = eval.not_better();
    findings.extend(
        trained
            .iter()
            .filter_map(|(t, _)| t.selection.as_ref().map(SelectOutcome::sentence)),
    );
    if let Some(x) = tiers.iter().find(|t| t.tier == Tier::Expert) {
        if let Some(pr) = x.pass_rate {
            if pr < 0.8 {
                findings.push(format!(
                    "expert passes the rubric on {:.0}% of the products, under the 80% this profile aims for",
                    pr * 100.0
                ));
            }
        }
    }
    let stages = p.manifest.stages.clone();
    let training_seconds = stages
        .iter()
        .filter(|s| s.name.starts_with("train-"))
        .map(|s| s.seconds)
        .sum();
    let base_pass_rate = base.map(|b| b.pass_rate);
    let base_mean_score = base.map(|b| b.mean_score);
    let report = Some(report);
    Ok(PipelineSummary {
        out: opts.out.clone(),
        profile: opts.settings.profile.name().into(),
        model: opts.model.clone(),
        data,
        tiers,
        base_pass_rate,
        base_mean_score,
        stages,
        seconds: t0.elapsed().as_secs_f64(),
        training_seconds,
        report,
        findings,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cand(step: usize, pass_rate: f64, mean_score: f64) -> Candidate {
        Candidate {
            step,
            adapter: PathBuf::from(format!("step-{step}")),
            pass_rate,
            mean_score,
        }
    }

    #[test]
    fn the_best_pass_rate_wins_then_the_mean_score_then_the_later_step() {
        let c = [
            cand(16, 0.75, 90.0),
            cand(20, 0.5, 99.0),
            cand(24, 0.75, 91.0),
        ];
        assert_eq!(choose(&c).map(|c| c.step), Some(24));
        let tie = [cand(16, 0.75, 91.0), cand(20, 0.75, 91.0)];
        assert_eq!(choose(&tie).map(|c| c.step), Some(20));
        assert!(choose(&[]).is_none());
    }

    #[test]
    fn kept_checkpoints_are_the_listed_steps_and_the_last() {
        let s = Selection {
            tiers: vec![Tier::Expert],
            from_step: 16,
            every: 4,
            products: 12,
        };
        let kept: Vec<usize> = (1..=30).filter(|&k| s.keeps(k, 30)).collect();
        assert_eq!(kept, [16, 20, 24, 28, 30]);
        let every_step = Selection { every: 0, ..s };
        assert!(every_step.keeps(17, 30), "every 0 is read as every step");
    }

    #[test]
    fn candidates_are_copied_atomically_and_listed_by_step() {
        let tmp = tempfile::tempdir().expect("tmp");
        let last = tmp.path().join("last");
        std::fs::create_dir_all(&last).unwrap();
        for f in ADAPTER_FILES {
            std::fs::write(last.join(f), f).unwrap();
        }
        std::fs::write(last.join("optimizer.safetensors"), "big").unwrap();
        let keep = Keep {
            selection: Selection {
                tiers: vec![Tier::Expert],
                from_step: 2,
                every: 2,
                products: 1,
            },
            dir: tmp.path().join(CANDIDATES),
            last_step: 5,
        };
        for step in 1..=5 {
            keep.keep(&last, step).unwrap();
        }
        let found = candidates_in(&keep.dir);
        let steps: Vec<usize> = found.iter().map(|c| c.0).collect();
        assert_eq!(steps, [2, 4, 5]);
        for (_, dir) in &found {
            let mut names: Vec<String> = std::fs::read_dir(dir)
                .unwrap()
                .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
                .collect();
            names.sort();
            assert_eq!(names, ["adapter_config.json", "adapter_model.safetensors"]);
        }
        // A folder without both adapter files is not a candidate.
        std::fs::create_dir_all(keep.dir.join("step-9")).unwrap();
        assert_eq!(candidates_in(&keep.dir).len(), 3);
        // A missing source is an error, not a silently missing candidate.
        assert!(keep.keep(&tmp.path().join("nowhere"), 4).is_err());
    }
}
