//! What the registry tests share: ids, specs, a joined cluster, and who holds what.

use std::time::Duration;

use hera::config::Config;
use hera::names::{InstanceId, ServiceName};
use hera::registry::InstanceSpec;
use hera_sim::World;

use super::{join_all, LATENCY};

pub fn id(s: &str) -> InstanceId {
    InstanceId::new(s).unwrap()
}

pub fn spec(service: &str, instance: &str) -> InstanceSpec {
    let mut s = InstanceSpec::new(ServiceName::new(service).unwrap(), "10.0.0.1", 8080);
    s.id = Some(id(instance));
    s
}

pub fn holds(c: &World, i: u32, instance: &str) -> bool {
    c.node(i)
        .is_some_and(|n| n.registry().get(&id(instance)).is_some())
}

pub fn everyone_holds(c: &World, set: &[u32], instance: &str) -> bool {
    set.iter().all(|&i| holds(c, i, instance))
}

pub fn nobody_holds(c: &World, set: &[u32], instance: &str) -> bool {
    set.iter().all(|&i| !holds(c, i, instance))
}

pub fn cluster(n: usize) -> World {
    cluster_seeded(n, 11)
}

/// [`cluster`] with its own seed.
pub fn cluster_seeded(n: usize, seed: u64) -> World {
    let mut w = World::manual(n, Config::local(), seed, LATENCY);
    for i in 0..n as u32 {
        w.start(i);
    }
    join_all(&mut w);
    w
}

/// A few gossip rounds: enough for an eagerly pushed update to reach a small cluster.
pub fn spread(c: &World) -> Duration {
    c.config().gossip_interval * 10
}
