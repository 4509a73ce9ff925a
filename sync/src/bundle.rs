//! The USB bundle and the centre's receipt: the same three things network sync moves (envelopes,
//! sealed payloads, ledger changes) in one file a supervisor carries, and the signed answer the
//! centre gives back. The byte layout is specified in `docs/BUNDLE-FORMAT.md`; this module is its
//! reference reader and writer.
//!
//! Bundle file: the magic `TASJILB1`, a big-endian `u32` header length, the header (canonical
//! JSON: the [`Manifest`] with the station's signature and the supervisor's countersignature),
//! then every part's bytes, in manifest order, with nothing between or after them. The manifest
//! names each part's kind, name, length and SHA-256, so a reader can check every byte, and the
//! exact file length follows from the header: a truncated or padded file is refused before any
//! part is read.

use std::fs::File;
use std::io::{self, BufReader, Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};

use ed25519_dalek::{Signature, VerifyingKey};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::canonical::{sha256, to_canonical};
use crate::keys::{parse_signature, parse_verifying_key};
use crate::record::{Envelope, Signed};

/// First eight bytes of every bundle file.
pub const BUNDLE_MAGIC: &[u8; 8] = b"TASJILB1";
/// `format` of a bundle manifest this build writes and reads.
pub const BUNDLE_FORMAT: &str = "tasjil-bundle-v1";
/// `format` of a receipt this build writes and reads.
pub const RECEIPT_FORMAT: &str = "tasjil-receipt-v1";
/// File name extension of bundles (`<station>-<first seq>-<last seq>.tasjil`).
pub const BUNDLE_EXTENSION: &str = "tasjil";
/// Largest header a reader accepts (a 1,000-record bundle has a header of about 400 KB).
pub const MAX_HEADER: u32 = 32 << 20;
/// Largest part a reader accepts (a sealed payload is at most 64 MiB at the centre).
pub const MAX_PART: u64 = 64 << 20;
/// Largest receipt a station reads.
pub const MAX_RECEIPT: u64 = 64 << 20;

const BUNDLE_DOMAIN: &[u8] = b"tasjil bundle v1\n";
const RECEIPT_DOMAIN: &[u8] = b"tasjil receipt v1\n";

/// What is wrong with a bundle or a receipt. Every variant names the check that failed.
#[derive(Debug, thiserror::Error)]
pub enum BundleError {
    #[error("cannot read {path}: {source}")]
    Io {
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    #[error(
        "not a Tasjil bundle: the file does not start with {:?}",
        String::from_utf8_lossy(BUNDLE_MAGIC)
    )]
    NotABundle,
    #[error("truncated bundle: the header says {expected} bytes, the file has {found}; it was not completely written (stick pulled out?) — export it again")]
    Truncated { expected: u64, found: u64 },
    #[error("bundle has {extra} unexpected bytes after its last part")]
    TrailingBytes { extra: u64 },
    #[error("bundle header is malformed: {0}")]
    Header(String),
    #[error("bundle format {0:?} is not supported (this build reads {BUNDLE_FORMAT})")]
    Format(String),
    #[error("station signature of the bundle does not verify: the manifest was altered or was not signed by station {0}")]
    StationSignature(String),
    #[error("supervisor countersignature of the bundle does not verify (supervisor {0})")]
    SupervisorSignature(String),
    #[error("part {index} ({kind} {name}): SHA-256 mismatch, the manifest says {expected}, the bytes give {found}")]
    PartHash {
        index: usize,
        kind: PartKind,
        name: String,
        expected: String,
        found: String,
    },
    #[error("part {index} ({kind} {name}): {reason}")]
    Part {
        index: usize,
        kind: PartKind,
        name: String,
        reason: String,
    },
    #[error("bundle contents are inconsistent: {0}")]
    Contents(String),
    #[error("receipt is malformed: {0}")]
    Receipt(String),
    #[error("receipt signature does not verify with the centre's key: the receipt was altered or was not issued by this centre")]
    ReceiptSignature,
    #[error("cannot encode: {0}")]
    Encode(String),
}

impl BundleError {
    /// A short stable name of the check that failed, for scripts and tests.
    pub fn code(&self) -> &'static str {
        match self {
            BundleError::Io { .. } => "io",
            BundleError::NotABundle => "not_a_bundle",
            BundleError::Truncated { .. } => "truncated",
            BundleError::TrailingBytes { .. } => "trailing_bytes",
            BundleError::Header(_) => "header",
            BundleError::Format(_) => "format",
            BundleError::StationSignature(_) => "station_signature",
            BundleError::SupervisorSignature(_) => "supervisor_signature",
            BundleError::PartHash { .. } => "part_hash",
            BundleError::Part { .. } => "part",
            BundleError::Contents(_) => "contents",
            BundleError::Receipt(_) => "receipt",
            BundleError::ReceiptSignature => "receipt_signature",
            BundleError::Encode(_) => "encode",
        }
    }

    fn io(path: &Path, source: io::Error) -> BundleError {
        BundleError::Io {
            path: path.to_path_buf(),
            source,
        }
    }
}

