//! The Ollama client's wire format against the documented API (docs/api.md): a local HTTP server
//! records each request and answers with documented responses, errors included. Plus an opt-in
//! live test against a real Ollama when `OLLAMA_HOST` is set.

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::sync::{Arc, Mutex};
use tierforge_deploy::ollama::{CreateRequest, Ollama, OllamaError};

#[derive(Debug, Clone)]
struct Recorded {
    method: String,
    path: String,
    body: Vec<u8>,
}

/// A canned answer: status, content type, body; `cut` closes the connection mid-body.
#[derive(Clone)]
struct Answer {
    status: u16,
    body: String,
    ndjson: bool,
    cut: bool,
}

fn answer(status: u16, body: &str) -> Answer {
    Answer {
        status,
        body: body.into(),
        ndjson: false,
        cut: false,
    }
}

fn read_request(stream: &mut TcpStream) -> Option<Recorded> {
    let mut reader = BufReader::new(stream.try_clone().ok()?);
    let mut line = String::new();
    reader.read_line(&mut line).ok()?;
    let mut parts = line.split_whitespace();
    let method = parts.next()?.to_owned();
    let path = parts.next()?.to_owned();
    let mut len = 0usize;
    let mut chunked = false;
    loop {
        let mut h = String::new();
        reader.read_line(&mut h).ok()?;
        let h = h.trim_end();
        if h.is_empty() {
            break;
        }
        let lower = h.to_ascii_lowercase();
        if let Some(v) = lower.strip_prefix("content-length:") {
            len = v.trim().parse().ok()?;
        }
        if lower.starts_with("transfer-encoding:") && lower.contains("chunked") {
            chunked = true;
        }
    }
    let mut body = Vec::new();
    if chunked {
        loop {
            let mut size = String::new();
            reader.read_line(&mut size).ok()?;
            let n = usize::from_str_radix(size.trim(), 16).ok()?;
            let mut chunk = vec![0u8; n + 2];
            reader.read_exact(&mut chunk).ok()?;
            if n == 0 {
                break;
            }
            body.extend_from_slice(&chunk[..n]);
        }
    } else {
        body.resize(len, 0);
        reader.read_exact(&mut body).ok()?;
    }
    Some(Recorded { method, path, body })
}

/// Serves the answers in order, one per request; returns the base URL and the request log.
fn serve(answers: Vec<Answer>) -> (String, Arc<Mutex<Vec<Recorded>>>) {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    let log = Arc::new(Mutex::new(Vec::new()));
    let log2 = log.clone();
    std::thread::spawn(move || {
        for a in answers {
            let Ok((mut s, _)) = listener.accept() else {
                return;
            };
            let Some(req) = read_request(&mut s) else {
                return;
            };
            log2.lock().unwrap().push(req);
            let ctype = if a.ndjson {
                "application/x-ndjson"
            } else {
                "application/json"
            };
            let body = if a.cut {
                &a.body[..a.body.len() / 2]
            } else {
                a.body.as_str()
            };
            let len = if a.cut { a.body.len() } else { body.len() };
            let head = format!("HTTP/1.1 {} X\r\nContent-Type: {ctype}\r\nContent-Length: {len}\r\nConnection: close\r\n\r\n", a.status);
            let _ = s.write_all(head.as_bytes());
            let _ = s.write_all(body.as_bytes());
            let _ = s.flush();
        }
    });
    (base, log)
}

fn create_request() -> CreateRequest {
    let mut files = BTreeMap::new();
    files.insert(
        "tierforge-basic-1.0.0.gguf".into(),
        format!("sha256:{}", "a".repeat(64)),
    );
    CreateRequest {
        model: "tierforge-basic:1.0.0".into(),
        files,
        template: "{{- range .Messages }}<|im_start|>{{ .Role }}\n{{ .Content }}<|im_end|>\n{{ end }}<|im_start|>assistant\n".into(),
        system: Some("You write product listings.".into()),
        parameters: serde_json::json!({"stop": ["<|im_end|>", "<|im_start|>"], "temperature": 0.3, "num_ctx": 2048}),
        license: None,
        stream: true,
    }
}

