//! Value encoding: one version byte, then the record in postcard (compact, varint-based).
//! Parts of a record that live in its key (the USCC, a report's year, a listing's natural
//! key, an inspection's task id) are not repeated in the value; the store puts them back
//! on decode.

use serde::{de::DeserializeOwned, Serialize};

use crate::{
    domain::EnterpriseRecords,
    error::{Error, Result},
};

/// Version of the value encoding. Bump it (and add a decoder for the old one) whenever a
/// stored struct changes shape.
pub const VALUE_VERSION: u8 = 1;

/// Encodes a value.
pub fn encode<T: Serialize>(v: &T) -> Result<Vec<u8>> {
    let out = vec![VALUE_VERSION];
    postcard::to_extend(v, out).map_err(|e| Error::Corrupt(format!("encode: {e}")))
}

/// Version of a stored dossier ([`EnterpriseRecords`]): 2 added
/// `Penalty::published_on`, 3 the commitments, 4 the quality samplings, complaint
/// summaries and penalties' lenient treatment, 5 the items of an inspection where
/// problems were found. Dossiers have their own version, so a
/// dossier read with [`decode`] (or any other value with [`decode_dossier`]) fails
/// loudly instead of misreading.
pub const DOSSIER_VERSION: u8 = 5;

/// Encodes a dossier.
pub fn encode_dossier(d: &EnterpriseRecords) -> Result<Vec<u8>> {
    let out = vec![DOSSIER_VERSION];
    postcard::to_extend(d, out).map_err(|e| Error::Corrupt(format!("encode: {e}")))
}

/// Decodes a dossier of any version; a version-1 dossier (before 2026-12) has no
/// publication dates, a version-2 one no commitments, a version-3 one no samplings,
/// complaints or lenient treatment, a version-4 one no problem items. Old
/// dossiers are rewritten in the
/// new version when next changed.
pub fn decode_dossier(bytes: &[u8]) -> Result<EnterpriseRecords> {
    let bad = |e: postcard::Error| Error::Corrupt(format!("decode dossier: {e}"));
    match bytes.split_first() {
        Some((&DOSSIER_VERSION, rest)) => postcard::from_bytes(rest).map_err(bad),
        Some((&4, rest)) => postcard::from_bytes::<v4::Dossier>(rest)
            .map(Into::into)
            .map_err(bad),
        Some((&3, rest)) => postcard::from_bytes::<v3::Dossier>(rest)
            .map(Into::into)
            .map_err(bad),
        Some((&2, rest)) => postcard::from_bytes::<v2::Dossier>(rest)
            .map(Into::into)
            .map_err(bad),
        Some((&1, rest)) => postcard::from_bytes::<v2::Dossier<()>>(rest)
            .map(Into::into)
            .map_err(bad),
        Some((v, _)) => Err(Error::Corrupt(format!("unknown dossier version {v}"))),
        None => Err(Error::Corrupt("empty dossier".into())),
    }
}

/// [`decode_dossier`] into `place`, reusing its buffers: a dossier of the current
/// version is decoded in place (its strings and vectors keep their allocations), an
/// older one decoded and moved in. On an error `place` holds a mix of both dossiers.
pub fn decode_dossier_into(bytes: &[u8], place: &mut EnterpriseRecords) -> Result<()> {
    match bytes.split_first() {
        Some((&DOSSIER_VERSION, rest)) => {
            let mut de = postcard::Deserializer::from_bytes(rest);
            serde::Deserialize::deserialize_in_place(&mut de, place)
                .map_err(|e: postcard::Error| Error::Corrupt(format!("decode dossier: {e}")))
        }
        _ => {
            *place = decode_dossier(bytes)?;
            Ok(())
        }
    }
}

/// A listing as versions 1 and 2 stored it: without the legal representative named
/// when it was listed.
mod legacy {
    use serde::Deserialize;

    use crate::domain::{Date, ListKind, ListingReason, Uscc};

