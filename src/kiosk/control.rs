//! A test-only remote control of a running kiosk, for smoke tests of the real binary under Xvfb
//! (tests/e2e/kiosk_xvfb.rs). Off unless `TASJIL_KIOSK_CONTROL=stdin` and the badges are
//! simulated (`--simulate` or `badge = "sim"`: a kiosk with card badges never listens): then
//! each line on standard input presses what a touch would press (the views' adapter callbacks)
//! or pulls the simulated camera's cable. It never reaches the store or the worker any other
//! way than the views do.
//!
//! Lines: `badge`, `pin <digits>`, `start`, `kind <new|renewal|...>`, `form-sample <seed>`,
//! `form-fill <seed> [field…]` (the sample without those fields), `form-next`,
//! `camera <plug|unplug>`, `face-next`, `finger` (the fingers view's Capture), `fingers-next`,
//! `sign-accept` (the signature view's Next), `review-confirm`, `confirm-pin <digits>`,
//! `remove-badge`, `lang <code>`, `go <view>`, `idle-since <ms>` (the last touch was that long
//! ago: the idle countdown without waiting minutes), `resume` and `discard` (the home screen's
//! kept enrolment).

use std::rc::Rc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::TryRecvError;
use std::sync::Arc;
use std::time::Duration;

use slint::ComponentHandle;

use super::adapter::Kiosk;
use super::ui::*;

/// The environment variable that turns the control on.
pub const ENV: &str = "TASJIL_KIOSK_CONTROL";

/// Start reading control lines if asked to; the returned timer applies them on the UI thread.
pub fn start(
    ui: &AppWindow,
    kiosk: &Rc<Kiosk>,
    plug: Option<Arc<AtomicBool>>,
) -> Option<slint::Timer> {
    if std::env::var(ENV).ok().as_deref() != Some("stdin") || !ui.global::<App>().get_simulate() {
        return None;
    }
    tracing::warn!("kiosk remote control on standard input ({ENV}=stdin): for tests only");
    let (tx, rx) = std::sync::mpsc::channel::<String>();
    let spawned = std::thread::Builder::new()
        .name("kiosk-control".into())
        .spawn(move || {
            for line in std::io::stdin().lines() {
                let Ok(line) = line else { break };
                if tx.send(line).is_err() {
                    break;
                }
            }
        });
    if let Err(e) = spawned {
        tracing::error!("cannot start the kiosk control: {e}");
        return None;
    }
    let timer = slint::Timer::default();
    let ui = ui.as_weak();
    let kiosk = Rc::downgrade(kiosk);
    timer.start(
        slint::TimerMode::Repeated,
        Duration::from_millis(20),
        move || loop {
            match rx.try_recv() {
                Ok(line) => {
                    let (Some(ui), Some(k)) = (ui.upgrade(), kiosk.upgrade()) else {
                        return;
                    };
                    match apply(&ui, &k, plug.as_deref(), line.trim()) {
                        Ok(()) => tracing::info!("control: {line}"),
                        Err(e) => tracing::warn!("control: {line}: {e}"),
                    }
                }
                Err(TryRecvError::Empty | TryRecvError::Disconnected) => return,
            }
        },
    );
    Some(timer)
}

fn apply(ui: &AppWindow, k: &Kiosk, plug: Option<&AtomicBool>, line: &str) -> Result<(), String> {
    let (word, arg) = line.split_once(' ').unwrap_or((line, ""));
    match word {
        "badge" => ui.global::<LoginAdapter>().invoke_insert_badge(),
        "pin" => {
            for d in arg.chars() {
                ui.global::<LoginAdapter>()
                    .invoke_digit(d.to_string().into());
            }
        }
        "start" => ui.global::<HomeAdapter>().invoke_start(),
        "kind" => ui.global::<KindAdapter>().invoke_choose(arg.into()),
        // The sample without the fields named after the seed, Next not pressed.
        "form-fill" => {
            let mut words = arg.split_whitespace();
            let seed = words.next().unwrap_or_default();
            let seed = seed.parse().map_err(|e| format!("seed {seed:?}: {e}"))?;
            let mut data = crate::schema::simulated_demographics(seed, "new");
            for field in words {
                data.remove(field);
            }
            k.fill_form(&data);
        }
        "form-next" => ui.global::<FormAdapter>().invoke_next(),
        "form-sample" => {
            let seed = arg.parse().map_err(|e| format!("seed {arg:?}: {e}"))?;
            let kind = "new";
            k.fill_form(&crate::schema::simulated_demographics(seed, kind));
            ui.global::<FormAdapter>().invoke_next();
        }
        "camera" => {
            let plug = plug.ok_or("no simulated camera")?;
            match arg {
                "plug" => plug.store(true, Ordering::SeqCst),
                "unplug" => plug.store(false, Ordering::SeqCst),
                other => return Err(format!("camera {other:?}: say plug or unplug")),
            }
        }
        "go" => ui.global::<App>().invoke_go(arg.into()),
        // The face view's Next (moves on only once the photo is taken).
        "face-next" => ui.global::<FaceAdapter>().invoke_next(),
        "finger" => ui.global::<FingersAdapter>().invoke_capture(),
        "fingers-next" => ui.global::<FingersAdapter>().invoke_next(),
        "sign-accept" => ui.global::<SignatureAdapter>().invoke_accept(),
        "review-confirm" => ui.global::<ReviewAdapter>().invoke_confirm(),
        "confirm-pin" => {
            for d in arg.chars() {
                ui.global::<ConfirmAdapter>()
                    .invoke_digit(d.to_string().into());
            }
        }
        "remove-badge" => ui.global::<App>().invoke_remove_badge(),
        "idle-since" => {
            let ms = arg
                .parse()
                .map_err(|e| format!("idle-since {arg:?}: {e}"))?;
            k.pretend_idle_since(ms);
        }
        "resume" => ui.global::<HomeAdapter>().invoke_resume(),
        "discard" => ui.global::<HomeAdapter>().invoke_discard(),
        "lang" => ui.global::<App>().invoke_set_lang(arg.into()),
        "supervisor" => ui.global::<HomeAdapter>().invoke_supervisor(),
        "sup-open" => {
            use slint::Model;
            let seq: i32 = arg.parse().map_err(|e| format!("sup-open {arg:?}: {e}"))?;
            let a = ui.global::<SupervisorAdapter>();
            let id = a
                .get_records()
                .iter()
                .find(|r| r.seq == seq)
                .map(|r| r.id)
                .ok_or_else(|| format!("no record {seq} on the supervisor's list"))?;
            a.invoke_open(id);
        }
        "sup-reason" => ui
            .global::<SupervisorAdapter>()
            .invoke_choose_reason(arg.into()),
        "sup-verdict" => ui.global::<SupervisorAdapter>().invoke_verdict(arg.into()),
        "sup-pin" => {
            for d in arg.chars() {
                ui.global::<SupervisorAdapter>()
                    .invoke_digit(d.to_string().into());
            }
        }
        "" => {}
        other => return Err(format!("unknown control {other:?}")),
    }
    Ok(())
}
