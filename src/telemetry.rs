//! Logging set-up. (Metrics export lives with the HTTP `/metrics` route.)

use tracing_subscriber::EnvFilter;

/// Install the global tracing subscriber at `level` (`error`…`trace`, or a full filter such as
/// `hera=debug,tower=warn`). `RUST_LOG` wins when set.
pub fn init_logging(level: &str) -> Result<(), String> {
    let filter = match std::env::var("RUST_LOG") {
        Ok(env) if !env.is_empty() => EnvFilter::try_new(env),
        _ => EnvFilter::try_new(level),
    }
    .map_err(|e| format!("log level {level:?}: {e}"))?;
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_target(false)
        .try_init()
        .map_err(|e| e.to_string())
}
