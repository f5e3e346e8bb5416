//! File descriptors: what the node may open against what the process may hold.
//!
//! The HTTP face holds up to `2 × (blocking_waiters_max + 256)` connections
//! ([`ConnectionLimits::for_waiters`]): 2,560 by default, up to ~131,000 at the setting's
//! top. A process's soft `RLIMIT_NOFILE` is often 1,024. A node past its limit fails in
//! confusing places: accepts (the listener retries quietly), a data-dir write, a health
//! check's connection, a DNS TCP answer. So at start, before anything is bound:
//!
//! 1. the soft limit is raised to the hard one, as Go's runtime does for Consul and Serf
//!    since Go 1.19 (the hard limit is what the operator allowed; the soft one is a default
//!    meant for programs that never asked);
//! 2. the bound is checked against it, with [`RESERVED`] descriptors kept for the node's own
//!    sockets and files. A bound the operator *asked for* (file or flag) that does not fit is
//!    refused with the setting, its value, the limit and what to do, like any setting the
//!    node cannot honour (values are never clamped, README "Configuration"). The *default*
//!    is hera's own choice, and `hera run` with no arguments must start anywhere (SPEC §5):
//!    it is lowered to what fits, with a warning naming the limit. The DNS face does the same
//!    (`DnsListen::Default` runs without, `DnsListen::At` refuses). Only when not even one
//!    blocking query fits is the default refused too: such a node could not serve its API.
//!
//! Consul itself never compares its connection limits with the descriptor limit; an operator
//! of it meets the problem as accept errors in the log. Refusing at start, with the number to
//! set, is the earlier and clearer of the two.

use crate::runtime::dns::server::TCP_CONNECTIONS_MAX as DNS_TCP_CONNECTIONS_MAX;
use crate::runtime::driver::CHECKS_IN_FLIGHT_MAX;
use crate::runtime::http::ConnectionLimits;

/// Descriptors kept for the node's own use besides HTTP connections: standard streams (3);
/// the runtime's poller and wake-ups (3); the gossip socket, the HTTP listener and the DNS
/// listeners (4); the data directory's lock, log, a file being replaced and the directory
/// being synced (4); a join or the CLI's own connection, and slack (18): 32 in all. Then each
/// DNS TCP connection, and two per health check in flight (its connection, and a resolver's
/// socket while its host name is looked up).
pub const RESERVED: u64 = 32 + DNS_TCP_CONNECTIONS_MAX as u64 + 2 * CHECKS_IN_FLIGHT_MAX as u64;

/// The process's descriptor limit: soft, and hard (`None`: unlimited).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limit {
    pub soft: Option<u64>,
    pub hard: Option<u64>,
}

/// Raise the soft descriptor limit to the hard one, and return the limit now in force. Where
/// the raise is refused (macOS refuses an unlimited soft limit), the old limit stays.
pub fn raise_soft_limit() -> Limit {
    use rustix::process::{getrlimit, setrlimit, Resource, Rlimit};
    let before = getrlimit(Resource::Nofile);
    if before.current != before.maximum {
        let raised = Rlimit {
            current: before.maximum,
            maximum: before.maximum,
        };
        if let Err(e) = setrlimit(Resource::Nofile, raised) {
            tracing::debug!(error = %e, "could not raise the soft descriptor limit");
        }
    }
    let now = getrlimit(Resource::Nofile);
    Limit {
        soft: now.current,
        hard: now.maximum,
    }
}

/// Descriptors a node with this bound on blocking queries may need at once.
pub fn needed(waiters_max: usize) -> u64 {
    let connections = ConnectionLimits::for_waiters(waiters_max).open_max;
    u64::try_from(connections)
        .unwrap_or(u64::MAX)
        .saturating_add(RESERVED)
}

/// The largest bound on blocking queries whose [`needed`] fits `limit`; None if not even one.
pub fn waiters_fitting(limit: u64) -> Option<usize> {
    // needed is increasing in the bound: search it rather than invert its formula, so the two
    // cannot drift apart.
    let (mut low, mut high) = (0usize, 1usize << 20);
    while low < high {
        let mid = low + (high - low).div_ceil(2);
        if needed(mid) <= limit {
            low = mid;
        } else {
            high = mid - 1;
        }
    }
    (low >= 1).then_some(low)
}

