//! A real Ollama client. ollama-rs covers listing, showing, chatting, copying and deleting;
//! small direct HTTP calls cover what it lacks: blob upload (`HEAD`/`POST /api/blobs/sha256:…`),
//! the Modelfile-free JSON `POST /api/create` with a line-buffered progress stream, and
//! `GET /api/version`. Respects `OLLAMA_HOST`. Synchronous API over a private tokio runtime.

use futures_util::StreamExt;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use std::collections::BTreeMap;
use std::io::Read;
use std::path::Path;

#[derive(Debug, thiserror::Error)]
pub enum OllamaError {
    #[error("cannot reach Ollama at {url}: {reason}")]
    Unreachable { url: String, reason: String },
    #[error("Ollama answered {status} to {what}: {message}")]
    Api {
        what: String,
        status: u16,
        message: String,
    },
    #[error("Ollama reported an error while {what}: {message}")]
    Stream { what: String, message: String },
    #[error("Ollama's answer to {what} broke off before it finished (last status: {last:?})")]
    Incomplete { what: String, last: Option<String> },
    #[error("unexpected answer from Ollama to {what}: {reason}")]
    Protocol { what: String, reason: String },
    #[error("Failed to read {path}: {source}")]
    Io {
        path: String,
        #[source]
        source: std::io::Error,
    },
    #[error(transparent)]
    Name(#[from] crate::names::NameError),
}

/// `OLLAMA_HOST` as Ollama reads it: `host`, `host:port`, `scheme://host:port`; default
/// `http://127.0.0.1:11434`. `None` when the variable is not set.
pub fn host_from_env() -> Option<String> {
    std::env::var("OLLAMA_HOST")
        .ok()
        .filter(|v| !v.trim().is_empty())
        .map(|v| normalise_host(&v))
}

/// Turns an `OLLAMA_HOST` value into a base URL.
pub fn normalise_host(v: &str) -> String {
    let v = v.trim().trim_end_matches('/');
    let (scheme, rest) = match v.split_once("://") {
        Some((s, r)) => (s.to_owned(), r.to_owned()),
        None => ("http".to_owned(), v.to_owned()),
    };
    let default_port = if scheme == "https" { 443 } else { 11434 };
    let rest = if rest.is_empty() {
        "127.0.0.1".to_owned()
    } else {
        rest
    };
    let has_port = rest
        .rsplit_once(':')
        .is_some_and(|(_, p)| p.chars().all(|c| c.is_ascii_digit()) && !p.is_empty())
        && !rest.ends_with(']');
    let host = if has_port {
        rest
    } else {
        format!("{rest}:{default_port}")
    };
    let host = host.replacen("0.0.0.0", "127.0.0.1", 1);
    format!("{scheme}://{host}")
}

/// `sha256:<hex>` of a file, read in 1 MiB blocks.
pub fn sha256_file(path: &Path) -> Result<String, OllamaError> {
    let io = |source| OllamaError::Io {
        path: path.display().to_string(),
        source,
    };
    let mut f = std::fs::File::open(path).map_err(io)?;
    let mut h = Sha256::new();
    let mut buf = vec![0u8; 1 << 20];
    loop {
        let n = f.read(&mut buf).map_err(io)?;
        if n == 0 {
            break;
        }
        h.update(&buf[..n]);
    }
    Ok(format!("sha256:{:x}", h.finalize()))
}

/// The body of `POST /api/create` (current JSON form; no Modelfile text).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CreateRequest {
    pub model: String,
    /// File name in the model → blob digest (`sha256:…`).
    pub files: BTreeMap<String, String>,
    pub template: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub system: Option<String>,
    pub parameters: serde_json::Value,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub license: Option<String>,
    pub stream: bool,
}

/// One line of a progress stream.
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
pub struct Progress {
    #[serde(default)]
    pub status: String,
    #[serde(default)]
    pub digest: Option<String>,
    #[serde(default)]
    pub total: Option<u64>,
    #[serde(default)]
    pub completed: Option<u64>,
    #[serde(default)]
    pub error: Option<String>,
}

