//! The request guards of the codec (`src/wire.rs`, issue 15): a body that is not the
//! method's protobuf message is the caller's error, INVALID_ARGUMENT naming `request`, not
//! INTERNAL, for every unary RPC of every service (the list comes from the descriptors)
//! and mid-stream; a message with more entries in a list than
//! `server.max_items_per_message` is refused RESOURCE_EXHAUSTED before it is decoded.

use crate::common::TestServer;
use bytes::{Buf, BufMut};
use tonic::{
    codec::{Codec, DecodeBuf, Decoder, EncodeBuf, Encoder},
    Code, Status,
};

/// Sends and receives raw bytes.
#[derive(Clone, Copy, Default)]
struct Raw;

impl Encoder for Raw {
    type Item = Vec<u8>;
    type Error = Status;
    fn encode(&mut self, item: Vec<u8>, dst: &mut EncodeBuf<'_>) -> Result<(), Status> {
        dst.put_slice(&item);
        Ok(())
    }
}

impl Decoder for Raw {
    type Item = Vec<u8>;
    type Error = Status;
    fn decode(&mut self, src: &mut DecodeBuf<'_>) -> Result<Option<Vec<u8>>, Status> {
        let mut v = vec![0; src.remaining()];
        src.copy_to_slice(&mut v);
        Ok(Some(v))
    }
}

impl Codec for Raw {
    type Encode = Vec<u8>;
    type Decode = Vec<u8>;
    type Encoder = Raw;
    type Decoder = Raw;
    fn encoder(&mut self) -> Raw {
        Raw
    }
    fn decoder(&mut self) -> Raw {
        Raw
    }
}

#[tokio::test]
async fn garbage_bodies_are_invalid_argument_on_every_unary_rpc() {
    use prost::Message;
    let s = TestServer::start().await;
    let channel = tonic::transport::Channel::from_shared(format!("http://{}", s.addr))
        .unwrap()
        .connect()
        .await
        .unwrap();
    let set =
        prost_types::FileDescriptorSet::decode(credit_risk::proto::FILE_DESCRIPTOR_SET).unwrap();
    let mut checked = 0;
    for file in set.file.iter().filter(|f| f.package() == "creditrisk.v1") {
        for svc in &file.service {
            for m in &svc.method {
                if m.client_streaming() || m.server_streaming() {
                    continue;
                }
                let path = format!("/{}.{}/{}", file.package(), svc.name(), m.name());
                let mut g = tonic::client::Grpc::new(channel.clone());
                g.ready().await.unwrap();
                // An unterminated varint: no protobuf message decodes from it.
                let r = g
                    .unary(
                        tonic::Request::new(vec![0xff, 0xff, 0xff, 0xff]),
                        http::uri::PathAndQuery::try_from(path.as_str()).unwrap(),
                        Raw,
                    )
                    .await;
                let e = r.expect_err(&path);
                assert_eq!(e.code(), Code::InvalidArgument, "{path}: {e:?}");
                assert!(e.message().starts_with("request:"), "{path}: {e:?}");
                checked += 1;
            }
        }
    }
    assert!(checked > 20, "{checked} unary RPCs");
    // A client stream whose message does not decode: the same answer.
    let mut g = tonic::client::Grpc::new(channel.clone());
    g.ready().await.unwrap();
    let e = g
        .client_streaming(
            tonic::Request::new(tokio_stream::iter(vec![vec![0xffu8, 0xff, 0xff]])),
            http::uri::PathAndQuery::from_static("/creditrisk.v1.RegistryService/ImportRecords"),
            Raw,
        )
        .await
        .expect_err("garbage import");
    assert_eq!(e.code(), Code::InvalidArgument, "{e:?}");
    s.stop().await;
}

