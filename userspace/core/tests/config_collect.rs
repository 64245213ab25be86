//! Collector keys: nfacctd_*/sfacctd_* listeners, receive buffers, renormalisation, time_new.

use std::net::IpAddr;
use xacct_core::config::{Config, ConfigError};

fn parse(text: &str) -> Result<Config, ConfigError> {
    Config::parse_str(text, "/etc/x.conf", &[])
}

#[test]
fn no_collector_by_default_and_capture_falls_back() {
    let c = parse("plugins: memory[a]\n").unwrap();
    assert_eq!(c.global.netflow_listen(), None);
    assert_eq!(c.global.sflow_listen(), None);
    assert!(c.global.captures_packets());
    assert_eq!(c.global.collector_threads, 1);
}

#[test]
fn port_alone_starts_a_collector_on_all_addresses() {
    let c = parse("plugins: memory[a]\nnfacctd_port: 9995\n").unwrap();
    assert_eq!(c.global.netflow_listen(), Some((None, 9995)));
    assert_eq!(c.global.sflow_listen(), None);
    // A collector alone means no packet capture.
    assert!(!c.global.captures_packets());
}

#[test]
fn ip_alone_uses_the_default_ports() {
    let c = parse("nfacctd_ip: 127.0.0.1\nsfacctd_ip: ::1\n").unwrap();
    let lo: IpAddr = "127.0.0.1".parse().unwrap();
    let lo6: IpAddr = "::1".parse().unwrap();
    assert_eq!(c.global.netflow_listen(), Some((Some(lo), 2100)));
    assert_eq!(c.global.sflow_listen(), Some((Some(lo6), 6343)));
}

#[test]
fn collector_and_interface_both_run() {
    let c = parse("sfacctd_port: 6343\ninterface: eth0\n").unwrap();
    assert!(c.global.captures_packets());
    assert_eq!(c.global.sflow_listen(), Some((None, 6343)));
}

#[test]
fn buffers_renormalize_time_new_threads() {
    let c = parse(
        "nfacctd_port: 2100\nnfacctd_pipe_size: 8388608\nsfacctd_pipe_size: 1048576\n\
         nfacctd_renormalize: true\nsfacctd_renormalize: yes\nnfacctd_time_new: true\ncollector_threads: 4\n",
    )
    .unwrap();
    let g = &c.global;
    assert_eq!(g.nfacctd_pipe_size, Some(8_388_608));
    assert_eq!(g.sfacctd_pipe_size, Some(1_048_576));
    assert!(g.nfacctd_renormalize && g.sfacctd_renormalize);
    assert!(g.nfacctd_time_new && !g.sfacctd_time_new);
    assert_eq!(g.collector_threads, 4);
    assert_eq!(g.nfacctd_templates_file, None);
    // pmacctd's own key still means the packet path only.
    assert!(!g.renormalize);
}

#[test]
fn bad_values_are_refused_with_their_origin() {
    for (text, key) in [
        ("nfacctd_port: 0\n", "nfacctd_port"),
        ("nfacctd_port: 70000\n", "nfacctd_port"),
        ("sfacctd_ip: 10.0.0\n", "sfacctd_ip"),
        ("collector_threads: 0\n", "collector_threads"),
        ("nfacctd_renormalize: maybe\n", "nfacctd_renormalize"),
    ] {
        match parse(text) {
            Err(ConfigError::BadValue { origin, .. }) => assert_eq!(origin.key, key, "{text}"),
            other => panic!("{text}: {other:?}"),
        }
    }
}

#[test]
fn collector_keys_are_global_only() {
    assert!(parse("plugins: memory[a]\nnfacctd_port[a]: 2100\n").is_err());
}

#[test]
fn other_collector_keys_are_refused_with_their_reason() {
    let e = parse("sfacctd_counter_file: /tmp/t\n").unwrap_err();
    assert!(matches!(e, ConfigError::Refused { .. }), "{e:?}");
    let e = parse("nfacctd_port: 2100\nnfacctd_time_secs: true\n").unwrap_err();
    assert!(
        e.to_string().starts_with("/etc/x.conf:2: nfacctd_time_secs: refused: NetFlow v5 uptimes in seconds"),
        "{e}"
    );
}

#[test]
fn templates_file() {
    let c = parse("nfacctd_port: 2100\nnfacctd_templates_file: /var/lib/xacct/templates.json\n").unwrap();
    assert_eq!(c.global.nfacctd_templates_file.as_deref(), Some(std::path::Path::new("/var/lib/xacct/templates.json")));
}
