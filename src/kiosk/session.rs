//! The kiosk's controller of one station session: it owns the [`Station`] writer, the capture
//! devices, the officer's badge and the enrolment in progress, and drives the workflow
//! (`crate::enrolment::Enrolment`) step by step as the officer taps through the wizard.
//!
//! No Slint types and no threads: the worker calls it, the tests call it directly. It never
//! decides what is valid or what a capture is worth: the workflow and the schema do.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use anyhow::{bail, Context};
use tasjil_drivers::emrtd::{AccessKey, ChipError, IdentityPage};
use tasjil_drivers::face::FaceAnalyzer;
use tasjil_drivers::{
    Camera, CaptureError, ExceptionReason, FaceCapture, FingerException, FingerPosition,
    FingerprintScanner, PenPoint, RgbFrame, SignatureCapture, Stroke,
};
use tasjil_sync::EnrolmentKind;

use super::badges::{BadgeChange, Badges, UnlockError, Unlocked};
use crate::enrolment::{CapturePolicy, Enrolment, OfficerBadge, Outcome, Step, WorkflowError};
use crate::schema::FieldError;
use crate::station::{Committed, DataDir, Station};

/// A camera whose cable can be pulled: while unplugged every capture fails as the real
/// driver's would ([`CaptureError::Disconnected`]). Simulation and tests use it to rehearse a
/// camera lost in the middle of a capture.
#[derive(Debug)]
pub struct Pluggable<C> {
    inner: C,
    plugged: Arc<AtomicBool>,
}

impl<C: Camera> Pluggable<C> {
    pub fn new(inner: C) -> (Self, Arc<AtomicBool>) {
        let plugged = Arc::new(AtomicBool::new(true));
        (
            Pluggable {
                inner,
                plugged: plugged.clone(),
            },
            plugged,
        )
    }
}

impl<C: Camera> Camera for Pluggable<C> {
    fn name(&self) -> String {
        self.inner.name()
    }
    fn frame(&mut self) -> Result<RgbFrame, CaptureError> {
        if !self.plugged.load(Ordering::SeqCst) {
            return Err(CaptureError::Disconnected(self.inner.name()));
        }
        self.inner.frame()
    }
    fn capture_still(&mut self) -> Result<FaceCapture, CaptureError> {
        if !self.plugged.load(Ordering::SeqCst) {
            return Err(CaptureError::Disconnected(self.inner.name()));
        }
        self.inner.capture_still()
    }
}

/// Why the session refused an action, for the screen (`super::problem`) and the log.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum SessionError {
    #[error("log in with your badge first")]
    NotLoggedIn,
    #[error("no enrolment in progress: start one from the home screen")]
    NoEnrolment,
    #[error("no camera picture yet: wait for the preview")]
    NoPicture,
    #[error("no finger left to capture")]
    NoFingerLeft,
    #[error("no unfinished enrolment of yours is kept on this kiosk")]
    NoDraft,
}

/// The unfinished enrolment kept on this kiosk, as the home screen offers it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DraftInfo {
    /// The logged-in officer's own draft (else another officer's: it can only be discarded).
    pub mine: bool,
    pub saved_ms: i64,
    pub step: Step,
}

/// An enrolment taken up again from its draft: what the views need to show it.
#[derive(Debug, Clone)]
pub struct Resumed {
    pub kind: EnrolmentKind,
    /// The form's values (as typed, else as accepted).
    pub form: serde_json::Map<String, serde_json::Value>,
    pub fingers: Vec<(FingerPosition, super::draft::FingerMark)>,
    pub face_quality: Option<u8>,
    pub step: Step,
}

/// A face photo offered to the workflow: its outcome, the quality of the photo the enrolment
/// now keeps (the accepted one, or the best so far), and the step the workflow is at.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FaceResult {
    pub outcome: Outcome,
    /// The station's score of this very photo (what `Outcome::Retry` says too).
    pub quality: u8,
    pub step: Step,
}

impl FaceResult {
    /// The quality to show beside the outcome: this photo's when accepted or refused, the
    /// best one's when the best is kept below the threshold.
    pub fn shown_quality(&self) -> u8 {
        match self.outcome {
            Outcome::Accepted => self.quality,
            Outcome::Retry { quality, .. } | Outcome::KeptBelowThreshold { quality } => quality,
        }
    }
}

/// The capture devices of the station.
pub struct Devices {
    pub camera: Box<dyn Camera>,
    pub scanner: Box<dyn FingerprintScanner>,
    /// The reader of the citizen's previous card (renewals, corrections).
    pub id_card: Box<dyn crate::devices::IdCardReader>,
}

impl std::fmt::Debug for Devices {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Devices")
            .field("camera", &self.camera.name())
            .field("scanner", &self.scanner.name())
            .field("id_card", &self.id_card.name())
            .finish()
    }
}

/// A decoded preview frame, RGB 8-bit, with the station's face judgement of it.
#[derive(Clone)]
pub struct Frame {
    pub width: u32,
    pub height: u32,
    pub rgb: Vec<u8>,
    /// The face analyzer's score (0 when it could not judge the frame).
    pub quality: u8,
    /// Every face check passed.
    pub passed: bool,
    /// The first failing check's instruction (English, the translation key); "" when passed.
    pub advice: &'static str,
}

impl std::fmt::Debug for Frame {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "Frame({}x{}, q{})",
            self.width, self.height, self.quality
        )
    }
}

/// Figures for the home screen.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct HomeStats {
    pub today: u64,
    pub records: u64,
    pub unsent: u64,
    pub unacknowledged: u64,
    pub last_sync_ms: Option<i64>,
    pub free_disk_mb: Option<u64>,
    /// The unfinished enrolment kept on this kiosk, if any.
    pub draft: Option<DraftInfo>,
    /// The centre's roster this station obeys: its version and age against `[roster]`.
    pub roster: Option<crate::roster::RosterAge>,
}

