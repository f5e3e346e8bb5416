//! The model network.
//!
//! Every datagram is judged twice:
//!
//! - **when it is sent**, the link model draws its fate from the world's generator: lost
//!   (uniform loss, or a per-link override), delivered once, or duplicated; each copy gets a
//!   one-way delay of `latency + U(0, jitter)`, and with probability `reorder` an extra delay
//!   of up to a few latencies so that it arrives after datagrams sent later;
//! - **when it arrives**, the partition state decides whether it gets through, so that cutting
//!   a link also loses what is already on the wire, as a real cable pull does.
//!
//! Partitions cost no all-pairs table: each node carries a small group id, and a set of
//! directed group pairs says which groups cannot reach which. A full partition cuts both
//! directions, an asymmetric one a single direction, and isolating a node moves it to a group
//! of its own cut off from every other. Single links can be overridden (blocked or given
//! their own loss) in a sparse map.
//!
//! **Data centres**: each node carries a small data-centre number (all 0 unless a scenario
//! places them). A datagram between two data centres follows the inter-DC link model
//! (`inter_dc`, when set) instead of the intra-DC one, and is counted apart, so a run can say
//! how much of its traffic crossed data centres.

use std::collections::{BTreeSet, HashMap};
use std::time::Duration;

use hera::config::Preset;
use rand_core::RngCore;
use serde::Serialize;

/// Per-datagram behaviour of every link, unless a link override says otherwise.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct LinkModel {
    /// Fixed part of the one-way delay, in microseconds.
    pub latency_us: u64,
    /// Uniform extra delay on top, in microseconds.
    pub jitter_us: u64,
    /// Probability that a datagram is lost.
    pub loss: f64,
    /// Probability that a delivered datagram arrives twice.
    pub duplicate: f64,
    /// Probability that a datagram is held back long enough to be overtaken.
    pub reorder: f64,
}

impl LinkModel {
    /// Delays typical of where each preset is meant to run; no loss.
    pub fn for_preset(preset: Preset) -> LinkModel {
        let (latency_us, jitter_us) = match preset {
            // Same data centre: a quarter of a millisecond one way.
            Preset::Lan => (250, 150),
            // Across continents: tens of milliseconds one way, with jitter.
            Preset::Wan => (40_000, 20_000),
            Preset::Local => (30, 20),
        };
        LinkModel {
            latency_us,
            jitter_us,
            loss: 0.0,
            duplicate: 0.0,
            reorder: 0.0,
        }
    }

    /// Between data centres of one region or a continent apart: 80 ms round trip with ±20 ms
    /// of jitter (one way 30 ms + U(0, 20 ms), so a round trip is 60-100 ms, 80 ms on
    /// average), 1% loss.
    pub fn inter_dc() -> LinkModel {
        LinkModel {
            latency_us: 30_000,
            jitter_us: 20_000,
            loss: 0.01,
            duplicate: 0.0,
            reorder: 0.0,
        }
    }
}

impl Default for LinkModel {
    /// The link between two data centres.
    fn default() -> LinkModel {
        LinkModel::inter_dc()
    }
}

/// A sparse exception for one directed link.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum LinkOverride {
    /// Everything from `from` to `to` is dropped.
    Blocked,
    /// This link loses datagrams with this probability instead of the model's.
    Loss(f64),
}

/// What happens to a datagram on the wire.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Fate {
    Lost,
    /// Delivered after this delay, and possibly a second copy after another.
    Deliver(u64, Option<u64>),
}

/// Counters of what the network did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct NetStats {
    pub sent: u64,
    pub sent_bytes: u64,
    pub delivered: u64,
    pub delivered_bytes: u64,
    pub lost: u64,
    pub duplicated: u64,
    pub reordered: u64,
    /// Dropped on arrival because of a partition or a blocked link.
    pub cut: u64,
    /// Dropped because the receiver was crashed (or not started).
    pub to_down_node: u64,
    /// Addressed to no node of the simulation.
    pub unroutable: u64,
    /// ICMP port-unreachable reports handed to senders (`World::port_unreachable`).
    pub port_unreachable: u64,
    /// Of `sent`, those between two data centres (lost or not).
    pub cross_dc_sent: u64,
    pub cross_dc_sent_bytes: u64,
    /// Of `sent`, bulk transfers a real driver paces (`Transmit::paced`): the simulator
    /// delivers them like the rest, as its nodes never run short of CPU or socket buffer.
    pub paced_sent: u64,
}

