//! The load generator against real sockets: a scripted HTTP/1.1 server on loopback decides, for each
//! connection and each request on it, whether to answer, close or answer in part, and the tests check
//! that the clients tell keep-alive races apart from other failures and reuse their connections.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use slip_bench::client::Target;
use slip_bench::report::Counts;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

/// What the server does with one request.
#[derive(Debug, Clone, Copy)]
enum Reply {
    /// A complete keep-alive answer with this status and the body `hello`.
    Answer(u16),
    /// A complete keep-alive 200 with this body (empty, as Caddy answers a host it has no route for).
    Body(&'static str),
    /// A complete answer, then the server closes the connection without saying so in a header.
    AnswerThenClose,
    /// Reads the request and closes without a byte.
    Close,
    /// Half an answer, then close.
    Partial,
}

/// A server on a free loopback port; `script(connection, request)` (both 0-based) picks each reply.
/// Returns the address and a counter of accepted connections.
async fn server(script: fn(usize, usize) -> Reply) -> (String, Arc<AtomicUsize>) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap().to_string();
    let accepted = Arc::new(AtomicUsize::new(0));
    let counter = accepted.clone();
    tokio::spawn(async move {
        loop {
            let (socket, _) = listener.accept().await.unwrap();
            let connection = counter.fetch_add(1, Ordering::SeqCst);
            tokio::spawn(serve(socket, connection, script));
        }
    });
    (addr, accepted)
}

async fn serve(mut socket: TcpStream, connection: usize, script: fn(usize, usize) -> Reply) {
    for request in 0.. {
        if !read_head(&mut socket).await {
            return;
        }
        let answer = |status: u16, body: &str| {
            format!("HTTP/1.1 {status} X\r\nContent-Length: {}\r\nConnection: keep-alive\r\n\r\n{body}", body.len())
        };
        match script(connection, request) {
            Reply::Answer(status) => socket.write_all(answer(status, "hello").as_bytes()).await.unwrap(),
            Reply::Body(body) => socket.write_all(answer(200, body).as_bytes()).await.unwrap(),
            Reply::AnswerThenClose => {
                socket.write_all(answer(200, "hello").as_bytes()).await.unwrap();
                return;
            }
            Reply::Close => return,
            Reply::Partial => {
                let _ = socket.write_all(b"HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\nab").await;
                return;
            }
        }
    }
}

/// Reads one request head; false at end of stream.
async fn read_head(socket: &mut TcpStream) -> bool {
    let mut head = Vec::new();
    let mut byte = [0u8; 1];
    while !head.ends_with(b"\r\n\r\n") {
        match socket.read(&mut byte).await {
            Ok(1) => head.push(byte[0]),
            _ => return false,
        }
    }
    assert!(head.starts_with(b"GET /probe HTTP/1.1\r\n"), "{}", String::from_utf8_lossy(&head));
    assert!(String::from_utf8_lossy(&head).to_lowercase().contains("host: app.test\r\n"));
    true
}

/// Runs `clients` clients for `requests` requests each against the server and returns the totals.
async fn load(addr: &str, clients: usize, requests: u64, pause: Duration) -> (Counts, Vec<String>) {
    let (counts, messages, _) = load_bodies(addr, clients, requests, pause).await;
    (counts, messages)
}

/// Like [`load`], also returning how often each known body answered.
async fn load_bodies(
    addr: &str,
    clients: usize,
    requests: u64,
    pause: Duration,
) -> (Counts, Vec<String>, std::collections::BTreeMap<String, u64>) {
    let target =
        Target::new(&format!("http://{addr}/probe"), "app.test", Duration::from_secs(5), pause, ["hello"]).unwrap();
    let (_tx, stop) = tokio::sync::watch::channel(false);
    let result = slip_bench::run(target, clients, stop, Some(requests)).await;
    (result.timeline.total(), result.messages.keys().cloned().collect(), result.bodies)
}

#[tokio::test]
async fn keep_alive_answers_are_successes_on_one_connection_per_client() {
    let (addr, accepted) = server(|_, _| Reply::Answer(200)).await;
    let (counts, messages) = load(&addr, 2, 20, Duration::ZERO).await;
    assert_eq!(counts, Counts { requests: 40, ok: 40, ..Counts::default() }, "{messages:?}");
    assert_eq!(accepted.load(Ordering::SeqCst), 2, "each client reuses its connection");
}

