//! Token generation: greedy and sampled decoding with a KV cache, one prompt or a batch of
//! left-padded prompts at a time.

use std::time::Instant;

use candle_core::Tensor;
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use rayon::prelude::*;
use serde::{Deserialize, Serialize};

use crate::error::{ModelError, Result};
use crate::json_schema::JsonSchema;
use crate::llama::{Cache, Llama};

/// How the next token is picked from the logits.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SamplingParams {
    /// Softmax temperature; `0` means greedy (argmax).
    pub temperature: f64,
    /// Keep only the `k` most likely tokens (`None`: all).
    pub top_k: Option<usize>,
    /// Keep the smallest set of tokens whose probability mass reaches `p` (`None`: all).
    pub top_p: Option<f64>,
    /// Penalty for tokens seen in the last `repeat_last_n` tokens; `1.0` disables it.
    pub repeat_penalty: f32,
    /// Window of the repeat penalty, in tokens (prompt included).
    pub repeat_last_n: usize,
    /// Seed of the sampling RNG; the same seed gives the same tokens.
    pub seed: u64,
}

impl SamplingParams {
    /// Deterministic argmax decoding.
    pub fn greedy() -> Self {
        Self {
            temperature: 0.0,
            top_k: None,
            top_p: None,
            repeat_penalty: 1.0,
            repeat_last_n: 64,
            seed: 0,
        }
    }
}

impl Default for SamplingParams {
    fn default() -> Self {
        Self::greedy()
    }
}

/// Picks tokens from logits according to [`SamplingParams`]; one per sequence.
#[derive(Debug, Clone)]
pub struct Sampler {
    params: SamplingParams,
    rng: StdRng,
}

impl Sampler {
    /// Rejects negative temperatures, `top_k == 0`, `top_p` outside (0, 1] and penalties <= 0.
    pub fn new(params: SamplingParams) -> Result<Self> {
        if !(params.temperature >= 0.0 && params.temperature.is_finite()) {
            return Err(ModelError::InvalidArgument(format!(
                "temperature must be >= 0, got {}",
                params.temperature
            )));
        }
        if params.top_k == Some(0) {
            return Err(ModelError::InvalidArgument(
                "top_k must be at least 1".into(),
            ));
        }
        if let Some(p) = params.top_p {
            if !(p > 0.0 && p <= 1.0) {
                return Err(ModelError::InvalidArgument(format!(
                    "top_p must be in (0, 1], got {p}"
                )));
            }
        }
        if !(params.repeat_penalty > 0.0 && params.repeat_penalty.is_finite()) {
            return Err(ModelError::InvalidArgument(format!(
                "repeat_penalty must be > 0, got {}",
                params.repeat_penalty
            )));
        }
        let rng = StdRng::seed_from_u64(params.seed);
        Ok(Self { params, rng })
    }

    /// The next token given `logits` (one row, vocabulary-sized) and the tokens so far.
    pub fn sample(&mut self, logits: &mut [f32], history: &[u32]) -> u32 {
        self.penalise(logits, history);
        self.pick(logits)
    }

    /// [`Self::sample`] among the tokens `allowed` accepts (a grammar). The unconstrained
    /// choice is tried first, as llama.cpp's grammar sampler does: when it is allowed it is the
    /// answer, otherwise every disallowed token is masked and the choice is made again.
    /// `None` when no token is allowed.
    pub fn sample_allowed(
        &mut self,
        logits: &mut [f32],
        history: &[u32],
        allowed: &dyn Fn(u32) -> bool,
    ) -> Option<u32> {
        self.penalise(logits, history);
        if self.params.temperature == 0.0 {
            // Greedy: walk down the ranking a little before paying for a full mask.
            for _ in 0..8 {
                let t = argmax(logits);
                if logits[t as usize] == f32::NEG_INFINITY {
                    return None;
                }
                if allowed(t) {
                    return Some(t);
                }
                logits[t as usize] = f32::NEG_INFINITY;
            }
        } else {
            let t = self.pick(&mut logits.to_vec());
            if allowed(t) {
                return Some(t);
            }
        }
        let mut any = false;
        for (i, l) in logits.iter_mut().enumerate() {
            if *l != f32::NEG_INFINITY && allowed(i as u32) {
                any = true;
            } else {
                *l = f32::NEG_INFINITY;
            }
        }
        any.then(|| self.pick(logits))
    }

