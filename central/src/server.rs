//! The centre's HTTP server (axum): authenticates every request against the registered station
//! key and a single-use nonce, and hands the work to a [`CentreBackend`] on blocking threads.
//! See [`tasjil_sync::protocol`] for the endpoints.

use std::collections::{HashMap, VecDeque};
use std::future::Future;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::body::{Body, Bytes};
use axum::extract::{DefaultBodyLimit, Path, Query, State};
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use axum::routing::{post, put};
use axum::{Json, Router};
use rand_core::RngCore;
use serde::Serialize;

use crate::store::{BlobState, CentreError, Ingested};
use crate::CentreBackend;
use tasjil_sync::keys::{parse_signature, verify};
use tasjil_sync::ledger::PeerState;
use tasjil_sync::protocol::{
    request_message_for_hash, ApiError, BlobProgress, ChainHead, ChainRequest, ChainResponse,
    ChallengeRequest, ChallengeResponse, EnvelopeResult, EnvelopesRequest, EnvelopesResponse,
    HaveRequest, HaveResponse, KeysRequest, KeysResponse, LedgerRequest, LedgerResponse,
    LinkResult, Outcome, RosterRequest, RosterResponse, StatusRequest, StatusResponse,
    CHALLENGE_NONCE, HEADER_BODY_SHA256, HEADER_NEXT_NONCE, HEADER_NONCE, HEADER_SIGNATURE,
    HEADER_STATION,
};

/// How long a nonce stays good, on the centre's clock.
const NONCE_TTL: Duration = Duration::from_secs(300);
/// Outstanding nonces kept per station (its oldest dropped first when exceeded). Only a request
/// signed by the station mints one, so nobody else can push a station's nonces out.
const MAX_NONCES_PER_STATION: usize = 32;
/// Largest request body (a blob chunk or a batch of envelopes).
pub const MAX_BODY: usize = 8 << 20;
/// Longest time an authenticated body may take to arrive (8 MiB at ~28 KB/s); a station on a
/// slower link gets smaller chunks from its own backoff.
const BODY_TIMEOUT: Duration = Duration::from_secs(300);

#[derive(Debug)]
struct Nonce {
    station: String,
    expires: Instant,
}

/// Outstanding nonces, and per station the order they were minted in.
#[derive(Debug, Default)]
struct Nonces {
    by_nonce: HashMap<String, Nonce>,
    by_station: HashMap<String, VecDeque<String>>,
}

/// Shared state of the server.
#[derive(Debug)]
pub struct AppState {
    store: Arc<dyn CentreBackend>,
    nonces: Mutex<Nonces>,
    /// Automerge sync state per (station, ledger), kept while the server runs (losing it only
    /// makes the next sync a little larger).
    ledger_peers: Mutex<HashMap<String, PeerState>>,
    /// Requests answered, by route and HTTP status, for `/metrics`.
    requests: Mutex<std::collections::BTreeMap<(String, u16), u64>>,
    /// Envelopes stored / refused (held included) since start, for `/metrics`.
    stored: std::sync::atomic::AtomicU64,
    refused: std::sync::atomic::AtomicU64,
}

/// A refusal: HTTP status + the JSON error body.
#[derive(Debug)]
struct Fail(StatusCode, ApiError);

impl Fail {
    fn new(status: StatusCode, code: &str, error: impl Into<String>) -> Fail {
        Fail(
            status,
            ApiError {
                code: code.into(),
                error: error.into(),
                have: None,
            },
        )
    }
}

impl IntoResponse for Fail {
    fn into_response(self) -> Response {
        (self.0, Json(self.1)).into_response()
    }
}

