//! Export on the real SmolLM2-135M-Instruct GGUF (fetched by `scripts/fetch-model`): the merged
//! GGUF read back through our own loader gives base + adapter's logits; bad adapters and
//! outputs are refused with clear errors and leave no file behind. The same model as a Hugging
//! Face folder exports to the metadata llama.cpp's converter wrote into that GGUF and to the
//! same tensor bytes; tiny Hugging Face folders cover Llama 3 rope scaling, SentencePiece
//! vocabularies and pre-tokenizers llama.cpp cannot name.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;

use candle_core::quantized::gguf_file::Value;
use candle_core::{DType, Device, Tensor};
use serde_json::json;
use tierforge_data::rng::Rng;
use tierforge_deploy::export::{self, Format, GgufOptions, Quant};
use tierforge_model::gguf::GgufFile;
use tierforge_model::{LoadOptions, LoadedModel, Proj};
use tierforge_train::lora::{Adapter, LoraShape};

fn model_path() -> PathBuf {
    static P: OnceLock<PathBuf> = OnceLock::new();
    P.get_or_init(|| {
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
        PathBuf::from(String::from_utf8_lossy(&out.stdout).trim())
    })
    .clone()
}

fn spec() -> String {
    model_path().display().to_string()
}

fn dense() -> &'static LoadedModel {
    static M: OnceLock<LoadedModel> = OnceLock::new();
    M.get_or_init(|| tierforge_model::load(&spec(), &LoadOptions::default()).expect("loads"))
}

/// An adapter on every projection whose B is random (a fresh one would be a no-op), saved in
/// PEFT's layout.
fn random_adapter(dir: &Path) -> Adapter {
    random_adapter_on(&dense().llama, dir)
}

/// [`random_adapter`] for `base` (only its shapes are used).
fn random_adapter_on(base: &tierforge_model::Llama, dir: &Path) -> Adapter {
    let shape = LoraShape {
        rank: 4,
        alpha: 8.0,
        dropout: 0.0,
        rslora: false,
        targets: Proj::ALL.to_vec(),
    };
    let mut rng = Rng::new(11);
    let ad = Adapter::init(base, shape, &mut rng, &Device::Cpu).expect("init");
    for p in &ad.params {
        let v: Vec<f32> = (0..p.b.elem_count())
            .map(|_| ((rng.next_f64() - 0.5) * 0.1) as f32)
            .collect();
        p.b.set(&Tensor::from_vec(v, p.b.dims(), &Device::Cpu).expect("t"))
            .expect("set");
    }
    ad.save(dir, &spec()).expect("save adapter");
    ad
}

fn logits(m: &tierforge_model::Llama, ids: &[u32]) -> Vec<Vec<f32>> {
    let t = Tensor::new(ids, &Device::Cpu)
        .and_then(|t| t.unsqueeze(0))
        .expect("ids");
    m.forward(&t, None)
        .and_then(|l| l.squeeze(0))
        .and_then(|l| l.to_dtype(candle_core::DType::F32))
        .and_then(|l| l.to_vec2())
        .expect("forward")
}

fn max_diff(a: &[Vec<f32>], b: &[Vec<f32>]) -> f32 {
    a.iter()
        .zip(b)
        .flat_map(|(x, y)| x.iter().zip(y).map(|(p, q)| (p - q).abs()))
        .fold(0.0, f32::max)
}

fn argmax(v: &[f32]) -> usize {
    v.iter()
        .enumerate()
        .fold((0, f32::MIN), |b, (i, &x)| if x > b.1 { (i, x) } else { b })
        .0
}

