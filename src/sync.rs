//! `tasjil sync`: send what the centre has not acknowledged, learn what it verified or rejected,
//! and record both. The protocol logic is `tasjil_sync::session` (sans IO); this module feeds it
//! from the store and runs it over HTTP.

use std::time::Duration;

use anyhow::Context;
use tasjil_sync::client::{CentreClient, RetryPolicy, SyncError};
use tasjil_sync::session::{PendingRecord, Session, Summary};

use crate::station::Station;

/// Bytes per payload upload request: small enough to make progress on a poor 3G link.
pub const CHUNK: u64 = 256 * 1024;
/// Envelopes per request.
pub const BATCH: usize = 100;

/// One sync with the centre at `url`. `progress(done, total)` is called as work completes.
pub fn sync_once(
    station: &mut Station,
    url: &str,
    retry: RetryPolicy,
    retention: Duration,
    progress: &mut dyn FnMut(&Summary),
) -> anyhow::Result<Summary> {
    let rows = station.store().pending_sync()?;
    // A record a supervisor rejected at the station never goes over the network (its payload
    // must not leave, and the centre learns of the withdrawal only once the ledger has synced):
    // the records from it on wait for a USB export, which carries its envelope without payload.
    let withdrawn: std::collections::BTreeSet<String> = station
        .store()
        .station_decisions()?
        .into_iter()
        .filter(|(_, d)| d.status == tasjil_sync::ledger::Status::Withdrawn)
        .map(|(id, _)| id)
        .collect();
    let rows: Vec<_> = rows
        .into_iter()
        .take_while(|r| !withdrawn.contains(&r.id))
        .collect();
    let pending: Vec<PendingRecord> = rows
        .iter()
        .map(|r| {
            let envelope = String::from_utf8(r.envelope.clone()).with_context(|| {
                format!("stored envelope {} is not text: run tasjil verify", r.id)
            })?;
            let len = tasjil_sync::Envelope::from_bytes(&r.envelope)
                .with_context(|| format!("stored envelope {} is damaged: run tasjil verify", r.id))?
                .body()
                .payload
                .len;
            Ok(PendingRecord {
                id: r.id.clone(),
                envelope,
                payload_sha256: r.payload.clone(),
                payload_len: len,
            })
        })
        .collect::<anyhow::Result<_>>()?;
    let ids: Vec<String> = pending.iter().map(|p| p.id.clone()).collect();
    let session = Session::new(pending, CHUNK, BATCH);
    let station_id = station.station_id().to_string();
    let pins = station.centre().tls_pins();
    let mut client = CentreClient::new(url, &station_id, station.key(), retry, &pins)?;
    let held_roster = station.roster_version()?;

    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("cannot start the network runtime")?;
    let now = crate::now_ms();
    // The centre's key rotations first: verdicts and rosters it signed since are checked with
    // the keys they bring.
    let have = station.centre().version;
    let rotations = match runtime.block_on(client.keys(have)) {
        Ok(r) => r,
        Err(e) => {
            let _ = station
                .store()
                .record_peer(url, false, Some(&e.to_string()), now);
            return Err(e.into());
        }
    };
    let keys_taken = if rotations.is_empty() {
        0
    } else {
        station.take_key_rotations(&rotations, &format!("sync with {url}"))?
    };
    let centre_key = station.centre().verifying_keys();
    // The chain: restore links the centre lacks, and whether it holds more of this station's
    // chain than this store does.
    let chain = match runtime.block_on(exchange_chain(&mut client, station, now)) {
        Ok(c) => c,
        Err(e) => {
            let _ = station
                .store()
                .record_peer(url, false, Some(&e.to_string()), now);
            return Err(e);
        }
    };
    let result: anyhow::Result<(Summary, LedgerReport, Option<String>)> = runtime.block_on(async {
        let summary = {
            let store = station.store();
            let mut read_blob = |sha: &str, offset: u64, len: u64| -> Result<Vec<u8>, String> {
                store
                    .payload_chunk(sha, offset, len)
                    .map_err(|e| e.to_string())?
                    .ok_or_else(|| format!("payload {sha} is not in the store"))
            };
            client.run(session, &mut read_blob, progress).await?
        };
        let names = station.store().ledgers_to_sync(now, 7)?;
        let ledgers = sync_ledgers(
            &mut client,
            station.store(),
            url,
            &names,
            &station_id,
            &centre_key,
        )
        .await?;
        let roster = client.roster(held_roster).await?;
        Ok((summary, ledgers, roster))
    });
    match result {
        Ok((mut summary, ledgers, roster)) => {
            summary.restore_links_sent = chain.sent;
            summary.centre_keys = station.centre().version;
            summary.centre_keys_updated = keys_taken > 0;
            summary.centre_head = Some(chain.centre_head);
            summary.behind_centre = chain.behind;
            // A newer roster first: a revocation takes effect before anything else is done.
            summary.roster = held_roster;
            if let Some(text) = roster {
                match station.import_roster(text.as_bytes(), &format!("sync with {url}")) {
                    Ok(crate::roster::Imported::Taken { version, .. }) => {
                        summary.roster = Some(version);
                        summary.roster_updated = true;
                    }
                    Ok(crate::roster::Imported::AlreadyHeld { .. }) => {}
                    Err(e) => summary.roster_refused = Some(format!("{e:#}")),
                }
            }
            // Acknowledged means: the centre signed a verdict that it holds the record. What its
            // answers said without a signature is not enough to ever purge a payload.
            summary.acknowledged = ledgers
                .acknowledged
                .iter()
                .map(|(id, _)| id.clone())
                .collect();
            let rejected_ids: Vec<&String> = summary.rejected.iter().map(|(id, _)| id).collect();
            let sent: Vec<String> = ids
                .iter()
                .filter(|id| !rejected_ids.contains(id))
                .cloned()
                .collect();
            let store = station.store();
            store.record_sync_outcome(&sent, &ledgers.acknowledged, &summary.rejected, now)?;
            store.record_peer(url, true, None, now)?;
            let purge =
                store.purge_acknowledged(now - retention.as_millis() as i64, now, &centre_key)?;
            let purged = purge.purged;
            if !purge.kept.is_empty() {
                station.audit(
                    "purge-refused",
                    &station_id,
                    serde_json::json!({ "kept": purge.kept }),
                )?;
            }
            station.audit(
                "sync",
                &station_id,
                serde_json::json!({
                    "centre": url, "sent": summary.sent, "already_there": summary.already_there,
                    "acknowledged": summary.acknowledged.len(), "rejected": summary.rejected.len(),
                    "payload_bytes_sent": summary.payload_bytes_sent, "payloads_purged": purged,
                }),
            )?;
            Ok(summary)
        }
        Err(e) => {
            let _ = station
                .store()
                .record_peer(url, false, Some(&e.to_string()), now);
            Err(e)
        }
    }
}

