//! The station's side of the centre's signed roster: taking a newer one in (from `init`, a
//! sync, a USB receipt or a file), and deciding from it — and from nothing else — whether a badge
//! may log in, approve or countersign an export. The rules themselves are
//! [`tasjil_sync::roster::Roster::allows`], shared with the centre.
//!
//! The roster is kept in the store's `config` table as the centre signed it and is checked
//! against the centre's key every time it is read, so an edit on disk makes it unusable rather
//! than trusted. A training station (`tasjil init --simulation`) that holds no roster still
//! registers badges on first use; no other station does.

use anyhow::{bail, Context};
use serde::Serialize;
use serde_json::json;
use tasjil_sync::roster::{Refusal, Role, Roster};

use crate::config::RosterPolicy;
use crate::enrolment::OfficerBadge;
use crate::station::{Station, View};

const CONFIG_KEY: &str = "roster";

/// Why a station without a roster refuses every badge.
pub const NO_ROSTER: &str = "this station holds no roster from the centre, so it trusts no badge: \
     import the roster the centre exported (`tasjil roster import FILE`, from \
     `tasjil-central roster export`) or sync with the centre";

/// What became of a roster offered to the station.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "outcome", rename_all = "snake_case")]
pub enum Imported {
    /// A newer roster: it is the one the station now obeys.
    Taken {
        version: u64,
        previous: Option<u64>,
        entries: usize,
    },
    /// The station already holds this very roster.
    AlreadyHeld { version: u64 },
}

/// How old the held roster is, against `[roster]` in the configuration.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct RosterAge {
    pub version: u64,
    pub issued_ms: i64,
    pub age_days: i64,
    pub warn_days: u32,
    pub block_days: u32,
    /// Past `warn_days`: officers are told.
    pub warn: bool,
    /// Past `block_days`: no new enrolment starts.
    pub block: bool,
}

impl RosterAge {
    /// The officer's warning, when there is one.
    pub fn warning(&self) -> Option<String> {
        self.warn.then(|| {
            format!(
                "the centre's roster (version {}) is {} days old: sync or import a newer one; \
                 after {} days no new enrolment can start",
                self.version, self.age_days, self.block_days
            )
        })
    }
}

/// How a badge was let in.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Authorised {
    /// The centre's roster lists it for this action here and now.
    Roster { version: u64 },
    /// A local emergency override (`tasjil officer add --emergency`), audited.
    Override { reason: String },
    /// A training station without a roster: registered on first use, as before rosters.
    Training,
}

impl View {
    /// The centre's public keys this station holds (as copied at `init`, or as a key rotation
    /// left them).
    pub fn centre_public(&self) -> anyhow::Result<tasjil_sync::CentrePublic> {
        let text = self
            .store
            .config("centre_public")?
            .context("the station database has no centre key")?;
        tasjil_sync::CentrePublic::parse(&text)
            .map_err(|e| anyhow::anyhow!("stored centre key: {e}"))
    }

    /// The roster this station obeys, its signature checked again; `None` before the first.
    pub fn roster(&self) -> anyhow::Result<Option<Roster>> {
        let Some(text) = self.store.config(CONFIG_KEY)? else {
            return Ok(None);
        };
        let keys = self.centre_public()?.verifying_keys();
        Roster::verify(text.as_bytes(), &keys)
            .map(Some)
            .map_err(|e| {
                anyhow::anyhow!(
                "the roster stored in this station fails its check ({e}): the store was altered; \
                 import the centre's roster again (`tasjil roster import FILE`)"
            )
            })
    }

    /// The held roster's age against `policy`, `None` when there is none.
    pub fn roster_age(
        &self,
        policy: &RosterPolicy,
        now_ms: i64,
    ) -> anyhow::Result<Option<RosterAge>> {
        Ok(self.roster()?.map(|r| {
            let age_days = r.age_days(now_ms);
            RosterAge {
                version: r.version(),
                issued_ms: r.roster.issued_ms,
                age_days,
                warn_days: policy.warn_days,
                block_days: policy.block_days,
                warn: age_days >= i64::from(policy.warn_days),
                block: age_days >= i64::from(policy.block_days),
            }
        }))
    }
}

