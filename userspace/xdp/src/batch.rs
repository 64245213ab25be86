//! Reading and resetting a per-CPU flow map with the batch commands (`BPF_MAP_LOOKUP_BATCH`,
//! `BPF_MAP_UPDATE_BATCH`, `BPF_MAP_DELETE_BATCH`, Linux 5.6+): thousands of flows per bpf()
//! call instead of three calls per flow (get_next_key, lookup, delete), which made a harvest of
//! 100k flows cost a third of a second of CPU. Hand-written because aya 0.14
//! has no batch map operations; every unsafe block of it is in this module.

use std::io;
use std::os::fd::{AsRawFd, BorrowedFd};

use crate::FlowValue;

const BPF_MAP_LOOKUP_BATCH: libc::c_long = 24;
const BPF_MAP_UPDATE_BATCH: libc::c_long = 26;
const BPF_MAP_DELETE_BATCH: libc::c_long = 27;
/// The kernel-internal "not supported" errno that bpf() returns for map types without batch
/// operations (not EOPNOTSUPP; libc has no name for it).
const ENOTSUPP: i32 = 524;
/// Keys per call. The kernel spends ~0.4 µs per key (removal dominates) against ~1 µs per call,
/// so bigger batches gain nothing measurable, while they lengthen each uninterrupted stint in the
/// kernel (~0.4 ms here) and the buffers (values are `nr_cpus` copies per key).
const BATCH: usize = 1024;
/// ENOSPC (one hash bucket holds more keys than asked for) doubles the batch up to this.
const MAX_BATCH: usize = 1 << 20;

// The kernel lays out per-CPU values with a stride of the value size rounded up to 8 bytes; a
// `[FlowValue]` has the same stride only if its size is already a multiple of 8.
const _: () = assert!(std::mem::size_of::<FlowValue>().is_multiple_of(8));

/// `union bpf_attr`'s `batch` struct (linux/bpf.h), field for field.
#[repr(C)]
struct BatchAttr {
    in_batch: u64,
    out_batch: u64,
    keys: u64,
    values: u64,
    /// In: room in `keys`/`values`, in keys. Out: keys filled.
    count: u32,
    map_fd: u32,
    elem_flags: u64,
    flags: u64,
}

/// Reusable buffers, so a harvest does not allocate (and fault in) them every time.
pub(crate) struct Buffers<K> {
    keys: Vec<K>,
    values: Vec<FlowValue>,
    /// A harvest's keys with traffic (zeroed and kept) and without (deleted).
    pub(crate) active: Vec<K>,
    pub(crate) idle: Vec<K>,
    pub(crate) zeros: Vec<FlowValue>,
}

impl<K> Default for Buffers<K> {
    fn default() -> Self {
        Buffers { keys: Vec::new(), values: Vec::new(), active: Vec::new(), idle: Vec::new(), zeros: Vec::new() }
    }
}

/// How a drain ended.
#[derive(Debug)]
pub(crate) enum Drained {
    /// Every flow was passed on and the map is empty.
    All,
    /// The kernel refused the batch command before anything was removed (a kernel older than
    /// 5.6, or a map type without batch operations): the caller must walk the map per key.
    Refused(io::Error),
}

/// Passes every entry of the per-CPU hash map `map` (keys `K`, values [`FlowValue`]) with its
/// `nr_cpus` per-CPU values (the possible CPUs, as the kernel copies them) to `f`, leaving the
/// map as it is (`BPF_MAP_LOOKUP_BATCH`). The map must not be written meanwhile (the epoch flip
/// guarantees it).
pub(crate) fn read_all<K: aya::Pod + Default>(
    map: BorrowedFd<'_>,
    nr_cpus: usize,
    buf: &mut Buffers<K>,
    f: impl FnMut(&K, &[FlowValue]),
) -> io::Result<Drained> {
    walk(BPF_MAP_LOOKUP_BATCH, map, nr_cpus, buf, f)
}

/// Sets every per-CPU value of each of `keys` to zero (`BPF_MAP_UPDATE_BATCH`), keeping the
/// entries, so that their flows are counted again without a new insert.
pub(crate) fn zero<K: aya::Pod>(
    map: BorrowedFd<'_>,
    nr_cpus: usize,
    keys: &[K],
    zeros: &mut Vec<FlowValue>,
) -> io::Result<()> {
    for chunk in keys.chunks(BATCH) {
        zeros.resize(chunk.len() * nr_cpus.max(1), FlowValue::default());
        let mut attr = BatchAttr {
            in_batch: 0,
            out_batch: 0,
            keys: chunk.as_ptr() as u64,
            values: zeros.as_ptr() as u64,
            count: chunk.len() as u32,
            map_fd: map.as_raw_fd() as u32,
            elem_flags: 0,
            flags: 0,
        };
        // SAFETY: as in `walk`; the kernel only reads `count` keys and `count * nr_cpus` values
        // from the buffers, which hold that many.
        batch_call(BPF_MAP_UPDATE_BATCH, &mut attr)?;
    }
    Ok(())
}

