//! Console sessions and the tokens that protect forms.
//!
//! A session is a random 256-bit token in an `HttpOnly; Secure; SameSite=Strict` cookie scoped to
//! `/console/`; the server keeps only its SHA-256, with the staff id, role and the session's CSRF
//! token (a second random value every form carries in a hidden field). Sessions live in memory:
//! a restart logs everyone out. They end after 15 idle minutes or 8 hours, whichever is first.
//! The login form itself is protected by a double-submitted token (cookie + hidden field).

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use rand_core::RngCore;

use crate::staff::Role;

pub const SESSION_COOKIE: &str = "tasjil_session";
pub const LOGIN_COOKIE: &str = "tasjil_login";
pub const LANG_COOKIE: &str = "tasjil_lang";
pub const IDLE: Duration = Duration::from_secs(15 * 60);
pub const ABSOLUTE: Duration = Duration::from_secs(8 * 3600);
/// Most sessions held at once (the oldest go first beyond it).
const MAX_SESSIONS: usize = 1024;

/// Who is logged in on a session.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Me {
    pub staff: String,
    pub role: Role,
    pub csrf: String,
}

#[derive(Debug)]
struct Session {
    me: Me,
    created: Instant,
    last: Instant,
}

#[derive(Debug, Default)]
pub struct Sessions {
    by_hash: Mutex<HashMap<String, Session>>,
}

/// 32 random bytes, hex.
pub fn token() -> String {
    let mut b = [0u8; 32];
    rand_core::OsRng.fill_bytes(&mut b);
    hex::encode(b)
}

fn digest(token: &str) -> String {
    tasjil_sync::sha256_hex(token.as_bytes())
}

/// Constant-time comparison of two tokens.
pub fn same(a: &str, b: &str) -> bool {
    a.len() == b.len()
        && a.bytes()
            .zip(b.bytes())
            .fold(0u8, |acc, (x, y)| acc | (x ^ y))
            == 0
}

impl Sessions {
    /// Start a session; returns the cookie token.
    pub fn start(&self, staff: &str, role: Role) -> String {
        let t = token();
        let now = Instant::now();
        let mut map = self.by_hash.lock().unwrap_or_else(|p| p.into_inner());
        map.retain(|_, s| alive(s, now));
        if map.len() >= MAX_SESSIONS {
            if let Some(oldest) = map
                .iter()
                .min_by_key(|(_, s)| s.last)
                .map(|(k, _)| k.clone())
            {
                map.remove(&oldest);
            }
        }
        map.insert(
            digest(&t),
            Session {
                me: Me {
                    staff: staff.into(),
                    role,
                    csrf: token(),
                },
                created: now,
                last: now,
            },
        );
        t
    }

    /// The live session of `token`, refreshed.
    pub fn get(&self, token: &str) -> Option<Me> {
        let now = Instant::now();
        let mut map = self.by_hash.lock().unwrap_or_else(|p| p.into_inner());
        let key = digest(token);
        match map.get_mut(&key) {
            Some(s) if alive(s, now) => {
                s.last = now;
                Some(s.me.clone())
            }
            Some(_) => {
                map.remove(&key);
                None
            }
            None => None,
        }
    }

    pub fn end(&self, token: &str) {
        let mut map = self.by_hash.lock().unwrap_or_else(|p| p.into_inner());
        map.remove(&digest(token));
    }

    /// End every session of `staff` (after the account is disabled).
    pub fn end_all_of(&self, staff: &str) {
        let mut map = self.by_hash.lock().unwrap_or_else(|p| p.into_inner());
        map.retain(|_, s| s.me.staff != staff);
    }
}

fn alive(s: &Session, now: Instant) -> bool {
    now.duration_since(s.last) < IDLE && now.duration_since(s.created) < ABSOLUTE
}

/// A `Set-Cookie` value for the console: HttpOnly, Secure, SameSite=Strict, path `/console/`.
pub fn cookie(name: &str, value: &str, max_age_s: Option<u64>) -> String {
    let mut c = format!("{name}={value}; Path=/console/; HttpOnly; Secure; SameSite=Strict");
    if let Some(s) = max_age_s {
        c.push_str(&format!("; Max-Age={s}"));
    }
    c
}

/// The value of cookie `name` in a `Cookie` header.
pub fn read_cookie<'a>(header: &'a str, name: &str) -> Option<&'a str> {
    header.split(';').find_map(|part| {
        let (k, v) = part.trim().split_once('=')?;
        (k == name).then_some(v)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sessions_start_read_and_end() {
        let s = Sessions::default();
        let t = s.start("amina", Role::Verifier);
        let me = s.get(&t).unwrap();
        assert_eq!((me.staff.as_str(), me.role), ("amina", Role::Verifier));
        assert_eq!(me.csrf.len(), 64);
        assert!(s.get(&token()).is_none(), "an unknown token is no session");
        s.end(&t);
        assert!(s.get(&t).is_none());
        let t = s.start("amina", Role::Verifier);
        s.end_all_of("amina");
        assert!(s.get(&t).is_none());
    }

    #[test]
    fn cookies_are_locked_down() {
        let c = cookie(SESSION_COOKIE, "abc", None);
        for part in ["HttpOnly", "Secure", "SameSite=Strict", "Path=/console/"] {
            assert!(c.contains(part), "{c} lacks {part}");
        }
        assert_eq!(
            read_cookie("a=1; tasjil_session=xyz; b=2", SESSION_COOKIE),
            Some("xyz")
        );
        assert_eq!(read_cookie("tasjil_sessionx=1", SESSION_COOKIE), None);
        assert!(same("abcd", "abcd") && !same("abcd", "abce") && !same("ab", "abc"));
    }
}
