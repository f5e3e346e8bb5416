//! Logging set-up, and the Prometheus export of a node's counters, views and HTTP traffic.
//!
//! # One recorder per node, not a global one
//!
//! `metrics` normally routes every macro call to one process-wide recorder. hera runs one node
//! per process in production, but the integration tests start several nodes in one process,
//! and each node's `/metrics` must show that node alone (a Prometheus server scraping three
//! test nodes must see three different `hera_quorum` series, not three copies of a merged
//! one). A global recorder labelled by node would make every node export every other node's
//! series. So each node owns a [`Telemetry`]: its own `PrometheusRecorder`, whose handles are
//! registered once through `metrics::with_local_recorder` and then updated directly. Nothing in
//! hera calls the `metrics` macros against the global recorder.
//!
//! # Where the numbers come from
//!
//! - The core's counters and views: the driver calls [`Telemetry::observe`] with the `Node`
//!   after every turn of its loop ([`node_metrics`]). The core itself never sees `metrics`.
//! - Probe round trips: drained from the core's `Stats` in that same call, so each sample is
//!   recorded once (the snapshot's `Stats` is a copy and would record them again).
//! - HTTP: the timing middleware ([`crate::runtime::http::timing`]) calls [`Telemetry::record_request`],
//!   which feeds both the Prometheus histogram and the sliding window behind `/v1/status`.
//! - The registry: counted from the published snapshot when `/metrics` is rendered, since
//!   every registry change publishes a new snapshot anyway.

pub mod latency;
pub mod node_metrics;

use std::io::IsTerminal;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use metrics_exporter_prometheus::{
    Matcher, PrometheusBuilder, PrometheusHandle, PrometheusRecorder,
};
use tracing_subscriber::filter::Targets;
use tracing_subscriber::layer::SubscriberExt;
use tracing_subscriber::util::SubscriberInitExt;

use crate::node::Node;
use crate::runtime::clock::Clock;
use latency::{LatencyWindows, Verb, VerbLatency};
use node_metrics::NodeMetrics;

/// HTTP metric names.
pub mod http_names {
    pub const REQUESTS: &str = "hera_http_requests_total";
    pub const DURATION: &str = "hera_http_request_duration_seconds";
}

/// Node identity, a constant 1 with the labels that matter when joining series.
const NODE_INFO: &str = "hera_node_info";

/// Bucket bounds for HTTP request latency, in seconds: a snapshot read on loopback is tens of
/// microseconds; a blocking query may hold a request for up to its wait time (minutes).
const HTTP_BUCKETS: [f64; 16] = [
    0.000_05, 0.000_1, 0.000_25, 0.000_5, 0.001, 0.002_5, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5,
    1.0, 10.0, 300.0,
];

/// Histogram samples wait in the recorder until a scrape drains them; with nobody scraping,
/// drain them this often so memory stays bounded.
const UPKEEP_EVERY: Duration = Duration::from_secs(5);

/// Install the global tracing subscriber at `level` (`error`…`trace`, or per-target levels such
/// as `hera=debug,tower=warn`). `RUST_LOG` wins when set.
///
/// A `Targets` filter rather than an `EnvFilter`: it takes the same `target=level` lists, and
/// leaves out the regular-expression engine behind span-field matching, which hera never
/// needs and which every idle node would otherwise carry in its resident pages.
pub fn init_logging(level: &str) -> Result<(), String> {
    let spec = match std::env::var("RUST_LOG") {
        Ok(env) if !env.trim().is_empty() => env,
        _ => level.to_string(),
    };
    let filter: Targets = spec
        .trim()
        .parse()
        .map_err(|e| format!("log level {spec:?}: {e}"))?;
    tracing_subscriber::registry()
        .with(
            tracing_subscriber::fmt::layer()
                .with_target(false)
                // Colour codes only for a person at a terminal, not in journald or a log file.
                .with_ansi(std::io::stdout().is_terminal()),
        )
        .with(filter)
        .try_init()
        .map_err(|e| e.to_string())
}

