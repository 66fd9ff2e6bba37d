//! `slip apps list|show|add|edit|rm` and `slip rollback` (SPEC §15), thin calls to slipd's apps API.
//!
//! `add` builds an app document (SPEC §6.6) from flags or from a TOML file; `edit` builds a JSON merge patch
//! (`--env` merges into `[env]` rather than replacing it). Validation is the server's: the CLI only refuses
//! an image with a tag (the tag comes from the webhook) and malformed `K=V` flags. `rm` asks for the app
//! name to be typed unless `--yes`. Nothing here reads or prints a secret value: `app.secret` is sent when
//! given and the server shows it as `***`.

use std::io::{BufRead, Write};
use std::path::PathBuf;

use clap::Subcommand;
use serde_json::{Map, Value, json};

use crate::client::{Client, Failure, encode, exit};
use crate::pairs;
use crate::table::{Table, truncate};

/// `slip apps …`.
#[derive(Debug, Subcommand)]
pub enum AppsCommand {
    /// List apps: NAME, KIND, IMAGE, ROUTES, STATUS.
    List,
    /// Show one app's document as written (placeholders unresolved, app.secret as ***).
    Show {
        /// App name.
        name: String,
    },
    /// Create an app (POST /v1/apps).
    Add {
        /// App name.
        name: String,
        /// Image repository, without a tag.
        image_arg: Option<String>,
        /// Hostname for the first route.
        domain_arg: Option<String>,
        /// Image repository, without a tag.
        #[arg(long)]
        image: Option<String>,
        /// Hostname for the first route.
        #[arg(long)]
        domain: Option<String>,
        /// Container port for the first route.
        #[arg(long)]
        port: Option<u16>,
        /// web, worker or pod.
        #[arg(long)]
        kind: Option<String>,
        /// The app's own webhook key (usually "${MYAPP_SECRET}").
        #[arg(long)]
        secret: Option<String>,
        /// Container environment, K=V (repeatable).
        #[arg(long = "env", value_name = "K=V")]
        env: Vec<String>,
        /// An apps/<name>.toml to send as the document (flags are laid over it).
        #[arg(long)]
        from_file: Option<PathBuf>,
    },
    /// Change an app (PATCH /v1/apps/{name}, a JSON merge patch).
    Edit {
        /// App name.
        name: String,
        /// Image repository, without a tag.
        #[arg(long)]
        image: Option<String>,
        /// Hostname for the first route.
        #[arg(long)]
        domain: Option<String>,
        /// Container port for the first route.
        #[arg(long)]
        port: Option<u16>,
        /// Set a key, SECTION.KEY=VALUE (VALUE is JSON when it parses as JSON, else a string).
        #[arg(long = "set", value_name = "PATH=VALUE")]
        set: Vec<String>,
        /// Remove a key, SECTION.KEY.
        #[arg(long = "unset", value_name = "PATH")]
        unset: Vec<String>,
        /// Set a container environment variable, K=V (merged into [env]).
        #[arg(long = "env", value_name = "K=V")]
        env: Vec<String>,
        /// Remove a container environment variable.
        #[arg(long = "unset-env", value_name = "K")]
        unset_env: Vec<String>,
    },
    /// Delete an app: its containers, routes, secrets and state (history and volumes are kept).
    Rm {
        /// App name.
        name: String,
        /// Delete even while a deploy runs.
        #[arg(long)]
        force: bool,
        /// Keep the app's secrets.
        #[arg(long)]
        keep_secrets: bool,
        /// Do not ask for the name to be typed.
        #[arg(long)]
        yes: bool,
    },
}

