//! Binds the Slint views (`ui/views/*.slint`, one `global` adapter each) to the controllers and
//! the worker. Runs on the UI thread only; never does I/O: everything slow is a [`Command`] to
//! the worker, whose [`Event`]s come back through [`Kiosk::drain`].

use std::cell::RefCell;
use std::collections::VecDeque;
use std::rc::Rc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::Sender;
use std::sync::Arc;

use slint::{
    ComponentHandle, Image, Model, ModelRc, Rgb8Pixel, Rgba8Pixel, SharedPixelBuffer, SharedString,
    VecModel,
};
use tasjil_drivers::emrtd::IdentityPage;
use tasjil_drivers::{ExceptionReason, FingerPosition};
use tasjil_sync::EnrolmentKind;

use super::badges::BadgeChange;
use super::form::{Editor, Form};
use super::i18n::{font_for_text, Lang, ARABIC_FONT, LATIN_FONT, TIFINAGH_FONT};
use super::keyboard;
use super::login::{Login, LoginState};
use super::previous::{self, CardKeyEntry};
use super::problem::Problem;
use super::session::{Receipt, Review};
use super::ui::*;
use super::worker::{Command, Event, Outbox, FRAMES_NEEDED};
use crate::enrolment::{Outcome, Step};
use crate::schema::{Keyboard, Schema};

mod supervisor_view;

/// Officer logged out after this long without a touch.
pub const IDLE_LOGOUT_MS: i64 = 5 * 60 * 1000;
/// The simulated badge's officer.
pub const SIM_OFFICER: &str = "OFF-SIM-1";

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum FingerStatus {
    Todo,
    Ok(u8),
    Low(u8),
    Exception,
}

struct State {
    lang: Lang,
    login: Login,
    schema: Schema,
    form: Option<Form>,
    layout: Keyboard,
    shift: bool,
    step: Step,
    fingers: [FingerStatus; 10],
    next_finger: Option<FingerPosition>,
    /// Pen points `(x, y, t_ms)`, `t_ms` since the first pen-down of the signature.
    strokes: Vec<Vec<(u16, u16, u32)>>,
    /// The pen clock's reading at the first pen-down of the signature.
    pen_started: Option<u64>,
    confirm_pin: String,
    review: Option<Box<Review>>,
    receipt: Option<Receipt>,
    camera_lost: bool,
    log: VecDeque<String>,
    station: String,
    devices: Vec<String>,
    /// What is typed to open the previous card's chip.
    card: CardKeyEntry,
    /// The previous card was read, or the officer chose to type its number: the form is next.
    card_done: bool,
    /// The birth date typed for the chip being read, as the form keeps it.
    card_birth: Option<String>,
    /// What the simulated previous card has printed on it.
    sim_card: Option<IdentityPage>,
    /// The view Diagnostics was opened from, where its Back returns.
    diagnostics_from: Option<String>,
}

/// The kiosk's UI side: owns the UI-thread controllers and the line to the worker.
pub struct Kiosk {
    ui: slint::Weak<AppWindow>,
    tx: Sender<Command>,
    outbox: Arc<Outbox>,
    frame_free: Arc<AtomicBool>,
    camera_plug: Option<Arc<AtomicBool>>,
    st: RefCell<State>,
    frames_shown: std::cell::Cell<u64>,
    desk: RefCell<supervisor_view::DeskState>,
    /// Monotonic milliseconds, for the pen's timestamps (tests set their own).
    pen_clock: RefCell<Box<dyn Fn() -> u64>>,
    /// Composes the status line again after a language switch (`None`: the status is not a
    /// translated text, e.g. a station error message).
    status_again: RefCell<Option<StatusText>>,
}

type StatusText = Box<dyn Fn(&AppWindow) -> String>;

impl std::fmt::Debug for Kiosk {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Kiosk").finish_non_exhaustive()
    }
}

fn s(text: impl AsRef<str>) -> SharedString {
    SharedString::from(text.as_ref())
}

fn now_ms() -> i64 {
    crate::now_ms()
}

/// The simulated card's printed number and dates, typed in advance (a demonstration needs no
/// typing); an empty entry with a real reader.
fn sim_card_entry(card: Option<&IdentityPage>) -> CardKeyEntry {
    let Some(c) = card else {
        return CardKeyEntry::new();
    };
    // Two-digit years: an expiry is in this century; a birth year after this one is the last.
    let this_year = (crate::now_ms() / 31_556_952_000 + 1970) as u32 % 100;
    let date = |yymmdd: &str, future: bool| -> String {
        let (yy, mm, dd) = (
            yymmdd.get(0..2).unwrap_or("00"),
            yymmdd.get(2..4).unwrap_or("01"),
            yymmdd.get(4..6).unwrap_or("01"),
        );
        let century = if future || yy.parse::<u32>().unwrap_or(0) <= this_year {
            "20"
        } else {
            "19"
        };
        format!("{dd}{mm}{century}{yy}")
    };
    CardKeyEntry::prefilled(
        &c.document_number,
        &date(&c.birth_date, false),
        &date(&c.expiry_date, true),
    )
}

impl Kiosk {
    /// Bind every view of `ui`. `camera_plug` is the simulated camera's cable, if any;
    /// `sim_badges`: badges are simulated (inserted and removed with buttons), not read from a
    /// card reader.
    pub fn bind(
        ui: &AppWindow,
        tx: Sender<Command>,
        outbox: Arc<Outbox>,
        frame_free: Arc<AtomicBool>,
        camera_plug: Option<Arc<AtomicBool>>,
        sim_badges: bool,
    ) -> Rc<Kiosk> {
        let kiosk = Rc::new(Kiosk {
            ui: ui.as_weak(),
            tx,
            outbox,
            frame_free,
            camera_plug,
            st: RefCell::new(State {
                lang: Lang::Fr,
                login: Login::new(IDLE_LOGOUT_MS),
                schema: Schema::default_cnie(),
                form: None,
                layout: Keyboard::Latin,
                shift: true,
                step: Step::Identify,
                fingers: [FingerStatus::Todo; 10],
                next_finger: None,
                strokes: Vec::new(),
                pen_started: None,
                confirm_pin: String::new(),
                review: None,
                receipt: None,
                camera_lost: false,
                log: VecDeque::new(),
                station: String::new(),
                devices: Vec::new(),
                card: CardKeyEntry::new(),
                card_done: false,
                card_birth: None,
                sim_card: None,
                diagnostics_from: None,
            }),
            frames_shown: std::cell::Cell::new(0),
            desk: RefCell::default(),
            pen_clock: RefCell::new({
                let origin = std::time::Instant::now();
                Box::new(move || origin.elapsed().as_millis() as u64)
            }),
            status_again: RefCell::new(None),
        });
        ui.global::<App>().set_simulate(sim_badges);
        ui.global::<App>()
            .set_sim_camera(kiosk.camera_plug.is_some());
        kiosk.bind_app(ui);
        kiosk.bind_login(ui);
        kiosk.bind_home(ui);
        kiosk.bind_kind(ui);
        kiosk.bind_previous(ui);
        kiosk.bind_form(ui);
        kiosk.bind_face(ui);
        kiosk.bind_fingers(ui);
        kiosk.bind_signature(ui);
        kiosk.bind_review(ui);
        kiosk.bind_receipt(ui);
        kiosk.bind_diagnostics(ui);
        kiosk.bind_supervisor(ui);
        kiosk.set_lang(ui, Lang::Fr);
        kiosk.show_login(ui);
        kiosk
    }

    fn send(&self, command: Command) {
        if self.tx.send(command).is_err() {
            if let Some(ui) = self.ui.upgrade() {
                let p = Problem::new("worker-stopped", "", "the kiosk worker has stopped");
                self.problem(&ui, p);
            }
        }
    }

    /// Show a status line and keep it in the log tail.
    fn status(&self, ui: &AppWindow, text: &str, error: bool) {
        self.status_again.replace(None);
        let app = ui.global::<App>();
        app.set_status(s(text));
        app.set_status_error(error);
        let mut st = self.st.borrow_mut();
        let secs = now_ms() / 1000 % 86_400;
        st.log.push_back(format!(
            "{:02}:{:02}:{:02} {}{text}",
            secs / 3600,
            secs / 60 % 60,
            secs % 60,
            if error { "! " } else { "" }
        ));
        while st.log.len() > 12 {
            st.log.pop_front();
        }
        if error {
            tracing::warn!("{text}");
        } else {
            tracing::info!("{text}");
        }
    }

    /// An empty status line: the last citizen's outcome does not stay on the next one's screens.
    fn clear_status(&self, ui: &AppWindow) {
        self.status_again.replace(None);
        let app = ui.global::<App>();
        app.set_status(s(""));
        app.set_status_error(false);
    }

