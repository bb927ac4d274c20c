//! The training configuration: one TOML file per tier (`configs/basic.toml`, ...), every key
//! also a CLI flag. Unknown keys are an error that names the key.

use std::path::Path;

use serde::{Deserialize, Serialize};
use tierforge_model::Proj;

use crate::error::{Result, TrainError};

/// Learning-rate schedule after the warmup.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Schedule {
    /// Half a cosine from the peak down to zero at the last step.
    Cosine,
    /// A straight line from the peak down to zero at the last step.
    Linear,
    /// The peak learning rate throughout.
    Constant,
}

/// Every knob of a training run. Field names are the TOML keys (and, with `-` for `_`, the
/// CLI flags). The resolved value of this struct is saved in the output folder.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct TrainConfig {
    /// Seed of LoRA init, data order and dropout; the same seed gives the same run on CPU.
    pub seed: u64,
    /// LoRA rank `r`.
    pub lora_rank: usize,
    /// LoRA `alpha`; the update is scaled by `alpha / r` (or `alpha / sqrt(r)` with rsLoRA).
    pub lora_alpha: f64,
    /// Dropout probability on the LoRA input (0 disables it).
    pub lora_dropout: f64,
    /// Rank-stabilised LoRA scaling, `alpha / sqrt(r)`.
    pub use_rslora: bool,
    /// Projections that get an adapter (PEFT `target_modules`).
    pub target_modules: Vec<Proj>,
    /// Peak learning rate.
    pub learning_rate: f64,
    /// Decoupled (AdamW) weight decay.
    pub weight_decay: f64,
    pub adam_beta1: f64,
    pub adam_beta2: f64,
    pub adam_epsilon: f64,
    /// Schedule after the warmup.
    pub lr_scheduler: Schedule,
    /// Linear warmup from 0 to the peak learning rate, in optimizer steps.
    pub warmup_steps: usize,
    /// Sequences per micro-batch.
    pub batch_size: usize,
    /// Micro-batches per optimizer step.
    pub grad_accum_steps: usize,
    /// Clip the global gradient norm to this value (0 disables clipping).
    pub max_grad_norm: f64,
    /// Passes over the training data (ignored when `max_steps` is set).
    pub epochs: usize,
    /// Stop after this many optimizer steps (overrides `epochs`).
    pub max_steps: Option<usize>,
    /// Longest sequence, in tokens; longer samples are truncated (and reported).
    pub max_seq_len: usize,
    /// Write a checkpoint every N optimizer steps (0: only at the end).
    pub save_every: usize,
    /// Evaluate on the validation set every N optimizer steps (0: only at the end).
    pub eval_every: usize,
    /// Stop after this many evaluations without a better validation loss.
    pub early_stopping_patience: Option<usize>,
}

impl Default for TrainConfig {
    fn default() -> Self {
        Self {
            seed: 0,
            lora_rank: 16,
            lora_alpha: 32.0,
            lora_dropout: 0.0,
            use_rslora: false,
            target_modules: Proj::ALL.to_vec(),
            learning_rate: 2e-4,
            weight_decay: 0.0,
            adam_beta1: 0.9,
            adam_beta2: 0.999,
            adam_epsilon: 1e-8,
            lr_scheduler: Schedule::Cosine,
            warmup_steps: 0,
            batch_size: 4,
            grad_accum_steps: 1,
            max_grad_norm: 1.0,
            epochs: 3,
            max_steps: None,
            max_seq_len: 1024,
            save_every: 100,
            eval_every: 50,
            early_stopping_patience: None,
        }
    }
}

/// Keys that may differ between a checkpoint and the run that resumes it: they change how
/// long or how often, never what one step computes.
pub const RESUMABLE_KEYS: [&str; 5] = [
    "epochs",
    "max_steps",
    "save_every",
    "eval_every",
    "early_stopping_patience",
];

impl TrainConfig {
    /// Parse TOML; `origin` names the file for errors. Unknown keys are rejected by name.
    pub fn from_toml_str(text: &str, origin: &str) -> Result<Self> {
        toml::from_str::<Self>(text).map_err(|e| {
            let msg = e.message().to_string();
            let at = e
                .span()
                .map(|s| {
                    format!(
                        ":{}",
                        text[..s.start.min(text.len())].matches('\n').count() + 1
                    )
                })
                .unwrap_or_default();
            TrainError::config(format!("{origin}{at}"), msg)
        })
    }

    /// Read a TOML file.
    pub fn from_file(path: &Path) -> Result<Self> {
        let text = std::fs::read_to_string(path).map_err(|e| TrainError::io(path, e))?;
        Self::from_toml_str(&text, &path.display().to_string())
    }

