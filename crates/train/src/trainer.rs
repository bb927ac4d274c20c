//! The training loop: micro-batches with gradient accumulation, global-norm clipping, AdamW,
//! evaluation with early stopping, and checkpoints that resume exactly.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Instant;

use candle_core::{DType, Device, Tensor, Var, D};
use serde::{Deserialize, Serialize};
use tierforge_data::rng::{mix64, Rng};
use tierforge_model::{Config, Kernels, Llama};

use crate::config::TrainConfig;
use crate::error::{Result, TrainError};
use crate::io::{replace_dir, staging_dir, write_atomic};
use crate::lora::{load_safetensors, save_safetensors, Adapter, LoraShape};
use crate::metrics::{loss_svg, to_jsonl, StepMetrics};
use crate::optim::{clip, global_norm, learning_rate, AdamW, AdamWParams};
use crate::tokens::{epoch_batches, Example};

/// Files of a checkpoint folder besides the PEFT adapter.
pub const OPTIMIZER_FILE: &str = "optimizer.safetensors";
pub const STATE_FILE: &str = "trainer_state.json";
pub const CONFIG_FILE: &str = "train_config.toml";

/// What identifies the base model, so that a checkpoint is never resumed on another one.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ModelFingerprint {
    /// File or folder name of the checkpoint the model was read from.
    pub name: String,
    pub parameters: u64,
    pub vocab_size: usize,
    pub layers: usize,
    pub hidden_size: usize,
    pub intermediate_size: usize,
    pub attention_heads: usize,
    pub kv_heads: usize,
}

impl ModelFingerprint {
    pub fn new(name: impl Into<String>, c: &Config) -> Self {
        Self {
            name: name.into(),
            parameters: c.parameter_count(),
            vocab_size: c.vocab_size,
            layers: c.num_hidden_layers,
            hidden_size: c.hidden_size,
            intermediate_size: c.intermediate_size,
            attention_heads: c.num_attention_heads,
            kv_heads: c.num_key_value_heads,
        }
    }

    /// `field: ours vs theirs` for every differing field.
    pub fn differences(&self, other: &Self) -> Vec<String> {
        let (Ok(serde_json::Value::Object(a)), Ok(serde_json::Value::Object(b))) =
            (serde_json::to_value(self), serde_json::to_value(other))
        else {
            return vec!["(model not comparable)".into()];
        };
        a.iter()
            .filter_map(|(k, v)| {
                let w = b.get(k).cloned().unwrap_or_default();
                (*v != w).then(|| format!("model {k}: {v} (this run) vs {w} (checkpoint)"))
            })
            .collect()
    }
}

/// Callbacks from the training loop; the CLI draws progress bars with them.
pub trait TrainReporter {
    /// Before the first step: `start_step` steps are already done (resume), of `total_steps`.
    fn on_start(&mut self, _start_step: usize, _total_steps: usize) {}
    /// After each optimizer step (with eval fields set when it evaluated).
    fn on_step(&mut self, _metrics: &StepMetrics) {}
    /// A checkpoint was written.
    fn on_checkpoint(&mut self, _dir: &Path, _step: usize) {}
    /// A note for the user (early stopping, ...).
    fn on_message(&mut self, _msg: &str) {}
}

/// A reporter that ignores everything.
pub struct NoReporter;
impl TrainReporter for NoReporter {}

/// Everything the loop needs: the model (its LoRA slots are used), tokenized data, config.
pub struct TrainJob<'a> {
    pub llama: &'a mut Llama,
    pub model: ModelFingerprint,
    /// Written to `adapter_config.json` as `base_model_name_or_path`.
    pub base_model: String,
    pub train: Vec<Example>,
    pub val: Vec<Example>,
    pub config: TrainConfig,
    pub out: PathBuf,
    /// A checkpoint folder (or an output folder holding `last/`) to continue from.
    pub resume: Option<PathBuf>,
    /// A PEFT adapter folder to start from instead of a fresh initialisation.
    pub init_adapter: Option<PathBuf>,
    /// Token id used to pad batches (never a target).
    pub pad_id: u32,
    /// Stop (with a checkpoint) after this many steps of this invocation, as if interrupted.
    pub stop_after: Option<usize>,
}

/// The state saved next to the adapter and optimizer in each checkpoint.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct TrainerState {
    /// Optimizer steps done.
    pub step: usize,
    pub total_steps: usize,
    pub epoch: f64,
    /// The dropout RNG, positioned after the last step.
    pub dropout_rng: Rng,
    pub best_eval_loss: Option<f64>,
    pub best_step: Option<usize>,
    pub evals_since_best: usize,
    pub elapsed_s: f64,
    pub model: ModelFingerprint,
    pub config: TrainConfig,
    pub metrics: Vec<StepMetrics>,
}

/// The result of a run.
#[derive(Debug, Clone, Serialize)]
pub struct TrainSummary {
    pub steps: usize,
    pub total_steps: usize,
    pub epochs: f64,
    pub resumed_from_step: Option<usize>,
    pub first_loss: Option<f64>,
    pub final_loss: Option<f64>,
    pub final_token_accuracy: Option<f64>,
    pub best_eval_loss: Option<f64>,
    pub best_step: Option<usize>,
    pub stopped_early: bool,
    /// Stopped by `stop_after` before the planned end.
    pub interrupted: bool,
    pub trainable_parameters: usize,
    pub train_examples: usize,
    pub val_examples: usize,
    /// Mean over this invocation's steps, padding excluded.
    pub tokens_per_s: f64,
    pub elapsed_s: f64,
    pub out: PathBuf,
    pub last_checkpoint: Option<PathBuf>,
    pub best_checkpoint: Option<PathBuf>,
    /// The adapter to use: `best/` when a validation set chose one, else `last/`.
    pub adapter: Option<PathBuf>,
}

