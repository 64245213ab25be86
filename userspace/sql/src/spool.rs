//! Durable, ordered on-disk queue of write batches (`sql_spool_dir`).
//!
//! Layout of a spool directory:
//! - `<id:020>.entry`: one entry per file, named by its id zero-padded to 20 digits so that the
//!   name order is the id order;
//! - `<id:020>.tmp`: an entry being written (only ever one, and only during `push`);
//! - `state`: the highest id ever pushed, so ids keep increasing after the spool empties;
//! - `lock`: held with `flock` while a [`Spool`] is open, holding the owner's pid;
//! - `quarantine/`: entries that failed verification, kept for a human to look at.
//!
//! One file per entry rather than segment files: entries are whole refresh batches (one per
//! table and bin per `sql_refresh_time`, typically hundreds of KB), so the per-file cost (a
//! create, two fsyncs and a rename) is small beside the data, and `pop_front` is a plain unlink
//! that gives the space back at once, without the compaction or read offsets that segments need.
//!
//! Each file is a frame: magic `XSP1`, id (u64 LE), payload length (u64 LE), CRC-32 (u32 LE)
//! of id, length and payload, then the payload (the item as JSON, which keeps a spool readable
//! with standard tools when an operator has to look at one). A frame whose size, id or CRC does
//! not match is torn or corrupt: it is moved to `quarantine/`, counted, logged and skipped,
//! never replayed half.

use nix::fcntl::{Flock, FlockArg};
use serde::{de::DeserializeOwned, Serialize};
use std::collections::VecDeque;
use std::fs::{self, File, OpenOptions};
use std::io::{Read, Write};
use std::path::{Path, PathBuf};

const MAGIC: &[u8; 4] = b"XSP1";
const HEADER: usize = 4 + 8 + 8 + 4;
const ENTRY_EXT: &str = "entry";
const TMP_EXT: &str = "tmp";
const STATE: &str = "state";
const STATE_TMP: &str = "state.tmp";
const LOCK: &str = "lock";
const QUARANTINE: &str = "quarantine";
/// A file the caller keeps beside the entries (what they are for; see `crate::targets`).
pub const META: &str = "target";

#[derive(Debug, thiserror::Error)]
pub enum SpoolError {
    #[error("spool {path}: {what}: {source}")]
    Io {
        path: String,
        what: String,
        #[source]
        source: std::io::Error,
    },
    #[error("spool {path}: corrupt entry: {why}")]
    Corrupt { path: String, why: String },
    #[error("spool {path}: locked by {holder} (is another xacctd using this sql_spool_dir?)")]
    Locked { path: String, holder: String },
    #[error("spool {path}: id {id} pushed after {last}: ids must increase")]
    IdNotIncreasing { path: String, id: u64, last: u64 },
    #[error("spool {path}: cannot encode entry {id}: {source}")]
    Encode {
        path: String,
        id: u64,
        #[source]
        source: serde_json::Error,
    },
}

fn io_err(path: &Path, what: &str) -> impl FnOnce(std::io::Error) -> SpoolError {
    let path = path.display().to_string();
    let what = what.to_string();
    move |source| SpoolError::Io { path, what, source }
}

/// One plugin's spool directory. Entries are kept in push order and survive a crash: `push`
/// returns only after the entry is durable (fsync of file and directory).
pub struct Spool {
    dir: PathBuf,
    /// (id, bytes on disk) of every entry waiting, oldest first.
    entries: VecDeque<(u64, u64)>,
    bytes: u64,
    last_id: u64,
    /// The `last_id` the `state` file holds.
    persisted_last_id: u64,
    quarantined: u64,
    _lock: Flock<File>,
}

impl std::fmt::Debug for Spool {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Spool")
            .field("dir", &self.dir)
            .field("len", &self.entries.len())
            .field("bytes", &self.bytes)
            .field("last_id", &self.last_id)
            .field("quarantined", &self.quarantined)
            .finish()
    }
}

fn entry_name(id: u64, ext: &str) -> String {
    format!("{id:020}.{ext}")
}

