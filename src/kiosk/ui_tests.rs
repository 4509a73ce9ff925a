//! The kiosk in a real Slint window, headless: Slint's testing backend with the software
//! renderer, elements found by their ids (`with_debug_info(true)` in build.rs). One test walks a
//! whole enrolment with the simulated devices, pulls the camera's cable on the way, renders every
//! view in French and Arabic, and checks that the record is committed and verifies.
//!
//! `TASJIL_WRITE_SCREENS=1` also writes the renders to `docs/screens/`.

use std::path::PathBuf;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use i_slint_backend_testing::{ElementHandle, TestingBackend, TestingBackendOptions};
use slint::platform::{PointerEventButton, WindowEvent};
use slint::{ComponentHandle, LogicalPosition};

use super::session::test_station;
use super::ui::*;
use super::{build, Options, Running};
use crate::station::View;

fn init_backend() {
    // The platform is per thread; each test thread sets its own.
    let _ = slint::platform::set_platform(Box::new(TestingBackend::new(TestingBackendOptions {
        mock_time: true,
        threading: false,
        renderer_name: Some("software".into()),
    })));
}

/// The kiosk on `dir` in a headless window of the kiosk's size (1024×600), shown.
fn open_window(dir: &crate::station::DataDir, options: &Options) -> Harness {
    init_backend();
    let running = build(dir, options, Some(Box::new(|| {}))).unwrap();
    running
        .ui
        .window()
        .set_size(slint::LogicalSize::new(1024.0, 600.0));
    running.ui.show().unwrap();
    Harness {
        running,
        screens: Vec::new(),
    }
}

struct Harness {
    running: Running,
    screens: Vec<(String, u32, u32, Vec<u8>)>,
}

impl Harness {
    fn ui(&self) -> &AppWindow {
        &self.running.ui
    }

    fn view(&self) -> String {
        self.ui().global::<App>().get_view().to_string()
    }

    /// Apply the worker's results until `done` holds (the worker runs on its own thread).
    fn until(&self, what: &str, done: impl Fn(&AppWindow) -> bool) {
        let deadline = Instant::now() + Duration::from_secs(120);
        loop {
            self.running.kiosk.drain();
            if done(self.ui()) {
                return;
            }
            assert!(
                Instant::now() < deadline,
                "timed out waiting for {what}; view {} status {:?}",
                self.view(),
                self.ui().global::<App>().get_status()
            );
            std::thread::sleep(Duration::from_millis(5));
        }
    }

    fn element(&self, id: &str) -> ElementHandle {
        ElementHandle::find_by_element_id(self.ui(), id)
            .next()
            .unwrap_or_else(|| panic!("no element {id} on view {}", self.view()))
    }

    fn click(&self, id: &str) {
        self.element(id).invoke_accessible_default_action();
    }

    /// Press the button labelled `label` (texts that read the same are not buttons).
    fn click_label(&self, label: &str) {
        ElementHandle::find_by_accessible_label(self.ui(), label)
            .find(|e| e.accessible_role() == Some(i_slint_backend_testing::AccessibleRole::Button))
            .unwrap_or_else(|| panic!("nothing labelled {label:?} on view {}", self.view()))
            .invoke_accessible_default_action();
    }

    fn type_pin(&self, pin: &str) {
        for d in pin.chars() {
            self.click_label(&d.to_string());
        }
    }

    /// Scan every finger still to do on the fingers view (retries included).
    fn capture_fingers(&self) {
        // Ten fingers with their retries: far fewer presses than this.
        for _ in 0..60 {
            if self.ui().global::<FingersAdapter>().get_done() {
                return;
            }
            self.click("FingersView::capture");
            self.until("finger scanned", |ui| {
                !ui.global::<FingersAdapter>().get_busy()
            });
        }
        panic!(
            "the fingers are not done after 60 presses; view {} status {:?}",
            self.view(),
            self.ui().global::<App>().get_status()
        );
    }

    /// Draw a signature with the pointer on the pad.
    fn draw_signature(&self) {
        // Signature drawn with the pointer on the pad. The pen's clock advances 15 ms a pointer
        // event (a hand's pace), so the signature check sees a trace drawn in about half a second.
        let pen_ms = std::rc::Rc::new(std::cell::Cell::new(1_000u64));
        let clock = pen_ms.clone();
        self.running.kiosk.set_pen_clock(move || {
            clock.set(clock.get() + 15);
            clock.get()
        });
        let pad = self.element("SignatureView::pad");
        let (p, size) = (pad.absolute_position(), pad.size());
        let at =
            |fx: f32, fy: f32| LogicalPosition::new(p.x + fx * size.width, p.y + fy * size.height);
        let window = self.ui().window();
        window.dispatch_event(WindowEvent::PointerPressed {
            position: at(0.1, 0.6),
            button: PointerEventButton::Left,
        });
        for i in 1..=30 {
            let t = i as f32 / 30.0;
            window.dispatch_event(WindowEvent::PointerMoved {
                position: at(0.1 + 0.7 * t, 0.6 - 0.3 * (t * 9.0).sin()),
            });
        }
        window.dispatch_event(WindowEvent::PointerReleased {
            position: at(0.8, 0.5),
            button: PointerEventButton::Left,
        });
    }

    /// Render the current view in French and Arabic.
    fn shoot(&mut self, name: &str) {
        for lang in ["fr", "ar"] {
            self.ui().global::<App>().invoke_set_lang(lang.into());
            let shot = self.ui().window().take_snapshot().expect("snapshot");
            let rgba = shot.as_bytes().to_vec();
            self.screens
                .push((format!("{name}-{lang}"), shot.width(), shot.height(), rgba));
        }
        self.ui().global::<App>().invoke_set_lang("fr".into());
    }
}

/// Is there anything drawn but the background? Count pixels far from the page colour.
fn ink(rgba: &[u8]) -> usize {
    rgba.chunks(4)
        .filter(|p| (i32::from(p[0]) - 0xf4).abs() + (i32::from(p[1]) - 0xf6).abs() > 60)
        .count()
}

