//! A whole node: gossip socket, driver task, HTTP listener, DNS listeners and the initial join,
//! started from [`Settings`]. `hera run` and the integration tests start nodes the same way.

use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;

use tokio::net::TcpListener;
use tokio::sync::watch;

use crate::node::{Command, Identity, Node};
use crate::runtime::dns::{self, DnsConfig};
use crate::runtime::driver::{self, Clock, NodeHandle};
use crate::runtime::http::{self, AppState};
use crate::runtime::settings::{DnsListen, Settings};

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
    BindDns(dns::BindError),
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
            StartError::BindDns(e) => write!(f, "{e}"),
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
    /// Where DNS answers (UDP and TCP), if it does.
    pub dns_addr: Option<SocketAddr>,
    driver: tokio::task::JoinHandle<()>,
    http: tokio::task::JoinHandle<std::io::Result<()>>,
    dns: Option<tokio::task::JoinHandle<()>>,
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

        let dns_listeners = bind_dns(settings.dns).await?;
        let dns_addr = dns_listeners.as_ref().map(dns::Listeners::addr);

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
        let mut http_stop = stopped.clone();
        let http = tokio::spawn(http::serve(listener, router, async move {
            tokio::select! {
                _ = node_done => {}
                _ = http_stop.wait_for(|v| *v) => {}
            }
        }));
        let dns = dns_listeners.map(|listeners| {
            let config = Arc::new(DnsConfig::new(
                settings.dns_domain.clone(),
                settings.dns_ttl,
            ));
            let node_done = handle.wait_for(std::time::Duration::MAX, |s| {
                s.lifecycle == crate::node::Lifecycle::Stopped
            });
            let mut dns_stop = stopped;
            // The shuffles draw from their own stream, not the protocol's.
            let seed = rng_seed ^ 0x646e_735f_7368_7566;
            tokio::spawn(dns::serve(
                listeners,
                handle.clone(),
                config,
                seed,
                async move {
                    tokio::select! {
                        _ = node_done => {}
                        _ = dns_stop.wait_for(|v| *v) => {}
                    }
                },
            ))
        });
        tracing::info!(
            node = %settings.name, gossip = %gossip_addr, advertise = %advertise, http = %http_addr,
            dc = %settings.dc, preset = ?settings.preset,
            gossip_encrypted = settings.encrypt.is_some(),
            api_token = settings.access.token.is_some(),
            dns = %dns_addr.map_or_else(|| "off".to_string(), |a| a.to_string()),
            dns_domain = %settings.dns_domain, "hera node started"
        );
        if !settings.join.is_empty() {
            spawn_join(handle.clone(), settings.join.clone());
        }
        Ok(App {
            handle,
            gossip_addr,
            http_addr,
            dns_addr,
            driver: running.task,
            http,
            dns,
            stop,
        })
    }

    /// Leave gracefully and wait for the driver and the HTTP server to finish.
    pub async fn shutdown(self) {
        let _ = self.stop.send(true);
        let _ = self.driver.await;
        let _ = self.http.await;
        if let Some(dns) = self.dns {
            let _ = dns.await;
        }
    }

    /// Stop at once without leaving: what `kill -9` looks like to the others (for tests).
    /// Returns once the sockets are closed.
    pub async fn abort(self) {
        self.driver.abort();
        self.http.abort();
        if let Some(dns) = &self.dns {
            dns.abort();
        }
        let _ = self.driver.await;
        let _ = self.http.await;
        if let Some(dns) = self.dns {
            let _ = dns.await;
        }
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

/// The DNS listeners the settings ask for. The default address may be taken by another node on
/// the same machine: that node keeps DNS, this one runs without and says so.
async fn bind_dns(listen: DnsListen) -> Result<Option<dns::Listeners>, StartError> {
    match listen {
        DnsListen::Off => Ok(None),
        DnsListen::At(addr) => dns::bind(addr).await.map(Some).map_err(StartError::BindDns),
        DnsListen::Default(addr) => match dns::bind(addr).await {
            Ok(listeners) => Ok(Some(listeners)),
            Err(e) => {
                tracing::warn!(
                    error = %e,
                    "running without DNS: set `dns` to another address, or `dns = \"\"` to turn it off"
                );
                Ok(None)
            }
        },
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
