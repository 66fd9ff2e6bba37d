//! `slipd --print-config` (SPEC §3.1): every config file as written, after validating it, with placeholders left
//! unresolved and each literal secret shown as `"***"`. A value that is exactly one `${NAME}` placeholder is
//! shown as it is: it names a variable and holds nothing. Comments and layout are kept (`toml_edit`).

use std::path::Path;

use slip_engine::config_source;
use toml_edit::{DocumentMut, Item, Value};

/// The secret keys of `slip.toml`, as paths; `[]` steps into every element of an array (of tables), `*` into
/// every key of a table.
const DAEMON_SECRETS: &[&[&str]] = &[
    &["auth", "secret"],
    &["auth", "admin_token"],
    &["auth", "metrics_token"],
    &["registry", "ghcr_token"],
    &["registry", "auth", "[]", "password"],
    &["caddy", "tls", "dns_provider_config", "*"],
];

/// The secret keys of an app file.
const APP_SECRETS: &[&[&str]] =
    &[&["app", "secret"], &["github", "token"], &["notifications", "[]", "url"], &["notifications", "[]", "secret"]];

/// The report for the config at `path` and the exit code: the masked files (0), or the `--check` report of an
/// invalid config (1), since printing a config slipd would refuse helps nobody.
pub fn print_config(path: &Path) -> (String, i32) {
    let (report, code) = crate::check::check(path);
    if code != 0 {
        return (report, code);
    }
    let sources = match config_source::read(path) {
        Ok(sources) => sources,
        Err(e) => return (format!("✗ {}\n", slip_core::error_chain::error_chain(&e)), 1),
    };
    let mut out = String::new();
    for (file, secrets) in
        sources.slip_toml.iter().map(|f| (f, DAEMON_SECRETS)).chain(sources.apps.iter().map(|f| (f, APP_SECRETS)))
    {
        out.push_str(&format!("# {}\n", file.path.display()));
        match mask(&file.text, secrets) {
            Ok(text) => out.push_str(&text),
            Err(e) => return (format!("✗ {}: {e}\n", file.path.display()), 1),
        }
        if !out.ends_with('\n') {
            out.push('\n');
        }
        out.push('\n');
    }
    (out, 0)
}

/// `text` with the values at `secrets` masked.
pub fn mask(text: &str, secrets: &[&[&str]]) -> Result<String, toml_edit::TomlError> {
    let mut doc: DocumentMut = text.parse()?;
    for path in secrets {
        mask_item(doc.as_item_mut(), path);
    }
    Ok(doc.to_string())
}

fn mask_item(item: &mut Item, path: &[&str]) {
    let Some((step, rest)) = path.split_first() else {
        mask_value(item);
        return;
    };
    match *step {
        "[]" => match item {
            Item::ArrayOfTables(tables) => tables.iter_mut().for_each(|t| mask_table_like(t, rest)),
            Item::Value(Value::Array(values)) => {
                for value in values.iter_mut() {
                    if let Value::InlineTable(t) = value {
                        mask_table_like(t, rest);
                    }
                }
            }
            _ => {}
        },
        "*" => {
            if let Some(table) = item.as_table_like_mut() {
                for (_, child) in table.iter_mut() {
                    mask_item(child, rest);
                }
            }
        }
        key => {
            if let Some(child) = item.as_table_like_mut().and_then(|t| t.get_mut(key)) {
                mask_item(child, rest);
            }
        }
    }
}

fn mask_table_like(table: &mut dyn toml_edit::TableLike, path: &[&str]) {
    let Some((key, rest)) = path.split_first() else { return };
    if let Some(child) = table.get_mut(key) {
        mask_item(child, rest);
    }
}

fn mask_value(item: &mut Item) {
    if let Some(value) = item.as_value_mut()
        && let Some(text) = value.as_str()
        && !is_one_placeholder(text)
    {
        let decor = value.decor().clone();
        *value = Value::from("***");
        *value.decor_mut() = decor;
    }
}

/// `${NAME}` and nothing else.
fn is_one_placeholder(text: &str) -> bool {
    text.strip_prefix("${").and_then(|t| t.strip_suffix('}')).is_some_and(|name| {
        !name.is_empty()
            && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_')
            && !name.starts_with(|c: char| c.is_ascii_digit())
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn literal_secrets_are_masked_placeholders_and_comments_stay() {
        let text = "# the daemon\n[auth]\nsecret = \"${SLIP_SECRET}\" # from slip.env\nadmin_token = \"plain-admin-token\"\n\
                    metrics_token = \"pre-${X}\"\n\n[[registry.auth]]\nhost = \"ghcr.io\"\nusername = \"me\"\npassword = \"hunter2\"\n\
                    \n[caddy.tls]\nmode = \"acme\"\ndns_provider_config = { api_token = \"cf-token\", zone = \"${ZONE}\" }\n";
        let masked = mask(text, DAEMON_SECRETS).unwrap();
        assert_eq!(
            masked,
            "# the daemon\n[auth]\nsecret = \"${SLIP_SECRET}\" # from slip.env\nadmin_token = \"***\"\n\
             metrics_token = \"***\"\n\n[[registry.auth]]\nhost = \"ghcr.io\"\nusername = \"me\"\npassword = \"***\"\n\
             \n[caddy.tls]\nmode = \"acme\"\ndns_provider_config = { api_token = \"***\", zone = \"${ZONE}\" }\n"
        );
        let app =
            "[app]\nname = \"web\"\nsecret = \"app-key\"\n\n[[notifications]]\nurl = \"https://hooks.slack.com/x\"\n";
        let masked = mask(app, APP_SECRETS).unwrap();
        assert!(!masked.contains("app-key") && !masked.contains("hooks.slack.com"), "{masked}");
        assert!(masked.contains("name = \"web\""), "{masked}");
    }
}
