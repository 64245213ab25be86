//! pmacct-style configuration: syntax, scoping, overrides, defaults and every error kind.

use std::path::{Path, PathBuf};
use xacct_core::config::{CaptureMethod, Config, ConfigError, OutputFormat, PluginKind, XdpAction};
use xacct_core::Primitive;

fn parse(text: &str) -> Result<Config, ConfigError> {
    Config::parse_str(text, "/etc/x.conf", &[])
}

fn err(text: &str) -> ConfigError {
    match parse(text) {
        Ok(c) => panic!("accepted: {text}\n{c:?}"),
        Err(e) => e,
    }
}

fn ov(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
    pairs.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect()
}

/// The PNRG configuration from the seed's slides.
const PNRG: &str = "!\n\
! pmacctd\n\
!\n\
interface: eth0\n\
plugins: memory[in], memory[out]\n\
aggregate[out]: src_host\n\
aggregate[in]: dst_host\n\
aggregate_filter[out]: src net 10.0.0.0/8\n\
aggregate_filter[in]: dst net 10.0.0.0/8\n\
imt_path[out]: /tmp/pmacct_out.pipe\n\
imt_path[in]: /tmp/pmacct_in.pipe\n";

#[test]
fn seed_pnrg_config() {
    let c = parse(PNRG).unwrap();
    assert_eq!(c.global.interface.as_deref(), Some("eth0"));
    assert_eq!(c.plugins.len(), 2);
    let (i, o) = (c.plugin("in").unwrap(), c.plugin("out").unwrap());
    assert_eq!((i.kind, o.kind), (PluginKind::Memory, PluginKind::Memory));
    assert_eq!(i.aggregate.primitives(), &[Primitive::DstHost]);
    assert_eq!(o.aggregate.primitives(), &[Primitive::SrcHost]);
    assert_eq!(i.aggregate_filter.as_deref(), Some("dst net 10.0.0.0/8"));
    assert_eq!(o.aggregate_filter.as_deref(), Some("src net 10.0.0.0/8"));
    assert_eq!(i.imt_path, Path::new("/tmp/pmacct_in.pipe"));
    assert_eq!(o.imt_path, Path::new("/tmp/pmacct_out.pipe"));
    assert_eq!(i.origin.line, 5);
    assert!(c.ignored.is_empty());
}

#[test]
fn seed_sample_config_with_mysql() {
    // The seed's "sample configuration" slide, verbatim apart from the networks file.
    let text = "daemonize: true\n\
interface: eth0\n\
plugins: memory[a], memory[b], mysql[c]\n\
!\n\
aggregate[a]: src_host\n";
    let c = parse(text).unwrap();
    assert_eq!(c.plugin("c").unwrap().kind, PluginKind::Mysql);
}

#[test]
fn seed_sample_config_without_sql() {
    let dir = tempfile::tempdir().unwrap();
    let nets = dir.path().join("networks.lst");
    std::fs::write(&nets, "10.0.0.0/16\n").unwrap();
    let text = format!(
        "daemonize: true\n\
interface: eth0\n\
plugins: memory[a], memory[b]\n\
networks_file: {}\n\
!\n\
aggregate[a]: src_host\n\
imt_path[a]: /tmp/acct_out.pipe\n\
aggregate_filter[a]: src net 10.0.0.0/16\n\
!\n\
aggregate[b]: dst_host\n\
imt_path[b]: /tmp/acct_in.pipe\n\
aggregate_filter[b]: dst net 10.0.0.0/16\n",
        nets.display()
    );
    let c = parse(&text).unwrap();
    assert!(c.global.daemonize);
    let (a, b) = (c.plugin("a").unwrap(), c.plugin("b").unwrap());
    assert_eq!(a.networks_file.as_deref(), Some(nets.as_path()));
    assert_eq!(b.networks_file.as_deref(), Some(nets.as_path()));
    assert_eq!(a.imt_path, Path::new("/tmp/acct_out.pipe"));
    assert_eq!(b.aggregate_filter.as_deref(), Some("dst net 10.0.0.0/16"));
}

#[test]
fn sql_keys_belong_to_sql_plugins() {
    let e = err("plugins: memory[c]\naggregate[c]: sum_host\nsql_db[c]: pmacct\n");
    assert_eq!(e.to_string(), "/etc/x.conf:3: sql_db[c]: key does not apply to plugin 'c' of type memory");
    // Unscoped SQL keys are checked even without an SQL plugin.
    let e = err("plugins: memory\nsql_refresh_time: soon\n");
    assert!(matches!(e, ConfigError::BadValue { .. }), "{e:?}");
}

