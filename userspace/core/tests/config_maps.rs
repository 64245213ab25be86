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
    assert_eq!(c.global.capture_methods, xacct_core::config::Methods::PMACCTD);
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
    for (agg, why) in [
        ("src_net", "net and mask primitives need a networks_file or a networks_mask"),
        ("dst_mask", "net and mask primitives need a networks_file or a networks_mask"),
        ("src_as", "AS primitives need a networks_file (and pmacctd_as: file to fill them)"),
        ("sum_net", "net and mask primitives need a networks_file or a networks_mask"),
        ("dst_host, dst_as", "AS primitives need a networks_file (and pmacctd_as: file to fill them)"),
    ] {
        let e = parse(&format!("plugins: memory[a]\naggregate[a]: {agg}\n")).unwrap_err();
        assert!(matches!(e, ConfigError::BadValue { .. }), "{agg}: {e:?}");
        assert!(e.to_string().starts_with("/etc/x.conf:2: aggregate[a]: bad value"), "{e}");
        assert!(e.to_string().ends_with(why), "{e}");
    }
    let e = Config::parse_str("", "/etc/x.conf", &[("aggregate".into(), "src_net".into())]).unwrap_err();
    assert!(e.to_string().starts_with("command line: aggregate: bad value 'src_net'"), "{e}");
    // networks_mask alone is enough for nets (pmacctd's default method), not for ASes.
    let c = parse("plugins: memory[a]\naggregate[a]: src_net, dst_mask\nnetworks_mask: 16\n").unwrap();
    assert_eq!(c.plugin("a").unwrap().networks_mask, Some(16));
    assert!(parse("plugins: memory[a]\naggregate[a]: src_as\nnetworks_mask: 16\n").is_err());
}

#[test]
fn pmacctd_as_and_net() {
    use xacct_core::config::{AsMethod, Methods, NetMethod};
    let dir = tempfile::tempdir().unwrap();
    let nets = dir.path().join("n.lst");
    std::fs::write(&nets, "65001,10.0.0.0/8\n").unwrap();
    let base = format!("networks_file: {}\naggregate: src_as, dst_net\n", nets.display());
    // pmacctd 1.7.7: ASes from the file only with pmacctd_as: file.
    assert_eq!(parse(&base).unwrap().global.capture_methods, Methods::PMACCTD);
    let c = parse(&format!("{base}pmacctd_as: file\npmacctd_net: FILE\n")).unwrap();
    assert_eq!(c.global.capture_methods, Methods { net: NetMethod::File, asn: AsMethod::File });
    let c = parse(&format!("{base}pmacctd_as: longest\npmacctd_net: mask\nnetworks_mask: 24\n")).unwrap();
    assert_eq!(c.global.capture_methods, Methods { net: NetMethod::Mask, asn: AsMethod::Longest });
    // Packets carry no masks or ASes.
    for (k, v) in [("pmacctd_net", "netflow"), ("pmacctd_as", "sflow")] {
        let e = parse(&format!("{base}{k}: {v}\n")).unwrap_err();
        assert!(matches!(e, ConfigError::BadValue { .. }), "{k}: {e:?}");
        assert!(
            e.to_string().starts_with(&format!("/etc/x.conf:3: {k}: bad value '{v}': captured packets carry no")),
            "{e}"
        );
    }
    // Feeds xacct does not build are refused naming file, line and key.
    for (k, v, feed) in [
        ("pmacctd_net", "bgp", "a BGP feed"),
        ("pmacctd_as", "bmp", "a BMP feed"),
        ("pmacctd_net", "igp", "an IGP feed"),
    ] {
        let e = parse(&format!("{base}{k}: {v}\n")).unwrap_err();
        assert_eq!(
            e.to_string(),
            format!(
                "/etc/x.conf:3: {k}: refused: '{v}' needs {feed} ({}), which xacct does not build",
                match v {
                    "bgp" => "bgp_daemon",
                    "bmp" => "bmp_daemon",
                    _ => "isis_daemon",
                }
            )
        );
    }
    // mask without networks_mask.
    let e = parse(&format!("{base}pmacctd_net: mask\n")).unwrap_err();
    assert!(e.to_string().ends_with("pmacctd_net: mask needs a networks_mask"), "{e}");
}
