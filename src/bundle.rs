//! The station's side of the USB round trip: `tasjil export` writes the approved, unacknowledged
//! records to a bundle file on a stick, countersigned by the supervisor's badge; `tasjil receipt
//! import` takes the centre's signed answer back in. Formats: `tasjil_sync::bundle` and
//! `docs/BUNDLE-FORMAT.md`.

use std::collections::{BTreeMap, BTreeSet};
use std::fs::File;
use std::io::{self, BufWriter};
use std::path::{Path, PathBuf};

use anyhow::{bail, Context};
use serde::Serialize;
use tasjil_sync::bundle::{
    verify_bundle, write_bundle, BundleHeader, BundleReader, Countersigner, Manifest, Part,
    PartKind, Receipt, WriteError, BUNDLE_FORMAT, MAX_RECEIPT,
};
use tasjil_sync::ledger::{day_of_ms, doc_name};
use tasjil_sync::{Envelope, Signed};

use crate::enrolment::OfficerBadge;
use crate::station::Station;
use crate::store::{EnvelopeRow, ExportRow, ReceiptOutcome};

/// Which records to export: those created on days `since..=until` (UTC, `YYYY-MM-DD`), all when
/// unset.
#[derive(Debug, Clone, Default)]
pub struct Range {
    pub since: Option<String>,
    pub until: Option<String>,
}

impl Range {
    fn contains(&self, created_ms: i64) -> bool {
        let day = day_of_ms(created_ms);
        self.since.as_deref().is_none_or(|s| day.as_str() >= s)
            && self.until.as_deref().is_none_or(|u| day.as_str() <= u)
    }

    /// Check the dates are `YYYY-MM-DD`.
    pub fn check(&self) -> anyhow::Result<()> {
        for d in [&self.since, &self.until].into_iter().flatten() {
            let ok = d.len() == 10
                && d.bytes().enumerate().all(|(i, b)| {
                    if i == 4 || i == 7 {
                        b == b'-'
                    } else {
                        b.is_ascii_digit()
                    }
                });
            if !ok {
                bail!("{d:?} is not a date: write it as YYYY-MM-DD");
            }
        }
        Ok(())
    }
}

/// What `tasjil export` did.
#[derive(Debug, Clone, Serialize)]
pub struct ExportReport {
    /// The bundle file; `None` when there was nothing to export.
    pub file: Option<PathBuf>,
    pub bundle_id: Option<String>,
    pub first_seq: u64,
    pub last_seq: u64,
    pub records: u64,
    pub bytes: u64,
    /// Why some unacknowledged records were left out, if any were.
    pub held_back: Option<String>,
    /// Records left out (not approved, or after one that is not).
    pub held_back_records: u64,
}

/// Pick the records to export: unacknowledged ones in the range, in sequence order, as long as
/// they are approved and consecutive (the centre accepts a station's chain only in order).
/// `links`: the station's restore links, place -> the sequence they start from: a record right
/// after a link follows the record the link starts from.
fn select(
    rows: Vec<EnvelopeRow>,
    range: &Range,
    links: &BTreeMap<u64, u64>,
    withdrawn: &BTreeSet<String>,
) -> (Vec<EnvelopeRow>, Option<String>, u64) {
    let candidates: Vec<EnvelopeRow> = rows
        .into_iter()
        .filter(|r| range.contains(r.created_ms))
        .collect();
    let mut chosen: Vec<EnvelopeRow> = Vec::new();
    let mut held = None;
    let total = candidates.len() as u64;
    for row in candidates {
        // A record a supervisor rejected goes without its payload (the chain needs its envelope).
        if !row.approved && !withdrawn.contains(&row.id) {
            held = Some(format!(
                "record {} (sequence {}) is not approved: it and the records after it stay on the station until a supervisor approves them (tasjil approve)",
                row.id, row.seq
            ));
            break;
        }
        if let Some(last) = chosen.last() {
            let seq = row.seq as u64;
            let after_link = seq
                .checked_sub(1)
                .and_then(|place| links.get(&place))
                .is_some_and(|from| *from == last.seq as u64);
            if row.seq != last.seq + 1 && !after_link {
                held = Some(format!(
                    "record {} (sequence {}) does not follow sequence {} in this export: export the records in between first",
                    row.id, row.seq, last.seq
                ));
                break;
            }
        }
        chosen.push(row);
    }
    let left = total - chosen.len() as u64;
    (chosen, held, left)
}