#[test]
fn a_complete_enrolment_in_the_window_is_committed_and_verifies() {
    let (_tmp, dir) = test_station();
    let mut h = open_window(
        &dir,
        &Options {
            simulate: true,
            seed: 11,
            ..Options::default()
        },
    );
    let plug = h.running.camera_plug.clone().unwrap();

    // Login: badge, a wrong PIN first (tries left shown), then the right one.
    assert_eq!(h.view(), "login");
    h.shoot("01-login");
    h.click("LoginView::insert-badge");
    assert_eq!(h.ui().global::<LoginAdapter>().get_state(), "pin");
    h.type_pin("111111");
    h.until("the wrong PIN refused", |ui| {
        ui.global::<LoginAdapter>().get_wrong_pin()
    });
    assert_eq!(h.ui().global::<LoginAdapter>().get_tries_left(), 2);
    h.shoot("02-pin");
    h.type_pin(crate::enrolment::badge::SIM_PIN);
    h.until("home", |ui| ui.global::<App>().get_view() == "home");
    h.until("home figures", |ui| {
        ui.global::<HomeAdapter>().get_free_disk() != "12 GB"
    });
    assert_eq!(h.ui().global::<HomeAdapter>().get_today(), 0);
    // A training station without a roster: the home screen (in French) says there is none.
    assert_eq!(h.ui().global::<HomeAdapter>().get_roster_state(), "none");
    let texts = window_texts(h.ui());
    assert!(
        texts.iter().any(|t| t == "Liste du centre") && texts.iter().any(|t| t == "aucune"),
        "{texts:?}"
    );
    h.shoot("03-home");

    // Diagnostics and back.
    h.click("AppWindow::diagnostics");
    assert_eq!(h.view(), "diagnostics");
    h.shoot("12-diagnostics");
    h.click_label("Retour");
    assert_eq!(h.view(), "home");

    // Kind.
    h.click("HomeView::start");
    h.until("kind", |ui| ui.global::<App>().get_view() == "kind");
    h.shoot("04-kind");
    h.click("KindView::kind-new");
    h.until("form", |ui| ui.global::<App>().get_view() == "form");

    // Demographics, typed into the generated form field by field.
    let data = crate::schema::simulated_demographics(11, "new");
    let schema = crate::schema::Schema::default_cnie();
    let rows = h.ui().global::<FormAdapter>().get_rows();
    use slint::Model;
    let names: Vec<String> = rows.iter().map(|r| r.name.to_string()).collect();
    assert!(names.contains(&"civil_act_number".to_string()));
    assert!(!names.contains(&"previous_card_number".to_string()));
    // Next with an empty form: the schema's errors show on their fields.
    h.click("NavBar::next-ltr");
    h.until("errors on the form", |ui| {
        ui.global::<FormAdapter>().get_errors() > 0
    });
    for name in &names {
        let Some(value) = data.get(name) else {
            continue;
        };
        h.click_label(name);
        let field = schema.field(name).unwrap();
        match value {
            serde_json::Value::Bool(b) => {
                h.click_label(if *b { "Oui" } else { "Non" });
            }
            serde_json::Value::String(v) if !field.values.is_empty() => {
                let label = field
                    .values
                    .iter()
                    .find(|e| &e.value == v)
                    .unwrap()
                    .label
                    .get("fr");
                h.click_label(label);
            }
            serde_json::Value::String(v) => {
                h.element("FormView::editor")
                    .set_accessible_value(v.as_str());
            }
            other => panic!("{other}"),
        }
    }
    // One field typed on the on-screen keyboard instead: AZERTY, shift, letters, erase.
    h.click_label("commune");
    h.element("FormView::editor").set_accessible_value("");
    for key in ["T", "i", "z", "x", "«"] {
        h.click_label(key);
    }
    let commune_row = |h: &Harness| {
        h.ui()
            .global::<FormAdapter>()
            .get_rows()
            .iter()
            .find(|r| r.name == "commune")
            .unwrap()
            .shown
            .to_string()
    };
    assert_eq!(
        commune_row(&h),
        "Tiz",
        "one capital, then small letters; « erases"
    );
    let commune = data["commune"].as_str().unwrap().to_string();
    h.element("FormView::editor")
        .set_accessible_value(commune.as_str());
    assert_eq!(commune_row(&h), commune);
    // Show the form from its top, on an Arabic field, for the screenshots.
    let family_ar = names.iter().position(|n| n == "family_name_ar").unwrap();
    h.ui()
        .global::<FormAdapter>()
        .invoke_select(family_ar as i32);
    h.shoot("05-form");

    // The camera's cable is pulled as the face step starts: a retry message, then it goes on.
    plug.store(false, Ordering::SeqCst);
    h.click("NavBar::next-ltr");
    h.until("face view", |ui| ui.global::<App>().get_view() == "face");
    h.until("camera lost shown", |ui| {
        !ui.global::<FaceAdapter>().get_camera_ok()
    });
    assert!(h.ui().global::<App>().get_status_error());
    assert!(h
        .ui()
        .global::<App>()
        .get_status()
        .contains("Caméra perdue"));
    h.shoot("06-face-camera-lost");
    plug.store(true, Ordering::SeqCst);
    h.until("camera back", |ui| {
        ui.global::<FaceAdapter>().get_camera_ok()
    });
    h.until("face captured", |ui| {
        ui.global::<FaceAdapter>().get_captured()
    });
    h.shoot("07-face");
    h.click("NavBar::next-ltr");

    // Fingers: the right thumb is bandaged, the others are scanned (with retries if needed).
    assert_eq!(h.view(), "fingers");
    h.click_label("Pansé");
    h.until("exception shown", |ui| {
        ui.global::<FingersAdapter>()
            .get_right()
            .row_data(0)
            .is_some_and(|f| f.status == "exception")
    });
    h.capture_fingers();
    h.shoot("08-fingers");
    h.click("NavBar::next-ltr");
    assert_eq!(h.view(), "signature");

    // Signature drawn with the pointer on the pad, at a hand's pace.
    h.draw_signature();
    assert!(h.ui().global::<SignatureAdapter>().get_has_ink());
    h.shoot("09-signature");
    h.click("NavBar::next-ltr");
    h.until("review", |ui| ui.global::<App>().get_view() == "review");
    assert!(h.ui().global::<ReviewAdapter>().get_rows().row_count() >= 15);
    h.shoot("10-review");

    // Officer confirmation with the badge PIN, then the receipt.
    h.click("ReviewView::confirm");
    assert_eq!(h.view(), "confirm");
    h.type_pin(crate::enrolment::badge::SIM_PIN);
    h.until("receipt", |ui| ui.global::<App>().get_view() == "receipt");
    let id = h.ui().global::<ReceiptAdapter>().get_id().to_string();
    h.shoot("11-receipt");
    h.click("ReceiptView::print");
    h.until("receipt saved", |ui| {
        !ui.global::<ReceiptAdapter>().get_saved().is_empty()
    });
    let saved = PathBuf::from(h.ui().global::<ReceiptAdapter>().get_saved().as_str());
    assert_eq!(saved, dir.0.join("receipts").join(format!("{id}.png")));
    assert!(std::fs::metadata(&saved).unwrap().len() > 1000);
    // The printable récépissé next to it: a valid PDF carrying the rendered receipt.
    let pdf = std::fs::read(saved.with_extension("pdf")).unwrap();
    crate::receipt_pdf::tests::check_structure(&pdf);
    assert!(String::from_utf8_lossy(&pdf).contains(&format!("({id}) Tj")));
    // Only the paper is printed (620 px wide in the view), not the window around it.
    assert!(
        String::from_utf8_lossy(&pdf).contains("/Subtype /Image /Width 620 "),
        "the receipt image is the paper"
    );
    h.click("ReceiptView::done");
    h.until("home again", |ui| {
        ui.global::<HomeAdapter>().get_today() == 1
    });
    assert_eq!(
        h.ui().global::<App>().get_status(),
        "",
        "the last citizen's receipt is not said on the next one's screens"
    );

    // The record is in the store, signed, co-signed, and verifies.
    let view = View::open(&dir).unwrap();
    let report = crate::verify::verify(&view).unwrap();
    assert!(report.ok, "{:?}", report.problems);
    assert_eq!(report.valid, 1);
    let rows = view.store.envelopes().unwrap();
    assert_eq!(rows.len(), 1);
    assert_eq!(rows[0].id, id);
    assert_eq!(rows[0].officer, super::adapter::SIM_OFFICER);

    // Removing the badge logs out.
    h.click("AppWindow::remove-badge");
    assert_eq!(h.view(), "login");
    assert_eq!(h.ui().global::<App>().get_officer(), "");

    // Every view was drawn in both languages, and Arabic differs from French.
    check_and_write_screens(&h.screens);
}

/// Every view drawn in both languages differs between them and is not blank;
/// `TASJIL_WRITE_SCREENS=1` writes them to docs/screens/.
fn check_and_write_screens(screens: &[(String, u32, u32, Vec<u8>)]) {
    let write = std::env::var_os("TASJIL_WRITE_SCREENS").is_some();
    let out = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("docs/screens");
    for pair in screens.chunks(2) {
        let [(fr_name, _, _, fr), (_, _, _, ar)] = pair else {
            unreachable!()
        };
        assert!(ink(fr) > 2000, "{fr_name} is nearly blank");
        assert_ne!(fr, ar, "{fr_name}: the Arabic render is the French one");
    }
    if write {
        std::fs::create_dir_all(&out).unwrap();
        for (name, w, hgt, rgba) in screens {
            let img = image::RgbaImage::from_raw(*w, *hgt, rgba.clone()).unwrap();
            let rgb = image::DynamicImage::ImageRgba8(img).to_rgb8();
            rgb.save(out.join(format!("{name}.png"))).unwrap();
        }
    }
}

/// Start the kiosk on `dir` in a headless window of the kiosk's size and log in with the
/// simulated badge through the login view.
fn logged_in(dir: &crate::station::DataDir, seed: u64) -> Harness {
    let h = open_window(
        dir,
        &Options {
            simulate: true,
            seed,
            ..Options::default()
        },
    );
    h.click("LoginView::insert-badge");
    h.type_pin(crate::enrolment::badge::SIM_PIN);
    h.until("home", |ui| ui.global::<App>().get_view() == "home");
    h
}

fn states(ui: &AppWindow) -> Vec<String> {
    use slint::Model;
    ui.global::<SupervisorAdapter>()
        .get_records()
        .iter()
        .map(|r| r.state.to_string())
        .collect()
}

