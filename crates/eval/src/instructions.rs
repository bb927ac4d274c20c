//! Instruction updates: the rubric rules that low-rated listings break most often become
//! concrete additions to the tier's system prompt. The text is made from the data (rule id, the
//! rule's own description, how often it failed, the offending spans users saw), never hand-tuned.
//!
//! Versions live under `<state>/instructions/<tier>/`: `v0001.txt`, `v0002.txt`, ... (the prompt)
//! and `v0001.json` (the counts it was made from). Version 0 is the built-in prompt of
//! `modelfiles/system/<tier>.txt`. Each proposal is rebuilt from the built-in prompt, so the same
//! feedback gives the same text and applying it twice writes no new version.

use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use tierforge_data::rubric::RULES;
use tierforge_data::Tier;

use crate::feedback::{FailureExample, Store};
use crate::loop_error::LoopError;

/// `[instructions]` in `configs/loop.toml`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct InstructionsConfig {
    /// At most this many rules become additions.
    pub top_rules: usize,
    /// A rule needs at least this many low-rated listings breaking it.
    pub min_count: usize,
    /// Days of feedback looked at, back from the decision time.
    pub lookback_days: u32,
    /// Offending spans quoted per rule.
    pub examples: usize,
}

impl Default for InstructionsConfig {
    fn default() -> Self {
        Self {
            top_rules: 3,
            min_count: 2,
            lookback_days: 30,
            examples: 2,
        }
    }
}

/// How often one rule failed among low-rated listings.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RuleCount {
    pub id: String,
    /// The rule's description from the rubric.
    pub check: String,
    /// Low-rated listings breaking it.
    pub count: usize,
    /// Low-rated listings looked at.
    pub of: usize,
    /// Offending spans, most frequent first.
    pub examples: Vec<String>,
}

/// Counts failed rules over failure examples: most frequent first, then by rule order.
pub fn count_failed_rules(failures: &[FailureExample], examples: usize) -> Vec<RuleCount> {
    let mut counts: BTreeMap<&str, (usize, BTreeMap<String, usize>)> = BTreeMap::new();
    for f in failures {
        for r in f.report.failed_rules() {
            let e = counts.entry(rule_id(&r.id)).or_default();
            e.0 += 1;
            for ev in r.evidence.iter().take(2) {
                let t: String = ev.text.trim().chars().take(40).collect();
                if !t.is_empty() && t.chars().count() < 40 {
                    *e.1.entry(t).or_default() += 1;
                }
            }
        }
    }
    let mut out: Vec<RuleCount> = counts
        .into_iter()
        .map(|(id, (count, ex))| {
            let mut ex: Vec<(String, usize)> = ex.into_iter().collect();
            ex.sort_by(|a, b| b.1.cmp(&a.1).then_with(|| a.0.cmp(&b.0)));
            RuleCount {
                id: id.to_owned(),
                check: RULES
                    .iter()
                    .find(|r| r.id == id)
                    .map_or_else(|| id.to_owned(), |r| r.check.to_owned()),
                count,
                of: failures.len(),
                examples: ex.into_iter().take(examples).map(|e| e.0).collect(),
            }
        })
        .collect();
    let order = |id: &str| RULES.iter().position(|r| r.id == id).unwrap_or(usize::MAX);
    out.sort_by(|a, b| {
        b.count
            .cmp(&a.count)
            .then_with(|| order(&a.id).cmp(&order(&b.id)))
    });
    out
}

/// Interns rule ids to the rubric's static ones (unknown ids keep a leaked-free fallback).
fn rule_id(id: &str) -> &'static str {
    RULES.iter().find(|r| r.id == id).map_or("OTHER", |r| r.id)
}

