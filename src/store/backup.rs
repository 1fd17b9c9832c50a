//! Backup and restore. A backup is taken by the writer thread, so no write interleaves:
//! it is a consistent snapshot of every tree at one point between two commits. Format:
//! `CRBK1\n`, then per tree `T name_len(u32) name`, per entry `K key_len(u32) key
//! value_len(u32) value`, then `E` and the SHA-256 of every byte before it.

use std::{
    fs::File,
    io::{BufReader, BufWriter, Read, Write},
    path::Path,
};

use sha2::{Digest, Sha256};

use crate::error::{Error, Result};

const MAGIC: &[u8] = b"CRBK1\n";
/// Trees a backup holds.
pub const TREES: [&str; 2] = ["meta", "registry"];

/// What a backup wrote.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct BackupSummary {
    pub entries: u64,
    pub bytes: u64,
    pub sha256: String,
}

struct HashingWriter<W: Write> {
    inner: W,
    hash: Sha256,
    bytes: u64,
}

impl<W: Write> HashingWriter<W> {
    fn put(&mut self, b: &[u8]) -> Result<()> {
        self.hash.update(b);
        self.bytes += b.len() as u64;
        self.inner
            .write_all(b)
            .map_err(|e| Error::Unavailable(format!("backup write: {e}")))
    }
}

/// Writes a backup of `db` to `path` (a new file).
pub fn write(db: &sled::Db, path: &Path) -> Result<BackupSummary> {
    let f = File::options()
        .write(true)
        .create_new(true)
        .open(path)
        .map_err(|e| Error::invalid("path", format!("{}: {e}", path.display())))?;
    let mut w = HashingWriter {
        inner: BufWriter::new(f),
        hash: Sha256::new(),
        bytes: 0,
    };
    w.put(MAGIC)?;
    let mut entries = 0u64;
    for name in TREES {
        let tree = db.open_tree(name)?;
        w.put(b"T")?;
        w.put(&(name.len() as u32).to_be_bytes())?;
        w.put(name.as_bytes())?;
        for kv in tree.iter() {
            let (k, v) = kv?;
            w.put(b"K")?;
            w.put(&(k.len() as u32).to_be_bytes())?;
            w.put(&k)?;
            w.put(&(v.len() as u32).to_be_bytes())?;
            w.put(&v)?;
            entries += 1;
        }
    }
    w.put(b"E")?;
    let digest: [u8; 32] = w.hash.clone().finalize().into();
    w.inner
        .write_all(&digest)
        .map_err(|e| Error::Unavailable(format!("backup write: {e}")))?;
    let mut inner = w.inner;
    inner
        .flush()
        .map_err(|e| Error::Unavailable(format!("backup flush: {e}")))?;
    inner
        .get_ref()
        .sync_all()
        .map_err(|e| Error::Unavailable(format!("backup sync: {e}")))?;
    Ok(BackupSummary {
        entries,
        bytes: w.bytes + 32,
        sha256: hex::encode(digest),
    })
}

fn read_exact(r: &mut impl Read, n: usize, h: &mut Sha256) -> Result<Vec<u8>> {
    let mut b = vec![0u8; n];
    r.read_exact(&mut b)
        .map_err(|e| Error::Corrupt(format!("backup truncated: {e}")))?;
    h.update(&b);
    Ok(b)
}

/// Longest key or value a backup may hold: a damaged length must not allocate gigabytes.
const MAX_ITEM: usize = 64 << 20;

fn read_u32(r: &mut impl Read, h: &mut Sha256) -> Result<usize> {
    let b = read_exact(r, 4, h)?;
    let n = u32::from_be_bytes([b[0], b[1], b[2], b[3]]) as usize;
    if n > MAX_ITEM {
        return Err(Error::Corrupt(format!(
            "backup damaged: an item of {n} bytes (at most {MAX_ITEM})"
        )));
    }
    Ok(n)
}

/// Restores a backup into `dir`, which must not hold a store. Returns the entries
/// restored; refuses a backup whose checksum does not match.
pub fn restore(backup: &Path, dir: &Path) -> Result<u64> {
    if dir.exists()
        && std::fs::read_dir(dir)
            .map_err(|e| Error::invalid("dir", e.to_string()))?
            .next()
            .is_some()
    {
        return Err(Error::invalid(
            "dir",
            format!(
                "{} is not empty: restore into a new directory",
                dir.display()
            ),
        ));
    }
    let f = File::open(backup)
        .map_err(|e| Error::invalid("backup", format!("{}: {e}", backup.display())))?;
    let r = restore_from(BufReader::new(f), dir);
    if r.is_err() {
        // Nothing half-restored is left behind.
        let _ = std::fs::remove_dir_all(dir);
    }
    r
}

fn restore_from(mut r: impl Read, dir: &Path) -> Result<u64> {
    let mut h = Sha256::new();
    if read_exact(&mut r, MAGIC.len(), &mut h)? != MAGIC {
        return Err(Error::Corrupt("not a credit-risk backup".into()));
    }
    let db = sled::Config::new().path(dir).open()?;
    let mut tree: Option<sled::Tree> = None;
    let mut entries = 0u64;
    let mut batch = sled::Batch::default();
    let mut pending = 0usize;
    loop {
        let tag = read_exact(&mut r, 1, &mut h)?;
        match tag[0] {
            b'T' => {
                if let Some(t) = &tree {
                    t.apply_batch(std::mem::take(&mut batch))?;
                    pending = 0;
                }
                let n = read_u32(&mut r, &mut h)?;
                let name = read_exact(&mut r, n, &mut h)?;
                tree = Some(db.open_tree(name)?);
            }
            b'K' => {
                let n = read_u32(&mut r, &mut h)?;
                let k = read_exact(&mut r, n, &mut h)?;
                let n = read_u32(&mut r, &mut h)?;
                let v = read_exact(&mut r, n, &mut h)?;
                batch.insert(k, v);
                pending += 1;
                entries += 1;
                if pending >= 10_000 {
                    if let Some(t) = &tree {
                        t.apply_batch(std::mem::take(&mut batch))?;
                    }
                    pending = 0;
                }
            }
            b'E' => break,
            other => return Err(Error::Corrupt(format!("bad backup tag {other}"))),
        }
    }
    if let Some(t) = &tree {
        t.apply_batch(batch)?;
    }
    let mut digest = [0u8; 32];
    r.read_exact(&mut digest)
        .map_err(|e| Error::Corrupt(format!("backup checksum missing: {e}")))?;
    let computed: [u8; 32] = h.finalize().into();
    if digest != computed {
        drop(db);
        return Err(Error::Corrupt(
            "backup checksum does not match: the file is damaged; nothing restored".into(),
        ));
    }
    db.flush()?;
    Ok(entries)
}

/// SHA-256 of every entry of each tree, for comparing stores.
pub fn checksums(db: &sled::Db) -> Result<Vec<(String, String)>> {
    let mut out = Vec::new();
    for name in TREES {
        let tree = db.open_tree(name)?;
        let mut h = Sha256::new();
        for kv in tree.iter() {
            let (k, v) = kv?;
            h.update((k.len() as u32).to_be_bytes());
            h.update(&k);
            h.update((v.len() as u32).to_be_bytes());
            h.update(&v);
        }
        out.push((name.to_string(), hex::encode(h.finalize())));
    }
    Ok(out)
}