/// The id of a file named by [`entry_name`] with extension `ext`, or None for any other name.
fn parse_name(name: &str, ext: &str) -> Option<u64> {
    let stem = name.strip_suffix(ext)?.strip_suffix('.')?;
    if stem.len() != 20 || !stem.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    stem.parse().ok()
}

fn frame(id: u64, payload: &[u8]) -> Vec<u8> {
    let len = payload.len() as u64;
    let mut crc = crc32fast::Hasher::new();
    crc.update(&id.to_le_bytes());
    crc.update(&len.to_le_bytes());
    crc.update(payload);
    let mut out = Vec::with_capacity(HEADER + payload.len());
    out.extend_from_slice(MAGIC);
    out.extend_from_slice(&id.to_le_bytes());
    out.extend_from_slice(&len.to_le_bytes());
    out.extend_from_slice(&crc.finalize().to_le_bytes());
    out.extend_from_slice(payload);
    out
}

/// Checks a whole frame read from the file for entry `id`; returns the payload or why not.
fn unframe(id: u64, data: &[u8]) -> Result<&[u8], String> {
    if data.len() < HEADER {
        return Err(format!("{} bytes, shorter than the {HEADER}-byte header", data.len()));
    }
    if &data[..4] != MAGIC {
        return Err("bad magic".to_string());
    }
    let word = |at: usize| u64::from_le_bytes(data[at..at + 8].try_into().expect("8 bytes"));
    let (fid, len) = (word(4), word(12));
    let crc = u32::from_le_bytes(data[20..24].try_into().expect("4 bytes"));
    if fid != id {
        return Err(format!("frame holds id {fid}, file name says {id}"));
    }
    let have = (data.len() - HEADER) as u64;
    if have != len {
        return Err(format!("payload is {have} bytes, header says {len} (torn write?)"));
    }
    let mut h = crc32fast::Hasher::new();
    h.update(&data[4..20]);
    h.update(&data[HEADER..]);
    if h.finalize() != crc {
        return Err("checksum mismatch".to_string());
    }
    Ok(&data[HEADER..])
}

fn sync_dir(dir: &Path) -> Result<(), SpoolError> {
    File::open(dir).and_then(|d| d.sync_all()).map_err(io_err(dir, "fsync directory"))
}

/// Writes `data` to `tmp`, fsyncs it, renames it to `dst` and fsyncs the directory: after this
/// returns, `dst` holds `data` whole, whatever happens next.
fn write_durable(dir: &Path, tmp: &Path, dst: &Path, data: &[u8]) -> Result<(), SpoolError> {
    let res = (|| {
        let mut f = OpenOptions::new().write(true).create(true).truncate(true).open(tmp)?;
        f.write_all(data)?;
        f.sync_all()
    })();
    if let Err(e) = res {
        // Best effort: a half-written temp file would only be quarantined at the next open.
        let _ = fs::remove_file(tmp);
        return Err(io_err(tmp, "write")(e));
    }
    fs::rename(tmp, dst).map_err(io_err(dst, "rename into place"))?;
    sync_dir(dir)
}

impl Spool {
    /// Opens (creating if needed) the spool at `dir`, recovering entries left by a previous run.
    /// A torn entry (crash while writing) is moved aside and counted, never replayed half.
    pub fn open(dir: &Path) -> Result<Spool, SpoolError> {
        if !dir.is_dir() {
            fs::create_dir_all(dir).map_err(io_err(dir, "create directory"))?;
            // The new directory's own name must be durable too, or entries could vanish with it.
            if let Some(parent) = dir.parent().filter(|p| !p.as_os_str().is_empty()) {
                sync_dir(parent)?;
            }
        }
        let lock = lock_dir(dir)?;
        let mut spool = Spool {
            dir: dir.to_path_buf(),
            entries: VecDeque::new(),
            bytes: 0,
            last_id: 0,
            persisted_last_id: 0,
            quarantined: 0,
            _lock: lock,
        };
        spool.persisted_last_id = spool.read_state()?;
        spool.last_id = spool.persisted_last_id;
        spool.recover()?;
        if spool.last_id > spool.persisted_last_id {
            spool.write_state(spool.last_id)?;
        }
        if !spool.entries.is_empty() || spool.quarantined > 0 {
            tracing::info!(
                dir = %dir.display(),
                entries = spool.entries.len(),
                bytes = spool.bytes,
                quarantined = spool.quarantined,
                "spool: recovered entries from a previous run"
            );
        }
        Ok(spool)
    }

