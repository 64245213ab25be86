//! The export plugins' keys: nfprobe (NetFlow v5/v9 and IPFIX from captured traffic), with
//! pmacct's names, defaults and value syntax (CONFIG-KEYS, nfprobe_plugin.h).

use super::parse::{bad, bad_at, parse_bool, Directive, Pending};
use super::{ConfigError, Origin};
use crate::aggregate::{Aggregate, Primitive};
use std::net::{IpAddr, SocketAddr, ToSocketAddrs};

/// nfprobe's flow expiry, in seconds (`nfprobe_timeouts`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ProbeTimeouts {
    /// Idle TCP flows without FIN or RST.
    pub tcp: u64,
    /// Idle TCP flows that saw a RST.
    pub tcp_rst: u64,
    /// Idle TCP flows that saw a FIN.
    pub tcp_fin: u64,
    pub udp: u64,
    pub icmp: u64,
    /// Idle flows of other protocols.
    pub general: u64,
    /// Active timeout: a flow older than this is exported and starts over.
    pub maxlife: u64,
    /// Interval between expiry scans.
    pub expint: u64,
}

impl Default for ProbeTimeouts {
    fn default() -> Self {
        ProbeTimeouts {
            tcp: 3600,
            tcp_rst: 120,
            tcp_fin: 300,
            udp: 300,
            icmp: 300,
            general: 3600,
            maxlife: 604_800,
            expint: 60,
        }
    }
}

/// Where `nfprobe_direction` / `nfprobe_ifindex` come from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FromTag<T> {
    Fixed(T),
    Tag,
    Tag2,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ProbeDirection {
    In,
    Out,
}

/// An nfprobe plugin's settings.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NfprobeConfig {
    /// `nfprobe_receiver`, default 127.0.0.1:2100.
    pub receiver: SocketAddr,
    /// `nfprobe_version`: 5, 9 or 10 (IPFIX, the default).
    pub version: u16,
    pub timeouts: ProbeTimeouts,
    /// `nfprobe_maxflows`, default 8192: beyond, the oldest flows are exported early.
    pub maxflows: usize,
    /// `nfprobe_engine`: v5 `type:id`; v9/IPFIX the source id / observation domain.
    pub engine_type: u8,
    pub engine_id: u32,
    pub source_ip: Option<IpAddr>,
    pub hoplimit: Option<u8>,
    /// `nfprobe_ipprec` (0..7): the IP precedence of the export datagrams.
    pub ipprec: u8,
    pub direction: Option<FromTag<ProbeDirection>>,
    pub ifindex: Option<FromTag<u32>>,
    pub ifindex_override: bool,
    /// `nfprobe_dont_cache`: every record goes out as its own flow at once.
    pub dont_cache: bool,
    /// `nfprobe_tstamp_usec`: IPFIX/v9 timestamps in microseconds (IE 154/155).
    pub tstamp_usec: bool,
    /// `nfprobe_peer_as`: ASes are the peers' (accepted; AS fields come from networks_file).
    pub peer_as: bool,
    /// The daemon's `sampling_rate`, announced to collectors (v5 header, v9/IPFIX sampling
    /// options).
    pub sampling_rate: u32,
}

impl Default for NfprobeConfig {
    fn default() -> Self {
        NfprobeConfig {
            receiver: SocketAddr::from(([127, 0, 0, 1], 2100)),
            version: 10,
            timeouts: ProbeTimeouts::default(),
            maxflows: 8192,
            engine_type: 0,
            engine_id: 0,
            source_ip: None,
            hoplimit: None,
            ipprec: 0,
            direction: None,
            ifindex: None,
            ifindex_override: false,
            dont_cache: false,
            tstamp_usec: false,
            peer_as: false,
            sampling_rate: 1,
        }
    }
}

/// pmacct's nfprobe aggregate when none is given.
pub const NFPROBE_DEFAULT_AGGREGATE: &str = "src_host,dst_host,src_port,dst_port,proto,tos";

