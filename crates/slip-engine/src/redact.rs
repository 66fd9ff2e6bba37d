//! Value-based redaction (SPEC §11.4): every occurrence of a known secret value in a text slip records or
//! relays (deploy events, error strings, container log lines) is replaced with `[redacted:KEY]`.
//!
//! One Aho-Corasick automaton (leftmost-longest, so a value that contains another is replaced whole) is
//! built over the values of an app's secrets in both scopes, the auth tokens and the registry passwords.
//! Values shorter than [`MIN_REDACTABLE_LEN`] bytes are left out: replacing every `abc` in a log would destroy
//! the log and still reveal the value by its absence, so `slip secrets set` warns about them instead.
//!
//! Text that arrives in pieces (a container log line longer than the engine's cap) is redacted piece by piece
//! with [`Redactor::split_point`]: the end of a piece that may begin a value is held back and put in front of
//! the next piece, so a value straddling the cut is still found whole.
//!
//! This module only rewrites text. It does not know where values come from (the daemon gathers them) and
//! never stores or prints them: `Debug` shows the labels only.

use std::borrow::Cow;
use std::fmt;
use std::sync::Arc;

use aho_corasick::{AhoCorasick, MatchKind};

/// Values shorter than this many bytes are not redacted.
pub const MIN_REDACTABLE_LEN: usize = 6;

/// Replaces known secret values with `[redacted:LABEL]`. Cheap to clone; the default redacts nothing.
#[derive(Clone, Default)]
pub struct Redactor {
    inner: Option<Arc<Inner>>,
}

struct Inner {
    /// One pattern per distinct value, in the same order as `replacements`.
    matcher: Option<AhoCorasick>,
    values: Vec<String>,
    replacements: Vec<String>,
    /// The length of the longest value, in bytes.
    longest: usize,
}

impl Redactor {
    /// A redactor for `(label, value)` pairs, e.g. `("DATABASE_URL", "postgres://…")` or
    /// `("auth.secret", "…")`. Values shorter than [`MIN_REDACTABLE_LEN`] bytes are skipped; a value given
    /// twice keeps its first label. Each line of a value that spans lines is redacted on its own as well, without
    /// the whitespace around it, if it is still long enough.
    pub fn new<L, V>(secrets: impl IntoIterator<Item = (L, V)>) -> Redactor
    where
        L: AsRef<str>,
        V: AsRef<str>,
    {
        let mut values: Vec<String> = Vec::new();
        let mut replacements = Vec::new();
        for (label, value) in secrets {
            let value = value.as_ref();
            // Output is relayed line by line (container logs, hook output), so each line of a value that spans
            // lines, such as a PEM key, is a value of its own too. The whole value still wins where it appears.
            // The whitespace around a line goes: an app that prints a JSON key file may indent it differently.
            let lines = value.contains('\n').then(|| value.split('\n').map(str::trim));
            for part in std::iter::once(value).chain(lines.into_iter().flatten()) {
                // An engine or a log line may quote the value with its control characters, quotes and backslashes
                // escaped (Go's %q, JSON, Rust's Debug), so those spellings are values too.
                for form in std::iter::once(part.to_owned()).chain(escaped_forms(part)) {
                    if form.len() < MIN_REDACTABLE_LEN || values.contains(&form) {
                        continue;
                    }
                    values.push(form);
                    replacements.push(format!("[redacted:{}]", label.as_ref()));
                }
            }
        }
        if values.is_empty() {
            return Redactor::default();
        }
        // Building fails only past the automaton's size limits (megabytes of patterns); the plain
        // replacement loop below is then used instead, so a value is never left in the text.
        let matcher = AhoCorasick::builder().match_kind(MatchKind::LeftmostLongest).build(&values).ok();
        let longest = values.iter().map(String::len).max().unwrap_or(0);
        Redactor { inner: Some(Arc::new(Inner { matcher, values, replacements, longest })) }
    }

