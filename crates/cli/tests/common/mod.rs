//! Shared by the CLI test files: the real model, fetched (once, then cached in `models/`)
//! through the project's own script, and the binary run from the repository root.

use std::path::Path;
use std::process::{Command, Output};

/// Runs `tierforge` from the repository root (where `data/`, `configs/` and `modelfiles/` are)
/// with `OLLAMA_HOST` unset, so that no test reaches an Ollama server by accident.
#[allow(dead_code)] // not every test file runs from the root
pub fn tierforge(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_tierforge"))
        .args(args)
        .current_dir(Path::new(env!("CARGO_MANIFEST_DIR")).join("../.."))
        .env_remove("OLLAMA_HOST")
        .output()
        .expect("run tierforge")
}

/// The path of SmolLM2-135M-Instruct (Q4_1 GGUF), as `scripts/fetch-model` prints it.
#[allow(dead_code)] // not every test file needs the model
pub fn model() -> String {
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../scripts/fetch-model");
    let out = Command::new("bash")
        .arg(&script)
        .output()
        .expect("run fetch-model");
    assert!(
        out.status.success(),
        "fetch-model failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).trim().to_string()
}
