//! `tierforge models list|show|promote|rollback` through the binary, on bundles that
//! `tierforge deploy` builds from a tiny (no-op) adapter on the real SmolLM2 GGUF. The health
//! check runs for real with a small token budget: with 3 tokens no reply can stop, so the check
//! fails and production must stay as it was; with `--min-pass-rate 0` it passes.

use std::path::{Path, PathBuf};
use std::process::Output;

mod common;
use common::{model, tierforge};

fn text(o: &Output) -> String {
    format!(
        "exit {:?}\nstdout:\n{}\nstderr:\n{}",
        o.status.code(),
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    )
}

/// A PEFT adapter of rank 1 on `q_proj` with zero weights (SmolLM2-135M: 30 layers, 576 wide),
/// written as safetensors by hand: the smallest adapter `deploy` accepts.
fn tiny_adapter(dir: &Path) -> PathBuf {
    let (layers, width) = (30usize, 576usize);
    std::fs::create_dir_all(dir).expect("mkdir");
    let mut header = serde_json::Map::new();
    let mut offset = 0usize;
    for l in 0..layers {
        for (ab, shape) in [("A", [1, width]), ("B", [width, 1])] {
            let n = width * 4;
            header.insert(
                format!("base_model.model.model.layers.{l}.self_attn.q_proj.lora_{ab}.weight"),
                serde_json::json!({"dtype": "F32", "shape": shape, "data_offsets": [offset, offset + n]}),
            );
            offset += n;
        }
    }
    let mut h = serde_json::Value::Object(header).to_string().into_bytes();
    while !h.len().is_multiple_of(8) {
        h.push(b' ');
    }
    let mut bytes = (h.len() as u64).to_le_bytes().to_vec();
    bytes.extend_from_slice(&h);
    bytes.resize(bytes.len() + offset, 0);
    std::fs::write(dir.join("adapter_model.safetensors"), bytes).expect("write weights");
    let cfg = serde_json::json!({
        "peft_type": "LORA", "task_type": "CAUSAL_LM", "r": 1, "lora_alpha": 2.0,
        "lora_dropout": 0.0, "target_modules": ["q_proj"], "use_rslora": false, "bias": "none",
        "fan_in_fan_out": false, "inference_mode": true, "use_dora": false,
        "base_model_name_or_path": "SmolLM2-135M-Instruct.Q4_1.gguf"
    });
    std::fs::write(dir.join("adapter_config.json"), cfg.to_string()).expect("write config");
    dir.to_path_buf()
}

#[test]
fn promote_health_check_and_rollback() {
    let tmp = tempfile::tempdir().expect("tmp");
    let reg = tmp.path().join("registry.db");
    let reg_s = reg.to_str().expect("utf8");
    let m = model();

    // No registry yet: bad input, not an empty listing.
    let o = tierforge(&["models", "list", "--registry", reg_s]);
    assert_eq!(o.status.code(), Some(1), "{}", text(&o));
    assert!(text(&o).contains("no registry"), "{}", text(&o));

    let ad = tiny_adapter(&tmp.path().join("adapter"));
    let out = tmp.path().join("deploy");
    for v in ["1.0.0", "1.1.0"] {
        let o = tierforge(&[
            "deploy",
            "--tier",
            "basic",
            "--model",
            &m,
            "--adapter",
            ad.to_str().expect("utf8"),
            "--quant",
            "q4_0",
            "--version",
            v,
            "--out",
            out.to_str().expect("utf8"),
            "--registry",
            reg_s,
        ]);
        assert_eq!(o.status.code(), Some(0), "{}", text(&o));
    }

    // Bad names are refused before anything runs.
    let o = tierforge(&[
        "models",
        "promote",
        "tierforge basic:1.0.0",
        "--registry",
        reg_s,
    ]);
    assert_eq!(o.status.code(), Some(1), "{}", text(&o));
    assert!(
        text(&o).contains("invalid Ollama model name"),
        "{}",
        text(&o)
    );
    let o = tierforge(&["models", "promote", "basic", "9.9.9", "--registry", reg_s]);
    assert_eq!(o.status.code(), Some(1), "{}", text(&o));

    // 3 tokens: no reply stops, the check fails, nothing is promoted; the failure is an event.
    let o = tierforge(&[
        "models",
        "promote",
        "tierforge-basic:1.0.0",
        "--max-tokens",
        "3",
        "--registry",
        reg_s,
        "--json",
    ]);
    assert_eq!(o.status.code(), Some(1), "{}", text(&o));
    let rep: serde_json::Value = serde_json::from_slice(&o.stdout).expect("json");
    assert_eq!(rep["promoted"], false);
    assert_eq!(rep["check"]["total"], 3);
    assert_eq!(rep["check"]["passed"], 0);
    assert_eq!(rep["check"]["products"][0]["stopped"], false);
    assert_eq!(rep["check"]["products"][0]["completion_tokens"], 3);
    let o = tierforge(&[
        "models",
        "show",
        "basic",
        "1.0.0",
        "--registry",
        reg_s,
        "--json",
    ]);
    assert_eq!(o.status.code(), Some(0), "{}", text(&o));
    let show: serde_json::Value = serde_json::from_slice(&o.stdout).expect("json");
    assert_eq!(show["status"], "candidate");
    let actions: Vec<&str> = show["events"]
        .as_array()
        .expect("events")
        .iter()
        .filter_map(|e| e["action"].as_str())
        .collect();
    assert_eq!(actions, ["register", "health_check_failed"]);

    // A zero threshold passes: 1.0.0, then 1.1.0 become production; rollback restores 1.0.0.
    for v in ["1.0.0", "1.1.0"] {
        let o = tierforge(&[
            "models",
            "promote",
            "basic",
            v,
            "--max-tokens",
            "2",
            "--check-products",
            "1",
            "--min-pass-rate",
            "0",
            "--registry",
            reg_s,
        ]);
        assert_eq!(o.status.code(), Some(0), "{}", text(&o));
        assert!(
            text(&o).contains(&format!("promoted    tierforge-basic:{v}")),
            "{}",
            text(&o)
        );
    }
    let o = tierforge(&["models", "list", "--registry", reg_s, "--json"]);
    let list: serde_json::Value = serde_json::from_slice(&o.stdout).expect("json");
    let status: Vec<(&str, &str)> = list
        .as_array()
        .expect("array")
        .iter()
        .map(|r| {
            (
                r["version"].as_str().unwrap_or(""),
                r["status"].as_str().unwrap_or(""),
            )
        })
        .collect();
    assert_eq!(status, [("1.1.0", "production"), ("1.0.0", "retired")]);
    let o = tierforge(&["models", "rollback", "basic", "--registry", reg_s]);
    assert_eq!(o.status.code(), Some(0), "{}", text(&o));
    assert!(text(&o).contains("1.1.0 -> 1.0.0"), "{}", text(&o));
    let o = tierforge(&["models", "list", "--tier", "basic", "--registry", reg_s]);
    assert_eq!(o.status.code(), Some(0), "{}", text(&o));
    let table = String::from_utf8_lossy(&o.stdout);
    assert!(
        table
            .lines()
            .any(|l| l.contains("1.0.0") && l.contains("production")),
        "{table}"
    );
    // Nothing earlier than 1.0.0: a second rollback is refused and changes nothing.
    let o = tierforge(&["models", "rollback", "basic", "--registry", reg_s]);
    assert_eq!(o.status.code(), Some(1), "{}", text(&o));
    assert!(
        text(&o).contains("no earlier production version"),
        "{}",
        text(&o)
    );
}
