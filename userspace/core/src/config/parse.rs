//! The parsing core: lines and scopes, classification against the inventory, precedence of
//! command line > `key[plugin]` > `key` > default, and the value parsers the families share.

use super::inventory::{self, KeyInfo, State};
use super::{Applies, Config, ConfigError, GlobalConfig, Ignored, Launch, Origin, PluginConfig, PluginKind};
use crate::aggregate::Aggregate;
use std::path::PathBuf;

/// One `key[scope]: value` line (or command-line override).
#[derive(Debug, Clone)]
pub(super) struct Directive {
    /// Lower-case key without scope.
    pub key: String,
    pub scope: Option<String>,
    pub value: String,
    pub origin: Origin,
}

/// Per-plugin state that needs more than one key to resolve.
#[derive(Debug, Default)]
pub(super) struct Pending {
    pub aggregate: Option<Origin>,
    pub pre_tag_map: Option<Origin>,
    pub networks_file: Option<Origin>,
    pub ports_file: Option<Origin>,
    pub history: Option<(String, Origin)>,
    pub roundoff: Option<(String, Origin)>,
    pub offset: Option<(String, Origin)>,
    pub sql_history: Option<(String, Origin)>,
    pub sql_roundoff: Option<(String, Origin)>,
    pub sql_offset: Option<(String, Origin)>,
    pub sql_trigger_time: Option<(String, Origin)>,
    pub sql_use_copy: Option<Origin>,
    pub sql_multi_values: Option<Origin>,
    pub sql_table: Option<Origin>,
    pub print_latest_file: Option<Origin>,
    pub nfprobe_engine: Option<(String, Origin)>,
}

pub(super) fn bad(d: &Directive, why: impl Into<String>) -> ConfigError {
    ConfigError::BadValue { origin: d.origin.clone(), value: d.value.clone(), why: why.into() }
}

pub(super) fn bad_at(origin: &Origin, value: &str, why: impl Into<String>) -> ConfigError {
    ConfigError::BadValue { origin: origin.clone(), value: value.to_string(), why: why.into() }
}

pub(super) fn not_yet(origin: &Origin, why: impl Into<String>) -> ConfigError {
    ConfigError::NotSupportedYet { origin: origin.clone(), why: why.into() }
}

pub(super) fn refused(origin: &Origin, why: impl Into<String>) -> ConfigError {
    ConfigError::Refused { origin: origin.clone(), why: why.into() }
}

pub(super) fn parse_bool(d: &Directive) -> Result<bool, ConfigError> {
    match d.value.to_ascii_lowercase().as_str() {
        "true" | "yes" | "1" => Ok(true),
        "false" | "no" | "0" => Ok(false),
        _ => Err(bad(d, "expected true or false")),
    }
}

/// A positive integer no larger than `max`.
pub(super) fn parse_count<T: std::str::FromStr + PartialOrd + Default + std::fmt::Display>(
    d: &Directive,
    max: T,
) -> Result<T, ConfigError> {
    match d.value.parse::<T>() {
        Ok(n) if n > T::default() && n <= max => Ok(n),
        _ => Err(bad(d, format!("expected a whole number from 1 to {max}"))),
    }
}

/// A whole number of seconds, 0 allowed.
pub(super) fn parse_secs(d: &Directive) -> Result<u64, ConfigError> {
    d.value
        .parse::<u64>()
        .ok()
        .filter(|n| *n <= u64::from(u32::MAX))
        .ok_or_else(|| bad(d, "expected a number of seconds"))
}

pub(super) fn parse_ip(d: &Directive) -> Result<std::net::IpAddr, ConfigError> {
    d.value.parse().map_err(|_| bad(d, "expected an IPv4 or IPv6 address"))
}

pub(super) fn parse_filter(d: &Directive) -> Result<String, ConfigError> {
    crate::filter::Filter::parse(&d.value).map_err(|e| bad(d, e.to_string()))?;
    Ok(d.value.clone())
}

pub(super) fn parse_aggregate(d: &Directive) -> Result<Aggregate, ConfigError> {
    Aggregate::parse(&d.value).map_err(|e| match e {
        crate::aggregate::AggregateError::NotSupported(_) => not_yet(&d.origin, e.to_string()),
        _ => bad(d, e.to_string()),
    })
}