/// Decoding options of a chat request (`options` of `/api/chat`).
#[derive(Debug, Clone, PartialEq)]
pub struct ChatDecoding {
    pub temperature: f32,
    /// Top-k and top-p cuts (`None`: the model's own, from its Modelfile).
    pub top_k: Option<u32>,
    pub top_p: Option<f32>,
    pub seed: i32,
    pub repeat_penalty: f32,
    pub repeat_last_n: i32,
    /// Most tokens to generate (`None`: the model's own limit).
    pub num_predict: Option<i32>,
    /// Structured output: a JSON schema sent as the request's `format` (Ollama 0.5 or later).
    pub format: Option<serde_json::Value>,
}

impl ChatDecoding {
    /// Greedy decoding with the tiers' repetition penalty, as evaluation uses.
    pub fn greedy(seed: i32) -> Self {
        Self {
            temperature: 0.0,
            top_k: None,
            top_p: None,
            seed,
            repeat_penalty: crate::modelfile::REPEAT_PENALTY as f32,
            repeat_last_n: crate::modelfile::REPEAT_LAST_N as i32,
            num_predict: None,
            format: None,
        }
    }
}

/// A chat reply.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ChatReply {
    pub content: String,
    /// Tokens generated, when Ollama reports it.
    pub eval_count: Option<u64>,
    /// Generation time in seconds, when Ollama reports it.
    pub eval_seconds: Option<f64>,
}

pub struct Ollama {
    base: String,
    http: reqwest::Client,
    rs: ollama_rs::Ollama,
    rt: tokio::runtime::Runtime,
}

impl Ollama {
    /// A client for the Ollama at `base` (`http://host:port`).
    pub fn new(base: &str) -> Result<Self, OllamaError> {
        let base = normalise_host(base);
        let unreachable = |reason: String| OllamaError::Unreachable {
            url: base.clone(),
            reason,
        };
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .map_err(|e| unreachable(e.to_string()))?;
        let http = reqwest::Client::builder()
            .build()
            .map_err(|e| unreachable(e.to_string()))?;
        let rs =
            ollama_rs::Ollama::try_new(base.as_str()).map_err(|e| unreachable(e.to_string()))?;
        Ok(Self { base, http, rs, rt })
    }

    /// A client for `OLLAMA_HOST`, or `None` when it is not set.
    pub fn from_env() -> Option<Result<Self, OllamaError>> {
        host_from_env().map(|h| Self::new(&h))
    }

    pub fn base_url(&self) -> &str {
        &self.base
    }

    fn send_err(&self, e: reqwest::Error) -> OllamaError {
        OllamaError::Unreachable {
            url: self.base.clone(),
            reason: e.to_string(),
        }
    }

    async fn api_error(what: &str, resp: reqwest::Response) -> OllamaError {
        let status = resp.status().as_u16();
        let text = resp.text().await.unwrap_or_default();
        let message = serde_json::from_str::<serde_json::Value>(&text)
            .ok()
            .and_then(|v| v["error"].as_str().map(str::to_owned))
            .unwrap_or(text);
        OllamaError::Api {
            what: what.into(),
            status,
            message,
        }
    }

    /// `GET /api/version`.
    pub fn version(&self) -> Result<String, OllamaError> {
        self.rt.block_on(async {
            let what = "GET /api/version";
            let resp = self
                .http
                .get(format!("{}/api/version", self.base))
                .send()
                .await
                .map_err(|e| self.send_err(e))?;
            if !resp.status().is_success() {
                return Err(Self::api_error(what, resp).await);
            }
            let v: serde_json::Value = resp.json().await.map_err(|e| OllamaError::Protocol {
                what: what.into(),
                reason: e.to_string(),
            })?;
            v["version"]
                .as_str()
                .map(str::to_owned)
                .ok_or_else(|| OllamaError::Protocol {
                    what: what.into(),
                    reason: format!("no `version` in {v}"),
                })
        })
    }

    /// `HEAD /api/blobs/<digest>`: whether the server has the blob.
    pub fn has_blob(&self, digest: &str) -> Result<bool, OllamaError> {
        self.rt.block_on(async {
            let what = format!("HEAD /api/blobs/{digest}");
            let resp = self
                .http
                .head(format!("{}/api/blobs/{digest}", self.base))
                .send()
                .await
                .map_err(|e| self.send_err(e))?;
            match resp.status().as_u16() {
                200 => Ok(true),
                404 => Ok(false),
                _ => Err(Self::api_error(&what, resp).await),
            }
        })
    }

