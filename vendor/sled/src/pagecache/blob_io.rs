use crate::pagecache::*;
use crate::*;

pub(crate) fn read_blob(
    blob_ptr: Lsn,
    config: &Config,
) -> Result<(MessageKind, Vec<u8>)> {
    let path = config.blob_path(blob_ptr);
    let f_res = std::fs::OpenOptions::new().read(true).open(&path);

    if let Err(e) = &f_res {
        debug!("failed to open file for blob read at {}: {:?}", blob_ptr, e);
    }

    let mut f = f_res?;

    let mut crc_expected_bytes = [0_u8; std::mem::size_of::<u32>()];

    if let Err(e) = f.read_exact(&mut crc_expected_bytes) {
        debug!(
            "failed to read the initial CRC bytes in the blob at {}: {:?}",
            blob_ptr, e,
        );
        return Err(e.into());
    }

    let crc_expected = arr_to_u32(&crc_expected_bytes);

    let mut kind_byte = [0_u8];

    if let Err(e) = f.read_exact(&mut kind_byte) {
        debug!(
            "failed to read the initial CRC bytes in the blob at {}: {:?}",
            blob_ptr, e,
        );
        return Err(e.into());
    }

    let mut buf = vec![];

    if let Err(e) = f.read_to_end(&mut buf) {
        debug!(
            "failed to read data after the CRC bytes in blob at {}: {:?}",
            blob_ptr, e,
        );
        return Err(e.into());
    }

    let mut hasher = crc32fast::Hasher::new();
    hasher.update(&kind_byte);
    hasher.update(&buf);
    let crc_actual = hasher.finalize();

    if crc_expected == crc_actual {
        let buf =
            if config.use_compression { maybe_decompress(buf)? } else { buf };
        Ok((MessageKind::from(kind_byte[0]), buf))
    } else {
        warn!("blob {} failed crc check!", blob_ptr);

        Err(Error::corruption(Some(DiskPtr::Blob(0, blob_ptr))))
    }
}

/// credit-risk patch (vendor/PATCHES.md) 9: writes a blob's file and returns it,
/// written but not yet synced: the caller (`IoBufs::encapsulate`) queues it for
/// `IoBufs::sync_blobs`, which syncs it before any log buffer that may name it is
/// made stable.
pub(crate) fn write_blob<T: Serialize>(
    config: &Config,
    kind: MessageKind,
    id: Lsn,
    item: &T,
) -> Result<std::fs::File> {
    let path = config.blob_path(id);
    let mut f =
        std::fs::OpenOptions::new().write(true).create_new(true).open(&path)?;

    let kind_buf = &[kind.into()];

    let mut hasher = crc32fast::Hasher::new();
    hasher.update(kind_buf);

    let data = {
        let _ = Measure::new(&M.serialize);
        item.serialize()
    };

    hasher.update(&data);
    let crc = u32_to_arr(hasher.finalize());

    io_fail!(config, "write_blob write crc");
    f.write_all(&crc)?;
    io_fail!(config, "write_blob write kind_byte");
    f.write_all(kind_buf)?;
    io_fail!(config, "write_blob write buf");
    f.write_all(&data)?;
    trace!("successfully wrote blob at {:?}", path);
    // Starts the file's writeback now (without waiting for it), so the sync
    // before its pointer is made stable mostly finds it done.
    #[cfg(target_os = "linux")]
    {
        use std::os::unix::io::AsRawFd;
        #[allow(unsafe_code)]
        let _ = unsafe {
            libc::sync_file_range(f.as_raw_fd(), 0, 0, libc::SYNC_FILE_RANGE_WRITE)
        };
    }
    Ok(f)
}

/// credit-risk patch (vendor/PATCHES.md): the files under `blobs/`, each with
/// the lsn it is named by. A name that is not an lsn is logged and skipped, as
/// sled did; sled unwrapped a name that is not UTF-8, so one such stray file
/// panicked every open.
fn blob_files(config: &Config) -> Result<Vec<(Lsn, std::path::PathBuf)>> {
    let mut out = vec![];
    for blob in std::fs::read_dir(config.get_path().join("blobs"))? {
        let path = blob?.path();
        match path.file_name().and_then(|n| n.to_str()).map(str::parse::<Lsn>) {
            Some(Ok(lsn)) => out.push((lsn, path)),
            _ => warn!("blobs directory contains unparsable path ({:?})", path),
        }
    }
    Ok(out)
}

pub(crate) fn gc_blobs(config: &Config, stable_lsn: Lsn) -> Result<()> {
    debug!("gc_blobs removing any blob with an lsn above {}", stable_lsn);

    let to_remove: Vec<_> = blob_files(config)?
        .into_iter()
        .filter(|(lsn, _)| *lsn >= stable_lsn)
        .collect();

    if !to_remove.is_empty() {
        warn!(
            "removing {} blobs that have \
             a higher lsn than our stable log: {:?}",
            to_remove.len(),
            stable_lsn
        );
    }

    for (_, path) in to_remove {
        std::fs::remove_file(&path)?;
    }

    Ok(())
}

/// credit-risk patch (vendor/PATCHES.md): removes every blob below `stable_lsn`
/// that no page points at (`referenced`), at open, before anything is written.
pub(crate) fn gc_unreferenced_blobs(
    config: &Config,
    stable_lsn: Lsn,
    referenced: &std::collections::HashSet<Lsn>,
) -> Result<()> {
    let mut removed = 0_usize;
    for (lsn, path) in blob_files(config)? {
        if lsn < stable_lsn && !referenced.contains(&lsn) {
            // Best effort, as `remove_blob`: what cannot be removed (a directory of
            // that name, a file without permission) stays and the open goes on.
            match std::fs::remove_file(&path) {
                Ok(()) => removed += 1,
                Err(e) => warn!("cannot remove unreferenced blob {:?}: {}", path, e),
            }
        }
    }
    if removed > 0 {
        warn!("removed {} blobs no page points at", removed);
    }
    Ok(())
}

pub(crate) fn remove_blob(id: Lsn, config: &Config) -> Result<()> {
    let path = config.blob_path(id);
    if let Err(e) = std::fs::remove_file(&path) {
        debug!("removing blob at {:?} failed: {}", path, e);
    } else {
        trace!("successfully removed blob at {:?}", path);
    }

    // TODO return a future
    Ok(())
}
