//! GGUF metadata for a base model loaded from a Hugging Face folder, built as llama.cpp's
//! `convert_hf_to_gguf.py` builds it for `LlamaForCausalLM`: hyper-parameters from
//! `config.json`, the vocabulary from `tokenizer.json`, special tokens and `add_*` flags from
//! `tokenizer_config.json` (falling back to `tokenizer.json`'s post-processor and `config.json`),
//! the chat template, and for Llama 3 rope scaling the `rope_freqs.weight` factors. Value types
//! are the converter's: counts `u32`, floats `f32`, token types `i32`, special ids `u32`.
//!
//! Where the converter would ask Python's `transformers`, the tokenizer tierforge loaded (and
//! trained with) answers. Deliberate departures, each because llama.cpp would otherwise
//! tokenize differently from that tokenizer:
//! - `tokenizer.ggml.add_bos_token` is always written (the converter leaves it out when neither
//!   `tokenizer_config.json` nor the post-processor says, and llama.cpp then guesses per
//!   pre-tokenizer).
//! - SentencePiece vocabularies (no `tokenizer.model` is read) get `tokenizer.ggml.scores` from
//!   the merge ranks of `tokenizer.json` rather than the converter's constant -1000, and an
//!   explicit `add_space_prefix`.
//! - The chat template is the one the model was loaded (and trained) with: `chat_template.jinja`
//!   before `tokenizer_config.json`'s; the converter prefers the latter when a folder has both.
//!
//! Not written: the naming keys the converter derives from the hub repo id and the README model
//! card (`general.organization`, `basename`, `finetune`, `license`, `languages`, ...).

use std::collections::HashMap;
use std::path::Path;

use candle_core::quantized::gguf_file::Value;
use serde_json::Value as Json;
use tierforge_model::hf::HfFolder;
use tierforge_model::llama::TokenIds;
use tierforge_model::tokenizer::byte_level_pre_name;
use tierforge_model::{LoadedModel, Tokenizer, TokenizerKind};

use crate::export::ExportError;

/// llama.cpp's token types (`llama_token_type`).
const NORMAL: i32 = 1;
const UNKNOWN: i32 = 2;
const CONTROL: i32 = 3;
const USER_DEFINED: i32 = 4;
const UNUSED: i32 = 5;
const BYTE: i32 = 6;

/// What a merged GGUF takes from a Hugging Face base besides the weights.
#[derive(Debug, Clone)]
pub struct HfGguf {
    /// Every metadata key except `general.name`, `general.file_type` and
    /// `general.quantization_version` (the exporter's), in no particular order.
    pub metadata: Vec<(String, Value)>,
    /// `rope_freqs.weight`: `head_dim / 2` F32 factors that divide each rotary frequency, for
    /// Llama 3 rope scaling; `None` without it.
    pub rope_freqs: Option<Vec<f32>>,
    /// The model's name as its folder (or hub repository) spells it: the default `general.name`.
    pub name: String,
}

fn hf_err(path: &Path, reason: impl Into<String>) -> ExportError {
    ExportError::HfFolder {
        path: path.to_path_buf(),
        reason: reason.into(),
    }
}

