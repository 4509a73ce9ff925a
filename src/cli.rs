//! The `tasjil` command line: parse, run, print. Human text by default, one JSON object with
//! `--json`; exit 0 on success, 1 when a problem was found (named in the output), 2 on bad usage.

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::{bail, Context};
use clap::{Parser, Subcommand};
use serde_json::{json, Map, Value};
use tasjil_sync::output::{finish, say, Output};
use tasjil_sync::EnrolmentKind;

use crate::enrolment::simulate;
use crate::station::{self, DataDir, Station, View};

#[derive(Debug, Parser)]
#[command(
    name = "tasjil",
    version,
    about = "Tasjil enrolment station",
    propagate_version = true
)]
pub struct Cli {
    /// Station data directory (default: $XDG_DATA_HOME/tasjil or ~/.local/share/tasjil).
    #[arg(long, global = true, env = "TASJIL_DATA_DIR", value_name = "DIR")]
    pub data_dir: Option<PathBuf>,
    /// Print one JSON object instead of human text.
    #[arg(long, global = true)]
    pub json: bool,
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Create this station: its key, its store, and the centre's public keys.
    Init {
        /// Station id, e.g. VAN-07-A (letters, digits, '-', '_').
        #[arg(long)]
        station_id: String,
        /// The centre's public key file (`centre.pub`, from `tasjil-central init`).
        #[arg(long, value_name = "FILE")]
        central_key: PathBuf,
    },
    /// Run the kiosk's enrolment workflow without the UI.
    Enrol {
        /// Use simulated camera, scanner, signature pad and badge.
        #[arg(long)]
        simulate: bool,
        /// How many citizens to enrol.
        #[arg(long, default_value_t = 1)]
        count: u64,
        /// Seed of the simulated devices and demographics (same seed, same captures).
        #[arg(long, default_value_t = 1)]
        seed: u64,
        /// One JSON object whose fields override the generated demographics of every enrolment.
        #[arg(long, value_name = "FILE")]
        demographics: Option<PathBuf>,
        /// Enrolment kind: new, renewal, replacement or correction.
        #[arg(long, default_value = "new")]
        kind: EnrolmentKind,
        /// Officer id of the simulated badge (a card badge carries its own).
        #[arg(long, default_value = "OFF-SIM-1")]
        officer: String,
        /// Read the badge PIN from standard input instead of a prompt.
        #[arg(long)]
        pin_stdin: bool,
        #[command(flatten)]
        badge: BadgeArgs,
    },
    /// Supervisor approval of records, with the supervisor's badge and PIN.
    Approve {
        /// Approve every record not yet approved.
        #[arg(long, conflicts_with = "ids")]
        all: bool,
        /// Record ids to approve.
        #[arg(value_name = "ID", required_unless_present = "all")]
        ids: Vec<String>,
        /// Supervisor id of the simulated badge (a card badge carries its own).
        #[arg(long, default_value = "SUP-SIM-1")]
        supervisor: String,
        /// Read the badge PIN from standard input instead of a prompt.
        #[arg(long)]
        pin_stdin: bool,
        #[command(flatten)]
        badge: BadgeArgs,
    },
    /// Officer badges (OpenPGP smart cards) in the PC/SC readers.
    #[command(subcommand)]
    Badge(BadgeCommand),
    /// Write the approved records the centre has not acknowledged to a bundle file on a USB
    /// stick, countersigned with the supervisor's badge and PIN.
    Export {
        /// Directory to write the bundle into (the mounted stick).
        #[arg(long, value_name = "DIR")]
        to: PathBuf,
        /// Only records created on or after this day (UTC, YYYY-MM-DD).
        #[arg(long, value_name = "DATE")]
        since: Option<String>,
        /// Only records created on or before this day (UTC, YYYY-MM-DD).
        #[arg(long, value_name = "DATE")]
        until: Option<String>,
        /// Supervisor id of the simulated badge (a card badge carries its own).
        #[arg(long, default_value = "SUP-SIM-1")]
        supervisor: String,
        /// Read the badge PIN from standard input instead of a prompt.
        #[arg(long)]
        pin_stdin: bool,
        #[command(flatten)]
        badge: BadgeArgs,
    },
    /// Receipts the centre signed for USB bundles.
    Receipt {
        #[command(subcommand)]
        command: ReceiptCommand,
    },
    /// List stored records (never demographics).
    List,
    /// Verify every stored envelope, payload and audit entry.
    Verify,
    /// Counts of records by state.
    Status,
    /// Send unacknowledged records to the centre and learn what it verified or rejected.
    Sync {
        /// The centre's address, e.g. http://127.0.0.1:8750
        #[arg(long, value_name = "URL")]
        central: String,
        /// Keep running: sync whenever the centre is reachable, with backoff while it is not.
        #[arg(long)]
        watch: bool,
        /// With --watch: seconds between syncs while the link is up.
        #[arg(long, default_value_t = 30)]
        interval: u64,
        /// Attempts per step before this sync gives up (the next sync resumes where it stopped).
        #[arg(long, default_value_t = 8)]
        retries: u32,
        /// First pause after a failed step, in milliseconds (doubles up to 10 s).
        #[arg(long, default_value_t = 200)]
        retry_delay_ms: u64,
        /// Keep sealed payloads this many days after the centre acknowledged them, then free the
        /// space (the signed envelope stays). 0 purges at once.
        #[arg(long, default_value_t = 7)]
        retention_days: u64,
    },
    /// Capture devices this station can use.
    Devices,
    /// Judge a fingerprint image (PNG, 500 ppi) with the station's quality checks; exit 1 if any
    /// check fails.
    CheckFinger {
        #[arg(value_name = "IMAGE")]
        image: PathBuf,
    },
    /// Judge a face photo (JPEG or PNG) with the station's face checks; exit 1 if there is not
    /// exactly one face or any check fails.
    CheckFace {
        #[arg(value_name = "IMAGE")]
        image: PathBuf,
    },
    /// Open the touch-screen kiosk (Slint window; needs DISPLAY).
    Kiosk {
        /// Use simulated camera, scanner and badge (PIN 123456).
        #[arg(long)]
        simulate: bool,
        /// Seed of the simulated devices.
        #[arg(long, default_value_t = 1)]
        seed: u64,
        /// Fill the whole screen.
        #[arg(long)]
        fullscreen: bool,
        /// Close after this many seconds (smoke tests).
        #[arg(long, value_name = "SECS")]
        exit_after: Option<u64>,
        /// Measure the face preview (frames per second, memory) with simulated devices, then close.
        #[arg(long, requires = "simulate")]
        bench: bool,
    },
    /// Measure commit latency (seal + sign + durable commit) in a temporary station.
    Bench {
        #[arg(long, default_value_t = 200)]
        count: u64,
        #[arg(long, default_value_t = 1)]
        seed: u64,
    },
}