/// `host:port`, `[v6]:port`, or a bare v6 address with port after the last colon.
pub fn parse_receiver(v: &str) -> Result<SocketAddr, String> {
    if let Ok(a) = v.parse::<SocketAddr>() {
        return Ok(a);
    }
    let (host, port) = v.rsplit_once(':').ok_or_else(|| format!("'{v}' is not host:port"))?;
    let port: u16 = port.parse().map_err(|_| format!("'{port}' is not a port"))?;
    let host = host.trim_start_matches('[').trim_end_matches(']');
    (host, port)
        .to_socket_addrs()
        .map_err(|e| format!("cannot resolve '{host}': {e}"))?
        .next()
        .ok_or_else(|| format!("'{host}' has no address"))
}

/// pmacct's convtime: a number of seconds, or numbers each followed by s, m, h, d or w
/// (`2h30m`).
pub fn parse_duration(v: &str) -> Result<u64, String> {
    if !v.is_empty() && v.bytes().all(|b| b.is_ascii_digit()) {
        return v.parse().map_err(|_| format!("'{v}' is too large"));
    }
    let mut total: u64 = 0;
    let mut num = String::new();
    for c in v.chars() {
        if c.is_ascii_digit() {
            num.push(c);
            continue;
        }
        let unit = match c {
            's' => 1,
            'm' => 60,
            'h' => 3600,
            'd' => 86_400,
            'w' => 604_800,
            _ => return Err(format!("'{v}': unknown unit '{c}' (s, m, h, d or w)")),
        };
        let n: u64 = num.parse().map_err(|_| format!("'{v}' is not a duration such as 300, 5m or 2h30m"))?;
        total = total.saturating_add(n.saturating_mul(unit));
        num.clear();
    }
    if !num.is_empty() {
        return Err(format!("'{v}': a number without a unit after another with one"));
    }
    Ok(total)
}

fn parse_timeouts(v: &str) -> Result<ProbeTimeouts, String> {
    let mut t = ProbeTimeouts::default();
    for part in v.split(':').map(str::trim).filter(|p| !p.is_empty()) {
        let (name, val) = part.split_once('=').ok_or_else(|| format!("'{part}' is not name=value"))?;
        let secs = parse_duration(val.trim())?;
        let slot = match name.trim().to_ascii_lowercase().as_str() {
            "tcp" => &mut t.tcp,
            "tcp.rst" => &mut t.tcp_rst,
            "tcp.fin" => &mut t.tcp_fin,
            "udp" => &mut t.udp,
            "icmp" => &mut t.icmp,
            "general" => &mut t.general,
            "maxlife" => &mut t.maxlife,
            "expint" => &mut t.expint,
            // pmacct logs and skips an unknown name; a typo here silently keeps a default
            // timeout, so xacct refuses it.
            n => {
                return Err(format!(
                    "unknown timeout '{n}' (tcp, tcp.rst, tcp.fin, udp, icmp, general, maxlife, expint)"
                ))
            }
        };
        *slot = secs;
    }
    if t.general == 0 {
        return Err("general=0 is not a timeout".into());
    }
    if t.expint == 0 {
        return Err("expint=0 would scan without pause".into());
    }
    Ok(t)
}

fn from_tag<T>(v: &str, fixed: impl FnOnce(&str) -> Option<T>) -> Option<FromTag<T>> {
    match v.to_ascii_lowercase().as_str() {
        "tag" => Some(FromTag::Tag),
        "tag2" => Some(FromTag::Tag2),
        other => fixed(other).map(FromTag::Fixed),
    }
}

/// `*_direction` and `*_ifindex` (nfprobe and sfprobe share them in pmacct): plugin-scoped.
fn parse_direction(d: &Directive) -> Result<FromTag<ProbeDirection>, ConfigError> {
    plugin_only(d)?;
    from_tag(&d.value, |s| match s {
        "in" => Some(ProbeDirection::In),
        "out" => Some(ProbeDirection::Out),
        _ => None,
    })
    .ok_or_else(|| bad(d, "expected in, out, tag or tag2"))
}

