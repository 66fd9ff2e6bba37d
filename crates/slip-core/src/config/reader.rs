//! Stage one of config parsing: the raw walk over one file's TOML.
//!
//! A [`Reader`] owns one file's problems. It hands out tables ([`Tbl`]) after checking their keys against
//! the keys valid there (unknown keys get a "did you mean" from edit distance ≤ 2), and typed values
//! ([`Val`]) after interpolation, each with the byte offset it came from. It knows TOML types and `${VAR}`;
//! it knows nothing about what a valid hostname or port range is: that is stage two (`server`, `app`).
//!
//! Messages never contain an interpolated value: they quote what was written in the file.
//!
//! The same walk reads the repo config (`crate::repo_config`), through [`Reader::verbatim`]: no
//! interpolation (image content must not read host variables), and unknown keys as problems or warnings as
//! the caller chooses.

use std::collections::BTreeMap;
use std::path::Path;
use std::time::Duration;

use toml_edit::{Item, TableLike, Value};

use super::interpolate;
use super::problem::{Problem, position};
use super::secret::Secret;
use super::{ProviderValue, SourceFile};
use crate::{duration, size};

/// One file being read, and the problems found in it so far.
pub(crate) struct Reader<'a> {
    file: &'a SourceFile,
    /// Variables for `${VAR}`; `None` reads strings verbatim.
    env: Option<&'a BTreeMap<String, String>>,
    /// Where unknown keys go.
    unknown: UnknownKeys,
    /// Problems found in this file.
    pub(crate) problems: Vec<Problem>,
    /// Warnings about this file.
    pub(crate) warnings: Vec<Problem>,
    /// Where each value read so far was written, by dotted key, for rules that span files.
    seen: BTreeMap<String, Option<usize>>,
}

/// How a reader reports keys that are not valid where they are written.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum UnknownKeys {
    /// As problems: the file is invalid (server config, `slip validate`).
    Problem,
    /// As warnings: the file still loads (repo config at deploy time, so an image built for a newer slip
    /// still deploys).
    Warning,
}

/// A 1-based (line, column) in a file; `(None, None)` for the whole file.
pub(crate) type At = (Option<usize>, Option<usize>);

/// A table of the document and how messages name it.
#[derive(Clone)]
pub(crate) struct Tbl<'d> {
    like: &'d dyn TableLike,
    /// `[deploy]`, `[[routing.routes]]`; empty for the root.
    label: String,
    /// Dotted path of the table's keys: `deploy`, `routing.routes[1]`; empty for the root.
    prefix: String,
    /// Where the table starts (its header), when it has one.
    pub(crate) at: Option<usize>,
}

/// A value read from the file, where it was, and how it was written.
#[derive(Debug, Clone)]
pub(crate) struct Val<T> {
    /// The value, interpolated and typed.
    pub(crate) v: T,
    /// Byte offset of the value.
    pub(crate) at: Option<usize>,
    /// The dotted key (`deploy.drain_timeout`, `routing.routes[0].hostname`).
    pub(crate) key: String,
    /// The text as written in the file (placeholders unresolved), for messages.
    pub(crate) written: String,
    /// True when `written` contained a `${…}` reference.
    pub(crate) interpolated: bool,
    /// True when the value was written as a TOML string (messages then quote it).
    pub(crate) quoted: bool,
}

impl<T> Val<T> {
    /// The same position and text with another value.
    pub(crate) fn map<U>(self, f: impl FnOnce(T) -> U) -> Val<U> {
        Val {
            v: f(self.v),
            at: self.at,
            key: self.key,
            written: self.written,
            interpolated: self.interpolated,
            quoted: self.quoted,
        }
    }

    /// How messages quote the value: as written, and marked when it came from a variable.
    pub(crate) fn shown(&self) -> String {
        match (self.interpolated, self.quoted) {
            (true, _) => format!("{:?} (after interpolation)", self.written),
            (false, true) => format!("{:?}", self.written),
            (false, false) => self.written.clone(),
        }
    }
}

/// Which keys are valid in a table, and optional hints for particular unknown keys.
pub(crate) struct Keys<'k> {
    /// The valid keys.
    pub(crate) valid: &'k [&'k str],
    /// A hint for an unknown key (`[[apps]]` in slip.toml, say), or `None` for the usual "did you mean".
    pub(crate) hint: &'k dyn Fn(&str) -> Option<String>,
}

