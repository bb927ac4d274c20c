//! `convert` writes a Hugging Face folder; loading it from a hub cache (offline, the hub's own
//! layout: refs, snapshots, blobs) gives the same model as the GGUF.

mod common;

use std::path::Path;

use candle_core::{DType, Device, Tensor};
use tierforge_model::{hf, LoadOptions, LoadedModel};

const REPO: &str = "HuggingFaceTB/SmolLM2-135M-Instruct";
const COMMIT: &str = "0123456789abcdef0123456789abcdef01234567";

fn logits(m: &LoadedModel, text: &str) -> Vec<Vec<f32>> {
    let ids = m.tokenizer.encode(text, false).expect("encodes");
    let input = Tensor::new(ids.as_slice(), &Device::Cpu)
        .and_then(|t| t.unsqueeze(0))
        .expect("tensor");
    m.llama
        .forward(&input, None)
        .and_then(|l| l.squeeze(0))
        .and_then(|l| l.to_vec2())
        .expect("forward")
}

/// Lay out `folder` as the hub cache does: blobs named by content hash, snapshot entries that
/// link to them, and `refs/main` holding the commit.
fn build_hub_cache(folder: &Path, cache: &Path) {
    let repo = cache.join(format!("models--{}", REPO.replace('/', "--")));
    let snap = repo.join("snapshots").join(COMMIT);
    std::fs::create_dir_all(&snap).expect("mkdir snapshot");
    std::fs::create_dir_all(repo.join("blobs")).expect("mkdir blobs");
    std::fs::create_dir_all(repo.join("refs")).expect("mkdir refs");
    std::fs::write(repo.join("refs/main"), COMMIT).expect("write ref");
    for entry in std::fs::read_dir(folder).expect("read converted folder") {
        let entry = entry.expect("entry");
        let bytes = std::fs::metadata(entry.path()).expect("stat").len();
        // A cheap stand-in for the content hash: name and size are unique here.
        let blob = repo.join("blobs").join(format!(
            "{:x}-{}",
            bytes,
            entry.file_name().to_string_lossy().len()
        ));
        std::fs::rename(entry.path(), &blob).expect("move into blobs");
        std::os::unix::fs::symlink(
            Path::new("../../blobs").join(blob.file_name().expect("name")),
            snap.join(entry.file_name()),
        )
        .expect("symlink");
    }
}

#[test]
fn converted_folder_and_hub_cache_give_the_gguf_model() {
    let gguf = common::dense();
    let tmp = tempfile::tempdir().expect("tempdir");
    let folder = tmp.path().join("converted");
    let report = hf::convert(gguf, &folder, DType::F32).expect("converts");
    assert_eq!(report.tensors, 2 + 30 * 9);
    for f in [
        "config.json",
        "model.safetensors",
        "tokenizer.json",
        "tokenizer_config.json",
    ] {
        assert!(folder.join(f).is_file(), "{f} written");
    }

    // The local folder.
    let local = tierforge_model::load(&folder.display().to_string(), &LoadOptions::default())
        .expect("folder loads");
    let text = "<|im_start|>user\nName three metals.<|im_end|>\n<|im_start|>assistant\n";
    let want = logits(gguf, text);
    assert_eq!(logits(&local, text), want, "folder logits equal the GGUF's");

    // The hub cache, offline, by repo id and by pinned revision.
    let cache = tmp.path().join("hub");
    build_hub_cache(&folder, &cache);
    let opts = LoadOptions {
        offline: true,
        hub_cache: Some(cache.clone()),
        ..LoadOptions::default()
    };
    for spec in [REPO.to_string(), format!("{REPO}@{COMMIT}")] {
        let hub = tierforge_model::load(&spec, &opts)
            .unwrap_or_else(|e| panic!("{spec} loads from the cache: {e}"));
        assert_eq!(
            logits(&hub, text),
            want,
            "hub logits equal the GGUF's ({spec})"
        );
        assert_eq!(hub.info.chat_template, gguf.info.chat_template);
        assert_eq!(hub.stop_tokens(), gguf.stop_tokens());
        let g = common::golden("tokenizer.json");
        for c in g["cases"].as_array().expect("cases") {
            let s = c["text"].as_str().expect("text");
            assert_eq!(
                hub.tokenizer.encode(s, false).expect("encodes"),
                gguf.tokenizer.encode(s, false).expect("encodes"),
                "{s:?}"
            );
        }
    }

    // A repository that is not in the cache fails offline, naming the repo.
    let err = tierforge_model::load("nobody/nothing", &opts)
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("nobody/nothing") && err.contains("offline"),
        "{err}"
    );
}
