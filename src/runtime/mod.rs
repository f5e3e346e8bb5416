//! Everything with I/O: the shells around the sans-IO core, behind the `runtime` feature.
//!
//! | module | job |
//! |---|---|
//! | [`clock`] | the one sanctioned clock read, shared by the driver and the faces' timing |
//! | [`driver`] | tokio: the socket and the task that owns the `Node` |
//! | [`http`] | axum: the HTTP faces (seed API, Consul's API, hera's own, the console) |
//! | [`dns`] | Consul's DNS interface (UDP and TCP), answered from the published snapshot |
//! | [`telemetry`] | tracing set-up and the Prometheus export of the core's counters |
//! | [`settings`] | the deployment's settings: config file, flags, defaults |
//! | [`http_client`] | the one-request HTTP client of health checks and the CLI |
//! | [`cli`] | clap: `hera run` and the client subcommands |
//! | [`descriptors`] | the descriptor limit raised, and checked against the HTTP bound at start |
//! | [`store`] | the node's durable state in its `data_dir` |
//! | [`rejoin`] | joins retried (and names re-resolved) while the node is alone |
//! | [`app`] | one running node: driver, HTTP and telemetry started together |

pub mod app;
pub mod cli;
pub mod clock;
pub mod descriptors;
pub mod dns;
pub mod driver;
pub mod http;
pub mod http_client;
pub mod overrides;
pub mod rejoin;
pub mod resident;
pub mod settings;
pub mod store;
pub mod telemetry;