/// Build the GGUF metadata of `model`, which was loaded from a Hugging Face folder (its
/// `config.json` and `tokenizer_config.json` are read again from `model.info.path`).
/// Fails on a byte-level pre-tokenizer llama.cpp has no name for, and on token ids outside the
/// model's vocabulary.
pub fn build(model: &LoadedModel) -> Result<HfGguf, ExportError> {
    let folder = HfFolder::open(&model.info.path)?;
    let cfg = model.llama.config();
    let rope_freqs = cfg
        .rope_scaling
        .as_ref()
        .map(|s| s.llama3_freq_factors(cfg.head_dim, cfg.rope_theta));
    let params = cfg.parameter_count() + rope_freqs.as_ref().map_or(0, |f| f.len() as u64);

    let s = |v: &str| Value::String(v.to_string());
    let u = |v: usize| Value::U32(v as u32);
    let mut kv: Vec<(String, Value)> = vec![
        ("general.architecture".into(), s("llama")),
        ("general.type".into(), s("model")),
        (
            "general.size_label".into(),
            Value::String(size_label(params)),
        ),
        ("llama.block_count".into(), u(cfg.num_hidden_layers)),
        (
            "llama.context_length".into(),
            u(cfg.max_position_embeddings),
        ),
        ("llama.embedding_length".into(), u(cfg.hidden_size)),
        ("llama.feed_forward_length".into(), u(cfg.intermediate_size)),
        (
            "llama.attention.head_count".into(),
            u(cfg.num_attention_heads),
        ),
        (
            "llama.attention.head_count_kv".into(),
            u(cfg.num_key_value_heads),
        ),
        ("llama.rope.freq_base".into(), Value::F32(cfg.rope_theta)),
        (
            "llama.attention.layer_norm_rms_epsilon".into(),
            Value::F32(cfg.rms_norm_eps as f32),
        ),
    ];
    // The converter records an explicit `head_dim` as key/value lengths.
    if folder.config.head_dim.is_some() {
        kv.push(("llama.attention.key_length".into(), u(cfg.head_dim)));
        kv.push(("llama.attention.value_length".into(), u(cfg.head_dim)));
    }
    kv.push(("llama.vocab_size".into(), u(cfg.vocab_size)));
    kv.push(("llama.rope.dimension_count".into(), u(cfg.head_dim)));
    // Llama 3 rope scaling is `rope_freqs.weight` alone: llama.cpp knows no "llama3" scaling
    // type (it asserts on unknown ones), and a `rope.scaling.factor` would scale linearly on top.

    let ids = SpecialIds {
        bos: model
            .tokenizer
            .bos()
            .map(|t| t.id)
            .or(single(&folder.config.bos_token_id)),
        eos: model
            .tokenizer
            .eos()
            .map(|t| t.id)
            .or(single(&folder.config.eos_token_id)),
        unk: model.tokenizer.unk().map(|t| t.id),
        pad: model
            .tokenizer
            .pad()
            .map(|t| t.id)
            .or(folder.config.pad_token_id),
    };
    kv.extend(tokenizer_metadata(
        &model.tokenizer,
        &folder.tokenizer_json,
        folder.tokenizer_config.as_ref(),
        &ids,
        cfg.vocab_size,
    )?);
    if let Some(t) = &model.chat_template {
        kv.push(("tokenizer.chat_template".into(), s(t.source())));
    }
    Ok(HfGguf {
        metadata: kv,
        rope_freqs,
        name: model_name(model),
    })
}

/// `config.json`'s id when it is a single one (the converter skips lists).
fn single(ids: &Option<TokenIds>) -> Option<u32> {
    match ids {
        Some(TokenIds::One(id)) => Some(*id),
        _ => None,
    }
}

/// The folder's name, or the repository's for a hub id (`org/name@rev` -> `name`).
fn model_name(model: &LoadedModel) -> String {
    let src = Path::new(&model.info.source);
    let name = if src.exists() {
        // Canonical, so that `.` or `models/x/` still have a name.
        std::fs::canonicalize(src)
            .ok()
            .and_then(|p| p.file_name().map(|n| n.to_string_lossy().into_owned()))
    } else {
        src.file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .map(|n| n.split('@').next().unwrap_or(&n).to_string())
    };
    name.filter(|n| !n.is_empty())
        .unwrap_or_else(|| "model".into())
}

/// `general.size_label` as gguf-py's `size_label` spells a parameter count: K/M/B/T with at
/// least two significant digits ("135M", "1.2B", "8.0B").
pub fn size_label(params: u64) -> String {
    let p = params as f64;
    let (scaled, suffix) = if p > 1e12 {
        (p * 1e-12, "T")
    } else if p > 1e9 {
        (p * 1e-9, "B")
    } else if p > 1e6 {
        (p * 1e-6, "M")
    } else {
        (p * 1e-3, "K")
    };
    let digits = (scaled.round_ties_even() as u64)
        .to_string()
        .trim_start_matches('0')
        .len();
    let fix = 2usize.saturating_sub(digits);
    format!("{scaled:.fix$}{suffix}")
}

/// The special token ids to record.
struct SpecialIds {
    bos: Option<u32>,
    eos: Option<u32>,
    unk: Option<u32>,
    pad: Option<u32>,
}

/// Added tokens the converter marks as control tokens whatever their `special` flag.
fn looks_special(t: &str) -> bool {
    ["<pad>", "<mask>", "<2mass>", "[@BOS@]"].contains(&t)
        || (t.starts_with("<|") && t.ends_with("|>"))
        || (t.starts_with("<\u{ff5c}") && t.ends_with("\u{ff5c}>"))
        || (t.starts_with("<unused") && t.ends_with('>'))
}

/// `<0xNN>`: a SentencePiece byte-fallback token.
fn is_byte_token(t: &str) -> bool {
    t.len() == 6
        && t.starts_with("<0x")
        && t.ends_with('>')
        && t[3..5].chars().all(|c| c.is_ascii_hexdigit())
}