#[test]
fn print_plugin_config() {
    let text = "plugins: print[p]\n\
aggregate[p]: src_host, dst_host, src_port, dst_port, proto\n\
print_output[p]: csv\n\
print_output_file[p]: /tmp/out-%Y%m%d-%H:%M.csv\n\
print_output_separator: \\t\n\
print_refresh_time: 300\n\
print_history[p]: 1h\n\
print_history_roundoff[p]: h\n";
    let c = parse(text).unwrap();
    let p = c.plugin("p").unwrap();
    assert_eq!(p.kind, PluginKind::Print);
    assert_eq!(p.print_output, OutputFormat::Csv);
    // Split at the first ':' only.
    assert_eq!(p.print_output_file.as_deref(), Some("/tmp/out-%Y%m%d-%H:%M.csv"));
    assert_eq!(p.print_output_separator, "\t");
    assert_eq!(p.print_refresh_time, 300);
    let h = p.print_history.unwrap();
    assert_eq!(h.bin_len(0), 3600);
    // Roundoff h: hourly bins anchored at midnight.
    assert_eq!(h.bin_start(1_700_000_000), 1_699_999_200);
}

#[test]
fn defaults() {
    let c = parse("").unwrap();
    assert_eq!(c.plugins.len(), 1);
    let p = &c.plugins[0];
    assert_eq!((p.name.as_str(), p.kind), ("default", PluginKind::Memory));
    assert_eq!(p.aggregate.primitives(), &[Primitive::SrcHost]);
    assert_eq!(p.imt_path, Path::new("/tmp/collect.pipe"));
    assert_eq!(p.print_output, OutputFormat::Formatted);
    assert_eq!(p.print_output_separator, ",");
    assert_eq!(p.print_refresh_time, 60);
    assert!(p.print_history.is_none() && p.aggregate_filter.is_none());
    let g = &c.global;
    assert_eq!((g.snaplen, g.promisc, g.sampling_rate), (128, true, 1));
    assert!(!g.daemonize && !g.renormalize && !g.pcap_savefile_wait);
    assert_eq!(g.capture_methods, xacct_core::config::Methods::PMACCTD);
    assert_eq!(g.workers, None);
    let c = parse("plugins: memory, print[p]\n").unwrap();
    let names: Vec<_> = c.plugins.iter().map(|p| (p.name.as_str(), p.kind)).collect();
    assert_eq!(names, [("default", PluginKind::Memory), ("p", PluginKind::Print)]);
}

#[test]
fn duplicate_and_unknown_plugins() {
    let e = err("plugins: memory, print\n");
    assert_eq!(
        e.to_string(),
        "/etc/x.conf:1: plugins: bad value 'memory, print': plugin name 'default' is declared twice"
    );
    let e = err("plugins: memory[a], print[a]\n");
    assert!(e.to_string().contains("'a' is declared twice"), "{e}");
    let e = err("plugins: memry[a]\n");
    assert!(matches!(e, ConfigError::BadValue { .. }) && e.to_string().contains("unknown plugin type 'memry'"), "{e}");
    let e = err("plugins: memory[a], , print\n");
    assert!(matches!(e, ConfigError::BadValue { .. }), "{e}");
    for (t, why) in [("kafka", "kafka plugin: not built"), ("amqp", "amqp plugin: not built")] {
        let e = err(&format!("plugins: memory[m], {t}[x]\n"));
        assert_eq!(e.to_string(), format!("/etc/x.conf:1: plugins: refused: {why}"));
    }
}

#[test]
fn global_settings() {
    let text = "Daemonize: yes\n\
PCAP_INTERFACE: eth1\n\
pcap_savefile: /tmp/x.pcap\n\
pcap_savefile_wait: true\n\
pcap_filter: not host 2001:db8::1\n\
snaplen: 1500\n\
promisc: false\n\
pidfile: /run/x.pid\n\
logfile: /var/log/x.log\n\
sampling_rate: 10\n\
pmacctd_renormalize: 1\n\
workers: 4\n";
    let g = parse(text).unwrap().global;
    assert!(g.daemonize && g.pcap_savefile_wait && g.renormalize && !g.promisc);
    assert_eq!(g.interface.as_deref(), Some("eth1"));
    assert_eq!(g.pcap_savefile, Some(PathBuf::from("/tmp/x.pcap")));
    assert_eq!(g.pcap_filter.as_deref(), Some("not host 2001:db8::1"));
    assert_eq!((g.snaplen, g.sampling_rate, g.workers), (1500, 10, Some(4)));
    assert_eq!(g.pidfile, Some(PathBuf::from("/run/x.pid")));
    assert_eq!(g.logfile, Some(PathBuf::from("/var/log/x.log")));
    // `interface` is the older name of the same key; the later line wins.
    assert_eq!(parse("pcap_interface: a\ninterface: b\n").unwrap().global.interface.as_deref(), Some("b"));
}

