//! Sealed payloads as files named by the SHA-256 of their bytes under `blobs/`, uploaded in
//! resumable chunks under `blobs/partial/` and renamed into place only once their hash checks out.

use std::fs::{self, File, OpenOptions};
use std::io::{self, Read, Write};
use std::path::{Path, PathBuf};

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

fn check_address(sha256: &str) -> Result<(), CentreError> {
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

impl CentreStore {
    fn complete_path(&self, sha256: &str) -> PathBuf {
        self.blobs.join(sha256)
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
        check_address(sha256)?;
        if total_len > MAX_BLOB {
            return Err(CentreError::BlobTooLarge {
                len: total_len,
                max: MAX_BLOB,
            });
        }
        let end = offset.saturating_add(bytes.len() as u64);
        if end > total_len {
            return Err(CentreError::ChunkPastEnd { end, total_len });
        }
        let _writer = lock(&self.blob_writer);
        let complete = self.complete_path(sha256);
        if let Some(len) = file_len(&complete)? {
            return Ok(BlobState::Complete { len });
        }
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
        sync_dir(&self.blobs)?;
        tracing::debug!(sha256, len = have, "payload received");
        Ok(BlobState::Complete { len: have })
    }

    /// Store a whole payload at once (a USB import): written to `partial/`, checked against its
    /// address, fsynced and renamed into place. The directory is *not* fsynced here: call
    /// [`Self::sync_blobs`] once after a batch, before ingesting any envelope that names these
    /// payloads. A payload already complete is left alone.
    pub fn put_blob_whole(&self, sha256: &str, bytes: &[u8]) -> Result<BlobState, CentreError> {
        check_address(sha256)?;
        let len = bytes.len() as u64;
        if len > MAX_BLOB {
            return Err(CentreError::BlobTooLarge { len, max: MAX_BLOB });
        }
        let _writer = lock(&self.blob_writer);
        let complete = self.complete_path(sha256);
        if let Some(len) = file_len(&complete)? {
            return Ok(BlobState::Complete { len });
        }
        let found = tasjil_sync::sha256_hex(bytes);
        if found != sha256 {
            return Err(CentreError::BlobHashMismatch {
                expected: sha256.to_string(),
                found,
            });
        }
        let partial = self.partial_path(sha256);
        let mut file = File::create(&partial).map_err(|e| CentreError::io(&partial, e))?;
        file.write_all(bytes)
            .and_then(|()| file.sync_data())
            .map_err(|e| CentreError::io(&partial, e))?;
        drop(file);
        fs::rename(&partial, &complete).map_err(|e| CentreError::io(&complete, e))?;
        Ok(BlobState::Complete { len })
    }

    /// Make payloads stored by [`Self::put_blob_whole`] durable under their names.
    pub fn sync_blobs(&self) -> Result<(), CentreError> {
        sync_dir(&self.blobs)
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
