//! HTTP health checks, run by the shell when the core says one is due: GET the URL with the
//! check's timeout; 2xx is passing, 429 warning (as Consul), anything else critical. The result
//! goes back to the node as a command.

use std::sync::Arc;
use std::time::Duration;

use tokio::sync::{mpsc, oneshot, Semaphore};

use axum::http::Method;

use super::Request;
use crate::names::InstanceId;
use crate::node::Command;
use crate::registry::Health;
use crate::runtime::http_client::{self, Call};
use crate::runtime::telemetry::Telemetry;

/// Checks running at once; more wait for a slot (and count as late, not lost).
const CHECKS_IN_FLIGHT_MAX: usize = 32;
/// Bytes of a response body kept as the check's output.
const OUTPUT_BYTES: usize = 200;

#[derive(Debug, Clone)]
pub struct Checker {
    commands: mpsc::Sender<Request>,
    slots: Arc<Semaphore>,
    telemetry: Telemetry,
}

impl Checker {
    pub fn new(commands: mpsc::Sender<Request>, telemetry: Telemetry) -> Checker {
        Checker {
            telemetry,
            commands,
            slots: Arc::new(Semaphore::new(CHECKS_IN_FLIGHT_MAX)),
        }
    }

    pub fn run(&self, id: InstanceId, url: String, timeout: Duration) {
        let this = self.clone();
        tokio::spawn(async move {
            let Ok(_slot) = this.slots.acquire().await else {
                return;
            };
            let (health, output) = this.probe(&url, timeout).await;
            if health != Health::Passing {
                this.telemetry.check_failed();
            }
            let (reply, _) = oneshot::channel();
            let command = Command::SetHealth { id, health, output };
            let _ = this.commands.send(Request { command, reply }).await;
        });
    }

    async fn probe(&self, url: &str, timeout: Duration) -> (Health, String) {
        let timeout = if timeout.is_zero() {
            Duration::from_secs(10)
        } else {
            timeout
        };
        let call = Call {
            method: Method::GET,
            url,
            headers: Vec::new(),
            json: None,
            timeout,
            body_limit: OUTPUT_BYTES * 4,
        };
        match http_client::send(call).await {
            Ok(response) => {
                let status = response.status;
                let body = response.text();
                let mut output = format!("HTTP GET {url}: {status}");
                if !body.is_empty() {
                    let cut: String = body.chars().take(OUTPUT_BYTES).collect();
                    output.push_str(" Output: ");
                    output.push_str(&cut);
                }
                let health = if status.is_success() {
                    Health::Passing
                } else if status.as_u16() == 429 {
                    Health::Warning
                } else {
                    Health::Critical
                };
                (health, output)
            }
            Err(e) => (Health::Critical, format!("HTTP GET {url}: {e}")),
        }
    }
}
