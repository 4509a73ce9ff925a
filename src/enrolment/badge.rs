//! The officer's badge as the workflow sees it: an identity and a key that co-signs envelopes.
//! The PC/SC OpenPGP-card backend implements the same trait in the drivers work; [`SimBadge`] is
//! the simulated badge used by `--simulate`, the demo and tests.

use tasjil_sync::StationKey;

/// A badge that can co-sign an envelope digest after its PIN was verified.
pub trait OfficerBadge {
    fn officer_id(&self) -> String;
    fn officer_name(&self) -> String;
    /// Hex Ed25519 public key of the badge's signing key.
    fn public_key_hex(&self) -> String;
    /// Sign `message` on the badge. Returns the 64-byte Ed25519 signature.
    fn sign(&mut self, message: &[u8]) -> anyhow::Result<[u8; 64]>;
}

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
    fn sign(&mut self, message: &[u8]) -> anyhow::Result<[u8; 64]> {
        Ok(self.key.sign(message).to_bytes())
    }
}
