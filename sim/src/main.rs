//! The simulator's command line: run one scenario (or a range of swarm seeds) and print its
//! report.
//!
//! ```text
//! hera-sim --scenario NAME [--nodes N] [--seed S] [--loss P] [--duration SECS]
//!          [--preset lan|wan|local] [--runs R] [--json] [-v] [--instances K]
//!          [--suspicion-base MS] [--port-unreachable]
//! ```

use std::alloc::{GlobalAlloc, Layout, System};
use std::process::ExitCode;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use hera::config::schema::{self, Naming, Value};
use hera::config::Preset;
use hera_sim::scenario::{self, Params, SCENARIOS};

const USAGE: &str = "usage: hera-sim --scenario NAME [--nodes N] [--seed S] [--loss P] \
[--duration SECS] [--preset lan|wan|local] [--runs R] [--json] [-v]
          [--dc-rtt MS] [--dc-jitter MS] [--instances K] [--suspicion-base MS] [--port-unreachable]
  --suspicion-base MS     the preset's suspicion_base, overridden (the config's range: 10 ms
                          to 10 min)
  --port-unreachable      a datagram to a crashed node comes back as ICMP port unreachable, as
                          on a host whose process died (default: nothing comes back)
  --instances K           instances each node registers (registry-churn; default 1000)
  --dc-rtt, --dc-jitter   round trip between data centres (dc3; default 80 ms, ±20 ms)
  --runs R   run seeds S, S+1, ..., S+R-1 and stop at the first failure
  --list     list the scenarios";

/// The system allocator, counting live bytes so that the report can weigh the member tables.
struct Counting;

static LIVE_BYTES: AtomicUsize = AtomicUsize::new(0);
/// The most `LIVE_BYTES` ever was: the heap's own peak, to set against the peak RSS (the
/// difference is the allocator's: freed memory it kept, and fragmentation).
static PEAK_BYTES: AtomicUsize = AtomicUsize::new(0);

fn grew(by: usize) {
    let live = LIVE_BYTES.fetch_add(by, Ordering::Relaxed) + by;
    PEAK_BYTES.fetch_max(live, Ordering::Relaxed);
}

// SAFETY: every call is passed unchanged to the system allocator; the counter only observes.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        grew(layout.size());
        // SAFETY: same contract as ours.
        unsafe { System.alloc(layout) }
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        LIVE_BYTES.fetch_sub(layout.size(), Ordering::Relaxed);
        // SAFETY: same contract as ours.
        unsafe { System.dealloc(ptr, layout) }
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        // The old block is still live while the new one is made: the peak counts both.
        grew(new_size);
        LIVE_BYTES.fetch_sub(layout.size(), Ordering::Relaxed);
        // SAFETY: same contract as ours.
        unsafe { System.realloc(ptr, layout, new_size) }
    }
}

#[global_allocator]
static ALLOCATOR: Counting = Counting;

fn heap_bytes() -> usize {
    LIVE_BYTES.load(Ordering::Relaxed)
}

struct Args {
    params: Params,
    runs: u64,
    json: bool,
}

