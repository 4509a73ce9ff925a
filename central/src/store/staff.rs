//! Central staff accounts: add, list, disable, and the login check (password, then the TOTP code,
//! with lockout after repeated failures). Credentials are [`crate::staff`]'s; this is their table.

use rusqlite::{params, OptionalExtension, TransactionBehavior};
use serde::{Deserialize, Serialize};

use super::{lock, CentreError, CentreStore};
use crate::staff::{check_password, hash_password, totp_match, Role, MIN_PASSWORD};

/// Consecutive failed logins (wrong password or wrong code) that lock an account.
pub const MAX_FAILURES: i64 = 5;
/// How long a locked account stays locked.
pub const LOCKOUT_MS: i64 = 15 * 60_000;

/// A staff account as listed (never its secrets).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct StaffInfo {
    pub id: String,
    pub role: String,
    pub created_ms: i64,
    pub disabled: bool,
    pub locked_until_ms: Option<i64>,
}

/// Why a login was refused. Wrong password and wrong code read the same on purpose.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum LoginError {
    #[error("wrong staff id, password or code")]
    BadCredentials,
    #[error("this account is locked after {MAX_FAILURES} failed logins; try again after {until_ms} (Unix ms) or ask an admin")]
    Locked { until_ms: i64 },
    #[error("this account was disabled by an admin")]
    Disabled,
}

fn check_staff_id(id: &str) -> Result<(), CentreError> {
    let ok = (1..=64).contains(&id.len())
        && id
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"-_.@".contains(&b));
    if ok {
        Ok(())
    } else {
        Err(CentreError::BadStaff(format!(
            "{:?} is not a valid staff id (1 to 64 letters, digits, '-', '_', '.', '@')",
            id.chars().take(80).collect::<String>()
        )))
    }
}

impl CentreStore {
    /// Add a staff account. Returns the TOTP secret, to be shown once (as an `otpauth://` URI);
    /// at rest it is sealed to the centre's own age key.
    pub fn add_staff(
        &self,
        id: &str,
        role: Role,
        password: &str,
        centre: &age::x25519::Recipient,
        now_ms: i64,
    ) -> Result<Vec<u8>, CentreError> {
        check_staff_id(id)?;
        if password.chars().count() < MIN_PASSWORD {
            return Err(CentreError::BadStaff(format!(
                "the password must have at least {MIN_PASSWORD} characters"
            )));
        }
        let hash = hash_password(password).map_err(CentreError::BadStaff)?;
        let mut secret = vec![0u8; 20];
        rand_core::RngCore::fill_bytes(&mut rand_core::OsRng, &mut secret);
        let sealed = age::encrypt(centre, &secret)
            .map_err(|e| CentreError::BadStaff(format!("cannot seal the second factor: {e}")))?;
        let conn = lock(&self.conn);
        let added = conn
            .execute(
                "INSERT INTO staff (id, role, password_hash, totp_secret, created_ms)
                 VALUES (?1, ?2, ?3, ?4, ?5) ON CONFLICT (id) DO NOTHING",
                params![id, role.as_str(), hash, sealed, now_ms],
            )
            .map_err(|e| self.sql(e))?;
        if added == 0 {
            return Err(CentreError::BadStaff(format!(
                "staff account {id} already exists"
            )));
        }
        tracing::info!(staff = id, role = role.as_str(), "staff account added");
        Ok(secret)
    }

    /// Every staff account.
    pub fn staff(&self, now_ms: i64) -> Result<Vec<StaffInfo>, CentreError> {
        let conn = lock(&self.conn);
        let mut stmt = conn
            .prepare(
                "SELECT id, role, created_ms, disabled_ms IS NOT NULL, locked_until_ms
                 FROM staff ORDER BY id",
            )
            .map_err(|e| self.sql(e))?;
        let rows = stmt
            .query_map([], |r| {
                let until: i64 = r.get(4)?;
                Ok(StaffInfo {
                    id: r.get(0)?,
                    role: r.get(1)?,
                    created_ms: r.get(2)?,
                    disabled: r.get(3)?,
                    locked_until_ms: (until > now_ms).then_some(until),
                })
            })
            .map_err(|e| self.sql(e))?;
        rows.collect::<Result<Vec<_>, _>>().map_err(|e| self.sql(e))
    }

