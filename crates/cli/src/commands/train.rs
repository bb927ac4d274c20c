//! `tierforge train`: LoRA fine-tuning. Argument plumbing, progress bars and printing only; the
//! work is in `tierforge-train`.

use std::path::{Path, PathBuf};
use std::time::Instant;

use anyhow::{bail, Context, Result};
use clap::{Args, ValueEnum};
use indicatif::{ProgressBar, ProgressStyle};

use tierforge_model::Proj;
use tierforge_train::{
    DeviceKind, PrepareReporter, Schedule, StepMetrics, TrainConfig, TrainOptions, TrainReporter,
};

use crate::ExitStatus;

/// `--device` values.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum DeviceArg {
    Cpu,
    Cuda,
}

impl From<DeviceArg> for DeviceKind {
    fn from(d: DeviceArg) -> Self {
        match d {
            DeviceArg::Cpu => DeviceKind::Cpu,
            DeviceArg::Cuda => DeviceKind::Cuda,
        }
    }
}

/// `--lr-scheduler` values.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum ScheduleArg {
    Cosine,
    Linear,
    Constant,
}

#[derive(Debug, Args)]
pub struct TrainArgs {
    /// A GGUF file, a Hugging Face folder, or a hub id `org/name[@revision]`.
    #[arg(long, value_name = "MODEL")]
    pub model: String,
    /// Training samples: chat `messages` JSONL (as `tierforge data export` writes).
    #[arg(long, value_name = "FILE")]
    pub data: PathBuf,
    /// Validation samples: eval loss and token accuracy every `--eval-every` steps.
    #[arg(long, value_name = "FILE")]
    pub val: Option<PathBuf>,
    /// A tier's TOML config (e.g. configs/basic.toml); flags override its keys.
    #[arg(long, value_name = "FILE")]
    pub config: Option<PathBuf>,
    /// Output folder: last/, best/, metrics.jsonl, loss.svg, train_config.toml.
    #[arg(long, value_name = "DIR", required_unless_present = "preview_mask")]
    pub out: Option<PathBuf>,
    /// Continue a run from its checkpoint folder (or an output folder holding last/).
    #[arg(long, value_name = "DIR")]
    pub resume: Option<PathBuf>,
    /// Start from an earlier tier's adapter (PEFT folder) instead of a fresh one.
    #[arg(long, value_name = "DIR", conflicts_with = "resume")]
    pub init_adapter: Option<PathBuf>,
    /// Where to train; cuda needs a build with `--features cuda`.
    #[arg(long, value_enum, default_value_t = DeviceArg::Cpu)]
    pub device: DeviceArg,
    /// Print N samples with supervised tokens in [[ ]] and the supervised share; no training.
    #[arg(long, value_name = "N")]
    pub preview_mask: Option<usize>,
    /// Print the summary as JSON on stdout.
    #[arg(long)]
    pub json: bool,
    /// No progress bar.
    #[arg(long)]
    pub quiet: bool,