fn parse_ifindex(d: &Directive) -> Result<FromTag<u32>, ConfigError> {
    plugin_only(d)?;
    from_tag(&d.value, |s| s.parse::<u32>().ok().filter(|i| *i >= 1))
        .ok_or_else(|| bad(d, "expected tag, tag2 or an interface index from 1 to 4294967295"))
}

fn plugin_only(d: &Directive) -> Result<(), ConfigError> {
    if d.scope.is_none() {
        Err(bad(d, format!("{} must be set for one plugin (key[name]: value)", d.key)))
    } else {
        Ok(())
    }
}

fn parse_ipprec(d: &Directive) -> Result<u8, ConfigError> {
    d.value.parse::<u8>().ok().filter(|p| *p <= 7).ok_or_else(|| bad(d, "expected 0 to 7"))
}

/// One `nfprobe_*` directive. The engine is kept as written until the version is known.
pub(super) fn apply_nfprobe(n: &mut NfprobeConfig, pend: &mut Pending, d: &Directive) -> Result<(), ConfigError> {
    let v = d.value.as_str();
    match d.key.as_str() {
        "nfprobe_receiver" => n.receiver = parse_receiver(v).map_err(|e| bad(d, e))?,
        "nfprobe_version" => {
            n.version = match v {
                "5" => 5,
                "9" => 9,
                "10" => 10,
                _ => return Err(bad(d, "expected 5, 9 or 10")),
            }
        }
        "nfprobe_timeouts" => n.timeouts = parse_timeouts(v).map_err(|e| bad(d, e))?,
        "nfprobe_maxflows" => {
            n.maxflows = v.parse::<usize>().ok().filter(|m| *m >= 1).ok_or_else(|| bad(d, "expected at least 1"))?
        }
        "nfprobe_engine" => pend.nfprobe_engine = Some((v.to_string(), d.origin.clone())),
        "nfprobe_source_ip" => n.source_ip = Some(super::parse::parse_ip(d)?),
        "nfprobe_hoplimit" => {
            n.hoplimit = Some(
                v.parse::<u8>().ok().filter(|h| *h >= 1).ok_or_else(|| bad(d, "expected a hop limit from 1 to 255"))?,
            )
        }
        "nfprobe_ipprec" => n.ipprec = parse_ipprec(d)?,
        "nfprobe_direction" => n.direction = Some(parse_direction(d)?),
        "nfprobe_ifindex" => n.ifindex = Some(parse_ifindex(d)?),
        "nfprobe_ifindex_override" => n.ifindex_override = parse_bool(d)?,
        "nfprobe_dont_cache" => n.dont_cache = parse_bool(d)?,
        "nfprobe_tstamp_usec" => n.tstamp_usec = parse_bool(d)?,
        "nfprobe_peer_as" => n.peer_as = parse_bool(d)?,
        _ => {}
    }
    Ok(())
}

/// Checks that need every key of the plugin: the engine's form for the version, the
/// aggregate's primitives.
pub(super) fn finish_nfprobe(
    n: &mut NfprobeConfig,
    g: &super::GlobalConfig,
    pend: &Pending,
    aggregate: &mut Aggregate,
    origin: &Origin,
) -> Result<(), ConfigError> {
    if let Some((v, o)) = &pend.nfprobe_engine {
        if n.version == 5 {
            let (t, i) = v
                .split_once(':')
                .and_then(|(t, i)| Some((t.trim().parse::<u8>().ok()?, i.trim().parse::<u8>().ok()?)))
                .ok_or_else(|| bad_at(o, v, "nfprobe_version 5 takes engine_type:engine_id (two numbers 0 to 255)"))?;
            n.engine_type = t;
            n.engine_id = u32::from(i);
        } else {
            n.engine_id = v
                .trim()
                .parse::<u32>()
                .map_err(|_| bad_at(o, v, "nfprobe_version 9 and 10 take one source id (0 to 4294967295)"))?;
        }
    }
    n.sampling_rate = g.sampling_rate.max(1);
    let agg_origin = pend.aggregate.as_ref().unwrap_or(origin);
    if pend.aggregate.is_none() {
        *aggregate = Aggregate::parse(NFPROBE_DEFAULT_AGGREGATE)
            .map_err(|e| bad_at(origin, NFPROBE_DEFAULT_AGGREGATE, e.to_string()))?;
    }
    if aggregate.sum().is_some() {
        return Err(bad_at(agg_origin, &aggregate.to_string(), "sum_* primitives make no flows to export"));
    }
    // pmacct exports TCP flags whenever ports are aggregated; the table then keeps them.
    let ports = aggregate.has(Primitive::SrcPort) || aggregate.has(Primitive::DstPort);
    if ports && !aggregate.has(Primitive::TcpFlags) {
        *aggregate = Aggregate::parse(&format!("{aggregate},tcpflags"))
            .map_err(|e| bad_at(agg_origin, &aggregate.to_string(), e.to_string()))?;
    }
    Ok(())
}

