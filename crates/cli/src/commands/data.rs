//! `tierforge data ...`: the data commands. Argument plumbing and printing only; the work is in
//! `tierforge-data`.

use anyhow::{Context, Result};
use clap::{Args, Subcommand, ValueEnum};
use serde_json::json;
use std::path::{Path, PathBuf};

use tierforge_data::completion::Tier;
use tierforge_data::dedup::{self, DedupConfig};
use tierforge_data::export::{self, ExportFormat};
use tierforge_data::filter::{filter_files, unread_row, PIECE_BYTES};
use tierforge_data::read::{read_files, ReadOutcome};
use tierforge_data::score::summarise_files;
use tierforge_data::tiers::{build_tiers, TiersConfig};
use tierforge_data::{
    augment, rng::Rng, score_all, split, stats, summarise, write, Lexicons, Rubric, RubricConfig,
    Summary,
};

use crate::table::{pct, render};
use crate::ExitStatus;

#[derive(Debug, Args)]
pub struct DataArgs {
    #[command(subcommand)]
    pub command: DataCommand,
}

/// Options every data command shares.
#[derive(Debug, Args, Clone)]
pub struct Common {
    /// Folder of extra lexicon rows (`promo.tsv`, `claims.tsv`, ...), added to the built-in ones.
    #[arg(long, value_name = "DIR", global = true)]
    pub lexicons: Option<PathBuf>,
    /// Write records that cannot be read, with every reason, to this JSONL file.
    #[arg(long, value_name = "FILE")]
    pub rejects: Option<PathBuf>,
}

