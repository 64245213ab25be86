//! Time bins for `print_history` / `sql_history` with `*_history_roundoff`.
//!
//! A bin is `[bin_start, bin_start + bin_len)`, computed from a record's own timestamp so that a
//! pcap file replayed at any time gives the same bins.
//!
//! Alignment rules (pmacct aligns its *first* bin to the daemon start time, rounded per the
//! roundoff letters, then steps by the bin length; we have record times instead of a start
//! time, so):
//! - Without roundoff, fixed-length bins (`s m h d w`) start at multiples of the bin length
//!   since the epoch (so `1w` bins start on Thursdays, 1970-01-01 being one; use roundoff `w`
//!   for Monday weeks). Month bins start on the 1st of a month, every N months counted from
//!   1970-01 (pmacct always resets monthly bins to the 1st).
//! - With roundoff, the timestamp is first rounded down like pmacct does (seconds always; `m`
//!   clears minutes; `h` goes to midnight; `d` to the 1st of the month; `w` to Monday 00:00;
//!   `M` to January 1st), and bins step by the bin length from that anchor. E.g. `5m` + `m` at
//!   18:37 gives the bin 18:35; `1h` + `m` gives 18:00.
//!
//! - `*_history_offset` shifts every bin by that many seconds: with `30m` bins and an offset of
//!   900 they start at 10:15, 10:45, … (the alignment above is applied to `ts - offset`).
//!
//! Deliberate differences from pmacct, both documented here once:
//! - Time is UTC. pmacct rounds in local time unless `timestamps_utc` is set; the probe boxes
//!   and this project's machines run UTC, where both agree.
//! - Roundoff `w` on a Sunday goes back to the previous Monday; pmacct 1.7 leaves Sundays
//!   alone (its loop stops at weekday numbers <= 1, and Sunday is 0).

use chrono::{DateTime, Datelike, Months, NaiveDate, NaiveDateTime, Timelike};

/// The unit of `#[s|m|h|d|w|M]`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Unit {
    Seconds,
    Minutes,
    Hours,
    Days,
    Weeks,
    Months,
}

impl Unit {
    fn seconds(self) -> Option<i64> {
        match self {
            Unit::Seconds => Some(1),
            Unit::Minutes => Some(60),
            Unit::Hours => Some(3600),
            Unit::Days => Some(86_400),
            Unit::Weeks => Some(7 * 86_400),
            Unit::Months => None,
        }
    }
}

// Roundoff letters as bits; pmacct applies them in the order given, but each one only zeroes
// fields (or moves back to a Monday / the 1st), so the order does not change the result.
const R_MIN: u8 = 1;
const R_HOUR: u8 = 2;
const R_DAY: u8 = 4;
const R_WEEK: u8 = 8;
const R_MONTH: u8 = 16;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct History {
    unit: Unit,
    count: u32,
    roundoff: u8,
    /// `*_history_offset` in seconds.
    offset: i64,
}

