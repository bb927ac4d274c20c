//! `tierforge generate`: one prompt, or a JSONL file of products through the listing format.
//! Argument plumbing, progress and printing only; the work is in `tierforge-model`.

use std::io::BufRead;
use std::path::PathBuf;
use std::time::Instant;

use anyhow::{bail, Context, Result};
use clap::Args;
use indicatif::{ProgressBar, ProgressStyle};
use serde_json::json;

use tierforge_data::completion::{parse_completion, user_prompt, Tier};
use tierforge_data::ProductInput;
use tierforge_model::generate::GenerateReporter;
use tierforge_model::{GenerateOptions, LoadOptions, SamplingParams};

use crate::ExitStatus;

#[derive(Debug, Args)]
pub struct GenerateArgs {
    /// A GGUF file, a Hugging Face folder, or a hub id `org/name[@revision]`.
    #[arg(long, value_name = "MODEL")]
    pub model: String,
    /// A LoRA adapter folder (PEFT format) to apply on top of the model.
    #[arg(long, value_name = "DIR")]
    pub adapter: Option<PathBuf>,
    /// The user message (rendered with the model's chat template).
    #[arg(long, conflicts_with = "input", required_unless_present = "input")]
    pub prompt: Option<String>,
    /// A system message placed before the user message.
    #[arg(long)]
    pub system: Option<String>,
    /// Products as JSON Lines (the data input format), one listing generated per product.
    #[arg(long, value_name = "FILE", requires = "output")]
    pub input: Option<PathBuf>,
    /// Where `--input` results go, as JSON Lines.
    #[arg(short, long, value_name = "FILE")]
    pub output: Option<PathBuf>,
    /// Tier whose system prompt is used for `--input` products when `--system` is not given.
    #[arg(long, value_parser = parse_tier, default_value = "basic")]
    pub tier: Tier,
    /// Maximum number of generated tokens per reply.
    #[arg(long, default_value_t = 256)]
    pub max_tokens: usize,
    /// Sampling temperature; 0 is greedy decoding.
    #[arg(long, default_value_t = 0.0)]
    pub temperature: f64,
    /// Sample only among the K most likely tokens (0: no limit).
    #[arg(long, default_value_t = 40)]
    pub top_k: usize,
    /// Sample only among the most likely tokens whose probabilities add up to P.
    #[arg(long, default_value_t = 0.95)]
    pub top_p: f64,
    /// Penalty for repeating one of the last `--repeat-last-n` tokens (1.0: none).
    #[arg(long, default_value_t = 1.0)]
    pub repeat_penalty: f32,
    /// Tokens the repetition penalty looks back over (Ollama's default).
    #[arg(long, default_value_t = tierforge_deploy::modelfile::OLLAMA_REPEAT_LAST_N)]
    pub repeat_last_n: usize,
    /// Seed of the sampler; the same seed gives the same text.
    #[arg(long, default_value_t = 0)]
    pub seed: u64,
    /// With `--input`: `schema` decodes under the listing's JSON schema (as `tierforge eval`
    /// does by default, and Ollama with `format`); `free` decodes plain text.
    #[arg(long, value_enum, default_value_t = crate::commands::eval::FormatArg::Free, requires = "input")]
    pub format: crate::commands::eval::FormatArg,
    /// Prompts generated together for `--input`, in prompts.
    #[arg(long, default_value_t = 16)]
    pub batch_size: usize,
    /// Use dense f32 weights instead of the quantized GGUF weights (slower; the training path).
    #[arg(long)]
    pub dense: bool,
    /// Where to generate (candle); cuda needs a build with `--features cuda`.
    #[arg(long, value_enum, default_value_t = crate::commands::train::DeviceArg::Cpu)]
    pub device: crate::commands::train::DeviceArg,
    /// Print the result as JSON (text, token ids, counts, tokens/s, stop reason).
    #[arg(long)]
    pub json: bool,
}

fn parse_tier(s: &str) -> Result<Tier, String> {
    s.parse()
}

