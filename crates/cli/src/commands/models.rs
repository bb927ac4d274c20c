//! `tierforge models list|show|promote|rollback`: the registry of tier versions. Argument
//! plumbing and printing only; the work is in `tierforge_deploy::promote`.

use std::path::PathBuf;

use anyhow::Result;
use clap::{Args, Subcommand};
use tierforge_data::completion::Tier;
use tierforge_deploy::promote::{self, CheckOptions, PromoteError, PromoteOptions};
use tierforge_deploy::registry::RegistryError;

use crate::table::render;
use crate::ExitStatus;

#[derive(Debug, Args)]
pub struct ModelsArgs {
    #[command(subcommand)]
    pub command: ModelsCommand,
}

#[derive(Debug, Args)]
pub struct Common {
    /// The registry database.
    #[arg(long, value_name = "PATH", default_value = promote::DEFAULT_REGISTRY)]
    pub registry: PathBuf,
    /// Print the result as JSON.
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, Subcommand)]
pub enum ModelsCommand {
    /// Every registered version (of one tier), newest first.
    List {
        /// Only this tier: basic, advanced or expert.
        #[arg(long)]
        tier: Option<Tier>,
        #[command(flatten)]
        common: Common,
    },
    /// One version: its record (data, config, metrics, files, digest) and events.
    Show {
        /// `tierforge-<tier>:<version>`, or a tier followed by VERSION.
        model: String,
        /// The version, when MODEL is a tier.
        version: Option<String>,
        #[command(flatten)]
        common: Common,
    },
    /// Health-check a version and make it the tier's production version (`:latest`).
    Promote {
        /// `tierforge-<tier>:<version>`, or a tier followed by VERSION.
        model: String,
        /// The version, when MODEL is a tier.
        version: Option<String>,
        /// Products for the health check, JSON Lines (bare products or samples).
        #[arg(long, value_name = "FILE", default_value = promote::DEFAULT_PRODUCTS)]
        products: PathBuf,
        /// How many products of the file the health check generates for.
        #[arg(long, default_value_t = promote::DEFAULT_CHECK_PRODUCTS)]
        check_products: usize,
        /// Share of replies (0-1) that must stop, parse and pass the rubric.
        #[arg(long, default_value_t = promote::DEFAULT_MIN_PASS_RATE)]
        min_pass_rate: f64,
        /// Token budget of one health-check reply, in tokens.
        #[arg(long, default_value_t = promote::DEFAULT_CHECK_MAX_TOKENS)]
        max_tokens: usize,
        /// Extra lexicon rows for the rubric (files named like data/lexicons/).
        #[arg(long, value_name = "DIR")]
        lexicons: Option<PathBuf>,
        /// Leave Ollama alone even when OLLAMA_HOST is set.
        #[arg(long)]
        no_ollama: bool,
        #[command(flatten)]
        common: Common,
    },
    /// Restore the tier's previous production version (and `:latest`).
    Rollback {
        /// The tier: basic, advanced or expert.
        tier: Tier,
        /// Leave Ollama alone even when OLLAMA_HOST is set.
        #[arg(long)]
        no_ollama: bool,
        #[command(flatten)]
        common: Common,
    },
}

/// User-facing problems are exit code 1; anything else 2.
fn fail(e: PromoteError) -> Result<ExitStatus> {
    match e {
        PromoteError::Registry(RegistryError::Db { .. }) | PromoteError::Model { .. } => {
            Err(e.into())
        }
        other => {
            eprintln!("error: {other}");
            Ok(ExitStatus::Failure)
        }
    }
}

fn host(no_ollama: bool) -> Option<String> {
    if no_ollama {
        None
    } else {
        tierforge_deploy::ollama::host_from_env()
    }
}

fn mib(b: Option<u64>) -> String {
    b.map(|b| format!("{:.1} MiB", b as f64 / (1024.0 * 1024.0)))
        .unwrap_or_else(|| "-".into())
}

/// The top-level entry point for `tierforge models`.
pub fn run(args: &ModelsArgs) -> Result<ExitStatus> {
    match &args.command {
        ModelsCommand::List { tier, common } => list(*tier, common),
        ModelsCommand::Show {
            model,
            version,
            common,
        } => show(model, version.as_deref(), common),
        ModelsCommand::Promote {
            model,
            version,
            products,
            check_products,
            min_pass_rate,
            max_tokens,
            lexicons,
            no_ollama,
            common,
        } => {
            let (tier, version) = match promote::parse_model_ref(model, version.as_deref()) {
                Ok(x) => x,
                Err(e) => return fail(e),
            };
            if !(0.0..=1.0).contains(min_pass_rate) {
                eprintln!("error: --min-pass-rate {min_pass_rate} is outside 0..=1");
                return Ok(ExitStatus::Failure);
            }
            let items = match promote::read_products(products, *check_products) {
                Ok(p) => p,
                Err(e) => return fail(e),
            };
            let mut check = CheckOptions::new(items);
            check.min_pass_rate = *min_pass_rate;
            check.max_tokens = *max_tokens;
            check.lexicons = lexicons.clone();
            let opts = PromoteOptions {
                registry: common.registry.clone(),
                tier,
                version,
                ollama_host: host(*no_ollama),
                check,
            };
            run_promote(&opts, common.json)
        }
        ModelsCommand::Rollback {
            tier,
            no_ollama,
            common,
        } => {
            let json = common.json;
            let rep = match promote::rollback(
                &common.registry,
                *tier,
                host(*no_ollama).as_deref(),
                &mut |l| {
                    if !json {
                        eprintln!("{l}");
                    }
                },
            ) {
                Ok(r) => r,
                Err(e) => return fail(e),
            };
            if json {
                println!("{}", serde_json::to_string_pretty(&rep)?);
            } else {
                println!(
                    "rolled back {}: {} -> {}{}",
                    tier.name(),
                    rep.from,
                    rep.to,
                    rep.ollama_latest
                        .as_ref()
                        .map(|l| format!(" ({l} re-pointed)"))
                        .unwrap_or_default()
                );
            }
            Ok(ExitStatus::Success)
        }
    }
}

