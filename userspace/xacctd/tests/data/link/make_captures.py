#!/usr/bin/env python3
"""Writes the link-layer captures of tests/pmacct_compare.rs (run from anywhere; needs scapy:
`pip install scapy`). Each file is small and committed; rerunning rewrites them identically.

- mpls1.pcap   one MPLS label, IPv4 and IPv6, with and without a VLAN tag, both MPLS EtherTypes
- mpls3.pcap   three labels, the same mix (pmacctd 1.7.7 misreads stacks deeper than one label)
- sll.pcap     Linux cooked capture: IPv4, IPv6, a VLAN tag, MPLS, LLC/SNAP
- null.pcap    DLT_NULL, AF_INET/AF_INET6 (Linux's 10) in both byte orders, and AF_UNIX
- loop.pcap    the same frames as DLT_LOOP
- raw.pcap     LINKTYPE_RAW IPv4 and IPv6
- ppp.pcap     DLT_PPP with and without address/control bytes, a compressed protocol, an
               EtherType as protocol, IPv6, and LCP
- wlan.pcap    802.11 data frames to and from the DS, four addresses, protected, a beacon
- differ_*.pcap  frames that xacct decodes and pmacctd 1.7.7 does not (see packet.rs)
"""
import os
import struct

from scapy.all import IP, IPv6, TCP, UDP, Dot1Q, Ether, Raw, raw
from scapy.contrib.mpls import MPLS

HERE = os.path.dirname(os.path.abspath(__file__))


def write(name, linktype, frames):
    """Classic pcap, microseconds, a fixed clock: the files do not change between runs."""
    with open(os.path.join(HERE, name), "wb") as f:
        f.write(struct.pack("<IHHiIII", 0xA1B2C3D4, 2, 4, 0, 0, 65535, linktype))
        for i, fr in enumerate(frames):
            f.write(struct.pack("<IIII", 1700000000 + i, 0, len(fr), len(fr)) + fr)


def eth():
    return Ether(src="02:00:00:00:00:01", dst="02:00:00:00:00:02")


def stack(labels):
    s = None
    for i, l in enumerate(labels):
        m = MPLS(label=l, s=1 if i == len(labels) - 1 else 0, ttl=64)
        s = m if s is None else s / m
    return s


def v4(n, sport=1000):
    return IP(src="10.1.0.%d" % n, dst="10.2.0.1", id=n) / UDP(sport=sport + n, dport=53) / Raw(b"q" * (10 + n))


def v6(n, sport=2000):
    return IPv6(src="2001:db8::%d" % n, dst="2001:db8::ff") / TCP(sport=sport + n, dport=443, flags="S", seq=n)


def mpls_frames(labels):
    out = []
    for n in range(1, 4):
        out.append(raw(eth() / stack(labels) / v4(n)))
        out.append(raw(eth() / Dot1Q(vlan=7) / stack(labels) / v6(n)))
        out.append(raw(eth() / Dot1Q(vlan=8) / stack([l + 1 for l in labels]) / v4(n, 3000)))
        mcast = Ether(src="02:00:00:00:00:01", dst="02:00:00:00:00:02", type=0x8848)
        out.append(raw(mcast / stack([l + 2 for l in labels]) / v6(n, 4000)))
    return out


SNAP4 = bytes.fromhex("aaaa030000000800")
SNAP6 = bytes.fromhex("aaaa0300000086dd")


def sll(proto, payload):
    return struct.pack(">HHH", 0, 1, 6) + bytes.fromhex("02000000000e0000") + struct.pack(">H", proto) + payload


def null(family, payload, order):
    return struct.pack(order + "I", family) + payload


def wlan(fc0, fc1, body, four=False):
    a = lambda x: bytes.fromhex("0200000000") + bytes([x])
    h = bytes([fc0, fc1, 0, 0]) + a(0x0A) + a(0x0B) + a(0x0C) + b"\0\0"
    return h + (a(0x0D) if four else b"") + body


def main():
    write("mpls1.pcap", 1, mpls_frames([100]))
    write("mpls3.pcap", 1, mpls_frames([100, 200, 300]))
    write("sll.pcap", 113, [
        sll(0x0800, raw(v4(1))),
        sll(0x86DD, raw(v6(2))),
        sll(0x8100, b"\x00\x05\x08\x00" + raw(v4(3))),
        sll(0x8847, raw(stack([88]) / v4(4))),
        sll(0x0004, SNAP4 + raw(v4(5))),
        sll(0x0806, bytes(28)),
    ])
    frames = [
        null(2, raw(v4(1)), "<"), null(2, raw(v4(2)), ">"),
        null(10, raw(v6(3)), "<"), null(10, raw(v6(4)), ">"),
        null(1, raw(v4(5)), "<"),
    ]
    write("null.pcap", 0, frames)
    write("loop.pcap", 108, frames)
    write("raw.pcap", 101, [raw(v4(1)), raw(v6(2)), raw(v4(3))])
    write("ppp.pcap", 9, [
        b"\xff\x03\x00\x21" + raw(v4(1)),
        b"\x00\x21" + raw(v4(2)),
        b"\x21" + raw(v4(3)),
        b"\xff\x03\x00\x57" + raw(v6(4)),
        b"\xff\x03\x08\x00" + raw(v4(5)),
        b"\xff\x03\xc0\x21\x01\x01\x00\x04",
    ])
    write("wlan.pcap", 105, [
        wlan(0x08, 0x01, SNAP4 + raw(v4(1))),
        wlan(0x08, 0x02, SNAP6 + raw(v6(2))),
        wlan(0x08, 0x03, SNAP4 + raw(v4(3)), four=True),
        wlan(0x08, 0x41, SNAP4 + raw(v4(4))),
        wlan(0x80, 0x00, bytes(24)),
    ])
    # What xacct decodes and pmacctd 1.7.7 does not.
    write("differ_null.pcap", 0, [null(30, raw(v6(7)), "<"), null(24, raw(v6(8)), "<"), null(28, raw(v6(9)), ">")])
    write("differ_wlan.pcap", 105, [wlan(0x88, 0x01, b"\0\0" + SNAP4 + raw(v4(6)))])
    write("differ_ppp.pcap", 9, [b"\xff\x03\x02\x81" + raw(stack([77]) / v4(6))])
    write("differ_sll.pcap", 113, [
        sll(0x8864, b"\x11\x00\x00\x01" + struct.pack(">H", len(raw(v4(6))) + 2) + b"\x00\x21" + raw(v4(6))),
        sll(0x88A8, b"\x00\x09\x08\x00" + raw(v4(7))),
    ])


if __name__ == "__main__":
    main()
