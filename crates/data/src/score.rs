//! Scoring many samples: the rubric applied in parallel, with the app's own scores beside ours
//! and a summary (count, pass rate, mean score, most failed rules).

use rayon::prelude::*;
use serde::Serialize;
use std::collections::BTreeMap;
use std::path::Path;
use std::sync::Arc;

use crate::error::DataError;
use crate::read::{read_files_in_pieces, Reject};
use crate::rubric::{Report, Rubric, GATES, RULES};
use crate::sample::Sample;

/// One sample's scoring result.
#[derive(Debug, Clone, Serialize)]
pub struct Scored {
    pub id: String,
    /// Shared with the sample's origin: one file name for all of a file's samples.
    pub file: Arc<str>,
    pub line: usize,
    /// `None` when the sample holds no readable listing (see `listing_error`).
    pub report: Option<Report>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub listing_error: Option<String>,
    /// The app's own compliance score, when the record carries one.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub app_score: Option<f64>,
    /// Set when the app's score and ours differ by at least the configured number of points.
    pub disagreement: bool,
}

impl Scored {
    pub fn score(&self) -> u8 {
        self.report.as_ref().map(|r| r.score).unwrap_or(0)
    }

    pub fn passed(&self) -> bool {
        self.report.as_ref().is_some_and(|r| r.passed)
    }

    /// Every reason this sample does not pass.
    pub fn reasons(&self) -> Vec<String> {
        match (&self.report, &self.listing_error) {
            (Some(r), _) => r.reasons(),
            (None, Some(e)) => vec![format!("listing: {e}")],
            (None, None) => vec!["listing: no assistant answer to score".into()],
        }
    }
}

/// Scores one sample.
pub fn score_sample(rubric: &Rubric, s: &Sample) -> Scored {
    let report = s
        .listing
        .as_ref()
        .map(|l| rubric.score(l, s.input.as_ref()));
    let app_score = s.app_score();
    let disagreement = match (&report, app_score) {
        (Some(r), Some(a)) => (a - r.score as f64).abs() >= rubric.config.disagreement_points,
        _ => false,
    };
    Scored {
        id: s.id.clone(),
        file: s.origin.file.clone(),
        line: s.origin.line,
        report,
        listing_error: s.listing_error.clone(),
        app_score,
        disagreement,
    }
}

/// Scores samples in parallel, keeping their order.
pub fn score_all(rubric: &Rubric, samples: &[Sample]) -> Vec<Scored> {
    samples
        .par_iter()
        .map(|s| score_sample(rubric, s))
        .collect()
}

/// What [`summarise_files`] found.
#[derive(Debug, Clone)]
pub struct FilesSummary {
    pub summary: Summary,
    /// Records that could not be read, in file order.
    pub unread: Vec<Reject>,
}

/// Reads, scores and summarises `files` a piece of `piece_bytes` at a time (see
/// [`read_files_in_pieces`]), keeping no sample: memory does not grow with the files.
pub fn summarise_files<P: AsRef<Path>>(
    files: &[P],
    rubric: &Rubric,
    piece_bytes: usize,
) -> Result<FilesSummary, DataError> {
    let mut summary = SummaryBuilder::default();
    let mut unread = Vec::new();
    read_files_in_pieces(files, piece_bytes, |piece| {
        for s in score_all(rubric, &piece.samples) {
            summary.add(&s);
        }
        unread.extend(piece.rejects);
    })?;
    Ok(FilesSummary {
        summary: summary.finish(),
        unread,
    })
}

/// How often one rule failed.
#[derive(Debug, Clone, Serialize)]
pub struct RuleFailures {
    pub id: String,
    pub failed: usize,
    /// Share of scored samples, 0–1.
    pub rate: f64,
}

