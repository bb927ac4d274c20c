//! Reading GGUF files: metadata, the llama hyper-parameters, and tensors (dequantized or as
//! ggml blocks), with llama.cpp's q/k row permutation undone.

use std::collections::BTreeMap;
use std::fs::File;
use std::io::{Read, Seek, SeekFrom};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use candle_core::quantized::{ggml_file, gguf_file, GgmlDType, QMatMul, QTensor};
use candle_core::{DType, Device, Tensor};

use crate::error::{ModelError, Result};
use crate::llama::{LlamaConfig, RopeScaling, WeightFormat, WeightSource, Weights};

pub use gguf_file::Value;

/// An open GGUF file: its metadata and tensor directory (tensor data is read on demand).
pub struct GgufFile {
    path: PathBuf,
    content: gguf_file::Content,
    file: File,
}

impl std::fmt::Debug for GgufFile {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("GgufFile")
            .field("path", &self.path)
            .field("tensors", &self.content.tensor_infos.len())
            .finish()
    }
}

/// Byte size of a tensor of `elems` elements in `dtype`, or `None` if it is not a whole
/// number of blocks.
fn tensor_bytes(dtype: GgmlDType, elems: usize) -> Option<usize> {
    let bs = dtype.block_size();
    if !elems.is_multiple_of(bs) {
        return None;
    }
    (elems / bs).checked_mul(dtype.type_size())
}

/// A buffered reader that knows its position without asking the operating system.
struct Positioned {
    inner: std::io::BufReader<File>,
    pos: u64,
}

impl Positioned {
    fn new(mut file: File) -> std::io::Result<Self> {
        let pos = file.stream_position()?;
        Ok(Self {
            inner: std::io::BufReader::with_capacity(1 << 20, file),
            pos,
        })
    }
}

impl Read for Positioned {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.pos += n as u64;
        Ok(n)
    }
}

impl Seek for Positioned {
    fn seek(&mut self, to: SeekFrom) -> std::io::Result<u64> {
        if to == SeekFrom::Current(0) {
            return Ok(self.pos);
        }
        self.pos = self.inner.seek(to)?;
        Ok(self.pos)
    }

    fn stream_position(&mut self) -> std::io::Result<u64> {
        Ok(self.pos)
    }
}

