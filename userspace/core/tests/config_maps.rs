//! networks_file / ports_file as seen from the configuration: checked at config time, errors
//! naming both the config line and the map file line; net/AS aggregation needs a networks_file.

use xacct_core::config::{Config, ConfigError};

fn parse(text: &str) -> Result<Config, ConfigError> {
    Config::parse_str(text, "/etc/x.conf", &[])
}

#[test]
fn maps_are_loaded_at_config_time() {
    let dir = tempfile::tempdir().unwrap();
    let nets = dir.path().join("networks.lst");
    let ports = dir.path().join("ports.lst");
    std::fs::write(&nets, "! nets\n65001,10.0.0.0/8\n2001:db8::/32\n").unwrap();
    std::fs::write(&ports, "80\n443\n").unwrap();
    // The GWEN configuration from the seed, with real files.
    let text = format!(
        "interface: eth0\n\
plugins: memory[in], memory[out]\n\
networks_file: {}\n\
ports_file[in]: {}\n\
aggregate[out]: src_net\n\
aggregate[in]: dst_net\n\
aggregate_filter[out]: src net 10.0.0.0/8\n\
aggregate_filter[in]: dst net 10.0.0.0/8\n\
imt_path[out]: /tmp/pmacct_out.pipe\n\
imt_path[in]: /tmp/pmacct_in.pipe\n",
        nets.display(),
        ports.display()
    );
    let c = parse(&text).unwrap();
    let (i, o) = (c.plugin("in").unwrap(), c.plugin("out").unwrap());
    assert_eq!(i.networks_file.as_deref(), Some(nets.as_path()));
    assert_eq!(o.networks_file.as_deref(), Some(nets.as_path()));
    assert_eq!(i.ports_file.as_deref(), Some(ports.as_path()));
    assert_eq!(o.ports_file, None);
    assert!(!c.global.as_from_networks_file);
}

#[test]
fn map_errors_name_config_line_and_map_line() {
    let dir = tempfile::tempdir().unwrap();
    let nets = dir.path().join("networks.lst");
    std::fs::write(&nets, "10.0.0.0/8\n! c\n10.1.0.0/40\n").unwrap();
    let e = parse(&format!("plugins: memory[a]\n\nnetworks_file[a]: {}\n", nets.display())).unwrap_err();
    assert!(matches!(e, ConfigError::BadValue { .. }), "{e:?}");
    let n = nets.display();
    assert_eq!(
        e.to_string(),
        format!("/etc/x.conf:3: networks_file[a]: bad value '{n}': {n}:3: prefix length 40 is too long for 10.1.0.0")
    );

    let ports = dir.path().join("ports.lst");
    std::fs::write(&ports, "22\nssh\n").unwrap();
    let e = parse(&format!("ports_file: {}\n", ports.display())).unwrap_err();
    let p = ports.display();
    assert_eq!(
        e.to_string(),
        format!("/etc/x.conf:1: ports_file: bad value '{p}': {p}:2: 'ssh' is not a port number (0-65535)")
    );

    let e = parse("networks_file: /nonexistent/nets.lst\n").unwrap_err();
    assert!(
        e.to_string()
            .starts_with("/etc/x.conf:1: networks_file: bad value '/nonexistent/nets.lst': /nonexistent/nets.lst: "),
        "{e}"
    );
}

#[test]
fn net_and_as_aggregation_need_a_networks_file() {
    for agg in ["src_net", "dst_mask", "src_as", "sum_net", "dst_host, dst_as"] {
        let e = parse(&format!("plugins: memory[a]\naggregate[a]: {agg}\n")).unwrap_err();
        assert!(matches!(e, ConfigError::BadValue { .. }), "{agg}: {e:?}");
        assert!(e.to_string().starts_with("/etc/x.conf:2: aggregate[a]: bad value"), "{e}");
        assert!(e.to_string().ends_with("need a networks_file"), "{e}");
    }
    let e = Config::parse_str("", "/etc/x.conf", &[("aggregate".into(), "src_net".into())]).unwrap_err();
    assert!(e.to_string().starts_with("command line: aggregate: bad value 'src_net'"), "{e}");
}

#[test]
fn pmacctd_as_and_net_file() {
    let dir = tempfile::tempdir().unwrap();
    let nets = dir.path().join("n.lst");
    std::fs::write(&nets, "65001,10.0.0.0/8\n").unwrap();
    let base = format!("networks_file: {}\naggregate: src_as, dst_net\n", nets.display());
    assert!(!parse(&base).unwrap().global.as_from_networks_file);
    let c = parse(&format!("{base}pmacctd_as: file\npmacctd_net: FILE\n")).unwrap();
    assert!(c.global.as_from_networks_file);
    for (k, v) in [("pmacctd_net", "mask"), ("pmacctd_as", "bgp"), ("pmacctd_net", "longest")] {
        let e = parse(&format!("{base}{k}: {v}\n")).unwrap_err();
        assert!(matches!(e, ConfigError::NotSupportedYet { .. }), "{k}: {e:?}");
        assert!(e.to_string().starts_with(&format!("/etc/x.conf:3: {k}: not supported yet")), "{e}");
    }
}