    /// `POST /api/blobs/<digest>` with the file's bytes, streamed; `progress(sent, total)`.
    pub fn push_blob(
        &self,
        path: &Path,
        digest: &str,
        progress: &mut dyn FnMut(u64, u64),
    ) -> Result<(), OllamaError> {
        let io = |source| OllamaError::Io {
            path: path.display().to_string(),
            source,
        };
        let total = std::fs::metadata(path).map_err(io)?.len();
        let file = std::fs::File::open(path).map_err(io)?;
        self.rt.block_on(async {
            let what = format!("POST /api/blobs/{digest}");
            // Stream the file in 1 MiB blocks: GGUF files are gigabytes on real models.
            let chunks = futures_util::stream::unfold(file, |mut f| async move {
                let mut buf = vec![0u8; 1 << 20];
                match f.read(&mut buf) {
                    Ok(0) => None,
                    Ok(n) => {
                        buf.truncate(n);
                        Some((Ok::<Vec<u8>, std::io::Error>(buf), f))
                    }
                    Err(e) => Some((Err(e), f)),
                }
            });
            let body = reqwest::Body::wrap_stream(chunks);
            let resp = self
                .http
                .post(format!("{}/api/blobs/{digest}", self.base))
                .header(reqwest::header::CONTENT_LENGTH, total)
                .body(body)
                .send()
                .await
                .map_err(|e| self.send_err(e))?;
            if resp.status().is_success() {
                progress(total, total);
                Ok(())
            } else {
                Err(Self::api_error(&what, resp).await)
            }
        })
    }

    /// Uploads a file as a blob unless the server has it already. Returns its digest.
    pub fn ensure_blob(
        &self,
        path: &Path,
        progress: &mut dyn FnMut(u64, u64),
    ) -> Result<String, OllamaError> {
        let digest = sha256_file(path)?;
        if !self.has_blob(&digest)? {
            self.push_blob(path, &digest, progress)?;
        }
        Ok(digest)
    }

    /// `POST /api/create`, following the progress stream line by line until `success`.
    pub fn create(
        &self,
        req: &CreateRequest,
        progress: &mut dyn FnMut(&Progress),
    ) -> Result<(), OllamaError> {
        crate::names::validate(&req.model)?;
        self.rt.block_on(async {
            let what = format!("creating {}", req.model);
            let resp = self
                .http
                .post(format!("{}/api/create", self.base))
                .json(req)
                .send()
                .await
                .map_err(|e| self.send_err(e))?;
            if !resp.status().is_success() {
                return Err(Self::api_error("POST /api/create", resp).await);
            }
            let mut stream = resp.bytes_stream();
            let mut buf: Vec<u8> = Vec::new();
            let mut last: Option<String> = None;
            let mut handle =
                |line: &[u8], last: &mut Option<String>| -> Result<bool, OllamaError> {
                    let line = String::from_utf8_lossy(line);
                    let line = line.trim();
                    if line.is_empty() {
                        return Ok(false);
                    }
                    let p: Progress =
                        serde_json::from_str(line).map_err(|e| OllamaError::Protocol {
                            what: what.clone(),
                            reason: format!("{e}: {line}"),
                        })?;
                    if let Some(err) = p.error {
                        return Err(OllamaError::Stream {
                            what: what.clone(),
                            message: err,
                        });
                    }
                    progress(&p);
                    *last = Some(p.status.clone());
                    Ok(p.status == "success")
                };
            let mut done = false;
            while let Some(chunk) = stream.next().await {
                let chunk = match chunk {
                    Ok(c) => c,
                    Err(_) => {
                        return Err(OllamaError::Incomplete {
                            what: what.clone(),
                            last,
                        })
                    }
                };
                buf.extend_from_slice(&chunk);
                while let Some(nl) = buf.iter().position(|&b| b == b'\n') {
                    let line: Vec<u8> = buf.drain(..=nl).collect();
                    done |= handle(&line, &mut last)?;
                }
            }
            if !buf.is_empty() {
                done |= handle(&buf, &mut last)?;
            }
            if done {
                Ok(())
            } else {
                Err(OllamaError::Incomplete { what, last })
            }
        })
    }

    fn rs_err(&self, what: &str, e: ollama_rs::error::OllamaError) -> OllamaError {
        let msg = e.to_string();
        if msg.contains("error sending request") || msg.contains("connect") {
            OllamaError::Unreachable {
                url: self.base.clone(),
                reason: msg,
            }
        } else {
            OllamaError::Protocol {
                what: what.into(),
                reason: msg,
            }
        }
    }

