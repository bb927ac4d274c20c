//! Derives an Ollama TEMPLATE (Go `text/template`) from a model's own Jinja chat template, so that
//! Ollama renders exactly what training rendered.
//!
//! The Jinja template is probed, not parsed: it is rendered with sentinel contents for a system,
//! a user and an assistant turn, and the text around the sentinels gives the turn layout
//! (`<prefix><role><infix><content><suffix>`), the generation prompt, a default system prompt the
//! template injects when none is given, and a leading BOS. Templates whose turns do not follow
//! one layout (or that transform the content) are refused with the reason, never approximated.

use serde::Serialize;

/// Renders messages `(role, content)` with the Jinja template; `bool` = add_generation_prompt.
pub type Render<'a> = dyn Fn(&[(&str, &str)], bool) -> Result<String, String> + 'a;

/// The turn layout found in a chat template.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct TurnLayout {
    /// Text before the first turn (a BOS token, usually).
    pub preamble: String,
    /// Turn text before the role name.
    pub prefix: String,
    /// Turn text between the role name and the content.
    pub infix: String,
    /// Turn text after the content (the end-of-turn marker and what follows it).
    pub suffix: String,
    /// Appended for `add_generation_prompt`.
    pub generation_prompt: String,
    /// The system prompt the template inserts when the conversation has none.
    pub default_system: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("cannot translate the chat template to an Ollama TEMPLATE: {0}")]
pub struct TemplateError(pub String);

const S: &str = "\u{E000}sys\u{E001}";
const U: &str = "\u{E000}usr\u{E001}";
const A: &str = "\u{E000}ast\u{E001}";
const U2: &str = "\u{E000}usr2\u{E001}";

fn split_once<'a>(
    hay: &'a str,
    needle: &str,
    what: &str,
) -> Result<(&'a str, &'a str), TemplateError> {
    hay.split_once(needle)
        .ok_or_else(|| TemplateError(format!("the {what} content does not appear verbatim in the rendering (the template transforms message content)")))
}

/// Finds the turn layout by rendering probe conversations.
pub fn probe(render: &Render<'_>) -> Result<TurnLayout, TemplateError> {
    let r = |m: &[(&str, &str)], g: bool| {
        render(m, g)
            .map_err(|e| TemplateError(format!("rendering a probe conversation failed: {e}")))
    };
    let full = r(
        &[("system", S), ("user", U), ("assistant", A), ("user", U2)],
        false,
    )?;
    let (before_s, rest) = split_once(&full, S, "system")?;
    let (s_to_u, rest) = split_once(rest, U, "user")?;
    let (u_to_a, rest) = split_once(rest, A, "assistant")?;
    let (a_to_u2, after_u2) = split_once(rest, U2, "second user")?;

    // Between two turns: <suffix><prefix><role><infix>. The assistant→user gap and the
    // system→user gap must agree; the user→assistant gap differs only by the role name.
    if s_to_u != a_to_u2 {
        return Err(TemplateError(
            "system and assistant turns end differently".into(),
        ));
    }
    let suffix = after_u2.to_owned();
    let gap_user = s_to_u.strip_prefix(suffix.as_str()).ok_or_else(|| {
        TemplateError("a turn's ending is not what the last turn ends with".into())
    })?;
    let (prefix, infix) = gap_user.rsplit_once("user").ok_or_else(|| {
        TemplateError("the role name `user` does not appear in the turn header".into())
    })?;
    let expect_assistant = format!("{suffix}{prefix}assistant{infix}");
    if u_to_a != expect_assistant {
        return Err(TemplateError(format!("the assistant turn header differs from the user one: {u_to_a:?} vs {expect_assistant:?}")));
    }
    let sys_header = format!("{prefix}system{infix}");
    let preamble = before_s
        .strip_suffix(sys_header.as_str())
        .ok_or_else(|| TemplateError(format!("the system turn header is not {sys_header:?}")))?
        .to_owned();

    // Generation prompt: the difference between rendering with and without it.
    let without = r(&[("system", S), ("user", U)], false)?;
    let with = r(&[("system", S), ("user", U)], true)?;
    let generation_prompt = with
        .strip_prefix(without.as_str())
        .ok_or_else(|| {
            TemplateError("add_generation_prompt changes more than the end of the text".into())
        })?
        .to_owned();

    // Default system prompt: rendered when the conversation starts without one.
    let bare = r(&[("user", U)], false)?;
    let plain = format!("{preamble}{prefix}user{infix}{U}{suffix}");
    let default_system = if bare == plain {
        None
    } else {
        let head = bare
            .strip_suffix(&plain[preamble.len()..])
            .and_then(|h| h.strip_prefix(preamble.as_str()))
            .and_then(|h| h.strip_prefix(sys_header.as_str()))
            .and_then(|h| h.strip_suffix(suffix.as_str()))
            .ok_or_else(|| {
                TemplateError(
                    "without a system message the template adds text that is not a system turn"
                        .into(),
                )
            })?;
        Some(head.to_owned())
    };
    let layout = TurnLayout {
        preamble,
        prefix: prefix.to_owned(),
        infix: infix.to_owned(),
        suffix,
        generation_prompt,
        default_system,
    };
    // Check the layout on a longer conversation than the probes.
    let conv = [
        ("system", "a"),
        ("user", "b"),
        ("assistant", "c"),
        ("user", "d"),
        ("assistant", "e"),
    ];
    let expect = layout.render(&conv, true);
    let got = r(&conv, true)?;
    if got != expect {
        return Err(TemplateError(format!(
            "the derived layout does not reproduce a five-turn conversation: {got:?} vs {expect:?}"
        )));
    }
    Ok(layout)
}

