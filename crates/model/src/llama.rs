//! The llama architecture in one file: wire config, resolved config, KV cache, layers, model.
//!
//! Two forward flavours share every weight:
//! - [`Kernels::Composed`] is differentiable end to end, so a LoRA adapter attached with
//!   [`Linear::set_lora`] receives gradients through the whole network: RMSNorm, rotary
//!   embeddings and the masked softmax run as the fused kernels with a backward pass of
//!   [`crate::fused_grad`] on the CPU, and as primitive ops elsewhere. Base weights are plain
//!   tensors (never `Var`s), hence frozen.
//! - [`Kernels::Fused`] uses candle's fused CPU/GPU kernels (`rms_norm`, `rope`,
//!   `softmax_last_dim`) which have no backward; inference only.
//!
//! Rotary embeddings use the Hugging Face "half-split" layout everywhere; the GGUF loader un-does
//! llama.cpp's interleaving permutation of the q/k rows (also on still-quantized weights), so LoRA
//! adapters for q/k are in PEFT's layout whichever file the base came from.

use std::sync::Arc;

use candle_core::quantized::QMatMul;
use candle_core::{DType, Device, Module, Tensor, D};
use serde::{Deserialize, Serialize};

use crate::error::Result;

/// Value added to attention scores of masked positions. Finite on purpose: a row whose keys are
/// all masked (left padding) then softmaxes to a uniform row instead of NaN.
const MASK_VALUE: f32 = -1e9;

// ---------------------------------------------------------------------------------------------
// Configuration
// ---------------------------------------------------------------------------------------------

/// `bos_token_id`/`eos_token_id` in a config.json: a single id or a list.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum TokenIds {
    One(u32),
    Many(Vec<u32>),
}

impl TokenIds {
    /// All ids, in order.
    pub fn to_vec(&self) -> Vec<u32> {
        match self {
            Self::One(id) => vec![*id],
            Self::Many(ids) => ids.clone(),
        }
    }
}

/// Llama-3 style rope scaling (`rope_scaling` in config.json with `rope_type: "llama3"`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RopeScaling {
    pub factor: f32,
    #[serde(default = "one")]
    pub low_freq_factor: f32,
    #[serde(default = "four")]
    pub high_freq_factor: f32,
    pub original_max_position_embeddings: usize,
    #[serde(alias = "type")]
    pub rope_type: String,
}

impl RopeScaling {
    /// The factor each rotary frequency `rope_theta^(-2i/head_dim)` is divided by, one per pair
    /// of head dimensions: what llama.cpp's converter stores as `rope_freqs.weight`. 1 for
    /// wavelengths under `original / high_freq_factor`, `factor` over
    /// `original / low_freq_factor`, and in between `1 / ((1 - smooth) / factor + smooth)` with
    /// `smooth = (original / wavelength - low_freq_factor) / (high_freq_factor - low_freq_factor)`.
    pub fn llama3_freq_factors(&self, head_dim: usize, rope_theta: f32) -> Vec<f32> {
        let original = self.original_max_position_embeddings as f32;
        let low_wavelen = original / self.low_freq_factor;
        let high_wavelen = original / self.high_freq_factor;
        base_inv_freq(head_dim, rope_theta)
            .into_iter()
            .map(|freq| {
                let wavelen = 2. * std::f32::consts::PI / freq;
                if wavelen < high_wavelen {
                    1.
                } else if wavelen > low_wavelen {
                    self.factor
                } else {
                    let smooth = (original / wavelen - self.low_freq_factor)
                        / (self.high_freq_factor - self.low_freq_factor);
                    1. / ((1. - smooth) / self.factor + smooth)
                }
            })
            .collect()
    }

    /// The Llama 3 scaling whose [`RopeScaling::llama3_freq_factors`] are `factors` (within
    /// 1e-4, relative), if there is one with Meta's low and high frequency factors (1 and 4, as
    /// in every Llama 3.x checkpoint). llama.cpp's GGUFs keep only the factors; this recovers the
    /// `rope_scaling` a config.json needs.
    ///
    /// The scaling factor is the largest factor, else (a head too small to reach the
    /// low-frequency band) a usual one: 8, 32, ... The original context is read off a factor
    /// strictly between 1 and the scaling factor, else taken as the first power of two (16 to
    /// 2^24 tokens) that fits. When the factors leave a choice, every choice gives the same
    /// frequencies.
    pub fn llama3_from_freq_factors(
        factors: &[f32],
        head_dim: usize,
        rope_theta: f32,
    ) -> Option<RopeScaling> {
        let largest = factors.iter().copied().fold(0f32, f32::max);
        if largest <= 1.0 || factors.len() != head_dim / 2 {
            return None;
        }
        let (low, high) = (1f32, 4f32);
        let scalings = [largest, 8., 32., 16., 4., 2., 64., 128.]
            .into_iter()
            .filter(|&f| f >= largest * (1.0 - 1e-4));
        let base = base_inv_freq(head_dim, rope_theta);
        // In between, 1/f = (1 - s)/factor + s with s = (original/wavelength - low)/(high - low).
        let read_off = |factor: f32| {
            base.iter()
                .zip(factors)
                .filter(move |&(_, f)| *f > 1.0 + 1e-4 && *f < factor * (1.0 - 1e-4))
                .map(move |(freq, f)| {
                    let wavelen = 2. * std::f32::consts::PI / freq;
                    let smooth = (1. / f - 1. / factor) / (1. - 1. / factor);
                    (wavelen * (smooth * (high - low) + low)).round() as usize
                })
                .collect::<Vec<_>>()
        };
        let powers_of_two: Vec<usize> = (4..=24).map(|k| 1usize << k).collect();
        let candidates = scalings
            .clone()
            .flat_map(|factor| read_off(factor).into_iter().map(move |o| (factor, o)))
            .chain(scalings.flat_map(|factor| powers_of_two.iter().map(move |&o| (factor, o))));
        candidates
            .map(|(factor, original)| RopeScaling {
                factor,
                low_freq_factor: low,
                high_freq_factor: high,
                original_max_position_embeddings: original,
                rope_type: "llama3".into(),
            })
            .find(|s| {
                s.llama3_freq_factors(head_dim, rope_theta)
                    .iter()
                    .zip(factors)
                    .all(|(a, b)| (a - b).abs() <= 1e-4 * b.abs())
            })
    }
}

/// Unscaled inverse rotary frequencies `rope_theta^(-2i/head_dim)`, one per pair of head dims.
fn base_inv_freq(head_dim: usize, rope_theta: f32) -> Vec<f32> {
    (0..head_dim)
        .step_by(2)
        .map(|i| 1f32 / rope_theta.powf(i as f32 / head_dim as f32))
        .collect()
}

fn one() -> f32 {
    1.0
}
fn four() -> f32 {
    4.0
}
fn default_rope_theta() -> f32 {
    10_000.0
}
fn default_rms_eps() -> f64 {
    1e-6
}
fn default_max_pos() -> usize {
    2048
}

/// The checkpoint's `config.json`, as Hugging Face writes it for `LlamaForCausalLM`.
/// Optional fields keep their serde defaults; [`LlamaConfig::into_config`] settles them.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct LlamaConfig {
    #[serde(default)]
    pub architectures: Vec<String>,
    #[serde(default = "llama_model_type")]
    pub model_type: String,
    pub hidden_size: usize,
    pub intermediate_size: usize,
    pub vocab_size: usize,
    pub num_hidden_layers: usize,
    pub num_attention_heads: usize,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub num_key_value_heads: Option<usize>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub head_dim: Option<usize>,
    #[serde(default = "default_rms_eps")]
    pub rms_norm_eps: f64,
    #[serde(default = "default_rope_theta")]
    pub rope_theta: f32,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rope_scaling: Option<RopeScaling>,
    #[serde(default = "default_max_pos")]
    pub max_position_embeddings: usize,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tie_word_embeddings: Option<bool>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub bos_token_id: Option<TokenIds>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub eos_token_id: Option<TokenIds>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pad_token_id: Option<u32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub torch_dtype: Option<String>,
}

fn llama_model_type() -> String {
    "llama".to_string()
}

/// The resolved configuration: every optional field settled, every invariant checked.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Config {
    pub hidden_size: usize,
    pub intermediate_size: usize,
    pub vocab_size: usize,
    pub num_hidden_layers: usize,
    pub num_attention_heads: usize,
    pub num_key_value_heads: usize,
    /// Per-head size; `hidden_size / num_attention_heads` unless the checkpoint says otherwise.
    pub head_dim: usize,
    pub rms_norm_eps: f64,
    pub rope_theta: f32,
    /// Llama 3 rope scaling: config.json's `rope_scaling`, or for a GGUF the one its
    /// `rope_freqs.weight` matches (see [`Config::with_rope_freq_factors`]).
    pub rope_scaling: Option<RopeScaling>,
    /// llama.cpp's `rope_freqs.weight` (`head_dim / 2` values, each > 0): the factor each
    /// rotary frequency is divided by. When set, rope uses these and not `rope_scaling`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub rope_freq_factors: Option<Vec<f32>>,
    /// Context length, in tokens.
    pub max_position_embeddings: usize,
    pub tie_word_embeddings: bool,
}

impl LlamaConfig {
    /// Settle defaults and check the shape invariants the layers rely on.
    /// Rejects zero sizes, heads that do not divide the hidden size (without `head_dim`), and
    /// key/value head counts that do not divide the attention head count.
    pub fn into_config(self) -> std::result::Result<Config, String> {
        let nonzero = [
            ("hidden_size", self.hidden_size),
            ("intermediate_size", self.intermediate_size),
            ("vocab_size", self.vocab_size),
            ("num_hidden_layers", self.num_hidden_layers),
            ("num_attention_heads", self.num_attention_heads),
            ("max_position_embeddings", self.max_position_embeddings),
        ];
        if let Some((name, _)) = nonzero.iter().find(|(_, v)| *v == 0) {
            return Err(format!("{name} must be positive"));
        }
        let kv = self.num_key_value_heads.unwrap_or(self.num_attention_heads);
        if kv == 0 || !self.num_attention_heads.is_multiple_of(kv) {
            return Err(format!(
                "num_key_value_heads {kv} must divide num_attention_heads {}",
                self.num_attention_heads
            ));
        }
        let head_dim = match self.head_dim {
            Some(d) => d,
            None => {
                if !self.hidden_size.is_multiple_of(self.num_attention_heads) {
                    return Err(format!(
                        "hidden_size {} is not a multiple of num_attention_heads {}",
                        self.hidden_size, self.num_attention_heads
                    ));
                }
                self.hidden_size / self.num_attention_heads
            }
        };
        if head_dim == 0 || head_dim % 2 != 0 {
            return Err(format!("head_dim {head_dim} must be even and positive"));
        }
        if let Some(s) = &self.rope_scaling {
            if s.rope_type != "llama3" && s.rope_type != "default" {
                return Err(format!(
                    "rope_scaling type {:?} is not supported (llama3, default)",
                    s.rope_type
                ));
            }
        }
        Ok(Config {
            hidden_size: self.hidden_size,
            intermediate_size: self.intermediate_size,
            vocab_size: self.vocab_size,
            num_hidden_layers: self.num_hidden_layers,
            num_attention_heads: self.num_attention_heads,
            num_key_value_heads: kv,
            head_dim,
            rms_norm_eps: self.rms_norm_eps,
            rope_theta: self.rope_theta,
            rope_scaling: self.rope_scaling.filter(|s| s.rope_type == "llama3"),
            rope_freq_factors: None,
            max_position_embeddings: self.max_position_embeddings,
            tie_word_embeddings: self.tie_word_embeddings.unwrap_or(false),
        })
    }
}

