//! The evaluation half's error type (`evaluate`, `compare`, `report`).

use std::path::PathBuf;

/// Why an evaluation, comparison or report failed.
#[derive(Debug, thiserror::Error)]
pub enum EvalError {
    /// A products file line that is not a product: `path:line: field: problem`.
    #[error("{path}:{line}: {field}: {reason}")]
    Input {
        path: PathBuf,
        line: usize,
        field: String,
        reason: String,
    },
    #[error("Failed to read {path}: {source}")]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    /// A bad option or argument (what, and why).
    #[error("{0}")]
    Invalid(String),
    #[error("model {label} ({model}): {source}")]
    Model {
        label: String,
        model: String,
        source: Box<tierforge_model::ModelError>,
    },
    #[error("model {label}: adapter {adapter}: {source}")]
    Adapter {
        label: String,
        adapter: PathBuf,
        source: Box<tierforge_train::TrainError>,
    },
    #[error("model {label}: Ollama model {name}: {source}")]
    Ollama {
        label: String,
        name: String,
        source: Box<tierforge_deploy::ollama::OllamaError>,
    },
    #[error(transparent)]
    Data(#[from] Box<tierforge_data::DataError>),
    #[error("registry: {0}")]
    Registry(#[from] Box<tierforge_deploy::registry::RegistryError>),
    #[error("Failed to serialise {what}: {source}")]
    Json {
        what: String,
        source: serde_json::Error,
    },
}

pub type Result<T, E = EvalError> = std::result::Result<T, E>;

impl From<tierforge_data::DataError> for EvalError {
    fn from(e: tierforge_data::DataError) -> Self {
        EvalError::Data(Box::new(e))
    }
}

impl From<tierforge_deploy::registry::RegistryError> for EvalError {
    fn from(e: tierforge_deploy::registry::RegistryError) -> Self {
        EvalError::Registry(Box::new(e))
    }
}