/// One merge of `tokenizer.json` as `"left right"`: either already a string, or a
/// `[left, right]` pair (transformers 4.45+), whose spaces the converter writes as `Ġ`.
fn merge_string(m: &Json) -> Option<String> {
    match m {
        Json::String(s) => Some(s.clone()),
        Json::Array(pair) => match pair.as_slice() {
            [Json::String(l), Json::String(r)] => {
                let enc = |s: &str| s.replace(' ', "\u{120}");
                Some(format!("{} {}", enc(l), enc(r)))
            }
            _ => None,
        },
        _ => None,
    }
}

/// `add_bos_token` / `add_eos_token` as a `TemplateProcessing` post-processor implies them
/// (its single-sequence template starts with the BOS / ends with the EOS): what the converter
/// falls back to when `tokenizer_config.json` does not say.
fn template_flags(hf: &Json, bos: Option<&str>, eos: Option<&str>) -> (Option<bool>, Option<bool>) {
    let Some(pp) = hf.get("post_processor").filter(|p| !p.is_null()) else {
        return (None, None);
    };
    let steps: Vec<&Json> = match pp.get("processors").and_then(Json::as_array) {
        Some(list) => list.iter().collect(),
        None => vec![pp],
    };
    let (mut add_bos, mut add_eos) = (None, None);
    for p in steps {
        if p.get("type").and_then(Json::as_str) != Some("TemplateProcessing") {
            continue;
        }
        let single = p.get("single").and_then(Json::as_array);
        let Some(single) = single.filter(|s| s.len() > 1) else {
            continue;
        };
        let special = |item: &Json| {
            item.pointer("/SpecialToken/id")
                .and_then(Json::as_str)
                .map(str::to_string)
        };
        if let Some(first) = single.first().and_then(special) {
            add_bos = Some(Some(first.as_str()) == bos);
        }
        if let Some(last) = single.last().and_then(special) {
            add_eos = Some(Some(last.as_str()) == eos);
        }
    }
    (add_bos, add_eos)
}

