//! Hugging Face checkpoints: a local folder or a hub repository (through `hf-hub`, offline
//! when asked), and `convert`, which writes such a folder from any loaded model.

use std::collections::{BTreeSet, HashMap};
use std::path::{Path, PathBuf};

use candle_core::safetensors::MmapedSafetensors;
use candle_core::{DType, Device, Tensor};
use serde_json::{json, Value};

use crate::error::{ModelError, Result};
use crate::llama::{Llama, LlamaConfig, Proj, WeightFormat, WeightSource, Weights};

/// The files of a Hugging Face llama checkpoint folder.
#[derive(Debug, Clone)]
pub struct HfFolder {
    pub dir: PathBuf,
    pub config: LlamaConfig,
    pub tokenizer_json: PathBuf,
    pub tokenizer_config: Option<Value>,
    /// The chat template and where it was found.
    pub chat_template: Option<(String, String)>,
    /// `model.safetensors`, or the shards listed in `model.safetensors.index.json`.
    pub weights: Vec<PathBuf>,
}

fn read_json(path: &Path) -> Result<Value> {
    let text = std::fs::read_to_string(path).map_err(|e| ModelError::io(path, e))?;
    serde_json::from_str(&text)
        .map_err(|e| ModelError::checkpoint(path, format!("not valid JSON: {e}")))
}

impl HfFolder {
    /// Read `config.json`, `tokenizer_config.json` (its `chat_template`, or a
    /// `chat_template.jinja` beside it) and find the safetensors files of `dir`.
    pub fn open(dir: &Path) -> Result<Self> {
        let config_path = dir.join("config.json");
        let config_json = read_json(&config_path)?;
        let model_type = config_json
            .get("model_type")
            .and_then(Value::as_str)
            .unwrap_or("llama");
        let archs: Vec<&str> = config_json
            .get("architectures")
            .and_then(Value::as_array)
            .map(|a| a.iter().filter_map(Value::as_str).collect())
            .unwrap_or_default();
        if model_type != "llama" || archs.iter().any(|a| *a != "LlamaForCausalLM") {
            return Err(ModelError::UnsupportedArchitecture {
                path: config_path,
                arch: archs
                    .first()
                    .map_or(model_type.to_string(), |a| a.to_string()),
            });
        }
        let config: LlamaConfig = serde_json::from_value(config_json)
            .map_err(|e| ModelError::checkpoint(&config_path, format!("{e}")))?;

        let tokenizer_json = dir.join("tokenizer.json");
        if !tokenizer_json.is_file() {
            return Err(ModelError::tokenizer(
                &tokenizer_json,
                "missing (the folder has no tokenizer.json)",
            ));
        }
        let tc_path = dir.join("tokenizer_config.json");
        let tokenizer_config = if tc_path.is_file() {
            Some(read_json(&tc_path)?)
        } else {
            None
        };
        let mut chat_template = None;
        let jinja = dir.join("chat_template.jinja");
        if jinja.is_file() {
            let t = std::fs::read_to_string(&jinja).map_err(|e| ModelError::io(&jinja, e))?;
            chat_template = Some((t, jinja.display().to_string()));
        } else if let Some(t) = tokenizer_config
            .as_ref()
            .and_then(|c| c.get("chat_template"))
        {
            let origin = format!("{}: chat_template", tc_path.display());
            match t {
                Value::String(s) => chat_template = Some((s.clone(), origin)),
                // A list of named templates: take "default".
                Value::Array(items) => {
                    let default = items
                        .iter()
                        .find(|i| i.get("name").and_then(Value::as_str) == Some("default"));
                    if let Some(s) = default
                        .and_then(|d| d.get("template"))
                        .and_then(Value::as_str)
                    {
                        chat_template = Some((s.to_string(), origin));
                    }
                }
                // Written by tools for a model without one.
                Value::Null => {}
                _ => {
                    return Err(ModelError::Template {
                        origin,
                        reason: "expected a string or a list of {name, template}".into(),
                    })
                }
            }
        }

        let single = dir.join("model.safetensors");
        let index = dir.join("model.safetensors.index.json");
        let weights = if single.is_file() {
            vec![single]
        } else if index.is_file() {
            let idx = read_json(&index)?;
            let map = idx
                .get("weight_map")
                .and_then(Value::as_object)
                .ok_or_else(|| ModelError::checkpoint(&index, "no weight_map object"))?;
            let files: BTreeSet<&str> = map.values().filter_map(Value::as_str).collect();
            let mut out = Vec::new();
            for f in files {
                if f.contains("..") || f.contains('/') {
                    return Err(ModelError::checkpoint(
                        &index,
                        format!("shard name {f:?} leaves the folder"),
                    ));
                }
                let p = dir.join(f);
                if !p.is_file() {
                    return Err(ModelError::checkpoint(
                        &p,
                        "shard listed in the index is missing",
                    ));
                }
                out.push(p);
            }
            out
        } else {
            return Err(ModelError::checkpoint(
                dir,
                "no model.safetensors or model.safetensors.index.json",
            ));
        };
        Ok(Self {
            dir: dir.to_path_buf(),
            config,
            tokenizer_json,
            tokenizer_config,
            chat_template,
            weights,
        })
    }
}

