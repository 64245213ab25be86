//! Memory budgets: how many entries a plugin's table and each worker's shard of it may hold.
//!
//! A flood of spoofed sources makes every packet a new key; without a cap the tables grow until
//! the kernel kills the daemon and every table is lost. Each plugin therefore gets a budget:
//! `max_entries` (entries), `memory_budget` (bytes), the memory plugin's
//! `imt_mem_pools_number` × `imt_mem_pools_size` (bytes, as pmacct sizes its table), or by
//! default a share of a quarter of the machine's memory. Once a table holds its entries, new
//! keys go to the plugin's overflow entry (see [`crate::Projector::overflow_of`]) so totals
//! stay exact.
//!
//! A byte budget is split between the plugin's merged table (half) and the workers' shards
//! (the other half, two shards per worker: the one filling and the spare being merged). Both
//! are hash tables that double when they grow, and for a moment hold the old and the new
//! allocation; the entry limits below are chosen so that even that moment fits.

use crate::aggregate::Table;
use crate::shard::ShardTable;

/// Smallest table a budget yields, so a tiny budget still keeps some detail.
const MIN_ENTRIES: usize = 64;

/// Where a plugin's budget came from (for the log and `xacct -t`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum BudgetSource {
    MaxEntries,
    MemoryBudget,
    ImtMemPools,
    /// A share of the machine's memory: `total` bytes over `plugins` plugins.
    Default {
        total: u64,
        plugins: usize,
    },
}

/// A plugin's limits.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Budget {
    /// Entries the merged table admits before new keys overflow.
    pub table_entries: usize,
    /// Entries each worker's shard admits between two harvests.
    pub shard_entries: usize,
    /// The byte budget these were derived from (None for `max_entries`).
    pub bytes: Option<u64>,
    pub source: BudgetSource,
}

impl Budget {
    /// `max_entries`: each worker may see every key of the table between two harvests, so
    /// shards get the same limit.
    pub fn entries(n: usize) -> Budget {
        let n = n.max(1);
        Budget { table_entries: n, shard_entries: n, bytes: None, source: BudgetSource::MaxEntries }
    }

    /// Limits for `bytes` of memory for a table of `words`-word keys filled by `workers`
    /// workers.
    pub fn bytes(bytes: u64, words: usize, workers: usize, source: BudgetSource) -> Budget {
        let half = bytes / 2;
        // hashbrown holds up to 7/8 of its buckets; growing from P/2 to P buckets holds both.
        let p = pow2_at_most(half as f64 / (1.5 * Table::bucket_bytes(words) as f64));
        // Overflow entries (one per time bin) are admitted past the limit: a thirty-second of
        // the buckets is kept for them, or the first one would double the table.
        let table_entries = (p / 8 * 7 - p / 32).max(MIN_ENTRIES);
        // Shards hold up to 3/4 of their slots; per worker: the filling one (P/2 and P slots
        // while it grows) and a spare of P.
        let per_worker = half / workers.max(1) as u64;
        let ps = pow2_at_most(per_worker as f64 / (2.5 * ShardTable::slot_bytes(words) as f64));
        // A few slots are kept for overflow entries (one per time bin), which are always
        // admitted.
        let shard_entries = (ps / 4 * 3).saturating_sub(16).clamp(MIN_ENTRIES, table_entries.max(MIN_ENTRIES));
        Budget { table_entries, shard_entries, bytes: Some(bytes), source }
    }

    /// Worst-case bytes of the table and shards under these limits (what the budget promises).
    pub fn worst_case_bytes(&self, words: usize, workers: usize) -> u64 {
        // The limit plus the overflow entries' room, as `bytes` reserves it.
        let entries = self.table_entries as f64 * 28.0 / 27.0;
        let table = 1.5 * (entries * 8.0 / 7.0).ceil().max(1.0).log2().ceil().exp2();
        let shard = 2.5 * ((self.shard_entries + 16) as f64 * 4.0 / 3.0).ceil().max(1.0).log2().ceil().exp2();
        (table * Table::bucket_bytes(words) as f64 + workers as f64 * shard * ShardTable::slot_bytes(words) as f64)
            as u64
    }