impl Config {
    /// Use llama.cpp's per-pair rope frequency factors (a GGUF's `rope_freqs.weight`): each
    /// inverse frequency is divided by its factor, in every forward path. They win over any
    /// `rope_scaling`, which becomes the Llama 3 scaling the factors match, or `None` if none
    /// does (see [`RopeScaling::llama3_from_freq_factors`]). Rejects a count other than
    /// `head_dim / 2` and factors that are not finite and positive.
    pub fn with_rope_freq_factors(
        mut self,
        factors: Vec<f32>,
    ) -> std::result::Result<Self, String> {
        let want = self.head_dim / 2;
        if factors.len() != want {
            return Err(format!(
                "rope_freqs.weight has {} factors, expected {want} (head_dim {} / 2)",
                factors.len(),
                self.head_dim
            ));
        }
        if let Some((i, f)) = factors
            .iter()
            .enumerate()
            .find(|(_, f)| !f.is_finite() || **f <= 0.0)
        {
            return Err(format!(
                "rope_freqs.weight[{i}] is {f}, expected a finite positive factor"
            ));
        }
        self.rope_scaling =
            RopeScaling::llama3_from_freq_factors(&factors, self.head_dim, self.rope_theta);
        self.rope_freq_factors = Some(factors);
        Ok(self)
    }

    /// Back to the wire format (what `convert` writes as config.json).
    pub fn to_wire(&self, bos: Option<u32>, eos: Option<u32>, dtype: DType) -> LlamaConfig {
        LlamaConfig {
            architectures: vec!["LlamaForCausalLM".to_string()],
            model_type: "llama".to_string(),
            hidden_size: self.hidden_size,
            intermediate_size: self.intermediate_size,
            vocab_size: self.vocab_size,
            num_hidden_layers: self.num_hidden_layers,
            num_attention_heads: self.num_attention_heads,
            num_key_value_heads: Some(self.num_key_value_heads),
            head_dim: Some(self.head_dim),
            rms_norm_eps: self.rms_norm_eps,
            rope_theta: self.rope_theta,
            rope_scaling: self.rope_scaling.clone(),
            max_position_embeddings: self.max_position_embeddings,
            tie_word_embeddings: Some(self.tie_word_embeddings),
            bos_token_id: bos.map(TokenIds::One),
            eos_token_id: eos.map(TokenIds::One),
            pad_token_id: None,
            torch_dtype: Some(
                match dtype {
                    DType::BF16 => "bfloat16",
                    DType::F16 => "float16",
                    _ => "float32",
                }
                .to_string(),
            ),
        }
    }

    /// Number of parameters (embeddings counted once when tied).
    pub fn parameter_count(&self) -> u64 {
        let h = self.hidden_size as u64;
        let hd = self.head_dim as u64;
        let q = h * self.num_attention_heads as u64 * hd;
        let kv = 2 * h * self.num_key_value_heads as u64 * hd;
        let o = self.num_attention_heads as u64 * hd * h;
        let mlp = 3 * h * self.intermediate_size as u64;
        let per_layer = q + kv + o + mlp + 2 * h;
        let embed = self.vocab_size as u64 * h;
        let head = if self.tie_word_embeddings { 0 } else { embed };
        embed + head + h + per_layer * self.num_hidden_layers as u64
    }

    /// Inverse rotary frequencies, one per pair of head dimensions (the order of the Hugging
    /// Face half-split layout, which is also llama.cpp's pair order), scaled by the rope
    /// frequency factors if any, else by llama3 `rope_scaling` if any.
    pub fn inv_freq(&self) -> Vec<f32> {
        let base = base_inv_freq(self.head_dim, self.rope_theta);
        if let Some(factors) = &self.rope_freq_factors {
            // As ggml's rope op: theta_i = pos * base_i / factor_i.
            return base.iter().zip(factors).map(|(b, f)| b / f).collect();
        }
        let Some(s) = &self.rope_scaling else {
            return base;
        };
        let low_wavelen = s.original_max_position_embeddings as f32 / s.low_freq_factor;
        let high_wavelen = s.original_max_position_embeddings as f32 / s.high_freq_factor;
        base.into_iter()
            .map(|freq| {
                let wavelen = 2. * std::f32::consts::PI / freq;
                if wavelen < high_wavelen {
                    freq
                } else if wavelen > low_wavelen {
                    freq / s.factor
                } else {
                    let smooth = (s.original_max_position_embeddings as f32 / wavelen
                        - s.low_freq_factor)
                        / (s.high_freq_factor - s.low_freq_factor);
                    (1. - smooth) * freq / s.factor + smooth * freq
                }
            })
            .collect()
    }
}

// ---------------------------------------------------------------------------------------------
// Linear layers: frozen base weights (dense or quantized) plus an optional LoRA
// ---------------------------------------------------------------------------------------------

/// Frozen weights of a linear layer, shape `(out_features, in_features)`.
#[derive(Debug, Clone)]
pub enum Weights {
    /// A plain tensor (f32 on CPU; bf16/f16 on GPUs). Differentiable with respect to the input.
    Dense(Tensor),
    /// ggml-quantized blocks, multiplied by candle's `QMatMul`. Inference only: no gradient
    /// flows through it.
    Quantized(Arc<QMatMul>),
}

/// A LoRA adapter on one linear layer: `y += (x @ a^T @ b^T) * scale`.
#[derive(Debug, Clone)]
pub struct Lora {
    /// `(rank, in_features)`; usually the tensor of an f32 `candle_core::Var`.
    pub a: Tensor,
    /// `(out_features, rank)`; usually the tensor of an f32 `candle_core::Var`.
    pub b: Tensor,
    /// `alpha / rank` (PEFT's scaling).
    pub scale: f64,
}

/// Dropout on a LoRA adapter's input, for training: called with the input's shape, dtype and
/// device, it returns a mask of zeros and `1 / (1 - p)` drawn from the caller's (seeded) RNG.
#[derive(Clone)]
pub struct LoraDropout(
    #[allow(clippy::type_complexity)]
    pub  Arc<
        dyn Fn(&candle_core::Shape, DType, &Device) -> candle_core::Result<Tensor> + Send + Sync,
    >,
);

impl std::fmt::Debug for LoraDropout {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("LoraDropout")
    }
}

/// A bias-free linear layer `y = x @ W^T (+ LoRA)`.
#[derive(Debug, Clone)]
pub struct Linear {
    weights: Weights,
    out_features: usize,
    in_features: usize,
    lora: Option<Lora>,
    lora_dropout: Option<LoraDropout>,
}

impl Linear {
    /// Wrap frozen weights of shape `(out_features, in_features)`.
    pub fn new(weights: Weights) -> candle_core::Result<Self> {
        let (out_features, in_features) = match &weights {
            Weights::Dense(w) => w.dims2()?,
            Weights::Quantized(q) => match q.as_ref() {
                QMatMul::QTensor(t) => t.shape().dims2()?,
                QMatMul::Tensor(t) | QMatMul::TensorF16(t) => t.dims2()?,
            },
        };
        Ok(Self {
            weights,
            out_features,
            in_features,
            lora: None,
            lora_dropout: None,
        })
    }

    /// Apply (or with `None`, stop applying) dropout to the LoRA input, PEFT-style:
    /// `y = base(x) + B(A(dropout(x))) * scale`.
    pub fn set_lora_dropout(&mut self, dropout: Option<LoraDropout>) {
        self.lora_dropout = dropout;
    }

    pub fn weights(&self) -> &Weights {
        &self.weights
    }
    pub fn out_features(&self) -> usize {
        self.out_features
    }
    pub fn in_features(&self) -> usize {
        self.in_features
    }
    pub fn lora(&self) -> Option<&Lora> {
        self.lora.as_ref()
    }

    /// Attach (or with `None`, remove) a LoRA adapter. Rejects shapes that do not fit.
    pub fn set_lora(&mut self, lora: Option<Lora>) -> candle_core::Result<()> {
        if let Some(l) = &lora {
            let (r, i) = l.a.dims2()?;
            let (o, r2) = l.b.dims2()?;
            if i != self.in_features || o != self.out_features || r != r2 {
                candle_core::bail!(
                    "LoRA a {:?} / b {:?} do not fit a linear layer of {} -> {}",
                    l.a.shape(),
                    l.b.shape(),
                    self.in_features,
                    self.out_features
                );
            }
        }
        self.lora = lora;
        Ok(())
    }

    /// The quantized weights, when they are all there is to this layer (no adapter): what the
    /// fused quantized products ([`crate::quant_matmul::forward_many`], ...) take.
    fn plain_quantized(&self) -> Option<&candle_core::quantized::QTensor> {
        match (&self.weights, &self.lora) {
            (Weights::Quantized(q), None) => match q.as_ref() {
                QMatMul::QTensor(t) => Some(t),
                _ => None,
            },
            _ => None,
        }
    }

    /// The weights as a dense `(out, in)` f32 tensor (dequantizing if needed).
    pub fn dense_weight(&self) -> candle_core::Result<Tensor> {
        match &self.weights {
            Weights::Dense(w) => w.to_dtype(DType::F32),
            Weights::Quantized(q) => match q.as_ref() {
                QMatMul::QTensor(t) => t.dequantize(&t.device()),
                QMatMul::Tensor(t) | QMatMul::TensorF16(t) => t.to_dtype(DType::F32),
            },
        }
    }