/// One addition per rule: what to do, from the rule's description, with the numbers.
pub fn additions(rules: &[RuleCount], cfg: &InstructionsConfig) -> Vec<String> {
    rules
        .iter()
        .filter(|r| r.count >= cfg.min_count && r.id != "OTHER")
        .take(cfg.top_rules)
        .map(|r| {
            let mut check = r.check.clone();
            if let Some(c) = check.get(..1) {
                check = c.to_uppercase() + &check[1..];
            }
            let ex = if r.examples.is_empty() {
                String::new()
            } else {
                format!(
                    " Never write text like {}.",
                    r.examples
                        .iter()
                        .map(|e| format!("\"{e}\""))
                        .collect::<Vec<_>>()
                        .join(" or ")
                )
            };
            format!(
                "- {check} (rule {}: broken in {} of {} listings users rated low).{ex}",
                r.id, r.count, r.of
            )
        })
        .collect()
}

/// The built-in prompt plus the additions (the prompt itself when there are none).
pub fn compose(base: &str, additions: &[String]) -> String {
    if additions.is_empty() {
        return format!("{}\n", base.trim_end());
    }
    format!(
        "{}\n\nUsers rated listings low for these problems; avoid them:\n{}\n",
        base.trim_end(),
        additions.join("\n")
    )
}

/// A unified diff of two texts (one hunk holding everything; prompts are short).
pub fn unified_diff(old: &str, new: &str, old_name: &str, new_name: &str) -> String {
    let a: Vec<&str> = old.lines().collect();
    let b: Vec<&str> = new.lines().collect();
    if a == b {
        return String::new();
    }
    // Longest common subsequence table, then a walk that emits ' ', '-' and '+' lines.
    let (n, m) = (a.len(), b.len());
    let mut lcs = vec![vec![0usize; m + 1]; n + 1];
    for i in (0..n).rev() {
        for j in (0..m).rev() {
            lcs[i][j] = if a[i] == b[j] {
                lcs[i + 1][j + 1] + 1
            } else {
                lcs[i + 1][j].max(lcs[i][j + 1])
            };
        }
    }
    let mut body = String::new();
    let (mut i, mut j) = (0, 0);
    while i < n || j < m {
        if i < n && j < m && a[i] == b[j] {
            body.push_str(&format!(" {}\n", a[i]));
            i += 1;
            j += 1;
        } else if j < m && (i == n || lcs[i][j + 1] >= lcs[i + 1][j]) {
            body.push_str(&format!("+{}\n", b[j]));
            j += 1;
        } else {
            body.push_str(&format!("-{}\n", a[i]));
            i += 1;
        }
    }
    let range = |len: usize| {
        if len == 0 {
            "0,0".to_owned()
        } else {
            format!("1,{len}")
        }
    };
    format!(
        "--- {old_name}\n+++ {new_name}\n@@ -{} +{} @@\n{body}",
        range(n),
        range(m)
    )
}

/// The versioned system prompts of the tiers under `<state>/instructions/`.
#[derive(Debug, Clone)]
pub struct InstructionStore {
    dir: PathBuf,
}

impl InstructionStore {
    pub fn new(state_dir: &Path) -> Self {
        Self {
            dir: state_dir.join("instructions"),
        }
    }

    fn tier_dir(&self, tier: Tier) -> PathBuf {
        self.dir.join(tier.name())
    }

    /// The path of a version's prompt file.
    pub fn path(&self, tier: Tier, version: u32) -> PathBuf {
        self.tier_dir(tier).join(format!("v{version:04}.txt"))
    }

    /// The current version and its text (version 0: the built-in prompt).
    pub fn current(&self, tier: Tier) -> Result<(u32, String), LoopError> {
        let dir = self.tier_dir(tier);
        let mut best = 0u32;
        if dir.is_dir() {
            for e in std::fs::read_dir(&dir).map_err(LoopError::io(&dir))? {
                let e = e.map_err(LoopError::io(&dir))?;
                let name = e.file_name().to_string_lossy().into_owned();
                if let Some(v) = name
                    .strip_prefix('v')
                    .and_then(|r| r.strip_suffix(".txt"))
                    .and_then(|n| n.parse::<u32>().ok())
                {
                    best = best.max(v);
                }
            }
        }
        if best == 0 {
            return Ok((0, format!("{}\n", tier.system_prompt())));
        }
        let p = self.path(tier, best);
        let text = std::fs::read_to_string(&p).map_err(LoopError::io(&p))?;
        Ok((best, text))
    }

