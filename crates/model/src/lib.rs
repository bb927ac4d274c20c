//! Llama-class models for tierforge: loading (GGUF, Hugging Face folders and hub repositories),
//! the tokenizer and chat template that come with them, LoRA-capable layers, and generation.
//!
//! Entry points: [`load`] (weights, tokenizer, template), [`inspect`] (metadata only, for
//! `model info`), [`generate::generate`] / [`generate::generate_batch`], and [`hf::convert`].
#![cfg_attr(not(test), deny(clippy::unwrap_used))]

pub mod cached_attention;
pub mod chat_template;
mod cpu_gemm;
pub mod error;
pub mod frozen_matmul;
pub mod fused_attention;
pub mod fused_grad;
pub mod fused_lora;
pub mod generate;
pub mod gguf;
pub mod half_matmul;
pub mod hf;
pub mod json_schema;
pub mod kv_cache;
pub mod llama;
pub mod pool;
pub mod quant_matmul;
pub mod tokenizer;
pub mod vector_math;

use std::path::{Path, PathBuf};

use candle_core::Device;
use serde::Serialize;

/// Element types, re-exported so callers need not depend on candle.
pub use candle_core::DType;
pub use chat_template::{ChatEncoding, ChatTemplate, Message, MessageSpan};
pub use error::{ModelError, Result};
pub use generate::{GenerateOptions, Generation, SamplingParams, StopReason};
pub use json_schema::JsonSchema;
pub use llama::{Config, Kernels, Llama, LlamaConfig, Lora, Proj, RopeScaling, WeightFormat};
pub use tokenizer::{SpecialToken, Tokenizer, TokenizerKind};

/// How to load a model.
#[derive(Debug, Clone)]
pub struct LoadOptions {
    /// Dense (trainable) or quantized (fast inference) linear layers.
    pub format: WeightFormat,
    pub device: Device,
    /// Never touch the network for hub models (also set by `HF_HUB_OFFLINE=1`).
    pub offline: bool,
    /// Hub cache folder; `None` follows `HF_HUB_CACHE` / `HF_HOME` like the Python hub client.
    pub hub_cache: Option<PathBuf>,
}

impl Default for LoadOptions {
    fn default() -> Self {
        Self {
            format: WeightFormat::Dense(DType::F32),
            device: Device::Cpu,
            offline: hub_offline_from_env(),
            hub_cache: None,
        }
    }
}

impl LoadOptions {
    /// Quantized weights on the CPU: the fast inference setup for GGUF files.
    pub fn quantized() -> Self {
        Self {
            format: WeightFormat::Quantized,
            ..Self::default()
        }
    }
}

/// `HF_HUB_OFFLINE` as the Python hub client reads it (`1`, `true`, `yes`, `on`).
pub fn hub_offline_from_env() -> bool {
    std::env::var("HF_HUB_OFFLINE")
        .map(|v| {
            matches!(
                v.trim().to_ascii_lowercase().as_str(),
                "1" | "true" | "yes" | "on"
            )
        })
        .unwrap_or(false)
}

/// The file format a model was read from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum CheckpointFormat {
    Gguf,
    Safetensors,
}

/// The special tokens of a model.
#[derive(Debug, Clone, Serialize)]
pub struct SpecialTokens {
    pub bos: Option<SpecialToken>,
    pub eos: Option<SpecialToken>,
    pub unk: Option<SpecialToken>,
    pub pad: Option<SpecialToken>,
    /// The chat template's end-of-turn token.
    pub end_of_turn: Option<SpecialToken>,
    /// Every control token of the vocabulary.
    pub control: Vec<SpecialToken>,
}