    fn penalise(&self, logits: &mut [f32], history: &[u32]) {
        let p = &self.params;
        if p.repeat_penalty != 1.0 {
            let start = history.len().saturating_sub(p.repeat_last_n);
            let mut seen = std::collections::HashSet::new();
            for &t in &history[start..] {
                if seen.insert(t) {
                    if let Some(l) = logits.get_mut(t as usize) {
                        *l = if *l > 0.0 {
                            *l / p.repeat_penalty
                        } else {
                            *l * p.repeat_penalty
                        };
                    }
                }
            }
        }
    }

    fn pick(&mut self, logits: &mut [f32]) -> u32 {
        let p = &self.params;
        if p.temperature == 0.0 {
            return argmax(logits);
        }
        let mut cand: Vec<(u32, f32)> = logits
            .iter()
            .enumerate()
            .map(|(i, &l)| (i as u32, l / p.temperature as f32))
            .collect();
        cand.sort_by(|a, b| b.1.total_cmp(&a.1));
        if let Some(k) = p.top_k {
            cand.truncate(k.max(1));
        }
        let max = cand.first().map_or(0.0, |c| c.1);
        let mut probs: Vec<f64> = cand.iter().map(|c| ((c.1 - max) as f64).exp()).collect();
        let sum: f64 = probs.iter().sum();
        probs.iter_mut().for_each(|x| *x /= sum);
        if let Some(top_p) = p.top_p {
            let mut acc = 0.0;
            let mut keep = probs.len();
            for (i, x) in probs.iter().enumerate() {
                acc += x;
                if acc >= top_p {
                    keep = i + 1;
                    break;
                }
            }
            probs.truncate(keep);
            cand.truncate(keep);
            let s: f64 = probs.iter().sum();
            probs.iter_mut().for_each(|x| *x /= s);
        }
        let r: f64 = self.rng.random();
        let mut acc = 0.0;
        for (c, x) in cand.iter().zip(&probs) {
            acc += x;
            if r < acc {
                return c.0;
            }
        }
        // Rounding left `r` past the last step: the last token that had any probability.
        cand.iter()
            .zip(&probs)
            .rev()
            .find(|(_, x)| **x > 0.0)
            .map_or(0, |(c, _)| c.0)
    }
}

/// Index of the largest value (the first one on ties).
pub fn argmax(xs: &[f32]) -> u32 {
    let mut best = 0;
    for (i, &x) in xs.iter().enumerate() {
        if x > xs[best] {
            best = i;
        }
    }
    best as u32
}

/// Why generation stopped.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum StopReason {
    /// A stop token (EOS or the template's end-of-turn token) was produced.
    Eos,
    /// `max_tokens` were generated.
    MaxTokens,
    /// The model's context length was reached.
    ContextLength,
}

/// What to generate.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct GenerateOptions {
    /// Upper bound on generated tokens.
    pub max_tokens: usize,
    pub sampling: SamplingParams,
    /// Tokens that end generation; they are not part of the output.
    pub stop_tokens: Vec<u32>,
    /// Structured output: only JSON of this schema can be generated, and a stop token only
    /// once it is complete (Ollama's `format` with a JSON schema).
    #[serde(skip)]
    pub schema: Option<std::sync::Arc<JsonSchema>>,
}

/// One finished generation.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Generation {
    /// Generated token ids, without the stop token.
    pub token_ids: Vec<u32>,
    pub prompt_tokens: usize,
    pub completion_tokens: usize,
    pub stop_reason: StopReason,
    /// Wall time of the prompt pass, in seconds (shared by a batch).
    pub prefill_secs: f64,
    /// Wall time of the token-by-token passes, in seconds (shared by a batch).
    pub decode_secs: f64,
}

