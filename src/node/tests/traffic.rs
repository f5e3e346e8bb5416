//! What a well-formed or junk datagram can make a node do (issue 14, items 3, 4 and 7): no
//! republishing for what changed nothing, no answer larger than the question to a stranger,
//! anti-entropy that settles.

use super::*;

/// An address no member holds.
fn stranger() -> SocketAddr {
    SocketAddr::from(([127, 0, 0, 1], 9_999))
}

/// A rejected datagram and a refused name claim change nothing a reader sees: the state
/// version stays, so the driver does not rebuild its snapshot for junk (issue 14, item 7).
#[test]
fn rejected_datagrams_and_refused_claims_keep_the_state_version() {
    let mut c = Cluster::new(2, Config::local(), 41);
    c.join_all();
    let before = c.node(0).version();
    let now = c.now;
    c.node_mut(0)
        .handle_datagram(now, stranger(), b"junk, not a datagram");
    c.flush(0);
    assert!(c
        .events
        .iter()
        .any(|(_, _, e)| matches!(e, Event::Rejected { .. })));
    assert_eq!(
        c.node(0).version(),
        before,
        "a rejected datagram moved the version"
    );
    // n1's name claimed alive from another address: refused as a name conflict.
    let profile = c.node(1).profile().clone();
    let claim = MemberUpdate {
        name: name(1),
        incarnation: c.node(1).incarnation() + 1,
        claim: Claim::Alive,
        profile: Profile {
            addr: stranger(),
            ..profile
        },
    };
    c.inject(0, stranger(), &[Message::Member(claim)]);
    assert!(c
        .events
        .iter()
        .any(|(_, _, e)| matches!(e, Event::NameConflict { .. })));
    assert_eq!(
        c.node(0).version(),
        before,
        "a refused claim moved the version"
    );
}
