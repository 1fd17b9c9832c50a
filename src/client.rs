//! Connecting to a credit-risk server from Rust: the address form, the bearer token from
//! `$CREDIT_RISK_TOKEN`, and TLS from `$CREDIT_RISK_TLS_*` (what every `credit-risk`
//! client command uses).

/// Boxed error for client commands.
pub type ClientError = Box<dyn std::error::Error + Send + Sync>;

/// Normalises an address to a URL (`127.0.0.1:50051` → `http://127.0.0.1:50051`).
pub fn endpoint(addr: &str) -> String {
    if addr.starts_with("http://") || addr.starts_with("https://") {
        addr.to_string()
    } else {
        format!("http://{addr}")
    }
}

/// Adds `authorization: Bearer $CREDIT_RISK_TOKEN` to every call when the variable is
/// set (servers with `[server.auth]` tokens need it; development mode does not).
#[derive(Clone, Debug, Default)]
pub struct TokenInterceptor(Option<tonic::metadata::MetadataValue<tonic::metadata::Ascii>>);

impl TokenInterceptor {
    /// From the environment.
    pub fn from_env() -> TokenInterceptor {
        TokenInterceptor::from_var("CREDIT_RISK_TOKEN")
    }

    /// From the environment variable `var` (none when unset or empty).
    pub fn from_var(var: &str) -> TokenInterceptor {
        TokenInterceptor(
            std::env::var(var)
                .ok()
                .filter(|t| !t.is_empty())
                .and_then(|t| format!("Bearer {t}").parse().ok()),
        )
    }
}

impl tonic::service::Interceptor for TokenInterceptor {
    fn call(&mut self, mut r: tonic::Request<()>) -> Result<tonic::Request<()>, tonic::Status> {
        if let Some(v) = &self.0 {
            r.metadata_mut().insert("authorization", v.clone());
        }
        Ok(r)
    }
}

/// A channel with the token interceptor.
pub type Authed =
    tonic::service::interceptor::InterceptedService<tonic::transport::Channel, TokenInterceptor>;

/// Connects to `addr`; with `$CREDIT_RISK_TLS_CA` (a PEM file) over TLS, checking the
/// server name `$CREDIT_RISK_TLS_DOMAIN` (default `localhost`) and presenting
/// `$CREDIT_RISK_TLS_CERT` / `$CREDIT_RISK_TLS_KEY` when set (mTLS).
pub async fn channel(addr: &str) -> Result<tonic::transport::Channel, ClientError> {
    // What went wrong, with its causes (tonic's own text is "transport error").
    let unreachable = |e: tonic::transport::Error| -> ClientError {
        let mut why = String::new();
        let mut next: Option<&(dyn std::error::Error + 'static)> = std::error::Error::source(&e);
        while let Some(c) = next {
            why = c.to_string();
            next = c.source();
        }
        format!(
            "cannot reach {addr}: {} — is the server running? set --server or $CREDIT_RISK_SERVER",
            if why.is_empty() { e.to_string() } else { why }
        )
        .into()
    };
    let bad_address = |e: tonic::transport::Error| -> ClientError {
        format!("server address {addr:?}: {e}").into()
    };
    let read = |var: &str, path: &str| -> Result<Vec<u8>, ClientError> {
        std::fs::read(path).map_err(|e| format!("${var} {path}: {e}").into())
    };
    let Ok(ca) = std::env::var("CREDIT_RISK_TLS_CA") else {
        return tonic::transport::Endpoint::from_shared(endpoint(addr))
            .map_err(bad_address)?
            .connect()
            .await
            .map_err(unreachable);
    };
    let url = format!(
        "https://{}",
        addr.trim_start_matches("http://")
            .trim_start_matches("https://")
    );
    let mut tls = tonic::transport::ClientTlsConfig::new()
        .ca_certificate(tonic::transport::Certificate::from_pem(read(
            "CREDIT_RISK_TLS_CA",
            &ca,
        )?))
        .domain_name(
            std::env::var("CREDIT_RISK_TLS_DOMAIN").unwrap_or_else(|_| "localhost".into()),
        );
    if let (Ok(c), Ok(k)) = (
        std::env::var("CREDIT_RISK_TLS_CERT"),
        std::env::var("CREDIT_RISK_TLS_KEY"),
    ) {
        tls = tls.identity(tonic::transport::Identity::from_pem(
            read("CREDIT_RISK_TLS_CERT", &c)?,
            read("CREDIT_RISK_TLS_KEY", &k)?,
        ));
    }
    tonic::transport::Endpoint::from_shared(url)
        .map_err(bad_address)?
        .tls_config(tls)?
        .connect()
        .await
        .map_err(unreachable)
}
