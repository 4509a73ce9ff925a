//! `tasjil verify`: check everything the station stores, and name each record that fails and why.
//!
//! Checks, per envelope in sequence order: the signed bytes parse and follow the schema; the index
//! columns agree with the signed bytes; the station signature; the officer co-signature against the
//! badge key registered for that officer; the chain (sequence and previous-envelope hash); the
//! sealed payload's length and SHA-256. Then the audit chain, entry by entry, and every record
//! marked acknowledged against the verdict the centre signed for it (a row edited on disk to look
//! acknowledged is named). SQLite's own structural check runs first.

use serde::Serialize;
use tasjil_sync::keys::parse_verifying_key;
use tasjil_sync::{sha256_hex, Envelope, GENESIS};

use crate::station::View;
use crate::store::{check_audit_row, StoreError};

#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct Problem {
    pub id: String,
    pub reason: String,
}

#[derive(Debug, Clone, Serialize)]
pub struct Report {
    pub ok: bool,
    pub records: u64,
    pub valid: u64,
    pub audit_entries: u64,
    pub problems: Vec<Problem>,
}

pub fn verify(view: &View) -> Result<Report, StoreError> {
    let store = &view.store;
    let mut problems = Vec::new();
    for line in store.quick_check()? {
        problems.push(Problem {
            id: "database".into(),
            reason: format!("SQLite structure check: {line}"),
        });
    }
    let station_key = parse_verifying_key(&view.public_key).ok();
    if station_key.is_none() {
        problems.push(Problem {
            id: "station".into(),
            reason: "the stored station public key is unreadable".into(),
        });
    }

    let rows = store.envelopes()?;
    let links = store.restore_links()?;
    let mut links = links.iter().peekable();
    let mut valid = 0;
    let mut expected_seq = 1u64;
    let mut expected_prev = GENESIS.to_string();
    // The restore links before `limit` move the chain on to their own place.
    let mut follow_links = |limit: u64,
                            expected_seq: &mut u64,
                            expected_prev: &mut String,
                            problems: &mut Vec<Problem>| {
        while let Some(link) = links.next_if(|l| l.seq < limit) {
            (*expected_seq, *expected_prev) = follow_link(
                link,
                *expected_seq,
                expected_prev,
                station_key.as_ref(),
                problems,
            );
        }
    };
    for row in &rows {
        follow_links(
            row.seq.max(0) as u64,
            &mut expected_seq,
            &mut expected_prev,
            &mut problems,
        );
        let mut reasons: Vec<String> = Vec::new();
        let computed = sha256_hex(&row.envelope);
        match Envelope::from_bytes(&row.envelope) {
            Err(e) => reasons.push(e.to_string()),
            Ok(env) => {
                let b = env.body();
                let index_ok = b.id == row.id
                    && b.seq as i64 == row.seq
                    && b.officer == row.officer
                    && b.kind.as_str() == row.kind
                    && b.payload.sha256 == row.payload
                    && computed == row.hash;
                if !index_ok {
                    reasons.push("stored index columns do not match the signed envelope".into());
                }
                if b.station != view.station_id {
                    reasons.push(format!(
                        "envelope names station {}, this is {}",
                        b.station, view.station_id
                    ));
                }
                if let Some(k) = &station_key {
                    if let Err(e) = env.verify_signature(k) {
                        reasons.push(e.to_string());
                    }
                }
                match store
                    .officer_key(&b.officer)?
                    .map(|k| parse_verifying_key(&k))
                {
                    Some(Ok(badge)) => {
                        if let Err(e) = env.verify_officer(&badge) {
                            reasons.push(e.to_string());
                        }
                    }
                    Some(Err(e)) => reasons.push(format!(
                        "badge key of officer {} is unreadable: {e}",
                        b.officer
                    )),
                    None => {
                        reasons.push(format!("officer {} has no registered badge key", b.officer))
                    }
                }
                if let Err(e) = env.verify_chain_link(expected_seq, &expected_prev) {
                    reasons.push(e.to_string());
                }
                match store.payload(&b.payload.sha256)? {
                    // Purged after the centre acknowledged it: the envelope still proves it.
                    Some(_)
                        if store.payload_purged(&b.payload.sha256)?
                            && row.status == "acknowledged" => {}
                    Some(sealed) => {
                        if let Err(e) = env.verify_payload(&sealed) {
                            reasons.push(e.to_string());
                        }
                    }
                    None => reasons.push("sealed payload is missing".into()),
                }
            }
        }
        // A damaged record should not also make its successor look broken: carry the chain on
        // from the hash the successor was built on (the stored index) when this one failed.
        expected_prev = if reasons.is_empty() {
            computed
        } else {
            row.hash.clone()
        };
        expected_seq = row.seq.max(0) as u64 + 1;
        if reasons.is_empty() {
            valid += 1;
        } else {
            problems.push(Problem {
                id: row.id.clone(),
                reason: reasons.join("; "),
            });
        }
    }

    // A link after the last record (nothing enrolled since the restore) is checked too.
    follow_links(
        u64::MAX,
        &mut expected_seq,
        &mut expected_prev,
        &mut problems,
    );

    // Every acknowledgement must be a verdict the centre signed for that exact envelope.
    let centre = store
        .config("centre_public")?
        .and_then(|t| tasjil_sync::keys::CentrePublic::parse(&t).ok())
        .map(|c| c.verifying_keys());
    match &centre {
        None => problems.push(Problem {
            id: "station".into(),
            reason: "the stored centre public key is unreadable".into(),
        }),
        Some(centre) => {
            for (id, hash, proof) in store.acknowledgements()? {
                if proof.as_deref() == Some("legacy") {
                    continue;
                }
                if let Err(why) = store.check_ack_proof(&id, &hash, proof.as_deref(), centre)? {
                    problems.push(Problem { id, reason: why });
                }
            }
        }
    }

    let audit = store.audit_rows()?;
    let mut prev = GENESIS.to_string();
    for (i, row) in audit.iter().enumerate() {
        let Some(key) = &station_key else { break };
        match check_audit_row(row, i as u64 + 1, &prev, key) {
            Ok(h) => prev = h,
            Err(reason) => {
                problems.push(Problem {
                    id: format!("audit:{}", row.seq),
                    reason,
                });
                prev = sha256_hex(&row.entry);
            }
        }
    }

    Ok(Report {
        ok: problems.is_empty(),
        records: rows.len() as u64,
        valid,
        audit_entries: audit.len() as u64,
        problems,
    })
}

