//! AF_XDP on a veth pair inside a private network namespace: frames injected into one end with
//! libpcap must come out of an `AfXdpSource` on the other end, every one, in order, with their
//! headers intact and their wire lengths, and the source's counters must say nothing was lost.
//!
//! Needs root (CAP_SYS_ADMIN for the namespace, CAP_NET_ADMIN/RAW and CAP_BPF for the rest).
//! Without it the test is skipped, except under CI=true where it must run.
//!
//! Addresses are from 198.18.0.0/15 (RFC 2544) and 2001:db8::/32 (documentation); every frame
//! stays inside the namespace made for the test.

use crossbeam_channel::{bounded, Receiver, Sender};
use std::process::Command;
use std::sync::atomic::{AtomicBool, Ordering::Relaxed};
use std::sync::Arc;
use std::time::{Duration, Instant};
use xacct_capture::afxdp::{AfXdpConfig, AfXdpError, AfXdpSource, Steering};
use xacct_capture::batch::HEADER_BYTES;
use xacct_capture::{Batch, BatchSink, SinkMode, SourceEnd};
use xacct_core::stats::SourceStats;
use xacct_perf::traffic::{build, FrameSpec, L3, L4};
use xacct_wire::{decode, LinkType};

const TX: &str = "xx0";
const RX: &str = "xx1";

fn under_ci() -> bool {
    std::env::var("CI").as_deref() == Ok("true")
}

fn skip(reason: &str) {
    assert!(!under_ci(), "cannot skip under CI=true: {reason}");
    eprintln!("SKIP: {reason}");
}

