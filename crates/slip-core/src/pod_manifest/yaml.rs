//! Loading YAML safely, and a positioned walk over one document (saphyr's `MarkedYaml`): typed access by
//! key, the position of every node, and the problems and warnings found so far.
//!
//! [`load`] first checks that nothing nests deeper than [`MAX_DEPTH`], because saphyr's loader recurses once
//! per level and the manifest may come from an untrusted image, and that aliases do not expand it past
//! [`MAX_NODES`] nodes. It knows YAML types and nothing about Pods.
//! A `null` value (`ports:` with nothing after it) counts as absent, as it does for Kubernetes.

use std::collections::BTreeMap;
use std::path::PathBuf;

use saphyr::{AnnotatedMapping, LoadableYamlNode, MarkedYaml, Scalar, YamlData};
use saphyr_parser::{Event, Marker, Parser, ScanError};

use super::MAX_DEPTH;
use crate::config::Problem;
use crate::config::reader::{At, suggest};

/// One YAML node with its position.
pub(crate) type Node<'i> = MarkedYaml<'i>;

/// The findings of one walk over one file.
pub(crate) struct Walker {
    file: PathBuf,
    /// Problems found so far.
    pub(crate) problems: Vec<Problem>,
    /// Warnings found so far.
    pub(crate) warnings: Vec<Problem>,
}

/// A mapping node and the dotted path messages name it by.
#[derive(Clone, Copy)]
pub(crate) struct Map<'n, 'i> {
    entries: &'n AnnotatedMapping<'i, Node<'i>>,
    node: &'n Node<'i>,
}

/// Loads the YAML documents in `text`; `None`, with a problem in `w`, when it is not valid YAML or nests
/// deeper than [`MAX_DEPTH`].
pub(crate) fn load<'i>(w: &mut Walker, text: &'i str) -> Option<Vec<Node<'i>>> {
    let unloadable = match check_depth(text) {
        Ok(()) => match MarkedYaml::load_from_str(text) {
            Ok(docs) => return Some(docs),
            Err(e) => Unloadable::Invalid(e),
        },
        Err(why) => why,
    };
    match unloadable {
        Unloadable::Invalid(e) => {
            w.problem(marked(e.marker()), format!("invalid YAML: {}", e.info()), None);
        }
        Unloadable::TooMany { at } => {
            w.problem(
                marked(&at),
                format!(
                    "this alias makes the document more than {MAX_NODES} nodes once expanded; slip reads at most \
                     {MAX_NODES} (aliases to aliases multiply)"
                ),
                None,
            );
        }
        Unloadable::TooDeep { at, alias } => {
            let what = if alias { "this alias expands to collections" } else { "collections" };
            w.problem(
                marked(&at),
                format!("{what} nested more than {MAX_DEPTH} levels deep; slip reads at most {MAX_DEPTH} levels"),
                None,
            );
        }
    }
    None
}

impl<'n, 'i> Map<'n, 'i> {
    /// The value of `key`, unless absent or `null`.
    pub(crate) fn get(&self, key: &str) -> Option<&'n Node<'i>> {
        self.entries.iter().find(|(k, _)| key_str(k) == Some(key)).map(|(_, v)| v).filter(|v| !is_null(v))
    }

    /// Where the mapping starts.
    pub(crate) fn at(&self) -> At {
        at(self.node)
    }

    /// Keys with their positions, in file order (keys that are not strings are shown as written).
    pub(crate) fn keys(&self) -> impl Iterator<Item = (String, At)> + 'n {
        self.entries.iter().map(|(k, _)| (key_str(k).map_or_else(|| shown(k), str::to_owned), at(k)))
    }
}

impl Walker {
    /// Starts a walk over the file shown as `file`.
    pub(crate) fn new(file: PathBuf) -> Walker {
        Walker { file, problems: Vec::new(), warnings: Vec::new() }
    }

    /// Records a problem.
    pub(crate) fn problem(&mut self, at: At, message: String, hint: Option<String>) {
        self.problems.push(Problem { file: self.file.clone(), line: at.0, column: at.1, message, hint });
    }

    /// Records a warning.
    pub(crate) fn warn(&mut self, at: At, message: String, hint: Option<String>) {
        self.warnings.push(Problem { file: self.file.clone(), line: at.0, column: at.1, message, hint });
    }