#[test]
fn version_blobs_and_create_follow_the_documented_api() {
    let stream = "{\"status\":\"parsing GGUF\"}\n{\"status\":\"using existing layer sha256:aa\"}\n{\"status\":\"writing manifest\"}\n{\"status\":\"success\"}\n";
    let (base, log) = serve(vec![
        answer(200, "{\"version\":\"0.32.15\"}"),
        answer(404, ""),
        answer(201, ""),
        Answer {
            status: 200,
            body: stream.into(),
            ndjson: true,
            cut: false,
        },
    ]);
    let c = Ollama::new(&base).unwrap();
    assert_eq!(c.version().unwrap(), "0.32.15");
    let dir = tempfile::tempdir().unwrap();
    let f = dir.path().join("m.gguf");
    std::fs::write(&f, b"GGUF fake weights for the wire test").unwrap();
    let mut seen = Vec::new();
    let digest = c.ensure_blob(&f, &mut |s, t| seen.push((s, t))).unwrap();
    assert_eq!(digest, tierforge_deploy::ollama::sha256_file(&f).unwrap());
    let mut statuses = Vec::new();
    c.create(&create_request(), &mut |p| statuses.push(p.status.clone()))
        .unwrap();
    assert_eq!(statuses.last().unwrap(), "success");
    let log = log.lock().unwrap();
    assert_eq!(
        (log[0].method.as_str(), log[0].path.as_str()),
        ("GET", "/api/version")
    );
    assert_eq!(
        (log[1].method.as_str(), log[1].path.as_str()),
        ("HEAD", format!("/api/blobs/{digest}").as_str())
    );
    assert_eq!(
        (log[2].method.as_str(), log[2].path.as_str()),
        ("POST", format!("/api/blobs/{digest}").as_str())
    );
    assert_eq!(log[2].body, b"GGUF fake weights for the wire test");
    assert_eq!(
        (log[3].method.as_str(), log[3].path.as_str()),
        ("POST", "/api/create")
    );
    let body: serde_json::Value = serde_json::from_slice(&log[3].body).unwrap();
    assert_eq!(body["model"], "tierforge-basic:1.0.0");
    assert!(body["files"]["tierforge-basic-1.0.0.gguf"]
        .as_str()
        .unwrap()
        .starts_with("sha256:"));
    assert_eq!(body["parameters"]["stop"][0], "<|im_end|>");
    assert!(
        body.get("modelfile").is_none(),
        "the removed Modelfile field is never sent"
    );
}

#[test]
fn api_errors_are_clear() {
    let (base, _) = serve(vec![
        answer(400, "{\"error\":\"template: ollama:1: unexpected \\\"}\\\" in operand\"}"),
        Answer { status: 200, body: "{\"status\":\"parsing GGUF\"}\n{\"error\":\"blob sha256:aa not found\"}\n".into(), ndjson: true, cut: false },
        answer(500, "{\"error\":\"out of disk\"}"),
        Answer { status: 200, body: "{\"status\":\"parsing GGUF\"}\n{\"status\":\"writing manifest\"}\n{\"status\":\"success\"}\n".into(), ndjson: true, cut: true },
    ]);
    let c = Ollama::new(&base).unwrap();
    let e = c.create(&create_request(), &mut |_| {}).unwrap_err();
    assert!(
        matches!(&e, OllamaError::Api { status: 400, message, .. } if message.contains("template")),
        "{e}"
    );
    let e = c.create(&create_request(), &mut |_| {}).unwrap_err();
    assert!(
        matches!(&e, OllamaError::Stream { message, .. } if message.contains("not found")),
        "{e}"
    );
    let e = c.create(&create_request(), &mut |_| {}).unwrap_err();
    assert!(matches!(&e, OllamaError::Api { status: 500, .. }), "{e}");
    let e = c.create(&create_request(), &mut |_| {}).unwrap_err();
    assert!(matches!(&e, OllamaError::Incomplete { .. }), "{e}");
}

#[test]
fn connection_refused_and_bad_names() {
    let port = TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let c = Ollama::new(&format!("127.0.0.1:{port}")).unwrap();
    let e = c.version().unwrap_err();
    assert!(matches!(e, OllamaError::Unreachable { .. }), "{e}");
    let mut bad = create_request();
    bad.model = "tier forge".into();
    assert!(matches!(
        c.create(&bad, &mut |_| {}).unwrap_err(),
        OllamaError::Name(_)
    ));
}