/// What a part holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum PartKind {
    /// One signed envelope, canonical JSON bytes as signed; `name` is the enrolment id.
    Envelope,
    /// One sealed payload; `name` is its SHA-256 (its address).
    Payload,
    /// One station-day ledger, a saved Automerge document; `name` is the ledger name.
    Ledger,
    /// One restore link of the station ([`crate::RestoreLink`]), canonical JSON as signed;
    /// `name` is its place in the chain (decimal).
    Restore,
}

impl std::fmt::Display for PartKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            PartKind::Envelope => "envelope",
            PartKind::Payload => "payload",
            PartKind::Ledger => "ledger",
            PartKind::Restore => "restore",
        })
    }
}

/// One part as the manifest lists it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Part {
    pub kind: PartKind,
    pub name: String,
    pub len: u64,
    pub sha256: String,
}

/// Who countersigned the export: the supervisor's id and badge key (hex Ed25519).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Countersigner {
    pub id: String,
    pub key: String,
}

/// What the station signs: everything about the bundle but the part bytes, which it binds by hash.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Manifest {
    pub format: String,
    /// ULID of this export.
    pub bundle_id: String,
    pub station: String,
    pub created_ms: i64,
    /// Sequence numbers of the first and last envelope (the envelopes are consecutive, or
    /// continue from a restore link the bundle carries).
    pub first_seq: u64,
    pub last_seq: u64,
    pub supervisor: Countersigner,
    pub parts: Vec<Part>,
}

impl Manifest {
    /// The 32 bytes both the station and the supervisor's badge sign.
    pub fn signing_message(&self) -> Result<Vec<u8>, BundleError> {
        let canonical = to_canonical(self).map_err(|e| BundleError::Encode(e.to_string()))?;
        let mut m = BUNDLE_DOMAIN.to_vec();
        m.extend_from_slice(&sha256(&canonical));
        Ok(m)
    }

    /// Hex SHA-256 of the canonical manifest: the bundle's identity for receipts and replays.
    pub fn digest_hex(&self) -> Result<String, BundleError> {
        let canonical = to_canonical(self).map_err(|e| BundleError::Encode(e.to_string()))?;
        Ok(hex::encode(sha256(&canonical)))
    }

    /// File name of this bundle: `<station>-<first seq>-<last seq>.tasjil`.
    pub fn file_name(&self) -> String {
        format!(
            "{}-{}-{}.{BUNDLE_EXTENSION}",
            self.station, self.first_seq, self.last_seq
        )
    }

    /// Total bytes of all parts.
    pub fn parts_len(&self) -> u64 {
        self.parts.iter().map(|p| p.len).sum()
    }
}

/// The header of a bundle file: the manifest and its two signatures (hex Ed25519).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BundleHeader {
    pub manifest: Manifest,
    pub station_signature: String,
    pub supervisor_signature: String,
}

impl BundleHeader {
    /// The bytes that follow the magic and the length in the file.
    pub fn to_bytes(&self) -> Result<Vec<u8>, BundleError> {
        to_canonical(self).map_err(|e| BundleError::Encode(e.to_string()))
    }

    /// Check the station's signature with its registered key and the supervisor's
    /// countersignature with the badge key the (station-signed) manifest names.
    pub fn verify_signatures(&self, station: &VerifyingKey) -> Result<(), BundleError> {
        let message = self.manifest.signing_message()?;
        let station_name = self.manifest.station.clone();
        let sig = parse_signature(&self.station_signature)
            .map_err(|_| BundleError::StationSignature(station_name.clone()))?;
        station
            .verify_strict(&message, &sig)
            .map_err(|_| BundleError::StationSignature(station_name))?;
        let who = self.manifest.supervisor.id.clone();
        let badge = parse_verifying_key(&self.manifest.supervisor.key)
            .map_err(|_| BundleError::SupervisorSignature(who.clone()))?;
        let sig = parse_signature(&self.supervisor_signature)
            .map_err(|_| BundleError::SupervisorSignature(who.clone()))?;
        badge
            .verify_strict(&message, &sig)
            .map_err(|_| BundleError::SupervisorSignature(who))
    }
}

