//! The record types: the app's collection format ([`AppRecord`]) and the one normalised
//! [`Sample`] that every input format becomes.

use serde::{Deserialize, Serialize};
use std::sync::Arc;

/// A product to write a listing for: the user side of every sample and of every eval product.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct ProductInput {
    pub product_name: String,
    /// Raw feature notes, as the app's users typed them.
    #[serde(default)]
    pub features: Vec<String>,
    /// `"Top > Sub"` category path.
    #[serde(default)]
    pub category: String,
    #[serde(default)]
    pub user_context: UserContext,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct UserContext {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub model_used: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub language: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tone: Option<String>,
}

impl ProductInput {
    /// The top level of the category path (`"Electronics"` for `"Electronics > Headphones"`).
    pub fn top_category(&self) -> &str {
        self.category.split('>').next().unwrap_or("").trim()
    }
}

/// A listing: the assistant side of every sample, and what the rubric scores.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Listing {
    pub title: String,
    pub features: Vec<String>,
    /// May hold basic HTML (`p`, `ul`, `li`, `br`, `b`, ...).
    pub description: String,
}

/// The app's own output block.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct AppOutput {
    pub title: String,
    pub features_formatted: Vec<String>,
    pub description: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub metadata: Option<AppMetadata>,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct AppMetadata {
    #[serde(default)]
    pub word_count: Option<f64>,
    #[serde(default)]
    pub character_count: Option<f64>,
    #[serde(default)]
    pub seo_score: Option<f64>,
    /// The app's own compliance score (0–100): shown beside ours, never trusted.
    #[serde(default)]
    pub walmart_compliance: Option<f64>,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct QualityMetrics {
    #[serde(default)]
    pub title_length: Option<f64>,
    #[serde(default)]
    pub features_count: Option<f64>,
    #[serde(default)]
    pub description_words: Option<f64>,
    /// The app's own overall score (0–100): shown beside ours, never trusted.
    #[serde(default)]
    pub overall_score: Option<f64>,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct UserFeedback {
    /// 1–5 stars.
    pub rating: u8,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub comment: Option<String>,
}

/// Marks a sample made by `data augment`; such samples never go to a validation set.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Augmentation {
    /// Id of the sample it was made from.
    pub of: String,
    /// The operations applied, in order (`reorder_features`, `synonyms`, `style_html`, ...).
    pub ops: Vec<String>,
}

/// One record of the app's collection format. Unknown fields are ignored here but kept in
/// [`Sample::raw`], which is what the commands write back out.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AppRecord {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub id: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub timestamp: Option<String>,
    pub input: ProductInput,
    pub output: AppOutput,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub quality_metrics: Option<QualityMetrics>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub feedback: Option<UserFeedback>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub augmented: Option<Augmentation>,
}

/// What a [`Sample`] keeps of an [`AppRecord`] besides its product ([`Sample::input`]) and its
/// listing ([`Sample::listing`]), which are moved there rather than kept twice.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct AppFields {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub timestamp: Option<String>,
    /// `output.metadata`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub metadata: Option<AppMetadata>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub quality_metrics: Option<QualityMetrics>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub feedback: Option<UserFeedback>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub augmented: Option<Augmentation>,
}

/// A chat message (OpenAI fine-tuning format).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Message {
    pub role: String,
    pub content: String,
    /// 0 or 1: whether an assistant message is trained on (OpenAI's `weight`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub weight: Option<u8>,
}

/// Which input format a sample came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum SourceFormat {
    App,
    Messages,
    PromptCompletion,
}

/// Where a record was read from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Origin {
    pub file: Arc<str>,
    /// 1-based line of the record's first character.
    pub line: usize,
}

/// The one sample type every input format is normalised into.
#[derive(Debug, Clone)]
pub struct Sample {
    /// The record's `id`, or `file:line` when it has none.
    pub id: String,
    pub origin: Origin,
    pub format: SourceFormat,
    /// The product, when known (always for app records; parsed from the user prompt otherwise).
    pub input: Option<ProductInput>,
    /// The listing to score: the app's output, or the parsed last assistant answer.
    pub listing: Option<Listing>,
    /// Why the assistant answer could not be read as a listing (chat and prompt/completion only).
    pub listing_error: Option<String>,
    /// The conversation as given (chat input) or as built from prompt/completion; empty for app
    /// records, whose conversation is rendered at export time with the tier's system prompt.
    pub messages: Vec<Message>,
    /// App-only fields.
    pub app: Option<AppFields>,
    /// The record exactly as read (all fields, unknown ones included), written back by commands.
    pub raw: String,
}

impl Sample {
    pub fn category(&self) -> &str {
        self.input
            .as_ref()
            .map(|i| i.category.as_str())
            .unwrap_or("")
    }

    pub fn top_category(&self) -> &str {
        self.input.as_ref().map(|i| i.top_category()).unwrap_or("")
    }

    pub fn is_augmented(&self) -> bool {
        self.app.as_ref().is_some_and(|a| a.augmented.is_some())
    }

    /// The app's own compliance score, if the record carries one (`walmart_compliance`, else
    /// `overall_score`).
    pub fn app_score(&self) -> Option<f64> {
        let app = self.app.as_ref()?;
        app.metadata
            .as_ref()
            .and_then(|m| m.walmart_compliance)
            .or_else(|| app.quality_metrics.as_ref().and_then(|q| q.overall_score))
    }
}
