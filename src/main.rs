//! `hera`: run a node, or talk to one.

use clap::Parser;

use hera::runtime::app::{App, Ended};
use hera::runtime::cli::{run_client, Cli, Commands};

fn main() {
    let cli = Cli::parse();
    // One thread: a node's protocol work is a few datagrams a second, and a single-threaded
    // runtime keeps resident memory near the floor. HTTP load that needs more cores can set
    // HERA_WORKER_THREADS.
    let threads: usize = std::env::var("HERA_WORKER_THREADS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(1);
    let built = if threads <= 1 {
        tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
    } else {
        tokio::runtime::Builder::new_multi_thread()
            .worker_threads(threads)
            .enable_all()
            .build()
    };
    let runtime = match built {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("error: cannot start the async runtime: {e}");
            std::process::exit(1);
        }
    };
    let code = runtime.block_on(async {
        match &cli.command {
            Commands::Run(args) => run(args).await,
            other => run_client(other).await,
        }
    });
    std::process::exit(code);
}

async fn run(args: &hera::runtime::cli::RunArgs) -> i32 {
    let settings = match args.settings() {
        Ok(s) => s,
        Err(e) => {
            eprintln!("error: {e}");
            return 2;
        }
    };
    if let Err(e) = hera::runtime::telemetry::init_logging(&settings.log_level) {
        eprintln!("error: {e}");
        return 2;
    }
    let seed = entropy_seed();
    let app = match App::start(settings, seed).await {
        Ok(app) => app,
        Err(e) => {
            tracing::error!("{e}");
            eprintln!("error: {e}");
            return 1;
        }
    };
    // Start-up is over: its code need not stay resident (`runtime::resident`).
    let trimmed = hera::runtime::resident::trim_startup_pages();
    tracing::debug!(
        mappings = trimmed.mappings,
        bytes = trimmed.bytes,
        clean_bytes = trimmed.clean_bytes,
        "start-up pages given back"
    );
    match app.run_until(termination()).await {
        Ended::Stopped => 0,
        Ended::NameTaken { holder } => {
            let message = format!(
                "this node's name is held by a live member at {holder}: refusing to join \
                 (set another `name`, or stop the other process)"
            );
            tracing::error!("{message}");
            eprintln!("error: {message}");
            1
        }
    }
}

/// A seed for the node's protocol randomness, from the operating system.
fn entropy_seed() -> u64 {
    use std::hash::{BuildHasher, Hasher};
    // RandomState is seeded from the OS's random source; no extra dependency needed.
    let mut h = std::collections::hash_map::RandomState::new().build_hasher();
    h.write_u32(std::process::id());
    h.finish()
}

/// Resolves on SIGINT or SIGTERM.
async fn termination() {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{signal, SignalKind};
        match signal(SignalKind::terminate()) {
            Ok(mut term) => {
                tokio::select! {
                    _ = tokio::signal::ctrl_c() => {}
                    _ = term.recv() => {}
                }
            }
            Err(_) => {
                let _ = tokio::signal::ctrl_c().await;
            }
        }
    }
    #[cfg(not(unix))]
    {
        let _ = tokio::signal::ctrl_c().await;
    }
}