/// Progress callbacks; the CLI draws them, tests ignore them.
pub trait GenerateReporter: Send {
    /// Row `row` of the current batch produced `id`.
    fn on_token(&mut self, _row: usize, _id: u32) {}
    /// `done` of `total` prompts are finished.
    fn on_prompts_done(&mut self, _done: usize, _total: usize) {}
}

/// A reporter that does nothing.
pub struct NoReporter;
impl GenerateReporter for NoReporter {}

/// Generate a continuation of `prompt` (token ids).
pub fn generate(
    llama: &Llama,
    prompt: &[u32],
    opts: &GenerateOptions,
    reporter: &mut dyn GenerateReporter,
) -> Result<Generation> {
    let mut out = generate_batch(llama, &[prompt.to_vec()], opts, 1, reporter)?;
    out.pop()
        .ok_or_else(|| ModelError::InvalidArgument("no generation produced".into()))
}

/// Generate continuations of many prompts, `batch_size` at a time, left-padded so each gives
/// the same tokens as it would alone. Every prompt uses a sampler seeded with
/// `opts.sampling.seed`, as if generated by itself.
pub fn generate_batch(
    llama: &Llama,
    prompts: &[Vec<u32>],
    opts: &GenerateOptions,
    batch_size: usize,
    reporter: &mut dyn GenerateReporter,
) -> Result<Vec<Generation>> {
    let ctx = llama.config().max_position_embeddings;
    for p in prompts {
        if p.is_empty() {
            return Err(ModelError::InvalidArgument("empty prompt".into()));
        }
        if p.len() >= ctx {
            return Err(ModelError::PromptTooLong {
                tokens: p.len(),
                context: ctx,
                model: "the model".into(),
            });
        }
        if let Some(bad) = p.iter().find(|&&t| t as usize >= llama.config().vocab_size) {
            return Err(ModelError::InvalidArgument(format!(
                "token id {bad} is outside the vocabulary of {}",
                llama.config().vocab_size
            )));
        }
    }
    Sampler::new(opts.sampling.clone())?;
    let mut out = Vec::with_capacity(prompts.len());
    for chunk in prompts.chunks(batch_size.max(1)) {
        // The whole batch on rayon's pool: its kernels then never wait for the caller to wake.
        out.extend(crate::pool::on_pool_busy_for(llama.device(), || {
            run_batch(llama, chunk, opts, &mut *reporter)
        })?);
        reporter.on_prompts_done(out.len(), prompts.len());
    }
    Ok(out)
}

/// Shared prefixes shorter than this are not worth a separate pass.
const MIN_SHARED_PREFIX: usize = 16;

/// Tokens at the start of every prompt that all prompts have in common, leaving at least one
/// token of each prompt to compute with its own row (its logits start the generation).
fn shared_prefix(prompts: &[Vec<u32>]) -> usize {
    let Some((first, rest)) = prompts.split_first() else {
        return 0;
    };
    let common = rest.iter().fold(first.len(), |n, p| {
        n.min(first.iter().zip(p).take_while(|(a, b)| a == b).count())
    });
    let shortest = prompts.iter().map(Vec::len).min().unwrap_or(0);
    common.min(shortest.saturating_sub(1))
}

