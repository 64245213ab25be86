//! Configuration of the SQL plugins (`pgsql`, `mysql`, `sqlite3`) and the `sql_table` name
//! template.
//!
//! The template is checked here, at config load, so that a configuration whose table name could
//! carry SQL is refused before the daemon starts: literal parts may hold only ASCII letters,
//! digits and `_` (plus one `.` between a schema/database and the table), variables expand to
//! digits only, and the longest possible expansion must fit PostgreSQL's 63-byte identifiers
//! (MySQL allows 64). The writer still quotes every name for its backend.

use super::parse::{bad, not_yet, parse_bool, parse_count, refused, Directive, Pending};
use super::{ConfigError, Origin};
use crate::aggregate::{Aggregate, Primitive};
use crate::history::History;
use std::path::PathBuf;

/// Longest identifier PostgreSQL keeps (NAMEDATALEN - 1); MySQL allows 64, SQLite more.
pub const MAX_TABLE_NAME: usize = 63;

/// `sql_table_type`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum TableType {
    #[default]
    Original,
    Bgp,
}

/// One piece of a `sql_table` value.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum NamePart {
    Literal(String),
    /// A strftime conversion whose output is digits only (`Y m d H M S s w W j`).
    Time(char),
    /// `$tag`: the entry's tag (0 when `tag` is not in the aggregate).
    Tag,
    /// `$tag2`.
    Tag2,
    /// `$ref`: the plugin's `sql_refresh_time`.
    Ref,
    /// `$hst`: `sql_history` in seconds (0 without history).
    Hst,
}

/// A parsed `sql_table`, e.g. `acct_v9_%Y%m%d` or `acct_$tag`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TableTemplate {
    parts: Vec<NamePart>,
}

/// What a template is expanded with.
#[derive(Debug, Clone, Copy, Default)]
pub struct NameVars {
    /// Epoch seconds: the entry's bin with `sql_history`, else the write time.
    pub time: i64,
    pub tag: u64,
    pub tag2: u64,
    pub refresh: u64,
    pub history_secs: u64,
}

impl TableTemplate {
    /// Parses and checks a `sql_table` value. The error says what is wrong in words an operator
    /// can act on.
    pub fn parse(value: &str) -> Result<TableTemplate, String> {
        let mut parts = Vec::new();
        let mut lit = String::new();
        let mut chars = value.chars().peekable();
        let mut dots = 0;
        while let Some(c) = chars.next() {
            match c {
                '%' => {
                    let Some(conv) = chars.next() else {
                        return Err("'%' at the end of the table name".into());
                    };
                    if !matches!(conv, 'Y' | 'm' | 'd' | 'H' | 'M' | 'S' | 's' | 'w' | 'W' | 'j') {
                        return Err(format!(
                            "'%{conv}' is not allowed in a table name (use %Y %m %d %H %M %S %s %w %W or %j, which expand to digits)"
                        ));
                    }
                    if !lit.is_empty() {
                        parts.push(NamePart::Literal(std::mem::take(&mut lit)));
                    }
                    parts.push(NamePart::Time(conv));
                }
                '$' => {
                    let mut name = String::new();
                    while let Some(&n) = chars.peek() {
                        if n.is_ascii_alphanumeric() || n == '_' {
                            name.push(n);
                            chars.next();
                        } else {
                            break;
                        }
                    }
                    // `$tag_x` is `$tag` then `_x`: pmacct's variables are matched by name.
                    let (var, rest) = ["tag2", "tag", "ref", "hst"]
                        .iter()
                        .find_map(|v| name.strip_prefix(v).map(|r| (*v, r.to_string())))
                        .filter(|(v, r)| !(*v == "tag" && r.starts_with('2')))
                        .ok_or_else(|| match name.as_str() {
                            "tzone" | "peer_src_ip" | "post_tag" | "post_tag2" => {
                                format!("'${name}' is not supported in xacct's table names (use $tag, $tag2, $ref or $hst)")
                            }
                            _ => format!("unknown variable '${name}' (use $tag, $tag2, $ref or $hst)"),
                        })?;
                    if !lit.is_empty() {
                        parts.push(NamePart::Literal(std::mem::take(&mut lit)));
                    }
                    parts.push(match var {
                        "tag2" => NamePart::Tag2,
                        "tag" => NamePart::Tag,
                        "ref" => NamePart::Ref,
                        _ => NamePart::Hst,
                    });
                    lit.push_str(&rest);
                }
                '.' => {
                    dots += 1;
                    if dots > 1 {
                        return Err("a table name may have at most one '.' (schema.table)".into());
                    }
                    lit.push('.');
                }
                c if c.is_ascii_alphanumeric() || c == '_' => lit.push(c),
                c => {
                    return Err(format!(
                        "character {c:?} is not allowed in a table name (only letters, digits, '_', one '.' and variables): refused so that a table name can never carry SQL"
                    ))
                }
            }
        }
        if !lit.is_empty() {
            parts.push(NamePart::Literal(lit));
        }
        if parts.is_empty() {
            return Err("empty table name".into());
        }
        let t = TableTemplate { parts };
        // Both sides of a '.' must be non-empty.
        let sample = t.expand(&NameVars::default());
        if sample.starts_with('.') || sample.ends_with('.') {
            return Err("'.' must separate a schema and a table name".into());
        }
        let max = t.max_len();
        if max > MAX_TABLE_NAME {
            return Err(format!("the table name can expand to {max} characters; at most {MAX_TABLE_NAME} are allowed"));
        }
        Ok(t)
    }