#[test]
fn merged_gguf_reads_back_with_base_plus_adapter_logits() {
    let tmp = tempfile::tempdir().expect("tmp");
    let ad_dir = tmp.path().join("adapter");
    let ad = random_adapter(&ad_dir);
    let base = dense();
    let ids = base
        .tokenizer
        .encode("Steel water bottle, 750 ml, keeps drinks cold", false)
        .expect("encode");

    let plain = logits(&base.llama, &ids);
    let mut attached = base.llama.clone();
    ad.attach_frozen(&mut attached).expect("attach");
    let want = logits(&attached, &ids);
    assert!(
        max_diff(&plain, &want) > 0.5,
        "the test adapter must change the logits"
    );

    let out = tmp.path().join("merged-f16.gguf");
    let mut opts = GgufOptions::new(Quant::F16);
    opts.tier = Some("basic".into());
    opts.version = Some("0.1.0".into());
    let rep = export::export_gguf(&spec(), Some(&ad_dir), &out, &opts).expect("export");
    assert_eq!(rep.merged_tensors, 7 * base.llama.num_layers());
    assert_eq!(rep.bytes, std::fs::metadata(&out).expect("out").len());

    // Metadata: the base's (tokenizer, template) plus ours, with llama.cpp's value types.
    let g = GgufFile::open(&out).expect("reads back");
    let src = GgufFile::open(model_path()).expect("base");
    for key in [
        "tokenizer.ggml.tokens",
        "tokenizer.ggml.merges",
        "tokenizer.chat_template",
        "llama.context_length",
    ] {
        assert_eq!(
            format!("{:?}", g.get(key).expect(key)),
            format!("{:?}", src.get(key).expect(key)),
            "{key} is carried over"
        );
    }
    assert_eq!(g.get_str("general.name").expect("name"), "tierforge-basic");
    assert_eq!(g.get_str("tierforge.tier").expect("tier"), "basic");
    assert!(matches!(
        g.get("general.file_type").expect("ft"),
        candle_core::quantized::gguf_file::Value::U32(1)
    ));
    assert!(!g.has_tensor("output.weight"), "tied embeddings stay tied");
    assert_eq!(g.tensors().len(), src.tensors().len());

    // Logits: our loader (which undoes llama.cpp's q/k permutation) on the merged file.
    let merged = tierforge_model::load(&out.display().to_string(), &LoadOptions::default())
        .expect("merged GGUF loads");
    let got = logits(&merged.llama, &ids);
    let d = max_diff(&got, &want);
    eprintln!("f16 merged vs base+adapter: max |logit diff| = {d}");
    assert!(d < 0.05, "merged f16 logits differ by {d}");
    for (g, w) in got.iter().zip(&want) {
        assert_eq!(argmax(g), argmax(w));
    }
    // The quantized (inference) load keeps F16 weights as f16 and widens them in its own
    // products: the same values, so the same logits up to the order of the sums.
    let merged16 = tierforge_model::load(&out.display().to_string(), &LoadOptions::quantized())
        .expect("merged GGUF loads for inference");
    let got16 = logits(&merged16.llama, &ids);
    let d16 = max_diff(&got16, &got);
    eprintln!("f16 merged, f16 products vs f32 weights: max |logit diff| = {d16}");
    assert!(
        d16 < 1e-2,
        "f16 products differ from the f32 weights' by {d16}"
    );

    // q4_k_m: llama-quantize's mix (SmolLM2's 576-wide rows fall back to Q5_0 / Q8_0).
    let out4 = tmp.path().join("merged-q4km.gguf");
    let rep4 = export::export_gguf(
        &spec(),
        Some(&ad_dir),
        &out4,
        &GgufOptions::new(Quant::Q4KM),
    )
    .expect("export q4_k_m");
    let types: Vec<&str> = rep4.tensor_types.keys().map(String::as_str).collect();
    assert_eq!(
        types,
        ["F32", "Q4K", "Q5_0", "Q6K", "Q8_0"],
        "{:?}",
        rep4.tensor_types
    );
    assert!(rep4.bytes < rep.bytes / 2);
    let q4 = tierforge_model::load(&out4.display().to_string(), &LoadOptions::quantized())
        .expect("q4_k_m loads");
    let got4 = logits(&q4.llama, &ids);
    let agree = got4
        .iter()
        .zip(&want)
        .filter(|(a, b)| argmax(a) == argmax(b))
        .count();
    eprintln!("q4_k_m top-1 agreement {agree}/{}", want.len());
    assert!(
        agree * 2 >= want.len(),
        "q4_k_m agrees on {agree}/{}",
        want.len()
    );

    // PEFT: reloads to the same tensors, with PEFT's header metadata.
    let peft = tmp.path().join("peft");
    export::export(&spec(), &ad_dir, Format::Peft, &peft, &opts).expect("peft export");
    let bytes = std::fs::read(peft.join("adapter_model.safetensors")).expect("st");
    let (_, st_meta) = safetensors::SafeTensors::read_metadata(&bytes).expect("header");
    assert_eq!(
        st_meta
            .metadata()
            .as_ref()
            .and_then(|m| m.get("format"))
            .map(String::as_str),
        Some("pt")
    );
    let again = Adapter::load(&peft, &base.llama, &Device::Cpu).expect("peft reloads");
    let (x, y) = (ad.tensors(), again.tensors());
    for (k, t) in &x {
        let d = (t - &y[k])
            .and_then(|d| d.abs())
            .and_then(|d| d.max_all())
            .and_then(|d| d.to_scalar::<f32>());
        assert_eq!(d.expect("diff"), 0.0, "{k}");
    }

    // LoRA GGUF: llama.cpp's keys and names; lora_b of q/k in llama.cpp's row order.
    let lora = tmp.path().join("lora.gguf");
    export::export(&spec(), &ad_dir, Format::LoraGguf, &lora, &opts).expect("lora export");
    let lg = GgufFile::open(&lora).expect("lora gguf reads");
    assert_eq!(lg.get_str("general.type").expect("type"), "adapter");
    assert_eq!(lg.get_str("adapter.type").expect("type"), "lora");
    assert!(matches!(
        lg.get("adapter.lora.alpha").expect("alpha"),
        candle_core::quantized::gguf_file::Value::F32(a) if *a == 8.0
    ));
    assert_eq!(lg.tensors().len(), 2 * 7 * base.llama.num_layers());
    let q_b = &ad.params[0].b;
    let mut lgm = lg;
    let qt = lgm
        .qtensor("blk.0.attn_q.weight.lora_b", &Device::Cpu)
        .expect("q b");
    assert_eq!(qt.shape().dims(), q_b.dims());
    let heads = base.llama.config().num_attention_heads;
    let perm = tierforge_model::gguf::unpermute_rows(q_b.dims()[0], heads);
    let back = qt
        .dequantize(&Device::Cpu)
        .expect("deq")
        .to_vec2::<f32>()
        .expect("v");
    let orig = q_b.as_tensor().to_vec2::<f32>().expect("v");
    for (r, row) in orig.iter().enumerate() {
        assert_eq!(&back[perm[r]], row, "hf row {r} is gguf row {}", perm[r]);
    }

    // A wrong adapter (another rank than its tensors) is refused; nothing is written.
    let cfg_path = ad_dir.join("adapter_config.json");
    let text = std::fs::read_to_string(&cfg_path).expect("cfg");
    std::fs::write(&cfg_path, text.replace("\"r\": 4", "\"r\": 8")).expect("write");
    let bad_out = tmp.path().join("bad.gguf");
    let err = export::export_gguf(&spec(), Some(&ad_dir), &bad_out, &opts)
        .expect_err("mismatched adapter")
        .to_string();
    assert!(
        err.contains("does not fit base model") && err.contains("shape"),
        "{err}"
    );
    assert!(!bad_out.exists());
}

