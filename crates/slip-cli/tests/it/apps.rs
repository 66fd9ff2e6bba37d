//! `slip apps list|show|add|edit|rm` and `slip rollback` against a real slipd, Docker, Caddy and registry.

use slip_testenv::{ContainerGuard, Image};

use crate::support::{GLOBAL, Setup, app_name, slip, web_app};

#[tokio::test(flavor = "multi_thread")]
async fn apps_add_edit_show_list_and_rm_go_through_the_api_and_the_files() {
    let setup = Setup::new(|_| vec![], "");
    let slipd = setup.start(&[]).await;
    let server = slipd.base();
    let admin = [("SLIP_SERVER", server.as_str()), ("SLIP_TOKEN", GLOBAL)];
    let app = app_name("cli-apps");
    let image = format!("{}/{app}", setup.registry.host());
    let domain = format!("{app}.test");
    let file = setup.config_dir().join("apps").join(format!("{app}.toml"));

    let tagged = format!("{image}:v1");
    let run = slip(&["apps", "add", &app, &tagged, &domain, "--port", "8080"], &admin, None).await;
    assert_eq!(run.code, 2, "an image with a tag is refused: {}", run.all());
    assert!(run.stderr.contains("the tag comes from the webhook"), "{}", run.all());
    assert!(!file.exists());

    let add = ["apps", "add", &app, &image, &domain, "--port", "8080", "--secret", "${NOT_SHOWN}", "--env", "A=1"];
    let run = slip(&add, &[("SLIP_SERVER", server.as_str()), ("SLIP_TOKEN", GLOBAL), ("NOT_SHOWN", "x")], None).await;
    // `${NOT_SHOWN}` must resolve on the server, which has no such variable: the add is refused with the
    // problem, and nothing is written.
    assert_eq!(run.code, 2, "{}", run.all());
    assert!(run.stderr.contains("config_invalid"), "{}", run.all());
    assert!(!file.exists());

    let add =
        ["apps", "add", &app, &image, &domain, "--port", "8080", "--secret", "app-key-0123456789", "--env", "A=1"];
    let run = slip(&add, &admin, None).await;
    assert_eq!(run.code, 0, "{}", run.all());
    assert!(!run.stdout.contains("app-key-0123456789"), "the secret is shown as ***: {}", run.all());
    assert!(std::fs::read_to_string(&file).unwrap().contains(&format!("domain = \"{domain}\"")));

    let run = slip(&["apps", "edit", &app, "--env", "B=2", "--set", "deploy.stop_grace=3s"], &admin, None).await;
    assert_eq!(run.code, 0, "{}", run.all());
    let run = slip(&["apps", "show", &app, "--json"], &admin, None).await;
    assert_eq!(run.code, 0, "{}", run.all());
    let shown: serde_json::Value = serde_json::from_str(&run.stdout).unwrap();
    assert_eq!(shown["env"], serde_json::json!({"A": "1", "B": "2"}), "--env merges into [env]");
    assert_eq!(shown["deploy"]["stop_grace"], "3s");
    assert_eq!(shown["app"]["secret"], "***");

    let run = slip(&["apps", "edit", &app, "--set", "health.interval=soon"], &admin, None).await;
    assert_eq!(run.code, 2, "an invalid edit is a validation error: {}", run.all());

    let run = slip(&["apps", "list"], &admin, None).await;
    assert_eq!(run.code, 0, "{}", run.all());
    assert!(run.stdout.contains(&app) && run.stdout.contains(&domain), "{}", run.all());

    let run = slip(&["apps", "rm", &app], &admin, Some("not-the-name\n")).await;
    assert_eq!(run.code, 2, "{}", run.all());
    assert!(file.exists(), "a wrong name deletes nothing");
    let run = slip(&["apps", "rm", &app], &admin, Some(&format!("{app}\n"))).await;
    assert_eq!(run.code, 0, "{}", run.all());
    assert!(!file.exists());
    let run = slip(&["apps", "show", &app], &admin, None).await;
    assert_eq!(run.code, 7, "{}", run.all());
    assert!(run.stderr.contains("app_not_found"), "{}", run.all());
    slipd.stop().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn rollback_restores_the_previous_release_and_waits_for_it() {
    let app = app_name("cli-rb");
    let a = app.clone();
    let setup = Setup::new(|reg| vec![(a.clone(), web_app(&a, reg))], "");
    let _guard = ContainerGuard::new("slip.app", &app);
    setup.registry.push(&Image::V1, &app, "v1");
    setup.registry.push(&Image::V2, &app, "v2");
    let slipd = setup.start(&[&app]).await;
    let server = slipd.base();
    for tag in ["v1", "v2"] {
        let run = slip(&["deploy", &app, tag, "--server", &server, "--secret", GLOBAL], &[], None).await;
        assert_eq!(run.code, 0, "{}", run.all());
    }
    let run = slip(&["rollback", &app, "--server", &server, "--secret", GLOBAL], &[], None).await;
    assert_eq!(run.code, 0, "{}", run.all());
    assert!(run.stdout.contains("completed"), "{}", run.all());
    let status = slip(&["status", &app, "--json", "--server", &server, "--token", GLOBAL], &[], None).await;
    let status: serde_json::Value = serde_json::from_str(&status.stdout).unwrap();
    assert_eq!(status["status"]["tag"], "v1", "{status}");

    let logs = slip(&["logs", &app, "--tail", "20", "--server", &server, "--token", GLOBAL], &[], None).await;
    assert_eq!(logs.code, 0, "{}", logs.all());
    assert!(logs.stdout.contains("v1"), "the restored release's start line: {}", logs.all());
    slipd.stop().await;
}

/// `slip reload` loads hand edits, and prints every problem of an invalid config with its file and line.
#[tokio::test(flavor = "multi_thread")]
async fn reload_loads_hand_edits_and_names_the_problems_of_invalid_ones() {
    let setup = Setup::new(|_| vec![], "");
    let slipd = setup.start(&[]).await;
    let server = slipd.base();
    let admin = [("SLIP_SERVER", server.as_str()), ("SLIP_TOKEN", GLOBAL)];
    let app = app_name("cli-reload");
    let file = setup.config_dir().join("apps").join(format!("{app}.toml"));

    std::fs::write(&file, web_app(&app, &setup.registry.host())).unwrap();
    let run = slip(&["reload"], &admin, None).await;
    assert_eq!(run.code, 0, "{}", run.all());
    assert!(run.stdout.contains(&format!("config reloaded: added {app}")), "{}", run.all());

    let text = std::fs::read_to_string(&file).unwrap();
    std::fs::write(&file, text.replace("interval = ", "intervall = ")).unwrap();
    let run = slip(&["reload"], &admin, None).await;
    assert_eq!(run.code, 2, "{}", run.all());
    assert!(run.stderr.contains(&format!("apps/{app}.toml:")), "the file and line are named: {}", run.all());
    assert!(run.stderr.contains("intervall"), "{}", run.all());

    let run = slip(&["version", "--json"], &admin, None).await;
    assert_eq!(run.code, 0, "{}", run.all());
    let versions: serde_json::Value = serde_json::from_str(&run.stdout).unwrap();
    assert_eq!(versions["client"], env!("CARGO_PKG_VERSION"));
    assert_eq!(versions["server"], env!("CARGO_PKG_VERSION"), "the server's version with the token");
}
