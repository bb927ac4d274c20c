//! User feedback: read events (JSON Lines or CSV), store them once each in SQLite, turn them into
//! training samples or failure examples, and summarise the daily success rate per tier.
//!
//! An event rates one listing a tier produced: `id`, `content_id` (the rated listing), `model`
//! (`tierforge-advanced`, `advanced:1.2.0`, ...: the tier is read from the name), `version`,
//! `rating` (1–5), optional `comment` and `corrected_output`, `timestamp` (RFC 3339). The rated
//! listing comes from the event itself (`input` + `output`) or from the sample files the content
//! id points into (`data/samples.jsonl` for the bundled stream).
//!
//! What an event becomes: a rating of 4–5 makes the rated listing a training sample; a lower
//! rating with a correction makes the correction one; a lower rating without one is kept as a
//! failure example (its failed rubric rules feed [`crate::instructions`]). Every sample is scored
//! with [`Rubric::score`] at ingest, the report is stored, and only samples that pass can train.

use rusqlite::{params, Connection, OptionalExtension};
use serde::Serialize;
use serde_json::{Map, Value};
use sha2::{Digest, Sha256};
use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};

use tierforge_data::completion::listing_from_value;
use tierforge_data::rubric::Report;
use tierforge_data::{Listing, Problem, ProductInput, Rubric, Tier};

use crate::clock;
use crate::csv;
use crate::loop_error::LoopError;

/// Where `tierforge feedback` keeps its store unless `--store` says otherwise.
pub const DEFAULT_STORE: &str = "runs/state.sqlite";

/// A rating of at least this many stars is a success.
pub const POSITIVE_RATING: u8 = 4;

/// One feedback event as read from a file.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct FeedbackEvent {
    /// The primary key: the event's `id`, or `sha256:<hex>` of its content when it has none.
    pub key: String,
    pub id: Option<String>,
    pub content_id: String,
    pub model: String,
    pub tier: Tier,
    pub version: String,
    /// 1–5 stars.
    pub rating: u8,
    pub comment: Option<String>,
    pub corrected_output: Option<Listing>,
    /// The rated listing, when the event carries it (`output`).
    pub output: Option<Listing>,
    /// The product, when the event carries it (`input`).
    pub input: Option<ProductInput>,
    /// As written in the file.
    pub timestamp: String,
    /// Unix seconds.
    pub ts: i64,
    pub file: String,
    pub line: usize,
}

impl FeedbackEvent {
    pub fn positive(&self) -> bool {
        self.rating >= POSITIVE_RATING
    }
}

/// A row that could not be read, with every problem (`file:line: field: reason`).
#[derive(Debug, Clone, Serialize)]
pub struct FeedbackReject {
    pub file: String,
    pub line: usize,
    pub raw: String,
    pub problems: Vec<Problem>,
}

/// Events and rejects read from files.
#[derive(Debug, Default)]
pub struct ParsedFeedback {
    pub events: Vec<FeedbackEvent>,
    pub rejects: Vec<FeedbackReject>,
    /// Rows read (events + rejects).
    pub rows: usize,
}

/// Field names accepted for each key, first the canonical one.
const ALIASES: &[(&str, &[&str])] = &[
    ("id", &["id", "event_id", "feedback_id"]),
    (
        "content_id",
        &["content_id", "contentId", "sample_id", "listing_id"],
    ),
    ("model", &["model", "model_name"]),
    ("version", &["version", "model_version"]),
    ("rating", &["rating", "stars"]),
    ("comment", &["comment", "note"]),
    (
        "corrected_output",
        &["corrected_output", "correction", "corrected"],
    ),
    ("timestamp", &["timestamp", "created_at", "time"]),
    ("input", &["input"]),
    ("output", &["output"]),
];

fn canonical(name: &str) -> Option<&'static str> {
    let n = name.trim();
    ALIASES
        .iter()
        .find(|(_, names)| names.iter().any(|a| a.eq_ignore_ascii_case(n)))
        .map(|(c, _)| *c)
}

/// The tier a model name belongs to: `tierforge-advanced`, `advanced`, `team/tierforge-expert:1.0.1`.
pub fn tier_of_model(model: &str) -> Option<Tier> {
    let name = model.rsplit('/').next().unwrap_or(model);
    let name = name.split(':').next().unwrap_or(name).to_ascii_lowercase();
    Tier::ALL.into_iter().find(|t| {
        name == t.name()
            || name.ends_with(&format!("-{}", t.name()))
            || name.ends_with(&format!("_{}", t.name()))
    })
}

/// Reads one feedback file: CSV when the name ends in `.csv` (or the first line is not JSON),
/// JSON Lines otherwise. Only I/O failures are errors.
pub fn read_feedback_file(path: &Path) -> Result<ParsedFeedback, LoopError> {
    let bytes = std::fs::read(path).map_err(LoopError::io(path))?;
    Ok(parse_feedback(&bytes, &path.display().to_string()))
}

