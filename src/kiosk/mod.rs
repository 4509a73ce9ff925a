//! The kiosk: the touch-screen UI of the station (`tasjil kiosk`).
//!
//! - `ui/` holds the Slint views, one `global` adapter per view (`ui/views/*.slint`).
//! - [`login`], [`form`], [`keyboard`], [`i18n`] are controllers with no Slint types, tested
//!   without a window; [`session`] drives the enrolment workflow and the [`Station`] commit path.
//! - [`worker`] runs the session on its own thread: all I/O and capture happen there.
//! - [`adapter`] binds the views to the controllers and the worker, on the UI thread.
//!
//! The kiosk adds no rule of its own about what an enrolment is: steps, retries and validation
//! are `crate::enrolment`'s and the schema's.
//!
//! [`Station`]: crate::station::Station

pub mod adapter;
pub mod badges;
pub mod control;
pub mod draft;
pub mod form;
pub mod i18n;
pub mod keyboard;
pub mod login;
pub mod previous;
pub mod problem;
pub mod session;
pub mod supervisor;
pub mod worker;

#[cfg(test)]
mod ui_tests;

/// The Slint-generated views.
// Generated code: the workspace's restriction lints (unwrap_used, …) are for our own code.
#[allow(
    missing_debug_implementations,
    clippy::all,
    clippy::unwrap_used,
    clippy::expect_used
)]
pub mod ui {
    slint::include_modules!();
}

use std::rc::Rc;
use std::sync::atomic::AtomicBool;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::Context;
use slint::ComponentHandle;
use tasjil_drivers::sim::{SimCamera, SimScanner};

use crate::station::DataDir;
use adapter::Kiosk;
use session::{Devices, Pluggable, Session};
use ui::AppWindow;
use worker::Outbox;

/// How the kiosk starts.
#[derive(Debug, Clone, Default)]
pub struct Options {
    pub simulate: bool,
    pub seed: u64,
    pub fullscreen: bool,
    /// Close by itself after this long (smoke tests).
    pub exit_after: Option<Duration>,
    /// Measure: go straight to the face preview, count frames shown, print, close.
    pub bench: bool,
}

/// The simulated devices, with the camera's cable.
pub fn simulated_devices(seed: u64) -> (Devices, Arc<AtomicBool>) {
    let (camera, plug) = Pluggable::new(SimCamera::new(seed));
    (
        Devices {
            camera: Box::new(camera),
            scanner: Box::new(SimScanner::new(seed)),
            id_card: Box::new(crate::devices::SimIdCard::new(seed)),
        },
        plug,
    )
}

/// Everything a running kiosk is made of; the window is shown by the caller.
pub struct Running {
    pub ui: AppWindow,
    pub kiosk: Rc<Kiosk>,
    pub camera_plug: Option<Arc<AtomicBool>>,
}

impl std::fmt::Debug for Running {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Running").finish_non_exhaustive()
    }
}

/// Build the window, start the worker on `dir`, bind the views. `notify` wakes the UI thread
/// when the worker has results; `None` uses Slint's event loop.
pub fn build(
    dir: &DataDir,
    options: &Options,
    notify: Option<Box<dyn Fn() + Send + Sync>>,
) -> anyhow::Result<Running> {
    // The configuration is read before any window exists: a broken one stops the kiosk with a
    // message rather than leaving an officer in front of a half-working screen.
    let config = crate::config::Config::load(&dir.0)?;
    let badge_source =
        if options.simulate || config.devices.badge == crate::config::BadgeBackend::Sim {
            badges::BadgeSource::Simulated
        } else {
            badges::BadgeSource::Card
        };
    let ui = AppWindow::new().context("cannot create the kiosk window")?;
    let outbox = match notify {
        Some(n) => Outbox::new(n),
        None => {
            let weak = ui.as_weak();
            Outbox::new(move || {
                let r = weak.upgrade_in_event_loop(|ui| ui.global::<ui::App>().invoke_drain());
                if let Err(e) = r {
                    tracing::debug!("kiosk window gone, result dropped: {e}");
                }
            })
        }
    };
    // Real devices are opened on the worker thread, when first needed (a missing camera or
    // sensor is said where it is needed, and picked up once plugged in).
    let (devices, plug) = if options.simulate {
        let (d, plug) = simulated_devices(options.seed);
        (Some(d), Some(plug))
    } else {
        (None, None)
    };
    let frame_free = Arc::new(AtomicBool::new(true));
    let dir2 = dir.clone();
    let seed = options.seed;
    let tx = worker::spawn(
        move || {
            let devices = devices.unwrap_or_else(|| Devices {
                camera: crate::devices::kiosk_camera(&config.devices, false, seed),
                scanner: crate::devices::kiosk_scanner(&config.devices, false, seed),
                id_card: crate::devices::kiosk_id_card(&config.devices, false, seed),
            });
            Session::open(&dir2, devices, badges::Badges::new(badge_source))
        },
        outbox.clone(),
        frame_free.clone(),
    )?;
    let kiosk = Kiosk::bind(
        &ui,
        tx,
        outbox,
        frame_free,
        plug.clone(),
        badge_source == badges::BadgeSource::Simulated,
    );
    Ok(Running {
        ui,
        kiosk,
        camera_plug: plug,
    })
}

