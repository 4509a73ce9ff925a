//! The roster page (`/console/roster`): the field staff badges the centre's latest signed roster
//! lists, for every signed-in role; an admin adds a badge or revokes one. Changes go through the
//! same store functions as `tasjil-central roster add / revoke` ([`CentreStore::roster_add`],
//! [`CentreStore::roster_revoke`]), so each one issues the next signed version in its own
//! transaction. This module only reads forms and shows pages: the rules (valid key, one live
//! badge per officer, a revoked badge never comes back) are the store's.

use std::sync::Arc;

use askama::Template;
use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use tasjil_sync::roster::{day, parse_day, Role as FieldRole, RosterEntry, ALL_STATIONS};

use super::{blocking, html, ms_text, Console, Form, Frame, Refusal};
use crate::staff::Role;
use crate::store::CentreError;

#[derive(Template)]
#[template(path = "roster.html")]
struct RosterPage {
    f: Frame,
    notice: Option<String>,
    error: Option<String>,
    version: Option<u64>,
    issued: String,
    entries: Vec<EntryLine>,
    roles: Vec<(String, String)>,
    form: AddForm,
}

struct EntryLine {
    id: String,
    name: String,
    role: String,
    badge: String,
    badge_short: String,
    stations: String,
    from: String,
    until: String,
    revoked: Option<String>,
}

/// Longest name, station list or revocation reason the page takes: each goes into the signed
/// roster every van receives.
const MAX_TEXT: usize = 300;

/// What the add form held, given back when it is refused so nothing has to be typed again.
#[derive(Debug, Clone, Default)]
struct AddForm {
    id: String,
    name: String,
    role: String,
    badge: String,
    stations: String,
    from: String,
    until: String,
}

impl AddForm {
    fn read(form: &Form) -> AddForm {
        let get = |k: &str| form.get(k).trim().to_string();
        AddForm {
            id: get("id"),
            name: get("name"),
            role: get("role"),
            badge: get("badge").to_ascii_lowercase(),
            stations: get("stations"),
            from: get("from"),
            until: get("until"),
        }
    }

    /// The entry the form describes, or the i18n key of what is wrong with it. Dates follow the
    /// command line: `from` empty is now, `until` names the last valid day (the badge stops at
    /// the end of it).
    fn entry(&self, now_ms: i64) -> Result<RosterEntry, &'static str> {
        if self.id.is_empty() || self.name.is_empty() {
            return Err("roster-need-name");
        }
        if self.name.chars().count() > MAX_TEXT || self.stations.chars().count() > MAX_TEXT {
            return Err("roster-too-long");
        }
        let role: FieldRole = self.role.parse().map_err(|_| "roster-bad-role")?;
        if self.badge.len() != 64 || !self.badge.bytes().all(|b| b.is_ascii_hexdigit()) {
            return Err("roster-bad-key");
        }
        let stations: Vec<String> = self
            .stations
            .split(',')
            .map(str::trim)
            .filter(|s| !s.is_empty())
            .map(str::to_string)
            .collect();
        if stations.is_empty() {
            return Err("roster-need-stations");
        }
        let valid_from_ms = if self.from.is_empty() {
            now_ms
        } else {
            parse_day(&self.from).map_err(|_| "roster-bad-date")?
        };
        let valid_until_ms = if self.until.is_empty() {
            None
        } else {
            Some(parse_day(&self.until).map_err(|_| "roster-bad-date")? + 86_400_000)
        };
        Ok(RosterEntry {
            id: self.id.clone(),
            name: self.name.clone(),
            role,
            badge: self.badge.clone(),
            stations,
            valid_from_ms,
            valid_until_ms,
            revoked: None,
        })
    }
}

fn role_words(f: &Frame, role: FieldRole) -> &'static str {
    f.t.s(match role {
        FieldRole::Officer => "role-officer",
        FieldRole::Supervisor => "role-supervisor",
    })
}

/// The page, with what happened (`notice`) or what was refused (`error`, answered with 400).
async fn roster_page(
    c: &Arc<Console>,
    f: Frame,
    notice: Option<String>,
    error: Option<String>,
    form: AddForm,
) -> Response {
    let c2 = c.clone();
    let latest = match blocking(move || c2.store.roster_latest()).await {
        Ok(l) => l,
        Err(e) => return Refusal::from((f, e)).into_response(),
    };
    let t = f.t;
    let entries = latest
        .as_ref()
        .map(|r| {
            r.roster
                .entries
                .iter()
                .map(|e| EntryLine {
                    id: e.id.clone(),
                    name: e.name.clone(),
                    role: role_words(&f, e.role).into(),
                    badge: e.badge.clone(),
                    badge_short: format!("{}…", &e.badge[..16.min(e.badge.len())]),
                    stations: if e.stations.iter().any(|s| s == ALL_STATIONS) {
                        format!("* ({})", t.s("all-stations"))
                    } else {
                        e.stations.join(", ")
                    },
                    from: day(e.valid_from_ms),
                    until: e
                        .valid_until_ms
                        .map_or(t.s("no-end").into(), |u| day(u - 1)),
                    revoked: e.revoked.as_ref().map(|r| {
                        format!(
                            "{} {} — {}",
                            t.s("roster-revoked-on"),
                            ms_text(r.at_ms),
                            r.reason
                        )
                    }),
                })
                .collect()
        })
        .unwrap_or_default();
    let status = if error.is_some() {
        StatusCode::BAD_REQUEST
    } else {
        StatusCode::OK
    };
    let form = AddForm {
        role: if form.role.is_empty() {
            "officer".into()
        } else {
            form.role
        },
        ..form
    };
    let page = RosterPage {
        version: latest.as_ref().map(|r| r.version()),
        issued: latest
            .as_ref()
            .map_or(String::new(), |r| ms_text(r.roster.issued_ms)),
        entries,
        roles: [FieldRole::Officer, FieldRole::Supervisor]
            .into_iter()
            .map(|r| (r.as_str().to_string(), role_words(&f, r).to_string()))
            .collect(),
        notice,
        error,
        form,
        f,
    };
    (status, html(&page)).into_response()
}

