//! Promotion and rollback of tier versions.
//!
//! `promote` runs a health check on the version's merged GGUF (candle, greedy): for a few
//! products the reply must stop at end-of-turn, parse as a listing, and pass the rubric's hard
//! gates, at a configurable rate. Only then, with an Ollama host, is `tierforge-<tier>:latest`
//! pointed at the version (`POST /api/copy`), and the registry switched in one transaction. A
//! failed check changes nothing but the event log. `rollback` restores the previous production
//! version (and re-points `:latest`).

use std::io::BufRead;
use std::path::{Path, PathBuf};
use std::time::Instant;

use serde::Serialize;
use tierforge_data::completion::{parse_completion, user_prompt, Tier};
use tierforge_data::{Lexicons, ProductInput, Rubric, RubricConfig};
use tierforge_model::generate::{generate_batch, NoReporter};
use tierforge_model::{GenerateOptions, LoadOptions, SamplingParams, StopReason};

use crate::bundle::now_rfc3339;
use crate::ollama::{Ollama, OllamaError};
use crate::registry::{Event, Registry, RegistryError, Status, VersionRecord};

/// The registry every command uses unless told otherwise.
pub const DEFAULT_REGISTRY: &str = "runs/registry.db";
/// Products the health check generates for, unless told otherwise.
pub const DEFAULT_PRODUCTS: &str = "data/eval-products.jsonl";
/// How many products of the file the health check uses.
pub const DEFAULT_CHECK_PRODUCTS: usize = 3;
/// Share of products whose reply must stop, parse and pass the rubric (2 of 3).
pub const DEFAULT_MIN_PASS_RATE: f64 = 2.0 / 3.0;
/// Token budget of one health-check reply (a full listing is about 250–400 tokens).
pub const DEFAULT_CHECK_MAX_TOKENS: usize = 512;

