//! `tierforge eval`: evaluate the base model and the tiers on held-out products, compare them
//! pairwise and write a report. Argument plumbing, progress and printing only; the work is in
//! `tierforge-eval`.

use std::path::{Path, PathBuf};
use std::time::Instant;

use anyhow::{bail, Context, Result};
use clap::{Args, ValueEnum};
use indicatif::{ProgressBar, ProgressStyle};

use tierforge_data::completion::Tier;
use tierforge_eval::evaluate::{Backend, EvalReporter, ModelResult, OutputFormat, Weights};
use tierforge_eval::report::{read_loss_curve, LossCurve};
use tierforge_eval::{CompareOptions, EvalOptions, ModelUnderTest};

use crate::commands::train::DeviceArg;
use crate::table::{pct, render};
use crate::ExitStatus;

/// `--backend` values.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum BackendArg {
    /// In-process, batched, with candle.
    Candle,
    /// Through Ollama's chat API (`OLLAMA_HOST`), models `tierforge-<tier>:latest`.
    Ollama,
}

/// `--format` values.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum FormatArg {
    /// Only JSON of the listing's schema can be generated, as with Ollama's structured outputs
    /// (`format`; `tierforge data schema` prints it); what the fields say is the model's.
    Schema,
    /// Only JSON of the listing's keys and types, with no length bound.
    Shape,
    /// Free text, as `ollama run` without `--format`.
    Free,
}

impl From<FormatArg> for OutputFormat {
    fn from(f: FormatArg) -> Self {
        match f {
            FormatArg::Schema => OutputFormat::Schema,
            FormatArg::Shape => OutputFormat::Shape,
            FormatArg::Free => OutputFormat::Free,
        }
    }
}