    fn read_state(&self) -> Result<u64, SpoolError> {
        let path = self.dir.join(STATE);
        let text = match fs::read_to_string(&path) {
            Ok(t) => t,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(0),
            Err(e) => return Err(io_err(&path, "read")(e)),
        };
        // `last_id <n> <crc32 of "last_id <n>">`: the rename makes it atomic, the CRC catches a
        // disk or filesystem that lied about it.
        let bad = |why: &str| SpoolError::Corrupt { path: path.display().to_string(), why: why.to_string() };
        let line = text.trim_end();
        let (body, crc) = line.rsplit_once(' ').ok_or_else(|| bad("state file has no checksum"))?;
        let crc: u32 = crc.parse().map_err(|_| bad("state file checksum is not a number"))?;
        if crc32fast::hash(body.as_bytes()) != crc {
            return Err(bad("state file checksum mismatch"));
        }
        let n = body.strip_prefix("last_id ").ok_or_else(|| bad("state file does not start with last_id"))?;
        n.parse().map_err(|_| bad("state file last_id is not a number"))
    }

    fn write_state(&mut self, last_id: u64) -> Result<(), SpoolError> {
        let body = format!("last_id {last_id}");
        let text = format!("{body} {}\n", crc32fast::hash(body.as_bytes()));
        write_durable(&self.dir, &self.dir.join(STATE_TMP), &self.dir.join(STATE), text.as_bytes())?;
        self.persisted_last_id = last_id;
        Ok(())
    }

    /// Scans the directory: lists entries, promotes a temp file that was written whole but not
    /// yet renamed (a crash between fsync and rename: its data is good and newer than every
    /// entry, so keeping it loses nothing and keeps the order), and quarantines the rest.
    fn recover(&mut self) -> Result<(), SpoolError> {
        let mut ids = Vec::new();
        let mut tmps = Vec::new();
        let rd = fs::read_dir(&self.dir).map_err(io_err(&self.dir, "list"))?;
        for de in rd {
            let de = de.map_err(io_err(&self.dir, "list"))?;
            let name = de.file_name();
            let Some(name) = name.to_str() else { continue };
            if let Some(id) = parse_name(name, ENTRY_EXT) {
                ids.push(id);
            } else if let Some(id) = parse_name(name, TMP_EXT) {
                tmps.push(id);
            } else if ![STATE, STATE_TMP, LOCK, QUARANTINE, META].contains(&name) {
                tracing::warn!(dir = %self.dir.display(), file = name, "spool: ignoring a file that is not ours");
            }
        }
        for id in tmps {
            let tmp = self.dir.join(entry_name(id, TMP_EXT));
            let data = fs::read(&tmp).map_err(io_err(&tmp, "read"))?;
            match unframe(id, &data) {
                Ok(_) if !ids.contains(&id) => {
                    fs::rename(&tmp, self.dir.join(entry_name(id, ENTRY_EXT))).map_err(io_err(&tmp, "rename"))?;
                    sync_dir(&self.dir)?;
                    tracing::info!(id, "spool: kept an entry whose push was interrupted after it was written");
                    ids.push(id);
                }
                Ok(_) => self.quarantine(&tmp, id, "duplicate of an entry with the same id")?,
                Err(why) => self.quarantine(&tmp, id, &why)?,
            }
            self.last_id = self.last_id.max(id);
        }
        ids.sort_unstable();
        for id in ids {
            let path = self.dir.join(entry_name(id, ENTRY_EXT));
            let size = fs::metadata(&path).map_err(io_err(&path, "stat"))?.len();
            self.entries.push_back((id, size));
            self.bytes += size;
            self.last_id = self.last_id.max(id);
        }
        Ok(())
    }

