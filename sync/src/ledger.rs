//! The CRDT ledger: one Automerge document per station per day holding the *changing* facts about
//! that station's records — which envelopes exist, supervisor approvals, and the centre's status.
//! The station, its supervisor, a second kiosk and the centre all write; merges never lose a write.
//! No I/O here: bytes in (saved documents, sync messages), bytes out.
//!
//! Only ids, hashes and small metadata enter the ledger, enforced by the types (strings and
//! integers, no byte fields, no floats) and by validation on every write: ids and names are short
//! printable tokens, an envelope hash is 64 lowercase hex digits, a reason is at most
//! [`MAX_REASON`] characters. Biometric and demographic data stay in the sealed payload.
//!
//! Document layout (scalars only; integers are Automerge int/uint, never floats):
//!
//! ```text
//! ROOT { format: "tasjil-ledger/1", name: "VAN-07-A/2026-11-27",
//!        records:   { <id>: { hash, seq (uint), officer, time_ms (int) } },
//!        approvals: { "<id>\u{1f}<supervisor>": time_ms (int) },
//!        statuses:  { <id>: [ { status, by, time_ms (int), reason?, sig? } ] } }
//! ```
//!
//! Why this shape (each choice avoids a way Automerge can drop a write):
//! - Two replicas that each create the same map at the same key get two conflicting objects and
//!   one of them disappears from view. So the root and its three containers are made by a
//!   *skeleton* change that is byte-identical on every replica (fixed actor and time derived from
//!   the document name): every replica of a (station, day) shares it, even one created offline.
//! - Below the root, approvals are flat keys `(id, supervisor)` holding the approval time, so two
//!   supervisors approving concurrently write different keys. A record's map is made only by the
//!   writer of its envelope (identical concurrent re-adds are harmless).
//! - A record's status list is made by whoever writes its first status, and two writers may do so
//!   concurrently (the centre may write before the station's record arrives). Such lists are kept
//!   as conflicting values of the same key and never overwritten: a writer appends to the list
//!   that wins and readers take the union of all of them. Appends to one list all survive. A
//!   status written before its record shows once the record is added; until then its id is in
//!   [`Ledger::orphan_ids`].
//!
//! Replica identity: every writer must use its own actor id (16 random bytes per opened ledger is
//! safest). Two replicas writing with the same actor corrupt the history; a writer that restores an
//! old copy of the ledger and continues with the same actor does the same. [`actor_from_name`]
//! derives an actor from a writer name for writers that never lose their copy.
//!
//! Sync: the Automerge sync protocol, one message per HTTP request/response. Keep a [`PeerState`]
//! per (peer, document) and persist [`PeerState::encode`] after each sync: with the saved state a
//! repeat sync summarises only the changes since the last one instead of the whole day (the saving
//! grows with the document: ~5% of the bytes at 200 records here, ~3× at 10 k records in FACTS).

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;

use automerge::sync::{self, SyncDoc};
use automerge::transaction::{CommitOptions, Transactable, Transaction};
use automerge::{
    ActorId, Automerge, AutomergeError, ChangeHash, ObjId, ObjType, ReadDoc, ScalarValue, Value,
    ValueRef, ROOT,
};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

/// Value of the root `format` key. Part of the skeleton: changing it makes new replicas
/// unmergeable with old ones, so it is a format version, not a label.
const FORMAT: &str = "tasjil-ledger/1";
const KEY_FORMAT: &str = "format";
const KEY_NAME: &str = "name";
const KEY_RECORDS: &str = "records";
const KEY_APPROVALS: &str = "approvals";
const KEY_STATUSES: &str = "statuses";
/// Separates record id and supervisor in an approval key. Tokens cannot contain it (control
/// characters are refused), so the key is unambiguous.
const KEY_SEP: char = '\u{1f}';
const KEY_SEP_NEXT: char = '\u{20}';
const SKELETON_DOMAIN: &[u8] = b"tasjil/ledger/skeleton/v1\0";
const ACTOR_DOMAIN: &[u8] = b"tasjil/ledger/actor/v1\0";

/// Longest id, officer, supervisor or author name, in characters.
pub const MAX_TOKEN: usize = 64;
/// Longest rejection reason, in characters. A reason is a short code or phrase for the station,
/// never personal data.
pub const MAX_REASON: usize = 200;

/// The document name of a station's ledger for one day, e.g. `VAN-07-A/2026-11-27`.
pub fn doc_name(station: &str, day: &str) -> String {
    format!("{station}/{day}")
}

/// A 16-byte actor id derived from a writer's name (e.g. `VAN-07-A/kiosk-2`). Only for a writer
/// that is unique and never continues from an older copy of its ledger; otherwise use random bytes.
pub fn actor_from_name(writer: &str) -> [u8; 16] {
    let mut h = Sha256::new();
    h.update(ACTOR_DOMAIN);
    h.update(writer.as_bytes());
    let digest = h.finalize();
    let mut out = [0u8; 16];
    out.copy_from_slice(&digest[..16]);
    out
}

#[derive(Debug, thiserror::Error)]
pub enum LedgerError {
    #[error("ledger document is damaged: {0}")]
    Damaged(String),
    #[error("sync message is malformed: {0}")]
    BadMessage(String),
    #[error("ledger belongs to {found}, expected {expected}")]
    WrongDocument { expected: String, found: String },
    /// A write was refused before it reached the document (bad id, hash, name or reason).
    #[error("invalid ledger entry: {0}")]
    Invalid(String),
    /// The record id is already in the ledger with a different entry (another envelope).
    #[error("record {id} is already in the ledger with a different entry")]
    RecordConflict { id: String },
    #[error("saved sync state is malformed: {0}")]
    BadPeerState(String),
}

