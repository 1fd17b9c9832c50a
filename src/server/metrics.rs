//! Prometheus metrics: per-RPC request counts by status code and latency histograms
//! under the grpc-ecosystem names and labels (`grpc_server_started_total`,
//! `grpc_server_handled_total`, `grpc_server_handling_seconds`, with `grpc_service`,
//! `grpc_method`, `grpc_type`, `grpc_code` — go-grpc-prometheus's, so its dashboards
//! work), a tower layer on the gRPC server; the process collector unprefixed
//! (`process_*`); and the service's own figures prefixed `credit_risk_`, read from the
//! store when scraped — store size, enterprises per class in the current run,
//! batch-run progress and duration, repair cases by state and overdue, `build_info` —
//! served as the Prometheus text format on a separate HTTP port
//! (`[server.metrics] listen`, off by default).
//!
//! Each server owns its own [`prometheus::Registry`], so several servers in one process
//! (tests) do not mix their figures.

use std::{
    collections::HashMap,
    future::Future,
    pin::Pin,
    sync::Arc,
    task::{Context, Poll},
    time::Instant,
};

use crate::{domain::repair::RepairState, store::Store};
use prometheus::{
    Encoder, Histogram, HistogramOpts, HistogramVec, IntCounterVec, IntGauge, IntGaugeVec, Opts,
    Registry, TextEncoder,
};

/// Latency buckets, seconds: from 50 µs (an in-memory lookup) up to minute-long streams.
const LATENCY_BUCKETS: &[f64] = &[
    0.00005, 0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0,
    2.5, 5.0, 10.0, 30.0, 60.0,
];

/// `grpc_type` label values (grpc-ecosystem).
const UNARY: &str = "unary";
const CLIENT_STREAM: &str = "client_stream";
const SERVER_STREAM: &str = "server_stream";
const BIDI_STREAM: &str = "bidi_stream";

/// Label value for a path the server does not serve (bounds the label cardinality).
const UNKNOWN: &str = "unknown";

/// The metrics of one server.
pub struct Metrics {
    registry: Registry,
    /// `/package.Service/Method` paths served, each with its labels and, once first
    /// called, its series — so label values stay bounded, and a request finds its
    /// series with one look-up instead of a hash of its labels per metric.
    known: HashMap<String, Rpc>,
    /// The labels and series of every path not served.
    unknown: Rpc,
    started: IntCounterVec,
    requests: IntCounterVec,
    latency: HistogramVec,
    in_flight: IntGauge,
    store_bytes: IntGauge,
    enterprises: IntGauge,
    run_id: IntGauge,
    run_classes: IntGaugeVec,
    batch_running: IntGauge,
    store_loading: IntGauge,
    log_applied: IntGauge,
    batch_processed: IntGauge,
    batch_total: IntGauge,
    batch_seconds: prometheus::Gauge,
    repair_cases: IntGaugeVec,
    repair_overdue: IntGauge,
    explained_entries: IntGauge,
    explained_bytes: IntGauge,
    explained_lookups: IntCounterVec,
    scrape_errors: prometheus::IntCounter,
    /// Whether every finished RPC is logged (`server.access_log`).
    access_log: std::sync::atomic::AtomicBool,
}

/// Where the authentication layer leaves the principal's name for the access log (the
/// metrics layer, outermost, sees the request before it is authenticated).
#[derive(Clone, Default)]
pub struct PrincipalSlot(pub Arc<std::sync::OnceLock<String>>);

