//! The key inventory: every key pmacct 1.7.7's CONFIG-KEYS lists has a state in xacct (so no
//! key can fall through to "unknown" or a catch-all again), every refusal and every no-effect
//! key has a reason, and `docs/pmacct-keys.md` is the inventory's current rendering.

use std::collections::BTreeSet;
use xacct_core::config::inventory::{self, State};
use xacct_core::config::{Config, ConfigError};

const CONFIG_KEYS: &str = "/usr/share/pmacct/CONFIG-KEYS";

/// Skips with a reason, except under CI=true, where nothing may be skipped.
fn skip(reason: &str) {
    assert!(std::env::var("CI").as_deref() != Ok("true"), "cannot skip under CI=true: {reason}");
    eprintln!("SKIP: {reason}");
}

/// The keys of CONFIG-KEYS' `KEY:` entries: groups like `[ a | b ] [GLOBAL]` spread over
/// several lines, flags in capitals and command-line switches left out.
fn config_keys(text: &str) -> Vec<String> {
    let lines: Vec<&str> = text.lines().collect();
    let mut keys = Vec::new();
    let mut i = 0;
    while i < lines.len() {
        let Some(first) = lines[i].strip_prefix("KEY:") else {
            i += 1;
            continue;
        };
        let mut entry = first.to_string();
        let depth = |s: &str| s.matches('[').count() as i64 - s.matches(']').count() as i64;
        let mut open = depth(first);
        i += 1;
        while open > 0 && i < lines.len() {
            entry.push(' ');
            entry.push_str(lines[i]);
            open += depth(lines[i]);
            i += 1;
        }
        // Flags: `[GLOBAL, NO_PMACCTD]`; switches: `(-c)`.
        let mut cleaned = String::new();
        let mut rest = entry.as_str();
        while let Some(start) = rest.find(['[', '(']) {
            cleaned.push_str(&rest[..start]);
            let close = if rest[start..].starts_with('(') { ')' } else { ']' };
            let end = rest[start..].find(close).map_or(rest.len(), |e| start + e + 1);
            let inner = &rest[start + 1..end.saturating_sub(1).max(start + 1)];
            let is_flags = close == ')'
                || inner.trim().chars().all(|c| c.is_ascii_uppercase() || c == '_' || c == ',' || c == ' ');
            if !is_flags {
                cleaned.push(' ');
                cleaned.push_str(inner);
                cleaned.push(' ');
            }
            rest = &rest[end..];
        }
        cleaned.push_str(rest);
        for tok in cleaned.split(|c: char| c.is_whitespace() || c == '|' || c == ',') {
            if !tok.is_empty() {
                assert!(
                    tok.chars().all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_'),
                    "unexpected token '{tok}' in KEY entry '{entry}'"
                );
                keys.push(tok.to_string());
            }
        }
    }
    keys
}

#[test]
fn every_config_keys_key_has_a_state() {
    let text = match std::fs::read_to_string(CONFIG_KEYS) {
        Ok(t) => t,
        Err(e) => {
            skip(&format!("{CONFIG_KEYS}: {e} (apt-get install pmacct)"));
            return;
        }
    };
    let keys = config_keys(&text);
    // pmacct 1.7.7 lists 325 entries naming 558 keys: a parser that finds far fewer is broken.
    assert!(keys.len() >= 550, "only {} keys found in {CONFIG_KEYS}", keys.len());
    let listed: BTreeSet<&str> = inventory::keys().map(|k| k.key).collect();
    let missing: Vec<&String> = keys.iter().filter(|k| !listed.contains(k.as_str())).collect();
    assert!(missing.is_empty(), "keys of CONFIG-KEYS the inventory does not list: {missing:?}");
    // And the parser classifies each of them: none is unknown.
    for k in &keys {
        match Config::parse_str(&format!("{k}: x\n"), "/etc/x.conf", &[]) {
            Err(ConfigError::UnknownKey { .. }) => panic!("{k}: unknown"),
            Err(ConfigError::Refused { why, .. }) => assert!(!why.is_empty(), "{k}"),
            _ => {}
        }
    }
}

#[test]
fn refusals_and_no_effect_keys_have_reasons_and_keys_are_listed_once() {
    let mut seen = BTreeSet::new();
    for k in inventory::keys() {
        assert!(seen.insert(k.key), "{} is listed twice", k.key);
        assert!(k.key.chars().all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_'), "{}", k.key);
        match k.state {
            State::Implemented => {}
            State::NoEffect(why) | State::Refused(why) => assert!(why.len() > 10, "{}: reason '{why}'", k.key),
        }
        assert_eq!(inventory::lookup(k.key).map(|i| i.key), Some(k.key));
    }
    for (prefix, _, why) in inventory::refused_prefixes() {
        assert!(!why.is_empty());
        let probe = format!("{prefix}x_newer_key");
        assert!(matches!(inventory::lookup(&probe).map(|i| i.state), Some(State::Refused(_))), "{probe}");
    }
    assert!(inventory::lookup("no_such_key").is_none());
}

#[test]
fn no_effect_keys_are_accepted_and_logged_with_their_reason() {
    for k in inventory::keys().filter(|k| matches!(k.state, State::NoEffect(_))) {
        let c = Config::parse_str(&format!("{}: 1\n", k.key), "/etc/x.conf", &[])
            .unwrap_or_else(|e| panic!("{}: {e}", k.key));
        let ig = c.ignored.iter().find(|i| i.origin.key == k.key).unwrap_or_else(|| panic!("{} not recorded", k.key));
        assert_eq!(Some(ig.why.as_str()), k.state.reason());
    }
}

/// docs/pmacct-keys.md is generated from the inventory; `XACCT_BLESS=1` rewrites it.
#[test]
fn keys_doc_is_current() {
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../docs/pmacct-keys.md");
    let want = inventory::markdown();
    if std::env::var("XACCT_BLESS").as_deref() == Ok("1") {
        std::fs::create_dir_all(path.parent().expect("docs dir")).expect("create docs/");
        std::fs::write(&path, &want).expect("write docs/pmacct-keys.md");
    }
    let have = std::fs::read_to_string(&path).unwrap_or_default();
    assert!(
        have == want,
        "{} is not current: run XACCT_BLESS=1 cargo test -p xacct-core --test config_inventory",
        path.display()
    );
}
