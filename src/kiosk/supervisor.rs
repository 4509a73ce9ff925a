//! The supervisor's desk at the kiosk: the day's records and their states, approval with the
//! supervisor's own badge and PIN, export of a bundle to a USB stick, and import of the centre's
//! receipt from the stick. The same rules as `tasjil approve`, `tasjil export` and
//! `tasjil receipt import`: this module calls [`Station::approve`], [`bundle::export`] and
//! [`bundle::import_receipt`] and adds no rule of its own.
//!
//! No Slint types. [`run`] executes a [`Command`] on the worker thread (all store and stick
//! I/O happens there); [`PinEntry`] and [`Problem`] are the UI thread's side, tested without a
//! window. Roles are not authoritative on the station (an officer's role is whatever its badge
//! was first registered as), so the supervisor identifies at this view with their own badge and
//! PIN for every approval and export, as the commands do.

use std::path::{Path, PathBuf};

use super::badges::{Badges, UnlockError};
use crate::bundle::{self, ExportReport, Range, StickError};
use crate::enrolment::OfficerBadge;
use crate::station::Station;
use crate::store::EnvelopeRow;
use tasjil_sync::ledger::{Status, StatusEntry};

/// The simulated supervisor badge (`tasjil approve --supervisor` defaults to the same id).
pub const SIM_SUPERVISOR: &str = "SUP-SIM-1";

/// Where removable media are mounted on the station (udisks: `/media/<user>/<label>`,
/// `/run/media/<user>/<label>`; usbmount: `/media/<label>`).
pub const MEDIA_PREFIXES: [&str; 2] = ["/media/", "/run/media/"];

/// Where a record stands, as the supervisor sees it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RecordState {
    /// Committed by an officer, not yet approved: it holds back every export after it.
    AwaitingApproval,
    Approved,
    /// On a stick, waiting for the centre's receipt.
    Exported,
    /// Sent over the network, waiting for the centre's answer.
    Sent,
    Acknowledged,
    Rejected,
    /// The centre accepted it for card production.
    Accepted,
    /// The card was produced.
    Issued,
    /// The centre needs the citizen enrolled again (the reason says why): call them back.
    Reenrol,
    /// Put on hold by a supervisor (not approved; the reason says why).
    OnHold,
    /// Rejected by a supervisor at the station: its payload never leaves the station.
    Withdrawn,
}

impl RecordState {
    /// From a store row: the centre's issuance status once it set one, else the status column.
    pub fn of(row: &EnvelopeRow) -> RecordState {
        match row.issuance.as_deref() {
            Some("reenrol") => RecordState::Reenrol,
            Some("issued") => RecordState::Issued,
            Some("accepted") => RecordState::Accepted,
            _ => RecordState::from_status(row.status),
        }
    }

    /// From the store's status column (`crate::store::EnvelopeRow::status`).
    pub fn from_status(status: &str) -> RecordState {
        match status {
            "approved" => RecordState::Approved,
            "exported" => RecordState::Exported,
            "sent" => RecordState::Sent,
            "acknowledged" => RecordState::Acknowledged,
            "rejected" => RecordState::Rejected,
            _ => RecordState::AwaitingApproval,
        }
    }

    /// The code the view translates (`SupervisorTr.state`).
    pub fn code(self) -> &'static str {
        match self {
            RecordState::AwaitingApproval => "awaiting",
            RecordState::Approved => "approved",
            RecordState::Exported => "exported",
            RecordState::Sent => "sent",
            RecordState::Acknowledged => "acknowledged",
            RecordState::Rejected => "rejected",
            RecordState::Accepted => "accepted",
            RecordState::Issued => "issued",
            RecordState::Reenrol => "reenrol",
            RecordState::OnHold => "held",
            RecordState::Withdrawn => "withdrawn",
        }
    }

    /// Not yet at the centre (or the centre's answer not yet back).
    pub fn unsent(self) -> bool {
        matches!(
            self,
            RecordState::AwaitingApproval | RecordState::Approved | RecordState::Exported
        )
    }
}

/// One record on the supervisor's list (never demographics).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RecordLine {
    pub seq: i64,
    pub id: String,
    pub kind: String,
    pub officer: String,
    pub created_ms: i64,
    pub state: RecordState,
    /// Why the centre rejected it, or why an export holds it back.
    pub reason: Option<String>,
    /// What the envelope says of the capture (the station cannot open the sealed payload).
    pub quality: QualityLine,
    /// The supervisor who held or rejected it.
    pub reviewed_by: Option<String>,
}

/// The envelope's quality summary, as numbers the view words in the supervisor's language.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct QualityLine {
    pub face: u8,
    pub face_attempts: u32,
    /// Fingers captured, and the lowest and mean of their scores.
    pub fingers: usize,
    pub finger_min: u8,
    pub finger_mean: u8,
    pub exceptions: usize,
    pub below_threshold: usize,
}

