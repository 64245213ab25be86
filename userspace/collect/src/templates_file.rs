//! `nfacctd_templates_file`: v9/IPFIX templates (and the sampling state options data announced)
//! kept across restarts, so that data sets arriving right after a restart are decoded instead
//! of waiting up to an exporter's template refresh interval (minutes on some routers).
//!
//! # Format (ours, JSON, version 1)
//!
//! ```json
//! {
//!   "format": "xacct-nfacctd-templates",
//!   "version": 1,
//!   "domains": [
//!     {
//!       "exporter": "192.0.2.1", "netflow_version": 9, "source_id": 0,
//!       "templates": [
//!         { "id": 256, "fields": [ { "ie": 8, "len": 4 }, { "ie": 1, "len": 4 } ] },
//!         { "id": 257, "options": true, "scope": 1,
//!           "fields": [ { "ie": 1, "len": 4 }, { "ie": 34, "len": 4 } ] },
//!         { "id": 258, "fields": [ { "ie": 7, "len": 65535, "enterprise": 12345 } ] }
//!       ],
//!       "sampling": [ { "sampler_id": 0, "interval": 100, "algorithm": 1 } ],
//!       "system_init_ms": 1700000000000
//!     }
//!   ]
//! }
//! ```
//!
//! One entry per exporter address + NetFlow version (9, or 10 for IPFIX) + source id /
//! observation domain. `fields` are the template's fields as they arrived (`len` 65535 marks an
//! IPFIX variable-length field); `scope` counts an options template's leading scope fields.
//! `sampling` and `system_init_ms` may be absent. Unknown keys, another `format` or `version`,
//! or a template the wire would refuse make the whole file unusable.
//!
//! # Behaviour
//! - Loaded once at start and given to every NetFlow collector socket (SO_REUSEPORT may hash
//!   an exporter to any of them).
//! - A missing file is a first start (logged, not an error). An unreadable or corrupt file is
//!   logged as an error, counted (`templates_file_errors`), and the collectors start with no
//!   templates; the file is replaced at the next write.
//! - Written when templates or sampling state actually change (a refresh repeating a known
//!   template is no change), at most once per [`WRITE_EVERY`], and at shutdown: to a temporary
//!   file in the same directory, synced, then renamed over the old one, so a crash leaves the
//!   old file or the new one, never half of one. Write failures are logged and counted and
//!   retried at the next interval; collection carries on.

use std::collections::BTreeMap;
use std::io::Write;
use std::net::IpAddr;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};
use xacct_wire::netflow::{
    DomainState, Limits, NetflowError, SamplingInfo, TemplateCache, TemplateField, TemplateState,
};

/// The `format` value that marks our file.
pub const FORMAT: &str = "xacct-nfacctd-templates";
/// The only version written and read so far.
pub const VERSION: u32 = 1;
/// Least time between two writes while templates keep changing.
pub const WRITE_EVERY: Duration = Duration::from_secs(1);

#[derive(Debug, thiserror::Error)]
pub enum TemplatesFileError {
    #[error("nfacctd_templates_file {path}: cannot read: {source}")]
    Read { path: PathBuf, source: std::io::Error },
    #[error("nfacctd_templates_file {path}: not valid JSON of the expected shape: {source}")]
    Parse { path: PathBuf, source: serde_json::Error },
    #[error(
        "nfacctd_templates_file {path}: format \"{format}\" version {version}, expected \"{FORMAT}\" version {VERSION}"
    )]
    Format { path: PathBuf, format: String, version: u32 },
    #[error(
        "nfacctd_templates_file {path}: exporter {exporter} version {netflow_version} domain {source_id}: {source}"
    )]
    Invalid { path: PathBuf, exporter: IpAddr, netflow_version: u16, source_id: u32, source: NetflowError },
    #[error("nfacctd_templates_file {path}: cannot write: {source}")]
    Write { path: PathBuf, source: std::io::Error },
}

#[derive(Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct FileJson {
    format: String,
    version: u32,
    domains: Vec<DomainJson>,
}

#[derive(Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct DomainJson {
    exporter: IpAddr,
    netflow_version: u16,
    source_id: u32,
    templates: Vec<TemplateJson>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    sampling: Vec<SamplingJson>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    system_init_ms: Option<u64>,
}

