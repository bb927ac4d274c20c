//! LoRA fine-tuning of llama-class models on CPU (and CUDA when built with `--features cuda`).
//!
//! Entry points: [`train`] (load the model and data, then run or resume a job) and
//! [`preview_mask`] (show which tokens would be trained on). The pieces are public for tests
//! and other front ends: [`tokens`] (chat template → supervised tokens, batching), [`lora`]
//! (PEFT-format adapters), [`optim`] (AdamW, schedules, clipping), [`trainer`] (the loop,
//! checkpoints, evaluation), [`metrics`] (`metrics.jsonl`, `loss.svg`).
#![cfg_attr(not(test), deny(clippy::unwrap_used))]

pub mod config;
pub mod error;
pub mod io;
pub mod lora;
pub mod metrics;
pub mod optim;
pub mod tokens;
pub mod trainer;

use std::path::{Path, PathBuf};

use candle_core::{DType, Device};
use serde::Serialize;
use tierforge_model::{LoadOptions, LoadedModel, WeightFormat};

pub use config::{Schedule, TrainConfig};
pub use error::{Result, TrainError};
pub use metrics::StepMetrics;
pub use tokens::{Example, Prepared};
pub use trainer::{ModelFingerprint, NoReporter, TrainReporter, TrainSummary};

/// Where the tensors live.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum DeviceKind {
    #[default]
    Cpu,
    Cuda,
}

/// The candle device for `kind`; CUDA only in builds with the `cuda` feature.
pub fn device(kind: DeviceKind) -> Result<Device> {
    match kind {
        DeviceKind::Cpu => Ok(Device::Cpu),
        #[cfg(feature = "cuda")]
        DeviceKind::Cuda => Device::new_cuda(0).map_err(|e| TrainError::Device(format!("cannot open CUDA device 0: {e}"))),
        #[cfg(not(feature = "cuda"))]
        DeviceKind::Cuda => Err(TrainError::Device(
            "this tierforge was built without CUDA support; rebuild with `cargo build --release --features cuda` \
             (needs the CUDA toolkit), or use --device cpu"
                .into(),
        )),
    }
}

/// A training run as the CLI describes it.
#[derive(Debug, Clone)]
pub struct TrainOptions {
    /// A GGUF file, a Hugging Face folder, or `org/name[@revision]`.
    pub model: String,
    /// Chat samples (`messages` JSONL, or any format tierforge-data reads).
    pub data: PathBuf,
    /// Validation samples, evaluated every `eval_every` steps.
    pub val: Option<PathBuf>,
    /// The resolved configuration (file plus flag overrides).
    pub config: TrainConfig,
    pub out: PathBuf,
    pub resume: Option<PathBuf>,
    pub init_adapter: Option<PathBuf>,
    pub device: DeviceKind,
    /// Stop after this many steps of this invocation (with a checkpoint), as if interrupted.
    pub stop_after: Option<usize>,
}

/// Tokenized training and validation data with what preparing them found.
#[derive(Debug, Clone)]
pub struct PreparedData {
    pub train: Prepared,
    pub val: Option<Prepared>,
}

/// Callbacks before the loop starts (loading, tokenizing, truncation warnings). Messages that
/// start with `warning: ` are about the data (skipped records) and should be shown even when
/// progress is not.
pub trait PrepareReporter {
    fn on_message(&mut self, _msg: &str) {}
}

/// The dtype of the frozen base weights (and of the activations between layers) on `kind`:
/// f32 on the CPU; bf16 on CUDA, half the memory and tensor-core matmuls. LoRA parameters,
/// their gradients and the optimizer state are f32 on both, and the loss is computed in f32.
pub fn base_dtype(kind: DeviceKind) -> DType {
    match kind {
        DeviceKind::Cpu => DType::F32,
        DeviceKind::Cuda => DType::BF16,
    }
}

