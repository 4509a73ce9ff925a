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
        /// A training or demonstration station: the only kind that allows simulated devices and
        /// badges (`--simulate`, `--badge sim`). Recorded in the store, in station.pub and in every
        /// envelope; the centre takes its records only if registered with `--simulation` too.
        #[arg(long)]
        simulation: bool,
        /// The centre's signed roster (`tasjil-central roster export`): which badges this station
        /// accepts. Without one, a station (other than a training station) accepts no badge
        /// until a sync or `tasjil roster import` brings it.
        #[arg(long, value_name = "FILE")]
        roster: Option<PathBuf>,
    },
    /// The centre's signed roster of badges this station obeys.
    #[command(subcommand)]
    Roster(RosterCommand),
    /// The centre's public keys this station holds, and their rotations.
    #[command(subcommand)]
    Keys(KeysCommand),
    /// Run the kiosk's enrolment workflow without the UI. Without --simulate it uses the devices
    /// of [devices] in the configuration (`tasjil devices` shows them), needs --demographics with
    /// the citizen's data and --signature with the pen strokes, and enrols one citizen.
    Enrol {
        /// Use simulated camera, scanner and signature pad (and the simulated badge unless
        /// --badge says otherwise).
        #[arg(long)]
        simulate: bool,
        /// Without --simulate: the citizen's signature as pen strokes, a JSON object
        /// `{"width": W, "height": H, "strokes": [{"points": [{"x","y","t_ms","pressure"}]}]}`
        /// as the kiosk's signature pad records it.
        #[arg(long, value_name = "FILE", conflicts_with = "simulate")]
        signature: Option<PathBuf>,
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
    /// Put records on hold (not approved, kept on the station) with the supervisor's badge and
    /// PIN; the reason goes to the ledger and the audit chain.
    Hold {
        /// Record ids to hold.
        #[arg(value_name = "ID", required = true)]
        ids: Vec<String>,
        /// Why (e.g. "document to check").
        #[arg(long, default_value = "")]
        reason: String,
        /// Supervisor id of the simulated badge (a card badge carries its own).
        #[arg(long, default_value = "SUP-SIM-1")]
        supervisor: String,
        /// Read the badge PIN from standard input instead of a prompt.
        #[arg(long)]
        pin_stdin: bool,
        #[command(flatten)]
        badge: BadgeArgs,
    },
    /// Reject records at the station with the supervisor's badge and PIN: their sealed payload
    /// never leaves the station (the envelope still travels, the centre learns the reason).
    Reject {
        /// Record ids to reject.
        #[arg(value_name = "ID", required = true)]
        ids: Vec<String>,
        /// Why (required).
        #[arg(long)]
        reason: String,
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
    /// Officers and supervisors this station accepts, with their badge keys.
    #[command(subcommand)]
    Officer(OfficerCommand),
    /// The citizen's previous card, read through its chip (what the kiosk does for a renewal).
    #[command(subcommand)]
    IdCard(crate::id_card_cli::IdCardCommand),
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
    /// Copy the station (store, keys, configuration) into a new backup directory, e.g. on a USB
    /// stick. Safe while the kiosk runs.
    Backup {
        /// The backup directory (created 0700; must not hold a backup already).
        #[arg(long, value_name = "DIR")]
        to: std::path::PathBuf,
    },
    /// Put a backup back (the store in the data directory is moved aside, never deleted) and sign
    /// a restore link, so that records enrolled from now on reach the centre even though the
    /// records made after the backup are already there.
    Restore {
        /// A backup directory from `tasjil backup`, or a copy of station.db.
        #[arg(value_name = "BACKUP")]
        from: std::path::PathBuf,
        /// Why (e.g. "disk replaced"): recorded in the signed link and the audit chain.
        #[arg(long)]
        reason: String,
    },
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
    /// Open the touch-screen kiosk (Slint window; needs DISPLAY). Without --simulate it uses the
    /// devices chosen in [devices] of the configuration (see `tasjil devices`): the V4L2 camera,
    /// the libfprint sensor and badges in a PC/SC reader; a device missing at start is said on
    /// screen and used once plugged in.
    Kiosk {
        /// Use simulated camera, scanner and badges (PIN 123456), whatever the configuration.
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
    /// Install a signed station update (a `.deb` with FILE.sig next to it, e.g. from a USB
    /// stick); `update sign` and `update keygen` make them.
    Update(crate::update::UpdateCommand),
    /// Measure commit latency (seal + sign + durable commit) in a temporary station.
    Bench {
        #[arg(long, default_value_t = 200)]
        count: u64,
        #[arg(long, default_value_t = 1)]
        seed: u64,
        /// Also time the commits on a station already holding this many records of the day,
        /// then `approve --all` of them (0: the fresh station only).
        #[arg(long, default_value_t = 0)]
        held: u64,
    },
}

#[derive(Debug, Subcommand)]
pub enum RosterCommand {
    /// Take in a roster file from the centre (a USB stick): refused unless the centre signed it
    /// and it is newer than the one held.
    Import {
        #[arg(value_name = "FILE")]
        file: PathBuf,
    },
    /// The roster held: version, age, and the badges allowed on this station.
    Show,
}

#[derive(Debug, Subcommand)]
pub enum KeysCommand {
    /// Take the centre's key rotations from a file (`tasjil-central keys export`): each must be
    /// signed by the key this station holds, in order.
    Import {
        #[arg(value_name = "FILE")]
        file: PathBuf,
    },
    /// The centre's keys held: version, signing keys, the recipients payloads are sealed to.
    Show,
}

#[derive(Debug, Subcommand)]
pub enum OfficerCommand {
    /// Register an officer or supervisor with the public key read from their badge (a card in a
    /// PC/SC reader: no PIN needed; or the simulated badge of --id).
    Add {
        /// officer or supervisor.
        #[arg(long, value_enum, default_value = "officer")]
        role: OfficerRole,
        /// Officer id. A card badge carries its own (given here, it must match); the simulated
        /// badge needs it.
        #[arg(long)]
        id: Option<String>,
        /// Name to record (a card badge carries its own cardholder name).
        #[arg(long)]
        name: Option<String>,
        /// An emergency override on a station that takes its badges from the centre's roster:
        /// let this badge work here before the roster lists it, for the reason given. Recorded
        /// in the audit chain; the centre holds the records it co-signs for staff to decide;
        /// never overrides a revocation.
        #[arg(long, value_name = "REASON")]
        emergency: Option<String>,
        #[command(flatten)]
        badge: BadgeArgs,
    },
    /// The registered officers and supervisors.
    List,
}

/// What an officer may do at this station.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum OfficerRole {
    Officer,
    Supervisor,
}

impl OfficerRole {
    pub fn as_str(self) -> &'static str {
        match self {
            OfficerRole::Officer => "officer",
            OfficerRole::Supervisor => "supervisor",
        }
    }
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

impl BadgeKind {
    pub fn backend(self) -> crate::config::BadgeBackend {
        match self {
            BadgeKind::Auto => crate::config::BadgeBackend::Auto,
            BadgeKind::Pcsc => crate::config::BadgeBackend::Pcsc,
            BadgeKind::Sim => crate::config::BadgeBackend::Sim,
        }
    }
}

/// `--badge` when given, else the configuration's `[devices] badge`.
fn configured_badge(dir: &DataDir, mut args: BadgeArgs) -> anyhow::Result<BadgeArgs> {
    if args.kind.is_none() {
        args.kind = Some(match crate::config::Config::load(&dir.0)?.devices.badge {
            crate::config::BadgeBackend::Auto => BadgeKind::Auto,
            crate::config::BadgeBackend::Pcsc => BadgeKind::Pcsc,
            crate::config::BadgeBackend::Sim => BadgeKind::Sim,
        });
    }
    // Simulation is never a way in: off a training station the simulated badge is refused
    // however it was asked for, and `auto` means the card in the reader, nothing else.
    if !training_station(dir)? {
        match args.kind {
            Some(BadgeKind::Sim) => bail!(
                "the simulated badge (--badge sim, TASJIL_BADGE=sim or badge = \"sim\") is refused: {}",
                station::NOT_TRAINING
            ),
            Some(BadgeKind::Auto) => args.kind = Some(BadgeKind::Pcsc),
            _ => {}
        }
    }
    Ok(args)
}

/// Whether `dir` holds a training station. A directory without a station answers true here:
/// the command then fails on its own with "not initialised".
fn training_station(dir: &DataDir) -> anyhow::Result<bool> {
    if !dir.db().exists() {
        return Ok(true);
    }
    Ok(View::open(dir)?.simulation()?)
}

/// Refuse simulated devices off a training station: `--simulate`, or a simulated camera,
/// fingerprint scanner, card reader or badge in `[devices]`. Nothing is written before this.
fn refuse_simulation(dir: &DataDir, simulate: bool, what: &str) -> anyhow::Result<()> {
    if training_station(dir)? {
        return Ok(());
    }
    if simulate {
        bail!("{what} --simulate is refused: {}", station::NOT_TRAINING);
    }
    let d = crate::config::Config::load(&dir.0)?.devices;
    let simulated: Vec<&str> = [
        (d.camera == crate::config::CameraBackend::Sim, "camera"),
        (
            d.fingerprint == crate::config::FingerprintBackend::Sim,
            "fingerprint",
        ),
        (d.id_card == crate::config::IdCardBackend::Sim, "id_card"),
        (d.badge == crate::config::BadgeBackend::Sim, "badge"),
    ]
    .into_iter()
    .filter_map(|(sim, name)| sim.then_some(name))
    .collect();
    if !simulated.is_empty() {
        bail!(
            "[devices] {} = \"sim\" is refused: {}",
            simulated.join(", "),
            station::NOT_TRAINING
        );
    }
    Ok(())
}

#[derive(Debug, clap::Args)]
pub struct BadgeArgs {
    /// Officer badge to use.
    /// (default: `badge` in [devices] of the configuration, normally `auto`)
    #[arg(long = "badge", id = "badge", value_enum, env = "TASJIL_BADGE")]
    pub kind: Option<BadgeKind>,
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
            simulation,
            roster,
        } => {
            let r = station::init(&dir, &station_id, &central_key, simulation)?;
            let roster_line = match roster {
                Some(file) => {
                    let bytes = std::fs::read(&file)
                        .with_context(|| format!("cannot read {}", file.display()))?;
                    let mut s = Station::open(&dir)?;
                    match s.import_roster(&bytes, &file.display().to_string()) {
                        Ok(crate::roster::Imported::Taken { version, entries, .. }) => {
                            format!("\n  roster version {version} ({entries} badges) taken from {}", file.display())
                        }
                        Ok(crate::roster::Imported::AlreadyHeld { version }) => {
                            format!("\n  roster version {version}")
                        }
                        Err(e) => bail!("{e:#}; the station was created without a roster: fix the file and run `tasjil roster import FILE`"),
                    }
                }
                None if simulation => String::new(),
                None => "\n  no roster yet: this station accepts no badge until a sync or `tasjil roster import FILE` brings the centre's roster".into(),
            };
            Ok(Output::ok(
                serde_json::to_value(&r)?,
                format!(
                    "{} {} initialised in {}\n  public key: {}\n  register it at the centre: tasjil-central station add --id {} --key {}{}",
                    if r.simulation { "training station" } else { "station" },
                    r.station,
                    r.data_dir.display(),
                    r.public_key,
                    r.station,
                    r.station_pub.display(),
                    if r.simulation { " --simulation" } else { "" }
                ) + &roster_line,
            ))
        }
        Command::Roster(RosterCommand::Import { file }) => roster_import(&dir, &file),
        Command::Roster(RosterCommand::Show) => roster_show(&dir),
        Command::Keys(KeysCommand::Import { file }) => {
            let mut station = Station::open(&dir)?;
            let (taken, version) = crate::centre_keys::import_file(&mut station, &file)?;
            Ok(Output::ok(
                json!({"taken": taken, "version": version}),
                if taken == 0 {
                    format!("centre keys: already at version {version}; nothing taken")
                } else {
                    format!("centre keys: {taken} rotation(s) taken, now version {version}")
                },
            ))
        }
        Command::Keys(KeysCommand::Show) => {
            let view = crate::station::View::open(&dir)?;
            let c = view.centre_public()?;
            Ok(Output::ok(
                serde_json::to_value(&c)?,
                format!(
                    "centre keys version {}\n  signing key {}\n  earlier signing keys {}\n  payloads sealed to {}\n  TLS certificate {}{}",
                    c.version,
                    c.ed25519,
                    c.previous_ed25519.len(),
                    c.age_recipients.join(", "),
                    c.tls_cert_sha256.as_deref().unwrap_or("(none pinned)"),
                    if c.tls_next_sha256.is_empty() {
                        String::new()
                    } else {
                        format!("\n  next TLS certificate {}", c.tls_next_sha256.join(", "))
                    }
                ),
            ))
        }
        Command::Enrol {
            simulate,
            signature,
            count,
            seed,
            demographics,
            kind,
            officer,
            pin_stdin,
            badge,
        } => {
            let badge = configured_badge(&dir, badge)?;
            refuse_simulation(&dir, simulate, "tasjil enrol")?;
            enrol(
                &dir,
                Enrol {
                    simulate,
                    signature,
                    count,
                    seed,
                    demographics,
                    kind,
                },
                &officer,
                pin_stdin,
                &badge,
                cli.json,
            )
        }
        Command::Approve {
            all: _,
            ids,
            supervisor,
            pin_stdin,
            badge,
        } => approve(
            &dir,
            &ids,
            &supervisor,
            pin_stdin,
            &configured_badge(&dir, badge)?,
        ),
        Command::Hold {
            ids,
            reason,
            supervisor,
            pin_stdin,
            badge,
        } => review(
            &dir,
            &ids,
            crate::store::review::Decision::Hold,
            &reason,
            &supervisor,
            pin_stdin,
            &configured_badge(&dir, badge)?,
        ),
        Command::Reject {
            ids,
            reason,
            supervisor,
            pin_stdin,
            badge,
        } => review(
            &dir,
            &ids,
            crate::store::review::Decision::Reject,
            &reason,
            &supervisor,
            pin_stdin,
            &configured_badge(&dir, badge)?,
        ),
        Command::Badge(c) => crate::badge_cli::run(c),
        Command::IdCard(c) => crate::id_card_cli::run(c),
        Command::Update(c) => crate::update::run(&dir, c),
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
            &configured_badge(&dir, badge)?,
        ),
        Command::Officer(OfficerCommand::Add {
            role,
            id,
            name,
            emergency,
            badge,
        }) => crate::badge_cli::officer_add(
            &dir,
            role,
            id.as_deref(),
            name.as_deref(),
            emergency.as_deref(),
            &configured_badge(&dir, badge)?,
        ),
        Command::Officer(OfficerCommand::List) => crate::badge_cli::officer_list(&dir),
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
            refuse_simulation(&dir, simulate, "tasjil kiosk")?;
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
        Command::Devices => {
            let config = crate::config::Config::load(&dir.0)?;
            let flag = std::env::var("TASJIL_BADGE")
                .ok()
                .and_then(|v| <BadgeKind as clap::ValueEnum>::from_str(&v, true).ok())
                .map(BadgeKind::backend);
            Ok(crate::devices::report(&config.devices, flag))
        }
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
        Command::Backup { to } => {
            let r = crate::restore::backup(&dir, &to)?;
            let human = format!(
                "backup of station {} in {}: {} records, chain head {} ({} bytes)",
                r.station,
                r.to.display(),
                r.records,
                r.head_seq,
                r.bytes
            );
            Ok(Output::ok(serde_json::to_value(&r)?, human))
        }
        Command::Restore { from, reason } => {
            let r = crate::restore::restore(&dir, &from, &reason)?;
            let mut human = format!(
                "station {} restored from {}: {} records, chain head {}; new records continue after restore link {}",
                r.station,
                from.display(),
                r.records,
                r.from_seq,
                r.link_seq
            );
            if let Some(aside) = &r.replaced {
                human.push_str(&format!(
                    "
the store that was here is kept in {}",
                    aside.display()
                ));
            }
            human.push_str(
                "
run `tasjil verify`, then sync or export as usual",
            );
            Ok(Output::ok(serde_json::to_value(&r)?, human))
        }
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
        Command::Bench { count, seed, held } => {
            let report = crate::bench::run(count, seed, held)?;
            Ok(Output::ok(serde_json::to_value(&report)?, report.table()))
        }
    }
}

