//! `credit-risk serve`: the gRPC server on the embedded store, optionally filled with a
//! generated demo city first.

use std::{io::Write, path::PathBuf};

use credit_risk::{
    jobs::batch_scoring::{run_to_completion, BatchRequest},
    replication,
    server::{
        self,
        auth::Authenticator,
        config::{Config, MetricsConfig},
        demo,
    },
    store::{self, Actor, Store},
};

use super::{init_logging, runtime, shutdown_signal, CliResult};

/// Options of `credit-risk serve`.
#[derive(clap::Args, Debug)]
pub struct Args {
    /// Configuration file (TOML); see README "Configuration".
    #[arg(long, env = "CREDIT_RISK_CONFIG")]
    config: Option<PathBuf>,
    /// Data directory of the store [default: ./credit-risk-data].
    #[arg(long, env = "CREDIT_RISK_DATA_DIR")]
    data_dir: Option<PathBuf>,
    /// Listen address HOST:PORT; port 0 picks a free port [default: 127.0.0.1:50051].
    #[arg(long, env = "CREDIT_RISK_LISTEN")]
    listen: Option<String>,
    /// Fill an empty store with a small generated city (N entities) first.
    #[arg(long, num_args = 0..=1, default_missing_value = "2000", value_name = "N")]
    demo: Option<u64>,
    /// The generator seed of --demo (another seed: other enterprises with other
    /// identifiers, e.g. a second city for a federated joint draw).
    #[arg(long, default_value_t = 1, requires = "demo")]
    demo_seed: u64,
    /// This instance's name in federated joint draws [config: store.instance_name,
    /// default "local"].
    #[arg(long, env = "CREDIT_RISK_INSTANCE_NAME")]
    instance_name: Option<String>,
    /// Serve Prometheus metrics on HOST:PORT (GET /metrics), e.g. 127.0.0.1:9464.
    #[arg(long, env = "CREDIT_RISK_METRICS_LISTEN", value_name = "HOST:PORT")]
    metrics_listen: Option<String>,
    /// Log as JSON lines.
    #[arg(long, env = "CREDIT_RISK_LOG_JSON")]
    log_json: bool,
    /// Log one line per RPC (path, status code, milliseconds, principal; never a token)
    /// on the target credit_risk::access [config: server.access_log].
    #[arg(long)]
    access_log: bool,
}

/// Runs `credit-risk serve` until Ctrl-C or SIGTERM.
pub fn run(a: Args) -> CliResult {
    let mut cfg = match &a.config {
        Some(p) => Config::from_file(p)?,
        None => Config::default(),
    };
    if let Some(d) = a.data_dir {
        cfg.server.data_dir = d;
    }
    if let Some(l) = a.listen {
        cfg.server.listen = l;
    }
    if let Some(n) = a.instance_name {
        cfg.store.instance_name = n;
    }
    if let Some(listen) = a.metrics_listen {
        cfg.server.metrics = Some(MetricsConfig { listen });
    }
    cfg.log.json |= a.log_json;
    cfg.server.access_log |= a.access_log;
    init_logging(&cfg.log.filter, cfg.log.json);
    let rt = runtime(cfg.server.worker_threads)?;
    let data_dir = cfg.server.data_dir.clone();
    let store_options = cfg.store.clone();
    let served: CliResult = rt.block_on(async move {
        let addr = cfg.server.listen_addr()?;
        let models = cfg.scoring.models()?;
        cfg.store.load_files()?;
        cfg.store.replicated = cfg.replication.enabled();
        if cfg.store.replicated {
            cfg.store.replica_node = cfg.replication.node.clone();
            cfg.store.checkpoint_every = cfg.replication.checkpoint_every;
        }
        let store = Store::open_with_models(&cfg.server.data_dir, cfg.store.clone(), models)?;
        // Replicated mode: the applier stops when shutdown is requested, before the
        // server drains and closes the store.
        let (stop_applier, applier_stop) = tokio::sync::watch::channel(false);
        if cfg.replication.enabled() {
            replication::start(&cfg.replication, store.clone(), applier_stop).await?;
        }
        if let Some(n) = a.demo {
            let stored = demo::load_seeded(&store, n, a.demo_seed).await?;
            tracing::info!(stored, "demo data loaded (0 = store already had data)");
            // A new store is scored under every active model in one pass (the general
            // model first: a specialised model reads the general class).
            if store.current_run()?.is_none() {
                let runs = run_to_completion(
                    store.clone(),
                    BatchRequest {
                        model_version: None,
                        family: None,
                        all_families: true,
                        as_of: store.today(),
                        dry_run: false,
                        requested_by: "demo".into(),
                        actor: Actor::system("serve --demo"),
                    },
                    |_| {},
                )
                .await?;
                for run in runs {
                    tracing::info!(run = run.id, model = %run.model_version, classes = ?run.classes, "demo data scored");
                }
                // The pass's tail (its spot bases stored, old runs retired) is over
                // before the server starts.
                drop(store.pass_tail());
            }
        }
        let listener = tokio::net::TcpListener::bind(addr).await?;
        let bound = listener.local_addr()?;
        // Refuse a bad auth configuration (development mode off loopback) before
        // announcing the address: whatever waits for that line may rely on it.
        Authenticator::new(&cfg.server.auth, bound.ip().is_loopback())?;
        println!("listening on {bound}");
        std::io::stdout().flush()?;
        tracing::info!(%bound, data_dir = %cfg.server.data_dir.display(), "serving");
        if store.loading() {
            tracing::info!(
                "pending dry runs load in the background: reads are served, writes wait for them"
            );
        }
        let shutdown = async move {
            shutdown_signal().await;
            let _ = stop_applier.send(true);
        };
        server::run(&cfg.server, store, listener, shutdown).await?;
        Ok(())
    });
    // Tasks still holding a handle of the store end with the runtime.
    rt.shutdown_timeout(std::time::Duration::from_secs(5));
    served?;
    // A clean stop (never after a fault: that returned above): sled writes its page-table
    // snapshot, so the next open need not replay everything written since this one.
    if store_options.snapshot_at_shutdown {
        match store::snapshot_closed(&data_dir, &store_options) {
            Ok(seconds) => tracing::info!(
                seconds,
                "sled snapshot written: the next open reads it instead of replaying the log"
            ),
            // The re-open read the files as the next start will: a damaged store is
            // reported now, as loudly as that start will refuse it.
            Err(e @ credit_risk::Error::Corrupt(_)) => tracing::error!(
                error = %e,
                "sled snapshot not written: the store is damaged"
            ),
            Err(e) => tracing::warn!(
                error = %e,
                "sled snapshot not written: the next open replays the log since this one"
            ),
        }
    }
    Ok(())
}
