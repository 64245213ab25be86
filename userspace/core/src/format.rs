//! Renders table entries the way pmacct 1.7.7 prints them: the `pmacct` client's formatted, CSV
//! and JSON layouts, and the print plugin's.
//!
//! # Facts observed from pmacct 1.7.7 (pmacctd memory/print plugins on pcaps, `pmacct` client)
//!
//! **Column order** is pmacct's own, whatever the order of the `aggregate` list:
//! `TAG TAG2 IN_IFACE OUT_IFACE SRC_MAC DST_MAC VLAN ETYPE SRC_AS DST_AS SRC_IP SRC_NET DST_IP
//! DST_NET SRC_MASK DST_MASK SRC_PORT DST_PORT TCP_FLAGS PROTOCOL TOS MPLS_LABEL_TOP
//! MPLS_LABEL_BOTTOM MPLS_STACK_DEPTH PACKETS FLOWS BYTES`
//! (only the aggregate's columns appear; `FLOWS` only with the `flows` primitive; `PACKETS` and
//! `BYTES` always). E.g. `src_host,src_net,dst_net,dst_host` prints
//! `SRC_IP SRC_NET DST_IP DST_NET`.
//!
//! **Formatted**: every column but the last is left-aligned and padded to a fixed width, then the
//! last (`BYTES`) is written bare; header names use the same widths. Widths (value + 2 spaces):
//! TAG/TAG2/IN_IFACE/OUT_IFACE/SRC_AS/DST_AS 12, SRC_MAC/DST_MAC 19, VLAN/ETYPE/TOS 7,
//! SRC_IP/DST_IP/SRC_NET/DST_NET 47, SRC_MASK/DST_MASK/SRC_PORT/DST_PORT 10, TCP_FLAGS 11,
//! PROTOCOL 12, MPLS_LABEL_TOP 16, MPLS_LABEL_BOTTOM 19, MPLS_STACK_DEPTH 18, PACKETS/FLOWS 22.
//! A value longer than its field still gets the 2 spaces. The
//! client (`-s`, `-M`) ends with an empty line and `For a total of: N entries`; the print plugin
//! prints header and rows only, no trailer.
//!
//! **CSV**: header of the same upper-case names joined by the separator (`-E`,
//! `print_output_separator`, default `,`), rows likewise; no trailer.
//!
//! **JSON**: one object per line, `{"key": value, ...}` with `", "` and `": "` separators, keys
//! in column order: `tag tag2 iface_in iface_out mac_src mac_dst vlan etype as_src as_dst ip_src
//! net_src ip_dst net_dst mask_src mask_dst port_src port_dst tcp_flags ip_proto tos
//! mpls_label_top mpls_label_bottom mpls_stack_depth packets flows bytes` (the MPLS values are
//! numbers). Strings: MACs, addresses, nets, `etype` (hex), `tcp_flags` (decimal, e.g.
//! `"18"`), `ip_proto` (name, or the number as a string with `-u`). Everything else is a number.
//! The print plugin starts each object with `"event_type": "purge"` and, with `print_history`,
//! puts `"stamp_inserted"` (bin start) and `"stamp_updated"` (write time) as
//! `"YYYY-MM-DD HH:MM:SS"` strings just before `packets`. Formatted and CSV print output show no
//! stamp columns even with `print_history`. For `sum_*` aggregates pmacct's JSON carries only
//! `packets` and `bytes` (the key is dropped); we do the same.
//!
//! **Values**: MACs lower-case `aa:bb:…`; absent addresses `0.0.0.0`; IPv6 in RFC 5952 form;
//! `etype` lower-case hex without `0x` (`800`, `86dd`); `tcp_flags` the OR of every packet's
//! flags in decimal; `sum_host` shows as `SRC_IP`, `sum_net` as `SRC_NET` (no mask column),
//! `sum_port` as `SRC_PORT`, `sum_as` as `SRC_AS`, `sum_mac` as `SRC_MAC`. `none` has only
//! `PACKETS BYTES`. Protocol names (without `-u`) come from pmacct's own fixed table (see
//! [`proto_name`]); other numbers print as decimal.
//!
//! **Deliberate differences**: pmacct 1.7.7's JSON prints garbage for a protocol with no name
//! (`"ip_proto": "%s/%s ): [%s] …"`); we print the number. Its `-a` prints ~70 columns
//! (BGP, NAT, MPLS, tunnel, geo…) whose rows do not line up with its own header; our `-a` prints
//! every column xacct knows, in the order above, with `FLOWS`.

