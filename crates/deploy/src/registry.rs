//! The model registry: which version of which tier came from which data, config and base model,
//! its metrics, files and Ollama digest, and its status. SQLite (bundled), every change in a
//! transaction, so that a crash never leaves a tier with two production versions or none half-set.

use rusqlite::{params, Connection, OptionalExtension};
use serde::{Deserialize, Serialize};
use std::path::Path;

#[derive(Debug, thiserror::Error)]
pub enum RegistryError {
    #[error("registry {path}: {source}")]
    Db {
        path: String,
        #[source]
        source: rusqlite::Error,
    },
    #[error("no version {version} of tier `{tier}` in the registry")]
    NotFound { tier: String, version: String },
    #[error("version {version} of tier `{tier}` is already registered")]
    Exists { tier: String, version: String },
    #[error("invalid version {0:?}: expected MAJOR.MINOR.PATCH")]
    BadVersion(String),
    #[error("tier `{0}` has no earlier production version to roll back to")]
    NothingToRollBack(String),
    #[error("health check of {tier} {version} failed: {reason}; production is unchanged")]
    HealthCheck {
        tier: String,
        version: String,
        reason: String,
    },
}

/// One registry event: `(at, tier, version, action, detail)`.
pub type Event = (String, String, String, String, String);

/// A version's status.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Status {
    Candidate,
    Production,
    Retired,
    Rejected,
}

impl Status {
    fn as_str(self) -> &'static str {
        match self {
            Status::Candidate => "candidate",
            Status::Production => "production",
            Status::Retired => "retired",
            Status::Rejected => "rejected",
        }
    }
    fn parse(s: &str) -> Status {
        match s {
            "production" => Status::Production,
            "retired" => Status::Retired,
            "rejected" => Status::Rejected,
            _ => Status::Candidate,
        }
    }
}

/// One registered version.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct VersionRecord {
    pub tier: String,
    pub version: String,
    pub parent_version: Option<String>,
    pub base_model: String,
    pub dataset_hash: String,
    pub dataset_size: u64,
    pub config_hash: String,
    pub train_metrics: serde_json::Value,
    pub eval_metrics: serde_json::Value,
    pub gguf_path: Option<String>,
    pub gguf_sha256: Option<String>,
    pub gguf_size: Option<u64>,
    pub ollama_name: Option<String>,
    pub ollama_digest: Option<String>,
    /// RFC 3339 time of registration.
    pub created_at: String,
    pub status: Status,
    /// Why a candidate was rejected, or other remarks.
    pub note: Option<String>,
}

/// Parses `MAJOR.MINOR.PATCH`.
pub fn parse_version(v: &str) -> Result<(u64, u64, u64), RegistryError> {
    let parts: Vec<&str> = v.split('.').collect();
    let bad = || RegistryError::BadVersion(v.to_owned());
    if parts.len() != 3 {
        return Err(bad());
    }
    let n = |s: &str| s.parse::<u64>().map_err(|_| bad());
    Ok((n(parts[0])?, n(parts[1])?, n(parts[2])?))
}

pub struct Registry {
    conn: Connection,
    path: String,
}

const SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS versions (
    tier TEXT NOT NULL,
    version TEXT NOT NULL,
    major INTEGER NOT NULL, minor INTEGER NOT NULL, patch INTEGER NOT NULL,
    parent_version TEXT,
    base_model TEXT NOT NULL,
    dataset_hash TEXT NOT NULL,
    dataset_size INTEGER NOT NULL,
    config_hash TEXT NOT NULL,
    train_metrics TEXT NOT NULL,
    eval_metrics TEXT NOT NULL,
    gguf_path TEXT, gguf_sha256 TEXT, gguf_size INTEGER,
    ollama_name TEXT, ollama_digest TEXT,
    created_at TEXT NOT NULL,
    status TEXT NOT NULL CHECK (status IN ('candidate', 'production', 'retired', 'rejected')),
    note TEXT,
    PRIMARY KEY (tier, version)
);
CREATE UNIQUE INDEX IF NOT EXISTS one_production ON versions (tier) WHERE status = 'production';
CREATE TABLE IF NOT EXISTS events (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    at TEXT NOT NULL,
    tier TEXT NOT NULL,
    version TEXT NOT NULL,
    action TEXT NOT NULL,
    detail TEXT NOT NULL
);
";

const COLUMNS: &str = "tier, version, parent_version, base_model, dataset_hash, dataset_size, config_hash, train_metrics, eval_metrics, gguf_path, gguf_sha256, gguf_size, ollama_name, ollama_digest, created_at, status, note";

