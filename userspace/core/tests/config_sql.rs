//! The SQL plugins' keys: pmacct's names and defaults, the seed's configuration, and errors that
//! name file, line and key — above all for a `sql_table` that could carry SQL.

use xacct_core::config::{Config, ConfigError, PluginKind};
use xacct_core::sqlconf::{NameVars, TableType};

fn parse(text: &str) -> Result<Config, ConfigError> {
    Config::parse_str(text, "/etc/x.conf", &[])
}

fn err(text: &str) -> String {
    parse(text).expect_err("config must be refused").to_string()
}

#[test]
fn seed_sql_configuration_as_it_is() {
    let text = "plugins: pgsql[out], pgsql[in]\n\
aggregate[out]: src_host\n\
aggregate_filter[out]: vlan and src net 150.145.80.0/20\n\
sql_table[out]: acct_out\n\
aggregate[in]: dst_host\n\
aggregate_filter[in]: vlan and dst net 150.145.80.0/20\n\
sql_table[in]: acct_in\n\
sql_refresh_time: 60\n\
sql_history: 1h\n\
sql_history_roundoff: h\n\
sql_preprocess: minb=60000\n";
    let c = parse(text).unwrap();
    for (name, table) in [("out", "acct_out"), ("in", "acct_in")] {
        let p = c.plugin(name).unwrap();
        assert_eq!(p.kind, PluginKind::Pgsql);
        let s = p.sql.as_deref().unwrap();
        assert_eq!(s.table.as_ref().unwrap().to_string(), table);
        assert_eq!(s.refresh_time, 60);
        let h = s.history.unwrap();
        assert_eq!(h.bin_len(0), 3600);
        assert_eq!(p.history(), Some(h));
        assert_eq!(s.preprocess.as_ref().unwrap().value, "minb=60000");
        assert_eq!(s.preprocess.as_ref().unwrap().origin.line, 11);
    }
}

#[test]
fn pmacct_defaults() {
    let c = parse("plugins: mysql[m], sqlite3[s], pgsql\n").unwrap();
    let m = c.plugin("m").unwrap().sql.as_deref().unwrap();
    assert_eq!(
        (m.host.as_str(), m.user.as_str(), m.passwd.as_str(), m.db.as_str()),
        ("localhost", "pmacct", "arealsmartpwd", "pmacct")
    );
    assert_eq!((m.table_version, m.refresh_time, m.cache_entries, m.max_writers), (1, 60, 32771, 10));
    assert_eq!(m.table_type, TableType::Original);
    assert!(m.table.is_none() && m.history.is_none() && !m.dont_try_update && !m.use_copy && m.multi_values == 0);
    let s = c.plugin("s").unwrap().sql.as_deref().unwrap();
    assert_eq!(s.db, "/tmp/pmacct.db");
    assert_eq!(c.plugin("default").unwrap().kind, PluginKind::Pgsql);
    assert_eq!(s.spool_dir, std::path::Path::new("/var/spool/xacct/s"));
}

#[test]
fn every_key_is_read() {
    let dir = tempfile::tempdir().unwrap();
    let schema = dir.path().join("acct.schema");
    std::fs::write(&schema, "CREATE TABLE acct_%Y%m%d (ip_src inet);\n").unwrap();
    let text = format!(
        "plugins: pgsql[p]\n\
sql_host[p]: db.example\n\
sql_port[p]: 5433\n\
sql_user[p]: u\n\
sql_passwd[p]: pw\n\
sql_db[p]: acctdb\n\
sql_table[p]: acct_%Y%m%d\n\
sql_table_version[p]: 9\n\
sql_table_type[p]: original\n\
sql_table_schema[p]: {}\n\
sql_table_autocreate[p]: true\n\
sql_refresh_time[p]: 300\n\
sql_history[p]: 5m\n\
sql_history_roundoff[p]: m\n\
sql_history_since_epoch[p]: true\n\
sql_startup_delay[p]: 10\n\
sql_cache_entries[p]: 1000\n\
sql_dont_try_update[p]: true\n\
sql_use_copy[p]: true\n\
sql_multi_values[p]: 65536\n\
sql_max_writers[p]: 3\n\
sql_preprocess[p]: qnum=10, minp=2\n\
sql_preprocess_type[p]: all\n\
sql_trigger_exec[p]: /usr/local/bin/trigger\n\
sql_trigger_time[p]: 1h\n\
sql_recovery_backup_host[p]: backup.example\n\
sql_optimize_clauses[p]: true\n\
sql_num_protos[p]: true\n\
sql_spool_dir[p]: /var/tmp/spool\n",
        schema.display()
    );
    let c = parse(&text).unwrap();
    let s = c.plugin("p").unwrap().sql.as_deref().unwrap();
    assert_eq!(
        (s.host.as_str(), s.port, s.user.as_str(), s.passwd.as_str(), s.db.as_str()),
        ("db.example", Some(5433), "u", "pw", "acctdb")
    );
    assert_eq!(
        s.table.as_ref().unwrap().expand(&NameVars { time: 1_700_000_000, ..NameVars::default() }),
        "acct_20231114"
    );
    assert_eq!(s.table_version, 9);
    assert!(s.table_schema.as_ref().unwrap().1.starts_with("CREATE TABLE"));
    assert!(
        s.table_autocreate && s.since_epoch && s.dont_try_update && s.use_copy && s.optimize_clauses && s.num_protos
    );
    assert_eq!(
        (s.refresh_time, s.startup_delay, s.cache_entries, s.multi_values, s.max_writers),
        (300, 10, 1000, 65536, 3)
    );
    assert_eq!(s.history.unwrap().bin_len(0), 300);
    assert!(s.preprocess_all);
    assert_eq!(s.trigger_exec.as_deref(), Some(std::path::Path::new("/usr/local/bin/trigger")));
    assert_eq!(s.trigger_time.as_deref(), Some("1h"));
    assert_eq!(s.recovery_backup_host.as_deref(), Some("backup.example"));
    assert_eq!(s.spool_dir, std::path::Path::new("/var/tmp/spool"));
    // An empty password (MySQL's root on a test box) is allowed.
    let c = parse("plugins: mysql\nsql_passwd:\n").unwrap();
    assert_eq!(c.plugins[0].sql.as_deref().unwrap().passwd, "");
    // The newer name of the epoch key.
    let c = parse("plugins: sqlite3\ntimestamps_since_epoch: true\n").unwrap();
    assert!(c.plugins[0].sql.as_deref().unwrap().since_epoch);
}

