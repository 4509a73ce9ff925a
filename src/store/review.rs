//! The supervisor's review of one record at the station: hold it (it waits, not approved) or
//! reject it (withdrawn: its envelope still travels so the chain stays whole, its sealed payload
//! never leaves the station). Both are written to the record's day ledger, where the centre reads
//! them, and to the audit chain, in one transaction.

use std::collections::BTreeMap;

use tasjil_sync::ledger::{day_of_ms, doc_name, Ledger, Status, StatusEntry};
use tasjil_sync::StationKey;

use super::{append_audit, lift, own_record, LedgerWrites, Store, StoreError};

/// What a supervisor decided about a record other than approving it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Decision {
    Hold,
    Reject,
}

impl Decision {
    pub fn as_str(self) -> &'static str {
        match self {
            Decision::Hold => "hold",
            Decision::Reject => "reject",
        }
    }

    fn status(self) -> Status {
        match self {
            Decision::Hold => Status::OnHold,
            Decision::Reject => Status::Withdrawn,
        }
    }
}

/// Longest reason kept (the ledger refuses longer ones).
pub const MAX_REASON: usize = 200;

impl Store {
    /// Record `decision` on record `id` by `supervisor` with `reason`. Refused: an unknown record,
    /// one that already left the station (exported, sent, acknowledged), one already rejected, a
    /// supervisor's own record (unless `self_approval`), an empty reason for a rejection.
    #[allow(clippy::too_many_arguments)]
    pub fn review(
        &mut self,
        key: &StationKey,
        id: &str,
        decision: Decision,
        reason: &str,
        supervisor: &str,
        self_approval: bool,
        badge_signature: &dyn Fn(&[String]) -> Result<String, String>,
        now_ms: i64,
    ) -> Result<StatusEntry, StoreError> {
        let reason = reason.trim();
        let reason = match (decision, reason.is_empty()) {
            (Decision::Reject, true) => {
                return Err(StoreError::Refused(format!(
                    "record {id}: a rejection needs a reason"
                )))
            }
            (Decision::Hold, true) => "on hold".to_string(),
            _ => reason.chars().take(MAX_REASON).collect(),
        };
        let row = self
            .envelopes()?
            .into_iter()
            .find(|r| r.id == id)
            .ok_or_else(|| StoreError::Refused(format!("no record {id} on this station")))?;
        if row.status != "committed" && row.status != "approved" {
            return Err(StoreError::Refused(format!(
                "record {id} is {}: it has left the station, it can no longer be held or rejected here",
                row.status
            )));
        }
        if !self_approval && row.officer == supervisor {
            return Err(StoreError::Refused(own_record(id, supervisor).replace(
                "does not approve their own",
                "does not review their own",
            )));
        }
        let decisions = self.station_decisions()?;
        if decisions
            .get(id)
            .is_some_and(|d| d.status == Status::Withdrawn)
        {
            return Err(StoreError::Refused(format!(
                "record {id} was already rejected"
            )));
        }
        if decision == Decision::Hold && row.approved {
            return Err(StoreError::Refused(format!(
                "record {id} is already approved: it cannot be put on hold"
            )));
        }
        let sig = badge_signature(std::slice::from_ref(&row.hash)).map_err(StoreError::Encode)?;
        let entry = StatusEntry {
            status: decision.status(),
            reason: Some(reason.clone()),
            by: supervisor.to_string(),
            time_ms: now_ms,
            sig: None,
        };
        let path = self.path.clone();
        let station = self.config("station_id")?.unwrap_or_default();
        let tx = self
            .conn
            .transaction()
            .map_err(|e| StoreError::from_sqlite(&path, e))?;
        let mut touched = LedgerWrites::new(&mut self.ledgers, &self.actor);
        touched.change(&tx, &path, &station, &day_of_ms(row.created_ms), |l| {
            l.add_status(id, &entry)
        })?;
        touched.save(&tx, &path)?;
        append_audit(
            &tx,
            key,
            decision.as_str(),
            supervisor,
            serde_json::json!({"id": id, "envelope": row.hash, "reason": reason, "badge_signature": sig}),
            now_ms,
        )
        .map_err(|e| lift(&path, e))?;
        tx.commit().map_err(|e| StoreError::from_sqlite(&path, e))?;
        touched.committed();
        Ok(entry)
    }

    /// The supervisor's standing decision (hold or rejection) on each record that has one.
    pub fn station_decisions(&self) -> Result<BTreeMap<String, StatusEntry>, StoreError> {
        let station = self.config("station_id")?.unwrap_or_default();
        let mut ledgers: BTreeMap<String, Option<Ledger>> = BTreeMap::new();
        let mut out = BTreeMap::new();
        for row in self.envelopes()? {
            let day = day_of_ms(row.created_ms);
            let name = doc_name(&station, &day);
            if !ledgers.contains_key(&name) {
                let ledger = match self.ledger_doc(&name)? {
                    Some(doc) => Some(
                        Ledger::load(&station, &day, &self.actor, &doc)
                            .map_err(|e| StoreError::Encode(format!("ledger {name}: {e}")))?,
                    ),
                    None => None,
                };
                ledgers.insert(name.clone(), ledger);
            }
            if let Some(Some(ledger)) = ledgers.get(&name) {
                if let Some(d) = ledger.station_decision(&row.id) {
                    out.insert(row.id, d);
                }
            }
        }
        Ok(out)
    }
}