#[tokio::test]
async fn reused_connection_closed_before_any_answer_byte_is_a_race_the_retry_recovers() {
    let (addr, accepted) = server(|_, request| if request == 0 { Reply::Answer(200) } else { Reply::Close }).await;
    let (counts, messages) = load(&addr, 1, 5, Duration::ZERO).await;
    assert_eq!(counts, Counts { requests: 5, ok: 1, races: 4, races_recovered: 4, ..Counts::default() });
    assert_eq!((counts.strict_failures(), counts.lenient_failures()), (4, 0));
    assert_eq!(accepted.load(Ordering::SeqCst), 5, "every race retries on a new connection");
    assert!(messages.iter().all(|m| m.starts_with("race: ")), "{messages:?}");
}

#[tokio::test]
async fn a_race_whose_retry_also_fails_is_a_lenient_failure() {
    let (addr, _) = server(|connection, request| match (connection, request) {
        (0, 0) => Reply::Answer(200),
        _ => Reply::Close,
    })
    .await;
    let (counts, _) = load(&addr, 1, 2, Duration::ZERO).await;
    // Request 2 races on connection 0 and its retry on connection 1 fails; its own error is not a
    // second sample. Nothing after it reuses a connection, so no more races.
    assert_eq!(counts, Counts { requests: 2, ok: 1, races: 1, races_recovered: 0, ..Counts::default() });
    assert_eq!(counts.lenient_failures(), 1);
}

#[tokio::test]
async fn a_new_connection_closed_without_an_answer_is_an_error_not_a_race() {
    let (addr, _) = server(|_, _| Reply::Close).await;
    let (counts, messages) = load(&addr, 1, 3, Duration::ZERO).await;
    assert_eq!(counts, Counts { requests: 3, errors: 3, ..Counts::default() });
    assert!(messages.iter().all(|m| m.ends_with("(new connection)")), "{messages:?}");
}

#[tokio::test]
async fn part_of_an_answer_on_a_reused_connection_is_an_error_not_a_race() {
    let (addr, _) = server(|_, request| if request == 0 { Reply::Answer(200) } else { Reply::Partial }).await;
    let (counts, messages) = load(&addr, 1, 4, Duration::ZERO).await;
    assert_eq!(counts, Counts { requests: 4, ok: 2, errors: 2, ..Counts::default() }, "{messages:?}");
}

#[tokio::test]
async fn non_2xx_answers_are_counted_as_such() {
    let (addr, _) = server(|_, request| Reply::Answer(if request % 2 == 0 { 200 } else { 503 })).await;
    let (counts, messages) = load(&addr, 1, 4, Duration::ZERO).await;
    assert_eq!(counts, Counts { requests: 4, ok: 2, non_2xx: 2, ..Counts::default() });
    assert_eq!(messages, ["HTTP 503"]);
}

#[tokio::test]
async fn a_connection_seen_closed_before_sending_is_replaced_without_a_failure() {
    let (addr, accepted) = server(|_, _| Reply::AnswerThenClose).await;
    let (counts, messages) = load(&addr, 1, 4, Duration::from_millis(100)).await;
    assert_eq!(counts, Counts { requests: 4, ok: 4, ..Counts::default() }, "{messages:?}");
    assert_eq!(accepted.load(Ordering::SeqCst), 4);
}

#[tokio::test]
async fn a_2xx_with_an_unknown_or_empty_body_is_a_failure_not_a_success() {
    let (addr, _) = server(|_, request| match request % 3 {
        0 => Reply::Answer(200),
        1 => Reply::Body(""),
        _ => Reply::Body("stale"),
    })
    .await;
    let (counts, messages, bodies) = load_bodies(&addr, 1, 6, Duration::ZERO).await;
    assert_eq!(counts, Counts { requests: 6, ok: 2, wrong_body: 4, ..Counts::default() }, "{messages:?}");
    assert_eq!((counts.strict_failures(), counts.lenient_failures()), (4, 4));
    assert_eq!(bodies, std::collections::BTreeMap::from([("hello".to_owned(), 2)]));
    assert_eq!(messages, ["HTTP 200 with an unknown body \"\"", "HTTP 200 with an unknown body \"stale\""]);
}

#[tokio::test]
async fn a_race_whose_retry_gets_an_unknown_body_is_not_recovered() {
    let (addr, _) = server(|connection, request| match (connection, request) {
        (0, 0) => Reply::Answer(200),
        (0, _) => Reply::Close,
        _ => Reply::Body(""),
    })
    .await;
    let (counts, _) = load(&addr, 1, 2, Duration::ZERO).await;
    assert_eq!(counts, Counts { requests: 2, ok: 1, races: 1, races_recovered: 0, ..Counts::default() });
    assert_eq!(counts.lenient_failures(), 1);
}