#[derive(Debug, Subcommand)]
pub enum DataCommand {
    /// Validate only: print every problem as `file:line: field: reason`; exit 1 if any.
    Check {
        /// Sample files: JSON array or JSON Lines, in any accepted format.
        #[arg(required = true)]
        files: Vec<PathBuf>,
        #[command(flatten)]
        common: Common,
        /// Print the problems as JSON.
        #[arg(long)]
        json: bool,
    },
    /// Score every sample with the rubric and print a summary table.
    Score {
        #[arg(required = true)]
        files: Vec<PathBuf>,
        #[command(flatten)]
        common: Common,
        /// Print per-sample reports (every rule with its evidence) and the summary as JSON.
        #[arg(long)]
        json: bool,
        /// Show one line per sample in the table output.
        #[arg(long)]
        per_sample: bool,
    },
    /// Keep samples that pass every hard gate with at least `--min-score`; reject the rest.
    Filter {
        #[arg(required = true)]
        files: Vec<PathBuf>,
        #[command(flatten)]
        common: Common,
        /// Minimum compliance score, 0–100.
        #[arg(long, default_value_t = 80)]
        min_score: u8,
        /// Where the kept samples go (JSON Lines, records as read).
        #[arg(short, long, value_name = "FILE")]
        output: PathBuf,
        /// Print the summary as JSON.
        #[arg(long)]
        json: bool,
    },
    /// Drop exact and near duplicates (MinHash over word 5-grams), keeping the best of each cluster.
    Dedup {
        #[arg(required = true)]
        files: Vec<PathBuf>,
        #[command(flatten)]
        common: Common,
        /// Minimum estimated Jaccard similarity of near duplicates, 0–1.
        #[arg(long, default_value_t = 0.8)]
        threshold: f64,
        /// Where the kept samples go.
        #[arg(short, long, value_name = "FILE")]
        output: PathBuf,
        /// Write the clusters (kept and dropped ids) to this JSON file.
        #[arg(long, value_name = "FILE")]
        report: Option<PathBuf>,
        /// Print the summary and clusters as JSON.
        #[arg(long)]
        json: bool,
    },
    /// Split into train and validation sets, stratified by category, deterministic for a seed.
    Split {
        #[arg(required = true)]
        files: Vec<PathBuf>,
        #[command(flatten)]
        common: Common,
        /// Share of each category that goes to validation, 0–1.
        #[arg(long, default_value_t = 0.1)]
        val: f64,
        #[arg(long, default_value_t = 17)]
        seed: u64,
        /// Output folder: `train.jsonl` and `val.jsonl`.
        #[arg(short, long, value_name = "DIR")]
        output: PathBuf,
        #[arg(long)]
        json: bool,
    },
    /// Add variants (feature order, synonyms, HTML/plain style); each must still pass the rubric.
    Augment {
        #[arg(required = true)]
        files: Vec<PathBuf>,
        #[command(flatten)]
        common: Common,
        /// Variants to try per sample.
        #[arg(long, default_value_t = 1)]
        per_sample: usize,
        #[arg(long, default_value_t = 17)]
        seed: u64,
        /// Only augment samples that pass the rubric (default) — variants of failing samples fail too.
        /// Where the originals plus variants go.
        #[arg(short, long, value_name = "FILE")]
        output: PathBuf,
        /// Write only the new variants, not the originals.
        #[arg(long)]
        only_new: bool,
        #[arg(long)]
        json: bool,
    },
    /// Write a training file: chat `messages` JSONL or prompt/completion JSONL.
    Export {
        #[arg(required = true)]
        files: Vec<PathBuf>,
        #[command(flatten)]
        common: Common,
        #[arg(long, value_enum, default_value_t = Format::Messages)]
        format: Format,
        /// Use this tier's system prompt (`modelfiles/system/<tier>.txt`).
        #[arg(long, value_enum)]
        tier: Option<TierArg>,
        /// Use the system prompt in this text file instead.
        #[arg(long, value_name = "FILE", conflicts_with = "tier")]
        system_file: Option<PathBuf>,
        #[arg(short, long, value_name = "FILE")]
        output: PathBuf,
    },
    /// Build the basic, advanced and expert training sets (min size and min score per tier).
    Tiers {
        #[arg(required = true)]
        files: Vec<PathBuf>,
        #[command(flatten)]
        common: Common,
        /// Tier rules in TOML (`[basic] min_samples = 50, min_score = 70, max_samples = 60`, ...).
        #[arg(long, value_name = "FILE")]
        config: Option<PathBuf>,
        /// Output folder: `<tier>.jsonl` (records), `<tier>.messages.jsonl` and `tiers.json`.
        #[arg(short, long, value_name = "DIR")]
        output: PathBuf,
        #[arg(long)]
        json: bool,
    },
    /// Score histogram and per-category counts; optionally as an SVG chart.
    Stats {
        #[arg(required = true)]
        files: Vec<PathBuf>,
        #[command(flatten)]
        common: Common,
        /// Write the charts to this SVG file.
        #[arg(long, value_name = "FILE")]
        svg: Option<PathBuf>,
        #[arg(long)]
        json: bool,
    },
    /// Print the completion format as a JSON schema: pass it as `format` to Ollama's chat or
    /// generate API (structured outputs) so a tier can only answer with a parseable listing
    /// whose title and features have the rubric's lengths, and whose description has at least
    /// 6 characters for each word the rubric asks for (`--shape`: keys and types only).
    Schema {
        /// Only the keys and types, no length bound.
        #[arg(long)]
        shape: bool,
    },
}

#[derive(Debug, Clone, Copy, ValueEnum)]
pub enum Format {
    Messages,
    PromptCompletion,
}

#[derive(Debug, Clone, Copy, ValueEnum)]
pub enum TierArg {
    Basic,
    Advanced,
    Expert,
}

impl From<TierArg> for Tier {
    fn from(t: TierArg) -> Tier {
        match t {
            TierArg::Basic => Tier::Basic,
            TierArg::Advanced => Tier::Advanced,
            TierArg::Expert => Tier::Expert,
        }
    }
}