/// The bound on blocking queries the node runs with: `waiters_max` if it fits `limit`'s soft
/// limit; for a default (`asked` false), the most that fits; otherwise why not.
pub fn fit(waiters_max: usize, asked: bool, limit: Limit) -> Result<usize, TooFew> {
    let Some(soft) = limit.soft else {
        return Ok(waiters_max);
    };
    if needed(waiters_max) <= soft {
        return Ok(waiters_max);
    }
    let fitting = waiters_fitting(soft);
    match fitting {
        Some(lower) if !asked => {
            tracing::warn!(
                "blocking_waiters_max lowered from its default {waiters_max} to {lower}: the \
                 default needs up to {} file descriptors, but this process may open only {soft} \
                 (RLIMIT_NOFILE); raise the limit (`ulimit -n`, or LimitNOFILE= in the systemd \
                 unit) to keep the default",
                needed(waiters_max)
            );
            Ok(lower)
        }
        _ => Err(TooFew {
            waiters_max,
            asked,
            needed: needed(waiters_max),
            limit: soft,
            fitting,
        }),
    }
}

/// A bound on blocking queries that the descriptor limit cannot hold.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TooFew {
    pub waiters_max: usize,
    /// Set in the file or by a flag (not the default).
    pub asked: bool,
    /// Descriptors it needs ([`needed`]).
    pub needed: u64,
    /// The soft limit, after raising it to the hard one.
    pub limit: u64,
    /// The largest bound that fits, if any.
    pub fitting: Option<usize>,
}

impl std::fmt::Display for TooFew {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let TooFew {
            waiters_max,
            needed,
            limit,
            ..
        } = self;
        let connections = needed.saturating_sub(RESERVED);
        write!(
            f,
            "blocking_waiters_max = {waiters_max}{} needs up to {needed} file descriptors \
             ({connections} HTTP connections and {RESERVED} for the node's own sockets and \
             files), but this process may open only {limit} (RLIMIT_NOFILE, hard limit): raise \
             the limit (`ulimit -n`, or LimitNOFILE= in the systemd unit)",
            if self.asked { "" } else { " (the default)" },
        )?;
        match self.fitting {
            Some(fitting) => write!(f, " or set blocking_waiters_max to at most {fitting}"),
            None => write!(
                f,
                "; the node needs at least {} with blocking_waiters_max = 1",
                self::needed(1)
            ),
        }
    }
}

impl std::error::Error for TooFew {}

#[cfg(test)]
mod tests {
    use super::*;

    fn limit(soft: u64) -> Limit {
        Limit {
            soft: Some(soft),
            hard: Some(soft),
        }
    }

    #[test]
    fn needed_counts_both_sides_of_every_request_and_the_reserve() {
        // 2 × (1,024 waiters + 256 ordinary requests) connections.
        assert_eq!(needed(1_024), 2_560 + RESERVED);
        assert_eq!(needed(1), 514 + RESERVED);
    }

    #[test]
    fn the_largest_fitting_bound_fits_and_one_more_does_not() {
        for soft in [needed(1), 1_000, 1_024, 4_096, 65_536, 1 << 20] {
            let fitting = waiters_fitting(soft).unwrap();
            assert!(needed(fitting) <= soft, "{soft}");
            assert!(needed(fitting + 1) > soft, "{soft}");
        }
        assert_eq!(waiters_fitting(needed(1) - 1), None);
        assert_eq!(waiters_fitting(64), None);
    }

    #[test]
    fn a_bound_that_fits_is_kept_asked_or_not() {
        assert_eq!(fit(1_024, true, limit(20_000)), Ok(1_024));
        assert_eq!(fit(1_024, false, limit(needed(1_024))), Ok(1_024));
        let unlimited = Limit {
            soft: None,
            hard: None,
        };
        assert_eq!(fit(65_536, true, unlimited), Ok(65_536));
    }

    #[test]
    fn an_asked_bound_is_refused_and_a_default_lowered() {
        let refused = fit(1_024, true, limit(1_024)).unwrap_err();
        assert_eq!(refused.fitting, waiters_fitting(1_024));
        let text = refused.to_string();
        assert!(
            text.starts_with("blocking_waiters_max = 1024 needs up to"),
            "{text}"
        );
        assert!(text.contains("only 1024"), "{text}");
        assert!(
            text.ends_with(&format!("at most {}", refused.fitting.unwrap())),
            "{text}"
        );
        assert_eq!(
            fit(1_024, false, limit(1_024)),
            Ok(waiters_fitting(1_024).unwrap())
        );
    }

    #[test]
    fn a_limit_too_low_for_one_waiter_is_refused_even_for_the_default() {
        let refused = fit(1_024, false, limit(64)).unwrap_err();
        assert_eq!(refused.fitting, None);
        let text = refused.to_string();
        assert!(
            text.contains("(the default)") && text.contains("only 64"),
            "{text}"
        );
        assert!(text.contains(&format!("at least {}", needed(1))), "{text}");
    }
}