/// Load the model with dense weights (the differentiable path) on `kind`, in [`base_dtype`].
pub fn load_model(spec: &str, kind: DeviceKind) -> Result<LoadedModel> {
    let dev = device(kind)?;
    let opts = LoadOptions {
        format: WeightFormat::Dense(base_dtype(kind)),
        device: dev,
        ..LoadOptions::default()
    };
    Ok(tierforge_model::load(spec, &opts)?)
}

/// Tokens that close an assistant turn: the template's end-of-turn token and EOS.
pub fn stop_ids(model: &LoadedModel) -> Vec<u32> {
    model.stop_tokens()
}

/// Read and tokenize a data file for `model`. Unreadable records are skipped and kept in
/// [`Prepared::rejects`]; a file with no readable record at all is an error.
pub fn prepare_file(model: &LoadedModel, path: &Path, max_seq_len: usize) -> Result<Prepared> {
    let read = tierforge_data::read::read_file(path)?;
    if read.samples.is_empty() {
        if let Some(r) = read.rejects.first() {
            let p = r.problems.first();
            return Err(TrainError::data(
                format!("{}:{}", r.file, r.line),
                format!(
                    "none of the {} records can be read; first: {}: {}",
                    read.rejects.len(),
                    p.map_or("-", |p| p.field.as_str()),
                    p.map_or("unreadable record", |p| p.reason.as_str())
                ),
            ));
        }
    }
    let template = model.template()?;
    let mut prepared = tokens::prepare(
        &read.samples,
        template,
        &model.tokenizer,
        &stop_ids(model),
        max_seq_len,
        &path.display().to_string(),
    )?;
    prepared.rejects = read.rejects;
    Ok(prepared)
}

/// Tells about the skipped records of `prepared` and writes them, with their reasons, to
/// `rejects` (JSON Lines: file, line, record, reasons).
fn report_rejects(
    prepared: &Prepared,
    rejects: &Path,
    reporter: &mut dyn PrepareReporter,
) -> Result<()> {
    let Some(first) = prepared.rejects.first() else {
        return Ok(());
    };
    if let Some(dir) = rejects.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir)
            .map_err(|e| TrainError::data(dir.display().to_string(), e.to_string()))?;
    }
    let rows = prepared
        .rejects
        .iter()
        .map(tierforge_data::filter::unread_row);
    tierforge_data::write::write_jsonl(rejects, rows)
        .map_err(|e| TrainError::data(rejects.display().to_string(), e.to_string()))?;
    let why = first
        .problems
        .first()
        .map_or_else(|| "unreadable record".to_owned(), |p| p.to_string());
    reporter.on_message(&format!(
        "warning: skipped {} of {} records that cannot be read (first: {}:{}: {why}); all of them \
         with their reasons in {}",
        prepared.rejects.len(),
        prepared.rejects.len() + prepared.examples.len(),
        first.file,
        first.line,
        rejects.display()
    ));
    Ok(())
}

fn check_seq_len(model: &LoadedModel, cfg: &TrainConfig) -> Result<()> {
    let ctx = model.llama.config().max_position_embeddings;
    if cfg.max_seq_len > ctx {
        return Err(TrainError::config(
            "max_seq_len",
            format!(
                "{} tokens exceed the context length of {} ({ctx} tokens)",
                cfg.max_seq_len,
                model.info.path.display()
            ),
        ));
    }
    Ok(())
}

/// Padding id: the tokenizer's pad token, else EOS, else 0 (padding is never a target).
pub fn pad_id(model: &LoadedModel) -> u32 {
    model
        .tokenizer
        .pad()
        .or_else(|| model.tokenizer.eos())
        .map_or(0, |t| t.id)
}

fn truncation_note(what: &str, p: &Prepared, max_seq_len: usize) -> Option<String> {
    (p.truncated_samples > 0).then(|| {
        format!(
            "{what}: {} of {} samples are longer than max_seq_len = {max_seq_len} and were truncated: \
             {} tokens lost ({} of them supervised)",
            p.truncated_samples,
            p.examples.len(),
            p.tokens_lost,
            p.supervised_lost
        )
    })
}