#[derive(Debug, Subcommand)]
pub enum ReceiptCommand {
    /// Take in the receipt the centre wrote for a bundle (`<bundle>.receipt`): check the centre's
    /// signature and mark the records it verified as acknowledged.
    Import {
        #[arg(value_name = "FILE")]
        file: PathBuf,
    },
}

/// Which officer badge a command uses.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum BadgeKind {
    /// The card in a PC/SC reader when one is inserted, else the simulated badge.
    Auto,
    /// An OpenPGP card in a PC/SC reader (waits for it to be inserted).
    Pcsc,
    /// The simulated badge (PIN 123456).
    Sim,
}

#[derive(Debug, clap::Args)]
pub struct BadgeArgs {
    /// Officer badge to use.
    #[arg(
        long = "badge",
        id = "badge",
        value_enum,
        default_value = "auto",
        env = "TASJIL_BADGE"
    )]
    pub kind: BadgeKind,
    /// With a card badge: seconds to wait for it to be inserted.
    #[arg(long, default_value_t = 30)]
    pub badge_wait: u64,
}

#[derive(Debug, Subcommand)]
pub enum BadgeCommand {
    /// Readers, and the badge in each: name, officer id, public key, PIN attempts left.
    Status,
    /// Make a blank OpenPGP card an officer badge: name, officer id, and an Ed25519 signing key
    /// generated on the card. Needs the card's admin PIN (read from standard input).
    Personalise {
        /// Officer id to write on the badge (OpenPGP login data), e.g. OFF-0042.
        #[arg(long)]
        officer_id: String,
        /// Cardholder name (Latin-1, at most 39 characters), e.g. "Haddad<<Amina".
        #[arg(long)]
        name: String,
        /// Reader holding the card (default: the first with a card).
        #[arg(long)]
        reader: Option<String>,
    },
    /// Measure PIN verification + on-card signature through pcscd (user PIN on standard input).
    Bench {
        #[arg(long, default_value_t = 100)]
        count: u32,
    },
}

