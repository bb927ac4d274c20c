//! Models under test on held-out products: the exact prompt the training data uses (the tier's
//! system prompt and [`tierforge_data::completion::user_prompt`], rendered with the model's own
//! chat template), greedy generation (candle, batched; or Ollama's chat API), the completion
//! parser and the rubric. Produces per-product results and per-model summaries.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Instant;

use serde::{Deserialize, Serialize};
use tierforge_data::completion::{self, parse_completion, user_prompt, Tier};
use tierforge_data::rubric::GATES;
use tierforge_data::{Lexicons, Listing, ProductInput, Report, Rubric, RubricConfig};
use tierforge_model::generate::{generate_batch, GenerateReporter};
use tierforge_model::{
    GenerateOptions, JsonSchema, Kernels, LoadOptions, LoadedModel, SamplingParams, WeightFormat,
};
use tierforge_train::DeviceKind;

use crate::compare::{compare_models, CompareOptions, Comparison};
use crate::eval_error::{EvalError, Result};

/// One model to evaluate.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ModelUnderTest {
    /// Short name in tables and reports: `base`, `basic`, `advanced`, `expert`, ...
    pub label: String,
    /// A GGUF file, a Hugging Face folder or `org/name[@revision]` (candle backend).
    pub model: String,
    /// A PEFT LoRA adapter folder (from `tierforge train`), merged into the weights.
    pub adapter: Option<PathBuf>,
    /// Selects the system prompt. The base model uses the tier it is compared with.
    pub tier: Tier,
    /// The Ollama model name (Ollama backend); default `tierforge-<label>:latest` for tier
    /// labels, else `model`.
    pub ollama_name: Option<String>,
    /// The system prompt, when it is not the tier's (`modelfiles/system/<tier>.txt`): a loop
    /// candidate is evaluated with the instructions it was trained on.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub system_prompt: Option<String>,
}

impl ModelUnderTest {
    /// The system prompt its answers are generated with.
    pub fn system_prompt(&self) -> &str {
        self.system_prompt
            .as_deref()
            .unwrap_or_else(|| self.tier.system_prompt())
    }

    /// The name this model has in Ollama.
    pub fn ollama_model(&self) -> String {
        if let Some(n) = &self.ollama_name {
            return n.clone();
        }
        match self.label.parse::<Tier>() {
            Ok(t) => format!("tierforge-{t}:latest"),
            Err(_) => self.model.clone(),
        }
    }
}

/// A held-out product: an id (for pairing results across models) and the product itself.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct EvalProduct {
    pub id: String,
    pub input: ProductInput,
}

/// Where generation runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Backend {
    /// In-process with candle, batched.
    #[default]
    Candle,
    /// Through a running Ollama's chat API, one product at a time.
    Ollama,
}

/// How weights are held for the candle backend.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Weights {
    /// Dequantized to f32 (bf16 on CUDA): the arithmetic the tiers were trained in.
    #[default]
    Dense,
    /// Kept as GGUF blocks, multiplied in place with activations quantized as llama.cpp does
    /// (Q4_1, Q8_0 on the CPU): less memory, and faster to decode than dense f32 (101 vs 82
    /// tokens/s for 12 products at batch 12 on two cores). An adapter is still merged, which
    /// makes the adapted layers dense.
    Quantized,
}