impl<'k> Keys<'k> {
    /// Just the valid keys.
    pub(crate) fn of(valid: &'k [&'k str]) -> Keys<'k> {
        Keys { valid, hint: &|_| None }
    }
}

impl<'a> Reader<'a> {
    /// Starts reading `file`, interpolating from `env`.
    pub(crate) fn new(file: &'a SourceFile, env: &'a BTreeMap<String, String>) -> Reader<'a> {
        Reader {
            file,
            env: Some(env),
            unknown: UnknownKeys::Problem,
            problems: Vec::new(),
            warnings: Vec::new(),
            seen: BTreeMap::new(),
        }
    }

    /// Starts reading `file` with strings taken as written (no `${VAR}`), reporting unknown keys as `unknown`
    /// says.
    pub(crate) fn verbatim(file: &'a SourceFile, unknown: UnknownKeys) -> Reader<'a> {
        Reader { file, env: None, unknown, problems: Vec::new(), warnings: Vec::new(), seen: BTreeMap::new() }
    }

    /// Line and column of a byte offset in this file.
    pub(crate) fn locate(&self, at: Option<usize>) -> At {
        match at {
            Some(offset) => {
                let (l, c) = position(&self.file.text, offset);
                (Some(l), Some(c))
            }
            None => (None, None),
        }
    }

    /// Where every value read so far was written, as line and column.
    pub(crate) fn locations(&self) -> BTreeMap<String, At> {
        self.seen.iter().map(|(k, at)| (k.clone(), self.locate(*at))).collect()
    }

    /// Records where `key` (a dotted path the walk does not look up itself, such as a free-form table's
    /// entry) was written, for [`Reader::locations`].
    pub(crate) fn note(&mut self, key: String, at: Option<usize>) {
        self.seen.entry(key).or_insert(at);
    }

    /// True when `t` has `key`, whatever its type.
    pub(crate) fn has(&self, t: &Tbl<'_>, key: &str) -> bool {
        t.like.contains_key(key)
    }

    /// True when `key` in `t` is a string value.
    pub(crate) fn is_string(&self, t: &Tbl<'_>, key: &str) -> bool {
        matches!(t.like.get(key).and_then(Item::as_value), Some(Value::String(_)))
    }

    /// Byte offset of the value of `key` in `t`.
    pub(crate) fn value_at(&self, t: &Tbl<'_>, key: &str) -> Option<usize> {
        t.like.get(key).and_then(span_start)
    }

    /// Records a warning at a byte offset (`None`: the whole file).
    pub(crate) fn warn(&mut self, at: Option<usize>, message: String, hint: Option<String>) {
        let (line, column) = self.locate(at);
        self.warnings.push(Problem { file: self.file.path.clone(), line, column, message, hint });
    }

    /// The file as shown in messages.
    pub(crate) fn path(&self) -> &Path {
        &self.file.path
    }

    /// Parses the document; a syntax error becomes a problem and `None`.
    pub(crate) fn parse(&mut self) -> Option<toml_edit::Document<&'a str>> {
        // toml_edit 0.23.10 panics ("all items have spans", parser/document.rs) on some invalid documents that
        // redefine a key, such as "==\r[.o"; found by fuzzing (fuzz/ app_config, repo_config, server_config). The
        // text may come from an image, so a panic is caught and reported as invalid TOML.
        let text = self.file.text.as_str();
        let parsed = std::panic::catch_unwind(|| toml_edit::Document::parse(text));
        let Ok(parsed) = parsed else {
            self.problem(None, "invalid TOML: the parser could not read this file (a key defined twice?)".into(), None);
            return None;
        };
        match parsed {
            Ok(doc) => Some(doc),
            Err(e) => {
                let at = e.span().map(|s| s.start);
                let message = format!("invalid TOML: {}", e.message().trim().replace('\n', "; "));
                self.problem(at, message, None);
                None
            }
        }
    }

    /// The root table of a parsed document, with its keys checked.
    pub(crate) fn root<'d>(&mut self, doc: &'d toml_edit::Document<&'a str>, keys: Keys<'_>) -> Tbl<'d> {
        let root = Tbl { like: doc.as_table(), label: String::new(), prefix: String::new(), at: None };
        self.check_keys(&root, keys);
        root
    }

    /// Records a problem at a byte offset (`None`: the whole file).
    pub(crate) fn problem(&mut self, at: Option<usize>, message: String, hint: Option<String>) {
        let (line, column) = self.locate(at);
        self.problems.push(Problem { file: self.file.path.clone(), line, column, message, hint });
    }

    /// Records a problem about a value: `<key>: <shown value> <what is wrong>`.
    pub(crate) fn invalid<T>(&mut self, val: &Val<T>, what: impl AsRef<str>, hint: Option<String>) {
        let message = format!("{}: {} {}", val.key, val.shown(), what.as_ref());
        self.problem(val.at, message, hint);
    }

    /// The dotted name of `key` in `t`.
    pub(crate) fn key_path(t: &Tbl<'_>, key: &str) -> String {
        if t.prefix.is_empty() { key.to_owned() } else { format!("{}.{key}", t.prefix) }
    }

    /// The table `key` of `t`, with its keys checked; `None` when absent or not a table.
    pub(crate) fn table<'d>(&mut self, t: &Tbl<'d>, key: &str, keys: Keys<'_>) -> Option<Tbl<'d>> {
        let sub = self.any_table(t, key)?;
        self.check_keys(&sub, keys);
        Some(sub)
    }

    /// The table `key` of `t` with free-form keys (`[env]`, `[containers]`).
    pub(crate) fn any_table<'d>(&mut self, t: &Tbl<'d>, key: &str) -> Option<Tbl<'d>> {
        let (path, item) = self.lookup(t, key)?;
        match as_table(item) {
            Some((like, at)) => Some(Tbl { like, label: format!("[{path}]"), prefix: path, at }),
            None => {
                self.wrong_type(&path, item, "a table");
                None
            }
        }
    }

    /// The elements of the array of tables `key` (`[[volumes]]` or `volumes = [{…}]`), keys checked.
    pub(crate) fn tables<'d>(&mut self, t: &Tbl<'d>, key: &str, keys: Keys<'_>) -> Vec<Tbl<'d>> {
        let Some(item) = t.like.get(key) else { return Vec::new() };
        let path = Self::key_path(t, key);
        let elements: Vec<(&'d dyn TableLike, Option<usize>)> = match item {
            Item::ArrayOfTables(a) => a.iter().map(|t| (t as &dyn TableLike, t.span().map(|s| s.start))).collect(),
            Item::Value(Value::Array(a)) => {
                let mut out = Vec::new();
                for v in a.iter() {
                    match v {
                        Value::InlineTable(t) => out.push((t as &dyn TableLike, t.span().map(|s| s.start))),
                        other => {
                            let at = other.span().map(|s| s.start);
                            self.problem(
                                at,
                                format!("{path}: expected a table, found {}", value_type(other)),
                                Some(format!("write each entry as [[{path}]] with its keys below it")),
                            );
                        }
                    }
                }
                out
            }
            other => {
                self.wrong_type(&path, other, "an array of tables");
                return Vec::new();
            }
        };
        let result: Vec<Tbl<'d>> = elements
            .into_iter()
            .enumerate()
            .map(|(i, (like, at))| Tbl { like, label: format!("[[{path}]]"), prefix: format!("{path}[{i}]"), at })
            .collect();
        for sub in &result {
            self.check_keys(sub, Keys { valid: keys.valid, hint: keys.hint });
        }
        result
    }

    /// The keys of a free-form table with their positions, in file order.
    pub(crate) fn entries<'d>(&self, t: &Tbl<'d>) -> Vec<(String, Option<usize>, &'d Item)> {
        t.like
            .iter()
            .map(|(k, item)| {
                let at = t.like.get_key_value(k).and_then(|(key, _)| key.span()).map(|s| s.start);
                (k.to_owned(), at, item)
            })
            .collect()
    }

    /// The sub-table of a free-form table's entry (`[health.containers.web]`), keys checked.
    pub(crate) fn entry_table<'d>(
        &mut self,
        t: &Tbl<'d>,
        key: &str,
        item: &'d Item,
        keys: Keys<'_>,
    ) -> Option<Tbl<'d>> {
        let path = Self::key_path(t, key);
        match as_table(item) {
            Some((like, at)) => {
                let sub = Tbl { like, label: format!("[{path}]"), prefix: path, at };
                self.check_keys(&sub, keys);
                Some(sub)
            }
            None => {
                self.wrong_type(&path, item, "a table");
                None
            }
        }
    }

    /// A string value, interpolated.
    pub(crate) fn string(&mut self, t: &Tbl<'_>, key: &str) -> Option<Val<String>> {
        let (path, item) = self.lookup(t, key)?;
        self.string_item(&path, item)
    }

    /// A string value from an item already looked up (array elements, free-form entries).
    pub(crate) fn string_item(&mut self, path: &str, item: &Item) -> Option<Val<String>> {
        match item.as_value() {
            Some(Value::String(s)) => self.expand(path, s.value(), span_start(item)),
            _ => {
                self.wrong_type(path, item, "a string");
                None
            }
        }
    }

    /// A secret string; an empty value (`"${X:-}"`) counts as unset.
    pub(crate) fn secret(&mut self, t: &Tbl<'_>, key: &str) -> Option<Secret> {
        self.string(t, key).filter(|v| !v.v.is_empty()).map(|v| Secret::new(v.v))
    }

    /// A boolean, or a string that is exactly one `${…}` resolving to `true` or `false`.
    pub(crate) fn boolean(&mut self, t: &Tbl<'_>, key: &str) -> Option<bool> {
        let (path, item) = self.lookup(t, key)?;
        match item.as_value() {
            Some(Value::Boolean(b)) => Some(*b.value()),
            Some(Value::String(s)) if self.env.is_some() && interpolate::is_single_reference(s.value()) => {
                let val = self.expand(&path, s.value(), span_start(item))?;
                match val.v.as_str() {
                    "true" => Some(true),
                    "false" => Some(false),
                    _ => {
                        self.invalid(&val, "is not a boolean: it must resolve to true or false", None);
                        None
                    }
                }
            }
            _ => {
                self.wrong_type(&path, item, "a boolean (true or false)");
                None
            }
        }
    }

    /// An integer, or a string that is exactly one `${…}` resolving to one.
    pub(crate) fn integer(&mut self, t: &Tbl<'_>, key: &str) -> Option<Val<i64>> {
        let (path, item) = self.lookup(t, key)?;
        self.integer_item(&path, item)
    }

    fn integer_item(&mut self, path: &str, item: &Item) -> Option<Val<i64>> {
        match item.as_value() {
            Some(Value::Integer(i)) => Some(Val {
                v: *i.value(),
                at: span_start(item),
                key: path.to_owned(),
                written: i.value().to_string(),
                interpolated: false,
                quoted: false,
            }),
            Some(Value::String(s)) if self.env.is_some() && interpolate::is_single_reference(s.value()) => {
                let val = self.expand(path, s.value(), span_start(item))?;
                match val.v.trim().parse::<i64>() {
                    Ok(n) => Some(val.map(|_| n)),
                    Err(_) => {
                        self.invalid(&val, "is not an integer", None);
                        None
                    }
                }
            }
            _ => {
                self.wrong_type(path, item, "an integer");
                None
            }
        }
    }

    /// An integer within `min..=max`, converted to `T`.
    pub(crate) fn int_in<T: TryFrom<i64>>(&mut self, t: &Tbl<'_>, key: &str, min: i64, max: i64) -> Option<Val<T>> {
        let val = self.integer(t, key)?;
        if val.v < min || val.v > max {
            let range = if max == i64::MAX { format!("at least {min}") } else { format!("from {min} to {max}") };
            self.invalid(&val, format!("is out of range: use an integer {range}"), None);
            return None;
        }
        let n = T::try_from(val.v).ok()?;
        Some(val.map(|_| n))
    }

    /// A duration string (`"30s"`).
    pub(crate) fn duration(&mut self, t: &Tbl<'_>, key: &str) -> Option<Val<Duration>> {
        let (path, item) = self.lookup(t, key)?;
        if let Some(Value::Integer(i)) = item.as_value() {
            self.problem(
                span_start(item),
                format!("{path}: a duration needs a unit and quotes, found the integer {}", i.value()),
                Some(format!("write {key} = \"{}s\" (units: ms, s, m, h, d)", i.value())),
            );
            return None;
        }
        let val = self.string_item(&path, item)?;
        match duration::parse(&val.v) {
            Ok(d) => Some(val.map(|_| d)),
            Err(e) => {
                self.invalid(&val, format!("is not a duration: {}", e.reason()), None);
                None
            }
        }
    }

    /// A duration that must be greater than zero.
    pub(crate) fn positive_duration(&mut self, t: &Tbl<'_>, key: &str) -> Option<Val<Duration>> {
        let val = self.duration(t, key)?;
        if val.v.is_zero() {
            self.invalid(&val, "must be greater than 0s", None);
            return None;
        }
        Some(val)
    }

    /// A size string (`"512m"`) or an integer number of bytes.
    pub(crate) fn size(&mut self, t: &Tbl<'_>, key: &str) -> Option<Val<u64>> {
        let (path, item) = self.lookup(t, key)?;
        if let Some(Value::Integer(i)) = item.as_value() {
            let val = self.integer_item(&path, item)?;
            return match u64::try_from(*i.value()) {
                Ok(n) => Some(val.map(|_| n)),
                Err(_) => {
                    self.invalid(&val, "is not a size: it cannot be negative", None);
                    None
                }
            };
        }
        let val = self.string_item(&path, item)?;
        match size::parse(&val.v) {
            Ok(n) => Some(val.map(|_| n)),
            Err(e) => {
                self.invalid(&val, format!("is not a size: {}", e.reason()), None);
                None
            }
        }
    }

    /// A decimal number (`1`, `1.5`, `"1.0"`) in billionths (`1.5` → 1 500 000 000), greater than zero.
    pub(crate) fn nanos(&mut self, t: &Tbl<'_>, key: &str) -> Option<Val<u64>> {
        let (path, item) = self.lookup(t, key)?;
        let val = match item.as_value() {
            Some(Value::Integer(i)) => Val {
                v: i.value().to_string(),
                at: span_start(item),
                key: path,
                written: i.value().to_string(),
                interpolated: false,
                quoted: false,
            },
            Some(Value::Float(f)) => Val {
                v: f.value().to_string(),
                at: span_start(item),
                key: path,
                written: f.value().to_string(),
                interpolated: false,
                quoted: false,
            },
            Some(Value::String(_)) => self.string_item(&path, item)?,
            _ => {
                self.wrong_type(&path, item, "a decimal number such as 1.5 or \"1.0\"");
                return None;
            }
        };
        let parsed = duration::split_number(val.v.trim())
            .filter(|(_, _, rest)| rest.is_empty())
            .and_then(|(int, frac, _)| duration::scaled(int, frac, 1_000_000_000).ok());
        match parsed {
            Some(n) if n > 0 => Some(val.map(|_| n)),
            _ => {
                self.invalid(&val, "is not a decimal number greater than 0 (at most 9 decimals), e.g. \"1.5\"", None);
                None
            }
        }
    }

    /// One of a fixed set of strings; an unknown one gets a "did you mean".
    pub(crate) fn choice<T: Copy>(&mut self, t: &Tbl<'_>, key: &str, options: &[(&str, T)]) -> Option<Val<T>> {
        let val = self.string(t, key)?;
        self.choose(val, options)
    }

    /// [`Reader::choice`] for a string already read.
    pub(crate) fn choose<T: Copy>(&mut self, val: Val<String>, options: &[(&str, T)]) -> Option<Val<T>> {
        if let Some((_, v)) = options.iter().find(|(name, _)| *name == val.v) {
            let v = *v;
            return Some(val.map(|_| v));
        }
        let names: Vec<&str> = options.iter().map(|(n, _)| *n).collect();
        let listed = names.iter().map(|n| format!("{n:?}")).collect::<Vec<_>>().join(", ");
        let suggestion = if val.interpolated { None } else { suggest(&val.v, &names) };
        let did_you_mean = suggestion.map(|s| format!(" (did you mean {s:?}?)")).unwrap_or_default();
        self.invalid(&val, format!("is not one of {listed}{did_you_mean}"), None);
        None
    }

    /// An array of strings, each interpolated. Elements that are not strings are reported and skipped.
    pub(crate) fn strings(&mut self, t: &Tbl<'_>, key: &str) -> Option<Vec<Val<String>>> {
        let (path, item) = self.lookup(t, key)?;
        let Some(Value::Array(array)) = item.as_value() else {
            self.wrong_type(&path, item, "an array of strings");
            return None;
        };
        // Elements with problems are reported and left out; the rest are still checked by the caller.
        let mut out = Vec::new();
        for (i, v) in array.iter().enumerate() {
            let element = format!("{path}[{i}]");
            match v {
                Value::String(s) => out.extend(self.expand(&element, s.value(), v.span().map(|s| s.start))),
                other => {
                    self.problem(
                        other.span().map(|s| s.start),
                        format!("{element}: expected a string, found {}", value_type(other)),
                        None,
                    );
                }
            }
        }
        Some(out)
    }

    /// A free-form table of strings (`[env]`), values interpolated; keys come with their positions.
    pub(crate) fn string_map(&mut self, t: &Tbl<'_>, key: &str) -> Option<Vec<(Val<String>, Val<String>)>> {
        let table = self.any_table(t, key)?;
        let mut out = Vec::new();
        for (k, at, item) in self.entries(&table) {
            let path = Self::key_path(&table, &k);
            let key_val =
                Val { v: k.clone(), at, key: path.clone(), written: k.clone(), interpolated: false, quoted: true };
            if let Some(value) = self.string_item(&path, item) {
                out.push((key_val, value));
            }
        }
        Some(out)
    }

    /// Any value, kept as data (`caddy.tls.dns_provider_config`); strings are interpolated and held as secrets.
    pub(crate) fn opaque(&mut self, path: &str, item: &Item) -> Option<ProviderValue> {
        match item {
            Item::None => None,
            Item::Value(v) => self.opaque_value(path, v),
            Item::Table(t) => self.opaque_table(path, t),
            Item::ArrayOfTables(a) => {
                let mut out = Vec::new();
                for (i, t) in a.iter().enumerate() {
                    out.push(self.opaque_table(&format!("{path}[{i}]"), t)?);
                }
                Some(ProviderValue::Array(out))
            }
        }
    }

    fn opaque_table(&mut self, path: &str, t: &dyn TableLike) -> Option<ProviderValue> {
        let mut map = BTreeMap::new();
        for (k, item) in t.iter() {
            map.insert(k.to_owned(), self.opaque(&format!("{path}.{k}"), item)?);
        }
        Some(ProviderValue::Table(map))
    }

    fn opaque_value(&mut self, path: &str, v: &Value) -> Option<ProviderValue> {
        Some(match v {
            Value::String(s) => {
                ProviderValue::String(Secret::new(self.expand(path, s.value(), v.span().map(|s| s.start))?.v))
            }
            Value::Integer(i) => ProviderValue::Integer(*i.value()),
            Value::Float(f) => ProviderValue::Float(*f.value()),
            Value::Boolean(b) => ProviderValue::Bool(*b.value()),
            Value::Datetime(_) => {
                self.problem(v.span().map(|s| s.start), format!("{path}: a date-time cannot be passed to Caddy"), None);
                return None;
            }
            Value::Array(a) => {
                let mut out = Vec::new();
                for (i, e) in a.iter().enumerate() {
                    out.push(self.opaque_value(&format!("{path}[{i}]"), e)?);
                }
                ProviderValue::Array(out)
            }
            Value::InlineTable(t) => return self.opaque_table(path, t),
        })
    }

    /// Reports `key` missing from `t` (at the table's header, or the whole file for the root).
    pub(crate) fn missing(&mut self, t: &Tbl<'_>, key: &str, hint: Option<String>) {
        let message = if t.label.is_empty() {
            format!("missing {key}")
        } else {
            format!("missing {} in {}", Self::key_path(t, key), t.label)
        };
        self.problem(t.at, message, hint);
    }

    /// The item at `key` in `t` and its dotted path, noting where it was written.
    fn lookup<'d>(&mut self, t: &Tbl<'d>, key: &str) -> Option<(String, &'d Item)> {
        let item = t.like.get(key)?;
        let path = Self::key_path(t, key);
        self.seen.insert(path.clone(), span_start(item));
        Some((path, item))
    }

    /// Interpolates `text` (the string as written at `at`), reporting failures.
    fn expand(&mut self, path: &str, text: &str, at: Option<usize>) -> Option<Val<String>> {
        self.seen.entry(path.to_owned()).or_insert(at);
        let Some(env) = self.env else {
            return Some(Val {
                v: text.to_owned(),
                at,
                key: path.to_owned(),
                written: text.to_owned(),
                interpolated: false,
                quoted: true,
            });
        };
        match interpolate::expand(text, env) {
            Ok(v) => Some(Val {
                v,
                at,
                key: path.to_owned(),
                written: text.to_owned(),
                interpolated: interpolate::has_reference(text),
                quoted: true,
            }),
            Err(e) => {
                let hint = e.hint();
                self.problem(at, format!("{path}: {e}"), Some(hint));
                None
            }
        }
    }

    fn wrong_type(&mut self, path: &str, item: &Item, expected: &str) {
        let found = item_type(item);
        let hint = match item.as_value() {
            Some(Value::String(s)) if expected.starts_with("an integer") && s.value().trim().parse::<i64>().is_ok() => {
                Some(format!("remove the quotes: {} = {}", leaf(path), s.value().trim()))
            }
            Some(Value::String(s))
                if expected.starts_with("a boolean") && matches!(s.value().as_str(), "true" | "false") =>
            {
                Some(format!("remove the quotes: {} = {}", leaf(path), s.value()))
            }
            Some(Value::String(s)) if self.env.is_some() && s.value().contains("${") => Some(
                "where a number or boolean is expected, a string is interpolated only when it is exactly one ${VAR}"
                    .into(),
            ),
            Some(Value::Integer(_) | Value::Float(_) | Value::Boolean(_)) if expected == "a string" => {
                Some(format!("put the value in quotes: {} = \"…\"", leaf(path)))
            }
            _ => None,
        };
        self.problem(span_start(item), format!("{path}: expected {expected}, found {found}"), hint);
    }

    fn check_keys(&mut self, t: &Tbl<'_>, keys: Keys<'_>) {
        for (k, item) in t.like.iter() {
            if keys.valid.contains(&k) {
                continue;
            }
            let key_at = t.like.get_key_value(k).and_then(|(key, _)| key.span()).map(|s| s.start);
            let header_at = match item {
                Item::Table(tb) if !tb.is_implicit() && !tb.is_dotted() => tb.span().map(|s| s.start),
                Item::ArrayOfTables(a) => a.iter().next().and_then(|tb| tb.span()).map(|s| s.start),
                _ => None,
            };
            let suggestion = suggest(k, keys.valid);
            let message = if t.label.is_empty() {
                let quoted = |s: &str| match item {
                    Item::ArrayOfTables(_) => format!("[[{s}]]"),
                    _ => format!("[{s}]"),
                };
                match item {
                    Item::Table(_) | Item::ArrayOfTables(_) => {
                        let mean = suggestion.map(|s| format!(" (did you mean [{s}]?)")).unwrap_or_default();
                        format!("unknown table {}{mean}", quoted(k))
                    }
                    _ => {
                        let mean = suggestion.map(|s| format!(" (did you mean [{s}]?)")).unwrap_or_default();
                        format!("unknown key {k:?} at the top level{mean}")
                    }
                }
            } else {
                let mean = suggestion.map(|s| format!(" (did you mean {s:?}?)")).unwrap_or_default();
                format!("unknown key {k:?} in {}{mean}", t.label)
            };
            let hint = (keys.hint)(k);
            match self.unknown {
                UnknownKeys::Problem => self.problem(header_at.or(key_at), message, hint),
                UnknownKeys::Warning => self.warn(header_at.or(key_at), message, hint),
            }
        }
    }
}

