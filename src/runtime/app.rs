//! A whole node: its data directory, gossip socket, driver task, HTTP listener, DNS listeners
//! and the joins, started from [`Settings`]. `hera run` and the integration tests start nodes
//! the same way.

use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;

use tokio::net::TcpListener;
use tokio::sync::watch;

use crate::node::{Command, Identity, Node};
use crate::runtime::clock::Clock;
use crate::runtime::descriptors;
use crate::runtime::dns::{self, DnsConfig};
use crate::runtime::driver::{self, NodeHandle, Snapshot};
use crate::runtime::http::hera_config::KeptConfig;
use crate::runtime::http::{self, AppState};
use crate::runtime::overrides::Overrides;
use crate::runtime::rejoin;
use crate::runtime::settings::Tunables;
use crate::runtime::settings::{DnsListen, Settings};
use crate::runtime::store::{self, Saved, Store, StoreError};
use crate::wire::Keyring;

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
    /// The data directory is locked by another process, unreadable, or holds a bad file.
    Store(StoreError),
    /// This node's own member update (name, address, dc, tags) does not fit one datagram:
    /// it could never announce itself.
    ProfileTooLarge {
        bytes: usize,
        room: usize,
    },
    /// The process may not open as many files and sockets as the HTTP bound needs.
    Descriptors(descriptors::TooFew),
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
            StartError::Descriptors(e) => write!(f, "{e}"),
            StartError::Store(e) => write!(f, "{e}"),
            StartError::ProfileTooLarge { bytes, room } => write!(
                f,
                "this node's member update (name, address, dc and tags) encodes to {bytes} bytes, \
                 over the {room} a datagram has room for: use fewer or shorter tags, or raise \
                 packet_bytes_max"
            ),
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
    /// With a `data_dir`: the task keeping the state on disk.
    writer: Option<tokio::task::JoinHandle<()>>,
    stop: watch::Sender<bool>,
}

