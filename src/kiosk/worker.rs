//! The kiosk's worker thread: it owns the [`Session`] (store, keys, devices) and does every
//! piece of I/O and capture, so the UI thread only draws. Commands go in over a channel; results
//! come back through the [`Outbox`], whose `notify` wakes the UI thread (in the kiosk:
//! `upgrade_in_event_loop`; in tests: nothing, the test drains the outbox itself).
//!
//! While the face step is on screen the worker streams preview frames, checks them against the
//! capture policy, and captures on its own once enough frames in a row pass. A camera that stops
//! answering turns into a status on screen and a retry every half second, never a dead wizard.

use std::collections::VecDeque;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::{Receiver, RecvTimeoutError, Sender};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use tasjil_drivers::{ExceptionReason, FingerPosition};
use tasjil_sync::EnrolmentKind;

use super::problem::Problem;
use super::session::{FaceResult, FingerResult, Frame, HomeStats, Receipt, Review, Session};
use crate::enrolment::Step;
use crate::schema::FieldError;

/// Consecutive good preview frames before the photo is taken automatically (about 0.2 s at
/// 25 fps: the citizen is holding still).
pub const FRAMES_NEEDED: u32 = 5;
/// How long the checks must keep passing before the photo is taken by itself: the view counts
/// it down over the picture, so the officer sees it coming and can frame the citizen first
/// (issue 20: a photo taken about a second after the view opened surprised everyone).
/// The countdown starts after [`FRAMES_NEEDED`] good frames in a row; a frame that fails now
/// and then (a blink) does not stop it, this many failing in a row (about 0.3 s) do.
pub const AUTO_CAPTURE_HOLD: Duration = Duration::from_secs(3);
const BAD_FRAMES_RESET: u32 = 10;
/// Time between preview frames when the camera keeps up: 30 fps, the rate USB cameras deliver
/// at 640×480 (a real camera paces itself too: its `frame()` waits for the next one).
const FRAME_INTERVAL: Duration = Duration::from_micros(33_333);
/// Time between attempts while the camera does not answer.
const CAMERA_RETRY: Duration = Duration::from_millis(500);
/// Time between looks at the badge reader (card badges): a badge pulled out logs the officer
/// out within this time.
const BADGE_POLL: Duration = Duration::from_millis(400);

#[derive(Debug)]
pub enum Command {
    Login {
        officer: String,
        pin: String,
    },
    Logout,
    Home,
    Start,
    Cancel,
    Identify(EnrolmentKind),
    Demographics(serde_json::Map<String, serde_json::Value>),
    /// Start or stop streaming preview frames (face step on screen or not).
    Preview(bool),
    /// Take the photo by itself once the checks pass (on by default; off for measurements).
    AutoCapture(bool),
    CaptureFace,
    CaptureFinger,
    FingerException(ExceptionReason),
    /// Pen points `(x, y, t_ms)` in pad units, `t_ms` since the first pen-down.
    Signature {
        width: u16,
        height: u16,
        strokes: Vec<Vec<(u16, u16, u32)>>,
    },
    Retake(Step),
    Review,
    Confirm {
        pin: String,
    },
    /// Write a rendered receipt (RGBA) as PNG under DATA_DIR/receipts/.
    SaveReceipt {
        id: String,
        width: u32,
        height: u32,
        rgba: Vec<u8>,
    },
    /// The supervisor's desk (`super::supervisor`).
    Supervisor(super::supervisor::Command),
    /// The devices and their state now (for the diagnostics view).
    Devices,
    /// Open the citizen's previous card with this key and read its identity page.
    ReadPreviousCard(tasjil_drivers::emrtd::AccessKey),
    /// The form as typed so far, kept in the draft (before an idle logout or a Cancel).
    KeepForm(serde_json::Map<String, serde_json::Value>),
    /// Take up the kept enrolment again.
    ResumeDraft,
    /// Discard the kept enrolment.
    DiscardDraft,
}

