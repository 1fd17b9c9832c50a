//! `serve --demo`: fills an empty store with a small generated city so a newcomer has
//! something to query.

use crate::{
    error::{Error, Result},
    server::service::registry::parse_import,
    store::{op, Store},
    synthetic::{generate, Profile, RecordReader},
};

/// Loads `enterprises` generated entities (seed 1) unless the store already has data.
/// Returns the number of records stored.
pub async fn load(store: &Store, enterprises: u64) -> Result<u64> {
    load_seeded(store, enterprises, 1).await
}

/// As [`load`], with the generator's `seed` (another seed: other enterprises, with
/// other identifiers, e.g. a second city for a federated joint draw).
pub async fn load_seeded(store: &Store, enterprises: u64, seed: u64) -> Result<u64> {
    if store.has_enterprises()? {
        return Ok(0);
    }
    let profile = Profile {
        enterprises,
        seed,
        as_of: store.today(),
    };
    let mut bytes = Vec::new();
    generate(&profile, &mut bytes, |_| {}).map_err(|e| Error::Unavailable(e.to_string()))?;
    let mut stored = 0;
    let mut items = Vec::new();
    for (i, rec) in RecordReader::new(bytes.as_slice()).enumerate() {
        let rec = rec.map_err(|e| Error::Corrupt(e.to_string()))?;
        if let Ok(item) = parse_import(rec) {
            items.push((i as u64, item));
        }
        if items.len() >= 4096 {
            stored += write(store, std::mem::take(&mut items)).await?;
        }
    }
    stored += write(store, items).await?;
    // An inspector directory: three inspectors per district.
    let districts = [
        "310101", "310104", "310105", "310106", "310107", "310109", "310110", "310112", "310113",
        "310114", "310115", "310116", "310117", "310118", "310120", "310151",
    ];
    for (d, region) in districts.iter().enumerate() {
        for n in 0..3 {
            let home_region = crate::domain::RegionCode::parse("region", region)?;
            let x = crate::domain::spotcheck::Inspector {
                id: format!("SH-{region}-{n}"),
                name: format!("检查员{}", d * 3 + n + 1),
                certificate_number: format!("沪执{:06}", d * 3 + n + 1),
                home_region,
                fields: vec!["general".into()],
                active: true,
                recorded_at_ms: 0,
                department: String::new(),
            };
            store.write(op::UpsertInspector(x)).await?;
        }
        // One inspector per district for every other department of the check-item
        // catalogue, so joint tasks can be drawn on the demo data.
        let catalogue = &store.options().check_items;
        for (k, dept) in catalogue
            .departments
            .iter()
            .filter(|x| x.code != catalogue.default_department)
            .enumerate()
        {
            let x = crate::domain::spotcheck::Inspector {
                id: format!("SH-{region}-{}", dept.code),
                name: format!("{}检查员{}", dept.name, d + 1),
                certificate_number: format!("沪执{:02}{:04}", k + 1, d + 1),
                home_region: crate::domain::RegionCode::parse("region", region)?,
                fields: vec![dept.code.clone()],
                active: true,
                recorded_at_ms: 0,
                department: dept.code.clone(),
            };
            store.write(op::UpsertInspector(x)).await?;
        }
    }
    Ok(stored)
}

async fn write(store: &Store, items: Vec<(u64, crate::store::ImportItem)>) -> Result<u64> {
    Ok(store.write(op::Import(items)).await?.stored)
}
