//! Keys every plugin has (aggregate, filter, maps), the memory and print plugins' keys, and the
//! checks that need all of a plugin's keys (time bins, maps, what the aggregate needs).

use super::parse::{
    bad, bad_at, parse_aggregate, parse_bool, parse_count, parse_filter, parse_secs, Directive, Loaded, Pending,
};
use super::{
    AsMethod, ConfigError, GlobalConfig, Ignored, Methods, NetMethod, Origin, OutputFormat, PluginConfig, PluginKind,
};
use crate::aggregate::{Aggregate, Primitive};
use crate::history::History;
use std::path::PathBuf;

pub(super) fn new_plugin(name: &str, kind: PluginKind, origin: &Origin) -> Result<PluginConfig, ConfigError> {
    let aggregate = Aggregate::parse("src_host").map_err(|e| bad_at(origin, "src_host", e.to_string()))?;
    Ok(super::parse::plugin_defaults(name, kind, origin, aggregate))
}

pub(super) fn apply_plugin(p: &mut PluginConfig, pend: &mut Pending, d: &Directive) -> Result<(), ConfigError> {
    let v = d.value.as_str();
    match d.key.as_str() {
        "aggregate" => {
            p.aggregate = parse_aggregate(d)?;
            pend.aggregate = Some(d.origin.clone());
        }
        "aggregate_filter" => p.aggregate_filter = Some(parse_filter(d)?),
        "networks_file" => {
            p.networks_file = Some(PathBuf::from(v));
            pend.networks_file = Some(d.origin.clone());
        }
        "ports_file" => {
            p.ports_file = Some(PathBuf::from(v));
            pend.ports_file = Some(d.origin.clone());
        }
        "networks_mask" => {
            // Bits; 128 also covers IPv6, and IPv4 addresses are masked to at most 32.
            p.networks_mask = Some(
                v.parse::<u8>()
                    .ok()
                    .filter(|m| (1..=128).contains(m))
                    .ok_or_else(|| bad(d, "expected a mask length from 1 to 128"))?,
            )
        }
        "networks_file_no_lpm" => p.networks_file_no_lpm = parse_bool(d)?,
        "networks_no_mask_if_zero" => p.networks_no_mask_if_zero = parse_bool(d)?,
        "networks_file_filter" => p.networks_file_filter = parse_bool(d)?,
        "timestamps_utc" => p.timestamps_utc = parse_bool(d)?,
        "proc_priority" => p.proc_priority = Some(super::capture::parse_nice(d)?),
        "imt_path" => p.imt_path = PathBuf::from(v),
        "max_entries" => p.max_entries = Some(parse_count(d, 1u64 << 40)? as usize),
        "memory_budget" => {
            p.memory_budget = Some(
                crate::budget::parse_bytes(v)
                    .filter(|b| *b >= 1 << 16)
                    .ok_or_else(|| bad(d, "expected a size of at least 64K, e.g. 512M or 2G"))?,
            )
        }
        // 0 pools: pmacct's unbounded table; xacct's default budget then applies.
        "imt_mem_pools_number" => {
            p.imt_mem_pools_number =
                Some(v.parse::<u64>().map_err(|_| bad(d, "expected a number of pools (0: no limit of its own)"))?)
        }
        "imt_mem_pools_size" => p.imt_mem_pools_size = Some(parse_count(d, 1u64 << 40)?),
        "print_output" => {
            p.print_output = match v.to_ascii_lowercase().as_str() {
                "formatted" => OutputFormat::Formatted,
                "csv" => OutputFormat::Csv,
                "json" => OutputFormat::Json,
                o @ ("event_formatted" | "event_csv" | "avro" | "avro_json" | "custom") => {
                    return Err(super::parse::not_yet(&d.origin, format!("print_output '{o}'")))
                }
                _ => return Err(bad(d, "expected formatted, csv or json")),
            }
        }
        "print_output_file" => p.print_output_file = Some(v.to_string()),
        "print_output_separator" => {
            // Values are trimmed, so tab and space are spelled \t and \s, as in pmacct.
            p.print_output_separator = match v {
                "\\t" => "\t".to_string(),
                "\\s" => " ".to_string(),
                v if v.chars().count() == 1 => v.to_string(),
                _ => return Err(bad(d, "expected one character, \\t or \\s")),
            }
        }
        "print_refresh_time" => p.print_refresh_time = parse_count(d, u64::from(u32::MAX))?,
        "print_history" => pend.history = Some((v.to_string(), d.origin.clone())),
        "print_history_roundoff" => pend.roundoff = Some((v.to_string(), d.origin.clone())),
        "print_history_offset" => pend.offset = Some((v.to_string(), d.origin.clone())),
        "print_markers" => p.print_markers = parse_bool(d)?,
        "print_output_file_append" => p.print_output_file_append = parse_bool(d)?,
        "print_latest_file" => {
            // pmacct: time variables make no sense for a pointer that must stay put.
            if v.contains('%') {
                return Err(bad(d, "time variables are not allowed in print_latest_file"));
            }
            p.print_latest_file = Some(v.to_string());
            pend.print_latest_file = Some(d.origin.clone());
        }
        "print_write_empty_file" => p.print_write_empty_file = parse_bool(d)?,
        "print_startup_delay" => p.print_startup_delay = parse_secs(d)?,
        "print_num_protos" => p.print_num_protos = parse_bool(d)?,
        "timestamps_since_epoch" => {
            p.timestamps_since_epoch = parse_bool(d)?;
            if let Some(s) = p.sql.as_deref_mut() {
                super::sql::apply_sql(s, pend, d)?;
            }
        }
        // The unscoped pre_tag_map is the global one (see capture.rs).
        "pre_tag_map" if d.scope.is_some() => {
            p.pre_tag_map = Some(PathBuf::from(v));
            pend.pre_tag_map = Some(d.origin.clone());
        }
        "pre_tag_filter" | "pre_tag2_filter" | "pre_tag_label_filter" => {
            if d.scope.is_none() {
                // pmacct: "TAG filter cannot be global".
                return Err(bad(d, "a tag filter cannot be global: set it for a plugin (key[name]: value)"));
            }
            let f = &mut p.tag_filters;
            match d.key.as_str() {
                "pre_tag_filter" => f.tag = Some(crate::tag::TagFilter::parse(v).map_err(|e| bad(d, e.to_string()))?),
                "pre_tag2_filter" => f.tag2 = Some(crate::tag::TagFilter::parse(v).map_err(|e| bad(d, e.to_string()))?),
                _ => f.label = Some(crate::tag::LabelFilter::parse(v).map_err(|e| bad(d, e.to_string()))?),
            }
        }
        "post_tag" => p.post_tag = Some(parse_tag(d)?),
        "post_tag2" => p.post_tag2 = Some(parse_tag(d)?),
        k if k.starts_with("sfprobe_") => {
            if let Some(s) = p.sfprobe.as_deref_mut() {
                super::export::apply_sfprobe(s, d)?;
            }
        }
        k if k.starts_with("tee_") => {
            if let Some(t) = p.tee.as_deref_mut() {
                super::export::apply_tee(t, d)?;
            }
        }
        k if k.starts_with("nfprobe_") => {
            if let Some(n) = p.nfprobe.as_deref_mut() {
                super::export::apply_nfprobe(n, pend, d)?;
            }
        }
        k if k.starts_with("sql_") => {
            let kind = p.kind;
            let s =
                p.sql.get_or_insert_with(|| Box::new(super::sql::SqlConfig::new(&p.name, kind == PluginKind::Sqlite3)));
            super::sql::apply_sql(s, pend, d)?;
        }
        _ => {}
    }
    Ok(())
}

