//! Tokenizers built from a GGUF vocabulary or a Hugging Face `tokenizer.json`.
//!
//! tokenizers 1.0.0-rc.3 has no builder API: a `PipelineTokenizer` only comes from a canonical
//! `tokenizer.json`. For GGUF we therefore synthesize the `tokenizer.json` that Hugging Face
//! would ship for the same vocabulary (byte-level BPE with the pre-tokenizer named by
//! `tokenizer.ggml.pre`, or a SentencePiece-style BPE for `tokenizer.ggml.model == "llama"`),
//! canonicalize it and load it. The same JSON is what `convert` writes out.

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use serde_json::{json, Value};
use tokenizers::pipeline::{EncodeOptions, PipelineTokenizer};

use crate::error::{ModelError, Result};
use crate::gguf::GgufFile;

/// The kind of vocabulary, which decides how token strings map to bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum TokenizerKind {
    /// GPT-2 style byte-level BPE (SmolLM2, Llama 3, Qwen 2).
    ByteLevelBpe,
    /// SentencePiece-style BPE with `▁` for spaces and `<0xNN>` byte fallback (Llama 2, TinyLlama).
    SentencePiece,
}

/// A token id together with its text.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct SpecialToken {
    pub id: u32,
    pub content: String,
}

/// A tokenizer plus the vocabulary facts the rest of the crate needs (special tokens, the bytes
/// each token stands for).
#[derive(Clone)]
pub struct Tokenizer {
    inner: PipelineTokenizer,
    kind: TokenizerKind,
    /// id -> token string as stored in the vocabulary.
    tokens: Vec<String>,
    /// id -> the bytes of text the token stands for (special tokens: their content).
    bytes: Vec<Vec<u8>>,
    ids: HashMap<String, u32>,
    /// id -> true for control/special tokens.
    special: Vec<bool>,
    bos: Option<u32>,
    eos: Option<u32>,
    unk: Option<u32>,
    pad: Option<u32>,
    add_bos: bool,
    add_space_prefix: bool,
    /// The Hugging Face (pre-canonical) tokenizer.json this tokenizer was built from.
    hf_json: Value,
}

impl std::fmt::Debug for Tokenizer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Tokenizer")
            .field("kind", &self.kind)
            .field("vocab", &self.tokens.len())
            .field("bos", &self.bos)
            .field("eos", &self.eos)
            .finish()
    }
}

/// GPT-2's reversible byte <-> printable-char table.
fn bytes_to_unicode() -> [char; 256] {
    let mut table = ['\0'; 256];
    let mut n = 0u32;
    for b in 0..=255u8 {
        let printable = matches!(b, b'!'..=b'~' | 0xA1..=0xAC | 0xAE..=0xFF);
        table[b as usize] = if printable {
            char::from(b)
        } else {
            let c = char::from_u32(256 + n).unwrap_or('\0');
            n += 1;
            c
        };
    }
    table
}

fn byte_level_decoder() -> HashMap<char, u8> {
    bytes_to_unicode()
        .iter()
        .enumerate()
        .map(|(b, &c)| (c, b as u8))
        .collect()
}

/// The text bytes a vocabulary entry stands for.
fn token_text_bytes(kind: TokenizerKind, token: &str, dec: &HashMap<char, u8>) -> Vec<u8> {
    match kind {
        TokenizerKind::ByteLevelBpe => {
            let mut out = Vec::with_capacity(token.len());
            for c in token.chars() {
                match dec.get(&c) {
                    Some(&b) => out.push(b),
                    None => {
                        let mut buf = [0u8; 4];
                        out.extend_from_slice(c.encode_utf8(&mut buf).as_bytes());
                    }
                }
            }
            out
        }
        TokenizerKind::SentencePiece => {
            if token.len() == 6 && token.starts_with("<0x") && token.ends_with('>') {
                if let Ok(b) = u8::from_str_radix(&token[3..5], 16) {
                    return vec![b];
                }
            }
            token.replace('\u{2581}', " ").into_bytes()
        }
    }
}