impl GgufFile {
    /// Open `path` and read its header, metadata and tensor directory. Rejects files that are
    /// not GGUF, are truncated (a tensor's data would run past the end), or are corrupt.
    pub fn open(path: impl AsRef<Path>) -> Result<Self> {
        let path = path.as_ref().to_path_buf();
        let file = File::open(&path).map_err(|e| ModelError::io(&path, e))?;
        let file_size = file.metadata().map_err(|e| ModelError::io(&path, e))?.len();
        // candle's reader validates lengths against the file size; the unwind guard turns any
        // arithmetic edge case on hostile input (e.g. alignment 0) into an error, not a crash.
        // Buffered, and the position kept here: the reader takes every vocabulary string and
        // merge in two small reads and asks for the position before each, some 300,000 system
        // calls for a Llama vocabulary otherwise.
        let mut reader = Positioned::new(file).map_err(|e| ModelError::io(&path, e))?;
        let content = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            gguf_file::Content::read(&mut reader)
        }))
        .map_err(|_| ModelError::gguf(&path, "malformed header"))?
        .map_err(|e| ModelError::gguf(&path, format!("{e}")))?;
        let file = reader.inner.into_inner();
        if let Some(Value::U32(0) | Value::U64(0)) = content.metadata.get("general.alignment") {
            return Err(ModelError::gguf(&path, "general.alignment is 0"));
        }
        for (name, info) in &content.tensor_infos {
            let elems = info.shape.elem_count();
            let size = tensor_bytes(info.ggml_dtype, elems).ok_or_else(|| {
                ModelError::gguf(
                    &path,
                    format!(
                        "tensor {name}: {elems} elements are not a whole number of {:?} blocks",
                        info.ggml_dtype
                    ),
                )
            })?;
            let end = content
                .tensor_data_offset
                .checked_add(info.offset)
                .and_then(|s| s.checked_add(size as u64));
            match end {
                Some(end) if end <= file_size => {}
                _ => {
                    return Err(ModelError::gguf(
                        &path,
                        format!(
                            "truncated: tensor {name} ends at byte {} but the file has {file_size} bytes",
                            end.map_or("(overflow)".to_string(), |e| e.to_string())
                        ),
                    ))
                }
            }
        }
        Ok(Self {
            path,
            content,
            file,
        })
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// All metadata, by key.
    pub fn metadata(&self) -> &std::collections::HashMap<String, Value> {
        &self.content.metadata
    }

    /// Tensor names with their shapes (row-major, `[out, in]`) and ggml types, sorted by name.
    pub fn tensors(&self) -> BTreeMap<&str, (Vec<usize>, GgmlDType)> {
        self.content
            .tensor_infos
            .iter()
            .map(|(k, v)| (k.as_str(), (v.shape.dims().to_vec(), v.ggml_dtype)))
            .collect()
    }

    pub fn has_tensor(&self, name: &str) -> bool {
        self.content.tensor_infos.contains_key(name)
    }

    fn err(&self, reason: impl Into<String>) -> ModelError {
        ModelError::gguf(&self.path, reason)
    }

    /// A required metadata value.
    pub fn get(&self, key: &str) -> Result<&Value> {
        self.content
            .metadata
            .get(key)
            .ok_or_else(|| self.err(format!("missing metadata key {key}")))
    }

    /// An integer metadata value, whatever its stored width (u8..u64, non-negative i8..i64).
    pub fn get_u64(&self, key: &str) -> Result<u64> {
        let v = self.get(key)?;
        value_u64(v)
            .ok_or_else(|| self.err(format!("{key}: expected a non-negative integer, got {v:?}")))
    }

    pub fn opt_u64(&self, key: &str) -> Result<Option<u64>> {
        match self.content.metadata.get(key) {
            None => Ok(None),
            Some(_) => self.get_u64(key).map(Some),
        }
    }

    /// A float metadata value (f32 or f64).
    pub fn get_f64(&self, key: &str) -> Result<f64> {
        match self.get(key)? {
            Value::F32(v) => Ok(*v as f64),
            Value::F64(v) => Ok(*v),
            v => Err(self.err(format!("{key}: expected a float, got {v:?}"))),
        }
    }

    pub fn opt_f64(&self, key: &str) -> Result<Option<f64>> {
        match self.content.metadata.get(key) {
            None => Ok(None),
            Some(_) => self.get_f64(key).map(Some),
        }
    }

    pub fn get_str(&self, key: &str) -> Result<&str> {
        match self.get(key)? {
            Value::String(s) => Ok(s),
            v => Err(self.err(format!("{key}: expected a string, got {}", short(v)))),
        }
    }

    pub fn opt_str(&self, key: &str) -> Result<Option<&str>> {
        match self.content.metadata.get(key) {
            None => Ok(None),
            Some(_) => self.get_str(key).map(Some),
        }
    }

    pub fn opt_bool(&self, key: &str) -> Result<Option<bool>> {
        match self.content.metadata.get(key) {
            None => Ok(None),
            Some(Value::Bool(b)) => Ok(Some(*b)),
            Some(v) => Err(self.err(format!("{key}: expected a bool, got {}", short(v)))),
        }
    }

    /// A string-array metadata value.
    pub fn get_strings(&self, key: &str) -> Result<Vec<&str>> {
        match self.get(key)? {
            Value::Array(items) => items
                .iter()
                .enumerate()
                .map(|(i, v)| match v {
                    Value::String(s) => Ok(s.as_str()),
                    v => Err(self.err(format!("{key}[{i}]: expected a string, got {}", short(v)))),
                })
                .collect(),
            v => Err(self.err(format!("{key}: expected an array, got {}", short(v)))),
        }
    }

    /// A numeric-array metadata value as f32s.
    pub fn get_f32s(&self, key: &str) -> Result<Vec<f32>> {
        match self.get(key)? {
            Value::Array(items) => items
                .iter()
                .enumerate()
                .map(|(i, v)| match v {
                    Value::F32(x) => Ok(*x),
                    Value::F64(x) => Ok(*x as f32),
                    v => value_u64(v).map(|x| x as f32).ok_or_else(|| {
                        self.err(format!("{key}[{i}]: expected a number, got {v:?}"))
                    }),
                })
                .collect(),
            v => Err(self.err(format!("{key}: expected an array, got {}", short(v)))),
        }
    }

    /// An integer-array metadata value.
    pub fn get_i64s(&self, key: &str) -> Result<Vec<i64>> {
        match self.get(key)? {
            Value::Array(items) => items
                .iter()
                .enumerate()
                .map(|(i, v)| {
                    value_i64(v).ok_or_else(|| {
                        self.err(format!("{key}[{i}]: expected an integer, got {v:?}"))
                    })
                })
                .collect(),
            v => Err(self.err(format!("{key}: expected an array, got {}", short(v)))),
        }
    }

    /// `general.architecture`.
    pub fn architecture(&self) -> Result<&str> {
        self.get_str("general.architecture")
    }

    /// The llama hyper-parameters as a Hugging Face `config.json`. Fails with
    /// [`ModelError::UnsupportedArchitecture`] for anything but `llama`. Llama 3 rope scaling
    /// as llama.cpp writes it, `rope_freqs.weight`, is a tensor, not part of this: apply
    /// [`GgufFile::rope_freq_factors`] to the resolved config.
    pub fn llama_config(&self) -> Result<LlamaConfig> {
        let arch = self.architecture()?;
        if arch != "llama" {
            return Err(ModelError::UnsupportedArchitecture {
                path: self.path.clone(),
                arch: arch.to_string(),
            });
        }
        let u = |k: &str| self.get_u64(&format!("llama.{k}")).map(|v| v as usize);
        let hidden = u("embedding_length")?;
        let heads = u("attention.head_count")?;
        let vocab = match self.opt_u64("llama.vocab_size")? {
            Some(v) => v as usize,
            None => match self.content.tensor_infos.get("token_embd.weight") {
                Some(info) => info.shape.dims()[0],
                None => return Err(self.err("missing tensor token_embd.weight")),
            },
        };
        let head_dim = match self.opt_u64("llama.rope.dimension_count")? {
            Some(d) => Some(d as usize),
            None => self
                .opt_u64("llama.attention.key_length")?
                .map(|d| d as usize),
        };
        let rope_scaling = match self.opt_str("llama.rope.scaling.type")? {
            Some("llama3") => Some(RopeScaling {
                factor: self.get_f64("llama.rope.scaling.factor")? as f32,
                low_freq_factor: 1.0,
                high_freq_factor: 4.0,
                original_max_position_embeddings: self
                    .get_u64("llama.rope.scaling.original_context_length")?
                    as usize,
                rope_type: "llama3".into(),
            }),
            Some("none") | None => None,
            Some(other) => {
                return Err(self.err(format!(
                    "llama.rope.scaling.type {other:?} is not supported"
                )))
            }
        };
        let bos = self.opt_u64("tokenizer.ggml.bos_token_id")?;
        let eos = self.opt_u64("tokenizer.ggml.eos_token_id")?;
        Ok(LlamaConfig {
            architectures: vec!["LlamaForCausalLM".into()],
            model_type: "llama".into(),
            hidden_size: hidden,
            intermediate_size: u("feed_forward_length")?,
            vocab_size: vocab,
            num_hidden_layers: u("block_count")?,
            num_attention_heads: heads,
            num_key_value_heads: self
                .opt_u64("llama.attention.head_count_kv")?
                .map(|v| v as usize),
            head_dim,
            rms_norm_eps: self.get_f64("llama.attention.layer_norm_rms_epsilon")?,
            rope_theta: self.opt_f64("llama.rope.freq_base")?.unwrap_or(10_000.0) as f32,
            rope_scaling,
            max_position_embeddings: u("context_length")?,
            tie_word_embeddings: Some(!self.has_tensor("output.weight")),
            bos_token_id: bos.map(|v| crate::llama::TokenIds::One(v as u32)),
            eos_token_id: eos.map(|v| crate::llama::TokenIds::One(v as u32)),
            pad_token_id: self
                .opt_u64("tokenizer.ggml.padding_token_id")?
                .map(|v| v as u32),
            torch_dtype: None,
        })
    }

    /// `rope_freqs.weight` dequantized to f32, if the file has it: llama.cpp's converter stores
    /// Llama 3 rope scaling only as these per-pair frequency divisors (no metadata key), and
    /// llama.cpp divides each rotary frequency by its factor. Its count is checked against the
    /// head size by [`crate::llama::Config::with_rope_freq_factors`]; a tensor that is not 1-D
    /// is rejected here.
    pub fn rope_freq_factors(&mut self) -> Result<Option<Vec<f32>>> {
        const NAME: &str = "rope_freqs.weight";
        if !self.has_tensor(NAME) {
            return Ok(None);
        }
        let q = self.qtensor(NAME, &Device::Cpu)?;
        let dims = q.shape().dims().to_vec();
        if dims.len() != 1 {
            return Err(self.err(format!(
                "tensor {NAME} has shape {dims:?}, expected one factor per pair of head dimensions"
            )));
        }
        let factors = q
            .dequantize(&Device::Cpu)
            .and_then(|t| t.to_dtype(DType::F32))
            .and_then(|t| t.to_vec1::<f32>())
            .map_err(|e| self.err(format!("tensor {NAME}: {e}")))?;
        Ok(Some(factors))
    }

    /// The dominant ggml type of the 2-D weights (what `model info` reports as quantization).
    pub fn quantization(&self) -> String {
        let mut counts: BTreeMap<String, usize> = BTreeMap::new();
        for info in self.content.tensor_infos.values() {
            if info.shape.rank() == 2 {
                *counts.entry(format!("{:?}", info.ggml_dtype)).or_default() += 1;
            }
        }
        counts
            .into_iter()
            .max_by_key(|(_, n)| *n)
            .map_or_else(|| "none".to_string(), |(t, _)| t)
    }

    /// The raw ggml bytes, shape and type of tensor `name`.
    pub fn raw(&mut self, name: &str) -> Result<(Vec<u8>, Vec<usize>, GgmlDType)> {
        let info = self
            .content
            .tensor_infos
            .get(name)
            .ok_or_else(|| ModelError::gguf(&self.path, format!("missing tensor {name}")))?;
        let dims = info.shape.dims().to_vec();
        let dtype = info.ggml_dtype;
        // Checked in `open`.
        let size = tensor_bytes(dtype, info.shape.elem_count()).unwrap_or(0);
        let start = self.content.tensor_data_offset + info.offset;
        let mut buf = vec![0u8; size];
        self.file
            .seek(SeekFrom::Start(start))
            .and_then(|_| self.file.read_exact(&mut buf))
            .map_err(|e| ModelError::io(&self.path, e))?;
        Ok((buf, dims, dtype))
    }

    /// Tensor `name` as ggml blocks on `device`.
    pub fn qtensor(&mut self, name: &str, device: &Device) -> Result<QTensor> {
        let (raw, dims, dtype) = self.raw(name)?;
        ggml_file::qtensor_from_ggml(dtype, &raw, dims, device)
            .map_err(|e| ModelError::gguf(&self.path, format!("tensor {name}: {e}")))
    }
}