    /// `residual + self.forward(x)`; in training with an adapter, one op that keeps the
    /// projection's own output out of the graph ([`crate::fused_lora::lora_linear_residual`]).
    pub fn forward_residual(&self, x: &Tensor, residual: &Tensor) -> candle_core::Result<Tensor> {
        if let (Weights::Dense(w), Some(l), None) = (&self.weights, &self.lora, &self.lora_dropout)
        {
            if crate::fused_lora::supported(x, w, l) && residual.dtype() == x.dtype() {
                return crate::fused_lora::lora_linear_residual(x, w, l, residual);
            }
        }
        if let Some(t) = self.plain_quantized() {
            if let Some(y) = crate::quant_matmul::forward_residual(t, x, residual)? {
                return Ok(y);
            }
        }
        residual + self.forward(x)?
    }

    /// `x`: `(.., in_features)` -> `(.., out_features)`, in `x`'s dtype.
    pub fn forward(&self, x: &Tensor) -> candle_core::Result<Tensor> {
        if let (Weights::Dense(w), Some(l), None) = (&self.weights, &self.lora, &self.lora_dropout)
        {
            if crate::fused_lora::supported(x, w, l) {
                return crate::fused_lora::lora_linear(x, w, l);
            }
        }
        let y = match &self.weights {
            Weights::Dense(w) => {
                let dims = x.dims();
                let in_dtype = x.dtype();
                let x2 = x.reshape(((), self.in_features))?.to_dtype(w.dtype())?;
                // In a graph (training), keep the frozen weight out of backpropagation.
                let y = if x2.track_op() {
                    crate::frozen_matmul::frozen_matmul(&x2, w)?
                } else {
                    x2.matmul(&w.t()?)?
                };
                let y = y.to_dtype(in_dtype)?;
                let mut out_dims = dims.to_vec();
                if let Some(last) = out_dims.last_mut() {
                    *last = self.out_features;
                }
                y.reshape(out_dims)?
            }
            Weights::Quantized(q) => match q.as_ref() {
                // candle multiplies Q4_1, Q5_0 and Q5_1 with scalar loops and Q8_0 one row at a
                // time, and widens F16/BF16 to f32; ours read the blocks as they are with SIMD.
                QMatMul::QTensor(t) => {
                    if let Some(y) = crate::quant_matmul::forward(t, x)? {
                        y
                    } else if let Some(y) = crate::half_matmul::forward(t, x)? {
                        y
                    } else {
                        q.forward(x)?
                    }
                }
                _ => q.forward(x)?,
            },
        };
        match &self.lora {
            None => Ok(y),
            Some(l) => {
                let xl = x.to_dtype(l.a.dtype())?;
                let xl = match &self.lora_dropout {
                    Some(d) => (&xl * (d.0)(xl.shape(), xl.dtype(), xl.device())?)?,
                    None => xl,
                };
                let delta = xl
                    .broadcast_matmul(&l.a.t()?)?
                    .broadcast_matmul(&l.b.t()?)?
                    .affine(l.scale, 0.)?;
                let delta = delta.to_dtype(y.dtype())?;
                y + delta
            }
        }
    }
}

/// Which projection of a block a [`Linear`] is (PEFT's `target_modules` names).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Proj {
    QProj,
    KProj,
    VProj,
    OProj,
    GateProj,
    UpProj,
    DownProj,
}

impl Proj {
    pub const ALL: [Proj; 7] = [
        Proj::QProj,
        Proj::KProj,
        Proj::VProj,
        Proj::OProj,
        Proj::GateProj,
        Proj::UpProj,
        Proj::DownProj,
    ];

    /// The module name in Hugging Face/PEFT checkpoints (`q_proj`, ...).
    pub fn name(self) -> &'static str {
        match self {
            Proj::QProj => "q_proj",
            Proj::KProj => "k_proj",
            Proj::VProj => "v_proj",
            Proj::OProj => "o_proj",
            Proj::GateProj => "gate_proj",
            Proj::UpProj => "up_proj",
            Proj::DownProj => "down_proj",
        }
    }

    /// `(in_features, out_features)` of this projection in a model of config `c`.
    pub fn shape(self, c: &Config) -> (usize, usize) {
        let (h, ff) = (c.hidden_size, c.intermediate_size);
        let q = c.num_attention_heads * c.head_dim;
        let kv = c.num_key_value_heads * c.head_dim;
        match self {
            Proj::QProj => (h, q),
            Proj::KProj | Proj::VProj => (h, kv),
            Proj::OProj => (q, h),
            Proj::GateProj | Proj::UpProj => (h, ff),
            Proj::DownProj => (ff, h),
        }
    }

    /// Module path inside layer `i`: `model.layers.{i}.self_attn.q_proj`.
    pub fn path(self, layer: usize) -> String {
        let group = match self {
            Proj::QProj | Proj::KProj | Proj::VProj | Proj::OProj => "self_attn",
            _ => "mlp",
        };
        format!("model.layers.{layer}.{group}.{}", self.name())
    }
}

// ---------------------------------------------------------------------------------------------
// Loading
// ---------------------------------------------------------------------------------------------

/// How linear layers are held in memory.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WeightFormat {
    /// Dequantized into plain tensors of this dtype (f32 on CPU). Trainable with LoRA.
    Dense(DType),
    /// Kept as ggml blocks (GGUF only; dense checkpoints fall back to `Dense(F32)`). Fast inference.
    Quantized,
}

/// Which kernels the forward pass uses; see the module docs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kernels {
    /// Primitive ops only: differentiable end to end.
    Composed,
    /// candle's fused kernels: faster, no backward.
    Fused,
}

/// Where a [`Llama`] gets its frozen weights, addressed by Hugging Face tensor names
/// (`model.layers.0.self_attn.q_proj.weight`). Implemented for GGUF and safetensors.
pub trait WeightSource {
    /// True if the checkpoint holds `name`.
    fn contains(&self, name: &str) -> bool;
    /// A dense tensor in `dtype` (dequantized if stored quantized).
    fn tensor(&mut self, name: &str, dtype: DType, device: &Device) -> Result<Tensor>;
    /// A linear layer's `(out, in)` weights in the requested format.
    fn linear(&mut self, name: &str, format: WeightFormat, device: &Device) -> Result<Weights>;
    /// A short description of the source for errors (its path).
    fn origin(&self) -> String;
}

fn expect_shape(src: &dyn WeightSource, name: &str, got: &[usize], want: &[usize]) -> Result<()> {
    if got != want {
        return Err(crate::ModelError::checkpoint(
            src.origin(),
            format!("tensor {name} has shape {got:?}, expected {want:?}"),
        ));
    }
    Ok(())
}

fn load_linear(
    src: &mut dyn WeightSource,
    name: &str,
    out_features: usize,
    in_features: usize,
    format: WeightFormat,
    device: &Device,
) -> Result<Linear> {
    let w = src.linear(name, format, device)?;
    let lin = Linear::new(w)?;
    expect_shape(
        src,
        name,
        &[lin.out_features, lin.in_features],
        &[out_features, in_features],
    )?;
    Ok(lin)
}

fn norm_dtype(format: WeightFormat) -> DType {
    match format {
        WeightFormat::Dense(d) => d,
        WeightFormat::Quantized => DType::F32,
    }
}

// ---------------------------------------------------------------------------------------------
// KV cache
// ---------------------------------------------------------------------------------------------

/// Key/value cache for incremental decoding of a batch of sequences.
///
/// Sequences are left-padded to a common length: `pad[b]` tokens of row `b` are padding, are
/// never attended to, and do not advance that row's rotary position.
#[derive(Debug, Clone)]
pub struct Cache {
    /// Per layer: `(batch, kv_heads, len, head_dim)` keys and values.
    kvs: Vec<crate::kv_cache::LayerCache>,
    /// Padding of each row, in tokens, from position `pad_at` on.
    pad: Vec<usize>,
    /// Where every row's padding starts: 0 (left padding) or after a shared prefix.
    pad_at: usize,
    /// Tokens seen so far per row (padding included).
    len: usize,
    /// Tokens each layer's cache holds before it grows.
    capacity: usize,
}

impl Cache {
    /// A cache for `batch` rows, none padded, with room for `capacity` tokens before it grows.
    pub fn new(cfg: &Config, batch: usize, capacity: usize) -> Self {
        Self::with_padding(cfg, vec![0; batch], capacity)
    }

    /// A cache whose row `b` starts with `pad[b]` padding tokens.
    pub fn with_padding(cfg: &Config, pad: Vec<usize>, capacity: usize) -> Self {
        let capacity = capacity.max(1);
        Self {
            kvs: (0..cfg.num_hidden_layers)
                .map(|_| crate::kv_cache::LayerCache::new(capacity))
                .collect(),
            pad,
            pad_at: 0,
            len: 0,
            capacity,
        }
    }

    /// A cache for `pad.len()` rows that all start with the sequence cached in `prefix` (one
    /// row), each followed by `pad[b]` padding tokens: the shared part of a batch of prompts
    /// (e.g. the system prompt) is computed once. Rotary positions skip the padding, so every
    /// row sees exactly what it would see alone.
    pub fn from_shared_prefix(
        prefix: &Cache,
        pad: Vec<usize>,
        capacity: usize,
    ) -> candle_core::Result<Self> {
        if prefix.batch() != 1 || prefix.pad.iter().any(|&p| p > 0) {
            candle_core::bail!("a shared prefix must be one unpadded row");
        }
        let capacity = capacity.max(prefix.len).max(1);
        let rows = pad.len();
        let mut kvs = Vec::with_capacity(prefix.kvs.len());
        for kv in &prefix.kvs {
            let mut fresh = crate::kv_cache::LayerCache::new(capacity);
            if let (Some(k), Some(v)) = (kv.k()?, kv.v()?) {
                let expand = |t: &Tensor| -> candle_core::Result<Tensor> {
                    let mut dims = t.dims().to_vec();
                    dims[0] = rows;
                    t.broadcast_as(dims)?.contiguous()
                };
                fresh.append(&expand(&k)?, &expand(&v)?)?;
            }
            kvs.push(fresh);
        }
        Ok(Self {
            kvs,
            pad,
            pad_at: prefix.len,
            len: prefix.len,
            capacity,
        })
    }

