//! Queries (`node::query`): a request disseminated to every member, each answering the asker
//! directly; the asker reports every answer and who did not answer. The keyring is the verb.

mod support;

use std::collections::BTreeMap;
use std::time::Duration;

use hera::bounded::BoundedString;
use hera::config::Config;
use hera::names::NodeName;
use hera::node::{
    keyring_of, Event, KeyringCommand, QueryRequest, QueryResult, Refusal,
    ANSWERS_PER_ASKER_PER_SEC, QUERIES_IN_FLIGHT_MAX, QUERY_TIMEOUT_MIN,
};
use hera::wire::{self, Key, Keyring, Message, Opaque, Query, QueryAnswer, QueryId, QueryOutcome};
use hera::{Command, Reply};
use hera_sim::observe::Sent;
use hera_sim::{node_name, World};
use support::{join, join_all, us, LATENCY};

const TIMEOUT: Duration = Duration::from_secs(2);

fn key(byte: u8) -> Key {
    Key::from_bytes([byte; 32])
}

/// `n` joined nodes, sealed with `key(1)` when `encrypted`.
fn cluster(n: usize, encrypted: bool) -> World {
    let mut w = World::manual(n, Config::local(), 31, LATENCY);
    for i in 0..n as u32 {
        w.start(i);
        if encrypted {
            w.with_node(i, |node, _| node.set_keyring(Keyring::new(key(1))));
        }
    }
    join_all(&mut w);
    w
}

/// Ask from `asker` and run until its `QueryDone`; the result and how long it took.
fn ask(w: &mut World, asker: u32, request: QueryRequest) -> (QueryResult, Duration) {
    let reply = w.command(asker, Command::Query(request));
    let Ok(Reply::QueryStarted { id }) = reply else {
        panic!("query refused: {reply:?}");
    };
    let start = w.now_us();
    let done = |w: &World| {
        w.events()
            .iter()
            .any(|(_, i, e)| *i == asker && matches!(e, Event::QueryDone(r) if r.id == id))
    };
    w.step_until(TIMEOUT * 2, done)
        .expect("the query ends by its deadline");
    let result = w
        .events()
        .iter()
        .find_map(|(_, i, e)| match e {
            Event::QueryDone(r) if *i == asker && r.id == id => Some((**r).clone()),
            _ => None,
        })
        .expect("a QueryDone event");
    (result, Duration::from_micros(w.now_us() - start))
}

fn keyring_query(op: KeyringCommand) -> QueryRequest {
    QueryRequest::keyring(&op, TIMEOUT)
}

fn answers_to(w: &World, to: u32, since_us: u64) -> Vec<QueryAnswer> {
    w.sent_since(since_us)
        .filter(|s| s.to == w.addr(to))
        .flat_map(Sent::messages)
        .filter_map(|m| match m {
            Message::QueryAnswer(a) => Some(a),
            _ => None,
        })
        .collect()
}

fn query_from(asker: u32, seq: u32, kind: u16) -> Message {
    Message::Query(Query {
        id: QueryId {
            asker: node_name(asker),
            seq,
        },
        kind,
        timeout_ms: 2_000,
        payload: Opaque::default(),
    })
}

#[test]
fn a_keyring_install_reaches_every_member_and_every_answer_comes_back() {
    let mut w = cluster(5, true);
    let (result, took) = ask(&mut w, 0, keyring_query(KeyringCommand::Install(key(2))));
    assert!(result.missing.is_empty(), "missing: {:?}", result.missing);
    assert_eq!(result.answers.len(), 5);
    for (who, outcome) in &result.answers {
        assert_eq!(
            keyring_of(outcome),
            Some(vec![key(1), key(2)]),
            "{who} answered {outcome:?}"
        );
    }
    assert!(
        took < TIMEOUT,
        "done once all answered, not at the deadline"
    );
    for i in 0..5 {
        assert_eq!(
            w.node(i).unwrap().keyring().unwrap().keys(),
            &[key(1), key(2)]
        );
    }
    // Then use it everywhere: the cluster keeps talking, now sealed with the new key.
    let (result, _) = ask(&mut w, 2, keyring_query(KeyringCommand::Use(key(2))));
    assert!(result.missing.is_empty());
    for i in 0..5 {
        assert_eq!(w.node(i).unwrap().keyring().unwrap().primary(), &key(2));
    }
    let (result, _) = ask(&mut w, 4, keyring_query(KeyringCommand::Remove(key(1))));
    assert!(result.missing.is_empty());
    let all: Vec<u32> = (0..5).collect();
    w.run_for(w.config().probe_interval * 5);
    assert!(
        w.all_alive(&all),
        "the cluster still talks after the rotation"
    );
    for i in 0..5 {
        assert_eq!(w.node(i).unwrap().keyring().unwrap().keys(), &[key(2)]);
    }
}