impl Station {
    /// Take `bytes` as the station's roster if it is the centre's and newer than the one held.
    /// A refusal is audited and returned as an error; nothing changes.
    pub fn import_roster(&mut self, bytes: &[u8], source: &str) -> anyhow::Result<Imported> {
        let keys = self.centre().verifying_keys();
        let held = self.view.roster().ok().flatten();
        let checked =
            Roster::verify(bytes, &keys).and_then(|r| r.replaces(held.as_ref()).map(|t| (r, t)));
        let station = self.station_id().to_string();
        match checked {
            Err(e) => {
                self.audit(
                    "roster-refused",
                    &station,
                    json!({"source": source, "reason": e.to_string(),
                           "held": held.as_ref().map(Roster::version)}),
                )?;
                bail!("roster from {source} refused: {e}")
            }
            Ok((r, false)) => Ok(Imported::AlreadyHeld {
                version: r.version(),
            }),
            Ok((r, true)) => {
                let text = String::from_utf8(r.to_bytes()).context("roster encoding")?;
                self.store().set_config(CONFIG_KEY, &text)?;
                let previous = held.as_ref().map(Roster::version);
                self.audit(
                    "roster-import",
                    &station,
                    json!({"source": source, "version": r.version(), "previous": previous,
                           "issued_ms": r.roster.issued_ms, "entries": r.roster.entries.len()}),
                )?;
                Ok(Imported::Taken {
                    version: r.version(),
                    previous,
                    entries: r.roster.entries.len(),
                })
            }
        }
    }

    /// Whether `badge` may do `action` needing `needs` here and now. A refusal is audited
    /// ("badge-refused") and worded for the officer.
    pub fn authorise(
        &mut self,
        badge: &dyn OfficerBadge,
        needs: Role,
        action: &str,
    ) -> anyhow::Result<Authorised> {
        let now = crate::now_ms();
        let id = badge.officer_id();
        let key = badge.public_key_hex();
        let station = self.station_id().to_string();
        let roster = self.view.roster()?;
        let Some(roster) = roster else {
            if self.view.simulation()? {
                return Ok(Authorised::Training);
            }
            self.audit(
                "badge-refused",
                &id,
                json!({"badge": key, "action": action, "code": "no_roster", "reason": NO_ROSTER}),
            )?;
            bail!("{id} cannot {action}: {NO_ROSTER}");
        };
        let refusal = match roster.allows(&id, &key, &station, needs, now) {
            Ok(entry) => {
                let (name, role) = (entry.name.clone(), entry.role);
                self.store()
                    .upsert_officer(&id, &name, role.as_str(), &key, now)?;
                return Ok(Authorised::Roster {
                    version: roster.version(),
                });
            }
            Err(r) => r,
        };
        // A local emergency override stands in only for a badge the roster does not know yet:
        // never for a revoked one, nor beyond the role it was given.
        if matches!(refusal, Refusal::Unknown { .. }) {
            if let Some((role, reason)) = self.store().officer_override(&id, &key)? {
                let role: Role = role.parse().map_err(anyhow::Error::msg)?;
                if role.covers(needs) {
                    self.audit(
                        "badge-override",
                        &id,
                        json!({"badge": key, "action": action, "reason": reason,
                               "roster_version": roster.version()}),
                    )?;
                    return Ok(Authorised::Override { reason });
                }
            }
        }
        self.audit(
            "badge-refused",
            &id,
            json!({"badge": key, "action": action, "code": refusal.code(),
                   "reason": refusal.to_string(), "roster_version": roster.version()}),
        )?;
        let hint = match refusal {
            Refusal::Revoked { .. } => "hand the badge to your supervisor",
            Refusal::Role { .. } => "ask a supervisor on the roster",
            _ => "the centre must add this badge to its roster (tasjil-central roster add), then sync or import the roster",
        };
        bail!("{refusal}: {hint}")
    }

    /// Refuse a new enrolment when the held roster is past `[roster] block_days`; return the
    /// officer's warning when past `warn_days`.
    pub fn roster_gate(&self) -> anyhow::Result<Option<String>> {
        let Some(age) = self.view.roster_age(&self.roster_policy, crate::now_ms())? else {
            return Ok(None);
        };
        if age.block {
            bail!(
                "no new enrolment: the centre's roster (version {}) is {} days old, more than the \
                 {} days allowed ([roster] block_days); sync with the centre or import a newer \
                 roster (`tasjil roster import FILE`, or a USB receipt)",
                age.version,
                age.age_days,
                age.block_days
            );
        }
        Ok(age.warning())
    }

    /// The roster version to put in the next envelope.
    pub fn roster_version(&self) -> anyhow::Result<Option<u64>> {
        Ok(self.view.roster()?.map(|r| r.version()))
    }
}
