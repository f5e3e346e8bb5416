//! Property test of the group commit's account of changes: random operations of every kind
//! that can change an owned instance, group commits at random points, restarts; after every
//! commit, what a restart would load is what the node owns, and every id whose stored record
//! changed is among the changes the node noted (checked against an independent account: the
//! registries compared entry by entry). A path that changes an owned instance without noting
//! it is a lost acknowledged write after a restart (issue 17).

use std::collections::BTreeSet;

use rand_chacha::ChaCha8Rng;
use rand_core::{RngCore, SeedableRng};

use super::*;
use crate::names::NodeName;
use crate::registry::{Entry, Health, Hlc, SpecCheck};
use crate::wire::{encode_message, DatagramBuilder, Message};

/// Ids drawn from a small pool, so operations keep hitting the same instances.
const IDS: u64 = 12;

fn peer() -> NodeName {
    NodeName::new("n1").unwrap()
}

fn pick(rng: &mut ChaCha8Rng, n: u64) -> u64 {
    rng.next_u64() % n
}

fn random_id(rng: &mut ChaCha8Rng) -> InstanceId {
    InstanceId::new(&format!("web-{}", pick(rng, IDS))).unwrap()
}

impl Bench {
    /// Drain what the node said: nobody listens, but outputs left queued are not realistic.
    fn drain(&mut self) {
        while self.node.poll_transmit().is_some() {}
        while self.node.poll_event().is_some() {}
    }

    /// A command that may be refused (an unknown id): refusals are part of the game.
    fn try_command(&mut self, command: Command) {
        self.now = self.now + Duration::from_millis(1);
        let _ = self.node.handle_command(self.now, command);
        self.drain();
    }

    /// An entry from a peer, gossiped, as the network brings it.
    fn gossip(&mut self, entry: Entry) {
        let mut d = DatagramBuilder::new(1_400);
        assert!(d.try_push(&encode_message(&Message::Entry(entry))));
        let from = SocketAddr::from(([127, 0, 0, 1], 7001));
        self.now = self.now + Duration::from_millis(1);
        self.node.handle_datagram(self.now, from, &d.finish());
        self.drain();
    }

    /// Let time pass by `step`, a timer at a time (TTLs lapse, liveness expires, tombstones go).
    fn wait(&mut self, step: Duration) {
        let until = self.now + step;
        while let Some(at) = self.node.poll_timeout().filter(|at| *at <= until) {
            self.now = at.max(self.now);
            self.node.handle_timeout(self.now);
            self.drain();
        }
        self.now = until;
    }

    /// A version newer than what the node holds of `id`, as a peer would write it.
    fn newer_version(&self, id: &InstanceId) -> Hlc {
        let held = self.node.registry().stored(id).map(|s| s.version.wall_ms);
        Hlc {
            wall_ms: held.unwrap_or(self.now.as_millis()) + 1,
            counter: 0,
            node: peer(),
        }
    }

    /// One random operation on the node; what it did that the test must see happen.
    fn random_op(&mut self, rng: &mut ChaCha8Rng, seen: &mut Seen) {
        let id = random_id(rng);
        match pick(rng, 12) {
            0..=2 => {
                let mut spec = InstanceSpec::new(ServiceName::new("web").unwrap(), "10.0.0.1", 80);
                spec.id = Some(id);
                spec.tags = vec![format!("t{}", pick(rng, 3))];
                match pick(rng, 3) {
                    0 => spec.liveness = Some(Duration::from_secs(1 + pick(rng, 5))),
                    1 => {
                        spec.check = SpecCheck::Ttl {
                            ttl: Duration::from_secs(1 + pick(rng, 5)),
                        };
                        spec.deregister_critical_after = Some(Duration::from_secs(60));
                    }
                    _ => {}
                }
                self.try_command(Command::Register(spec));
            }
            3 => self.try_command(Command::Deregister { id }),
            4 => self.try_command(Command::Renew { id }),
            5 => {
                let health =
                    [Health::Passing, Health::Warning, Health::Critical][pick(rng, 3) as usize];
                let output = format!("o{}", pick(rng, 100));
                self.try_command(Command::SetHealth { id, health, output });
            }
            6 => self.try_command(Command::SetMaintenance {
                id,
                enable: pick(rng, 2) == 0,
                reason: None,
            }),
            7 => self.try_command(Command::SetNodeMaintenance {
                enable: pick(rng, 2) == 0,
                reason: Some("kernel".into()),
            }),
            8 => {
                // A peer's newer write of the instance: taken over by it, or naming us still
                // (our own instance, changed elsewhere), or deleted there.
                let version = self.newer_version(&id);
                let held = self.node.registry().get(&id).cloned();
                let instance = match (pick(rng, 3), held) {
                    (0, Some(mut i)) => {
                        i.owner = peer();
                        Some(Box::new(i))
                    }
                    (1, Some(mut i)) => {
                        i.health = Health::Warning;
                        Some(Box::new(i))
                    }
                    _ => None,
                };
                let owned = self.node.local_instances().contains(&id);
                self.gossip(Entry {
                    id: id.clone(),
                    version,
                    instance,
                });
                if owned {
                    match self.node.local_instances().contains(&id) {
                        true => seen.changed_by_peer += 1,
                        false => seen.taken_by_peer += 1,
                    }
                }
            }
            _ => {
                let expired = self.node.stats().instances_expired;
                self.wait(Duration::from_millis(200 + 400 * pick(rng, 10)));
                seen.expired += self.node.stats().instances_expired - expired;
            }
        }
    }

