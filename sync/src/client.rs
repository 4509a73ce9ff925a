//! The station's HTTP shell around [`crate::session::Session`]: performs each action with reqwest,
//! signs every request with the station key, retries cuts with backoff, and re-challenges when a
//! nonce is refused. Built with the `client` feature.

use std::sync::Arc;
use std::time::Duration;

pub use reqwest::Method;
use serde::de::DeserializeOwned;
use serde::Serialize;

use crate::keys::StationKey;
use crate::protocol::{
    request_message, ApiError, BlobProgress, ChallengeRequest, ChallengeResponse, CHALLENGE_NONCE,
    HEADER_BODY_SHA256, HEADER_NEXT_NONCE, HEADER_NONCE, HEADER_SIGNATURE, HEADER_STATION,
};
use crate::session::{Action, Session, Summary};

#[derive(Debug, thiserror::Error)]
pub enum SyncError {
    #[error("the centre at {url} cannot be reached: {detail}")]
    Unreachable { url: String, detail: String },
    #[error("the centre refused the request ({code}): {message}")]
    Refused {
        code: String,
        message: String,
        /// For "offset_mismatch": how many bytes of the blob the centre holds.
        have: Option<u64>,
    },
    /// The server presented a TLS certificate that `centre.pub` neither pins nor announced: the
    /// centre changed its certificate and this station missed the announcement, or someone else
    /// is answering. Not retried.
    #[error("the server at {url} presented a TLS certificate (SHA-256 {presented}) that this station does not pin for the centre (it pins {pinned}). If the centre changed its certificate, this station missed the announcement: at the centre run `tasjil-central keys export --out FILE`, bring FILE on USB and run `tasjil keys import FILE` here (a USB receipt from the centre brings it too), then sync again. If the centre did not change it, someone else is answering: send nothing")]
    PinMismatch {
        url: String,
        presented: String,
        pinned: String,
    },
    #[error("the centre answered something unexpected: {0}")]
    Protocol(String),
    #[error("{0}")]
    Local(String),
}

impl SyncError {
    /// Worth retrying: the link, not the content, failed.
    fn transient(&self) -> bool {
        match self {
            SyncError::Unreachable { .. } => true,
            SyncError::Refused { code, .. } => {
                matches!(code.as_str(), "bad_nonce" | "storage" | "hash_mismatch")
            }
            _ => false,
        }
    }
}

/// How hard to try before giving up on this sync (the next one resumes where this stopped).
#[derive(Debug, Clone)]
pub struct RetryPolicy {
    pub attempts: u32,
    pub first_delay: Duration,
    pub max_delay: Duration,
    pub timeout: Duration,
}

impl Default for RetryPolicy {
    fn default() -> Self {
        RetryPolicy {
            attempts: 8,
            first_delay: Duration::from_millis(200),
            max_delay: Duration::from_secs(10),
            timeout: Duration::from_secs(60),
        }
    }
}

/// Reads `len` bytes of the sealed payload `sha256` from `offset` (the station's store).
pub type BlobReader<'a> = dyn FnMut(&str, u64, u64) -> Result<Vec<u8>, String> + 'a;

/// An authenticated connection to the centre for one station.
#[derive(Debug)]
pub struct CentreClient {
    http: reqwest::Client,
    base: String,
    station: String,
    key: Arc<StationKey>,
    nonce: Option<String>,
    pub retry: RetryPolicy,
    /// The TLS pins accepted, and where the verifier leaves a refused certificate's fingerprint.
    pins: Vec<String>,
    refused_cert: crate::tls::PresentedSlot,
}

impl CentreClient {
    /// `tls_pins`: the centre certificates' SHA-256 from `centre.pub` (the current one and any
    /// announced next one, [`crate::CentrePublic::tls_pins`]), at least one for `https://`.
    /// Plain `http://` is accepted for loopback addresses only.
    pub fn new(
        base: &str,
        station: &str,
        key: Arc<StationKey>,
        retry: RetryPolicy,
        tls_pins: &[String],
    ) -> Result<Self, SyncError> {
        let refused_cert = crate::tls::PresentedSlot::default();
        // reqwest wants a process-wide rustls provider even for plain HTTP; ring is ours.
        let _ = crate::tls::provider().as_ref().clone().install_default();
        let builder = reqwest::Client::builder()
            .timeout(retry.timeout)
            .connect_timeout(Duration::from_secs(10));
        let builder = if base.starts_with("https://") {
            if tls_pins.is_empty() {
                return Err(SyncError::Local(
                    "centre.pub has no TLS certificate fingerprint (tls_cert_sha256): initialise the centre with this version"
                        .into(),
                ));
            }
            let config = crate::tls::client_config(tls_pins, refused_cert.clone())
                .map_err(|e| SyncError::Local(format!("TLS set-up: {e}")))?;
            builder.tls_backend_preconfigured(config)
        } else {
            let host = base
                .strip_prefix("http://")
                .and_then(|rest| rest.split('/').next())
                .map(|hp| hp.rsplit_once(':').map_or(hp, |(h, _)| h))
                .unwrap_or_default();
            if !crate::tls::is_loopback_host(host) {
                return Err(SyncError::Local(format!(
                    "plain HTTP is allowed only on loopback; use https:// for {base}"
                )));
            }
            builder
        };
        let http = builder
            .build()
            .map_err(|e| SyncError::Local(format!("cannot set up HTTP: {e}")))?;
        Ok(CentreClient {
            http,
            base: base.trim_end_matches('/').to_string(),
            station: station.to_string(),
            key,
            nonce: None,
            retry,
            pins: tls_pins.to_vec(),
            refused_cert,
        })
    }

