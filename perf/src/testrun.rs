//! BPF_PROG_TEST_RUN from the harnesses: the kernel times an XDP program on frames we hand it,
//! either in a loop over one frame (the program alone) or in live-frames mode, where each frame
//! sits in a page-pool page as a driver would place it and the verdict is carried out for real:
//! XDP_REDIRECT into an AF_XDP socket copies it there, XDP_PASS builds a socket buffer and sends
//! it up the stack of the ingress interface (to a packet socket, libpcap's), XDP_DROP recycles
//! the page. The kernel's `duration` then covers a method's whole receive path on one core, with
//! no wake-ups or cross-core transfers in it.
//!
//! Hand-written on the bpf(2) syscall: aya can neither load a program from raw instructions
//! (the floor programs must be exactly two instructions, with nothing a compiler adds) nor run
//! live-frames tests, and a program attached by another process is reached only by its id.

use std::io;
use std::os::fd::{AsRawFd, BorrowedFd, FromRawFd, OwnedFd};

pub const XDP_DROP: u32 = 1;
pub const XDP_PASS: u32 = 2;

const BPF_MAP_UPDATE_ELEM: libc::c_long = 2;
const BPF_PROG_LOAD: libc::c_long = 5;
const BPF_PROG_TEST_RUN: libc::c_long = 10;
const BPF_PROG_GET_FD_BY_ID: libc::c_long = 13;
const BPF_PROG_TYPE_XDP: u64 = 6;
const BPF_F_TEST_XDP_LIVE_FRAMES: u64 = 1 << 1;

/// The bpf(2) syscall on a 128-byte `union bpf_attr`.
fn bpf(cmd: libc::c_long, attr: &mut [u64; 16]) -> io::Result<libc::c_long> {
    // SAFETY: `attr` is an initialised, aligned 128-byte buffer that outlives the call; the
    // pointers stored in it point to data of the callers that outlives the call too.
    let r = unsafe { libc::syscall(libc::SYS_bpf, cmd, attr.as_mut_ptr(), std::mem::size_of_val(attr) as u32) };
    if r < 0 {
        Err(io::Error::last_os_error())
    } else {
        Ok(r)
    }
}

/// Loads `r0 = verdict; exit` as an XDP program: the cheapest program there is.
pub fn load_verdict(verdict: u32) -> io::Result<OwnedFd> {
    // BPF_ALU64|BPF_MOV|BPF_K r0 = verdict; BPF_JMP|BPF_EXIT.
    let insns: [u64; 2] = [0xb7 | (u64::from(verdict) << 32), 0x95];
    let license = b"GPL\0";
    let mut attr = [0u64; 16];
    // BPF_PROG_LOAD: prog_type, insn_cnt, insns, license.
    attr[0] = BPF_PROG_TYPE_XDP | (2u64 << 32);
    attr[1] = insns.as_ptr() as u64;
    attr[2] = license.as_ptr() as u64;
    let fd = bpf(BPF_PROG_LOAD, &mut attr)?;
    // SAFETY: BPF_PROG_LOAD returned a new descriptor nothing else owns.
    Ok(unsafe { OwnedFd::from_raw_fd(fd as i32) })
}

/// A descriptor of the loaded program with kernel id `id` (e.g. one another process attached).
pub fn prog_by_id(id: u32) -> io::Result<OwnedFd> {
    let mut attr = [0u64; 16];
    attr[0] = u64::from(id);
    let fd = bpf(BPF_PROG_GET_FD_BY_ID, &mut attr)?;
    // SAFETY: BPF_PROG_GET_FD_BY_ID returned a new descriptor nothing else owns.
    Ok(unsafe { OwnedFd::from_raw_fd(fd as i32) })
}

/// Writes `value` under `key` in the map `map` (sizes as the map was made with; the kernel
/// checks them). aya's typed maps cannot hold a program descriptor aya did not load.
pub fn map_update(map: BorrowedFd<'_>, key: &[u8], value: &[u8]) -> io::Result<()> {
    let mut attr = [0u64; 16];
    // map_fd, key, value, flags (BPF_ANY).
    attr[0] = map.as_raw_fd() as u64;
    attr[1] = key.as_ptr() as u64;
    attr[2] = value.as_ptr() as u64;
    bpf(BPF_MAP_UPDATE_ELEM, &mut attr).map(drop)
}

/// Runs `prog` on `frame` `repeat` times: (its verdict, the kernel's mean ns per run).
pub fn test_run(prog: &impl AsRawFd, frame: &[u8], repeat: u32) -> io::Result<(u32, u32)> {
    let mut attr = [0u64; 16];
    // test: prog_fd | retval, data_size_in | data_size_out, data_in, data_out, repeat | duration.
    attr[0] = prog.as_raw_fd() as u64;
    attr[1] = frame.len() as u64;
    attr[2] = frame.as_ptr() as u64;
    attr[4] = u64::from(repeat.max(1));
    bpf(BPF_PROG_TEST_RUN, &mut attr)?;
    Ok(((attr[0] >> 32) as u32, (attr[4] >> 32) as u32))
}

/// Runs `prog` once on `frame`: (its verdict, the frame as the program left it).
pub fn test_run_out(prog: &impl AsRawFd, frame: &[u8]) -> io::Result<(u32, Vec<u8>)> {
    // Room for a program that grows the frame (XDP allows up to a page).
    let mut out = vec![0u8; 4096];
    let mut attr = [0u64; 16];
    // prog_fd | retval, data_size_in | data_size_out, data_in, data_out, repeat | duration.
    attr[0] = prog.as_raw_fd() as u64;
    attr[1] = frame.len() as u64 | ((out.len() as u64) << 32);
    attr[2] = frame.as_ptr() as u64;
    attr[3] = out.as_mut_ptr() as u64;
    attr[4] = 1;
    bpf(BPF_PROG_TEST_RUN, &mut attr)?;
    out.truncate((attr[1] >> 32) as usize);
    Ok(((attr[0] >> 32) as u32, out))
}

/// Runs `prog` in live-frames mode on `frame`, `repeat` times, as received on RX queue `queue`
/// of the interface with index `ifindex`; the verdicts are carried out, `batch` frames at a
/// time (as a driver's poll hands them on; each call starts a fresh page pool of that many
/// pages, which later frames of the call reuse). Returns the kernel's mean ns per frame, the
/// verdict's action included.
pub fn test_run_live(
    prog: &impl AsRawFd,
    frame: &[u8],
    ifindex: u32,
    queue: u32,
    repeat: u32,
    batch: u32,
) -> io::Result<u32> {
    // struct xdp_md: data, data_end, data_meta, ingress_ifindex, rx_queue_index, egress_ifindex.
    let ctx: [u32; 6] = [0, frame.len() as u32, 0, ifindex, queue, 0];
    let mut attr = [0u64; 16];
    attr[0] = prog.as_raw_fd() as u64;
    attr[1] = frame.len() as u64;
    attr[2] = frame.as_ptr() as u64;
    attr[4] = u64::from(repeat.max(1));
    // ctx_size_in | ctx_size_out, ctx_in, ctx_out, flags | cpu, batch_size.
    attr[5] = std::mem::size_of_val(&ctx) as u64;
    attr[6] = ctx.as_ptr() as u64;
    attr[8] = BPF_F_TEST_XDP_LIVE_FRAMES;
    attr[9] = u64::from(batch.max(1));
    bpf(BPF_PROG_TEST_RUN, &mut attr)?;
    Ok((attr[4] >> 32) as u32)
}