#[test]
fn missing_adapter_and_unwritable_output_are_clear_errors() {
    let tmp = tempfile::tempdir().expect("tmp");
    let err = export::export_gguf(
        &spec(),
        Some(&tmp.path().join("nope")),
        &tmp.path().join("x.gguf"),
        &GgufOptions::new(Quant::Q8_0),
    )
    .expect_err("no adapter")
    .to_string();
    assert!(
        err.contains("nope") && err.contains("no such folder"),
        "{err}"
    );

    let err = export::export_gguf(
        &spec(),
        None,
        &tmp.path().join("missing-dir/x.gguf"),
        &GgufOptions::new(Quant::Q8_0),
    )
    .expect_err("no output folder")
    .to_string();
    assert!(err.contains("missing-dir"), "{err}");
}

#[test]
fn tier_bundle_without_ollama_is_built_and_registered_not_pushed() {
    use tierforge_deploy::bundle::{build_tier, TierBuild};
    use tierforge_deploy::registry::{Registry, Status};
    let tmp = tempfile::tempdir().expect("tmp");
    let ad_dir = tmp.path().join("adapter");
    random_adapter(&ad_dir);
    let reg = tmp.path().join("registry.db");
    let mut b = TierBuild::new(
        tierforge_data::completion::Tier::Basic,
        &spec(),
        &ad_dir,
        &tmp.path().join("deploy"),
    );
    b.registry = Some(reg.clone());
    b.dataset_hash = "abc".into();
    b.dataset_size = 60;
    let out = build_tier(&b, &mut |_| {}).expect("bundle");
    assert_eq!(out.name, "tierforge-basic:1.0.0");
    assert!(!out.pushed && out.ollama_digest.is_none());
    let mf = std::fs::read_to_string(&out.modelfile).expect("modelfile");
    assert!(
        mf.contains("FROM ./tierforge-basic-1.0.0.q8_0.gguf"),
        "{mf}"
    );
    assert!(mf.contains("PARAMETER stop \"<|im_end|>\""), "{mf}");
    // The decoding that evaluation scored the tier with.
    assert!(mf.contains("PARAMETER repeat_penalty 1.1\n"), "{mf}");
    assert!(mf.contains("PARAMETER repeat_last_n 256\n"), "{mf}");
    assert!(mf.contains(tierforge_data::completion::Tier::Basic.system_prompt()));
    let parsed = tierforge_deploy::modelfile::parse(&mf).expect("Ollama's syntax");
    assert!(parsed.iter().any(|(k, _)| k == "TEMPLATE"), "{parsed:?}");
    let readme = std::fs::read_to_string(&out.readme).expect("readme");
    assert!(readme.contains("ollama create tierforge-basic:1.0.0 -f Modelfile"));

    let r = Registry::open(&reg).expect("registry");
    let rec = r.get("basic", "1.0.0").expect("registered");
    assert_eq!(rec.status, Status::Candidate);
    assert_eq!(rec.gguf_sha256.as_deref(), Some(out.sha256.as_str()));
    assert_eq!(rec.gguf_size, Some(out.gguf_bytes));
    assert_eq!(rec.dataset_size, 60);
    assert!(rec.ollama_digest.is_none());
    // The adapter it came from, absolute, for the loop to continue training from.
    let recorded = PathBuf::from(rec.train_metrics["adapter"].as_str().expect("adapter"));
    assert!(recorded.is_absolute(), "{}", recorded.display());
    assert_eq!(
        recorded,
        std::fs::canonicalize(export::resolve_adapter_dir(&b.adapter).unwrap()).unwrap()
    );
    assert_eq!(r.next_version("basic").expect("next"), "1.1.0");
    // The same version twice is refused before anything is written.
    b.version = Some("1.0.0".into());
    let err = build_tier(&b, &mut |_| {}).expect_err("exists").to_string();
    assert!(err.contains("already registered"), "{err}");
}

