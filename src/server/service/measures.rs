//! MeasuresService handlers: which reward and punishment measures apply to an
//! enterprise or a person, from the catalogue in the store's options.

use tonic::{Request, Response, Status};

use super::{blocking, convert, invalid, Scope};
use crate::{
    domain::{
        measures::{self, Applied, Catalogue, ClassInForce, Measure, MeasureKind, Subject},
        Date, DomainError, EnterpriseRecords, Uscc,
    },
    error::Error,
    proto::{self as pb, measures_service_server::MeasuresService},
    store::Store,
};

/// The MeasuresService.
#[derive(Clone)]
pub struct MeasuresApi {
    store: Store,
}

impl MeasuresApi {
    /// A service over `store` (its options hold the catalogue).
    pub fn new(store: Store) -> Self {
        MeasuresApi { store }
    }
}

fn kind_pb(k: MeasureKind) -> pb::MeasureKind {
    match k {
        MeasureKind::Incentive => pb::MeasureKind::Incentive,
        MeasureKind::Punishment => pb::MeasureKind::Punishment,
    }
}

fn subject_pb(s: Subject) -> pb::MeasureSubject {
    match s {
        Subject::Enterprise => pb::MeasureSubject::Enterprise,
        Subject::LegalRepresentative => pb::MeasureSubject::LegalRepresentative,
    }
}

/// A catalogue measure as the API shows it.
pub fn measure_pb(m: &Measure) -> pb::Measure {
    pb::Measure {
        code: m.code.clone(),
        name: m.name.clone(),
        description: m.description.clone(),
        kind: kind_pb(m.kind).into(),
        subject: subject_pb(m.subject).into(),
        legal_basis: m.basis.clone(),
        evidence: m.evidence.clone(),
        applied_by: m.applied_by.clone(),
        joint: m.joint,
        trigger: m.trigger.spelled(),
        years: m.years.unwrap_or(0),
    }
}

/// A catalogue measure reduced to its code, kind and subject (`MEASURE_VIEW_CODES`).
fn measure_code_pb(m: &Measure) -> pb::Measure {
    pb::Measure {
        code: m.code.clone(),
        kind: kind_pb(m.kind).into(),
        subject: subject_pb(m.subject).into(),
        ..Default::default()
    }
}

/// An applying measure as the API shows it, its measure in full.
pub fn applied_pb(a: &Applied) -> pb::AppliedMeasure {
    applied_view_pb(a, true)
}

/// An applying measure, its measure in full or as its code only.
fn applied_view_pb(a: &Applied, full: bool) -> pb::AppliedMeasure {
    pb::AppliedMeasure {
        measure: Some(if full {
            measure_pb(a.measure)
        } else {
            measure_code_pb(a.measure)
        }),
        because: a.because.clone(),
        record_id: a.record_id.clone(),
        since: a.since.to_string(),
        until: a.until.map(|d| d.to_string()).unwrap_or_default(),
        legal_rep_id_hash: a.person.map(hex::encode).unwrap_or_default(),
    }
}

/// The class `u` has on `as_of` for class-triggered measures: its class in the current
/// run (a re-score after a write included) when `as_of` is on or after the run's as-of
/// date; `None` without a run, outside it, or before it.
pub fn class_in_force(
    store: &Store,
    u: &Uscc,
    as_of: Date,
) -> Result<Option<ClassInForce>, Status> {
    match store.class_in_run(u, None) {
        Ok(c) if c.run_as_of <= as_of => Ok(Some((c.class, c.run_id, c.as_of.min(as_of)))),
        Ok(_) => Ok(None),
        Err(Error::FailedPrecondition(_) | Error::NotFound(_)) => Ok(None),
        Err(e) => Err(e.into()),
    }
}

/// The measures binding the enterprise of `d` and its legal representative on `as_of`.
pub fn measures_of<'a>(
    store: &'a Store,
    d: &EnterpriseRecords,
    class: Option<ClassInForce>,
    as_of: Date,
) -> (Vec<Applied<'a>>, Vec<Applied<'a>>) {
    let o = store.options();
    let of = |s| measures::applicable(&o.measures, s, d, class, &o.rules, as_of);
    (of(Subject::Enterprise), of(Subject::LegalRepresentative))
}

/// One bar on a person: the enterprise whose record binds them, and the measure.
pub struct Bar<'a> {
    pub uscc: Uscc,
    pub enterprise_name: String,
    pub applied: Applied<'a>,
}

impl Bar<'_> {
    fn pb(&self) -> pb::LegalRepresentativeBar {
        pb::LegalRepresentativeBar {
            uscc: self.uscc.to_string(),
            enterprise_name: self.enterprise_name.clone(),
            measure: Some(applied_pb(&self.applied)),
        }
    }
}