pub fn run(args: &DataArgs) -> Result<ExitStatus> {
    match &args.command {
        DataCommand::Check {
            files,
            common,
            json,
        } => check(files, common, *json),
        DataCommand::Score {
            files,
            common,
            json,
            per_sample,
        } => score(files, common, *json, *per_sample),
        DataCommand::Filter {
            files,
            common,
            min_score,
            output,
            json,
        } => filter(files, common, *min_score, output, *json),
        DataCommand::Dedup {
            files,
            common,
            threshold,
            output,
            report,
            json,
        } => dedup_cmd(files, common, *threshold, output, report.as_deref(), *json),
        DataCommand::Split {
            files,
            common,
            val,
            seed,
            output,
            json,
        } => split_cmd(files, common, *val, *seed, output, *json),
        DataCommand::Augment {
            files,
            common,
            per_sample,
            seed,
            output,
            only_new,
            json,
        } => augment_cmd(files, common, *per_sample, *seed, output, *only_new, *json),
        DataCommand::Export {
            files,
            common,
            format,
            tier,
            system_file,
            output,
        } => export_cmd(
            files,
            common,
            *format,
            *tier,
            system_file.as_deref(),
            output,
        ),
        DataCommand::Tiers {
            files,
            common,
            config,
            output,
            json,
        } => tiers_cmd(files, common, config.as_deref(), output, *json),
        DataCommand::Stats {
            files,
            common,
            svg,
            json,
        } => stats_cmd(files, common, svg.as_deref(), *json),
        DataCommand::Schema { shape } => {
            let schema = if *shape {
                tierforge_data::completion::shape_schema()
            } else {
                tierforge_data::completion::json_schema()
            };
            println!("{}", serde_json::to_string_pretty(&schema)?);
            Ok(ExitStatus::Success)
        }
    }
}

/// Reads the inputs, writes read rejects to `--rejects`, and warns about them on stderr.
fn load(files: &[PathBuf], common: &Common) -> Result<ReadOutcome> {
    let out = read_files(files).context("Failed to read the samples")?;
    report_rejects(&out, out.samples.len() + out.rejects.len(), common, true)?;
    Ok(out)
}

/// Warns of the records that could not be read (of `total`) and says that they are in
/// `--rejects`, writing them there when `write` is set.
fn report_rejects(out: &ReadOutcome, total: usize, common: &Common, write: bool) -> Result<()> {
    if !out.rejects.is_empty() {
        for p in out.problems().take(20) {
            eprintln!("warning: {p}");
        }
        let more = out.problems().count().saturating_sub(20);
        if more > 0 {
            eprintln!("warning: ... and {more} more problems");
        }
        eprintln!(
            "skipped {} of {total} records that could not be read",
            out.rejects.len()
        );
        if let Some(path) = &common.rejects {
            if write {
                write::write_jsonl(path, out.rejects.iter().map(unread_row))
                    .context("Failed to write the rejects file")?;
            }
            eprintln!("rejected records written to {}", path.display());
        }
    }
    Ok(())
}

fn rubric(common: &Common) -> Result<Rubric> {
    let lex = Lexicons::load(common.lexicons.as_deref()).context("Failed to load the lexicons")?;
    Ok(Rubric::new(RubricConfig::default(), lex))
}

fn print_json(v: &serde_json::Value) -> Result<()> {
    println!("{}", serde_json::to_string_pretty(v)?);
    Ok(())
}

fn check(files: &[PathBuf], common: &Common, as_json: bool) -> Result<ExitStatus> {
    let out = read_files(files).context("Failed to read the samples")?;
    if as_json {
        print_json(&json!({
            "records": out.samples.len() + out.rejects.len(),
            "valid": out.samples.len(),
            "rejected": out.rejects.len(),
            "problems": out.problems().collect::<Vec<_>>(),
        }))?;
    } else {
        for p in out.problems() {
            println!("{p}");
        }
    }
    if let Some(path) = &common.rejects {
        write::write_jsonl(path, out.rejects.iter().map(unread_row))?;
    }
    eprintln!(
        "checked {} records in {} file(s): {} valid, {} rejected",
        out.samples.len() + out.rejects.len(),
        files.len(),
        out.samples.len(),
        out.rejects.len()
    );
    Ok(if out.rejects.is_empty() {
        ExitStatus::Success
    } else {
        ExitStatus::Failure
    })
}