#[test]
fn bad_values_name_file_line_and_key() {
    let cases = [
        ("promisc: maybe", "/etc/x.conf:2: promisc: bad value 'maybe': expected true or false"),
        ("snaplen: 0", "/etc/x.conf:2: snaplen: bad value '0': expected a whole number from 1 to 262144"),
        ("snaplen: 12x", "/etc/x.conf:2: snaplen: bad value '12x': expected a whole number from 1 to 262144"),
        ("workers: -1", "/etc/x.conf:2: workers: bad value '-1': expected a whole number from 1 to 4096"),
        ("sampling_rate: 0", "/etc/x.conf:2: sampling_rate: bad value '0': expected a whole number from 1 to 4294967295"),
        ("print_refresh_time[p]: soon", "/etc/x.conf:2: print_refresh_time[p]: bad value 'soon': expected a whole number from 1 to 4294967295"),
        ("print_output[p]: xml", "/etc/x.conf:2: print_output[p]: bad value 'xml': expected formatted, csv or json"),
        ("print_output_separator: ;;", "/etc/x.conf:2: print_output_separator: bad value ';;': expected one character, \\t or \\s"),
        ("aggregate: src_host, bogus", "/etc/x.conf:2: aggregate: bad value 'src_host, bogus': unknown aggregation primitive 'bogus'"),
        ("aggregate[p]: sum_host, src_port", "/etc/x.conf:2: aggregate[p]: bad value 'sum_host, src_port': 'sum_host' must be the only primitive of its aggregate"),
        ("pmacctd_net: magic", "/etc/x.conf:2: pmacctd_net: bad value 'magic': expected file, mask or longest"),
        ("imt_path:", "/etc/x.conf:2: imt_path: bad value '': empty value"),
        ("print_history[p]: 10x", "/etc/x.conf:2: print_history[p]: bad value '10x': unknown time unit 'x' (expected s, m, h, d, w or M)"),
    ];
    for (line, msg) in cases {
        let e = err(&format!("plugins: print[p], memory[m]\n{line}\n"));
        assert!(matches!(e, ConfigError::BadValue { .. }), "{line}: {e:?}");
        assert_eq!(e.to_string(), msg);
    }
}

#[test]
fn history_and_roundoff_errors_blame_their_own_line() {
    let e = err("plugins: print[p]\nprint_history: 1h\nprint_history_roundoff: x\n");
    assert!(e.to_string().starts_with("/etc/x.conf:3: print_history_roundoff: bad value 'x'"), "{e}");
    let e = err("plugins: print[p]\nprint_history: 1M\nprint_history_roundoff: w\n");
    assert!(e.to_string().starts_with("/etc/x.conf:2: print_history: bad value '1M'"), "{e}");
    // A roundoff without history does nothing in xacct: recorded as ignored.
    let c = parse("plugins: print[p]\nprint_history_roundoff: m\n").unwrap();
    assert_eq!(c.ignored.len(), 1);
    assert_eq!(c.ignored[0].origin.line, 2);
}

#[test]
fn aggregate_not_supported_yet() {
    let e = err("aggregate: src_host, class\n");
    assert!(matches!(e, ConfigError::NotSupportedYet { .. }), "{e:?}");
    assert!(e.to_string().starts_with("/etc/x.conf:1: aggregate: not supported yet in xacct"), "{e}");
}

#[test]
fn filter_errors_map_to_bad_value() {
    let expr = "src net 10.0.0.0/8 and (";
    let fe = xacct_core::filter::Filter::parse(expr).unwrap_err();
    for key in ["pcap_filter", "aggregate_filter"] {
        let e = err(&format!("! c\n{key}: {expr}\n"));
        assert_eq!(e.to_string(), format!("/etc/x.conf:2: {key}: bad value '{expr}': {fe}"));
    }
}

#[test]
fn unknown_key() {
    let e = err("plugins: memory\n\nfoo_bar: 1\n");
    assert_eq!(e, ConfigError::UnknownKey { origin: origin("/etc/x.conf", 3, "foo_bar") });
    assert_eq!(e.to_string(), "/etc/x.conf:3: foo_bar: unknown configuration key");
    let e = err("aggregat[a]: src_host\n");
    assert_eq!(e.to_string(), "/etc/x.conf:1: aggregat[a]: unknown configuration key");
}

fn origin(file: &str, line: usize, key: &str) -> xacct_core::config::Origin {
    xacct_core::config::Origin { file: file.into(), line, key: key.into() }
}