/// Write the bundle of approved, unacknowledged records (in `range`) into directory `to`,
/// countersigned by `badge` (already unlocked with its PIN). The file appears under its final
/// name only once complete and fsynced, and is read back and verified before this returns.
pub fn export(
    station: &mut Station,
    badge: &mut dyn OfficerBadge,
    to: &Path,
    range: &Range,
    progress: &mut dyn FnMut(u64, u64),
) -> anyhow::Result<ExportReport> {
    range.check()?;
    if !to.is_dir() {
        bail!(
            "{} is not a directory: is the USB stick plugged in and mounted?",
            to.display()
        );
    }
    let station_id = station.station_id().to_string();
    let pending = station.store().pending_sync()?;
    let restore_links = station.store().restore_links()?;
    let link_starts: BTreeMap<u64, u64> = restore_links
        .iter()
        .filter_map(|l| {
            tasjil_sync::RestoreLink::from_bytes(&l.link)
                .ok()
                .map(|link| (l.seq, link.body().from_seq))
        })
        .collect();
    let withdrawn: BTreeSet<String> = station
        .store()
        .station_decisions()?
        .into_iter()
        .filter(|(_, d)| d.status == tasjil_sync::ledger::Status::Withdrawn)
        .map(|(id, _)| id)
        .collect();
    let (rows, held_back, held_back_records) = select(pending, range, &link_starts, &withdrawn);
    if rows.is_empty() {
        return Ok(ExportReport {
            file: None,
            bundle_id: None,
            first_seq: 0,
            last_seq: 0,
            records: 0,
            bytes: 0,
            held_back,
            held_back_records,
        });
    }

    // The parts: the station's restore links (a few bytes each: the centre needs the one the
    // records after a restore follow), envelopes, their payloads, the ledgers of their days.
    let mut parts = Vec::new();
    let mut links: BTreeMap<String, Vec<u8>> = BTreeMap::new();
    for link in restore_links {
        parts.push(Part {
            kind: PartKind::Restore,
            name: link.seq.to_string(),
            len: link.link.len() as u64,
            sha256: tasjil_sync::sha256_hex(&link.link),
        });
        links.insert(link.seq.to_string(), link.link);
    }
    let mut envelopes: BTreeMap<String, Vec<u8>> = BTreeMap::new();
    let mut payload_parts = Vec::new();
    let mut days = BTreeSet::new();
    for row in &rows {
        let env = Envelope::<Signed>::from_bytes(&row.envelope)
            .with_context(|| format!("stored envelope {} is damaged: run tasjil verify", row.id))?;
        let payload = &env.body().payload;
        parts.push(Part {
            kind: PartKind::Envelope,
            name: row.id.clone(),
            len: row.envelope.len() as u64,
            sha256: tasjil_sync::sha256_hex(&row.envelope),
        });
        envelopes.insert(row.id.clone(), row.envelope.clone());
        days.insert(day_of_ms(row.created_ms));
        if withdrawn.contains(&row.id) {
            // Rejected at the station: the sealed payload never leaves it.
            continue;
        }
        if station.store().payload_purged(&payload.sha256)? {
            bail!(
                "the sealed payload of record {} was already purged from this station; it cannot be exported",
                row.id
            );
        }
        payload_parts.push(Part {
            kind: PartKind::Payload,
            name: payload.sha256.clone(),
            len: payload.len,
            sha256: payload.sha256.clone(),
        });
    }
    parts.extend(payload_parts);
    let mut ledgers: BTreeMap<String, Vec<u8>> = BTreeMap::new();
    for day in &days {
        let name = doc_name(&station_id, day);
        if let Some(doc) = station.store().ledger_doc(&name)? {
            parts.push(Part {
                kind: PartKind::Ledger,
                name: name.clone(),
                len: doc.len() as u64,
                sha256: tasjil_sync::sha256_hex(&doc),
            });
            ledgers.insert(name, doc);
        }
    }

    let first_seq = rows.first().map_or(0, |r| r.seq as u64);
    let last_seq = rows.last().map_or(0, |r| r.seq as u64);
    let manifest = Manifest {
        format: BUNDLE_FORMAT.into(),
        bundle_id: ulid::Ulid::new().to_string(),
        station: station_id.clone(),
        created_ms: crate::now_ms(),
        first_seq,
        last_seq,
        supervisor: Countersigner {
            id: badge.officer_id(),
            key: badge.public_key_hex(),
        },
        parts,
    };
    let message = manifest.signing_message()?;
    let supervisor_signature = hex::encode(
        badge
            .sign(&message)
            .context("the supervisor's badge did not sign the bundle")?,
    );
    let station_signature = hex::encode(station.key().sign(&message).to_bytes());
    let header = BundleHeader {
        manifest,
        station_signature,
        supervisor_signature,
    };

    let file_name = header.manifest.file_name();
    let target = to.join(&file_name);
    let partial = to.join(format!(".{file_name}.partial"));
    let total = header.manifest.parts_len();
    let written = {
        let store = station.store();
        let mut fetch = |part: &Part| -> Result<Vec<u8>, String> {
            match part.kind {
                PartKind::Envelope => envelopes.get(&part.name).cloned(),
                PartKind::Ledger => ledgers.get(&part.name).cloned(),
                PartKind::Restore => links.get(&part.name).cloned(),
                PartKind::Payload => store.payload(&part.sha256).map_err(|e| e.to_string())?,
            }
            .ok_or_else(|| format!("{} {} is not in the store", part.kind, part.name))
        };
        write_file(&partial, &target, &header, &mut fetch, &mut |n| {
            progress(n, total)
        })
    };
    let bytes = match written {
        Ok(n) => n,
        Err(e) => {
            let _ = std::fs::remove_file(&partial);
            return Err(e);
        }
    };

    // Read back what the stick holds and check all of it, as the centre will.
    let key = station.key().verifying_key();
    let readback = BundleReader::open(&target)
        .map_err(anyhow::Error::from)
        .and_then(|mut r| Ok(verify_bundle(&mut r, &key, &mut |_| {})?));
    match readback {
        Ok(v) if v.header == header => {}
        other => {
            let _ = std::fs::remove_file(&target);
            let why = match other {
                Err(e) => format!("{e:#}"),
                Ok(_) => "the header read back differs from the one written".into(),
            };
            bail!(
                "the bundle read back from {} does not match what was written ({why}); the file was removed: try another stick",
                to.display()
            );
        }
    }

    let export = ExportRow {
        bundle_id: header.manifest.bundle_id.clone(),
        file: target.display().to_string(),
        manifest_sha256: header.manifest.digest_hex()?,
        first_seq,
        last_seq,
        bytes,
        supervisor: header.manifest.supervisor.id.clone(),
    };
    let ids: Vec<String> = rows.iter().map(|r| r.id.clone()).collect();
    let key = station.key();
    station
        .store()
        .record_export(&key, &export, &ids, crate::now_ms())?;
    Ok(ExportReport {
        file: Some(target),
        bundle_id: Some(export.bundle_id),
        first_seq,
        last_seq,
        records: ids.len() as u64,
        bytes,
        held_back,
        held_back_records,
    })
}

