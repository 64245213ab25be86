//! `sql_preprocess` / `sql_preprocess_type`: pmacct's selection tier applied to each refresh's
//! entries before they are written.
//!
//! The value is a comma-separated list of `key=value`:
//! - conditional `qnum=N`: the checks and actions below run only when the refresh has at least
//!   N entries; otherwise every entry is written unchanged;
//! - checks `minp minb minf` (packets / bytes / flows `>=` value), `maxp maxb maxf` (`<` value),
//!   `minbpp maxbpp` (bytes per packet `>=` / `<`), `minppf maxppf` (packets per flow `>=` /
//!   `<`), and the sampling checks `fss` and `fsrc` (below);
//! - actions `usrf=R` (multiply packets and bytes by R, for uniformly sampled input), `adjb=B`
//!   (add B bytes per packet, B may be negative, e.g. to add link-layer overhead), `recover=1`
//!   (entries that fail the checks go to the recovery path, `sql_recovery_backup_host`, instead
//!   of being dropped).
//!
//! With `sql_preprocess_type: any` (the default) an entry is kept if it passes at least one
//! check; with `all`, only if it passes every check (each check then looks only at entries that
//! passed the previous ones, which matters for `fsrc`). Checks run in pmacct's order (`minp minf
//! minb maxp maxf maxb maxbpp maxppf minbpp minppf fss fsrc`), then the actions (`usrf`, then
//! `adjb`) on every kept or recovered entry.
//!
//! Sampling, after N. G. Duffield, C. Lund and M. Thorup:
//! - `fss=z` is threshold ("smart") sampling from "Charging from sampled network usage" (2001):
//!   an entry of `x` bytes is kept with probability `min(1, x/z)`; a kept entry below the
//!   threshold is renormalised to `z` bytes (its packets and flows scaled by the same `z/x`),
//!   which makes every counter's total an unbiased estimate of the true total.
//! - `fsrc=m` is priority sampling under a hard resource constraint ("Flow sampling under hard
//!   resource constraints", 2003): each entry draws `w` uniform in (0, 1] and gets priority
//!   `x/w`; the `m` entries with the highest priorities are kept and renormalised to
//!   `max(x, z)` bytes, `z` being the `(m+1)`-th highest priority (counters again scaled
//!   together). With `m` entries or fewer nothing is sampled.
//!
//! Randomness: both use `fastrand`'s wyrand generator (fast, not cryptographic), seeded when the
//! value is parsed from fastrand's per-thread generator (itself seeded from the clock and thread
//! id). [`Preprocess::with_seed`] makes a run reproducible.
//!
//! Where this differs from pmacct 1.7's code, deliberately:
//! - pmacct's `fss` walks the entries with a running sum (`p += x/z`, keep when it crosses 1),
//!   a deterministic variant that depends on entry order; here each entry is an independent
//!   trial, as in the paper, so estimates are unbiased per entry and order does not matter.
//! - pmacct recomputes packets from an integer bytes-per-packet ratio after renormalising bytes
//!   (and `usrf` likewise); here packets are multiplied by the same factor as bytes, rounded.
//! - A ratio check on an entry with no packets (`*bpp`) or no flows (`*ppf`) does not pass:
//!   the ratio is undefined. pmacct skips the `*ppf` checks for the whole refresh when its first
//!   entry has no flows and divides by zero packets.
//! - `recover` works with `all` as documented (pmacct's `all` mode frees failing entries before
//!   `recover` can see them), and, as CONFIG-KEYS says of `usrf`, actions apply to recovered
//!   entries too.
//! - A value of 0, an unknown key, a repeated key or a list without any check or action is an
//!   error here; pmacct logs a warning and ignores the key (or the whole list).
//! - `qnum` is `>=` as CONFIG-KEYS documents (pmacct 1.7's code needs strictly more entries).

use std::sync::Mutex;
use xacct_core::Counters;

#[derive(Debug, thiserror::Error)]
#[error("sql_preprocess: {0}")]
pub struct PreprocessError(pub String);

/// `sql_preprocess_type`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum MatchType {
    #[default]
    Any,
    All,
}