impl From<CentreError> for Fail {
    fn from(e: CentreError) -> Fail {
        match e {
            CentreError::OffsetMismatch { have } => Fail(
                StatusCode::CONFLICT,
                ApiError {
                    code: "offset_mismatch".into(),
                    error: format!("the centre holds {have} bytes of this payload"),
                    have: Some(have),
                },
            ),
            CentreError::BlobTooLarge { .. } => {
                Fail::new(StatusCode::PAYLOAD_TOO_LARGE, "too_large", e.to_string())
            }
            CentreError::BlobHashMismatch { .. } => Fail::new(
                StatusCode::UNPROCESSABLE_ENTITY,
                "hash_mismatch",
                e.to_string(),
            ),
            CentreError::BadAddress(..) | CentreError::ChunkPastEnd { .. } => {
                Fail::new(StatusCode::BAD_REQUEST, "bad_request", e.to_string())
            }
            CentreError::Ledger { .. } => {
                Fail::new(StatusCode::BAD_REQUEST, "bad_ledger", e.to_string())
            }
            CentreError::StationBarred { ref state, .. } => {
                let code = if state == "revoked" {
                    "revoked"
                } else {
                    "suspended"
                };
                Fail::new(StatusCode::FORBIDDEN, code, e.to_string())
            }
            CentreError::UnknownStation(_) => {
                Fail::new(StatusCode::FORBIDDEN, "unknown_station", e.to_string())
            }
            other => {
                tracing::error!(error = %other, "centre storage error");
                Fail::new(
                    StatusCode::SERVICE_UNAVAILABLE,
                    "storage",
                    other.to_string(),
                )
            }
        }
    }
}

impl AppState {
    pub fn new(store: Arc<dyn CentreBackend>) -> Arc<AppState> {
        Arc::new(AppState {
            store,
            nonces: Mutex::new(Nonces::default()),
            ledger_peers: Mutex::new(HashMap::new()),
            requests: Mutex::new(std::collections::BTreeMap::new()),
            stored: std::sync::atomic::AtomicU64::new(0),
            refused: std::sync::atomic::AtomicU64::new(0),
        })
    }

    fn mint_nonce(&self, station: &str) -> String {
        let mut bytes = [0u8; 32];
        rand_core::OsRng.fill_bytes(&mut bytes);
        let nonce = hex::encode(bytes);
        let now = Instant::now();
        let mut guard = self.nonces.lock().unwrap_or_else(|p| p.into_inner());
        let n = &mut *guard;
        let order = n.by_station.entry(station.to_string()).or_default();
        // Entries already used or expired linger in `order` until they reach its front.
        while order.len() >= MAX_NONCES_PER_STATION {
            if let Some(old) = order.pop_front() {
                n.by_nonce.remove(&old);
            }
        }
        order.push_back(nonce.clone());
        n.by_nonce.insert(
            nonce.clone(),
            Nonce {
                station: station.to_string(),
                expires: now + NONCE_TTL,
            },
        );
        nonce
    }

    /// Check station, nonce (single use) and the signature over the body's stated hash, before a
    /// byte of the body is read; then read the body (bounded in size and time) and check it has
    /// that hash. Returns the station id and the body.
    async fn authenticate(
        &self,
        method: &Method,
        uri: &Uri,
        headers: &HeaderMap,
        body: Body,
        challenge: bool,
    ) -> Result<(String, Bytes), Fail> {
        let header = |name: &str| {
            headers
                .get(name)
                .and_then(|v| v.to_str().ok())
                .map(str::to_string)
                .ok_or_else(|| {
                    Fail::new(
                        StatusCode::UNAUTHORIZED,
                        "unauthorized",
                        format!("missing {name} header"),
                    )
                })
        };
        let station = header(HEADER_STATION)?;
        let nonce = if challenge {
            CHALLENGE_NONCE.to_string()
        } else {
            header(HEADER_NONCE)?
        };
        let sig = header(HEADER_SIGNATURE)?;
        let body_sha = header(HEADER_BODY_SHA256)?;
        if let Some(len) = headers
            .get(axum::http::header::CONTENT_LENGTH)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.parse::<u64>().ok())
        {
            if len > MAX_BODY as u64 {
                return Err(Fail::new(
                    StatusCode::PAYLOAD_TOO_LARGE,
                    "too_large",
                    format!("request body of {len} bytes is larger than the {MAX_BODY} allowed"),
                ));
            }
        }
        let store = self.store.clone();
        let id = station.clone();
        let key = blocking(move || store.station_key(&id))
            .await?
            .ok_or_else(|| {
                Fail::new(
                    StatusCode::FORBIDDEN,
                    "unknown_station",
                    format!("station {station} is not registered at this centre"),
                )
            })?;
        if !challenge {
            let issued = {
                let mut n = self.nonces.lock().unwrap_or_else(|p| p.into_inner());
                n.by_nonce.remove(&nonce)
            };
            match issued {
                Some(n) if n.station == station && n.expires > Instant::now() => {}
                _ => {
                    return Err(Fail::new(
                        StatusCode::UNAUTHORIZED,
                        "bad_nonce",
                        "nonce unknown, already used or expired: ask for a new challenge",
                    ))
                }
            }
        }
        let path = uri.path_and_query().map_or(uri.path(), |p| p.as_str());
        let msg = request_message_for_hash(method.as_str(), path, &station, &nonce, &body_sha);
        let ok = parse_signature(&sig).is_ok_and(|s| verify(&key, &msg, &s));
        if !ok {
            return Err(Fail::new(
                StatusCode::UNAUTHORIZED,
                "bad_signature",
                "request signature does not verify with the registered station key",
            ));
        }
        let bytes =
            match tokio::time::timeout(BODY_TIMEOUT, axum::body::to_bytes(body, MAX_BODY)).await {
                Ok(Ok(b)) => b,
                Ok(Err(e)) => {
                    return Err(Fail::new(
                        StatusCode::BAD_REQUEST,
                        "bad_request",
                        format!("request body not received whole (or over {MAX_BODY} bytes): {e}"),
                    ))
                }
                Err(_) => {
                    return Err(Fail::new(
                        StatusCode::REQUEST_TIMEOUT,
                        "timeout",
                        "request body took too long to arrive: send smaller chunks",
                    ))
                }
            };
        if tasjil_sync::sha256_hex(&bytes) != body_sha {
            return Err(Fail::new(
                StatusCode::BAD_REQUEST,
                "bad_request",
                "request body does not match the SHA-256 it was signed with",
            ));
        }
        Ok((station, bytes))
    }

    /// A JSON answer carrying the station's next nonce.
    fn reply<T: Serialize>(&self, station: &str, value: &T) -> Response {
        let mut resp = Json(value).into_response();
        if let Ok(v) = HeaderValue::from_str(&self.mint_nonce(station)) {
            resp.headers_mut().insert(HEADER_NEXT_NONCE, v);
        }
        resp
    }
}