    fn unreachable(&self, e: impl std::error::Error) -> SyncError {
        // The certificate was refused: say so plainly, and how to recover, rather than retry.
        if let Some(presented) = self.refused_cert.lock().ok().and_then(|mut s| s.take()) {
            return SyncError::PinMismatch {
                url: self.base.clone(),
                presented,
                pinned: self.pins.join(", "),
            };
        }
        // reqwest's own message hides the cause (refused, reset, certificate...): spell it out.
        let mut detail = e.to_string();
        let mut source = e.source();
        while let Some(s) = source {
            detail.push_str(": ");
            detail.push_str(&s.to_string());
            source = s.source();
        }
        SyncError::Unreachable {
            url: self.base.clone(),
            detail,
        }
    }

    async fn challenge(&mut self) -> Result<String, SyncError> {
        let body = serde_json::to_vec(&ChallengeRequest {
            station: self.station.clone(),
        })
        .map_err(|e| SyncError::Local(e.to_string()))?;
        let msg = request_message(
            "POST",
            "/v1/challenge",
            &self.station,
            CHALLENGE_NONCE,
            &body,
        );
        let sig = hex::encode(self.key.sign(&msg).to_bytes());
        let resp = self
            .http
            .post(format!("{}/v1/challenge", self.base))
            .header("content-type", "application/json")
            .header(HEADER_STATION, &self.station)
            .header(HEADER_BODY_SHA256, crate::sha256_hex(&body))
            .header(HEADER_SIGNATURE, sig)
            .body(body)
            .send()
            .await
            .map_err(|e| self.unreachable(e))?;
        let bytes = Self::read(resp).await.map_err(|e| match e {
            SyncError::Protocol(d) => SyncError::Unreachable {
                url: self.base.clone(),
                detail: d,
            },
            other => other,
        })?;
        let c: ChallengeResponse = serde_json::from_slice(&bytes)
            .map_err(|e| SyncError::Protocol(format!("bad challenge: {e}")))?;
        Ok(c.nonce)
    }

    async fn read(resp: reqwest::Response) -> Result<Vec<u8>, SyncError> {
        let status = resp.status();
        let bytes = resp
            .bytes()
            .await
            .map_err(|e| SyncError::Protocol(format!("answer cut short: {e}")))?;
        if status.is_success() {
            return Ok(bytes.to_vec());
        }
        let err: ApiError = serde_json::from_slice(&bytes).unwrap_or(ApiError {
            code: format!("http_{}", status.as_u16()),
            error: String::from_utf8_lossy(&bytes).chars().take(200).collect(),
            have: None,
        });
        Err(SyncError::Refused {
            code: err.code,
            message: err.error,
            have: err.have,
        })
    }

    /// One signed request. Takes the nonce for the next request from the answer.
    pub async fn call(
        &mut self,
        method: Method,
        path_and_query: &str,
        body: Vec<u8>,
    ) -> Result<Vec<u8>, SyncError> {
        let nonce = match self.nonce.take() {
            Some(n) => n,
            None => self.challenge().await?,
        };
        let msg = request_message(
            method.as_str(),
            path_and_query,
            &self.station,
            &nonce,
            &body,
        );
        let sig = hex::encode(self.key.sign(&msg).to_bytes());
        let resp = self
            .http
            .request(method, format!("{}{}", self.base, path_and_query))
            .header(HEADER_STATION, &self.station)
            .header(HEADER_NONCE, &nonce)
            .header(HEADER_SIGNATURE, sig)
            .header(HEADER_BODY_SHA256, crate::sha256_hex(&body))
            .header("content-type", "application/octet-stream")
            .body(body)
            .send()
            .await
            .map_err(|e| self.unreachable(e))?;
        self.nonce = resp
            .headers()
            .get(HEADER_NEXT_NONCE)
            .and_then(|v| v.to_str().ok())
            .map(str::to_string);
        match Self::read(resp).await {
            Err(SyncError::Protocol(d)) => Err(SyncError::Unreachable {
                url: self.base.clone(),
                detail: d,
            }),
            other => other,
        }
    }

    /// The centre's signed roster (as text) when newer than version `have`. The caller checks
    /// its signature and version before trusting it.
    pub async fn roster(&mut self, have: Option<u64>) -> Result<Option<String>, SyncError> {
        let answer: crate::protocol::RosterResponse = self
            .call_json_retrying(
                Method::POST,
                "/v1/roster",
                &crate::protocol::RosterRequest { have },
            )
            .await?;
        Ok(answer.roster)
    }

