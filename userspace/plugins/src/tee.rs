//! The tee plugin (nfacctd/sfacctd mode): every datagram the collectors take is replicated,
//! byte for byte, to the pools of `tee_receivers` whose `tag` filter takes the datagram's tag
//! (from the plugin's pre_tag_map, matched on the exporter's address; untagged without a
//! map). A pool without `balance-alg` sends to each of its receivers, one with it to one.
//!
//! Non-transparent mode sends from an ordinary UDP socket (`tee_source_ip`, a pool's
//! `src_port`); `tee_transparent: true` writes the IP and UDP headers itself on a raw socket
//! so that receivers see the exporter's own address and port (CAP_NET_RAW).
//!
//! The collectors hand datagrams over through a bounded queue and count what a full queue
//! drops; at shutdown the queue is drained before the plugin returns.

use crate::{PluginContext, PluginError};
use std::net::{IpAddr, SocketAddr, UdpSocket};
use std::sync::atomic::Ordering::Relaxed;
use std::sync::Arc;
use std::time::{Duration, Instant};
use xacct_core::config::export::TeeConfig;
use xacct_core::record::{Addr, Record};
use xacct_core::stats::ExportStats;
use xacct_core::tag::TagMap;
use xacct_core::tee::{Datagram, Pool};

/// How often the per-receiver counters are published.
const PUBLISH_EVERY: Duration = Duration::from_millis(500);

/// Sockets datagrams leave from.
struct Senders {
    transparent: bool,
    source_ip: Option<IpAddr>,
    ipprec: u8,
    pipe_size: Option<usize>,
    /// (family is v6, src_port) → socket.
    plain: Vec<((bool, Option<u16>), UdpSocket)>,
    raw4: Option<socket2::Socket>,
    raw6: Option<socket2::Socket>,
}

impl Senders {
    fn new(cfg: &TeeConfig) -> Senders {
        Senders {
            transparent: cfg.transparent,
            source_ip: cfg.source_ip,
            ipprec: cfg.ipprec,
            pipe_size: cfg.pipe_size,
            plain: Vec::new(),
            raw4: None,
            raw6: None,
        }
    }

    fn plain(&mut self, v6: bool, src_port: Option<u16>) -> std::io::Result<&UdpSocket> {
        let i = match self.plain.iter().position(|(k, _)| *k == (v6, src_port)) {
            Some(i) => i,
            None => {
                let s = self.open_plain(v6, src_port)?;
                self.plain.push(((v6, src_port), s));
                self.plain.len() - 1
            }
        };
        self.plain.get(i).map(|(_, s)| s).ok_or_else(|| std::io::Error::other("socket list"))
    }

    fn open_plain(&self, v6: bool, src_port: Option<u16>) -> std::io::Result<UdpSocket> {
        use socket2::{Domain, Protocol, Socket, Type};
        let s = Socket::new(if v6 { Domain::IPV6 } else { Domain::IPV4 }, Type::DGRAM, Some(Protocol::UDP))?;
        let ip = match self.source_ip {
            Some(ip) if ip.is_ipv6() == v6 => ip,
            _ if v6 => IpAddr::from([0u16; 8]),
            _ => IpAddr::from([0u8; 4]),
        };
        if src_port.is_some() {
            s.set_reuse_address(true)?;
        }
        s.bind(&SocketAddr::new(ip, src_port.unwrap_or(0)).into())?;
        self.tune(&s, v6)?;
        Ok(s.into())
    }

    fn tune(&self, s: &socket2::Socket, v6: bool) -> std::io::Result<()> {
        if let Some(n) = self.pipe_size {
            s.set_send_buffer_size(n)?;
        }
        if self.ipprec > 0 {
            let tos = u32::from(self.ipprec) << 5;
            if v6 {
                s.set_tclass_v6(tos)?;
            } else {
                s.set_tos_v4(tos)?;
            }
        }
        Ok(())
    }