/// `tokenizer.ggml.*` (and nothing else) for `tok`, padded to `vocab_size` entries with
/// `[PAD<id>]` tokens of type unused as the converter pads.
fn tokenizer_metadata(
    tok: &Tokenizer,
    tokenizer_json: &Path,
    tokenizer_config: Option<&Json>,
    ids: &SpecialIds,
    vocab_size: usize,
) -> Result<Vec<(String, Value)>, ExportError> {
    let hf = tok.hf_json();
    let err = |reason: String| hf_err(tokenizer_json, reason);
    let vocab = hf
        .pointer("/model/vocab")
        .and_then(Json::as_object)
        .ok_or_else(|| err("model.vocab is not an object".into()))?;
    let mut tokens: Vec<Option<String>> = vec![None; vocab_size];
    let mut put = |id: u64, t: &str| -> Result<(), ExportError> {
        let slot = tokens.get_mut(id as usize).ok_or_else(|| {
            err(format!(
                "token {t:?} has id {id}, outside the model's vocabulary of {vocab_size}"
            ))
        })?;
        *slot = Some(t.to_string());
        Ok(())
    };
    for (t, id) in vocab {
        let id = id
            .as_u64()
            .ok_or_else(|| err(format!("model.vocab: {t:?} has no integer id")))?;
        put(id, t)?;
    }
    // id -> special flag, for the tokens of `added_tokens` (which may repeat vocab entries).
    let mut added: HashMap<u32, bool> = HashMap::new();
    for a in hf
        .get("added_tokens")
        .and_then(Json::as_array)
        .into_iter()
        .flatten()
    {
        if let (Some(id), Some(content)) = (
            a.get("id").and_then(Json::as_u64),
            a.get("content").and_then(Json::as_str),
        ) {
            put(id, content)?;
            let special = a.get("special").and_then(Json::as_bool).unwrap_or(false);
            added.insert(id as u32, special);
        }
    }
    for (what, id) in [
        ("bos", ids.bos),
        ("eos", ids.eos),
        ("unk", ids.unk),
        ("pad", ids.pad),
    ] {
        if let Some(id) = id.filter(|&i| i as usize >= vocab_size) {
            return Err(err(format!(
                "the {what} token id {id} is outside the model's vocabulary of {vocab_size}"
            )));
        }
    }

    let mut kv = Vec::new();
    let mut names = Vec::with_capacity(vocab_size);
    let mut types = Vec::with_capacity(vocab_size);
    let kind = tok.kind();
    for (i, t) in tokens.into_iter().enumerate() {
        let Some(t) = t else {
            names.push(format!("[PAD{i}]"));
            types.push(UNUSED);
            continue;
        };
        // SentencePiece's own types for its unknown and byte tokens, as in GGUFs converted
        // from `tokenizer.model`.
        let ty = match (kind, added.get(&(i as u32))) {
            (TokenizerKind::SentencePiece, _) if ids.unk == Some(i as u32) => UNKNOWN,
            (TokenizerKind::SentencePiece, None) if is_byte_token(&t) => BYTE,
            (_, Some(&special)) if special || looks_special(&t) => CONTROL,
            (_, Some(_)) => USER_DEFINED,
            _ => NORMAL,
        };
        // llama.cpp matches user-defined tokens in raw text: spaces, not `▁`.
        let t = if ty == USER_DEFINED {
            t.replace('\u{2581}', " ")
        } else {
            t
        };
        names.push(t);
        types.push(ty);
    }
    let merges: Vec<String> = match hf.pointer("/model/merges") {
        Some(Json::Array(items)) => items
            .iter()
            .enumerate()
            .map(|(i, m)| {
                merge_string(m).ok_or_else(|| {
                    err(format!(
                        "model.merges[{i}]: expected \"a b\" or [\"a\", \"b\"], got {m}"
                    ))
                })
            })
            .collect::<Result<_, _>>()?,
        _ => Vec::new(),
    };
    let strings = |v: &[String]| Value::Array(v.iter().cloned().map(Value::String).collect());

    match kind {
        TokenizerKind::ByteLevelBpe => {
            let pre_tok = hf.get("pre_tokenizer").unwrap_or(&Json::Null);
            let pre = byte_level_pre_name(pre_tok).ok_or_else(|| {
                let mut shown = pre_tok.to_string();
                if shown.len() > 300 {
                    let cut = (0..=300).rev().find(|&i| shown.is_char_boundary(i));
                    shown.truncate(cut.unwrap_or(0));
                    shown.push_str("...");
                }
                err(format!(
                    "pre_tokenizer {shown} is not one llama.cpp has a name for \
                     (tokenizer.ggml.pre: smollm, gpt-2, llama-bpe, qwen2); \
                     llama.cpp would split text differently from the tokenizer the model \
                     was trained with"
                ))
            })?;
            kv.push(("tokenizer.ggml.model".into(), Value::String("gpt2".into())));
            kv.push(("tokenizer.ggml.pre".into(), Value::String(pre.into())));
            kv.push(("tokenizer.ggml.tokens".into(), strings(&names)));
            kv.push((
                "tokenizer.ggml.token_type".into(),
                Value::Array(types.into_iter().map(Value::I32).collect()),
            ));
            if !merges.is_empty() {
                kv.push(("tokenizer.ggml.merges".into(), strings(&merges)));
            }
        }
        TokenizerKind::SentencePiece => {
            let scores = spm_scores(&names, &merges);
            kv.push(("tokenizer.ggml.model".into(), Value::String("llama".into())));
            kv.push(("tokenizer.ggml.pre".into(), Value::String("default".into())));
            kv.push(("tokenizer.ggml.tokens".into(), strings(&names)));
            kv.push((
                "tokenizer.ggml.scores".into(),
                Value::Array(scores.into_iter().map(Value::F32).collect()),
            ));
            kv.push((
                "tokenizer.ggml.token_type".into(),
                Value::Array(types.into_iter().map(Value::I32).collect()),
            ));
        }
    }
    for (key, id) in [
        ("tokenizer.ggml.bos_token_id", ids.bos),
        ("tokenizer.ggml.eos_token_id", ids.eos),
        ("tokenizer.ggml.unknown_token_id", ids.unk),
        ("tokenizer.ggml.padding_token_id", ids.pad),
    ] {
        if let Some(id) = id {
            kv.push((key.into(), Value::U32(id)));
        }
    }

    let stated = |key: &str| {
        tokenizer_config
            .and_then(|c| c.get(key))
            .and_then(Json::as_bool)
    };
    let (tmpl_bos, tmpl_eos) = template_flags(
        hf,
        tok.bos().map(|t| t.content).as_deref(),
        tok.eos().map(|t| t.content).as_deref(),
    );
    let add_bos = stated("add_bos_token")
        .or(tmpl_bos)
        .unwrap_or(tok.adds_bos());
    kv.push(("tokenizer.ggml.add_bos_token".into(), Value::Bool(add_bos)));
    if let Some(add_eos) = stated("add_eos_token").or(tmpl_eos) {
        kv.push(("tokenizer.ggml.add_eos_token".into(), Value::Bool(add_eos)));
    }
    // The converter copies `add_prefix_space`; llama.cpp defaults to a space prefix for
    // SentencePiece, so there the tokenizer's own normalizer decides when the config is silent.
    let space_prefix = stated("add_prefix_space").or(match kind {
        TokenizerKind::SentencePiece => Some(tok.adds_space_prefix()),
        TokenizerKind::ByteLevelBpe => None,
    });
    if let Some(p) = space_prefix {
        kv.push(("tokenizer.ggml.add_space_prefix".into(), Value::Bool(p)));
    }
    Ok(kv)
}