/// `tasjil kiosk`: open the window and run until it is closed.
pub fn run(dir: &DataDir, options: &Options) -> anyhow::Result<()> {
    let started = Instant::now();
    let running = build(dir, options, None)?;
    let Running {
        ui,
        kiosk,
        camera_plug,
    } = running;
    let _control = control::start(&ui, &kiosk, camera_plug);
    if options.fullscreen {
        ui.window().set_fullscreen(true);
    }
    ui.show()
        .context("cannot show the kiosk window (is DISPLAY set?)")?;
    // Runs once the event loop has shown the window: the cold start as the officer sees it.
    slint::Timer::single_shot(Duration::ZERO, move || {
        tracing::info!(
            "login view shown {} ms after start",
            started.elapsed().as_millis()
        );
        eprintln!(
            "kiosk: login view shown after {} ms",
            started.elapsed().as_millis()
        );
    });
    let idle = slint::Timer::default();
    let k = Rc::downgrade(&kiosk);
    idle.start(
        slint::TimerMode::Repeated,
        Duration::from_secs(1),
        move || {
            if let Some(k) = k.upgrade() {
                k.tick(crate::now_ms());
            }
        },
    );
    let _quit = options.exit_after.map(|after| {
        let t = slint::Timer::default();
        t.start(slint::TimerMode::SingleShot, after, || {
            let _ = slint::quit_event_loop();
        });
        t
    });
    let _bench = options.bench.then(|| bench(&kiosk));
    slint::run_event_loop().context("the kiosk's event loop failed")?;
    drop(kiosk);
    Ok(())
}

/// Resident memory now and at its peak, in MB (Linux `/proc/self/status`).
pub fn memory_mb() -> (f64, f64) {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    let field = |name: &str| {
        status
            .lines()
            .find(|l| l.starts_with(name))
            .and_then(|l| l.split_whitespace().nth(1))
            .and_then(|kb| kb.parse::<f64>().ok())
            .map_or(0.0, |kb| kb / 1024.0)
    };
    (field("VmRSS:"), field("VmHWM:"))
}

/// `--bench`: 3 s to reach the preview and warm up, then 10 s of counting frames.
fn bench(kiosk: &Rc<Kiosk>) -> slint::Timer {
    kiosk.bench_to_face_preview();
    let timer = slint::Timer::default();
    let k = Rc::downgrade(kiosk);
    let mut mark: Option<(Instant, u64)> = None;
    let mut peak_rss = 0.0f64;
    let started = Instant::now();
    timer.start(slint::TimerMode::Repeated, Duration::from_millis(500), move || {
        let Some(k) = k.upgrade() else { return };
        let (rss, _) = memory_mb();
        if started.elapsed() < Duration::from_secs(3) {
            return;
        }
        peak_rss = peak_rss.max(rss);
        match mark {
            None => mark = Some((Instant::now(), k.frames_shown())),
            Some((t0, f0)) if t0.elapsed() >= Duration::from_secs(10) => {
                let fps = (k.frames_shown() - f0) as f64 / t0.elapsed().as_secs_f64();
                let (_, hwm) = memory_mb();
                println!("preview frames shown per second (480x640 camera frames, guidance overlay on): {fps:.1}");
                println!("resident memory during capture: {peak_rss:.0} MB (peak of the process {hwm:.0} MB)");
                let _ = slint::quit_event_loop();
            }
            Some(_) => {}
        }
    });
    timer
}
