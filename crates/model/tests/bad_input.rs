//! Bad input gives an error naming the file and the reason, never a panic.

mod common;

use std::path::{Path, PathBuf};

use candle_core::quantized::gguf_file::{self, Value};
use candle_core::quantized::{GgmlDType, QTensor};
use candle_core::{Device, Tensor};
use tierforge_model::{LoadOptions, ModelError, SamplingParams};

/// Metadata of the real GGUF's tokenizer (vocabulary, merges, ...), to reuse in tiny files.
fn tokenizer_metadata() -> Vec<(String, Value)> {
    let path = common::model_path();
    let mut f = std::fs::File::open(&path).expect("model opens");
    let content = gguf_file::Content::read(&mut f).expect("model parses");
    let mut kv: Vec<(String, Value)> = content
        .metadata
        .into_iter()
        .filter(|(k, _)| k.starts_with("tokenizer."))
        .collect();
    kv.sort_by(|a, b| a.0.cmp(&b.0));
    kv
}

/// A tiny llama GGUF (1 layer, hidden 8) with the real tokenizer; `edit` changes its metadata.
fn tiny_gguf(dir: &Path, name: &str, edit: impl FnOnce(&mut Vec<(String, Value)>)) -> PathBuf {
    let (vocab, h, ff, heads, kv_heads) = (49152usize, 8usize, 16usize, 2usize, 1usize);
    let hd = h / heads;
    let mut md: Vec<(String, Value)> = vec![
        ("general.architecture".into(), Value::String("llama".into())),
        ("llama.block_count".into(), Value::U32(1)),
        ("llama.context_length".into(), Value::U32(64)),
        ("llama.embedding_length".into(), Value::U32(h as u32)),
        ("llama.feed_forward_length".into(), Value::U32(ff as u32)),
        (
            "llama.attention.head_count".into(),
            Value::U32(heads as u32),
        ),
        (
            "llama.attention.head_count_kv".into(),
            Value::U32(kv_heads as u32),
        ),
        ("llama.rope.freq_base".into(), Value::F32(10000.0)),
        (
            "llama.attention.layer_norm_rms_epsilon".into(),
            Value::F32(1e-5),
        ),
        ("llama.rope.dimension_count".into(), Value::U32(hd as u32)),
    ];
    md.extend(tokenizer_metadata());
    edit(&mut md);
    let dev = Device::Cpu;
    let t = |shape: &[usize]| {
        let n: usize = shape.iter().product();
        let v: Vec<f32> = (0..n)
            .map(|i| ((i * 7919) % 13) as f32 / 13.0 - 0.5)
            .collect();
        QTensor::quantize(
            &Tensor::from_vec(v, shape, &dev).expect("tensor"),
            GgmlDType::F32,
        )
        .expect("qtensor")
    };
    let tensors = vec![
        ("token_embd.weight", t(&[vocab, h])),
        ("output_norm.weight", t(&[h])),
        ("blk.0.attn_norm.weight", t(&[h])),
        ("blk.0.ffn_norm.weight", t(&[h])),
        ("blk.0.attn_q.weight", t(&[heads * hd, h])),
        ("blk.0.attn_k.weight", t(&[kv_heads * hd, h])),
        ("blk.0.attn_v.weight", t(&[kv_heads * hd, h])),
        ("blk.0.attn_output.weight", t(&[h, heads * hd])),
        ("blk.0.ffn_gate.weight", t(&[ff, h])),
        ("blk.0.ffn_up.weight", t(&[ff, h])),
        ("blk.0.ffn_down.weight", t(&[h, ff])),
    ];
    let path = dir.join(name);
    let mut f = std::fs::File::create(&path).expect("create");
    let md_refs: Vec<(&str, &Value)> = md.iter().map(|(k, v)| (k.as_str(), v)).collect();
    let t_refs: Vec<(&str, &QTensor)> = tensors.iter().map(|(k, v)| (*k, v)).collect();
    gguf_file::write(&mut f, &md_refs, &t_refs).expect("write gguf");
    path
}

fn load_err(path: &Path) -> ModelError {
    tierforge_model::load(&path.display().to_string(), &LoadOptions::default())
        .expect_err("load must fail")
}

#[test]
fn tiny_gguf_with_the_real_tokenizer_loads_and_generates() {
    let dir = tempfile::tempdir().expect("tempdir");
    let p = tiny_gguf(dir.path(), "tiny.gguf", |_| {});
    let m =
        tierforge_model::load(&p.display().to_string(), &LoadOptions::default()).expect("loads");
    let prompt = m.chat_prompt("hi", None).expect("prompt");
    let out = m
        .generate(
            &prompt,
            3,
            SamplingParams::greedy(),
            &mut tierforge_model::generate::NoReporter,
        )
        .expect("generates");
    assert!(out.completion_tokens <= 3);
}

