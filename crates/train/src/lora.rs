//! LoRA adapters: PEFT-style initialisation from the project's seeded RNG, attaching to a
//! [`Llama`], and saving/loading in PEFT's file layout (`adapter_model.safetensors` +
//! `adapter_config.json`) so that Python PEFT, mistral.rs and Ollama's converter can read them.

use std::collections::HashMap;
use std::path::Path;
use std::sync::{Arc, Mutex};

use candle_core::{DType, Device, Tensor, Var};
use serde::{Deserialize, Serialize};
use tierforge_data::rng::Rng;
use tierforge_model::llama::{Linear, LoraDropout, Weights};
use tierforge_model::{Config, Llama, Lora, Proj};

use crate::config::TrainConfig;
use crate::error::{Result, TrainError};
use crate::io::write_atomic;

/// File names of PEFT's adapter layout.
pub const ADAPTER_WEIGHTS: &str = "adapter_model.safetensors";
pub const ADAPTER_CONFIG: &str = "adapter_config.json";

/// The trainable pair of one adapted projection.
#[derive(Debug, Clone)]
pub struct LoraParam {
    pub layer: usize,
    pub proj: Proj,
    /// `(rank, in_features)` f32.
    pub a: Var,
    /// `(out_features, rank)` f32.
    pub b: Var,
}

impl LoraParam {
    /// The weight update `scale · B·A`, `(out_features, in_features)` f32.
    pub fn delta(&self, scale: f64) -> Result<Tensor> {
        Ok(self
            .b
            .as_detached_tensor()
            .matmul(&self.a.as_detached_tensor())?
            .affine(scale, 0.)?)
    }

    /// PEFT's module path, `base_model.model.model.layers.{i}.self_attn.q_proj`.
    pub fn peft_path(&self) -> String {
        format!("base_model.model.{}", self.proj.path(self.layer))
    }
}

/// Rank, scaling and target modules of an adapter: what `adapter_config.json` records.
#[derive(Debug, Clone, PartialEq)]
pub struct LoraShape {
    pub rank: usize,
    pub alpha: f64,
    pub dropout: f64,
    pub rslora: bool,
    pub targets: Vec<Proj>,
}

impl LoraShape {
    pub fn from_config(c: &TrainConfig) -> Self {
        let mut targets: Vec<Proj> = Proj::ALL
            .into_iter()
            .filter(|p| c.target_modules.contains(p))
            .collect();
        targets.dedup();
        Self {
            rank: c.lora_rank,
            alpha: c.lora_alpha,
            dropout: c.lora_dropout,
            rslora: c.use_rslora,
            targets,
        }
    }

    pub fn scale(&self) -> f64 {
        if self.rslora {
            self.alpha / (self.rank as f64).sqrt()
        } else {
            self.alpha / self.rank as f64
        }
    }
}

/// A LoRA adapter over every targeted projection of every layer.
#[derive(Debug, Clone)]
pub struct Adapter {
    pub shape: LoraShape,
    /// Ordered by layer, then by [`Proj::ALL`] order.
    pub params: Vec<LoraParam>,
}

/// PEFT's `adapter_config.json` (the fields tierforge writes and reads).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct PeftConfig {
    pub peft_type: String,
    pub task_type: String,
    pub r: usize,
    pub lora_alpha: f64,
    #[serde(default)]
    pub lora_dropout: f64,
    pub target_modules: Vec<String>,
    #[serde(default)]
    pub use_rslora: bool,
    #[serde(default = "none_str")]
    pub bias: String,
    #[serde(default)]
    pub base_model_name_or_path: Option<String>,
    #[serde(default)]
    pub fan_in_fan_out: bool,
    #[serde(default)]
    pub inference_mode: bool,
    #[serde(default)]
    pub use_dora: bool,
    #[serde(default)]
    pub modules_to_save: Option<Vec<String>>,
}

fn none_str() -> String {
    "none".into()
}

impl Adapter {
    /// A fresh adapter for `llama`: A from Kaiming-uniform with `a = sqrt(5)` (bound
    /// `1/sqrt(in_features)`, PEFT's default) drawn from `rng`, B zeros, so the adapted model
    /// starts equal to the base.
    pub fn init(llama: &Llama, shape: LoraShape, rng: &mut Rng, device: &Device) -> Result<Self> {
        let mut params = Vec::new();
        for layer in 0..llama.num_layers() {
            for &proj in &shape.targets {
                let lin = llama.linear(layer, proj).ok_or_else(|| {
                    TrainError::config(
                        "lora",
                        format!("the model has no {} in layer {layer}", proj.name()),
                    )
                })?;
                let (inf, outf) = (lin.in_features(), lin.out_features());
                let bound = 1.0 / (inf as f64).sqrt();
                let a: Vec<f32> = (0..shape.rank * inf)
                    .map(|_| ((2.0 * rng.next_f64() - 1.0) * bound) as f32)
                    .collect();
                let a = Var::from_tensor(&Tensor::from_vec(a, (shape.rank, inf), device)?)?;
                let b = Var::zeros((outf, shape.rank), DType::F32, device)?;
                params.push(LoraParam { layer, proj, a, b });
            }
        }
        Ok(Self { shape, params })
    }