/// Parse arguments, run, print, and give the exit code. The binary's only entry point.
pub fn main() -> ExitCode {
    let cli = Cli::parse();
    init_logging();
    let json = cli.json;
    finish(run(cli), json)
}

fn init_logging() {
    let filter = tracing_subscriber::EnvFilter::try_from_env("TASJIL_LOG")
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("warn"));
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .try_init();
}

fn run(cli: Cli) -> anyhow::Result<Output> {
    let dir = DataDir::resolve(cli.data_dir)?;
    match cli.command {
        Command::Init {
            station_id,
            central_key,
        } => {
            let r = station::init(&dir, &station_id, &central_key)?;
            Ok(Output::ok(
                serde_json::to_value(&r)?,
                format!(
                    "station {} initialised in {}\n  public key: {}\n  register it at the centre: tasjil-central station add --id {} --key {}",
                    r.station,
                    r.data_dir.display(),
                    r.public_key,
                    r.station,
                    r.station_pub.display()
                ),
            ))
        }
        Command::Enrol {
            simulate,
            count,
            seed,
            demographics,
            kind,
            officer,
            pin_stdin,
            badge,
        } => enrol(
            &dir,
            simulate,
            count,
            seed,
            demographics,
            kind,
            &officer,
            pin_stdin,
            &badge,
            cli.json,
        ),
        Command::Approve {
            all: _,
            ids,
            supervisor,
            pin_stdin,
            badge,
        } => approve(&dir, &ids, &supervisor, pin_stdin, &badge),
        Command::Badge(c) => crate::badge_cli::run(c),
        Command::Export {
            to,
            since,
            until,
            supervisor,
            pin_stdin,
            badge,
        } => export(
            &dir,
            &to,
            crate::bundle::Range { since, until },
            &supervisor,
            pin_stdin,
            &badge,
        ),
        Command::Receipt {
            command: ReceiptCommand::Import { file },
        } => receipt_import(&dir, &file),
        Command::CheckFinger { image } => check_finger(&image),
        Command::CheckFace { image } => check_face(&image),
        Command::Kiosk {
            simulate,
            seed,
            fullscreen,
            exit_after,
            bench,
        } => {
            let options = crate::kiosk::Options {
                simulate,
                seed,
                fullscreen,
                exit_after: exit_after.map(std::time::Duration::from_secs),
                bench,
            };
            crate::kiosk::run(&dir, &options)?;
            Ok(Output::ok(
                json!({"kiosk": "closed"}),
                "kiosk closed".into(),
            ))
        }
        Command::Devices => Ok(devices()),
        Command::List => list(&dir),
        Command::Verify => {
            let view = View::open(&dir)?;
            let report = crate::verify::verify(&view)?;
            let mut human = format!(
                "{} of {} records valid, {} audit entries checked",
                report.valid, report.records, report.audit_entries
            );
            for p in &report.problems {
                human.push_str(&format!("\n  PROBLEM {}: {}", p.id, p.reason));
            }
            if report.ok {
                human.push_str("\nall good");
            }
            Ok(Output {
                ok: report.ok,
                json: serde_json::to_value(&report)?,
                human,
            })
        }
        Command::Status => status(&dir),
        Command::Sync {
            central,
            watch,
            interval,
            retries,
            retry_delay_ms,
            retention_days,
        } => {
            let retry = tasjil_sync::client::RetryPolicy {
                attempts: retries.max(1),
                first_delay: std::time::Duration::from_millis(retry_delay_ms),
                ..Default::default()
            };
            let retention = std::time::Duration::from_secs(retention_days * 24 * 3600);
            sync(&dir, &central, watch, interval, retry, retention, cli.json)
        }
        Command::Bench { count, seed } => {
            let report = crate::bench::run(count, seed)?;
            Ok(Output::ok(serde_json::to_value(&report)?, report.table()))
        }
    }
}