/// What `tierforge model info` prints.
#[derive(Debug, Clone, Serialize)]
pub struct ModelInfo {
    /// The spec the model was loaded from (path or `org/name[@rev]`).
    pub source: String,
    /// The GGUF file or Hugging Face folder actually read.
    pub path: PathBuf,
    pub format: CheckpointFormat,
    pub architecture: String,
    pub parameters: u64,
    pub vocab_size: usize,
    /// Context length, in tokens.
    pub context_length: usize,
    pub hidden_size: usize,
    pub intermediate_size: usize,
    pub layers: usize,
    pub attention_heads: usize,
    pub kv_heads: usize,
    pub head_dim: usize,
    pub rope_theta: f32,
    /// Llama 3 rope scaling: config.json's `rope_scaling`, or the one a GGUF's
    /// `rope_freqs.weight` matches.
    pub rope_scaling: Option<RopeScaling>,
    /// A GGUF's `rope_freqs.weight`: per pair of head dimensions, the factor its rotary
    /// frequency is divided by. When present, rope uses these.
    pub rope_freq_factors: Option<Vec<f32>>,
    pub rms_norm_eps: f64,
    pub tie_word_embeddings: bool,
    /// ggml type of most weight matrices (`Q4_1`, ...), or the safetensors dtype.
    pub quantization: String,
    pub tokenizer: TokenizerKind,
    pub chat_template: Option<String>,
    pub special_tokens: SpecialTokens,
}

/// A model ready for inference or training.
#[derive(Debug)]
pub struct LoadedModel {
    pub llama: Llama,
    pub tokenizer: Tokenizer,
    pub chat_template: Option<ChatTemplate>,
    pub info: ModelInfo,
}

impl LoadedModel {
    /// The chat template's end-of-turn token, if any.
    pub fn end_of_turn(&self) -> Option<u32> {
        self.chat_template
            .as_ref()
            .and_then(|t| t.end_of_turn(&self.tokenizer))
    }

    /// Tokens that end a reply: EOS and the end-of-turn token.
    pub fn stop_tokens(&self) -> Vec<u32> {
        let mut v: Vec<u32> = self.tokenizer.eos().map(|t| t.id).into_iter().collect();
        if let Some(e) = self.end_of_turn() {
            if !v.contains(&e) {
                v.push(e);
            }
        }
        v
    }

    /// The chat template, or an error naming the model when it has none.
    pub fn template(&self) -> Result<&ChatTemplate> {
        self.chat_template
            .as_ref()
            .ok_or_else(|| ModelError::Template {
                origin: self.info.path.display().to_string(),
                reason: "the model has no chat template".into(),
            })
    }

    /// Prompt ids for a single user turn (optionally after a system turn), rendered with the
    /// chat template and its generation prompt. Fails if it does not fit the context.
    pub fn chat_prompt(&self, prompt: &str, system: Option<&str>) -> Result<Vec<u32>> {
        let mut messages = Vec::new();
        if let Some(s) = system {
            messages.push(Message::system(s));
        }
        messages.push(Message::user(prompt));
        let enc = self.template()?.encode(&self.tokenizer, &messages, true)?;
        self.check_fits(enc.ids.len())?;
        Ok(enc.ids)
    }

    /// Error if a prompt of `tokens` tokens leaves no room to generate.
    pub fn check_fits(&self, tokens: usize) -> Result<()> {
        let ctx = self.llama.config().max_position_embeddings;
        if tokens >= ctx {
            return Err(ModelError::PromptTooLong {
                tokens,
                context: ctx,
                model: self.info.path.display().to_string(),
            });
        }
        Ok(())
    }

    /// Generate from prompt ids with the model's stop tokens.
    pub fn generate(
        &self,
        prompt: &[u32],
        max_tokens: usize,
        sampling: SamplingParams,
        reporter: &mut dyn generate::GenerateReporter,
    ) -> Result<Generation> {
        self.check_fits(prompt.len())?;
        let opts = GenerateOptions {
            max_tokens,
            sampling,
            stop_tokens: self.stop_tokens(),
            schema: None,
        };
        generate::generate(&self.llama, prompt, &opts, reporter)
    }
}

enum Checkpoint {
    Gguf(gguf::GgufFile),
    Hf(Box<hf::HfFolder>),
}

