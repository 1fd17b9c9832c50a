//! Malformed requests answer INVALID_ARGUMENT. tonic answers a request body that is not
//! the method's protobuf message with INTERNAL ("failed to decode Protobuf message"), which
//! reads as a server fault and would page an operator; it is the caller's error.
//! [`layer`] rewrites exactly that answer (a trailers-only response of status INTERNAL
//! whose message is tonic's decode error) to INVALID_ARGUMENT naming `request`.

use tower::util::MapResponseLayer;

type Response = http::Response<tonic::body::Body>;

/// The layer (a response map: no state, no future of its own).
pub fn layer() -> MapResponseLayer<fn(Response) -> Response> {
    MapResponseLayer::new(rewrite as fn(Response) -> Response)
}

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

fn rewrite(resp: Response) -> Response {
    if is_decode_error(resp.headers()) {
        return tonic::Status::invalid_argument(
            "request: the body is not a valid protobuf message of this method",
        )
        .into_http();
    }
    resp
}