/// A user or group: a number, or a name looked up in /etc/passwd or /etc/group.
pub(super) fn parse_owner(d: &Directive, db: &str) -> Result<u32, ConfigError> {
    if let Ok(n) = d.value.parse::<u32>() {
        return Ok(n);
    }
    let text = std::fs::read_to_string(db).map_err(|e| bad(d, format!("cannot read {db}: {e}")))?;
    text.lines()
        .filter_map(|l| {
            let mut f = l.split(':');
            let name = f.next()?;
            let id = f.nth(1)?;
            (name == d.value).then(|| id.parse().ok()).flatten()
        })
        .next()
        .ok_or_else(|| bad(d, format!("no such name in {db}")))
}

/// Splits one config line; `Ok(None)` for blank and comment lines.
pub(super) fn parse_line(raw: &str, file: &str, line: usize) -> Result<Option<Directive>, ConfigError> {
    let l = raw.trim();
    if l.is_empty() || l.starts_with('!') {
        return Ok(None);
    }
    let syntax = |why: String| ConfigError::Syntax { file: file.to_string(), line, why };
    // The first ':' separates key and value: values (IPv6 addresses, filters) may hold more.
    let (k, v) = l.split_once(':').ok_or_else(|| syntax(format!("expected 'key: value', got '{l}'")))?;
    let k = k.trim();
    let (key, scope) = match k.split_once('[') {
        Some((key, rest)) => {
            let name = rest
                .strip_suffix(']')
                .map(str::trim)
                .filter(|n| !n.is_empty() && !n.contains(['[', ']']))
                .ok_or_else(|| syntax(format!("bad plugin scope in '{k}': expected key[name]")))?;
            (key.trim(), Some(name.to_string()))
        }
        None => (k, None),
    };
    if key.is_empty() || key.contains(|c: char| c.is_whitespace() || c == ']') {
        return Err(syntax(format!("bad key '{k}'")));
    }
    Ok(Some(Directive {
        key: key.to_ascii_lowercase(),
        scope,
        value: v.trim().to_string(),
        origin: Origin { file: file.to_string(), line, key: k.to_string() },
    }))
}

/// Plugin types pmacct has that xacct does not, with why.
fn refused_plugin(kind: &str) -> Option<&'static str> {
    Some(match kind {
        "kafka" => "kafka plugin: not built",
        "amqp" => "amqp plugin: not built",
        "mongodb" => "mongodb plugin: not built (pmacct 1.7 dropped it too)",
        _ => return None,
    })
}

/// `memory[a], print[b], memory` → (name, kind); unnamed → "default".
fn parse_plugins(d: &Directive) -> Result<Vec<(String, PluginKind)>, ConfigError> {
    let mut out: Vec<(String, PluginKind)> = Vec::new();
    for item in d.value.split(',').map(str::trim) {
        if item.is_empty() {
            return Err(bad(d, "empty plugin in the list"));
        }
        let (kind, name) = match item.split_once('[') {
            Some((kind, rest)) => {
                let name = rest
                    .strip_suffix(']')
                    .map(str::trim)
                    .filter(|n| !n.is_empty() && !n.contains(['[', ']']))
                    .ok_or_else(|| bad(d, format!("'{item}' is not type[name]")))?;
                (kind.trim().to_ascii_lowercase(), name.to_string())
            }
            None => (item.to_ascii_lowercase(), "default".to_string()),
        };
        let kind = match kind.as_str() {
            "memory" => PluginKind::Memory,
            "print" => PluginKind::Print,
            "pgsql" => PluginKind::Pgsql,
            "mysql" => PluginKind::Mysql,
            "sqlite3" => PluginKind::Sqlite3,
            "nfprobe" => PluginKind::Nfprobe,
            "tee" => PluginKind::Tee,
            "sfprobe" => PluginKind::Sfprobe,
            k => {
                return Err(match refused_plugin(k) {
                    Some(why) => refused(&d.origin, why),
                    None => bad(d, format!("unknown plugin type '{k}'")),
                })
            }
        };
        if out.iter().any(|(n, _)| *n == name) {
            return Err(bad(d, format!("plugin name '{name}' is declared twice")));
        }
        out.push((name, kind));
    }
    Ok(out)
}