#[derive(Debug, thiserror::Error)]
pub enum PromoteError {
    #[error(transparent)]
    Registry(#[from] RegistryError),
    #[error(transparent)]
    Ollama(#[from] OllamaError),
    #[error(transparent)]
    Name(#[from] crate::names::NameError),
    #[error("Failed to load {path}: {source}")]
    Model {
        path: PathBuf,
        #[source]
        source: tierforge_model::ModelError,
    },
    #[error("{0}")]
    Input(String),
    #[error("{path}:{line}: {reason}")]
    Products {
        path: PathBuf,
        line: usize,
        reason: String,
    },
}

/// The Ollama name of a tier version: `tierforge-<tier>:<version>`.
pub fn model_name(tier: Tier, version: &str) -> String {
    format!("tierforge-{}:{version}", tier.name())
}

/// The `:latest` alias of a tier.
pub fn latest_name(tier: Tier) -> String {
    format!("tierforge-{}:latest", tier.name())
}

/// Parses what a user names a version by: `tierforge-<tier>:<version>` (checked against
/// Ollama's naming rules), or a tier with the version given separately.
pub fn parse_model_ref(model: &str, version: Option<&str>) -> Result<(Tier, String), PromoteError> {
    let (tier, v) = match model.split_once(':') {
        Some((name, tag)) => {
            crate::names::validate(model)?;
            if version.is_some() {
                return Err(PromoteError::Input(format!(
                    "{model:?} already names a version; pass either `tierforge-<tier>:<version>` or `<tier> <version>`"
                )));
            }
            let tier = name.strip_prefix("tierforge-").ok_or_else(|| {
                PromoteError::Input(format!(
                    "{model:?} is not a tierforge model: expected tierforge-<tier>:<version>"
                ))
            })?;
            (tier, tag.to_string())
        }
        None => {
            let v = version.ok_or_else(|| {
                PromoteError::Input(format!(
                    "no version given for tier {model:?}: pass `<tier> <version>` or `tierforge-<tier>:<version>`"
                ))
            })?;
            (model, v.to_string())
        }
    };
    let tier: Tier = tier.parse().map_err(PromoteError::Input)?;
    crate::registry::parse_version(&v)?;
    crate::names::validate(&model_name(tier, &v))?;
    Ok((tier, v))
}

/// Opens an existing registry (a missing file is an error, not a new empty registry).
pub fn open_registry(path: &Path) -> Result<Registry, PromoteError> {
    if !path.is_file() {
        return Err(PromoteError::Input(format!(
            "{}: no registry here (`tierforge deploy` creates it; pass --registry PATH)",
            path.display()
        )));
    }
    Ok(Registry::open(path)?)
}

/// The first `n` products of a JSON Lines file: bare products, or samples whose `input` is one.
pub fn read_products(path: &Path, n: usize) -> Result<Vec<ProductInput>, PromoteError> {
    let err = |line: usize, reason: String| PromoteError::Products {
        path: path.to_path_buf(),
        line,
        reason,
    };
    let f = std::fs::File::open(path).map_err(|e| err(0, e.to_string()))?;
    let mut out = Vec::new();
    for (i, line) in std::io::BufReader::new(f).lines().enumerate() {
        if out.len() == n {
            break;
        }
        let line = line.map_err(|e| err(i + 1, e.to_string()))?;
        let line = line.trim_start_matches('\u{feff}').trim();
        if line.is_empty() {
            continue;
        }
        let v: serde_json::Value =
            serde_json::from_str(line).map_err(|e| err(i + 1, format!("not valid JSON: {e}")))?;
        let product = v.get("input").cloned().unwrap_or(v);
        let p: ProductInput = serde_json::from_value(product).map_err(|e| {
            err(
                i + 1,
                format!("not a product (product_name, features, category): {e}"),
            )
        })?;
        out.push(p);
    }
    if out.is_empty() {
        return Err(err(0, "no products".into()));
    }
    Ok(out)
}

/// How to run the health check.
#[derive(Debug, Clone)]
pub struct CheckOptions {
    pub products: Vec<ProductInput>,
    /// Token budget of one reply; a reply that uses it all did not stop.
    pub max_tokens: usize,
    /// Share (0–1) of products that must pass.
    pub min_pass_rate: f64,
    /// SYSTEM prompt; `None` uses the tier's.
    pub system_prompt: Option<String>,
    /// Extra lexicon rows for the rubric (`--lexicons DIR`).
    pub lexicons: Option<PathBuf>,
}

impl CheckOptions {
    pub fn new(products: Vec<ProductInput>) -> Self {
        Self {
            products,
            max_tokens: DEFAULT_CHECK_MAX_TOKENS,
            min_pass_rate: DEFAULT_MIN_PASS_RATE,
            system_prompt: None,
            lexicons: None,
        }
    }
}

/// One product of the health check.
#[derive(Debug, Clone, Serialize)]
pub struct ProductCheck {
    pub product: String,
    /// The reply ended with an end-of-turn token (not the token budget).
    pub stopped: bool,
    pub stop_reason: StopReason,
    pub completion_tokens: usize,
    pub parsed: bool,
    pub parse_error: Option<String>,
    /// The rubric's hard gates all passed.
    pub rubric_passed: bool,
    /// Compliance score 0–100, when the reply parsed.
    pub score: Option<u8>,
    pub failed_gates: Vec<String>,
    /// stopped && parsed && rubric_passed.
    pub passed: bool,
    pub reply: String,
}

/// The health check's verdict.
#[derive(Debug, Clone, Serialize)]
pub struct HealthReport {
    pub model: PathBuf,
    pub passed: usize,
    pub total: usize,
    pub pass_rate: f64,
    pub min_pass_rate: f64,
    pub ok: bool,
    pub seconds: f64,
    pub products: Vec<ProductCheck>,
}

impl HealthReport {
    /// One line: why it failed or that it passed.
    pub fn summary(&self) -> String {
        let mut why = Vec::new();
        let n = |f: &dyn Fn(&ProductCheck) -> bool| self.products.iter().filter(|p| f(p)).count();
        let not_stopped = n(&|p| !p.stopped);
        let not_parsed = n(&|p| !p.parsed);
        let not_rubric = n(&|p| p.parsed && !p.rubric_passed);
        if not_stopped > 0 {
            why.push(format!("{not_stopped} did not stop"));
        }
        if not_parsed > 0 {
            why.push(format!("{not_parsed} did not parse"));
        }
        if not_rubric > 0 {
            why.push(format!("{not_rubric} failed the rubric"));
        }
        format!(
            "{}/{} replies passed ({:.0}%, need {:.0}%){}",
            self.passed,
            self.total,
            self.pass_rate * 100.0,
            self.min_pass_rate * 100.0,
            if why.is_empty() {
                String::new()
            } else {
                format!(": {}", why.join(", "))
            }
        )
    }
}

/// Generates a listing for each product with the model at `gguf` (greedy, the tier's SYSTEM
/// prompt, the model's own chat template and stop tokens) and checks each reply.
pub fn health_check(
    gguf: &Path,
    tier: Tier,
    opts: &CheckOptions,
) -> Result<HealthReport, PromoteError> {
    if !(0.0..=1.0).contains(&opts.min_pass_rate) {
        return Err(PromoteError::Input(format!(
            "min pass rate {} is outside 0..=1",
            opts.min_pass_rate
        )));
    }
    if opts.products.is_empty() {
        return Err(PromoteError::Input(
            "the health check needs products".into(),
        ));
    }
    let model_err = |source| PromoteError::Model {
        path: gguf.to_path_buf(),
        source,
    };
    let t0 = Instant::now();
    let spec = gguf
        .to_str()
        .ok_or_else(|| PromoteError::Input(format!("{}: path is not UTF-8", gguf.display())))?;
    let model = tierforge_model::load(spec, &LoadOptions::quantized()).map_err(model_err)?;
    let lex = Lexicons::load(opts.lexicons.as_deref())
        .map_err(|e| PromoteError::Input(format!("Failed to load the lexicons: {e}")))?;
    let rubric = Rubric::new(RubricConfig::default(), lex);
    let system = opts
        .system_prompt
        .clone()
        .unwrap_or_else(|| tier.system_prompt().to_string());
    let prompts = opts
        .products
        .iter()
        .map(|p| model.chat_prompt(&user_prompt(p), Some(&system)))
        .collect::<Result<Vec<_>, _>>()
        .map_err(model_err)?;
    let gen = GenerateOptions {
        max_tokens: opts.max_tokens,
        sampling: SamplingParams::greedy(),
        stop_tokens: model.stop_tokens(),
        schema: None,
    };
    let outs = generate_batch(&model.llama, &prompts, &gen, prompts.len(), &mut NoReporter)
        .map_err(model_err)?;
    let mut products = Vec::new();
    for (p, out) in opts.products.iter().zip(&outs) {
        let reply = model
            .tokenizer
            .decode(&out.token_ids, true)
            .map_err(model_err)?;
        let stopped = out.stop_reason == StopReason::Eos;
        let parsed = parse_completion(&reply);
        let report = parsed.as_ref().ok().map(|l| rubric.score(l, Some(p)));
        let rubric_passed = report.as_ref().is_some_and(|r| r.passed);
        products.push(ProductCheck {
            product: p.product_name.clone(),
            stopped,
            stop_reason: out.stop_reason,
            completion_tokens: out.completion_tokens,
            parsed: parsed.is_ok(),
            parse_error: parsed.as_ref().err().map(|e| e.to_string()),
            rubric_passed,
            score: report.as_ref().map(|r| r.score),
            failed_gates: report
                .as_ref()
                .map(|r| r.failed_gates().map(|g| g.detail.to_string()).collect())
                .unwrap_or_default(),
            passed: stopped && parsed.is_ok() && rubric_passed,
            reply,
        });
    }
    let passed = products.iter().filter(|p| p.passed).count();
    let total = products.len();
    let pass_rate = passed as f64 / total as f64;
    Ok(HealthReport {
        model: gguf.to_path_buf(),
        passed,
        total,
        pass_rate,
        min_pass_rate: opts.min_pass_rate,
        // A small tolerance so that "2/3" passes a 2/3 threshold written as 0.667 or 0.6667.
        ok: pass_rate + 1e-3 >= opts.min_pass_rate,
        seconds: t0.elapsed().as_secs_f64(),
        products,
    })
}

/// What to promote.
#[derive(Debug, Clone)]
pub struct PromoteOptions {
    pub registry: PathBuf,
    pub tier: Tier,
    pub version: String,
    /// `http://host:port`; `None` leaves Ollama alone.
    pub ollama_host: Option<String>,
    pub check: CheckOptions,
}

/// What promotion did.
#[derive(Debug, Clone, Serialize)]
pub struct PromoteReport {
    pub tier: Tier,
    pub version: String,
    pub name: String,
    /// The production version it replaced.
    pub previous: Option<String>,
    /// False when the health check failed (production is unchanged).
    pub promoted: bool,
    pub check: HealthReport,
    /// `tierforge-<tier>:latest` when it was re-pointed in Ollama.
    pub ollama_latest: Option<String>,
}

/// Health check, then (with an Ollama host) `tierforge-<tier>:<version>` → `:latest`, then the
/// registry switch. A failed check is recorded as a `health_check_failed` event and returned
/// with `promoted: false`; production is untouched.
pub fn promote(
    opts: &PromoteOptions,
    progress: &mut dyn FnMut(&str),
) -> Result<PromoteReport, PromoteError> {
    let tier = opts.tier.name();
    let name = model_name(opts.tier, &opts.version);
    crate::names::validate(&name)?;
    crate::registry::parse_version(&opts.version)?;
    let mut reg = open_registry(&opts.registry)?;
    let rec = reg.get(tier, &opts.version)?;
    match rec.status {
        Status::Production => {
            return Err(PromoteError::Input(format!(
                "{name} is already the production version of {tier}"
            )))
        }
        Status::Rejected => {
            return Err(PromoteError::Input(format!(
                "{name} was rejected ({}); deploy a new version instead",
                rec.note.as_deref().unwrap_or("no reason recorded")
            )))
        }
        Status::Candidate | Status::Retired => {}
    }
    let gguf = rec
        .gguf_path
        .as_deref()
        .map(PathBuf::from)
        .filter(|p| p.is_file())
        .ok_or_else(|| {
            PromoteError::Input(format!(
                "{name}: its GGUF {} is missing, so it cannot be health-checked",
                rec.gguf_path.as_deref().unwrap_or("(none recorded)")
            ))
        })?;
    let ollama = match &opts.ollama_host {
        Some(host) => {
            if rec.ollama_name.is_none() {
                return Err(PromoteError::Input(format!(
                    "{name} was built but never created in Ollama at {host}; create it from its \
                     bundle (`ollama create`, see its README) or promote without OLLAMA_HOST"
                )));
            }
            Some(Ollama::new(host)?)
        }
        None => None,
    };
    progress(&format!(
        "health check: {} products with {}",
        opts.check.products.len(),
        gguf.display()
    ));
    let check = health_check(&gguf, opts.tier, &opts.check)?;
    let at = now_rfc3339();
    let detail = serde_json::json!({
        "passed": check.passed,
        "total": check.total,
        "pass_rate": check.pass_rate,
        "min_pass_rate": check.min_pass_rate,
        "summary": check.summary(),
    });
    if !check.ok {
        reg.record_event(
            tier,
            &opts.version,
            "health_check_failed",
            &detail.to_string(),
            &at,
        )?;
        return Ok(PromoteReport {
            tier: opts.tier,
            version: opts.version.clone(),
            name,
            previous: reg.production(tier)?.map(|p| p.version),
            promoted: false,
            check,
            ollama_latest: None,
        });
    }
    let previous_rec = reg.production(tier)?;
    let latest = latest_name(opts.tier);
    if let Some(o) = &ollama {
        progress(&format!("ollama: {name} -> {latest}"));
        o.copy(&name, &latest)?;
    }
    let res = reg.promote(tier, &opts.version, &at, |_| Ok(detail.to_string()));
    let previous = match res {
        Ok(p) => p,
        Err(e) => {
            // Keep Ollama consistent with the registry: point :latest back where it was.
            if let (Some(o), Some(p)) = (&ollama, &previous_rec) {
                let _ = o.copy(&model_name(opts.tier, &p.version), &latest);
            }
            return Err(e.into());
        }
    };
    Ok(PromoteReport {
        tier: opts.tier,
        version: opts.version.clone(),
        name,
        previous,
        promoted: true,
        check,
        ollama_latest: ollama.map(|_| latest),
    })
}

/// What rollback did.
#[derive(Debug, Clone, Serialize)]
pub struct RollbackReport {
    pub tier: Tier,
    /// The version that was production.
    pub from: String,
    /// The version that is production now.
    pub to: String,
    pub ollama_latest: Option<String>,
}

/// Restores the tier's previous production version; with an Ollama host, `:latest` is
/// re-pointed first, so that a failing Ollama leaves the registry as it was.
pub fn rollback(
    registry: &Path,
    tier: Tier,
    ollama_host: Option<&str>,
    progress: &mut dyn FnMut(&str),
) -> Result<RollbackReport, PromoteError> {
    let t = tier.name();
    let mut reg = open_registry(registry)?;
    let (from, to) = reg.rollback_target(t)?;
    let latest = latest_name(tier);
    let mut ollama_latest = None;
    if let Some(host) = ollama_host {
        let o = Ollama::new(host)?;
        let name = model_name(tier, &to);
        progress(&format!("ollama: {name} -> {latest}"));
        o.copy(&name, &latest)?;
        ollama_latest = Some(latest);
    }
    let (from2, to2) = reg.rollback(t, &now_rfc3339())?;
    debug_assert_eq!((&from, &to), (&from2, &to2));
    Ok(RollbackReport {
        tier,
        from: from2,
        to: to2,
        ollama_latest,
    })
}

/// A version with its events, for `models show`.
#[derive(Debug, Clone, Serialize)]
pub struct VersionDetails {
    pub name: String,
    #[serde(flatten)]
    pub record: VersionRecord,
    pub events: Vec<EventRecord>,
}

#[derive(Debug, Clone, Serialize)]
pub struct EventRecord {
    pub at: String,
    pub action: String,
    pub detail: serde_json::Value,
}

/// One version and its event log.
pub fn show(registry: &Path, tier: Tier, version: &str) -> Result<VersionDetails, PromoteError> {
    let reg = open_registry(registry)?;
    let record = reg.get(tier.name(), version)?;
    let events = reg
        .events(Some(tier.name()))?
        .into_iter()
        .filter(|e: &Event| e.2 == version)
        .map(|(at, _, _, action, detail)| EventRecord {
            at,
            action,
            detail: serde_json::from_str(&detail).unwrap_or(serde_json::Value::String(detail)),
        })
        .collect();
    Ok(VersionDetails {
        name: model_name(tier, version),
        record,
        events,
    })
}

/// All versions (of one tier), newest first per tier.
pub fn list(registry: &Path, tier: Option<Tier>) -> Result<Vec<VersionRecord>, PromoteError> {
    let reg = open_registry(registry)?;
    Ok(reg.list(tier.map(Tier::name))?)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn model_refs() {
        assert_eq!(
            parse_model_ref("tierforge-basic:1.2.0", None).unwrap(),
            (Tier::Basic, "1.2.0".into())
        );
        assert_eq!(
            parse_model_ref("expert", Some("2.0.1")).unwrap(),
            (Tier::Expert, "2.0.1".into())
        );
        assert!(matches!(
            parse_model_ref("tierforge basic:1.0.0", None),
            Err(PromoteError::Name(_))
        ));
        assert!(parse_model_ref("other-basic:1.0.0", None).is_err());
        assert!(parse_model_ref("premium", Some("1.0.0")).is_err());
        assert!(parse_model_ref("basic", None).is_err());
        assert!(parse_model_ref("basic", Some("v1")).is_err());
    }
}