#[test]
fn the_supervisor_approves_exports_and_takes_the_receipt_back_in_the_window() {
    use tasjil_central::{import::import, CentreStore};

    // A station with two records committed by an officer, and the centre it reports to.
    let tmp = tempfile::tempdir().unwrap();
    let centre = tasjil_sync::CentreKeys::generate();
    let centre_pub = tmp.path().join("centre.pub");
    std::fs::write(&centre_pub, centre.public().to_json()).unwrap();
    let dir = crate::station::DataDir(tmp.path().join("station"));
    crate::station::init(&dir, "VAN-SUP-1", &centre_pub, true).unwrap();
    super::supervisor::tests::commit_simulated(&dir, 2, 21);
    let usb = tmp.path().join("usb");
    std::fs::create_dir(&usb).unwrap();

    let mut h = logged_in(&dir, 21);
    h.click("HomeView::supervisor");
    assert_eq!(h.view(), "supervisor");
    h.until("the records", |ui| {
        !ui.global::<SupervisorAdapter>().get_busy() && states(ui).len() == 2
    });
    assert_eq!(states(h.ui()), ["awaiting", "awaiting"]);
    assert_eq!(h.ui().global::<SupervisorAdapter>().get_awaiting(), 2);
    h.shoot("13-supervisor");

    // The stick's folder typed on the on-screen keyboard (a kiosk has no other).
    let target = |h: &Harness| {
        h.ui()
            .global::<SupervisorAdapter>()
            .get_target()
            .to_string()
    };
    h.click("Actions::open-keys");
    assert!(h.ui().global::<SupervisorAdapter>().get_typing());
    while !target(&h).is_empty() {
        h.click("PathKeys::erase-key");
    }
    h.click_label("q");
    assert_eq!(target(&h), "q");
    h.click("PathKeys::erase-key");
    let mut caps = false;
    for c in usb.to_str().unwrap().chars() {
        if c.is_ascii_alphabetic() && c.is_ascii_uppercase() != caps {
            h.click_label("Aa");
            caps = !caps;
        }
        h.click_label(&c.to_string());
    }
    assert_eq!(target(&h), usb.to_str().unwrap());
    h.shoot("17-supervisor-keyboard");
    h.click("PathKeys::done-keys");
    assert!(!h.ui().global::<SupervisorAdapter>().get_typing());

    // Export before approval: nothing written, the held-back records named with the reason.
    h.click("Actions::export");
    assert_eq!(h.ui().global::<SupervisorAdapter>().get_pin_for(), "export");
    h.type_pin(crate::enrolment::badge::SIM_PIN);
    h.until("the export refused", |ui| {
        ui.global::<SupervisorAdapter>().get_outcome_error()
    });
    let outcome = h
        .ui()
        .global::<SupervisorAdapter>()
        .get_outcome()
        .to_string();
    assert!(outcome.contains("2 dossiers retenus"), "{outcome}");
    assert!(outcome.contains("not approved"), "{outcome}");
    let status = h.ui().global::<App>().get_status().to_string();
    assert!(status.ends_with("— 2 dossiers retenus"), "{status}");
    assert_eq!(std::fs::read_dir(&usb).unwrap().count(), 0);

    // Approval with the supervisor's PIN: a wrong one first.
    h.click("Actions::approve");
    assert_eq!(
        h.ui().global::<SupervisorAdapter>().get_pin_for(),
        "approve"
    );
    h.shoot("14-supervisor-pin");
    h.type_pin("111111");
    h.until("the wrong PIN refused", |ui| {
        let a = ui.global::<SupervisorAdapter>();
        !a.get_busy() && a.get_outcome().contains("PIN du superviseur")
    });
    assert_eq!(h.ui().global::<SupervisorAdapter>().get_awaiting(), 2);
    h.click("Actions::approve");
    h.type_pin(crate::enrolment::badge::SIM_PIN);
    h.until("approved", |ui| states(ui) == ["approved", "approved"]);
    let status = h.ui().global::<App>().get_status().to_string();
    assert!(
        status.contains("2 dossiers approuvés par SUP-SIM-1"),
        "{status}"
    );

    // Export to the stick, with the progress bar on the way.
    h.click("Actions::export");
    h.type_pin(crate::enrolment::badge::SIM_PIN);
    h.until("exported", |ui| states(ui) == ["exported", "exported"]);
    assert!(h.ui().global::<SupervisorAdapter>().get_progress() < 0.0);
    let bundles: Vec<PathBuf> = std::fs::read_dir(&usb)
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    assert_eq!(bundles.len(), 1, "{bundles:?}");
    let bundle = &bundles[0];
    assert_eq!(bundle.file_name().unwrap(), "VAN-SUP-1-1-2.tasjil");
    assert!(h
        .ui()
        .global::<SupervisorAdapter>()
        .get_outcome()
        .contains(bundle.to_str().unwrap()));
    h.shoot("15-supervisor-exported");

    // The centre takes the bundle in (it verifies everything first) and writes its receipt.
    let store = CentreStore::open(&tmp.path().join("centre")).unwrap();
    let public = tasjil_sync::StationPublic::load(&dir.public()).unwrap();
    store.add_station(&public, crate::now_ms()).unwrap();
    let report = import(
        &store,
        &centre.signing,
        bundle,
        crate::now_ms(),
        &mut |_, _, _| {},
    )
    .unwrap();
    assert_eq!((report.stored, report.verified), (2, 2));
    let receipt = report.receipt.unwrap();
    let receipt_path = PathBuf::from(format!("{}.receipt", bundle.display()));
    std::fs::write(&receipt_path, receipt.to_bytes().unwrap()).unwrap();

    // Back at the kiosk: import the receipt from the stick; the records are acknowledged.
    h.click("Actions::import");
    h.until("acknowledged", |ui| {
        states(ui) == ["acknowledged", "acknowledged"]
    });
    let status = h.ui().global::<App>().get_status().to_string();
    assert!(
        status.contains("1 accusés importés : 2 dossiers acquittés"),
        "{status}"
    );
    let counts = View::open(&dir).unwrap().store.counts().unwrap();
    assert_eq!((counts.acknowledged, counts.exported), (2, 0));
    h.shoot("16-supervisor-acknowledged");

    // The status line and the outcome follow a language switch.
    h.ui().global::<App>().invoke_set_lang("en".into());
    let status = h.ui().global::<App>().get_status().to_string();
    assert_eq!(status, "1 receipts imported: 2 records acknowledged");
    assert_eq!(
        h.ui().global::<SupervisorAdapter>().get_outcome().as_str(),
        status
    );
    h.ui().global::<App>().invoke_set_lang("ar".into());
    assert!(h.ui().global::<App>().get_status().contains("إشعارات"));
    h.ui().global::<App>().invoke_set_lang("fr".into());

    // Importing the same receipt again changes nothing and says so without error.
    h.click("Actions::import");
    h.until("imported again", |ui| {
        !ui.global::<SupervisorAdapter>().get_busy()
    });
    assert!(!h.ui().global::<SupervisorAdapter>().get_outcome_error());

    // The centre asks for one citizen again: the next receipt brings it, and the supervisor's
    // list says whom to call back and why.
    let first = store
        .list()
        .unwrap()
        .into_iter()
        .find(|r| r.seq == 1)
        .unwrap();
    store
        .set_issuance(
            &[(first.station.clone(), first.id.clone())],
            tasjil_central::store::console::Issuance::Reenrol,
            Some("Photo not compliant: eyes closed"),
            "issa",
            crate::now_ms(),
        )
        .unwrap();
    let again = import(
        &store,
        &centre.signing,
        bundle,
        crate::now_ms() + 1,
        &mut |_, _, _| {},
    )
    .unwrap();
    std::fs::write(&receipt_path, again.receipt.unwrap().to_bytes().unwrap()).unwrap();
    h.click("Actions::import");
    h.until("the call-back", |ui| {
        states(ui) == ["reenrol", "acknowledged"]
    });
    assert_eq!(h.ui().global::<SupervisorAdapter>().get_reenrol(), 1);
    let reason = {
        use slint::Model;
        h.ui()
            .global::<SupervisorAdapter>()
            .get_records()
            .row_data(0)
            .unwrap()
            .reason
            .to_string()
    };
    assert_eq!(reason, "Photo not compliant: eyes closed");
    let counts = View::open(&dir).unwrap().store.counts().unwrap();
    assert_eq!(counts.reenrol, 1);
    h.shoot("19-supervisor-reenrol");

    h.click("SupervisorView::back");
    assert_eq!(h.view(), "home");
    check_and_write_screens(&h.screens);
}

