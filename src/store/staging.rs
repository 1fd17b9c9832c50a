//! An import staged in key order (暂存排序): the records of an `ImportRecords` stream,
//! sorted by USCC — the dossier key — with each enterprise's records in stream order,
//! spilled to sorted runs under the store's `staging/` directory when the stream is
//! larger than one run, and merged back into the writer's chunks.
//!
//! Why: the stream's order is random in key order (a USCC starts with the registration
//! authority, the category and the district), so applying it as it arrives makes every
//! chunk's few thousand dossiers land in as many leaves of an ever larger tree — a
//! read-modify-write of a page that is usually not cached. In key order each dossier
//! goes after the previous one: the same pages, in sled's cache, once (BENCHMARKS.md,
//! "Import in key order").
//!
//! The order changes which of two conflicting records of *different* enterprises wins
//! (the same penalty decision number: the lower USCC's is stored, the other refused);
//! an enterprise's own records apply in the order they were sent, as before. Nothing is
//! stored before the stream has ended, so a stream that breaks stores nothing.

use std::{
    cmp::Reverse,
    collections::BinaryHeap,
    fs::File,
    io::{BufReader, BufWriter, Read, Write},
    path::{Path, PathBuf},
};

use crate::error::{Error, Result};

use super::ImportItem;

/// Name of the directory under the data directory that holds staged runs.
pub const STAGING_DIR: &str = "staging";

/// The largest staged record: above any gRPC message the server accepts, so a length
/// beyond it in a run is damage, not data.
const MAX_RECORD_BYTES: u32 = 1 << 30;

/// One staged record: its stream index and the record.
pub type Staged = (u64, ImportItem);

/// Sort key of a staged record: the dossier it belongs to, then its stream index.
type Order = ([u8; 18], u64);

fn order(s: &Staged) -> Order {
    (*s.1.uscc().as_bytes(), s.0)
}

/// A sorted run written to disk: the file and how many records it holds.
struct Run {
    path: PathBuf,
    len: u64,
}

/// The records of one import, staged. [`push`](Self::push) buffers records; a full
/// buffer is returned to the caller to write ([`Spill::write`]) on a blocking thread;
/// [`finish`](Self::finish) hands back the sorted records.
pub struct ImportStaging {
    /// Where this import's own directory is made, at its first spill.
    base: PathBuf,
    /// This import's own directory (removed when the staging is dropped); none until
    /// the first spill, so an import that fits in memory touches no file.
    dir: Option<tempfile::TempDir>,
    buffer: Vec<Staged>,
    run_records: usize,
    runs: Vec<Run>,
}

/// A buffer to sort and write as the run at `path`.
pub struct Spill {
    records: Vec<Staged>,
    path: PathBuf,
}

impl ImportStaging {
    /// A staging area for one import under `data_dir/staging`, spilling every
    /// `run_records` records.
    pub fn new(data_dir: &Path, run_records: usize) -> ImportStaging {
        ImportStaging {
            base: data_dir.join(STAGING_DIR),
            dir: None,
            buffer: Vec::new(),
            run_records: run_records.max(1),
            runs: Vec::new(),
        }
    }

    /// Adds a record; returns a full buffer to spill (the caller runs [`Spill::write`]
    /// off the async runtime, and waits for it before [`finish`](Self::finish)).
    pub fn push(&mut self, index: u64, item: ImportItem) -> Result<Option<Spill>> {
        if self.buffer.capacity() == 0 {
            self.buffer.reserve(self.run_records.min(1 << 16));
        }
        self.buffer.push((index, item));
        if self.buffer.len() < self.run_records {
            return Ok(None);
        }
        self.spill()
    }

    /// Records buffered in memory (not yet spilled).
    pub fn buffered(&self) -> usize {
        self.buffer.len()
    }

    /// The buffer as a run to spill now, whatever its size (none if it is empty): when
    /// the memory all imports share is taken.
    pub fn spill(&mut self) -> Result<Option<Spill>> {
        if self.buffer.is_empty() {
            return Ok(None);
        }
        let dir = match &self.dir {
            Some(d) => d.path(),
            None => {
                let base = &self.base;
                std::fs::create_dir_all(base).map_err(|e| io("creating", base, e))?;
                let d = tempfile::Builder::new()
                    .prefix("import-")
                    .tempdir_in(base)
                    .map_err(|e| io("creating a directory in", base, e))?;
                self.dir.insert(d).path()
            }
        };
        let path = dir.join(format!("run-{:06}", self.runs.len()));
        self.runs.push(Run {
            path: path.clone(),
            len: self.buffer.len() as u64,
        });
        Ok(Some(Spill {
            records: std::mem::take(&mut self.buffer),
            path,
        }))
    }

    /// Runs written so far.
    pub fn runs(&self) -> usize {
        self.runs.len()
    }