impl Metrics {
    /// Metrics for a server offering the RPCs of `descriptor_sets` (encoded
    /// `FileDescriptorSet`s), plus the process collector (RSS, CPU, open files).
    pub fn new(descriptor_sets: &[&[u8]]) -> Result<Arc<Metrics>, prometheus::Error> {
        let registry = Registry::new();
        let started = IntCounterVec::new(
            Opts::new(
                "grpc_server_started_total",
                "gRPC requests started, by service, method and type",
            ),
            &["grpc_service", "grpc_method", "grpc_type"],
        )?;
        let requests = IntCounterVec::new(
            Opts::new(
                "grpc_server_handled_total",
                "gRPC requests answered, by service, method, type and status code",
            ),
            &["grpc_service", "grpc_method", "grpc_type", "grpc_code"],
        )?;
        let latency = HistogramVec::new(
            HistogramOpts::new(
                "grpc_server_handling_seconds",
                "Time from request to the last byte of the response (status), by service, method and type",
            )
            .buckets(LATENCY_BUCKETS.to_vec()),
            &["grpc_service", "grpc_method", "grpc_type"],
        )?;
        let in_flight = IntGauge::new(
            "credit_risk_grpc_requests_in_flight",
            "gRPC requests being served",
        )?;
        let store_bytes = IntGauge::new(
            "credit_risk_store_disk_bytes",
            "Bytes the store's data directory occupies on disk (allocated blocks, as du counts)",
        )?;
        let enterprises = IntGauge::new(
            "credit_risk_enterprises",
            "Registered enterprises (market entities)",
        )?;
        let run_id = IntGauge::new(
            "credit_risk_current_run_id",
            "Id of the current general scoring run (0: none)",
        )?;
        let run_classes = IntGaugeVec::new(
            Opts::new(
                "credit_risk_current_run_enterprises",
                "Enterprises per credit-risk class in the current scoring run (as computed)",
            ),
            &["class"],
        )?;
        let batch_running = IntGauge::new(
            "credit_risk_batch_scoring_running",
            "1 while a batch scoring run is being computed",
        )?;
        let store_loading = IntGauge::new(
            "credit_risk_store_loading",
            "1 while the pending dry runs load after the start (reads are served; writes wait)",
        )?;
        let log_applied = IntGauge::new(
            "credit_risk_log_applied_sequence",
            "Replicated mode: the last log sequence this replica applied (0 in single-node mode)",
        )?;
        let batch_processed = IntGauge::new(
            "credit_risk_batch_scoring_processed",
            "Enterprises scanned so far by the batch run being computed",
        )?;
        let batch_total = IntGauge::new(
            "credit_risk_batch_scoring_enterprises",
            "Enterprises the batch run being computed will scan",
        )?;
        let batch_seconds = prometheus::Gauge::new(
            "credit_risk_batch_scoring_last_duration_seconds",
            "Duration of the newest complete scoring run",
        )?;
        let repair_cases = IntGaugeVec::new(
            Opts::new(
                "credit_risk_repair_cases",
                "Credit-repair cases (信用修复) by state",
            ),
            &["state"],
        )?;
        let repair_overdue = IntGauge::new(
            "credit_risk_repair_cases_overdue",
            "Open repair cases whose next step (acceptance or decision) is past its due day",
        )?;
        let explained_entries = IntGauge::new(
            "credit_risk_explanation_cache_entries",
            "Explained classifications kept in memory (store.explanation_cache_bytes)",
        )?;
        let explained_bytes = IntGauge::new(
            "credit_risk_explanation_cache_bytes",
            "Estimated bytes of the explained classifications kept in memory",
        )?;
        let explained_lookups = IntCounterVec::new(
            Opts::new(
                "credit_risk_explanation_cache_lookups_total",
                "Explained classifications of enterprises unchanged since their live run: \
                 answered from memory (hit) or from the dossier (miss)",
            ),
            &["result"],
        )?;
        let scrape_errors = prometheus::IntCounter::new(
            "credit_risk_metrics_scrape_errors_total",
            "Scrapes that could not read a store figure",
        )?;
        let build_info = IntGaugeVec::new(
            Opts::new(
                "credit_risk_build_info",
                "Always 1; the build's version and store schema as labels",
            ),
            &["version", "schema"],
        )?;
        build_info
            .with_label_values(&[
                env!("CARGO_PKG_VERSION"),
                &crate::store::SCHEMA_VERSION.to_string(),
            ])
            .set(1);
        registry.register(Box::new(build_info))?;
        registry.register(Box::new(started.clone()))?;
        registry.register(Box::new(requests.clone()))?;
        registry.register(Box::new(latency.clone()))?;
        registry.register(Box::new(in_flight.clone()))?;
        registry.register(Box::new(store_bytes.clone()))?;
        registry.register(Box::new(enterprises.clone()))?;
        registry.register(Box::new(run_id.clone()))?;
        registry.register(Box::new(run_classes.clone()))?;
        registry.register(Box::new(batch_running.clone()))?;
        registry.register(Box::new(store_loading.clone()))?;
        registry.register(Box::new(log_applied.clone()))?;
        registry.register(Box::new(batch_processed.clone()))?;
        registry.register(Box::new(batch_total.clone()))?;
        registry.register(Box::new(batch_seconds.clone()))?;
        registry.register(Box::new(repair_cases.clone()))?;
        registry.register(Box::new(repair_overdue.clone()))?;
        registry.register(Box::new(explained_entries.clone()))?;
        registry.register(Box::new(explained_bytes.clone()))?;
        registry.register(Box::new(explained_lookups.clone()))?;
        registry.register(Box::new(scrape_errors.clone()))?;
        registry.register(Box::new(
            prometheus::process_collector::ProcessCollector::for_self(),
        ))?;
        Ok(Arc::new(Metrics {
            registry,
            known: known_paths(descriptor_sets)
                .into_iter()
                .map(|(path, kind)| {
                    let rpc = Rpc::new(&path, kind);
                    (path, rpc)
                })
                .collect(),
            unknown: Rpc::new("", UNKNOWN),
            started,
            requests,
            latency,
            in_flight,
            store_bytes,
            enterprises,
            run_id,
            run_classes,
            batch_running,
            store_loading,
            log_applied,
            batch_processed,
            batch_total,
            batch_seconds,
            repair_cases,
            repair_overdue,
            explained_entries,
            explained_bytes,
            explained_lookups,
            scrape_errors,
            access_log: std::sync::atomic::AtomicBool::new(false),
        }))
    }

