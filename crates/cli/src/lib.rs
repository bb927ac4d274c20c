//! The `tierforge` command line: parses arguments, calls one library entry point per command,
//! and prints. Exit codes: 0 success, 1 bad input or a failed gate, 2 unexpected error.

use clap::{Parser, Subcommand};
use std::ffi::OsString;
use std::process::ExitCode;

pub mod commands;
pub mod table;

/// Turn your own product-content data into fine-tuned local models, and ship them to Ollama.
#[derive(Debug, Parser)]
#[command(name = "tierforge", version, about, long_about = None)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Commands,
}

// Parsed once per process; boxing the larger argument structs would only add noise.
#[allow(clippy::large_enum_variant)]
#[derive(Debug, Subcommand)]
pub enum Commands {
    /// Validate, score, filter, deduplicate, split, augment and export samples.
    Data(commands::data::DataArgs),
    /// Inspect a model or convert a GGUF to a Hugging Face folder.
    Model(commands::model::ModelArgs),
    /// Generate text with a model: one prompt, or listings for a JSONL file of products.
    Generate(commands::generate::GenerateArgs),
    /// Fine-tune a LoRA adapter on chat samples (PEFT format, resumable checkpoints).
    Train(commands::train::TrainArgs),
    /// Evaluate the base model and the tiers on held-out products; paired comparison, report.
    Eval(commands::eval::EvalArgs),
    /// Ingest user feedback into the store; daily success rates per tier.
    Feedback(commands::feedback::FeedbackArgs),
    /// Retrain tiers whose feedback dropped; promote a candidate only when it is better.
    Loop(commands::loop_cmd::LoopArgs),
    /// Merge an adapter into its base model as a GGUF, or write it as PEFT / LoRA GGUF.
    Export(commands::export::ExportArgs),
    /// Build a tier model (merged GGUF + Modelfile), register it, and create it in Ollama.
    Deploy(commands::deploy::DeployArgs),
    /// Registered tier versions: list, show, promote (after a health check), roll back.
    Models(commands::models::ModelsArgs),
    /// The whole progression: data → basic → advanced → expert → GGUF + Modelfiles → evaluation → report.
    Pipeline(commands::pipeline::PipelineArgs),
}

/// What a command reports back to `main`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ExitStatus {
    /// Everything worked.
    Success,
    /// The input had problems or a gate failed (details were printed).
    Failure,
}

/// Runs the CLI with the given arguments (the first one is the program name).
pub fn main<I: IntoIterator<Item = OsString>>(args: I) -> ExitCode {
    let cli = match Cli::try_parse_from(args) {
        Ok(c) => c,
        Err(e) => {
            let _ = e.print();
            return match e.kind() {
                clap::error::ErrorKind::DisplayHelp | clap::error::ErrorKind::DisplayVersion => {
                    ExitCode::SUCCESS
                }
                _ => ExitCode::from(2),
            };
        }
    };
    let result = match &cli.command {
        Commands::Data(a) => commands::data::run(a),
        Commands::Model(a) => commands::model::run(a),
        Commands::Generate(a) => commands::generate::run(a),
        Commands::Train(a) => commands::train::run(a),
        Commands::Eval(a) => commands::eval::run(a),
        Commands::Feedback(a) => commands::feedback::run(a),
        Commands::Loop(a) => commands::loop_cmd::run(a),
        Commands::Pipeline(a) => commands::pipeline::run(a),
        Commands::Export(a) => commands::export::run(a),
        Commands::Deploy(a) => commands::deploy::run(a),
        Commands::Models(a) => commands::models::run(a),
    };
    match result {
        Ok(ExitStatus::Success) => ExitCode::SUCCESS,
        Ok(ExitStatus::Failure) => ExitCode::from(1),
        Err(e) => {
            eprintln!("error: {}", error_message(&e));
            for hint in commands::hints(&e) {
                eprintln!("hint: {hint}");
            }
            ExitCode::from(2)
        }
    }
}

/// An error and its causes, joined by ": " as `{:#}` joins them, without a cause that its
/// error's own message already ends with (a library error that says "Failed to read x: No such
/// file or directory" and also gives the I/O error as its source).
fn error_message(e: &anyhow::Error) -> String {
    let mut message = String::new();
    let mut previous = String::new();
    for cause in e.chain() {
        let text = cause.to_string();
        if !previous.ends_with(&text) {
            if !message.is_empty() {
                message.push_str(": ");
            }
            message.push_str(&text);
        }
        previous = text;
    }
    message
}

#[cfg(test)]
mod error_tests {
    #[test]
    fn a_cause_the_message_already_ends_with_is_said_once() {
        let io = std::io::Error::new(std::io::ErrorKind::NotFound, "not there");
        let e = anyhow::Error::new(tierforge_data::error::DataError::Io {
            path: "x.jsonl".into(),
            source: io,
        })
        .context("Failed to read the samples");
        assert_eq!(
            super::error_message(&e),
            "Failed to read the samples: Failed to read x.jsonl: not there"
        );
        let plain = anyhow::anyhow!("inner").context("outer");
        assert_eq!(super::error_message(&plain), format!("{plain:#}"));
    }
}
