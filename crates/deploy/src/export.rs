//! Export a trained adapter: merged into its base model as a complete GGUF v3 (what Ollama and
//! llama.cpp run), as a normalised PEFT folder, or as a llama.cpp LoRA GGUF.
//!
//! From a GGUF base, the merged GGUF keeps every metadata key of the base (architecture,
//! hyper-parameters, tokenizer, chat template) with its original value type; from a Hugging Face
//! folder, it gets the keys llama.cpp's `convert_hf_to_gguf.py` would write (see
//! [`crate::hf_metadata`]), and `rope_freqs.weight` for Llama 3 rope scaling. Either way it has
//! llama.cpp's tensor names and layout: q/k rows in llama.cpp's interleaved rotary order (the
//! loader in `tierforge-model` undoes it, so W + scale·B·A is formed in Hugging Face order and
//! permuted once), norms F32, no `output.weight` for tied embeddings. Quantization follows
//! `llama-quantize`'s per-tensor rules for the chosen type, including its fallbacks for rows
//! that are not a whole number of 256-element super-blocks.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Instant;

use candle_core::quantized::gguf_file::Value;
use candle_core::quantized::{GgmlDType, QTensor};
use candle_core::{DType, Device, Tensor};
use serde::Serialize;
use tierforge_model::gguf::{gguf_name, unpermute_rows, GgufFile};
use tierforge_model::{CheckpointFormat, LoadOptions, LoadedModel, Proj};
use tierforge_train::lora::{Adapter, ADAPTER_CONFIG, ADAPTER_WEIGHTS};
use tierforge_train::trainer::{ModelFingerprint, STATE_FILE};

use crate::gguf_write::{write_gguf, GgufWriteError, TensorEntry, WriteStats};
use crate::hf_metadata::{self, HfGguf};

/// Quantization of the merged GGUF's matrices.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub enum Quant {
    #[serde(rename = "f16")]
    F16,
    #[serde(rename = "q8_0")]
    Q8_0,
    #[serde(rename = "q4_0")]
    Q4_0,
    #[serde(rename = "q4_k_m")]
    Q4KM,
}

impl Quant {
    pub const ALL: [Quant; 4] = [Quant::F16, Quant::Q8_0, Quant::Q4_0, Quant::Q4KM];

    pub fn as_str(self) -> &'static str {
        match self {
            Quant::F16 => "f16",
            Quant::Q8_0 => "q8_0",
            Quant::Q4_0 => "q4_0",
            Quant::Q4KM => "q4_k_m",
        }
    }

    /// `general.file_type` (llama.cpp's `llama_ftype`).
    pub fn file_type(self) -> u32 {
        match self {
            Quant::F16 => 1,
            Quant::Q8_0 => 7,
            Quant::Q4_0 => 2,
            Quant::Q4KM => 15,
        }
    }
}

impl std::fmt::Display for Quant {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

impl std::str::FromStr for Quant {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        Quant::ALL
            .into_iter()
            .find(|q| q.as_str().eq_ignore_ascii_case(s))
            .ok_or_else(|| format!("unknown quantization {s:?} (f16, q8_0, q4_0, q4_k_m)"))
    }
}

