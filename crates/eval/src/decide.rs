//! When a tier is retrained: pure functions of its feedback outcomes, the time of the decision
//! and the thresholds (`[decide]` in `configs/loop.toml`).
//!
//! A tier is retrained when, looking back from `as_of`,
//!
//! 1. the last `window_days` days hold at least `min_events` events and their success rate
//!    (ratings of 4–5 over all events) is **under** `success_rate_below`, or
//! 2. the last `avg_days` UTC calendar days (the day of `as_of` and the ones before it) hold at
//!    least `min_events` events and the mean of their daily success rates (days without events
//!    are left out) is **under** `avg_below`.
//!
//! Both thresholds are strict: a rate exactly at the threshold does not retrain. `min_events`
//! guards both rules, so that a handful of ratings never starts a training run.

use serde::{Deserialize, Serialize};

use tierforge_data::Tier;

use crate::clock;

/// Rates within this distance of a threshold count as equal to it (floating-point noise).
const EPS: f64 = 1e-9;

/// The retrain thresholds (`[decide]` in `configs/loop.toml`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct DecideConfig {
    /// Fewest events a rule needs before it can trigger.
    pub min_events: usize,
    /// Days looked back for the success-rate rule.
    pub window_days: u32,
    /// Retrain when the window's success rate is under this (0–1).
    pub success_rate_below: f64,
    /// Calendar days averaged by the recent-average rule.
    pub avg_days: u32,
    /// Retrain when the mean daily success rate of the last `avg_days` days is under this (0–1).
    pub avg_below: f64,
}

impl Default for DecideConfig {
    fn default() -> Self {
        Self {
            min_events: 10,
            window_days: 7,
            success_rate_below: 0.70,
            avg_days: 3,
            avg_below: 0.75,
        }
    }
}

impl DecideConfig {
    /// Checks ranges; `origin` names the file for the message.
    pub fn validate(&self, origin: &str) -> Result<(), String> {
        for (key, v) in [
            ("success_rate_below", self.success_rate_below),
            ("avg_below", self.avg_below),
        ] {
            if !(0.0..=1.0).contains(&v) {
                return Err(format!(
                    "{origin}: [decide] {key} = {v}: expected a rate from 0 to 1 (0.7 for 70%)"
                ));
            }
        }
        if self.window_days == 0 || self.avg_days == 0 {
            return Err(format!(
                "{origin}: [decide] window_days and avg_days must be at least 1"
            ));
        }
        Ok(())
    }
}

/// One feedback outcome: when, and whether it was a success (rating 4–5).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Outcome {
    /// Unix seconds.
    pub ts: i64,
    pub positive: bool,
}

/// Which rule fired.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Trigger {
    LowSuccessRate,
    LowRecentAverage,
}

/// One day's count in the recent-average window.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct DayRate {
    pub day: String,
    pub events: usize,
    pub positives: usize,
}

/// The decision for one tier, with every number it rests on.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Decision {
    pub tier: Tier,
    /// RFC 3339 time the decision looks back from.
    pub as_of: String,
    pub window_days: u32,
    /// Events and successes in the window.
    pub events: usize,
    pub positives: usize,
    pub success_rate: Option<f64>,
    pub avg_days: u32,
    /// Days of the recent-average window that have events.
    pub recent_days: Vec<DayRate>,
    pub recent_events: usize,
    /// Mean of the daily success rates of `recent_days`.
    pub recent_average: Option<f64>,
    pub retrain: bool,
    pub triggers: Vec<Trigger>,
    /// One sentence with the numbers.
    pub reason: String,
}

