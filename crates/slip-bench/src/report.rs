//! Counting what the load generator saw: per-request samples, their counts in 10 ms time slots, and
//! the split of a run into labelled segments at the marks a benchmark script wrote (one per deploy).
//!
//! Pure data: no IO, no clock (times are Unix milliseconds given by the caller). It does not decide
//! what a sample is; [`crate::client`] does.

use std::collections::BTreeMap;

use serde_json::{Value, json};

/// Width of one time slot of the [`Timeline`], in milliseconds.
pub const SLOT_MS: i64 = 10;

/// What one request ended as.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Sample {
    /// A 2xx answer with a known body on the first attempt.
    Success,
    /// An answer with a status other than 2xx (a failure for every client).
    NonSuccess,
    /// A 2xx answer whose body is none of the known ones, such as the empty 200 a proxy gives for a
    /// host it has no route for (a failure for every client).
    WrongBody,
    /// No answer for another reason: connect error, a fresh connection closed, a partial answer, a
    /// timeout (a failure for every client).
    Error,
    /// A reused keep-alive connection was closed before any byte of the answer arrived (RFC 9112
    /// §9.3.1). A strict client fails; a lenient one retried once on a new connection, and
    /// `recovered` says whether that retry got a 2xx.
    Race {
        /// The lenient client's retry got a 2xx answer with a known body.
        recovered: bool,
    },
}

/// Counts of samples.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Counts {
    /// Requests sent (first attempts only; retries are not counted again).
    pub requests: u64,
    /// 2xx with a known body on the first attempt.
    pub ok: u64,
    /// Non-2xx answers.
    pub non_2xx: u64,
    /// 2xx answers with an unknown body.
    pub wrong_body: u64,
    /// Other errors.
    pub errors: u64,
    /// Keep-alive races (see [`Sample::Race`]).
    pub races: u64,
    /// Races whose lenient retry succeeded.
    pub races_recovered: u64,
}

impl Counts {
    /// Counts one sample.
    pub fn add(&mut self, sample: Sample) {
        self.requests += 1;
        match sample {
            Sample::Success => self.ok += 1,
            Sample::NonSuccess => self.non_2xx += 1,
            Sample::WrongBody => self.wrong_body += 1,
            Sample::Error => self.errors += 1,
            Sample::Race { recovered } => {
                self.races += 1;
                self.races_recovered += u64::from(recovered);
            }
        }
    }

    /// Adds another set of counts to this one.
    pub fn merge(&mut self, other: &Counts) {
        self.requests += other.requests;
        self.ok += other.ok;
        self.non_2xx += other.non_2xx;
        self.wrong_body += other.wrong_body;
        self.errors += other.errors;
        self.races += other.races;
        self.races_recovered += other.races_recovered;
    }

    /// Failed requests as a client that never retries sees them: every race is a failure.
    pub fn strict_failures(&self) -> u64 {
        self.non_2xx + self.wrong_body + self.errors + self.races
    }

    /// Failed requests as a client that retries an idempotent request once after a race sees them.
    pub fn lenient_failures(&self) -> u64 {
        self.non_2xx + self.wrong_body + self.errors + (self.races - self.races_recovered)
    }

    /// The counts as a JSON object, with both failure views.
    pub fn to_json(&self) -> Value {
        json!({
            "requests": self.requests,
            "ok": self.ok,
            "non_2xx": self.non_2xx,
            "wrong_body": self.wrong_body,
            "errors": self.errors,
            "races": self.races,
            "races_recovered": self.races_recovered,
            "strict_failures": self.strict_failures(),
            "lenient_failures": self.lenient_failures(),
        })
    }
}

/// Counts per [`SLOT_MS`] time slot, keyed by the slot's start in Unix milliseconds.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Timeline {
    slots: BTreeMap<i64, Counts>,
}

impl Timeline {
    /// Counts a sample of a request sent at `at_ms`.
    pub fn record(&mut self, at_ms: i64, sample: Sample) {
        self.slots.entry(at_ms.div_euclid(SLOT_MS) * SLOT_MS).or_default().add(sample);
    }

    /// Adds another timeline (another client's) to this one.
    pub fn merge(&mut self, other: &Timeline) {
        for (slot, counts) in &other.slots {
            self.slots.entry(*slot).or_default().merge(counts);
        }
    }

    /// Everything counted.
    pub fn total(&self) -> Counts {
        let mut total = Counts::default();
        self.slots.values().for_each(|c| total.merge(c));
        total
    }

    /// Splits the run at `marks` (sorted by time): samples before the first mark form a segment
    /// labelled `before <first label>` (omitted when empty); each mark starts a segment that ends at
    /// the next mark. Without marks, the whole run is one segment labelled `run`. A sample belongs to
    /// the segment its request was *sent* in, at [`SLOT_MS`] resolution.
    pub fn segments(&self, marks: &[Mark]) -> Vec<Segment> {
        let Some(first) = marks.first() else {
            return vec![Segment { label: "run".into(), from_ms: None, to_ms: None, counts: self.total() }];
        };
        let mut out = Vec::with_capacity(marks.len() + 1);
        let before = self.between(None, Some(first.at_ms));
        if before.requests > 0 {
            out.push(Segment {
                label: format!("before {}", first.label),
                from_ms: None,
                to_ms: Some(first.at_ms),
                counts: before,
            });
        }
        for (i, mark) in marks.iter().enumerate() {
            let to_ms = marks.get(i + 1).map(|m| m.at_ms);
            out.push(Segment {
                label: mark.label.clone(),
                from_ms: Some(mark.at_ms),
                to_ms,
                counts: self.between(Some(mark.at_ms), to_ms),
            });
        }
        out
    }