fn roster_import(dir: &DataDir, file: &std::path::Path) -> anyhow::Result<Output> {
    let bytes = std::fs::read(file).with_context(|| format!("cannot read {}", file.display()))?;
    let mut station = Station::open(dir)?;
    let outcome = station.import_roster(&bytes, &file.display().to_string())?;
    let human = match &outcome {
        crate::roster::Imported::Taken {
            version,
            previous,
            entries,
        } => format!(
            "roster version {version} taken ({entries} badges){}",
            previous.map_or(String::new(), |p| format!(", replacing version {p}"))
        ),
        crate::roster::Imported::AlreadyHeld { version } => {
            format!("this station already holds roster version {version}: nothing changed")
        }
    };
    Ok(Output::ok(serde_json::to_value(&outcome)?, human))
}

fn roster_show(dir: &DataDir) -> anyhow::Result<Output> {
    use tasjil_sync::roster::day;
    let view = View::open(dir)?;
    let policy = crate::config::Config::load(&dir.0)?.roster;
    let Some(roster) = view.roster()? else {
        let why = if view.simulation()? {
            "no roster: this training station registers badges on first use"
        } else {
            crate::roster::NO_ROSTER
        };
        return Ok(Output::ok(json!({"version": null}), why.to_string()));
    };
    let age = view.roster_age(&policy, crate::now_ms())?;
    let here: Vec<_> = roster
        .roster
        .entries
        .iter()
        .filter(|e| e.works_on(&view.station_id, &roster.roster.groups))
        .collect();
    let mut human = format!(
        "roster version {} issued {} ({} days ago; warn after {}, no enrolment after {})",
        roster.version(),
        day(roster.roster.issued_ms),
        age.as_ref().map_or(0, |a| a.age_days),
        policy.warn_days,
        policy.block_days
    );
    if let Some(w) = age.as_ref().and_then(crate::roster::RosterAge::warning) {
        human.push_str(&format!("\n  WARNING: {w}"));
    }
    for e in &here {
        human.push_str(&format!(
            "\n  {:<14} {:<10} {} until {}{}",
            e.id,
            e.role.as_str(),
            e.name,
            e.valid_until_ms.map_or("-".into(), day),
            e.revoked
                .as_ref()
                .map_or(String::new(), |r| format!("  REVOKED ({})", r.reason))
        ));
    }
    Ok(Output::ok(
        json!({"version": roster.version(), "issued_ms": roster.roster.issued_ms, "age": age,
               "entries": here}),
        human,
    ))
}