#[test]
fn injection_through_sql_table_is_refused_at_load() {
    let e = err("plugins: pgsql[p]\nsql_table[p]: acct; DROP TABLE acct\n");
    assert!(
        e.starts_with("/etc/x.conf:2: sql_table[p]: bad value 'acct; DROP TABLE acct': character ';' is not allowed"),
        "{e}"
    );
    let e = err("plugins: mysql\nsql_table: acct`x\n");
    assert!(e.starts_with("/etc/x.conf:2: sql_table: bad value"), "{e}");
    let e = err("plugins: sqlite3\nsql_table: acct\"--\n");
    assert!(e.contains("not allowed"), "{e}");
    let e = err("plugins: pgsql\nsql_table: acct_%z\n");
    assert!(e.contains("'%z' is not allowed"), "{e}");
    let e = err("plugins: pgsql\nsql_table: acct_$peer_src_ip\n");
    assert!(e.contains("not supported"), "{e}");
    let e = err("plugins: pgsql\naggregate: src_host\nsql_table: acct_$tag\n");
    assert!(e.starts_with("/etc/x.conf:3: sql_table: bad value 'acct_$tag'"), "{e}");
}

#[test]
fn bad_values_name_file_line_and_key() {
    for (text, want) in [
        ("plugins: pgsql\nsql_table_version: 10\n", "/etc/x.conf:2: sql_table_version: bad value '10'"),
        ("plugins: pgsql\nsql_history: 1x\n", "/etc/x.conf:2: sql_history: bad value '1x'"),
        (
            "plugins: pgsql\nsql_history: 1h\nsql_history_roundoff: q\n",
            "/etc/x.conf:3: sql_history_roundoff: bad value 'q'",
        ),
        ("plugins: pgsql\nsql_trigger_time: often\n", "/etc/x.conf:2: sql_trigger_time: bad value 'often'"),
        (
            "plugins: pgsql\nsql_use_copy: true\n",
            "/etc/x.conf:2: sql_use_copy: bad value 'true': sql_use_copy needs sql_dont_try_update",
        ),
        ("plugins: pgsql\nsql_port: 70000\n", "/etc/x.conf:2: sql_port: bad value '70000'"),
        ("plugins: pgsql\nsql_table_schema: /nonexistent/schema\n", "/etc/x.conf:2: sql_table_schema: bad value"),
        ("plugins: pgsql\nsql_preprocess_type: some\n", "/etc/x.conf:2: sql_preprocess_type: bad value 'some'"),
        ("plugins: pgsql\nsql_table_type: bgp\n", "/etc/x.conf:2: sql_table_type: not supported yet"),
        ("plugins: pgsql\nsql_multi_values: lots\n", "/etc/x.conf:2: sql_multi_values: bad value 'lots'"),
        (
            "plugins: pgsql\nsql_history: 5m\nsql_history_offset: 300\n",
            "/etc/x.conf:3: sql_history_offset: bad value '300': the offset must be from 1 to 299 seconds",
        ),
        (
            "plugins: pgsql\nsql_history_offset: 60\n",
            "/etc/x.conf:2: sql_history_offset: bad value '60': sql_history_offset needs sql_history",
        ),
        (
            "plugins: print\nprint_history_offset: 60\n",
            "/etc/x.conf:2: print_history_offset: bad value '60': print_history_offset needs print_history",
        ),
    ] {
        let e = err(text);
        assert!(e.starts_with(want), "{text:?}: {e}");
    }
}

#[test]
fn history_offsets_shift_the_bins() {
    let c = Config::parse_str(
        "plugins: pgsql[s], print[p]\nsql_history[s]: 30m\nsql_history_offset[s]: 900\nprint_history[p]: 1h\nprint_history_offset[p]: 60\n",
        "/etc/x.conf",
        &[],
    )
    .expect("config");
    let s = c.plugin("s").and_then(|p| p.history()).expect("sql history");
    assert_eq!((s.offset(), s.bin_start(1_800 + 900 + 5)), (900, 1_800 + 900));
    let p = c.plugin("p").and_then(|p| p.history()).expect("print history");
    assert_eq!((p.offset(), p.bin_start(30)), (60, 60 - 3_600));
}