    /// A group commit, checked: the changes the node noted since the last commit cover every
    /// owned record that changed, and the files now hold exactly what the node owns.
    fn checked_commit(&mut self, last: &mut Option<Arc<Snapshot>>, seed: u64, step: usize) {
        let snapshot = self.snapshot();
        if let Some(base) = last.as_ref() {
            let noted: BTreeSet<&InstanceId> = snapshot
                .owned_changes
                .since(&base.owned_changes)
                .expect("a dozen ids stay within the window")
                .collect();
            let compared = snapshot.registry.changed_since(&base.registry);
            let moved = base.local.diff(&snapshot.local).map(|d| match d {
                imbl::ordset::DiffItem::Add(id) | imbl::ordset::DiffItem::Remove(id) => id,
            });
            for id in compared.chain(moved) {
                let kept = |s: &Snapshot| render::owned(s, id).map(|(stored, _)| stored.clone());
                if kept(base) != kept(&snapshot) {
                    assert!(
                        noted.contains(id),
                        "seed {seed}, step {step}: {id} changed on disk but was not noted"
                    );
                }
            }
        }
        self.store.commit(&snapshot).unwrap();
        assert_eq!(
            loaded(self.dir()).unwrap(),
            held(&snapshot),
            "seed {seed}, step {step}: a restart would not load what the node owns"
        );
        *last = Some(snapshot);
    }

    /// Stop (the store dropped after its last commit) and start again on the same data_dir:
    /// a new process under the same name, which restores its instances and writes them back.
    fn restart(self, seed: u64) -> Bench {
        let Bench {
            node,
            now,
            store,
            _dir,
        } = self;
        drop((node, store));
        let (store, saved) = Store::open(_dir.path(), &me()).unwrap();
        let node = Node::new(Config::local(), identity(), seed.wrapping_add(1), now);
        let mut bench = Bench {
            node,
            now,
            store,
            _dir,
        };
        bench.try_command(Command::Restore(Box::new(saved.restored)));
        bench.store.begin(bench.snapshot()).unwrap();
        bench
    }
}

/// What the operations did, over all seeds: each must have happened for the test to mean
/// anything.
#[derive(Debug, Default)]
struct Seen {
    changed_by_peer: u64,
    taken_by_peer: u64,
    expired: u64,
    restored: usize,
}

/// Every way an owned instance changes (register, deregister, renew, health, maintenance of
/// one and of the node, TTL lapses, liveness expiry, a peer's write naming us or another owner,
/// a peer's deletion, a restart's restore), in random order, with group commits and
/// compactions at random points: after each commit the files hold what the node owns.
#[test]
fn every_change_to_an_owned_instance_reaches_the_log() {
    let mut seen = Seen::default();
    for seed in 0..24 {
        let mut rng = ChaCha8Rng::seed_from_u64(seed);
        let mut bench = Bench::new();
        bench.store.begin(bench.snapshot()).unwrap();
        let mut last = Some(bench.snapshot());
        for step in 0..400 {
            bench.random_op(&mut rng, &mut seen);
            match pick(&mut rng, 20) {
                0..=5 => bench.checked_commit(&mut last, seed, step),
                6 => {
                    let dir = bench.dir().to_path_buf();
                    bench.store.instances.compact_now(&dir).unwrap();
                }
                7 => {
                    bench.checked_commit(&mut last, seed, step);
                    bench = bench.restart(seed);
                    seen.restored += bench.node.local_instances().len();
                    last = Some(bench.snapshot());
                    assert_eq!(loaded(bench.dir()).unwrap(), held(&bench.snapshot()));
                }
                _ => {}
            }
        }
        bench.checked_commit(&mut last, seed, 400);
    }
    assert!(
        seen.changed_by_peer > 0 && seen.taken_by_peer > 0 && seen.expired > 0 && seen.restored > 0,
        "{seen:?}"
    );
}
