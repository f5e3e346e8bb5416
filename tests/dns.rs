//! The DNS face of real nodes on loopback, queried by real clients: hickory's stub resolver
//! (here, in every `cargo test`) and `dig` from the Debian package `dnsutils` (the tests marked
//! `#[ignore]`, run by `scripts/test.sh` with `--ignored` after installing it).

use std::net::{IpAddr, SocketAddr};
use std::process::Command as Process;
use std::time::Duration;

use hera::names::{InstanceId, ServiceName};
use hera::node::Command;
use hera::registry::InstanceSpec;
use hera::runtime::app::App;
use hera::runtime::settings::{FileSettings, Overrides, Settings};
use hickory_resolver::config::{ConnectionConfig, NameServerConfig, ResolverConfig, ResolverOpts};
use hickory_resolver::net::runtime::TokioRuntimeProvider;
use hickory_resolver::proto::rr::RecordType;
use hickory_resolver::{Resolver, TokioResolver};

/// Bound for a node to publish a change it has made.
const PUBLISHED: Duration = Duration::from_secs(5);

async fn start(name: &str, domain: Option<&str>) -> App {
    let file = FileSettings {
        dns_domain: domain.map(str::to_string),
        ..Default::default()
    };
    let settings = Settings::resolve(
        Some((std::path::Path::new("test.toml"), file)),
        Overrides {
            name: Some(name.to_string()),
            bind: Some("127.0.0.1:0".to_string()),
            http: Some("127.0.0.1:0".to_string()),
            dns: Some("127.0.0.1:0".to_string()),
            preset: Some("local".to_string()),
            ..Default::default()
        },
    )
    .expect("valid test settings");
    App::start(settings, 11).await.expect("node starts")
}

/// Register `service` instances `(id, address, tags)` with the node.
async fn register(node: &App, service: &str, instances: &[(&str, &str, &[&str])]) {
    for (id, address, tags) in instances {
        let mut spec = InstanceSpec::new(ServiceName::new(service).unwrap(), address, 8080);
        spec.id = Some(InstanceId::new(id).unwrap());
        spec.tags = tags.iter().map(|t| t.to_string()).collect();
        node.handle
            .command(Command::Register(spec))
            .await
            .expect("registered");
    }
    let count = instances.len();
    let service = ServiceName::new(service).unwrap();
    node.handle
        .wait_for(PUBLISHED, |s| s.registry.service(&service).count() >= count)
        .await
        .expect("the registration is published");
}

fn resolver(dns: SocketAddr) -> TokioResolver {
    let mut udp = ConnectionConfig::udp();
    udp.port = dns.port();
    let mut tcp = ConnectionConfig::tcp();
    tcp.port = dns.port();
    let server = NameServerConfig::new(dns.ip(), true, vec![udp, tcp]);
    let mut opts = ResolverOpts::default();
    opts.cache_size = 0;
    opts.attempts = 1;
    opts.timeout = Duration::from_secs(2);
    Resolver::builder_with_config(
        ResolverConfig::from_name_servers(vec![server]),
        TokioRuntimeProvider::default(),
    )
    .with_options(opts)
    .build()
    .expect("a resolver")
}

fn ip(s: &str) -> IpAddr {
    s.parse().unwrap()
}

