//! Queries: requests to every live member, each answering the asker directly (SPEC §13; Serf
//! calls them queries). The cluster-wide keyring is built on them.
//!
//! - The asker gives the query an id (its name and its own counter), applies it itself, and
//!   queues it for dissemination like any update (piggybacked, `retransmit_mult · log N`
//!   sends). It collects answers until the deadline, or until every member it expected has
//!   answered, then emits [`Event::QueryDone`]: every answer, and who did not answer.
//! - A member that hears a query for the first time remembers its id for [`QUERY_REMEMBERED`],
//!   longer than any deadline and than the query can circulate (a bounded seen-set,
//!   [`SEEN_MAX`]), passes it on, applies it, and answers, in one
//!   datagram of at most [`crate::wire::ANSWER_PAYLOAD_MAX_BYTES`] of payload, to the asker's
//!   advertised address, and only if the asker is a live member here and within its rate
//!   ([`ANSWERS_PER_ASKER_PER_SEC`]). So a query makes each member send one bounded answer to
//!   one member: no amplification towards a stranger's address.
//! - A member that does not know a query's kind answers [`QueryOutcome::UnknownKind`].

use std::collections::{BTreeMap, BTreeSet};
use std::net::SocketAddr;
use std::time::Duration;

use super::{CommandError, Event, KeyringCommand, Node, Reply};
use crate::names::NodeName;
use crate::stats::Refusal;
use crate::swim::gossip::Subject;
use crate::swim::State;
use crate::time::Instant;
use crate::timers::Timer;
use crate::wire::{
    self, encode_message, Key, Message, Opaque, Query, QueryAnswer, QueryId, QueryOutcome,
    ANSWER_ERROR_MAX_BYTES, QUERY_PAYLOAD_MAX_BYTES,
};

/// Queries one node may have collecting answers at once. An operator runs one at a time; a
/// keyring `use` runs two back to back (a listing, then the change).
pub const QUERIES_IN_FLIGHT_MAX: usize = 4;
/// Shortest deadline: a round of gossip and an answer on a LAN.
pub const QUERY_TIMEOUT_MIN: Duration = Duration::from_millis(100);
/// Longest deadline: a minute covers dissemination across thousands of members on a WAN.
pub const QUERY_TIMEOUT_MAX: Duration = Duration::from_secs(60);
/// Query ids a member remembers at once (to apply and pass on each query once). At a few
/// queries a minute this is never reached; past it, new queries are not applied (counted as
/// `query_backlog`) rather than an old one forgotten and applied twice.
pub const SEEN_MAX: usize = 1_024;
/// How long a member remembers a query's id, whatever its deadline: longer than the query can
/// still circulate. Each member that hears it relays it for its own `retransmit_mult · log N`
/// sends, so a member that forgot the id at a short deadline would hear a late relay as a new
/// query, apply it again and relay it afresh: an echo that never ends. A minute is the longest
/// deadline, and far longer than dissemination takes on the WAN preset.
pub const QUERY_REMEMBERED: Duration = QUERY_TIMEOUT_MAX;
/// Answers one member sends one asker per second. A rotation costs three to five queries
/// spread over several seconds; eight leaves room for a script while a runaway asker
/// makes each member answer at most eight small datagrams a second.
pub const ANSWERS_PER_ASKER_PER_SEC: u32 = 8;

/// The kinds this build knows. On the wire a kind is a number, so that a member that does
/// not know a newer kind can say so rather than stay silent.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum QueryKind {
    KeyringList,
    KeyringInstall,
    KeyringUse,
    KeyringRemove,
}

impl QueryKind {
    pub const fn number(self) -> u16 {
        match self {
            QueryKind::KeyringList => 1,
            QueryKind::KeyringInstall => 2,
            QueryKind::KeyringUse => 3,
            QueryKind::KeyringRemove => 4,
        }
    }

    pub const fn from_number(n: u16) -> Option<QueryKind> {
        match n {
            1 => Some(QueryKind::KeyringList),
            2 => Some(QueryKind::KeyringInstall),
            3 => Some(QueryKind::KeyringUse),
            4 => Some(QueryKind::KeyringRemove),
            _ => None,
        }
    }
}

