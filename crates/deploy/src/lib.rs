//! tierforge-deploy: from a trained adapter to models that behave in `ollama run`.
//!
//! [`go_template`] derives Ollama's Go TEMPLATE from the model's own chat template;
//! [`modelfile`] writes Modelfiles.
#![cfg_attr(not(test), deny(clippy::unwrap_used))]

pub mod bundle;
pub mod export;
pub mod gguf_write;
pub mod go_template;
pub mod hf_metadata;
pub mod modelfile;
pub mod names;
pub mod ollama;
pub mod promote;
pub mod registry;
pub mod template_check;
