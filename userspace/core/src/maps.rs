//! `networks_file` and `ports_file`: the maps that turn addresses into nets/masks/ASes and
//! keep only interesting ports.
//!
//! pmacctd 1.7.7 behaviour these follow (checked by running it):
//! - A host in no listed net gets net `0.0.0.0` (IPv4) or `::` (IPv6), mask 0, AS 0.
//! - When a prefix is listed twice, the first line wins.
//! - ASes come from the file only with `pmacctd_as: file` (see
//!   [`crate::config::GlobalConfig::as_from_networks_file`]); nets and masks whenever a
//!   networks_file is set.
//! - pmacctd refuses to start when a plugin aggregates on nets, masks or ASes without a
//!   networks_file, and so does our config parser; [`Networks::resolve_none`] exists for
//!   callers that resolve records without any map.
//! - pmacctd's IPv6 lookups are broken (a file with only IPv6 prefixes matches nothing, and
//!   with IPv4 prefixes present any IPv6 address matches some IPv6 prefix, not the longest);
//!   we do a real longest-prefix match for IPv6 too.
//! - ports_file: the source and the destination port are each zeroed when not listed.
//!
//! [`NetResolver`] applies the `*_net`/`*_as` methods (pmacct's `nfacctd_net`, `sfacctd_as`,
//! `pmacctd_net`, …) a record is stamped with; what nfacctd 1.7.7 does, checked by running it:
//! - `netflow`/`sflow`: the record's own masks and ASes; net = address masked with the mask.
//! - `file`: the networks_file's longest match (mask 0, AS 0 when none matches).
//! - `mask`: `networks_mask` for every address.
//! - `longest`: per address, the file's prefix when it is longer than the record's mask (the
//!   record's on a tie); the file's AS when the file's prefix is at least as long as the mask
//!   the net ended with (so on a tie the file's AS wins, and an address the file does not know
//!   gets AS 0 when the record's mask is 0 too). `networks_file_no_lpm`: the file wins wherever
//!   it matched with a non-zero mask.
//! - without `*_net`, nfacctd/sfacctd use the record even when a networks_file is set;
//!   pmacctd uses the networks_file, else `networks_mask` (both set: the file wins).
//! - `networks_no_mask_if_zero`: a net of mask 0 is the whole address instead of `0.0.0.0`.
//! - `networks_file_filter`: an address the file does not know is zeroed, and so is its net;
//!   only in a family the file lists prefixes of (nfacctd leaves IPv6 addresses alone when the
//!   file has IPv4 prefixes only).

use crate::record::{Addr, Record};
use std::net::IpAddr;
use std::path::Path;
use std::sync::Arc;

/// Where a record's nets and masks come from (`*_net`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum NetMethod {
    /// pmacctd's default: the plugin's networks_file, else its networks_mask, else none.
    #[default]
    Compat,
    File,
    Mask,
    /// The masks the NetFlow record or sFlow sample carries (`netflow`, `sflow`).
    Record,
    Longest,
}

/// Where a record's ASes come from (`*_as`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum AsMethod {
    /// pmacctd without `pmacctd_as`: ASes stay 0.
    #[default]
    None,
    File,
    Record,
    Longest,
}

/// The `*_net` and `*_as` methods of one source, stamped on its records.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Methods {
    pub net: NetMethod,
    pub asn: AsMethod,
}

impl Methods {
    /// pmacctd's defaults.
    pub const PMACCTD: Methods = Methods { net: NetMethod::Compat, asn: AsMethod::None };
    /// nfacctd's and sfacctd's defaults (`netflow`/`sflow`).
    pub const COLLECTOR: Methods = Methods { net: NetMethod::Record, asn: AsMethod::Record };
}

/// One plugin's means of resolving nets and ASes: its networks_file and networks_* keys.
#[derive(Debug, Clone, Default)]
pub struct NetResolver {
    pub networks: Option<Arc<Networks>>,
    /// `networks_mask`.
    pub mask: Option<u8>,
    /// `networks_file_no_lpm`.
    pub no_lpm: bool,
    /// `networks_no_mask_if_zero`.
    pub no_mask_if_zero: bool,
    /// `networks_file_filter`.
    pub filter: bool,
}

impl NetResolver {
    /// Fills src/dst net, mask and AS the way `m` says, from what the record carries and this
    /// plugin's maps.
    #[inline]
    pub fn resolve(&self, r: &mut Record, m: Methods) {
        let (ip, net, mask, asn) = self.side(r.src_ip, r.src_mask, r.src_as, m);
        (r.src_ip, r.src_net, r.src_mask, r.src_as) = (ip, net, mask, asn);
        let (ip, net, mask, asn) = self.side(r.dst_ip, r.dst_mask, r.dst_as, m);
        (r.dst_ip, r.dst_net, r.dst_mask, r.dst_as) = (ip, net, mask, asn);
        r.nets_resolved = true;
    }

