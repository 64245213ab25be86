//! Synthetic traffic for tests, demos and capacity runs: frames built with `etherparse`,
//! written to pcap files with libpcap itself (so any pcap reader, pmacctd included, reads them).

pub mod afxdp_tx;
pub mod flowgen;
pub mod testrun;
pub mod traffic;
pub mod trafficgen;