fn summary_table(s: &Summary) -> String {
    let mut rows = vec![
        vec!["samples".into(), s.count.to_string()],
        vec![
            "passed".into(),
            format!("{} ({})", s.passed, pct(s.pass_rate)),
        ],
        vec!["mean score".into(), format!("{:.1}", s.mean_score)],
        vec![
            "mean app score".into(),
            s.mean_app_score
                .map(|x| format!("{x:.1}"))
                .unwrap_or_else(|| "-".into()),
        ],
        vec![
            "app score disagrees (>=25 points)".into(),
            s.disagreements.to_string(),
        ],
    ];
    if s.unreadable > 0 {
        rows.push(vec!["unreadable listing".into(), s.unreadable.to_string()]);
    }
    for (g, r) in &s.gate_pass_rates {
        rows.push(vec![format!("gate {g}"), pct(*r)]);
    }
    let mut out = render(&["summary", "value"], &rows);
    if !s.most_failed_rules.is_empty() {
        out.push('\n');
        let rows: Vec<Vec<String>> = s
            .most_failed_rules
            .iter()
            .take(8)
            .map(|r| vec![r.id.clone(), r.failed.to_string(), pct(r.rate)])
            .collect();
        out.push_str(&render(&["most failed rule", "samples", "share"], &rows));
    }
    out
}

fn score(
    files: &[PathBuf],
    common: &Common,
    as_json: bool,
    per_sample: bool,
) -> Result<ExitStatus> {
    let rubric = rubric(common)?;
    if !as_json && !per_sample {
        // Only the summary is printed: no sample needs to be kept.
        let done =
            summarise_files(files, &rubric, PIECE_BYTES).context("Failed to read the samples")?;
        let unread = ReadOutcome {
            samples: Vec::new(),
            rejects: done.unread,
        };
        report_rejects(
            &unread,
            done.summary.count + unread.rejects.len(),
            common,
            true,
        )?;
        print!("{}", summary_table(&done.summary));
        return Ok(if unread.rejects.is_empty() {
            ExitStatus::Success
        } else {
            ExitStatus::Failure
        });
    }
    let data = load(files, common)?;
    let scored = score_all(&rubric, &data.samples);
    if as_json {
        print_json(&json!({ "samples": scored, "summary": summarise(&scored) }))?;
    } else {
        if per_sample {
            let rows: Vec<Vec<String>> = scored
                .iter()
                .map(|s| {
                    vec![
                        s.id.clone(),
                        s.score().to_string(),
                        s.app_score
                            .map(|a| format!("{a:.0}"))
                            .unwrap_or_else(|| "-".into()),
                        if s.passed() {
                            "pass".into()
                        } else {
                            "fail".into()
                        },
                        if s.disagreement {
                            "DISAGREES".into()
                        } else {
                            String::new()
                        },
                        s.reasons().first().cloned().unwrap_or_default(),
                    ]
                })
                .collect();
            println!(
                "{}",
                render(
                    &["id", "score", "app", "verdict", "flag", "first reason"],
                    &rows
                )
            );
        }
        print!("{}", summary_table(&summarise(&scored)));
    }
    Ok(if data.rejects.is_empty() {
        ExitStatus::Success
    } else {
        ExitStatus::Failure
    })
}

fn filter(
    files: &[PathBuf],
    common: &Common,
    min_score: u8,
    output: &Path,
    as_json: bool,
) -> Result<ExitStatus> {
    let rubric = rubric(common)?;
    let rejects = common.rejects.as_deref();
    let done = filter_files(files, &rubric, min_score, output, rejects, PIECE_BYTES)
        .context("Failed to filter the samples")?;
    let unread = done.unread.len();
    let read = ReadOutcome {
        samples: Vec::new(),
        rejects: done.unread,
    };
    // The rejects file is written: it holds the unread records and the dropped samples.
    report_rejects(&read, done.samples + unread, common, false)?;
    if as_json {
        print_json(
            &json!({"kept": done.kept, "rejected": done.rejected, "unreadable": unread, "min_score": min_score, "output": output}),
        )?;
    } else {
        print!("{}", summary_table(&done.summary));
        println!(
            "\nkept {} of {} samples (min score {min_score}) -> {}",
            done.kept,
            done.samples,
            output.display()
        );
        if let Some(p) = rejects {
            println!("rejected {} -> {}", done.rejected + unread, p.display());
        }
    }
    Ok(ExitStatus::Success)
}