/// tokenizers 1.0.0-rc.3 refuses a byte-level vocabulary that lacks a single-byte token for
/// some byte (SmolLM2 has none for a few control bytes). Such bytes get placeholder ids past the
/// vocabulary, which `encode` drops again: llama.cpp also drops bytes it cannot express.
fn add_missing_byte_atoms(json: &mut Value, vocab_len: usize) {
    let table = bytes_to_unicode();
    let Some(vocab) = json
        .pointer_mut("/model/vocab")
        .and_then(Value::as_object_mut)
    else {
        return;
    };
    let mut next = vocab_len.max(
        vocab
            .values()
            .filter_map(Value::as_u64)
            .max()
            .map_or(0, |m| m as usize + 1),
    );
    for c in table {
        let key = c.to_string();
        if !vocab.contains_key(&key) {
            vocab.insert(key, json!(next));
            next += 1;
        }
    }
}

/// Pre-tokenizer and model flags for a byte-level BPE, by llama.cpp's `tokenizer.ggml.pre`.
fn byte_level_pre(pre: &str) -> Option<(Value, bool)> {
    const LLAMA3: &str = r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+";
    const QWEN2: &str = r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+";
    let byte_level = |regex: bool| json!({"type": "ByteLevel", "add_prefix_space": false, "trim_offsets": true, "use_regex": regex});
    let split = |pattern: &str| json!({"type": "Split", "pattern": {"Regex": pattern}, "behavior": "Isolated", "invert": false});
    Some(match pre {
        "smollm" | "starcoder" | "refact" => (
            json!({"type": "Sequence", "pretokenizers": [
                {"type": "Digits", "individual_digits": true}, byte_level(true)]}),
            false,
        ),
        "gpt-2" | "gpt2" | "default" => (byte_level(true), false),
        "llama3" | "llama-bpe" | "smaug-bpe" | "llama-v3" => (
            json!({"type": "Sequence", "pretokenizers": [split(LLAMA3), byte_level(false)]}),
            true,
        ),
        "qwen2" => (
            json!({"type": "Sequence", "pretokenizers": [split(QWEN2), byte_level(false)]}),
            false,
        ),
        _ => return None,
    })
}

/// llama.cpp's `tokenizer.ggml.pre` for a Hugging Face byte-level `pre_tokenizer`: the inverse
/// of [`byte_level_pre`], under the name llama.cpp's converter gives llama models with that
/// pre-tokenizer (`smollm`, `gpt-2`, `llama-bpe`, `qwen2`; `starcoder` and `refact` split text
/// as `smollm` does, `smaug-bpe` as `llama-bpe`). `trim_offsets` is ignored: it only moves
/// offsets, never token boundaries. `None` when the pre-tokenizer is none of these.
pub fn byte_level_pre_name(pre_tokenizer: &Value) -> Option<&'static str> {
    /// Drop what does not change tokenization and spell out defaults.
    fn canonical(v: &Value) -> Value {
        match v {
            Value::Object(m) => {
                let mut out: serde_json::Map<String, Value> = m
                    .iter()
                    .filter(|(k, _)| k.as_str() != "trim_offsets")
                    .map(|(k, v)| (k.clone(), canonical(v)))
                    .collect();
                if out.get("type").and_then(Value::as_str) == Some("ByteLevel") {
                    out.entry("use_regex").or_insert(Value::Bool(true));
                }
                Value::Object(out)
            }
            Value::Array(items) => Value::Array(items.iter().map(canonical).collect()),
            other => other.clone(),
        }
    }
    let want = canonical(pre_tokenizer);
    ["smollm", "gpt-2", "llama-bpe", "qwen2"]
        .into_iter()
        .find(|name| byte_level_pre(name).is_some_and(|(p, _)| canonical(&p) == want))
}

/// SentencePiece merges recovered from scores, as Hugging Face's `SentencePieceExtractor` does:
/// every split of a vocabulary piece into two vocabulary pieces is a merge, ranked by the
/// piece's score (higher first), ties by the ids of the halves.
fn spm_merges(
    tokens: &[String],
    scores: &[f32],
    ids: &HashMap<String, u32>,
) -> Vec<(String, String)> {
    let mut merges: Vec<(f32, u32, u32, String, String)> = Vec::new();
    for (id, piece) in tokens.iter().enumerate() {
        let score = scores.get(id).copied().unwrap_or(0.0);
        for (split, _) in piece.char_indices().skip(1) {
            let (l, r) = piece.split_at(split);
            if let (Some(&li), Some(&ri)) = (ids.get(l), ids.get(r)) {
                merges.push((score, li, ri, l.to_string(), r.to_string()));
            }
        }
    }
    merges.sort_by(|a, b| {
        b.0.partial_cmp(&a.0)
            .unwrap_or(std::cmp::Ordering::Equal)
            .then(a.1.cmp(&b.1))
            .then(a.2.cmp(&b.2))
    });
    merges.into_iter().map(|(_, _, _, l, r)| (l, r)).collect()
}