#[test]
fn pmacct_keys_refused_with_their_reason() {
    for (key, why) in [
        ("sampling_map", "sampling_map: not built yet"),
        ("classifiers", "classification: not built yet"),
        ("sfacctd_counter_file", "logging sFlow counter samples: not built (xacct decodes and counts them)"),
        ("nfprobe_dtls", "DTLS transport for nfprobe: not built"),
        ("tee_kafka_config_file", "replication to Kafka: not built"),
        // A key of a newer pmacct in an export family.
        ("nfprobe_future_knob", "not an nfprobe key pmacct has"),
        ("sql_aggressive_classification", "classification: not built yet"),
        ("bgp_daemon", "needs the BGP daemon (bgp_daemon), which xacct does not build"),
        ("kafka_topic", "kafka plugin: not built"),
        ("use_ip_next_hop", "xacct has no next-hop primitive (peer_dst_ip) to fill yet"),
        // A key of a newer pmacct in a refused family: the family's reason.
        ("bgp_daemon_future_knob", "needs the BGP daemon (bgp_daemon), which xacct does not build"),
    ] {
        let e = err(&format!("plugins: memory[a]\n{key}: x\n"));
        assert_eq!(e, ConfigError::Refused { origin: origin("/etc/x.conf", 2, key), why: why.to_string() }, "{key}");
        assert_eq!(e.to_string(), format!("/etc/x.conf:2: {key}: refused: {why}"));
    }
    let e = err("pmacctd_as: bgp\n");
    assert!(matches!(e, ConfigError::Refused { .. }), "{e:?}");
    let e = err("print_output: event_csv\nplugins: print\n");
    assert!(matches!(e, ConfigError::NotSupportedYet { .. }), "{e:?}");
}

#[test]
fn memory_budget_keys() {
    use xacct_core::budget::BudgetSource;
    let dflt = BudgetSource::Default { total: 8 << 30, plugins: 2 };
    let c = parse(
        "plugins: memory[a], memory[b], print[c], memory[d], sqlite3[e]\n\
imt_mem_pools_number[a]: 64\n\
imt_mem_pools_size[a]: 65536\n\
max_entries[b]: 5000\n\
memory_budget[c]: 256M\n\
imt_mem_pools_number[d]: 0\n",
    )
    .unwrap();
    let b: Vec<_> = c.plugins.iter().map(|p| p.budget(5, 1, dflt.clone())).collect();
    assert_eq!((b[0].source.clone(), b[0].bytes), (BudgetSource::ImtMemPools, Some(64 * 65536)));
    assert_eq!((b[1].table_entries, b[1].shard_entries, b[1].bytes), (5000, 5000, None));
    assert_eq!((b[2].source.clone(), b[2].bytes), (BudgetSource::MemoryBudget, Some(256 << 20)));
    // pmacct's 0 pools (no limit of its own) and no key at all: the default share.
    assert_eq!((b[3].source.clone(), b[3].bytes), (dflt.clone(), Some(1 << 30)));
    assert_eq!(b[4].bytes, Some(1 << 30));
    for (conf, want) in [
        ("plugins: memory\nmax_entries: 0\n", "/etc/x.conf:2: max_entries: bad value '0': expected a whole number"),
        ("plugins: memory\nmemory_budget: 1.5G\n", "/etc/x.conf:2: memory_budget: bad value '1.5G': expected a size"),
        ("plugins: memory\nimt_mem_pools_number: -1\n", "/etc/x.conf:2: imt_mem_pools_number: bad value '-1'"),
    ] {
        let e = err(conf).to_string();
        assert!(e.starts_with(want), "{e}");
    }
}

#[test]
fn tuning_keys_are_ignored_and_recorded() {
    let c = parse(
        "plugins: memory[foo]\n\
aggregate[foo]: src_host, dst_host\n\
imt_buckets: 65537\n\
imt_buckets[foo]: 65536\n\
plugin_buffer_size: 10240\n\
Plugin_Pipe_Size: 1024000\n\
pmacctd_flow_buffer_size: 1\n",
    )
    .unwrap();
    let got: Vec<(usize, &str)> = c.ignored.iter().map(|o| (o.origin.line, o.origin.key.as_str())).collect();
    assert!(c.ignored.iter().all(|i| !i.why.is_empty()));
    assert_eq!(
        got,
        vec![
            (3, "imt_buckets"),
            (4, "imt_buckets[foo]"),
            (5, "plugin_buffer_size"),
            (6, "Plugin_Pipe_Size"),
            (7, "pmacctd_flow_buffer_size")
        ]
    );
    // A scoped ignored key must still name a declared plugin.
    assert!(matches!(err("imt_buckets[x]: 1\n"), ConfigError::NoSuchPlugin { .. }));
}

#[test]
fn scoped_beats_unscoped_regardless_of_order() {
    let c = parse(
        "plugins: memory[a], memory[b], print[c]\n\
imt_path[a]: /tmp/a.pipe\n\
aggregate[b]: dst_host\n\
imt_path: /tmp/all.pipe\n\
aggregate: src_port\n\
print_output: json\n",
    )
    .unwrap();
    let (a, b, cc) = (c.plugin("a").unwrap(), c.plugin("b").unwrap(), c.plugin("c").unwrap());
    assert_eq!(a.imt_path, Path::new("/tmp/a.pipe"));
    assert_eq!(b.imt_path, Path::new("/tmp/all.pipe"));
    assert_eq!(a.aggregate.primitives(), &[Primitive::SrcPort]);
    assert_eq!(b.aggregate.primitives(), &[Primitive::DstHost]);
    assert_eq!(cc.aggregate.primitives(), &[Primitive::SrcPort]);
    // Unscoped plugin keys apply to the plugins of matching type only.
    assert_eq!(cc.imt_path, Path::new("/tmp/collect.pipe"));
    assert_eq!(cc.print_output, OutputFormat::Json);
    assert_eq!(a.print_output, OutputFormat::Formatted);
    // Same scope twice: the later line wins.
    let c = parse("plugins: memory[a]\naggregate[a]: src_port\naggregate[a]: dst_port\n").unwrap();
    assert_eq!(c.plugins[0].aggregate.primitives(), &[Primitive::DstPort]);
}