/// Parses the content of a feedback file named `name`.
pub fn parse_feedback(bytes: &[u8], name: &str) -> ParsedFeedback {
    let bytes = bytes.strip_prefix(b"\xEF\xBB\xBF").unwrap_or(bytes);
    let mut out = ParsedFeedback::default();
    let text = match std::str::from_utf8(bytes) {
        Ok(t) => t,
        Err(e) => {
            let line = bytes[..e.valid_up_to()]
                .iter()
                .filter(|&&b| b == b'\n')
                .count()
                + 1;
            out.rows = 1;
            out.rejects.push(reject(
                name,
                line,
                String::new(),
                "-",
                "encoding",
                "the file is not valid UTF-8",
            ));
            return out;
        }
    };
    let first = text.trim_start().chars().next();
    let is_csv = name.to_ascii_lowercase().ends_with(".csv")
        || (first.is_some() && first != Some('{') && first != Some('['));
    if first.is_none() {
        out.rows = 1;
        out.rejects.push(reject(
            name,
            1,
            String::new(),
            "-",
            "empty",
            "the file is empty: expected JSON Lines or CSV feedback events",
        ));
    } else if first == Some('[') && !is_csv {
        out.rows = 1;
        out.rejects.push(reject(
            name,
            1,
            String::new(),
            "-",
            "format",
            "a JSON array: write one event per line (JSON Lines) or use CSV",
        ));
    } else if is_csv {
        parse_csv(text, name, &mut out);
    } else {
        for (i, line) in text.lines().enumerate() {
            if line.trim().is_empty() {
                continue;
            }
            out.rows += 1;
            match serde_json::from_str::<Value>(line) {
                Ok(Value::Object(map)) => push_row(&map, name, i + 1, line, false, &mut out),
                Ok(other) => out.rejects.push(reject(
                    name,
                    i + 1,
                    line.to_owned(),
                    "-",
                    "type",
                    &format!("expected a JSON object, got {}", json_kind(&other)),
                )),
                Err(e) => out.rejects.push(reject(
                    name,
                    i + 1,
                    line.to_owned(),
                    "-",
                    "json",
                    &format!("invalid JSON: {e}"),
                )),
            }
        }
    }
    out
}

fn parse_csv(text: &str, name: &str, out: &mut ParsedFeedback) {
    let (records, err) = csv::records(text);
    let mut it = records.into_iter();
    let Some(header) = it.next() else {
        return;
    };
    let mut columns = Vec::new();
    let mut unknown = Vec::new();
    for h in &header.fields {
        match canonical(h) {
            Some(c) => columns.push(Some(c)),
            None => {
                columns.push(None);
                unknown.push(h.trim().to_owned());
            }
        }
    }
    for need in ["content_id", "model", "rating", "timestamp"] {
        if !columns.contains(&Some(need)) {
            out.rows += 1;
            out.rejects.push(reject(
                name,
                header.line,
                header.raw.clone(),
                need,
                "missing",
                &format!(
                    "the CSV header has no `{need}` column (columns: {})",
                    header.fields.join(", ")
                ),
            ));
            return;
        }
    }
    for rec in it {
        out.rows += 1;
        if rec.fields.len() != columns.len() {
            out.rejects.push(reject(
                name,
                rec.line,
                rec.raw.clone(),
                "-",
                "csv",
                &format!(
                    "{} fields, but the header has {} columns",
                    rec.fields.len(),
                    columns.len()
                ),
            ));
            continue;
        }
        let mut map = Map::new();
        for (col, v) in columns.iter().zip(rec.fields) {
            if let Some(c) = col {
                if !v.trim().is_empty() {
                    map.insert((*c).to_owned(), Value::String(v));
                }
            }
        }
        push_row(&map, name, rec.line, &rec.raw, true, out);
    }
    if let Some((line, reason)) = err {
        out.rows += 1;
        out.rejects
            .push(reject(name, line, String::new(), "-", "csv", &reason));
    }
}

fn reject(
    file: &str,
    line: usize,
    raw: String,
    field: &str,
    class: &str,
    reason: &str,
) -> FeedbackReject {
    FeedbackReject {
        file: file.to_owned(),
        line,
        raw,
        problems: vec![Problem {
            file: file.to_owned(),
            line,
            field: field.to_owned(),
            class: class.to_owned(),
            reason: reason.to_owned(),
        }],
    }
}

fn json_kind(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}

