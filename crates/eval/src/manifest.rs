//! The run folder's `pipeline.json`: which stages finished, with the content hash of what they
//! were computed from, so a second run with the same inputs skips them and an interrupted one
//! continues where it stopped.

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::pipeline::PipelineError;

/// Where a stage is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum StageStatus {
    /// Started and not finished (interrupted, or running now).
    Running,
    Done,
}

/// One stage's record.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct StageRecord {
    pub name: String,
    /// Hash of the stage's inputs and settings (and of the stages it reads from).
    pub key: String,
    pub status: StageStatus,
    /// Wall time of the run that finished it (seconds).
    pub seconds: f64,
    /// What the stage produced, as the pipeline summary shows it.
    #[serde(default)]
    pub detail: serde_json::Value,
}

/// `pipeline.json`.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct Manifest {
    /// The run folder the paths in the stages' records were written under, so that a folder
    /// that was moved or copied resumes in its new place (absent in manifests written before).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub out: Option<PathBuf>,
    pub stages: Vec<StageRecord>,
    #[serde(skip)]
    path: PathBuf,
}

impl Manifest {
    pub const FILE: &'static str = "pipeline.json";

    /// Reads the manifest of `out`, or an empty one when there is none yet.
    pub fn load(out: &Path) -> Result<Self, PipelineError> {
        let path = out.join(Self::FILE);
        let mut m = match std::fs::read_to_string(&path) {
            Ok(text) => serde_json::from_str::<Manifest>(&text).map_err(|e| {
                PipelineError::Input(format!(
                    "{} is not a tierforge pipeline manifest ({e}); use another --out or delete it",
                    path.display()
                ))
            })?,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Manifest::default(),
            Err(e) => return Err(PipelineError::io(&path, e)),
        };
        if let Some(old) = m.out.take().filter(|old| old != out) {
            for stage in &mut m.stages {
                rebase(&mut stage.detail, &old, out);
            }
        }
        m.out = Some(out.to_path_buf());
        m.path = path;
        Ok(m)
    }

    pub fn get(&self, name: &str) -> Option<&StageRecord> {
        self.stages.iter().find(|s| s.name == name)
    }

    /// The stage's record when it finished with this `key`.
    pub fn done(&self, name: &str, key: &str) -> Option<&StageRecord> {
        self.get(name)
            .filter(|s| s.key == key && s.status == StageStatus::Done)
    }

    /// Records `rec` (replacing the stage's earlier record) and writes the manifest atomically.
    pub fn record(&mut self, rec: StageRecord) -> Result<(), PipelineError> {
        match self.stages.iter_mut().find(|s| s.name == rec.name) {
            Some(s) => *s = rec,
            None => self.stages.push(rec),
        }
        let text = serde_json::to_string_pretty(self)
            .map_err(|e| PipelineError::Input(format!("cannot serialise the manifest: {e}")))?;
        tierforge_data::write::write_string(&self.path, &text)?;
        Ok(())
    }
}

/// Rewrites every path in `v` under `old` to the same path under `new`.
fn rebase(v: &mut serde_json::Value, old: &Path, new: &Path) {
    match v {
        serde_json::Value::String(s) => {
            if let Ok(rest) = Path::new(s.as_str()).strip_prefix(old) {
                *s = new.join(rest).to_string_lossy().into_owned();
            }
        }
        serde_json::Value::Array(items) => items.iter_mut().for_each(|x| rebase(x, old, new)),
        serde_json::Value::Object(map) => map.values_mut().for_each(|x| rebase(x, old, new)),
        _ => {}
    }
}

/// A stage key: the SHA-256 of its parts, each length-prefixed so that parts cannot run together.
pub fn key(parts: &[&[u8]]) -> String {
    let mut h = Sha256::new();
    for p in parts {
        h.update((p.len() as u64).to_le_bytes());
        h.update(p);
    }
    hex(&h.finalize())
}

/// SHA-256 of a file's content, streamed.
pub fn file_hash(path: &Path) -> Result<String, PipelineError> {
    use std::io::Read;
    let mut f = std::fs::File::open(path).map_err(|e| PipelineError::io(path, e))?;
    let mut h = Sha256::new();
    let mut buf = vec![0u8; 1 << 16];
    loop {
        let n = f.read(&mut buf).map_err(|e| PipelineError::io(path, e))?;
        if n == 0 {
            break;
        }
        h.update(&buf[..n]);
    }
    Ok(hex(&h.finalize()))
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_copied_run_folder_resumes_with_its_own_paths() {
        let tmp = tempfile::tempdir().unwrap();
        let (a, b) = (tmp.path().join("a"), tmp.path().join("b"));
        std::fs::create_dir_all(&a).unwrap();
        std::fs::create_dir_all(&b).unwrap();
        let mut m = Manifest::load(&a).unwrap();
        let under_a = a.join("train").join("expert");
        let elsewhere = tmp.path().join("a-other").join("x");
        m.record(StageRecord {
            name: "train-expert".into(),
            key: "k".into(),
            status: StageStatus::Done,
            seconds: 1.0,
            detail: serde_json::json!({
                "dir": under_a, "files": [a.join("data")], "other": elsewhere, "n": 3
            }),
        })
        .unwrap();
        std::fs::copy(a.join(Manifest::FILE), b.join(Manifest::FILE)).unwrap();
        let m = Manifest::load(&b).unwrap();
        let d = &m.get("train-expert").unwrap().detail;
        assert_eq!(d["dir"], serde_json::json!(b.join("train").join("expert")));
        assert_eq!(d["files"][0], serde_json::json!(b.join("data")));
        // Only paths under the old folder move ("a-other" is not under "a").
        assert_eq!(d["other"], serde_json::json!(elsewhere));
        assert_eq!(d["n"], 3);
        // Loading in place changes nothing.
        let again = Manifest::load(&a).unwrap();
        assert_eq!(
            again.get("train-expert").unwrap().detail["dir"],
            serde_json::json!(under_a)
        );
    }

    #[test]
    fn keys_do_not_run_parts_together() {
        assert_ne!(key(&[b"ab", b"c"]), key(&[b"a", b"bc"]));
        assert_eq!(key(&[b"ab", b"c"]), key(&[b"ab", b"c"]));
    }

    #[test]
    fn a_stage_counts_as_done_only_with_the_same_key() {
        let dir = tempfile::tempdir().unwrap();
        let mut m = Manifest::load(dir.path()).unwrap();
        m.record(StageRecord {
            name: "data".into(),
            key: "k1".into(),
            status: StageStatus::Done,
            seconds: 1.0,
            detail: serde_json::Value::Null,
        })
        .unwrap();
        let m = Manifest::load(dir.path()).unwrap();
        assert!(m.done("data", "k1").is_some());
        assert!(m.done("data", "k2").is_none());
        assert!(m.done("train-basic", "k1").is_none());
    }

    #[test]
    fn a_foreign_manifest_is_an_error_that_names_the_file() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join(Manifest::FILE), "[1,2]").unwrap();
        let e = Manifest::load(dir.path()).unwrap_err().to_string();
        assert!(e.contains("pipeline.json"), "{e}");
    }
}