#[test]
fn unscoped_key_for_absent_plugin_type_is_still_checked() {
    let e = err("plugins: memory[a]\nprint_output: xml\n");
    assert!(matches!(e, ConfigError::BadValue { .. }), "{e:?}");
    assert!(parse("plugins: memory[a]\nprint_output: csv\n").is_ok());
}

#[test]
fn wrong_plugin_and_no_such_plugin() {
    let base = "plugins: memory[a], print[b]\n";
    let e = err(&format!("{base}imt_path[b]: /tmp/x.pipe\n"));
    assert_eq!(
        e,
        ConfigError::WrongPlugin {
            origin: origin("/etc/x.conf", 2, "imt_path[b]"),
            plugin: "b".into(),
            kind: "print".into()
        }
    );
    assert_eq!(e.to_string(), "/etc/x.conf:2: imt_path[b]: key does not apply to plugin 'b' of type print");
    let e = err(&format!("{base}print_output[a]: csv\n"));
    assert_eq!(e.to_string(), "/etc/x.conf:2: print_output[a]: key does not apply to plugin 'a' of type memory");
    let e = err(&format!("{base}aggregate[zz]: src_host\n"));
    assert_eq!(e, ConfigError::NoSuchPlugin { origin: origin("/etc/x.conf", 2, "aggregate[zz]"), plugin: "zz".into() });
    assert_eq!(e.to_string(), "/etc/x.conf:2: aggregate[zz]: no plugin named 'zz' is declared in 'plugins'");
    // Scoped lines before the plugins line are fine.
    assert!(parse("aggregate[a]: dst_host\nplugins: memory[a]\n").is_ok());
}

#[test]
fn syntax_errors() {
    let cases = [
        ("just words", 2, "expected 'key: value'"),
        ("aggregate[a: src_host", 2, "bad plugin scope"),
        ("aggregate[]: src_host", 2, "bad plugin scope"),
        (": value", 2, "bad key"),
        ("daemonize[a]: true", 2, "'daemonize' is daemon-wide"),
        ("plugins[a]: memory", 2, "'plugins' is daemon-wide"),
    ];
    for (line, n, why) in cases {
        let e = err(&format!("plugins: memory[a]\n{line}\n"));
        match &e {
            ConfigError::Syntax { file, line, why: w } => {
                assert_eq!((file.as_str(), *line), ("/etc/x.conf", n));
                assert!(w.contains(why), "{e}");
            }
            _ => panic!("{line}: {e:?}"),
        }
        assert!(e.to_string().starts_with("/etc/x.conf:2: syntax error: "), "{e}");
    }
}

#[test]
fn comments_blank_lines_whitespace_and_case() {
    let c = parse("  ! comment\n\n\t\n   AGGREGATE[A] :  dst_host , src_port  \nplugins: Memory[A]\n").unwrap();
    let a = c.plugin("A").unwrap();
    assert_eq!(a.aggregate.primitives(), &[Primitive::DstHost, Primitive::SrcPort]);
    // Plugin names are case-sensitive, unlike keys.
    assert!(matches!(err("plugins: memory[A]\naggregate[a]: dst_host\n"), ConfigError::NoSuchPlugin { .. }));
}

#[test]
fn overrides_beat_the_file() {
    let text = "plugins: memory[a], print[b]\n\
aggregate[a]: dst_host\n\
imt_path[a]: /tmp/a.pipe\n\
print_refresh_time[b]: 10\n\
snaplen: 200\n";
    let o = ov(&[
        ("aggregate", "src_port"),
        ("imt_path", "/tmp/cli.pipe"),
        ("print_refresh_time", "5"),
        ("snaplen", "96"),
        ("daemonize", "true"),
        ("interface", "eth9"),
        ("pcap_savefile", "/tmp/y.pcap"),
        ("pidfile", "/tmp/p.pid"),
        ("pmacctd_renormalize", "true"),
    ]);
    let c = Config::parse_str(text, "/etc/x.conf", &o).unwrap();
    let (a, b) = (c.plugin("a").unwrap(), c.plugin("b").unwrap());
    assert_eq!(a.aggregate.primitives(), &[Primitive::SrcPort]);
    assert_eq!(b.aggregate.primitives(), &[Primitive::SrcPort]);
    assert_eq!(a.imt_path, Path::new("/tmp/cli.pipe"));
    assert_eq!(b.print_refresh_time, 5);
    let g = &c.global;
    assert_eq!((g.snaplen, g.daemonize, g.renormalize), (96, true, true));
    assert_eq!(g.interface.as_deref(), Some("eth9"));
    assert_eq!(g.pcap_savefile, Some(PathBuf::from("/tmp/y.pcap")));
    assert_eq!(g.pidfile, Some(PathBuf::from("/tmp/p.pid")));

    // -P replaces the file's plugins; scoped file keys must then name the new ones.
    let c = Config::parse_str("plugins: memory[a]\n", "/etc/x.conf", &ov(&[("plugins", "print[z]")])).unwrap();
    assert_eq!(c.plugins.len(), 1);
    assert_eq!((c.plugins[0].name.as_str(), c.plugins[0].kind), ("z", PluginKind::Print));
    assert_eq!(c.plugins[0].origin.file, "command line");
    let e = Config::parse_str(
        "plugins: memory[a]\naggregate[a]: src_host\n",
        "/etc/x.conf",
        &ov(&[("plugins", "print[z]")]),
    )
    .unwrap_err();
    assert!(matches!(e, ConfigError::NoSuchPlugin { .. }), "{e:?}");
}

