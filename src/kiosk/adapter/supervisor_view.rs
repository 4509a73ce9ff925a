//! The supervisor view's glue (`ui/views/supervisor.slint`): binds `SupervisorAdapter` to the
//! desk controller (`crate::kiosk::supervisor`) and the worker. UI thread only; every store and
//! stick operation is a [`Command::Supervisor`] the worker runs.

use std::path::PathBuf;
use std::rc::Rc;

use slint::{ComponentHandle, ModelRc, VecModel};

use super::{format_utc, s, Kiosk};
use crate::kiosk::supervisor::{
    reason_text, Action, Command as Desk, Event, Overview, PinEntry, Problem, RecordLine, Verdict,
    SIM_SUPERVISOR,
};
use crate::kiosk::ui::*;
use crate::kiosk::worker::Command;

/// The view's state on the UI thread.
#[derive(Debug, Default)]
pub(super) struct DeskState {
    pin: PinEntry,
    /// The last outcome, kept to be said again in another language.
    outcome: Option<Said>,
    /// Records an export held back, said after the outcome.
    held: Option<Said>,
    targets_polled_ms: i64,
    /// The records last shown, to open one by id.
    lines: Vec<RecordLine>,
}

/// How often the mounted sticks are looked at again while the view is open.
const TARGETS_POLL_MS: i64 = 3_000;

/// A text of `SupervisorTr.text`, by key and arguments.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct Said {
    key: &'static str,
    n: i32,
    m: i32,
    detail: String,
    error: bool,
}

impl Said {
    fn new(key: &'static str, n: usize, m: u64, detail: impl Into<String>, error: bool) -> Said {
        Said {
            key,
            n: i32::try_from(n).unwrap_or(i32::MAX),
            m: i32::try_from(m).unwrap_or(i32::MAX),
            detail: detail.into(),
            error,
        }
    }

    fn text(&self, ui: &AppWindow) -> String {
        ui.global::<SupervisorTr>()
            .invoke_text(s(self.key), self.n, self.m, s(&self.detail))
            .to_string()
    }
}

