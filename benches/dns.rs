//! Criterion benches of the DNS face's query handler (`dns::respond`): bytes in, bytes out,
//! against the fuzz fixture's snapshot (70 `web` instances, 64 of them served).
//!
//! `cargo bench --bench dns`. These are the per-query CPU costs behind docs/dns.md's
//! throughput figures, free of the socket and of dnsperf's own load.

use criterion::{black_box, criterion_group, criterion_main, Criterion};
use hickory_proto::rr::RecordType;
use rand_chacha::ChaCha8Rng;
use rand_core::SeedableRng;

use hera::runtime::dns::cache::UDP_CACHE_RECORDS;
use hera::runtime::dns::fuzzing::fixture;
use hera::runtime::dns::query::question;
use hera::runtime::dns::{respond, AnswerCache, DnsConfig, Transport};

fn queries(c: &mut Criterion) {
    let config = DnsConfig::default();
    let snapshot = fixture();
    let cases = [
        ("a_edns", "web.service.consul.", RecordType::A, Some(1232)),
        (
            "a_plain_truncated",
            "web.service.consul.",
            RecordType::A,
            None,
        ),
        (
            "srv_edns_truncated",
            "web.service.consul.",
            RecordType::SRV,
            Some(1232),
        ),
        ("a_one_instance", "db.service.consul.", RecordType::A, None),
        ("nxdomain", "nope.service.consul.", RecordType::A, None),
    ];
    let mut group = c.benchmark_group("dns_respond");
    for (label, name, wanted, edns) in cases {
        let request = question(7, name, wanted, edns);
        let mut rng = ChaCha8Rng::seed_from_u64(1);
        // As the UDP listener serves: one cache, the snapshot unchanged between queries.
        let mut cache = AnswerCache::new(UDP_CACHE_RECORDS);
        group.bench_function(label, |b| {
            b.iter(|| {
                respond(
                    snapshot,
                    &config,
                    &mut cache,
                    black_box(&request),
                    Transport::Udp,
                    &mut rng,
                )
            })
        });
    }
    group.finish();
}

criterion_group! {
    name = benches;
    config = Criterion::default()
        .sample_size(20)
        .warm_up_time(std::time::Duration::from_millis(500))
        .measurement_time(std::time::Duration::from_secs(2));
    targets = queries
}
criterion_main!(benches);