#[test]
fn with_a_card_badge_the_officer_logs_in_co_signs_on_the_card_and_pulling_it_logs_out() {
    use tasjil_vcard::{require_stack, VirtualCard, VirtualChip, ADMIN_PIN, READER, USER_PIN};
    const TEST: &str = "kiosk::ui_tests::with_a_card_badge…";
    let Some(_stack) = require_stack(TEST) else {
        return;
    };
    let Some(bin) = tasjil_vcard::card_binary(TEST) else {
        return;
    };
    // A badge as a supervisor makes one with `tasjil badge personalise`.
    let mut card = VirtualCard::insert(&bin, 0x7A51_00E5);
    let key = tasjil_drivers::card::personalise(
        READER,
        ADMIN_PIN,
        &tasjil_drivers::card::Personalisation {
            officer_id: "OFF-0077",
            officer_name: "Amrani<<Yassine",
        },
    )
    .unwrap();

    // The station's real badge path (PC/SC); camera and scanner simulated by configuration.
    let (_tmp, dir) = test_station();
    std::fs::write(
        dir.0.join("config.toml"),
        "[devices]\ncamera = \"sim\"\nfingerprint = \"sim\"\nbadge = \"pcsc\"\nid_card = \"pcsc\"\n",
    )
    .unwrap();
    let h = open_window(&dir, &Options::default());
    assert!(
        ElementHandle::find_by_element_id(h.ui(), "LoginView::insert-badge")
            .next()
            .is_none(),
        "no simulated badge button with a card reader"
    );
    assert!(!h.ui().global::<App>().get_simulate());

    // The badge already in the reader is read: the PIN pad opens for its officer, with the
    // card's own count of tries.
    h.until("the PIN pad for the card", |ui| {
        ui.global::<LoginAdapter>().get_state() == "pin"
    });
    assert_eq!(h.ui().global::<LoginAdapter>().get_officer(), "OFF-0077");
    assert_eq!(h.ui().global::<LoginAdapter>().get_tries_left(), 3);
    h.type_pin("654321");
    h.until("the wrong PIN refused", |ui| {
        ui.global::<LoginAdapter>().get_wrong_pin()
    });
    assert_eq!(
        h.ui().global::<LoginAdapter>().get_tries_left(),
        2,
        "the card's counter"
    );
    h.type_pin(USER_PIN);
    h.until("home", |ui| ui.global::<App>().get_view() == "home");
    assert_eq!(h.ui().global::<App>().get_officer(), "OFF-0077");

    // A renewal, confirmed with the card's PIN: the card co-signs. The citizen's previous card
    // is read through a second reader while the badge stays in the first.
    h.click("HomeView::start");
    h.until("kind", |ui| ui.global::<App>().get_view() == "kind");
    h.click("KindView::kind-renewal");
    h.until("the previous card view", |ui| {
        ui.global::<App>().get_view() == "card"
    });
    assert_eq!(
        card_fields(h.ui())[0],
        "",
        "nothing typed in advance with a real reader"
    );
    let sim = crate::schema::simulated_demographics(31, "renewal");
    let page = crate::devices::simulated_card(31);
    let birth = sim["birth_date"].as_str().unwrap();
    let (y, m, d) = (&birth[0..4], &birth[5..7], &birth[8..10]);
    let expiry = format!(
        "{}{}20{}",
        &page.expiry_date[4..6],
        &page.expiry_date[2..4],
        &page.expiry_date[0..2]
    );
    // A number shorter than nine characters: the officer taps the next field; a full date
    // moves on by itself.
    for c in page.document_number.chars() {
        h.click_label(&c.to_string());
    }
    h.click_label("Date de naissance (jour/mois/année)");
    for c in format!("{d}{m}{y}{expiry}").chars() {
        h.click_label(&c.to_string());
    }
    // No card on the reader yet (the badge's reader is not looked in).
    h.click("NavBar::next-ltr");
    h.until("no card said", |ui| {
        !ui.global::<PreviousAdapter>().get_busy() && ui.global::<App>().get_status_error()
    });
    assert!(
        h.ui()
            .global::<App>()
            .get_status()
            .contains("Aucune carte sur le lecteur"),
        "{}",
        h.ui().global::<App>().get_status()
    );
    let mut chip = VirtualChip::insert(&bin, &page);
    h.click("NavBar::next-ltr");
    h.until("the form, filled from the chip", |ui| {
        ui.global::<App>().get_view() == "form"
    });
    assert_eq!(
        form_value(h.ui(), "previous_card_number"),
        page.document_number
    );
    assert_eq!(
        form_value(h.ui(), "family_name_latin"),
        sim["family_name_latin"].as_str().unwrap()
    );
    assert_eq!(form_value(h.ui(), "birth_date"), birth);
    chip.pull();
    // The badge poll saw a second card come and go: the officer is still logged in.
    assert_eq!(h.ui().global::<App>().get_officer(), "OFF-0077");
    h.running.kiosk.fill_form(&sim);
    h.click("NavBar::next-ltr");
    h.until("face captured", |ui| {
        ui.global::<FaceAdapter>().get_captured()
    });
    h.click("NavBar::next-ltr");
    h.capture_fingers();
    h.click("NavBar::next-ltr");
    h.draw_signature();
    h.click("NavBar::next-ltr");
    h.until("review", |ui| ui.global::<App>().get_view() == "review");
    {
        use slint::Model;
        let rows = h.ui().global::<ReviewAdapter>().get_rows();
        assert!(
            rows.iter()
                .any(|r| r.label == "Carte précédente" && r.value == "numéro lu dans sa puce"),
            "the review says the number is the chip's"
        );
    }
    h.click("ReviewView::confirm");
    h.type_pin("000000");
    // Said in the screen's language, with the card's own count of tries.
    h.until("the wrong confirmation PIN refused", |ui| {
        ui.global::<App>().get_status_error()
            && ui.global::<App>().get_status()
                == "Code PIN erroné : encore 2 essais avant le blocage du badge"
    });
    assert_eq!(h.view(), "confirm", "still at the confirmation");
    h.type_pin(USER_PIN);
    h.until("receipt", |ui| ui.global::<App>().get_view() == "receipt");
    let id = h.ui().global::<ReceiptAdapter>().get_id().to_string();

    let view = View::open(&dir).unwrap();
    let report = crate::verify::verify(&view).unwrap();
    assert!(report.ok, "{:?}", report.problems);
    assert_eq!(report.valid, 1);
    let rows = view.store.envelopes().unwrap();
    assert_eq!(
        (rows[0].id.as_str(), rows[0].officer.as_str()),
        (id.as_str(), "OFF-0077")
    );
    let officer = view
        .store
        .officers()
        .unwrap()
        .into_iter()
        .find(|o| o.id == "OFF-0077")
        .unwrap();
    assert_eq!(
        officer.public_key,
        hex::encode(key),
        "the card's key co-signed"
    );

    // The badge is pulled out: logged out, back to the login view waiting for a badge.
    card.pull();
    h.until("logged out", |ui| {
        ui.global::<App>().get_view() == "login"
            && ui.global::<LoginAdapter>().get_state() == "no-badge"
    });
    assert_eq!(h.ui().global::<App>().get_officer(), "");
}

/// A form row's shown value, by field name.
fn form_value(ui: &AppWindow, name: &str) -> String {
    use slint::Model;
    ui.global::<FormAdapter>()
        .get_rows()
        .iter()
        .find(|r| r.name == name)
        .map(|r| r.shown.to_string())
        .unwrap_or_else(|| panic!("no form row {name}"))
}

/// The previous card's fields as shown.
fn card_fields(ui: &AppWindow) -> Vec<String> {
    use slint::Model;
    ui.global::<PreviousAdapter>()
        .get_fields()
        .iter()
        .map(|f| f.shown.to_string())
        .collect()
}

