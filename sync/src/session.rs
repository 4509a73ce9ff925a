//! The station's side of one sync, sans IO: it says what to send next ([`Action`]) and is told what
//! came back (`on_*`). The HTTP shell (`client`) performs the actions; tests drive it through a
//! simulated network that loses requests and answers.
//!
//! Order: ask what the centre already holds (`have`), upload missing payload bytes from where the
//! centre stopped (resumable, idempotent), send envelopes in sequence batches (the centre verifies
//! each before storing it), then ask for the status of every record sent. Every action can be
//! repeated safely after a cut, so the shell simply retries the current action.

use std::collections::{BTreeSet, VecDeque};

use serde::Serialize;

use crate::protocol::{
    BlobProgress, EnvelopesRequest, EnvelopesResponse, HaveRequest, HaveResponse, Outcome,
    StatusRequest, StatusResponse,
};

/// A record the station has not yet had acknowledged.
#[derive(Debug, Clone)]
pub struct PendingRecord {
    pub id: String,
    /// The signed envelope, canonical JSON.
    pub envelope: String,
    pub payload_sha256: String,
    pub payload_len: u64,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Action {
    Have(HaveRequest),
    PutBlob {
        sha256: String,
        offset: u64,
        len: u64,
        total: u64,
    },
    Envelopes(EnvelopesRequest),
    Status(StatusRequest),
    Done,
}

/// What a sync did, for the operator and the station's store.
#[derive(Debug, Clone, Default, Serialize)]
pub struct Summary {
    pub records: usize,
    /// Envelopes the centre stored in this sync.
    pub sent: usize,
    /// Envelopes the centre already had.
    pub already_there: usize,
    pub blobs_uploaded: usize,
    pub blobs_already_there: usize,
    pub payload_bytes_sent: u64,
    /// Records the centre has verified (acknowledged).
    pub acknowledged: Vec<String>,
    /// Records the centre refused, with its reason.
    pub rejected: Vec<(String, String)>,
    /// Wall time per phase, filled in by the transport (the session itself keeps no clock).
    pub phase_ms: PhaseTimes,
    /// Version of the centre's roster the station holds after the sync.
    pub roster: Option<u64>,
    /// A newer roster was taken in this sync.
    pub roster_updated: bool,
    /// The roster the centre sent was refused (bad signature, older version): why.
    pub roster_refused: Option<String>,
    /// Restore links the centre stored in this sync.
    pub restore_links_sent: usize,
    /// Version of the centre's key set the station holds after the sync.
    pub centre_keys: u64,
    /// A key rotation was taken in this sync.
    pub centre_keys_updated: bool,
    /// The last place of this station's chain the centre holds, as it said at the start.
    pub centre_head: Option<u64>,
    /// The centre held this station's chain beyond this store's head (a store restored from a
    /// backup by hand): what the station did about it.
    pub behind_centre: Option<String>,
}

/// Milliseconds spent in each phase of a sync, retries included.
#[derive(Debug, Clone, Default, Serialize)]
pub struct PhaseTimes {
    pub have: u64,
    pub blobs: u64,
    pub envelopes: u64,
    pub status: u64,
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum Phase {
    Have,
    Blobs,
    Envelopes,
    Status,
    Done,
}

#[derive(Debug)]
pub struct Session {
    records: Vec<PendingRecord>,
    /// Current upload chunk: halves when the link drops a request, grows back on success, so a
    /// link that cannot carry a full chunk still makes progress.
    chunk: u64,
    max_chunk: u64,
    batch: usize,
    phase: Phase,
    /// (sha256, bytes the centre has, total length)
    blobs: VecDeque<(String, u64, u64)>,
    next_envelope: usize,
    summary: Summary,
}

impl Session {
    /// `chunk`: bytes per blob upload request; `batch`: envelopes per request.
    pub fn new(records: Vec<PendingRecord>, chunk: u64, batch: usize) -> Session {
        let phase = if records.is_empty() {
            Phase::Done
        } else {
            Phase::Have
        };
        Session {
            summary: Summary {
                records: records.len(),
                ..Summary::default()
            },
            records,
            chunk: chunk.max(1),
            max_chunk: chunk.max(1),
            batch: batch.max(1),
            phase,
            blobs: VecDeque::new(),
            next_envelope: 0,
        }
    }

    pub fn summary(&self) -> &Summary {
        &self.summary
    }

