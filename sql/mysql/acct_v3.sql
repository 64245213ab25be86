-- xacct: pmacct schema v3 for MySQL/MariaDB (generated from userspace/sql/src/schema.rs; do not edit)
CREATE TABLE acct_v3 (
    agent_id INT UNSIGNED NOT NULL,
    mac_src CHAR(17) NOT NULL,
    mac_dst CHAR(17) NOT NULL,
    vlan INT UNSIGNED NOT NULL,
    ip_src CHAR(45) NOT NULL,
    ip_dst CHAR(45) NOT NULL,
    src_port INT UNSIGNED NOT NULL,
    dst_port INT UNSIGNED NOT NULL,
    ip_proto CHAR(6) NOT NULL,
    tos INT UNSIGNED NOT NULL,
    packets INT UNSIGNED NOT NULL,
    bytes BIGINT UNSIGNED NOT NULL,
    stamp_inserted DATETIME NOT NULL DEFAULT '1000-01-01 00:00:00',
    stamp_updated DATETIME,
    PRIMARY KEY (agent_id, mac_src, mac_dst, vlan, ip_src, ip_dst, src_port, dst_port, ip_proto, tos, stamp_inserted)
) ENGINE=InnoDB;