/// Write the bundle to `partial`, fsync it, rename it to `target`, fsync the directory.
fn write_file(
    partial: &Path,
    target: &Path,
    header: &BundleHeader,
    fetch: &mut dyn FnMut(&Part) -> Result<Vec<u8>, String>,
    progress: &mut dyn FnMut(u64),
) -> anyhow::Result<u64> {
    let dir = partial.parent().unwrap_or(Path::new("."));
    let file = File::create(partial).map_err(|e| stick_error(dir, e))?;
    let mut out = BufWriter::with_capacity(1 << 20, file);
    let n = write_bundle(&mut out, header, fetch, progress).map_err(|e| match e {
        WriteError::Io(e) => stick_error(dir, e),
        WriteError::Bundle(e) => anyhow::anyhow!(
            "the station's own data does not match its manifest ({e}); nothing was exported: run tasjil verify"
        ),
        WriteError::Source(e) => anyhow::anyhow!("cannot read from the station store: {e}"),
    })?;
    let file = out
        .into_inner()
        .map_err(|e| stick_error(dir, e.into_error()))?;
    file.sync_all().map_err(|e| stick_error(dir, e))?;
    drop(file);
    std::fs::rename(partial, target).map_err(|e| stick_error(dir, e))?;
    File::open(dir)
        .and_then(|d| d.sync_all())
        .map_err(|e| stick_error(dir, e))?;
    Ok(n)
}