    /// Show a translated status line; a language switch composes it again in the new language.
    fn status_tr(
        &self,
        ui: &AppWindow,
        compose: impl Fn(&AppWindow) -> String + 'static,
        error: bool,
    ) {
        self.status(ui, &compose(ui), error);
        self.status_again.replace(Some(Box::new(compose)));
    }

    /// Tell the officer what failed, in the screen's language (again after a language switch);
    /// the English error goes to the log only.
    fn problem(&self, ui: &AppWindow, p: Problem) {
        tracing::warn!("{} ({}): {}", p.key, p.arg, p.detail);
        let Problem { key, arg, .. } = p;
        self.status_tr(
            ui,
            move |ui| {
                ui.global::<Tr>()
                    .invoke_problem(s(key), s(&arg))
                    .to_string()
            },
            true,
        );
    }

    /// A `Tr.message` status, by key, with a detail after it that reads the same in every
    /// language (a number, an id, a path; may be empty): never English words.
    fn status_msg(&self, ui: &AppWindow, key: &'static str, detail: String, error: bool) {
        self.status_tr(
            ui,
            move |ui| {
                let text = Self::msg(ui, key);
                if detail.is_empty() {
                    text
                } else if detail.starts_with(':') {
                    format!("{text}{detail}")
                } else {
                    format!("{text} {detail}")
                }
            },
            error,
        );
    }

    fn msg(ui: &AppWindow, key: &str) -> String {
        ui.global::<Tr>().invoke_message(s(key)).to_string()
    }

    fn go(&self, ui: &AppWindow, view: &str) {
        let app = ui.global::<App>();
        if app.get_view() == "face" && view != "face" {
            self.send(Command::Preview(false));
        }
        if app.get_view() != view {
            tracing::info!("{view} view shown");
        }
        app.set_view(s(view));
    }

    // ---- app-wide ----------------------------------------------------------------------------

    fn bind_app(self: &Rc<Self>, ui: &AppWindow) {
        let app = ui.global::<App>();
        let k = Rc::downgrade(self);
        app.on_set_lang(move |code| {
            if let (Some(k), Some(lang)) = (k.upgrade(), Lang::from_code(&code)) {
                if let Some(ui) = k.ui.upgrade() {
                    k.set_lang(&ui, lang);
                }
            }
        });
        let k = Rc::downgrade(self);
        app.on_touched(move || {
            if let Some(k) = k.upgrade() {
                k.st.borrow_mut().login.touch(now_ms());
                if let Some(ui) = k.ui.upgrade() {
                    ui.global::<App>().set_idle_left(0);
                }
            }
        });
        let k = Rc::downgrade(self);
        app.on_drain(move || {
            if let Some(k) = k.upgrade() {
                k.drain();
            }
        });
        let k = Rc::downgrade(self);
        app.on_go(move |view| {
            if let (Some(k), Some(ui)) = (k.upgrade(), k.upgrade().and_then(|k| k.ui.upgrade())) {
                if view == "diagnostics" {
                    let from = ui.global::<App>().get_view().to_string();
                    if from != "diagnostics" {
                        k.st.borrow_mut().diagnostics_from = Some(from);
                    }
                    k.fill_diagnostics(&ui);
                    k.send(Command::Devices);
                }
                k.go(&ui, &view);
            }
        });
        let k = Rc::downgrade(self);
        app.on_remove_badge(move || {
            if let Some(k) = k.upgrade() {
                k.remove_badge();
            }
        });
    }

    /// Switch language live: translations, direction, font, and every text composed in Rust.
    pub fn set_lang(&self, ui: &AppWindow, lang: Lang) {
        if let Err(e) = slint::select_bundled_translation(lang.code()) {
            tracing::warn!("no bundled translation for {}: {e}", lang.code());
        }
        self.st.borrow_mut().lang = lang;
        let app = ui.global::<App>();
        app.set_lang(s(lang.code()));
        app.set_rtl(lang.is_rtl());
        app.set_font(s(lang.font_family()));
        self.refresh_form(ui);
        self.refresh_fingers(ui);
        self.refresh_review(ui);
        // Texts composed in Rust: the status line and the supervisor's last outcome.
        if let Some(compose) = self.status_again.borrow().as_ref() {
            app.set_status(s(compose(ui)));
        }
        self.retranslate_supervisor(ui);
    }

    /// The badge left the reader.
    pub fn remove_badge(&self) {
        let was = self.st.borrow_mut().login.remove_badge();
        self.keep_form();
        self.send(Command::Logout);
        if let Some(ui) = self.ui.upgrade() {
            ui.global::<App>().set_officer(s(""));
            self.reset_enrolment(&ui);
            self.show_login(&ui);
            if was {
                self.status_msg(&ui, "logged-out", String::new(), false);
            }
        }
    }

    /// Fill the demographics form of the enrolment in progress (the kiosk's test-only control).
    pub fn fill_form(&self, data: &serde_json::Map<String, serde_json::Value>) {
        self.with_form(|f| f.fill(data));
    }

    /// The last touch was `ms` ago (the test-only control: the idle countdown without waiting).
    pub fn pretend_idle_since(&self, ms: i64) {
        self.st.borrow_mut().login.touch(now_ms() - ms);
    }

    /// Replace the pen's clock (monotonic milliseconds): tests drive the pad faster than a hand.
    pub fn set_pen_clock(&self, clock: impl Fn() -> u64 + 'static) {
        *self.pen_clock.borrow_mut() = Box::new(clock);
    }

    /// Where the pen is now: the point and its time since the signature's first pen-down.
    fn pen_point(&self, x: f32, y: f32) -> (u16, u16, u32) {
        let now = (self.pen_clock.borrow())();
        let t0 = *self.st.borrow_mut().pen_started.get_or_insert(now);
        let t = u32::try_from(now.saturating_sub(t0)).unwrap_or(u32::MAX);
        (x.max(0.0).round() as u16, y.max(0.0).round() as u16, t)
    }

    /// Take the face photo by itself once the checks pass (on by default); off, only the
    /// officer's "Capture now" takes it (measurements, tests that look at the live preview).
    pub fn auto_capture(&self, on: bool) {
        self.send(Command::AutoCapture(on));
    }

    /// Preview frames put on screen so far (for `tasjil kiosk --bench`).
    pub fn frames_shown(&self) -> u64 {
        self.frames_shown.get()
    }

    /// For measurements: log in with the simulated badge, fill the form with sample data and
    /// open the face preview with automatic capture off, as fast as the worker answers.
    pub fn bench_to_face_preview(&self) {
        let data = crate::schema::simulated_demographics(1, "new");
        let mut form = Form::new(&self.st.borrow().schema, "new");
        form.fill(&data);
        self.st.borrow_mut().form = Some(form);
        self.send(Command::Login {
            officer: SIM_OFFICER.into(),
            pin: crate::enrolment::badge::SIM_PIN.into(),
        });
        self.send(Command::Start);
        self.send(Command::AutoCapture(false));
        self.send(Command::Identify(EnrolmentKind::New));
        self.send(Command::Demographics(data));
    }

    /// Called every second by the kiosk's timer (and by tests with their own clock).
    pub fn tick(&self, now_ms: i64) {
        self.tick_supervisor(now_ms);
        let left = self.st.borrow().login.idle_left(now_ms);
        if let Some(ui) = self.ui.upgrade() {
            let shown = left.map_or(0, |s| s as i32);
            if ui.global::<App>().get_idle_left() != shown {
                if shown > 0 && ui.global::<App>().get_idle_left() == 0 {
                    tracing::info!("idle: logout in {shown} s unless the screen is touched");
                }
                ui.global::<App>().set_idle_left(shown);
            }
        }
        if self.st.borrow_mut().login.idle_check(now_ms) {
            self.keep_form();
            self.send(Command::Logout);
            if let Some(ui) = self.ui.upgrade() {
                ui.global::<App>().set_idle_left(0);
                ui.global::<App>().set_officer(s(""));
                self.reset_enrolment(&ui);
                self.show_login(&ui);
                self.status_msg(&ui, "idle", String::new(), false);
            }
        }
    }

    /// The form as typed goes into the draft before the enrolment leaves the screen.
    fn keep_form(&self) {
        let data = self.st.borrow().form.as_ref().map(Form::data);
        if let Some(data) = data {
            self.send(Command::KeepForm(data));
        }
    }