    /// `text` with every known value replaced. Borrows when nothing matched.
    pub fn redact<'a>(&self, text: &'a str) -> Cow<'a, str> {
        let Some(inner) = &self.inner else { return Cow::Borrowed(text) };
        match &inner.matcher {
            Some(matcher) => {
                if matcher.find(text).is_none() {
                    return Cow::Borrowed(text);
                }
                Cow::Owned(matcher.replace_all(text, &inner.replacements))
            }
            None => {
                let mut out = Cow::Borrowed(text);
                let mut order: Vec<usize> = (0..inner.values.len()).collect();
                order.sort_by_key(|i| std::cmp::Reverse(inner.values[*i].len()));
                for i in order {
                    if out.contains(inner.values[i].as_str()) {
                        out = Cow::Owned(out.replace(inner.values[i].as_str(), &inner.replacements[i]));
                    }
                }
                out
            }
        }
    }

    /// Where to split `text` when more of the same line will follow it: `redact(&text[..at])` is final, and
    /// `text[at..]` must be put in front of what follows before that is redacted. Redacting piece by piece this
    /// way gives the same result as redacting the whole line at once.
    ///
    /// No value that starts before the split ends after it: the split is the longest value's length less one byte
    /// from the end of `text`, or later where a value found there reaches further. It is always a character
    /// boundary; `text.len()` when there is nothing to redact, and possibly 0 when `text` is shorter than a value.
    pub fn split_point(&self, text: &str) -> usize {
        let Some(inner) = &self.inner else { return text.len() };
        let mut at = text.len() - (inner.longest - 1).min(text.len());
        while !text.is_char_boundary(at) {
            at -= 1;
        }
        // Every value that starts before `at` fits in `text`, so the matches found there are the ones the whole
        // line would give; one that ends past `at` moves the split to its end.
        match &inner.matcher {
            Some(matcher) => {
                for found in matcher.find_iter(text) {
                    if found.start() >= at {
                        break;
                    }
                    at = at.max(found.end());
                }
            }
            None => loop {
                let straddling = inner
                    .values
                    .iter()
                    .flat_map(|value| text.match_indices(value.as_str()))
                    .map(|(start, value)| (start, start + value.len()))
                    .filter(|(start, end)| *start < at && *end > at)
                    .map(|(_, end)| end)
                    .max();
                match straddling {
                    Some(end) => at = end,
                    None => break,
                }
            },
        }
        at
    }

    /// True when there is nothing to redact.
    pub fn is_empty(&self) -> bool {
        self.inner.is_none()
    }
}

/// The spellings of `value` inside a quoted string where it differs from the value itself: Go's `%q` (what Docker and
/// Podman print), JSON, and Rust's `Debug`, each also quoted once more as a JSON string. None when the value has
/// nothing to escape.
fn escaped_forms(value: &str) -> Vec<String> {
    if !value.chars().any(|c| c.is_control() || c == '"' || c == '\\') {
        return Vec::new();
    }
    let mut go = String::new();
    let mut json = String::new();
    for c in value.chars() {
        match c {
            '"' | '\\' => {
                go.extend(['\\', c]);
                json.extend(['\\', c]);
            }
            '\n' | '\r' | '\t' => {
                let short = match c {
                    '\n' => "\\n",
                    '\r' => "\\r",
                    _ => "\\t",
                };
                go.push_str(short);
                json.push_str(short);
            }
            c if (c as u32) < 0x20 || c == '\u{7f}' => {
                let short = match c {
                    '\u{7}' => Some("\\a"),
                    '\u{8}' => Some("\\b"),
                    '\u{b}' => Some("\\v"),
                    '\u{c}' => Some("\\f"),
                    _ => None,
                };
                match short {
                    Some(s) => go.push_str(s),
                    None => go.push_str(&format!("\\x{:02x}", c as u32)),
                }
                match c {
                    '\u{8}' => json.push_str("\\b"),
                    '\u{c}' => json.push_str("\\f"),
                    '\u{7f}' => json.push(c),
                    _ => json.push_str(&format!("\\u{:04x}", c as u32)),
                }
            }
            c if c.is_control() => {
                go.push_str(&format!("\\u{:04x}", c as u32));
                json.push(c);
            }
            c => {
                go.push(c);
                json.push(c);
            }
        }
    }
    let debug = value.escape_debug().to_string();
    // Any of these may be quoted once more inside a JSON string (slipd's JSON log lines, an error in JSON).
    let again: Vec<String> =
        [&go, &json, &debug].iter().map(|f| f.replace('\\', "\\\\").replace('"', "\\\"")).collect();
    let mut forms = vec![go, json, debug];
    forms.extend(again);
    forms.sort();
    forms.dedup();
    forms.retain(|f| f != value);
    forms
}

impl fmt::Debug for Redactor {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let labels: Vec<&str> =
            self.inner.as_ref().map(|i| i.replacements.iter().map(String::as_str).collect()).unwrap_or_default();
        f.debug_struct("Redactor").field("replaces_with", &labels).finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Cuts a line in two or three pieces in every possible way, as a long log line arrives, and redacts the
    /// pieces as the log relay does.
    #[track_caller]
    fn check_split_points(r: &Redactor) {
        let line = "xx abcdefghij abcdef abcdefgh p\u{e4}ss-w\u{f6}rd abcdefghij";
        let whole = r.redact(line);
        assert_eq!(whole, "xx [redacted:LONG] [redacted:SHORT] [redacted:SHORT]gh [redacted:WIDE] [redacted:LONG]");
        let cuts: Vec<usize> = (0..=line.len()).filter(|i| line.is_char_boundary(*i)).collect();
        for (i, &first) in cuts.iter().enumerate() {
            for &second in &cuts[i..] {
                let pieces = [&line[..first], &line[first..second], &line[second..]];
                let mut relayed = String::new();
                let mut held = String::new();
                for (n, piece) in pieces.iter().enumerate() {
                    let mut text = std::mem::take(&mut held) + piece;
                    if n < pieces.len() - 1 {
                        let at = r.split_point(&text);
                        // At most the longest value less one byte is held back, plus the rest of a character.
                        assert!(text.len() - at < "p\u{e4}ss-w\u{f6}rd".len() + 3, "{pieces:?}");
                        held = text.split_off(at);
                    }
                    relayed.push_str(&r.redact(&text));
                }
                assert_eq!(relayed, whole, "pieces {pieces:?}");
            }
        }
    }