    pub fn describe(&self) -> String {
        let from = match &self.source {
            BudgetSource::MaxEntries => "max_entries".to_string(),
            BudgetSource::MemoryBudget => format!("memory_budget {}", human_bytes(self.bytes.unwrap_or(0))),
            BudgetSource::ImtMemPools => {
                format!("imt_mem_pools_number x imt_mem_pools_size = {}", human_bytes(self.bytes.unwrap_or(0)))
            }
            BudgetSource::Default { total, plugins } => format!(
                "default: {} of {} (a quarter of memory over {plugins} plugin(s))",
                human_bytes(self.bytes.unwrap_or(0)),
                human_bytes(*total)
            ),
        };
        format!("{} entries in the table, {} per worker shard ({from})", self.table_entries, self.shard_entries)
    }
}

/// The default budget of each of `plugins` plugins on a machine with `mem_total` bytes: a
/// quarter of the memory, shared equally, so the daemon as a whole stays well inside RAM
/// beside the kernel's flow maps, sockets' buffers and the rest of the machine.
pub fn default_bytes(mem_total: u64, plugins: usize) -> u64 {
    mem_total / 4 / plugins.max(1) as u64
}

/// `MemTotal` of /proc/meminfo in bytes (None where it cannot be read).
pub fn machine_memory() -> Option<u64> {
    let s = std::fs::read_to_string("/proc/meminfo").ok()?;
    parse_meminfo(&s)
}

fn parse_meminfo(s: &str) -> Option<u64> {
    let line = s.lines().find(|l| l.starts_with("MemTotal:"))?;
    let kib: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kib * 1024)
}

fn pow2_at_most(x: f64) -> usize {
    if x < 1.0 {
        return 1;
    }
    1usize << (x.log2().floor() as u32).min(62)
}

/// `1.5 GiB`-style rendering for logs.
pub fn human_bytes(b: u64) -> String {
    const UNITS: [&str; 5] = ["B", "KiB", "MiB", "GiB", "TiB"];
    let mut v = b as f64;
    let mut u = 0;
    while v >= 1024.0 && u + 1 < UNITS.len() {
        v /= 1024.0;
        u += 1;
    }
    if u == 0 {
        format!("{b} B")
    } else {
        format!("{v:.1} {}", UNITS[u])
    }
}

/// Parses `512M`, `2G`, `1048576`, `64KB`… (binary multiples, as memory is sized).
pub fn parse_bytes(s: &str) -> Option<u64> {
    let s = s.trim();
    let split = s.find(|c: char| !c.is_ascii_digit()).unwrap_or(s.len());
    let (num, unit) = s.split_at(split);
    let n: u64 = num.parse().ok()?;
    let mult: u64 = match unit.trim().to_ascii_lowercase().as_str() {
        "" | "b" => 1,
        "k" | "kb" | "kib" => 1 << 10,
        "m" | "mb" | "mib" => 1 << 20,
        "g" | "gb" | "gib" => 1 << 30,
        "t" | "tb" | "tib" => 1 << 40,
        _ => return None,
    };
    n.checked_mul(mult)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn byte_budgets_hold_their_worst_case_and_use_at_least_a_third_of_it() {
        for bytes in [1u64 << 20, 10 << 20, 100 << 20, 1 << 30, 6 << 30] {
            for words in [1, 3, 5, 6, 12] {
                for workers in [1, 2, 8] {
                    let b = Budget::bytes(bytes, words, workers, BudgetSource::MemoryBudget);
                    let worst = b.worst_case_bytes(words, workers);
                    assert!(worst <= bytes, "{bytes} {words} {workers}: {b:?} needs {worst}");
                    assert!(worst * 3 >= bytes, "{bytes} {words} {workers}: {b:?} uses only {worst}");
                    assert!(b.shard_entries <= b.table_entries);
                }
            }
        }
    }

    #[test]
    fn entries_and_defaults() {
        let b = Budget::entries(1000);
        assert_eq!((b.table_entries, b.shard_entries, b.bytes), (1000, 1000, None));
        assert_eq!(default_bytes(24 << 30, 3), 2 << 30);
        assert_eq!(parse_meminfo("MemTotal:       24577420 kB\nMemFree: 1 kB\n"), Some(24577420 * 1024));
        assert!(machine_memory().unwrap_or(0) > 0);
    }

    #[test]
    fn byte_sizes() {
        assert_eq!(parse_bytes("512M"), Some(512 << 20));
        assert_eq!(parse_bytes("2 GiB"), Some(2 << 30));
        assert_eq!(parse_bytes("1048576"), Some(1 << 20));
        assert_eq!(parse_bytes("64kb"), Some(64 << 10));
        assert_eq!(parse_bytes("1.5G"), None);
        assert_eq!(parse_bytes("lots"), None);
        assert_eq!(human_bytes(1536 << 20), "1.5 GiB");
    }
}