    /// Every staged record in key order (blocking: reads the runs). The staging's files
    /// are removed when the returned iterator is dropped.
    pub fn finish(mut self) -> Result<Sorted> {
        let mut rest = std::mem::take(&mut self.buffer);
        rest.sort_unstable_by_key(order);
        let Some(dir) = self.dir.take().filter(|_| !self.runs.is_empty()) else {
            return Ok(Sorted {
                _dir: None,
                source: Source::Memory(rest.into_iter()),
                peeked: None,
            });
        };
        let mut readers = Vec::with_capacity(self.runs.len() + 1);
        for r in &self.runs {
            let f = File::open(&r.path).map_err(|e| io("opening", &r.path, e))?;
            readers.push(RunReader {
                path: r.path.clone(),
                file: Box::new(BufReader::with_capacity(256 * 1024, f)),
                left: r.len,
                memory: Vec::new().into_iter(),
                bytes: Vec::new(),
            });
        }
        readers.push(RunReader {
            path: dir.path().join("in-memory"),
            file: Box::new(std::io::empty()),
            left: 0,
            memory: rest.into_iter(),
            bytes: Vec::new(),
        });
        let mut heap = BinaryHeap::with_capacity(readers.len());
        let mut heads = Vec::with_capacity(readers.len());
        for (i, r) in readers.iter_mut().enumerate() {
            let head = r.next_record()?;
            if let Some(s) = &head {
                heap.push(Reverse((order(s), i)));
            }
            heads.push(head);
        }
        Ok(Sorted {
            _dir: Some(dir),
            source: Source::Merge {
                readers,
                heads,
                heap,
            },
            peeked: None,
        })
    }
}

impl Spill {
    /// Records in it.
    pub fn len(&self) -> usize {
        self.records.len()
    }

    /// Whether it holds no record (never: an empty buffer is not spilled).
    pub fn is_empty(&self) -> bool {
        self.records.is_empty()
    }

    /// Sorts the buffer and writes it as a run.
    pub fn write(mut self) -> Result<()> {
        self.records.sort_unstable_by_key(order);
        let f = File::create(&self.path).map_err(|e| io("creating", &self.path, e))?;
        let mut w = BufWriter::with_capacity(256 * 1024, f);
        let mut bytes = Vec::new();
        for s in &self.records {
            bytes.clear();
            bytes = postcard::to_extend(s, bytes)
                .map_err(|e| Error::Unavailable(format!("staging an import record: {e}")))?;
            // A record came in one message, so it is far below the cap.
            let len = u32::try_from(bytes.len())
                .ok()
                .filter(|n| *n <= MAX_RECORD_BYTES)
                .ok_or_else(|| {
                    Error::ResourceExhausted(format!(
                        "an import record of {} bytes to stage",
                        bytes.len()
                    ))
                })?;
            w.write_all(&len.to_le_bytes())
                .and_then(|()| w.write_all(&bytes))
                .map_err(|e| io("writing", &self.path, e))?;
        }
        w.flush().map_err(|e| io("writing", &self.path, e))
    }
}

/// One run being merged.
struct RunReader {
    path: PathBuf,
    file: Box<dyn Read + Send>,
    left: u64,
    /// The records still in memory (the last, unspilled buffer).
    memory: std::vec::IntoIter<Staged>,
    /// The last record's bytes (one allocation per run, not per record).
    bytes: Vec<u8>,
}

impl RunReader {
    fn next_record(&mut self) -> Result<Option<Staged>> {
        if let Some(s) = self.memory.next() {
            return Ok(Some(s));
        }
        if self.left == 0 {
            return Ok(None);
        }
        self.left -= 1;
        let mut len = [0u8; 4];
        self.file
            .read_exact(&mut len)
            .map_err(|e| io("reading", &self.path, e))?;
        let len = u32::from_le_bytes(len);
        if len > MAX_RECORD_BYTES {
            return Err(Error::Corrupt(format!(
                "{}: a staged record of {len} bytes",
                self.path.display()
            )));
        }
        self.bytes.resize(len as usize, 0);
        self.file
            .read_exact(&mut self.bytes)
            .map_err(|e| io("reading", &self.path, e))?;
        postcard::from_bytes(&self.bytes)
            .map(Some)
            .map_err(|e| Error::Corrupt(format!("{}: {e}", self.path.display())))
    }
}

enum Source {
    Memory(std::vec::IntoIter<Staged>),
    Merge {
        readers: Vec<RunReader>,
        heads: Vec<Option<Staged>>,
        heap: BinaryHeap<Reverse<(Order, usize)>>,
    },
}

/// The staged records in key order.
pub struct Sorted {
    _dir: Option<tempfile::TempDir>,
    source: Source,
    /// A record read past the end of the last chunk.
    peeked: Option<Staged>,
}

impl Sorted {
    /// The next record in key order.
    pub fn next_record(&mut self) -> Result<Option<Staged>> {
        match &mut self.source {
            Source::Memory(it) => Ok(it.next()),
            Source::Merge {
                readers,
                heads,
                heap,
            } => {
                let Some(Reverse((_, i))) = heap.pop() else {
                    return Ok(None);
                };
                let next = readers[i].next_record()?;
                if let Some(s) = &next {
                    heap.push(Reverse((order(s), i)));
                }
                Ok(std::mem::replace(&mut heads[i], next))
            }
        }
    }