fn short(v: &Value) -> String {
    let s = format!("{v:?}");
    if s.len() > 60 {
        format!(
            "{}...",
            &s[..s.char_indices().nth(60).map_or(s.len(), |(i, _)| i)]
        )
    } else {
        s
    }
}

fn value_u64(v: &Value) -> Option<u64> {
    match *v {
        Value::U8(x) => Some(x as u64),
        Value::U16(x) => Some(x as u64),
        Value::U32(x) => Some(x as u64),
        Value::U64(x) => Some(x),
        Value::I8(x) => u64::try_from(x).ok(),
        Value::I16(x) => u64::try_from(x).ok(),
        Value::I32(x) => u64::try_from(x).ok(),
        Value::I64(x) => u64::try_from(x).ok(),
        _ => None,
    }
}

fn value_i64(v: &Value) -> Option<i64> {
    match *v {
        Value::U8(x) => Some(x as i64),
        Value::U16(x) => Some(x as i64),
        Value::U32(x) => Some(x as i64),
        Value::U64(x) => i64::try_from(x).ok(),
        Value::I8(x) => Some(x as i64),
        Value::I16(x) => Some(x as i64),
        Value::I32(x) => Some(x as i64),
        Value::I64(x) => Some(x),
        _ => None,
    }
}

/// The GGUF tensor name for a Hugging Face llama tensor name.
pub fn gguf_name(hf: &str) -> Option<String> {
    let simple = match hf {
        "model.embed_tokens.weight" => Some("token_embd.weight"),
        "model.norm.weight" => Some("output_norm.weight"),
        "lm_head.weight" => Some("output.weight"),
        _ => None,
    };
    if let Some(s) = simple {
        return Some(s.to_string());
    }
    let rest = hf.strip_prefix("model.layers.")?;
    let (layer, rest) = rest.split_once('.')?;
    let layer: usize = layer.parse().ok()?;
    let part = match rest {
        "input_layernorm.weight" => "attn_norm",
        "post_attention_layernorm.weight" => "ffn_norm",
        "self_attn.q_proj.weight" => "attn_q",
        "self_attn.k_proj.weight" => "attn_k",
        "self_attn.v_proj.weight" => "attn_v",
        "self_attn.o_proj.weight" => "attn_output",
        "mlp.gate_proj.weight" => "ffn_gate",
        "mlp.up_proj.weight" => "ffn_up",
        "mlp.down_proj.weight" => "ffn_down",
        _ => return None,
    };
    Some(format!("blk.{layer}.{part}.weight"))
}