impl GenerateArgs {
    fn sampling(&self) -> SamplingParams {
        SamplingParams {
            temperature: self.temperature,
            top_k: (self.top_k > 0).then_some(self.top_k),
            top_p: (self.top_p < 1.0).then_some(self.top_p),
            repeat_penalty: self.repeat_penalty,
            repeat_last_n: self.repeat_last_n,
            seed: self.seed,
        }
    }
}

/// Streams tokens of a single prompt to stderr as a progress spinner.
struct Spinner(ProgressBar, usize);

impl GenerateReporter for Spinner {
    fn on_token(&mut self, _row: usize, _id: u32) {
        self.1 += 1;
        self.0.set_message(format!("{} tokens", self.1));
        self.0.tick();
    }
}

struct Bar(ProgressBar);

impl GenerateReporter for Bar {
    fn on_prompts_done(&mut self, done: usize, _total: usize) {
        self.0.set_position(done as u64);
    }
}

/// The top-level entry point for `tierforge generate`.
pub fn run(args: &GenerateArgs) -> Result<ExitStatus> {
    let t0 = Instant::now();
    let mut opts = if args.dense {
        LoadOptions::default()
    } else {
        LoadOptions::quantized()
    };
    opts.device = tierforge_train::device(args.device.into())?;
    let mut model = tierforge_model::load(&args.model, &opts)
        .with_context(|| format!("Failed to load model {}", args.model))?;
    // Inference only: the fused kernels are faster than the differentiable ones.
    model.llama.set_kernels(tierforge_model::Kernels::Fused);
    if let Some(dir) = &args.adapter {
        // Merged into the weights: the adapted model then runs at the base model's speed.
        // Quantized projections that the adapter touches become dense f32.
        let adapter = tierforge_train::lora::Adapter::load(dir, &model.llama, &opts.device)
            .with_context(|| format!("Failed to load the adapter {}", dir.display()))?;
        adapter
            .merge_into(&mut model.llama)
            .with_context(|| format!("Failed to apply the adapter {}", dir.display()))?;
    }
    eprintln!(
        "loaded {}{} in {:.1}s",
        model.info.path.display(),
        args.adapter
            .as_ref()
            .map(|a| format!(" + adapter {}", a.display()))
            .unwrap_or_default(),
        t0.elapsed().as_secs_f64()
    );
    match (&args.prompt, &args.input) {
        (Some(prompt), _) => single(args, &model, prompt),
        (None, Some(input)) => batch(args, &model, input),
        (None, None) => bail!("pass --prompt or --input"),
    }
}

fn single(
    args: &GenerateArgs,
    model: &tierforge_model::LoadedModel,
    prompt: &str,
) -> Result<ExitStatus> {
    let ids = model
        .chat_prompt(prompt, args.system.as_deref())
        .context("Failed to build the prompt")?;
    let bar = ProgressBar::new_spinner();
    bar.set_style(
        ProgressStyle::with_template("{spinner} {msg}")
            .unwrap_or_else(|_| ProgressStyle::default_spinner()),
    );
    let mut spinner = Spinner(bar, 0);
    let out = model
        .generate(&ids, args.max_tokens, args.sampling(), &mut spinner)
        .context("Failed to generate")?;
    spinner.0.finish_and_clear();
    let text = model.tokenizer.decode(&out.token_ids, true)?;
    let tps = out.completion_tokens as f64 / out.decode_secs.max(1e-9);
    if args.json {
        let v = json!({
            "text": text,
            "token_ids": out.token_ids,
            "prompt_tokens": out.prompt_tokens,
            "completion_tokens": out.completion_tokens,
            "tokens_per_s": tps,
            "prefill_s": out.prefill_secs,
            "stop_reason": out.stop_reason,
        });
        println!("{}", serde_json::to_string_pretty(&v)?);
    } else {
        println!("{text}");
    }
    eprintln!(
        "{} prompt + {} generated tokens, {:.1} tokens/s, stop: {:?}",
        out.prompt_tokens, out.completion_tokens, tps, out.stop_reason
    );
    Ok(ExitStatus::Success)
}