/// An sfprobe plugin's settings.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SfprobeConfig {
    /// `sfprobe_receiver`, default 127.0.0.1:6343.
    pub receiver: SocketAddr,
    /// `sfprobe_agentip`: the agent address in the datagrams (default 127.0.0.1).
    pub agent_ip: IpAddr,
    /// `sfprobe_agentsubid` (pmacct's code default 0; CONFIG-KEYS says 1402).
    pub agent_subid: u32,
    /// `sfprobe_ifspeed`, bits per second, for counter samples.
    pub ifspeed: u64,
    pub source_ip: Option<IpAddr>,
    pub ipprec: u8,
    pub direction: Option<FromTag<ProbeDirection>>,
    pub ifindex: Option<FromTag<u32>>,
    pub ifindex_override: bool,
    pub peer_as: bool,
}

impl Default for SfprobeConfig {
    fn default() -> Self {
        SfprobeConfig {
            receiver: SocketAddr::from(([127, 0, 0, 1], 6343)),
            agent_ip: IpAddr::from([127, 0, 0, 1]),
            agent_subid: 0,
            ifspeed: 100_000_000,
            source_ip: None,
            ipprec: 0,
            direction: None,
            ifindex: None,
            ifindex_override: false,
            peer_as: false,
        }
    }
}

pub(super) fn apply_sfprobe(s: &mut SfprobeConfig, d: &Directive) -> Result<(), ConfigError> {
    let v = d.value.as_str();
    match d.key.as_str() {
        "sfprobe_receiver" => s.receiver = parse_receiver(v).map_err(|e| bad(d, e))?,
        "sfprobe_agentip" => s.agent_ip = super::parse::parse_ip(d)?,
        "sfprobe_agentsubid" => {
            s.agent_subid = v.parse().map_err(|_| bad(d, "expected a number from 0 to 4294967295"))?
        }
        "sfprobe_ifspeed" => s.ifspeed = v.parse().map_err(|_| bad(d, "expected bits per second"))?,
        "sfprobe_source_ip" => s.source_ip = Some(super::parse::parse_ip(d)?),
        "sfprobe_ipprec" => s.ipprec = parse_ipprec(d)?,
        "sfprobe_direction" => s.direction = Some(parse_direction(d)?),
        "sfprobe_ifindex" => s.ifindex = Some(parse_ifindex(d)?),
        "sfprobe_ifindex_override" => s.ifindex_override = parse_bool(d)?,
        "sfprobe_peer_as" => s.peer_as = parse_bool(d)?,
        _ => {}
    }
    Ok(())
}

/// An sfprobe samples packets: it needs packet capture, and an agent address of the
/// receiver's family (pmacct's rule).
pub(super) fn finish_sfprobe(s: &SfprobeConfig, g: &super::GlobalConfig, origin: &Origin) -> Result<(), ConfigError> {
    if g.modes.capture.is_none() {
        return Err(bad_at(
            origin,
            "sfprobe",
            "sfprobe samples captured packets: it needs pmacctd mode (an interface or a pcap file)",
        ));
    }
    if s.agent_ip.is_ipv4() != s.receiver.is_ipv4() {
        return Err(bad_at(
            origin,
            &s.agent_ip.to_string(),
            "sfprobe_agentip must be of the receiver's address family",
        ));
    }
    Ok(())
}

