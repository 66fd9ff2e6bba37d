//! Human output (SPEC §15): aligned tables when stdout is a terminal, tab-separated lines (header first)
//! otherwise, so scripts can `cut -f`. Text is truncated by characters, never bytes. `--json` output does not
//! come through here.

use std::io::IsTerminal;

/// Rows to print under a header.
pub struct Table {
    header: Vec<String>,
    rows: Vec<Vec<String>>,
}

impl Table {
    /// A table with these column names.
    pub fn new(header: &[&str]) -> Table {
        Table { header: header.iter().map(|h| (*h).to_owned()).collect(), rows: Vec::new() }
    }

    /// Adds a row (one cell per column).
    pub fn row(&mut self, cells: Vec<String>) {
        self.rows.push(cells);
    }

    /// Prints to stdout.
    pub fn print(&self) {
        print!("{}", self.render(std::io::stdout().is_terminal()));
    }

    /// The text: aligned columns for a terminal, tab-separated otherwise.
    pub fn render(&self, terminal: bool) -> String {
        let all = std::iter::once(&self.header).chain(&self.rows);
        if !terminal {
            return all.map(|r| r.join("\t") + "\n").collect();
        }
        let mut widths = vec![0; self.header.len()];
        for row in std::iter::once(&self.header).chain(&self.rows) {
            for (i, cell) in row.iter().enumerate() {
                widths[i] = widths[i].max(cell.chars().count());
            }
        }
        all.map(|row| {
            let cells: Vec<String> = row
                .iter()
                .enumerate()
                .map(|(i, c)| if i + 1 == row.len() { c.clone() } else { format!("{c:<w$}", w = widths[i]) })
                .collect();
            cells.join("  ").trim_end().to_owned() + "\n"
        })
        .collect()
    }
}

/// `s` cut to `n` characters, with `…` when cut.
pub fn truncate(s: &str, n: usize) -> String {
    if s.chars().count() <= n { s.to_owned() } else { s.chars().take(n.saturating_sub(1)).chain(['…']).collect() }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tables_align_on_terminals_and_use_tabs_otherwise() {
        let mut t = Table::new(&["KEY", "SCOPE"]);
        t.row(vec!["DATABASE_URL".into(), "app".into()]);
        assert_eq!(t.render(true), "KEY           SCOPE\nDATABASE_URL  app\n");
        assert_eq!(t.render(false), "KEY\tSCOPE\nDATABASE_URL\tapp\n");
    }

    #[test]
    fn truncation_counts_characters() {
        assert_eq!(truncate("déploiement", 5), "dépl…");
        assert_eq!(truncate("short", 10), "short");
    }
}