    fn reset_enrolment(&self, ui: &AppWindow) {
        let mut st = self.st.borrow_mut();
        st.form = None;
        st.fingers = [FingerStatus::Todo; 10];
        st.strokes.clear();
        st.pen_started = None;
        st.confirm_pin.clear();
        st.review = None;
        st.card_done = false;
        st.card_birth = None;
        st.card = sim_card_entry(st.sim_card.as_ref());
        drop(st);
        let face = ui.global::<FaceAdapter>();
        face.set_captured(false);
        face.set_result(s(""));
        clear_face_live(&face);
        let sig = ui.global::<SignatureAdapter>();
        sig.set_ink(s(""));
        sig.set_has_ink(false);
        sig.set_result(s(""));
        ui.global::<ConfirmAdapter>().set_problem(s(""));
        ui.global::<FingersAdapter>().set_result(s(""));
        ui.global::<FingersAdapter>().set_has_thumb(false);
    }

    // ---- login -------------------------------------------------------------------------------

    fn bind_login(self: &Rc<Self>, ui: &AppWindow) {
        let a = ui.global::<LoginAdapter>();
        let k = Rc::downgrade(self);
        a.on_insert_badge(move || {
            if let Some(k) = k.upgrade() {
                k.st.borrow_mut()
                    .login
                    .insert_badge(SIM_OFFICER, None, now_ms());
                if let Some(ui) = k.ui.upgrade() {
                    k.show_login(&ui);
                }
            }
        });
        let k = Rc::downgrade(self);
        a.on_digit(move |d| {
            let Some(k) = k.upgrade() else { return };
            let complete =
                k.st.borrow_mut()
                    .login
                    .digit(d.chars().next().unwrap_or(' '), now_ms());
            if let Some((officer, pin)) = complete {
                k.send(Command::Login { officer, pin });
            }
            if let Some(ui) = k.ui.upgrade() {
                k.show_login(&ui);
            }
        });
        let k = Rc::downgrade(self);
        a.on_erase(move || {
            let Some(k) = k.upgrade() else { return };
            k.st.borrow_mut().login.backspace();
            if let Some(ui) = k.ui.upgrade() {
                k.show_login(&ui);
            }
        });
    }

    fn show_login(&self, ui: &AppWindow) {
        let st = self.st.borrow();
        let a = ui.global::<LoginAdapter>();
        a.set_pin_filled(st.login.pin_len() as i32);
        let state = match st.login.state() {
            LoginState::NoBadge => "no-badge",
            LoginState::EnterPin {
                officer,
                tries_left,
            } => {
                a.set_officer(s(officer));
                a.set_tries_left(i32::from(*tries_left));
                "pin"
            }
            LoginState::Checking { .. } => "checking",
            LoginState::Blocked { .. } => "blocked",
            LoginState::LoggedIn { .. } => return,
        };
        a.set_state(s(state));
        drop(st);
        if ui.global::<App>().get_view() != "login" {
            self.go(ui, "login");
        }
    }

    // ---- home --------------------------------------------------------------------------------

    fn bind_home(self: &Rc<Self>, ui: &AppWindow) {
        let a = ui.global::<HomeAdapter>();
        let k = Rc::downgrade(self);
        a.on_start(move || {
            if let Some(k) = k.upgrade() {
                if let Some(ui) = k.ui.upgrade() {
                    k.clear_status(&ui);
                }
                k.send(Command::Start);
            }
        });
        let k = Rc::downgrade(self);
        a.on_refresh(move || {
            if let Some(k) = k.upgrade() {
                k.send(Command::Home);
            }
        });
        let k = Rc::downgrade(self);
        a.on_resume(move || {
            if let Some(k) = k.upgrade() {
                if let Some(ui) = k.ui.upgrade() {
                    k.clear_status(&ui);
                }
                k.send(Command::ResumeDraft);
            }
        });
        let k = Rc::downgrade(self);
        a.on_discard(move || {
            if let Some(k) = k.upgrade() {
                k.send(Command::DiscardDraft);
            }
        });
    }

    // ---- kind --------------------------------------------------------------------------------

    fn bind_kind(self: &Rc<Self>, ui: &AppWindow) {
        let a = ui.global::<KindAdapter>();
        let k = Rc::downgrade(self);
        a.on_choose(move |kind| {
            let Some(k) = k.upgrade() else { return };
            match kind.parse::<EnrolmentKind>() {
                Ok(kind) => {
                    let schema = k.st.borrow().schema.clone();
                    let mut form = Form::new(&schema, kind.as_str());
                    if let Some(old) = k.st.borrow().form.as_ref() {
                        form.fill(&old.data());
                    }
                    {
                        let mut st = k.st.borrow_mut();
                        st.form = Some(form);
                        st.card_done = false;
                    }
                    k.send(Command::Identify(kind));
                }
                Err(e) => {
                    if let Some(ui) = k.ui.upgrade() {
                        k.problem(&ui, Problem::new("failed", "", e.to_string()));
                    }
                }
            }
        });
        let k = Rc::downgrade(self);
        a.on_cancel(move || {
            let Some(k) = k.upgrade() else { return };
            k.keep_form();
            k.send(Command::Cancel);
            k.send(Command::Home);
            if let Some(ui) = k.ui.upgrade() {
                k.reset_enrolment(&ui);
                k.go(&ui, "home");
            }
        });
    }

    // ---- the previous card ---------------------------------------------------------------------

    fn bind_previous(self: &Rc<Self>, ui: &AppWindow) {
        let a = ui.global::<PreviousAdapter>();
        let k = Rc::downgrade(self);
        a.on_select(move |i| {
            let Some(k) = k.upgrade() else { return };
            k.with_card(|c| c.select(i.max(0) as usize));
        });
        let k = Rc::downgrade(self);
        a.on_key(move |key| {
            let Some(k) = k.upgrade() else { return };
            k.with_card(|c| c.key(&key));
        });
        let k = Rc::downgrade(self);
        a.on_erase(move || {
            let Some(k) = k.upgrade() else { return };
            k.with_card(CardKeyEntry::erase);
        });
        let k = Rc::downgrade(self);
        a.on_read(move || {
            let Some(k) = k.upgrade() else { return };
            let Some(ui) = k.ui.upgrade() else { return };
            let typed = k.st.borrow().card.access_key();
            match typed {
                Ok((key, birth)) => {
                    k.st.borrow_mut().card_birth = Some(birth);
                    ui.global::<PreviousAdapter>().set_busy(true);
                    k.send(Command::ReadPreviousCard(key));
                }
                Err(problem) => {
                    k.with_card(|c| c.select(problem.field()));
                    k.status_msg(&ui, problem.message_key(), String::new(), true);
                }
            }
        });
        let k = Rc::downgrade(self);
        a.on_type_instead(move || {
            let Some(k) = k.upgrade() else { return };
            tracing::info!("previous card: the officer types its number instead");
            k.st.borrow_mut().card_done = true;
            k.show_step(Step::Demographics);
        });
        let k = Rc::downgrade(self);
        a.on_back(move || {
            if let Some(k) = k.upgrade() {
                k.send(Command::Retake(Step::Identify));
            }
        });
    }

    fn with_card(&self, change: impl FnOnce(&mut CardKeyEntry)) {
        change(&mut self.st.borrow_mut().card);
        if let Some(ui) = self.ui.upgrade() {
            self.refresh_card(&ui);
        }
    }

    fn refresh_card(&self, ui: &AppWindow) {
        let st = self.st.borrow();
        let fields: Vec<CardField> = (0..3)
            .map(|i| CardField {
                shown: s(st.card.shown(i)),
                current: st.card.current() == i,
            })
            .collect();
        ui.global::<PreviousAdapter>()
            .set_fields(ModelRc::new(VecModel::from(fields)));
    }

    /// The chip answered: its identity page goes into the form, or the officer is told what to
    /// do about the refusal (the typed fields stay).
    fn previous_card_read(
        &self,
        ui: &AppWindow,
        read: Result<IdentityPage, tasjil_drivers::emrtd::ChipError>,
    ) {
        use tasjil_drivers::emrtd::ChipError;
        ui.global::<PreviousAdapter>().set_busy(false);
        match read {
            Ok(page) => {
                {
                    let mut st = self.st.borrow_mut();
                    let birth = st.card_birth.take().unwrap_or_default();
                    if let Some(form) = st.form.as_mut() {
                        let mut data = form.data();
                        data.extend(previous::form_data(&page, &birth));
                        form.fill(&data);
                    }
                    st.card_done = true;
                }
                self.show_step(Step::Demographics);
                self.status_msg(
                    ui,
                    "card-read",
                    format!(": {}", page.document_number),
                    false,
                );
            }
            Err(e) => {
                let key = match &e {
                    ChipError::NoCard => "card-none",
                    ChipError::NoReader | ChipError::NoService(_) => "card-no-reader",
                    ChipError::NotAnIdCard => "card-not-id",
                    ChipError::AccessDenied => "card-denied",
                    ChipError::Removed => "card-removed",
                    ChipError::Tampered => "card-tampered",
                    ChipError::BadKey(_) => "card-bad-number",
                    ChipError::Malformed(_) | ChipError::Card(_) => "card-error",
                };
                // The chip's own words stay in the log.
                tracing::warn!("previous card: {e}");
                self.status_msg(ui, key, String::new(), true);
            }
        }
    }