/// Which envelope a record id stands for.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RecordEntry {
    pub id: String,
    /// SHA-256 of the signed envelope, 64 lowercase hex digits.
    pub envelope_hash: String,
    pub seq: u64,
    pub officer: String,
    pub time_ms: i64,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Approval {
    pub supervisor: String,
    pub time_ms: i64,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Status {
    Received,
    Verified,
    /// Card produced (the issuance centre printed it).
    Issued,
    Rejected,
    /// Accepted for production by the issuance centre (after verification).
    Accepted,
    /// The record is stored but cannot make a card: the citizen must enrol again (the reason says
    /// why: photo not compliant, fingers unusable, ...).
    #[serde(rename = "reenrol")]
    ReenrolNeeded,
    /// Written by the station's supervisor (`by` = the supervisor): the record waits, not approved,
    /// for the reason given (e.g. a document to check). Never signed, never a verdict.
    OnHold,
    /// Written by the station's supervisor (`by` = the supervisor): the record is rejected at the
    /// station for the reason given. Its envelope still travels (the chain needs it), its sealed
    /// payload never leaves the station, and the centre stores it as refused with this reason.
    Withdrawn,
}

impl Status {
    pub fn as_str(self) -> &'static str {
        match self {
            Status::Received => "received",
            Status::Verified => "verified",
            Status::Issued => "issued",
            Status::Rejected => "rejected",
            Status::Accepted => "accepted",
            Status::ReenrolNeeded => "reenrol",
            Status::OnHold => "on_hold",
            Status::Withdrawn => "withdrawn",
        }
    }

    /// The wire name back to a status (`None` for a name this version does not know).
    pub fn parse(s: &str) -> Option<Status> {
        match s {
            "received" => Some(Status::Received),
            "verified" => Some(Status::Verified),
            "issued" => Some(Status::Issued),
            "rejected" => Some(Status::Rejected),
            "accepted" => Some(Status::Accepted),
            "reenrol" => Some(Status::ReenrolNeeded),
            "on_hold" => Some(Status::OnHold),
            "withdrawn" => Some(Status::Withdrawn),
            _ => None,
        }
    }

    /// Tie-break between statuses written in the same millisecond: issued > re-enrol > accepted >
    /// rejected > verified > received (a rejection beats a verification it raced with; an
    /// issuance decision beats both).
    fn precedence(self) -> u8 {
        match self {
            Status::OnHold | Status::Withdrawn => 0,
            Status::Received => 0,
            Status::Verified => 1,
            Status::Rejected => 2,
            Status::Accepted => 3,
            Status::ReenrolNeeded => 4,
            Status::Issued => 5,
        }
    }

    /// Whether the centre holds the record durably (verified, or an issuance status set after
    /// verification): what lets a station mark it acknowledged.
    pub fn centre_holds(self) -> bool {
        matches!(
            self,
            Status::Verified | Status::Accepted | Status::Issued | Status::ReenrolNeeded
        )
    }

    /// An issuance status (set by central staff after verification).
    pub fn is_issuance(self) -> bool {
        matches!(
            self,
            Status::Accepted | Status::Issued | Status::ReenrolNeeded
        )
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct StatusEntry {
    pub status: Status,
    pub reason: Option<String>,
    /// Who wrote it (e.g. `centre`, a supervisor id).
    pub by: String,
    pub time_ms: i64,
    /// The centre's Ed25519 signature (hex) over [`verdict_message`]: what lets a van act on a
    /// verdict (mark the record acknowledged, purge its payload). `None` for an unsigned entry.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sig: Option<String>,
}

const VERDICT_DOMAIN: &[u8] = b"tasjil/verdict/v1\0";

/// What the centre signs for a verdict: the station, the record id, the SHA-256 of the exact
/// envelope it judged, and the entry (status, reason, author, time), as canonical JSON after a
/// domain tag.
pub fn verdict_message(
    station: &str,
    id: &str,
    envelope_hash: &str,
    entry: &StatusEntry,
) -> Vec<u8> {
    let body = serde_json::json!({
        "station": station,
        "id": id,
        "envelope": envelope_hash,
        "status": entry.status.as_str(),
        "reason": entry.reason,
        "by": entry.by,
        "time_ms": entry.time_ms,
    });
    let mut m = VERDICT_DOMAIN.to_vec();
    m.extend_from_slice(&crate::canonical::to_canonical(&body).unwrap_or_default());
    m
}

impl StatusEntry {
    /// Sign this entry as the centre's verdict on envelope `envelope_hash` of `station`'s `id`.
    pub fn signed(
        mut self,
        key: &ed25519_dalek::SigningKey,
        station: &str,
        id: &str,
        envelope_hash: &str,
    ) -> StatusEntry {
        use ed25519_dalek::Signer;
        self.sig = None;
        let sig = key.sign(&verdict_message(station, id, envelope_hash, &self));
        self.sig = Some(hex::encode(sig.to_bytes()));
        self
    }

    /// Whether the entry carries a good signature of `centre` for that envelope.
    pub fn verify(
        &self,
        centre: &ed25519_dalek::VerifyingKey,
        station: &str,
        id: &str,
        envelope_hash: &str,
    ) -> bool {
        let Some(sig) = self
            .sig
            .as_deref()
            .and_then(|h| hex::decode(h).ok())
            .and_then(|b| <[u8; 64]>::try_from(b).ok())
        else {
            return false;
        };
        let unsigned = StatusEntry {
            sig: None,
            ..self.clone()
        };
        centre
            .verify_strict(
                &verdict_message(station, id, envelope_hash, &unsigned),
                &ed25519_dalek::Signature::from_bytes(&sig),
            )
            .is_ok()
    }
}

impl StatusEntry {
    /// The order of a record's status history; the last entry is the current status.
    fn order_key(&self) -> (i64, u8, &str, Option<&str>) {
        (
            self.time_ms,
            self.status.precedence(),
            &self.by,
            self.reason.as_deref(),
        )
    }
}

/// Everything the ledger knows about one record.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct RecordView {
    pub entry: RecordEntry,
    /// One per supervisor, sorted by supervisor. A supervisor's approval time is the earliest at
    /// which they approved.
    pub approvals: Vec<Approval>,
    /// Full history, identical entries once, ordered by (time_ms, status precedence, by, reason).
    pub statuses: Vec<StatusEntry>,
    /// The status that wins: the latest `time_ms`; ties broken by precedence issued > rejected >
    /// verified > received, then by `by`, then by reason (none first), the greater winning. So a
    /// record rejected and later re-sent and verified is verified. Always the last of `statuses`.
    pub current: Option<StatusEntry>,
}

/// Per-peer sync state. Persist [`Self::encode`] per (peer, document) after a sync and start the
/// next sync from [`Self::decode`]: a fresh state makes each side describe its whole history.
#[derive(Debug, Clone, Default)]
pub struct PeerState(sync::State);

impl PeerState {
    pub fn new() -> Self {
        Self::default()
    }

    /// Only what both sides are known to share (their common heads); never in-flight data.
    pub fn encode(&self) -> Vec<u8> {
        self.0.encode()
    }

    pub fn decode(bytes: &[u8]) -> Result<Self, LedgerError> {
        sync::State::decode(bytes)
            .map(PeerState)
            .map_err(|e| LedgerError::BadPeerState(e.to_string()))
    }

    /// Forget the current exchange but keep what is known to be shared, exactly as a save and
    /// reload would. Call it when a request or its answer was lost: the protocol assumes an
    /// in-order reliable stream and otherwise waits forever for an answer to a lost message.
    pub fn restart(&mut self) {
        self.0 = sync::State::decode(&self.0.encode()).unwrap_or_default();
    }
}

/// The heads of a replica when it was saved (see [`Ledger::save_since`]).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SavePoint(Vec<ChangeHash>);

/// One replica of a station-day ledger.
pub struct Ledger {
    doc: Automerge,
    name: String,
}

impl fmt::Debug for Ledger {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Ledger")
            .field("name", &self.name)
            .field("records", &self.record_count())
            .finish()
    }
}

impl Ledger {
    /// A new replica of the (station, day) ledger writing as `actor` (see the module docs).
    ///
    /// Replicas created independently (offline) merge: each starts with the same byte-identical
    /// skeleton change. Panics if `actor` is empty or is the skeleton's reserved actor, both
    /// programming errors.
    pub fn new(station: &str, day: &str, actor: &[u8]) -> Ledger {
        let name = doc_name(station, day);
        if let Err(e) = check_actor(&name, actor) {
            panic!("{e}");
        }
        let mut doc = skeleton(&name);
        doc.set_actor(ActorId::from(actor));
        Ledger { doc, name }
    }

    /// Open a saved replica, checking that it is this station-day's ledger.
    pub fn load(
        station: &str,
        day: &str,
        actor: &[u8],
        bytes: &[u8],
    ) -> Result<Ledger, LedgerError> {
        let name = doc_name(station, day);
        check_actor(&name, actor)?;
        let doc = Automerge::load(bytes).map_err(|e| LedgerError::Damaged(e.to_string()))?;
        let mut ledger = Ledger { doc, name };
        ledger.check_root()?;
        let base = skeleton_hash(&ledger.name);
        if ledger.doc.get_change_by_hash(&base).is_none() {
            return Err(LedgerError::Damaged(
                "not built on the shared skeleton".into(),
            ));
        }
        ledger.doc.set_actor(ActorId::from(actor));
        Ok(ledger)
    }

    pub fn save(&mut self) -> Vec<u8> {
        self.doc.save()
    }

    /// Where the replica stands now, for a later [`Self::save_since`].
    pub fn save_point(&self) -> SavePoint {
        SavePoint(self.doc.get_heads())
    }

    /// The changes made since `point`, as Automerge change chunks (empty when there are none).
    /// Appended after what was saved at `point` — a [`Self::save`] and earlier such chunks —
    /// the bytes load as one document with [`Self::load`]: a writer that keeps its replica
    /// loaded saves each transaction's work without re-encoding the whole day.
    pub fn save_since(&self, point: &SavePoint) -> Vec<u8> {
        self.doc.save_after(&point.0)
    }

    pub fn name(&self) -> String {
        self.name.clone()
    }

    /// Number of record entries (not counting orphan statuses or approvals).
    pub fn record_count(&self) -> usize {
        self.container(KEY_RECORDS)
            .map_or(0, |o| self.doc.length(&o))
    }

    /// Announce an envelope. Adding the identical entry again is a no-op; the same id with a
    /// different entry is [`LedgerError::RecordConflict`].
    pub fn add_record(&mut self, entry: &RecordEntry) -> Result<(), LedgerError> {
        check_token("record id", &entry.id)?;
        check_hash(&entry.envelope_hash)?;
        check_token("officer", &entry.officer)?;
        let records = self.container(KEY_RECORDS)?;
        let existing = self.entries(&records, &entry.id);
        if !existing.is_empty() {
            return if existing.iter().all(|e| e == entry) {
                Ok(())
            } else {
                Err(LedgerError::RecordConflict {
                    id: entry.id.clone(),
                })
            };
        }
        self.transact(entry.time_ms, |tx| {
            let m = tx.put_object(&records, entry.id.as_str(), ObjType::Map)?;
            tx.put(&m, "hash", entry.envelope_hash.as_str())?;
            tx.put(&m, "seq", ScalarValue::Uint(entry.seq))?;
            tx.put(&m, "officer", entry.officer.as_str())?;
            tx.put(&m, "time_ms", ScalarValue::Int(entry.time_ms))?;
            Ok(())
        })
    }

    /// A supervisor approves a record (which this replica need not have seen yet). One approval
    /// per supervisor: concurrent approvals by different supervisors all survive; a supervisor's
    /// repeated approvals keep the earliest time (also when they were concurrent).
    pub fn approve(&mut self, id: &str, approval: &Approval) -> Result<(), LedgerError> {
        check_token("record id", id)?;
        check_token("supervisor", &approval.supervisor)?;
        let approvals = self.container(KEY_APPROVALS)?;
        let key = format!("{id}{KEY_SEP}{}", approval.supervisor);
        if min_int(&self.doc, &approvals, &key).is_some_and(|t| t <= approval.time_ms) {
            return Ok(());
        }
        self.transact(approval.time_ms, |tx| {
            tx.put(&approvals, key.as_str(), ScalarValue::Int(approval.time_ms))
        })
    }

