//! HTTP and TCP health checks, run by the shell when the core says one is due: send the
//! check's request within its timeout, 2xx is passing, 429 warning (as Consul), anything else
//! critical; or connect to its address, a connection within the timeout passing, anything else
//! critical. The result goes back to the node as a command, by the check's id.
//!
//! Bounded three ways, so that no check target (silent, slow or hostile) can pile work up:
//! at most one run of each check is queued or running ([`Admission`]); at most
//! [`CHECKS_IN_FLIGHT_MAX`] run at once, the rest waiting for a slot; and at most
//! [`CHECKS_PENDING_MAX`] are queued or running in all. A check due while its instance's last
//! one has not finished is skipped (and counted), not queued behind it. Each check ends within
//! its timeout (the client's own bound), which frees its slot.

use std::collections::HashSet;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::sync::{mpsc, oneshot, Semaphore};

use axum::http::Method;

use super::Request;
use crate::node::{Command, Probe};
use crate::registry::Health;
use crate::runtime::http_client::{self, Call};
use crate::runtime::telemetry::Telemetry;

/// Checks running at once; more wait for a slot (and count as late, not lost).
pub const CHECKS_IN_FLIGHT_MAX: usize = 32;
/// Checks queued or running at once, across every instance: one task each.
pub const CHECKS_PENDING_MAX: usize = 1_024;
/// Bytes of a response body kept as the check's output.
const OUTPUT_BYTES: usize = 200;
/// A check registered without a timeout (the core stores none as zero) gets Consul's default.
const TIMEOUT_DEFAULT: Duration = Duration::from_secs(10);

/// Which checks (by id) are queued or running: at most one run each, at most `max` in all.
#[derive(Debug)]
pub struct Admission {
    busy: Mutex<HashSet<String>>,
    max: usize,
}

/// An admitted check; dropping it (the check ended, however) lets the instance's next one in.
#[derive(Debug)]
pub struct Admitted {
    admission: Arc<Admission>,
    id: String,
}

impl Admission {
    pub fn new(max: usize) -> Arc<Admission> {
        Arc::new(Admission {
            busy: Mutex::new(HashSet::new()),
            max,
        })
    }

    /// Admit a check of `id`, unless one of it is already queued or running, or `max` are.
    pub fn admit(self: &Arc<Self>, id: &str) -> Option<Admitted> {
        let mut busy = self.busy.lock().ok()?;
        if busy.len() >= self.max || !busy.insert(id.to_string()) {
            return None;
        }
        Some(Admitted {
            admission: self.clone(),
            id: id.to_string(),
        })
    }

    /// Checks queued or running now.
    #[cfg(test)]
    pub fn pending(&self) -> usize {
        self.busy.lock().map_or(0, |b| b.len())
    }
}

impl Drop for Admitted {
    fn drop(&mut self) {
        if let Ok(mut busy) = self.admission.busy.lock() {
            busy.remove(&self.id);
        }
    }
}

#[derive(Debug, Clone)]
pub struct Checker {
    commands: mpsc::Sender<Request>,
    slots: Arc<Semaphore>,
    admission: Arc<Admission>,
    telemetry: Telemetry,
}

impl Checker {
    pub fn new(commands: mpsc::Sender<Request>, telemetry: Telemetry) -> Checker {
        Checker {
            telemetry,
            commands,
            slots: Arc::new(Semaphore::new(CHECKS_IN_FLIGHT_MAX)),
            admission: Admission::new(CHECKS_PENDING_MAX),
        }
    }

    pub fn run(&self, check: String, probe: Probe, timeout: Duration) {
        let Some(admitted) = self.admission.admit(&check) else {
            tracing::debug!(%check, "health check skipped: the last one has not finished");
            self.telemetry.check_skipped();
            return;
        };
        let this = self.clone();
        tokio::spawn(async move {
            let _admitted = admitted;
            let Ok(_slot) = this.slots.acquire().await else {
                return;
            };
            this.telemetry.check_started();
            let timeout = if timeout.is_zero() {
                TIMEOUT_DEFAULT
            } else {
                timeout
            };
            let (health, output) = match &probe {
                Probe::Http {
                    method,
                    url,
                    headers,
                } => probe_http(method, url, headers, timeout).await,
                Probe::Tcp { address } => probe_tcp(address, timeout).await,
            };
            if health != Health::Passing {
                this.telemetry.check_failed();
            }
            let (reply, _) = oneshot::channel();
            let command = Command::SetCheck {
                check,
                health,
                output,
            };
            let _ = this.commands.send(Request { command, reply }).await;
        });
    }
}