fn parse_tag(d: &Directive) -> Result<u64, ConfigError> {
    d.value.parse::<u64>().map_err(|_| bad(d, "expected a tag from 0 to 18446744073709551615"))
}

/// Cross-key checks and map loading once every key of a plugin is known.
pub(super) fn finish_plugin(
    p: &mut PluginConfig,
    pend: Pending,
    g: &GlobalConfig,
    loaded: &mut Loaded,
    ignored: &mut Vec<Ignored>,
    notes: &mut Vec<String>,
) -> Result<(), ConfigError> {
    match (&pend.history, &pend.roundoff) {
        (Some((h, ho)), r) => {
            if let Some((rv, ro)) = r {
                // Blame the roundoff line for a roundoff that is wrong on its own.
                History::parse("1h", Some(rv)).map_err(|e| bad_at(ro, rv, e))?;
            }
            let mut history = History::parse(h, r.as_ref().map(|(v, _)| v.as_str())).map_err(|e| bad_at(ho, h, e))?;
            if let Some((ov, oo)) = &pend.offset {
                history = history.with_offset(ov).map_err(|e| bad_at(oo, ov, e))?;
            }
            p.print_history = Some(history);
        }
        (None, Some((rv, ro))) => {
            History::parse("1h", Some(rv)).map_err(|e| bad_at(ro, rv, e))?;
            // pmacct's print plugin also aligns its refresh to the roundoff; xacct does not.
            ignored.push(Ignored {
                origin: ro.clone(),
                why: "without print_history there are no time bins to round off (xacct does not align refreshes)"
                    .into(),
            });
        }
        (None, None) => {}
    }
    if let (None, Some((ov, oo))) = (&pend.history, &pend.offset) {
        return Err(bad_at(oo, ov, "print_history_offset needs print_history (it shifts its time bins)"));
    }
    if let (Some(o), None) = (&pend.print_latest_file, &p.print_output_file) {
        return Err(bad_at(
            o,
            p.print_latest_file.as_deref().unwrap_or(""),
            "print_latest_file needs print_output_file",
        ));
    }
    if let Some(s) = p.sql.as_deref_mut() {
        super::sql::finish_sql(s, &pend, &p.aggregate, &p.origin)?;
    }
    if let Some(n) = p.nfprobe.as_deref_mut() {
        super::export::finish_nfprobe(n, g, &pend, &mut p.aggregate, &p.origin)?;
    }
    if let Some(t) = p.tee.as_deref() {
        super::export::finish_tee(t, g, &p.origin)?;
    }
    if let Some(s) = p.sfprobe.as_deref() {
        super::export::finish_sfprobe(s, g, &p.origin)?;
    }
    if let (Some(path), Some(o)) = (&p.networks_file, &pend.networks_file) {
        if !loaded.contains(path) {
            crate::maps::Networks::load(path).map_err(|e| bad_at(o, &path.display().to_string(), e.to_string()))?;
            loaded.push(path.clone());
        }
    }
    if let (Some(path), Some(o)) = (&p.ports_file, &pend.ports_file) {
        if !loaded.contains(path) {
            crate::maps::Ports::load(path).map_err(|e| bad_at(o, &path.display().to_string(), e.to_string()))?;
            loaded.push(path.clone());
        }
    }
    if let (Some(path), Some(o)) = (&p.pre_tag_map, &pend.pre_tag_map) {
        crate::tag::TagMap::load(path, &g.tag_map_options())
            .map_err(|e| bad_at(o, &path.display().to_string(), e.to_string()))?;
    }
    let agg_origin = pend.aggregate.clone().unwrap_or_else(|| p.origin.clone());
    let sources = [
        (g.modes.capture.is_some(), "pmacctd", g.capture_methods),
        (g.modes.netflow.is_some(), "nfacctd", g.netflow_methods),
        (g.modes.sflow.is_some(), "sfacctd", g.sflow_methods),
    ];
    for (_, daemon, m) in sources.iter().filter(|s| s.0) {
        check_needs(p, daemon, *m).map_err(|why| bad_at(&agg_origin, &p.aggregate.to_string(), why))?;
        if p.networks_file.is_some()
            && p.aggregate.needs_nets()
            && m.net == NetMethod::Record
            && m.asn == AsMethod::Record
        {
            notes.push(format!(
                "plugin {}: its networks_file is not used for {daemon}'s records: {daemon}_net and {daemon}_as are '{}' (pmacct's default); set them to file or longest to use it",
                p.name,
                if *daemon == "sfacctd" { "sflow" } else { "netflow" }
            ));
        }
    }
    Ok(())
}

