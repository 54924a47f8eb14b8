//! Operator overrides (drain, force up, force down), per endpoint, from the
//! admin-state file and the control socket.
//!
//! The file is TOML, one entry per `"RECORD/ENDPOINT"` pattern:
//!
//! ```toml
//! [endpoints]
//! "www.example.test./192.0.2.10" = "drain"
//! "www.example.test./192.0.2.11" = { state = "force-down", until = "2026-11-24T06:00:00Z" }
//! "*.example.test./192.0.2.*" = "drain"
//! ```
//!
//! Patterns are globs (`*`, `?`, `[0-9]`) over the record name (absolute,
//! case-insensitive) and the endpoint address as the agent prints it. An
//! endpoint takes the state of the most specific entry that matches it: an
//! exact entry (no wildcard) first, else the one with the most literal
//! characters. `"normal"` undoes what a broader pattern says. An entry past
//! its `until` is ignored (and dropped when the agent next writes the file).
//! The agent re-reads the file within a second of a change and writes it
//! when the control socket changes something, so the state survives restarts.

use std::collections::BTreeMap;
use std::fmt;
use std::net::IpAddr;
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime};

use anyhow::{Context as _, Result, bail};
use serde::Deserialize;

/// What the operator says about an endpoint.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Mode {
    /// Out of every answer (maintenance); its checks keep running.
    Drain,
    /// Healthy whatever its checks say.
    ForceUp,
    /// Unhealthy whatever its checks say (as if its checks failed: it can
    /// still be answered when failing open, unlike a drained endpoint).
    ForceDown,
    /// No override: undoes a broader pattern.
    Normal,
}

impl Mode {
    pub fn name(self) -> &'static str {
        match self {
            Mode::Drain => "drain",
            Mode::ForceUp => "force-up",
            Mode::ForceDown => "force-down",
            Mode::Normal => "normal",
        }
    }

    pub fn parse(text: &str) -> Option<Mode> {
        Some(match text {
            "drain" => Mode::Drain,
            "force-up" => Mode::ForceUp,
            "force-down" => Mode::ForceDown,
            "normal" => Mode::Normal,
            _ => return None,
        })
    }
}

impl fmt::Display for Mode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// One entry of the file.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Rule {
    /// `"RECORD/ENDPOINT"`, normalised (absolute record name, lowercase).
    pub key: String,
    pub mode: Mode,
    pub until: Option<SystemTime>,
    record: String,
    endpoint: String,
}

impl Rule {
    /// A rule for `key` (`"RECORD/ENDPOINT"`, globs allowed).
    pub fn new(key: &str, mode: Mode, until: Option<SystemTime>) -> Result<Rule> {
        let Some((record, endpoint)) = key.rsplit_once('/') else {
            bail!("{key:?}: expected \"RECORD/ENDPOINT\", e.g. \"www.example.test./192.0.2.10\"");
        };
        let mut record = record.trim().to_ascii_lowercase();
        let endpoint = endpoint.trim().to_ascii_lowercase();
        if record.is_empty() || endpoint.is_empty() {
            bail!("{key:?}: expected \"RECORD/ENDPOINT\", e.g. \"www.example.test./192.0.2.10\"");
        }
        if !record.ends_with('.') && !record.ends_with('*') {
            record.push('.');
        }
        for part in [&record, &endpoint] {
            glob_match(part, "")
                .map_err(|e| anyhow::anyhow!("{key:?}: {e}"))
                .map(|_| ())?;
        }
        // An exact endpoint must be an address: catches typos at once.
        if !has_wildcard(&endpoint) {
            let addr: IpAddr = endpoint
                .parse()
                .with_context(|| format!("{key:?}: {endpoint:?} is not an IP address"))?;
            return Ok(Rule {
                key: format!("{record}/{addr}"),
                mode,
                until,
                record,
                endpoint: addr.to_string(),
            });
        }
        Ok(Rule {
            key: format!("{record}/{endpoint}"),
            mode,
            until,
            record,
            endpoint,
        })
    }

    pub fn is_exact(&self) -> bool {
        !has_wildcard(&self.record) && !has_wildcard(&self.endpoint)
    }

    fn matches(&self, record: &str, endpoint: &str) -> bool {
        glob_match(&self.record, record).unwrap_or(false)
            && glob_match(&self.endpoint, endpoint).unwrap_or(false)
    }