impl MatchType {
    /// Parses a `sql_preprocess_type` value (`any` or `all`, any case).
    pub fn parse(value: &str) -> Result<MatchType, PreprocessError> {
        match value.trim().to_ascii_lowercase().as_str() {
            "any" => Ok(MatchType::Any),
            "all" => Ok(MatchType::All),
            other => Err(PreprocessError(format!("sql_preprocess_type '{other}': expected 'any' or 'all'"))),
        }
    }
}

/// One check, in the order pmacct evaluates them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Check {
    MinP(u64),
    MinF(u64),
    MinB(u64),
    MaxP(u64),
    MaxF(u64),
    MaxB(u64),
    MaxBpp(u64),
    MaxPpf(u64),
    MinBpp(u64),
    MinPpf(u64),
    Fss(u64),
    Fsrc(u64),
}

impl Check {
    /// Position in pmacct's evaluation order.
    fn rank(self) -> u8 {
        match self {
            Check::MinP(_) => 0,
            Check::MinF(_) => 1,
            Check::MinB(_) => 2,
            Check::MaxP(_) => 3,
            Check::MaxF(_) => 4,
            Check::MaxB(_) => 5,
            Check::MaxBpp(_) => 6,
            Check::MaxPpf(_) => 7,
            Check::MinBpp(_) => 8,
            Check::MinPpf(_) => 9,
            Check::Fss(_) => 10,
            Check::Fsrc(_) => 11,
        }
    }

    /// The per-entry checks (everything but the sampling ones).
    fn passes(self, c: &Counters) -> bool {
        // `a / b >= k` and `a / b < k` with integer division are exactly `a >= k*b` and
        // `a < k*b` for integer k; u128 keeps k*b from overflowing.
        let ge = |a: u64, b: u64, k: u64| b != 0 && u128::from(a) >= u128::from(k) * u128::from(b);
        match self {
            Check::MinP(v) => c.packets >= v,
            Check::MinF(v) => c.flows >= v,
            Check::MinB(v) => c.bytes >= v,
            Check::MaxP(v) => c.packets < v,
            Check::MaxF(v) => c.flows < v,
            Check::MaxB(v) => c.bytes < v,
            Check::MaxBpp(v) => c.packets != 0 && !ge(c.bytes, c.packets, v),
            Check::MaxPpf(v) => c.flows != 0 && !ge(c.packets, c.flows, v),
            Check::MinBpp(v) => ge(c.bytes, c.packets, v),
            Check::MinPpf(v) => ge(c.packets, c.flows, v),
            Check::Fss(_) | Check::Fsrc(_) => unreachable!("sampling checks look at the whole refresh"),
        }
    }
}

/// A parsed `sql_preprocess` value, e.g. `qnum=1000, minp=2, minb=60000, adjb=14`.
#[derive(Debug)]
pub struct Preprocess {
    match_type: MatchType,
    qnum: Option<u64>,
    checks: Vec<Check>,
    usrf: Option<u64>,
    adjb: Option<i64>,
    recover: bool,
    /// `apply` takes `&self` (the plugin may share its config); sampling needs mutable state.
    rng: Mutex<fastrand::Rng>,
}

impl Clone for Preprocess {
    fn clone(&self) -> Self {
        Preprocess {
            match_type: self.match_type,
            qnum: self.qnum,
            checks: self.checks.clone(),
            usrf: self.usrf,
            adjb: self.adjb,
            recover: self.recover,
            rng: Mutex::new(self.rng().clone()),
        }
    }
}

/// Equal configurations; the generator state is not compared.
impl PartialEq for Preprocess {
    fn eq(&self, o: &Self) -> bool {
        (self.match_type, self.qnum, &self.checks, self.usrf, self.adjb, self.recover)
            == (o.match_type, o.qnum, &o.checks, o.usrf, o.adjb, o.recover)
    }
}

/// What one `apply` did, for counters and logs.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Outcome {
    pub kept: u64,
    pub dropped: u64,
    pub recovered: u64,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Fate {
    Keep,
    Drop,
    Recover,
}

