//! One lock file per tier (`<state>/locks/<tier>.lock`: pid and start time) so that two loops
//! never train the same tier. A lock whose process is gone, or older than the stale limit, is
//! taken over (a killed loop leaves its lock behind).

use serde::{Deserialize, Serialize};
use std::io::Write;
use std::path::{Path, PathBuf};

use crate::clock;
use crate::loop_error::LoopError;

/// What a lock file holds.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct LockInfo {
    pub pid: u32,
    /// Unix seconds.
    pub started_at: i64,
}

/// A held lock; dropping it removes the file.
#[derive(Debug)]
pub struct TierLock {
    path: PathBuf,
    released: bool,
}

impl TierLock {
    /// Leaves the file in place, as a killed process would (crash simulation in tests).
    pub fn abandon(mut self) {
        self.released = true;
    }
}

impl Drop for TierLock {
    fn drop(&mut self) {
        if !self.released {
            let _ = std::fs::remove_file(&self.path);
        }
    }
}

/// The result of trying to take a lock.
#[derive(Debug)]
pub enum Acquired {
    /// Taken; `recovered` describes a stale lock that was taken over.
    Held {
        lock: TierLock,
        recovered: Option<String>,
    },
    /// Another live loop holds it.
    Busy(String),
}

fn alive(pid: u32) -> Option<bool> {
    if cfg!(target_os = "linux") {
        Some(Path::new(&format!("/proc/{pid}")).exists())
    } else {
        None
    }
}

/// Takes the lock at `path`. A lock older than `stale_after_s` seconds, or whose process no
/// longer runs (Linux), is stale and taken over.
pub fn acquire(path: &Path, stale_after_s: i64) -> Result<Acquired, LoopError> {
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir).map_err(LoopError::write(dir))?;
    }
    let mut recovered = None;
    for _ in 0..2 {
        match std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .open(path)
        {
            Ok(mut f) => {
                let info = LockInfo {
                    pid: std::process::id(),
                    started_at: clock::now_unix(),
                };
                let text = serde_json::to_string(&info).unwrap_or_default();
                f.write_all(text.as_bytes())
                    .and_then(|_| f.sync_all())
                    .map_err(LoopError::write(path))?;
                return Ok(Acquired::Held {
                    lock: TierLock {
                        path: path.to_owned(),
                        released: false,
                    },
                    recovered,
                });
            }
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {
                let text = std::fs::read_to_string(path).unwrap_or_default();
                let info: Option<LockInfo> = serde_json::from_str(&text).ok();
                let now = clock::now_unix();
                let stale = match &info {
                    // An unreadable lock (killed while writing it) is stale.
                    None => true,
                    Some(i) => alive(i.pid) == Some(false) || now - i.started_at > stale_after_s,
                };
                if !stale {
                    let i = info.as_ref().map_or((0, 0), |i| (i.pid, i.started_at));
                    return Ok(Acquired::Busy(format!(
                        "locked by pid {} since {} ({})",
                        i.0,
                        clock::format_rfc3339(i.1),
                        path.display()
                    )));
                }
                recovered = Some(match &info {
                    Some(i) => format!(
                        "took over the stale lock of pid {} from {}",
                        i.pid,
                        clock::format_rfc3339(i.started_at)
                    ),
                    None => "took over an unreadable lock file".into(),
                });
                std::fs::remove_file(path).map_err(LoopError::write(path))?;
            }
            Err(e) => return Err(LoopError::write(path)(e)),
        }
    }
    Ok(Acquired::Busy(format!(
        "another loop took {} at the same moment",
        path.display()
    )))
}