    fn specificity(&self) -> (bool, usize) {
        let literal = |p: &str| p.chars().filter(|c| !"*?[]".contains(*c)).count();
        (
            self.is_exact(),
            literal(&self.record) + literal(&self.endpoint),
        )
    }

    pub fn expired(&self, now: SystemTime) -> bool {
        self.until.is_some_and(|until| until <= now)
    }
}

/// The operator's overrides.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct AdminState {
    /// By key.
    rules: BTreeMap<String, Rule>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct StateFile {
    #[serde(default)]
    endpoints: BTreeMap<String, EntryFile>,
}

#[derive(Deserialize)]
#[serde(untagged)]
enum EntryFile {
    Mode(String),
    Full {
        state: String,
        until: Option<String>,
    },
}

impl AdminState {
    /// Parses the file's text; errors name the entry.
    pub fn parse(text: &str) -> Result<AdminState> {
        let file: StateFile = toml::from_str(text).map_err(|e| anyhow::anyhow!("{e}"))?;
        let mut state = AdminState::default();
        for (key, entry) in file.endpoints {
            let (mode, until) = match entry {
                EntryFile::Mode(mode) => (mode, None),
                EntryFile::Full { state, until } => (state, until),
            };
            let Some(mode) = Mode::parse(&mode) else {
                bail!(
                    "endpoints.{key:?}: unknown state {mode:?}: expected \"drain\", \"force-up\", \"force-down\" or \"normal\""
                );
            };
            let until = match until {
                None => None,
                Some(text) => Some(humantime::parse_rfc3339_weak(&text).map_err(|e| {
                    anyhow::anyhow!(
                        "endpoints.{key:?}.until: {text:?}: {e} (expected e.g. \"2026-11-24T06:00:00Z\")"
                    )
                })?),
            };
            let rule =
                Rule::new(&key, mode, until).with_context(|| format!("endpoints.{key:?}"))?;
            if state.rules.contains_key(&rule.key) {
                bail!(
                    "endpoints.{key:?}: the same entry as another key ({})",
                    rule.key
                );
            }
            state.rules.insert(rule.key.clone(), rule);
        }
        Ok(state)
    }

    /// The file's text for this state (expired entries left out).
    pub fn to_toml(&self, now: SystemTime) -> String {
        let mut out = String::from(
            "# failover-agent admin state: \"RECORD/ENDPOINT\" = \"drain\" | \"force-up\" | \"force-down\" | \"normal\"\n\
             # (globs allowed; or { state = \"drain\", until = \"2026-11-24T06:00:00Z\" }).\n\
             # Edits are applied within a second; `failover-agent drain/undrain/force` write here too.\n\
             [endpoints]\n",
        );
        for rule in self.rules.values().filter(|r| !r.expired(now)) {
            let key = toml_string(&rule.key);
            match rule.until {
                None => out.push_str(&format!("{key} = \"{}\"\n", rule.mode)),
                Some(until) => out.push_str(&format!(
                    "{key} = {{ state = \"{}\", until = \"{}\" }}\n",
                    rule.mode,
                    humantime::format_rfc3339_seconds(until)
                )),
            }
        }
        out
    }

    /// The rule that decides `endpoint` of `record` at `now`, if any.
    pub fn lookup(&self, record: &str, endpoint: IpAddr, now: SystemTime) -> Option<&Rule> {
        let record = normalise_record(record);
        let endpoint = endpoint.to_string();
        self.rules
            .values()
            .filter(|r| !r.expired(now) && r.matches(&record, &endpoint))
            .max_by_key(|r| r.specificity())
    }

    /// The override in force for `endpoint` of `record` (Normal = none).
    pub fn mode(
        &self,
        record: &str,
        endpoint: IpAddr,
        now: SystemTime,
    ) -> Option<(Mode, Option<SystemTime>)> {
        self.lookup(record, endpoint, now)
            .filter(|r| r.mode != Mode::Normal)
            .map(|r| (r.mode, r.until))
    }

    /// Sets the exact entry for `endpoint` of `record`.
    pub fn set(&mut self, record: &str, endpoint: IpAddr, mode: Mode, until: Option<SystemTime>) {
        let rule = Rule::new(
            &format!("{}/{endpoint}", normalise_record(record)),
            mode,
            until,
        )
        .expect("an absolute name and an address make a valid key");
        self.rules.insert(rule.key.clone(), rule);
    }

