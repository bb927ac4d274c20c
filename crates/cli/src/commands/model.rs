//! `tierforge model ...`: inspect and convert models. Argument plumbing and printing only; the
//! work is in `tierforge-model`.

use std::path::PathBuf;
use std::time::Instant;

use anyhow::{Context, Result};
use clap::{Args, Subcommand, ValueEnum};

use crate::ExitStatus;

#[derive(Debug, Args)]
pub struct ModelArgs {
    #[command(subcommand)]
    pub command: ModelCommand,
}

/// Element type of converted weights.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum DTypeArg {
    F32,
    Bf16,
    F16,
}

impl DTypeArg {
    fn dtype(self) -> tierforge_model::DType {
        match self {
            DTypeArg::F32 => tierforge_model::DType::F32,
            DTypeArg::Bf16 => tierforge_model::DType::BF16,
            DTypeArg::F16 => tierforge_model::DType::F16,
        }
    }
}

#[derive(Debug, Subcommand)]
pub enum ModelCommand {
    /// Print architecture, size, vocabulary, context length, template and special tokens.
    Info {
        /// A GGUF file, a Hugging Face folder, or a hub id `org/name[@revision]`.
        model: String,
        /// Print the information as JSON.
        #[arg(long)]
        json: bool,
    },
    /// Write a Hugging Face folder (safetensors, config, tokenizer, chat template) from a model.
    Convert {
        /// The model to convert: a GGUF file (or any spec `model info` accepts).
        #[arg(long = "from", value_name = "MODEL")]
        from: String,
        /// Output folder; created if missing.
        #[arg(long = "to", value_name = "DIR")]
        to: PathBuf,
        /// Element type of the written weights (f32 keeps dequantized GGUF weights exact).
        #[arg(long, value_enum, default_value_t = DTypeArg::F32)]
        dtype: DTypeArg,
    },
}

/// The top-level entry point for `tierforge model`.
pub fn run(args: &ModelArgs) -> Result<ExitStatus> {
    match &args.command {
        ModelCommand::Info { model, json } => info(model, *json),
        ModelCommand::Convert { from, to, dtype } => convert(from, to, *dtype),
    }
}

fn info(model: &str, json: bool) -> Result<ExitStatus> {
    let info = tierforge_model::inspect(model, &tierforge_model::LoadOptions::default())
        .with_context(|| format!("Failed to read model {model}"))?;
    if json {
        println!("{}", serde_json::to_string_pretty(&info)?);
        return Ok(ExitStatus::Success);
    }
    let tok = |t: &Option<tierforge_model::SpecialToken>| {
        t.as_ref()
            .map_or_else(|| "-".to_string(), |t| format!("{} ({})", t.content, t.id))
    };
    println!("model           {}", info.path.display());
    println!("format          {:?}", info.format);
    println!("architecture    {}", info.architecture);
    println!(
        "parameters      {} ({:.1}M)",
        info.parameters,
        info.parameters as f64 / 1e6
    );
    println!("quantization    {}", info.quantization);
    println!(
        "layers          {} (hidden {}, ffn {}, heads {}, kv heads {}, head dim {})",
        info.layers,
        info.hidden_size,
        info.intermediate_size,
        info.attention_heads,
        info.kv_heads,
        info.head_dim
    );
    println!("context length  {} tokens", info.context_length);
    println!("rope theta      {}", info.rope_theta);
    println!("rope scaling    {}", rope_scaling(&info));
    println!("rms eps         {}", info.rms_norm_eps);
    println!("vocabulary      {} ({:?})", info.vocab_size, info.tokenizer);
    println!(
        "bos / eos       {} / {}",
        tok(&info.special_tokens.bos),
        tok(&info.special_tokens.eos)
    );
    println!("end of turn     {}", tok(&info.special_tokens.end_of_turn));
    println!("control tokens  {}", info.special_tokens.control.len());
    match &info.chat_template {
        Some(t) => println!("chat template\n{}", t),
        None => println!("chat template   none"),
    }
    Ok(ExitStatus::Success)
}

/// The `rope scaling` line: llama3 parameters (config.json's, or those a GGUF's
/// `rope_freqs.weight` matches) and, for a GGUF, the factors rope actually uses.
fn rope_scaling(info: &tierforge_model::ModelInfo) -> String {
    let llama3 = info.rope_scaling.as_ref().map(|s| {
        format!(
            "llama3 (factor {}, low/high frequency factors {}/{}, original context {} tokens)",
            s.factor, s.low_freq_factor, s.high_freq_factor, s.original_max_position_embeddings
        )
    });
    let factors = info.rope_freq_factors.as_ref().map(|f| {
        let min = f.iter().copied().fold(f32::INFINITY, f32::min);
        let max = f.iter().copied().fold(f32::NEG_INFINITY, f32::max);
        format!("rope_freqs.weight ({} factors, {min} to {max})", f.len())
    });
    match (llama3, factors) {
        (Some(l), Some(f)) => format!("{l} from {f}"),
        (Some(l), None) => l,
        (None, Some(f)) => f,
        (None, None) => "none".into(),
    }
}

fn convert(from: &str, to: &std::path::Path, dtype: DTypeArg) -> Result<ExitStatus> {
    let t0 = Instant::now();
    let model = tierforge_model::load(from, &tierforge_model::LoadOptions::default())
        .with_context(|| format!("Failed to load model {from}"))?;
    let report = tierforge_model::hf::convert(&model, to, dtype.dtype())
        .with_context(|| format!("Failed to write {}", to.display()))?;
    println!("{}", report.dir.display());
    eprintln!(
        "wrote {} tensors, {} files, {:.1} MB in {:.1}s to {}",
        report.tensors,
        report.files.len(),
        report.bytes as f64 / 1e6,
        t0.elapsed().as_secs_f64(),
        report.dir.display()
    );
    Ok(ExitStatus::Success)
}