/// Runs an `apps` subcommand.
pub async fn run(client: &Client, command: AppsCommand, json_out: bool) -> Result<u8, Failure> {
    match command {
        AppsCommand::List => {
            let list: Value = client.get_admin("/v1/apps").await?;
            if json_out {
                println!("{}", serde_json::to_string_pretty(&list).unwrap_or_default());
                return Ok(exit::OK);
            }
            let mut table = Table::new(&["NAME", "KIND", "IMAGE", "ROUTES", "STATUS"]);
            for app in list["apps"].as_array().into_iter().flatten() {
                table.row(vec![
                    truncate(text(&app["name"]), 30),
                    text(&app["kind"]).to_owned(),
                    truncate(text(&app["image"]), 50),
                    truncate(&routes(app), 60),
                    text(&app["state"]["status"]).to_owned(),
                ]);
            }
            table.print();
            Ok(exit::OK)
        }
        AppsCommand::Show { name } => {
            let app: Value = client.get_admin(&format!("/v1/apps/{}", encode(&name))).await?;
            print_app(&app, json_out);
            Ok(exit::OK)
        }
        AppsCommand::Add { name, image_arg, domain_arg, image, domain, port, kind, secret, env, from_file } => {
            let mut doc = match from_file {
                Some(path) => from_toml(&path)?,
                None => Map::new(),
            };
            set(&mut doc, "app.name", json!(name));
            set_image_and_route(&mut doc, image.or(image_arg), domain.or(domain_arg), port)?;
            if let Some(kind) = kind {
                set(&mut doc, "app.kind", json!(kind));
            }
            if let Some(secret) = secret {
                set(&mut doc, "app.secret", json!(secret));
            }
            for (k, v) in pairs::<Vec<_>>(&env, "--env")? {
                set_in(&mut doc, &["env", &k], json!(v));
            }
            let app: Value = client.post_admin("/v1/apps", &Value::Object(doc)).await?;
            print_app(&app, json_out);
            Ok(exit::OK)
        }
        AppsCommand::Edit { name, image, domain, port, set: sets, unset, env, unset_env } => {
            let mut patch = Map::new();
            set_image_and_route(&mut patch, image, domain, port)?;
            for (path, raw) in pairs::<Vec<_>>(&sets, "--set")? {
                let value = serde_json::from_str(&raw).unwrap_or(Value::String(raw));
                set(&mut patch, &path, value);
            }
            for path in &unset {
                set(&mut patch, path, Value::Null);
            }
            for (k, v) in pairs::<Vec<_>>(&env, "--env")? {
                set_in(&mut patch, &["env", &k], json!(v));
            }
            for k in &unset_env {
                set_in(&mut patch, &["env", k], Value::Null);
            }
            if patch.is_empty() {
                return Err(Failure::new(
                    "nothing to change",
                    Some("pass --image, --domain, --port, --set, --unset, --env or --unset-env".into()),
                    exit::USAGE,
                ));
            }
            let app: Value = client.patch_admin(&format!("/v1/apps/{}", encode(&name)), &Value::Object(patch)).await?;
            print_app(&app, json_out);
            Ok(exit::OK)
        }
        AppsCommand::Rm { name, force, keep_secrets, yes } => {
            if !yes && !confirmed(&name) {
                return Err(Failure::new(
                    format!("not deleting {name}: the typed name did not match"),
                    Some("type the app name exactly, or pass --yes".into()),
                    exit::USAGE,
                ));
            }
            let path = format!("/v1/apps/{}?force={force}&keep_secrets={keep_secrets}", encode(&name));
            let answer: Value = client.delete_admin(&path).await?;
            if json_out {
                println!("{answer}");
            } else {
                println!("deleted {name}");
                for volume in answer["volumes_kept"].as_array().into_iter().flatten() {
                    println!("volume kept: {}", text(volume));
                }
            }
            Ok(exit::OK)
        }
    }
}

/// Prints an app document: JSON, or a summary and the sections.
fn print_app(app: &Value, json_out: bool) {
    if json_out {
        println!("{}", serde_json::to_string_pretty(app).unwrap_or_default());
        return;
    }
    println!("app      {} ({})", text(&app["name"]), text(&app["kind"]));
    println!("image    {}", text(&app["image"]));
    println!("routes   {}", routes(app));
    println!("status   {}", text(&app["state"]["status"]));
    let mut sections = app.as_object().cloned().unwrap_or_default();
    for key in ["name", "image", "domain", "port", "kind", "state"] {
        sections.remove(key);
    }
    println!("{}", serde_json::to_string_pretty(&Value::Object(sections)).unwrap_or_default());
}

