//! The `kernel` bed's generator (perf/bpf/trafficgen.c) run by the kernel on real frames: each
//! copy becomes the flow `varied` says, with valid IPv4 and TCP/UDP checksums, and `vary`
//! copies give `vary` distinct flows. Needs root (BPF) and clang.

use etherparse::{NetSlice, SlicedPacket, TransportSlice};
use std::collections::HashSet;
use xacct_perf::testrun::test_run_out;
use xacct_perf::traffic::{build, FrameSpec, L3, L4};
use xacct_perf::trafficgen::{varied, Generator};

/// XDP_ABORTED: the generator's verdict when its tail-call slot is empty.
const XDP_ABORTED: u32 = 0;

fn spec(vlans: Vec<u16>, l3: L3, l4: L4) -> FrameSpec {
    FrameSpec { src_mac: [2, 0, 0, 0, 0, 1], dst_mac: [2, 0, 0, 0, 0, 2], vlans, l3, l4, payload: 100 }
}

/// The 5-tuple of a frame, after checking every checksum it carries.
fn checked_tuple(frame: &[u8]) -> (Vec<u8>, Vec<u8>, u16, u16) {
    let p = SlicedPacket::from_ethernet(frame).expect("the generator's frame parses");
    let (src, dst) = match p.net.expect("IP") {
        NetSlice::Ipv4(ip) => {
            let h = ip.header().to_header();
            assert_eq!(h.header_checksum, h.calc_header_checksum(), "IPv4 header checksum");
            (h.source.to_vec(), h.destination.to_vec())
        }
        NetSlice::Ipv6(ip) => {
            let h = ip.header().to_header();
            (h.source.to_vec(), h.destination.to_vec())
        }
        NetSlice::Arp(_) => panic!("not IP"),
    };
    let pseudo = |l4: &[u8], proto: u16| verify(l4, proto, &src, &dst);
    match p.transport.expect("L4") {
        TransportSlice::Tcp(t) => {
            assert!(pseudo(t.slice(), 6), "TCP checksum {:#06x} over {} bytes", t.checksum(), t.slice().len());
            (src, dst, t.source_port(), t.destination_port())
        }
        TransportSlice::Udp(u) => {
            assert!(pseudo(u.slice(), 17), "UDP checksum");
            (src, dst, u.source_port(), u.destination_port())
        }
        _ => panic!("TCP or UDP expected"),
    }
}

/// Whether the ones'-complement sum of the pseudo-header and the segment is all ones.
fn verify(l4: &[u8], proto: u16, src: &[u8], dst: &[u8]) -> bool {
    let mut sum = 0u32;
    let mut add = |b: &[u8]| {
        for c in b.chunks(2) {
            sum += u32::from(u16::from_be_bytes([c[0], *c.get(1).unwrap_or(&0)]));
        }
    };
    add(src);
    add(dst);
    add(&proto.to_be_bytes());
    add(&(l4.len() as u16).to_be_bytes());
    add(l4);
    while sum > 0xffff {
        sum = (sum & 0xffff) + (sum >> 16);
    }
    sum == 0xffff
}

#[test]
fn generator_gives_each_copy_its_own_valid_flow() {
    if !xacct_perf::root_or_skip("BPF") {
        return;
    }
    let dir = std::env::temp_dir().join(format!("xacct-trafficgen-test-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("temp dir");
    let gen = Generator::load(&dir, None).expect("build and load the generator (clang, root)");
    let mut a6 = [0u8; 16];
    a6[..4].copy_from_slice(&[0x20, 0x01, 0x0d, 0xb8]);
    let mut b6 = a6;
    a6[15] = 0xff; // so that adding to the last word carries
    b6[14] = 0x01;
    let frames = [
        build(&spec(
            vec![],
            L3::V4 { src: [10, 0, 255, 250], dst: [192, 168, 0, 3], tos: 0 },
            L4::Tcp { sport: 1234, dport: 80, flags: 0x18 },
        )),
        build(&spec(
            vec![10, 20],
            L3::V4 { src: [10, 0, 0, 1], dst: [192, 168, 0, 0], tos: 0 },
            L4::Udp { sport: 5353, dport: 53 },
        )),
        build(&spec(vec![7], L3::V6 { src: a6, dst: b6, tclass: 0 }, L4::Udp { sport: 4000, dport: 4789 })),
        build(&spec(vec![], L3::V6 { src: b6, dst: a6, tclass: 0 }, L4::Tcp { sport: 22, dport: 50000, flags: 0x10 })),
    ];
    let prog = gen.program().expect("generator fd");
    let vary = 300u32;
    for (i, f) in frames.iter().enumerate() {
        let original = checked_tuple(f);
        let mut flows = HashSet::new();
        for n in 0..u64::from(vary) + 5 {
            gen.set_frame(f, vary, n, 0).expect("configure");
            let (verdict, out) = test_run_out(&prog, f).expect("BPF_PROG_TEST_RUN");
            assert_eq!(verdict, XDP_ABORTED, "no receiver in the slot");
            assert_eq!(out, varied(f, vary, n), "frame {i}, copy {n}: kernel and `varied` disagree");
            let t = checked_tuple(&out);
            assert_eq!((t.2, t.3), (original.2, original.3), "ports untouched");
            if n == 0 {
                assert_eq!(t, original, "copy 0 is the frame itself");
            }
            flows.insert(t);
        }
        assert_eq!(flows.len(), vary as usize, "frame {i}: {vary} copies, {vary} flows, then they repeat");
    }
    // vary 0: the frame goes through untouched.
    gen.set_frame(&frames[0], 0, 17, 0).expect("configure");
    assert_eq!(test_run_out(&prog, &frames[0]).expect("run").1, frames[0]);
    let _ = std::fs::remove_dir_all(&dir);
}
