//! Corpus statistics: score histogram and per-category counts, as numbers and as an SVG.

use serde::Serialize;
use std::collections::BTreeMap;

use crate::sample::Sample;
use crate::score::Scored;
use crate::svg;

#[derive(Debug, Clone, Serialize)]
pub struct Stats {
    pub count: usize,
    /// Samples per score bucket: `0-9`, `10-19`, ..., `90-100`.
    pub histogram: Vec<(String, usize)>,
    pub per_category: BTreeMap<String, usize>,
    pub passed_per_category: BTreeMap<String, usize>,
    pub augmented: usize,
}

pub fn stats(samples: &[Sample], scored: &[Scored]) -> Stats {
    let mut hist = vec![0usize; 10];
    let mut per_category = BTreeMap::new();
    let mut passed_per_category = BTreeMap::new();
    for (s, sc) in samples.iter().zip(scored) {
        hist[(sc.score() as usize / 10).min(9)] += 1;
        let cat = if s.top_category().is_empty() {
            "(none)"
        } else {
            s.top_category()
        };
        *per_category.entry(cat.to_owned()).or_insert(0) += 1;
        if sc.passed() {
            *passed_per_category.entry(cat.to_owned()).or_insert(0) += 1;
        }
    }
    Stats {
        count: samples.len(),
        histogram: hist
            .into_iter()
            .enumerate()
            .map(|(i, n)| {
                (
                    if i == 9 {
                        "90-100".to_owned()
                    } else {
                        format!("{}-{}", i * 10, i * 10 + 9)
                    },
                    n,
                )
            })
            .collect(),
        per_category,
        passed_per_category,
        augmented: samples.iter().filter(|s| s.is_augmented()).count(),
    }
}

/// The histogram and the category counts side by side, as a standalone SVG document.
pub fn stats_svg(st: &Stats) -> String {
    let hist: Vec<(String, f64)> = st
        .histogram
        .iter()
        .map(|(l, n)| (l.clone(), *n as f64))
        .collect();
    let cats: Vec<(String, f64)> = st
        .per_category
        .iter()
        .map(|(l, n)| (l.clone(), *n as f64))
        .collect();
    let body = format!(
        "{}{}",
        svg::bar_chart(
            &format!("Compliance score ({} samples)", st.count),
            &hist,
            40.0,
            10.0,
            520.0,
            360.0,
            "#3b7dd8"
        ),
        svg::bar_chart(
            "Samples per category",
            &cats,
            620.0,
            10.0,
            420.0,
            360.0,
            "#e08a2c"
        ),
    );
    svg::document(1080.0, 400.0, &body)
}