/// What the chain exchange established.
#[derive(Debug, Default)]
struct ChainReport {
    /// Restore links the centre stored.
    sent: usize,
    centre_head: u64,
    /// Set when the centre held more of this chain than this store: what was done about it.
    behind: Option<String>,
}

/// Send the restore links the centre has not stored, and learn where its copy of this
/// station's chain ends. A store that ends before that was restored from a backup without
/// `tasjil restore`: it signs a restore link now, so that the records it makes from now on
/// deliver (those it made since the restore, numbered like records the centre already holds,
/// are refused as forks and say so).
async fn exchange_chain(
    client: &mut CentreClient,
    station: &mut Station,
    now: i64,
) -> anyhow::Result<ChainReport> {
    let mut report = ChainReport::default();
    let mut refusals = Vec::new();
    let mut head = 0;
    for round in 0..2 {
        let unsent: Vec<String> = station
            .store()
            .restore_links()?
            .into_iter()
            .filter(|l| l.sent_ms.is_none())
            .map(|l| String::from_utf8_lossy(&l.link).into_owned())
            .collect();
        if round > 0 && unsent.is_empty() {
            break;
        }
        let answer = client.chain(unsent).await?;
        for result in &answer.links {
            match (&result.outcome, result.seq) {
                (tasjil_sync::protocol::Outcome::Rejected, seq) => refusals.push(format!(
                    "the centre refused the restore link at {}: {}",
                    seq.map_or("?".into(), |s| s.to_string()),
                    result.reason.as_deref().unwrap_or("no reason given")
                )),
                (outcome, Some(seq)) => {
                    station.store().mark_restore_sent(seq, now)?;
                    if *outcome == tasjil_sync::protocol::Outcome::Stored {
                        report.sent += 1;
                    }
                }
                _ => {}
            }
        }
        head = answer.head.seq;
        let (local_seq, local_hash) = station.store().chain_head()?;
        if round > 0 || head <= local_seq {
            break;
        }
        let link = tasjil_sync::RestoreLink::sign(
            tasjil_sync::RestoreBody {
                v: tasjil_sync::record::RESTORE_VERSION,
                station: station.station_id().to_string(),
                from_seq: local_seq,
                from_hash: local_hash.clone(),
                seq: tasjil_sync::RestoreBody::place(head.max(local_seq), now),
                restored_ms: now,
                reason: format!(
                    "found at sync: the centre holds this chain up to {head}, this store ends at {local_seq}"
                ),
            },
            &station.key(),
        )?;
        let detail = serde_json::json!({
            "from_seq": local_seq, "from_hash": local_hash, "link_seq": link.body().seq,
            "link": link.hash()?, "centre_head": head, "found_at": "sync",
        });
        let key = station.key();
        station.store().record_restore(&key, &link, detail, now)?;
        report.behind = Some(format!(
            "this store ended at sequence {local_seq} but the centre holds this station's chain up to {head}: it was restored from a backup without `tasjil restore`. A restore link was signed so that new records deliver; records made since the restore that the centre refuses as forks cannot be delivered."
        ));
    }
    report.centre_head = head;
    if !refusals.is_empty() {
        let mut text = report.behind.take().unwrap_or_default();
        for r in refusals {
            if !text.is_empty() {
                text.push_str("; ");
            }
            text.push_str(&r);
        }
        report.behind = Some(text);
    }
    Ok(report)
}

