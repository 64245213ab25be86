//! Which daemon(s) a configuration runs as (--mode, argv[0], the keys), with why; and the
//! *_net/*_as methods per daemon, with what each needs.

use xacct_core::config::{AsMethod, Config, ConfigError, Daemon, Launch, Methods, NetMethod, Origin, Why};

fn parse(text: &str) -> Result<Config, ConfigError> {
    Config::parse_str(text, "/etc/x.conf", &[])
}

fn parse_as(text: &str, launch: Launch) -> Result<Config, ConfigError> {
    Config::parse_with(text, "/etc/x.conf", &[], &launch)
}

fn argv0(d: Daemon) -> Launch {
    Launch { argv0: Some(d), flags: vec![] }
}

fn flags(d: &[Daemon]) -> Launch {
    Launch { argv0: None, flags: d.to_vec() }
}

fn key(line: usize, key: &str) -> Why {
    Why::Key(Origin { file: "/etc/x.conf".into(), line, key: key.into() })
}

const EXAMPLE: &str = "/usr/lib/x86_64-linux-gnu/pmacct/examples/nfacctd-sql.conf.example";

#[test]
fn debian_nfacctd_example_is_a_collector_on_2100() {
    let text = match std::fs::read_to_string(EXAMPLE) {
        Ok(t) => t,
        Err(e) => {
            assert!(std::env::var("CI").as_deref() != Ok("true"), "{EXAMPLE}: {e}");
            eprintln!("SKIP: {EXAMPLE}: {e} (apt-get install pmacct)");
            return;
        }
    };
    let line =
        text.lines().position(|l| l.starts_with("nfacctd_time_new")).expect("the example sets nfacctd_time_new") + 1;
    let c = Config::parse_str(&text, "nfacctd-sql.conf", &[]).unwrap();
    let g = &c.global;
    assert_eq!(g.netflow_listen(), Some((None, 2100)));
    assert!(!g.captures_packets(), "a collector's configuration must never capture on a default device");
    assert_eq!(g.sflow_listen(), None);
    assert_eq!(
        g.modes.describe(),
        vec![format!("mode nfacctd: the config sets nfacctd_time_new (nfacctd-sql.conf:{line})")]
    );
}

#[test]
fn keys_pick_the_daemons() {
    // Any collector key starts that collector, on pmacct's default port and all addresses.
    let c = parse("plugins: memory[a]\nnfacctd_as: file\nnfacctd_net: file\nnetworks_file: /dev/null\n").unwrap();
    assert_eq!(c.global.modes.netflow, Some(key(2, "nfacctd_as")));
    assert_eq!(c.global.netflow_listen(), Some((None, 2100)));
    assert!(!c.global.captures_packets());
    let c = parse("sfacctd_renormalize: true\n").unwrap();
    assert_eq!(c.global.sflow_listen(), Some((None, 6343)));
    assert_eq!(c.global.netflow_listen(), None);
    // An interface and collector keys: both run.
    let c = parse("nfacctd_time_new: true\npcap_interface: eth9\n").unwrap();
    assert_eq!(c.global.modes.capture, Some(key(2, "pcap_interface")));
    assert_eq!(c.global.modes.netflow, Some(key(1, "nfacctd_time_new")));
    // A pmacctd configuration without an interface captures on the default device.
    let c = parse("plugins: memory\naggregate: src_host\n").unwrap();
    assert_eq!(c.global.modes.capture, Some(Why::Default));
    assert_eq!(
        c.global.modes.describe(),
        vec!["mode pmacctd: no collector key and no --mode: pmacctd's default, capture".to_string()]
    );
    // A command-line interface (-i) counts like the key.
    let c = Config::parse_str("nfacctd_port: 2101\n", "/etc/x.conf", &[("interface".into(), "eth1".into())]).unwrap();
    assert!(c.global.modes.describe().contains(&"mode pmacctd: the command line sets interface".to_string()));
}

