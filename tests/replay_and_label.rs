//! Sealed-datagram replay protection and the cluster label, on real nodes over loopback: a
//! captured datagram replayed to a node is refused, and two clusters that share a key (or
//! none) but not a label never merge.

mod support;

use std::time::Duration;

use hera::runtime::app::App;
use hera::runtime::driver::Snapshot;
use hera::runtime::settings::{format_key, FileSettings, Settings};
use hera::swim::State;
use hera::wire::{DecodeErrorKind, Key};
use tokio::net::UdpSocket;

/// Generous bound for conditions that take a few protocol periods on the local preset.
const CONVERGE: Duration = Duration::from_secs(20);

fn key(byte: u8) -> Key {
    Key::from_bytes([byte; 32])
}

fn settings(name: &str, join: Vec<String>, key: Option<&Key>, label: Option<&str>) -> Settings {
    let file = FileSettings {
        encrypt: key.map(format_key),
        cluster_label: label.map(str::to_string),
        ..Default::default()
    };
    Settings::resolve(
        Some((std::path::Path::new("test.toml"), file)),
        support::overrides(name, join),
    )
    .expect("valid test settings")
}

async fn start(name: &str, join: Vec<String>, key: Option<&Key>, label: Option<&str>) -> App {
    let rng = name.bytes().map(u64::from).sum::<u64>();
    App::start(settings(name, join, key, label), rng)
        .await
        .expect("node starts")
}

fn alive(s: &Snapshot) -> usize {
    s.members.iter().filter(|m| m.state == State::Alive).count()
}

fn errors(s: &Snapshot, kind: &str) -> u64 {
    let at = DecodeErrorKind::ALL
        .iter()
        .find(|k| k.as_str() == kind)
        .expect("a counted kind");
    s.stats.decode_errors[at.index()]
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_captured_sealed_datagram_replayed_to_a_node_is_refused() {
    let k = key(3);
    let target = start("target", vec![], Some(&k), None).await;
    // A listener posing as a seed captures the sealed join of a real node.
    let spy = UdpSocket::bind("127.0.0.1:0").await.expect("bind the spy");
    let spy_addr = spy.local_addr().expect("spy address");
    let sender = start("sender", vec![spy_addr.to_string()], Some(&k), None).await;
    let mut buf = vec![0u8; 65_536];
    let (len, from) = tokio::time::timeout(CONVERGE, spy.recv_from(&mut buf))
        .await
        .expect("the join reaches the spy")
        .expect("receive");
    assert_eq!(from, sender.gossip_addr);
    let captured = buf[..len].to_vec();
    assert_eq!(
        captured[3] & hera::wire::flags::SEALED,
        1,
        "gossip is sealed"
    );

    // The first copy is new to the target and accepted; every later copy is refused.
    let before = target.handle.snapshot().stats.datagrams_in;
    for _ in 0..3 {
        spy.send_to(&captured, target.gossip_addr)
            .await
            .expect("send the replay");
    }
    let seen = target
        .handle
        .wait_for(CONVERGE, |s| s.stats.datagrams_in >= before + 3)
        .await
        .expect("the target receives all three copies");
    assert_eq!(
        errors(&seen, "replayed"),
        2,
        "{:?}",
        seen.stats.decode_errors
    );
    assert_eq!(errors(&seen, "authentication"), 0);

    // Reflected to its own sender, even the first copy is refused: it carries the sender's id.
    let before = sender.handle.snapshot();
    spy.send_to(&captured, sender.gossip_addr)
        .await
        .expect("reflect the datagram");
    let reflected = sender
        .handle
        .wait_for(CONVERGE, |s| {
            errors(s, "replayed") > errors(&before, "replayed")
        })
        .await;
    assert!(reflected.is_some(), "the sender refuses its own datagram");
    target.shutdown().await;
    sender.shutdown().await;
}

/// One pair per case: `a` seeds, `b` joins it with another label (or none). They stay apart,
/// and `a` counts the refusals as label mismatches. A third node with `a`'s label joins it at
/// once: the label, not the key or the address, is what kept the others out.
async fn clusters_stay_apart(k: Option<&Key>, b_label: Option<&str>, case: &str) {
    let a = start(&format!("{case}-a"), vec![], k, Some("blue")).await;
    let join = vec![a.gossip_addr.to_string()];
    let b = start(&format!("{case}-b"), join.clone(), k, b_label).await;
    let refused = a
        .handle
        .wait_for(CONVERGE, |s| errors(s, "label_mismatch") >= 3)
        .await;
    assert!(refused.is_some(), "{case}: the seed counts the other label");
    let c = start(&format!("{case}-c"), join, k, Some("blue")).await;
    for node in [&a, &c] {
        let both = node.handle.wait_for(CONVERGE, |s| alive(s) == 2).await;
        assert!(both.is_some(), "{case}: one label, one cluster");
    }
    for node in [&a, &b, &c] {
        let s = node.handle.snapshot();
        let names: Vec<_> = s.members.iter().map(|m| m.name.to_string()).collect();
        let expected = if s.name == b.handle.snapshot().name {
            1
        } else {
            2
        };
        assert_eq!(
            s.members.len(),
            expected,
            "{case}: {} sees {names:?}",
            s.name
        );
    }
    for node in [a, b, c] {
        node.shutdown().await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_clusters_with_one_key_but_different_labels_do_not_merge() {
    let k = key(9);
    clusters_stay_apart(Some(&k), Some("green"), "sealed").await;
    clusters_stay_apart(Some(&k), None, "sealed-unlabelled").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_plain_clusters_with_different_labels_do_not_merge() {
    clusters_stay_apart(None, Some("green"), "plain").await;
}
