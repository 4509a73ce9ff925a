//! The enrolment workflow, independent of any UI: identify → demographics → face → fingers →
//! signature → review → commit.
//!
//! [`workflow::Enrolment`] is the state machine the CLI drives now and the kiosk will drive later;
//! [`record`] turns a finished enrolment into a sealed payload and a signed envelope; [`simulate`]
//! runs the workflow against simulated devices. Nothing here touches SQLite or the screen.

pub mod badge;
pub mod live;
pub mod record;
pub mod simulate;
pub mod workflow;

pub use badge::{OfficerBadge, SimBadge};
pub use workflow::{CapturePolicy, Completed, Enrolment, Outcome, Step, WorkflowError};
