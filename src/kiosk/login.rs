//! Officer login: badge inserted → PIN pad → logged in; badge removed or idle → logged out.
//!
//! Owns the PIN being typed, the tries left before the badge blocks (OpenPGP cards block PW1 after
//! three wrong PINs and say how many tries are left; the simulated badge cannot, so its count is
//! kept here, per badge) and the idle timer.
//! It does not check the PIN: the worker asks the badge and reports back with [`Login::pin_result`].

pub const PIN_LEN: usize = 6;
pub const MAX_TRIES: u8 = 3;
/// The screen warns this long before the idle logout, counting down.
pub const IDLE_WARNING_MS: i64 = 30_000;

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LoginState {
    /// Waiting for a badge.
    NoBadge,
    /// Badge in, PIN being typed.
    EnterPin {
        officer: String,
        tries_left: u8,
    },
    /// PIN submitted, the badge is checking it.
    Checking {
        officer: String,
    },
    /// Too many wrong PINs: the badge must be unblocked by a supervisor.
    Blocked {
        officer: String,
    },
    LoggedIn {
        officer: String,
    },
}

#[derive(Debug)]
pub struct Login {
    state: LoginState,
    pin: String,
    /// Tries left of the badge in the reader.
    tries_left: u8,
    /// Tries left of each simulated badge seen (cards keep their own counter).
    sim_tries: std::collections::HashMap<String, u8>,
    last_activity_ms: i64,
    idle_logout_ms: i64,
}

impl Login {
    pub fn new(idle_logout_ms: i64) -> Login {
        Login {
            state: LoginState::NoBadge,
            pin: String::new(),
            tries_left: MAX_TRIES,
            sim_tries: std::collections::HashMap::new(),
            last_activity_ms: 0,
            idle_logout_ms,
        }
    }

    pub fn state(&self) -> &LoginState {
        &self.state
    }

    pub fn officer(&self) -> Option<&str> {
        match &self.state {
            LoginState::LoggedIn { officer } => Some(officer),
            _ => None,
        }
    }

    /// How many PIN digits are typed (the pad shows dots, never digits).
    pub fn pin_len(&self) -> usize {
        self.pin.len()
    }

    /// A badge in the reader. `card_tries`: the PIN tries left as the card counts them (`None`
    /// for the simulated badge, whose tries are counted here).
    pub fn insert_badge(&mut self, officer: &str, card_tries: Option<u8>, now_ms: i64) {
        self.pin.clear();
        self.last_activity_ms = now_ms;
        self.tries_left =
            card_tries.unwrap_or_else(|| *self.sim_tries.get(officer).unwrap_or(&MAX_TRIES));
        self.state = if self.tries_left == 0 {
            LoginState::Blocked {
                officer: officer.into(),
            }
        } else {
            LoginState::EnterPin {
                officer: officer.into(),
                tries_left: self.tries_left,
            }
        };
    }

    /// The badge left the reader: whatever was going on, nobody is logged in any more.
    /// Returns whether an officer was logged in.
    pub fn remove_badge(&mut self) -> bool {
        let was = self.officer().is_some();
        self.pin.clear();
        self.state = LoginState::NoBadge;
        was
    }

    /// A digit on the PIN pad. Returns the PIN to check once it is complete.
    pub fn digit(&mut self, d: char, now_ms: i64) -> Option<(String, String)> {
        self.last_activity_ms = now_ms;
        let LoginState::EnterPin { officer, .. } = &self.state else {
            return None;
        };
        if !d.is_ascii_digit() || self.pin.len() >= PIN_LEN {
            return None;
        }
        self.pin.push(d);
        if self.pin.len() < PIN_LEN {
            return None;
        }
        let officer = officer.clone();
        self.state = LoginState::Checking {
            officer: officer.clone(),
        };
        Some((officer, std::mem::take(&mut self.pin)))
    }

    pub fn backspace(&mut self) {
        self.pin.pop();
    }

    /// What the badge said about the PIN; `card_tries`: the tries left as the card counts them
    /// (`None`: count here).
    pub fn pin_result(&mut self, ok: bool, card_tries: Option<u8>, now_ms: i64) {
        let LoginState::Checking { officer } = &self.state else {
            return;
        };
        let officer = officer.clone();
        self.last_activity_ms = now_ms;
        if ok {
            self.tries_left = card_tries.unwrap_or(MAX_TRIES);
            if card_tries.is_none() {
                self.sim_tries.remove(&officer);
            }
            self.state = LoginState::LoggedIn { officer };
        } else {
            self.tries_left = match card_tries {
                Some(n) => n,
                None => {
                    let n = self.tries_left.saturating_sub(1);
                    self.sim_tries.insert(officer.clone(), n);
                    n
                }
            };
            self.state = if self.tries_left == 0 {
                LoginState::Blocked { officer }
            } else {
                LoginState::EnterPin {
                    officer,
                    tries_left: self.tries_left,
                }
            };
        }
    }

    /// Any touch on the screen.
    pub fn touch(&mut self, now_ms: i64) {
        self.last_activity_ms = now_ms;
    }

    /// Seconds left before the idle logout, once fewer than [`IDLE_WARNING_MS`] remain (the
    /// screen counts them down); `None` before that, or when nobody is logged in.
    pub fn idle_left(&self, now_ms: i64) -> Option<i64> {
        self.officer()?;
        let left = self.idle_logout_ms - (now_ms - self.last_activity_ms);
        (left > 0 && left <= IDLE_WARNING_MS).then(|| (left + 999) / 1000)
    }

