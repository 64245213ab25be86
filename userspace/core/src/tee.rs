//! pmacct's `tee_receivers` map: pools of receivers the tee plugin replicates datagrams to.
//!
//! One pool per line, pre_tag_map syntax (`key=value` tokens, `!`/`#` comments): `id` (a pool
//! number above 0) and `ip` (comma-separated `host:port` or `[v6]:port`) are required; `tag`
//! takes a pre_tag_filter-style list (`100,110-120,-150`) matched against the tag a
//! pre_tag_map gave the datagram; `balance-alg` is `rr`, `hash-tag`, `hash-agent` or
//! `hash-crc32` (without it every receiver of the pool gets a copy); `src_port` is the UDP
//! source port in non-transparent mode. `kafka_broker`, `kafka_topic` and `zmq_address` need
//! transports xacct does not build and are refused with file:line.
//!
//! pmacct means to refuse a pool id used twice but its check never fires, so maps with
//! repeated ids (Debian's own example has them) load as separate pools; xacct does the same.

use crate::tag::TagFilter;
use std::net::SocketAddr;
use std::path::Path;

#[derive(Debug, thiserror::Error)]
pub enum TeeMapError {
    #[error("{file}: {why}")]
    Io { file: String, why: String },
    #[error("{file}:{line}: {why}")]
    Syntax { file: String, line: usize, why: String },
}

/// A NetFlow/IPFIX or sFlow datagram as it arrived, for the tee plugin: its sender (address
/// and port, kept for transparent replication) and bytes.
#[derive(Debug, Clone)]
pub struct Datagram {
    pub src: SocketAddr,
    pub data: Vec<u8>,
}

/// How a pool picks receivers for a datagram.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Balance {
    /// Every receiver gets a copy.
    All,
    RoundRobin,
    /// tag % receivers.
    HashTag,
    /// The exporter's address hashed over the receivers.
    HashAgent,
    /// CRC-32 of the exporter's address over the receivers.
    HashCrc32,
}

#[derive(Debug, Clone)]
pub struct Pool {
    pub id: u32,
    pub receivers: Vec<SocketAddr>,
    pub tags: Option<TagFilter>,
    pub balance: Balance,
    pub src_port: Option<u16>,
    /// The line the pool was defined on.
    pub line: usize,
}

/// pmacct's defaults for `tee_max_receiver_pools` and `tee_max_receivers`.
pub const MAX_POOLS: usize = 128;
pub const MAX_RECEIVERS: usize = 32;

pub fn load(path: &Path, max_pools: usize, max_receivers: usize) -> Result<Vec<Pool>, TeeMapError> {
    let file = path.display().to_string();
    let text = std::fs::read_to_string(path).map_err(|e| TeeMapError::Io { file: file.clone(), why: e.to_string() })?;
    parse(&text, &file, max_pools, max_receivers)
}

/// Parses a receivers map; the first bad line is reported as `file:line: why`.
pub fn parse(text: &str, file: &str, max_pools: usize, max_receivers: usize) -> Result<Vec<Pool>, TeeMapError> {
    let mut pools: Vec<Pool> = Vec::new();
    for (n, raw) in text.lines().enumerate() {
        let line = n + 1;
        let err = |why: String| TeeMapError::Syntax { file: file.to_string(), line, why };
        let t = raw.trim();
        if t.is_empty() || t.starts_with('!') || t.starts_with('#') {
            continue;
        }
        let (mut id, mut receivers, mut tags, mut balance, mut src_port) = (None, None, None, Balance::All, None);
        for tok in t.split_whitespace() {
            let (k, v) = tok.split_once('=').ok_or_else(|| err(format!("'{tok}' is not key=value")))?;
            match k.to_ascii_lowercase().as_str() {
                "id" => {
                    id = Some(
                        v.parse::<u32>()
                            .ok()
                            .filter(|i| *i > 0)
                            .ok_or_else(|| err(format!("id={v}: a pool id is a number from 1 to 4294967295")))?,
                    )
                }
                "ip" => {
                    let list = v
                        .split(',')
                        .map(|r| {
                            crate::config::export::parse_receiver(r.trim()).map_err(|e| err(format!("ip={v}: {e}")))
                        })
                        .collect::<Result<Vec<_>, _>>()?;
                    if list.len() > max_receivers {
                        return Err(err(format!(
                            "{} receivers, more than tee_max_receivers ({max_receivers})",
                            list.len()
                        )));
                    }
                    receivers = Some(list);
                }
                "tag" => tags = Some(TagFilter::parse(v).map_err(|e| err(format!("tag={v}: {e}")))?),
                "balance-alg" => {
                    balance = match v {
                        "rr" => Balance::RoundRobin,
                        "hash-tag" => Balance::HashTag,
                        "hash-agent" => Balance::HashAgent,
                        "hash-crc32" => Balance::HashCrc32,
                        _ => {
                            return Err(err(format!(
                                "balance-alg={v}: expected rr, hash-tag, hash-agent or hash-crc32"
                            )))
                        }
                    }
                }
                "src_port" => {
                    src_port = Some(v.parse::<u16>().map_err(|_| err(format!("src_port={v}: not a UDP port")))?)
                }
                k @ ("kafka_broker" | "kafka_topic" | "zmq_address") => {
                    return Err(err(format!("{k}: replication to Kafka or ZeroMQ is not built")))
                }
                k => return Err(err(format!("unknown key '{k}' (id, ip, tag, balance-alg, src_port)"))),
            }
        }
        let id = id.ok_or_else(|| err("no id=".into()))?;
        let receivers = receivers.ok_or_else(|| err("no ip=".into()))?;
        if pools.len() >= max_pools {
            return Err(err(format!("more pools than tee_max_receiver_pools ({max_pools})")));
        }
        if pools.iter().any(|p| p.id == id) {
            tracing::warn!("{file}:{line}: pool id {id} used again; it is a pool of its own (as in pmacct)");
        }
        pools.push(Pool { id, receivers, tags, balance, src_port, line });
    }
    Ok(pools)
}