/// Reads one row (a JSON object, or a CSV row as strings) into an event, or a reject with every
/// problem found.
fn push_row(
    raw_map: &Map<String, Value>,
    file: &str,
    line: usize,
    raw: &str,
    from_csv: bool,
    out: &mut ParsedFeedback,
) {
    let mut problems = Vec::new();
    let mut prob = |field: &str, class: &str, reason: String| {
        problems.push(Problem {
            file: file.to_owned(),
            line,
            field: field.to_owned(),
            class: class.to_owned(),
            reason,
        })
    };
    let mut map: BTreeMap<&'static str, &Value> = BTreeMap::new();
    for (k, v) in raw_map {
        if let Some(c) = canonical(k) {
            if !v.is_null() {
                map.insert(c, v);
            }
        }
    }
    let string =
        |key: &str, required: bool, prob: &mut dyn FnMut(&str, &str, String)| -> Option<String> {
            match map.get(key) {
                None if required => {
                    prob(key, "missing", "required field is missing".into());
                    None
                }
                None => None,
                Some(Value::String(s)) if s.trim().is_empty() && required => {
                    prob(key, "empty", "must not be empty".into());
                    None
                }
                Some(Value::String(s)) => Some(s.trim().to_owned()),
                Some(Value::Number(n)) if key != "timestamp" => Some(n.to_string()),
                Some(other) => {
                    prob(
                        key,
                        "type",
                        format!("expected a string, got {}", json_kind(other)),
                    );
                    None
                }
            }
        };
    let id = string("id", false, &mut prob);
    let content_id = string("content_id", true, &mut prob);
    let model = string("model", true, &mut prob);
    let version = string("version", false, &mut prob).unwrap_or_else(|| "unknown".into());
    let comment = string("comment", false, &mut prob).filter(|c| !c.is_empty());
    let timestamp = string("timestamp", true, &mut prob);
    let tier = model.as_deref().and_then(|m| {
        let t = tier_of_model(m);
        if t.is_none() {
            prob(
                "model",
                "tier",
                format!("cannot tell the tier from model name {m:?}: expected a name ending in basic, advanced or expert (e.g. tierforge-advanced)"),
            );
        }
        t
    });
    let rating = match map.get("rating") {
        None => {
            prob("rating", "missing", "required field is missing".into());
            None
        }
        Some(v) => {
            let n = match v {
                Value::Number(n) => n.as_f64(),
                Value::String(s) => s.trim().parse::<f64>().ok(),
                _ => None,
            };
            match n {
                Some(x) if x.fract() == 0.0 && (1.0..=5.0).contains(&x) => Some(x as u8),
                Some(x) => {
                    prob(
                        "rating",
                        "range",
                        format!("must be a whole number from 1 to 5, got {x}"),
                    );
                    None
                }
                None => {
                    prob(
                        "rating",
                        "type",
                        format!("expected a number from 1 to 5, got {v}"),
                    );
                    None
                }
            }
        }
    };
    let ts = timestamp.as_deref().and_then(|t| {
        let p = clock::parse_rfc3339(t);
        if p.is_none() {
            prob(
                "timestamp",
                "format",
                format!("{t:?} is not an RFC 3339 time like 2026-10-01T08:10:00Z"),
            );
        }
        p
    });
    // Objects may come as JSON text (CSV cells).
    let object = |key: &str, prob: &mut dyn FnMut(&str, &str, String)| -> Option<Value> {
        let v = map.get(key)?;
        match v {
            Value::String(s) if from_csv || s.trim_start().starts_with('{') => {
                match serde_json::from_str::<Value>(s) {
                    Ok(v) => Some(v),
                    Err(e) => {
                        prob(key, "json", format!("expected a JSON object: {e}"));
                        None
                    }
                }
            }
            other => Some((*other).clone()),
        }
    };
    let listing = |key: &str, prob: &mut dyn FnMut(&str, &str, String)| -> Option<Listing> {
        let v = object(key, prob)?;
        match listing_from_value(&v) {
            Ok(l) => Some(l),
            Err(e) => {
                prob(key, "listing", e.to_string());
                None
            }
        }
    };
    let corrected_output = listing("corrected_output", &mut prob);
    let output = listing("output", &mut prob);
    let input =
        object("input", &mut prob).and_then(|v| match serde_json::from_value::<ProductInput>(v) {
            Ok(i) => Some(i),
            Err(e) => {
                prob("input", "type", format!("not a product input: {e}"));
                None
            }
        });
    if !problems.is_empty() {
        out.rejects.push(FeedbackReject {
            file: file.to_owned(),
            line,
            raw: raw.to_owned(),
            problems,
        });
        return;
    }
    let (Some(content_id), Some(model), Some(tier), Some(rating), Some(timestamp), Some(ts)) =
        (content_id, model, tier, rating, timestamp, ts)
    else {
        // Every missing piece pushed a problem above; this is unreachable in practice.
        return;
    };
    let key = match &id {
        Some(id) => id.clone(),
        None => {
            let mut h = Sha256::new();
            for part in [
                content_id.as_str(),
                model.as_str(),
                version.as_str(),
                &rating.to_string(),
                &ts.to_string(),
                comment.as_deref().unwrap_or(""),
            ] {
                h.update(part.as_bytes());
                h.update([0u8]);
            }
            format!("sha256:{}", hex(&h.finalize()))
        }
    };
    out.events.push(FeedbackEvent {
        key,
        id,
        content_id,
        model,
        tier,
        version,
        rating,
        comment,
        corrected_output,
        output,
        input,
        timestamp,
        ts,
        file: file.to_owned(),
        line,
    });
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// The listings content ids point at: `id → (product, listing)`, from sample files.
#[derive(Debug, Default, Clone)]
pub struct ContentIndex {
    map: HashMap<String, (Option<ProductInput>, Listing)>,
}

impl ContentIndex {
    /// Indexes every readable sample with an id and a listing (unreadable records are skipped:
    /// `tierforge data check` is the place to see them).
    pub fn from_files(paths: &[PathBuf]) -> Result<Self, LoopError> {
        let read = tierforge_data::read_files(paths)?;
        let mut map = HashMap::new();
        for s in read.samples {
            if let Some(l) = s.listing {
                map.insert(s.id, (s.input, l));
            }
        }
        Ok(Self { map })
    }

    pub fn get(&self, id: &str) -> Option<(Option<&ProductInput>, &Listing)> {
        self.map.get(id).map(|(i, l)| (i.as_ref(), l))
    }

    pub fn len(&self) -> usize {
        self.map.len()
    }

    pub fn is_empty(&self) -> bool {
        self.map.is_empty()
    }
}

/// What an event became.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum SampleKind {
    /// Rated 4–5: the rated listing is a training sample.
    Positive,
    /// Rated 1–3 with a correction: the correction is a training sample.
    Correction,
    /// Rated 1–3 without a correction: a failure example for analysis.
    Failure,
}