/// Options of an evaluation run.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct EvalOptions {
    /// Upper bound on generated tokens per product.
    pub max_tokens: usize,
    /// Products generated together (candle backend), in prompts.
    pub batch_size: usize,
    pub backend: Backend,
    /// Evaluate only the first `limit` products.
    pub limit: Option<usize>,
    /// Seed of the (greedy) sampler, of Ollama's sampler and of the bootstrap.
    pub seed: u64,
    /// Repetition penalty over the last 64 tokens (`1.0`: none); by default the one every tier's
    /// Modelfile sets, so that scores describe what `ollama run` does.
    #[serde(default = "no_repeat_penalty")]
    pub repeat_penalty: f32,
    /// Tokens the repetition penalty looks back over; by default the Modelfile's.
    #[serde(default = "ollama_repeat_last_n")]
    pub repeat_last_n: usize,
    /// Sampling temperature (`0`: greedy); by default the tiers' Modelfile's, sampled with
    /// `seed` so that the same run gives the same answers.
    #[serde(default)]
    pub temperature: f64,
    /// Top-k cut of the sampler (`None`: none); by default Ollama's, which the Modelfile states.
    #[serde(default)]
    pub top_k: Option<usize>,
    /// Top-p (nucleus) cut of the sampler (`None`: none); by default Ollama's.
    #[serde(default)]
    pub top_p: Option<f64>,
    /// Free text, or decoding constrained to the listing's JSON schema (Ollama's `format`).
    #[serde(default = "free_text")]
    pub format: OutputFormat,
    pub weights: Weights,
    /// CPU or CUDA (candle backend). Not read back from `eval.json`.
    #[serde(skip_deserializing)]
    pub device: DeviceKind,
    /// Ollama to use (`host[:port]` or URL); default `OLLAMA_HOST`, then `127.0.0.1:11434`.
    pub ollama_host: Option<String>,
    /// Extra lexicon rows (`DIR/<name>.tsv`), as `tierforge data score --lexicons`.
    pub lexicons: Option<PathBuf>,
    /// Paired comparisons: confidence, tie epsilon, bootstrap resamples.
    pub compare: CompareOptions,
}

/// What evaluations written before the option existed decoded with.
fn no_repeat_penalty() -> f32 {
    1.0
}

/// The penalty window of evaluations written before the option existed (Ollama's default).
fn ollama_repeat_last_n() -> usize {
    tierforge_deploy::modelfile::OLLAMA_REPEAT_LAST_N
}

/// How the answer is decoded.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum OutputFormat {
    /// Only JSON of the listing's schema (`tierforge_data::completion::json_schema`) can be
    /// generated, as with Ollama's structured outputs (`format`): the keys, and the lengths
    /// JSON Schema can bound (title, features, a floor on the description's characters); the
    /// content is the model's.
    Schema,
    /// Only JSON of the listing's shape (`tierforge_data::completion::shape_schema`): the keys
    /// and types, with no length bound.
    Shape,
    /// Free text, as `ollama run` without `--format`.
    Free,
}

impl OutputFormat {
    /// The JSON schema decoding is held to (`None`: free text).
    pub fn schema(self) -> Option<serde_json::Value> {
        match self {
            OutputFormat::Schema => Some(completion::json_schema()),
            OutputFormat::Shape => Some(completion::shape_schema()),
            OutputFormat::Free => None,
        }
    }

    /// [`Self::schema`] compiled for `tokenizer`, as generation takes it.
    pub fn grammar(
        self,
        tokenizer: &tierforge_model::Tokenizer,
    ) -> tierforge_model::Result<Option<std::sync::Arc<JsonSchema>>> {
        self.schema()
            .map(|s| JsonSchema::new(&s, tokenizer).map(std::sync::Arc::new))
            .transpose()
    }
}

/// What evaluations written before the option existed decoded with.
fn free_text() -> OutputFormat {
    OutputFormat::Free
}

impl Default for EvalOptions {
    fn default() -> Self {
        Self {
            max_tokens: 400,
            batch_size: 16,
            backend: Backend::Candle,
            limit: None,
            seed: 0,
            repeat_penalty: tierforge_deploy::modelfile::REPEAT_PENALTY as f32,
            repeat_last_n: tierforge_deploy::modelfile::REPEAT_LAST_N,
            temperature: tierforge_deploy::modelfile::TEMPERATURE,
            top_k: Some(tierforge_deploy::modelfile::TOP_K),
            top_p: Some(tierforge_deploy::modelfile::TOP_P),
            format: OutputFormat::Schema,
            weights: Weights::Dense,
            device: DeviceKind::Cpu,
            ollama_host: None,
            lexicons: None,
            compare: CompareOptions::default(),
        }
    }
}

