//! Every configuration key xacct knows, each with its state: implemented; accepted with no
//! effect (the reason is logged at start); or refused with a specific reason (the error names
//! file, line and key). The keys are pmacct 1.7.7's (every key `/usr/share/pmacct/CONFIG-KEYS`
//! lists, checked by a test, and the other names of pmacct's own key dictionary: older names,
//! the mongodb plugin's) and xacct's own.
//!
//! `docs/pmacct-keys.md` is generated from this table ([`markdown`]); a test keeps it current.
//! A key of a refused family that a newer pmacct adds (a `bgp_*` key this table lacks, …) is
//! refused with its family's reason rather than called unknown.

use super::{Applies, PluginKind};

/// A family of keys: one section of `docs/pmacct-keys.md`. The collector and capture families
/// also decide which daemon a configuration is for (see [`super::Modes`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Family {
    Daemon,
    Aggregation,
    Networks,
    /// pmacctd's keys: packet capture.
    Capture,
    /// nfacctd's keys: the NetFlow/IPFIX collector.
    Netflow,
    /// sfacctd's keys: the sFlow collector.
    Sflow,
    Buffers,
    Memory,
    Print,
    Sql,
    Tagging,
    Classification,
    Export,
    Messaging,
    Routing,
    Geo,
    Uacctd,
}

impl Family {
    pub const ALL: [Family; 17] = [
        Family::Daemon,
        Family::Aggregation,
        Family::Networks,
        Family::Capture,
        Family::Netflow,
        Family::Sflow,
        Family::Buffers,
        Family::Memory,
        Family::Print,
        Family::Sql,
        Family::Tagging,
        Family::Classification,
        Family::Export,
        Family::Messaging,
        Family::Routing,
        Family::Geo,
        Family::Uacctd,
    ];

    pub fn title(self) -> &'static str {
        match self {
            Family::Daemon => "Daemon: logging, files, processes",
            Family::Aggregation => "Aggregation, filters and time",
            Family::Networks => "Networks and ports maps",
            Family::Capture => "Packet capture (pmacctd)",
            Family::Netflow => "NetFlow/IPFIX collector (nfacctd)",
            Family::Sflow => "sFlow collector (sfacctd)",
            Family::Buffers => "Buffers between core and plugins",
            Family::Memory => "memory plugin",
            Family::Print => "print plugin",
            Family::Sql => "SQL plugins (mysql, pgsql, sqlite3)",
            Family::Tagging => "Tagging and sampling maps",
            Family::Classification => "Classification",
            Family::Export => "nfprobe, sfprobe and tee plugins",
            Family::Messaging => "Kafka, AMQP and Avro",
            Family::Routing => "BGP, BMP, streaming telemetry, IS-IS, RPKI",
            Family::Geo => "GeoIP",
            Family::Uacctd => "uacctd (NFLOG capture)",
        }
    }
}

/// What xacct does with a key.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum State {
    Implemented,
    /// Accepted; the reason is logged at start.
    NoEffect(&'static str),
    /// The configuration is refused with this reason.
    Refused(&'static str),
}

impl State {
    pub fn label(self) -> &'static str {
        match self {
            State::Implemented => "implemented",
            State::NoEffect(_) => "accepted, no effect",
            State::Refused(_) => "refused",
        }
    }

    /// The reason of a key that is not implemented.
    pub fn reason(self) -> Option<&'static str> {
        match self {
            State::Implemented => None,
            State::NoEffect(r) | State::Refused(r) => Some(r),
        }
    }
}

/// One key of the inventory.
#[derive(Debug, Clone, Copy)]
pub struct KeyInfo {
    pub key: &'static str,
    pub family: Family,
    pub state: State,
    /// For implemented keys: what differs from pmacct or where the key comes from (may be empty).
    pub note: &'static str,
    pub(crate) applies: Applies,
}

struct Group {
    family: Family,
    state: State,
    applies: Applies,
    note: &'static str,
    keys: &'static [&'static str],
}