/// Decides for one tier. `outcomes` may hold events of any time; only those with
/// `ts <= as_of` in the windows count.
pub fn decide(tier: Tier, outcomes: &[Outcome], as_of: i64, cfg: &DecideConfig) -> Decision {
    let start = as_of - i64::from(cfg.window_days) * 86400;
    let in_window: Vec<&Outcome> = outcomes
        .iter()
        .filter(|o| o.ts > start && o.ts <= as_of)
        .collect();
    let events = in_window.len();
    let positives = in_window.iter().filter(|o| o.positive).count();
    let success_rate = (events > 0).then(|| positives as f64 / events as f64);

    let last_day = clock::day_of(as_of);
    let first_day = last_day - i64::from(cfg.avg_days) + 1;
    let mut recent_days = Vec::new();
    for day in first_day..=last_day {
        let of_day: Vec<&Outcome> = outcomes
            .iter()
            .filter(|o| o.ts <= as_of && clock::day_of(o.ts) == day)
            .collect();
        if !of_day.is_empty() {
            recent_days.push(DayRate {
                day: clock::day_string(day),
                events: of_day.len(),
                positives: of_day.iter().filter(|o| o.positive).count(),
            });
        }
    }
    let recent_events: usize = recent_days.iter().map(|d| d.events).sum();
    let recent_average = (!recent_days.is_empty()).then(|| {
        recent_days
            .iter()
            .map(|d| d.positives as f64 / d.events as f64)
            .sum::<f64>()
            / recent_days.len() as f64
    });

    let mut triggers = Vec::new();
    let mut parts = Vec::new();
    match success_rate {
        Some(r) if events >= cfg.min_events && r < cfg.success_rate_below - EPS => {
            triggers.push(Trigger::LowSuccessRate);
            parts.push(format!(
                "success rate {:.1}% ({positives}/{events} in {} days) is under {:.1}%",
                r * 100.0,
                cfg.window_days,
                cfg.success_rate_below * 100.0
            ));
        }
        Some(r) if events >= cfg.min_events => parts.push(format!(
            "success rate {:.1}% ({positives}/{events} in {} days) is not under {:.1}%",
            r * 100.0,
            cfg.window_days,
            cfg.success_rate_below * 100.0
        )),
        _ => parts.push(format!(
            "{events} events in {} days, fewer than min_events = {}",
            cfg.window_days, cfg.min_events
        )),
    }
    match recent_average {
        Some(a) if recent_events >= cfg.min_events && a < cfg.avg_below - EPS => {
            triggers.push(Trigger::LowRecentAverage);
            parts.push(format!(
                "{}-day average {:.1}% ({recent_events} events) is under {:.1}%",
                cfg.avg_days,
                a * 100.0,
                cfg.avg_below * 100.0
            ));
        }
        Some(a) if recent_events >= cfg.min_events => parts.push(format!(
            "{}-day average {:.1}% ({recent_events} events) is not under {:.1}%",
            cfg.avg_days,
            a * 100.0,
            cfg.avg_below * 100.0
        )),
        _ => parts.push(format!(
            "{recent_events} events in the last {} days, fewer than min_events = {}",
            cfg.avg_days, cfg.min_events
        )),
    }
    let retrain = !triggers.is_empty();
    Decision {
        tier,
        as_of: clock::format_rfc3339(as_of),
        window_days: cfg.window_days,
        events,
        positives,
        success_rate,
        avg_days: cfg.avg_days,
        recent_days,
        recent_events,
        recent_average,
        retrain,
        triggers,
        reason: format!(
            "{}: {}",
            if retrain { "retrain" } else { "no retrain" },
            parts.join("; ")
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const DAY: i64 = 86400;

    /// `n` events on day `d` (counted from 2026-10-01), `pos` of them positive.
    fn day(d: i64, n: usize, pos: usize) -> Vec<Outcome> {
        let base = clock::parse_rfc3339("2026-10-01T00:00:00Z").unwrap() + d * DAY;
        (0..n)
            .map(|i| Outcome {
                ts: base + 3600 + i as i64 * 60,
                positive: i < pos,
            })
            .collect()
    }

    fn end_of(d: i64) -> i64 {
        clock::parse_rfc3339("2026-10-01T23:59:59Z").unwrap() + d * DAY
    }

    #[test]
    fn the_reason_carries_the_numbers() {
        let d = decide(
            Tier::Basic,
            &day(0, 10, 6),
            end_of(0),
            &DecideConfig::default(),
        );
        assert!(d.retrain);
        assert!(d.reason.contains("60.0% (6/10 in 7 days)"), "{}", d.reason);
    }
}