fn status(dir: &DataDir) -> anyhow::Result<Output> {
    let view = View::open(dir)?;
    let c = view.store.counts()?;
    let peers = view.store.peers()?;
    let mut j = serde_json::to_value(&c)?;
    j["station"] = json!(view.station_id);
    j["centres"] = json!(peers
        .iter()
        .map(|(peer, last, err)| json!({"url": peer, "last_sync_ms": last, "last_error": err}))
        .collect::<Vec<_>>());
    let mut human = format!(
        "station {}\n  records:      {}\n  approved:     {}\n  unsent:       {}\n  exported:     {}\n  acknowledged: {}\n  rejected:     {}",
        view.station_id, c.records, c.approved, c.unsent, c.exported, c.acknowledged, c.rejected
    );
    for (peer, last, err) in &peers {
        let ago = last.map_or("never".to_string(), |t| {
            format!("{} s ago", (crate::now_ms() - t) / 1000)
        });
        human.push_str(&format!("\n  centre {peer}: last sync {ago}"));
        if let Some(e) = err {
            human.push_str(&format!(" (link down: {e})"));
        }
    }
    for r in view
        .store
        .envelopes()?
        .iter()
        .filter(|r| r.status == "rejected")
    {
        human.push_str(&format!(
            "\n  REJECTED {} seq {}: {}",
            r.id,
            r.seq,
            r.rejected_reason.as_deref().unwrap_or("")
        ));
    }
    Ok(Output::ok(j, human))
}

fn summary_json(s: &tasjil_sync::session::Summary) -> Value {
    json!({
        "records": s.records, "sent": s.sent, "already_there": s.already_there,
        "acknowledged": s.acknowledged.len(),
        "rejected": s.rejected.iter().map(|(id, r)| json!({"id": id, "reason": r})).collect::<Vec<_>>(),
        "blobs_uploaded": s.blobs_uploaded, "blobs_already_there": s.blobs_already_there,
        "payload_bytes_sent": s.payload_bytes_sent,
        "phase_ms": s.phase_ms,
    })
}

fn summary_text(s: &tasjil_sync::session::Summary) -> String {
    let mut t = format!(
        "sync: {} records to send: {} sent, {} already there, {} acknowledged, {} rejected ({:.1} MB of payload sent)",
        s.records,
        s.sent,
        s.already_there,
        s.acknowledged.len(),
        s.rejected.len(),
        s.payload_bytes_sent as f64 / 1e6
    );
    for (id, reason) in &s.rejected {
        t.push_str(&format!("\n  REJECTED {id}: {reason}"));
    }
    t
}

fn sync(
    dir: &DataDir,
    url: &str,
    watch: bool,
    interval: u64,
    retry: tasjil_sync::client::RetryPolicy,
    retention: std::time::Duration,
    json_out: bool,
) -> anyhow::Result<Output> {
    if !(url.starts_with("http://") || url.starts_with("https://")) {
        bail!("--central must be an http:// or https:// URL, got {url:?}");
    }
    let mut station = Station::open(dir)?;
    if watch {
        crate::sync::watch(
            &mut station,
            url,
            std::time::Duration::from_secs(interval),
            std::time::Duration::from_secs(5),
            retention,
            &mut |r| match r {
                Ok(s) if json_out => say(&summary_json(s).to_string()),
                Ok(s) => say(&summary_text(s)),
                Err(e) => eprintln!("centre unreachable, will retry: {e:#}"),
            },
        )?;
        return Ok(Output::ok(json!({}), String::new()));
    }
    let bar = indicatif::ProgressBar::new_spinner();
    let summary = crate::sync::sync_once(&mut station, url, retry, retention, &mut |s| {
        bar.set_message(format!(
            "{} sent, {} already there, {:.1} MB of payload",
            s.sent,
            s.already_there,
            s.payload_bytes_sent as f64 / 1e6
        ));
        bar.tick();
    })?;
    bar.finish_and_clear();
    Ok(Output {
        ok: summary.rejected.is_empty(),
        json: summary_json(&summary),
        human: summary_text(&summary),
    })
}

