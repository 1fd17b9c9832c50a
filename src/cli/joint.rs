//! `credit-risk joint-draw` (the coordinator of a federated joint draw across instances)
//! and `credit-risk verify-joint` (its offline re-check). See docs/JOINT.md.

use std::{
    collections::BTreeMap,
    path::{Path, PathBuf},
};

use credit_risk::{
    client::{channel, Authed, TokenInterceptor},
    domain::{
        joint::{self, Manifest, Outcome},
        sampler::{self, population_digest, Sampler, Ticket},
    },
    proto::{self as pb, spot_check_service_client::SpotCheckServiceClient},
    server::service::spotcheck::joint::{
        manifest_from_pb, manifest_of_plans, outcome_pb, stratum_spec_pb,
    },
};

use super::{class_letter, draw::content_request_id, proto_json, runtime, CliError, CliResult};

/// Options of `credit-risk joint-draw`.
#[derive(clap::Args, Debug)]
pub struct Args {
    /// An instance and its plan: NAME=ADDRESS/PLAN_ID (e.g.
    /// shanghai=127.0.0.1:50051/3); at least two. NAME is the server's
    /// store.instance_name; its token is $CREDIT_RISK_TOKEN_<NAME> (upper case, other
    /// characters as _), else $CREDIT_RISK_TOKEN.
    #[arg(
        long = "participant",
        value_name = "NAME=ADDRESS/PLAN",
        required = true
    )]
    participants: Vec<String>,
    /// The seed, revealed to every instance once all have committed.
    #[arg(long)]
    seed: String,
    /// Write the joint receipt (JSON) here instead of stdout.
    #[arg(long)]
    out: Option<PathBuf>,
    /// Write each instance's frozen populations here (NAME/stratum-I.txt, one USCC per
    /// line), for `credit-risk verify-joint` or examples/python/verify_joint.py.
    #[arg(long)]
    population_dir: Option<PathBuf>,
}

/// One instance as the coordinator reaches it.
struct Instance {
    name: String,
    addr: String,
    plan_id: u64,
    client: SpotCheckServiceClient<Authed>,
}

/// The token variable of instance `name`: `CREDIT_RISK_TOKEN_<NAME>`.
fn token_var(name: &str) -> String {
    let up: String = name
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() {
                c.to_ascii_uppercase()
            } else {
                '_'
            }
        })
        .collect();
    format!("CREDIT_RISK_TOKEN_{up}")
}

fn parse_participant(s: &str) -> Result<(String, String, u64), CliError> {
    let bad = || format!("--participant {s:?}: expected NAME=ADDRESS/PLAN_ID");
    let (name, rest) = s.split_once('=').ok_or_else(bad)?;
    let (addr, plan) = rest.rsplit_once('/').ok_or_else(bad)?;
    let plan: u64 = plan.parse().map_err(|_| bad())?;
    if !joint::valid_instance_name(name) || addr.is_empty() {
        return Err(bad().into());
    }
    Ok((name.to_string(), addr.to_string(), plan))
}

/// Runs `credit-risk joint-draw`.
pub fn run(a: Args) -> CliResult {
    runtime(0)?.block_on(coordinate(a))
}

/// Prefixes an error with the instance it came from (a server's refusal as `CODE:
/// message`, as every command prints it).
fn at<E: std::error::Error + 'static>(name: &str) -> impl Fn(E) -> CliError + '_ {
    move |e| format!("instance {name}: {}", super::explain(&e)).into()
}