fn dedup_cmd(
    files: &[PathBuf],
    common: &Common,
    threshold: f64,
    output: &Path,
    report: Option<&Path>,
    as_json: bool,
) -> Result<ExitStatus> {
    anyhow::ensure!(
        (0.0..=1.0).contains(&threshold),
        "--threshold must be between 0 and 1, got {threshold}"
    );
    let data = load(files, common)?;
    let rubric = rubric(common)?;
    let scores: Vec<u8> = score_all(&rubric, &data.samples)
        .iter()
        .map(|s| s.score())
        .collect();
    let cfg = DedupConfig {
        threshold,
        ..DedupConfig::default()
    };
    let started = std::time::Instant::now();
    let out = dedup::dedup(&data.samples, &scores, cfg);
    write::write_lines(
        output,
        out.keep.iter().map(|&i| data.samples[i].raw.as_str()),
    )?;
    let doc = json!({
        "input": data.samples.len(),
        "kept": out.keep.len(),
        "exact_dropped": out.exact_dropped,
        "near_dropped": out.near_dropped,
        "threshold": threshold,
        "shingle_words": cfg.shingle_words,
        "clusters": out.clusters,
    });
    if let Some(r) = report {
        write::write_string(r, &serde_json::to_string_pretty(&doc)?)?;
    }
    if as_json {
        print_json(&doc)?;
    } else {
        let rows: Vec<Vec<String>> = out
            .clusters
            .iter()
            .take(30)
            .map(|c| {
                vec![
                    format!("{:?}", c.kind).to_lowercase(),
                    c.kept.clone(),
                    c.dropped.join(", "),
                    format!("{:.2}", c.min_similarity),
                ]
            })
            .collect();
        if !rows.is_empty() {
            println!(
                "{}",
                render(&["kind", "kept", "dropped", "similarity"], &rows)
            );
        }
        if out.clusters.len() > 30 {
            println!(
                "... {} more clusters (see --report)",
                out.clusters.len() - 30
            );
        }
        println!(
            "kept {} of {} samples: {} exact and {} near duplicates dropped (threshold {threshold}) in {:.2}s -> {}",
            out.keep.len(),
            data.samples.len(),
            out.exact_dropped,
            out.near_dropped,
            started.elapsed().as_secs_f64(),
            output.display()
        );
    }
    Ok(ExitStatus::Success)
}

fn split_cmd(
    files: &[PathBuf],
    common: &Common,
    val: f64,
    seed: u64,
    output: &Path,
    as_json: bool,
) -> Result<ExitStatus> {
    anyhow::ensure!(
        (0.0..1.0).contains(&val),
        "--val must be at least 0 and below 1, got {val}"
    );
    let data = load(files, common)?;
    let sp = split::split(&data.samples, val, seed);
    let train = output.join("train.jsonl");
    let valp = output.join("val.jsonl");
    write::write_lines(
        &train,
        sp.train.iter().map(|&i| data.samples[i].raw.as_str()),
    )?;
    write::write_lines(&valp, sp.val.iter().map(|&i| data.samples[i].raw.as_str()))?;
    if as_json {
        print_json(
            &json!({"train": sp.train.len(), "val": sp.val.len(), "seed": seed, "train_file": train, "val_file": valp}),
        )?;
    } else {
        let mut per: std::collections::BTreeMap<String, (usize, usize)> = Default::default();
        for &i in &sp.train {
            per.entry(data.samples[i].category().to_owned())
                .or_default()
                .0 += 1;
        }
        for &i in &sp.val {
            per.entry(data.samples[i].category().to_owned())
                .or_default()
                .1 += 1;
        }
        let rows: Vec<Vec<String>> = per
            .into_iter()
            .map(|(c, (t, v))| vec![c, t.to_string(), v.to_string()])
            .collect();
        println!("{}", render(&["category", "train", "val"], &rows));
        println!(
            "train {} -> {}\nval {} -> {}",
            sp.train.len(),
            train.display(),
            sp.val.len(),
            valp.display()
        );
    }
    Ok(ExitStatus::Success)
}

