//! `tierforge export`: merge an adapter into its base model (GGUF), or write the adapter alone
//! (PEFT folder, llama.cpp LoRA GGUF). Argument plumbing and printing only; the work is in
//! `tierforge_deploy::export`.

use std::path::PathBuf;

use anyhow::Result;
use clap::{Args, ValueEnum};
use tierforge_deploy::export::{self, ExportError, ExportReport, Format, GgufOptions, Quant};

use crate::ExitStatus;

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum FormatArg {
    /// Base + adapter merged into one complete GGUF (what Ollama runs).
    Gguf,
    /// The adapter as a PEFT folder (adapter_model.safetensors + adapter_config.json).
    Peft,
    /// The adapter as a llama.cpp LoRA GGUF (`--lora`).
    LoraGguf,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum QuantArg {
    F16,
    #[value(name = "q8_0")]
    Q8_0,
    #[value(name = "q4_0")]
    Q4_0,
    #[value(name = "q4_k_m")]
    Q4KM,
}

impl QuantArg {
    pub fn quant(self) -> Quant {
        match self {
            QuantArg::F16 => Quant::F16,
            QuantArg::Q8_0 => Quant::Q8_0,
            QuantArg::Q4_0 => Quant::Q4_0,
            QuantArg::Q4KM => Quant::Q4KM,
        }
    }
}

#[derive(Debug, Args)]
pub struct ExportArgs {
    /// Base model the adapter was trained on: a GGUF file, an HF folder or a hub id.
    #[arg(long, value_name = "BASE")]
    pub model: String,
    /// The adapter: a PEFT folder, or a `tierforge train` output folder (uses best/ or last/).
    #[arg(long, value_name = "DIR")]
    pub adapter: PathBuf,
    /// What to write.
    #[arg(long, value_enum, default_value_t = FormatArg::Gguf)]
    pub format: FormatArg,
    /// Quantization of the merged GGUF's matrices (gguf format only).
    #[arg(long, value_enum, default_value_t = QuantArg::Q8_0)]
    pub quant: QuantArg,
    /// Output: a .gguf file (gguf, lora-gguf) or a folder (peft).
    #[arg(short = 'o', long = "out", value_name = "OUT")]
    pub out: PathBuf,
    /// `general.name` of the written GGUF.
    #[arg(long)]
    pub name: Option<String>,
    /// Tier recorded in the GGUF metadata (`tierforge.tier`).
    #[arg(long)]
    pub tier: Option<String>,
    /// Version recorded in the GGUF metadata (`general.version`).
    #[arg(long)]
    pub version: Option<String>,
    /// Print the report as JSON.
    #[arg(long)]
    pub json: bool,
}

/// Print an export error: a problem with the user's input is exit code 1, anything else 2.
pub fn input_error(e: ExportError) -> Result<ExitStatus> {
    match e {
        ExportError::Candle(_) => Err(e.into()),
        other => {
            eprintln!("error: {other}");
            Ok(ExitStatus::Failure)
        }
    }
}

pub fn run(args: &ExportArgs) -> Result<ExitStatus> {
    let format = match args.format {
        FormatArg::Gguf => Format::Gguf,
        FormatArg::Peft => Format::Peft,
        FormatArg::LoraGguf => Format::LoraGguf,
    };
    let opts = GgufOptions {
        quant: args.quant.quant(),
        name: args.name.clone(),
        tier: args.tier.clone(),
        version: args.version.clone(),
    };
    let rep = match export::export(&args.model, &args.adapter, format, &args.out, &opts) {
        Ok(r) => r,
        Err(e) => return input_error(e),
    };
    print_report(&rep, args.json)?;
    Ok(ExitStatus::Success)
}

pub fn print_report(rep: &ExportReport, json: bool) -> Result<()> {
    if json {
        println!("{}", serde_json::to_string_pretty(rep)?);
        return Ok(());
    }
    for w in &rep.warnings {
        eprintln!("warning: {w}");
    }
    let types: Vec<String> = rep
        .tensor_types
        .iter()
        .map(|(t, n)| format!("{t}×{n}"))
        .collect();
    println!("wrote     {} ({})", rep.path.display(), rep.format);
    if let Some(q) = rep.quant {
        println!("quant     {q}");
    }
    println!(
        "size      {:.1} MiB, {} tensors ({})",
        rep.bytes as f64 / (1024.0 * 1024.0),
        rep.tensors,
        types.join(", ")
    );
    if rep.merged_tensors > 0 {
        println!("merged    {} adapted matrices", rep.merged_tensors);
    }
    println!(
        "time      load {:.1}s, write {:.1}s",
        rep.load_s, rep.write_s
    );
    Ok(())
}
