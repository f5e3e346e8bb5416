//! Hostile requests against a real node on loopback: every one is refused with a 4xx and a
//! JSON error, the node stays up, and nothing it holds changes.

mod ops_support;

use std::time::Duration;

use ops_support::{cluster, CONVERGE};
use serde_json::{json, Value};

fn client() -> reqwest::Client {
    reqwest::Client::builder()
        .no_proxy()
        .timeout(CONVERGE)
        .build()
        .expect("client")
}

/// The node still answers an ordinary read.
async fn alive(http: &reqwest::Client, base: &str) {
    let r = http
        .get(format!("{base}/v1/agent/self"))
        .send()
        .await
        .expect("the node still answers");
    assert_eq!(r.status(), 200);
}

async fn refused_with_json(r: reqwest::Response, what: &str) -> Value {
    let status = r.status();
    let body = r.text().await.expect("a body");
    assert!(status.is_client_error(), "{what}: answered {status} {body}");
    serde_json::from_str(&body).unwrap_or_else(|_| panic!("{what}: not JSON: {body:?}"))
}

/// Issue 12, item 1: a `wait` no duration can hold used to abort the process before routing,
/// on any path and without a token; so did the same text in a body.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn durations_no_duration_can_hold_are_refused_not_fatal() {
    let nodes = cluster("hostile-wait", 1).await;
    let base = format!("http://{}", nodes[0].http_addr);
    let http = client();

    // The seed API's `GET /<service>` does not block, so it answers; it used to abort the
    // node all the same, since the request time bound parsed `wait` before routing.
    let r = http
        .get(format!("{base}/anything?index=1&wait=1e20"))
        .send()
        .await
        .expect("the node answers instead of aborting");
    assert_eq!(r.status(), 200);
    alive(&http, &base).await;

    for query in [
        "/v1/catalog/services?index=1&wait=1e20",
        "/v1/agent/service/x?hash=x&wait=2e19",
        "/v1/catalog/services?index=1&wait=NaN",
        "/v1/catalog/services?index=1&wait=-5s",
    ] {
        let r = http.get(format!("{base}{query}")).send().await;
        let r = r.unwrap_or_else(|e| panic!("{query}: the node dropped the request: {e}"));
        refused_with_json(r, query).await;
        alive(&http, &base).await;
    }

    let register = http
        .put(format!("{base}/v1/agent/service/register"))
        .json(&json!({"Name": "web", "ID": "web-1", "Check": {"TTL": "1e20"}}))
        .send()
        .await
        .expect("register answered");
    refused_with_json(register, "TTL 1e20").await;
    for body in [
        json!({"Liveness": "1e20"}),
        json!({"SuspicionBase": "2e19"}),
    ] {
        let r = http
            .put(format!("{base}/v1/hera/config"))
            .json(&body)
            .send()
            .await
            .expect("config answered");
        refused_with_json(r, &body.to_string()).await;
    }
    alive(&http, &base).await;
    let s = nodes[0].handle.snapshot();
    assert_eq!(s.registry.len(), 0, "a refused register changed nothing");

    // A huge but readable wait is clamped to Consul's maximum, like any other long wait, be it
    // longer than any duration may be: the read blocks (it does not fail), and answers once
    // the registry changes.
    let blocked = {
        let http = http.clone();
        let url = format!("{base}/v1/catalog/services?index=1&wait=18446744073709552");
        tokio::spawn(async move { http.get(url).send().await })
    };
    let r = http
        .put(format!("{base}/v1/agent/service/register"))
        .json(&json!({"Name": "web", "ID": "web-1"}))
        .send()
        .await
        .expect("register answered");
    assert_eq!(r.status(), 200, "{}", r.text().await.unwrap_or_default());
    let answer = tokio::time::timeout(Duration::from_secs(20), blocked)
        .await
        .expect("the blocked read answers once the registry changes")
        .expect("task")
        .expect("response");
    assert_eq!(answer.status(), 200);
    for n in nodes {
        n.shutdown().await;
    }
}