fn read_products(path: &std::path::Path) -> Result<Vec<ProductInput>> {
    let f =
        std::fs::File::open(path).with_context(|| format!("Failed to open {}", path.display()))?;
    let mut out = Vec::new();
    for (i, line) in std::io::BufReader::new(f).lines().enumerate() {
        let line = line.with_context(|| format!("Failed to read {}", path.display()))?;
        if line.trim().is_empty() {
            continue;
        }
        let v: serde_json::Value = serde_json::from_str(&line)
            .with_context(|| format!("{}:{}: not valid JSON", path.display(), i + 1))?;
        // A bare product, or a sample whose `input` is the product.
        let product = v.get("input").cloned().unwrap_or(v);
        let p: ProductInput = serde_json::from_value(product).with_context(|| {
            format!(
                "{}:{}: not a product (product_name, features, category)",
                path.display(),
                i + 1
            )
        })?;
        out.push(p);
    }
    if out.is_empty() {
        bail!("{}: no products", path.display());
    }
    Ok(out)
}

fn batch(
    args: &GenerateArgs,
    model: &tierforge_model::LoadedModel,
    input: &std::path::Path,
) -> Result<ExitStatus> {
    let output = args.output.as_ref().context("--input needs -o/--output")?;
    let products = read_products(input)?;
    let system = args
        .system
        .clone()
        .unwrap_or_else(|| args.tier.system_prompt().to_string());
    let prompts = products
        .iter()
        .enumerate()
        .map(|(i, p)| {
            model
                .chat_prompt(&user_prompt(p), Some(&system))
                .with_context(|| {
                    format!("{}:{}: Failed to build the prompt", input.display(), i + 1)
                })
        })
        .collect::<Result<Vec<_>>>()?;
    let bar = ProgressBar::new(prompts.len() as u64);
    bar.set_style(
        ProgressStyle::with_template("{bar:40} {pos}/{len} products {elapsed}")
            .unwrap_or_else(|_| ProgressStyle::default_bar()),
    );
    let mut reporter = Bar(bar);
    let opts = GenerateOptions {
        max_tokens: args.max_tokens,
        sampling: args.sampling(),
        stop_tokens: model.stop_tokens(),
        schema: tierforge_eval::evaluate::OutputFormat::from(args.format)
            .grammar(&model.tokenizer)
            .context("Failed to compile the listing schema")?,
    };
    let t0 = Instant::now();
    let outs = tierforge_model::generate::generate_batch(
        &model.llama,
        &prompts,
        &opts,
        args.batch_size,
        &mut reporter,
    )
    .context("Failed to generate")?;
    reporter.0.finish_and_clear();
    let secs = t0.elapsed().as_secs_f64();
    let mut lines = String::new();
    let (mut ok, mut tokens) = (0usize, 0usize);
    for (p, out) in products.iter().zip(&outs) {
        let text = model.tokenizer.decode(&out.token_ids, true)?;
        tokens += out.completion_tokens;
        let parsed = parse_completion(&text);
        ok += parsed.is_ok() as usize;
        let v = json!({
            "input": p,
            "completion": text,
            "listing": parsed.as_ref().ok(),
            "parse_error": parsed.as_ref().err().map(|e| e.to_string()),
            "completion_tokens": out.completion_tokens,
            "stop_reason": out.stop_reason,
        });
        lines.push_str(&v.to_string());
        lines.push('\n');
    }
    // Temp file + rename: an interrupted run never leaves half a file.
    tierforge_data::write::write_string(output, &lines)
        .with_context(|| format!("Failed to write {}", output.display()))?;
    println!("{}", output.display());
    eprintln!(
        "{} products, {} parsed as listings, {} tokens in {:.1}s ({:.1} tokens/s) -> {}",
        products.len(),
        ok,
        tokens,
        secs,
        tokens as f64 / secs.max(1e-9),
        output.display()
    );
    Ok(if ok == products.len() {
        ExitStatus::Success
    } else {
        ExitStatus::Failure
    })
}
