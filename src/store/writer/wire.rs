//! How operations carry values whose stored encoding leaves a part out. A stored record
//! keeps its USCC in the key only, and a model keeps its parsed lookup table in memory
//! only; an operation must carry them whole, so these adapters (`#[serde(with = …)]`)
//! write the USCC beside the record and the model as its source text.

use std::sync::Arc;

use serde::{de::Error as _, Deserialize, Deserializer, Serialize, Serializer};

use crate::domain::{
    commitment::Commitment, AnnualReport, ComplaintSummary, Enterprise, InspectionResult, Listing,
    Model, Penalty, QualitySampling, Uscc,
};

/// A record whose USCC the stored encoding leaves to the key.
pub trait Keyed {
    fn key_uscc(&self) -> Uscc;
    fn put_uscc(&mut self, u: Uscc);
}

macro_rules! keyed {
    ($($t:ty),*) => {$(
        impl Keyed for $t {
            fn key_uscc(&self) -> Uscc {
                self.uscc
            }
            fn put_uscc(&mut self, u: Uscc) {
                self.uscc = u;
            }
        }
    )*};
}
keyed!(
    Enterprise,
    Penalty,
    AnnualReport,
    Listing,
    InspectionResult,
    Commitment,
    QualitySampling,
    ComplaintSummary
);

/// A record with its USCC: `(uscc, record)`.
pub mod keyed {
    use super::*;

    pub fn serialize<T: Keyed + Serialize, S: Serializer>(t: &T, s: S) -> Result<S::Ok, S::Error> {
        (t.key_uscc(), t).serialize(s)
    }

    pub fn deserialize<'de, T, D>(d: D) -> Result<T, D::Error>
    where
        T: Keyed + Deserialize<'de>,
        D: Deserializer<'de>,
    {
        let (u, mut t): (Uscc, T) = Deserialize::deserialize(d)?;
        t.put_uscc(u);
        Ok(t)
    }
}

/// A model as its source text (parsed again on decode).
pub mod model_source {
    use super::*;

    pub fn serialize<S: Serializer>(m: &Arc<Model>, s: S) -> Result<S::Ok, S::Error> {
        m.source.serialize(s)
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Arc<Model>, D::Error> {
        let text = String::deserialize(d)?;
        Model::parse(&text)
            .map(Arc::new)
            .map_err(|e| D::Error::custom(format!("model: {e}")))
    }
}