/// Escapes literal text for a Go template (only `{{` is special).
fn go_literal(s: &str) -> String {
    s.replace("{{", "{{\"{{\"}}")
}

impl TurnLayout {
    /// What the layout renders for a conversation (the same as the Jinja template).
    pub fn render(&self, messages: &[(&str, &str)], add_generation_prompt: bool) -> String {
        let mut out = self.preamble.clone();
        if let Some(d) = &self.default_system {
            if messages.first().is_none_or(|m| m.0 != "system") {
                out.push_str(&format!(
                    "{}system{}{d}{}",
                    self.prefix, self.infix, self.suffix
                ));
            }
        }
        for (role, content) in messages {
            out.push_str(&format!(
                "{}{role}{}{content}{}",
                self.prefix, self.infix, self.suffix
            ));
        }
        if add_generation_prompt {
            out.push_str(&self.generation_prompt);
        }
        out
    }

    /// The Ollama TEMPLATE. `bos_added_by_tokenizer` drops a preamble that is just the BOS token
    /// text, because llama.cpp adds BOS itself when the GGUF says `add_bos_token`.
    pub fn to_go_template(&self, bos_text: Option<&str>, bos_added_by_tokenizer: bool) -> String {
        let preamble = if bos_added_by_tokenizer && bos_text == Some(self.preamble.as_str()) {
            ""
        } else {
            self.preamble.as_str()
        };
        let mut t = go_literal(preamble);
        if let Some(d) = &self.default_system {
            t.push_str(&format!(
                "{{{{- if or (not .Messages) (ne (index .Messages 0).Role \"system\") }}}}{}{}{}{}{}{{{{ end }}}}",
                go_literal(&self.prefix),
                "system",
                go_literal(&self.infix),
                go_literal(d),
                go_literal(&self.suffix)
            ));
        }
        t.push_str(&format!(
            "{{{{- range .Messages }}}}{}{{{{ .Role }}}}{}{{{{ .Content }}}}{}{{{{ end }}}}{}",
            go_literal(&self.prefix),
            go_literal(&self.infix),
            go_literal(&self.suffix),
            go_literal(&self.generation_prompt)
        ));
        t
    }

    /// The strings that end an assistant turn, for `PARAMETER stop`: the start of the suffix up
    /// to its first whitespace (`<|im_end|>`, `<|eot_id|>`) and the turn prefix (`<|im_start|>`).
    pub fn stop_sequences(&self) -> Vec<String> {
        let mut v = Vec::new();
        let end = self.suffix.split(char::is_whitespace).next().unwrap_or("");
        if !end.is_empty() {
            v.push(end.to_owned());
        }
        let start = self.prefix.trim();
        if !start.is_empty() && !v.iter().any(|x| x == start) {
            v.push(start.to_owned());
        }
        v
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn chatml(m: &[(&str, &str)], g: bool) -> Result<String, String> {
        let mut out = String::new();
        if m.first().is_none_or(|x| x.0 != "system") {
            out.push_str("<|im_start|>system\nDefault<|im_end|>\n");
        }
        for (r, c) in m {
            out.push_str(&format!("<|im_start|>{r}\n{c}<|im_end|>\n"));
        }
        if g {
            out.push_str("<|im_start|>assistant\n");
        }
        Ok(out)
    }

    fn llama3(m: &[(&str, &str)], g: bool) -> Result<String, String> {
        let mut out = String::from("<|begin_of_text|>");
        for (r, c) in m {
            out.push_str(&format!(
                "<|start_header_id|>{r}<|end_header_id|>\n\n{c}<|eot_id|>"
            ));
        }
        if g {
            out.push_str("<|start_header_id|>assistant<|end_header_id|>\n\n");
        }
        Ok(out)
    }

    #[test]
    fn probes_chatml_with_a_default_system_prompt() {
        let l = probe(&chatml).unwrap();
        assert_eq!(l.prefix, "<|im_start|>");
        assert_eq!(l.infix, "\n");
        assert_eq!(l.suffix, "<|im_end|>\n");
        assert_eq!(l.generation_prompt, "<|im_start|>assistant\n");
        assert_eq!(l.default_system.as_deref(), Some("Default"));
        assert_eq!(l.stop_sequences(), ["<|im_end|>", "<|im_start|>"]);
    }

    #[test]
    fn probes_llama3_and_drops_bos_the_tokenizer_adds() {
        let l = probe(&llama3).unwrap();
        assert_eq!(l.preamble, "<|begin_of_text|>");
        assert_eq!(l.stop_sequences(), ["<|eot_id|>", "<|start_header_id|>"]);
        let t = l.to_go_template(Some("<|begin_of_text|>"), true);
        assert!(
            t.starts_with("{{- range .Messages }}<|start_header_id|>"),
            "{t}"
        );
    }

    #[test]
    fn refuses_templates_that_transform_content() {
        let upper = |m: &[(&str, &str)], g: bool| {
            chatml(
                &m.iter().map(|(r, c)| (*r, c.trim())).collect::<Vec<_>>(),
                g,
            )
            .map(|s| s.to_uppercase())
        };
        assert!(probe(&upper).is_err());
    }
}