    /// All trainable tensors, `a` then `b` of each param: the optimizer's order.
    pub fn vars(&self) -> Vec<&Var> {
        self.params.iter().flat_map(|p| [&p.a, &p.b]).collect()
    }

    /// PEFT tensor names in [`Adapter::vars`] order.
    pub fn names(&self) -> Vec<String> {
        self.params
            .iter()
            .flat_map(|p| {
                let base = p.peft_path();
                [
                    format!("{base}.lora_A.weight"),
                    format!("{base}.lora_B.weight"),
                ]
            })
            .collect()
    }

    /// Number of trainable scalars.
    pub fn num_parameters(&self) -> usize {
        self.vars().iter().map(|v| v.elem_count()).sum()
    }

    /// Attach to `llama` for training: gradients flow into the `Var`s, and dropout (when the
    /// shape has any) draws its masks from `dropout_rng`.
    pub fn attach(&self, llama: &mut Llama, dropout_rng: Option<Arc<Mutex<Rng>>>) -> Result<()> {
        let p = self.shape.dropout;
        let dropout = match dropout_rng {
            Some(rng) if p > 0.0 => Some(LoraDropout(Arc::new(
                move |shape: &candle_core::Shape, dtype: DType, dev: &Device| {
                    let n = shape.elem_count();
                    let keep = (1.0 / (1.0 - p)) as f32;
                    // A poisoned lock means another forward panicked; the mask is still valid.
                    let mut r = rng.lock().unwrap_or_else(|e| e.into_inner());
                    let m: Vec<f32> = (0..n)
                        .map(|_| if r.next_f64() < p { 0.0 } else { keep })
                        .collect();
                    Tensor::from_vec(m, shape.clone(), dev)?.to_dtype(dtype)
                },
            ))),
            _ => None,
        };
        self.set(llama, false, dropout)
    }

    /// Attach constant copies (no graph, no dropout): evaluation and inference.
    pub fn attach_frozen(&self, llama: &mut Llama) -> Result<()> {
        self.set(llama, true, None)
    }

    fn set(&self, llama: &mut Llama, detach: bool, dropout: Option<LoraDropout>) -> Result<()> {
        let scale = self.shape.scale();
        for p in &self.params {
            let lin = llama.linear_mut(p.layer, p.proj).ok_or_else(|| {
                TrainError::config("lora", format!("the model has no layer {}", p.layer))
            })?;
            let (a, b) = if detach {
                (p.a.as_detached_tensor(), p.b.as_detached_tensor())
            } else {
                (p.a.as_tensor().clone(), p.b.as_tensor().clone())
            };
            lin.set_lora(Some(Lora { a, b, scale }))?;
            lin.set_lora_dropout(dropout.clone());
        }
        Ok(())
    }

    /// Fold the adapter into `llama`'s weights: `W' = W + scale · B·A` for every adapted
    /// projection, so the model runs at base speed with the adapter's behaviour. Dense weights
    /// keep their dtype (the sum is formed in f32); quantized weights are dequantized and
    /// become dense f32. The merged layers carry no LoRA afterwards: do not also attach this
    /// adapter, or it is applied twice. Fails (leaving earlier layers merged) if a projection is
    /// missing or its shape does not fit.
    pub fn merge_into(&self, llama: &mut Llama) -> Result<()> {
        let scale = self.shape.scale();
        for p in &self.params {
            let lin = llama.linear_mut(p.layer, p.proj).ok_or_else(|| {
                TrainError::config(
                    "lora",
                    format!("the model has no {} in layer {}", p.proj.name(), p.layer),
                )
            })?;
            let (outf, inf) = (lin.out_features(), lin.in_features());
            let delta = p.delta(scale)?;
            if delta.dims() != [outf, inf] {
                return Err(TrainError::config(
                    "lora",
                    format!(
                        "{} of layer {}: adapter gives {:?}, the model has ({outf}, {inf})",
                        p.proj.name(),
                        p.layer,
                        delta.dims()
                    ),
                ));
            }
            let dtype = match lin.weights() {
                Weights::Dense(w) => w.dtype(),
                Weights::Quantized(_) => DType::F32,
            };
            let w = lin.dense_weight()?;
            let delta = delta.to_device(w.device())?;
            let merged = (w + delta)?.to_dtype(dtype)?;
            *lin = Linear::new(Weights::Dense(merged))?;
        }
        Ok(())
    }