    /// Check ranges; `origin` says where the values came from.
    pub fn validate(&self, origin: &str) -> Result<()> {
        let bad = |key: &str, why: String| Err(TrainError::config(origin, format!("{key}: {why}")));
        if self.lora_rank == 0 {
            return bad("lora_rank", "must be at least 1".into());
        }
        if !(self.lora_alpha.is_finite() && self.lora_alpha > 0.0) {
            return bad(
                "lora_alpha",
                format!("must be positive, got {}", self.lora_alpha),
            );
        }
        if !(0.0..1.0).contains(&self.lora_dropout) {
            return bad(
                "lora_dropout",
                format!("must be in [0, 1), got {}", self.lora_dropout),
            );
        }
        if self.target_modules.is_empty() {
            return bad("target_modules", "name at least one projection".into());
        }
        if !(self.learning_rate.is_finite() && self.learning_rate > 0.0) {
            return bad(
                "learning_rate",
                format!("must be positive, got {}", self.learning_rate),
            );
        }
        if !(self.weight_decay.is_finite() && self.weight_decay >= 0.0) {
            return bad(
                "weight_decay",
                format!("must be >= 0, got {}", self.weight_decay),
            );
        }
        for (k, v) in [
            ("adam_beta1", self.adam_beta1),
            ("adam_beta2", self.adam_beta2),
        ] {
            if !(0.0..1.0).contains(&v) {
                return bad(k, format!("must be in [0, 1), got {v}"));
            }
        }
        if !(self.adam_epsilon.is_finite() && self.adam_epsilon > 0.0) {
            return bad(
                "adam_epsilon",
                format!("must be positive, got {}", self.adam_epsilon),
            );
        }
        if self.batch_size == 0 {
            return bad("batch_size", "must be at least 1".into());
        }
        if self.grad_accum_steps == 0 {
            return bad("grad_accum_steps", "must be at least 1".into());
        }
        if !(self.max_grad_norm.is_finite() && self.max_grad_norm >= 0.0) {
            return bad(
                "max_grad_norm",
                format!("must be >= 0, got {}", self.max_grad_norm),
            );
        }
        if self.max_steps.is_none() && self.epochs == 0 {
            return bad("epochs", "must be at least 1 (or set max_steps)".into());
        }
        if self.max_steps == Some(0) {
            return bad("max_steps", "must be at least 1".into());
        }
        if self.max_seq_len < 2 {
            return bad("max_seq_len", "must be at least 2 tokens".into());
        }
        if self.early_stopping_patience == Some(0) {
            return bad("early_stopping_patience", "must be at least 1".into());
        }
        Ok(())
    }

    /// LoRA scaling: `alpha / r`, or `alpha / sqrt(r)` with rsLoRA.
    pub fn lora_scale(&self) -> f64 {
        if self.use_rslora {
            self.lora_alpha / (self.lora_rank as f64).sqrt()
        } else {
            self.lora_alpha / self.lora_rank as f64
        }
    }

    /// Keys whose values differ from `other`, as `key: ours vs theirs`, skipping
    /// [`RESUMABLE_KEYS`].
    pub fn differences(&self, other: &TrainConfig) -> Vec<String> {
        let (Ok(serde_json::Value::Object(a)), Ok(serde_json::Value::Object(b))) =
            (serde_json::to_value(self), serde_json::to_value(other))
        else {
            return vec!["(config not comparable)".into()];
        };
        a.iter()
            .filter(|(k, _)| !RESUMABLE_KEYS.contains(&k.as_str()))
            .filter_map(|(k, v)| {
                let w = b.get(k).cloned().unwrap_or(serde_json::Value::Null);
                (*v != w).then(|| format!("{k}: {v} (this run) vs {w} (checkpoint)"))
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn empty_toml_gives_defaults() {
        let c = TrainConfig::from_toml_str("", "t.toml").expect("parses");
        assert_eq!(c, TrainConfig::default());
        assert_eq!(c.target_modules.len(), 7);
    }

    #[test]
    fn keys_parse() {
        let c = TrainConfig::from_toml_str(
            "lora_rank = 8\ntarget_modules = [\"q_proj\", \"v_proj\"]\nlr_scheduler = \"linear\"\nmax_steps = 5\n",
            "t.toml",
        )
        .expect("parses");
        assert_eq!(c.lora_rank, 8);
        assert_eq!(c.target_modules, vec![Proj::QProj, Proj::VProj]);
        assert_eq!(c.lr_scheduler, Schedule::Linear);
        assert_eq!(c.max_steps, Some(5));
    }

    #[test]
    fn unknown_key_is_named() {
        let e = TrainConfig::from_toml_str("lora_rank = 8\nlearning_rat = 0.1\n", "tier.toml")
            .expect_err("unknown key");
        let s = e.to_string();
        assert!(s.contains("learning_rat"), "{s}");
        assert!(s.starts_with("tier.toml:2"), "{s}");
    }

    #[test]
    fn unknown_module_is_rejected() {
        let e =
            TrainConfig::from_toml_str("target_modules = [\"qkv\"]", "t.toml").expect_err("bad");
        assert!(e.to_string().contains("qkv"), "{e}");
    }

    #[test]
    fn validation_names_the_key() {
        let c = TrainConfig {
            lora_dropout: 1.5,
            ..TrainConfig::default()
        };
        assert!(c
            .validate("x")
            .expect_err("bad")
            .to_string()
            .contains("lora_dropout"));
        assert!(TrainConfig::default().validate("x").is_ok());
    }

    #[test]
    fn differences_skip_resumable_keys() {
        let a = TrainConfig::default();
        let b = TrainConfig {
            max_steps: Some(9),
            lora_rank: 4,
            ..TrainConfig::default()
        };
        let d = a.differences(&b);
        assert_eq!(d.len(), 1, "{d:?}");
        assert!(d[0].starts_with("lora_rank: 16"), "{d:?}");
    }

    #[test]
    fn rslora_scale() {
        let c = TrainConfig {
            lora_rank: 16,
            lora_alpha: 8.0,
            use_rslora: true,
            ..TrainConfig::default()
        };
        assert_eq!(c.lora_scale(), 2.0);
    }
}