    /// Returns `endpoint` of `record` to normal if its override is one of
    /// `modes`: drops its exact entry, and if a pattern still applies one of
    /// `modes`, writes an exact `normal` entry over it. False if nothing
    /// changed.
    pub fn clear(
        &mut self,
        record: &str,
        endpoint: IpAddr,
        modes: &[Mode],
        now: SystemTime,
    ) -> bool {
        match self.mode(record, endpoint, now) {
            Some((mode, _)) if modes.contains(&mode) => {}
            _ => return false,
        }
        let key = format!("{}/{endpoint}", normalise_record(record));
        self.rules.remove(&key);
        if self
            .mode(record, endpoint, now)
            .is_some_and(|(mode, _)| modes.contains(&mode))
        {
            self.set(record, endpoint, Mode::Normal, None);
        }
        true
    }

    /// Drops entries that have expired; true if any did.
    pub fn prune(&mut self, now: SystemTime) -> bool {
        let before = self.rules.len();
        self.rules.retain(|_, r| !r.expired(now));
        self.rules.len() != before
    }

    pub fn rules(&self) -> impl Iterator<Item = &Rule> {
        self.rules.values()
    }
}

/// The admin state and the file it lives in (if any).
#[derive(Debug)]
pub struct AdminStore {
    path: Option<PathBuf>,
    pub state: AdminState,
    /// (mtime, length) of the file as last read or written.
    seen: Option<(SystemTime, u64)>,
}

impl AdminStore {
    /// In memory only: nothing survives a restart.
    pub fn memory() -> AdminStore {
        AdminStore {
            path: None,
            state: AdminState::default(),
            seen: None,
        }
    }

    /// The state in `path`; a missing file is an empty state (created on the
    /// first change).
    pub fn open(path: &Path) -> Result<AdminStore> {
        let mut store = AdminStore {
            path: Some(path.to_path_buf()),
            state: AdminState::default(),
            seen: None,
        };
        store.reload()?;
        Ok(store)
    }

    pub fn path(&self) -> Option<&Path> {
        self.path.as_deref()
    }

    fn stamp(path: &Path) -> Option<(SystemTime, u64)> {
        let meta = std::fs::metadata(path).ok()?;
        Some((meta.modified().ok()?, meta.len()))
    }

    fn reload(&mut self) -> Result<()> {
        let Some(path) = &self.path else {
            return Ok(());
        };
        let stamp = Self::stamp(path);
        let state = match std::fs::read_to_string(path) {
            Ok(text) => AdminState::parse(&text)
                .with_context(|| format!("admin state file {}", path.display()))?,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => AdminState::default(),
            Err(e) => {
                return Err(e)
                    .with_context(|| format!("reading admin state file {}", path.display()));
            }
        };
        self.state = state;
        self.seen = stamp;
        Ok(())
    }

    /// Re-reads the file if it changed since it was last read or written.
    /// Ok(true) when the state was replaced; an invalid file keeps the
    /// current state (Err, once per change of the file).
    pub fn poll(&mut self) -> Result<bool> {
        let Some(path) = &self.path else {
            return Ok(false);
        };
        let stamp = Self::stamp(path);
        if stamp == self.seen {
            return Ok(false);
        }
        let old = self.state.clone();
        // Remember the stamp first: a bad file is reported once, not every second.
        self.seen = stamp;
        match self.reload() {
            Ok(()) => Ok(self.state != old),
            Err(e) => {
                self.state = old;
                self.seen = stamp;
                Err(e)
            }
        }
    }

    /// Writes the state to the file (atomically: a temporary file renamed
    /// over it). Nothing to do without a file.
    pub fn save(&mut self, now: SystemTime) -> Result<()> {
        let Some(path) = &self.path else {
            return Ok(());
        };
        let text = self.state.to_toml(now);
        let tmp = path.with_extension(format!("tmp.{}", std::process::id()));
        std::fs::write(&tmp, text)
            .and_then(|()| std::fs::rename(&tmp, path))
            .with_context(|| format!("writing admin state file {}", path.display()))?;
        self.seen = Self::stamp(path);
        Ok(())
    }
}

/// An absolute, lowercase record name.
pub fn normalise_record(name: &str) -> String {
    let mut name = name.trim().to_ascii_lowercase();
    if !name.ends_with('.') {
        name.push('.');
    }
    name
}

