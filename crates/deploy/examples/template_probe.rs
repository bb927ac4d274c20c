//! Prints, as JSON, the Ollama TEMPLATE tierforge derives from a model's chat template and the
//! Jinja renderings of the golden conversations. `scripts/make-template-goldens` feeds this to
//! Go's own text/template and commits the result.
//!
//! Usage: cargo run -p tierforge-deploy --example template_probe -- MODEL

use tierforge_deploy::template_check::{cases, derive_for_model};

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let spec = std::env::args()
        .nth(1)
        .ok_or("usage: template_probe MODEL")?;
    let model = tierforge_model::load(&spec, &tierforge_model::LoadOptions::quantized())?;
    let derived = derive_for_model(&model)?;
    let cases: Vec<serde_json::Value> = cases()
        .into_iter()
        .map(|c| {
            let jinja = derived.jinja(&c).expect("renders");
            serde_json::json!({"messages": c.iter().map(|(r, t)| serde_json::json!({"role": r, "content": t})).collect::<Vec<_>>(), "jinja": jinja})
        })
        .collect();
    println!(
        "{}",
        serde_json::json!({"template": derived.go_template, "cases": cases})
    );
    Ok(())
}