#[test]
fn copy_delete_list_and_chat_through_ollama_rs() {
    let (base, log) = serve(vec![
        answer(200, ""),
        answer(200, ""),
        answer(200, "{\"models\":[{\"name\":\"tierforge-basic:1.0.0\",\"model\":\"tierforge-basic:1.0.0\",\"modified_at\":\"2026-11-23T00:00:00Z\",\"size\":1,\"digest\":\"x\",\"details\":{}}]}"),
        answer(200, "{\"model\":\"tierforge-basic:latest\",\"created_at\":\"2026-11-23T00:00:00Z\",\"message\":{\"role\":\"assistant\",\"content\":\"{\\\"title\\\":\\\"T\\\"}\"},\"done\":true,\"done_reason\":\"stop\",\"total_duration\":1,\"load_duration\":1,\"prompt_eval_count\":3,\"prompt_eval_duration\":1,\"eval_count\":5,\"eval_duration\":500000000}"),
    ]);
    let c = Ollama::new(&base).unwrap();
    c.copy("tierforge-basic:1.0.0", "tierforge-basic:latest")
        .unwrap();
    c.delete("tierforge-basic:0.9.0").unwrap();
    assert_eq!(c.list().unwrap(), ["tierforge-basic:1.0.0"]);
    let reply = c
        .chat(
            "tierforge-basic:latest",
            &[("user", "Product: X")],
            &tierforge_deploy::ollama::ChatDecoding {
                temperature: 0.5,
                top_k: Some(40),
                top_p: Some(0.5),
                num_predict: Some(640),
                format: Some(serde_json::json!({
                    "type": "object",
                    "properties": {"title": {"type": "string"}},
                    "required": ["title"]
                })),
                ..tierforge_deploy::ollama::ChatDecoding::greedy(1)
            },
        )
        .unwrap();
    assert_eq!(reply.content, "{\"title\":\"T\"}");
    assert_eq!(reply.eval_count, Some(5));
    let log = log.lock().unwrap();
    assert_eq!(
        (log[0].method.as_str(), log[0].path.as_str()),
        ("POST", "/api/copy")
    );
    let body: serde_json::Value = serde_json::from_slice(&log[0].body).unwrap();
    assert_eq!(
        body,
        serde_json::json!({"source": "tierforge-basic:1.0.0", "destination": "tierforge-basic:latest"})
    );
    assert_eq!(
        (log[1].method.as_str(), log[1].path.as_str()),
        ("DELETE", "/api/delete")
    );
    assert_eq!(
        (log[2].method.as_str(), log[2].path.as_str()),
        ("GET", "/api/tags")
    );
    assert_eq!(
        (log[3].method.as_str(), log[3].path.as_str()),
        ("POST", "/api/chat")
    );
    let body: serde_json::Value = serde_json::from_slice(&log[3].body).unwrap();
    assert_eq!(body["messages"][0]["role"], "user");
    assert_eq!(body["options"]["temperature"], 0.5);
    // Ollama's documented option names (api.md, "Valid Parameters and Values").
    assert_eq!(body["options"]["top_k"], 40);
    assert_eq!(body["options"]["top_p"], 0.5);
    assert_eq!(body["options"]["seed"], 1);
    assert_eq!(body["options"]["num_predict"], 640);
    assert_eq!(
        body["options"]["repeat_last_n"],
        tierforge_deploy::modelfile::REPEAT_LAST_N
    );
    // Structured outputs: the schema itself is the request's `format` (api.md, "Request
    // (Structured outputs)").
    assert_eq!(
        body["format"],
        serde_json::json!({"type": "object", "properties": {"title": {"type": "string"}}, "required": ["title"]})
    );
    let penalty = body["options"]["repeat_penalty"].as_f64().unwrap();
    assert!((penalty - 1.1).abs() < 1e-6, "{penalty}");
}

/// Opt-in: with `OLLAMA_HOST` set, talks to a real Ollama (version and list only; the full
/// create-and-chat check needs a trained tier, see `tierforge deploy`).
#[test]
fn live_ollama_when_ollama_host_is_set() {
    let Some(client) = Ollama::from_env() else {
        eprintln!("OLLAMA_HOST not set: skipping the live Ollama test");
        return;
    };
    let c = client.unwrap();
    let v = c.version().unwrap();
    assert!(!v.is_empty());
    c.list().unwrap();
}

fn model_path() -> String {
    let script = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../scripts/fetch-model");
    let out = std::process::Command::new("bash")
        .arg(&script)
        .output()
        .expect("run fetch-model");
    assert!(out.status.success(), "fetch-model failed");
    String::from_utf8_lossy(&out.stdout).trim().to_string()
}

