//! Federated joint draws (跨区域联合抽查, e.g. the Yangtze-delta joint product checks
//! 长三角联动抽查): several independent instances, each with its own store, draw one
//! sample from the union of their frozen populations with one seed.
//!
//! The consistent sampler makes it possible without pooling the data: a ticket depends
//! only on the sampler seed and the id, so the `k` smallest tickets of the union are the
//! `k` smallest among each instance's own smallest `k`.
//!
//! 1. Each instance freezes its population with an ordinary plan (same task id, same
//!    strata) and its digests.
//! 2. A coordinator collects the plans into a [`Manifest`] and every instance commits to
//!    it: it checks its own entry against its plan and stores the manifest. Its digest
//!    (SHA-256 of [`Manifest::text`]) is what the instances agreed on.
//! 3. The seed is revealed to each instance with the manifest digest it committed (a
//!    different digest is refused: no draw proceeds on a digest it has not committed);
//!    each lists its own smallest tickets (at most the joint `k` per stratum).
//! 4. The coordinator merges them ([`merge`]): per stratum the `k` smallest of the union,
//!    whose largest ticket is the stratum's threshold. Each instance then records as its
//!    own selection its tickets up to the threshold ([`Outcome`], [`local_count`]).
//!
//! Anyone re-checks the whole draw with the published package: the union of the
//! instances' population lists (each matching its committed digest in the manifest
//! text), `sampler(union, seed=seed + ":" + task_id, take=k, output="id")`.

use std::collections::HashMap;

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use super::{
    sampler::{self, Ticket},
    Date, DomainError, RiskClass,
};

/// Most instances in one joint draw.
pub const MAX_PARTICIPANTS: usize = 32;
/// Most enterprises one instance may commit in a stratum (a country's register is
/// below 200 M): bounds the union (at most 32 × this) and so every joint k.
pub const MAX_POPULATION: u64 = 1_000_000_000;

/// How many enterprises of one class the joint draw takes from the union.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct StratumSpec {
    pub class: RiskClass,
    /// Exactly one of count and ratio.
    pub count: Option<u64>,
    pub ratio: Option<f64>,
}

/// One instance's committed population of one stratum.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Committed {
    pub population: u64,
    /// SHA-256 hex over the stratum's USCCs ascending, joined with "\n" (as a plan's).
    pub digest: String,
}

/// One instance of a joint draw and the plan it froze.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Participant {
    /// The instance's configured name (`[store] instance_name`).
    pub instance: String,
    pub plan_id: u64,
    pub run_id: u64,
    pub as_of: Date,
    /// Parallel to the manifest's strata.
    pub populations: Vec<Committed>,
}

/// What the instances of a joint draw commit to before the seed exists.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Manifest {
    /// The joint task: every participant's plan has this task id; part of the seed.
    pub task_id: String,
    pub strata: Vec<StratumSpec>,
    pub participants: Vec<Participant>,
}

/// Whether `name` is a valid instance name: 1–64 of `a-z 0-9 . _ -`, starting with a
/// letter or digit.
pub fn valid_instance_name(name: &str) -> bool {
    let b = name.as_bytes();
    !b.is_empty()
        && b.len() <= 64
        && b[0].is_ascii_alphanumeric()
        && b.iter().all(|c| {
            c.is_ascii_lowercase() || c.is_ascii_digit() || matches!(c, b'.' | b'_' | b'-')
        })
}

