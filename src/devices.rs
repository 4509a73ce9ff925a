//! Which device plays each role (camera, fingerprint scanner, signature pad, officer badge, the
//! citizen's previous card) under the `[devices]` configuration, opening them for `tasjil enrol`
//! and the kiosk, and the `tasjil devices` report.
//!
//! The rule: `auto` means the real device when one is attached. When none is, the station says
//! so and how to choose one; it never falls back to a simulated camera or scanner by itself —
//! a record with simulated biometrics must be a deliberate choice (`sim` in the configuration or
//! `--simulate`). Device protocols live in `tasjil-drivers`; this module only chooses and words.

use anyhow::bail;
use serde_json::json;
use tasjil_drivers::{Camera, FingerprintScanner};
use tasjil_sync::output::Output;

use tasjil_drivers::emrtd::{AccessKey, ChipError, IdentityPage, SoftChip};

use crate::config::{BadgeBackend, CameraBackend, Devices, FingerprintBackend, IdCardBackend};

/// How to choose a device, for error messages.
const HOW_TO_CHOOSE: &str = "see `tasjil devices`; choose in [devices] of DATA_DIR/config.toml \
     (or TASJIL_DEVICES_<ROLE>), or run with --simulate";

/// A device error as a clause: `Disconnected` carries a sentence of its own, which its display
/// ("device … is not connected") would wrap awkwardly.
#[cfg(any(feature = "v4l2", feature = "libfprint"))]
fn why(e: &tasjil_drivers::CaptureError) -> String {
    match e {
        tasjil_drivers::CaptureError::Disconnected(why) => why.clone(),
        other => other.to_string(),
    }
}

/// The camera the configuration asks for. `simulate` (from `--simulate`) forces the simulated one.
pub fn open_camera(cfg: &Devices, simulate: bool, seed: u64) -> anyhow::Result<Box<dyn Camera>> {
    if simulate || cfg.camera == CameraBackend::Sim {
        return Ok(Box::new(tasjil_drivers::sim::SimCamera::new(seed)));
    }
    open_v4l2(cfg)
}

#[cfg(feature = "v4l2")]
fn open_v4l2(cfg: &Devices) -> anyhow::Result<Box<dyn Camera>> {
    use tasjil_drivers::v4l2::{CameraSelector, V4l2Camera};
    let selector = CameraSelector::parse(&cfg.camera_device);
    match V4l2Camera::open(selector.clone()) {
        Ok(camera) => Ok(Box::new(camera)),
        Err(e) if selector == CameraSelector::Auto => {
            bail!("no camera for the face photo: {e}. Plug in a USB camera, or {HOW_TO_CHOOSE}")
        }
        Err(e) => bail!(
            "camera_device = {:?} cannot be used: {e}. {HOW_TO_CHOOSE}",
            cfg.camera_device
        ),
    }
}

#[cfg(not(feature = "v4l2"))]
fn open_v4l2(_: &Devices) -> anyhow::Result<Box<dyn Camera>> {
    bail!("this build has no V4L2 cameras (feature `v4l2`): {HOW_TO_CHOOSE}")
}

/// The fingerprint scanner the configuration asks for.
pub fn open_scanner(
    cfg: &Devices,
    simulate: bool,
    seed: u64,
) -> anyhow::Result<Box<dyn FingerprintScanner>> {
    if simulate || cfg.fingerprint == FingerprintBackend::Sim {
        return Ok(Box::new(crate::enrolment::simulate::devices(seed).1));
    }
    open_fprint(cfg)
}

#[cfg(feature = "libfprint")]
fn open_fprint(cfg: &Devices) -> anyhow::Result<Box<dyn FingerprintScanner>> {
    use tasjil_drivers::fprint::FprintScanner;
    let driver = Some(cfg.fingerprint_driver.as_str()).filter(|d| !d.is_empty());
    match FprintScanner::open(driver) {
        Ok(mut scanner) => {
            scanner.timeout = std::time::Duration::from_secs(cfg.fingerprint_timeout_secs.into());
            Ok(Box::new(scanner))
        }
        Err(e) => bail!(
            "no fingerprint scanner: {}. Plug in a sensor libfprint supports, or {HOW_TO_CHOOSE}",
            why(&e)
        ),
    }
}