impl SampleKind {
    fn as_str(self) -> &'static str {
        match self {
            SampleKind::Positive => "positive",
            SampleKind::Correction => "correction",
            SampleKind::Failure => "failure",
        }
    }
}

/// The feedback store (SQLite). One row per event; the primary key is the event key, so the same
/// event ingested twice counts once.
pub struct Store {
    conn: Connection,
    path: String,
}

const SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS feedback (
    key TEXT PRIMARY KEY,
    id TEXT,
    content_id TEXT NOT NULL,
    model TEXT NOT NULL,
    tier TEXT NOT NULL,
    version TEXT NOT NULL,
    rating INTEGER NOT NULL CHECK (rating BETWEEN 1 AND 5),
    comment TEXT,
    ts INTEGER NOT NULL,
    timestamp TEXT NOT NULL,
    kind TEXT NOT NULL CHECK (kind IN ('positive', 'correction', 'failure')),
    input_json TEXT,
    -- The listing that trains (rated output for positives, the correction for corrections).
    sample_json TEXT,
    sample_report TEXT,
    trainable INTEGER NOT NULL,
    -- The listing users rated low, with its rubric report (failure analysis).
    failed_json TEXT,
    failed_report TEXT,
    note TEXT,
    source TEXT NOT NULL,
    ingested_at TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS feedback_tier_ts ON feedback (tier, ts);
";

/// Counts of one ingest.
#[derive(Debug, Clone, Default, Serialize)]
pub struct IngestSummary {
    pub files: usize,
    /// Rows read, rejects included.
    pub rows: usize,
    /// New events stored.
    pub inserted: usize,
    /// Events already in the store (or twice in the input): counted once.
    pub duplicates: usize,
    pub rejected: usize,
    /// New events per kind.
    pub positives: usize,
    pub corrections: usize,
    pub failures: usize,
    /// New samples that passed the rubric and can train.
    pub trainable: usize,
    /// New samples that failed the rubric (kept with their report, never trained on).
    pub failed_rubric: usize,
    /// New events whose rated listing was not found (neither inline nor in the sample files).
    pub unresolved: usize,
    pub store: String,
}

/// A stored event, as read back.
#[derive(Debug, Clone, Serialize)]
pub struct StoredEvent {
    pub key: String,
    pub content_id: String,
    pub model: String,
    pub tier: Tier,
    pub version: String,
    pub rating: u8,
    pub ts: i64,
    pub kind: SampleKind,
}

/// A training sample made from feedback.
#[derive(Debug, Clone, Serialize)]
pub struct FeedbackSample {
    pub key: String,
    pub kind: SampleKind,
    pub input: ProductInput,
    pub listing: Listing,
    pub score: u8,
}

/// A listing users rated low, with its rubric report.
#[derive(Debug, Clone, Serialize)]
pub struct FailureExample {
    pub key: String,
    pub tier: Tier,
    pub comment: Option<String>,
    pub listing: Listing,
    pub report: Report,
}

impl Store {
    /// Opens (creating if needed) the store at `path`.
    pub fn open(path: &Path) -> Result<Self, LoopError> {
        let p = path.display().to_string();
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
            std::fs::create_dir_all(dir).map_err(LoopError::write(dir))?;
        }
        let db = |source| LoopError::Store {
            path: p.clone(),
            source,
        };
        let conn = Connection::open(path).map_err(db)?;
        conn.busy_timeout(std::time::Duration::from_secs(10))
            .map_err(db)?;
        conn.execute_batch("PRAGMA journal_mode=WAL;").map_err(db)?;
        conn.execute_batch(SCHEMA).map_err(db)?;
        Ok(Self { conn, path: p })
    }

    pub fn path(&self) -> &str {
        &self.path
    }

    fn db(&self) -> impl Fn(rusqlite::Error) -> LoopError + '_ {
        move |source| LoopError::Store {
            path: self.path.clone(),
            source,
        }
    }

    /// Stores events (in one transaction): new ones are scored and inserted, known ones skipped.
    pub fn ingest(
        &mut self,
        events: &[FeedbackEvent],
        content: &ContentIndex,
        rubric: &Rubric,
        summary: &mut IngestSummary,
    ) -> Result<(), LoopError> {
        let now = clock::format_rfc3339(clock::now_unix());
        let path = self.path.clone();
        let db = |source| LoopError::Store {
            path: path.clone(),
            source,
        };
        let tx = self.conn.transaction().map_err(db)?;
        for e in events {
            let known: Option<i64> = tx
                .query_row("SELECT 1 FROM feedback WHERE key = ?1", [&e.key], |r| {
                    r.get(0)
                })
                .optional()
                .map_err(db)?;
            if known.is_some() {
                summary.duplicates += 1;
                continue;
            }
            let rated = match (&e.output, content.get(&e.content_id)) {
                (Some(l), found) => Some((
                    e.input.clone().or_else(|| found.and_then(|f| f.0.cloned())),
                    l.clone(),
                )),
                (None, Some((i, l))) => Some((e.input.clone().or_else(|| i.cloned()), l.clone())),
                (None, None) => None,
            };
            let input = rated
                .as_ref()
                .and_then(|r| r.0.clone())
                .or_else(|| e.input.clone());
            let kind = if e.positive() {
                SampleKind::Positive
            } else if e.corrected_output.is_some() {
                SampleKind::Correction
            } else {
                SampleKind::Failure
            };
            let mut note = Vec::new();
            if rated.is_none() {
                summary.unresolved += 1;
                note.push(format!(
                    "rated listing {:?} not found (not inline, not in the sample files)",
                    e.content_id
                ));
            }
            let sample: Option<Listing> = match kind {
                SampleKind::Positive => rated.as_ref().map(|r| r.1.clone()),
                SampleKind::Correction => e.corrected_output.clone(),
                SampleKind::Failure => None,
            };
            let sample_report = sample.as_ref().map(|l| rubric.score(l, input.as_ref()));
            let trainable = sample_report.as_ref().is_some_and(|r| r.passed) && input.is_some();
            if sample.is_some() && input.is_none() {
                note.push("product input unknown: the sample cannot train".into());
            }
            if let Some(r) = &sample_report {
                if r.passed {
                    if trainable {
                        summary.trainable += 1;
                    }
                } else {
                    summary.failed_rubric += 1;
                    note.push(format!(
                        "sample fails the rubric: {}",
                        r.reasons().join("; ")
                    ));
                }
            }
            let failed: Option<(Listing, Report)> = if kind == SampleKind::Positive {
                None
            } else {
                rated
                    .as_ref()
                    .map(|r| (r.1.clone(), rubric.score(&r.1, input.as_ref())))
            };
            match kind {
                SampleKind::Positive => summary.positives += 1,
                SampleKind::Correction => summary.corrections += 1,
                SampleKind::Failure => summary.failures += 1,
            }
            tx.execute(
                "INSERT INTO feedback (key, id, content_id, model, tier, version, rating, comment, ts, timestamp, kind,
                    input_json, sample_json, sample_report, trainable, failed_json, failed_report, note, source, ingested_at)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15, ?16, ?17, ?18, ?19, ?20)",
                params![
                    e.key,
                    e.id,
                    e.content_id,
                    e.model,
                    e.tier.name(),
                    e.version,
                    e.rating as i64,
                    e.comment,
                    e.ts,
                    e.timestamp,
                    kind.as_str(),
                    input.as_ref().map(js),
                    sample.as_ref().map(js),
                    sample_report.as_ref().map(js),
                    trainable as i64,
                    failed.as_ref().map(|f| js(&f.0)),
                    failed.as_ref().map(|f| js(&f.1)),
                    (!note.is_empty()).then(|| note.join("; ")),
                    format!("{}:{}", e.file, e.line),
                    now,
                ],
            )
            .map_err(db)?;
            summary.inserted += 1;
        }
        tx.commit().map_err(db)?;
        Ok(())
    }

    /// Events of one tier (or all) with `since < ts <= until` (either bound optional), oldest first.
    pub fn events(
        &self,
        tier: Option<Tier>,
        since: Option<i64>,
        until: Option<i64>,
    ) -> Result<Vec<StoredEvent>, LoopError> {
        let mut st = self
            .conn
            .prepare(
                "SELECT key, content_id, model, tier, version, rating, ts, kind FROM feedback
                 WHERE (?1 IS NULL OR tier = ?1) AND (?2 IS NULL OR ts > ?2) AND (?3 IS NULL OR ts <= ?3)
                 ORDER BY ts, key",
            )
            .map_err(self.db())?;
        let rows = st
            .query_map(params![tier.map(|t| t.name()), since, until], |r| {
                Ok((
                    r.get::<_, String>(0)?,
                    r.get::<_, String>(1)?,
                    r.get::<_, String>(2)?,
                    r.get::<_, String>(3)?,
                    r.get::<_, String>(4)?,
                    r.get::<_, i64>(5)?,
                    r.get::<_, i64>(6)?,
                    r.get::<_, String>(7)?,
                ))
            })
            .map_err(self.db())?;
        let mut out = Vec::new();
        for row in rows {
            let (key, content_id, model, tier, version, rating, ts, kind) =
                row.map_err(self.db())?;
            let Ok(tier) = tier.parse::<Tier>() else {
                continue;
            };
            out.push(StoredEvent {
                key,
                content_id,
                model,
                tier,
                version,
                rating: rating as u8,
                ts,
                kind: match kind.as_str() {
                    "positive" => SampleKind::Positive,
                    "correction" => SampleKind::Correction,
                    _ => SampleKind::Failure,
                },
            });
        }
        Ok(out)
    }

    /// The newest event time in the store.
    pub fn latest_ts(&self) -> Result<Option<i64>, LoopError> {
        self.conn
            .query_row("SELECT MAX(ts) FROM feedback", [], |r| r.get(0))
            .map_err(self.db())
    }

    /// Training samples of a tier from events up to `until`: positives and corrections whose
    /// listing passed the rubric at ingest, oldest first.
    pub fn training_samples(
        &self,
        tier: Tier,
        until: Option<i64>,
    ) -> Result<Vec<FeedbackSample>, LoopError> {
        let mut st = self
            .conn
            .prepare(
                "SELECT key, kind, input_json, sample_json, sample_report FROM feedback
                 WHERE tier = ?1 AND trainable = 1 AND (?2 IS NULL OR ts <= ?2) ORDER BY ts, key",
            )
            .map_err(self.db())?;
        let rows = st
            .query_map(params![tier.name(), until], |r| {
                Ok((
                    r.get::<_, String>(0)?,
                    r.get::<_, String>(1)?,
                    r.get::<_, Option<String>>(2)?,
                    r.get::<_, Option<String>>(3)?,
                    r.get::<_, Option<String>>(4)?,
                ))
            })
            .map_err(self.db())?;
        let mut out = Vec::new();
        for row in rows {
            let (key, kind, input, sample, report) = row.map_err(self.db())?;
            let parsed = (|| {
                let input: ProductInput = serde_json::from_str(input.as_deref()?).ok()?;
                let listing: Listing = serde_json::from_str(sample.as_deref()?).ok()?;
                let report: Report = serde_json::from_str(report.as_deref()?).ok()?;
                Some((input, listing, report))
            })();
            let Some((input, listing, report)) = parsed else {
                return Err(LoopError::Other(format!(
                    "feedback store {}: event {key} is marked trainable but its sample cannot be read back",
                    self.path
                )));
            };
            out.push(FeedbackSample {
                key,
                kind: if kind == "correction" {
                    SampleKind::Correction
                } else {
                    SampleKind::Positive
                },
                input,
                listing,
                score: report.score,
            });
        }
        Ok(out)
    }

    /// Low-rated listings of a tier with `since < ts <= until`, with their rubric reports.
    pub fn failures(
        &self,
        tier: Tier,
        since: Option<i64>,
        until: Option<i64>,
    ) -> Result<Vec<FailureExample>, LoopError> {
        let mut st = self
            .conn
            .prepare(
                "SELECT key, comment, failed_json, failed_report FROM feedback
                 WHERE tier = ?1 AND rating < ?2 AND failed_report IS NOT NULL
                   AND (?3 IS NULL OR ts > ?3) AND (?4 IS NULL OR ts <= ?4) ORDER BY ts, key",
            )
            .map_err(self.db())?;
        let rows = st
            .query_map(
                params![tier.name(), POSITIVE_RATING as i64, since, until],
                |r| {
                    Ok((
                        r.get::<_, String>(0)?,
                        r.get::<_, Option<String>>(1)?,
                        r.get::<_, String>(2)?,
                        r.get::<_, String>(3)?,
                    ))
                },
            )
            .map_err(self.db())?;
        let mut out = Vec::new();
        for row in rows {
            let (key, comment, listing, report) = row.map_err(self.db())?;
            if let (Ok(listing), Ok(report)) = (
                serde_json::from_str::<Listing>(&listing),
                serde_json::from_str::<Report>(&report),
            ) {
                out.push(FailureExample {
                    key,
                    tier,
                    comment,
                    listing,
                    report,
                });
            }
        }
        Ok(out)
    }

    /// Number of stored events.
    pub fn count(&self) -> Result<usize, LoopError> {
        self.conn
            .query_row("SELECT COUNT(*) FROM feedback", [], |r| r.get::<_, i64>(0))
            .map(|n| n as usize)
            .map_err(self.db())
    }
}