#[derive(Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct TemplateJson {
    id: u16,
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    options: bool,
    #[serde(default, skip_serializing_if = "is_zero")]
    scope: u16,
    fields: Vec<FieldJson>,
}

#[derive(Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct FieldJson {
    ie: u16,
    len: u16,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    enterprise: Option<u32>,
}

#[derive(Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct SamplingJson {
    sampler_id: u32,
    interval: u32,
    algorithm: u8,
}

fn is_zero(n: &u16) -> bool {
    *n == 0
}

impl From<&DomainState> for DomainJson {
    fn from(d: &DomainState) -> Self {
        DomainJson {
            exporter: d.exporter,
            netflow_version: d.version,
            source_id: d.source_id,
            templates: d
                .templates
                .iter()
                .map(|t| TemplateJson {
                    id: t.id,
                    options: t.options,
                    scope: t.scope,
                    fields: t
                        .fields
                        .iter()
                        .map(|f| FieldJson { ie: f.ie, len: f.len, enterprise: f.enterprise })
                        .collect(),
                })
                .collect(),
            sampling: d
                .sampling
                .iter()
                .map(|s| SamplingJson { sampler_id: s.sampler_id, interval: s.interval, algorithm: s.algorithm })
                .collect(),
            system_init_ms: d.system_init_ms,
        }
    }
}

impl From<DomainJson> for DomainState {
    fn from(d: DomainJson) -> Self {
        DomainState {
            exporter: d.exporter,
            version: d.netflow_version,
            source_id: d.source_id,
            templates: d
                .templates
                .into_iter()
                .map(|t| TemplateState {
                    id: t.id,
                    options: t.options,
                    scope: t.scope,
                    fields: t
                        .fields
                        .into_iter()
                        .map(|f| TemplateField { ie: f.ie, len: f.len, enterprise: f.enterprise })
                        .collect(),
                })
                .collect(),
            sampling: d
                .sampling
                .into_iter()
                .map(|s| SamplingInfo {
                    exporter: Some(d.exporter),
                    source_id: d.source_id,
                    sampler_id: s.sampler_id,
                    interval: s.interval,
                    algorithm: s.algorithm,
                })
                .collect(),
            system_init_ms: d.system_init_ms,
        }
    }
}

type Key = (IpAddr, u16, u32);

/// Parses and checks a templates file's text: every template must be one the collector would
/// accept on the wire under `limits`.
pub fn parse(path: &Path, text: &str, limits: Limits) -> Result<Vec<DomainState>, TemplatesFileError> {
    let file: FileJson =
        serde_json::from_str(text).map_err(|source| TemplatesFileError::Parse { path: path.to_path_buf(), source })?;
    if file.format != FORMAT || file.version != VERSION {
        return Err(TemplatesFileError::Format {
            path: path.to_path_buf(),
            format: file.format,
            version: file.version,
        });
    }
    let domains: Vec<DomainState> = file.domains.into_iter().map(DomainState::from).collect();
    let mut scratch = TemplateCache::new(limits);
    for d in &domains {
        scratch.restore(std::slice::from_ref(d)).map_err(|source| TemplatesFileError::Invalid {
            path: path.to_path_buf(),
            exporter: d.exporter,
            netflow_version: d.version,
            source_id: d.source_id,
            source,
        })?;
    }
    Ok(domains)
}

/// The JSON text of `domains` in our format.
pub fn render<'a>(domains: impl IntoIterator<Item = &'a DomainState>) -> String {
    let file = FileJson {
        format: FORMAT.to_string(),
        version: VERSION,
        domains: domains.into_iter().map(DomainJson::from).collect(),
    };
    // Plain data with string keys: serialising it cannot fail.
    let mut s = serde_json::to_string_pretty(&file).unwrap_or_default();
    s.push('\n');
    s
}

#[derive(Debug, Default)]
struct State {
    /// What the file should hold: every domain any collector socket knows.
    domains: BTreeMap<Key, DomainState>,
    dirty: bool,
    last_write: Option<Instant>,
    /// Failed writes since the last good one (only the first of a run is logged).
    failing: u64,
}

/// The templates file shared by the NetFlow collector sockets of one daemon.
#[derive(Debug)]
pub struct TemplatesFile {
    path: PathBuf,
    state: Mutex<State>,
    loaded: u64,
    errors: AtomicU64,
    writes: AtomicU64,
}