/// `--until 2026-11-24T06:00:00Z` or `--for 2h` as a time.
/// Longest override `--for` may set: ten years (longer is a
/// typo, and stays far from what the clock can hold).
pub const MAX_OVERRIDE: Duration = Duration::from_secs(10 * 365 * 24 * 60 * 60);

pub fn until_value(
    until: Option<&str>,
    duration: Option<&str>,
    now: SystemTime,
) -> Result<Option<SystemTime>> {
    match (until, duration) {
        (Some(_), Some(_)) => bail!("give --until or --for, not both"),
        (Some(text), None) => {
            let t = humantime::parse_rfc3339_weak(text).map_err(|e| {
                anyhow::anyhow!("--until {text:?}: {e} (expected e.g. 2026-11-24T06:00:00Z)")
            })?;
            if t <= now {
                bail!("--until {text}: that is in the past");
            }
            Ok(Some(t))
        }
        (None, Some(text)) => {
            let d: Duration = humantime::parse_duration(text)
                .map_err(|e| anyhow::anyhow!("--for {text:?}: {e} (expected e.g. 2h, 30m)"))?;
            if d.is_zero() {
                bail!("--for {text}: must be longer than 0");
            }
            if d > MAX_OVERRIDE {
                bail!("--for {text}: at most 10 years");
            }
            match now.checked_add(d) {
                Some(t) => Ok(Some(t)),
                None => bail!("--for {text}: the end time is beyond what the clock can hold"),
            }
        }
        (None, None) => Ok(None),
    }
}

fn has_wildcard(pattern: &str) -> bool {
    pattern.contains(['*', '?', '['])
}

