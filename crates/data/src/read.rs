//! Reading sample files: a JSON array or JSON Lines, in any of the three accepted record formats
//! (the app's collection format, OpenAI chat `messages`, prompt/completion), normalised into
//! [`Sample`]s. Bad records never abort a read: they come back as [`Reject`]s with every problem,
//! `file:line: field: reason`.

use memchr::memchr_iter;
use rayon::prelude::*;
use serde::{Deserialize, Serialize};
use serde_json::value::RawValue;
use serde_json::Value;
use std::path::Path;
use std::sync::Arc;

use crate::completion::{self, parse_completion, parse_user_prompt};
use crate::error::{DataError, Problem};
use crate::lines::{line_blocks, BLOCK_BYTES};
use crate::sample::{AppFields, AppRecord, Listing, Message, Origin, Sample, SourceFormat};

/// A record that could not be read, with every reason.
#[derive(Debug, Clone, Serialize)]
pub struct Reject {
    pub file: String,
    pub line: usize,
    /// The record as read (lossy UTF-8 when the bytes were not valid UTF-8; cut at 64 KiB).
    pub raw: String,
    pub problems: Vec<Problem>,
}

/// What reading one or more files produced.
#[derive(Debug, Default)]
pub struct ReadOutcome {
    pub samples: Vec<Sample>,
    pub rejects: Vec<Reject>,
}

impl ReadOutcome {
    pub fn extend(&mut self, other: ReadOutcome) {
        self.samples.extend(other.samples);
        self.rejects.extend(other.rejects);
    }

    pub fn problems(&self) -> impl Iterator<Item = &Problem> {
        self.rejects.iter().flat_map(|r| r.problems.iter())
    }
}

const RAW_KEEP: usize = 64 * 1024;

/// Reads several files, in order.
pub fn read_files<P: AsRef<Path>>(paths: &[P]) -> Result<ReadOutcome, DataError> {
    let mut out = ReadOutcome::default();
    for p in paths {
        out.extend(read_file(p.as_ref())?);
    }
    Ok(out)
}

/// Reads one file. Only I/O failures are errors; everything about the content is a [`Reject`].
pub fn read_file(path: &Path) -> Result<ReadOutcome, DataError> {
    let bytes = std::fs::read(path).map_err(|e| DataError::Io {
        path: path.to_owned(),
        source: e,
    })?;
    Ok(read_bytes(&bytes, &path.display().to_string()))
}

/// Reads files a piece at a time and hands each piece's samples and rejects to `f`, in file
/// order: together they are what [`read_files`] returns, but a caller that keeps only what it
/// computes from them (a score summary) works in memory that does not grow with the files.
/// JSON Lines files are read about `piece_bytes` at a time, in whole lines (a longer line is read
/// whole); a JSON array file is read whole.
pub fn read_files_in_pieces<P: AsRef<Path>>(
    paths: &[P],
    piece_bytes: usize,
    mut f: impl FnMut(ReadOutcome),
) -> Result<(), DataError> {
    for p in paths {
        read_file_in_pieces(p.as_ref(), piece_bytes.max(1), &mut f)?;
    }
    Ok(())
}