/// The simulated backends, and the real devices this build can drive when they are attached.
fn devices() -> Output {
    use tasjil_drivers::{Camera, FingerprintScanner, SignaturePad};
    // (kind, name, simulated, ready)
    let mut list: Vec<(&str, String, bool, bool)> = vec![
        (
            "camera",
            tasjil_drivers::sim::SimCamera::new(0).name(),
            true,
            true,
        ),
        (
            "fingerprint",
            tasjil_drivers::sim::SimScanner::new(0).name(),
            true,
            true,
        ),
        (
            "signature",
            tasjil_drivers::sim::SimSignaturePad::new(0).name(),
            true,
            true,
        ),
        (
            "card",
            "simulated officer badge (OpenPGP card defaults, PIN 123456)".to_string(),
            true,
            true,
        ),
    ];
    let mut notes = Vec::new();
    #[cfg(feature = "pcsc")]
    match tasjil_drivers::card::readers() {
        Ok(readers) if readers.is_empty() => {
            notes.push("PC/SC: no card reader attached".to_string())
        }
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
                list.push(("card", name, false, r.card_present));
            }
        }
        Err(e) => notes.push(format!("PC/SC: {e}")),
    }
    #[cfg(not(feature = "pcsc"))]
    notes.push("PC/SC badges: not in this build (feature `pcsc`)".to_string());
    #[cfg(feature = "libfprint")]
    match tasjil_drivers::fprint::sensors() {
        Ok(sensors) if sensors.is_empty() => {
            notes.push("libfprint: no fingerprint sensor attached".to_string())
        }
        Ok(sensors) => {
            for s in sensors {
                let name = format!("{} (libfprint {}, {})", s.name, s.driver, s.device_id);
                list.push(("fingerprint", name, false, s.can_capture));
            }
        }
        Err(e) => notes.push(format!("libfprint: {e}")),
    }
    let mut human = String::from("kind         ready  device");
    for (kind, name, _, ready) in &list {
        let ready = if *ready { "yes" } else { "no" };
        human.push_str(&format!("\n{kind:<12} {ready:<6} {name}"));
    }
    for n in &notes {
        human.push_str(&format!("\n{n}"));
    }
    human.push_str("\ncapture devices: only the simulated ones in this build (--simulate)");
    Output::ok(
        json!({"devices": list.iter().map(|(kind, name, simulated, ready)| json!({
            "kind": kind, "name": name, "simulated": simulated, "ready": ready,
        })).collect::<Vec<_>>(), "notes": notes}),
        human,
    )
}

fn check_finger(path: &std::path::Path) -> anyhow::Result<Output> {
    let bytes = std::fs::read(path).with_context(|| format!("cannot read {}", path.display()))?;
    let image = tasjil_drivers::GreyImage::from_png(&bytes)
        .with_context(|| format!("{} is not a readable PNG image", path.display()))?;
    let q = tasjil_drivers::quality::finger_quality(&image);
    let passed = q.checks.iter().all(|c| c.passed);
    let mut human = format!(
        "score {} / 100: {}",
        q.score,
        if passed { "passed" } else { "NOT passed" }
    );
    for c in &q.checks {
        human.push_str(&format!(
            "\n  {} {:<14} {:.2}{}",
            if c.passed { "ok  " } else { "FAIL" },
            c.name,
            c.value,
            if c.passed {
                String::new()
            } else {
                format!("  -> {}", c.advice)
            }
        ));
    }
    Ok(Output {
        ok: passed,
        json: json!({
            "score": q.score,
            "passed": passed,
            "checks": q.checks.iter().map(|c| json!({
                "name": c.name, "passed": c.passed, "value": c.value, "advice": c.advice,
            })).collect::<Vec<_>>(),
        }),
        human,
    })
}