impl QualityLine {
    pub fn of(envelope: &[u8]) -> QualityLine {
        let Ok(env) = tasjil_sync::Envelope::<tasjil_sync::Signed>::from_bytes(envelope) else {
            return QualityLine::default();
        };
        let q = &env.body().quality;
        let scores: Vec<u32> = q.fingers.iter().map(|f| u32::from(f.score)).collect();
        QualityLine {
            face: q.face,
            face_attempts: q.face_attempts,
            fingers: scores.len(),
            finger_min: scores.iter().min().copied().unwrap_or(0) as u8,
            finger_mean: (scores.iter().sum::<u32>() / (scores.len().max(1) as u32)) as u8,
            exceptions: q.finger_exceptions.len(),
            below_threshold: q.below_threshold.len(),
        }
    }
}

/// What the supervisor's view shows.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Overview {
    /// The day's records, then older ones still unsent or rejected; in sequence order.
    pub lines: Vec<RecordLine>,
    pub today: usize,
    pub awaiting: usize,
    pub unsent: usize,
    pub rejected: usize,
    /// Citizens to call back on the van's next visit (the centre asked for a new enrolment).
    pub reenrol: usize,
}

/// Sort the store's rows for the supervisor: today's (from `day_start_ms`), and any older one
/// the supervisor still has to act on (unsent or rejected). An export would hold back every
/// record from the first unapproved one on: those carry the reason.
pub fn overview(
    rows: &[EnvelopeRow],
    day_start_ms: i64,
    decisions: &std::collections::BTreeMap<String, StatusEntry>,
) -> Overview {
    let mut o = Overview::default();
    let mut first_awaiting: Option<(i64, String)> = None;
    for r in rows {
        let decision = decisions.get(&r.id);
        let state = match (RecordState::of(r), decision.map(|d| d.status)) {
            (RecordState::AwaitingApproval | RecordState::Approved, Some(Status::Withdrawn)) => {
                RecordState::Withdrawn
            }
            (RecordState::AwaitingApproval, Some(Status::OnHold)) => RecordState::OnHold,
            (state, _) => state,
        };
        let today = r.created_ms >= day_start_ms;
        let act_on = matches!(state, RecordState::Rejected | RecordState::Reenrol);
        if !(today || state.unsent() || act_on) {
            continue;
        }
        o.reenrol += usize::from(state == RecordState::Reenrol);
        o.today += usize::from(today);
        o.awaiting += usize::from(state == RecordState::AwaitingApproval);
        o.unsent += usize::from(state.unsent());
        o.rejected += usize::from(state == RecordState::Rejected);
        let reason = match state {
            RecordState::Rejected => r.rejected_reason.clone(),
            RecordState::Reenrol => r.issuance_reason.clone(),
            RecordState::AwaitingApproval => {
                first_awaiting.get_or_insert((r.seq, r.id.clone()));
                None
            }
            RecordState::OnHold => {
                first_awaiting.get_or_insert((r.seq, r.id.clone()));
                decision.and_then(|d| d.reason.as_deref()).map(reason_code)
            }
            RecordState::Withdrawn => decision.and_then(|d| d.reason.as_deref()).map(reason_code),
            RecordState::Approved => first_awaiting
                .as_ref()
                .map(|(seq, id)| format!("after {id} (sequence {seq}), which is not approved")),
            _ => None,
        };
        o.lines.push(RecordLine {
            seq: r.seq,
            id: r.id.clone(),
            kind: r.kind.clone(),
            officer: r.officer.clone(),
            created_ms: r.created_ms,
            state,
            reason,
            quality: QualityLine::of(&r.envelope),
            reviewed_by: decision
                .filter(|_| matches!(state, RecordState::OnHold | RecordState::Withdrawn))
                .map(|d| d.by.clone()),
        });
    }
    o
}

/// A place a bundle can go.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Target {
    pub path: PathBuf,
    /// Mounted read-only: an export there will fail; said before trying.
    pub read_only: bool,
}

/// The removable media mounted under `prefixes`, from the text of `/proc/self/mounts`.
pub fn targets_from_mounts(mounts: &str, prefixes: &[&str]) -> Vec<Target> {
    let mut out: Vec<Target> = mounts
        .lines()
        .filter_map(|line| {
            let mut fields = line.split_whitespace();
            let (_dev, point, _fs, options) = (
                fields.next()?,
                fields.next()?,
                fields.next()?,
                fields.next()?,
            );
            let point = unescape_mount(point);
            prefixes
                .iter()
                .any(|p| point.starts_with(p))
                .then(|| Target {
                    path: PathBuf::from(point),
                    read_only: options.split(',').any(|o| o == "ro"),
                })
        })
        .collect();
    out.sort_by(|a, b| a.path.cmp(&b.path));
    out.dedup_by(|a, b| a.path == b.path);
    out
}

