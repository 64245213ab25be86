//! A plugin's `sql_spool_dir` holds one spool per target, so that a spooled batch is only ever
//! written to the database and table it was made for.
//!
//! A target ([`TargetId`]) is the backend, the server's host and port, the database (the file
//! for SQLite) and `sql_table` as configured. Layout of `sql_spool_dir`:
//! - `lock`: held with `flock` by the plugin that owns the directory;
//! - `<key>/`: the spool (see [`crate::spool`]) of one target, `<key>` a readable form of the
//!   target plus a checksum of it; its file `target` says which target, as JSON, and which
//!   marker namespace its batches use in `xacct_batches`;
//! - `*.entry`, `state`, `quarantine/` directly in it: a spool left by an xacct version that did
//!   not record targets.
//!
//! A plugin opens the spool of its configured target only. Every other spool that still holds
//! batches is reported at start, in the log (directory, batches, rows, their target) and in the
//! counters `spool_orphaned_batches` / `spool_orphaned_rows`, and left as it is: the batches are
//! written once a plugin with that target's settings (and this `sql_spool_dir`) runs, or gone
//! when the operator deletes the directory. Changing the configuration between runs thus never
//! sends a batch to another target, and never loses one.
//!
//! Batches also record their target. One in the plugin's own spool whose target is not what
//! the plugin would write it to (a `sql_preprocess` `recover` batch after
//! `sql_recovery_backup_host` changed, or files moved by hand) is moved, unchanged, to its own
//! target's spool and counted like the others.
//!
//! Batches of the older layout carry no target. Nothing tells which configuration they were
//! made under — the bug this layout fixes was exactly that a changed `sql_db` or `sql_table`
//! took them — so they are not written anywhere: they are reported with the tables they name,
//! and the operator who knows where they belong moves them into that target's directory (or
//! deletes them). Written from there, they use the old spool's marker namespace, so a batch
//! that was committed just before a crash is still recognised and not written twice.

use crate::batch::TargetId;
use crate::spool::{self, Spool, SpoolError};
use nix::fcntl::Flock;
use serde::de::{Deserializer, IgnoredAny, SeqAccess, Visitor};
use serde::{Deserialize, Serialize};
use std::collections::BTreeSet;
use std::fs::{self, File};
use std::path::{Path, PathBuf};

#[derive(Debug, thiserror::Error)]
pub enum TargetsError {
    #[error(transparent)]
    Spool(#[from] SpoolError),
    #[error("{path}: {what}: {source}")]
    Io {
        path: String,
        what: String,
        #[source]
        source: std::io::Error,
    },
    #[error("{path} is the spool of {found}, not of {want} (two targets with one name, or a directory renamed by hand): move it away")]
    Mismatch { path: String, found: String, want: String },
    #[error("{path}: unreadable target file: {why}")]
    BadTargetFile { path: String, why: String },
}

fn io_err(path: &Path, what: &str) -> impl FnOnce(std::io::Error) -> TargetsError {
    let path = path.display().to_string();
    let what = what.to_string();
    move |source| TargetsError::Io { path, what, source }
}

/// `<key>/target`.
#[derive(Debug, Clone, Serialize, Deserialize)]
struct TargetFile {
    target: TargetId,
    /// The `spool` column of this spool's markers in `xacct_batches`: fixed when the directory
    /// is made, so that it survives the directory being moved or the host renamed.
    marker_spool: String,
}

/// A spool that holds batches this plugin does not write.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Orphans {
    pub dir: PathBuf,
    /// None: the older layout, or a target file that could not be read.
    pub target: Option<TargetId>,
    pub batches: u64,
    pub rows: u64,
    pub bytes: u64,
    /// Table names the batches hold (for batches without a recorded target).
    pub tables: BTreeSet<String>,
    /// Entries that could not be read (torn, corrupt): counted in `batches`, not in `rows`.
    pub unreadable: u64,
}

/// A plugin's `sql_spool_dir`, locked for as long as this lives.
pub struct Root {
    dir: PathBuf,
    _lock: Flock<File>,
}

fn hostname() -> String {
    fs::read_to_string("/proc/sys/kernel/hostname").map(|s| s.trim().to_string()).unwrap_or_default()
}

/// `<host>:<path>` in at most 255 characters (the `spool` column); the end of the path is
/// kept, which holds the target's key and checksum.
fn marker_spool(path: &Path) -> String {
    let host = hostname();
    let path = path.display().to_string();
    let room = 255usize.saturating_sub(host.len() + 1);
    let mut cut = path.len().saturating_sub(room);
    while !path.is_char_boundary(cut) {
        cut += 1;
    }
    format!("{host}:{}", &path[cut..])
}