    /// `crate::domain::Listing` before `legal_rep_hash`, field for field.
    #[derive(Deserialize)]
    pub struct Listing {
        kind: ListKind,
        listed_on: Date,
        reason: ListingReason,
        reason_text: String,
        authority: String,
        report_year: Option<u16>,
        removed_on: Option<Date>,
        removal_reason: String,
        recorded_at_ms: i64,
    }

    impl From<Listing> for crate::domain::Listing {
        fn from(l: Listing) -> Self {
            crate::domain::Listing {
                uscc: Uscc::placeholder(),
                kind: l.kind,
                listed_on: l.listed_on,
                reason: l.reason,
                reason_text: l.reason_text,
                authority: l.authority,
                report_year: l.report_year,
                removed_on: l.removed_on,
                removal_reason: l.removal_reason,
                recorded_at_ms: l.recorded_at_ms,
                legal_rep_hash: None,
                term_ends_on: None,
            }
        }
    }

    /// A listing in the legacy shape, for encoding (tests of the upgrade path only).
    #[cfg(test)]
    #[derive(serde::Serialize)]
    pub struct Old<'a>(
        ListKind,
        Date,
        ListingReason,
        &'a str,
        &'a str,
        Option<u16>,
        Option<Date>,
        &'a str,
        i64,
    );

    /// Listings in the legacy shape (tests of the upgrade path only).
    #[cfg(test)]
    pub fn encode(ls: &[crate::domain::Listing]) -> Vec<Old<'_>> {
        ls.iter()
            .map(|l| {
                Old(
                    l.kind,
                    l.listed_on,
                    l.reason,
                    &l.reason_text,
                    &l.authority,
                    l.report_year,
                    l.removed_on,
                    &l.removal_reason,
                    l.recorded_at_ms,
                )
            })
            .collect()
    }
}

/// An inspection result as versions 1–4 stored it: without the items where problems
/// were found.
mod inspection_v1 {
    use serde::Deserialize;

    use crate::domain::{Date, InspectionResult, Uscc};

    /// `crate::domain::InspectionResult` before `problem_items`, field for field.
    #[derive(Deserialize)]
    pub struct InspectionV1 {
        task_id: String,
        inspected_on: Date,
        check_items: Vec<String>,
        problems_found: bool,
        recorded_at_ms: i64,
    }

    impl From<InspectionV1> for InspectionResult {
        fn from(i: InspectionV1) -> Self {
            InspectionResult {
                task_id: i.task_id,
                uscc: Uscc::placeholder(),
                inspected_on: i.inspected_on,
                check_items: i.check_items,
                problems_found: i.problems_found,
                recorded_at_ms: i.recorded_at_ms,
                problem_items: Vec::new(),
            }
        }
    }

    /// Inspections in this shape (tests of the upgrade path only).
    #[cfg(test)]
    pub fn encode(is: &[InspectionResult]) -> Vec<impl serde::Serialize + '_> {
        is.iter()
            .map(|i| {
                (
                    &i.task_id,
                    i.inspected_on,
                    &i.check_items,
                    i.problems_found,
                    i.recorded_at_ms,
                )
            })
            .collect()
    }
}

/// The version-4 dossier encoding (inspections without problem items), read only.
mod v4 {
    use serde::Deserialize;

    use super::inspection_v1::InspectionV1;
    use crate::domain::{
        commitment::Commitment, AnnualReport, ComplaintSummary, Enterprise, EnterpriseRecords,
        Listing, Penalty, QualitySampling,
    };

    #[derive(Deserialize)]
    pub struct Dossier {
        enterprise: Option<Enterprise>,
        penalties: Vec<Penalty>,
        reports: Vec<AnnualReport>,
        listings: Vec<Listing>,
        inspections: Vec<InspectionV1>,
        commitments: Vec<Commitment>,
        samplings: Vec<QualitySampling>,
        complaints: Vec<ComplaintSummary>,
    }

    impl From<Dossier> for EnterpriseRecords {
        fn from(d: Dossier) -> Self {
            EnterpriseRecords {
                enterprise: d.enterprise,
                penalties: d.penalties,
                reports: d.reports,
                listings: d.listings,
                inspections: d.inspections.into_iter().map(Into::into).collect(),
                commitments: d.commitments,
                samplings: d.samplings,
                complaints: d.complaints,
                false_commitments: Vec::new(),
            }
        }
    }

