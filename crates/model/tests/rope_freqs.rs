//! Llama 3 rope scaling as llama.cpp's converter writes it: no metadata key, only the
//! `rope_freqs.weight` tensor of per-pair frequency divisors. Tiny GGUFs written here go through
//! the real loader, `model info` and `convert`.

use std::path::{Path, PathBuf};

use candle_core::quantized::gguf_file::{self, Value};
use candle_core::quantized::{GgmlDType, QTensor};
use candle_core::{Device, Tensor};
use tierforge_model::{LoadOptions, LoadedModel, RopeScaling};

const HEAD_DIM: usize = 16;
const THETA: f32 = 10_000.0;

/// Scaling that changes the tiny model's rope (wavelengths 6.3 to 19869): factor 1 for the
/// first pair, 8 from the fourth on, in between for the second and third.
fn llama3() -> RopeScaling {
    RopeScaling {
        factor: 8.0,
        low_freq_factor: 1.0,
        high_freq_factor: 4.0,
        original_max_position_embeddings: 64,
        rope_type: "llama3".into(),
    }
}

/// A tiny llama GGUF (1 layer, hidden 64, 4 heads of 16, 2 kv heads, 32 tokens of a
/// byte-level BPE vocabulary), F32 weights, with `rope_freqs.weight` when `factors` is given.
fn tiny_gguf(path: &Path, factors: Option<&[f32]>) -> PathBuf {
    let (vocab, h, ff, heads, kv_heads) = (32usize, 64usize, 96usize, 4usize, 2usize);
    // Byte-level BPE: an end-of-text token, the letters, and a few merges.
    let mut tokens: Vec<String> = vec!["<|endoftext|>".into()];
    tokens.extend(('a'..='z').map(String::from));
    tokens.extend(["ab", "\u{120}", "\u{120}a", "ba", "bb"].map(String::from));
    assert_eq!(tokens.len(), vocab);
    let types: Vec<Value> = (0..vocab)
        .map(|i| Value::I32(if i == 0 { 3 } else { 1 }))
        .collect();
    let merges: Vec<Value> = ["a b", "\u{120} a", "b a", "b b"]
        .map(|m| Value::String(m.into()))
        .to_vec();
    let md: Vec<(&str, Value)> = vec![
        ("general.architecture", Value::String("llama".into())),
        ("llama.block_count", Value::U32(1)),
        ("llama.context_length", Value::U32(64)),
        ("llama.embedding_length", Value::U32(h as u32)),
        ("llama.feed_forward_length", Value::U32(ff as u32)),
        ("llama.attention.head_count", Value::U32(heads as u32)),
        ("llama.attention.head_count_kv", Value::U32(kv_heads as u32)),
        ("llama.rope.freq_base", Value::F32(THETA)),
        ("llama.attention.layer_norm_rms_epsilon", Value::F32(1e-5)),
        ("llama.rope.dimension_count", Value::U32(HEAD_DIM as u32)),
        ("tokenizer.ggml.model", Value::String("gpt2".into())),
        ("tokenizer.ggml.pre", Value::String("gpt2".into())),
        (
            "tokenizer.ggml.tokens",
            Value::Array(tokens.into_iter().map(Value::String).collect()),
        ),
        ("tokenizer.ggml.token_type", Value::Array(types)),
        ("tokenizer.ggml.merges", Value::Array(merges)),
        ("tokenizer.ggml.eos_token_id", Value::U32(0)),
        // No chat template: the Hugging Face folder written from this GGUF has none either.
    ];
    let dev = Device::Cpu;
    let mut n = 0usize;
    let mut t = |shape: &[usize], scale: f32, offset: f32| {
        let len: usize = shape.iter().product();
        let v: Vec<f32> = (0..len)
            .map(|i| ((n + i) as f32 * 0.37).sin() * scale + offset)
            .collect();
        n += len;
        QTensor::quantize(
            &Tensor::from_vec(v, shape, &dev).expect("tensor"),
            GgmlDType::F32,
        )
        .expect("qtensor")
    };
    let mut tensors = vec![
        ("token_embd.weight", t(&[vocab, h], 1.0, 0.0)),
        ("output_norm.weight", t(&[h], 0.2, 1.0)),
        ("blk.0.attn_norm.weight", t(&[h], 0.2, 1.0)),
        ("blk.0.ffn_norm.weight", t(&[h], 0.2, 1.0)),
        ("blk.0.attn_q.weight", t(&[heads * HEAD_DIM, h], 0.5, 0.0)),
        (
            "blk.0.attn_k.weight",
            t(&[kv_heads * HEAD_DIM, h], 0.5, 0.0),
        ),
        (
            "blk.0.attn_v.weight",
            t(&[kv_heads * HEAD_DIM, h], 0.5, 0.0),
        ),
        (
            "blk.0.attn_output.weight",
            t(&[h, heads * HEAD_DIM], 0.5, 0.0),
        ),
        ("blk.0.ffn_gate.weight", t(&[ff, h], 0.5, 0.0)),
        ("blk.0.ffn_up.weight", t(&[ff, h], 0.5, 0.0)),
        ("blk.0.ffn_down.weight", t(&[h, ff], 0.5, 0.0)),
    ];
    if let Some(f) = factors {
        let f = Tensor::from_vec(f.to_vec(), f.len(), &dev).expect("tensor");
        tensors.push((
            "rope_freqs.weight",
            QTensor::quantize(&f, GgmlDType::F32).expect("qtensor"),
        ));
    }
    let mut file = std::fs::File::create(path).expect("create");
    let md_refs: Vec<(&str, &Value)> = md.iter().map(|(k, v)| (*k, v)).collect();
    let t_refs: Vec<(&str, &QTensor)> = tensors.iter().map(|(k, v)| (*k, v)).collect();
    gguf_file::write(&mut file, &md_refs, &t_refs).expect("write gguf");
    path.to_path_buf()
}