fn status(dir: &DataDir) -> anyhow::Result<Output> {
    let view = View::open(dir)?;
    let c = view.store.counts()?;
    let peers = view.store.peers()?;
    let mut j = serde_json::to_value(&c)?;
    j["station"] = json!(view.station_id);
    // `status` answers even when the configuration file is broken (that is when it is needed).
    let policy = crate::config::Config::load(&dir.0)
        .map(|c| c.roster)
        .unwrap_or_default();
    let roster_age = view.roster_age(&policy, crate::now_ms());
    j["roster"] = json!(roster_age.as_ref().ok().cloned().flatten());
    j["centres"] = json!(peers
        .iter()
        .map(|(peer, last, err)| json!({"url": peer, "last_sync_ms": last, "last_error": err}))
        .collect::<Vec<_>>());
    let mut human = format!(
        "station {}\n  records:      {}\n  approved:     {}\n  unsent:       {}\n  exported:     {}\n  acknowledged: {}\n  rejected:     {}\n  accepted for production: {}\n  card produced: {}\n  re-enrol needed: {}",
        view.station_id,
        c.records,
        c.approved,
        c.unsent,
        c.exported,
        c.acknowledged,
        c.rejected,
        c.accepted,
        c.issued,
        c.reenrol
    );
    match &roster_age {
        Ok(Some(a)) => {
            human.push_str(&format!(
                "\n  roster: version {}, {} days old",
                a.version, a.age_days
            ));
            if let Some(w) = a.warning() {
                human.push_str(&format!("\n  WARNING: {w}"));
            }
        }
        Ok(None) => human.push_str("\n  roster: none"),
        Err(e) => human.push_str(&format!("\n  ROSTER UNUSABLE: {e:#}")),
    }
    for (peer, last, err) in &peers {
        let ago = last.map_or("never".to_string(), |t| {
            format!("{} s ago", (crate::now_ms() - t) / 1000)
        });
        human.push_str(&format!("\n  centre {peer}: last sync {ago}"));
        if let Some(e) = err {
            human.push_str(&format!(" (link down: {e})"));
        }
    }
    let rows = view.store.envelopes()?;
    for r in rows.iter().filter(|r| r.status == "rejected") {
        human.push_str(&format!(
            "\n  REJECTED {} seq {}: {}",
            r.id,
            r.seq,
            r.rejected_reason.as_deref().unwrap_or("")
        ));
    }
    // The call-back list: citizens the centre needs enrolled again.
    let reenrol: Vec<_> = rows
        .iter()
        .filter(|r| r.issuance.as_deref() == Some("reenrol"))
        .collect();
    for r in &reenrol {
        human.push_str(&format!(
            "\n  RE-ENROL {} seq {}: {}",
            r.id,
            r.seq,
            r.issuance_reason.as_deref().unwrap_or("")
        ));
    }
    j["reenrol_needed"] = json!(reenrol
        .iter()
        .map(|r| json!({"id": r.id, "seq": r.seq, "reason": r.issuance_reason}))
        .collect::<Vec<_>>());
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
        "roster": s.roster, "roster_updated": s.roster_updated, "roster_refused": s.roster_refused,
        "restore_links_sent": s.restore_links_sent, "centre_head": s.centre_head,
        "behind_centre": s.behind_centre,
        "centre_keys": s.centre_keys, "centre_keys_updated": s.centre_keys_updated,
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
    match (&s.roster_refused, s.roster_updated, s.roster) {
        (Some(why), _, _) => t.push_str(&format!("\n  ROSTER REFUSED: {why}")),
        (None, true, Some(v)) => t.push_str(&format!("\n  roster: now version {v}")),
        _ => {}
    }
    if s.restore_links_sent > 0 {
        t.push_str(&format!(
            "\n  restore links stored at the centre: {}",
            s.restore_links_sent
        ));
    }
    if s.centre_keys_updated {
        t.push_str(&format!(
            "\n  centre keys: rotation taken, now version {}",
            s.centre_keys
        ));
    }
    if let Some(why) = &s.behind_centre {
        t.push_str(&format!("\n  RESTORED STORE: {why}"));
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
    if watch {
        use crate::sync::WatchRound;
        // Say "busy" once per stretch, not every interval.
        let mut busy_said = false;
        crate::sync::watch(
            dir,
            url,
            std::time::Duration::from_secs(interval),
            std::time::Duration::from_secs(5),
            retention,
            &mut |r| {
                match r {
                    WatchRound::Synced(s) if json_out => say(&summary_json(s).to_string()),
                    WatchRound::Synced(s) => say(&summary_text(s)),
                    WatchRound::Unreachable(e) => {
                        eprintln!("centre unreachable, will retry: {e:#}")
                    }
                    WatchRound::Busy if !busy_said => eprintln!(
                        "the station is in use (an officer is logged in at the kiosk, or another \
                         tasjil command is writing): syncing when it is free"
                    ),
                    WatchRound::Busy => {}
                }
                busy_said = matches!(r, WatchRound::Busy);
            },
        )?;
        return Ok(Output::ok(json!({}), String::new()));
    }
    let mut station = Station::open(dir)?;
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
        ok: summary.rejected.is_empty() && summary.roster_refused.is_none(),
        json: summary_json(&summary),
        human: summary_text(&summary),
    })
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
        human.push_str(&check_line(c.passed, c.name, f64::from(c.value), c.advice));
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