impl Kiosk {
    pub(super) fn bind_supervisor(self: &Rc<Self>, ui: &AppWindow) {
        let a = ui.global::<SupervisorAdapter>();
        a.set_supervisor(s(SIM_SUPERVISOR));
        a.set_target(s(""));
        a.set_progress(-1.0);
        a.set_outcome(s(""));
        let k = Rc::downgrade(self);
        ui.global::<HomeAdapter>().on_supervisor(move || {
            let Some(k) = k.upgrade() else { return };
            let Some(ui) = k.ui.upgrade() else { return };
            k.desk.borrow_mut().pin.cancel();
            k.show_pin(&ui);
            k.go(&ui, "supervisor");
            ui.global::<SupervisorAdapter>().set_busy(true);
            k.send(Command::Supervisor(Desk::Refresh));
        });
        let k = Rc::downgrade(self);
        a.on_refresh(move || {
            if let Some(k) = k.upgrade() {
                k.send(Command::Supervisor(Desk::Refresh));
            }
        });
        let k = Rc::downgrade(self);
        a.on_choose_target(move |path| {
            if let Some(ui) = k.upgrade().and_then(|k| k.ui.upgrade()) {
                ui.global::<SupervisorAdapter>().set_target(path);
            }
        });
        let k = Rc::downgrade(self);
        a.on_target_edited(move |path| {
            if let Some(ui) = k.upgrade().and_then(|k| k.ui.upgrade()) {
                ui.global::<SupervisorAdapter>().set_target(path);
            }
        });
        let k = Rc::downgrade(self);
        a.on_target_erase(move || {
            if let Some(ui) = k.upgrade().and_then(|k| k.ui.upgrade()) {
                let a = ui.global::<SupervisorAdapter>();
                let mut path = a.get_target().to_string();
                path.pop();
                a.set_target(path.into());
            }
        });
        let k = Rc::downgrade(self);
        a.on_approve(move || {
            if let Some(k) = k.upgrade() {
                k.ask_pin(Action::Approve);
            }
        });
        let k = Rc::downgrade(self);
        a.on_open(move |id| {
            let Some(k) = k.upgrade() else { return };
            let Some(ui) = k.ui.upgrade() else { return };
            let line = k
                .desk
                .borrow()
                .lines
                .iter()
                .find(|l| l.id == id.as_str())
                .cloned();
            let a = ui.global::<SupervisorAdapter>();
            if let Some(line) = line {
                a.set_selected(record_of(&line));
                a.set_reason(s(""));
                a.set_record_open(true);
                a.set_outcome(s(""));
                a.set_outcome_error(false);
            }
        });
        let k = Rc::downgrade(self);
        a.on_close_record(move || {
            if let Some(ui) = k.upgrade().and_then(|k| k.ui.upgrade()) {
                ui.global::<SupervisorAdapter>().set_record_open(false);
            }
        });
        let k = Rc::downgrade(self);
        a.on_choose_reason(move |code| {
            if let Some(ui) = k.upgrade().and_then(|k| k.ui.upgrade()) {
                ui.global::<SupervisorAdapter>().set_reason(code);
            }
        });
        let k = Rc::downgrade(self);
        a.on_verdict(move |code| {
            let Some(k) = k.upgrade() else { return };
            let Some(ui) = k.ui.upgrade() else { return };
            let Some(verdict) = Verdict::from_code(&code) else {
                return;
            };
            let a = ui.global::<SupervisorAdapter>();
            if verdict != Verdict::Approve && a.get_reason().is_empty() {
                k.say(&ui, Said::new("choose-reason", 0, 0, "", true));
                return;
            }
            k.ask_pin(Action::Review(verdict));
        });
        let k = Rc::downgrade(self);
        a.on_export(move || {
            let Some(k) = k.upgrade() else { return };
            let Some(ui) = k.ui.upgrade() else { return };
            if ui
                .global::<SupervisorAdapter>()
                .get_target()
                .trim()
                .is_empty()
            {
                k.say(&ui, Said::new(Problem::NoTarget.key(), 0, 0, "", true));
                return;
            }
            k.ask_pin(Action::Export);
        });
        let k = Rc::downgrade(self);
        a.on_import_receipts(move || {
            let Some(k) = k.upgrade() else { return };
            let Some(ui) = k.ui.upgrade() else { return };
            let a = ui.global::<SupervisorAdapter>();
            let from = PathBuf::from(a.get_target().trim());
            a.set_busy(true);
            k.send(Command::Supervisor(Desk::ImportReceipts { from }));
        });
        let k = Rc::downgrade(self);
        a.on_digit(move |d| {
            let Some(k) = k.upgrade() else { return };
            let Some(ui) = k.ui.upgrade() else { return };
            let done = k
                .desk
                .borrow_mut()
                .pin
                .digit(d.chars().next().unwrap_or(' '));
            k.show_pin(&ui);
            let Some((action, pin)) = done else { return };
            let a = ui.global::<SupervisorAdapter>();
            let supervisor = a.get_supervisor().to_string();
            a.set_busy(true);
            let command = match action {
                Action::Approve => Desk::ApproveAll { supervisor, pin },
                Action::Review(verdict) => Desk::Review {
                    supervisor,
                    pin,
                    id: a.get_selected().id.to_string(),
                    verdict,
                    reason: reason_text(&a.get_reason()),
                },
                Action::Export => {
                    a.set_progress(0.0);
                    Desk::Export {
                        supervisor,
                        pin,
                        to: PathBuf::from(a.get_target().trim()),
                    }
                }
            };
            k.send(Command::Supervisor(command));
        });
        let k = Rc::downgrade(self);
        a.on_erase(move || {
            let Some(k) = k.upgrade() else { return };
            k.desk.borrow_mut().pin.erase();
            if let Some(ui) = k.ui.upgrade() {
                k.show_pin(&ui);
            }
        });
        let k = Rc::downgrade(self);
        a.on_cancel_pin(move || {
            let Some(k) = k.upgrade() else { return };
            k.desk.borrow_mut().pin.cancel();
            if let Some(ui) = k.ui.upgrade() {
                k.show_pin(&ui);
            }
        });
        let k = Rc::downgrade(self);
        a.on_back(move || {
            let Some(k) = k.upgrade() else { return };
            k.desk.borrow_mut().pin.cancel();
            if let Some(ui) = k.ui.upgrade() {
                k.show_pin(&ui);
                k.go(&ui, "home");
            }
            k.send(Command::Home);
        });
    }