/// `/proc/mounts` writes a space in a path as `\040` (and tab, newline, backslash likewise).
fn unescape_mount(s: &str) -> String {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'\\' && i + 4 <= bytes.len() {
            let oct = &bytes[i + 1..i + 4];
            if oct.iter().all(|b| (b'0'..=b'7').contains(b)) {
                let v = oct.iter().fold(0u32, |a, b| a * 8 + u32::from(b - b'0'));
                if let Ok(v) = u8::try_from(v) {
                    out.push(v);
                    i += 4;
                    continue;
                }
            }
        }
        out.push(bytes[i]);
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// The station's mounted removable media now.
pub fn removable_targets() -> Vec<Target> {
    match std::fs::read_to_string("/proc/self/mounts") {
        Ok(text) => targets_from_mounts(&text, &MEDIA_PREFIXES),
        Err(e) => {
            tracing::warn!("cannot read /proc/self/mounts: {e}");
            Vec::new()
        }
    }
}

/// The centre's receipts lying in `dir` (`<bundle>.receipt`), oldest name first.
pub fn receipts_in(dir: &Path) -> std::io::Result<Vec<PathBuf>> {
    let mut out = Vec::new();
    for entry in std::fs::read_dir(dir)? {
        let path = entry?.path();
        if path.is_file() && path.extension().is_some_and(|e| e == "receipt") {
            out.push(path);
        }
    }
    out.sort();
    Ok(out)
}

/// What went wrong, as the view says it. The key is translated (`SupervisorTr.problem`); the
/// detail (a path, the English message of the command) follows it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Problem {
    WrongPin,
    NoTarget,
    NotADirectory(String),
    StickFull(String),
    StickReadOnly(String),
    NoReceipt(String),
    /// Anything else: the command's own message says what to do.
    Other(String),
}

impl Problem {
    pub fn key(&self) -> &'static str {
        match self {
            Problem::WrongPin => "wrong-pin",
            Problem::NoTarget => "no-target",
            Problem::NotADirectory(_) => "not-a-directory",
            Problem::StickFull(_) => "stick-full",
            Problem::StickReadOnly(_) => "stick-read-only",
            Problem::NoReceipt(_) => "no-receipt",
            Problem::Other(_) => "failed",
        }
    }

    pub fn detail(&self) -> &str {
        match self {
            Problem::WrongPin | Problem::NoTarget => "",
            Problem::NotADirectory(d)
            | Problem::StickFull(d)
            | Problem::StickReadOnly(d)
            | Problem::NoReceipt(d)
            | Problem::Other(d) => d,
        }
    }

    /// Classify an error of the station's commands by its type, never by its words.
    pub fn of(e: &anyhow::Error) -> Problem {
        for cause in e.chain() {
            if let Some(stick) = cause.downcast_ref::<StickError>() {
                return match stick {
                    StickError::Full(p) => Problem::StickFull(p.display().to_string()),
                    StickError::ReadOnly(p) | StickError::Denied(p) => {
                        Problem::StickReadOnly(p.display().to_string())
                    }
                    StickError::Other(..) => Problem::Other(format!("{e:#}")),
                };
            }
            if let Some(io) = cause.downcast_ref::<std::io::Error>() {
                match io.kind() {
                    std::io::ErrorKind::StorageFull => return Problem::StickFull(format!("{e:#}")),
                    std::io::ErrorKind::ReadOnlyFilesystem => {
                        return Problem::StickReadOnly(format!("{e:#}"))
                    }
                    _ => {}
                }
            }
        }
        Problem::Other(format!("{e:#}"))
    }
}

/// What the supervisor asked for (sent to the worker).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Command {
    /// The records and the mounted sticks.
    Refresh,
    /// The mounted sticks only (polled while the view is open, so a stick plugged in appears).
    Targets,
    /// Approve every record awaiting approval.
    ApproveAll { supervisor: String, pin: String },
    /// Approve, hold or reject one record the supervisor opened.
    Review {
        supervisor: String,
        pin: String,
        id: String,
        verdict: Verdict,
        reason: String,
    },
    /// Write a bundle of the approved records into directory `to`.
    Export {
        supervisor: String,
        pin: String,
        to: PathBuf,
    },
    /// Import every receipt lying in directory `from`.
    ImportReceipts { from: PathBuf },
}

/// What came of it (sent back to the UI thread).
#[derive(Debug, Clone)]
pub enum Event {
    Overview(Overview),
    Targets(Vec<Target>),
    /// Bytes of the bundle written so far, of `total`.
    Progress {
        done: u64,
        total: u64,
    },
    Approved {
        supervisor: String,
        count: usize,
        /// Records awaiting approval that the supervisor enrolled themselves: another
        /// supervisor must approve them.
        own_left: usize,
    },
    Exported(ExportReport),
    /// One record approved, held or rejected.
    Reviewed {
        id: String,
        verdict: Verdict,
    },
    /// One line per receipt: `(file name, verified, rejected, already imported)`.
    ReceiptsImported(Vec<ReceiptLine>),
    Failed(Problem),
}

/// One receipt taken in.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReceiptLine {
    pub file: String,
    pub bundle_id: String,
    pub verified: u64,
    pub rejected: usize,
    pub already: bool,
}