    fn raw(&mut self, v6: bool) -> std::io::Result<&socket2::Socket> {
        use socket2::{Domain, Protocol, Socket, Type};
        let slot = if v6 { &mut self.raw6 } else { &mut self.raw4 };
        if slot.is_none() {
            let s = Socket::new(if v6 { Domain::IPV6 } else { Domain::IPV4 }, Type::RAW, Some(Protocol::UDP))?;
            if v6 {
                s.set_header_included_v6(true)?;
            } else {
                s.set_header_included_v4(true)?;
            }
            if let Some(n) = self.pipe_size {
                s.set_send_buffer_size(n)?;
            }
            *slot = Some(s);
        }
        slot.as_ref().ok_or_else(|| std::io::Error::other("raw socket"))
    }

    fn send(&mut self, d: &Datagram, to: SocketAddr, src_port: Option<u16>) -> std::io::Result<()> {
        if self.transparent && d.src.is_ipv4() == to.is_ipv4() {
            let packet = spoofed(d.src, to, &d.data, self.ipprec << 5)?;
            // For raw sockets the port is not used; the address routes the packet.
            self.raw(to.is_ipv6())?.send_to(&packet, &SocketAddr::new(to.ip(), 0).into())?;
            return Ok(());
        }
        self.plain(to.is_ipv6(), src_port)?.send_to(&d.data, to)?;
        Ok(())
    }
}

fn sum16(b: &[u8], mut acc: u32) -> u32 {
    for c in b.chunks(2) {
        acc += u32::from(u16::from_be_bytes([c.first().copied().unwrap_or(0), c.get(1).copied().unwrap_or(0)]));
    }
    acc
}

fn fold(mut acc: u32) -> u16 {
    while acc > 0xffff {
        acc = (acc & 0xffff) + (acc >> 16);
    }
    !(acc as u16)
}

/// An IP + UDP packet from `src` to `to` carrying `payload` (the exporter's own source address
/// and port: transparent replication).
fn spoofed(src: SocketAddr, to: SocketAddr, payload: &[u8], tos: u8) -> std::io::Result<Vec<u8>> {
    let udp_len = u16::try_from(8 + payload.len()).map_err(|_| std::io::Error::other("datagram too long"))?;
    let mut udp = Vec::with_capacity(usize::from(udp_len));
    udp.extend_from_slice(&src.port().to_be_bytes());
    udp.extend_from_slice(&to.port().to_be_bytes());
    udp.extend_from_slice(&udp_len.to_be_bytes());
    udp.extend_from_slice(&[0, 0]);
    udp.extend_from_slice(payload);
    match (src.ip(), to.ip()) {
        (IpAddr::V4(s), IpAddr::V4(d)) => {
            let total = 20 + udp_len;
            let mut p = Vec::with_capacity(usize::from(total));
            p.extend_from_slice(&[0x45, tos]);
            p.extend_from_slice(&total.to_be_bytes());
            // Id 0 and checksum 0: the kernel fills both for IP_HDRINCL sockets; UDP checksum
            // 0 means none, which IPv4 allows.
            p.extend_from_slice(&[0, 0, 0x40, 0, 64, 17, 0, 0]);
            p.extend_from_slice(&s.octets());
            p.extend_from_slice(&d.octets());
            p.extend_from_slice(&udp);
            Ok(p)
        }
        (IpAddr::V6(s), IpAddr::V6(d)) => {
            // IPv6 requires the UDP checksum, over the pseudo-header and the datagram.
            let mut acc = sum16(&s.octets(), 0);
            acc = sum16(&d.octets(), acc);
            acc += u32::from(udp_len) + 17;
            acc = sum16(&udp, acc);
            let c = match fold(acc) {
                0 => 0xffff,
                c => c,
            };
            if let Some(x) = udp.get_mut(6..8) {
                x.copy_from_slice(&c.to_be_bytes());
            }
            let mut p = Vec::with_capacity(40 + udp.len());
            p.extend_from_slice(&[0x60 | (tos >> 4), tos << 4, 0, 0]);
            p.extend_from_slice(&udp_len.to_be_bytes());
            p.extend_from_slice(&[17, 64]);
            p.extend_from_slice(&s.octets());
            p.extend_from_slice(&d.octets());
            p.extend_from_slice(&udp);
            Ok(p)
        }
        _ => Err(std::io::Error::other("source and receiver of different families")),
    }
}