    /// Counts of the slots in `[from, to)`; a slot belongs where its start falls.
    fn between(&self, from: Option<i64>, to: Option<i64>) -> Counts {
        let mut counts = Counts::default();
        self.slots
            .iter()
            .filter(|(slot, _)| from.is_none_or(|f| **slot >= f) && to.is_none_or(|t| **slot < t))
            .for_each(|(_, c)| counts.merge(c));
        counts
    }
}

/// A point in time a benchmark script marked, such as the moment it sent a deploy's webhook.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Mark {
    /// Unix milliseconds.
    pub at_ms: i64,
    /// What starts here.
    pub label: String,
}

/// A malformed marks file.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[error("marks line {line}: {text:?} is not \"<unix milliseconds> <label>\"")]
pub struct MarkError {
    /// 1-based line number.
    pub line: usize,
    /// The line as written.
    pub text: String,
}

/// Parses a marks file: one `<unix milliseconds> <label>` per line (as `echo "$(date +%s%3N) v2"`
/// writes), blank lines ignored. The result is sorted by time.
pub fn parse_marks(text: &str) -> Result<Vec<Mark>, MarkError> {
    let mut marks = Vec::new();
    for (i, line) in text.lines().enumerate() {
        let trimmed = line.trim();
        if trimmed.is_empty() {
            continue;
        }
        let bad = || MarkError { line: i + 1, text: line.to_owned() };
        let (at, label) = trimmed.split_once(char::is_whitespace).ok_or_else(bad)?;
        let at_ms = at.parse().map_err(|_| bad())?;
        let label = label.trim();
        if label.is_empty() {
            return Err(bad());
        }
        marks.push(Mark { at_ms, label: label.to_owned() });
    }
    marks.sort_by_key(|m| m.at_ms);
    Ok(marks)
}

/// A labelled part of a run.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Segment {
    /// The mark's label.
    pub label: String,
    /// Start (Unix ms), `None` for the part before the first mark.
    pub from_ms: Option<i64>,
    /// End (Unix ms), `None` for the last segment.
    pub to_ms: Option<i64>,
    /// What happened in it.
    pub counts: Counts,
}

impl Segment {
    /// The segment as a JSON object: label, bounds and counts.
    pub fn to_json(&self) -> Value {
        let mut value = self.counts.to_json();
        value["label"] = json!(self.label);
        value["from_ms"] = json!(self.from_ms);
        value["to_ms"] = json!(self.to_ms);
        value
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn strict_and_lenient_views_differ_only_in_recovered_races() {
        let mut c = Counts::default();
        for s in [
            Sample::Success,
            Sample::Success,
            Sample::NonSuccess,
            Sample::WrongBody,
            Sample::Error,
            Sample::Race { recovered: true },
            Sample::Race { recovered: true },
            Sample::Race { recovered: false },
        ] {
            c.add(s);
        }
        assert_eq!(
            c,
            Counts { requests: 8, ok: 2, non_2xx: 1, wrong_body: 1, errors: 1, races: 3, races_recovered: 2 },
            "every sample counted once"
        );
        assert_eq!(c.strict_failures(), 6);
        assert_eq!(c.lenient_failures(), 4);
        assert_eq!(c.to_json()["lenient_failures"], 4);
        assert_eq!(c.to_json()["wrong_body"], 1);
    }

    #[test]
    fn marks_parse_sorted_and_reject_lines_without_a_time_or_label() {
        let marks = parse_marks("1700000002000 deploy v3\n\n1700000001000  deploy v2 \n").unwrap();
        assert_eq!(
            marks,
            vec![
                Mark { at_ms: 1_700_000_001_000, label: "deploy v2".into() },
                Mark { at_ms: 1_700_000_002_000, label: "deploy v3".into() },
            ]
        );
        assert_eq!(parse_marks("v2 1700000001000").unwrap_err().line, 1);
        assert_eq!(parse_marks("1\n1700000001000").unwrap_err(), MarkError { line: 1, text: "1".into() });
        assert!(parse_marks("").unwrap().is_empty());
    }

    #[test]
    fn segments_split_at_marks_and_count_each_sample_once() {
        let mut a = Timeline::default();
        let mut b = Timeline::default();
        a.record(995, Sample::Success); // slot 990: before the first mark
        a.record(1_000, Sample::Success); // slot 1000: first segment
        b.record(1_999, Sample::Race { recovered: true }); // slot 1990: first segment
        b.record(2_000, Sample::NonSuccess); // slot 2000: second segment
        a.record(9_000, Sample::Error); // last segment has no end
        a.merge(&b);
        let marks = [Mark { at_ms: 1_000, label: "v2".into() }, Mark { at_ms: 2_000, label: "v3".into() }];
        let segments = a.segments(&marks);
        let summary: Vec<(String, u64, u64, u64)> = segments
            .iter()
            .map(|s| (s.label.clone(), s.counts.requests, s.counts.races, s.counts.lenient_failures()))
            .collect();
        assert_eq!(summary, vec![("before v2".into(), 1, 0, 0), ("v2".into(), 2, 1, 0), ("v3".into(), 2, 0, 2)]);
        assert_eq!(segments[2].to_ms, None);
        assert_eq!(a.total().requests, 5);
        assert_eq!(a.segments(&[])[0].counts, a.total());
    }
}
