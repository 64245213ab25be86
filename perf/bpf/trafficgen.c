// The `kernel` bed's traffic generator (perf/src/trafficgen.rs): run by BPF_PROG_TEST_RUN on
// every live frame, it gives each copy of a train a flow of its own, then tail-calls the
// program under test (xacctd's, or a floor program), so that consecutive frames hit different
// flows as on a real link instead of one flow's warm state.
//
// Copy n of a train adds d = n mod `vary` to the last 16-bit word of the source address and
// subtracts it from the last word of the destination address, in ones' complement arithmetic:
// the IPv4 header checksum and the TCP/UDP pseudo-header sum stay valid, so the stack handles
// the frame as it would the original (checksum offload or not). Words are written absolutely
// from their base values, because a page recycled by the page pool keeps the last copy's bytes
// while a fresh page holds the original frame.
//
// Slot 0 holds the floor's receiver and slot 1 the one under test; both are set once per send
// and each run picks one through `slot`, so switching between them costs a plain array write.
//
// Self-contained (no libbpf headers): the two helpers and the map macros it needs are below.
#include <linux/bpf.h>

#define SEC(name) __attribute__((section(name), used))
#define __uint(name, val) int (*name)[val]
#define __type(name, val) typeof(val) *name

static void *(*bpf_map_lookup_elem)(void *map, const void *key) = (void *)BPF_FUNC_map_lookup_elem;
static long (*bpf_tail_call)(void *ctx, void *map, __u32 index) = (void *)BPF_FUNC_tail_call;

struct gen {
    __u64 next;   // copies generated so far: the index of the next one
    __u32 vary;   // flows per base frame (0: send the frame unchanged)
    __u16 off_a;  // offset of the source address's last 16-bit word
    __u16 off_b;  // offset of the destination address's last 16-bit word
    __u16 base_a; // their original values, as stored in the frame
    __u16 base_b;
    __u32 slot;   // the tail-call slot of the receiver this run goes to
};

struct {
    __uint(type, BPF_MAP_TYPE_ARRAY);
    __uint(max_entries, 1);
    __type(key, __u32);
    __type(value, struct gen);
} xacct_gen SEC(".maps");

struct {
    __uint(type, BPF_MAP_TYPE_PROG_ARRAY);
    __uint(max_entries, 2);
    __type(key, __u32);
    __type(value, __u32);
} xacct_gen_next SEC(".maps");

static __attribute__((always_inline)) __u16 oc_add(__u16 x, __u16 y)
{
    __u32 s = (__u32)x + y;
    return (__u16)((s & 0xffff) + (s >> 16));
}

// x - y, borrowing around: not oc_add(x, ~y), which turns x == y into 0xffff, the other zero
// (the checksum holds either way, but 192.168.0.0 would not stay itself for d = 0).
static __attribute__((always_inline)) __u16 oc_sub(__u16 x, __u16 y)
{
    __s32 s = (__s32)x - y;
    return (__u16)(s < 0 ? s + 0xffff : s);
}

SEC("xdp")
int xacct_gen_prog(struct xdp_md *ctx)
{
    __u32 zero = 0;
    struct gen *g = bpf_map_lookup_elem(&xacct_gen, &zero);
    if (g && g->vary) {
        void *data = (void *)(long)ctx->data;
        void *end = (void *)(long)ctx->data_end;
        __u32 a = g->off_a & 0xff, b = g->off_b & 0xff;
        __u16 *pa = data + a, *pb = data + b;
        if ((void *)(pa + 1) <= end && (void *)(pb + 1) <= end) {
            __u16 d = (__u16)(g->next % g->vary);
            *pa = oc_add(g->base_a, d);
            *pb = oc_sub(g->base_b, d);
        }
        g->next++;
    }
    // The slot is read from the map, so the JIT emits an indirect tail call: with a constant
    // slot it patches a direct jump into this program's code on every update of the array
    // (text poking), which left the next test run starting with cold TLBs and caches.
    bpf_tail_call(ctx, &xacct_gen_next, g ? g->slot : 0);
    // No program under test in the slot: a bed set-up error, never measured.
    return XDP_ABORTED;
}

SEC("xdp")
int xacct_gen_drop(struct xdp_md *ctx)
{
    return XDP_DROP;
}

SEC("xdp")
int xacct_gen_pass(struct xdp_md *ctx)
{
    return XDP_PASS;
}

char _license[] SEC("license") = "GPL";