impl History {
    /// Parses `#[s|m|h|d|w|M]` (a plain number means seconds) and the optional roundoff letters
    /// (`m,h,d,w,M`, combined like `hd`; commas and spaces between letters are allowed).
    pub fn parse(value: &str, roundoff: Option<&str>) -> Result<History, String> {
        let v = value.trim();
        let (digits, unit) = match v.char_indices().last() {
            Some((i, c)) if !c.is_ascii_digit() => {
                let unit = match c {
                    's' => Unit::Seconds,
                    'm' => Unit::Minutes,
                    'h' => Unit::Hours,
                    'd' => Unit::Days,
                    'w' => Unit::Weeks,
                    'M' => Unit::Months,
                    _ => return Err(format!("unknown time unit '{c}' (expected s, m, h, d, w or M)")),
                };
                (&v[..i], unit)
            }
            Some(_) => (v, Unit::Seconds),
            None => return Err("empty time bin".to_string()),
        };
        if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
            return Err(format!("'{v}' is not <number>[s|m|h|d|w|M]"));
        }
        let count: u32 = digits.parse().map_err(|_| format!("'{digits}' is too large"))?;
        if count == 0 {
            return Err("the time bin must be longer than 0".to_string());
        }
        // Keep every later computation within i64 seconds: cap fixed bins at ~100 years.
        let too_long = match unit.seconds() {
            Some(s) => i64::from(count) * s > 100 * 366 * 86_400,
            None => count > 1200,
        };
        if too_long {
            return Err(format!("'{v}' is longer than 100 years"));
        }
        let roundoff = match roundoff {
            Some(r) => parse_roundoff(r)?,
            None => 0,
        };
        if unit == Unit::Months && roundoff & R_WEEK != 0 {
            return Err("roundoff 'w' cannot align monthly bins (they start on the 1st)".to_string());
        }
        Ok(History { unit, count, roundoff, offset: 0 })
    }

    /// The same bins shifted by `secs` seconds (`*_history_offset`), which must be shorter
    /// than a bin (the shortest month for monthly bins): an offset of a whole bin or more would
    /// only rename bins.
    pub fn with_offset(mut self, secs: &str) -> Result<History, String> {
        let secs: i64 = secs.trim().parse().map_err(|_| format!("'{secs}' is not a number of seconds"))?;
        let shortest = match self.unit.seconds() {
            Some(unit) => unit * i64::from(self.count),
            None => 28 * 86_400 * i64::from(self.count),
        };
        if secs <= 0 || secs >= shortest {
            return Err(format!("the offset must be from 1 to {} seconds (shorter than a bin)", shortest - 1));
        }
        self.offset = secs;
        Ok(self)
    }

    /// `*_history_offset` in seconds (0 without one).
    pub fn offset(&self) -> i64 {
        self.offset
    }

    pub fn unit(&self) -> Unit {
        self.unit
    }

    pub fn count(&self) -> u32 {
        self.count
    }

    /// Start (epoch seconds, UTC) of the bin holding `ts`. See the module doc for alignment.
    pub fn bin_start(&self, ts: i64) -> i64 {
        self.unshifted_bin_start(ts - self.offset) + self.offset
    }

    fn unshifted_bin_start(&self, ts: i64) -> i64 {
        match self.unit.seconds() {
            Some(unit) => {
                let len = unit * i64::from(self.count);
                let anchor = if self.roundoff == 0 { 0 } else { roundoff(ts, self.roundoff) };
                anchor + (ts - anchor).div_euclid(len) * len
            }
            None => self.month_bin_start(ts).unwrap_or(ts),
        }
    }

    /// Length in seconds of the bin that starts at `bin_start` (months vary).
    pub fn bin_len(&self, bin_start: i64) -> i64 {
        match self.unit.seconds() {
            Some(unit) => unit * i64::from(self.count),
            None => {
                let start = bin_start - self.offset;
                let next = to_naive(start).and_then(|d| d.checked_add_months(Months::new(self.count)));
                match next {
                    Some(n) => n.and_utc().timestamp() - start,
                    // Outside chrono's range (year ±262143): an average month is close enough.
                    None => i64::from(self.count) * 2_629_746,
                }
            }
        }
    }

    fn month_bin_start(&self, ts: i64) -> Option<i64> {
        let d = to_naive(ts)?;
        let idx = i64::from(d.year()) * 12 + i64::from(d.month0());
        let n = i64::from(self.count);
        let start_idx = if self.roundoff & R_MONTH != 0 {
            // Anchored on January 1st of the record's year.
            let year0 = i64::from(d.year()) * 12;
            year0 + (idx - year0).div_euclid(n) * n
        } else {
            let epoch = 1970 * 12;
            epoch + (idx - epoch).div_euclid(n) * n
        };
        let year = i32::try_from(start_idx.div_euclid(12)).ok()?;
        let month = u32::try_from(start_idx.rem_euclid(12)).ok()? + 1;
        Some(NaiveDate::from_ymd_opt(year, month, 1)?.and_hms_opt(0, 0, 0)?.and_utc().timestamp())
    }
}

fn parse_roundoff(r: &str) -> Result<u8, String> {
    let mut bits = 0;
    for c in r.chars().filter(|c| *c != ',' && !c.is_whitespace()) {
        bits |= match c {
            'm' => R_MIN,
            'h' => R_HOUR,
            'd' => R_DAY,
            'w' => R_WEEK,
            'M' => R_MONTH,
            _ => return Err(format!("unknown roundoff letter '{c}' (expected m, h, d, w or M)")),
        };
    }
    if bits == 0 {
        return Err("empty roundoff".to_string());
    }
    if bits & R_WEEK != 0 && bits & (R_DAY | R_MONTH) != 0 {
        return Err("roundoff 'w' cannot be combined with 'd' or 'M'".to_string());
    }
    Ok(bits)
}

fn to_naive(ts: i64) -> Option<NaiveDateTime> {
    DateTime::from_timestamp(ts, 0).map(|d| d.naive_utc())
}