    pub fn parts(&self) -> &[NamePart] {
        &self.parts
    }

    /// Whether the name depends on time or the entry (pmacct's "dynamic table").
    pub fn is_dynamic(&self) -> bool {
        self.parts.iter().any(|p| !matches!(p, NamePart::Literal(_)))
    }

    /// Whether the name depends on time.
    pub fn uses_time(&self) -> bool {
        self.parts.iter().any(|p| matches!(p, NamePart::Time(_)))
    }

    /// Whether the name depends on the entry's tags.
    pub fn uses_tags(&self) -> bool {
        self.parts.iter().any(|p| matches!(p, NamePart::Tag | NamePart::Tag2))
    }

    /// The longest name this template can give.
    pub fn max_len(&self) -> usize {
        self.parts
            .iter()
            .map(|p| match p {
                NamePart::Literal(s) => s.len(),
                // %s: up to 11 digits within the years chrono handles comfortably.
                NamePart::Time('s') => 11,
                NamePart::Time('Y') => 4,
                NamePart::Time('j') => 3,
                NamePart::Time('w') => 1,
                NamePart::Time(_) => 2,
                NamePart::Tag | NamePart::Tag2 | NamePart::Ref | NamePart::Hst => 20,
            })
            .sum()
    }

    /// The table name for `vars` (UTC, like the time bins).
    pub fn expand(&self, vars: &NameVars) -> String {
        use chrono::{Datelike, Timelike};
        let t = chrono::DateTime::from_timestamp(vars.time, 0).unwrap_or_default();
        let mut s = String::new();
        for p in &self.parts {
            match p {
                NamePart::Literal(l) => s.push_str(l),
                NamePart::Time(c) => {
                    let v = match c {
                        'Y' => format!("{:04}", t.year().clamp(0, 9999)),
                        'm' => format!("{:02}", t.month()),
                        'd' => format!("{:02}", t.day()),
                        'H' => format!("{:02}", t.hour()),
                        'M' => format!("{:02}", t.minute()),
                        'S' => format!("{:02}", t.second()),
                        's' => vars.time.max(0).to_string(),
                        'w' => t.weekday().num_days_from_sunday().to_string(),
                        'W' => t.format("%W").to_string(),
                        _ => format!("{:03}", t.ordinal()),
                    };
                    s.push_str(&v);
                }
                NamePart::Tag => s.push_str(&vars.tag.to_string()),
                NamePart::Tag2 => s.push_str(&vars.tag2.to_string()),
                NamePart::Ref => s.push_str(&vars.refresh.to_string()),
                NamePart::Hst => s.push_str(&vars.history_secs.to_string()),
            }
        }
        s
    }
}

impl std::fmt::Display for TableTemplate {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        for p in &self.parts {
            match p {
                NamePart::Literal(l) => f.write_str(l)?,
                NamePart::Time(c) => write!(f, "%{c}")?,
                NamePart::Tag => f.write_str("$tag")?,
                NamePart::Tag2 => f.write_str("$tag2")?,
                NamePart::Ref => f.write_str("$ref")?,
                NamePart::Hst => f.write_str("$hst")?,
            }
        }
        Ok(())
    }
}

