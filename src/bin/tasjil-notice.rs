//! `tasjil-notice`: the screen a van's kiosk shows when `tasjil kiosk` keeps failing to start
//! (systemd's crash-loop fallback, `tasjil-kiosk-notice.service` under cage), instead of a
//! blinking console. Plain words in French, Arabic and English; nothing to touch. It reads nothing
//! but whether the data directory holds a station, to say "not set up yet" rather than "broken"
//! on a freshly installed van.
//!
//! Its own small binary on purpose: it must come up when the station's code, store or
//! configuration is what fails, so it opens none of them.

use std::path::PathBuf;

use slint::ComponentHandle;

// Generated code: the workspace's lints are for our own code.
#[allow(missing_debug_implementations, clippy::all)]
mod ui {
    slint::slint! {
        export component Notice inherits Window {
            in property <bool> not-set-up;
            in property <string> detail;
            title: "Tasjil";
            background: #1b2a41;
            preferred-width: 1280px;
            preferred-height: 800px;
            VerticalLayout {
                alignment: center;
                padding: 48px;
                spacing: 28px;
                Text {
                    text: root.not-set-up ? "Ce poste n'est pas encore installé." : "Le poste d'enrôlement ne démarre pas.";
                    font-size: 44px; font-weight: 700; color: white;
                    horizontal-alignment: center; wrap: word-wrap;
                }
                Text {
                    text: root.not-set-up ? "Appelez le superviseur pour l'initialiser." : "Éteignez puis rallumez le poste. Si cet écran revient, appelez le superviseur.";
                    font-size: 30px; color: #e8eef7; horizontal-alignment: center; wrap: word-wrap;
                }
                Text {
                    text: root.not-set-up ? "هذا الجهاز لم يُجهَّز بعد. اتصل بالمشرف." : "جهاز التسجيل لا يشتغل. أطفئه ثم أعد تشغيله. إذا عادت هذه الشاشة، اتصل بالمشرف.";
                    font-size: 32px; color: #e8eef7; horizontal-alignment: center; wrap: word-wrap;
                }
                Text {
                    text: root.not-set-up ? "This station is not set up yet. Call the supervisor." : "The enrolment station cannot start. Switch it off and on again. If this screen comes back, call the supervisor.";
                    font-size: 26px; color: #c3cfe0; horizontal-alignment: center; wrap: word-wrap;
                }
                Text {
                    text: root.detail;
                    font-size: 18px; color: #8fa3bf; horizontal-alignment: center; wrap: word-wrap;
                }
            }
        }
    }
}
use ui::Notice;

fn main() -> Result<(), slint::PlatformError> {
    let mut args = std::env::args_os().skip(1);
    let mut data_dir = PathBuf::from("/var/lib/tasjil");
    while let Some(a) = args.next() {
        match a.to_str() {
            Some("--data-dir") => data_dir = args.next().map(PathBuf::from).unwrap_or(data_dir),
            Some("--help" | "-h") => {
                println!("usage: tasjil-notice [--data-dir DIR]   (the kiosk's crash-loop screen)");
                return Ok(());
            }
            _ => {}
        }
    }
    let not_set_up = !data_dir.join("station.db").exists();
    let ui = Notice::new()?;
    ui.set_not_set_up(not_set_up);
    ui.set_detail(
        if not_set_up {
            format!(
                "Supervisor: tasjil --data-dir {} init … (docs/INSTALL.md)",
                data_dir.display()
            )
        } else {
            "Supervisor: journalctl -b -u tasjil-kiosk, then systemctl reset-failed tasjil-kiosk; systemctl start tasjil-kiosk".to_string()
        }
        .into(),
    );
    ui.window().set_fullscreen(true);
    ui.run()
}
