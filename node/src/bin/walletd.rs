//! `walletd`: starts a wallet node.

use anyhow::Context;
use clap::Parser;
use node::server::Node;
use std::path::PathBuf;

/// A wallet ledger node: account actors, transfer sagas, HTTP and WebSocket API.
#[derive(Parser, Debug)]
#[command(name = "walletd", version)]
struct Args {
    /// Config file (TOML). Without it, defaults: 127.0.0.1:8080, embedded store under ./data.
    #[arg(long, value_name = "FILE")]
    config: Option<PathBuf>,
    /// Address to serve HTTP and WebSocket on (overrides node.listen).
    #[arg(long, value_name = "ADDR")]
    listen: Option<String>,
    /// Directory of the embedded store (overrides storage.path).
    #[arg(long, value_name = "DIR")]
    data: Option<PathBuf>,
}

fn main() -> anyhow::Result<()> {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "info".into()),
        )
        .with_writer(std::io::stderr)
        .init();
    // A panic is a bug: an assertion about money or a state machine failed. Stop the whole
    // node rather than go on with one actor dead; a restart recovers from storage, where
    // every acknowledged command already is.
    let default_hook = std::panic::take_hook();
    std::panic::set_hook(Box::new(move |info| {
        default_hook(info);
        std::process::abort();
    }));
    let args = Args::parse();
    let mut config = match &args.config {
        Some(path) => cluster_config::load(path)?,
        None => {
            let mut c = cluster_config::Config::default();
            c.apply_env(std::env::vars())?;
            c
        }
    };
    if let Some(l) = args.listen {
        config.node.listen = l;
    }
    if let Some(d) = args.data {
        config.storage.path = d;
    }
    config.validate()?;
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("starting the runtime")?;
    rt.block_on(async move {
        // Installed before the node starts, so that a SIGHUP sent as soon as the start line
        // appears reloads the tokens instead of killing the process.
        let mut hangup = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::hangup())
            .context("installing the SIGHUP handler")?;
        let node = Node::start(&config).await?;
        // Tests and scripts read this line to learn the port when listening on port 0.
        let scheme = if config.node.tls_cert.is_some() {
            "https"
        } else {
            "http"
        };
        let admin = node
            .admin_addr()
            .map(|a| format!("; admin on {scheme}://{a}"))
            .unwrap_or_default();
        println!(
            "walletd {} listening on {scheme}://{} (node {}, storage {} at {}{admin})",
            env!("CARGO_PKG_VERSION"),
            node.addr(),
            config.node.id,
            node.shell().store().backend_name(),
            storage_location(&config)
        );
        let shutdown = shutdown_signal();
        tokio::pin!(shutdown);
        loop {
            tokio::select! {
                _ = &mut shutdown => break,
                _ = node.drained() => break,
                _ = hangup.recv() => reload_tokens(&node, args.config.as_deref()),
            }
        }
        tracing::info!("shutting down: finishing in-flight requests and draining actors");
        node.shutdown().await;
        tracing::info!("stopped");
        anyhow::Ok(())
    })?;
    // Every task holding a database handle ends with the runtime; then the FoundationDB
    // network thread may stop, as its client library requires before the process exits.
    drop(rt);
    #[cfg(feature = "fdb")]
    node::storage::fdb::network::stop();
    Ok(())
}

/// SIGHUP: reads the config file again and swaps in its `[auth]` tokens. Other settings take
/// a restart. A file that does not load keeps the current tokens.
fn reload_tokens(node: &Node, path: Option<&std::path::Path>) {
    let Some(path) = path else {
        tracing::warn!("SIGHUP: no --config file to reload; nothing changed");
        return;
    };
    let config = match cluster_config::load(path) {
        Ok(c) => c,
        Err(e) => {
            tracing::error!(error = %e, "SIGHUP: the config does not load; the current tokens stay");
            return;
        }
    };
    if config.auth.is_none() && !node.auth_on() {
        tracing::info!("SIGHUP: authentication is off (no [auth]); nothing to reload");
        return;
    }
    match node.reload_auth(config.auth.as_ref()) {
        Ok(ids) => {
            tracing::info!(tokens = ?ids, "SIGHUP: tokens reloaded (other settings take a restart)")
        }
        Err(why) => tracing::error!("SIGHUP: {why}"),
    }
}

/// Where the ledger is stored, for the start line.
fn storage_location(config: &cluster_config::Config) -> String {
    match (&config.storage.backend, &config.storage.cluster_file) {
        (cluster_config::Backend::Fdb, Some(file)) => {
            format!(
                "{} under prefix {:?}",
                file.display(),
                config.storage.prefix
            )
        }
        _ => config.storage.path.display().to_string(),
    }
}

async fn shutdown_signal() {
    use tokio::signal::unix::{signal, SignalKind};
    let mut term = signal(SignalKind::terminate()).expect("installing the SIGTERM handler");
    tokio::select! {
        _ = tokio::signal::ctrl_c() => {}
        _ = term.recv() => {}
    }
}