impl Preprocess {
    pub fn parse(value: &str, match_type: MatchType) -> Result<Preprocess, PreprocessError> {
        let mut p = Preprocess {
            match_type,
            qnum: None,
            checks: Vec::new(),
            usrf: None,
            adjb: None,
            recover: false,
            rng: Mutex::new(fastrand::Rng::new()),
        };
        let mut seen: Vec<String> = Vec::new();
        for token in value.split(',').map(str::trim).filter(|t| !t.is_empty()) {
            let Some((key, val)) = token.split_once('=') else {
                return Err(PreprocessError(format!("'{token}' is not key=value")));
            };
            let key = key.trim().to_ascii_lowercase();
            let val = val.trim();
            if seen.contains(&key) {
                return Err(PreprocessError(format!("'{token}': {key} given twice")));
            }
            let positive = || -> Result<u64, PreprocessError> {
                match val.parse::<u64>() {
                    Ok(0) => Err(PreprocessError(format!("'{token}': {key} must be greater than 0"))),
                    Ok(n) => Ok(n),
                    Err(_) => Err(PreprocessError(format!("'{token}': {key} needs a positive integer"))),
                }
            };
            match key.as_str() {
                "qnum" => p.qnum = Some(positive()?),
                "minp" => p.checks.push(Check::MinP(positive()?)),
                "minf" => p.checks.push(Check::MinF(positive()?)),
                "minb" => p.checks.push(Check::MinB(positive()?)),
                "maxp" => p.checks.push(Check::MaxP(positive()?)),
                "maxf" => p.checks.push(Check::MaxF(positive()?)),
                "maxb" => p.checks.push(Check::MaxB(positive()?)),
                "maxbpp" => p.checks.push(Check::MaxBpp(positive()?)),
                "maxppf" => p.checks.push(Check::MaxPpf(positive()?)),
                "minbpp" => p.checks.push(Check::MinBpp(positive()?)),
                "minppf" => p.checks.push(Check::MinPpf(positive()?)),
                "fss" => p.checks.push(Check::Fss(positive()?)),
                "fsrc" => p.checks.push(Check::Fsrc(positive()?)),
                "usrf" => p.usrf = Some(positive()?),
                "recover" => {
                    positive()?;
                    p.recover = true;
                }
                "adjb" => match val.parse::<i64>() {
                    Ok(0) => return Err(PreprocessError(format!("'{token}': adjb must not be 0"))),
                    Ok(n) => p.adjb = Some(n),
                    Err(_) => {
                        return Err(PreprocessError(format!("'{token}': adjb needs an integer (bytes per packet)")))
                    }
                },
                _ => {
                    return Err(PreprocessError(format!(
                        "'{token}': unknown key '{key}' (expected qnum, minp, minb, minf, maxp, maxb, maxf, minbpp, \
                         maxbpp, minppf, maxppf, fss, fsrc, usrf, adjb or recover)"
                    )))
                }
            }
            seen.push(key);
        }
        if p.checks.is_empty() && p.usrf.is_none() && p.adjb.is_none() {
            return Err(PreprocessError(format!(
                "'{}' has no check or action (qnum and recover only qualify them)",
                value.trim()
            )));
        }
        p.checks.sort_by_key(|c| c.rank());
        Ok(p)
    }

    /// The same configuration with a fixed seed for `fss` / `fsrc`, for reproducible runs.
    pub fn with_seed(self, seed: u64) -> Preprocess {
        *self.rng() = fastrand::Rng::with_seed(seed);
        self
    }

    pub fn match_type(&self) -> MatchType {
        self.match_type
    }

    /// Whether failing entries go to the recovery path (`recover`) rather than being dropped.
    pub fn recovers(&self) -> bool {
        self.recover
    }