impl Tokenizer {
    /// Build the tokenizer a GGUF file describes (`tokenizer.ggml.*`).
    pub fn from_gguf(gguf: &GgufFile) -> Result<Self> {
        let path = gguf.path().to_path_buf();
        let terr = |r: String| ModelError::tokenizer(&path, r);
        let model = gguf
            .opt_str("tokenizer.ggml.model")?
            .ok_or_else(|| {
                terr("the GGUF has no tokenizer.ggml.model (no embedded tokenizer)".into())
            })?
            .to_string();
        let tokens: Vec<String> = gguf
            .get_strings("tokenizer.ggml.tokens")?
            .into_iter()
            .map(str::to_string)
            .collect();
        if tokens.is_empty() {
            return Err(terr("tokenizer.ggml.tokens is empty".into()));
        }
        let types: Vec<i64> = if gguf.metadata().contains_key("tokenizer.ggml.token_type") {
            gguf.get_i64s("tokenizer.ggml.token_type")?
        } else {
            vec![1; tokens.len()]
        };
        if types.len() != tokens.len() {
            return Err(terr(format!(
                "{} token types for {} tokens",
                types.len(),
                tokens.len()
            )));
        }
        let id_of = |key: &str| -> Result<Option<u32>> {
            match gguf.opt_u64(key)? {
                Some(v) if (v as usize) < tokens.len() => Ok(Some(v as u32)),
                Some(v) => Err(ModelError::tokenizer(
                    &path,
                    format!("{key} = {v} is outside the vocabulary of {}", tokens.len()),
                )),
                None => Ok(None),
            }
        };
        let bos = id_of("tokenizer.ggml.bos_token_id")?;
        let eos = id_of("tokenizer.ggml.eos_token_id")?;
        let unk = id_of("tokenizer.ggml.unknown_token_id")?;
        let pad = id_of("tokenizer.ggml.padding_token_id")?;
        let mut ids = HashMap::with_capacity(tokens.len());
        for (i, t) in tokens.iter().enumerate() {
            ids.entry(t.clone()).or_insert(i as u32);
        }

        // Control (3) and user-defined (4) tokens are matched in text before the model runs;
        // bos/eos/unk/pad are special whatever their type.
        let mut added = Vec::new();
        for (i, t) in tokens.iter().enumerate() {
            let named = [bos, eos, unk, pad].contains(&Some(i as u32));
            let ty = types[i];
            if ty == 3 || ty == 4 || (named && ty != 1 && ty != 6) {
                added.push(
                    json!({"id": i, "content": t, "single_word": false, "lstrip": false,
                    "rstrip": false, "normalized": false, "special": ty != 4}),
                );
            }
        }

        let (kind, hf_model, normalizer, pre_tokenizer, decoder) = match model.as_str() {
            "gpt2" => {
                let pre = gguf
                    .opt_str("tokenizer.ggml.pre")?
                    .unwrap_or("default")
                    .to_string();
                let (pre_tok, ignore_merges) = byte_level_pre(&pre).ok_or_else(|| {
                    terr(format!(
                        "tokenizer.ggml.pre {pre:?} is not supported (smollm, starcoder, gpt2, llama3, qwen2)"
                    ))
                })?;
                let merges = gguf.get_strings("tokenizer.ggml.merges")?;
                let vocab: serde_json::Map<String, Value> = tokens
                    .iter()
                    .enumerate()
                    .map(|(i, t)| (t.clone(), json!(i)))
                    .collect();
                (
                    TokenizerKind::ByteLevelBpe,
                    json!({"type": "BPE", "dropout": null, "unk_token": null,
                        "continuing_subword_prefix": null, "end_of_word_suffix": null,
                        "fuse_unk": false, "byte_fallback": false, "ignore_merges": ignore_merges,
                        "vocab": vocab, "merges": merges}),
                    Value::Null,
                    pre_tok,
                    json!({"type": "ByteLevel", "add_prefix_space": true, "trim_offsets": true, "use_regex": true}),
                )
            }
            "llama" => {
                let scores = if gguf.metadata().contains_key("tokenizer.ggml.scores") {
                    gguf.get_f32s("tokenizer.ggml.scores")?
                } else {
                    vec![0.0; tokens.len()]
                };
                // Byte tokens and specials do not take part in merges.
                let mergeable: Vec<String> = tokens
                    .iter()
                    .enumerate()
                    .map(|(i, t)| {
                        if types[i] == 1 {
                            t.clone()
                        } else {
                            String::new()
                        }
                    })
                    .collect();
                let merges: Vec<String> = spm_merges(&mergeable, &scores, &ids)
                    .into_iter()
                    .filter(|(l, r)| {
                        ids.get(l.as_str()).is_some_and(|&i| types[i as usize] == 1)
                            && ids.get(r.as_str()).is_some_and(|&i| types[i as usize] == 1)
                    })
                    .map(|(l, r)| format!("{l} {r}"))
                    .collect();
                let vocab: serde_json::Map<String, Value> = tokens
                    .iter()
                    .enumerate()
                    .map(|(i, t)| (t.clone(), json!(i)))
                    .collect();
                let unk_tok = unk.map(|u| tokens[u as usize].clone());
                let space_prefix = gguf
                    .opt_bool("tokenizer.ggml.add_space_prefix")?
                    .unwrap_or(true);
                let normalizer = if space_prefix {
                    json!({"type": "Sequence", "normalizers": [
                        {"type": "Prepend", "prepend": "\u{2581}"},
                        {"type": "Replace", "pattern": {"String": " "}, "content": "\u{2581}"}]})
                } else {
                    json!({"type": "Replace", "pattern": {"String": " "}, "content": "\u{2581}"})
                };
                let strip = if space_prefix { 1 } else { 0 };
                (
                    TokenizerKind::SentencePiece,
                    json!({"type": "BPE", "dropout": null, "unk_token": unk_tok,
                        "continuing_subword_prefix": null, "end_of_word_suffix": null,
                        "fuse_unk": true, "byte_fallback": true, "ignore_merges": false,
                        "vocab": vocab, "merges": merges}),
                    normalizer,
                    Value::Null,
                    json!({"type": "Sequence", "decoders": [
                        {"type": "Replace", "pattern": {"String": "\u{2581}"}, "content": " "},
                        {"type": "ByteFallback"}, {"type": "Fuse"},
                        {"type": "Strip", "content": " ", "start": strip, "stop": 0}]}),
                )
            }
            other => {
                return Err(terr(format!(
                    "tokenizer.ggml.model {other:?} is not supported (gpt2, llama)"
                )))
            }
        };
        let add_bos = gguf
            .opt_bool("tokenizer.ggml.add_bos_token")?
            .unwrap_or(kind == TokenizerKind::SentencePiece);
        let post_processor = match (add_bos, bos) {
            (true, Some(b)) => {
                let bos_tok = tokens[b as usize].clone();
                json!({"type": "TemplateProcessing",
                    "single": [{"SpecialToken": {"id": bos_tok, "type_id": 0}}, {"Sequence": {"id": "A", "type_id": 0}}],
                    "pair": [{"SpecialToken": {"id": bos_tok, "type_id": 0}}, {"Sequence": {"id": "A", "type_id": 0}},
                             {"SpecialToken": {"id": bos_tok, "type_id": 1}}, {"Sequence": {"id": "B", "type_id": 1}}],
                    "special_tokens": {bos_tok.clone(): {"id": bos_tok, "ids": [b], "tokens": [bos_tok]}}})
            }
            _ => Value::Null,
        };
        let hf_json = json!({
            "version": "1.0",
            "truncation": null,
            "padding": null,
            "added_tokens": added,
            "normalizer": normalizer,
            "pre_tokenizer": pre_tokenizer,
            "post_processor": post_processor,
            "decoder": decoder,
            "model": hf_model,
        });
        let space_prefix = kind == TokenizerKind::SentencePiece
            && gguf
                .opt_bool("tokenizer.ggml.add_space_prefix")?
                .unwrap_or(true);
        let special: Vec<bool> = types.iter().map(|&t| t == 3).collect();
        Self::assemble(
            &path,
            hf_json,
            kind,
            tokens,
            special,
            bos,
            eos,
            unk,
            pad,
            add_bos,
            space_prefix,
        )
    }

