//! The conversation format, defined once: the user prompt that describes a product, the
//! assistant's answer (a JSON listing), the per-tier system prompts, and the parsers that read
//! both back.

use serde::Serialize;
use std::fmt;

use crate::rubric::RubricConfig;
use crate::sample::{Listing, Message, ProductInput, UserContext};

/// The training tiers, in the order they are trained.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, serde::Deserialize,
)]
#[serde(rename_all = "lowercase")]
pub enum Tier {
    Basic,
    Advanced,
    Expert,
}

impl Tier {
    pub const ALL: [Tier; 3] = [Tier::Basic, Tier::Advanced, Tier::Expert];

    pub fn name(self) -> &'static str {
        match self {
            Tier::Basic => "basic",
            Tier::Advanced => "advanced",
            Tier::Expert => "expert",
        }
    }

    /// The tier's system prompt, from `modelfiles/system/<tier>.txt` (compiled in).
    pub fn system_prompt(self) -> &'static str {
        match self {
            Tier::Basic => include_str!("../../../modelfiles/system/basic.txt").trim_end(),
            Tier::Advanced => include_str!("../../../modelfiles/system/advanced.txt").trim_end(),
            Tier::Expert => include_str!("../../../modelfiles/system/expert.txt").trim_end(),
        }
    }
}

impl fmt::Display for Tier {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl std::str::FromStr for Tier {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "basic" => Ok(Tier::Basic),
            "advanced" => Ok(Tier::Advanced),
            "expert" => Ok(Tier::Expert),
            _ => Err(format!(
                "unknown tier `{s}`: expected basic, advanced or expert"
            )),
        }
    }
}

/// Renders the user prompt for a product:
///
/// ```text
/// Product: Northpeak Trail Headphones
/// Category: Electronics > Headphones
/// Tone: professional
/// Language: en
/// Features:
/// - 40h battery
/// - bluetooth 5.3
/// ```
pub fn user_prompt(input: &ProductInput) -> String {
    let mut s = String::with_capacity(128);
    s.push_str("Product: ");
    s.push_str(one_line(&input.product_name).as_ref());
    s.push_str("\nCategory: ");
    s.push_str(one_line(&input.category).as_ref());
    s.push_str("\nTone: ");
    s.push_str(input.user_context.tone.as_deref().unwrap_or("professional"));
    s.push_str("\nLanguage: ");
    s.push_str(input.user_context.language.as_deref().unwrap_or("en"));
    s.push_str("\nFeatures:");
    for f in &input.features {
        s.push_str("\n- ");
        s.push_str(one_line(f).as_ref());
    }
    s
}

fn one_line(s: &str) -> std::borrow::Cow<'_, str> {
    if s.contains(['\n', '\r']) {
        s.replace(['\n', '\r'], " ").into()
    } else {
        s.into()
    }
}

/// Reads a user prompt written by [`user_prompt`] back into a product. `None` when the text does
/// not follow that format (a foreign chat data set).
pub fn parse_user_prompt(text: &str) -> Option<ProductInput> {
    let mut input = ProductInput::default();
    let mut ctx = UserContext::default();
    let mut in_features = false;
    let mut seen_product = false;
    for line in text.lines() {
        let line = line.trim_end_matches('\r');
        if in_features {
            if let Some(f) = line.strip_prefix("- ") {
                input.features.push(f.trim().to_owned());
                continue;
            }
            in_features = false;
        }
        if let Some(v) = line.strip_prefix("Product: ") {
            input.product_name = v.trim().to_owned();
            seen_product = true;
        } else if let Some(v) = line.strip_prefix("Category: ") {
            input.category = v.trim().to_owned();
        } else if let Some(v) = line.strip_prefix("Tone: ") {
            ctx.tone = Some(v.trim().to_owned());
        } else if let Some(v) = line.strip_prefix("Language: ") {
            ctx.language = Some(v.trim().to_owned());
        } else if line.trim_end() == "Features:" {
            in_features = true;
        } else if !line.trim().is_empty() {
            return None;
        }
    }
    input.user_context = ctx;
    seen_product.then_some(input)
}

/// The assistant's answer for a listing: one JSON object with `title`, `features` and
/// `description`, compact, keys in that order.
pub fn completion(listing: &Listing) -> String {
    // Serialising plain strings cannot fail.
    serde_json::to_string(listing).expect("a listing always serialises")
}

/// The completion format as a JSON schema: what Ollama's `format` takes for structured outputs
/// (and what `tierforge eval` decodes with by default), for the default rubric.
pub fn json_schema() -> serde_json::Value {
    json_schema_for(&RubricConfig::default())
}