    /// Seed of LoRA init, data order and dropout.
    #[arg(long, help_heading = "Config overrides")]
    pub seed: Option<u64>,
    /// LoRA rank r.
    #[arg(long, help_heading = "Config overrides")]
    pub lora_rank: Option<usize>,
    /// LoRA alpha (the update is scaled by alpha / r).
    #[arg(long, help_heading = "Config overrides")]
    pub lora_alpha: Option<f64>,
    /// Dropout probability on the LoRA input.
    #[arg(long, help_heading = "Config overrides")]
    pub lora_dropout: Option<f64>,
    /// Rank-stabilised scaling alpha / sqrt(r) (true or false).
    #[arg(long, help_heading = "Config overrides")]
    pub use_rslora: Option<bool>,
    /// Projections to adapt, comma-separated (q_proj,k_proj,v_proj,o_proj,gate_proj,up_proj,down_proj).
    #[arg(long, value_delimiter = ',', value_parser = parse_proj, help_heading = "Config overrides")]
    pub target_modules: Option<Vec<Proj>>,
    /// Peak learning rate.
    #[arg(long, help_heading = "Config overrides")]
    pub learning_rate: Option<f64>,
    /// Decoupled (AdamW) weight decay.
    #[arg(long, help_heading = "Config overrides")]
    pub weight_decay: Option<f64>,
    /// AdamW beta1.
    #[arg(long, help_heading = "Config overrides")]
    pub adam_beta1: Option<f64>,
    /// AdamW beta2.
    #[arg(long, help_heading = "Config overrides")]
    pub adam_beta2: Option<f64>,
    /// AdamW epsilon.
    #[arg(long, help_heading = "Config overrides")]
    pub adam_epsilon: Option<f64>,
    /// Learning-rate schedule after the warmup.
    #[arg(long, value_enum, help_heading = "Config overrides")]
    pub lr_scheduler: Option<ScheduleArg>,
    /// Linear warmup, in optimizer steps.
    #[arg(long, help_heading = "Config overrides")]
    pub warmup_steps: Option<usize>,
    /// Sequences per micro-batch.
    #[arg(long, help_heading = "Config overrides")]
    pub batch_size: Option<usize>,
    /// Micro-batches per optimizer step.
    #[arg(long, help_heading = "Config overrides")]
    pub grad_accum_steps: Option<usize>,
    /// Clip the global gradient norm to this value (0: no clipping).
    #[arg(long, help_heading = "Config overrides")]
    pub max_grad_norm: Option<f64>,
    /// Passes over the training data.
    #[arg(long, help_heading = "Config overrides")]
    pub epochs: Option<usize>,
    /// Stop after this many optimizer steps (overrides epochs).
    #[arg(long, help_heading = "Config overrides")]
    pub max_steps: Option<usize>,
    /// Longest sequence, in tokens; longer samples are truncated.
    #[arg(long, help_heading = "Config overrides")]
    pub max_seq_len: Option<usize>,
    /// Checkpoint every N optimizer steps (0: only at the end).
    #[arg(long, help_heading = "Config overrides")]
    pub save_every: Option<usize>,
    /// Evaluate every N optimizer steps (0: only at the end).
    #[arg(long, help_heading = "Config overrides")]
    pub eval_every: Option<usize>,
    /// Stop after N evaluations without a better validation loss.
    #[arg(long, help_heading = "Config overrides")]
    pub early_stopping_patience: Option<usize>,
    /// Stop after N steps of this invocation, with a checkpoint (for testing resume).
    #[arg(long, hide = true)]
    pub stop_after: Option<usize>,
}

fn parse_proj(s: &str) -> Result<Proj, String> {
    Proj::ALL
        .into_iter()
        .find(|p| p.name() == s.trim())
        .ok_or_else(|| {
            format!(
                "unknown module {s:?} (expected one of {})",
                Proj::ALL.map(|p| p.name()).join(", ")
            )
        })
}

impl TrainArgs {
    /// The config file (or defaults) with every given flag applied on top.
    pub fn resolve_config(&self) -> Result<TrainConfig> {
        let mut c = match &self.config {
            Some(p) => TrainConfig::from_file(p)?,
            None => TrainConfig::default(),
        };
        macro_rules! set {
            ($($f:ident),*) => { $( if let Some(v) = &self.$f { c.$f = v.clone(); } )* };
        }
        set!(
            seed,
            lora_rank,
            lora_alpha,
            lora_dropout,
            use_rslora,
            target_modules,
            learning_rate,
            weight_decay,
            adam_beta1,
            adam_beta2,
            adam_epsilon,
            warmup_steps,
            batch_size,
            grad_accum_steps,
            max_grad_norm,
            epochs,
            max_seq_len,
            save_every,
            eval_every
        );
        if let Some(s) = self.lr_scheduler {
            c.lr_scheduler = match s {
                ScheduleArg::Cosine => Schedule::Cosine,
                ScheduleArg::Linear => Schedule::Linear,
                ScheduleArg::Constant => Schedule::Constant,
            };
        }
        if self.max_steps.is_some() {
            c.max_steps = self.max_steps;
        }
        if self.early_stopping_patience.is_some() {
            c.early_stopping_patience = self.early_stopping_patience;
        }
        let origin = self.config.as_ref().map_or_else(
            || "flags".to_string(),
            |p| format!("{} + flags", p.display()),
        );
        c.validate(&origin)?;
        Ok(c)
    }
}

struct Prep {
    quiet: bool,
}

impl PrepareReporter for Prep {
    fn on_message(&mut self, msg: &str) {
        if msg.starts_with("warning: ") {
            eprintln!("{msg}");
        } else if msg.contains("truncated") {
            eprintln!("warning: {msg}");
        } else if !self.quiet {
            eprintln!("{msg}");
        }
    }
}

/// Progress bar: step, loss, lr, tokens/s.
struct Bar {
    bar: Option<ProgressBar>,
}

impl TrainReporter for Bar {
    fn on_start(&mut self, start_step: usize, total_steps: usize) {
        if let Some(b) = &self.bar {
            b.set_length(total_steps as u64);
            b.set_position(start_step as u64);
            b.reset_eta();
        }
    }
    fn on_step(&mut self, m: &StepMetrics) {
        if let Some(b) = &self.bar {
            let eval = m
                .eval_loss
                .map(|l| format!(" eval {l:.4}"))
                .unwrap_or_default();
            b.set_message(format!(
                "loss {:.4} acc {:.3} lr {:.2e} {:.0} tok/s{eval}",
                m.loss, m.mean_token_accuracy, m.lr, m.tokens_per_s
            ));
            b.set_position(m.step as u64);
        }
    }
    fn on_message(&mut self, msg: &str) {
        match &self.bar {
            Some(b) => b.println(msg),
            None => eprintln!("{msg}"),
        }
    }
}

