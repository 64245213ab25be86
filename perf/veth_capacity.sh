#!/usr/bin/env bash
# Live capture side by side on a veth pair (root): XDP pre-aggregation, AF_XDP and libpcap on
# the same traffic mix, sender (AF_XDP) pinned to core 0 and xacctd to core 1; then the XDP
# program's own cost per packet from BPF_PROG_TEST_RUN.
#
#   perf/veth_capacity.sh [PACKETS]     (default 1,000,000)
#
# On a veth the sender's core runs the receiver's kernel work (the XDP program, the AF_XDP
# copy, the packet socket's ring): the cost of a method is the CPU of the sender thread, of
# ksoftirqd and of xacctd, per task, minus a baseline run in the same kernel mode (see
# xacct-vethbench's doc). Two traffic mixes: 100k and 1k distinct 5-tuples.
set -euo pipefail
cd "$(dirname "$0")/.."
N=${1:-1000000}
cargo build --release -q -p xacct-perf -p xacctd
target/release/xacct-vethbench --packets "$N" --methods xdp,afxdp,pcap
bash perf/xdp_cost.sh