#[test]
fn a_renewal_reads_the_previous_card_s_chip_into_the_form() {
    let (_tmp, dir) = test_station();
    let seed = 23;
    let mut h = logged_in(&dir, seed);
    let card = crate::devices::simulated_card(seed);
    h.click("HomeView::start");
    h.until("kind", |ui| ui.global::<App>().get_view() == "kind");
    h.click("KindView::kind-renewal");
    // The citizen holds the card: its view comes before the form, with the simulated card's
    // printed number and dates typed in advance.
    h.until("the previous card view", |ui| {
        ui.global::<App>().get_view() == "card"
    });
    let fields = card_fields(h.ui());
    assert_eq!(fields[0], card.document_number);
    assert_eq!(fields[1].len(), 10, "DD/MM/YYYY: {fields:?}");
    h.shoot("18-previous-card");

    // One wrong character in the number: the chip refuses, nothing is filled, the view stays.
    h.ui().global::<PreviousAdapter>().invoke_select(0);
    h.click_label("erase");
    let last = card.document_number.chars().last().unwrap();
    let wrong = if last == '7' { "8" } else { "7" };
    h.click_label(wrong);
    h.click("NavBar::next-ltr");
    h.until("the chip's refusal", |ui| {
        !ui.global::<PreviousAdapter>().get_busy() && ui.global::<App>().get_status_error()
    });
    assert!(
        h.ui()
            .global::<App>()
            .get_status()
            .contains("La puce a refusé"),
        "{}",
        h.ui().global::<App>().get_status()
    );
    assert_eq!(h.view(), "card");

    // An expiry date half erased: named before the chip is asked, and that field is selected.
    h.ui().global::<PreviousAdapter>().invoke_select(2);
    for _ in 0..3 {
        h.click_label("erase");
    }
    h.click("NavBar::next-ltr");
    assert!(h
        .ui()
        .global::<App>()
        .get_status()
        .contains("La date d'expiration n'est pas une vraie date"));
    assert_eq!(card_fields(h.ui())[2].matches('_').count(), 3);

    // Typed right, on the view's keys: the chip opens and its identity page fills the form.
    // The erased three are the year's last three digits ("20YY"): "0", then YY.
    let expiry = &card.expiry_date;
    for d in ["0", &expiry[0..1], &expiry[1..2]] {
        h.click_label(d);
    }
    h.ui().global::<PreviousAdapter>().invoke_select(0);
    h.click_label("erase");
    h.click_label(&last.to_string());
    h.click("NavBar::next-ltr");
    h.until("the form, filled from the chip", |ui| {
        ui.global::<App>().get_view() == "form"
    });
    assert!(h
        .ui()
        .global::<App>()
        .get_status()
        .contains("Carte précédente lue dans sa puce"));
    let sim = crate::schema::simulated_demographics(seed, "renewal");
    assert_eq!(
        form_value(h.ui(), "previous_card_number"),
        card.document_number
    );
    assert_eq!(
        form_value(h.ui(), "family_name_latin"),
        sim["family_name_latin"].as_str().unwrap()
    );
    assert_eq!(
        form_value(h.ui(), "given_names_latin"),
        sim["given_names_latin"].as_str().unwrap()
    );
    assert_eq!(
        form_value(h.ui(), "birth_date"),
        sim["birth_date"].as_str().unwrap()
    );

    // Back to the kind; a correction without its card: the number is typed in the form.
    h.click("NavBar::back-ltr");
    h.until("kind", |ui| ui.global::<App>().get_view() == "kind");
    h.click("KindView::kind-correction");
    h.until("the previous card view", |ui| {
        ui.global::<App>().get_view() == "card"
    });
    h.click("PreviousView::type-instead");
    h.until("form", |ui| ui.global::<App>().get_view() == "form");
    assert_eq!(
        form_value(h.ui(), "previous_card_number"),
        card.document_number,
        "what was read is kept"
    );
    check_and_write_screens(&h.screens);
}

// ---- what the officer reads: no English on a French, Arabic or Tamazight screen --------------

/// English words a French, Arabic or Tamazight screen never needs (none is a French word), so
/// one of them on such a screen is a text that bypassed the translations.
const ENGLISH_ONLY: &[&str] = &[
    "the",
    "is",
    "are",
    "was",
    "be",
    "cannot",
    "can't",
    "required",
    "wrong",
    "too",
    "short",
    "with",
    "your",
    "must",
    "not",
    "and",
    "of",
    "has",
    "have",
    "this",
    "that",
    "from",
    "failed",
    "error",
    "ask",
    "sign",
    "seq",
    "attempts",
    "left",
    "camera",
    "device",
    "connected",
    "disconnected",
    "timed",
    "out",
    "no",
    "please",
    "check",
    "try",
    "again",
    "field",
    "written",
    "letters",
    "digits",
    "future",
    "before",
    "accepted",
    "quality",
    "shown",
    "drawn",
    "write",
    "it",
];

/// Every text the window draws now (each `Text` element's accessible label is its text).
fn window_texts(ui: &AppWindow) -> Vec<String> {
    i_slint_backend_testing::ElementQuery::from_root(ui)
        .match_descendants()
        .match_accessible_role(i_slint_backend_testing::AccessibleRole::Text)
        .find_all()
        .into_iter()
        .filter_map(|e| e.accessible_label())
        .map(|l| l.to_string())
        .filter(|l| !l.trim().is_empty())
        .collect()
}

/// The texts of the window holding an English-only word, with the word.
fn english_on_screen(ui: &AppWindow) -> Vec<(String, String)> {
    let mut found = Vec::new();
    for text in window_texts(ui) {
        let lower = text.to_lowercase();
        let words = lower.split(|c: char| !(c.is_alphabetic() || c == '\''));
        if let Some(w) = words.into_iter().find(|w| ENGLISH_ONLY.contains(w)) {
            found.push((w.to_string(), text));
        }
    }
    found
}

impl Harness {
    /// In French, Arabic and Tamazight the window shows no English; in English it does (the
    /// check sees what it looks for). Ends in French.
    fn no_english(&self, what: &str) {
        for lang in ["fr", "ar", "zgh"] {
            self.ui().global::<App>().invoke_set_lang(lang.into());
            let english = english_on_screen(self.ui());
            assert!(
                english.is_empty(),
                "{what}, in {lang}: English on the screen: {english:?}"
            );
        }
        self.ui().global::<App>().invoke_set_lang("en".into());
        assert!(
            !english_on_screen(self.ui()).is_empty(),
            "{what}: the English screen has no English word the check knows: {:?}",
            window_texts(self.ui())
        );
        self.ui().global::<App>().invoke_set_lang("fr".into());
    }

    /// Draw a stroke of `points` pointer events, the pen's clock advancing `step_ms` each.
    fn draw(&self, points: u32, span: f32, step_ms: u64) {
        let pen_ms = std::rc::Rc::new(std::cell::Cell::new(1_000u64));
        let clock = pen_ms.clone();
        self.running.kiosk.set_pen_clock(move || {
            clock.set(clock.get() + step_ms);
            clock.get()
        });
        let pad = self.element("SignatureView::pad");
        let (p, size) = (pad.absolute_position(), pad.size());
        let at =
            |fx: f32, fy: f32| LogicalPosition::new(p.x + fx * size.width, p.y + fy * size.height);
        let window = self.ui().window();
        window.dispatch_event(WindowEvent::PointerPressed {
            position: at(0.1, 0.6),
            button: PointerEventButton::Left,
        });
        for i in 1..=points {
            let t = i as f32 / points as f32;
            window.dispatch_event(WindowEvent::PointerMoved {
                position: at(0.1 + span * t, 0.6 - 0.02 * t),
            });
        }
        window.dispatch_event(WindowEvent::PointerReleased {
            position: at(0.1 + span, 0.58),
            button: PointerEventButton::Left,
        });
    }
}

