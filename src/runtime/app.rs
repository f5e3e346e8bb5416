//! A whole node: gossip socket, driver task, HTTP listener and the initial join, started from
//! [`Settings`]. `hera run` and the integration tests start nodes the same way.

use std::future::Future;
use std::net::SocketAddr;

use tokio::net::TcpListener;
use tokio::sync::watch;

use crate::node::{Command, Identity, Node};
use crate::runtime::driver::{self, Clock, NodeHandle};
use crate::runtime::http::{self, AppState};
use crate::runtime::settings::Settings;

/// Why a node could not start.
#[derive(Debug)]
pub enum StartError {
    BindGossip {
        addr: SocketAddr,
        source: std::io::Error,
    },
    BindHttp {
        addr: SocketAddr,
        source: std::io::Error,
    },
}

impl std::fmt::Display for StartError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            StartError::BindGossip { addr, source } => {
                write!(f, "cannot bind gossip (UDP) on {addr}: {source}")
            }
            StartError::BindHttp { addr, source } => {
                write!(f, "cannot bind HTTP (TCP) on {addr}: {source}")
            }
        }
    }
}

impl std::error::Error for StartError {}

/// A started node.
#[derive(Debug)]
pub struct App {
    pub handle: NodeHandle,
    /// Where gossip is bound (port resolved if 0 was asked for).
    pub gossip_addr: SocketAddr,
    pub http_addr: SocketAddr,
    driver: tokio::task::JoinHandle<()>,
    http: tokio::task::JoinHandle<std::io::Result<()>>,
    stop: watch::Sender<bool>,
}

impl App {
    /// Bind, start the driver and the HTTP server, and begin joining the configured seeds.
    /// `rng_seed` seeds the node's protocol randomness.
    pub async fn start(settings: Settings, rng_seed: u64) -> Result<App, StartError> {
        let socket = driver::bind_udp(settings.bind).map_err(|source| StartError::BindGossip {
            addr: settings.bind,
            source,
        })?;
        let gossip_addr = socket
            .local_addr()
            .map_err(|source| StartError::BindGossip {
                addr: settings.bind,
                source,
            })?;
        let listener =
            TcpListener::bind(settings.http)
                .await
                .map_err(|source| StartError::BindHttp {
                    addr: settings.http,
                    source,
                })?;
        let http_addr = listener
            .local_addr()
            .map_err(|source| StartError::BindHttp {
                addr: settings.http,
                source,
            })?;

        // Binding port 0 (tests) advertises the port the kernel chose.
        let mut advertise = settings.advertise;
        if advertise.port() == 0 {
            advertise.set_port(gossip_addr.port());
        }
        let clock = Clock::new();
        let identity = Identity {
            name: settings.name.clone(),
            addr: advertise,
            dc: settings.dc.clone(),
            tags: settings.tags.clone(),
        };
        let mut node = Node::new(settings.config.clone(), identity, rng_seed, clock.now());
        node.set_cluster_label(settings.cluster_label.clone());
        if let Some(key) = &settings.encrypt {
            node.set_keyring(crate::wire::Keyring::new(key.clone()));
        }

        let (stop, stopped) = watch::channel(false);
        let running =
            driver::spawn(node, socket, clock, wait_true(stopped.clone())).map_err(|source| {
                StartError::BindGossip {
                    addr: settings.bind,
                    source,
                }
            })?;
        let handle = running.handle;
        let state =
            AppState::new(handle.clone(), settings.liveness).with_access(settings.access.clone());
        let router = http::router(state);
        // HTTP stops when asked, or when the node has stopped (after a leave through the API).
        let node_done = handle.wait_for(std::time::Duration::MAX, |s| {
            s.lifecycle == crate::node::Lifecycle::Stopped
        });
        let mut http_stop = stopped;
        let http = tokio::spawn(http::serve(listener, router, async move {
            tokio::select! {
                _ = node_done => {}
                _ = http_stop.wait_for(|v| *v) => {}
            }
        }));
        tracing::info!(
            node = %settings.name, gossip = %gossip_addr, advertise = %advertise, http = %http_addr,
            dc = %settings.dc, preset = ?settings.preset,
            gossip_encrypted = settings.encrypt.is_some(),
            cluster_label = settings.cluster_label.as_ref().map(|l| l.as_str()),
            api_token = settings.access.token.is_some(), "hera node started"
        );
        if !settings.join.is_empty() {
            spawn_join(handle.clone(), settings.join.clone());
        }
        Ok(App {
            handle,
            gossip_addr,
            http_addr,
            driver: running.task,
            http,
            stop,
        })
    }

    /// Leave gracefully and wait for the driver and the HTTP server to finish.
    pub async fn shutdown(self) {
        let _ = self.stop.send(true);
        let _ = self.driver.await;
        let _ = self.http.await;
    }

    /// Stop at once without leaving: what `kill -9` looks like to the others (for tests).
    /// Returns once the sockets are closed.
    pub async fn abort(self) {
        self.driver.abort();
        self.http.abort();
        let _ = self.driver.await;
        let _ = self.http.await;
    }

    /// Wait until the node stops by itself (a leave through the API) or `signal` fires, then
    /// shut down cleanly.
    pub async fn run_until(self, signal: impl Future<Output = ()>) {
        let stopped = self.handle.wait_for(std::time::Duration::MAX, |s| {
            s.lifecycle == crate::node::Lifecycle::Stopped
        });
        tokio::select! {
            _ = stopped => {}
            () = signal => {}
        }
        self.shutdown().await;
    }
}

async fn wait_true(mut rx: watch::Receiver<bool>) {
    let _ = rx.wait_for(|v| *v).await;
}

/// Resolve the seed names and hand them to the node, which retries until one answers. DNS is
/// retried too, so a node can start before its seeds' names resolve.
fn spawn_join(handle: NodeHandle, seeds: Vec<String>) {
    tokio::spawn(async move {
        let mut delay = std::time::Duration::from_millis(500);
        loop {
            let mut addrs = Vec::new();
            for seed in &seeds {
                match http::agent::resolve(seed).await {
                    Ok(found) => addrs.extend(found),
                    Err(e) => {
                        tracing::warn!(seed = %seed, error = %e.message, "cannot resolve seed yet")
                    }
                }
            }
            if !addrs.is_empty() {
                match handle.command(Command::Join { seeds: addrs }).await {
                    Ok(_) => tracing::info!(seeds = ?seeds, "joining through seeds"),
                    Err(e) => tracing::warn!(error = %e, "join refused"),
                }
                return;
            }
            tokio::time::sleep(delay).await;
            delay = (delay * 2).min(std::time::Duration::from_secs(30));
        }
    });
}