/// Write a bundle: the header, then each part's bytes from `fetch`, hashed on the way so that a
/// part that does not match the manifest (a damaged store) stops the write. `progress(bytes)` is
/// called after each part with the bytes written so far. Returns the bytes written.
pub fn write_bundle(
    out: &mut dyn Write,
    header: &BundleHeader,
    fetch: &mut dyn FnMut(&Part) -> Result<Vec<u8>, String>,
    progress: &mut dyn FnMut(u64),
) -> Result<u64, WriteError> {
    let head = header.to_bytes().map_err(WriteError::Bundle)?;
    let head_len = u32::try_from(head.len())
        .ok()
        .filter(|n| *n <= MAX_HEADER)
        .ok_or_else(|| WriteError::Bundle(BundleError::Header("header too large".into())))?;
    out.write_all(BUNDLE_MAGIC).map_err(WriteError::Io)?;
    out.write_all(&head_len.to_be_bytes())
        .map_err(WriteError::Io)?;
    out.write_all(&head).map_err(WriteError::Io)?;
    let mut written = (BUNDLE_MAGIC.len() + 4 + head.len()) as u64;
    for (index, part) in header.manifest.parts.iter().enumerate() {
        let bytes = fetch(part).map_err(WriteError::Source)?;
        let found = hex::encode(sha256(&bytes));
        if found != part.sha256 || bytes.len() as u64 != part.len {
            return Err(WriteError::Bundle(BundleError::PartHash {
                index,
                kind: part.kind,
                name: part.name.clone(),
                expected: part.sha256.clone(),
                found,
            }));
        }
        out.write_all(&bytes).map_err(WriteError::Io)?;
        written += bytes.len() as u64;
        progress(written);
    }
    Ok(written)
}

/// Why [`write_bundle`] stopped.
#[derive(Debug, thiserror::Error)]
pub enum WriteError {
    #[error("{0}")]
    Io(#[source] io::Error),
    #[error("{0}")]
    Bundle(BundleError),
    #[error("{0}")]
    Source(String),
}

/// An open bundle file whose structure (magic, header, exact length) has been checked. Parts are
/// read on demand and each is checked against its manifest hash as it is read.
#[derive(Debug)]
pub struct BundleReader {
    path: PathBuf,
    file: BufReader<File>,
    header: BundleHeader,
    /// Offset of each part in the file.
    offsets: Vec<u64>,
}

impl BundleReader {
    /// Open `path` and check the magic, the header, and that the file is exactly as long as the
    /// header says.
    pub fn open(path: &Path) -> Result<BundleReader, BundleError> {
        let file = File::open(path).map_err(|e| BundleError::io(path, e))?;
        let actual = file.metadata().map_err(|e| BundleError::io(path, e))?.len();
        let mut file = BufReader::with_capacity(1 << 20, file);
        let mut start = [0u8; 12];
        let got = read_up_to(&mut file, &mut start).map_err(|e| BundleError::io(path, e))?;
        if !BUNDLE_MAGIC.starts_with(&start[..got.min(8)]) {
            return Err(BundleError::NotABundle);
        }
        if got < 12 {
            return Err(BundleError::Truncated {
                expected: 12,
                found: actual,
            });
        }
        let mut len = [0u8; 4];
        len.copy_from_slice(&start[8..12]);
        let head_len = u32::from_be_bytes(len);
        if head_len > MAX_HEADER {
            return Err(BundleError::Header(format!(
                "header length {head_len} is over the {MAX_HEADER} bytes allowed"
            )));
        }
        let head_end = 12 + u64::from(head_len);
        if actual < head_end {
            return Err(BundleError::Truncated {
                expected: head_end,
                found: actual,
            });
        }
        let mut head = vec![0u8; head_len as usize];
        file.read_exact(&mut head)
            .map_err(|e| BundleError::io(path, e))?;
        let header = parse_header(&head)?;
        let mut offsets = Vec::with_capacity(header.manifest.parts.len());
        let mut at = head_end;
        for (index, part) in header.manifest.parts.iter().enumerate() {
            if part.len > MAX_PART {
                return Err(BundleError::Part {
                    index,
                    kind: part.kind,
                    name: part.name.clone(),
                    reason: format!("{} bytes is over the {MAX_PART} allowed", part.len),
                });
            }
            offsets.push(at);
            at += part.len;
        }
        if actual < at {
            return Err(BundleError::Truncated {
                expected: at,
                found: actual,
            });
        }
        if actual > at {
            return Err(BundleError::TrailingBytes { extra: actual - at });
        }
        Ok(BundleReader {
            path: path.to_path_buf(),
            file,
            header,
            offsets,
        })
    }

    pub fn header(&self) -> &BundleHeader {
        &self.header
    }