    /// Remove every adapter from `llama`.
    pub fn detach_all(llama: &mut Llama) -> Result<()> {
        for layer in 0..llama.num_layers() {
            for proj in Proj::ALL {
                if let Some(lin) = llama.linear_mut(layer, proj) {
                    lin.set_lora(None)?;
                    lin.set_lora_dropout(None);
                }
            }
        }
        Ok(())
    }

    /// The adapter's tensors by PEFT name.
    pub fn tensors(&self) -> HashMap<String, Tensor> {
        self.names()
            .into_iter()
            .zip(self.vars().into_iter().map(|v| v.as_detached_tensor()))
            .collect()
    }

    /// PEFT's `adapter_config.json` for this adapter.
    pub fn peft_config(&self, base_model: &str) -> PeftConfig {
        PeftConfig {
            peft_type: "LORA".into(),
            task_type: "CAUSAL_LM".into(),
            r: self.shape.rank,
            lora_alpha: self.shape.alpha,
            lora_dropout: self.shape.dropout,
            target_modules: self
                .shape
                .targets
                .iter()
                .map(|p| p.name().to_string())
                .collect(),
            use_rslora: self.shape.rslora,
            bias: "none".into(),
            base_model_name_or_path: Some(base_model.to_string()),
            fan_in_fan_out: false,
            inference_mode: true,
            use_dora: false,
            modules_to_save: None,
        }
    }

    /// Write `adapter_model.safetensors` and `adapter_config.json` into `dir` (atomically each).
    pub fn save(&self, dir: &Path, base_model: &str) -> Result<()> {
        std::fs::create_dir_all(dir).map_err(|e| TrainError::io(dir, e))?;
        save_safetensors(&self.tensors(), &dir.join(ADAPTER_WEIGHTS))?;
        let cfg = serde_json::to_string_pretty(&self.peft_config(base_model))
            .map_err(|e| TrainError::checkpoint(dir, e.to_string()))?;
        write_atomic(&dir.join(ADAPTER_CONFIG), cfg.as_bytes())
    }

    /// Load a PEFT adapter folder for `llama` as trainable `Var`s. Rejects adapters with
    /// options tierforge does not implement (DoRA, bias, modules_to_save) and tensors whose
    /// shapes do not fit the model.
    pub fn load(dir: &Path, llama: &Llama, device: &Device) -> Result<Self> {
        Self::load_for(dir, llama.config(), device)
    }

    /// [`Adapter::load`] for a model of config `config`, without the model itself (an exporter
    /// that streams the base weights from their file).
    pub fn load_for(dir: &Path, config: &Config, device: &Device) -> Result<Self> {
        let cfg_path = dir.join(ADAPTER_CONFIG);
        let text = std::fs::read_to_string(&cfg_path).map_err(|e| TrainError::io(&cfg_path, e))?;
        let cfg: PeftConfig = serde_json::from_str(&text).map_err(|e| {
            TrainError::checkpoint(&cfg_path, format!("not a PEFT adapter config: {e}"))
        })?;
        if cfg.peft_type != "LORA" {
            return Err(TrainError::checkpoint(
                &cfg_path,
                format!("peft_type {:?} is not LORA", cfg.peft_type),
            ));
        }
        if cfg.use_dora
            || cfg.bias != "none"
            || cfg.modules_to_save.as_ref().is_some_and(|m| !m.is_empty())
        {
            return Err(TrainError::checkpoint(
                &cfg_path,
                "DoRA, LoRA bias and modules_to_save are not supported",
            ));
        }
        let mut targets = Vec::new();
        for name in &cfg.target_modules {
            let p = Proj::ALL
                .into_iter()
                .find(|p| p.name() == name)
                .ok_or_else(|| {
                    TrainError::checkpoint(&cfg_path, format!("unsupported target module {name:?}"))
                })?;
            targets.push(p);
        }
        let shape = LoraShape {
            rank: cfg.r,
            alpha: cfg.lora_alpha,
            dropout: cfg.lora_dropout,
            rslora: cfg.use_rslora,
            targets: Proj::ALL
                .into_iter()
                .filter(|p| targets.contains(p))
                .collect(),
        };
        let wpath = dir.join(ADAPTER_WEIGHTS);
        let tensors = load_safetensors(&wpath, device)?;
        let get = |name: &str, want: (usize, usize)| -> Result<Var> {
            let t = tensors
                .get(name)
                .or_else(|| tensors.get(&name.replace(".weight", ".default.weight")))
                .ok_or_else(|| TrainError::checkpoint(&wpath, format!("missing tensor {name}")))?;
            if t.dims() != [want.0, want.1] {
                return Err(TrainError::checkpoint(
                    &wpath,
                    format!(
                        "tensor {name} has shape {:?}, the model needs {want:?}",
                        t.dims()
                    ),
                ));
            }
            Ok(Var::from_tensor(&t.to_dtype(DType::F32)?)?)
        };
        let mut params = Vec::new();
        for layer in 0..config.num_hidden_layers {
            for &proj in &shape.targets {
                let (in_features, out_features) = proj.shape(config);
                let base = format!("base_model.model.{}", proj.path(layer));
                let a = get(&format!("{base}.lora_A.weight"), (shape.rank, in_features))?;
                let b = get(&format!("{base}.lora_B.weight"), (out_features, shape.rank))?;
                params.push(LoraParam { layer, proj, a, b });
            }
        }
        let expected = params.len() * 2;
        if tensors.len() != expected {
            return Err(TrainError::checkpoint(
                &wpath,
                format!(
                    "holds {} tensors, a {}-layer model with these targets needs {expected} \
                     (is it an adapter for another model?)",
                    tensors.len(),
                    config.num_hidden_layers
                ),
            ));
        }
        Ok(Self { shape, params })
    }
}