/// Progress callbacks; the CLI draws them, the pipeline may log them.
pub trait EvalReporter: Send {
    /// Model `label` starts (loading included) with `n` products.
    fn on_model_start(&mut self, _label: &str, _n: usize) {}
    /// `done` of `total` products of the current model are generated.
    fn on_prompts_done(&mut self, _done: usize, _total: usize) {}
    /// The current model is finished.
    fn on_model_done(&mut self, _result: &ModelResult) {}
}

/// A reporter that does nothing.
pub struct NoReporter;
impl EvalReporter for NoReporter {}

/// One product's outcome for one model.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ProductResult {
    pub id: String,
    pub product_name: String,
    /// The model's answer, exactly as decoded (stop token excluded).
    pub output: String,
    pub listing: Option<Listing>,
    /// Why the answer is not a listing.
    pub parse_error: Option<String>,
    /// Compliance score 0–100; 0 when the answer did not parse.
    pub score: u8,
    /// Passed every hard gate (false when the answer did not parse).
    pub passed: bool,
    /// The rubric's full verdict (absent when the answer did not parse).
    pub report: Option<Report>,
    /// Generated tokens.
    pub output_tokens: usize,
    /// `eos`, `max_tokens`, `context_length` (candle) or `ollama`.
    pub stop_reason: String,
    /// Seconds until this product's answer was complete (its batch's wall time on candle).
    pub latency_s: f64,
}

/// Aggregates of one model over all its products.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ModelSummary {
    pub products: usize,
    /// Share of answers that parse as a listing, 0..=1.
    pub parse_rate: f64,
    /// Share of products whose listing passes the rubric, 0..=1.
    pub pass_rate: f64,
    /// Mean compliance score (0–100), a failed parse counting 0.
    pub mean_score: f64,
    /// Each hard gate's pass rate over all products (a failed parse fails every gate).
    pub gate_pass_rates: BTreeMap<String, f64>,
    /// Most often failed rubric rules among parsed answers: `(rule id, count)`, most first.
    pub top_failed_rules: Vec<(String, usize)>,
    /// Mean generated tokens per product.
    pub mean_output_tokens: f64,
    /// Answers cut off at `max_tokens`.
    pub truncated: usize,
    /// Mean seconds until a product's answer was complete.
    pub mean_latency_s: f64,
    /// Generated tokens per second of generation wall time (all rows of a batch together).
    pub tokens_per_s: f64,
    /// Wall time of generation, in seconds (loading excluded).
    pub generate_s: f64,
    /// Wall time of loading the model (and merging the adapter), in seconds.
    pub load_s: f64,
    /// Of `generate_s`: prompt passes (prefill) and token-by-token passes (decode), in
    /// seconds, summed over batches (candle only; 0 for Ollama).
    #[serde(default)]
    pub prefill_s: f64,
    #[serde(default)]
    pub decode_s: f64,
}

/// One model's evaluation.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ModelResult {
    pub model: ModelUnderTest,
    pub backend: Backend,
    pub summary: ModelSummary,
    pub products: Vec<ProductResult>,
}

impl ModelResult {
    pub fn label(&self) -> &str {
        &self.model.label
    }
}

/// A whole evaluation: every model, and paired comparisons of each model with the one before
/// it and with the first.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct EvalRun {
    /// Seconds since the Unix epoch when the run finished.
    pub finished_at: u64,
    pub options: EvalOptions,
    pub models: Vec<ModelResult>,
    pub comparisons: Vec<Comparison>,
}

impl PartialEq for EvalOptions {
    fn eq(&self, o: &Self) -> bool {
        serde_json::to_value(self).ok() == serde_json::to_value(o).ok()
    }
}

impl EvalRun {
    pub fn model(&self, label: &str) -> Option<&ModelResult> {
        self.models.iter().find(|m| m.model.label == label)
    }

    /// The comparison of `b` against `a`, if it was made.
    pub fn comparison(&self, a: &str, b: &str) -> Option<&Comparison> {
        self.comparisons.iter().find(|c| c.a == a && c.b == b)
    }