/// What to ask every member ([`super::Command::Query`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct QueryRequest {
    pub kind: u16,
    pub payload: Opaque<QUERY_PAYLOAD_MAX_BYTES>,
    /// How long to collect answers, from [`QUERY_TIMEOUT_MIN`] to [`QUERY_TIMEOUT_MAX`].
    pub timeout: Duration,
}

impl QueryRequest {
    /// A keyring operation on every member.
    pub fn keyring(op: &KeyringCommand, timeout: Duration) -> QueryRequest {
        let (kind, key) = match op {
            KeyringCommand::List => (QueryKind::KeyringList, None),
            KeyringCommand::Install(k) => (QueryKind::KeyringInstall, Some(k)),
            KeyringCommand::Use(k) => (QueryKind::KeyringUse, Some(k)),
            KeyringCommand::Remove(k) => (QueryKind::KeyringRemove, Some(k)),
        };
        let bytes = key.map(|k| k.as_bytes().to_vec()).unwrap_or_default();
        QueryRequest {
            kind: kind.number(),
            // A key's 32 bytes are well within the payload bound.
            payload: Opaque::new(bytes).unwrap_or_default(),
            timeout,
        }
    }
}

/// What a query collected, reported once at its deadline (or when all expected answered).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct QueryResult {
    pub id: QueryId,
    pub kind: u16,
    /// Every answer, this node's included, by member name.
    pub answers: Vec<(NodeName, QueryOutcome)>,
    /// Members known when the query started (alive, suspect or failed: not departed) that did
    /// not answer in time.
    pub missing: Vec<NodeName>,
}

/// A keyring answer's keys, the primary first; None if it is not a keyring listing.
pub fn keyring_of(outcome: &QueryOutcome) -> Option<Vec<Key>> {
    let QueryOutcome::Done(bytes) = outcome else {
        return None;
    };
    let bytes = bytes.as_bytes();
    if bytes.is_empty() || bytes.len() % wire::seal::KEY_BYTES != 0 {
        return None;
    }
    bytes
        .chunks(wire::seal::KEY_BYTES)
        .map(|k| Key::from_slice(k).ok())
        .collect()
}

/// The asker's and the members' bookkeeping.
#[derive(Debug)]
pub(crate) struct Queries {
    next_seq: u32,
    in_flight: BTreeMap<u32, InFlight>,
    /// Ids of queries heard (or asked), and when to forget each.
    seen: BTreeMap<QueryId, Instant>,
    /// Per asker: the start of its current one-second window and the answers sent in it.
    windows: BTreeMap<NodeName, (Instant, u32)>,
}

#[derive(Debug)]
struct InFlight {
    kind: u16,
    expected: BTreeSet<NodeName>,
    answers: BTreeMap<NodeName, QueryOutcome>,
}

impl Queries {
    /// `first_seq`: where this boot's ids start. Drawn per boot, so that a node restarted
    /// within [`QUERY_REMEMBERED`] does not reuse an id members still remember (and its query
    /// go unanswered).
    pub(crate) fn new(first_seq: u32) -> Queries {
        Queries {
            next_seq: first_seq,
            in_flight: BTreeMap::new(),
            seen: BTreeMap::new(),
            windows: BTreeMap::new(),
        }
    }

    /// Forget ids past their time (and stop passing those queries on).
    fn expire(&mut self, now: Instant, broadcasts: &mut crate::swim::gossip::Broadcasts) {
        let done: Vec<QueryId> = self
            .seen
            .iter()
            .filter(|(_, until)| **until <= now)
            .map(|(id, _)| id.clone())
            .collect();
        for id in done {
            self.seen.remove(&id);
            broadcasts.forget(&Subject::Query(id));
        }
    }