    // ---- demographics form -------------------------------------------------------------------

    fn bind_form(self: &Rc<Self>, ui: &AppWindow) {
        let a = ui.global::<FormAdapter>();
        let k = Rc::downgrade(self);
        a.on_select(move |i| {
            let Some(k) = k.upgrade() else { return };
            k.with_form(|f| f.select(i.max(0) as usize));
        });
        let k = Rc::downgrade(self);
        a.on_key(move |key| {
            let Some(k) = k.upgrade() else { return };
            let shifted = k.st.borrow().shift;
            k.with_form(|f| f.key(&key));
            // One capital, then small letters, as phones do.
            if shifted && key.chars().any(char::is_alphabetic) {
                k.st.borrow_mut().shift = false;
                if let Some(ui) = k.ui.upgrade() {
                    k.refresh_form(&ui);
                }
            }
        });
        let k = Rc::downgrade(self);
        a.on_edited(move |text| {
            let Some(k) = k.upgrade() else { return };
            k.with_form(|f| {
                let i = f.current();
                f.set(i, &text);
            });
        });
        let k = Rc::downgrade(self);
        a.on_choose(move |value| {
            let Some(k) = k.upgrade() else { return };
            k.with_form(|f| {
                let i = f.current();
                f.set(i, &value);
                if i + 1 < f.len() {
                    f.select(i + 1);
                }
            });
        });
        let k = Rc::downgrade(self);
        a.on_shift(move || {
            let Some(k) = k.upgrade() else { return };
            let shift = !k.st.borrow().shift;
            k.st.borrow_mut().shift = shift;
            k.with_form(|_| {});
        });
        let k = Rc::downgrade(self);
        a.on_next_layout(move || {
            let Some(k) = k.upgrade() else { return };
            let next = match k.st.borrow().layout {
                Keyboard::Latin => Keyboard::Arabic,
                Keyboard::Arabic => Keyboard::Tifinagh,
                Keyboard::Tifinagh => Keyboard::Digits,
                Keyboard::Digits => Keyboard::Latin,
            };
            k.st.borrow_mut().layout = next;
            if let Some(ui) = k.ui.upgrade() {
                k.show_keyboard(&ui);
            }
        });
        let k = Rc::downgrade(self);
        a.on_next(move || {
            let Some(k) = k.upgrade() else { return };
            let data = k.st.borrow().form.as_ref().map(Form::data);
            if let Some(data) = data {
                k.send(Command::Demographics(data));
            }
        });
        let k = Rc::downgrade(self);
        a.on_back(move || {
            if let Some(k) = k.upgrade() {
                k.send(Command::Retake(Step::Identify));
            }
        });
    }

    /// Change the form and show it again.
    fn with_form(&self, change: impl FnOnce(&mut Form)) {
        let changed_field = {
            let mut st = self.st.borrow_mut();
            let Some(f) = st.form.as_mut() else { return };
            let before = f.current();
            change(f);
            f.current() != before
        };
        if let Some(ui) = self.ui.upgrade() {
            if changed_field {
                self.st.borrow_mut().layout = Keyboard::Latin; // replaced below by the field's own
            }
            self.refresh_form_with(&ui, changed_field);
        }
    }

    fn refresh_form(&self, ui: &AppWindow) {
        self.refresh_form_with(ui, false);
    }

    fn refresh_form_with(&self, ui: &AppWindow, field_changed: bool) {
        let tr = ui.global::<Tr>();
        let yes_no = (tr.invoke_yes().to_string(), tr.invoke_no().to_string());
        let mut st = self.st.borrow_mut();
        let lang = st.lang;
        let Some(form) = st.form.as_ref() else { return };
        let mut rows = form.rows(lang.code(), (&yes_no.0, &yes_no.1));
        // The schema words its reasons in English: the screen shows them translated.
        for r in rows.iter_mut().filter(|r| !r.error.is_empty()) {
            let (key, arg) = super::form::reason_key(&r.error);
            r.error = tr.invoke_field_error(s(key), s(arg)).to_string();
        }
        let current = form.current();
        let choices = form.choices(current, lang.code(), (&yes_no.0, &yes_no.1));
        let a = ui.global::<FormAdapter>();
        let errors = rows.iter().filter(|r| !r.error.is_empty()).count();
        let model: Vec<FormRow> = rows
            .iter()
            .enumerate()
            .map(|(i, r)| FormRow {
                name: s(&r.name),
                label: s(&r.label),
                shown: s(&r.shown),
                required: r.required,
                error: s(&r.error),
                value_font: s(if r.arabic_value {
                    ARABIC_FONT
                } else {
                    font_for_text(&r.shown)
                }),
                current: i == current,
            })
            .collect();
        a.set_rows(ModelRc::new(VecModel::from(model)));
        a.set_errors(errors as i32);
        if let Some(row) = rows.get(current) {
            a.set_current(current as i32);
            a.set_current_label(s(&row.label));
            a.set_current_example(s(&row.example));
            a.set_current_value(s(&row.value));
            let arabic = row.arabic_value;
            a.set_current_rtl(arabic);
            a.set_current_font(s(if arabic {
                ARABIC_FONT
            } else {
                font_for_text(&row.value)
            }));
            match row.editor {
                Editor::Choice => {
                    a.set_choice(true);
                    let mut c: Vec<Choice> = choices
                        .into_iter()
                        .map(|(value, label)| Choice {
                            value: s(value),
                            label: s(label),
                        })
                        .collect();
                    if lang.is_rtl() {
                        c.reverse();
                    }
                    a.set_choices(ModelRc::new(VecModel::from(c)));
                }
                Editor::Text(layout) => {
                    a.set_choice(false);
                    if field_changed || a.get_keys().row_count() == 0 {
                        st.layout = layout;
                        st.shift = layout == Keyboard::Latin;
                    }
                }
            }
        }
        drop(st);
        self.show_keyboard(ui);
    }

    fn show_keyboard(&self, ui: &AppWindow) {
        let st = self.st.borrow();
        let a = ui.global::<FormAdapter>();
        let rows: Vec<KeyRow> = keyboard::rows(st.layout, st.shift)
            .into_iter()
            .map(|r| KeyRow {
                keys: ModelRc::new(VecModel::from(
                    r.into_iter().map(SharedString::from).collect::<Vec<_>>(),
                )),
            })
            .collect();
        a.set_keys(ModelRc::new(VecModel::from(rows)));
        a.set_layout_name(s(keyboard::layout_name(st.layout)));
        let font = match st.layout {
            Keyboard::Arabic => ARABIC_FONT,
            Keyboard::Tifinagh => TIFINAGH_FONT,
            _ => LATIN_FONT,
        };
        a.set_layout_font(s(font));
        if !a.get_choice() {
            a.set_current_font(s(match st.layout {
                Keyboard::Arabic => ARABIC_FONT,
                Keyboard::Tifinagh => TIFINAGH_FONT,
                _ => font_for_text(&a.get_current_value()),
            }));
        }
    }

    // ---- face --------------------------------------------------------------------------------

    fn bind_face(self: &Rc<Self>, ui: &AppWindow) {
        let a = ui.global::<FaceAdapter>();
        a.set_frames_needed(FRAMES_NEEDED as i32);
        a.set_hold_seconds(super::worker::AUTO_CAPTURE_HOLD.as_secs() as i32);
        let k = Rc::downgrade(self);
        a.on_capture(move || {
            if let Some(k) = k.upgrade() {
                k.send(Command::CaptureFace);
            }
        });
        let k = Rc::downgrade(self);
        a.on_retake(move || {
            if let Some(k) = k.upgrade() {
                k.send(Command::Retake(Step::Face));
            }
        });
        let k = Rc::downgrade(self);
        a.on_next(move || {
            if let Some(k) = k.upgrade() {
                let step = k.st.borrow().step;
                k.show_step(step);
            }
        });
        let k = Rc::downgrade(self);
        a.on_back(move || {
            if let Some(k) = k.upgrade() {
                k.send(Command::Retake(Step::Demographics));
            }
        });
    }

    // ---- fingers -----------------------------------------------------------------------------

