//! Malformed requests answer INVALID_ARGUMENT. tonic answers a request body that is not
//! the method's protobuf message with INTERNAL ("failed to decode Protobuf message"), which
//! reads as a server fault and would page an operator; it is the caller's error. This layer
//! rewrites exactly that answer (a trailers-only response of status INTERNAL whose message
//! is tonic's decode error) to INVALID_ARGUMENT naming `request`.

use std::{
    future::Future,
    pin::Pin,
    task::{Context, Poll},
};

use tower_layer::Layer;
use tower_service::Service;

/// The layer.
#[derive(Clone, Copy, Debug, Default)]
pub struct MalformedIsInvalid;

impl<S> Layer<S> for MalformedIsInvalid {
    type Service = MalformedIsInvalidService<S>;

    fn layer(&self, inner: S) -> Self::Service {
        MalformedIsInvalidService { inner }
    }
}

/// The service of [`MalformedIsInvalid`].
#[derive(Clone, Debug)]
pub struct MalformedIsInvalidService<S> {
    inner: S,
}

type BoxError = Box<dyn std::error::Error + Send + Sync>;

/// Whether a response is tonic's answer to an undecodable request.
fn is_decode_error(headers: &http::HeaderMap) -> bool {
    let internal = headers
        .get("grpc-status")
        .is_some_and(|v| v.as_bytes() == b"13");
    let message = headers
        .get("grpc-message")
        .map(|v| v.as_bytes())
        .unwrap_or_default();
    internal
        && (message.starts_with(b"failed%20to%20decode%20Protobuf%20message")
            || message.starts_with(b"failed to decode Protobuf message"))
}

impl<S, B> Service<http::Request<B>> for MalformedIsInvalidService<S>
where
    S: Service<http::Request<B>, Response = http::Response<tonic::body::Body>>,
    S::Future: Send + 'static,
    S::Error: Into<BoxError>,
{
    type Response = http::Response<tonic::body::Body>;
    type Error = BoxError;
    type Future = Pin<Box<dyn Future<Output = Result<Self::Response, BoxError>> + Send>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx).map_err(Into::into)
    }

    fn call(&mut self, req: http::Request<B>) -> Self::Future {
        let fut = self.inner.call(req);
        Box::pin(async move {
            let resp = fut.await.map_err(Into::into)?;
            if is_decode_error(resp.headers()) {
                return Ok(tonic::Status::invalid_argument(
                    "request: the body is not a valid protobuf message of this method",
                )
                .into_http());
            }
            Ok(resp)
        })
    }
}
