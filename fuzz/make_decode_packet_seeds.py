#!/usr/bin/env python3
"""Writes the seed corpus of the decode_packet fuzz target (fuzz/corpus/decode_packet/): one frame
per file, after the link-type byte (an index into xacct_wire::fuzzing::LINKS) and the 4-byte
little-endian wire length the target reads first. One seed per link type and encapsulation the
decoder walks, so that the fuzzer starts inside each of them.

    python3 fuzz/make_decode_packet_seeds.py
    cargo xtask fuzz decode_packet
"""
import os
import struct

MACS = bytes.fromhex("020000000002020000000001")


def ipv4(proto, l4):
    return bytes([0x45, 0, *struct.pack(">H", 20 + len(l4)), 0, 1, 0x40, 0, 64, proto, 0, 0,
                  10, 0, 0, 1, 10, 0, 0, 2]) + l4


def ipv6(nh, l4):
    a = bytes.fromhex("20010db8000000000000000000000001")
    b = bytes.fromhex("20010db8000000000000000000000002")
    return bytes([0x60, 0, 0, 0, *struct.pack(">H", len(l4)), nh, 64]) + a + b + l4


UDP = struct.pack(">HHHH", 5353, 53, 12, 0) + b"abcd"
TCP = struct.pack(">HHIIBBHHH", 40000, 80, 1, 0, 0x50, 0x02, 8192, 0, 0)


def eth(etype, rest):
    return MACS + struct.pack(">H", etype) + rest


def tag(vid, etype):
    return struct.pack(">HH", vid, etype)


def mpls(labels):
    return b"".join(struct.pack(">I", (l << 12) | ((i == len(labels) - 1) << 8) | 64) for i, l in enumerate(labels))


def pppoe(proto, payload):
    return bytes([0x11, 0]) + struct.pack(">HHH", 0x1234, len(payload) + 2, proto) + payload


SNAP4 = bytes.fromhex("aaaa030000000800")
WLAN = bytes([0x08, 0x01, 0, 0]) + MACS + MACS[:6] + b"\0\0"
SLL = struct.pack(">HHH", 0, 1, 6) + MACS[:6] + b"\0\0"

SEEDS = {
    "eth_ipv4_udp": eth(0x0800, ipv4(17, UDP)),
    "raw_ipv6_tcp": ipv6(6, TCP),
    "ipv4_udp": ipv4(17, UDP),
    "ipv6_udp": ipv6(17, UDP),
    "sll2_ipv4": struct.pack(">HHIHBB", 0x0800, 0, 2, 1, 0, 6) + MACS[:6] + b"\0\0" + ipv4(17, UDP),
    "eth_pppoe_ipv4_udp": eth(0x8864, pppoe(0x0021, ipv4(17, UDP))),
    "eth_vlan_pppoe_ipv6_tcp": eth(0x8100, tag(300, 0x8864) + pppoe(0x0057, ipv6(6, TCP))),
    "eth_pppoe_lcp": eth(0x8864, pppoe(0xc021, bytes([9, 1, 0, 8, 0, 0, 0, 0]))),
    "eth_mpls1_ipv4_tcp": eth(0x8847, mpls([100]) + ipv4(6, TCP)),
    "eth_vlan_mpls3_ipv6_udp": eth(0x8100, tag(7, 0x8848) + mpls([16, 200, 300]) + ipv6(17, UDP)),
    "eth_mpls_pseudowire": eth(0x8847, mpls([16, 17]) + bytes(4) + eth(0x0806, bytes(28))),
    "eth_fabricpath_vlan_ipv4": eth(0x8903, bytes(14) + b"\x81\x00" + tag(5, 0x0800) + ipv4(17, UDP)),
    "eth_vntag_ipv6": eth(0x8926, bytes(4) + b"\x86\xdd" + ipv6(17, UDP)),
    "null_le_ipv4": struct.pack("<I", 2) + ipv4(17, UDP),
    "null_be_ipv6": struct.pack(">I", 30) + ipv6(6, TCP),
    "ppp_ipv4": bytes([0xff, 3, 0, 0x21]) + ipv4(17, UDP),
    "ppp_pfc_ipv4": bytes([0x21]) + ipv4(6, TCP),
    "ppp_mpls_ipv4": bytes([0xff, 3, 2, 0x81]) + mpls([77]) + ipv4(17, UDP),
    "wlan_data_ipv4": WLAN + SNAP4 + ipv4(17, UDP),
    "wlan_qos_ipv4": bytes([0x88]) + WLAN[1:] + b"\0\0" + SNAP4 + ipv4(6, TCP),
    "sll_llc_ipv4": SLL + struct.pack(">H", 4) + SNAP4 + ipv4(17, UDP),
    "sll_mpls_ipv4": SLL + struct.pack(">H", 0x8847) + mpls([88]) + ipv4(17, UDP),
}

# Index of each link type in xacct_wire::fuzzing::LINKS.
LINK = {"eth": 0, "sll": 1, "sll2": 2, "raw": 3, "ipv4": 4, "ipv6": 5, "null": 6, "ppp": 7, "wlan": 8}

out = os.path.join(os.path.dirname(os.path.abspath(__file__)), "corpus", "decode_packet")
os.makedirs(out, exist_ok=True)
for name, frame in SEEDS.items():
    with open(os.path.join(out, name), "wb") as f:
        f.write(bytes([LINK[name.split("_")[0]]]) + struct.pack("<I", len(frame)) + frame)