#[test]
fn a_crashed_member_is_reported_as_not_answering_at_the_deadline() {
    let mut w = cluster(5, true);
    w.crash(3);
    let (result, took) = ask(&mut w, 0, keyring_query(KeyringCommand::List));
    assert_eq!(result.missing, vec![node_name(3)]);
    assert_eq!(result.answers.len(), 4);
    assert!(took >= TIMEOUT, "waited for the deadline");
}

#[test]
fn refusals_and_unknown_kinds_are_answered_not_dropped() {
    // A plain cluster: a keyring query is refused by every member, with the reason.
    let mut w = cluster(3, false);
    let (result, _) = ask(&mut w, 1, keyring_query(KeyringCommand::List));
    assert!(result.missing.is_empty());
    for (_, outcome) in &result.answers {
        assert!(
            matches!(outcome, QueryOutcome::Refused(why) if why.0.contains("not enabled")),
            "{outcome:?}"
        );
    }
    let unknown = QueryRequest {
        kind: 999,
        payload: Opaque::default(),
        timeout: TIMEOUT,
    };
    let (result, _) = ask(&mut w, 1, unknown);
    assert!(result.missing.is_empty());
    assert_eq!(result.answers.len(), 3);
    assert!(result
        .answers
        .iter()
        .all(|(_, o)| *o == QueryOutcome::UnknownKind));
}

#[test]
fn bounds_are_refused_by_name_value_and_range() {
    let mut w = cluster(2, false);
    let mut request = keyring_query(KeyringCommand::List);
    for timeout in [Duration::from_millis(10), Duration::from_secs(61)] {
        request.timeout = timeout;
        let err = w.command(0, Command::Query(request.clone())).unwrap_err();
        let detail = err.to_string();
        assert!(
            detail.contains("timeout") && detail.contains("100..=60000"),
            "{detail}"
        );
    }
    request.timeout = TIMEOUT;
    for _ in 0..QUERIES_IN_FLIGHT_MAX {
        w.command(0, Command::Query(request.clone())).unwrap();
    }
    let err = w.command(0, Command::Query(request.clone())).unwrap_err();
    assert!(err.to_string().contains("in flight"), "{err}");
    assert!(Opaque::<{ wire::QUERY_PAYLOAD_MAX_BYTES }>::new(vec![0; 257]).is_none());
}

#[test]
fn answers_go_only_to_a_live_asker_at_its_advertised_address() {
    let mut w = cluster(3, false);
    let stranger = w.add_node();
    let since = w.now_us();
    // Sent from a stranger's address in n0's name: the answer goes to n0's address.
    w.deliver_now(stranger, 1, &[query_from(0, 100, 999)]);
    // The same query again (relayed by another member): applied and answered once.
    w.deliver_now(2, 1, &[query_from(0, 100, 999)]);
    let answers = answers_to(&w, 0, since);
    assert_eq!(answers.len(), 1);
    assert_eq!(answers[0].responder, node_name(1));
    assert!(w.sent_since(since).all(|s| s.to != w.addr(stranger)));
    // An asker that is no member gets nothing.
    let ghost = Message::Query(Query {
        id: QueryId {
            asker: NodeName::new("ghost").unwrap(),
            seq: 1,
        },
        kind: 999,
        timeout_ms: 2_000,
        payload: Opaque::default(),
    });
    w.deliver_now(stranger, 1, &[ghost]);
    assert_eq!(
        w.node(1).unwrap().stats().replies_refused[Refusal::QueryAsker.index()],
        1
    );
    assert!(w.sent_since(since).all(|s| s.to != w.addr(stranger)));
}

