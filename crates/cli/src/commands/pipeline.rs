//! `tierforge pipeline`: the whole progression (data → tiers → export → evaluation → report).
//! Prints one line per stage, draws a bar while training, and ends with a summary table. The
//! work is in `tierforge_eval::pipeline`.

use std::path::PathBuf;
use std::time::Instant;

use anyhow::{Context, Result};
use clap::{Args, ValueEnum};
use indicatif::{ProgressBar, ProgressStyle};

use tierforge_data::tiers::TiersConfig;
use tierforge_eval::evaluate::{EvalReporter, ModelResult};
use tierforge_eval::manifest::StageRecord;
use tierforge_eval::pipeline::{self, PipelineOptions, PipelineReporter, PipelineSummary};
use tierforge_eval::profile::{Profile, ProfileSettings, Selection};
use tierforge_train::{DeviceKind, StepMetrics, TrainReporter};

use crate::commands::train::DeviceArg;
use crate::table::render;
use crate::ExitStatus;

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum ProfileArg {
    /// Minutes on a 2-core CPU: a few optimizer steps per tier (the default on CPU).
    Quick,
    /// Each tier trained properly from configs/<tier>.toml (the default with --device cuda).
    Full,
}

#[derive(Debug, Args)]
pub struct PipelineArgs {
    /// A data folder (every *.jsonl/*.json in it except eval-products.jsonl and feedback.jsonl
    /// holds samples) or one samples file.
    #[arg(long, value_name = "DIR", default_value = "data")]
    pub data: PathBuf,
    /// Held-out products to evaluate on [default: <data>/eval-products.jsonl].
    #[arg(long, value_name = "FILE")]
    pub products: Option<PathBuf>,
    /// Base model: a GGUF file, a Hugging Face folder, or a hub id `org/name[@revision]`.
    #[arg(
        long,
        value_name = "MODEL",
        default_value = "models/SmolLM2-135M-Instruct.Q4_1.gguf"
    )]
    pub model: String,
    /// How much training: quick (CPU default) or full (CUDA default).
    #[arg(long, value_enum)]
    pub profile: Option<ProfileArg>,
    /// Output folder; an existing one is resumed (finished stages are skipped)
    /// [default: runs/<timestamp>].
    #[arg(long, value_name = "DIR")]
    pub out: Option<PathBuf>,
    /// Folder with the per-tier training configs basic.toml, advanced.toml, expert.toml.
    #[arg(long, value_name = "DIR", default_value = "configs")]
    pub configs: PathBuf,
    /// The tiers' selection rules (min samples, min score) [default: configs/tiers.toml when present].
    #[arg(long, value_name = "FILE")]
    pub tiers: Option<PathBuf>,
    #[arg(long, value_enum, default_value_t = DeviceArg::Cpu)]
    pub device: DeviceArg,
    /// Evaluate at most N products (all by default).
    #[arg(long, value_name = "N")]
    pub eval_limit: Option<usize>,
    /// Generate at most N tokens per evaluated product [default: the profile's].
    #[arg(long, value_name = "N")]
    pub eval_max_tokens: Option<usize>,
    /// Optimizer steps per tier, overriding the profile (a smoke test: `--steps 1`).
    #[arg(long, value_name = "N")]
    pub steps: Option<usize>,
    /// Micro-batches per optimizer step, overriding the profile.
    #[arg(long, value_name = "N")]
    pub grad_accum_steps: Option<usize>,
    /// Longest training sequence in tokens, overriding the configs (longer samples are cut).
    #[arg(long, value_name = "N")]
    pub max_seq_len: Option<usize>,
    /// Checkpoint choice: the expert tier keeps its checkpoints of steps N, N + every, ... and
    /// the last, and uses the one whose listings pass the rubric most often on validation
    /// products [quick profile: 16].
    #[arg(long, value_name = "N")]
    pub select_from: Option<usize>,
    /// Steps between kept checkpoints; 0 turns the choice off and uses the last checkpoint
    /// [quick profile: 4].
    #[arg(long, value_name = "N")]
    pub select_every: Option<usize>,
    /// Validation products each kept checkpoint writes listings for [quick profile: 12].
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u64).range(1..))]
    pub select_products: Option<u64>,
    /// The model registry (SQLite) the tiers are recorded in.
    #[arg(long, value_name = "FILE", default_value = "runs/registry.db")]
    pub registry: PathBuf,
    /// Print the summary as JSON on stdout (stage lines still go to stderr).
    #[arg(long)]
    pub json: bool,
}

struct Reporter {
    bar: Option<ProgressBar>,
    started: Instant,
}

impl Reporter {
    fn line(&self, msg: &str) {
        match &self.bar {
            Some(b) => b.println(msg),
            None => eprintln!("{msg}"),
        }
    }
}

