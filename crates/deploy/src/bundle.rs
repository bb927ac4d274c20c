//! A tier bundle: the merged GGUF, its Modelfile (TEMPLATE derived from the model's own chat
//! template, the tier's SYSTEM prompt, a stop for every end-of-turn string), a README with the
//! `ollama create` line, a registry entry, and, with an Ollama host, the model in Ollama
//! (blob upload + `POST /api/create`).

use std::path::{Path, PathBuf};

use serde::Serialize;
use tierforge_data::completion::Tier;
use tierforge_model::LoadedModel;

use crate::export::{self, ExportError, ExportReport, GgufOptions, Quant};
use crate::modelfile::Modelfile;
use crate::ollama::{CreateRequest, Ollama, OllamaError};
use crate::registry::{Registry, RegistryError, Status, VersionRecord};

/// Default sampling temperature of a tier model (see [`crate::modelfile::TEMPERATURE`]).
pub const DEFAULT_TEMPERATURE: f64 = crate::modelfile::TEMPERATURE;
/// Default context window of a tier model, in tokens (capped by the model's own).
pub const DEFAULT_NUM_CTX: usize = 4096;

/// What to build.
#[derive(Debug, Clone)]
pub struct TierBuild {
    pub tier: Tier,
    /// `MAJOR.MINOR.PATCH`; `None` takes the registry's next version (1.0.0 without one).
    pub version: Option<String>,
    /// The base model spec (a GGUF file).
    pub base: String,
    /// The adapter folder (PEFT, or a training output with best/ or last/).
    pub adapter: PathBuf,
    pub quant: Quant,
    /// The bundle goes in `out_dir/<tier>-<version>/`.
    pub out_dir: PathBuf,
    /// The SYSTEM prompt; `None` uses the tier's (`modelfiles/system/<tier>.txt`).
    pub system_prompt: Option<String>,
    /// The registry database; default `runs/registry.db` (as the CLI's); `None` registers nothing.
    pub registry: Option<PathBuf>,
    /// `http://host:port`; `None` builds without pushing.
    pub ollama_host: Option<String>,
    pub dataset_hash: String,
    pub dataset_size: u64,
    pub config_hash: String,
    pub train_metrics: serde_json::Value,
    pub temperature: f64,
    pub num_ctx: usize,
}

impl TierBuild {
    /// A build with defaults for everything but the essentials.
    pub fn new(tier: Tier, base: &str, adapter: &Path, out_dir: &Path) -> Self {
        Self {
            tier,
            version: None,
            base: base.to_string(),
            adapter: adapter.to_path_buf(),
            quant: Quant::Q8_0,
            out_dir: out_dir.to_path_buf(),
            system_prompt: None,
            registry: Some(PathBuf::from(crate::promote::DEFAULT_REGISTRY)),
            ollama_host: None,
            dataset_hash: String::new(),
            dataset_size: 0,
            config_hash: String::new(),
            train_metrics: serde_json::Value::Null,
            temperature: DEFAULT_TEMPERATURE,
            num_ctx: DEFAULT_NUM_CTX,
        }
    }
}

/// What was built.
#[derive(Debug, Clone, Serialize)]
pub struct TierBundle {
    /// `tierforge-<tier>:<version>`.
    pub name: String,
    pub tier: Tier,
    pub version: String,
    pub dir: PathBuf,
    pub gguf: PathBuf,
    pub gguf_bytes: u64,
    /// `sha256:<hex>` of the GGUF (the Ollama blob digest).
    pub sha256: String,
    pub modelfile: PathBuf,
    pub readme: PathBuf,
    /// The command that creates the model from the bundle by hand.
    pub ollama_create: String,
    pub pushed: bool,
    /// The GGUF blob digest Ollama stores, when pushed.
    pub ollama_digest: Option<String>,
    pub registered: bool,
    pub export: ExportReport,
}