#[cfg(not(feature = "libfprint"))]
fn open_fprint(_: &Devices) -> anyhow::Result<Box<dyn FingerprintScanner>> {
    bail!("this build has no libfprint sensors (feature `libfprint`): {HOW_TO_CHOOSE}")
}

/// One attached (or simulated) device, as `tasjil devices` lists it.
struct Listed {
    kind: &'static str,
    name: String,
    simulated: bool,
    ready: bool,
    /// Driver or backend, for matching a role to it.
    backend: &'static str,
    detail: String,
}

fn attached(notes: &mut Vec<String>) -> Vec<Listed> {
    let mut list = Vec::new();
    #[cfg(feature = "v4l2")]
    match tasjil_drivers::v4l2::cameras() {
        Ok(cameras) if cameras.is_empty() => notes.push("V4L2: no camera attached".into()),
        Ok(cameras) => list.extend(cameras.into_iter().map(|c| Listed {
            kind: "camera",
            name: format!("{} ({})", c.name, c.path.display()),
            simulated: false,
            ready: true,
            backend: "v4l2",
            detail: c.path.display().to_string(),
        })),
        Err(e) => notes.push(format!("V4L2: {e}")),
    }
    #[cfg(not(feature = "v4l2"))]
    notes.push("V4L2 cameras: not in this build (feature `v4l2`)".into());
    #[cfg(feature = "libfprint")]
    match tasjil_drivers::fprint::sensors() {
        Ok(sensors) if sensors.is_empty() => {
            notes.push("libfprint: no fingerprint sensor attached".into())
        }
        Ok(sensors) => list.extend(sensors.into_iter().map(|s| Listed {
            kind: "fingerprint",
            name: format!("{} (libfprint {}, {})", s.name, s.driver, s.device_id),
            simulated: false,
            ready: s.can_capture,
            backend: "libfprint",
            detail: s.driver,
        })),
        Err(e) => notes.push(format!("libfprint: {e}")),
    }
    #[cfg(not(feature = "libfprint"))]
    notes.push("libfprint sensors: not in this build (feature `libfprint`)".into());
    #[cfg(feature = "pcsc")]
    match tasjil_drivers::card::readers() {
        Ok(readers) if readers.is_empty() => notes.push("PC/SC: no card reader attached".into()),
        Ok(readers) => {
            for r in readers {
                let name = match (
                    r.card_present,
                    tasjil_drivers::card::PcscBadge::open(&r.name),
                ) {
                    (false, _) => format!("{} (no badge inserted)", r.name),
                    (true, Ok(b)) => format!(
                        "{}: badge {} ({}), {} PIN attempts left",
                        r.name,
                        b.info().officer_id,
                        b.info().officer_name,
                        b.info().pin_retries
                    ),
                    (true, Err(e)) => format!("{}: card not usable as a badge: {e}", r.name),
                };
                list.push(Listed {
                    kind: "card",
                    name,
                    simulated: false,
                    ready: r.card_present,
                    backend: "pcsc",
                    detail: r.name,
                });
            }
        }
        Err(e) => notes.push(format!("PC/SC: {e}")),
    }
    #[cfg(not(feature = "pcsc"))]
    notes.push("PC/SC badges: not in this build (feature `pcsc`)".into());
    list
}

fn simulated() -> Vec<Listed> {
    use tasjil_drivers::SignaturePad;
    let sim = |kind, name: String| Listed {
        kind,
        name,
        simulated: true,
        ready: true,
        backend: "sim",
        detail: String::new(),
    };
    vec![
        sim("camera", tasjil_drivers::sim::SimCamera::new(0).name()),
        sim(
            "fingerprint",
            tasjil_drivers::sim::SimScanner::new(0).name(),
        ),
        sim(
            "signature",
            tasjil_drivers::sim::SimSignaturePad::new(0).name(),
        ),
        sim(
            "card",
            "simulated officer badge (OpenPGP card defaults, PIN 123456)".into(),
        ),
    ]
}

/// What one role will use: the device's name, or the problem that stops it.
struct Role {
    role: &'static str,
    setting: String,
    uses: Result<String, String>,
    simulated: bool,
}

