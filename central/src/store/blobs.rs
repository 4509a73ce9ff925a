//! Sealed payloads as files named by the SHA-256 of their bytes under `blobs/<first two hex
//! digits>/` (256 directories, so a year of national data is ~17 000 files a directory rather
//! than 4.3 million in one), uploaded in
//! resumable chunks under `blobs/partial/` and renamed into place only once their hash checks out.
//!
//! Safe with any number of processes on one data directory (the server, `import`, the CLI): every
//! writer holds this process's mutex *and* an exclusive lock on `blobs/.writer.lock` (an OS file
//! lock, released if the process dies), so a network upload and a USB import of the same payload
//! take turns instead of appending to one partial file. A whole payload is written under a name
//! no other writer uses, hashed, then renamed. A payload file is never trusted for its name alone:
//! one whose bytes do not hash to its name is moved to `blobs/damaged/` and treated as absent, so
//! the station's next upload replaces it.
//!
//! Stores from before the fan-out kept every payload flat in `blobs/`: [`CentreStore::open`]
//! moves any such file into its directory once, under the writer lock (see
//! [`CentreStore::fan_out_blobs`]). Partial uploads stay flat in `blobs/partial/` (there are only
//! ever a few), damaged files in `blobs/damaged/`.

use std::fs::{self, File, OpenOptions};
use std::io::{self, Read, Write};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::MutexGuard;

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use super::{lock, CentreError, CentreStore, MAX_BLOB};

/// How much of a sealed payload the centre holds.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "state", rename_all = "snake_case")]
pub enum BlobState {
    Absent,
    Partial { have: u64 },
    Complete { len: u64 },
}

/// The checks every backend makes on a payload chunk before storing anything: a well-formed
/// content address, a payload no larger than [`MAX_BLOB`], a chunk that ends within it.
pub(crate) fn check_chunk(
    sha256: &str,
    offset: u64,
    total_len: u64,
    chunk_len: usize,
) -> Result<(), CentreError> {
    check_address(sha256)?;
    if total_len > MAX_BLOB {
        return Err(CentreError::BlobTooLarge {
            len: total_len,
            max: MAX_BLOB,
        });
    }
    let end = offset.saturating_add(chunk_len as u64);
    if end > total_len {
        return Err(CentreError::ChunkPastEnd { end, total_len });
    }
    Ok(())
}

/// A payload's address: 64 lowercase hex digits (a SHA-256).
pub(crate) fn check_address(sha256: &str) -> Result<(), CentreError> {
    if sha256.len() == 64
        && sha256
            .bytes()
            .all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'))
    {
        Ok(())
    } else {
        Err(CentreError::BadAddress(sha256.chars().take(80).collect()))
    }
}

/// Length of the file at `path`, or `None` when there is none.
fn file_len(path: &Path) -> Result<Option<u64>, CentreError> {
    match fs::metadata(path) {
        Ok(m) => Ok(Some(m.len())),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(CentreError::io(path, e)),
    }
}

/// Whether `name` is a payload address (64 lowercase hex digits).
fn is_address(name: &str) -> bool {
    check_address(name).is_ok()
}

/// The 256 fan-out directory names, `00` to `ff`.
fn fan_names() -> impl Iterator<Item = String> {
    (0..=255u8).map(|b| format!("{b:02x}"))
}

fn hash_file(path: &Path) -> Result<String, CentreError> {
    let mut file = File::open(path).map_err(|e| CentreError::io(path, e))?;
    let mut hasher = Sha256::new();
    let mut buf = vec![0u8; 64 * 1024];
    loop {
        let n = file.read(&mut buf).map_err(|e| CentreError::io(path, e))?;
        if n == 0 {
            break;
        }
        hasher.update(&buf[..n]);
    }
    Ok(hex::encode(hasher.finalize()))
}

/// Make a rename or a new name in `dir` durable.
fn sync_dir(dir: &Path) -> Result<(), CentreError> {
    File::open(dir)
        .and_then(|d| d.sync_all())
        .map_err(|e| CentreError::io(dir, e))
}