/// A JSON string for a store column. The types are plain data (strings, numbers, lists), so
/// serialising cannot fail; `null` would be stored if it did.
fn js<T: Serialize>(v: &T) -> String {
    serde_json::to_string(v).unwrap_or_else(|_| "null".into())
}

/// What `tierforge feedback ingest` does.
#[derive(Debug, Clone)]
pub struct IngestOptions {
    pub files: Vec<PathBuf>,
    pub store: PathBuf,
    /// Sample files that content ids point into.
    pub samples: Vec<PathBuf>,
    /// Extra lexicons for the rubric (`--lexicons DIR`).
    pub lexicons: Option<PathBuf>,
}

/// Reads feedback files and stores their events. Bad rows come back as rejects; the good rows
/// of the same file are still stored.
pub fn ingest(opts: &IngestOptions) -> Result<(IngestSummary, Vec<FeedbackReject>), LoopError> {
    let lex = tierforge_data::Lexicons::load(opts.lexicons.as_deref())?;
    let rubric = Rubric::new(tierforge_data::RubricConfig::default(), lex);
    let content = ContentIndex::from_files(&opts.samples)?;
    let mut store = Store::open(&opts.store)?;
    let mut summary = IngestSummary {
        store: store.path().to_owned(),
        ..Default::default()
    };
    let mut rejects = Vec::new();
    for f in &opts.files {
        let parsed = read_feedback_file(f)?;
        summary.files += 1;
        summary.rows += parsed.rows;
        summary.rejected += parsed.rejects.len();
        rejects.extend(parsed.rejects);
        store.ingest(&parsed.events, &content, &rubric, &mut summary)?;
    }
    Ok((summary, rejects))
}

