//! The per-CPU flow tables (see `xacct_ebpf_common::TableSlot`), read and reset through a
//! shared memory mapping of their arrays: the harvest visits the slots each CPU noted as taken,
//! copies them out and zeroes them with plain memory accesses, no system call and no copy of
//! the (mostly empty) rest of the table. aya 0.14 does not map arrays, so the mapping is made
//! here; every unsafe block of it is in this module.

use std::io;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd};
use std::ptr::NonNull;
use std::sync::atomic::{fence, Ordering};

use aya::maps::{Array, Map, MapData};
use aya::Ebpf;
use xacct_ebpf_common::TableSlot;

use crate::XdpError;

/// Slots prefetched ahead of the one being drained.
const PREFETCH_AHEAD: usize = 8;

/// Asks the CPU to start loading the cache line at `p` (a hint: no fault, no effect on
/// results). std has no portable prefetch; elsewhere than x86_64 this is a no-op.
#[inline(always)]
fn prefetch<T>(p: *const T) {
    #[cfg(target_arch = "x86_64")]
    // SAFETY: PREFETCHT0 is in SSE, which every x86_64 CPU has; a prefetch never faults, even
    // for an address outside any mapping.
    unsafe {
        core::arch::x86_64::_mm_prefetch::<{ core::arch::x86_64::_MM_HINT_T0 }>(p.cast::<i8>())
    };
    #[cfg(not(target_arch = "x86_64"))]
    let _ = p;
}

/// A shared, writable mapping of a `BPF_F_MMAPABLE` array's values.
struct Mapped {
    ptr: NonNull<u8>,
    len: usize,
}

// SAFETY: the mapping is owned by this value alone and only reached through `&mut` methods of
// `Tables`, so moving it to another thread (the harvester's) cannot create shared access.
unsafe impl Send for Mapped {}

impl Mapped {
    fn new(fd: BorrowedFd<'_>, bytes: usize) -> io::Result<Mapped> {
        // SAFETY: sysconf has no preconditions.
        let page = usize::try_from(unsafe { libc::sysconf(libc::_SC_PAGESIZE) }).unwrap_or(4096).max(1);
        let len = bytes.div_ceil(page) * page;
        // SAFETY: a fresh shared mapping of the whole value area of an mmapable array (the
        // kernel refuses a length beyond it); nothing else in this process refers to it.
        let p = unsafe {
            libc::mmap(
                std::ptr::null_mut(),
                len,
                libc::PROT_READ | libc::PROT_WRITE,
                libc::MAP_SHARED,
                fd.as_raw_fd(),
                0,
            )
        };
        if p == libc::MAP_FAILED {
            return Err(io::Error::last_os_error());
        }
        Ok(Mapped { ptr: NonNull::new(p.cast()).ok_or_else(|| io::Error::other("mmap returned null"))?, len })
    }
}

impl Drop for Mapped {
    fn drop(&mut self) {
        // SAFETY: the mapping made in `new`, unmapped once.
        unsafe { libc::munmap(self.ptr.as_ptr().cast(), self.len) };
    }
}

/// The table of one slot kind, a region per CPU and epoch (region `2 * cpu + epoch`), with
/// the regions' lists of taken slots.
pub(crate) struct Tables<S> {
    slots: Mapped,
    used: Mapped,
    /// Slots per region.
    per_cpu: u32,
    regions: usize,
    /// The slot numbers of the region being drained, sorted (kept for its allocation).
    order: Vec<u32>,
    _slot: std::marker::PhantomData<S>,
}