    /// Plain sentences for every model that is not better than the one before it.
    pub fn not_better(&self) -> Vec<String> {
        self.models
            .windows(2)
            .filter_map(|w| self.comparison(w[0].label(), w[1].label()))
            .filter(|c| !c.better)
            .map(|c| c.sentence())
            .collect()
    }
}

/// Reads held-out products: JSON Lines of `{"id": ..., "input": {product}}` records (the data
/// format; any other fields are ignored) or bare products. A record without an id gets
/// `file:line`. Errors name the file, line and field.
pub fn load_products(path: &Path) -> Result<Vec<EvalProduct>> {
    let text = std::fs::read_to_string(path).map_err(|source| EvalError::Io {
        path: path.to_owned(),
        source,
    })?;
    let text = text.strip_prefix('\u{feff}').unwrap_or(&text);
    let bad = |line: usize, field: &str, reason: String| EvalError::Input {
        path: path.to_owned(),
        line,
        field: field.to_owned(),
        reason,
    };
    let mut out = Vec::new();
    let mut seen = std::collections::HashSet::new();
    for (i, line) in text.lines().enumerate() {
        let n = i + 1;
        let line = line.trim();
        if line.is_empty() {
            continue;
        }
        let v: serde_json::Value =
            serde_json::from_str(line).map_err(|e| bad(n, "(record)", format!("not JSON: {e}")))?;
        let obj = v
            .as_object()
            .ok_or_else(|| bad(n, "(record)", "expected a JSON object".into()))?;
        let (field, product) = match obj.get("input") {
            Some(p) => ("input", p.clone()),
            None => ("(record)", v.clone()),
        };
        let input: ProductInput = serde_json::from_value(product)
            .map_err(|e| bad(n, field, format!("not a product: {e}")))?;
        if input.product_name.trim().is_empty() {
            return Err(bad(
                n,
                &format!("{field}.product_name"),
                "empty product name".into(),
            ));
        }
        let id = match obj.get("id") {
            Some(serde_json::Value::String(s)) => s.clone(),
            Some(other) => {
                return Err(bad(
                    n,
                    "id",
                    format!(
                        "expected a string, got {}",
                        tierforge_data::completion::kind(other)
                    ),
                ))
            }
            None => format!("{}:{n}", path.display()),
        };
        if !seen.insert(id.clone()) {
            return Err(bad(n, "id", format!("duplicate id {id:?}")));
        }
        out.push(EvalProduct { id, input });
    }
    if out.is_empty() {
        return Err(EvalError::Invalid(format!(
            "{}: no products",
            path.display()
        )));
    }
    Ok(out)
}

/// Evaluates every model on the same products (the first `opts.limit`), then compares each
/// model with the one before it and with the first one.
pub fn evaluate(
    models: &[ModelUnderTest],
    products: &[EvalProduct],
    opts: &EvalOptions,
    reporter: &mut dyn EvalReporter,
) -> Result<EvalRun> {
    if models.is_empty() {
        return Err(EvalError::Invalid("no models to evaluate".into()));
    }
    if opts.max_tokens == 0 || opts.batch_size == 0 {
        return Err(EvalError::Invalid(
            "max_tokens and batch_size must be at least 1".into(),
        ));
    }
    let mut labels = std::collections::HashSet::new();
    for m in models {
        if !labels.insert(m.label.as_str()) {
            return Err(EvalError::Invalid(format!(
                "model label {:?} is given twice",
                m.label
            )));
        }
    }
    let products = match opts.limit {
        Some(n) => &products[..n.min(products.len())],
        None => products,
    };
    if products.is_empty() {
        return Err(EvalError::Invalid("no products to evaluate".into()));
    }
    let rubric = Rubric::new(
        RubricConfig::default(),
        Lexicons::load(opts.lexicons.as_deref())?,
    );
    let mut results = Vec::with_capacity(models.len());
    for m in models {
        reporter.on_model_start(&m.label, products.len());
        let r = match opts.backend {
            Backend::Candle => eval_candle(m, products, opts, &rubric, reporter)?,
            Backend::Ollama => eval_ollama(m, products, opts, &rubric, reporter)?,
        };
        reporter.on_model_done(&r);
        results.push(r);
    }
    let comparisons = comparisons(&results, &opts.compare)?;
    let finished_at = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0);
    Ok(EvalRun {
        finished_at,
        options: opts.clone(),
        models: results,
        comparisons,
    })
}

