//! End-to-end tests: the `tasjil` binary driven exactly as an operator (or a script) would, on a
//! real SQLite file in a temporary directory.
#![allow(clippy::unwrap_used)]

mod common;

mod badge;
mod bundle;
mod centre;
mod centre_load;
mod cluster;
mod console;
mod crash;
mod devices;
mod enrol;
mod faults;
mod keys;
mod kiosk_xvfb;
mod nist;
mod packaging;
mod restore;
mod roster;
mod sync;
mod tamper;
mod training;