/// The network: link model, partitions, overrides and counters.
#[derive(Debug)]
pub struct Network {
    pub model: LinkModel,
    /// Links between data centres, if they differ from `model`.
    pub inter_dc: Option<LinkModel>,
    /// Each node's data centre; all 0 unless a scenario places them.
    dc: Vec<u8>,
    /// Each node's partition group; all 0 when the network is whole.
    group: Vec<u16>,
    /// Directed group pairs (from, to) that cannot talk.
    cuts: BTreeSet<(u16, u16)>,
    groups_used: u16,
    links: HashMap<(u32, u32), LinkOverride>,
    pub stats: NetStats,
}

impl Network {
    pub fn new(model: LinkModel, nodes: usize) -> Network {
        Network {
            model,
            inter_dc: None,
            dc: vec![0; nodes],
            group: vec![0; nodes],
            cuts: BTreeSet::new(),
            groups_used: 1,
            links: HashMap::new(),
            stats: NetStats::default(),
        }
    }

    /// Room for one more node (in group 0).
    pub fn add_node(&mut self) {
        self.group.push(0);
        self.dc.push(0);
    }

    /// Put node `node` in data centre `dc`.
    pub fn set_dc(&mut self, node: u32, dc: u8) {
        self.dc[node as usize] = dc;
    }

    pub fn dc_of(&self, node: u32) -> u8 {
        self.dc[node as usize]
    }

    /// The link model between `from` and `to`.
    fn model_between(&self, from: u32, to: u32) -> LinkModel {
        match self.inter_dc {
            Some(m) if self.dc[from as usize] != self.dc[to as usize] => m,
            _ => self.model,
        }
    }

    /// Decide at send time what becomes of one datagram.
    pub fn fate(&mut self, rng: &mut impl RngCore, from: u32, to: u32, bytes: usize) -> Fate {
        self.stats.sent += 1;
        self.stats.sent_bytes += bytes as u64;
        if self.dc[from as usize] != self.dc[to as usize] {
            self.stats.cross_dc_sent += 1;
            self.stats.cross_dc_sent_bytes += bytes as u64;
        }
        let m = self.model_between(from, to);
        let loss = match self.links.get(&(from, to)) {
            Some(LinkOverride::Loss(p)) => *p,
            _ => m.loss,
        };
        if loss > 0.0 && unit(rng) < loss {
            self.stats.lost += 1;
            return Fate::Lost;
        }
        let first = self.delay(rng, m);
        let second = (m.duplicate > 0.0 && unit(rng) < m.duplicate).then(|| {
            self.stats.duplicated += 1;
            self.delay(rng, m)
        });
        Fate::Deliver(first, second)
    }

    fn delay(&mut self, rng: &mut impl RngCore, m: LinkModel) -> u64 {
        let mut d = m.latency_us + below(rng, m.jitter_us + 1);
        if m.reorder > 0.0 && unit(rng) < m.reorder {
            self.stats.reordered += 1;
            d += below(rng, 4 * m.latency_us + m.jitter_us + 1);
        }
        d
    }

    /// Whether a datagram from `from` gets to `to` now (checked on arrival).
    pub fn passes(&self, from: u32, to: u32) -> bool {
        let (gf, gt) = (self.group[from as usize], self.group[to as usize]);
        if gf != gt && self.cuts.contains(&(gf, gt)) {
            return false;
        }
        !matches!(self.links.get(&(from, to)), Some(LinkOverride::Blocked))
    }

    /// Whether `a` and `b` can talk both ways, ignoring random loss.
    pub fn connected(&self, a: u32, b: u32) -> bool {
        self.passes(a, b) && self.passes(b, a)
    }

    /// The network is whole again: no groups, no cuts, no overrides.
    pub fn heal(&mut self) {
        self.group.iter_mut().for_each(|g| *g = 0);
        self.cuts.clear();
        self.links.clear();
        self.groups_used = 1;
    }

    fn new_group(&mut self) -> u16 {
        let g = self.groups_used;
        self.groups_used += 1;
        g
    }

    /// Split off `side` into a group of its own; returns its id. Cuts nothing yet.
    pub fn split_off(&mut self, side: &[u32]) -> u16 {
        let g = self.new_group();
        for &n in side {
            self.group[n as usize] = g;
        }
        g
    }

    /// Full partition: `sides` each become a group, cut both ways from every other group
    /// (including the rest, group 0).
    pub fn partition(&mut self, sides: &[&[u32]]) {
        let new: Vec<u16> = sides.iter().map(|s| self.split_off(s)).collect();
        for g in new {
            for other in 0..self.groups_used {
                if other != g {
                    self.cuts.insert((g, other));
                    self.cuts.insert((other, g));
                }
            }
        }
    }