impl<S: TableSlot + aya::Pod + Default> Tables<S> {
    /// Maps the arrays `table` and `used` of `ebpf`, sized for `regions` regions of `per_cpu`
    /// slots.
    pub(crate) fn open(
        ebpf: &Ebpf,
        table: &'static str,
        used: &'static str,
        per_cpu: u32,
        regions: usize,
    ) -> Result<Tables<S>, XdpError> {
        let fd = |name: &'static str| -> Result<BorrowedFd<'_>, XdpError> {
            let m = ebpf.map(name).ok_or(XdpError::Missing(name))?;
            let Map::Array(data) = m else { return Err(XdpError::Missing(name)) };
            Ok(data.fd().as_fd())
        };
        // Checks the arrays' value sizes against the types.
        Array::<&MapData, S>::try_from(ebpf.map(table).ok_or(XdpError::Missing(table))?)?;
        Array::<&MapData, u64>::try_from(ebpf.map(used).ok_or(XdpError::Missing(used))?)?;
        let n = per_cpu as usize * regions;
        let mapped = |name, bytes| {
            Mapped::new(fd(name)?, bytes).map_err(|source| XdpError::Syscall { what: "mapping a flow table", source })
        };
        Ok(Tables {
            slots: mapped(table, n * std::mem::size_of::<S>())?,
            used: mapped(used, (per_cpu as usize + 1) * regions * 8)?,
            per_cpu,
            regions,
            order: Vec::new(),
            _slot: std::marker::PhantomData,
        })
    }

    fn list(&self, region: usize) -> *mut u64 {
        // SAFETY: the region's list starts inside the mapping (`region < regions`, see `open`).
        unsafe { self.used.ptr.as_ptr().cast::<u64>().add(region * (self.per_cpu as usize + 1)) }
    }

    /// Passes every slot taken in `epoch` to `emit` (a flow seen on two CPUs has a slot on
    /// each) and frees it. Only for the epoch the program no longer counts in, after the RCU
    /// grace period that ends the last program run that could (see the crate doc): nothing
    /// writes those regions meanwhile, and the program's next writes to them follow the next
    /// epoch flip, a system call after this returns.
    pub(crate) fn drain(&mut self, epoch: u32, mut emit: impl FnMut(&S)) {
        fence(Ordering::SeqCst);
        let base = self.slots.ptr.as_ptr().cast::<S>();
        for region in (epoch as usize & 1..self.regions).step_by(2) {
            let list = self.list(region);
            // SAFETY: `list` and the `taken` entries after it lie in this region's list (the
            // program never notes more than `per_cpu`, and the count is clamped to that), and
            // each slot number is masked into this region of the table. Volatile: the memory is
            // shared with the kernel.
            unsafe {
                let taken = std::ptr::read_volatile(list).min(u64::from(self.per_cpu)) as usize;
                self.order.clear();
                self.order.extend(
                    (0..taken).map(|i| (std::ptr::read_volatile(list.add(1 + i)) & u64::from(self.per_cpu - 1)) as u32),
                );
                // The list is in the order flows arrived, all over the region: visited in that
                // order, nearly every slot was a cache and TLB miss (4 KB pages). In address
                // order the prefetcher and each page's TLB entry serve the slots near each other.
                self.order.sort_unstable();
                let region_base = base.add(region * self.per_cpu as usize);
                for (i, &slot) in self.order.iter().enumerate() {
                    // The slots were last written by another CPU's program: each read is a miss
                    // that the loop would wait for one at a time. Prefetching a few slots ahead
                    // keeps several in flight.
                    if let Some(&ahead) = self.order.get(i + PREFETCH_AHEAD) {
                        prefetch(region_base.add(ahead as usize));
                    }
                    let p = region_base.add(slot as usize);
                    let s = std::ptr::read_volatile(p);
                    if !s.is_free() {
                        emit(&s);
                    }
                    std::ptr::write_volatile(p, S::default());
                }
                std::ptr::write_volatile(list, 0);
            }
        }
        fence(Ordering::SeqCst);
    }

    /// Slots taken, every region's (a diagnostic).
    pub(crate) fn in_use(&self) -> usize {
        // SAFETY: as in `drain`, reading the counts only.
        (0..self.regions)
            .map(|r| unsafe { std::ptr::read_volatile(self.list(r)) }.min(u64::from(self.per_cpu)) as usize)
            .sum()
    }
}