    /// Moves `path` (the file of entry `id`) to `quarantine/`, keeping every version.
    fn quarantine(&mut self, path: &Path, id: u64, why: &str) -> Result<(), SpoolError> {
        let qdir = self.dir.join(QUARANTINE);
        fs::create_dir_all(&qdir).map_err(io_err(&qdir, "create directory"))?;
        let name = path.file_name().and_then(|n| n.to_str()).unwrap_or("entry").to_string();
        let mut dst = qdir.join(&name);
        let mut n = 1;
        while dst.exists() {
            dst = qdir.join(format!("{name}.{n}"));
            n += 1;
        }
        fs::rename(path, &dst).map_err(io_err(path, "move to quarantine"))?;
        sync_dir(&qdir)?;
        sync_dir(&self.dir)?;
        self.quarantined += 1;
        tracing::error!(
            id,
            file = %dst.display(),
            why,
            "spool: entry quarantined (not replayed); its aggregates are missing from the database"
        );
        Ok(())
    }

    /// Appends `item` under the caller's monotonically increasing `id`.
    pub fn push<T: Serialize>(&mut self, id: u64, item: &T) -> Result<(), SpoolError> {
        if id <= self.last_id {
            return Err(SpoolError::IdNotIncreasing { path: self.dir.display().to_string(), id, last: self.last_id });
        }
        let payload = serde_json::to_vec(item).map_err(|source| SpoolError::Encode {
            path: self.dir.display().to_string(),
            id,
            source,
        })?;
        let data = frame(id, &payload);
        let dst = self.dir.join(entry_name(id, ENTRY_EXT));
        write_durable(&self.dir, &self.dir.join(entry_name(id, TMP_EXT)), &dst, &data)?;
        self.entries.push_back((id, data.len() as u64));
        self.bytes += data.len() as u64;
        self.last_id = id;
        Ok(())
    }

    /// The oldest entry, if any.
    pub fn front<T: DeserializeOwned>(&mut self) -> Result<Option<(u64, T)>, SpoolError> {
        while let Some(&(id, size)) = self.entries.front() {
            let path = self.dir.join(entry_name(id, ENTRY_EXT));
            let mut data = Vec::with_capacity(usize::try_from(size).unwrap_or(0));
            File::open(&path).and_then(|mut f| f.read_to_end(&mut data)).map_err(io_err(&path, "read"))?;
            let why = match decode_entry(id, &data) {
                Ok(item) => return Ok(Some((id, item))),
                Err(why) => why,
            };
            self.keep_last_id_before_removing_front()?;
            self.quarantine(&path, id, &why)?;
            self.forget_front();
        }
        Ok(None)
    }

    /// The newest entry's name is what remembers last_id until the state file does: write the
    /// state before that name goes.
    fn keep_last_id_before_removing_front(&mut self) -> Result<(), SpoolError> {
        if self.entries.len() == 1 && self.persisted_last_id < self.last_id {
            self.write_state(self.last_id)?;
        }
        Ok(())
    }

    fn forget_front(&mut self) {
        if let Some((_, size)) = self.entries.pop_front() {
            self.bytes -= size;
        }
    }

    /// Moves the oldest entry, as it is, into the directory `to` (another spool's, on the same
    /// file system) instead of removing it: for an entry that is not this spool's to write.
    /// Returns its new path.
    pub fn move_front_to(&mut self, to: &Path) -> Result<PathBuf, SpoolError> {
        let Some(&(id, _)) = self.entries.front() else {
            return Err(SpoolError::Corrupt { path: self.dir.display().to_string(), why: "no entry to move".into() });
        };
        self.keep_last_id_before_removing_front()?;
        let from = self.dir.join(entry_name(id, ENTRY_EXT));
        let dst = to.join(entry_name(id, ENTRY_EXT));
        if dst.exists() {
            // The same entry, left in both places by a crash during an earlier move: drop
            // this copy. Anything else there is not ours to overwrite.
            let same = fs::read(&dst).ok().zip(fs::read(&from).ok()).is_some_and(|(a, b)| a == b);
            if !same {
                return Err(SpoolError::Corrupt {
                    path: dst.display().to_string(),
                    why: format!("another entry {id} is there already: not overwritten"),
                });
            }
            fs::remove_file(&from).map_err(io_err(&from, "remove"))?;
        } else {
            fs::rename(&from, &dst).map_err(io_err(&from, "move"))?;
        }
        // The new place is made durable first: after a crash the entry is there, and at worst
        // also still here (handled above at the next move), never in neither.
        sync_dir(to)?;
        sync_dir(&self.dir)?;
        self.forget_front();
        Ok(dst)
    }

