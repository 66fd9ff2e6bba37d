//! SPEC §6.1's connection bounds over real sockets: header, body and idle deadlines, 413 for a chunked body over
//! 64 KiB, and the connection cap, first against `slip_daemon::http::serve` with short limits, then against a real
//! slipd under 300 slowloris connections.

use std::time::{Duration, Instant};

use axum::Router;
use axum::body::Bytes;
use axum::routing::get;
use slip_daemon::http::{Limits, serve};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use crate::support::{SECRET, TestDaemon, app_name, web_app};

/// A server with `limits` on a free port, serving `GET /` (200 `ok`) and `POST /` (the body's length).
async fn server(limits: Limits) -> (std::net::SocketAddr, tokio::sync::oneshot::Sender<()>) {
    let router =
        Router::new().route("/", get(|| async { "ok" }).post(|body: Bytes| async move { body.len().to_string() }));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let (tx, rx) = tokio::sync::oneshot::channel::<()>();
    tokio::spawn(serve(listener, router, limits, async move {
        let _ = rx.await;
    }));
    (addr, tx)
}

fn short() -> Limits {
    Limits {
        header_timeout: Duration::from_millis(600),
        body_timeout: Duration::from_millis(600),
        body_limit: 64 * 1024,
        max_connections: 8,
    }
}

/// Reads until the server closes the connection; returns what it sent and how long that took.
async fn read_to_close(stream: &mut TcpStream) -> (String, Duration) {
    let start = Instant::now();
    let mut out = Vec::new();
    let read = tokio::time::timeout(Duration::from_secs(10), stream.read_to_end(&mut out)).await;
    assert!(read.is_ok(), "the server kept the connection open for 10s; it sent {:?}", String::from_utf8_lossy(&out));
    (String::from_utf8_lossy(&out).into_owned(), start.elapsed())
}

#[tokio::test]
async fn partial_headers_are_cut_off_at_the_header_deadline() {
    let (addr, _stop) = server(short()).await;
    let mut stream = TcpStream::connect(addr).await.unwrap();
    stream.write_all(b"GET / HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Slow: ").await.unwrap();
    let (_, took) = read_to_close(&mut stream).await;
    assert!(took >= Duration::from_millis(500), "closed before the deadline ({took:?})");
}

#[tokio::test]
async fn an_idle_keep_alive_connection_is_closed() {
    let (addr, _stop) = server(short()).await;
    let mut stream = TcpStream::connect(addr).await.unwrap();
    stream.write_all(b"GET / HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n").await.unwrap();
    let (sent, _) = read_to_close(&mut stream).await;
    assert!(sent.starts_with("HTTP/1.1 200"), "{sent}");
    assert!(sent.ends_with("ok"), "the answer came before the close: {sent}");
}

#[tokio::test]
async fn a_half_sent_body_gets_408_at_the_body_deadline() {
    let (addr, _stop) = server(short()).await;
    let mut stream = TcpStream::connect(addr).await.unwrap();
    stream.write_all(b"POST / HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Length: 100\r\n\r\n{\"app\":").await.unwrap();
    let (sent, _) = read_to_close(&mut stream).await;
    assert!(sent.starts_with("HTTP/1.1 408"), "{sent}");
    assert!(sent.contains(r#""code":"request_timeout""#), "{sent}");
}

#[tokio::test]
async fn a_chunked_body_over_64_kib_gets_413() {
    let (addr, _stop) = server(short()).await;
    let mut stream = TcpStream::connect(addr).await.unwrap();
    stream.write_all(b"POST / HTTP/1.1\r\nHost: 127.0.0.1\r\nTransfer-Encoding: chunked\r\n\r\n").await.unwrap();
    let chunk = vec![b'x'; 16 * 1024];
    for _ in 0..5 {
        let mut frame = format!("{:x}\r\n", chunk.len()).into_bytes();
        frame.extend_from_slice(&chunk);
        frame.extend_from_slice(b"\r\n");
        if stream.write_all(&frame).await.is_err() {
            break; // The server may close as soon as it has answered.
        }
    }
    let (sent, _) = read_to_close(&mut stream).await;
    assert!(sent.starts_with("HTTP/1.1 413"), "{sent}");
    assert!(sent.contains(r#""code":"body_too_large""#), "{sent}");

    let mut small = TcpStream::connect(addr).await.unwrap();
    small
        .write_all(b"POST / HTTP/1.1\r\nHost: 127.0.0.1\r\nTransfer-Encoding: chunked\r\nConnection: close\r\n\r\n5\r\nhello\r\n0\r\n\r\n")
        .await
        .unwrap();
    let (sent, _) = read_to_close(&mut small).await;
    assert!(sent.starts_with("HTTP/1.1 200") && sent.ends_with('5'), "a small chunked body is read whole: {sent}");
}

#[tokio::test]
async fn at_the_cap_the_longest_waiting_connection_makes_room() {
    let limits = Limits { header_timeout: Duration::from_secs(30), ..short() };
    let (addr, _stop) = server(limits).await;
    // Eight keep-alive connections, each served once (so the server has surely accepted it) and then idle, in order.
    let mut idle = Vec::new();
    for _ in 0..8 {
        let mut stream = TcpStream::connect(addr).await.unwrap();
        stream.write_all(b"GET / HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n").await.unwrap();
        let mut answer = Vec::new();
        while !answer.ends_with(b"ok") {
            let mut chunk = [0u8; 1024];
            let n = tokio::time::timeout(Duration::from_secs(10), stream.read(&mut chunk)).await.unwrap().unwrap();
            assert!(n > 0, "closed before answering: {:?}", String::from_utf8_lossy(&answer));
            answer.extend_from_slice(&chunk[..n]);
        }
        idle.push(stream);
    }
    let start = Instant::now();
    let mut fresh = TcpStream::connect(addr).await.unwrap();
    fresh.write_all(b"GET / HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n").await.unwrap();
    let (sent, _) = read_to_close(&mut fresh).await;
    assert!(sent.starts_with("HTTP/1.1 200"), "{sent}");
    assert!(start.elapsed() < Duration::from_secs(5), "the new connection waited {:?}", start.elapsed());
    let (first, _) = read_to_close(&mut idle[0]).await;
    assert_eq!(first, "", "the longest-idle connection was closed (it had nothing more to be sent)");
}

#[tokio::test]
async fn three_hundred_slowloris_connections_do_not_keep_a_signed_webhook_out() {
    let name = app_name("slowloris");
    let daemon = TestDaemon::start(|registry| vec![(name.clone(), web_app(&name, registry, ""))], "").await;
    let mut slow = Vec::new();
    for i in 0..300 {
        let mut stream = TcpStream::connect(daemon.addr).await.unwrap();
        let head = if i % 2 == 0 {
            "GET /v1/status HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Slow: ".to_owned()
        } else {
            "POST /v1/deploy HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Length: 1000\r\n\r\n{\"app\":".to_owned()
        };
        stream.write_all(head.as_bytes()).await.unwrap();
        slow.push(stream);
    }
    let start = Instant::now();
    let (status, body) = daemon.webhook(&name, "never-pushed", SECRET).await;
    let took = start.elapsed();
    assert_eq!(status, 202, "{body}");
    // The header and body deadlines are 10s: an answer well inside them shows a slot was made, not waited for.
    assert!(took < Duration::from_secs(5), "the webhook took {took:?} behind 300 slow connections");
    drop(slow);
}
