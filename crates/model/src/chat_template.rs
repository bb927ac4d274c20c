//! Rendering a model's own Jinja chat template with minijinja, the way Hugging Face's
//! `apply_chat_template` does, and locating each message's tokens for loss masking.

use std::ops::Range;

use minijinja::{Environment, ErrorKind, Value};
use serde::{Deserialize, Serialize};

use crate::error::{ModelError, Result};
use crate::tokenizer::Tokenizer;

/// One chat message.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Message {
    /// `system`, `user` or `assistant`.
    pub role: String,
    pub content: String,
}

impl Message {
    pub fn new(role: impl Into<String>, content: impl Into<String>) -> Self {
        Self {
            role: role.into(),
            content: content.into(),
        }
    }
    pub fn system(content: impl Into<String>) -> Self {
        Self::new("system", content)
    }
    pub fn user(content: impl Into<String>) -> Self {
        Self::new("user", content)
    }
    pub fn assistant(content: impl Into<String>) -> Self {
        Self::new("assistant", content)
    }
}

/// Where one message lies in an encoded conversation, as token index ranges.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct MessageSpan {
    pub role: String,
    /// The whole turn as the template renders it (header, content, end-of-turn marker and
    /// whatever the template emits before it, such as a default system prompt).
    pub turn: Range<usize>,
    /// The tokens that overlap the message's content.
    pub content: Range<usize>,
}

/// A rendered and tokenized conversation.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ChatEncoding {
    pub text: String,
    pub ids: Vec<u32>,
    pub messages: Vec<MessageSpan>,
    /// Tokens of the generation prompt (`<|im_start|>assistant\n`), when requested.
    pub generation_prompt: Option<Range<usize>>,
}

/// A compiled chat template plus the special-token values it is rendered with.
#[derive(Debug)]
pub struct ChatTemplate {
    env: Environment<'static>,
    source: String,
    origin: String,
    bos_token: String,
    eos_token: String,
    unk_token: String,
    pad_token: String,
}

/// End-of-turn markers of common chat formats, checked against the template and vocabulary.
const END_OF_TURN: [&str; 6] = [
    "<|im_end|>",
    "<|eot_id|>",
    "<|end|>",
    "<end_of_turn>",
    "<|endoftext|>",
    "</s>",
];

fn raise_exception(msg: String) -> std::result::Result<String, minijinja::Error> {
    Err(minijinja::Error::new(ErrorKind::InvalidOperation, msg))
}

fn strftime_now(format: String) -> String {
    // No time-zone database here: a fixed UTC clock rendering of the common formats is enough
    // for templates that print today's date; reproducibility matters more for training data.
    let secs = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs() as i64);
    let days = secs.div_euclid(86_400);
    // Civil-from-days (Howard Hinnant).
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + i64::from(m <= 2);
    const MONTHS: [&str; 12] = [
        "January",
        "February",
        "March",
        "April",
        "May",
        "June",
        "July",
        "August",
        "September",
        "October",
        "November",
        "December",
    ];
    let month = MONTHS[(m - 1) as usize];
    format
        .replace("%d", &format!("{d:02}"))
        .replace("%m", &format!("{m:02}"))
        .replace("%Y", &y.to_string())
        .replace("%B", month)
        .replace("%b", &month[..3])
}

impl ChatTemplate {
    /// Compile `source`. `origin` names where it came from (a file and key) for errors.
    pub fn new(
        source: impl Into<String>,
        origin: impl Into<String>,
        tokenizer: &Tokenizer,
    ) -> Result<Self> {
        let source = source.into();
        let origin = origin.into();
        let mut env = Environment::new();
        // Hugging Face renders with trim_blocks and lstrip_blocks on.
        env.set_trim_blocks(true);
        env.set_lstrip_blocks(true);
        env.set_unknown_method_callback(minijinja_contrib::pycompat::unknown_method_callback);
        env.add_function("raise_exception", raise_exception);
        env.add_function("strftime_now", strftime_now);
        env.add_template_owned("chat", source.clone())
            .map_err(|e| ModelError::Template {
                origin: origin.clone(),
                reason: describe(&e),
            })?;
        let content =
            |t: Option<crate::tokenizer::SpecialToken>| t.map(|t| t.content).unwrap_or_default();
        Ok(Self {
            env,
            source,
            origin,
            bos_token: content(tokenizer.bos()),
            eos_token: content(tokenizer.eos()),
            unk_token: content(tokenizer.unk()),
            pad_token: content(tokenizer.pad()),
        })
    }

    /// The Jinja source.
    pub fn source(&self) -> &str {
        &self.source
    }
    /// Where the template came from.
    pub fn origin(&self) -> &str {
        &self.origin
    }