#[test]
fn override_errors_name_the_command_line() {
    let e = Config::parse_str("", "/etc/x.conf", &ov(&[("aggregate", "bogus")])).unwrap_err();
    assert_eq!(e.to_string(), "command line: aggregate: bad value 'bogus': unknown aggregation primitive 'bogus'");
    let e = Config::from_overrides(&ov(&[("snaplen", "x")])).unwrap_err();
    match e {
        ConfigError::BadValue { origin, .. } => assert_eq!(origin, origin_cli("snaplen")),
        e => panic!("{e:?}"),
    }
    let e = Config::from_overrides(&ov(&[("nope", "x")])).unwrap_err();
    assert_eq!(e.to_string(), "command line: nope: unknown configuration key");
}

fn origin_cli(key: &str) -> xacct_core::config::Origin {
    origin("command line", 0, key)
}

#[test]
fn from_overrides_alone() {
    let c = Config::from_overrides(&ov(&[
        ("interface", "lo"),
        ("plugins", "memory[m]"),
        ("aggregate", "src_host,dst_host"),
    ]))
    .unwrap();
    assert_eq!(c.global.interface.as_deref(), Some("lo"));
    assert_eq!(c.plugins[0].name, "m");
    assert_eq!(c.plugins[0].aggregate.primitives(), &[Primitive::SrcHost, Primitive::DstHost]);
    let c = Config::from_overrides(&[]).unwrap();
    assert_eq!((c.plugins.len(), c.plugins[0].kind), (1, PluginKind::Memory));
}

#[test]
fn load_reads_files_and_reports_io_errors() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("pmacctd.conf");
    std::fs::write(&path, "plugins: memory[x]\nbogus: 1\n").unwrap();
    let e = Config::load(&path, &[]).unwrap_err();
    assert_eq!(e.to_string(), format!("{}:2: bogus: unknown configuration key", path.display()));
    std::fs::write(&path, PNRG).unwrap();
    assert_eq!(Config::load(&path, &[]).unwrap().plugins.len(), 2);
    let e = Config::load(Path::new("/nonexistent/x.conf"), &[]).unwrap_err();
    assert!(matches!(&e, ConfigError::Io { path, .. } if path == "/nonexistent/x.conf"), "{e:?}");
}

#[test]
fn debug_and_flow_lifetimes_are_read() {
    let c = Config::parse_str(
        "debug: true\npmacctd_flow_lifetime: 30\npmacctd_flow_tcp_lifetime: 120\n",
        "/etc/x.conf",
        &[],
    )
    .expect("valid config");
    assert!(c.global.debug);
    assert_eq!((c.global.flow_lifetime, c.global.flow_tcp_lifetime), (30, 120));
    let d = Config::parse_str("", "/etc/x.conf", &[]).expect("empty config");
    assert!(!d.global.debug);
    assert_eq!((d.global.flow_lifetime, d.global.flow_tcp_lifetime), (60, 60));
}

#[test]
fn capture_method_and_xdp_action() {
    let c = Config::parse_str("capture_method: afxdp\nxdp_action: drop\n", "/etc/x.conf", &[]).expect("valid");
    assert_eq!((c.global.capture_method, c.global.xdp_action), (CaptureMethod::AfXdp, XdpAction::Drop));
    let d = Config::parse_str("", "/etc/x.conf", &[]).expect("empty");
    assert_eq!((d.global.capture_method, d.global.xdp_action), (CaptureMethod::Auto, XdpAction::Pass));
    let e = Config::parse_str("capture_method: dpdk\n", "/etc/x.conf", &[]).unwrap_err();
    assert!(e.to_string().starts_with("/etc/x.conf:1: capture_method: bad value 'dpdk'"), "{e}");
}

