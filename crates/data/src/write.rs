//! Atomic output: every file is written to a temporary file in the same folder and renamed into
//! place, so a crash or a full disk never leaves a half-written file behind.

use serde::Serialize;
use std::io::{BufWriter, Write};
use std::path::Path;

use crate::error::DataError;

/// Writes `path` atomically with the bytes `fill` produces.
pub fn write_atomic<F>(path: &Path, fill: F) -> Result<(), DataError>
where
    F: FnOnce(&mut dyn Write) -> std::io::Result<()>,
{
    let err = |e: std::io::Error| DataError::Write {
        path: path.to_owned(),
        source: e,
    };
    let dir = match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p,
        _ => Path::new("."),
    };
    std::fs::create_dir_all(dir).map_err(err)?;
    let mut builder = tempfile::Builder::new();
    builder.prefix(".tierforge-").suffix(".tmp");
    // Temporary files are private (0600); outputs get the mode a plain `File::create` gives
    // (0666 less the umask), so reports and data files stay readable as users expect.
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        builder.permissions(std::fs::Permissions::from_mode(0o666));
    }
    let tmp = builder.tempfile_in(dir).map_err(err)?;
    {
        let mut w = BufWriter::with_capacity(1 << 16, tmp.as_file());
        fill(&mut w).map_err(err)?;
        w.flush().map_err(err)?;
    }
    tmp.as_file().sync_all().map_err(err)?;
    tmp.persist(path).map_err(|e| err(e.error))?;
    Ok(())
}

/// Writes one JSON value per line, atomically.
pub fn write_jsonl<T: Serialize>(
    path: &Path,
    items: impl IntoIterator<Item = T>,
) -> Result<(), DataError> {
    write_atomic(path, |w| {
        for item in items {
            serde_json::to_writer(&mut *w, &item)?;
            w.write_all(b"\n")?;
        }
        Ok(())
    })
}

/// Writes raw JSON lines (already serialised records), atomically.
pub fn write_lines<'a>(
    path: &Path,
    lines: impl IntoIterator<Item = &'a str>,
) -> Result<(), DataError> {
    write_atomic(path, |w| {
        for line in lines {
            w.write_all(line.trim_end().as_bytes())?;
            w.write_all(b"\n")?;
        }
        Ok(())
    })
}

/// Writes a string, atomically.
pub fn write_string(path: &Path, s: &str) -> Result<(), DataError> {
    write_atomic(path, |w| w.write_all(s.as_bytes()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn failed_write_leaves_no_file_and_keeps_the_old_one() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("out.jsonl");
        write_string(&path, "old\n").unwrap();
        let err = write_atomic(&path, |w| {
            w.write_all(b"half")?;
            Err(std::io::Error::other("disk full"))
        });
        assert!(err.is_err());
        assert_eq!(std::fs::read_to_string(&path).unwrap(), "old\n");
        let leftovers: Vec<_> = std::fs::read_dir(dir.path()).unwrap().collect();
        assert_eq!(leftovers.len(), 1, "temporary file left behind");
    }
}

#[cfg(all(test, unix))]
mod mode_tests {
    use std::os::unix::fs::PermissionsExt;

    #[test]
    fn outputs_get_the_mode_a_plain_create_gets() {
        let dir = tempfile::tempdir().unwrap();
        let ours = dir.path().join("ours.txt");
        super::write_string(&ours, "x").unwrap();
        let plain = dir.path().join("plain.txt");
        std::fs::write(&plain, "x").unwrap();
        let mode = |p: &std::path::Path| std::fs::metadata(p).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode(&ours), mode(&plain));
    }
}