    /// May `asker` get one more answer now?
    fn within_rate(&mut self, now: Instant, asker: &NodeName) -> bool {
        const WINDOW: Duration = Duration::from_secs(1);
        if self.windows.len() >= SEEN_MAX {
            self.windows
                .retain(|_, (start, _)| now.saturating_since(*start) < WINDOW);
        }
        let window = self.windows.entry(asker.clone()).or_insert((now, 0));
        if now.saturating_since(window.0) >= WINDOW {
            *window = (now, 0);
        }
        if window.1 >= ANSWERS_PER_ASKER_PER_SEC {
            return false;
        }
        window.1 += 1;
        true
    }
}

fn invalid(detail: String) -> CommandError {
    CommandError::Invalid { detail }
}

impl Node {
    /// Ask every member: see the module documentation.
    pub(super) fn start_query(
        &mut self,
        now: Instant,
        request: QueryRequest,
    ) -> Result<Reply, CommandError> {
        if !(QUERY_TIMEOUT_MIN..=QUERY_TIMEOUT_MAX).contains(&request.timeout) {
            return Err(invalid(format!(
                "query timeout {} ms is out of range {}..={} ms",
                request.timeout.as_millis(),
                QUERY_TIMEOUT_MIN.as_millis(),
                QUERY_TIMEOUT_MAX.as_millis()
            )));
        }
        if self.queries.in_flight.len() >= QUERIES_IN_FLIGHT_MAX {
            return Err(invalid(format!(
                "queries in flight: {} already, the most allowed is {QUERIES_IN_FLIGHT_MAX}; wait for one to finish",
                self.queries.in_flight.len()
            )));
        }
        self.queries.expire(now, &mut self.io.broadcasts);
        if self.queries.seen.len() >= SEEN_MAX {
            return Err(invalid(format!(
                "queries remembered: {} already, the most allowed is {SEEN_MAX}; wait for them to expire",
                self.queries.seen.len()
            )));
        }
        let seq = self.queries.next_seq;
        self.queries.next_seq = seq.wrapping_add(1);
        let id = QueryId {
            asker: self.membership.name.clone(),
            seq,
        };
        let expected: BTreeSet<NodeName> = self
            .membership
            .members
            .iter()
            .filter(|(_, m)| m.state != State::Left)
            .map(|(name, _)| name.clone())
            .chain(std::iter::once(self.membership.name.clone()))
            .collect();
        let query = Query {
            id: id.clone(),
            kind: request.kind,
            timeout_ms: u32::try_from(request.timeout.as_millis()).unwrap_or(u32::MAX),
            payload: request.payload,
        };
        self.queries.seen.insert(id.clone(), now + QUERY_REMEMBERED);
        self.io.broadcasts.push(
            Subject::Query(id.clone()),
            encode_message(&Message::Query(query.clone())).into(),
        );
        self.io.want_push();
        let own = self.apply_query(&query);
        self.queries.in_flight.insert(
            seq,
            InFlight {
                kind: request.kind,
                expected,
                answers: BTreeMap::from([(self.membership.name.clone(), own)]),
            },
        );
        self.io
            .timers
            .schedule(now + request.timeout, Timer::QueryDeadline { seq });
        self.finish_if_complete(seq);
        Ok(Reply::QueryStarted { id })
    }

    /// A query heard by gossip.
    pub(super) fn on_query(&mut self, now: Instant, query: Query) {
        if query.id.asker == self.membership.name {
            return;
        }
        self.queries.expire(now, &mut self.io.broadcasts);
        if self.queries.seen.contains_key(&query.id) {
            return;
        }
        let timeout = Duration::from_millis(u64::from(query.timeout_ms));
        if !(QUERY_TIMEOUT_MIN..=QUERY_TIMEOUT_MAX).contains(&timeout) {
            // Only a broken or hostile member sends this: it is not passed on.
            return;
        }
        if self.queries.seen.len() >= SEEN_MAX {
            self.io.stats.reply_refused(Refusal::QueryBacklog);
            return;
        }
        self.queries
            .seen
            .insert(query.id.clone(), now + QUERY_REMEMBERED);
        self.io.broadcasts.push(
            Subject::Query(query.id.clone()),
            encode_message(&Message::Query(query.clone())).into(),
        );
        self.io.want_push();
        let Some(to) = self.live_address(&query.id.asker) else {
            self.io.stats.reply_refused(Refusal::QueryAsker);
            return;
        };
        if !self.queries.within_rate(now, &query.id.asker) {
            self.io.stats.reply_refused(Refusal::QueryRate);
            return;
        }
        let outcome = self.apply_query(&query);
        let answer = Message::QueryAnswer(QueryAnswer {
            id: query.id,
            responder: self.membership.name.clone(),
            outcome,
        });
        self.io.send(to, &[answer]);
    }

