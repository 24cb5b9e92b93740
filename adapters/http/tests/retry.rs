//! Refused requests sent again (`send_retrying_refused`) against the testkit's
//! fake: how often, after how long, and when the refusal itself is the answer.

use std::time::{Duration, Instant};
use vsync_orchestrate_http::{is_refused, send_retrying_refused, Client, RetryRefused};
use vsync_orchestrate_testkit::fake_http::{FakeHttp, Fault, Response, When};

async fn fake() -> FakeHttp<u32> {
    FakeHttp::builder(0u32)
        .route("POST", "/items", |_, n: &mut u32| {
            *n += 1;
            Response::json(201, &serde_json::json!({ "n": *n }))
        })
        .start()
        .await
}

fn client() -> Client {
    Client::builder()
        .attempt_timeout(Duration::from_secs(5))
        .build()
        .unwrap()
}

fn refused(status: u16, seconds: u64) -> Fault {
    Fault::RetryAfter { status, seconds }
}

#[tokio::test]
async fn a_refusal_is_sent_again_after_the_wait_asked_for() {
    let f = fake().await;
    let c = client();
    let url = format!("{}/items", f.url());
    f.inject(When::path("/items").times(2), refused(429, 0));
    f.inject(When::path("/items").times(1), refused(503, 1));
    let start = Instant::now();
    let resp = send_retrying_refused(RetryRefused::default(), || {
        c.post(&url).json(&serde_json::json!({ "k": "v" }))
    })
    .await
    .unwrap();
    assert_eq!(resp.status(), 201);
    assert!(start.elapsed() >= Duration::from_secs(1));
    assert_eq!(f.count(&When::path("/items")), 4);
    // Every send carried the body: each is a fresh request.
    assert!(f.requests().iter().all(|r| r.json()["k"] == "v"));
    assert_eq!(*f.state(), 1);
}

#[tokio::test]
async fn without_a_retry_after_it_backs_off_from_one_second() {
    let f = fake().await;
    let c = client();
    let url = format!("{}/items", f.url());
    f.inject(When::path("/items").times(1), Fault::Status(429));
    let start = Instant::now();
    let resp = send_retrying_refused(RetryRefused::default(), || c.post(&url))
        .await
        .unwrap();
    assert_eq!(resp.status(), 201);
    assert!(start.elapsed() >= Duration::from_secs(1));
}

#[tokio::test]
async fn only_refusals_are_sent_again() {
    let f = fake().await;
    let c = client();
    let url = format!("{}/items", f.url());
    // A 503 without Retry-After may have been processed; a 500 too.
    for status in [503, 500, 409] {
        f.inject(When::path("/items").times(1), Fault::Status(status));
        let resp = send_retrying_refused(RetryRefused::default(), || c.post(&url))
            .await
            .unwrap();
        assert_eq!(resp.status(), status);
        assert!(!is_refused(&resp));
    }
    assert_eq!(f.count(&When::path("/items")), 3);
}

#[tokio::test]
async fn after_the_last_retry_the_refusal_is_the_answer() {
    let f = fake().await;
    let c = client();
    let url = format!("{}/items", f.url());
    f.inject(When::path("/items").times(10), refused(429, 0));
    let policy = RetryRefused {
        retries: 2,
        ..RetryRefused::default()
    };
    let resp = send_retrying_refused(policy, || c.post(&url))
        .await
        .unwrap();
    assert_eq!(resp.status(), 429);
    assert!(is_refused(&resp));
    assert_eq!(f.count(&When::path("/items")), 3);
    // The caller's error keeps the server's wait.
    let e = resp.error_for_status().unwrap_err();
    assert_eq!(e.wait_hint(), Some(Duration::ZERO));
}

#[tokio::test]
async fn a_wait_too_long_or_past_the_deadline_is_not_waited_out() {
    let f = fake().await;
    let c = client();
    let url = format!("{}/items", f.url());
    f.inject(When::path("/items").times(1), refused(429, 61));
    let start = Instant::now();
    let resp = send_retrying_refused(RetryRefused::default(), || c.post(&url))
        .await
        .unwrap();
    assert_eq!(resp.status(), 429);
    assert_eq!(
        resp.error_for_status().unwrap_err().wait_hint(),
        Some(Duration::from_secs(61))
    );

    f.inject(When::path("/items").times(1), refused(429, 2));
    let deadline = Instant::now() + Duration::from_secs(2);
    let resp = send_retrying_refused(RetryRefused::default(), || c.post(&url).deadline(deadline))
        .await
        .unwrap();
    assert_eq!(resp.status(), 429);
    assert!(start.elapsed() < Duration::from_secs(1));
    assert_eq!(f.count(&When::path("/items")), 2);
}

#[tokio::test]
async fn an_error_is_not_sent_again() {
    let f = fake().await;
    let c = client();
    let url = format!("{}/items", f.url());
    f.inject(When::path("/items").times(1), Fault::CutBefore);
    let e = send_retrying_refused(RetryRefused::default(), || c.post(&url))
        .await
        .unwrap_err();
    assert!(e.is_temporary());
    assert_eq!(f.count(&When::path("/items")), 1);
}
