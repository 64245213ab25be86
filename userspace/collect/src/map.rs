//! Flow records and sFlow samples → [`Record`], the pipeline's one currency.

use std::net::IpAddr;
use xacct_core::record::Addr;
use xacct_core::tag::SampleType;
use xacct_core::Record;
use xacct_wire::netflow::{FlowRecord, NetflowHeader};
use xacct_wire::sflow::{SflowSample, IF_FORMAT_IFINDEX};

/// An address as pre_tag_map compares it: "unset" for the unspecified address, IPv4 for an
/// IPv4-mapped IPv6 one.
fn tag_addr(a: IpAddr) -> Addr {
    match a {
        IpAddr::V4(v) if v.is_unspecified() => Addr::None,
        IpAddr::V6(v) if v.is_unspecified() => Addr::None,
        IpAddr::V6(v) => v.to_ipv4_mapped().map_or(Addr::from(a), |v4| Addr::V4(v4.octets())),
        a => Addr::from(a),
    }
}

/// Stamps the exporter's address on a record: pre_tag_map's `ip` key.
pub fn set_exporter(r: &mut Record, exporter: IpAddr) {
    r.exporter = tag_addr(exporter);
}

fn etype_of(a: Addr) -> u16 {
    match a {
        Addr::V4(_) => 0x0800,
        Addr::V6(_) => 0x86dd,
        Addr::None => 0,
    }
}

/// One NetFlow/IPFIX flow record as a Record. `flows` is the record's own count (1, or a v8
/// aggregate's). Time is the flow's start, as nfacctd bins it (its end, then the export time,
/// when the format lacks it), or `now` with `time_new`. With `renormalize`, packets and bytes
/// are multiplied by the sampling interval the record carries (v5 header, v9/IPFIX option data
/// or the record's own field).
pub fn record_from_flow(h: &NetflowHeader, r: &FlowRecord, renormalize: bool, time_new: bool, now: i64) -> Record {
    let src_ip = Addr::from(r.src_addr);
    let ts = if time_new {
        now
    } else if r.start_ms > 0 {
        (r.start_ms / 1000) as i64
    } else if r.end_ms > 0 {
        (r.end_ms / 1000) as i64
    } else if h.unix_secs > 0 {
        h.unix_secs as i64
    } else {
        now
    };
    let rate = if renormalize { u64::from(r.sampling_interval.max(1)) } else { 1 };
    Record {
        src_mac: r.src_mac,
        dst_mac: r.dst_mac,
        vlan: r.vlan,
        vlan_depth: u8::from(r.vlan != 0),
        etype: etype_of(src_ip),
        src_ip,
        dst_ip: Addr::from(r.dst_addr),
        src_mask: r.src_mask,
        dst_mask: r.dst_mask,
        src_as: r.src_as,
        dst_as: r.dst_as,
        src_port: r.src_port,
        dst_port: r.dst_port,
        proto: r.proto,
        tos: r.tos,
        tcp_flags: r.tcp_flags,
        in_iface: r.input,
        out_iface: r.output,
        packets: r.packets.saturating_mul(rate),
        bytes: r.bytes.saturating_mul(rate),
        flows: r.flows,
        ts,
        // What pre_tag_map reads (nfacctd's sources for each key: compat-wave2.md §1.2).
        engine_type: if r.engine_type != 0 { r.engine_type } else { h.engine_type },
        // v9/IPFIX: the source id (observation domain) is what engine_id/source_id compare.
        engine_id: if h.version >= 9 {
            h.source_id
        } else if r.engine_id != 0 {
            u32::from(r.engine_id)
        } else {
            u32::from(h.engine_id)
        },
        direction: r.direction.unwrap_or(0),
        nexthop: tag_addr(r.next_hop),
        bgp_nexthop: tag_addr(r.bgp_next_hop),
        cvlan: r.cvlan,
        // pmacct's IPFIX tags (a pre_tag_map, if any, overrides them).
        tag: r.tag,
        tag2: r.tag2,
        sample_type: if src_ip.to_ip().is_some_and(|a| a.is_ipv6()) {
            SampleType::FlowV6.code()
        } else {
            SampleType::FlowV4.code()
        },
        ..Record::default()
    }
}