/// Unlock the supervisor's badge: with card badges, the badge in the reader (the supervisor
/// logged in with it); with simulated ones, `supervisor`'s.
fn unlock(
    badges: &mut Badges,
    supervisor: &str,
    pin: &str,
) -> Result<Box<dyn OfficerBadge>, Problem> {
    badges
        .unlock_present(supervisor, pin)
        .map(|b| Box::new(b) as Box<dyn OfficerBadge>)
        .map_err(|e| {
            tracing::warn!("supervisor badge: {e:#}");
            match e {
                UnlockError::WrongPin { .. } => Problem::WrongPin,
                other => Problem::Other(other.to_string()),
            }
        })
}

/// Run one command against the station (on the worker thread); events go to `emit`.
pub fn run(
    station: &mut Station,
    badges: &mut Badges,
    command: Command,
    emit: &mut dyn FnMut(Event),
) {
    let result = match command {
        Command::Refresh => {
            emit(Event::Targets(removable_targets()));
            Ok(())
        }
        Command::Targets => {
            emit(Event::Targets(removable_targets()));
            return;
        }
        Command::ApproveAll { supervisor, pin } => {
            unlock(badges, &supervisor, &pin).and_then(|mut b| {
                let supervisor = b.officer_id();
                let approved = station
                    .approve(b.as_mut(), &[])
                    .map_err(|e| Problem::of(&e))?;
                tracing::info!(
                    "{} records approved by {supervisor} at the kiosk",
                    approved.len()
                );
                let own_left = station
                    .own_awaiting(&supervisor)
                    .map_err(|e| Problem::of(&e))?
                    .len();
                emit(Event::Approved {
                    supervisor,
                    count: approved.len(),
                    own_left,
                });
                Ok(())
            })
        }
        Command::Review {
            supervisor,
            pin,
            id,
            verdict,
            reason,
        } => unlock(badges, &supervisor, &pin).and_then(|mut b| {
            match verdict {
                Verdict::Approve => {
                    let done = station
                        .approve(b.as_mut(), std::slice::from_ref(&id))
                        .map_err(|e| Problem::of(&e))?;
                    if done.is_empty() {
                        return Err(Problem::Other(format!("record {id} was already approved")));
                    }
                }
                Verdict::Hold | Verdict::Reject => {
                    let decision = if verdict == Verdict::Hold {
                        crate::store::review::Decision::Hold
                    } else {
                        crate::store::review::Decision::Reject
                    };
                    station
                        .review(b.as_mut(), &id, decision, &reason)
                        .map_err(|e| Problem::of(&e))?;
                }
            }
            tracing::info!(
                "record {id}: {} by {} at the kiosk",
                verdict.code(),
                b.officer_id()
            );
            emit(Event::Reviewed { id, verdict });
            Ok(())
        }),
        Command::Export {
            supervisor,
            pin,
            to,
        } => export(station, badges, &supervisor, &pin, &to, emit),
        Command::ImportReceipts { from } => import_receipts(station, &from).map(|lines| {
            emit(Event::ReceiptsImported(lines));
        }),
    };
    if let Err(problem) = result {
        tracing::warn!("supervisor: {} {}", problem.key(), problem.detail());
        emit(Event::Failed(problem));
    }
    let decisions = station.store().station_decisions().unwrap_or_default();
    match station
        .store()
        .envelopes()
        .map(|rows| overview(&rows, crate::now_ms() / 86_400_000 * 86_400_000, &decisions))
    {
        Ok(o) => emit(Event::Overview(o)),
        Err(e) => emit(Event::Failed(Problem::Other(format!("{e:#}")))),
    }
}

fn export(
    station: &mut Station,
    badges: &mut Badges,
    supervisor: &str,
    pin: &str,
    to: &Path,
    emit: &mut dyn FnMut(Event),
) -> Result<(), Problem> {
    if to.as_os_str().is_empty() {
        return Err(Problem::NoTarget);
    }
    if !to.is_dir() {
        return Err(Problem::NotADirectory(to.display().to_string()));
    }
    let mut badge = unlock(badges, supervisor, pin)?;
    let supervisor = &badge.officer_id();
    station
        .register_supervisor(badge.as_ref())
        .map_err(|e| Problem::of(&e))?;
    // A progress event per percent at most: the UI thread draws each one.
    let mut last_pct = u64::MAX;
    let report = bundle::export(
        station,
        badge.as_mut(),
        to,
        &Range::default(),
        &mut |done, total| {
            let pct = done.saturating_mul(100).checked_div(total).unwrap_or(100);
            if pct != last_pct {
                last_pct = pct;
                emit(Event::Progress { done, total });
            }
        },
    )
    .map_err(|e| Problem::of(&e))?;
    match &report.file {
        Some(f) => tracing::info!(
            "bundle {} written by {supervisor} at the kiosk: {} records, {} bytes",
            f.display(),
            report.records,
            report.bytes
        ),
        None => tracing::info!("nothing to export ({:?})", report.held_back),
    }
    emit(Event::Exported(report));
    Ok(())
}