#[test]
fn answers_to_one_asker_are_rate_limited() {
    let mut w = cluster(2, false);
    let since = w.now_us();
    let queries: Vec<Message> = (0..20).map(|seq| query_from(0, seq, 999)).collect();
    w.deliver_now(0, 1, &queries);
    let answers = answers_to(&w, 0, since);
    assert_eq!(answers.len(), ANSWERS_PER_ASKER_PER_SEC as usize);
    assert_eq!(
        w.node(1).unwrap().stats().replies_refused[Refusal::QueryRate.index()],
        20 - u64::from(ANSWERS_PER_ASKER_PER_SEC)
    );
}

#[test]
fn an_answer_not_from_the_responders_address_is_ignored() {
    let mut w = cluster(3, false);
    let reply = w.with_node(0, |n, now| {
        n.handle_command(
            now,
            Command::Query(QueryRequest {
                kind: 999,
                payload: Opaque::default(),
                timeout: TIMEOUT,
            }),
        )
    });
    let Ok(Reply::QueryStarted { id }) = reply else {
        panic!("{reply:?}")
    };
    // Before gossip spreads the query: a forged answer in n1's name from n2's address.
    let forged = Message::QueryAnswer(QueryAnswer {
        id: id.clone(),
        responder: node_name(1),
        outcome: QueryOutcome::Refused(BoundedString("forged".into())),
    });
    w.deliver_now(2, 0, &[forged]);
    w.run_for(TIMEOUT * 2);
    let result = w
        .events()
        .iter()
        .find_map(|(_, _, e)| match e {
            Event::QueryDone(r) if r.id == id => Some(r.clone()),
            _ => None,
        })
        .unwrap();
    let n1 = result
        .answers
        .iter()
        .find(|(n, _)| *n == node_name(1))
        .unwrap();
    assert_eq!(
        n1.1,
        QueryOutcome::UnknownKind,
        "n1's own answer, not the forgery"
    );
}

/// A query is applied and answered once per member even at the shortest deadline: a member
/// that forgot its id (at the deadline) must not take a late relay of it for a new query, or
/// a keyring `use` is carried out again (perhaps after a later one) and the query echoes
/// round the cluster, each member re-queueing it for another `retransmit_mult · log N` sends.
#[test]
fn a_short_query_is_applied_once_per_member_not_echoed_after_its_deadline() {
    let n = 8;
    let mut w = cluster(n, false);
    let since = w.now_us();
    let request = QueryRequest {
        kind: 999,
        payload: Opaque::default(),
        timeout: QUERY_TIMEOUT_MIN,
    };
    w.command(0, Command::Query(request)).unwrap();
    let probe_interval = w.config().probe_interval;
    w.run_for(probe_interval * 20);
    let answers = answers_to(&w, 0, since);
    let mut per_member: BTreeMap<NodeName, usize> = BTreeMap::new();
    for a in &answers {
        *per_member.entry(a.responder.clone()).or_default() += 1;
    }
    assert!(
        per_member.values().all(|&count| count == 1),
        "answers per member: {per_member:?}"
    );
    let relays_late = w
        .sent_since(since + us(probe_interval * 10))
        .flat_map(Sent::messages)
        .filter(|m| matches!(m, Message::Query(_)))
        .count();
    assert_eq!(relays_late, 0, "the query still circulates");
}

/// Members remember a query's id for a minute; an asker restarted within it starts its ids
/// elsewhere (from its boot), so its first query is not taken for one already handled.
#[test]
fn an_asker_restarted_within_the_memory_is_answered_again() {
    let mut w = cluster(3, false);
    let unknown = || QueryRequest {
        kind: 999,
        payload: Opaque::default(),
        timeout: TIMEOUT,
    };
    let (first, _) = ask(&mut w, 1, unknown());
    assert!(first.missing.is_empty());
    w.crash(1);
    w.start(1);
    join(&mut w, 1);
    w.step_until(TIMEOUT * 5, |w| w.all_alive(&[0, 1, 2]))
        .expect("the restarted asker is back");
    let (second, _) = ask(&mut w, 1, unknown());
    assert_ne!(second.id, first.id, "a new boot, new ids");
    assert!(second.missing.is_empty(), "missing: {:?}", second.missing);
}
