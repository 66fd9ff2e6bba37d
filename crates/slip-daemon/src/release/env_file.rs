//! Reads an app's `env_file` (SPEC §4.2): dotenv syntax (`KEY=VALUE`, optional `export `, single or double
//! quotes, `#` comments), parsed by dotenvy, with every value taken exactly as written.
//!
//! dotenvy expands `$NAME` and `${NAME}` inside unquoted and double-quoted values, looking in the *process*
//! environment first. In slipd that would copy the daemon's own environment (which may hold app keys and tokens
//! used for config interpolation) into app containers, and would silently change any value containing a `$`
//! (`DB_PASSWORD=pa$word` would become `pa`). So before parsing, every `$` that dotenvy would expand is escaped,
//! which makes it literal. A `$` already escaped as `\$` stays one literal `$`, as in dotenvy.
//!
//! Errors name the file and the line, never the line's text: an env file usually holds credentials, and the
//! error ends up in the deploy's history.
//!
//! The parsing itself is pure and lives in `slip_core::env_file` (where it is fuzzed); this module reads the file
//! and words the errors.
//!
//! It does not decide precedence against `[env]` or secrets (that is `environment` in the parent module).

use std::path::{Path, PathBuf};

pub(crate) use slip_core::env_file::parse;

/// Why an env file could not be used.
#[derive(Debug, thiserror::Error)]
pub(crate) enum EnvFileError {
    /// The file is missing or unreadable.
    #[error("env_file {} cannot be read (create it, or remove env_file.path from the app's config)", .path.display())]
    Unreadable {
        /// The file.
        path: PathBuf,
        /// Why.
        #[source]
        source: std::io::Error,
    },
    /// The file is not valid dotenv syntax.
    #[error(
        "env_file {} is not valid dotenv syntax{}: write KEY=VALUE lines, quoting values that hold spaces or `#`",
        .path.display(),
        .line.map(|n| format!(" near line {n}")).unwrap_or_default()
    )]
    Invalid {
        /// The file.
        path: PathBuf,
        /// 1-based line, when it could be found.
        line: Option<usize>,
    },
    /// A value holds a control character.
    #[error("env_file {}: the value of {key} {problem}", .path.display())]
    ControlCharacter {
        /// The file.
        path: PathBuf,
        /// The variable.
        key: String,
        /// Where.
        problem: slip_core::env_value::ControlCharacter,
    },
}

/// The variables of the env file at `path`, in file order (a later duplicate key wins when applied).
pub(crate) fn read(path: &Path) -> Result<Vec<(String, String)>, EnvFileError> {
    let text = std::fs::read_to_string(path)
        .map_err(|source| EnvFileError::Unreadable { path: path.to_path_buf(), source })?;
    let vars = parse(&text).map_err(|line| EnvFileError::Invalid { path: path.to_path_buf(), line })?;
    for (key, value) in &vars {
        slip_core::env_value::check(value).map_err(|problem| EnvFileError::ControlCharacter {
            path: path.to_path_buf(),
            key: key.clone(),
            problem,
        })?;
    }
    Ok(vars)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn get<'a>(vars: &'a [(String, String)], key: &str) -> Option<&'a str> {
        vars.iter().rev().find(|(k, _)| k == key).map(|(_, v)| v.as_str())
    }

    #[test]
    fn dollar_signs_are_literal_and_never_read_the_daemon_environment() {
        // PATH and HOME are set in every test process: dotenvy alone would substitute them.
        let vars = parse(concat!(
            "PASSWORD=pa$word\n",
            "FROM_PATH=$PATH\n",
            "BRACED=\"x ${HOME} y\"\n",
            "SINGLE='lit $HOME'\n",
            "ESCAPED=a\\$b\n",
            "DOUBLE_ESCAPED=\"c\\$d\"\n",
            "export EXPORTED=$HOME\n",
        ))
        .unwrap();
        assert_eq!(get(&vars, "PASSWORD"), Some("pa$word"));
        assert_eq!(get(&vars, "FROM_PATH"), Some("$PATH"));
        assert_eq!(get(&vars, "BRACED"), Some("x ${HOME} y"));
        assert_eq!(get(&vars, "SINGLE"), Some("lit $HOME"));
        assert_eq!(get(&vars, "ESCAPED"), Some("a$b"));
        assert_eq!(get(&vars, "DOUBLE_ESCAPED"), Some("c$d"));
        assert_eq!(get(&vars, "EXPORTED"), Some("$HOME"));
    }

    #[test]
    fn quotes_comments_and_multi_line_values_parse_as_dotenv() {
        let vars = parse(concat!(
            "# a comment with $HOME and an apostrophe ' in it\n",
            "  # an indented comment\n",
            "\n",
            "PLAIN=value # it's $HOME\n",
            "HASH=a#b\n",
            "SPACED=\"with spaces\"\n",
            "MULTI=\"line one\n",
            "line two $HOME\"\n",
            "AFTER=ok\n",
            "EMPTY=\n",
            "ALSO_EMPTY= #it's $HOME\n",
            "LAST=$HOME\n",
        ))
        .unwrap();
        assert_eq!(get(&vars, "PLAIN"), Some("value"));
        assert_eq!(get(&vars, "HASH"), Some("a#b"));
        assert_eq!(get(&vars, "SPACED"), Some("with spaces"));
        assert_eq!(get(&vars, "MULTI"), Some("line one\nline two $HOME"));
        assert_eq!(get(&vars, "AFTER"), Some("ok"));
        assert_eq!(get(&vars, "EMPTY"), Some(""));
        assert_eq!(get(&vars, "ALSO_EMPTY"), Some(""));
        assert_eq!(get(&vars, "LAST"), Some("$HOME"), "an apostrophe in a comment opens no quote");
        assert_eq!(vars.len(), 8, "{vars:?}");
    }

    #[test]
    fn a_value_with_a_control_character_is_refused_by_key_without_the_value() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("app.env");
        std::fs::write(&path, "GOOD=1\nBAD=\"abc\u{1b}defghij\"\n").unwrap();
        let message = read(&path).unwrap_err().to_string();
        assert!(message.contains("BAD") && message.contains("U+001B"), "{message}");
        assert!(!message.contains("defghij"), "{message}");
    }

    #[test]
    fn a_bad_line_is_reported_by_number_without_its_text() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("app.env");
        std::fs::write(&path, "GOOD=1\nTOKEN=s3cr3t-value with-a-space\nLATER=2\n").unwrap();
        let error = read(&path).unwrap_err();
        let message = error.to_string();
        assert!(matches!(error, EnvFileError::Invalid { line: Some(2), .. }), "{message}");
        assert!(message.contains("near line 2"), "{message}");
        assert!(!message.contains("s3cr3t"), "the line's text is never shown: {message}");
    }

    #[test]
    fn a_missing_file_is_an_error_naming_the_file() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("missing.env");
        let error = read(&path).unwrap_err();
        assert!(matches!(error, EnvFileError::Unreadable { .. }));
        assert!(error.to_string().contains("missing.env"), "{error}");
    }
}
