//! Config problems on the wire: the `problems` list and the 400 `config_invalid` answer that the apps API and the
//! reload endpoint share.

use axum::Json;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde_json::json;
use slip_api::ConfigProblem;
use slip_core::config::Problem;

/// Each problem as the API shows it.
pub(crate) fn wire(problems: &[Problem]) -> Vec<ConfigProblem> {
    problems
        .iter()
        .map(|p| ConfigProblem {
            file: p.file.display().to_string(),
            line: p.line.map(|l| l as u64),
            column: p.column.map(|c| c as u64),
            message: p.message.clone(),
            hint: p.hint.clone(),
        })
        .collect()
}

/// 400 `config_invalid` with every problem; `error` reads "`what` is invalid (N problems)`after`".
pub(crate) fn config_invalid(what: &str, problems: &[Problem], after: &str) -> Response {
    let n = problems.len();
    let body = json!({
        "error": format!("{what} is invalid ({n} problem{}){after}", if n == 1 { "" } else { "s" }),
        "code": "config_invalid",
        "problems": wire(problems),
    });
    (StatusCode::BAD_REQUEST, Json(body)).into_response()
}
