//! The centre's key rotations at the station ([`tasjil_sync::rotation`]): taken from a sync, a USB
//! receipt or a file (`tasjil keys import`), each checked against the key set the station holds,
//! in order, and audited. A station never takes a set it cannot chain to its own.

use std::path::Path;

use anyhow::Context;
use tasjil_sync::rotation::{apply, KeyRotation};

use crate::station::Station;

impl Station {
    /// Take the rotations in `texts` (canonical JSON each) that follow the key set held; returns
    /// how many were taken. A rotation that does not chain is refused (audited) and nothing
    /// changes.
    pub fn take_key_rotations(&mut self, texts: &[String], source: &str) -> anyhow::Result<usize> {
        let parsed: Result<Vec<KeyRotation>, _> = texts
            .iter()
            .map(|t| KeyRotation::from_bytes(t.as_bytes()))
            .collect();
        let held = self.centre().clone();
        let station = self.station_id().to_string();
        match parsed.and_then(|rs| apply(&held, &rs)) {
            Ok((_, 0)) => Ok(0),
            Ok((next, taken)) => {
                self.set_centre(next.clone())?;
                self.audit(
                    "centre-keys",
                    &station,
                    serde_json::json!({
                        "from_version": held.version, "version": next.version,
                        "ed25519": next.ed25519, "age_recipients": next.age_recipients,
                        "source": source,
                    }),
                )?;
                tracing::info!(version = next.version, %source, "centre key rotation taken");
                Ok(taken)
            }
            Err(e) => {
                self.audit(
                    "centre-keys-refused",
                    &station,
                    serde_json::json!({ "reason": e.to_string(), "source": source }),
                )?;
                Err(anyhow::anyhow!("centre key rotation refused: {e}"))
            }
        }
    }
}

/// `tasjil keys import FILE`: a file holding one rotation, or a JSON array of them.
pub fn import_file(station: &mut Station, path: &Path) -> anyhow::Result<(usize, u64)> {
    let text =
        std::fs::read_to_string(path).with_context(|| format!("cannot read {}", path.display()))?;
    let texts: Vec<String> = match serde_json::from_str::<Vec<serde_json::Value>>(&text) {
        Ok(list) => list.iter().map(|v| v.to_string()).collect(),
        Err(_) => vec![text.trim().to_string()],
    };
    let taken = station.take_key_rotations(&texts, &format!("file {}", path.display()))?;
    Ok((taken, station.centre().version))
}