async fn addresses(r: &TokioResolver, name: &str) -> Vec<IpAddr> {
    let mut found: Vec<IpAddr> = r
        .lookup(name, RecordType::A)
        .await
        .unwrap_or_else(|e| panic!("{name}: {e}"))
        .answers()
        .iter()
        .filter_map(|r| match &r.data {
            hickory_resolver::proto::rr::RData::A(a) => Some(IpAddr::V4(a.0)),
            _ => None,
        })
        .collect();
    found.sort();
    found
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stub_resolver_finds_services_nodes_and_srv_targets() {
    let node = start("dns-a", None).await;
    let dns = node.dns_addr.expect("DNS is on");
    register(
        &node,
        "web",
        &[
            ("web-1", "10.0.0.1", &["v1"]),
            ("web-2", "10.0.0.2", &["v2"]),
            ("web-3", "", &["v2"]),
        ],
    )
    .await;
    let r = resolver(dns);

    assert_eq!(
        addresses(&r, "web.service.consul.").await,
        vec![ip("10.0.0.1"), ip("10.0.0.2"), ip("127.0.0.1")]
    );
    assert_eq!(
        addresses(&r, "v2.web.service.dc1.consul.").await,
        vec![ip("10.0.0.2"), ip("127.0.0.1")]
    );
    assert_eq!(
        addresses(&r, "dns-a.node.consul.").await,
        vec![ip("127.0.0.1")]
    );

    // SRV: one per instance, targets resolved from the additional section.
    let srv = r
        .lookup("_web._v2.service.consul.", RecordType::SRV)
        .await
        .expect("SRV answer");
    let mut targets: Vec<String> = srv
        .answers()
        .iter()
        .filter_map(|rec| match &rec.data {
            hickory_resolver::proto::rr::RData::SRV(s) => {
                assert_eq!(s.port, 8080);
                Some(s.target.to_ascii())
            }
            _ => None,
        })
        .collect();
    targets.sort();
    assert_eq!(
        targets,
        vec!["0a000002.addr.dc1.consul.", "dns-a.node.dc1.consul."]
    );
    for target in targets {
        let found = addresses(&r, &target).await;
        assert_eq!(found.len(), 1, "{target}: {found:?}");
    }

    // Unknown names are NXDOMAIN (with the SOA for negative caching).
    let missing = r
        .lookup("nope.service.consul.", RecordType::A)
        .await
        .expect_err("no such service");
    assert!(missing.is_nx_domain(), "{missing}");
    assert!(missing.into_soa().is_some(), "an SOA for negative caching");

    // Off-line: the next answer leaves it out.
    node.handle
        .command(Command::SetMaintenance {
            id: InstanceId::new("web-1").unwrap(),
            enable: true,
            reason: None,
        })
        .await
        .expect("maintenance on");
    node.handle
        .wait_for(PUBLISHED, |s| {
            s.registry
                .get(&InstanceId::new("web-1").unwrap())
                .is_some_and(|i| !i.online)
        })
        .await
        .expect("published");
    assert_eq!(
        addresses(&r, "web.service.consul.").await,
        vec![ip("10.0.0.2"), ip("127.0.0.1")]
    );
    node.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_configured_domain_and_dns_off() {
    let node = start("dns-b", Some("hera")).await;
    register(&node, "db", &[("db-1", "10.0.9.1", &[])]).await;
    let r = resolver(node.dns_addr.expect("DNS is on"));
    assert_eq!(
        addresses(&r, "db.service.hera.").await,
        vec![ip("10.0.9.1")]
    );
    // `consul.` is not ours any more: refused, not resolved.
    let other = r
        .lookup("db.service.consul.", RecordType::A)
        .await
        .expect_err("refused");
    assert!(!other.is_nx_domain(), "{other}");
    node.shutdown().await;

    let settings = Settings::resolve(
        None,
        Overrides {
            name: Some("dns-off".into()),
            bind: Some("127.0.0.1:0".into()),
            http: Some("127.0.0.1:0".into()),
            dns: Some(String::new()),
            ..Default::default()
        },
    )
    .unwrap();
    let off = App::start(settings, 3).await.unwrap();
    assert_eq!(off.dns_addr, None);
    off.shutdown().await;
}

// ---- dig ----------------------------------------------------------------------------------

/// `dig` against the node, with `args` after the server and port; its stdout.
fn dig(dns: SocketAddr, args: &[&str]) -> String {
    let out = Process::new("dig")
        .arg(format!("@{}", dns.ip()))
        .args(["-p", &dns.port().to_string(), "+time=2", "+tries=1"])
        .args(args)
        .output()
        .expect("dig runs (apt-get install dnsutils)");
    assert!(out.status.success(), "dig {args:?}: {out:?}");
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// The answer-section lines of dig's `+noall +answer` (or other section) output.
fn lines(text: &str) -> Vec<String> {
    text.lines()
        .filter(|l| !l.starts_with(';') && !l.trim().is_empty())
        .map(|l| l.split_whitespace().collect::<Vec<_>>().join(" "))
        .collect()
}

fn status(text: &str) -> &str {
    text.split("status: ")
        .nth(1)
        .and_then(|rest| rest.split(',').next())
        .unwrap_or("none")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs dig (dnsutils); scripts/test.sh installs it"]
async fn dig_every_name_form() {
    let node = start("dig-a", None).await;
    let dns = node.dns_addr.unwrap();
    register(
        &node,
        "web",
        &[
            ("web-1", "10.0.0.1", &["v1"]),
            ("web-2", "10.0.0.2", &["v2"]),
            ("web-6", "2001:db8::6", &["v2"]),
        ],
    )
    .await;
    let d = |args: &[&str]| tokio::task::block_in_place(|| dig(dns, args));

    let a = d(&["+noall", "+answer", "web.service.consul", "A"]);
    let mut got = lines(&a);
    got.sort();
    assert_eq!(
        got,
        vec![
            "web.service.consul. 0 IN A 10.0.0.1",
            "web.service.consul. 0 IN A 10.0.0.2"
        ]
    );
    let aaaa = d(&["+noall", "+answer", "web.service.consul", "AAAA"]);
    assert_eq!(
        lines(&aaaa),
        vec!["web.service.consul. 0 IN AAAA 2001:db8::6"]
    );
    let tag = d(&["+noall", "+answer", "v1.web.service.consul"]);
    assert_eq!(lines(&tag), vec!["v1.web.service.consul. 0 IN A 10.0.0.1"]);
    let dc = d(&["+noall", "+answer", "web.service.dc1.consul"]);
    assert_eq!(lines(&dc).len(), 2);
    let node_a = d(&["+noall", "+answer", "dig-a.node.consul"]);
    assert_eq!(lines(&node_a), vec!["dig-a.node.consul. 0 IN A 127.0.0.1"]);
    let ptr = d(&["+noall", "+answer", "-x", "127.0.0.1"]);
    assert_eq!(
        lines(&ptr),
        vec!["1.0.0.127.in-addr.arpa. 0 IN PTR dig-a.node.dc1.consul."]
    );

    // SRV with the targets' addresses in the additional section.
    let srv = d(&[
        "+noall",
        "+answer",
        "+additional",
        "_web._v2.service.consul",
        "SRV",
    ]);
    let mut got = lines(&srv);
    got.sort();
    let v6 = "20010db8000000000000000000000006.addr.dc1.consul.";
    assert_eq!(
        got,
        vec![
            format!("0a000002.addr.dc1.consul. 0 IN A 10.0.0.2"),
            format!("{v6} 0 IN AAAA 2001:db8::6"),
            format!("_web._v2.service.consul. 0 IN SRV 1 1 8080 0a000002.addr.dc1.consul."),
            format!("_web._v2.service.consul. 0 IN SRV 1 1 8080 {v6}"),
        ]
    );

    // NXDOMAIN and NODATA, both with the SOA; REFUSED outside the domain.
    let nx = d(&["nope.service.consul"]);
    assert_eq!(status(&nx), "NXDOMAIN", "{nx}");
    assert!(nx.contains("AUTHORITY: 1"), "{nx}");
    assert!(
        nx.contains("IN\tSOA\tns.consul. hostmaster.consul."),
        "{nx}"
    );
    let nodata = d(&["dig-a.node.consul", "AAAA"]);
    assert_eq!(status(&nodata), "NOERROR");
    assert!(nodata.contains("ANSWER: 0, AUTHORITY: 1"), "{nodata}");
    let refused = d(&["example.com"]);
    assert_eq!(status(&refused), "REFUSED", "{refused}");
    assert!(!refused.contains(" ra"), "no recursion offered: {refused}");

    // Off-line: out of the very next answer.
    node.handle
        .command(Command::SetMaintenance {
            id: InstanceId::new("web-1").unwrap(),
            enable: true,
            reason: None,
        })
        .await
        .unwrap();
    node.handle
        .wait_for(PUBLISHED, |s| {
            s.registry
                .get(&InstanceId::new("web-1").unwrap())
                .is_some_and(|i| !i.online)
        })
        .await
        .expect("published");
    let after = d(&["+noall", "+answer", "web.service.consul"]);
    assert_eq!(lines(&after), vec!["web.service.consul. 0 IN A 10.0.0.2"]);
    node.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs dig (dnsutils); scripts/test.sh installs it"]
async fn dig_truncation_and_the_tcp_retry() {
    let node = start("dig-b", None).await;
    let dns = node.dns_addr.unwrap();
    let ids: Vec<(String, String)> = (1..=40)
        .map(|i| (format!("big-{i}"), format!("10.1.0.{i}")))
        .collect();
    let instances: Vec<(&str, &str, &[&str])> = ids
        .iter()
        .map(|(id, addr)| (id.as_str(), addr.as_str(), &[][..]))
        .collect();
    register(&node, "big", &instances).await;
    let d = |args: &[&str]| tokio::task::block_in_place(|| dig(dns, args));

    // Over UDP without EDNS: cut to 512 bytes, TC set.
    let udp = d(&["+ignore", "+noedns", "big.service.consul"]);
    assert!(udp.contains("flags: qr aa tc"), "{udp}");
    assert!(udp.contains("MSG SIZE  rcvd: 5"), "{udp}");
    // dig retries a truncated answer over TCP by itself: all 40.
    let retried = d(&["+noedns", "big.service.consul"]);
    assert!(
        retried.contains("Truncated, retrying in TCP mode"),
        "{retried}"
    );
    assert!(retried.contains("ANSWER: 40,"), "{retried}");
    // With EDNS0's 1,232 bytes, 40 addresses fit over UDP.
    let edns = d(&["+bufsize=1232", "big.service.consul"]);
    assert!(edns.contains("ANSWER: 40,"), "{edns}");
    assert!(!edns.contains("flags: qr aa tc"), "{edns}");
    // Shuffled: two answers in the same order 5 times in a row would be a 1-in-10^40 event.
    let orders: std::collections::BTreeSet<Vec<String>> = (0..5)
        .map(|_| lines(&d(&["+tcp", "+noall", "+answer", "big.service.consul"])))
        .collect();
    assert!(orders.len() > 1, "the same order every time");
    node.shutdown().await;
}
