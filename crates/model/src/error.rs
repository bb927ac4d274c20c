//! The crate's one error type. Every variant that comes from a user file names the file
//! (or hub repository) and says what is wrong with it.

use std::path::PathBuf;

/// Errors from loading, tokenizing, rendering and generating.
#[derive(Debug, thiserror::Error)]
pub enum ModelError {
    /// A file could not be opened, read or written.
    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    /// A GGUF file is truncated, corrupt, or lacks a value the model needs.
    #[error("{path}: invalid GGUF: {reason}")]
    Gguf { path: PathBuf, reason: String },
    /// The checkpoint is a valid file but not an architecture this crate implements.
    #[error("{path}: unsupported architecture {arch:?} (supported: llama)")]
    UnsupportedArchitecture { path: PathBuf, arch: String },
    /// A Hugging Face folder or file (config.json, safetensors, index) is missing or invalid.
    #[error("{path}: {reason}")]
    Checkpoint { path: PathBuf, reason: String },
    /// The checkpoint carries no usable tokenizer, or building it failed.
    #[error("{path}: tokenizer: {reason}")]
    Tokenizer { path: PathBuf, reason: String },
    /// Encoding or decoding text failed.
    #[error("tokenizer: {0}")]
    Encode(String),
    /// The chat template is missing, does not compile, or fails to render.
    #[error("{origin}: chat template: {reason}")]
    Template { origin: String, reason: String },
    /// The prompt does not leave room for a single generated token.
    #[error("prompt has {tokens} tokens but the context length of {model} is {context} tokens")]
    PromptTooLong {
        tokens: usize,
        context: usize,
        model: String,
    },
    /// The Hugging Face hub (or its offline cache) could not provide a file.
    #[error("hub {repo}: {reason}")]
    Hub { repo: String, reason: String },
    /// A caller passed an argument this crate cannot honour.
    #[error("{0}")]
    InvalidArgument(String),
    /// A tensor operation failed; this points at a bug or an exhausted resource, not user input.
    #[error("tensor error: {0}")]
    Candle(#[from] candle_core::Error),
}

/// Shorthand for this crate's results.
pub type Result<T, E = ModelError> = std::result::Result<T, E>;

impl ModelError {
    pub(crate) fn io(path: impl Into<PathBuf>, source: std::io::Error) -> Self {
        Self::Io {
            path: path.into(),
            source,
        }
    }
    pub(crate) fn gguf(path: impl Into<PathBuf>, reason: impl Into<String>) -> Self {
        Self::Gguf {
            path: path.into(),
            reason: reason.into(),
        }
    }
    pub(crate) fn checkpoint(path: impl Into<PathBuf>, reason: impl Into<String>) -> Self {
        Self::Checkpoint {
            path: path.into(),
            reason: reason.into(),
        }
    }
    pub(crate) fn tokenizer(path: impl Into<PathBuf>, reason: impl Into<String>) -> Self {
        Self::Tokenizer {
            path: path.into(),
            reason: reason.into(),
        }
    }
}
