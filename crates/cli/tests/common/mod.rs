//! Shared by the CLI test files: the real model, fetched (once, then cached in `models/`)
//! through the project's own script.

use std::path::Path;
use std::process::Command;

/// The path of SmolLM2-135M-Instruct (Q4_1 GGUF), as `scripts/fetch-model` prints it.
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
