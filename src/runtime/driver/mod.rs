//! The tokio driver: one task owns the [`Node`], feeds it datagrams, commands and deadlines,
//! sends what it asks, and publishes a [`Snapshot`] for readers.
//!
//! ```text
//! socket ──datagrams──┐
//! NodeHandle ─commands┼─> task owning Node ──> socket, snapshot (watch), events (broadcast)
//! sleep_until ─timer──┘
//! ```

mod alarm;
mod checks;
mod handle;
mod pacer;
mod snapshot;
mod socket;
mod unreachable;

use std::future::Future;
use std::net::SocketAddr;
use std::os::fd::AsRawFd;
use std::sync::Arc;
use std::time::Duration;

use tokio::io::Interest;
use tokio::net::UdpSocket;
use tokio::sync::{broadcast, mpsc, oneshot, watch};

pub use checks::CHECKS_IN_FLIGHT_MAX;
pub use handle::{HandleError, NodeHandle};
pub use snapshot::Snapshot;
pub use socket::bind_udp;

use crate::node::{Command, CommandError, Event, Lifecycle, Node, Outputs, Reply};
use crate::runtime::clock::Clock;
use crate::runtime::telemetry::Telemetry;
use crate::wire::DATAGRAM_MAX_BYTES;

/// Commands waiting for the task; senders wait when it is full (back-pressure on HTTP).
const COMMAND_QUEUE_MAX: usize = 1_024;
/// Events kept for slow subscribers before they start missing some. The channel reserves every
/// slot up front (~110 bytes each) whether or not anyone listens, and in production nobody
/// does: events are notifications for tools and tests watching one node, while state lives in
/// the snapshot. A subscriber that lags gets `Lagged` and reads the snapshot again.
const EVENT_QUEUE_MAX: usize = 256;
/// Datagrams read in one go before the task looks at its other inputs.
const RECV_BATCH_MAX: usize = 64;
/// Error-queue entries read per wake-up; more wait for the next turn of the loop.
const ERRORS_BATCH_MAX: usize = 64;
/// Sends tried again after failing with an earlier datagram's ICMP error (`send`).
const SEND_RETRIES_MAX: usize = 2;
/// Time a leaving node waits for its goodbye to finish, beyond the configured propagation time.
const LEAVE_GRACE: Duration = Duration::from_secs(2);
/// Republish the snapshot at least this often even without a visible change: acks (last
/// contact), counters and the queue move without bumping the node's version, and readers
/// (`/v1/status`, the console) should not show them minutes old. One copy of the member list
/// a second is cheap even at 10,000 members.
const SNAPSHOT_REFRESH: Duration = Duration::from_secs(1);

pub(crate) struct Request {
    pub command: Command,
    pub reply: oneshot::Sender<Result<Reply, CommandError>>,
}

/// A running node: its handle, and the task to await for a clean exit.
#[derive(Debug)]
pub struct Running {
    pub handle: NodeHandle,
    pub task: tokio::task::JoinHandle<()>,
    pub local_addr: SocketAddr,
}