async fn blocking<T: Send + 'static>(
    f: impl FnOnce() -> Result<T, CentreError> + Send + 'static,
) -> Result<T, Fail> {
    tokio::task::spawn_blocking(f)
        .await
        .map_err(|e| {
            Fail::new(
                StatusCode::INTERNAL_SERVER_ERROR,
                "storage",
                format!("worker failed: {e}"),
            )
        })?
        .map_err(Fail::from)
}

fn parse<T: serde::de::DeserializeOwned>(body: &[u8]) -> Result<T, Fail> {
    serde_json::from_slice(body)
        .map_err(|e| Fail::new(StatusCode::BAD_REQUEST, "bad_request", e.to_string()))
}

fn progress(sha256: &str, state: BlobState) -> BlobProgress {
    let (have, complete) = match state {
        BlobState::Absent => (0, false),
        BlobState::Partial { have } => (have, false),
        BlobState::Complete { len } => (len, true),
    };
    BlobProgress {
        sha256: sha256.to_string(),
        have,
        complete,
    }
}

async fn challenge(
    State(st): State<Arc<AppState>>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    body: Body,
) -> Result<Response, Fail> {
    let (station, body) = st.authenticate(&method, &uri, &headers, body, true).await?;
    let req: ChallengeRequest = parse(&body)?;
    if req.station != station {
        return Err(Fail::new(
            StatusCode::BAD_REQUEST,
            "bad_request",
            "the challenge names another station than the one that signed it",
        ));
    }
    Ok(Json(ChallengeResponse {
        nonce: st.mint_nonce(&req.station),
        ttl_s: NONCE_TTL.as_secs(),
    })
    .into_response())
}

/// The shape of every authenticated JSON endpoint: check the request, parse its body, do `work`
/// on a blocking thread with the server state and the station id, answer with the next nonce.
async fn json_endpoint<Req, Resp>(
    st: Arc<AppState>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    body: Body,
    work: impl FnOnce(&AppState, &str, Req) -> Result<Resp, Fail> + Send + 'static,
) -> Result<Response, Fail>
where
    Req: serde::de::DeserializeOwned + Send + 'static,
    Resp: Serialize + Send + 'static,
{
    let (station, body) = st
        .authenticate(&method, &uri, &headers, body, false)
        .await?;
    let req: Req = parse(&body)?;
    let (state, who) = (st.clone(), station.clone());
    let answer = tokio::task::spawn_blocking(move || work(&state, &who, req))
        .await
        .map_err(|e| {
            Fail::new(
                StatusCode::INTERNAL_SERVER_ERROR,
                "storage",
                format!("worker failed: {e}"),
            )
        })??;
    Ok(st.reply(&station, &answer))
}