    fn bind_fingers(self: &Rc<Self>, ui: &AppWindow) {
        let a = ui.global::<FingersAdapter>();
        let k = Rc::downgrade(self);
        a.on_capture(move || {
            if let Some(k) = k.upgrade() {
                if let Some(ui) = k.ui.upgrade() {
                    ui.global::<FingersAdapter>().set_busy(true);
                }
                k.send(Command::CaptureFinger);
            }
        });
        let k = Rc::downgrade(self);
        a.on_exception(move |reason| {
            let Some(k) = k.upgrade() else { return };
            let reason = match reason.as_str() {
                "missing" => ExceptionReason::Missing,
                "injured" => ExceptionReason::Injured,
                "bandaged" => ExceptionReason::Bandaged,
                "unusable" => ExceptionReason::Unusable,
                other => ExceptionReason::Other(other.to_string()),
            };
            k.send(Command::FingerException(reason));
        });
        let k = Rc::downgrade(self);
        a.on_next(move || {
            if let Some(k) = k.upgrade() {
                let step = k.st.borrow().step;
                k.show_step(step);
            }
        });
        let k = Rc::downgrade(self);
        a.on_back(move || {
            if let Some(k) = k.upgrade() {
                k.st.borrow_mut().fingers = [FingerStatus::Todo; 10];
                k.send(Command::Retake(Step::Face));
            }
        });
    }

    fn refresh_fingers(&self, ui: &AppWindow) {
        let st = self.st.borrow();
        let tr = ui.global::<Tr>();
        let tile = |p: FingerPosition| {
            let (status, score) = match st.fingers[usize::from(p.code() - 1)] {
                FingerStatus::Todo if st.next_finger == Some(p) => ("current", 0),
                FingerStatus::Todo => ("todo", 0),
                FingerStatus::Ok(q) => ("ok", q),
                FingerStatus::Low(q) => ("low", q),
                FingerStatus::Exception => ("exception", 0),
            };
            Finger {
                code: i32::from(p.code()),
                label: tr.invoke_finger_short(i32::from(p.code())),
                status: s(status),
                score: i32::from(score),
            }
        };
        // Palms down on the scanner: right hand thumb to little finger from left to right,
        // left hand little finger to thumb.
        let right: Vec<Finger> = FingerPosition::ALL[..5].iter().map(|&p| tile(p)).collect();
        let left: Vec<Finger> = FingerPosition::ALL[5..]
            .iter()
            .rev()
            .map(|&p| tile(p))
            .collect();
        let a = ui.global::<FingersAdapter>();
        a.set_right(ModelRc::new(VecModel::from(right)));
        a.set_left(ModelRc::new(VecModel::from(left)));
        a.set_done(st.next_finger.is_none());
        if let Some(p) = st.next_finger {
            a.set_current(i32::from(p.code()));
        }
    }

    // ---- signature ---------------------------------------------------------------------------

    fn bind_signature(self: &Rc<Self>, ui: &AppWindow) {
        let a = ui.global::<SignatureAdapter>();
        let k = Rc::downgrade(self);
        a.on_down(move |x, y| {
            if let Some(k) = k.upgrade() {
                let p = k.pen_point(x, y);
                k.st.borrow_mut().strokes.push(vec![p]);
                if let Some(ui) = k.ui.upgrade() {
                    ui.global::<SignatureAdapter>().set_result(s(""));
                }
                k.show_ink();
            }
        });
        let k = Rc::downgrade(self);
        a.on_move(move |x, y| {
            if let Some(k) = k.upgrade() {
                let p = k.pen_point(x, y);
                if let Some(stroke) = k.st.borrow_mut().strokes.last_mut() {
                    stroke.push(p);
                }
                k.show_ink();
            }
        });
        a.on_up(|| {});
        let k = Rc::downgrade(self);
        a.on_clear(move || {
            if let Some(k) = k.upgrade() {
                let mut st = k.st.borrow_mut();
                st.strokes.clear();
                st.pen_started = None;
                drop(st);
                k.show_ink();
            }
        });
        let k = Rc::downgrade(self);
        a.on_accept(move || {
            let Some(k) = k.upgrade() else { return };
            let Some(ui) = k.ui.upgrade() else { return };
            let a = ui.global::<SignatureAdapter>();
            let (width, height) = (a.get_pad_width() as u16, a.get_pad_height() as u16);
            let strokes = k.st.borrow().strokes.clone();
            if strokes.is_empty() {
                k.refuse_signature(&ui, Problem::new("signature-empty", "", "no ink"));
                return;
            }
            k.send(Command::Signature {
                width,
                height,
                strokes,
            });
        });
        let k = Rc::downgrade(self);
        a.on_back(move || {
            if let Some(k) = k.upgrade() {
                k.st.borrow_mut().fingers = [FingerStatus::Todo; 10];
                k.send(Command::Retake(Step::Fingers));
            }
        });
    }

    /// The signature was refused: said under the pad and on the status line.
    fn refuse_signature(&self, ui: &AppWindow, p: Problem) {
        let a = ui.global::<SignatureAdapter>();
        a.set_result(s(p.key));
        a.set_result_arg(s(&p.arg));
        self.problem(ui, p);
    }

    fn show_ink(&self) {
        let Some(ui) = self.ui.upgrade() else { return };
        let st = self.st.borrow();
        let mut path = String::new();
        for stroke in &st.strokes {
            for (i, (x, y, _)) in stroke.iter().enumerate() {
                path.push_str(&format!("{} {x} {y} ", if i == 0 { "M" } else { "L" }));
            }
            if let [(x, y, _)] = stroke.as_slice() {
                path.push_str(&format!("L {x} {y} "));
            }
        }
        let a = ui.global::<SignatureAdapter>();
        a.set_has_ink(!st.strokes.is_empty());
        a.set_ink(s(path.trim_end()));
    }

    // ---- review and confirmation -------------------------------------------------------------

    fn bind_review(self: &Rc<Self>, ui: &AppWindow) {
        let a = ui.global::<ReviewAdapter>();
        let k = Rc::downgrade(self);
        a.on_retake(move |what| {
            let Some(k) = k.upgrade() else { return };
            let step = match what.as_str() {
                "face" => Step::Face,
                "fingers" => {
                    k.st.borrow_mut().fingers = [FingerStatus::Todo; 10];
                    Step::Fingers
                }
                "signature" => {
                    k.st.borrow_mut().strokes.clear();
                    k.st.borrow_mut().pen_started = None;
                    k.show_ink();
                    Step::Signature
                }
                _ => Step::Demographics,
            };
            k.send(Command::Retake(step));
        });
        let k = Rc::downgrade(self);
        a.on_confirm(move || {
            let Some(k) = k.upgrade() else { return };
            k.st.borrow_mut().confirm_pin.clear();
            if let Some(ui) = k.ui.upgrade() {
                let c = ui.global::<ConfirmAdapter>();
                c.set_pin_filled(0);
                c.set_problem(s(""));
                c.set_busy(false);
                k.go(&ui, "confirm");
            }
        });
        let c = ui.global::<ConfirmAdapter>();
        let k = Rc::downgrade(self);
        c.on_digit(move |d| {
            let Some(k) = k.upgrade() else { return };
            let Some(ui) = k.ui.upgrade() else { return };
            let c = ui.global::<ConfirmAdapter>();
            if c.get_busy() {
                return;
            }
            let pin = {
                let mut st = k.st.borrow_mut();
                st.confirm_pin.push_str(&d);
                c.set_pin_filled(st.confirm_pin.len() as i32);
                (st.confirm_pin.len() >= super::login::PIN_LEN)
                    .then(|| std::mem::take(&mut st.confirm_pin))
            };
            if let Some(pin) = pin {
                c.set_busy(true);
                k.send(Command::Confirm { pin });
            }
        });
        let k = Rc::downgrade(self);
        c.on_erase(move || {
            let Some(k) = k.upgrade() else { return };
            let mut st = k.st.borrow_mut();
            st.confirm_pin.pop();
            if let Some(ui) = k.ui.upgrade() {
                ui.global::<ConfirmAdapter>()
                    .set_pin_filled(st.confirm_pin.len() as i32);
            }
        });
        let k = Rc::downgrade(self);
        c.on_cancel(move || {
            let Some(k) = k.upgrade() else { return };
            k.st.borrow_mut().confirm_pin.clear();
            if let Some(ui) = k.ui.upgrade() {
                k.go(&ui, "review");
            }
        });
    }