/// Save named tensors as safetensors, atomically.
pub(crate) fn save_safetensors(tensors: &HashMap<String, Tensor>, path: &Path) -> Result<()> {
    let dir = path.parent().unwrap_or(Path::new("."));
    let tmp = tempfile::Builder::new()
        .prefix(".tmp-")
        .suffix(".safetensors")
        .tempfile_in(dir)
        .map_err(|e| TrainError::io(dir, e))?;
    candle_core::safetensors::save(tensors, tmp.path())?;
    tmp.persist(path)
        .map_err(|e| TrainError::io(path, e.error))?;
    Ok(())
}

/// Load every tensor of a safetensors file.
pub(crate) fn load_safetensors(path: &Path, device: &Device) -> Result<HashMap<String, Tensor>> {
    if !path.is_file() {
        return Err(TrainError::checkpoint(path, "no such file"));
    }
    candle_core::safetensors::load(path, device)
        .map_err(|e| TrainError::checkpoint(path, format!("not a readable safetensors file: {e}")))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::trainer::tests::tiny_llama;

    /// A fresh adapter whose B is random too, so it changes the model.
    fn random_adapter(llama: &Llama, rslora: bool) -> Adapter {
        let shape = LoraShape {
            rank: 4,
            alpha: 8.0,
            dropout: 0.0,
            rslora,
            targets: Proj::ALL.to_vec(),
        };
        let mut rng = Rng::new(7);
        let ad = Adapter::init(llama, shape, &mut rng, &Device::Cpu).expect("init");
        for p in &ad.params {
            let n = p.b.elem_count();
            let v: Vec<f32> = (0..n).map(|_| (rng.next_f64() - 0.5) as f32).collect();
            let t = Tensor::from_vec(v, p.b.dims(), &Device::Cpu).expect("shape");
            p.b.set(&t).expect("set b");
        }
        ad
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
    fn merged_logits_equal_attached_lora_logits() {
        for rslora in [false, true] {
            let base = tiny_llama(DType::F32);
            let ad = random_adapter(&base, rslora);
            let ids = Tensor::new(&[[1u32, 5, 7, 3, 9, 30]], &Device::Cpu).expect("ids");
            let plain = base.forward(&ids, None).expect("base forward");

            let mut attached = base.clone();
            ad.attach_frozen(&mut attached).expect("attach");
            let want = attached.forward(&ids, None).expect("attached forward");

            let mut merged = base.clone();
            ad.merge_into(&mut merged).expect("merge");
            assert!(merged.linear(0, Proj::QProj).expect("q").lora().is_none());
            let got = merged.forward(&ids, None).expect("merged forward");

            assert!(
                max_abs_diff(&plain, &want) > 1e-2,
                "the adapter must change the logits"
            );
            let d = max_abs_diff(&got, &want);
            assert!(
                d < 1e-4,
                "merged vs attached differ by {d} (rslora {rslora})"
            );
        }
    }

    #[test]
    fn merge_rejects_an_adapter_for_another_shape() {
        let base = tiny_llama(DType::F32);
        let mut ad = random_adapter(&base, false);
        let wrong = Tensor::zeros((3, 4), DType::F32, &Device::Cpu).expect("zeros");
        ad.params[0].b = Var::from_tensor(&wrong).expect("var");
        let mut m = base.clone();
        let err = ad
            .merge_into(&mut m)
            .expect_err("shape mismatch")
            .to_string();
        assert!(err.contains("q_proj") && err.contains("layer 0"), "{err}");
    }
}
