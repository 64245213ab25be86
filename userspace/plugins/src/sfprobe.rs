//! The sfprobe plugin: an sFlow v5 agent over captured traffic. The workers run its sampler on
//! every IP packet its filters take (random 1-in-`sampling_rate`, the pool of packets seen
//! and the samples a full queue dropped kept for each sample) and hand it the frame's leading
//! bytes; the plugin packs flow samples (raw packet header) into datagrams for
//! `sfprobe_receiver`, and every 20 seconds a counter sample of the data source with the
//! octets and unicast/multicast/broadcast packets the sampler saw.
//!
//! As in pmacct: data source class 0, index 1 (or `sfprobe_ifindex`), agent
//! `sfprobe_agentip` with `sfprobe_agentsubid`, ifType 6, full duplex, status up, speed
//! `sfprobe_ifspeed`; input/output ifIndex from the packet, else from `sfprobe_direction` /
//! `sfprobe_ifindex`, unknown as 0x3FFFFFFF. With `tag` or `tag2` in the aggregate, every
//! sample carries pmacct's EX_TAG enterprise record (43874, format 2: two 64-bit tags), which
//! sfacctd and xacctd's collector read back.

use crate::{PluginContext, PluginError};
use std::net::UdpSocket;
use std::sync::atomic::Ordering::Relaxed;
use std::time::{Duration, Instant};
use xacct_core::config::export::{FromTag, ProbeDirection, SfprobeConfig};
use xacct_core::record::PacketSample;
use xacct_core::stats::ExportStats;
use xacct_wire::sflow::{DatagramBuilder, FlowSampleSpec, IfCounters};

/// pmacct's SFL_DEFAULT_COUNTER_INTERVAL.
pub const COUNTER_EVERY: Duration = Duration::from_secs(20);
/// Samples wait at most this long for a datagram to fill.
const FLUSH_EVERY: Duration = Duration::from_millis(500);
/// Datagram size above which no sample is added.
const MAX_DATAGRAM: usize = 1300;
/// sFlow's "unknown interface".
const IF_UNKNOWN: u32 = 0x3fff_ffff;

struct Agent {
    cfg: SfprobeConfig,
    socket: UdpSocket,
    /// Whether samples carry pmacct's EX_TAG record (the aggregate has tag or tag2).
    tags: bool,
    started: Instant,
    datagram_seq: u32,
    flow_seq: u32,
    counter_seq: u32,
    pending: Option<(DatagramBuilder, Instant)>,
}

impl Agent {
    fn source_index(&self) -> u32 {
        match self.cfg.ifindex {
            Some(FromTag::Fixed(i)) => i,
            _ => 1,
        }
    }

    fn uptime_ms(&self) -> u32 {
        self.started.elapsed().as_millis().min(u128::from(u32::MAX)) as u32
    }

    fn builder(&mut self) -> &mut DatagramBuilder {
        if self.pending.is_none() {
            let b = DatagramBuilder::new(self.cfg.agent_ip, self.cfg.agent_subid, self.datagram_seq, self.uptime_ms());
            self.datagram_seq = self.datagram_seq.wrapping_add(1);
            self.pending = Some((b, Instant::now()));
        }
        match &mut self.pending {
            Some((b, _)) => b,
            None => unreachable!("set just above"),
        }
    }

    fn flush(&mut self, st: &ExportStats) {
        let Some((b, _)) = self.pending.take() else { return };
        if b.is_empty() {
            return;
        }
        match self.socket.send(&b.finish()) {
            Ok(_) => st.datagrams_sent.fetch_add(1, Relaxed),
            Err(e) => {
                if st.send_errors.fetch_add(1, Relaxed) == 0 {
                    tracing::warn!("sfprobe: sending to {}: {e}", self.cfg.receiver);
                }
                0
            }
        };
    }

    /// The sample's interfaces: its own, or what sfprobe_direction/sfprobe_ifindex say.
    fn interfaces(&self, s: &PacketSample) -> (u32, u32) {
        let (mut input, mut output) = (s.in_iface, s.out_iface);
        let from_tag = |v: u64| match v {
            1 => Some(ProbeDirection::In),
            2 => Some(ProbeDirection::Out),
            _ => None,
        };
        let dir = match self.cfg.direction {
            Some(FromTag::Fixed(d)) => Some(d),
            Some(FromTag::Tag) => from_tag(s.tag),
            Some(FromTag::Tag2) => from_tag(s.tag2),
            None => None,
        };
        if let (Some(d), Some(ix)) = (dir, self.cfg.ifindex) {
            let v = match ix {
                FromTag::Fixed(v) => v,
                FromTag::Tag => s.tag as u32,
                FromTag::Tag2 => s.tag2 as u32,
            };
            let slot = if d == ProbeDirection::In { &mut input } else { &mut output };
            if *slot == 0 || self.cfg.ifindex_override {
                *slot = v;
            }
        }
        let known = |i: u32| if i == 0 { IF_UNKNOWN } else { i };
        (known(input), known(output))
    }