/// The store-wide payload writer lock, held for the whole of one write (see the module docs).
pub(super) struct BlobWriter<'a> {
    _in_process: MutexGuard<'a, ()>,
    file: &'a File,
}

impl Drop for BlobWriter<'_> {
    fn drop(&mut self) {
        // Closing the process would release it too; an unlock error leaves nothing to repair.
        let _ = self.file.unlock();
    }
}

/// Distinct temporary names within this process (the pid tells processes apart).
static TEMP_SEQ: AtomicU64 = AtomicU64::new(0);

impl CentreStore {
    /// Make the 256 fan-out directories and move payload files a store from before the fan-out
    /// kept flat in `blobs/` into theirs (once: afterwards `blobs/` holds only directories and the
    /// lock). Called by [`Self::open`], under the writer lock, so a concurrent writer of this
    /// version never sees a half-moved store.
    pub(super) fn fan_out_blobs(&self) -> Result<(), CentreError> {
        use std::os::unix::fs::DirBuilderExt;
        let _writer = self.blob_writer()?;
        let mut changed = false;
        for name in fan_names() {
            let dir = self.blobs.join(name);
            match fs::DirBuilder::new().mode(0o700).create(&dir) {
                Ok(()) => changed = true,
                Err(e) if e.kind() == io::ErrorKind::AlreadyExists => {}
                Err(e) => return Err(CentreError::io(&dir, e)),
            }
        }
        let entries = fs::read_dir(&self.blobs).map_err(|e| CentreError::io(&self.blobs, e))?;
        let mut moved = 0u64;
        for entry in entries {
            let entry = entry.map_err(|e| CentreError::io(&self.blobs, e))?;
            let Ok(name) = entry.file_name().into_string() else {
                continue;
            };
            if !is_address(&name) || !entry.file_type().is_ok_and(|t| t.is_file()) {
                continue;
            }
            let to = self.complete_path(&name);
            fs::rename(entry.path(), &to).map_err(|e| CentreError::io(&to, e))?;
            moved += 1;
        }
        if moved > 0 {
            for name in fan_names() {
                sync_dir(&self.blobs.join(name))?;
            }
            tracing::info!(moved, "payload files moved into blobs/<xx>/ directories");
        }
        if changed || moved > 0 {
            sync_dir(&self.blobs)?;
        }
        Ok(())
    }

    /// Every complete payload file's address, by directory (unsorted).
    pub(super) fn blob_names(&self) -> Result<Vec<String>, CentreError> {
        let mut names = Vec::new();
        for fan in fan_names() {
            let dir = self.blobs.join(fan);
            let entries = match fs::read_dir(&dir) {
                Ok(e) => e,
                Err(e) if e.kind() == io::ErrorKind::NotFound => continue,
                Err(e) => return Err(CentreError::io(&dir, e)),
            };
            names.extend(
                entries
                    .filter_map(Result::ok)
                    .filter(|e| e.file_type().is_ok_and(|t| t.is_file()))
                    .filter_map(|e| e.file_name().into_string().ok())
                    .filter(|n| is_address(n)),
            );
        }
        Ok(names)
    }