    /// Load a Hugging Face `tokenizer.json`; `config` is the folder's `tokenizer_config.json`
    /// (for bos/eos names and `add_bos_token`), if there is one.
    pub fn from_hf_file(path: &Path, config: Option<&Value>) -> Result<Self> {
        let text = std::fs::read_to_string(path).map_err(|e| ModelError::io(path, e))?;
        let hf_json: Value = serde_json::from_str(&text)
            .map_err(|e| ModelError::tokenizer(path, format!("not valid JSON: {e}")))?;
        let terr = |r: String| ModelError::tokenizer(path, r);
        let model = hf_json
            .get("model")
            .ok_or_else(|| terr("no \"model\" section".into()))?;
        if model.get("type").and_then(Value::as_str) != Some("BPE") {
            return Err(terr(format!(
                "model type {} is not supported (BPE)",
                model.get("type").unwrap_or(&Value::Null)
            )));
        }
        let vocab = model
            .get("vocab")
            .and_then(Value::as_object)
            .ok_or_else(|| terr("model.vocab is not an object".into()))?;
        let mut by_id: HashMap<u32, String> = HashMap::new();
        for (tok, id) in vocab {
            let id = id
                .as_u64()
                .ok_or_else(|| terr(format!("vocab entry {tok:?} has no integer id")))?;
            by_id.insert(id as u32, tok.clone());
        }
        let mut special_ids = Vec::new();
        if let Some(added) = hf_json.get("added_tokens").and_then(Value::as_array) {
            for t in added {
                if let (Some(id), Some(content)) = (
                    t.get("id").and_then(Value::as_u64),
                    t.get("content").and_then(Value::as_str),
                ) {
                    by_id.insert(id as u32, content.to_string());
                    if t.get("special").and_then(Value::as_bool).unwrap_or(false) {
                        special_ids.push(id as u32);
                    }
                }
            }
        }
        let n = by_id.keys().max().map_or(0, |m| *m as usize + 1);
        let tokens: Vec<String> = (0..n)
            .map(|i| by_id.remove(&(i as u32)).unwrap_or_default())
            .collect();
        let mut special = vec![false; n];
        for id in special_ids {
            special[id as usize] = true;
        }
        let text_json = hf_json.to_string();
        let kind = if text_json.contains("\"ByteLevel\"") {
            TokenizerKind::ByteLevelBpe
        } else {
            TokenizerKind::SentencePiece
        };
        let name_of = |key: &str| -> Option<String> {
            match config?.get(key)? {
                Value::String(s) => Some(s.clone()),
                Value::Object(o) => o.get("content")?.as_str().map(str::to_string),
                _ => None,
            }
        };
        let find = |name: Option<String>| {
            name.and_then(|n| tokens.iter().position(|t| *t == n).map(|i| i as u32))
        };
        let bos = find(name_of("bos_token"));
        let eos = find(name_of("eos_token"));
        let unk = find(name_of("unk_token"));
        let pad = find(name_of("pad_token"));
        let add_bos = config
            .and_then(|c| c.get("add_bos_token"))
            .and_then(Value::as_bool)
            .unwrap_or(false);
        let space_prefix =
            kind == TokenizerKind::SentencePiece && text_json.contains("\"Prepend\"");
        Self::assemble(
            path,
            hf_json,
            kind,
            tokens,
            special,
            bos,
            eos,
            unk,
            pad,
            add_bos,
            space_prefix,
        )
    }

