//! Filtering sample files by the rubric: the kept records as read, the dropped ones with every
//! reason. Files are read, scored and written a piece at a time, so memory does not grow with
//! them.

use serde_json::{json, Value};
use std::io::{BufWriter, Seek, SeekFrom, Write};
use std::path::Path;

use crate::error::DataError;
use crate::read::{read_files_in_pieces, Reject};
use crate::rubric::Rubric;
use crate::sample::Sample;
use crate::score::{score_all, Scored, Summary, SummaryBuilder};
use crate::write::write_atomic;

/// Files are read about this much at a time: enough samples (about 7,000 of 2 KB) to keep every
/// core busy.
pub const PIECE_BYTES: usize = 16 << 20;

/// What [`filter_files`] did.
#[derive(Debug, Clone)]
pub struct FilterOutcome {
    /// The summary of every sample scored.
    pub summary: Summary,
    /// Samples read and scored.
    pub samples: usize,
    pub kept: usize,
    /// Samples the rubric dropped.
    pub rejected: usize,
    /// Records that could not be read, in file order.
    pub unread: Vec<Reject>,
}

/// Whether a filter keeps a scored sample: a score of at least `min_score` and every hard gate
/// but the compliance gate passed (`min_score` takes its place).
pub fn keeps(s: &Scored, min_score: u8) -> bool {
    s.report.as_ref().is_some_and(|r| {
        r.score >= min_score
            && r.gates
                .iter()
                .filter(|g| g.id != "compliance")
                .all(|g| g.passed)
    })
}

/// The rejects-file line of a record that could not be read: where, the record as read, why.
pub fn unread_row(r: &Reject) -> Value {
    json!({"file": r.file, "line": r.line, "record": r.raw, "reasons": r.problems.iter().map(|p| p.to_string()).collect::<Vec<_>>()})
}

/// The rejects-file line of a sample the rubric dropped: where, its id and score, every reason,
/// and the record (as JSON when it is JSON).
pub fn dropped_row(sample: &Sample, s: &Scored) -> Value {
    let record: Value =
        serde_json::from_str(&sample.raw).unwrap_or_else(|_| Value::String(sample.raw.clone()));
    json!({"file": s.file, "line": s.line, "id": s.id, "score": s.score(), "reasons": s.reasons(), "record": record})
}

/// Scores `files` and writes the records that [`keeps`] keeps, as read, to `output`; with
/// `rejects`, writes there the records that could not be read and then the samples the rubric
/// dropped ([`unread_row`], [`dropped_row`]). Files are read `piece_bytes` at a time; both
/// outputs are written atomically, and neither is written when reading fails.
pub fn filter_files<P: AsRef<Path>>(
    files: &[P],
    rubric: &Rubric,
    min_score: u8,
    output: &Path,
    rejects: Option<&Path>,
    piece_bytes: usize,
) -> Result<FilterOutcome, DataError> {
    let write_error = |path: &Path| {
        let path = path.to_owned();
        move |source| DataError::Write { path, source }
    };
    let mut summary = SummaryBuilder::default();
    let (mut samples, mut kept, mut rejected) = (0, 0, 0);
    let mut unread = Vec::new();
    // The dropped samples wait in a temporary file: the rejects file lists the unread first.
    let mut dropped = match rejects {
        Some(path) => Some(BufWriter::new(
            tempfile::tempfile().map_err(write_error(path))?,
        )),
        None => None,
    };
    let mut read_failure = None;
    let written = write_atomic(output, |out| {
        let mut failure: Option<std::io::Error> = None;
        let read = read_files_in_pieces(files, piece_bytes, |piece| {
            if failure.is_some() {
                return;
            }
            let scored = score_all(rubric, &piece.samples);
            let mut write_piece = || -> std::io::Result<()> {
                for (sample, s) in piece.samples.iter().zip(&scored) {
                    summary.add(s);
                    if keeps(s, min_score) {
                        kept += 1;
                        out.write_all(sample.raw.trim_end().as_bytes())?;
                        out.write_all(b"\n")?;
                    } else {
                        rejected += 1;
                        if let Some(d) = dropped.as_mut() {
                            serde_json::to_writer(&mut *d, &dropped_row(sample, s))?;
                            d.write_all(b"\n")?;
                        }
                    }
                }
                Ok(())
            };
            failure = write_piece().err();
            samples += piece.samples.len();
            unread.extend(piece.rejects);
        });
        if let Err(e) = read {
            read_failure = Some(e);
            return Err(std::io::Error::other("reading the samples failed"));
        }
        failure.map_or(Ok(()), Err)
    });
    if let Some(e) = read_failure {
        return Err(e);
    }
    written?;
    if let (Some(path), Some(d)) = (rejects, dropped) {
        let mut d = d
            .into_inner()
            .map_err(|e| write_error(path)(e.into_error()))?;
        d.seek(SeekFrom::Start(0)).map_err(write_error(path))?;
        write_atomic(path, |w| {
            for r in &unread {
                serde_json::to_writer(&mut *w, &unread_row(r))?;
                w.write_all(b"\n")?;
            }
            std::io::copy(&mut d, w)?;
            Ok(())
        })?;
    }
    Ok(FilterOutcome {
        summary: summary.finish(),
        samples,
        kept,
        rejected,
        unread,
    })
}