async fn coordinate(a: Args) -> CliResult {
    let mut instances = Vec::new();
    for p in &a.participants {
        let (name, addr, plan_id) = parse_participant(p)?;
        if instances.iter().any(|i: &Instance| i.name == name) {
            return Err(format!("--participant: instance {name} given twice").into());
        }
        let client = SpotCheckServiceClient::with_interceptor(
            channel(&addr)
                .await
                .map_err(|e| format!("instance {name}: {e}"))?,
            {
                let var = token_var(&name);
                if std::env::var_os(&var).is_some() {
                    TokenInterceptor::from_var(&var)
                } else {
                    TokenInterceptor::from_env()
                }
            },
        )
        .max_decoding_message_size(super::MAX_REPLY_BYTES);
        instances.push(Instance {
            name,
            addr,
            plan_id,
            client,
        });
    }
    if instances.len() < 2 {
        return Err("--participant: a joint draw needs at least two instances".into());
    }
    // 1. The plans, each checked against its instance and against the first.
    let mut plans: Vec<pb::DrawPlan> = Vec::new();
    for i in instances.iter_mut() {
        let plan = i
            .client
            .get_plan(pb::GetPlanRequest { plan_id: i.plan_id })
            .await
            .map_err(at(&i.name))?
            .into_inner();
        if plan.instance != i.name {
            return Err(format!(
                "instance {}: the server at {} is the instance {:?}",
                i.name, i.addr, plan.instance
            )
            .into());
        }
        // A drawn plan is refused unless it is this joint draw's (a coordinator run
        // again after stopping half-way: every step is idempotent).
        if plan.drawn && plan.joint_manifest_digest.is_empty() {
            return Err(
                format!("instance {}: plan {} was drawn already", i.name, i.plan_id).into(),
            );
        }
        if let Some(f) = plans.first() {
            if plan.task_id != f.task_id || strata_text(&plan) != strata_text(f) {
                return Err(format!(
                    "instance {}: plan {} (task {:?}, strata {}) differs from the first instance's plan (task {:?}, strata {})",
                    i.name, i.plan_id, plan.task_id, strata_text(&plan), f.task_id, strata_text(f)
                )
                .into());
            }
        }
        plans.push(plan);
    }
    let named: Vec<(&str, &pb::DrawPlan)> = instances
        .iter()
        .map(|i| i.name.as_str())
        .zip(&plans)
        .collect();
    let manifest_pb = manifest_of_plans(&named);
    let manifest: Manifest =
        manifest_from_pb(&manifest_pb).map_err(|e| format!("{}: {}", e.field, e.reason))?;
    let digest = manifest.digest();
    eprintln!(
        "manifest {digest}: task {:?}, {} instances",
        manifest.task_id,
        instances.len()
    );
    // 2. Every instance commits; each must answer the same digest.
    for i in instances.iter_mut() {
        let c = i
            .client
            .commit_joint_population(pb::CommitJointPopulationRequest {
                request_id: content_request_id("joint-commit", i.plan_id, &digest),
                plan_id: i.plan_id,
                manifest: Some(manifest_pb.clone()),
            })
            .await
            .map_err(at(&i.name))?
            .into_inner();
        if c.manifest_digest != digest {
            return Err(format!(
                "instance {}: committed the manifest digest {}, the coordinator computes {digest}",
                i.name, c.manifest_digest
            )
            .into());
        }
        eprintln!("  {} committed plan {}", i.name, i.plan_id);
    }
    // 3. The seed is revealed only now, with the digest everyone committed; each
    //    instance lists its smallest tickets, which the coordinator recomputes.
    let sampler_seed = manifest.sampler_seed(&a.seed);
    let s = Sampler::new(&sampler_seed);
    let mut candidates = Vec::new();
    for i in instances.iter_mut() {
        let d = i
            .client
            .draw_joint_sample(pb::DrawJointSampleRequest {
                request_id: content_request_id("joint-seed", i.plan_id, &a.seed),
                plan_id: i.plan_id,
                seed: a.seed.clone(),
                manifest_digest: digest.clone(),
            })
            .await
            .map_err(at(&i.name))?
            .into_inner();
        if d.seed != a.seed || d.manifest_digest != digest {
            return Err(format!(
                "instance {}: revealed seed {:?} for manifest {}, expected {:?} for {digest}",
                i.name, d.seed, d.manifest_digest, a.seed
            )
            .into());
        }
        let mut per = Vec::new();
        for k in 0..manifest.strata.len() {
            let mut stream = i
                .client
                .list_joint_candidates(pb::ListJointCandidatesRequest {
                    plan_id: i.plan_id,
                    stratum: k as u32,
                })
                .await
                .map_err(at(&i.name))?
                .into_inner();
            let mut list = Vec::new();
            while let Some(b) = stream.message().await.map_err(at(&i.name))? {
                for c in b.candidates {
                    let t = s.ticket(&c.uscc);
                    if t.as_string() != c.ticket {
                        return Err(format!(
                            "instance {}: stratum {k}: {} has the ticket {}, not {}",
                            i.name,
                            c.uscc,
                            t.as_string(),
                            c.ticket
                        )
                        .into());
                    }
                    list.push((t, c.uscc));
                }
            }
            per.push(list);
        }
        candidates.push(per);
    }
    let strata =
        joint::merge(&manifest, &candidates).map_err(|e| format!("{}: {}", e.field, e.reason))?;
    // 4. Each instance records its share.
    for (p, i) in instances.iter_mut().enumerate() {
        let outcome = Outcome {
            manifest_digest: digest.clone(),
            seed: a.seed.clone(),
            strata: strata
                .iter()
                .map(|st| joint::StratumOutcome {
                    k: st.k,
                    threshold: st.threshold().map(Ticket::as_string).unwrap_or_default(),
                    selected_here: st.count_of(p),
                    selection_digest: st.selection_digest(&manifest),
                })
                .collect(),
        };
        let receipt = i
            .client
            .complete_joint_draw(pb::CompleteJointDrawRequest {
                request_id: content_request_id("joint-complete", i.plan_id, &digest),
                plan_id: i.plan_id,
                outcome: Some(outcome_pb(&outcome)),
            })
            .await
            .map_err(at(&i.name))?
            .into_inner();
        for (k, (rs, st)) in receipt.strata.iter().zip(&strata).enumerate() {
            let want: Vec<&str> = st
                .selected
                .iter()
                .filter(|x| x.participant == p)
                .map(|x| x.id.as_str())
                .collect();
            let got: Vec<&str> = rs.selected.iter().map(|x| x.uscc.as_str()).collect();
            if got != want {
                return Err(format!(
                    "instance {}: stratum {k}: recorded {} selected, the joint draw gives it {}",
                    i.name,
                    got.len(),
                    want.len()
                )
                .into());
            }
        }
        eprintln!(
            "  {} recorded its share: {} selected",
            i.name,
            receipt
                .strata
                .iter()
                .map(|s| s.selected.len())
                .sum::<usize>()
        );
    }
    let receipt = pb::JointReceipt {
        algorithm: sampler::ALGORITHM.into(),
        task_id: manifest.task_id.clone(),
        seed: a.seed.clone(),
        sampler_seed: sampler_seed.clone(),
        manifest_text: manifest.text(),
        manifest_digest: digest.clone(),
        strata: strata
            .iter()
            .zip(&manifest.strata)
            .map(|(st, spec)| pb::JointReceiptStratum {
                risk_class: credit_risk::server::service::classification::class_pb(spec.class),
                population: st.population,
                k: st.k,
                selected: st
                    .selected
                    .iter()
                    .map(|x| pb::JointSelected {
                        instance: manifest.participants[x.participant].instance.clone(),
                        uscc: x.id.clone(),
                        ticket: x.ticket.as_string(),
                    })
                    .collect(),
                selection_digest: st.selection_digest(&manifest),
            })
            .collect(),
    };
    for (k, st) in receipt.strata.iter().enumerate() {
        eprintln!(
            "stratum {k} (class {}): {} of {} drawn",
            class_letter(st.risk_class),
            st.k,
            st.population
        );
    }
    if let Some(dir) = &a.population_dir {
        for i in instances.iter_mut() {
            let sub = dir.join(&i.name);
            std::fs::create_dir_all(&sub)?;
            for k in 0..manifest.strata.len() {
                let mut s = i
                    .client
                    .list_population(pb::ListPopulationRequest {
                        plan_id: i.plan_id,
                        stratum: k as u32,
                        exempted: false,
                        check_item: String::new(),
                    })
                    .await
                    .map_err(at(&i.name))?
                    .into_inner();
                let path = sub.join(format!("stratum-{k}.txt"));
                super::draw::write_population(&mut s, &path).await?;
            }
        }
        eprintln!("populations written under {}", dir.display());
    }
    let json = proto_json::to_json(&receipt, "creditrisk.v1.JointReceipt")?;
    match &a.out {
        Some(path) => {
            std::fs::write(path, &json).map_err(|e| format!("{}: {e}", path.display()))?;
            eprintln!("joint receipt written to {}", path.display());
        }
        None => println!("{json}"),
    }
    Ok(())
}