/// The row order that undoes llama.cpp's q/k permutation: output row `r` (Hugging Face layout)
/// is GGUF row `perm[r]`. llama.cpp stores each head's rotary pairs interleaved
/// (`(head, half, 2)`); Hugging Face stores them split in halves (`(head, 2, half)`).
pub fn unpermute_rows(rows: usize, n_head: usize) -> Vec<usize> {
    let head_dim = rows / n_head;
    let half = head_dim / 2;
    let mut perm = Vec::with_capacity(rows);
    for h in 0..n_head {
        for j in 0..2 {
            for i in 0..half {
                perm.push(h * head_dim + i * 2 + j);
            }
        }
    }
    perm
}

/// Reorder the rows of a ggml tensor of `rows` rows stored as `raw` (blocks run along rows, so
/// each row is a contiguous byte range).
fn permute_raw_rows(raw: &[u8], rows: usize, perm: &[usize]) -> Vec<u8> {
    let row_bytes = raw.len() / rows;
    let mut out = Vec::with_capacity(raw.len());
    for &src in perm {
        out.extend_from_slice(&raw[src * row_bytes..(src + 1) * row_bytes]);
    }
    out
}

/// A [`WeightSource`] over a GGUF file: maps Hugging Face names to GGUF names and returns q/k
/// weights in Hugging Face row order.
pub struct GgufWeights {
    file: GgufFile,
    n_head: usize,
    n_kv_head: usize,
}

