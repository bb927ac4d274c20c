//! Ollama Modelfiles, generated from the training chat template (see [`crate::go_template`]).
//!
//! Quoting follows Ollama's parser: a value is bare, `"..."` (one line) or `"""..."""` (may span
//! lines); there is no escape processing. A value holding `"""` can only be written on one line;
//! one that also holds a newline cannot be written in a Modelfile at all (the API deploy path,
//! which sends JSON, carries it unchanged), and that is an error rather than a silent change.

use serde::Serialize;
use std::fmt::Write as _;

/// Repetition penalty of every tier (Ollama's own default, written out so that it is explicit):
/// small models fall into loops under greedy decoding without it. Evaluation decodes with the
/// same value, so the scores describe what `ollama run` does.
pub const REPEAT_PENALTY: f64 = 1.1;
/// Tokens the repetition penalty looks back over (`repeat_last_n`; Ollama's default is 64).
///
/// A listing is 300 to 400 tokens. Over Ollama's 64 a tier writes whole sentences of its
/// description a second time once they have left the window: the expert tier of a quick
/// pipeline run repeated a sentence in 14 of 36 held-out products (schema-constrained, greedy);
/// over 256 tokens, in none, and its rubric pass rate did not drop (97.2% on both).
pub const REPEAT_LAST_N: usize = 256;
/// Ollama's own `repeat_last_n` when a Modelfile or request does not set one.
pub const OLLAMA_REPEAT_LAST_N: usize = 64;
/// Sampling temperature of every tier: 0, greedy, so that the same product gives the same
/// listing and evaluation (which decodes the same way) describes what `ollama run` answers.
/// Sampling at 0.3 did not help: the expert tier of a quick pipeline run passed the rubric on
/// 8 of 12 eval products greedily, and on 6, 9 and 6 at temperature 0.3 with seeds 0, 1, 2.
pub const TEMPERATURE: f64 = 0.0;
/// Top-k cut when a user raises the temperature (Ollama's default, written out so that
/// evaluation with `--temperature` and `ollama run` agree).
pub const TOP_K: usize = 40;
/// Top-p cut (Ollama's default, written out for the same reason).
pub const TOP_P: f64 = 0.9;

/// Everything a tier's Modelfile says.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Modelfile {
    /// `FROM` path, relative to the Modelfile's folder (`./tierforge-basic-1.0.0.gguf`).
    pub from: String,
    pub template: String,
    pub system: Option<String>,
    /// `PARAMETER stop` values, one line each.
    pub stop: Vec<String>,
    pub temperature: f64,
    pub num_ctx: usize,
    pub top_k: Option<usize>,
    pub top_p: Option<f64>,
    pub repeat_penalty: Option<f64>,
    /// `PARAMETER repeat_last_n`: the tokens the penalty looks back over.
    pub repeat_last_n: Option<usize>,
    pub license: Option<String>,
    /// A `#` comment block at the top (what made this file).
    pub header: Vec<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{field}: {reason}")]
pub struct QuoteError {
    pub field: &'static str,
    pub reason: String,
}

/// Quotes a value for a Modelfile.
pub fn quote(field: &'static str, value: &str) -> Result<String, QuoteError> {
    let has_triple = value.contains("\"\"\"");
    let has_newline = value.contains(['\n', '\r']);
    if !has_triple && !value.ends_with('"') {
        return Ok(format!("\"\"\"{value}\"\"\""));
    }
    if !has_newline && !value.starts_with("\"\"") {
        return Ok(format!("\"{value}\""));
    }
    Err(QuoteError {
        field,
        reason: "holds both `\"\"\"` (or ends with a quote) and a line break, which the Modelfile syntax cannot express; deploy through the Ollama API instead (`tierforge deploy` with OLLAMA_HOST), which sends it unchanged".into(),
    })
}

impl Modelfile {
    /// The Modelfile text.
    pub fn render(&self) -> Result<String, QuoteError> {
        let mut s = String::new();
        for h in &self.header {
            let _ = writeln!(s, "# {h}");
        }
        let _ = writeln!(s, "FROM {}", self.from);
        let _ = writeln!(s, "TEMPLATE {}", quote("TEMPLATE", &self.template)?);
        if let Some(sys) = &self.system {
            let _ = writeln!(s, "SYSTEM {}", quote("SYSTEM", sys)?);
        }
        for stop in &self.stop {
            let _ = writeln!(s, "PARAMETER stop {}", quote_stop(stop)?);
        }
        let _ = writeln!(s, "PARAMETER temperature {}", self.temperature);
        let _ = writeln!(s, "PARAMETER num_ctx {}", self.num_ctx);
        if let Some(k) = self.top_k {
            let _ = writeln!(s, "PARAMETER top_k {k}");
        }
        if let Some(p) = self.top_p {
            let _ = writeln!(s, "PARAMETER top_p {p}");
        }
        if let Some(p) = self.repeat_penalty {
            let _ = writeln!(s, "PARAMETER repeat_penalty {p}");
        }
        if let Some(n) = self.repeat_last_n {
            let _ = writeln!(s, "PARAMETER repeat_last_n {n}");
        }
        if let Some(l) = &self.license {
            let _ = writeln!(s, "LICENSE {}", quote("LICENSE", l)?);
        }
        Ok(s)
    }

