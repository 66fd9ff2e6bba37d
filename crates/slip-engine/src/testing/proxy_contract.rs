//! The contract every [`Proxy`] honours, as one function that runs against [`FakeProxy`](super::FakeProxy) and
//! against the Caddy adapter on each Caddy version the suite has, so the fake the driver's unit tests use cannot
//! drift from Caddy.
//!
//! The contract speaks only the trait, plus a [`Routed`] view of where a hostname's requests go: for the fake,
//! the block it keeps; for Caddy, a real request through it to upstream servers that answer with their address.

use std::time::Duration;

use async_trait::async_trait;

use crate::ports::{Applied, DrainRef, Proxy, RouteBlock, RouteSpec};

/// Where the proxy sends requests, as seen from outside.
#[async_trait]
pub trait Routed: Send + Sync {
    /// The upstream address (`127.0.0.1:<port>`) that a request for `host` reaches, or `None` when no route of
    /// slip's matches it.
    async fn reaches(&self, host: &str) -> Option<String>;
}

/// Checks `proxy` with two upstream addresses that `routed` can tell apart. Leaves slip's block empty when it
/// passes.
pub async fn proxy_contract(proxy: &dyn Proxy, routed: &dyn Routed, a: &str, b: &str) {
    // Bootstrap is idempotent, and nothing of slip's routes anything yet.
    proxy.ensure_server().await.expect("ensure_server");
    proxy.ensure_server().await.expect("a second ensure_server");
    assert_eq!(routed.reaches("web.test").await, None, "nothing is routed before the first apply");
    assert_eq!(proxy.in_flight(a).await.expect("in_flight"), None, "an upstream no route names is not listed");

    // A first block is written and serves; applying it again writes nothing.
    let first = block(vec![route("web", "web.test", a)], vec![]);
    assert_eq!(proxy.apply(&first).await.expect("apply"), Applied::Written);
    assert_eq!(routed.reaches("web.test").await.as_deref(), Some(a));
    assert_eq!(routed.reaches("other.test").await, None, "only the block's hostnames are routed");
    assert_eq!(proxy.apply(&first).await.expect("apply"), Applied::Unchanged, "the same block writes nothing");
    assert_eq!(proxy.in_flight(a).await.expect("in_flight"), Some(0), "a routed upstream is listed, idle");

    // A switch with a drain reference: traffic moves, and the old upstream stays listed while it drains.
    let switched = block(vec![route("web", "web.test", b)], vec![drain("web", a)]);
    assert_eq!(proxy.apply(&switched).await.expect("apply"), Applied::Written);
    assert_eq!(routed.reaches("web.test").await.as_deref(), Some(b));
    assert_eq!(proxy.in_flight(a).await.expect("in_flight"), Some(0), "a draining upstream stays listed");
    assert_eq!(proxy.in_flight(b).await.expect("in_flight"), Some(0));

    // A drain reference that is no longer wanted is no reason to write by itself (every write reloads Caddy).
    let drained = block(vec![route("web", "web.test", b)], vec![]);
    assert_eq!(proxy.apply(&drained).await.expect("apply"), Applied::Unchanged, "a stale drain alone is not written");

    // Several apps and hostnames in one block; order in the block does not matter.
    let two = block(vec![route("api", "api.test", a), route("web", "web.test", b)], vec![]);
    assert_eq!(proxy.apply(&two).await.expect("apply"), Applied::Written);
    assert_eq!(routed.reaches("api.test").await.as_deref(), Some(a));
    assert_eq!(routed.reaches("web.test").await.as_deref(), Some(b));
    let reordered = block(vec![route("web", "web.test", b), route("api", "api.test", a)], vec![]);
    assert_eq!(proxy.apply(&reordered).await.expect("apply"), Applied::Unchanged, "the order of routes is not state");

    // The empty block removes every route of slip's; upstreams no longer named are no longer listed.
    assert_eq!(proxy.apply(&RouteBlock::default()).await.expect("apply"), Applied::Written);
    assert_eq!(routed.reaches("web.test").await, None);
    assert_eq!(routed.reaches("api.test").await, None);
    assert_eq!(proxy.in_flight(a).await.expect("in_flight"), None, "a removed upstream is not listed");
    assert_eq!(proxy.apply(&RouteBlock::default()).await.expect("apply"), Applied::Unchanged);
}

/// Route 0 of `app`: every path of `hostname` to `upstream`, held for up to 5 s.
pub fn route(app: &str, hostname: &str, upstream: &str) -> RouteSpec {
    RouteSpec {
        id: format!("slip-{app}"),
        hostname: hostname.to_owned(),
        path_prefix: None,
        strip_prefix: false,
        upstream: upstream.to_owned(),
        hold_timeout: Duration::from_secs(5),
    }
}

/// The drain reference of `app` for `upstream`.
pub fn drain(app: &str, upstream: &str) -> DrainRef {
    DrainRef { id: format!("{}{app}", crate::caddy::render::DRAIN_ID_PREFIX), upstream: upstream.to_owned() }
}

fn block(routes: Vec<RouteSpec>, drains: Vec<DrainRef>) -> RouteBlock {
    RouteBlock { routes, drains }
}