/// A value whose checking needs the SQL crate (`sql_preprocess`): kept with where it was set so
/// that the daemon can report a bad value as `file:line: key`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Deferred {
    pub value: String,
    pub origin: Origin,
}

/// Every `sql_*` key of one SQL plugin instance, with pmacct's defaults.
#[derive(Debug, Clone)]
pub struct SqlConfig {
    /// `sql_host` (default `localhost`; `unix:/path` for a MySQL socket, a directory path for a
    /// PostgreSQL socket).
    pub host: String,
    /// `sql_port` (default 5432 / 3306).
    pub port: Option<u16>,
    /// `sql_user` (default `pmacct`).
    pub user: String,
    /// `sql_passwd` (default `arealsmartpwd`).
    pub passwd: String,
    /// `sql_db`: database name, or the file for sqlite3 (default `pmacct`, `/tmp/pmacct.db`).
    pub db: String,
    /// `sql_table`; None = the version's default table.
    pub table: Option<TableTemplate>,
    /// `sql_table_version` 1–9 (default 1).
    pub table_version: u8,
    /// `sql_table_type`.
    pub table_type: TableType,
    /// `sql_table_schema`: the CREATE TABLE text (read at load) used when a table is missing.
    pub table_schema: Option<(PathBuf, String)>,
    /// `sql_table_autocreate` (xacct): create a missing table from xacct's own definitions (the
    /// files under `sql/`), also for dynamic names.
    pub table_autocreate: bool,
    /// `sql_refresh_time` seconds (default 60).
    pub refresh_time: u64,
    /// `sql_history` / `sql_history_roundoff`.
    pub history: Option<History>,
    /// `sql_history` as written, for triggers.
    pub history_text: String,
    /// `sql_history_since_epoch` / `timestamps_since_epoch`: integer stamps.
    pub since_epoch: bool,
    /// `sql_startup_delay` seconds.
    pub startup_delay: u64,
    /// `sql_cache_entries` (default 32771): entries held between refreshes before an early flush.
    pub cache_entries: usize,
    /// `sql_dont_try_update`.
    pub dont_try_update: bool,
    /// `sql_use_copy` (PostgreSQL; needs `sql_dont_try_update`).
    pub use_copy: bool,
    /// `sql_multi_values`: bytes of one multi-row INSERT (MySQL, SQLite); 0 = off.
    pub multi_values: usize,
    /// `sql_max_writers` (default 10).
    pub max_writers: u32,
    /// `sql_preprocess`, checked by the daemon with the SQL crate's parser.
    pub preprocess: Option<Deferred>,
    /// `sql_preprocess_type: all` (default any).
    pub preprocess_all: bool,
    /// `sql_trigger_exec` and `sql_trigger_time` (checked here with History's syntax).
    pub trigger_exec: Option<PathBuf>,
    pub trigger_time: Option<String>,
    /// `sql_recovery_backup_host` (sqlite3: another database file).
    pub recovery_backup_host: Option<String>,
    /// `sql_optimize_clauses`: write only the aggregate's columns.
    pub optimize_clauses: bool,
    /// `sql_num_protos`: `ip_proto` as a number in MySQL/SQLite.
    pub num_protos: bool,
    /// `sql_spool_dir` (xacct): the durable write-ahead spool (default
    /// `/var/spool/xacct/<plugin>`).
    pub spool_dir: PathBuf,
}

impl SqlConfig {
    pub fn new(plugin: &str, sqlite: bool) -> SqlConfig {
        SqlConfig {
            host: "localhost".into(),
            port: None,
            user: "pmacct".into(),
            passwd: "arealsmartpwd".into(),
            db: if sqlite { "/tmp/pmacct.db".into() } else { "pmacct".into() },
            table: None,
            table_version: 1,
            table_type: TableType::Original,
            table_schema: None,
            table_autocreate: false,
            refresh_time: 60,
            history: None,
            history_text: String::new(),
            since_epoch: false,
            startup_delay: 0,
            cache_entries: 32771,
            dont_try_update: false,
            use_copy: false,
            multi_values: 0,
            max_writers: 10,
            preprocess: None,
            preprocess_all: false,
            trigger_exec: None,
            trigger_time: None,
            recovery_backup_host: None,
            optimize_clauses: false,
            num_protos: false,
            spool_dir: PathBuf::from("/var/spool/xacct").join(plugin),
        }
    }
}

