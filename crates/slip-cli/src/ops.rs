//! `slip cancel`, `slip redeploy` and `slip audit` (SPEC §15): thin calls of `POST /v1/deploys/{id}/cancel`,
//! `POST /v1/apps/{app}/redeploy` and `GET /v1/audit`.

use serde_json::Value;
use slip_api::DeployAccepted;

use crate::client::{Client, Failure, encode, exit};
use crate::table::{Table, truncate};

/// `slip cancel <deploy-id>`: signed with `--secret` when given, else the admin token. Prints what slipd did; a
/// running deploy is then followed by `slip watch`.
pub async fn cancel(client: &Client, id: &str, json: bool) -> Result<u8, Failure> {
    let answer: Value = client.post_signed(&format!("/v1/deploys/{}/cancel", encode(id)), Vec::new()).await?;
    if json {
        println!("{answer}");
        return Ok(exit::OK);
    }
    match answer["status"].as_str() {
        Some("failed") => println!("{id} cancelled before it started"),
        Some(status) => println!("{id} was {status}; it stops at its next step (follow it: slip watch {id})"),
        None => println!("{answer}"),
    }
    Ok(exit::OK)
}

/// `POST /v1/apps/{app}/redeploy` with the admin token.
pub async fn redeploy(client: &Client, app: &str) -> Result<DeployAccepted, Failure> {
    client.post_admin(&format!("/v1/apps/{}/redeploy", encode(app)), &serde_json::json!({})).await
}

/// `slip audit [--limit N] [--verify]`: the newest entries as a table; with `--verify`, the chain's verdict,
/// and exit 1 when it is broken.
pub async fn audit(client: &Client, limit: u32, verify: bool, json: bool) -> Result<u8, Failure> {
    let answer: Value = client.get_admin(&format!("/v1/audit?limit={limit}&verify={verify}")).await?;
    let broken = answer["verify"]["intact"] == Value::Bool(false);
    if json {
        println!("{answer}");
    } else {
        let mut table = Table::new(&["ID", "AT", "ACTOR", "ACTION", "TARGET", "DETAIL"]);
        for e in answer["entries"].as_array().into_iter().flatten() {
            let text = |k: &str| e[k].as_str().unwrap_or("-").to_owned();
            table.row(vec![
                e["id"].to_string(),
                text("at"),
                truncate(&text("actor"), 24),
                text("action"),
                truncate(&text("target"), 30),
                truncate(&text("detail"), 60),
            ]);
        }
        table.print();
        if verify {
            match (&answer["verify"]["entries"], &answer["verify"]["broken_at"]) {
                (_, Value::Number(id)) => {
                    println!("✗ audit chain broken at entry {id}: it, or an entry before it, was changed or removed")
                }
                (Value::Number(n), _) => println!("✓ audit chain intact ({n} entries)"),
                _ => println!("? the server gave no verdict"),
            }
        }
    }
    Ok(if broken { exit::DEPLOY_FAILED } else { exit::OK })
}