/// What a finger capture gave.
#[derive(Debug, Clone)]
pub struct FingerResult {
    pub position: FingerPosition,
    pub outcome: Outcome,
    pub quality: u8,
    /// Grey thumbnail for the screen (width, height, pixels).
    pub thumb: (u32, u32, Vec<u8>),
}

/// What the officer reviews before confirming.
#[derive(Debug, Clone)]
pub struct Review {
    pub kind: EnrolmentKind,
    pub demographics: serde_json::Map<String, serde_json::Value>,
    pub face_jpeg: Vec<u8>,
    pub fingers: Vec<(FingerPosition, u8)>,
    pub exceptions: Vec<(FingerPosition, String)>,
    pub below_threshold: Vec<String>,
    pub signature_png: Vec<u8>,
    /// The previous card number is the chip's (its MRZ goes into the record).
    pub previous_card_from_chip: bool,
}

/// The receipt handed to the citizen.
#[derive(Debug, Clone)]
pub struct Receipt {
    pub committed: Committed,
    pub station: String,
    pub officer: String,
    pub at_ms: i64,
}

pub struct Session {
    station: Station,
    dir: DataDir,
    devices: Devices,
    policy: CapturePolicy,
    badges: Badges,
    /// The logged-in officer's badge (unlocked at login).
    badge: Option<Unlocked>,
    enrolment: Option<Enrolment>,
    last_frame: Option<RgbFrame>,
    /// The key of the logged-in officer's drafts (`super::draft`), derived at login.
    draft_key: Option<super::draft::DraftKey>,
    /// What the enrolment in progress was given, kept as the draft after each change.
    journal: Option<super::draft::Journal>,
    /// The previous card read through its chip for the enrolment in progress.
    previous_card: Option<IdentityPage>,
}

impl std::fmt::Debug for Session {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Session")
            .field("station", &self.station.station_id())
            .field("devices", &self.devices)
            .field("officer", &self.badge.as_ref().map(|b| b.officer_id()))
            .field("step", &self.enrolment.as_ref().map(Enrolment::step))
            .finish()
    }
}

/// How long the kiosk waits for another writer (a round of `sync --watch`) to give the station
/// back before saying the station is busy.
pub const WRITER_WAIT: std::time::Duration = std::time::Duration::from_secs(20);

impl Session {
    /// Open the station's data directory as its one writer.
    pub fn open(dir: &DataDir, devices: Devices, badges: Badges) -> anyhow::Result<Session> {
        let policy = crate::config::Config::load(&dir.0)?.capture;
        // `sync --watch` may be in a round: wait for it rather than fail at boot.
        let station = Station::open_waiting(dir, WRITER_WAIT)?;
        Ok(Session {
            station,
            dir: dir.clone(),
            devices,
            policy,
            badges,
            badge: None,
            enrolment: None,
            last_frame: None,
            previous_card: None,
            draft_key: None,
            journal: None,
        })
    }

    pub fn station_id(&self) -> &str {
        self.station.station_id()
    }

    /// Nobody is logged in: let `sync --watch` (or a supervisor's command) write to the station
    /// until the next login. The kiosk only reads meanwhile (home screen counts).
    pub fn release_writer(&mut self) {
        if self.badge.is_none() && self.station.holds_lock() {
            self.station.release();
            tracing::debug!("writer lock released while nobody is logged in");
        }
    }

    /// Take the station's writer lock back before anything that may write, waiting for a
    /// sync round in progress to end ([`WRITER_WAIT`] at most, then a "busy" refusal the officer
    /// can retry).
    pub fn hold_writer(&mut self) -> anyhow::Result<()> {
        if !self.station.holds_lock() {
            self.station.reacquire(WRITER_WAIT)?;
            tracing::debug!("writer lock taken back");
        }
        Ok(())
    }

    /// The station writer and the badge reader, for the supervisor's desk
    /// (`super::supervisor::run`).
    pub fn desk(&mut self) -> (&mut Station, &mut Badges) {
        (&mut self.station, &mut self.badges)
    }

    pub fn device_names(&self) -> Vec<String> {
        let badge = match self.badges.source() {
            super::badges::BadgeSource::Simulated => {
                "simulated officer badges (PIN 123456)".to_string()
            }
            super::badges::BadgeSource::Card => match self.badges.inserted() {
                Some(b) => format!(
                    "badge reader {}: badge {} ({})",
                    b.reader, b.officer, b.name
                ),
                None => "badge reader (PC/SC): no badge inserted".to_string(),
            },
        };
        vec![
            self.devices.camera.name(),
            self.devices.scanner.name(),
            badge,
            self.devices.id_card.name(),
        ]
    }

    /// What the simulated previous card has printed on it; `None` with a real reader.
    pub fn sim_card(&self) -> Option<IdentityPage> {
        self.devices.id_card.printed()
    }

    /// Open the citizen's previous card with `key` and read its identity page. The officer's
    /// badge reader is never looked in.
    pub fn read_previous_card(&mut self, key: &AccessKey) -> Result<IdentityPage, ChipError> {
        let exclude: Vec<String> = self
            .badges
            .inserted()
            .map(|b| b.reader.clone())
            .into_iter()
            .collect();
        let t = std::time::Instant::now();
        let read = self.devices.id_card.read(key, &exclude);
        match &read {
            Ok(page) => {
                tracing::info!(
                    "previous card {} read from its chip in {} ms",
                    page.document_number,
                    t.elapsed().as_millis()
                );
                self.previous_card = Some(page.clone());
                if let Some(j) = self.journal.as_mut() {
                    j.previous_card_mrz = page.try_to_mrz().ok();
                }
                self.keep();
            }
            Err(e) => tracing::warn!("previous card not read: {e}"),
        }
        read
    }

