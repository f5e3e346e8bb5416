//! The command line: `hera run` starts a node; the other subcommands talk to a running node's
//! HTTP API, in the spirit of `consul members` / `serf members`.

mod client;
mod keys;
mod knobs;
mod registry;

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand};

use crate::runtime::settings::{FileSettings, Overrides, Settings};

#[derive(Debug, Parser)]
#[command(
    name = "hera",
    version,
    about = "A decentralised service registry: SWIM gossip, Consul-compatible HTTP"
)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Commands,
}

#[derive(Debug, Subcommand)]
pub enum Commands {
    /// Start a node (with no options: a single node on loopback with safe defaults).
    Run(RunArgs),
    /// List the cluster's members as this node sees them.
    Members(ClientArgs),
    /// Show this node's status: members by state, quorum, dissemination queue, the registry
    /// against its bounds.
    Status(ClientArgs),
    /// Make the node leave the cluster gracefully (it stops afterwards).
    Leave(ClientArgs),
    /// Gossip encryption keys of one node: list, install, use (make primary), remove.
    #[command(subcommand)]
    Keyring(KeyringOp),
    /// Print a new random cluster key (base64 of 32 bytes) for `encrypt` / `--encrypt`.
    Keygen,
    /// List every service with its instance ids.
    Services(ClientArgs),
    /// List one service's instances: address, health, on-line status, owner.
    Instances(InstancesArgs),
    /// Register a service instance with the node (which becomes its owner); prints its id.
    Register(RegisterArgs),
    /// Deregister an instance everywhere.
    Deregister(IdArgs),
    /// Take an instance off-line (`on`: maintenance) or back on-line (`off`).
    Maintenance(MaintenanceArgs),
}

#[derive(Debug, Args)]
pub struct InstancesArgs {
    pub service: String,
    #[command(flatten)]
    pub client: ClientArgs,
}

#[derive(Debug, Args)]
pub struct RegisterArgs {
    /// The service's name.
    pub service: String,
    /// The address clients should connect to.
    #[arg(long)]
    pub address: String,
    #[arg(long)]
    pub port: u16,
    /// The instance id, unique in the cluster [default: the node assigns one].
    #[arg(long)]
    pub id: Option<String>,
    /// A tag; repeat for more.
    #[arg(long = "tag")]
    pub tags: Vec<String>,
    /// A TTL check ("15s", "1m"): the instance turns critical unless renewed within it.
    #[arg(long)]
    pub ttl: Option<String>,
    #[command(flatten)]
    pub client: ClientArgs,
}