fn is_gguf(path: &Path) -> Result<bool> {
    use std::io::Read;
    let mut f = std::fs::File::open(path).map_err(|e| ModelError::io(path, e))?;
    let mut magic = [0u8; 4];
    match f.read_exact(&mut magic) {
        Ok(()) => Ok(&magic == b"GGUF"),
        Err(_) => Ok(false),
    }
}

fn open_checkpoint(spec: &str, opts: &LoadOptions) -> Result<Checkpoint> {
    let path = Path::new(spec);
    if path.is_file() {
        if !is_gguf(path)? {
            return Err(ModelError::gguf(
                path,
                "not a GGUF file (pass a .gguf file, a Hugging Face folder, or org/name)",
            ));
        }
        return Ok(Checkpoint::Gguf(gguf::GgufFile::open(path)?));
    }
    if path.is_dir() {
        return Ok(Checkpoint::Hf(Box::new(hf::HfFolder::open(path)?)));
    }
    if let Some((org, name, rev)) = hf::parse_repo_spec(spec) {
        let dir = hub::snapshot(&org, &name, rev.as_deref(), opts)?;
        return Ok(Checkpoint::Hf(Box::new(hf::HfFolder::open(&dir)?)));
    }
    Err(ModelError::checkpoint(
        path,
        "no such file or folder, and not a hub id of the form org/name[@revision]",
    ))
}

mod hub;

struct Parts {
    config: Config,
    tokenizer: Tokenizer,
    chat_template: Option<ChatTemplate>,
    info: ModelInfo,
}

fn parts(spec: &str, ck: &mut Checkpoint) -> Result<Parts> {
    let mut rope_freq_factors = None;
    let (wire, path, format, quantization, tokenizer, template_src) = match ck {
        Checkpoint::Gguf(g) => {
            let wire = g.llama_config()?;
            rope_freq_factors = g.rope_freq_factors()?;
            let tok = Tokenizer::from_gguf(g)?;
            let tmpl = g.opt_str("tokenizer.chat_template")?.map(|s| {
                (
                    s.to_string(),
                    format!("{}: tokenizer.chat_template", g.path().display()),
                )
            });
            (
                wire,
                g.path().to_path_buf(),
                CheckpointFormat::Gguf,
                g.quantization(),
                tok,
                tmpl,
            )
        }
        Checkpoint::Hf(f) => {
            let tok = Tokenizer::from_hf_file(&f.tokenizer_json, f.tokenizer_config.as_ref())?;
            let q = f
                .config
                .torch_dtype
                .clone()
                .unwrap_or_else(|| "unknown".into());
            (
                f.config.clone(),
                f.dir.clone(),
                CheckpointFormat::Safetensors,
                q,
                tok,
                f.chat_template.clone(),
            )
        }
    };
    let mut config = wire
        .into_config()
        .map_err(|reason| ModelError::checkpoint(&path, reason))?;
    if let Some(factors) = rope_freq_factors {
        config = config
            .with_rope_freq_factors(factors)
            .map_err(|reason| ModelError::gguf(&path, reason))?;
    }
    if tokenizer.vocab_size() > config.vocab_size {
        return Err(ModelError::tokenizer(
            &path,
            format!(
                "the tokenizer has {} tokens but the model's vocabulary is {}",
                tokenizer.vocab_size(),
                config.vocab_size
            ),
        ));
    }
    let chat_template = match template_src {
        Some((src, origin)) => Some(ChatTemplate::new(src, origin, &tokenizer)?),
        None => None,
    };
    let eot = chat_template
        .as_ref()
        .and_then(|t| t.end_of_turn(&tokenizer));
    let info = ModelInfo {
        source: spec.to_string(),
        path,
        format,
        architecture: "llama".into(),
        parameters: config.parameter_count(),
        vocab_size: config.vocab_size,
        context_length: config.max_position_embeddings,
        hidden_size: config.hidden_size,
        intermediate_size: config.intermediate_size,
        layers: config.num_hidden_layers,
        attention_heads: config.num_attention_heads,
        kv_heads: config.num_key_value_heads,
        head_dim: config.head_dim,
        rope_theta: config.rope_theta,
        rope_scaling: config.rope_scaling.clone(),
        rope_freq_factors: config.rope_freq_factors.clone(),
        rms_norm_eps: config.rms_norm_eps,
        tie_word_embeddings: config.tie_word_embeddings,
        quantization,
        tokenizer: tokenizer.kind(),
        chat_template: chat_template.as_ref().map(|t| t.source().to_string()),
        special_tokens: SpecialTokens {
            bos: tokenizer.bos(),
            eos: tokenizer.eos(),
            unk: tokenizer.unk(),
            pad: tokenizer.pad(),
            end_of_turn: eot.map(|id| SpecialToken {
                id,
                content: tokenizer.id_to_token(id).unwrap_or_default().to_string(),
            }),
            control: tokenizer.special_tokens(),
        },
    };
    Ok(Parts {
        config,
        tokenizer,
        chat_template,
        info,
    })
}