    /// The chip's MRZ for the record, when the card number the form carries is the chip's (an
    /// officer who typed another number afterwards gets no chip evidence in the record).
    fn chip_evidence(
        &self,
        demographics: &serde_json::Map<String, serde_json::Value>,
    ) -> Option<String> {
        let page = self.previous_card.as_ref()?;
        let typed = demographics.get("previous_card_number")?.as_str()?;
        if typed.trim() != page.document_number {
            tracing::warn!(
                "the previous card number was changed after the chip was read: the record keeps \
                 no chip evidence"
            );
            return None;
        }
        page.try_to_mrz().ok()
    }

    /// Whether badges come and go by themselves (card badges), so the reader must be polled.
    pub fn polls_badges(&self) -> bool {
        self.badges.source() == super::badges::BadgeSource::Card
    }

    /// Look at the badge reader; a badge pulled out logs the officer out here and now.
    pub fn poll_badge(&mut self) -> Option<BadgeChange> {
        let change = self.badges.poll();
        if matches!(change, Some(BadgeChange::Removed)) && self.badge.is_some() {
            tracing::info!("badge removed: officer logged out");
            self.logout();
        }
        change
    }

    /// Unlock the officer's badge with `pin`, register it and audit the login.
    pub fn login(&mut self, officer: &str, pin: &str) -> Result<String, UnlockError> {
        let mut badge = self.badges.unlock(officer, pin)?;
        self.hold_writer()?;
        self.station.login(&badge)?;
        let name = badge.officer_name();
        // The badge's one signature of this PIN entry gives the key of its drafts.
        self.draft_key = match super::draft::DraftKey::derive(&mut badge, self.station.station_id())
        {
            Ok(key) => Some(key),
            Err(e) => {
                tracing::error!("no draft key from the badge: this session keeps no draft: {e}");
                None
            }
        };
        self.badge = Some(badge);
        Ok(name)
    }

    /// Badge removed or idle: forget the badge and the enrolment in progress. Its draft stays
    /// on disk, sealed, for the same officer's next login.
    pub fn logout(&mut self) {
        self.badge = None;
        self.draft_key = None;
        self.enrolment = None;
        self.journal = None;
        self.last_frame = None;
        self.previous_card = None;
    }

    /// Save the enrolment in progress as the kiosk's draft. A failure is logged, not returned:
    /// the capture it follows has succeeded and stays in memory.
    fn keep(&mut self) {
        let (Some(key), Some(journal), Some(e), Some(badge)) = (
            self.draft_key.as_ref(),
            self.journal.as_ref(),
            self.enrolment.as_ref(),
            self.badge.as_ref(),
        ) else {
            return;
        };
        let header = super::draft::Header {
            officer: badge.officer_id(),
            station: self.station.station_id().to_string(),
            saved_ms: crate::now_ms(),
            step: super::draft::step_code(e.step()),
        };
        let t = std::time::Instant::now();
        match super::draft::save(&self.dir.0, key, &header, journal) {
            Ok(()) => tracing::debug!("draft kept in {} ms", t.elapsed().as_millis()),
            Err(e) => tracing::error!("the enrolment in progress is not kept as a draft: {e:#}"),
        }
    }

    /// Remove the kiosk's draft and audit why.
    fn drop_draft(&mut self, header: &super::draft::Header, why: &str) {
        if let Err(e) = super::draft::remove(&self.dir.0) {
            tracing::error!("cannot remove the draft: {e:#}");
            return;
        }
        let actor = self
            .badge
            .as_ref()
            .map_or_else(|| "kiosk".to_string(), |b| b.officer_id());
        let detail = serde_json::json!({"officer": header.officer, "saved_ms": header.saved_ms,
                                        "step": header.step, "why": why});
        if let Err(e) = self.station.audit("draft-discarded", &actor, detail) {
            tracing::error!("draft discarded but not audited: {e:#}");
        }
        tracing::info!("draft of {} discarded ({why})", header.officer);
    }

    /// The kiosk's draft as the home screen offers it; one older than a day is discarded.
    pub fn draft(&mut self) -> Option<DraftInfo> {
        let header = match super::draft::header(&self.dir.0) {
            Ok(h) => h?,
            Err(e) => {
                tracing::error!("unreadable draft: {e:#}");
                return None;
            }
        };
        if crate::now_ms() - header.saved_ms > super::draft::MAX_AGE_MS {
            self.drop_draft(&header, "older than 24 hours");
            return None;
        }
        let me = self.badge.as_ref().map(|b| b.officer_id());
        Some(DraftInfo {
            mine: me.as_deref() == Some(header.officer.as_str())
                && header.station == self.station.station_id(),
            saved_ms: header.saved_ms,
            step: header.step(),
        })
    }

    /// Take up the kept enrolment again, at the step it was at, without capturing anything
    /// again. Only the officer whose badge made it can (its key opens it).
    pub fn resume_draft(&mut self) -> anyhow::Result<Resumed> {
        let badge = self.badge.as_ref().ok_or(SessionError::NotLoggedIn)?;
        let officer = badge.officer_id();
        let key = self.draft_key.as_ref().ok_or(SessionError::NoDraft)?;
        let header = super::draft::header(&self.dir.0)?.ok_or(SessionError::NoDraft)?;
        if header.officer != officer {
            return Err(SessionError::NoDraft.into());
        }
        let (_, journal) = super::draft::open(&self.dir.0, key)?;
        let replayed = journal.replay(self.policy.clone(), &self.station.schema)?;
        let kind = replayed
            .enrolment
            .kind()
            .or_else(|| journal.kind.as_deref().and_then(|k| k.parse().ok()))
            .unwrap_or(EnrolmentKind::New);
        let step = replayed.enrolment.step();
        self.previous_card = journal
            .previous_card_mrz
            .as_deref()
            .and_then(|m| IdentityPage::from_mrz(m).ok());
        self.enrolment = Some(replayed.enrolment);
        self.last_frame = None;
        let resumed = Resumed {
            kind,
            form: journal.form_values(),
            fingers: replayed.fingers,
            face_quality: replayed.face_quality,
            step,
        };
        self.journal = Some(journal);
        let detail = serde_json::json!({"saved_ms": header.saved_ms, "step": header.step});
        self.station.audit("draft-resumed", &officer, detail)?;
        tracing::info!("draft resumed at {step:?}");
        Ok(resumed)
    }

