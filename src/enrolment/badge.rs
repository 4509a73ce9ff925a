//! The simulated officer badge used by `--simulate`, the demo and tests. The badge trait and the
//! PC/SC OpenPGP-card backend live in `tasjil-drivers` (`badge`, `card`).

pub use tasjil_drivers::{BadgeError, OfficerBadge};
use tasjil_sync::StationKey;

/// The OpenPGP-card default user PIN, which the simulated badge accepts.
pub const SIM_PIN: &str = "123456";

/// A simulated badge whose key is derived from the officer id (fixed between runs, like the
/// virtual card whose RNG is seeded with a constant). Never use outside simulation.
pub struct SimBadge {
    id: String,
    key: StationKey,
}

impl std::fmt::Debug for SimBadge {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "SimBadge({})", self.id)
    }
}

impl SimBadge {
    /// Unlock the simulated badge of `officer_id` with `pin`.
    pub fn unlock(officer_id: &str, pin: &str) -> anyhow::Result<SimBadge> {
        if pin != SIM_PIN {
            anyhow::bail!("wrong PIN for badge {officer_id}");
        }
        let seed = tasjil_sync::canonical::sha256(
            format!("tasjil simulated badge {officer_id}").as_bytes(),
        );
        Ok(SimBadge {
            id: officer_id.to_string(),
            key: StationKey::from_seed(seed),
        })
    }
}

impl OfficerBadge for SimBadge {
    fn officer_id(&self) -> String {
        self.id.clone()
    }
    fn officer_name(&self) -> String {
        format!("Simulated officer {}", self.id)
    }
    fn public_key_hex(&self) -> String {
        self.key.public_hex()
    }
    fn sign(&mut self, message: &[u8]) -> Result<[u8; 64], BadgeError> {
        Ok(self.key.sign(message).to_bytes())
    }
}
