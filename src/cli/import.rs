//! `credit-risk import`: streams a generated file into a running server (ImportRecords)
//! with a progress bar.

use std::{
    fs::File,
    io::{BufReader, Read},
    path::{Path, PathBuf},
    sync::{
        atomic::{AtomicU64, Ordering},
        Arc,
    },
    time::Instant,
};

use credit_risk::{
    client::{channel, TokenInterceptor},
    proto::{
        registry_service_client::RegistryServiceClient, ImportRecordsRequest, ImportRecordsResponse,
    },
    synthetic::RecordReader,
};
use tokio_stream::wrappers::ReceiverStream;

use super::{progress_bar, runtime, CliError, CliResult, ServerArg};

/// Options of `credit-risk import`.
#[derive(clap::Args, Debug)]
pub struct Args {
    /// File written by `generate`.
    file: PathBuf,
    #[command(flatten)]
    server: ServerArg,
    /// Records per stream message.
    #[arg(long, default_value_t = 2000)]
    chunk: usize,
    /// Print the summary as JSON.
    #[arg(long)]
    json: bool,
}

/// Runs `credit-risk import`: exit status 3 when the server refused some records (the
/// summary lists them).
pub fn run(a: Args) -> CliResult {
    let rt = runtime(0)?;
    let (summary, secs) = rt.block_on(import_file(&a.server.server, &a.file, a.chunk))?;
    let rate = summary.received as f64 / secs.max(1e-9);
    if a.json {
        println!(
            "{}",
            serde_json::json!({
                "received": summary.received,
                "stored": summary.stored,
                "unchanged": summary.unchanged,
                "rejected": summary.rejected,
                "seconds": secs,
                "records_per_second": rate,
                "rejections": summary.rejections.iter().map(|r| serde_json::json!({
                    "index": r.index, "kind": r.kind, "key": r.key, "code": r.code, "reason": r.reason
                })).collect::<Vec<_>>(),
            })
        );
    } else {
        println!(
            "received {} stored {} unchanged {} rejected {} in {secs:.1} s ({rate:.0} records/s)",
            summary.received, summary.stored, summary.unchanged, summary.rejected
        );
        for r in summary.rejections.iter().take(20) {
            println!(
                "  #{} {} {} {}: {}",
                r.index, r.kind, r.key, r.code, r.reason
            );
        }
        if summary.rejected > 20 {
            println!("  … {} more (use --json for all)", summary.rejected - 20);
        }
    }
    if summary.rejected > 0 {
        return Err(Box::new(super::PartlyRefused(format!(
            "{} of {} records refused (listed above); the others were imported",
            summary.rejected, summary.received
        ))));
    }
    Ok(())
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
) -> Result<(ImportRecordsResponse, f64), CliError> {
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
    let mut client =
        RegistryServiceClient::with_interceptor(channel(addr).await?, TokenInterceptor::from_env())
            .max_encoding_message_size(64 << 20)
            .max_decoding_message_size(256 << 20);
    let (tx, rx) = tokio::sync::mpsc::channel::<ImportRecordsRequest>(16);
    let chunk = chunk.max(1);
    let name = path.display().to_string();
    let producer = tokio::task::spawn_blocking(move || -> Result<(), String> {
        let mut records = Vec::with_capacity(chunk);
        for (n, r) in reader.enumerate() {
            records.push(r.map_err(|e| {
                format!(
                    "{name}: record {}: not a stream of length-delimited ImportRecord messages as `credit-risk generate` writes ({e})",
                    n + 1
                )
            })?);
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
    // A refusal of the whole call (a role or region that may not import) comes first:
    // the producer then only saw its stream closed. A file that cannot be read ends the
    // stream normally, so the server answers and the producer's error follows.
    let resp = resp?;
    producer.await?.map_err(|e| -> CliError { e.into() })?;
    Ok((resp.into_inner(), start.elapsed().as_secs_f64()))
}
