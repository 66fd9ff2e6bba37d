//! What a new user meets around the core, against a real slipd, Docker, Caddy and registry: which key or token
//! a refusal wanted, one wording for a missing app, a rollback that names its release and refuses the running
//! one, the old release that ignored SIGTERM, an empty log, short container ids, and Caddy's reason in status.

use std::time::{Duration, Instant};

use slip_testenv::Image;

use crate::support::{GLOBAL, Setup, app_name, captured_logs, slip, web_app};

#[tokio::test(flavor = "multi_thread")]
async fn refusals_and_outputs_say_what_was_wanted_and_what_happened() {
    let app = app_name("everyday");
    let a = app.clone();
    let setup = Setup::new(|reg| vec![(a.clone(), web_app(&a, reg))], "");
    setup.registry.push(&Image::V1, &app, "v1");
    setup.registry.push(&Image::V2, &app, "v2");
    let slipd = setup.start(&[&app]).await;
    let server = slipd.base();
    let anonymous = [("SLIP_SERVER", server.as_str())];
    let admin = [("SLIP_SERVER", server.as_str()), ("SLIP_TOKEN", GLOBAL)];

    // Without the admin token, status says what it cannot show and where the token is.
    let run = slip(&["status"], &anonymous, None).await;
    assert_eq!(run.code, 0, "{}", run.all());
    assert!(run.stdout.starts_with("slipd · up ") && !run.stdout.contains('?'), "{}", run.all());
    assert!(!run.stdout.contains("APP"), "no empty table: {}", run.all());
    assert!(run.stderr.contains("apps are shown to the admin only"), "{}", run.all());
    assert!(run.stderr.contains("SLIP_TOKEN") && run.stderr.contains("/etc/slip/slip.env"), "{}", run.all());

    // One wording for a missing app, whichever command meets it, and a hint that does not repeat it.
    let missing = "no app \"nosuch\" in the server config (apps/nosuch.toml)";
    for args in [&["status", "nosuch"][..], &["secrets", "list", "nosuch"], &["rollback", "nosuch"]] {
        let run = slip(args, &admin, None).await;
        assert_eq!(run.code, 7, "{args:?}: {}", run.all());
        assert!(run.stderr.contains(missing), "{args:?}: {}", run.all());
        let hint = run.stderr.lines().find(|l| l.starts_with("hint: ")).unwrap_or_default();
        assert!(!hint.contains("apps/nosuch.toml") && !hint.contains("apps/<name>.toml"), "{args:?}: {hint}");
    }

    // A first release, then an empty log is said to be empty, and the container id is Docker's short form.
    let run = slip(&["deploy", &app, "v1", "--secret", GLOBAL], &anonymous, None).await;
    assert_eq!(run.code, 0, "{}", run.all());
    // (The release prints two lines as it starts; `--tail 0` asks for none of them.)
    let run = slip(&["logs", &app, "--tail", "0"], &admin, None).await;
    assert_eq!((run.code, run.stdout.as_str()), (0, ""), "{}", run.all());
    assert!(run.stderr.contains(&format!("(no log lines yet for {app})")), "{}", run.all());
    let run = slip(&["status", &app], &admin, None).await;
    let container = run.stdout.lines().find_map(|l| l.strip_prefix("container  ")).unwrap_or_default();
    let id = container.split(' ').next().unwrap_or_default();
    assert!(id.len() == 12 && id.bytes().all(|b| b.is_ascii_hexdigit()), "{}", run.all());

    // The README's placeholder key is short: warned as --check warns a short auth.secret.
    let run = slip(&["secrets", "set", &app, "SLIP_SECRET=your-hmac-secret"], &admin, None).await;
    assert_eq!(run.code, 0, "{}", run.all());
    assert!(run.stderr.contains(&format!("warning: {app}/SLIP_SECRET is shorter than 32 characters")), "{}", run.all());
    let logged = captured_logs();
    assert!(
        logged.lines().any(|l| l.contains("webhook key is shorter than 32 characters") && l.contains(&app)),
        "slipd warns too, for any client of its API"
    );
    let app_key = "everyday-app-key-0123456789abcdef0123";
    let pair = format!("SLIP_SECRET={app_key}");
    assert_eq!(slip(&["secrets", "set", &app, &pair], &admin, None).await.code, 0);

    // The global key no longer signs for the app: the hint names the key that was wanted and where it is.
    let run = slip(&["deploy", &app, "v2", "--secret", GLOBAL], &anonymous, None).await;
    assert_eq!(run.code, 4, "{}", run.all());
    assert!(run.stderr.contains("this endpoint wants the app's key: its own SLIP_SECRET secret"), "{}", run.all());
    let run = slip(&["secrets", "list", &app, "--token", "not-the-token"], &anonymous, None).await;
    assert_eq!(run.code, 4, "{}", run.all());
    assert!(run.stderr.contains("this endpoint wants the admin token"), "{}", run.all());
    assert!(!run.stderr.contains("app's key"), "{}", run.all());

    // A release that is busybox httpd as PID 1 ignores SIGTERM: the deploy that replaces it says so, and what to
    // do about it.
    push_plain_httpd(&setup, &app, "plain");
    let run = slip(&["deploy", &app, "plain", "--secret", app_key], &anonymous, None).await;
    assert_eq!(run.code, 0, "{}", run.all());
    assert!(!run.stdout.contains("ignored SIGTERM"), "the test image's v1 stops on SIGTERM: {}", run.all());
    let run = slip(&["deploy", &app, "v2", "--secret", app_key], &anonymous, None).await;
    assert_eq!(run.code, 0, "{}", run.all());
    assert!(
        run.stdout.contains("⚠ old release ignored SIGTERM; killed after 2s (deploy.stop_grace)")
            && run.stdout.contains("set app.init = true"),
        "{}",
        run.all()
    );

    // A rollback names the release it restores; one to the running release is refused and deploys nothing.
    let run = slip(&["rollback", &app], &admin, None).await;
    assert_eq!(run.code, 0, "{}", run.all());
    assert!(run.stdout.lines().next().unwrap_or_default().contains(" to release plain "), "{}", run.all());
    let run = slip(&["rollback", &app, "--to", "plain"], &admin, None).await;
    assert_eq!(run.code, 7, "{}", run.all());
    assert!(run.stderr.contains(&format!("app {app} already runs release plain")), "{}", run.all());
    assert!(run.stderr.contains("already_current"), "{}", run.all());
    let history = slip(&["history", &app, "--json"], &admin, None).await;
    let list: serde_json::Value = serde_json::from_str(&history.stdout).unwrap();
    assert_eq!(list["deploys"].as_array().unwrap().len(), 4, "{}", history.all());
    slipd.stop().await;
}