/// The words for a change the store refused: the page's lead-in, then the store's reason.
fn refused(f: &Frame, detail: &str) -> String {
    format!("{} {detail}", f.t.s("roster-refused"))
}

pub(super) async fn roster(State(c): State<Arc<Console>>, headers: HeaderMap) -> Response {
    match c.frame(&headers, "/console/roster") {
        Ok(f) => roster_page(&c, f, None, None, AddForm::default()).await,
        Err(r) => r.into_response(),
    }
}

pub(super) async fn roster_add(
    State(c): State<Arc<Console>>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let form = Form::parse(&body);
    let f = match c.posted(&headers, &form, "/console/roster", Role::Admin) {
        Ok(f) => f,
        Err(r) => return r.into_response(),
    };
    let asked = AddForm::read(&form);
    let entry = match asked.entry(crate::now_ms()) {
        Ok(e) => e,
        Err(key) => {
            let m = refused(&f, f.t.s(key));
            return roster_page(&c, f, None, Some(m), asked).await;
        }
    };
    let c2 = c.clone();
    let staff = f.staff().to_string();
    let e2 = entry.clone();
    match blocking(move || c2.store.roster_add(&e2, crate::now_ms())).await {
        Ok(r) => {
            tracing::warn!(
                %staff,
                officer = %entry.id,
                role = entry.role.as_str(),
                version = r.version(),
                "console: badge added to the roster"
            );
            let notice = format!(
                "{} ({} {}, {})",
                f.t.s("roster-added"),
                f.t.s("roster-version"),
                r.version(),
                entry.id
            );
            roster_page(&c, f, Some(notice), None, AddForm::default()).await
        }
        Err(CentreError::Roster(m)) => {
            let m = refused(&f, &m);
            roster_page(&c, f, None, Some(m), asked).await
        }
        Err(e) => Refusal::from((f, e)).into_response(),
    }
}

pub(super) async fn roster_revoke(
    State(c): State<Arc<Console>>,
    Path(id): Path<String>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let form = Form::parse(&body);
    let f = match c.posted(&headers, &form, "/console/roster", Role::Admin) {
        Ok(f) => f,
        Err(r) => return r.into_response(),
    };
    let reason = form.get("reason").trim().to_string();
    if reason.is_empty() || reason.chars().count() > MAX_TEXT {
        let key = if reason.is_empty() {
            "roster-need-reason"
        } else {
            "roster-too-long"
        };
        let m = refused(&f, f.t.s(key));
        return roster_page(&c, f, None, Some(m), AddForm::default()).await;
    }
    let c2 = c.clone();
    let staff = f.staff().to_string();
    // The reason travels in the signed roster to every van; who revoked it stays here.
    let (id2, r2) = (id.clone(), reason.clone());
    match blocking(move || c2.store.roster_revoke(&id2, &r2, crate::now_ms())).await {
        Ok(r) => {
            tracing::warn!(%staff, officer = %id, %reason, version = r.version(), "console: badge revoked");
            let notice = format!(
                "{} ({} {}, {id})",
                f.t.s("roster-revoked"),
                f.t.s("roster-version"),
                r.version()
            );
            roster_page(&c, f, Some(notice), None, AddForm::default()).await
        }
        Err(CentreError::Roster(m)) => {
            let m = refused(&f, &m);
            roster_page(&c, f, None, Some(m), AddForm::default()).await
        }
        Err(e) => Refusal::from((f, e)).into_response(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn form(badge: &str, stations: &str, from: &str, until: &str) -> AddForm {
        AddForm {
            id: "OFF-1".into(),
            name: "Amina".into(),
            role: "supervisor".into(),
            badge: badge.into(),
            stations: stations.into(),
            from: from.into(),
            until: until.into(),
        }
    }

    #[test]
    fn the_add_form_reads_like_the_command_line() {
        let key = "ab".repeat(32);
        let e = form(&key, " VAN-1 , ,VAN-2", "", "2026-12-31")
            .entry(1_000)
            .unwrap();
        assert_eq!(e.stations, ["VAN-1", "VAN-2"]);
        assert_eq!(e.role, FieldRole::Supervisor);
        assert_eq!(e.valid_from_ms, 1_000, "empty from: now");
        assert_eq!(
            e.valid_until_ms,
            Some(parse_day("2027-01-01").unwrap()),
            "until is the last valid day, included"
        );
        assert_eq!(
            form(&key, "*", "", "").entry(0).unwrap().valid_until_ms,
            None
        );
        assert_eq!(form("abc", "*", "", "").entry(0), Err("roster-bad-key"));
        assert_eq!(
            form(&"zz".repeat(32), "*", "", "").entry(0),
            Err("roster-bad-key")
        );
        assert_eq!(
            form(&key, " , ", "", "").entry(0),
            Err("roster-need-stations")
        );
        assert_eq!(
            form(&key, "*", "31/12/2026", "").entry(0),
            Err("roster-bad-date")
        );
        let mut nameless = form(&key, "*", "", "");
        nameless.name.clear();
        assert_eq!(nameless.entry(0), Err("roster-need-name"));
        nameless.name = "x".repeat(MAX_TEXT + 1);
        assert_eq!(nameless.entry(0), Err("roster-too-long"));
        nameless.name = "x".into();
        nameless.role = "chief".into();
        assert_eq!(nameless.entry(0), Err("roster-bad-role"));
    }
}
