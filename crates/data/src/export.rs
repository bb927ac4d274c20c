//! Export to training formats: OpenAI chat `messages` JSONL (the lingua franca) and
//! prompt/completion JSONL.

use serde::Serialize;
use serde_json::json;

use crate::completion::{self, messages, user_prompt};
use crate::sample::{Message, Sample};

/// Training file formats.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum ExportFormat {
    Messages,
    PromptCompletion,
}

/// The conversation of a sample for training. App records are rendered with the given system
/// prompt (none when `system` is `None`); chat and prompt/completion samples keep the
/// conversation they came with. `None` when the sample holds no listing to train on.
pub fn conversation(s: &Sample, system: Option<&str>) -> Option<Vec<Message>> {
    match (&s.input, &s.listing, s.format) {
        (Some(input), Some(listing), crate::sample::SourceFormat::App) => {
            let mut m = messages(system.unwrap_or(""), input, listing);
            if system.is_none() {
                m.remove(0);
            }
            Some(m)
        }
        _ if !s.messages.is_empty() => Some(s.messages.clone()),
        _ => None,
    }
}

/// One exported line, or `None` when the sample has nothing to train on.
pub fn export_line(s: &Sample, format: ExportFormat, system: Option<&str>) -> Option<String> {
    let conv = conversation(s, system)?;
    let value = match format {
        ExportFormat::Messages => json!({ "messages": conv }),
        ExportFormat::PromptCompletion => {
            let assistant = conv.iter().rev().find(|m| m.role == "assistant")?;
            let mut prompt = String::new();
            for m in conv.iter().filter(|m| m.role == "system") {
                prompt.push_str(&m.content);
                prompt.push_str("\n\n");
            }
            match (&s.input, s.format) {
                (Some(input), crate::sample::SourceFormat::App) => {
                    prompt.push_str(&user_prompt(input))
                }
                _ => {
                    let user = conv.iter().rfind(|m| m.role == "user")?;
                    prompt.push_str(&user.content);
                }
            }
            json!({ "prompt": prompt, "completion": assistant.content })
        }
    };
    Some(value.to_string())
}

/// The completion text of an app sample (for callers that need only the answer).
pub fn completion_of(s: &Sample) -> Option<String> {
    s.listing.as_ref().map(completion::completion)
}