fn applies_to(a: Applies, kind: PluginKind) -> bool {
    match a {
        Applies::Global => false,
        Applies::Both | Applies::AnyPlugin => true,
        Applies::Only(k) => k == kind,
        Applies::Sql => kind.is_sql(),
    }
}

/// Classifies one directive; `None` for a key that is accepted with no effect.
fn classify(d: &Directive, ignored: &mut Vec<Ignored>) -> Result<Option<Applies>, ConfigError> {
    let info: KeyInfo =
        inventory::lookup(&d.key).ok_or_else(|| ConfigError::UnknownKey { origin: d.origin.clone() })?;
    match info.state {
        State::Refused(why) => Err(refused(&d.origin, why)),
        State::NoEffect(why) => {
            ignored.push(Ignored { origin: d.origin.clone(), why: why.to_string() });
            Ok(None)
        }
        // An empty password is a password (pmacct cannot say it; xacct can).
        State::Implemented if d.value.is_empty() && d.key != "sql_passwd" => Err(bad(d, "empty value")),
        State::Implemented if info.applies == Applies::Global && d.scope.is_some() => Err(ConfigError::Syntax {
            file: d.origin.file.clone(),
            line: d.origin.line,
            why: format!("'{}' is daemon-wide and cannot be set for one plugin", d.key),
        }),
        State::Implemented => Ok(Some(info.applies)),
    }
}

pub(super) fn parse(
    text: &str,
    file_name: &str,
    overrides: &[(String, String)],
    launch: &Launch,
) -> Result<Config, ConfigError> {
    let mut file = Vec::new();
    for (i, raw) in text.lines().enumerate() {
        if let Some(d) = parse_line(raw, file_name, i + 1)? {
            file.push(d);
        }
    }
    let cli: Vec<Directive> = overrides
        .iter()
        .map(|(k, v)| Directive {
            key: k.trim().to_ascii_lowercase(),
            scope: None,
            value: v.trim().to_string(),
            origin: Origin { file: "command line".to_string(), line: 0, key: k.trim().to_string() },
        })
        .collect();

    // Classify every key first, so that the first bad key in the file is the one reported.
    let mut ignored = Vec::new();
    let mut classes = Vec::with_capacity(file.len() + cli.len());
    for d in file.iter().chain(&cli) {
        classes.push(classify(d, &mut ignored)?);
        // A plugin type xacct refuses is reported at its own line, before its keys.
        if d.key == "plugins" {
            parse_plugins(d)?;
        }
    }
    let applies = |i: usize| classes.get(i).copied().flatten();
    let (file_classes, cli_start) = (0..file.len(), file.len());

    // Plugins: the last `plugins` on the command line, else in the file, else pmacctd's
    // default of one memory plugin.
    let decl = cli.iter().rev().chain(file.iter().rev()).find(|d| d.key == "plugins");
    let mut plugins = Vec::new();
    match decl {
        Some(d) => {
            for (name, kind) in parse_plugins(d)? {
                plugins.push(super::plugin::new_plugin(&name, kind, &d.origin)?);
            }
        }
        None => {
            let origin = Origin { file: file_name.to_string(), line: 0, key: "plugins".to_string() };
            plugins.push(super::plugin::new_plugin("default", PluginKind::Memory, &origin)?);
        }
    }

    // Scoped keys must name a declared plugin of a type they apply to.
    for (i, d) in file.iter().enumerate() {
        let Some(scope) = &d.scope else { continue };
        let p = plugins
            .iter()
            .find(|p| &p.name == scope)
            .ok_or_else(|| ConfigError::NoSuchPlugin { origin: d.origin.clone(), plugin: scope.clone() })?;
        if let Some(a) = applies(i) {
            if !applies_to(a, p.kind) {
                return Err(ConfigError::WrongPlugin {
                    origin: d.origin.clone(),
                    plugin: p.name.clone(),
                    kind: p.kind.name().to_string(),
                });
            }
        }
    }

    let mut global = GlobalConfig::default();
    for (i, d) in file.iter().chain(&cli).enumerate() {
        match applies(i) {
            Some(Applies::Global) => apply_global(&mut global, d)?,
            Some(Applies::Both) if d.scope.is_none() => apply_global(&mut global, d)?,
            _ => {}
        }
    }
    let all: Vec<&Directive> = file.iter().chain(&cli).collect();
    let mut notes = Vec::new();
    global.modes = super::collect::decide_modes(&all, launch, &mut ignored)?;
    if let Some((path, origin)) = &global.pre_tag_map {
        crate::tag::TagMap::load(path, &global.tag_map_options())
            .map_err(|e| bad_at(origin, &path.display().to_string(), e.to_string()))?;
    }

    let mut used = vec![false; file.len() + cli.len()];
    let mut loaded = Vec::new();
    for p in plugins.iter_mut() {
        let mut pend = Pending::default();
        let unscoped = file_classes.clone().filter(|&i| file.get(i).is_some_and(|d| d.scope.is_none()));
        let name = p.name.clone();
        let scoped = file_classes.clone().filter(|&i| file.get(i).and_then(|d| d.scope.as_ref()) == Some(&name));
        let order: Vec<usize> = unscoped.chain(scoped).chain(cli_start..cli_start + cli.len()).collect();
        for i in order {
            let (Some(a), Some(d)) = (applies(i), file.get(i).or_else(|| cli.get(i - cli_start))) else {
                continue;
            };
            if applies_to(a, p.kind) {
                super::plugin::apply_plugin(p, &mut pend, d)?;
                if let Some(u) = used.get_mut(i) {
                    *u = true;
                }
            }
        }
        super::plugin::finish_plugin(p, pend, &global, &mut loaded, &mut ignored, &mut notes)?;
        p.files_uid = global.files_uid;
        p.files_gid = global.files_gid;
    }

    // Unscoped keys for a plugin type that is not configured still get their values
    // checked, so that a typo does not wait for the day that plugin is added.
    for (i, d) in file.iter().chain(&cli).enumerate() {
        let kind = match applies(i) {
            Some(Applies::Only(kind)) => kind,
            Some(Applies::Sql) => PluginKind::Pgsql,
            _ => continue,
        };
        if !used.get(i).copied().unwrap_or(true) {
            let mut scratch = super::plugin::new_plugin("scratch", kind, &d.origin)?;
            super::plugin::apply_plugin(&mut scratch, &mut Pending::default(), d)?;
        }
    }

    // Logged in the file's order, command-line keys last.
    ignored.sort_by_key(|i| (i.origin.line == 0, i.origin.line));
    Ok(Config { global, plugins, ignored, notes })
}

