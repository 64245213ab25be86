//! Plugins: each runs on its own thread, owns its merged table and, at its refresh, pulls the
//! workers' shards through [`Harvest`]. memory serves the table to the `xacct` client over a
//! Unix socket; print writes formatted/CSV/JSON output; nfprobe exports flows as NetFlow
//! v5/v9 or IPFIX; sfprobe sends sFlow v5 samples; tee replicates the collectors'
//! datagrams.

use std::sync::Arc;
use xacct_core::aggregate::{Projector, Table};
use xacct_core::config::{PluginConfig, PluginKind};
use xacct_core::stats::{PluginStats, SourceStats};

pub mod memory;
pub mod nfprobe;
pub mod print;
pub mod sfprobe;
pub mod tee;

/// Provided by the daemon. Collecting swaps every worker's shard of this plugin for an empty
/// one between batches, so no record is lost or counted twice across a refresh.
pub trait Harvest: Send {
    /// Folds every worker's current shard for this plugin into `into`, emptying the shards.
    /// Blocks until every live worker has answered.
    fn harvest_into(&mut self, into: &mut Table);

    /// Whether a worker's shard is filling up and asks for a harvest before the plugin's next
    /// regular one (a flood of new keys fills a shard within a second). Plugins poll it every
    /// [`POLL`].
    fn wanted(&self) -> bool {
        false
    }
}

/// How often a plugin checks [`Harvest::wanted`] between its regular harvests.
pub const POLL: std::time::Duration = std::time::Duration::from_millis(20);

/// Everything a plugin thread gets from the daemon.
pub struct PluginContext {
    pub config: PluginConfig,
    pub projector: Projector,
    pub harvest: Box<dyn Harvest>,
    pub stats: Arc<PluginStats>,
    /// The daemon's sources, for status queries (`xacct -t`) and logs.
    pub sources: Vec<(String, Arc<SourceStats>)>,
    /// Every plugin of the daemon (this one included): name, kind and counters, so that
    /// `xacct -t` on a memory table also shows what the SQL plugins wrote.
    pub peers: Vec<(String, PluginKind, Arc<PluginStats>)>,
    /// Receives (or disconnects) when the daemon stops: the plugin does a final harvest and
    /// flush, then returns.
    pub shutdown: crossbeam_channel::Receiver<()>,
    /// The plugin's pre_tag_map (its own or the global one), for plugins that tag outside
    /// the workers (tee).
    pub tag_map: Option<Arc<xacct_core::tag::TagMap>>,
    /// tee: the datagrams the collectors take.
    pub datagrams: Option<crossbeam_channel::Receiver<xacct_core::tee::Datagram>>,
    /// sfprobe: the packets the workers' samplers took.
    pub samples: Option<crossbeam_channel::Receiver<xacct_core::record::PacketSample>>,
}

#[derive(Debug, thiserror::Error)]
pub enum PluginError {
    #[error("{plugin}: {what}: {source}")]
    Io {
        plugin: String,
        what: String,
        #[source]
        source: std::io::Error,
    },
    #[error("{plugin}: {what}")]
    Failed { plugin: String, what: String },
}

/// The UDP socket an exporter sends from: bound to `source` (or any address of the
/// receiver's family), with the hop limit and IP precedence asked for, connected to
/// `receiver` so that sends need no address and ICMP errors come back as send errors.
pub fn export_socket(
    receiver: std::net::SocketAddr,
    source: Option<std::net::IpAddr>,
    hoplimit: Option<u8>,
    ipprec: u8,
) -> std::io::Result<std::net::UdpSocket> {
    use socket2::{Domain, Protocol, Socket, Type};
    let v6 = receiver.is_ipv6();
    let s = Socket::new(if v6 { Domain::IPV6 } else { Domain::IPV4 }, Type::DGRAM, Some(Protocol::UDP))?;
    let local = match source {
        Some(a) => std::net::SocketAddr::new(a, 0),
        None if v6 => std::net::SocketAddr::from(([0u16; 8], 0)),
        None => std::net::SocketAddr::from(([0u8; 4], 0)),
    };
    s.bind(&local.into())?;
    if let Some(h) = hoplimit {
        if v6 {
            s.set_unicast_hops_v6(u32::from(h))?;
        } else {
            s.set_ttl_v4(u32::from(h))?;
        }
    }
    if ipprec > 0 {
        let tos = u32::from(ipprec) << 5;
        if v6 {
            s.set_tclass_v6(tos)?;
        } else {
            s.set_tos_v4(tos)?;
        }
    }
    s.connect(&receiver.into())?;
    Ok(s.into())
}

/// Gives a file the plugin created the owner `files_uid`/`files_gid` ask for.
pub fn chown(path: &std::path::Path, cfg: &PluginConfig) -> std::io::Result<()> {
    if cfg.files_uid.is_none() && cfg.files_gid.is_none() {
        return Ok(());
    }
    std::os::unix::fs::chown(path, cfg.files_uid, cfg.files_gid)
}
