//! Atomic writes: every output goes to a temporary sibling first and is renamed into place, so
//! an interrupted run never leaves a half-written file or checkpoint behind.

use std::path::{Path, PathBuf};

use crate::error::{Result, TrainError};

/// Write `bytes` to `path` through a temporary file in the same folder plus a rename.
pub fn write_atomic(path: &Path, bytes: &[u8]) -> Result<()> {
    use std::io::Write;
    let dir = path
        .parent()
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    std::fs::create_dir_all(dir).map_err(|e| TrainError::io(dir, e))?;
    let mut tmp = tempfile::Builder::new()
        .prefix(".tmp-")
        .tempfile_in(dir)
        .map_err(|e| TrainError::io(dir, e))?;
    tmp.write_all(bytes).map_err(|e| TrainError::io(path, e))?;
    tmp.as_file()
        .sync_all()
        .map_err(|e| TrainError::io(path, e))?;
    tmp.persist(path)
        .map_err(|e| TrainError::io(path, e.error))?;
    Ok(())
}

/// A fresh temporary folder next to `target`, to be filled and then [`replace_dir`]ed.
pub fn staging_dir(target: &Path) -> Result<PathBuf> {
    let parent = target.parent().unwrap_or(Path::new("."));
    std::fs::create_dir_all(parent).map_err(|e| TrainError::io(parent, e))?;
    let name = target.file_name().and_then(|n| n.to_str()).unwrap_or("dir");
    let dir = tempfile::Builder::new()
        .prefix(&format!(".tmp-{name}-"))
        .tempdir_in(parent)
        .map_err(|e| TrainError::io(parent, e))?;
    Ok(dir.keep())
}

/// Move the finished `staged` folder to `target`, replacing what was there. The old folder is
/// renamed aside first and removed only once the new one is in place.
pub fn replace_dir(staged: &Path, target: &Path) -> Result<()> {
    let old = target.with_file_name(format!(
        ".old-{}",
        target.file_name().and_then(|n| n.to_str()).unwrap_or("dir")
    ));
    if old.exists() {
        std::fs::remove_dir_all(&old).map_err(|e| TrainError::io(&old, e))?;
    }
    if target.exists() {
        std::fs::rename(target, &old).map_err(|e| TrainError::io(target, e))?;
    }
    std::fs::rename(staged, target).map_err(|e| TrainError::io(target, e))?;
    if old.exists() {
        std::fs::remove_dir_all(&old).map_err(|e| TrainError::io(&old, e))?;
    }
    Ok(())
}