    /// The centre's key rotations after version `have` (canonical JSON text, in order); the
    /// caller checks each against the key set it holds.
    pub async fn keys(&mut self, have: u64) -> Result<Vec<String>, SyncError> {
        let answer: crate::protocol::KeysResponse = self
            .call_json_retrying(
                Method::POST,
                "/v1/keys",
                &crate::protocol::KeysRequest { have },
            )
            .await?;
        Ok(answer.rotations)
    }

    /// Send restore links (canonical JSON text) the centre may lack; the answer says what became
    /// of each and where the centre's copy of this station's chain ends.
    pub async fn chain(
        &mut self,
        links: Vec<String>,
    ) -> Result<crate::protocol::ChainResponse, SyncError> {
        self.call_json_retrying(
            Method::POST,
            "/v1/chain",
            &crate::protocol::ChainRequest { links },
        )
        .await
    }

    /// [`Self::call_json`] for a request that is safe to repeat, retried like a session's
    /// actions when the link (not the content) fails.
    async fn call_json_retrying<Req: Serialize, Resp: DeserializeOwned>(
        &mut self,
        method: Method,
        path: &str,
        req: &Req,
    ) -> Result<Resp, SyncError> {
        let mut failures = 0u32;
        let mut delay = self.retry.first_delay;
        loop {
            match self.call_json(method.clone(), path, req).await {
                Err(e) if e.transient() && failures + 1 < self.retry.attempts => {
                    failures += 1;
                    tracing::info!(error = %e, failures, path, "request failed, retrying");
                    self.nonce = None;
                    tokio::time::sleep(delay).await;
                    delay = (delay * 2).min(self.retry.max_delay);
                }
                other => return other,
            }
        }
    }

    async fn call_json<Req: Serialize, Resp: DeserializeOwned>(
        &mut self,
        method: Method,
        path: &str,
        req: &Req,
    ) -> Result<Resp, SyncError> {
        let body = serde_json::to_vec(req).map_err(|e| SyncError::Local(e.to_string()))?;
        let bytes = self.call(method, path, body).await?;
        serde_json::from_slice(&bytes).map_err(|e| SyncError::Protocol(format!("{path}: {e}")))
    }

    /// Perform one action of the session and feed the answer back.
    async fn step(
        &mut self,
        session: &mut Session,
        action: Action,
        read_blob: &mut BlobReader<'_>,
    ) -> Result<(), SyncError> {
        match action {
            Action::Have(req) => {
                let answer = self.call_json(Method::POST, "/v1/have", &req).await?;
                session.on_have(answer);
            }
            Action::PutBlob {
                sha256,
                offset,
                len,
                total,
            } => {
                let bytes = read_blob(&sha256, offset, len).map_err(SyncError::Local)?;
                let sent = bytes.len() as u64;
                let path = format!("/v1/blobs/{sha256}?offset={offset}&total={total}");
                match self.call(Method::PUT, &path, bytes).await {
                    Ok(answer) => {
                        let p: BlobProgress = serde_json::from_slice(&answer)
                            .map_err(|e| SyncError::Protocol(e.to_string()))?;
                        session.on_blob(p, sent);
                    }
                    // The centre holds a different amount than we thought (an earlier answer was
                    // lost): carry on from what it has.
                    Err(SyncError::Refused {
                        code,
                        have: Some(have),
                        ..
                    }) if code == "offset_mismatch" => {
                        session.on_blob(
                            BlobProgress {
                                sha256,
                                have,
                                complete: have == total,
                            },
                            0,
                        );
                    }
                    Err(e) => return Err(e),
                }
            }
            Action::Envelopes(req) => {
                let answer = self.call_json(Method::POST, "/v1/envelopes", &req).await?;
                session.on_envelopes(answer);
            }
            Action::Status(req) => {
                let answer = self.call_json(Method::POST, "/v1/status", &req).await?;
                session.on_status(answer);
            }
            Action::Done => {}
        }
        Ok(())
    }

    /// Run a session to the end, retrying transient failures with exponential backoff.
    /// `progress` is called after every completed action.
    pub async fn run(
        &mut self,
        mut session: Session,
        read_blob: &mut BlobReader<'_>,
        progress: &mut dyn FnMut(&Summary),
    ) -> Result<Summary, SyncError> {
        let mut failures = 0u32;
        let mut delay = self.retry.first_delay;
        while !session.is_done() {
            let action = session.next_action();
            let started = std::time::Instant::now();
            let result = self.step(&mut session, action.clone(), read_blob).await;
            session.add_time(&action, started.elapsed().as_millis() as u64);
            match result {
                Ok(()) => {
                    failures = 0;
                    delay = self.retry.first_delay;
                    progress(session.summary());
                }
                Err(e) if e.transient() && failures + 1 < self.retry.attempts => {
                    failures += 1;
                    if matches!(e, SyncError::Unreachable { .. }) {
                        session.on_transport_failure();
                    }
                    tracing::info!(error = %e, failures, "sync step failed, retrying");
                    self.nonce = None;
                    tokio::time::sleep(delay).await;
                    delay = (delay * 2).min(self.retry.max_delay);
                }
                Err(e) => return Err(e),
            }
        }
        Ok(session.summary().clone())
    }
}
