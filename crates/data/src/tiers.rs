//! The three progressive training sets: basic, advanced and expert, each with a minimum size and
//! a minimum compliance score, filled with the best samples and balanced across categories.

use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

use crate::completion::Tier;
use crate::error::DataError;
use crate::rng::hash_bytes;
use crate::sample::Sample;
use crate::score::Scored;

/// One tier's selection rule.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TierSpec {
    /// The tier cannot be built with fewer samples.
    pub min_samples: usize,
    /// Minimum compliance score (0–100) of every sample in the tier.
    pub min_score: u8,
    /// At most this many samples (`None`: every eligible sample).
    #[serde(default)]
    pub max_samples: Option<usize>,
}

/// The tiers' selection rules (the `[tiers]` part of a config; `configs/tiers.toml`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TiersConfig {
    pub basic: TierSpec,
    pub advanced: TierSpec,
    pub expert: TierSpec,
    /// Orders equally scored samples.
    #[serde(default)]
    pub seed: u64,
}

impl Default for TiersConfig {
    fn default() -> Self {
        Self {
            basic: TierSpec {
                min_samples: 50,
                min_score: 70,
                max_samples: Some(60),
            },
            advanced: TierSpec {
                min_samples: 200,
                min_score: 80,
                max_samples: Some(220),
            },
            expert: TierSpec {
                min_samples: 500,
                min_score: 90,
                max_samples: None,
            },
            seed: 0,
        }
    }
}

impl TiersConfig {
    pub fn spec(&self, tier: Tier) -> TierSpec {
        match tier {
            Tier::Basic => self.basic,
            Tier::Advanced => self.advanced,
            Tier::Expert => self.expert,
        }
    }

    /// Parses a TOML config; unknown keys are errors that name the key.
    pub fn from_toml(text: &str, origin: &str) -> Result<Self, DataError> {
        toml::from_str(text).map_err(|e| DataError::Config(format!("{origin}: {e}")))
    }
}

/// One built tier.
#[derive(Debug, Clone, Serialize)]
pub struct TierSet {
    pub tier: Tier,
    pub spec: TierSpec,
    /// Indices into the samples, best first.
    pub members: Vec<usize>,
    /// Samples that met the tier's rule (before `max_samples`).
    pub eligible: usize,
    pub mean_score: f64,
    pub per_category: BTreeMap<String, usize>,
}

/// Whether a sample can train anything: a readable listing that passes the length gates.
fn trainable(s: &Scored) -> bool {
    s.report.as_ref().is_some_and(|r| {
        r.gates
            .iter()
            .filter(|g| g.id != "compliance")
            .all(|g| g.passed)
    })
}

/// Builds one tier from scored samples. Errors with the number missing when it cannot be filled.
pub fn build_tier(
    tier: Tier,
    spec: TierSpec,
    samples: &[Sample],
    scored: &[Scored],
    seed: u64,
) -> Result<TierSet, DataError> {
    let mut eligible: Vec<usize> = (0..samples.len())
        .filter(|&i| trainable(&scored[i]) && scored[i].score() >= spec.min_score)
        .collect();
    if eligible.len() < spec.min_samples {
        return Err(DataError::TierShort {
            tier: tier.to_string(),
            needed: spec.min_samples,
            min_score: spec.min_score,
            found: eligible.len(),
            missing: spec.min_samples - eligible.len(),
        });
    }
    // Best first, then a seeded order; then round-robin over categories so that a capped tier
    // still covers every category.
    eligible.sort_by_key(|&i| {
        (
            std::cmp::Reverse(scored[i].score()),
            hash_bytes(seed, samples[i].id.as_bytes()),
            i,
        )
    });
    let mut by_cat: BTreeMap<&str, std::collections::VecDeque<usize>> = BTreeMap::new();
    for &i in &eligible {
        by_cat
            .entry(samples[i].top_category())
            .or_default()
            .push_back(i);
    }
    let cap = spec.max_samples.unwrap_or(usize::MAX).max(spec.min_samples);
    let mut members = Vec::new();
    while members.len() < cap && by_cat.values().any(|q| !q.is_empty()) {
        for q in by_cat.values_mut() {
            if members.len() >= cap {
                break;
            }
            if let Some(i) = q.pop_front() {
                members.push(i);
            }
        }
    }
    let mut per_category = BTreeMap::new();
    for &i in &members {
        *per_category
            .entry(samples[i].top_category().to_owned())
            .or_insert(0) += 1;
    }
    let mean_score = members
        .iter()
        .map(|&i| scored[i].score() as f64)
        .sum::<f64>()
        / members.len().max(1) as f64;
    Ok(TierSet {
        tier,
        spec,
        eligible: eligible.len(),
        members,
        mean_score,
        per_category,
    })
}

/// Builds all three tiers, or reports every tier that cannot be filled.
pub fn build_tiers(
    cfg: &TiersConfig,
    samples: &[Sample],
    scored: &[Scored],
) -> Result<Vec<TierSet>, DataError> {
    let mut sets = Vec::new();
    let mut errors = Vec::new();
    for tier in Tier::ALL {
        match build_tier(tier, cfg.spec(tier), samples, scored, cfg.seed) {
            Ok(s) => sets.push(s),
            Err(e) => errors.push(e.to_string()),
        }
    }
    if errors.is_empty() {
        Ok(sets)
    } else {
        Err(DataError::Config(errors.join("\n")))
    }
}