    /// Take the payload writer lock, waiting for writers in this and other processes.
    pub(super) fn blob_writer(&self) -> Result<BlobWriter<'_>, CentreError> {
        let in_process = lock(&self.blob_writer);
        self.blob_lock
            .lock()
            .map_err(|e| CentreError::io(&self.blobs.join(".writer.lock"), e))?;
        Ok(BlobWriter {
            _in_process: in_process,
            file: &self.blob_lock,
        })
    }

    /// The length of the complete payload `sha256` when its bytes hash to its name. A file that
    /// does not is moved aside (`blobs/damaged/`) and reported as absent. Call with the writer
    /// lock held.
    pub(super) fn intact_len(
        &self,
        _writer: &BlobWriter<'_>,
        sha256: &str,
    ) -> Result<Option<u64>, CentreError> {
        let complete = self.complete_path(sha256);
        let Some(len) = file_len(&complete)? else {
            return Ok(None);
        };
        if hash_file(&complete)? == sha256 {
            return Ok(Some(len));
        }
        self.quarantine(sha256)?;
        Ok(None)
    }

    /// Move the complete payload file `sha256`, whose bytes do not match its name, out of the way.
    fn quarantine(&self, sha256: &str) -> Result<PathBuf, CentreError> {
        let damaged = self.blobs.join("damaged");
        fs::create_dir_all(&damaged).map_err(|e| CentreError::io(&damaged, e))?;
        let to = damaged.join(format!("{sha256}.{}", crate::now_ms()));
        let from = self.complete_path(sha256);
        fs::rename(&from, &to).map_err(|e| CentreError::io(&from, e))?;
        sync_dir(&self.fan_dir(sha256))?;
        sync_dir(&damaged)?;
        tracing::error!(sha256, moved_to = %to.display(), "payload file does not hash to its name; moved aside, a new upload will replace it");
        Ok(to)
    }

    /// The complete payload `sha256`, checked against its name: `None` when the centre has none,
    /// or had one whose bytes were wrong (moved aside, so the station sends it again).
    pub(super) fn read_blob_checked(&self, sha256: &str) -> Result<Option<Vec<u8>>, CentreError> {
        let bytes = match self.read_blob(sha256) {
            Ok(b) => b,
            Err(CentreError::BlobMissing(_)) => return Ok(None),
            Err(e) => return Err(e),
        };
        if tasjil_sync::sha256_hex(&bytes) == sha256 {
            return Ok(Some(bytes));
        }
        // Look again under the lock: another writer may have just replaced it.
        let writer = self.blob_writer()?;
        match self.intact_len(&writer, sha256)? {
            Some(_) => self.read_blob(sha256).map(Some),
            None => Ok(None),
        }
    }

    /// `blobs/<first two hex digits>/`: where the payload `sha256` lives.
    fn fan_dir(&self, sha256: &str) -> PathBuf {
        self.blobs.join(sha256.get(..2).unwrap_or("00"))
    }

    pub(super) fn complete_path(&self, sha256: &str) -> PathBuf {
        self.fan_dir(sha256).join(sha256)
    }

    fn partial_path(&self, sha256: &str) -> PathBuf {
        self.partial.join(sha256)
    }

    /// How much of the payload with this address the centre holds.
    pub fn blob_state(&self, sha256: &str) -> Result<BlobState, CentreError> {
        check_address(sha256)?;
        if let Some(len) = file_len(&self.complete_path(sha256))? {
            return Ok(BlobState::Complete { len });
        }
        if let Some(have) = file_len(&self.partial_path(sha256))? {
            return Ok(BlobState::Partial { have });
        }
        Ok(BlobState::Absent)
    }

    /// Add `bytes` at `offset` to the payload with address `sha256` and length `total_len`.
    ///
    /// Idempotent and resumable: a complete payload is left alone; `offset` may be at or before
    /// what the centre has (overlapping bytes are skipped, the final hash catches any difference),
    /// never after it ([`CentreError::OffsetMismatch`] says where to resume). When the last byte
    /// arrives the file is fsynced and hashed: a mismatch discards it, a match moves it into place.
    pub fn put_blob_chunk(
        &self,
        sha256: &str,
        offset: u64,
        total_len: u64,
        bytes: &[u8],
    ) -> Result<BlobState, CentreError> {
        check_chunk(sha256, offset, total_len, bytes.len())?;
        let writer = self.blob_writer()?;
        if let Some(len) = self.intact_len(&writer, sha256)? {
            return Ok(BlobState::Complete { len });
        }
        let complete = self.complete_path(sha256);
        let partial = self.partial_path(sha256);
        let have = file_len(&partial)?.unwrap_or(0);
        if have > total_len {
            // Begun by an upload that claimed a longer payload under this address: one of the two
            // is wrong, and this partial can never become the payload just described. Start over.
            fs::remove_file(&partial).map_err(|e| CentreError::io(&partial, e))?;
            return Err(CentreError::OffsetMismatch { have: 0 });
        }
        if offset > have {
            return Err(CentreError::OffsetMismatch { have });
        }
        // have - offset <= total_len <= MAX_BLOB, so it fits in usize.
        let skip = usize::try_from(have - offset).unwrap_or(usize::MAX);
        let fresh = bytes.get(skip..).unwrap_or_default();
        let mut file = OpenOptions::new()
            .create(true)
            .append(true)
            .open(&partial)
            .map_err(|e| CentreError::io(&partial, e))?;
        if !fresh.is_empty() {
            file.write_all(fresh)
                .and_then(|()| file.sync_data())
                .map_err(|e| CentreError::io(&partial, e))?;
        }
        let have = have + fresh.len() as u64;
        if have < total_len {
            return Ok(BlobState::Partial { have });
        }
        file.sync_all().map_err(|e| CentreError::io(&partial, e))?;
        drop(file);
        let found = hash_file(&partial)?;
        if found != sha256 {
            fs::remove_file(&partial).map_err(|e| CentreError::io(&partial, e))?;
            tracing::warn!(expected = sha256, %found, "uploaded payload does not match its address; discarded");
            return Err(CentreError::BlobHashMismatch {
                expected: sha256.to_string(),
                found,
            });
        }
        fs::rename(&partial, &complete).map_err(|e| CentreError::io(&complete, e))?;
        sync_dir(&self.fan_dir(sha256))?;
        tracing::debug!(sha256, len = have, "payload received");
        Ok(BlobState::Complete { len: have })
    }

    /// Store a whole payload at once (a USB import): checked against its address, written to a
    /// name of its own under `partial/`, fsynced and renamed into place. The directory is *not* fsynced here: call
    /// [`Self::sync_blobs`] once after a batch, before ingesting any envelope that names these
    /// payloads. A payload already complete is left alone.
    pub fn put_blob_whole(&self, sha256: &str, bytes: &[u8]) -> Result<BlobState, CentreError> {
        check_address(sha256)?;
        let len = bytes.len() as u64;
        if len > MAX_BLOB {
            return Err(CentreError::BlobTooLarge { len, max: MAX_BLOB });
        }
        let found = tasjil_sync::sha256_hex(bytes);
        if found != sha256 {
            return Err(CentreError::BlobHashMismatch {
                expected: sha256.to_string(),
                found,
            });
        }
        let writer = self.blob_writer()?;
        if let Some(len) = self.intact_len(&writer, sha256)? {
            return Ok(BlobState::Complete { len });
        }
        let complete = self.complete_path(sha256);
        // Never the chunked upload's partial name: a network upload of the same payload may be
        // half-way through it.
        let temp = self.partial.join(format!(
            "{sha256}.{}-{}.whole",
            std::process::id(),
            TEMP_SEQ.fetch_add(1, Ordering::Relaxed)
        ));
        let written = File::create(&temp).and_then(|mut file| {
            file.write_all(bytes)?;
            file.sync_data()
        });
        if let Err(e) = written {
            let _ = fs::remove_file(&temp);
            return Err(CentreError::io(&temp, e));
        }
        fs::rename(&temp, &complete).map_err(|e| CentreError::io(&complete, e))?;
        Ok(BlobState::Complete { len })
    }

    /// Make the payloads `written` by [`Self::put_blob_whole`] durable under their names: one
    /// fsync of each fan-out directory they went into.
    pub fn sync_blobs<'a>(
        &self,
        written: impl IntoIterator<Item = &'a str>,
    ) -> Result<(), CentreError> {
        let dirs: std::collections::BTreeSet<PathBuf> =
            written.into_iter().map(|sha| self.fan_dir(sha)).collect();
        for dir in dirs {
            sync_dir(&dir)?;
        }
        Ok(())
    }

    /// The complete payload with this address. Its hash is checked by whoever uses it against the
    /// envelope that names it ([`Envelope::verify_payload`]), and by [`Self::verify_all`].
    pub fn read_blob(&self, sha256: &str) -> Result<Vec<u8>, CentreError> {
        check_address(sha256)?;
        let path = self.complete_path(sha256);
        fs::read(&path).map_err(|e| {
            if e.kind() == io::ErrorKind::NotFound {
                CentreError::BlobMissing(sha256.to_string())
            } else {
                CentreError::io(&path, e)
            }
        })
    }
}