    /// Encodes `d` as version 4 (tests of the upgrade path only).
    #[cfg(test)]
    pub fn encode(d: &EnterpriseRecords) -> Vec<u8> {
        let body = (
            (&d.enterprise, &d.penalties, &d.reports, &d.listings),
            super::inspection_v1::encode(&d.inspections),
            (&d.commitments, &d.samplings, &d.complaints),
        );
        postcard::to_extend(&body, vec![4]).expect("encodes")
    }
}

/// A penalty as versions 1–3 stored it: without lenient treatment, and (version 1)
/// without the publication day. `P` is the type of that last field: `Option<Date>`
/// from version 2, `()` — nothing on the wire — in version 1.
mod penalty_v2 {
    use serde::Deserialize;

    use crate::domain::{Date, Penalty, PenaltyKind, Procedure, Uscc, ViolationDomain};

    /// The publication day as a version stored it.
    pub trait PublishedOn {
        fn day(self) -> Option<Date>;
    }

    impl PublishedOn for Option<Date> {
        fn day(self) -> Option<Date> {
            self
        }
    }

    impl PublishedOn for () {
        fn day(self) -> Option<Date> {
            None
        }
    }

    /// `crate::domain::Penalty` before `lenience` and `first_violation`, field for field.
    #[derive(Deserialize)]
    pub struct PenaltyV2<P = Option<Date>> {
        decision_number: String,
        decided_on: Date,
        authority: String,
        domain: ViolationDomain,
        procedure: Procedure,
        kinds: Vec<PenaltyKind>,
        fine_fen: u64,
        confiscation_fen: u64,
        heavier: bool,
        restriction_ends_on: Option<Date>,
        no_penalty: bool,
        publicity_ended_on: Option<Date>,
        recorded_at_ms: i64,
        published_on: P,
    }

    impl<P: PublishedOn> From<PenaltyV2<P>> for Penalty {
        fn from(p: PenaltyV2<P>) -> Self {
            Penalty {
                decision_number: p.decision_number,
                uscc: Uscc::placeholder(),
                decided_on: p.decided_on,
                authority: p.authority,
                domain: p.domain,
                procedure: p.procedure,
                kinds: p.kinds,
                fine_fen: p.fine_fen,
                confiscation_fen: p.confiscation_fen,
                heavier: p.heavier,
                restriction_ends_on: p.restriction_ends_on,
                no_penalty: p.no_penalty,
                publicity_ended_on: p.publicity_ended_on,
                recorded_at_ms: p.recorded_at_ms,
                published_on: p.published_on.day(),
                lenience: None,
                first_violation: false,
            }
        }
    }

    /// Penalties in this shape, the last field given by `published` (tests of the
    /// upgrade path only).
    #[cfg(test)]
    pub fn encode<'a, P: serde::Serialize + 'a>(
        ps: &'a [Penalty],
        published: impl Fn(&Penalty) -> P + 'a,
    ) -> Vec<impl serde::Serialize + 'a> {
        ps.iter()
            .map(|p| {
                (
                    (&p.decision_number, p.decided_on, &p.authority, p.domain),
                    (p.procedure, &p.kinds, p.fine_fen, p.confiscation_fen),
                    (p.heavier, p.restriction_ends_on, p.no_penalty),
                    (p.publicity_ended_on, p.recorded_at_ms, published(p)),
                )
            })
            .collect()
    }
}

/// The version-3 dossier encoding (no quality samplings or complaint summaries,
/// penalties without lenient treatment), read only.
mod v3 {
    use serde::Deserialize;

    use super::{inspection_v1::InspectionV1, penalty_v2::PenaltyV2};
    use crate::domain::{
        commitment::Commitment, AnnualReport, Enterprise, EnterpriseRecords, Listing,
    };

    #[derive(Deserialize)]
    pub struct Dossier {
        enterprise: Option<Enterprise>,
        penalties: Vec<PenaltyV2>,
        reports: Vec<AnnualReport>,
        listings: Vec<Listing>,
        inspections: Vec<InspectionV1>,
        commitments: Vec<Commitment>,
    }

