//! `tierforge feedback ingest|stats`: argument plumbing and printing; the work is in
//! `tierforge_eval::feedback`.

use std::path::{Path, PathBuf};
use std::time::Instant;

use anyhow::{Context, Result};
use clap::{Args, Subcommand};

use tierforge_eval::clock;
use tierforge_eval::decide::DecideConfig;
use tierforge_eval::feedback::{self, IngestOptions, Store, DEFAULT_STORE};

use crate::ExitStatus;

#[derive(Debug, Args)]
pub struct FeedbackArgs {
    #[command(subcommand)]
    pub command: FeedbackCommand,
}

#[derive(Debug, Subcommand)]
pub enum FeedbackCommand {
    /// Store feedback events (JSONL or CSV) once each; bad rows go to --rejects.
    Ingest(IngestArgs),
    /// Daily success rate (ratings 4–5 over all) per tier, with an SVG chart.
    Stats(StatsArgs),
}

#[derive(Debug, Args)]
pub struct IngestArgs {
    /// Feedback files: JSON Lines, or CSV with a header row (`.csv`).
    #[arg(required = true, value_name = "FILE")]
    pub files: Vec<PathBuf>,
    /// The feedback store (SQLite).
    #[arg(long, value_name = "PATH", default_value = DEFAULT_STORE)]
    pub store: PathBuf,
    /// Sample files the events' content ids point into (the rated listings).
    #[arg(long, value_name = "FILE", default_value = "data/samples.jsonl")]
    pub samples: Vec<PathBuf>,
    /// Write rows that cannot be read here (JSONL: file, line, field, reason, raw row).
    #[arg(long, value_name = "FILE")]
    pub rejects: Option<PathBuf>,
    /// Extra lexicon rows for the rubric (files named like data/lexicons/*.tsv).
    #[arg(long, value_name = "DIR")]
    pub lexicons: Option<PathBuf>,
    /// Print the summary as JSON on stdout.
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, Args)]
pub struct StatsArgs {
    /// The feedback store (SQLite).
    #[arg(long, value_name = "PATH", default_value = DEFAULT_STORE)]
    pub store: PathBuf,
    /// Only the last span of feedback, e.g. 30d, 2w, 48h (back from --until).
    #[arg(long, value_name = "DURATION", value_parser = parse_duration)]
    pub since: Option<u64>,
    /// End of the period (RFC 3339 or YYYY-MM-DD); default: the newest event in the store.
    #[arg(long, value_name = "TIME", value_parser = parse_time)]
    pub until: Option<i64>,
    /// Write the daily success-rate chart here.
    #[arg(long, value_name = "FILE")]
    pub svg: Option<PathBuf>,
    /// Print the daily rows as JSON on stdout.
    #[arg(long)]
    pub json: bool,
}

/// `30d`, `2w`, `24h`, `90m`, `45s` → seconds.
pub fn parse_duration(s: &str) -> Result<u64, String> {
    clock::parse_duration(s).ok_or_else(|| {
        format!("{s:?} is not a duration: expected a number and a unit (s, m, h, d, w), e.g. 30d")
    })
}

/// RFC 3339 time or `YYYY-MM-DD` → Unix seconds. A bare date means the end of that day.
pub fn parse_time(s: &str) -> Result<i64, String> {
    let t = clock::parse_rfc3339(s).ok_or_else(|| {
        format!("{s:?} is not a time: expected 2026-10-18T23:59:59Z or 2026-10-18")
    })?;
    Ok(if s.trim().len() == 10 { t + 86399 } else { t })
}

pub fn run(args: &FeedbackArgs) -> Result<ExitStatus> {
    match &args.command {
        FeedbackCommand::Ingest(a) => ingest(a),
        FeedbackCommand::Stats(a) => stats(a),
    }
}