fn read_file_in_pieces(
    path: &Path,
    piece_bytes: usize,
    f: &mut impl FnMut(ReadOutcome),
) -> Result<(), DataError> {
    use std::io::Read;
    let io = |source| DataError::Io {
        path: path.to_owned(),
        source,
    };
    let mut file = std::fs::File::open(path).map_err(io)?;
    let name = path.display().to_string();
    let file_name: Arc<str> = Arc::from(name.as_str());
    let mut buf: Vec<u8> = Vec::new();
    // Whether the file is known to be JSON Lines (its first byte that is not whitespace is not
    // `[`), and the number of its first line not read yet.
    let mut lines = false;
    let mut next_line = 1;
    let mut want = piece_bytes;
    loop {
        let missing = want.saturating_sub(buf.len());
        let got = (&mut file)
            .take(missing as u64)
            .read_to_end(&mut buf)
            .map_err(io)?;
        let eof = got < missing;
        if !lines {
            if buf.len() < 3 && !eof {
                // Not enough to tell a byte order mark yet.
                want = buf.len() + piece_bytes;
                continue;
            }
            let start = if buf.starts_with(b"\xEF\xBB\xBF") {
                3
            } else {
                0
            };
            match buf[start..].iter().position(|b| !b.is_ascii_whitespace()) {
                // Whitespace so far: read on.
                None if !eof => {
                    want = buf.len() + piece_bytes;
                    continue;
                }
                Some(i) if buf[start + i] != b'[' => lines = true,
                // An array, or an empty file: read whole.
                _ => {
                    file.read_to_end(&mut buf).map_err(io)?;
                    f(read_bytes(&buf, &name));
                    return Ok(());
                }
            }
            buf.drain(..start);
        }
        // Whole lines: up to the last line end, or all that is left.
        let cut = if eof {
            buf.len()
        } else {
            match memchr::memrchr(b'\n', &buf) {
                Some(i) => i + 1,
                None => {
                    // A line longer than a piece: read on.
                    want = buf.len() + piece_bytes;
                    continue;
                }
            }
        };
        let mut out = ReadOutcome::default();
        next_line += read_lines(&buf[..cut], next_line, &file_name, &mut out);
        f(out);
        if eof {
            return Ok(());
        }
        buf.drain(..cut);
        want = piece_bytes;
    }
}

/// Reads a buffer as the content of file `name`.
pub fn read_bytes(bytes: &[u8], name: &str) -> ReadOutcome {
    let file: Arc<str> = Arc::from(name);
    let bytes = bytes.strip_prefix(b"\xEF\xBB\xBF").unwrap_or(bytes);
    let first = bytes.iter().position(|b| !b.is_ascii_whitespace());
    let mut out = ReadOutcome::default();
    match first {
        None => out.rejects.push(file_reject(
            &file,
            1,
            "empty",
            "the file is empty: expected a JSON array or JSON Lines of samples",
        )),
        Some(i) if bytes[i] == b'[' => read_array(bytes, &file, &mut out),
        Some(_) => {
            read_lines(bytes, 1, &file, &mut out);
        }
    }
    out
}

fn file_reject(file: &Arc<str>, line: usize, class: &str, reason: &str) -> Reject {
    Reject {
        file: file.to_string(),
        line,
        raw: String::new(),
        problems: vec![Problem {
            file: file.to_string(),
            line,
            field: "-".into(),
            class: class.into(),
            reason: reason.into(),
        }],
    }
}

fn keep_raw(s: &str) -> String {
    if s.len() <= RAW_KEEP {
        s.to_owned()
    } else {
        let mut end = RAW_KEEP;
        while !s.is_char_boundary(end) {
            end -= 1;
        }
        s[..end].to_owned()
    }
}

/// JSON Lines whose first line is line `first_line`, on all threads: blocks of lines are read in
/// parallel and joined in file order. Returns the number of lines `bytes` holds (see
/// [`line_blocks`]).
fn read_lines(bytes: &[u8], first_line: usize, file: &Arc<str>, out: &mut ReadOutcome) -> usize {
    let (blocks, count) = line_blocks(bytes, first_line, BLOCK_BYTES);
    let parts: Vec<ReadOutcome> = blocks
        .par_iter()
        .map(|b| {
            let mut part = ReadOutcome::default();
            for (line_no, line) in b.lines() {
                read_line(line, line_no, file, &mut part);
            }
            part
        })
        .collect();
    join(parts, out);
    count
}

/// Appends the outcomes of parts read in parallel, in their order.
fn join(parts: Vec<ReadOutcome>, out: &mut ReadOutcome) {
    out.samples
        .reserve(parts.iter().map(|p| p.samples.len()).sum());
    for p in parts {
        out.extend(p);
    }
}

/// Reads one line of JSON Lines (without its line end) into `out`.
fn read_line(line: &[u8], line_no: usize, file: &Arc<str>, out: &mut ReadOutcome) {
    let text = match std::str::from_utf8(line) {
        Ok(t) => t,
        Err(e) => {
            let lossy = String::from_utf8_lossy(line);
            out.rejects.push(Reject {
                file: file.to_string(),
                line: line_no,
                raw: keep_raw(&lossy),
                problems: vec![Problem {
                    file: file.to_string(),
                    line: line_no,
                    field: "-".into(),
                    class: "encoding".into(),
                    reason: format!("invalid UTF-8 at byte {} of the line", e.valid_up_to() + 1),
                }],
            });
            return;
        }
    };
    read_record(text, line_no, 0, file, out);
}

