//! The gRPC server: builds and runs it (services, health, reflection, limits, graceful
//! shutdown) and holds its parts. `run` takes its listener and shutdown future from the
//! caller, so tests bind `127.0.0.1:0` and stop it themselves.
//!
//! - [`config`]: the configuration file, environment and flags.
//! - [`service`]: the gRPC handlers (proto ↔ domain, error → status).
//! - [`guard`]: the one request layer, running every request guard below in order.
//! - [`metrics`], [`limits`], [`deadline`], [`auth`], [`sequence`]: the request guards.
//! - [`connection`], [`wire`]: connection and message guards.
//! - [`demo`]: `serve --demo` data.

pub mod auth;
pub mod config;
pub mod connection;
pub mod deadline;
pub mod demo;
pub mod guard;
pub mod limits;
pub mod metrics;
pub mod sequence;
pub mod service;
pub mod wire;

use std::future::Future;

use tokio::net::TcpListener;

use tonic::transport::{server::TcpIncoming, Certificate, Identity, Server, ServerTlsConfig};

use self::config::ServerConfig;
use crate::{
    proto::{
        self, admin_service_server::AdminServiceServer, audit_service_server::AuditServiceServer,
        classification_service_server::ClassificationServiceServer,
        credit_repair_service_server::CreditRepairServiceServer,
        registry_service_server::RegistryServiceServer,
        spot_check_service_server::SpotCheckServiceServer,
    },
    server::service::{
        admin::AdminApi, audit::AuditApi, classification::ClassificationApi, registry::RegistryApi,
        repair::CreditRepairApi, spotcheck::SpotCheckApi,
    },
    store::Store,
};