    pub fn manifest(&self) -> &Manifest {
        &self.header.manifest
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Read part `index` whole and check its hash.
    pub fn read_part(&mut self, index: usize) -> Result<Vec<u8>, BundleError> {
        let mut bytes = Vec::new();
        self.stream_part(index, &mut |chunk| {
            bytes.extend_from_slice(chunk);
            Ok(())
        })?;
        Ok(bytes)
    }

    /// Feed part `index` to `sink` in chunks, then check its hash: a mismatch is an error after
    /// the sink has seen the bytes, so a sink must treat them as unverified until this returns Ok.
    pub fn stream_part(
        &mut self,
        index: usize,
        sink: &mut dyn FnMut(&[u8]) -> Result<(), String>,
    ) -> Result<(), BundleError> {
        let (part, offset) = match (
            self.header.manifest.parts.get(index),
            self.offsets.get(index),
        ) {
            (Some(p), Some(o)) => (p.clone(), *o),
            _ => return Err(BundleError::Contents(format!("there is no part {index}"))),
        };
        let path = self.path.clone();
        self.file
            .seek(SeekFrom::Start(offset))
            .map_err(|e| BundleError::io(&path, e))?;
        let mut hasher = Sha256::new();
        let mut left = part.len;
        let mut buf = vec![0u8; (1 << 20).min(part.len.max(1) as usize)];
        while left > 0 {
            let n = (buf.len() as u64).min(left) as usize;
            self.file
                .read_exact(&mut buf[..n])
                .map_err(|e| BundleError::io(&path, e))?;
            hasher.update(&buf[..n]);
            sink(&buf[..n]).map_err(|reason| BundleError::Part {
                index,
                kind: part.kind,
                name: part.name.clone(),
                reason,
            })?;
            left -= n as u64;
        }
        let found = hex::encode(hasher.finalize());
        if found != part.sha256 {
            return Err(BundleError::PartHash {
                index,
                kind: part.kind,
                name: part.name,
                expected: part.sha256,
                found,
            });
        }
        Ok(())
    }
}

/// A throwaway Automerge actor for loading a ledger only to check it (it never writes).
fn reader_actor() -> [u8; 16] {
    use rand_core::RngCore;
    let mut a = [0u8; 16];
    rand_core::OsRng.fill_bytes(&mut a);
    a
}

/// Write `bytes` to `path` so that a crash leaves either the old file, or none, or the whole new
/// one: a temporary file in the same directory, fsynced, renamed over `path`, directory fsynced.
pub fn write_atomically(path: &Path, bytes: &[u8]) -> io::Result<()> {
    let dir = match path.parent() {
        Some(d) if !d.as_os_str().is_empty() => d.to_path_buf(),
        _ => PathBuf::from("."),
    };
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let tmp = dir.join(format!(".{name}.partial-{}", std::process::id()));
    let result = (|| {
        let mut f = File::create(&tmp)?;
        f.write_all(bytes)?;
        f.sync_all()?;
        drop(f);
        std::fs::rename(&tmp, path)?;
        File::open(&dir)?.sync_all()
    })();
    if result.is_err() {
        let _ = std::fs::remove_file(&tmp);
    }
    result
}

/// Read until `buf` is full or the file ends; the number of bytes read.
fn read_up_to(file: &mut impl Read, buf: &mut [u8]) -> io::Result<usize> {
    let mut got = 0;
    while got < buf.len() {
        match file.read(&mut buf[got..]) {
            Ok(0) => break,
            Ok(n) => got += n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(got)
}

fn parse_header(bytes: &[u8]) -> Result<BundleHeader, BundleError> {
    let header: BundleHeader =
        serde_json::from_slice(bytes).map_err(|e| BundleError::Header(e.to_string()))?;
    // One spelling per header: what was signed is exactly what is read.
    if header.to_bytes()? != bytes {
        return Err(BundleError::Header("not in canonical form".into()));
    }
    if header.manifest.format != BUNDLE_FORMAT {
        return Err(BundleError::Format(header.manifest.format.clone()));
    }
    Ok(header)
}

/// The envelopes, payload addresses and ledgers of a bundle whose every byte and signature checked
/// out ([`verify_bundle`]). Payload bytes stay in the file: they are streamed when ingested.
#[derive(Debug)]
pub struct VerifiedBundle {
    pub header: BundleHeader,
    /// Hex SHA-256 of the canonical manifest.
    pub manifest_sha256: String,
    /// Envelope bytes (canonical, as signed), in sequence order.
    pub envelopes: Vec<Vec<u8>>,
    /// `(part index, sha256, len)` of each payload.
    pub payloads: Vec<(usize, String, u64)>,
    /// `(ledger name, saved document)`.
    pub ledgers: Vec<(String, Vec<u8>)>,
    /// Restore links (canonical bytes as signed), in chain order.
    pub links: Vec<Vec<u8>>,
}

/// Check everything a bundle holds against itself and against the station's registered key,
/// without changing anything anywhere: the signatures, every part's hash, that each envelope is
/// a valid record of this station signed by it and co-signed by its officer, that envelopes are
/// consecutive and chained, that each envelope's payload is in the bundle with the length and hash
/// it names, and that ledgers belong to the station. `progress(bytes)` follows the reading.
pub fn verify_bundle(
    reader: &mut BundleReader,
    station_key: &VerifyingKey,
    progress: &mut dyn FnMut(u64),
) -> Result<VerifiedBundle, BundleError> {
    let header = reader.header().clone();
    header.verify_signatures(station_key)?;
    let manifest = &header.manifest;
    // Never used as a path today; refused anyway, so no later use of it can become one.
    if manifest.bundle_id.len() != 26 || ulid::Ulid::from_string(&manifest.bundle_id).is_err() {
        return Err(BundleError::Header(format!(
            "bundle id {:?} is not a ULID",
            manifest.bundle_id.chars().take(40).collect::<String>()
        )));
    }
    let station = manifest.station.clone();
    let mut envelopes: Vec<Vec<u8>> = Vec::new();
    let mut parsed: Vec<Envelope<Signed>> = Vec::new();
    let mut payloads: Vec<(usize, String, u64)> = Vec::new();
    let mut ledgers = Vec::new();
    // The ledgers as read, to find the records the station's supervisor withdrew.
    let mut loaded: Vec<crate::ledger::Ledger> = Vec::new();
    // Restore links by place: `seq -> hash`.
    let mut links: std::collections::BTreeMap<u64, (String, Vec<u8>)> = Default::default();
    let mut done = 0u64;
    for (index, part) in manifest.parts.iter().enumerate() {
        let bad = |reason: String| BundleError::Part {
            index,
            kind: part.kind,
            name: part.name.clone(),
            reason,
        };
        match part.kind {
            PartKind::Envelope => {
                let bytes = reader.read_part(index)?;
                let env = Envelope::<Signed>::from_bytes(&bytes).map_err(|e| bad(e.to_string()))?;
                let body = env.body();
                if body.id != part.name {
                    return Err(bad(format!("holds envelope {}", body.id)));
                }
                if body.station != station {
                    return Err(bad(format!(
                        "is an envelope of station {}, not of {station}",
                        body.station
                    )));
                }
                env.verify_signature(station_key)
                    .map_err(|e| bad(e.to_string()))?;
                let cosig = env
                    .officer_signature()
                    .ok_or_else(|| bad("officer co-signature is missing".into()))?;
                let badge = parse_verifying_key(&cosig.key)
                    .map_err(|_| bad("officer co-signature does not verify".into()))?;
                env.verify_officer(&badge).map_err(|e| bad(e.to_string()))?;
                envelopes.push(bytes);
                parsed.push(env);
            }
            PartKind::Payload => {
                if part.name != part.sha256 {
                    return Err(bad("a payload part must be named by its SHA-256".into()));
                }
                reader.stream_part(index, &mut |_| Ok(()))?;
                payloads.push((index, part.sha256.clone(), part.len));
            }
            PartKind::Ledger => {
                let owner = crate::ledger::split_name(&part.name).map(|(s, _)| s.to_string());
                if owner.as_deref() != Some(station.as_str()) {
                    return Err(bad(format!("is not a ledger of station {station}")));
                }
                let bytes = reader.read_part(index)?;
                if let Some((owner, day)) = crate::ledger::split_name(&part.name) {
                    loaded.push(
                        crate::ledger::Ledger::load(owner, day, &reader_actor(), &bytes)
                            .map_err(|e| bad(e.to_string()))?,
                    );
                }
                ledgers.push((part.name.clone(), bytes));
            }
            PartKind::Restore => {
                let bytes = reader.read_part(index)?;
                let link =
                    crate::RestoreLink::from_bytes(&bytes).map_err(|e| bad(e.to_string()))?;
                let body = link.body();
                if body.station != station || part.name != body.seq.to_string() {
                    return Err(bad(format!(
                        "holds the restore link of station {} at {}",
                        body.station, body.seq
                    )));
                }
                link.verify_signature(station_key)
                    .map_err(|e| bad(format!("restore link: {e}")))?;
                links.insert(body.seq, (crate::sha256_hex(&bytes), bytes));
            }
        }
        done += part.len;
        progress(done);
    }

    // The envelopes: from first_seq to last_seq, each linked to the one before it or to the
    // restore link the bundle carries at the place before it.
    if parsed.is_empty() {
        return Err(BundleError::Contents("no envelope".into()));
    }
    let ends = (
        parsed.first().map(|e| e.body().seq),
        parsed.last().map(|e| e.body().seq),
    );
    if ends != (Some(manifest.first_seq), Some(manifest.last_seq)) {
        return Err(BundleError::Contents(format!(
            "the manifest announces sequences {} to {}, the bundle holds {} to {}",
            manifest.first_seq,
            manifest.last_seq,
            ends.0.unwrap_or(0),
            ends.1.unwrap_or(0)
        )));
    }
    for (i, env) in parsed.iter().enumerate().skip(1) {
        let seq = env.body().seq;
        let before = &parsed[i - 1];
        let prev_hash = if before.body().seq + 1 == seq {
            crate::sha256_hex(&envelopes[i - 1])
        } else if let Some((hash, _)) = seq.checked_sub(1).and_then(|s| links.get(&s)) {
            hash.clone()
        } else {
            return Err(BundleError::Contents(format!(
                "envelope {} has sequence {seq}, expected {}",
                env.body().id,
                before.body().seq + 1
            )));
        };
        env.verify_chain_link(seq, &prev_hash)
            .map_err(|e| BundleError::Contents(format!("envelope {}: {e}", env.body().id)))?;
    }
    // Each envelope's payload is in the bundle, exactly once, with the length it names.
    let mut wanted: std::collections::BTreeMap<&str, u64> = parsed
        .iter()
        .map(|e| (e.body().payload.sha256.as_str(), e.body().payload.len))
        .collect();
    for (_, sha, len) in &payloads {
        match wanted.remove(sha.as_str()) {
            Some(want) if want == *len => {}
            Some(want) => {
                return Err(BundleError::Contents(format!(
                    "payload {sha} is {len} bytes, its envelope says {want}"
                )))
            }
            None => {
                return Err(BundleError::Contents(format!(
                    "payload {sha} belongs to no envelope of the bundle (or appears twice)"
                )))
            }
        }
    }
    // A record the station's supervisor withdrew (rejected at the station) travels without its
    // payload: its envelope keeps the chain whole, the bundle's own ledger says why.
    let withdrawn = |sha: &str| {
        parsed
            .iter()
            .filter(|e| e.body().payload.sha256 == sha)
            .all(|e| {
                loaded.iter().any(|l| {
                    l.station_decision(&e.body().id)
                        .is_some_and(|d| d.status == crate::ledger::Status::Withdrawn)
                })
            })
    };
    if let Some((sha, _)) = wanted.into_iter().find(|(sha, _)| !withdrawn(sha)) {
        return Err(BundleError::Contents(format!(
            "payload {sha} named by an envelope is not in the bundle"
        )));
    }
    let manifest_sha256 = manifest.digest_hex()?;
    Ok(VerifiedBundle {
        header,
        manifest_sha256,
        envelopes,
        payloads,
        ledgers,
        links: links.into_values().map(|(_, bytes)| bytes).collect(),
    })
}

// ----- receipts -----

/// What the centre established about one record of a bundle.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ReceiptRecord {
    pub id: String,
    pub seq: u64,
    /// SHA-256 of the envelope bytes the centre received.
    pub envelope_sha256: String,
    /// "verified" or "rejected".
    pub status: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
}

/// A ledger as the centre holds it after the import: the station merges it, and so learns exactly
/// the statuses a network sync would have brought.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ReceiptLedger {
    pub name: String,
    /// Saved Automerge document, standard base64.
    pub doc: String,
}

/// What the centre signs.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ReceiptBody {
    pub format: String,
    pub bundle_id: String,
    /// [`Manifest::digest_hex`] of the bundle this answers.
    pub bundle_sha256: String,
    pub station: String,
    pub issued_ms: i64,
    /// Hex Ed25519 key of the centre that signed (for key rollover).
    pub centre_key: String,
    pub records: Vec<ReceiptRecord>,
    pub ledgers: Vec<ReceiptLedger>,
    /// The centre's latest signed roster file (text): the van takes it when newer than its own,
    /// so a revocation travels by USB too.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub roster: Option<String>,
    /// Every centre key rotation (canonical JSON text, in order): a van that missed one takes it
    /// from here, then checks this receipt with the new key.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub key_rotations: Vec<String>,
}

impl ReceiptBody {
    fn signing_message(&self) -> Result<Vec<u8>, BundleError> {
        let canonical = to_canonical(self).map_err(|e| BundleError::Encode(e.to_string()))?;
        let mut m = RECEIPT_DOMAIN.to_vec();
        m.extend_from_slice(&sha256(&canonical));
        Ok(m)
    }
}

/// A receipt file: the body and the centre's signature (hex Ed25519), as canonical JSON.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Receipt {
    pub receipt: ReceiptBody,
    pub signature: String,
}