fn ingest(a: &IngestArgs) -> Result<ExitStatus> {
    let started = Instant::now();
    let samples: Vec<PathBuf> = a
        .samples
        .iter()
        .filter(|p| p.exists() || p.as_path() != Path::new("data/samples.jsonl"))
        .cloned()
        .collect();
    let opts = IngestOptions {
        files: a.files.clone(),
        store: a.store.clone(),
        samples,
        lexicons: a.lexicons.clone(),
    };
    let (summary, rejects) = feedback::ingest(&opts)
        .with_context(|| format!("Failed to ingest feedback into {}", a.store.display()))?;
    let mut shown = 0;
    for r in &rejects {
        for p in &r.problems {
            if shown < 20 {
                eprintln!("warning: {p}");
            }
            shown += 1;
        }
    }
    if shown > 20 {
        eprintln!("warning: ... and {} more problems", shown - 20);
    }
    if let Some(path) = &a.rejects {
        feedback::write_rejects(path, &rejects)
            .with_context(|| format!("Failed to write rejects to {}", path.display()))?;
    }
    if a.json {
        println!(
            "{}",
            serde_json::to_string_pretty(&serde_json::json!({
                "summary": summary,
                "rejects": rejects,
            }))?
        );
    } else {
        let rows = vec![
            vec!["rows read".into(), summary.rows.to_string()],
            vec!["new events".into(), summary.inserted.to_string()],
            vec!["already stored".into(), summary.duplicates.to_string()],
            vec!["rejected".into(), summary.rejected.to_string()],
            vec![
                "positive (rated output → sample)".into(),
                summary.positives.to_string(),
            ],
            vec![
                "negative with correction (→ sample)".into(),
                summary.corrections.to_string(),
            ],
            vec![
                "negative, failure example".into(),
                summary.failures.to_string(),
            ],
            vec![
                "samples passing the rubric".into(),
                summary.trainable.to_string(),
            ],
            vec![
                "samples failing the rubric".into(),
                summary.failed_rubric.to_string(),
            ],
            vec![
                "rated listing not found".into(),
                summary.unresolved.to_string(),
            ],
        ];
        print!("{}", crate::table::render(&["feedback", "count"], &rows));
    }
    eprintln!(
        "ingested {} new of {} rows ({} already stored, {} rejected) into {} in {:.1}s{}",
        summary.inserted,
        summary.rows,
        summary.duplicates,
        summary.rejected,
        summary.store,
        started.elapsed().as_secs_f64(),
        a.rejects
            .as_ref()
            .map(|p| format!("; rejects in {}", p.display()))
            .unwrap_or_default()
    );
    Ok(if summary.rejected > 0 {
        ExitStatus::Failure
    } else {
        ExitStatus::Success
    })
}

fn stats(a: &StatsArgs) -> Result<ExitStatus> {
    if !a.store.exists() {
        anyhow::bail!(
            "no feedback store at {}: run `tierforge feedback ingest FILE` first (or pass --store)",
            a.store.display()
        );
    }
    let store = Store::open(&a.store)
        .with_context(|| format!("Failed to open the feedback store {}", a.store.display()))?;
    let st = feedback::stats(&store, a.since, a.until)?;
    if let Some(svg) = &a.svg {
        let threshold = DecideConfig::default().success_rate_below;
        tierforge_data::write::write_string(svg, &feedback::stats_svg(&st, threshold))
            .with_context(|| format!("Failed to write {}", svg.display()))?;
    }
    if a.json {
        println!("{}", serde_json::to_string_pretty(&st)?);
    } else {
        let mut rows = Vec::new();
        for t in &st.tiers {
            for d in &t.days {
                rows.push(vec![
                    d.day.clone(),
                    t.tier.to_string(),
                    d.events.to_string(),
                    d.positives.to_string(),
                    format!("{:.0}%", d.success_rate * 100.0),
                ]);
            }
        }
        rows.sort();
        print!(
            "{}",
            crate::table::render(&["day", "tier", "events", "positive", "success"], &rows)
        );
        let totals: Vec<Vec<String>> = st
            .tiers
            .iter()
            .map(|t| {
                vec![
                    t.tier.to_string(),
                    t.events.to_string(),
                    t.positives.to_string(),
                    format!("{:.1}%", t.success_rate.unwrap_or(0.0) * 100.0),
                ]
            })
            .collect();
        println!();
        print!(
            "{}",
            crate::table::render(&["tier", "events", "positive", "success"], &totals)
        );
    }
    eprintln!(
        "{} tiers, {} to {}{}",
        st.tiers.len(),
        st.from.as_deref().unwrap_or("-"),
        st.to.as_deref().unwrap_or("-"),
        a.svg
            .as_ref()
            .map(|p| format!("; chart in {}", p.display()))
            .unwrap_or_default()
    );
    Ok(ExitStatus::Success)
}