    /// The officer discards the kept enrolment (theirs, or another officer's they cannot see).
    pub fn discard_draft(&mut self) -> anyhow::Result<()> {
        self.badge.as_ref().ok_or(SessionError::NotLoggedIn)?;
        if let Some(header) = super::draft::header(&self.dir.0)? {
            self.drop_draft(&header, "discarded by the officer");
        }
        Ok(())
    }

    /// The form as typed so far (idle logout, Cancel): kept in the draft.
    pub fn keep_form(&mut self, data: serde_json::Map<String, serde_json::Value>) {
        if let Some(j) = self.journal.as_mut() {
            j.typed = Some(data);
            self.keep();
        }
    }

    pub fn home(&mut self) -> anyhow::Result<HomeStats> {
        let store = &self.station.view.store;
        let counts = store.counts()?;
        let day_start = crate::now_ms() / 86_400_000 * 86_400_000;
        let today = store
            .envelopes()?
            .iter()
            .filter(|e| e.created_ms >= day_start)
            .count() as u64;
        let last_sync_ms = store.peers()?.iter().filter_map(|p| p.1).max();
        let draft = self.draft();
        let roster = self
            .station
            .view
            .roster_age(&self.station.roster_policy, crate::now_ms())
            .unwrap_or_else(|e| {
                tracing::warn!(error = %e, "home: the roster cannot be read");
                None
            });
        Ok(HomeStats {
            draft,
            roster,
            today,
            records: counts.records,
            unsent: counts.unsent,
            unacknowledged: counts.records - counts.acknowledged,
            last_sync_ms,
            free_disk_mb: free_disk_mb(&self.dir.0),
        })
    }

    fn enrolment(&mut self) -> anyhow::Result<&mut Enrolment> {
        self.enrolment
            .as_mut()
            .ok_or_else(|| SessionError::NoEnrolment.into())
    }

    pub fn step(&self) -> Option<Step> {
        self.enrolment.as_ref().map(Enrolment::step)
    }

    pub fn start(&mut self) -> anyhow::Result<()> {
        if self.badge.is_none() {
            return Err(SessionError::NotLoggedIn.into());
        }
        self.station.roster_gate()?;
        // At most one draft per kiosk: a new citizen replaces the kept one.
        if let Ok(Some(header)) = super::draft::header(&self.dir.0) {
            self.drop_draft(&header, "a new enrolment was started");
        }
        let now = crate::now_ms();
        self.enrolment = Some(Enrolment::new(self.policy.clone(), now));
        self.journal = Some(super::draft::Journal::new(now));
        self.last_frame = None;
        self.previous_card = None;
        Ok(())
    }

    /// The officer leaves the enrolment: it stays kept as the draft, to resume from home.
    pub fn cancel(&mut self) {
        self.enrolment = None;
        self.journal = None;
        self.last_frame = None;
        self.previous_card = None;
    }

    pub fn identify(&mut self, kind: EnrolmentKind) -> anyhow::Result<Step> {
        let e = self.enrolment()?;
        e.identify(kind)?;
        let step = e.step();
        if let Some(j) = self.journal.as_mut() {
            j.kind = Some(kind.as_str().to_string());
            j.kind_cleared = false;
        }
        self.keep();
        Ok(step)
    }

    /// Hand the form's data to the workflow; the schema's complaints come back field by field.
    pub fn demographics(
        &mut self,
        data: serde_json::Map<String, serde_json::Value>,
    ) -> anyhow::Result<Result<Step, Vec<FieldError>>> {
        let schema = self.station.schema.clone();
        let e = self.enrolment()?;
        match e.set_demographics(&schema, data.clone()) {
            Ok(()) => {
                let step = e.step();
                if let Some(j) = self.journal.as_mut() {
                    j.demographics = Some(data);
                    j.demographics_cleared = false;
                    j.typed = None;
                }
                self.keep();
                Ok(Ok(step))
            }
            Err(WorkflowError::Invalid(errors)) => Ok(Err(errors)),
            Err(other) => Err(other.into()),
        }
    }

    /// One preview frame from the camera, judged by the station's face analyzer (also kept as
    /// the candidate for capture).
    pub fn preview(&mut self) -> Result<Frame, CaptureError> {
        let raw = self.devices.camera.frame()?;
        let (quality, passed, advice) = match FaceAnalyzer::shared().analyze(&raw) {
            Ok(report) => (
                report.score,
                report.passed(),
                report.first_failure().map_or("", |c| c.advice),
            ),
            Err(e) => {
                tracing::warn!("preview frame not judged: {e}");
                (0, false, "")
            }
        };
        let frame = Frame {
            width: raw.width,
            height: raw.height,
            rgb: raw.rgb.clone(),
            quality,
            passed,
            advice,
        };
        self.last_frame = Some(raw);
        Ok(frame)
    }

    pub fn face_min_quality(&self) -> u8 {
        self.policy.face_min_quality
    }

    /// Offer the last preview frame as the face photo.
    pub fn capture_face(&mut self) -> anyhow::Result<FaceResult> {
        let frame = self.last_frame.take().ok_or(SessionError::NoPicture)?;
        // The workflow judges the photo again and keeps the token image cut from it.
        let photo = FaceCapture {
            image: frame.to_jpeg()?,
            quality: 0,
            captured_at_ms: frame.captured_at_ms,
        };
        // The same judgement the workflow makes (`Outcome::Accepted` carries no score), to
        // show the score of the photo kept rather than the preview's.
        let quality = crate::enrolment::workflow::assess_face(photo.clone()).quality;
        let offer = super::draft::FaceOffer::of(&photo);
        let e = self.enrolment()?;
        let outcome = e.offer_face(photo)?;
        let step = e.step();
        if let Some(j) = self.journal.as_mut() {
            j.face.push(offer);
        }
        self.keep();
        Ok(FaceResult {
            outcome,
            quality,
            step,
        })
    }