    /// One address: (host, net, mask, AS).
    #[inline]
    fn side(&self, ip: Addr, rec_mask: u8, rec_as: u32, m: Methods) -> (Addr, Addr, u8, u32) {
        let found = self.networks.as_deref().and_then(|n| n.lookup(ip));
        let matched = found.is_some();
        let (fmask, fas) = found.map_or((0, 0), |(_, len, info)| (len, info.asn));
        let filtered = self.filter && !matched && self.networks.as_deref().is_some_and(|n| n.lists_family_of(ip));
        let host = if filtered { ip.masked(0) } else { ip };
        let have_file = self.networks.is_some();
        let mask = match m.net {
            NetMethod::Compat if have_file => fmask,
            NetMethod::Compat => self.mask.unwrap_or(0),
            NetMethod::File => fmask,
            NetMethod::Mask => self.mask.unwrap_or(0),
            NetMethod::Record => rec_mask,
            NetMethod::Longest if !have_file => rec_mask,
            NetMethod::Longest if filtered => 0,
            NetMethod::Longest if self.no_lpm => {
                if fmask > 0 {
                    fmask
                } else {
                    rec_mask
                }
            }
            NetMethod::Longest => fmask.max(rec_mask),
        };
        let net = if mask == 0 && self.no_mask_if_zero { host } else { host.masked(mask) };
        let asn = match m.asn {
            AsMethod::None => 0,
            AsMethod::File => fas,
            AsMethod::Record => rec_as,
            AsMethod::Longest if !have_file => rec_as,
            AsMethod::Longest if self.no_lpm => {
                if fmask > 0 {
                    fas
                } else {
                    rec_as
                }
            }
            AsMethod::Longest => {
                // Against the mask the net ended with (the record's when nets are not
                // resolved from the file), as pmacct compares.
                let against = match m.net {
                    NetMethod::Longest | NetMethod::File | NetMethod::Mask => mask,
                    NetMethod::Compat if have_file || self.mask.is_some() => mask,
                    _ => rec_mask,
                };
                if fmask >= against {
                    fas
                } else {
                    rec_as
                }
            }
        };
        (host, net, mask, asn)
    }
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum MapError {
    #[error("{file}: {why}")]
    Io { file: String, why: String },
    #[error("{file}:{line}: {why}")]
    Syntax { file: String, line: usize, why: String },
}

fn read(path: &Path) -> Result<String, MapError> {
    std::fs::read_to_string(path).map_err(|e| MapError::Io { file: path.display().to_string(), why: e.to_string() })
}

/// Non-comment lines with their 1-based numbers. `!` starts a comment line, as in pmacct.
fn lines(text: &str) -> impl Iterator<Item = (usize, &str)> {
    text.lines().enumerate().map(|(i, l)| (i + 1, l.trim())).filter(|(_, l)| !l.is_empty() && !l.starts_with('!'))
}

/// What a networks_file line says about its prefix besides the prefix itself.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct NetInfo {
    /// Origin AS (0 when not given).
    pub asn: u32,
    /// Peer AS (`<peer_as>_<as>`; 0 when not given).
    pub peer_as: u32,
    /// BGP next-hop (`None` when not given).
    pub nexthop: Addr,
}

/// Longest-prefix match over one address family, as one hash map per prefix length present,
/// probed from the longest length down.
///
/// Hand-written rather than a trie crate because networks files list tens to thousands of
/// prefixes over a handful of distinct lengths: a lookup is then a few masked hash probes on
/// integer keys (no pointer chasing), the maps are hashbrown's which the crate already uses,
/// and no new dependency is needed.
#[derive(Debug, Clone, Default)]
struct Lpm<K> {
    /// Distinct prefix lengths, longest first, each with its prefixes (network bits only).
    tables: Vec<(u8, hashbrown::HashMap<K, NetInfo>)>,
}

trait Bits: Copy + Eq + std::hash::Hash {
    fn mask(self, len: u8) -> Self;
}

impl Bits for u32 {
    fn mask(self, len: u8) -> u32 {
        self & u32::MAX.checked_shl(u32::from(32 - len.min(32))).unwrap_or(0)
    }
}

impl Bits for u128 {
    fn mask(self, len: u8) -> u128 {
        self & u128::MAX.checked_shl(u32::from(128 - len.min(128))).unwrap_or(0)
    }
}

