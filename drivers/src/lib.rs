//! Capture devices for the Tasjil enrolment station.
//!
//! This crate owns what a capture device hands over (face photo, fingerprints, signature), the
//! device traits the station's controllers are written against, and their backends. It knows
//! nothing of records, storage, sync or the UI, and it does not judge capture quality: the
//! station's quality engine does that on whatever a backend returns.
#![cfg_attr(test, allow(clippy::unwrap_used))]

pub mod capture;
pub mod sim;

pub use capture::*;