    /// The text of `version` (0: the built-in prompt).
    pub fn text(&self, tier: Tier, version: u32) -> Result<String, LoopError> {
        if version == 0 {
            return Ok(format!("{}\n", tier.system_prompt()));
        }
        let p = self.path(tier, version);
        std::fs::read_to_string(&p).map_err(LoopError::io(&p))
    }

    /// The SYSTEM prompt a model trained with `version` answers under: its text, or `None` for
    /// version 0 (the tier's built-in prompt, which `ModelUnderTest` and the bundle use then).
    pub fn system_prompt(&self, tier: Tier, version: u32) -> Result<Option<String>, LoopError> {
        Ok(match version {
            0 => None,
            v => Some(self.text(tier, v)?.trim_end().to_string()),
        })
    }

    /// Writes the next version (atomically: the prompt file appears whole or not at all; its
    /// counts file is written first).
    pub fn write_next(
        &self,
        tier: Tier,
        text: &str,
        meta: &serde_json::Value,
    ) -> Result<u32, LoopError> {
        let (cur, _) = self.current(tier)?;
        let next = cur + 1;
        let meta_path = self.tier_dir(tier).join(format!("v{next:04}.json"));
        tierforge_data::write::write_string(
            &meta_path,
            &serde_json::to_string_pretty(meta).unwrap_or_default(),
        )?;
        tierforge_data::write::write_string(&self.path(tier, next), text)?;
        Ok(next)
    }
}

/// A proposed instruction update for one tier.
#[derive(Debug, Clone, Serialize)]
pub struct Proposal {
    pub tier: Tier,
    /// The version in use and the one applying this would write (same when unchanged).
    pub current_version: u32,
    pub new_version: u32,
    pub rules: Vec<RuleCount>,
    pub additions: Vec<String>,
    pub text: String,
    /// Unified diff from the current text; empty when nothing changes.
    pub diff: String,
    pub changed: bool,
    /// Set once written.
    pub path: Option<String>,
}

/// Builds the proposal for a tier from the low-rated listings of the last `lookback_days`
/// before `until`.
pub fn propose(
    store: &Store,
    instructions: &InstructionStore,
    tier: Tier,
    until: i64,
    cfg: &InstructionsConfig,
) -> Result<Proposal, LoopError> {
    let since = until - i64::from(cfg.lookback_days) * 86400;
    let failures = store.failures(tier, Some(since), Some(until))?;
    let rules = count_failed_rules(&failures, cfg.examples);
    let adds = additions(&rules, cfg);
    let text = compose(tier.system_prompt(), &adds);
    let (cur, cur_text) = instructions.current(tier)?;
    let changed = text.trim_end() != cur_text.trim_end();
    let diff = if changed {
        unified_diff(
            &cur_text,
            &text,
            &format!("{tier}/v{cur:04}.txt"),
            &format!("{tier}/v{:04}.txt", cur + 1),
        )
    } else {
        String::new()
    };
    Ok(Proposal {
        tier,
        current_version: cur,
        new_version: if changed { cur + 1 } else { cur },
        rules,
        additions: adds,
        text,
        diff,
        changed,
        path: None,
    })
}

/// Writes a changed proposal as the tier's next version; unchanged ones write nothing.
pub fn apply(instructions: &InstructionStore, p: &mut Proposal) -> Result<(), LoopError> {
    if !p.changed {
        p.path = Some(
            instructions
                .path(p.tier, p.current_version)
                .display()
                .to_string(),
        );
        return Ok(());
    }
    let meta = serde_json::json!({
        "tier": p.tier,
        "from_version": p.current_version,
        "rules": p.rules,
        "additions": p.additions,
    });
    let v = instructions.write_next(p.tier, &p.text, &meta)?;
    p.new_version = v;
    p.path = Some(instructions.path(p.tier, v).display().to_string());
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn diff_marks_added_and_removed_lines() {
        let d = unified_diff("a\nb\nc\n", "a\nc\nd\n", "old", "new");
        assert_eq!(d, "--- old\n+++ new\n@@ -1,3 +1,3 @@\n a\n-b\n c\n+d\n");
        assert_eq!(unified_diff("x\n", "x\n", "o", "n"), "");
    }
}