fn apply_global(g: &mut GlobalConfig, d: &Directive) -> Result<(), ConfigError> {
    if !super::capture::apply(g, d)? {
        super::collect::apply(g, d)?;
    }
    Ok(())
}

/// Paths named by keys whose files are checked once however many plugins share them.
pub(super) type Loaded = Vec<PathBuf>;

/// A plugin's configuration with every default.
pub(super) fn plugin_defaults(name: &str, kind: PluginKind, origin: &Origin, aggregate: Aggregate) -> PluginConfig {
    PluginConfig {
        name: name.to_string(),
        kind,
        aggregate,
        aggregate_filter: None,
        networks_file: None,
        ports_file: None,
        networks_mask: None,
        networks_file_no_lpm: false,
        networks_no_mask_if_zero: false,
        networks_file_filter: false,
        imt_path: PathBuf::from("/tmp/collect.pipe"),
        print_output: super::OutputFormat::Formatted,
        print_output_file: None,
        print_output_separator: ",".to_string(),
        print_refresh_time: 60,
        print_history: None,
        print_markers: false,
        print_output_file_append: false,
        print_latest_file: None,
        print_write_empty_file: false,
        print_startup_delay: 0,
        print_num_protos: false,
        timestamps_utc: false,
        timestamps_since_epoch: false,
        proc_priority: None,
        files_uid: None,
        files_gid: None,
        max_entries: None,
        memory_budget: None,
        imt_mem_pools_number: None,
        imt_mem_pools_size: None,
        pre_tag_map: None,
        tag_filters: crate::tag::TagFilters::default(),
        post_tag: None,
        post_tag2: None,
        sql: kind.is_sql().then(|| Box::new(super::sql::SqlConfig::new(name, kind == PluginKind::Sqlite3))),
        nfprobe: (kind == PluginKind::Nfprobe).then(Box::default),
        tee: (kind == PluginKind::Tee).then(Box::default),
        sfprobe: (kind == PluginKind::Sfprobe).then(Box::default),
        origin: origin.clone(),
    }
}