/// The closest valid key within edit distance 2, if any.
pub(crate) fn suggest<'k>(key: &str, valid: &[&'k str]) -> Option<&'k str> {
    valid
        .iter()
        .map(|v| (strsim::osa_distance(key, v), *v))
        .filter(|(d, _)| *d <= 2)
        .min_by_key(|(d, _)| *d)
        .map(|(_, v)| v)
}

fn as_table(item: &Item) -> Option<(&dyn TableLike, Option<usize>)> {
    match item {
        Item::Table(t) => Some((t as &dyn TableLike, t.span().map(|s| s.start))),
        Item::Value(Value::InlineTable(t)) => Some((t as &dyn TableLike, t.span().map(|s| s.start))),
        _ => None,
    }
}

fn span_start(item: &Item) -> Option<usize> {
    item.span().map(|s| s.start)
}

fn leaf(path: &str) -> &str {
    path.rsplit('.').next().unwrap_or(path)
}

fn item_type(item: &Item) -> &'static str {
    match item {
        Item::None => "nothing",
        Item::Value(v) => value_type(v),
        Item::Table(_) => "a table",
        Item::ArrayOfTables(_) => "an array of tables",
    }
}

fn value_type(v: &Value) -> &'static str {
    match v {
        Value::String(_) => "a string",
        Value::Integer(_) => "an integer",
        Value::Float(_) => "a float",
        Value::Boolean(_) => "a boolean",
        Value::Datetime(_) => "a date-time",
        Value::Array(_) => "an array",
        Value::InlineTable(_) => "an inline table",
    }
}
