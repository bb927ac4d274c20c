//! Structured output: decoding that can only produce JSON of a given schema, as Ollama's
//! `format` parameter (structured outputs) does for the same schema.
//!
//! The schema is compiled to a pushdown automaton over bytes; a token is allowed when all its
//! bytes are accepted from the current state. The constraint covers the shape of the JSON only
//! (objects with their required keys in order, arrays, strings), never what the strings say.
//!
//! Supported schema subset: `{"type": "object", "properties": {..}, "required": [..]}` (every
//! property required; keys are written in the order of `required`), `{"type": "array",
//! "items": .., "minItems": n, "maxItems": m}` and `{"type": "string", "minLength": n,
//! "maxLength": m}`. A string's length counts characters as JSON Schema and llama.cpp's
//! schema-to-grammar converter (which Ollama's `format` goes through) do: one per Unicode
//! scalar value of the text and one per escape sequence such as `\n` or `\u00e9` (so a
//! surrogate pair written as two `\u` escapes counts two, as llama.cpp's grammar counts it). Anything else is an
//! error rather than a silently looser grammar. Whitespace between tokens is allowed, at most
//! [`MAX_WS_RUN`] bytes at a time, so a model cannot stall in an endless run of blanks.

use std::sync::Arc;

use serde_json::Value;

use crate::error::{ModelError, Result};
use crate::tokenizer::Tokenizer;

/// Longest run of structural whitespace accepted between two JSON tokens.
pub const MAX_WS_RUN: u8 = 20;

#[derive(Debug, Clone, PartialEq)]
enum Shape {
    Str {
        min: usize,
        max: Option<usize>,
    },
    Arr {
        item: usize,
        min: usize,
        max: Option<usize>,
    },
    /// Keys (already quoted, as bytes) and value shapes, in output order.
    Obj(Vec<(Vec<u8>, usize)>),
}

#[derive(Debug, Clone, Copy, PartialEq)]
enum StrPos {
    Normal,
    Escape,
    /// Hex digits of a `\u` escape still to come.
    Unicode(u8),
}

#[derive(Debug, Clone, Copy, PartialEq)]
enum ObjPhase {
    /// Before the opening quote of key `field` (or the closing brace of an empty object).
    KeyStart,
    /// Inside key `field`, at this byte of its quoted form.
    Key(usize),
    Colon,
    /// After the value of `field`: a comma or the closing brace.
    AfterValue,
}

#[derive(Debug, Clone, Copy, PartialEq)]
enum ArrPhase {
    /// After `[`: the first item or `]`.
    First,
    /// After an item: `,` or `]`.
    AfterItem,
}

#[derive(Debug, Clone, Copy, PartialEq)]
enum Frame {
    Value(usize),
    /// Inside a string of shape `shape`, `len` characters written so far.
    Str {
        pos: StrPos,
        shape: usize,
        len: usize,
    },
    Obj {
        shape: usize,
        field: usize,
        phase: ObjPhase,
    },
    Arr {
        shape: usize,
        count: usize,
        phase: ArrPhase,
    },
}

/// Where one generation is in the grammar.
#[derive(Debug, Clone, PartialEq)]
pub struct JsonState {
    stack: Vec<Frame>,
    ws_run: u8,
}

impl JsonState {
    /// The whole value has been written: only a stop token may follow.
    pub fn is_complete(&self) -> bool {
        self.stack.is_empty()
    }
}

/// A JSON schema compiled for one tokenizer: which tokens may come next.
pub struct JsonSchema {
    schema: Value,
    shapes: Vec<Shape>,
    root: usize,
    /// id -> bytes of text, `None` for special tokens (never allowed as text).
    tokens: Arc<Vec<Option<Vec<u8>>>>,
}

impl std::fmt::Debug for JsonSchema {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("JsonSchema")
            .field("schema", &self.schema)
            .finish_non_exhaustive()
    }
}