impl TemplatesFile {
    /// Loads `path`. Never fails: a missing file means no templates yet; an unreadable or
    /// corrupt one is logged and counted, and collection starts with no templates.
    pub fn open(path: &Path, limits: Limits) -> TemplatesFile {
        let mut errors = 0;
        let domains = match std::fs::read_to_string(path) {
            Ok(text) => match parse(path, &text, limits) {
                Ok(d) => d,
                Err(e) => {
                    tracing::error!("{e}; starting with no templates (the file is replaced when templates arrive)");
                    errors += 1;
                    Vec::new()
                }
            },
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                tracing::info!("nfacctd_templates_file {}: not there yet, starting with no templates", path.display());
                Vec::new()
            }
            Err(source) => {
                let e = TemplatesFileError::Read { path: path.to_path_buf(), source };
                tracing::error!("{e}; starting with no templates");
                errors += 1;
                Vec::new()
            }
        };
        let loaded = domains.iter().map(|d| d.templates.len() as u64).sum();
        if !domains.is_empty() {
            tracing::info!(
                "nfacctd_templates_file {}: loaded {loaded} templates of {} exporter domains",
                path.display(),
                domains.len()
            );
        }
        let domains = domains.into_iter().map(|d| ((d.exporter, d.version, d.source_id), d)).collect();
        TemplatesFile {
            path: path.to_path_buf(),
            state: Mutex::new(State { domains, ..State::default() }),
            loaded,
            errors: AtomicU64::new(errors),
            writes: AtomicU64::new(0),
        }
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The domains to seed each collector's template cache with.
    pub fn domains(&self) -> Vec<DomainState> {
        self.state.lock().map(|s| s.domains.values().cloned().collect()).unwrap_or_default()
    }

    /// Takes in what changed in one collector's cache ([`TemplateCache::take_changed`]); an
    /// empty domain is removed.
    pub fn update(&self, changed: Vec<DomainState>) {
        if changed.is_empty() {
            return;
        }
        let Ok(mut s) = self.state.lock() else { return };
        for d in changed {
            let key = (d.exporter, d.version, d.source_id);
            if d.is_empty() {
                s.domains.remove(&key);
            } else {
                s.domains.insert(key, d);
            }
        }
        s.dirty = true;
    }

    /// Writes the file if something changed and the last write is at least `every` ago.
    pub fn write_if_due(&self, every: Duration) {
        let Ok(mut s) = self.state.lock() else { return };
        if s.dirty && s.last_write.is_none_or(|t| t.elapsed() >= every) {
            self.write_locked(&mut s);
        }
    }

    /// Writes the file if anything changed since the last write (at shutdown).
    pub fn write_now(&self) {
        let Ok(mut s) = self.state.lock() else { return };
        if s.dirty {
            self.write_locked(&mut s);
        }
    }

    fn write_locked(&self, s: &mut State) {
        s.last_write = Some(Instant::now());
        match write_atomically(&self.path, render(s.domains.values()).as_bytes()) {
            Ok(()) => {
                if s.failing > 0 {
                    tracing::info!(
                        "nfacctd_templates_file {}: written again after {} failed writes",
                        self.path.display(),
                        s.failing
                    );
                }
                s.dirty = false;
                s.failing = 0;
                self.writes.fetch_add(1, Relaxed);
            }
            Err(source) => {
                if s.failing == 0 {
                    let e = TemplatesFileError::Write { path: self.path.clone(), source };
                    tracing::error!("{e}; retrying every {WRITE_EVERY:?} while templates are unsaved");
                }
                s.failing += 1;
                self.errors.fetch_add(1, Relaxed);
            }
        }
    }