    /// Switches the access log on or off.
    pub fn set_access_log(&self, on: bool) {
        self.access_log
            .store(on, std::sync::atomic::Ordering::Relaxed);
    }

    /// Starts counting and timing a request (the metrics part of the request guards,
    /// outermost: it sees every refusal). With the access log on, a slot for the
    /// principal's name goes into the request's extensions.
    pub fn begin<B>(&self, req: &mut http::Request<B>) -> Call {
        let rpc = self.rpc(req.uri().path());
        rpc.started.inc();
        let access = self
            .access_log
            .load(std::sync::atomic::Ordering::Relaxed)
            .then(|| {
                let slot = PrincipalSlot::default();
                req.extensions_mut().insert(slot.clone());
                (req.uri().path().to_string(), slot)
            });
        self.in_flight.inc();
        Call {
            rpc,
            requests: self.requests.clone(),
            in_flight: self.in_flight.clone(),
            started: Instant::now(),
            done: false,
            access,
        }
    }

    /// The RPC of a request path (`unknown` for paths not served), its series made on
    /// its first call.
    fn rpc(&self, path: &str) -> Arc<RpcSeries> {
        let rpc = self.known.get(path).unwrap_or(&self.unknown);
        let series = rpc.series.get_or_init(|| {
            let [service, method, kind] = &rpc.labels;
            let labels = [service.as_str(), method, kind];
            Arc::new(RpcSeries {
                started: self.started.with_label_values(&labels),
                latency: self.latency.with_label_values(&labels),
                ok: self.requests.with_label_values(&[
                    service,
                    method,
                    kind,
                    grpc_code_label(tonic::Code::Ok),
                ]),
                labels: rpc.labels.clone(),
                client_streaming: rpc.client_streaming,
            })
        });
        Arc::clone(series)
    }