impl Manifest {
    /// Refuses a manifest that cannot be committed, naming the field.
    pub fn validate(&self) -> Result<(), DomainError> {
        let t = &self.task_id;
        if t.trim().is_empty() || t.trim() != t || t.chars().count() > 64 {
            return Err(DomainError::invalid(
                "manifest.task_id",
                "1 to 64 characters, trimmed",
            ));
        }
        if t.chars().any(char::is_control) {
            return Err(DomainError::invalid(
                "manifest.task_id",
                "no control characters",
            ));
        }
        if self.strata.is_empty() {
            return Err(DomainError::invalid(
                "manifest.strata",
                "at least one stratum",
            ));
        }
        for (i, s) in self.strata.iter().enumerate() {
            let field = format!("manifest.strata[{i}]");
            if self.strata[..i].iter().any(|o| o.class == s.class) {
                return Err(DomainError::invalid(
                    format!("{field}.risk_class"),
                    format!("class {} given twice", s.class.letter()),
                ));
            }
            match (s.count, s.ratio) {
                (Some(_), None) => {}
                (None, Some(r)) if (0.0..=1.0).contains(&r) => {}
                (None, Some(_)) => {
                    return Err(DomainError::invalid(
                        format!("{field}.ratio"),
                        "between 0 and 1",
                    ))
                }
                _ => {
                    return Err(DomainError::invalid(
                        field,
                        "exactly one of ratio and count",
                    ))
                }
            }
        }
        if self.participants.len() < 2 || self.participants.len() > MAX_PARTICIPANTS {
            return Err(DomainError::invalid(
                "manifest.participants",
                format!("2 to {MAX_PARTICIPANTS} instances"),
            ));
        }
        for (i, p) in self.participants.iter().enumerate() {
            let field = format!("manifest.participants[{i}]");
            if !valid_instance_name(&p.instance) {
                return Err(DomainError::invalid(
                    format!("{field}.instance"),
                    "1 to 64 of a-z 0-9 . _ -, starting with a letter or digit",
                ));
            }
            if self.participants[..i]
                .iter()
                .any(|o| o.instance == p.instance)
            {
                return Err(DomainError::invalid(
                    format!("{field}.instance"),
                    format!("instance {:?} given twice", p.instance),
                ));
            }
            if p.populations.len() != self.strata.len() {
                return Err(DomainError::invalid(
                    format!("{field}.strata"),
                    format!(
                        "{} populations for {} strata",
                        p.populations.len(),
                        self.strata.len()
                    ),
                ));
            }
            for (j, c) in p.populations.iter().enumerate() {
                if c.population > MAX_POPULATION {
                    return Err(DomainError::invalid(
                        format!("{field}.strata[{j}].population"),
                        format!("more than {MAX_POPULATION} enterprises"),
                    ));
                }
                if c.digest.len() != 64 || !c.digest.bytes().all(|b| b.is_ascii_hexdigit()) {
                    return Err(DomainError::invalid(
                        format!("{field}.strata[{j}].population_digest"),
                        "64 hex digits",
                    ));
                }
            }
        }
        Ok(())
    }

    /// The canonical text the digest covers, one line per fact, each ending in "\n":
    ///
    /// ```text
    /// consistent-sampler-v1 joint draw
    /// task_id <task id>
    /// stratum <i> <class letter> ratio <r>      (or: count <n>)
    /// participant <instance> plan <id> run <id> as_of <YYYY-MM-DD>
    /// population <instance> <i> <size> <digest>
    /// ```
    ///
    /// Strata in manifest order, then each participant's line followed by its
    /// populations. A re-checker reads the committed digests from this text (the joint
    /// receipt carries it) after checking its SHA-256.
    pub fn text(&self) -> String {
        let mut s = format!(
            "{} joint draw\ntask_id {}\n",
            sampler::ALGORITHM,
            self.task_id
        );
        for (i, st) in self.strata.iter().enumerate() {
            match (st.count, st.ratio) {
                (Some(c), _) => {
                    s.push_str(&format!("stratum {i} {} count {c}\n", st.class.letter()))
                }
                (None, r) => s.push_str(&format!(
                    "stratum {i} {} ratio {:?}\n",
                    st.class.letter(),
                    r.unwrap_or(0.0)
                )),
            }
        }
        for p in &self.participants {
            s.push_str(&format!(
                "participant {} plan {} run {} as_of {}\n",
                p.instance, p.plan_id, p.run_id, p.as_of
            ));
            for (i, c) in p.populations.iter().enumerate() {
                s.push_str(&format!(
                    "population {} {i} {} {}\n",
                    p.instance, c.population, c.digest
                ));
            }
        }
        s
    }

    /// SHA-256 hex of [`Manifest::text`].
    pub fn digest(&self) -> String {
        hex::encode(Sha256::digest(self.text().as_bytes()))
    }

    /// The sampler seed of the joint draw: `seed + ":" + task_id`.
    pub fn sampler_seed(&self, seed: &str) -> String {
        sampler::draw_seed(seed, &self.task_id)
    }

    /// The union population of stratum `i` (the sum over instances: their enterprises
    /// are disjoint, which the merge checks among the selected).
    pub fn union_population(&self, i: usize) -> u64 {
        self.participants
            .iter()
            .filter_map(|p| p.populations.get(i))
            .map(|c| c.population)
            .fold(0u64, u64::saturating_add)
    }

    /// Enterprises the joint draw takes in stratum `i`: the count, or ceil(ratio × union
    /// population), capped at the union population.
    pub fn k(&self, i: usize) -> u64 {
        let Some(s) = self.strata.get(i) else {
            return 0;
        };
        let pop = usize::try_from(self.union_population(i)).unwrap_or(usize::MAX);
        sampler::stratum_size(pop, s.count, s.ratio) as u64
    }