    /// `node` as a mapping, or a problem.
    pub(crate) fn mapping<'n, 'i>(&mut self, node: &'n Node<'i>, path: &str) -> Option<Map<'n, 'i>> {
        match data(node) {
            YamlData::Mapping(entries) => Some(Map { entries, node }),
            _ => {
                self.wrong_type(node, path, "a mapping");
                None
            }
        }
    }

    /// `node` as a sequence, or a problem.
    pub(crate) fn sequence<'n, 'i>(&mut self, node: &'n Node<'i>, path: &str) -> Option<&'n [Node<'i>]> {
        match data(node) {
            YamlData::Sequence(items) => Some(items),
            _ => {
                self.wrong_type(node, path, "a list");
                None
            }
        }
    }

    /// `node` as a string, or a problem.
    pub(crate) fn string<'n>(&mut self, node: &'n Node<'_>, path: &str) -> Option<&'n str> {
        match data(node) {
            YamlData::Value(Scalar::String(s)) => Some(s.as_ref()),
            _ => {
                self.wrong_type(node, path, "a string");
                None
            }
        }
    }

    /// `node` as an integer, or a problem.
    pub(crate) fn integer(&mut self, node: &Node<'_>, path: &str) -> Option<i64> {
        match data(node) {
            YamlData::Value(Scalar::Integer(i)) => Some(*i),
            _ => {
                self.wrong_type(node, path, "an integer");
                None
            }
        }
    }

    /// `node` as a boolean, or a problem.
    pub(crate) fn boolean(&mut self, node: &Node<'_>, path: &str) -> Option<bool> {
        match data(node) {
            YamlData::Value(Scalar::Boolean(b)) => Some(*b),
            _ => {
                self.wrong_type(node, path, "true or false");
                None
            }
        }
    }

    /// Warns about keys of `map` that are not in `valid`, with a "did you mean". Kubernetes has many more
    /// fields than slip reads and Podman ignores the ones it does not know, so these are warnings.
    pub(crate) fn unknown_keys(&mut self, map: Map<'_, '_>, path: &str, valid: &[&str]) {
        for (key, at) in map.keys() {
            if valid.contains(&key.as_str()) {
                continue;
            }
            let mean = suggest(&key, valid).map(|s| format!(" (did you mean {s:?}?)")).unwrap_or_default();
            let place = if path.is_empty() { "at the top level".to_owned() } else { format!("in {path}") };
            self.warn(at, format!("unknown key {key:?} {place}{mean}: Podman ignores it"), None);
        }
    }

    fn wrong_type(&mut self, node: &Node<'_>, path: &str, expected: &str) {
        let hint = match (expected, data(node)) {
            ("an integer", YamlData::Value(Scalar::String(s))) if s.trim().parse::<i64>().is_ok() => {
                Some(format!("remove the quotes: {}", s.trim()))
            }
            ("true or false", YamlData::Value(Scalar::String(s))) if matches!(s.as_ref(), "true" | "false") => {
                Some(format!("remove the quotes: {s}"))
            }
            _ => None,
        };
        self.problem(at(node), format!("{path}: expected {expected}, found {}", type_name(node)), hint);
    }
}

/// Why YAML text was not loaded.
enum Unloadable {
    /// It is not valid YAML.
    Invalid(ScanError),
    /// A collection starting at `at`, or what the alias at `at` expands to, nests deeper than [`MAX_DEPTH`].
    TooDeep { at: Marker, alias: bool },
    /// The alias at `at` brings the document, expanded, past [`MAX_NODES`] nodes.
    TooMany { at: Marker },
}

/// Nodes a manifest may have once its aliases are expanded (saphyr clones an anchored node at each alias, so
/// aliases of aliases grow exponentially: the "billion laughs").
pub const MAX_NODES: usize = 100_000;

