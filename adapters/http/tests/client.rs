//! The client against the testkit's fake HTTP server: every failure a platform API
//! or a health URL can produce, and what the caller gets to see of it.

use std::time::{Duration, Instant, SystemTime};
use vsync_orchestrate_api::ErrorKind;
use vsync_orchestrate_http::{BearerToken, Client};
use vsync_orchestrate_testkit::fake_http::{FakeHttp, Fault, Response, When};

/// What a misbehaving API might echo back in an error body.
const FAKE_SECRET: &str = "vsync-fake-secret-Zq81mP4t";
const TOKEN: &str = "tok-Hs7Kq2Lw9";

async fn fake() -> FakeHttp<u32> {
    FakeHttp::builder(0u32)
        .route("GET", "/items/{id}", |r, n: &mut u32| {
            *n += 1;
            Response::json(200, &serde_json::json!({ "id": r.param("id"), "n": *n }))
                .header("x-request-id", "req-ok-1")
        })
        .route("POST", "/items", |r, n: &mut u32| {
            *n += 1;
            let auth = r.header("authorization").unwrap_or("").to_owned();
            Response::json(201, &serde_json::json!({ "echo": r.json(), "auth": auth }))
        })
        .route("GET", "/leaky/{status}", |r, _| {
            let status: u16 = r.param("status").parse().unwrap();
            Response::json(
                status,
                &serde_json::json!({ "error": format!("value {FAKE_SECRET} rejected for token {TOKEN}") }),
            )
            .header("x-request-id", "req-leaky-7")
        })
        .route("GET", "/not-json", |_, _| {
            Response::text(200, &format!("{{\"value\": {FAKE_SECRET}}}"))
        })
        .route("GET", "/wrong-shape", |_, _| {
            Response::json(200, &serde_json::json!({ "n": FAKE_SECRET }))
        })
        .route("GET", "/date-retry", |_, _| {
            let at = SystemTime::now() + Duration::from_secs(30);
            Response::text(503, "busy").header("retry-after", &httpdate_fmt(at))
        })
        .route("GET", "/big", |_, _| Response::text(200, &"x".repeat(10_000)))
        .start()
        .await
}

fn httpdate_fmt(t: SystemTime) -> String {
    // The fake's answer is built with the same crate the client parses with; the
    // test of the parser itself has a fixed date.
    httpdate::fmt_http_date(t)
}

fn client() -> Client {
    Client::builder()
        .attempt_timeout(Duration::from_secs(5))
        .bearer(BearerToken::new(TOKEN).unwrap())
        .build()
        .unwrap()
}

#[derive(Debug, serde::Deserialize)]
struct Item {
    id: String,
    n: u32,
}

#[tokio::test]
async fn json_round_trip_with_bearer_token_and_request_id() {
    let f = fake().await;
    let c = client();
    let item: Item = c
        .get(&format!("{}/items/a", f.url()))
        .send_json()
        .await
        .unwrap();
    assert_eq!((item.id.as_str(), item.n), ("a", 1));
    let r = c
        .post(&format!("{}/items", f.url()))
        .json(&serde_json::json!({ "k": "v" }))
        .send_ok()
        .await
        .unwrap();
    assert_eq!(r.status(), 201);
    let v: serde_json::Value = r.json().unwrap();
    assert_eq!(v["echo"]["k"], "v");
    assert_eq!(v["auth"], format!("Bearer {TOKEN}"));
    let logged = &f.requests()[1];
    assert_eq!(logged.header("content-type"), Some("application/json"));
    // A request can leave the token off.
    let r = c
        .post(&format!("{}/items", f.url()))
        .without_auth()
        .send_ok()
        .await
        .unwrap();
    assert_eq!(r.json::<serde_json::Value>().unwrap()["auth"], "");
    assert!(!format!("{c:?}").contains(TOKEN), "{c:?}");
}