/// Each model against the one before it, and (from the third on) against the first.
pub fn comparisons(results: &[ModelResult], opts: &CompareOptions) -> Result<Vec<Comparison>> {
    let mut out = Vec::new();
    for i in 1..results.len() {
        out.push(compare_models(&results[i - 1], &results[i], opts)?);
        if i >= 2 {
            out.push(compare_models(&results[0], &results[i], opts)?);
        }
    }
    Ok(out)
}

/// Forwards generation progress to an [`EvalReporter`].
struct Forward<'a>(&'a mut dyn EvalReporter);
impl GenerateReporter for Forward<'_> {
    fn on_prompts_done(&mut self, done: usize, total: usize) {
        self.0.on_prompts_done(done, total);
    }
}

/// Loads `m` for inference: weights as asked, the fused (fast) kernels, the adapter merged.
pub fn load_for_inference(m: &ModelUnderTest, opts: &EvalOptions) -> Result<LoadedModel> {
    let device = tierforge_train::device(opts.device)
        .map_err(|e| EvalError::Invalid(format!("model {}: {e}", m.label)))?;
    let load = LoadOptions {
        format: match opts.weights {
            Weights::Dense => WeightFormat::Dense(tierforge_model::DType::F32),
            Weights::Quantized => WeightFormat::Quantized,
        },
        device: device.clone(),
        ..LoadOptions::default()
    };
    let mut lm = tierforge_model::load(&m.model, &load).map_err(|source| EvalError::Model {
        label: m.label.clone(),
        model: m.model.clone(),
        source: Box::new(source),
    })?;
    lm.llama.set_kernels(Kernels::Fused);
    if let Some(dir) = &m.adapter {
        let aerr = |source| EvalError::Adapter {
            label: m.label.clone(),
            adapter: dir.clone(),
            source: Box::new(source),
        };
        let adapter =
            tierforge_train::lora::Adapter::load(dir, &lm.llama, &device).map_err(aerr)?;
        adapter.merge_into(&mut lm.llama).map_err(aerr)?;
    }
    Ok(lm)
}

fn eval_candle(
    m: &ModelUnderTest,
    products: &[EvalProduct],
    opts: &EvalOptions,
    rubric: &Rubric,
    reporter: &mut dyn EvalReporter,
) -> Result<ModelResult> {
    let t0 = Instant::now();
    let lm = load_for_inference(m, opts)?;
    let load_s = t0.elapsed().as_secs_f64();
    let merr = |source| EvalError::Model {
        label: m.label.clone(),
        model: m.model.clone(),
        source: Box::new(source),
    };
    let system = m.system_prompt();
    let prompts = products
        .iter()
        .map(|p| lm.chat_prompt(&user_prompt(&p.input), Some(system)))
        .collect::<tierforge_model::Result<Vec<_>>>()
        .map_err(merr)?;
    // Longest first, so that each batch holds prompts of similar length (less padding).
    let mut order: Vec<usize> = (0..prompts.len()).collect();
    order.sort_by_key(|&i| std::cmp::Reverse(prompts[i].len()));
    let sorted: Vec<Vec<u32>> = order.iter().map(|&i| prompts[i].clone()).collect();
    let gen_opts = GenerateOptions {
        max_tokens: opts.max_tokens,
        sampling: SamplingParams {
            temperature: opts.temperature,
            top_k: opts.top_k,
            top_p: opts.top_p,
            seed: opts.seed,
            repeat_penalty: opts.repeat_penalty,
            repeat_last_n: opts.repeat_last_n,
        },
        stop_tokens: lm.stop_tokens(),
        schema: opts.format.grammar(&lm.tokenizer).map_err(merr)?,
    };
    let t1 = Instant::now();
    let gens = generate_batch(
        &lm.llama,
        &sorted,
        &gen_opts,
        opts.batch_size,
        &mut Forward(reporter),
    )
    .map_err(merr)?;
    let generate_s = t1.elapsed().as_secs_f64();
    let mut by_product: Vec<Option<ProductResult>> = vec![None; products.len()];
    for (&i, g) in order.iter().zip(&gens) {
        let text = lm.tokenizer.decode(&g.token_ids, true).map_err(merr)?;
        let stop = serde_json::to_value(g.stop_reason)
            .ok()
            .and_then(|v| v.as_str().map(str::to_owned))
            .unwrap_or_default();
        by_product[i] = Some(score_output(
            &products[i],
            text,
            g.completion_tokens,
            stop,
            g.prefill_secs + g.decode_secs,
            rubric,
        ));
    }
    let results: Vec<ProductResult> = by_product.into_iter().flatten().collect();
    let mut summary = summarise(&results, generate_s, load_s);
    // Every row of a batch carries the batch's times: count each batch once.
    for g in gens.iter().step_by(opts.batch_size) {
        summary.prefill_s += g.prefill_secs;
        summary.decode_s += g.decode_secs;
    }
    Ok(ModelResult {
        model: m.clone(),
        backend: Backend::Candle,
        summary,
        products: results,
    })
}