fn roles(cfg: &Devices, badge_flag: Option<BadgeBackend>, real: &[Listed]) -> Vec<Role> {
    let first = |kind: &str, want: &dyn Fn(&Listed) -> bool| {
        real.iter()
            .find(|d| d.kind == kind && d.ready && want(d))
            .map(|d| d.name.clone())
    };
    let sim = |role, setting: String, what: &str| Role {
        role,
        setting,
        uses: Ok(format!(
            "the simulated {what} (chosen in the configuration)"
        )),
        simulated: true,
    };
    let camera = match cfg.camera {
        CameraBackend::Sim => sim("camera", "sim".into(), "camera"),
        backend => {
            let setting = format!(
                "{} (camera_device = {:?})",
                if backend == CameraBackend::Auto {
                    "auto"
                } else {
                    "v4l2"
                },
                cfg.camera_device
            );
            let wanted = cfg.camera_device.trim();
            let found = first("camera", &|d| {
                wanted == "auto"
                    || wanted.is_empty()
                    || d.detail == wanted
                    || d.detail == format!("/dev/video{wanted}")
                    || std::fs::canonicalize(wanted)
                        .is_ok_and(|p| p.display().to_string() == d.detail)
            });
            Role {
                role: "camera",
                setting,
                uses: found.ok_or_else(|| {
                    format!("no camera is attached that matches: plug one in, or {HOW_TO_CHOOSE}")
                }),
                simulated: false,
            }
        }
    };
    let fingerprint = match cfg.fingerprint {
        FingerprintBackend::Sim => sim("fingerprint", "sim".into(), "fingerprint scanner"),
        backend => {
            let driver = cfg.fingerprint_driver.as_str();
            let found = first("fingerprint", &|d| driver.is_empty() || d.detail == driver);
            Role {
                role: "fingerprint",
                setting: format!(
                    "{} (fingerprint_driver = {driver:?})",
                    if backend == FingerprintBackend::Auto { "auto" } else { "libfprint" }
                ),
                uses: found.ok_or_else(|| {
                    format!("no fingerprint sensor is attached that matches: plug one in, or {HOW_TO_CHOOSE}")
                }),
                simulated: false,
            }
        }
    };
    let (badge_setting, badge_from) = match badge_flag {
        Some(b) => (b, "--badge / TASJIL_BADGE"),
        None => (cfg.badge, "configuration"),
    };
    let badge = match badge_setting {
        BadgeBackend::Sim => Role {
            role: "card",
            setting: format!("sim (from {badge_from})"),
            uses: Ok("the simulated officer badge (PIN 123456)".into()),
            simulated: true,
        },
        b => Role {
            role: "card",
            setting: format!(
                "{} (from {badge_from})",
                if b == BadgeBackend::Auto {
                    "auto"
                } else {
                    "pcsc"
                }
            ),
            uses: first("card", &|_| true).ok_or_else(|| {
                "no badge is inserted in a PC/SC reader: insert the officer's badge \
                 (approve and export with `auto` then use the simulated badge)"
                    .to_string()
            }),
            simulated: false,
        },
    };
    let signature = Role {
        role: "signature",
        setting: "touch screen".into(),
        uses: Ok(
            "the kiosk's touch screen; `tasjil enrol` reads pen strokes from --signature FILE"
                .into(),
        ),
        simulated: false,
    };
    let id_card = match cfg.id_card {
        IdCardBackend::Sim => sim(
            "id_card",
            "sim".into(),
            "previous card (its chip holds the simulated citizen)",
        ),
        backend => {
            let wanted = cfg.id_card_reader.trim();
            let readers = real.iter().filter(|d| d.kind == "card").count();
            let uses = if wanted.is_empty() && readers > 0 {
                Ok(format!(
                    "any PC/SC reader but the officer badge's ({readers} attached); the citizen's \
                     card is read when the officer presses Read the card"
                ))
            } else if wanted.is_empty() {
                Err(format!(
                    "no PC/SC reader is attached for the citizen's card: plug one in, or \
                     {HOW_TO_CHOOSE}"
                ))
            } else if real.iter().any(|d| d.kind == "card" && d.detail == wanted) {
                Ok(format!("the reader {wanted}"))
            } else {
                Err(format!(
                    "the reader {wanted:?} (id_card_reader) is not attached: plug it in, or \
                     {HOW_TO_CHOOSE}"
                ))
            };
            Role {
                role: "id_card",
                setting: format!(
                    "{} (id_card_reader = {wanted:?})",
                    if backend == IdCardBackend::Auto {
                        "auto"
                    } else {
                        "pcsc"
                    }
                ),
                uses,
                simulated: false,
            }
        }
    };
    vec![camera, fingerprint, signature, badge, id_card]
}