/// Metadata of a GGUF, each value as its `Debug` text (which spells the value type too).
fn metadata_text(g: &GgufFile) -> std::collections::BTreeMap<String, String> {
    g.metadata()
        .iter()
        .map(|(k, v)| (k.clone(), format!("{v:?}")))
        .collect()
}

/// The two files have the same tensors: names, shapes, ggml types and bytes.
fn assert_same_tensors(a: &Path, b: &Path) {
    let (mut ga, mut gb) = (
        GgufFile::open(a).expect("a reads"),
        GgufFile::open(b).expect("b reads"),
    );
    let names: Vec<String> = ga.tensors().keys().map(|k| k.to_string()).collect();
    let names_b: Vec<String> = gb.tensors().keys().map(|k| k.to_string()).collect();
    assert_eq!(names, names_b);
    for n in &names {
        let (da, sa, ta) = ga.raw(n).expect("a tensor");
        let (db, sb, tb) = gb.raw(n).expect("b tensor");
        assert_eq!((sa, ta), (sb, tb), "{n}");
        assert!(da == db, "{n}: the tensor bytes differ");
    }
}

/// Keys of the llama.cpp-converted base that an export from the Hugging Face folder `convert`
/// writes leaves out, with the reason.
const BASE_ONLY: [(&str, &str); 6] = [
    (
        "general.organization",
        "llama.cpp's converter takes it from the hub repo id or the README model card; \
         the folder has neither",
    ),
    ("general.basename", "from the repo id, as above"),
    ("general.finetune", "from the repo id, as above"),
    (
        "general.license",
        "from the README model card's front matter",
    ),
    (
        "general.languages",
        "from the README model card's front matter",
    ),
    (
        "tokenizer.ggml.add_space_prefix",
        "the converter copies tokenizer_config.json's add_prefix_space, which SmolLM2's own \
         file has (false) and `convert`'s does not; llama.cpp ignores it for gpt2 vocabularies",
    ),
];

/// Keys only the export from the folder writes: the value they must have, and why.
const HF_ONLY: [(&str, &str, &str); 3] = [
    (
        "llama.attention.key_length",
        "U32(64)",
        "`convert` writes head_dim into config.json, which the converter records as key and \
         value length (SmolLM2's own config.json has no head_dim); 64 is the head size anyway",
    ),
    ("llama.attention.value_length", "U32(64)", "as key_length"),
    (
        "tokenizer.ggml.add_eos_token",
        "Bool(false)",
        "`convert` writes add_eos_token: false into tokenizer_config.json, which the converter \
         records; false is llama.cpp's default",
    ),
];