#[test]
fn collector_configs_ignore_other_daemons_keys_with_a_reason() {
    // pmacctd keys that open no source: accepted, no effect, logged.
    let c = parse("nfacctd_port: 2100\npcap_filter: tcp\npmacctd_flow_lifetime: 30\npmacctd_pipe_size: 10\n").unwrap();
    assert!(!c.global.captures_packets());
    let why: Vec<(usize, &str)> = c.ignored.iter().map(|i| (i.origin.line, i.why.as_str())).collect();
    assert_eq!(
        why,
        vec![
            (2, "a pmacctd key, and xacctd runs as nfacctd here (no pmacctd source)"),
            (3, "a pmacctd key, and xacctd runs as nfacctd here (no pmacctd source)"),
            // A key with no effect anywhere is logged once, with its own reason.
            (
                4,
                "xacct's workers hand the plugins their shards in memory: there is no pipe or buffer between core and plugins to size"
            ),
        ]
    );
}

#[test]
fn argv0_and_flags_pick_exactly_their_daemons() {
    assert_eq!(Daemon::from_argv0("/usr/sbin/nfacctd"), Some(Daemon::Nfacctd));
    assert_eq!(Daemon::from_argv0("sfacctd"), Some(Daemon::Sfacctd));
    assert_eq!(Daemon::from_argv0("./pmacctd"), Some(Daemon::Pmacctd));
    assert_eq!(Daemon::from_argv0("/usr/bin/xacctd"), None);
    // Started as nfacctd with no nfacctd key at all: a collector on 2100.
    let c = parse_as("plugins: memory[a]\n", argv0(Daemon::Nfacctd)).unwrap();
    assert_eq!(c.global.netflow_listen(), Some((None, 2100)));
    assert!(!c.global.captures_packets());
    assert_eq!(c.global.modes.describe(), vec!["mode nfacctd: started as nfacctd".to_string()]);
    // Started as sfacctd, an nfacctd key does nothing (said so); one that opens a source is an
    // error naming the line.
    let c = parse_as("nfacctd_time_new: true\n", argv0(Daemon::Sfacctd)).unwrap();
    assert_eq!(c.global.sflow_listen(), Some((None, 6343)));
    assert_eq!(c.global.netflow_listen(), None);
    assert_eq!(c.ignored.len(), 1);
    let e = parse_as("plugins: memory\npcap_interface: eth0\n", argv0(Daemon::Nfacctd)).unwrap_err();
    assert!(matches!(e, ConfigError::Mode { .. }), "{e:?}");
    assert_eq!(
        e.to_string(),
        "/etc/x.conf:2: pcap_interface: xacctd runs as nfacctd here, and this pmacctd key would open a source; start xacctd under its own name (or add --mode pmacctd) to run both"
    );
    let e = parse_as("nfacctd_port: 2100\n", argv0(Daemon::Pmacctd)).unwrap_err();
    assert!(e.to_string().starts_with("/etc/x.conf:1: nfacctd_port: xacctd runs as pmacctd here"), "{e}");
    // Flags beat argv[0], and several run together.
    let c = parse_as(
        "pcap_interface: eth0\nnfacctd_port: 2200\n",
        Launch { argv0: Some(Daemon::Sfacctd), flags: vec![Daemon::Nfacctd, Daemon::Pmacctd] },
    )
    .unwrap();
    assert_eq!(c.global.modes.capture, Some(Why::Flag));
    assert_eq!(c.global.netflow_listen(), Some((None, 2200)));
    assert_eq!(c.global.sflow_listen(), None);
    assert_eq!(
        c.global.modes.describe(),
        vec!["mode pmacctd: --mode pmacctd".to_string(), "mode nfacctd: --mode nfacctd".to_string()]
    );
    // --mode pmacctd alone: capture, even with no interface (libpcap's default device).
    let c = parse_as("", flags(&[Daemon::Pmacctd])).unwrap();
    assert!(c.global.captures_packets());
}