    fn refresh_review(&self, ui: &AppWindow) {
        let st = self.st.borrow();
        let Some(review) = st.review.as_ref() else {
            return;
        };
        let tr = ui.global::<Tr>();
        let lang = st.lang.code();
        let mut rows: Vec<ReviewRow> = Vec::new();
        for f in &st.schema.fields {
            let Some(value) = review.demographics.get(&f.name) else {
                continue;
            };
            let text = match value {
                serde_json::Value::Bool(true) => tr.invoke_yes().to_string(),
                serde_json::Value::Bool(false) => tr.invoke_no().to_string(),
                serde_json::Value::String(v) => f
                    .values
                    .iter()
                    .find(|e| &e.value == v)
                    .map_or(v.clone(), |e| e.label.get(lang).to_string()),
                other => other.to_string(),
            };
            rows.push(ReviewRow {
                label: s(f.label.get(lang)),
                value_font: s(font_for_text(&text)),
                value: s(text),
            });
            // Whether the previous card's number is the chip's or only typed.
            if f.name == "previous_card_number" {
                let how = Self::msg(
                    ui,
                    if review.previous_card_from_chip {
                        "card-from-chip"
                    } else {
                        "card-typed"
                    },
                );
                rows.push(ReviewRow {
                    label: s(Self::msg(ui, "card-evidence")),
                    value_font: s(font_for_text(&how)),
                    value: s(how),
                });
            }
        }
        let a = ui.global::<ReviewAdapter>();
        a.set_rows(ModelRc::new(VecModel::from(rows)));
        a.set_kind(tr.invoke_kind(s(review.kind.as_str())));
        let fingers: Vec<String> = review
            .fingers
            .iter()
            .map(|(p, q)| format!("{} {q}", tr.invoke_finger(i32::from(p.code()))))
            .chain(review.exceptions.iter().map(|(p, _)| {
                tr.invoke_excepted(tr.invoke_finger(i32::from(p.code())))
                    .to_string()
            }))
            .collect();
        a.set_fingers(s(fingers.join(" · ")));
        // "face" or a finger's name (English, from the workflow): said in the screen's language.
        let flags: Vec<String> = review
            .below_threshold
            .iter()
            .map(
                |what| match FingerPosition::ALL.into_iter().find(|p| p.name() == what) {
                    Some(p) => tr.invoke_finger(i32::from(p.code())).to_string(),
                    None => tr.invoke_face_photo().to_string(),
                },
            )
            .collect();
        a.set_flags(s(flags.join(", ")));
    }

    // ---- receipt -----------------------------------------------------------------------------

    fn bind_receipt(self: &Rc<Self>, ui: &AppWindow) {
        let a = ui.global::<ReceiptAdapter>();
        let k = Rc::downgrade(self);
        a.on_save(move |x, y, w, h| {
            let Some(k) = k.upgrade() else { return };
            let Some(ui) = k.ui.upgrade() else { return };
            let id = ui.global::<ReceiptAdapter>().get_id().to_string();
            match ui.window().take_snapshot() {
                Ok(shot) => {
                    // Only the paper, not the buttons and bars around it.
                    let scale = ui.window().scale_factor();
                    let (width, height, rgba) = crop_rgba(
                        shot.width(),
                        shot.height(),
                        shot.as_bytes(),
                        [x * scale, y * scale, w * scale, h * scale],
                    );
                    k.send(Command::SaveReceipt {
                        id,
                        width,
                        height,
                        rgba,
                    });
                }
                Err(e) => k.problem(&ui, Problem::new("receipt-unrendered", "", e.to_string())),
            }
        });
        let k = Rc::downgrade(self);
        a.on_done(move || {
            let Some(k) = k.upgrade() else { return };
            if let Some(ui) = k.ui.upgrade() {
                k.clear_status(&ui);
                k.reset_enrolment(&ui);
                k.go(&ui, "home");
            }
            k.send(Command::Home);
        });
    }

    fn show_receipt(&self, ui: &AppWindow, receipt: &Receipt) {
        let a = ui.global::<ReceiptAdapter>();
        a.set_id(s(&receipt.committed.id));
        a.set_seq(receipt.committed.seq as i32);
        a.set_centre(s(&receipt.station));
        a.set_officer(s(&receipt.officer));
        a.set_date(s(format_utc(receipt.at_ms)));
        a.set_saved(s(""));
        match qr_image(&format!(
            "TASJIL:{}:{}:{}",
            receipt.station, receipt.committed.seq, receipt.committed.id
        )) {
            Ok(img) => a.set_qr(img),
            Err(e) => self.problem(ui, Problem::new("qr-unshown", "", e.to_string())),
        }
    }

    // ---- diagnostics -------------------------------------------------------------------------

    fn bind_diagnostics(self: &Rc<Self>, ui: &AppWindow) {
        let a = ui.global::<DiagnosticsAdapter>();
        a.set_version(s(env!("CARGO_PKG_VERSION")));
        let k = Rc::downgrade(self);
        a.on_toggle_camera(move || {
            let Some(k) = k.upgrade() else { return };
            if let Some(plug) = &k.camera_plug {
                let now = !plug.load(Ordering::SeqCst);
                plug.store(now, Ordering::SeqCst);
                if let Some(ui) = k.ui.upgrade() {
                    ui.global::<DiagnosticsAdapter>().set_camera_plugged(now);
                }
            }
        });
        let k = Rc::downgrade(self);
        a.on_back(move || {
            let Some(k) = k.upgrade() else { return };
            let Some(ui) = k.ui.upgrade() else { return };
            let from = k.st.borrow_mut().diagnostics_from.take();
            let back = from.unwrap_or_else(|| "home".into());
            k.go(&ui, &back);
            // Back to a face step still waiting for its photo: the preview starts again.
            if back == "face" && !ui.global::<FaceAdapter>().get_captured() {
                k.frame_free.store(true, Ordering::Release);
                k.send(Command::Preview(true));
            }
        });
    }

    fn fill_diagnostics(&self, ui: &AppWindow) {
        let st = self.st.borrow();
        let a = ui.global::<DiagnosticsAdapter>();
        a.set_station(s(&st.station));
        a.set_devices(ModelRc::new(VecModel::from(
            st.devices.iter().map(s).collect::<Vec<_>>(),
        )));
        let home = ui.global::<HomeAdapter>();
        a.set_free_disk(home.get_free_disk());
        a.set_last_sync(home.get_last_sync());
        a.set_log_tail(s(st.log.iter().cloned().collect::<Vec<_>>().join("\n")));
    }

    // ---- worker results ----------------------------------------------------------------------

    /// Show the view of a workflow step (the workflow decides which step comes next).
    fn show_step(&self, step: Step) {
        let Some(ui) = self.ui.upgrade() else { return };
        self.st.borrow_mut().step = step;
        match step {
            Step::Identify => self.go(&ui, "kind"),
            Step::Demographics => {
                // A citizen renewing or correcting a card holds it: its chip is read first.
                let card_first = {
                    let st = self.st.borrow();
                    !st.card_done
                        && st
                            .form
                            .as_ref()
                            .is_some_and(|f| matches!(f.kind(), "renewal" | "correction"))
                };
                if card_first {
                    self.refresh_card(&ui);
                    self.go(&ui, "card");
                } else {
                    self.refresh_form_with(&ui, true);
                    self.go(&ui, "form");
                }
            }
            Step::Face => {
                let f = ui.global::<FaceAdapter>();
                f.set_captured(false);
                f.set_result(s(""));
                clear_face_live(&f);
                f.set_min_quality(50);
                self.frame_free.store(true, Ordering::Release);
                self.go(&ui, "face");
                self.send(Command::Preview(true));
            }
            Step::Fingers => {
                {
                    let mut st = self.st.borrow_mut();
                    st.next_finger = st
                        .fingers
                        .iter()
                        .position(|f| *f == FingerStatus::Todo)
                        .map(|i| FingerPosition::ALL[i]);
                }
                ui.global::<FingersAdapter>().set_result(s(""));
                self.refresh_fingers(&ui);
                self.go(&ui, "fingers");
            }
            Step::Signature => {
                ui.global::<SignatureAdapter>().set_result(s(""));
                self.go(&ui, "signature");
            }
            Step::Review => self.send(Command::Review),
        }
    }

