#!/usr/bin/env bash
# The XDP program's cost in ns per packet, per packet kind, as the kernel measures it with
# BPF_PROG_TEST_RUN (repeat runs over each frame; the program counts into its real maps).
# Needs root. XDP_COST_REPEAT sets the runs per kind (default 5000000, in 25 rounds interleaved
# over the kinds, medians reported). Aim: < 50 ns/packet.
# Columns: ns/packet (kernel's mean per run), floor (the same loop running a bare
# `return XDP_PASS` program: the harness's fixed cost per run), net (the difference).
set -euo pipefail
cd "$(dirname "$0")/.."
export XDP_COST_REPEAT="${XDP_COST_REPEAT:-5000000}"
cargo test --release --quiet -p xacct-xdp --test cost -- --nocapture --test-threads 1 2>/dev/null \
    | grep -E '^(kind|mean|[a-z0-9]+\/|arp|5-tuple|all key|load)' || { echo "xdp_cost: test failed; rerun without 2>/dev/null" >&2; exit 1; }