    fn rng(&self) -> std::sync::MutexGuard<'_, fastrand::Rng> {
        // A panic while holding it cannot leave a generator in a state worse than random.
        self.rng.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Applies checks and actions to one refresh's entries in place: entries that fail are
    /// removed (or kept, with `recover`), actions (`adjb`, `usrf`, fss/fsrc renormalisation)
    /// change counters. `K` is opaque to pre-processing.
    ///
    /// Keeping recovered entries among the written ones defeats the checks; a plugin that has
    /// a recovery path should call [`Preprocess::apply_split`] instead.
    pub fn apply<K>(&self, entries: &mut Vec<(K, Counters)>) -> Outcome {
        let fates = self.decide(entries);
        let mut out = Outcome::default();
        let mut it = fates.iter();
        entries.retain(|_| match it.next() {
            Some(Fate::Drop) => {
                out.dropped += 1;
                false
            }
            Some(Fate::Recover) => {
                out.recovered += 1;
                true
            }
            _ => {
                out.kept += 1;
                true
            }
        });
        out
    }

    /// Like [`Preprocess::apply`], but entries to recover (failed the checks, `recover` set)
    /// are moved to `recovered` (appended, in order) for the recovery path instead of staying
    /// in `entries`.
    pub fn apply_split<K>(&self, entries: &mut Vec<(K, Counters)>, recovered: &mut Vec<(K, Counters)>) -> Outcome {
        let fates = self.decide(entries);
        let mut out = Outcome::default();
        let all = std::mem::take(entries);
        for (e, fate) in all.into_iter().zip(fates) {
            match fate {
                Fate::Keep => {
                    out.kept += 1;
                    entries.push(e);
                }
                Fate::Drop => out.dropped += 1,
                Fate::Recover => {
                    out.recovered += 1;
                    recovered.push(e);
                }
            }
        }
        out
    }

    /// Runs checks and actions (changing counters) and returns each entry's fate.
    fn decide<K>(&self, entries: &mut [(K, Counters)]) -> Vec<Fate> {
        let n = entries.len();
        if self.qnum.is_some_and(|q| (n as u64) < q) {
            return vec![Fate::Keep; n];
        }
        // Number of checks passed per entry.
        let mut passed = vec![0usize; n];
        for (done, &check) in self.checks.iter().enumerate() {
            // With `all`, a check only looks at entries that passed every earlier one.
            let eligible: Vec<usize> = match self.match_type {
                MatchType::Any => (0..n).collect(),
                MatchType::All => (0..n).filter(|&i| passed[i] == done).collect(),
            };
            match check {
                Check::Fss(z) => self.fss(z, entries, &eligible, &mut passed),
                Check::Fsrc(m) => self.fsrc(m, entries, &eligible, &mut passed),
                _ => {
                    for i in eligible {
                        if check.passes(&entries[i].1) {
                            passed[i] += 1;
                        }
                    }
                }
            }
        }
        let need = match self.match_type {
            MatchType::Any => 1.min(self.checks.len()),
            MatchType::All => self.checks.len(),
        };
        let fates: Vec<Fate> = passed
            .iter()
            .map(|&p| match (p >= need, self.recover) {
                (true, _) => Fate::Keep,
                (false, true) => Fate::Recover,
                (false, false) => Fate::Drop,
            })
            .collect();
        for (e, fate) in entries.iter_mut().zip(&fates) {
            if *fate != Fate::Drop {
                self.actions(&mut e.1);
            }
        }
        fates
    }

    fn actions(&self, c: &mut Counters) {
        if let Some(r) = self.usrf {
            c.packets = c.packets.saturating_mul(r);
            c.bytes = c.bytes.saturating_mul(r);
        }
        if let Some(b) = self.adjb {
            let delta = i128::from(c.packets) * i128::from(b);
            c.bytes = (i128::from(c.bytes) + delta).clamp(0, i128::from(u64::MAX)) as u64;
        }
    }

    /// Threshold sampling: keep with probability min(1, bytes/z), renormalise kept small ones.
    fn fss<K>(&self, z: u64, entries: &mut [(K, Counters)], eligible: &[usize], passed: &mut [usize]) {
        let mut rng = self.rng();
        for &i in eligible {
            let c = &mut entries[i].1;
            if c.bytes >= z {
                passed[i] += 1;
            } else if c.bytes > 0 && rng.u64(0..z) < c.bytes {
                // Kept with probability x/z exactly; weight 1/p = z/x.
                scale(c, z as f64 / c.bytes as f64);
                c.bytes = z;
                passed[i] += 1;
            }
        }
    }

