//! `slipd --check` and config loading at start-up: read the files (`slip_engine::config_source`), parse
//! them (`slip_core::config::parse`) and render SPEC §15's report.
//!
//! `--check` is offline: it never contacts the engine or Caddy; `--check --online` ([`online`]) then asks both once. Problems and
//! warnings are printed as the parser wrote them, so no value from `slip.env` or the environment appears.

use std::path::Path;

use slip_core::config::{Config, Loaded, Problem, Sources, parse};
use slip_core::error_chain::error_chain;
use slip_engine::config_source::{self, ReadError};

/// Loads and validates the config at `path`, or explains every problem in one error (including the filesystem
/// problems of [`config_source::host_problems`], such as an unusable `secrets.key_file`). Warnings (the parser's
/// and the filesystem checks of [`config_source::host_warnings`]) are logged.
pub fn load(path: &Path) -> anyhow::Result<Config> {
    let (config, _, warnings) = load_with_sources(path)?;
    log_warnings(&warnings);
    Ok(config)
}

/// [`load`] for start-up, answering the file texts the config was parsed from (the apps API and reload compare
/// with them) and the warnings `--check` prints, unlogged: slipd logs them with [`log_warnings`] once its log is
/// set up from this config.
pub fn load_with_sources(path: &Path) -> anyhow::Result<(Config, Sources, Vec<String>)> {
    let sources = config_source::read(path)?;
    match parse(&sources) {
        Ok(loaded) => {
            let problems = config_source::host_problems(&loaded.config);
            if !problems.is_empty() {
                anyhow::bail!("configuration at {} is invalid:\n{}", path.display(), render(&problems, ""));
            }
            let warnings = loaded
                .warnings
                .iter()
                .chain(&config_source::host_warnings(&loaded.config))
                .map(ToString::to_string)
                .collect();
            Ok((loaded.config, sources, warnings))
        }
        Err(problems) => {
            anyhow::bail!("configuration at {} is invalid:\n{}", path.display(), render(&problems, ""))
        }
    }
}

/// Logs each config warning as one `warn` event, as `--check` lists them.
pub fn log_warnings(warnings: &[String]) {
    for warning in warnings {
        tracing::warn!(warning = %warning, "config");
    }
}

/// The `--check` report for the config at `path` and the exit code: 0 when valid (warnings allowed),
/// 1 when not.
///
/// Valid: `✓ Configuration is valid (1 app, listening on 127.0.0.1:7890)`, then one `⚠ ` line per warning.
/// Invalid: `✗ Configuration validation failed (N problems)`, then each problem as
/// `file:line:col: message` with an indented `hint:` line where there is one.
pub fn check(path: &Path) -> (String, i32) {
    report(config_source::read(path))
}

fn report(read: Result<Sources, ReadError>) -> (String, i32) {
    let sources = match read {
        Ok(sources) => sources,
        Err(e) => return (format!("✗ Configuration validation failed (1 problem)\n{}\n", error_chain(&e)), 1),
    };
    match parse(&sources) {
        Ok(Loaded { config, mut warnings }) => {
            let problems = config_source::host_problems(&config);
            if !problems.is_empty() {
                return (failed(&problems), 1);
            }
            warnings.extend(config_source::host_warnings(&config));
            let mut out = format!("✓ Configuration is valid ({})\n", config.summary());
            out.push_str(&render(&warnings, "⚠ "));
            (out, 0)
        }
        Err(problems) => (failed(&problems), 1),
    }
}

