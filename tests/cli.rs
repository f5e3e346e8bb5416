//! The registry subcommands against a real node: the built `hera` binary talks to a node
//! started in this process, and the test checks both what the binary prints and what the
//! node's snapshot holds afterwards.

mod support;

use std::process::Command;
use std::time::Duration;

use hera::names::InstanceId;
use hera::runtime::app::App;
use hera::runtime::settings::Settings;

const SETTLE: Duration = Duration::from_secs(10);

fn settings() -> Settings {
    support::settings("cli0", vec![])
}

/// Run `hera <args> --http-addr <addr>` and return its standard output; panics (with its
/// standard error) unless it exits 0. Runs on a blocking thread so the node keeps serving.
async fn hera(addr: std::net::SocketAddr, args: &[&str]) -> String {
    let mut argv: Vec<String> = args.iter().map(|a| a.to_string()).collect();
    argv.push("--http-addr".to_string());
    argv.push(addr.to_string());
    let output = tokio::task::spawn_blocking(move || {
        Command::new(env!("CARGO_BIN_EXE_hera"))
            .args(&argv)
            // A token from the developer's shell would be sent to a node that needs none.
            .env_remove("HERA_TOKEN")
            .env_remove("HERA_HTTP_ADDR")
            .output()
            .expect("run the hera binary")
    })
    .await
    .expect("blocking task");
    let stdout = String::from_utf8_lossy(&output.stdout).into_owned();
    assert!(
        output.status.success(),
        "hera {args:?} failed: {}\nstdout: {stdout}\nstderr: {}",
        output.status,
        String::from_utf8_lossy(&output.stderr)
    );
    stdout
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn register_list_maintain_and_deregister_through_the_cli() {
    let node = App::start(settings(), 7).await.expect("node starts");
    let addr = node.http_addr;
    let id = InstanceId::new("web-cli-1").expect("valid id");

    let printed = hera(
        addr,
        &[
            "register",
            "web",
            "--address",
            "10.1.2.3",
            "--port",
            "8080",
            "--id",
            "web-cli-1",
            "--tag",
            "blue",
            "--tag",
            "v2",
            "--ttl",
            "30s",
        ],
    )
    .await;
    assert_eq!(printed.trim(), "web-cli-1");
    let s = node
        .handle
        .wait_for(SETTLE, |s| s.registry.get(&id).is_some())
        .await
        .expect("registration in the snapshot");
    let i = s.registry.get(&id).expect("instance");
    assert_eq!(i.service.as_str(), "web");
    assert_eq!(i.address.0, "10.1.2.3");
    assert_eq!(i.port, 8080);
    assert_eq!(i.tags().collect::<Vec<_>>(), ["blue", "v2"]);
    assert_eq!(i.check.ttl(), Some(Duration::from_secs(30)));
    assert_eq!(i.owner.as_str(), "cli0");

    // Without --id the node picks one, and the binary prints it.
    let assigned = hera(
        addr,
        &["register", "web", "--address", "10.1.2.4", "--port", "8081"],
    )
    .await;
    let assigned = assigned.trim().to_string();
    assert!(!assigned.is_empty(), "no id printed");
    assert_ne!(assigned, "web-cli-1");

    let services = hera(addr, &["services"]).await;
    let web = services
        .lines()
        .find(|l| l.split_whitespace().next() == Some("web"))
        .unwrap_or_else(|| panic!("no web row in:\n{services}"));
    assert!(
        web.contains("web-cli-1") && web.contains(&assigned),
        "{web}"
    );
    assert_eq!(web.split_whitespace().nth(1), Some("2"), "{web}");

    let table = hera(addr, &["instances", "web"]).await;
    let row = table
        .lines()
        .find(|l| l.starts_with("web-cli-1"))
        .unwrap_or_else(|| panic!("no web-cli-1 row in:\n{table}"));
    assert!(row.contains("10.1.2.3:8080"), "{row}");
    assert!(row.contains("on-line"), "{row}");
    assert!(row.contains("cli0"), "{row}");
    assert!(row.contains("dc1"), "{row}");

    let said = hera(
        addr,
        &["maintenance", "web-cli-1", "on", "--reason", "disk swap"],
    )
    .await;
    assert!(said.contains("off-line"), "{said}");
    let s = node
        .handle
        .wait_for(SETTLE, |s| s.registry.get(&id).is_some_and(|i| !i.online))
        .await
        .expect("maintenance in the snapshot");
    let reason = s
        .registry
        .get(&id)
        .and_then(|i| i.maintenance_reason.clone());
    assert_eq!(reason.map(|r| r.0).as_deref(), Some("disk swap"));
    let table = hera(addr, &["instances", "web"]).await;
    assert!(
        table.contains("off-line (disk swap)"),
        "maintenance not shown:\n{table}"
    );

    let said = hera(addr, &["maintenance", "web-cli-1", "off"]).await;
    assert!(said.contains("on-line"), "{said}");
    node.handle
        .wait_for(SETTLE, |s| s.registry.get(&id).is_some_and(|i| i.online))
        .await
        .expect("back on-line in the snapshot");

    let said = hera(addr, &["deregister", "web-cli-1"]).await;
    assert!(said.contains("web-cli-1"), "{said}");
    node.handle
        .wait_for(SETTLE, |s| s.registry.get(&id).is_none())
        .await
        .expect("deregistration in the snapshot");
    let table = hera(addr, &["instances", "web"]).await;
    assert!(!table.contains("web-cli-1"), "still listed:\n{table}");
    assert!(
        table.contains(&assigned),
        "the other instance went too:\n{table}"
    );

    node.shutdown().await;
}