#[test]
fn no_english_reaches_a_french_arabic_or_tamazight_screen() {
    use slint::Model;
    let (_tmp, dir) = test_station();
    let h = logged_in(&dir, 31);
    h.click("HomeView::start");
    h.until("kind", |ui| ui.global::<App>().get_view() == "kind");
    h.click("KindView::kind-new");
    h.until("form", |ui| ui.global::<App>().get_view() == "form");

    // The schema's verdicts on an empty form ("is required", ...), beside their fields.
    h.click("NavBar::next-ltr");
    h.until("errors on the form", |ui| {
        ui.global::<FormAdapter>().get_errors() > 0
    });
    let required = h
        .ui()
        .global::<FormAdapter>()
        .get_rows()
        .iter()
        .find(|r| r.required)
        .map(|r| r.error.to_string())
        .unwrap();
    assert_eq!(required, "Obligatoire");
    h.no_english("the form's errors");

    // A past date the schema refuses for the date of birth: said in the screen's language.
    h.running
        .kiosk
        .fill_form(&crate::schema::simulated_demographics(31, "new"));
    let mut data = crate::schema::simulated_demographics(31, "new");
    data.insert("birth_date".into(), "1999-02-30".into());
    h.running.kiosk.fill_form(&data);
    h.click("NavBar::next-ltr");
    h.until("the date refused", |ui| {
        ui.global::<FormAdapter>().get_errors() == 1
    });
    assert_eq!(
        form_error(h.ui(), "birth_date"),
        "Cette date n'existe pas au calendrier"
    );
    h.no_english("a date that does not exist");

    // Face, fingers: quickly through.
    h.running
        .kiosk
        .fill_form(&crate::schema::simulated_demographics(31, "new"));
    h.click("NavBar::next-ltr");
    h.until("face captured", |ui| {
        ui.global::<FaceAdapter>().get_captured()
    });
    h.click("NavBar::next-ltr");
    h.capture_fingers();
    h.click("NavBar::next-ltr");
    assert_eq!(h.view(), "signature");

    // A signature far too short (a flick): refused under the pad and on the status line.
    h.draw(4, 0.03, 60);
    h.click("NavBar::next-ltr");
    h.until("the signature refused", |ui| {
        ui.global::<SignatureAdapter>().get_result() != ""
    });
    assert_eq!(
        h.ui().global::<App>().get_status(),
        "La signature est trop courte : demandez au citoyen de signer en entier"
    );
    assert!(h.ui().global::<App>().get_status_error());
    h.no_english("a short signature");
    // A new stroke clears the refusal under the pad.
    h.click("SignatureView::clear");
    h.draw(40, 0.7, 15);
    assert_eq!(h.ui().global::<SignatureAdapter>().get_result(), "");
    h.click("NavBar::next-ltr");
    h.until("review", |ui| ui.global::<App>().get_view() == "review");

    // A wrong PIN at the confirmation: said beside the PIN pad and on the status line.
    h.click("ReviewView::confirm");
    h.type_pin("999999");
    h.until("the PIN refused", |ui| {
        ui.global::<ConfirmAdapter>().get_problem() != ""
    });
    assert_eq!(h.view(), "confirm");
    assert_eq!(h.ui().global::<App>().get_status(), "Code PIN erroné");
    let beside = h.element("ConfirmView::confirm-problem");
    assert_eq!(beside.accessible_label().unwrap(), "Code PIN erroné");
    h.no_english("a wrong PIN at the confirmation");
    h.ui().global::<App>().invoke_set_lang("ar".into());
    assert_eq!(h.ui().global::<App>().get_status(), "رمز PIN خاطئ");
    h.ui().global::<App>().invoke_set_lang("fr".into());

    // The right PIN commits: the receipt's status has no English either.
    h.type_pin(crate::enrolment::badge::SIM_PIN);
    h.until("receipt", |ui| ui.global::<App>().get_view() == "receipt");
    h.no_english("the receipt");
}

#[test]
fn every_problem_and_field_verdict_is_translated() {
    init_backend();
    let ui = AppWindow::new().unwrap();
    let tr = ui.global::<Tr>();
    let field_keys = [
        "required",
        "must-accept",
        "must-accept-law",
        "yes-no",
        "spaces",
        "characters",
        "not-a-choice",
        "too-long",
        "too-short",
        "latin",
        "arabic",
        "digits",
        "latin-or-arabic",
        "format",
        "format-example",
        "date",
        "date-or-year",
        "year-only",
        "not-a-date",
        "before",
        "future",
        "invalid",
    ];
    for lang in ["fr", "ar", "zgh"] {
        slint::select_bundled_translation(lang).unwrap();
        let mut texts: Vec<String> = super::problem::Problem::KEYS
            .iter()
            .chain(&[
                "station-unusable",
                "photo-unshown",
                "signature-unshown",
                "receipt-unrendered",
                "qr-unshown",
                "worker-stopped",
            ])
            .map(|k| tr.invoke_problem((*k).into(), "3".into()).to_string())
            .collect();
        texts.extend(
            field_keys
                .iter()
                .map(|k| tr.invoke_field_error((*k).into(), "3".into()).to_string()),
        );
        for text in &texts {
            let lower = text.to_lowercase();
            let english = lower
                .split(|c: char| !(c.is_alphabetic() || c == '\''))
                .find(|w| ENGLISH_ONLY.contains(w));
            assert!(english.is_none(), "{lang}: {text:?} reads English");
        }
    }
    slint::select_bundled_translation("fr").unwrap();
}

/// The error shown beside field `name` of the form.
fn form_error(ui: &AppWindow, name: &str) -> String {
    use slint::Model;
    ui.global::<FormAdapter>()
        .get_rows()
        .iter()
        .find(|r| r.name == name)
        .map(|r| r.error.to_string())
        .unwrap_or_default()
}

#[test]
fn the_face_view_shows_the_kept_quality_and_nothing_of_a_lost_camera() {
    let (_tmp, dir) = test_station();
    let h = logged_in(&dir, 37);
    let plug = h.running.camera_plug.clone().unwrap();
    h.running.kiosk.auto_capture(false);
    h.click("HomeView::start");
    h.until("kind", |ui| ui.global::<App>().get_view() == "kind");
    h.click("KindView::kind-new");
    h.until("form", |ui| ui.global::<App>().get_view() == "form");
    h.running
        .kiosk
        .fill_form(&crate::schema::simulated_demographics(37, "new"));
    h.click("NavBar::next-ltr");
    h.until("a frame with its score", |ui| {
        let f = ui.global::<FaceAdapter>();
        f.get_has_frame() && f.get_quality() > 0 && !f.get_fps().is_empty()
    });
    assert!(
        ElementHandle::find_by_element_id(h.ui(), "FaceView::live-quality")
            .next()
            .is_some()
    );

    // The cable is pulled: the last picture's guidance, score and frame rate go with it.
    plug.store(false, Ordering::SeqCst);
    h.until("camera lost", |ui| {
        !ui.global::<FaceAdapter>().get_camera_ok()
    });
    let f = h.ui().global::<FaceAdapter>();
    assert!(!f.get_has_frame());
    assert_eq!(
        (
            f.get_quality(),
            f.get_advice().as_str(),
            f.get_fps().as_str()
        ),
        (0, "", "")
    );
    for gone in ["FaceView::guidance", "FaceView::live-quality"] {
        assert!(
            ElementHandle::find_by_element_id(h.ui(), gone)
                .next()
                .is_none(),
            "{gone} still shown with the camera lost"
        );
    }
    let texts = window_texts(h.ui()).join(" | ");
    assert!(!texts.contains("Qualité"), "{texts}");
    assert!(!texts.contains("fps"), "{texts}");

    // Plugged back: the officer takes the photo; the quality shown is the kept photo's.
    plug.store(true, Ordering::SeqCst);
    h.until("camera back", |ui| {
        let f = ui.global::<FaceAdapter>();
        f.get_camera_ok() && f.get_has_frame()
    });
    for _ in 0..10 {
        if h.ui().global::<FaceAdapter>().get_captured() {
            break;
        }
        // "Capture now" takes the frame on screen: wait for one after the last try.
        let seen = h.running.kiosk.frames_shown();
        h.until("a new frame", |_| h.running.kiosk.frames_shown() > seen);
        h.ui().global::<FaceAdapter>().set_result("".into());
        h.click("FaceView::capture");
        h.until("an outcome", |ui| {
            ui.global::<FaceAdapter>().get_result() != ""
        });
    }
    let f = h.ui().global::<FaceAdapter>();
    assert!(f.get_captured());
    match f.get_result().as_str() {
        "accepted" => assert!(
            f.get_result_quality() >= f.get_min_quality(),
            "accepted with quality {}",
            f.get_result_quality()
        ),
        "kept" => assert!(f.get_result_quality() > 0),
        other => panic!("captured with outcome {other:?}"),
    }
    let shown = h
        .element("FaceView::face-result")
        .accessible_label()
        .unwrap()
        .to_string();
    assert!(
        shown.contains(&f.get_result_quality().to_string()) && !shown.contains("(qualité 0)"),
        "{shown}"
    );
    // Once taken, the stale live score is not beside it.
    assert!(
        ElementHandle::find_by_element_id(h.ui(), "FaceView::live-quality")
            .next()
            .is_none()
    );
}

