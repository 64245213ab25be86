#!/usr/bin/env bash
# Live capture side by side (root): XDP pre-aggregation, AF_XDP and libpcap capturing the same
# traffic mix on a veth pair in a private namespace, xacctd pinned to core 1; then the XDP
# program's own cost per packet kind from BPF_PROG_TEST_RUN.
#
#   perf/veth_capacity.sh [PACKETS]     (default 2,000,000 per run)
#
# First bed `kernel`: each method's kernel receive path timed by the kernel itself (live-frames
# BPF_PROG_TEST_RUN: frames in page-pool pages as a driver places them, the verdict carried out
# into xacctd's AF_XDP socket or packet socket), plus xacctd's CPU per packet; costs above the
# floor of receiving and dropping the same frames, measured train by train alongside. An
# in-kernel generator makes every copy of a train a flow of its own, so consecutive packets hit
# different flows as on a link. It runs again with all copies alike (`--vary 0`, the bed of
# earlier reports), which keeps one flow's kernel state warm for a whole train and favours XDP.
# Then bed `direct`: real frames sent into the veth by an AF_XDP sender on core 0, where veth
# runs the receiver's kernel work on the sender's core (see xacct-vethbench's doc). Medians of
# 3 trials each; two mixes: 1k and 100k distinct 5-tuples (each header line says how many are
# really sent), every packet picking its flow uniformly (the hard case: every flow about the
# same few packets); then 100k flows with Zipf-distributed sizes.
set -euo pipefail
cd "$(dirname "$0")/.."
N=${1:-2000000}
cargo build --release -q -p xacct-perf -p xacctd
target/release/xacct-vethbench --bed kernel --packets "$N" --flows 1000,100000
target/release/xacct-vethbench --bed kernel --packets "$((N / 2))" --flows 1000,100000 --vary 0
target/release/xacct-vethbench --bed direct --packets "$((N / 2))" --flows 1000,100000
# Flow sizes as on real links (Zipf, s = 1: a few flows carry most packets) over 100k flows,
# on both beds (the kernel bed's 64 variants of every 5-tuple flatten the head somewhat).
target/release/xacct-vethbench --bed kernel --packets "$N" --flows 100000 --zipf 1.0
target/release/xacct-vethbench --bed direct --packets "$((N / 2))" --flows 100000 --zipf 1.0
bash perf/xdp_cost.sh
