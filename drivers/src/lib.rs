//! Capture devices for the Tasjil enrolment station.
//!
//! This crate owns what a capture device hands over (face photo, fingerprints, signature), the
//! device traits the station's controllers are written against, their backends, and the
//! station-side quality checks ([`quality`]) that judge whatever a backend returns — never the
//! device's own score. It knows nothing of records, storage, sync or the UI.
#![cfg_attr(test, allow(clippy::unwrap_used))]

pub mod badge;
pub mod capture;
#[cfg(feature = "pcsc")]
pub mod card;
pub mod emrtd;
pub mod face;
#[cfg(feature = "libfprint")]
pub mod fprint;
pub mod quality;
pub mod sim;
pub mod slap;
#[cfg(feature = "v4l2")]
pub mod v4l2;

pub use badge::{BadgeError, OfficerBadge};
pub use capture::*;