/// `slipd --check --online`, after the offline check passed: asks the container engine for a ping and Caddy's
/// admin API for its upstreams (a read; nothing is changed), once each, and reports both. Exit code 1 when either
/// does not answer.
pub fn online(path: &Path) -> (String, i32) {
    let config = match load(path) {
        Ok(config) => config,
        Err(e) => return (format!("✗ {e:#}\n"), 1),
    };
    let runtime = match tokio::runtime::Builder::new_current_thread().enable_all().build() {
        Ok(runtime) => runtime,
        Err(e) => return (format!("✗ cannot start the checks: {e}\n"), 1),
    };
    runtime.block_on(async {
        let mut out = String::new();
        let mut code = 0;
        let backend = match config.runtime.backend {
            slip_core::config::Backend::Auto => slip_engine::runtime::Backend::Auto,
            slip_core::config::Backend::Docker => slip_engine::runtime::Backend::Docker,
            slip_core::config::Backend::Podman => slip_engine::runtime::Backend::Podman,
        };
        let engine = slip_engine::runtime::connect(backend, config.runtime.socket.as_deref()).await;
        match engine {
            Ok(rt) => match rt.instances.ping().await {
                Ok(()) => out.push_str(&format!(
                    "✓ container engine answers ({})\n",
                    format!("{:?}", rt.backend).to_lowercase()
                )),
                Err(e) => {
                    code = 1;
                    out.push_str(&format!("✗ container engine: {}\n", error_chain(&e)));
                }
            },
            Err(e) => {
                code = 1;
                out.push_str(&format!("✗ container engine (runtime.backend): {}\n", error_chain(&e)));
            }
        }
        let caddy = match slip_engine::caddy::Client::new(crate::boot::caddy_settings(&config)) {
            Ok(client) => {
                use slip_engine::ports::Proxy;
                client.in_flight("127.0.0.1:1").await.map(drop).map_err(|e| error_chain(&e))
            }
            Err(e) => Err(error_chain(&e)),
        };
        match caddy {
            Ok(()) => out.push_str(&format!("✓ Caddy's admin API answers at {}\n", config.caddy.admin_api)),
            Err(e) => {
                code = 1;
                out.push_str(&format!("✗ Caddy's admin API at {} (caddy.admin_api): {e}\n", config.caddy.admin_api));
            }
        }
        (out, code)
    })
}

fn failed(problems: &[Problem]) -> String {
    let n = problems.len();
    let plural = if n == 1 { "" } else { "s" };
    format!("✗ Configuration validation failed ({n} problem{plural})\n{}", render(problems, ""))
}

fn render(problems: &[Problem], prefix: &str) -> String {
    problems.iter().map(|p| format!("{prefix}{p}\n")).collect()
}

#[cfg(test)]
mod tests {
    use std::fs;
    use std::os::unix::fs::PermissionsExt;

    use super::*;

    fn config_dir(slip_toml: &str, apps: &[(&str, &str)], slip_env: &str) -> tempfile::TempDir {
        let dir = tempfile::tempdir().unwrap();
        fs::write(dir.path().join("slip.toml"), slip_toml).unwrap();
        fs::create_dir(dir.path().join("apps")).unwrap();
        for (name, text) in apps {
            fs::write(dir.path().join("apps").join(format!("{name}.toml")), text).unwrap();
        }
        fs::write(dir.path().join("slip.env"), slip_env).unwrap();
        fs::set_permissions(dir.path().join("slip.env"), fs::Permissions::from_mode(0o600)).unwrap();
        dir
    }

    fn check_in(dir: &Path) -> (String, i32) {
        report(config_source::read_with_env(dir, Vec::new()))
    }

    const README_SLIP_TOML: &str = include_str!("../../slip-core/src/config/testdata/readme/slip.toml");
    const README_MYAPP: &str = include_str!("../../slip-core/src/config/testdata/readme/apps/myapp.toml");

    #[test]
    fn readme_quick_start_checks_as_spec_shows() {
        let dir =
            config_dir(README_SLIP_TOML, &[("myapp", README_MYAPP)], "SLIP_SECRET=0123456789abcdef0123456789abcdef\n");
        // Keep the README's text but point storage at the temporary directory, so that the writability
        // warning for /var/lib/slip/volumes does not depend on who runs the test.
        let storage = dir.path().join("state");
        let slip_toml = README_SLIP_TOML.replace("/var/lib/slip", &storage.display().to_string());
        fs::write(dir.path().join("slip.toml"), slip_toml).unwrap();
        let (out, code) = check_in(dir.path());
        assert_eq!(code, 0);
        assert_eq!(
            out,
            "✓ Configuration is valid (1 app, listening on 127.0.0.1:7890)\n\
             ⚠ slip.toml:8:10: auth.admin_token is unset, so auth.secret (the webhook key CI holds) is also the admin token\n  \
             hint: set a separate auth.admin_token, e.g. from `slip gen-secret`\n"
        );
    }