async fn have(
    State(st): State<Arc<AppState>>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    body: Body,
) -> Result<Response, Fail> {
    json_endpoint(
        st,
        method,
        uri,
        headers,
        body,
        |st, station, req: HaveRequest| {
            let mut blobs = Vec::with_capacity(req.blobs.len());
            for sha in &req.blobs {
                blobs.push(progress(sha, st.store.blob_state(sha)?));
            }
            let (seq, hash) = st.store.head(station)?;
            Ok(HaveResponse {
                blobs,
                head: ChainHead { seq, hash },
            })
        },
    )
    .await
}

#[derive(serde::Deserialize)]
struct BlobQuery {
    offset: u64,
    total: u64,
}

async fn put_blob(
    State(st): State<Arc<AppState>>,
    Path(sha): Path<String>,
    Query(q): Query<BlobQuery>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    body: Body,
) -> Result<Response, Fail> {
    let (station, body) = st
        .authenticate(&method, &uri, &headers, body, false)
        .await?;
    let store = st.store.clone();
    let key = sha.clone();
    let state = blocking(move || store.put_blob_chunk(&key, q.offset, q.total, &body)).await;
    match state {
        Ok(s) => Ok(st.reply(&station, &progress(&sha, s))),
        // A refusal still hands out the next nonce, so the station can carry on at once.
        Err(fail) => {
            let mut resp = fail.into_response();
            if let Ok(v) = HeaderValue::from_str(&st.mint_nonce(&station)) {
                resp.headers_mut().insert(HEADER_NEXT_NONCE, v);
            }
            Ok(resp)
        }
    }
}

async fn envelopes(
    State(st): State<Arc<AppState>>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    body: Body,
) -> Result<Response, Fail> {
    json_endpoint(
        st,
        method,
        uri,
        headers,
        body,
        |st, who, req: EnvelopesRequest| {
            let now = crate::now_ms();
            // A station sends only its own envelopes; the others are refused without a look.
            let mine: Vec<bool> = req
                .envelopes
                .iter()
                .map(|text| {
                    serde_json::from_str::<serde_json::Value>(text)
                        .ok()
                        .and_then(|v| v["body"]["station"].as_str().map(|s| s == who))
                        .unwrap_or(false)
                })
                .collect();
            let batch: Vec<&[u8]> = req
                .envelopes
                .iter()
                .zip(&mine)
                .filter(|(_, ok)| **ok)
                .map(|(t, _)| t.as_bytes())
                .collect();
            let outcomes = st.store.ingest_batch(&batch, now)?;
            for o in &outcomes {
                let counter = match o {
                    Ingested::Stored { .. } => &st.stored,
                    Ingested::Held { .. } | Ingested::Rejected { .. } => &st.refused,
                    Ingested::AlreadyHave { .. } => continue,
                };
                counter.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            }
            let mut outcomes = outcomes.into_iter();
            let mut results = Vec::with_capacity(req.envelopes.len());
            for ok in mine {
                let outcome = if ok { outcomes.next() } else { None };
                let result = match (ok, outcome) {
                    (false, _) | (true, None) => EnvelopeResult {
                        id: None,
                        outcome: Outcome::Rejected,
                        reason: Some(format!("envelope is not from station {who}")),
                    },
                    (true, Some(Ingested::Stored { id, .. })) => EnvelopeResult {
                        id: Some(id),
                        outcome: Outcome::Stored,
                        reason: None,
                    },
                    (true, Some(Ingested::AlreadyHave { id })) => EnvelopeResult {
                        id: Some(id),
                        outcome: Outcome::Already,
                        reason: None,
                    },
                    (true, Some(Ingested::Held { id, reason, .. })) => EnvelopeResult {
                        id: Some(id),
                        outcome: Outcome::Rejected,
                        reason: Some(reason),
                    },
                    (true, Some(Ingested::Rejected { id, reason, .. })) => EnvelopeResult {
                        id,
                        outcome: Outcome::Rejected,
                        reason: Some(reason),
                    },
                };
                results.push(result);
            }
            Ok(EnvelopesResponse { results })
        },
    )
    .await
}

async fn status(
    State(st): State<Arc<AppState>>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    body: Body,
) -> Result<Response, Fail> {
    json_endpoint(
        st,
        method,
        uri,
        headers,
        body,
        |st, station, req: StatusRequest| {
            Ok(StatusResponse {
                statuses: st.store.statuses(station, &req.ids)?,
            })
        },
    )
    .await
}

