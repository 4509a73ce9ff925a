//! The station ↔ centre wire protocol (HTTP + JSON), shared by the client and the server.
//!
//! Authentication: every request after `POST /v1/challenge` carries the station id, a nonce the
//! centre issued, the SHA-256 of its body, and the station's Ed25519 signature over
//! [`request_message`] (method, path, station, nonce, body hash). A nonce is good for one request
//! and a few minutes of the *centre's* clock, so a captured request cannot be replayed and a van
//! whose clock is days off still syncs. Each authenticated response carries the next nonce, so a
//! sync costs one extra round trip only. Because the body hash travels in a header, the centre
//! checks the signature before it reads a byte of the body: an unauthenticated upload costs it
//! nothing. The challenge itself is signed too (with the empty nonce, [`CHALLENGE_NONCE`]), so a
//! flood of challenges from anyone but a registered station fills no nonce table.
//!
//! Endpoints (all JSON unless noted):
//! - `POST /v1/challenge` `{station}` → `{nonce, ttl_s}` (signed with [`CHALLENGE_NONCE`];
//!   unknown stations get 403)
//! - `POST /v1/have` `{blobs: [sha256]}` → `{blobs: [{sha256, have, complete}], head: {seq, hash}}`
//! - `PUT /v1/blobs/{sha256}?offset=N&total=T` raw bytes → `{sha256, have, complete}`
//! - `POST /v1/envelopes` `{envelopes: [canonical JSON text]}` → `{results: [{id, outcome, reason}]}`
//! - `POST /v1/status` `{ids: [..]}` → `{statuses: [{id, status, reason}]}`
//! - `POST /v1/roster` `{have}` → `{roster}`: the centre's signed roster (the file, as text) when
//!   newer than the version `have` the station holds, else `null`
//! - `POST /v1/ledger` `{name, message}` → `{message}`: one round of the Automerge sync protocol
//!   on one of the station's ledgers (messages base64; `null` when a side has nothing to say)

use serde::{Deserialize, Serialize};

use crate::canonical::sha256_hex;

pub const HEADER_STATION: &str = "x-tasjil-station";
pub const HEADER_NONCE: &str = "x-tasjil-nonce";
pub const HEADER_SIGNATURE: &str = "x-tasjil-signature";
pub const HEADER_NEXT_NONCE: &str = "x-tasjil-next-nonce";
/// SHA-256 (lower-case hex) of the request body, as signed.
pub const HEADER_BODY_SHA256: &str = "x-tasjil-body-sha256";
/// The nonce a challenge request is signed with: it has none yet.
pub const CHALLENGE_NONCE: &str = "";

const REQUEST_DOMAIN: &[u8] = b"tasjil/request/v1\0";

/// The bytes a station signs for one request.
pub fn request_message(
    method: &str,
    path_and_query: &str,
    station: &str,
    nonce: &str,
    body: &[u8],
) -> Vec<u8> {
    request_message_for_hash(method, path_and_query, station, nonce, &sha256_hex(body))
}

/// [`request_message`] from the body's SHA-256 (what the centre checks before reading the body).
pub fn request_message_for_hash(
    method: &str,
    path_and_query: &str,
    station: &str,
    nonce: &str,
    body_sha256: &str,
) -> Vec<u8> {
    let mut m = REQUEST_DOMAIN.to_vec();
    for part in [method, path_and_query, station, nonce, body_sha256] {
        m.extend_from_slice(part.as_bytes());
        m.push(b'\n');
    }
    m
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ChallengeRequest {
    pub station: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ChallengeResponse {
    pub nonce: String,
    pub ttl_s: u64,
}

/// How much of a blob the centre holds.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct BlobProgress {
    pub sha256: String,
    pub have: u64,
    pub complete: bool,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct HaveRequest {
    pub blobs: Vec<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ChainHead {
    pub seq: u64,
    pub hash: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct HaveResponse {
    pub blobs: Vec<BlobProgress>,
    pub head: ChainHead,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct EnvelopesRequest {
    pub envelopes: Vec<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Outcome {
    Stored,
    Already,
    Rejected,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct EnvelopeResult {
    pub id: Option<String>,
    pub outcome: Outcome,
    pub reason: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct EnvelopesResponse {
    pub results: Vec<EnvelopeResult>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct StatusRequest {
    pub ids: Vec<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RecordStatus {
    pub id: String,
    /// "verified", "rejected" or "unknown".
    pub status: String,
    pub reason: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct StatusResponse {
    pub statuses: Vec<RecordStatus>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RosterRequest {
    /// Version the station holds, `None` before its first.
    pub have: Option<u64>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RosterResponse {
    /// The signed roster file (canonical JSON text) when newer than `have`.
    pub roster: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LedgerRequest {
    pub name: String,
    pub message: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LedgerResponse {
    pub message: Option<String>,
}

/// `POST /v1/chain`: the station's restore links the centre may lack (canonical JSON text of
/// each), and the centre's view of the station's chain in return.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ChainRequest {
    pub links: Vec<String>,
}

/// What became of one restore link.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LinkResult {
    pub seq: Option<u64>,
    pub outcome: Outcome,
    pub reason: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ChainResponse {
    pub links: Vec<LinkResult>,
    /// The last element of the station's chain the centre holds (after the links above).
    pub head: ChainHead,
}

/// `POST /v1/keys`: the centre key set version the station holds.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct KeysRequest {
    pub have: u64,
}

/// Every key rotation after `have`, in order (canonical JSON text of each).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct KeysResponse {
    pub rotations: Vec<String>,
}

/// Error body of every non-2xx answer.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ApiError {
    /// Machine-readable: "unknown_station", "bad_signature", "bad_nonce", "bad_request",
    /// "offset_mismatch", "too_large", "storage".
    pub code: String,
    pub error: String,
    /// For "offset_mismatch": how many bytes the centre holds.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub have: Option<u64>,
}