fn row_to_record(r: &rusqlite::Row<'_>) -> rusqlite::Result<VersionRecord> {
    let json = |i: usize| -> rusqlite::Result<serde_json::Value> {
        let s: String = r.get(i)?;
        Ok(serde_json::from_str(&s).unwrap_or(serde_json::Value::Null))
    };
    Ok(VersionRecord {
        tier: r.get(0)?,
        version: r.get(1)?,
        parent_version: r.get(2)?,
        base_model: r.get(3)?,
        dataset_hash: r.get(4)?,
        dataset_size: r.get::<_, i64>(5)? as u64,
        config_hash: r.get(6)?,
        train_metrics: json(7)?,
        eval_metrics: json(8)?,
        gguf_path: r.get(9)?,
        gguf_sha256: r.get(10)?,
        gguf_size: r.get::<_, Option<i64>>(11)?.map(|x| x as u64),
        ollama_name: r.get(12)?,
        ollama_digest: r.get(13)?,
        created_at: r.get(14)?,
        status: Status::parse(&r.get::<_, String>(15)?),
        note: r.get(16)?,
    })
}

impl Registry {
    /// Opens (creating if needed) the registry database.
    pub fn open(path: &Path) -> Result<Self, RegistryError> {
        let p = path.display().to_string();
        let db = |source| RegistryError::Db {
            path: p.clone(),
            source,
        };
        if let Some(dir) = path.parent() {
            let _ = std::fs::create_dir_all(dir);
        }
        let conn = Connection::open(path).map_err(db)?;
        conn.busy_timeout(std::time::Duration::from_secs(10))
            .map_err(db)?;
        conn.execute_batch("PRAGMA journal_mode=WAL; PRAGMA foreign_keys=ON;")
            .map_err(db)?;
        conn.execute_batch(SCHEMA).map_err(db)?;
        Ok(Self { conn, path: p })
    }