/// What the aggregate's net and AS primitives need under the methods `m` of `daemon`.
fn check_needs(p: &PluginConfig, daemon: &str, m: Methods) -> Result<(), String> {
    let has = |ps: &[Primitive]| ps.iter().any(|x| p.aggregate.has(*x));
    let nets = has(&[Primitive::SrcNet, Primitive::DstNet, Primitive::SumNet, Primitive::SrcMask, Primitive::DstMask]);
    let ases = has(&[Primitive::SrcAs, Primitive::DstAs, Primitive::SumAs]);
    let (file, mask) = (p.networks_file.is_some(), p.networks_mask.is_some());
    if nets {
        match m.net {
            NetMethod::File if !file => return Err(format!("{daemon}_net: file needs a networks_file")),
            NetMethod::Mask if !mask => return Err(format!("{daemon}_net: mask needs a networks_mask")),
            // pmacctd refuses to start in this case too.
            NetMethod::Compat if !file && !mask => {
                return Err("net and mask primitives need a networks_file or a networks_mask".into())
            }
            _ => {}
        }
    }
    if ases {
        match m.asn {
            AsMethod::File if !file => return Err(format!("{daemon}_as: file needs a networks_file")),
            AsMethod::None if !file => {
                return Err("AS primitives need a networks_file (and pmacctd_as: file to fill them)".into())
            }
            _ => {}
        }
    }
    Ok(())
}