/// Sums of one forward pass over a batch.
struct BatchOut {
    /// Summed cross-entropy over the batch's targets, still in the graph.
    nll_sum: Tensor,
    correct: usize,
    targets: usize,
    tokens: usize,
}

/// Forward `batch`, returning the summed next-token cross-entropy over supervised targets.
/// Hidden states are gathered to the target positions before the LM head, so logits are
/// `(targets, vocab)` instead of `(batch·seq, vocab)`.
fn forward_batch(llama: &Llama, batch: &[&Example], pad_id: u32) -> Result<BatchOut> {
    let dev = llama.device().clone();
    let t = batch.iter().map(|e| e.ids.len()).max().unwrap_or(0);
    let b = batch.len();
    let mut ids = Vec::with_capacity(b * t);
    let mut pos = Vec::new();
    let mut tgt = Vec::new();
    let mut tokens = 0;
    for (r, e) in batch.iter().enumerate() {
        tokens += e.ids.len();
        ids.extend_from_slice(&e.ids);
        ids.extend(std::iter::repeat_n(pad_id, t - e.ids.len()));
        for i in 0..e.ids.len().saturating_sub(1) {
            if e.supervised[i + 1] {
                pos.push((r * t + i) as u32);
                tgt.push(e.ids[i + 1]);
            }
        }
    }
    let n = pos.len();
    if n == 0 {
        return Ok(BatchOut {
            nll_sum: Tensor::zeros((), DType::F32, &dev)?,
            correct: 0,
            targets: 0,
            tokens,
        });
    }
    let ids = Tensor::from_vec(ids, (b, t), &dev)?;
    let hidden = llama.forward_hidden(&ids, None)?;
    let h = hidden
        .reshape((b * t, ()))?
        .index_select(&Tensor::from_vec(pos, n, &dev)?, 0)?;
    // The LM head in the activations' dtype; half precisions are lifted to f32 for the loss,
    // f64 (gradient checks) stays f64.
    let logits = llama.lm_head().forward(&h)?;
    let logits = match logits.dtype() {
        DType::F64 | DType::F32 => logits,
        _ => logits.to_dtype(DType::F32)?,
    };
    let nll_sum = if tierforge_model::fused_grad::supported(&logits) {
        tierforge_model::fused_grad::cross_entropy(&logits, &tgt)?.sum_all()?
    } else {
        // log-softmax from primitive ops; the max is a constant shift (same gradient, smaller
        // graph).
        let targets = Tensor::from_vec(tgt.clone(), (n, 1), &dev)?;
        let max = logits.max_keepdim(D::Minus1)?.detach();
        let shifted = logits.broadcast_sub(&max)?;
        let lse = shifted.exp()?.sum_keepdim(D::Minus1)?.log()?;
        let picked = shifted.gather(&targets, D::Minus1)?;
        (lse - picked)?.sum_all()?
    };
    let pred = logits.detach().argmax(D::Minus1)?.to_vec1::<u32>()?;
    let correct = pred.iter().zip(&tgt).filter(|(p, t)| p == t).count();
    Ok(BatchOut {
        nll_sum,
        correct,
        targets: n,
        tokens,
    })
}

/// One batch's mean loss (cross-entropy per supervised token) and the gradient of every adapter
/// tensor, by PEFT tensor name, with `adapter` attached (trainable) to `llama`: the numbers of
/// one training step before the optimizer, for checks against other implementations.
pub fn loss_and_gradients(
    llama: &Llama,
    adapter: &Adapter,
    examples: &[&Example],
    pad_id: u32,
) -> Result<(f64, HashMap<String, Tensor>)> {
    let out = forward_batch(llama, examples, pad_id)?;
    let loss = (out.nll_sum / out.targets.max(1) as f64)?;
    let g = loss.backward()?;
    let mut grads = HashMap::new();
    for (name, v) in adapter.names().into_iter().zip(adapter.vars()) {
        if let Some(t) = g.get(v.as_tensor()) {
            grads.insert(name, t.clone());
        }
    }
    Ok((loss.to_dtype(DType::F64)?.to_scalar::<f64>()?, grads))
}

/// Loss (mean cross-entropy per target) and token accuracy over `examples`, without gradients.
pub fn evaluate(
    llama: &mut Llama,
    adapter: Option<&Adapter>,
    examples: &[Example],
    batch_size: usize,
    pad_id: u32,
) -> Result<(f64, f64)> {
    let kernels = llama.kernels();
    if let Some(a) = adapter {
        a.attach_frozen(llama)?;
    }
    llama.set_kernels(Kernels::Fused);
    let mut order: Vec<&Example> = examples.iter().collect();
    order.sort_by_key(|e| e.ids.len());
    let (mut nll, mut correct, mut n) = (0f64, 0usize, 0usize);
    let res = (|| -> Result<()> {
        for chunk in order.chunks(batch_size.max(1)) {
            let out = forward_batch(llama, chunk, pad_id)?;
            nll += out.nll_sum.to_dtype(DType::F64)?.to_scalar::<f64>()?;
            correct += out.correct;
            n += out.targets;
        }
        Ok(())
    })();
    llama.set_kernels(kernels);
    res?;
    Ok((nll / n.max(1) as f64, correct as f64 / n.max(1) as f64))
}

fn read_state(dir: &Path) -> Result<TrainerState> {
    let p = dir.join(STATE_FILE);
    let text = std::fs::read_to_string(&p).map_err(|e| TrainError::io(&p, e))?;
    serde_json::from_str(&text)
        .map_err(|e| TrainError::checkpoint(&p, format!("not a tierforge trainer state: {e}")))
}