#[test]
fn tagging_keys() {
    let dir = tempfile::tempdir().unwrap();
    let good = dir.path().join("good.map");
    std::fs::write(&good, "id=1 in=10\nid=2 filter='net 10.0.0.0/8'\n").unwrap();
    let bad = dir.path().join("bad.map");
    std::fs::write(&bad, "id=1 in=10\nid=2 in=x\n").unwrap();
    let pcap = "pcap_savefile: /tmp/x.pcap\n";
    // Global map, per-plugin map, filters and post tags.
    let c = parse(&format!(
        "{pcap}plugins: memory[a], print[b]\npre_tag_map: {g}\npre_tag_map[b]: {g}\npre_tag_filter[a]: 1,5-9,-3\npre_tag2_filter[b]: 0\npre_tag_label_filter[a]: -x,null\npost_tag[b]: 7\npost_tag2[b]: 8\nmaps_index: true\nmaps_entries: 10\nmaps_row_len: 100\n",
        g = good.display()
    ))
    .unwrap();
    assert_eq!(c.global.pre_tag_map.as_ref().map(|m| m.0.clone()), Some(good.clone()));
    assert!(c.global.maps_index);
    assert_eq!((c.global.maps_entries, c.global.maps_row_len), (Some(10), Some(100)));
    let (a, b) = (&c.plugins[0], &c.plugins[1]);
    assert_eq!(a.pre_tag_map, None, "the unscoped map is the global one");
    assert_eq!(b.pre_tag_map.as_ref(), Some(&good));
    assert!(a.tag_filters.tag.as_ref().unwrap().takes(7) && !a.tag_filters.tag.as_ref().unwrap().takes(3));
    assert!(a.tag_filters.label.is_some() && a.tag_filters.tag2.is_none());
    assert!(b.tag_filters.tag2.as_ref().unwrap().takes(0) && !b.tag_filters.tag2.as_ref().unwrap().takes(1));
    assert_eq!((b.post_tag, b.post_tag2, a.post_tag), (Some(7), Some(8), None));
    // A bad map is refused at its line, through the key that names it.
    let e = err(&format!("{pcap}pre_tag_map: {}\n", bad.display()));
    assert_eq!(
        e.to_string(),
        format!("/etc/x.conf:2: pre_tag_map: bad value '{b}': {b}:2: in=x: 'x' is not a number", b = bad.display())
    );
    let e = err(&format!("{pcap}plugins: memory[a]\npre_tag_map[a]: {}\n", bad.display()));
    assert!(e.to_string().starts_with("/etc/x.conf:3: pre_tag_map[a]: bad value"), "{e}");
    // pmacctd has no exporter: `ip` is refused there, taken by nfacctd.
    let ip = dir.path().join("ip.map");
    std::fs::write(&ip, "id=1 ip=192.168.1.1\n").unwrap();
    let e = err(&format!("{pcap}pre_tag_map: {}\n", ip.display()));
    assert!(e.to_string().ends_with(":1: key 'ip': no source of this daemon fills it"), "{e}");
    parse(&format!("nfacctd_port: 2100\npre_tag_map: {}\n", ip.display())).unwrap();
    // maps_entries applies to the map.
    let e = err(&format!("{pcap}maps_entries: 1\npre_tag_map: {}\n", good.display()));
    assert!(e.to_string().contains(":2: more rules than maps_entries (1)"), "{e}");
    // Tag filters: per plugin only, pmacct's syntax.
    let e = err("plugins: memory[a]\npre_tag_filter: 10\n");
    assert!(
        e.to_string().starts_with("/etc/x.conf:2: pre_tag_filter: bad value '10': a tag filter cannot be global"),
        "{e}"
    );
    let e = err("plugins: memory[a]\npre_tag_filter[a]: 9-3\n");
    assert!(e.to_string().contains("range start must be below its end"), "{e}");
    let e = err("plugins: memory[a]\npost_tag[a]: -1\n");
    assert!(matches!(e, ConfigError::BadValue { .. }), "{e:?}");
    let e = err("plugins: memory[a]\nmaps_index[a]: true\n");
    assert!(matches!(e, ConfigError::Syntax { .. }), "{e:?}");
}