/// Parses one record that starts on line `line` into `out`: a sample, or a reject with every
/// problem. `line_offset` as for [`parse_record`].
fn read_record(
    text: &str,
    line: usize,
    line_offset: usize,
    file: &Arc<str>,
    out: &mut ReadOutcome,
) {
    let origin = Origin {
        file: file.clone(),
        line,
    };
    match parse_record(text, origin, line_offset) {
        Ok(s) => out.samples.push(s),
        Err(problems) => out.rejects.push(Reject {
            file: file.to_string(),
            line,
            raw: keep_raw(text),
            problems,
        }),
    }
}

fn read_array(bytes: &[u8], file: &Arc<str>, out: &mut ReadOutcome) {
    let text = match std::str::from_utf8(bytes) {
        Ok(t) => t,
        Err(e) => {
            let at = e.valid_up_to();
            let line = 1 + memchr_iter(b'\n', &bytes[..at]).count();
            out.rejects.push(file_reject(
                file,
                line,
                "encoding",
                &format!("invalid UTF-8 at byte {} of the file; a JSON array file must be valid UTF-8 as a whole (JSON Lines files can skip bad lines)", at + 1),
            ));
            return;
        }
    };
    let elements: Vec<&RawValue> = match serde_json::from_str(text) {
        Ok(v) => v,
        Err(e) => {
            out.rejects.push(file_reject(
                file,
                e.line().max(1),
                "json",
                &format!(
                    "invalid JSON array at column {}: {}; no sample of this file was read",
                    e.column(),
                    strip_position(&e.to_string())
                ),
            ));
            return;
        }
    };
    // Line numbers in one pass, then the elements on all threads, joined in file order.
    let base = text.as_ptr() as usize;
    let mut line = 1;
    let mut scanned = 0;
    let numbered: Vec<(&str, usize)> = elements
        .iter()
        .map(|el| {
            let s = el.get();
            let offset = s.as_ptr() as usize - base;
            line += memchr_iter(b'\n', &text.as_bytes()[scanned..offset]).count();
            scanned = offset;
            (s, line)
        })
        .collect();
    let parts: Vec<ReadOutcome> = numbered
        .par_chunks(256)
        .map(|chunk| {
            let mut part = ReadOutcome::default();
            for &(s, line) in chunk {
                read_record(s, line, line - 1, file, &mut part);
            }
            part
        })
        .collect();
    join(parts, out);
}

/// serde_json appends " at line L column C"; we report positions ourselves.
fn strip_position(msg: &str) -> String {
    match msg.rfind(" at line ") {
        Some(i) => msg[..i].to_owned(),
        None => msg.to_owned(),
    }
}

/// Which record format a JSON object text holds, judged from its top-level keys.
fn sniff(text: &str) -> Option<SourceFormat> {
    use memchr::memmem::Finder;
    use std::sync::LazyLock;
    // The searchers are built once: building one costs about as much as searching a record.
    static KEYS: LazyLock<[Finder<'static>; 5]> = LazyLock::new(|| {
        [
            "\"input\"",
            "\"output\"",
            "\"messages\"",
            "\"prompt\"",
            "\"completion\"",
        ]
        .map(|k| Finder::new(k).into_owned())
    });
    let [input, output, messages, prompt, completion] = &*KEYS;
    let has = |key: &Finder| {
        key.find_iter(text.as_bytes())
            .any(|i| text[i + key.needle().len()..].trim_start().starts_with(':'))
    };
    if has(input) && has(output) {
        Some(SourceFormat::App)
    } else if has(messages) {
        Some(SourceFormat::Messages)
    } else if has(prompt) || has(completion) {
        Some(SourceFormat::PromptCompletion)
    } else {
        None
    }
}