#[tokio::test]
async fn error_bodies_never_reach_the_error() {
    let f = fake().await;
    let c = client();
    for (status, kind) in [
        (400, ErrorKind::InvalidConfig),
        (401, ErrorKind::Permission),
        (403, ErrorKind::Permission),
        (404, ErrorKind::NotFound),
        (409, ErrorKind::Conflict),
        (412, ErrorKind::Conflict),
        (422, ErrorKind::InvalidConfig),
        (429, ErrorKind::Temporary),
        (500, ErrorKind::Temporary),
        (503, ErrorKind::Temporary),
    ] {
        let e = c
            .get(&format!("{}/leaky/{status}?token={TOKEN}", f.url()))
            .what("reading the env var")
            .send_json::<serde_json::Value>()
            .await
            .unwrap_err();
        let chain = e.chain();
        assert_eq!(e.kind(), kind, "{status}: {chain}");
        assert_eq!(e.is_temporary(), kind == ErrorKind::Temporary, "{status}");
        assert!(!chain.contains(FAKE_SECRET), "{status}: {chain}");
        assert!(!chain.contains(TOKEN), "{status}: {chain}");
        assert!(
            chain.starts_with(&format!("{kind}: reading the env var: HTTP {status}")),
            "{chain}"
        );
        assert!(chain.contains("request id req-leaky-7"), "{chain}");
    }
    // A body that is not the JSON the caller expected: serde quotes values, the
    // client does not.
    for path in ["/not-json", "/wrong-shape"] {
        let e = c
            .get(&format!("{}{path}", f.url()))
            .send_json::<Item>()
            .await
            .unwrap_err();
        assert_eq!(e.kind(), ErrorKind::Failed);
        assert!(!e.chain().contains(FAKE_SECRET), "{}", e.chain());
        assert!(e.chain().contains("not the expected JSON"), "{}", e.chain());
    }
}

#[tokio::test]
async fn retry_after_in_seconds_and_as_an_http_date() {
    let f = fake().await;
    let c = client();
    f.inject(
        When::path("/items/a"),
        Fault::RetryAfter {
            status: 429,
            seconds: 7,
        },
    );
    let e = c
        .get(&format!("{}/items/a", f.url()))
        .send_ok()
        .await
        .unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Temporary);
    assert_eq!(e.wait_hint(), Some(Duration::from_secs(7)));
    assert_eq!(
        *f.state(),
        0,
        "the faulted request did not reach the handler"
    );

    let e = c
        .get(&format!("{}/date-retry", f.url()))
        .send_ok()
        .await
        .unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Temporary);
    let wait = e.wait_hint().expect("Retry-After as a date");
    assert!(
        wait > Duration::from_secs(25) && wait <= Duration::from_secs(30),
        "{wait:?}"
    );
    assert!(!e.chain().contains("busy"), "{}", e.chain());
}

#[tokio::test]
async fn a_5xx_is_temporary_and_the_next_attempt_succeeds() {
    let f = fake().await;
    let c = client();
    f.inject(When::path("/items/a"), Fault::Status(502));
    let e = c
        .get(&format!("{}/items/a", f.url()))
        .send_ok()
        .await
        .unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Temporary);
    assert!(e.wait_hint().is_none());
    assert!(
        e.message().contains("HTTP 502 Bad Gateway"),
        "{}",
        e.message()
    );
    let ok = c
        .get(&format!("{}/items/a", f.url()))
        .send_ok()
        .await
        .unwrap();
    assert_eq!(ok.request_id(), Some("req-ok-1"));
    // `send` gives any status back as an answer, for callers with their own rules.
    f.inject(When::path("/items/a"), Fault::Status(404));
    let r = c.get(&format!("{}/items/a", f.url())).send().await.unwrap();
    assert_eq!(r.status(), 404);
    assert_eq!(r.to_error().kind(), ErrorKind::NotFound);
}