impl PartialEq for JsonSchema {
    fn eq(&self, other: &Self) -> bool {
        self.schema == other.schema && self.tokens.len() == other.tokens.len()
    }
}

fn unsupported(path: &str, why: impl std::fmt::Display) -> ModelError {
    ModelError::InvalidArgument(format!("JSON schema at `{path}`: {why}"))
}

/// Keywords that constrain values in ways this grammar cannot enforce: refusing them keeps the
/// grammar from being silently looser than the schema asks. (Annotations such as `title`,
/// `description` or `$schema` are fine and ignored.)
const UNSUPPORTED: &[&str] = &[
    "enum",
    "const",
    "pattern",
    "format",
    "uniqueItems",
    "prefixItems",
    "contains",
    "patternProperties",
    "anyOf",
    "oneOf",
    "allOf",
    "not",
    "$ref",
];

fn compile(v: &Value, path: &str, shapes: &mut Vec<Shape>) -> Result<usize> {
    if let Some(k) = UNSUPPORTED.iter().find(|k| v.get(**k).is_some()) {
        return Err(unsupported(path, format!("`{k}` is not supported")));
    }
    let ty = v
        .get("type")
        .and_then(Value::as_str)
        .ok_or_else(|| unsupported(path, "needs a `type` (object, array or string)"))?;
    let count = |key: &str| -> Result<Option<usize>> {
        match v.get(key) {
            None => Ok(None),
            Some(n) => n
                .as_u64()
                .map(|n| Some(n as usize))
                .ok_or_else(|| unsupported(path, format!("`{key}` must be a count"))),
        }
    };
    let shape = match ty {
        "string" => {
            let min = count("minLength")?.unwrap_or(0);
            let max = count("maxLength")?;
            if max.is_some_and(|m| m < min) {
                return Err(unsupported(path, "maxLength is below minLength"));
            }
            Shape::Str { min, max }
        }
        "array" => {
            let items = v
                .get("items")
                .ok_or_else(|| unsupported(path, "an array needs `items`"))?;
            let item = compile(items, &format!("{path}/items"), shapes)?;
            let min = count("minItems")?.unwrap_or(0);
            let max = count("maxItems")?;
            if max.is_some_and(|m| m < min) {
                return Err(unsupported(path, "maxItems is below minItems"));
            }
            Shape::Arr { item, min, max }
        }
        "object" => {
            let props = v
                .get("properties")
                .and_then(Value::as_object)
                .ok_or_else(|| unsupported(path, "an object needs `properties`"))?;
            let required: Vec<&str> = v
                .get("required")
                .and_then(Value::as_array)
                .map(|a| a.iter().filter_map(Value::as_str).collect())
                .unwrap_or_default();
            if let Some(optional) = props.keys().find(|k| !required.contains(&k.as_str())) {
                return Err(unsupported(
                    path,
                    format!(
                        "property `{optional}` is optional; only required properties are supported"
                    ),
                ));
            }
            let mut fields = Vec::with_capacity(required.len());
            for key in required {
                let sub = props.get(key).ok_or_else(|| {
                    unsupported(path, format!("`{key}` is required but has no property"))
                })?;
                let id = compile(sub, &format!("{path}/properties/{key}"), shapes)?;
                let quoted = serde_json::to_string(key).map_err(|e| unsupported(path, e))?;
                fields.push((quoted.into_bytes(), id));
            }
            Shape::Obj(fields)
        }
        other => {
            return Err(unsupported(
                path,
                format!("type `{other}` is not supported"),
            ))
        }
    };
    shapes.push(shape);
    Ok(shapes.len() - 1)
}

/// Characters in plain string text (no quote, backslash or control byte): the bytes that are
/// no UTF-8 continuation byte.
fn chars_in(bytes: &[u8]) -> usize {
    bytes.iter().filter(|&&b| b & 0xc0 != 0x80).count()
}

fn is_ws(b: u8) -> bool {
    matches!(b, b' ' | b'\t' | b'\n' | b'\r')
}