/// Load, tokenize and train (or resume). Every data problem is reported before the first step.
pub fn train(
    opts: &TrainOptions,
    prep_reporter: &mut dyn PrepareReporter,
    reporter: &mut dyn TrainReporter,
) -> Result<(TrainSummary, PreparedData)> {
    opts.config.validate("config")?;
    prep_reporter.on_message(&format!("loading {}", opts.model));
    let mut model = load_model(&opts.model, opts.device)?;
    check_seq_len(&model, &opts.config)?;
    let train = prepare_file(&model, &opts.data, opts.config.max_seq_len)?;
    report_rejects(&train, &opts.out.join("rejects.jsonl"), prep_reporter)?;
    if let Some(n) = truncation_note(
        &opts.data.display().to_string(),
        &train,
        opts.config.max_seq_len,
    ) {
        prep_reporter.on_message(&n);
    }
    let val = match &opts.val {
        Some(v) => {
            let p = prepare_file(&model, v, opts.config.max_seq_len)?;
            report_rejects(&p, &opts.out.join("val-rejects.jsonl"), prep_reporter)?;
            if let Some(n) = truncation_note(&v.display().to_string(), &p, opts.config.max_seq_len)
            {
                prep_reporter.on_message(&n);
            }
            Some(p)
        }
        None => None,
    };
    let name = model
        .info
        .path
        .file_name()
        .map_or_else(|| opts.model.clone(), |n| n.to_string_lossy().into_owned());
    let fingerprint = ModelFingerprint::new(name, model.llama.config());
    let pad = pad_id(&model);
    let job = trainer::TrainJob {
        llama: &mut model.llama,
        model: fingerprint,
        base_model: opts.model.clone(),
        train: train.examples.clone(),
        val: val.as_ref().map(|v| v.examples.clone()).unwrap_or_default(),
        config: opts.config.clone(),
        out: opts.out.clone(),
        resume: opts.resume.clone(),
        init_adapter: opts.init_adapter.clone(),
        pad_id: pad,
        stop_after: opts.stop_after,
    };
    let summary = trainer::run(job, reporter)?;
    Ok((summary, PreparedData { train, val }))
}

/// One sample as `--preview-mask` shows it.
#[derive(Debug, Clone, Serialize)]
pub struct MaskPreview {
    pub id: String,
    pub tokens: usize,
    pub supervised: usize,
    /// The rendered conversation with supervised runs wrapped in `[[ ]]`.
    pub marked: String,
}

/// The supervised share of the whole file plus the first `n` samples marked up.
#[derive(Debug, Clone, Serialize)]
pub struct MaskReport {
    pub samples: usize,
    pub tokens: usize,
    pub supervised_tokens: usize,
    /// Supervised share of all tokens, 0..=1.
    pub supervised_share: f64,
    pub truncated_samples: usize,
    pub tokens_lost: usize,
    pub preview: Vec<MaskPreview>,
}

/// Tokenize `data` for `model_spec` and show which tokens would be trained on. Fails exactly
/// like training would (no supervised token, under 1% supervised, ...).
pub fn preview_mask(
    model_spec: &str,
    data: &Path,
    config: &TrainConfig,
    n: usize,
) -> Result<MaskReport> {
    config.validate("config")?;
    let model = tierforge_model::load(model_spec, &LoadOptions::quantized())?;
    check_seq_len(&model, config)?;
    let p = prepare_file(&model, data, config.max_seq_len)?;
    Ok(MaskReport {
        samples: p.examples.len(),
        tokens: p.total_tokens(),
        supervised_tokens: p.supervised_tokens(),
        supervised_share: p.supervised_share(),
        truncated_samples: p.truncated_samples,
        tokens_lost: p.tokens_lost,
        preview: p
            .examples
            .iter()
            .take(n)
            .map(|e| MaskPreview {
                id: e.id.clone(),
                tokens: e.ids.len(),
                supervised: e.num_targets(),
                marked: tokens::render_mask(e, &model.tokenizer),
            })
            .collect(),
    })
}