/// Parses one record. `line_offset` is added to serde's line numbers (records inside arrays).
pub fn parse_record(
    text: &str,
    origin: Origin,
    line_offset: usize,
) -> Result<Sample, Vec<Problem>> {
    let problem = |field: &str, class: &str, reason: String| Problem {
        file: origin.file.to_string(),
        line: origin.line,
        field: field.to_owned(),
        class: class.to_owned(),
        reason,
    };
    let trimmed = text.trim_start();
    if !trimmed.starts_with('{') {
        // Either not JSON at all, or JSON that is not an object.
        return Err(vec![
            match serde_json::from_str::<serde::de::IgnoredAny>(text) {
                Err(e) => problem(
                    "-",
                    "json",
                    format!(
                        "invalid JSON at column {}: {}",
                        e.column(),
                        strip_position(&e.to_string())
                    ),
                ),
                Ok(_) => problem("-", "data_type", "expected a JSON object per sample".into()),
            },
        ]);
    }
    match sniff(text) {
        Some(SourceFormat::App) => parse_app(text, origin, line_offset),
        Some(SourceFormat::Messages) => parse_chat(text, origin),
        Some(SourceFormat::PromptCompletion) => parse_prompt_completion(text, origin),
        None => Err(vec![match serde_json::from_str::<serde::de::IgnoredAny>(text) {
            Err(e) => problem("-", "json", format!("invalid JSON at column {}: {}", e.column(), strip_position(&e.to_string()))),
            Ok(_) => problem(
                "-",
                "missing_messages_list",
                "unknown record format: expected an app sample (`input` and `output`), a chat sample (`messages`) or `prompt`/`completion`".into(),
            ),
        }]),
    }
}

/// Deserialises a whole app record with plain serde, or `None` on any error. The fast path:
/// `serde_path_to_error` costs a good share of the parse on every record, but its path is only
/// needed to report an error, so records that fail here are parsed again with it.
fn parse_app_fast(text: &str) -> Option<AppRecord> {
    let mut de = serde_json::Deserializer::from_str(text);
    let rec = AppRecord::deserialize(&mut de).ok()?;
    de.end().ok()?;
    Some(rec)
}

fn parse_app(text: &str, origin: Origin, line_offset: usize) -> Result<Sample, Vec<Problem>> {
    match parse_app_fast(text) {
        Some(rec) => app_sample(rec, text, origin),
        None => parse_app_slow(text, origin, line_offset),
    }
}

fn parse_app_slow(text: &str, origin: Origin, line_offset: usize) -> Result<Sample, Vec<Problem>> {
    let mut de = serde_json::Deserializer::from_str(text);
    let rec: AppRecord = match serde_path_to_error::deserialize(&mut de) {
        Ok(r) => r,
        Err(e) => {
            let path = e.path().to_string();
            let inner = e.into_inner();
            let class = match inner.classify() {
                serde_json::error::Category::Syntax | serde_json::error::Category::Eof => "json",
                _ if inner.to_string().starts_with("missing field") => "missing",
                _ => "type",
            };
            let msg = strip_position(&inner.to_string());
            let (field, reason) = if class == "json" {
                (
                    "-".to_owned(),
                    format!(
                        "invalid JSON at line {} column {}: {msg}",
                        inner.line() + line_offset,
                        inner.column()
                    ),
                )
            } else {
                let field = if path == "." { "-".to_owned() } else { path };
                let msg = msg.replace("invalid type: ", "");
                let field = match (class, msg.strip_prefix("missing field `")) {
                    ("missing", Some(rest)) => {
                        let name = rest.trim_end_matches('`');
                        if field == "-" {
                            name.to_owned()
                        } else {
                            format!("{field}.{name}")
                        }
                    }
                    _ => field,
                };
                (field, msg)
            };
            return Err(vec![Problem {
                file: origin.file.to_string(),
                line: origin.line,
                field,
                class: class.into(),
                reason,
            }]);
        }
    };
    if let Err(e) = de.end() {
        return Err(vec![Problem {
            file: origin.file.to_string(),
            line: origin.line,
            field: "-".into(),
            class: "json".into(),
            reason: format!(
                "invalid JSON at column {}: {}",
                e.column(),
                strip_position(&e.to_string())
            ),
        }]);
    }
    app_sample(rec, text, origin)
}