/// Why `rep` is barred on `as_of` (each bar with the enterprise whose record binds the
/// person; none: not barred), and the enterprises naming the person now.
pub fn bars_of<'a>(
    store: &'a Store,
    rep: &[u8; 32],
    as_of: Date,
) -> Result<(Vec<Uscc>, Vec<Bar<'a>>), Status> {
    // The index holds both the enterprises the person heads now and those that named
    // the person when they were put on the serious list.
    let linked = store.enterprises_of_legal_rep(rep)?;
    let o = store.options();
    let mut bars = Vec::new();
    let mut headed = Vec::new();
    for u in linked {
        let Some(d) = store.enterprise_records(&u)? else {
            continue;
        };
        let Some(e) = d.enterprise.as_ref() else {
            continue;
        };
        if e.legal_rep_hash == Some(*rep) {
            headed.push(u);
        }
        bars.extend(
            measures::applicable(
                &o.measures,
                Subject::LegalRepresentative,
                &d,
                None,
                &o.rules,
                as_of,
            )
            .into_iter()
            .filter(|a| a.person == Some(*rep))
            .map(|applied| Bar {
                uscc: u,
                enterprise_name: e.name.clone(),
                applied,
            }),
        );
    }
    Ok((headed, bars))
}

fn catalogue(store: &Store) -> &Catalogue {
    &store.options().measures
}

#[tonic::async_trait]
impl MeasuresService for MeasuresApi {
    async fn get_measures(
        &self,
        req: Request<pb::GetMeasuresRequest>,
    ) -> Result<Response<pb::GetMeasuresResponse>, Status> {
        let r = req.get_ref();
        let u = convert::uscc("uscc", &r.uscc).map_err(invalid)?;
        Scope::of(&req).check_uscc(&self.store, "uscc", &u)?;
        let as_of = convert::past_as_of("as_of", &r.as_of, self.store.today()).map_err(invalid)?;
        let full = match pb::MeasureView::try_from(r.view) {
            Ok(pb::MeasureView::Unspecified | pb::MeasureView::Full) => true,
            Ok(pb::MeasureView::Codes) => false,
            Err(_) => {
                return Err(invalid(DomainError::invalid(
                    "view",
                    format!("{} is not a MeasureView", r.view),
                )))
            }
        };
        // A dossier read, a class lookup (an in-memory search, an override read at
        // most) and the catalogue in memory: short enough for the runtime thread, like
        // GetClassification; the hand-off to the blocking pool cost 40 % of the
        // throughput (BENCHMARKS.md).
        let store = &self.store;
        let d = store
            .enterprise_records(&u)?
            .ok_or_else(|| Error::NotFound(format!("uscc: enterprise {u}")))?;
        let class = class_in_force(store, &u, as_of)?;
        let (mine, rep) = measures_of(store, &d, class, as_of);
        Ok(Response::new(pb::GetMeasuresResponse {
            uscc: u.to_string(),
            as_of: as_of.to_string(),
            risk_class: class.map(|c| c.0.letter().to_string()).unwrap_or_default(),
            run_id: class.map_or(0, |c| c.1),
            measures: mine.iter().map(|a| applied_view_pb(a, full)).collect(),
            legal_representative_measures: rep.iter().map(|a| applied_view_pb(a, full)).collect(),
            catalogue_version: catalogue(store).version.clone(),
        }))
    }

    async fn list_measures(
        &self,
        req: Request<pb::ListMeasuresRequest>,
    ) -> Result<Response<pb::ListMeasuresResponse>, Status> {
        let kind = match pb::MeasureKind::try_from(req.get_ref().kind) {
            Ok(pb::MeasureKind::Unspecified) => None,
            Ok(pb::MeasureKind::Incentive) => Some(MeasureKind::Incentive),
            Ok(pb::MeasureKind::Punishment) => Some(MeasureKind::Punishment),
            Err(_) => {
                return Err(invalid(DomainError::invalid(
                    "kind",
                    format!("{} is not a MeasureKind", req.get_ref().kind),
                )))
            }
        };
        let c = catalogue(&self.store);
        Ok(Response::new(pb::ListMeasuresResponse {
            measures: c
                .measures
                .iter()
                .filter(|m| kind.is_none_or(|k| m.kind == k))
                .map(measure_pb)
                .collect(),
            catalogue_version: c.version.clone(),
        }))
    }

    async fn check_legal_representative(
        &self,
        req: Request<pb::CheckLegalRepresentativeRequest>,
    ) -> Result<Response<pb::CheckLegalRepresentativeResponse>, Status> {
        let r = req.get_ref();
        let rep = convert::legal_rep_hash("legal_rep_id_hash", &r.legal_rep_id_hash)
            .map_err(invalid)?
            .ok_or_else(|| invalid(DomainError::invalid("legal_rep_id_hash", "is required")))?;
        let as_of = convert::past_as_of("as_of", &r.as_of, self.store.today()).map_err(invalid)?;
        let scope = Scope::of(&req);
        let store = self.store.clone();
        let (headed, bars) = blocking(move || {
            let (headed, bars) = bars_of(&store, &rep, as_of)?;
            // The bars come from the public serious-illegal list; which enterprises a
            // person heads is registry data, shown within the token's regions only.
            let mut shown = Vec::with_capacity(headed.len());
            for u in headed {
                if !scope.hides(&store, &u)? {
                    shown.push(u);
                }
            }
            Ok((shown, bars.iter().map(Bar::pb).collect::<Vec<_>>()))
        })
        .await?;
        Ok(Response::new(pb::CheckLegalRepresentativeResponse {
            barred: !bars.is_empty(),
            bars,
            enterprises: headed.iter().map(|u| u.to_string()).collect(),
            as_of: as_of.to_string(),
            catalogue_version: catalogue(&self.store).version.clone(),
        }))
    }
}