    /// The `parameters` object of `POST /api/create` (typed JSON values).
    pub fn parameters_json(&self) -> serde_json::Value {
        let mut m = serde_json::Map::new();
        m.insert("stop".into(), serde_json::json!(self.stop));
        m.insert("temperature".into(), serde_json::json!(self.temperature));
        m.insert("num_ctx".into(), serde_json::json!(self.num_ctx));
        if let Some(k) = self.top_k {
            m.insert("top_k".into(), serde_json::json!(k));
        }
        if let Some(p) = self.top_p {
            m.insert("top_p".into(), serde_json::json!(p));
        }
        if let Some(p) = self.repeat_penalty {
            m.insert("repeat_penalty".into(), serde_json::json!(p));
        }
        if let Some(n) = self.repeat_last_n {
            m.insert("repeat_last_n".into(), serde_json::json!(n));
        }
        serde_json::Value::Object(m)
    }
}

fn quote_stop(stop: &str) -> Result<String, QuoteError> {
    if stop.contains(['\n', '"']) {
        return quote("PARAMETER stop", stop);
    }
    Ok(format!("\"{stop}\""))
}

/// Parses a Modelfile the way Ollama's parser does (instructions are case-insensitive; values
/// bare, `"..."` or `"""..."""`). Used to check that what we write reads back unchanged.
pub fn parse(text: &str) -> Result<Vec<(String, String)>, String> {
    let text = text.strip_prefix('\u{feff}').unwrap_or(text);
    let mut out = Vec::new();
    let mut rest = text;
    while !rest.is_empty() {
        let line_end = rest.find('\n').unwrap_or(rest.len());
        let line = rest[..line_end].trim_end_matches('\r');
        if line.trim().is_empty() || line.trim_start().starts_with('#') {
            rest = rest.get(line_end + 1..).unwrap_or("");
            continue;
        }
        let (cmd, after) = line
            .trim_start()
            .split_once(' ')
            .ok_or_else(|| format!("missing value: {line:?}"))?;
        let mut cmd = cmd.to_ascii_uppercase();
        let offset = rest.len() - rest.trim_start().len() + cmd.len() + 1;
        let mut value_src = &rest[offset..];
        let mut after = after;
        if cmd == "PARAMETER" {
            let (name, v) = after
                .split_once(' ')
                .ok_or_else(|| format!("missing parameter value: {line:?}"))?;
            cmd = format!("PARAMETER {name}");
            value_src = &value_src[name.len() + 1..];
            after = v;
        }
        let _ = after;
        let (value, consumed) = if let Some(body) = value_src.strip_prefix("\"\"\"") {
            let end = body.find("\"\"\"").ok_or("unterminated \"\"\"")?;
            let tail = &body[end + 3..];
            let nl = tail.find('\n').map(|i| i + 1).unwrap_or(tail.len());
            (body[..end].to_owned(), 3 + end + 3 + nl)
        } else {
            let nl = value_src
                .find('\n')
                .map(|i| i + 1)
                .unwrap_or(value_src.len());
            let v = value_src[..nl].trim_end_matches(['\n', '\r']).trim();
            let v = v
                .strip_prefix('"')
                .and_then(|x| x.strip_suffix('"'))
                .unwrap_or(v);
            (v.to_owned(), nl)
        };
        out.push((cmd, value));
        rest = &value_src[consumed.min(value_src.len())..];
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample(system: &str) -> Modelfile {
        Modelfile {
            from: "./tierforge-expert-1.0.0.gguf".into(),
            template: "{{- range .Messages }}<|im_start|>{{ .Role }}\n{{ .Content }}<|im_end|>\n{{ end }}<|im_start|>assistant\n".into(),
            system: Some(system.into()),
            stop: vec!["<|im_end|>".into(), "<|im_start|>".into()],
            temperature: 0.3,
            num_ctx: 2048,
            top_k: Some(40),
            top_p: Some(0.9),
            repeat_penalty: None,
            repeat_last_n: Some(256),
            license: Some("Apache 2.0\nfull text".into()),
            header: vec!["made by tierforge".into()],
        }
    }

    #[test]
    fn renders_and_reads_back() {
        let m = sample("Answer in JSON.\nBe brief.");
        let text = m.render().unwrap();
        let parsed = parse(&text).unwrap();
        let get = |k: &str| {
            parsed
                .iter()
                .filter(|(c, _)| c == k)
                .map(|(_, v)| v.as_str())
                .collect::<Vec<_>>()
        };
        assert_eq!(get("FROM"), [m.from.as_str()]);
        assert_eq!(get("TEMPLATE"), [m.template.as_str()]);
        assert_eq!(get("SYSTEM"), ["Answer in JSON.\nBe brief."]);
        assert_eq!(get("PARAMETER stop"), ["<|im_end|>", "<|im_start|>"]);
        assert_eq!(get("PARAMETER num_ctx"), ["2048"]);
        assert_eq!(get("PARAMETER top_k"), ["40"]);
        assert_eq!(get("PARAMETER top_p"), ["0.9"]);
        assert_eq!(get("LICENSE"), ["Apache 2.0\nfull text"]);
        let json = m.parameters_json();
        assert_eq!(json["top_k"], 40);
        assert_eq!(json["top_p"], 0.9);
    }

    #[test]
    fn a_system_prompt_with_triple_quotes_is_written_on_one_line_or_refused() {
        let m = sample("Use \"\"\" never");
        let text = m.render().unwrap();
        assert!(text.contains("SYSTEM \"Use \"\"\" never\"\n"), "{text}");
        let parsed = parse(&text).unwrap();
        assert!(parsed.contains(&("SYSTEM".into(), "Use \"\"\" never".into())));
        let err = sample("Line one\nUse \"\"\" never").render().unwrap_err();
        assert_eq!(err.field, "SYSTEM");
    }
}