    /// [`Self::approve`] for many records at once, as one Automerge change (a batch approval).
    pub fn approve_many(&mut self, ids: &[&str], approval: &Approval) -> Result<(), LedgerError> {
        check_token("supervisor", &approval.supervisor)?;
        for id in ids {
            check_token("record id", id)?;
        }
        let approvals = self.container(KEY_APPROVALS)?;
        let keys: Vec<String> = ids
            .iter()
            .map(|id| format!("{id}{KEY_SEP}{}", approval.supervisor))
            .filter(|key| min_int(&self.doc, &approvals, key).is_none_or(|t| t > approval.time_ms))
            .collect();
        if keys.is_empty() {
            return Ok(());
        }
        self.transact(approval.time_ms, |tx| {
            for key in &keys {
                tx.put(&approvals, key.as_str(), ScalarValue::Int(approval.time_ms))?;
            }
            Ok(())
        })
    }

    /// Append to a record's status history (the record need not be here yet). Concurrent appends
    /// all survive; appending an entry identical to one already present is a no-op.
    pub fn add_status(&mut self, id: &str, status: &StatusEntry) -> Result<(), LedgerError> {
        check_token("record id", id)?;
        check_token("status author", &status.by)?;
        if let Some(reason) = &status.reason {
            check_reason(reason)?;
        }
        let statuses = self.container(KEY_STATUSES)?;
        if self.history(&statuses, id).contains(status) {
            return Ok(());
        }
        let list = match self.doc.get(&statuses, id).map_err(damaged)? {
            Some((Value::Object(ObjType::List), list)) => Some(list),
            _ => None,
        };
        self.transact(status.time_ms, |tx| {
            let list = match list {
                Some(list) => list,
                None => tx.put_object(&statuses, id, ObjType::List)?,
            };
            let end = tx.length(&list);
            let m = tx.insert_object(&list, end, ObjType::Map)?;
            tx.put(&m, "status", status.status.as_str())?;
            tx.put(&m, "by", status.by.as_str())?;
            tx.put(&m, "time_ms", ScalarValue::Int(status.time_ms))?;
            if let Some(reason) = &status.reason {
                tx.put(&m, "reason", reason.as_str())?;
            }
            if let Some(sig) = &status.sig {
                tx.put(&m, "sig", sig.as_str())?;
            }
            Ok(())
        })
    }

    /// Every record with an entry, sorted by seq then id. Entries a newer or broken writer stored
    /// in a shape this version does not read are left out rather than failing the whole view.
    pub fn records(&self) -> Vec<RecordView> {
        self.views(None)
    }

    pub fn record(&self, id: &str) -> Option<RecordView> {
        self.views(Some(id)).into_iter().next()
    }

    /// The station supervisor's latest decision on `id` ([`Status::OnHold`] or
    /// [`Status::Withdrawn`] with its reason), if any. A withdrawal is final: once withdrawn, a
    /// later hold does not undo it.
    pub fn station_decision(&self, id: &str) -> Option<StatusEntry> {
        let history = self.status_history(id);
        history
            .iter()
            .rev()
            .find(|s| s.status == Status::Withdrawn)
            .or_else(|| history.iter().rev().find(|s| s.status == Status::OnHold))
            .cloned()
    }

    /// The status history of `id`, oldest first, even before any record entry for it arrived
    /// (the centre's replica may hold statuses of records only the van's replica describes).
    pub fn status_history(&self, id: &str) -> Vec<StatusEntry> {
        match self.container(KEY_STATUSES) {
            Ok(statuses) => self.history(&statuses, id),
            Err(_) => Vec::new(),
        }
    }

    /// Ids that have approvals or statuses but no record entry yet (e.g. the centre wrote first).
    pub fn orphan_ids(&self) -> Vec<String> {
        let (Ok(records), Ok(approvals), Ok(statuses)) = (
            self.container(KEY_RECORDS),
            self.container(KEY_APPROVALS),
            self.container(KEY_STATUSES),
        ) else {
            return Vec::new();
        };
        let mut ids: BTreeSet<String> = self.approvals(&approvals, None).into_keys().collect();
        ids.extend(self.doc.keys(&statuses));
        ids.retain(|id| self.entries(&records, id).is_empty());
        ids.into_iter().collect()
    }

    /// Record ids whose entry was written differently by two replicas (two envelopes claiming one
    /// id: a fault to investigate). [`Self::records`] shows one of them, the same on every replica.
    pub fn conflicting_ids(&self) -> Vec<String> {
        let Ok(records) = self.container(KEY_RECORDS) else {
            return Vec::new();
        };
        self.doc
            .keys(&records)
            .filter(|id| {
                let all = self.entries(&records, id);
                all.iter().any(|e| *e != all[0])
            })
            .collect()
    }

    /// Take every change of `other` (another replica of the same ledger) into this one.
    pub fn merge(&mut self, other: &mut Ledger) -> Result<(), LedgerError> {
        if other.name != self.name {
            return Err(LedgerError::WrongDocument {
                expected: self.name.clone(),
                found: other.name.clone(),
            });
        }
        let before = self.doc.get_heads();
        let result = match self.doc.merge(&mut other.doc) {
            Ok(_) => self.check_root(),
            Err(e) => Err(LedgerError::Damaged(e.to_string())),
        };
        if result.is_err() {
            self.roll_back(&before);
        }
        result
    }

    /// The next message for `peer`, or `None` when there is nothing to say (peer up to date, or
    /// an earlier message is still unanswered: see [`PeerState::restart`]).
    pub fn generate_sync_message(&mut self, peer: &mut PeerState) -> Option<Vec<u8>> {
        self.doc
            .generate_sync_message(&mut peer.0)
            .map(sync::Message::encode)
    }

    /// Apply a message from `peer`. A message carrying another document's changes is refused
    /// ([`LedgerError::WrongDocument`]) and leaves this replica as it was, with `peer` reset.
    pub fn receive_sync_message(
        &mut self,
        peer: &mut PeerState,
        message: &[u8],
    ) -> Result<(), LedgerError> {
        let message =
            sync::Message::decode(message).map_err(|e| LedgerError::BadMessage(e.to_string()))?;
        let before = self.doc.get_heads();
        let result = match self.doc.receive_sync_message(&mut peer.0, message) {
            Ok(()) => self.check_root(),
            Err(e) => Err(LedgerError::BadMessage(e.to_string())),
        };
        if result.is_err() {
            self.roll_back(&before);
            *peer = PeerState::new();
        }
        result
    }