#[derive(Debug)]
pub enum Event {
    /// The station could not be opened: nothing will work until an operator fixes it.
    Fatal(Problem),
    Ready {
        station: String,
        devices: Vec<String>,
        /// What the simulated previous card has printed on it (`None` with a real reader).
        sim_card: Option<tasjil_drivers::emrtd::IdentityPage>,
    },
    LoggedIn {
        name: String,
    },
    LoginRefused {
        problem: Problem,
        /// PIN attempts left, when the badge counts them (cards do).
        retries_left: Option<u8>,
    },
    /// A badge was inserted in or pulled out of the reader (card badges).
    Badge(super::badges::BadgeChange),
    Home(HomeStats),
    /// The workflow moved on (or back) to this step.
    Step(Step),
    FormErrors(Vec<FieldError>),
    Frame {
        frame: Frame,
        good_frames: u32,
        /// Milliseconds left before the automatic photo, while the checks keep passing.
        countdown_ms: Option<u32>,
        min_quality: u8,
        fps: f32,
    },
    CameraLost(String),
    /// The fingerprint sensor is not there (unplugged, never plugged in): the finger can be
    /// captured again once it is.
    ScannerLost(String),
    Face(FaceResult),
    Finger {
        result: FingerResult,
        next: Option<FingerPosition>,
        step: Step,
    },
    FingerExcepted {
        position: FingerPosition,
        next: Option<FingerPosition>,
        step: Step,
    },
    Review(Box<Review>),
    Committed(Receipt),
    ConfirmRefused(Problem),
    ReceiptSaved(String),
    /// Something failed; the message says what to do. The session goes on.
    Error(Problem),
    /// From the supervisor's desk.
    Supervisor(super::supervisor::Event),
    /// The devices and their state (answer to [`Command::Devices`]).
    Devices(Vec<String>),
    /// The kept enrolment was taken up again (answer to [`Command::ResumeDraft`]).
    Resumed(Box<super::session::Resumed>),
    /// The previous card's chip was read (answer to [`Command::ReadPreviousCard`]).
    PreviousCard(Result<tasjil_drivers::emrtd::IdentityPage, tasjil_drivers::emrtd::ChipError>),
}

/// Results waiting for the UI thread.
pub struct Outbox {
    queue: Mutex<VecDeque<Event>>,
    notify: Box<dyn Fn() + Send + Sync>,
}

impl std::fmt::Debug for Outbox {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Outbox").finish_non_exhaustive()
    }
}

impl Outbox {
    pub fn new(notify: impl Fn() + Send + Sync + 'static) -> Arc<Outbox> {
        Arc::new(Outbox {
            queue: Mutex::new(VecDeque::new()),
            notify: Box::new(notify),
        })
    }

    pub fn push(&self, event: Event) {
        match self.queue.lock() {
            Ok(mut q) => q.push_back(event),
            Err(poisoned) => poisoned.into_inner().push_back(event),
        }
        (self.notify)();
    }

    pub fn take(&self) -> Vec<Event> {
        match self.queue.lock() {
            Ok(mut q) => q.drain(..).collect(),
            Err(poisoned) => poisoned.into_inner().drain(..).collect(),
        }
    }
}

/// Start the worker. `open` runs on the worker thread (opening the store is I/O).
/// `frame_free` is set by the UI once it has shown the last frame, so frames never pile up.
pub fn spawn(
    open: impl FnOnce() -> anyhow::Result<Session> + Send + 'static,
    outbox: Arc<Outbox>,
    frame_free: Arc<AtomicBool>,
) -> anyhow::Result<Sender<Command>> {
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::Builder::new()
        .name("kiosk-worker".into())
        .spawn(move || match open() {
            Ok(mut session) => {
                outbox.push(Event::Ready {
                    station: session.station_id().to_string(),
                    devices: session.device_names(),
                    sim_card: session.sim_card(),
                });
                session.release_writer();
                run(session, &rx, &outbox, &frame_free);
            }
            Err(e) => {
                tracing::error!("kiosk cannot open the station: {e:#}");
                outbox.push(Event::Fatal(Problem::new(
                    "station-unusable",
                    "",
                    format!("{e:#}"),
                )));
            }
        })?;
    Ok(tx)
}