fn check_face(path: &std::path::Path) -> anyhow::Result<Output> {
    use tasjil_drivers::face::{decode_frame, FaceAnalyzer};
    let bytes = std::fs::read(path).with_context(|| format!("cannot read {}", path.display()))?;
    let frame = decode_frame(&bytes, 0)
        .with_context(|| format!("{} is not a readable JPEG or PNG image", path.display()))?;
    let analyzer = FaceAnalyzer::new()?;
    let report = analyzer.analyze(&frame)?;
    let passed = report.passed();
    let mut human = format!(
        "{} face(s) in {}x{}; score {} / 100: {}",
        report.detections.len(),
        report.width,
        report.height,
        report.score,
        if passed { "passed" } else { "NOT passed" }
    );
    for d in &report.detections {
        human.push_str(&format!(
            "\n  face at ({:.0}, {:.0}) {:.0}x{:.0}, confidence {:.2}, eyes ({:.0}, {:.0}) ({:.0}, {:.0})",
            d.x, d.y, d.width, d.height, d.score, d.left_eye.x, d.left_eye.y, d.right_eye.x,
            d.right_eye.y
        ));
    }
    for c in &report.checks {
        human.push_str(&format!(
            "\n  {} {:<11} {:>8.2}{}",
            if c.passed { "ok  " } else { "FAIL" },
            c.name,
            c.value,
            if c.passed {
                String::new()
            } else {
                format!("  -> {}", c.advice)
            }
        ));
    }
    let token = FaceAnalyzer::token_image(&frame, &report).ok();
    if let Some(t) = &token {
        human.push_str(&format!(
            "\n  token image {}x{}, {} bytes JPEG",
            t.width,
            t.height,
            t.jpeg.len()
        ));
    }
    Ok(Output {
        ok: passed,
        json: json!({
            "faces": report.detections.len(),
            "passed": passed,
            "score": report.score,
            "width": report.width,
            "height": report.height,
            "detections": report.detections,
            "checks": report.checks.iter().map(|c| json!({
                "name": c.name, "passed": c.passed, "value": c.value, "advice": c.advice,
            })).collect::<Vec<_>>(),
            "token": token.map(|t| json!({
                "width": t.width, "height": t.height, "jpeg_bytes": t.jpeg.len(),
            })),
        }),
        human,
    })
}

fn list(dir: &DataDir) -> anyhow::Result<Output> {
    let view = View::open(dir)?;
    let rows = view.store.envelopes()?;
    let mut human = format!(
        "{:>6}  {:<26}  {:<11}  {:<12}  {}",
        "seq", "id", "kind", "status", "officer"
    );
    let records: Vec<Value> = rows
        .iter()
        .map(|r| {
            human.push_str(&format!(
                "\n{:>6}  {:<26}  {:<11}  {:<12}  {}",
                r.seq, r.id, r.kind, r.status, r.officer
            ));
            json!({
                "id": r.id, "station": view.station_id, "seq": r.seq, "status": r.status,
                "kind": r.kind, "officer": r.officer, "created_ms": r.created_ms,
                "envelope_hash": r.hash, "rejected_reason": r.rejected_reason,
            })
        })
        .collect();
    human.push_str(&format!("\n{} records", rows.len()));
    Ok(Output::ok(json!({ "records": records }), human))
}