impl<K: Bits> Lpm<K> {
    /// Keeps the first entry for a prefix, as pmacctd does.
    fn insert(&mut self, net: K, len: u8, info: NetInfo) {
        let key = net.mask(len);
        let pos = match self.tables.iter().position(|(l, _)| *l <= len) {
            Some(p) if self.tables.get(p).is_some_and(|(l, _)| *l == len) => p,
            Some(p) => {
                self.tables.insert(p, (len, hashbrown::HashMap::new()));
                p
            }
            None => {
                self.tables.push((len, hashbrown::HashMap::new()));
                self.tables.len() - 1
            }
        };
        if let Some((_, map)) = self.tables.get_mut(pos) {
            map.entry(key).or_insert(info);
        }
    }

    #[inline]
    fn lookup(&self, addr: K) -> Option<(u8, &NetInfo)> {
        self.tables.iter().find_map(|(len, map)| map.get(&addr.mask(*len)).map(|i| (*len, i)))
    }

    fn len(&self) -> usize {
        self.tables.iter().map(|(_, m)| m.len()).sum()
    }
}

/// A parsed `networks_file`.
#[derive(Debug, Clone, Default)]
pub struct Networks {
    v4: Lpm<u32>,
    v6: Lpm<u128>,
}

impl Networks {
    /// Parses lines `[<nexthop>,][[<peer_as>_]<as>,]<net>/<len>`; `!` starts a comment line.
    pub fn parse(text: &str, file_name: &str) -> Result<Networks, MapError> {
        let mut n = Networks::default();
        for (line, l) in lines(text) {
            let err = |why: String| MapError::Syntax { file: file_name.to_string(), line, why };
            let fields: Vec<&str> = l.split(',').map(str::trim).collect();
            let (nexthop, as_field, net) = match fields.as_slice() {
                [net] => (None, None, *net),
                // Two fields: the first is a next-hop if it is an address, else an AS.
                [first, net] if first.parse::<IpAddr>().is_ok() => (Some(*first), None, *net),
                [asf, net] => (None, Some(*asf), *net),
                [nh, asf, net] => (Some(*nh), Some(*asf), *net),
                _ => return Err(err(format!("'{l}' is not [<nexthop>,][[<peer_as>_]<as>,]<net>/<len>"))),
            };
            let nexthop = match nexthop {
                Some(s) => Addr::from(s.parse::<IpAddr>().map_err(|_| err(format!("bad next-hop address '{s}'")))?),
                None => Addr::None,
            };
            let parse_as = |s: &str| s.parse::<u32>().map_err(|_| err(format!("bad AS number '{s}'")));
            let (peer_as, asn) = match as_field {
                Some(f) => match f.split_once('_') {
                    Some((p, a)) => (parse_as(p)?, parse_as(a)?),
                    None => (0, parse_as(f)?),
                },
                None => (0, 0),
            };
            let (addr, len) = net.split_once('/').ok_or_else(|| err(format!("'{net}' is not <net>/<len>")))?;
            let addr: IpAddr = addr.trim().parse().map_err(|_| err(format!("bad network address '{addr}'")))?;
            let len: u8 = len.trim().parse().map_err(|_| err(format!("bad prefix length '{len}'")))?;
            let info = NetInfo { asn, peer_as, nexthop };
            match addr {
                IpAddr::V4(a) if len <= 32 => n.v4.insert(u32::from(a), len, info),
                IpAddr::V6(a) if len <= 128 => n.v6.insert(u128::from(a), len, info),
                _ => return Err(err(format!("prefix length {len} is too long for {addr}"))),
            }
        }
        Ok(n)
    }

    pub fn load(path: &Path) -> Result<Networks, MapError> {
        Networks::parse(&read(path)?, &path.display().to_string())
    }

    /// Whether the file lists any prefix of `a`'s family.
    pub fn lists_family_of(&self, a: Addr) -> bool {
        match a {
            Addr::None => false,
            Addr::V4(_) => self.v4.len() > 0,
            Addr::V6(_) => self.v6.len() > 0,
        }
    }