#[derive(Debug, Args)]
pub struct EvalArgs {
    /// Labels of the models to evaluate, in order: `base` and tier names (compared in turn).
    #[arg(
        long,
        value_delimiter = ',',
        default_value = "base,basic,advanced,expert"
    )]
    pub models: Vec<String>,
    /// The base model: a GGUF file, a Hugging Face folder or `org/name[@revision]`.
    #[arg(
        long,
        value_name = "MODEL",
        default_value = "models/SmolLM2-135M-Instruct.Q4_1.gguf"
    )]
    pub model: String,
    /// Adapter folders (PEFT) per label, `basic=DIR,advanced=DIR`.
    #[arg(long, value_delimiter = ',', value_name = "LABEL=DIR")]
    pub adapters: Vec<String>,
    /// A pipeline or training output folder: adapters from `DIR/train/<tier>/{best,last}`.
    #[arg(long, value_name = "DIR")]
    pub run: Option<PathBuf>,
    /// Held-out products, JSON Lines (`{"id", "input": {...}}` or bare products).
    #[arg(long, value_name = "FILE", default_value = "data/eval-products.jsonl")]
    pub products: PathBuf,
    /// Where generation runs.
    #[arg(long, value_enum, default_value_t = BackendArg::Candle)]
    pub backend: BackendArg,
    /// Ollama to use (`host[:port]` or URL); default `OLLAMA_HOST`.
    #[arg(long, value_name = "URL")]
    pub ollama_url: Option<String>,
    /// Evaluate only the first N products.
    #[arg(long, value_name = "N")]
    pub limit: Option<usize>,
    /// Maximum generated tokens per product, in tokens.
    #[arg(long, default_value_t = 400)]
    pub max_tokens: usize,
    /// Repetition penalty over the last `--repeat-last-n` tokens (1.0: none); the default is
    /// the one every tier's Modelfile sets, so scores describe what `ollama run` does.
    #[arg(long, default_value_t = tierforge_deploy::modelfile::REPEAT_PENALTY as f32)]
    pub repeat_penalty: f32,
    /// Tokens the repetition penalty looks back over; the default is every tier's Modelfile's.
    #[arg(long, default_value_t = tierforge_deploy::modelfile::REPEAT_LAST_N)]
    pub repeat_last_n: usize,
    /// Sampling temperature (0: greedy). The default is every tier's Modelfile's, and answers
    /// are sampled with `--seed`, so scores describe what `ollama run` does and repeat exactly.
    #[arg(long, default_value_t = tierforge_deploy::modelfile::TEMPERATURE)]
    pub temperature: f64,
    /// Keep the K most likely tokens when sampling (0: all); the default is Ollama's.
    #[arg(long, default_value_t = tierforge_deploy::modelfile::TOP_K)]
    pub top_k: usize,
    /// Keep the most likely tokens up to this probability mass when sampling (1: all); the
    /// default is Ollama's.
    #[arg(long, default_value_t = tierforge_deploy::modelfile::TOP_P)]
    pub top_p: f64,
    /// How answers are decoded: constrained to the listing's JSON schema, or free text.
    #[arg(long, value_enum, default_value_t = FormatArg::Schema)]
    pub format: FormatArg,
    /// Products generated together (candle), in prompts.
    #[arg(long, default_value_t = 16)]
    pub batch_size: usize,
    /// Keep GGUF weights quantized, multiplied as llama.cpp does (less memory; faster decoding
    /// than dense f32 on a CPU). An adapter is merged into dense layers.
    #[arg(long)]
    pub quantized: bool,
    /// Where to generate (candle); cuda needs a build with `--features cuda`.
    #[arg(long, value_enum, default_value_t = DeviceArg::Cpu)]
    pub device: DeviceArg,
    /// Tier whose system prompt the base model gets.
    #[arg(long, value_parser = parse_tier, default_value = "expert")]
    pub base_tier: Tier,
    /// Confidence of "B is better than A" (two-sided bootstrap interval), in (0, 1).
    #[arg(long, default_value_t = 0.95)]
    pub confidence: f64,
    /// Seed of generation and of the bootstrap.
    #[arg(long, default_value_t = 0)]
    pub seed: u64,
    /// Write `eval.json` and `report.html` into this folder.
    #[arg(long, value_name = "DIR")]
    pub report: Option<PathBuf>,
    /// Registry (SQLite) to store each tier's results in, next to `--versions`.
    #[arg(long, value_name = "FILE", requires = "versions")]
    pub registry: Option<PathBuf>,
    /// Registry versions per label, `basic=1.0.0,expert=1.2.0`.
    #[arg(long, value_delimiter = ',', value_name = "LABEL=VERSION")]
    pub versions: Vec<String>,
    /// Print the whole evaluation as JSON.
    #[arg(long)]
    pub json: bool,
    /// No progress bar.
    #[arg(long, short)]
    pub quiet: bool,
}

fn parse_tier(s: &str) -> Result<Tier, String> {
    s.parse()
}

/// `label=value` pairs.
fn pairs(items: &[String], what: &str) -> Result<Vec<(String, String)>> {
    items
        .iter()
        .map(|s| {
            let (k, v) = s
                .split_once('=')
                .with_context(|| format!("--{what} {s:?}: expected LABEL=VALUE"))?;
            if k.trim().is_empty() || v.trim().is_empty() {
                bail!("--{what} {s:?}: expected LABEL=VALUE");
            }
            Ok((k.trim().to_owned(), v.trim().to_owned()))
        })
        .collect()
}

/// The adapter of `tier` in a pipeline/training output folder.
fn adapter_in_run(run: &Path, label: &str) -> Option<PathBuf> {
    let cfg = tierforge_train::lora::ADAPTER_CONFIG;
    [
        run.join("train").join(label),
        run.join(format!("train-{label}")),
        run.join(label),
    ]
    .into_iter()
    .flat_map(|d| [d.join("best"), d.join("last"), d])
    .find(|d| d.join(cfg).is_file())
}