#[test]
fn nfprobe_keys() {
    use xacct_core::config::export::{FromTag, ProbeDirection};
    let c = parse(
        "interface: eth0\nplugins: nfprobe[x], nfprobe[y]\nnfprobe_receiver[x]: [::1]:9995\nnfprobe_version[x]: 5\n\
         nfprobe_engine[x]: 3:7\nnfprobe_timeouts[x]: tcp=10m:udp=30:maxlife=2h\nnfprobe_maxflows[x]: 100\n\
         nfprobe_direction[x]: tag2\nnfprobe_ifindex[x]: 12\nnfprobe_engine[y]: 77\naggregate[y]: src_host,dst_host\n",
    )
    .unwrap();
    let x = c.plugin("x").unwrap();
    assert_eq!(x.kind, PluginKind::Nfprobe);
    let n = x.nfprobe.as_deref().unwrap();
    assert_eq!(n.receiver, "[::1]:9995".parse().unwrap());
    assert_eq!((n.version, n.engine_type, n.engine_id, n.maxflows), (5, 3, 7, 100));
    assert_eq!((n.timeouts.tcp, n.timeouts.udp, n.timeouts.maxlife, n.timeouts.tcp_fin), (600, 30, 7200, 300));
    assert_eq!(n.direction, Some(FromTag::Tag2));
    assert_eq!(n.ifindex, Some(FromTag::Fixed(12)));
    // pmacct's default aggregate, and TCP flags whenever ports are exported.
    for p in [Primitive::SrcHost, Primitive::DstHost, Primitive::SrcPort, Primitive::DstPort, Primitive::Proto] {
        assert!(x.aggregate.has(p), "{p}");
    }
    assert!(x.aggregate.has(Primitive::Tos) && x.aggregate.has(Primitive::TcpFlags));
    assert!(x.history().is_some(), "per-second bins feed the flow cache");
    let y = c.plugin("y").unwrap().nfprobe.as_deref().unwrap().clone();
    assert_eq!((y.version, y.engine_id, y.receiver), (10, 77, "127.0.0.1:2100".parse().unwrap()));
    assert_eq!(c.plugin("y").unwrap().aggregate.to_string(), "src_host,dst_host");
    let _ = ProbeDirection::In;

    // Bad values name the line and key.
    for (text, line, needle) in [
        ("plugins: nfprobe[x]\nnfprobe_version[x]: 7\n", 2, "5, 9 or 10"),
        ("plugins: nfprobe[x]\nnfprobe_timeouts[x]: tcp=1:bogus=2\n", 2, "unknown timeout"),
        ("plugins: nfprobe[x]\nnfprobe_timeouts[x]: general=0\n", 2, "general=0"),
        ("plugins: nfprobe[x]\nnfprobe_receiver[x]: 127.0.0.1\n", 2, "host:port"),
        ("plugins: nfprobe[x]\nnfprobe_version[x]: 5\nnfprobe_engine[x]: 300\n", 3, "engine_type:engine_id"),
        ("plugins: nfprobe[x]\nnfprobe_engine[x]: 1:2\n", 2, "one source id"),
        ("plugins: nfprobe[x]\nnfprobe_direction: in\n", 2, "for one plugin"),
        ("plugins: nfprobe[x]\naggregate[x]: sum_host\n", 2, "sum_"),
        ("plugins: nfprobe[x]\nnfprobe_dtls[x]: true\n", 2, "DTLS"),
    ] {
        let text = format!("interface: eth0\n{text}");
        let e = err(&text).to_string();
        assert!(e.contains(&format!("/etc/x.conf:{}", line + 1)), "{text}: {e}");
        assert!(e.contains(needle), "{text}: {e}");
    }
}

#[test]
fn sfprobe_and_tee_keys() {
    let c = parse(
        "interface: eth0\nplugins: sfprobe[s]\nsfprobe_receiver[s]: 192.0.2.1:6343\nsfprobe_agentip[s]: 192.0.2.9\n\
         sfprobe_agentsubid[s]: 1402\nsfprobe_ifspeed[s]: 1000000000\nsfprobe_ifindex[s]: tag\nsfprobe_direction[s]: out\n",
    )
    .unwrap();
    let s = c.plugin("s").unwrap().sfprobe.as_deref().unwrap().clone();
    assert_eq!((s.agent_subid, s.ifspeed), (1402, 1_000_000_000));
    assert_eq!(s.agent_ip, "192.0.2.9".parse::<std::net::IpAddr>().unwrap());
    for (text, line, needle) in [
        ("plugins: sfprobe[s]\nsfprobe_agentip[s]: ::1\n", 1, "address family"),
        ("plugins: sfprobe[s]\nsfprobe_ipprec[s]: 9\n", 2, "0 to 7"),
        ("plugins: sfprobe[s]\nsfprobe_direction: in\n", 2, "for one plugin"),
    ] {
        let text = format!("interface: eth0\n{text}");
        let e = err(&text).to_string();
        assert!(e.contains(&format!("/etc/x.conf:{}", line + 1)), "{text}: {e}");
        assert!(e.contains(needle), "{text}: {e}");
    }
    // sfprobe samples packets; tee replicates datagrams.
    assert!(err("nfacctd_port: 2100\nplugins: sfprobe[s]\n").to_string().contains("pmacctd mode"));
    assert!(err("interface: eth0\nplugins: tee[t]\ntee_receivers: /nonexistent\n")
        .to_string()
        .contains("nfacctd or sfacctd"));
    let e = err("nfacctd_port: 2100\nplugins: tee[t]\ntee_receivers: /nonexistent\n").to_string();
    assert!(e.contains("/etc/x.conf:3") && e.contains("/nonexistent"), "{e}");
}