/// `host[:port]` of the shorthand route, then the extra routes' hostnames and prefixes.
fn routes(app: &Value) -> String {
    let mut out = Vec::new();
    if let Some(domain) = app["routing"]["domain"].as_str() {
        out.push(domain.to_owned());
    }
    for route in app["routing"]["routes"].as_array().into_iter().flatten() {
        let prefix = route["path_prefix"].as_str().unwrap_or("");
        out.push(format!("{}{prefix}", text(&route["hostname"])));
    }
    if out.is_empty() { "-".into() } else { out.join(", ") }
}

fn text(v: &Value) -> &str {
    v.as_str().unwrap_or("-")
}

/// Sets the `--image` (checked), `--domain` and `--port` flags that were given: `app.image`, `routing.domain`,
/// `routing.port`.
fn set_image_and_route(
    doc: &mut Map<String, Value>,
    image: Option<String>,
    domain: Option<String>,
    port: Option<u16>,
) -> Result<(), Failure> {
    if let Some(image) = image {
        check_image(&image)?;
        set(doc, "app.image", json!(image));
    }
    if let Some(domain) = domain {
        set(doc, "routing.domain", json!(domain));
    }
    if let Some(port) = port {
        set(doc, "routing.port", json!(port));
    }
    Ok(())
}

/// Refuses `repo:tag` and `repo@digest`: the tag comes from the webhook.
fn check_image(image: &str) -> Result<(), Failure> {
    let last = image.rsplit('/').next().unwrap_or(image);
    if last.contains(':') || image.contains('@') {
        return Err(Failure::new(
            format!("--image {image:?} has a tag or digest"),
            Some("give the repository only (e.g. ghcr.io/acme/web): the tag comes from the webhook".into()),
            exit::USAGE,
        ));
    }
    Ok(())
}

/// Sets `a.b.c` in `doc`, creating objects on the way.
fn set(doc: &mut Map<String, Value>, path: &str, value: Value) {
    let parts: Vec<&str> = path.split('.').collect();
    set_in(doc, &parts, value);
}

fn set_in(doc: &mut Map<String, Value>, path: &[&str], value: Value) {
    match path {
        [] => {}
        [last] => {
            doc.insert((*last).to_owned(), value);
        }
        [first, rest @ ..] => {
            let entry = doc.entry((*first).to_owned()).or_insert_with(|| Value::Object(Map::new()));
            if !entry.is_object() {
                *entry = Value::Object(Map::new());
            }
            if let Value::Object(inner) = entry {
                set_in(inner, rest, value);
            }
        }
    }
}

/// A TOML app file as a JSON document.
fn from_toml(path: &std::path::Path) -> Result<Map<String, Value>, Failure> {
    let text = std::fs::read_to_string(path)
        .map_err(|e| Failure::new(format!("cannot read {}: {e}", path.display()), None, exit::USAGE))?;
    let table: toml::Table = toml::from_str(&text)
        .map_err(|e| Failure::new(format!("{} is not valid TOML: {e}", path.display()), None, exit::USAGE))?;
    match serde_json::to_value(table) {
        Ok(Value::Object(map)) => Ok(map),
        _ => Err(Failure::new(format!("{} cannot be sent as JSON", path.display()), None, exit::USAGE)),
    }
}

/// Asks for `name` on stderr and reads one line from stdin.
fn confirmed(name: &str) -> bool {
    eprint!("this deletes {name}'s containers, routes, secrets and state; type the app name to confirm: ");
    let _ = std::io::stderr().flush();
    let mut line = String::new();
    std::io::stdin().lock().read_line(&mut line).is_ok() && line.trim() == name
}

/// `slip rollback <app> [--to]`: `POST /v1/apps/{app}/rollback`, signed with `--secret` when given.
pub async fn rollback(client: &Client, app: &str, to: Option<&str>) -> Result<slip_api::DeployAccepted, Failure> {
    let body = match to {
        Some(to) => serde_json::to_vec(&json!({ "to": to })).unwrap_or_default(),
        None => b"{}".to_vec(),
    };
    client.post_signed(&format!("/v1/apps/{}/rollback", encode(app)), body).await
}