    /// Number of distinct prefixes.
    pub fn len(&self) -> usize {
        self.v4.len() + self.v6.len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Longest-prefix match of one address: (network address, mask length, line info).
    pub fn lookup(&self, a: Addr) -> Option<(Addr, u8, NetInfo)> {
        match a {
            Addr::None => None,
            Addr::V4(b) => self.v4.lookup(u32::from_be_bytes(b)).map(|(len, i)| (a.masked(len), len, *i)),
            Addr::V6(b) => self.v6.lookup(u128::from_be_bytes(b)).map(|(len, i)| (a.masked(len), len, *i)),
        }
    }

    /// Fills src/dst net, mask and AS by longest-prefix match; unmatched hosts get the zero
    /// address of their family, mask 0, AS 0 (as pmacctd prints them).
    #[inline]
    pub fn resolve(&self, r: &mut Record) {
        (r.src_net, r.src_mask, r.src_as) = self.resolve_one(r.src_ip);
        (r.dst_net, r.dst_mask, r.dst_as) = self.resolve_one(r.dst_ip);
        r.nets_resolved = true;
    }

    #[inline]
    fn resolve_one(&self, a: Addr) -> (Addr, u8, u32) {
        match self.lookup(a) {
            Some((net, len, info)) => (net, len, info.asn),
            None => unmatched(a),
        }
    }

    /// Resolution without any networks_file: every host is in no net.
    pub fn resolve_none(r: &mut Record) {
        (r.src_net, r.src_mask, r.src_as) = unmatched(r.src_ip);
        (r.dst_net, r.dst_mask, r.dst_as) = unmatched(r.dst_ip);
        r.nets_resolved = true;
    }
}

fn unmatched(a: Addr) -> (Addr, u8, u32) {
    (a.masked(0), 0, 0)
}

/// A parsed `nfacctd_allow_file` / `sfacctd_allow_file`: addresses and prefixes of the
/// exporters a collector takes datagrams from, one a line (`!` starts a comment line). An empty
/// file allows no one, as in pmacct.
#[derive(Debug, Clone, Default)]
pub struct AllowList {
    v4: Lpm<u32>,
    v6: Lpm<u128>,
}

impl AllowList {
    pub fn parse(text: &str, file_name: &str) -> Result<AllowList, MapError> {
        let mut a = AllowList::default();
        for (line, l) in lines(text) {
            let err = |why: String| MapError::Syntax { file: file_name.to_string(), line, why };
            let (addr, len) = match l.split_once('/') {
                Some((addr, len)) => (addr.trim(), Some(len.trim())),
                None => (l, None),
            };
            let addr: IpAddr = addr.parse().map_err(|_| err(format!("'{l}' is not an address or prefix")))?;
            let max = if addr.is_ipv4() { 32 } else { 128 };
            let len = match len {
                Some(s) => {
                    s.parse::<u8>().ok().filter(|n| *n <= max).ok_or_else(|| err(format!("bad prefix length '{s}'")))?
                }
                None => max,
            };
            match addr {
                IpAddr::V4(v) => a.v4.insert(u32::from(v), len, NetInfo::default()),
                IpAddr::V6(v) => a.v6.insert(u128::from(v), len, NetInfo::default()),
            }
        }
        Ok(a)
    }

    pub fn load(path: &Path) -> Result<AllowList, MapError> {
        AllowList::parse(&read(path)?, &path.display().to_string())
    }

    /// Whether datagrams from `ip` are taken.
    pub fn allows(&self, ip: IpAddr) -> bool {
        match ip {
            IpAddr::V4(v) => self.v4.lookup(u32::from(v)).is_some(),
            IpAddr::V6(v) => self.v6.lookup(u128::from(v)).is_some(),
        }
    }
}

/// A parsed `ports_file`: a 65536-bit set (8 KiB), so that a lookup is one bit test.
#[derive(Debug, Clone)]
pub struct Ports {
    bits: Vec<u64>,
}

impl Ports {
    /// One port a line; `!` starts a comment line.
    pub fn parse(text: &str, file_name: &str) -> Result<Ports, MapError> {
        let mut bits = vec![0u64; 1024];
        for (line, l) in lines(text) {
            let port: u16 = l.parse().map_err(|_| MapError::Syntax {
                file: file_name.to_string(),
                line,
                why: format!("'{l}' is not a port number (0-65535)"),
            })?;
            if let Some(w) = bits.get_mut(usize::from(port >> 6)) {
                *w |= 1 << (port & 63);
            }
        }
        Ok(Ports { bits })
    }

    pub fn load(path: &Path) -> Result<Ports, MapError> {
        Ports::parse(&read(path)?, &path.display().to_string())
    }

    #[inline]
    pub fn contains(&self, port: u16) -> bool {
        self.bits.get(usize::from(port >> 6)).is_some_and(|w| w & (1 << (port & 63)) != 0)
    }