/// One sFlow flow sample as a Record, or None when nothing can be accounted: no decodable
/// packet, or two 802.1Q tags (sfacctd 1.7.7 accounts nothing for those; we do the same so
/// the tables match). Bytes are what sfacctd counts ([`SflowSample::bytes`]); packets 1;
/// `flows` 1: sfacctd counts each flow sample as a flow, whatever the sampling rate (checked
/// against Debian's sfacctd 1.7.7). Times are arrival times: sFlow carries none.
///
/// Each sample stands alone: a later IP fragment's sample keeps ports 0, since the sample of
/// its first fragment (if one was taken at all) says nothing certain about this packet.
pub fn record_from_sample(s: &SflowSample, renormalize: bool, now: i64) -> Option<Record> {
    let p = s.packet.as_ref()?;
    if p.vlan_depth >= 2 {
        return None;
    }
    let mut r = Record::from_packet(p, now);
    let rate = if renormalize { u64::from(s.sampling_rate.max(1)) } else { 1 };
    r.packets = rate;
    r.bytes = u64::from(s.bytes).saturating_mul(rate);
    r.flows = 1;
    if s.input_format == IF_FORMAT_IFINDEX {
        r.in_iface = s.input;
    }
    if s.output_format == IF_FORMAT_IFINDEX {
        r.out_iface = s.output;
    }
    if let Some(sw) = &s.switch {
        if r.vlan == 0 {
            r.vlan = (sw.src_vlan & 0xfff) as u16;
        }
    }
    if let Some(rt) = &s.router {
        r.src_mask = rt.src_mask.min(128) as u8;
        r.dst_mask = rt.dst_mask.min(128) as u8;
    }
    if let Some(g) = &s.gateway {
        r.src_as = g.src_as;
        r.dst_as = g.dst_as;
        if let Some(nh) = g.next_hop {
            r.bgp_nexthop = tag_addr(nh);
        }
    }
    if let Some(rt) = &s.router {
        r.nexthop = tag_addr(rt.next_hop);
    }
    // sfacctd's keys: the agent address (`ip`), sub-agent (`agent_id`), data source index
    // (`engine_id`/`source_id`), and the direction from which port is the data source.
    r.exporter = tag_addr(s.agent);
    r.agent_id = s.sub_agent_id;
    // pmacct's EX_TAG (a pre_tag_map, if any, overrides it).
    if let Some((t1, t2)) = s.tags {
        r.tag = t1;
        r.tag2 = t2;
    }
    r.engine_id = s.source_id_index;
    r.direction =
        u8::from(s.output_format == IF_FORMAT_IFINDEX && s.output == s.source_id_index && s.input != s.source_id_index);
    r.sample_type = SampleType::Sflow { enterprise: 0, format: if s.expanded { 3 } else { 1 } }.code();
    Some(r)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::{IpAddr, Ipv4Addr};
    use xacct_wire::{PacketSummary, L3};

    fn sample(packet: PacketSummary, rate: u32) -> SflowSample {
        SflowSample {
            agent: IpAddr::V4(Ipv4Addr::new(192, 0, 2, 1)),
            sub_agent_id: 0,
            expanded: false,
            sequence: 1,
            source_id_type: 0,
            source_id_index: 1,
            sampling_rate: rate,
            sample_pool: rate,
            drops: 0,
            input_format: IF_FORMAT_IFINDEX,
            input: 3,
            output_format: IF_FORMAT_IFINDEX,
            output: 4,
            header_protocol: 1,
            frame_length: 104,
            stripped: 4,
            packet: Some(packet),
            header_error: None,
            bytes: 104,
            switch: None,
            router: None,
            gateway: None,
            tags: None,
        }
    }

    #[test]
    fn a_sample_is_one_flow_renormalised_or_not() {
        let p = PacketSummary {
            l3: L3::V4 { src: [10, 0, 0, 1], dst: [10, 0, 0, 2] },
            etype: 0x0800,
            proto: 17,
            src_port: 1000,
            dst_port: 53,
            ip_len: 86,
            ..PacketSummary::default()
        };
        let r = record_from_sample(&sample(p, 100), false, 7).expect("record");
        assert_eq!((r.packets, r.bytes, r.flows, r.in_iface, r.out_iface), (1, 104, 1, 3, 4));
        let r = record_from_sample(&sample(p, 100), true, 7).expect("record");
        assert_eq!((r.packets, r.bytes, r.flows), (100, 10_400, 1));
    }

    #[test]
    fn a_later_fragment_keeps_ports_zero() {
        let p = PacketSummary {
            l3: L3::V6 { src: [0x20; 16], dst: [0x30; 16] },
            etype: 0x86dd,
            proto: 17,
            is_fragment: true,
            is_later_fragment: true,
            frag_id: 9,
            ip_len: 100,
            ..PacketSummary::default()
        };
        let r = record_from_sample(&sample(p, 1), false, 7).expect("record");
        assert_eq!((r.src_port, r.dst_port, r.proto, r.flows), (0, 0, 17, 1));
    }
}