    /// The participant named `instance`.
    pub fn participant(&self, instance: &str) -> Option<&Participant> {
        self.participants.iter().find(|p| p.instance == instance)
    }
}

/// One selected enterprise of a joint stratum.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct JointSelected {
    /// Index of its instance in the manifest's participants.
    pub participant: usize,
    pub id: String,
    pub ticket: Ticket,
}

/// The joint selection of one stratum, in ticket order.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct JointStratum {
    pub population: u64,
    pub k: u64,
    pub selected: Vec<JointSelected>,
}

impl JointStratum {
    /// The largest selected ticket (none when nothing is selected).
    pub fn threshold(&self) -> Option<&Ticket> {
        self.selected.last().map(|s| &s.ticket)
    }

    /// How many of the selected belong to participant `p`.
    pub fn count_of(&self, p: usize) -> u64 {
        self.selected.iter().filter(|s| s.participant == p).count() as u64
    }

    /// SHA-256 hex over "instance uscc ticket" lines of the selection in ticket order,
    /// joined with "\n".
    pub fn selection_digest(&self, m: &Manifest) -> String {
        let mut h = Sha256::new();
        for (i, s) in self.selected.iter().enumerate() {
            if i > 0 {
                h.update(b"\n");
            }
            let name = m
                .participants
                .get(s.participant)
                .map_or("", |p| p.instance.as_str());
            h.update(format!("{name} {} {}", s.id, s.ticket.as_string()).as_bytes());
        }
        hex::encode(h.finalize())
    }
}

/// Merges the instances' candidates (per participant, per stratum: its smallest tickets,
/// ascending) into the joint selection: per stratum the `k` smallest of the union.
/// Refuses a participant that sent a stratum's candidates out of order or more than `k`
/// of them, and an enterprise two instances both hold, naming them.
pub fn merge(
    m: &Manifest,
    candidates: &[Vec<Vec<(Ticket, String)>>],
) -> Result<Vec<JointStratum>, DomainError> {
    if candidates.len() != m.participants.len() {
        return Err(DomainError::invalid(
            "candidates",
            format!(
                "{} instances answered, the manifest has {}",
                candidates.len(),
                m.participants.len()
            ),
        ));
    }
    let mut out = Vec::with_capacity(m.strata.len());
    for i in 0..m.strata.len() {
        let k = m.k(i);
        let mut all: Vec<JointSelected> = Vec::new();
        for (p, per) in candidates.iter().enumerate() {
            let name = &m.participants[p].instance;
            let list = per.get(i).map(Vec::as_slice).unwrap_or_default();
            if list.len() as u64 > k || list.windows(2).any(|w| w[0].0 >= w[1].0) {
                return Err(DomainError::invalid(
                    format!("instance {name}: strata[{i}]"),
                    format!(
                        "{} candidates, expected at most {k} in ascending ticket order",
                        list.len()
                    ),
                ));
            }
            all.extend(list.iter().map(|(t, id)| JointSelected {
                participant: p,
                id: id.clone(),
                ticket: t.clone(),
            }));
        }
        all.sort_by(|a, b| a.ticket.cmp(&b.ticket).then_with(|| a.id.cmp(&b.id)));
        all.truncate(usize::try_from(k).unwrap_or(usize::MAX));
        let mut seen: HashMap<&str, usize> = HashMap::new();
        for s in &all {
            if let Some(&p) = seen.get(s.id.as_str()) {
                return Err(DomainError::invalid(
                    format!("strata[{i}]"),
                    format!(
                        "enterprise {} is in the populations of instances {} and {}",
                        s.id, m.participants[p].instance, m.participants[s.participant].instance
                    ),
                ));
            }
            seen.insert(&s.id, s.participant);
        }
        out.push(JointStratum {
            population: m.union_population(i),
            k,
            selected: all,
        });
    }
    Ok(out)
}

/// What a coordinator tells an instance after the merge, per stratum.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct StratumOutcome {
    /// Enterprises the joint draw took from the union.
    pub k: u64,
    /// The largest selected ticket, "0.ddd…" (empty when none was selected).
    pub threshold: String,
    /// How many of the selected are this instance's.
    pub selected_here: u64,
    /// [`JointStratum::selection_digest`] of the whole joint selection.
    pub selection_digest: String,
}