/// What went wrong writing to the stick, in the supervisor's words. The kiosk tells a full stick
/// from a read-only one by this type (`anyhow::Error::downcast_ref`), not by the message.
#[derive(Debug, thiserror::Error)]
pub enum StickError {
    #[error("{} is full: the bundle does not fit; nothing was exported (free space on the stick or use a bigger one)", .0.display())]
    Full(PathBuf),
    #[error("{} is read-only (write-protected stick?); nothing was exported", .0.display())]
    ReadOnly(PathBuf),
    #[error("cannot write to {}: permission denied; nothing was exported", .0.display())]
    Denied(PathBuf),
    #[error("cannot write the bundle to {}: {}; nothing was exported (was the stick pulled out?)", .0.display(), .1)]
    Other(PathBuf, #[source] io::Error),
}

/// An I/O error on the stick, in the supervisor's words.
fn stick_error(dir: &Path, e: io::Error) -> anyhow::Error {
    let place = dir.to_path_buf();
    anyhow::Error::new(match e.kind() {
        io::ErrorKind::StorageFull | io::ErrorKind::QuotaExceeded => StickError::Full(place),
        io::ErrorKind::ReadOnlyFilesystem => StickError::ReadOnly(place),
        io::ErrorKind::PermissionDenied => StickError::Denied(place),
        _ => StickError::Other(place, e),
    })
}

/// What `tasjil receipt import` did.
#[derive(Debug, Clone, Serialize)]
pub struct ReceiptReport {
    pub bundle_id: String,
    pub issued_ms: i64,
    #[serde(flatten)]
    pub outcome: ReceiptOutcome,
    /// The roster the receipt carried: taken, already held, or refused (and why).
    pub roster: Option<RosterOutcome>,
}

/// What became of the roster a receipt carried.
#[derive(Debug, Clone, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum RosterOutcome {
    Imported(crate::roster::Imported),
    Refused(String),
}