/// A plan's strata as `CLASS:SIZE,…` (each size as its joint stratum takes it).
fn strata_text(p: &pb::DrawPlan) -> String {
    use pb::joint_stratum_spec::Size;
    p.strata
        .iter()
        .map(|s| {
            let class = class_letter(s.risk_class);
            match stratum_spec_pb(s).size {
                Some(Size::Count(n)) => format!("{class}:{n}"),
                Some(Size::Ratio(r)) => format!("{class}:{r:?}"),
                None => format!("{class}:-"),
            }
        })
        .collect::<Vec<_>>()
        .join(",")
}

/// Options of `credit-risk verify-joint`.
#[derive(clap::Args, Debug)]
pub struct VerifyArgs {
    /// The joint receipt, as `credit-risk joint-draw --out` wrote it.
    receipt: PathBuf,
    /// The instances' populations: NAME/stratum-I.txt, one USCC per line (as
    /// `joint-draw --population-dir` writes them).
    #[arg(long)]
    population_dir: PathBuf,
}

/// Runs `credit-risk verify-joint`: offline, from the receipt and the population lists
/// alone; fails naming the first instance, stratum or entry that does not agree.
pub fn verify(a: VerifyArgs) -> CliResult {
    let text =
        std::fs::read_to_string(&a.receipt).map_err(|e| format!("{}: {e}", a.receipt.display()))?;
    let r: pb::JointReceipt = proto_json::from_json(
        &text,
        "creditrisk.v1.JointReceipt",
        &a.receipt.display().to_string(),
    )?;
    check_joint(&r, &a.population_dir)?;
    println!(
        "joint receipt {} verified: {} strata",
        r.manifest_digest,
        r.strata.len()
    );
    Ok(())
}

