-- xacct: pmacct schema v8 for MySQL/MariaDB (generated from userspace/sql/src/schema.rs; do not edit)
CREATE TABLE acct_v8 (
    agent_id INT UNSIGNED NOT NULL,
    class_id CHAR(16) NOT NULL,
    mac_src CHAR(17) NOT NULL,
    mac_dst CHAR(17) NOT NULL,
    vlan INT UNSIGNED NOT NULL,
    as_src INT UNSIGNED NOT NULL,
    as_dst INT UNSIGNED NOT NULL,
    ip_src CHAR(45) NOT NULL,
    ip_dst CHAR(45) NOT NULL,
    port_src INT UNSIGNED NOT NULL,
    port_dst INT UNSIGNED NOT NULL,
    tcp_flags INT UNSIGNED NOT NULL,
    ip_proto CHAR(6) NOT NULL,
    tos INT UNSIGNED NOT NULL,
    packets INT UNSIGNED NOT NULL,
    bytes BIGINT UNSIGNED NOT NULL,
    flows INT UNSIGNED NOT NULL,
    stamp_inserted DATETIME NOT NULL DEFAULT '1000-01-01 00:00:00',
    stamp_updated DATETIME,
    PRIMARY KEY (agent_id, class_id, mac_src, mac_dst, vlan, as_src, as_dst, ip_src, ip_dst, port_src, port_dst, ip_proto, tos, stamp_inserted)
) ENGINE=InnoDB;