/// Checks that no collection in `text` nests deeper than [`MAX_DEPTH`], counting the depth that aliases
/// expand to (saphyr clones the anchored node, so `&a [*z]`, `&b [*a]`, … nests one level more per line).
///
/// The loader, and cloning, hashing and dropping the nodes it builds, recurse once per level, so they
/// overflow the stack on a deep enough document. This check builds nothing: saphyr-parser's events come
/// from a state machine that keeps its stack of open collections on the heap (`Parser::next_event`, unlike
/// `Parser::load`, never recurses, in block or flow style), so it is safe at any depth.
fn check_depth(text: &str) -> Result<(), Unloadable> {
    let mut parser = Parser::new_from_str(text);
    // Per open collection: its anchor id (0 for none), the height of its tallest child so far and its nodes so far.
    let mut open: Vec<(usize, usize, usize)> = Vec::new();
    // Per anchored collection: its height, which is how deep an alias to it nests, and its nodes.
    let mut heights: BTreeMap<usize, (usize, usize)> = BTreeMap::new();
    // Nodes of the document with every alias expanded.
    let mut total: usize = 0;
    while let Some(next) = parser.next_event() {
        let (event, span) = next.map_err(Unloadable::Invalid)?;
        let (height, nodes) = match event {
            Event::SequenceStart(anchor, _) | Event::MappingStart(anchor, _) => {
                if open.len() >= MAX_DEPTH {
                    return Err(Unloadable::TooDeep { at: span.start, alias: false });
                }
                open.push((anchor, 0, 1));
                total += 1;
                continue;
            }
            Event::SequenceEnd | Event::MappingEnd => {
                let Some((anchor, tallest, nodes)) = open.pop() else { continue };
                if anchor != 0 {
                    heights.insert(anchor, (tallest + 1, nodes));
                }
                (tallest + 1, nodes)
            }
            Event::Alias(anchor) => {
                let (height, nodes) = heights.get(&anchor).copied().unwrap_or((0, 1));
                if open.len() + height > MAX_DEPTH {
                    return Err(Unloadable::TooDeep { at: span.start, alias: true });
                }
                total = total.saturating_add(nodes);
                if total > MAX_NODES {
                    return Err(Unloadable::TooMany { at: span.start });
                }
                (height, nodes)
            }
            Event::Scalar(..) => {
                total += 1;
                (0, 1)
            }
            // Documents start with nothing open.
            _ => continue,
        };
        if let Some(parent) = open.last_mut() {
            parent.1 = parent.1.max(height);
            parent.2 = parent.2.saturating_add(nodes);
        }
    }
    Ok(())
}

/// 1-based line and column (in characters) of a parser position.
fn marked(m: &Marker) -> At {
    (Some(m.line()), Some(m.col() + 1))
}

/// 1-based line and column (in characters) of a node.
pub(crate) fn at(node: &Node<'_>) -> At {
    (Some(node.span.start.line()), Some(node.span.start.col() + 1))
}

/// True for `null`, `~` and an empty value.
pub(crate) fn is_null(node: &Node<'_>) -> bool {
    matches!(data(node), YamlData::Value(Scalar::Null))
}

/// How messages describe a node's type.
pub(crate) fn type_name(node: &Node<'_>) -> &'static str {
    match data(node) {
        YamlData::Value(Scalar::Null) => "nothing",
        YamlData::Value(Scalar::Boolean(_)) => "a boolean",
        YamlData::Value(Scalar::Integer(_)) => "an integer",
        YamlData::Value(Scalar::FloatingPoint(_)) => "a number",
        YamlData::Value(Scalar::String(_)) => "a string",
        YamlData::Sequence(_) => "a list",
        YamlData::Mapping(_) => "a mapping",
        _ => "an unsupported value",
    }
}

/// The node's data, looking through tags (`!!str 80`).
fn data<'n, 'i>(node: &'n Node<'i>) -> &'n YamlData<'i, Node<'i>> {
    match &node.data {
        YamlData::Tagged(_, inner) => data(inner),
        other => other,
    }
}

fn key_str<'n>(node: &'n Node<'_>) -> Option<&'n str> {
    match data(node) {
        YamlData::Value(Scalar::String(s)) => Some(s.as_ref()),
        _ => None,
    }
}

fn shown(node: &Node<'_>) -> String {
    match data(node) {
        YamlData::Value(Scalar::Integer(i)) => i.to_string(),
        YamlData::Value(Scalar::Boolean(b)) => b.to_string(),
        YamlData::Value(Scalar::FloatingPoint(f)) => f.to_string(),
        _ => type_name(node).to_owned(),
    }
}