/// Resolve `--resume DIR`: a checkpoint folder, or an output folder holding `last/`.
pub fn checkpoint_dir(dir: &Path) -> Result<PathBuf> {
    if dir.join(STATE_FILE).is_file() {
        Ok(dir.to_path_buf())
    } else if dir.join("last").join(STATE_FILE).is_file() {
        Ok(dir.join("last"))
    } else {
        Err(TrainError::checkpoint(
            dir,
            format!("not a checkpoint: no {STATE_FILE} here or in last/"),
        ))
    }
}

struct Run<'a> {
    job: TrainJob<'a>,
    adapter: Adapter,
    opt: AdamW,
    state: TrainerState,
    dropout: Arc<Mutex<Rng>>,
}

impl Run<'_> {
    fn save_checkpoint(&self, target: &Path) -> Result<()> {
        let staged = staging_dir(target)?;
        let res = (|| -> Result<()> {
            self.adapter.save(&staged, &self.job.base_model)?;
            save_safetensors(
                &self.opt.state_tensors(&self.adapter.names()),
                &staged.join(OPTIMIZER_FILE),
            )?;
            let mut state = self.state.clone();
            state.dropout_rng = self
                .dropout
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .clone();
            let json = serde_json::to_string_pretty(&state)
                .map_err(|e| TrainError::checkpoint(&staged, e.to_string()))?;
            write_atomic(&staged.join(STATE_FILE), json.as_bytes())?;
            let toml = toml::to_string(&self.job.config)
                .map_err(|e| TrainError::checkpoint(&staged, e.to_string()))?;
            write_atomic(&staged.join(CONFIG_FILE), toml.as_bytes())?;
            Ok(())
        })();
        if let Err(e) = res {
            let _ = std::fs::remove_dir_all(&staged);
            return Err(e);
        }
        replace_dir(&staged, target)
    }

    fn write_reports(&self) -> Result<()> {
        let out = &self.job.out;
        write_atomic(
            &out.join("metrics.jsonl"),
            to_jsonl(&self.state.metrics).as_bytes(),
        )?;
        let title = format!(
            "{}: LoRA r{} on {}",
            out.display(),
            self.job.config.lora_rank,
            self.job.model.name
        );
        write_atomic(
            &out.join("loss.svg"),
            loss_svg(&self.state.metrics, &title).as_bytes(),
        )
    }
}

/// Run (or resume) a training job. Writes `last/`, `best/` (with a validation set),
/// `metrics.jsonl`, `loss.svg` and `train_config.toml` under `job.out`.
pub fn run(job: TrainJob<'_>, reporter: &mut dyn TrainReporter) -> Result<TrainSummary> {
    let cfg = job.config.clone();
    cfg.validate("config")?;
    if job.train.is_empty() {
        return Err(TrainError::data("training data", "no samples to train on"));
    }
    let ctx = job.llama.config().max_position_embeddings;
    if let Some(e) = job.train.iter().chain(&job.val).find(|e| e.ids.len() > ctx) {
        return Err(TrainError::data(
            &e.id,
            format!(
                "{} tokens exceed the model's context length of {ctx}",
                e.ids.len()
            ),
        ));
    }
    let device: Device = job.llama.device().clone();
    let n = job.train.len();
    let batches_per_epoch = n.div_ceil(cfg.batch_size);
    let steps_per_epoch = batches_per_epoch.div_ceil(cfg.grad_accum_steps);
    let total = cfg.max_steps.unwrap_or(cfg.epochs * steps_per_epoch);
    let shape = LoraShape::from_config(&cfg);
    let adam = AdamWParams {
        beta1: cfg.adam_beta1,
        beta2: cfg.adam_beta2,
        eps: cfg.adam_epsilon,
        weight_decay: cfg.weight_decay,
    };

    let (adapter, opt, state, resumed) = if let Some(dir) = &job.resume {
        let dir = checkpoint_dir(dir)?;
        let state = read_state(&dir)?;
        let mut diffs = job.model.differences(&state.model);
        diffs.extend(cfg.differences(&state.config));
        if !diffs.is_empty() {
            return Err(TrainError::checkpoint(
                &dir,
                format!("cannot resume: the checkpoint was made with a different model or config:\n  {}", diffs.join("\n  ")),
            ));
        }
        let adapter = Adapter::load(&dir, job.llama, &device)?;
        let mut opt = AdamW::new(&adapter.vars(), adam)?;
        let ot = load_safetensors(&dir.join(OPTIMIZER_FILE), &device)?;
        opt.load_state(&adapter.names(), &ot, state.step, &dir.join(OPTIMIZER_FILE))?;
        let step = state.step;
        let state = TrainerState {
            total_steps: total,
            config: cfg.clone(),
            ..state
        };
        (adapter, opt, state, Some(step))
    } else {
        let adapter = match &job.init_adapter {
            Some(dir) => {
                let a = Adapter::load(dir, job.llama, &device)?;
                if a.shape.rank != shape.rank || a.shape.targets != shape.targets {
                    return Err(TrainError::checkpoint(
                        dir,
                        format!(
                            "the initial adapter has rank {} on {:?}; this config asks for rank {} on {:?} \
                             (set lora_rank and target_modules to match it)",
                            a.shape.rank,
                            a.shape.targets.iter().map(|p| p.name()).collect::<Vec<_>>(),
                            shape.rank,
                            shape.targets.iter().map(|p| p.name()).collect::<Vec<_>>()
                        ),
                    ));
                }
                Adapter {
                    shape: shape.clone(),
                    ..a
                }
            }
            None => Adapter::init(job.llama, shape.clone(), &mut Rng::new(cfg.seed), &device)?,
        };
        let opt = AdamW::new(&adapter.vars(), adam)?;
        let state = TrainerState {
            step: 0,
            total_steps: total,
            epoch: 0.0,
            dropout_rng: Rng::new(mix64(cfg.seed ^ 0x000D_8090_u64)),
            best_eval_loss: None,
            best_step: None,
            evals_since_best: 0,
            elapsed_s: 0.0,
            model: job.model.clone(),
            config: cfg.clone(),
            metrics: Vec::new(),
        };
        (adapter, opt, state, None)
    };

    std::fs::create_dir_all(&job.out).map_err(|e| TrainError::io(&job.out, e))?;
    let toml = toml::to_string(&cfg).map_err(|e| TrainError::config("config", e.to_string()))?;
    write_atomic(&job.out.join(CONFIG_FILE), toml.as_bytes())?;

    let dropout = Arc::new(Mutex::new(state.dropout_rng.clone()));
    adapter.attach(job.llama, Some(dropout.clone()))?;
    job.llama.set_kernels(Kernels::Composed);
    let mut run = Run {
        job,
        adapter,
        opt,
        state,
        dropout,
    };
    let result = train_loop(
        &mut run,
        total,
        steps_per_epoch,
        batches_per_epoch,
        resumed,
        reporter,
    );
    // Leave the model usable for inference with the trained adapter, whatever happened.
    let _ = run.adapter.attach_frozen(run.job.llama);
    result
}