/// A [`WeightSource`] over memory-mapped safetensors files.
pub struct SafetensorsWeights {
    st: MmapedSafetensors,
    names: std::collections::HashSet<String>,
    origin: String,
}

impl SafetensorsWeights {
    pub fn open(files: &[PathBuf]) -> Result<Self> {
        let origin = files
            .first()
            .map_or_else(String::new, |p| p.display().to_string());
        // SAFETY: the files are memory-mapped read-only; like every mmap-based loader we
        // assume no other process truncates them while the model is loaded.
        let st = unsafe { MmapedSafetensors::multi(files) }
            .map_err(|e| ModelError::checkpoint(&origin, format!("invalid safetensors: {e}")))?;
        let names = st.tensors().into_iter().map(|(n, _)| n).collect();
        Ok(Self { st, names, origin })
    }
}

impl WeightSource for SafetensorsWeights {
    fn contains(&self, name: &str) -> bool {
        self.names.contains(name)
    }
    fn tensor(&mut self, name: &str, dtype: DType, device: &Device) -> Result<Tensor> {
        if !self.names.contains(name) {
            return Err(ModelError::checkpoint(
                &self.origin,
                format!("missing tensor {name}"),
            ));
        }
        let t = self
            .st
            .load(name, device)
            .map_err(|e| ModelError::checkpoint(&self.origin, format!("tensor {name}: {e}")))?;
        Ok(t.to_dtype(dtype)?)
    }
    fn linear(&mut self, name: &str, format: WeightFormat, device: &Device) -> Result<Weights> {
        let dtype = match format {
            WeightFormat::Dense(d) => d,
            WeightFormat::Quantized => DType::F32,
        };
        Ok(Weights::Dense(self.tensor(name, dtype, device)?))
    }
    fn origin(&self) -> String {
        self.origin.clone()
    }
}

/// Split `org/name[@revision]`.
pub fn parse_repo_spec(spec: &str) -> Option<(String, String, Option<String>)> {
    let (repo, rev) = match spec.split_once('@') {
        Some((r, v)) if !v.is_empty() => (r, Some(v.to_string())),
        Some(_) => return None,
        None => (spec, None),
    };
    let (org, name) = repo.split_once('/')?;
    let ok = |s: &str| {
        !s.is_empty()
            && s.chars()
                .all(|c| c.is_ascii_alphanumeric() || "-_.".contains(c))
    };
    (ok(org) && ok(name) && !name.contains('/')).then(|| (org.to_string(), name.to_string(), rev))
}

/// What `convert` wrote.
#[derive(Debug, Clone, serde::Serialize)]
pub struct ConvertReport {
    pub dir: PathBuf,
    pub files: Vec<PathBuf>,
    pub tensors: usize,
    pub bytes: u64,
}

