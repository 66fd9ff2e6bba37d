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
///
/// dotenvy first groups physical lines into logical ones (a quote left open joins the next line) with rules of its
/// own, which differ from its line parser's: a `#` right after `=` starts a comment for the parser but not for the
/// grouping, so a quote inside that comment still joins lines. Each logical line is therefore found as dotenvy
/// finds it ([`logical_lines`]) and escaped on its own. (Found by fuzzing: `E=#"`, `'"`, `E=$a` expanded `$a`.)
fn literal_dollars(text: &str) -> String {
    logical_lines(text).into_iter().map(literal_dollars_in_line).collect()
}

/// dotenvy's grouping of `text` into logical lines (`Iter::next` and `eval_end_state` in dotenvy 0.15's
/// `iter.rs`), each with its line breaks.
fn logical_lines(text: &str) -> Vec<&str> {
    #[derive(Clone, Copy, PartialEq)]
    enum State {
        Complete,
        Escape,
        StrongOpen,
        StrongOpenEscape,
        WeakOpen,
        WeakOpenEscape,
        WhiteSpace,
    }
    let mut out = Vec::new();
    let mut start = 0;
    let mut state = State::Complete;
    let mut offset = 0;
    for physical in text.split_inclusive('\n') {
        offset += physical.len();
        // A logical line that starts with `#` is a comment and ends with its first physical line, quotes or not.
        let mut comment = text[start..offset].trim_start().starts_with('#');
        for c in physical.chars().take_while(|_| !comment) {
            state = match state {
                State::WhiteSpace if c == '#' => {
                    comment = true;
                    break;
                }
                State::WhiteSpace | State::Complete => match c {
                    c if state == State::Complete && c.is_whitespace() && c != '\n' && c != '\r' => State::WhiteSpace,
                    '\\' => State::Escape,
                    '"' => State::WeakOpen,
                    '\'' => State::StrongOpen,
                    _ => State::Complete,
                },
                State::Escape => State::Complete,
                State::WeakOpen => match c {
                    '\\' => State::WeakOpenEscape,
                    '"' => State::Complete,
                    _ => State::WeakOpen,
                },
                State::WeakOpenEscape => State::WeakOpen,
                State::StrongOpen => match c {
                    '\\' => State::StrongOpenEscape,
                    '\'' => State::Complete,
                    _ => State::StrongOpen,
                },
                State::StrongOpenEscape => State::StrongOpen,
            };
        }
        if comment || state == State::Complete {
            out.push(&text[start..offset]);
            start = offset;
            state = State::Complete;
        }
    }
    if start < text.len() {
        out.push(&text[start..]);
    }
    out
}

/// [`literal_dollars`] for one logical line, read as dotenvy's value parser reads it: once, from its start, so a
/// line break inside it is a character like any other (a `#` after one starts no comment), and a comment lasts
/// to its end. The grouping may have joined lines on a quote the parser does not see (it takes `\'` inside single
/// quotes as an escape, the parser does not), so the joined lines are not new lines here. (Found by fuzzing.)
fn literal_dollars_in_line(text: &str) -> String {
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
        // Only a space or a tab ends an unquoted value for dotenvy (`expecting_end`); a `\r` does not.
        after_space = matches!(c, ' ' | '\t') && quote == Quote::None;
        out.push(c);
    }
    out
}

/// The 1-based line of `text` where the text dotenvy complained about starts.
fn line_of(text: &str, fragment: &str) -> Option<usize> {
    let first = fragment.lines().map(str::trim).find(|l| !l.is_empty())?;
    text.lines().position(|line| line.contains(first)).map(|i| i + 1)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn get<'a>(vars: &'a [(String, String)], key: &str) -> Option<&'a str> {
        vars.iter().rev().find(|(k, _)| k == key).map(|(_, v)| v.as_str())
    }

    #[test]
    fn inputs_found_by_fuzzing_expand_no_dollar_sign() {
        // From fuzz/ env_file: dotenvy joins the first two lines (the `"` in the comment opens a quote for its
        // line grouping), so the third is a line of its own whose `$X` it would expand.
        let vars = parse("X=first-value\nE=#\"\n'\"\nY=$X\n").unwrap();
        assert_eq!(get(&vars, "Y"), Some("$X"), "{vars:?}");
        let vars = parse("X=first-value\n#\"\nY=$X$%Weo=Bine\n").unwrap();
        assert_eq!(get(&vars, "Y"), Some("$X$%Weo=Bine"), "after a comment line holding a quote: {vars:?}");
        let vars = parse("X=first-value\nY=a\r#$X\n").unwrap();
        assert_eq!(get(&vars, "Y"), Some("a\r#$X"), "a carriage return does not start a comment: {vars:?}");
        let vars = parse("X=first-value\nE=#'\n\"'\nY=\"${X}\"\n").unwrap();
        assert_eq!(get(&vars, "Y"), Some("${X}"), "{vars:?}");
    }

    #[test]
    fn a_line_break_inside_a_logical_line_starts_no_comment() {
        // From fuzz/ env_file (the long run of 2026-12-06): the grouping reads `'\'` as an open quote and joins
        // every line up to the next `'`; the parser closed the quote and reads the joined lines as one unquoted
        // value, `#` included, so `$b` on a later line was expanded from slipd's environment.
        let text = "p=p'\\'l\n/x\n#\n$$$$\n$$b$,$$\n$'$\n \n";
        assert_eq!(logical_lines(text)[0], "p=p'\\'l\n/x\n#\n$$$$\n$$b$,$$\n$'$\n");
        assert!(literal_dollars(text).contains("\\$\\$b\\$"), "{:?}", literal_dollars(text));
        // With every `$` literal, the `'` after the last one opens a quote that never closes: a problem on line 1,
        // whatever the environment holds.
        assert_eq!(parse(text), Err(Some(1)));
    }

    #[test]
    fn logical_lines_follow_dotenvy() {
        assert_eq!(logical_lines("A=1\nB=\"x\ny\"\nC=3"), ["A=1\n", "B=\"x\ny\"\n", "C=3"]);
        assert_eq!(logical_lines("A=1 #\"\nB=2\n"), ["A=1 #\"\n", "B=2\n"], "a comment after a space ends the line");
        assert_eq!(logical_lines("E=#\"\n'\"\nY=$X"), ["E=#\"\n'\"\n", "Y=$X"]);
        assert_eq!(logical_lines("  #\"\nE=$a\n"), ["  #\"\n", "E=$a\n"], "a comment line never joins the next");
    }
}