    /// Disable a staff account (kept, for the access log's sake, but it can no longer log in).
    pub fn disable_staff(&self, id: &str, now_ms: i64) -> Result<(), CentreError> {
        let conn = lock(&self.conn);
        let n = conn
            .execute(
                "UPDATE staff SET disabled_ms = coalesce(disabled_ms, ?2) WHERE id = ?1",
                params![id, now_ms],
            )
            .map_err(|e| self.sql(e))?;
        if n == 0 {
            return Err(CentreError::BadStaff(format!("no staff account {id}")));
        }
        tracing::warn!(staff = id, "staff account disabled");
        Ok(())
    }

    /// Check a login: password, then the TOTP code (good once). `Ok(Err(..))` is a refusal, and
    /// counts toward the lockout; `Err` means the centre itself failed.
    pub fn staff_login(
        &self,
        id: &str,
        password: &str,
        code: &str,
        centre: &age::x25519::Identity,
        now_ms: i64,
    ) -> Result<Result<Role, LoginError>, CentreError> {
        let mut conn = lock(&self.conn);
        let tx = conn
            .transaction_with_behavior(TransactionBehavior::Immediate)
            .map_err(|e| self.sql(e))?;
        type Row = (String, String, Vec<u8>, i64, Option<i64>, i64, i64);
        let row: Option<Row> = tx
            .query_row(
                "SELECT role, password_hash, totp_secret, totp_last_step, disabled_ms, failures,
                        locked_until_ms FROM staff WHERE id = ?1",
                [id],
                |r| {
                    Ok((
                        r.get(0)?,
                        r.get(1)?,
                        r.get(2)?,
                        r.get(3)?,
                        r.get(4)?,
                        r.get(5)?,
                        r.get(6)?,
                    ))
                },
            )
            .optional()
            .map_err(|e| self.sql(e))?;
        let Some((role, hash, sealed, last_step, disabled, failures, locked_until)) = row else {
            // Same work as a real check, so an unknown id does not answer faster.
            static DUMMY: std::sync::OnceLock<String> = std::sync::OnceLock::new();
            let dummy = DUMMY.get_or_init(|| hash_password("no such account").unwrap_or_default());
            let _ = check_password(dummy, password);
            return Ok(Err(LoginError::BadCredentials));
        };
        if disabled.is_some() {
            return Ok(Err(LoginError::Disabled));
        }
        if locked_until > now_ms {
            return Ok(Err(LoginError::Locked {
                until_ms: locked_until,
            }));
        }
        let secret = age::decrypt(centre, &sealed).map_err(|e| CentreError::Damaged {
            path: self.db_path.clone(),
            detail: format!(
                "the second factor of staff {id} does not open with the centre key: {e}"
            ),
        })?;
        let step = if check_password(&hash, password) {
            totp_match(&secret, code, now_ms, last_step)
        } else {
            None
        };
        let answer = match step {
            Some(step) => {
                tx.execute(
                    "UPDATE staff SET failures = 0, totp_last_step = ?2 WHERE id = ?1",
                    params![id, step],
                )
                .map_err(|e| self.sql(e))?;
                Ok(Role::parse(&role).unwrap_or(Role::Viewer))
            }
            None if failures + 1 >= MAX_FAILURES => {
                let until_ms = now_ms + LOCKOUT_MS;
                tx.execute(
                    "UPDATE staff SET failures = 0, locked_until_ms = ?2 WHERE id = ?1",
                    params![id, until_ms],
                )
                .map_err(|e| self.sql(e))?;
                tracing::warn!(
                    staff = id,
                    "staff account locked after repeated failed logins"
                );
                Err(LoginError::Locked { until_ms })
            }
            None => {
                tx.execute(
                    "UPDATE staff SET failures = failures + 1 WHERE id = ?1",
                    [id],
                )
                .map_err(|e| self.sql(e))?;
                Err(LoginError::BadCredentials)
            }
        };
        tx.commit().map_err(|e| self.sql(e))?;
        Ok(answer)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::staff::{totp_code, totp_step};

    const NOW: i64 = 1_750_000_000_000;

    fn code(secret: &[u8], now: i64) -> String {
        format!("{:06}", totp_code(secret, totp_step(now)))
    }

    #[test]
    fn staff_log_in_with_password_and_a_code_good_once() {
        let dir = tempfile::tempdir().unwrap();
        let store = CentreStore::open(dir.path()).unwrap();
        let key = age::x25519::Identity::generate();
        let secret = store
            .add_staff(
                "amina",
                Role::Verifier,
                "a long enough password",
                &key.to_public(),
                NOW,
            )
            .unwrap();
        let ok = store
            .staff_login(
                "amina",
                "a long enough password",
                &code(&secret, NOW),
                &key,
                NOW,
            )
            .unwrap();
        assert_eq!(ok, Ok(Role::Verifier));
        // The same code again (a replay) is refused, the next step's is good.
        let again = store
            .staff_login(
                "amina",
                "a long enough password",
                &code(&secret, NOW),
                &key,
                NOW + 1000,
            )
            .unwrap();
        assert_eq!(again, Err(LoginError::BadCredentials));
        let next = NOW + 30_000;
        let ok = store
            .staff_login(
                "amina",
                "a long enough password",
                &code(&secret, next),
                &key,
                next,
            )
            .unwrap();
        assert_eq!(ok, Ok(Role::Verifier));
        // Refusals: unknown id, short password at creation, a second account of the same id.
        assert_eq!(
            store
                .staff_login("nobody", "x", "000000", &key, NOW)
                .unwrap(),
            Err(LoginError::BadCredentials)
        );
        assert!(store
            .add_staff("b", Role::Viewer, "short", &key.to_public(), NOW)
            .is_err());
        assert!(store
            .add_staff(
                "amina",
                Role::Admin,
                "another long password",
                &key.to_public(),
                NOW
            )
            .is_err());
        // The second factor is not in the database in plaintext.
        drop(store);
        let db = std::fs::read(dir.path().join("centre.db")).unwrap();
        assert!(!db.windows(secret.len()).any(|w| w == secret.as_slice()));
    }

    #[test]
    fn five_wrong_codes_lock_the_account_and_disabling_ends_it() {
        let dir = tempfile::tempdir().unwrap();
        let store = CentreStore::open(dir.path()).unwrap();
        let key = age::x25519::Identity::generate();
        let pw = "a long enough password";
        let secret = store
            .add_staff("omar", Role::Issuer, pw, &key.to_public(), NOW)
            .unwrap();
        let good = code(&secret, NOW);
        let wrong = if good == "000000" { "111111" } else { "000000" };
        for i in 1..MAX_FAILURES {
            let got = store.staff_login("omar", pw, wrong, &key, NOW + i).unwrap();
            assert_eq!(got, Err(LoginError::BadCredentials), "attempt {i}");
        }
        let got = store
            .staff_login("omar", pw, wrong, &key, NOW + 10)
            .unwrap();
        assert!(matches!(got, Err(LoginError::Locked { .. })), "{got:?}");
        // Locked: even the right code is refused until the lockout ends.
        let got = store
            .staff_login("omar", pw, &good, &key, NOW + 20)
            .unwrap();
        assert!(matches!(got, Err(LoginError::Locked { .. })), "{got:?}");
        assert!(store.staff(NOW + 20).unwrap()[0].locked_until_ms.is_some());
        let later = NOW + LOCKOUT_MS + 60_000;
        let got = store
            .staff_login("omar", pw, &code(&secret, later), &key, later)
            .unwrap();
        assert_eq!(got, Ok(Role::Issuer));

        store.disable_staff("omar", later).unwrap();
        let after = later + 60_000;
        let got = store
            .staff_login("omar", pw, &code(&secret, after), &key, after)
            .unwrap();
        assert_eq!(got, Err(LoginError::Disabled));
        assert!(store.staff(after).unwrap()[0].disabled);
    }
}
