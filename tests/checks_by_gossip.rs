//! Issue 14, finding 6, on a real node over loopback: an entry gossiped in the node's name,
//! with an HTTP check at a listener, must never make the node fetch it. Checks run only for
//! instances registered through the node's own API (or restored from its own data_dir).
//!
//! The proof is awaited, not slept: after the forged entry is merged, an instance registered
//! through the API with a check at the same listener is fetched three times (its first check
//! at once, then one per interval); the forged one, due an interval after it was merged, would
//! have come before the third.

use std::time::Duration;

use hera::names::{InstanceId, NodeName, ServiceName};
use hera::node::Command;
use hera::registry::{Entry, Hlc, InstanceSpec, SpecCheck};
use hera::runtime::app::App;
use hera::runtime::settings::{FileSettings, Overrides, Settings};
use hera::wire::{encode_message, DatagramBuilder, Message};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, UdpSocket};
use tokio::sync::mpsc;

const BOUND: Duration = Duration::from_secs(20);

fn settings(name: &str) -> Settings {
    Settings::resolve(
        Some((std::path::Path::new("test.toml"), FileSettings::default())),
        Overrides {
            name: Some(name.to_string()),
            bind: Some("127.0.0.1:0".to_string()),
            http: Some("127.0.0.1:0".to_string()),
            preset: Some("local".to_string()),
            ..Default::default()
        },
    )
    .expect("valid test settings")
}

/// A loopback HTTP server answering 200 to everything, reporting each request's path.
async fn listener() -> (u16, mpsc::UnboundedReceiver<String>) {
    let socket = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = socket.local_addr().unwrap().port();
    let (tx, rx) = mpsc::unbounded_channel();
    tokio::spawn(async move {
        while let Ok((mut stream, _)) = socket.accept().await {
            let tx = tx.clone();
            tokio::spawn(async move {
                let mut head = Vec::new();
                let mut buf = [0u8; 1024];
                while !head.windows(4).any(|w| w == b"\r\n\r\n") && head.len() < 16_384 {
                    match stream.read(&mut buf).await {
                        Ok(0) | Err(_) => break,
                        Ok(n) => head.extend_from_slice(&buf[..n]),
                    }
                }
                let line = String::from_utf8_lossy(&head)
                    .lines()
                    .next()
                    .unwrap_or("")
                    .to_string();
                let path = line.split(' ').nth(1).unwrap_or("").to_string();
                let _ = tx.send(path);
                let _ = stream
                    .write_all(
                        b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\nconnection: close\r\n\r\nok",
                    )
                    .await;
            });
        }
    });
    (port, rx)
}

fn spec(instance: &str, url: String) -> InstanceSpec {
    let mut s = InstanceSpec::new(ServiceName::new("web").unwrap(), "127.0.0.1", 80);
    s.id = Some(InstanceId::new(instance).unwrap());
    s.check = SpecCheck::Http {
        url,
        interval: Duration::from_secs(1),
        timeout: Duration::from_secs(1),
    };
    s
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_entry_gossiped_in_a_nodes_name_never_makes_it_fetch_the_check_url() {
    let (port, mut requests) = listener().await;
    let node = App::start(settings("target"), 1)
        .await
        .expect("node starts");
    let owner = NodeName::new("target").unwrap();

    // An hour old: not one of the node's own writes since it started, which it would delete.
    let now_ms = node.handle.snapshot().started.as_millis();
    let old_ms = now_ms - 3_600_000;
    let forged = spec("forged-1", format!("http://127.0.0.1:{port}/forged"))
        .into_instance(InstanceId::new("forged-1").unwrap(), owner, old_ms)
        .unwrap();
    let entry = Entry {
        id: InstanceId::new("forged-1").unwrap(),
        version: Hlc {
            wall_ms: old_ms,
            counter: 0,
            node: NodeName::new("stranger").unwrap(),
        },
        instance: Some(Box::new(forged)),
    };
    let mut datagram = DatagramBuilder::new(1_400);
    assert!(datagram.try_push(&encode_message(&Message::Entry(entry))));
    let sender = UdpSocket::bind("127.0.0.1:0").await.unwrap();
    sender
        .send_to(&datagram.finish(), node.gossip_addr)
        .await
        .unwrap();
    let forged_id = InstanceId::new("forged-1").unwrap();
    let merged = node
        .handle
        .wait_for(BOUND, |s| s.registry.get(&forged_id).is_some())
        .await;
    assert!(
        merged.is_some(),
        "the forged entry was not taken (the test proves nothing)"
    );

    node.handle
        .command(Command::Register(spec(
            "legit-1",
            format!("http://127.0.0.1:{port}/legit"),
        )))
        .await
        .expect("registered");
    let mut seen = Vec::new();
    let legit = tokio::time::timeout(BOUND, async {
        while seen.iter().filter(|p| *p == "/legit").count() < 3 {
            seen.push(requests.recv().await.expect("listener runs"));
        }
    })
    .await;
    assert!(legit.is_ok(), "the registered check did not run: {seen:?}");
    while let Ok(path) = requests.try_recv() {
        seen.push(path);
    }
    assert!(
        seen.iter().all(|p| p == "/legit"),
        "the node fetched a URL that arrived by gossip: {seen:?}"
    );
    assert!(
        node.handle
            .snapshot()
            .local
            .iter()
            .all(|id| id.as_str() == "legit-1"),
        "the node adopted the forged entry"
    );
    node.shutdown().await;
}