/// Check a receipt's signature with the centre's key this station was set up with, check it is
/// for this station, and apply it.
pub fn import_receipt(station: &mut Station, path: &Path) -> anyhow::Result<ReceiptReport> {
    let len = std::fs::metadata(path)
        .with_context(|| format!("cannot read {}", path.display()))?
        .len();
    if len > MAX_RECEIPT {
        bail!(
            "{} is {len} bytes: too large to be a receipt",
            path.display()
        );
    }
    let bytes = std::fs::read(path).with_context(|| format!("cannot read {}", path.display()))?;
    // Key rotations first: a receipt signed with a key this station has not taken yet carries
    // the rotations that lead to it.
    let rotations = Receipt::key_rotations_in(&bytes);
    if !rotations.is_empty() {
        station
            .take_key_rotations(&rotations, &format!("receipt {}", path.display()))
            .with_context(|| format!("receipt {} refused; nothing changed", path.display()))?;
    }
    let centre = station.centre().verifying_keys();
    let receipt = Receipt::verify(&bytes, &centre)
        .with_context(|| format!("receipt {} refused; nothing changed", path.display()))?;
    if receipt.receipt.station != station.station_id() {
        bail!(
            "receipt {} is for station {}, and this is station {}; nothing changed",
            path.display(),
            receipt.receipt.station,
            station.station_id()
        );
    }
    let key = station.key();
    let sha = tasjil_sync::sha256_hex(&bytes);
    let outcome = station
        .store()
        .apply_receipt(&key, &receipt, &sha, crate::now_ms())?;
    let roster = receipt.receipt.roster.as_ref().map(|text| {
        match station.import_roster(text.as_bytes(), &format!("receipt {}", path.display())) {
            Ok(i) => RosterOutcome::Imported(i),
            Err(e) => RosterOutcome::Refused(format!("{e:#}")),
        }
    });
    Ok(ReceiptReport {
        bundle_id: receipt.receipt.bundle_id.clone(),
        issued_ms: receipt.receipt.issued_ms,
        outcome,
        roster,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn row(seq: i64, approved: bool, day_ms: i64) -> EnvelopeRow {
        EnvelopeRow {
            seq,
            id: format!("R{seq}"),
            hash: String::new(),
            officer: "O".into(),
            kind: "new".into(),
            created_ms: day_ms,
            payload: String::new(),
            envelope: Vec::new(),
            approved,
            exported: false,
            status: "approved",
            rejected_reason: None,
            issuance: None,
            issuance_reason: None,
        }
    }

    #[test]
    fn selection_stops_at_the_first_unapproved_record() {
        let rows = vec![
            row(1, true, 0),
            row(2, true, 0),
            row(3, false, 0),
            row(4, true, 0),
        ];
        let (chosen, held, left) =
            select(rows, &Range::default(), &BTreeMap::new(), &BTreeSet::new());
        assert_eq!(chosen.iter().map(|r| r.seq).collect::<Vec<_>>(), [1, 2]);
        assert!(held.unwrap().contains("R3"));
        assert_eq!(left, 2);
    }

    #[test]
    fn selection_keeps_to_the_date_range_and_to_consecutive_records() {
        let day = 86_400_000;
        let rows = vec![row(1, true, 0), row(2, true, day), row(3, true, 2 * day)];
        let range = Range {
            since: Some("1970-01-02".into()),
            until: Some("1970-01-02".into()),
        };
        let (chosen, held, _) = select(rows.clone(), &range, &BTreeMap::new(), &BTreeSet::new());
        assert_eq!(chosen.iter().map(|r| r.seq).collect::<Vec<_>>(), [2]);
        assert!(held.is_none());
        let gap = vec![row(1, true, 0), row(3, true, 0)];
        let (chosen, held, _) = select(
            gap.clone(),
            &Range::default(),
            &BTreeMap::new(),
            &BTreeSet::new(),
        );
        assert_eq!(chosen.len(), 1);
        assert!(held.unwrap().contains("does not follow"));
        // After a restore link from 1 at place 2, record 3 follows record 1.
        let links = BTreeMap::from([(2, 1)]);
        let (chosen, held, _) = select(gap, &Range::default(), &links, &BTreeSet::new());
        assert_eq!((chosen.len(), held), (2, None));
        assert!(Range {
            since: Some("27/11/2026".into()),
            until: None
        }
        .check()
        .is_err());
    }
}