    /// Priority sampling of at most `m` entries.
    fn fsrc<K>(&self, m: u64, entries: &mut [(K, Counters)], eligible: &[usize], passed: &mut [usize]) {
        let m = usize::try_from(m).unwrap_or(usize::MAX);
        if eligible.len() <= m {
            for &i in eligible {
                passed[i] += 1;
            }
            return;
        }
        let mut rng = self.rng();
        let mut prio: Vec<(f64, usize)> = eligible
            .iter()
            .map(|&i| {
                // w uniform in (0, 1]: 1 - [0, 1).
                let w = 1.0 - rng.f64();
                (entries[i].1.bytes as f64 / w, i)
            })
            .collect();
        // Highest priority first; m < len so index m (the threshold) exists.
        prio.select_nth_unstable_by(m, |a, b| b.0.total_cmp(&a.0));
        let z = prio[m].0;
        for &(_, i) in &prio[..m] {
            let c = &mut entries[i].1;
            let x = c.bytes as f64;
            if x < z {
                if x > 0.0 {
                    scale(c, z / x);
                }
                c.bytes = round_u64(z);
            }
            passed[i] += 1;
        }
    }
}

/// Multiplies packets and flows by `f` (bytes are set by the caller), rounding to nearest.
fn scale(c: &mut Counters, f: f64) {
    c.packets = round_u64(c.packets as f64 * f);
    c.flows = round_u64(c.flows as f64 * f);
}

fn round_u64(v: f64) -> u64 {
    // `as` saturates at the bounds and maps NaN to 0.
    v.round() as u64
}

#[cfg(test)]
mod tests {
    use super::*;

    fn c(packets: u64, bytes: u64, flows: u64) -> Counters {
        Counters { packets, bytes, flows, tcp_flags: 0, ..Counters::default() }
    }

    fn run(spec: &str, mt: MatchType, input: &[Counters]) -> (Vec<(usize, Counters)>, Outcome) {
        let p = Preprocess::parse(spec, mt).unwrap_or_else(|e| panic!("{spec}: {e}"));
        let mut v: Vec<(usize, Counters)> = input.iter().copied().enumerate().collect();
        let o = p.apply(&mut v);
        (v, o)
    }

    fn kept(spec: &str, mt: MatchType, input: &[Counters]) -> Vec<usize> {
        run(spec, mt, input).0.into_iter().map(|e| e.0).collect()
    }

    fn err(spec: &str) -> String {
        Preprocess::parse(spec, MatchType::Any).unwrap_err().to_string()
    }

    #[test]
    fn parse_errors_name_the_bad_token() {
        assert!(err("minb=60000, bogus=3").contains("'bogus=3': unknown key 'bogus'"));
        assert!(err("minb").contains("'minb' is not key=value"));
        assert!(err("minb=6k").contains("'minb=6k'"));
        assert!(err("minb=-5").contains("'minb=-5'"));
        assert!(err("minp=0").contains("'minp=0': minp must be greater than 0"));
        assert!(err("minp=1, MINP=2").contains("'MINP=2': minp given twice"));
        assert!(err("adjb=x").contains("'adjb=x'"));
        assert!(err("adjb=0").contains("'adjb=0'"));
        assert!(err("qnum=10").contains("no check or action"));
        assert!(err("recover=1").contains("no check or action"));
        assert!(err("").contains("no check or action"));
    }

    #[test]
    fn parse_accepts_pmacct_spellings() {
        let p = Preprocess::parse(" qnum=1000, MINP=2 ,minb=60000, adjb=-14, usrf=10, recover=1, ", MatchType::All)
            .unwrap();
        assert_eq!(p.qnum, Some(1000));
        assert_eq!(p.checks, [Check::MinP(2), Check::MinB(60000)]);
        assert_eq!((p.usrf, p.adjb, p.recover), (Some(10), Some(-14), true));
        assert_eq!(p.match_type(), MatchType::All);
        assert!(p.recovers());
        assert_eq!(MatchType::parse("ALL").unwrap(), MatchType::All);
        assert_eq!(MatchType::parse(" any ").unwrap(), MatchType::Any);
        assert!(MatchType::parse("some").unwrap_err().to_string().contains("'some'"));
        // Order in the value does not matter: pmacct's evaluation order is used.
        let q = Preprocess::parse("minb=60000, minp=2, qnum=1000, adjb=-14, recover=1, usrf=10", MatchType::All);
        assert_eq!(q.unwrap(), p);
    }

