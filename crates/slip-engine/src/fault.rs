//! Test-only fault injection: makes slipd abort abruptly (as `kill -9` would) at a named point of a deploy,
//! so crash tests can check that reconciliation after a restart converges from every step.
//!
//! Two environment variables, read once at boot by [`install_from_env`], switch it on; both are needed, so a
//! stray variable in a production environment does nothing:
//!
//! - `SLIP_FAULT_INJECTION=1`
//! - `SLIP_FAULT_ABORT_AFTER=<status>` or `<status>:acted`, where `<status>` is a deploy status the driver
//!   records (`pulling`, `configuring`, `starting`, `health_checking`, `switching`, `draining`).
//!   `<status>` aborts right after that status's event is committed to the store and **before** the step acts:
//!   the record says what was about to happen and nothing of it has happened. `<status>:acted` aborts right
//!   after the **first action** of that step has completed and before the next one is recorded, which reaches
//!   the mid-step states (blue-green: routes switched and committed, old release still running; recreate:
//!   routes held on the candidate's port while the old release still runs, or the switch committed with the
//!   old container not yet removed).
//!   For `switching`, `switching:acted` is after the routes moved and before the store recorded it, and
//!   `switching:committed` right after the store recorded the switch.
//! - `SLIP_FAULT_ABORT_TAG=<tag>` (optional): only deploys of this tag abort, so a test can deploy a first
//!   release with the fault armed and crash the second.
//!
//! The abort is `std::process::abort()`: no destructors, no graceful shutdown, no flush beyond what SQLite
//! already fsynced. When armed, slipd logs an error-level line at boot saying so.
//!
//! This module does not decide anything about deploys and is never armed unless both variables are set.

use std::sync::OnceLock;

/// The variable that must be `1` for any fault to be armed.
pub const ENABLE_VAR: &str = "SLIP_FAULT_INJECTION";
/// The variable naming where to abort.
pub const ABORT_AFTER_VAR: &str = "SLIP_FAULT_ABORT_AFTER";
/// The optional variable restricting the abort to one tag.
pub const ABORT_TAG_VAR: &str = "SLIP_FAULT_ABORT_TAG";

/// The statuses the driver records, in the spelling `SLIP_FAULT_ABORT_AFTER` accepts.
pub const STATUSES: &[&str] = &["pulling", "configuring", "starting", "health_checking", "switching", "draining"];

/// Where an armed fault aborts.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Fault {
    /// The deploy status, e.g. `health_checking`.
    pub status: String,
    /// After the status is recorded, or after its first action completed.
    pub point: Point,
    /// Only deploys of this tag, when set.
    pub tag: Option<String>,
}

/// When, relative to a step, an armed fault aborts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Point {
    /// Right after the step's status event is committed, before it acts.
    Recorded,
    /// Right after the step's first action completed.
    Acted,
    /// Right after the switch was committed to the store (only for `switching`).
    Committed,
}

/// Why the fault variables were refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum FaultError {
    /// `SLIP_FAULT_ABORT_AFTER` names no recorded status.
    #[error(
        "{ABORT_AFTER_VAR}={value:?} is not valid: use one of pulling, configuring, starting, health_checking, \
         switching, draining, optionally followed by :acted (or switching:committed)"
    )]
    UnknownStatus {
        /// The rejected value.
        value: String,
    },
    /// `SLIP_FAULT_ABORT_AFTER` is set without `SLIP_FAULT_INJECTION=1`.
    #[error("{ABORT_AFTER_VAR} is set but {ENABLE_VAR} is not 1; set both to arm fault injection (tests only)")]
    NotEnabled,
}

static ARMED: OnceLock<Option<Fault>> = OnceLock::new();

/// Parses the fault variables from `get` (an environment lookup). `Ok(None)` when nothing is asked for.
pub fn parse(get: impl Fn(&str) -> Option<String>) -> Result<Option<Fault>, FaultError> {
    let Some(value) = get(ABORT_AFTER_VAR).filter(|v| !v.is_empty()) else {
        return Ok(None);
    };
    if get(ENABLE_VAR).as_deref() != Some("1") {
        return Err(FaultError::NotEnabled);
    }
    let (status, point) = match value.split_once(':') {
        None => (value.as_str(), Point::Recorded),
        Some((status, "acted")) => (status, Point::Acted),
        Some(("switching", "committed")) => ("switching", Point::Committed),
        Some(_) => return Err(FaultError::UnknownStatus { value: value.clone() }),
    };
    if !STATUSES.contains(&status) {
        return Err(FaultError::UnknownStatus { value: value.clone() });
    }
    let tag = get(ABORT_TAG_VAR).filter(|t| !t.is_empty());
    Ok(Some(Fault { status: status.to_owned(), point, tag }))
}

