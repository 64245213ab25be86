//! pmacctd's keys (packet capture) and the daemon-wide keys every daemon has.

use super::parse::{bad, parse_bool, parse_count, parse_filter, parse_owner, parse_secs, refused, Directive};
use super::{CaptureMethod, ConfigError, Direction, GlobalConfig, IfIndexFrom, XdpAction};
use std::path::PathBuf;

/// The syslog facilities pmacct accepts.
pub(super) const FACILITIES: &[&str] = &[
    "auth", "mail", "daemon", "kern", "user", "local0", "local1", "local2", "local3", "local4", "local5", "local6",
    "local7",
];

/// Applies a daemon-wide or capture key; false when `d` is none of them.
pub(super) fn apply(g: &mut GlobalConfig, d: &Directive) -> Result<bool, ConfigError> {
    let v = d.value.as_str();
    match d.key.as_str() {
        "interface" | "pcap_interface" => g.interface = Some(d.value.clone()),
        "pcap_savefile" => g.pcap_savefile = Some(PathBuf::from(v)),
        "pcap_savefile_wait" => g.pcap_savefile_wait = parse_bool(d)?,
        "pcap_savefile_delay" => g.pcap_savefile_delay = parse_secs(d)?,
        "pcap_filter" => g.pcap_filter = Some(parse_filter(d)?),
        // libpcap's own ceiling (MAXIMUM_SNAPLEN).
        "snaplen" => g.snaplen = parse_count(d, 262_144u32)?,
        "promisc" => g.promisc = parse_bool(d)?,
        "pcap_interface_wait" => g.pcap_interface_wait = parse_bool(d)?,
        "pcap_direction" => {
            g.pcap_direction = Some(match v.to_ascii_lowercase().as_str() {
                "in" => Direction::In,
                "out" => Direction::Out,
                _ => return Err(bad(d, "expected in or out")),
            })
        }
        "pcap_ifindex" => {
            g.pcap_ifindex = match v.to_ascii_lowercase().as_str() {
                "sys" => IfIndexFrom::Sys,
                "none" => IfIndexFrom::None,
                "hash" => {
                    return Err(refused(
                        &d.origin,
                        "pcap_ifindex 'hash': pmacct's hash of interface names is not reproduced; use sys",
                    ))
                }
                "map" => {
                    return Err(refused(
                        &d.origin,
                        "pcap_ifindex 'map' needs pcap_interfaces_map, which is not built yet; use sys",
                    ))
                }
                _ => return Err(bad(d, "expected sys, hash, map or none")),
            }
        }
        "pmacctd_time_new" => g.pmacctd_time_new = parse_bool(d)?,
        "daemonize" => g.daemonize = parse_bool(d)?,
        "pidfile" => g.pidfile = Some(PathBuf::from(v)),
        "logfile" => g.logfile = Some(PathBuf::from(v)),
        "syslog" => {
            let f = v.to_ascii_lowercase();
            if !FACILITIES.contains(&f.as_str()) {
                return Err(bad(d, "expected auth, mail, daemon, kern, user or local0 to local7"));
            }
            g.syslog = Some(f);
        }
        "files_umask" => {
            let mask = u32::from_str_radix(v, 8)
                .ok()
                .filter(|m| *m <= 0o777)
                .ok_or_else(|| bad(d, "expected an octal mask such as 077"))?;
            // pmacct refuses masks that would let others write the files.
            if mask & 0o002 == 0 {
                return Err(bad(d, "a mask must at least take away others' write permission (002)"));
            }
            g.files_umask = Some(mask);
        }
        "files_uid" => g.files_uid = Some(parse_owner(d, "/etc/passwd")?),
        "files_gid" => g.files_gid = Some(parse_owner(d, "/etc/group")?),
        "proc_priority" => g.proc_priority = Some(parse_nice(d)?),
        "core_proc_name" | "nfacctd_proc_name" | "sfacctd_proc_name" | "pmacctd_proc_name" => {
            g.core_proc_name = v.to_string()
        }
        "plugin_exit_any" => g.plugin_exit_any = parse_bool(d)?,
        "maps_refresh" | "refresh_maps" => g.maps_refresh = parse_bool(d)?,
        "maps_index" => g.maps_index = parse_bool(d)?,
        "maps_entries" => g.maps_entries = Some(parse_count(d, 1usize << 24)?),
        "maps_row_len" => g.maps_row_len = Some(parse_count(d, 1usize << 20)?),
        "pre_tag_map" if d.scope.is_none() => g.pre_tag_map = Some((PathBuf::from(v), d.origin.clone())),
        "sampling_rate" => g.sampling_rate = parse_count(d, u32::MAX)?,
        "pmacctd_renormalize" => g.renormalize = parse_bool(d)?,
        "workers" => g.workers = Some(parse_count(d, 4096usize)?),
        "debug" => g.debug = parse_bool(d)?,
        "capture_method" => {
            g.capture_method = match v.to_ascii_lowercase().as_str() {
                "auto" => CaptureMethod::Auto,
                "xdp" => CaptureMethod::Xdp,
                "afxdp" => CaptureMethod::AfXdp,
                "pcap" => CaptureMethod::Pcap,
                _ => return Err(bad(d, "expected auto, xdp, afxdp or pcap")),
            }
        }
        "xdp_flow_entries" => g.xdp_flow_entries = Some(parse_count(d, 1u32 << 26)?),
        "xdp_classify_packets" => {
            g.xdp_classify_packets = match v.parse::<u32>() {
                Ok(n) if n <= 1000 => n,
                _ => return Err(bad(d, "expected a whole number of packets from 0 to 1000")),
            }
        }
        "xdp_harvest_interval" => {
            g.xdp_harvest_interval = match v.parse::<f64>() {
                Ok(s) if (0.05..=60.0).contains(&s) => std::time::Duration::from_secs_f64(s),
                _ => return Err(bad(d, "expected seconds from 0.05 to 60 (e.g. 0.5)")),
            }
        }
        "xdp_action" => {
            g.xdp_action = match v.to_ascii_lowercase().as_str() {
                "pass" => XdpAction::Pass,
                "drop" => XdpAction::Drop,
                _ => return Err(bad(d, "expected drop or pass")),
            }
        }
        "pmacctd_flow_lifetime" => g.flow_lifetime = parse_count(d, u32::MAX as u64)?,
        "pmacctd_flow_tcp_lifetime" => g.flow_tcp_lifetime = parse_count(d, u32::MAX as u64)?,
        "pmacctd_net" => g.capture_methods.net = super::collect::parse_net(d, false)?,
        "pmacctd_as" => g.capture_methods.asn = super::collect::parse_as(d, false)?,
        // `plugins` is read before anything else.
        "plugins" => {}
        _ => return Ok(false),
    }
    Ok(true)
}

/// A nice value, -20 to 19.
pub(super) fn parse_nice(d: &Directive) -> Result<i32, ConfigError> {
    d.value
        .parse::<i32>()
        .ok()
        .filter(|n| (-20..=19).contains(n))
        .ok_or_else(|| bad(d, "expected a priority from -20 to 19"))
}