/// The badge PIN: from standard input with `--pin-stdin`, else asked at a terminal prompt.
pub(crate) fn read_pin(pin_stdin: bool) -> anyhow::Result<String> {
    use std::io::IsTerminal;
    if !pin_stdin && !std::io::stdin().is_terminal() {
        bail!("a badge PIN is needed: pass --pin-stdin and write the PIN on standard input, or run at a terminal");
    }
    if !pin_stdin {
        eprint!("badge PIN: ");
    }
    let mut pin = String::new();
    std::io::stdin()
        .read_line(&mut pin)
        .context("cannot read the PIN")?;
    Ok(pin.trim_end_matches(['\r', '\n']).to_string())
}

fn export(
    dir: &DataDir,
    to: &std::path::Path,
    range: crate::bundle::Range,
    supervisor: &str,
    pin_stdin: bool,
    badge_args: &BadgeArgs,
) -> anyhow::Result<Output> {
    range.check()?;
    let mut station = Station::open(dir)?;
    let mut badge = crate::badge_cli::unlock(badge_args, supervisor, Some(pin_stdin))?;
    let supervisor = &badge.officer_id();
    station.store().register_officer(
        supervisor,
        &badge.officer_name(),
        "supervisor",
        &badge.public_key_hex(),
        crate::now_ms(),
    )?;
    let bar = indicatif::ProgressBar::new(0).with_style(
        indicatif::ProgressStyle::with_template(
            "writing bundle [{bar:30}] {bytes}/{total_bytes} ({eta})",
        )
        .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar()),
    );
    let report = crate::bundle::export(
        &mut station,
        badge.as_mut(),
        to,
        &range,
        &mut |done, total| {
            bar.set_length(total);
            bar.set_position(done);
        },
    )?;
    bar.finish_and_clear();
    let mut human = match &report.file {
        Some(file) => format!(
            "{}\n  {} records (sequences {} to {}), {:.1} MB, countersigned by {supervisor}\n  take it to the centre: tasjil-central import {}",
            file.display(),
            report.records,
            report.first_seq,
            report.last_seq,
            report.bytes as f64 / 1e6,
            file.display()
        ),
        None => "nothing to export: no approved record is waiting for the centre".to_string(),
    };
    if let Some(why) = &report.held_back {
        human.push_str(&format!(
            "\n  {} records held back: {why}",
            report.held_back_records
        ));
    }
    // No bundle while records wait for approval is a problem for the supervisor to act on.
    let ok = report.file.is_some() || report.held_back.is_none();
    Ok(Output {
        ok,
        json: serde_json::to_value(&report)?,
        human,
    })
}

fn receipt_import(dir: &DataDir, file: &std::path::Path) -> anyhow::Result<Output> {
    let mut station = Station::open(dir)?;
    let report = crate::bundle::import_receipt(&mut station, file)?;
    let counts = station.store().counts()?;
    let o = &report.outcome;
    let mut human = format!(
        "receipt for bundle {}: {} verified, {} rejected by the centre{}\n  now acknowledged: {} of {} records ({} still waiting for the centre)",
        report.bundle_id,
        o.verified,
        o.rejected.len(),
        if o.already_imported { " (this receipt was imported before: nothing new)" } else { "" },
        counts.acknowledged,
        counts.records,
        counts.records - counts.acknowledged
    );
    for (id, reason) in &o.rejected {
        human.push_str(&format!("\n  REJECTED {id}: {reason}"));
    }
    if !o.unknown.is_empty() {
        human.push_str(&format!(
            "\n  {} records in the receipt are not on this station (or differ) and were ignored",
            o.unknown.len()
        ));
    }
    let mut j = serde_json::to_value(&report)?;
    j["status"] = serde_json::to_value(&counts)?;
    Ok(Output {
        ok: o.rejected.is_empty() && o.unknown.is_empty(),
        json: j,
        human,
    })
}

