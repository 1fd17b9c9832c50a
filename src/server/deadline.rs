//! Per-request deadline for unary and server-streaming RPCs. tonic's server-wide
//! `timeout` also cuts client-streaming RPCs (an `ImportRecords` of 16 M records runs
//! for minutes), so the deadline leaves those alone (which RPCs they are comes from the
//! descriptors: [`super::metrics::Call::client_streaming`]): they are bounded by their own
//! pace, their idle and total limits and the client's `grpc-timeout`. The
//! [`super::guard`] layer applies it.

use std::time::Duration;

/// The answer to a request that exceeded the server's deadline of `timeout` (which
/// applies to every RPC but the client streams, until its response headers).
pub fn exceeded(timeout: Duration) -> super::guard::Response {
    tonic::Status::deadline_exceeded(format!(
        "request exceeded the server deadline of {} s",
        timeout.as_secs()
    ))
    .into_http()
}
