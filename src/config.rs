//! Station configuration: `assets/config/station.toml` is both the documentation and the built-in
//! defaults (compiled in, so they cannot drift apart), then `DATA_DIR/config.toml`, then
//! `TASJIL_<SECTION>_<KEY>` environment variables.

use std::path::Path;

use anyhow::Context;
use serde::Deserialize;

use crate::enrolment::record::FingerFormat;
use crate::enrolment::CapturePolicy;

/// The documented defaults.
pub const DEFAULTS: &str = include_str!("../assets/config/station.toml");

#[derive(Debug, Clone, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
struct Capture {
    face_min_quality: u8,
    face_max_attempts: u32,
    finger_min_quality: u8,
    finger_max_attempts: u32,
    finger_format: FingerFormat,
}

#[derive(Debug, Clone, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
struct File {
    capture: Capture,
    approval: Approval,
    devices: Devices,
    roster: RosterPolicy,
}

/// `[roster]`: how old the centre's signed roster may grow before the station warns, then stops
/// new enrolments.
#[derive(Debug, Clone, Copy, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct RosterPolicy {
    pub warn_days: u32,
    pub block_days: u32,
}

/// The documented defaults (assets/config/station.toml; a test keeps them equal).
impl Default for RosterPolicy {
    fn default() -> Self {
        RosterPolicy {
            warn_days: 14,
            block_days: 45,
        }
    }
}

/// `[approval]`: who may approve what.
#[derive(Debug, Clone, Copy, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct Approval {
    /// A supervisor may approve records they enrolled themselves.
    pub self_approval: bool,
}

/// Which backend takes the face photo.
#[derive(Debug, Clone, Copy, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum CameraBackend {
    /// A V4L2 camera when one is attached; none attached is an error, never a simulation.
    Auto,
    V4l2,
    Sim,
}

/// Which backend captures fingerprints.
#[derive(Debug, Clone, Copy, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum FingerprintBackend {
    /// A libfprint sensor when one is attached; none attached is an error.
    Auto,
    Libfprint,
    Sim,
}

/// Which officer badge signs, when the command line does not say (`--badge`, `TASJIL_BADGE`).
#[derive(Debug, Clone, Copy, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum BadgeBackend {
    Auto,
    Pcsc,
    Sim,
}

/// Which reader takes the citizen's previous card (renewals, corrections).
#[derive(Debug, Clone, Copy, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum IdCardBackend {
    /// A PC/SC reader (any but the badge's), as `pcsc`; `sim` is never chosen by itself.
    Auto,
    Pcsc,
    Sim,
}

/// `[devices]`: which device plays each role.
#[derive(Debug, Clone, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct Devices {
    pub camera: CameraBackend,
    /// `auto`, an index (`0`) or a device path (`/dev/video0`, `/dev/v4l/by-id/...`).
    pub camera_device: String,
    pub fingerprint: FingerprintBackend,
    /// libfprint driver of the sensor to use; empty for the first sensor that captures images.
    pub fingerprint_driver: String,
    /// Seconds to wait for a finger on a real sensor before the capture gives up.
    pub fingerprint_timeout_secs: u32,
    pub badge: BadgeBackend,
    pub id_card: IdCardBackend,
    /// PC/SC reader of the citizen's card; "" for any reader but the officer badge's.
    pub id_card_reader: String,
}

/// The station's effective configuration.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Config {
    pub capture: CapturePolicy,
    pub finger_format: FingerFormat,
    pub approval: Approval,
    pub devices: Devices,
    pub roster: RosterPolicy,
}

fn merge(base: &mut toml::Table, over: toml::Table) {
    for (k, v) in over {
        match (base.get_mut(&k), v) {
            (Some(toml::Value::Table(b)), toml::Value::Table(o)) => merge(b, o),
            (_, v) => {
                base.insert(k, v);
            }
        }
    }
}

impl Config {
    /// Defaults, then `data_dir/config.toml` if present, then the environment.
    pub fn load(data_dir: &Path) -> anyhow::Result<Config> {
        let env: Vec<(String, String)> = std::env::vars().collect();
        Self::load_with(data_dir, &env)
    }