    /// Reads the store's figures into the gauges. A figure that cannot be read is
    /// counted in `credit_risk_metrics_scrape_errors_total` and keeps its previous value.
    pub fn refresh(&self, store: &Store) {
        let mut failed = false;
        match store.size_on_disk() {
            Ok(b) => self.store_bytes.set(to_i64(b)),
            Err(_) => failed = true,
        }
        self.enterprises.set(to_i64(store.enterprise_count()));
        self.store_loading.set(i64::from(store.loading()));
        self.log_applied
            .set(i64::try_from(store.applied_sequence()).unwrap_or(i64::MAX));
        match store.current_run() {
            Ok(Some(view)) => {
                self.run_id.set(to_i64(view.run.id));
                for (i, class) in ["A", "B", "C", "D"].iter().enumerate() {
                    self.run_classes
                        .with_label_values(&[*class])
                        .set(to_i64(view.run.classes[i]));
                }
            }
            Ok(None) => self.run_id.set(0),
            Err(_) => failed = true,
        }
        match store.building_run() {
            Ok(building) => {
                let (processed, total) = store.batch_progress();
                self.batch_running.set(i64::from(building.is_some()));
                if building.is_some() {
                    self.batch_processed.set(to_i64(processed));
                    self.batch_total.set(to_i64(total));
                }
            }
            Err(_) => failed = true,
        }
        match store.runs() {
            Ok(runs) => {
                let newest = runs.iter().find_map(|r| {
                    let end = r.finished_at_ms?;
                    (r.state == crate::store::scoring::RunState::Complete)
                        .then(|| (end - r.started_at_ms) as f64 / 1000.0)
                });
                if let Some(s) = newest {
                    self.batch_seconds.set(s);
                }
            }
            Err(_) => failed = true,
        }
        match store.repair_cases(None) {
            Ok(cases) => {
                let today = store.today();
                let mut by_state = [0i64; RepairState::ALL.len()];
                let mut overdue = 0;
                for c in &cases {
                    if let Some(i) = RepairState::ALL.iter().position(|s| *s == c.state) {
                        by_state[i] += 1;
                    }
                    overdue += i64::from(c.overdue(today));
                }
                for (s, n) in RepairState::ALL.iter().zip(by_state) {
                    self.repair_cases.with_label_values(&[s.name()]).set(n);
                }
                self.repair_overdue.set(overdue);
            }
            Err(_) => failed = true,
        }
        let cache = store.explanation_cache_stats();
        self.explained_entries.set(to_i64(cache.entries));
        self.explained_bytes.set(to_i64(cache.bytes));
        for (result, total) in [("hit", cache.hits), ("miss", cache.misses)] {
            // The store counts; the counter catches up to it.
            let c = self.explained_lookups.with_label_values(&[result]);
            c.inc_by(total.saturating_sub(c.get()));
        }
        if failed {
            self.scrape_errors.inc();
        }
    }

    /// The Prometheus text exposition of every metric, after refreshing from `store`.
    pub fn render(&self, store: &Store) -> String {
        self.refresh(store);
        let mut out = Vec::new();
        if let Err(e) = TextEncoder::new().encode(&self.registry.gather(), &mut out) {
            tracing::warn!(error = %e, "metrics encoding failed");
        }
        String::from_utf8(out).unwrap_or_default()
    }
}

fn to_i64(v: u64) -> i64 {
    i64::try_from(v).unwrap_or(i64::MAX)
}

/// Every `/package.Service/Method` path of the descriptor sets, plus health and
/// reflection.
fn known_paths(sets: &[&[u8]]) -> HashMap<String, &'static str> {
    use prost::Message;
    let mut known: HashMap<String, &'static str> = [
        ("/grpc.health.v1.Health/Check", UNARY),
        ("/grpc.health.v1.Health/Watch", SERVER_STREAM),
        (
            "/grpc.reflection.v1.ServerReflection/ServerReflectionInfo",
            BIDI_STREAM,
        ),
        (
            "/grpc.reflection.v1alpha.ServerReflection/ServerReflectionInfo",
            BIDI_STREAM,
        ),
    ]
    .into_iter()
    .map(|(p, t)| (p.to_string(), t))
    .collect();
    for bytes in sets {
        let Ok(set) = prost_types::FileDescriptorSet::decode(*bytes) else {
            continue;
        };
        for file in set.file {
            let package = file.package.unwrap_or_default();
            for service in file.service {
                let name = service.name.unwrap_or_default();
                for m in service.method {
                    let kind = match (
                        m.client_streaming.unwrap_or(false),
                        m.server_streaming.unwrap_or(false),
                    ) {
                        (false, false) => UNARY,
                        (true, false) => CLIENT_STREAM,
                        (false, true) => SERVER_STREAM,
                        (true, true) => BIDI_STREAM,
                    };
                    known.insert(
                        format!("/{package}.{name}/{}", m.name.unwrap_or_default()),
                        kind,
                    );
                }
            }
        }
    }
    known
}

/// Serves `GET /metrics` on `listener` until `shutdown` completes.
pub async fn serve(
    listener: tokio::net::TcpListener,
    metrics: Arc<Metrics>,
    store: Store,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    use axum::{http::header, response::IntoResponse, routing::get, Router};
    let app = Router::new().route(
        "/metrics",
        get(move || {
            let (metrics, store) = (metrics.clone(), store.clone());
            async move {
                let body = tokio::task::spawn_blocking(move || metrics.render(&store))
                    .await
                    .unwrap_or_default();
                (
                    [(
                        header::CONTENT_TYPE,
                        "text/plain; version=0.0.4; charset=utf-8",
                    )],
                    body,
                )
                    .into_response()
            }
        }),
    );
    axum::serve(listener, app)
        .with_graceful_shutdown(shutdown)
        .await
}