    /// Removes the oldest entry (after it has been committed to the database).
    pub fn pop_front(&mut self) -> Result<(), SpoolError> {
        let Some(&(id, _)) = self.entries.front() else { return Ok(()) };
        self.keep_last_id_before_removing_front()?;
        let path = self.dir.join(entry_name(id, ENTRY_EXT));
        match fs::remove_file(&path) {
            Ok(()) => {}
            // Already gone (removed by hand): what the caller wanted.
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => return Err(io_err(&path, "remove")(e)),
        }
        // Without this a crash could bring the entry back and the caller would replay it; the
        // database side is idempotent per batch id, but replaying is work and log noise.
        sync_dir(&self.dir)?;
        self.forget_front();
        Ok(())
    }

    /// Entries waiting.
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Bytes on disk.
    pub fn bytes(&self) -> u64 {
        self.bytes
    }

    /// The highest id ever pushed to this spool (also after a restart with an empty spool), so
    /// the caller can keep ids increasing across restarts.
    pub fn last_id(&self) -> u64 {
        self.last_id
    }

    /// Torn or unreadable entries moved aside since `open`.
    pub fn quarantined(&self) -> u64 {
        self.quarantined
    }

    /// The ids waiting, oldest first (for logs and `xacct -t`).
    pub fn ids(&self) -> impl Iterator<Item = u64> + '_ {
        self.entries.iter().map(|&(id, _)| id)
    }

    pub fn dir(&self) -> &Path {
        &self.dir
    }
}

/// The entries of the spool directory `dir` as (id, path, bytes), oldest first, without
/// opening it (no lock taken, nothing recovered): for looking at a spool another run left.
pub fn list(dir: &Path) -> Result<Vec<(u64, PathBuf, u64)>, SpoolError> {
    let mut v = Vec::new();
    for de in fs::read_dir(dir).map_err(io_err(dir, "list"))? {
        let de = de.map_err(io_err(dir, "list"))?;
        let Some(id) = de.file_name().to_str().and_then(|n| parse_name(n, ENTRY_EXT)) else { continue };
        let size = de.metadata().map_err(io_err(&de.path(), "stat"))?.len();
        v.push((id, de.path(), size));
    }
    v.sort_unstable_by_key(|e| e.0);
    Ok(v)
}

/// Reads and checks one entry file listed by [`list`]; the error says why it is unreadable.
pub fn read_entry<T: DeserializeOwned>(path: &Path, id: u64) -> Result<T, String> {
    let data = fs::read(path).map_err(|e| format!("{}: {e}", path.display()))?;
    decode_entry(id, &data)
}

/// Checks and decodes the bytes of the entry file for `id`: the frame, then its JSON payload.
/// What [`Spool::front`] and [`read_entry`] do once the file is read; pure, so it is fuzzed.
pub fn decode_entry<T: DeserializeOwned>(id: u64, data: &[u8]) -> Result<T, String> {
    let payload = unframe(id, data)?;
    serde_json::from_slice(payload).map_err(|e| format!("payload does not decode: {e}"))
}

/// The bytes of the entry file for `id` holding `payload` (for tests and the fuzz target).
#[doc(hidden)]
pub fn encode_frame(id: u64, payload: &[u8]) -> Vec<u8> {
    frame(id, payload)
}

