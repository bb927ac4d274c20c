//! Hugging Face hub repositories through `hf-hub` (cache layout shared with Python's client).

use std::path::PathBuf;

use hf_hub::{HFClient, HFClientSync};

use crate::error::{ModelError, Result};
use crate::LoadOptions;

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
    let mut builder = HFClient::builder();
    if let Some(dir) = &opts.hub_cache {
        builder = builder.cache_dir(dir.clone());
    }
    if opts.offline {
        // Offline: no retries against an unreachable network, only the cache is read.
        builder = builder.retry_max_attempts(0);
    }
    let client = builder
        .build()
        .map_err(|e| herr(format!("cannot create the hub client: {e}")))?;
    let client = HFClientSync::from_inner(client)
        .map_err(|e| herr(format!("cannot create the hub client: {e}")))?;
    let repo = client.model(org, name);
    let fetch = |file: &str| -> std::result::Result<PathBuf, hf_hub::HFError> {
        repo.download_file()
            .filename(file)
            .maybe_revision(revision.map(str::to_string))
            .local_files_only(opts.offline)
            .send()
    };
    let offline_hint = if opts.offline {
        " (offline: HF_HUB_OFFLINE is set, only the local cache was searched)"
    } else {
        ""
    };
    let required = |file: &str| fetch(file).map_err(|e| herr(format!("{file}: {e}{offline_hint}")));
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
