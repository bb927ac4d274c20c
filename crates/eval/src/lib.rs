//! The loop's half of tierforge: evaluate models on held-out products (candle or Ollama),
//! compare them with paired statistics, write reports; ingest user feedback; decide when a
//! tier is retrained and whether the candidate is promoted.
//!
//! Module owners while the crate is being built: `evaluate`, `compare`, `report` (evaluation);
//! `feedback`, `decide`, `instructions`, `cycle` (feedback and the loop).
#![cfg_attr(not(test), deny(clippy::unwrap_used))]

pub mod compare;
mod eval_error;
pub mod evaluate;
pub mod report;

pub use compare::{compare, compare_models, CompareOptions, Comparison};
pub use eval_error::EvalError;
pub use evaluate::{
    evaluate, load_products, Backend, EvalOptions, EvalProduct, EvalReporter, EvalRun, ModelResult,
    ModelUnderTest,
};
pub use report::{store_in_registry, write_report};

/// Time helpers live in the data crate (deploy needs them too); re-exported for the loop.
pub use tierforge_data::clock;
mod csv;
pub mod cycle;
pub mod decide;
pub mod feedback;
pub mod instructions;
pub mod lock;
mod loop_error;

pub use loop_error::LoopError;
pub mod manifest;
pub mod pipeline;
pub mod profile;