    impl From<Dossier> for EnterpriseRecords {
        fn from(d: Dossier) -> Self {
            EnterpriseRecords {
                enterprise: d.enterprise,
                penalties: d.penalties.into_iter().map(Into::into).collect(),
                reports: d.reports,
                listings: d.listings,
                inspections: d.inspections.into_iter().map(Into::into).collect(),
                commitments: d.commitments,
                samplings: Vec::new(),
                complaints: Vec::new(),
                false_commitments: Vec::new(),
            }
        }
    }

    /// Encodes `d` as version 3 (tests of the upgrade path only).
    #[cfg(test)]
    pub fn encode(d: &EnterpriseRecords) -> Vec<u8> {
        let body = (
            &d.enterprise,
            super::penalty_v2::encode(&d.penalties, |p| p.published_on),
            &d.reports,
            &d.listings,
            super::inspection_v1::encode(&d.inspections),
            &d.commitments,
        );
        postcard::to_extend(&body, vec![3]).expect("encodes")
    }
}

/// The version-2 dossier encoding (no commitments, listings without the legal
/// representative), read only; `P` as in [`penalty_v2`]: version 1 is the same with
/// penalties without their publication day.
mod v2 {
    use serde::Deserialize;

    use super::{
        inspection_v1::InspectionV1,
        penalty_v2::{PenaltyV2, PublishedOn},
    };
    use crate::domain::{AnnualReport, Date, Enterprise, EnterpriseRecords};

    #[derive(Deserialize)]
    pub struct Dossier<P = Option<Date>> {
        enterprise: Option<Enterprise>,
        penalties: Vec<PenaltyV2<P>>,
        reports: Vec<AnnualReport>,
        listings: Vec<super::legacy::Listing>,
        inspections: Vec<InspectionV1>,
    }

    impl<P: PublishedOn> From<Dossier<P>> for EnterpriseRecords {
        fn from(d: Dossier<P>) -> Self {
            EnterpriseRecords {
                enterprise: d.enterprise,
                penalties: d.penalties.into_iter().map(Into::into).collect(),
                reports: d.reports,
                listings: d.listings.into_iter().map(Into::into).collect(),
                inspections: d.inspections.into_iter().map(Into::into).collect(),
                commitments: Vec::new(),
                samplings: Vec::new(),
                complaints: Vec::new(),
                false_commitments: Vec::new(),
            }
        }
    }

    /// Encodes `d` as `version` (2, or 1 with `published` giving `()`) (tests of the
    /// upgrade path only).
    #[cfg(test)]
    pub fn encode<P: serde::Serialize>(
        d: &EnterpriseRecords,
        version: u8,
        published: impl Fn(&crate::domain::Penalty) -> P,
    ) -> Vec<u8> {
        let body = (
            &d.enterprise,
            super::penalty_v2::encode(&d.penalties, published),
            &d.reports,
            super::legacy::encode(&d.listings),
            super::inspection_v1::encode(&d.inspections),
        );
        postcard::to_extend(&body, vec![version]).expect("encodes")
    }
}