fn run_batch(
    llama: &Llama,
    prompts: &[Vec<u32>],
    opts: &GenerateOptions,
    reporter: &mut dyn GenerateReporter,
) -> Result<Vec<Generation>> {
    let dev = llama.device();
    let ctx = llama.config().max_position_embeddings;
    let b = prompts.len();
    let longest = prompts.iter().map(Vec::len).max().unwrap_or(0);
    let pad: Vec<usize> = prompts.iter().map(|p| longest - p.len()).collect();
    let budget = opts.max_tokens.min(ctx.saturating_sub(longest));
    let mut samplers = (0..b)
        .map(|_| Sampler::new(opts.sampling.clone()))
        .collect::<Result<Vec<_>>>()?;
    let mut history: Vec<Vec<u32>> = prompts.to_vec();
    let mut generated: Vec<Vec<u32>> = vec![Vec::new(); b];
    let mut stop: Vec<Option<StopReason>> = vec![None; b];
    let mut grammar: Vec<Option<crate::json_schema::JsonState>> =
        vec![opts.schema.as_ref().map(|s| s.start()); b];

    let t0 = Instant::now();
    // The prefix every prompt shares (the system prompt, the template's header) is computed
    // once; each row then continues from it with its own tokens, padded after the prefix.
    let shared = if b > 1 { shared_prefix(prompts) } else { 0 };
    let (mut cache, skip) = if shared >= MIN_SHARED_PREFIX {
        let mut prefix = Cache::new(llama.config(), 1, shared);
        let ids = Tensor::from_vec(prompts[0][..shared].to_vec(), (1, shared), dev)?;
        llama.forward_hidden(&ids, Some(&mut prefix))?;
        let cache = Cache::from_shared_prefix(&prefix, pad.clone(), longest + budget)?;
        (cache, shared)
    } else {
        (
            Cache::with_padding(llama.config(), pad.clone(), longest + budget),
            0,
        )
    };
    let width = longest - skip;
    let mut flat = Vec::with_capacity(b * width);
    for (p, &n) in prompts.iter().zip(&pad) {
        flat.extend(std::iter::repeat_n(0u32, n));
        flat.extend_from_slice(&p[skip..]);
    }
    let ids = Tensor::from_vec(flat, (b, width), dev)?;
    let mut logits = llama.forward_last(&ids, Some(&mut cache))?;
    let prefill_secs = t0.elapsed().as_secs_f64();
    let t1 = Instant::now();
    // The prompts still generating, in cache-row order: finished rows leave the batch.
    let mut active: Vec<usize> = (0..b).collect();
    loop {
        // On the host in f32, in one transfer from a GPU (the rows are read on pool threads,
        // which must not touch a GPU context bound to this thread).
        let host = logits
            .to_device(&candle_core::Device::Cpu)?
            .to_dtype(candle_core::DType::F32)?
            .contiguous()?;
        let vocab = host.dim(1)?;
        let (storage, layout) = host.storage_and_layout();
        let candle_core::Storage::Cpu(cpu) = &*storage else {
            return Err(ModelError::InvalidArgument(
                "logits are not on the host".into(),
            ));
        };
        let all = crate::fused_grad::slice::<f32>(cpu, layout, "sampling")?;
        let mut next = vec![0u32; b];
        // Each row's position among the rows computed this step.
        let mut slot = vec![None; b];
        for (i, &r) in active.iter().enumerate() {
            slot[r] = Some(i);
        }
        // Every generating row's choice, on all threads (a row's sampler, grammar state and
        // history are its own); `None` when its grammar allows nothing. Each thread copies
        // one row of logits at a time into a buffer of its own (the whole batch as fresh
        // vectors was 6 MB of copies and page faults per step for a 49k vocabulary): the
        // samplers change the values they are given.
        let picks: Vec<Result<Option<Option<u32>>>> = samplers
            .par_iter_mut()
            .zip(grammar.par_iter_mut())
            .zip(history.par_iter())
            .zip(slot.par_iter().zip(stop.par_iter()))
            .map_init(
                Vec::new,
                |row, (((sampler, state), history), (slot, stop))| {
                    let (Some(i), None) = (slot, stop) else {
                        return Ok(None);
                    };
                    row.clear();
                    row.extend_from_slice(&all[*i * vocab..(*i + 1) * vocab]);
                    Ok(Some(match (&opts.schema, state) {
                        (Some(schema), Some(state)) => {
                            let allowed =
                                |t: u32| schema.allows(state, t, opts.stop_tokens.contains(&t));
                            let t = sampler.sample_allowed(row, history, &allowed);
                            if let Some(t) = t {
                                schema.advance(state, t);
                            }
                            t
                        }
                        _ => Some(sampler.sample(row, history)),
                    }))
                },
            )
            .collect();
        for (r, pick) in picks.into_iter().enumerate() {
            let tok = match pick? {
                None => continue,
                Some(Some(t)) => t,
                // Nothing fits (a vocabulary without the bytes JSON needs): stop.
                Some(None) => {
                    stop[r] = Some(StopReason::Eos);
                    continue;
                }
            };
            reporter.on_token(r, tok);
            if opts.stop_tokens.contains(&tok) {
                stop[r] = Some(StopReason::Eos);
                continue;
            }
            generated[r].push(tok);
            history[r].push(tok);
            next[r] = tok;
            if generated[r].len() >= opts.max_tokens {
                stop[r] = Some(StopReason::MaxTokens);
            } else if cache.len() + 1 > ctx || generated[r].len() >= budget {
                stop[r] = Some(StopReason::ContextLength);
            }
        }
        if stop.iter().all(Option::is_some) {
            break;
        }
        if active.iter().any(|&r| stop[r].is_some()) {
            let keep: Vec<usize> = (0..active.len())
                .filter(|&i| stop[active[i]].is_none())
                .collect();
            cache.retain_rows(&keep)?;
            active = keep.iter().map(|&i| active[i]).collect();
        }
        let next: Vec<u32> = active.iter().map(|&r| next[r]).collect();
        let ids = Tensor::from_vec(next, (active.len(), 1), dev)?;
        logits = llama.forward_last(&ids, Some(&mut cache))?;
    }
    let decode_secs = t1.elapsed().as_secs_f64();
    Ok(generated
        .into_iter()
        .zip(stop)
        .zip(prompts)
        .map(|((token_ids, stop), prompt)| Generation {
            completion_tokens: token_ids.len(),
            token_ids,
            prompt_tokens: prompt.len(),
            stop_reason: stop.unwrap_or(StopReason::MaxTokens),
            prefill_secs,
            decode_secs,
        })
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_shared_prefix_leaves_every_prompt_a_token_of_its_own() {
        assert_eq!(shared_prefix(&[vec![1, 2, 3, 4], vec![1, 2, 3, 9, 9]]), 3);
        assert_eq!(shared_prefix(&[vec![1, 2, 3], vec![1, 2, 3, 4]]), 2);
        assert_eq!(shared_prefix(&[vec![1, 2], vec![1, 2]]), 1);
        assert_eq!(shared_prefix(&[vec![5, 2], vec![1, 2]]), 0);
        assert_eq!(shared_prefix(&[]), 0);
    }

    #[test]
    fn greedy_is_argmax() {
        let mut s = Sampler::new(SamplingParams::greedy()).expect("valid");
        assert_eq!(s.sample(&mut [0.1, 3.0, -1.0, 2.9], &[]), 1);
    }

    #[test]
    fn repeat_penalty_can_change_the_choice() {
        let mut p = SamplingParams::greedy();
        p.repeat_penalty = 2.0;
        let mut s = Sampler::new(p).expect("valid");
        assert_eq!(s.sample(&mut [0.1, 3.0, -1.0, 2.9], &[1]), 3);
    }

    #[test]
    fn same_seed_same_tokens_and_top_k_one_is_greedy() {
        let params = SamplingParams {
            temperature: 1.0,
            top_k: Some(50),
            top_p: Some(0.9),
            repeat_penalty: 1.0,
            repeat_last_n: 0,
            seed: 42,
        };
        let logits: Vec<f32> = (0..100).map(|i| ((i * 37) % 11) as f32 * 0.3).collect();
        let draw = |p: SamplingParams| {
            let mut s = Sampler::new(p).expect("valid");
            (0..20)
                .map(|_| s.sample(&mut logits.clone(), &[]))
                .collect::<Vec<_>>()
        };
        assert_eq!(draw(params.clone()), draw(params.clone()));
        let mut other = params.clone();
        other.seed = 7;
        assert_ne!(draw(params.clone()), draw(other));
        let mut k1 = params;
        k1.top_k = Some(1);
        assert!(draw(k1).iter().all(|&t| t == argmax(&logits)));
    }

    #[test]
    fn invalid_parameters_are_rejected() {
        let mut p = SamplingParams::greedy();
        p.temperature = -1.0;
        assert!(Sampler::new(p).is_err());
        let mut p = SamplingParams::greedy();
        p.top_p = Some(1.5);
        assert!(Sampler::new(p).is_err());
    }
}