fn import_receipts(station: &mut Station, from: &Path) -> Result<Vec<ReceiptLine>, Problem> {
    if from.as_os_str().is_empty() {
        return Err(Problem::NoTarget);
    }
    let files = receipts_in(from)
        .map_err(|e| Problem::NotADirectory(format!("{}: {e}", from.display())))?;
    if files.is_empty() {
        return Err(Problem::NoReceipt(from.display().to_string()));
    }
    let mut lines = Vec::new();
    for file in files {
        let report = bundle::import_receipt(station, &file).map_err(|e| Problem::of(&e))?;
        tracing::info!(
            "receipt {} imported at the kiosk: {} verified, {} rejected",
            file.display(),
            report.outcome.verified,
            report.outcome.rejected.len()
        );
        lines.push(ReceiptLine {
            file: file
                .file_name()
                .map_or_else(String::new, |n| n.to_string_lossy().into_owned()),
            bundle_id: report.bundle_id,
            verified: report.outcome.verified,
            rejected: report.outcome.rejected.len(),
            already: report.outcome.already_imported,
        });
    }
    Ok(lines)
}

/// The supervisor's PIN pad: which action waits for the PIN, and the digits typed so far.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PinEntry {
    action: Option<Action>,
    digits: String,
}

/// What a PIN unlocks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Action {
    Approve,
    Export,
    /// A verdict on the record the supervisor opened.
    Review(Verdict),
}

impl Action {
    pub fn code(self) -> &'static str {
        match self {
            Action::Approve => "approve",
            Action::Export => "export",
            Action::Review(v) => v.code(),
        }
    }
}

/// The supervisor's verdict on one opened record.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    Approve,
    Hold,
    Reject,
}

impl Verdict {
    pub fn code(self) -> &'static str {
        match self {
            Verdict::Approve => "approve-one",
            Verdict::Hold => "hold",
            Verdict::Reject => "reject",
        }
    }

    pub fn from_code(code: &str) -> Option<Verdict> {
        match code {
            "approve-one" => Some(Verdict::Approve),
            "hold" => Some(Verdict::Hold),
            "reject" => Some(Verdict::Reject),
            _ => None,
        }
    }
}

/// The reasons offered for a hold or a rejection (codes; the view words them). A reason the
/// supervisor types replaces them.
pub const REASONS: [&str; 4] = ["photo", "fingers", "data", "identity"];

/// A reason back to its code when it is one of [`REASONS`] (the view words it in the
/// supervisor's language), else the reason as typed.
pub fn reason_code(reason: &str) -> String {
    REASONS
        .iter()
        .find(|code| reason_text(code) == reason)
        .map_or_else(|| reason.to_string(), |code| code.to_string())
}

/// The English words of a reason code, as the ledger and the centre keep them (the centre's
/// staff read the station's reason whatever the kiosk's language was).
pub fn reason_text(code: &str) -> String {
    match code {
        "photo" => "face photo not compliant".into(),
        "fingers" => "fingerprints unusable".into(),
        "data" => "demographic data to check".into(),
        "identity" => "identity document doubtful".into(),
        typed => typed.trim().to_string(),
    }
}

impl PinEntry {
    /// Ask for the PIN before `action`.
    pub fn ask(&mut self, action: Action) {
        self.action = Some(action);
        self.digits.clear();
    }

    pub fn cancel(&mut self) {
        self.action = None;
        self.digits.clear();
    }

    pub fn action(&self) -> Option<Action> {
        self.action
    }

    pub fn filled(&self) -> usize {
        self.digits.len()
    }

    pub fn erase(&mut self) {
        self.digits.pop();
    }