/// Wait until the worker of a closed kiosk has let go of the station (its lock).
fn writer_gone(dir: &crate::station::DataDir) {
    let deadline = Instant::now() + Duration::from_secs(30);
    while crate::station::lock(dir).is_err() {
        assert!(
            Instant::now() < deadline,
            "the closed kiosk still holds the station"
        );
        std::thread::sleep(Duration::from_millis(10));
    }
}

/// The statuses of the fingers view's tiles, both hands.
fn finger_statuses(ui: &AppWindow) -> Vec<String> {
    use slint::Model;
    let a = ui.global::<FingersAdapter>();
    a.get_right()
        .iter()
        .chain(a.get_left().iter())
        .map(|f| f.status.to_string())
        .collect()
}

#[test]
fn an_officer_idle_after_face_and_fingers_logs_back_in_and_finishes_the_same_citizen() {
    use super::adapter::{IDLE_LOGOUT_MS, SIM_OFFICER};
    use super::draft::{self, DraftKey, FingerEvent};
    let (_tmp, dir, centre) = super::session::test_station_with_centre();
    let pin = crate::enrolment::badge::SIM_PIN;
    let h = logged_in(&dir, 11);
    h.click("HomeView::start");
    h.until("kind", |ui| ui.global::<App>().get_view() == "kind");
    h.click("KindView::kind-new");
    h.until("form", |ui| ui.global::<App>().get_view() == "form");
    h.running
        .kiosk
        .fill_form(&crate::schema::simulated_demographics(11, "new"));
    h.click("NavBar::next-ltr");
    // The automatic photo is counted down over the picture before it is taken.
    h.until("the countdown before the photo", |ui| {
        ui.global::<FaceAdapter>().get_countdown() > 0
    });
    assert!(!h.ui().global::<FaceAdapter>().get_captured());
    let started = Instant::now();
    h.until("face captured", |ui| {
        ui.global::<FaceAdapter>().get_captured()
    });
    assert!(
        started.elapsed() >= Duration::from_millis(1_500),
        "the photo waits for its countdown"
    );
    assert_eq!(h.ui().global::<FaceAdapter>().get_countdown(), 0);
    h.click("NavBar::next-ltr");
    assert_eq!(h.view(), "fingers");
    for _ in 0..3 {
        h.click("FingersView::capture");
        h.until("finger scanned", |ui| {
            !ui.global::<FingersAdapter>().get_busy()
        });
    }
    // Diagnostics from the capture step, and back to the same step with its tiles.
    let tiles = finger_statuses(h.ui());
    h.click("AppWindow::diagnostics");
    assert_eq!(h.view(), "diagnostics");
    h.click_label("Retour");
    assert_eq!(h.view(), "fingers");
    assert_eq!(finger_statuses(h.ui()), tiles);
    let done = tiles
        .iter()
        .filter(|s| matches!(s.as_str(), "ok" | "low"))
        .count();
    assert!(done >= 1, "{tiles:?}");

    // 30 s before the idle logout the window counts down; a touch keeps the session.
    let now = crate::now_ms();
    h.running.kiosk.tick(now + IDLE_LOGOUT_MS - 20_000);
    assert_eq!(h.ui().global::<App>().get_idle_left(), 20);
    let count = h.element("AppWindow::idle-count");
    assert_eq!(
        count.accessible_label().unwrap().to_string(),
        "Aucune activité : déconnexion dans 20 s"
    );
    h.no_english("the idle warning");
    h.ui().global::<App>().invoke_touched();
    assert_eq!(h.ui().global::<App>().get_idle_left(), 0);
    assert_eq!(h.view(), "fingers", "a touch keeps the session");
    // Untouched to the end: logged out, the badge still in, the PIN asked again.
    let now = crate::now_ms();
    h.running.kiosk.tick(now + IDLE_LOGOUT_MS - 5_000);
    assert_eq!(h.ui().global::<App>().get_idle_left(), 5);
    h.running.kiosk.tick(now + IDLE_LOGOUT_MS + 1_000);
    assert_eq!(h.view(), "login");
    assert_eq!(h.ui().global::<App>().get_idle_left(), 0);
    assert_eq!(h.ui().global::<App>().get_officer(), "");
    // What the draft holds (opened here with the simulated badge's key, as the kiosk does).
    let until_kept = Instant::now() + Duration::from_secs(30);
    while draft::header(&dir.0).unwrap().is_none() {
        assert!(Instant::now() < until_kept, "no draft kept");
        std::thread::sleep(Duration::from_millis(10));
    }
    let mut badge = crate::enrolment::SimBadge::unlock(SIM_OFFICER, pin).unwrap();
    let key = DraftKey::derive(&mut badge, "VAN-TEST-1").unwrap();
    let (header, journal) = draft::open(&dir.0, &key).unwrap();
    assert_eq!(header.step(), crate::enrolment::Step::Fingers);

    // The same officer logs back in: the home screen offers the citizen, Resume takes them up
    // at the fingers with the tiles done before.
    h.type_pin(pin);
    h.until("home", |ui| ui.global::<App>().get_view() == "home");
    h.until("the draft offered", |ui| {
        ui.global::<HomeAdapter>().get_draft() == "mine"
    });
    h.no_english("the home screen offering the draft");
    h.click("HomeView::resume");
    h.until("fingers again", |ui| {
        ui.global::<App>().get_view() == "fingers"
    });
    assert_eq!(finger_statuses(h.ui()), tiles, "nothing captured again");
    h.capture_fingers();
    h.click("NavBar::next-ltr");
    assert_eq!(h.view(), "signature");
    h.draw_signature();
    h.click("NavBar::next-ltr");
    h.until("review", |ui| ui.global::<App>().get_view() == "review");
    h.click("ReviewView::confirm");
    h.type_pin(pin);
    h.until("receipt", |ui| ui.global::<App>().get_view() == "receipt");
    assert_eq!(draft::header(&dir.0).unwrap(), None, "committed: no draft");

    // The record's photo and prints are those taken before the logout.
    let view = View::open(&dir).unwrap();
    let rows = view.store.envelopes().unwrap();
    assert_eq!(rows.len(), 1);
    let sealed = view.store.payload(&rows[0].payload).unwrap().unwrap();
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
        "the photo was not taken again"
    );
    let mut same = 0;
    for e in &journal.fingers {
        if let FingerEvent::Offer {
            position,
            width,
            height,
            ppi,
            pixels,
            ..
        } = e
        {
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
            let kept = payload.fingers.iter().find(|f| f.code == position.code());
            same += usize::from(kept.is_some_and(|k| k.image.bytes == wsq));
        }
    }
    assert_eq!(
        same, done,
        "the prints scanned before the logout are the record's"
    );
}

#[test]
fn a_kiosk_restarted_offers_the_draft_and_another_officer_can_only_discard_it() {
    let (_tmp, dir) = test_station();
    {
        let h = logged_in(&dir, 12);
        h.click("HomeView::start");
        h.until("kind", |ui| ui.global::<App>().get_view() == "kind");
        h.click("KindView::kind-new");
        h.until("form", |ui| ui.global::<App>().get_view() == "form");
        // Typed, not yet accepted; then Cancel by mistake... and a power cut.
        h.element("FormView::editor").set_accessible_value("Tazi");
        h.ui().global::<KindAdapter>().invoke_cancel();
        h.until("home", |ui| ui.global::<App>().get_view() == "home");
        h.until("the draft offered", |ui| {
            ui.global::<HomeAdapter>().get_draft() == "mine"
        });
    }
    // A new kiosk over the same store: the same officer is offered the citizen, with the form
    // as typed.
    writer_gone(&dir);
    let h = logged_in(&dir, 12);
    h.until("the draft offered after a restart", |ui| {
        ui.global::<HomeAdapter>().get_draft() == "mine"
    });
    h.click("HomeView::resume");
    h.until("form again", |ui| ui.global::<App>().get_view() == "form");
    use slint::Model;
    let typed: Vec<String> = h
        .ui()
        .global::<FormAdapter>()
        .get_rows()
        .iter()
        .map(|r| r.shown.to_string())
        .collect();
    assert!(typed.iter().any(|v| v == "Tazi"), "{typed:?}");
    h.ui().global::<KindAdapter>().invoke_cancel();
    h.until("home", |ui| ui.global::<App>().get_view() == "home");
    h.click("AppWindow::remove-badge");
    // Another officer: told a draft is kept, offered no Resume, may discard it.
    let (mut session, _plug) = {
        let (devices, plug) = super::simulated_devices(12);
        let badges = super::badges::Badges::new(super::badges::BadgeSource::Simulated);
        drop(h);
        writer_gone(&dir);
        (
            super::session::Session::open(&dir, devices, badges).unwrap(),
            plug,
        )
    };
    session
        .login("OFF-OTHER", crate::enrolment::badge::SIM_PIN)
        .unwrap();
    let info = session.draft().unwrap();
    assert!(!info.mine);
    assert!(session.resume_draft().is_err());
    session.discard_draft().unwrap();
    assert_eq!(session.draft(), None);
}