fn run(mut session: Session, rx: &Receiver<Command>, outbox: &Outbox, frame_free: &AtomicBool) {
    let mut preview = false;
    let mut good_frames = 0u32;
    // Since when every frame has passed the checks (the automatic photo's countdown).
    let mut good_since: Option<Instant> = None;
    let mut bad_frames = 0u32;
    let mut frame_times: VecDeque<Instant> = VecDeque::new();
    // When the next preview frame is due.
    let mut next_frame = Instant::now();
    let mut camera_lost = false;
    let mut auto = true;
    let polls_badges = session.polls_badges();
    let mut next_badge_poll = Instant::now();
    loop {
        if polls_badges && Instant::now() >= next_badge_poll {
            if let Some(change) = session.poll_badge() {
                tracing::info!("badge reader: {change:?}");
                if matches!(change, super::badges::BadgeChange::Removed) {
                    preview = false;
                }
                outbox.push(Event::Badge(change));
            }
            next_badge_poll = Instant::now() + BADGE_POLL;
        }
        let now = Instant::now();
        let until_frame = next_frame.saturating_duration_since(now);
        let until_poll = next_badge_poll.saturating_duration_since(now);
        let timeout = match (preview, polls_badges) {
            (true, true) => Some(until_frame.min(until_poll)),
            (true, false) => Some(until_frame),
            (false, true) => Some(until_poll),
            (false, false) => None,
        };
        let command = match timeout {
            Some(t) => match rx.recv_timeout(t) {
                Ok(c) => Some(c),
                Err(RecvTimeoutError::Timeout) => None,
                Err(RecvTimeoutError::Disconnected) => return,
            },
            None => match rx.recv() {
                Ok(c) => Some(c),
                Err(_) => return,
            },
        };
        if let Some(command) = command {
            if let Command::AutoCapture(on) = command {
                auto = on;
                continue;
            }
            if let Command::Preview(on) = command {
                if on && preview {
                    // Already streaming (the view shown again): the countdown goes on.
                    continue;
                }
                preview = on;
                good_frames = 0;
                good_since = None;
                frame_times.clear();
                next_frame = Instant::now();
                continue;
            }
            handle(&mut session, command, outbox, &mut preview);
            continue;
        }
        if !preview || Instant::now() < next_frame {
            continue;
        }
        // A preview frame is due.
        let started = Instant::now();
        match session.preview() {
            Ok(frame) => {
                if camera_lost {
                    camera_lost = false;
                    tracing::info!("camera answers again");
                }
                let min = session.face_min_quality();
                good_frames = if frame.passed && frame.quality >= min {
                    good_frames + 1
                } else {
                    0
                };
                bad_frames = if good_frames == 0 { bad_frames + 1 } else { 0 };
                if good_frames >= FRAMES_NEEDED {
                    good_since.get_or_insert_with(Instant::now);
                }
                if bad_frames >= BAD_FRAMES_RESET {
                    good_since = None;
                }
                let countdown_ms = good_since
                    .filter(|_| auto)
                    .map(|t| AUTO_CAPTURE_HOLD.saturating_sub(t.elapsed()).as_millis() as u32);
                frame_times.push_back(Instant::now());
                while frame_times.len() > 25 {
                    frame_times.pop_front();
                }
                let fps = match (frame_times.front(), frame_times.back()) {
                    (Some(a), Some(b)) if frame_times.len() > 1 && b > a => {
                        (frame_times.len() - 1) as f32 / (*b - *a).as_secs_f32()
                    }
                    _ => 0.0,
                };
                // Drop the frame if the screen has not drawn the previous one yet.
                if frame_free.swap(false, Ordering::AcqRel) {
                    outbox.push(Event::Frame {
                        frame,
                        good_frames,
                        countdown_ms,
                        min_quality: min,
                        fps,
                    });
                }
                if auto && good_frames > 0 && countdown_ms == Some(0) {
                    good_frames = 0;
                    good_since = None;
                    handle(&mut session, Command::CaptureFace, outbox, &mut preview);
                }
                next_frame = started + FRAME_INTERVAL;
            }
            Err(e) => {
                if !camera_lost {
                    tracing::warn!("camera lost during the face capture: {e}");
                }
                camera_lost = true;
                good_frames = 0;
                good_since = None;
                outbox.push(Event::CameraLost(e.to_string()));
                next_frame = Instant::now() + CAMERA_RETRY;
            }
        }
    }
}

/// Whether `command` may write to the station (then the kiosk must hold the writer lock,
/// which it gives to `sync --watch` while nobody is logged in). Login takes it itself, after the
/// badge has been unlocked.
fn may_write(command: &Command) -> bool {
    !matches!(
        command,
        Command::Login { .. }
            | Command::Logout
            | Command::Home
            | Command::Devices
            | Command::KeepForm(_)
            | Command::ReadPreviousCard(_)
            | Command::SaveReceipt { .. }
            | Command::Preview(_)
            | Command::AutoCapture(_)
    )
}