impl PipelineReporter for Reporter {
    fn on_stage_start(&mut self, stage: &str, what: &str) {
        eprintln!(
            "[{:>6.1}s] {stage}: {what}",
            self.started.elapsed().as_secs_f64()
        );
    }
    fn on_stage_done(&mut self, rec: &StageRecord, skipped: bool) {
        if let Some(b) = self.bar.take() {
            b.finish_and_clear();
        }
        if skipped {
            eprintln!(
                "[{:>6.1}s] {}: already done by an earlier run with the same inputs ({:.1}s then); skipped",
                self.started.elapsed().as_secs_f64(),
                rec.name,
                rec.seconds
            );
        } else {
            eprintln!(
                "[{:>6.1}s] {}: done in {:.1}s",
                self.started.elapsed().as_secs_f64(),
                rec.name,
                rec.seconds
            );
        }
    }
    fn on_message(&mut self, msg: &str) {
        if msg.contains("truncated") {
            self.line(&format!("  warning: {msg}"));
        } else {
            self.line(&format!("  {msg}"));
        }
    }
    fn train(&mut self) -> &mut dyn TrainReporter {
        self
    }
    fn eval(&mut self) -> &mut dyn EvalReporter {
        self
    }
}

impl EvalReporter for Reporter {
    fn on_model_start(&mut self, label: &str, n: usize) {
        if let Some(b) = self.bar.take() {
            b.finish_and_clear();
        }
        let bar = ProgressBar::new(n as u64);
        bar.set_style(
            ProgressStyle::with_template(
                "  {prefix:>8} {bar:30} {pos}/{len} products {elapsed_precise} (eta {eta})",
            )
            .unwrap_or_else(|_| ProgressStyle::default_bar()),
        );
        bar.set_prefix(label.to_owned());
        self.bar = Some(bar);
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
        let s = &r.summary;
        eprintln!(
            "  {:>8}: pass rate {:.1}%, mean score {:.1}, parse rate {:.1}%, {:.0} tokens/s",
            r.label(),
            s.pass_rate * 100.0,
            s.mean_score,
            s.parse_rate * 100.0,
            s.tokens_per_s
        );
    }
}

impl TrainReporter for Reporter {
    fn on_start(&mut self, start: usize, total: usize) {
        let bar = ProgressBar::new(total as u64);
        bar.set_style(
            ProgressStyle::with_template(
                "  {bar:30} {pos}/{len} steps {elapsed_precise} (eta {eta}) {msg}",
            )
            .unwrap_or_else(|_| ProgressStyle::default_bar()),
        );
        bar.set_position(start as u64);
        self.bar = Some(bar);
    }
    fn on_step(&mut self, m: &StepMetrics) {
        if let Some(b) = &self.bar {
            let eval = m
                .eval_loss
                .map(|l| format!(" eval {l:.3}"))
                .unwrap_or_default();
            b.set_message(format!(
                "loss {:.3}{eval} {:.0} tok/s",
                m.loss, m.tokens_per_s
            ));
            b.set_position(m.step as u64);
        }
    }
    fn on_message(&mut self, msg: &str) {
        self.line(&format!("  {msg}"));
    }
}

/// `runs/<YYYYMMDD-HHMMSS>` (UTC).
fn default_out() -> PathBuf {
    let stamp: String = tierforge_deploy::bundle::now_rfc3339()
        .chars()
        .filter_map(|c| match c {
            '0'..='9' => Some(c),
            'T' => Some('-'),
            _ => None,
        })
        .collect();
    PathBuf::from("runs").join(stamp)
}