    fn sample(&mut self, s: &PacketSample, st: &ExportStats) {
        let (input, output) = self.interfaces(s);
        let spec = FlowSampleSpec {
            sequence: self.flow_seq,
            source_id_type: 0,
            source_id_index: self.source_index(),
            sampling_rate: s.rate.max(1),
            sample_pool: s.pool as u32,
            drops: s.drops as u32,
            input,
            output,
            header_protocol: 1,
            // As pmacct's sfprobe: the frame as on the wire with its 4-byte FCS, which the
            // capture did not keep (so "stripped").
            frame_length: s.frame_len + 4,
            stripped: 4,
            header: &s.header,
            switch: None,
            router: None,
            gateway: None,
            tags: self.tags.then_some((s.tag, s.tag2)),
        };
        self.flow_seq = self.flow_seq.wrapping_add(1);
        self.builder().flow_sample(&spec);
        if self.builder().len() > MAX_DATAGRAM {
            self.flush(st);
        }
    }

    fn counters(&mut self, st: &ExportStats) {
        let c = IfCounters {
            if_index: self.source_index(),
            if_type: 6,
            if_speed: self.cfg.ifspeed,
            if_direction: 1,
            if_status: 3,
            in_octets: st.sf_octets.load(Relaxed),
            in_ucast: st.sf_ucast.load(Relaxed) as u32,
            in_mcast: st.sf_mcast.load(Relaxed) as u32,
            in_bcast: st.sf_bcast.load(Relaxed) as u32,
            ..IfCounters::default()
        };
        let (seq, index) = (self.counter_seq, self.source_index());
        self.counter_seq = self.counter_seq.wrapping_add(1);
        self.builder().counter_sample(seq, 0, index, &c);
        self.flush(st);
    }
}

pub fn run_sfprobe(mut ctx: PluginContext) -> Result<(), PluginError> {
    let name = ctx.config.name.clone();
    let failed = |what: String| PluginError::Failed { plugin: name.clone(), what };
    let cfg = ctx.config.sfprobe.as_deref().cloned().ok_or_else(|| failed("no sfprobe settings".into()))?;
    let rx = ctx.samples.take().ok_or_else(|| failed("no sample queue from the workers".into()))?;
    let receiver = cfg.receiver;
    let socket = crate::export_socket(cfg.receiver, cfg.source_ip, None, cfg.ipprec).map_err(|e| PluginError::Io {
        plugin: name.clone(),
        what: format!("export socket to {receiver}"),
        source: e,
    })?;
    let tags =
        ctx.config.aggregate.has(xacct_core::Primitive::Tag) || ctx.config.aggregate.has(xacct_core::Primitive::Tag2);
    let mut agent = Agent {
        cfg,
        socket,
        tags,
        started: Instant::now(),
        datagram_seq: 1,
        flow_seq: 1,
        counter_seq: 1,
        pending: None,
    };
    tracing::info!("plugin {name}: sfprobe sending sFlow v5 to {receiver}");
    let st = &ctx.stats.export;
    let mut next_counters = Instant::now() + COUNTER_EVERY;
    loop {
        crossbeam_channel::select! {
            recv(rx) -> s => match s {
                Ok(s) => agent.sample(&s, st),
                Err(_) => {
                    agent.counters(st);
                    return Ok(());
                }
            },
            recv(ctx.shutdown) -> _ => {
                while let Ok(s) = rx.try_recv() {
                    agent.sample(&s, st);
                }
                agent.flush(st);
                agent.counters(st);
                return Ok(());
            },
            default(FLUSH_EVERY) => {}
        }
        if agent.pending.as_ref().is_some_and(|(_, t)| t.elapsed() >= FLUSH_EVERY) {
            agent.flush(st);
        }
        if Instant::now() >= next_counters {
            agent.counters(st);
            next_counters += COUNTER_EVERY;
        }
    }
}