fn approve(
    dir: &DataDir,
    ids: &[String],
    supervisor: &str,
    pin_stdin: bool,
    badge_args: &BadgeArgs,
) -> anyhow::Result<Output> {
    let mut station = Station::open(dir)?;
    let badge = std::cell::RefCell::new(crate::badge_cli::unlock(
        badge_args,
        supervisor,
        Some(pin_stdin),
    )?);
    let supervisor = &badge.borrow().officer_id();
    let now = crate::now_ms();
    let (name, public) = (
        badge.borrow().officer_name(),
        badge.borrow().public_key_hex(),
    );
    station
        .store()
        .register_officer(supervisor, &name, "supervisor", &public, now)?;
    // The badge signs the list of envelope hashes it approves; the signature goes into the audit.
    let sign = |hashes: &[String]| -> Result<String, String> {
        let mut m = b"tasjil/approve/v1\0".to_vec();
        let list = serde_json::to_vec(hashes).map_err(|e| e.to_string())?;
        m.extend_from_slice(&tasjil_sync::canonical::sha256(&list));
        let sig = badge.borrow_mut().sign(&m).map_err(|e| e.to_string())?;
        Ok(hex::encode(sig))
    };
    let key = station.key();
    let approved = station.store().approve(&key, ids, supervisor, &sign, now)?;
    Ok(Output::ok(
        json!({
            "approved": approved.len(),
            "ids": approved.iter().map(|(id, _)| id).collect::<Vec<_>>(),
            "supervisor": supervisor,
        }),
        format!("{} records approved by {supervisor}", approved.len()),
    ))
}

#[allow(clippy::too_many_arguments)]
fn enrol(
    dir: &DataDir,
    simulate_devices: bool,
    count: u64,
    seed: u64,
    demographics: Option<PathBuf>,
    kind: EnrolmentKind,
    officer: &str,
    pin_stdin: bool,
    badge_args: &BadgeArgs,
    json_out: bool,
) -> anyhow::Result<Output> {
    if !simulate_devices {
        bail!("this build has no real capture devices yet: run `tasjil enrol --simulate`");
    }
    let overrides: Option<Map<String, Value>> = match &demographics {
        None => None,
        Some(path) => {
            let text = std::fs::read_to_string(path)
                .with_context(|| format!("cannot read {}", path.display()))?;
            Some(serde_json::from_str(&text).with_context(|| {
                format!(
                    "{} must hold one JSON object of demographics",
                    path.display()
                )
            })?)
        }
    };
    let policy = crate::config::Config::load(&dir.0)?.capture;
    let mut station = Station::open(dir)?;
    // The simulated badge needs no PIN unless the operator wants to exercise the prompt.
    let mut badge = crate::badge_cli::unlock(
        badge_args,
        officer,
        if pin_stdin { Some(true) } else { None },
    )?;
    station.login(badge.as_ref())?;

    let progress = indicatif::ProgressBar::new(count).with_style(
        indicatif::ProgressStyle::with_template(
            "{bar:40} {pos}/{len} enrolled  {elapsed} (eta {eta})",
        )
        .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar()),
    );
    let mut committed = Vec::new();
    for i in 0..count {
        let done = simulate::run(
            simulate::enrolment_seed(seed, i),
            kind,
            &station.schema,
            overrides.as_ref(),
            &policy,
            crate::now_ms,
        )
        .with_context(|| format!("enrolment {} of {count} was not saved", i + 1))?;
        let c = station
            .commit(&done, badge.as_mut())
            .with_context(|| format!("enrolment {} of {count} was not saved", i + 1))?;
        // Printed only once the commit is durable: a line here is a promise.
        if !json_out {
            progress.suspend(|| say(&format!("committed {} seq {}", c.id, c.seq)));
        }
        progress.inc(1);
        committed.push(c);
    }
    progress.finish_and_clear();
    let sealed: usize = committed.iter().map(|c| c.sealed_len).sum();
    let n = committed.len().max(1);
    Ok(Output::ok(
        json!({
            "station": station.station_id(),
            "committed": committed.len(),
            "records": committed.iter().map(|c| json!({"id": c.id, "seq": c.seq})).collect::<Vec<_>>(),
            "mean_sealed_bytes": sealed / n,
        }),
        format!(
            "{} enrolments committed on station {} (mean sealed payload {} KB)",
            committed.len(),
            station.station_id(),
            sealed / n / 1024
        ),
    ))
}