/// Start the driver task for `node` on an already bound `socket`. The task leaves the cluster
/// gracefully and ends when `shutdown` completes (or when a leave requested through the
/// handle finishes).
pub fn spawn(
    node: Node,
    socket: UdpSocket,
    clock: Clock,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<Running> {
    let local_addr = socket.local_addr()?;
    let (command_tx, command_rx) = mpsc::channel(COMMAND_QUEUE_MAX);
    let (snapshot_tx, snapshot_rx) = watch::channel(Arc::new(Snapshot::of(&node, clock.now())));
    let (event_tx, _) = broadcast::channel(EVENT_QUEUE_MAX);
    let telemetry = Telemetry::for_node(&node, clock);
    let checks = checks::Checker::new(command_tx.clone(), telemetry.clone());
    let handle = NodeHandle::new(command_tx, snapshot_rx, event_tx.clone(), telemetry.clone());
    let task = tokio::spawn(run(
        node,
        socket,
        clock,
        (command_rx, checks),
        snapshot_tx,
        event_tx,
        telemetry,
        shutdown,
    ));
    Ok(Running {
        handle,
        task,
        local_addr,
    })
}

fn is_ipv6(socket: &UdpSocket) -> bool {
    socket.local_addr().is_ok_and(|a| a.is_ipv6())
}

/// Send one datagram. With `IP_RECVERR` on, Linux fails the next send on the socket, to any
/// address, with an earlier datagram's ICMP error; that send is tried again (the failure
/// cleared the error), a bounded number of times.
async fn send(socket: &UdpSocket, payload: &[u8], to: SocketAddr) -> std::io::Result<usize> {
    let mut tries = 0;
    loop {
        match socket.send_to(payload, to).await {
            Err(e) if unreachable::is_earlier_datagrams_error(&e) && tries < SEND_RETRIES_MAX => {
                tries += 1;
            }
            sent => return sent,
        }
    }
}

/// Hand the core what the socket's error queue holds (bounded per call): the addresses that
/// had no process listening. False if the queue cannot be read, so the caller stops trying
/// instead of waking for an error it can never clear.
fn read_errors(socket: &UdpSocket, node: &mut Node, clock: &Clock) -> bool {
    for _ in 0..ERRORS_BATCH_MAX {
        let fd = socket.as_raw_fd();
        match socket.try_io(Interest::ERROR, || unreachable::read_one(fd)) {
            Ok(unreachable::Report::PortUnreachable(addr)) => {
                node.handle_port_unreachable(clock.now(), addr);
            }
            Ok(unreachable::Report::Other) => {}
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => return true,
            Err(e) => {
                // Queued errors take room in the receive buffer: one left unread for good
                // would end up starving the datagrams, so the kernel stops queuing them.
                let _ = unreachable::disable(socket, is_ipv6(socket));
                tracing::warn!(error = %e, "reading the gossip socket's error queue failed; ICMP reports are off from now on");
                return false;
            }
        }
    }
    true
}

// The task's whole world, handed over once at spawn; a struct would only rename the list.
#[allow(clippy::too_many_arguments)]
async fn run(
    mut node: Node,
    socket: UdpSocket,
    clock: Clock,
    (mut commands, checks): (mpsc::Receiver<Request>, checks::Checker),
    snapshot_tx: watch::Sender<Arc<Snapshot>>,
    events: broadcast::Sender<Event>,
    telemetry: Telemetry,
    shutdown: impl Future<Output = ()>,
) {
    tokio::pin!(shutdown);
    let mut buf = vec![0u8; DATAGRAM_MAX_BYTES];
    // Collects the node's outputs between awaits.
    let mut outbox = Outputs::default();
    // Bulk sends (anti-entropy's entries) leave at a bounded rate; the rest at once.
    let mut paced = pacer::Pacer::new(clock.now());
    let mut log = log::EventLog::default();
    let mut alarm = alarm::Alarm::new();
    let mut published = node.version();
    let mut published_at = clock.now();
    let mut shutting_down = false;
    let mut leave_deadline: Option<tokio::time::Instant> = None;
    let mut commands_open = true;
    // Reading the socket's error queue (ICMP reports); off for good if it ever fails.
    let mut icmp_reports = true;
    // Callers of a query, answered when it is done (the core bounds queries in flight).
    let mut queries: std::collections::BTreeMap<u32, oneshot::Sender<Result<Reply, CommandError>>> =
        std::collections::BTreeMap::new();

    loop {
        // The wall clock may be stepped (NTP) while we run; registry versions follow it.
        let now = clock.now();
        node.set_wall_clock(now, clock.wall(now));
        // Due timers run first, every turn: the select below takes whichever input is ready,
        // and a socket that never runs dry (a flood) must not hold back probes, suspicion
        // timeouts or TTL expiry.
        if node.poll_timeout().is_some_and(|at| at <= clock.now()) {
            node.handle_timeout(clock.now());
        }
        // Owed pushes are made only as the pacer has room for them.
        node.drain(&mut pacer::Room::new(&mut outbox, &paced));
        for t in outbox.transmits.drain(..) {
            if t.paced {
                if !paced.push(t) {
                    log.paced_dropped(paced.dropped(), clock.now());
                }
                continue;
            }
            if let Err(e) = send(&socket, &t.payload, t.to).await {
                log.send_failed(t.to, &e, clock.now());
            }
        }
        while let Some(t) = paced.pop_due(clock.now()) {
            if let Err(e) = send(&socket, &t.payload, t.to).await {
                log.send_failed(t.to, &e, clock.now());
            }
        }
        node.set_paced_backlog(paced.backlog_bytes());
        telemetry.paced(paced.backlog_bytes(), paced.dropped());
        let mut left = false;
        for event in outbox.events.drain(..) {
            left |= event == Event::LeaveComplete;
            log.event(&event, clock.now());
            if let Event::CheckDue {
                check,
                probe,
                timeout,
            } = &event
            {
                checks.run(check.clone(), probe.clone(), *timeout);
            }
            if let Event::QueryDone(result) = &event {
                if let Some(reply) = queries.remove(&result.id.seq) {
                    let _ = reply.send(Ok(Reply::Query(result.clone())));
                }
            }
            let _ = events.send(event);
        }
        // Counters move without a version change (every datagram), so export every turn.
        telemetry.observe(&mut node);
        let stale = clock.now().saturating_since(published_at) >= SNAPSHOT_REFRESH;
        if node.version() != published || stale {
            published = node.version();
            published_at = clock.now();
            snapshot_tx.send_replace(Arc::new(Snapshot::of(&node, clock.now())));
        }
        if left || node.lifecycle() == Lifecycle::Stopped {
            break;
        }
        // One wake-up for the node's timers and the pacer's next release, and for those a few
        // ms later: each is met at most `COALESCE_WINDOW` late.
        let timer = alarm::wake_at(
            node.timeouts().chain(paced.next_at()),
            alarm::COALESCE_WINDOW,
        )
        .map(|at| clock.deadline(at));
        let sleep_until = match (timer, leave_deadline) {
            (Some(t), Some(l)) => Some(t.min(l)),
            (t, l) => t.or(l),
        };
        // Not biased: under a flood of datagrams, commands from the HTTP face still get their
        // turn (tokio picks among the ready branches at random).
        tokio::select! {
            () = &mut shutdown, if !shutting_down => {
                shutting_down = true;
                tracing::info!("shutting down: leaving the cluster");
                if node.handle_command(clock.now(), Command::Leave).is_ok() {
                    leave_deadline = Some(clock.deadline(clock.now() + node.config().leave_propagate + LEAVE_GRACE));
                } else {
                    break;
                }
            }
            received = socket.recv_from(&mut buf) => match received {
                Ok((len, from)) => {
                    node.handle_datagram(clock.now(), from, &buf[..len]);
                    // Drain what else is already queued, bounded, before looking elsewhere.
                    for _ in 1..RECV_BATCH_MAX {
                        match socket.try_recv_from(&mut buf) {
                            Ok((len, from)) => node.handle_datagram(clock.now(), from, &buf[..len]),
                            Err(_) => break,
                        }
                    }
                }
                // A port-unreachable report also surfaces here once; it is read from the
                // error queue below.
                Err(e) if e.kind() == std::io::ErrorKind::ConnectionRefused => {}
                Err(e) => log.recv_failed(&e, clock.now()),
            },
            ready = socket.ready(Interest::ERROR), if icmp_reports => {
                icmp_reports = match ready {
                    Ok(_) => read_errors(&socket, &mut node, &clock),
                    Err(_) => {
                        let _ = unreachable::disable(&socket, is_ipv6(&socket));
                        false
                    }
                };
            },
            request = commands.recv(), if commands_open => match request {
                Some(Request { command, reply }) => {
                    let result = node.handle_command(clock.now(), command);
                    // Publish before replying: a caller that waits for its change to be kept
                    // on disk (`NodeHandle::command`) reads the version to wait for from it.
                    if node.version() != published {
                        published = node.version();
                        published_at = clock.now();
                        snapshot_tx.send_replace(Arc::new(Snapshot::of(&node, clock.now())));
                    }
                    match result {
                        // Answered once the answers are in (the event, drained above).
                        Ok(Reply::QueryStarted { id }) => {
                            queries.insert(id.seq, reply);
                        }
                        result => {
                            let _ = reply.send(result);
                        }
                    }
                }
                None => commands_open = false,
            },
            () = alarm.wait(sleep_until, &clock) => {
                if leave_deadline.is_some_and(|d| d <= clock.deadline(clock.now())) {
                    tracing::warn!("leave did not complete in time; stopping anyway");
                    break;
                }
                // Woken for the node's timers or for the pacer: the top of the loop sends
                // what the pacer lets out.
                if node.poll_timeout().is_some_and(|at| at <= clock.now()) {
                    node.handle_timeout(clock.now());
                }
            }
        }
    }
    telemetry.observe(&mut node);
    snapshot_tx.send_replace(Arc::new(Snapshot::of(&node, clock.now())));
    tracing::info!(node = %node.name(), "node stopped");
}

mod log {
    //! Logging of node events, with rejected datagrams and socket errors rate-limited so a
    //! flood of garbage cannot flood the log.

    use std::net::SocketAddr;
    use std::time::Duration;

    use crate::node::Event;

    use crate::time::Instant;

    const QUIET_FOR: Duration = Duration::from_secs(10);

    #[derive(Default)]
    pub struct EventLog {
        last_rejected: Option<Instant>,
        rejected_since: u64,
        last_clock: Option<Instant>,
        clock_since: u64,
        last_claim: Option<Instant>,
        claims_since: u64,
        last_io_error: Option<Instant>,
        last_paced_drop: Option<Instant>,
    }

    fn due(last: &mut Option<Instant>, now: Instant) -> bool {
        if last.is_some_and(|t| now.saturating_since(t) < QUIET_FOR) {
            return false;
        }
        *last = Some(now);
        true
    }

    impl EventLog {
        pub fn event(&mut self, event: &Event, now: Instant) {
            match event {
                Event::MemberJoined { name, addr } => {
                    tracing::info!(member = %name, %addr, "member joined")
                }
                Event::MemberSuspected { name, by } => {
                    tracing::info!(member = %name, by = %by, "member suspected")
                }
                Event::MemberRecovered { name } => {
                    tracing::info!(member = %name, "member alive again")
                }
                Event::MemberFailed { name } => tracing::warn!(member = %name, "member failed"),
                Event::MemberLeft { name } => tracing::info!(member = %name, "member left"),
                Event::MemberReaped { name } => tracing::debug!(member = %name, "member forgotten"),
                Event::NameConflict {
                    name,
                    known,
                    claimed,
                } => tracing::warn!(
                    member = %name, %known, %claimed,
                    "refused a second node claiming a live member's name from another address"
                ),
                Event::Refuted { incarnation } => {
                    tracing::info!(
                        incarnation = incarnation.get(),
                        "refuted a suspicion about this node"
                    )
                }
                Event::Joined { via } => tracing::info!(%via, "joined the cluster"),
                Event::LeaveComplete => tracing::info!("left the cluster"),
                Event::Rejected { from, error } => {
                    self.rejected_since += 1;
                    if due(&mut self.last_rejected, now) {
                        tracing::warn!(%from, %error, rejected = self.rejected_since, "rejected datagrams (logged at most every 10 s)");
                        self.rejected_since = 0;
                    }
                }
                Event::ClockRejected { writer, ahead_ms } => {
                    self.clock_since += 1;
                    if due(&mut self.last_clock, now) {
                        tracing::warn!(%writer, ahead_ms, refused = self.clock_since, "refused registry versions stamped too far ahead of our wall clock (max_clock_offset; logged at most every 10 s)");
                        self.clock_since = 0;
                    }
                }
                Event::ImplausibleClaim {
                    name,
                    known,
                    claimed,
                } => {
                    self.claims_since += 1;
                    if due(&mut self.last_claim, now) {
                        tracing::warn!(member = %name, known = known.get(), claimed = claimed.get(), refused = self.claims_since, "refused claims jumping a member's incarnation (logged at most every 10 s)");
                        self.claims_since = 0;
                    }
                }
                Event::NameTaken { holder } => tracing::error!(
                    %holder,
                    "this node's name is held by a live member at another address; not joining"
                ),
                // Counts only: an answer may hold keys.
                Event::QueryDone(r) => tracing::info!(
                    seq = r.id.seq,
                    kind = r.kind,
                    answered = r.answers.len(),
                    missing = r.missing.len(),
                    "query done"
                ),
                #[allow(unreachable_patterns)]
                other => tracing::debug!(?other, "event"),
            }
        }

        pub fn send_failed(&mut self, to: SocketAddr, error: &std::io::Error, now: Instant) {
            if due(&mut self.last_io_error, now) {
                tracing::warn!(%to, %error, "sending a datagram failed (logged at most every 10 s)");
            }
        }

        pub fn paced_dropped(&mut self, total: u64, now: Instant) {
            if due(&mut self.last_paced_drop, now) {
                tracing::warn!(
                    total,
                    "bulk sends dropped: the paced backlog is full (anti-entropy sends them again)"
                );
            }
        }

        pub fn recv_failed(&mut self, error: &std::io::Error, now: Instant) {
            if due(&mut self.last_io_error, now) {
                tracing::warn!(%error, "receiving a datagram failed (logged at most every 10 s)");
            }
        }
    }
}
