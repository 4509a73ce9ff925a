//! Central staff credentials: argon2id password hashes and the TOTP second factor (RFC 6238,
//! HMAC-SHA1, 30 s steps, 6 digits — what every authenticator app reads from an `otpauth://`
//! URI). Pure functions; the accounts themselves live in the store (`store::staff`).
//!
//! Not done here: the web sessions, CSRF tokens and the console that will use [`crate::store`]'s
//! `staff_login` (the next step of the console work).

use argon2::password_hash::{
    rand_core::OsRng, PasswordHash, PasswordHasher, PasswordVerifier, SaltString,
};
use argon2::Argon2;
use hmac::{Hmac, Mac};

/// Seconds per TOTP step.
pub const TOTP_STEP_S: i64 = 30;
/// Shortest password accepted.
pub const MIN_PASSWORD: usize = 12;

/// What a staff member may do; each role includes the ones before it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Role {
    /// Counts and lists, never personal data.
    Viewer,
    /// Opens records (every opening logged).
    Verifier,
    /// Sets issuance statuses.
    Issuer,
    /// Stations and staff.
    Admin,
}

impl Role {
    pub fn parse(s: &str) -> Option<Role> {
        match s {
            "viewer" => Some(Role::Viewer),
            "verifier" => Some(Role::Verifier),
            "issuer" => Some(Role::Issuer),
            "admin" => Some(Role::Admin),
            _ => None,
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Role::Viewer => "viewer",
            Role::Verifier => "verifier",
            Role::Issuer => "issuer",
            Role::Admin => "admin",
        }
    }
}

/// An argon2id PHC string for `password`.
pub fn hash_password(password: &str) -> Result<String, String> {
    Argon2::default()
        .hash_password(password.as_bytes(), &SaltString::generate(&mut OsRng))
        .map(|h| h.to_string())
        .map_err(|e| e.to_string())
}

/// Whether `password` matches the PHC string `hash`.
pub fn check_password(hash: &str, password: &str) -> bool {
    PasswordHash::new(hash).is_ok_and(|h| {
        Argon2::default()
            .verify_password(password.as_bytes(), &h)
            .is_ok()
    })
}

/// The 6-digit code of `secret` at time step `step` (RFC 4226's dynamic truncation).
pub fn totp_code(secret: &[u8], step: i64) -> u32 {
    let Ok(mut mac) = Hmac::<sha1::Sha1>::new_from_slice(secret) else {
        return u32::MAX; // HMAC takes keys of any length: unreachable
    };
    mac.update(&(step as u64).to_be_bytes());
    let digest = mac.finalize().into_bytes();
    let offset = usize::from(digest[19] & 0x0f);
    let bin = u32::from_be_bytes([
        digest[offset] & 0x7f,
        digest[offset + 1],
        digest[offset + 2],
        digest[offset + 3],
    ]);
    bin % 1_000_000
}

/// The time step of `now_ms`.
pub fn totp_step(now_ms: i64) -> i64 {
    now_ms.div_euclid(1000 * TOTP_STEP_S)
}

/// The step at which `code` is good for `secret`, within one step of `now_ms` either way (clock
/// drift of the staff member's phone), and later than `last_step` (a code is good once).
pub fn totp_match(secret: &[u8], code: &str, now_ms: i64, last_step: i64) -> Option<i64> {
    let code: u32 = code
        .trim()
        .parse()
        .ok()
        .filter(|_| code.trim().len() == 6)?;
    let now = totp_step(now_ms);
    (now - 1..=now + 1)
        .filter(|s| *s > last_step)
        .find(|s| totp_code(secret, *s) == code)
}

/// RFC 4648 base32 without padding, as `otpauth://` URIs carry secrets.
pub fn base32(bytes: &[u8]) -> String {
    const ALPHABET: &[u8; 32] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZ234567";
    let mut out = String::new();
    let (mut buffer, mut bits) = (0u32, 0u32);
    for &b in bytes {
        buffer = (buffer << 8) | u32::from(b);
        bits += 8;
        while bits >= 5 {
            bits -= 5;
            out.push(char::from(ALPHABET[((buffer >> bits) & 31) as usize]));
        }
    }
    if bits > 0 {
        out.push(char::from(ALPHABET[((buffer << (5 - bits)) & 31) as usize]));
    }
    out
}

/// The provisioning URI an authenticator app scans.
pub fn otpauth_uri(staff_id: &str, secret: &[u8]) -> String {
    let label: String = staff_id
        .bytes()
        .map(|b| {
            if b.is_ascii_alphanumeric() || b"-_.".contains(&b) {
                char::from(b).to_string()
            } else {
                format!("%{b:02X}")
            }
        })
        .collect();
    format!(
        "otpauth://totp/Tasjil:{label}?secret={}&issuer=Tasjil&algorithm=SHA1&digits=6&period={TOTP_STEP_S}",
        base32(secret)
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    /// RFC 6238 appendix B, SHA-1 rows (8-digit codes there; ours are their last 6 digits).
    #[test]
    fn totp_matches_rfc_6238_test_vectors() {
        let secret = b"12345678901234567890";
        for (t, code) in [
            (59i64, 94287082u32),
            (1111111109, 7081804),
            (1111111111, 14050471),
            (1234567890, 89005924),
            (2000000000, 69279037),
            (20000000000, 65353130),
        ] {
            assert_eq!(
                totp_code(secret, t / TOTP_STEP_S),
                code % 1_000_000,
                "t={t}"
            );
        }
    }

    #[test]
    fn a_code_is_good_once_and_only_near_its_time() {
        let secret = b"another secret of 20";
        let now = 1_750_000_000_000;
        let step = totp_step(now);
        let code = format!("{:06}", totp_code(secret, step));
        assert_eq!(totp_match(secret, &code, now, 0), Some(step));
        assert_eq!(totp_match(secret, &code, now, step), None, "replayed");
        assert_eq!(
            totp_match(secret, &code, now + 5 * 60_000, 0),
            None,
            "too late"
        );
        assert_eq!(totp_match(secret, "12345", now, 0), None);
        assert_eq!(totp_match(secret, "abcdef", now, 0), None);
    }

    #[test]
    fn passwords_hash_with_argon2id_and_check() {
        let h = hash_password("correct horse battery").unwrap();
        assert!(h.starts_with("$argon2id$"), "{h}");
        assert!(check_password(&h, "correct horse battery"));
        assert!(!check_password(&h, "correct horse batterY"));
        assert!(!check_password("not a hash", "x"));
    }

    #[test]
    fn base32_follows_rfc_4648() {
        assert_eq!(base32(b""), "");
        assert_eq!(base32(b"f"), "MY");
        assert_eq!(base32(b"foobar"), "MZXW6YTBOI");
        let uri = otpauth_uri("ana lopez", b"12345678901234567890");
        assert_eq!(
            uri,
            "otpauth://totp/Tasjil:ana%20lopez?secret=GEZDGNBVGY3TQOJQGEZDGNBVGY3TQOJQ&issuer=Tasjil&algorithm=SHA1&digits=6&period=30"
        );
    }
}