    /// `POST /api/copy` (ollama-rs): points `destination` at `source`.
    pub fn copy(&self, source: &str, destination: &str) -> Result<(), OllamaError> {
        crate::names::validate(destination)?;
        self.rt
            .block_on(
                self.rs
                    .copy_model(source.to_owned(), destination.to_owned()),
            )
            .map_err(|e| self.rs_err("POST /api/copy", e))
    }

    /// `DELETE /api/delete` (ollama-rs).
    pub fn delete(&self, model: &str) -> Result<(), OllamaError> {
        self.rt
            .block_on(self.rs.delete_model(model.to_owned()))
            .map_err(|e| self.rs_err("DELETE /api/delete", e))
    }

    /// `GET /api/tags` (ollama-rs): local model names.
    pub fn list(&self) -> Result<Vec<String>, OllamaError> {
        let models = self
            .rt
            .block_on(self.rs.list_local_models())
            .map_err(|e| self.rs_err("GET /api/tags", e))?;
        Ok(models.into_iter().map(|m| m.name).collect())
    }

    /// `POST /api/show` (ollama-rs): the model's template and parameters.
    pub fn show(&self, model: &str) -> Result<(String, String), OllamaError> {
        let info = self
            .rt
            .block_on(self.rs.show_model_info(model.to_owned()))
            .map_err(|e| self.rs_err("POST /api/show", e))?;
        Ok((info.template, info.parameters))
    }

    /// `POST /api/chat` (ollama-rs), not streamed: what `ollama run` would answer under
    /// `decoding`.
    pub fn chat(
        &self,
        model: &str,
        messages: &[(&str, &str)],
        decoding: &ChatDecoding,
    ) -> Result<ChatReply, OllamaError> {
        use ollama_rs::generation::chat::{request::ChatMessageRequest, ChatMessage};
        let msgs: Vec<ChatMessage> = messages
            .iter()
            .map(|(role, content)| match *role {
                "system" => ChatMessage::system((*content).to_owned()),
                "assistant" => ChatMessage::assistant((*content).to_owned()),
                _ => ChatMessage::user((*content).to_owned()),
            })
            .collect();
        let mut opts = ollama_rs::models::ModelOptions::default()
            .temperature(decoding.temperature)
            .seed(decoding.seed)
            .repeat_penalty(decoding.repeat_penalty)
            .repeat_last_n(decoding.repeat_last_n);
        if let Some(n) = decoding.num_predict {
            opts = opts.num_predict(n);
        }
        if let Some(k) = decoding.top_k {
            opts = opts.top_k(k);
        }
        if let Some(p) = decoding.top_p {
            opts = opts.top_p(p);
        }
        let mut req = ChatMessageRequest::new(model.to_owned(), msgs).options(opts);
        if let Some(schema) = &decoding.format {
            use ollama_rs::generation::parameters::{FormatType, JsonStructure};
            let schema: JsonStructure =
                serde_json::from_value(schema.clone()).map_err(|e| OllamaError::Protocol {
                    what: "POST /api/chat".into(),
                    reason: format!("the `format` schema is not a JSON schema object: {e}"),
                })?;
            req = req.format(FormatType::StructuredJson(Box::new(schema)));
        }
        let resp = self
            .rt
            .block_on(self.rs.send_chat_messages(req))
            .map_err(|e| self.rs_err("POST /api/chat", e))?;
        let (eval_count, eval_seconds) = match &resp.final_data {
            Some(f) => (Some(f.eval_count), Some(f.eval_duration as f64 / 1e9)),
            None => (None, None),
        };
        Ok(ChatReply {
            content: resp.message.content,
            eval_count,
            eval_seconds,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ollama_host_forms() {
        assert_eq!(normalise_host("127.0.0.1"), "http://127.0.0.1:11434");
        assert_eq!(normalise_host("0.0.0.0:1234"), "http://127.0.0.1:1234");
        assert_eq!(
            normalise_host("http://gpu-box:11434/"),
            "http://gpu-box:11434"
        );
        assert_eq!(
            normalise_host("https://ollama.example"),
            "https://ollama.example:443"
        );
        assert_eq!(normalise_host(""), "http://127.0.0.1:11434");
    }
}