/// Write `llama` (with its tokenizer and chat template) as a Hugging Face folder: `config.json`,
/// `model.safetensors` (in `dtype`), `tokenizer.json`, `tokenizer_config.json`,
/// `generation_config.json`. Q/K rows are in Hugging Face order already.
///
/// A GGUF's `rope_freqs.weight` becomes config.json's llama3 `rope_scaling` (the one the loader
/// matched to it); factors that no llama3 scaling reproduces are refused, as config.json could
/// not carry them and the written model would rotate differently.
pub fn convert(model: &crate::LoadedModel, out: &Path, dtype: DType) -> Result<ConvertReport> {
    let llama: &Llama = &model.llama;
    let cfg = llama.config();
    if let Some(factors) = &cfg.rope_freq_factors {
        if cfg.rope_scaling.is_none() && factors.iter().any(|&f| f != 1.0) {
            return Err(ModelError::checkpoint(
                &model.info.path,
                "rope_freqs.weight matches no llama3 rope_scaling (low/high frequency factors \
                 1/4), so config.json cannot express it",
            ));
        }
    }
    std::fs::create_dir_all(out).map_err(|e| ModelError::io(out, e))?;
    let mut tensors: HashMap<String, Tensor> = HashMap::new();
    let cast = |t: &Tensor| -> Result<Tensor> { Ok(t.to_dtype(dtype)?.contiguous()?) };
    tensors.insert(
        "model.embed_tokens.weight".into(),
        cast(llama.embed_tokens())?,
    );
    tensors.insert("model.norm.weight".into(), cast(llama.norm_weight())?);
    for layer in 0..llama.num_layers() {
        let (inn, post) = llama
            .layer_norms(layer)
            .ok_or_else(|| ModelError::InvalidArgument(format!("no layer {layer}")))?;
        tensors.insert(
            format!("model.layers.{layer}.input_layernorm.weight"),
            cast(inn)?,
        );
        tensors.insert(
            format!("model.layers.{layer}.post_attention_layernorm.weight"),
            cast(post)?,
        );
        for proj in Proj::ALL {
            let lin = llama
                .linear(layer, proj)
                .ok_or_else(|| ModelError::InvalidArgument(format!("no layer {layer}")))?;
            tensors.insert(
                format!("{}.weight", proj.path(layer)),
                cast(&lin.dense_weight()?)?,
            );
        }
    }
    if !cfg.tie_word_embeddings {
        tensors.insert(
            "lm_head.weight".into(),
            cast(&llama.lm_head().dense_weight()?)?,
        );
    }
    let st_path = out.join("model.safetensors");
    candle_core::safetensors::save(&tensors, &st_path)
        .map_err(|e| ModelError::checkpoint(&st_path, format!("cannot write: {e}")))?;

    let tok = &model.tokenizer;
    let wire = cfg.to_wire(tok.bos().map(|t| t.id), tok.eos().map(|t| t.id), dtype);
    let write_json = |name: &str, v: &Value| -> Result<PathBuf> {
        let p = out.join(name);
        let text = serde_json::to_string_pretty(v)
            .map_err(|e| ModelError::checkpoint(&p, format!("cannot serialize: {e}")))?;
        std::fs::write(&p, text).map_err(|e| ModelError::io(&p, e))?;
        Ok(p)
    };
    let config_v =
        serde_json::to_value(&wire).map_err(|e| ModelError::checkpoint(out, e.to_string()))?;
    let mut files = vec![st_path.clone()];
    files.push(write_json("config.json", &config_v)?);
    files.push(write_json("tokenizer.json", tok.hf_json())?);
    let name =
        |t: Option<crate::tokenizer::SpecialToken>| t.map_or(Value::Null, |t| json!(t.content));
    let added: serde_json::Map<String, Value> = tok
        .special_tokens()
        .into_iter()
        .map(|t| {
            (
                t.id.to_string(),
                json!({"content": t.content, "lstrip": false, "normalized": false,
                "rstrip": false, "single_word": false, "special": true}),
            )
        })
        .collect();
    let mut tc = json!({
        "add_bos_token": tok.adds_bos(),
        "add_eos_token": false,
        "added_tokens_decoder": added,
        "bos_token": name(tok.bos()),
        "eos_token": name(tok.eos()),
        "unk_token": name(tok.unk()),
        "pad_token": name(tok.pad()),
        "clean_up_tokenization_spaces": false,
        "model_max_length": cfg.max_position_embeddings,
        "tokenizer_class": match tok.kind() {
            crate::tokenizer::TokenizerKind::ByteLevelBpe => "GPT2Tokenizer",
            crate::tokenizer::TokenizerKind::SentencePiece => "LlamaTokenizer",
        },
    });
    // Without a template the key is left out, as transformers does.
    if let Some(t) = &model.chat_template {
        tc["chat_template"] = json!(t.source());
    }
    files.push(write_json("tokenizer_config.json", &tc)?);
    let mut eos_ids: Vec<u32> = tok.eos().map(|t| t.id).into_iter().collect();
    if let Some(eot) = model.end_of_turn() {
        if !eos_ids.contains(&eot) {
            eos_ids.push(eot);
        }
    }
    let gen = json!({"bos_token_id": tok.bos().map(|t| t.id), "eos_token_id": eos_ids});
    files.push(write_json("generation_config.json", &gen)?);
    let bytes = files
        .iter()
        .map(|f| std::fs::metadata(f).map(|m| m.len()).unwrap_or(0))
        .sum();
    Ok(ConvertReport {
        dir: out.to_path_buf(),
        files,
        tensors: tensors.len(),
        bytes,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn repo_specs_parse() {
        assert_eq!(
            parse_repo_spec("HuggingFaceTB/SmolLM2-135M-Instruct@main"),
            Some((
                "HuggingFaceTB".into(),
                "SmolLM2-135M-Instruct".into(),
                Some("main".into())
            ))
        );
        assert_eq!(parse_repo_spec("a/b"), Some(("a".into(), "b".into(), None)));
        assert_eq!(parse_repo_spec("a/b@"), None);
        assert_eq!(parse_repo_spec("a/b/c"), None);
        assert_eq!(parse_repo_spec("model.gguf"), None);
    }

    #[test]
    fn a_folder_without_config_names_the_file() {
        let dir = tempfile::tempdir().expect("tempdir");
        let err = HfFolder::open(dir.path()).unwrap_err().to_string();
        assert!(err.contains("config.json"), "{err}");
    }
}