    /// Keep only the batch rows `rows` (in that order), e.g. when the others have finished
    /// generating: later steps then compute nothing for them.
    pub fn retain_rows(&mut self, rows: &[usize]) -> candle_core::Result<()> {
        if let Some(&bad) = rows.iter().find(|&&r| r >= self.pad.len()) {
            candle_core::bail!("cache has {} rows, asked to keep row {bad}", self.pad.len());
        }
        let capacity = self.capacity.max(self.len);
        for kv in &mut self.kvs {
            let (Some(k), Some(v)) = (kv.k()?, kv.v()?) else {
                continue;
            };
            let idx = Tensor::from_vec(
                rows.iter().map(|&r| r as u32).collect::<Vec<_>>(),
                rows.len(),
                k.device(),
            )?;
            let mut fresh = crate::kv_cache::LayerCache::new(capacity);
            fresh.append(
                &k.contiguous()?.index_select(&idx, 0)?,
                &v.contiguous()?.index_select(&idx, 0)?,
            )?;
            *kv = fresh;
        }
        self.pad = rows.iter().map(|&r| self.pad[r]).collect();
        Ok(())
    }

    /// Tokens held per row, padding included.
    pub fn len(&self) -> usize {
        self.len
    }
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }
    pub fn batch(&self) -> usize {
        self.pad.len()
    }
    pub fn padding(&self) -> &[usize] {
        &self.pad
    }
}

// ---------------------------------------------------------------------------------------------
// Layers
// ---------------------------------------------------------------------------------------------

#[derive(Debug, Clone)]
struct RmsNorm {
    weight: Tensor,
    eps: f64,
}

impl RmsNorm {
    fn load(
        src: &mut dyn WeightSource,
        name: &str,
        cfg: &Config,
        dtype: DType,
        dev: &Device,
    ) -> Result<Self> {
        let weight = src.tensor(name, dtype, dev)?;
        expect_shape(src, name, weight.dims(), &[cfg.hidden_size])?;
        Ok(Self {
            weight,
            eps: cfg.rms_norm_eps,
        })
    }

    fn forward(&self, x: &Tensor, kernels: Kernels) -> candle_core::Result<Tensor> {
        match kernels {
            Kernels::Fused => {
                if let Some(y) = rms_norm_f32(x, &self.weight, self.eps as f32)? {
                    return Ok(y);
                }
                candle_nn::ops::rms_norm(&x.contiguous()?, &self.weight, self.eps as f32)
            }
            Kernels::Composed if crate::fused_grad::supported(x) => {
                crate::fused_grad::rms_norm(x, &self.weight, self.eps)
            }
            Kernels::Composed => {
                let dtype = x.dtype();
                let xf = x.to_dtype(DType::F32)?;
                let ms = xf.sqr()?.mean_keepdim(D::Minus1)?;
                let normed = xf.broadcast_div(&(ms + self.eps)?.sqrt()?)?;
                normed.to_dtype(dtype)?.broadcast_mul(&self.weight)
            }
        }
    }
}

/// `f` over the values of `inputs`, read contiguously, into a new f32 CPU tensor of `dims`:
/// the fast paths below that keep candle's bits on f32 CPU tensors outside a graph. `None`,
/// with nothing computed, when an input is on another device, of another dtype or in a graph.
fn map_f32_cpu(
    inputs: &[&Tensor],
    dims: &[usize],
    op: &str,
    f: impl FnOnce(&[&[f32]], &mut [f32]),
) -> candle_core::Result<Option<Tensor>> {
    if inputs
        .iter()
        .any(|t| !t.device().is_cpu() || t.dtype() != DType::F32 || t.track_op())
    {
        return Ok(None);
    }
    let inputs = inputs
        .iter()
        .map(|t| t.contiguous())
        .collect::<candle_core::Result<Vec<_>>>()?;
    let guards: Vec<_> = inputs.iter().map(|t| t.storage_and_layout()).collect();
    let mut values = Vec::with_capacity(guards.len());
    for (storage, layout) in &guards {
        let candle_core::Storage::Cpu(cpu) = &**storage else {
            return Ok(None);
        };
        values.push(crate::fused_grad::slice::<f32>(cpu, layout, op)?);
    }
    let mut out = vec![0f32; dims.iter().product()];
    f(&values, &mut out);
    Tensor::from_vec(out, dims, &Device::Cpu).map(Some)
}

/// candle-nn's `rms_norm` for an f32 CPU tensor outside a graph, with the same bits
/// ([`crate::vector_math::rms_norm_rows`]: eight rows' sums at a time); `None` otherwise.
fn rms_norm_f32(x: &Tensor, weight: &Tensor, eps: f32) -> candle_core::Result<Option<Tensor>> {
    if x.dims().last() != Some(&weight.elem_count()) {
        return Ok(None);
    }
    map_f32_cpu(&[x, weight], x.dims(), "rms_norm", |v, out| {
        crate::vector_math::rms_norm_rows(v[0], v[1], eps, out)
    })
}

/// candle-nn's `rope` for f32 CPU tensors outside a graph, with the same bits
/// ([`crate::vector_math::rope_rows`]); `None` otherwise.
fn rope_f32(x: &Tensor, cos: &Tensor, sin: &Tensor) -> candle_core::Result<Option<Tensor>> {
    let Ok((b, h, t, d)) = x.dims4() else {
        return Ok(None);
    };
    let batched = match cos.dims() {
        [ct, ch] if (*ct, *ch) == (t, d / 2) => false,
        [cb, ct, ch] if (*cb, *ct, *ch) == (b, t, d / 2) => true,
        _ => return Ok(None),
    };
    if cos.dims() != sin.dims() || d % 2 != 0 {
        return Ok(None);
    }
    map_f32_cpu(&[x, cos, sin], &[b, h, t, d], "rope", |v, out| {
        crate::vector_math::rope_rows(v[0], v[1], v[2], (b, h, t, d), batched, out)
    })
}

/// Rotary tables and the per-forward positions/mask shared by every layer.
struct Step {
    /// `(batch, 1, seq, head_dim)` for the composed path, `(batch, seq, head_dim/2)` for fused.
    cos: Tensor,
    sin: Tensor,
    /// Additive mask `(batch, 1, 1, seq, kv_len)`, or `None` when nothing is masked (or when
    /// the fused softmax applies `attention` itself).
    mask: Option<Tensor>,
    /// The same mask as ranges, for [`crate::fused_grad::masked_softmax`].
    attention: crate::fused_grad::AttentionMask,
    /// Composed kernels through [`crate::fused_grad`] (CPU, f32/f64): `cos`/`sin` then have the
    /// fused layout.
    grad_kernels: bool,
}

fn rotate_half(x: &Tensor) -> candle_core::Result<Tensor> {
    let half = x.dim(D::Minus1)? / 2;
    let x1 = x.narrow(D::Minus1, 0, half)?;
    let x2 = x.narrow(D::Minus1, half, half)?;
    Tensor::cat(&[&x2.neg()?, &x1], D::Minus1)
}

fn apply_rope(x: &Tensor, step: &Step, kernels: Kernels) -> candle_core::Result<Tensor> {
    match kernels {
        Kernels::Composed if step.grad_kernels => crate::fused_grad::rope(x, &step.cos, &step.sin),
        Kernels::Fused => match rope_f32(x, &step.cos, &step.sin)? {
            Some(y) => Ok(y),
            None => candle_nn::rotary_emb::rope(&x.contiguous()?, &step.cos, &step.sin),
        },
        Kernels::Composed => {
            x.broadcast_mul(&step.cos)? + rotate_half(x)?.broadcast_mul(&step.sin)?
        }
    }
}

fn softmax(x: &Tensor, kernels: Kernels) -> candle_core::Result<Tensor> {
    match kernels {
        Kernels::Fused => candle_nn::ops::softmax_last_dim(x),
        Kernels::Composed => {
            // The max is a constant shift: detaching it keeps the graph small (same gradient).
            let max = x.max_keepdim(D::Minus1)?.detach();
            let e = x.broadcast_sub(&max)?.exp()?;
            e.broadcast_div(&e.sum_keepdim(D::Minus1)?)
        }
    }
}

#[derive(Debug, Clone)]
struct Attention {
    q_proj: Linear,
    k_proj: Linear,
    v_proj: Linear,
    o_proj: Linear,
    n_head: usize,
    n_kv_head: usize,
    head_dim: usize,
}

impl Attention {
    fn load(
        src: &mut dyn WeightSource,
        p: &str,
        cfg: &Config,
        f: WeightFormat,
        dev: &Device,
    ) -> Result<Self> {
        let (h, hd) = (cfg.hidden_size, cfg.head_dim);
        let (nh, nkv) = (cfg.num_attention_heads, cfg.num_key_value_heads);
        Ok(Self {
            q_proj: load_linear(src, &format!("{p}.q_proj.weight"), nh * hd, h, f, dev)?,
            k_proj: load_linear(src, &format!("{p}.k_proj.weight"), nkv * hd, h, f, dev)?,
            v_proj: load_linear(src, &format!("{p}.v_proj.weight"), nkv * hd, h, f, dev)?,
            o_proj: load_linear(src, &format!("{p}.o_proj.weight"), h, nh * hd, f, dev)?,
            n_head: nh,
            n_kv_head: nkv,
            head_dim: hd,
        })
    }

    /// The query, key and value projections of `x`: quantized weights in one pass.
    fn projections(&self, x: &Tensor) -> candle_core::Result<(Tensor, Tensor, Tensor)> {
        let quantized = [&self.q_proj, &self.k_proj, &self.v_proj].map(Linear::plain_quantized);
        if let [Some(q), Some(k), Some(v)] = quantized {
            if let Some([q, k, v]) = crate::quant_matmul::forward_many(&[q, k, v], x)?
                .and_then(|ys| <[Tensor; 3]>::try_from(ys).ok())
            {
                return Ok((q, k, v));
            }
        }
        Ok((
            self.q_proj.forward(x)?,
            self.k_proj.forward(x)?,
            self.v_proj.forward(x)?,
        ))
    }