    #[allow(clippy::too_many_arguments)]
    fn assemble(
        path: &Path,
        hf_json: Value,
        kind: TokenizerKind,
        tokens: Vec<String>,
        special: Vec<bool>,
        bos: Option<u32>,
        eos: Option<u32>,
        unk: Option<u32>,
        pad: Option<u32>,
        add_bos: bool,
        add_space_prefix: bool,
    ) -> Result<Self> {
        let mut load_json = hf_json.clone();
        if kind == TokenizerKind::ByteLevelBpe {
            add_missing_byte_atoms(&mut load_json, tokens.len());
        }
        let canonical = tokenizers::canonicalize_str(&load_json.to_string())
            .map_err(|e| ModelError::tokenizer(path, format!("cannot convert: {e}")))?;
        let inner = tokenizers::from_json(&canonical)
            .map_err(|e| ModelError::tokenizer(path, format!("cannot load: {e}")))?;
        let dec = byte_level_decoder();
        let bytes = tokens
            .iter()
            .zip(&special)
            .map(|(t, &s)| {
                if s {
                    t.as_bytes().to_vec()
                } else {
                    token_text_bytes(kind, t, &dec)
                }
            })
            .collect();
        let mut ids = HashMap::with_capacity(tokens.len());
        for (i, t) in tokens.iter().enumerate() {
            ids.entry(t.clone()).or_insert(i as u32);
        }
        Ok(Self {
            inner,
            kind,
            tokens,
            bytes,
            ids,
            special,
            bos,
            eos,
            unk,
            pad,
            add_bos,
            add_space_prefix,
            hf_json,
        })
    }