/// Writes rejects as JSON Lines (`file`, `line`, `field`, `reason`, every problem, the raw row),
/// atomically.
pub fn write_rejects(path: &Path, rejects: &[FeedbackReject]) -> Result<(), LoopError> {
    let rows = rejects.iter().map(|r| {
        let first = r.problems.first();
        serde_json::json!({
            "file": r.file,
            "line": r.line,
            "field": first.map(|p| p.field.as_str()),
            "reason": first.map(|p| p.reason.as_str()),
            "problems": r.problems,
            "raw": r.raw,
        })
    });
    tierforge_data::write::write_jsonl(path, rows)?;
    Ok(())
}

/// One day of one tier.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct DayStat {
    /// `YYYY-MM-DD` (UTC).
    pub day: String,
    pub events: usize,
    pub positives: usize,
    /// positives / events, 0–1.
    pub success_rate: f64,
}

/// One tier over the whole period.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct TierStats {
    pub tier: Tier,
    pub events: usize,
    pub positives: usize,
    pub success_rate: Option<f64>,
    /// Days with at least one event, oldest first.
    pub days: Vec<DayStat>,
}

/// `tierforge feedback stats`.
#[derive(Debug, Clone, Serialize)]
pub struct FeedbackStats {
    /// First day shown (`YYYY-MM-DD`), or `None` when the store is empty.
    pub from: Option<String>,
    /// Last day shown.
    pub to: Option<String>,
    pub tiers: Vec<TierStats>,
}