    /// `residual + attention(x)`; `x`: `(batch, seq, hidden)`.
    fn forward(
        &self,
        x: &Tensor,
        residual: &Tensor,
        step: &Step,
        kv: Option<&mut crate::kv_cache::LayerCache>,
        kernels: Kernels,
    ) -> candle_core::Result<Tensor> {
        let (b, t, _) = x.dims3()?;
        let (nh, nkv, hd) = (self.n_head, self.n_kv_head, self.head_dim);
        let scale = 1.0 / (hd as f64).sqrt();
        if kernels == Kernels::Composed && step.grad_kernels && kv.is_none() {
            // Training: rope and the head layout happen inside the attention op, so only the
            // projections' outputs stay in the graph.
            let y = crate::fused_attention::rope_attention(
                &self.q_proj.forward(x)?,
                &self.k_proj.forward(x)?,
                &self.v_proj.forward(x)?,
                nh,
                nkv,
                &step.cos,
                &step.sin,
                scale,
                step.attention.clone(),
            )?;
            return self.o_proj.forward_residual(&y, residual);
        }
        let (q, k, v) = self.projections(x)?;
        let q = q.reshape((b, t, nh, hd))?.transpose(1, 2)?;
        let k = k.reshape((b, t, nkv, hd))?.transpose(1, 2)?;
        let v = v.reshape((b, t, nkv, hd))?.transpose(1, 2)?;
        let q = apply_rope(&q, step, kernels)?.contiguous()?;
        let k = apply_rope(&k, step, kernels)?.contiguous()?;
        let v = v.contiguous()?;
        let (k, v) = match kv {
            Some(cache) => cache.append(&k, &v)?,
            None => (k, v),
        };
        let kv_len = k.dim(2)?;
        // Grouped-query attention without copying k/v: fold the heads that share a kv head into
        // the query-length axis.
        let group = nh / nkv;
        let q = q.reshape((b, nkv, group * t, hd))?;
        if kernels == Kernels::Fused && t <= crate::cached_attention::MAX_NEW_TOKENS {
            // Decoding and short prompts: one pass over the cache instead of a gemm call per
            // (row, kv head).
            if let Some(y) =
                crate::cached_attention::attend(&q, &k, &v, scale as f32, &step.attention)?
            {
                let y = y
                    .reshape((b, nh, t, hd))?
                    .transpose(1, 2)?
                    .reshape((b, t, nh * hd))?;
                return self.o_proj.forward_residual(&y, residual);
            }
        }
        if kernels == Kernels::Composed && step.grad_kernels {
            let y = crate::fused_attention::attention(&q, &k, &v, scale, step.attention.clone())?;
            return self.o_proj.forward_residual(&y, residual);
        }
        let scores = (q.matmul(&k.t()?)? * scale)?;
        let scores = scores.reshape((b, nkv, group, t, kv_len))?;
        let scores = match &step.mask {
            Some(m) => scores.broadcast_add(m)?,
            None => scores,
        };
        let probs = softmax(&scores, kernels)?.reshape((b, nkv, group * t, kv_len))?;
        let y = probs.matmul(&v)?; // (b, nkv, group * t, hd)
        let y = y
            .reshape((b, nh, t, hd))?
            .transpose(1, 2)?
            .reshape((b, t, nh * hd))?;
        self.o_proj.forward_residual(&y, residual)
    }
}

#[derive(Debug, Clone)]
struct Mlp {
    gate_proj: Linear,
    up_proj: Linear,
    down_proj: Linear,
}

impl Mlp {
    fn load(
        src: &mut dyn WeightSource,
        p: &str,
        cfg: &Config,
        f: WeightFormat,
        dev: &Device,
    ) -> Result<Self> {
        let (h, i) = (cfg.hidden_size, cfg.intermediate_size);
        Ok(Self {
            gate_proj: load_linear(src, &format!("{p}.gate_proj.weight"), i, h, f, dev)?,
            up_proj: load_linear(src, &format!("{p}.up_proj.weight"), i, h, f, dev)?,
            down_proj: load_linear(src, &format!("{p}.down_proj.weight"), h, i, f, dev)?,
        })
    }

    /// `residual + mlp(x)`.
    fn forward(&self, x: &Tensor, residual: &Tensor) -> candle_core::Result<Tensor> {
        if let (Some(g), Some(u)) = (
            self.gate_proj.plain_quantized(),
            self.up_proj.plain_quantized(),
        ) {
            if let Some(h) = crate::quant_matmul::forward_swiglu(g, u, x)? {
                return self.down_proj.forward_residual(&h, residual);
            }
        }
        let gate = self.gate_proj.forward(x)?;
        let up = self.up_proj.forward(x)?;
        // Fused only in a graph (training): inference keeps candle's silu arithmetic (in one
        // pass on the CPU, `silu_times`), whose rounding the llama.cpp logit goldens were taken
        // against.
        let fused = crate::fused_grad::supported(&gate) && gate.dtype() == up.dtype();
        let h = if fused && (gate.track_op() || up.track_op()) {
            crate::fused_grad::swiglu(&gate, &up)?
        } else if let Some(h) = silu_times(&gate, &up)? {
            h
        } else {
            (gate.silu()? * up)?
        };
        self.down_proj.forward_residual(&h, residual)
    }
}

/// `silu(gate) · up` for f32 CPU tensors of one shape outside a graph, in one parallel pass:
/// candle's `v / (1 + e^(−v))` (libm `expf`) then the product, the same operations as
/// `gate.silu()? * up` and so the same bits, without the intermediate tensor and the second
/// pass. `None` for anything else.
fn silu_times(gate: &Tensor, up: &Tensor) -> candle_core::Result<Option<Tensor>> {
    use rayon::prelude::*;
    if gate.dims() != up.dims() {
        return Ok(None);
    }
    map_f32_cpu(&[gate, up], gate.dims(), "silu", |v, out| {
        out.par_chunks_mut(4096)
            .zip(v[0].par_chunks(4096).zip(v[1].par_chunks(4096)))
            .for_each(|(o, (g, u))| crate::vector_math::silu_mul_slices(g, u, o))
    })
}

#[derive(Debug, Clone)]
struct Block {
    input_layernorm: RmsNorm,
    self_attn: Attention,
    post_attention_layernorm: RmsNorm,
    mlp: Mlp,
}

impl Block {
    fn load(
        src: &mut dyn WeightSource,
        i: usize,
        cfg: &Config,
        f: WeightFormat,
        dev: &Device,
    ) -> Result<Self> {
        let p = format!("model.layers.{i}");
        let nd = norm_dtype(f);
        Ok(Self {
            input_layernorm: RmsNorm::load(
                src,
                &format!("{p}.input_layernorm.weight"),
                cfg,
                nd,
                dev,
            )?,
            self_attn: Attention::load(src, &format!("{p}.self_attn"), cfg, f, dev)?,
            post_attention_layernorm: RmsNorm::load(
                src,
                &format!("{p}.post_attention_layernorm.weight"),
                cfg,
                nd,
                dev,
            )?,
            mlp: Mlp::load(src, &format!("{p}.mlp"), cfg, f, dev)?,
        })
    }

    fn forward(
        &self,
        x: &Tensor,
        step: &Step,
        kv: Option<&mut crate::kv_cache::LayerCache>,
        kernels: Kernels,
    ) -> candle_core::Result<Tensor> {
        let h = self.input_layernorm.forward(x, kernels)?;
        let x = self.self_attn.forward(&h, x, step, kv, kernels)?;
        let h = self.post_attention_layernorm.forward(&x, kernels)?;
        self.mlp.forward(&h, &x)
    }
}

// ---------------------------------------------------------------------------------------------
// The model
// ---------------------------------------------------------------------------------------------

/// A llama-architecture causal language model.
#[derive(Debug, Clone)]
pub struct Llama {
    cfg: Config,
    /// `(vocab, hidden)` token embeddings (dense, frozen).
    embed_tokens: Tensor,
    layers: Vec<Block>,
    norm: RmsNorm,
    lm_head: Linear,
    /// `(max_position_embeddings, head_dim / 2)` f32 rotary tables.
    cos: Tensor,
    sin: Tensor,
    kernels: Kernels,
    format: WeightFormat,
    device: Device,
}

impl Llama {
    /// Load every weight from `src`. Dense formats use the differentiable composed kernels,
    /// quantized weights the fused ones (change with [`Llama::set_kernels`]).
    pub fn load(
        src: &mut dyn WeightSource,
        cfg: Config,
        format: WeightFormat,
        device: &Device,
    ) -> Result<Self> {
        let dtype = norm_dtype(format);
        let embed_tokens = src.tensor("model.embed_tokens.weight", dtype, device)?;
        expect_shape(
            src,
            "model.embed_tokens.weight",
            embed_tokens.dims(),
            &[cfg.vocab_size, cfg.hidden_size],
        )?;
        let layers = (0..cfg.num_hidden_layers)
            .map(|i| Block::load(src, i, &cfg, format, device))
            .collect::<Result<Vec<_>>>()?;
        let norm = RmsNorm::load(src, "model.norm.weight", &cfg, dtype, device)?;
        let lm_head = if src.contains("lm_head.weight") {
            load_linear(
                src,
                "lm_head.weight",
                cfg.vocab_size,
                cfg.hidden_size,
                format,
                device,
            )?
        } else {
            // Tied embeddings: the GGUF/HF checkpoint has no separate output matrix.
            match format {
                WeightFormat::Dense(_) => Linear::new(Weights::Dense(embed_tokens.clone()))?,
                WeightFormat::Quantized => load_linear(
                    src,
                    "model.embed_tokens.weight",
                    cfg.vocab_size,
                    cfg.hidden_size,
                    format,
                    device,
                )?,
            }
        };
        let inv_freq = cfg.inv_freq();
        let half = inv_freq.len();
        let inv_freq = Tensor::from_vec(inv_freq, (1, half), device)?;
        let t = Tensor::arange(0u32, cfg.max_position_embeddings as u32, device)?
            .to_dtype(DType::F32)?
            .reshape((cfg.max_position_embeddings, 1))?;
        let freqs = t.broadcast_mul(&inv_freq)?;
        let kernels = match format {
            WeightFormat::Dense(_) => Kernels::Composed,
            WeightFormat::Quantized => Kernels::Fused,
        };
        Ok(Self {
            cos: freqs.cos()?.to_dtype(dtype)?,
            sin: freqs.sin()?.to_dtype(dtype)?,
            cfg,
            embed_tokens,
            layers,
            norm,
            lm_head,
            kernels,
            format,
            device: device.clone(),
        })
    }

    pub fn config(&self) -> &Config {
        &self.cfg
    }
    pub fn device(&self) -> &Device {
        &self.device
    }
    pub fn format(&self) -> WeightFormat {
        self.format
    }
    pub fn kernels(&self) -> Kernels {
        self.kernels
    }
    /// Choose composed (differentiable) or fused (fast) kernels.
    pub fn set_kernels(&mut self, kernels: Kernels) {
        self.kernels = kernels;
    }
    /// The dtype of activations (and dense weights).
    pub fn dtype(&self) -> DType {
        self.embed_tokens.dtype()
    }
    /// `(vocab, hidden)` token embeddings.
    pub fn embed_tokens(&self) -> &Tensor {
        &self.embed_tokens
    }
    pub fn norm_weight(&self) -> &Tensor {
        &self.norm.weight
    }
    pub fn lm_head(&self) -> &Linear {
        &self.lm_head
    }
    pub fn num_layers(&self) -> usize {
        self.layers.len()
    }