fn eval_ollama(
    m: &ModelUnderTest,
    products: &[EvalProduct],
    opts: &EvalOptions,
    rubric: &Rubric,
    reporter: &mut dyn EvalReporter,
) -> Result<ModelResult> {
    use tierforge_deploy::ollama::{host_from_env, ChatDecoding, Ollama};
    let name = m.ollama_model();
    let oerr = |source| EvalError::Ollama {
        label: m.label.clone(),
        name: name.clone(),
        source: Box::new(source),
    };
    let host = opts
        .ollama_host
        .clone()
        .or_else(host_from_env)
        .unwrap_or_else(|| "127.0.0.1:11434".into());
    let t0 = Instant::now();
    let client = Ollama::new(&host).map_err(oerr)?;
    client.version().map_err(oerr)?;
    let load_s = t0.elapsed().as_secs_f64();
    let system = m.system_prompt();
    let t1 = Instant::now();
    let mut results = Vec::with_capacity(products.len());
    for (i, p) in products.iter().enumerate() {
        let user = user_prompt(&p.input);
        let ts = Instant::now();
        let reply = client
            .chat(
                &name,
                &[("system", system), ("user", &user)],
                &ChatDecoding {
                    temperature: opts.temperature as f32,
                    top_k: opts.top_k.map(|k| k as u32),
                    top_p: opts.top_p.map(|p| p as f32),
                    repeat_penalty: opts.repeat_penalty,
                    repeat_last_n: opts.repeat_last_n as i32,
                    num_predict: Some(opts.max_tokens as i32),
                    format: opts.format.schema(),
                    ..ChatDecoding::greedy(opts.seed as i32)
                },
            )
            .map_err(oerr)?;
        let latency = ts.elapsed().as_secs_f64();
        let tokens = reply.eval_count.unwrap_or(0) as usize;
        results.push(score_output(
            p,
            reply.content,
            tokens,
            "ollama".into(),
            latency,
            rubric,
        ));
        reporter.on_prompts_done(i + 1, products.len());
    }
    let generate_s = t1.elapsed().as_secs_f64();
    let summary = summarise(&results, generate_s, load_s);
    Ok(ModelResult {
        model: m.clone(),
        backend: Backend::Ollama,
        summary,
        products: results,
    })
}

/// Parses and scores one answer.
pub fn score_output(
    product: &EvalProduct,
    output: String,
    output_tokens: usize,
    stop_reason: String,
    latency_s: f64,
    rubric: &Rubric,
) -> ProductResult {
    let (listing, parse_error, report) = match parse_completion(&output) {
        Ok(l) => {
            let r = rubric.score(&l, Some(&product.input));
            (Some(l), None, Some(r))
        }
        Err(e) => (None, Some(e.to_string()), None),
    };
    ProductResult {
        id: product.id.clone(),
        product_name: product.input.product_name.clone(),
        output,
        parse_error,
        score: report.as_ref().map_or(0, |r| r.score),
        passed: report.as_ref().is_some_and(|r| r.passed),
        report,
        listing,
        output_tokens,
        stop_reason,
        latency_s,
    }
}

