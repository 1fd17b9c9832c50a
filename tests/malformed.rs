//! A request body that is not the method's protobuf message is the caller's error:
//! INVALID_ARGUMENT naming `request`, not INTERNAL (issue 15), for every unary RPC of
//! every service (the list comes from the descriptors).

mod common;

use bytes::{Buf, BufMut};
use common::TestServer;
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