    /// Asymmetric partition: nothing `from_side` sends reaches `to_side`; the other way works.
    pub fn one_way(&mut self, from_side: &[u32], to_side: &[u32]) {
        let a = self.split_off(from_side);
        let b = self.split_off(to_side);
        self.cuts.insert((a, b));
    }

    /// Cut one node off from everyone, both ways.
    pub fn isolate(&mut self, node: u32) {
        self.partition(&[&[node]]);
    }

    pub fn set_link(&mut self, from: u32, to: u32, link: LinkOverride) {
        self.links.insert((from, to), link);
    }

    /// Whether any partition or override is in force.
    pub fn is_whole(&self) -> bool {
        self.cuts.is_empty() && self.links.is_empty()
    }

    pub fn group_of(&self, node: u32) -> u16 {
        self.group[node as usize]
    }

    pub fn delay_bound(&self) -> Duration {
        let bound = |m: LinkModel| 5 * m.latency_us + 2 * m.jitter_us;
        let inter = self.inter_dc.map_or(0, bound);
        Duration::from_micros(bound(self.model).max(inter))
    }
}

/// A uniform float in [0, 1).
pub fn unit(rng: &mut impl RngCore) -> f64 {
    (rng.next_u64() >> 11) as f64 / (1u64 << 53) as f64
}

/// A uniform integer in `0..n` (0 when n is 0).
pub fn below(rng: &mut impl RngCore, n: u64) -> u64 {
    if n == 0 {
        return 0;
    }
    ((u128::from(rng.next_u64()) * u128::from(n)) >> 64) as u64
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand_chacha::rand_core::SeedableRng;
    use rand_chacha::ChaCha8Rng;

    #[test]
    fn partitions_cut_the_right_directions() {
        let mut net = Network::new(LinkModel::for_preset(Preset::Lan), 6);
        net.partition(&[&[0, 1]]);
        assert!(net.connected(0, 1) && net.connected(2, 3));
        assert!(!net.passes(0, 2) && !net.passes(2, 0));
        net.heal();
        net.one_way(&[0], &[1, 2]);
        assert!(!net.passes(0, 1) && net.passes(1, 0));
        assert!(net.passes(0, 3) && net.passes(3, 4));
        net.heal();
        net.isolate(5);
        assert!(!net.passes(5, 0) && !net.passes(4, 5) && net.passes(0, 4));
        net.set_link(1, 2, LinkOverride::Blocked);
        assert!(!net.passes(1, 2) && net.passes(2, 1));
        net.heal();
        assert!(net.is_whole() && net.connected(1, 2) && net.connected(5, 0));
    }

    #[test]
    fn loss_rate_is_close_to_the_model() {
        let mut model = LinkModel::for_preset(Preset::Lan);
        model.loss = 0.25;
        let mut net = Network::new(model, 2);
        let mut rng = ChaCha8Rng::seed_from_u64(1);
        let lost = (0..20_000)
            .filter(|_| net.fate(&mut rng, 0, 1, 10) == Fate::Lost)
            .count();
        assert!((4_500..5_500).contains(&lost), "{lost}");
    }

    #[test]
    fn links_between_data_centres_follow_their_own_model() {
        let mut net = Network::new(LinkModel::for_preset(Preset::Lan), 4);
        net.inter_dc = Some(LinkModel::inter_dc());
        net.set_dc(2, 1);
        net.set_dc(3, 1);
        let mut rng = ChaCha8Rng::seed_from_u64(1);
        let (mut lost, mut rtt_us) = (0, Vec::new());
        for _ in 0..10_000 {
            match (net.fate(&mut rng, 0, 2, 100), net.fate(&mut rng, 2, 0, 100)) {
                (Fate::Deliver(a, None), Fate::Deliver(b, None)) => rtt_us.push(a + b),
                _ => lost += 1,
            }
            // Inside a data centre: the lan model, never lost.
            match net.fate(&mut rng, 2, 3, 100) {
                Fate::Deliver(d, None) => assert!(d <= 400, "{d}"),
                other => panic!("{other:?}"),
            }
        }
        // 1% each way: about 2% of round trips.
        assert!((100..300).contains(&lost), "{lost}");
        let mean = rtt_us.iter().sum::<u64>() / rtt_us.len() as u64;
        assert!((78_000..82_000).contains(&mean), "{mean}");
        assert!(rtt_us.iter().all(|&r| (60_000..=100_000).contains(&r)));
        assert_eq!(net.stats.cross_dc_sent, 20_000);
        assert_eq!(net.stats.sent, 30_000);
    }
}
