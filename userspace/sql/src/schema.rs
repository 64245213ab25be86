//! pmacct's SQL tables: the columns of schema versions 1–9 for PostgreSQL, MySQL and SQLite,
//! the columns of primitives a version lacks, and how a table entry becomes column values.
//!
//! Facts (pmacct 1.7.7's `sql/` scripts and `sql/README.*`, and what its plugins write, checked
//! by running Debian's pmacctd with the sqlite3 plugin):
//! - v1 `mac_src mac_dst ip_src ip_dst src_port dst_port ip_proto`; v2 adds `agent_id` (first)
//!   and `vlan` (after the MACs); v3 `tos` (after `ip_proto`); v4 the `flows` counter; v5
//!   `class_id` (after `agent_id`); v6 `as_src as_dst` (after `vlan`); v7 `tcp_flags` (after
//!   the ports); v8 renames the ports `port_src port_dst` (PostgreSQL always had those names);
//!   v9 renames `agent_id` to `tag`. Then `packets bytes [flows] stamp_inserted stamp_updated`.
//! - The primary key is every primitive column plus `stamp_inserted` (not `tcp_flags`, not the
//!   counters).
//! - Types per backend: see [`sql_type`]. MySQL and SQLite store `ip_proto` as pmacct's
//!   protocol name (`tcp`, `udp`, …; CHAR(6)), PostgreSQL as a number.
//! - A primitive outside the aggregate is written as pmacct writes it: `0`, `0.0.0.0`,
//!   `0:0:0:0:0:0` for a MAC (a real MAC is `aa:bb:cc:dd:ee:ff`), and `unknown` for `class_id`
//!   (pmacct 1.7.7 writes its unknown-class name there, not the column's blank default).
//! - Default tables: `acct` for v1, `acct_vN` after, on every backend. (pmacct 1.7.7's
//!   PostgreSQL and SQLite plugins fall back to `acct` for v9, contradicting their own docs and
//!   scripts; xacct uses `acct_v9`.)
//! - Without `sql_history` pmacct writes no stamps (the columns keep their defaults), so the
//!   UPDATE matches a key whatever its stamps.

use crate::batch::{ColSpec, ParamKind, Shape, Value};
use xacct_core::aggregate::{Aggregate, Primitive};
use xacct_core::record::Record;

/// A database engine.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
pub enum Backend {
    Pgsql,
    Mysql,
    Sqlite,
}

impl Backend {
    pub const ALL: [Backend; 3] = [Backend::Pgsql, Backend::Mysql, Backend::Sqlite];

    pub fn name(self) -> &'static str {
        match self {
            Backend::Pgsql => "pgsql",
            Backend::Mysql => "mysql",
            Backend::Sqlite => "sqlite3",
        }
    }

    pub fn of(kind: xacct_core::config::PluginKind) -> Option<Backend> {
        use xacct_core::config::PluginKind as K;
        match kind {
            K::Pgsql => Some(Backend::Pgsql),
            K::Mysql => Some(Backend::Mysql),
            K::Sqlite3 => Some(Backend::Sqlite),
            _ => None,
        }
    }

    /// Quotes a validated table name (`name` or `schema.name`). PostgreSQL names are folded to
    /// lower case first, as pmacct's unquoted names are.
    pub fn quote(self, name: &str) -> String {
        let (q, name) = match self {
            Backend::Mysql => ('`', name.to_string()),
            Backend::Pgsql => ('"', name.to_ascii_lowercase()),
            Backend::Sqlite => ('"', name.to_string()),
        };
        // Names were checked at config load to hold identifier characters only; doubling the
        // quote character keeps even a bad name inert.
        name.split('.')
            .map(|p| {
                let esc = p.replace(q, &format!("{q}{q}"));
                format!("{q}{esc}{q}")
            })
            .collect::<Vec<_>>()
            .join(".")
    }
}

/// What a table column holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Field {
    /// `agent_id` (v2–v8) or `tag` (v9): the tag.
    Tag,
    Tag2,
    /// `label VARCHAR(255)` (sql/README.label): in no default schema.
    Label,
    ClassId,
    SrcMac,
    DstMac,
    Vlan,
    SrcAs,
    DstAs,
    SrcIp,
    DstIp,
    /// v1–v5 tables keep src_as/dst_as in `ip_src`/`ip_dst` (MySQL, SQLite).
    SrcAsInIp,
    DstAsInIp,
    SrcNet,
    DstNet,
    SrcMask,
    DstMask,
    SrcPort,
    DstPort,
    Proto,
    Tos,
    InIface,
    OutIface,
    Etype,
    MplsLabelTop,
    MplsLabelBottom,
    MplsStackDepth,
    TcpFlags,
    Packets,
    Bytes,
    Flows,
    StampInserted,
    StampUpdated,
}