fn list(tier: Option<Tier>, common: &Common) -> Result<ExitStatus> {
    let recs = match promote::list(&common.registry, tier) {
        Ok(r) => r,
        Err(e) => return fail(e),
    };
    if common.json {
        println!("{}", serde_json::to_string_pretty(&recs)?);
        return Ok(ExitStatus::Success);
    }
    let rows: Vec<Vec<String>> = recs
        .iter()
        .map(|r| {
            vec![
                r.tier.clone(),
                r.version.clone(),
                serde_json::to_value(r.status)
                    .ok()
                    .and_then(|v| v.as_str().map(str::to_owned))
                    .unwrap_or_default(),
                r.parent_version.clone().unwrap_or_else(|| "-".into()),
                mib(r.gguf_size),
                r.ollama_name.clone().unwrap_or_else(|| "-".into()),
                r.created_at.clone(),
            ]
        })
        .collect();
    print!(
        "{}",
        render(
            &["tier", "version", "status", "parent", "gguf", "ollama", "created"],
            &rows
        )
    );
    eprintln!("{} versions in {}", recs.len(), common.registry.display());
    Ok(ExitStatus::Success)
}

fn show(model: &str, version: Option<&str>, common: &Common) -> Result<ExitStatus> {
    let (tier, version) = match promote::parse_model_ref(model, version) {
        Ok(x) => x,
        Err(e) => return fail(e),
    };
    let d = match promote::show(&common.registry, tier, &version) {
        Ok(d) => d,
        Err(e) => return fail(e),
    };
    if common.json {
        println!("{}", serde_json::to_string_pretty(&d)?);
        return Ok(ExitStatus::Success);
    }
    let r = &d.record;
    let opt = |s: &Option<String>| s.clone().unwrap_or_else(|| "-".into());
    println!("model       {}", d.name);
    println!(
        "status      {}",
        serde_json::to_value(r.status)?.as_str().unwrap_or_default()
    );
    println!("parent      {}", opt(&r.parent_version));
    println!("base        {}", r.base_model);
    println!(
        "dataset     {} ({} samples)",
        r.dataset_hash, r.dataset_size
    );
    println!("config      {}", r.config_hash);
    println!("train       {}", r.train_metrics);
    println!("eval        {}", r.eval_metrics);
    println!("gguf        {} ({})", opt(&r.gguf_path), mib(r.gguf_size));
    println!("sha256      {}", opt(&r.gguf_sha256));
    println!(
        "ollama      {} {}",
        opt(&r.ollama_name),
        opt(&r.ollama_digest)
    );
    println!("created     {}", r.created_at);
    if let Some(n) = &r.note {
        println!("note        {n}");
    }
    for e in &d.events {
        println!("event       {} {} {}", e.at, e.action, e.detail);
    }
    Ok(ExitStatus::Success)
}

fn run_promote(opts: &PromoteOptions, json: bool) -> Result<ExitStatus> {
    let rep = match promote::promote(opts, &mut |l| {
        if !json {
            eprintln!("{l}");
        }
    }) {
        Ok(r) => r,
        Err(e) => return fail(e),
    };
    if json {
        println!("{}", serde_json::to_string_pretty(&rep)?);
    } else {
        let rows: Vec<Vec<String>> = rep
            .check
            .products
            .iter()
            .map(|p| {
                vec![
                    p.product.clone(),
                    if p.stopped { "yes" } else { "no" }.into(),
                    if p.parsed { "yes" } else { "no" }.into(),
                    p.score.map(|s| s.to_string()).unwrap_or_else(|| "-".into()),
                    if p.passed { "pass" } else { "FAIL" }.into(),
                ]
            })
            .collect();
        print!(
            "{}",
            render(&["product", "stopped", "parsed", "score", "check"], &rows)
        );
        println!("health      {}", rep.check.summary());
        if rep.promoted {
            println!(
                "promoted    {} (was {}){}",
                rep.name,
                rep.previous.as_deref().unwrap_or("none"),
                rep.ollama_latest
                    .as_ref()
                    .map(|l| format!(", {l} re-pointed"))
                    .unwrap_or_default()
            );
        } else {
            println!(
                "not promoted: health check failed; production is unchanged ({})",
                rep.previous.as_deref().unwrap_or("none")
            );
        }
    }
    Ok(if rep.promoted {
        ExitStatus::Success
    } else {
        ExitStatus::Failure
    })
}