    /// The projection `proj` of layer `layer`, e.g. to attach a LoRA adapter.
    pub fn linear(&self, layer: usize, proj: Proj) -> Option<&Linear> {
        let b = self.layers.get(layer)?;
        Some(match proj {
            Proj::QProj => &b.self_attn.q_proj,
            Proj::KProj => &b.self_attn.k_proj,
            Proj::VProj => &b.self_attn.v_proj,
            Proj::OProj => &b.self_attn.o_proj,
            Proj::GateProj => &b.mlp.gate_proj,
            Proj::UpProj => &b.mlp.up_proj,
            Proj::DownProj => &b.mlp.down_proj,
        })
    }

    /// Mutable access to a projection, e.g. [`Linear::set_lora`].
    pub fn linear_mut(&mut self, layer: usize, proj: Proj) -> Option<&mut Linear> {
        let b = self.layers.get_mut(layer)?;
        Some(match proj {
            Proj::QProj => &mut b.self_attn.q_proj,
            Proj::KProj => &mut b.self_attn.k_proj,
            Proj::VProj => &mut b.self_attn.v_proj,
            Proj::OProj => &mut b.self_attn.o_proj,
            Proj::GateProj => &mut b.mlp.gate_proj,
            Proj::UpProj => &mut b.mlp.up_proj,
            Proj::DownProj => &mut b.mlp.down_proj,
        })
    }

    /// Weights of layer `layer`'s norms: `(input_layernorm, post_attention_layernorm)`.
    pub fn layer_norms(&self, layer: usize) -> Option<(&Tensor, &Tensor)> {
        let b = self.layers.get(layer)?;
        Some((
            &b.input_layernorm.weight,
            &b.post_attention_layernorm.weight,
        ))
    }

    fn step(&self, b: usize, t: usize, cache: Option<&Cache>) -> candle_core::Result<Step> {
        let offset = cache.map_or(0, |c| c.len);
        let pad: &[usize] = cache.map_or(&[], |c| &c.pad);
        let pad_at = cache.map_or(0, |c| c.pad_at);
        let kv_len = offset + t;
        let padded = pad.iter().any(|&p| p > 0);
        let grad_kernels = self.kernels == Kernels::Composed
            && self.device.is_cpu()
            && matches!(self.dtype(), DType::F32 | DType::F64);
        // The fused layout of the rotary tables, for the fused kernels of either kind.
        let fused_tables = self.kernels == Kernels::Fused || grad_kernels;
        let attention = crate::fused_grad::AttentionMask {
            seq: t,
            offset,
            pad: if padded { pad.to_vec() } else { Vec::new() },
            pad_at,
        };
        let (cos, sin) = if !padded {
            let cos = self.cos.narrow(0, offset, t)?;
            let sin = self.sin.narrow(0, offset, t)?;
            match fused_tables {
                true => (cos.contiguous()?, sin.contiguous()?),
                false => (
                    Tensor::cat(&[&cos, &cos], D::Minus1)?.reshape((1, 1, t, ()))?,
                    Tensor::cat(&[&sin, &sin], D::Minus1)?.reshape((1, 1, t, ()))?,
                ),
            }
        } else {
            let pos: Vec<u32> = (0..b)
                .flat_map(|r| (0..t).map(move |i| (r, i)))
                .map(|(r, i)| attention.position(r, i) as u32)
                .collect();
            let pos = Tensor::from_vec(pos, b * t, &self.device)?;
            let cos = self.cos.index_select(&pos, 0)?.reshape((b, t, ()))?;
            let sin = self.sin.index_select(&pos, 0)?.reshape((b, t, ()))?;
            match fused_tables {
                true => (cos, sin),
                false => (
                    Tensor::cat(&[&cos, &cos], D::Minus1)?.reshape((b, 1, t, ()))?,
                    Tensor::cat(&[&sin, &sin], D::Minus1)?.reshape((b, 1, t, ()))?,
                ),
            }
        };
        let mask = if (t == 1 && !padded) || grad_kernels {
            None
        } else {
            let rows = if padded { b } else { 1 };
            let mut m = vec![0f32; rows * t * kv_len];
            for r in 0..rows {
                for i in 0..t {
                    for j in 0..kv_len {
                        if !attention.allows(r, i, j) {
                            m[(r * t + i) * kv_len + j] = MASK_VALUE;
                        }
                    }
                }
            }
            let m = Tensor::from_vec(m, (rows, 1, 1, t, kv_len), &self.device)?;
            Some(m.to_dtype(self.dtype())?)
        };
        Ok(Step {
            cos,
            sin,
            mask,
            attention,
            grad_kernels,
        })
    }

    /// Final hidden states (after the last norm), `(batch, seq, hidden)`.
    ///
    /// `ids`: `(batch, seq)` u32 token ids. With a `cache`, they continue the cached sequences
    /// (rotary positions and the mask account for each row's left padding) and the cache grows
    /// by `seq`. Without one, every row starts at position 0 under a plain causal mask (right
    /// padding is harmless there: earlier tokens never see later ones).
    pub fn forward_hidden(
        &self,
        ids: &Tensor,
        cache: Option<&mut Cache>,
    ) -> candle_core::Result<Tensor> {
        crate::pool::on_pool_for(&self.device, || self.hidden(ids, cache))
    }

    fn hidden(&self, ids: &Tensor, mut cache: Option<&mut Cache>) -> candle_core::Result<Tensor> {
        let (b, t) = ids.dims2()?;
        if let Some(c) = cache.as_deref() {
            if c.batch() != b {
                candle_core::bail!("cache holds {} rows, input has {b}", c.batch());
            }
        }
        let offset = cache.as_deref().map_or(0, |c| c.len);
        if offset + t > self.cfg.max_position_embeddings {
            candle_core::bail!(
                "{} tokens exceed the context length of {}",
                offset + t,
                self.cfg.max_position_embeddings
            );
        }
        let step = self.step(b, t, cache.as_deref())?;
        let mut x = self
            .embed_tokens
            .index_select(&ids.flatten_all()?, 0)?
            .reshape((b, t, self.cfg.hidden_size))?;
        for (i, layer) in self.layers.iter().enumerate() {
            let kv = match cache.as_deref_mut() {
                Some(c) => Some(&mut c.kvs[i]),
                None => None,
            };
            x = layer.forward(&x, &step, kv, self.kernels)?;
        }
        if let Some(c) = cache {
            c.len += t;
        }
        self.norm.forward(&x, self.kernels)
    }

    /// Logits `(.., vocab)` for hidden states `(.., hidden)`, in f32.
    pub fn logits(&self, hidden: &Tensor) -> candle_core::Result<Tensor> {
        crate::pool::on_pool_for(&self.device, || {
            self.lm_head.forward(hidden)?.to_dtype(DType::F32)
        })
    }

    /// Logits of every position, `(batch, seq, vocab)` f32.
    pub fn forward(&self, ids: &Tensor, cache: Option<&mut Cache>) -> candle_core::Result<Tensor> {
        crate::pool::on_pool_for(&self.device, || {
            let h = self.hidden(ids, cache)?;
            self.logits(&h)
        })
    }