/// SentencePiece scores that make llama.cpp merge as `tokenizer.json`'s BPE does. llama.cpp
/// merges the adjacent pair whose joined piece scores highest (leftmost on ties); Hugging Face
/// the pair of lowest merge rank. Its merges are ranked by the score of the piece they form
/// (transformers' `SentencePieceExtractor`), so a piece scores minus the rank of its first
/// merge; pieces no merge forms (characters, bytes, specials) score below every merge.
fn spm_scores(tokens: &[String], merges: &[String]) -> Vec<f32> {
    let mut rank: HashMap<String, usize> = HashMap::with_capacity(merges.len());
    for (r, m) in merges.iter().enumerate() {
        if let Some((l, rt)) = m.split_once(' ') {
            rank.entry(format!("{l}{rt}")).or_insert(r);
        }
    }
    let floor = -(merges.len() as f32) - 1.;
    tokens
        .iter()
        .map(|t| rank.get(t).map_or(floor, |&r| -(r as f32)))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn llama3_rope_factors_follow_the_formula() {
        use tierforge_model::llama::RopeScaling;
        // Head size 8, theta 500000, Llama 3.1's factors (8, 1, 4, 8192). Frequencies
        // 500000^(-i/8) for i = 0, 2, 4, 6 have wavelengths 2π·500000^(i/8):
        //   6.28 and 167.08 are under 8192/4 = 2048: factor 1;
        //   118142.8 is over 8192/1: factor 8;
        //   4442.883 lies between: smooth = (8192/4442.883 - 1)/(4 - 1) = 0.2812826,
        //   factor 1/((1 - 0.2812826)/8 + 0.2812826) = 2.6945297.
        let s = RopeScaling {
            factor: 8.0,
            low_freq_factor: 1.0,
            high_freq_factor: 4.0,
            original_max_position_embeddings: 8192,
            rope_type: "llama3".into(),
        };
        let f = s.llama3_freq_factors(8, 500_000.0);
        let want = [1.0, 1.0, 2.694_529_7, 8.0];
        assert_eq!(f.len(), 4);
        for (got, want) in f.iter().zip(want) {
            assert!((got - want).abs() < 1e-5, "{f:?}");
        }
        // Llama 3.2 1B's head (64 dims, theta 500000, factor 32): 32 factors rising from 1 to 32.
        let s32 = RopeScaling { factor: 32.0, ..s };
        let f = s32.llama3_freq_factors(64, 500_000.0);
        assert_eq!(f.len(), 32);
        assert_eq!((f[0], f[31]), (1.0, 32.0));
        assert!(f.windows(2).all(|w| w[0] <= w[1]), "{f:?}");
    }

    #[test]
    fn size_labels_are_gguf_pys() {
        assert_eq!(size_label(134_515_008), "135M");
        assert_eq!(size_label(1_235_814_400), "1.2B");
        assert_eq!(size_label(1_100_048_384), "1.1B");
        assert_eq!(size_label(8_030_261_248), "8.0B");
        assert_eq!(size_label(70_553_706_496), "71B");
        assert_eq!(size_label(4_300), "4.3K");
    }

    #[test]
    fn spm_scores_rank_pieces_by_their_first_merge() {
        let tokens: Vec<String> = ["<unk>", "a", "b", "c", "ab", "abc", "bc"]
            .iter()
            .map(|s| s.to_string())
            .collect();
        let merges: Vec<String> = ["a b", "b c", "a bc", "ab c"]
            .iter()
            .map(|s| s.to_string())
            .collect();
        let s = spm_scores(&tokens, &merges);
        assert_eq!(s, [-5.0, -5.0, -5.0, -5.0, 0.0, -2.0, -1.0]);
    }

    #[test]
    fn merges_in_pair_form_encode_spaces() {
        let pair = serde_json::json!(["a b", "c"]);
        assert_eq!(merge_string(&pair).as_deref(), Some("a\u{120}b c"));
        assert_eq!(
            merge_string(&serde_json::json!("x y")).as_deref(),
            Some("x y")
        );
        assert_eq!(merge_string(&serde_json::json!(3)), None);
    }
}