#[test]
fn hf_folder_exports_what_llama_cpp_converted_and_the_same_tensors() {
    let tmp = tempfile::tempdir().expect("tmp");
    let gguf_base = export::load_base(&spec()).expect("gguf base");
    let folder = tmp.path().join("SmolLM2-135M-Instruct");
    tierforge_model::hf::convert(&gguf_base, &folder, DType::F32).expect("converts");
    let hf_base = export::load_base(&folder.display().to_string()).expect("hf base");

    let mut opts = GgufOptions::new(Quant::F16);
    opts.tier = Some("basic".into());
    let (from_gguf, from_hf) = (tmp.path().join("g.gguf"), tmp.path().join("h.gguf"));
    export::export_loaded(&gguf_base, None, &from_gguf, &opts).expect("export gguf base");
    let rep = export::export_loaded(&hf_base, None, &from_hf, &opts).expect("export hf base");
    assert_eq!(rep.tensors, 2 + 30 * 9);

    let base = metadata_text(&GgufFile::open(model_path()).expect("base"));
    let g = metadata_text(&GgufFile::open(&from_gguf).expect("g"));
    let h = metadata_text(&GgufFile::open(&from_hf).expect("h"));
    // The GGUF route keeps the base verbatim (file type and name are the export's).
    for (k, v) in &base {
        if k != "general.file_type" && k != "general.name" {
            assert_eq!(g.get(k), Some(v), "{k}");
        }
    }
    let keys: std::collections::BTreeSet<&String> = g.keys().chain(h.keys()).collect();
    for k in keys {
        if let Some((_, why)) = BASE_ONLY.iter().find(|(b, _)| b == k) {
            assert!(!h.contains_key(k) && base.contains_key(k), "{k}: {why}");
        } else if let Some((_, v, why)) = HF_ONLY.iter().find(|(b, _, _)| b == k) {
            assert!(!g.contains_key(k), "{k}: {why}");
            assert_eq!(h.get(k).map(String::as_str), Some(*v), "{k}: {why}");
        } else if k == "tierforge.base_model" {
            // Where the export came from: the base's general.name, or the folder's name.
            assert_eq!(g[k], base["general.name"]);
            assert_eq!(h[k], "String(\"SmolLM2-135M-Instruct\")");
        } else {
            assert_eq!(g.get(k), h.get(k), "{k}");
        }
    }
    assert_same_tensors(&from_gguf, &from_hf);

    // The same adapter merged into either base gives the same bytes.
    let ad_dir = tmp.path().join("adapter");
    random_adapter_on(&gguf_base.llama, &ad_dir);
    let (ad_g, _, _) = export::load_adapter(&ad_dir, &gguf_base).expect("adapter on gguf");
    let (ad_h, _, _) = export::load_adapter(&ad_dir, &hf_base).expect("adapter on hf");
    let rep_g = export::export_loaded(&gguf_base, Some(&ad_g), &from_gguf, &opts).expect("g+a");
    let rep_h = export::export_loaded(&hf_base, Some(&ad_h), &from_hf, &opts).expect("h+a");
    assert_eq!(rep_g.merged_tensors, 7 * 30);
    assert_eq!(rep_h.merged_tensors, 7 * 30);
    assert_same_tensors(&from_gguf, &from_hf);

    // Exporting from the GGUF file itself streams its tensors (q/k rows stay in GGUF order and
    // the LoRA update is reordered instead): the file is the same, byte for byte, as the one
    // made from the loaded model.
    let streamed = tmp.path().join("s.gguf");
    let rep_s = export::export_gguf(&spec(), Some(&ad_dir), &streamed, &opts).expect("stream");
    assert_eq!(rep_s.merged_tensors, 7 * 30);
    assert!(
        std::fs::read(&streamed).unwrap() == std::fs::read(&from_gguf).unwrap(),
        "the streamed export differs from the loaded one"
    );
    let plain = tmp.path().join("p.gguf");
    let mut q8 = opts.clone();
    q8.quant = Quant::Q8_0;
    export::export_gguf(&spec(), None, &plain, &q8).expect("stream q8_0");
    export::export_loaded(&gguf_base, None, &from_gguf, &q8).expect("loaded q8_0");
    assert!(
        std::fs::read(&plain).unwrap() == std::fs::read(&from_gguf).unwrap(),
        "the streamed q8_0 export differs from the loaded one"
    );
}

/// A Hugging Face llama folder of one tiny layer (hidden 8, 2 heads of 4, 1 kv head) with the
/// given `tokenizer.json`, `tokenizer_config.json` and `config.json` additions.
fn tiny_hf_folder(
    dir: &Path,
    vocab: usize,
    tokenizer: serde_json::Value,
    tc: serde_json::Value,
    extra: serde_json::Value,
) {
    std::fs::create_dir_all(dir).expect("mkdir");
    let mut config = json!({
        "architectures": ["LlamaForCausalLM"], "model_type": "llama",
        "hidden_size": 8, "intermediate_size": 16, "num_hidden_layers": 1,
        "num_attention_heads": 2, "num_key_value_heads": 1, "vocab_size": vocab,
        "max_position_embeddings": 64, "rms_norm_eps": 1e-5, "rope_theta": 500000.0,
        "tie_word_embeddings": true,
    });
    for (k, v) in extra.as_object().expect("object") {
        config[k] = v.clone();
    }
    let write = |name: &str, v: &serde_json::Value| {
        std::fs::write(
            dir.join(name),
            serde_json::to_string_pretty(v).expect("json"),
        )
        .expect("write")
    };
    write("config.json", &config);
    write("tokenizer.json", &tokenizer);
    write("tokenizer_config.json", &tc);
    let mut n = 0f32;
    let mut t = |shape: &[usize]| {
        let len: usize = shape.iter().product();
        let v: Vec<f32> = (0..len)
            .map(|i| ((n + i as f32) * 0.37).sin() * 0.1)
            .collect();
        n += len as f32;
        Tensor::from_vec(v, shape, &Device::Cpu).expect("tensor")
    };
    let l = "model.layers.0";
    let tensors: std::collections::HashMap<String, Tensor> = [
        ("model.embed_tokens.weight".to_string(), t(&[vocab, 8])),
        ("model.norm.weight".into(), t(&[8])),
        (format!("{l}.input_layernorm.weight"), t(&[8])),
        (format!("{l}.post_attention_layernorm.weight"), t(&[8])),
        (format!("{l}.self_attn.q_proj.weight"), t(&[8, 8])),
        (format!("{l}.self_attn.k_proj.weight"), t(&[4, 8])),
        (format!("{l}.self_attn.v_proj.weight"), t(&[4, 8])),
        (format!("{l}.self_attn.o_proj.weight"), t(&[8, 8])),
        (format!("{l}.mlp.gate_proj.weight"), t(&[16, 8])),
        (format!("{l}.mlp.up_proj.weight"), t(&[16, 8])),
        (format!("{l}.mlp.down_proj.weight"), t(&[8, 16])),
    ]
    .into_iter()
    .collect();
    candle_core::safetensors::save(&tensors, dir.join("model.safetensors")).expect("weights");
}