impl Receipt {
    /// Sign `body` with the centre's key.
    pub fn sign(
        body: ReceiptBody,
        key: &ed25519_dalek::SigningKey,
    ) -> Result<Receipt, BundleError> {
        use ed25519_dalek::Signer;
        let sig: Signature = key.sign(&body.signing_message()?);
        Ok(Receipt {
            receipt: body,
            signature: hex::encode(sig.to_bytes()),
        })
    }

    pub fn to_bytes(&self) -> Result<Vec<u8>, BundleError> {
        to_canonical(self).map_err(|e| BundleError::Encode(e.to_string()))
    }

    /// The key rotations a receipt file carries, before its signature is checked (each rotation
    /// is checked on its own against the key set the station holds).
    pub fn key_rotations_in(bytes: &[u8]) -> Vec<String> {
        serde_json::from_slice::<Receipt>(bytes)
            .map(|r| r.receipt.key_rotations)
            .unwrap_or_default()
    }

    /// Parse a receipt file and check its signature with one of the centre's keys (the current
    /// one, or one of an earlier version for a receipt made before a rotation).
    pub fn verify(bytes: &[u8], centre: &[VerifyingKey]) -> Result<Receipt, BundleError> {
        let receipt: Receipt =
            serde_json::from_slice(bytes).map_err(|e| BundleError::Receipt(e.to_string()))?;
        if receipt.receipt.format != RECEIPT_FORMAT {
            return Err(BundleError::Receipt(format!(
                "format {:?} is not supported (this build reads {RECEIPT_FORMAT})",
                receipt.receipt.format
            )));
        }
        let sig = parse_signature(&receipt.signature).map_err(|_| BundleError::ReceiptSignature)?;
        let message = receipt.receipt.signing_message()?;
        if !centre
            .iter()
            .any(|k| k.verify_strict(&message, &sig).is_ok())
        {
            return Err(BundleError::ReceiptSignature);
        }
        for r in &receipt.receipt.records {
            if r.status != "verified" && r.status != "rejected" {
                return Err(BundleError::Receipt(format!(
                    "record {} has status {:?}",
                    r.id, r.status
                )));
            }
        }
        Ok(receipt)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::StationKey;

    fn header(key: &StationKey, badge: &StationKey, parts: Vec<Part>) -> BundleHeader {
        let manifest = Manifest {
            format: BUNDLE_FORMAT.into(),
            bundle_id: ulid::Ulid::new().to_string(),
            station: "VAN-1".into(),
            created_ms: 1,
            first_seq: 1,
            last_seq: 1,
            supervisor: Countersigner {
                id: "SUP-1".into(),
                key: badge.public_hex(),
            },
            parts,
        };
        let m = manifest.signing_message().unwrap();
        BundleHeader {
            station_signature: hex::encode(key.sign(&m).to_bytes()),
            supervisor_signature: hex::encode(badge.sign(&m).to_bytes()),
            manifest,
        }
    }

    fn part(kind: PartKind, name: &str, bytes: &[u8]) -> Part {
        Part {
            kind,
            name: name.into(),
            len: bytes.len() as u64,
            sha256: crate::sha256_hex(bytes),
        }
    }

    fn write(dir: &Path, header: &BundleHeader, parts: &[&[u8]]) -> PathBuf {
        let path = dir.join("b.tasjil");
        let mut out = Vec::new();
        let mut i = 0;
        write_bundle(
            &mut out,
            header,
            &mut |_| {
                i += 1;
                Ok(parts[i - 1].to_vec())
            },
            &mut |_| {},
        )
        .unwrap();
        std::fs::write(&path, out).unwrap();
        path
    }

    #[test]
    fn parts_read_back_and_signatures_verify() {
        let dir = tempfile::tempdir().unwrap();
        let (key, badge) = (StationKey::generate(), StationKey::generate());
        let a: &[u8] = b"first part";
        let sha = crate::sha256_hex(b"second");
        let h = header(
            &key,
            &badge,
            vec![
                part(PartKind::Ledger, "VAN-1/2026-11-27", a),
                part(PartKind::Payload, &sha, b"second"),
            ],
        );
        let path = write(dir.path(), &h, &[a, b"second"]);
        let mut r = BundleReader::open(&path).unwrap();
        r.header().verify_signatures(&key.verifying_key()).unwrap();
        assert_eq!(r.read_part(1).unwrap(), b"second");
        assert_eq!(r.read_part(0).unwrap(), a);
        // Another station key does not verify; a swapped supervisor signature does not either.
        let other = StationKey::generate();
        assert!(matches!(
            r.header().verify_signatures(&other.verifying_key()),
            Err(BundleError::StationSignature(_))
        ));
        let mut forged = r.header().clone();
        forged.supervisor_signature = hex::encode(
            other
                .sign(&forged.manifest.signing_message().unwrap())
                .to_bytes(),
        );
        assert!(matches!(
            forged.verify_signatures(&key.verifying_key()),
            Err(BundleError::SupervisorSignature(_))
        ));
    }

    #[test]
    fn a_signed_bundle_with_a_path_like_id_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let (key, badge) = (StationKey::generate(), StationKey::generate());
        for id in ["../../../tmp/x", "01ARZ3NDEKTSV4RRFFQ69G5FA/", ""] {
            let mut h = header(&key, &badge, vec![]);
            h.manifest.bundle_id = id.into();
            let m = h.manifest.signing_message().unwrap();
            h.station_signature = hex::encode(key.sign(&m).to_bytes());
            h.supervisor_signature = hex::encode(badge.sign(&m).to_bytes());
            let path = write(dir.path(), &h, &[]);
            let mut r = BundleReader::open(&path).unwrap();
            let got = verify_bundle(&mut r, &key.verifying_key(), &mut |_| {});
            assert!(
                matches!(&got, Err(BundleError::Header(m)) if m.contains("not a ULID")),
                "{id:?}: {got:?}"
            );
        }
    }