fn augment_cmd(
    files: &[PathBuf],
    common: &Common,
    per_sample: usize,
    seed: u64,
    output: &Path,
    only_new: bool,
    as_json: bool,
) -> Result<ExitStatus> {
    let data = load(files, common)?;
    let rubric = rubric(common)?;
    let synonyms = augment::builtin_synonyms();
    let scored = score_all(&rubric, &data.samples);
    let mut rng = Rng::new(seed);
    let mut lines: Vec<String> = Vec::new();
    let mut made = 0;
    let mut ops_count: std::collections::BTreeMap<String, usize> = Default::default();
    for (s, sc) in data.samples.iter().zip(&scored) {
        if !only_new {
            lines.push(s.raw.clone());
        }
        if !sc.passed() || s.is_augmented() {
            continue;
        }
        for v in augment::augment_sample(s, &rubric, &synonyms, per_sample, &mut rng) {
            for op in &v.ops {
                *ops_count.entry(op.clone()).or_insert(0) += 1;
            }
            lines.push(v.record.to_string());
            made += 1;
        }
    }
    write::write_lines(output, lines.iter().map(String::as_str))?;
    if as_json {
        print_json(
            &json!({"input": data.samples.len(), "variants": made, "ops": ops_count, "output": output}),
        )?;
    } else {
        println!(
            "made {made} variants that pass the rubric from {} samples ({}) -> {}",
            data.samples.len(),
            ops_count
                .iter()
                .map(|(k, v)| format!("{k} {v}"))
                .collect::<Vec<_>>()
                .join(", "),
            output.display()
        );
    }
    Ok(ExitStatus::Success)
}

fn export_cmd(
    files: &[PathBuf],
    common: &Common,
    format: Format,
    tier: Option<TierArg>,
    system_file: Option<&Path>,
    output: &Path,
) -> Result<ExitStatus> {
    let data = load(files, common)?;
    let system_text = match system_file {
        Some(p) => Some(
            std::fs::read_to_string(p)
                .with_context(|| format!("Failed to read the system prompt {}", p.display()))?
                .trim_end()
                .to_owned(),
        ),
        None => tier.map(|t| Tier::from(t).system_prompt().to_owned()),
    };
    let fmt = match format {
        Format::Messages => ExportFormat::Messages,
        Format::PromptCompletion => ExportFormat::PromptCompletion,
    };
    let mut skipped = 0;
    let lines: Vec<String> = data
        .samples
        .iter()
        .filter_map(|s| {
            let l = export::export_line(s, fmt, system_text.as_deref());
            if l.is_none() {
                skipped += 1;
            }
            l
        })
        .collect();
    write::write_lines(output, lines.iter().map(String::as_str))?;
    println!(
        "exported {} samples as {:?} -> {}",
        lines.len(),
        format,
        output.display()
    );
    if skipped > 0 {
        eprintln!("warning: skipped {skipped} samples without a listing to train on");
    }
    Ok(ExitStatus::Success)
}

