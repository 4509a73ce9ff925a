//! The ingest decision: whether one envelope may join its station's chain, as a pure check over
//! what the store already holds (the station's key, the rows that share its id or its sequence
//! number, the chain head, and the payload it names). No I/O here: [`super::ingest`] gathers the
//! facts inside its transaction and applies the verdict, so the rules can be read — and tested —
//! in one place, and a second backend applies exactly the same ones.
//!
//! The checks run in this order and the first failure is the reason the station is told: size,
//! canonical form and schema, registered station, station signature, officer co-signature,
//! duplicate (the very same bytes: harmless), fork (another envelope at this id or sequence),
//! chain link to the head, payload present, payload hash and length.

use ed25519_dalek::VerifyingKey;
use serde::{Deserialize, Serialize};
use tasjil_sync::keys::parse_verifying_key;
use tasjil_sync::record::{Envelope, RecordError, Signed};

/// Largest envelope the centre parses (a real one is a few KB).
pub const MAX_ENVELOPE: usize = 1 << 20;

/// What became of one envelope handed to [`CentreStore::ingest`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "outcome", rename_all = "snake_case")]
pub enum Ingested {
    /// Verified and durably stored.
    Stored {
        id: String,
        station: String,
        seq: u64,
    },
    /// Verified and durably stored in its station's chain, but its id was already used by
    /// another station's record: held for central staff, reported to the station as refused.
    Held {
        id: String,
        station: String,
        seq: u64,
        reason: String,
    },
    /// The very same envelope was stored before: nothing to do.
    AlreadyHave { id: String },
    /// Refused; `reason` names the check that failed. Recorded for the station when the id and
    /// station could be read.
    Rejected {
        id: Option<String>,
        station: Option<String>,
        reason: String,
    },
}

impl Ingested {
    /// `(id, station, reason)` of an outcome the station must be told was refused (held
    /// records included), when the id and station are known.
    pub fn refusal(&self) -> Option<(&String, &String, &String)> {
        match self {
            Ingested::Rejected {
                id: Some(id),
                station: Some(station),
                reason,
            }
            | Ingested::Held {
                id,
                station,
                reason,
                ..
            } => Some((id, station, reason)),
            _ => None,
        }
    }
}

/// Best effort: the id and station an unparseable envelope claims, so the station can still be
/// told that this record was refused. Only short strings are taken.
pub(super) fn claimed_names(bytes: &[u8]) -> (Option<String>, Option<String>) {
    let Ok(v) = serde_json::from_slice::<serde_json::Value>(bytes) else {
        return (None, None);
    };
    let field = |name: &str| {
        v.get("body")
            .and_then(|b| b.get(name))
            .and_then(|s| s.as_str())
            .filter(|s| !s.is_empty() && s.len() <= 64)
            .map(str::to_string)
    };
    (field("id"), field("station"))
}

/// The officer co-signature must be present and verify against the badge key it carries; whether
/// the centre's roster allowed that key is [`ChainFacts::roster_refusal`].
pub(crate) fn check_officer(env: &Envelope<Signed>) -> Result<(), RecordError> {
    let cosig = env
        .officer_signature()
        .ok_or(RecordError::OfficerSignatureMissing)?;
    let badge = parse_verifying_key(&cosig.key).map_err(|_| RecordError::OfficerSignature)?;
    env.verify_officer(&badge)
}

/// A stored envelope that shares the candidate's id or its (station, sequence) slot.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Neighbour {
    pub id: String,
    pub station: String,
    pub seq: u64,
    pub hash: String,
}

/// What the store holds that bears on one candidate envelope.
#[derive(Debug, Clone)]
pub struct ChainFacts {
    /// The station's registered key, `None` when it is not registered.
    pub key: Option<VerifyingKey>,
    /// Envelopes of the candidate's station with its id or at its sequence number.
    pub neighbours: Vec<Neighbour>,
    /// Another station's stored envelope with the candidate's id, if any.
    pub id_elsewhere: Option<Neighbour>,
    /// `(seq, hash)` of the station's last stored chain element (`(0, GENESIS)` before the first).
    pub head: (u64, String),
    /// The hash of the element (envelope or restore link) at the candidate's `seq - 1`
    /// ([`tasjil_sync::GENESIS`] for the first), `None` when the centre holds nothing there.
    pub pred: Option<String>,
    /// The station is registered as a training station (`station add --simulation`).
    pub training: bool,
    /// Why the centre's roster (the version the station held) did not allow the co-signing
    /// badge, if it did not: the record is then held, not refused, so its chain goes on.
    pub roster_refusal: Option<String>,
}

/// A candidate that parsed: its canonical bytes' hash (its chain hash) and the envelope.
#[derive(Debug)]
pub struct Candidate {
    pub env: Envelope<Signed>,
    pub hash: String,
}

/// First step: size and parse. A refusal here can name only what the bytes claim.
pub fn parse(bytes: &[u8]) -> Result<Candidate, Ingested> {
    if bytes.len() > MAX_ENVELOPE {
        return Err(Ingested::Rejected {
            id: None,
            station: None,
            reason: RecordError::Schema(format!(
                "envelope is {} bytes, more than the {MAX_ENVELOPE} allowed",
                bytes.len()
            ))
            .to_string(),
        });
    }
    match Envelope::<Signed>::from_bytes(bytes) {
        // `from_bytes` accepted only canonical bytes, so this is the envelope's chain hash.
        Ok(env) => Ok(Candidate {
            env,
            hash: tasjil_sync::sha256_hex(bytes),
        }),
        Err(e) => {
            let (id, station) = claimed_names(bytes);
            Err(Ingested::Rejected {
                id,
                station,
                reason: e.to_string(),
            })
        }
    }
}