impl Field {
    /// Part of the primary key (and of the UPDATE's WHERE).
    pub fn is_key(self) -> bool {
        !matches!(
            self,
            Field::TcpFlags | Field::Packets | Field::Bytes | Field::Flows | Field::StampInserted | Field::StampUpdated
        )
    }

    /// The aggregation primitive(s) that fill this column.
    fn primitives(self) -> &'static [Primitive] {
        use Primitive as P;
        match self {
            Field::Tag => &[P::Tag],
            Field::Tag2 => &[P::Tag2],
            Field::Label => &[P::Label],
            Field::SrcMac => &[P::SrcMac, P::SumMac],
            Field::DstMac => &[P::DstMac],
            Field::Vlan => &[P::Vlan],
            Field::SrcAs | Field::SrcAsInIp => &[P::SrcAs, P::SumAs],
            Field::DstAs | Field::DstAsInIp => &[P::DstAs],
            Field::SrcIp => &[P::SrcHost, P::SumHost],
            Field::DstIp => &[P::DstHost],
            Field::SrcNet => &[P::SrcNet, P::SumNet],
            Field::DstNet => &[P::DstNet],
            Field::SrcMask => &[P::SrcMask, P::SumNet],
            Field::DstMask => &[P::DstMask],
            Field::SrcPort => &[P::SrcPort, P::SumPort],
            Field::DstPort => &[P::DstPort],
            Field::Proto => &[P::Proto],
            Field::Tos => &[P::Tos],
            Field::InIface => &[P::InIface],
            Field::OutIface => &[P::OutIface],
            Field::Etype => &[P::Etype],
            Field::MplsLabelTop => &[P::MplsLabelTop],
            Field::MplsLabelBottom => &[P::MplsLabelBottom],
            Field::MplsStackDepth => &[P::MplsStackDepth],
            Field::TcpFlags => &[P::TcpFlags],
            Field::Flows => &[P::Flows],
            Field::ClassId | Field::Packets | Field::Bytes | Field::StampInserted | Field::StampUpdated => &[],
        }
    }

    fn in_aggregate(self, agg: &Aggregate) -> bool {
        self.primitives().iter().any(|p| agg.has(*p))
    }

    /// How the value is bound (PostgreSQL casts by it).
    fn param_kind(self, backend: Backend, num_protos: bool) -> ParamKind {
        match (self, backend) {
            (Field::SrcMac | Field::DstMac, Backend::Pgsql) => ParamKind::Mac,
            (Field::SrcIp | Field::DstIp | Field::SrcNet | Field::DstNet, Backend::Pgsql) => ParamKind::Inet,
            (Field::SrcMac | Field::DstMac | Field::SrcIp | Field::DstIp | Field::SrcNet | Field::DstNet, _) => {
                ParamKind::Text
            }
            (Field::ClassId | Field::Etype | Field::SrcAsInIp | Field::DstAsInIp, _) => ParamKind::Text,
            (Field::Proto, Backend::Mysql | Backend::Sqlite) if !num_protos => ParamKind::Text,
            _ => ParamKind::Int,
        }
    }
}