/// The spool directory name of `t`: readable, and unique through a checksum of the whole
/// target.
pub fn key(t: &TargetId) -> String {
    let readable = if t.host.is_empty() && t.port == 0 {
        let file = Path::new(&t.db).file_name().map_or_else(|| t.db.clone(), |f| f.to_string_lossy().into_owned());
        format!("{file}_{}", t.table)
    } else {
        format!("{}_{}_{}_{}", t.host, t.port, t.db, t.table)
    };
    let mut readable: String =
        readable.chars().map(|c| if c.is_ascii_alphanumeric() || "._-".contains(c) { c } else { '_' }).collect();
    readable.truncate(64);
    let json = serde_json::to_vec(t).expect("a TargetId always encodes");
    format!("{}-{readable}-{:08x}", t.backend, crc32fast::hash(&json))
}

/// Rows and target of a spooled batch, read without building its rows.
#[derive(Deserialize)]
pub(crate) struct Summary {
    table: String,
    #[serde(default)]
    target: Option<TargetId>,
    #[serde(deserialize_with = "count_items")]
    rows: u64,
}

fn count_items<'de, D: Deserializer<'de>>(d: D) -> Result<u64, D::Error> {
    struct Count;
    impl<'de> Visitor<'de> for Count {
        type Value = u64;
        fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
            f.write_str("a list of rows")
        }
        fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<u64, A::Error> {
            let mut n = 0;
            while seq.next_element::<IgnoredAny>()?.is_some() {
                n += 1;
            }
            Ok(n)
        }
    }
    d.deserialize_seq(Count)
}

impl Root {
    /// Opens (creating) `dir` and locks it: one plugin per `sql_spool_dir`.
    pub fn open(dir: &Path) -> Result<Root, TargetsError> {
        if !dir.is_dir() {
            fs::create_dir_all(dir).map_err(io_err(dir, "create directory"))?;
            // The new directory's own name must be durable too, or the spools in it could
            // vanish with it.
            if let Some(parent) = dir.parent().filter(|p| !p.as_os_str().is_empty()) {
                File::open(parent).and_then(|d| d.sync_all()).map_err(io_err(parent, "fsync directory"))?;
            }
        }
        let lock = spool::lock_dir(dir)?;
        Ok(Root { dir: dir.to_path_buf(), _lock: lock })
    }

    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// The directory of `t`'s spool (which may not exist).
    pub fn dir_of(&self, t: &TargetId) -> PathBuf {
        self.dir.join(key(t))
    }

    /// The marker namespace of batches without a recorded target: the one xacct used before,
    /// `<host>:<sql_spool_dir, canonical>`.
    pub fn legacy_marker_spool(&self) -> String {
        let dir = fs::canonicalize(&self.dir).unwrap_or_else(|_| self.dir.clone());
        let mut id = format!("{}:{}", hostname(), dir.display());
        id.truncate(255);
        id
    }

    /// The directory of `t`'s spool, made (with its target file, atomically) if missing;
    /// its marker namespace.
    fn ensure_dir(&self, t: &TargetId) -> Result<(PathBuf, String), TargetsError> {
        let dir = self.dir_of(t);
        if dir.is_dir() {
            let f = read_target_file(&dir)?;
            if &f.target != t {
                return Err(TargetsError::Mismatch {
                    path: dir.display().to_string(),
                    found: f.target.to_string(),
                    want: t.to_string(),
                });
            }
            return Ok((dir, f.marker_spool));
        }
        // Made whole under another name, then renamed: a directory with this name always has
        // its target file. We hold the root's lock, so a leftover of a crash is ours to clear.
        let tmp = self.dir.join(format!(".{}.new", key(t)));
        if tmp.exists() {
            fs::remove_dir_all(&tmp).map_err(io_err(&tmp, "remove a leftover"))?;
        }
        fs::create_dir(&tmp).map_err(io_err(&tmp, "create directory"))?;
        let canonical_root = fs::canonicalize(&self.dir).map_err(io_err(&self.dir, "canonicalize"))?;
        let f = TargetFile { target: t.clone(), marker_spool: marker_spool(&canonical_root.join(key(t))) };
        let text = serde_json::to_vec_pretty(&f).expect("a TargetFile always encodes");
        let path = tmp.join(spool::META);
        (|| {
            use std::io::Write;
            let mut file = File::create(&path)?;
            file.write_all(&text)?;
            file.write_all(b"\n")?;
            file.sync_all()?;
            File::open(&tmp)?.sync_all()
        })()
        .map_err(io_err(&path, "write"))?;
        fs::rename(&tmp, &dir).map_err(io_err(&dir, "rename into place"))?;
        File::open(&self.dir).and_then(|d| d.sync_all()).map_err(io_err(&self.dir, "fsync directory"))?;
        Ok((dir, f.marker_spool))
    }

    /// Opens `t`'s spool; its marker namespace.
    pub fn open_target(&self, t: &TargetId) -> Result<(Spool, String), TargetsError> {
        let (dir, marker) = self.ensure_dir(t)?;
        Ok((Spool::open(&dir)?, marker))
    }

