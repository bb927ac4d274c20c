//! One module per command.

pub mod data;
pub mod deploy;
pub mod eval;
pub mod export;
pub mod feedback;
pub mod generate;
pub mod loop_cmd;
pub mod model;
pub mod models;
pub mod pipeline;
pub mod train;

/// Hints for errors whose fix is known, gathered in one place.
pub fn hints(e: &anyhow::Error) -> Vec<String> {
    let mut out = Vec::new();
    for cause in e.chain() {
        let msg = cause.to_string();
        if msg.contains("cannot be filled") {
            out.push("lower the tier's `min_samples`/`min_score` in the tiers config, or add more samples that pass the rubric (`tierforge data score` shows why samples fail)".into());
        }
        if msg.contains("No such file or directory") {
            out.push(
                "check the path; relative paths are resolved from the current directory".into(),
            );
        }
    }
    out.dedup();
    out
}