fn tiers_cmd(
    files: &[PathBuf],
    common: &Common,
    config: Option<&Path>,
    output: &Path,
    as_json: bool,
) -> Result<ExitStatus> {
    let cfg = match config {
        Some(p) => {
            let text = std::fs::read_to_string(p)
                .with_context(|| format!("Failed to read the tiers config {}", p.display()))?;
            TiersConfig::from_toml(&text, &p.display().to_string())?
        }
        None => TiersConfig::default(),
    };
    let data = load(files, common)?;
    let rubric = rubric(common)?;
    let scored = score_all(&rubric, &data.samples);
    let sets = match build_tiers(&cfg, &data.samples, &scored) {
        Ok(s) => s,
        Err(e) => {
            eprintln!("error: {e}");
            eprintln!("hint: lower the tier's min_samples or min_score with --config, or add samples that pass the rubric (`tierforge data score` shows why samples fail)");
            return Ok(ExitStatus::Failure);
        }
    };
    let mut rows = Vec::new();
    let mut docs = Vec::new();
    for set in &sets {
        let name = set.tier.name();
        let records = output.join(format!("{name}.jsonl"));
        let messages = output.join(format!("{name}.messages.jsonl"));
        write::write_lines(
            &records,
            set.members.iter().map(|&i| data.samples[i].raw.as_str()),
        )?;
        let lines: Vec<String> = set
            .members
            .iter()
            .filter_map(|&i| {
                export::export_line(
                    &data.samples[i],
                    ExportFormat::Messages,
                    Some(set.tier.system_prompt()),
                )
            })
            .collect();
        write::write_lines(&messages, lines.iter().map(String::as_str))?;
        rows.push(vec![
            name.to_owned(),
            set.members.len().to_string(),
            set.eligible.to_string(),
            set.spec.min_samples.to_string(),
            set.spec.min_score.to_string(),
            format!("{:.1}", set.mean_score),
            set.per_category.len().to_string(),
        ]);
        docs.push(json!({
            "tier": name, "samples": set.members.len(), "eligible": set.eligible, "min_samples": set.spec.min_samples,
            "min_score": set.spec.min_score, "max_samples": set.spec.max_samples, "mean_score": set.mean_score,
            "per_category": set.per_category, "records": records, "messages": messages,
            "ids": set.members.iter().map(|&i| data.samples[i].id.as_str()).collect::<Vec<_>>(),
        }));
    }
    let doc = json!({"tiers": docs, "config": cfg});
    write::write_string(
        &output.join("tiers.json"),
        &serde_json::to_string_pretty(&doc)?,
    )?;
    if as_json {
        print_json(&doc)?;
    } else {
        println!(
            "{}",
            render(
                &[
                    "tier",
                    "samples",
                    "eligible",
                    "min samples",
                    "min score",
                    "mean score",
                    "categories"
                ],
                &rows
            )
        );
        println!("tier sets written to {}", output.display());
    }
    Ok(ExitStatus::Success)
}

fn stats_cmd(
    files: &[PathBuf],
    common: &Common,
    svg: Option<&Path>,
    as_json: bool,
) -> Result<ExitStatus> {
    let data = load(files, common)?;
    let rubric = rubric(common)?;
    let scored = score_all(&rubric, &data.samples);
    let st = stats::stats(&data.samples, &scored);
    if let Some(p) = svg {
        write::write_string(p, &stats::stats_svg(&st))?;
    }
    if as_json {
        print_json(&serde_json::to_value(&st)?)?;
    } else {
        let rows: Vec<Vec<String>> = st
            .histogram
            .iter()
            .map(|(l, n)| {
                vec![
                    l.clone(),
                    n.to_string(),
                    "#".repeat((*n * 40).div_ceil(st.count.max(1))),
                ]
            })
            .collect();
        println!("{}", render(&["score", "samples", ""], &rows));
        let rows: Vec<Vec<String>> = st
            .per_category
            .iter()
            .map(|(c, n)| {
                vec![
                    c.clone(),
                    n.to_string(),
                    st.passed_per_category
                        .get(c)
                        .copied()
                        .unwrap_or(0)
                        .to_string(),
                ]
            })
            .collect();
        println!("{}", render(&["category", "samples", "passed"], &rows));
        if let Some(p) = svg {
            println!("chart written to {}", p.display());
        }
    }
    Ok(ExitStatus::Success)
}
