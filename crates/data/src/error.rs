//! Errors of the data crate. File-level failures are [`DataError`]s; record-level problems are
//! [`Problem`]s, which never abort a run: the record goes to the rejects file with its reasons.

use serde::Serialize;
use std::fmt;
use std::path::PathBuf;

/// A failure that stops the current operation (a file cannot be read or written, a bad config).
#[derive(Debug, thiserror::Error)]
pub enum DataError {
    #[error("Failed to read {path}: {source}")]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("Failed to write {path}: {source}")]
    Write {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("lexicon `{name}`: {reason}")]
    Lexicon { name: String, reason: String },
    #[error("{path}: {reason}")]
    Invalid { path: PathBuf, reason: String },
    #[error("{0}")]
    Config(String),
    #[error("tier `{tier}` cannot be filled: it needs at least {needed} samples with score >= {min_score}, found {found} ({missing} missing)")]
    TierShort {
        tier: String,
        needed: usize,
        min_score: u8,
        found: usize,
        missing: usize,
    },
}

/// One problem with one record: where it is, which field, and why.
///
/// Displays as `file:line: field: reason`, the format every command uses.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Problem {
    pub file: String,
    /// 1-based line of the record's first character.
    pub line: usize,
    /// Dotted path of the field (`output.features_formatted[2]`), or `-` for the record itself.
    pub field: String,
    /// An error class (OpenAI's checker names for chat data, `json`, `type`, `missing`, ...).
    pub class: String,
    pub reason: String,
}

impl fmt::Display for Problem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{}:{}: {}: {}",
            self.file, self.line, self.field, self.reason
        )
    }
}
