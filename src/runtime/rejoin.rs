//! Consul's `retry_join`, and more: while this node sees no other live member (a first start,
//! a restart whose peers have not noticed it yet, or every member it knew failed), it resolves
//! its `join` addresses again and asks the core to join through them and through the members
//! it remembers from its last run, backing off up to a minute. Once it has company it waits
//! until it is alone again, so a partition longer than members are remembered still heals.

use std::net::SocketAddr;
use std::time::Duration;

use crate::node::{Command, Lifecycle};
use crate::runtime::driver::{NodeHandle, Snapshot};
use crate::runtime::http;
use crate::swim::State;

/// First wait between rounds; it doubles up to [`RETRY_MAX`]. The core retries each join by
/// itself in between (`join_retry_interval`); a round also re-resolves the names.
const RETRY_FIRST: Duration = Duration::from_secs(2);
const RETRY_MAX: Duration = Duration::from_secs(60);
/// Remembered members joined through in one round: enough to find one alive among many
/// failed, without a datagram to every member a large cluster ever had.
const REMEMBERED_PER_ROUND_MAX: usize = 16;

/// Keep this node joined through `seeds` (names or addresses) and `remembered` addresses.
pub fn spawn(handle: NodeHandle, seeds: Vec<String>, remembered: Vec<SocketAddr>) {
    if seeds.is_empty() && remembered.is_empty() {
        return;
    }
    tokio::spawn(async move {
        let mut delay = RETRY_FIRST;
        let mut round: usize = 0;
        loop {
            let now = handle.snapshot();
            if now.lifecycle != Lifecycle::Active {
                return;
            }
            if !alone(&now) {
                delay = RETRY_FIRST;
                // Wake when alone again (or the node stops).
                if handle
                    .wait_for(Duration::MAX, |s| {
                        alone(s) || s.lifecycle != Lifecycle::Active
                    })
                    .await
                    .is_none()
                {
                    return;
                }
                continue;
            }
            let mut addrs = resolve_all(&seeds).await;
            addrs.extend(pick(&remembered, round));
            addrs.sort();
            addrs.dedup();
            round = round.wrapping_add(1);
            if !addrs.is_empty() {
                match handle.command(Command::Join { seeds: addrs }).await {
                    Ok(_) => {
                        tracing::info!(seeds = ?seeds, remembered = remembered.len(), "joining")
                    }
                    Err(e) => tracing::debug!(error = %e, "join not started"),
                }
            }
            let _ = handle
                .wait_for(delay, |s| !alone(s) || s.lifecycle != Lifecycle::Active)
                .await;
            delay = (delay * 2).min(RETRY_MAX);
        }
    });
}

/// No other member is alive or suspect.
fn alone(snapshot: &Snapshot) -> bool {
    !snapshot
        .members
        .iter()
        .any(|m| !m.is_self && matches!(m.state, State::Alive | State::Suspect))
}

async fn resolve_all(seeds: &[String]) -> Vec<SocketAddr> {
    let mut addrs = Vec::new();
    for seed in seeds {
        match http::agent::resolve(seed).await {
            Ok(found) => addrs.extend(found),
            Err(e) => tracing::warn!(seed = %seed, error = %e.message, "cannot resolve seed yet"),
        }
    }
    addrs
}

/// A window of the remembered members that moves each round, so every one is tried in turn.
fn pick(remembered: &[SocketAddr], round: usize) -> Vec<SocketAddr> {
    if remembered.len() <= REMEMBERED_PER_ROUND_MAX {
        return remembered.to_vec();
    }
    let start = round.wrapping_mul(REMEMBERED_PER_ROUND_MAX) % remembered.len();
    remembered
        .iter()
        .cycle()
        .skip(start)
        .take(REMEMBERED_PER_ROUND_MAX)
        .copied()
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_remembered_member_is_tried_in_turn() {
        let all: Vec<SocketAddr> = (0..40)
            .map(|p| SocketAddr::from(([127, 0, 0, 1], 7000 + p)))
            .collect();
        let mut seen = std::collections::BTreeSet::new();
        for round in 0..3 {
            let chosen = pick(&all, round);
            assert_eq!(chosen.len(), REMEMBERED_PER_ROUND_MAX);
            seen.extend(chosen);
        }
        assert_eq!(seen.len(), all.len());
    }
}