fn parse(mut args: impl Iterator<Item = String>) -> Result<Option<Args>, String> {
    let mut p = Params::new("join", 0, 1);
    let (mut runs, mut json) = (1, false);
    // --dc-rtt and --dc-jitter, combined once both are known.
    let mut rtt_jitter_ms: [Option<f64>; 2] = [None, None];
    // Bounded: every iteration consumes at least one argument.
    while let Some(arg) = args.next() {
        let mut value = |name: &str| args.next().ok_or(format!("{name} needs a value"));
        match arg.as_str() {
            "--scenario" => p.scenario = value("--scenario")?,
            "--nodes" => p.nodes = number(&value("--nodes")?, "--nodes")?,
            "--seed" => p.seed = number(&value("--seed")?, "--seed")?,
            "--runs" => runs = number(&value("--runs")?, "--runs")?,
            "--instances" => {
                let k: usize = number(&value("--instances")?, "--instances")?;
                if !(1..=100_000).contains(&k) {
                    return Err("--instances is a count per node from 1 to 100000".into());
                }
                p.per_node = Some(k);
            }
            "--loss" => {
                let l: f64 = number(&value("--loss")?, "--loss")?;
                if !(0.0..=1.0).contains(&l) {
                    return Err("--loss is a probability between 0 and 1".into());
                }
                p.loss = Some(l);
            }
            "--duration" => {
                let secs: f64 = number(&value("--duration")?, "--duration")?;
                if !(secs.is_finite() && secs >= 0.0) {
                    return Err("--duration is a number of seconds".into());
                }
                p.duration = Some(Duration::from_secs_f64(secs));
            }
            "--suspicion-base" => {
                let ms: f64 = number(&value(&arg)?, &arg)?;
                p.suspicion_base = Some(suspicion_base(ms)?);
            }
            "--dc-rtt" | "--dc-jitter" => {
                let ms: f64 = number(&value(&arg)?, &arg)?;
                if !(ms.is_finite() && (0.0..=10_000.0).contains(&ms)) {
                    return Err(format!("{arg} is a number of milliseconds up to 10000"));
                }
                rtt_jitter_ms[usize::from(arg == "--dc-jitter")] = Some(ms);
            }
            "--preset" => {
                let v = value("--preset")?;
                p.preset = Preset::parse(&v).ok_or(format!("unknown preset {v:?}"))?;
            }
            "--json" => json = true,
            "--port-unreachable" => p.port_unreachable = true,
            "-v" | "--verbose" => p.verbose = true,
            "--list" => {
                for s in SCENARIOS {
                    let loss = if s.takes_loss { " (takes --loss)" } else { "" };
                    println!("{}{loss}", s.name);
                }
                return Ok(None);
            }
            "-h" | "--help" => {
                println!("{USAGE}");
                return Ok(None);
            }
            other => return Err(format!("unknown argument {other:?}\n{USAGE}")),
        }
    }
    if rtt_jitter_ms.iter().any(Option::is_some) {
        // The round trip is two one-way delays of latency + U(0, jitter) each: it is the RTT
        // asked for on average, ± jitter.
        let d = p.inter_dc;
        let jitter_us = rtt_jitter_ms[1].map_or(d.jitter_us, |ms| (ms * 1e3) as u64);
        let rtt_us =
            rtt_jitter_ms[0].map_or(2 * d.latency_us + d.jitter_us, |ms| (ms * 1e3) as u64);
        p.inter_dc.latency_us = (rtt_us.saturating_sub(jitter_us)) / 2;
        p.inter_dc.jitter_us = jitter_us;
    }
    p.heap_bytes = Some(heap_bytes);
    if p.nodes == 0 && p.scenario != "swarm" {
        p.nodes = 32;
    }
    Ok(Some(Args {
        params: p,
        runs: runs.max(1),
        json,
    }))
}

/// `ms` milliseconds as a `suspicion_base`, refused outside the range the config schema gives
/// the field (the one a node's config file and API are held to).
fn suspicion_base(ms: f64) -> Result<Duration, String> {
    let d = Duration::try_from_secs_f64(ms / 1e3)
        .map_err(|_| format!("--suspicion-base: {ms} is not a number of milliseconds"))?;
    let field = schema::find(Naming::File, "suspicion_base")
        .ok_or("--suspicion-base: the config schema has no suspicion_base")?;
    field
        .meta
        .check(Naming::File, Value::Duration(d))
        .map_err(|e| format!("--suspicion-base: {e}"))?;
    Ok(d)
}

fn number<T: std::str::FromStr>(s: &str, name: &str) -> Result<T, String> {
    s.parse()
        .map_err(|_| format!("{name}: not a number: {s:?}"))
}

/// Peak resident set size of this process, from /proc (Linux only).
fn peak_rss_bytes() -> Option<u64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with("VmHWM:"))?;
    let kib: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kib * 1024)
}

// The one wall-clock read of the simulator: its speed. The world itself never reads a clock.
#[allow(clippy::disallowed_methods)]
fn wall_now() -> std::time::Instant {
    std::time::Instant::now()
}