/// The committed population digests of the manifest text: (instance, stratum) → (size,
/// digest).
type Commitments = BTreeMap<(String, usize), (u64, String)>;

fn commitments(text: &str) -> Result<Commitments, CliError> {
    let mut out = BTreeMap::new();
    for line in text.lines() {
        let f: Vec<&str> = line.split(' ').collect();
        if let ["population", name, i, n, digest] = f.as_slice() {
            out.insert(
                (name.to_string(), i.parse()?),
                (n.parse()?, digest.to_string()),
            );
        }
    }
    Ok(out)
}

/// The offline re-check of a joint receipt.
pub fn check_joint(r: &pb::JointReceipt, dir: &Path) -> Result<(), CliError> {
    use sha2::{Digest, Sha256};
    let digest = hex::encode(Sha256::digest(r.manifest_text.as_bytes()));
    if digest != r.manifest_digest {
        return Err(format!(
            "manifest_text hashes to {digest}, not manifest_digest {}",
            r.manifest_digest
        )
        .into());
    }
    if sampler::draw_seed(&r.seed, &r.task_id) != r.sampler_seed {
        return Err("sampler_seed is not seed + \":\" + task_id".into());
    }
    let committed = commitments(&r.manifest_text)?;
    // The task and the strata as the manifest commits them: the receipt must draw
    // exactly these, each k recomputed from the union.
    let mut task = None;
    let mut specs: Vec<(String, Option<u64>, Option<f64>)> = Vec::new();
    for line in r.manifest_text.lines() {
        if let Some(t) = line.strip_prefix("task_id ") {
            task = Some(t.to_string());
        }
        let f: Vec<&str> = line.split(' ').collect();
        match f.as_slice() {
            ["stratum", _, class, "count", n] => {
                specs.push((class.to_string(), Some(n.parse()?), None))
            }
            ["stratum", _, class, "ratio", x] => {
                specs.push((class.to_string(), None, Some(x.parse()?)))
            }
            _ => {}
        }
    }
    if task.as_deref() != Some(r.task_id.as_str()) {
        return Err(format!("task_id: {:?}, the manifest commits {task:?}", r.task_id).into());
    }
    if specs.len() != r.strata.len() {
        return Err(format!(
            "strata: {} in the receipt, the manifest commits {}",
            r.strata.len(),
            specs.len()
        )
        .into());
    }
    let s = Sampler::new(&r.sampler_seed);
    for (k, st) in r.strata.iter().enumerate() {
        let (class, count, ratio) = &specs[k];
        if class_letter(st.risk_class) != class.as_str() {
            return Err(format!(
                "strata[{k}].risk_class: {}, the manifest commits {class}",
                class_letter(st.risk_class)
            )
            .into());
        }
        let mut union: Vec<String> = Vec::new();
        let mut owner: BTreeMap<String, String> = BTreeMap::new();
        for ((name, i), (n, want)) in &committed {
            if *i != k {
                continue;
            }
            let path = dir.join(name).join(format!("stratum-{k}.txt"));
            let text = std::fs::read_to_string(&path)
                .map_err(|e| format!("{}: {e} (instance {name}, stratum {k})", path.display()))?;
            let mut ids: Vec<&str> = text.split_whitespace().collect();
            ids.sort_unstable();
            if ids.len() as u64 != *n || population_digest(ids.iter().copied()) != *want {
                return Err(format!(
                    "instance {name}: stratum {k}: {} does not hash to the committed digest {want}",
                    path.display()
                )
                .into());
            }
            for id in ids {
                if let Some(other) = owner.insert(id.to_string(), name.clone()) {
                    return Err(format!(
                        "stratum {k}: enterprise {id} is in the populations of instances {other} and {name}"
                    )
                    .into());
                }
                union.push(id.to_string());
            }
        }
        if st.population != union.len() as u64 {
            return Err(format!(
                "strata[{k}].population: {}, the lists hold {}",
                st.population,
                union.len()
            )
            .into());
        }
        let want_k = sampler::stratum_size(union.len(), *count, *ratio) as u64;
        if st.k != want_k {
            return Err(format!(
                "strata[{k}].k: {}, the manifest's stratum over the union of {} gives {want_k}",
                st.k,
                union.len()
            )
            .into());
        }
        let ours: Vec<(String, String, String)> = s
            .sample(union.iter().map(String::as_str), want_k as usize)
            .into_iter()
            .map(|(t, id)| (owner[id].clone(), id.to_string(), t.as_string()))
            .collect();
        let theirs: Vec<(String, String, String)> = st
            .selected
            .iter()
            .map(|x| (x.instance.clone(), x.uscc.clone(), x.ticket.clone()))
            .collect();
        if ours != theirs {
            let at = ours
                .iter()
                .zip(&theirs)
                .position(|(a, b)| a != b)
                .unwrap_or(ours.len().min(theirs.len()));
            return Err(format!(
                "strata[{k}].selected[{at}]: the draw over the union of {} gives {:?}",
                union.len(),
                ours.get(at)
            )
            .into());
        }
        let lines: Vec<String> = theirs
            .iter()
            .map(|(i, u, t)| format!("{i} {u} {t}"))
            .collect();
        let digest = hex::encode(Sha256::digest(lines.join("\n").as_bytes()));
        if digest != st.selection_digest {
            return Err(format!(
                "strata[{k}].selection_digest: {}, the selection hashes to {digest}",
                st.selection_digest
            )
            .into());
        }
        eprintln!(
            "stratum {k}: {} instances' populations match their committed digests; the draw over the union of {} gives the same {}",
            committed.keys().filter(|(_, i)| *i == k).count(),
            union.len(),
            st.k
        );
    }
    Ok(())
}