    fn load_with(data_dir: &Path, env: &[(String, String)]) -> anyhow::Result<Config> {
        let mut table: toml::Table = DEFAULTS.parse().context("built-in configuration")?;
        let path = data_dir.join("config.toml");
        if path.exists() {
            let text = std::fs::read_to_string(&path)
                .with_context(|| format!("cannot read {}", path.display()))?;
            let over: toml::Table = text
                .parse()
                .with_context(|| format!("{} is not valid TOML", path.display()))?;
            merge(&mut table, over);
        }
        for (name, value) in env {
            let sections = ["capture", "approval", "devices", "roster"];
            let Some((section, key)) = sections.iter().find_map(|section| {
                let prefix = format!("TASJIL_{}_", section.to_ascii_uppercase());
                name.strip_prefix(&prefix)
                    .map(|rest| (*section, rest.to_ascii_lowercase()))
            }) else {
                continue;
            };
            let settings = table
                .get_mut(section)
                .and_then(toml::Value::as_table_mut)
                .with_context(|| format!("built-in configuration has no [{section}]"))?;
            let setting =
                match settings.get(&key) {
                    None => anyhow::bail!("{name}: there is no setting {section}.{key}"),
                    // Text settings take the value as it is; the others are whole numbers.
                    Some(toml::Value::String(_)) => toml::Value::String(value.clone()),
                    Some(toml::Value::Boolean(_)) => {
                        toml::Value::Boolean(value.parse().with_context(|| {
                            format!("{name}={value:?}: true or false is expected")
                        })?)
                    }
                    Some(_) => toml::Value::Integer(value.parse().with_context(|| {
                        format!("{name}={value:?}: a whole number is expected")
                    })?),
                };
            settings.insert(key, setting);
        }
        let file: File = toml::Value::Table(table).try_into().with_context(|| {
            format!(
                "configuration (defaults + {} + environment) is not valid",
                path.display()
            )
        })?;
        let c = file.capture;
        if c.face_max_attempts == 0
            || c.finger_max_attempts == 0
            || c.face_min_quality > 100
            || c.finger_min_quality > 100
        {
            anyhow::bail!("capture: attempts must be at least 1 and quality thresholds 0-100");
        }
        if file.roster.warn_days > file.roster.block_days {
            anyhow::bail!("roster.warn_days must not be more than roster.block_days");
        }
        if file.devices.fingerprint_timeout_secs == 0 {
            anyhow::bail!("devices.fingerprint_timeout_secs must be at least 1");
        }
        Ok(Config {
            capture: CapturePolicy {
                face_min_quality: c.face_min_quality,
                face_max_attempts: c.face_max_attempts,
                finger_min_quality: c.finger_min_quality,
                finger_max_attempts: c.finger_max_attempts,
                finger_format: c.finger_format,
            },
            finger_format: c.finger_format,
            approval: file.approval,
            devices: file.devices,
            roster: file.roster,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn documented_defaults_are_the_code_defaults() {
        let dir = tempfile::tempdir().unwrap();
        assert_eq!(
            Config::load_with(dir.path(), &[]).unwrap().capture,
            CapturePolicy::default()
        );
        assert_eq!(
            Config::load_with(dir.path(), &[]).unwrap().roster,
            RosterPolicy::default()
        );
    }

    #[test]
    fn file_then_environment_override_and_mistakes_are_named() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(
            dir.path().join("config.toml"),
            "[capture]\nfinger_min_quality = 55\n",
        )
        .unwrap();
        let env = vec![(
            "TASJIL_CAPTURE_FACE_MAX_ATTEMPTS".to_string(),
            "5".to_string(),
        )];
        let c = Config::load_with(dir.path(), &env).unwrap().capture;
        assert_eq!(
            (
                c.finger_min_quality,
                c.face_max_attempts,
                c.face_min_quality
            ),
            (55, 5, 50)
        );

        let bad_env = vec![(
            "TASJIL_CAPTURE_FINGER_MIN_QUALTY".to_string(),
            "5".to_string(),
        )];
        let err = format!("{:#}", Config::load_with(dir.path(), &bad_env).unwrap_err());
        assert!(
            err.contains("no setting capture.finger_min_qualty"),
            "{err}"
        );
        std::fs::write(
            dir.path().join("config.toml"),
            "[capture]\nfinger_min_qualty = 55\n",
        )
        .unwrap();
        let err = format!("{:#}", Config::load_with(dir.path(), &[]).unwrap_err());
        assert!(err.contains("finger_min_qualty"), "{err}");
        std::fs::write(
            dir.path().join("config.toml"),
            "[capture]\nface_max_attempts = 0\n",
        )
        .unwrap();
        assert!(Config::load_with(dir.path(), &[]).is_err());
    }

    #[test]
    fn devices_default_to_real_hardware_and_take_overrides() {
        let dir = tempfile::tempdir().unwrap();
        let d = Config::load_with(dir.path(), &[]).unwrap().devices;
        assert_eq!(
            (d.camera, d.fingerprint, d.badge),
            (
                CameraBackend::Auto,
                FingerprintBackend::Auto,
                BadgeBackend::Auto
            )
        );
        assert_eq!(d.camera_device, "auto");
        std::fs::write(
            dir.path().join("config.toml"),
            "[devices]\ncamera = \"sim\"\ncamera_device = \"/dev/video2\"\n",
        )
        .unwrap();
        let env = vec![(
            "TASJIL_DEVICES_FINGERPRINT".to_string(),
            "libfprint".to_string(),
        )];
        let d = Config::load_with(dir.path(), &env).unwrap().devices;
        assert_eq!(d.camera, CameraBackend::Sim);
        assert_eq!(d.camera_device, "/dev/video2");
        assert_eq!(d.fingerprint, FingerprintBackend::Libfprint);
        let env = vec![("TASJIL_DEVICES_CAMERA".to_string(), "webcam".to_string())];
        let err = format!("{:#}", Config::load_with(dir.path(), &env).unwrap_err());
        assert!(err.contains("webcam"), "{err}");
        let env = vec![("TASJIL_DEVICES_SCANER".to_string(), "sim".to_string())];
        let err = format!("{:#}", Config::load_with(dir.path(), &env).unwrap_err());
        assert!(err.contains("no setting devices.scaner"), "{err}");
    }

    #[test]
    fn finger_format_defaults_to_wsq_and_takes_text_overrides() {
        let dir = tempfile::tempdir().unwrap();
        let load = |env: &[(String, String)]| Config::load_with(dir.path(), env);
        assert_eq!(load(&[]).unwrap().finger_format, FingerFormat::Wsq);
        let env = |v: &str| vec![("TASJIL_CAPTURE_FINGER_FORMAT".to_string(), v.to_string())];
        assert_eq!(load(&env("png")).unwrap().finger_format, FingerFormat::Png);
        let err = format!("{:#}", load(&env("jpeg2000")).unwrap_err());
        assert!(
            err.contains("finger_format") || err.contains("jpeg2000"),
            "{err}"
        );
    }
}
