//! The Ollama TEMPLATE derived from SmolLM2's own chat template renders, in Go's text/template
//! (golden made by scripts/make-template-goldens), exactly what minijinja renders from the
//! training template.

use std::path::PathBuf;
use std::process::Command;
use tierforge_deploy::template_check::{cases, derive_for_model};

fn model_path() -> PathBuf {
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../..");
    let out = Command::new(root.join("scripts/fetch-model"))
        .output()
        .expect("run scripts/fetch-model");
    assert!(
        out.status.success(),
        "scripts/fetch-model failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    PathBuf::from(String::from_utf8(out.stdout).unwrap().trim())
}

#[test]
fn go_rendering_equals_the_training_template_byte_for_byte() {
    let golden: serde_json::Value =
        serde_json::from_str(include_str!("golden/go_template.json")).unwrap();
    let model = tierforge_model::load(
        model_path().to_str().unwrap(),
        &tierforge_model::LoadOptions::quantized(),
    )
    .unwrap();
    let derived = derive_for_model(&model).unwrap();
    assert_eq!(
        derived.go_template,
        golden["template"].as_str().unwrap(),
        "the derived TEMPLATE changed: rerun scripts/make-template-goldens"
    );
    let convs = cases();
    let gold = golden["cases"].as_array().unwrap();
    assert_eq!(convs.len(), gold.len());
    for (c, g) in convs.iter().zip(gold) {
        let jinja = derived.jinja(c).unwrap();
        assert_eq!(
            jinja,
            g["go"].as_str().unwrap(),
            "Go's text/template differs from minijinja for {c:?}"
        );
    }
    assert_eq!(
        derived.layout.stop_sequences(),
        ["<|im_end|>", "<|im_start|>"]
    );
}