/// pmacct's roundoff, in UTC. Falls back to `ts` outside chrono's date range.
fn roundoff(ts: i64, bits: u8) -> i64 {
    let Some(dt) = to_naive(ts) else { return ts };
    let mut date = dt.date();
    let (mut hour, mut min) = (dt.hour(), dt.minute());
    if bits & (R_MIN | R_HOUR | R_DAY | R_WEEK | R_MONTH) != 0 {
        min = 0;
    }
    if bits & (R_HOUR | R_DAY | R_WEEK | R_MONTH) != 0 {
        hour = 0;
    }
    if bits & (R_DAY | R_MONTH) != 0 {
        date = date.with_day(1).unwrap_or(date);
    }
    if bits & R_MONTH != 0 {
        date = date.with_month(1).unwrap_or(date);
    }
    if bits & R_WEEK != 0 {
        let back = date.weekday().num_days_from_monday();
        date = date.checked_sub_days(chrono::Days::new(u64::from(back))).unwrap_or(date);
    }
    match date.and_hms_opt(hour, min, 0) {
        Some(d) => d.and_utc().timestamp(),
        None => ts,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn t(s: &str) -> i64 {
        NaiveDateTime::parse_from_str(s, "%Y-%m-%d %H:%M:%S").unwrap().and_utc().timestamp()
    }

    #[test]
    fn parse_units_and_errors() {
        assert_eq!(History::parse("10m", None).unwrap().bin_len(0), 600);
        assert_eq!(History::parse("300", None).unwrap().bin_len(0), 300);
        assert_eq!(History::parse("300s", None).unwrap().bin_len(0), 300);
        assert_eq!(History::parse(" 1h ", None).unwrap().bin_len(0), 3600);
        assert_eq!(History::parse("1d", None).unwrap().bin_len(0), 86_400);
        assert_eq!(History::parse("2w", None).unwrap().bin_len(0), 14 * 86_400);
        assert_eq!(History::parse("1M", None).unwrap().unit(), Unit::Months);
        for bad in ["", "m", "0m", "-1h", "1x", "1hh", "1.5h", "99999999999h", "5000M"] {
            assert!(History::parse(bad, None).is_err(), "{bad:?} accepted");
        }
        for bad in ["", "x", "wd", "Mw", "h,x"] {
            assert!(History::parse("1h", Some(bad)).is_err(), "roundoff {bad:?} accepted");
        }
        assert!(History::parse("1M", Some("w")).is_err());
        assert!(History::parse("1h", Some("h,d")).is_ok());
    }

    #[test]
    fn fixed_bins_align_to_epoch_without_roundoff() {
        let h = History::parse("5m", None).unwrap();
        assert_eq!(h.bin_start(t("2024-03-10 18:37:42")), t("2024-03-10 18:35:00"));
        assert_eq!(h.bin_start(t("2024-03-10 18:35:00")), t("2024-03-10 18:35:00"));
        let h = History::parse("1d", None).unwrap();
        assert_eq!(h.bin_start(t("2024-03-10 18:37:42")), t("2024-03-10 00:00:00"));
        // Epoch-aligned weeks start on Thursday.
        let h = History::parse("1w", None).unwrap();
        assert_eq!(h.bin_start(t("2024-03-10 18:37:42")), t("2024-03-07 00:00:00"));
        // Before the epoch still floors downwards.
        let h = History::parse("1h", None).unwrap();
        assert_eq!(h.bin_start(-1), -3600);
    }

    #[test]
    fn roundoff_examples_from_pmacct_docs() {
        let h = History::parse("1h", Some("m")).unwrap();
        assert_eq!(h.bin_start(t("2024-03-10 18:34:10")), t("2024-03-10 18:00:00"));
        let h = History::parse("5m", Some("m")).unwrap();
        assert_eq!(h.bin_start(t("2024-03-10 18:37:10")), t("2024-03-10 18:35:00"));
        // 7m bins restart at each full hour with roundoff m: 18:00, 18:07, ... 18:56, 19:00.
        let h = History::parse("7m", Some("m")).unwrap();
        assert_eq!(h.bin_start(t("2024-03-10 18:59:00")), t("2024-03-10 18:56:00"));
        let h = History::parse("4h", Some("h")).unwrap();
        assert_eq!(h.bin_start(t("2024-03-10 18:59:00")), t("2024-03-10 16:00:00"));
    }

    #[test]
    fn weeks_start_on_monday_with_roundoff() {
        let h = History::parse("1w", Some("w")).unwrap();
        // 2024-03-11 is a Monday.
        assert_eq!(h.bin_start(t("2024-03-11 00:00:00")), t("2024-03-11 00:00:00"));
        assert_eq!(h.bin_start(t("2024-03-13 12:00:00")), t("2024-03-11 00:00:00"));
        // Sunday belongs to the week that started the Monday before.
        assert_eq!(h.bin_start(t("2024-03-17 23:59:59")), t("2024-03-11 00:00:00"));
        assert_eq!(h.bin_len(t("2024-03-11 00:00:00")), 7 * 86_400);
    }

    #[test]
    fn month_bins() {
        let h = History::parse("1M", None).unwrap();
        let feb = t("2024-02-01 00:00:00");
        assert_eq!(h.bin_start(t("2024-02-29 23:59:59")), feb);
        assert_eq!(h.bin_len(feb), 29 * 86_400);
        assert_eq!(h.bin_len(t("2023-02-01 00:00:00")), 28 * 86_400);
        assert_eq!(h.bin_len(t("2024-12-01 00:00:00")), 31 * 86_400);
        assert_eq!(h.bin_start(t("2024-03-01 00:00:00")), t("2024-03-01 00:00:00"));
        // 3-month bins counted from 1970-01: Jan, Apr, Jul, Oct.
        let q = History::parse("3M", None).unwrap();
        assert_eq!(q.bin_start(t("2024-06-15 10:00:00")), t("2024-04-01 00:00:00"));
        assert_eq!(q.bin_len(t("2024-04-01 00:00:00")), (30 + 31 + 30) * 86_400);
        // 5-month bins with roundoff M restart every January.
        let f = History::parse("5M", Some("M")).unwrap();
        assert_eq!(f.bin_start(t("2024-12-15 10:00:00")), t("2024-11-01 00:00:00"));
        assert_eq!(f.bin_start(t("2025-02-15 10:00:00")), t("2025-01-01 00:00:00"));
        // Without M, 5-month bins run across years from 1970-01 (2025-01 is index 660 = 5*132).
        assert_eq!(History::parse("5M", None).unwrap().bin_start(t("2024-12-15 10:00:00")), t("2024-08-01 00:00:00"));
    }

    #[test]
    fn day_roundoff_goes_to_first_of_month() {
        let h = History::parse("1w", Some("d")).unwrap();
        // Anchored at 2024-03-01 00:00, weeks step from there.
        assert_eq!(h.bin_start(t("2024-03-10 05:00:00")), t("2024-03-08 00:00:00"));
    }

    #[test]
    fn extreme_timestamps_do_not_panic() {
        for h in [History::parse("1M", Some("M")).unwrap(), History::parse("1w", Some("w")).unwrap()] {
            for ts in [i64::MIN / 2, -1, 0, i64::MAX / 2] {
                let s = h.bin_start(ts);
                let _ = h.bin_len(s);
            }
        }
    }

    #[test]
    fn offset_shifts_every_bin() {
        // CONFIG-KEYS' example: 30-minute bins with a 900 s offset start at :15 and :45.
        let h = History::parse("30m", None).unwrap().with_offset("900").unwrap();
        assert_eq!(h.bin_start(t("2024-05-06 10:20:00")), t("2024-05-06 10:15:00"));
        assert_eq!(h.bin_start(t("2024-05-06 10:14:59")), t("2024-05-06 09:45:00"));
        assert_eq!(h.bin_start(t("2024-05-06 10:45:00")), t("2024-05-06 10:45:00"));
        assert_eq!(h.bin_len(t("2024-05-06 10:15:00")), 1800);
        // With roundoff: hourly bins from midnight, shifted by 10 minutes.
        let h = History::parse("1h", Some("d")).unwrap().with_offset("600").unwrap();
        assert_eq!(h.bin_start(t("2024-05-06 00:05:00")), t("2024-05-05 23:10:00"));
        assert_eq!(h.bin_start(t("2024-05-06 13:11:00")), t("2024-05-06 13:10:00"));
        // Monthly bins shifted by a day start on the 2nd, and last their month.
        let h = History::parse("1M", None).unwrap().with_offset("86400").unwrap();
        assert_eq!(h.bin_start(t("2024-03-01 12:00:00")), t("2024-02-02 00:00:00"));
        assert_eq!(h.bin_len(t("2024-02-02 00:00:00")), 29 * 86_400);
        for bad in ["0", "-5", "1800", "x", ""] {
            assert!(History::parse("30m", None).unwrap().with_offset(bad).is_err(), "{bad:?} accepted");
        }
    }
}
