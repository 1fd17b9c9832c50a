//! Configuration: a TOML file, overridden by environment variables and then by flags
//! (the binary applies those). Every limit the server enforces is here.

use std::{net::SocketAddr, path::PathBuf, time::Duration};

use serde::{Deserialize, Serialize};

use crate::{error::Error, store::StoreOptions};

/// Default listen address: loopback only.
pub const DEFAULT_LISTEN: &str = "127.0.0.1:50051";
/// Default data directory, relative to the working directory.
pub const DEFAULT_DATA_DIR: &str = "credit-risk-data";

/// The whole configuration file.
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Config {
    /// Network and limits.
    pub server: ServerConfig,
    /// Store tuning and rule parameters.
    pub store: StoreOptions,
    /// Logging.
    pub log: LogConfig,
    /// The classification model.
    pub scoring: ScoringConfig,
    /// The replicated mode (absent: single-node).
    pub replication: crate::replication::ReplicationConfig,
}

/// Classification settings (store-side tuning such as `keep_runs` is under `[store]`).
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ScoringConfig {
    /// A model file (TOML) replacing the built-in model. Validated at start: a bad key
    /// stops the server with its name. Active at once on a new store; on a store with an
    /// active model it is registered and waits for a dry run and an activation.
    pub model_file: Option<PathBuf>,
    /// Specialised model files (TOML, each with its `family` and `scope`), rated beside
    /// the general model with their own runs and activation. Unset: the built-in food
    /// model (docs/MODEL.md); `[]`: none.
    pub specialised_model_files: Option<Vec<PathBuf>>,
}

impl ScoringConfig {
    /// The configured general model, or the built-in one.
    pub fn model(&self) -> Result<crate::domain::Model, Error> {
        match &self.model_file {
            None => Ok(crate::domain::Model::builtin()),
            Some(p) => {
                let m = read_model("scoring.model_file", p)?;
                if !m.is_general() {
                    return Err(Error::invalid(
                        format!("scoring.model_file ({}): family", p.display()),
                        format!(
                            "{:?} is a specialised family; list it in scoring.specialised_model_files",
                            m.family
                        ),
                    ));
                }
                Ok(m)
            }
        }
    }

    /// Every configured model: the general one first, then the specialised ones (one
    /// per family).
    pub fn models(&self) -> Result<Vec<crate::domain::Model>, Error> {
        let mut out = vec![self.model()?];
        let Some(files) = &self.specialised_model_files else {
            out.push(crate::domain::Model::builtin_food());
            return Ok(out);
        };
        for (i, p) in files.iter().enumerate() {
            let field = format!("scoring.specialised_model_files[{i}]");
            let m = read_model(&field, p)?;
            if m.is_general() || out.iter().any(|o| o.family == m.family) {
                return Err(Error::invalid(
                    format!("{field} ({}): family", p.display()),
                    format!(
                        "{:?}: one specialised model per family, and not the general family",
                        m.family
                    ),
                ));
            }
            out.push(m);
        }
        Ok(out)
    }
}

fn read_model(field: &str, p: &std::path::Path) -> Result<crate::domain::Model, Error> {
    let text = std::fs::read_to_string(p)
        .map_err(|e| Error::invalid(field, format!("{}: {e}", p.display())))?;
    crate::domain::Model::parse(&text)
        .map_err(|e| Error::invalid(format!("{field} ({}): {}", p.display(), e.field), e.reason))
}

/// Network and limits of the gRPC server.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ServerConfig {
    /// Address to listen on; port 0 picks a free port.
    pub listen: String,
    /// Data directory of the embedded store.
    pub data_dir: PathBuf,
    /// An access log: one line per RPC at `info` on the target `credit_risk::access`
    /// (the RPC path, its status code, its duration in milliseconds, the principal —
    /// the token's name, never the token).
    pub access_log: bool,
    /// Largest request or response message, bytes.
    pub max_message_bytes: usize,
    /// Concurrent requests across all connections; more are refused RESOURCE_EXHAUSTED
    /// (health checks excepted).
    pub max_concurrent_requests: usize,
    /// Concurrent requests per connection.
    pub concurrency_per_connection: usize,
    /// Concurrent HTTP/2 streams per connection.
    pub max_concurrent_streams: u32,
    /// Deadline of a unary request, seconds (streams are bounded by their own pace).
    pub request_timeout_secs: u64,
    /// How long a client stream (ImportRecords, MatchClassifications) may send nothing
    /// before it is ended with DEADLINE_EXCEEDED, seconds; frees its concurrency slot.
    pub stream_idle_secs: u64,
    /// How long a client stream may last in all, seconds (an import of a whole city's
    /// records takes minutes; the default is an hour).
    pub stream_total_secs: u64,
    /// Concurrent requests of one principal (token name); more are refused
    /// RESOURCE_EXHAUSTED, so one client cannot take the whole server.
    pub max_requests_per_principal: usize,
    /// Concurrent client streams (ImportRecords, MatchClassifications) of one principal.
    pub max_streams_per_principal: usize,
    /// Most entries of one repeated field in one request message (e.g. records of an
    /// ImportRecords message); more are refused RESOURCE_EXHAUSTED before decoding.
    pub max_items_per_message: usize,
    /// A new connection must send its first bytes (TLS or HTTP/2 preface) within this
    /// many seconds, or it is closed.
    pub handshake_timeout_secs: u64,
    /// A connection that sends nothing for this long is closed, seconds (the server's
    /// HTTP/2 keepalive pings make a live client answer well within it).
    pub connection_idle_secs: u64,
    /// Interval of the server's HTTP/2 keepalive pings, seconds; a ping not answered
    /// within `keepalive_timeout_secs` closes the connection.
    pub keepalive_interval_secs: u64,
    /// See `keepalive_interval_secs`.
    pub keepalive_timeout_secs: u64,
    /// How long shutdown waits for in-flight requests, seconds.
    pub shutdown_grace_secs: u64,
    /// Tokio worker threads; 0 = the number of available cores.
    pub worker_threads: usize,
    /// Bearer tokens and roles; none = development mode (loopback only).
    pub auth: crate::server::auth::AuthConfig,
    /// TLS (rustls); absent = plaintext.
    pub tls: Option<TlsConfig>,
    /// Prometheus metrics endpoint; absent = off.
    pub metrics: Option<MetricsConfig>,
}