    pub fn next_finger(&self) -> Option<FingerPosition> {
        self.enrolment.as_ref().and_then(Enrolment::next_finger)
    }

    /// Capture the next finger the workflow asks for.
    pub fn capture_finger(&mut self) -> anyhow::Result<FingerResult> {
        let position = self.next_finger().ok_or(SessionError::NoFingerLeft)?;
        let capture = self.devices.scanner.capture(position)?;
        let thumb = thumbnail(&capture.image, 4);
        // The same judgement the workflow makes, to show the score of this very attempt.
        let quality = tasjil_drivers::quality::finger_quality(&capture.image).score;
        let event = super::draft::FingerEvent::offer(&capture);
        let outcome = self.enrolment()?.offer_finger(capture)?;
        if let Some(j) = self.journal.as_mut() {
            j.fingers.push(event);
        }
        self.keep();
        Ok(FingerResult {
            position,
            outcome,
            quality,
            thumb,
        })
    }

    pub fn finger_exception(&mut self, reason: ExceptionReason) -> anyhow::Result<FingerPosition> {
        let position = self.next_finger().ok_or(SessionError::NoFingerLeft)?;
        let exception = FingerException { position, reason };
        self.enrolment()?.finger_exception(exception.clone())?;
        if let Some(j) = self.journal.as_mut() {
            j.fingers
                .push(super::draft::FingerEvent::Exception(exception));
        }
        self.keep();
        Ok(position)
    }

    /// The strokes drawn on the screen's pad: points `(x, y, t_ms)` in pad units, `t_ms` since
    /// the signature's first pen-down (the adapter timestamps each pointer event). The touch
    /// screen reports no pressure: points carry the middle value, which draws an even line.
    pub fn signature(
        &mut self,
        width: u16,
        height: u16,
        strokes: Vec<Vec<(u16, u16, u32)>>,
    ) -> anyhow::Result<Step> {
        let strokes = strokes
            .into_iter()
            .map(|points| Stroke {
                points: points
                    .into_iter()
                    .map(|(x, y, t_ms)| PenPoint {
                        x: x.min(width.saturating_sub(1)),
                        y: y.min(height.saturating_sub(1)),
                        t_ms,
                        pressure: 128,
                    })
                    .collect(),
            })
            .collect();
        let capture = SignatureCapture::render(width, height, strokes, crate::now_ms())?;
        let kept = super::draft::SignatureDraft::of(&capture);
        let e = self.enrolment()?;
        e.offer_signature(capture)?;
        let step = e.step();
        if let Some(j) = self.journal.as_mut() {
            j.signature = Some(kept);
        }
        self.keep();
        Ok(step)
    }

    pub fn retake(&mut self, step: Step) -> anyhow::Result<Step> {
        let e = self.enrolment()?;
        e.retake(step);
        let now = e.step();
        if let Some(j) = self.journal.as_mut() {
            j.retake(step);
        }
        self.keep();
        Ok(now)
    }

    /// What is about to be signed, for the review screen.
    pub fn review(&self) -> anyhow::Result<Review> {
        let e = self.enrolment.clone().ok_or(SessionError::NoEnrolment)?;
        let done = e.finish(crate::now_ms())?;
        let previous_card_from_chip = self.chip_evidence(&done.demographics).is_some();
        Ok(Review {
            previous_card_from_chip,
            kind: done.kind,
            demographics: done.demographics,
            face_jpeg: done.face.image.jpeg,
            fingers: done
                .fingers
                .iter()
                .map(|f| (f.position, f.quality))
                .collect(),
            exceptions: done
                .exceptions
                .iter()
                .map(|x| (x.position, format!("{:?}", x.reason).to_lowercase()))
                .collect(),
            below_threshold: done.below_threshold,
            signature_png: done.signature.png,
        })
    }

    /// The officer confirms with the badge PIN: seal, co-sign with the badge, sign and commit.
    /// Returns only once the record is durably stored.
    pub fn confirm(&mut self, pin: &str) -> anyhow::Result<Receipt> {
        let badge = self.badge.as_ref().ok_or(SessionError::NotLoggedIn)?;
        let officer = badge.officer_id();
        // The co-signature needs the PIN again: the card grants one signature per PIN entry.
        let mut badge = self.badges.unlock(&officer, pin)?;
        let e = self.enrolment.clone().ok_or(SessionError::NoEnrolment)?;
        let mut done = e.finish(crate::now_ms())?;
        done.previous_card_mrz = self.chip_evidence(&done.demographics);
        let committed = self.station.commit(&done, &mut badge)?;
        self.enrolment = None;
        self.journal = None;
        self.previous_card = None;
        // Committed: the draft has done its work.
        if let Err(e) = super::draft::remove(&self.dir.0) {
            tracing::error!("committed, but the draft stays on disk: {e:#}");
        }
        Ok(Receipt {
            committed,
            station: self.station.station_id().to_string(),
            officer,
            at_ms: done.finished_ms,
        })
    }
}

/// Shrink a grey image by `factor` (box filter), for thumbnails.
fn thumbnail(img: &tasjil_drivers::GreyImage, factor: u32) -> (u32, u32, Vec<u8>) {
    let (w, h) = (img.width / factor, img.height / factor);
    let mut out = Vec::with_capacity((w * h) as usize);
    for y in 0..h {
        for x in 0..w {
            let mut sum = 0u32;
            for dy in 0..factor {
                for dx in 0..factor {
                    sum += u32::from(
                        img.pixels[((y * factor + dy) * img.width + x * factor + dx) as usize],
                    );
                }
            }
            out.push((sum / (factor * factor)) as u8);
        }
    }
    (w, h, out)
}

