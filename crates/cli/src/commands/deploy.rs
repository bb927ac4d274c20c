//! `tierforge deploy`: build a tier bundle (merged GGUF, Modelfile, README), register it, and
//! with `OLLAMA_HOST` create it in Ollama. The work is in `tierforge_deploy::bundle`.

use std::path::PathBuf;

use anyhow::Result;
use clap::Args;
use tierforge_data::completion::Tier;
use tierforge_deploy::bundle::{self, BundleError, TierBuild};

use crate::commands::export::QuantArg;
use crate::ExitStatus;

#[derive(Debug, Args)]
pub struct DeployArgs {
    /// The tier: basic, advanced or expert.
    #[arg(long)]
    pub tier: Tier,
    /// The trained adapter (PEFT folder, or a `tierforge train` output folder).
    #[arg(long, value_name = "DIR")]
    pub adapter: PathBuf,
    /// The base model the adapter was trained on (GGUF).
    #[arg(
        long,
        value_name = "BASE",
        default_value = "models/SmolLM2-135M-Instruct.Q4_1.gguf"
    )]
    pub model: String,
    /// Quantization of the merged GGUF.
    #[arg(long, value_enum, default_value_t = QuantArg::Q8_0)]
    pub quant: QuantArg,
    /// Version `MAJOR.MINOR.PATCH`; default: the registry's next one.
    #[arg(long)]
    pub version: Option<String>,
    /// Where bundles go (`OUT/<tier>-<version>/`).
    #[arg(long = "out", value_name = "DIR", default_value = "runs/deploy")]
    pub out: PathBuf,
    /// The registry database.
    #[arg(long, value_name = "PATH", default_value = "runs/registry.db")]
    pub registry: PathBuf,
    /// A file with the SYSTEM prompt (default: modelfiles/system/<tier>.txt).
    #[arg(long, value_name = "FILE")]
    pub system: Option<PathBuf>,
    /// Sampling temperature written to the Modelfile.
    #[arg(long, default_value_t = bundle::DEFAULT_TEMPERATURE)]
    pub temperature: f64,
    /// Context window written to the Modelfile (in tokens; capped at the model's).
    #[arg(long, default_value_t = bundle::DEFAULT_NUM_CTX)]
    pub num_ctx: usize,
    /// Do not push even when OLLAMA_HOST is set.
    #[arg(long)]
    pub no_push: bool,
    /// Print the result as JSON.
    #[arg(long)]
    pub json: bool,
}

pub fn run(args: &DeployArgs) -> Result<ExitStatus> {
    let system = match &args.system {
        Some(p) => match std::fs::read_to_string(p) {
            Ok(t) => Some(t.trim_end().to_string()),
            Err(e) => {
                eprintln!("error: {}: {e}", p.display());
                return Ok(ExitStatus::Failure);
            }
        },
        None => None,
    };
    let mut b = TierBuild::new(args.tier, &args.model, &args.adapter, &args.out);
    b.quant = args.quant.quant();
    b.version = args.version.clone();
    b.system_prompt = system;
    b.registry = Some(args.registry.clone());
    b.ollama_host = if args.no_push {
        None
    } else {
        tierforge_deploy::ollama::host_from_env()
    };
    b.temperature = args.temperature;
    b.num_ctx = args.num_ctx;
    let json = args.json;
    let res = bundle::build_tier(&b, &mut |line| {
        if !json {
            eprintln!("{line}");
        }
    });
    let out = match res {
        Ok(o) => o,
        Err(BundleError::Export(e)) => return crate::commands::export::input_error(e),
        Err(e @ (BundleError::Registry(_) | BundleError::Template(_) | BundleError::Ollama(_))) => {
            eprintln!("error: {e}");
            return Ok(ExitStatus::Failure);
        }
        Err(e) => return Err(e.into()),
    };
    if json {
        println!("{}", serde_json::to_string_pretty(&out)?);
        return Ok(ExitStatus::Success);
    }
    for w in &out.export.warnings {
        eprintln!("warning: {w}");
    }
    println!("model      {}", out.name);
    println!(
        "gguf       {} ({:.1} MiB, {})",
        out.gguf.display(),
        out.gguf_bytes as f64 / (1024.0 * 1024.0),
        out.sha256
    );
    println!("modelfile  {}", out.modelfile.display());
    println!(
        "status     {}",
        if out.pushed {
            "created in Ollama"
        } else {
            "built, not pushed (set OLLAMA_HOST to push)"
        }
    );
    println!("create     {}", out.ollama_create);
    Ok(ExitStatus::Success)
}