    /// An answer to one of our queries.
    pub(super) fn on_query_answer(&mut self, from: SocketAddr, answer: QueryAnswer) {
        if answer.id.asker != self.membership.name {
            return;
        }
        // Only the member itself, from its advertised address, answers for its name.
        if self.live_address(&answer.responder) != Some(from) {
            return;
        }
        let Some(query) = self.queries.in_flight.get_mut(&answer.id.seq) else {
            return;
        };
        query
            .answers
            .entry(answer.responder)
            .or_insert(answer.outcome);
        self.finish_if_complete(answer.id.seq);
    }

    pub(super) fn on_query_deadline(&mut self, seq: u32) {
        self.finish_query(seq);
    }

    fn finish_if_complete(&mut self, seq: u32) {
        let complete = self
            .queries
            .in_flight
            .get(&seq)
            .is_some_and(|q| q.expected.iter().all(|n| q.answers.contains_key(n)));
        if complete {
            self.finish_query(seq);
        }
    }

    fn finish_query(&mut self, seq: u32) {
        let Some(query) = self.queries.in_flight.remove(&seq) else {
            return;
        };
        let missing = query
            .expected
            .iter()
            .filter(|n| !query.answers.contains_key(*n))
            .cloned()
            .collect();
        let result = QueryResult {
            id: QueryId {
                asker: self.membership.name.clone(),
                seq,
            },
            kind: query.kind,
            answers: query.answers.into_iter().collect(),
            missing,
        };
        self.io.emit(Event::QueryDone(Box::new(result)));
    }

    /// The advertised address of `name` if it is a live member here.
    fn live_address(&self, name: &NodeName) -> Option<SocketAddr> {
        self.membership
            .members
            .get(name)
            .filter(|m| m.state.is_live())
            .map(|m| m.addr())
    }

    /// Carry out a query here and say what came of it.
    fn apply_query(&mut self, query: &Query) -> QueryOutcome {
        let Some(kind) = QueryKind::from_number(query.kind) else {
            return QueryOutcome::UnknownKind;
        };
        let key = || Key::from_slice(query.payload.as_bytes());
        let op = match kind {
            QueryKind::KeyringList => Ok(KeyringCommand::List),
            QueryKind::KeyringInstall => key().map(KeyringCommand::Install),
            QueryKind::KeyringUse => key().map(KeyringCommand::Use),
            QueryKind::KeyringRemove => key().map(|key| {
                // Already gone here (a remove run again after a partial one): nothing to do,
                // as installing a key already present does nothing.
                let held = self
                    .keyring()
                    .is_some_and(|ring| ring.keys().contains(&key));
                if held {
                    KeyringCommand::Remove(key)
                } else {
                    KeyringCommand::List
                }
            }),
        };
        let done = op
            .map_err(CommandError::Keyring)
            .and_then(|op| self.keyring_command(op));
        match done {
            Ok(Reply::Keyring { keys, .. }) => {
                let bytes: Vec<u8> = keys.iter().flat_map(|k| *k.as_bytes()).collect();
                Opaque::new(bytes).map_or_else(
                    || refused("the keyring does not fit an answer"),
                    QueryOutcome::Done,
                )
            }
            Ok(_) => refused("unexpected reply"),
            Err(e) => refused(&e.to_string()),
        }
    }
}

fn refused(why: &str) -> QueryOutcome {
    let mut why = why.to_owned();
    if why.len() > ANSWER_ERROR_MAX_BYTES {
        let mut cut = ANSWER_ERROR_MAX_BYTES;
        while !why.is_char_boundary(cut) {
            cut = cut.saturating_sub(1);
        }
        why.truncate(cut);
    }
    QueryOutcome::Refused(crate::bounded::BoundedString(why))
}
