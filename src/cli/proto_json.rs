//! Messages in the proto3 JSON mapping, read and written through the API's descriptors
//! (prost-reflect): field names as in the `.proto` files, enums by name, 64-bit integers
//! as JSON numbers (parsers accept them as strings too). What the CLI writes, grpcurl,
//! a grpcio client or `VerifyDraw` accepts as it is.

use prost::Message;
use prost_reflect::{DescriptorPool, DynamicMessage, SerializeOptions};

use super::CliError;

fn descriptor(full_name: &str) -> Result<prost_reflect::MessageDescriptor, CliError> {
    let pool = DescriptorPool::decode(credit_risk::proto::FILE_DESCRIPTOR_SET)
        .map_err(|e| format!("descriptors: {e}"))?;
    pool.get_message_by_name(full_name)
        .ok_or_else(|| format!("no message {full_name} in the descriptors").into())
}

/// `m` (a `full_name` message, e.g. "creditrisk.v1.DrawReceipt") as pretty JSON.
pub fn to_json<M: Message>(m: &M, full_name: &str) -> Result<String, CliError> {
    let dm = DynamicMessage::decode(descriptor(full_name)?, m.encode_to_vec().as_slice())
        .map_err(|e| format!("{full_name}: {e}"))?;
    let mut ser = serde_json::Serializer::pretty(Vec::new());
    let options = SerializeOptions::new()
        .use_proto_field_name(true)
        .stringify_64_bit_integers(false);
    dm.serialize_with_options(&mut ser, &options)
        .map_err(|e| format!("{full_name}: {e}"))?;
    String::from_utf8(ser.into_inner()).map_err(|e| e.to_string().into())
}

/// A `full_name` message read from its JSON; the error names `what` (e.g. the file).
pub fn from_json<M: Message + Default>(
    json: &str,
    full_name: &str,
    what: &str,
) -> Result<M, CliError> {
    let mut de = serde_json::Deserializer::from_str(json);
    let dm = DynamicMessage::deserialize(descriptor(full_name)?, &mut de)
        .and_then(|m| de.end().map(|()| m))
        .map_err(|e| format!("{what}: not a {full_name} in JSON: {e}"))?;
    M::decode(dm.encode_to_vec().as_slice()).map_err(|e| format!("{what}: {e}").into())
}

#[cfg(test)]
mod tests {
    use super::*;
    use credit_risk::proto as pb;

    #[test]
    fn a_receipt_round_trips_with_proto_names_and_numbers() {
        let r = pb::DrawReceipt {
            plan_id: 7,
            seed: "s".into(),
            strata: vec![pb::ReceiptStratum {
                risk_class: pb::RiskClass::C as i32,
                k: 3,
                ..Default::default()
            }],
            ..Default::default()
        };
        let json = to_json(&r, "creditrisk.v1.DrawReceipt").unwrap();
        let v: serde_json::Value = serde_json::from_str(&json).unwrap();
        assert_eq!(v["plan_id"], 7, "{json}");
        assert_eq!(v["strata"][0]["k"], 3);
        assert_eq!(v["strata"][0]["risk_class"], "RISK_CLASS_C");
        let back: pb::DrawReceipt = from_json(&json, "creditrisk.v1.DrawReceipt", "t").unwrap();
        assert_eq!(back, r);
        let e =
            from_json::<pb::DrawReceipt>("{\"class\": 1}", "creditrisk.v1.DrawReceipt", "f.json")
                .unwrap_err();
        assert!(
            e.to_string()
                .starts_with("f.json: not a creditrisk.v1.DrawReceipt"),
            "{e}"
        );
    }
}