/// Builds busybox httpd as PID 1 (no shell, no signal handler: the common image that ignores SIGTERM), pushes it
/// as `<registry>/<app>:<tag>` and removes the local tag again.
fn push_plain_httpd(setup: &Setup, app: &str, tag: &str) {
    let dir = tempfile::tempdir().unwrap();
    std::fs::copy(slip_testenv::image::BUSYBOX, dir.path().join("busybox")).unwrap();
    std::fs::create_dir(dir.path().join("www")).unwrap();
    std::fs::write(dir.path().join("www/health"), "ok\n").unwrap();
    std::fs::write(
        dir.path().join("Dockerfile"),
        "FROM scratch\nCOPY busybox /bin/busybox\nCOPY www /www\n\
         ENTRYPOINT [\"/bin/busybox\",\"httpd\",\"-f\",\"-p\",\"8080\",\"-h\",\"/www\"]\n",
    )
    .unwrap();
    let reference = format!("{}/{app}:{tag}", setup.registry.host());
    let docker = |args: &[&str]| {
        let out = std::process::Command::new("docker").args(args).output().unwrap();
        assert!(out.status.success(), "docker {args:?}: {}", String::from_utf8_lossy(&out.stderr));
    };
    docker(&["build", "-q", "-t", &reference, dir.path().to_str().unwrap()]);
    docker(&["push", &reference]);
    docker(&["image", "rm", &reference]);
}

#[tokio::test(flavor = "multi_thread")]
async fn a_caddy_listener_in_use_is_named_in_status() {
    let setup = Setup::new(|_| vec![], "");
    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = taken.local_addr().unwrap().port();
    let toml = setup.config_dir().join("slip.toml");
    let text = std::fs::read_to_string(&toml).unwrap();
    let listen = format!("listen = [\"127.0.0.1:{}\"]", setup.caddy.http_port());
    assert!(text.contains(&listen), "{text}");
    std::fs::write(&toml, text.replace(&listen, &format!("listen = [\"127.0.0.1:{port}\"]"))).unwrap();
    let slipd = setup.start(&[]).await;
    let admin = [("SLIP_SERVER", slipd.base()), ("SLIP_TOKEN", GLOBAL.to_owned())];
    let admin: Vec<(&str, &str)> = admin.iter().map(|(k, v)| (*k, v.as_str())).collect();

    let reason = format!(
        "caddy: Caddy listener 127.0.0.1:{port} is already in use by another process. Stop that process or change \
         caddy.listen."
    );
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let run = slip(&["status"], &admin, None).await;
        assert_eq!(run.code, 0, "{}", run.all());
        if run.stdout.contains(" · caddy error · ") && run.stdout.contains(&reason) {
            break;
        }
        assert!(Instant::now() < deadline, "status never showed the reason: {}", run.all());
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let json = slip(&["status", "--json"], &admin, None).await;
    let status: serde_json::Value = serde_json::from_str(&json.stdout).unwrap();
    assert!(status["caddy_error"].as_str().unwrap_or_default().contains(&format!("127.0.0.1:{port}")), "{status}");
    drop(taken);
    slipd.stop().await;
}