#[derive(Debug, thiserror::Error)]
pub enum BundleError {
    #[error(transparent)]
    Export(#[from] ExportError),
    #[error(transparent)]
    Registry(#[from] RegistryError),
    #[error(transparent)]
    Ollama(#[from] OllamaError),
    #[error("{0}")]
    Template(String),
    #[error("{path}: {reason}")]
    Write { path: PathBuf, reason: String },
}

/// RFC 3339 UTC time of now (seconds).
pub fn now_rfc3339() -> String {
    use tierforge_data::clock;
    clock::format_rfc3339(clock::now_unix())
}

/// The base model's licence text: `general.license` of a GGUF, or a LICENSE file beside it /
/// in its folder.
fn base_license(model: &LoadedModel) -> Option<String> {
    let p = &model.info.path;
    let dir = if p.is_dir() {
        Some(p.as_path())
    } else {
        p.parent()
    };
    if let Some(d) = dir {
        for n in ["LICENSE", "LICENSE.txt", "LICENSE.md"] {
            if let Ok(t) = std::fs::read_to_string(d.join(n)) {
                return Some(t);
            }
        }
    }
    if p.is_file() {
        let g = tierforge_model::gguf::GgufFile::open(p).ok()?;
        return g
            .opt_str("general.license")
            .ok()
            .flatten()
            .map(str::to_string);
    }
    None
}

/// The Modelfile of a tier model built from `model` (FROM `gguf_file`, relative).
pub fn modelfile_for(
    model: &LoadedModel,
    gguf_file: &str,
    system: &str,
    temperature: f64,
    num_ctx: usize,
    header: Vec<String>,
) -> Result<Modelfile, BundleError> {
    let derived = crate::template_check::derive_for_model(model)
        .map_err(|e| BundleError::Template(format!("{}: {e}", model.info.source)))?;
    let mut stop = derived.layout.stop_sequences();
    // Every end-of-turn token the model knows (EOS and the template's end of turn).
    for id in model.stop_tokens() {
        if let Some(t) = model.tokenizer.id_to_token(id) {
            if !t.is_empty() && !stop.iter().any(|s| s == t) {
                stop.push(t.to_string());
            }
        }
    }
    Ok(Modelfile {
        from: format!("./{gguf_file}"),
        template: derived.go_template,
        system: Some(system.to_string()),
        stop,
        temperature,
        num_ctx: num_ctx.min(model.info.context_length),
        top_k: Some(crate::modelfile::TOP_K),
        top_p: Some(crate::modelfile::TOP_P),
        repeat_penalty: Some(crate::modelfile::REPEAT_PENALTY),
        repeat_last_n: Some(crate::modelfile::REPEAT_LAST_N),
        license: base_license(model),
        header,
    })
}

fn write_text(path: &Path, text: &str) -> Result<(), BundleError> {
    tierforge_data::write::write_string(path, text).map_err(|e| BundleError::Write {
        path: path.to_path_buf(),
        reason: e.to_string(),
    })
}

/// Build a tier: merged GGUF + Modelfile + README in `out_dir/<tier>-<version>/`, registered
/// as a candidate (built, not pushed); with `ollama_host`, uploaded and created in Ollama as
/// `tierforge-<tier>:<version>`. `progress` gets one line per stage.
pub fn build_tier(
    b: &TierBuild,
    progress: &mut dyn FnMut(&str),
) -> Result<TierBundle, BundleError> {
    let tier = b.tier.name();
    let mut registry = match &b.registry {
        Some(p) => Some(Registry::open(p)?),
        None => None,
    };
    let version = match (&b.version, &registry) {
        (Some(v), _) => {
            crate::registry::parse_version(v)?;
            v.clone()
        }
        (None, Some(r)) => r.next_version(tier)?,
        (None, None) => "1.0.0".into(),
    };
    if let Some(r) = &registry {
        if r.get(tier, &version).is_ok() {
            return Err(RegistryError::Exists {
                tier: tier.into(),
                version: version.clone(),
            }
            .into());
        }
    }
    let name = format!("tierforge-{tier}:{version}");
    crate::names::validate(&name).map_err(OllamaError::from)?;
    let dir = b.out_dir.join(format!("{tier}-{version}"));
    std::fs::create_dir_all(&dir).map_err(|e| BundleError::Write {
        path: dir.clone(),
        reason: e.to_string(),
    })?;
    let file = format!("tierforge-{tier}-{version}.{}.gguf", b.quant);
    let gguf = dir.join(&file);

    progress(&format!("loading {} and the adapter", b.base));
    let t0 = std::time::Instant::now();
    let model = export::load_base(&b.base)?;
    let (adapter, _, warnings) = export::load_adapter(&b.adapter, &model)?;
    let load_s = t0.elapsed().as_secs_f64();
    progress(&format!(
        "merging and writing {} ({})",
        gguf.display(),
        b.quant
    ));
    let mut opts = GgufOptions::new(b.quant);
    opts.tier = Some(tier.into());
    opts.version = Some(version.clone());
    opts.name = Some(name.clone());
    let mut rep = export::export_loaded(&model, Some(&adapter), &gguf, &opts)?;
    rep.load_s = load_s;
    rep.warnings = warnings;

    let system = b
        .system_prompt
        .clone()
        .unwrap_or_else(|| b.tier.system_prompt().to_string());
    let mf = modelfile_for(
        &model,
        &file,
        &system,
        b.temperature,
        b.num_ctx,
        vec![
            format!("{name}: tier {tier}, built by tierforge"),
            format!("base {}, adapter {}", b.base, b.adapter.display()),
        ],
    )?;
    let text = mf
        .render()
        .map_err(|e| BundleError::Template(e.to_string()))?;
    let modelfile = dir.join("Modelfile");
    write_text(&modelfile, &text)?;
    let ollama_create = format!("cd {} && ollama create {name} -f Modelfile", dir.display());
    let readme = dir.join("README.md");
    write_text(
        &readme,
        &format!(
            "# {name}\n\nTier `{tier}` of tierforge, version {version}, {} GGUF merged from `{}` and \
             the adapter `{}`.\n\nCreate it in Ollama:\n\n```sh\n{ollama_create}\n```\n",
            b.quant,
            b.base,
            b.adapter.display()
        ),
    )?;
    progress("hashing the GGUF");
    let sha256 = crate::ollama::sha256_file(&gguf)?;
    let now = now_rfc3339();
    // The adapter folder the version was merged from, absolute, so that the loop can continue
    // training from it (a caller's own `adapter` entry is kept).
    let mut train_metrics = b.train_metrics.clone();
    if !train_metrics.is_object() {
        train_metrics = serde_json::json!({});
    }
    if train_metrics.get("adapter").is_none() {
        let dir = export::resolve_adapter_dir(&b.adapter)?;
        train_metrics["adapter"] = serde_json::json!(std::fs::canonicalize(&dir).unwrap_or(dir));
    }
    if let Some(r) = registry.as_mut() {
        let parent = r.production(tier)?.map(|p| p.version);
        r.add(&VersionRecord {
            tier: tier.into(),
            version: version.clone(),
            parent_version: parent,
            base_model: b.base.clone(),
            dataset_hash: b.dataset_hash.clone(),
            dataset_size: b.dataset_size,
            config_hash: b.config_hash.clone(),
            train_metrics,
            eval_metrics: serde_json::Value::Null,
            gguf_path: Some(gguf.display().to_string()),
            gguf_sha256: Some(sha256.clone()),
            gguf_size: Some(rep.bytes),
            ollama_name: None,
            ollama_digest: None,
            created_at: now,
            status: Status::Candidate,
            note: Some("built, not pushed".into()),
        })?;
    }
    let mut pushed = false;
    let mut ollama_digest = None;
    if let Some(host) = &b.ollama_host {
        let ollama = Ollama::new(host)?;
        progress(&format!("uploading the GGUF to {}", ollama.base_url()));
        let digest = ollama.ensure_blob(&gguf, &mut |_, _| {})?;
        progress(&format!("creating {name}"));
        let req = CreateRequest {
            model: name.clone(),
            files: [(file.clone(), digest.clone())].into_iter().collect(),
            template: mf.template.clone(),
            system: mf.system.clone(),
            parameters: mf.parameters_json(),
            license: mf.license.clone(),
            stream: true,
        };
        ollama.create(&req, &mut |p| {
            if !p.status.is_empty() {
                progress(&format!("ollama: {}", p.status));
            }
        })?;
        if let Some(r) = registry.as_mut() {
            r.set_ollama(tier, &version, &name, Some(&digest))?;
        }
        pushed = true;
        ollama_digest = Some(digest);
    }
    Ok(TierBundle {
        name,
        tier: b.tier,
        version,
        dir,
        gguf,
        gguf_bytes: rep.bytes,
        sha256,
        modelfile,
        readme,
        ollama_create,
        pushed,
        ollama_digest,
        registered: registry.is_some(),
        export: rep,
    })
}