    /// Account `ms` of wall time to the phase of `action`.
    pub fn add_time(&mut self, action: &Action, ms: u64) {
        let t = &mut self.summary.phase_ms;
        match action {
            Action::Have(_) => t.have += ms,
            Action::PutBlob { .. } => t.blobs += ms,
            Action::Envelopes(_) => t.envelopes += ms,
            Action::Status(_) => t.status += ms,
            Action::Done => {}
        }
    }

    pub fn is_done(&self) -> bool {
        self.phase == Phase::Done
    }

    /// What to do now. Repeating it after a lost answer is always safe.
    pub fn next_action(&self) -> Action {
        match self.phase {
            Phase::Have => {
                let unique: BTreeSet<&String> =
                    self.records.iter().map(|r| &r.payload_sha256).collect();
                Action::Have(HaveRequest {
                    blobs: unique.into_iter().cloned().collect(),
                })
            }
            Phase::Blobs => match self.blobs.front() {
                Some((sha, have, total)) => Action::PutBlob {
                    sha256: sha.clone(),
                    offset: *have,
                    len: (*total - *have).min(self.chunk),
                    total: *total,
                },
                None => Action::Done,
            },
            Phase::Envelopes => {
                let end = (self.next_envelope + self.batch).min(self.records.len());
                Action::Envelopes(EnvelopesRequest {
                    envelopes: self.records[self.next_envelope..end]
                        .iter()
                        .map(|r| r.envelope.clone())
                        .collect(),
                })
            }
            Phase::Status => Action::Status(StatusRequest {
                ids: self.records.iter().map(|r| r.id.clone()).collect(),
            }),
            Phase::Done => Action::Done,
        }
    }

    fn after_blobs(&mut self) {
        if self.blobs.is_empty() {
            self.phase = Phase::Envelopes;
        }
    }

    /// Smallest upload chunk the session shrinks to.
    pub const MIN_CHUNK: u64 = 16 * 1024;

    /// The current action failed in transit (cut, timeout): try smaller pieces.
    pub fn on_transport_failure(&mut self) {
        if self.phase == Phase::Blobs {
            self.chunk = (self.chunk / 2).max(Self::MIN_CHUNK.min(self.max_chunk));
        }
    }

    pub fn on_have(&mut self, answer: HaveResponse) {
        if self.phase != Phase::Have {
            return;
        }
        let mut queued = BTreeSet::new();
        for r in &self.records {
            if !queued.insert(r.payload_sha256.clone()) {
                continue;
            }
            let progress = answer.blobs.iter().find(|b| b.sha256 == r.payload_sha256);
            match progress {
                Some(p) if p.complete => self.summary.blobs_already_there += 1,
                Some(p) => self.blobs.push_back((
                    r.payload_sha256.clone(),
                    p.have.min(r.payload_len),
                    r.payload_len,
                )),
                None => self
                    .blobs
                    .push_back((r.payload_sha256.clone(), 0, r.payload_len)),
            }
        }
        self.phase = Phase::Blobs;
        self.after_blobs();
    }

    /// The centre's answer to a blob upload (or to a refused offset: it says what it holds).
    pub fn on_blob(&mut self, progress: BlobProgress, bytes_sent: u64) {
        if self.phase != Phase::Blobs {
            return;
        }
        self.summary.payload_bytes_sent += bytes_sent;
        let Some(front) = self.blobs.front_mut() else {
            return;
        };
        if front.0 != progress.sha256 {
            return;
        }
        if bytes_sent > 0 {
            self.chunk = (self.chunk * 2).min(self.max_chunk);
        }
        if progress.complete {
            self.blobs.pop_front();
            self.summary.blobs_uploaded += 1;
        } else {
            front.1 = progress.have.min(front.2);
        }
        self.after_blobs();
    }

    pub fn on_envelopes(&mut self, answer: EnvelopesResponse) {
        if self.phase != Phase::Envelopes {
            return;
        }
        for r in &answer.results {
            match r.outcome {
                Outcome::Stored => self.summary.sent += 1,
                Outcome::Already => self.summary.already_there += 1,
                // Reported with the statuses below, once per record.
                Outcome::Rejected => {}
            }
        }
        self.next_envelope = (self.next_envelope + self.batch).min(self.records.len());
        if self.next_envelope >= self.records.len() {
            self.phase = Phase::Status;
        }
    }

