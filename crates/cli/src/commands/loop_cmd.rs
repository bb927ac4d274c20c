//! `tierforge loop --once | --watch --every 24h`: argument plumbing and printing; the work is in
//! `tierforge_eval::cycle`.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use anyhow::{Context, Result};
use clap::{Args, ValueEnum};

use tierforge_eval::clock;
use tierforge_eval::cycle::{
    run_once, Action, BundleDeployer, CandleTrainer, LoopConfig, LoopOptions, LoopReport,
    LoopReporter, RubricEvaluator,
};
use tierforge_eval::evaluate::{load_products, EvalOptions};

use crate::commands::feedback::{parse_duration, parse_time};
use crate::ExitStatus;

/// `--tier` values.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum TierArg {
    Basic,
    Advanced,
    Expert,
}

impl From<TierArg> for tierforge_data::Tier {
    fn from(t: TierArg) -> Self {
        match t {
            TierArg::Basic => Self::Basic,
            TierArg::Advanced => Self::Advanced,
            TierArg::Expert => Self::Expert,
        }
    }
}

#[derive(Debug, Args)]
pub struct LoopArgs {
    /// One pass over the tiers, then exit.
    #[arg(long, conflicts_with = "watch", required_unless_present = "watch")]
    pub once: bool,
    /// Keep running: one pass every --every.
    #[arg(long)]
    pub watch: bool,
    /// Time between passes with --watch, e.g. 24h.
    #[arg(long, value_name = "DURATION", value_parser = parse_duration, default_value = "24h")]
    pub every: u64,
    /// The loop config (thresholds, paths); see configs/loop.toml.
    #[arg(long, value_name = "FILE", default_value = "configs/loop.toml")]
    pub config: PathBuf,
    /// Only update the tiers' instructions (system prompts); train nothing.
    #[arg(long)]
    pub instructions_only: bool,
    /// Decide as of this time (RFC 3339 or YYYY-MM-DD, end of day); default now.
    #[arg(long, value_name = "TIME", value_parser = parse_time)]
    pub as_of: Option<i64>,
    /// Check only these tiers (repeatable); default all three.
    #[arg(long, value_enum)]
    pub tier: Vec<TierArg>,
    /// Where to train and evaluate; cuda needs a build with `--features cuda`.
    #[arg(long, value_enum, default_value_t = crate::commands::train::DeviceArg::Cpu)]
    pub device: crate::commands::train::DeviceArg,
    /// Print the pass as JSON on stdout.
    #[arg(long)]
    pub json: bool,
    /// No progress messages.
    #[arg(long)]
    pub quiet: bool,
}

struct Stderr {
    quiet: bool,
}
impl LoopReporter for Stderr {
    fn on_message(&mut self, msg: &str) {
        if !self.quiet {
            eprintln!("{msg}");
        }
    }
}

