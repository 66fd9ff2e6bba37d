//! Value-based redaction (SPEC §11.4): every occurrence of a known secret value in a text slip records or
//! relays (deploy events, error strings, container log lines) is replaced with `[redacted:KEY]`.
//!
//! One Aho-Corasick automaton (leftmost-longest, so a value that contains another is replaced whole) is
//! built over the values of an app's secrets in both scopes, the auth tokens and the registry passwords.
//! Values shorter than [`MIN_REDACTABLE_LEN`] bytes are left out: replacing every `abc` in a log would destroy
//! the log and still reveal the value by its absence, so `slip secrets set` warns about them instead.
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
}

impl Redactor {
    /// A redactor for `(label, value)` pairs, e.g. `("DATABASE_URL", "postgres://…")` or
    /// `("auth.secret", "…")`. Values shorter than [`MIN_REDACTABLE_LEN`] bytes are skipped; a value given
    /// twice keeps its first label. Each line of a value that spans lines is redacted on its own as well.
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
            let lines = value.contains('\n').then(|| value.split('\n').map(|l| l.trim_end_matches('\r')));
            for part in std::iter::once(value).chain(lines.into_iter().flatten()) {
                if part.len() < MIN_REDACTABLE_LEN || values.iter().any(|v| v == part) {
                    continue;
                }
                values.push(part.to_owned());
                replacements.push(format!("[redacted:{}]", label.as_ref()));
            }
        }
        if values.is_empty() {
            return Redactor::default();
        }
        // Building fails only past the automaton's size limits (megabytes of patterns); the plain
        // replacement loop below is then used instead, so a value is never left in the text.
        let matcher = AhoCorasick::builder().match_kind(MatchKind::LeftmostLongest).build(&values).ok();
        Redactor { inner: Some(Arc::new(Inner { matcher, values, replacements })) }
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

    /// True when there is nothing to redact.
    pub fn is_empty(&self) -> bool {
        self.inner.is_none()
    }
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
    fn short_values_are_not_redacted_and_debug_shows_no_value() {
        let r = Redactor::new([("PIN", "1234"), ("KEY", "long-enough")]);
        assert_eq!(r.redact("1234 long-enough"), "1234 [redacted:KEY]");
        let shown = format!("{r:?}");
        assert!(shown.contains("[redacted:KEY]") && !shown.contains("long-enough"), "{shown}");
        assert!(Redactor::new([("PIN", "1234")]).is_empty());
        assert_eq!(Redactor::default().redact("anything"), "anything");
    }
}