fn train_loop(
    run: &mut Run<'_>,
    total: usize,
    steps_per_epoch: usize,
    batches_per_epoch: usize,
    resumed: Option<usize>,
    reporter: &mut dyn TrainReporter,
) -> Result<TrainSummary> {
    let cfg = run.job.config.clone();
    let out = run.job.out.clone();
    let last_dir = out.join("last");
    let best_dir = out.join("best");
    let lengths: Vec<usize> = run.job.train.iter().map(|e| e.ids.len()).collect();
    let mut epoch_cache: HashMap<usize, Vec<Vec<usize>>> = HashMap::new();
    let started = Instant::now();
    let elapsed0 = run.state.elapsed_s;
    let start_step = run.state.step;
    let mut tokens_done = 0usize;
    let mut stopped_early = false;
    let mut interrupted = false;
    let mut last_saved: Option<PathBuf> = resumed.map(|_| last_dir.clone()).filter(|p| p.exists());
    reporter.on_start(start_step, total);

    while run.state.step < total {
        if run
            .job
            .stop_after
            .is_some_and(|s| run.state.step - start_step >= s)
        {
            interrupted = true;
            break;
        }
        let step = run.state.step;
        let t0 = Instant::now();
        let epoch = step / steps_per_epoch;
        let group = step % steps_per_epoch;
        let batches = epoch_cache
            .entry(epoch)
            .or_insert_with(|| epoch_batches(&lengths, cfg.batch_size, cfg.seed, epoch));
        let lo = group * cfg.grad_accum_steps;
        let hi = ((group + 1) * cfg.grad_accum_steps).min(batches_per_epoch);
        let micro: Vec<Vec<usize>> = batches[lo..hi].to_vec();
        let group_targets: usize = micro
            .iter()
            .flatten()
            .map(|&i| run.job.train[i].num_targets())
            .sum();
        let vars: Vec<Var> = run.adapter.vars().into_iter().cloned().collect();
        let mut grads: Vec<Option<Tensor>> = vec![None; vars.len()];
        let (mut nll, mut correct, mut tokens) = (0f64, 0usize, 0usize);
        let (llama, train, pad_id) = (&*run.job.llama, &run.job.train, run.job.pad_id);
        // On rayon's pool, so the kernels' parallel loops never wait for this thread to wake.
        tierforge_model::pool::on_pool_for(llama.device(), || -> Result<()> {
            for mb in &micro {
                let exs: Vec<&Example> = mb.iter().map(|&i| &train[i]).collect();
                let out_b = forward_batch(llama, &exs, pad_id)?;
                nll += out_b.nll_sum.to_dtype(DType::F64)?.to_scalar::<f64>()?;
                correct += out_b.correct;
                tokens += out_b.tokens;
                if out_b.targets == 0 {
                    continue;
                }
                // Normalise by the whole step's targets so accumulation equals one big batch.
                let loss = (out_b.nll_sum / group_targets as f64)?;
                let g = loss.backward()?;
                for (slot, v) in grads.iter_mut().zip(&vars) {
                    let gv = g.get(v.as_tensor()).ok_or_else(|| {
                        TrainError::Candle(candle_core::Error::Msg(
                            "a LoRA parameter received no gradient: the forward pass is not \
                             differentiable (bug)"
                                .into(),
                        ))
                    })?;
                    *slot = Some(match slot.take() {
                        Some(acc) => (acc + gv)?,
                        None => gv.clone(),
                    });
                }
            }
            Ok(())
        })?;
        let loss = nll / group_targets.max(1) as f64;
        let mut grads: Vec<Tensor> = grads
            .into_iter()
            .zip(&vars)
            .map(|(g, v)| g.map_or_else(|| v.zeros_like(), Ok))
            .collect::<candle_core::Result<_>>()?;
        let norm = global_norm(&grads)?;
        if !loss.is_finite() || !norm.is_finite() {
            run.write_reports()?;
            return Err(TrainError::NonFiniteLoss {
                step: step + 1,
                loss: if loss.is_finite() { norm } else { loss },
                last_good: last_saved,
            });
        }
        clip(&mut grads, norm, cfg.max_grad_norm)?;
        let lr = learning_rate(
            cfg.lr_scheduler,
            cfg.learning_rate,
            cfg.warmup_steps,
            total,
            step,
        );
        let var_refs: Vec<&Var> = vars.iter().collect();
        run.opt.step(&var_refs, &grads, lr)?;
        run.state.step += 1;
        let step = run.state.step;
        let dt = t0.elapsed().as_secs_f64();
        tokens_done += tokens;
        run.state.epoch = (epoch * steps_per_epoch + group + 1) as f64 / steps_per_epoch as f64;
        run.state.elapsed_s = elapsed0 + started.elapsed().as_secs_f64();
        let mut m = StepMetrics {
            step,
            epoch: run.state.epoch,
            loss,
            mean_token_accuracy: correct as f64 / group_targets.max(1) as f64,
            lr,
            grad_norm: norm,
            tokens_per_s: tokens as f64 / dt.max(1e-9),
            elapsed_s: run.state.elapsed_s,
            eval_loss: None,
            eval_token_accuracy: None,
        };
        let finished = step == total;
        let mut improved = false;
        if !run.job.val.is_empty()
            && ((cfg.eval_every > 0 && step % cfg.eval_every == 0) || finished)
        {
            let (el, ea) = evaluate(
                run.job.llama,
                Some(&run.adapter),
                &run.job.val,
                cfg.batch_size,
                run.job.pad_id,
            )?;
            run.adapter
                .attach(run.job.llama, Some(run.dropout.clone()))?;
            m.eval_loss = Some(el);
            m.eval_token_accuracy = Some(ea);
            if run.state.best_eval_loss.is_none_or(|b| el < b) {
                run.state.best_eval_loss = Some(el);
                run.state.best_step = Some(step);
                run.state.evals_since_best = 0;
                improved = true;
            } else {
                run.state.evals_since_best += 1;
                if cfg
                    .early_stopping_patience
                    .is_some_and(|p| run.state.evals_since_best >= p)
                {
                    stopped_early = true;
                    reporter.on_message(&format!(
                        "early stopping at step {step}: no better eval loss in {} evaluations (best {:.4} at step {})",
                        run.state.evals_since_best,
                        run.state.best_eval_loss.unwrap_or(f64::NAN),
                        run.state.best_step.unwrap_or(0)
                    ));
                }
            }
        }
        run.state.metrics.push(m.clone());
        let stop_now = run.job.stop_after.is_some_and(|s| step - start_step >= s);
        if (cfg.save_every > 0 && step % cfg.save_every == 0)
            || finished
            || stopped_early
            || stop_now
        {
            run.save_checkpoint(&last_dir)?;
            last_saved = Some(last_dir.clone());
            reporter.on_checkpoint(&last_dir, step);
        }
        if improved {
            run.save_checkpoint(&best_dir)?;
            reporter.on_checkpoint(&best_dir, step);
        }
        run.write_reports()?;
        reporter.on_step(&m);
        if stopped_early {
            break;
        }
    }
    if interrupted && last_saved.is_none() {
        run.save_checkpoint(&last_dir)?;
        last_saved = Some(last_dir.clone());
    }
    let this_run = &run.state.metrics[start_step.min(run.state.metrics.len())..];
    let elapsed = started.elapsed().as_secs_f64();
    let best = best_dir.exists().then_some(best_dir);
    Ok(TrainSummary {
        steps: run.state.step,
        total_steps: total,
        epochs: run.state.epoch,
        resumed_from_step: resumed,
        first_loss: run.state.metrics.first().map(|m| m.loss),
        final_loss: run.state.metrics.last().map(|m| m.loss),
        final_token_accuracy: run.state.metrics.last().map(|m| m.mean_token_accuracy),
        best_eval_loss: run.state.best_eval_loss,
        best_step: run.state.best_step,
        stopped_early,
        interrupted,
        trainable_parameters: run.adapter.num_parameters(),
        train_examples: run.job.train.len(),
        val_examples: run.job.val.len(),
        tokens_per_s: if this_run.is_empty() {
            0.0
        } else {
            tokens_done as f64 / elapsed.max(1e-9)
        },
        elapsed_s: run.state.elapsed_s,
        out,
        adapter: best.clone().or_else(|| last_saved.clone()),
        last_checkpoint: last_saved,
        best_checkpoint: best,
    })
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use std::sync::Arc;
    use tierforge_model::llama::{WeightSource, Weights};
    use tierforge_model::{LlamaConfig, WeightFormat};

    /// In-memory weights for a tiny llama.
    struct MapSource(HashMap<String, Tensor>);

    impl WeightSource for MapSource {
        fn contains(&self, name: &str) -> bool {
            self.0.contains_key(name)
        }
        fn tensor(
            &mut self,
            name: &str,
            dtype: DType,
            _: &Device,
        ) -> tierforge_model::Result<Tensor> {
            Ok(self.0[name].to_dtype(dtype)?)
        }
        fn linear(
            &mut self,
            name: &str,
            format: WeightFormat,
            dev: &Device,
        ) -> tierforge_model::Result<Weights> {
            let dtype = match format {
                WeightFormat::Dense(d) => d,
                WeightFormat::Quantized => DType::F32,
            };
            Ok(Weights::Dense(self.tensor(name, dtype, dev)?))
        }
        fn origin(&self) -> String {
            "memory".into()
        }
    }

    pub(crate) fn tiny_config() -> Config {
        LlamaConfig {
            architectures: vec![],
            model_type: "llama".into(),
            hidden_size: 16,
            intermediate_size: 24,
            vocab_size: 32,
            num_hidden_layers: 2,
            num_attention_heads: 4,
            num_key_value_heads: Some(2),
            head_dim: None,
            rms_norm_eps: 1e-5,
            rope_theta: 10000.,
            rope_scaling: None,
            max_position_embeddings: 32,
            tie_word_embeddings: Some(true),
            bos_token_id: None,
            eos_token_id: None,
            pad_token_id: None,
            torch_dtype: None,
        }
        .into_config()
        .expect("tiny config is valid")
    }

    /// A tiny llama with seeded random weights in `dtype`.
    pub(crate) fn tiny_llama(dtype: DType) -> Llama {
        let cfg = tiny_config();
        let mut rng = Rng::new(42);
        let mut rand = |shape: &[usize], scale: f64, offset: f64| {
            let n: usize = shape.iter().product();
            let v: Vec<f64> = (0..n)
                .map(|_| (rng.next_f64() - 0.5) * scale + offset)
                .collect();
            Tensor::from_vec(v, shape, &Device::Cpu).expect("shape matches")
        };
        let (h, i, hd) = (cfg.hidden_size, cfg.intermediate_size, cfg.head_dim);
        let mut m = HashMap::new();
        m.insert(
            "model.embed_tokens.weight".into(),
            rand(&[cfg.vocab_size, h], 2.0, 0.0),
        );
        m.insert("model.norm.weight".into(), rand(&[h], 0.2, 1.0));
        for l in 0..cfg.num_hidden_layers {
            let p = format!("model.layers.{l}");
            m.insert(format!("{p}.input_layernorm.weight"), rand(&[h], 0.2, 1.0));
            m.insert(
                format!("{p}.post_attention_layernorm.weight"),
                rand(&[h], 0.2, 1.0),
            );
            m.insert(
                format!("{p}.self_attn.q_proj.weight"),
                rand(&[cfg.num_attention_heads * hd, h], 0.8, 0.0),
            );
            m.insert(
                format!("{p}.self_attn.k_proj.weight"),
                rand(&[cfg.num_key_value_heads * hd, h], 0.8, 0.0),
            );
            m.insert(
                format!("{p}.self_attn.v_proj.weight"),
                rand(&[cfg.num_key_value_heads * hd, h], 0.8, 0.0),
            );
            m.insert(
                format!("{p}.self_attn.o_proj.weight"),
                rand(&[h, cfg.num_attention_heads * hd], 0.8, 0.0),
            );
            m.insert(format!("{p}.mlp.gate_proj.weight"), rand(&[i, h], 0.8, 0.0));
            m.insert(format!("{p}.mlp.up_proj.weight"), rand(&[i, h], 0.8, 0.0));
            m.insert(format!("{p}.mlp.down_proj.weight"), rand(&[h, i], 0.8, 0.0));
        }
        Llama::load(
            &mut MapSource(m),
            cfg,
            WeightFormat::Dense(dtype),
            &Device::Cpu,
        )
        .expect("tiny model loads")
    }

    /// `n` synthetic sequences: a "prompt" half and a supervised, learnable "answer" half.
    pub(crate) fn synthetic(n: usize, seed: u64) -> Vec<Example> {
        let mut rng = Rng::new(seed);
        (0..n)
            .map(|k| {
                let len = 6 + rng.below(8);
                let start = rng.below(30) as u32 + 1;
                let ids: Vec<u32> = (0..len)
                    .map(|j| {
                        if j < len / 2 {
                            rng.below(31) as u32 + 1
                        } else {
                            (start + j as u32) % 31 + 1
                        }
                    })
                    .collect();
                let supervised = (0..len).map(|j| j >= len / 2).collect();
                Example {
                    id: format!("s{k}"),
                    ids,
                    supervised,
                }
            })
            .collect()
    }

    fn job<'a>(
        llama: &'a mut Llama,
        config: TrainConfig,
        out: &Path,
        val: Vec<Example>,
    ) -> TrainJob<'a> {
        let model = ModelFingerprint::new("tiny", llama.config());
        TrainJob {
            llama,
            model,
            base_model: "tiny".into(),
            train: synthetic(10, 1),
            val,
            config,
            out: out.to_path_buf(),
            resume: None,
            init_adapter: None,
            pad_id: 0,
            stop_after: None,
        }
    }

    fn small_config() -> TrainConfig {
        TrainConfig {
            lora_rank: 4,
            lora_alpha: 8.0,
            lora_dropout: 0.1,
            learning_rate: 1e-2,
            weight_decay: 0.01,
            warmup_steps: 2,
            batch_size: 2,
            grad_accum_steps: 2,
            max_steps: Some(6),
            max_seq_len: 32,
            save_every: 3,
            eval_every: 2,
            ..TrainConfig::default()
        }
    }

    #[test]
    fn every_lora_gradient_matches_finite_differences() -> Result<()> {
        let mut llama = tiny_llama(DType::F64);
        let shape = LoraShape::from_config(&TrainConfig {
            lora_rank: 2,
            lora_alpha: 2.0,
            ..TrainConfig::default()
        });
        let mut rng = Rng::new(7);
        let a32 = Adapter::init(&llama, shape, &mut rng, &Device::Cpu)?;
        // f64 copies, with B non-zero so that A's gradients are not trivially zero.
        let mut params = Vec::new();
        for p in &a32.params {
            let (o, r) = p.b.dims2()?;
            let b: Vec<f64> = (0..o * r).map(|_| rng.next_f64() - 0.5).collect();
            params.push(crate::lora::LoraParam {
                layer: p.layer,
                proj: p.proj,
                a: Var::from_tensor(&p.a.to_dtype(DType::F64)?)?,
                b: Var::from_tensor(&Tensor::from_vec(b, (o, r), &Device::Cpu)?)?,
            });
        }
        let adapter = Adapter {
            shape: a32.shape.clone(),
            params,
        };
        adapter.attach(&mut llama, None)?;
        let data = synthetic(2, 3);
        let batch: Vec<&Example> = data.iter().collect();
        let loss_of = |llama: &Llama| -> Result<f64> {
            let out = forward_batch(llama, &batch, 0)?;
            Ok(out.nll_sum.to_scalar::<f64>()? / out.targets as f64)
        };
        let out = forward_batch(&llama, &batch, 0)?;
        let loss = (out.nll_sum / out.targets as f64)?;
        let grads = loss.backward()?;
        let h = 3e-3;
        let mut checked = 0;
        for (name, var) in adapter.names().iter().zip(adapter.vars()) {
            let g = grads
                .get(var.as_tensor())
                .unwrap_or_else(|| panic!("no gradient for {name}"));
            let g = g.flatten_all()?.to_vec1::<f64>()?;
            let base = var.as_tensor().flatten_all()?.to_vec1::<f64>()?;
            let n = base.len();
            let gnorm: f64 = g.iter().map(|x| x * x).sum::<f64>().sqrt();
            assert!(gnorm > 1e-6, "{name}: gradient is zero");
            for k in [0, n / 3, n / 2, n - 1] {
                let mut plus = base.clone();
                plus[k] += h;
                var.set(&Tensor::from_vec(plus, var.shape(), &Device::Cpu)?)?;
                let lp = loss_of(&llama)?;
                let mut minus = base.clone();
                minus[k] -= h;
                var.set(&Tensor::from_vec(minus, var.shape(), &Device::Cpu)?)?;
                let lm = loss_of(&llama)?;
                var.set(&Tensor::from_vec(base.clone(), var.shape(), &Device::Cpu)?)?;
                let fd = (lp - lm) / (2.0 * h);
                let tol = 2e-4 + 5e-3 * g[k].abs().max(fd.abs());
                assert!(
                    (fd - g[k]).abs() <= tol,
                    "{name}[{k}]: finite difference {fd} vs backward {}",
                    g[k]
                );
                checked += 1;
            }
        }
        assert_eq!(checked, 2 * 7 * 2 * 4);
        Ok(())
    }

    /// The `metrics.jsonl` a run wrote into `out`.
    fn read_metrics(out: &Path) -> Vec<StepMetrics> {
        std::fs::read_to_string(out.join("metrics.jsonl"))
            .expect("metrics written")
            .lines()
            .map(|l| serde_json::from_str(l).expect("valid line"))
            .collect()
    }

    /// What `--device cuda` trains with: frozen base weights (and activations) in bf16, LoRA
    /// parameters, gradients and optimizer state in f32. Checked here on the CPU, which runs the
    /// same composed (dtype-generic) ops: the run trains like the f32 one.
    #[test]
    fn bf16_base_weights_train_like_f32_ones() -> Result<()> {
        let dir = tempfile::tempdir().map_err(|e| TrainError::io("tmp", e))?;
        let mut config = small_config();
        config.lora_dropout = 0.0;
        let mut losses = Vec::new();
        for (dtype, name) in [(DType::F32, "f32"), (DType::BF16, "bf16")] {
            let mut m = tiny_llama(dtype);
            let out = run(
                job(
                    &mut m,
                    config.clone(),
                    &dir.path().join(name),
                    synthetic(4, 9),
                ),
                &mut NoReporter,
            )?;
            assert_eq!(out.steps, 6);
            let metrics = read_metrics(&dir.path().join(name));
            let adapter =
                crate::lora::Adapter::load(&dir.path().join(name).join("last"), &m, &Device::Cpu)?;
            for v in adapter.vars() {
                assert_eq!(v.dtype(), DType::F32, "LoRA parameters stay f32");
            }
            losses.push(metrics.iter().map(|x| x.loss).collect::<Vec<f64>>());
        }
        let (f32s, bf16s) = (&losses[0], &losses[1]);
        for (step, (a, b)) in f32s.iter().zip(bf16s).enumerate() {
            assert!(b.is_finite(), "step {step}: bf16 loss {b}");
            // bf16 keeps 8 bits of mantissa: a few tenths of a percent per op.
            assert!(
                (a - b).abs() <= 0.03 * a.abs(),
                "step {step}: f32 {a} vs bf16 {b}"
            );
        }
        assert!(
            bf16s[5] < bf16s[0],
            "bf16 training lowers the loss: {bf16s:?}"
        );
        Ok(())
    }

    #[test]
    fn interrupted_and_resumed_run_matches_an_uninterrupted_one() -> Result<()> {
        let dir = tempfile::tempdir().map_err(|e| TrainError::io("tmp", e))?;
        let val = synthetic(4, 9);
        let (a_out, b_out) = (dir.path().join("a"), dir.path().join("b"));

        let mut m = tiny_llama(DType::F32);
        let full = run(
            job(&mut m, small_config(), &a_out, val.clone()),
            &mut NoReporter,
        )?;
        assert_eq!(full.steps, 6);

        let mut m = tiny_llama(DType::F32);
        let mut j = job(&mut m, small_config(), &b_out, val.clone());
        j.stop_after = Some(4);
        let first = run(j, &mut NoReporter)?;
        assert!(first.interrupted);
        assert_eq!(first.steps, 4);

        let mut m = tiny_llama(DType::F32);
        let mut j = job(&mut m, small_config(), &b_out, val);
        j.resume = Some(b_out.clone());
        let resumed = run(j, &mut NoReporter)?;
        assert_eq!(resumed.resumed_from_step, Some(4));
        assert_eq!(resumed.steps, 6);

        let (ma, mb) = (read_metrics(&a_out), read_metrics(&b_out));
        assert_eq!(ma.len(), 6);
        assert_eq!(mb.len(), 6);
        for (x, y) in ma.iter().zip(&mb) {
            assert_eq!(
                x.loss.to_bits(),
                y.loss.to_bits(),
                "step {}: {} vs {}",
                x.step,
                x.loss,
                y.loss
            );
            assert_eq!(
                x.grad_norm.to_bits(),
                y.grad_norm.to_bits(),
                "step {}",
                x.step
            );
            assert_eq!(
                x.eval_loss.map(f64::to_bits),
                y.eval_loss.map(f64::to_bits),
                "step {}",
                x.step
            );
        }
        assert!(
            ma[0].loss > ma[5].loss,
            "the loss went down: {} -> {}",
            ma[0].loss,
            ma[5].loss
        );
        let ta = load_safetensors(
            &a_out.join("last").join(crate::lora::ADAPTER_WEIGHTS),
            &Device::Cpu,
        )?;
        let tb = load_safetensors(
            &b_out.join("last").join(crate::lora::ADAPTER_WEIGHTS),
            &Device::Cpu,
        )?;
        assert_eq!(ta.len(), 2 * 7 * 2);
        for (k, t) in &ta {
            let u = &tb[k];
            let d = (t - u)?.abs()?.flatten_all()?.max(0)?.to_scalar::<f32>()?;
            assert_eq!(d, 0.0, "{k} differs");
        }
        assert!(a_out.join("best").join(STATE_FILE).is_file());
        assert!(a_out.join("loss.svg").is_file());
        Ok(())
    }

    #[test]
    fn resume_with_another_config_or_model_is_refused_with_the_difference() -> Result<()> {
        let dir = tempfile::tempdir().map_err(|e| TrainError::io("tmp", e))?;
        let out = dir.path().join("run");
        let cfg = TrainConfig {
            max_steps: Some(1),
            ..small_config()
        };
        let mut m = tiny_llama(DType::F32);
        run(job(&mut m, cfg.clone(), &out, vec![]), &mut NoReporter)?;

        let mut m = tiny_llama(DType::F32);
        let mut j = job(
            &mut m,
            TrainConfig {
                lora_rank: 8,
                ..cfg.clone()
            },
            &out,
            vec![],
        );
        j.resume = Some(out.clone());
        let e = run(j, &mut NoReporter)
            .expect_err("another rank")
            .to_string();
        assert!(
            e.contains("lora_rank: 8 (this run) vs 4 (checkpoint)"),
            "{e}"
        );

        let mut m = tiny_llama(DType::F32);
        let mut j = job(&mut m, cfg, &out, vec![]);
        j.model.name = "other.gguf".into();
        j.resume = Some(out.clone());
        let e = run(j, &mut NoReporter)
            .expect_err("another model")
            .to_string();
        assert!(
            e.contains("model name: \"other.gguf\" (this run) vs \"tiny\" (checkpoint)"),
            "{e}"
        );
        Ok(())
    }

    #[test]
    fn nan_loss_stops_and_keeps_the_last_good_checkpoint() -> Result<()> {
        let dir = tempfile::tempdir().map_err(|e| TrainError::io("tmp", e))?;
        let out = dir.path().join("run");
        let cfg = TrainConfig {
            learning_rate: 1e30,
            max_grad_norm: 0.0,
            warmup_steps: 0,
            lr_scheduler: crate::config::Schedule::Constant,
            save_every: 1,
            max_steps: Some(8),
            ..small_config()
        };
        let mut m = tiny_llama(DType::F32);
        let e = run(job(&mut m, cfg, &out, vec![]), &mut NoReporter).expect_err("diverges");
        match e {
            TrainError::NonFiniteLoss {
                step, last_good, ..
            } => {
                let last = last_good.expect("a checkpoint was kept");
                let state = read_state(&last)?;
                assert_eq!(state.step, step - 1);
                assert!(state.metrics.iter().all(|m| m.loss.is_finite()));
            }
            other => panic!("expected a non-finite loss, got {other}"),
        }
        Ok(())
    }

    #[test]
    fn init_adapter_continues_from_an_earlier_adapter() -> Result<()> {
        let dir = tempfile::tempdir().map_err(|e| TrainError::io("tmp", e))?;
        let first = dir.path().join("first");
        let cfg = TrainConfig {
            max_steps: Some(2),
            ..small_config()
        };
        let mut m = tiny_llama(DType::F32);
        let s = run(job(&mut m, cfg.clone(), &first, vec![]), &mut NoReporter)?;
        let mut m = tiny_llama(DType::F32);
        let mut j = job(&mut m, cfg.clone(), &dir.path().join("second"), vec![]);
        j.init_adapter = s.last_checkpoint.clone();
        let s2 = run(j, &mut NoReporter)?;
        assert!(
            s2.first_loss < s.first_loss,
            "{:?} vs {:?}",
            s2.first_loss,
            s.first_loss
        );

        let mut m = tiny_llama(DType::F32);
        let mut j = job(
            &mut m,
            TrainConfig {
                lora_rank: 2,
                ..cfg
            },
            &dir.path().join("third"),
            vec![],
        );
        j.init_adapter = s.last_checkpoint;
        let e = run(j, &mut NoReporter)
            .expect_err("rank differs")
            .to_string();
        assert!(e.contains("rank 4"), "{e}");
        let _ = Arc::new(());
        Ok(())
    }
}