    #[test]
    fn every_problem_is_listed_and_the_exit_code_is_one() {
        let dir = config_dir(
            "[server]\nlisten = \"0.0.0.0\"\n[auth]\nsecret = \"${SLIP_SECRET}\"\n",
            &[("myapp", "[app]\nname = \"other\"\nimage = \"ghcr.io/you/myapp\"\n")],
            "# no secret yet\n",
        );
        let (out, code) = check_in(dir.path());
        assert_eq!(code, 1);
        assert_eq!(
            out,
            "✗ Configuration validation failed (3 problems)\n\
             apps/myapp.toml:2:8: app.name \"other\" does not match the file name apps/myapp.toml\n  \
             hint: rename the file to apps/other.toml, or set name = \"myapp\"\n\
             slip.toml:2:10: server.listen: \"0.0.0.0\" is not IP:port or localhost:port, e.g. 127.0.0.1:7890 or [::1]:7890\n\
             slip.toml:4:10: auth.secret: variable SLIP_SECRET is not set\n  \
             hint: set SLIP_SECRET in slipd's environment or in slip.env beside slip.toml (KEY=VALUE lines), or give a default: ${SLIP_SECRET:-value}\n"
        );
    }

    #[test]
    fn an_unusable_key_file_is_a_problem_not_a_warning() {
        let dir = config_dir("", &[], "");
        let key = dir.path().join("master.key");
        fs::write(dir.path().join("slip.toml"), format!("[secrets]\nkey_file = \"{}\"\n", key.display())).unwrap();
        let (out, code) = check_in(dir.path());
        assert_eq!(code, 1, "{out}");
        assert!(
            out.starts_with(
                "✗ Configuration validation failed (1 problem)\nslip.toml: cannot read the secrets key file"
            ),
            "{out}"
        );
        assert!(out.contains("hint: create one with slipd --gen-key PATH"), "{out}");
        let err = load(dir.path()).unwrap_err().to_string();
        assert!(err.contains("master.key (secrets.key_file)"), "slipd refuses to start: {err}");

        fs::write(&key, "0123").unwrap();
        let (out, code) = check_in(dir.path());
        assert_eq!(code, 1, "{out}");
        assert!(out.contains("holds 4 bytes; a key is 32 raw bytes or 64 hex characters"), "{out}");

        fs::remove_file(&key).unwrap();
        slip_engine::secrets::MasterKey::create_file(&key).unwrap();
        let (out, code) = check_in(dir.path());
        assert_eq!(code, 0, "{out}");
    }

    #[test]
    fn unreadable_config_is_one_problem() {
        let dir = config_dir("", &[], "");
        fs::set_permissions(dir.path().join("slip.env"), fs::Permissions::from_mode(0o644)).unwrap();
        let (out, code) = check_in(dir.path());
        assert_eq!(code, 1);
        assert!(out.starts_with("✗ Configuration validation failed (1 problem)\n"), "{out}");
        assert!(out.contains("slip.env is readable by every user"), "{out}");
        let (out, code) = check(&dir.path().join("missing"));
        assert_eq!(code, 1);
        assert!(out.contains("does not exist"), "{out}");
    }

    #[test]
    fn no_apps_and_a_public_listener() {
        let dir = config_dir("", &[], "");
        let slip_toml =
            format!("[server]\nlisten = \"0.0.0.0:7890\"\n[storage]\npath = \"{}\"\n", dir.path().display());
        fs::write(dir.path().join("slip.toml"), slip_toml).unwrap();
        let (out, code) = check_in(dir.path());
        assert_eq!(code, 0);
        assert_eq!(
            out,
            "✓ Configuration is valid (0 apps, listening on 0.0.0.0:7890)\n\
             ⚠ slip.toml:2:10: server.listen is not a loopback address: tokens and keys would cross the network in \
             clear text\n  hint: listen on 127.0.0.1 and reach slipd over HTTPS through server.public_domain\n"
        );
    }
}
