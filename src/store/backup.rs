//! Backup and restore, without stopping the writer. A backup is a *fuzzy scan plus a
//! catch-up*: the writer starts noting every key it (or the scoring job) writes
//! ([`Tracker`]), the trees are scanned on a blocking thread while writes go on, then one
//! short writer job reads the current value of every noted key and stops noting. The scan
//! gave every key not written meanwhile its value at the end; the catch-up gives every
//! written key its value (or absence) at that same moment — so the backup is the store
//! exactly as it was between two commits at the catch-up, and writers wait only for the
//! catch-up's reads (proportional to the writes made during the backup).
//!
//! Format `CRBK2\n`: per tree `T name_len(u32) name`, per entry `K key_len(u32) key
//! value_len(u32) value`; then the catch-up as a second section of the same tree, whose
//! `K` entries replace scanned values and `D key_len(u32) key` entries remove keys; then
//! `E` and the SHA-256 of every byte before it. Restore applies the sections in order;
//! it also reads `CRBK1` (the earlier format: one section per tree, no `D`).

use std::{
    fs::File,
    io::{BufReader, BufWriter, Read, Write},
    path::Path,
};

use sha2::{Digest, Sha256};

use crate::error::{Error, Result};

const MAGIC: &[u8] = b"CRBK2\n";
const MAGIC_V1: &[u8] = b"CRBK1\n";
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

/// The keys written while a backup runs (`None` when none runs).
#[derive(Default)]
pub struct Tracker(std::sync::Mutex<Option<std::collections::HashSet<Vec<u8>>>>);

impl Tracker {
    fn lock(
        &self,
    ) -> Result<std::sync::MutexGuard<'_, Option<std::collections::HashSet<Vec<u8>>>>> {
        self.0
            .lock()
            .map_err(|_| Error::Unavailable("backup tracker poisoned".into()))
    }

    /// Whether a backup runs (writers then note their keys). A poisoned lock counts as
    /// running, so the writer's `note` reports the error instead of silently skipping
    /// keys a backup needs.
    pub fn active(&self) -> bool {
        self.0.lock().map(|g| g.is_some()).unwrap_or(true)
    }

    /// Starts noting; FAILED_PRECONDITION if a backup runs already.
    pub fn begin(&self) -> Result<()> {
        let mut g = self.lock()?;
        if g.is_some() {
            return Err(Error::FailedPrecondition(
                "a backup is already running; try again when it is done".into(),
            ));
        }
        *g = Some(Default::default());
        Ok(())
    }

    /// Notes keys about to be written (a no-op when no backup runs).
    pub fn note<I: IntoIterator<Item = Vec<u8>>>(&self, keys: I) -> Result<()> {
        if let Some(set) = self.lock()?.as_mut() {
            set.extend(keys);
        }
        Ok(())
    }

    /// Stops noting and returns the keys noted, sorted.
    pub fn finish(&self) -> Result<Vec<Vec<u8>>> {
        let mut keys: Vec<Vec<u8>> = self
            .lock()?
            .take()
            .unwrap_or_default()
            .into_iter()
            .collect();
        keys.sort();
        Ok(keys)
    }
}

/// A backup file being written.
pub struct BackupWriter {
    w: HashingWriter<BufWriter<File>>,
    entries: u64,
    path: std::path::PathBuf,
}

impl BackupWriter {
    /// Creates `path` (a new file; an existing one is never overwritten).
    pub fn create(path: &Path) -> Result<BackupWriter> {
        let f = File::options()
            .write(true)
            .create_new(true)
            .open(path)
            .map_err(|e| Error::invalid("path", format!("{}: {e}", path.display())))?;
        let mut w = BackupWriter {
            w: HashingWriter {
                inner: BufWriter::new(f),
                hash: Sha256::new(),
                bytes: 0,
            },
            entries: 0,
            path: path.to_path_buf(),
        };
        w.w.put(MAGIC)?;
        Ok(w)
    }

    fn section(&mut self, name: &str) -> Result<()> {
        self.w.put(b"T")?;
        self.w.put(&(name.len() as u32).to_be_bytes())?;
        self.w.put(name.as_bytes())
    }

    fn entry(&mut self, k: &[u8], v: Option<&[u8]>) -> Result<()> {
        match v {
            Some(v) => {
                self.w.put(b"K")?;
                self.w.put(&(k.len() as u32).to_be_bytes())?;
                self.w.put(k)?;
                self.w.put(&(v.len() as u32).to_be_bytes())?;
                self.w.put(v)?;
            }
            None => {
                self.w.put(b"D")?;
                self.w.put(&(k.len() as u32).to_be_bytes())?;
                self.w.put(k)?;
            }
        }
        self.entries += 1;
        Ok(())
    }

    /// Scans every tree of `db` (while writes go on).
    pub fn scan(&mut self, db: &sled::Db) -> Result<()> {
        for name in TREES {
            let tree = db.open_tree(name)?;
            self.section(name)?;
            for kv in tree.iter() {
                let (k, v) = kv?;
                self.entry(&k, Some(&v))?;
            }
        }
        Ok(())
    }

    /// The catch-up of tree `name`: each noted key's value at the end (`None`: absent).
    pub fn catch_up(&mut self, name: &str, items: &[(Vec<u8>, Option<Vec<u8>>)]) -> Result<()> {
        self.section(name)?;
        for (k, v) in items {
            self.entry(k, v.as_deref())?;
        }
        Ok(())
    }

    /// Ends the file with its checksum and syncs it.
    pub fn finish(mut self) -> Result<BackupSummary> {
        self.w.put(b"E")?;
        let digest: [u8; 32] = self.w.hash.clone().finalize().into();
        let mut inner = self.w.inner;
        inner
            .write_all(&digest)
            .map_err(|e| Error::Unavailable(format!("backup write: {e}")))?;
        inner
            .flush()
            .map_err(|e| Error::Unavailable(format!("backup flush: {e}")))?;
        inner
            .get_ref()
            .sync_all()
            .map_err(|e| Error::Unavailable(format!("backup sync: {e}")))?;
        Ok(BackupSummary {
            entries: self.entries,
            bytes: self.w.bytes + 32,
            sha256: hex::encode(digest),
        })
    }

    /// Removes the unfinished file (after an error).
    pub fn discard(self) {
        let path = self.path.clone();
        drop(self);
        let _ = std::fs::remove_file(path);
    }
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
    let magic = read_exact(&mut r, MAGIC.len(), &mut h)?;
    let v2 = magic == MAGIC;
    if !v2 && magic != MAGIC_V1 {
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
            b'D' if v2 => {
                let n = read_u32(&mut r, &mut h)?;
                let k = read_exact(&mut r, n, &mut h)?;
                batch.remove(k);
                pending += 1;
                entries += 1;
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