    /// Token ids of `text`. Special tokens written in the text (`<|im_start|>`) become their ids.
    /// `add_special_tokens` adds what the tokenizer adds around a sequence (a BOS for some
    /// models); chat prompts are rendered with their BOS already, so they pass `false`.
    pub fn encode(&self, text: &str, add_special_tokens: bool) -> Result<Vec<u32>> {
        let opts = EncodeOptions {
            add_special_tokens,
            ..Default::default()
        };
        let mut out = self
            .inner
            .encode(text.to_string(), &opts)
            .wait()
            .map_err(|e| ModelError::Encode(e.to_string()))?;
        let enc = out
            .pop()
            .ok_or_else(|| ModelError::Encode("the tokenizer returned no encoding".into()))?;
        // Placeholder byte atoms (see `add_missing_byte_atoms`) are dropped, as llama.cpp drops
        // bytes its vocabulary cannot express.
        let n = self.tokens.len() as u32;
        Ok(tokenizers::pipeline::PipelineToken::cast_slice(enc.ids())
            .iter()
            .copied()
            .filter(|&id| id < n)
            .collect())
    }

    /// Text of `ids`; with `skip_special`, control tokens are left out.
    pub fn decode(&self, ids: &[u32], skip_special: bool) -> Result<String> {
        if let Some(bad) = ids.iter().find(|&&i| i as usize >= self.tokens.len()) {
            return Err(ModelError::Encode(format!(
                "token id {bad} is outside the vocabulary of {}",
                self.tokens.len()
            )));
        }
        self.inner
            .decode(ids, skip_special)
            .map_err(|e| ModelError::Encode(e.to_string()))
    }