/// A byte-level BPE `tokenizer.json` over "a", "b", "ab" with the given pre-tokenizer.
fn tiny_byte_level(pre_tokenizer: serde_json::Value) -> serde_json::Value {
    json!({
        "version": "1.0", "truncation": null, "padding": null,
        "added_tokens": [{"id": 0, "content": "<|endoftext|>", "single_word": false,
            "lstrip": false, "rstrip": false, "normalized": false, "special": true}],
        "normalizer": null, "pre_tokenizer": pre_tokenizer, "post_processor": null,
        "decoder": {"type": "ByteLevel", "add_prefix_space": true, "trim_offsets": true,
            "use_regex": true},
        "model": {"type": "BPE", "dropout": null, "unk_token": null,
            "continuing_subword_prefix": null, "end_of_word_suffix": null, "fuse_unk": false,
            "byte_fallback": false, "ignore_merges": false,
            "vocab": {"<|endoftext|>": 0, "a": 1, "b": 2, "ab": 3}, "merges": ["a b"]}
    })
}

#[test]
fn hf_folder_with_an_unknown_pre_tokenizer_is_refused_by_name() {
    let tmp = tempfile::tempdir().expect("tmp");
    let dir = tmp.path().join("tiny");
    // Digits grouped rather than split one by one: llama.cpp has no pre-tokenizer for that.
    let pre = json!({"type": "Sequence", "pretokenizers": [
        {"type": "Digits", "individual_digits": false},
        {"type": "ByteLevel", "add_prefix_space": false, "trim_offsets": true,
            "use_regex": true}]});
    tiny_hf_folder(
        &dir,
        8,
        tiny_byte_level(pre),
        json!({"eos_token": "<|endoftext|>"}),
        json!({}),
    );
    let out = tmp.path().join("tiny.gguf");
    let err = export::export_gguf(
        &dir.display().to_string(),
        None,
        &out,
        &GgufOptions::new(Quant::F16),
    )
    .expect_err("unknown pre-tokenizer")
    .to_string();
    assert!(
        err.contains("tokenizer.json")
            && err.contains("pre_tokenizer")
            && err.contains("\"individual_digits\":false")
            && err.contains("llama-bpe"),
        "{err}"
    );
    assert!(!out.exists());
}

