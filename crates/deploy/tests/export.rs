//! Export on the real SmolLM2-135M-Instruct GGUF (fetched by `scripts/fetch-model`): the merged
//! GGUF read back through our own loader gives base + adapter's logits; bad adapters and
//! outputs are refused with clear errors and leave no file behind.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;

use candle_core::{Device, Tensor};
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
    let base = dense();
    let shape = LoraShape {
        rank: 4,
        alpha: 8.0,
        dropout: 0.0,
        rslora: false,
        targets: Proj::ALL.to_vec(),
    };
    let mut rng = Rng::new(11);
    let ad = Adapter::init(&base.llama, shape, &mut rng, &Device::Cpu).expect("init");
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
    assert_eq!(r.next_version("basic").expect("next"), "1.1.0");
    // The same version twice is refused before anything is written.
    b.version = Some("1.0.0".into());
    let err = build_tier(&b, &mut |_| {}).expect_err("exists").to_string();
    assert!(err.contains("already registered"), "{err}");
}