impl GgufWeights {
    pub fn new(file: GgufFile, n_head: usize, n_kv_head: usize) -> Self {
        Self {
            file,
            n_head,
            n_kv_head,
        }
    }

    pub fn file(&self) -> &GgufFile {
        &self.file
    }

    fn resolve(&self, hf: &str) -> Result<String> {
        gguf_name(hf).ok_or_else(|| {
            ModelError::gguf(&self.file.path, format!("no GGUF name for tensor {hf}"))
        })
    }

    /// Heads to un-permute for, if `hf` is a q or k projection.
    fn permutation_heads(&self, hf: &str) -> Option<usize> {
        if hf.ends_with("self_attn.q_proj.weight") {
            Some(self.n_head)
        } else if hf.ends_with("self_attn.k_proj.weight") {
            Some(self.n_kv_head)
        } else {
            None
        }
    }

    /// Raw blocks of `hf`, in Hugging Face row order.
    fn qtensor_hf(&mut self, hf: &str, device: &Device) -> Result<QTensor> {
        let name = self.resolve(hf)?;
        let (raw, dims, dtype) = self.file.raw(&name)?;
        let raw = match (self.permutation_heads(hf), dims.as_slice()) {
            (Some(heads), [rows, _]) => {
                if heads == 0 || rows % heads != 0 || (rows / heads) % 2 != 0 {
                    return Err(ModelError::gguf(
                        &self.file.path,
                        format!("tensor {name}: {rows} rows do not split into {heads} heads of even size"),
                    ));
                }
                permute_raw_rows(&raw, *rows, &unpermute_rows(*rows, heads))
            }
            _ => raw,
        };
        ggml_file::qtensor_from_ggml(dtype, &raw, dims, device)
            .map_err(|e| ModelError::gguf(&self.file.path, format!("tensor {name}: {e}")))
    }
}