    /// Logits of the last position of each row, `(batch, vocab)` f32.
    pub fn forward_last(
        &self,
        ids: &Tensor,
        cache: Option<&mut Cache>,
    ) -> candle_core::Result<Tensor> {
        crate::pool::on_pool_for(&self.device, || {
            let h = self.hidden(ids, cache)?;
            let t = h.dim(1)?;
            self.logits(&h.narrow(1, t - 1, 1)?.squeeze(1)?.contiguous()?)
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    /// In-memory weights for the tiny test model.
    struct MapSource(HashMap<String, Tensor>);

    impl WeightSource for MapSource {
        fn contains(&self, name: &str) -> bool {
            self.0.contains_key(name)
        }
        fn tensor(&mut self, name: &str, dtype: DType, _: &Device) -> Result<Tensor> {
            let t = self.0.get(name).ok_or_else(|| {
                crate::ModelError::checkpoint("memory", format!("missing tensor {name}"))
            })?;
            Ok(t.to_dtype(dtype)?)
        }
        fn linear(&mut self, name: &str, format: WeightFormat, dev: &Device) -> Result<Weights> {
            let t = self.tensor(name, DType::F32, dev)?;
            Ok(match format {
                WeightFormat::Dense(_) => Weights::Dense(t),
                WeightFormat::Quantized => Weights::Quantized(Arc::new(QMatMul::from_qtensor(
                    candle_core::quantized::QTensor::quantize(
                        &t,
                        candle_core::quantized::GgmlDType::Q8_0,
                    )?,
                )?)),
            })
        }
        fn origin(&self) -> String {
            "memory".into()
        }
    }

    fn tiny_config() -> Config {
        LlamaConfig {
            architectures: vec![],
            model_type: "llama".into(),
            hidden_size: 64,
            intermediate_size: 96,
            vocab_size: 32,
            num_hidden_layers: 2,
            num_attention_heads: 4,
            num_key_value_heads: Some(2),
            head_dim: None,
            rms_norm_eps: 1e-5,
            rope_theta: 10000.,
            rope_scaling: None,
            max_position_embeddings: 64,
            tie_word_embeddings: Some(true),
            bos_token_id: None,
            eos_token_id: None,
            pad_token_id: None,
            torch_dtype: None,
        }
        .into_config()
        .expect("tiny config is valid")
    }

    /// Deterministic pseudo-random weights (no RNG seeding on CPU in candle).
    fn tiny_weights(cfg: &Config) -> MapSource {
        let dev = Device::Cpu;
        let mut state = 0x2545_f491_4f6c_dd1du64;
        let mut rand = |shape: &[usize], scale: f32| {
            let n: usize = shape.iter().product();
            let v: Vec<f32> = (0..n)
                .map(|_| {
                    state ^= state << 13;
                    state ^= state >> 7;
                    state ^= state << 17;
                    ((state >> 40) as f32 / (1u64 << 24) as f32 - 0.5) * scale
                })
                .collect();
            Tensor::from_vec(v, shape, &dev).expect("shape matches")
        };
        let (h, i, hd) = (cfg.hidden_size, cfg.intermediate_size, cfg.head_dim);
        let mut m = HashMap::new();
        m.insert(
            "model.embed_tokens.weight".into(),
            rand(&[cfg.vocab_size, h], 1.0),
        );
        m.insert(
            "model.norm.weight".into(),
            (rand(&[h], 0.2) + 1.0).expect("add"),
        );
        for l in 0..cfg.num_hidden_layers {
            let p = format!("model.layers.{l}");
            m.insert(
                format!("{p}.input_layernorm.weight"),
                (rand(&[h], 0.2) + 1.0).expect("add"),
            );
            m.insert(
                format!("{p}.post_attention_layernorm.weight"),
                (rand(&[h], 0.2) + 1.0).expect("add"),
            );
            m.insert(
                format!("{p}.self_attn.q_proj.weight"),
                rand(&[cfg.num_attention_heads * hd, h], 0.5),
            );
            m.insert(
                format!("{p}.self_attn.k_proj.weight"),
                rand(&[cfg.num_key_value_heads * hd, h], 0.5),
            );
            m.insert(
                format!("{p}.self_attn.v_proj.weight"),
                rand(&[cfg.num_key_value_heads * hd, h], 0.5),
            );
            m.insert(
                format!("{p}.self_attn.o_proj.weight"),
                rand(&[h, cfg.num_attention_heads * hd], 0.5),
            );
            m.insert(format!("{p}.mlp.gate_proj.weight"), rand(&[i, h], 0.5));
            m.insert(format!("{p}.mlp.up_proj.weight"), rand(&[i, h], 0.5));
            m.insert(format!("{p}.mlp.down_proj.weight"), rand(&[h, i], 0.5));
        }
        MapSource(m)
    }

    fn tiny_model(format: WeightFormat) -> Llama {
        let cfg = tiny_config();
        let mut src = tiny_weights(&cfg);
        Llama::load(&mut src, cfg, format, &Device::Cpu).expect("tiny model loads")
    }

    fn max_abs_diff(a: &Tensor, b: &Tensor) -> f32 {
        (a - b)
            .and_then(|d| d.abs())
            .and_then(|d| d.flatten_all())
            .and_then(|d| d.max(0))
            .and_then(|d| d.to_scalar::<f32>())
            .expect("same shapes")
    }

    #[test]
    fn composed_and_fused_kernels_agree() -> Result<()> {
        let mut m = tiny_model(WeightFormat::Dense(DType::F32));
        let ids = Tensor::new(&[[1u32, 5, 7, 3, 9, 30]], &Device::Cpu)?;
        let a = m.forward(&ids, None)?;
        m.set_kernels(Kernels::Fused);
        let b = m.forward(&ids, None)?;
        assert!(max_abs_diff(&a, &b) < 1e-4, "diff {}", max_abs_diff(&a, &b));
        Ok(())
    }

    #[test]
    fn kv_cache_matches_full_forward() -> Result<()> {
        for kernels in [Kernels::Composed, Kernels::Fused] {
            let mut m = tiny_model(WeightFormat::Dense(DType::F32));
            m.set_kernels(kernels);
            let ids = [1u32, 5, 7, 3, 9, 30, 2];
            let full = m.forward(&Tensor::new(&[ids], &Device::Cpu)?, None)?;
            let mut cache = Cache::new(m.config(), 1, 4);
            let first = m.forward(
                &Tensor::new(&ids[..3], &Device::Cpu)?.unsqueeze(0)?,
                Some(&mut cache),
            )?;
            assert!(max_abs_diff(&first, &full.narrow(1, 0, 3)?) < 1e-4);
            for (i, &id) in ids.iter().enumerate().skip(3) {
                let step = m.forward(&Tensor::new(&[[id]], &Device::Cpu)?, Some(&mut cache))?;
                let d = max_abs_diff(&step, &full.narrow(1, i, 1)?);
                assert!(d < 1e-4, "{kernels:?} position {i}: diff {d}");
            }
            assert_eq!(cache.len(), ids.len());
        }
        Ok(())
    }

    #[test]
    fn left_padding_does_not_change_a_row() -> Result<()> {
        let m = tiny_model(WeightFormat::Dense(DType::F32));
        let short = [4u32, 8, 15];
        let long = [16u32, 23, 42 % 32, 1, 2];
        let alone = m.forward_last(&Tensor::new(&[short], &Device::Cpu)?, None)?;
        let batch = Tensor::new(&[[0u32, 0, 4, 8, 15], long], &Device::Cpu)?;
        let mut cache = Cache::with_padding(m.config(), vec![2, 0], 8);
        let both = m.forward_last(&batch, Some(&mut cache))?;
        let d = max_abs_diff(&both.narrow(0, 0, 1)?, &alone);
        assert!(d < 1e-4, "padded row differs by {d}");
        // And the next decode step too.
        let next = m.forward_last(
            &Tensor::new(&[[7u32], [7]], &Device::Cpu)?,
            Some(&mut cache),
        )?;
        let alone2 = m.forward_last(&Tensor::new(&[[4u32, 8, 15, 7]], &Device::Cpu)?, None)?;
        assert!(max_abs_diff(&next.narrow(0, 0, 1)?, &alone2) < 1e-4);
        Ok(())
    }

    #[test]
    fn a_shared_prefix_computed_once_gives_each_row_what_it_gets_alone() -> Result<()> {
        for kernels in [Kernels::Fused, Kernels::Composed] {
            let mut m = tiny_model(WeightFormat::Dense(DType::F32));
            m.set_kernels(kernels);
            let cfg = m.config().clone();
            let prefix = [3u32, 1, 4, 1, 5];
            let rows: [&[u32]; 3] = [&[9, 2], &[6, 5, 3, 5], &[8]];
            let mut pc = Cache::new(&cfg, 1, 8);
            m.forward_hidden(&Tensor::new(&[prefix], &Device::Cpu)?, Some(&mut pc))?;
            // Padding sits after the prefix: 2, 0 and 3 tokens.
            let pad = vec![2, 0, 3];
            let mut cache = Cache::from_shared_prefix(&pc, pad.clone(), 16)?;
            assert_eq!((cache.batch(), cache.len()), (3, prefix.len()));
            let mut flat = Vec::new();
            for (r, &p) in rows.iter().zip(&pad) {
                flat.extend(std::iter::repeat_n(0u32, p));
                flat.extend_from_slice(r);
            }
            let both = m.forward_last(
                &Tensor::from_vec(flat, (3, 4), &Device::Cpu)?,
                Some(&mut cache),
            )?;
            // Two decoding steps (the kernel for a few new tokens), the last after a row left.
            let step1 = m.forward_last(
                &Tensor::new(&[[7u32], [7], [7]], &Device::Cpu)?,
                Some(&mut cache),
            )?;
            cache.retain_rows(&[0, 2])?;
            let step2 = m.forward_last(
                &Tensor::new(&[[11u32], [11]], &Device::Cpu)?,
                Some(&mut cache),
            )?;
            for (i, r) in rows.iter().enumerate() {
                let mut ids: Vec<u32> = prefix.iter().chain(r.iter()).copied().collect();
                let alone = m.forward_last(
                    &Tensor::new(ids.as_slice(), &Device::Cpu)?.unsqueeze(0)?,
                    None,
                )?;
                let d = max_abs_diff(&both.narrow(0, i, 1)?, &alone);
                assert!(d < 1e-4, "{kernels:?} row {i} after the prefill: diff {d}");
                ids.push(7);
                let alone = m.forward_last(
                    &Tensor::new(ids.as_slice(), &Device::Cpu)?.unsqueeze(0)?,
                    None,
                )?;
                let d = max_abs_diff(&step1.narrow(0, i, 1)?, &alone);
                assert!(d < 1e-4, "{kernels:?} row {i} after one step: diff {d}");
                if let Some(k) = [0usize, 2].iter().position(|&k| k == i) {
                    ids.push(11);
                    let alone = m.forward_last(
                        &Tensor::new(ids.as_slice(), &Device::Cpu)?.unsqueeze(0)?,
                        None,
                    )?;
                    let d = max_abs_diff(&step2.narrow(0, k, 1)?, &alone);
                    assert!(d < 1e-4, "{kernels:?} row {i} after two steps: diff {d}");
                }
            }
            assert!(Cache::from_shared_prefix(&cache, vec![0], 4).is_err());
        }
        Ok(())
    }

    #[test]
    fn dropping_finished_rows_leaves_the_others_unchanged() -> Result<()> {
        for format in [WeightFormat::Dense(DType::F32), WeightFormat::Quantized] {
            let mut m = tiny_model(format);
            m.set_kernels(Kernels::Fused);
            let cfg = m.config().clone();
            // Row 0 is left-padded by one token; row 1 is the one that keeps going.
            let ids = Tensor::new(&[[0u32, 4, 9], [2, 6, 3]], &Device::Cpu)?;
            let mut cache = Cache::with_padding(&cfg, vec![1, 0], 8);
            m.forward_last(&ids, Some(&mut cache))?;
            cache.retain_rows(&[1])?;
            assert_eq!(cache.batch(), 1);
            let after = m.forward_last(&Tensor::new(&[[5u32]], &Device::Cpu)?, Some(&mut cache))?;

            let mut alone = Cache::new(&cfg, 1, 8);
            m.forward_last(
                &Tensor::new(&[[2u32, 6, 3]], &Device::Cpu)?,
                Some(&mut alone),
            )?;
            let want = m.forward_last(&Tensor::new(&[[5u32]], &Device::Cpu)?, Some(&mut alone))?;
            let diff = (after - want)?.abs()?.max_all()?.to_scalar::<f32>()?;
            assert!(diff < 1e-4, "{format:?}: logits differ by {diff}");
            assert!(cache.retain_rows(&[3]).is_err());
        }
        Ok(())
    }

    #[test]
    fn lora_gets_gradients_through_the_whole_network() -> Result<()> {
        let mut m = tiny_model(WeightFormat::Dense(DType::F32));
        let cfg = m.config().clone();
        let mut vars = Vec::new();
        for layer in 0..cfg.num_hidden_layers {
            for proj in Proj::ALL {
                let lin = m.linear_mut(layer, proj).expect("layer exists");
                let a = candle_core::Var::from_tensor(
                    &(Tensor::ones((2, lin.in_features()), DType::F32, &Device::Cpu)? * 0.01)?,
                )?;
                let b = candle_core::Var::from_tensor(
                    &(Tensor::ones((lin.out_features(), 2), DType::F32, &Device::Cpu)? * 0.01)?,
                )?;
                lin.set_lora(Some(Lora {
                    a: a.as_tensor().clone(),
                    b: b.as_tensor().clone(),
                    scale: 2.0,
                }))?;
                vars.push((layer, proj, a, b));
            }
        }
        let ids = Tensor::new(&[[1u32, 5, 7, 3]], &Device::Cpu)?;
        let logits = m.forward(&ids, None)?;
        let loss = candle_nn::loss::cross_entropy(
            &logits.squeeze(0)?,
            &Tensor::new(&[5u32, 7, 3, 9], &Device::Cpu)?,
        )?;
        let grads = loss.backward()?;
        for (layer, proj, a, b) in &vars {
            for (n, v) in [("a", a), ("b", b)] {
                let g = grads
                    .get(v.as_tensor())
                    .unwrap_or_else(|| panic!("no grad for {layer} {proj:?} {n}"));
                let norm = g.sqr()?.sum_all()?.to_scalar::<f32>()?;
                assert!(norm > 0.0, "zero grad for layer {layer} {proj:?} {n}");
            }
        }
        Ok(())
    }

    #[test]
    fn lora_changes_output_and_removing_it_restores_base() -> Result<()> {
        let mut m = tiny_model(WeightFormat::Dense(DType::F32));
        let ids = Tensor::new(&[[1u32, 2, 3]], &Device::Cpu)?;
        let base = m.forward(&ids, None)?;
        let lin = m.linear_mut(0, Proj::VProj).expect("layer 0");
        let a = Tensor::ones((1, lin.in_features()), DType::F32, &Device::Cpu)?;
        let b = Tensor::ones((lin.out_features(), 1), DType::F32, &Device::Cpu)?;
        lin.set_lora(Some(Lora { a, b, scale: 0.1 }))?;
        let adapted = m.forward(&ids, None)?;
        assert!(max_abs_diff(&base, &adapted) > 1e-3);
        m.linear_mut(0, Proj::VProj)
            .expect("layer 0")
            .set_lora(None)?;
        assert_eq!(max_abs_diff(&base, &m.forward(&ids, None)?), 0.0);
        Ok(())
    }

    #[test]
    fn lora_of_the_wrong_shape_is_rejected() {
        let mut m = tiny_model(WeightFormat::Dense(DType::F32));
        let lin = m.linear_mut(0, Proj::QProj).expect("layer 0");
        let a = Tensor::zeros((2, 3), DType::F32, &Device::Cpu).expect("alloc");
        let b = Tensor::zeros((4, 2), DType::F32, &Device::Cpu).expect("alloc");
        assert!(lin.set_lora(Some(Lora { a, b, scale: 1.0 })).is_err());
    }

    #[test]
    fn quantized_weights_stay_close_to_dense() -> Result<()> {
        let dense = tiny_model(WeightFormat::Dense(DType::F32));
        let q = tiny_model(WeightFormat::Quantized);
        assert_eq!(q.kernels(), Kernels::Fused);
        let ids = Tensor::new(&[[1u32, 5, 7, 3]], &Device::Cpu)?;
        let d = max_abs_diff(&dense.forward(&ids, None)?, &q.forward(&ids, None)?);
        assert!(d < 0.5, "Q8_0 drifted by {d}");
        Ok(())
    }

    #[test]
    fn config_rejects_bad_head_counts() {
        let mut c = tiny_config().to_wire(None, None, DType::F32);
        c.num_key_value_heads = Some(3);
        assert!(c.clone().into_config().is_err());
        c.num_key_value_heads = None;
        c.head_dim = None;
        c.num_attention_heads = 5;
        assert!(c.into_config().unwrap_err().contains("not a multiple"));
    }

    /// Llama 3 scaling that touches the tiny model (head size 16, theta 10000): wavelengths
    /// 6.3 (factor 1), 19.9 and 62.8 (in between), 199 and over (factor 8).
    fn tiny_llama3() -> RopeScaling {
        RopeScaling {
            factor: 8.0,
            low_freq_factor: 1.0,
            high_freq_factor: 4.0,
            original_max_position_embeddings: 64,
            rope_type: "llama3".into(),
        }
    }

    #[test]
    fn rope_freq_factors_divide_the_frequencies_as_llama3_scaling_does() -> Result<()> {
        let s = tiny_llama3();
        let plain = tiny_config();
        let factors = s.llama3_freq_factors(plain.head_dim, plain.rope_theta);
        assert_eq!(factors.len(), 8);
        assert_eq!((factors[0], factors[3]), (1.0, 8.0));
        assert!(factors[1] > 1.0 && factors[2] < 8.0, "{factors:?}");
        let from_gguf = plain
            .clone()
            .with_rope_freq_factors(factors.clone())
            .expect("valid factors");
        let from_hf = Config {
            rope_scaling: Some(s.clone()),
            ..plain.clone()
        };
        let (g, h, base) = (from_gguf.inv_freq(), from_hf.inv_freq(), plain.inv_freq());
        for i in 0..8 {
            assert_eq!(g[i], base[i] / factors[i], "pair {i}");
            assert!(
                (g[i] - h[i]).abs() <= 1e-6 * h[i],
                "pair {i}: {} vs {}",
                g[i],
                h[i]
            );
        }
        // The factors are recognised as the scaling they came from (config.json, model info).
        assert_eq!(from_gguf.rope_scaling.as_ref(), Some(&s));
        // The tensor wins over a rope_scaling that says otherwise.
        let both = Config {
            rope_scaling: Some(RopeScaling {
                factor: 2.0,
                ..s.clone()
            }),
            ..plain.clone()
        }
        .with_rope_freq_factors(factors)
        .expect("valid factors");
        assert_eq!(both.inv_freq(), g);

        // Same logits in every forward path, and not those of unscaled rope.
        let ids: Vec<u32> = (0..40u32).map(|i| (i * 7 + 3) % 32).collect();
        let ids = Tensor::new(ids.as_slice(), &Device::Cpu)?.unsqueeze(0)?;
        let load = |cfg: &Config, format| {
            let mut src = tiny_weights(cfg);
            Llama::load(&mut src, cfg.clone(), format, &Device::Cpu).expect("tiny model loads")
        };
        let unscaled = load(&plain, WeightFormat::Dense(DType::F32)).forward(&ids, None)?;
        for format in [WeightFormat::Dense(DType::F32), WeightFormat::Quantized] {
            let mut hf = load(&from_hf, format);
            let mut gguf = load(&from_gguf, format);
            for kernels in [Kernels::Composed, Kernels::Fused] {
                hf.set_kernels(kernels);
                gguf.set_kernels(kernels);
                let want = hf.forward(&ids, None)?;
                let got = gguf.forward(&ids, None)?;
                let d = max_abs_diff(&want, &got);
                assert!(d < 1e-4, "{format:?} {kernels:?}: diff {d}");
                if format == WeightFormat::Dense(DType::F32) {
                    let d = max_abs_diff(&unscaled, &got);
                    assert!(
                        d > 1e-2,
                        "{kernels:?}: the factors changed logits by only {d}"
                    );
                }
                // Cached decoding of the last token.
                let mut cache = Cache::new(gguf.config(), 1, 8);
                gguf.forward(&ids.narrow(1, 0, 39)?, Some(&mut cache))?;
                let last = gguf.forward(&ids.narrow(1, 39, 1)?, Some(&mut cache))?;
                let d = max_abs_diff(&last, &want.narrow(1, 39, 1)?);
                assert!(d < 1e-4, "{format:?} {kernels:?} cached: diff {d}");
            }
        }
        Ok(())
    }

    #[test]
    fn rope_freq_factors_of_the_wrong_count_or_sign_are_rejected() {
        let err = tiny_config()
            .with_rope_freq_factors(vec![1.0; 3])
            .unwrap_err();
        assert!(
            err.contains("3 factors, expected 8 (head_dim 16 / 2)"),
            "{err}"
        );
        let mut f = vec![1.0; 8];
        f[5] = 0.0;
        let err = tiny_config().with_rope_freq_factors(f).unwrap_err();
        assert!(err.contains("rope_freqs.weight[5] is 0"), "{err}");
    }

    #[test]
    fn llama3_scaling_is_recovered_from_llama_3_factors() {
        // Llama 3.1 8B and 3.2 1B: head size 128 and 64, theta 500000. Head size 4 never
        // reaches the low-frequency band (factors 1 and 2.69): the scaling factor is a guess.
        for (head_dim, factor) in [(128, 8.0), (64, 32.0), (4, 8.0)] {
            let s = RopeScaling {
                factor,
                original_max_position_embeddings: 8192,
                ..tiny_llama3()
            };
            let f = s.llama3_freq_factors(head_dim, 500_000.0);
            assert_eq!(
                RopeScaling::llama3_from_freq_factors(&f, head_dim, 500_000.0),
                Some(s)
            );
        }
        let ones = vec![1.0; 8];
        assert_eq!(RopeScaling::llama3_from_freq_factors(&ones, 16, 1e4), None);
        let odd = [1.0, 3.0, 1.0, 8.0, 8.0, 8.0, 8.0, 8.0];
        assert_eq!(RopeScaling::llama3_from_freq_factors(&odd, 16, 1e4), None);
    }

    #[test]
    fn context_overflow_is_an_error() {
        let m = tiny_model(WeightFormat::Dense(DType::F32));
        let ids = Tensor::zeros((1, 65), DType::U32, &Device::Cpu).expect("alloc");
        assert!(m.forward(&ids, None).is_err());
    }

    #[test]
    fn fused_silu_times_up_is_candles_to_the_bit() {
        let dev = Device::Cpu;
        let mut g: Vec<f32> = (0..10_000)
            .map(|i| ((i as f32) * 0.37).sin() * 30.0)
            .collect();
        g.extend([
            0.0,
            -0.0,
            88.0,
            -88.0,
            1e-30,
            -1e30,
            f32::INFINITY,
            f32::NEG_INFINITY,
        ]);
        let n = g.len();
        let u: Vec<f32> = (0..n).map(|i| ((i as f32) * 0.11).cos() * 7.0).collect();
        let gate = Tensor::from_vec(g, (2, n / 2), &dev).unwrap();
        let up = Tensor::from_vec(u, (2, n / 2), &dev).unwrap();
        let fused = silu_times(&gate, &up).unwrap().expect("taken");
        let plain = (gate.silu().unwrap() * &up).unwrap();
        let bits = crate::quant_matmul::tests::f32_bits;
        assert!(bits(&fused) == bits(&plain));
        assert_eq!(fused.dims(), plain.dims());
        let f64s = gate.to_dtype(DType::F64).unwrap();
        assert!(silu_times(&f64s, &f64s).unwrap().is_none());
    }
}
