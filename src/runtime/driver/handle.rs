//! The way into a running node for everyone but its own task: commands over a bounded channel,
//! a published snapshot for reads, and a stream of events.

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::{broadcast, mpsc, oneshot, watch};

use super::{Request, Snapshot};
use crate::node::{Command, CommandError, Event, KeyringCommand, Reply};
use crate::runtime::store::Durability;
use crate::runtime::telemetry::Telemetry;

/// How long an acknowledgement waits for its change to reach the disk before it gives up and
/// says so (a healthy disk takes milliseconds; a hung one must not hang every client).
const DURABLE_WAIT_MAX: Duration = Duration::from_secs(10);

#[derive(Debug, Clone)]
pub struct NodeHandle {
    commands: mpsc::Sender<Request>,
    snapshot: watch::Receiver<Arc<Snapshot>>,
    events: broadcast::Sender<Event>,
    /// This node's metrics (its own recorder: see `telemetry`).
    telemetry: Telemetry,
    /// With a `data_dir`: how far the state is on disk (`runtime::store`).
    durability: Option<watch::Receiver<Durability>>,
}

/// Why a command through the handle did not go through.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum HandleError {
    /// The node's task has stopped.
    Stopped,
    /// The node refused the command.
    Refused(CommandError),
    /// The node made the change but could not keep it on disk: a restart would lose it.
    NotPersisted(String),
}

impl std::fmt::Display for HandleError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            HandleError::Stopped => write!(f, "the node has stopped"),
            HandleError::Refused(e) => write!(f, "{e}"),
            HandleError::NotPersisted(why) => {
                write!(
                    f,
                    "done, but not kept on disk (a restart would lose it): {why}"
                )
            }
        }
    }
}

impl std::error::Error for HandleError {}

impl NodeHandle {
    pub(super) fn new(
        commands: mpsc::Sender<Request>,
        snapshot: watch::Receiver<Arc<Snapshot>>,
        events: broadcast::Sender<Event>,
        telemetry: Telemetry,
    ) -> Self {
        NodeHandle {
            commands,
            snapshot,
            events,
            telemetry,
            durability: None,
        }
    }

    /// This handle, acknowledging the writes a restart must not lose only once they are on
    /// disk (`runtime::store`).
    pub fn with_durability(mut self, durability: watch::Receiver<Durability>) -> Self {
        self.durability = Some(durability);
        self
    }

    /// This node's metrics and request latencies.
    pub fn telemetry(&self) -> &Telemetry {
        &self.telemetry
    }

    /// Run a command in the node's task and wait for its reply.
    /// With a `data_dir`, a registration, deregistration, maintenance or keyring change is
    /// answered once it is on disk.
    pub async fn command(&self, command: Command) -> Result<Reply, HandleError> {
        let durable = must_be_durable(&command);
        let (reply, answer) = oneshot::channel();
        self.commands
            .send(Request { command, reply })
            .await
            .map_err(|_| HandleError::Stopped)?;
        let reply = match answer.await {
            Ok(result) => result.map_err(HandleError::Refused)?,
            Err(_) => return Err(HandleError::Stopped),
        };
        if let (true, Some(durability)) = (durable, &self.durability) {
            // The driver publishes the snapshot holding the change before it replies.
            let version = self.snapshot.borrow().version;
            wait_durable(durability.clone(), version).await?;
        }
        Ok(reply)
    }

    /// The latest published state.
    pub fn snapshot(&self) -> Arc<Snapshot> {
        self.snapshot.borrow().clone()
    }

    /// A receiver that wakes whenever a new snapshot is published.
    pub fn watch(&self) -> watch::Receiver<Arc<Snapshot>> {
        self.snapshot.clone()
    }

    pub fn subscribe(&self) -> broadcast::Receiver<Event> {
        self.events.subscribe()
    }

    /// Wait until the snapshot satisfies `condition`, or `limit` passes. Returns the snapshot
    /// that satisfied it, or None on time-out (or if the node stopped first).
    pub fn wait_for(
        &self,
        limit: Duration,
        condition: impl Fn(&Snapshot) -> bool,
    ) -> impl Future<Output = Option<Arc<Snapshot>>> {
        let mut rx = self.snapshot.clone();
        async move {
            let wait = async {
                loop {
                    {
                        let current = rx.borrow_and_update().clone();
                        if condition(&current) {
                            return Some(current);
                        }
                    }
                    if rx.changed().await.is_err() {
                        let last = rx.borrow().clone();
                        return condition(&last).then_some(last);
                    }
                }
            };
            tokio::time::timeout(limit, wait).await.ok().flatten()
        }
    }
}

/// Commands whose effect a restart must not lose once acknowledged. Health reports and
/// renewals are not waited for: they change often, and a restart re-arms every TTL anyway.
fn must_be_durable(command: &Command) -> bool {
    match command {
        Command::Register(_)
        | Command::Deregister { .. }
        | Command::SetMaintenance { .. }
        | Command::SetNodeMaintenance { .. }
        | Command::RegisterCheck { .. }
        | Command::DeregisterCheck { .. } => true,
        Command::Keyring(op) => !matches!(op, KeyringCommand::List),
        Command::Join { .. }
        | Command::Leave
        | Command::Renew { .. }
        | Command::SetHealth { .. }
        | Command::SetCheck { .. }
        | Command::RunChecks { .. }
        | Command::Configure(_)
        | Command::ForceLeave { .. }
        | Command::Query(_)
        | Command::Restore(_) => false,
    }
}

async fn wait_durable(
    mut durability: watch::Receiver<Durability>,
    version: u64,
) -> Result<(), HandleError> {
    let waited = tokio::time::timeout(
        DURABLE_WAIT_MAX,
        durability.wait_for(|d| d.written >= version || d.error.is_some()),
    )
    .await;
    match waited {
        Ok(Ok(d)) => match &d.error {
            Some(why) if d.written < version => Err(HandleError::NotPersisted(why.clone())),
            _ => Ok(()),
        },
        // The writer ended: the node is stopping, and wrote its last state as it did.
        Ok(Err(_)) => Ok(()),
        Err(_) => Err(HandleError::NotPersisted(format!(
            "the disk did not answer within {} s",
            DURABLE_WAIT_MAX.as_secs()
        ))),
    }
}