/// Column type, constraints and default as in pmacct's scripts (`NOT NULL` everywhere but
/// `stamp_updated`).
pub fn sql_type(f: Field, b: Backend, since_epoch: bool) -> (&'static str, Option<&'static str>) {
    use Backend::*;
    let t = match (f, b) {
        (Field::StampInserted | Field::StampUpdated, Pgsql) if since_epoch => "BIGINT",
        (Field::StampInserted | Field::StampUpdated, Mysql) if since_epoch => "BIGINT UNSIGNED",
        (Field::StampInserted | Field::StampUpdated, Sqlite) if since_epoch => "BIGINT",
        (Field::StampInserted | Field::StampUpdated, Pgsql) => "timestamp without time zone",
        (Field::StampInserted | Field::StampUpdated, _) => "DATETIME",
        (Field::Tag | Field::Tag2 | Field::SrcAs | Field::DstAs | Field::InIface | Field::OutIface, Pgsql) => "BIGINT",
        (Field::ClassId, _) => "CHAR(16)",
        (Field::Label, _) => "VARCHAR(255)",
        (Field::SrcMac | Field::DstMac, Pgsql) => "macaddr",
        (Field::SrcMac | Field::DstMac, _) => "CHAR(17)",
        (Field::SrcIp | Field::DstIp | Field::SrcNet | Field::DstNet, Pgsql) => "inet",
        (Field::SrcIp | Field::DstIp | Field::SrcNet | Field::DstNet | Field::SrcAsInIp | Field::DstAsInIp, _) => {
            "CHAR(45)"
        }
        (Field::TcpFlags | Field::Proto | Field::SrcMask | Field::DstMask, Pgsql) => "SMALLINT",
        (Field::Proto, _) => "CHAR(6)",
        (Field::Etype, _) => "CHAR(5)",
        // sql/README.mpls: INT(4) UNSIGNED for the labels, INT(1) UNSIGNED for the depth.
        (Field::MplsLabelTop | Field::MplsLabelBottom, Mysql) => "INT(4) UNSIGNED",
        (Field::MplsStackDepth, Mysql) => "INT(1) UNSIGNED",
        (Field::Bytes, Pgsql | Sqlite) => "BIGINT",
        (Field::Bytes, Mysql) => "BIGINT UNSIGNED",
        (_, Pgsql | Sqlite) => "INT",
        (_, Mysql) => "INT UNSIGNED",
    };
    let default = match (f, b) {
        (Field::Packets | Field::Bytes | Field::StampUpdated, _) => None,
        // MySQL's scripts give no defaults, but without sql_history no stamp is written and a
        // strict-mode server refuses a NOT NULL column without one; the oldest DATETIME is
        // valid in every SQL mode (a zero date is not under NO_ZERO_DATE).
        (Field::StampInserted, Mysql) if since_epoch => Some("0"),
        (Field::StampInserted, Mysql) => Some("'1000-01-01 00:00:00'"),
        (_, Mysql) => None,
        (Field::StampInserted, _) if since_epoch => Some("0"),
        (Field::StampInserted, Pgsql) => Some("'0001-01-01 00:00:00'"),
        (Field::StampInserted, Sqlite) => Some("'0000-00-00 00:00:00'"),
        (Field::SrcMac | Field::DstMac, _) => Some("'0:0:0:0:0:0'"),
        (Field::SrcIp | Field::DstIp | Field::SrcNet | Field::DstNet, _) => Some("'0.0.0.0'"),
        (Field::ClassId | Field::Etype, _) => Some("' '"),
        _ => Some("0"),
    };
    (t, default)
}

/// A column of a table.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Column {
    pub name: &'static str,
    pub field: Field,
}

const fn col(name: &'static str, field: Field) -> Column {
    Column { name, field }
}

/// The columns of a pmacct schema version, in the scripts' order.
pub fn version_columns(b: Backend, v: u8) -> Vec<Column> {
    let mut c = Vec::new();
    if v >= 2 {
        c.push(col(if v >= 9 { "tag" } else { "agent_id" }, Field::Tag));
    }
    if v >= 5 {
        c.push(col("class_id", Field::ClassId));
    }
    c.push(col("mac_src", Field::SrcMac));
    c.push(col("mac_dst", Field::DstMac));
    if v >= 2 {
        c.push(col("vlan", Field::Vlan));
    }
    if v >= 6 {
        c.push(col("as_src", Field::SrcAs));
        c.push(col("as_dst", Field::DstAs));
    }
    c.push(col("ip_src", Field::SrcIp));
    c.push(col("ip_dst", Field::DstIp));
    let new_ports = v >= 8 || b == Backend::Pgsql;
    c.push(col(if new_ports { "port_src" } else { "src_port" }, Field::SrcPort));
    c.push(col(if new_ports { "port_dst" } else { "dst_port" }, Field::DstPort));
    if v >= 7 {
        c.push(col("tcp_flags", Field::TcpFlags));
    }
    c.push(col("ip_proto", Field::Proto));
    if v >= 3 {
        c.push(col("tos", Field::Tos));
    }
    c.push(col("packets", Field::Packets));
    c.push(col("bytes", Field::Bytes));
    if v >= 4 {
        c.push(col("flows", Field::Flows));
    }
    c.push(col("stamp_inserted", Field::StampInserted));
    c.push(col("stamp_updated", Field::StampUpdated));
    c
}