/// One node's metrics: cheap to clone (shared), safe to use from any task.
#[derive(Clone)]
pub struct Telemetry {
    inner: Arc<Inner>,
}

struct Inner {
    recorder: PrometheusRecorder,
    handle: PrometheusHandle,
    node: NodeMetrics,
    /// Counted by the shell, which runs the checks; the core only says when one is due.
    checks_started: metrics::Counter,
    checks_skipped: metrics::Counter,
    checks_failed: metrics::Counter,
    /// The driver's pacer of bulk sends (`driver::pacer`): backlog and drops.
    paced_backlog: metrics::Gauge,
    paced_dropped: metrics::Counter,
    latency: Mutex<LatencyWindows>,
    clock: Clock,
    last_upkeep_micros: AtomicU64,
}

impl std::fmt::Debug for Telemetry {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Telemetry").finish_non_exhaustive()
    }
}

impl Telemetry {
    /// A fresh recorder for `node`, with every metric described and registered.
    pub fn for_node(node: &Node, clock: Clock) -> Telemetry {
        // Constant bucket lists: the one expect below cannot fail on any input.
        #[allow(clippy::expect_used)]
        let recorder = PrometheusBuilder::new()
            .set_buckets_for_metric(
                Matcher::Full(node_metrics::names::PROBE_RTT.to_string()),
                &node_metrics::RTT_BUCKETS,
            )
            .and_then(|b| {
                b.set_buckets_for_metric(
                    Matcher::Full(http_names::DURATION.to_string()),
                    &HTTP_BUCKETS,
                )
            })
            // Only fails for an empty bucket list, and ours are constants.
            .expect("bucket lists are not empty")
            .build_recorder();
        let handle = recorder.handle();
        let (node_handles, checks, paced_backlog, paced_dropped) =
            metrics::with_local_recorder(&recorder, || {
                node_metrics::describe();
                describe_http();
                metrics::describe_gauge!(NODE_INFO, "This node's name and data centre (always 1).");
                metrics::gauge!(
                    NODE_INFO,
                    "node" => node.name().as_str().to_string(),
                    "dc" => node.profile().dc.as_str().to_string(),
                    "version" => env!("CARGO_PKG_VERSION"),
                )
                .set(1.0);
                metrics::gauge!(node_metrics::names::START_TIME)
                    .set(node.started().as_micros() as f64 / 1e6);
                (
                    NodeMetrics::register(),
                    [
                        metrics::counter!(node_metrics::names::CHECKS_STARTED),
                        metrics::counter!(node_metrics::names::CHECKS_SKIPPED),
                        metrics::counter!(node_metrics::names::CHECKS_FAILED),
                    ],
                    metrics::gauge!(node_metrics::names::PACED_BACKLOG),
                    metrics::counter!(node_metrics::names::PACED_DROPPED),
                )
            });
        let [checks_started, checks_skipped, checks_failed] = checks;
        Telemetry {
            inner: Arc::new(Inner {
                recorder,
                handle,
                node: node_handles,
                checks_started,
                checks_skipped,
                checks_failed,
                paced_backlog,
                paced_dropped,
                latency: Mutex::new(LatencyWindows::default()),
                clock,
                last_upkeep_micros: AtomicU64::new(0),
            }),
        }
    }

    /// Export the node's counters and views, and drain its probe round trips. Called by the
    /// node's task after every turn of its loop.
    pub fn observe(&self, node: &mut Node) {
        self.inner.node.observe(node);
        let now = self.inner.clock.now().as_micros();
        let last = self.inner.last_upkeep_micros.load(Ordering::Relaxed);
        if now.saturating_sub(last) >= UPKEEP_EVERY.as_micros() as u64 {
            self.inner.last_upkeep_micros.store(now, Ordering::Relaxed);
            self.inner.handle.run_upkeep();
        }
    }