/// Daily success rate per tier for the events with `until - since < ts <= until`. `until`
/// defaults to the newest event in the store (so `--since 30d` means "the last 30 days of
/// feedback"); `since` (seconds) to everything.
pub fn stats(
    store: &Store,
    since: Option<u64>,
    until: Option<i64>,
) -> Result<FeedbackStats, LoopError> {
    let until = match until {
        Some(u) => Some(u),
        None => store.latest_ts()?,
    };
    let Some(until) = until else {
        return Ok(FeedbackStats {
            from: None,
            to: None,
            tiers: Vec::new(),
        });
    };
    let lower = since.map(|s| until - s as i64);
    let events = store.events(None, lower, Some(until))?;
    let mut tiers = Vec::new();
    for tier in Tier::ALL {
        let mut by_day: BTreeMap<i64, (usize, usize)> = BTreeMap::new();
        for e in events.iter().filter(|e| e.tier == tier) {
            let d = by_day.entry(clock::day_of(e.ts)).or_default();
            d.0 += 1;
            d.1 += usize::from(e.rating >= POSITIVE_RATING);
        }
        if by_day.is_empty() {
            continue;
        }
        let (n, p) = by_day
            .values()
            .fold((0, 0), |acc, d| (acc.0 + d.0, acc.1 + d.1));
        tiers.push(TierStats {
            tier,
            events: n,
            positives: p,
            success_rate: (n > 0).then(|| p as f64 / n as f64),
            days: by_day
                .into_iter()
                .map(|(day, (n, p))| DayStat {
                    day: clock::day_string(day),
                    events: n,
                    positives: p,
                    success_rate: p as f64 / n as f64,
                })
                .collect(),
        });
    }
    let from = events
        .first()
        .map(|e| clock::day_string(clock::day_of(e.ts)));
    Ok(FeedbackStats {
        from,
        to: Some(clock::day_string(clock::day_of(until))),
        tiers,
    })
}