pub(super) fn apply_sql(s: &mut SqlConfig, pend: &mut Pending, d: &Directive) -> Result<(), ConfigError> {
    let v = d.value.as_str();
    match d.key.as_str() {
        "sql_host" => s.host = v.to_string(),
        "sql_port" => s.port = Some(parse_count(d, u16::MAX)?),
        "sql_user" => s.user = v.to_string(),
        "sql_passwd" => s.passwd = v.to_string(),
        "sql_db" => s.db = v.to_string(),
        "sql_table" => {
            s.table = Some(TableTemplate::parse(v).map_err(|e| bad(d, e))?);
            pend.sql_table = Some(d.origin.clone());
        }
        "sql_table_version" => s.table_version = parse_count(d, 9u8)?,
        "sql_table_type" => {
            s.table_type = match v.to_ascii_lowercase().as_str() {
                "original" => TableType::Original,
                "bgp" => return Err(not_yet(&d.origin, "sql_table_type 'bgp' (no BGP primitives yet)")),
                _ => return Err(bad(d, "expected original or bgp")),
            }
        }
        "sql_table_schema" => {
            let text = std::fs::read_to_string(v).map_err(|e| bad(d, format!("cannot read the schema file: {e}")))?;
            if !text.to_ascii_lowercase().contains("create table") {
                return Err(bad(d, "the schema file holds no CREATE TABLE statement"));
            }
            s.table_schema = Some((PathBuf::from(v), text));
        }
        "sql_table_autocreate" => s.table_autocreate = parse_bool(d)?,
        "sql_refresh_time" => s.refresh_time = parse_count(d, u64::from(u32::MAX))?,
        "sql_history" => pend.sql_history = Some((v.to_string(), d.origin.clone())),
        "sql_history_roundoff" => pend.sql_roundoff = Some((v.to_string(), d.origin.clone())),
        "sql_history_offset" => pend.sql_offset = Some((v.to_string(), d.origin.clone())),
        "sql_history_since_epoch" | "timestamps_since_epoch" => s.since_epoch = parse_bool(d)?,
        "sql_startup_delay" => {
            s.startup_delay = v
                .parse()
                .ok()
                .filter(|n| *n <= u64::from(u32::MAX))
                .ok_or_else(|| bad(d, "expected a number of seconds"))?
        }
        "sql_cache_entries" => s.cache_entries = parse_count(d, 1usize << 32)?,
        "sql_dont_try_update" => s.dont_try_update = parse_bool(d)?,
        "sql_use_copy" => {
            s.use_copy = parse_bool(d)?;
            pend.sql_use_copy = Some(d.origin.clone());
        }
        "sql_multi_values" => {
            // pmacct: the size in bytes of the multi-row INSERT buffer; 0 turns it off.
            s.multi_values = v
                .parse()
                .ok()
                .filter(|n| *n <= 1usize << 30)
                .ok_or_else(|| bad(d, "expected a buffer size in bytes (0 = off)"))?;
            pend.sql_multi_values = Some(d.origin.clone());
        }
        "sql_max_writers" => s.max_writers = parse_count(d, 1024u32)?,
        "sql_preprocess" => s.preprocess = Some(Deferred { value: v.to_string(), origin: d.origin.clone() }),
        "sql_preprocess_type" => {
            s.preprocess_all = match v.to_ascii_lowercase().as_str() {
                "any" => false,
                "all" => true,
                _ => return Err(bad(d, "expected any or all")),
            }
        }
        "sql_trigger_exec" => s.trigger_exec = Some(PathBuf::from(v)),
        "sql_trigger_time" => pend.sql_trigger_time = Some((v.to_string(), d.origin.clone())),
        "sql_recovery_backup_host" | "sql_backup_host" => s.recovery_backup_host = Some(v.to_string()),
        "sql_optimize_clauses" => s.optimize_clauses = parse_bool(d)?,
        "sql_num_protos" => s.num_protos = parse_bool(d)?,
        "sql_spool_dir" => s.spool_dir = PathBuf::from(v),
        "sql_data" => match v.to_ascii_lowercase().as_str() {
            "typed" => {}
            "unified" => return Err(refused(&d.origin, "sql_data 'unified' (pmacct's v1-v5 character tables for PostgreSQL): not built; xacct writes typed tables")),
            _ => return Err(bad(d, "expected typed or unified")),
        },
        _ => {}
    }
    Ok(())
}