/// The centre's signed roster for a station that holds version `have`: sent only when newer.
async fn roster(
    State(st): State<Arc<AppState>>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    body: Body,
) -> Result<Response, Fail> {
    json_endpoint(
        st,
        method,
        uri,
        headers,
        body,
        |st, _station, req: RosterRequest| {
            let roster = st.store.roster_for_station(req.have, crate::now_ms())?;
            Ok(RosterResponse {
                roster: roster.map(|r| String::from_utf8(r.to_bytes()).unwrap_or_default()),
            })
        },
    )
    .await
}

/// The centre key rotations a station has not taken yet.
async fn keys(
    State(st): State<Arc<AppState>>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    body: Body,
) -> Result<Response, Fail> {
    json_endpoint(
        st,
        method,
        uri,
        headers,
        body,
        |st, _station, req: KeysRequest| {
            let rotations = st
                .store
                .rotations_after(req.have)?
                .into_iter()
                .map(|b| String::from_utf8_lossy(&b).into_owned())
                .collect();
            Ok(KeysResponse { rotations })
        },
    )
    .await
}

/// A restored station's links, and the centre's head of its chain (how a station that was
/// restored by hand learns that it is behind).
async fn chain(
    State(st): State<Arc<AppState>>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    body: Body,
) -> Result<Response, Fail> {
    json_endpoint(
        st,
        method,
        uri,
        headers,
        body,
        |st, station, req: ChainRequest| {
            let now = crate::now_ms();
            let mut links = Vec::with_capacity(req.links.len());
            for text in req.links.iter().take(64) {
                let stored = st.store.store_restore_link(station, text.as_bytes(), now)?;
                links.push(match stored {
                    crate::store::LinkStored::Stored { seq } => LinkResult {
                        seq: Some(seq),
                        outcome: Outcome::Stored,
                        reason: None,
                    },
                    crate::store::LinkStored::AlreadyHave { seq } => LinkResult {
                        seq: Some(seq),
                        outcome: Outcome::Already,
                        reason: None,
                    },
                    crate::store::LinkStored::Rejected { seq, reason } => LinkResult {
                        seq,
                        outcome: Outcome::Rejected,
                        reason: Some(reason),
                    },
                });
            }
            let (seq, hash) = st.store.head(station)?;
            Ok(ChainResponse {
                links,
                head: ChainHead { seq, hash },
            })
        },
    )
    .await
}

async fn ledger(
    State(st): State<Arc<AppState>>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    body: Body,
) -> Result<Response, Fail> {
    json_endpoint(
        st,
        method,
        uri,
        headers,
        body,
        |st, station, req: LedgerRequest| {
            use base64::Engine;
            let b64 = base64::engine::general_purpose::STANDARD;
            let message = req
                .message
                .as_deref()
                .map(|m| b64.decode(m))
                .transpose()
                .map_err(|e| {
                    Fail::new(
                        StatusCode::BAD_REQUEST,
                        "bad_request",
                        format!("message is not base64: {e}"),
                    )
                })?;
            let key = format!("{station}\n{}", req.name);
            let peers = || st.ledger_peers.lock().unwrap_or_else(|p| p.into_inner());
            let mut peer = peers().remove(&key).unwrap_or_default();
            let answer = st
                .store
                .ledger_sync(station, &req.name, message.as_deref(), &mut peer);
            peers().insert(key, peer);
            Ok(LedgerResponse {
                message: answer?.map(|m| b64.encode(m)),
            })
        },
    )
    .await
}

/// `GET /healthz`: 200 "ok" when the store answers, 503 with the reason when it does not.
async fn healthz(State(st): State<Arc<AppState>>) -> Response {
    let store = st.store.clone();
    match blocking(move || store.stats()).await {
        Ok(_) => (StatusCode::OK, "ok\n").into_response(),
        Err(Fail(_, e)) => (
            StatusCode::SERVICE_UNAVAILABLE,
            format!("store: {}\n", e.error),
        )
            .into_response(),
    }
}