    /// The pacer's backlog now and its drops so far.
    pub fn paced(&self, backlog_bytes: usize, dropped_total: u64) {
        self.inner.paced_backlog.set(backlog_bytes as f64);
        self.inner.paced_dropped.absolute(dropped_total);
    }

    /// Count one health check that started running (not one merely due).
    pub fn check_started(&self) {
        self.inner.checks_started.increment(1);
    }

    /// Count one health check due while its instance's last one had not finished.
    pub fn check_skipped(&self) {
        self.inner.checks_skipped.increment(1);
    }

    /// Count one health check whose result was not passing.
    pub fn check_failed(&self) {
        self.inner.checks_failed.increment(1);
    }

    /// The clock requests are timed with (the driver's: the one sanctioned clock read).
    pub fn clock(&self) -> Clock {
        self.inner.clock
    }

    /// Count one answered HTTP request and its latency, for Prometheus and for the status
    /// window. `route` is the matched route template, never the raw path.
    pub fn record_request(&self, method: &'static str, route: &str, status: u16, took: Duration) {
        metrics::with_local_recorder(&self.inner.recorder, || {
            let labels = [
                ("method", method.to_string()),
                ("route", route.to_string()),
                ("status", status.to_string()),
            ];
            metrics::counter!(http_names::REQUESTS, &labels).increment(1);
            metrics::histogram!(http_names::DURATION, &labels).record(took.as_secs_f64());
        });
        let verb = Verb {
            method,
            route: route.to_string(),
        };
        let now = self.inner.clock.now();
        self.latency()
            .record(verb, now, took, (500..600).contains(&status));
    }

    /// p50/p90/p99 per verb over the recent window.
    pub fn latency_summary(&self) -> Vec<VerbLatency> {
        let now = self.inner.clock.now();
        self.latency().summary(now)
    }

    /// Run `f` with this node's recorder as the current one (for metrics set at render time).
    pub fn with_recorder<T>(&self, f: impl FnOnce() -> T) -> T {
        metrics::with_local_recorder(&self.inner.recorder, f)
    }

    /// The Prometheus text exposition of everything recorded so far, families sorted by name
    /// (the exporter emits them in hash order; sorted output reads and diffs better).
    pub fn render(&self) -> String {
        sorted_families(&self.inner.handle.render())
    }

    fn latency(&self) -> std::sync::MutexGuard<'_, LatencyWindows> {
        // A panic while holding the lock cannot leave the windows inconsistent in a way that
        // matters for a latency summary: keep serving.
        self.inner
            .latency
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
    }
}

/// The exporter ends every family with a blank line and has none inside one; sort on that.
/// Series inside a family are sorted too, except histogram lines, whose bucket order matters.
fn sorted_families(text: &str) -> String {
    let mut families: Vec<String> = text
        .split("\n\n")
        .filter(|f| !f.trim().is_empty())
        .map(|family| {
            let (meta, mut series): (Vec<&str>, Vec<&str>) =
                family.lines().partition(|l| l.starts_with('#'));
            if !meta.iter().any(|l| l.ends_with(" histogram")) {
                series.sort_unstable();
            }
            let mut out = meta.join("\n");
            for line in series {
                out.push('\n');
                out.push_str(line);
            }
            out
        })
        .collect();
    // Sort by the metric name in the first line, which is `# HELP <name>` or `# TYPE <name>`.
    families.sort_by_cached_key(|f| f.split_whitespace().nth(2).unwrap_or_default().to_string());
    let mut out = families.join("\n\n");
    out.push('\n');
    out
}

fn describe_http() {
    metrics::describe_counter!(
        http_names::REQUESTS,
        "HTTP requests answered, by method, route template and status code."
    );
    metrics::describe_histogram!(
        http_names::DURATION,
        metrics::Unit::Seconds,
        "Time to answer HTTP requests (blocking queries included), by method, route template \
         and status code."
    );
}