/// `tasjil devices`: what is attached, and what each role will use under the configuration.
pub fn report(cfg: &Devices, badge_flag: Option<BadgeBackend>) -> Output {
    let mut notes = Vec::new();
    let real = attached(&mut notes);
    let roles = roles(cfg, badge_flag, &real);
    let all: Vec<Listed> = simulated().into_iter().chain(real).collect();

    let mut human = String::from("kind         ready  device");
    for d in &all {
        let ready = if d.ready { "yes" } else { "no" };
        human.push_str(&format!("\n{:<12} {ready:<6} {}", d.kind, d.name));
    }
    for n in &notes {
        human.push_str(&format!("\n{n}"));
    }
    human.push_str("\n\nrole         setting -> uses");
    for r in &roles {
        match &r.uses {
            Ok(uses) => human.push_str(&format!("\n{:<12} {} -> {uses}", r.role, r.setting)),
            Err(problem) => human.push_str(&format!(
                "\n{:<12} {} -> NOTHING: {problem}",
                r.role, r.setting
            )),
        }
    }
    Output::ok(
        json!({
            "devices": all.iter().map(|d| json!({
                "kind": d.kind, "name": d.name, "simulated": d.simulated, "ready": d.ready,
                "backend": d.backend,
            })).collect::<Vec<_>>(),
            "roles": roles.iter().map(|r| json!({
                "role": r.role, "setting": r.setting, "simulated": r.simulated,
                "ready": r.uses.is_ok(),
                "uses": r.uses.as_ref().ok(), "problem": r.uses.as_ref().err(),
            })).collect::<Vec<_>>(),
            "notes": notes,
        }),
        human,
    )
}

/// Describe the configured camera, for messages: `auto`, `/dev/video2`, ….
fn camera_setting(cfg: &Devices) -> String {
    format!("camera {}", cfg.camera_device.trim())
}

/// A device the kiosk opens when it first needs it, and again after it failed to open: the
/// kiosk starts with a camera or sensor missing, says so where it is needed (the face or
/// fingers step, the diagnostics view) and carries on as soon as one is plugged in. Once
/// open, the drivers' own reopen-after-unplug applies.
pub struct Deferred<T: ?Sized> {
    open: Box<dyn FnMut() -> anyhow::Result<Box<T>> + Send>,
    inner: Option<Box<T>>,
    what: String,
    /// Why the last open failed (logged once per new reason).
    problem: Option<String>,
}

impl<T: ?Sized> std::fmt::Debug for Deferred<T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Deferred")
            .field("what", &self.what)
            .field("open", &self.inner.is_some())
            .field("problem", &self.problem)
            .finish()
    }
}

impl<T: ?Sized> Deferred<T> {
    fn new(what: String, open: impl FnMut() -> anyhow::Result<Box<T>> + Send + 'static) -> Self {
        let mut d = Deferred {
            open: Box::new(open),
            inner: None,
            what,
            problem: None,
        };
        d.get();
        d
    }

    /// The device, opening it if needed; `None` with the reason logged when it cannot be.
    fn get(&mut self) -> Option<&mut Box<T>> {
        if self.inner.is_none() {
            match (self.open)() {
                Ok(device) => {
                    tracing::info!("{} opened", self.what);
                    self.problem = None;
                    self.inner = Some(device);
                }
                Err(e) => {
                    let why = format!("{e:#}");
                    if self.problem.as_ref() != Some(&why) {
                        tracing::warn!("{}: {why}", self.what);
                    }
                    self.problem = Some(why);
                }
            }
        }
        self.inner.as_mut()
    }

    fn missing(&self) -> tasjil_drivers::CaptureError {
        tasjil_drivers::CaptureError::Disconnected(self.what.clone())
    }

    fn label(&self, name: impl FnOnce(&T) -> String) -> String {
        match (&self.inner, &self.problem) {
            (Some(d), _) => name(d),
            (None, Some(p)) => format!("{}: not available ({p})", self.what),
            (None, None) => format!("{}: not opened yet", self.what),
        }
    }
}

impl Camera for Deferred<dyn Camera> {
    fn name(&self) -> String {
        self.label(|c| c.name())
    }
    fn frame(&mut self) -> Result<tasjil_drivers::RgbFrame, tasjil_drivers::CaptureError> {
        match self.get() {
            Some(c) => c.frame(),
            None => Err(self.missing()),
        }
    }
    fn capture_still(
        &mut self,
    ) -> Result<tasjil_drivers::FaceCapture, tasjil_drivers::CaptureError> {
        match self.get() {
            Some(c) => c.capture_still(),
            None => Err(self.missing()),
        }
    }
}