/// Reads the fault variables from the process environment and arms the fault for the rest of the process's
/// life. The first call decides; later calls return what the first armed. Call once at boot.
pub fn install_from_env() -> Result<Option<Fault>, FaultError> {
    if let Some(armed) = ARMED.get() {
        return Ok(armed.clone());
    }
    let fault = parse(|name| std::env::var(name).ok())?;
    Ok(ARMED.get_or_init(|| fault).clone())
}

/// The armed fault, if any.
pub fn armed() -> Option<&'static Fault> {
    ARMED.get().and_then(Option::as_ref)
}

/// Called by the driver right after `status` was committed for a deploy of `tag`; aborts when armed for it.
pub fn after_recorded(status: &str, tag: &str) {
    check(status, tag, Point::Recorded);
}

/// Called by the driver after an action of the step `status` completed; aborts when armed for it.
pub fn after_acted(status: &str, tag: &str) {
    check(status, tag, Point::Acted);
}

/// Called by the driver right after the switch of a deploy of `tag` was committed; aborts when armed for it.
pub fn after_committed(tag: &str) {
    check("switching", tag, Point::Committed);
}

fn check(status: &str, tag: &str, point: Point) {
    if let Some(fault) = armed()
        && fault.point == point
        && fault.status == status
        && fault.tag.as_deref().is_none_or(|t| t == tag)
    {
        tracing::error!(status, ?point, tag, "fault injection: aborting slipd now");
        eprintln!("slipd: fault injection: aborting after {status} ({point:?}) of tag {tag}");
        std::process::abort();
    }
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;

    use super::*;

    fn env(pairs: &[(&str, &str)]) -> impl Fn(&str) -> Option<String> {
        let map: HashMap<String, String> = pairs.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect();
        move |name| map.get(name).cloned()
    }

    #[test]
    fn nothing_is_armed_without_the_abort_variable() {
        assert_eq!(parse(env(&[(ENABLE_VAR, "1")])), Ok(None));
        assert_eq!(parse(env(&[])), Ok(None));
    }

    #[test]
    fn the_abort_variable_alone_is_refused() {
        assert_eq!(parse(env(&[(ABORT_AFTER_VAR, "starting")])), Err(FaultError::NotEnabled));
        assert_eq!(parse(env(&[(ABORT_AFTER_VAR, "starting"), (ENABLE_VAR, "yes")])), Err(FaultError::NotEnabled));
    }

    #[test]
    fn statuses_points_and_tags_parse() {
        let fault = parse(env(&[(ENABLE_VAR, "1"), (ABORT_AFTER_VAR, "health_checking")])).unwrap().unwrap();
        assert_eq!(fault, Fault { status: "health_checking".into(), point: Point::Recorded, tag: None });
        let fault = parse(env(&[(ENABLE_VAR, "1"), (ABORT_AFTER_VAR, "switching:acted"), (ABORT_TAG_VAR, "v2")]))
            .unwrap()
            .unwrap();
        assert_eq!(fault, Fault { status: "switching".into(), point: Point::Acted, tag: Some("v2".into()) });
    }

    #[test]
    fn unknown_statuses_and_points_are_refused_with_the_valid_ones() {
        let fault = parse(env(&[(ENABLE_VAR, "1"), (ABORT_AFTER_VAR, "switching:committed")])).unwrap().unwrap();
        assert_eq!(fault.point, Point::Committed);
        for bad in ["completed", "switching:before", "queued", "Pulling", "draining:committed"] {
            let err = parse(env(&[(ENABLE_VAR, "1"), (ABORT_AFTER_VAR, bad)])).unwrap_err();
            assert!(err.to_string().contains("health_checking"), "{err}");
        }
    }
}