/// Metadata, tokenizer and template of a model, without reading its weights.
pub fn inspect(spec: &str, opts: &LoadOptions) -> Result<ModelInfo> {
    let mut ck = open_checkpoint(spec, opts)?;
    Ok(parts(spec, &mut ck)?.info)
}

/// Load a model from `spec`: a GGUF file, a Hugging Face folder, or `org/name[@revision]`
/// from the hub (or its cache, offline).
pub fn load(spec: &str, opts: &LoadOptions) -> Result<LoadedModel> {
    let mut ck = open_checkpoint(spec, opts)?;
    let p = parts(spec, &mut ck)?;
    let llama = match ck {
        Checkpoint::Gguf(g) => {
            let mut src = gguf::GgufWeights::new(
                g,
                p.config.num_attention_heads,
                p.config.num_key_value_heads,
            );
            Llama::load(&mut src, p.config, opts.format, &opts.device)?
        }
        Checkpoint::Hf(f) => {
            let mut src = hf::SafetensorsWeights::open(&f.weights)?;
            let format = match opts.format {
                WeightFormat::Quantized => WeightFormat::Dense(DType::F32),
                other => other,
            };
            Llama::load(&mut src, p.config, format, &opts.device)?
        }
    };
    Ok(LoadedModel {
        llama,
        tokenizer: p.tokenizer,
        chat_template: p.chat_template,
        info: p.info,
    })
}

/// candle's setting for how many times its pool's idle workers spin before they sleep.
const CANDLE_SPIN_LIMIT: &str = "CANDLE_BARRIER_POOL_SPIN_LIMIT";

/// Settles the number of compute threads once, for a process that has not set
/// `RAYON_NUM_THREADS`: call it first thing in `main`, before any thread starts.
///
/// candle asks for its thread count at every matrix product. With `RAYON_NUM_THREADS` unset it
/// counts physical cores, which on Linux means reading and parsing `/proc/cpuinfo`, on every
/// call: thousands of times per decoding step, a sixth of the CPU time of a generation run.
/// This sets the variable to the count candle would have found, after starting rayon's global
/// pool at its own default (one thread per logical CPU), so neither changes.
///
/// It also shortens how long candle's own worker pool (its k-quant kernels: `Q4_K`, `Q6_K`, ...)
/// spins after each product before it sleeps, unless `CANDLE_BARRIER_POOL_SPIN_LIMIT` is set:
/// at candle's 25,000 spins its idle workers took the cores from the rayon pool that runs every
/// other product of the same step (a third of a Q4_K_M decoding run's CPU time on 2 cores;
/// decoding 33–37 -> 50–58 tokens/s at 1,000 spins).
pub fn settle_thread_count() {
    if std::env::var_os(CANDLE_SPIN_LIMIT).is_none() {
        std::env::set_var(CANDLE_SPIN_LIMIT, "1000");
    }
    if std::env::var_os("RAYON_NUM_THREADS").is_some() {
        return;
    }
    let threads = candle_core::utils::get_num_threads();
    // Already started (e.g. called twice): its size stays what it was.
    let _ = rayon::ThreadPoolBuilder::new().build_global();
    std::env::set_var("RAYON_NUM_THREADS", threads.to_string());
}