    #[test]
    fn truncation_padding_and_flipped_bytes_are_named() {
        let dir = tempfile::tempdir().unwrap();
        let (key, badge) = (StationKey::generate(), StationKey::generate());
        let body = vec![7u8; 5000];
        let sha = crate::sha256_hex(&body);
        let h = header(&key, &badge, vec![part(PartKind::Payload, &sha, &body)]);
        let path = write(dir.path(), &h, &[&body]);
        let good = std::fs::read(&path).unwrap();

        std::fs::write(&path, &good[..good.len() - 1]).unwrap();
        assert!(matches!(
            BundleReader::open(&path),
            Err(BundleError::Truncated { .. })
        ));
        let mut padded = good.clone();
        padded.push(0);
        std::fs::write(&path, &padded).unwrap();
        assert!(matches!(
            BundleReader::open(&path),
            Err(BundleError::TrailingBytes { extra: 1 })
        ));
        let mut flipped = good.clone();
        let last = flipped.len() - 10;
        flipped[last] ^= 1;
        std::fs::write(&path, &flipped).unwrap();
        let mut r = BundleReader::open(&path).unwrap();
        assert!(matches!(
            r.read_part(0),
            Err(BundleError::PartHash { index: 0, .. })
        ));
        std::fs::write(&path, b"PK\x03\x04 a zip file").unwrap();
        assert!(matches!(
            BundleReader::open(&path),
            Err(BundleError::NotABundle)
        ));
        // A header byte changed: either no longer JSON/canonical, or the signature fails.
        let mut head = good.clone();
        let pos = head.windows(5).position(|w| w == b"VAN-1").unwrap();
        head[pos + 4] = b'2';
        std::fs::write(&path, &head).unwrap();
        let r = BundleReader::open(&path).unwrap();
        assert!(matches!(
            r.header().verify_signatures(&key.verifying_key()),
            Err(BundleError::StationSignature(_))
        ));
    }