fn load(path: &Path, opts: &LoadOptions) -> LoadedModel {
    tierforge_model::load(&path.display().to_string(), opts)
        .unwrap_or_else(|e| panic!("{} loads: {e}", path.display()))
}

/// Logits of 40 tokens (positions 0..39, where the scaled frequencies matter).
fn logits(m: &LoadedModel) -> Tensor {
    let ids: Vec<u32> = (0..40u32).map(|i| (i * 7 + 3) % 32).collect();
    let ids = Tensor::new(ids.as_slice(), &Device::Cpu)
        .and_then(|t| t.unsqueeze(0))
        .expect("ids");
    m.llama.forward(&ids, None).expect("forward")
}

fn max_diff(a: &Tensor, b: &Tensor) -> f32 {
    (a - b)
        .and_then(|d| d.abs())
        .and_then(|d| d.max_all())
        .and_then(|d| d.to_scalar::<f32>())
        .expect("same shapes")
}

fn edit_config(dir: &Path, edit: impl FnOnce(&mut serde_json::Value)) -> serde_json::Value {
    let p = dir.join("config.json");
    let mut v: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&p).expect("read")).expect("json");
    edit(&mut v);
    std::fs::write(&p, serde_json::to_string_pretty(&v).expect("json")).expect("write");
    v
}

#[test]
fn gguf_rope_freqs_scale_rope_like_the_equivalent_hf_rope_scaling() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let s = llama3();
    let factors = s.llama3_freq_factors(HEAD_DIM, THETA);
    let plain = tiny_gguf(&tmp.path().join("plain.gguf"), None);
    let scaled = tiny_gguf(&tmp.path().join("scaled.gguf"), Some(&factors));
    let opts = LoadOptions::default();

    let scaled_model = load(&scaled, &opts);
    let want = logits(&scaled_model);
    let unscaled = logits(&load(&plain, &opts));
    let d = max_diff(&want, &unscaled);
    assert!(d > 1e-2, "rope_freqs.weight changed logits by only {d}");
    // The quantized (fused kernel) path uses them too.
    let d = max_diff(&want, &logits(&load(&scaled, &LoadOptions::quantized())));
    assert!(d < 1e-3, "quantized load differs by {d}");

    // A Hugging Face folder of the same weights whose config.json has the llama3 scaling.
    let hf = tmp.path().join("hf");
    tierforge_model::hf::convert(&load(&plain, &opts), &hf, tierforge_model::DType::F32)
        .expect("converts");
    edit_config(&hf, |c| {
        c["rope_scaling"] = serde_json::to_value(&s).expect("json");
    });
    let d = max_diff(&want, &logits(&load(&hf, &opts)));
    assert!(d < 1e-4, "HF config with rope_scaling differs by {d}");

    // Converting the scaled GGUF writes that rope_scaling.
    let hf2 = tmp.path().join("hf2");
    tierforge_model::hf::convert(&scaled_model, &hf2, tierforge_model::DType::F32)
        .expect("converts");
    let written = edit_config(&hf2, |_| {});
    let back: RopeScaling =
        serde_json::from_value(written["rope_scaling"].clone()).expect("rope_scaling written");
    assert_eq!(back, s);
    let d = max_diff(&want, &logits(&load(&hf2, &opts)));
    assert!(d < 1e-4, "converted folder differs by {d}");

    // `model info` reports both.
    let info = tierforge_model::inspect(&scaled.display().to_string(), &opts).expect("info");
    assert_eq!(info.rope_freq_factors.as_deref(), Some(factors.as_slice()));
    assert_eq!(info.rope_scaling, Some(s));
    let info = tierforge_model::inspect(&plain.display().to_string(), &opts).expect("info");
    assert_eq!((info.rope_freq_factors, info.rope_scaling), (None, None));
}

#[test]
fn rope_freqs_of_the_wrong_length_is_an_error_naming_the_file() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let p = tiny_gguf(&tmp.path().join("short_freqs.gguf"), Some(&[1.0, 2.0, 4.0]));
    let err = tierforge_model::load(&p.display().to_string(), &LoadOptions::default())
        .expect_err("must fail")
        .to_string();
    assert!(
        err.contains("short_freqs.gguf")
            && err.contains("rope_freqs.weight has 3 factors, expected 8"),
        "{err}"
    );
}

#[test]
fn rope_freqs_no_llama3_scaling_matches_are_used_but_not_converted() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let odd = [1.0, 3.0, 1.0, 8.0, 8.0, 8.0, 8.0, 8.0];
    let p = tiny_gguf(&tmp.path().join("odd.gguf"), Some(&odd));
    let m = load(&p, &LoadOptions::default());
    assert_eq!(m.info.rope_scaling, None);
    let inv = m.llama.config().inv_freq();
    assert_eq!(inv[1], 1.0 / THETA.powf(2.0 / 16.0) / 3.0);
    let err = tierforge_model::hf::convert(&m, &tmp.path().join("hf"), tierforge_model::DType::F32)
        .expect_err("must refuse")
        .to_string();
    assert!(
        err.contains("odd.gguf") && err.contains("rope_freqs.weight"),
        "{err}"
    );
    assert!(!tmp.path().join("hf").exists());
}
