//! One problem (or warning) in the server config, with the file and position it comes from, and the
//! conversion from byte offsets to 1-based line and column.
//!
//! Problems carry text only: no value read from the environment is ever put into one (the callers pass what
//! was written in the file, placeholders unresolved).

use std::fmt;
use std::path::PathBuf;

/// One problem in the config, with where it is. Warnings use the same shape.
///
/// `Display` renders `file:line:col: message`, then `  hint: …` on its own line when there is a hint.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Problem {
    /// The file as shown to the user (`slip.toml`, `apps/myapp.toml`).
    pub file: PathBuf,
    /// 1-based line; `None` for problems about a whole file (a missing `[app]` table).
    pub line: Option<usize>,
    /// 1-based column in characters; `None` when `line` is.
    pub column: Option<usize>,
    /// What is wrong and what would be valid.
    pub message: String,
    /// A suggestion for fixing it.
    pub hint: Option<String>,
}

impl fmt::Display for Problem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.file.display())?;
        if let Some(line) = self.line {
            write!(f, ":{line}")?;
            if let Some(col) = self.column {
                write!(f, ":{col}")?;
            }
        }
        write!(f, ": {}", self.message)?;
        if let Some(hint) = &self.hint {
            write!(f, "\n  hint: {hint}")?;
        }
        Ok(())
    }
}

/// Sorts problems by file, then line and column (file-level problems first), then message.
pub(crate) fn sort(problems: &mut [Problem]) {
    problems.sort_by(|a, b| (&a.file, a.line, a.column, &a.message).cmp(&(&b.file, b.line, b.column, &b.message)));
}

/// 1-based (line, column) of a byte offset in `text`; the column counts characters.
pub(crate) fn position(text: &str, offset: usize) -> (usize, usize) {
    let mut offset = offset.min(text.len());
    while !text.is_char_boundary(offset) {
        offset -= 1;
    }
    let before = &text[..offset];
    let line = before.matches('\n').count() + 1;
    let line_start = before.rfind('\n').map_or(0, |i| i + 1);
    let column = before[line_start..].chars().count() + 1;
    (line, column)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn positions_are_one_based_and_count_characters() {
        let text = "a = 1\nbé = \"x\"\n";
        assert_eq!(position(text, 0), (1, 1));
        assert_eq!(position(text, 6), (2, 1));
        assert_eq!(position(text, text.find('=').unwrap()), (1, 3));
        let second_eq = text.rfind('=').unwrap();
        assert_eq!(position(text, second_eq), (2, 4));
        assert_eq!(position(text, 10_000), (3, 1));
    }

    #[test]
    fn display_has_file_line_column_and_hint() {
        let p = Problem {
            file: "apps/myapp.toml".into(),
            line: Some(14),
            column: Some(1),
            message: "unknown key \"drain_timout\" in [deploy] (did you mean \"drain_timeout\"?)".into(),
            hint: None,
        };
        assert_eq!(
            p.to_string(),
            "apps/myapp.toml:14:1: unknown key \"drain_timout\" in [deploy] (did you mean \"drain_timeout\"?)"
        );
        let p = Problem { line: None, column: None, hint: Some("add one".into()), ..p };
        assert!(p.to_string().starts_with("apps/myapp.toml: unknown key"));
        assert!(p.to_string().ends_with("\n  hint: add one"));
    }
}
