//! Paired comparison of two models on the same products: win/tie/loss counts by compliance
//! score, the mean score difference and the pass-rate difference, each with a seeded
//! percentile-bootstrap interval, and a verdict "B is better than A" at a chosen confidence.
//!
//! The bootstrap resamples *products* (pairs), so both differences keep the pairing: a product
//! that is hard for both models moves both scores together.

use serde::{Deserialize, Serialize};
use tierforge_data::rng::Rng;

use crate::eval_error::{EvalError, Result};
use crate::evaluate::ModelResult;

/// How comparisons are made.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CompareOptions {
    /// Two-sided level of the intervals, in (0, 1); `better` needs the whole score-difference
    /// interval above zero.
    pub confidence: f64,
    /// Score differences (points, 0–100 scale) of at most this size count as ties.
    pub epsilon: f64,
    /// Bootstrap resamples.
    pub resamples: usize,
    /// Seed of the bootstrap; the same seed gives the same interval.
    pub seed: u64,
}

impl Default for CompareOptions {
    fn default() -> Self {
        Self {
            confidence: 0.95,
            epsilon: 0.5,
            resamples: 4000,
            seed: 17,
        }
    }
}

/// A closed interval.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Interval {
    pub low: f64,
    pub high: f64,
}

impl Interval {
    pub fn contains(&self, x: f64) -> bool {
        self.low <= x && x <= self.high
    }
}

/// B against A on the same products. Differences are B − A.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Comparison {
    pub a: String,
    pub b: String,
    /// Paired products.
    pub n: usize,
    /// Products where B scored more than `epsilon` above A.
    pub wins: usize,
    pub ties: usize,
    /// Products where B scored more than `epsilon` below A.
    pub losses: usize,
    /// Mean compliance scores (a failed parse scores 0).
    pub mean_a: f64,
    pub mean_b: f64,
    /// Mean of B − A, in score points.
    pub mean_diff: f64,
    /// Percentile-bootstrap interval of `mean_diff` at `confidence`.
    pub mean_diff_ci: Interval,
    /// Rubric pass rates, 0..=1.
    pub pass_rate_a: f64,
    pub pass_rate_b: f64,
    pub pass_rate_diff: f64,
    /// Percentile-bootstrap interval of `pass_rate_diff` at `confidence`.
    pub pass_rate_diff_ci: Interval,
    pub confidence: f64,
    /// The whole `mean_diff_ci` lies above zero: B is better than A at `confidence`.
    pub better: bool,
}

impl Comparison {
    /// One plain sentence: the verdict with its evidence.
    pub fn sentence(&self) -> String {
        let lvl = format!("{:.0}%", 100.0 * self.confidence);
        let ev = format!(
            "mean score {:.1} vs {:.1}, difference {:+.1} ({lvl} interval {:+.1} to {:+.1}); pass rate {:.0}% vs {:.0}%; {} wins, {} ties, {} losses on {} products",
            self.mean_b,
            self.mean_a,
            self.mean_diff,
            self.mean_diff_ci.low,
            self.mean_diff_ci.high,
            100.0 * self.pass_rate_b,
            100.0 * self.pass_rate_a,
            self.wins,
            self.ties,
            self.losses,
            self.n
        );
        if self.better {
            format!("{} is better than {} ({ev}).", self.b, self.a)
        } else if self.mean_diff_ci.high < 0.0 {
            format!("{} is WORSE than {} ({ev}).", self.b, self.a)
        } else {
            format!(
                "{} is NOT shown to be better than {} at {lvl} confidence ({ev}).",
                self.b, self.a
            )
        }
    }
}

/// One product's outcome for the comparison: compliance score (0 for a failed parse) and
/// whether it passed the rubric.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Outcome {
    pub score: f64,
    pub passed: bool,
}

