//! The Ollama TEMPLATE of a loaded model, and the conversations the golden test renders with both
//! the model's Jinja template (minijinja) and Go's text/template.

use crate::go_template::{probe, TurnLayout};

/// A model's derived template.
pub struct Derived<'a> {
    pub model: &'a tierforge_model::LoadedModel,
    pub layout: TurnLayout,
    pub go_template: String,
}

#[derive(Debug, thiserror::Error)]
pub enum DeriveError {
    #[error("the model has no chat template")]
    NoTemplate,
    #[error(transparent)]
    Template(#[from] crate::go_template::TemplateError),
}

fn to_messages(m: &[(&str, &str)]) -> Vec<tierforge_model::Message> {
    m.iter()
        .map(|(r, c)| tierforge_model::Message::new(*r, *c))
        .collect()
}

/// Derives the Ollama TEMPLATE from a model's own chat template.
pub fn derive_for_model(model: &tierforge_model::LoadedModel) -> Result<Derived<'_>, DeriveError> {
    let tpl = model
        .chat_template
        .as_ref()
        .ok_or(DeriveError::NoTemplate)?;
    let render =
        |m: &[(&str, &str)], g: bool| tpl.render(&to_messages(m), g).map_err(|e| e.to_string());
    let layout = probe(&render)?;
    let bos = model.tokenizer.bos().map(|t| t.content.clone());
    let go_template = layout.to_go_template(bos.as_deref(), model.tokenizer.adds_bos());
    Ok(Derived {
        model,
        layout,
        go_template,
    })
}

impl Derived<'_> {
    /// The Jinja rendering with the generation prompt (what Ollama's TEMPLATE must equal).
    pub fn jinja(&self, conversation: &[(&str, &str)]) -> Result<String, String> {
        let tpl = self
            .model
            .chat_template
            .as_ref()
            .ok_or("no chat template")?;
        let text = tpl
            .render(&to_messages(conversation), true)
            .map_err(|e| e.to_string())?;
        // llama.cpp adds BOS itself; the TEMPLATE leaves it out (see `to_go_template`).
        let bos = self.model.tokenizer.bos().map(|t| t.content.clone());
        Ok(match bos {
            Some(b) if self.model.tokenizer.adds_bos() && self.layout.preamble == b => {
                text[b.len()..].to_owned()
            }
            _ => text,
        })
    }
}

/// Conversations the golden test renders: with and without a system prompt, several turns,
/// text that looks like template syntax, quotes, non-ASCII and line breaks.
pub fn cases() -> Vec<Vec<(&'static str, &'static str)>> {
    vec![
        vec![("system", "You write product listings."), ("user", "Product: Northpeak Kettle\nCategory: Home & Garden > Kitchen")],
        vec![("user", "Hi")],
        vec![
            ("system", "Answer with JSON."),
            ("user", "Product: A"),
            ("assistant", "{\"title\": \"Northpeak \\\"Trail\\\" 40h\", \"features\": [\"A\"], \"description\": \"<p>x</p>\"}"),
            ("user", "Shorter, please."),
        ],
        vec![("system", "Keep {{ braces }} and {% tags %} as text."), ("user", "Café — 東京 🎧 \"quoted\"")],
        vec![("system", "Line one\n\nLine three"), ("user", "  leading and trailing spaces  ")],
    ]
}
