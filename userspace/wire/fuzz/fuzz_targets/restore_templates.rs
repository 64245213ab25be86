//! Templates restored from a (possibly hand-edited or corrupt) `nfacctd_templates_file` go
//! through `TemplateCache::restore`: whatever it accepts must decode data sets as safely as
//! templates that arrived on the wire, and an export of the cache must restore to the same
//! state. The input is a compact description of domains and templates, then datagrams
//! separated by 0xa5 that are decoded with the restored cache.
#![no_main]

use std::net::{IpAddr, Ipv4Addr};

use libfuzzer_sys::fuzz_target;
use xacct_wire::netflow::{
    Decoder, DomainState, FlowRecord, Limits, NetflowHeader, SamplingInfo, TemplateField, TemplateState,
};

struct Bytes<'a>(&'a [u8]);

impl Bytes<'_> {
    fn u8(&mut self) -> u8 {
        let (b, rest) = self.0.split_first().map(|(b, r)| (*b, r)).unwrap_or((0, &[]));
        self.0 = rest;
        b
    }
    fn u16(&mut self) -> u16 {
        u16::from_be_bytes([self.u8(), self.u8()])
    }
    fn u32(&mut self) -> u32 {
        u32::from_be_bytes([self.u8(), self.u8(), self.u8(), self.u8()])
    }
}

fuzz_target!(|data: &[u8]| {
    let (desc, datagrams) = match data.iter().position(|&b| b == 0xa5) {
        Some(i) => (&data[..i], &data[i + 1..]),
        None => (data, &[][..]),
    };
    let mut b = Bytes(desc);
    let mut domains = Vec::new();
    for d in 0..(b.u8() % 4) {
        let exporter = IpAddr::V4(Ipv4Addr::new(10, 0, 0, d));
        let version = if b.u8() & 1 == 0 { 9 } else { 10 };
        let source_id = u32::from(b.u8() % 3);
        let mut templates = Vec::new();
        for _ in 0..(b.u8() % 6) {
            let id = b.u16();
            let flags = b.u8();
            let mut fields = Vec::new();
            for _ in 0..(b.u8() % 12) {
                let (ie, len) = (b.u16() & 0x7fff, b.u16());
                let enterprise = (b.u8() & 1 == 1).then(|| b.u32());
                fields.push(TemplateField { ie, len, enterprise });
            }
            templates.push(TemplateState { id, options: flags & 1 == 1, scope: u16::from(flags >> 1 & 7), fields });
        }
        let sampling = (0..(b.u8() % 3))
            .map(|_| SamplingInfo {
                exporter: Some(exporter),
                source_id,
                sampler_id: u32::from(b.u8()),
                interval: b.u32(),
                algorithm: b.u8(),
            })
            .collect();
        domains.push(DomainState { exporter, version, source_id, templates, sampling, system_init_ms: None });
    }
    let limits =
        Limits { max_templates: 8, max_fields: 32, max_pending_sets: 4, max_pending_bytes: 4096, max_domains: 8 };
    let mut dec = Decoder::new(limits);
    if dec.templates.restore(&domains).is_ok() {
        // What was accepted comes back out the same (sorted, empty domains left out).
        let mut again = Decoder::new(limits);
        let out = dec.templates.export();
        assert_eq!(again.templates.restore(&out).ok(), Some(out.iter().map(|d| d.templates.len()).sum()));
        assert_eq!(again.templates.export(), out);
    }
    for (i, dgram) in datagrams.split(|&b| b == 0xa5).enumerate() {
        let exporter = IpAddr::V4(Ipv4Addr::new(10, 0, 0, (i % 4) as u8));
        let mut n = 0u64;
        let res = dec.decode(exporter, dgram, &mut |_: &NetflowHeader, _: &FlowRecord| n += 1);
        if let Ok(st) = res {
            assert_eq!(u64::from(st.records) + u64::from(st.replayed_records), n);
        }
        assert!(dec.templates.len() <= 8 * 8, "templates bounded");
    }
});