    #[test]
    fn min_checks_are_inclusive_max_checks_exclusive() {
        let input = [c(1, 100, 1), c(2, 200, 2), c(3, 300, 3)];
        assert_eq!(kept("minp=2", MatchType::Any, &input), [1, 2]);
        assert_eq!(kept("minb=200", MatchType::Any, &input), [1, 2]);
        assert_eq!(kept("minf=3", MatchType::Any, &input), [2]);
        assert_eq!(kept("maxp=2", MatchType::Any, &input), [0]);
        assert_eq!(kept("maxb=300", MatchType::Any, &input), [0, 1]);
        assert_eq!(kept("maxf=3", MatchType::Any, &input), [0, 1]);
    }

    #[test]
    fn ratio_checks_and_zero_denominators() {
        // bytes/packet: 100, 99.5 (199/2), 40; packets/flow: 1, 2, 5; then no packets, no flows.
        let input = [c(1, 100, 1), c(2, 199, 1), c(5, 200, 1), c(0, 50, 1), c(4, 400, 0)];
        assert_eq!(kept("minbpp=100", MatchType::Any, &input), [0, 4]);
        assert_eq!(kept("maxbpp=100", MatchType::Any, &input), [1, 2]);
        assert_eq!(kept("minppf=2", MatchType::Any, &input), [1, 2]);
        // Entry 3 has no packets but one flow: 0 packets per flow is a defined ratio.
        assert_eq!(kept("maxppf=2", MatchType::Any, &input), [0, 3]);
        // Undefined ratios pass neither the min nor the max check.
        assert_eq!(kept("minbpp=1, maxbpp=1000", MatchType::Any, &input), [0, 1, 2, 4]);
        assert_eq!(kept("minppf=1, maxppf=1000", MatchType::Any, &input), [0, 1, 2, 3]);
        // Large values do not overflow the comparison.
        let big = [c(u64::MAX, u64::MAX, 1)];
        assert_eq!(kept("minbpp=2", MatchType::Any, &big), Vec::<usize>::new());
        assert_eq!(kept("minppf=2", MatchType::Any, &big), [0]);
    }

    #[test]
    fn any_needs_one_check_all_needs_every_check() {
        let input = [c(1, 10, 1), c(5, 10, 1), c(1, 1000, 1), c(5, 1000, 1)];
        assert_eq!(kept("minp=5, minb=1000", MatchType::Any, &input), [1, 2, 3]);
        assert_eq!(kept("minp=5, minb=1000", MatchType::All, &input), [3]);
        let (_, o) = run("minp=5, minb=1000", MatchType::All, &input);
        assert_eq!(o, Outcome { kept: 1, dropped: 3, recovered: 0 });
    }

    #[test]
    fn qnum_gates_checks_and_actions() {
        let input = [c(1, 10, 1), c(5, 10, 1), c(1, 1000, 1)];
        // Three entries, qnum 4: nothing happens, not even the action.
        let (v, o) = run("qnum=4, minp=5, adjb=10", MatchType::Any, &input);
        assert_eq!(v.iter().map(|e| e.1).collect::<Vec<_>>(), input);
        assert_eq!(o, Outcome { kept: 3, dropped: 0, recovered: 0 });
        // qnum 3 is met (>=).
        let (v, _) = run("qnum=3, minp=5, adjb=10", MatchType::Any, &input);
        assert_eq!(v, [(1, c(5, 60, 1))]);
    }