/// The checks on a deserialised app record, and the sample it makes.
fn app_sample(rec: AppRecord, text: &str, origin: Origin) -> Result<Sample, Vec<Problem>> {
    let mut problems = Vec::new();
    if rec.input.product_name.trim().is_empty() {
        problems.push(Problem {
            file: origin.file.to_string(),
            line: origin.line,
            field: "input.product_name".into(),
            class: "missing".into(),
            reason: "must not be empty".into(),
        });
    }
    if let Some(fb) = &rec.feedback {
        if !(1..=5).contains(&fb.rating) {
            problems.push(Problem {
                file: origin.file.to_string(),
                line: origin.line,
                field: "feedback.rating".into(),
                class: "type".into(),
                reason: format!("rating {} is out of range; expected 1–5", fb.rating),
            });
        }
    }
    if !problems.is_empty() {
        return Err(problems);
    }
    // Moved, not copied: the product and the listing are the bulk of a record.
    let AppRecord {
        id,
        timestamp,
        input,
        output,
        quality_metrics,
        feedback,
        augmented,
    } = rec;
    let id = id.unwrap_or_else(|| format!("{}:{}", origin.file, origin.line));
    let listing = Listing {
        title: output.title,
        features: output.features_formatted,
        description: output.description,
    };
    Ok(Sample {
        id,
        input: Some(input),
        listing: Some(listing),
        listing_error: None,
        messages: Vec::new(),
        format: SourceFormat::App,
        app: Some(AppFields {
            timestamp,
            metadata: output.metadata,
            quality_metrics,
            feedback,
            augmented,
        }),
        raw: text.to_owned(),
        origin,
    })
}

const ROLES: &[&str] = &["system", "user", "assistant", "function", "tool"];
const MESSAGE_KEYS: &[&str] = &[
    "role",
    "content",
    "name",
    "function_call",
    "tool_calls",
    "tool_call_id",
    "weight",
];

/// Validates a chat record with the error classes of OpenAI's data-format checker.
fn parse_chat(text: &str, origin: Origin) -> Result<Sample, Vec<Problem>> {
    let p = |field: String, class: &str, reason: String| Problem {
        file: origin.file.to_string(),
        line: origin.line,
        field,
        class: class.into(),
        reason,
    };
    let value: Value = serde_json::from_str(text).map_err(|e| {
        vec![p(
            "-".into(),
            "json",
            format!(
                "invalid JSON at column {}: {}",
                e.column(),
                strip_position(&e.to_string())
            ),
        )]
    })?;
    let obj = value
        .as_object()
        .ok_or_else(|| vec![p("-".into(), "data_type", "expected a JSON object".into())])?;
    let Some(Value::Array(list)) = obj.get("messages") else {
        return Err(vec![p(
            "messages".into(),
            "missing_messages_list",
            "expected a list of messages".into(),
        )]);
    };
    let mut problems = Vec::new();
    let mut messages = Vec::new();
    for (i, m) in list.iter().enumerate() {
        let field = format!("messages[{i}]");
        let Some(m) = m.as_object() else {
            problems.push(p(field, "data_type", "a message must be an object".into()));
            continue;
        };
        if !m.contains_key("role")
            || !m.contains_key("content")
                && !m.contains_key("function_call")
                && !m.contains_key("tool_calls")
        {
            let missing = if m.contains_key("role") {
                "content"
            } else {
                "role"
            };
            problems.push(p(
                format!("{field}.{missing}"),
                "message_missing_key",
                format!("message has no `{missing}`"),
            ));
            continue;
        }
        if let Some(k) = m.keys().find(|k| !MESSAGE_KEYS.contains(&k.as_str())) {
            problems.push(p(
                format!("{field}.{k}"),
                "message_unrecognized_key",
                format!("unrecognised key `{k}`"),
            ));
        }
        let role = m.get("role").and_then(Value::as_str).unwrap_or("");
        if !ROLES.contains(&role) {
            problems.push(p(
                format!("{field}.role"),
                "unrecognized_role",
                format!(
                    "unrecognised role {:?}; expected one of {}",
                    m.get("role").map(|r| r.to_string()).unwrap_or_default(),
                    ROLES.join(", ")
                ),
            ));
        }
        let content = match m.get("content") {
            Some(Value::String(s)) => Some(s.clone()),
            _ => None,
        };
        if content.is_none() && !m.contains_key("function_call") && !m.contains_key("tool_calls") {
            problems.push(p(
                format!("{field}.content"),
                "missing_content",
                "content must be a string".into(),
            ));
        }
        let weight = match m.get("weight") {
            None => None,
            Some(Value::Number(n)) if n.as_u64() == Some(0) || n.as_u64() == Some(1) => {
                n.as_u64().map(|w| w as u8)
            }
            Some(other) => {
                problems.push(p(
                    format!("{field}.weight"),
                    "invalid_weight",
                    format!("weight must be 0 or 1, got {other}"),
                ));
                None
            }
        };
        if weight.is_some() && role != "assistant" {
            problems.push(p(
                format!("{field}.weight"),
                "invalid_weight",
                "weight is only allowed on assistant messages".into(),
            ));
        }
        messages.push(Message {
            role: role.to_owned(),
            content: content.unwrap_or_default(),
            weight,
        });
    }
    if problems.is_empty() && !messages.iter().any(|m| m.role == "assistant") {
        problems.push(p(
            "messages".into(),
            "example_missing_assistant_message",
            "no assistant message".into(),
        ));
    }
    if !problems.is_empty() {
        return Err(problems);
    }
    let id = obj
        .get("id")
        .and_then(Value::as_str)
        .map(str::to_owned)
        .unwrap_or_else(|| format!("{}:{}", origin.file, origin.line));
    let input = messages
        .iter()
        .find(|m| m.role == "user")
        .and_then(|m| parse_user_prompt(&m.content));
    let answer = messages
        .iter()
        .rev()
        .find(|m| m.role == "assistant" && m.weight != Some(0));
    let (listing, listing_error) = match answer.map(|m| parse_completion(&m.content)) {
        Some(Ok(l)) => (Some(l), None),
        Some(Err(e)) => (None, Some(e.to_string())),
        None => (
            None,
            Some("no trained assistant message (all have weight 0)".into()),
        ),
    };
    Ok(Sample {
        id,
        origin,
        format: SourceFormat::Messages,
        input,
        listing,
        listing_error,
        messages,
        app: None,
        raw: text.to_owned(),
    })
}

