//! Which texts may be the value of a container environment variable (a secret, an `[env]` entry, an env file
//! line): printable text, tabs and line breaks. NUL and the other control characters are refused.
//!
//! The engines cut a value at NUL or refuse it, and when they refuse they echo the value back escaped
//! (`abc\x00def`) in an error that slip would then have to hide; a value holding escapes is also never what a user
//! meant. Refusing them at the edge keeps both out. This module only decides; callers word the answer.

/// Where a value holds a character that is not allowed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error(
    "holds the control character U+{code:04X} at byte {at}; values may hold printable text, tabs and line breaks only"
)]
pub struct ControlCharacter {
    /// The character's code point.
    pub code: u32,
    /// Its byte offset in the value.
    pub at: usize,
}

/// `Ok` when `value` may be a container environment value; otherwise the first character that may not.
pub fn check(value: &str) -> Result<(), ControlCharacter> {
    match value.char_indices().find(|(_, c)| c.is_control() && !matches!(c, '\t' | '\n' | '\r')) {
        Some((at, c)) => Err(ControlCharacter { code: c as u32, at }),
        None => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn printable_text_tabs_and_line_breaks_pass() {
        for ok in ["", "postgres://u:p@h/db", "a\tb", "-----BEGIN KEY-----\r\nabc\n-----END KEY-----\n", "ünï €"] {
            assert_eq!(check(ok), Ok(()), "{ok:?}");
        }
    }

    #[test]
    fn nul_escape_delete_and_c1_controls_are_refused_with_their_place() {
        assert_eq!(check("abc\u{0}defghij"), Err(ControlCharacter { code: 0, at: 3 }));
        assert_eq!(check("\u{1b}[31m"), Err(ControlCharacter { code: 0x1b, at: 0 }));
        assert_eq!(check("x\u{7f}"), Err(ControlCharacter { code: 0x7f, at: 1 }));
        assert_eq!(check("é\u{85}"), Err(ControlCharacter { code: 0x85, at: 2 }));
        assert_eq!(
            check("a\u{0}").unwrap_err().to_string(),
            "holds the control character U+0000 at byte 1; values may hold printable text, tabs and line breaks only"
        );
    }
}
