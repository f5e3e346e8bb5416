//! The command line: `hera run` starts a node; the other subcommands talk to a running node's
//! HTTP API, in the spirit of `consul members` / `serf members`.

mod client;

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand};

use crate::settings::{FileSettings, Overrides, Settings};

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
    /// Show this node's status: members by state, quorum, dissemination queue.
    Status(ClientArgs),
    /// Make the node leave the cluster gracefully (it stops afterwards).
    Leave(ClientArgs),
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
}

#[derive(Debug, Args)]
pub struct ClientArgs {
    /// The node's HTTP address.
    #[arg(long = "http-addr", env = "HERA_HTTP_ADDR", default_value = crate::settings::DEFAULT_HTTP)]
    pub http_addr: String,
}

impl RunArgs {
    pub fn settings(&self) -> Result<Settings, crate::settings::SettingsError> {
        let file = match &self.config {
            Some(path) => Some((path.as_path(), FileSettings::load(path)?)),
            None => None,
        };
        let cli = Overrides {
            name: self.name.clone(),
            bind: self.bind.clone(),
            advertise: self.advertise.clone(),
            http: self.http.clone(),
            join: self.join.clone(),
            dc: self.dc.clone(),
            preset: self.preset.clone(),
            log_level: self.log_level.clone(),
        };
        Settings::resolve(file, cli)
    }
}

/// Run a client subcommand; returns the process exit code.
pub async fn run_client(command: &Commands) -> i32 {
    let result = match command {
        Commands::Members(args) => client::members(&args.http_addr).await,
        Commands::Status(args) => client::status(&args.http_addr).await,
        Commands::Leave(args) => client::leave(&args.http_addr).await,
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