impl JsonSchema {
    /// Compiles `schema` for the tokens of `tokenizer`.
    pub fn new(schema: &Value, tokenizer: &Tokenizer) -> Result<Self> {
        let mut g = Self::compile(schema)?;
        let tokens = (0..tokenizer.vocab_size() as u32)
            .map(|id| (!tokenizer.is_special(id)).then(|| tokenizer.token_bytes(id).to_vec()))
            .collect();
        g.tokens = Arc::new(tokens);
        Ok(g)
    }

    /// Compiles `schema` without a vocabulary: enough for [`Self::accepts_text`], while every
    /// token is refused.
    pub fn compile(schema: &Value) -> Result<Self> {
        let mut shapes = Vec::new();
        let root = compile(schema, "#", &mut shapes)?;
        Ok(Self {
            schema: schema.clone(),
            shapes,
            root,
            tokens: Arc::new(Vec::new()),
        })
    }

    /// The schema this was compiled from.
    pub fn schema(&self) -> &Value {
        &self.schema
    }

    /// The state before the first byte.
    pub fn start(&self) -> JsonState {
        JsonState {
            stack: vec![Frame::Value(self.root)],
            ws_run: 0,
        }
    }

    /// Whether `token` may come next; `stop` tells whether it ends the generation (then it is
    /// allowed exactly when the value is complete).
    pub fn allows(&self, state: &JsonState, token: u32, stop: bool) -> bool {
        if stop {
            return state.is_complete();
        }
        let Some(Some(bytes)) = self.tokens.get(token as usize) else {
            return false;
        };
        if bytes.is_empty() {
            return false;
        }
        // Fast path: plain text inside a string without a length bound leaves the state as it
        // is, or only adds to the length.
        if let Some(&Frame::Str {
            pos: StrPos::Normal,
            shape,
            len,
        }) = state.stack.last()
        {
            if bytes.iter().all(|&b| b >= 0x20 && b != b'"' && b != b'\\') {
                return match self.shapes[shape] {
                    Shape::Str { max: Some(max), .. } => len + chars_in(bytes) <= max,
                    _ => true,
                };
            }
        }
        let mut s = state.clone();
        bytes.iter().all(|&b| self.step(&mut s, b))
    }

    /// Moves `state` past `token` (which [`Self::allows`] accepted).
    pub fn advance(&self, state: &mut JsonState, token: u32) {
        if let Some(Some(bytes)) = self.tokens.get(token as usize) {
            for &b in bytes {
                if !self.step(state, b) {
                    break;
                }
            }
        }
    }

    /// Whether `text` is accepted from the start; `complete` also asks for a finished value.
    pub fn accepts_text(&self, text: &str, complete: bool) -> bool {
        let mut s = self.start();
        text.bytes().all(|b| self.step(&mut s, b)) && (!complete || s.is_complete())
    }

    fn structural_ws(state: &mut JsonState, b: u8) -> Option<bool> {
        if is_ws(b) {
            if state.ws_run >= MAX_WS_RUN {
                return Some(false);
            }
            state.ws_run += 1;
            return Some(true);
        }
        state.ws_run = 0;
        None
    }