/// Removes `keys` from `map` (`BPF_MAP_DELETE_BATCH`); keys already gone are skipped.
pub(crate) fn delete<K: aya::Pod>(map: BorrowedFd<'_>, keys: &[K]) -> io::Result<()> {
    let mut rest = keys;
    while !rest.is_empty() {
        let chunk = &rest[..rest.len().min(BATCH)];
        let mut attr = BatchAttr {
            in_batch: 0,
            out_batch: 0,
            keys: chunk.as_ptr() as u64,
            values: 0,
            count: chunk.len() as u32,
            map_fd: map.as_raw_fd() as u32,
            elem_flags: 0,
            flags: 0,
        };
        // SAFETY: as in `zero`; the kernel reads `count` keys.
        match batch_call(BPF_MAP_DELETE_BATCH, &mut attr) {
            Ok(()) => rest = &rest[chunk.len()..],
            // Stops at a missing key, reporting how many it deleted before it: skip that one.
            Err(e) if e.raw_os_error() == Some(libc::ENOENT) => {
                rest = &rest[(attr.count as usize + 1).min(rest.len())..];
            }
            Err(e) => return Err(e),
        }
    }
    Ok(())
}

/// bpf(cmd, attr) for the batch commands.
fn batch_call(cmd: libc::c_long, attr: &mut BatchAttr) -> io::Result<()> {
    // SAFETY: `attr` is a live, initialised `bpf_attr.batch` (repr(C), the UAPI layout) whose
    // size is passed; the callers guarantee its pointers' buffers as each command needs them.
    let r = unsafe {
        libc::syscall(libc::SYS_bpf, cmd, attr as *mut BatchAttr, std::mem::size_of::<BatchAttr>() as libc::c_uint)
    };
    if r < 0 {
        Err(io::Error::last_os_error())
    } else {
        Ok(())
    }
}

fn walk<K: aya::Pod + Default>(
    cmd: libc::c_long,
    map: BorrowedFd<'_>,
    nr_cpus: usize,
    buf: &mut Buffers<K>,
    mut f: impl FnMut(&K, &[FlowValue]),
) -> io::Result<Drained> {
    let nr_cpus = nr_cpus.max(1);
    let mut batch = buf.keys.len().clamp(BATCH, MAX_BATCH);
    // The walk's position: opaque to userspace (a bucket index for hash maps); libbpf advises a
    // buffer of the key's size.
    let mut position = [K::default(); 2];
    let mut started = false;
    loop {
        buf.keys.resize(batch, K::default());
        buf.values.resize(batch * nr_cpus, FlowValue::default());
        let (cursor, next) = position.split_at_mut(1);
        let mut attr = BatchAttr {
            in_batch: if started { cursor.as_ptr() as u64 } else { 0 },
            out_batch: next.as_mut_ptr() as u64,
            keys: buf.keys.as_mut_ptr() as u64,
            values: buf.values.as_mut_ptr() as u64,
            count: batch as u32,
            map_fd: map.as_raw_fd() as u32,
            elem_flags: 0,
            flags: 0,
        };
        // SAFETY: `attr` is a live, initialised `bpf_attr.batch` (repr(C), the UAPI layout); the
        // size passed is its own, so the kernel reads nothing beyond it and treats the rest of
        // the union as zero. Its pointers are to buffers that outlive the call: `keys` holds
        // `count` keys and `values` `count * nr_cpus` values of the map's key and value sizes
        // (the caller's map has exactly these types, and FlowValue's size is a multiple of 8, the
        // kernel's per-CPU stride), `in_batch`/`out_batch` each a key's size, more than the
        // kernel's position. The kernel writes only into those, and any bytes are valid for
        // K and FlowValue (both `aya::Pod`: plain integers and byte arrays).
        let r = unsafe {
            libc::syscall(
                libc::SYS_bpf,
                cmd,
                &mut attr as *mut BatchAttr,
                std::mem::size_of::<BatchAttr>() as libc::c_uint,
            )
        };
        let err = (r < 0).then(io::Error::last_os_error);
        let errno = err.as_ref().and_then(io::Error::raw_os_error);
        match errno {
            Some(libc::EINVAL | libc::EOPNOTSUPP | ENOTSUPP) if !started => {
                return Ok(Drained::Refused(err.unwrap_or_else(|| io::Error::other("refused"))))
            }
            Some(libc::ENOSPC) if batch < MAX_BATCH => {
                // Nothing was taken; retry from the same place with room for the big bucket.
                batch *= 2;
                cursor[0] = next[0];
                started = true;
                continue;
            }
            None | Some(libc::ENOENT) => {}
            Some(_) => return Err(err.unwrap_or_else(|| io::Error::other("bpf() failed"))),
        }
        // On ENOENT (the walk's end) the kernel still reports, and removed, the last keys.
        let filled = (attr.count as usize).min(batch);
        for (key, per_cpu) in buf.keys.iter().zip(buf.values.chunks_exact(nr_cpus)).take(filled) {
            f(key, per_cpu);
        }
        if errno == Some(libc::ENOENT) {
            return Ok(Drained::All);
        }
        if filled == 0 {
            // Success with nothing taken would loop forever; the kernel never does it.
            return Err(io::Error::other("batch map walk made no progress"));
        }
        cursor[0] = next[0];
        started = true;
    }
}
