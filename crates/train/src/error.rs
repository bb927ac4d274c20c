//! The crate's one error type. Errors about user input name the file, sample or key at fault.

use std::path::PathBuf;

/// Errors from configuring, preparing and running a training job.
#[derive(Debug, thiserror::Error)]
pub enum TrainError {
    /// A file or folder could not be read or written.
    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    /// The training configuration (TOML file or flags) is invalid.
    #[error("{origin}: {reason}")]
    Config { origin: String, reason: String },
    /// The training or validation data cannot be trained on.
    #[error("{origin}: {reason}")]
    Data { origin: String, reason: String },
    /// A checkpoint or adapter folder is missing, corrupt, or does not match this run.
    #[error("{path}: {reason}")]
    Checkpoint { path: PathBuf, reason: String },
    /// The loss stopped being a finite number; the last good checkpoint is kept.
    #[error("the loss became {loss} at step {step}; training stopped{}", match .last_good { Some(p) => format!(", the last good checkpoint is {}", p.display()), None => ", no checkpoint had been written yet".to_string() })]
    NonFiniteLoss {
        step: usize,
        loss: f64,
        last_good: Option<PathBuf>,
    },
    /// The requested device is not available in this build or on this machine.
    #[error("{0}")]
    Device(String),
    /// Loading the model, tokenizing or rendering the chat template failed.
    #[error(transparent)]
    Model(#[from] tierforge_model::ModelError),
    /// Reading the data files failed.
    #[error(transparent)]
    DataFile(#[from] tierforge_data::DataError),
    /// A tensor operation failed; this points at a bug or an exhausted resource, not user input.
    #[error("tensor error: {0}")]
    Candle(#[from] candle_core::Error),
}

/// Shorthand for this crate's results.
pub type Result<T, E = TrainError> = std::result::Result<T, E>;

impl TrainError {
    pub(crate) fn io(path: impl Into<PathBuf>, source: std::io::Error) -> Self {
        Self::Io {
            path: path.into(),
            source,
        }
    }
    pub(crate) fn config(origin: impl Into<String>, reason: impl Into<String>) -> Self {
        Self::Config {
            origin: origin.into(),
            reason: reason.into(),
        }
    }
    pub(crate) fn data(origin: impl Into<String>, reason: impl Into<String>) -> Self {
        Self::Data {
            origin: origin.into(),
            reason: reason.into(),
        }
    }
    pub(crate) fn checkpoint(path: impl Into<PathBuf>, reason: impl Into<String>) -> Self {
        Self::Checkpoint {
            path: path.into(),
            reason: reason.into(),
        }
    }
}