/// An RPC's labels (`grpc_service`, `grpc_method`, `grpc_type`) and its series.
struct Rpc {
    labels: [String; 3],
    /// Whether it is one of the API's RPCs whose request is a stream (client or
    /// bidirectional streaming): no server deadline, and a stream slot of its caller.
    client_streaming: bool,
    series: std::sync::OnceLock<Arc<RpcSeries>>,
}

impl Rpc {
    /// The RPC at `path` (`/package.Service/Method`; every label `unknown` for a path
    /// not served, or one that is not of that shape).
    fn new(path: &str, kind: &str) -> Rpc {
        let labels = match path.trim_start_matches('/').split_once('/') {
            Some((service, method)) if kind != UNKNOWN => [service, method, kind],
            _ => [UNKNOWN, UNKNOWN, UNKNOWN],
        };
        Rpc {
            labels: labels.map(String::from),
            client_streaming: super::auth::is_api(path)
                && matches!(kind, CLIENT_STREAM | BIDI_STREAM),
            series: std::sync::OnceLock::new(),
        }
    }
}

/// The series of one RPC the layer touches on every request (other status codes are
/// looked up by label when they happen).
struct RpcSeries {
    started: prometheus::IntCounter,
    latency: Histogram,
    ok: prometheus::IntCounter,
    /// grpc_service, grpc_method, grpc_type.
    labels: [String; 3],
    /// As [`Rpc::client_streaming`].
    client_streaming: bool,
}

fn grpc_status(headers: &http::HeaderMap) -> Option<tonic::Code> {
    let v = headers.get("grpc-status")?;
    let n: i32 = v.to_str().ok()?.parse().ok()?;
    Some(tonic::Code::from_i32(n))
}

/// One request being answered; recorded once, when its status is known (or, if the
/// response is dropped before its status, as CANCELLED).
pub struct Call {
    rpc: Arc<RpcSeries>,
    /// For the status codes other than OK.
    requests: IntCounterVec,
    in_flight: IntGauge,
    started: Instant,
    done: bool,
    /// With the access log: the request path and where the principal is left.
    access: Option<(String, PrincipalSlot)>,
}

impl Call {
    /// Whether the request is one of the API's client streams (from the descriptors, so
    /// a new streaming RPC needs no list kept by hand).
    pub fn client_streaming(&self) -> bool {
        self.rpc.client_streaming
    }

    /// A request refused by a guard: recorded with `status`, which answers it.
    pub fn refused(mut self, status: tonic::Status) -> super::guard::Response {
        self.finish(status.code());
        status.into_http()
    }

    /// The handler failed without an answer: recorded as INTERNAL.
    pub fn failed(mut self) {
        self.finish(tonic::Code::Internal);
    }

    /// A request answered with `resp`: recorded now when its status is in the headers
    /// (trailers-only, as every error a handler returns), otherwise when the trailers
    /// pass through the body — which also carries `held` (the request's slots) and
    /// releases it when it ends.
    pub fn answered<H: Send + 'static>(
        mut self,
        resp: super::guard::Response,
        held: H,
    ) -> super::guard::Response {
        if let Some(code) = grpc_status(resp.headers()) {
            self.finish(code);
        }
        resp.map(|body| {
            tonic::body::Body::new(ObservedBody {
                inner: body,
                call: self,
                _held: held,
            })
        })
    }

    fn finish(&mut self, code: tonic::Code) {
        if self.done {
            return;
        }
        self.done = true;
        self.in_flight.dec();
        self.rpc
            .latency
            .observe(self.started.elapsed().as_secs_f64());
        if code == tonic::Code::Ok {
            self.rpc.ok.inc();
        } else {
            let [service, method, kind] = &self.rpc.labels;
            self.requests
                .with_label_values(&[service, method, kind, grpc_code_label(code)])
                .inc();
        }
        if let Some((path, slot)) = &self.access {
            tracing::info!(
                target: "credit_risk::access",
                rpc = %path,
                code = code_name(code),
                ms = (self.started.elapsed().as_secs_f64() * 1000.0 * 100.0).round() / 100.0,
                principal = slot.0.get().map_or("-", String::as_str),
                "rpc"
            );
        }
    }
}