/// An SVG line chart of the daily success rate per tier, with a dashed line at `threshold`
/// (0–1; the retrain threshold).
pub fn stats_svg(st: &FeedbackStats, threshold: f64) -> String {
    use tierforge_data::svg::{document, escape};
    let (w, h) = (900.0, 420.0);
    let (left, right, top, bottom) = (60.0, 150.0, 40.0, 70.0);
    let (pw, ph) = (w - left - right, h - top - bottom);
    let first = st
        .from
        .as_deref()
        .and_then(clock::parse_rfc3339)
        .map(clock::day_of);
    let last = st
        .to
        .as_deref()
        .and_then(clock::parse_rfc3339)
        .map(clock::day_of);
    let mut body = format!(
        "<text x=\"{left}\" y=\"24\" font-size=\"16\" font-weight=\"bold\">Daily success rate (rating 4–5) per tier, {} to {}</text>",
        escape(st.from.as_deref().unwrap_or("-")),
        escape(st.to.as_deref().unwrap_or("-"))
    );
    let (Some(first), Some(last)) = (first, last) else {
        body.push_str("<text x=\"60\" y=\"80\">no feedback</text>");
        return document(w, h, &body);
    };
    let span = (last - first).max(1) as f64;
    let x = |day: i64| left + pw * (day - first) as f64 / span;
    let y = |rate: f64| top + ph * (1.0 - rate);
    for pct in [0, 25, 50, 75, 100] {
        let yy = y(pct as f64 / 100.0);
        body.push_str(&format!(
            "<line x1=\"{left}\" y1=\"{yy:.1}\" x2=\"{:.1}\" y2=\"{yy:.1}\" stroke=\"#ddd\"/><text x=\"{:.1}\" y=\"{:.1}\" font-size=\"11\" text-anchor=\"end\">{pct}%</text>",
            left + pw,
            left - 6.0,
            yy + 4.0
        ));
    }
    let ty = y(threshold);
    body.push_str(&format!(
        "<line x1=\"{left}\" y1=\"{ty:.1}\" x2=\"{:.1}\" y2=\"{ty:.1}\" stroke=\"#c00\" stroke-dasharray=\"6 4\"/><text x=\"{:.1}\" y=\"{:.1}\" font-size=\"11\" fill=\"#c00\">retrain below {:.0}%</text>",
        left + pw,
        left + pw + 6.0,
        ty + 4.0,
        threshold * 100.0
    ));
    let mut day = first;
    let step = ((last - first) / 10).max(1);
    while day <= last {
        body.push_str(&format!(
            "<text x=\"{:.1}\" y=\"{:.1}\" font-size=\"11\" text-anchor=\"middle\">{}</text>",
            x(day),
            top + ph + 18.0,
            &clock::day_string(day)[5..]
        ));
        day += step;
    }
    let colours = ["#1f77b4", "#ff7f0e", "#2ca02c"];
    for (i, t) in st.tiers.iter().enumerate() {
        let c = colours[i % colours.len()];
        let pts: Vec<String> = t
            .days
            .iter()
            .filter_map(|d| {
                let dd = clock::parse_rfc3339(&d.day).map(clock::day_of)?;
                Some(format!("{:.1},{:.1}", x(dd), y(d.success_rate)))
            })
            .collect();
        body.push_str(&format!(
            "<polyline fill=\"none\" stroke=\"{c}\" stroke-width=\"2\" points=\"{}\"/>",
            pts.join(" ")
        ));
        for (d, p) in t.days.iter().zip(&pts) {
            let (px, py) = p.split_once(',').unwrap_or(("0", "0"));
            body.push_str(&format!(
                "<circle cx=\"{px}\" cy=\"{py}\" r=\"3\" fill=\"{c}\"><title>{} {}: {}/{} ({:.0}%)</title></circle>",
                t.tier,
                d.day,
                d.positives,
                d.events,
                d.success_rate * 100.0
            ));
        }
        let ly = top + 20.0 * i as f64 + 10.0;
        body.push_str(&format!(
            "<rect x=\"{:.1}\" y=\"{:.1}\" width=\"14\" height=\"4\" fill=\"{c}\"/><text x=\"{:.1}\" y=\"{:.1}\" font-size=\"12\">{} ({}/{} = {:.0}%)</text>",
            left + pw + 10.0,
            ly,
            left + pw + 28.0,
            ly + 5.0,
            t.tier,
            t.positives,
            t.events,
            t.success_rate.unwrap_or(0.0) * 100.0
        ));
    }
    document(w, h, &body)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tier_names() {
        assert_eq!(tier_of_model("tierforge-advanced"), Some(Tier::Advanced));
        assert_eq!(
            tier_of_model("team/tierforge-expert:1.0.1"),
            Some(Tier::Expert)
        );
        assert_eq!(tier_of_model("basic"), Some(Tier::Basic));
        assert_eq!(tier_of_model("gpt-4o-mini"), None);
    }

    #[test]
    fn rows_with_problems_name_line_and_field() {
        let text = concat!(
            "{\"id\":\"a\",\"content_id\":\"s-1\",\"model\":\"tierforge-basic\",\"version\":\"1.0.0\",\"rating\":5,\"timestamp\":\"2026-10-01T08:00:00Z\"}\n",
            "{\"id\":\"b\",\"content_id\":\"s-1\",\"model\":\"gpt-4o\",\"rating\":9,\"timestamp\":\"yesterday\"}\n",
            "not json\n",
        );
        let p = parse_feedback(text.as_bytes(), "f.jsonl");
        assert_eq!(p.rows, 3);
        assert_eq!(p.events.len(), 1);
        assert_eq!(p.rejects.len(), 2);
        let fields: Vec<&str> = p.rejects[0]
            .problems
            .iter()
            .map(|x| x.field.as_str())
            .collect();
        assert_eq!(fields, ["model", "rating", "timestamp"]);
        assert_eq!(p.rejects[1].line, 3);
    }

    #[test]
    fn csv_rows_and_content_keys() {
        let text = "content_id,model,rating,timestamp,corrected_output\ns-1,tierforge-expert,2,2026-10-02T00:00:00Z,\"{\"\"title\"\":\"\"T\"\",\"\"features\"\":[\"\"a\"\"],\"\"description\"\":\"\"d\"\"}\"\ns-1,tierforge-expert,2,2026-10-02T00:00:00Z,\n";
        let p = parse_feedback(text.as_bytes(), "f.csv");
        assert!(p.rejects.is_empty(), "{:?}", p.rejects);
        assert_eq!(p.events.len(), 2);
        assert!(p.events[0].key.starts_with("sha256:"));
        assert_eq!(p.events[0].corrected_output.as_ref().unwrap().title, "T");
        // Same content, same key: idempotent even without ids.
        assert_eq!(p.events[0].key, p.events[1].key);
    }
}
