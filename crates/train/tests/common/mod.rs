//! Shared by the train crate's test files: the real model, fetched (once, then cached in
//! `models/`) through the project's own script.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;

/// The path of SmolLM2-135M-Instruct (Q4_1 GGUF), as `scripts/fetch-model` prints it.
pub fn model_path() -> PathBuf {
    static PATH: OnceLock<PathBuf> = OnceLock::new();
    PATH.get_or_init(|| {
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
        PathBuf::from(String::from_utf8_lossy(&out.stdout).trim())
    })
    .clone()
}
