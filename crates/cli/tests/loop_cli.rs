//! `tierforge loop` through the binary, on the bundled feedback stream: an instructions-only
//! pass decides per tier from the ingested events, writes versioned prompt additions for the
//! tiers that triggered, logs every decision, and a second pass over the same feedback changes
//! nothing. A config that does not exist exits 1 and names it. (Retraining itself is covered
//! by the loop's library tests; it needs minutes of training.)

use std::path::Path;
use std::process::Output;

mod common;
use common::tierforge;

fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

fn path(p: &Path) -> &str {
    p.to_str().expect("utf8 path")
}

/// `(tier, action, instructions changed)` of each tier in a `loop --json` report.
fn actions(o: &Output) -> Vec<(String, String, Option<bool>)> {
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).expect("loop --json");
    v["tiers"]
        .as_array()
        .expect("tiers")
        .iter()
        .map(|t| {
            (
                t["tier"].as_str().expect("tier").to_string(),
                t["action"].as_str().expect("action").to_string(),
                t["instructions"]["changed"].as_bool(),
            )
        })
        .collect()
}

#[test]
fn an_instructions_only_pass_updates_the_tiers_whose_feedback_dropped_once() {
    let dir = tempfile::tempdir().expect("tmp");
    let store = dir.path().join("state.sqlite");
    let o = tierforge(&[
        "feedback",
        "ingest",
        "data/feedback.jsonl",
        "--store",
        path(&store),
        "--samples",
        "data/samples.jsonl",
    ]);
    assert!(o.status.success(), "ingest: {}", text(&o.stderr));

    let state = dir.path().join("loop");
    let config = dir.path().join("loop.toml");
    std::fs::write(
        &config,
        format!(
            "state_dir = {:?}\nstore = {:?}\nregistry = {:?}\n",
            path(&state),
            path(&store),
            path(&dir.path().join("registry.db"))
        ),
    )
    .expect("write config");
    let pass = || {
        tierforge(&[
            "loop",
            "--once",
            "--instructions-only",
            "--as-of",
            "2026-10-18",
            "--config",
            path(&config),
            "--json",
        ])
    };

    let first = pass();
    assert!(first.status.success(), "loop: {}", text(&first.stderr));
    // On the bundled stream at 2026-10-18: advanced dropped (52% over 7 days), basic's 3-day
    // average is under 75%, expert has too few recent events to decide.
    assert_eq!(
        actions(&first),
        vec![
            ("basic".into(), "instructions_only".into(), Some(true)),
            ("advanced".into(), "instructions_only".into(), Some(true)),
            ("expert".into(), "no_retrain".into(), None),
        ]
    );
    let added = std::fs::read_to_string(state.join("instructions/advanced/v0001.txt"))
        .expect("advanced v0001");
    assert!(
        added.contains("(rule "),
        "the additions name the rubric rules users' low ratings broke:\n{added}"
    );
    assert!(state.join("instructions/basic/v0001.txt").exists());
    assert!(!state.join("instructions/expert").join("v0001.txt").exists());
    let log = || {
        std::fs::read_to_string(state.join("training_log.jsonl"))
            .expect("training log")
            .lines()
            .count()
    };
    assert_eq!(log(), 3, "one decision per tier");

    // Same feedback, same time: the same decisions, no new instruction versions.
    let second = pass();
    assert!(second.status.success(), "loop: {}", text(&second.stderr));
    assert!(actions(&second)
        .iter()
        .all(|(_, _, changed)| *changed != Some(true)));
    assert!(!state.join("instructions/advanced/v0002.txt").exists());
    assert_eq!(log(), 6);
}

#[test]
fn a_missing_loop_config_exits_1_and_names_it() {
    let o = tierforge(&["loop", "--once", "--config", "no/such/loop.toml"]);
    assert_eq!(o.status.code(), Some(1), "{}", text(&o.stderr));
    assert!(text(&o.stderr).contains("no/such/loop.toml"));
}
