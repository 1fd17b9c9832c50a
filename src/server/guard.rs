//! Every request guard of the server in one tower layer: the metrics, the global
//! concurrency limit, the unary deadline, authentication, the per-principal limits and
//! the replication sequence, in that order, each kept in its own module as plain checks
//! ([`super::metrics`], [`super::limits`], [`super::deadline`], [`super::auth`],
//! [`super::sequence`]) and run here by one service with one future and one response-body
//! wrapper per request (six layers of their own cost two boxed futures each and three
//! body wrappers; issue 21, item 2).
//!
//! A request refused by a check is answered with its status at once — never reaching a
//! handler, still counted by the metrics — and every slot a request takes is held until
//! its response body ends (streams included).

use std::{
    future::Future,
    pin::Pin,
    sync::Arc,
    task::{Context, Poll},
    time::Duration,
};

use tower_layer::Layer;
use tower_service::Service;

use super::{
    auth::Authenticator,
    deadline,
    limits::{GlobalConcurrencyLimit, PrincipalLimit, Slots},
    metrics::Metrics,
    sequence::Sequence,
};

/// The error type of the guarded services.
pub type BoxError = Box<dyn std::error::Error + Send + Sync>;

/// A gRPC response over HTTP/2.
pub type Response = http::Response<tonic::body::Body>;

/// The future of a guarded call.
pub type ResponseFuture = Pin<Box<dyn Future<Output = Result<Response, BoxError>> + Send>>;

/// The guards, as one layer over tonic's routes.
#[derive(Clone)]
pub struct RequestGuards {
    /// Counts and times every request (outermost: it sees every refusal).
    pub metrics: Arc<Metrics>,
    /// `server.max_concurrent_requests`.
    pub global: GlobalConcurrencyLimit,
    /// The unary and server-streaming deadline (until the response headers).
    pub deadline: Duration,
    /// Bearer tokens and roles; leaves the [`super::auth::Principal`] in the request.
    pub auth: Authenticator,
    /// `server.max_requests_per_principal`, `server.max_streams_per_principal`.
    pub principal: PrincipalLimit,
    /// Replicated mode's read-your-writes.
    pub sequence: Sequence,
}

impl<S> Layer<S> for RequestGuards {
    type Service = Guarded<S>;

    fn layer(&self, inner: S) -> Self::Service {
        Guarded {
            guards: self.clone(),
            inner,
        }
    }
}

/// The service of [`RequestGuards`].
#[derive(Clone)]
pub struct Guarded<S> {
    guards: RequestGuards,
    inner: S,
}

impl RequestGuards {
    /// The synchronous checks, in order: the slots the request holds and the log
    /// sequence it must wait for, or the status refusing it.
    fn admit<B>(
        &self,
        req: &mut http::Request<B>,
        streaming: bool,
    ) -> Result<(Slots, Option<u64>), tonic::Status> {
        let global = self.global.admit(req.uri().path())?;
        self.auth.admit(req)?;
        let principal = self.principal.admit(req, streaming)?;
        let min_sequence = self.sequence.admit(req)?;
        Ok((Slots { global, principal }, min_sequence))
    }
}

impl<S, B> Service<http::Request<B>> for Guarded<S>
where
    S: Service<http::Request<B>, Response = Response>,
    S::Future: Send + 'static,
    S::Error: Into<BoxError>,
{
    type Response = Response;
    type Error = BoxError;
    type Future = ResponseFuture;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx).map_err(Into::into)
    }

    fn call(&mut self, mut req: http::Request<B>) -> Self::Future {
        let g = &self.guards;
        let call = g.metrics.begin(&mut req);
        let streaming = call.client_streaming();
        let (slots, min_sequence) = match g.admit(&mut req, streaming) {
            Ok(admitted) => admitted,
            Err(status) => {
                let resp = call.refused(status);
                return Box::pin(std::future::ready(Ok(resp)));
            }
        };
        // Client streams run at their own pace, bounded by their own limits.
        let timeout = (!streaming).then_some(g.deadline);
        let sequence = g.sequence.clone();
        // The handler runs only when its future is polled: after the sequence's wait.
        let handler = self.inner.call(req);
        Box::pin(async move {
            let answer = async {
                if let Some(refusal) = sequence.wait(min_sequence).await {
                    return Ok(refusal);
                }
                let mut resp = handler.await.map_err(Into::into)?;
                sequence.stamp(&mut resp);
                Ok::<_, BoxError>(resp)
            };
            let answered = match timeout {
                Some(t) => match tokio::time::timeout(t, answer).await {
                    Ok(r) => r,
                    Err(_) => Ok(deadline::exceeded(t)),
                },
                None => answer.await,
            };
            match answered {
                Ok(resp) => Ok(call.answered(resp, slots)),
                Err(e) => {
                    call.failed();
                    Err(e)
                }
            }
        })
    }
}