/// Columns for primitives a version lacks (pmacct's `sql/README.*` names).
fn extra_column(f: Field, v: u8, b: Backend) -> Column {
    let name = match f {
        Field::Tag => "agent_id",
        Field::Tag2 => "tag2",
        Field::Label => "label",
        Field::Vlan => "vlan",
        Field::SrcAs => "as_src",
        Field::DstAs => "as_dst",
        Field::SrcNet => "net_src",
        Field::DstNet => "net_dst",
        Field::SrcMask => "mask_src",
        Field::DstMask => "mask_dst",
        Field::SrcPort if v >= 8 || b == Backend::Pgsql => "port_src",
        Field::DstPort if v >= 8 || b == Backend::Pgsql => "port_dst",
        Field::SrcPort => "src_port",
        Field::DstPort => "dst_port",
        Field::Tos => "tos",
        Field::InIface => "iface_in",
        Field::OutIface => "iface_out",
        Field::Etype => "etype",
        Field::MplsLabelTop => "mpls_label_top",
        Field::MplsLabelBottom => "mpls_label_bottom",
        Field::MplsStackDepth => "mpls_stack_depth",
        Field::TcpFlags => "tcp_flags",
        Field::Flows => "flows",
        Field::ClassId => "class_id",
        Field::SrcMac => "mac_src",
        Field::DstMac => "mac_dst",
        Field::SrcIp | Field::SrcAsInIp => "ip_src",
        Field::DstIp | Field::DstAsInIp => "ip_dst",
        Field::Proto => "ip_proto",
        Field::Packets => "packets",
        Field::Bytes => "bytes",
        Field::StampInserted => "stamp_inserted",
        Field::StampUpdated => "stamp_updated",
    };
    col(name, f)
}