#[derive(Debug, thiserror::Error)]
pub enum ExportError {
    #[error(transparent)]
    Model(#[from] tierforge_model::ModelError),
    /// The adapter folder is missing, unreadable, or does not fit the base model.
    #[error("adapter {path}: {reason}")]
    Adapter { path: PathBuf, reason: String },
    #[error(transparent)]
    Write(#[from] GgufWriteError),
    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    /// A file of a Hugging Face base folder says something a GGUF cannot carry.
    #[error("{path}: {reason}")]
    HfFolder { path: PathBuf, reason: String },
    #[error("{0}")]
    Unsupported(String),
    #[error("tensor error: {0}")]
    Candle(#[from] candle_core::Error),
}

/// What to write besides the weights.
#[derive(Debug, Clone)]
pub struct GgufOptions {
    pub quant: Quant,
    /// `general.name`; defaults to `tierforge-<tier>` or the base's name.
    pub name: Option<String>,
    /// Recorded as `tierforge.tier`.
    pub tier: Option<String>,
    /// Recorded as `general.version` and `tierforge.version`.
    pub version: Option<String>,
}

impl GgufOptions {
    pub fn new(quant: Quant) -> Self {
        Self {
            quant,
            name: None,
            tier: None,
            version: None,
        }
    }
}

/// What an export wrote.
#[derive(Debug, Clone, Serialize)]
pub struct ExportReport {
    pub path: PathBuf,
    pub format: &'static str,
    pub quant: Option<Quant>,
    pub bytes: u64,
    pub tensors: usize,
    /// Matrices that had the adapter folded in.
    pub merged_tensors: usize,
    /// Tensor count per ggml type.
    pub tensor_types: BTreeMap<String, usize>,
    /// Seconds to load the base and adapter.
    pub load_s: f64,
    /// Seconds to merge, quantize and write.
    pub write_s: f64,
    /// How `write_s` splits (merged GGUF and LoRA GGUF only).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub write_stats: Option<WriteStats>,
    /// Notes worth showing (e.g. the adapter was trained on a differently named file).
    pub warnings: Vec<String>,
}

/// The folder that holds `adapter_config.json`: `dir` itself, or a training output's `best/`
/// (when validation chose one) or `last/`.
pub fn resolve_adapter_dir(dir: &Path) -> Result<PathBuf, ExportError> {
    for cand in [dir.to_path_buf(), dir.join("best"), dir.join("last")] {
        if cand.join(ADAPTER_CONFIG).is_file() && cand.join(ADAPTER_WEIGHTS).is_file() {
            return Ok(cand);
        }
    }
    let reason = if dir.is_dir() {
        format!("no {ADAPTER_CONFIG} + {ADAPTER_WEIGHTS} here or in best/ or last/")
    } else {
        "no such folder".into()
    };
    Err(ExportError::Adapter {
        path: dir.to_path_buf(),
        reason,
    })
}

/// The base model, loaded with its linear layers kept quantized (GGUF) or dense (HF): only
/// shapes and one matrix at a time are needed.
pub fn load_base(spec: &str) -> Result<LoadedModel, ExportError> {
    Ok(tierforge_model::load(spec, &LoadOptions::quantized())?)
}

/// Load the adapter in `dir` (see [`resolve_adapter_dir`]) for `base`, checking it belongs to
/// that model: tensor names and shapes, and the model fingerprint a training checkpoint
/// records. Returns the adapter and warnings.
pub fn load_adapter(
    dir: &Path,
    base: &LoadedModel,
) -> Result<(Adapter, PathBuf, Vec<String>), ExportError> {
    load_adapter_for(dir, base.llama.config(), &base.info.source)
}

/// [`load_adapter`] for a base model known by its config and its spec (`source`).
pub fn load_adapter_for(
    dir: &Path,
    config: &tierforge_model::Config,
    source: &str,
) -> Result<(Adapter, PathBuf, Vec<String>), ExportError> {
    let dir = resolve_adapter_dir(dir)?;
    let mut warnings = Vec::new();
    let state = dir.join(STATE_FILE);
    if state.is_file() {
        let text = std::fs::read_to_string(&state).map_err(|e| ExportError::Io {
            path: state.clone(),
            source: e,
        })?;
        #[derive(serde::Deserialize)]
        struct State {
            model: ModelFingerprint,
        }
        if let Ok(s) = serde_json::from_str::<State>(&text) {
            let ours = ModelFingerprint::new(s.model.name.clone(), config);
            let diffs = ours.differences(&s.model);
            if !diffs.is_empty() {
                return Err(ExportError::Adapter {
                    path: dir,
                    reason: format!(
                        "trained on another base model than {source}: {}",
                        diffs.join("; ")
                    ),
                });
            }
        }
    }
    let adapter = Adapter::load_for(&dir, config, &Device::Cpu).map_err(|e| {
        let reason = e.to_string();
        ExportError::Adapter {
            path: dir.clone(),
            reason: format!("does not fit base model {source}: {reason}"),
        }
    })?;
    if let Ok(text) = std::fs::read_to_string(dir.join(ADAPTER_CONFIG)) {
        if let Ok(cfg) = serde_json::from_str::<serde_json::Value>(&text) {
            if let Some(b) = cfg.get("base_model_name_or_path").and_then(|v| v.as_str()) {
                let name = |s: &str| {
                    Path::new(s)
                        .file_name()
                        .map(|n| n.to_string_lossy().into_owned())
                        .unwrap_or_else(|| s.to_string())
                };
                if name(b) != name(source) {
                    warnings.push(format!(
                        "the adapter was trained on {b:?}, exporting onto {source:?} (same shapes)"
                    ));
                }
            }
        }
    }
    Ok((adapter, dir, warnings))
}

/// What a tensor of the merged file is made from.
#[derive(Debug, Clone, Copy)]
enum Source {
    Embed,
    OutputNorm,
    AttnNorm(usize),
    FfnNorm(usize),
    Linear(usize, Proj),
    LmHead,
    /// Copied byte for byte from the base GGUF (e.g. `rope_freqs.weight`).
    Raw,
    /// Llama 3 rope scaling factors computed from a Hugging Face `config.json`.
    RopeFreqs,
}

/// Where the merged file's metadata, and the tensors the loaded model does not hold, come from.
enum Base {
    /// The base GGUF: carried over verbatim.
    Gguf(GgufFile),
    /// A Hugging Face folder: built as llama.cpp's converter builds it.
    Hf(HfGguf),
}

/// `llama-quantize`'s `use_more_bits`: the first and last eighth of the layers, and every
/// third in between, get more bits in the `_M` mixes.
fn use_more_bits(i: usize, n: usize) -> bool {
    i < n / 8 || i >= 7 * n / 8 || (i - n / 8) % 3 == 2
}

/// `llama-quantize`'s fallback for rows that are not a whole number of super-blocks.
fn fallback(t: GgmlDType, row: usize) -> GgmlDType {
    if row.is_multiple_of(t.block_size()) {
        return t;
    }
    let f = match t {
        GgmlDType::Q4K => GgmlDType::Q5_0,
        GgmlDType::Q5K => GgmlDType::Q5_1,
        GgmlDType::Q6K => GgmlDType::Q8_0,
        _ => GgmlDType::F16,
    };
    if row.is_multiple_of(f.block_size()) {
        f
    } else {
        GgmlDType::F16
    }
}

/// The ggml type of a 2-D tensor under `quant`, as `llama-quantize` chooses it.
/// `is_output`: `output.weight`, or `token_embd.weight` of a model with tied embeddings.
fn matrix_type(
    quant: Quant,
    src: Source,
    is_output: bool,
    n_layer: usize,
    row: usize,
) -> GgmlDType {
    let t = match quant {
        Quant::F16 => GgmlDType::F16,
        Quant::Q8_0 => GgmlDType::Q8_0,
        Quant::Q4_0 if is_output => GgmlDType::Q6K,
        Quant::Q4_0 => GgmlDType::Q4_0,
        Quant::Q4KM if is_output => GgmlDType::Q6K,
        Quant::Q4KM => match src {
            Source::Linear(l, Proj::VProj | Proj::DownProj) if use_more_bits(l, n_layer) => {
                GgmlDType::Q6K
            }
            _ => GgmlDType::Q4K,
        },
    };
    fallback(t, row)
}

/// A LoRA update `scale · B·A` as plain row-major vectors: B is `rows × rank`, A `rank × cols`.
struct Lora {
    b: Vec<f32>,
    a: Vec<f32>,
    rank: usize,
    scale: f32,
}

impl Lora {
    /// Adds the update's rows `r0 ..` to `v`, which holds those rows of the weight (`cols`
    /// values each).
    fn merge_rows(&self, v: &mut [f32], r0: usize, cols: usize) -> candle_core::Result<()> {
        let n = v.len() / cols.max(1);
        let b = self
            .b
            .get(r0 * self.rank..(r0 + n) * self.rank)
            .ok_or_else(|| {
                candle_core::Error::Msg(format!("LoRA B has no rows {r0}..{}", r0 + n))
            })?;
        tierforge_model::fused_lora::merge_low_rank(v, (n, cols, self.rank), b, &self.a, self.scale)
    }
}

/// The f32 values of a tensor and its matrix shape (see [`matrix_dims`]).
fn values_of(t: &Tensor) -> candle_core::Result<(Vec<f32>, (usize, usize))> {
    let v = t.to_dtype(DType::F32)?.flatten_all()?.to_vec1()?;
    Ok((v, matrix_dims(t.dims())))
}

/// `(rows, columns)` of a tensor of `dims` (a vector is one row).
fn matrix_dims(dims: &[usize]) -> (usize, usize) {
    match dims {
        [] => (1, 1),
        [n] => (1, *n),
        [rows, rest @ ..] => (*rows, rest.iter().product()),
    }
}

/// Rows handed to one task by [`encode_rows`].
const ROW_BLOCK: usize = 64;

/// The ggml bytes (`dtype`) of a `rows × cols` matrix whose f32 rows `r0 .. r0 + n` `rows_at`
/// makes, blocks of [`ROW_BLOCK`] rows in parallel (a big embedding table is not left to one
/// thread). ggml blocks run along rows, so the blocks encoded apart are the matrix's bytes.
fn encode_rows<F>(
    rows: usize,
    cols: usize,
    dtype: GgmlDType,
    rows_at: F,
) -> candle_core::Result<Vec<u8>>
where
    F: Fn(usize, usize) -> candle_core::Result<Vec<f32>> + Sync,
{
    use rayon::prelude::*;
    let row_bytes = (cols / dtype.block_size()) * dtype.type_size();
    let mut out = vec![0u8; rows * row_bytes];
    out.par_chunks_mut((ROW_BLOCK * row_bytes).max(1))
        .enumerate()
        .try_for_each(|(i, o)| -> candle_core::Result<()> {
            let r0 = i * ROW_BLOCK;
            let n = o.len() / row_bytes.max(1);
            let v = rows_at(r0, n)?;
            let q = QTensor::quantize(&Tensor::from_vec(v, (n, cols), &Device::Cpu)?, dtype)?;
            let data = q.data()?;
            if data.len() != o.len() {
                candle_core::bail!(
                    "{dtype:?} rows {r0}..{}: {} bytes, {} expected",
                    r0 + n,
                    data.len(),
                    o.len()
                );
            }
            o.copy_from_slice(&data);
            Ok(())
        })?;
    Ok(out)
}

/// [`gguf_row_order`] on an f32 matrix tensor.
fn permute_to_gguf(w: &Tensor, n_head: usize) -> candle_core::Result<Tensor> {
    let (rows, cols) = w.dims2()?;
    let v = w.flatten_all()?.to_vec1::<f32>()?;
    Tensor::from_vec(gguf_row_order(&v, cols, n_head), (rows, cols), w.device())
}

/// The rows of a q/k matrix (`cols` f32 values a row, Hugging Face's row order) in llama.cpp's.
fn gguf_row_order(v: &[f32], cols: usize, n_head: usize) -> Vec<f32> {
    let rows = v.len() / cols.max(1);
    let mut out = vec![0f32; v.len()];
    // Hugging Face row `r` is GGUF row `perm[r]`.
    for (r, &g) in unpermute_rows(rows, n_head).iter().enumerate() {
        out[g * cols..(g + 1) * cols].copy_from_slice(&v[r * cols..(r + 1) * cols]);
    }
    out
}

/// The base GGUF's metadata minus the keys the writer owns, in a stable order.
fn base_metadata(base: &GgufFile) -> Vec<(String, Value)> {
    let skip = [
        "general.alignment",
        "general.file_type",
        "general.quantization_version",
        "general.name",
        "general.version",
    ];
    let kv: Vec<(String, Value)> = base
        .metadata()
        .iter()
        .filter(|(k, _)| !skip.contains(&k.as_str()) && !k.starts_with("tierforge."))
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect();
    in_key_order(kv)
}

/// `general.architecture`, the other `general.*` keys, then the rest, each by name.
fn in_key_order(mut kv: Vec<(String, Value)>) -> Vec<(String, Value)> {
    kv.sort_by(|a, b| {
        let rank = |k: &str| match k {
            "general.architecture" => 0,
            k if k.starts_with("general.") => 1,
            _ => 2,
        };
        (rank(&a.0), &a.0).cmp(&(rank(&b.0), &b.0))
    });
    kv
}

/// Merge `adapter` (a PEFT folder, or a training output holding `best/` or `last/`; `None`
/// exports the base alone) into the model at `base` and write a complete GGUF v3 at `out`.
///
/// `base` is a GGUF file, whose metadata (tokenizer, chat template, ...) is carried over
/// verbatim, or a Hugging Face folder (or hub id), whose metadata is built from `config.json`,
/// `tokenizer.json` and `tokenizer_config.json` as llama.cpp's `convert_hf_to_gguf.py` builds
/// it. A byte-level tokenizer whose pre-tokenizer llama.cpp has no name for is refused.
pub fn export_gguf(
    base: &str,
    adapter: Option<&Path>,
    out: &Path,
    opts: &GgufOptions,
) -> Result<ExportReport, ExportError> {
    let t0 = Instant::now();
    // A GGUF base is streamed from its file, tensor by tensor: its tokenizer and weights are
    // never loaded (the metadata is carried over as it is).
    if Path::new(base).is_file() {
        if let Ok(g) = GgufFile::open(base) {
            let cfg = g
                .llama_config()?
                .into_config()
                .map_err(|reason| ExportError::Unsupported(format!("{base}: {reason}")))?;
            let (adapter, warnings) = match adapter {
                Some(dir) => {
                    let (a, _, w) = load_adapter_for(dir, &cfg, base)?;
                    (Some(a), w)
                }
                None => (None, Vec::new()),
            };
            let load_s = t0.elapsed().as_secs_f64();
            let mut report =
                export_from(Base::Gguf(g), &cfg, None, adapter.as_ref(), out, opts, base)?;
            report.load_s = load_s;
            report.warnings = warnings;
            return Ok(report);
        }
    }
    let model = load_base(base)?;
    let (adapter, warnings) = match adapter {
        Some(dir) => {
            let (a, _, w) = load_adapter(dir, &model)?;
            (Some(a), w)
        }
        None => (None, Vec::new()),
    };
    let load_s = t0.elapsed().as_secs_f64();
    let mut report = export_loaded(&model, adapter.as_ref(), out, opts)?;
    report.load_s = load_s;
    report.warnings = warnings;
    Ok(report)
}

/// [`export_gguf`] for an already loaded base (and adapter).
pub fn export_loaded(
    model: &LoadedModel,
    adapter: Option<&Adapter>,
    out: &Path,
    opts: &GgufOptions,
) -> Result<ExportReport, ExportError> {
    let base = match model.info.format {
        CheckpointFormat::Gguf => Base::Gguf(GgufFile::open(&model.info.path)?),
        CheckpointFormat::Safetensors => Base::Hf(hf_metadata::build(model)?),
    };
    let source = model.info.path.display().to_string();
    export_from(
        base,
        model.llama.config(),
        Some(&model.llama),
        adapter,
        out,
        opts,
        &source,
    )
}

/// The merged GGUF from `base`'s metadata and, for every tensor, the weights of `llama` or
/// (`None`) the base GGUF's own tensors, read one at a time.
fn export_from(
    base: Base,
    cfg: &tierforge_model::Config,
    llama: Option<&tierforge_model::Llama>,
    adapter: Option<&Adapter>,
    out: &Path,
    opts: &GgufOptions,
    source: &str,
) -> Result<ExportReport, ExportError> {
    let t0 = Instant::now();
    if llama.is_none() && !matches!(base, Base::Gguf(_)) {
        return Err(ExportError::Unsupported(format!(
            "{source}: only a GGUF base can be exported without loading it"
        )));
    }
    let cfg = cfg.clone();
    let n_layer = cfg.num_hidden_layers;
    let has_output = match &base {
        Base::Gguf(g) => g.has_tensor("output.weight"),
        Base::Hf(_) => !cfg.tie_word_embeddings,
    };
    // Only `rope_freqs.weight` is not in the loaded model: read raw from a GGUF base, computed
    // for a Hugging Face one.
    let rope_freqs: Option<Vec<u8>> = match &base {
        Base::Hf(h) => h
            .rope_freqs
            .as_ref()
            .map(|f| f.iter().flat_map(|x| x.to_le_bytes()).collect()),
        Base::Gguf(_) => None,
    };

    // The tensor plan: canonical llama.cpp order.
    let mut plan: Vec<(String, Source)> = vec![("token_embd.weight".into(), Source::Embed)];
    match &base {
        Base::Gguf(g) if g.has_tensor("rope_freqs.weight") => {
            plan.push(("rope_freqs.weight".into(), Source::Raw));
        }
        Base::Hf(h) if h.rope_freqs.is_some() => {
            plan.push(("rope_freqs.weight".into(), Source::RopeFreqs));
        }
        _ => {}
    }
    for l in 0..n_layer {
        plan.push((format!("blk.{l}.attn_norm.weight"), Source::AttnNorm(l)));
        for p in [Proj::QProj, Proj::KProj, Proj::VProj, Proj::OProj] {
            let hf = format!("{}.weight", p.path(l));
            plan.push((gguf_name(&hf).unwrap_or(hf), Source::Linear(l, p)));
        }
        plan.push((format!("blk.{l}.ffn_norm.weight"), Source::FfnNorm(l)));
        for p in [Proj::GateProj, Proj::UpProj, Proj::DownProj] {
            let hf = format!("{}.weight", p.path(l));
            plan.push((gguf_name(&hf).unwrap_or(hf), Source::Linear(l, p)));
        }
    }
    plan.push(("output_norm.weight".into(), Source::OutputNorm));
    if has_output {
        plan.push(("output.weight".into(), Source::LmHead));
    }
    // Every tensor of a GGUF base must be accounted for.
    let mut raw_info: BTreeMap<String, (Vec<usize>, GgmlDType)> = BTreeMap::new();
    if let Base::Gguf(g) = &base {
        let planned: std::collections::HashSet<&str> =
            plan.iter().map(|(n, _)| n.as_str()).collect();
        let base_tensors = g.tensors();
        if let Some(extra) = base_tensors.keys().find(|n| !planned.contains(*n)) {
            return Err(ExportError::Unsupported(format!(
                "{source}: tensor {extra} is not part of the llama layout tierforge exports"
            )));
        }
        raw_info = base_tensors
            .iter()
            .map(|(k, v)| (k.to_string(), v.clone()))
            .collect();
    }

    let (h, ff) = (cfg.hidden_size, cfg.intermediate_size);
    let q_out = cfg.num_attention_heads * cfg.head_dim;
    let kv_out = cfg.num_key_value_heads * cfg.head_dim;
    let mut entries = Vec::with_capacity(plan.len());
    for (name, src) in &plan {
        let shape = match *src {
            Source::Embed => vec![cfg.vocab_size, h],
            Source::LmHead => vec![cfg.vocab_size, h],
            Source::OutputNorm | Source::AttnNorm(_) | Source::FfnNorm(_) => vec![h],
            Source::Linear(_, p) => match p {
                Proj::QProj => vec![q_out, h],
                Proj::KProj | Proj::VProj => vec![kv_out, h],
                Proj::OProj => vec![h, q_out],
                Proj::GateProj | Proj::UpProj => vec![ff, h],
                Proj::DownProj => vec![h, ff],
            },
            Source::Raw => raw_info[name].0.clone(),
            Source::RopeFreqs => vec![cfg.head_dim / 2],
        };
        let dtype = match *src {
            Source::Raw => raw_info[name].1,
            Source::RopeFreqs | Source::OutputNorm | Source::AttnNorm(_) | Source::FfnNorm(_) => {
                GgmlDType::F32
            }
            Source::Embed => matrix_type(opts.quant, *src, !has_output, n_layer, h),
            Source::LmHead => matrix_type(opts.quant, *src, true, n_layer, h),
            Source::Linear(..) => matrix_type(opts.quant, *src, false, n_layer, shape[1]),
        };
        entries.push(TensorEntry {
            name: name.clone(),
            shape,
            dtype,
        });
    }

    // Metadata: the base's, plus ours.
    let (mut meta, base_name) = match &base {
        Base::Gguf(g) => (
            base_metadata(g),
            g.opt_str("general.name").ok().flatten().map(str::to_string),
        ),
        Base::Hf(h) => (in_key_order(h.metadata.clone()), Some(h.name.clone())),
    };
    let name = opts
        .name
        .clone()
        .or_else(|| opts.tier.as_ref().map(|t| format!("tierforge-{t}")))
        .or(base_name.clone())
        .unwrap_or_else(|| "tierforge".into());
    let pos = meta
        .iter()
        .position(|(k, _)| k != "general.architecture")
        .unwrap_or(meta.len());
    let mut ours = vec![
        ("general.name".to_string(), Value::String(name)),
        (
            "general.file_type".to_string(),
            Value::U32(opts.quant.file_type()),
        ),
        ("general.quantization_version".to_string(), Value::U32(2)),
    ];
    if let Some(v) = &opts.version {
        ours.push(("general.version".into(), Value::String(v.clone())));
    }
    meta.splice(pos..pos, ours);
    if let Some(b) = base_name {
        meta.push(("tierforge.base_model".into(), Value::String(b)));
    }
    if let Some(t) = &opts.tier {
        meta.push(("tierforge.tier".into(), Value::String(t.clone())));
    }
    if let Some(v) = &opts.version {
        meta.push(("tierforge.version".into(), Value::String(v.clone())));
    }
    if let Some(a) = adapter {
        meta.push((
            "tierforge.lora.rank".into(),
            Value::U32(a.shape.rank as u32),
        ));
        meta.push((
            "tierforge.lora.alpha".into(),
            Value::F32(a.shape.alpha as f32),
        ));
    }

    let scale = adapter.map(|a| a.shape.scale()).unwrap_or(0.0);
    let deltas: BTreeMap<(usize, usize), &tierforge_train::lora::LoraParam> = adapter
        .map(|a| {
            a.params
                .iter()
                .map(|p| ((p.layer, proj_index(p.proj)), p))
                .collect()
        })
        .unwrap_or_default();
    let merged = std::sync::atomic::AtomicUsize::new(0);
    let base_file = std::sync::Mutex::new(base);
    // The LoRA update of a projection, to be merged: B's rows in GGUF order when the base weight
    // comes straight from a GGUF (q/k rows are stored permuted there). Counted as merged here.
    let lora_of = |l: usize, p: Proj, gguf_rows: bool| -> candle_core::Result<Option<Lora>> {
        let Some(param) = deltas.get(&(l, proj_index(p))) else {
            return Ok(None);
        };
        let values = |t: Tensor| t.flatten_all().and_then(|t| t.to_vec1::<f32>());
        let b = values(param.b.as_detached_tensor())?;
        let a = values(param.a.as_detached_tensor())?;
        let rank = param.a.dims().first().copied().unwrap_or(0);
        let b = match (gguf_rows, p) {
            (true, Proj::QProj) => gguf_row_order(&b, rank, cfg.num_attention_heads),
            (true, Proj::KProj) => gguf_row_order(&b, rank, cfg.num_key_value_heads),
            _ => b,
        };
        merged.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        Ok(Some(Lora {
            b,
            a,
            rank,
            scale: scale as f32,
        }))
    };
    let raw_of = |name: &str| -> Result<(Vec<u8>, Vec<usize>, GgmlDType), String> {
        let mut base = base_file
            .lock()
            .map_err(|_| format!("tensor {name}: base file lock poisoned"))?;
        match &mut *base {
            Base::Gguf(g) => g.raw(name).map_err(|e| e.to_string()),
            Base::Hf(_) => Err(format!("tensor {name}: no GGUF base to read it from")),
        }
    };
    let produce = |i: usize| -> Result<Vec<u8>, String> {
        let (name, src) = &plan[i];
        let e = &entries[i];
        let err = |e: candle_core::Error| format!("tensor {name}: {e}");
        let llama_of = || llama.ok_or_else(|| format!("tensor {name}: no loaded model"));
        // The tensor's f32 values (GGUF row order, update merged) and its matrix shape.
        let (v, (rows, cols)): (Vec<f32>, (usize, usize)) = match *src {
            Source::Raw => return raw_of(name).map(|(bytes, _, _)| bytes),
            Source::RopeFreqs => {
                return rope_freqs
                    .clone()
                    .ok_or_else(|| format!("tensor {name}: no rope scaling to compute it from"))
            }
            _ if llama.is_none() => {
                let (raw, dims, dtype) = raw_of(name)?;
                let lora = match *src {
                    Source::Linear(l, p) => lora_of(l, p, true).map_err(err)?,
                    _ => None,
                };
                if lora.is_none() && dtype == e.dtype {
                    return Ok(raw);
                }
                // Row blocks in parallel: dequantize, merge, encode.
                let (rows, cols) = matrix_dims(&dims);
                let row_bytes = raw.len() / rows.max(1);
                return encode_rows(rows, cols, e.dtype, |r0, n| {
                    let chunk = &raw[r0 * row_bytes..(r0 + n) * row_bytes];
                    let q = candle_core::quantized::ggml_file::qtensor_from_ggml(
                        dtype,
                        chunk,
                        vec![n, cols],
                        &Device::Cpu,
                    )?;
                    let mut v = q.dequantize(&Device::Cpu)?.flatten_all()?.to_vec1()?;
                    if let Some(lora) = &lora {
                        lora.merge_rows(&mut v, r0, cols)?;
                    }
                    Ok(v)
                })
                .map_err(err);
            }
            Source::Embed => values_of(llama_of()?.embed_tokens()).map_err(err)?,
            Source::LmHead => {
                values_of(&llama_of()?.lm_head().dense_weight().map_err(err)?).map_err(err)?
            }
            Source::OutputNorm => values_of(llama_of()?.norm_weight()).map_err(err)?,
            Source::AttnNorm(l) | Source::FfnNorm(l) => {
                let (a, f) = llama_of()?
                    .layer_norms(l)
                    .ok_or_else(|| format!("tensor {name}: no layer {l}"))?;
                values_of(if matches!(src, Source::AttnNorm(_)) {
                    a
                } else {
                    f
                })
                .map_err(err)?
            }
            Source::Linear(l, p) => {
                let lin = llama_of()?
                    .linear(l, p)
                    .ok_or_else(|| format!("tensor {name}: no layer {l}"))?;
                // Plain vectors from here: the merge runs on this thread (the writer already
                // produces tensors in parallel) and the q/k rows are reordered in one copy.
                let (mut v, (rows, cols)) =
                    values_of(&lin.dense_weight().map_err(err)?).map_err(err)?;
                if let Some(lora) = lora_of(l, p, false).map_err(err)? {
                    lora.merge_rows(&mut v, 0, cols).map_err(err)?;
                }
                let v = match p {
                    Proj::QProj => gguf_row_order(&v, cols, cfg.num_attention_heads),
                    Proj::KProj => gguf_row_order(&v, cols, cfg.num_key_value_heads),
                    _ => v,
                };
                (v, (rows, cols))
            }
        };
        encode_rows(rows, cols, e.dtype, |r0, n| {
            Ok(v[r0 * cols..(r0 + n) * cols].to_vec())
        })
        .map_err(err)
    };
    let stats = write_gguf(out, &meta, &entries, produce)?;
    let mut tensor_types = BTreeMap::new();
    for e in &entries {
        *tensor_types.entry(format!("{:?}", e.dtype)).or_insert(0) += 1;
    }
    Ok(ExportReport {
        path: out.to_path_buf(),
        format: "gguf",
        quant: Some(opts.quant),
        bytes: stats.bytes,
        tensors: entries.len(),
        merged_tensors: merged.into_inner(),
        tensor_types,
        load_s: 0.0,
        write_s: t0.elapsed().as_secs_f64(),
        write_stats: Some(stats),
        warnings: Vec::new(),
    })
}

fn proj_index(p: Proj) -> usize {
    Proj::ALL.iter().position(|q| *q == p).unwrap_or(0)
}

fn write_err(e: tierforge_data::DataError) -> ExportError {
    match e {
        tierforge_data::DataError::Write { path, source } => ExportError::Io { path, source },
        other => ExportError::Unsupported(other.to_string()),
    }
}

/// Write `adapter` as a normalised PEFT folder in `out`: `adapter_model.safetensors` (f32,
/// PEFT's tensor names, `{"format": "pt"}` header metadata as `save_pretrained` writes it) and
/// `adapter_config.json` (`base_model` recorded as `base_model_name_or_path`). Atomic per file.
pub fn write_peft(
    adapter: &Adapter,
    base_model: &str,
    out: &Path,
) -> Result<ExportReport, ExportError> {
    let t0 = Instant::now();
    std::fs::create_dir_all(out).map_err(|e| ExportError::Io {
        path: out.to_path_buf(),
        source: e,
    })?;
    let tensors = adapter.tensors();
    let mut bufs: BTreeMap<String, (Vec<usize>, Vec<u8>)> = BTreeMap::new();
    for (name, t) in &tensors {
        let v: Vec<f32> = t.to_dtype(DType::F32)?.flatten_all()?.to_vec1()?;
        let bytes = v.iter().flat_map(|x| x.to_le_bytes()).collect();
        bufs.insert(name.clone(), (t.dims().to_vec(), bytes));
    }
    let views = bufs
        .iter()
        .map(|(n, (shape, data))| {
            safetensors::tensor::TensorView::new(safetensors::Dtype::F32, shape.clone(), data)
                .map(|v| (n.clone(), v))
        })
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| ExportError::Unsupported(format!("safetensors: {e}")))?;
    let meta = std::collections::HashMap::from([("format".to_string(), "pt".to_string())]);
    let bytes = safetensors::serialize(views, Some(meta))
        .map_err(|e| ExportError::Unsupported(format!("safetensors: {e}")))?;
    let wpath = out.join(ADAPTER_WEIGHTS);
    tierforge_data::write::write_atomic(&wpath, |w| w.write_all(&bytes)).map_err(write_err)?;
    let cfg = serde_json::to_string_pretty(&adapter.peft_config(base_model))
        .map_err(|e| ExportError::Unsupported(e.to_string()))?;
    tierforge_data::write::write_string(&out.join(ADAPTER_CONFIG), &cfg).map_err(write_err)?;
    Ok(ExportReport {
        path: out.to_path_buf(),
        format: "peft",
        quant: None,
        bytes: bytes.len() as u64 + cfg.len() as u64,
        tensors: tensors.len(),
        merged_tensors: 0,
        tensor_types: BTreeMap::from([("F32".to_string(), tensors.len())]),
        load_s: 0.0,
        write_s: t0.elapsed().as_secs_f64(),
        write_stats: None,
        warnings: Vec::new(),
    })
}

/// Write `adapter` as a llama.cpp LoRA GGUF (what `convert_lora_to_gguf.py` writes and
/// `llama-cli --lora` / `llama-server --lora` load): `general.type=adapter`,
/// `adapter.type=lora`, `adapter.lora.alpha` (f32; for rsLoRA the alpha that makes llama.cpp's
/// `alpha / rank` equal the trained scale), tensors `blk.N.attn_q.weight.lora_a` (`[r, in]`)
/// and `.lora_b` (`[out, r]`, q/k rows in llama.cpp's order), f32.
pub fn write_lora_gguf(
    adapter: &Adapter,
    model: &LoadedModel,
    name: Option<&str>,
    out: &Path,
) -> Result<ExportReport, ExportError> {
    let t0 = Instant::now();
    let cfg = model.llama.config();
    let alpha = adapter.shape.scale() * adapter.shape.rank as f64;
    let mut meta = vec![
        (
            "general.architecture".to_string(),
            Value::String("llama".into()),
        ),
        ("general.type".to_string(), Value::String("adapter".into())),
        (
            "general.name".to_string(),
            Value::String(name.unwrap_or("tierforge-lora").into()),
        ),
        ("adapter.type".to_string(), Value::String("lora".into())),
        ("adapter.lora.alpha".to_string(), Value::F32(alpha as f32)),
    ];
    meta.push((
        "tierforge.base_model".into(),
        Value::String(model.info.source.clone()),
    ));
    let mut entries = Vec::new();
    let mut tensors = Vec::new();
    for p in &adapter.params {
        let hf = format!("{}.weight", p.proj.path(p.layer));
        let g = gguf_name(&hf)
            .ok_or_else(|| ExportError::Unsupported(format!("no GGUF name for {hf}")))?;
        let a = p.a.as_detached_tensor();
        let b = p.b.as_detached_tensor();
        let b = match p.proj {
            Proj::QProj => permute_to_gguf(&b, cfg.num_attention_heads)?,
            Proj::KProj => permute_to_gguf(&b, cfg.num_key_value_heads)?,
            _ => b,
        };
        for (suffix, t) in [("lora_a", a), ("lora_b", b)] {
            entries.push(TensorEntry {
                name: format!("{g}.{suffix}"),
                shape: t.dims().to_vec(),
                dtype: GgmlDType::F32,
            });
            tensors.push(t);
        }
    }
    let stats = write_gguf(out, &meta, &entries, |i| {
        let v: Vec<f32> = tensors[i]
            .to_dtype(DType::F32)
            .and_then(|t| t.flatten_all())
            .and_then(|t| t.to_vec1())
            .map_err(|e| format!("tensor {}: {e}", entries[i].name))?;
        Ok(v.iter().flat_map(|x| x.to_le_bytes()).collect())
    })?;
    Ok(ExportReport {
        path: out.to_path_buf(),
        format: "lora-gguf",
        quant: None,
        bytes: stats.bytes,
        tensors: entries.len(),
        merged_tensors: 0,
        tensor_types: BTreeMap::from([("F32".to_string(), entries.len())]),
        load_s: 0.0,
        write_s: t0.elapsed().as_secs_f64(),
        write_stats: Some(stats),
        warnings: Vec::new(),
    })
}

/// Which artefact [`export`] writes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Format {
    /// Base + adapter merged into one GGUF.
    Gguf,
    /// The adapter as a normalised PEFT folder.
    Peft,
    /// The adapter as a llama.cpp LoRA GGUF.
    LoraGguf,
}

impl std::str::FromStr for Format {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "gguf" => Ok(Format::Gguf),
            "peft" => Ok(Format::Peft),
            "lora-gguf" => Ok(Format::LoraGguf),
            _ => Err(format!("unknown format {s:?} (gguf, peft, lora-gguf)")),
        }
    }
}

/// `tierforge export`: load `base` and the adapter in `adapter` (checked against it), then
/// write `format` at `out` (a file for the GGUF formats, a folder for PEFT).
pub fn export(
    base: &str,
    adapter: &Path,
    format: Format,
    out: &Path,
    opts: &GgufOptions,
) -> Result<ExportReport, ExportError> {
    if format == Format::Gguf {
        return export_gguf(base, Some(adapter), out, opts);
    }
    let t0 = Instant::now();
    let model = load_base(base)?;
    let (ad, dir, warnings) = load_adapter(adapter, &model)?;
    let load_s = t0.elapsed().as_secs_f64();
    let mut rep = match format {
        Format::Peft => {
            let base_name = std::fs::read_to_string(dir.join(ADAPTER_CONFIG))
                .ok()
                .and_then(|t| serde_json::from_str::<serde_json::Value>(&t).ok())
                .and_then(|v| v.get("base_model_name_or_path")?.as_str().map(String::from))
                .unwrap_or_else(|| base.to_string());
            write_peft(&ad, &base_name, out)?
        }
        _ => write_lora_gguf(&ad, &model, opts.name.as_deref(), out)?,
    };
    rep.load_s = load_s;
    rep.warnings = warnings;
    Ok(rep)
}