    fn transact<F>(&mut self, time_ms: i64, f: F) -> Result<(), LedgerError>
    where
        F: FnOnce(&mut Transaction<'_>) -> Result<(), AutomergeError>,
    {
        // Change times are advisory, in seconds.
        let options = CommitOptions::default().with_time(time_ms.div_euclid(1000));
        self.doc
            .transact_with(|_| options, f)
            .map(|_| ())
            .map_err(|failure| LedgerError::Damaged(failure.error.to_string()))
    }

    fn roll_back(&mut self, heads: &[ChangeHash]) {
        if let Ok(doc) = self.doc.fork_at(heads) {
            let actor = self.doc.get_actor().clone();
            self.doc = doc.with_actor(actor);
        }
    }

    /// The root must be exactly the skeleton's: one name (ours), one format, one of each container.
    fn check_root(&self) -> Result<(), LedgerError> {
        let names = self.doc.get_all(ROOT, KEY_NAME).map_err(damaged)?;
        let found: Vec<String> = names
            .iter()
            .filter_map(|(v, _)| v.as_str())
            .filter(|n| *n != self.name)
            .map(str::to_owned)
            .collect();
        if !found.is_empty() {
            return Err(LedgerError::WrongDocument {
                expected: self.name.clone(),
                found: found.join(" + "),
            });
        }
        if names.len() != 1 {
            return Err(LedgerError::Damaged("no ledger name".into()));
        }
        let format = self.doc.get_all(ROOT, KEY_FORMAT).map_err(damaged)?;
        if format.len() != 1 || format[0].0.as_str() != Some(FORMAT) {
            return Err(LedgerError::Damaged(format!("not a {FORMAT} document")));
        }
        for (key, kind) in [
            (KEY_RECORDS, ObjType::Map),
            (KEY_APPROVALS, ObjType::Map),
            (KEY_STATUSES, ObjType::Map),
        ] {
            let all = self.doc.get_all(ROOT, key).map_err(damaged)?;
            if all.len() != 1 || all[0].0.as_objtype() != Some(kind) {
                return Err(LedgerError::Damaged(format!(
                    "root `{key}` is not one {kind:?}"
                )));
            }
        }
        Ok(())
    }

    fn container(&self, key: &str) -> Result<ObjId, LedgerError> {
        match self.doc.get(ROOT, key).map_err(damaged)? {
            Some((Value::Object(_), id)) => Ok(id),
            _ => Err(LedgerError::Damaged(format!("root `{key}` is missing"))),
        }
    }

    /// All readable entries stored under `id` (more than one only after concurrent adds).
    fn entries(&self, records: &ObjId, id: &str) -> Vec<RecordEntry> {
        let Ok(all) = self.doc.get_all(records, id) else {
            return Vec::new();
        };
        all.into_iter()
            .filter(|(v, _)| matches!(v, Value::Object(ObjType::Map)))
            .filter_map(|(_, obj)| read_entry(&self.doc, &obj, id))
            .collect()
    }

    /// The winning readable entry under `id`, the same on every replica.
    fn entry(&self, records: &ObjId, id: &str) -> Option<RecordEntry> {
        match self.doc.get(records, id) {
            Ok(Some((Value::Object(ObjType::Map), obj))) => read_entry(&self.doc, &obj, id),
            _ => None,
        }
    }

    /// id → supervisor → earliest approval time.
    fn approvals(
        &self,
        obj: &ObjId,
        only: Option<&str>,
    ) -> BTreeMap<String, BTreeMap<String, i64>> {
        let keys: Vec<String> = match only {
            // Keys sort as strings, and `KEY_SEP` sorts below every character of a token.
            Some(id) => self
                .doc
                .map_range(obj, format!("{id}{KEY_SEP}")..format!("{id}{KEY_SEP_NEXT}"))
                .map(|item| item.key.into_owned())
                .collect(),
            None => self.doc.keys(obj).collect(),
        };
        let mut out: BTreeMap<String, BTreeMap<String, i64>> = BTreeMap::new();
        for key in keys {
            let Some((id, supervisor)) = key.split_once(KEY_SEP) else {
                continue;
            };
            if only.is_some_and(|o| o != id) {
                continue;
            }
            if let Some(t) = min_int(&self.doc, obj, &key) {
                out.entry(id.to_owned())
                    .or_default()
                    .insert(supervisor.to_owned(), t);
            }
        }
        out
    }

    /// A record's status history: the union of every list stored under its id, deduplicated and
    /// in order (the last is current).
    fn history(&self, statuses: &ObjId, id: &str) -> Vec<StatusEntry> {
        let mut out = Vec::new();
        for (value, list) in self.doc.get_all(statuses, id).unwrap_or_default() {
            if !matches!(value, Value::Object(ObjType::List)) {
                continue;
            }
            for item in self.doc.list_range(&list, ..) {
                if matches!(item.value, ValueRef::Object(ObjType::Map)) {
                    out.extend(read_status(&self.doc, &item.id()));
                }
            }
        }
        out.sort_by(|a, b| a.order_key().cmp(&b.order_key()));
        out.dedup();
        out
    }

    fn views(&self, only: Option<&str>) -> Vec<RecordView> {
        let (Ok(records), Ok(approvals), Ok(statuses)) = (
            self.container(KEY_RECORDS),
            self.container(KEY_APPROVALS),
            self.container(KEY_STATUSES),
        ) else {
            return Vec::new();
        };
        let entries: Vec<RecordEntry> = match only {
            Some(id) => self.entry(&records, id).into_iter().collect(),
            None => self
                .doc
                .keys(&records)
                .filter_map(|id| self.entry(&records, &id))
                .collect(),
        };
        if entries.is_empty() {
            return Vec::new();
        }
        let mut approvals = self.approvals(&approvals, only);
        let mut views: Vec<RecordView> = entries
            .into_iter()
            .map(|entry| {
                let approvals = approvals
                    .remove(&entry.id)
                    .unwrap_or_default()
                    .into_iter()
                    .map(|(supervisor, time_ms)| Approval {
                        supervisor,
                        time_ms,
                    })
                    .collect();
                let statuses = self.history(&statuses, &entry.id);
                RecordView {
                    current: statuses.last().cloned(),
                    entry,
                    approvals,
                    statuses,
                }
            })
            .collect();
        views.sort_by(|a, b| (a.entry.seq, &a.entry.id).cmp(&(b.entry.seq, &b.entry.id)));
        views
    }
}

fn damaged(e: AutomergeError) -> LedgerError {
    LedgerError::Damaged(e.to_string())
}

/// The first change of every replica of `name`: fixed actor, fixed time, fixed content, so its
/// bytes and hash are the same everywhere. Never change what it writes (see [`FORMAT`]).
fn skeleton(name: &str) -> Automerge {
    let mut doc = Automerge::new().with_actor(skeleton_actor(name));
    let options = CommitOptions::default().with_time(skeleton_time(name));
    let built = doc.transact_with(
        |_| options,
        |tx| -> Result<(), AutomergeError> {
            tx.put(ROOT, KEY_FORMAT, FORMAT)?;
            tx.put(ROOT, KEY_NAME, name)?;
            tx.put_object(ROOT, KEY_RECORDS, ObjType::Map)?;
            tx.put_object(ROOT, KEY_APPROVALS, ObjType::Map)?;
            tx.put_object(ROOT, KEY_STATUSES, ObjType::Map)?;
            Ok(())
        },
    );
    // Writing fresh keys into the root of an empty document cannot fail.
    debug_assert!(built.is_ok());
    doc
}

fn skeleton_hash(name: &str) -> ChangeHash {
    let heads = skeleton(name).get_heads();
    heads[0]
}

fn skeleton_actor(name: &str) -> ActorId {
    let mut h = Sha256::new();
    h.update(SKELETON_DOMAIN);
    h.update(name.as_bytes());
    ActorId::from(&h.finalize()[..16])
}

/// Midnight UTC of the name's day in seconds (a readable, fixed change time), 0 if the name does
/// not end in a `YYYY-MM-DD` day.
fn skeleton_time(name: &str) -> i64 {
    let day = name.rsplit('/').next().unwrap_or_default();
    let mut parts = day.splitn(3, '-').map(|p| p.parse::<i64>().ok());
    match (parts.next(), parts.next(), parts.next()) {
        (Some(Some(y)), Some(Some(m)), Some(Some(d)))
            if day.len() == 10 && (1..=12).contains(&m) && (1..=31).contains(&d) =>
        {
            days_from_civil(y, m, d) * 86_400
        }
        _ => 0,
    }
}

/// Days since 1970-01-01 of a proleptic Gregorian date (H. Hinnant's algorithm).
/// The ledger day ("YYYY-MM-DD", UTC) of a record finished at `ms` Unix milliseconds. Station and
/// centre both derive the document of a record from its envelope's `finished_ms` this way.
pub fn day_of_ms(ms: i64) -> String {
    let days = ms.div_euclid(86_400_000);
    // Civil-from-days (proleptic Gregorian), the inverse of `days_from_civil`.
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1_460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + i64::from(m <= 2);
    format!("{y:04}-{m:02}-{d:02}")
}

/// Split a document name into `(station, day)`.
pub fn split_name(name: &str) -> Option<(&str, &str)> {
    let (station, day) = name.rsplit_once('/')?;
    (!station.is_empty() && day.len() == 10).then_some((station, day))
}

/// Days since 1970-01-01 of a proleptic Gregorian date.
pub(crate) fn days_from_civil(y: i64, m: i64, d: i64) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = (m + 9) % 12;
    let doy = (153 * mp + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

fn check_actor(name: &str, actor: &[u8]) -> Result<(), LedgerError> {
    if actor.is_empty() || ActorId::from(actor) == skeleton_actor(name) {
        return Err(LedgerError::Invalid(
            "actor id must be non-empty and not the skeleton's".into(),
        ));
    }
    Ok(())
}

fn check_token(what: &str, s: &str) -> Result<(), LedgerError> {
    let len = s.chars().count();
    if len == 0 || len > MAX_TOKEN {
        return Err(LedgerError::Invalid(format!(
            "{what} must be 1 to {MAX_TOKEN} characters, not {len}"
        )));
    }
    if s.chars().any(char::is_control) || s.trim() != s {
        return Err(LedgerError::Invalid(format!(
            "{what} {s:?} has control characters or surrounding spaces"
        )));
    }
    Ok(())
}

fn check_hash(s: &str) -> Result<(), LedgerError> {
    if s.len() != 64
        || !s
            .bytes()
            .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
    {
        return Err(LedgerError::Invalid(
            "envelope hash must be 64 lowercase hex digits".into(),
        ));
    }
    Ok(())
}

fn check_reason(s: &str) -> Result<(), LedgerError> {
    let len = s.chars().count();
    if len == 0 || len > MAX_REASON || s.chars().any(char::is_control) {
        return Err(LedgerError::Invalid(format!(
            "a reason must be 1 to {MAX_REASON} characters without control characters"
        )));
    }
    Ok(())
}

fn scalar_at<T>(
    doc: &Automerge,
    obj: &ObjId,
    key: &str,
    pick: impl FnOnce(&ScalarValue) -> Option<T>,
) -> Option<T> {
    match doc.get(obj, key).ok()?? {
        (Value::Scalar(s), _) => pick(s.as_ref()),
        _ => None,
    }
}

fn str_at(doc: &Automerge, obj: &ObjId, key: &str) -> Option<String> {
    scalar_at(doc, obj, key, |s| match s {
        ScalarValue::Str(s) => Some(s.to_string()),
        _ => None,
    })
}

fn int_at(doc: &Automerge, obj: &ObjId, key: &str) -> Option<i64> {
    scalar_at(doc, obj, key, |s| match s {
        ScalarValue::Int(n) => Some(*n),
        _ => None,
    })
}

fn uint_at(doc: &Automerge, obj: &ObjId, key: &str) -> Option<u64> {
    scalar_at(doc, obj, key, |s| match s {
        ScalarValue::Uint(n) => Some(*n),
        _ => None,
    })
}

/// The smallest of the (possibly conflicting) int values at `key`.
fn min_int(doc: &Automerge, obj: &ObjId, key: &str) -> Option<i64> {
    doc.get_all(obj, key)
        .ok()?
        .iter()
        .filter_map(|(v, _)| match v {
            Value::Scalar(s) => match s.as_ref() {
                ScalarValue::Int(n) => Some(*n),
                _ => None,
            },
            Value::Object(_) => None,
        })
        .min()
}

fn read_entry(doc: &Automerge, obj: &ObjId, id: &str) -> Option<RecordEntry> {
    Some(RecordEntry {
        id: id.to_owned(),
        envelope_hash: str_at(doc, obj, "hash")?,
        seq: uint_at(doc, obj, "seq")?,
        officer: str_at(doc, obj, "officer")?,
        time_ms: int_at(doc, obj, "time_ms")?,
    })
}

fn read_status(doc: &Automerge, obj: &ObjId) -> Option<StatusEntry> {
    let reason = match doc.get(obj, "reason").ok()? {
        None => None,
        Some(_) => Some(str_at(doc, obj, "reason")?),
    };
    let sig = match doc.get(obj, "sig").ok()? {
        None => None,
        Some(_) => Some(str_at(doc, obj, "sig")?),
    };
    Some(StatusEntry {
        status: Status::parse(&str_at(doc, obj, "status")?)?,
        reason,
        by: str_at(doc, obj, "by")?,
        time_ms: int_at(doc, obj, "time_ms")?,
        sig,
    })
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    const STATION: &str = "VAN-07-A";
    const DAY: &str = "2026-11-27";

    fn hash_of(id: &str) -> String {
        crate::sha256_hex(id.as_bytes())
    }

    fn entry(id: &str, seq: u64) -> RecordEntry {
        RecordEntry {
            id: id.into(),
            envelope_hash: hash_of(id),
            seq,
            officer: "officer-17".into(),
            time_ms: 1_795_000_000_000 + seq as i64,
        }
    }

    fn status(status: Status, by: &str, time_ms: i64, reason: Option<&str>) -> StatusEntry {
        StatusEntry {
            sig: None,
            status,
            reason: reason.map(str::to_owned),
            by: by.into(),
            time_ms,
        }
    }

    fn replica(writer: &str) -> Ledger {
        Ledger::new(STATION, DAY, &actor_from_name(writer))
    }

    #[derive(Debug, Default, Clone, Copy)]
    struct SyncStats {
        round_trips: usize,
        up: usize,
        down: usize,
    }

    /// `a` is the HTTP client: each round trip is one request (possibly empty) and its answer.
    fn sync(a: &mut Ledger, sa: &mut PeerState, b: &mut Ledger, sb: &mut PeerState) -> SyncStats {
        let mut stats = SyncStats::default();
        loop {
            let request = a.generate_sync_message(sa);
            if let Some(m) = &request {
                stats.up += m.len();
                b.receive_sync_message(sb, m).unwrap();
            }
            let answer = b.generate_sync_message(sb);
            if let Some(m) = &answer {
                stats.down += m.len();
                a.receive_sync_message(sa, m).unwrap();
            }
            if request.is_none() && answer.is_none() {
                return stats;
            }
            stats.round_trips += 1;
            assert!(stats.round_trips < 50, "sync does not converge");
        }
    }

    fn sync_fresh(a: &mut Ledger, b: &mut Ledger) -> SyncStats {
        sync(a, &mut PeerState::new(), b, &mut PeerState::new())
    }

    fn reload(l: &mut Ledger, writer: &str) -> Ledger {
        Ledger::load(STATION, DAY, &actor_from_name(writer), &l.save()).unwrap()
    }

    #[test]
    fn doc_name_and_skeleton_time() {
        assert_eq!(doc_name(STATION, DAY), "VAN-07-A/2026-11-27");
        assert_eq!(skeleton_time("X/1970-01-01"), 0);
        assert_eq!(skeleton_time("X/2026-11-27"), 1_795_737_600);
        assert_eq!(skeleton_time("X/not-a-day"), 0);
        assert_eq!(skeleton_time("X/2026-13-01"), 0);
    }

    #[test]
    fn incremental_saves_load_as_one_document_and_batch_approval_is_one_change() {
        let mut l = replica("station");
        l.add_record(&entry("01J0000000000000000000000A", 1))
            .unwrap();
        let mut stored = l.save();
        let mut point = l.save_point();
        assert!(l.save_since(&point).is_empty(), "nothing new");
        for (i, id) in ["01J0000000000000000000000B", "01J0000000000000000000000C"]
            .into_iter()
            .enumerate()
        {
            l.add_record(&entry(id, i as u64 + 2)).unwrap();
            stored.extend(l.save_since(&point));
            point = l.save_point();
        }
        let heads = l.doc.get_heads();
        let ids = ["01J0000000000000000000000A", "01J0000000000000000000000C"];
        let early = Approval {
            supervisor: "sup-1".into(),
            time_ms: 5,
        };
        l.approve("01J0000000000000000000000A", &early).unwrap();
        let late = Approval {
            supervisor: "sup-1".into(),
            time_ms: 9,
        };
        l.approve_many(&ids, &late).unwrap();
        // One change: only C's approval is new (A keeps its earlier time).
        assert_eq!(l.doc.get_changes(&heads).len(), 2);
        stored.extend(l.save_since(&point));
        let back = Ledger::load(STATION, DAY, b"other-process-actor", &stored).unwrap();
        assert_eq!(back.records(), l.records());
        let times: Vec<Vec<i64>> = back
            .records()
            .iter()
            .map(|r| r.approvals.iter().map(|a| a.time_ms).collect())
            .collect();
        assert_eq!(times, vec![vec![5], vec![], vec![9]]);
    }

    #[test]
    fn round_trip_through_save_and_load() {
        let mut l = replica("station");
        l.add_record(&entry("01J0000000000000000000000B", 2))
            .unwrap();
        l.add_record(&entry("01J0000000000000000000000A", 1))
            .unwrap();
        l.approve(
            "01J0000000000000000000000A",
            &Approval {
                supervisor: "sup-1".into(),
                time_ms: 5,
            },
        )
        .unwrap();
        l.add_status(
            "01J0000000000000000000000A",
            &status(Status::Rejected, "centre", 7, Some("chain gap")),
        )
        .unwrap();
        let before = l.records();
        assert_eq!(before.len(), 2);
        assert_eq!(before[0].entry.seq, 1);
        assert_eq!(
            before[0].approvals,
            vec![Approval {
                supervisor: "sup-1".into(),
                time_ms: 5
            }]
        );
        assert_eq!(
            before[0].current.as_ref().unwrap().reason.as_deref(),
            Some("chain gap")
        );
        assert!(before[1].current.is_none());

        let mut loaded = reload(&mut l, "station");
        assert_eq!(loaded.records(), before);
        assert_eq!(loaded.name(), "VAN-07-A/2026-11-27");
        assert_eq!(
            format!("{loaded:?}"),
            "Ledger { name: \"VAN-07-A/2026-11-27\", records: 2 }"
        );
        assert_eq!(
            loaded.record("01J0000000000000000000000A"),
            Some(before[0].clone())
        );
        assert_eq!(loaded.record("nope"), None);
        // It keeps writing after the reload.
        loaded.add_record(&entry("C", 3)).unwrap();
        assert_eq!(loaded.records().len(), 3);
    }

    #[test]
    fn wrong_name_and_garbage_are_refused() {
        let mut l = replica("station");
        l.add_record(&entry("A", 1)).unwrap();
        let bytes = l.save();
        let err = Ledger::load("VAN-08-B", DAY, b"actor-x", &bytes).unwrap_err();
        assert!(
            matches!(&err, LedgerError::WrongDocument { expected, found }
                if expected == "VAN-08-B/2026-11-27" && found == "VAN-07-A/2026-11-27"),
            "{err:?}"
        );
        assert!(matches!(
            Ledger::load(STATION, "2026-11-28", b"actor-x", &bytes),
            Err(LedgerError::WrongDocument { .. })
        ));

        let mut garbage: Vec<Vec<u8>> = vec![
            vec![],
            b"not an automerge document".to_vec(),
            vec![0x85, 0x6f, 0x4a, 0x83, 0, 0, 0, 0, 0],
            bytes[..bytes.len() / 2].to_vec(),
        ];
        // Another Automerge document (no skeleton).
        let mut other = automerge::AutoCommit::new();
        other.put(ROOT, "name", "VAN-07-A/2026-11-27").unwrap();
        garbage.push(other.save());
        for err in garbage
            .iter()
            .map(|g| Ledger::load(STATION, DAY, b"actor-x", g).unwrap_err())
        {
            assert!(matches!(err, LedgerError::Damaged(_)), "{err:?}");
        }
        // Every single-byte corruption fails cleanly or (in a compressed column) still loads.
        for i in 0..bytes.len() {
            let mut b = bytes.clone();
            b[i] ^= 0x5a;
            if let Ok(l) = Ledger::load(STATION, DAY, b"actor-x", &b) {
                let _ = l.records();
            }
        }
        assert!(matches!(
            Ledger::load(STATION, DAY, b"", &bytes),
            Err(LedgerError::Invalid(_))
        ));
    }

    #[test]
    fn every_replica_starts_from_the_same_skeleton() {
        let a = replica("station");
        let b = replica("centre");
        assert_eq!(a.doc.get_heads(), b.doc.get_heads());
        assert_eq!(a.doc.get_heads(), vec![skeleton_hash(&a.name)]);
        assert_ne!(
            replica("x").doc.get_heads(),
            Ledger::new("VAN-08", DAY, b"x").doc.get_heads()
        );
    }

    #[test]
    fn independent_replicas_merge_both_ways() {
        let mut station = replica("station");
        let mut kiosk = replica("kiosk-2");
        station.add_record(&entry("A", 1)).unwrap();
        station.add_record(&entry("B", 2)).unwrap();
        kiosk.add_record(&entry("K", 3)).unwrap();
        kiosk
            .approve(
                "K",
                &Approval {
                    supervisor: "sup-1".into(),
                    time_ms: 9,
                },
            )
            .unwrap();

        let mut s2 = reload(&mut station, "station");
        let mut k2 = reload(&mut kiosk, "kiosk-2");
        station.merge(&mut kiosk).unwrap();
        k2.merge(&mut s2).unwrap();
        assert_eq!(station.records().len(), 3);
        assert_eq!(station.records(), k2.records());
        assert_eq!(station.record("K").unwrap().approvals.len(), 1);

        let mut elsewhere = Ledger::new("VAN-08-B", DAY, b"y");
        assert!(matches!(
            station.merge(&mut elsewhere),
            Err(LedgerError::WrongDocument { .. })
        ));
    }

    #[test]
    fn add_record_is_idempotent_and_refuses_a_second_envelope() {
        let mut l = replica("station");
        l.add_record(&entry("A", 1)).unwrap();
        let heads = l.doc.get_heads();
        l.add_record(&entry("A", 1)).unwrap();
        assert_eq!(l.doc.get_heads(), heads, "no new change");
        let mut other = entry("A", 1);
        other.envelope_hash = hash_of("B");
        assert!(matches!(
            l.add_record(&other),
            Err(LedgerError::RecordConflict { .. })
        ));

        // Concurrent identical adds are fine; different ones are flagged, the same everywhere.
        let mut a = replica("a");
        let mut b = replica("b");
        a.add_record(&entry("X", 1)).unwrap();
        b.add_record(&entry("X", 1)).unwrap();
        a.add_record(&entry("Y", 2)).unwrap();
        let mut y = entry("Y", 2);
        y.officer = "officer-99".into();
        b.add_record(&y).unwrap();
        sync_fresh(&mut a, &mut b);
        assert_eq!(a.records(), b.records());
        assert_eq!(a.conflicting_ids(), vec!["Y".to_string()]);
        assert_eq!(b.conflicting_ids(), vec!["Y".to_string()]);
        assert!(matches!(
            a.add_record(&y),
            Err(LedgerError::RecordConflict { .. })
        ));
    }

    #[test]
    fn bad_fields_are_refused() {
        let mut l = replica("station");
        let mut e = entry("A", 1);
        e.envelope_hash = "ABC".into();
        assert!(matches!(l.add_record(&e), Err(LedgerError::Invalid(_))));
        e.envelope_hash = hash_of("A").to_uppercase();
        assert!(matches!(l.add_record(&e), Err(LedgerError::Invalid(_))));
        let mut e = entry("A\u{1f}x", 1);
        assert!(matches!(l.add_record(&e), Err(LedgerError::Invalid(_))));
        e.id = "x".repeat(MAX_TOKEN + 1);
        assert!(matches!(l.add_record(&e), Err(LedgerError::Invalid(_))));
        let long = status(
            Status::Rejected,
            "centre",
            1,
            Some(&"r".repeat(MAX_REASON + 1)),
        );
        assert!(matches!(
            l.add_status("A", &long),
            Err(LedgerError::Invalid(_))
        ));
        let empty = status(Status::Rejected, "centre", 1, Some(""));
        assert!(matches!(
            l.add_status("A", &empty),
            Err(LedgerError::Invalid(_))
        ));
        let nobody = Approval {
            supervisor: " ".into(),
            time_ms: 1,
        };
        assert!(matches!(
            l.approve("A", &nobody),
            Err(LedgerError::Invalid(_))
        ));
        assert_eq!(l.records(), vec![]);
        assert_eq!(l.orphan_ids(), Vec::<String>::new());
    }

    #[test]
    fn concurrent_approvals_all_survive() {
        let mut station = replica("station");
        station.add_record(&entry("A", 1)).unwrap();
        let mut sup1 = reload(&mut station, "sup-1");
        let mut sup2 = reload(&mut station, "sup-2");
        sup1.approve(
            "A",
            &Approval {
                supervisor: "sup-1".into(),
                time_ms: 20,
            },
        )
        .unwrap();
        sup2.approve(
            "A",
            &Approval {
                supervisor: "sup-2".into(),
                time_ms: 10,
            },
        )
        .unwrap();
        // The same supervisor approving on two devices at once: the earliest approval counts.
        sup1.approve(
            "A",
            &Approval {
                supervisor: "sup-3".into(),
                time_ms: 31,
            },
        )
        .unwrap();
        sup2.approve(
            "A",
            &Approval {
                supervisor: "sup-3".into(),
                time_ms: 30,
            },
        )
        .unwrap();
        station.merge(&mut sup1).unwrap();
        station.merge(&mut sup2).unwrap();
        let want = vec![
            Approval {
                supervisor: "sup-1".into(),
                time_ms: 20,
            },
            Approval {
                supervisor: "sup-2".into(),
                time_ms: 10,
            },
            Approval {
                supervisor: "sup-3".into(),
                time_ms: 30,
            },
        ];
        assert_eq!(station.record("A").unwrap().approvals, want);
        // Ids sharing a prefix keep their own approvals.
        for (i, id) in ["A B", "AB", "A!", "0"].into_iter().enumerate() {
            station.add_record(&entry(id, 10 + i as u64)).unwrap();
            let late = Approval {
                supervisor: "sup-1".into(),
                time_ms: 99,
            };
            station.approve(id, &late).unwrap();
            assert_eq!(station.record(id).unwrap().approvals, vec![late]);
        }
        assert_eq!(station.record("A").unwrap().approvals, want);
        assert_eq!(station.records()[0].approvals, want);
        // A later approval by the same supervisor changes nothing; an earlier one wins.
        station
            .approve(
                "A",
                &Approval {
                    supervisor: "sup-1".into(),
                    time_ms: 25,
                },
            )
            .unwrap();
        assert_eq!(station.record("A").unwrap().approvals, want);
        station
            .approve(
                "A",
                &Approval {
                    supervisor: "sup-1".into(),
                    time_ms: 15,
                },
            )
            .unwrap();
        assert_eq!(station.record("A").unwrap().approvals[0].time_ms, 15);
    }

    #[test]
    fn a_station_withdrawal_stands_over_a_later_hold_and_survives_a_merge() {
        let mut station = replica("station");
        station.add_record(&entry("A", 1)).unwrap();
        station.add_record(&entry("B", 2)).unwrap();
        assert_eq!(station.station_decision("A"), None);
        let mut sup = reload(&mut station, "sup-1");
        sup.add_status("A", &status(Status::Withdrawn, "SUP-1", 50, Some("photo")))
            .unwrap();
        sup.add_status("A", &status(Status::OnHold, "SUP-2", 60, Some("check")))
            .unwrap();
        sup.add_status("B", &status(Status::OnHold, "SUP-1", 70, None))
            .unwrap();
        station.merge(&mut sup).unwrap();
        let a = station.station_decision("A").unwrap();
        assert_eq!(
            (a.status, a.reason.as_deref()),
            (Status::Withdrawn, Some("photo"))
        );
        assert_eq!(
            station.station_decision("B").unwrap().status,
            Status::OnHold
        );
        // A station decision is never what lets a van mark a record acknowledged.
        assert!(!Status::Withdrawn.centre_holds() && !Status::OnHold.centre_holds());
        assert_eq!(Status::parse("withdrawn"), Some(Status::Withdrawn));
        assert_eq!(Status::parse("on_hold"), Some(Status::OnHold));
    }

    #[test]
    fn concurrent_status_appends_all_survive() {
        let mut station = replica("station");
        station.add_record(&entry("A", 1)).unwrap();
        let mut centre = reload(&mut station, "centre");
        let mut sup = reload(&mut station, "sup-1");
        centre
            .add_status("A", &status(Status::Received, "centre", 100, None))
            .unwrap();
        sup.add_status(
            "A",
            &status(Status::Rejected, "sup-1", 90, Some("blurred face")),
        )
        .unwrap();
        // A duplicate delivery of the same status is kept once.
        station
            .add_status("A", &status(Status::Received, "centre", 100, None))
            .unwrap();
        station
            .add_status("A", &status(Status::Received, "centre", 100, None))
            .unwrap();
        station.merge(&mut centre).unwrap();
        station.merge(&mut sup).unwrap();
        let view = station.record("A").unwrap();
        assert_eq!(
            view.statuses,
            vec![
                status(Status::Rejected, "sup-1", 90, Some("blurred face")),
                status(Status::Received, "centre", 100, None),
            ]
        );
        assert_eq!(
            view.current,
            Some(status(Status::Received, "centre", 100, None))
        );
    }

    #[test]
    fn current_status_is_the_latest_then_by_precedence() {
        let mut l = replica("centre");
        l.add_record(&entry("A", 1)).unwrap();
        l.add_status("A", &status(Status::Received, "centre", 1, None))
            .unwrap();
        l.add_status(
            "A",
            &status(Status::Rejected, "centre", 2, Some("chain gap")),
        )
        .unwrap();
        l.add_status("A", &status(Status::Verified, "centre", 3, None))
            .unwrap();
        assert_eq!(
            l.record("A").unwrap().current.unwrap().status,
            Status::Verified
        );
        // Same millisecond: issued > rejected > verified > received.
        l.add_status(
            "A",
            &status(Status::Rejected, "centre", 5, Some("late check")),
        )
        .unwrap();
        l.add_status("A", &status(Status::Verified, "centre", 5, None))
            .unwrap();
        assert_eq!(
            l.record("A").unwrap().current.unwrap().status,
            Status::Rejected
        );
        l.add_status("A", &status(Status::Issued, "centre", 5, None))
            .unwrap();
        assert_eq!(
            l.record("A").unwrap().current.unwrap().status,
            Status::Issued
        );
        // Then by `by`, then by reason.
        l.add_status("A", &status(Status::Issued, "centre-2", 5, None))
            .unwrap();
        l.add_status("A", &status(Status::Issued, "centre-2", 5, Some("b")))
            .unwrap();
        l.add_status("A", &status(Status::Issued, "centre-2", 5, Some("a")))
            .unwrap();
        assert_eq!(
            l.record("A").unwrap().current.unwrap(),
            status(Status::Issued, "centre-2", 5, Some("b"))
        );
        assert_eq!(l.record("A").unwrap().statuses.len(), 9);
    }

    #[test]
    fn a_status_written_before_its_record_shows_once_the_record_is_added() {
        let mut station = replica("station");
        let mut centre = replica("centre");
        centre
            .add_status("A", &status(Status::Verified, "centre", 50, None))
            .unwrap();
        centre
            .approve(
                "A",
                &Approval {
                    supervisor: "sup-1".into(),
                    time_ms: 40,
                },
            )
            .unwrap();
        assert_eq!(centre.records(), vec![]);
        assert_eq!(centre.orphan_ids(), vec!["A".to_string()]);
        sync_fresh(&mut station, &mut centre);
        assert_eq!(station.orphan_ids(), vec!["A".to_string()]);
        station.add_record(&entry("A", 1)).unwrap();
        assert_eq!(station.orphan_ids(), Vec::<String>::new());
        let view = station.record("A").unwrap();
        assert_eq!(
            view.current,
            Some(status(Status::Verified, "centre", 50, None))
        );
        assert_eq!(view.approvals.len(), 1);
        sync_fresh(&mut station, &mut centre);
        assert_eq!(centre.records(), station.records());
    }

    #[test]
    fn sync_first_then_incremental_with_saved_state() {
        let mut station = replica("station");
        let mut centre = replica("centre");
        for i in 0..200u64 {
            station
                .add_record(&entry(&format!("01J{i:023}"), i + 1))
                .unwrap();
        }
        let (mut at_station, mut at_centre) = (PeerState::new(), PeerState::new());
        let first = sync(&mut station, &mut at_station, &mut centre, &mut at_centre);
        println!(
            "first sync of 200 records: {} round trips, {} B up, {} B down (document {} B)",
            first.round_trips,
            first.up,
            first.down,
            station.save().len()
        );
        assert!(first.round_trips <= 4, "{first:?}");
        assert_eq!(centre.records(), station.records());
        assert_eq!(centre.records().len(), 200);

        // Both sides persist their state and reopen it for the next sync.
        let mut at_station = PeerState::decode(&at_station.encode()).unwrap();
        let mut at_centre = PeerState::decode(&at_centre.encode()).unwrap();
        for i in 200..210u64 {
            station
                .add_record(&entry(&format!("01J{i:023}"), i + 1))
                .unwrap();
        }
        for i in 0..10u64 {
            let id = format!("01J{i:023}");
            centre
                .add_status(
                    &id,
                    &status(Status::Verified, "centre", 1000 + i as i64, None),
                )
                .unwrap();
        }
        let (mut station2, mut centre2) = (
            reload(&mut station, "station"),
            reload(&mut centre, "centre"),
        );

        let saved = sync(&mut station, &mut at_station, &mut centre, &mut at_centre);
        let fresh = sync_fresh(&mut station2, &mut centre2);
        println!(
            "10 new records + 10 statuses: saved state {} round trips, {} B up, {} B down; \
             fresh state {} round trips, {} B up, {} B down",
            saved.round_trips, saved.up, saved.down, fresh.round_trips, fresh.up, fresh.down
        );
        assert_eq!(centre.records(), station.records());
        assert_eq!(centre2.records(), station.records());
        assert_eq!(station.records().len(), 210);
        assert!(saved.round_trips <= 4, "{saved:?}");
        assert!(
            saved.up + saved.down < fresh.up + fresh.down,
            "{saved:?} vs {fresh:?}"
        );

        // Nothing new: a repeat sync is a single short exchange.
        let mut at_station = PeerState::decode(&at_station.encode()).unwrap();
        let mut at_centre = PeerState::decode(&at_centre.encode()).unwrap();
        let idle = sync(&mut station, &mut at_station, &mut centre, &mut at_centre);
        println!(
            "idle sync: {} round trips, {} B up, {} B down",
            idle.round_trips, idle.up, idle.down
        );
        assert!(idle.round_trips <= 1, "{idle:?}");
    }

    #[test]
    fn a_lost_answer_is_recovered_by_restarting_the_peer_state() {
        let mut station = replica("station");
        let mut centre = replica("centre");
        station.add_record(&entry("A", 1)).unwrap();
        let (mut at_station, mut at_centre) = (PeerState::new(), PeerState::new());
        let request = station.generate_sync_message(&mut at_station).unwrap();
        centre
            .receive_sync_message(&mut at_centre, &request)
            .unwrap();
        let _lost = centre.generate_sync_message(&mut at_centre);
        // The station waits for an answer that never comes ...
        assert!(station.generate_sync_message(&mut at_station).is_none());
        // ... until the transport gives up and both sides start over from what they share.
        at_station.restart();
        at_centre.restart();
        sync(&mut station, &mut at_station, &mut centre, &mut at_centre);
        assert_eq!(centre.records(), station.records());
    }

    #[test]
    fn sync_with_another_document_is_refused_and_changes_nothing() {
        let mut station = replica("station");
        station.add_record(&entry("A", 1)).unwrap();
        let mut other = Ledger::new(STATION, "2026-11-28", b"other");
        other.add_record(&entry("Z", 1)).unwrap();
        let before = station.records();
        let (mut s1, mut s2) = (PeerState::new(), PeerState::new());
        let mut refused = None;
        for _ in 0..10 {
            if let Some(m) = other.generate_sync_message(&mut s2) {
                if let Err(e) = station.receive_sync_message(&mut s1, &m) {
                    refused = Some(e);
                    break;
                }
            }
            if let Some(m) = station.generate_sync_message(&mut s1) {
                other.receive_sync_message(&mut s2, &m).ok();
            }
        }
        assert!(
            matches!(refused, Some(LedgerError::WrongDocument { .. })),
            "{refused:?}"
        );
        assert_eq!(station.records(), before);
        station.check_root().unwrap();
        station.add_record(&entry("B", 2)).unwrap();
        let mut reloaded = reload(&mut station, "station");
        assert_eq!(reloaded.records().len(), 2);
        assert!(reloaded.save().len() > 10);
    }

    #[test]
    fn malformed_messages_and_states_are_errors() {
        let mut l = replica("station");
        let mut peer = PeerState::new();
        for bad in [&b""[..], b"\x42", b"\x43\xff\xff\xff", b"hello world"] {
            assert!(matches!(
                l.receive_sync_message(&mut peer, bad),
                Err(LedgerError::BadMessage(_))
            ));
            assert!(matches!(
                PeerState::decode(bad),
                Err(LedgerError::BadPeerState(_))
            ));
        }
        assert!(PeerState::decode(&PeerState::new().encode()).is_ok());
        assert!(format!("{:?}", PeerState::default()).starts_with("PeerState"));
        // The centre keeps ledgers and states in shared server state.
        fn send_sync<T: Send + Sync>() {}
        send_sync::<Ledger>();
        send_sync::<PeerState>();
    }

    // ---- property: three writers, random operations, random syncs: no write is lost ----

    const IDS: [&str; 5] = ["R1", "R2", "R3", "R4", "R5"];
    const SUPERVISORS: [&str; 2] = ["sup-a", "sup-b"];
    const WRITERS: [&str; 3] = ["station", "supervisor", "centre"];
    const STATUSES: [Status; 4] = [
        Status::Received,
        Status::Verified,
        Status::Issued,
        Status::Rejected,
    ];
    const REASONS: [Option<&str>; 3] = [None, Some("blurred face"), Some("chain gap")];

    #[derive(Debug, Clone)]
    enum Op {
        Add(usize),
        Approve(usize, usize, i64),
        Status(usize, usize, usize, i64),
        /// A partial sync with another replica mid-way (so later writes see earlier ones).
        Sync(usize),
    }

    fn op() -> impl Strategy<Value = Op> {
        prop_oneof![
            3 => (0..IDS.len()).prop_map(Op::Add),
            2 => (0..IDS.len(), 0..SUPERVISORS.len(), 0..6i64).prop_map(|(i, s, t)| Op::Approve(i, s, t)),
            3 => (0..IDS.len(), 0..STATUSES.len(), 0..REASONS.len(), 0..4i64)
                .prop_map(|(i, s, r, t)| Op::Status(i, s, r, t)),
            1 => (1..3usize).prop_map(Op::Sync),
        ]
    }

    fn pool_entry(i: usize) -> RecordEntry {
        entry(IDS[i], i as u64 + 1)
    }

    proptest! {
        #![proptest_config(ProptestConfig { cases: 32, ..ProptestConfig::default() })]

        #[test]
        fn three_writers_converge_and_lose_nothing(
            ops in prop::collection::vec((0..3usize, op()), 0..40),
            order in prop::collection::vec((0..3usize, 1..3usize), 0..6),
        ) {
            let mut replicas: Vec<Ledger> = WRITERS.iter().map(|w| replica(w)).collect();
            let mut states: Vec<Vec<PeerState>> =
                (0..3).map(|_| (0..3).map(|_| PeerState::new()).collect()).collect();
            let mut pair_sync = |replicas: &mut Vec<Ledger>, a: usize, b: usize| {
                let (lo, hi) = (a.min(b), a.max(b));
                let (left, right) = replicas.split_at_mut(hi);
                let (x, y) = (&mut left[lo], &mut right[0]);
                // Saved states, as between two HTTP syncs.
                let mut sx = PeerState::decode(&states[lo][hi].encode()).unwrap();
                let mut sy = PeerState::decode(&states[hi][lo].encode()).unwrap();
                sync(x, &mut sx, y, &mut sy);
                states[lo][hi] = sx;
                states[hi][lo] = sy;
            };

            let mut added = BTreeSet::new();
            let mut approvals: BTreeMap<&str, BTreeMap<String, i64>> = BTreeMap::new();
            let mut statuses: BTreeMap<&str, Vec<StatusEntry>> = BTreeMap::new();
            for (w, op) in &ops {
                match *op {
                    Op::Add(i) => {
                        replicas[*w].add_record(&pool_entry(i)).unwrap();
                        added.insert(IDS[i]);
                    }
                    Op::Approve(i, s, t) => {
                        let a = Approval { supervisor: SUPERVISORS[s].into(), time_ms: t };
                        replicas[*w].approve(IDS[i], &a).unwrap();
                        let slot = approvals.entry(IDS[i]).or_default().entry(a.supervisor).or_insert(t);
                        *slot = (*slot).min(t);
                    }
                    Op::Status(i, s, r, t) => {
                        let e = status(STATUSES[s], WRITERS[*w], t, REASONS[r]);
                        replicas[*w].add_status(IDS[i], &e).unwrap();
                        statuses.entry(IDS[i]).or_default().push(e);
                    }
                    Op::Sync(d) => pair_sync(&mut replicas, *w, (*w + d) % 3),
                }
            }
            for (a, d) in &order {
                pair_sync(&mut replicas, *a, (*a + d) % 3);
            }
            // A chain of syncs that certainly reaches quiescence.
            for (a, b) in [(0, 1), (1, 2), (0, 2)] {
                pair_sync(&mut replicas, a, b);
            }

            let mut want = Vec::new();
            for (i, id) in IDS.iter().enumerate() {
                if !added.contains(id) {
                    continue;
                }
                let mut history = statuses.get(id).cloned().unwrap_or_default();
                history.sort_by(|a, b| a.order_key().cmp(&b.order_key()));
                history.dedup();
                want.push(RecordView {
                    entry: pool_entry(i),
                    approvals: approvals
                        .get(id)
                        .cloned()
                        .unwrap_or_default()
                        .into_iter()
                        .map(|(supervisor, time_ms)| Approval { supervisor, time_ms })
                        .collect(),
                    current: history.last().cloned(),
                    statuses: history,
                });
            }
            let orphans: Vec<String> = approvals
                .keys()
                .chain(statuses.keys())
                .filter(|id| !added.contains(*id))
                .map(|id| id.to_string())
                .collect::<BTreeSet<_>>()
                .into_iter()
                .collect();
            let heads = replicas[0].doc.get_heads();
            for r in &replicas {
                prop_assert_eq!(r.records(), want.clone());
                prop_assert_eq!(r.orphan_ids(), orphans.clone());
                prop_assert_eq!(r.doc.get_heads(), heads.clone());
            }
            // And nothing more to say between any two of them.
            for (a, b) in [(0, 1), (1, 2), (0, 2)] {
                let (left, right) = replicas.split_at_mut(b);
                let stats = sync(&mut left[a], &mut states[a][b].clone(), &mut right[0], &mut states[b][a].clone());
                prop_assert!(stats.round_trips <= 1);
            }
        }
    }

    #[test]
    fn a_centre_verdict_verifies_after_a_round_trip_and_not_once_changed() {
        let centre = ed25519_dalek::SigningKey::from_bytes(&[7; 32]);
        let other = ed25519_dalek::SigningKey::from_bytes(&[8; 32]);
        let hash = "ab".repeat(32);
        let entry =
            status(Status::Verified, "centre", 5, None).signed(&centre, "VAN-1", "A", &hash);
        let mut l = Ledger::new("VAN-1", "2026-12-02", b"actor-1");
        l.add_status("A", &entry).unwrap();
        let bytes = l.save();
        let back = Ledger::load("VAN-1", "2026-12-02", b"actor-2", &bytes).unwrap();
        let got = back.status_history("A").pop().unwrap();
        let key = centre.verifying_key();
        assert!(got.verify(&key, "VAN-1", "A", &hash));
        assert!(
            !got.verify(&other.verifying_key(), "VAN-1", "A", &hash),
            "another key"
        );
        assert!(!got.verify(&key, "VAN-2", "A", &hash), "another station");
        assert!(
            !got.verify(&key, "VAN-1", "A", &"cd".repeat(32)),
            "another envelope"
        );
        let mut changed = got.clone();
        changed.status = Status::Issued;
        assert!(!changed.verify(&key, "VAN-1", "A", &hash), "another status");
        let unsigned = StatusEntry { sig: None, ..got };
        assert!(!unsigned.verify(&key, "VAN-1", "A", &hash));
    }
}