/// `GET /metrics`: Prometheus text exposition, series named `tasjil_…`. No personal data.
async fn metrics(State(st): State<Arc<AppState>>) -> Result<Response, Fail> {
    use std::fmt::Write;
    use std::sync::atomic::Ordering;
    let store = st.store.clone();
    let stats = blocking(move || store.stats()).await?;
    let mut out = String::new();
    let gauge = |out: &mut String, name: &str, help: &str, v: u64| {
        let _ = write!(
            out,
            "# HELP {name} {help}\n# TYPE {name} gauge\n{name} {v}\n"
        );
    };
    gauge(
        &mut out,
        "tasjil_stations",
        "Registered stations.",
        stats.stations,
    );
    gauge(
        &mut out,
        "tasjil_records",
        "Records stored at the centre.",
        stats.records,
    );
    gauge(
        &mut out,
        "tasjil_records_verified",
        "Records verified.",
        stats.verified,
    );
    gauge(
        &mut out,
        "tasjil_records_rejected",
        "Records refused and not stored since.",
        stats.rejected,
    );
    // No issuance statuses exist yet: every verified record still awaits its card.
    gauge(
        &mut out,
        "tasjil_records_awaiting_issuance",
        "Verified records with no card produced yet.",
        stats.verified,
    );
    let _ = write!(
        out,
        "# HELP tasjil_envelopes_ingested_total Envelopes stored by this process.\n# TYPE tasjil_envelopes_ingested_total counter\ntasjil_envelopes_ingested_total {}\n",
        st.stored.load(Ordering::Relaxed)
    );
    let _ = write!(
        out,
        "# HELP tasjil_envelopes_refused_total Envelopes refused or held by this process.\n# TYPE tasjil_envelopes_refused_total counter\ntasjil_envelopes_refused_total {}\n",
        st.refused.load(Ordering::Relaxed)
    );
    out.push_str("# HELP tasjil_requests_total Requests answered, by route and status.\n# TYPE tasjil_requests_total counter\n");
    for ((route, status), n) in st.requests.lock().unwrap_or_else(|p| p.into_inner()).iter() {
        let _ = writeln!(
            out,
            "tasjil_requests_total{{route=\"{route}\",status=\"{status}\"}} {n}"
        );
    }
    Ok((
        [(
            axum::http::header::CONTENT_TYPE,
            "text/plain; version=0.0.4",
        )],
        out,
    )
        .into_response())
}

/// Count every answer by its route (the matched pattern, never a payload address) and status.
async fn count_requests(
    State(st): State<Arc<AppState>>,
    matched: Option<axum::extract::MatchedPath>,
    req: axum::extract::Request,
    next: axum::middleware::Next,
) -> Response {
    let route = matched.map_or_else(|| "unmatched".to_string(), |m| m.as_str().to_string());
    let resp = next.run(req).await;
    *st.requests
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .entry((route, resp.status().as_u16()))
        .or_default() += 1;
    resp
}

pub fn router(state: Arc<AppState>) -> Router {
    Router::new()
        .route("/healthz", axum::routing::get(healthz))
        .route("/metrics", axum::routing::get(metrics))
        .route("/v1/challenge", post(challenge))
        .route("/v1/have", post(have))
        .route("/v1/blobs/{sha}", put(put_blob))
        .route("/v1/envelopes", post(envelopes))
        .route("/v1/status", post(status))
        .route("/v1/ledger", post(ledger))
        .route("/v1/roster", post(roster))
        .route("/v1/chain", post(chain))
        .route("/v1/keys", post(keys))
        .layer(DefaultBodyLimit::max(MAX_BODY))
        .route_layer(axum::middleware::from_fn_with_state(
            state.clone(),
            count_requests,
        ))
        .with_state(state)
}

/// The centre's whole HTTP application: the sync API, `/healthz`, `/metrics` and, when given,
/// the staff console under `/console/`.
pub fn app(store: Arc<dyn CentreBackend>, console: Option<Arc<crate::console::Console>>) -> Router {
    let api = router(AppState::new(store));
    match console {
        Some(c) => api.nest("/console", crate::console::router(c)),
        None => api,
    }
}

/// Serve `app` over TLS (the centre's pinned certificate) until `shutdown` completes, within
/// the connection limits of [`crate::conn`].
pub async fn serve_tls(
    listener: tokio::net::TcpListener,
    config: rustls::ServerConfig,
    app: Router,
    limits: crate::conn::ConnLimits,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    crate::conn::serve_tls(listener, config, app, limits, shutdown).await
}

/// Serve `app` as plain HTTP on an already bound listener until `shutdown` completes (loopback
/// only: tests, the demo, or behind a TLS-terminating proxy on the same host).
pub async fn serve(
    listener: tokio::net::TcpListener,
    app: Router,
    limits: crate::conn::ConnLimits,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    crate::conn::serve_plain(listener, app, limits, shutdown).await
}
