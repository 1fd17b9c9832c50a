//! The protobuf codec of the API's services: prost's, with two guards on what a request
//! message may cost before a handler sees it.
//!
//! - **Items per message** (`server.max_items_per_message`, default 100,000): before
//!   decoding, the top-level fields of a request message are counted (a walk over tags and
//!   lengths, nothing allocated); a repeated field with more entries is refused
//!   RESOURCE_EXHAUSTED naming the limit. Without it one 16 MiB `ImportRecords` message of
//!   8,000,000 empty records decoded into ≈ 4 GB (issue 15, probe 3).
//! - **Malformed bodies** answer INVALID_ARGUMENT naming `request`, not prost's INTERNAL
//!   (the caller's error, not a server fault that pages an operator), for unary and
//!   streaming requests alike.
//!
//! Only request messages (the generated decoders of `…Request` types, which every RPC of
//! the API takes; a descriptor test checks it) are guarded: responses a client decodes
//! are the server's to bound. The limit is process-wide (the generated code builds codecs
//! with `Default`), set once by the server at start.

use std::{
    marker::PhantomData,
    sync::atomic::{AtomicUsize, Ordering},
};

use bytes::Buf;
use prost::Message;
use tonic::{
    codec::{BufferSettings, Codec, DecodeBuf, Decoder},
    Status,
};
use tonic_prost::ProstEncoder;

/// The default of `server.max_items_per_message`.
pub const DEFAULT_MAX_ITEMS: usize = 100_000;

static MAX_ITEMS: AtomicUsize = AtomicUsize::new(DEFAULT_MAX_ITEMS);

/// Sets the items-per-message limit of request messages (at least 1).
pub fn set_max_items(n: usize) {
    MAX_ITEMS.store(n.max(1), Ordering::Relaxed);
}

/// The codec (`codec_path` of the generated services and clients).
#[derive(Debug, Clone)]
pub struct GuardedCodec<T, U>(PhantomData<(T, U)>);

impl<T, U> Default for GuardedCodec<T, U> {
    fn default() -> Self {
        GuardedCodec(PhantomData)
    }
}

impl<T, U> Codec for GuardedCodec<T, U>
where
    T: Message + Send + 'static,
    U: Message + Default + Send + 'static,
{
    type Encode = T;
    type Decode = U;
    type Encoder = ProstEncoder<T>;
    type Decoder = GuardedDecoder<U>;

    fn encoder(&mut self) -> Self::Encoder {
        ProstEncoder::new(BufferSettings::default())
    }

    fn decoder(&mut self) -> Self::Decoder {
        GuardedDecoder(PhantomData)
    }
}

/// Decodes `U`, guarding request messages.
#[derive(Debug, Clone)]
pub struct GuardedDecoder<U>(PhantomData<U>);

impl<U: Message + Default> Decoder for GuardedDecoder<U> {
    type Item = U;
    type Error = Status;

    fn decode(&mut self, buf: &mut DecodeBuf<'_>) -> Result<Option<U>, Status> {
        let name = type_name::<U>();
        if name.ends_with("Request") && buf.chunk().len() == buf.remaining() {
            let max = MAX_ITEMS.load(Ordering::Relaxed);
            if let Some((field, n)) = most_repeated(buf.chunk(), max) {
                return Err(Status::resource_exhausted(format!(
                    "request: a {name} message carries more than {max} entries of field {field} \
                     (server.max_items_per_message = {max}, counted {n} before stopping); send \
                     them in several messages"
                )));
            }
        }
        U::decode(buf).map(Some).map_err(|e| {
            Status::invalid_argument(format!("request: not a valid {name} message: {e}"))
        })
    }

    fn buffer_settings(&self) -> BufferSettings {
        BufferSettings::default()
    }
}

/// The last segment of a type's path.
fn type_name<U>() -> &'static str {
    let full = std::any::type_name::<U>();
    full.rsplit("::").next().unwrap_or(full)
}

/// Walks the top-level fields of an encoded message and returns the first field number
/// seen more than `max` times, with the count reached. Stops at the first malformed
/// field (the decoder then reports it). Packed repeated scalars count as one entry per
/// field occurrence (their bytes are bounded by the message size and cost no more
/// decoded).
pub fn most_repeated(mut bytes: &[u8], max: usize) -> Option<(u32, usize)> {
    // Entries of a repeated field are encoded one after another, so the walk counts runs
    // of one field and touches the map only when the field changes (once per field, not
    // once per entry, on a 10,000-USCC match message).
    let mut earlier: std::collections::HashMap<u32, usize> = std::collections::HashMap::new();
    let (mut field, mut n) = (0u32, 0usize);
    while !bytes.is_empty() {
        let Ok(key) = prost::encoding::decode_varint(&mut bytes) else {
            return None;
        };
        let skip = match key & 7 {
            0 => {
                prost::encoding::decode_varint(&mut bytes).ok()?;
                0
            }
            1 => 8,
            2 => usize::try_from(prost::encoding::decode_varint(&mut bytes).ok()?).ok()?,
            5 => 4,
            _ => return None,
        };
        if skip > bytes.len() {
            return None;
        }
        bytes = &bytes[skip..];
        let this = (key >> 3) as u32;
        if this != field {
            if n > 0 {
                earlier.insert(field, n);
            }
            field = this;
            n = earlier.get(&this).copied().unwrap_or(0);
        }
        n += 1;
        if n > max {
            return Some((field, n));
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::proto as pb;
    use proptest::prelude::*;

    #[test]
    fn counts_top_level_entries_per_field() {
        let m = pb::MatchRequest {
            usccs: vec!["x".into(); 5],
            as_of: "2026-01-01".into(),
        };
        let b = m.encode_to_vec();
        assert_eq!(most_repeated(&b, 5), None);
        assert_eq!(most_repeated(&b, 4), Some((1, 5)));
        // Entries of one field split by another still add up.
        let mut split = b.clone();
        split.extend_from_slice(
            &pb::MatchRequest {
                usccs: vec!["y".into()],
                as_of: String::new(),
            }
            .encode_to_vec(),
        );
        assert_eq!(most_repeated(&split, 5), Some((1, 6)));
        // Truncated or garbage input stops the walk without a verdict.
        assert_eq!(most_repeated(&b[..b.len() - 1], 100), None);
        assert_eq!(most_repeated(&[0xff; 12], 0), None);
    }

    proptest! {
        /// For any number of entries, the walk counts exactly them.
        #[test]
        fn the_walk_counts_what_prost_encodes(n in 0usize..300, max in 0usize..300) {
            let m = pb::MatchRequest { usccs: vec![String::new(); n], as_of: String::new() };
            let got = most_repeated(&m.encode_to_vec(), max);
            prop_assert_eq!(got, (n > max).then_some((1, max + 1)));
        }

        /// Any bytes: the walk never panics.
        #[test]
        fn any_bytes_are_walked_without_panic(b in proptest::collection::vec(any::<u8>(), 0..200)) {
            let _ = most_repeated(&b, 3);
        }
    }
}