impl Drop for Call {
    fn drop(&mut self) {
        self.finish(tonic::Code::Cancelled);
    }
}

/// A status code as the `grpc_code` label of the grpc-ecosystem metrics writes it (Go's
/// `codes.Code.String()`: `OK`, `NotFound`, `Canceled`, …), so their dashboards match.
pub fn grpc_code_label(code: tonic::Code) -> &'static str {
    use tonic::Code::*;
    match code {
        Ok => "OK",
        Cancelled => "Canceled",
        Unknown => "Unknown",
        InvalidArgument => "InvalidArgument",
        DeadlineExceeded => "DeadlineExceeded",
        NotFound => "NotFound",
        AlreadyExists => "AlreadyExists",
        PermissionDenied => "PermissionDenied",
        ResourceExhausted => "ResourceExhausted",
        FailedPrecondition => "FailedPrecondition",
        Aborted => "Aborted",
        OutOfRange => "OutOfRange",
        Unimplemented => "Unimplemented",
        Internal => "Internal",
        Unavailable => "Unavailable",
        DataLoss => "DataLoss",
        Unauthenticated => "Unauthenticated",
    }
}

/// The canonical name of a status code, e.g. `NOT_FOUND` (how the CLI prints a server's
/// refusal).
pub fn code_name(code: tonic::Code) -> &'static str {
    use tonic::Code::*;
    match code {
        Ok => "OK",
        Cancelled => "CANCELLED",
        Unknown => "UNKNOWN",
        InvalidArgument => "INVALID_ARGUMENT",
        DeadlineExceeded => "DEADLINE_EXCEEDED",
        NotFound => "NOT_FOUND",
        AlreadyExists => "ALREADY_EXISTS",
        PermissionDenied => "PERMISSION_DENIED",
        ResourceExhausted => "RESOURCE_EXHAUSTED",
        FailedPrecondition => "FAILED_PRECONDITION",
        Aborted => "ABORTED",
        OutOfRange => "OUT_OF_RANGE",
        Unimplemented => "UNIMPLEMENTED",
        Internal => "INTERNAL",
        Unavailable => "UNAVAILABLE",
        DataLoss => "DATA_LOSS",
        Unauthenticated => "UNAUTHENTICATED",
    }
}

pin_project_lite::pin_project! {
    /// A response body that records its call's status when the trailers pass, and
    /// holds what the request holds (its slots) until it ends.
    struct ObservedBody<H> {
        #[pin]
        inner: tonic::body::Body,
        call: Call,
        _held: H,
    }
}

impl<H> http_body::Body for ObservedBody<H> {
    type Data = bytes::Bytes;
    type Error = tonic::Status;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<http_body::Frame<Self::Data>, Self::Error>>> {
        let this = self.project();
        let polled = this.inner.poll_frame(cx);
        match &polled {
            Poll::Ready(Some(Ok(frame))) => {
                if let Some(code) = frame.trailers_ref().and_then(grpc_status) {
                    this.call.finish(code);
                }
            }
            Poll::Ready(Some(Err(_))) => this.call.finish(tonic::Code::Internal),
            Poll::Ready(None) => this.call.finish(tonic::Code::Ok),
            Poll::Pending => {}
        }
        polled
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> http_body::SizeHint {
        self.inner.size_hint()
    }
}

#[cfg(test)]
mod tests {
    /// The descriptors name exactly the API's two client-streaming RPCs today (health's
    /// and reflection's streams are not the API's: no stream slot, the deadline as any).
    #[test]
    fn client_streaming_rpcs_come_from_the_descriptors() {
        let m = super::Metrics::new(&[crate::proto::FILE_DESCRIPTOR_SET]).expect("metrics");
        let mut got: Vec<&String> = m
            .known
            .iter()
            .filter(|(_, rpc)| rpc.client_streaming)
            .map(|(path, _)| path)
            .collect();
        got.sort();
        assert_eq!(
            got,
            [
                "/creditrisk.v1.RegistryService/ImportRecords",
                "/creditrisk.v1.SpotCheckService/MatchClassifications"
            ]
        );
        assert!(!m.unknown.client_streaming);
    }
}
