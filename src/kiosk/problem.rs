//! What went wrong, as the officer is told it. The worker's errors are English sentences built
//! for the log (`anyhow` chains from the workflow, the badge, the devices, the store); the screen
//! shows none of them. A [`Problem`] is a message key the views translate (`Tr.problem` in
//! `ui/theme.slint`), the one number or name that goes into the message, and the English error
//! kept for the log only.
//!
//! Errors this module does not know (a store failure, a roster refusal worded by
//! `crate::roster`) become the translated "failed" message: the officer is told that it failed
//! and where the detail is, never shown the English. No Slint types.

use tasjil_drivers::{BadgeError, CaptureError, SignatureProblem};

use super::badges::UnlockError;
use super::session::SessionError;
use crate::enrolment::WorkflowError;

/// A failure the screen can say in the officer's language.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Problem {
    /// The message key (`Tr.problem`); every key of [`Problem::KEYS`] is translated.
    pub key: &'static str,
    /// The number or name put into the message ("" when it takes none).
    pub arg: String,
    /// The error in English with its causes: for the log, never for the screen.
    pub detail: String,
}

impl Problem {
    /// Every key [`Problem::of`] can give, for the translation tests.
    pub const KEYS: [&'static str; 22] = [
        "signature-empty",
        "signature-short",
        "signature-fast",
        "wrong-step",
        "finger-done",
        "form-invalid",
        "wrong-pin",
        "wrong-pin-left",
        "pin-blocked",
        "badge-error",
        "badge-none",
        "badge-reader",
        "device-lost",
        "device-timeout",
        "no-finger",
        "device-error",
        "log-in-first",
        "no-enrolment",
        "no-draft",
        "draft-unopened",
        "station-busy",
        "failed",
    ];

    pub fn new(key: &'static str, arg: impl Into<String>, detail: impl Into<String>) -> Problem {
        Problem {
            key,
            arg: arg.into(),
            detail: detail.into(),
        }
    }

    /// The first cause in `e`'s chain this module knows decides the message.
    pub fn of(e: &anyhow::Error) -> Problem {
        let detail = format!("{e:#}");
        for cause in e.chain() {
            if let Some((key, arg)) = known(cause) {
                return Problem { key, arg, detail };
            }
        }
        Problem {
            key: "failed",
            arg: String::new(),
            detail,
        }
    }
}

fn known(cause: &(dyn std::error::Error + 'static)) -> Option<(&'static str, String)> {
    let none = String::new;
    if let Some(e) = cause.downcast_ref::<WorkflowError>() {
        return Some(match e {
            WorkflowError::Signature(p) => signature(p),
            WorkflowError::WrongStep { .. } => ("wrong-step", none()),
            WorkflowError::FingerDone(_) => ("finger-done", none()),
            WorkflowError::Invalid(_) => ("form-invalid", none()),
        });
    }
    if let Some(p) = cause.downcast_ref::<SignatureProblem>() {
        return Some(signature(p));
    }
    if let Some(e) = cause.downcast_ref::<UnlockError>() {
        return match e {
            UnlockError::WrongPin {
                retries_left: Some(n),
            } => Some(("wrong-pin-left", n.to_string())),
            UnlockError::WrongPin { retries_left: None } => Some(("wrong-pin", none())),
            UnlockError::Blocked => Some(("pin-blocked", none())),
            // Transparent: its chain starts below the wrapped error, so look at that one.
            UnlockError::Other(inner) => inner.chain().find_map(known),
        };
    }
    if let Some(e) = cause.downcast_ref::<BadgeError>() {
        return Some(match e {
            BadgeError::WrongPin { retries_left } => ("wrong-pin-left", retries_left.to_string()),
            BadgeError::Blocked => ("pin-blocked", none()),
            BadgeError::NoCard | BadgeError::Removed => ("badge-none", none()),
            BadgeError::NoService(_) | BadgeError::NoReader => ("badge-reader", none()),
            BadgeError::PinNotVerified | BadgeError::NotPersonalised(_) | BadgeError::Card(_) => {
                ("badge-error", none())
            }
        });
    }
    if let Some(e) = cause.downcast_ref::<CaptureError>() {
        return Some(match e {
            CaptureError::Disconnected(_) => ("device-lost", none()),
            CaptureError::Timeout(_) => ("device-timeout", none()),
            CaptureError::NoFinger(_) => ("no-finger", none()),
            CaptureError::Image(_) | CaptureError::PixelCount { .. } => ("device-error", none()),
        });
    }
    if let Some(e) = cause.downcast_ref::<super::draft::DraftError>() {
        return Some(match e {
            super::draft::DraftError::WrongKey | super::draft::DraftError::Damaged(_) => {
                ("draft-unopened", none())
            }
            // A file that cannot be read or written: the generic message and the log.
            _ => ("failed", none()),
        });
    }
    if cause.downcast_ref::<crate::station::WriterBusy>().is_some() {
        return Some(("station-busy", none()));
    }
    if let Some(e) = cause.downcast_ref::<SessionError>() {
        return Some(match e {
            SessionError::NotLoggedIn => ("log-in-first", none()),
            SessionError::NoEnrolment => ("no-enrolment", none()),
            SessionError::NoDraft => ("no-draft", none()),
            // Both are a tap too early: the view's own state says what to wait for.
            SessionError::NoPicture | SessionError::NoFingerLeft => ("wrong-step", none()),
        });
    }
    None
}

fn signature(p: &SignatureProblem) -> (&'static str, String) {
    match p {
        SignatureProblem::Empty => ("signature-empty", String::new()),
        SignatureProblem::TooShort { .. } => ("signature-short", String::new()),
        SignatureProblem::TooFast { duration_ms } => ("signature-fast", duration_ms.to_string()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn known_errors_get_their_message_and_the_english_stays_in_the_detail() {
        let short = anyhow::Error::from(WorkflowError::Signature(SignatureProblem::TooShort {
            ink_px: 3,
            span_pct: 1,
        }));
        let p = Problem::of(&short);
        assert_eq!(p.key, "signature-short");
        assert!(p.detail.contains("too short"), "{p:?}");

        let pin = anyhow::Error::from(UnlockError::WrongPin {
            retries_left: Some(2),
        })
        .context("co-signing the record");
        assert_eq!(
            (Problem::of(&pin).key, Problem::of(&pin).arg.as_str()),
            ("wrong-pin-left", "2")
        );
        let lost = anyhow::Error::from(CaptureError::Disconnected("cam".into()));
        assert_eq!(Problem::of(&lost).key, "device-lost");
        let session = anyhow::Error::from(SessionError::NoEnrolment);
        assert_eq!(Problem::of(&session).key, "no-enrolment");
        let other = anyhow::anyhow!("disk I/O error");
        assert_eq!(Problem::of(&other).key, "failed");
        for p in [short, pin, lost, session, other].iter().map(Problem::of) {
            assert!(Problem::KEYS.contains(&p.key), "{p:?}");
        }
    }
}