    /// The next writer chunk: at least `target` records (fewer at the end), cut between
    /// two enterprises so that each dossier is written once — unless one enterprise
    /// alone has more than `4 × target` records. Empty at the end.
    pub fn next_chunk(&mut self, target: usize) -> Result<Vec<Staged>> {
        let mut chunk: Vec<Staged> = Vec::with_capacity(target);
        while let Some(s) = match self.peeked.take() {
            Some(s) => Some(s),
            None => self.next_record()?,
        } {
            if chunk.len() >= target {
                let same = chunk.last().is_some_and(|l| l.1.uscc() == s.1.uscc());
                if !same || chunk.len() >= 4 * target {
                    self.peeked = Some(s);
                    break;
                }
            }
            chunk.push(s);
        }
        Ok(chunk)
    }
}

fn io(doing: &str, path: &Path, e: std::io::Error) -> Error {
    let what = format!("staging an import: {doing} {}: {e}", path.display());
    if e.kind() == std::io::ErrorKind::StorageFull {
        Error::ResourceExhausted(what)
    } else {
        Error::Unavailable(what)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::{
        fixtures::{day, enterprise, penalty},
        Uscc,
    };
    use proptest::prelude::*;

    /// A record as the test sees it come back: stream index and enterprise.
    type Seen = (u64, Uscc);

    /// One of a few enterprises: the 8-digit body from `n`.
    fn uscc(n: u8) -> Uscc {
        let body = format!("{:08}", n);
        let b: [u8; 8] = body.as_bytes().try_into().expect("8 digits");
        Uscc::assemble(b"91310115", &b).expect("uscc")
    }

    /// Record `i` of a stream: an enterprise or a penalty of enterprise `n`.
    fn item(n: u8, i: u64) -> ImportItem {
        if i.is_multiple_of(3) {
            let mut e = enterprise("2020-01-01");
            e.uscc = uscc(n);
            ImportItem::Enterprise(e)
        } else {
            let mut p = penalty(&format!("D{i}"), day("2024-01-01"));
            p.uscc = uscc(n);
            ImportItem::Penalty(p)
        }
    }

    /// Stages `enterprises` (one entry per record, its enterprise) with runs of
    /// `run` records, spilling as the service does; returns the records in the
    /// order `next_chunk(target)` yields them, and the chunks' lengths.
    fn staged(enterprises: &[u8], run: usize, target: usize) -> (Vec<Seen>, Vec<Vec<Seen>>) {
        let dir = tempfile::tempdir().expect("dir");
        let mut s = ImportStaging::new(dir.path(), run);
        for (i, n) in enterprises.iter().enumerate() {
            if let Some(spill) = s.push(i as u64, item(*n, i as u64)).expect("push") {
                spill.write().expect("spill");
            }
        }
        assert_eq!(s.runs(), enterprises.len() / run);
        let mut sorted = s.finish().expect("finish");
        let mut chunks = Vec::new();
        loop {
            let c = sorted.next_chunk(target).expect("chunk");
            if c.is_empty() {
                break;
            }
            chunks.push(c.iter().map(|(i, x)| (*i, *x.uscc())).collect::<Vec<_>>());
        }
        (chunks.concat(), chunks)
    }

    proptest! {
        /// Spilled or not, the records come back sorted by USCC, each enterprise's in
        /// stream order, every one once; chunks are cut only between enterprises (or
        /// past four times the target).
        #[test]
        fn staged_records_come_back_in_key_order(
            enterprises in proptest::collection::vec(0u8..12, 0..300),
            run in 1usize..64,
            target in 1usize..20,
        ) {
            let (all, chunks) = staged(&enterprises, run, target);
            let mut expected: Vec<(u64, Uscc)> = enterprises
                .iter()
                .enumerate()
                .map(|(i, n)| (i as u64, uscc(*n)))
                .collect();
            expected.sort_by_key(|(_, u)| *u.as_bytes());
            prop_assert_eq!(&all, &expected);
            for w in chunks.windows(2) {
                let (a, b) = (&w[0], &w[1]);
                prop_assert!(a.len() >= target);
                let same = a.last().map(|x| x.1) == b.first().map(|x| x.1);
                prop_assert!(!same || a.len() >= 4 * target, "cut inside an enterprise");
            }
        }
    }

    #[test]
    fn a_finished_staging_leaves_no_files() {
        let dir = tempfile::tempdir().expect("dir");
        let mut s = ImportStaging::new(dir.path(), 2);
        assert!(
            !dir.path().join(STAGING_DIR).exists(),
            "nothing on disk yet"
        );
        for i in 0..5u64 {
            if let Some(spill) = s.push(i, item((5 - i) as u8, i)).expect("push") {
                spill.write().expect("spill");
            }
        }
        let staged = dir.path().join(STAGING_DIR);
        assert_eq!(std::fs::read_dir(&staged).expect("staging dir").count(), 1);
        let mut sorted = s.finish().expect("finish");
        let first = sorted.next_record().expect("read").expect("a record");
        assert_eq!(first.0, 4, "the lowest USCC first");
        drop(sorted);
        assert_eq!(std::fs::read_dir(&staged).expect("staging dir").count(), 0);
    }
}