    /// Zeroes the source and the destination port, each when not listed.
    #[inline]
    pub fn apply(&self, r: &mut Record) {
        if !self.contains(r.src_port) {
            r.src_port = 0;
        }
        if !self.contains(r.dst_port) {
            r.dst_port = 0;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn a(s: &str) -> Addr {
        Addr::from(s.parse::<IpAddr>().unwrap())
    }

    fn rec(src: &str, dst: &str) -> Record {
        Record { src_ip: a(src), dst_ip: a(dst), ..Record::default() }
    }

    const NETS: &str = "! test\n\
        10.0.0.0/8\n\
        65001,10.0.1.0/24\n\
        1.2.3.4,65002,192.168.0.0/16\n\
        \n\
        65100_65003,2001:db8::/32\n\
        65004, 2001:db8:1::/48\n\
        65005,10.0.1.0/24\n";

    #[test]
    fn lpm_v4_matches_pmacctd() {
        let n = Networks::parse(NETS, "nets.lst").unwrap();
        assert_eq!(n.len(), 5);
        let mut r = rec("10.0.1.5", "192.168.1.1");
        n.resolve(&mut r);
        assert!(r.nets_resolved);
        assert_eq!((r.src_net, r.src_mask, r.src_as), (a("10.0.1.0"), 24, 65001), "first duplicate wins");
        assert_eq!((r.dst_net, r.dst_mask, r.dst_as), (a("192.168.0.0"), 16, 65002));
        let mut r = rec("10.1.2.3", "8.8.8.8");
        n.resolve(&mut r);
        assert_eq!((r.src_net, r.src_mask, r.src_as), (a("10.0.0.0"), 8, 0));
        assert_eq!((r.dst_net, r.dst_mask, r.dst_as), (a("0.0.0.0"), 0, 0));
        assert_eq!(n.lookup(a("192.168.3.3")).map(|m| m.2.nexthop), Some(a("1.2.3.4")));
    }

    #[test]
    fn lpm_v6_is_longest_match() {
        let n = Networks::parse(NETS, "nets.lst").unwrap();
        let mut r = rec("2001:db8::1", "2001:db8:1::5");
        n.resolve(&mut r);
        assert_eq!((r.src_net, r.src_mask, r.src_as), (a("2001:db8::"), 32, 65003));
        assert_eq!((r.dst_net, r.dst_mask, r.dst_as), (a("2001:db8:1::"), 48, 65004));
        assert_eq!(n.lookup(a("2001:db8::1")).map(|m| m.2.peer_as), Some(65100));
        let mut r = rec("2001:db9::1", "::1");
        n.resolve(&mut r);
        assert_eq!((r.src_net, r.src_mask, r.src_as), (a("::"), 0, 0));
        assert_eq!(r.dst_net.to_string(), "::");
        // An IPv6-only file works too.
        let n = Networks::parse("2001:db8::/32\n", "v6.lst").unwrap();
        assert_eq!(n.lookup(a("2001:db8:ffff::1")).map(|m| m.1), Some(32));
    }

    #[test]
    fn default_route_and_host_routes() {
        let n = Networks::parse("0.0.0.0/0\n7,10.0.0.9/32\n10.0.0.0/30\n", "x").unwrap();
        assert_eq!(n.lookup(a("10.0.0.9")).map(|m| (m.0, m.1, m.2.asn)), Some((a("10.0.0.9"), 32, 7)));
        assert_eq!(n.lookup(a("10.0.0.3")).map(|m| m.1), Some(30));
        assert_eq!(n.lookup(a("11.0.0.3")).map(|m| (m.0, m.1)), Some((a("0.0.0.0"), 0)));
        assert_eq!(n.lookup(Addr::None), None);
        // Host bits in a listed net are ignored, like pmacct.
        let n = Networks::parse("10.0.1.77/24\n", "x").unwrap();
        assert_eq!(n.lookup(a("10.0.1.1")).map(|m| m.0), Some(a("10.0.1.0")));
    }

    #[test]
    fn non_ip_and_resolve_none() {
        let n = Networks::parse(NETS, "nets.lst").unwrap();
        let mut r = Record { src_as: 9, src_mask: 3, ..Record::default() };
        n.resolve(&mut r);
        assert_eq!((r.src_net, r.src_mask, r.src_as), (Addr::None, 0, 0));
        let mut r = rec("10.0.1.5", "2001:db8::1");
        Networks::resolve_none(&mut r);
        assert_eq!((r.src_net, r.src_mask, r.src_as), (a("0.0.0.0"), 0, 0));
        assert_eq!(r.dst_net, a("::"));
        assert!(r.nets_resolved);
    }

    #[test]
    fn network_errors_name_file_and_line() {
        let cases = [
            ("10.0.0.0/33", "prefix length 33"),
            ("10.0.0.0", "not <net>/<len>"),
            ("abc,10.0.0.0/8", "bad AS number 'abc'"),
            ("1_x,10.0.0.0/8", "bad AS number 'x'"),
            ("1.2.3.4,5,6,10.0.0.0/8", "is not [<nexthop>"),
            ("1.2.3.400,5,10.0.0.0/8", "bad next-hop"),
            ("10.0.0.0/x", "bad prefix length"),
            ("2001:db8::/129", "prefix length 129"),
        ];
        for (line, why) in cases {
            let text = format!("! c\n10.0.0.0/8\n{line}\n");
            let e = Networks::parse(&text, "/etc/n.lst").unwrap_err().to_string();
            assert!(e.starts_with("/etc/n.lst:3: "), "{e}");
            assert!(e.contains(why), "{e} lacks {why}");
        }
        let e = Networks::load(Path::new("/nonexistent/n.lst")).unwrap_err();
        assert!(matches!(e, MapError::Io { .. }));
        assert!(e.to_string().starts_with("/nonexistent/n.lst: "));
    }

    /// A flow record as a collector makes it: addresses with the masks and ASes it carries.
    fn flow(src: &str, dst: &str, masks: (u8, u8), ases: (u32, u32)) -> Record {
        Record {
            src_ip: a(src),
            dst_ip: a(dst),
            src_mask: masks.0,
            dst_mask: masks.1,
            src_as: ases.0,
            dst_as: ases.1,
            ..Record::default()
        }
    }

    /// (src_net, dst_net, src_mask, dst_mask, src_as, dst_as) after resolution.
    fn resolved(res: &NetResolver, r: &Record, m: Methods) -> (String, String, u8, u8, u32, u32) {
        let mut r = *r;
        res.resolve(&mut r, m);
        assert!(r.nets_resolved);
        (r.src_net.to_string(), r.dst_net.to_string(), r.src_mask, r.dst_mask, r.src_as, r.dst_as)
    }

    fn file(text: &str) -> NetResolver {
        NetResolver { networks: Some(Arc::new(Networks::parse(text, "n.lst").unwrap())), ..NetResolver::default() }
    }

    const LONGEST: Methods = Methods { net: NetMethod::Longest, asn: AsMethod::Longest };
    const FILE: Methods = Methods { net: NetMethod::File, asn: AsMethod::File };

    #[test]
    fn longest_is_config_keys_worked_example() {
        // CONFIG-KEYS, nfacctd_net: a NetFlow record with SrcMask 24 and DstMask 27, a
        // networks_file with 10.0.8.0/24 and 192.168.5.0/24: 10.0.8.0/24 and 192.168.5.32/27.
        let res = file("10.0.8.0/24\n192.168.5.0/24\n");
        let r = flow("10.0.8.29", "192.168.5.47", (24, 27), (0, 0));
        let (sn, dn, sm, dm, _, _) = resolved(&res, &r, LONGEST);
        assert_eq!((sn.as_str(), sm, dn.as_str(), dm), ("10.0.8.0", 24, "192.168.5.32", 27));
        // networks_file_no_lpm (its own example): the file's 192.168.5.0/24 wins.
        let res = NetResolver { no_lpm: true, ..res };
        let (sn, dn, sm, dm, _, _) = resolved(&res, &r, LONGEST);
        assert_eq!((sn.as_str(), sm, dn.as_str(), dm), ("10.0.8.0", 24, "192.168.5.0", 24));
    }

    /// The file and records of the run against nfacctd 1.7.7 (NetFlow v5 with these masks and
    /// ASes), and what it accounted with each method.
    const NF_FILE: &str = "65001,10.0.0.0/8\n65002,10.0.8.0/24\n65003,192.168.5.0/24\n";

    fn nf_records() -> Vec<Record> {
        vec![
            flow("10.0.8.29", "192.168.5.47", (24, 27), (100, 200)),
            flow("10.1.1.1", "172.16.1.1", (16, 0), (0, 0)),
            flow("192.168.5.1", "10.0.8.7", (24, 0), (300, 0)),
            flow("10.0.8.5", "8.8.8.8", (0, 0), (400, 500)),
            flow("11.2.3.4", "10.200.1.1", (8, 30), (600, 700)),
        ]
    }

    fn nf_check(res: &NetResolver, m: Methods, want: [(&str, &str, u8, u8, u32, u32); 5]) {
        for (r, w) in nf_records().iter().zip(want) {
            let got = resolved(res, r, m);
            assert_eq!(got, (w.0.to_string(), w.1.to_string(), w.2, w.3, w.4, w.5), "{m:?} {r:?}");
        }
    }

    #[test]
    fn record_method_is_what_the_record_carries() {
        let want = [
            ("10.0.8.0", "192.168.5.32", 24, 27, 100, 200),
            ("10.1.0.0", "0.0.0.0", 16, 0, 0, 0),
            ("192.168.5.0", "0.0.0.0", 24, 0, 300, 0),
            ("0.0.0.0", "0.0.0.0", 0, 0, 400, 500),
            ("11.0.0.0", "10.200.1.0", 8, 30, 600, 700),
        ];
        // nfacctd's default, with or without a networks_file.
        nf_check(&NetResolver::default(), Methods::COLLECTOR, want);
        nf_check(&file(NF_FILE), Methods::COLLECTOR, want);
        // networks_no_mask_if_zero: a mask of 0 keeps the whole address.
        let res = NetResolver { no_mask_if_zero: true, ..NetResolver::default() };
        let got = resolved(&res, &nf_records()[3], Methods::COLLECTOR);
        assert_eq!(got, ("10.0.8.5".into(), "8.8.8.8".into(), 0, 0, 400, 500));
    }

    #[test]
    fn file_method_ignores_the_record() {
        nf_check(
            &file(NF_FILE),
            FILE,
            [
                ("10.0.8.0", "192.168.5.0", 24, 24, 65002, 65003),
                ("10.0.0.0", "0.0.0.0", 8, 0, 65001, 0),
                ("192.168.5.0", "10.0.8.0", 24, 24, 65003, 65002),
                ("10.0.8.0", "0.0.0.0", 24, 0, 65002, 0),
                ("0.0.0.0", "10.0.0.0", 0, 8, 0, 65001),
            ],
        );
    }

    #[test]
    fn longest_prefers_the_record_on_a_tie_for_nets_and_the_file_for_ases() {
        nf_check(
            &file(NF_FILE),
            LONGEST,
            [
                ("10.0.8.0", "192.168.5.32", 24, 27, 65002, 200),
                ("10.1.0.0", "0.0.0.0", 16, 0, 0, 0),
                ("192.168.5.0", "10.0.8.0", 24, 24, 65003, 65002),
                // 8.8.8.8: neither knows a prefix, so the file's AS 0 wins over the record's.
                ("10.0.8.0", "0.0.0.0", 24, 0, 65002, 0),
                ("11.0.0.0", "10.200.1.0", 8, 30, 600, 700),
            ],
        );
        let no_lpm = NetResolver { no_lpm: true, ..file(NF_FILE) };
        nf_check(
            &no_lpm,
            LONGEST,
            [
                ("10.0.8.0", "192.168.5.0", 24, 24, 65002, 65003),
                ("10.0.0.0", "0.0.0.0", 8, 0, 65001, 0),
                ("192.168.5.0", "10.0.8.0", 24, 24, 65003, 65002),
                ("10.0.8.0", "0.0.0.0", 24, 0, 65002, 500),
                ("11.0.0.0", "10.0.0.0", 8, 8, 600, 65001),
            ],
        );
        // Without a networks_file, longest is the record.
        nf_check(
            &NetResolver::default(),
            LONGEST,
            [
                ("10.0.8.0", "192.168.5.32", 24, 27, 100, 200),
                ("10.1.0.0", "0.0.0.0", 16, 0, 0, 0),
                ("192.168.5.0", "0.0.0.0", 24, 0, 300, 0),
                ("0.0.0.0", "0.0.0.0", 0, 0, 400, 500),
                ("11.0.0.0", "10.200.1.0", 8, 30, 600, 700),
            ],
        );
    }

    #[test]
    fn mask_method_and_mixed_methods() {
        // nfacctd_net: mask with networks_mask 16, nfacctd_as: file.
        let res = NetResolver { mask: Some(16), ..file(NF_FILE) };
        nf_check(
            &res,
            Methods { net: NetMethod::Mask, asn: AsMethod::File },
            [
                ("10.0.0.0", "192.168.0.0", 16, 16, 65002, 65003),
                ("10.1.0.0", "172.16.0.0", 16, 16, 65001, 0),
                ("192.168.0.0", "10.0.0.0", 16, 16, 65003, 65002),
                ("10.0.0.0", "8.8.0.0", 16, 16, 65002, 0),
                ("11.2.0.0", "10.200.0.0", 16, 16, 0, 65001),
            ],
        );
        // File nets with the record's ASes.
        let got = resolved(&file(NF_FILE), &nf_records()[0], Methods { net: NetMethod::File, asn: AsMethod::Record });
        assert_eq!(got, ("10.0.8.0".into(), "192.168.5.0".into(), 24, 24, 100, 200));
    }

    #[test]
    fn pmacctd_compat_file_then_mask_and_no_ases() {
        // Packets carry no masks or ASes. The file wins over networks_mask (pmacctd 1.7.7).
        let pkt = Record { src_ip: a("10.0.8.29"), dst_ip: a("172.16.1.1"), ..Record::default() };
        let both = NetResolver { mask: Some(16), ..file(NF_FILE) };
        assert_eq!(resolved(&both, &pkt, Methods::PMACCTD), ("10.0.8.0".into(), "0.0.0.0".into(), 24, 0, 0, 0));
        let mask = NetResolver { mask: Some(16), ..NetResolver::default() };
        assert_eq!(resolved(&mask, &pkt, Methods::PMACCTD), ("10.0.0.0".into(), "172.16.0.0".into(), 16, 16, 0, 0));
        // pmacctd_as: file; pmacctd_*: longest is the file for packets.
        let file_as = Methods { net: NetMethod::Compat, asn: AsMethod::File };
        assert_eq!(resolved(&both, &pkt, file_as).4, 65002);
        assert_eq!(resolved(&file(NF_FILE), &pkt, LONGEST), resolved(&file(NF_FILE), &pkt, FILE));
    }

    #[test]
    fn networks_file_filter_zeroes_unknown_hosts() {
        let res = NetResolver { filter: true, ..file(NF_FILE) };
        let mut r = flow("11.2.3.4", "10.0.8.7", (8, 30), (600, 700));
        res.resolve(&mut r, LONGEST);
        assert_eq!((r.src_ip.to_string(), r.src_net.to_string(), r.src_mask), ("0.0.0.0".into(), "0.0.0.0".into(), 0));
        assert_eq!(
            (r.dst_ip.to_string(), r.dst_net.to_string(), r.dst_mask),
            ("10.0.8.7".into(), "10.0.8.4".into(), 30)
        );
        // A family the file lists no prefix of is left alone (nfacctd 1.7.7).
        let mut r = flow("2001:db8::1", "10.0.8.7", (0, 0), (0, 0));
        res.resolve(&mut r, FILE);
        assert_eq!(r.src_ip.to_string(), "2001:db8::1");
        // With IPv6 prefixes listed, an unknown IPv6 address is zeroed within its family.
        let res = NetResolver { filter: true, ..file("2001:db8:1::/48\n") };
        let mut r = flow("2001:db8::1", "2001:db8:1::5", (0, 0), (0, 0));
        res.resolve(&mut r, FILE);
        assert_eq!((r.src_ip.to_string(), r.dst_ip.to_string()), ("::".into(), "2001:db8:1::5".into()));
    }

    #[test]
    fn allow_lists_take_addresses_and_prefixes() {
        let a = AllowList::parse("! exporters\n192.168.0.1\n192.168.2.0/24\n2001:db8::/32\n", "allow.lst").unwrap();
        let ip = |s: &str| s.parse::<IpAddr>().unwrap();
        assert!(a.allows(ip("192.168.0.1")) && !a.allows(ip("192.168.0.2")));
        assert!(a.allows(ip("192.168.2.77")) && a.allows(ip("2001:db8::9")) && !a.allows(ip("2001:db9::1")));
        // An empty file allows no one; 0.0.0.0/0 everyone of IPv4.
        assert!(!AllowList::parse("! none\n", "a").unwrap().allows(ip("10.0.0.1")));
        assert!(AllowList::parse("0.0.0.0/0\n", "a").unwrap().allows(ip("10.0.0.1")));
        let e = AllowList::parse("10.0.0.1\n10.0.0.0/33\n", "a.lst").unwrap_err().to_string();
        assert!(e.starts_with("a.lst:2: bad prefix length"), "{e}");
        let e = AllowList::parse("router1\n", "a.lst").unwrap_err().to_string();
        assert!(e.starts_with("a.lst:1: 'router1' is not an address or prefix"), "{e}");
    }

    #[test]
    fn ports_zero_unlisted_both_directions() {
        let p = Ports::parse("! x\n80\n 53 \n65535\n", "p.lst").unwrap();
        let mut r = Record { src_port: 1000, dst_port: 80, ..Record::default() };
        p.apply(&mut r);
        assert_eq!((r.src_port, r.dst_port), (0, 80));
        let mut r = Record { src_port: 53, dst_port: 5353, ..Record::default() };
        p.apply(&mut r);
        assert_eq!((r.src_port, r.dst_port), (53, 0));
        assert!(p.contains(65535) && !p.contains(65534) && !p.contains(0));
        for bad in ["65536", "-1", "http", "80 81"] {
            let e = Ports::parse(&format!("22\n{bad}\n"), "p.lst").unwrap_err().to_string();
            assert!(e.starts_with("p.lst:2: "), "{e}");
        }
    }
}
