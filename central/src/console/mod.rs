//! The web console for central staff, under `/console/` on the centre's listener.
//!
//! Server-rendered HTML (askama templates compiled in, `central/templates/`), no JavaScript: every
//! action is a form. French (default), Arabic (right to left) and English. Roles decide what a
//! page offers and what a request may do — `viewer` sees counts and lists, `verifier` opens a
//! record (after giving a reason, written to the signed access log before anything is decrypted),
//! `issuer` sets issuance statuses, `admin` manages stations and the roster of field staff badges
//! ([`roster`]), releases or rejects held records and reads the access log — and every handler
//! checks the role again, whatever the page showed. See [`session`] for cookies and CSRF.
//!
//! Every response carries a Content-Security-Policy without script, `no-store`, and framing and
//! sniffing turned off. Decrypted data exists only in the response being built.

use std::sync::Arc;

use askama::Template;
use axum::body::Bytes;
use axum::extract::{Path, Query, State};
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::{get, post};
use axum::Router;
use serde::Deserialize;
use tasjil_sync::{CentreKeys, StationPublic};

use crate::staff::Role;
use crate::store::console::{Cursor, HeldDecision, Issuance, RecordFilter};
use crate::store::staff::LoginError;
use crate::store::{CentreError, CentreStore, StationState};

pub mod i18n;
pub mod roster;
pub mod session;
pub mod view;

use i18n::{Lang, Tr};
use session::{Me, Sessions, LANG_COOKIE, LOGIN_COOKIE, SESSION_COOKIE};

/// Rows per page of the records list.
pub const PAGE: usize = 50;

/// The reasons offered for opening a record (the `other` one needs words).
pub const OPEN_REASONS: [&str; 5] = [
    "reason-issuance",
    "reason-quality",
    "reason-citizen",
    "reason-legal",
    "reason-other",
];

/// Reasons offered for "re-enrol needed".
pub const REENROL_REASONS: [&str; 4] = ["rr-photo", "rr-fingers", "rr-signature", "rr-data"];

const CSP: &str = "default-src 'none'; style-src 'self'; img-src 'self' data:; \
                   form-action 'self'; frame-ancestors 'none'; base-uri 'none'";
const CSS: &str = include_str!("../../templates/console.css");

/// What the console needs: the store (it reads more than the sync API's backend trait offers) and
/// the centre's keys (second factors are sealed to them, payloads open with them, the access log
/// is signed with them).
pub struct Console {
    store: Arc<CentreStore>,
    keys: Option<CentreKeys>,
    sessions: Sessions,
}

impl std::fmt::Debug for Console {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Console")
            .field("store", &self.store)
            .field("keys", &self.keys.is_some())
            .finish()
    }
}

impl Console {
    /// A console over `store`. Without `keys` it serves only a page saying they are missing.
    pub fn new(store: Arc<CentreStore>, keys: Option<CentreKeys>) -> Arc<Console> {
        Arc::new(Console {
            store,
            keys,
            sessions: Sessions::default(),
        })
    }
}

/// The console's routes, to be nested at `/console`.
pub fn router(console: Arc<Console>) -> Router {
    Router::new()
        .route("/", get(|| async { Redirect::to("/console/overview") }))
        .route("/static/console.css", get(css))
        .route("/lang", get(set_lang))
        .route("/login", get(login_form).post(login))
        .route("/logout", post(logout))
        .route("/overview", get(overview))
        .route("/stations", get(stations).post(station_add))
        .route("/stations/{id}/state", post(station_state))
        .route("/batches", get(batches))
        .route("/records", get(records))
        .route("/records/issuance", post(bulk_issuance))
        .route("/records/{station}/{id}", get(record))
        .route("/records/{station}/{id}/open", post(record_open))
        .route("/records/{station}/{id}/nist", post(record_nist))
        .route("/records/{station}/{id}/issuance", post(record_issuance))
        .route("/records/{station}/{id}/held", post(record_held))
        .route("/roster", get(roster::roster).post(roster::roster_add))
        .route("/roster/{id}/revoke", post(roster::roster_revoke))
        .route("/access-log", get(access_log))
        .route("/access-log.json", get(access_log_json))
        .layer(axum::middleware::map_response(secure_headers))
        .with_state(console)
}

async fn secure_headers(mut resp: Response) -> Response {
    let h = resp.headers_mut();
    let set = |h: &mut HeaderMap, k: header::HeaderName, v: &'static str| {
        h.insert(k, HeaderValue::from_static(v));
    };
    set(h, header::CONTENT_SECURITY_POLICY, CSP);
    set(h, header::CACHE_CONTROL, "no-store");
    set(h, header::X_CONTENT_TYPE_OPTIONS, "nosniff");
    set(h, header::X_FRAME_OPTIONS, "DENY");
    set(h, header::REFERRER_POLICY, "no-referrer");
    resp
}

async fn css() -> Response {
    ([(header::CONTENT_TYPE, "text/css; charset=utf-8")], CSS).into_response()
}

// ---------------------------------------------------------------------------------------------
// Request context

/// The page's frame: language, who is logged in, the current path (for the language bar).
#[derive(Debug, Clone)]
pub struct Frame {
    pub t: Tr,
    pub me: Option<Me>,
    pub path: String,
    pub langs: Vec<(String, String, bool)>,
}