impl FingerprintScanner for Deferred<dyn FingerprintScanner> {
    fn name(&self) -> String {
        self.label(|s| s.name())
    }
    fn capture(
        &mut self,
        position: tasjil_drivers::FingerPosition,
    ) -> Result<tasjil_drivers::FingerCapture, tasjil_drivers::CaptureError> {
        match self.get() {
            Some(s) => s.capture(position),
            None => Err(self.missing()),
        }
    }
}

/// The kiosk's camera under the configuration: the simulated one when configured (or
/// `simulate`), else the V4L2 camera, opened when first needed (see [`Deferred`]).
pub fn kiosk_camera(cfg: &Devices, simulate: bool, seed: u64) -> Box<dyn Camera> {
    if simulate || cfg.camera == CameraBackend::Sim {
        return Box::new(tasjil_drivers::sim::SimCamera::new(seed));
    }
    let cfg2 = cfg.clone();
    Box::new(Deferred::<dyn Camera>::new(
        camera_setting(cfg),
        move || open_v4l2(&cfg2),
    ))
}

/// The kiosk's fingerprint scanner under the configuration, like [`kiosk_camera`].
pub fn kiosk_scanner(cfg: &Devices, simulate: bool, seed: u64) -> Box<dyn FingerprintScanner> {
    if simulate || cfg.fingerprint == FingerprintBackend::Sim {
        return Box::new(tasjil_drivers::sim::SimScanner::new(seed));
    }
    let cfg2 = cfg.clone();
    let what = match cfg.fingerprint_driver.trim() {
        "" => "fingerprint sensor".to_string(),
        driver => format!("fingerprint sensor ({driver})"),
    };
    Box::new(Deferred::<dyn FingerprintScanner>::new(what, move || {
        open_fprint(&cfg2)
    }))
}

/// The reader of the citizen's previous card, for a renewal or a correction.
pub trait IdCardReader: Send {
    fn name(&self) -> String;
    /// Open the chip with `key` and read its identity page. `exclude`: readers not to look in
    /// (the officer's badge reader).
    fn read(&mut self, key: &AccessKey, exclude: &[String]) -> Result<IdentityPage, ChipError>;
    /// What a simulated card has printed on it (the officer types it from the card); `None` for
    /// a real reader.
    fn printed(&self) -> Option<IdentityPage> {
        None
    }
}

/// A simulated previous card: a software chip holding the simulated citizen of `seed`, always
/// "on the reader".
pub struct SimIdCard {
    chip: SoftChip,
    page: IdentityPage,
}

impl std::fmt::Debug for SimIdCard {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SimIdCard")
            .field("document_number", &self.page.document_number)
            .finish_non_exhaustive()
    }
}

impl SimIdCard {
    pub fn new(seed: u64) -> SimIdCard {
        let page = simulated_card(seed);
        SimIdCard {
            chip: SoftChip::new(&page, seed),
            page,
        }
    }

    /// What the simulated card holds (and has printed on it).
    pub fn page(&self) -> &IdentityPage {
        &self.page
    }
}

impl IdCardReader for SimIdCard {
    fn name(&self) -> String {
        format!(
            "simulated previous card {} (chip, BAC)",
            self.page.document_number
        )
    }

    fn read(&mut self, key: &AccessKey, _exclude: &[String]) -> Result<IdentityPage, ChipError> {
        tasjil_drivers::emrtd::read_identity(&mut self.chip, key)
    }

    fn printed(&self) -> Option<IdentityPage> {
        Some(self.page.clone())
    }
}