impl WeightSource for GgufWeights {
    fn contains(&self, name: &str) -> bool {
        gguf_name(name).is_some_and(|n| self.file.has_tensor(&n))
    }

    fn tensor(&mut self, name: &str, dtype: DType, device: &Device) -> Result<Tensor> {
        let q = self.qtensor_hf(name, device)?;
        Ok(q.dequantize(device)?.to_dtype(dtype)?)
    }

    fn linear(&mut self, name: &str, format: WeightFormat, device: &Device) -> Result<Weights> {
        let q = self.qtensor_hf(name, device)?;
        Ok(match format {
            WeightFormat::Dense(dtype) => Weights::Dense(q.dequantize(device)?.to_dtype(dtype)?),
            // candle would widen F16 and BF16 weights to f32 here; on the CPU they keep their 16
            // bits for `half_matmul`, half the bytes per decoding step.
            WeightFormat::Quantized
                if crate::half_matmul::Half::of(q.dtype()).is_some()
                    && matches!(device, Device::Cpu) =>
            {
                Weights::Quantized(Arc::new(QMatMul::QTensor(Arc::new(q))))
            }
            WeightFormat::Quantized => Weights::Quantized(Arc::new(QMatMul::from_qtensor(q)?)),
        })
    }

    fn origin(&self) -> String {
        self.file.path.display().to_string()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unpermute_inverts_llama_cpp_permute() {
        // llama.cpp: reshape (n_head, 2, half, cols) -> swap axes 1,2 -> reshape.
        let (n_head, head_dim) = (3, 8);
        let rows = n_head * head_dim;
        let half = head_dim / 2;
        // gguf[g] = hf[permute(g)]
        let mut gguf_from_hf = vec![0; rows];
        for h in 0..n_head {
            for i in 0..half {
                for j in 0..2 {
                    gguf_from_hf[h * head_dim + i * 2 + j] = h * head_dim + j * half + i;
                }
            }
        }
        let perm = unpermute_rows(rows, n_head);
        for (hf_row, &g) in perm.iter().enumerate() {
            assert_eq!(gguf_from_hf[g], hf_row);
        }
    }

    #[test]
    fn names_map_to_gguf() {
        assert_eq!(
            gguf_name("model.layers.12.mlp.down_proj.weight").as_deref(),
            Some("blk.12.ffn_down.weight")
        );
        assert_eq!(
            gguf_name("model.embed_tokens.weight").as_deref(),
            Some("token_embd.weight")
        );
        assert_eq!(gguf_name("model.layers.x.mlp.down_proj.weight"), None);
    }

    #[test]
    fn non_gguf_files_are_rejected_with_the_path() {
        let dir = tempfile::tempdir().expect("tempdir");
        let p = dir.path().join("not.gguf");
        std::fs::write(&p, b"hello world, not a gguf file at all").expect("write");
        let err = GgufFile::open(&p).unwrap_err().to_string();
        assert!(
            err.contains("not.gguf") && err.contains("invalid GGUF"),
            "{err}"
        );
    }
}