    #[test]
    fn receipts_verify_only_with_the_centre_key() {
        let centre = ed25519_dalek::SigningKey::from_bytes(&[5u8; 32]);
        let body = ReceiptBody {
            format: RECEIPT_FORMAT.into(),
            bundle_id: "B".into(),
            bundle_sha256: "0".repeat(64),
            station: "VAN-1".into(),
            issued_ms: 3,
            centre_key: hex::encode(centre.verifying_key().as_bytes()),
            records: vec![ReceiptRecord {
                id: "R".into(),
                seq: 1,
                envelope_sha256: "1".repeat(64),
                status: "verified".into(),
                reason: None,
            }],
            ledgers: vec![],
            roster: None,
            key_rotations: vec![],
        };
        let r = Receipt::sign(body, &centre).unwrap();
        let bytes = r.to_bytes().unwrap();
        assert_eq!(
            Receipt::verify(&bytes, &[centre.verifying_key()]).unwrap(),
            r
        );
        let text = String::from_utf8(bytes)
            .unwrap()
            .replace("verified", "rejected");
        assert!(matches!(
            Receipt::verify(text.as_bytes(), &[centre.verifying_key()]),
            Err(BundleError::ReceiptSignature)
        ));
        let other = ed25519_dalek::SigningKey::from_bytes(&[6u8; 32]);
        assert!(matches!(
            Receipt::verify(&r.to_bytes().unwrap(), &[other.verifying_key()]),
            Err(BundleError::ReceiptSignature)
        ));
    }
}