/// The supervisor opens each record of the day from the list (what the envelope says: kind,
/// officer, time, the quality summary), rejects one with a reason chosen from the list (wrong PIN
/// first), holds another, approves the third; the decisions are in the ledger with the reason and
/// the supervisor, the rejected record goes to the stick without its payload, the held one stays.
#[test]
fn the_supervisor_opens_a_record_and_rejects_holds_or_approves_it() {
    use tasjil_sync::bundle::{BundleReader, PartKind};
    use tasjil_sync::ledger::Status;

    let tmp = tempfile::tempdir().unwrap();
    let centre = tasjil_sync::CentreKeys::generate();
    let centre_pub = tmp.path().join("centre.pub");
    std::fs::write(&centre_pub, centre.public().to_json()).unwrap();
    let dir = crate::station::DataDir(tmp.path().join("station"));
    crate::station::init(&dir, "VAN-REV-1", &centre_pub, true).unwrap();
    super::supervisor::tests::commit_simulated(&dir, 3, 23);
    let usb = tmp.path().join("usb");
    std::fs::create_dir(&usb).unwrap();

    let mut h = logged_in(&dir, 23);
    h.click("HomeView::supervisor");
    h.until("the records", |ui| {
        !ui.global::<SupervisorAdapter>().get_busy() && states(ui).len() == 3
    });
    macro_rules! a {
        () => {
            h.ui().global::<SupervisorAdapter>()
        };
    }

    // Open the second record: its facts and quality come from the envelope.
    h.click_label("record 2");
    assert!(a!().get_record_open());
    let r = a!().get_selected();
    assert_eq!(
        (r.seq, r.officer.as_str(), r.kind.as_str()),
        (2, "OFF-9", "new")
    );
    assert!(r.face > 0 && r.fingers + r.exceptions == 10, "{r:?}");
    let texts = window_texts(h.ui());
    let quality = format!("Qualité du visage {} (", r.face);
    assert!(texts.iter().any(|t| t.starts_with(&quality)), "{texts:?}");
    h.no_english("a record opened by the supervisor");

    // A rejection needs a reason.
    h.click("RecordDetail::verdict-reject");
    assert_eq!(a!().get_pin_for(), "");
    assert!(a!().get_outcome_error());
    assert_eq!(a!().get_outcome(), "Choisissez d'abord une raison");
    h.click("RecordDetail::reason-photo");
    assert_eq!(a!().get_reason(), "photo");
    h.shoot("18-supervisor-review");
    h.click("RecordDetail::verdict-reject");
    assert_eq!(a!().get_pin_for(), "reject");
    h.type_pin("111111");
    h.until("the wrong PIN refused", |ui| {
        let a = ui.global::<SupervisorAdapter>();
        !a.get_busy() && a.get_outcome().contains("PIN du superviseur")
    });
    assert_eq!(states(h.ui())[1], "awaiting");
    h.click("RecordDetail::verdict-reject");
    h.type_pin(crate::enrolment::badge::SIM_PIN);
    h.until("rejected", |ui| states(ui)[1] == "withdrawn");
    assert!(
        a!().get_outcome().contains("rejeté"),
        "{}",
        a!().get_outcome()
    );
    assert_eq!(a!().get_selected().state, "withdrawn");
    assert_eq!(a!().get_selected().reviewed_by, "SUP-SIM-1");
    let texts = window_texts(h.ui());
    assert!(
        texts
            .iter()
            .any(|t| t.contains("Rejeté par le superviseur") && t.contains("Photo non conforme")),
        "{texts:?}"
    );
    h.shoot("19-supervisor-rejected");

    // Hold the third, approve the first.
    h.click_label("record 3");
    assert_eq!(
        a!().get_reason(),
        "",
        "a new record starts without a reason"
    );
    h.click("RecordDetail::reason-data");
    h.click("RecordDetail::verdict-hold");
    assert_eq!(a!().get_pin_for(), "hold");
    h.type_pin(crate::enrolment::badge::SIM_PIN);
    h.until("held", |ui| states(ui)[2] == "held");
    h.click_label("record 1");
    h.click("RecordDetail::verdict-approve");
    assert_eq!(a!().get_pin_for(), "approve-one");
    h.type_pin(crate::enrolment::badge::SIM_PIN);
    h.until("approved", |ui| states(ui)[0] == "approved");
    assert_eq!(states(h.ui()), ["approved", "withdrawn", "held"]);

    // In the ledger, with the reason and the supervisor; in the audit chain.
    let view = View::open(&dir).unwrap();
    let decisions = view.store.station_decisions().unwrap();
    let ids: Vec<String> = view
        .store
        .envelopes()
        .unwrap()
        .into_iter()
        .map(|r| r.id)
        .collect();
    let rejected = &decisions[&ids[1]];
    assert_eq!(rejected.status, Status::Withdrawn);
    assert_eq!(rejected.reason.as_deref(), Some("face photo not compliant"));
    assert_eq!(rejected.by, "SUP-SIM-1");
    assert_eq!(decisions[&ids[2]].status, Status::OnHold);
    assert_eq!(
        decisions[&ids[2]].reason.as_deref(),
        Some("demographic data to check")
    );
    assert!(!decisions.contains_key(&ids[0]));
    drop(view);
    let db = rusqlite::Connection::open(dir.0.join("station.db")).unwrap();
    let actions: Vec<(String, String)> = db
        .prepare("SELECT entry FROM audit ORDER BY seq")
        .unwrap()
        .query_map([], |r| r.get::<_, Vec<u8>>(0))
        .unwrap()
        .map(|e| {
            let v: serde_json::Value = serde_json::from_slice(&e.unwrap()).unwrap();
            let s = |k: &str| v[k].as_str().unwrap_or_default().to_string();
            (s("action"), s("actor"))
        })
        .filter(|(a, _)| ["reject", "hold", "approve"].contains(&a.as_str()))
        .collect();
    let sup = "SUP-SIM-1".to_string();
    assert_eq!(
        actions,
        [
            ("reject".to_string(), sup.clone()),
            ("hold".to_string(), sup.clone()),
            ("approve".to_string(), sup)
        ]
    );

    // Export: the approved record and the rejected one's envelope, no payload of it; the held
    // record stays.
    h.click("RecordDetail::close-record");
    assert!(!a!().get_record_open());
    a!().set_target(usb.to_str().unwrap().into());
    h.click("Actions::export");
    h.type_pin(crate::enrolment::badge::SIM_PIN);
    h.until("exported", |ui| {
        ui.global::<SupervisorAdapter>().get_progress() < 0.0 && states(ui)[0] == "exported"
    });
    let bundle = std::fs::read_dir(&usb)
        .unwrap()
        .next()
        .unwrap()
        .unwrap()
        .path();
    let reader = BundleReader::open(&bundle).unwrap();
    let parts = &reader.header().manifest.parts;
    let kinds = |k: PartKind| parts.iter().filter(|p| p.kind == k).count();
    assert_eq!(
        (kinds(PartKind::Envelope), kinds(PartKind::Payload)),
        (2, 1),
        "{parts:?}"
    );
    assert_eq!(states(h.ui())[2], "held");
    check_and_write_screens(&h.screens);
}