    /// Render `messages`, appending the assistant header when `add_generation_prompt`.
    pub fn render(&self, messages: &[Message], add_generation_prompt: bool) -> Result<String> {
        let tmpl = self.env.get_template("chat").map_err(|e| self.err(&e))?;
        let ctx = minijinja::context! {
            messages => Value::from_serialize(messages),
            add_generation_prompt => add_generation_prompt,
            bos_token => &self.bos_token,
            eos_token => &self.eos_token,
            unk_token => &self.unk_token,
            pad_token => &self.pad_token,
            tools => Value::from(()),
            documents => Value::from(()),
        };
        tmpl.render(ctx).map_err(|e| self.err(&e))
    }

    fn err(&self, e: &minijinja::Error) -> ModelError {
        ModelError::Template {
            origin: self.origin.clone(),
            reason: describe(e),
        }
    }

    /// The token that ends an assistant turn in this template (`<|im_end|>`, `<|eot_id|>`, ...),
    /// if the template writes one that the vocabulary has.
    pub fn end_of_turn(&self, tokenizer: &Tokenizer) -> Option<u32> {
        END_OF_TURN
            .iter()
            .filter(|t| {
                self.source.contains(*t)
                    || (**t == self.eos_token && self.source.contains("eos_token"))
            })
            .find_map(|t| tokenizer.token_to_id(t))
    }

    /// Render and tokenize `messages`, and find each message's tokens.
    ///
    /// Turn boundaries come from rendering growing prefixes of the conversation; a template
    /// whose rendering of a prefix is not a prefix of the full rendering is rejected.
    pub fn encode(
        &self,
        tokenizer: &Tokenizer,
        messages: &[Message],
        add_generation_prompt: bool,
    ) -> Result<ChatEncoding> {
        let text = self.render(messages, add_generation_prompt)?;
        let ids = tokenizer.encode(&text, false)?;
        let offsets = tokenizer.byte_offsets(&ids);
        let total = offsets.last().map_or(0, |o| o.1);
        if total != text.len() {
            return Err(ModelError::Template {
                origin: self.origin.clone(),
                reason: format!(
                    "tokens of the rendered conversation cover {total} bytes, the text has {}",
                    text.len()
                ),
            });
        }
        // First token starting at or after byte `b`.
        let first_at = |b: usize| offsets.iter().position(|o| o.0 >= b).unwrap_or(ids.len());
        let mut spans = Vec::with_capacity(messages.len());
        let mut prev_end = 0usize;
        for i in 0..messages.len() {
            let prefix = if i + 1 == messages.len() && !add_generation_prompt {
                text.clone()
            } else {
                self.render(&messages[..=i], false)?
            };
            if !text.starts_with(&prefix) {
                return Err(ModelError::Template {
                    origin: self.origin.clone(),
                    reason: format!(
                        "rendering the first {} messages is not a prefix of rendering all of them; \
                         per-message spans cannot be found",
                        i + 1
                    ),
                });
            }
            let (s, e) = (prev_end, prefix.len());
            let turn = first_at(s)..first_at(e);
            let content = &messages[i].content;
            let content_tokens = match text[s..e].find(content.as_str()) {
                Some(pos) if !content.is_empty() => {
                    let (cs, ce) = (s + pos, s + pos + content.len());
                    let start = offsets.iter().position(|o| o.1 > cs).unwrap_or(ids.len());
                    let end = offsets
                        .iter()
                        .rposition(|o| o.0 < ce)
                        .map_or(start, |j| j + 1);
                    start..end.max(start)
                }
                _ => turn.start..turn.start,
            };
            spans.push(MessageSpan {
                role: messages[i].role.clone(),
                turn,
                content: content_tokens,
            });
            prev_end = e;
        }
        let generation_prompt = add_generation_prompt.then(|| first_at(prev_end)..ids.len());
        Ok(ChatEncoding {
            text,
            ids,
            messages: spans,
            generation_prompt,
        })
    }
}

/// A minijinja error with its template line, without the source dump.
fn describe(e: &minijinja::Error) -> String {
    let mut s = match e.detail() {
        Some(d) => format!("{}: {d}", e.kind()),
        None => e.kind().to_string(),
    };
    if let Some(line) = e.line() {
        s.push_str(&format!(" (template line {line})"));
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn strftime_formats_a_date() {
        let s = strftime_now("%d %B %Y".into());
        assert_eq!(s.split(' ').count(), 3);
        assert!(s
            .split(' ')
            .nth(2)
            .and_then(|y| y.parse::<i32>().ok())
            .is_some_and(|y| y >= 2024));
    }
}