    /// Vocabulary size (model vocabulary plus added tokens).
    pub fn vocab_size(&self) -> usize {
        self.tokens.len()
    }
    pub fn kind(&self) -> TokenizerKind {
        self.kind
    }
    /// The id of a vocabulary entry written as stored (`<|im_end|>`, `Ġthe`).
    pub fn token_to_id(&self, token: &str) -> Option<u32> {
        self.ids.get(token).copied()
    }
    pub fn id_to_token(&self, id: u32) -> Option<&str> {
        self.tokens.get(id as usize).map(String::as_str)
    }
    /// The bytes of text token `id` stands for (a special token: its own text).
    pub fn token_bytes(&self, id: u32) -> &[u8] {
        self.bytes.get(id as usize).map_or(&[], Vec::as_slice)
    }
    pub fn is_special(&self, id: u32) -> bool {
        self.special.get(id as usize).copied().unwrap_or(false)
    }
    fn named(&self, id: Option<u32>) -> Option<SpecialToken> {
        id.map(|id| SpecialToken {
            id,
            content: self.tokens.get(id as usize).cloned().unwrap_or_default(),
        })
    }
    pub fn bos(&self) -> Option<SpecialToken> {
        self.named(self.bos)
    }
    pub fn eos(&self) -> Option<SpecialToken> {
        self.named(self.eos)
    }
    pub fn unk(&self) -> Option<SpecialToken> {
        self.named(self.unk)
    }
    pub fn pad(&self) -> Option<SpecialToken> {
        self.named(self.pad)
    }
    /// Whether `encode(_, true)` prepends a BOS.
    pub fn adds_bos(&self) -> bool {
        self.add_bos
    }
    /// Whether a SentencePiece normalizer prepends `▁` to the text (so token bytes start with a
    /// space the text does not have).
    pub fn adds_space_prefix(&self) -> bool {
        self.add_space_prefix
    }
    /// All control/special tokens, by id.
    pub fn special_tokens(&self) -> Vec<SpecialToken> {
        self.special
            .iter()
            .enumerate()
            .filter(|(_, s)| **s)
            .map(|(i, _)| SpecialToken {
                id: i as u32,
                content: self.tokens[i].clone(),
            })
            .collect()
    }
    /// The Hugging Face `tokenizer.json` (legacy "1.0" layout) describing this tokenizer.
    pub fn hf_json(&self) -> &Value {
        &self.hf_json
    }
    /// Byte offsets `(start, end)` of each token of `ids` in the text they decode to.
    pub fn byte_offsets(&self, ids: &[u32]) -> Vec<(usize, usize)> {
        let mut pos = 0usize;
        let mut out = Vec::with_capacity(ids.len());
        for (i, &id) in ids.iter().enumerate() {
            let mut n = self.token_bytes(id).len();
            if i == 0 && self.add_space_prefix && self.token_bytes(id).first() == Some(&b' ') {
                n -= 1;
            }
            out.push((pos, pos + n));
            pos += n;
        }
        out
    }
}

/// Where a tokenizer came from, for `model info`.
#[derive(Debug, Clone, serde::Serialize)]
pub struct TokenizerSource {
    pub path: PathBuf,
    pub kind: TokenizerKind,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn byte_table_is_a_bijection() {
        let t = bytes_to_unicode();
        let set: std::collections::HashSet<char> = t.iter().copied().collect();
        assert_eq!(set.len(), 256);
        assert_eq!(t[b' ' as usize], '\u{120}');
        assert_eq!(t[b'a' as usize], 'a');
    }

    #[test]
    fn spm_merges_follow_scores() {
        let tokens: Vec<String> = ["a", "b", "c", "ab", "abc", "bc"]
            .iter()
            .map(|s| s.to_string())
            .collect();
        let scores = [0.0, 0.0, 0.0, -1.0, -3.0, -2.0];
        let ids = tokens
            .iter()
            .enumerate()
            .map(|(i, t)| (t.clone(), i as u32))
            .collect();
        let m = spm_merges(&tokens, &scores, &ids);
        let m: Vec<String> = m.into_iter().map(|(l, r)| format!("{l} {r}")).collect();
        assert_eq!(m, ["a b", "b c", "a bc", "ab c"]);
    }

    #[test]
    fn pre_tokenizers_map_back_to_llama_cpp_names() {
        for (name, back) in [
            ("smollm", "smollm"),
            ("starcoder", "smollm"),
            ("gpt2", "gpt-2"),
            ("llama3", "llama-bpe"),
            ("llama-bpe", "llama-bpe"),
            ("qwen2", "qwen2"),
        ] {
            let (pre, _) = byte_level_pre(name).expect(name);
            assert_eq!(byte_level_pre_name(&pre), Some(back), "{name}");
        }
        // As Hugging Face writes GPT-2's: offsets trimmed or not, `use_regex` left implicit.
        let gpt2 = json!({"type": "ByteLevel", "add_prefix_space": false, "trim_offsets": false});
        assert_eq!(byte_level_pre_name(&gpt2), Some("gpt-2"));
        let grouped_digits = json!({"type": "Sequence", "pretokenizers": [
            {"type": "Digits", "individual_digits": false},
            {"type": "ByteLevel", "add_prefix_space": false, "use_regex": true}]});
        assert_eq!(byte_level_pre_name(&grouped_digits), None);
        assert_eq!(byte_level_pre_name(&Value::Null), None);
    }

    #[test]
    fn unknown_pre_tokenizer_is_refused() {
        assert!(byte_level_pre("no-such-pre").is_none());
        assert!(byte_level_pre("smollm").is_some());
    }
}