use crate::aggregate::{Aggregate, Counters, Primitive};
use crate::config::OutputFormat;
use crate::record::{Addr, Record};
use std::io::{self, Write};

/// How timestamps (`stamp_inserted`, `stamp_updated`) are written.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum TimeStyle {
    /// `YYYY-MM-DD HH:MM:SS` in the local time zone (pmacct's default).
    #[default]
    Local,
    /// Same layout in UTC (`-0`, `timestamps_utc`).
    Utc,
    /// Seconds since the epoch (`-I`, `timestamps_since_epoch`).
    Epoch,
}

/// Rendering options shared by the client and the print plugin.
#[derive(Debug, Clone)]
pub struct FormatOptions {
    pub format: OutputFormat,
    /// CSV separator.
    pub separator: String,
    /// `-u`: protocols as numbers.
    pub numeric_protocols: bool,
    /// `-a`: every column xacct knows, not only the aggregate's (formatted and CSV).
    pub all_fields: bool,
    pub time_style: TimeStyle,
    /// JSON only: write `stamp_inserted` (the entry's bin) and `stamp_updated`.
    pub stamps: bool,
    /// JSON only: leading `"event_type": …` (the print plugin writes `purge`).
    pub event_type: Option<&'static str>,
}

impl Default for FormatOptions {
    fn default() -> Self {
        FormatOptions {
            format: OutputFormat::Formatted,
            separator: ",".to_string(),
            numeric_protocols: false,
            all_fields: false,
            time_style: TimeStyle::Local,
            stamps: false,
            event_type: None,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum Col {
    Tag,
    Tag2,
    Label,
    InIface,
    OutIface,
    SrcMac,
    DstMac,
    Vlan,
    Etype,
    SrcAs,
    DstAs,
    SrcIp,
    SrcNet,
    DstIp,
    DstNet,
    SrcMask,
    DstMask,
    SrcPort,
    DstPort,
    TcpFlags,
    Proto,
    Tos,
    MplsTop,
    MplsBottom,
    MplsDepth,
    Packets,
    Flows,
    Bytes,
}

impl Col {
    const ALL: [Col; 28] = [
        Col::Tag,
        Col::Tag2,
        Col::Label,
        Col::InIface,
        Col::OutIface,
        Col::SrcMac,
        Col::DstMac,
        Col::Vlan,
        Col::Etype,
        Col::SrcAs,
        Col::DstAs,
        Col::SrcIp,
        Col::SrcNet,
        Col::DstIp,
        Col::DstNet,
        Col::SrcMask,
        Col::DstMask,
        Col::SrcPort,
        Col::DstPort,
        Col::TcpFlags,
        Col::Proto,
        Col::Tos,
        Col::MplsTop,
        Col::MplsBottom,
        Col::MplsDepth,
        Col::Packets,
        Col::Flows,
        Col::Bytes,
    ];

    /// (header, JSON key, formatted width including the two trailing spaces).
    fn meta(self) -> (&'static str, &'static str, usize) {
        match self {
            Col::Tag => ("TAG", "tag", 12),
            Col::Tag2 => ("TAG2", "tag2", 12),
            // pmacct's print plugin pads labels to 32 (its client prints none when formatted).
            Col::Label => ("LABEL", "label", 32),
            Col::InIface => ("IN_IFACE", "iface_in", 12),
            Col::OutIface => ("OUT_IFACE", "iface_out", 12),
            Col::SrcMac => ("SRC_MAC", "mac_src", 19),
            Col::DstMac => ("DST_MAC", "mac_dst", 19),
            Col::Vlan => ("VLAN", "vlan", 7),
            Col::Etype => ("ETYPE", "etype", 7),
            Col::SrcAs => ("SRC_AS", "as_src", 12),
            Col::DstAs => ("DST_AS", "as_dst", 12),
            Col::SrcIp => ("SRC_IP", "ip_src", 47),
            Col::SrcNet => ("SRC_NET", "net_src", 47),
            Col::DstIp => ("DST_IP", "ip_dst", 47),
            Col::DstNet => ("DST_NET", "net_dst", 47),
            Col::SrcMask => ("SRC_MASK", "mask_src", 10),
            Col::DstMask => ("DST_MASK", "mask_dst", 10),
            Col::SrcPort => ("SRC_PORT", "port_src", 10),
            Col::DstPort => ("DST_PORT", "port_dst", 10),
            Col::TcpFlags => ("TCP_FLAGS", "tcp_flags", 11),
            Col::Proto => ("PROTOCOL", "ip_proto", 12),
            Col::Tos => ("TOS", "tos", 7),
            Col::MplsTop => ("MPLS_LABEL_TOP", "mpls_label_top", 16),
            Col::MplsBottom => ("MPLS_LABEL_BOTTOM", "mpls_label_bottom", 19),
            Col::MplsDepth => ("MPLS_STACK_DEPTH", "mpls_stack_depth", 18),
            Col::Packets => ("PACKETS", "packets", 22),
            Col::Flows => ("FLOWS", "flows", 22),
            Col::Bytes => ("BYTES", "bytes", 0),
        }
    }

    /// JSON strings are quoted; the rest are bare numbers.
    fn json_string(self) -> bool {
        matches!(
            self,
            Col::SrcMac
                | Col::DstMac
                | Col::Label
                | Col::Etype
                | Col::SrcIp
                | Col::SrcNet
                | Col::DstIp
                | Col::DstNet
                | Col::TcpFlags
                | Col::Proto
        )
    }

    fn of(p: Primitive) -> Option<Col> {
        Some(match p {
            Primitive::Tag => Col::Tag,
            Primitive::Tag2 => Col::Tag2,
            Primitive::Label => Col::Label,
            Primitive::SrcMac | Primitive::SumMac => Col::SrcMac,
            Primitive::DstMac => Col::DstMac,
            Primitive::Vlan => Col::Vlan,
            Primitive::SrcAs | Primitive::SumAs => Col::SrcAs,
            Primitive::DstAs => Col::DstAs,
            Primitive::SrcHost | Primitive::SumHost => Col::SrcIp,
            Primitive::DstHost => Col::DstIp,
            Primitive::SrcNet | Primitive::SumNet => Col::SrcNet,
            Primitive::DstNet => Col::DstNet,
            Primitive::SrcMask => Col::SrcMask,
            Primitive::DstMask => Col::DstMask,
            Primitive::SrcPort | Primitive::SumPort => Col::SrcPort,
            Primitive::DstPort => Col::DstPort,
            Primitive::TcpFlags => Col::TcpFlags,
            Primitive::Proto => Col::Proto,
            Primitive::Tos => Col::Tos,
            Primitive::Etype => Col::Etype,
            Primitive::InIface => Col::InIface,
            Primitive::OutIface => Col::OutIface,
            Primitive::MplsLabelTop => Col::MplsTop,
            Primitive::MplsLabelBottom => Col::MplsBottom,
            Primitive::MplsStackDepth => Col::MplsDepth,
            Primitive::Flows => Col::Flows,
            Primitive::None => return None,
        })
    }
}

/// pmacct's protocol names (its own table, not /etc/protocols): observed by sending every IPv4
/// protocol number through pmacctd 1.7.7 and reading `pmacct -s` with and without `-u`.
/// Protocol 0 never reached the table in that test; "ip" is the customary name.
pub fn proto_name(p: u8) -> Option<&'static str> {
    Some(match p {
        0 => "ip",
        1 => "icmp",
        2 => "igmp",
        3 => "ggp",
        4 => "ipencap",
        6 => "tcp",
        8 => "egp",
        9 => "igp",
        17 => "udp",
        18 => "mux",
        41 => "ipv6",
        43 => "ipv6-route",
        44 => "ipv6-frag",
        46 => "rsvp",
        47 => "gre",
        50 => "esp",
        51 => "ah",
        55 => "mobile",
        56 => "tlsp",
        58 => "ipv6-icmp",
        59 => "ipv6-nonxt",
        60 => "ipv6-opts",
        80 => "iso-ip",
        83 => "vines",
        88 => "eigrp",
        89 => "ospf",
        91 => "larp",
        93 => "ax.25",
        94 => "ipip",
        98 => "encap",
        102 => "pnni",
        103 => "pim",
        108 => "IPcomp",
        111 => "ipx-in-ip",
        112 => "vrrp",
        115 => "l2tp",
        124 => "isis",
        132 => "sctp",
        133 => "fc",
        _ => return None,
    })
}

/// Inverse of [`proto_name`] (for `-N`/`-M` values such as `tcp`).
pub fn proto_by_name(s: &str) -> Option<u8> {
    (0..=255u8).find(|p| proto_name(*p) == Some(s))
}

/// A value rendered on the stack: fields are short (an IPv6 address is at most 45 bytes), and
/// the formatted layout needs each value's length before padding. Avoids a heap allocation per
/// field, which matters at a million rows.
struct Cell {
    buf: [u8; 64],
    len: usize,
}

impl Cell {
    fn new() -> Cell {
        Cell { buf: [0; 64], len: 0 }
    }
    fn clear(&mut self) {
        self.len = 0;
    }
    fn push(&mut self, s: &[u8]) {
        let end = (self.len + s.len()).min(self.buf.len());
        let n = end - self.len;
        self.buf[self.len..end].copy_from_slice(&s[..n]);
        self.len = end;
    }
    fn as_bytes(&self) -> &[u8] {
        &self.buf[..self.len]
    }
    fn num(&mut self, v: u64) {
        let mut b = itoa::Buffer::new();
        self.push(b.format(v).as_bytes());
    }
}

impl std::fmt::Write for Cell {
    fn write_str(&mut self, s: &str) -> std::fmt::Result {
        self.push(s.as_bytes());
        Ok(())
    }
}

const HEX: &[u8; 16] = b"0123456789abcdef";

fn push_mac(c: &mut Cell, m: &[u8; 6]) {
    for (i, b) in m.iter().enumerate() {
        if i > 0 {
            c.push(b":");
        }
        c.push(&[HEX[(b >> 4) as usize], HEX[(b & 15) as usize]]);
    }
}

fn push_addr(c: &mut Cell, a: &Addr) {
    use std::fmt::Write as _;
    match a {
        Addr::V4(b) => {
            // Dotted quad by hand: std's Ipv4Addr Display goes through the fmt machinery twice.
            for (i, o) in b.iter().enumerate() {
                if i > 0 {
                    c.push(b".");
                }
                c.num(u64::from(*o));
            }
        }
        // RFC 5952 compression is subtle; std gets it right.
        Addr::V6(b) => {
            let _ = write!(c, "{}", std::net::Ipv6Addr::from(*b));
        }
        Addr::None => c.push(b"0.0.0.0"),
    }
}

fn push_hex(c: &mut Cell, v: u16) {
    let mut started = false;
    for shift in [12u16, 8, 4, 0] {
        let d = ((v >> shift) & 15) as usize;
        if d != 0 || started || shift == 0 {
            started = true;
            c.push(&[HEX[d]]);
        }
    }
}

/// Streams a table's entries in one output format. Build once per output, then call
/// [`TableWriter::header`], [`TableWriter::row`] for each entry and [`TableWriter::trailer`].
pub struct TableWriter {
    cols: Vec<Col>,
    opts: FormatOptions,
    /// `sum_*` tables: JSON drops the key (as pmacct does).
    json_key_hidden: bool,
    cell: Cell,
    /// `stamp_updated`, rendered once per flush.
    updated: Cell,
}

impl TableWriter {
    pub fn new(aggregate: &Aggregate, opts: FormatOptions) -> TableWriter {
        let mut cols: Vec<Col> = if opts.all_fields && opts.format != OutputFormat::Json {
            Col::ALL.to_vec()
        } else {
            let mut c: Vec<Col> = aggregate.primitives().iter().filter_map(|p| Col::of(*p)).collect();
            c.extend([Col::Packets, Col::Bytes]);
            c
        };
        cols.sort();
        cols.dedup();
        let mut w = TableWriter {
            cols,
            json_key_hidden: aggregate.sum().is_some(),
            opts,
            cell: Cell::new(),
            updated: Cell::new(),
        };
        w.set_updated(chrono::Utc::now().timestamp());
        w
    }

    pub fn options(&self) -> &FormatOptions {
        &self.opts
    }

    /// Sets `stamp_updated` (the write time) for the following rows.
    pub fn set_updated(&mut self, ts: i64) {
        let mut c = Cell::new();
        push_time(&mut c, ts, self.opts.time_style);
        self.updated = c;
    }

    /// The header line (formatted, CSV); nothing for JSON.
    pub fn header(&self, w: &mut impl Write) -> io::Result<()> {
        match self.opts.format {
            OutputFormat::Json => Ok(()),
            OutputFormat::Csv => {
                for (i, col) in self.cols.iter().enumerate() {
                    if i > 0 {
                        w.write_all(self.opts.separator.as_bytes())?;
                    }
                    w.write_all(col.meta().0.as_bytes())?;
                }
                w.write_all(b"\n")
            }
            OutputFormat::Formatted => {
                let last = self.cols.len().saturating_sub(1);
                for (i, col) in self.cols.iter().enumerate() {
                    let (name, _, width) = col.meta();
                    write_padded(w, name.as_bytes(), if i == last { 0 } else { width })?;
                }
                w.write_all(b"\n")
            }
        }
    }

    /// The client's closing lines (formatted only): an empty line, then the entry count.
    pub fn trailer(&self, w: &mut impl Write, entries: u64) -> io::Result<()> {
        if self.opts.format == OutputFormat::Formatted {
            let mut b = itoa::Buffer::new();
            w.write_all(b"\nFor a total of: ")?;
            w.write_all(b.format(entries).as_bytes())?;
            w.write_all(b" entries\n")?;
        }
        Ok(())
    }

    /// One entry: `r` holds the key's primitives (as [`crate::Projector::unpack`] returns
    /// them), `c` its counters, `bin` its time bin (used only with `stamps`).
    pub fn row(&mut self, w: &mut impl Write, r: &Record, c: &Counters, bin: i64) -> io::Result<()> {
        self.write_row(w, r, c, bin, false)
    }

    /// A plugin's overflow entry (see [`crate::Projector::overflow_of`]): what keys the full
    /// table refused add up to. Formatted and CSV output write `overflow` in every key column;
    /// JSON writes `"overflow": true` and no key fields. Counters and time stamps as any row.
    pub fn overflow_row(&mut self, w: &mut impl Write, c: &Counters, bin: i64) -> io::Result<()> {
        self.write_row(w, &Record::default(), c, bin, true)
    }

    /// [`TableWriter::row`] or [`TableWriter::overflow_row`] as `proj` says `key` is.
    pub fn row_of(&mut self, w: &mut impl Write, proj: &crate::Projector, key: &[u64], c: &Counters) -> io::Result<()> {
        let (r, bin) = proj.unpack(key);
        self.write_row(w, &r, c, bin, proj.is_overflow(key))
    }

    /// [`TableWriter::row_of`], with `fix` applied to the unpacked record first.
    pub fn row_of_mapped(
        &mut self,
        w: &mut impl Write,
        proj: &crate::Projector,
        key: &[u64],
        c: &Counters,
        fix: impl FnOnce(&mut Record),
    ) -> io::Result<()> {
        let (mut r, bin) = proj.unpack(key);
        fix(&mut r);
        self.write_row(w, &r, c, bin, proj.is_overflow(key))
    }

    fn write_row(&mut self, w: &mut impl Write, r: &Record, c: &Counters, bin: i64, overflow: bool) -> io::Result<()> {
        let is_counter = |col: Col| matches!(col, Col::Packets | Col::Flows | Col::Bytes | Col::TcpFlags);
        match self.opts.format {
            OutputFormat::Formatted => {
                let last = self.cols.len().saturating_sub(1);
                for i in 0..self.cols.len() {
                    let col = self.cols[i];
                    self.fill_or_overflow(col, r, c, overflow && !is_counter(col));
                    write_padded(w, self.cell.as_bytes(), if i == last { 0 } else { col.meta().2 })?;
                }
                w.write_all(b"\n")
            }
            OutputFormat::Csv => {
                for i in 0..self.cols.len() {
                    if i > 0 {
                        w.write_all(self.opts.separator.as_bytes())?;
                    }
                    let col = self.cols[i];
                    self.fill_or_overflow(col, r, c, overflow && !is_counter(col));
                    w.write_all(self.cell.as_bytes())?;
                }
                w.write_all(b"\n")
            }
            OutputFormat::Json => {
                w.write_all(b"{")?;
                let mut first = true;
                let mut sep = |w: &mut dyn Write| -> io::Result<()> {
                    if !std::mem::replace(&mut first, false) {
                        w.write_all(b", ")?;
                    }
                    Ok(())
                };
                if let Some(ev) = self.opts.event_type {
                    sep(w)?;
                    w.write_all(b"\"event_type\": \"")?;
                    w.write_all(ev.as_bytes())?;
                    w.write_all(b"\"")?;
                }
                if overflow {
                    sep(w)?;
                    w.write_all(b"\"overflow\": true")?;
                }
                for i in 0..self.cols.len() {
                    let col = self.cols[i];
                    let is_counter = matches!(col, Col::Packets | Col::Flows | Col::Bytes);
                    if is_counter && col == Col::Packets && self.opts.stamps {
                        let mut t = Cell::new();
                        push_time(&mut t, bin, self.opts.time_style);
                        let quote = self.opts.time_style != TimeStyle::Epoch;
                        for (key, val) in [("stamp_inserted", t.as_bytes()), ("stamp_updated", self.updated.as_bytes())]
                        {
                            sep(w)?;
                            write_json_pair(w, key, val, quote)?;
                        }
                    }
                    if (self.json_key_hidden || overflow) && !is_counter {
                        continue;
                    }
                    self.fill(col, r, c);
                    sep(w)?;
                    write_json_pair(w, col.meta().1, self.cell.as_bytes(), col.json_string())?;
                }
                w.write_all(b"}\n")
            }
        }
    }

    fn fill_or_overflow(&mut self, col: Col, r: &Record, c: &Counters, overflow: bool) {
        if overflow {
            self.cell.clear();
            self.cell.push(b"overflow");
        } else {
            self.fill(col, r, c);
        }
    }

    fn fill(&mut self, col: Col, r: &Record, c: &Counters) {
        let cell = &mut self.cell;
        cell.clear();
        match col {
            Col::Tag => cell.num(r.tag),
            Col::Tag2 => cell.num(r.tag2),
            Col::Label => cell.push(crate::tag::labels().name(r.label).as_bytes()),
            Col::InIface => cell.num(r.in_iface.into()),
            Col::OutIface => cell.num(r.out_iface.into()),
            Col::SrcMac => push_mac(cell, &r.src_mac),
            Col::DstMac => push_mac(cell, &r.dst_mac),
            Col::Vlan => cell.num(r.vlan.into()),
            Col::Etype => push_hex(cell, r.etype),
            Col::SrcAs => cell.num(r.src_as.into()),
            Col::DstAs => cell.num(r.dst_as.into()),
            Col::SrcIp => push_addr(cell, &r.src_ip),
            Col::SrcNet => push_addr(cell, &r.src_net),
            Col::DstIp => push_addr(cell, &r.dst_ip),
            Col::DstNet => push_addr(cell, &r.dst_net),
            Col::SrcMask => cell.num(r.src_mask.into()),
            Col::DstMask => cell.num(r.dst_mask.into()),
            Col::SrcPort => cell.num(r.src_port.into()),
            Col::DstPort => cell.num(r.dst_port.into()),
            Col::TcpFlags => cell.num(c.tcp_flags.into()),
            Col::Proto => match proto_name(r.proto).filter(|_| !self.opts.numeric_protocols) {
                Some(n) => cell.push(n.as_bytes()),
                None => cell.num(r.proto.into()),
            },
            Col::Tos => cell.num(r.tos.into()),
            Col::MplsTop => cell.num(r.mpls_top.into()),
            Col::MplsBottom => cell.num(r.mpls_bottom.into()),
            Col::MplsDepth => cell.num(r.mpls_depth.into()),
            Col::Packets => cell.num(c.packets),
            Col::Flows => cell.num(c.flows),
            Col::Bytes => cell.num(c.bytes),
        }
    }
}

fn write_padded(w: &mut impl Write, v: &[u8], width: usize) -> io::Result<()> {
    const SPACES: &[u8; 64] = &[b' '; 64];
    w.write_all(v)?;
    if width > 0 {
        // The field is width-2 wide, then two spaces always separate it from the next.
        let pad = (width - 2).saturating_sub(v.len()) + 2;
        w.write_all(&SPACES[..pad.min(SPACES.len())])?;
    }
    Ok(())
}

fn write_json_pair(w: &mut (impl Write + ?Sized), key: &str, val: &[u8], quote: bool) -> io::Result<()> {
    w.write_all(b"\"")?;
    w.write_all(key.as_bytes())?;
    w.write_all(if quote { b"\": \"" } else { b"\": " })?;
    // Values are digits, hex, addresses and fixed names: nothing needs JSON escaping.
    w.write_all(val)?;
    if quote {
        w.write_all(b"\"")?;
    }
    Ok(())
}

fn push_time(c: &mut Cell, ts: i64, style: TimeStyle) {
    use std::fmt::Write as _;
    const LAYOUT: &str = "%Y-%m-%d %H:%M:%S";
    match style {
        TimeStyle::Epoch => {
            let mut b = itoa::Buffer::new();
            c.push(b.format(ts).as_bytes());
        }
        TimeStyle::Utc => {
            if let Some(t) = chrono::DateTime::from_timestamp(ts, 0) {
                let _ = write!(c, "{}", t.format(LAYOUT));
            }
        }
        TimeStyle::Local => {
            use chrono::TimeZone;
            if let chrono::LocalResult::Single(t) | chrono::LocalResult::Ambiguous(t, _) =
                chrono::Local.timestamp_opt(ts, 0)
            {
                let _ = write!(c, "{}", t.format(LAYOUT));
            }
        }
    }
}