fn parse_prompt_completion(text: &str, origin: Origin) -> Result<Sample, Vec<Problem>> {
    let p = |field: &str, class: &str, reason: String| Problem {
        file: origin.file.to_string(),
        line: origin.line,
        field: field.into(),
        class: class.into(),
        reason,
    };
    let value: Value = serde_json::from_str(text).map_err(|e| {
        vec![p(
            "-",
            "json",
            format!(
                "invalid JSON at column {}: {}",
                e.column(),
                strip_position(&e.to_string())
            ),
        )]
    })?;
    let mut problems = Vec::new();
    let mut get = |k: &str| match value.get(k) {
        Some(Value::String(s)) => Some(s.clone()),
        Some(other) => {
            problems.push(p(
                k,
                "type",
                format!("expected a string, got {}", completion::kind(other)),
            ));
            None
        }
        None => {
            problems.push(p(k, "missing", format!("missing field `{k}`")));
            None
        }
    };
    let (prompt, answer) = (get("prompt"), get("completion"));
    let (Some(prompt), Some(answer)) = (prompt, answer) else {
        return Err(problems);
    };
    let id = value
        .get("id")
        .and_then(Value::as_str)
        .map(str::to_owned)
        .unwrap_or_else(|| format!("{}:{}", origin.file, origin.line));
    // A prompt written by `export --format prompt-completion` is the system prompt, a blank
    // line, then the user prompt.
    let (system, user) = match prompt.find("Product: ") {
        Some(i) if i > 0 => (
            Some(prompt[..i].trim_end().to_owned()),
            prompt[i..].to_owned(),
        ),
        _ => (None, prompt.clone()),
    };
    let input = parse_user_prompt(&user);
    let (listing, listing_error) = match parse_completion(&answer) {
        Ok(l) => (Some(l), None),
        Err(e) => (None, Some(e.to_string())),
    };
    let mut messages = Vec::new();
    if let Some(s) = system {
        messages.push(Message {
            role: "system".into(),
            content: s,
            weight: None,
        });
    }
    messages.push(Message {
        role: "user".into(),
        content: user,
        weight: None,
    });
    messages.push(Message {
        role: "assistant".into(),
        content: answer,
        weight: None,
    });
    Ok(Sample {
        id,
        origin,
        format: SourceFormat::PromptCompletion,
        input,
        listing,
        listing_error,
        messages,
        app: None,
        raw: text.to_owned(),
    })
}