/// Compares paired outcomes (`a[i]` and `b[i]` are the same product).
pub fn compare(
    a_label: &str,
    a: &[Outcome],
    b_label: &str,
    b: &[Outcome],
    opts: &CompareOptions,
) -> Result<Comparison> {
    if a.len() != b.len() {
        return Err(EvalError::Invalid(format!(
            "cannot pair {a_label} ({} products) with {b_label} ({} products)",
            a.len(),
            b.len()
        )));
    }
    if a.is_empty() {
        return Err(EvalError::Invalid(format!(
            "no products to compare {b_label} with {a_label}"
        )));
    }
    if !(opts.confidence > 0.0 && opts.confidence < 1.0) {
        return Err(EvalError::Invalid(format!(
            "confidence must be in (0, 1), got {}",
            opts.confidence
        )));
    }
    if opts.resamples == 0 || opts.epsilon.is_nan() || opts.epsilon < 0.0 {
        return Err(EvalError::Invalid(
            "resamples must be at least 1 and epsilon at least 0".into(),
        ));
    }
    let n = a.len();
    let nf = n as f64;
    let diff: Vec<f64> = a.iter().zip(b).map(|(x, y)| y.score - x.score).collect();
    let pdiff: Vec<f64> = a
        .iter()
        .zip(b)
        .map(|(x, y)| y.passed as u8 as f64 - x.passed as u8 as f64)
        .collect();
    let wins = diff.iter().filter(|&&d| d > opts.epsilon).count();
    let losses = diff.iter().filter(|&&d| d < -opts.epsilon).count();
    let mean = |v: &[f64]| v.iter().sum::<f64>() / v.len() as f64;
    let mean_a = a.iter().map(|o| o.score).sum::<f64>() / nf;
    let mean_b = b.iter().map(|o| o.score).sum::<f64>() / nf;
    let pass_rate_a = a.iter().filter(|o| o.passed).count() as f64 / nf;
    let pass_rate_b = b.iter().filter(|o| o.passed).count() as f64 / nf;

    let mut rng = Rng::new(opts.seed);
    let mut boot_d = Vec::with_capacity(opts.resamples);
    let mut boot_p = Vec::with_capacity(opts.resamples);
    for _ in 0..opts.resamples {
        let (mut sd, mut sp) = (0.0, 0.0);
        for _ in 0..n {
            let i = rng.below(n);
            sd += diff[i];
            sp += pdiff[i];
        }
        boot_d.push(sd / nf);
        boot_p.push(sp / nf);
    }
    let mean_diff_ci = percentile_interval(&mut boot_d, opts.confidence);
    let pass_rate_diff_ci = percentile_interval(&mut boot_p, opts.confidence);
    Ok(Comparison {
        a: a_label.to_owned(),
        b: b_label.to_owned(),
        n,
        wins,
        ties: n - wins - losses,
        losses,
        mean_a,
        mean_b,
        mean_diff: mean(&diff),
        mean_diff_ci,
        pass_rate_a,
        pass_rate_b,
        pass_rate_diff: mean(&pdiff),
        pass_rate_diff_ci,
        confidence: opts.confidence,
        better: mean_diff_ci.low > 0.0,
    })
}

/// Compares two evaluated models on the products both were evaluated on (paired by id).
pub fn compare_models(
    a: &ModelResult,
    b: &ModelResult,
    opts: &CompareOptions,
) -> Result<Comparison> {
    let outcome = |r: &crate::evaluate::ProductResult| Outcome {
        score: r.score as f64,
        passed: r.passed,
    };
    let by_id: std::collections::HashMap<&str, Outcome> = b
        .products
        .iter()
        .map(|r| (r.id.as_str(), outcome(r)))
        .collect();
    let (mut oa, mut ob) = (Vec::new(), Vec::new());
    for r in &a.products {
        if let Some(o) = by_id.get(r.id.as_str()) {
            oa.push(outcome(r));
            ob.push(*o);
        }
    }
    compare(a.label(), &oa, b.label(), &ob, opts)
}