#[test]
fn collector_methods_default_to_the_record_and_parse_pmacct_values() {
    let c = parse("nfacctd_port: 2100\n").unwrap();
    assert_eq!((c.global.netflow_methods, c.global.sflow_methods), (Methods::COLLECTOR, Methods::COLLECTOR));
    for (v, net, asn) in [
        ("netflow", NetMethod::Record, AsMethod::Record),
        ("sflow", NetMethod::Record, AsMethod::Record),
        ("file", NetMethod::File, AsMethod::File),
        ("longest", NetMethod::Longest, AsMethod::Longest),
        ("fallback", NetMethod::Longest, AsMethod::Longest),
    ] {
        let c =
            parse(&format!("nfacctd_net: {v}\nsfacctd_as: {v}\nnfacctd_as: {v}\nnetworks_file: /dev/null\n")).unwrap();
        assert_eq!(c.global.netflow_methods, Methods { net, asn }, "{v}");
        assert_eq!(c.global.sflow_methods.asn, asn, "{v}");
    }
    // pmacct's older values: true = file, false = what the record says.
    let c = parse("nfacctd_as: true\nsfacctd_as: false\n").unwrap();
    assert_eq!((c.global.netflow_methods.asn, c.global.sflow_methods.asn), (AsMethod::File, AsMethod::Record));
    let c = parse("nfacctd_net: mask\nnetworks_mask: 20\n").unwrap();
    assert_eq!(c.global.netflow_methods.net, NetMethod::Mask);
    for (k, v, feed) in [
        ("nfacctd_as", "bgp", "a BGP feed (bgp_daemon)"),
        ("sfacctd_net", "igp", "an IGP feed (isis_daemon)"),
        ("nfacctd_net", "bmp", "a BMP feed (bmp_daemon)"),
    ] {
        let e = parse(&format!("plugins: memory\n{k}: {v}\n")).unwrap_err();
        assert_eq!(
            e.to_string(),
            format!("/etc/x.conf:2: {k}: refused: '{v}' needs {feed}, which xacct does not build")
        );
    }
    let e = parse("nfacctd_as: mask\n").unwrap_err();
    assert_eq!(e.to_string(), "/etc/x.conf:1: nfacctd_as: bad value 'mask': expected netflow, sflow, file or longest");
}

#[test]
fn what_each_method_needs() {
    let nets = "/tmp/xacct-config-modes-nets.lst";
    std::fs::write(nets, "65001,10.0.0.0/8\n").unwrap();
    // A collector with the record's methods needs no file for nets, masks and ASes.
    assert!(parse("nfacctd_port: 2100\naggregate: src_net, dst_mask, src_as\n").is_ok());
    // file needs a networks_file; mask a networks_mask.
    let e = parse("nfacctd_port: 2100\naggregate: src_net\nnfacctd_net: file\n").unwrap_err();
    assert_eq!(e.to_string(), "/etc/x.conf:2: aggregate: bad value 'src_net': nfacctd_net: file needs a networks_file");
    let e = parse("sfacctd_port: 6343\naggregate: dst_as\nsfacctd_as: file\n").unwrap_err();
    assert!(e.to_string().ends_with("sfacctd_as: file needs a networks_file"), "{e}");
    let e = parse("nfacctd_port: 2100\naggregate: dst_mask\nnfacctd_net: mask\n").unwrap_err();
    assert!(e.to_string().ends_with("nfacctd_net: mask needs a networks_mask"), "{e}");
    assert!(parse(&format!(
        "nfacctd_port: 2100\naggregate: src_net, src_as\nnfacctd_net: file\nnfacctd_as: file\nnetworks_file: {nets}\n"
    ))
    .is_ok());
    // Capture and a collector together: pmacctd's needs apply too.
    let e = parse("nfacctd_port: 2100\npcap_interface: eth0\naggregate: src_net\n").unwrap_err();
    assert!(e.to_string().ends_with("net and mask primitives need a networks_file or a networks_mask"), "{e}");
    // A networks_file no method of a running collector uses is said at start.
    let c =
        parse(&format!("nfacctd_port: 2100\nplugins: memory[a]\naggregate: src_net\nnetworks_file: {nets}\n")).unwrap();
    assert_eq!(
        c.notes,
        vec!["plugin a: its networks_file is not used for nfacctd's records: nfacctd_net and nfacctd_as are 'netflow' (pmacct's default); set them to file or longest to use it".to_string()]
    );
    let _ = std::fs::remove_file(nets);
}