/// What the ledger exchange established.
#[derive(Debug, Default)]
pub struct LedgerReport {
    pub ledgers: usize,
    pub round_trips: usize,
    /// Records whose current status in the ledger is a verdict the centre signed that it holds
    /// them (verified, or an issuance status), with that verdict.
    pub acknowledged: Vec<(String, crate::store::AckProof)>,
}

/// Run the Automerge sync protocol with the centre on each ledger, one HTTP round trip per
/// message pair, saving the document and the per-peer sync state after each ledger.
async fn sync_ledgers(
    client: &mut CentreClient,
    store: &mut crate::store::Store,
    peer: &str,
    names: &[String],
    station_id: &str,
    centre: &[ed25519_dalek::VerifyingKey],
) -> anyhow::Result<LedgerReport> {
    use base64::Engine;
    use tasjil_sync::protocol::{LedgerRequest, LedgerResponse};
    let b64 = base64::engine::general_purpose::STANDARD;
    let mut report = LedgerReport::default();
    for name in names {
        let (mut ledger, mut state) = store.ledger_for_sync(peer, name)?;
        let mut quiet = false;
        for _ in 0..16 {
            let out = ledger.generate_sync_message(&mut state);
            if out.is_none() && quiet {
                break;
            }
            let request = LedgerRequest {
                name: name.clone(),
                message: out.as_ref().map(|m| b64.encode(m)),
            };
            let answer = client
                .call(
                    tasjil_sync::client::Method::POST,
                    "/v1/ledger",
                    serde_json::to_vec(&request)?,
                )
                .await
                .inspect_err(|_| state.restart())?;
            report.round_trips += 1;
            let answer: LedgerResponse =
                serde_json::from_slice(&answer).context("bad ledger answer")?;
            match answer.message {
                Some(m) => {
                    let bytes = b64.decode(m).context("ledger answer is not base64")?;
                    ledger.receive_sync_message(&mut state, &bytes)?;
                    quiet = false;
                }
                None if out.is_none() => break,
                None => quiet = true,
            }
        }
        store.save_ledger_sync(peer, &mut ledger, &state)?;
        report.ledgers += 1;
        for view in ledger.records() {
            // The latest signed verdict that the centre holds the record, if any.
            let verdict = view.statuses.iter().rev().find(|s| {
                s.status.centre_holds()
                    && centre
                        .iter()
                        .any(|k| s.verify(k, station_id, &view.entry.id, &view.entry.envelope_hash))
            });
            let current_ok = view
                .current
                .as_ref()
                .is_some_and(|c| c.status.centre_holds());
            if let (true, Some(entry)) = (current_ok, verdict) {
                report.acknowledged.push((
                    view.entry.id.clone(),
                    crate::store::AckProof::Ledger {
                        entry: entry.clone(),
                    },
                ));
            }
        }
    }
    Ok(report)
}