/// Free space of the file system holding `path`, in MB.
fn free_disk_mb(path: &std::path::Path) -> Option<u64> {
    let out = std::process::Command::new("df")
        .args(["-Pk"])
        .arg(path)
        .output()
        .ok()?;
    let text = String::from_utf8(out.stdout).ok()?;
    let kb: u64 = text
        .lines()
        .nth(1)?
        .split_whitespace()
        .nth(3)?
        .parse()
        .ok()?;
    Some(kb / 1024)
}

impl Session {
    /// Write a rendered receipt as `DATA_DIR/receipts/<id>.png` (for the printer).
    pub fn save_receipt(
        &self,
        id: &str,
        width: u32,
        height: u32,
        rgba: &[u8],
    ) -> anyhow::Result<std::path::PathBuf> {
        if !id.chars().all(|c| c.is_ascii_alphanumeric()) {
            bail!("receipt id {id:?} is not an enrolment id");
        }
        let dir = self.dir.0.join("receipts");
        std::fs::create_dir_all(&dir)
            .with_context(|| format!("cannot create {}", dir.display()))?;
        let path = dir.join(format!("{id}.png"));
        let img = image::RgbaImage::from_raw(width, height, rgba.to_vec())
            .context("receipt image has the wrong size")?;
        img.save_with_format(&path, image::ImageFormat::Png)
            .with_context(|| format!("cannot write {}", path.display()))?;
        self.save_receipt_pdf(id, &img, &dir.join(format!("{id}.pdf")))?;
        Ok(path)
    }

    /// The printable récépissé next to the PNG: the record's facts as text and QR code, and
    /// the rendered receipt as an image (`crate::receipt_pdf`).
    fn save_receipt_pdf(
        &self,
        id: &str,
        rendered: &image::RgbaImage,
        path: &std::path::Path,
    ) -> anyhow::Result<()> {
        let rows = self.station.view.store.envelopes()?;
        let row = rows
            .iter()
            .find(|r| r.id == id)
            .with_context(|| format!("no record {id} on this station: no receipt to print"))?;
        let station = self.station.station_id();
        let rgb = image::DynamicImage::ImageRgba8(rendered.clone()).into_rgb8();
        let pdf = crate::receipt_pdf::render(&crate::receipt_pdf::ReceiptPage {
            id,
            seq: row.seq as u64,
            date: &super::adapter::format_utc(row.created_ms),
            station,
            officer: &row.officer,
            qr: &format!("TASJIL:{station}:{}:{id}", row.seq),
            image: Some((rgb.width(), rgb.height(), rgb.as_raw())),
        })?;
        tasjil_sync::bundle::write_atomically(path, &pdf)
            .with_context(|| format!("cannot write {}", path.display()))?;
        Ok(())
    }
}

/// A station in a temporary directory, for tests of the kiosk.
#[cfg(test)]
pub(crate) fn test_station() -> (tempfile::TempDir, DataDir) {
    let (tmp, dir, _) = test_station_with_centre();
    (tmp, dir)
}