/// Where a label's `metrics.jsonl` sits, if the adapter came from a training folder.
fn metrics_for(adapter: &Path) -> Option<PathBuf> {
    [adapter.join("metrics.jsonl")]
        .into_iter()
        .chain(adapter.parent().map(|p| p.join("metrics.jsonl")))
        .find(|p| p.is_file())
}

/// Turns the arguments into models and options (every cross-flag rule lives here).
pub fn resolve(args: &EvalArgs) -> Result<(Vec<ModelUnderTest>, EvalOptions)> {
    let adapters = pairs(&args.adapters, "adapters")?;
    if args.models.is_empty() {
        bail!("--models: give at least one label");
    }
    for (k, _) in &adapters {
        if !args.models.contains(k) {
            bail!("--adapters {k}=...: {k} is not one of --models");
        }
    }
    let mut models = Vec::new();
    for label in &args.models {
        let tier = match label.parse::<Tier>() {
            Ok(t) => t,
            Err(_) if label == "base" => args.base_tier,
            Err(_) => {
                // Any other label needs an adapter and gets the expert prompt.
                Tier::Expert
            }
        };
        let adapter = match adapters.iter().find(|(k, _)| k == label) {
            Some((_, d)) => Some(PathBuf::from(d)),
            None => args.run.as_deref().and_then(|r| adapter_in_run(r, label)),
        };
        if adapter.is_none() && label != "base" && args.backend == BackendArg::Candle {
            match &args.run {
                Some(r) => bail!(
                    "no adapter for {label} in {} (looked in train/{label}/best, train/{label}/last, train-{label}/, {label}/); pass --adapters {label}=DIR",
                    r.display()
                ),
                None => bail!(
                    "no adapter for {label}: pass --adapters {label}=DIR or --run DIR, or leave {label} out of --models"
                ),
            }
        }
        if let Some(a) = &adapter {
            if !a.join(tierforge_train::lora::ADAPTER_CONFIG).is_file() {
                bail!(
                    "--adapters {label}={}: no {} there (a PEFT adapter folder, e.g. runs/train-basic/best)",
                    a.display(),
                    tierforge_train::lora::ADAPTER_CONFIG
                );
            }
        }
        models.push(ModelUnderTest {
            label: label.clone(),
            model: args.model.clone(),
            adapter,
            tier,
            ollama_name: None,
            system_prompt: None,
        });
    }
    if !(args.confidence > 0.0 && args.confidence < 1.0) {
        bail!("--confidence {}: must be in (0, 1)", args.confidence);
    }
    if args.max_tokens == 0 || args.batch_size == 0 {
        bail!("--max-tokens and --batch-size must be at least 1");
    }
    if !(args.repeat_penalty > 0.0 && args.repeat_penalty.is_finite()) {
        bail!(
            "--repeat-penalty {}: must be a positive number",
            args.repeat_penalty
        );
    }
    if !(args.temperature >= 0.0 && args.temperature.is_finite()) {
        bail!("--temperature {}: must be 0 or more", args.temperature);
    }
    if !(args.top_p > 0.0 && args.top_p <= 1.0) {
        bail!("--top-p {}: must be in (0, 1]", args.top_p);
    }
    let opts = EvalOptions {
        max_tokens: args.max_tokens,
        batch_size: args.batch_size,
        backend: match args.backend {
            BackendArg::Candle => Backend::Candle,
            BackendArg::Ollama => Backend::Ollama,
        },
        limit: args.limit,
        seed: args.seed,
        repeat_penalty: args.repeat_penalty,
        repeat_last_n: args.repeat_last_n,
        temperature: args.temperature,
        top_k: (args.top_k > 0).then_some(args.top_k),
        top_p: (args.top_p < 1.0).then_some(args.top_p),
        format: args.format.into(),
        weights: if args.quantized {
            Weights::Quantized
        } else {
            Weights::Dense
        },
        device: args.device.into(),
        ollama_host: args.ollama_url.clone(),
        lexicons: None,
        compare: CompareOptions {
            confidence: args.confidence,
            seed: args.seed.wrapping_add(17),
            ..CompareOptions::default()
        },
    };
    Ok((models, opts))
}