    /// The kept enrolment was taken up again: the views get back what the officer had given
    /// (the form, the fingers' tiles, the photo taken) and the step it was at is shown.
    fn resumed(&self, ui: &AppWindow, r: super::session::Resumed) {
        use super::draft::FingerMark;
        self.reset_enrolment(ui);
        let schema = self.st.borrow().schema.clone();
        let mut form = Form::new(&schema, r.kind.as_str());
        form.fill(&r.form);
        {
            let mut st = self.st.borrow_mut();
            st.form = Some(form);
            st.card_done =
                r.step > Step::Demographics || r.form.contains_key("previous_card_number");
            for (p, mark) in &r.fingers {
                st.fingers[usize::from(p.code() - 1)] = match *mark {
                    FingerMark::Accepted(q) => FingerStatus::Ok(q),
                    FingerMark::Low(q) => FingerStatus::Low(q),
                    FingerMark::Excepted => FingerStatus::Exception,
                };
            }
        }
        if let Some(q) = r.face_quality {
            let f = ui.global::<FaceAdapter>();
            f.set_captured(true);
            f.set_result(s("accepted"));
            f.set_result_quality(i32::from(q));
        }
        tracing::info!("enrolment resumed from its draft at {:?}", r.step);
        self.status_msg(ui, "draft-resumed", String::new(), false);
        self.show_step(r.step);
    }

    /// Apply what the worker sent. Called on the UI thread.
    pub fn drain(&self) {
        for event in self.outbox.take() {
            self.apply(event);
        }
    }

    fn apply(&self, event: Event) {
        let Some(ui) = self.ui.upgrade() else { return };
        match event {
            Event::Fatal(p) => self.problem(&ui, p),
            Event::Ready {
                station,
                devices,
                sim_card,
            } => {
                let mut st = self.st.borrow_mut();
                st.station = station;
                st.devices = devices;
                if st.card == CardKeyEntry::new() {
                    st.card = sim_card_entry(sim_card.as_ref());
                }
                st.sim_card = sim_card;
            }
            Event::PreviousCard(read) => self.previous_card_read(&ui, read),
            Event::LoggedIn { name } => {
                self.st.borrow_mut().login.pin_result(true, None, now_ms());
                let officer = self
                    .st
                    .borrow()
                    .login
                    .officer()
                    .unwrap_or_default()
                    .to_string();
                ui.global::<App>().set_officer(s(&officer));
                ui.global::<LoginAdapter>().set_wrong_pin(false);
                self.status(&ui, &format!("{name} ({officer})"), false);
                self.send(Command::Home);
                self.go(&ui, "home");
            }
            Event::LoginRefused {
                problem,
                retries_left,
            } => {
                self.st
                    .borrow_mut()
                    .login
                    .pin_result(false, retries_left, now_ms());
                ui.global::<LoginAdapter>().set_wrong_pin(true);
                self.show_login(&ui);
                self.problem(&ui, problem);
            }
            Event::Badge(BadgeChange::Inserted(badge)) => {
                tracing::info!(
                    "badge {} ({}) inserted in {}",
                    badge.officer,
                    badge.name,
                    badge.reader
                );
                self.st.borrow_mut().login.insert_badge(
                    &badge.officer,
                    Some(badge.pin_retries),
                    now_ms(),
                );
                ui.global::<LoginAdapter>().set_wrong_pin(false);
                self.show_login(&ui);
            }
            Event::Badge(BadgeChange::Removed) => self.remove_badge(),
            Event::Badge(BadgeChange::Unusable(why)) => {
                tracing::warn!("not a badge: {why}");
                self.status_msg(&ui, "not-a-badge", String::new(), true);
            }
            Event::Badge(BadgeChange::ReaderProblem(why)) => {
                tracing::warn!("badge reader: {why}");
                self.status_msg(&ui, "no-reader", String::new(), true);
            }
            Event::Devices(devices) => {
                self.st.borrow_mut().devices = devices;
                if ui.global::<App>().get_view() == "diagnostics" {
                    self.fill_diagnostics(&ui);
                }
            }
            Event::Resumed(r) => self.resumed(&ui, *r),
            Event::Home(h) => {
                let a = ui.global::<HomeAdapter>();
                match &h.draft {
                    None => a.set_draft(s("")),
                    Some(d) => {
                        tracing::info!(
                            "home: a kept enrolment is offered ({}, at {:?})",
                            if d.mine {
                                "resume or discard"
                            } else {
                                "another officer's: discard only"
                            },
                            d.step
                        );
                        a.set_draft(s(if d.mine { "mine" } else { "other" }));
                        a.set_draft_saved(s(format_utc(d.saved_ms)));
                        a.set_draft_step(s(step_name(d.step)));
                    }
                }
                a.set_today(h.today as i32);
                a.set_records(h.records as i32);
                a.set_unsent(h.unsent as i32);
                a.set_unacknowledged(h.unacknowledged as i32);
                a.set_link(s(
                    if h.last_sync_ms
                        .is_some_and(|t| now_ms() - t < 10 * 60 * 1000)
                    {
                        "online"
                    } else {
                        "offline"
                    },
                ));
                a.set_last_sync(s(h.last_sync_ms.map_or("—".into(), format_utc)));
                a.set_free_disk(s(h
                    .free_disk_mb
                    .map_or("?".into(), |mb| format!("{:.1} GB", mb as f64 / 1024.0))));
                match &h.roster {
                    None => {
                        a.set_roster_version(-1);
                        a.set_roster_state(s("none"));
                    }
                    Some(r) => {
                        a.set_roster_version(i32::try_from(r.version).unwrap_or(i32::MAX));
                        a.set_roster_days(i32::try_from(r.age_days.max(0)).unwrap_or(i32::MAX));
                        a.set_roster_state(s(if r.block {
                            "block"
                        } else if r.warn {
                            "warn"
                        } else {
                            "ok"
                        }));
                    }
                }
            }
            Event::Step(step) => self.show_step(step),
            Event::FormErrors(errors) => {
                if let Some(f) = self.st.borrow_mut().form.as_mut() {
                    f.show_errors(&errors);
                }
                self.refresh_form_with(&ui, true);
                let names: Vec<String> = errors.iter().map(|e| e.to_string()).collect();
                tracing::info!("form refused: {}", names.join("; "));
                self.status_msg(&ui, "form-invalid", String::new(), true);
            }
            Event::Frame {
                frame,
                good_frames,
                countdown_ms,
                min_quality,
                fps,
            } => {
                let a = ui.global::<FaceAdapter>();
                let buffer = SharedPixelBuffer::<Rgb8Pixel>::clone_from_slice(
                    &frame.rgb,
                    frame.width,
                    frame.height,
                );
                a.set_frame(Image::from_rgb8(buffer));
                a.set_has_frame(true);
                a.set_quality(i32::from(frame.quality));
                a.set_advice(s(frame.advice));
                a.set_min_quality(i32::from(min_quality));
                a.set_good_frames(good_frames as i32);
                a.set_countdown(countdown_ms.map_or(0, |ms| ms.div_ceil(1000) as i32));
                a.set_fps(s(format!("{fps:.0} fps")));
                if !a.get_camera_ok() {
                    a.set_camera_ok(true);
                    self.st.borrow_mut().camera_lost = false;
                    self.status_msg(&ui, "camera-back", String::new(), false);
                }
                self.frame_free.store(true, Ordering::Release);
                self.frames_shown.set(self.frames_shown.get() + 1);
            }
            Event::CameraLost(e) => {
                let a = ui.global::<FaceAdapter>();
                a.set_camera_ok(false);
                // Nothing of the last picture stays: not its guidance, score or frame rate.
                clear_face_live(&a);
                let first = !std::mem::replace(&mut self.st.borrow_mut().camera_lost, true);
                if first {
                    tracing::warn!("camera lost: {e}");
                    self.status_msg(&ui, "camera-lost", String::new(), true);
                }
            }
            Event::Face(face) => {
                self.st.borrow_mut().step = face.step;
                let a = ui.global::<FaceAdapter>();
                let (kind, _, left) = outcome_parts(&face.outcome);
                a.set_result(s(kind));
                a.set_result_quality(i32::from(face.shown_quality()));
                a.set_result_left(left);
                a.set_captured(face.step != Step::Face);
                a.set_countdown(0);
                if face.step != Step::Face {
                    // The preview stops with the photo taken: no frame rate to speak of.
                    a.set_fps(s(""));
                }
            }
            Event::Finger { result, next, step } => {
                let i = usize::from(result.position.code() - 1);
                let (kind, _, left) = outcome_parts(&result.outcome);
                tracing::info!(
                    "finger {} {kind}, quality {}",
                    result.position.name(),
                    result.quality
                );
                let status = match result.outcome {
                    Outcome::Accepted => FingerStatus::Ok(result.quality),
                    Outcome::Retry { .. } => FingerStatus::Todo,
                    Outcome::KeptBelowThreshold { quality } => FingerStatus::Low(quality),
                };
                {
                    let mut st = self.st.borrow_mut();
                    st.fingers[i] = status;
                    st.next_finger = next;
                    st.step = step;
                }
                let a = ui.global::<FingersAdapter>();
                a.set_busy(false);
                a.set_result_finger(i32::from(result.position.code()));
                a.set_result(s(kind));
                a.set_result_quality(i32::from(result.quality));
                a.set_result_left(left);
                a.set_result_bad(kind != "accepted");
                let (w, h, px) = &result.thumb;
                let rgb: Vec<u8> = px.iter().flat_map(|&g| [g, g, g]).collect();
                a.set_thumb(Image::from_rgb8(
                    SharedPixelBuffer::<Rgb8Pixel>::clone_from_slice(&rgb, *w, *h),
                ));
                a.set_has_thumb(true);
                self.refresh_fingers(&ui);
            }
            Event::FingerExcepted {
                position,
                next,
                step,
            } => {
                {
                    let mut st = self.st.borrow_mut();
                    st.fingers[usize::from(position.code() - 1)] = FingerStatus::Exception;
                    st.next_finger = next;
                    st.step = step;
                }
                let a = ui.global::<FingersAdapter>();
                a.set_result_finger(i32::from(position.code()));
                a.set_result(s("exception"));
                a.set_result_bad(true);
                self.refresh_fingers(&ui);
            }
            Event::Review(review) => {
                let a = ui.global::<ReviewAdapter>();
                match decode_rgb(&review.face_jpeg, image::ImageFormat::Jpeg) {
                    Ok(img) => a.set_face(img),
                    Err(e) => self.problem(&ui, Problem::new("photo-unshown", "", e.to_string())),
                }
                match decode_rgb(&review.signature_png, image::ImageFormat::Png) {
                    Ok(img) => a.set_signature(img),
                    Err(e) => {
                        let p = Problem::new("signature-unshown", "", e.to_string());
                        self.problem(&ui, p);
                    }
                }
                self.st.borrow_mut().review = Some(review);
                self.refresh_review(&ui);
                self.go(&ui, "review");
            }
            Event::Committed(receipt) => {
                self.show_receipt(&ui, &receipt);
                self.status_msg(
                    &ui,
                    "committed",
                    format!(": {} (#{})", receipt.committed.id, receipt.committed.seq),
                    false,
                );
                self.st.borrow_mut().receipt = Some(receipt);
                self.go(&ui, "receipt");
            }
            Event::ConfirmRefused(p) => {
                let c = ui.global::<ConfirmAdapter>();
                c.set_busy(false);
                c.set_pin_filled(0);
                // Said beside the PIN pad, and on the status line.
                c.set_problem(s(p.key));
                c.set_problem_arg(s(&p.arg));
                self.problem(&ui, p);
            }
            Event::ReceiptSaved(path) => {
                ui.global::<ReceiptAdapter>().set_saved(s(&path));
                self.status_msg(&ui, "receipt-saved", format!(": {path}"), false);
            }
            Event::ScannerLost(what) => {
                ui.global::<FingersAdapter>().set_busy(false);
                tracing::warn!("fingerprint sensor lost: {what}");
                self.status_msg(&ui, "scanner-lost", String::new(), true);
            }
            Event::Error(p) => {
                ui.global::<FingersAdapter>().set_busy(false);
                if p.key.starts_with("signature-") {
                    self.refuse_signature(&ui, p);
                } else {
                    self.problem(&ui, p);
                }
            }
            Event::Supervisor(e) => self.apply_supervisor(&ui, e),
        }
    }
}

