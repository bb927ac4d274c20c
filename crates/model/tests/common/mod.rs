//! Shared helpers for tests that run the real SmolLM2-135M-Instruct GGUF.
#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;

use tierforge_model::{LoadOptions, LoadedModel};

fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

/// Path of the SmolLM2 GGUF, fetched by `scripts/fetch-model` (a no-op when present).
/// Panics with the script's output when it fails: a missing model must fail the test run,
/// never skip it.
pub fn model_path() -> PathBuf {
    static PATH: OnceLock<PathBuf> = OnceLock::new();
    PATH.get_or_init(|| {
        let script = repo_root().join("scripts/fetch-model");
        let out = Command::new("bash")
            .arg(&script)
            .output()
            .unwrap_or_else(|e| panic!("cannot run {}: {e}", script.display()));
        if !out.status.success() {
            panic!(
                "{} failed (is PyPI reachable?):\n{}",
                script.display(),
                String::from_utf8_lossy(&out.stderr)
            );
        }
        let path = PathBuf::from(String::from_utf8_lossy(&out.stdout).trim());
        assert!(
            path.is_file(),
            "fetch-model printed {}, which is not a file",
            path.display()
        );
        path
    })
    .clone()
}

pub fn model_spec() -> String {
    model_path().display().to_string()
}

/// The model with dense f32 weights (the training path), loaded once per test binary.
pub fn dense() -> &'static LoadedModel {
    static M: OnceLock<LoadedModel> = OnceLock::new();
    M.get_or_init(|| {
        tierforge_model::load(&model_spec(), &LoadOptions::default()).expect("GGUF loads (dense)")
    })
}

/// The model with quantized weights (the fast inference path), loaded once per test binary.
pub fn quantized() -> &'static LoadedModel {
    static M: OnceLock<LoadedModel> = OnceLock::new();
    M.get_or_init(|| {
        tierforge_model::load(&model_spec(), &LoadOptions::quantized())
            .expect("GGUF loads (quantized)")
    })
}

/// A golden JSON file from tests/golden/.
pub fn golden(name: &str) -> serde_json::Value {
    let p = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/golden")
        .join(name);
    let text = std::fs::read_to_string(&p).unwrap_or_else(|e| {
        panic!(
            "{}: {e} (regenerate with scripts/make-model-goldens)",
            p.display()
        )
    });
    serde_json::from_str(&text).unwrap_or_else(|e| panic!("{}: {e}", p.display()))
}
