//! Scoring many samples: the rubric applied in parallel, with the app's own scores beside ours
//! and a summary (count, pass rate, mean score, most failed rules).

use rayon::prelude::*;
use serde::Serialize;
use std::collections::BTreeMap;

use crate::rubric::{Report, Rubric, GATES, RULES};
use crate::sample::Sample;

/// One sample's scoring result.
#[derive(Debug, Clone, Serialize)]
pub struct Scored {
    pub id: String,
    pub file: String,
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
        file: s.origin.file.to_string(),
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
    let count = scored.len();
    let reports: Vec<&Report> = scored.iter().filter_map(|s| s.report.as_ref()).collect();
    let passed = reports.iter().filter(|r| r.passed).count();
    let total: f64 = reports.iter().map(|r| r.score as f64).sum();
    let apps: Vec<f64> = scored.iter().filter_map(|s| s.app_score).collect();
    let mut gate_pass_rates = BTreeMap::new();
    for g in GATES {
        let n = reports
            .iter()
            .filter(|r| r.gate(g).is_some_and(|x| x.passed))
            .count();
        gate_pass_rates.insert((*g).to_owned(), ratio(n, count));
    }
    // Samples that fail each rule, in one pass over the failed rules of each report (a report
    // names each rule once; a rule counts once per sample even if it did not).
    let mut failed = [0usize; RULES.len()];
    for r in &reports {
        let mut counted = [false; RULES.len()];
        for x in r.failed_rules() {
            if let Some(i) = RULES.iter().position(|spec| spec.id == x.id) {
                failed[i] += usize::from(!std::mem::replace(&mut counted[i], true));
            }
        }
    }
    let mut most_failed_rules: Vec<RuleFailures> = RULES
        .iter()
        .zip(failed)
        .filter(|&(_, failed)| failed > 0)
        .map(|(spec, failed)| RuleFailures {
            id: spec.id.to_owned(),
            failed,
            rate: ratio(failed, reports.len()),
        })
        .collect();
    most_failed_rules.sort_by(|a, b| b.failed.cmp(&a.failed).then(a.id.cmp(&b.id)));
    let mut histogram = vec![0usize; 10];
    for s in scored {
        let b = (s.score() as usize / 10).min(9);
        histogram[b] += 1;
    }
    Summary {
        count,
        unreadable: count - reports.len(),
        passed,
        pass_rate: ratio(passed, count),
        mean_score: if count == 0 {
            0.0
        } else {
            total / count as f64
        },
        mean_app_score: (!apps.is_empty()).then(|| apps.iter().sum::<f64>() / apps.len() as f64),
        disagreements: scored.iter().filter(|s| s.disagreement).count(),
        gate_pass_rates,
        most_failed_rules,
        histogram,
    }
}

fn ratio(n: usize, d: usize) -> f64 {
    if d == 0 {
        0.0
    } else {
        n as f64 / d as f64
    }
}