/// A workflow step as the views name it.
fn step_name(step: Step) -> &'static str {
    match step {
        Step::Identify => "identify",
        Step::Demographics => "demographics",
        Step::Face => "face",
        Step::Fingers => "fingers",
        Step::Signature => "signature",
        Step::Review => "review",
    }
}

/// Forget the live preview: its frame, guidance, score and frame rate (a new citizen, or a
/// camera that stopped answering).
fn clear_face_live(face: &FaceAdapter) {
    face.set_has_frame(false);
    face.set_frame(Image::default());
    face.set_advice(s(""));
    face.set_quality(0);
    face.set_good_frames(0);
    face.set_countdown(0);
    face.set_fps(s(""));
}

/// The part `[x, y, w, h]` (physical px) of an RGBA image, clamped to it; the whole image when
/// the part is empty.
fn crop_rgba(width: u32, height: u32, rgba: &[u8], part: [f32; 4]) -> (u32, u32, Vec<u8>) {
    let clamp = |v: f32, max: u32| (v.max(0.0).round() as u32).min(max);
    let (x0, y0) = (clamp(part[0], width), clamp(part[1], height));
    let (x1, y1) = (
        clamp(part[0] + part[2], width),
        clamp(part[1] + part[3], height),
    );
    if x1 <= x0 || y1 <= y0 || rgba.len() != (width * height * 4) as usize {
        return (width, height, rgba.to_vec());
    }
    let mut out = Vec::with_capacity(((x1 - x0) * (y1 - y0) * 4) as usize);
    for y in y0..y1 {
        let row = (y * width) as usize * 4;
        out.extend_from_slice(&rgba[row + x0 as usize * 4..row + x1 as usize * 4]);
    }
    (x1 - x0, y1 - y0, out)
}

/// An outcome as the views show it: kind, quality, tries left.
fn outcome_parts(outcome: &Outcome) -> (&'static str, i32, i32) {
    match *outcome {
        Outcome::Accepted => ("accepted", 0, 0),
        Outcome::Retry {
            quality,
            attempts_left,
        } => ("retry", i32::from(quality), attempts_left as i32),
        Outcome::KeptBelowThreshold { quality } => ("kept", i32::from(quality), 0),
    }
}

fn decode_rgb(bytes: &[u8], format: image::ImageFormat) -> anyhow::Result<Image> {
    let rgb = image::load_from_memory_with_format(bytes, format)?.into_rgb8();
    Ok(Image::from_rgb8(
        SharedPixelBuffer::<Rgb8Pixel>::clone_from_slice(rgb.as_raw(), rgb.width(), rgb.height()),
    ))
}

/// A QR code as an image: black modules on white, 4 modules of quiet zone.
pub fn qr_image(text: &str) -> anyhow::Result<Image> {
    let code = qrcode::QrCode::new(text.as_bytes())?;
    let n = code.width();
    let colors = code.to_colors();
    let (quiet, scale) = (4usize, 4usize);
    let side = (n + 2 * quiet) * scale;
    let mut buffer = SharedPixelBuffer::<Rgba8Pixel>::new(side as u32, side as u32);
    for (i, px) in buffer.make_mut_slice().iter_mut().enumerate() {
        let (x, y) = (i % side / scale, i / side / scale);
        let dark = x >= quiet
            && y >= quiet
            && x < n + quiet
            && y < n + quiet
            && colors[(y - quiet) * n + (x - quiet)] == qrcode::Color::Dark;
        let v = if dark { 0 } else { 255 };
        *px = Rgba8Pixel {
            r: v,
            g: v,
            b: v,
            a: 255,
        };
    }
    Ok(Image::from_rgba8(buffer))
}

/// `YYYY-MM-DD HH:MM UTC` from Unix milliseconds (civil-from-days, proleptic Gregorian).
pub fn format_utc(ms: i64) -> String {
    let secs = ms.div_euclid(1000);
    let (days, rem) = (secs.div_euclid(86_400), secs.rem_euclid(86_400));
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + i64::from(m <= 2);
    format!(
        "{y:04}-{m:02}-{d:02} {:02}:{:02} UTC",
        rem / 3600,
        rem / 60 % 60
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_crop_keeps_the_part_and_an_empty_part_keeps_the_whole() {
        // 3×2 image, pixel value = its index.
        let rgba: Vec<u8> = (0..6u8).flat_map(|i| [i, i, i, 255]).collect();
        let (w, h, part) = crop_rgba(3, 2, &rgba, [1.0, 0.0, 2.0, 2.0]);
        assert_eq!((w, h), (2, 2));
        let firsts: Vec<u8> = part.chunks(4).map(|p| p[0]).collect();
        assert_eq!(firsts, [1, 2, 4, 5]);
        assert_eq!(crop_rgba(3, 2, &rgba, [2.0, 1.0, 9.0, 9.0]).0, 1, "clamped");
        assert_eq!(crop_rgba(3, 2, &rgba, [0.0, 0.0, 0.0, 0.0]).2, rgba);
    }

    #[test]
    fn dates_are_printed_in_utc() {
        assert_eq!(format_utc(0), "1970-01-01 00:00 UTC");
        assert_eq!(format_utc(1_796_204_580_000), "2026-12-02 09:43 UTC");
        assert_eq!(format_utc(951_782_400_000), "2000-02-29 00:00 UTC");
    }
}