#[test]
fn truncated_gguf_names_file_and_reason() {
    let dir = tempfile::tempdir().expect("tempdir");
    let bytes = std::fs::read(common::model_path()).expect("read model");
    for (name, len) in [
        ("head.gguf", 1000usize),
        ("half.gguf", bytes.len() / 2),
        ("tail.gguf", bytes.len() - 1),
    ] {
        let p = dir.path().join(name);
        std::fs::write(&p, &bytes[..len]).expect("write");
        let err = load_err(&p).to_string();
        assert!(err.contains(name) && err.contains("invalid GGUF"), "{err}");
        if len > 1000 {
            assert!(err.contains("truncated"), "{err}");
        }
    }
}

#[test]
fn corrupt_gguf_names_file_and_reason() {
    let dir = tempfile::tempdir().expect("tempdir");
    let mut bytes = std::fs::read(common::model_path()).expect("read model");
    bytes.truncate(4096);
    // A tensor-count field that cannot fit in the file.
    bytes[8..16].copy_from_slice(&u64::MAX.to_le_bytes());
    let p = dir.path().join("corrupt.gguf");
    std::fs::write(&p, &bytes).expect("write");
    let err = load_err(&p).to_string();
    assert!(
        err.contains("corrupt.gguf") && err.contains("invalid GGUF"),
        "{err}"
    );

    let p = dir.path().join("garbage.gguf");
    std::fs::write(&p, b"GGUF\x03\x00\x00\x00garbage").expect("write");
    let err = load_err(&p).to_string();
    assert!(err.contains("garbage.gguf"), "{err}");
}

#[test]
fn unsupported_architecture_is_named() {
    let dir = tempfile::tempdir().expect("tempdir");
    let p = tiny_gguf(dir.path(), "mamba.gguf", |md| {
        md[0].1 = Value::String("mamba".into());
    });
    let err = load_err(&p);
    assert!(
        matches!(err, ModelError::UnsupportedArchitecture { .. }),
        "{err}"
    );
    let msg = err.to_string();
    assert!(
        msg.contains("mamba.gguf") && msg.contains("\"mamba\""),
        "{msg}"
    );
}

#[test]
fn missing_tokenizer_is_named() {
    let dir = tempfile::tempdir().expect("tempdir");
    let p = tiny_gguf(dir.path(), "notok.gguf", |md| {
        md.retain(|(k, _)| !k.starts_with("tokenizer."))
    });
    let msg = load_err(&p).to_string();
    assert!(
        msg.contains("notok.gguf") && msg.contains("tokenizer"),
        "{msg}"
    );
}

#[test]
fn broken_chat_templates_are_named() {
    let dir = tempfile::tempdir().expect("tempdir");
    let set_template = |src: &'static str| {
        move |md: &mut Vec<(String, Value)>| {
            for (k, v) in md.iter_mut() {
                if k == "tokenizer.chat_template" {
                    *v = Value::String(src.into());
                }
            }
        }
    };
    // Does not compile: fails at load.
    let p = tiny_gguf(
        dir.path(),
        "syntax.gguf",
        set_template("{% for m in messages %}{{ m.content }}"),
    );
    let msg = load_err(&p).to_string();
    assert!(
        msg.contains("syntax.gguf") && msg.contains("chat template"),
        "{msg}"
    );
    // Compiles, fails when rendered.
    let p = tiny_gguf(
        dir.path(),
        "raises.gguf",
        set_template("{% if messages[0].role != 'system' %}{{ raise_exception('a system message is required') }}{% endif %}"),
    );
    let m =
        tierforge_model::load(&p.display().to_string(), &LoadOptions::default()).expect("loads");
    let msg = m.chat_prompt("hi", None).unwrap_err().to_string();
    assert!(
        msg.contains("raises.gguf") && msg.contains("a system message is required"),
        "{msg}"
    );
}

#[test]
fn missing_files_and_bad_specs_are_named() {
    let msg = tierforge_model::load("/no/such/model.gguf", &LoadOptions::default())
        .unwrap_err()
        .to_string();
    assert!(msg.contains("/no/such/model.gguf"), "{msg}");
    let dir = tempfile::tempdir().expect("tempdir");
    let p = dir.path().join("plain.txt");
    std::fs::write(&p, "hello").expect("write");
    let msg = load_err(&p).to_string();
    assert!(
        msg.contains("plain.txt") && msg.contains("not a GGUF"),
        "{msg}"
    );
}