    /// Counters for `xacct -t` and the SIGUSR1 log.
    pub fn counters(&self) -> [(&'static str, u64); 3] {
        [
            ("templates_loaded", self.loaded),
            ("templates_file_writes", self.writes.load(Relaxed)),
            ("templates_file_errors", self.errors.load(Relaxed)),
        ]
    }
}

/// Temporary file in the target's directory (rename only replaces atomically within one file
/// system), synced before the rename so the new name never points at unwritten data.
fn write_atomically(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    let mut tmp_name = path.file_name().map(|n| n.to_os_string()).unwrap_or_default();
    tmp_name.push(format!(".tmp.{}", std::process::id()));
    let tmp = path.with_file_name(tmp_name);
    let res = (|| {
        let mut f = std::fs::File::create(&tmp)?;
        f.write_all(bytes)?;
        f.sync_all()?;
        std::fs::rename(&tmp, path)
    })();
    if res.is_err() {
        let _ = std::fs::remove_file(&tmp);
    }
    res
}

#[cfg(test)]
mod tests {
    use super::*;

    fn state() -> DomainState {
        let exporter: IpAddr = "2001:db8::7".parse().unwrap();
        DomainState {
            exporter,
            version: 10,
            source_id: 77,
            templates: vec![
                TemplateState {
                    id: 256,
                    options: false,
                    scope: 0,
                    fields: vec![TemplateField::iana(8, 4), TemplateField { ie: 7, len: 65535, enterprise: Some(9) }],
                },
                TemplateState {
                    id: 300,
                    options: true,
                    scope: 1,
                    fields: vec![TemplateField::iana(149, 4), TemplateField::iana(305, 4)],
                },
            ],
            sampling: vec![SamplingInfo {
                exporter: Some(exporter),
                source_id: 77,
                sampler_id: 0,
                interval: 64,
                algorithm: 1,
            }],
            system_init_ms: Some(1_700_000_000_000),
        }
    }

    #[test]
    fn render_parse_roundtrip() {
        let d = state();
        let text = render([&d]);
        assert_eq!(parse(Path::new("t.json"), &text, Limits::default()).unwrap(), vec![d]);
    }

    #[test]
    fn bad_files_say_why() {
        let p = Path::new("/x/t.json");
        let e = parse(p, "{\"format\": ", Limits::default()).unwrap_err().to_string();
        assert!(e.contains("/x/t.json") && e.contains("line 1"), "{e}");
        let e = parse(p, r#"{"format":"other","version":1,"domains":[]}"#, Limits::default()).unwrap_err();
        assert!(matches!(e, TemplatesFileError::Format { .. }), "{e}");
        let e = parse(p, r#"{"format":"xacct-nfacctd-templates","version":1,"domains":[],"x":1}"#, Limits::default())
            .unwrap_err();
        assert!(e.to_string().contains("unknown field"), "{e}");
        let mut d = state();
        d.templates[0].fields[0].len = 0;
        let e = parse(p, &render([&d]), Limits::default()).unwrap_err().to_string();
        assert!(e.contains("2001:db8::7") && e.contains("length 0"), "{e}");
    }

    #[test]
    fn writes_are_atomic_debounced_and_failures_counted() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("templates.json");
        let f = TemplatesFile::open(&path, Limits::default());
        assert_eq!(f.counters(), [("templates_loaded", 0), ("templates_file_writes", 0), ("templates_file_errors", 0)]);
        f.update(vec![state()]);
        f.write_if_due(Duration::from_secs(3600));
        assert_eq!(f.counters()[1].1, 1, "the first change is written at once");
        f.update(vec![state()]);
        f.write_if_due(Duration::from_secs(3600));
        assert_eq!(f.counters()[1].1, 1, "the next waits for the interval");
        f.write_now();
        assert_eq!(f.counters()[1].1, 2);
        let names: Vec<_> = std::fs::read_dir(dir.path()).unwrap().map(|e| e.unwrap().file_name()).collect();
        assert_eq!(names, vec!["templates.json"], "no temporary file left behind");
        let again = TemplatesFile::open(&path, Limits::default());
        assert_eq!(again.domains(), vec![state()]);
        assert_eq!(again.counters()[0].1, 2);
        // Removing a domain empties the file's list.
        let mut gone = state();
        gone.templates.clear();
        gone.sampling.clear();
        gone.system_init_ms = None;
        again.update(vec![gone]);
        again.write_now();
        assert!(TemplatesFile::open(&path, Limits::default()).domains().is_empty());

        // A directory that does not exist: counted, no panic, retried.
        let bad = TemplatesFile::open(&dir.path().join("missing/t.json"), Limits::default());
        bad.update(vec![state()]);
        bad.write_now();
        bad.write_now();
        assert_eq!(bad.counters()[2].1, 2);
    }
}