/// The completion format as a JSON schema for `rubric`: the three keys in order, and every
/// hard gate that JSON Schema can state exactly (title length, feature count and feature
/// length, in characters as the rubric counts them), plus a floor on the description's
/// characters (see [`description_min_chars`]). What the text says is left to the model.
pub fn json_schema_for(rubric: &RubricConfig) -> serde_json::Value {
    let mut desc = serde_json::json!({"type": "string"});
    let min = description_min_chars(rubric);
    if min > 0 {
        desc["minLength"] = min.into();
    }
    serde_json::json!({
        "type": "object",
        "properties": {
            "title": {
                "type": "string",
                "minLength": rubric.title_min_chars,
                "maxLength": rubric.title_max_chars
            },
            "features": {
                "type": "array",
                "items": {"type": "string", "minLength": 1, "maxLength": rubric.feature_max_chars},
                "minItems": rubric.features_min,
                "maxItems": rubric.features_max
            },
            "description": desc
        },
        "required": ["title", "features", "description"]
    })
}

/// The completion format's shape alone: the three keys in order, strings, an array of
/// strings, with no length bound.
pub fn shape_schema() -> serde_json::Value {
    serde_json::json!({
        "type": "object",
        "properties": {
            "title": {"type": "string"},
            "features": {"type": "array", "items": {"type": "string"}},
            "description": {"type": "string"}
        },
        "required": ["title", "features", "description"]
    })
}

/// Characters a description word takes, tags and spaces included, for
/// [`description_min_chars`]: the bundled corpus averages 6.1 (5.3 to 7.2 per description).
pub const DESCRIPTION_CHARS_PER_WORD: usize = 6;

/// Floor on the description's characters in [`json_schema_for`]: the rubric's word floor at
/// [`DESCRIPTION_CHARS_PER_WORD`] characters a word (900 for 150 words).
///
/// JSON Schema cannot count words, so this is a stand-in, not the gate: the rubric still counts
/// the words. It keeps a model from closing the description a sentence or two early, which is
/// how quickly trained tiers fail most often (135 to 149 words); under greedy decoding the one
/// token that ends the string competes with the many that continue it. No bundled description
/// of 150 words or more is shorter than 923 characters, so the floor never rules out a
/// description the rubric passes on its own.
pub fn description_min_chars(rubric: &RubricConfig) -> usize {
    rubric.description_min_words * DESCRIPTION_CHARS_PER_WORD
}

/// Why a model output is not a listing.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, thiserror::Error)]
#[serde(tag = "kind", content = "detail", rename_all = "snake_case")]
pub enum ParseError {
    #[error("empty output")]
    Empty,
    #[error("no JSON object found (output starts with {0:?})")]
    NoObject(String),
    #[error("invalid JSON: {0}")]
    Json(String),
    #[error("missing field `{0}`")]
    MissingField(&'static str),
    #[error("field `{field}`: {reason}")]
    WrongType { field: &'static str, reason: String },
    #[error("text after the JSON object: {0:?}")]
    TrailingText(String),
}

/// Reads a model's answer back into a listing.
///
/// Accepts the JSON object alone, optionally wrapped in a Markdown code fence. Anything else
/// around the object is an error, because a model that keeps talking after its answer has not
/// learned to stop. Unknown keys are ignored; `features_formatted` is accepted for `features`.
pub fn parse_completion(text: &str) -> Result<Listing, ParseError> {
    let mut body = text.trim();
    if body.is_empty() {
        return Err(ParseError::Empty);
    }
    if let Some(rest) = body.strip_prefix("```") {
        let rest = rest.strip_prefix("json").unwrap_or(rest);
        body = rest.trim();
        body = body.strip_suffix("```").unwrap_or(body).trim();
    }
    if !body.starts_with('{') {
        let head: String = body.chars().take(40).collect();
        return Err(ParseError::NoObject(head));
    }
    let mut stream = serde_json::Deserializer::from_str(body).into_iter::<serde_json::Value>();
    let value = match stream.next() {
        Some(Ok(v)) => v,
        Some(Err(e)) => return Err(ParseError::Json(e.to_string())),
        None => return Err(ParseError::Empty),
    };
    let rest = body[stream.byte_offset()..].trim();
    if !rest.is_empty() {
        let head: String = rest.chars().take(40).collect();
        return Err(ParseError::TrailingText(head));
    }
    listing_from_value(&value)
}

/// Reads a listing out of a JSON value (`{"title", "features", "description"}`).
pub fn listing_from_value(value: &serde_json::Value) -> Result<Listing, ParseError> {
    let obj = value.as_object().ok_or_else(|| ParseError::WrongType {
        field: "(root)",
        reason: format!("expected an object, got {}", kind(value)),
    })?;
    let string = |field: &'static str| -> Result<String, ParseError> {
        match obj.get(field) {
            None => Err(ParseError::MissingField(field)),
            Some(serde_json::Value::String(s)) => Ok(s.clone()),
            Some(v) => Err(ParseError::WrongType {
                field,
                reason: format!("expected a string, got {}", kind(v)),
            }),
        }
    };
    let title = string("title")?;
    let description = string("description")?;
    let features_value = obj
        .get("features")
        .or_else(|| obj.get("features_formatted"))
        .ok_or(ParseError::MissingField("features"))?;
    let arr = features_value
        .as_array()
        .ok_or_else(|| ParseError::WrongType {
            field: "features",
            reason: format!("expected an array of strings, got {}", kind(features_value)),
        })?;
    let mut features = Vec::with_capacity(arr.len());
    for (i, f) in arr.iter().enumerate() {
        match f {
            serde_json::Value::String(s) => features.push(s.clone()),
            other => {
                return Err(ParseError::WrongType {
                    field: "features",
                    reason: format!("item {i}: expected a string, got {}", kind(other)),
                })
            }
        }
    }
    Ok(Listing {
        title,
        features,
        description,
    })
}

/// A JSON value's kind, for error messages.
pub fn kind(v: &serde_json::Value) -> &'static str {
    match v {
        serde_json::Value::Null => "null",
        serde_json::Value::Bool(_) => "a boolean",
        serde_json::Value::Number(_) => "a number",
        serde_json::Value::String(_) => "a string",
        serde_json::Value::Array(_) => "an array",
        serde_json::Value::Object(_) => "an object",
    }
}