/// A station, and the centre's keys that open its payloads.
#[cfg(test)]
pub(crate) fn test_station_with_centre() -> (tempfile::TempDir, DataDir, tasjil_sync::CentreKeys) {
    let tmp = tempfile::tempdir().unwrap();
    let centre = tasjil_sync::CentreKeys::generate();
    let centre_pub = tmp.path().join("centre.pub");
    std::fs::write(&centre_pub, centre.public().to_json()).unwrap();
    let dir = DataDir(tmp.path().join("station"));
    crate::station::init(&dir, "VAN-TEST-1", &centre_pub, true).unwrap();
    (tmp, dir, centre)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::station::View;

    fn session(dir: &DataDir) -> (Session, Arc<AtomicBool>) {
        let (devices, plug) = super::super::simulated_devices(3);
        let badges = Badges::new(super::super::badges::BadgeSource::Simulated);
        (Session::open(dir, devices, badges).unwrap(), plug)
    }

    #[test]
    fn a_complete_enrolment_through_the_kiosk_controller_is_committed_and_verifies() {
        let (_tmp, dir, centre) = test_station_with_centre();
        let (mut s, _plug) = session(&dir);
        assert!(s.start().is_err(), "no enrolment before login");
        assert!(s.login("OFF-9", "000000").is_err());
        s.login("OFF-9", crate::enrolment::badge::SIM_PIN).unwrap();
        s.start().unwrap();
        assert_eq!(
            s.identify(EnrolmentKind::Renewal).unwrap(),
            Step::Demographics
        );
        // The schema's verdict comes back field by field: a renewal needs the previous card.
        let mut data = crate::schema::simulated_demographics(3, "renewal");
        let previous = data.remove("previous_card_number").unwrap();
        let errors = s.demographics(data.clone()).unwrap().unwrap_err();
        assert!(errors.iter().any(|e| e.field == "previous_card_number"));
        data.insert("previous_card_number".into(), previous);
        // The previous card was read through its chip (the simulated card of the same citizen).
        let card = crate::devices::simulated_card(3);
        let key = tasjil_drivers::emrtd::AccessKey::new(
            &card.document_number,
            &card.birth_date,
            &card.expiry_date,
        )
        .unwrap();
        let read = s.read_previous_card(&key).unwrap();
        assert_eq!(read.document_number, data["previous_card_number"]);
        assert_eq!(s.demographics(data).unwrap().unwrap(), Step::Face);
        let refused = s.capture_face().unwrap_err();
        assert_eq!(
            refused.downcast_ref::<SessionError>(),
            Some(&SessionError::NoPicture),
            "no picture before the preview"
        );
        while s.step() == Some(Step::Face) {
            let frame = s.preview().unwrap();
            assert_eq!(frame.rgb.len() as u32, frame.width * frame.height * 3);
            let face = s.capture_face().unwrap();
            // The quality shown with an accepted photo is the kept photo's, never 0.
            if face.outcome == Outcome::Accepted {
                assert!(face.shown_quality() >= s.face_min_quality(), "{face:?}");
            }
        }
        s.finger_exception(ExceptionReason::Injured).unwrap();
        while s.next_finger().is_some() {
            let r = s.capture_finger().unwrap();
            assert!(r.thumb.0 > 0 && r.thumb.2.len() as u32 == r.thumb.0 * r.thumb.1);
        }
        assert_eq!(s.step(), Some(Step::Signature));
        assert!(
            s.signature(300, 100, vec![vec![]]).is_err(),
            "an empty signature is refused"
        );
        let strokes = vec![
            vec![(10, 50, 0), (60, 20, 40), (120, 80, 90)],
            vec![(200, 40, 110)],
        ];
        assert!(
            s.signature(300, 100, strokes.clone()).is_err(),
            "a signature drawn in 110 ms is a swipe"
        );
        let slow: Vec<Vec<(u16, u16, u32)>> = strokes
            .into_iter()
            .map(|st| st.into_iter().map(|(x, y, t)| (x, y, t * 4)).collect())
            .collect();
        let step = s.signature(300, 100, slow).unwrap();
        assert_eq!(step, Step::Review);
        let review = s.review().unwrap();
        assert!(review.previous_card_from_chip);
        assert_eq!(review.exceptions.len(), 1);
        assert_eq!(review.fingers.len(), 9);
        assert!(
            s.confirm("999999").is_err(),
            "the co-signature needs the right PIN"
        );
        let receipt = s.confirm(crate::enrolment::badge::SIM_PIN).unwrap();
        assert_eq!(receipt.committed.seq, 1);
        assert_eq!(s.step(), None, "the enrolment is closed once committed");
        let home = s.home().unwrap();
        assert_eq!((home.records, home.today, home.unsent), (1, 1, 1));

        let report = crate::verify::verify(&View::open(&dir).unwrap()).unwrap();
        assert!(report.ok, "{:?}", report.problems);
        assert_eq!(report.valid, 1);
        let rows = View::open(&dir).unwrap().store.envelopes().unwrap();
        assert_eq!(rows[0].id, receipt.committed.id);
        assert_eq!(rows[0].officer, "OFF-9");
        assert_eq!(rows[0].kind, "renewal");
        // The sealed payload carries the chip's MRZ, which only the centre can open.
        let sealed = View::open(&dir)
            .unwrap()
            .store
            .payload(&rows[0].payload)
            .unwrap()
            .unwrap();
        let payload = tasjil_sync::Payload::open(&sealed, &centre.identity).unwrap();
        let evidence = payload.previous_card.expect("chip evidence in the record");
        assert_eq!(evidence.source, "chip-bac");
        assert_eq!(evidence.mrz, card.try_to_mrz().unwrap());
    }

    #[test]
    fn an_unplugged_camera_fails_as_disconnected_and_works_again_when_plugged() {
        let (_tmp, dir) = test_station();
        let (mut s, plug) = session(&dir);
        s.login("OFF-9", crate::enrolment::badge::SIM_PIN).unwrap();
        s.start().unwrap();
        s.identify(EnrolmentKind::New).unwrap();
        s.demographics(crate::schema::simulated_demographics(3, "new"))
            .unwrap()
            .unwrap();
        plug.store(false, Ordering::SeqCst);
        assert!(matches!(s.preview(), Err(CaptureError::Disconnected(_))));
        assert!(s.capture_face().is_err());
        assert_eq!(s.step(), Some(Step::Face), "the enrolment is still there");
        plug.store(true, Ordering::SeqCst);
        s.preview().unwrap();
        s.capture_face().unwrap();
    }

    fn contains(haystack: &[u8], needle: &[u8]) -> bool {
        !needle.is_empty() && haystack.windows(needle.len()).any(|w| w == needle)
    }

    fn audited(dir: &DataDir, action: &str) -> bool {
        let rows = View::open(dir).unwrap().store.audit_rows().unwrap();
        rows.iter()
            .any(|r| contains(&r.entry, format!("\"{action}\"").as_bytes()))
    }

    /// Face taken, three fingers scanned: what the first session gave, from its journal.
    fn face_and_three_fingers(s: &mut Session) -> super::super::draft::Journal {
        s.start().unwrap();
        s.identify(EnrolmentKind::New).unwrap();
        s.demographics(crate::schema::simulated_demographics(3, "new"))
            .unwrap()
            .unwrap();
        while s.step() == Some(Step::Face) {
            s.preview().unwrap();
            s.capture_face().unwrap();
        }
        for _ in 0..3 {
            s.capture_finger().unwrap();
        }
        s.journal.clone().unwrap()
    }

    #[test]
    fn a_draft_on_disk_holds_nothing_of_the_citizen_in_plaintext() {
        use super::super::draft::{self, FingerEvent};
        let (_tmp, dir) = test_station();
        let (mut s, _plug) = session(&dir);
        s.login("OFF-9", crate::enrolment::badge::SIM_PIN).unwrap();
        let journal = face_and_three_fingers(&mut s);
        let bytes = std::fs::read(draft::path(&dir.0)).unwrap();
        let data = crate::schema::simulated_demographics(3, "new");
        let mut checked = 0;
        for (field, value) in &data {
            if let Some(v) = value.as_str().filter(|v| v.chars().count() >= 4) {
                assert!(
                    !contains(&bytes, v.as_bytes()),
                    "{field} {v:?} in plaintext"
                );
                checked += 1;
            }
        }
        assert!(checked >= 4, "names and places checked: {checked}");
        let mut images: Vec<Vec<u8>> = journal
            .face
            .iter()
            .map(|f| draft::unb64(&f.jpeg).unwrap())
            .collect();
        for e in &journal.fingers {
            if let FingerEvent::Offer { pixels, .. } = e {
                images.push(draft::unb64(pixels).unwrap());
            }
        }
        assert!(images.len() >= 4, "a face and three fingers");
        for img in &images {
            let mid = img.len() / 2;
            assert!(
                !contains(&bytes, &img[mid..mid + 64]),
                "image bytes in plaintext"
            );
            use base64::Engine;
            let start = base64::engine::general_purpose::STANDARD.encode(&img[..60]);
            assert!(
                !contains(&bytes, start.as_bytes()),
                "image base64 in plaintext"
            );
        }
        // What can be read without the key: whose draft, when, at which step.
        let header = draft::header(&dir.0).unwrap().unwrap();
        assert_eq!(header.officer, "OFF-9");
        assert_eq!(header.step(), Step::Fingers);
    }

    #[test]
    fn an_enrolment_left_at_the_fingers_is_resumed_after_a_restart_and_committed_with_the_same_captures(
    ) {
        use super::super::draft::{self, FingerEvent};
        let (_tmp, dir, centre) = test_station_with_centre();
        let pin = crate::enrolment::badge::SIM_PIN;
        let (mut s, _plug) = session(&dir);
        s.login("OFF-9", pin).unwrap();
        let journal = face_and_three_fingers(&mut s);
        // Idle logout, then the kiosk restarts (power cut): a new session over the same store.
        s.logout();
        drop(s);
        let (mut s, _plug) = session(&dir);
        let offered = s.draft().expect("the draft is offered after a restart");
        assert!(!offered.mine, "nobody logged in: nobody's draft to resume");
        assert!(s.resume_draft().is_err());
        // Another officer sees that a draft is kept, cannot open it, can only discard it.
        s.login("OFF-2", pin).unwrap();
        assert!(!s.draft().unwrap().mine);
        assert!(s.resume_draft().is_err());
        s.logout();
        // The same officer takes the same citizen up again at the fingers.
        s.login("OFF-9", pin).unwrap();
        let offered = s.draft().unwrap();
        assert!(offered.mine);
        assert_eq!(offered.step, Step::Fingers);
        let resumed = s.resume_draft().unwrap();
        assert_eq!(resumed.step, Step::Fingers);
        assert_eq!(
            resumed.form,
            crate::schema::simulated_demographics(3, "new")
        );
        assert!(resumed.face_quality.is_some());
        assert!(audited(&dir, "draft-resumed"));
        let before = resumed.fingers.len();
        assert!(before >= 1);
        let mut scans = 0;
        while s.next_finger().is_some() {
            s.capture_finger().unwrap();
            scans += 1;
        }
        assert!(
            scans <= 3 * (10 - before),
            "no finger done before is scanned again"
        );
        let slow = vec![
            vec![(10, 50, 0), (60, 20, 160), (120, 80, 360)],
            vec![(200, 40, 440), (260, 60, 600)],
        ];
        assert_eq!(s.signature(300, 100, slow).unwrap(), Step::Review);
        let receipt = s.confirm(pin).unwrap();
        assert_eq!(
            draft::header(&dir.0).unwrap(),
            None,
            "committed: draft gone"
        );

        // The record holds the photo and the prints taken before the logout.
        let view = View::open(&dir).unwrap();
        let row = view.store.envelopes().unwrap();
        assert_eq!(row[0].id, receipt.committed.id);
        let sealed = view.store.payload(&row[0].payload).unwrap().unwrap();
        let payload = tasjil_sync::Payload::open(&sealed, &centre.identity).unwrap();
        let faces: Vec<Vec<u8>> = journal
            .face
            .iter()
            .map(|f| {
                crate::enrolment::workflow::assess_face(f.capture().unwrap())
                    .image
                    .jpeg
            })
            .collect();
        assert!(
            faces.contains(&payload.face.bytes),
            "the record's photo is one taken before the logout"
        );
        let mut same = 0;
        for e in &journal.fingers {
            let FingerEvent::Offer {
                position,
                width,
                height,
                ppi,
                pixels,
                ..
            } = e
            else {
                continue;
            };
            let wsq = tasjil_wsq::encode(
                &draft::unb64(pixels).unwrap(),
                *width,
                *height,
                &tasjil_wsq::EncodeOptions {
                    ppi: *ppi,
                    ..Default::default()
                },
            )
            .unwrap();
            let kept = payload
                .fingers
                .iter()
                .find(|f| f.code == position.code())
                .unwrap();
            if kept.image.bytes == wsq {
                same += 1;
            }
        }
        assert!(
            same >= 1,
            "the prints scanned before the logout are the record's"
        );
        assert_eq!(
            same, before,
            "each finger done before is the record's print"
        );
    }

    #[test]
    fn a_draft_older_than_a_day_is_discarded_and_audited() {
        use super::super::draft;
        let (_tmp, dir) = test_station();
        let (mut s, _plug) = session(&dir);
        s.login("OFF-9", crate::enrolment::badge::SIM_PIN).unwrap();
        s.start().unwrap();
        s.identify(EnrolmentKind::New).unwrap();
        let header = draft::header(&dir.0).unwrap().unwrap();
        let path = draft::path(&dir.0);
        let bytes = std::fs::read(&path).unwrap();
        let old = format!("\"saved_ms\":{}", header.saved_ms);
        let aged = format!("\"saved_ms\":{}", header.saved_ms - draft::MAX_AGE_MS - 1);
        let at = bytes
            .windows(old.len())
            .position(|w| w == old.as_bytes())
            .unwrap();
        let mut rewritten = bytes[..at].to_vec();
        rewritten.extend_from_slice(aged.as_bytes());
        rewritten.extend_from_slice(&bytes[at + old.len()..]);
        std::fs::write(&path, rewritten).unwrap();
        assert_eq!(s.draft(), None);
        assert!(!path.exists());
        assert!(audited(&dir, "draft-discarded"));
    }

    #[test]
    fn logout_drops_the_enrolment_in_progress() {
        let (_tmp, dir) = test_station();
        let (mut s, _plug) = session(&dir);
        s.login("OFF-9", crate::enrolment::badge::SIM_PIN).unwrap();
        s.start().unwrap();
        s.identify(EnrolmentKind::New).unwrap();
        s.logout();
        assert_eq!(s.step(), None);
        assert!(s.start().is_err());
        assert!(s.confirm(crate::enrolment::badge::SIM_PIN).is_err());
    }
}