/// The summary table of a scoring run.
#[derive(Debug, Clone, Serialize)]
pub struct Summary {
    pub count: usize,
    /// Samples whose listing could not be read at all.
    pub unreadable: usize,
    pub passed: usize,
    /// Share of all samples that pass every hard gate, 0–1.
    pub pass_rate: f64,
    /// Mean compliance score, 0–100 (unreadable samples count as 0).
    pub mean_score: f64,
    /// Mean of the app's own scores, where present.
    pub mean_app_score: Option<f64>,
    /// Samples whose app score disagrees with ours.
    pub disagreements: usize,
    /// Pass rate of each hard gate, 0–1.
    pub gate_pass_rates: BTreeMap<String, f64>,
    /// Rules by failure count, most failed first (only rules that failed).
    pub most_failed_rules: Vec<RuleFailures>,
    /// Count of samples per score bucket of 10 points (`0-9` ... `90-100`).
    pub histogram: Vec<usize>,
}

pub fn summarise(scored: &[Scored]) -> Summary {
    let mut summary = SummaryBuilder::default();
    for s in scored {
        summary.add(s);
    }
    summary.finish()
}

/// A [`Summary`] made one scored sample at a time, so that samples can be scored a piece at a
/// time and none of them kept ([`summarise`] is this over a slice).
#[derive(Debug, Clone)]
pub struct SummaryBuilder {
    count: usize,
    reports: usize,
    passed: usize,
    total_score: f64,
    app_scores: usize,
    total_app_score: f64,
    disagreements: usize,
    /// Samples that pass each of [`GATES`].
    gate_passes: [usize; GATES.len()],
    /// Samples that fail each of [`RULES`].
    rule_failures: [usize; RULES.len()],
    histogram: [usize; 10],
}

impl Default for SummaryBuilder {
    fn default() -> Self {
        Self {
            count: 0,
            reports: 0,
            passed: 0,
            total_score: 0.0,
            app_scores: 0,
            total_app_score: 0.0,
            disagreements: 0,
            gate_passes: [0; GATES.len()],
            rule_failures: [0; RULES.len()],
            histogram: [0; 10],
        }
    }
}

impl SummaryBuilder {
    pub fn add(&mut self, s: &Scored) {
        self.count += 1;
        if let Some(r) = &s.report {
            self.reports += 1;
            self.passed += usize::from(r.passed);
            self.total_score += r.score as f64;
            for (n, g) in self.gate_passes.iter_mut().zip(GATES) {
                *n += usize::from(r.gate(g).is_some_and(|x| x.passed));
            }
            // A report names each rule once; a rule counts once per sample even if it did not.
            let mut counted = [false; RULES.len()];
            for x in r.failed_rules() {
                if let Some(i) = RULES.iter().position(|spec| spec.id == x.id) {
                    self.rule_failures[i] += usize::from(!std::mem::replace(&mut counted[i], true));
                }
            }
        }
        if let Some(a) = s.app_score {
            self.app_scores += 1;
            self.total_app_score += a;
        }
        self.disagreements += usize::from(s.disagreement);
        self.histogram[(s.score() as usize / 10).min(9)] += 1;
    }

    pub fn finish(&self) -> Summary {
        let count = self.count;
        let gate_pass_rates = GATES
            .iter()
            .zip(self.gate_passes)
            .map(|(g, n)| ((*g).to_owned(), ratio(n, count)))
            .collect();
        let mut most_failed_rules: Vec<RuleFailures> = RULES
            .iter()
            .zip(self.rule_failures)
            .filter(|&(_, failed)| failed > 0)
            .map(|(spec, failed)| RuleFailures {
                id: spec.id.to_owned(),
                failed,
                rate: ratio(failed, self.reports),
            })
            .collect();
        most_failed_rules.sort_by(|a, b| b.failed.cmp(&a.failed).then(a.id.cmp(&b.id)));
        Summary {
            count,
            unreadable: count - self.reports,
            passed: self.passed,
            pass_rate: ratio(self.passed, count),
            mean_score: if count == 0 {
                0.0
            } else {
                self.total_score / count as f64
            },
            mean_app_score: (self.app_scores > 0)
                .then(|| self.total_app_score / self.app_scores as f64),
            disagreements: self.disagreements,
            gate_pass_rates,
            most_failed_rules,
            histogram: self.histogram.to_vec(),
        }
    }
}

fn ratio(n: usize, d: usize) -> f64 {
    if d == 0 {
        0.0
    } else {
        n as f64 / d as f64
    }
}