/// The default table of a version.
pub fn default_table(v: u8) -> String {
    if v <= 1 {
        "acct".to_string()
    } else {
        format!("acct_v{v}")
    }
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SchemaError {
    #[error("{0}")]
    Unsupported(String),
}

/// What one plugin writes: its table's columns and the subset it writes.
#[derive(Debug, Clone)]
pub struct Layout {
    pub backend: Backend,
    pub version: u8,
    /// Every column of the table as xacct would create it (version columns plus the
    /// aggregate's extra ones, or only the aggregate's with `sql_optimize_clauses`).
    pub table: Vec<Column>,
    /// Key columns written, with whether the aggregate fills them.
    keys: Vec<(Column, bool)>,
    agg: Aggregate,
    /// Stamps are written (`sql_history`).
    pub stamps: bool,
    pub since_epoch: bool,
    num_protos: bool,
}

impl Layout {
    pub fn new(
        backend: Backend,
        version: u8,
        agg: &Aggregate,
        optimize: bool,
        stamps: bool,
        since_epoch: bool,
        num_protos: bool,
    ) -> Result<Layout, SchemaError> {
        if !(1..=9).contains(&version) {
            return Err(SchemaError::Unsupported(format!("sql_table_version {version}")));
        }
        let mut table = version_columns(backend, version);
        // Before v6, ASes are kept in the address columns.
        let as_in_ip = version < 6;
        if as_in_ip {
            for (host, asn) in [(Primitive::SrcHost, Primitive::SrcAs), (Primitive::DstHost, Primitive::DstAs)] {
                if agg.has(asn) && (agg.has(host) || (asn == Primitive::SrcAs && agg.has(Primitive::SumHost))) {
                    return Err(SchemaError::Unsupported(format!(
                        "{asn} and {host} share the column {} before sql_table_version 6; use version 6 or later",
                        if asn == Primitive::SrcAs { "ip_src" } else { "ip_dst" }
                    )));
                }
            }
            if backend == Backend::Pgsql
                && (agg.has(Primitive::SrcAs) || agg.has(Primitive::DstAs) || agg.has(Primitive::SumAs))
            {
                return Err(SchemaError::Unsupported(
                    "AS numbers before sql_table_version 6 need PostgreSQL's acct_as tables, which xacct does not write; use version 6 or later".into(),
                ));
            }
            for c in table.iter_mut() {
                if c.field == Field::SrcIp && (agg.has(Primitive::SrcAs) || agg.has(Primitive::SumAs)) {
                    c.field = Field::SrcAsInIp;
                }
                if c.field == Field::DstIp && agg.has(Primitive::DstAs) {
                    c.field = Field::DstAsInIp;
                }
            }
        }
        // Extra columns for the aggregate's primitives the version lacks.
        let wanted = [
            Field::Tag,
            Field::Tag2,
            Field::Label,
            Field::SrcMac,
            Field::DstMac,
            Field::Vlan,
            Field::SrcAs,
            Field::DstAs,
            Field::SrcIp,
            Field::DstIp,
            Field::SrcNet,
            Field::DstNet,
            Field::SrcMask,
            Field::DstMask,
            Field::SrcPort,
            Field::DstPort,
            Field::Proto,
            Field::Tos,
            Field::InIface,
            Field::OutIface,
            Field::Etype,
            Field::MplsLabelTop,
            Field::MplsLabelBottom,
            Field::MplsStackDepth,
            Field::TcpFlags,
            Field::Flows,
        ];
        let has_field = |t: &[Column], f: Field| {
            t.iter().any(|c| {
                c.field == f
                    || (f == Field::SrcAs && c.field == Field::SrcAsInIp)
                    || (f == Field::DstAs && c.field == Field::DstAsInIp)
            })
        };
        let counters_at = table.iter().position(|c| c.field == Field::Packets).unwrap_or(table.len());
        let mut extra = Vec::new();
        for f in wanted {
            if f.in_aggregate(agg) && !has_field(&table, f) {
                extra.push(extra_column(f, version, backend));
            }
        }
        let flows_extra: Vec<Column> = extra.iter().filter(|c| c.field == Field::Flows).cloned().collect();
        extra.retain(|c| c.field != Field::Flows);
        for (i, c) in extra.into_iter().enumerate() {
            table.insert(counters_at + i, c);
        }
        if let Some(f) = flows_extra.into_iter().next() {
            let at = table.iter().position(|c| c.field == Field::Bytes).map_or(table.len(), |i| i + 1);
            table.insert(at, f);
        }
        if optimize {
            table.retain(|c| {
                !c.field.is_key() && c.field != Field::TcpFlags && c.field != Field::Flows
                    || c.field.in_aggregate(agg)
                    || (c.field == Field::SrcAsInIp && Field::SrcAs.in_aggregate(agg))
                    || (c.field == Field::DstAsInIp && Field::DstAs.in_aggregate(agg))
            });
        }
        let keys = table
            .iter()
            .filter(|c| c.field.is_key())
            .map(|c| {
                let filled = c.field.in_aggregate(agg)
                    || (c.field == Field::SrcAsInIp && Field::SrcAs.in_aggregate(agg))
                    || (c.field == Field::DstAsInIp && Field::DstAs.in_aggregate(agg));
                (c.clone(), filled)
            })
            .collect();
        Ok(Layout { backend, version, table, keys, agg: agg.clone(), stamps, since_epoch, num_protos })
    }

    /// The shape of the batches this layout produces (self-describing, so a spooled batch is
    /// written the same way after a restart).
    pub fn shape(&self) -> Shape {
        let has = |f: Field| self.table.iter().any(|c| c.field == f);
        Shape {
            keys: self
                .keys
                .iter()
                .map(|(c, _)| ColSpec {
                    name: c.name.to_string(),
                    kind: c.field.param_kind(self.backend, self.num_protos),
                })
                .collect(),
            tcp_flags: has(Field::TcpFlags),
            tcp_flags_or: self.agg.has(Primitive::TcpFlags),
            flows: has(Field::Flows),
            stamps: self.stamps,
            since_epoch: self.since_epoch,
        }
    }

    /// The key column values of one entry.
    pub fn key_values(&self, r: &Record) -> Vec<Value> {
        self.keys.iter().map(|(c, filled)| value(c.field, r, *filled, self.backend, self.num_protos)).collect()
    }

    /// `CREATE TABLE` for this layout under `name` (already quoted).
    pub fn create_table(&self, quoted_name: &str) -> String {
        create_table_sql(self.backend, quoted_name, &self.table, self.since_epoch)
    }
}

fn mac_text(m: &[u8; 6]) -> String {
    m.iter().map(|b| format!("{b:02x}")).collect::<Vec<_>>().join(":")
}

/// The value pmacct writes for `f` of `r`; `filled`: the aggregate has the primitive.
fn value(f: Field, r: &Record, filled: bool, b: Backend, num_protos: bool) -> Value {
    use xacct_core::record::Addr;
    let addr = |a: &Addr| Value::Text(if filled { a.to_string() } else { "0.0.0.0".to_string() });
    let int = |v: u64| Value::Int(if filled { v as i64 } else { 0 });
    match f {
        Field::Tag => int(r.tag),
        Field::Tag2 => int(r.tag2),
        Field::Label => {
            Value::Text(if filled { xacct_core::tag::labels().name(r.label).to_string() } else { String::new() })
        }
        // No classifier yet: pmacct's name for an unclassified stream.
        Field::ClassId => Value::Text("unknown".into()),
        Field::SrcMac | Field::DstMac => {
            let m = if f == Field::SrcMac { &r.src_mac } else { &r.dst_mac };
            Value::Text(if filled { mac_text(m) } else { "0:0:0:0:0:0".into() })
        }
        Field::Vlan => int(r.vlan.into()),
        Field::SrcAs => int(r.src_as.into()),
        Field::DstAs => int(r.dst_as.into()),
        Field::SrcAsInIp => Value::Text(if filled { r.src_as.to_string() } else { "0".into() }),
        Field::DstAsInIp => Value::Text(if filled { r.dst_as.to_string() } else { "0".into() }),
        Field::SrcIp => addr(&r.src_ip),
        Field::DstIp => addr(&r.dst_ip),
        Field::SrcNet => addr(&r.src_net),
        Field::DstNet => addr(&r.dst_net),
        Field::SrcMask => int(r.src_mask.into()),
        Field::DstMask => int(r.dst_mask.into()),
        Field::SrcPort => int(r.src_port.into()),
        Field::DstPort => int(r.dst_port.into()),
        Field::Proto => {
            let p = if filled { r.proto } else { 0 };
            match b {
                Backend::Pgsql => Value::Int(p.into()),
                _ if num_protos => Value::Int(p.into()),
                _ => {
                    let mut n = xacct_core::format::proto_name(p).map_or_else(|| p.to_string(), str::to_string);
                    // The column is CHAR(6): a strict MySQL refuses longer values (a whole
                    // batch with them), a lax one cuts them; cut them the same way here.
                    if b == Backend::Mysql {
                        n.truncate(6);
                    }
                    Value::Text(n)
                }
            }
        }
        Field::Tos => int(r.tos.into()),
        Field::InIface => int(r.in_iface.into()),
        Field::OutIface => int(r.out_iface.into()),
        Field::MplsLabelTop => int(r.mpls_top.into()),
        Field::MplsLabelBottom => int(r.mpls_bottom.into()),
        Field::MplsStackDepth => int(r.mpls_depth.into()),
        Field::Etype => Value::Text(if filled { format!("{:x}", r.etype) } else { "0".into() }),
        Field::TcpFlags | Field::Packets | Field::Bytes | Field::Flows | Field::StampInserted | Field::StampUpdated => {
            Value::Int(0)
        }
    }
}

fn create_table_sql(b: Backend, quoted: &str, cols: &[Column], since_epoch: bool) -> String {
    let mut s = format!("CREATE TABLE {quoted} (\n");
    for c in cols {
        let (t, default) = sql_type(c.field, b, since_epoch);
        let null = if c.field == Field::StampUpdated { "" } else { " NOT NULL" };
        let default = default.map(|d| format!(" DEFAULT {d}")).unwrap_or_default();
        s.push_str(&format!("    {} {t}{null}{default},\n", c.name));
    }
    let pk: Vec<&str> =
        cols.iter().filter(|c| c.field.is_key() || c.field == Field::StampInserted).map(|c| c.name).collect();
    s.push_str(&format!("    PRIMARY KEY ({})\n)", pk.join(", ")));
    if b == Backend::Mysql {
        // Transactions (and so exactly-once writes) need InnoDB.
        s.push_str(" ENGINE=InnoDB");
    }
    s.push_str(";\n");
    s
}

/// The text of `sql/<backend>/<table>.sql` for a version: the table pmacct's scripts create,
/// generated from the column model above.
pub fn standard_create_table(b: Backend, v: u8) -> String {
    let name = default_table(v);
    let header = format!(
        "-- xacct: pmacct schema v{v} for {} (generated from userspace/sql/src/schema.rs; do not edit)\n",
        match b {
            Backend::Pgsql => "PostgreSQL",
            Backend::Mysql => "MySQL/MariaDB",
            Backend::Sqlite => "SQLite",
        }
    );
    header + &create_table_sql(b, &name, &version_columns(b, v), false)
}

/// Every standard file: (path under `sql/`, contents).
pub fn standard_files() -> Vec<(String, String)> {
    let mut out = Vec::new();
    for b in Backend::ALL {
        for v in 1..=9u8 {
            out.push((format!("{}/{}.sql", b.name(), default_table(v)), standard_create_table(b, v)));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn names(b: Backend, v: u8) -> Vec<&'static str> {
        version_columns(b, v).iter().map(|c| c.name).collect()
    }

    #[test]
    fn tag_columns_by_version_and_label_values() {
        let agg = Aggregate::parse("tag,tag2,label,src_host").unwrap();
        let cols = |v: u8| -> Vec<&'static str> {
            Layout::new(Backend::Sqlite, v, &agg, true, true, false, false)
                .unwrap()
                .table
                .iter()
                .map(|c| c.name)
                .collect()
        };
        // pmacct: the tag is agent_id before v9, tag from v9; tag2 and label are extra columns.
        for (v, tag) in [(2, "agent_id"), (8, "agent_id"), (9, "tag")] {
            let c = cols(v);
            assert!(c.contains(&tag) && c.contains(&"tag2") && c.contains(&"label"), "v{v}: {c:?}");
            assert!(!c.contains(&if tag == "tag" { "agent_id" } else { "tag" }), "v{v}: {c:?}");
        }
        let l = Layout::new(Backend::Sqlite, 9, &agg, true, true, false, false).unwrap();
        assert_eq!(sql_type(Field::Label, Backend::Pgsql, false).0, "VARCHAR(255)");
        let r = Record { tag: 7, tag2: 8, label: xacct_core::tag::labels().intern("a,b"), ..Record::default() };
        let vals = l.key_values(&r);
        let text = format!("{vals:?}");
        assert!(text.contains("Int(7)") && text.contains("Int(8)") && text.contains("\"a,b\""), "{text}");
    }

    #[test]
    fn versions_follow_pmacct_scripts() {
        assert_eq!(
            names(Backend::Mysql, 1),
            [
                "mac_src",
                "mac_dst",
                "ip_src",
                "ip_dst",
                "src_port",
                "dst_port",
                "ip_proto",
                "packets",
                "bytes",
                "stamp_inserted",
                "stamp_updated"
            ]
        );
        assert_eq!(names(Backend::Pgsql, 1)[4], "port_src");
        assert_eq!(
            names(Backend::Sqlite, 9),
            [
                "tag",
                "class_id",
                "mac_src",
                "mac_dst",
                "vlan",
                "as_src",
                "as_dst",
                "ip_src",
                "ip_dst",
                "port_src",
                "port_dst",
                "tcp_flags",
                "ip_proto",
                "tos",
                "packets",
                "bytes",
                "flows",
                "stamp_inserted",
                "stamp_updated"
            ]
        );
        assert_eq!(names(Backend::Mysql, 7)[9..11], ["src_port", "dst_port"]);
        assert_eq!(names(Backend::Mysql, 8)[9..11], ["port_src", "port_dst"]);
        assert_eq!(names(Backend::Mysql, 5)[..2], ["agent_id", "class_id"]);
        assert!(names(Backend::Mysql, 3).contains(&"tos") && !names(Backend::Mysql, 3).contains(&"flows"));
        assert!(names(Backend::Mysql, 4).contains(&"flows"));
    }

    #[test]
    fn v9_primary_key_and_types() {
        let s = standard_create_table(Backend::Pgsql, 9);
        assert!(s.contains("PRIMARY KEY (tag, class_id, mac_src, mac_dst, vlan, as_src, as_dst, ip_src, ip_dst, port_src, port_dst, ip_proto, tos, stamp_inserted)"), "{s}");
        assert!(s.contains("ip_src inet NOT NULL DEFAULT '0.0.0.0'") && s.contains("mac_src macaddr"));
        let m = standard_create_table(Backend::Mysql, 9);
        assert!(m.contains("ip_proto CHAR(6) NOT NULL") && m.contains("bytes BIGINT UNSIGNED NOT NULL"), "{m}");
        assert!(m.contains("tag INT UNSIGNED NOT NULL") && m.contains("stamp_updated DATETIME,"), "{m}");
    }

    #[test]
    fn mpls_columns_as_readme_mpls_names_them() {
        let agg = Aggregate::parse("src_host,mpls_label_top,mpls_label_bottom,mpls_stack_depth").unwrap();
        let l = Layout::new(Backend::Mysql, 9, &agg, true, false, false, false).unwrap();
        let n: Vec<_> = l.table.iter().map(|c| c.name).collect();
        assert_eq!(
            n,
            [
                "ip_src",
                "mpls_label_top",
                "mpls_label_bottom",
                "mpls_stack_depth",
                "packets",
                "bytes",
                "stamp_inserted",
                "stamp_updated"
            ]
        );
        let sql = l.create_table("t");
        assert!(
            sql.contains("mpls_label_top INT(4) UNSIGNED NOT NULL")
                && sql.contains("mpls_stack_depth INT(1) UNSIGNED NOT NULL"),
            "{sql}"
        );
        assert!(sql.contains("PRIMARY KEY (ip_src, mpls_label_top, mpls_label_bottom, mpls_stack_depth"), "{sql}");
        let r = Record { mpls_top: 100, mpls_bottom: 300, mpls_depth: 3, ..Record::default() };
        assert_eq!(l.key_values(&r)[1..], [Value::Int(100), Value::Int(300), Value::Int(3)]);
        let pg = Layout::new(Backend::Pgsql, 9, &agg, true, false, false, false).unwrap().create_table("t");
        assert!(pg.contains("mpls_label_bottom INT NOT NULL DEFAULT 0"), "{pg}");
    }

    #[test]
    fn extra_columns_and_optimize() {
        let agg = Aggregate::parse("src_net,dst_mask,tag2,vlan").unwrap();
        let l = Layout::new(Backend::Mysql, 1, &agg, false, true, false, false).unwrap();
        let n: Vec<&str> = l.table.iter().map(|c| c.name).collect();
        assert!(
            n.contains(&"net_src") && n.contains(&"mask_dst") && n.contains(&"tag2") && n.contains(&"vlan"),
            "{n:?}"
        );
        let l = Layout::new(Backend::Mysql, 9, &agg, true, true, false, false).unwrap();
        let n: Vec<&str> = l.table.iter().map(|c| c.name).collect();
        assert_eq!(n, ["vlan", "tag2", "net_src", "mask_dst", "packets", "bytes", "stamp_inserted", "stamp_updated"]);
    }

    #[test]
    fn values_outside_the_aggregate() {
        let agg = Aggregate::parse("src_host").unwrap();
        let l = Layout::new(Backend::Sqlite, 9, &agg, false, false, false, false).unwrap();
        let r = Record {
            src_ip: xacct_core::Addr::V4([10, 0, 0, 1]),
            proto: 6,
            src_mac: [1, 2, 3, 4, 5, 6],
            ..Record::default()
        };
        let v = l.key_values(&r);
        let t = |s: &str| Value::Text(s.into());
        assert_eq!(
            v,
            [
                Value::Int(0),
                t("unknown"),
                t("0:0:0:0:0:0"),
                t("0:0:0:0:0:0"),
                Value::Int(0),
                Value::Int(0),
                Value::Int(0),
                t("10.0.0.1"),
                t("0.0.0.0"),
                Value::Int(0),
                Value::Int(0),
                t("ip"),
                Value::Int(0)
            ]
        );
        let agg = Aggregate::parse("src_mac,proto").unwrap();
        let l = Layout::new(Backend::Mysql, 9, &agg, true, false, false, false).unwrap();
        assert_eq!(l.key_values(&r), [t("01:02:03:04:05:06"), t("tcp")]);
    }

    #[test]
    fn as_before_v6() {
        let agg = Aggregate::parse("src_as,dst_host").unwrap();
        assert!(Layout::new(Backend::Pgsql, 5, &agg, false, true, false, false).is_err());
        let l = Layout::new(Backend::Mysql, 5, &agg, false, true, false, false).unwrap();
        let r = Record { src_as: 65001, ..Record::default() };
        assert_eq!(l.key_values(&r)[5], Value::Text("65001".into()));
        assert!(Layout::new(
            Backend::Mysql,
            5,
            &Aggregate::parse("src_as,src_host").unwrap(),
            false,
            true,
            false,
            false
        )
        .is_err());
    }

    #[test]
    fn quoting() {
        assert_eq!(Backend::Pgsql.quote("Acct_V9"), "\"acct_v9\"");
        assert_eq!(Backend::Mysql.quote("db.acct"), "`db`.`acct`");
        assert_eq!(Backend::Sqlite.quote("a\"b"), "\"a\"\"b\"");
    }
}