/// Check one restore link against the chain so far (signed by this station, starting from the
/// element before it) and return the `(seq, prev)` the next record must have: the link's own.
fn follow_link(
    row: &crate::store::RestoreRow,
    expected_seq: u64,
    expected_prev: &str,
    station_key: Option<&ed25519_dalek::VerifyingKey>,
    problems: &mut Vec<Problem>,
) -> (u64, String) {
    let mut reasons = Vec::new();
    match tasjil_sync::RestoreLink::from_bytes(&row.link) {
        Err(e) => reasons.push(e.to_string()),
        Ok(link) => {
            let b = link.body();
            if b.seq != row.seq || sha256_hex(&row.link) != row.hash {
                reasons.push("stored index columns do not match the signed link".into());
            }
            if let Some(k) = station_key {
                if let Err(e) = link.verify_signature(k) {
                    reasons.push(e.to_string());
                }
            }
            if b.from_seq + 1 != expected_seq || b.from_hash != expected_prev {
                reasons.push(format!(
                    "restore link starts from sequence {} but the chain before it ends at {}",
                    b.from_seq,
                    expected_seq.saturating_sub(1)
                ));
            }
        }
    }
    if !reasons.is_empty() {
        problems.push(Problem {
            id: format!("restore link at sequence {}", row.seq),
            reason: reasons.join("; "),
        });
    }
    (row.seq + 1, row.hash.clone())
}
