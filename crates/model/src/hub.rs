//! Hugging Face hub repositories through `hf-hub` (cache layout shared with Python's client).
//!
//! The cache is `HF_HUB_CACHE`, else `HF_HOME/hub`, else `~/.cache/huggingface/hub`, or the
//! folder given in [`LoadOptions::hub_cache`]. Offline (`HF_HUB_OFFLINE=1` or
//! [`LoadOptions::offline`]) only that cache is read: `refs/<revision>` names the snapshot, or the
//! revision is itself a commit hash.

use std::path::{Path, PathBuf};

use hf_hub::api::sync::ApiBuilder;
use hf_hub::{Cache, Repo, RepoType};

use crate::error::{ModelError, Result};
use crate::LoadOptions;

/// The hub cache folder that `opts` and the environment select.
fn cache_dir(opts: &LoadOptions) -> PathBuf {
    if let Some(dir) = &opts.hub_cache {
        return dir.clone();
    }
    match std::env::var_os("HF_HUB_CACHE") {
        Some(dir) if !dir.is_empty() => PathBuf::from(dir),
        _ => Cache::from_env().path().clone(),
    }
}

/// A file of a cached snapshot, without touching the network.
fn cached(cache: &Path, org: &str, name: &str, revision: &str, file: &str) -> Option<PathBuf> {
    let repo = cache.join(format!("models--{org}--{name}"));
    let commit = std::fs::read_to_string(repo.join("refs").join(revision))
        .map(|s| s.trim().to_owned())
        .unwrap_or_else(|_| revision.to_owned());
    let path = repo.join("snapshots").join(commit).join(file);
    path.exists().then_some(path)
}

/// Download (or, offline, find in the cache) the files of a llama checkpoint and return the
/// snapshot folder that holds them.
pub(crate) fn snapshot(
    org: &str,
    name: &str,
    revision: Option<&str>,
    opts: &LoadOptions,
) -> Result<PathBuf> {
    let repo_id = match revision {
        Some(r) => format!("{org}/{name}@{r}"),
        None => format!("{org}/{name}"),
    };
    let herr = |reason: String| ModelError::Hub {
        repo: repo_id.clone(),
        reason,
    };
    let rev = revision.unwrap_or("main");
    let cache = cache_dir(opts);
    let api = if opts.offline {
        None
    } else {
        let mut builder = ApiBuilder::from_cache(Cache::new(cache.clone())).with_progress(false);
        if let Ok(endpoint) = std::env::var("HF_ENDPOINT") {
            builder = builder.with_endpoint(endpoint);
        }
        let api = builder
            .build()
            .map_err(|e| herr(format!("cannot create the hub client: {e}")))?;
        Some(api.repo(Repo::with_revision(
            format!("{org}/{name}"),
            RepoType::Model,
            rev.to_owned(),
        )))
    };
    let fetch = |file: &str| -> std::result::Result<PathBuf, String> {
        if let Some(p) = cached(&cache, org, name, rev, file) {
            return Ok(p);
        }
        match &api {
            Some(repo) => repo.download(file).map_err(|e| e.to_string()),
            None => Err(format!(
                "not in the hub cache {} (offline: HF_HUB_OFFLINE is set, only the local cache \
                 was searched)",
                cache.display()
            )),
        }
    };
    let required = |file: &str| fetch(file).map_err(|e| herr(format!("{file}: {e}")));
    let config = required("config.json")?;
    let dir = config
        .parent()
        .map(PathBuf::from)
        .ok_or_else(|| herr("config.json has no parent folder".into()))?;
    required("tokenizer.json")?;
    // Optional files: their absence is not an error.
    let _ = fetch("tokenizer_config.json");
    let _ = fetch("chat_template.jinja");
    if fetch("model.safetensors").is_err() {
        let index = required("model.safetensors.index.json")?;
        let text = std::fs::read_to_string(&index).map_err(|e| ModelError::io(&index, e))?;
        let v: serde_json::Value = serde_json::from_str(&text)
            .map_err(|e| ModelError::checkpoint(&index, format!("not valid JSON: {e}")))?;
        let shards: std::collections::BTreeSet<String> = v
            .get("weight_map")
            .and_then(|m| m.as_object())
            .map(|m| {
                m.values()
                    .filter_map(|s| s.as_str().map(str::to_string))
                    .collect()
            })
            .unwrap_or_default();
        for shard in shards {
            required(&shard)?;
        }
    }
    Ok(dir)
}
