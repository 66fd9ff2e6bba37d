//! `${VAR}` interpolation for server-side config strings (SPEC §3.1).
//!
//! `${NAME}` is replaced by the variable; `${NAME:-default}` uses the literal default when NAME is unset or
//! empty (defaults cannot nest); `$${` is a literal `${`; a bare `$NAME` or a lone `$` is left alone. NAME is
//! `[A-Za-z_][A-Za-z0-9_]*`. Errors name the variable, never a value.
//!
//! Repo config and pod manifests are not interpolated; this module is only called for server files.

use std::collections::BTreeMap;

/// Why a string could not be interpolated. No variant carries a resolved value.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub(crate) enum Error {
    /// `${NAME}` with NAME unset and no default.
    #[error("variable {var} is not set")]
    Unset {
        /// The variable.
        var: String,
    },
    /// `${` without a closing `}`.
    #[error("\"${{\" is not closed by \"}}\"")]
    Unterminated,
    /// `${…}` whose name is not `[A-Za-z_][A-Za-z0-9_]*`.
    #[error("{reference:?} is not a variable reference")]
    BadReference {
        /// The whole `${…}` as written.
        reference: String,
    },
    /// `${A:-${B}}`: defaults are literal.
    #[error("the default of ${{{var}:-…}} cannot contain another \"${{\"")]
    NestedDefault {
        /// The variable whose default nests.
        var: String,
    },
}

impl Error {
    /// What to do about it.
    pub(crate) fn hint(&self) -> String {
        match self {
            Error::Unset { var } => format!(
                "set {var} in slipd's environment or in slip.env beside slip.toml (KEY=VALUE lines), \
                 or give a default: ${{{var}:-value}}"
            ),
            Error::Unterminated => "close the reference: ${NAME}; write $${ for a literal \"${\"".into(),
            Error::BadReference { .. } => {
                "write ${NAME} or ${NAME:-default}, NAME being letters, digits and '_' (not starting with a digit); \
                 write $${ for a literal \"${\""
                    .into()
            }
            Error::NestedDefault { .. } => "a default is literal text; put the value in slip.env instead".into(),
        }
    }
}

/// Replaces every `${…}` in `text` with its value from `env`.
pub(crate) fn expand(text: &str, env: &BTreeMap<String, String>) -> Result<String, Error> {
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(i) = rest.find('$') {
        out.push_str(&rest[..i]);
        let tail = &rest[i..];
        if let Some(after) = tail.strip_prefix("$${") {
            out.push_str("${");
            rest = after;
        } else if let Some(after) = tail.strip_prefix("${") {
            let end = after.find('}').ok_or(Error::Unterminated)?;
            out.push_str(&resolve(&after[..end], env)?);
            rest = &after[end + 1..];
        } else {
            out.push('$');
            rest = &tail[1..];
        }
    }
    out.push_str(rest);
    Ok(out)
}

/// True when `text` is exactly one `${…}` reference: the only form allowed where a number or a boolean is
/// expected.
pub(crate) fn is_single_reference(text: &str) -> bool {
    text.strip_prefix("${")
        .and_then(|t| t.strip_suffix('}'))
        .is_some_and(|inner| !inner.contains('}') && !inner.contains("${"))
}

/// True when `text` contains a `${…}` reference (not counting `$${`).
pub(crate) fn has_reference(text: &str) -> bool {
    let mut rest = text;
    while let Some(i) = rest.find('$') {
        let tail = &rest[i..];
        if let Some(after) = tail.strip_prefix("$${") {
            rest = after;
        } else if tail.starts_with("${") {
            return true;
        } else {
            rest = &tail[1..];
        }
    }
    false
}

fn resolve(inner: &str, env: &BTreeMap<String, String>) -> Result<String, Error> {
    let (name, default) = match inner.split_once(":-") {
        Some((name, default)) => (name, Some(default)),
        None => (inner, None),
    };
    if !is_name(name) {
        return Err(Error::BadReference { reference: format!("${{{inner}}}") });
    }
    if let Some(default) = default
        && default.contains("${")
    {
        return Err(Error::NestedDefault { var: name.to_owned() });
    }
    match (env.get(name), default) {
        (Some(value), None) => Ok(value.clone()),
        (Some(value), Some(_)) if !value.is_empty() => Ok(value.clone()),
        (_, Some(default)) => Ok(default.to_owned()),
        (None, None) => Err(Error::Unset { var: name.to_owned() }),
    }
}

fn is_name(s: &str) -> bool {
    let b = s.as_bytes();
    !b.is_empty()
        && (b[0].is_ascii_alphabetic() || b[0] == b'_')
        && b.iter().all(|c| c.is_ascii_alphanumeric() || *c == b'_')
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env() -> BTreeMap<String, String> {
        [("SET", "value"), ("EMPTY", ""), ("_x1", "u")].iter().map(|(k, v)| (k.to_string(), v.to_string())).collect()
    }

    #[test]
    fn expands_references_and_leaves_the_rest() {
        for (input, output) in [
            ("plain", "plain"),
            ("${SET}", "value"),
            ("a-${SET}-b", "a-value-b"),
            ("${SET}${SET}", "valuevalue"),
            ("${_x1}", "u"),
            ("${EMPTY}", ""),
            ("${EMPTY:-fallback}", "fallback"),
            ("${UNSET:-fallback}", "fallback"),
            ("${UNSET:-}", ""),
            ("${SET:-fallback}", "value"),
            ("${UNSET:-a:-b}", "a:-b"),
            ("$${SET}", "${SET}"),
            ("$$${SET}", "$${SET}"),
            ("$SET", "$SET"),
            ("cost: 5$", "cost: 5$"),
            ("{env.CF_API_TOKEN}", "{env.CF_API_TOKEN}"),
            ("${UNSET:-x}y}", "xy}"),
        ] {
            assert_eq!(expand(input, &env()).as_deref(), Ok(output), "{input}");
        }
    }

    #[test]
    fn errors_name_the_variable_not_a_value() {
        let errors: Vec<String> =
            ["${UNSET}", "x ${SET} ${ALSO_UNSET}", "${SET", "${1X}", "${}", "${SET:default}", "${A:-${SET}}"]
                .iter()
                .map(|s| expand(s, &env()).unwrap_err().to_string())
                .collect();
        expect_test::expect![[r#"
            variable UNSET is not set
            variable ALSO_UNSET is not set
            "${" is not closed by "}"
            "${1X}" is not a variable reference
            "${}" is not a variable reference
            "${SET:default}" is not a variable reference
            the default of ${A:-…} cannot contain another "${"
        "#]]
        .assert_eq(&(errors.join("\n") + "\n"));
        assert!(errors.iter().all(|e| !e.contains("value")));
    }

    #[test]
    fn single_references() {
        assert!(is_single_reference("${PORT}"));
        assert!(is_single_reference("${PORT:-8080}"));
        assert!(!is_single_reference("${PORT}0"));
        assert!(!is_single_reference("${A}${B}"));
        assert!(!is_single_reference("8080"));
        assert!(has_reference("x${A}"));
        assert!(!has_reference("$${A} $A"));
    }
}