    #[test]
    fn actions_change_kept_entries() {
        let input = [c(2, 100, 1), c(10, 1000, 3)];
        let (v, _) = run("usrf=10", MatchType::Any, &input);
        assert_eq!(v, [(0, c(20, 1000, 1)), (1, c(100, 10000, 3))]);
        let (v, _) = run("adjb=14", MatchType::Any, &input);
        assert_eq!(v, [(0, c(2, 128, 1)), (1, c(10, 1140, 3))]);
        let (v, _) = run("adjb=-60", MatchType::Any, &input);
        assert_eq!(v, [(0, c(2, 0, 1)), (1, c(10, 400, 3))], "subtracting stops at 0");
        // usrf first, then adjb per (renormalised) packet.
        let (v, _) = run("adjb=1, usrf=2", MatchType::Any, &input);
        assert_eq!(v, [(0, c(4, 204, 1)), (1, c(20, 2020, 3))]);
        // Dropped entries are not touched; saturation instead of overflow.
        let (v, _) = run("minp=10, usrf=3", MatchType::Any, &[c(1, 1, 1), c(u64::MAX / 2, u64::MAX, 1)]);
        assert_eq!(v, [(1, c(u64::MAX, u64::MAX, 1))]);
    }

    #[test]
    fn recover_keeps_failing_entries_apart() {
        let input = [c(1, 10, 1), c(5, 10, 1), c(9, 5000, 2)];
        let p = Preprocess::parse("minb=1000, recover=1, usrf=2", MatchType::Any).unwrap();
        let mut v: Vec<(usize, Counters)> = input.iter().copied().enumerate().collect();
        let mut rec = Vec::new();
        let o = p.apply_split(&mut v, &mut rec);
        assert_eq!(o, Outcome { kept: 1, dropped: 0, recovered: 2 });
        assert_eq!(v, [(2, c(18, 10000, 2))]);
        // Actions apply to recovered entries too.
        assert_eq!(rec, [(0, c(2, 20, 1)), (1, c(10, 20, 1))]);
        // `apply` keeps them in place (and says so in the outcome).
        let mut v: Vec<(usize, Counters)> = input.iter().copied().enumerate().collect();
        assert_eq!(p.apply(&mut v), o);
        assert_eq!(v.len(), 3);
        // And with `all`, an entry failing only the second check is recovered, not lost.
        let p = Preprocess::parse("minp=5, minb=1000, recover=1", MatchType::All).unwrap();
        let mut v: Vec<(usize, Counters)> = input.iter().copied().enumerate().collect();
        let mut rec = Vec::new();
        p.apply_split(&mut v, &mut rec);
        assert_eq!(v.iter().map(|e| e.0).collect::<Vec<_>>(), [2]);
        assert_eq!(rec.iter().map(|e| e.0).collect::<Vec<_>>(), [0, 1]);
    }

    #[test]
    fn fss_keeps_big_entries_whole_and_renormalises_sampled_small_ones() {
        let p = Preprocess::parse("fss=1000", MatchType::Any).unwrap().with_seed(7);
        let mut v = vec![(0, c(20, 5000, 2)), (1, c(1, 0, 0))];
        p.apply(&mut v);
        // Over the threshold: unchanged. Zero bytes: probability 0.
        assert_eq!(v, [(0, c(20, 5000, 2))]);
        for seed in 0..50 {
            let p = Preprocess::parse("fss=1000", MatchType::Any).unwrap().with_seed(seed);
            let mut v = vec![(0, c(2, 250, 1))];
            p.apply(&mut v);
            if let Some(e) = v.first() {
                // Weight 1000/250 = 4 on every counter.
                assert_eq!(e.1, c(8, 1000, 4));
            }
        }
    }