struct Tee {
    pools: Vec<Pool>,
    rr: Vec<usize>,
    /// Per pool, per receiver: (sent, errors).
    counts: Vec<Vec<(u64, u64)>>,
    senders: Senders,
    map: Option<Arc<TagMap>>,
}

impl Tee {
    fn handle(&mut self, d: &Datagram, st: &ExportStats) {
        st.tee_received.fetch_add(1, Relaxed);
        let tag = match &self.map {
            Some(m) => {
                let r = Record { exporter: Addr::from(d.src.ip()), ..Record::default() };
                m.eval_one(&r).tag
            }
            None => 0,
        };
        let mut taken = false;
        for (i, pool) in self.pools.iter().enumerate() {
            if pool.tags.as_ref().is_some_and(|f| !f.takes(tag)) {
                continue;
            }
            taken = true;
            let Some(rr) = self.rr.get_mut(i) else { continue };
            for j in pool.pick(d.src.ip(), tag, rr) {
                let Some(&to) = pool.receivers.get(j) else { continue };
                let res = self.senders.send(d, to, pool.src_port);
                if let Some(c) = self.counts.get_mut(i).and_then(|v| v.get_mut(j)) {
                    match res {
                        Ok(()) => c.0 += 1,
                        Err(e) => {
                            if c.1 == 0 {
                                tracing::warn!("tee: sending to {to}: {e}");
                            }
                            c.1 += 1;
                        }
                    }
                }
            }
        }
        if !taken {
            st.tee_unmatched.fetch_add(1, Relaxed);
        }
    }

    /// SIGUSR2: the receivers map and the tag map again; either failing keeps the old one
    /// (counted in `maps_reload_failed`). Counters of receivers still there carry over.
    fn reload(&mut self, path: &std::path::Path, cfg: &TeeConfig, stats: &xacct_core::stats::PluginStats) {
        let pools = xacct_core::tee::load(
            path,
            cfg.max_pools.unwrap_or(xacct_core::tee::MAX_POOLS),
            cfg.max_receivers.unwrap_or(xacct_core::tee::MAX_RECEIVERS),
        );
        let map = match &self.map {
            Some(m) => TagMap::load(std::path::Path::new(m.file()), &xacct_core::tag::MapOptions::default())
                .map(|m| Some(Arc::new(m))),
            None => Ok(None),
        };
        match (pools, map) {
            (Ok(pools), Ok(map)) => {
                let old: Vec<(u32, SocketAddr, (u64, u64))> = self
                    .pools
                    .iter()
                    .zip(&self.counts)
                    .flat_map(|(p, c)| p.receivers.iter().zip(c).map(move |(r, c)| (p.id, *r, *c)))
                    .collect();
                self.counts = pools
                    .iter()
                    .map(|p| {
                        p.receivers
                            .iter()
                            .map(|r| old.iter().find(|(id, a, _)| *id == p.id && a == r).map_or((0, 0), |x| x.2))
                            .collect()
                    })
                    .collect();
                self.rr = vec![0; pools.len()];
                self.pools = pools;
                self.map = map;
                stats.maps_reloaded.fetch_add(1, Relaxed);
                tracing::info!("tee: {} reloaded: {} pool(s)", path.display(), self.pools.len());
            }
            (Err(e), _) => {
                stats.maps_reload_failed.fetch_add(1, Relaxed);
                tracing::error!("tee: receivers not reloaded, keeping the old ones: {e}");
            }
            (_, Err(e)) => {
                stats.maps_reload_failed.fetch_add(1, Relaxed);
                tracing::error!("tee: pre_tag_map not reloaded, keeping the old one: {e}");
            }
        }
    }

