//! Errors of the feedback store and the retraining loop.

use std::path::PathBuf;

/// A failure that stops the current feedback or loop operation. Bad feedback rows are never
/// errors: they come back as [`crate::feedback::FeedbackReject`]s.
#[derive(Debug, thiserror::Error)]
pub enum LoopError {
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
    #[error("feedback store {path}: {source}")]
    Store {
        path: String,
        #[source]
        source: rusqlite::Error,
    },
    #[error(transparent)]
    Data(#[from] tierforge_data::DataError),
    #[error(transparent)]
    Registry(#[from] tierforge_deploy::registry::RegistryError),
    #[error("training failed: {0}")]
    Train(String),
    #[error("evaluation failed: {0}")]
    Eval(String),
    /// A bad `configs/loop.toml` key or value; the message names the file and key.
    #[error("{0}")]
    Config(String),
    #[error("{0}")]
    Other(String),
}

impl LoopError {
    pub(crate) fn io(path: impl Into<PathBuf>) -> impl FnOnce(std::io::Error) -> LoopError {
        let path = path.into();
        move |source| LoopError::Io { path, source }
    }
    pub(crate) fn write(path: impl Into<PathBuf>) -> impl FnOnce(std::io::Error) -> LoopError {
        let path = path.into();
        move |source| LoopError::Write { path, source }
    }
}