/// glibc raises its mmap threshold each time a large block is freed (up to 32 MiB), after
/// which the member tables, which grow by doubling to about 1 MiB per node at 10,000 nodes,
/// come from the heap, and the blocks they leave behind stay in the process. A fixed
/// threshold keeps every block of 64 KiB or more in its own mapping, returned when freed:
/// the 2,000-node join peaked at 1,047 instead of 1,294 MiB, for about 10% more CPU
/// (docs/scale.md).
#[cfg(all(target_os = "linux", target_env = "gnu"))]
fn fix_mmap_threshold() {
    // SAFETY: mallopt only sets an allocator parameter; called before any thread starts.
    unsafe {
        libc::mallopt(libc::M_MMAP_THRESHOLD, 64 * 1024);
    }
}

#[cfg(not(all(target_os = "linux", target_env = "gnu")))]
fn fix_mmap_threshold() {}

fn main() -> ExitCode {
    fix_mmap_threshold();
    let args = match parse(std::env::args().skip(1)) {
        Ok(Some(a)) => a,
        Ok(None) => return ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("{e}");
            return ExitCode::from(2);
        }
    };
    let first_seed = args.params.seed;
    for seed in first_seed..first_seed.saturating_add(args.runs) {
        let mut params = args.params.clone();
        params.seed = seed;
        let started = wall_now();
        let mut outcome = match scenario::run(params) {
            Ok(o) => o,
            Err(e) => {
                eprintln!("{e}");
                return ExitCode::from(2);
            }
        };
        let r = &mut outcome.report;
        r.wall_s = started.elapsed().as_secs_f64();
        r.speed = r.simulated_s * outcome.world.len() as f64 / r.wall_s.max(1e-9);
        r.peak_rss_bytes = peak_rss_bytes();
        // Over the process so far: with --runs, the largest run's.
        r.peak_heap_bytes = Some(PEAK_BYTES.load(Ordering::Relaxed) as u64);
        if args.json {
            match serde_json::to_string_pretty(&r) {
                Ok(s) => println!("{s}"),
                Err(e) => eprintln!("cannot encode the report: {e}"),
            }
        } else {
            println!("{}", r.render());
        }
        if !r.passed {
            eprintln!(
                "FAILED: scenario {} seed {}: {}\nreplay: {}",
                r.scenario,
                r.seed,
                r.failure.as_deref().unwrap_or(""),
                r.replay
            );
            return ExitCode::FAILURE;
        }
    }
    ExitCode::SUCCESS
}

#[cfg(test)]
mod tests {
    use super::*;

    use hera_sim::scenario::Ctx;

    fn parsed(args: &[&str]) -> Result<Option<Args>, String> {
        parse(args.iter().map(|s| s.to_string()))
    }

    #[test]
    fn suspicion_base_reaches_the_world_and_the_replay() {
        let args = parsed(&["--scenario", "crash", "--suspicion-base", "1250"])
            .unwrap()
            .unwrap();
        assert_eq!(
            args.params.suspicion_base,
            Some(Duration::from_millis(1_250))
        );
        assert!(
            args.params.replay().ends_with(" --suspicion-base 1250"),
            "{}",
            args.params.replay()
        );
        let ctx = Ctx::new(args.params);
        assert_eq!(
            ctx.world.config().suspicion_base,
            Duration::from_millis(1_250)
        );
        assert_eq!(ctx.report.suspicion_base_s, 1.25);
        // Without the flag, the preset's.
        let ctx = Ctx::new(parsed(&["--scenario", "crash"]).unwrap().unwrap().params);
        assert_eq!(
            ctx.world.config().suspicion_base,
            Preset::Lan.config().suspicion_base
        );
    }

    #[test]
    fn suspicion_base_outside_the_schemas_range_is_refused() {
        for bad in ["5", "0", "-1", "nan", "inf", "600001", "1e30", "x"] {
            let e = parsed(&["--suspicion-base", bad]).err();
            assert!(
                e.as_deref().is_some_and(|e| e.contains("--suspicion-base")),
                "{bad}: {e:?}"
            );
        }
        for good in ["10", "1000", "600000"] {
            assert!(parsed(&["--suspicion-base", good]).is_ok(), "{good}");
        }
    }
}