/// Consul's TCP check: a connection within the timeout is passing.
async fn probe_tcp(address: &str, timeout: Duration) -> (Health, String) {
    match tokio::time::timeout(timeout, tokio::net::TcpStream::connect(address)).await {
        Ok(Ok(_)) => (Health::Passing, format!("TCP connect {address}: Success")),
        Ok(Err(e)) => (Health::Critical, format!("dial tcp {address}: {e}")),
        Err(_) => (
            Health::Critical,
            format!("dial tcp {address}: no connection within {timeout:?}"),
        ),
    }
}

async fn probe_http(
    method: &str,
    url: &str,
    headers: &[(String, String)],
    timeout: Duration,
) -> (Health, String) {
    let Ok(verb) = Method::from_bytes(method.as_bytes()) else {
        return (
            Health::Critical,
            format!("HTTP {method} {url}: not a method"),
        );
    };
    let call = Call {
        method: verb,
        url,
        headers: headers.to_vec(),
        json: None,
        timeout,
        body_limit: OUTPUT_BYTES * 4,
    };
    match http_client::send(call).await {
        Ok(response) => {
            let status = response.status;
            let body = response.text();
            let mut output = format!("HTTP {method} {url}: {status}");
            if !body.is_empty() {
                let cut: String = body.chars().take(OUTPUT_BYTES).collect();
                output.push_str(" Output: ");
                output.push_str(&cut);
            }
            (status_health(status.as_u16()), output)
        }
        Err(e) => (Health::Critical, format!("HTTP {method} {url}: {e}")),
    }
}

/// Consul's rules for an HTTP check's status code: 2xx passing, 429 warning, else critical.
fn status_health(code: u16) -> Health {
    match code {
        200..=299 => Health::Passing,
        429 => Health::Warning,
        _ => Health::Critical,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn id(s: &str) -> String {
        s.to_string()
    }

    #[test]
    fn status_codes_judged_as_consul_judges_them() {
        assert_eq!(status_health(200), Health::Passing);
        assert_eq!(status_health(204), Health::Passing);
        assert_eq!(status_health(429), Health::Warning);
        assert_eq!(status_health(300), Health::Critical);
        assert_eq!(status_health(503), Health::Critical);
    }

    /// A TCP check against a real listener: passing while it listens, critical once closed.
    #[tokio::test]
    async fn tcp_probe_follows_the_listener() {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let address = listener.local_addr().unwrap().to_string();
        let timeout = Duration::from_secs(5);
        assert_eq!(probe_tcp(&address, timeout).await.0, Health::Passing);
        drop(listener);
        let (health, output) = probe_tcp(&address, timeout).await;
        assert_eq!(health, Health::Critical, "{output}");
    }

    #[test]
    fn one_check_per_instance_until_it_ends() {
        let admission = Admission::new(8);
        let first = admission
            .admit(&id("web-1"))
            .expect("the first is admitted");
        assert!(admission.admit(&id("web-1")).is_none(), "a second overlaps");
        let other = admission
            .admit(&id("web-2"))
            .expect("another instance's is admitted");
        assert_eq!(admission.pending(), 2);
        drop(first);
        assert!(
            admission.admit(&id("web-1")).is_some(),
            "admitted once ended"
        );
        drop(other);
    }

    #[test]
    fn pending_checks_are_bounded() {
        let admission = Admission::new(3);
        let held: Vec<_> = (0..10)
            .filter_map(|n| admission.admit(&id(&format!("i-{n}"))))
            .collect();
        assert_eq!(held.len(), 3);
        assert_eq!(admission.pending(), 3);
        drop(held);
        assert_eq!(admission.pending(), 0);
    }
}