    /// Every few seconds while the view is open: look for sticks plugged in or pulled out.
    pub(super) fn tick_supervisor(&self, now_ms: i64) {
        let Some(ui) = self.ui.upgrade() else { return };
        if ui.global::<App>().get_view() != "supervisor" {
            return;
        }
        let mut desk = self.desk.borrow_mut();
        if now_ms - desk.targets_polled_ms >= TARGETS_POLL_MS {
            desk.targets_polled_ms = now_ms;
            drop(desk);
            self.send(Command::Supervisor(Desk::Targets));
        }
    }

    fn ask_pin(&self, action: Action) {
        self.desk.borrow_mut().pin.ask(action);
        if let Some(ui) = self.ui.upgrade() {
            self.show_pin(&ui);
        }
    }

    fn show_pin(&self, ui: &AppWindow) {
        let desk = self.desk.borrow();
        let a = ui.global::<SupervisorAdapter>();
        a.set_pin_for(s(desk.pin.action().map_or("", Action::code)));
        a.set_pin_filled(desk.pin.filled() as i32);
    }

    /// Show an outcome on the view and the status line, in the current language (and again in
    /// the next one, on a switch).
    fn say(&self, ui: &AppWindow, said: Said) {
        let a = ui.global::<SupervisorAdapter>();
        a.set_outcome(s(said.text(ui)));
        a.set_outcome_error(said.error);
        let error = said.error;
        let again = said.clone();
        self.status_tr(ui, move |ui| again.text(ui), error);
        let mut desk = self.desk.borrow_mut();
        desk.outcome = Some(said);
        desk.held = None;
    }

    /// After a language switch: the outcome in the new language.
    pub(super) fn retranslate_supervisor(&self, ui: &AppWindow) {
        let (said, held) = {
            let desk = self.desk.borrow();
            (desk.outcome.clone(), desk.held.clone())
        };
        if let Some(said) = said {
            let text = match held {
                Some(held) => format!("{}\n{}", said.text(ui), held.text(ui)),
                None => said.text(ui),
            };
            ui.global::<SupervisorAdapter>().set_outcome(s(text));
        }
    }