    /// Log out after the idle time. Returns true when this call logged the officer out.
    pub fn idle_check(&mut self, now_ms: i64) -> bool {
        if self.officer().is_some() && now_ms - self.last_activity_ms >= self.idle_logout_ms {
            self.state = LoginState::EnterPin {
                officer: self.officer().unwrap_or_default().to_string(),
                tries_left: self.tries_left,
            };
            self.pin.clear();
            return true;
        }
        false
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn type_pin(l: &mut Login, pin: &str) -> Option<(String, String)> {
        pin.chars().fold(None, |_, d| l.digit(d, 0))
    }

    #[test]
    fn a_complete_pin_is_handed_over_once_and_a_right_one_logs_in() {
        let mut l = Login::new(60_000);
        assert_eq!(type_pin(&mut l, "123"), None, "no badge, no PIN");
        l.insert_badge("OFF-1", None, 0);
        assert_eq!(type_pin(&mut l, "12345"), None);
        assert_eq!(l.pin_len(), 5);
        l.backspace();
        assert_eq!(l.pin_len(), 4);
        let (officer, pin) = type_pin(&mut l, "56").unwrap();
        assert_eq!((officer.as_str(), pin.as_str()), ("OFF-1", "123456"));
        assert_eq!(l.pin_len(), 0, "the PIN is not kept");
        l.pin_result(true, None, 0);
        assert_eq!(l.officer(), Some("OFF-1"));
    }

    #[test]
    fn three_wrong_pins_block_the_badge_even_after_reinsertion() {
        let mut l = Login::new(60_000);
        l.insert_badge("OFF-1", None, 0);
        for left in [2, 1] {
            type_pin(&mut l, "000000").unwrap();
            l.pin_result(false, None, 0);
            assert_eq!(
                l.state(),
                &LoginState::EnterPin {
                    officer: "OFF-1".into(),
                    tries_left: left
                }
            );
        }
        type_pin(&mut l, "000000").unwrap();
        l.pin_result(false, None, 0);
        assert!(matches!(l.state(), LoginState::Blocked { .. }));
        l.remove_badge();
        l.insert_badge("OFF-1", None, 0);
        assert!(matches!(l.state(), LoginState::Blocked { .. }));
        assert_eq!(type_pin(&mut l, "123456"), None);
    }

    #[test]
    fn removing_the_badge_or_idling_logs_out() {
        let mut l = Login::new(1_000);
        l.insert_badge("OFF-1", None, 0);
        type_pin(&mut l, "123456").unwrap();
        l.pin_result(true, None, 0);
        l.touch(500);
        assert_eq!(
            l.idle_left(1_400),
            Some(1),
            "the last second is counted down"
        );
        assert!(!l.idle_check(1_400));
        assert!(l.idle_check(1_500));
        assert_eq!(l.officer(), None);
        assert!(
            matches!(l.state(), LoginState::EnterPin { .. }),
            "badge still in: PIN again"
        );
        type_pin(&mut l, "123456").unwrap();
        l.pin_result(true, None, 2_000);
        assert!(l.remove_badge());
        assert_eq!(l.state(), &LoginState::NoBadge);
        assert!(!l.remove_badge());
    }

    #[test]
    fn the_idle_warning_counts_the_last_30_seconds_and_a_touch_ends_it() {
        let mut l = Login::new(300_000);
        l.insert_badge("OFF-1", None, 0);
        type_pin(&mut l, "123456").unwrap();
        assert_eq!(l.idle_left(280_000), None, "not logged in yet");
        l.pin_result(true, None, 0);
        assert_eq!(l.idle_left(269_999), None);
        assert_eq!(l.idle_left(270_000), Some(30));
        assert_eq!(l.idle_left(285_500), Some(15));
        l.touch(285_500);
        assert_eq!(l.idle_left(286_000), None);
        assert!(l.idle_check(585_500));
        assert_eq!(l.idle_left(585_600), None, "logged out: nothing to count");
    }

    #[test]
    fn each_badge_has_its_own_tries_and_a_card_counts_its_own() {
        let mut l = Login::new(60_000);
        l.insert_badge("OFF-1", None, 0);
        type_pin(&mut l, "000000").unwrap();
        l.pin_result(false, None, 0);
        l.remove_badge();
        // Another officer's badge is not charged with OFF-1's wrong PIN.
        l.insert_badge("OFF-2", None, 0);
        assert_eq!(
            l.state(),
            &LoginState::EnterPin {
                officer: "OFF-2".into(),
                tries_left: 3
            }
        );
        l.remove_badge();
        l.insert_badge("OFF-1", None, 0);
        assert_eq!(
            l.state(),
            &LoginState::EnterPin {
                officer: "OFF-1".into(),
                tries_left: 2
            }
        );
        l.remove_badge();
        // A card says how many tries it has left, whatever happened at another kiosk.
        l.insert_badge("OFF-0042", Some(1), 0);
        assert_eq!(
            l.state(),
            &LoginState::EnterPin {
                officer: "OFF-0042".into(),
                tries_left: 1
            }
        );
        type_pin(&mut l, "000000").unwrap();
        l.pin_result(false, Some(0), 0);
        assert!(matches!(l.state(), LoginState::Blocked { .. }));
    }
}