/// What the chain checks conclude before the payload is looked at.
#[derive(Debug, PartialEq, Eq)]
pub enum ChainVerdict {
    /// Final: stored before, or refused.
    Done(Ingested),
    /// Every check so far passed: the payload decides.
    NeedsPayload,
}

impl Candidate {
    /// A refusal of this candidate, recorded for the station it names.
    pub fn rejected(&self, reason: String) -> Ingested {
        let body = self.env.body();
        Ingested::Rejected {
            id: Some(body.id.clone()),
            station: Some(body.station.clone()),
            reason,
        }
    }

    /// Station, signatures, duplicates, forks and the chain link, against `facts`.
    pub fn check_chain(&self, facts: &ChainFacts) -> ChainVerdict {
        let body = self.env.body();
        let Some(key) = facts.key else {
            return ChainVerdict::Done(self.rejected(format!(
                "unknown station {}: it is not registered at the centre",
                body.station
            )));
        };
        if let Err(e) = self.env.verify_signature(&key) {
            return ChainVerdict::Done(self.rejected(e.to_string()));
        }
        // Simulation is never a way in: a training record only from a station registered as a
        // training station, and such a station sends nothing else.
        match (body.simulation, facts.training) {
            (true, false) => {
                return ChainVerdict::Done(self.rejected(format!(
                    "record made with simulated devices on a training station, and station {} is not registered as one (tasjil-central station add --simulation)",
                    body.station
                )))
            }
            (false, true) => {
                return ChainVerdict::Done(self.rejected(format!(
                    "station {} is registered as a training station: it cannot send a citizen's enrolment",
                    body.station
                )))
            }
            _ => {}
        }
        if let Err(e) = check_officer(&self.env) {
            return ChainVerdict::Done(self.rejected(e.to_string()));
        }
        if facts.neighbours.iter().any(|n| n.hash == self.hash) {
            return ChainVerdict::Done(Ingested::AlreadyHave {
                id: body.id.clone(),
            });
        }
        if let Some(n) = facts.neighbours.first() {
            let reason = if n.station == body.station && n.seq == body.seq {
                format!(
                    "chain fork: the centre already has a different envelope at sequence {} of station {} (id {})",
                    body.seq, body.station, n.id
                )
            } else {
                format!(
                    "chain fork: id {} is already used at sequence {} of station {}",
                    body.id, n.seq, n.station
                )
            };
            return ChainVerdict::Done(self.rejected(reason));
        }
        // The predecessor is the element at `seq - 1`: the envelope before, or the restore link
        // a restored station's chain continues from.
        let Some(pred) = &facts.pred else {
            let (last_seq, _) = &facts.head;
            let reason = if body.seq > last_seq + 1 {
                RecordError::ChainGap {
                    expected: last_seq + 1,
                    found: body.seq,
                }
                .to_string()
            } else {
                format!(
                    "chain gap: the centre holds nothing at sequence {} of station {}; send the record before this one first",
                    body.seq - 1,
                    body.station
                )
            };
            return ChainVerdict::Done(self.rejected(reason));
        };
        if let Err(e) = self.env.verify_chain_link(body.seq, pred) {
            return ChainVerdict::Done(self.rejected(e.to_string()));
        }
        ChainVerdict::NeedsPayload
    }

    /// The last check: the sealed payload the envelope names, or `None` when the centre has none.
    /// A record that passes everything but reuses another station's id is held, not refused:
    /// refusing it would block its station's chain, and the centre cannot tell which of the two
    /// stations is the rightful one (the first to arrive is not always it).
    pub fn check_payload(&self, sealed: Option<&[u8]>, facts: &ChainFacts) -> Ingested {
        let body = self.env.body();
        let Some(sealed) = sealed else {
            return self.rejected(format!(
                "payload not received: the centre has no complete payload {}; send it before its envelope",
                body.payload.sha256
            ));
        };
        if let Err(e) = self.env.verify_payload(sealed) {
            return self.rejected(e.to_string());
        }
        if let Some(refusal) = &facts.roster_refusal {
            return Ingested::Held {
                id: body.id.clone(),
                station: body.station.clone(),
                seq: body.seq,
                reason: format!(
                    "held: officer co-signature not allowed by the centre's roster: {refusal}"
                ),
            };
        }
        if let Some(other) = &facts.id_elsewhere {
            return Ingested::Held {
                id: body.id.clone(),
                station: body.station.clone(),
                seq: body.seq,
                reason: format!(
                    "held: enrolment id {} was already used by station {} (sequence {}); central staff must check which record is genuine",
                    body.id, other.station, other.seq
                ),
            };
        }
        Ingested::Stored {
            id: body.id.clone(),
            station: body.station.clone(),
            seq: body.seq,
        }
    }
}

/// The outcome for a record its station's supervisor withdrew (rejected at the station): in its
/// chain, without payload, never issued; the station is told "rejected" with its own reason.
pub fn withdrawn(candidate: &Candidate, why: &str) -> Ingested {
    let body = candidate.env.body();
    Ingested::Held {
        id: body.id.clone(),
        station: body.station.clone(),
        seq: body.seq,
        reason: format!("rejected at the station by its supervisor: {why}"),
    }
}