    fn db(&self) -> impl Fn(rusqlite::Error) -> RegistryError + '_ {
        move |source| RegistryError::Db {
            path: self.path.clone(),
            source,
        }
    }

    /// The next version for a tier: one minor step above the highest registered (1.0.0 first).
    pub fn next_version(&self, tier: &str) -> Result<String, RegistryError> {
        let top: Option<(i64, i64)> = self
            .conn
            .query_row("SELECT major, minor FROM versions WHERE tier = ?1 ORDER BY major DESC, minor DESC, patch DESC LIMIT 1", [tier], |r| Ok((r.get(0)?, r.get(1)?)))
            .optional()
            .map_err(self.db())?;
        Ok(match top {
            None => "1.0.0".into(),
            Some((ma, mi)) => format!("{ma}.{}.0", mi + 1),
        })
    }

    /// Registers a version (status as given, normally `candidate`).
    pub fn add(&mut self, rec: &VersionRecord) -> Result<(), RegistryError> {
        let (ma, mi, pa) = parse_version(&rec.version)?;
        if self.get(&rec.tier, &rec.version).is_ok() {
            return Err(RegistryError::Exists {
                tier: rec.tier.clone(),
                version: rec.version.clone(),
            });
        }
        let tx = self
            .conn
            .transaction()
            .map_err(|source| RegistryError::Db {
                path: self.path.clone(),
                source,
            })?;
        tx.execute(
            "INSERT INTO versions (tier, version, major, minor, patch, parent_version, base_model, dataset_hash, dataset_size, config_hash, train_metrics, eval_metrics, gguf_path, gguf_sha256, gguf_size, ollama_name, ollama_digest, created_at, status, note)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15, ?16, ?17, ?18, ?19, ?20)",
            params![
                rec.tier, rec.version, ma as i64, mi as i64, pa as i64, rec.parent_version, rec.base_model, rec.dataset_hash,
                rec.dataset_size as i64, rec.config_hash, rec.train_metrics.to_string(), rec.eval_metrics.to_string(),
                rec.gguf_path, rec.gguf_sha256, rec.gguf_size.map(|x| x as i64), rec.ollama_name, rec.ollama_digest,
                rec.created_at, rec.status.as_str(), rec.note
            ],
        )
        .map_err(|source| RegistryError::Db { path: self.path.clone(), source })?;
        tx.execute(
            "INSERT INTO events (at, tier, version, action, detail) VALUES (?1, ?2, ?3, 'register', ?4)",
            params![rec.created_at, rec.tier, rec.version, rec.status.as_str()],
        )
        .map_err(|source| RegistryError::Db { path: self.path.clone(), source })?;
        tx.commit().map_err(|source| RegistryError::Db {
            path: self.path.clone(),
            source,
        })
    }

    pub fn get(&self, tier: &str, version: &str) -> Result<VersionRecord, RegistryError> {
        self.conn
            .query_row(
                &format!("SELECT {COLUMNS} FROM versions WHERE tier = ?1 AND version = ?2"),
                [tier, version],
                row_to_record,
            )
            .optional()
            .map_err(self.db())?
            .ok_or_else(|| RegistryError::NotFound {
                tier: tier.into(),
                version: version.into(),
            })
    }

    /// All versions, optionally of one tier, newest first.
    pub fn list(&self, tier: Option<&str>) -> Result<Vec<VersionRecord>, RegistryError> {
        let sql = format!("SELECT {COLUMNS} FROM versions WHERE (?1 IS NULL OR tier = ?1) ORDER BY tier, major DESC, minor DESC, patch DESC");
        let mut st = self.conn.prepare(&sql).map_err(self.db())?;
        let rows = st.query_map([tier], row_to_record).map_err(self.db())?;
        rows.collect::<Result<Vec<_>, _>>().map_err(self.db())
    }

    /// The tier's production version, if any.
    pub fn production(&self, tier: &str) -> Result<Option<VersionRecord>, RegistryError> {
        self.conn
            .query_row(
                &format!(
                    "SELECT {COLUMNS} FROM versions WHERE tier = ?1 AND status = 'production'"
                ),
                [tier],
                row_to_record,
            )
            .optional()
            .map_err(self.db())
    }

    /// Updates the Ollama name and digest of a version (after `ollama create`).
    pub fn set_ollama(
        &mut self,
        tier: &str,
        version: &str,
        name: &str,
        digest: Option<&str>,
    ) -> Result<(), RegistryError> {
        self.update_version(
            tier,
            version,
            "UPDATE versions SET ollama_name = ?3, ollama_digest = ?4 WHERE tier = ?1 AND version = ?2",
            params![tier, version, name, digest],
        )
    }

    /// Runs `sql`, an UPDATE of the row of `tier` `version`; `NotFound` when there is none.
    fn update_version(
        &mut self,
        tier: &str,
        version: &str,
        sql: &str,
        args: impl rusqlite::Params,
    ) -> Result<(), RegistryError> {
        let n = self.conn.execute(sql, args).map_err(self.db())?;
        if n == 0 {
            return Err(RegistryError::NotFound {
                tier: tier.into(),
                version: version.into(),
            });
        }
        Ok(())
    }

    /// Records the merged GGUF of a version built after it was registered (a loop candidate).
    pub fn set_gguf(
        &mut self,
        tier: &str,
        version: &str,
        path: &str,
        sha256: &str,
        size: u64,
    ) -> Result<(), RegistryError> {
        self.update_version(
            tier,
            version,
            "UPDATE versions SET gguf_path = ?3, gguf_sha256 = ?4, gguf_size = ?5 WHERE tier = ?1 AND version = ?2",
            params![tier, version, path, sha256, size as i64],
        )
    }

    /// Stores evaluation results next to a version.
    pub fn set_eval(
        &mut self,
        tier: &str,
        version: &str,
        eval: &serde_json::Value,
    ) -> Result<(), RegistryError> {
        self.conn
            .execute(
                "UPDATE versions SET eval_metrics = ?3 WHERE tier = ?1 AND version = ?2",
                params![tier, version, eval.to_string()],
            )
            .map_err(self.db())?;
        Ok(())
    }

    /// Marks a candidate rejected, with the reason.
    pub fn reject(
        &mut self,
        tier: &str,
        version: &str,
        reason: &str,
        at: &str,
    ) -> Result<(), RegistryError> {
        let tx = self
            .conn
            .transaction()
            .map_err(|source| RegistryError::Db {
                path: self.path.clone(),
                source,
            })?;
        let n = tx
            .execute("UPDATE versions SET status = 'rejected', note = ?3 WHERE tier = ?1 AND version = ?2 AND status = 'candidate'", params![tier, version, reason])
            .map_err(|source| RegistryError::Db { path: self.path.clone(), source })?;
        if n == 0 {
            return Err(RegistryError::NotFound {
                tier: tier.into(),
                version: version.into(),
            });
        }
        tx.execute("INSERT INTO events (at, tier, version, action, detail) VALUES (?1, ?2, ?3, 'reject', ?4)", params![at, tier, version, reason])
            .map_err(|source| RegistryError::Db { path: self.path.clone(), source })?;
        tx.commit().map_err(|source| RegistryError::Db {
            path: self.path.clone(),
            source,
        })
    }

    /// Promotes a version to production after `health_check` passes; the previous production
    /// version is retired. A failed check leaves everything unchanged.
    pub fn promote<F>(
        &mut self,
        tier: &str,
        version: &str,
        at: &str,
        health_check: F,
    ) -> Result<Option<String>, RegistryError>
    where
        F: FnOnce(&VersionRecord) -> Result<String, String>,
    {
        let rec = self.get(tier, version)?;
        let detail = health_check(&rec).map_err(|reason| RegistryError::HealthCheck {
            tier: tier.into(),
            version: version.into(),
            reason,
        })?;
        let previous = self.production(tier)?.map(|p| p.version);
        let db = |source| RegistryError::Db {
            path: self.path.clone(),
            source,
        };
        let tx = self.conn.transaction().map_err(db)?;
        tx.execute(
            "UPDATE versions SET status = 'retired' WHERE tier = ?1 AND status = 'production'",
            [tier],
        )
        .map_err(db)?;
        tx.execute(
            "UPDATE versions SET status = 'production' WHERE tier = ?1 AND version = ?2",
            [tier, version],
        )
        .map_err(db)?;
        tx.execute(
            "INSERT INTO events (at, tier, version, action, detail) VALUES (?1, ?2, ?3, 'promote', ?4)",
            params![at, tier, version, serde_json::json!({"previous": previous, "health_check": detail}).to_string()],
        )
        .map_err(db)?;
        tx.commit().map_err(db)?;
        Ok(previous)
    }

    /// Appends an event to the log without changing any version (e.g. a failed health check).
    pub fn record_event(
        &mut self,
        tier: &str,
        version: &str,
        action: &str,
        detail: &str,
        at: &str,
    ) -> Result<(), RegistryError> {
        self.conn
            .execute(
                "INSERT INTO events (at, tier, version, action, detail) VALUES (?1, ?2, ?3, ?4, ?5)",
                params![at, tier, version, action, detail],
            )
            .map_err(self.db())?;
        Ok(())
    }

    /// What [`Registry::rollback`] would do, without doing it: `(current, previous)` production
    /// versions of the tier.
    pub fn rollback_target(&self, tier: &str) -> Result<(String, String), RegistryError> {
        let current = self
            .production(tier)?
            .ok_or_else(|| RegistryError::NothingToRollBack(tier.into()))?;
        let detail: Option<String> = self
            .conn
            .query_row(
                "SELECT detail FROM events WHERE tier = ?1 AND version = ?2 AND action IN ('promote', 'rollback') ORDER BY id DESC LIMIT 1",
                [tier, current.version.as_str()],
                |r| r.get(0),
            )
            .optional()
            .map_err(self.db())?;
        let previous = detail
            .and_then(|d| serde_json::from_str::<serde_json::Value>(&d).ok())
            .and_then(|v| v["previous"].as_str().map(str::to_owned))
            .ok_or_else(|| RegistryError::NothingToRollBack(tier.into()))?;
        Ok((current.version, previous))
    }

    /// Restores the production version that the current one replaced. Returns `(from, to)`.
    pub fn rollback(&mut self, tier: &str, at: &str) -> Result<(String, String), RegistryError> {
        let (current_version, previous) = self.rollback_target(tier)?;
        let current = self.get(tier, &current_version)?;
        let db = |source| RegistryError::Db {
            path: self.path.clone(),
            source,
        };
        let tx = self.conn.transaction().map_err(db)?;
        tx.execute(
            "UPDATE versions SET status = 'retired' WHERE tier = ?1 AND version = ?2",
            [tier, current.version.as_str()],
        )
        .map_err(db)?;
        let n = tx
            .execute(
                "UPDATE versions SET status = 'production' WHERE tier = ?1 AND version = ?2",
                [tier, previous.as_str()],
            )
            .map_err(db)?;
        if n == 0 {
            return Err(RegistryError::NotFound {
                tier: tier.into(),
                version: previous,
            });
        }
        // The restored version's own predecessor stays reachable for a second rollback.
        let before: Option<String> = tx
            .query_row(
                "SELECT detail FROM events WHERE tier = ?1 AND version = ?2 AND action IN ('promote', 'rollback') ORDER BY id DESC LIMIT 1",
                [tier, previous.as_str()],
                |r| r.get::<_, String>(0),
            )
            .optional()
            .map_err(db)?
            .and_then(|d| serde_json::from_str::<serde_json::Value>(&d).ok())
            .and_then(|v| v["previous"].as_str().map(str::to_owned));
        tx.execute(
            "INSERT INTO events (at, tier, version, action, detail) VALUES (?1, ?2, ?3, 'rollback', ?4)",
            params![at, tier, previous, serde_json::json!({"previous": before, "from": current.version}).to_string()],
        )
        .map_err(db)?;
        tx.commit().map_err(db)?;
        Ok((current.version, previous))
    }

    /// The event log of a tier (or all), oldest first: `(at, tier, version, action, detail)`.
    pub fn events(&self, tier: Option<&str>) -> Result<Vec<Event>, RegistryError> {
        let mut st = self
            .conn
            .prepare("SELECT at, tier, version, action, detail FROM events WHERE (?1 IS NULL OR tier = ?1) ORDER BY id")
            .map_err(self.db())?;
        let rows = st
            .query_map([tier], |r| {
                Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?, r.get(4)?))
            })
            .map_err(self.db())?;
        rows.collect::<Result<Vec<_>, _>>().map_err(self.db())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rec(tier: &str, version: &str) -> VersionRecord {
        VersionRecord {
            tier: tier.into(),
            version: version.into(),
            parent_version: None,
            base_model: "SmolLM2-135M-Instruct".into(),
            dataset_hash: "abc".into(),
            dataset_size: 60,
            config_hash: "def".into(),
            train_metrics: serde_json::json!({"loss": 1.0}),
            eval_metrics: serde_json::json!({}),
            gguf_path: None,
            gguf_sha256: Some("00".into()),
            gguf_size: Some(10),
            ollama_name: None,
            ollama_digest: None,
            created_at: "2026-11-23T00:00:00Z".into(),
            status: Status::Candidate,
            note: None,
        }
    }

    #[test]
    fn versions_promote_and_roll_back() {
        let dir = tempfile::tempdir().unwrap();
        let mut r = Registry::open(&dir.path().join("registry.db")).unwrap();
        assert_eq!(r.next_version("basic").unwrap(), "1.0.0");
        r.add(&rec("basic", "1.0.0")).unwrap();
        assert_eq!(r.next_version("basic").unwrap(), "1.1.0");
        r.add(&rec("basic", "1.1.0")).unwrap();
        assert!(matches!(
            r.add(&rec("basic", "1.1.0")),
            Err(RegistryError::Exists { .. })
        ));
        assert_eq!(
            r.promote("basic", "1.0.0", "t1", |_| Ok("ok".into()))
                .unwrap(),
            None
        );
        // A failed health check leaves production untouched.
        let err = r
            .promote("basic", "1.1.0", "t2", |_| Err("reply did not stop".into()))
            .unwrap_err();
        assert!(err.to_string().contains("production is unchanged"));
        assert_eq!(r.production("basic").unwrap().unwrap().version, "1.0.0");
        assert_eq!(
            r.promote("basic", "1.1.0", "t3", |_| Ok("ok".into()))
                .unwrap()
                .as_deref(),
            Some("1.0.0")
        );
        assert_eq!(r.get("basic", "1.0.0").unwrap().status, Status::Retired);
        assert_eq!(
            r.rollback("basic", "t4").unwrap(),
            ("1.1.0".into(), "1.0.0".into())
        );
        assert_eq!(r.production("basic").unwrap().unwrap().version, "1.0.0");
        assert!(matches!(
            r.rollback("basic", "t5"),
            Err(RegistryError::NothingToRollBack(_))
        ));
        assert_eq!(r.list(Some("basic")).unwrap().len(), 2);
        assert!(r.events(Some("basic")).unwrap().len() >= 5);
    }

    #[test]
    fn rejects_bad_versions_and_reopens() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("r.db");
        {
            let mut r = Registry::open(&p).unwrap();
            assert!(matches!(
                r.add(&rec("expert", "v1")),
                Err(RegistryError::BadVersion(_))
            ));
            r.add(&rec("expert", "2.3.4")).unwrap();
            r.reject("expert", "2.3.4", "not better: diff -1.2 [-3.0, 0.4]", "t")
                .unwrap();
        }
        let r = Registry::open(&p).unwrap();
        let v = r.get("expert", "2.3.4").unwrap();
        assert_eq!(v.status, Status::Rejected);
        assert!(v.note.unwrap().contains("not better"));
    }
}