/// The two-sided percentile interval at `confidence` of `samples` (sorted in place): the
/// order statistics at ranks `floor(q·(m−1))` and `ceil(q'·(m−1))`, `q = (1−c)/2`,
/// `q' = 1 − q`, so the interval never claims more than the resamples show.
pub fn percentile_interval(samples: &mut [f64], confidence: f64) -> Interval {
    samples.sort_by(f64::total_cmp);
    let m = samples.len();
    if m == 0 {
        return Interval {
            low: f64::NAN,
            high: f64::NAN,
        };
    }
    let q = (1.0 - confidence) / 2.0;
    // The 1e-9 keeps `(1 - 0.9) / 2 * 100` (4.999...) at rank 5.
    let lo = ((q * (m - 1) as f64 + 1e-9).floor() as usize).min(m - 1);
    let hi = (((1.0 - q) * (m - 1) as f64 - 1e-9).ceil() as usize).min(m - 1);
    Interval {
        low: samples[lo],
        high: samples[hi],
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn o(score: f64, passed: bool) -> Outcome {
        Outcome { score, passed }
    }

    #[test]
    fn counts_means_and_a_clear_win() {
        // B beats A by exactly 10 points on every product: the bootstrap distribution is the
        // single value 10, so the interval is [10, 10] whatever the seed.
        let a = vec![o(60.0, false), o(70.0, false), o(80.0, true), o(0.0, false)];
        let b = vec![o(70.0, false), o(80.0, true), o(90.0, true), o(10.0, false)];
        let c = compare("base", &a, "basic", &b, &CompareOptions::default()).expect("compare");
        assert_eq!((c.wins, c.ties, c.losses), (4, 0, 0));
        assert_eq!(c.mean_a, 52.5);
        assert_eq!(c.mean_b, 62.5);
        assert_eq!(c.mean_diff, 10.0);
        assert_eq!(
            c.mean_diff_ci,
            Interval {
                low: 10.0,
                high: 10.0
            }
        );
        assert_eq!(c.pass_rate_a, 0.25);
        assert_eq!(c.pass_rate_b, 0.5);
        assert_eq!(c.pass_rate_diff, 0.25);
        assert!(c.better);
        assert!(
            c.sentence().starts_with("basic is better than base"),
            "{}",
            c.sentence()
        );
    }

    #[test]
    fn two_products_give_the_hand_computed_interval() {
        // Differences {0, 10}: a bootstrap mean is 0 (p = 1/4), 5 (1/2) or 10 (1/4), so the
        // 2.5% and 97.5% percentiles are 0 and 10 and B is not shown to be better.
        let a = vec![o(50.0, false), o(50.0, false)];
        let b = vec![o(50.0, false), o(60.0, true)];
        let c = compare("a", &a, "b", &b, &CompareOptions::default()).expect("compare");
        assert_eq!((c.wins, c.ties, c.losses), (1, 1, 0));
        assert_eq!(c.mean_diff, 5.0);
        assert_eq!(
            c.mean_diff_ci,
            Interval {
                low: 0.0,
                high: 10.0
            }
        );
        assert_eq!(
            c.pass_rate_diff_ci,
            Interval {
                low: 0.0,
                high: 1.0
            }
        );
        assert!(!c.better);
        assert!(
            c.sentence().contains("NOT shown to be better"),
            "{}",
            c.sentence()
        );
    }

    #[test]
    fn ties_within_epsilon_and_a_symmetric_case_is_not_better() {
        let a = vec![o(80.0, true), o(70.0, false), o(90.0, true), o(60.0, false)];
        let b = vec![o(80.4, true), o(80.0, true), o(80.0, true), o(60.0, false)];
        let c = compare("a", &a, "b", &b, &CompareOptions::default()).expect("compare");
        assert_eq!((c.wins, c.ties, c.losses), (1, 2, 1));
        assert!((c.mean_diff - 0.1).abs() < 1e-9);
        assert!(c.mean_diff_ci.contains(c.mean_diff));
        assert!(c.mean_diff_ci.low < 0.0 && c.mean_diff_ci.high > 0.0);
        assert!(!c.better);
    }

    #[test]
    fn worse_is_said_plainly_and_the_seed_fixes_the_interval() {
        let a: Vec<Outcome> = (0..30).map(|i| o(80.0 + (i % 5) as f64, true)).collect();
        let b: Vec<Outcome> = (0..30).map(|i| o(60.0 + (i % 7) as f64, false)).collect();
        let opts = CompareOptions::default();
        let c1 = compare("a", &a, "b", &b, &opts).expect("compare");
        let c2 = compare("a", &a, "b", &b, &opts).expect("compare");
        assert_eq!(c1, c2);
        assert!(c1.mean_diff_ci.high < 0.0 && !c1.better);
        assert!(c1.sentence().contains("WORSE"), "{}", c1.sentence());
        let other = compare("a", &a, "b", &b, &CompareOptions { seed: 99, ..opts }).expect("c");
        assert_eq!(other.mean_diff, c1.mean_diff);
    }

    #[test]
    fn the_confidence_level_matters() {
        // Eleven wins by 5 and one loss by 10: a resample's mean is (60 - 15k)/12 with k ~
        // Binomial(12, 1/12) draws of the loss, so it is positive unless k >= 4 (p ~ 1.4%).
        // At 50% B is better; at 99% the lower end is 0 (k = 4) and it is not.
        let a: Vec<Outcome> = (0..12).map(|_| o(70.0, false)).collect();
        let mut b: Vec<Outcome> = (0..12).map(|_| o(75.0, false)).collect();
        b[0] = o(60.0, false);
        let lo = CompareOptions {
            confidence: 0.5,
            ..Default::default()
        };
        let hi = CompareOptions {
            confidence: 0.99,
            ..Default::default()
        };
        assert!(compare("a", &a, "b", &b, &lo).expect("c").better);
        assert!(!compare("a", &a, "b", &b, &hi).expect("c").better);
    }

    #[test]
    fn bad_input_is_rejected() {
        let a = vec![o(1.0, false)];
        assert!(compare("a", &a, "b", &[], &CompareOptions::default()).is_err());
        assert!(compare("a", &[], "b", &[], &CompareOptions::default()).is_err());
        let bad = CompareOptions {
            confidence: 1.0,
            ..Default::default()
        };
        assert!(compare("a", &a, "b", &a, &bad).is_err());
    }

    #[test]
    fn percentile_ranks() {
        let mut v: Vec<f64> = (0..101).map(|i| i as f64).collect();
        v.reverse();
        let i = percentile_interval(&mut v, 0.9);
        assert_eq!(
            i,
            Interval {
                low: 5.0,
                high: 95.0
            }
        );
    }
}