    #[test]
    fn fss_estimates_are_unbiased() {
        // 2000 entries of 1..=400 bytes (sum 401000), threshold 1000: about a fifth are kept,
        // and the renormalised sum estimates the true one. Fixed seeds make this deterministic;
        // the tolerance is > 5 standard deviations of the estimator.
        let input: Vec<Counters> = (0..2000u64).map(|i| c(1 + i % 4, 1 + i % 400, 1)).collect();
        let truth: u64 = input.iter().map(|e| e.bytes).sum();
        let truth_p: u64 = input.iter().map(|e| e.packets).sum();
        // Var = sum x(z - x) over x < z.
        let sd = input.iter().map(|e| (e.bytes * (1000 - e.bytes)) as f64).sum::<f64>().sqrt();
        for seed in 1..6 {
            let p = Preprocess::parse("fss=1000", MatchType::Any).unwrap().with_seed(seed);
            let mut v: Vec<(usize, Counters)> = input.iter().copied().enumerate().collect();
            let o = p.apply(&mut v);
            assert!(o.kept > 200 && o.kept < 600, "kept {o:?}");
            let est: u64 = v.iter().map(|e| e.1.bytes).sum();
            assert!((est as f64 - truth as f64).abs() < 5.0 * sd, "seed {seed}: {est} vs {truth} (sd {sd})");
            let est_p: u64 = v.iter().map(|e| e.1.packets).sum();
            assert!((est_p as f64 - truth_p as f64).abs() < 0.15 * truth_p as f64, "packets {est_p} vs {truth_p}");
        }
        // Averaged over many runs the estimate converges on the truth.
        let runs = 200;
        let mut total = 0f64;
        for seed in 100..100 + runs {
            let p = Preprocess::parse("fss=1000", MatchType::Any).unwrap().with_seed(seed);
            let mut v: Vec<(usize, Counters)> = input.iter().copied().enumerate().collect();
            p.apply(&mut v);
            total += v.iter().map(|e| e.1.bytes).sum::<u64>() as f64;
        }
        let mean = total / runs as f64;
        assert!((mean - truth as f64).abs() < 5.0 * sd / (runs as f64).sqrt(), "mean {mean} vs {truth}");
    }

    #[test]
    fn fsrc_keeps_at_most_m_and_estimates_without_bias() {
        let input: Vec<Counters> = (0..500u64).map(|i| c(1 + i % 3, 10 + (i * 37) % 2000, 1)).collect();
        let truth: u64 = input.iter().map(|e| e.bytes).sum();
        // Fewer entries than m: untouched.
        let p = Preprocess::parse("fsrc=500", MatchType::Any).unwrap();
        let mut v: Vec<(usize, Counters)> = input.iter().copied().enumerate().collect();
        assert_eq!(p.apply(&mut v).kept, 500);
        assert_eq!(v.iter().map(|e| e.1).collect::<Vec<_>>(), input);
        let runs = 300;
        let mut total = 0f64;
        for seed in 0..runs {
            let p = Preprocess::parse("fsrc=50", MatchType::Any).unwrap().with_seed(seed);
            let mut v: Vec<(usize, Counters)> = input.iter().copied().enumerate().collect();
            let o = p.apply(&mut v);
            assert_eq!((o.kept, o.dropped), (50, 450));
            // Renormalised entries are never smaller than they were.
            for (i, e) in &v {
                assert!(e.bytes >= input[*i].bytes);
            }
            total += v.iter().map(|e| e.1.bytes).sum::<u64>() as f64;
        }
        let mean = total / runs as f64;
        // Priority sampling's relative error with 50 of 500 similar-sized entries is ~10-15%
        // per run; the mean of 300 runs is within 3%.
        assert!((mean - truth as f64).abs() < 0.03 * truth as f64, "mean {mean} vs {truth}");
    }

    #[test]
    fn fsrc_with_all_samples_only_entries_that_passed_earlier_checks() {
        let input: Vec<Counters> = (0..100u64).map(|i| c(1 + i % 10, 100 * (1 + i), 1)).collect();
        let p = Preprocess::parse("minp=10, fsrc=5", MatchType::All).unwrap().with_seed(3);
        let mut v: Vec<(usize, Counters)> = input.iter().copied().enumerate().collect();
        let o = p.apply(&mut v);
        // 10 entries have 10 packets; 5 of those are kept.
        assert_eq!(o.kept, 5);
        assert!(v.iter().all(|(i, _)| input[*i].packets == 10), "{v:?}");
    }

    #[test]
    fn same_seed_same_sample() {
        let input: Vec<Counters> = (0..300u64).map(|i| c(1, 1 + i, 1)).collect();
        let sample = |seed| {
            let p = Preprocess::parse("fss=200", MatchType::Any).unwrap().with_seed(seed);
            let mut v: Vec<(usize, Counters)> = input.iter().copied().enumerate().collect();
            p.apply(&mut v);
            v
        };
        assert_eq!(sample(11), sample(11));
        assert_ne!(sample(11), sample(12));
    }
}