const fn imp(family: Family, applies: Applies, note: &'static str, keys: &'static [&'static str]) -> Group {
    Group { family, state: State::Implemented, applies, note, keys }
}

const fn none(family: Family, why: &'static str, keys: &'static [&'static str]) -> Group {
    Group { family, state: State::NoEffect(why), applies: Applies::AnyPlugin, note: "", keys }
}

const fn refuse(family: Family, why: &'static str, keys: &'static [&'static str]) -> Group {
    Group { family, state: State::Refused(why), applies: Applies::AnyPlugin, note: "", keys }
}

use Applies::{AnyPlugin, Both, Global, Only};
use Family::*;

const NOT_XACCT: &str = "";

const BGP: &str = "needs the BGP daemon (bgp_daemon), which xacct does not build";
const BMP: &str = "needs the BMP daemon (bmp_daemon), which xacct does not build";
const TELEMETRY: &str = "needs the streaming telemetry daemon, which xacct does not build";
const ISIS: &str = "needs the IS-IS (IGP) daemon, which xacct does not build";
const RPKI: &str = "RPKI/ROA validation needs the BGP daemon, which xacct does not build";
const KAFKA: &str = "kafka plugin: not built";
const AMQP: &str = "amqp plugin: not built";
const AVRO: &str = "Avro output (kafka and amqp plugins): not built";
const NFPROBE: &str = "not an nfprobe key pmacct has";
const SFPROBE: &str = "not an sfprobe key pmacct has";
const TEE: &str = "not a tee key pmacct has";
const CLASSIFY: &str = "classification: not built yet";
const UACCTD: &str = "uacctd (NFLOG capture) is not built: xacctd captures with XDP, AF_XDP or libpcap";
const GEOIP: &str = "GeoIP primitives: not built";
const REDIS: &str = "Redis-backed cluster state: not built";
const PIPES: &str =
    "xacct's workers hand the plugins their shards in memory: there is no pipe or buffer between core and plugins to size";
const STITCHING: &str = "stitching (timestamp_min/max of aggregates): not built";
const EXT_SAMPLING: &str = "external sampling rates (and the sampling_rate primitive): not built";
const PEER_AS: &str = "peer AS primitives (peer_src_as, peer_dst_as): not built";
const CHECKS: &str =
    "xacct always counts sequence gaps per exporter and domain (xacct -t, SIGUSR1) and logs none of them";

static GROUPS: &[Group] = &[
    // ---------------------------------------------------------------- daemon
    imp(Daemon, Global, NOT_XACCT, &["debug", "daemonize", "pidfile", "logfile", "plugins", "plugin_exit_any"]),
    imp(
        Daemon,
        Global,
        "-S as well; messages go to /dev/log (RFC 3164) with the daemon's name and pid",
        &["syslog"],
    ),
    imp(
        Daemon,
        Global,
        "octal; applies to every file and socket xacctd creates (logfile, pidfile, print files, memory sockets, SQLite files); unset keeps the umask xacctd was started with (pmacct forces 077)",
        &["files_umask"],
    ),
    imp(
        Daemon,
        Global,
        "a name or a number; the owner of the logfile, pidfile, print output files and memory sockets (xacctd must run as root to give them away)",
        &["files_uid", "files_gid"],
    ),
    imp(
        Daemon,
        Both,
        "unscoped: the whole daemon (every thread); scoped: that plugin's thread",
        &["proc_priority"],
    ),
    imp(Daemon, Global, "the process name (/proc/PID/comm, at most 15 characters) and the log's start line", &["core_proc_name"]),
    imp(
        Daemon,
        Global,
        "older names of core_proc_name",
        &["nfacctd_proc_name", "sfacctd_proc_name", "pmacctd_proc_name"],
    ),
    imp(Daemon, Global, "xacct's own key: worker threads (default: the cores the sources leave free)", &["workers"]),
    imp(
        Daemon,
        Global,
        "xacct's own key: SO_REUSEPORT sockets, one thread each, per collector (default 1)",
        &["collector_threads"],
    ),
    none(
        Daemon,
        "xacct's core and plugins are threads of one process and pass no messages to debug",
        &["debug_internal_msg"],
    ),
    none(Daemon, "xacctd is one process: a signal sent to it already reaches every plugin", &["propagate_signals"]),
    none(Daemon, "xacct's threads run with the default stack size, enough for their fixed-depth code", &["thread_stack"]),
    none(
        Daemon,
        "xacctd never checks for root: it needs only the capabilities its sources use (CAP_NET_RAW; CAP_NET_ADMIN and CAP_BPF for XDP)",
        &["pmacctd_nonroot"],
    ),
    refuse(Daemon, "DTLS transport: not built", &["dtls_path"]),
    refuse(Daemon, REDIS, &["cluster_name", "cluster_id", "redis_host", "redis_db"]),
    // ---------------------------------------------------------------- aggregation
    imp(Aggregation, AnyPlugin, NOT_XACCT, &["aggregate", "aggregate_filter"]),
    imp(Aggregation, Global, "applies to captured packets (one in N, systematic per worker)", &["sampling_rate"]),
    imp(
        Aggregation,
        AnyPlugin,
        "print plugin (JSON stamps, and time bins in print_output_file names); SQL stamps are always UTC in xacct",
        &["timestamps_utc"],
    ),
    imp(Aggregation, AnyPlugin, "print plugin (JSON stamps) and SQL plugins (integer stamps)", &["timestamps_since_epoch"]),
    none(
        Aggregation,
        "affects only the timestamp_start/end/arrival primitives, which xacct has not: its times are whole seconds",
        &["timestamps_secs"],
    ),
    none(
        Aggregation,
        "affects only the timestamp_start/end/arrival primitives, which xacct has not",
        &["timestamps_rfc3339"],
    ),
    refuse(Aggregation, "custom primitives (aggregate_primitives): not built", &["aggregate_primitives"]),
    refuse(Aggregation, "xacct has no next-hop primitive (peer_dst_ip) to fill yet", &["use_ip_next_hop"]),
    refuse(Aggregation, "Cisco ASA NSEL bidirectional flows: not built", &["tmp_asa_bi_flow"]),
    // ---------------------------------------------------------------- networks and ports
    imp(Networks, AnyPlugin, NOT_XACCT, &["networks_file", "ports_file"]),
    imp(
        Networks,
        AnyPlugin,
        "as pmacct defines them with the *_net/*_as methods (see ARCHITECTURE.md)",
        &["networks_mask", "networks_file_no_lpm", "networks_no_mask_if_zero", "networks_file_filter"],
    ),
    imp(
        Networks,
        Global,
        "SIGUSR2 reloads networks_file and ports_file (default true); refresh_maps is the older name",
        &["maps_refresh", "refresh_maps"],
    ),
    none(
        Networks,
        "xacct's networks lookup probes one hash table per prefix length: there is no cache to size",
        &["networks_cache_entries"],
    ),
    imp(
        Networks,
        Global,
        "pre_tag_map limits; unset, xacct takes any number of rules of any length (pmacct: 384 rules, 256 characters). A map beyond a set limit is refused with file:line, not cut",
        &["maps_entries", "maps_row_len"],
    ),
    imp(
        Networks,
        Global,
        "hash index over the pre_tag_map rules' exact-match keys and the field values their filters need; it gives the ordered scan's result, so xacct turns it on by default (pmacct: off, and disabled by any negation); `false` forces the scan",
        &["maps_index"],
    ),
    // ---------------------------------------------------------------- capture
    imp(
        Capture,
        Global,
        NOT_XACCT,
        &[
            "pcap_interface",
            "pcap_savefile",
            "pcap_savefile_wait",
            "pcap_savefile_delay",
            "pcap_filter",
            "snaplen",
            "promisc",
            "pcap_interface_wait",
            "pmacctd_renormalize",
            "pmacctd_flow_lifetime",
            "pmacctd_flow_tcp_lifetime",
            "pmacctd_time_new",
        ],
    ),
    imp(Capture, Global, "older name of pcap_interface", &["interface"]),
    imp(
        Capture,
        Global,
        "file, mask, longest (pmacctd's packets carry no masks or ASes: netflow and sflow are refused); bgp, bmp and igp are refused",
        &["pmacctd_net", "pmacctd_as"],
    ),
    imp(
        Capture,
        Global,
        "libpcap's capture direction; with pcap_ifindex, fills in_iface (in) or out_iface (out); XDP sees received packets only, so 'out' uses libpcap",
        &["pcap_direction"],
    ),
    imp(Capture, Global, "sys and none (hash and map are refused)", &["pcap_ifindex"]),
    imp(
        Capture,
        Global,
        "xacct's own keys: live capture method and the XDP program's settings",
        &["capture_method", "xdp_action", "xdp_flow_entries", "xdp_classify_packets", "xdp_harvest_interval"],
    ),
    none(
        Capture,
        PIPES,
        &[
            "pmacctd_pipe_size",
            "pmacctd_frag_buffer_size",
            "pmacctd_flow_buffer_size",
            "pmacctd_flow_buffer_buckets",
            "pmacctd_conntrack_buffer_size",
            "pcap_buffer_size",
        ],
    ),
    none(
        Capture,
        "xacct always gives IP fragments their datagram's ports (fragment table), whatever the aggregate",
        &["pmacctd_force_frag_handling"],
    ),
    refuse(
        Capture,
        "pcap_protocol: not built yet (select frames with pcap_filter 'ether proto …' or aggregate_filter)",
        &["pcap_protocol"],
    ),
    refuse(Capture, "Arista trailers: not built", &["pcap_arista_trailer_offset", "pcap_arista_trailer_flag_value"]),
    refuse(
        Capture,
        "several interfaces in one daemon (pcap_interfaces_map): not built yet; run one xacctd per interface",
        &["pcap_interfaces_map"],
    ),
    refuse(Capture, "replaying a savefile several times: not built", &["pcap_savefile_replay"]),
    refuse(Capture, STITCHING, &["pmacctd_stitching"]),
    refuse(Capture, EXT_SAMPLING, &["pmacctd_ext_sampling_rate"]),
    refuse(Capture, "tunnel inspection (GTP): not built", &["tunnel_0"]),
    // ---------------------------------------------------------------- NetFlow collector
    imp(
        Netflow,
        Global,
        NOT_XACCT,
        &[
            "nfacctd_port",
            "nfacctd_ip",
            "nfacctd_pipe_size",
            "nfacctd_renormalize",
            "nfacctd_time_new",
            "nfacctd_ipv6_only",
            "nfacctd_mcast_groups",
        ],
    ),
    imp(
        Netflow,
        Global,
        "netflow/sflow (default), file, mask, longest; bgp, bmp and igp are refused",
        &["nfacctd_net", "nfacctd_as"],
    ),
    imp(Netflow, Global, "older name of nfacctd_as", &["nfacctd_as_new"]),
    imp(
        Netflow,
        Global,
        "xacct's own JSON format (pmacct's templates file is not read)",
        &["nfacctd_templates_file"],
    ),
    none(Netflow, CHECKS, &["nfacctd_disable_checks"]),
    none(
        Netflow,
        "xacct applies an exporter's sampling options data to its whole observation domain and checks no option scope",
        &["nfacctd_disable_opt_scope_check"],
    ),
    imp(
        Netflow,
        Global,
        "datagrams from other senders are dropped and counted (datagrams_not_allowed); SIGUSR2 reloads the file",
        &["nfacctd_allow_file"],
    ),
    refuse(
        Netflow,
        "NetFlow v5 uptimes in seconds: not built (the flow times would be wrong; nfacctd_time_new times flows by arrival)",
        &["nfacctd_time_secs"],
    ),
    refuse(Netflow, "pro-rating flows over time bins: not built", &["nfacctd_pro_rating"]),
    refuse(
        Netflow,
        "replicating templates to another collector: not built",
        &["nfacctd_templates_receiver", "nfacctd_templates_port"],
    ),
    refuse(Netflow, "NetFlow/IPFIX over DTLS: not built", &["nfacctd_dtls_port"]),
    refuse(Netflow, STITCHING, &["nfacctd_stitching"]),
    refuse(Netflow, "accounting options data as flows: not built", &["nfacctd_account_options"]),
    refuse(Netflow, EXT_SAMPLING, &["nfacctd_ext_sampling_rate"]),
    refuse(Netflow, PEER_AS, &["nfacctd_peer_as"]),
    refuse(Netflow, "NetFlow input from ZeroMQ: not built", &["nfacctd_zmq_address"]),
    refuse(
        Netflow,
        "NetFlow input from Kafka: not built",
        &["nfacctd_kafka_broker_host", "nfacctd_kafka_broker_port", "nfacctd_kafka_config_file", "nfacctd_kafka_topic"],
    ),
    // ---------------------------------------------------------------- sFlow collector
    imp(
        Sflow,
        Global,
        NOT_XACCT,
        &[
            "sfacctd_port",
            "sfacctd_ip",
            "sfacctd_pipe_size",
            "sfacctd_renormalize",
            "sfacctd_time_new",
            "sfacctd_ipv6_only",
            "sfacctd_mcast_groups",
        ],
    ),
    imp(
        Sflow,
        Global,
        "sflow/netflow (default: the sample's extended router and gateway data), file, mask, longest; bgp, bmp and igp are refused",
        &["sfacctd_net", "sfacctd_as"],
    ),
    imp(Sflow, Global, "older name of sfacctd_as", &["sfacctd_as_new"]),
    none(Sflow, CHECKS, &["sfacctd_disable_checks"]),
    imp(
        Sflow,
        Global,
        "datagrams from other senders are dropped and counted (datagrams_not_allowed); SIGUSR2 reloads the file",
        &["sfacctd_allow_file"],
    ),
    refuse(Sflow, STITCHING, &["sfacctd_stitching"]),
    refuse(Sflow, EXT_SAMPLING, &["sfacctd_ext_sampling_rate"]),
    refuse(Sflow, PEER_AS, &["sfacctd_peer_as"]),
    refuse(Sflow, "sFlow input from ZeroMQ: not built", &["sfacctd_zmq_address"]),
    refuse(
        Sflow,
        "sFlow input from Kafka: not built",
        &["sfacctd_kafka_broker_host", "sfacctd_kafka_broker_port", "sfacctd_kafka_config_file", "sfacctd_kafka_topic"],
    ),
    refuse(
        Sflow,
        "logging sFlow counter samples: not built (xacct decodes and counts them)",
        &["sfacctd_counter_file", "sfacctd_counter_output"],
    ),
    refuse(
        Sflow,
        "sFlow counter samples to AMQP: not built",
        &[
            "sfacctd_counter_amqp_host",
            "sfacctd_counter_amqp_vhost",
            "sfacctd_counter_amqp_user",
            "sfacctd_counter_amqp_passwd",
            "sfacctd_counter_amqp_routing_key",
            "sfacctd_counter_amqp_exchange",
            "sfacctd_counter_amqp_exchange_type",
            "sfactd_counter_amqp_exchange_type",
            "sfacctd_counter_amqp_persistent_msg",
            "sfacctd_counter_persistent_msg",
            "sfacctd_counter_amqp_frame_max",
            "sfacctd_counter_amqp_heartbeat_interval",
            "sfacctd_counter_amqp_retry",
        ],
    ),
    refuse(
        Sflow,
        "sFlow counter samples to Kafka: not built",
        &[
            "sfacctd_counter_kafka_broker_host",
            "sfacctd_counter_kafka_broker_port",
            "sfacctd_counter_kafka_topic",
            "sfacctd_counter_kafka_partition",
            "sfacctd_counter_kafka_partition_key",
            "sfacctd_counter_kafka_retry",
            "sfacctd_counter_kafka_config_file",
        ],
    ),
    // ---------------------------------------------------------------- buffers
    none(
        Buffers,
        PIPES,
        &[
            "plugin_pipe_size",
            "plugin_buffer_size",
            "plugin_pipe_backlog",
            "plugin_pipe_zmq",
            "plugin_pipe_zmq_retry",
            "plugin_pipe_zmq_profile",
            "plugin_pipe_zmq_hwm",
        ],
    ),
    // ---------------------------------------------------------------- memory
    imp(Memory, Only(PluginKind::Memory), NOT_XACCT, &["imt_path"]),
    imp(
        Memory,
        Only(PluginKind::Memory),
        "the table's memory budget, as pmacct sizes its table: number x size bytes (number 0: the default budget); overflow is aggregated, not dropped",
        &["imt_mem_pools_number", "imt_mem_pools_size"],
    ),
    imp(
        Memory,
        AnyPlugin,
        "xacct's own keys: a plugin's table and shards hold at most this many entries or bytes (K, M, G suffixes); new keys then go to the overflow entry",
        &["max_entries", "memory_budget"],
    ),
    refuse(
        Memory,
        "memory table passwords: not built (the socket's file permissions guard it; see files_umask, files_uid, files_gid)",
        &["imt_passwd"],
    ),
    none(
        Memory,
        "the memory table is a hash table that grows to its budget (imt_mem_pools_*, max_entries, memory_budget): no buckets to size",
        &["imt_buckets"],
    ),
    // ---------------------------------------------------------------- print
    imp(
        Print,
        Only(PluginKind::Print),
        NOT_XACCT,
        &[
            "print_output",
            "print_output_file",
            "print_output_separator",
            "print_refresh_time",
            "print_history",
            "print_history_roundoff",
            "print_history_offset",
            "print_markers",
            "print_output_file_append",
            "print_latest_file",
            "print_write_empty_file",
            "print_startup_delay",
            "print_num_protos",
        ],
    ),
    none(
        Print,
        "the print plugin writes from its own thread straight from its table: nothing to size",
        &["print_cache_entries", "print_max_writers"],
    ),
    none(
        Print,
        "each refresh writes to stdout under stdout's lock: outputs of several print plugins never interleave",
        &["print_output_lock_file"],
    ),
    refuse(Print, "print plugin triggers: not built", &["print_trigger_exec"]),
    refuse(Print, "print plugin pre-processing: not built", &["print_preprocess", "print_preprocess_type"]),
    refuse(Print, "custom output libraries: not built", &["print_output_custom_lib", "print_output_custom_cfg_file"]),
    // ---------------------------------------------------------------- SQL
    imp(
        Sql,
        Applies::Sql,
        NOT_XACCT,
        &[
            "sql_host",
            "sql_port",
            "sql_user",
            "sql_passwd",
            "sql_db",
            "sql_table",
            "sql_table_version",
            "sql_table_type",
            "sql_table_schema",
            "sql_refresh_time",
            "sql_history",
            "sql_history_roundoff",
            "sql_history_offset",
            "sql_startup_delay",
            "sql_cache_entries",
            "sql_dont_try_update",
            "sql_use_copy",
            "sql_multi_values",
            "sql_max_writers",
            "sql_preprocess",
            "sql_preprocess_type",
            "sql_trigger_exec",
            "sql_trigger_time",
            "sql_recovery_backup_host",
            "sql_optimize_clauses",
            "sql_num_protos",
        ],
    ),
    imp(Sql, Applies::Sql, "older name of timestamps_since_epoch", &["sql_history_since_epoch"]),
    imp(Sql, Applies::Sql, "older name of sql_recovery_backup_host", &["sql_backup_host"]),
    imp(Sql, Applies::Sql, "'typed' only (what xacct writes); 'unified' is refused", &["sql_data"]),
    imp(
        Sql,
        Applies::Sql,
        "xacct's own keys: the durable spool and creating missing tables",
        &["sql_spool_dir", "sql_table_autocreate"],
    ),
    none(
        Sql,
        "each batch is written in one transaction with an exactly-once marker; no table or row locks are taken",
        &["sql_locking_style"],
    ),
    none(
        Sql,
        "xacct's COPY uses PostgreSQL's text format, which escapes every value, so no delimiter can clash",
        &["sql_delimiter"],
    ),
    refuse(Sql, "TLS connections to the database: not built yet", &["sql_conn_ca_file"]),
    refuse(Sql, "numeric address columns (INET_ATON): not built", &["sql_num_hosts"]),
    refuse(Sql, CLASSIFY, &["sql_aggressive_classification"]),
    // ---------------------------------------------------------------- tagging
    imp(
        Tagging,
        Both,
        "global (evaluated once per record) or per plugin; a bad line refuses the map with file:line (pmacct drops the line); every key applies wherever the record carries its field (pmacctd 1.7.7 ignores vlan, MACs, nets, …)",
        &["pre_tag_map"],
    ),
    imp(
        Tagging,
        AnyPlugin,
        "per plugin only, as in pmacct; lists, ranges A-B, negation -N, 0 = untagged; labels compared whole (1.7.7 compares prefixes)",
        &["pre_tag_filter", "pre_tag2_filter", "pre_tag_label_filter"],
    ),
    imp(Tagging, AnyPlugin, "a constant tag set in the plugin, over the pre_tag_map's", &["post_tag", "post_tag2"]),
    none(
        Tagging,
        "xacct keeps one ordered rule list and tries a rule without ip for every exporter: nothing is stored twice",
        &["pre_tag_map_dont_recirculate"],
    ),
    refuse(Tagging, "sampling_map: not built yet", &["sampling_map"]),
    refuse(Tagging, "flow_to_rd_map (MPLS VPN route distinguishers): not built", &["flow_to_rd_map"]),
    // ---------------------------------------------------------------- classification
    refuse(
        Classification,
        CLASSIFY,
        &[
            "classifiers",
            "classifier_num_roots",
            "classifier_max_flows",
            "classifier_proto_guess",
            "classifier_idle_scan_period",
            "classifier_idle_scan_budget",
            "classifier_giveup_proto_tcp",
            "classifier_giveup_proto_udp",
            "classifier_giveup_proto_other",
            "classifier_idle_max_time",
            "classifier_tentatives",
            "classifier_table_num",
        ],
    ),
    // ---------------------------------------------------------------- export plugins
    imp(
        Export,
        Only(PluginKind::Nfprobe),
        NOT_XACCT,
        &[
            "nfprobe_timeouts",
            "nfprobe_maxflows",
            "nfprobe_receiver",
            "nfprobe_version",
            "nfprobe_engine",
            "nfprobe_direction",
            "nfprobe_ifindex",
            "nfprobe_ifindex_override",
            "nfprobe_dont_cache",
        ],
    ),
    imp(
        Export,
        Only(PluginKind::Nfprobe),
        "the export socket's source address, hop limit and IP precedence",
        &["nfprobe_source_ip", "nfprobe_hoplimit", "nfprobe_ipprec"],
    ),
    imp(
        Export,
        Only(PluginKind::Nfprobe),
        "accepted: timestamps go out in milliseconds from second-resolution time bins; AS fields are what networks_file gives",
        &["nfprobe_tstamp_usec", "nfprobe_peer_as"],
    ),
    refuse(Export, "DTLS transport for nfprobe: not built", &["nfprobe_dtls", "nfprobe_dtls_verify_cert"]),
    imp(
        Export,
        Only(PluginKind::Sfprobe),
        NOT_XACCT,
        &[
            "sfprobe_ipprec",
            "sfprobe_direction",
            "sfprobe_ifindex",
            "sfprobe_ifindex_override",
            "sfprobe_receiver",
            "sfprobe_agentip",
            "sfprobe_agentsubid",
            "sfprobe_ifspeed",
            "sfprobe_source_ip",
        ],
    ),
    imp(
        Export,
        Only(PluginKind::Sfprobe),
        "accepted: AS fields are what networks_file gives",
        &["sfprobe_peer_as"],
    ),
    imp(
        Export,
        Only(PluginKind::Tee),
        NOT_XACCT,
        &[
            "tee_receivers",
            "tee_transparent",
            "tee_source_ip",
            "tee_max_receiver_pools",
            "tee_max_receivers",
            "tee_pipe_size",
            "tee_ipprec",
        ],
    ),
    refuse(Export, "replication to Kafka: not built", &["tee_kafka_config_file"]),
    // ---------------------------------------------------------------- messaging
    refuse(
        Messaging,
        KAFKA,
        &[
            "kafka_topic",
            "kafka_topic_rr",
            "kafka_config_file",
            "kafka_broker_host",
            "kafka_broker_port",
            "kafka_partition",
            "kafka_partition_dynamic",
            "kafka_partition_key",
            "kafka_refresh_time",
            "kafka_startup_delay",
            "kafka_history",
            "kafka_history_offset",
            "kafka_history_roundoff",
            "kafka_max_writers",
            "kafka_cache_entries",
            "kafka_multi_values",
            "kafka_trigger_exec",
            "kafka_preprocess",
            "kafka_preprocess_type",
            "kafka_markers",
            "kafka_output",
            "kafka_avro_schema_registry",
            "kafka_num_protos",
        ],
    ),
    refuse(
        Messaging,
        AMQP,
        &[
            "amqp_host",
            "amqp_vhost",
            "amqp_user",
            "amqp_passwd",
            "amqp_routing_key",
            "amqp_routing_key_rr",
            "amqp_exchange",
            "amqp_exchange_type",
            "amqp_persistent_msg",
            "amqp_frame_max",
            "amqp_heartbeat_interval",
            "amqp_refresh_time",
            "amqp_startup_delay",
            "amqp_history",
            "amqp_history_offset",
            "amqp_history_roundoff",
            "amqp_max_writers",
            "amqp_cache_entries",
            "amqp_multi_values",
            "amqp_trigger_exec",
            "amqp_preprocess",
            "amqp_preprocess_type",
            "amqp_markers",
            "amqp_output",
            "amqp_num_protos",
            "amqp_time_roundoff",
            "amqp_avro_schema_routing_key",
            "amqp_avro_schema_refresh_time",
        ],
    ),
    refuse(Messaging, AVRO, &["avro_buffer_size", "avro_schema_file", "avro_schema_output_file"]),
    refuse(
        Messaging,
        "mongodb plugin: not built (pmacct 1.7 dropped it too)",
        &[
            "mongo_host",
            "mongo_table",
            "mongo_user",
            "mongo_passwd",
            "mongo_refresh_time",
            "mongo_cache_entries",
            "mongo_history",
            "mongo_history_offset",
            "mongo_history_roundoff",
            "mongo_time_roundoff",
            "mongo_trigger_exec",
            "mongo_insert_batch",
            "mongo_indexes_file",
            "mongo_max_writers",
            "mongo_preprocess",
            "mongo_preprocess_type",
            "mongo_startup_delay",
            "mongo_num_protos",
        ],
    ),
    // ---------------------------------------------------------------- routing
    refuse(
        Routing,
        BGP,
        &[
            "bgp_daemon",
            "bgp_daemon_ip",
            "bgp_daemon_ipv6_only",
            "bgp_daemon_id",
            "bgp_daemon_as",
            "bgp_daemon_port",
            "bgp_daemon_ipprec",
            "bgp_daemon_max_peers",
            "bgp_daemon_batch_interval",
            "bgp_daemon_batch",
            "bgp_daemon_pipe_size",
            "bgp_daemon_msglog_file",
            "bgp_daemon_msglog_output",
            "bgp_daemon_msglog_avro_schema_file",
            "bgp_daemon_msglog_kafka_avro_schema_registry",
            "bgp_daemon_msglog_amqp_host",
            "bgp_daemon_msglog_amqp_vhost",
            "bgp_daemon_msglog_amqp_user",
            "bgp_daemon_msglog_amqp_passwd",
            "bgp_daemon_msglog_amqp_routing_key",
            "bgp_daemon_msglog_amqp_routing_key_rr",
            "bgp_daemon_msglog_amqp_exchange",
            "bgp_daemon_msglog_amqp_exchange_type",
            "bgp_daemon_msglog_amqp_persistent_msg",
            "bgp_daemon_msglog_amqp_frame_max",
            "bgp_daemon_msglog_amqp_heartbeat_interval",
            "bgp_daemon_msglog_amqp_retry",
            "bgp_daemon_msglog_kafka_broker_host",
            "bgp_daemon_msglog_kafka_broker_port",
            "bgp_daemon_msglog_kafka_topic",
            "bgp_daemon_msglog_kafka_topic_rr",
            "bgp_daemon_msglog_kafka_partition",
            "bgp_daemon_msglog_kafka_partition_key",
            "bgp_daemon_msglog_kafka_retry",
            "bgp_daemon_msglog_kafka_config_file",
            "bgp_daemon_allow_file",
            "bgp_daemon_md5_file",
            "bgp_daemon_lg",
            "bgp_daemon_lg_ip",
            "bgp_daemon_lg_port",
            "bgp_daemon_lg_user",
            "bgp_daemon_lg_passwd",
            "bgp_daemon_lg_threads",
            "bgp_daemon_xconnect_map",
            "bgp_table_dump_file",
            "bgp_table_dump_output",
            "bgp_table_dump_refresh_time",
            "bgp_table_dump_latest_file",
            "bgp_table_dump_workers",
            "bgp_table_dump_avro_schema_file",
            "bgp_table_dump_kafka_avro_schema_registry",
            "bgp_table_dump_amqp_host",
            "bgp_table_dump_amqp_vhost",
            "bgp_table_dump_amqp_user",
            "bgp_table_dump_amqp_passwd",
            "bgp_table_dump_amqp_routing_key",
            "bgp_table_dump_amqp_routing_key_rr",
            "bgp_table_dump_amqp_exchange",
            "bgp_table_dump_amqp_exchange_type",
            "bgp_table_dump_amqp_persistent_msg",
            "bgp_table_dump_amqp_frame_max",
            "bgp_table_dump_amqp_heartbeat_interval",
            "bgp_table_dump_kafka_broker_host",
            "bgp_table_dump_kafka_broker_port",
            "bgp_table_dump_kafka_topic",
            "bgp_table_dump_kafka_topic_rr",
            "bgp_table_dump_kafka_partition",
            "bgp_table_dump_kafka_partition_key",
            "bgp_table_dump_kafka_config_file",
            "bgp_table_peer_buckets",
            "bgp_table_per_peer_buckets",
            "bgp_table_attr_hash_buckets",
            "bgp_table_per_peer_hash",
            "bgp_aspath_radius",
            "bgp_stdcomm_pattern",
            "bgp_extcomm_pattern",
            "bgp_lrgcomm_pattern",
            "bgp_stdcomm_pattern_to_asn",
            "bgp_lrgcomm_pattern_to_asn",
            "bgp_peer_as_skip_subas",
            "bgp_peer_src_as_type",
            "bgp_peer_src_as_map",
            "bgp_src_std_comm_type",
            "bgp_src_ext_comm_type",
            "bgp_src_lrg_comm_type",
            "bgp_src_as_path_type",
            "bgp_src_local_pref_type",
            "bgp_src_local_pref_map",
            "bgp_src_med_type",
            "bgp_src_med_map",
            "bgp_src_roa_type",
            "bgp_agent_map",
            "bgp_blackhole_stdcomm_list",
            "bgp_follow_default",
            "bgp_follow_nexthop",
            "bgp_follow_nexthop_external",
            "bgp_disable_router_id_check",
            "bgp_neighbors_file",
            "tmp_bgp_lookup_compare_ports",
            "tmp_bgp_daemon_route_refresh",
            "tmp_bgp_daemon_origin_type_int",
        ],
    ),
    refuse(
        Routing,
        BMP,
        &[
            "bmp_daemon",
            "bmp_daemon_ip",
            "bmp_daemon_ipv6_only",
            "bmp_daemon_port",
            "bmp_daemon_ipprec",
            "bmp_daemon_max_peers",
            "bmp_daemon_batch_interval",
            "bmp_daemon_batch",
            "bmp_daemon_pipe_size",
            "bmp_daemon_allow_file",
            "bmp_daemon_parse_proxy_header",
            "bmp_daemon_msglog_file",
            "bmp_daemon_msglog_output",
            "bmp_daemon_msglog_avro_schema_file",
            "bmp_daemon_msglog_kafka_avro_schema_registry",
            "bmp_daemon_msglog_amqp_host",
            "bmp_daemon_msglog_amqp_vhost",
            "bmp_daemon_msglog_amqp_user",
            "bmp_daemon_msglog_amqp_passwd",
            "bmp_daemon_msglog_amqp_routing_key",
            "bmp_daemon_msglog_amqp_routing_key_rr",
            "bmp_daemon_msglog_amqp_exchange",
            "bmp_daemon_msglog_amqp_exchange_type",
            "bmp_daemon_msglog_amqp_persistent_msg",
            "bmp_daemon_msglog_amqp_frame_max",
            "bmp_daemon_msglog_amqp_heartbeat_interval",
            "bmp_daemon_msglog_amqp_retry",
            "bmp_daemon_msglog_kafka_broker_host",
            "bmp_daemon_msglog_kafka_broker_port",
            "bmp_daemon_msglog_kafka_topic",
            "bmp_daemon_msglog_kafka_topic_rr",
            "bmp_daemon_msglog_kafka_partition",
            "bmp_daemon_msglog_kafka_partition_key",
            "bmp_daemon_msglog_kafka_retry",
            "bmp_daemon_msglog_kafka_config_file",
            "bmp_dump_file",
            "bmp_dump_output",
            "bmp_dump_refresh_time",
            "bmp_dump_latest_file",
            "bmp_dump_workers",
            "bmp_dump_avro_schema_file",
            "bmp_dump_kafka_avro_schema_registry",
            "bmp_dump_amqp_host",
            "bmp_dump_amqp_vhost",
            "bmp_dump_amqp_user",
            "bmp_dump_amqp_passwd",
            "bmp_dump_amqp_routing_key",
            "bmp_dump_amqp_routing_key_rr",
            "bmp_dump_amqp_exchange",
            "bmp_dump_amqp_exchange_type",
            "bmp_dump_amqp_persistent_msg",
            "bmp_dump_amqp_frame_max",
            "bmp_dump_amqp_heartbeat_interval",
            "bmp_dump_kafka_broker_host",
            "bmp_dump_kafka_broker_port",
            "bmp_dump_kafka_topic",
            "bmp_dump_kafka_topic_rr",
            "bmp_dump_kafka_partition",
            "bmp_dump_kafka_partition_key",
            "bmp_dump_kafka_config_file",
            "bmp_agent_map",
            "bmp_table_peer_buckets",
            "bmp_table_per_peer_buckets",
            "bmp_table_attr_hash_buckets",
            "bmp_table_per_peer_hash",
        ],
    ),
    refuse(
        Routing,
        TELEMETRY,
        &[
            "telemetry_daemon",
            "telemetry_daemon_port_tcp",
            "telemetry_daemon_port_udp",
            "telemetry_daemon_ip",
            "telemetry_daemon_ipv6_only",
            "telemetry_daemon_decoder",
            "telemetry_daemon_max_peers",
            "telemetry_daemon_peer_timeout",
            "telemetry_daemon_allow_file",
            "telemetry_daemon_pipe_size",
            "telemetry_daemon_ipprec",
            "telemetry_daemon_zmq_address",
            "telemetry_daemon_kafka_broker_host",
            "telemetry_daemon_kafka_broker_port",
            "telemetry_daemon_kafka_config_file",
            "telemetry_daemon_kafka_topic",
            "telemetry_daemon_udp_notif_ip",
            "telemetry_daemon_udp_notif_port",
            "telemetry_daemon_udp_notif_nmsgs",
            "telemetry_daemon_msglog_output",
            "telemetry_daemon_msglog_file",
            "telemetry_daemon_msglog_amqp_host",
            "telemetry_daemon_msglog_amqp_vhost",
            "telemetry_daemon_msglog_amqp_user",
            "telemetry_daemon_msglog_amqp_passwd",
            "telemetry_daemon_msglog_amqp_routing_key",
            "telemetry_daemon_msglog_amqp_routing_key_rr",
            "telemetry_daemon_msglog_amqp_exchange",
            "telemetry_daemon_msglog_amqp_exchange_type",
            "telemetry_daemon_msglog_amqp_persistent_msg",
            "telemetry_daemon_msglog_amqp_frame_max",
            "telemetry_daemon_msglog_amqp_heartbeat_interval",
            "telemetry_daemon_msglog_amqp_retry",
            "telemetry_daemon_msglog_kafka_broker_host",
            "telemetry_daemon_msglog_kafka_broker_port",
            "telemetry_daemon_msglog_kafka_topic",
            "telemetry_daemon_msglog_kafka_topic_rr",
            "telemetry_daemon_msglog_kafka_partition",
            "telemetry_daemon_msglog_kafka_partition_key",
            "telemetry_daemon_msglog_kafka_retry",
            "telemetry_daemon_msglog_kafka_config_file",
            "telemetry_dump_file",
            "telemetry_dump_output",
            "telemetry_dump_latest_file",
            "telemetry_dump_refresh_time",
            "telemetry_dump_workers",
            "telemetry_dump_amqp_host",
            "telemetry_dump_amqp_vhost",
            "telemetry_dump_amqp_user",
            "telemetry_dump_amqp_passwd",
            "telemetry_dump_amqp_routing_key",
            "telemetry_dump_amqp_routing_key_rr",
            "telemetry_dump_amqp_exchange",
            "telemetry_dump_amqp_exchange_type",
            "telemetry_dump_amqp_persistent_msg",
            "telemetry_dump_amqp_frame_max",
            "telemetry_dump_amqp_heartbeat_interval",
            "telemetry_dump_kafka_broker_host",
            "telemetry_dump_kafka_broker_port",
            "telemetry_dump_kafka_topic",
            "telemetry_dump_kafka_topic_rr",
            "telemetry_dump_kafka_partition",
            "telemetry_dump_kafka_partition_key",
            "telemetry_dump_kafka_config_file",
        ],
    ),
    refuse(
        Routing,
        ISIS,
        &[
            "isis_daemon",
            "isis_daemon_ip",
            "isis_daemon_net",
            "isis_daemon_iface",
            "isis_daemon_mtu",
            "isis_daemon_msglog",
            "igp_daemon",
            "igp_daemon_map",
            "igp_daemon_map_msglog",
        ],
    ),
    refuse(
        Routing,
        RPKI,
        &["rpki_roas_file", "rpki_rtr_cache", "rpki_rtr_cache_version", "rpki_rtr_cache_pipe_size", "rpki_rtr_cache_ipprec"],
    ),
    // ---------------------------------------------------------------- GeoIP
    refuse(Geo, GEOIP, &["geoip_ipv4_file", "geoip_ipv6_file", "geoipv2_file"]),
    // ---------------------------------------------------------------- uacctd
    refuse(
        Uacctd,
        UACCTD,
        &[
            "uacctd_group",
            "uacctd_nl_size",
            "uacctd_threshold",
            "uacctd_direction",
            "uacctd_stitching",
            "uacctd_as",
            "uacctd_net",
            "uacctd_force_frag_handling",
            "uacctd_frag_buffer_size",
            "uacctd_flow_buffer_size",
            "uacctd_flow_buffer_buckets",
            "uacctd_conntrack_buffer_size",
            "uacctd_flow_lifetime",
            "uacctd_flow_tcp_lifetime",
            "uacctd_ext_sampling_rate",
            "uacctd_renormalize",
        ],
    ),
];

/// Keys of a refused family that this table does not list (keys of newer pmacct releases):
/// refused with the family's reason.
const REFUSED_PREFIXES: &[(&str, Family, &str)] = &[
    ("bgp_", Routing, BGP),
    ("bmp_", Routing, BMP),
    ("telemetry_", Routing, TELEMETRY),
    ("isis_", Routing, ISIS),
    ("igp_", Routing, ISIS),
    ("mongo_", Messaging, "mongodb plugin: not built (pmacct 1.7 dropped it too)"),
    ("rpki_", Routing, RPKI),
    ("kafka_", Messaging, KAFKA),
    ("amqp_", Messaging, AMQP),
    ("avro_", Messaging, AVRO),
    ("nfprobe_", Export, NFPROBE),
    ("sfprobe_", Export, SFPROBE),
    ("tee_", Export, TEE),
    ("classifier_", Classification, CLASSIFY),
    ("uacctd_", Uacctd, UACCTD),
    ("redis_", Daemon, REDIS),
    ("geoip", Geo, GEOIP),
];

fn info(g: &Group, key: &'static str) -> KeyInfo {
    KeyInfo { key, family: g.family, state: g.state, note: g.note, applies: g.applies }
}

/// The inventory entry of `key` (lower case, without a plugin scope).
pub fn lookup(key: &str) -> Option<KeyInfo> {
    for g in GROUPS {
        if let Some(k) = g.keys.iter().find(|k| **k == key) {
            return Some(info(g, k));
        }
    }
    REFUSED_PREFIXES.iter().find(|(p, _, _)| key.starts_with(p)).map(|(p, family, why)| KeyInfo {
        key: p,
        family: *family,
        state: State::Refused(why),
        note: "",
        applies: Applies::AnyPlugin,
    })
}

/// Every key the inventory lists.
pub fn keys() -> impl Iterator<Item = KeyInfo> {
    GROUPS.iter().flat_map(|g| g.keys.iter().map(move |k| info(g, k)))
}

/// Keys that a newer pmacct may add to these prefixes are refused with the family's reason.
pub fn refused_prefixes() -> impl Iterator<Item = (&'static str, Family, &'static str)> {
    REFUSED_PREFIXES.iter().copied()
}

/// `docs/pmacct-keys.md`: every key by family with its state, and counts.
pub fn markdown() -> String {
    use std::fmt::Write as _;
    let mut all: Vec<KeyInfo> = keys().collect();
    all.sort_by(|a, b| (a.family, a.key).cmp(&(b.family, b.key)));
    let count = |f: &dyn Fn(&KeyInfo) -> bool| all.iter().filter(|k| f(k)).count();
    let mut s = String::new();
    s.push_str(
        "# pmacct configuration keys in xacct\n\n\
         Generated from `userspace/core/src/config/inventory.rs` by\n\
         `cargo test -p xacct-core --test config_inventory` (with `XACCT_BLESS=1` it rewrites this\n\
         file; without, it fails when the file is not current). Every key of pmacct 1.7.7's\n\
         CONFIG-KEYS is listed (a test checks that too), with a few older names and xacct's own\n\
         keys.\n\n\
         - **implemented**: does what pmacct's key does (notes say where xacct differs);\n\
         - **accepted, no effect**: accepted, and the reason is logged when xacctd starts;\n\
         - **refused**: xacctd does not start; the error names the file, line and key and says why.\n\n",
    );
    let _ = writeln!(s, "| family | implemented | accepted, no effect | refused | total |");
    let _ = writeln!(s, "|---|---:|---:|---:|---:|");
    for fam in Family::ALL {
        let n = |st: fn(&State) -> bool| count(&|k: &KeyInfo| k.family == fam && st(&k.state));
        let _ = writeln!(
            s,
            "| {} | {} | {} | {} | {} |",
            fam.title(),
            n(|s| matches!(s, State::Implemented)),
            n(|s| matches!(s, State::NoEffect(_))),
            n(|s| matches!(s, State::Refused(_))),
            n(|_| true),
        );
    }
    let _ = writeln!(
        s,
        "| **all** | {} | {} | {} | {} |\n",
        count(&|k| matches!(k.state, State::Implemented)),
        count(&|k| matches!(k.state, State::NoEffect(_))),
        count(&|k| matches!(k.state, State::Refused(_))),
        all.len()
    );
    for fam in Family::ALL {
        let _ = writeln!(s, "## {}\n\n| key | state | reason or note |\n|---|---|---|", fam.title());
        for k in all.iter().filter(|k| k.family == fam) {
            let text = k.state.reason().unwrap_or(k.note);
            let _ = writeln!(s, "| `{}` | {} | {} |", k.key, k.state.label(), text.replace('|', "\\|"));
        }
        s.push('\n');
    }
    s.push_str("## Keys of newer pmacct releases\n\nA key this table does not list is refused with its family's reason when it starts with:\n\n");
    for (p, fam, why) in REFUSED_PREFIXES {
        let _ = writeln!(s, "- `{p}…` ({}): {why}", fam.title());
    }
    s
}