/// The top-level entry point for `tierforge train`.
pub fn run(args: &TrainArgs) -> Result<ExitStatus> {
    let config = args.resolve_config()?;
    if let Some(n) = args.preview_mask {
        return preview(args, &config, n);
    }
    let Some(out) = &args.out else {
        bail!("--out is required");
    };
    let t0 = Instant::now();
    let opts = TrainOptions {
        model: args.model.clone(),
        data: args.data.clone(),
        val: args.val.clone(),
        config,
        out: out.clone(),
        resume: args.resume.clone(),
        init_adapter: args.init_adapter.clone(),
        device: args.device.into(),
        stop_after: args.stop_after,
    };
    let bar = (!args.quiet).then(|| {
        let b = ProgressBar::new(0);
        b.set_style(
            ProgressStyle::with_template("{bar:30} {pos}/{len} steps {elapsed}<{eta} {msg}")
                .unwrap_or_else(|_| ProgressStyle::default_bar()),
        );
        b
    });
    let mut reporter = Bar { bar };
    let mut prep = Prep { quiet: args.quiet };
    let result = tierforge_train::train(&opts, &mut prep, &mut reporter);
    if let Some(b) = &reporter.bar {
        b.finish_and_clear();
    }
    let (summary, data) =
        result.with_context(|| format!("Failed to train on {}", args.data.display()))?;
    if args.json {
        let v = serde_json::json!({
            "summary": summary,
            "train_tokens": data.train.total_tokens(),
            "train_supervised_tokens": data.train.supervised_tokens(),
            "truncated_samples": data.train.truncated_samples,
            "tokens_lost": data.train.tokens_lost,
        });
        println!("{}", serde_json::to_string_pretty(&v)?);
    } else {
        let opt = |v: Option<f64>| v.map_or_else(|| "-".to_string(), |x| format!("{x:.4}"));
        let rows = vec![
            vec![
                "steps".into(),
                format!("{} of {}", summary.steps, summary.total_steps),
            ],
            vec!["epochs".into(), format!("{:.2}", summary.epochs)],
            vec!["train samples".into(), summary.train_examples.to_string()],
            vec!["val samples".into(), summary.val_examples.to_string()],
            vec![
                "trainable parameters".into(),
                summary.trainable_parameters.to_string(),
            ],
            vec!["first loss".into(), opt(summary.first_loss)],
            vec!["final loss".into(), opt(summary.final_loss)],
            vec![
                "final token accuracy".into(),
                opt(summary.final_token_accuracy),
            ],
            vec!["best eval loss".into(), opt(summary.best_eval_loss)],
            vec![
                "best step".into(),
                summary.best_step.map_or("-".into(), |s| s.to_string()),
            ],
            vec!["tokens/s".into(), format!("{:.1}", summary.tokens_per_s)],
            vec!["stopped early".into(), summary.stopped_early.to_string()],
        ];
        eprint!("{}", crate::table::render(&["", "value"], &rows));
        if let Some(a) = &summary.adapter {
            println!("{}", a.display());
        }
    }
    eprintln!(
        "{} steps in {:.1}s -> {}",
        summary
            .steps
            .saturating_sub(summary.resumed_from_step.unwrap_or(0)),
        t0.elapsed().as_secs_f64(),
        display(out)
    );
    Ok(ExitStatus::Success)
}

fn display(p: &Path) -> String {
    p.display().to_string()
}

fn preview(args: &TrainArgs, config: &TrainConfig, n: usize) -> Result<ExitStatus> {
    let report = tierforge_train::preview_mask(&args.model, &args.data, config, n)
        .with_context(|| format!("Failed to prepare {}", args.data.display()))?;
    if args.json {
        println!("{}", serde_json::to_string_pretty(&report)?);
    } else {
        for p in &report.preview {
            println!(
                "--- {} ({} tokens, {} supervised) ---",
                p.id, p.tokens, p.supervised
            );
            println!("{}", p.marked);
        }
        println!(
            "supervised: {} of {} tokens ({:.1}%) in {} samples; {} truncated ({} tokens lost)",
            report.supervised_tokens,
            report.tokens,
            100.0 * report.supervised_share,
            report.samples,
            report.truncated_samples,
            report.tokens_lost
        );
    }
    Ok(ExitStatus::Success)
}
