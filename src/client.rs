//! Client-side commands: streaming a generated file into a running server.

use std::{
    fs::File,
    io::{BufReader, Read},
    path::Path,
    sync::{
        atomic::{AtomicU64, Ordering},
        Arc,
    },
    time::Instant,
};

use indicatif::{ProgressBar, ProgressStyle};
use tokio_stream::wrappers::ReceiverStream;

use crate::{
    generate::RecordReader,
    proto::{
        registry_service_client::RegistryServiceClient, ImportRecordsRequest, ImportRecordsResponse,
    },
};

/// Boxed error for client commands.
pub type ClientError = Box<dyn std::error::Error + Send + Sync>;

/// Normalises an address to a URL (`127.0.0.1:50051` → `http://127.0.0.1:50051`).
pub fn endpoint(addr: &str) -> String {
    if addr.starts_with("http://") || addr.starts_with("https://") {
        addr.to_string()
    } else {
        format!("http://{addr}")
    }
}

/// A progress bar on a terminal, hidden in pipes.
pub fn progress_bar(len: u64, what: &str) -> ProgressBar {
    let pb = ProgressBar::new(len);
    let style = ProgressStyle::with_template(
        "{msg} [{elapsed_precise}] {wide_bar} {percent:>3}% eta {eta}",
    )
    .unwrap_or_else(|_| ProgressStyle::default_bar());
    pb.set_style(style);
    pb.set_message(what.to_string());
    pb
}

struct Counting<R> {
    inner: R,
    read: Arc<AtomicU64>,
}

impl<R: Read> Read for Counting<R> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.read.fetch_add(n as u64, Ordering::Relaxed);
        Ok(n)
    }
}

/// Streams the records of `path` (generator format) to `ImportRecords` in chunks of
/// `chunk` records. Returns the server's summary and the elapsed seconds.
pub async fn import_file(
    addr: &str,
    path: &Path,
    chunk: usize,
) -> Result<(ImportRecordsResponse, f64), ClientError> {
    let file = File::open(path).map_err(|e| format!("{}: {e}", path.display()))?;
    let len = file.metadata()?.len();
    let read = Arc::new(AtomicU64::new(0));
    let reader = RecordReader::new(BufReader::with_capacity(
        1 << 20,
        Counting {
            inner: file,
            read: read.clone(),
        },
    ));
    let mut client = RegistryServiceClient::connect(endpoint(addr))
        .await?
        .max_encoding_message_size(64 << 20)
        .max_decoding_message_size(256 << 20);
    let (tx, rx) = tokio::sync::mpsc::channel::<ImportRecordsRequest>(16);
    let chunk = chunk.max(1);
    let producer = tokio::task::spawn_blocking(move || -> Result<(), String> {
        let mut records = Vec::with_capacity(chunk);
        for r in reader {
            records.push(r.map_err(|e| e.to_string())?);
            if records.len() >= chunk {
                let msg = ImportRecordsRequest {
                    records: std::mem::replace(&mut records, Vec::with_capacity(chunk)),
                };
                if tx.blocking_send(msg).is_err() {
                    return Err("server closed the import stream".into());
                }
            }
        }
        if !records.is_empty() && tx.blocking_send(ImportRecordsRequest { records }).is_err() {
            return Err("server closed the import stream".into());
        }
        Ok(())
    });
    let bar = progress_bar(len, "import");
    let ticker = {
        let bar = bar.clone();
        let read = read.clone();
        tokio::spawn(async move {
            loop {
                bar.set_position(read.load(Ordering::Relaxed));
                tokio::time::sleep(std::time::Duration::from_millis(200)).await;
            }
        })
    };
    let start = Instant::now();
    let resp = client.import_records(ReceiverStream::new(rx)).await;
    ticker.abort();
    bar.finish_and_clear();
    producer.await?.map_err(|e| -> ClientError { e.into() })?;
    Ok((resp?.into_inner(), start.elapsed().as_secs_f64()))
}