/// Aggregates per-product results. `generate_s` and `load_s` are wall times in seconds.
pub fn summarise(results: &[ProductResult], generate_s: f64, load_s: f64) -> ModelSummary {
    let n = results.len();
    let nf = n.max(1) as f64;
    let share = |k: usize| k as f64 / nf;
    let parsed = results.iter().filter(|r| r.report.is_some()).count();
    let passed = results.iter().filter(|r| r.passed).count();
    let mut gate_pass_rates = BTreeMap::new();
    for g in GATES {
        let ok = results
            .iter()
            .filter(|r| {
                r.report
                    .as_ref()
                    .and_then(|rep| rep.gate(g))
                    .is_some_and(|x| x.passed)
            })
            .count();
        gate_pass_rates.insert((*g).to_string(), share(ok));
    }
    let mut failed: BTreeMap<String, usize> = BTreeMap::new();
    for rep in results.iter().filter_map(|r| r.report.as_ref()) {
        for rule in rep.failed_rules() {
            *failed.entry(rule.id.to_string()).or_default() += 1;
        }
    }
    let mut top_failed_rules: Vec<(String, usize)> = failed.into_iter().collect();
    top_failed_rules.sort_by(|a, b| b.1.cmp(&a.1).then_with(|| a.0.cmp(&b.0)));
    top_failed_rules.truncate(5);
    let tokens: usize = results.iter().map(|r| r.output_tokens).sum();
    ModelSummary {
        products: n,
        parse_rate: share(parsed),
        pass_rate: share(passed),
        mean_score: results.iter().map(|r| r.score as f64).sum::<f64>() / nf,
        gate_pass_rates,
        top_failed_rules,
        mean_output_tokens: tokens as f64 / nf,
        truncated: results
            .iter()
            .filter(|r| r.stop_reason == "max_tokens")
            .count(),
        mean_latency_s: results.iter().map(|r| r.latency_s).sum::<f64>() / nf,
        tokens_per_s: if generate_s > 0.0 {
            tokens as f64 / generate_s
        } else {
            0.0
        },
        generate_s,
        load_s,
        prefill_s: 0.0,
        decode_s: 0.0,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn product(id: &str) -> EvalProduct {
        EvalProduct {
            id: id.into(),
            input: ProductInput {
                product_name: "Northpeak Trail Headphones".into(),
                features: vec!["40h battery".into(), "bluetooth 5.3".into()],
                category: "Electronics > Headphones".into(),
                ..Default::default()
            },
        }
    }

    fn good_listing() -> String {
        // Twelve different sentences (the rubric fails one written twice).
        let words: String = (1..=12)
            .map(|day| {
                format!(
                    "On day {day} these over-ear headphones suit commuters and travellers who \
                     want quiet focus during long days. "
                )
            })
            .collect();
        tierforge_data::completion::completion(&Listing {
            title: "Northpeak Trail Wireless Over-Ear Headphones with 40h Battery, Black".into(),
            features: vec![
                "40-hour battery for a week of commutes".into(),
                "Bluetooth 5.3 for a stable connection".into(),
                "Soft memory foam ear cushions".into(),
            ],
            description: format!("<p>{}</p>", words.trim()),
        })
    }

    #[test]
    fn scoring_parses_and_counts_failed_parses_as_zero() {
        let rubric = Rubric::default();
        let good = score_output(
            &product("a"),
            good_listing(),
            10,
            "eos".into(),
            1.0,
            &rubric,
        );
        assert!(good.parse_error.is_none(), "{:?}", good.parse_error);
        assert!(
            good.passed,
            "{:?}",
            good.report.as_ref().map(|r| r.reasons())
        );
        let bad = score_output(
            &product("b"),
            "Sure! Here is a listing".into(),
            30,
            "max_tokens".into(),
            3.0,
            &rubric,
        );
        assert_eq!(bad.score, 0);
        assert!(!bad.passed && bad.listing.is_none());
        let s = summarise(&[good.clone(), bad], 4.0, 0.5);
        assert_eq!(s.products, 2);
        assert_eq!(s.parse_rate, 0.5);
        assert_eq!(s.pass_rate, 0.5);
        assert_eq!(s.mean_score, good.score as f64 / 2.0);
        assert_eq!(s.gate_pass_rates["title_length"], 0.5);
        assert_eq!(s.mean_output_tokens, 20.0);
        assert_eq!(s.truncated, 1);
        assert_eq!(s.tokens_per_s, 10.0);
        assert_eq!(s.mean_latency_s, 2.0);
    }

    #[test]
    fn products_load_with_ids_and_errors_name_the_line() {
        let dir = tempfile::tempdir().expect("tempdir");
        let p = dir.path().join("p.jsonl");
        std::fs::write(
            &p,
            "{\"id\":\"x1\",\"input\":{\"product_name\":\"A\",\"features\":[\"f\"],\"category\":\"C\"}}\n\n{\"product_name\":\"B\"}\n",
        )
        .expect("write");
        let got = load_products(&p).expect("load");
        assert_eq!(got.len(), 2);
        assert_eq!(got[0].id, "x1");
        assert!(got[1].id.ends_with(":3"), "{}", got[1].id);
        std::fs::write(
            &p,
            "{\"id\":\"x1\",\"input\":{\"product_name\":\"A\"}}\n{\"input\":{\"product_name\":\"B\",\"features\":\"oops\"}}\n",
        )
        .expect("write");
        let e = load_products(&p).expect_err("bad features").to_string();
        assert!(e.contains("p.jsonl:2: input: not a product"), "{e}");
    }

    #[test]
    fn an_unreachable_ollama_is_named() {
        let m = ModelUnderTest {
            label: "expert".into(),
            model: "unused.gguf".into(),
            adapter: None,
            tier: Tier::Expert,
            ollama_name: None,
            system_prompt: None,
        };
        let opts = EvalOptions {
            backend: Backend::Ollama,
            // Port 9 (discard) refuses connections on any normal machine.
            ollama_host: Some("127.0.0.1:9".into()),
            ..EvalOptions::default()
        };
        let e = evaluate(&[m], &[product("a")], &opts, &mut NoReporter)
            .expect_err("no Ollama there")
            .to_string();
        assert!(
            e.contains("tierforge-expert:latest") && e.contains("127.0.0.1:9"),
            "{e}"
        );
    }

    #[test]
    fn bad_options_are_rejected_before_any_model_loads() {
        let m = ModelUnderTest {
            label: "base".into(),
            model: "does-not-exist.gguf".into(),
            adapter: None,
            tier: Tier::Expert,
            ollama_name: None,
            system_prompt: None,
        };
        let zero = EvalOptions {
            batch_size: 0,
            ..EvalOptions::default()
        };
        assert!(evaluate(
            std::slice::from_ref(&m),
            &[product("a")],
            &zero,
            &mut NoReporter
        )
        .is_err());
        let twice = [m.clone(), m.clone()];
        let e = evaluate(
            &twice,
            &[product("a")],
            &EvalOptions::default(),
            &mut NoReporter,
        )
        .expect_err("duplicate label")
        .to_string();
        assert!(e.contains("given twice"), "{e}");
        let e = evaluate(
            &[m],
            &[product("a")],
            &EvalOptions::default(),
            &mut NoReporter,
        )
        .expect_err("no such model")
        .to_string();
        assert!(e.contains("does-not-exist.gguf"), "{e}");
    }

    #[test]
    fn ollama_names_follow_the_tiers() {
        let mut m = ModelUnderTest {
            label: "expert".into(),
            model: "m.gguf".into(),
            adapter: None,
            tier: Tier::Expert,
            ollama_name: None,
            system_prompt: None,
        };
        assert_eq!(m.ollama_model(), "tierforge-expert:latest");
        m.label = "base".into();
        m.model = "smollm2:135m".into();
        assert_eq!(m.ollama_model(), "smollm2:135m");
    }
}
