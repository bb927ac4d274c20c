//! `tierforge export` and `tierforge deploy` through the binary: bad input is exit code 1 with
//! the path named, and nothing is written.

use std::process::{Command, Output};

mod common;
use common::model;

fn tierforge(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_tierforge"))
        .args(args)
        .env_remove("OLLAMA_HOST")
        .output()
        .expect("run tierforge")
}

#[test]
fn missing_adapter_is_bad_input_and_writes_nothing() {
    let dir = tempfile::tempdir().expect("tmp");
    let out = dir.path().join("m.gguf");
    let missing = dir.path().join("no-adapter");
    let m = model();
    let o = tierforge(&[
        "export",
        "--model",
        &m,
        "--adapter",
        missing.to_str().expect("utf8"),
        "--format",
        "gguf",
        "--quant",
        "f16",
        "-o",
        out.to_str().expect("utf8"),
    ]);
    assert_eq!(
        o.status.code(),
        Some(1),
        "{}",
        String::from_utf8_lossy(&o.stderr)
    );
    let e = String::from_utf8_lossy(&o.stderr);
    assert!(
        e.contains("no-adapter") && e.contains("no such folder"),
        "{e}"
    );
    assert!(!out.exists());

    let reg = dir.path().join("reg.db");
    let o = tierforge(&[
        "deploy",
        "--tier",
        "basic",
        "--model",
        &m,
        "--adapter",
        missing.to_str().expect("utf8"),
        "--out",
        dir.path().join("deploy").to_str().expect("utf8"),
        "--registry",
        reg.to_str().expect("utf8"),
    ]);
    assert_eq!(
        o.status.code(),
        Some(1),
        "{}",
        String::from_utf8_lossy(&o.stderr)
    );
    let o = tierforge(&["deploy", "--tier", "premium", "--adapter", "x"]);
    assert_eq!(o.status.code(), Some(2), "clap rejects an unknown tier");
}