#[test]
fn daemon_process_and_collector_socket_keys() {
    let c = parse(
        "syslog: LOCAL3\nfiles_umask: 027\nfiles_uid: root\nfiles_gid: 0\nproc_priority: 5\ncore_proc_name: edge\n\
         plugin_exit_any: true\nmaps_refresh: false\nnfacctd_ipv6_only: true\nnfacctd_mcast_groups: 239.1.1.1, ff05::1\n\
         pcap_direction: in\npcap_ifindex: sys\npcap_interface_wait: true\npcap_savefile_delay: 3\npmacctd_time_new: true\n\
         pcap_interface: eth0\nplugins: memory[a], print[p]\nproc_priority[p]: 10\n",
    )
    .unwrap();
    let g = &c.global;
    assert_eq!(g.syslog.as_deref(), Some("local3"));
    assert_eq!((g.files_umask, g.files_uid, g.files_gid), (Some(0o027), Some(0), Some(0)));
    assert_eq!((g.proc_priority, g.core_proc_name.as_str()), (Some(5), "edge"));
    assert!(g.plugin_exit_any && !g.maps_refresh && g.nfacctd_ipv6_only && g.pcap_interface_wait && g.pmacctd_time_new);
    assert_eq!(
        g.nfacctd_mcast_groups,
        vec!["239.1.1.1".parse::<std::net::IpAddr>().unwrap(), "ff05::1".parse().unwrap()]
    );
    assert_eq!(g.pcap_direction, Some(xacct_core::config::Direction::In));
    assert_eq!(g.pcap_ifindex, xacct_core::config::IfIndexFrom::Sys);
    assert_eq!(g.pcap_savefile_delay, 3);
    // proc_priority: unscoped for the daemon and every plugin, scoped for one.
    assert_eq!(c.plugin("a").unwrap().proc_priority, Some(5));
    assert_eq!(c.plugin("p").unwrap().proc_priority, Some(10));
    assert_eq!(c.plugin("a").unwrap().files_uid, Some(0));
    for (line, why) in [
        ("syslog: local9", "expected auth, mail, daemon, kern, user or local0 to local7"),
        ("files_umask: 0o77", "expected an octal mask such as 077"),
        ("files_umask: 020", "a mask must at least take away others' write permission (002)"),
        ("files_uid: no-such-user-here", "no such name in /etc/passwd"),
        ("proc_priority: 40", "expected a priority from -20 to 19"),
        ("nfacctd_mcast_groups: 10.0.0.1", "10.0.0.1 is not a multicast group"),
        ("pcap_direction: both", "expected in or out"),
        ("networks_mask: 0", "expected a mask length from 1 to 128"),
    ] {
        let e = parse(&format!("plugins: memory\n{line}\n")).unwrap_err();
        assert!(matches!(e, ConfigError::BadValue { .. }), "{line}: {e:?}");
        assert!(e.to_string().ends_with(why), "{line}: {e}");
    }
    let e = parse("pcap_ifindex: hash\n").unwrap_err();
    assert!(matches!(e, ConfigError::Refused { .. }), "{e:?}");
    let e = parse("plugins: print[p]\nprint_latest_file: /tmp/latest\n").unwrap_err();
    assert!(e.to_string().ends_with("print_latest_file needs print_output_file"), "{e}");
    let e = parse("plugins: print[p]\nprint_output_file: /tmp/o-%H\nprint_latest_file: /tmp/l-%H\n").unwrap_err();
    assert!(e.to_string().ends_with("time variables are not allowed in print_latest_file"), "{e}");
}

#[test]
fn older_names_of_pmacct_s_dictionary() {
    let c = parse("nfacctd_proc_name: edge\nnfacctd_as_new: file\nsfacctd_as_new: longest\nnetworks_file: /dev/null\nplugins: mysql[s]\nsql_backup_host: 10.0.0.9\n").unwrap();
    assert_eq!(c.global.core_proc_name, "edge");
    assert_eq!((c.global.netflow_methods.asn, c.global.sflow_methods.asn), (AsMethod::File, AsMethod::Longest));
    assert_eq!(c.plugin("s").unwrap().sql.as_ref().unwrap().recovery_backup_host.as_deref(), Some("10.0.0.9"));
    for key in ["mongo_host", "imt_passwd", "igp_daemon", "amqp_time_roundoff"] {
        assert!(matches!(parse(&format!("{key}: x\n")), Err(ConfigError::Refused { .. })), "{key}");
    }
}
