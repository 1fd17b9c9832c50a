//! Per-request deadline for unary and server-streaming RPCs. tonic's server-wide
//! `timeout` also cuts client-streaming RPCs (an `ImportRecords` of 16 M records runs
//! for minutes), so this layer leaves those alone: they are bounded by their own pace
//! and the client's `grpc-timeout`. The [`super::guard`] layer applies it.

use std::time::Duration;

/// The paths of the API's RPCs whose request is a stream (client or bidirectional
/// streaming), from the proto descriptors, so a new streaming RPC needs no list kept by
/// hand: no server-imposed deadline (their own idle and total limits bound them), and
/// they count against the per-principal stream limit.
fn client_streaming() -> &'static std::collections::HashSet<String> {
    static PATHS: std::sync::OnceLock<std::collections::HashSet<String>> =
        std::sync::OnceLock::new();
    PATHS.get_or_init(|| {
        use prost::Message;
        let set = prost_types::FileDescriptorSet::decode(crate::proto::FILE_DESCRIPTOR_SET)
            .unwrap_or_default();
        set.file
            .iter()
            .filter(|f| f.package() == "creditrisk.v1")
            .flat_map(|f| {
                f.service.iter().flat_map(move |s| {
                    s.method
                        .iter()
                        .filter(|m| m.client_streaming())
                        .map(move |m| format!("/{}.{}/{}", f.package(), s.name(), m.name()))
                })
            })
            .collect()
    })
}

/// Whether `path` is a client-streaming RPC.
pub fn is_client_streaming(path: &str) -> bool {
    client_streaming().contains(path)
}

/// The answer to a request that exceeded the server's deadline of `timeout` (which
/// applies to every RPC but the client streams, until its response headers).
pub fn exceeded(timeout: Duration) -> super::guard::Response {
    tonic::Status::deadline_exceeded(format!(
        "request exceeded the server deadline of {} s",
        timeout.as_secs()
    ))
    .into_http()
}

#[cfg(test)]
mod tests {
    /// The descriptors name exactly the API's two client-streaming RPCs today.
    #[test]
    fn client_streaming_rpcs_come_from_the_descriptors() {
        let mut got: Vec<&String> = super::client_streaming().iter().collect();
        got.sort();
        assert_eq!(
            got,
            [
                "/creditrisk.v1.RegistryService/ImportRecords",
                "/creditrisk.v1.SpotCheckService/MatchClassifications"
            ]
        );
        assert!(!super::is_client_streaming(
            "/creditrisk.v1.RegistryService/GetEnterprise"
        ));
    }
}