#[derive(Debug, Args)]
pub struct IdArgs {
    /// The instance id.
    pub id: String,
    #[command(flatten)]
    pub client: ClientArgs,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Switch {
    On,
    Off,
}

#[derive(Debug, Args)]
pub struct MaintenanceArgs {
    /// The instance id.
    #[arg(required_unless_present = "node")]
    pub id: Option<String>,
    /// `on` takes the instance off-line, `off` brings it back.
    #[arg(required_unless_present = "node")]
    pub mode: Option<Switch>,
    /// The whole node instead: `on` takes every instance it owns off-line (Consul's node
    /// maintenance), `off` brings them back.
    #[arg(long, value_enum, conflicts_with_all = ["id", "mode"])]
    pub node: Option<Switch>,
    /// Why it is off-line (shown in health checks and the console).
    #[arg(long)]
    pub reason: Option<String>,
    #[command(flatten)]
    pub client: ClientArgs,
}

#[derive(Debug, Args)]
pub struct RunArgs {
    /// Config file (TOML); flags override it.
    #[arg(short = 'c', long = "config")]
    pub config: Option<PathBuf>,
    /// This node's name, unique in the cluster [default: host name].
    #[arg(long)]
    pub name: Option<String>,
    /// UDP address for gossip [default: 127.0.0.1:7946].
    #[arg(long)]
    pub bind: Option<String>,
    /// Address other nodes should use to reach this one [default: the bind address].
    #[arg(long)]
    pub advertise: Option<String>,
    /// TCP address for the HTTP API [default: 127.0.0.1:8500].
    #[arg(long)]
    pub http: Option<String>,
    /// UDP and TCP address for DNS, "" for none [default: 127.0.0.1:8600].
    #[arg(long)]
    pub dns: Option<String>,
    /// A node to join through (host:port); repeat for more.
    #[arg(long = "join")]
    pub join: Vec<String>,
    /// Data-centre label [default: dc1].
    #[arg(long)]
    pub dc: Option<String>,
    /// Protocol preset: lan, wan or local [default: lan].
    #[arg(long)]
    pub preset: Option<String>,
    /// Log level (error, warn, info, debug, trace) or a tracing filter [default: info].
    #[arg(long = "log-level")]
    pub log_level: Option<String>,
    /// Cluster key (base64 of 32 bytes, from `hera keygen`): seal all gossip with it.
    #[arg(long)]
    pub encrypt: Option<String>,
    /// Cluster label: every datagram carries it, and nodes with another label (or none) are
    /// refused, so clusters sharing a key or addresses never merge.
    #[arg(long = "cluster-label")]
    pub cluster_label: Option<String>,
    /// HTTP API token: required for writes (and reads, with `token_reads` in the file).
    #[arg(long, env = "HERA_TOKEN", hide_env_values = true)]
    pub token: Option<String>,
    /// One flag per knob of the schema (`--probe-interval 2s`, `--liveness 5m`, ...).
    #[command(flatten)]
    pub knobs: knobs::KnobFlags,
    /// Directory for the node's state between runs (instances, keyring, members); locked
    /// while the node runs [default: none, nothing is kept].
    #[arg(long = "data-dir")]
    pub data_dir: Option<PathBuf>,
}

#[derive(Debug, Subcommand)]
pub enum KeyringOp {
    /// List every member's keys, the primary (used to seal) first.
    List(KeyringListArgs),
    /// Accept gossip sealed with this key too, on every member (step 1 of a rotation).
    Install(KeyArgs),
    /// Seal with this key from now on, on every member (step 2); refused unless every member
    /// has it installed.
    Use(KeyArgs),
    /// Stop accepting this key, on every member (step 3); refused while it is any member's
    /// primary.
    Remove(KeyArgs),
}

/// Where a keyring command acts, and how long it waits for answers.
#[derive(Debug, Args)]
pub struct KeyringScope {
    /// Act on the node asked alone, not on every member.
    #[arg(long)]
    pub local: bool,
    /// How long to collect the members' answers (e.g. 3s; at most 4s).
    #[arg(long)]
    pub timeout: Option<String>,
}

#[derive(Debug, Args)]
pub struct KeyringListArgs {
    #[command(flatten)]
    pub scope: KeyringScope,
    #[command(flatten)]
    pub client: ClientArgs,
}

#[derive(Debug, Args)]
pub struct KeyArgs {
    /// The key, base64 of 32 bytes.
    pub key: String,
    /// `use` only: make the key primary even where it is not known to be installed (members
    /// that lack it are cut off until they get it).
    #[arg(long)]
    pub force: bool,
    #[command(flatten)]
    pub scope: KeyringScope,
    #[command(flatten)]
    pub client: ClientArgs,
}

#[derive(Debug, Args)]
pub struct ClientArgs {
    /// The node's HTTP address.
    #[arg(long = "http-addr", env = "HERA_HTTP_ADDR", default_value = crate::runtime::settings::DEFAULT_HTTP)]
    pub http_addr: String,
    /// The node's API token, if it requires one.
    #[arg(long, env = "HERA_TOKEN", hide_env_values = true)]
    pub token: Option<String>,
}

impl RunArgs {
    pub fn settings(&self) -> Result<Settings, crate::runtime::settings::SettingsError> {
        let file = match &self.config {
            Some(path) => Some((path.as_path(), FileSettings::load(path)?)),
            None => None,
        };
        let cli = Overrides {
            name: self.name.clone(),
            bind: self.bind.clone(),
            advertise: self.advertise.clone(),
            http: self.http.clone(),
            dns: self.dns.clone(),
            join: self.join.clone(),
            dc: self.dc.clone(),
            preset: self.preset.clone(),
            log_level: self.log_level.clone(),
            encrypt: self.encrypt.clone(),
            cluster_label: self.cluster_label.clone(),
            token: self.token.clone(),
            knobs: self.knobs.values.clone(),
            data_dir: self.data_dir.clone(),
        };
        Settings::resolve(file, cli)
    }
}

impl Commands {
    /// The connection arguments of a client subcommand (None for `run` and `keygen`).
    fn client_args(&self) -> Option<&ClientArgs> {
        match self {
            Commands::Run(_) | Commands::Keygen => None,
            Commands::Members(a) | Commands::Status(a) | Commands::Leave(a) => Some(a),
            Commands::Services(a) => Some(a),
            Commands::Instances(a) => Some(&a.client),
            Commands::Register(a) => Some(&a.client),
            Commands::Deregister(a) => Some(&a.client),
            Commands::Maintenance(a) => Some(&a.client),
            Commands::Keyring(
                KeyringOp::List(KeyringListArgs { client: a, .. })
                | KeyringOp::Install(KeyArgs { client: a, .. })
                | KeyringOp::Use(KeyArgs { client: a, .. })
                | KeyringOp::Remove(KeyArgs { client: a, .. }),
            ) => Some(a),
        }
    }
}

/// Run a client subcommand; returns the process exit code.
pub async fn run_client(command: &Commands) -> i32 {
    if let Some(args) = command.client_args() {
        client::set_token(args.token.clone());
    }
    let result = match command {
        Commands::Keyring(op) => keys::keyring(op).await,
        Commands::Keygen => keys::keygen(),
        Commands::Members(args) => client::members(&args.http_addr).await,
        Commands::Status(args) => client::status(&args.http_addr).await,
        Commands::Leave(args) => client::leave(&args.http_addr).await,
        Commands::Services(args) => registry::services(&args.http_addr).await,
        Commands::Instances(args) => {
            registry::instances(&args.client.http_addr, &args.service).await
        }
        Commands::Register(args) => {
            let registration = registry::Registration {
                service: args.service.clone(),
                address: args.address.clone(),
                port: args.port,
                id: args.id.clone(),
                tags: args.tags.clone(),
                ttl: args.ttl.clone(),
            };
            registry::register(&args.client.http_addr, &registration).await
        }
        Commands::Deregister(args) => registry::deregister(&args.client.http_addr, &args.id).await,
        Commands::Maintenance(args) => match (&args.node, &args.id, &args.mode) {
            (Some(node), _, _) => {
                registry::node_maintenance(
                    &args.client.http_addr,
                    *node == Switch::On,
                    args.reason.as_deref(),
                )
                .await
            }
            (None, Some(id), Some(mode)) => {
                registry::maintenance(
                    &args.client.http_addr,
                    id,
                    *mode == Switch::On,
                    args.reason.as_deref(),
                )
                .await
            }
            _ => Err("give an instance id and on|off, or --node on|off".to_string()),
        },
        Commands::Run(_) => Ok(()),
    };
    match result {
        Ok(()) => 0,
        Err(e) => {
            eprintln!("error: {e}");
            1
        }
    }
}