    /// Target directories in the root (with their target files' targets, None if unreadable).
    fn target_dirs(&self) -> Result<Vec<(PathBuf, Option<TargetId>)>, TargetsError> {
        let mut v = Vec::new();
        for de in fs::read_dir(&self.dir).map_err(io_err(&self.dir, "list"))? {
            let de = de.map_err(io_err(&self.dir, "list"))?;
            let path = de.path();
            let name = de.file_name();
            let hidden = name.to_str().is_none_or(|n| n.starts_with('.'));
            if hidden || !path.join(spool::META).exists() {
                continue;
            }
            v.push((path.clone(), read_target_file(&path).ok().map(|f| f.target)));
        }
        v.sort_by(|a, b| a.0.cmp(&b.0));
        Ok(v)
    }

    /// The highest batch id any spool here ever held (ids must keep growing across targets:
    /// the marker namespaces are per spool, but an id is also the batch's file name).
    pub fn last_id(&self) -> Result<u64, TargetsError> {
        let dirs = self.target_dirs()?;
        Ok(dirs.iter().map(|(d, _)| spool::peek_last_id(d)).chain([spool::peek_last_id(&self.dir)]).max().unwrap_or(0))
    }

    /// Every spool here, other than `current`'s, that holds batches; and the older layout's
    /// batches in the root itself. Reads each batch once (to count its rows).
    pub fn orphans(&self, current: &TargetId) -> Result<Vec<Orphans>, TargetsError> {
        let mine = self.dir_of(current);
        let mut out = Vec::new();
        let mut dirs: Vec<(PathBuf, Option<TargetId>)> = vec![(self.dir.clone(), None)];
        dirs.extend(self.target_dirs()?.into_iter().filter(|(d, _)| *d != mine));
        for (dir, target) in dirs {
            let entries = spool::list(&dir)?;
            if entries.is_empty() {
                continue;
            }
            let mut o = Orphans {
                dir: dir.clone(),
                target: target.clone(),
                batches: entries.len() as u64,
                rows: 0,
                bytes: entries.iter().map(|e| e.2).sum(),
                tables: BTreeSet::new(),
                unreadable: 0,
            };
            for (id, path, _) in &entries {
                match spool::read_entry::<Summary>(path, *id) {
                    Ok(s) => {
                        o.rows += s.rows;
                        if s.target.is_none() || target.is_none() {
                            o.tables.insert(s.table);
                        }
                        if o.target.is_none() && dir != self.dir {
                            o.target = s.target;
                        }
                    }
                    Err(_) => o.unreadable += 1,
                }
            }
            out.push(o);
        }
        Ok(out)
    }

    /// Moves the front entry of `from` (which is not that spool's to write) into the spool
    /// of `target`, making that spool if needed; its new path.
    pub fn set_aside(&self, from: &mut Spool, target: &TargetId) -> Result<PathBuf, TargetsError> {
        let (dir, _) = self.ensure_dir(target)?;
        Ok(from.move_front_to(&dir)?)
    }
}

fn read_target_file(dir: &Path) -> Result<TargetFile, TargetsError> {
    let path = dir.join(spool::META);
    let text = fs::read(&path).map_err(io_err(&path, "read"))?;
    serde_json::from_slice(&text)
        .map_err(|e| TargetsError::BadTargetFile { path: path.display().to_string(), why: e.to_string() })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pg(db: &str, table: &str) -> TargetId {
        TargetId { backend: "pgsql".into(), host: "127.0.0.1".into(), port: 5432, db: db.into(), table: table.into() }
    }

    #[test]
    fn keys_are_readable_and_differ_for_every_part() {
        let a = pg("acct", "acct_%Y%m%d");
        assert!(key(&a).starts_with("pgsql-127.0.0.1_5432_acct_acct__Y_m_d-"), "{}", key(&a));
        let mut others = vec![pg("acct2", "acct_%Y%m%d"), pg("acct", "acct_v9")];
        let mut b = a.clone();
        b.host = "localhost".into();
        others.push(b);
        let mut b = a.clone();
        b.port = 5433;
        others.push(b);
        let mut b = a.clone();
        b.backend = "mysql".into();
        others.push(b);
        for o in &others {
            assert_ne!(key(o), key(&a), "{o}");
        }
        // Characters that only differ after sanitizing still give different keys.
        assert_ne!(key(&pg("a/b", "t")), key(&pg("a_b", "t")));
        let lite = TargetId {
            backend: "sqlite3".into(),
            host: String::new(),
            port: 0,
            db: "/var/lib/xacct/acct.db".into(),
            table: "acct_v9".into(),
        };
        assert!(key(&lite).starts_with("sqlite3-acct.db_acct_v9-"), "{}", key(&lite));
        assert_eq!(lite.to_string(), "sqlite3 /var/lib/xacct/acct.db table acct_v9");
        assert_eq!(a.to_string(), "pgsql 127.0.0.1:5432 database acct table acct_%Y%m%d");
    }

    #[test]
    fn marker_spool_keeps_the_end_of_a_long_path() {
        let long = PathBuf::from(format!("/{}/pgsql-x-0123abcd", "d".repeat(400)));
        let m = marker_spool(&long);
        assert!(m.len() <= 255 && m.ends_with("/pgsql-x-0123abcd"), "{m}");
    }
}