/// CRC-32 (IEEE, as zlib's crc32) of `b`, for `hash-crc32`.
pub fn crc32(b: &[u8]) -> u32 {
    let mut c = !0u32;
    for &x in b {
        c ^= u32::from(x);
        for _ in 0..8 {
            c = if c & 1 != 0 { (c >> 1) ^ 0xedb8_8320 } else { c >> 1 };
        }
    }
    !c
}

impl Pool {
    /// The receivers (indexes) a datagram from `agent` with `tag` goes to; `rr` is the pool's
    /// round-robin counter.
    pub fn pick(&self, agent: std::net::IpAddr, tag: u64, rr: &mut usize) -> std::ops::Range<usize> {
        let n = self.receivers.len();
        if n == 0 {
            return 0..0;
        }
        let one = |i: usize| i % n..i % n + 1;
        let bytes = |a: std::net::IpAddr| match a {
            std::net::IpAddr::V4(a) => a.octets().to_vec(),
            std::net::IpAddr::V6(a) => a.octets().to_vec(),
        };
        match self.balance {
            Balance::All => 0..n,
            Balance::RoundRobin => {
                let i = *rr;
                *rr = rr.wrapping_add(1);
                one(i)
            }
            Balance::HashTag => one((tag % n as u64) as usize),
            Balance::HashAgent => {
                // pmacct: the IPv4 address as a number (it has no IPv6 variant; xacct folds
                // the IPv6 address's bytes the same way).
                let h = bytes(agent).iter().fold(0u64, |h, b| h.wrapping_mul(256).wrapping_add(u64::from(*b)));
                one((h % n as u64) as usize)
            }
            Balance::HashCrc32 => one((crc32(&bytes(agent)) % n as u32) as usize),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn debian_example_shapes() {
        let text = "! c\nid=1\tip=192.168.1.1:2100\nid=2\tip=192.168.2.1:2100,192.168.2.2:2100\tbalance-alg=rr\n\
                    id=3\tip=[::1]:2100\t\ttag=-150\nid=4 ip=127.0.0.1:9 tag=105,110-120 src_port=2101\n";
        let p = parse(text, "m", MAX_POOLS, MAX_RECEIVERS).unwrap();
        assert_eq!(p.len(), 4);
        assert_eq!(p[1].receivers.len(), 2);
        assert_eq!(p[1].balance, Balance::RoundRobin);
        assert_eq!(p[2].receivers[0], "[::1]:2100".parse().unwrap());
        assert!(p[2].tags.as_ref().is_some_and(|t| t.takes(0) && !t.takes(150)));
        assert!(p[3].tags.as_ref().is_some_and(|t| t.takes(115) && !t.takes(121)));
        assert_eq!((p[3].src_port, p[3].line), (Some(2101), 5));
    }

    #[test]
    fn errors_name_the_line() {
        for (text, want) in [
            ("id=0 ip=1.2.3.4:5\n", "m:1: id=0"),
            ("\nip=1.2.3.4:5\n", "m:2: no id="),
            ("id=1\n", "m:1: no ip="),
            ("id=1 ip=1.2.3.4\n", "m:1: ip=1.2.3.4"),
            ("id=1 ip=1.2.3.4:5 balance-alg=x\n", "m:1: balance-alg=x"),
            ("id=1 ip=1.2.3.4:5 kafka_broker=k:9092\n", "kafka_broker"),
            ("id=1 ip=1.2.3.4:5 bogus=1\n", "unknown key"),
        ] {
            let e = parse(text, "m", MAX_POOLS, MAX_RECEIVERS).unwrap_err().to_string();
            assert!(e.contains(want), "{text:?}: {e}");
        }
        let many = "id=1 ip=1.1.1.1:1,1.1.1.2:1,1.1.1.3:1\n";
        assert!(parse(many, "m", MAX_POOLS, 2).is_err());
        assert!(parse("id=1 ip=1.1.1.1:1\nid=2 ip=1.1.1.1:1\n", "m", 1, 2).is_err());
    }

    #[test]
    fn balancing() {
        let p = parse("id=1 ip=10.0.0.1:1,10.0.0.2:1,10.0.0.3:1 balance-alg=rr\n", "m", 9, 9).unwrap().remove(0);
        let mut rr = 0;
        let a: std::net::IpAddr = "192.0.2.1".parse().unwrap();
        let seq: Vec<usize> = (0..4).map(|_| p.pick(a, 0, &mut rr).start).collect();
        assert_eq!(seq, [0, 1, 2, 0]);
        let p = Pool { balance: Balance::HashTag, ..p };
        assert_eq!(p.pick(a, 7, &mut rr), 1..2);
        let p = Pool { balance: Balance::All, ..p };
        assert_eq!(p.pick(a, 7, &mut rr), 0..3);
        // zlib's crc32("123456789") is 0xcbf43926.
        assert_eq!(crc32(b"123456789"), 0xcbf4_3926);
    }
}