    fn publish(&self, st: &ExportStats) {
        let rows = self
            .pools
            .iter()
            .zip(&self.counts)
            .flat_map(|(p, c)| p.receivers.iter().zip(c).map(move |(r, (s, e))| (format!("{}/{r}", p.id), *s, *e)))
            .collect();
        if let Ok(mut v) = st.tee_receivers.lock() {
            *v = rows;
        }
    }
}

pub fn run_tee(mut ctx: PluginContext) -> Result<(), PluginError> {
    let name = ctx.config.name.clone();
    let failed = |what: String| PluginError::Failed { plugin: name.clone(), what };
    let cfg = ctx.config.tee.as_deref().cloned().ok_or_else(|| failed("no tee settings".into()))?;
    let (path, _) = cfg.receivers.clone().ok_or_else(|| failed("no tee_receivers".into()))?;
    let pools = xacct_core::tee::load(
        &path,
        cfg.max_pools.unwrap_or(xacct_core::tee::MAX_POOLS),
        cfg.max_receivers.unwrap_or(xacct_core::tee::MAX_RECEIVERS),
    )
    .map_err(|e| failed(e.to_string()))?;
    let rx = ctx.datagrams.take().ok_or_else(|| failed("no datagram queue from the collectors".into()))?;
    tracing::info!(
        "plugin {name}: tee replicating to {} pool(s), {} receiver(s){}",
        pools.len(),
        pools.iter().map(|p| p.receivers.len()).sum::<usize>(),
        if cfg.transparent { ", transparent" } else { "" }
    );
    let mut tee = Tee {
        rr: vec![0; pools.len()],
        counts: pools.iter().map(|p| vec![(0, 0); p.receivers.len()]).collect(),
        pools,
        senders: Senders::new(&cfg),
        map: ctx.tag_map.clone(),
    };
    let st = &ctx.stats.export;
    let mut published = Instant::now();
    let mut generation = st.tee_reload.load(Relaxed);
    loop {
        let now = st.tee_reload.load(Relaxed);
        if now != generation {
            generation = now;
            tee.reload(&path, &cfg, &ctx.stats);
        }
        crossbeam_channel::select! {
            recv(rx) -> d => match d {
                Ok(d) => tee.handle(&d, st),
                Err(_) => {
                    tee.publish(st);
                    return Ok(());
                }
            },
            recv(ctx.shutdown) -> _ => {
                // What the collectors handed over before they stopped still goes out.
                while let Ok(d) = rx.try_recv() {
                    tee.handle(&d, st);
                }
                tee.publish(st);
                return Ok(());
            },
            default(PUBLISH_EVERY) => {}
        }
        if published.elapsed() >= PUBLISH_EVERY {
            tee.publish(st);
            published = Instant::now();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn spoofed_headers() {
        let src: SocketAddr = "10.1.2.3:5555".parse().unwrap();
        let to: SocketAddr = "127.0.0.1:2100".parse().unwrap();
        let p = spoofed(src, to, b"abcd", 0).unwrap();
        assert_eq!(p.len(), 20 + 8 + 4);
        assert_eq!(&p[12..16], &[10, 1, 2, 3]);
        assert_eq!(&p[20..22], &5555u16.to_be_bytes());
        assert_eq!(&p[22..24], &2100u16.to_be_bytes());
        // IPv6: the UDP checksum verifies (sums to 0xffff with the pseudo-header).
        let src: SocketAddr = "[2001:db8::1]:5555".parse().unwrap();
        let to: SocketAddr = "[::1]:2100".parse().unwrap();
        let p = spoofed(src, to, b"abcde", 0).unwrap();
        let udp = &p[40..];
        let mut acc = sum16(&p[8..24], 0);
        acc = sum16(&p[24..40], acc);
        acc += udp.len() as u32 + 17;
        acc = sum16(udp, acc);
        assert_eq!(fold(acc), 0);
    }
}
