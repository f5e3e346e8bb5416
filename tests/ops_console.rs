//! The admin console in a real browser (headless Chromium over the DevTools protocol) against
//! real nodes: it lists members, quorum and what is registered, and its off-line button takes
//! an instance off-line (the node's API then shows it in maintenance) and back on-line.
//!
//! Needs the Debian package `chromium`; ignored in a plain `cargo test`, run by
//! `scripts/test.sh` with `--ignored`. Set `HERA_CONSOLE_SCREENSHOT=docs/console.png` to keep a
//! screenshot of the page as the test saw it.

mod support;

use std::time::Duration;

use support::chromium::Browser;
use support::*;

const PAGE: Duration = Duration::from_secs(20);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs chromium (Debian package `chromium`); scripts/test.sh installs it and runs --ignored"]
async fn console_lists_the_cluster_and_takes_an_instance_off_line() {
    let nodes = cluster("ui", 3).await;
    let registered = register_sample_services(&nodes[0]).await;
    let addr = nodes[0].http_addr;

    // The browser calls block; keep them off the runtime's workers that serve the nodes.
    let url = format!("http://{addr}/ui");
    let mut browser = tokio::task::spawn_blocking(move || {
        let mut b = Browser::launch(1440, 720);
        b.navigate(&url);
        b
    })
    .await
    .expect("browser");

    browser = tokio::task::spawn_blocking(move || {
        browser.wait_for(
            PAGE,
            "three members",
            "document.querySelectorAll('#members tbody tr').length === 3",
        );
        let quorum = browser.eval("document.getElementById('quorum').textContent");
        assert_eq!(quorum, "quorum 3/3");
        let node = browser.eval("document.getElementById('node-name').textContent");
        assert_eq!(node, "ui0");
        browser
    })
    .await
    .expect("page shows the cluster");

    if registered.is_empty() {
        eprintln!("no registry yet: only members and quorum checked");
    } else {
        let expected = registered.len();
        browser = tokio::task::spawn_blocking(move || {
            browser.wait_for(
                PAGE,
                "every registered instance",
                &format!("document.querySelectorAll('#instances tbody tr').length === {expected}"),
            );
            browser
        })
        .await
        .expect("page lists instances");
        for (service, id) in &registered {
            let present = browser.eval(&format!(
                "!!document.querySelector('#instances tr[data-service={service:?}][data-id={id:?}]')"
            ));
            assert_eq!(present, true, "{service}/{id} not listed");
        }
    }

    if let Ok(path) = std::env::var("HERA_CONSOLE_SCREENSHOT") {
        let png = browser.screenshot_png();
        std::fs::write(&path, png).expect("write screenshot");
    }

    if let Some((service, id)) = registered.first().cloned() {
        take_off_line_and_back(browser, addr, service, id).await;
    }
    for node in nodes {
        node.shutdown().await;
    }
}

/// Click "Take off-line", give a reason, confirm with Enter; the node must then report the
/// instance in maintenance. Then "Bring on-line".
async fn take_off_line_and_back(
    mut browser: Browser,
    addr: std::net::SocketAddr,
    service: String,
    id: String,
) {
    let key = format!("{service}/{id}");
    let k = key.clone();
    browser = tokio::task::spawn_blocking(move || {
        browser.click(&format!("button[data-key={k:?}][data-action=offline]"));
        browser.wait_for(
            PAGE,
            "the off-line dialog",
            "document.getElementById('offline-dialog').open",
        );
        browser.type_text("console test");
        browser.press_enter();
        browser.wait_for(
            PAGE,
            "the row to show off-line",
            &format!("!!document.querySelector('button[data-key={k:?}][data-action=online]')"),
        );
        browser
    })
    .await
    .expect("off-line through the page");
    let i = instance(addr, &service, &id).await;
    assert!(!i.online, "{key} still on-line in the API: {i:?}");
    assert_eq!(i.reason.as_deref(), Some("console test"));

    let k = key.clone();
    tokio::task::spawn_blocking(move || {
        browser.click(&format!("button[data-key={k:?}][data-action=online]"));
        browser.wait_for(
            PAGE,
            "the row to show on-line",
            &format!("!!document.querySelector('button[data-key={k:?}][data-action=offline]')"),
        );
    })
    .await
    .expect("on-line through the page");
    let i = instance(addr, &service, &id).await;
    assert!(i.online, "{key} still off-line in the API: {i:?}");
}

/// Issue 18: each check of an instance is shown with its status, and the node's maintenance
/// is shown and toggled from the page (every instance of the node off-line, then back).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs chromium (Debian package `chromium`); scripts/test.sh installs it and runs --ignored"]
async fn console_shows_each_check_and_toggles_node_maintenance() {
    let nodes = cluster("ui-checks", 1).await;
    let addr = nodes[0].http_addr;
    let client = http();
    let body = serde_json::json!({
        "Name": "db", "ID": "db-1", "Port": 5432,
        "Checks": [{"CheckID": "db-ttl", "TTL": "30s"}, {"CheckID": "db-ready", "TTL": "30s"}],
    });
    for (path, body) in [
        ("/v1/agent/service/register", Some(body)),
        ("/v1/agent/check/pass/db-ttl", None),
    ] {
        let mut r = client.put(format!("http://{addr}{path}"));
        if let Some(body) = body {
            r = r.json(&body);
        }
        assert!(r.send().await.unwrap().status().is_success(), "{path}");
    }
    let url = format!("http://{addr}/ui");
    let browser = tokio::task::spawn_blocking(move || {
        let mut b = Browser::launch(1440, 720);
        b.navigate(&url);
        b.wait_for(
            PAGE,
            "each check with its status",
            "!!document.querySelector('li.check[data-check=\"db-ttl\"][data-status=passing]') \
             && !!document.querySelector('li.check[data-check=\"db-ready\"][data-status=critical]')",
        );
        b.click("#node-maintenance");
        b.wait_for(
            PAGE,
            "the node shown in maintenance, its button enabled again",
            // The page's live refresh can show the new state before the click's own request
            // has finished and re-enabled the button; a click on it then would be ignored.
            "document.getElementById('node-maintenance').dataset.on === 'true' \
             && !document.getElementById('node-maintenance').disabled",
        );
        b
    })
    .await
    .expect("page shows checks and drains the node");
    let i = instance(addr, "db", "db-1").await;
    assert!(!i.online, "db-1 still on-line: {i:?}");
    tokio::task::spawn_blocking(move || {
        let mut b = browser;
        b.click("#node-maintenance");
        b.wait_for(
            PAGE,
            "the node back on-line",
            "document.getElementById('node-maintenance').dataset.on === 'false'",
        );
    })
    .await
    .expect("page restores the node");
    let i = instance(addr, "db", "db-1").await;
    assert!(i.online, "db-1 still off-line: {i:?}");
    for node in nodes {
        node.shutdown().await;
    }
}