/// Draws one bar per model on stderr.
struct Bars {
    bar: Option<ProgressBar>,
    quiet: bool,
}

impl EvalReporter for Bars {
    fn on_model_start(&mut self, label: &str, n: usize) {
        if self.quiet {
            return;
        }
        let b = ProgressBar::new(n as u64);
        b.set_style(
            ProgressStyle::with_template("{msg:>10} {bar:30} {pos}/{len} products {elapsed}<{eta}")
                .unwrap_or_else(|_| ProgressStyle::default_bar()),
        );
        b.set_message(label.to_owned());
        b.tick();
        self.bar = Some(b);
    }
    fn on_prompts_done(&mut self, done: usize, _total: usize) {
        if let Some(b) = &self.bar {
            b.set_position(done as u64);
        }
    }
    fn on_model_done(&mut self, r: &ModelResult) {
        if let Some(b) = self.bar.take() {
            b.finish_and_clear();
        }
        if !self.quiet {
            eprintln!(
                "{}: pass rate {}, mean score {:.1}, {:.1} tokens/s, {:.0}s",
                r.label(),
                pct(r.summary.pass_rate),
                r.summary.mean_score,
                r.summary.tokens_per_s,
                r.summary.generate_s + r.summary.load_s
            );
        }
    }
}

/// The top-level entry point for `tierforge eval`.
pub fn run(args: &EvalArgs) -> Result<ExitStatus> {
    let t0 = Instant::now();
    // Bad flags (a missing adapter, a bad pair) are bad input: exit 1, not 2.
    let resolved = resolve(args).and_then(|r| Ok((r, pairs(&args.versions, "versions")?)));
    let ((models, opts), versions) = match resolved {
        Ok(r) => r,
        Err(e) => {
            eprintln!("error: {e:#}");
            return Ok(ExitStatus::Failure);
        }
    };
    let products = match tierforge_eval::load_products(&args.products) {
        Ok(p) => p,
        Err(e @ tierforge_eval::EvalError::Input { .. }) => {
            eprintln!("error: {e}");
            return Ok(ExitStatus::Failure);
        }
        Err(e) => {
            return Err(e).with_context(|| {
                format!("Failed to read products from {}", args.products.display())
            })
        }
    };
    let mut bars = Bars {
        bar: None,
        quiet: args.quiet,
    };
    let run = tierforge_eval::evaluate(&models, &products, &opts, &mut bars)
        .context("Failed to evaluate")?;

    let curves: Vec<LossCurve> = models
        .iter()
        .filter_map(|m| {
            let p = metrics_for(m.adapter.as_deref()?)?;
            let c = read_loss_curve(&p).ok()?;
            (!c.is_empty()).then(|| (m.label.clone(), c))
        })
        .collect();
    let report_path = match &args.report {
        Some(dir) => Some(
            tierforge_eval::write_report(dir, &run, &curves)
                .with_context(|| format!("Failed to write the report in {}", dir.display()))?,
        ),
        None => None,
    };
    if let Some(reg) = &args.registry {
        for (label, version) in &versions {
            let tier = label.parse::<Tier>().map_err(anyhow::Error::msg)?;
            tierforge_eval::store_in_registry(reg, tier.name(), version, &run, label)
                .with_context(|| {
                    format!(
                        "Failed to store {label} {version} results in {}",
                        reg.display()
                    )
                })?;
        }
    }

    if args.json {
        println!("{}", serde_json::to_string_pretty(&run)?);
    } else {
        let rows: Vec<Vec<String>> = run
            .models
            .iter()
            .map(|m| {
                let s = &m.summary;
                vec![
                    m.label().to_owned(),
                    s.products.to_string(),
                    pct(s.parse_rate),
                    pct(s.pass_rate),
                    format!("{:.1}", s.mean_score),
                    format!("{:.0}", s.mean_output_tokens),
                    format!("{:.1}", s.mean_latency_s),
                    format!("{:.1}", s.tokens_per_s),
                    s.top_failed_rules
                        .iter()
                        .take(3)
                        .map(|(r, k)| format!("{r}×{k}"))
                        .collect::<Vec<_>>()
                        .join(" "),
                ]
            })
            .collect();
        print!(
            "{}",
            render(
                &[
                    "model",
                    "products",
                    "parsed",
                    "pass rate",
                    "mean score",
                    "tokens",
                    "latency s",
                    "tokens/s",
                    "most failed rules",
                ],
                &rows
            )
        );
        for w in run.models.windows(2) {
            if let Some(c) = run.comparison(w[0].label(), w[1].label()) {
                println!("{}", c.sentence());
            }
        }
        if let Some(p) = &report_path {
            println!("{}", p.display());
        }
    }
    eprintln!(
        "{} models on {} products in {:.0}s{}",
        run.models.len(),
        run.models.first().map_or(0, |m| m.products.len()),
        t0.elapsed().as_secs_f64(),
        report_path
            .map(|p| format!(" -> {}", p.display()))
            .unwrap_or_default()
    );
    Ok(ExitStatus::Success)
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser;

    #[derive(Parser)]
    struct T {
        #[command(flatten)]
        a: EvalArgs,
    }

    fn parse(args: &[&str]) -> Result<EvalArgs, clap::Error> {
        T::try_parse_from(std::iter::once("t").chain(args.iter().copied())).map(|t| t.a)
    }

    #[test]
    fn flags_parse_with_defaults_and_reject_bad_values() {
        let a = parse(&[]).expect("defaults");
        assert_eq!(a.models, ["base", "basic", "advanced", "expert"]);
        assert_eq!(a.max_tokens, 400);
        assert_eq!(a.batch_size, 16);
        assert_eq!(a.backend, BackendArg::Candle);
        assert_eq!(a.base_tier, Tier::Expert);
        let a = parse(&[
            "--models",
            "base,basic",
            "--adapters",
            "basic=/x",
            "--backend",
            "ollama",
            "--limit",
            "3",
        ])
        .expect("explicit");
        assert_eq!(a.models, ["base", "basic"]);
        assert_eq!(a.adapters, ["basic=/x"]);
        assert_eq!(a.limit, Some(3));
        assert!(parse(&["--backend", "gpu"]).is_err());
        assert!(parse(&["--base-tier", "pro"]).is_err());
        assert!(parse(&["--max-tokens", "-1"]).is_err());
        assert!(parse(&["--registry", "r.db"]).is_err(), "needs --versions");
    }

    #[test]
    fn resolve_checks_cross_flag_rules() {
        let a = parse(&["--models", "base,basic"]).expect("parse");
        let e = resolve(&a).expect_err("no adapter").to_string();
        assert!(e.contains("no adapter for basic"), "{e}");
        let a = parse(&["--models", "base", "--adapters", "basic=/x"]).expect("parse");
        assert!(resolve(&a).is_err());
        let a = parse(&["--models", "base", "--base-tier", "basic"]).expect("parse");
        let (m, o) = resolve(&a).expect("ok");
        assert_eq!(m[0].tier, Tier::Basic);
        assert_eq!(o.weights, Weights::Dense);
        let a = parse(&["--models", "base,expert", "--backend", "ollama"]).expect("parse");
        let (m, _) = resolve(&a).expect("ollama needs no adapters");
        assert_eq!(m[1].ollama_model(), "tierforge-expert:latest");
        let a = parse(&["--models", "base", "--confidence", "1.5"]).expect("parse");
        assert!(resolve(&a).is_err());
    }
}