/// The result of a joint draw as an instance records it beside its own selection.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Outcome {
    pub manifest_digest: String,
    pub seed: String,
    pub strata: Vec<StratumOutcome>,
}

/// How many of one instance's tickets (`local`, ascending) fall at or below the
/// stratum's `threshold` (none without one): the instance's share of the joint sample.
pub fn local_count(local: &[Ticket], threshold: Option<&Ticket>) -> u64 {
    match threshold {
        None => 0,
        Some(t) => local.partition_point(|x| x <= t) as u64,
    }
}

/// Checks an outcome an instance received against its own tickets (`local[i]`: its
/// smallest tickets of stratum `i`, ascending, at most the joint `k`): the k of each
/// stratum is the manifest's, and the count the coordinator gives this instance is the
/// number of its tickets up to the threshold. Returns that count per stratum.
pub fn check_outcome(
    m: &Manifest,
    o: &Outcome,
    local: &[Vec<Ticket>],
) -> Result<Vec<u64>, DomainError> {
    if o.strata.len() != m.strata.len() {
        return Err(DomainError::invalid(
            "outcome.strata",
            format!(
                "{} strata, the manifest has {}",
                o.strata.len(),
                m.strata.len()
            ),
        ));
    }
    let mut out = Vec::with_capacity(o.strata.len());
    for (i, s) in o.strata.iter().enumerate() {
        let field = format!("outcome.strata[{i}]");
        if s.k != m.k(i) {
            return Err(DomainError::invalid(
                format!("{field}.k"),
                format!("{}, the manifest gives {}", s.k, m.k(i)),
            ));
        }
        let threshold = if s.threshold.is_empty() {
            None
        } else {
            Some(Ticket::parse(&s.threshold).ok_or_else(|| {
                DomainError::invalid(format!("{field}.threshold"), "not a ticket \"0.ddd…\"")
            })?)
        };
        if (threshold.is_none()) != (s.k == 0) {
            return Err(DomainError::invalid(
                format!("{field}.threshold"),
                "required exactly when k > 0",
            ));
        }
        let mine = local.get(i).map(Vec::as_slice).unwrap_or_default();
        let n = local_count(mine, threshold.as_ref());
        if n != s.selected_here {
            return Err(DomainError::invalid(
                format!("{field}.selected_here"),
                format!(
                    "{}, but this instance has {n} tickets at or below the threshold",
                    s.selected_here
                ),
            ));
        }
        if s.selection_digest.len() != 64
            || !s.selection_digest.bytes().all(|b| b.is_ascii_hexdigit())
        {
            return Err(DomainError::invalid(
                format!("{field}.selection_digest"),
                "64 hex digits",
            ));
        }
        out.push(n);
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::sampler::Sampler;
    use proptest::prelude::*;

    fn manifest(pops: &[&[String]], ratio: f64) -> Manifest {
        Manifest {
            task_id: "delta-2026-q4".into(),
            strata: vec![StratumSpec {
                class: RiskClass::C,
                count: None,
                ratio: Some(ratio),
            }],
            participants: pops
                .iter()
                .enumerate()
                .map(|(i, p)| Participant {
                    instance: format!("city-{i}"),
                    plan_id: i as u64 + 1,
                    run_id: 1,
                    as_of: Date::parse("d", "2026-12-01").unwrap(),
                    populations: vec![Committed {
                        population: p.len() as u64,
                        digest: sampler::population_digest(p.iter().map(String::as_str)),
                    }],
                })
                .collect(),
        }
    }

    fn ids(prefix: &str, n: usize) -> Vec<String> {
        (0..n).map(|i| format!("{prefix}{i:08}")).collect()
    }

    #[test]
    fn text_and_digest_are_fixed() {
        let m = manifest(&[&ids("a", 2), &ids("b", 3)], 0.5);
        let text = m.text();
        assert!(text.starts_with("consistent-sampler-v1 joint draw\ntask_id delta-2026-q4\nstratum 0 C ratio 0.5\nparticipant city-0 plan 1 run 1 as_of 2026-12-01\npopulation city-0 0 2 "));
        assert!(text.ends_with('\n'));
        assert_eq!(m.digest(), hex::encode(Sha256::digest(text.as_bytes())));
        assert_eq!(m.k(0), 3, "ceil(0.5 × 5)");
        let mut c = m.clone();
        c.strata[0].ratio = Some(1.0);
        assert!(c.text().contains("ratio 1.0\n"), "{}", c.text());
        c.strata[0] = StratumSpec {
            class: RiskClass::C,
            count: Some(9),
            ratio: None,
        };
        assert!(c.text().contains("stratum 0 C count 9\n"));
        assert_eq!(c.k(0), 5, "a count is capped at the union");
    }

    #[test]
    fn validation_names_the_field() {
        let mut m = manifest(&[&ids("a", 2), &ids("b", 3)], 0.5);
        assert!(m.validate().is_ok());
        m.participants[1].instance = "city-0".into();
        assert_eq!(
            m.validate().unwrap_err().field,
            "manifest.participants[1].instance"
        );
        m.participants[1].instance = "City".into();
        assert_eq!(
            m.validate().unwrap_err().field,
            "manifest.participants[1].instance"
        );
        m.participants.truncate(1);
        assert_eq!(m.validate().unwrap_err().field, "manifest.participants");
        let mut m = manifest(&[&ids("a", 2), &ids("b", 3)], 1.5);
        assert_eq!(m.validate().unwrap_err().field, "manifest.strata[0].ratio");
        m.strata[0].ratio = Some(0.1);
        m.participants[0].populations[0].digest = "zz".into();
        assert_eq!(
            m.validate().unwrap_err().field,
            "manifest.participants[0].strata[0].population_digest"
        );
        m.participants[0].populations[0].digest = "a".repeat(64);
        m.participants[1].populations[0].population = MAX_POPULATION + 1;
        assert_eq!(
            m.validate().unwrap_err().field,
            "manifest.participants[1].strata[0].population"
        );
        m.task_id = "a\nb".into();
        assert_eq!(m.validate().unwrap_err().field, "manifest.task_id");
    }

    #[test]
    fn overlapping_populations_are_named() {
        let a = ids("x", 5);
        let m = manifest(&[&a, &a], 1.0);
        let s = Sampler::new(&m.sampler_seed("7"));
        let c: Vec<(Ticket, String)> = s
            .sample(a.iter().map(String::as_str), 10)
            .into_iter()
            .map(|(t, id)| (t, id.to_string()))
            .collect();
        let err = merge(&m, &[vec![c.clone()], vec![c]]).unwrap_err();
        assert!(
            err.reason.contains("instances city-0 and city-1"),
            "{err:?}"
        );
    }

    proptest! {
        /// The joint selection equals a draw over the union, and every instance's share
        /// is its own tickets up to the threshold — whatever the split.
        #[test]
        fn joint_equals_union_draw(
            n in proptest::collection::vec(0usize..40, 2..4),
            ratio in 0.0f64..=1.0,
            seed in "[a-z0-9]{1,8}",
        ) {
            let pops: Vec<Vec<String>> =
                n.iter().enumerate().map(|(i, &n)| ids(&format!("p{i}-"), n)).collect();
            let refs: Vec<&[String]> = pops.iter().map(Vec::as_slice).collect();
            let m = manifest(&refs, ratio);
            let k = m.k(0) as usize;
            let s = Sampler::new(&m.sampler_seed(&seed));
            let candidates: Vec<Vec<Vec<(Ticket, String)>>> = pops
                .iter()
                .map(|p| {
                    vec![s
                        .sample(p.iter().map(String::as_str), k)
                        .into_iter()
                        .map(|(t, id)| (t, id.to_string()))
                        .collect()]
                })
                .collect();
            let joint = merge(&m, &candidates).unwrap();
            let union: Vec<&str> = pops.iter().flatten().map(String::as_str).collect();
            let direct: Vec<String> =
                s.sample(union, k).into_iter().map(|(_, id)| id.to_string()).collect();
            let got: Vec<String> = joint[0].selected.iter().map(|x| x.id.clone()).collect();
            prop_assert_eq!(&got, &direct);
            for (p, c) in candidates.iter().enumerate() {
                let local: Vec<Ticket> = c[0].iter().map(|(t, _)| t.clone()).collect();
                let o = Outcome {
                    manifest_digest: m.digest(),
                    seed: seed.clone(),
                    strata: vec![StratumOutcome {
                        k: k as u64,
                        threshold: joint[0].threshold().map(Ticket::as_string).unwrap_or_default(),
                        selected_here: joint[0].count_of(p),
                        selection_digest: joint[0].selection_digest(&m),
                    }],
                };
                prop_assert_eq!(check_outcome(&m, &o, std::slice::from_ref(&local)).unwrap(), vec![joint[0].count_of(p)]);
                // A coordinator that miscounts an instance is refused.
                let mut bad = o.clone();
                bad.strata[0].selected_here += 1;
                prop_assert!(check_outcome(&m, &bad, &[local]).is_err());
            }
        }
    }
}