/// The guard applies to request messages by their type name: every RPC of the API must
/// take a `…Request` (a new RPC with another input type would go unguarded).
#[test]
fn every_rpc_takes_a_request_message() {
    use prost::Message;
    let set =
        prost_types::FileDescriptorSet::decode(credit_risk::proto::FILE_DESCRIPTOR_SET).unwrap();
    let mut n = 0;
    for file in set.file.iter().filter(|f| f.package() == "creditrisk.v1") {
        for svc in &file.service {
            for m in &svc.method {
                assert!(
                    m.input_type().ends_with("Request"),
                    "{}.{} takes {}",
                    svc.name(),
                    m.name(),
                    m.input_type()
                );
                n += 1;
            }
        }
    }
    assert!(n > 30, "{n} RPCs");
}

/// Memory amplification (issue 15, probe 3): an ImportRecords message of 100,001 empty
/// records (200 KB on the wire) is refused RESOURCE_EXHAUSTED naming the limit, before it
/// is decoded; as is a BatchMatch of as many USCCs. A message at the limit passes the guard
/// (and is then judged by the handler).
#[tokio::test]
async fn messages_over_the_items_limit_are_refused_before_decoding() {
    use credit_risk::proto as pb;
    let s = TestServer::start().await;
    let max = credit_risk::server::wire::DEFAULT_MAX_ITEMS;
    let mut c = s.client.clone();
    let huge = pb::ImportRecordsRequest {
        records: vec![pb::ImportRecord::default(); max + 1],
    };
    let e = c
        .import_records(tokio_stream::iter(vec![huge]))
        .await
        .expect_err("over the limit");
    assert_eq!(e.code(), Code::ResourceExhausted, "{e:?}");
    assert!(
        e.message().contains("server.max_items_per_message"),
        "{e:?}"
    );
    assert!(e.message().starts_with("request:"), "{e:?}");
    let mut spot = credit_risk::proto::spot_check_service_client::SpotCheckServiceClient::connect(
        format!("http://{}", s.addr),
    )
    .await
    .unwrap();
    let e = spot
        .batch_match(pb::MatchRequest {
            usccs: vec![String::new(); max + 1],
            as_of: String::new(),
        })
        .await
        .expect_err("over the limit");
    assert_eq!(e.code(), Code::ResourceExhausted, "{e:?}");
    assert!(e.message().contains("max_items_per_message"), "{e:?}");
    // At the limit: the guard lets it through; the handler answers (10,000 USCCs at most).
    let e = spot
        .batch_match(pb::MatchRequest {
            usccs: vec![String::new(); max],
            as_of: String::new(),
        })
        .await
        .expect_err("over the handler's limit");
    assert!(!e.message().contains("max_items_per_message"), "{e:?}");
    s.stop().await;
}

/// A MatchClassifications message that does not decode ends the stream with
/// INVALID_ARGUMENT, not INTERNAL: the stream is open (the handler runs) and the message
/// is decoded as it is read, the path that answered INTERNAL before the codec's guard.
#[tokio::test]
async fn a_garbage_message_mid_stream_is_invalid_argument() {
    let s = TestServer::start().await;
    let channel = tonic::transport::Channel::from_shared(format!("http://{}", s.addr))
        .unwrap()
        .connect()
        .await
        .unwrap();
    let mut g = tonic::client::Grpc::new(channel);
    g.ready().await.unwrap();
    let replies = g
        .streaming(
            tonic::Request::new(tokio_stream::iter(vec![vec![0xffu8, 0xff, 0xff]])),
            http::uri::PathAndQuery::from_static(
                "/creditrisk.v1.SpotCheckService/MatchClassifications",
            ),
            Raw,
        )
        .await;
    let end = match replies {
        Err(e) => e,
        Ok(r) => {
            let mut r = r.into_inner();
            loop {
                match r.message().await {
                    Ok(Some(_)) => continue,
                    Ok(None) => panic!("ended without a status"),
                    Err(e) => break e,
                }
            }
        }
    };
    assert_eq!(end.code(), Code::InvalidArgument, "{end:?}");
    assert!(end.message().starts_with("request:"), "{end:?}");
    s.stop().await;
}