/// Serves until `shutdown` completes, then drains in-flight requests for at most the
/// configured grace period and flushes the store. The metrics endpoint, if configured
/// (`[server.metrics]`), is bound here.
pub async fn run(
    cfg: &ServerConfig,
    store: Store,
    listener: TcpListener,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> Result<(), Box<dyn std::error::Error + Send + Sync>> {
    let metrics_listener = match &cfg.metrics {
        Some(m) => Some(
            TcpListener::bind(&m.listen)
                .await
                .map_err(|e| format!("server.metrics.listen {}: {e}", m.listen))?,
        ),
        None => None,
    };
    run_with_metrics(cfg, store, listener, metrics_listener, shutdown).await
}

/// [`run`] with the metrics listener bound by the caller (tests bind port 0).
pub async fn run_with_metrics(
    cfg: &ServerConfig,
    store: Store,
    listener: TcpListener,
    metrics_listener: Option<TcpListener>,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> Result<(), Box<dyn std::error::Error + Send + Sync>> {
    let metrics = metrics::Metrics::new(&[proto::FILE_DESCRIPTOR_SET])?;
    metrics.set_access_log(cfg.access_log);
    crate::fault::arm_from_env();
    let (health_reporter, health_service) = tonic_health::server::health_reporter();
    set_health(&health_reporter, tonic_health::ServingStatus::Serving).await;
    let reflection_v1 = tonic_reflection::server::Builder::configure()
        .register_encoded_file_descriptor_set(proto::FILE_DESCRIPTOR_SET)
        .register_encoded_file_descriptor_set(tonic_health::pb::FILE_DESCRIPTOR_SET)
        .build_v1()?;
    let reflection_v1alpha = tonic_reflection::server::Builder::configure()
        .register_encoded_file_descriptor_set(proto::FILE_DESCRIPTOR_SET)
        .register_encoded_file_descriptor_set(tonic_health::pb::FILE_DESCRIPTOR_SET)
        .build_v1alpha()?;

    let max = cfg.max_message_bytes;
    let registry = RegistryServiceServer::new(
        RegistryApi::new(store.clone()).with_stream_limits(cfg.stream_limits()),
    )
    .max_decoding_message_size(max)
    .max_encoding_message_size(max);

    let classification = ClassificationServiceServer::new(ClassificationApi::new(store.clone()))
        .max_decoding_message_size(max)
        .max_encoding_message_size(max);

    let spotcheck = SpotCheckServiceServer::new(
        SpotCheckApi::new(store.clone()).with_stream_limits(cfg.stream_limits()),
    )
    .max_decoding_message_size(max)
    .max_encoding_message_size(max);

    let audit = AuditServiceServer::new(AuditApi::new(store.clone()))
        .max_decoding_message_size(max)
        .max_encoding_message_size(max);

    let repair = CreditRepairServiceServer::new(CreditRepairApi::new(store.clone()))
        .max_decoding_message_size(max)
        .max_encoding_message_size(max);

    let loopback = listener.local_addr()?.ip().is_loopback();
    let auth = auth::Authenticator::new(&cfg.auth, loopback)?;
    if auth.is_dev_mode() {
        tracing::warn!("DEVELOPMENT MODE: no bearer tokens configured; every caller is `local` with the admin role (loopback only)");
        loud("WARNING: development mode — no authentication ([server.auth] has no tokens); loopback only".into());
    }
    let admin = AdminServiceServer::new(AdminApi::new(store.clone(), cfg.data_dir.clone()));
    let rules = crate::proto::rules_service_server::RulesServiceServer::new(
        service::rules::RulesApi::new(store.clone()),
    );

    if !auth.is_dev_mode() && cfg.tls.is_none() && !loopback {
        tracing::warn!(
            "bearer tokens travel in plaintext: [server.tls] is not set on a non-loopback listener"
        );
        loud(format!("WARNING: plaintext on {}: bearer tokens and records cross the network unencrypted; set [server.tls] (or listen on loopback behind a TLS proxy)", listener.local_addr()?));
    }
    wire::set_max_items(cfg.max_items_per_message);
    let timeouts = connection::ConnectionTimeouts {
        handshake: std::time::Duration::from_secs(cfg.handshake_timeout_secs.max(1)),
        idle: std::time::Duration::from_secs(cfg.connection_idle_secs.max(1)),
    };
    let incoming = {
        use futures::StreamExt;
        TcpIncoming::from(listener)
            .with_nodelay(Some(true))
            .map(move |r| r.map(|s| connection::GuardedIo::new(s, timeouts)))
    };
    let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
    // Repair cases past their due date raise alerts (at start, then periodically).
    tokio::spawn(crate::jobs::deadlines::run(store.clone(), stop_rx.clone()));
    // Match volume metered in memory is written every minute and at shutdown.
    let usage = tokio::spawn(crate::jobs::usage::run(store.clone(), stop_rx.clone()));
    // Watchers of alerts end at shutdown (told where to resume) instead of holding the
    // drain open for the whole grace period.
    let alerts = crate::proto::alert_service_server::AlertServiceServer::new(
        service::alerts::AlertApi::new(store.clone(), cfg.stream_limits(), stop_rx.clone()),
    )
    .max_decoding_message_size(max)
    .max_encoding_message_size(max);
    let statistics = crate::proto::statistics_service_server::StatisticsServiceServer::new(
        service::statistics::StatisticsApi::new(store.clone()),
    )
    .max_decoding_message_size(max)
    .max_encoding_message_size(max);
    let commitments = crate::proto::commitment_service_server::CommitmentServiceServer::new(
        service::commitment::CommitmentApi::new(store.clone()),
    )
    .max_decoding_message_size(max)
    .max_encoding_message_size(max);
    let measures = crate::proto::measures_service_server::MeasuresServiceServer::new(
        service::measures::MeasuresApi::new(store.clone()),
    )
    .max_decoding_message_size(max)
    .max_encoding_message_size(max);
    if let Some(l) = metrics_listener {
        let addr = l.local_addr()?;
        if !addr.ip().is_loopback() {
            tracing::warn!(%addr, "the metrics endpoint needs no token and is not on loopback");
            loud(format!("WARNING: metrics on {addr} (plain HTTP, no token): keep it on loopback or a monitoring network"));
        }
        let mut stopped = stop_rx.clone();
        let (m, st) = (metrics.clone(), store.clone());
        tokio::spawn(async move {
            let done = async move {
                let _ = stopped.wait_for(|s| *s).await;
            };
            if let Err(e) = metrics::serve(l, m, st, done).await {
                tracing::error!(error = %e, "metrics endpoint failed");
            }
        });
        tracing::info!(%addr, "metrics on http://{addr}/metrics");
    }
    let mut builder = Server::builder();
    if let Some(t) = &cfg.tls {
        let read = |p: &std::path::Path, what: &str| {
            std::fs::read(p).map_err(|e| format!("server.tls.{what} {}: {e}", p.display()))
        };
        let mut tls = ServerTlsConfig::new().identity(Identity::from_pem(
            read(&t.cert_file, "cert_file")?,
            read(&t.key_file, "key_file")?,
        ));
        if let Some(ca) = &t.client_ca_file {
            tls = tls.client_ca_root(Certificate::from_pem(read(ca, "client_ca_file")?));
        }
        builder = builder.tls_config(tls)?;
        tracing::info!(mtls = t.client_ca_file.is_some(), "TLS enabled");
    }
    let server = builder
        .concurrency_limit_per_connection(cfg.concurrency_per_connection)
        .max_concurrent_streams(cfg.max_concurrent_streams)
        .http2_keepalive_interval(Some(std::time::Duration::from_secs(
            cfg.keepalive_interval_secs.max(1),
        )))
        .http2_keepalive_timeout(Some(std::time::Duration::from_secs(
            cfg.keepalive_timeout_secs.max(1),
        )))
        .layer(guard::RequestGuards {
            metrics: metrics.clone(),
            global: limits::GlobalConcurrencyLimit::new(cfg.max_concurrent_requests),
            deadline: cfg.request_timeout(),
            auth,
            principal: limits::PrincipalLimit::new(
                cfg.max_requests_per_principal,
                cfg.max_streams_per_principal,
            ),
            sequence: sequence::Sequence {
                store: store.clone(),
            },
        })
        .trace_fn(|req| tracing::info_span!("rpc", path = %req.uri().path()))
        .add_service(health_service)
        .add_service(reflection_v1)
        .add_service(reflection_v1alpha)
        .add_service(registry)
        .add_service(classification)
        .add_service(spotcheck)
        .add_service(audit)
        .add_service(repair)
        .add_service(admin)
        .add_service(rules)
        .add_service(alerts)
        .add_service(statistics)
        .add_service(measures)
        .add_service(commitments)
        .serve_with_incoming_shutdown(incoming, {
            let health = health_reporter.clone();
            let mut fault = store.fault();
            async move {
                // A fault (the writer or a job failed) stops the server like a shutdown
                // request, but first turns every service NOT_SERVING.
                tokio::select! {
                    _ = shutdown => tracing::info!("shutdown requested: draining in-flight requests"),
                    _ = fault.wait_for(|f| f.is_some()) => tracing::error!(
                        "store fault: every service NOT_SERVING; draining in-flight requests, then exiting"
                    ),
                }
                set_health(&health, tonic_health::ServingStatus::NotServing).await;
                let _ = stop_tx.send(true);
            }
        });
    let grace = cfg.shutdown_grace();
    let mut stop_rx2 = stop_rx.clone();
    let forced = async move {
        let _ = stop_rx2.wait_for(|s| *s).await;
        tokio::time::sleep(grace).await;
    };
    tokio::select! {
        r = server => r?,
        _ = forced => tracing::warn!(?grace, "grace period over: closing remaining requests"),
    }
    set_health(&health_reporter, tonic_health::ServingStatus::NotServing).await;
    // The usage job ends when told to stop; what was matched while draining is written
    // here, before the store closes.
    let _ = tokio::time::timeout(std::time::Duration::from_secs(5), usage).await;
    if let Err(e) = store.write_match_counts().await {
        tracing::warn!(error = %e, "writing the last match counts failed");
    }
    store.close(std::time::Duration::from_secs(30))?;
    if let Some(reason) = store.fault().borrow().clone() {
        // Fail closed: a supervisor restarts the process; the store reopens cleanly.
        return Err(format!("stopped after a store fault: {reason}").into());
    }
    tracing::info!("store flushed; bye");
    Ok(())
}

/// Whether the server's loud warnings (development mode, plaintext, open metrics) are
/// also printed as plain text on stderr, beside the log (not with JSON logs).
static PLAIN_WARNINGS: std::sync::atomic::AtomicBool = std::sync::atomic::AtomicBool::new(true);

/// Prints the server's loud warnings as plain text on stderr too (`true`, the default)
/// or only logs them (`false`: with JSON logs, stderr stays pure JSON).
pub fn plain_warnings(on: bool) {
    PLAIN_WARNINGS.store(on, std::sync::atomic::Ordering::Relaxed);
}

/// A warning a person starting the server must not miss (it is logged as well).
fn loud(text: String) {
    if PLAIN_WARNINGS.load(std::sync::atomic::Ordering::Relaxed) {
        eprintln!("{text}");
    }
}

/// Sets every service's health (and the server's, "") to `status`.
async fn set_health(h: &tonic_health::server::HealthReporter, status: tonic_health::ServingStatus) {
    h.set_service_status("", status).await;
    for name in service_names() {
        h.set_service_status(name, status).await;
    }
}

/// The full names of the API's services, from the proto descriptors (so a new service
/// gets a health status without a list to update).
pub fn service_names() -> Vec<String> {
    use prost::Message;
    prost_types::FileDescriptorSet::decode(proto::FILE_DESCRIPTOR_SET)
        .map(|set| {
            set.file
                .iter()
                .filter(|f| f.package() == "creditrisk.v1")
                .flat_map(|f| {
                    f.service
                        .iter()
                        .map(move |s| format!("{}.{}", f.package(), s.name()))
                })
                .collect()
        })
        .unwrap_or_default()
}