impl App {
    /// Bind, start the driver and the HTTP server, and begin joining the configured seeds.
    /// `rng_seed` seeds the node's protocol randomness.
    pub async fn start(mut settings: Settings, rng_seed: u64) -> Result<App, StartError> {
        // Before anything is opened: a bound the process cannot hold is a setting to fix.
        let nofile = descriptors::raise_soft_limit();
        settings.blocking_waiters_max = descriptors::fit(
            settings.blocking_waiters_max,
            settings.blocking_waiters_asked,
            nofile,
        )
        .map_err(StartError::Descriptors)?;
        // The data directory first: a node that cannot keep its state must not start serving.
        let mut opened = match &settings.data_dir {
            Some(dir) => Some(Store::open(dir, &settings.name).map_err(StartError::Store)?),
            None => None,
        };
        let kept_config = match opened.as_mut() {
            Some((store, saved)) => Some(restore_config(
                &mut settings,
                store.dir(),
                saved.config.take(),
            )?),
            None => None,
        };
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
        // The label first: the sealer a keyring brings binds it.
        node.set_cluster_label(settings.cluster_label.clone());
        let (mut store, saved) = match opened {
            Some((store, saved)) => (Some(store), saved),
            None => (None, Saved::default()),
        };
        match (saved.keyring.clone(), &settings.encrypt) {
            (Some(ring), configured) => {
                tracing::info!(
                    keys = ring.keys().len(),
                    config_encrypt = configured.is_some(),
                    "gossip keyring restored from the data_dir ({}): it wins over `encrypt` in \
                     the config",
                    store::format::KEYRING_FILE
                );
                node.set_keyring(ring);
            }
            (None, Some(key)) => node.set_keyring(Keyring::new(key.clone())),
            (None, None) => {}
        }
        if let Err((bytes, room)) = node.own_update_fits() {
            return Err(StartError::ProfileTooLarge { bytes, room });
        }
        let remembered = saved.members.clone();
        if let Some(store) = store.as_mut() {
            restore(&mut node, &clock, saved);
            store
                .begin(std::sync::Arc::new(Snapshot::of(&node, clock.now())))
                .map_err(StartError::Store)?;
        }

        let (stop, stopped) = watch::channel(false);
        let running =
            driver::spawn(node, socket, clock, wait_true(stopped.clone())).map_err(|source| {
                StartError::BindGossip {
                    addr: settings.bind,
                    source,
                }
            })?;
        let mut handle = running.handle;
        let writer = store.map(|store| {
            let writer = store.spawn_writer(handle.watch());
            handle = handle.clone().with_durability(writer.durability);
            writer.task
        });
        let waiters_max = settings.blocking_waiters_max;
        let state = AppState::new(handle.clone(), settings.liveness, waiters_max, kept_config)
            .with_access(settings.access.clone());
        let router = http::router(state);
        // HTTP stops when asked, or when the node has stopped (after a leave through the API).
        let node_done = handle.wait_for(std::time::Duration::MAX, |s| {
            s.lifecycle == crate::node::Lifecycle::Stopped
        });
        let mut http_stop = stopped.clone();
        let limits = http::ConnectionLimits::for_waiters(waiters_max);
        let http = tokio::spawn(http::connections::serve(
            listener,
            limits,
            router,
            async move {
                tokio::select! {
                    _ = node_done => {}
                    _ = http_stop.wait_for(|v| *v) => {}
                }
            },
        ));
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
            cluster_label = settings.cluster_label.as_ref().map(|l| l.as_str()),
            api_token = settings.access.token.is_some(),
            dns = %dns_addr.map_or_else(|| "off".to_string(), |a| a.to_string()),
            dns_domain = %settings.dns_domain,
            blocking_waiters_max = settings.blocking_waiters_max,
            nofile = %nofile.soft.map_or_else(|| "unlimited".to_string(), |n| n.to_string()),
            "hera node started"
        );
        match &settings.data_dir {
            Some(dir) => tracing::info!(data_dir = %dir.display(), "state kept across restarts"),
            None => tracing::info!(
                "no data_dir: nothing is kept across restarts (set data_dir or --data-dir)"
            ),
        }
        rejoin::spawn(handle.clone(), settings.join.clone(), remembered);
        Ok(App {
            handle,
            gossip_addr,
            http_addr,
            dns_addr,
            driver: running.task,
            http,
            dns,
            writer,
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
        // The writer ends once the driver has, after writing its last state.
        if let Some(writer) = self.writer {
            let _ = writer.await;
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
        // Ends without a final write (the driver stopped abruptly), releasing the lock.
        if let Some(writer) = self.writer {
            writer.abort();
            let _ = writer.await;
        }
    }

    /// Wait until the node stops by itself (a leave through the API, or its name found taken
    /// at join) or `signal` fires, then shut down cleanly. Says why it ended.
    pub async fn run_until(self, signal: impl Future<Output = ()>) -> Ended {
        let stopped = self.handle.wait_for(std::time::Duration::MAX, |s| {
            s.lifecycle == crate::node::Lifecycle::Stopped
        });
        let ended = tokio::select! {
            snapshot = stopped => match snapshot.and_then(|s| s.name_taken_by) {
                Some(holder) => Ended::NameTaken { holder },
                None => Ended::Stopped,
            },
            () = signal => Ended::Stopped,
        };
        self.shutdown().await;
        ended
    }
}

/// Why [`App::run_until`] returned.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Ended {
    /// Left, or told to stop.
    Stopped,
    /// A live member at `holder` has this node's name: it refused to join (a second process
    /// under one name, e.g. a cloned VM keeping its host name). `hera run` exits with 1.
    NameTaken { holder: SocketAddr },
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

/// Apply the configuration changed at run time in earlier runs over the config file's and
/// the flags', and say so: like the keyring, a change made at run time stands until changed
/// again. A kept change that no longer fits (the config file moved another value so that the
/// two conflict) is refused at start with the file, as any bad state file is.
fn restore_config(
    settings: &mut Settings,
    dir: &std::path::Path,
    kept: Option<serde_json::Map<String, serde_json::Value>>,
) -> Result<KeptConfig, StartError> {
    let file = dir.join(store::format::CONFIG_FILE);
    let corrupt = |detail: String| {
        StartError::Store(StoreError::Corrupt {
            file: file.clone(),
            detail,
        })
    };
    let (overrides, change) = Overrides::read(kept.unwrap_or_default()).map_err(corrupt)?;
    if !overrides.is_empty() {
        settings.config = settings
            .config
            .tuned(&change.tuning)
            .map_err(|e| corrupt(format!("{e} (with the rest of the configuration)")))?;
        settings.liveness = change
            .tunables(Tunables {
                liveness: settings.liveness,
                blocking_waiters_max: settings.blocking_waiters_max,
            })
            .liveness;
        tracing::info!(
            file = %file.display(),
            settings = %serde_json::Value::Object(overrides.as_map().clone()),
            "configuration changed at run time restored from the data_dir: it wins over the \
             config file and the flags for these settings"
        );
    }
    Ok(KeptConfig {
        dir: dir.to_path_buf(),
        overrides: tokio::sync::Mutex::new(overrides),
    })
}

/// Hand the node what its data directory kept, and say what that was.
fn restore(node: &mut Node, clock: &Clock, saved: Saved) {
    let count = saved.restored.instances.len();
    if saved.empty {
        tracing::info!("data_dir is empty: a first start");
        return;
    }
    let _ = node.handle_command(clock.now(), Command::Restore(Box::new(saved.restored)));
    tracing::info!(
        instances = count,
        skipped = saved.skipped.len(),
        members = saved.members.len(),
        incarnation = node.incarnation().get(),
        "restored this node's state"
    );
}