/// Cross-key checks of one SQL plugin.
pub(super) fn finish_sql(
    s: &mut SqlConfig,
    pend: &Pending,
    agg: &Aggregate,
    origin: &Origin,
) -> Result<(), ConfigError> {
    let bad_at = |origin: &Origin, value: &str, why: String| ConfigError::BadValue {
        origin: origin.clone(),
        value: value.to_string(),
        why,
    };
    if let Some((rv, ro)) = &pend.sql_roundoff {
        History::parse("1h", Some(rv)).map_err(|e| bad_at(ro, rv, e))?;
    }
    if let Some((h, ho)) = &pend.sql_history {
        let mut history =
            History::parse(h, pend.sql_roundoff.as_ref().map(|(v, _)| v.as_str())).map_err(|e| bad_at(ho, h, e))?;
        if let Some((ov, oo)) = &pend.sql_offset {
            history = history.with_offset(ov).map_err(|e| bad_at(oo, ov, e))?;
        }
        s.history = Some(history);
        s.history_text = h.clone();
    } else if let Some((ov, oo)) = &pend.sql_offset {
        return Err(bad_at(oo, ov, "sql_history_offset needs sql_history (it shifts its time bins)".into()));
    }
    if let Some((t, to)) = &pend.sql_trigger_time {
        History::parse(t, None).map_err(|e| bad_at(to, t, e))?;
        s.trigger_time = Some(t.clone());
    }
    if s.use_copy && !s.dont_try_update {
        // pmacct quietly turns COPY off in this case; a silent surprise is worse than an error.
        let o = pend.sql_use_copy.clone().unwrap_or_else(|| origin.clone());
        return Err(bad_at(
            &o,
            "true",
            "sql_use_copy needs sql_dont_try_update: true (COPY cannot update rows)".into(),
        ));
    }
    if let Some(t) = &s.table {
        let o = pend.sql_table.clone().unwrap_or_else(|| origin.clone());
        if t.uses_time() && s.history.is_none() {
            tracing::debug!("{o}: time variables without sql_history expand with the write time");
        }
        if t.uses_tags() && !(agg.has(Primitive::Tag) || agg.has(Primitive::Tag2)) {
            return Err(bad_at(
                &o,
                &t.to_string(),
                "$tag/$tag2 in sql_table need tag/tag2 in the aggregate (they would always be 0)".into(),
            ));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn t(s: &str) -> i64 {
        chrono::NaiveDateTime::parse_from_str(s, "%Y-%m-%d %H:%M:%S").unwrap().and_utc().timestamp()
    }

    #[test]
    fn templates_expand() {
        let tt = TableTemplate::parse("acct_v4_%w").unwrap();
        // 2024-03-10 is a Sunday.
        assert_eq!(tt.expand(&NameVars { time: t("2024-03-10 18:37:42"), ..NameVars::default() }), "acct_v4_0");
        let tt = TableTemplate::parse("acct_%Y%m%d_%H%M").unwrap();
        assert_eq!(
            tt.expand(&NameVars { time: t("2024-03-10 18:37:42"), ..NameVars::default() }),
            "acct_20240310_1837"
        );
        let tt = TableTemplate::parse("acct_$tag_$tag2_x").unwrap();
        assert_eq!(tt.expand(&NameVars { tag: 7, tag2: 9, ..NameVars::default() }), "acct_7_9_x");
        assert!(tt.is_dynamic() && tt.uses_tags() && !tt.uses_time());
        let tt = TableTemplate::parse("pmacct.acct_v9").unwrap();
        assert!(!tt.is_dynamic());
        assert_eq!(tt.to_string(), "pmacct.acct_v9");
    }

    #[test]
    fn injection_and_junk_refused() {
        for bad in [
            "acct; DROP TABLE acct",
            "acct\"",
            "acct`",
            "acct'",
            "acct--",
            "a b",
            "a.b.c",
            ".acct",
            "acct.",
            "acct_%z",
            "acct_%",
            "acct_$peer_src_ip",
            "acct_$foo",
            "",
            "acct/*x*/",
        ] {
            assert!(TableTemplate::parse(bad).is_err(), "{bad:?} accepted");
        }
        let long = "a".repeat(64);
        assert!(TableTemplate::parse(&long).is_err());
        assert!(TableTemplate::parse(&"a".repeat(63)).is_ok());
        // $tag can reach 20 digits.
        assert!(TableTemplate::parse(&format!("{}_$tag", "a".repeat(43))).is_err());
    }
}