    pub fn on_status(&mut self, answer: StatusResponse) {
        if self.phase != Phase::Status {
            return;
        }
        for s in answer.statuses {
            match s.status.as_str() {
                "verified" => self.summary.acknowledged.push(s.id),
                "rejected" => self
                    .summary
                    .rejected
                    .push((s.id, s.reason.unwrap_or_else(|| "no reason given".into()))),
                _ => {}
            }
        }
        self.phase = Phase::Done;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::protocol::{ChainHead, EnvelopeResult, RecordStatus};

    fn rec(i: u8, len: u64) -> PendingRecord {
        PendingRecord {
            id: format!("id{i}"),
            envelope: format!("{{\"n\":{i}}}"),
            payload_sha256: format!("{i:064}"),
            payload_len: len,
        }
    }

    #[test]
    fn chunks_shrink_on_cuts_and_grow_back() {
        let mut s = Session::new(vec![rec(1, 1 << 20)], 256 * 1024, 1);
        s.on_have(HaveResponse {
            blobs: vec![],
            head: ChainHead {
                seq: 0,
                hash: String::new(),
            },
        });
        let len = |s: &Session| match s.next_action() {
            Action::PutBlob { len, .. } => len,
            other => panic!("{other:?}"),
        };
        assert_eq!(len(&s), 256 * 1024);
        for _ in 0..10 {
            s.on_transport_failure();
        }
        assert_eq!(len(&s), Session::MIN_CHUNK);
        s.on_blob(
            BlobProgress {
                sha256: format!("{:064}", 1),
                have: 16 * 1024,
                complete: false,
            },
            16 * 1024,
        );
        assert_eq!(len(&s), 32 * 1024);
    }

    #[test]
    fn nothing_pending_means_no_request() {
        assert_eq!(Session::new(vec![], 10, 10).next_action(), Action::Done);
    }

    #[test]
    fn resumes_blobs_from_the_centres_offset_and_skips_complete_ones() {
        let mut s = Session::new(vec![rec(1, 25), rec(2, 7)], 10, 1);
        assert!(matches!(s.next_action(), Action::Have(h) if h.blobs.len() == 2));
        s.on_have(HaveResponse {
            blobs: vec![
                BlobProgress {
                    sha256: format!("{:064}", 1),
                    have: 12,
                    complete: false,
                },
                BlobProgress {
                    sha256: format!("{:064}", 2),
                    have: 7,
                    complete: true,
                },
            ],
            head: ChainHead {
                seq: 0,
                hash: String::new(),
            },
        });
        assert_eq!(
            s.next_action(),
            Action::PutBlob {
                sha256: format!("{:064}", 1),
                offset: 12,
                len: 10,
                total: 25
            }
        );
        // The answer was lost and the centre got it anyway: a repeat is refused with what it has.
        s.on_blob(
            BlobProgress {
                sha256: format!("{:064}", 1),
                have: 22,
                complete: false,
            },
            10,
        );
        assert_eq!(
            s.next_action(),
            Action::PutBlob {
                sha256: format!("{:064}", 1),
                offset: 22,
                len: 3,
                total: 25
            }
        );
        s.on_blob(
            BlobProgress {
                sha256: format!("{:064}", 1),
                have: 25,
                complete: true,
            },
            3,
        );
        assert!(
            matches!(s.next_action(), Action::Envelopes(e) if e.envelopes == vec!["{\"n\":1}"])
        );
        s.on_envelopes(EnvelopesResponse {
            results: vec![EnvelopeResult {
                id: Some("id1".into()),
                outcome: Outcome::Stored,
                reason: None,
            }],
        });
        assert!(
            matches!(s.next_action(), Action::Envelopes(e) if e.envelopes == vec!["{\"n\":2}"])
        );
        s.on_envelopes(EnvelopesResponse {
            results: vec![EnvelopeResult {
                id: Some("id2".into()),
                outcome: Outcome::Rejected,
                reason: Some("x".into()),
            }],
        });
        assert!(matches!(s.next_action(), Action::Status(r) if r.ids.len() == 2));
        s.on_status(StatusResponse {
            statuses: vec![
                RecordStatus {
                    id: "id1".into(),
                    status: "verified".into(),
                    reason: None,
                },
                RecordStatus {
                    id: "id2".into(),
                    status: "rejected".into(),
                    reason: Some("chain gap".into()),
                },
            ],
        });
        assert!(s.is_done());
        let sum = s.summary();
        assert_eq!(
            (
                sum.sent,
                sum.blobs_uploaded,
                sum.blobs_already_there,
                sum.payload_bytes_sent
            ),
            (1, 1, 1, 13)
        );
        assert_eq!(sum.acknowledged, vec!["id1"]);
        assert_eq!(
            sum.rejected,
            vec![("id2".to_string(), "chain gap".to_string())]
        );
    }
}