#[test]
fn hf_folder_with_llama3_rope_scaling_gets_rope_freqs() {
    let tmp = tempfile::tempdir().expect("tmp");
    let dir = tmp.path().join("tiny-llama3");
    let pre = json!({"type": "Sequence", "pretokenizers": [
        {"type": "Digits", "individual_digits": true},
        {"type": "ByteLevel", "add_prefix_space": false, "trim_offsets": true,
            "use_regex": true}]});
    let scaling = json!({"rope_scaling": {"rope_type": "llama3", "factor": 8.0,
        "low_freq_factor": 1.0, "high_freq_factor": 4.0,
        "original_max_position_embeddings": 8192}});
    // A vocabulary of 8 for 4 tokens: the converter pads with [PAD4]..[PAD7].
    tiny_hf_folder(
        &dir,
        8,
        tiny_byte_level(pre),
        json!({"eos_token": "<|endoftext|>"}),
        scaling,
    );
    let out = tmp.path().join("tiny.gguf");
    export::export_gguf(
        &dir.display().to_string(),
        None,
        &out,
        &GgufOptions::new(Quant::F16),
    )
    .expect("exports");
    let mut g = GgufFile::open(&out).expect("reads back");
    // Head size 4: frequencies 1 (wavelength 2π, factor 1) and 500000^-1/2 (wavelength
    // 4442.88, between 8192/4 and 8192: factor 1/((1 - s)/8 + s), s = (8192/4442.88 - 1)/3).
    let (bytes, shape, dtype) = g.raw("rope_freqs.weight").expect("rope_freqs");
    assert_eq!(
        (shape, dtype),
        (vec![2], candle_core::quantized::GgmlDType::F32)
    );
    let f: Vec<f32> = bytes
        .chunks(4)
        .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]]))
        .collect();
    assert_eq!(f[0], 1.0);
    assert!((f[1] - 2.694_529_7).abs() < 1e-5, "{f:?}");
    // llama.cpp knows Llama 3 scaling only by this tensor: no scaling type or factor keys.
    assert!(!g
        .metadata()
        .keys()
        .any(|k| k.starts_with("llama.rope.scaling")));
    assert_eq!(g.get_str("tokenizer.ggml.pre").expect("pre"), "smollm");
    assert_eq!(g.get_str("general.name").expect("name"), "tiny-llama3");
    let tokens = g.get_strings("tokenizer.ggml.tokens").expect("tokens");
    assert_eq!(
        tokens,
        [
            "<|endoftext|>",
            "a",
            "b",
            "ab",
            "[PAD4]",
            "[PAD5]",
            "[PAD6]",
            "[PAD7]"
        ]
    );
    assert_eq!(
        g.get_i64s("tokenizer.ggml.token_type").expect("types"),
        [3, 1, 1, 1, 5, 5, 5, 5]
    );
    assert_eq!(
        g.get_strings("tokenizer.ggml.merges").expect("merges"),
        ["a b"]
    );
    assert!(matches!(
        g.get("tokenizer.ggml.eos_token_id"),
        Ok(Value::U32(0))
    ));
    assert!(g.has_tensor("token_embd.weight") && !g.has_tensor("output.weight"));
}

#[test]
fn llama3_gguf_loads_with_its_rope_freqs_and_a_gguf_base_keeps_them_raw() {
    let tmp = tempfile::tempdir().expect("tmp");
    let dir = tmp.path().join("tiny-llama3");
    let scaling = json!({"rope_scaling": {"rope_type": "llama3", "factor": 8.0,
        "low_freq_factor": 1.0, "high_freq_factor": 4.0,
        "original_max_position_embeddings": 8192}});
    let pre = json!({"type": "ByteLevel", "add_prefix_space": false, "trim_offsets": true,
        "use_regex": true});
    tiny_hf_folder(
        &dir,
        8,
        tiny_byte_level(pre),
        json!({"eos_token": "<|endoftext|>"}),
        scaling,
    );
    let first = tmp.path().join("first.gguf");
    let opts = GgufOptions::new(Quant::F16);
    export::export_gguf(&dir.display().to_string(), None, &first, &opts).expect("exports");

    // Loaded back, the tensor is the rope scaling: the same frequencies as config.json's.
    let load = |p: &Path| {
        tierforge_model::load(&p.display().to_string(), &LoadOptions::default()).expect("loads")
    };
    let hf = load(&dir);
    let gguf = load(&first);
    assert_eq!(
        gguf.llama.config().rope_freq_factors.as_ref().map(Vec::len),
        Some(2)
    );
    assert_eq!(gguf.info.rope_scaling, hf.info.rope_scaling);
    let (a, b) = (hf.llama.config().inv_freq(), gguf.llama.config().inv_freq());
    for (x, y) in a.iter().zip(&b) {
        assert!((x - y).abs() <= 1e-6 * x, "{a:?} vs {b:?}");
    }

    // Exported again with that GGUF as the base: the tensor is copied byte for byte.
    let second = tmp.path().join("second.gguf");
    export::export_gguf(&first.display().to_string(), None, &second, &opts).expect("exports");
    let raw = |p: &Path| {
        GgufFile::open(p)
            .expect("reads back")
            .raw("rope_freqs.weight")
            .expect("rope_freqs")
    };
    assert_eq!(raw(&second), raw(&first));
    let g = GgufFile::open(&second).expect("reads back");
    assert!(!g
        .metadata()
        .keys()
        .any(|k| k.starts_with("llama.rope.scaling")));
}

