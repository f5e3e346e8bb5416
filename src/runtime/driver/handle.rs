//! The way into a running node for everyone but its own task: commands over a bounded channel,
//! a published snapshot for reads, and a stream of events.

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::{broadcast, mpsc, oneshot, watch};

use super::{Request, Snapshot};
use crate::node::{Command, CommandError, Event, Reply};
use crate::runtime::telemetry::Telemetry;

#[derive(Debug, Clone)]
pub struct NodeHandle {
    commands: mpsc::Sender<Request>,
    snapshot: watch::Receiver<Arc<Snapshot>>,
    events: broadcast::Sender<Event>,
    /// This node's metrics (its own recorder: see `telemetry`).
    telemetry: Telemetry,
}

/// Why a command through the handle did not go through.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum HandleError {
    /// The node's task has stopped.
    Stopped,
    /// The node refused the command.
    Refused(CommandError),
}

impl std::fmt::Display for HandleError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            HandleError::Stopped => write!(f, "the node has stopped"),
            HandleError::Refused(e) => write!(f, "{e}"),
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
        }
    }

    /// This node's metrics and request latencies.
    pub fn telemetry(&self) -> &Telemetry {
        &self.telemetry
    }

    /// Run a command in the node's task and wait for its reply.
    pub async fn command(&self, command: Command) -> Result<Reply, HandleError> {
        let (reply, answer) = oneshot::channel();
        self.commands
            .send(Request { command, reply })
            .await
            .map_err(|_| HandleError::Stopped)?;
        match answer.await {
            Ok(result) => result.map_err(HandleError::Refused),
            Err(_) => Err(HandleError::Stopped),
        }
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
