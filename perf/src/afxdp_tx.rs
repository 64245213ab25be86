//! A fast frame sender for capacity runs: one AF_XDP socket transmitting on queue 0 of an
//! interface, in copy mode (veth). pcap's `sendpacket` costs a system call per frame and tops
//! out near 0.4 Mpps here; AF_XDP transmits a batch per wake-up.
//!
//! `unsafe` is confined to xsk-rs's ring and UMEM calls, each with the reason it holds.

use anyhow::{anyhow, Context, Result};
use std::io::Write;
use xsk_rs::config::{BindFlags, FrameSize, Interface, LibxdpFlags, QueueSize, SocketConfig, UmemConfig, XdpFlags};
use xsk_rs::{CompQueue, FrameDesc, Socket, TxQueue, Umem};

const FRAMES: u32 = 4096;
const BATCH: usize = 64;

pub struct AfXdpSender {
    tx: TxQueue,
    comp: CompQueue,
    umem: Umem,
    free: Vec<FrameDesc>,
    scratch: Vec<FrameDesc>,
    in_flight: usize,
}

impl AfXdpSender {
    pub fn open(iface: &str) -> Result<AfXdpSender> {
        let q = |n| QueueSize::new(n).map_err(|e| anyhow!("{e}"));
        let umem_cfg = UmemConfig::builder()
            .frame_size(FrameSize::new(2048).map_err(|e| anyhow!("{e}"))?)
            .fill_queue_size(q(64)?)
            .comp_queue_size(q(FRAMES)?)
            .build()
            .map_err(|e| anyhow!("{e}"))?;
        let (umem, descs) = Umem::new(umem_cfg, FRAMES.try_into().expect("non-zero"), false).context("UMEM")?;
        let sock_cfg = SocketConfig::builder()
            .rx_queue_size(q(64)?)
            .tx_queue_size(q(FRAMES)?)
            .libxdp_flags(LibxdpFlags::XSK_LIBXDP_FLAGS_INHIBIT_PROG_LOAD)
            .xdp_flags(XdpFlags::empty())
            .bind_flags(BindFlags::XDP_COPY | BindFlags::XDP_USE_NEED_WAKEUP)
            .build();
        let name: Interface = iface.parse().map_err(|_| anyhow!("bad interface name {iface}"))?;
        // SAFETY: the UMEM is fresh and used by this socket only.
        let (tx, _rx, rings) = unsafe { Socket::new(sock_cfg, &umem, &name, 0) }.context("AF_XDP socket")?;
        let (_fill, comp) = rings.ok_or_else(|| anyhow!("socket came without rings"))?;
        Ok(AfXdpSender { tx, comp, umem, scratch: descs.clone(), free: descs, in_flight: 0 })
    }

    fn reclaim(&mut self) {
        // SAFETY: `scratch` is overwritten with descriptors of this socket's own UMEM that the
        // kernel has finished transmitting.
        let n = unsafe { self.comp.consume(&mut self.scratch) };
        self.free.extend_from_slice(&self.scratch[..n]);
        self.in_flight -= n.min(self.in_flight);
    }

    /// Sends every frame of `frames` once, in order; returns when the kernel has taken them all.
    pub fn send_all(&mut self, frames: &[Vec<u8>]) -> Result<()> {
        let mut next = 0;
        let mut batch: Vec<FrameDesc> = Vec::with_capacity(BATCH);
        while next < frames.len() {
            self.reclaim();
            batch.clear();
            while batch.len() < BATCH && next + batch.len() < frames.len() {
                let Some(mut d) = self.free.pop() else { break };
                // SAFETY: `d` is off every ring (free), so neither the kernel nor another
                // descriptor refers to its frame while we write it.
                let mut data = unsafe { self.umem.data_mut(&mut d) };
                let mut cur = data.cursor();
                cur.set_pos(0); // a recycled descriptor still carries its last length
                cur.write_all(&frames[next + batch.len()])?;
                batch.push(d);
            }
            if batch.is_empty() {
                self.tx.wakeup().ok();
                continue;
            }
            // SAFETY: the descriptors are this UMEM's, written above and owned by us.
            let n = unsafe { self.tx.produce_and_wakeup(&batch) }.context("transmit")?;
            if n == 0 {
                self.free.extend_from_slice(&batch);
            } else {
                next += batch.len();
                self.in_flight += batch.len();
            }
        }
        while self.in_flight > 0 {
            self.tx.wakeup().ok();
            self.reclaim();
        }
        Ok(())
    }
}