/// One line of `check-finger` / `check-face`: the verdict, the check, its value and, when it
/// failed, what to do.
fn check_line(passed: bool, name: &str, value: f64, advice: &str) -> String {
    let verdict = if passed { "ok  " } else { "FAIL" };
    let todo = if passed {
        String::new()
    } else {
        format!("  -> {advice}")
    };
    format!("\n  {verdict} {name:<14} {value:>8.2}{todo}")
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
        human.push_str(&check_line(c.passed, c.name, f64::from(c.value), c.advice));
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
    let decisions = view.store.station_decisions()?;
    let mut human = format!(
        "{:>6}  {:<26}  {:<11}  {:<12}  {}",
        "seq", "id", "kind", "status", "officer"
    );
    let records: Vec<Value> = rows
        .iter()
        .map(|r| {
            let decision = decisions.get(&r.id);
            human.push_str(&format!(
                "\n{:>6}  {:<26}  {:<11}  {:<12}  {}",
                r.seq, r.id, r.kind, r.status, r.officer
            ));
            if let Some(d) = decision {
                human.push_str(&format!(
                    "  [{} by {}: {}]",
                    d.status.as_str(),
                    d.by,
                    d.reason.as_deref().unwrap_or("")
                ));
            }
            json!({
                "id": r.id, "station": view.station_id, "seq": r.seq, "status": r.status,
                "kind": r.kind, "officer": r.officer, "created_ms": r.created_ms,
                "envelope_hash": r.hash, "rejected_reason": r.rejected_reason,
                "review": decision.map(|d| d.status.as_str()),
                "review_reason": decision.and_then(|d| d.reason.clone()),
                "reviewed_by": decision.map(|d| d.by.clone()),
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
    station.register_supervisor(badge.as_ref())?;
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
    let roster_refused = match &report.roster {
        Some(crate::bundle::RosterOutcome::Imported(crate::roster::Imported::Taken {
            version,
            ..
        })) => {
            human.push_str(&format!("\n  roster: now version {version}"));
            false
        }
        Some(crate::bundle::RosterOutcome::Refused(why)) => {
            human.push_str(&format!("\n  ROSTER REFUSED: {why}"));
            true
        }
        _ => false,
    };
    let mut j = serde_json::to_value(&report)?;
    j["status"] = serde_json::to_value(&counts)?;
    Ok(Output {
        ok: o.rejected.is_empty() && o.unknown.is_empty() && !roster_refused,
        json: j,
        human,
    })
}

/// `tasjil enrol` without `--simulate`: one citizen, with the configured devices. Every input and
/// device is checked before the store is touched, so a missing device stores nothing.
fn enrol_live(
    dir: &DataDir,
    e: Enrol,
    officer: &str,
    pin_stdin: bool,
    badge_args: &BadgeArgs,
) -> anyhow::Result<Output> {
    if e.count != 1 {
        bail!("with real devices `tasjil enrol` enrols one citizen at a time: leave out --count (or use --simulate)");
    }
    let Some(path) = &e.demographics else {
        bail!("without --simulate, pass the citizen's data with --demographics FILE (one JSON object per the schema)");
    };
    let text =
        std::fs::read_to_string(path).with_context(|| format!("cannot read {}", path.display()))?;
    let demographics: Map<String, Value> = serde_json::from_str(&text).with_context(|| {
        format!(
            "{} must hold one JSON object of demographics",
            path.display()
        )
    })?;
    let Some(path) = &e.signature else {
        bail!("without --simulate, pass the citizen's signature with --signature FILE (pen strokes as JSON; the kiosk's touch screen is the signature pad)");
    };
    let text =
        std::fs::read_to_string(path).with_context(|| format!("cannot read {}", path.display()))?;
    let pad: SignatureFile = serde_json::from_str(&text).with_context(|| {
        format!(
            "{} must hold {{\"width\", \"height\", \"strokes\"}}",
            path.display()
        )
    })?;
    let signature = tasjil_drivers::SignatureCapture::render(
        pad.width,
        pad.height,
        pad.strokes,
        crate::now_ms(),
    )?;
    signature
        .check()
        .with_context(|| format!("the signature in {}", path.display()))?;

    let config = crate::config::Config::load(&dir.0)?;
    let mut camera = crate::devices::open_camera(&config.devices, false, e.seed)?;
    let mut scanner = crate::devices::open_scanner(&config.devices, false, e.seed)?;
    if badge_args.kind == Some(BadgeKind::Auto) && !crate::badge_cli::card_inserted() {
        bail!("no officer badge is inserted in a PC/SC reader: insert the badge (`tasjil devices` lists the readers), or choose one with --badge pcsc|sim");
    }
    let mut station = Station::open(dir)?;
    let mut badge = crate::badge_cli::unlock(badge_args, officer, Some(pin_stdin))?;
    station.login(badge.as_ref())?;
    eprintln!("devices: {}, {}", camera.name(), scanner.name());
    let done = crate::enrolment::live::run(
        crate::enrolment::live::Devices {
            camera: camera.as_mut(),
            scanner: scanner.as_mut(),
        },
        e.kind,
        &station.schema,
        demographics,
        signature,
        &config.capture,
        crate::now_ms,
        &mut |line| eprintln!("{line}"),
    )
    .context("the enrolment was not saved")?;
    let c = station
        .commit(&done, badge.as_mut())
        .context("the enrolment was not saved")?;
    Ok(Output::ok(
        json!({
            "station": station.station_id(),
            "committed": 1,
            "records": [{"id": c.id, "seq": c.seq}],
            "mean_sealed_bytes": c.sealed_len,
            "below_threshold": done.below_threshold,
            "exceptions": done.exceptions.len(),
        }),
        format!(
            "committed {} seq {}\n1 enrolment committed on station {} (sealed payload {} KB{})",
            c.id,
            c.seq,
            station.station_id(),
            c.sealed_len / 1024,
            if done.below_threshold.is_empty() {
                String::new()
            } else {
                format!(
                    "; kept below threshold: {}",
                    done.below_threshold.join(", ")
                )
            }
        ),
    ))
}

fn approve(
    dir: &DataDir,
    ids: &[String],
    supervisor: &str,
    pin_stdin: bool,
    badge_args: &BadgeArgs,
) -> anyhow::Result<Output> {
    let mut station = Station::open(dir)?;
    let mut badge = crate::badge_cli::unlock(badge_args, supervisor, Some(pin_stdin))?;
    let supervisor = &badge.officer_id();
    let approved = station.approve(badge.as_mut(), ids)?;
    let own = station.own_awaiting(supervisor)?;
    let mut human = format!("{} records approved by {supervisor}", approved.len());
    if !own.is_empty() {
        human.push_str(&format!(
            "\n  {} records enrolled by {supervisor} are left for another supervisor to approve",
            own.len()
        ));
    }
    Ok(Output::ok(
        json!({
            "approved": approved.len(),
            "ids": approved.iter().map(|(id, _)| id).collect::<Vec<_>>(),
            "supervisor": supervisor,
            "left_for_another_supervisor": own,
        }),
        human,
    ))
}

/// `tasjil hold` / `tasjil reject`: one decision per record, each in its own transaction; the
/// first refusal stops (the records before it keep their decision, and are named).
fn review(
    dir: &DataDir,
    ids: &[String],
    decision: crate::store::review::Decision,
    reason: &str,
    supervisor: &str,
    pin_stdin: bool,
    badge_args: &BadgeArgs,
) -> anyhow::Result<Output> {
    use crate::store::review::Decision;
    if decision == Decision::Reject && reason.trim().is_empty() {
        anyhow::bail!("a rejection needs a reason: --reason TEXT");
    }
    let mut station = Station::open(dir)?;
    let mut badge = crate::badge_cli::unlock(badge_args, supervisor, Some(pin_stdin))?;
    let supervisor = badge.officer_id();
    let mut done = Vec::new();
    for id in ids {
        match station.review(badge.as_mut(), id, decision, reason) {
            Ok(entry) => done.push((id.clone(), entry.reason.unwrap_or_default())),
            Err(e) if done.is_empty() => return Err(e),
            Err(e) => {
                let names: Vec<&str> = done.iter().map(|(id, _)| id.as_str()).collect();
                anyhow::bail!("{e:#} (already done: {})", names.join(", "))
            }
        }
    }
    let verb = match decision {
        Decision::Hold => "held",
        Decision::Reject => "rejected",
    };
    let human = done
        .iter()
        .map(|(id, why)| format!("{id} {verb} by {supervisor}: {why}"))
        .collect::<Vec<_>>()
        .join("\n");
    Ok(Output::ok(
        json!({
            verb: done.len(),
            "ids": done.iter().map(|(id, _)| id).collect::<Vec<_>>(),
            "reason": done.first().map(|(_, why)| why),
            "supervisor": supervisor,
        }),
        human,
    ))
}

/// What `tasjil enrol` was asked to do.
#[derive(Debug)]
struct Enrol {
    simulate: bool,
    signature: Option<PathBuf>,
    count: u64,
    seed: u64,
    demographics: Option<PathBuf>,
    kind: EnrolmentKind,
}

/// `--signature FILE`: pen strokes as the kiosk's pad records them.
#[derive(Debug, serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct SignatureFile {
    width: u16,
    height: u16,
    strokes: Vec<tasjil_drivers::Stroke>,
}

fn enrol(
    dir: &DataDir,
    e: Enrol,
    officer: &str,
    pin_stdin: bool,
    badge_args: &BadgeArgs,
    json_out: bool,
) -> anyhow::Result<Output> {
    let Enrol {
        simulate: simulate_devices,
        count,
        seed,
        kind,
        ..
    } = e;
    let demographics = e.demographics.clone();
    if !simulate_devices {
        return enrol_live(dir, e, officer, pin_stdin, badge_args);
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
    if let Some(warning) = station.roster_gate()? {
        eprintln!("warning: {warning}");
    }

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