    #[test]
    fn replaces_every_value_with_its_label() {
        let r = Redactor::new([("DATABASE_URL", "postgres://u:hunter2@db"), ("API_TOKEN", "tok-123456")]);
        assert_eq!(
            r.redact("connect postgres://u:hunter2@db failed; token tok-123456 and tok-123456"),
            "connect [redacted:DATABASE_URL] failed; token [redacted:API_TOKEN] and [redacted:API_TOKEN]"
        );
        assert!(matches!(r.redact("nothing here"), Cow::Borrowed(_)));
    }

    #[test]
    fn escaped_spellings_of_a_value_are_redacted_too() {
        let r = Redactor::new([("NULV", "abc\u{0}defghij")]);
        // Docker's error for such a value, as slipd recorded it: Go's %q of the variable.
        let engine = r#"container engine rejected start: invalid env "NULV=abc\x00defghij": nul byte"#;
        assert_eq!(
            r.redact(engine),
            r#"container engine rejected start: invalid env "NULV=[redacted:NULV]": nul byte"#
        );
        assert_eq!(r.redact(r#"{"error":"abc\u0000defghij"}"#), r#"{"error":"[redacted:NULV]"}"#, "JSON");
        assert_eq!(r.redact(r#"Err("abc\0defghij")"#), r#"Err("[redacted:NULV]")"#, "Rust Debug");
        let quoted = Redactor::new([("PW", "pa\"ss\\word")]);
        assert_eq!(quoted.redact(r#"password "pa\"ss\\word" refused"#), r#"password "[redacted:PW]" refused"#);
        let pem = Redactor::new([("KEY", "line-one\nline-two")]);
        assert_eq!(
            pem.redact(r#"{"v":"line-one\nline-two"}"#),
            r#"{"v":"[redacted:KEY]"}"#,
            "a JSON-escaped line break"
        );
    }

    #[test]
    fn the_longest_value_wins_when_values_overlap() {
        let r = Redactor::new([("SHORT", "abcdef"), ("LONG", "abcdefghij")]);
        assert_eq!(r.redact("x abcdefghij y abcdef"), "x [redacted:LONG] y [redacted:SHORT]");
    }

    #[test]
    fn each_line_of_a_multi_line_value_is_redacted_on_its_own() {
        let key = "-----BEGIN KEY-----\r\nMIIBVgIBADANBgkq\r\nabc\r\n-----END KEY-----";
        let r = Redactor::new([("TLS_KEY", key)]);
        assert_eq!(r.redact(&format!("key: {key}")), "key: [redacted:TLS_KEY]", "the whole value wins");
        assert_eq!(r.redact("MIIBVgIBADANBgkq"), "[redacted:TLS_KEY]", "a line printed alone");
        assert_eq!(r.redact("abc"), "abc", "lines shorter than the minimum are left alone");
    }

    #[test]
    fn the_lines_of_a_multi_line_value_are_matched_without_their_indentation() {
        let key_file = "{\n  \"type\": \"service_account\",\n\t\"private_key\": \"MIIEvQIBADANBgkqhkiG\"\n}\n";
        let r = Redactor::new([("GCP_KEY", key_file)]);
        assert_eq!(r.redact(r#"    "private_key": "MIIEvQIBADANBgkqhkiG""#), "    [redacted:GCP_KEY]", "re-indented");
        assert_eq!(r.redact(r#"{"type": "service_account"}"#), r#"{"type": "service_account"}"#, "not this line");
        assert_eq!(r.redact("\"type\": \"service_account\","), "[redacted:GCP_KEY]");
        assert_eq!(r.redact("} {"), "} {", "lines shorter than the minimum once trimmed are left alone");
    }

    #[test]
    fn redacting_at_split_points_gives_what_the_whole_line_gives() {
        let r = Redactor::new([("SHORT", "abcdef"), ("LONG", "abcdefghij"), ("WIDE", "p\u{e4}ss-w\u{f6}rd")]);
        check_split_points(&r);
        // The same without the automaton, as when it cannot be built.
        let inner = r.inner.as_deref().unwrap();
        let plain = Inner {
            matcher: None,
            values: inner.values.clone(),
            replacements: inner.replacements.clone(),
            longest: inner.longest,
        };
        check_split_points(&Redactor { inner: Some(Arc::new(plain)) });

        assert_eq!(Redactor::default().split_point("anything"), "anything".len(), "nothing to hold back");
        assert_eq!(r.split_point("no value begins here"), "no value begins here".len() - 10);
    }

    #[test]
    fn short_values_are_not_redacted_and_debug_shows_no_value() {
        let r = Redactor::new([("PIN", "1234"), ("KEY", "long-enough")]);
        assert_eq!(r.redact("1234 long-enough"), "1234 [redacted:KEY]");
        let shown = format!("{r:?}");
        assert!(shown.contains("[redacted:KEY]") && !shown.contains("long-enough"), "{shown}");
        assert!(Redactor::new([("PIN", "1234")]).is_empty());
        assert_eq!(Redactor::default().redact("anything"), "anything");
    }
}
