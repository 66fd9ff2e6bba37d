//! The env-file text format (SPEC §4.2): dotenv syntax (`KEY=VALUE`, optional `export `, single or double quotes,
//! `#` comments), parsed by dotenvy with every value taken exactly as written: no `$NAME` expansion, which in slipd
//! would copy the daemon's own environment into containers (see `slip-daemon`'s `release::env_file`).
//!
//! Pure: text in, variables out. Reading the file and wording errors is the daemon's.

/// Parses dotenv text without any `$` expansion; `Err` carries the line of the problem when known.
pub fn parse(text: &str) -> Result<Vec<(String, String)>, Option<usize>> {
    let text = text.strip_prefix('\u{feff}').unwrap_or(text);
    let literal = literal_dollars(text);
    let mut vars = Vec::new();
    for item in dotenvy::from_read_iter(literal.as_bytes()) {
        match item {
            Ok(pair) => vars.push(pair),
            Err(dotenvy::Error::LineParse(fragment, _)) => return Err(line_of(&literal, &fragment)),
            Err(_) => return Err(None),
        }
    }
    Ok(vars)
}

/// `text` with a backslash before every `$` that dotenvy would treat as the start of a substitution: outside
/// single quotes, not already escaped, not in a comment. Newlines are kept, so line numbers do not move.
fn literal_dollars(text: &str) -> String {
    #[derive(PartialEq)]
    enum Quote {
        None,
        Weak,
        Strong,
    }
    let mut out = String::with_capacity(text.len() + 8);
    let mut quote = Quote::None;
    let mut escaped = false;
    let mut comment = false;
    // Where a `#` starts a comment: at the start of a line, right after the `=` (dotenvy then reads an empty
    // value), or after whitespace that ends an unquoted value.
    let mut blank_so_far = true;
    let mut seen_equals = false;
    let mut value_start = false;
    let mut after_space = false;
    for c in text.chars() {
        if c == '\n' {
            comment = false;
            after_space = false;
            if quote == Quote::None {
                escaped = false;
                blank_so_far = true;
                seen_equals = false;
                value_start = false;
            }
            out.push(c);
            continue;
        }
        if comment {
            out.push(c);
            continue;
        }
        if escaped {
            escaped = false;
            out.push(c);
            continue;
        }
        let space = c.is_whitespace();
        match quote {
            Quote::Strong => {
                if c == '\'' {
                    quote = Quote::None;
                }
            }
            Quote::Weak => match c {
                '\\' => escaped = true,
                '"' => quote = Quote::None,
                '$' => out.push('\\'),
                _ => {}
            },
            Quote::None => match c {
                '#' if blank_so_far || value_start || after_space => comment = true,
                '=' if !seen_equals => {
                    seen_equals = true;
                    value_start = true;
                    out.push(c);
                    continue;
                }
                '\\' => escaped = true,
                '\'' => quote = Quote::Strong,
                '"' => quote = Quote::Weak,
                '$' => out.push('\\'),
                _ => {}
            },
        }
        blank_so_far &= space;
        value_start &= space;
        after_space = space && quote == Quote::None;
        out.push(c);
    }
    out
}

/// The 1-based line of `text` where the text dotenvy complained about starts.
fn line_of(text: &str, fragment: &str) -> Option<usize> {
    let first = fragment.lines().map(str::trim).find(|l| !l.is_empty())?;
    text.lines().position(|line| line.contains(first)).map(|i| i + 1)
}
