//! Draining a per-CPU flow map with `BPF_MAP_LOOKUP_AND_DELETE_BATCH` (Linux 5.6+): thousands of
//! flows per bpf() call instead of three calls per flow (get_next_key, lookup, delete), which
//! made a harvest of 100k flows cost a third of a second of CPU. Hand-written because aya 0.14
//! has no batch map operations; every unsafe block of it is in this module.

use std::io;
use std::os::fd::{AsRawFd, BorrowedFd};

use crate::FlowValue;

const BPF_MAP_LOOKUP_AND_DELETE_BATCH: libc::c_long = 25;
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
}

impl<K> Default for Buffers<K> {
    fn default() -> Self {
        Buffers { keys: Vec::new(), values: Vec::new() }
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

/// Removes every entry of the per-CPU hash map `map` (keys `K`, values [`FlowValue`])
/// and passes each key with its `nr_cpus` per-CPU values (the possible CPUs, as the kernel
/// copies them) to `f`. The map must not be written meanwhile (the epoch flip guarantees it);
/// otherwise an entry added behind the walk would stay.
pub(crate) fn drain<K: aya::Pod + Default>(
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
                BPF_MAP_LOOKUP_AND_DELETE_BATCH,
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
            return Err(io::Error::other("BPF_MAP_LOOKUP_AND_DELETE_BATCH made no progress"));
        }
        cursor[0] = next[0];
        started = true;
    }
}