pub fn run(args: &PipelineArgs) -> Result<ExitStatus> {
    let device: DeviceKind = args.device.into();
    let profile = match args.profile {
        Some(ProfileArg::Quick) => Profile::Quick,
        Some(ProfileArg::Full) => Profile::Full,
        None if device == DeviceKind::Cuda => Profile::Full,
        None => Profile::Quick,
    };
    let mut settings = ProfileSettings::resolve(profile, &args.configs)?;
    if args.eval_limit.is_some() {
        settings.eval_limit = args.eval_limit;
    }
    if let Some(n) = args.eval_max_tokens {
        settings.eval_max_tokens = n;
    }
    for (_, cfg) in &mut settings.train {
        if let Some(n) = args.steps {
            cfg.max_steps = Some(n);
            cfg.warmup_steps = cfg.warmup_steps.min(n.saturating_sub(1));
        }
        if let Some(n) = args.max_seq_len {
            cfg.max_seq_len = n;
        }
        if let Some(n) = args.grad_accum_steps {
            cfg.grad_accum_steps = n;
        }
    }
    if args.select_every == Some(0) {
        settings.select = None;
    } else if args.select_from.is_some()
        || args.select_every.is_some()
        || args.select_products.is_some()
    {
        let base = settings.select.clone().unwrap_or(Selection {
            tiers: vec![tierforge_data::Tier::Expert],
            from_step: 1,
            every: 1,
            products: 12,
        });
        settings.select = Some(Selection {
            from_step: args.select_from.unwrap_or(base.from_step),
            every: args.select_every.unwrap_or(base.every),
            products: args.select_products.map_or(base.products, |n| n as usize),
            ..base
        });
    }
    let tiers_path = args
        .tiers
        .clone()
        .or_else(|| Some(args.configs.join("tiers.toml")).filter(|p| p.exists()));
    let tiers = match &tiers_path {
        Some(p) => {
            let text = std::fs::read_to_string(p)
                .with_context(|| format!("Failed to read the tiers config {}", p.display()))?;
            TiersConfig::from_toml(&text, &p.display().to_string())?
        }
        None => TiersConfig::default(),
    };
    let out = args.out.clone().unwrap_or_else(default_out);
    let opts = PipelineOptions {
        data: args.data.clone(),
        products: args.products.clone(),
        model: args.model.clone(),
        settings,
        tiers,
        out: out.clone(),
        device,
        ollama_host: std::env::var("OLLAMA_HOST")
            .ok()
            .filter(|h| !h.trim().is_empty()),
        registry: Some(args.registry.clone()),
    };
    eprintln!(
        "tierforge pipeline: profile {}, model {}, output {}",
        profile.name(),
        opts.model,
        out.display()
    );
    let mut reporter = Reporter {
        bar: None,
        started: Instant::now(),
    };
    let summary = match pipeline::run(&opts, &mut reporter) {
        Ok(s) => s,
        Err(e) if e.is_input() => {
            if let Some(b) = reporter.bar.take() {
                b.finish_and_clear();
            }
            eprintln!("error: {e}");
            eprintln!(
                "hint: finished stages are kept in {}; fix the input and run the same command again",
                out.display()
            );
            return Ok(ExitStatus::Failure);
        }
        Err(e) => return Err(e.into()),
    };
    if args.json {
        println!("{}", serde_json::to_string_pretty(&summary)?);
    } else {
        print_summary(&summary);
    }
    Ok(ExitStatus::Success)
}

fn opt(v: Option<f64>, digits: usize) -> String {
    v.map_or_else(|| "-".into(), |x| format!("{x:.digits$}"))
}

fn pct(v: Option<f64>) -> String {
    v.map_or_else(|| "-".into(), |x| format!("{:.1}%", x * 100.0))
}

fn print_summary(s: &PipelineSummary) {
    let d = &s.data;
    println!(
        "data: {} samples read ({} rejected), {} pass the rubric, {} exact + {} near duplicates dropped, {} train / {} val",
        d.read, d.rejected, d.passed, d.exact_duplicates, d.near_duplicates, d.train, d.val
    );
    let mut rows = vec![vec![
        "base".to_string(),
        "-".into(),
        "-".into(),
        "-".into(),
        "-".into(),
        pct(s.base_pass_rate),
        opt(s.base_mean_score, 1),
        "-".into(),
        "-".into(),
    ]];
    for t in &s.tiers {
        rows.push(vec![
            t.tier.name().to_string(),
            t.samples.to_string(),
            match t.selected_step {
                Some(k) if k != t.steps => format!("{} (uses {k})", t.steps),
                _ => t.steps.to_string(),
            },
            opt(t.final_train_loss, 3),
            opt(t.final_eval_loss, 3),
            pct(t.pass_rate),
            opt(t.mean_score, 1),
            t.gguf_bytes
                .map_or_else(|| "-".into(), |b| format!("{:.1} MB", b as f64 / 1e6)),
            t.ollama_name.clone().unwrap_or_else(|| "-".into())
                + if t.pushed { "" } else { " (not pushed)" },
        ]);
    }
    println!(
        "{}",
        render(
            &[
                "tier",
                "samples",
                "steps",
                "train loss",
                "eval loss",
                "pass rate",
                "mean score",
                "GGUF",
                "Ollama name"
            ],
            &rows
        )
    );
    let stages: Vec<Vec<String>> = s
        .stages
        .iter()
        .map(|r| vec![r.name.clone(), format!("{:.1}", r.seconds)])
        .collect();
    println!("{}", render(&["stage", "seconds"], &stages));
    println!(
        "total {:.1}s this run; training {:.1}s of the stages' {:.1}s",
        s.seconds,
        s.training_seconds,
        s.stages.iter().map(|r| r.seconds).sum::<f64>()
    );
    for f in &s.findings {
        println!("note: {f}");
    }
    match &s.report {
        Some(r) => println!("report: {}", r.display()),
        None => println!("output: {}", s.out.display()),
    }
}