fn sh(args: &[&str]) -> String {
    let out = Command::new(args[0]).args(&args[1..]).output().unwrap_or_else(|e| panic!("spawn {args:?}: {e}"));
    assert!(out.status.success(), "{args:?} failed: {}", String::from_utf8_lossy(&out.stderr));
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// Best effort: a kernel without IPv6 has no such files, and then emits no IPv6 noise either.
fn sysctl_off(path: &str) {
    let _ = std::fs::write(path, "1");
}

fn setup_namespace() -> Result<(), String> {
    nix::sched::unshare(nix::sched::CloneFlags::CLONE_NEWNET).map_err(|e| format!("unshare(CLONE_NEWNET): {e}"))?;
    // Before the veths exist, so they are born without IPv6 (no router solicitations, no DAD).
    sysctl_off("/proc/sys/net/ipv6/conf/all/disable_ipv6");
    sysctl_off("/proc/sys/net/ipv6/conf/default/disable_ipv6");
    sh(&["ip", "link", "set", "lo", "up"]);
    sh(&["ip", "link", "add", TX, "type", "veth", "peer", "name", RX]);
    for dev in [TX, RX] {
        sysctl_off(&format!("/proc/sys/net/ipv6/conf/{dev}/disable_ipv6"));
        sh(&["ip", "link", "set", dev, "up"]);
    }
    Ok(())
}

/// Whether `dev` has an XDP program attached (any mode), from `ip link`.
fn xdp_attached(dev: &str) -> bool {
    let out = sh(&["ip", "-d", "link", "show", "dev", dev]);
    out.contains("prog/xdp") || out.contains(" xdp")
}

fn v6(x: u16) -> [u8; 16] {
    let mut a = [0u8; 16];
    a[..4].copy_from_slice(&[0x20, 0x01, 0x0d, 0xb8]);
    a[14..].copy_from_slice(&x.to_be_bytes());
    a
}

/// Frame `i`: six shapes in turn (padded minimum, plain TCP, full-size beyond HEADER_BYTES,
/// VLAN, IPv6, QinQ), each with a source port of its own so order and identity are checkable.
fn frame(i: usize) -> Vec<u8> {
    let sport = 10_000 + i as u16;
    let v4 = L3::V4 { src: [198, 18, 1, 1], dst: [198, 18, 2, 1], tos: 0 };
    let (vlans, l3, l4, payload) = match i % 6 {
        0 => (vec![], v4, L4::Udp { sport, dport: 53 }, 0),
        1 => (vec![], v4, L4::Tcp { sport, dport: 80, flags: 0x18 }, 100),
        2 => (vec![], v4, L4::Tcp { sport, dport: 443, flags: 0x10 }, 1400),
        3 => (vec![42], v4, L4::Udp { sport, dport: 123 }, 30),
        4 => (vec![], L3::V6 { src: v6(1), dst: v6(2), tclass: 0 }, L4::Udp { sport, dport: 5353 }, 20),
        _ => (vec![100, 200], v4, L4::Tcp { sport, dport: 22, flags: 0x02 }, 50),
    };
    build(&FrameSpec { src_mac: [2, 0, 0, 0, 0, 1], dst_mac: [2, 0, 0, 0, 0, 2], vlans, l3, l4, payload })
}

/// One received frame: (bytes kept, wire length).
type Got = (Vec<u8>, u32);

/// A source running on its own thread, feeding a one-worker sink the test drains.
struct Running {
    work: Receiver<Batch>,
    recycle: Sender<Batch>,
    stop: Arc<AtomicBool>,
    stats: Arc<SourceStats>,
    thread: std::thread::JoinHandle<(Result<SourceEnd, AfXdpError>, AfXdpSource)>,
}

impl Running {
    fn start(mut src: AfXdpSource) -> Running {
        let (work_tx, work) = bounded::<Batch>(64);
        let (recycle, recycle_rx) = bounded::<Batch>(64);
        let stats = Arc::new(SourceStats::default());
        let stop = Arc::new(AtomicBool::new(false));
        let thread = {
            let (stats, stop) = (stats.clone(), stop.clone());
            std::thread::spawn(move || {
                let mut sink = BatchSink::new(vec![work_tx], recycle_rx, SinkMode::Block, stats.clone());
                let end = src.run(7, &mut sink, &stop, &stats);
                (end, src)
            })
        };
        Running { work, recycle, stop, stats, thread }
    }

    /// Drains batches until `want` frames arrived or `timeout` passed, recycling the batches.
    fn collect(&mut self, want: usize, timeout: Duration) -> Vec<Got> {
        let mut got = Vec::new();
        let t = Instant::now();
        while got.len() < want && t.elapsed() < timeout {
            if let Ok(b) = self.work.recv_timeout(Duration::from_millis(50)) {
                assert_eq!(b.link, LinkType::Ethernet);
                assert_eq!(b.source, 7, "batches carry the source id given to run()");
                got.extend(b.frames.iter().map(|m| (b.data(m).to_vec(), m.wire_len)));
                let _ = self.recycle.try_send(b);
            }
        }
        got
    }

    /// Stops the source; its counters are final once `run` has returned.
    fn stop(self) -> (AfXdpSource, Arc<SourceStats>) {
        self.stop.store(true, Relaxed);
        let (end, src) = self.thread.join().expect("source thread");
        assert_eq!(end.expect("run"), SourceEnd::Stopped);
        (src, self.stats)
    }
}

fn afxdp_in_namespace() {
    if let Err(why) = setup_namespace() {
        skip(&format!("afxdp_veth needs root: {why}"));
        return;
    }
    // Small rings so that 1500 frames wrap the fill and rx rings several times: frames must
    // be recycled correctly for all of them to arrive.
    let cfg = AfXdpConfig { frames: 256, frame_size: 2048, rx_ring: 128, steering: Steering::Standalone };
    let src = AfXdpSource::open(RX, 0, &cfg).unwrap_or_else(|e| panic!("open AF_XDP socket on {RX}: {e}"));
    eprintln!("{}: bound in {} mode", src.describe(), src.mode());
    assert!(src.fd() >= 0);
    assert!(xdp_attached(RX), "standalone steering must attach libxdp's program to {RX}");

    let mut tx = pcap::Capture::from_device(TX).and_then(|c| c.open()).expect("open the sending end with libpcap");
    let mut run = Running::start(src);

    // 1. Below capacity: the sender waits for each burst to arrive before the next, as a
    // link below the source's capacity would; every frame must arrive, in order, intact.
    const N: usize = 1500;
    const BURST: usize = 50;
    let sent: Vec<Vec<u8>> = (0..N).map(frame).collect();
    let mut got = Vec::new();
    for burst in sent.chunks(BURST) {
        for f in burst {
            tx.sendpacket(f.as_slice()).expect("inject frame");
        }
        let want = got.len() + burst.len();
        got.extend(run.collect(burst.len(), Duration::from_secs(5)));
        if got.len() != want {
            break;
        }
    }
    // Anything more would be noise or duplicates: give it a moment to show up.
    let extra = run.collect(1, Duration::from_millis(300));
    let (src, stats) = run.stop();

    if got.len() != N {
        eprintln!("{}", sh(&["ip", "-s", "-s", "link", "show", "dev", RX]));
        eprintln!("{stats:?}");
    }
    assert_eq!(got.len(), N, "frames received");
    assert!(extra.is_empty(), "{} unexpected frames after the {N} sent, first: {:02x?}", extra.len(), extra[0].0);
    for (i, ((data, wire_len), want)) in got.iter().zip(&sent).enumerate() {
        assert_eq!(*wire_len as usize, want.len(), "frame {i}: wire length");
        let kept = want.len().min(HEADER_BYTES);
        assert_eq!(data.as_slice(), &want[..kept], "frame {i}: bytes (first {kept} kept)");
        // The kept headers decode exactly as the whole frame does.
        let full = decode(LinkType::Ethernet, want, want.len() as u32).expect("our frames decode");
        let head = decode(LinkType::Ethernet, data, *wire_len).unwrap_or_else(|e| panic!("frame {i}: {e:?}"));
        assert_eq!(head, full, "frame {i}: decoded headers");
        assert_eq!(head.src_port, 10_000 + i as u16, "frame {i}: in order");
    }
    // The shapes really were exercised: a truncated full-size frame and a padded minimum one.
    assert!(got.iter().any(|(d, w)| d.len() == HEADER_BYTES && *w as usize > HEADER_BYTES));
    assert!(got.iter().any(|(d, _)| d.len() == 60), "padded minimum frames");

    assert_eq!(stats.received.load(Relaxed), N as u64);
    assert_eq!(stats.queue_dropped.load(Relaxed), 0);
    assert_eq!(stats.kernel_dropped.load(Relaxed), 0);
    assert_eq!(stats.xsk_rx_dropped.load(Relaxed), 0);
    assert_eq!(stats.xsk_rx_ring_full.load(Relaxed), 0);
    assert_eq!(stats.xsk_rx_invalid_descs.load(Relaxed), 0);

    // 2. Above capacity: frames sent while nobody drains the socket fill its rx ring (128
    // slots; the fill ring has 256 frames, so the rx ring is the limit), and every frame
    // beyond that is a drop that must be counted, neither lost silently nor counted twice.
    const OVER: usize = 600;
    for f in sent.iter().take(OVER) {
        tx.sendpacket(f.as_slice()).expect("inject frame");
    }
    let mut run = Running::start(src);
    let got = run.collect(OVER, Duration::from_secs(2));
    let (src, stats) = run.stop();
    let ring = cfg.rx_ring as usize;
    assert_eq!(got.len(), ring, "a full rx ring's worth arrives");
    for (i, ((data, _), want)) in got.iter().zip(&sent).enumerate() {
        assert_eq!(data.as_slice(), &want[..want.len().min(HEADER_BYTES)], "frame {i} (after overload)");
    }
    assert_eq!(stats.received.load(Relaxed), ring as u64);
    assert_eq!(stats.xsk_rx_ring_full.load(Relaxed), (OVER - ring) as u64, "{stats:?}");
    assert_eq!(stats.kernel_dropped.load(Relaxed), (OVER - ring) as u64, "{stats:?}");
    assert_eq!(stats.xsk_rx_dropped.load(Relaxed), 0, "{stats:?}");

    drop(src);
    assert!(!xdp_attached(RX), "libxdp's program must go with the last socket");

    // External steering: nothing is attached, and the socket is there for the daemon's
    // XSKMAP; with no program redirecting to it, nothing reaches it.
    let cfg = AfXdpConfig { steering: Steering::External, ..AfXdpConfig::default() };
    let src = AfXdpSource::open(RX, 0, &cfg).unwrap_or_else(|e| panic!("open (external) on {RX}: {e}"));
    assert!(src.fd() >= 0);
    assert!(!xdp_attached(RX), "external steering must not attach a program");
    let mut run = Running::start(src);
    for f in sent.iter().take(10) {
        tx.sendpacket(f.as_slice()).expect("inject frame");
    }
    let got = run.collect(1, Duration::from_millis(500));
    let (_src, stats) = run.stop();
    assert!(got.is_empty(), "nothing redirects to an externally steered socket yet");
    assert_eq!(stats.received.load(Relaxed), 0);
}

#[test]
fn afxdp_on_veth_pair() {
    // The namespace belongs to this thread alone (and to the threads and processes it
    // spawns); it vanishes with the thread, taking the veth pair along.
    let h = std::thread::Builder::new().name("netns".into()).spawn(afxdp_in_namespace).expect("spawn netns thread");
    if let Err(panic) = h.join() {
        std::panic::resume_unwind(panic);
    }
}

#[test]
fn ring_sizes_must_be_powers_of_two() {
    for cfg in [
        AfXdpConfig { frames: 1000, ..AfXdpConfig::default() },
        AfXdpConfig { rx_ring: 100, ..AfXdpConfig::default() },
        AfXdpConfig { frame_size: 3000, ..AfXdpConfig::default() },
        AfXdpConfig { frames: 0, ..AfXdpConfig::default() },
    ] {
        match AfXdpSource::open("lo", 0, &cfg) {
            Err(AfXdpError::NotPowerOfTwo { .. }) => {}
            Err(e) => panic!("{cfg:?}: wrong error {e}"),
            Ok(_) => panic!("{cfg:?}: accepted"),
        }
    }
}