/// Decodes a value written by [`encode`].
pub fn decode<T: DeserializeOwned>(bytes: &[u8]) -> Result<T> {
    match bytes.split_first() {
        Some((&VALUE_VERSION, rest)) => {
            postcard::from_bytes(rest).map_err(|e| Error::Corrupt(format!("decode: {e}")))
        }
        Some((v, _)) => Err(Error::Corrupt(format!("unknown value version {v}"))),
        None => Err(Error::Corrupt("empty value".into())),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::{Date, ListKind, Listing, ListingReason, Uscc};
    use proptest::prelude::*;

    #[test]
    fn round_trip_and_version_check() {
        let l = Listing {
            uscc: Uscc::placeholder(),
            kind: ListKind::AbnormalOperations,
            listed_on: Date::from_days(0),
            reason: ListingReason::Other,
            reason_text: "原因".into(),
            authority: "a".into(),
            report_year: Some(2023),
            removed_on: None,
            removal_reason: String::new(),
            recorded_at_ms: 1_700_000_000_000,
            legal_rep_hash: None,
            term_ends_on: None,
        };
        let b = encode(&l).unwrap();
        assert_eq!(b[0], VALUE_VERSION);
        assert_eq!(decode::<Listing>(&b).unwrap(), l);
        let mut bad = b.clone();
        bad[0] = 99;
        assert!(decode::<Listing>(&bad).is_err());
        assert!(decode::<Listing>(&[]).is_err());
    }

    /// A dossier with a penalty whose publicity a repair ended and a serious listing,
    /// in the shape every old version can hold (no publication date, no commitment, no
    /// representative on the listing).
    fn old_dossier() -> EnterpriseRecords {
        use crate::domain::fixtures;
        let mut d = fixtures::dossier("2015-01-01");
        d.penalties.push(fixtures::penalty(
            "沪市监处〔2024〕1号",
            fixtures::day("2024-03-01"),
        ));
        d.penalties[0].publicity_ended_on = Some(fixtures::day("2025-01-01"));
        d.listings.push(fixtures::listing(
            ListKind::SeriousIllegal,
            fixtures::day("2025-07-01"),
        ));
        d.inspections.push(crate::domain::InspectionResult {
            task_id: "2025-沪-001".into(),
            uscc: Uscc::placeholder(),
            inspected_on: fixtures::day("2025-09-01"),
            check_items: vec!["SC-GS-01".into(), "SC-SP-01".into()],
            problems_found: true,
            recorded_at_ms: 4,
            problem_items: Vec::new(),
        });
        d
    }

    /// A dossier stored before publication dates (version 1) still reads, with none;
    /// it is written back in the current version; and the generic decoder refuses a
    /// dossier.
    #[test]
    fn version_1_dossiers_upgrade() {
        let mut d = old_dossier();
        let old = v2::encode(&d, 1, |_| ());
        assert_eq!(old[0], 1);
        assert_eq!(decode_dossier(&old).unwrap(), d);
        d.penalties[0].published_on = Some(crate::domain::fixtures::day("2024-03-08"));
        let new = encode_dossier(&d).unwrap();
        assert_eq!(new[0], DOSSIER_VERSION);
        assert_eq!(decode_dossier(&new).unwrap(), d);
        assert!(decode::<EnterpriseRecords>(&new).is_err());
        assert!(decode_dossier(&encode(&d.penalties[0]).unwrap()).is_err());
    }

    /// A dossier stored before commitments and listings' representatives (version 2)
    /// reads with none; the current version keeps both.
    #[test]
    fn version_2_dossiers_upgrade() {
        use crate::domain::commitment::{Commitment, CommitmentKind};
        use crate::domain::fixtures::day;
        let mut d = old_dossier();
        d.penalties[0].published_on = Some(day("2024-03-08"));
        let old = v2::encode(&d, 2, |p| p.published_on);
        assert_eq!(old[0], 2);
        assert_eq!(decode_dossier(&old).unwrap(), d);
        d.listings[0].legal_rep_hash = Some([7; 32]);
        d.commitments.push(Commitment {
            commitment_id: "LIC-1".into(),
            uscc: crate::domain::Uscc::placeholder(),
            kind: CommitmentKind::LicensingNotification,
            made_on: day("2026-01-10"),
            due_on: day("2026-04-10"),
            content: "补交材料".into(),
            authority: "浦东".into(),
            verification: None,
            repaired_on: None,
            recorded_at_ms: 1,
        });
        let new = encode_dossier(&d).unwrap();
        assert_eq!(new[0], DOSSIER_VERSION);
        assert_eq!(decode_dossier(&new).unwrap(), d);
    }

    /// A dossier stored before quality samplings, complaint summaries and lenient
    /// treatment (version 3) reads with none; the current version keeps them.
    #[test]
    fn version_3_dossiers_upgrade() {
        use crate::domain::{fixtures::day, QualitySampling, SamplingCategory};
        let mut d = old_dossier();
        d.penalties[0].published_on = Some(day("2024-03-08"));
        d.listings[0].legal_rep_hash = Some([7; 32]);
        let v3 = v3::encode(&d);
        assert_eq!(decode_dossier(&v3).unwrap(), d);
        d.samplings.push(QualitySampling {
            sample_id: "SC-2026-0001".into(),
            uscc: crate::domain::Uscc::placeholder(),
            sampled_on: day("2026-05-01"),
            category: SamplingCategory::Food,
            product: "速冻水饺".into(),
            batch: "20260420".into(),
            passed: false,
            authority: "浦东".into(),
            recorded_at_ms: 2,
        });
        d.complaints.push(crate::domain::ComplaintSummary {
            uscc: crate::domain::Uscc::placeholder(),
            month: crate::domain::stats::Month(202605),
            complaints: 4,
            reports: 1,
            verified: 2,
            source: "12315".into(),
            recorded_at_ms: 3,
        });
        d.penalties[0].lenience = Some(crate::domain::Lenience::Mitigated);
        d.penalties[0].first_violation = true;
        let new = encode_dossier(&d).unwrap();
        assert_eq!(new[0], DOSSIER_VERSION);
        assert_eq!(decode_dossier(&new).unwrap(), d);
        // A version-3 dossier cut short is refused as damaged.
        assert!(decode_dossier(&v3[..v3.len() - 1]).is_err());
        // Version 4 (before problem items) reads with none; version 5 keeps them.
        let v4 = v4::encode(&d);
        assert_eq!(v4[0], 4);
        assert_eq!(decode_dossier(&v4).unwrap(), d);
        d.inspections[0].problem_items = vec!["SC-SP-01".into()];
        let new = encode_dossier(&d).unwrap();
        assert_eq!(decode_dossier(&new).unwrap(), d);
        assert!(decode_dossier(&v4[..v4.len() - 1]).is_err());
    }

    /// Decoding dossiers one after another into one value gives each exactly as a
    /// fresh decode does: longer lists after shorter, shorter after longer, an empty
    /// profile after a full one, an old version between current ones.
    #[test]
    fn dossiers_decode_in_place_as_fresh() {
        use crate::domain::fixtures::{day, dossier, listing, penalty};
        let mut big = old_dossier();
        big.penalties
            .push(penalty("沪市监罚〔2024〕2号", day("2024-05-01")));
        big.listings
            .push(listing(ListKind::SeriousIllegal, day("2025-03-01")));
        big.inspections[0].problem_items = vec!["SC-SP-01".into(), "SC-SP-02".into()];
        big.false_commitments = vec![(9, day("2026-01-01"))];
        let small = dossier("2020-01-02");
        let empty = EnterpriseRecords::default();
        let bytes = [
            encode_dossier(&small).unwrap(),
            encode_dossier(&big).unwrap(),
            encode_dossier(&small).unwrap(),
            v3::encode(&old_dossier()),
            encode_dossier(&empty).unwrap(),
            encode_dossier(&big).unwrap(),
        ];
        let mut place = EnterpriseRecords::default();
        for b in &bytes {
            // (What the scan attaches for the previous enterprise.)
            place.false_commitments = vec![(3, day("2026-02-01"))];
            decode_dossier_into(b, &mut place).unwrap();
            assert_eq!(place, decode_dossier(b).unwrap());
            // Kept with the repair cases, never in the stored dossier: none after a
            // decode, whatever the previous dossier was given.
            assert!(place.false_commitments.is_empty());
        }
        assert!(decode_dossier_into(&bytes[1][..bytes[1].len() - 1], &mut place).is_err());
    }

    proptest! {
        #[test]
        fn decode_never_panics(b in proptest::collection::vec(any::<u8>(), 0..128)) {
            let _ = decode::<Listing>(&b);
            let _ = decode::<crate::domain::Enterprise>(&b);
            let _ = decode::<crate::domain::Penalty>(&b);
            let _ = decode_dossier(&b);
            let mut place = old_dossier();
            let _ = decode_dossier_into(&b, &mut place);
        }
    }
}