    /// Consumes one byte; `false` (state unspecified) when the grammar does not allow it.
    fn step(&self, state: &mut JsonState, b: u8) -> bool {
        loop {
            let Some(top) = state.stack.last_mut() else {
                return false;
            };
            match *top {
                Frame::Str { pos, shape, len } => {
                    let Shape::Str { min, max } = self.shapes[shape] else {
                        return false;
                    };
                    // A character starts at every byte of the text that is no UTF-8
                    // continuation byte, and at the backslash of an escape.
                    let (pos, len) = match pos {
                        StrPos::Normal => match b {
                            b'"' => {
                                if len < min {
                                    return false;
                                }
                                state.stack.pop();
                                return true;
                            }
                            0..=0x1f => return false,
                            0x80..=0xbf => (StrPos::Normal, len),
                            _ if max.is_some_and(|m| len >= m) => return false,
                            b'\\' => (StrPos::Escape, len + 1),
                            _ => (StrPos::Normal, len + 1),
                        },
                        StrPos::Escape => match b {
                            b'"' | b'\\' | b'/' | b'b' | b'f' | b'n' | b'r' | b't' => {
                                (StrPos::Normal, len)
                            }
                            b'u' => (StrPos::Unicode(4), len),
                            _ => return false,
                        },
                        StrPos::Unicode(n) => {
                            if !b.is_ascii_hexdigit() {
                                return false;
                            }
                            let next = if n == 1 {
                                StrPos::Normal
                            } else {
                                StrPos::Unicode(n - 1)
                            };
                            (next, len)
                        }
                    };
                    *top = Frame::Str { pos, shape, len };
                    return true;
                }
                Frame::Value(shape) => {
                    if let Some(ok) = Self::structural_ws(state, b) {
                        return ok;
                    }
                    let (open, frame) = match self.shapes[shape] {
                        Shape::Str { .. } => (
                            b'"',
                            Frame::Str {
                                pos: StrPos::Normal,
                                shape,
                                len: 0,
                            },
                        ),
                        Shape::Arr { .. } => (
                            b'[',
                            Frame::Arr {
                                shape,
                                count: 0,
                                phase: ArrPhase::First,
                            },
                        ),
                        Shape::Obj(_) => (
                            b'{',
                            Frame::Obj {
                                shape,
                                field: 0,
                                phase: ObjPhase::KeyStart,
                            },
                        ),
                    };
                    if b != open {
                        return false;
                    }
                    if let Some(top) = state.stack.last_mut() {
                        *top = frame;
                    }
                    return true;
                }
                Frame::Obj {
                    shape,
                    field,
                    phase,
                } => {
                    let Shape::Obj(fields) = &self.shapes[shape] else {
                        return false;
                    };
                    match phase {
                        ObjPhase::KeyStart | ObjPhase::Colon | ObjPhase::AfterValue => {
                            if let Some(ok) = Self::structural_ws(state, b) {
                                return ok;
                            }
                        }
                        ObjPhase::Key(_) => {}
                    }
                    let set = |state: &mut JsonState, field, phase| {
                        if let Some(top) = state.stack.last_mut() {
                            *top = Frame::Obj {
                                shape,
                                field,
                                phase,
                            };
                        }
                    };
                    match phase {
                        ObjPhase::KeyStart if field >= fields.len() => {
                            if b != b'}' {
                                return false;
                            }
                            state.stack.pop();
                        }
                        ObjPhase::KeyStart | ObjPhase::Key(_) => {
                            let at = match phase {
                                ObjPhase::Key(at) => at,
                                _ => 0,
                            };
                            let key = &fields[field].0;
                            if key.get(at) != Some(&b) {
                                return false;
                            }
                            let next = if at + 1 == key.len() {
                                ObjPhase::Colon
                            } else {
                                ObjPhase::Key(at + 1)
                            };
                            set(state, field, next);
                        }
                        ObjPhase::Colon => {
                            if b != b':' {
                                return false;
                            }
                            set(state, field, ObjPhase::AfterValue);
                            state.stack.push(Frame::Value(fields[field].1));
                        }
                        ObjPhase::AfterValue => {
                            if field + 1 < fields.len() {
                                if b != b',' {
                                    return false;
                                }
                                set(state, field + 1, ObjPhase::KeyStart);
                            } else {
                                if b != b'}' {
                                    return false;
                                }
                                state.stack.pop();
                            }
                        }
                    }
                    return true;
                }
                Frame::Arr {
                    shape,
                    count,
                    phase,
                } => {
                    let Shape::Arr { item, min, max } = self.shapes[shape] else {
                        return false;
                    };
                    if let Some(ok) = Self::structural_ws(state, b) {
                        return ok;
                    }
                    let set = |state: &mut JsonState, count| {
                        if let Some(top) = state.stack.last_mut() {
                            *top = Frame::Arr {
                                shape,
                                count,
                                phase: ArrPhase::AfterItem,
                            };
                        }
                    };
                    match (phase, b) {
                        (_, b']') => {
                            if count < min {
                                return false;
                            }
                            state.stack.pop();
                            return true;
                        }
                        (ArrPhase::AfterItem, b',') => {
                            if max.is_some_and(|m| count >= m) {
                                return false;
                            }
                            set(state, count + 1);
                            state.stack.push(Frame::Value(item));
                            return true;
                        }
                        (ArrPhase::AfterItem, _) => return false,
                        (ArrPhase::First, _) => {
                            if max == Some(0) {
                                return false;
                            }
                            set(state, 1);
                            state.stack.push(Frame::Value(item));
                            // The byte starts the first item: go round again.
                        }
                    }
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn listing() -> Value {
        json!({
            "type": "object",
            "properties": {
                "title": {"type": "string"},
                "features": {"type": "array", "items": {"type": "string"}, "minItems": 1, "maxItems": 3},
                "description": {"type": "string"}
            },
            "required": ["title", "features", "description"]
        })
    }

    fn grammar() -> JsonSchema {
        JsonSchema::compile(&listing()).expect("compiles")
    }

    #[test]
    fn accepts_listings_in_key_order_with_modest_whitespace() {
        let g = grammar();
        for ok in [
            r#"{"title":"T","features":["a","b"],"description":"<p>x \"y\" \u00e9\n</p>"}"#,
            "{ \"title\" : \"T\",\n  \"features\": [ \"a\" ],\n  \"description\": \"d\" }",
            r#"{"title":"é 🎧","features":["a","b","c"],"description":""}"#,
        ] {
            assert!(g.accepts_text(ok, true), "{ok}");
        }
    }

    #[test]
    fn rejects_what_the_schema_rules_out() {
        let g = grammar();
        for bad in [
            r#"{"features":["a"],"title":"T","description":"d"}"#, // key order
            r#"{"title":"T","features":["a"}"#,                    // `}` closes an array
            r#"{"title":"T","features":[],"description":"d"}"#,    // minItems
            r#"{"title":"T","features":["a","b","c","d"],"#,       // maxItems
            r#"{"title":1"#,                                       // not a string
            r#"{"title":"a\qb"}"#,                                 // bad escape
            "{\"title\":\"a\nb\"}",                                // raw control character
            r#"{"title":"T","features":["a"],"description":"d"} x"#, // after the end
            r#"{"title":"T","features":["a"],"description":"d","extra":"e"}"#,
        ] {
            assert!(!g.accepts_text(bad, false), "{bad}");
        }
        let long_ws = format!("{{{}\"title\"", " ".repeat(MAX_WS_RUN as usize + 1));
        assert!(!g.accepts_text(&long_ws, false));
        // A prefix is accepted but not complete.
        assert!(g.accepts_text(r#"{"title":"T","feat"#, false));
        assert!(!g.accepts_text(r#"{"title":"T","feat"#, true));
    }

    #[test]
    fn unsupported_schemas_are_errors_that_say_where() {
        let mut shapes = Vec::new();
        let optional = json!({"type": "object", "properties": {"a": {"type": "string"}}});
        let e = compile(&optional, "#", &mut shapes)
            .unwrap_err()
            .to_string();
        assert!(e.contains("`a` is optional"), "{e}");
        let number =
            json!({"type": "object", "properties": {"n": {"type": "number"}}, "required": ["n"]});
        let e = compile(&number, "#", &mut shapes).unwrap_err().to_string();
        assert!(e.contains("#/properties/n") && e.contains("number"), "{e}");
        let pattern = json!({"type": "array", "items": {"type": "string", "pattern": "^a"}});
        let e = compile(&pattern, "#", &mut shapes).unwrap_err().to_string();
        assert!(e.contains("#/items") && e.contains("pattern"), "{e}");
        let inverted = json!({"type": "string", "minLength": 5, "maxLength": 4});
        let e = compile(&inverted, "#", &mut shapes)
            .unwrap_err()
            .to_string();
        assert!(e.contains("maxLength is below minLength"), "{e}");
        let negative = json!({"type": "string", "minLength": -1});
        assert!(compile(&negative, "#", &mut shapes).is_err());
        // Annotations are not constraints.
        let annotated = json!({"type": "string", "title": "T", "description": "d"});
        assert!(compile(&annotated, "#", &mut shapes).is_ok());
    }

    fn bounded() -> JsonSchema {
        JsonSchema::compile(&json!({"type": "string", "minLength": 3, "maxLength": 5}))
            .expect("compiles")
    }

    #[test]
    fn string_lengths_count_characters_not_bytes() {
        let g = bounded();
        for (text, ok) in [
            (r#""ab""#, false),       // under minLength
            (r#""abc""#, true),       // at minLength
            (r#""abcde""#, true),     // at maxLength
            (r#""abcdef""#, false),   // over maxLength
            ("\"ééé\"", true),        // 3 characters, 6 bytes
            ("\"🎧🎧🎧🎧🎧\"", true), // 5 characters, 20 bytes
            ("\"🎧🎧🎧🎧🎧🎧\"", false),
            (r#""a\nb""#, true),          // an escape is one character
            (r#""\u00e9\u00e9""#, false), // two characters
            (r#""\u00e9\"\\xy""#, true),
            (r#""\u00e9\"\\xyz""#, false),
        ] {
            assert_eq!(g.accepts_text(text, true), ok, "{text}");
        }
        // At maxLength only the closing quote may follow; under minLength it may not.
        assert!(!g.accepts_text(r#""abcde\"#, false));
        assert!(!g.accepts_text("\"abcdeé", false));
        assert!(g.accepts_text(r#""ab"#, false));
    }

    #[test]
    fn token_checks_agree_with_byte_steps_on_bounded_strings() {
        let mut g = bounded();
        let vocab: Vec<&str> = vec!["\"", "a", "abc", "éé", "🎧", "\"}", "\\n", "xyz\"", "ab"];
        g.tokens = Arc::new(vocab.iter().map(|t| Some(t.as_bytes().to_vec())).collect());
        // Every prefix built from the vocabulary: `allows` (with its fast path) must say what
        // stepping the token's bytes one at a time says.
        let mut frontier = vec![(g.start(), String::new())];
        for _ in 0..4 {
            let mut next = Vec::new();
            for (state, text) in &frontier {
                for (id, tok) in vocab.iter().enumerate() {
                    let by_bytes = g.accepts_text(&format!("{text}{tok}"), false);
                    assert_eq!(
                        g.allows(state, id as u32, false),
                        by_bytes,
                        "{text:?} + {tok:?}"
                    );
                    if by_bytes {
                        let mut s = state.clone();
                        g.advance(&mut s, id as u32);
                        next.push((s, format!("{text}{tok}")));
                    }
                }
            }
            frontier = next;
        }
    }

    #[test]
    fn listing_bounds_hold_for_titles_and_features() {
        let g = JsonSchema::compile(&json!({
            "type": "object",
            "properties": {
                "title": {"type": "string", "minLength": 5, "maxLength": 10},
                "features": {"type": "array", "minItems": 1, "maxItems": 2,
                             "items": {"type": "string", "minLength": 1, "maxLength": 3}}
            },
            "required": ["title", "features"]
        }))
        .expect("compiles");
        assert!(g.accepts_text(r#"{"title":"Title","features":["abc","d"]}"#, true));
        assert!(!g.accepts_text(r#"{"title":"Tit","#, false));
        assert!(!g.accepts_text(r#"{"title":"Title","features":["abcd"#, false));
        assert!(!g.accepts_text(r#"{"title":"Title","features":["""#, false));
    }
}