/// `build_tier` with an Ollama host uploads the merged GGUF (HEAD, then POST of exactly the
/// file's bytes) and creates the model from it; `promote` copies `:<version>` to `:latest`
/// only after the health check, and a failing copy leaves the registry as it was.
#[test]
fn build_tier_pushes_and_promote_copies_latest() {
    use tierforge_data::completion::Tier;
    use tierforge_deploy::bundle::{build_tier, TierBuild};
    use tierforge_deploy::export::Quant;
    use tierforge_deploy::promote::{self, CheckOptions, PromoteError, PromoteOptions};
    use tierforge_deploy::registry::{Registry, Status};

    let spec = model_path();
    let tmp = tempfile::tempdir().unwrap();
    let base = tierforge_deploy::export::load_base(&spec).unwrap();
    let shape = tierforge_train::lora::LoraShape {
        rank: 1,
        alpha: 2.0,
        dropout: 0.0,
        rslora: false,
        targets: vec![tierforge_model::Proj::QProj],
    };
    let mut rng = tierforge_data::rng::Rng::new(3);
    let ad = tierforge_train::lora::Adapter::init(
        &base.llama,
        shape,
        &mut rng,
        &candle_core::Device::Cpu,
    )
    .unwrap();
    let ad_dir = tmp.path().join("adapter");
    ad.save(&ad_dir, &spec).unwrap();
    drop(base);

    let create_stream = "{\"status\":\"parsing GGUF\"}\n{\"status\":\"writing manifest\"}\n{\"status\":\"success\"}\n";
    let (host, log) = serve(vec![
        answer(404, ""),
        answer(201, ""),
        Answer {
            status: 200,
            body: create_stream.into(),
            ndjson: true,
            cut: false,
        },
        // promote 1: the copy fails.
        answer(
            404,
            "{\"error\":\"model 'tierforge-basic:1.0.0' not found\"}",
        ),
        // promote 2: the copy works.
        answer(200, ""),
    ]);
    let reg_path = tmp.path().join("registry.db");
    let mut b = TierBuild::new(Tier::Basic, &spec, &ad_dir, &tmp.path().join("deploy"));
    assert_eq!(
        b.registry.as_deref(),
        Some(std::path::Path::new("runs/registry.db")),
        "the library's default registry is the CLI's"
    );
    b.registry = Some(reg_path.clone());
    b.quant = Quant::Q4_0;
    b.ollama_host = Some(host.clone());
    let bundle = build_tier(&b, &mut |_| {}).unwrap();
    assert!(bundle.pushed);
    assert_eq!(bundle.name, "tierforge-basic:1.0.0");
    {
        let log = log.lock().unwrap();
        let digest = &bundle.sha256;
        assert_eq!(
            (log[0].method.as_str(), log[0].path.as_str()),
            ("HEAD", format!("/api/blobs/{digest}").as_str())
        );
        assert_eq!(
            (log[1].method.as_str(), log[1].path.as_str()),
            ("POST", format!("/api/blobs/{digest}").as_str())
        );
        assert_eq!(log[1].body, std::fs::read(&bundle.gguf).unwrap());
        assert_eq!(log[2].path, "/api/create");
        let body: serde_json::Value = serde_json::from_slice(&log[2].body).unwrap();
        assert_eq!(body["model"], "tierforge-basic:1.0.0");
        let file = bundle.gguf.file_name().unwrap().to_str().unwrap();
        assert_eq!(body["files"][file], digest.as_str());
        assert!(body["template"].as_str().unwrap().contains("<|im_start|>"));
        assert!(body["parameters"]["stop"]
            .as_array()
            .unwrap()
            .iter()
            .any(|s| s == "<|im_end|>"));
    }
    let reg = Registry::open(&reg_path).unwrap();
    let rec = reg.get("basic", "1.0.0").unwrap();
    assert_eq!(rec.ollama_name.as_deref(), Some("tierforge-basic:1.0.0"));
    assert_eq!(rec.ollama_digest.as_deref(), Some(bundle.sha256.as_str()));
    drop(reg);

    let products = promote::read_products(
        &std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../data/eval-products.jsonl"),
        1,
    )
    .unwrap();
    let mut check = CheckOptions::new(products);
    check.max_tokens = 1;
    check.min_pass_rate = 0.0;
    let opts = PromoteOptions {
        registry: reg_path.clone(),
        tier: Tier::Basic,
        version: "1.0.0".into(),
        ollama_host: Some(host),
        check,
    };
    let e = promote::promote(&opts, &mut |_| {}).unwrap_err();
    assert!(matches!(e, PromoteError::Ollama(_)), "{e}");
    let reg = Registry::open(&reg_path).unwrap();
    assert!(
        reg.production("basic").unwrap().is_none(),
        "a failed copy promotes nothing"
    );
    drop(reg);
    let rep = promote::promote(&opts, &mut |_| {}).unwrap();
    assert!(rep.promoted);
    assert_eq!(rep.ollama_latest.as_deref(), Some("tierforge-basic:latest"));
    let log = log.lock().unwrap();
    for i in [3, 4] {
        assert_eq!(
            (log[i].method.as_str(), log[i].path.as_str()),
            ("POST", "/api/copy")
        );
        let body: serde_json::Value = serde_json::from_slice(&log[i].body).unwrap();
        assert_eq!(
            body,
            serde_json::json!({"source": "tierforge-basic:1.0.0", "destination": "tierforge-basic:latest"})
        );
    }
    let reg = Registry::open(&reg_path).unwrap();
    assert_eq!(
        reg.get("basic", "1.0.0").unwrap().status,
        Status::Production
    );
}