pub fn run(a: &LoopArgs) -> Result<ExitStatus> {
    // A missing or unreadable config is bad input: exit 1 with the file and the reason.
    let config = if a.config.exists() {
        match LoopConfig::from_file(&a.config) {
            Ok(c) => c,
            Err(e) => {
                eprintln!("error: {e:#}");
                return Ok(ExitStatus::Failure);
            }
        }
    } else if a.config == Path::new("configs/loop.toml") {
        LoopConfig::default()
    } else {
        eprintln!(
            "error: cannot read the loop config {}: no such file",
            a.config.display()
        );
        return Ok(ExitStatus::Failure);
    };
    let device: tierforge_train::DeviceKind = a.device.into();
    let mut reporter = Stderr { quiet: a.quiet };
    // End-to-end tests kill a run at a known point: abort right after this phase.
    let abort_after: Option<tierforge_eval::cycle::Phase> =
        match std::env::var("TIERFORGE_LOOP_ABORT_AFTER") {
            Ok(p) => Some(
                serde_json::from_value(serde_json::Value::String(p.clone())).map_err(|_| {
                    anyhow::anyhow!("TIERFORGE_LOOP_ABORT_AFTER={p}: not a phase of a retrain run")
                })?,
            ),
            Err(_) => None,
        };
    loop {
        let started = Instant::now();
        let opts = LoopOptions {
            config: config.clone(),
            as_of: a.as_of.unwrap_or_else(clock::now_unix),
            instructions_only: a.instructions_only,
            tiers: a.tier.iter().map(|&t| t.into()).collect(),
            crash_after: None,
            abort_after,
        };
        let mut trainer = CandleTrainer {
            base_model: config.base_model.clone(),
            device,
        };
        // Products are read only when a tier is actually evaluated.
        let mut evaluator = LazyEvaluator {
            config: config.clone(),
            device,
            inner: None,
        };
        // A promoted candidate is built like `tierforge deploy` builds a version (`[deploy]` in
        // the loop config), created in Ollama when OLLAMA_HOST is set.
        let mut deployer = BundleDeployer {
            base_model: config.base_model.clone(),
            out_dir: config.deploy_dir(),
            quant: config.deploy_quant().map_err(anyhow::Error::msg)?,
            ollama_host: tierforge_deploy::ollama::host_from_env(),
        };
        let report = run_once(
            &opts,
            &mut trainer,
            &mut evaluator,
            &mut deployer,
            &mut reporter,
        )
        .context("Failed to run the loop")?;
        print_report(&report, a.json)?;
        eprintln!(
            "loop pass as of {}: {} tiers in {:.1}s; log in {}",
            report.as_of,
            report.tiers.len(),
            started.elapsed().as_secs_f64(),
            config.training_log().display()
        );
        if a.once {
            return Ok(ExitStatus::Success);
        }
        std::thread::sleep(Duration::from_secs(a.every));
    }
}

struct LazyEvaluator {
    config: LoopConfig,
    device: tierforge_train::DeviceKind,
    inner: Option<RubricEvaluator>,
}

impl tierforge_eval::cycle::CandidateEvaluator for LazyEvaluator {
    fn compare(
        &mut self,
        tier: tierforge_data::Tier,
        production: &tierforge_eval::evaluate::ModelUnderTest,
        candidate: &tierforge_eval::evaluate::ModelUnderTest,
    ) -> std::result::Result<tierforge_eval::compare::Comparison, tierforge_eval::LoopError> {
        if self.inner.is_none() {
            let products = load_products(&self.config.eval_products)
                .map_err(|e| tierforge_eval::LoopError::Eval(e.to_string()))?;
            let options = EvalOptions {
                limit: self.config.retrain.eval_limit,
                max_tokens: self.config.retrain.eval_max_tokens,
                device: self.device,
                ..EvalOptions::default()
            };
            self.inner = Some(RubricEvaluator { products, options });
        }
        match self.inner.as_mut() {
            Some(e) => e.compare(tier, production, candidate),
            None => Err(tierforge_eval::LoopError::Eval("no evaluator".into())),
        }
    }
}

fn print_report(report: &LoopReport, json: bool) -> Result<()> {
    if json {
        println!("{}", serde_json::to_string_pretty(report)?);
        return Ok(());
    }
    let rows: Vec<Vec<String>> = report
        .tiers
        .iter()
        .map(|t| {
            vec![
                t.tier.to_string(),
                t.decision.events.to_string(),
                t.decision
                    .success_rate
                    .map_or("-".into(), |r| format!("{:.1}%", r * 100.0)),
                t.decision
                    .recent_average
                    .map_or("-".into(), |r| format!("{:.1}%", r * 100.0)),
                serde_json::to_value(&t.action)
                    .ok()
                    .and_then(|v| v.as_str().map(str::to_owned))
                    .unwrap_or_default(),
                t.candidate_version.clone().unwrap_or_else(|| "-".into()),
            ]
        })
        .collect();
    print!(
        "{}",
        crate::table::render(
            &[
                "tier",
                "events",
                "success",
                "3-day avg",
                "action",
                "candidate"
            ],
            &rows
        )
    );
    for t in &report.tiers {
        println!("{}: {}", t.tier, t.reason);
        if let Some(p) = &t.instructions {
            if p.changed {
                print!("{}", p.diff);
            }
        }
        if t.action == Action::Locked {
            println!("hint: wait for the other loop, or remove a lock left by a crashed one");
        }
    }
    Ok(())
}