/// The highest id the spool directory `dir` ever held, without opening it (its state file,
/// its entries' names); 0 when there is nothing to read.
pub fn peek_last_id(dir: &Path) -> u64 {
    let state = fs::read_to_string(dir.join(STATE)).ok().and_then(|t| {
        let (body, crc) = t.trim_end().rsplit_once(' ')?;
        (crc32fast::hash(body.as_bytes()) == crc.parse::<u32>().ok()?).then_some(())?;
        body.strip_prefix("last_id ")?.parse::<u64>().ok()
    });
    let names = fs::read_dir(dir).into_iter().flatten().flatten().filter_map(|de| {
        let n = de.file_name();
        let n = n.to_str()?;
        parse_name(n, ENTRY_EXT).or_else(|| parse_name(n, TMP_EXT))
    });
    names.chain(state).max().unwrap_or(0)
}

/// Takes the directory's `lock` file with a non-blocking exclusive `flock` (released by the
/// kernel when the process dies, so a crash never leaves a stale lock) and writes our pid in it.
pub(crate) fn lock_dir(dir: &Path) -> Result<Flock<File>, SpoolError> {
    let path = dir.join(LOCK);
    // No truncate here: until we hold the lock, the pid in the file is the holder's.
    let file = OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(false)
        .open(&path)
        .map_err(io_err(&path, "open lock file"))?;
    let mut lock = match Flock::lock(file, FlockArg::LockExclusiveNonblock) {
        Ok(l) => l,
        Err((mut file, errno)) if errno == nix::errno::Errno::EWOULDBLOCK => {
            let mut pid = String::new();
            let _ = file.read_to_string(&mut pid);
            let holder = match pid.trim() {
                "" => "another process".to_string(),
                p => format!("pid {p}"),
            };
            return Err(SpoolError::Locked { path: dir.display().to_string(), holder });
        }
        Err((_, errno)) => return Err(io_err(&path, "flock")(std::io::Error::from(errno))),
    };
    let res = lock.set_len(0).and_then(|()| {
        use std::io::Seek;
        lock.seek(std::io::SeekFrom::Start(0))?;
        writeln!(*lock, "{}", std::process::id())
    });
    res.map_err(io_err(&path, "write pid"))?;
    Ok(lock)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_sort_like_ids_and_parse_back() {
        let mut names: Vec<String> = [10u64, 9, 100, u64::MAX, 0].iter().map(|&i| entry_name(i, ENTRY_EXT)).collect();
        names.sort();
        let ids: Vec<u64> = names.iter().map(|n| parse_name(n, ENTRY_EXT).unwrap()).collect();
        assert_eq!(ids, [0, 9, 10, 100, u64::MAX]);
        assert_eq!(parse_name("00000000000000000001.tmp", ENTRY_EXT), None);
        assert_eq!(parse_name("1.entry", ENTRY_EXT), None);
        assert_eq!(parse_name("0000000000000000000x.entry", ENTRY_EXT), None);
    }

    #[test]
    fn decode_entry_is_unframe_then_json() {
        let f = encode_frame(5, b"[1,2]");
        assert_eq!(decode_entry::<Vec<u8>>(5, &f), Ok(vec![1, 2]));
        assert!(decode_entry::<Vec<u8>>(6, &f).unwrap_err().contains("id"));
        assert!(decode_entry::<String>(5, &f).unwrap_err().contains("does not decode"));
    }

    #[test]
    fn frame_round_trip_and_every_damage_is_caught() {
        let f = frame(7, b"{\"a\":1}");
        assert_eq!(unframe(7, &f).unwrap(), b"{\"a\":1}");
        assert!(unframe(8, &f).unwrap_err().contains("id"));
        assert!(unframe(7, &f[..f.len() - 1]).unwrap_err().contains("torn"));
        assert!(unframe(7, &f[..10]).unwrap_err().contains("header"));
        for i in 0..f.len() {
            let mut g = f.clone();
            g[i] ^= 0x40;
            assert!(unframe(7, &g).is_err(), "flipped byte {i} not detected");
        }
    }
}