    /// One digit; once the PIN is complete, the action and the PIN (the pad closes).
    pub fn digit(&mut self, d: char) -> Option<(Action, String)> {
        let action = self.action?;
        if !d.is_ascii_digit() {
            return None;
        }
        self.digits.push(d);
        if self.digits.len() < super::login::PIN_LEN {
            return None;
        }
        self.action = None;
        Some((action, std::mem::take(&mut self.digits)))
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use crate::enrolment::badge::SIM_PIN;
    use crate::station::DataDir;

    fn row(seq: i64, status: &'static str, created_ms: i64) -> EnvelopeRow {
        EnvelopeRow {
            seq,
            id: format!("R{seq}"),
            hash: String::new(),
            officer: "OFF-1".into(),
            kind: "new".into(),
            created_ms,
            payload: String::new(),
            envelope: Vec::new(),
            approved: status != "committed",
            exported: status == "exported",
            status,
            rejected_reason: (status == "rejected").then(|| "face photo unusable".to_string()),
            issuance: None,
            issuance_reason: None,
        }
    }

    #[test]
    fn the_overview_keeps_the_day_and_what_still_needs_the_supervisor() {
        let day = 86_400_000;
        let rows = vec![
            row(1, "acknowledged", 0),   // yesterday, done: not shown
            row(2, "rejected", 10),      // yesterday, rejected: shown with its reason
            row(3, "exported", 20),      // yesterday, on a stick: shown
            row(4, "acknowledged", day), // today
            row(5, "committed", day + 1),
            row(6, "approved", day + 2),
        ];
        let o = overview(&rows, day, &Default::default());
        let seqs: Vec<i64> = o.lines.iter().map(|l| l.seq).collect();
        assert_eq!(seqs, [2, 3, 4, 5, 6]);
        assert_eq!((o.today, o.awaiting, o.unsent, o.rejected), (3, 1, 3, 1));
        assert_eq!(o.lines[0].reason.as_deref(), Some("face photo unusable"));
        assert_eq!(o.lines[3].state, RecordState::AwaitingApproval);
        // Approved but after an unapproved one: an export holds it back, and says why.
        assert!(o.lines[4].reason.as_deref().unwrap().contains("R5"));
        assert_eq!(o.lines[1].reason, None);
    }

    #[test]
    fn citizens_the_centre_needs_again_stay_on_the_list_with_its_reason() {
        let day = 86_400_000;
        let mut old = row(1, "acknowledged", 0);
        old.issuance = Some("reenrol".into());
        old.issuance_reason = Some("Photo not compliant: eyes closed".into());
        let mut issued = row(2, "acknowledged", 1);
        issued.issuance = Some("issued".into());
        let o = overview(
            &[old, issued, row(3, "committed", day)],
            day,
            &Default::default(),
        );
        assert_eq!(o.lines.iter().map(|l| l.seq).collect::<Vec<_>>(), [1, 3]);
        assert_eq!(o.reenrol, 1);
        assert_eq!(o.lines[0].state.code(), "reenrol");
        assert_eq!(
            o.lines[0].reason.as_deref(),
            Some("Photo not compliant: eyes closed")
        );
    }

    #[test]
    fn sticks_are_found_in_the_mount_table_with_their_read_only_flag() {
        let mounts = "\
/dev/vda1 / ext4 rw,relatime 0 0
/dev/sdb1 /media/agent/KINGSTON vfat rw,nosuid,nodev 0 0
/dev/sdc1 /run/media/agent/USB\\040DISK vfat ro,nosuid 0 0
/dev/sdd1 /media/BACKUP exfat rw 0 0
tmpfs /run/user/0 tmpfs rw 0 0
";
        let t = targets_from_mounts(mounts, &MEDIA_PREFIXES);
        let paths: Vec<&str> = t.iter().map(|t| t.path.to_str().unwrap()).collect();
        assert_eq!(
            paths,
            [
                "/media/BACKUP",
                "/media/agent/KINGSTON",
                "/run/media/agent/USB DISK"
            ]
        );
        assert_eq!(
            t.iter().map(|t| t.read_only).collect::<Vec<_>>(),
            [false, false, true]
        );
        assert_eq!(unescape_mount("a\\134b\\011"), "a\\b\t");
        assert_eq!(unescape_mount("trailing\\"), "trailing\\");
    }

    #[test]
    fn stick_errors_are_told_apart_by_type() {
        let full = anyhow::Error::new(StickError::Full("/media/s".into())).context("export");
        assert_eq!(Problem::of(&full), Problem::StickFull("/media/s".into()));
        let ro = anyhow::Error::new(StickError::ReadOnly("/media/s".into()));
        assert_eq!(Problem::of(&ro).key(), "stick-read-only");
        let other = anyhow::anyhow!("record R3 is damaged: run tasjil verify");
        assert_eq!(Problem::of(&other).key(), "failed");
        assert!(Problem::of(&other).detail().contains("tasjil verify"));
    }

    #[test]
    fn the_pin_pad_opens_for_one_action_and_hands_the_pin_over_once_complete() {
        let mut p = PinEntry::default();
        assert_eq!(p.digit('1'), None, "no action asked: digits are ignored");
        assert_eq!(p.filled(), 0);
        p.ask(Action::Export);
        for d in "12345".chars() {
            assert_eq!(p.digit(d), None);
        }
        p.erase();
        assert_eq!(p.filled(), 4);
        assert_eq!(p.digit('x'), None);
        assert_eq!(p.digit('5'), None);
        assert_eq!(p.digit('6'), Some((Action::Export, "123456".to_string())));
        assert_eq!(p.action(), None);
        assert_eq!(p.filled(), 0);
        p.ask(Action::Approve);
        p.digit('1');
        p.cancel();
        assert_eq!((p.action(), p.filled()), (None, 0));
    }

    /// A station with `n` committed records (simulated enrolments), for the desk's commands.
    pub(crate) fn station_with_records(n: u64) -> (tempfile::TempDir, DataDir) {
        let (tmp, dir) = super::super::session::test_station();
        commit_simulated(&dir, n, 5);
        (tmp, dir)
    }

    /// Commit `n` simulated enrolments by officer OFF-9.
    pub(crate) fn commit_simulated(dir: &DataDir, n: u64, seed: u64) {
        commit_simulated_by(dir, n, seed, "OFF-9");
    }

    /// Commit `n` simulated enrolments by `officer`.
    pub(crate) fn commit_simulated_by(dir: &DataDir, n: u64, seed: u64, officer: &str) {
        let mut station = Station::open(dir).unwrap();
        let policy = crate::config::Config::load(&dir.0).unwrap().capture;
        let mut badge = crate::enrolment::SimBadge::unlock(officer, SIM_PIN).unwrap();
        for i in 0..n {
            let done = crate::enrolment::simulate::run(
                crate::enrolment::simulate::enrolment_seed(seed, i),
                tasjil_sync::EnrolmentKind::New,
                &station.schema.clone(),
                None,
                &policy,
                crate::now_ms,
            )
            .unwrap();
            station.commit(&done, &mut badge).unwrap();
        }
    }

    fn run_all(station: &mut Station, command: Command) -> Vec<Event> {
        let mut events = Vec::new();
        let mut badges = Badges::new(super::super::badges::BadgeSource::Simulated);
        run(station, &mut badges, command, &mut |e| events.push(e));
        events
    }

    #[test]
    fn approve_needs_the_supervisor_pin_then_export_writes_a_bundle_that_verifies() {
        let (tmp, dir) = station_with_records(2);
        let mut station = Station::open(&dir).unwrap();
        let usb = tmp.path().join("usb");
        std::fs::create_dir(&usb).unwrap();

        // Nothing approved: the export writes nothing and names the record held back.
        let events = run_all(
            &mut station,
            Command::Export {
                supervisor: SIM_SUPERVISOR.into(),
                pin: SIM_PIN.into(),
                to: usb.clone(),
            },
        );
        let Some(Event::Exported(report)) = events.iter().find(|e| matches!(e, Event::Exported(_)))
        else {
            panic!("{events:?}")
        };
        assert!(report.file.is_none());
        assert!(report
            .held_back
            .as_deref()
            .unwrap()
            .contains("not approved"));
        assert_eq!(report.held_back_records, 2);

        // A wrong PIN approves nothing.
        let events = run_all(
            &mut station,
            Command::ApproveAll {
                supervisor: SIM_SUPERVISOR.into(),
                pin: "000000".into(),
            },
        );
        assert!(events
            .iter()
            .any(|e| matches!(e, Event::Failed(Problem::WrongPin))));
        let Some(Event::Overview(o)) = events.last() else {
            panic!()
        };
        assert_eq!(o.awaiting, 2);

        let events = run_all(
            &mut station,
            Command::ApproveAll {
                supervisor: SIM_SUPERVISOR.into(),
                pin: SIM_PIN.into(),
            },
        );
        assert!(events
            .iter()
            .any(|e| matches!(e, Event::Approved { count: 2, .. })));
        let Some(Event::Overview(o)) = events.last() else {
            panic!()
        };
        assert_eq!(o.awaiting, 0);

        // A path that is not a directory, then the stick.
        let events = run_all(
            &mut station,
            Command::Export {
                supervisor: SIM_SUPERVISOR.into(),
                pin: SIM_PIN.into(),
                to: usb.join("missing"),
            },
        );
        assert!(events
            .iter()
            .any(|e| matches!(e, Event::Failed(Problem::NotADirectory(_)))));
        let events = run_all(
            &mut station,
            Command::Export {
                supervisor: SIM_SUPERVISOR.into(),
                pin: SIM_PIN.into(),
                to: usb.clone(),
            },
        );
        let progress: Vec<(u64, u64)> = events
            .iter()
            .filter_map(|e| match e {
                Event::Progress { done, total } => Some((*done, *total)),
                _ => None,
            })
            .collect();
        assert!(progress.len() >= 2, "{progress:?}");
        assert!(progress.windows(2).all(|w| w[0].0 <= w[1].0));
        // The last report covers the whole bundle (its byte count includes the header).
        let (done, total) = *progress.last().unwrap();
        assert!(done >= total && total > 0, "{progress:?}");
        let Some(Event::Exported(report)) = events.iter().find(|e| matches!(e, Event::Exported(_)))
        else {
            panic!("{events:?}")
        };
        let file = report.file.clone().unwrap();
        assert_eq!(report.records, 2);
        let key = station.key().verifying_key();
        let mut reader = tasjil_sync::bundle::BundleReader::open(&file).unwrap();
        let verified = tasjil_sync::bundle::verify_bundle(&mut reader, &key, &mut |_| {}).unwrap();
        assert_eq!(verified.envelopes.len(), 2);
        assert_eq!(verified.header.manifest.supervisor.id, SIM_SUPERVISOR);
        let Some(Event::Overview(o)) = events.last() else {
            panic!()
        };
        assert!(o.lines.iter().all(|l| l.state == RecordState::Exported));

        // No receipt on the stick yet.
        let events = run_all(&mut station, Command::ImportReceipts { from: usb });
        assert!(events
            .iter()
            .any(|e| matches!(e, Event::Failed(Problem::NoReceipt(_)))));
    }

    #[cfg(unix)]
    #[test]
    fn a_read_only_stick_is_reported_as_such() {
        use std::os::unix::fs::PermissionsExt;
        let (tmp, dir) = station_with_records(1);
        let mut station = Station::open(&dir).unwrap();
        run_all(
            &mut station,
            Command::ApproveAll {
                supervisor: SIM_SUPERVISOR.into(),
                pin: SIM_PIN.into(),
            },
        );
        let usb = tmp.path().join("ro");
        std::fs::create_dir(&usb).unwrap();
        std::fs::set_permissions(&usb, std::fs::Permissions::from_mode(0o555)).unwrap();
        if std::fs::write(usb.join("probe"), b"x").is_ok() {
            // Root ignores permissions: this machine cannot make a read-only directory.
            eprintln!("\n!!!! SKIPPED a_read_only_stick_is_reported_as_such: running as root, a 0555 directory is writable !!!!\n");
            return;
        }
        let events = run_all(
            &mut station,
            Command::Export {
                supervisor: SIM_SUPERVISOR.into(),
                pin: SIM_PIN.into(),
                to: usb.clone(),
            },
        );
        assert!(
            events
                .iter()
                .any(|e| matches!(e, Event::Failed(Problem::StickReadOnly(_)))),
            "{events:?}"
        );
    }

    #[test]
    fn a_supervisor_does_not_approve_their_own_enrolments_unless_the_station_allows_it() {
        let (_tmp, dir) = station_with_records(2);
        commit_simulated_by(&dir, 1, 6, SIM_SUPERVISOR);
        let events = run_all(
            &mut Station::open(&dir).unwrap(),
            Command::ApproveAll {
                supervisor: SIM_SUPERVISOR.into(),
                pin: SIM_PIN.into(),
            },
        );
        assert!(
            events.iter().any(|e| matches!(
                e,
                Event::Approved {
                    count: 2,
                    own_left: 1,
                    ..
                }
            )),
            "{events:?}"
        );
        let mut station = Station::open(&dir).unwrap();
        let own = station.own_awaiting(SIM_SUPERVISOR).unwrap();
        assert_eq!(own.len(), 1);
        let mut badge = crate::enrolment::SimBadge::unlock(SIM_SUPERVISOR, SIM_PIN).unwrap();
        let refused = station.approve(&mut badge, &own).unwrap_err();
        assert!(
            format!("{refused:#}").contains("does not approve their own enrolments"),
            "{refused:#}"
        );
        // Another supervisor may.
        let mut other = crate::enrolment::SimBadge::unlock("SUP-2", SIM_PIN).unwrap();
        assert_eq!(station.approve(&mut other, &own).unwrap().len(), 1);
        drop(station);

        // A crew whose only supervisor enrols can allow it.
        commit_simulated_by(&dir, 1, 7, SIM_SUPERVISOR);
        std::fs::write(
            dir.0.join("config.toml"),
            "[approval]\nself_approval = true\n",
        )
        .unwrap();
        let mut station = Station::open(&dir).unwrap();
        assert!(station.own_awaiting(SIM_SUPERVISOR).unwrap().is_empty());
        assert_eq!(station.approve(&mut badge, &[]).unwrap().len(), 1);
    }

    #[test]
    fn an_officer_s_badge_neither_approves_nor_exports_until_made_a_supervisor() {
        let (_tmp, dir) = crate::kiosk::session::test_station();
        commit_simulated_by(&dir, 2, 8, "OFF-A");
        let mut station = Station::open(&dir).unwrap();
        // OFF-B logged in to enrol once: registered as an officer.
        let mut officer = crate::enrolment::SimBadge::unlock("OFF-B", SIM_PIN).unwrap();
        station.login(&officer).unwrap();
        let refused = station.approve(&mut officer, &[]).unwrap_err();
        assert!(
            format!("{refused:#}")
                .contains("OFF-B is registered at this station as an officer, not as a supervisor"),
            "{refused:#}"
        );
        let out = tempfile::tempdir().unwrap();
        let events = run_all(
            &mut station,
            Command::Export {
                to: out.path().to_path_buf(),
                supervisor: "OFF-B".into(),
                pin: SIM_PIN.into(),
            },
        );
        assert!(
            events
                .iter()
                .any(|e| matches!(e, Event::Failed(Problem::Other(why))
                if why.contains("not as a supervisor"))),
            "{events:?}"
        );
        assert_eq!(std::fs::read_dir(out.path()).unwrap().count(), 0);
        assert!(station
            .view
            .store
            .envelopes()
            .unwrap()
            .iter()
            .all(|r| !r.approved));
        // Made a supervisor (same badge key), OFF-B approves; logging in again keeps the role.
        let key = officer.public_key_hex();
        assert!(station
            .store()
            .promote_to_supervisor("OFF-B", &key)
            .unwrap());
        station.login(&officer).unwrap();
        assert_eq!(station.approve(&mut officer, &[]).unwrap().len(), 2);
    }
}