/// The identity page of the simulated citizen of `seed` (as `schema::simulated_demographics`
/// draws them for a renewal), on a card that expires within the next ten years.
pub fn simulated_card(seed: u64) -> IdentityPage {
    let d = crate::schema::simulated_demographics(seed, "renewal");
    let text = |k: &str| d.get(k).and_then(|v| v.as_str()).unwrap_or_default();
    let mrz_name = |s: &str| -> String {
        s.to_uppercase()
            .chars()
            .map(|c| if c.is_ascii_uppercase() { c } else { ' ' })
            .collect::<String>()
            .split_whitespace()
            .collect::<Vec<_>>()
            .join(" ")
    };
    // A birth year alone (unknown day) is printed as 1 January on this card.
    let birth = text("birth_date");
    let birth_yymmdd = match birth.split('-').collect::<Vec<_>>().as_slice() {
        [y, m, dd] => format!("{}{m}{dd}", &y[2..]),
        _ => format!("{}0101", birth.get(2..4).unwrap_or("90")),
    };
    IdentityPage {
        document_code: "ID".into(),
        issuing_state: "MAR".into(),
        document_number: text("previous_card_number").to_string(),
        birth_date: birth_yymmdd,
        sex: text("sex").to_string(),
        expiry_date: format!(
            "{:02}{:02}{:02}",
            27 + seed % 9,
            1 + seed % 12,
            1 + seed % 28
        ),
        nationality: "MAR".into(),
        surname: mrz_name(text("family_name_latin")),
        given_names: mrz_name(text("given_names_latin")),
        optional_data: String::new(),
    }
}

/// The citizen's card in a PC/SC reader (`reader`, or any but the excluded ones).
#[cfg(feature = "pcsc")]
struct PcscIdCard {
    reader: Option<String>,
}

#[cfg(feature = "pcsc")]
impl IdCardReader for PcscIdCard {
    fn name(&self) -> String {
        match &self.reader {
            Some(r) => format!("previous-card reader {r} (PC/SC)"),
            None => "previous-card reader: any PC/SC reader but the badge's".into(),
        }
    }

    fn read(&mut self, key: &AccessKey, exclude: &[String]) -> Result<IdentityPage, ChipError> {
        let (reader, page) =
            tasjil_drivers::emrtd::read_from_pcsc(self.reader.as_deref(), exclude, key)?;
        tracing::info!("previous card read from its chip in {reader}");
        Ok(page)
    }
}

/// Without PC/SC support built in, only the simulated card exists.
#[cfg(not(feature = "pcsc"))]
struct PcscIdCard {
    reader: Option<String>,
}

#[cfg(not(feature = "pcsc"))]
impl IdCardReader for PcscIdCard {
    fn name(&self) -> String {
        let _ = &self.reader;
        "previous-card reader: this build has no PC/SC support".into()
    }

    fn read(&mut self, _: &AccessKey, _: &[String]) -> Result<IdentityPage, ChipError> {
        Err(ChipError::NoService(
            "this build of tasjil has no PC/SC support (feature pcsc)".into(),
        ))
    }
}

/// The kiosk's previous-card reader under the configuration: the simulated card when configured
/// (or `simulate`), else PC/SC.
pub fn kiosk_id_card(cfg: &Devices, simulate: bool, seed: u64) -> Box<dyn IdCardReader> {
    if simulate || cfg.id_card == IdCardBackend::Sim {
        return Box::new(SimIdCard::new(seed));
    }
    let reader = Some(cfg.id_card_reader.trim().to_string()).filter(|r| !r.is_empty());
    Box::new(PcscIdCard { reader })
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicU32, Ordering};
    use std::sync::Arc;

    #[test]
    fn a_deferred_device_says_why_it_is_missing_and_is_used_once_it_opens() {
        // The camera "is plugged in" at the third attempt to open it.
        let tries = Arc::new(AtomicU32::new(0));
        let t = tries.clone();
        let mut camera = Deferred::<dyn Camera>::new("camera auto".into(), move || {
            if t.fetch_add(1, Ordering::SeqCst) < 2 {
                anyhow::bail!("no camera attached")
            }
            Ok(Box::new(tasjil_drivers::sim::SimCamera::new(3)) as Box<dyn Camera>)
        });
        assert_eq!(tries.load(Ordering::SeqCst), 1, "tried once at start");
        assert!(camera.name().contains("not available (no camera attached)"));
        assert!(matches!(
            camera.frame(),
            Err(tasjil_drivers::CaptureError::Disconnected(what)) if what == "camera auto"
        ));
        let frame = camera.frame().unwrap();
        assert_eq!(frame.rgb.len() as u32, frame.width * frame.height * 3);
        assert_eq!(tries.load(Ordering::SeqCst), 3);
        assert!(!camera.name().contains("not available"));
        camera.frame().unwrap();
        assert_eq!(tries.load(Ordering::SeqCst), 3, "opened once, then kept");
    }
}