/// The conversation for one product and its listing: system (the tier's prompt), user, assistant.
pub fn messages(system: &str, input: &ProductInput, listing: &Listing) -> Vec<Message> {
    vec![
        Message {
            role: "system".into(),
            content: system.to_owned(),
            weight: None,
        },
        Message {
            role: "user".into(),
            content: user_prompt(input),
            weight: None,
        },
        Message {
            role: "assistant".into(),
            content: completion(listing),
            weight: None,
        },
    ]
}

#[cfg(test)]
mod tests {
    use super::*;

    fn product() -> ProductInput {
        ProductInput {
            product_name: "Northpeak Trail Headphones".into(),
            features: vec!["40h battery".into(), "bluetooth 5.3".into()],
            category: "Electronics > Headphones".into(),
            user_context: UserContext {
                model_used: None,
                language: Some("en".into()),
                tone: Some("friendly".into()),
            },
        }
    }

    #[test]
    fn user_prompt_round_trips() {
        let p = product();
        assert_eq!(parse_user_prompt(&user_prompt(&p)), Some(p));
        assert_eq!(parse_user_prompt("Tell me a joke"), None);
    }

    #[test]
    fn completion_round_trips() {
        let l = Listing {
            title: "T \"quoted\" é".into(),
            features: vec!["A".into(), "B".into()],
            description: "<p>x</p>\nline".into(),
        };
        assert_eq!(parse_completion(&completion(&l)).unwrap(), l);
        let fenced = format!("```json\n{}\n```", completion(&l));
        assert_eq!(parse_completion(&fenced).unwrap(), l);
    }

    #[test]
    fn parse_errors_say_why() {
        assert_eq!(parse_completion("  "), Err(ParseError::Empty));
        assert!(matches!(
            parse_completion("Sure! Here"),
            Err(ParseError::NoObject(_))
        ));
        assert!(matches!(
            parse_completion("{\"title\": "),
            Err(ParseError::Json(_))
        ));
        assert_eq!(
            parse_completion(r#"{"title":"t","description":"d"}"#),
            Err(ParseError::MissingField("features"))
        );
        assert!(matches!(
            parse_completion(r#"{"title":"t","features":"x","description":"d"}"#),
            Err(ParseError::WrongType {
                field: "features",
                ..
            })
        ));
        assert!(matches!(
            parse_completion(r#"{"title":"t","features":[],"description":"d"} and more"#),
            Err(ParseError::TrailingText(_))
        ));
    }

    #[test]
    fn system_prompts_come_from_files() {
        for t in Tier::ALL {
            assert!(t.system_prompt().contains("JSON"), "{t}");
        }
    }
}
