//! `slip deploy --preview`, `slip previews list` and `slip previews teardown` against a real slipd, Docker, Caddy and
//! registry (SPEC §15): the preview URL is printed, the preview is listed, torn down with the app key, and kept out of
//! `slip history` unless `--previews`.

use slip_testenv::Image;

use crate::support::{GLOBAL, Setup, app_name, slip, web_app};

#[tokio::test(flavor = "multi_thread")]
async fn a_preview_is_deployed_listed_and_torn_down_from_the_cli() {
    let app = app_name("cli-pv");
    let a = app.clone();
    let domain = format!("{app}.pv.test");
    let setup = Setup::new(|reg| vec![(a.clone(), web_app(&a, reg))], &format!("\n[preview]\ndomain = \"{domain}\"\n"));
    let image = Image::release("pv1").with_file("/slip/slip.toml", "[preview]\nenabled = true\n");
    setup.registry.push(&image, &app, "pv1");
    let slipd = setup.start(&[&app]).await;
    let server = slipd.base();
    let signed = [("SLIP_SERVER", server.as_str()), ("SLIP_SECRET", GLOBAL)];

    let run = slip(&["deploy", &app, "pv1", "--preview", "pr-5", "--ttl", "1h"], &signed, None).await;
    assert_eq!(run.code, 0, "{}", run.all());
    let url = format!("http://pr-5.{domain}");
    assert!(run.stdout.lines().any(|l| l == format!("preview: {url}")), "{}", run.all());
    assert!(run.stdout.lines().last().unwrap().starts_with("✓ completed in "), "{}", run.all());

    let list = slip(&["previews", "list", &app], &signed, None).await;
    assert_eq!(list.code, 0, "{}", list.all());
    let row = list.stdout.lines().find(|l| l.contains("pr-5")).unwrap_or_else(|| panic!("{}", list.all()));
    let cells: Vec<&str> = row.split('\t').collect();
    assert_eq!(
        (cells[0], cells[1], cells[2], cells[3], cells[6]),
        (app.as_str(), "pr-5", "running", "pv1", url.as_str())
    );
    assert!(cells[5].starts_with("in ") && cells[5].ends_with('m'), "expires within the hour: {row}");

    let admin = [("SLIP_SERVER", server.as_str()), ("SLIP_TOKEN", GLOBAL)];
    let history = slip(&["history", &app], &admin, None).await;
    assert!(!history.stdout.contains("pv1"), "production history only: {}", history.all());
    let with_previews = slip(&["history", &app, "--previews"], &admin, None).await;
    assert!(with_previews.stdout.contains("pv1"), "{}", with_previews.all());

    let teardown = slip(&["previews", "teardown", &app, "pr-5"], &signed, None).await;
    assert_eq!(teardown.code, 0, "{}", teardown.all());
    assert_eq!(teardown.stdout.trim(), format!("preview pr-5 of {app} torn down"));
    let again = slip(&["previews", "teardown", &app, "pr-5"], &signed, None).await;
    assert!(again.stdout.contains("was not live"), "idempotent: {}", again.all());
    let list = slip(&["previews", "list", &app, "--json"], &signed, None).await;
    let previews: serde_json::Value = serde_json::from_str(&list.stdout).unwrap();
    assert_eq!(previews[0]["status"], "torn_down", "{previews}");
    let containers = std::process::Command::new("docker")
        .args(["ps", "-aq", "--filter", "label=slip.preview=pr-5", "--filter", &format!("label=slip.app={app}")])
        .output()
        .unwrap();
    assert!(containers.stdout.is_empty(), "no container of the preview is left");
}