/// A tee plugin's settings.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct TeeConfig {
    /// `tee_receivers`: the pools map (required), and the line that named it.
    pub receivers: Option<(std::path::PathBuf, Origin)>,
    /// `tee_transparent`: datagrams leave with the exporter's source address and port (raw
    /// socket, needs CAP_NET_RAW).
    pub transparent: bool,
    /// `tee_source_ip`: the local address datagrams leave from (non-transparent mode).
    pub source_ip: Option<IpAddr>,
    pub max_pools: Option<usize>,
    pub max_receivers: Option<usize>,
    /// `tee_pipe_size`: the send socket's buffer, bytes.
    pub pipe_size: Option<usize>,
    pub ipprec: u8,
}

pub(super) fn apply_tee(t: &mut TeeConfig, d: &Directive) -> Result<(), ConfigError> {
    let v = d.value.as_str();
    let count = |max: usize| {
        v.parse::<usize>().ok().filter(|n| (1..=max).contains(n)).ok_or_else(|| bad(d, format!("expected 1 to {max}")))
    };
    match d.key.as_str() {
        "tee_receivers" => t.receivers = Some((std::path::PathBuf::from(v), d.origin.clone())),
        "tee_transparent" => t.transparent = parse_bool(d)?,
        "tee_source_ip" => t.source_ip = Some(super::parse::parse_ip(d)?),
        "tee_max_receiver_pools" => t.max_pools = Some(count(1 << 16)?),
        "tee_max_receivers" => t.max_receivers = Some(count(1 << 16)?),
        "tee_pipe_size" => t.pipe_size = Some(count(1 << 30)?),
        "tee_ipprec" => t.ipprec = parse_ipprec(d)?,
        _ => {}
    }
    Ok(())
}

/// A tee plugin needs a collector to replicate from and a receivers map that loads.
pub(super) fn finish_tee(t: &TeeConfig, g: &super::GlobalConfig, origin: &Origin) -> Result<(), ConfigError> {
    if g.modes.netflow.is_none() && g.modes.sflow.is_none() {
        return Err(bad_at(
            origin,
            "tee",
            "tee replicates NetFlow/IPFIX or sFlow datagrams: it needs nfacctd or sfacctd mode",
        ));
    }
    let (path, o) =
        t.receivers.as_ref().ok_or_else(|| bad_at(origin, "tee", "tee needs tee_receivers (the pools map)"))?;
    crate::tee::load(
        path,
        t.max_pools.unwrap_or(crate::tee::MAX_POOLS),
        t.max_receivers.unwrap_or(crate::tee::MAX_RECEIVERS),
    )
    .map_err(|e| bad_at(o, &path.display().to_string(), e.to_string()))?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_and_timeouts() {
        assert_eq!(parse_duration("300"), Ok(300));
        assert_eq!(parse_duration("2h30m"), Ok(9000));
        assert_eq!(parse_duration("1w1d"), Ok(691_200));
        assert!(parse_duration("5x").is_err());
        assert!(parse_duration("1h30").is_err());
        let t = parse_timeouts("tcp=60:udp=10s:maxlife=1h:expint=5").unwrap();
        assert_eq!((t.tcp, t.udp, t.maxlife, t.expint, t.tcp_rst), (60, 10, 3600, 5, 120));
        assert!(parse_timeouts("general=0").is_err());
        assert!(parse_timeouts("tcpp=1").is_err());
    }

    #[test]
    fn receivers() {
        assert_eq!(parse_receiver("127.0.0.1:2100"), Ok(SocketAddr::from(([127, 0, 0, 1], 2100))));
        assert_eq!(parse_receiver("[::1]:9995").map(|a| a.port()), Ok(9995));
        assert!(parse_receiver("127.0.0.1").is_err());
    }
}
