//! Types shared by the XDP program (built for `bpfel-unknown-none`) and userspace.
//!
//! `no_std` so the kernel side can use them; plain `#[repr(C)]` so both sides agree on layout.
#![cfg_attr(not(test), no_std)]

/// Per-reason drop counters the XDP program keeps (indexes into a per-CPU array map).
#[repr(u32)]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum XdpCounter {
    Seen = 0,
    Aborted = 1,
    PreFiltered = 2,
    MapFullFallback = 3,
    Malformed = 4,
}

/// Number of [`XdpCounter`] slots.
pub const XDP_COUNTERS: u32 = 5;