impl Frame {
    fn new(lang: Lang, me: Option<Me>, path: &str) -> Frame {
        Frame {
            t: Tr(lang),
            me,
            path: path.into(),
            langs: Lang::ALL
                .iter()
                .map(|l| (l.code().to_string(), l.name().to_string(), *l == lang))
                .collect(),
        }
    }
    pub fn csrf(&self) -> &str {
        self.me.as_ref().map_or("", |m| m.csrf.as_str())
    }
    pub fn staff(&self) -> &str {
        self.me.as_ref().map_or("", |m| m.staff.as_str())
    }
    pub fn role(&self) -> &str {
        self.me.as_ref().map_or("", |m| m.role.as_str())
    }
    fn at_least(&self, role: Role) -> bool {
        self.me.as_ref().is_some_and(|m| m.role >= role)
    }
    pub fn is_verifier(&self) -> bool {
        self.at_least(Role::Verifier)
    }
    pub fn is_issuer(&self) -> bool {
        self.at_least(Role::Issuer)
    }
    pub fn is_admin(&self) -> bool {
        self.at_least(Role::Admin)
    }
}

fn cookie_header(headers: &HeaderMap) -> &str {
    headers
        .get(header::COOKIE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
}

fn lang_of(headers: &HeaderMap) -> Lang {
    session::read_cookie(cookie_header(headers), LANG_COOKIE)
        .and_then(Lang::parse)
        .unwrap_or_default()
}

/// Why a request did not get its page.
enum Refusal {
    /// Not logged in (or the session ended): to the login page.
    Login,
    Forbidden(Frame),
    BadCsrf(Frame),
    NotFound(Frame),
    /// A refusal with words for the person (bad input), shown with 400.
    Bad(Frame, String),
    Failed(Frame, String),
    NoKeys(Lang),
}

impl From<(Frame, CentreError)> for Refusal {
    fn from((frame, e): (Frame, CentreError)) -> Refusal {
        match e {
            CentreError::BadStaff(m) | CentreError::Roster(m) => Refusal::Bad(frame, m),
            CentreError::UnknownStation(_) => Refusal::NotFound(frame),
            CentreError::StationBarred { .. }
            | CentreError::StationKeyConflict { .. }
            | CentreError::BadStationId(_)
            | CentreError::BadStationKey { .. } => Refusal::Bad(frame, e.to_string()),
            other => {
                tracing::error!(error = %other, "console: storage error");
                Refusal::Failed(frame, other.to_string())
            }
        }
    }
}

#[derive(Template)]
#[template(path = "message.html")]
struct MessagePage {
    f: Frame,
    title: String,
    message: String,
}

impl IntoResponse for Refusal {
    fn into_response(self) -> Response {
        let (status, f, title, message) = match self {
            Refusal::Login => return Redirect::to("/console/login").into_response(),
            Refusal::NoKeys(lang) => {
                let f = Frame::new(lang, None, "/console/login");
                let m = f.t.s("no-keys").to_string();
                (StatusCode::SERVICE_UNAVAILABLE, f, "error", m)
            }
            Refusal::Forbidden(f) => {
                let m = f.t.s("forbidden").to_string();
                (StatusCode::FORBIDDEN, f, "error", m)
            }
            Refusal::BadCsrf(f) => {
                let m = f.t.s("bad-csrf").to_string();
                (StatusCode::FORBIDDEN, f, "error", m)
            }
            Refusal::NotFound(f) => {
                let m = f.t.s("not-found").to_string();
                (StatusCode::NOT_FOUND, f, "error", m)
            }
            Refusal::Bad(f, m) => (StatusCode::BAD_REQUEST, f, "error", m),
            Refusal::Failed(f, m) => (StatusCode::SERVICE_UNAVAILABLE, f, "error", m),
        };
        let title = f.t.s(title).to_string();
        (status, html(&MessagePage { f, title, message })).into_response()
    }
}

fn html(t: &impl Template) -> Response {
    match t.render() {
        Ok(body) => ([(header::CONTENT_TYPE, "text/html; charset=utf-8")], body).into_response(),
        Err(e) => {
            tracing::error!(error = %e, "console: template failed");
            (StatusCode::INTERNAL_SERVER_ERROR, "template error").into_response()
        }
    }
}

impl Console {
    /// The logged-in frame of a request, or why there is none.
    fn frame(&self, headers: &HeaderMap, path: &str) -> Result<Frame, Refusal> {
        let lang = lang_of(headers);
        if self.keys.is_none() {
            return Err(Refusal::NoKeys(lang));
        }
        let me = session::read_cookie(cookie_header(headers), SESSION_COOKIE)
            .and_then(|t| self.sessions.get(t))
            .ok_or(Refusal::Login)?;
        Ok(Frame::new(lang, Some(me), path))
    }

    /// [`Self::frame`] for a form post: also checks the CSRF token and the role.
    fn posted(
        &self,
        headers: &HeaderMap,
        form: &Form,
        path: &str,
        role: Role,
    ) -> Result<Frame, Refusal> {
        let f = self.frame(headers, path)?;
        if !session::same(form.get("csrf"), f.csrf()) {
            tracing::warn!(
                staff = f.staff(),
                path,
                "console: form with a bad CSRF token"
            );
            return Err(Refusal::BadCsrf(f));
        }
        if !f.at_least(role) {
            return Err(Refusal::Forbidden(f));
        }
        Ok(f)
    }

    fn keys(&self) -> &CentreKeys {
        // `frame` refuses every request before this when the keys are missing.
        self.keys.as_ref().expect("checked by frame")
    }
}

/// A posted `application/x-www-form-urlencoded` body (repeated names kept).
#[derive(Debug, Default)]
struct Form(Vec<(String, String)>);

impl Form {
    fn parse(body: &[u8]) -> Form {
        Form(
            form_urlencoded::parse(body)
                .map(|(k, v)| (k.into_owned(), v.into_owned()))
                .collect(),
        )
    }
    fn get(&self, name: &str) -> &str {
        self.0
            .iter()
            .find(|(k, _)| k == name)
            .map_or("", |(_, v)| v.as_str())
    }
    fn all<'a>(&'a self, name: &'a str) -> impl Iterator<Item = &'a str> + 'a {
        self.0
            .iter()
            .filter(move |(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    }
}

async fn blocking<T: Send + 'static>(f: impl FnOnce() -> T + Send + 'static) -> T {
    match tokio::task::spawn_blocking(f).await {
        Ok(v) => v,
        Err(e) => std::panic::resume_unwind(e.into_panic()),
    }
}

fn ms_text(ms: i64) -> String {
    let (date, time) = crate::nist::utc_date_time(ms);
    let d = format!("{}-{}-{}", &date[..4], &date[4..6], &date[6..8]);
    let t = format!("{}:{}", &time[8..10], &time[10..12]);
    format!("{d} {t}")
}

fn see_other(to: &str) -> Response {
    (StatusCode::SEE_OTHER, [(header::LOCATION, to.to_string())]).into_response()
}

// ---------------------------------------------------------------------------------------------
// Language, login, logout

#[derive(Deserialize)]
struct LangQuery {
    to: String,
    #[serde(default)]
    back: String,
}

async fn set_lang(Query(q): Query<LangQuery>) -> Response {
    let lang = Lang::parse(&q.to).unwrap_or_default();
    // Only back into the console: never an open redirect.
    let back = if q.back.starts_with("/console/") && !q.back.starts_with("/console//") {
        q.back
    } else {
        "/console/overview".into()
    };
    (
        StatusCode::SEE_OTHER,
        [
            (header::LOCATION, back),
            (
                header::SET_COOKIE,
                session::cookie(LANG_COOKIE, lang.code(), Some(365 * 86_400)),
            ),
        ],
    )
        .into_response()
}

#[derive(Template)]
#[template(path = "login.html")]
struct LoginPage {
    f: Frame,
    login_csrf: String,
    error: Option<String>,
    id: String,
}

async fn login_form(State(c): State<Arc<Console>>, headers: HeaderMap) -> Response {
    let lang = lang_of(&headers);
    if c.keys.is_none() {
        return Refusal::NoKeys(lang).into_response();
    }
    login_page(lang, None, String::new(), StatusCode::OK)
}

fn login_page(lang: Lang, error: Option<String>, id: String, status: StatusCode) -> Response {
    let token = session::token();
    let page = LoginPage {
        f: Frame::new(lang, None, "/console/login"),
        login_csrf: token.clone(),
        error,
        id,
    };
    let mut resp = (status, html(&page)).into_response();
    if let Ok(v) = HeaderValue::from_str(&session::cookie(LOGIN_COOKIE, &token, Some(1800))) {
        resp.headers_mut().append(header::SET_COOKIE, v);
    }
    resp
}

async fn login(State(c): State<Arc<Console>>, headers: HeaderMap, body: Bytes) -> Response {
    let lang = lang_of(&headers);
    let t = Tr(lang);
    if c.keys.is_none() {
        return Refusal::NoKeys(lang).into_response();
    }
    let form = Form::parse(&body);
    let id = form.get("id").trim().to_string();
    let expected = session::read_cookie(cookie_header(&headers), LOGIN_COOKIE).unwrap_or("");
    if expected.is_empty() || !session::same(form.get("csrf"), expected) {
        return login_page(
            lang,
            Some(t.s("login-expired").into()),
            id,
            StatusCode::FORBIDDEN,
        );
    }
    let (password, code) = (
        form.get("password").to_string(),
        form.get("code").to_string(),
    );
    let c2 = c.clone();
    let id2 = id.clone();
    let answer = blocking(move || {
        // The second factor is sealed to the centre key of the day the account was made: after a
        // key rotation, a retired identity opens it (a refusal to open changes nothing).
        let keys = c2.keys();
        let mut answer = Err(crate::CentreError::Migration("no centre key".into()));
        for identity in keys.identities() {
            answer = c2
                .store
                .staff_login(&id2, &password, code.trim(), identity, crate::now_ms());
            if !matches!(answer, Err(crate::CentreError::Damaged { .. })) {
                break;
            }
        }
        answer
    })
    .await;
    match answer {
        Ok(Ok(role)) => {
            tracing::info!(staff = %id, role = role.as_str(), "console: staff logged in");
            let token = c.sessions.start(&id, role);
            let mut resp = see_other("/console/overview");
            let h = resp.headers_mut();
            for cookie in [
                session::cookie(SESSION_COOKIE, &token, None),
                session::cookie(LOGIN_COOKIE, "", Some(0)),
            ] {
                if let Ok(v) = HeaderValue::from_str(&cookie) {
                    h.append(header::SET_COOKIE, v);
                }
            }
            resp
        }
        Ok(Err(refusal)) => {
            tracing::warn!(staff = %id, %refusal, "console: login refused");
            let words = match refusal {
                LoginError::BadCredentials => t.s("login-bad"),
                LoginError::Locked { .. } => t.s("login-locked"),
                LoginError::Disabled => t.s("login-disabled"),
            };
            login_page(lang, Some(words.into()), id, StatusCode::UNAUTHORIZED)
        }
        Err(e) => Refusal::from((Frame::new(lang, None, "/console/login"), e)).into_response(),
    }
}

async fn logout(State(c): State<Arc<Console>>, headers: HeaderMap, body: Bytes) -> Response {
    let form = Form::parse(&body);
    match c.posted(&headers, &form, "/console/logout", Role::Viewer) {
        Ok(f) => {
            if let Some(t) = session::read_cookie(cookie_header(&headers), SESSION_COOKIE) {
                c.sessions.end(t);
            }
            tracing::info!(staff = f.staff(), "console: staff logged out");
            let mut resp = see_other("/console/login");
            if let Ok(v) = HeaderValue::from_str(&session::cookie(SESSION_COOKIE, "", Some(0))) {
                resp.headers_mut().append(header::SET_COOKIE, v);
            }
            resp
        }
        Err(r) => r.into_response(),
    }
}

// ---------------------------------------------------------------------------------------------
// Overview, stations, batches

#[derive(Template)]
#[template(path = "overview.html")]
struct OverviewPage {
    f: Frame,
    cards: Vec<(String, u64, String)>,
    stations: Vec<StationLine>,
}

struct StationLine {
    id: String,
    state: String,
    state_words: String,
    state_reason: String,
    last: String,
    records: u64,
    waiting: u64,
    rejects: u64,
}

async fn overview(State(c): State<Arc<Console>>, headers: HeaderMap) -> Response {
    let f = match c.frame(&headers, "/console/overview") {
        Ok(f) => f,
        Err(r) => return r.into_response(),
    };
    let c2 = c.clone();
    let o = match blocking(move || c2.store.overview(crate::now_ms())).await {
        Ok(o) => o,
        Err(e) => return Refusal::from((f, e)).into_response(),
    };
    let t = f.t;
    let cards = vec![
        (t.s("ov-today").into(), o.received_today, String::new()),
        (t.s("ov-week").into(), o.received_week, String::new()),
        (
            t.s("ov-verified").into(),
            o.verified,
            "status=verified".into(),
        ),
        (t.s("ov-rejected").into(), o.rejected, String::new()),
        (
            t.s("ov-awaiting").into(),
            o.awaiting_issuance,
            "status=awaiting".into(),
        ),
        (t.s("ov-reenrol").into(), o.reenrol, "status=reenrol".into()),
    ];
    let stations = o
        .stations
        .into_iter()
        .map(|s| StationLine {
            state_words: t.status(&s.state).into(),
            state: s.state,
            state_reason: s.state_reason.unwrap_or_default(),
            last: match (s.last_contact_ms, s.last_contact_kind) {
                (Some(ms), Some(kind)) => format!("{} · {}", ms_text(ms), t.status(&kind)),
                _ => t.s("never").into(),
            },
            id: s.id,
            records: s.records,
            waiting: s.waiting,
            rejects: s.rejects,
        })
        .collect();
    html(&OverviewPage { f, cards, stations })
}

#[derive(Template)]
#[template(path = "stations.html")]
struct StationsPage {
    f: Frame,
    notice: Option<String>,
    stations: Vec<StationRow>,
}

struct StationRow {
    id: String,
    key: String,
    added: String,
    state: String,
    state_words: String,
    state_reason: String,
    revoked: bool,
}

async fn stations_page(c: &Arc<Console>, f: Frame, notice: Option<String>) -> Response {
    let c2 = c.clone();
    let list = match blocking(move || c2.store.stations()).await {
        Ok(l) => l,
        Err(e) => return Refusal::from((f, e)).into_response(),
    };
    let t = f.t;
    let stations = list
        .into_iter()
        .map(|s| StationRow {
            key: s.key_hex.chars().take(16).collect::<String>() + "…",
            added: ms_text(s.added_ms),
            state_words: t.status(&s.state).into(),
            revoked: s.state == "revoked",
            state: s.state,
            state_reason: s.state_reason.unwrap_or_default(),
            id: s.id,
        })
        .collect();
    html(&StationsPage {
        f,
        notice,
        stations,
    })
}

async fn stations(State(c): State<Arc<Console>>, headers: HeaderMap) -> Response {
    match c.frame(&headers, "/console/stations") {
        Ok(f) => stations_page(&c, f, None).await,
        Err(r) => r.into_response(),
    }
}

async fn station_add(State(c): State<Arc<Console>>, headers: HeaderMap, body: Bytes) -> Response {
    let form = Form::parse(&body);
    let f = match c.posted(&headers, &form, "/console/stations", Role::Admin) {
        Ok(f) => f,
        Err(r) => return r.into_response(),
    };
    let public: StationPublic = match serde_json::from_str(form.get("key").trim()) {
        Ok(p) => p,
        Err(e) => {
            return Refusal::Bad(f, format!("this is not a station.pub file: {e}")).into_response()
        }
    };
    if public.kind != StationPublic::KIND {
        return Refusal::Bad(f, format!("kind must be {}", StationPublic::KIND)).into_response();
    }
    if public.simulation != (form.get("simulation") == "yes") {
        let m = f.t.s("stations-training-mismatch").to_string();
        return Refusal::Bad(f, m).into_response();
    }
    if let Err(e) = public.verifying_key() {
        return Refusal::Bad(f, format!("the key in this station.pub is unreadable: {e}"))
            .into_response();
    }
    let c2 = c.clone();
    let staff = f.staff().to_string();
    let station = public.station.clone();
    match blocking(move || c2.store.add_station(&public, crate::now_ms())).await {
        Ok(added) => {
            tracing::warn!(%staff, %station, added, "console: station registered");
            let notice = f.t.s(if added {
                "stations-added"
            } else {
                "stations-already"
            });
            stations_page(&c, f, Some(format!("{notice} ({station})"))).await
        }
        Err(e) => Refusal::from((f, e)).into_response(),
    }
}

async fn station_state(
    State(c): State<Arc<Console>>,
    Path(id): Path<String>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let form = Form::parse(&body);
    let f = match c.posted(&headers, &form, "/console/stations", Role::Admin) {
        Ok(f) => f,
        Err(r) => return r.into_response(),
    };
    let state = match form.get("action") {
        "suspend" => StationState::Suspended,
        "resume" => StationState::Active,
        "revoke" => StationState::Revoked,
        other => return Refusal::Bad(f, format!("unknown action {other:?}")).into_response(),
    };
    let reason = form.get("reason").trim().to_string();
    if state == StationState::Revoked && reason.is_empty() {
        let m = f.t.s("stations-reason").to_string();
        return Refusal::Bad(f, m).into_response();
    }
    let c2 = c.clone();
    let staff = f.staff().to_string();
    let reason = (!reason.is_empty()).then(|| format!("{reason} (by {staff})"));
    let id2 = id.clone();
    match blocking(move || {
        c2.store
            .set_station_state(&id2, state, reason.as_deref(), crate::now_ms())
    })
    .await
    {
        Ok(_) => {
            let notice = format!("{} ({id})", f.t.s("stations-done"));
            stations_page(&c, f, Some(notice)).await
        }
        Err(e) => Refusal::from((f, e)).into_response(),
    }
}

#[derive(Template)]
#[template(path = "batches.html")]
struct BatchesPage {
    f: Frame,
    rows: Vec<BatchLine>,
    older: Option<i64>,
}

struct BatchLine {
    when: String,
    kind: String,
    station: String,
    stored: u64,
    already: u64,
    rejected: u64,
    reasons: Vec<String>,
    receipt: String,
}

#[derive(Deserialize)]
struct BatchesQuery {
    before: Option<i64>,
}

async fn batches(
    State(c): State<Arc<Console>>,
    headers: HeaderMap,
    Query(q): Query<BatchesQuery>,
) -> Response {
    let f = match c.frame(&headers, "/console/batches") {
        Ok(f) => f,
        Err(r) => return r.into_response(),
    };
    let c2 = c.clone();
    let list = match blocking(move || c2.store.batches(q.before, PAGE)).await {
        Ok(l) => l,
        Err(e) => return Refusal::from((f, e)).into_response(),
    };
    let t = f.t;
    let older = (list.len() == PAGE)
        .then(|| list.last().map(|b| b.seq))
        .flatten();
    let rows = list
        .into_iter()
        .map(|b| BatchLine {
            when: ms_text(b.at_ms),
            kind: t.status(&b.kind).into(),
            receipt: match &b.bundle_id {
                Some(id) => format!("{} · {id}", t.s("receipt-signed")),
                None => String::new(),
            },
            station: b.station,
            stored: b.stored,
            already: b.already,
            rejected: b.rejected,
            reasons: b
                .reasons
                .into_iter()
                .map(|r| match r.id {
                    Some(id) => format!("{id}: {}", r.reason),
                    None => r.reason,
                })
                .collect(),
        })
        .collect();
    html(&BatchesPage { f, rows, older })
}

// ---------------------------------------------------------------------------------------------
// Records

#[derive(Template)]
#[template(path = "records.html")]
struct RecordsPage {
    f: Frame,
    q: RecordsQuery,
    statuses: Vec<(String, String, bool)>,
    rows: Vec<RecordLine>,
    next: Option<String>,
    issuances: Vec<(String, String)>,
    notice: Option<String>,
}

struct RecordLine {
    station: String,
    id: String,
    seq: u64,
    received: String,
    status: String,
    issuance: String,
    can_issue: bool,
}

#[derive(Debug, Clone, Default, Deserialize)]
struct RecordsQuery {
    #[serde(default)]
    id: String,
    #[serde(default)]
    station: String,
    #[serde(default)]
    day: String,
    #[serde(default)]
    status: String,
    #[serde(default)]
    after: String,
}

impl RecordsQuery {
    /// The query string of the next page.
    fn next_link(&self, cursor: &Cursor) -> String {
        form_urlencoded::Serializer::new(String::new())
            .append_pair("id", &self.id)
            .append_pair("station", &self.station)
            .append_pair("day", &self.day)
            .append_pair("status", &self.status)
            .append_pair("after", &cursor.encode())
            .finish()
    }
}

async fn records(
    State(c): State<Arc<Console>>,
    headers: HeaderMap,
    Query(q): Query<RecordsQuery>,
) -> Response {
    let f = match c.frame(&headers, "/console/records") {
        Ok(f) => f,
        Err(r) => return r.into_response(),
    };
    records_page(&c, f, q, None).await
}

async fn records_page(
    c: &Arc<Console>,
    f: Frame,
    q: RecordsQuery,
    notice: Option<String>,
) -> Response {
    let filter = RecordFilter {
        id: Some(q.id.trim().to_string()),
        station: Some(q.station.trim().to_string()),
        day: Some(q.day.trim().to_string()),
        status: Some(q.status.clone()),
    };
    let after = Cursor::decode(&q.after);
    let c2 = c.clone();
    let page = blocking(move || c2.store.records_page(&filter, after.as_ref(), PAGE)).await;
    let (rows, next) = match page {
        Ok(p) => p,
        Err(e) => return Refusal::from((f, e)).into_response(),
    };
    let t = f.t;
    let statuses = [
        "", "verified", "held", "rejected", "awaiting", "accepted", "issued", "reenrol",
    ]
    .iter()
    .map(|s| {
        let words = if s.is_empty() {
            t.s("st-any")
        } else {
            t.status(s)
        };
        (s.to_string(), words.to_string(), q.status == *s)
    })
    .collect();
    let rows = rows
        .into_iter()
        .map(|r| RecordLine {
            received: ms_text(r.received_ms),
            can_issue: r.status == "verified",
            status: t.status(&r.status).into(),
            issuance: r
                .issuance
                .as_deref()
                .map_or(String::new(), |s| t.status(s).into()),
            station: r.station,
            id: r.id,
            seq: r.seq,
        })
        .collect();
    let next = next.map(|c| q.next_link(&c));
    let issuances = Issuance::ALL
        .iter()
        .map(|i| (i.as_str().to_string(), t.status(i.as_str()).to_string()))
        .collect();
    html(&RecordsPage {
        f,
        q,
        statuses,
        rows,
        next,
        issuances,
        notice,
    })
}

async fn bulk_issuance(State(c): State<Arc<Console>>, headers: HeaderMap, body: Bytes) -> Response {
    let form = Form::parse(&body);
    let f = match c.posted(&headers, &form, "/console/records", Role::Issuer) {
        Ok(f) => f,
        Err(r) => return r.into_response(),
    };
    let Some(status) = Issuance::parse(form.get("status")) else {
        return Refusal::Bad(f, "choose an issuance status".into()).into_response();
    };
    let picked: Vec<(String, String)> = form
        .all("pick")
        .filter_map(|v| v.split_once('/'))
        .map(|(s, i)| (s.to_string(), i.to_string()))
        .collect();
    if picked.is_empty() {
        return Refusal::Bad(f, "tick at least one record".into()).into_response();
    }
    let reason = reenrol_reason(&f, &form);
    let c2 = c.clone();
    let staff = f.staff().to_string();
    match blocking(move || {
        c2.store
            .set_issuance(&picked, status, reason.as_deref(), &staff, crate::now_ms())
    })
    .await
    {
        Ok(n) => {
            let notice = format!("{} ({n})", f.t.s("iss-done"));
            records_page(&c, f, RecordsQuery::default(), Some(notice)).await
        }
        Err(e) => Refusal::from((f, e)).into_response(),
    }
}

/// The reason a form gives for an issuance status: the chosen preset in words, then the text.
fn reenrol_reason(f: &Frame, form: &Form) -> Option<String> {
    let preset = REENROL_REASONS
        .iter()
        .find(|k| **k == form.get("preset"))
        .map(|k| f.t.s(k).to_string());
    let text = form.get("reason").trim();
    match (preset, text.is_empty()) {
        (Some(p), true) => Some(p),
        (Some(p), false) => Some(format!("{p}: {text}")),
        (None, false) => Some(text.to_string()),
        (None, true) => None,
    }
}

#[derive(Template)]
#[template(path = "record.html")]
struct RecordPage {
    f: Frame,
    station: String,
    id: String,
    facts: Vec<(String, String)>,
    fingers: Vec<(String, u8)>,
    status: String,
    verified: bool,
    held: bool,
    held_decision: Option<String>,
    history: Vec<String>,
    rejections: Vec<String>,
    reasons: Vec<(String, String)>,
    reenrol_reasons: Vec<(String, String)>,
    issuances: Vec<(String, String)>,
    notice: Option<String>,
    opened: Option<view::OpenedRecord>,
    log_seq: u64,
}

async fn record(
    State(c): State<Arc<Console>>,
    Path((station, id)): Path<(String, String)>,
    headers: HeaderMap,
) -> Response {
    let path = format!("/console/records/{station}/{id}");
    match c.frame(&headers, &path) {
        Ok(f) => record_page(&c, f, station, id, None, None).await,
        Err(r) => r.into_response(),
    }
}

async fn record_page(
    c: &Arc<Console>,
    f: Frame,
    station: String,
    id: String,
    notice: Option<String>,
    opened: Option<(view::OpenedRecord, u64)>,
) -> Response {
    let c2 = c.clone();
    let (s2, i2) = (station.clone(), id.clone());
    let facts = match blocking(move || c2.store.record_facts(&s2, &i2)).await {
        Ok(Some(facts)) => facts,
        Ok(None) => return Refusal::NotFound(f).into_response(),
        Err(e) => return Refusal::from((f, e)).into_response(),
    };
    let t = f.t;
    let status = match &facts.row.issuance {
        Some(i) => format!("{} · {}", t.status(&facts.row.status), t.status(i)),
        None => t.status(&facts.row.status).to_string(),
    };
    let status = match &facts.issuance_reason {
        Some(r) => format!("{status} — {r}"),
        None => status,
    };
    // A held record says why next to its status: that is what the admin decides on.
    let status = match facts.rejections.last() {
        Some((why, _)) if facts.row.status == "held" => format!("{status} — {why}"),
        _ => status,
    };
    let list = |v: &[String]| {
        if v.is_empty() {
            t.s("none").to_string()
        } else {
            v.join(", ")
        }
    };
    let rows = vec![
        (t.s("col-station").into(), facts.row.station.clone()),
        (t.s("col-seq").into(), facts.row.seq.to_string()),
        (t.s("record-kind").into(), facts.kind.clone()),
        (t.s("record-officer").into(), facts.officer.clone()),
        (
            t.s("record-captured").into(),
            format!(
                "{} → {}",
                ms_text(facts.captured_started_ms),
                ms_text(facts.captured_finished_ms)
            ),
        ),
        (t.s("col-received").into(), ms_text(facts.row.received_ms)),
        (t.s("record-face-q").into(), facts.face_quality.to_string()),
        (
            t.s("record-exceptions").into(),
            list(&facts.finger_exceptions),
        ),
        (t.s("record-below").into(), list(&facts.below_threshold)),
        (
            t.s("record-payload").into(),
            format!(
                "{} · {} B",
                &facts.payload_sha256[..16.min(facts.payload_sha256.len())],
                facts.payload_len
            ),
        ),
    ];
    let history = facts
        .issuance_history
        .iter()
        .map(|e| {
            format!(
                "{} · {} · {}{}",
                ms_text(e.at_ms),
                t.status(&e.status),
                e.by,
                e.reason
                    .as_deref()
                    .map_or(String::new(), |r| format!(" — {r}"))
            )
        })
        .collect();
    let rejections = facts
        .rejections
        .iter()
        .map(|(r, at)| format!("{} · {r}", ms_text(*at)))
        .collect();
    let (opened, log_seq) = match opened {
        Some((o, seq)) => (Some(o), seq),
        None => (None, 0),
    };
    let pairs = |keys: &[&str]| -> Vec<(String, String)> {
        keys.iter()
            .map(|k| (k.to_string(), t.s(k).to_string()))
            .collect()
    };
    let held_decision = facts.held_decision.as_ref().map(|d| {
        format!(
            "{} · {} {} — {}",
            ms_text(d.at_ms),
            t.s(match d.decision {
                HeldDecision::Release => "held-by-release",
                HeldDecision::Reject => "held-by-reject",
            }),
            d.by,
            d.reason
        )
    });
    html(&RecordPage {
        verified: facts.row.status == "verified",
        held: facts.row.status == "held",
        held_decision,
        fingers: facts.finger_quality.clone(),
        facts: rows,
        status,
        history,
        rejections,
        reasons: pairs(&OPEN_REASONS),
        reenrol_reasons: pairs(&REENROL_REASONS),
        issuances: Issuance::ALL
            .iter()
            .map(|i| (i.as_str().to_string(), t.status(i.as_str()).to_string()))
            .collect(),
        notice,
        opened,
        log_seq,
        f,
        station,
        id,
    })
}

/// The reason a person gave to open a record: the preset in words, plus their text (required
/// for "other").
fn open_reason(f: &Frame, form: &Form) -> Result<String, String> {
    let preset = form.get("preset");
    let text = form.get("reason").trim();
    if !OPEN_REASONS.contains(&preset) {
        return Err(f.t.s("open-need-reason").into());
    }
    if preset == "reason-other" && text.is_empty() {
        return Err(f.t.s("open-need-reason").into());
    }
    // The log keeps the preset in English words, so it reads the same whatever the screen's
    // language was.
    let words = Tr(Lang::En).s(preset);
    Ok(if text.is_empty() {
        words.to_string()
    } else {
        format!("{words}: {text}")
    })
}

async fn record_open(
    State(c): State<Arc<Console>>,
    Path((station, id)): Path<(String, String)>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let form = Form::parse(&body);
    let path = format!("/console/records/{station}/{id}");
    let f = match c.posted(&headers, &form, &path, Role::Verifier) {
        Ok(f) => f,
        Err(r) => return r.into_response(),
    };
    let reason = match open_reason(&f, &form) {
        Ok(r) => r,
        Err(m) => return Refusal::Bad(f, m).into_response(),
    };
    let c2 = c.clone();
    let (s2, i2, who) = (station.clone(), id.clone(), f.staff().to_string());
    let opened = blocking(move || -> Result<_, CentreError> {
        let Some(facts) = c2.store.record_facts(&s2, &i2)? else {
            return Ok(None);
        };
        let sealed = c2.store.read_blob(&facts.payload_sha256)?;
        if tasjil_sync::sha256_hex(&sealed) != facts.payload_sha256 {
            return Err(CentreError::BadStaff(
                "the stored payload does not match its envelope: run tasjil-central verify".into(),
            ));
        }
        // Logged before anything is decrypted.
        let logged = c2.store.log_access(
            &c2.keys().signing,
            &who,
            "open",
            &s2,
            &i2,
            &reason,
            crate::now_ms(),
        )?;
        let payload = tasjil_sync::record::Payload::open_with(&sealed, &c2.keys().identities())
            .map_err(|e| CentreError::BadStaff(format!("cannot open the payload: {e}")))?;
        Ok(Some((view::opened(&payload), logged.entry.seq)))
    })
    .await;
    match opened {
        Ok(Some(o)) => record_page(&c, f, station, id, None, Some(o)).await,
        Ok(None) => Refusal::NotFound(f).into_response(),
        Err(e) => Refusal::from((f, e)).into_response(),
    }
}

async fn record_nist(
    State(c): State<Arc<Console>>,
    Path((station, id)): Path<(String, String)>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let form = Form::parse(&body);
    let path = format!("/console/records/{station}/{id}");
    let f = match c.posted(&headers, &form, &path, Role::Verifier) {
        Ok(f) => f,
        Err(r) => return r.into_response(),
    };
    let reason = match open_reason(&f, &form) {
        Ok(r) => r,
        Err(m) => return Refusal::Bad(f, m).into_response(),
    };
    let c2 = c.clone();
    let (s2, i2, who) = (station.clone(), id.clone(), f.staff().to_string());
    let made = blocking(move || {
        crate::nist::export(
            &c2.store,
            c2.keys(),
            &who,
            &reason,
            Some(&s2),
            &i2,
            "CAR",
            "AFIS",
            crate::now_ms(),
        )
    })
    .await;
    match made {
        Ok((bytes, _)) => (
            [
                (header::CONTENT_TYPE, "application/octet-stream".to_string()),
                (
                    header::CONTENT_DISPOSITION,
                    format!("attachment; filename=\"{station}-{id}.an2\""),
                ),
            ],
            bytes,
        )
            .into_response(),
        Err(e) => Refusal::Bad(f, format!("{e:#}")).into_response(),
    }
}

async fn record_issuance(
    State(c): State<Arc<Console>>,
    Path((station, id)): Path<(String, String)>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let form = Form::parse(&body);
    let path = format!("/console/records/{station}/{id}");
    let f = match c.posted(&headers, &form, &path, Role::Issuer) {
        Ok(f) => f,
        Err(r) => return r.into_response(),
    };
    let Some(status) = Issuance::parse(form.get("status")) else {
        return Refusal::Bad(f, "choose an issuance status".into()).into_response();
    };
    let reason = reenrol_reason(&f, &form);
    let c2 = c.clone();
    let picked = vec![(station.clone(), id.clone())];
    let staff = f.staff().to_string();
    match blocking(move || {
        c2.store
            .set_issuance(&picked, status, reason.as_deref(), &staff, crate::now_ms())
    })
    .await
    {
        Ok(_) => {
            let notice = f.t.s("iss-done").to_string();
            record_page(&c, f, station, id, Some(notice), None).await
        }
        Err(e) => Refusal::from((f, e)).into_response(),
    }
}

/// An admin's decision on a held record: `action` release (held -> verified) or reject
/// (held -> rejected), with a reason. Admin only: a held record is one whose badge the roster did
/// not allow, or whose id another station used, and letting it through overrides that check —
/// the same trust decision as managing stations and the roster.
async fn record_held(
    State(c): State<Arc<Console>>,
    Path((station, id)): Path<(String, String)>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let form = Form::parse(&body);
    let path = format!("/console/records/{station}/{id}");
    let f = match c.posted(&headers, &form, &path, Role::Admin) {
        Ok(f) => f,
        Err(r) => return r.into_response(),
    };
    let Some(decision) = HeldDecision::parse(form.get("action")) else {
        return Refusal::Bad(f, format!("unknown action {:?}", form.get("action"))).into_response();
    };
    let reason = form.get("reason").trim().to_string();
    if reason.is_empty() {
        let m = f.t.s("held-need-reason").to_string();
        return Refusal::Bad(f, m).into_response();
    }
    let c2 = c.clone();
    let staff = f.staff().to_string();
    let (s2, i2) = (station.clone(), id.clone());
    match blocking(move || {
        c2.store
            .decide_held(&s2, &i2, decision, &reason, &staff, crate::now_ms())
    })
    .await
    {
        Ok(_) => {
            let notice =
                f.t.s(match decision {
                    HeldDecision::Release => "held-released",
                    HeldDecision::Reject => "held-rejected",
                })
                .to_string();
            record_page(&c, f, station, id, Some(notice), None).await
        }
        Err(e) => Refusal::from((f, e)).into_response(),
    }
}

// ---------------------------------------------------------------------------------------------
// Access log

#[derive(Template)]
#[template(path = "access_log.html")]
struct AccessLogPage {
    f: Frame,
    ok: bool,
    problems: Vec<String>,
    rows: Vec<AccessLine>,
}

struct AccessLine {
    seq: u64,
    when: String,
    who: String,
    action: String,
    station: String,
    record: String,
    reason: String,
}

async fn access_log(State(c): State<Arc<Console>>, headers: HeaderMap) -> Response {
    let f = match c.frame(&headers, "/console/access-log") {
        Ok(f) if f.is_admin() => f,
        Ok(f) => return Refusal::Forbidden(f).into_response(),
        Err(r) => return r.into_response(),
    };
    let c2 = c.clone();
    let got = blocking(move || -> Result<_, CentreError> {
        let report = c2.store.verify_access_log(&c2.keys().verifying_keys())?;
        Ok((report, c2.store.access_log()?))
    })
    .await;
    let (report, entries) = match got {
        Ok(g) => g,
        Err(e) => return Refusal::from((f, e)).into_response(),
    };
    let rows = entries
        .into_iter()
        .rev()
        .map(|e| AccessLine {
            seq: e.entry.seq,
            when: ms_text(e.entry.at_ms),
            who: e.entry.who,
            action: e.entry.action,
            station: e.entry.station,
            record: e.entry.record,
            reason: e.entry.reason,
        })
        .collect();
    html(&AccessLogPage {
        f,
        ok: report.ok,
        problems: report
            .problems
            .into_iter()
            .map(|p| format!("{}: {}", p.id, p.reason))
            .collect(),
        rows,
    })
}

async fn access_log_json(State(c): State<Arc<Console>>, headers: HeaderMap) -> Response {
    let f = match c.frame(&headers, "/console/access-log") {
        Ok(f) if f.is_admin() => f,
        Ok(f) => return Refusal::Forbidden(f).into_response(),
        Err(r) => return r.into_response(),
    };
    let c2 = c.clone();
    match blocking(move || c2.store.access_log()).await {
        Ok(entries) => (
            [
                (header::CONTENT_TYPE, "application/json".to_string()),
                (
                    header::CONTENT_DISPOSITION,
                    "attachment; filename=\"access-log.json\"".to_string(),
                ),
            ],
            serde_json::to_string_pretty(&entries).unwrap_or_default(),
        )
            .into_response(),
        Err(e) => Refusal::from((f, e)).into_response(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn times_read_as_utc_date_and_minute() {
        assert_eq!(ms_text(0), "1970-01-01 00:00");
        assert_eq!(ms_text(1_796_196_720_000), "2026-12-02 07:32");
    }

    #[test]
    fn an_opening_needs_a_known_reason_and_words_for_other() {
        let f = Frame::new(Lang::Fr, None, "/console/records");
        let form = |preset: &str, text: &str| {
            Form(vec![
                ("preset".into(), preset.into()),
                ("reason".into(), text.into()),
            ])
        };
        assert_eq!(
            open_reason(&f, &form("reason-citizen", "")).unwrap(),
            "Citizen's request (right of access)"
        );
        assert!(open_reason(&f, &form("reason-other", "  ")).is_err());
        assert!(open_reason(&f, &form("made-up", "x")).is_err());
        assert_eq!(
            open_reason(&f, &form("reason-other", "court order 12/2026")).unwrap(),
            "Other: court order 12/2026"
        );
    }
}