    pub(super) fn apply_supervisor(&self, ui: &AppWindow, event: Event) {
        let a = ui.global::<SupervisorAdapter>();
        match event {
            Event::Overview(o) => {
                a.set_busy(false);
                show_overview(&a, &o);
                // The open record follows what the store now says of it.
                if a.get_record_open() {
                    let id = a.get_selected().id.to_string();
                    match o.lines.iter().find(|l| l.id == id) {
                        Some(line) => a.set_selected(record_of(line)),
                        None => a.set_record_open(false),
                    }
                }
                self.desk.borrow_mut().lines = o.lines;
            }
            Event::Reviewed { id, verdict } => {
                let key = match verdict {
                    Verdict::Approve => "approved-one",
                    Verdict::Hold => "held-one",
                    Verdict::Reject => "rejected-one",
                };
                a.set_reason(s(""));
                self.say(ui, Said::new(key, 0, 0, id, false));
            }
            Event::Targets(targets) => {
                if a.get_target().is_empty() {
                    if let Some(t) = targets.iter().find(|t| !t.read_only) {
                        a.set_target(s(t.path.display().to_string()));
                    }
                }
                let model: Vec<SupTarget> = targets
                    .iter()
                    .map(|t| SupTarget {
                        path: s(t.path.display().to_string()),
                        read_only: t.read_only,
                    })
                    .collect();
                a.set_targets(ModelRc::new(VecModel::from(model)));
            }
            Event::Progress { done, total } => {
                a.set_progress(if total == 0 {
                    1.0
                } else {
                    (done as f64 / total as f64) as f32
                });
            }
            Event::Approved {
                supervisor,
                count,
                own_left,
            } => {
                let said = if own_left > 0 {
                    Said::new("approved-own", count, own_left as u64, supervisor, false)
                } else if count == 0 {
                    Said::new("nothing-to-approve", 0, 0, "", false)
                } else {
                    Said::new("approved", count, 0, supervisor, false)
                };
                self.say(ui, said);
            }
            Event::Exported(report) => {
                a.set_progress(-1.0);
                let said = match &report.file {
                    Some(file) => Said::new(
                        "exported",
                        report.records as usize,
                        0,
                        file.display().to_string(),
                        false,
                    ),
                    None => Said::new("nothing-to-export", 0, 0, "", report.held_back.is_some()),
                };
                // Held-back records are named with the reason on the view, after the main
                // outcome; the status line (one line) says how many.
                if let Some(why) = &report.held_back {
                    let n = report.held_back_records as usize;
                    let held = Said::new("held-back", n, 0, why.clone(), true);
                    a.set_outcome(s(format!("{}\n{}", said.text(ui), held.text(ui))));
                    a.set_outcome_error(true);
                    let first = said.clone();
                    let count = Said::new("held-count", n, 0, "", true);
                    self.status_tr(
                        ui,
                        move |ui| format!("{} — {}", first.text(ui), count.text(ui)),
                        true,
                    );
                    self.desk.borrow_mut().outcome = Some(Said {
                        error: true,
                        ..said
                    });
                    self.desk.borrow_mut().held = Some(held);
                    return;
                }
                self.desk.borrow_mut().held = None;
                self.say(ui, said);
            }
            Event::ReceiptsImported(lines) => {
                let verified: u64 = lines.iter().map(|l| l.verified).sum();
                let rejected: usize = lines.iter().map(|l| l.rejected).sum();
                let said = if rejected > 0 {
                    Said::new("receipts-rejected", rejected, 0, "", true)
                } else {
                    Said::new("receipts", lines.len(), verified, "", false)
                };
                self.say(ui, said);
            }
            Event::Failed(problem) => {
                a.set_progress(-1.0);
                a.set_busy(false);
                self.say(ui, Said::new(problem.key(), 0, 0, problem.detail(), true));
            }
        }
    }
}

fn show_overview(a: &SupervisorAdapter, o: &Overview) {
    a.set_today(o.today as i32);
    a.set_awaiting(o.awaiting as i32);
    a.set_unsent(o.unsent as i32);
    a.set_rejected(o.rejected as i32);
    a.set_reenrol(o.reenrol as i32);
    let rows: Vec<SupRecord> = o.lines.iter().map(record_of).collect();
    a.set_records(ModelRc::new(VecModel::from(rows)));
}

fn record_of(l: &RecordLine) -> SupRecord {
    let q = &l.quality;
    SupRecord {
        seq: l.seq as i32,
        id: s(&l.id),
        kind: s(&l.kind),
        officer: s(&l.officer),
        // `YYYY-MM-DD HH:MM UTC`: the day when it is not today's, else the time.
        time: s({
            let t = format_utc(l.created_ms);
            let today = format_utc(crate::now_ms());
            if t[..10] == today[..10] {
                t[11..16].to_string()
            } else {
                t[5..10].to_string()
            }
        }),
        state: s(l.state.code()),
        reason: s(l.reason.as_deref().unwrap_or("")),
        face: i32::from(q.face),
        face_attempts: i32::try_from(q.face_attempts).unwrap_or(i32::MAX),
        fingers: q.fingers as i32,
        finger_min: i32::from(q.finger_min),
        finger_mean: i32::from(q.finger_mean),
        exceptions: q.exceptions as i32,
        below: q.below_threshold as i32,
        reviewed_by: s(l.reviewed_by.as_deref().unwrap_or("")),
    }
}