fn handle(session: &mut Session, command: Command, outbox: &Outbox, preview: &mut bool) {
    if may_write(&command) {
        if let Err(e) = session.hold_writer() {
            tracing::warn!("{e:#}");
            outbox.push(Event::Error(Problem::of(&e)));
            return;
        }
    }
    let event = match command {
        Command::Login { officer, pin } => match session.login(&officer, &pin) {
            Ok(name) => Event::LoggedIn { name },
            Err(e) => Event::LoginRefused {
                retries_left: e.retries_left(),
                problem: Problem::of(&e.into()),
            },
        },
        Command::Logout => {
            *preview = false;
            session.logout();
            session.release_writer();
            return;
        }
        Command::Home => {
            // Back home with nobody logged in (the supervisor's desk closed): free the station.
            session.release_writer();
            result(session.home().map(Event::Home))
        }
        Command::KeepForm(data) => {
            session.keep_form(data);
            return;
        }
        Command::ResumeDraft => result(session.resume_draft().map(|r| Event::Resumed(Box::new(r)))),
        Command::DiscardDraft => result(
            session
                .discard_draft()
                .and_then(|()| session.home())
                .map(Event::Home),
        ),
        Command::Devices => Event::Devices(session.device_names()),
        Command::ReadPreviousCard(key) => Event::PreviousCard(session.read_previous_card(&key)),
        Command::Start => result(session.start().map(|()| Event::Step(Step::Identify))),
        Command::Cancel => {
            *preview = false;
            session.cancel();
            return;
        }
        Command::Identify(kind) => result(session.identify(kind).map(Event::Step)),
        Command::Demographics(data) => result(session.demographics(data).map(|r| match r {
            Ok(step) => Event::Step(step),
            Err(errors) => Event::FormErrors(errors),
        })),
        Command::Preview(_) | Command::AutoCapture(_) => return,
        Command::Supervisor(c) => {
            let (station, badges) = session.desk();
            super::supervisor::run(station, badges, c, &mut |e| {
                outbox.push(Event::Supervisor(e));
            });
            return;
        }
        Command::CaptureFace => match session.capture_face() {
            Ok(face) => {
                if face.step != Step::Face {
                    *preview = false;
                }
                Event::Face(face)
            }
            Err(e) => Event::Error(Problem::of(&e)),
        },
        Command::CaptureFinger => match capture_finger(session) {
            Ok(result) => Event::Finger {
                result,
                next: session.next_finger(),
                step: session.step().unwrap_or(Step::Identify),
            },
            Err(e) => match e.downcast_ref::<tasjil_drivers::CaptureError>() {
                Some(tasjil_drivers::CaptureError::Disconnected(what)) => {
                    tracing::warn!("fingerprint sensor lost: {e:#}");
                    Event::ScannerLost(what.clone())
                }
                _ => Event::Error(Problem::of(&e)),
            },
        },
        Command::FingerException(reason) => result(session.finger_exception(reason).map(
            |position| Event::FingerExcepted {
                position,
                next: session.next_finger(),
                step: session.step().unwrap_or(Step::Identify),
            },
        )),
        Command::Signature {
            width,
            height,
            strokes,
        } => result(session.signature(width, height, strokes).map(Event::Step)),
        Command::Retake(step) => result(session.retake(step).map(Event::Step)),
        Command::Review => result(session.review().map(|r| Event::Review(Box::new(r)))),
        Command::Confirm { pin } => match session.confirm(&pin) {
            Ok(receipt) => {
                tracing::info!(
                    "committed {} seq {} by {}",
                    receipt.committed.id,
                    receipt.committed.seq,
                    receipt.officer
                );
                Event::Committed(receipt)
            }
            Err(e) => Event::ConfirmRefused(Problem::of(&e)),
        },
        Command::SaveReceipt {
            id,
            width,
            height,
            rgba,
        } => result(
            session
                .save_receipt(&id, width, height, &rgba)
                .map(|p| Event::ReceiptSaved(p.display().to_string())),
        ),
    };
    if let Event::Error(p) | Event::ConfirmRefused(p) = &event {
        tracing::warn!("{}", p.detail);
    }
    outbox.push(event);
}

/// Capture the next finger, saying which one the sensor waits for.
fn capture_finger(session: &mut Session) -> anyhow::Result<super::session::FingerResult> {
    if let Some(position) = session.next_finger() {
        tracing::info!("capturing {}: place it on the sensor", position.name());
    }
    session.capture_finger()
}

fn result(r: anyhow::Result<Event>) -> Event {
    r.unwrap_or_else(|e| Event::Error(Problem::of(&e)))
}