/// `[server.metrics]`: where `GET /metrics` (Prometheus text format) is served, on its
/// own plain-HTTP port. Keep it on loopback or a monitoring network: it needs no token.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MetricsConfig {
    /// HOST:PORT, e.g. "127.0.0.1:9464".
    pub listen: String,
}

/// `[server.tls]`: the server's certificate and key (PEM), and optionally the CA whose
/// client certificates are required (mTLS).
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TlsConfig {
    pub cert_file: PathBuf,
    pub key_file: PathBuf,
    /// Require client certificates signed by this CA.
    pub client_ca_file: Option<PathBuf>,
}

impl Default for ServerConfig {
    fn default() -> Self {
        ServerConfig {
            listen: DEFAULT_LISTEN.into(),
            data_dir: PathBuf::from(DEFAULT_DATA_DIR),
            access_log: false,
            max_message_bytes: 16 * 1024 * 1024,
            max_concurrent_requests: 1024,
            concurrency_per_connection: 256,
            max_concurrent_streams: 256,
            request_timeout_secs: 60,
            stream_idle_secs: 60,
            stream_total_secs: 3600,
            max_requests_per_principal: 256,
            max_streams_per_principal: 16,
            max_items_per_message: crate::server::wire::DEFAULT_MAX_ITEMS,
            handshake_timeout_secs: 10,
            connection_idle_secs: 300,
            keepalive_interval_secs: 30,
            keepalive_timeout_secs: 20,
            shutdown_grace_secs: 10,
            worker_threads: 0,
            auth: crate::server::auth::AuthConfig::default(),
            tls: None,
            metrics: None,
        }
    }
}

impl ServerConfig {
    /// The listen address, parsed.
    pub fn listen_addr(&self) -> Result<SocketAddr, Error> {
        self.listen.parse().map_err(|_| {
            Error::invalid(
                "server.listen",
                format!("{:?} is not HOST:PORT", self.listen),
            )
        })
    }

    /// Request timeout.
    pub fn request_timeout(&self) -> Duration {
        Duration::from_secs(self.request_timeout_secs.max(1))
    }

    /// Longest silence of a client stream.
    pub fn stream_idle(&self) -> Duration {
        Duration::from_secs(self.stream_idle_secs.max(1))
    }

    /// The limits of a client stream.
    pub fn stream_limits(&self) -> crate::server::service::StreamLimits {
        crate::server::service::StreamLimits {
            idle: self.stream_idle(),
            total: Duration::from_secs(self.stream_total_secs.max(1)),
        }
    }

    /// Shutdown grace period.
    pub fn shutdown_grace(&self) -> Duration {
        Duration::from_secs(self.shutdown_grace_secs)
    }
}

/// Logging.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct LogConfig {
    /// `tracing` env-filter directives, e.g. "info,credit_risk=debug"; `RUST_LOG` wins.
    pub filter: String,
    /// JSON lines instead of human-readable text.
    pub json: bool,
}

impl Default for LogConfig {
    fn default() -> Self {
        LogConfig {
            filter: "info".into(),
            json: false,
        }
    }
}

impl Config {
    /// Reads a TOML file; unknown keys are refused with their name.
    pub fn from_file(path: &std::path::Path) -> Result<Config, Error> {
        let text = std::fs::read_to_string(path)
            .map_err(|e| Error::invalid("--config", format!("{}: {e}", path.display())))?;
        Config::from_toml(&text)
            .map_err(|e| Error::invalid("--config", format!("{}: {e}", path.display())))
    }

    /// Parses TOML text.
    pub fn from_toml(text: &str) -> Result<Config, String> {
        toml::from_str(text).map_err(|e| e.to_string())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The configuration example in README.md parses, every key known.
    #[test]
    fn the_readme_example_parses() {
        let readme = include_str!("../../README.md");
        let section = &readme[readme.find("## Configuration").expect("section")..];
        let start = section.find("```toml\n").expect("a toml block") + "```toml\n".len();
        let end = start + section[start..].find("```").expect("its end");
        let c = Config::from_toml(&section[start..end]).expect("README's example parses");
        assert!(!c.server.access_log);
    }

    #[test]
    fn defaults_and_unknown_keys() {
        let c = Config::from_toml("[server]\nlisten = \"127.0.0.1:0\"\n").unwrap();
        assert_eq!(c.server.listen, "127.0.0.1:0");
        assert_eq!(c.server.max_message_bytes, 16 * 1024 * 1024);
        let e = Config::from_toml("[server]\nlisen = \"x\"\n").unwrap_err();
        assert!(e.contains("lisen"), "{e}");
        // Rule parameters live in dated rules files, not in the store section.
        let e = Config::from_toml("[store.publicity]\nshort_months = 6\n").unwrap_err();
        assert!(e.contains("publicity"), "{e}");
        let mut c =
            Config::from_toml("[store]\nrules_files = [\"/nonexistent/r.toml\"]\n").unwrap();
        let e = c.store.load_files().unwrap_err();
        assert!(
            e.contains("store.rules_files") && e.contains("r.toml"),
            "{e}"
        );
    }
}
