//! The `kernel` bed's in-kernel traffic generator (perf/bpf/trafficgen.c): BPF_PROG_TEST_RUN in
//! live-frames mode repeats one frame, so without it every copy of a train is the same flow,
//! whose kernel state stays warm from one copy to the next and favours XDP pre-aggregation.
//! The generator gives copy n of every train the flow `n mod vary` of its own (see the C file
//! for how the checksums stay valid), then tail-calls the program under test.

use anyhow::{anyhow, bail, Context, Result};
use aya::maps::Map;
use aya::programs::{Xdp, XdpMode};
use aya::Ebpf;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd};
use std::path::Path;
use std::process::Command;

const SOURCE: &str = include_str!("../bpf/trafficgen.c");

/// What the generator hands each frame to.
#[derive(Clone, Copy)]
pub enum Target<'a> {
    /// Dropped on arrival: the floor any capture method pays.
    Drop,
    /// Up the stack of the ingress interface: a driver without XDP (libpcap's path).
    Pass,
    /// A loaded XDP program, e.g. the one xacctd attached to the capture interface.
    Program(BorrowedFd<'a>),
}

/// The generator, attached to an idle interface: the kernel test-runs without an XDP
/// dispatcher swap (an RCU grace period per run) only programs attached somewhere.
pub struct Generator {
    ebpf: Ebpf,
}

/// Offsets of the last 16-bit words of a frame's source and destination IP addresses, after
/// any VLAN tags; None for a frame that is not IP.
pub fn address_words(frame: &[u8]) -> Option<(usize, usize)> {
    let mut off = 12;
    loop {
        let etype = u16::from_be_bytes([*frame.get(off)?, *frame.get(off + 1)?]);
        match etype {
            0x8100 | 0x88a8 | 0x9100 => off += 4,
            0x0800 => return Some((off + 2 + 14, off + 2 + 18)).filter(|&(_, b)| b + 2 <= frame.len()),
            0x86dd => return Some((off + 2 + 22, off + 2 + 38)).filter(|&(_, b)| b + 2 <= frame.len()),
            _ => return None,
        }
    }
}

/// Ones'-complement addition and subtraction, as the generator does them (see the C file).
fn oc_add(x: u16, y: u16) -> u16 {
    let s = u32::from(x) + u32::from(y);
    ((s & 0xffff) + (s >> 16)) as u16
}

fn oc_sub(x: u16, y: u16) -> u16 {
    let s = i32::from(x) - i32::from(y);
    (if s < 0 { s + 0xffff } else { s }) as u16
}

/// Copy `n` of `frame` as the generator makes it with `vary` flows per frame (for counting the
/// flows a run really sends, and for tests).
pub fn varied(frame: &[u8], vary: u32, n: u64) -> Vec<u8> {
    let mut f = frame.to_vec();
    if let (Some((a, b)), true) = (address_words(frame), vary > 0) {
        let d = (n % u64::from(vary)) as u16;
        let word = |o: usize| u16::from_ne_bytes([frame[o], frame[o + 1]]);
        f[a..a + 2].copy_from_slice(&oc_add(word(a), d).to_ne_bytes());
        f[b..b + 2].copy_from_slice(&oc_sub(word(b), d).to_ne_bytes());
    }
    f
}

impl Generator {
    /// Builds the generator with clang in `dir`, loads it and attaches it to `iface` (none:
    /// for one-off test runs, e.g. tests).
    pub fn load(dir: &Path, iface: Option<&str>) -> Result<Generator> {
        let src = dir.join("trafficgen.c");
        let obj = dir.join("trafficgen.o");
        std::fs::write(&src, SOURCE)?;
        // linux/bpf.h includes asm/types.h, which Debian keeps under the multiarch directory.
        let multiarch = format!("-I/usr/include/{}-linux-gnu", std::env::consts::ARCH);
        let st = Command::new("clang")
            .args(["-O2", "-g", "-target", "bpf", &multiarch, "-c"])
            .arg(&src)
            .arg("-o")
            .arg(&obj)
            .status()
            .context("run clang (cargo xtask setup installs it)")?;
        if !st.success() {
            bail!("clang could not build {}", src.display());
        }
        let mut ebpf = Ebpf::load_file(&obj).context("load the traffic generator")?;
        for name in ["xacct_gen_drop", "xacct_gen_pass", "xacct_gen_prog"] {
            let p: &mut Xdp = ebpf.program_mut(name).ok_or_else(|| anyhow!("{name} missing"))?.try_into()?;
            p.load().with_context(|| format!("load {name}"))?;
        }
        if let Some(iface) = iface {
            let p: &mut Xdp =
                ebpf.program_mut("xacct_gen_prog").ok_or_else(|| anyhow!("generator missing"))?.try_into()?;
            p.attach(iface, XdpMode::Driver).with_context(|| format!("attach the generator to {iface}"))?;
        }
        Ok(Generator { ebpf })
    }

    fn prog_fd(&self, name: &str) -> Result<BorrowedFd<'_>> {
        let p: &Xdp = self.ebpf.program(name).ok_or_else(|| anyhow!("{name} missing"))?.try_into()?;
        Ok(p.fd()?.as_fd())
    }

    fn map_fd(&self, name: &str) -> Result<BorrowedFd<'_>> {
        match self.ebpf.map(name) {
            Some(Map::Array(m) | Map::ProgramArray(m)) => Ok(m.fd().as_fd()),
            _ => bail!("map {name} missing"),
        }
    }

    /// The program to test-run (it then tail-calls the target).
    pub fn program(&self) -> Result<BorrowedFd<'_>> {
        self.prog_fd("xacct_gen_prog")
    }

    /// Sets what the generator hands each frame to when run with `slot` (0 or 1).
    pub fn set_target(&self, slot: u32, target: Target<'_>) -> Result<()> {
        let prog = match target {
            Target::Drop => self.prog_fd("xacct_gen_drop")?,
            Target::Pass => self.prog_fd("xacct_gen_pass")?,
            Target::Program(fd) => fd,
        };
        let fd = prog.as_raw_fd() as u32;
        crate::testrun::map_update(self.map_fd("xacct_gen_next")?, &slot.to_ne_bytes(), &fd.to_ne_bytes())
            .context("put the program under test into the generator's tail-call slot")
    }

    /// Prepares the next test run: copies of `frame`, the first of them copy number `next`,
    /// over `vary` flows (0: unchanged), handed to the receiver in `slot`.
    pub fn set_frame(&self, frame: &[u8], vary: u32, next: u64, slot: u32) -> Result<()> {
        let (vary, (a, b)) = match address_words(frame) {
            Some(w) if vary > 0 => (vary, w),
            _ => (0, (0, 0)),
        };
        let word = |o: usize| frame.get(o..o + 2).map_or([0, 0], |w| [w[0], w[1]]);
        let mut v = Vec::with_capacity(24);
        v.extend_from_slice(&next.to_ne_bytes());
        v.extend_from_slice(&vary.to_ne_bytes());
        v.extend_from_slice(&(a as u16).to_ne_bytes());
        v.extend_from_slice(&(b as u16).to_ne_bytes());
        v.extend_from_slice(&word(a));
        v.extend_from_slice(&word(b));
        v.extend_from_slice(&slot.to_ne_bytes());
        crate::testrun::map_update(self.map_fd("xacct_gen")?, &0u32.to_ne_bytes(), &v)
            .context("configure the generator")
    }
}