#[test]
fn hf_folder_with_a_sentencepiece_vocabulary_tokenizes_alike_from_the_gguf() {
    let tmp = tempfile::tempdir().expect("tmp");
    let dir = tmp.path().join("tiny-spm");
    let added = |id: u32, content: &str| {
        json!({"id": id, "content": content, "single_word": false,
        "lstrip": false, "rstrip": false, "normalized": false, "special": true})
    };
    // Specials, the 256 byte-fallback tokens byte_fallback needs, then pieces.
    let mut vocab = serde_json::Map::new();
    let pieces = ["<unk>", "<s>", "</s>"]
        .map(String::from)
        .into_iter()
        .chain((0..=255u8).map(|b| format!("<0x{b:02X}>")))
        .chain(
            [
                "\u{2581}",
                "a",
                "b",
                "\u{2581}a",
                "ab",
                "\u{2581}ab",
                "c",
                "bc",
            ]
            .map(String::from),
        );
    for (i, p) in pieces.enumerate() {
        vocab.insert(p, json!(i));
    }
    let n = vocab.len();
    let tokenizer = json!({
        "version": "1.0", "truncation": null, "padding": null,
        "added_tokens": [added(0, "<unk>"), added(1, "<s>"), added(2, "</s>")],
        "normalizer": {"type": "Sequence", "normalizers": [
            {"type": "Prepend", "prepend": "\u{2581}"},
            {"type": "Replace", "pattern": {"String": " "}, "content": "\u{2581}"}]},
        "pre_tokenizer": null,
        // Llama 2's: a BOS before each sequence.
        "post_processor": {"type": "TemplateProcessing",
            "single": [{"SpecialToken": {"id": "<s>", "type_id": 0}},
                {"Sequence": {"id": "A", "type_id": 0}}],
            "pair": [{"SpecialToken": {"id": "<s>", "type_id": 0}},
                {"Sequence": {"id": "A", "type_id": 0}},
                {"SpecialToken": {"id": "<s>", "type_id": 1}},
                {"Sequence": {"id": "B", "type_id": 1}}],
            "special_tokens": {"<s>": {"id": "<s>", "ids": [1], "tokens": ["<s>"]}}},
        "decoder": {"type": "Sequence", "decoders": [
            {"type": "Replace", "pattern": {"String": "\u{2581}"}, "content": " "},
            {"type": "ByteFallback"}, {"type": "Fuse"},
            {"type": "Strip", "content": " ", "start": 1, "stop": 0}]},
        "model": {"type": "BPE", "dropout": null, "unk_token": "<unk>",
            "continuing_subword_prefix": null, "end_of_word_suffix": null, "fuse_unk": true,
            "byte_fallback": true, "ignore_merges": false,
            "vocab": vocab, "merges": ["b c", "\u{2581} a", "a b", "\u{2581}a b"]}
    });
    let tc = json!({"add_bos_token": true, "bos_token": "<s>", "eos_token": "</s>",
        "unk_token": "<unk>"});
    tiny_hf_folder(&dir, n, tokenizer, tc, json!({}));
    let spec = dir.display().to_string();
    let out = tmp.path().join("tiny.gguf");
    export::export_gguf(&spec, None, &out, &GgufOptions::new(Quant::F16)).expect("exports");
    let g = GgufFile::open(&out).expect("reads back");
    assert_eq!(g.get_str("tokenizer.ggml.model").expect("model"), "llama");
    assert_eq!(g.get_str("tokenizer.ggml.pre").expect("pre"), "default");
    let types = g.get_i64s("tokenizer.ggml.token_type").expect("types");
    assert_eq!(types[..3], [2, 3, 3]);
    assert!(types[3..259].iter().all(|&t| t == 6));
    assert_eq!(types[259..], [1; 8]);
    // Pieces score minus the rank of the merge forming them; the rest below every merge.
    let scores = g.get_f32s("tokenizer.ggml.scores").expect("scores");
    assert!(scores[..262].iter().all(|&s| s == -5.0));
    assert_eq!(scores[262..], [-1.0, -2.0, -3.0, -5.0, 0.0]);
    assert_eq!(
        g.opt_bool("tokenizer.ggml.add_bos_token").expect("bos"),
        Some(true)
    );
    assert_eq!(
        g.opt_bool("tokenizer.ggml.add_space_prefix")
            .expect("prefix"),
        Some(true)
    );
    assert!(matches!(
        g.get("tokenizer.ggml.unknown_token_id"),
        Ok(Value::U32(0))
    ));

    // tierforge reads the GGUF's vocabulary back into the tokenizer the folder has.
    let from_hf = tierforge_model::load(&spec, &LoadOptions::default()).expect("hf loads");
    let from_gguf = tierforge_model::load(&out.display().to_string(), &LoadOptions::default())
        .expect("gguf loads");
    // "abc" is "▁a" + "bc" when "b c" outranks "▁ a" (left to right it would be "▁ab" + "c").
    let abc = from_hf.tokenizer.encode("abc", false).expect("abc");
    assert_eq!(abc, [262, 266]);
    for text in ["abc", "ab a", "a b ab", "ba\nab", "cab bc"] {
        assert_eq!(
            from_gguf.tokenizer.encode(text, true).expect("gguf"),
            from_hf.tokenizer.encode(text, true).expect("hf"),
            "{text:?}"
        );
    }
}