/// Whether an error means "the centre is not reachable right now" (worth waiting for).
pub fn is_unreachable(e: &anyhow::Error) -> bool {
    matches!(
        e.downcast_ref::<SyncError>(),
        Some(SyncError::Unreachable { .. })
    )
}

/// What one round of `sync --watch` came to.
#[derive(Debug)]
pub enum WatchRound<'a> {
    Synced(&'a Summary),
    /// The centre could not be reached; the next try comes with backoff.
    Unreachable(&'a anyhow::Error),
    /// Another process holds the station's writer lock (the kiosk while an officer is logged
    /// in): the round waits for the next interval.
    Busy,
}

/// `sync --watch`: keep syncing; when the centre is unreachable, probe again with backoff capped
/// at `max_wait`, so a link that comes up is used within seconds. Each round takes the station's
/// writer lock and gives it back when done, so a kiosk on the same station works between rounds
/// (it releases the lock whenever nobody is logged in); a round that finds the lock held waits
/// for the next one. Never returns on its own except for an error that waiting cannot fix (the
/// centre refused us, a damaged store).
pub fn watch(
    dir: &crate::station::DataDir,
    url: &str,
    every: Duration,
    max_wait: Duration,
    retention: Duration,
    report: &mut dyn FnMut(WatchRound<'_>),
) -> anyhow::Result<()> {
    let mut wait = Duration::from_millis(500);
    loop {
        let retry = RetryPolicy {
            attempts: 2,
            ..RetryPolicy::default()
        };
        let mut station = match Station::open(dir) {
            Ok(station) => station,
            Err(e) if crate::station::is_writer_busy(&e) => {
                report(WatchRound::Busy);
                std::thread::sleep(every);
                continue;
            }
            Err(e) => return Err(e),
        };
        let round = sync_once(&mut station, url, retry, retention, &mut |_| {});
        // Give the lock back before sleeping: the kiosk may need it.
        drop(station);
        match round {
            Ok(summary) => {
                report(WatchRound::Synced(&summary));
                wait = Duration::from_millis(500);
                std::thread::sleep(every);
            }
            Err(e) if is_unreachable(&e) => {
                report(WatchRound::Unreachable(&e));
                std::thread::sleep(wait);
                wait = (wait * 2).min(max_wait);
            }
            Err(e) => return Err(e),
        }
    }
}