fn toml_string(text: &str) -> String {
    let mut out = String::from("\"");
    for c in text.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            c if c.is_control() => out.push_str(&format!("\\u{:04x}", c as u32)),
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

/// Glob match: `*` any run of characters, `?` one character, `[abc]`,
/// `[a-z]` and `[!a-z]` one character of (not of) a set. Err for a bad
/// pattern (an unclosed `[`).
pub fn glob_match(pattern: &str, text: &str) -> Result<bool, String> {
    let p: Vec<char> = pattern.chars().collect();
    let t: Vec<char> = text.chars().collect();
    // Validate the classes first so errors do not depend on the text.
    let mut i = 0;
    while i < p.len() {
        if p[i] == '[' {
            class_end(&p, i).ok_or_else(|| format!("unclosed '[' in {pattern:?}"))?;
        }
        i += 1;
    }
    Ok(glob_at(&p, &t))
}

/// Index just past the `]` closing the class that starts at `start`.
fn class_end(p: &[char], start: usize) -> Option<usize> {
    let mut j = start + 1;
    if p.get(j) == Some(&'!') {
        j += 1;
    }
    // A `]` first in the class is literal.
    if p.get(j) == Some(&']') {
        j += 1;
    }
    while j < p.len() {
        if p[j] == ']' {
            return Some(j + 1);
        }
        j += 1;
    }
    None
}

fn class_matches(class: &[char], c: char) -> bool {
    let (negated, body) = match class.first() {
        Some('!') => (true, &class[1..]),
        _ => (false, class),
    };
    let mut k = 0;
    let mut hit = false;
    while k < body.len() {
        if k + 2 < body.len() && body[k + 1] == '-' {
            hit |= body[k] <= c && c <= body[k + 2];
            k += 3;
        } else {
            hit |= body[k] == c;
            k += 1;
        }
    }
    hit != negated
}

fn glob_at(p: &[char], t: &[char]) -> bool {
    // Iterative with backtracking to the last `*` (linear-ish, no recursion blowup).
    let (mut pi, mut ti) = (0, 0);
    let mut star: Option<(usize, usize)> = None;
    while ti < t.len() {
        if pi < p.len() {
            match p[pi] {
                '*' => {
                    star = Some((pi, ti));
                    pi += 1;
                    continue;
                }
                '?' => {
                    pi += 1;
                    ti += 1;
                    continue;
                }
                '[' => {
                    let end = class_end(p, pi).expect("validated");
                    if class_matches(&p[pi + 1..end - 1], t[ti]) {
                        pi = end;
                        ti += 1;
                        continue;
                    }
                }
                c if c == t[ti] => {
                    pi += 1;
                    ti += 1;
                    continue;
                }
                _ => {}
            }
        }
        match star {
            Some((sp, st)) => {
                pi = sp + 1;
                ti = st + 1;
                star = Some((sp, st + 1));
            }
            None => return false,
        }
    }
    p[pi..].iter().all(|&c| c == '*')
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(text: &str) -> IpAddr {
        text.parse().unwrap()
    }

    #[test]
    fn globs() {
        let m = |p: &str, t: &str| glob_match(p, t).unwrap();
        assert!(m("192.0.2.*", "192.0.2.10"));
        assert!(!m("192.0.2.*", "192.0.20.1"));
        assert!(m("*", ""));
        assert!(m("192.0.2.1?", "192.0.2.10"));
        assert!(!m("192.0.2.1?", "192.0.2.1"));
        assert!(m("192.0.2.[12]0", "192.0.2.20"));
        assert!(m("192.0.2.[0-4]", "192.0.2.3"));
        assert!(!m("192.0.2.[!0-4]", "192.0.2.3"));
        assert!(m("*.example.test.", "www.example.test."));
        assert!(!m("*.example.test.", "example.test."));
        assert!(m("2001:db8::*", "2001:db8::10"));
        assert!(m("a*b*c", "aXXbYYc"));
        assert!(!m("a*b*c", "aXXbYY"));
        assert!(glob_match("192.0.2.[1", "x").is_err());
    }

    #[test]
    fn file_entries_most_specific_wins() {
        let text = r#"
[endpoints]
"*.example.test./192.0.2.*" = "drain"
"www.example.test./192.0.2.10" = "normal"
"www.example.test/192.0.2.11" = { state = "force-down", until = "2099-01-01T00:00:00Z" }
"api.example.test./192.0.2.1?" = "force-up"
"old.example.test./192.0.2.5" = { state = "drain", until = "2001-01-01T00:00:00Z" }
"#;
        let state = AdminState::parse(text).unwrap();
        let now = SystemTime::now();
        let www = "WWW.example.test.";
        assert_eq!(
            state.mode(www, ip("192.0.2.10"), now),
            None,
            "normal beats the pattern"
        );
        assert_eq!(
            state.mode(www, ip("192.0.2.11"), now).map(|m| m.0),
            Some(Mode::ForceDown),
            "a missing final dot is added"
        );
        assert_eq!(
            state.mode(www, ip("192.0.2.12"), now).map(|m| m.0),
            Some(Mode::Drain)
        );
        assert_eq!(
            state
                .mode("api.example.test.", ip("192.0.2.15"), now)
                .map(|m| m.0),
            Some(Mode::ForceUp),
            "more literal characters win over the broad pattern"
        );
        assert_eq!(state.mode("www.other.test.", ip("192.0.2.12"), now), None);
        // Expired: ignored, but only pattern matching decides then.
        assert_eq!(
            state
                .mode("old.example.test.", ip("192.0.2.5"), now)
                .map(|m| m.0),
            Some(Mode::Drain),
            "the expired exact entry is ignored; the pattern applies"
        );
        // The text round-trips (expired entries are dropped).
        let again = AdminState::parse(&state.to_toml(now)).unwrap();
        assert_eq!(again.rules().count(), 4);
        assert_eq!(
            again.mode(www, ip("192.0.2.11"), now),
            state.mode(www, ip("192.0.2.11"), now)
        );
    }

    #[test]
    fn file_errors_name_the_entry() {
        let err = |text: &str| format!("{:#}", AdminState::parse(text).unwrap_err());
        let e = err("[endpoints]\n\"www.t./192.0.2.1\" = \"drained\"\n");
        assert!(
            e.contains("endpoints.\"www.t./192.0.2.1\"") && e.contains("unknown state \"drained\""),
            "{e}"
        );
        let e = err("[endpoints]\n\"www.t.\" = \"drain\"\n");
        assert!(e.contains("RECORD/ENDPOINT"), "{e}");
        let e = err("[endpoints]\n\"www.t./192.0.2.x\" = \"drain\"\n");
        assert!(e.contains("not an IP address"), "{e}");
        let e = err(
            "[endpoints]\n\"www.t./192.0.2.1\" = { state = \"drain\", until = \"tomorrow\" }\n",
        );
        assert!(e.contains(".until") && e.contains("tomorrow"), "{e}");
        let e = err("[endpoints]\n\"www.t./192.0.2.[1\" = \"drain\"\n");
        assert!(e.contains("unclosed"), "{e}");
        let e = err("[endpoint]\n");
        assert!(e.contains("unknown field"), "{e}");
    }

    #[test]
    fn set_and_clear_write_exact_entries() {
        let now = SystemTime::now();
        let mut state = AdminState::parse("[endpoints]\n\"*/192.0.2.*\" = \"drain\"\n").unwrap();
        let a = ip("192.0.2.1");
        assert_eq!(state.mode("www.t.", a, now).map(|m| m.0), Some(Mode::Drain));
        // Undrain over a pattern: an exact "normal" entry.
        assert!(state.clear("www.t.", a, &[Mode::Drain], now));
        assert_eq!(state.mode("www.t.", a, now), None);
        assert!(
            !state.clear("www.t.", a, &[Mode::Drain], now),
            "not drained"
        );
        state.set("www.t", a, Mode::ForceUp, None);
        assert_eq!(
            state.mode("www.t.", a, now).map(|m| m.0),
            Some(Mode::ForceUp)
        );
        assert!(
            !state.clear("www.t.", a, &[Mode::Drain], now),
            "undrain leaves force alone"
        );
        assert!(state.clear("www.t.", a, &[Mode::ForceUp, Mode::ForceDown], now));
        // Force clear ends the force only: the file's pattern drains it again.
        assert_eq!(state.mode("www.t.", a, now).map(|m| m.0), Some(Mode::Drain));
        // Until.
        let later = now + Duration::from_secs(60);
        state.set("www.t.", ip("192.0.2.200"), Mode::ForceDown, Some(later));
        assert!(state.mode("www.t.", ip("192.0.2.200"), now).is_some());
        assert_eq!(
            state
                .mode("www.t.", ip("192.0.2.200"), later + Duration::from_secs(1))
                .map(|m| m.0),
            Some(Mode::Drain),
            "expired: the pattern again"
        );
        assert!(state.prune(later + Duration::from_secs(1)));
    }

    #[test]
    fn until_and_for() {
        let now = SystemTime::now();
        assert_eq!(until_value(None, None, now).unwrap(), None);
        assert_eq!(
            until_value(None, Some("2h"), now).unwrap(),
            Some(now + Duration::from_secs(7200))
        );
        assert!(
            until_value(Some("2099-11-24T06:00:00Z"), None, now)
                .unwrap()
                .is_some()
        );
        assert!(until_value(Some("2001-11-24T06:00:00Z"), None, now).is_err());
        assert!(until_value(Some("soon"), None, now).is_err());
        assert!(until_value(None, Some("0s"), now).is_err());
        assert!(until_value(Some("2099-11-24T06:00:00Z"), Some("2h"), now).is_err());
        // Huge durations are refused, not added to the clock (that panics).
        assert!(until_value(None, Some("10000y"), now).is_err());
        assert!(until_value(None, Some("400000000000y"), now).is_err());
        assert!(until_value(None, Some("3650days"), now).is_ok());
    }

    #[test]
    fn store_polls_and_saves() {
        let dir = std::env::temp_dir().join(format!("failover-admin-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("state.toml");
        let _ = std::fs::remove_file(&path);
        let now = SystemTime::now();
        let mut store = AdminStore::open(&path).unwrap();
        assert!(!store.poll().unwrap(), "missing file: empty, unchanged");
        store
            .state
            .set("www.t.", ip("192.0.2.1"), Mode::Drain, None);
        store.save(now).unwrap();
        assert!(!store.poll().unwrap(), "our own write is not a change");
        let reopened = AdminStore::open(&path).unwrap();
        assert_eq!(reopened.state, store.state, "survives a restart");
        // An edit by hand (different length, so seen even within one mtime tick).
        std::fs::write(
            &path,
            "[endpoints]\n\"www.t./192.0.2.2\" = \"force-down\"\n",
        )
        .unwrap();
        assert!(store.poll().unwrap());
        assert_eq!(store.state.mode("www.t.", ip("192.0.2.1"), now), None);
        // A broken edit keeps the state, reported once.
        std::fs::write(&path, "[endpoints]\n\"www.t./192.0.2.2\" = \"sideways\"\n").unwrap();
        assert!(store.poll().is_err());
        assert!(!store.poll().unwrap());
        assert_eq!(
            store
                .state
                .mode("www.t.", ip("192.0.2.2"), now)
                .map(|m| m.0),
            Some(Mode::ForceDown)
        );
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