#[tokio::test]
async fn timeouts_and_deadlines_bound_the_wait() {
    let f = fake().await;
    let c = client();
    f.inject(When::any().times(3), Fault::Delay(Duration::from_secs(3)));
    let url = format!("{}/items/slow", f.url());

    let t = Instant::now();
    let e = c
        .get(&url)
        .timeout(Duration::from_millis(300))
        .send()
        .await
        .unwrap_err();
    assert!(t.elapsed() < Duration::from_secs(2), "{:?}", t.elapsed());
    assert_eq!(e.kind(), ErrorKind::Temporary);
    assert!(
        e.message().contains("no answer within 300ms"),
        "{}",
        e.message()
    );

    // The deadline wins over a longer attempt timeout.
    let t = Instant::now();
    let e = c
        .get(&url)
        .deadline(Instant::now() + Duration::from_millis(300))
        .send()
        .await
        .unwrap_err();
    assert!(t.elapsed() < Duration::from_secs(2), "{:?}", t.elapsed());
    assert!(e.is_temporary());

    // The client's attempt timeout applies when the request sets none.
    let short = Client::builder()
        .attempt_timeout(Duration::from_millis(300))
        .build()
        .unwrap();
    let t = Instant::now();
    assert!(short.get(&url).send().await.unwrap_err().is_temporary());
    assert!(t.elapsed() < Duration::from_secs(2), "{:?}", t.elapsed());

    // A deadline already past sends nothing.
    let before = f.requests().len();
    let e = c
        .get(&url)
        .deadline(Instant::now())
        .send()
        .await
        .unwrap_err();
    assert!(e.is_temporary() && e.message().contains("deadline"), "{e}");
    assert_eq!(f.requests().len(), before);
}

#[tokio::test]
async fn cut_connections_are_temporary_whether_or_not_the_request_took_effect() {
    let f = fake().await;
    let c = client();
    let url = format!("{}/items/a", f.url());
    f.inject(When::any(), Fault::CutBefore);
    let e = c.get(&url).what("reading item a").send().await.unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Temporary, "{}", e.chain());
    assert!(
        e.message().starts_with("reading item a: "),
        "{}",
        e.message()
    );
    assert_eq!(*f.state(), 0);

    f.inject(When::any(), Fault::CutAfter);
    let e = c.get(&url).send().await.unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Temporary, "{}", e.chain());
    assert_eq!(*f.state(), 1, "the handler ran: only a read-back can tell");

    // And the pool recovers: the next request gets a fresh connection.
    assert!(c.get(&url).send_ok().await.is_ok());
}

#[tokio::test]
async fn nothing_listening_is_temporary_and_bad_urls_are_config_errors() {
    let port = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap().port()
    };
    let c = client();
    let e = c
        .get(&format!("http://127.0.0.1:{port}/x?token={TOKEN}"))
        .send()
        .await
        .unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Temporary, "{}", e.chain());
    assert!(e.message().contains("cannot connect"), "{}", e.message());
    assert!(!e.chain().contains(TOKEN), "{}", e.chain());
    assert!(
        e.message().contains(&format!("127.0.0.1:{port}/x")),
        "{}",
        e.message()
    );

    let e = c.get("not a url").send().await.unwrap_err();
    assert_eq!(e.kind(), ErrorKind::InvalidConfig, "{}", e.chain());
    let e = c
        .get("http://127.0.0.1:1/")
        .header("bad header", "x")
        .send()
        .await
        .unwrap_err();
    assert_eq!(e.kind(), ErrorKind::InvalidConfig, "{}", e.chain());
}

#[tokio::test]
async fn bodies_are_capped() {
    let f = fake().await;
    let c = client();
    let r = c
        .get(&format!("{}/big", f.url()))
        .max_body(1000)
        .send_ok()
        .await
        .unwrap();
    assert!(r.truncated());
    assert_eq!(r.body().len(), 1000);
    assert!(r.json::<serde_json::Value>().is_err());
    let r = c.get(&format!("{}/big", f.url())).send_ok().await.unwrap();
    assert!(!r.truncated() && r.body().len() == 10_000);
}
