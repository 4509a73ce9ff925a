//! `tasjil-central`: the issuance centre's command line. Parse, run, print: human text by default,
//! one JSON object with `--json`; exit 0 on success, 1 when a problem was found (named in the
//! output), 2 on bad usage. The work itself lives in the `tasjil_central` library.

mod bench_archive;

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::{bail, Context};
use clap::{Parser, Subcommand};
use serde_json::json;
use tasjil_central::store::{default_sample, ListCursor, StationState, VerifyScope};
use tasjil_central::{now_ms, CentreStore};
use tasjil_sync::output::{finish, say, Output};
use tasjil_sync::{CentreKeys, StationPublic};

#[derive(Parser)]
#[command(name = "tasjil-central", version, about = "Tasjil issuance centre")]
struct Cli {
    /// Where the centre keeps its keys and data (default: $XDG_DATA_HOME/tasjil-central).
    #[arg(
        long,
        global = true,
        env = "TASJIL_CENTRAL_DATA_DIR",
        value_name = "DIR"
    )]
    data_dir: Option<PathBuf>,
    /// Print one JSON object instead of human text.
    #[arg(long, global = true)]
    json: bool,
    /// The cluster backend's PostgreSQL database (postgres://USER@HOST:PORT/DB); the password
    /// comes from DATABASE_URL or PGPASSWORD, never from the command line. With --blobs, the
    /// centre's records live in the cluster instead of DATA_DIR (its keys stay in DATA_DIR).
    #[arg(
        long,
        global = true,
        env = "DATABASE_URL",
        hide_env_values = true,
        value_name = "URL"
    )]
    database: Option<String>,
    /// The cluster backend's object store for sealed payloads:
    /// s3://BUCKET?endpoint=http://HOST:PORT (credentials from AWS_ACCESS_KEY_ID and
    /// AWS_SECRET_ACCESS_KEY).
    #[arg(long, global = true, env = "BLOBS_URL", value_name = "URL")]
    blobs: Option<String>,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Make the centre's keys: an age identity (opens payloads) and an Ed25519 key (signs receipts).
    /// Writes DATA_DIR/centre.key (secret, mode 0600) and DATA_DIR/centre.pub (give it to stations),
    /// and creates the centre's store.
    Init,
    /// The registry of stations allowed to send records.
    Station {
        #[command(subcommand)]
        command: StationCommand,
    },
    /// The roster of field staff: which badge may enrol (officer) or also approve and export
    /// (supervisor), on which stations, from when until when. Every change issues a new version
    /// signed with the centre's key; vans take it at sync, from USB receipts, or from a file.
    Roster {
        #[command(subcommand)]
        command: RosterCommand,
    },
    /// The centre's keys. `rotate` makes a new age identity and signing key and signs the new
    /// centre.pub with the old key; the old keys stay in centre.key, so what was sealed or signed
    /// before still opens and verifies. Vans take the rotation at their next sync, from the
    /// next USB receipt, or from `keys export`'s file (`tasjil keys import`). Restart `serve`
    /// after a rotation. A new TLS certificate goes in with `announce-tls`, then (once vans have
    /// synced) `switch-tls`.
    Keys {
        #[command(subcommand)]
        command: KeysCommand,
    },
    /// Central staff accounts for the console (field staff are the roster, not here).
    Staff {
        #[command(subcommand)]
        command: StaffCommand,
    },
    /// The access log: who opened which citizen's record, when and why (admin).
    AccessLog {
        /// Check the chain and the centre's signature on every entry (exit 1 on a problem).
        #[arg(long)]
        verify: bool,
    },
    /// List stored records (never demographics), by station and sequence, written as they are
    /// read (memory stays flat however large the archive).
    List {
        /// At most this many records; the output then names the cursor of the next page.
        #[arg(long, value_name = "N")]
        limit: Option<u64>,
        /// Start after this cursor (`next` of the previous page).
        #[arg(long, value_name = "CURSOR")]
        after: Option<String>,
    },
    /// Check stored envelopes and payloads (signatures, chains, payload hashes): those stored
    /// since the last run plus a rotating sample of the rest; `--full` for everything.
    Verify {
        /// Check every record and payload.
        #[arg(long)]
        full: bool,
        /// Records already checked to check again this run (default 1 % of the records, at
        /// least 100; the sample rotates through the archive run after run).
        #[arg(long, value_name = "N", conflicts_with = "full")]
        sample: Option<u64>,
    },
    /// Counts of stations and records.
    Stats,
    /// Copy this embedded centre (DATA_DIR) into a cluster: every record is verified by the
    /// cluster on arrival; running it again stores nothing twice.
    Migrate {
        /// The cluster's PostgreSQL database (or DATABASE_URL); the payloads go to --blobs.
        #[arg(long, value_name = "URL")]
        to: Option<String>,
    },
    /// Receive syncs from registered stations over HTTP until interrupted (Ctrl-C or SIGTERM).
    /// Plain HTTP is meant for loopback or behind a TLS-terminating proxy.
    Serve {
        /// Address to listen on.
        #[arg(long, default_value = "127.0.0.1:8750")]
        listen: std::net::SocketAddr,
        /// Serve plain HTTP instead of TLS; allowed on loopback addresses only (tests, the demo,
        /// or behind a TLS-terminating proxy on this host).
        #[arg(long)]
        plain_http: bool,
        /// Seconds a client has to finish its TLS handshake.
        #[arg(long, default_value_t = 20, value_name = "SECS")]
        handshake_timeout: u64,
        /// Seconds a client has to send a whole request head, from connecting or from its
        /// previous request.
        #[arg(long, default_value_t = 20, value_name = "SECS")]
        header_timeout: u64,
        /// Connections one address may hold open at once (a van uses one or two; vans behind
        /// one carrier NAT share an address).
        #[arg(long, default_value_t = 64, value_name = "N")]
        max_connections_per_peer: usize,
    },
    /// Import a USB bundle a supervisor brought: verify everything in it, then store what is new,
    /// and write the signed receipt the supervisor takes back (`tasjil receipt import`). Importing
    /// the same bundle again changes nothing and writes the receipt again.
    Import {
        /// The bundle file (`<station>-<first>-<last>.tasjil`).
        #[arg(value_name = "BUNDLE")]
        bundle: PathBuf,
        /// Where to write the receipt (default: next to the bundle, `<bundle>.receipt`).
        #[arg(long, value_name = "FILE")]
        receipt_out: Option<PathBuf>,
    },
    /// Write one enrolment as an ANSI/NIST-ITL 1-2011 transaction (traditional encoding) for the
    /// AFIS: Type-1, Type-2 demographics, Type-10 face, Type-14 fingers (WSQ), Type-8 signature.
    /// Opens the sealed payload with the centre's key.
    ExportNist {
        /// Enrolment ID, as `tasjil-central list` shows it.
        id: String,
        /// The station that enrolled it (needed only when two stations used the id).
        #[arg(long)]
        station: Option<String>,
        /// Why the record is opened, for the access log.
        #[arg(long, default_value = "ANSI/NIST-ITL transaction for the AFIS")]
        reason: String,
        /// File to write (conventionally .an2 or .eft).
        #[arg(long, value_name = "FILE")]
        out: PathBuf,
        /// Type of transaction (1.004 TOT), per the receiving AFIS's profile.
        #[arg(long, default_value = "NFUF")]
        tot: String,
        /// Destination agency (1.007 DAI).
        #[arg(long, default_value = "AFIS")]
        dai: String,
    },
    /// Benchmarks (they make their own store; the data directory is not touched).
    Bench {
        #[command(subcommand)]
        what: BenchCommand,
    },
}

#[derive(Subcommand)]
enum BenchCommand {
    /// The console's pages (overview, records lists, a record) timed over HTTP with a large
    /// archive behind them: prints p50/p95 per page against the 200 ms goal.
    Console {
        /// Record rows to fill the store with (spread over a year).
        #[arg(long, default_value_t = 1_000_000)]
        records: u64,
        /// Stations the records come from.
        #[arg(long, default_value_t = 50)]
        stations: u64,
        /// Rounds of requests (each round asks every page once).
        #[arg(long, default_value_t = 200)]
        rounds: u32,
        /// Keep the benchmark store in this (new) directory instead of a temporary one.
        #[arg(long, value_name = "DIR")]
        keep: Option<PathBuf>,
    },
    /// What the cross-process payload writer costs: the same payloads written through the store
    /// and bare (temporary name, fsync, rename), interleaved; prints the medians and the ratio.
    /// The archive commands on a centre filled through the real ingest path: `verify`
    /// (incremental against `--full`), `list --json` peak memory, `stats`, against the goals.
    Archive {
        /// Records to fill the centre with before measuring.
        #[arg(long, default_value_t = 100_000)]
        records: u64,
        /// Records arriving after the full verify, for the incremental one.
        #[arg(long, default_value_t = 1000)]
        new: u64,
        /// Stations the records come from.
        #[arg(long, default_value_t = 20)]
        stations: u64,
        /// Sealed payload size in KiB (a real one is about 2 MB; small keeps the disk in bounds,
        /// and makes the full verify cheaper than on a real archive).
        #[arg(long, default_value_t = 8)]
        payload_kib: usize,
        /// Keep the centre in this (new) directory instead of a temporary one.
        #[arg(long, value_name = "DIR")]
        keep: Option<PathBuf>,
    },
    Payloads {
        #[arg(long, default_value_t = 300)]
        count: u32,
        /// Payload size in KiB (a real one is about 2 MB).
        #[arg(long, default_value_t = 2048)]
        size_kib: usize,
    },
}

#[derive(Subcommand)]
enum KeysCommand {
    /// Rotate: new current keys, the old ones retired; prints the new version.
    Rotate,
    /// Write every rotation, in order, to FILE (a JSON array) for `tasjil keys import`.
    Export {
        #[arg(long, value_name = "FILE")]
        out: PathBuf,
    },
    /// Announce the next TLS certificate: vans that take this rotation accept it as well as the
    /// one in service, which `serve` keeps presenting. Without --cert/--key a new self-signed
    /// certificate is made. Switch with `switch-tls` once the vans have synced.
    AnnounceTls {
        /// The next certificate (PEM or DER).
        #[arg(long, value_name = "FILE", requires = "key")]
        cert: Option<PathBuf>,
        /// Its private key (PKCS#8, PEM or DER).
        #[arg(long, value_name = "FILE", requires = "cert")]
        key: Option<PathBuf>,
    },
    /// Put the announced TLS certificate in service and drop the old pin (a running `serve`
    /// presents it from its next connection).
    /// A van that missed the announcement then refuses the centre until it imports the
    /// rotations from `keys export` (`tasjil keys import`).
    SwitchTls,
}

#[derive(Subcommand)]
enum RosterCommand {
    /// Put a badge on the roster.
    Add {
        /// The officer id the badge carries (`tasjil badge status` shows it).
        #[arg(long)]
        id: String,
        #[arg(long)]
        name: String,
        #[arg(long, value_parser = ["officer", "supervisor"], default_value = "officer")]
        role: String,
        /// The badge's signing key: the 64 hex digits `tasjil badge status --json` prints as
        /// public_key.
        #[arg(long, value_name = "HEX")]
        badge: String,
        /// Stations this badge may work on, comma-separated; * for every station.
        #[arg(long, value_delimiter = ',', required = true)]
        stations: Vec<String>,
        /// First valid day, YYYY-MM-DD (default: now).
        #[arg(long, value_name = "DATE")]
        from: Option<String>,
        /// Last valid day, YYYY-MM-DD (default: no end).
        #[arg(long, value_name = "DATE")]
        until: Option<String>,
    },
    /// The roster as the centre holds it now, and its latest version.
    List,
    /// Revoke a badge from now on (lost, stolen, officer left): vans refuse it as soon as they
    /// hold the new version, and the centre refuses what it co-signs after now.
    Revoke {
        /// Officer id.
        id: String,
        #[arg(long)]
        reason: String,
    },
    /// Write the latest signed roster to a file, for `tasjil init --roster` or
    /// `tasjil roster import` on a van without network.
    Export {
        #[arg(long, value_name = "FILE")]
        out: PathBuf,
    },
}

#[derive(Subcommand)]
enum StaffCommand {
    /// Add an account. Prints the second factor's otpauth:// URI once: scan it into an
    /// authenticator app now, it is never shown again.
    Add {
        #[arg(long)]
        id: String,
        /// viewer (counts and lists), verifier (opens records), issuer (issuance statuses),
        /// admin (stations and staff).
        #[arg(long, value_parser = ["viewer", "verifier", "issuer", "admin"])]
        role: String,
        /// Read the password (at least 12 characters) from standard input.
        #[arg(long, required = true)]
        password_stdin: bool,
    },
    /// List accounts: role, disabled, locked.
    List,
    /// Disable an account for good (kept for the access log's sake).
    Disable {
        #[arg(long)]
        id: String,
    },
}

#[derive(Subcommand)]
enum StationCommand {
    /// Register a station's public key (the station.pub that `tasjil init` wrote).
    Add {
        /// Station id, e.g. VAN-07-A: must be the station named in the key file.
        #[arg(long)]
        id: String,
        /// The station's public key file (station.pub).
        #[arg(long, value_name = "FILE")]
        key: PathBuf,
        /// Register a training or demonstration station (`tasjil init --simulation`): the centre
        /// then takes its records made with simulated devices, and nothing else from it.
        #[arg(long)]
        simulation: bool,
    },
    /// List registered stations with their state.
    List,
    /// Revoke a station for good (a stolen or scrapped van): its next sync or bundle import is
    /// refused as "revoked"; what it sent before stays.
    Revoke {
        #[arg(long)]
        id: String,
        /// Why, for the record (shown to staff and in the refusal).
        #[arg(long)]
        reason: String,
    },
    /// Suspend a station for a while (refused as "suspended" until resumed).
    Suspend {
        #[arg(long)]
        id: String,
        #[arg(long)]
        reason: Option<String>,
    },
    /// Let a suspended station sync and import again (a revoked one stays revoked).
    Resume {
        #[arg(long)]
        id: String,
    },
    /// Station groups for the roster: a badge listed for `@NAME` (`roster add --stations
    /// @NORTH`) works on every station of group NAME. Each change issues a new roster version.
    Group {
        #[command(subcommand)]
        command: GroupCommand,
    },
}

#[derive(Subcommand)]
enum GroupCommand {
    /// Put a station in a group.
    Add {
        #[arg(long)]
        group: String,
        #[arg(long)]
        station: String,
    },
    /// Take a station out of a group.
    Remove {
        #[arg(long)]
        group: String,
        #[arg(long)]
        station: String,
    },
    /// Every group and its stations.
    List,
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let json = cli.json;
    match cluster_config(&cli) {
        Ok(Some(cluster)) => return finish(cluster_run(cli, cluster), json),
        Ok(None) => {}
        Err(e) => return finish(Err(e), json),
    }
    if let Command::List { limit, after } = &cli.command {
        // Written as it is read, not collected into one `Output`.
        let listed = data_dir(cli.data_dir.clone())
            .and_then(|dir| list(&dir, json, *limit, after.as_deref()));
        return match listed {
            Ok(()) => ExitCode::SUCCESS,
            // A closed pipe (`list | head`) ends the listing quietly.
            Err(e) if closed_pipe(&e) => ExitCode::SUCCESS,
            Err(e) => finish(Err(e), json),
        };
    }
    finish(run(cli), json)
}

fn closed_pipe(e: &anyhow::Error) -> bool {
    let pipe = Some(std::io::ErrorKind::BrokenPipe);
    e.downcast_ref::<std::io::Error>().map(std::io::Error::kind) == pipe
        || e.downcast_ref::<serde_json::Error>()
            .and_then(serde_json::Error::io_error_kind)
            == pipe
}

fn data_dir(given: Option<PathBuf>) -> anyhow::Result<PathBuf> {
    match given {
        Some(d) => Ok(d),
        None => default_data_dir(),
    }
}

fn default_data_dir() -> anyhow::Result<PathBuf> {
    if let Some(d) = std::env::var_os("XDG_DATA_HOME").filter(|d| !d.is_empty()) {
        return Ok(PathBuf::from(d).join("tasjil-central"));
    }
    let home =
        std::env::var_os("HOME").context("neither --data-dir, XDG_DATA_HOME nor HOME is set")?;
    Ok(PathBuf::from(home).join(".local/share/tasjil-central"))
}

/// Open the store of an initialised centre (not silently create one in a mistyped directory).
fn open_store(dir: &Path) -> anyhow::Result<CentreStore> {
    if !dir.join("centre.pub").is_file() {
        bail!(
            "{} holds no centre: run `tasjil-central init` first, or pass the right --data-dir",
            dir.display()
        );
    }
    let store = CentreStore::open(dir)?;
    // Verdicts written by this process (sync, import, the console) are signed with the centre's
    // key when it is here; a centre whose key lives elsewhere writes unsigned verdicts, which
    // vans never act on.
    match CentreKeys::load(&dir.join("centre.key")) {
        Ok(keys) => store.sign_verdicts_with(keys.signing),
        Err(e) => {
            tracing::warn!(error = %e, "verdicts will go unsigned: the centre key cannot be read")
        }
    }
    Ok(store)
}

fn run(cli: Cli) -> anyhow::Result<Output> {
    let dir = data_dir(cli.data_dir)?;
    match cli.command {
        Command::Init => init(&dir),
        Command::Station {
            command:
                StationCommand::Add {
                    id,
                    key,
                    simulation,
                },
        } => station_add(&dir, &id, &key, simulation),
        Command::Station {
            command: StationCommand::List,
        } => station_list(&dir),
        Command::Staff { command } => staff(&dir, command),
        Command::Roster { command } => roster(&dir, command),
        Command::Keys {
            command: KeysCommand::Rotate,
        } => rotate_keys(&dir),
        Command::Keys {
            command: KeysCommand::AnnounceTls { cert, key },
        } => tls_change(&dir, Some(cert.as_deref().zip(key.as_deref()))),
        Command::Keys {
            command: KeysCommand::SwitchTls,
        } => tls_change(&dir, None),
        Command::Keys {
            command: KeysCommand::Export { out },
        } => {
            let store = CentreStore::open(&dir)?;
            let rotations: Vec<serde_json::Value> = store
                .rotations_after(0)?
                .iter()
                .map(|b| serde_json::from_slice(b))
                .collect::<Result<_, _>>()?;
            let n = rotations.len();
            std::fs::write(&out, serde_json::to_vec_pretty(&rotations)?)
                .with_context(|| format!("cannot write {}", out.display()))?;
            Ok(Output::ok(
                json!({"rotations": n, "file": out}),
                format!("{n} key rotation(s) written to {}", out.display()),
            ))
        }
        Command::Station {
            command: StationCommand::Revoke { id, reason },
        } => station_state(&dir, &id, StationState::Revoked, Some(&reason)),
        Command::Station {
            command: StationCommand::Suspend { id, reason },
        } => station_state(&dir, &id, StationState::Suspended, reason.as_deref()),
        Command::Station {
            command: StationCommand::Resume { id },
        } => station_state(&dir, &id, StationState::Active, None),
        Command::Station {
            command: StationCommand::Group { command },
        } => station_group(&dir, command),
        Command::Serve {
            listen,
            plain_http,
            handshake_timeout,
            header_timeout,
            max_connections_per_peer,
        } => {
            let limits = tasjil_central::conn::ConnLimits {
                handshake: std::time::Duration::from_secs(handshake_timeout.max(1)),
                header: std::time::Duration::from_secs(header_timeout.max(1)),
                per_peer: max_connections_per_peer.max(1),
            };
            serve(&dir, listen, plain_http, limits, None)
        }
        Command::Import {
            bundle,
            receipt_out,
        } => import(&dir, &bundle, receipt_out),
        Command::List { .. } => unreachable!("list is run by main"),
        Command::ExportNist {
            id,
            station,
            reason,
            out,
            tot,
            dai,
        } => export_nist(&dir, station.as_deref(), &reason, &id, &out, &tot, &dai),
        Command::AccessLog { verify } => access_log(&dir, verify),
        Command::Bench {
            what:
                BenchCommand::Console {
                    records,
                    stations,
                    rounds,
                    keep,
                },
        } => bench_console(records, stations, rounds, keep),
        Command::Bench {
            what:
                BenchCommand::Archive {
                    records,
                    new,
                    stations,
                    payload_kib,
                    keep,
                },
        } => {
            let kept = keep.is_some();
            let dir = bench_archive::scratch(keep)?;
            let result = bench_archive::archive(&dir, records, new, stations, payload_kib * 1024);
            if !kept {
                let _ = std::fs::remove_dir_all(&dir);
            }
            let b = result?;
            let profile = if cfg!(debug_assertions) {
                "dev"
            } else {
                "release"
            };
            let table = bench_archive::table(&b, profile);
            Ok(Output::ok(serde_json::to_value(&b)?, table))
        }
        Command::Bench {
            what: BenchCommand::Payloads { count, size_kib },
        } => {
            let dir = tasjil_central::bench::scratch_dir();
            let result = tasjil_central::bench_payloads::payloads(&dir, count, size_kib * 1024);
            let _ = std::fs::remove_dir_all(&dir);
            let b = result?;
            let profile = if cfg!(debug_assertions) {
                "debug"
            } else {
                "release"
            };
            let table = tasjil_central::bench_payloads::table(&b, profile);
            Ok(Output::ok(serde_json::to_value(&b)?, table))
        }
        Command::Verify { full, sample } => verify(&dir, full, sample),
        Command::Migrate { .. } => bail!(
            "migrate copies this centre into a cluster: give --to postgres://… (or DATABASE_URL) and --blobs s3://… (or BLOBS_URL)"
        ),
        Command::Stats => {
            let stats = open_store(&dir)?.stats()?;
            Ok(Output::ok(
                serde_json::to_value(&stats)?,
                format!(
                    "stations: {}\nrecords:  {}\nverified: {}\nrejected: {}",
                    stats.stations, stats.records, stats.verified, stats.rejected
                ),
            ))
        }
    }
}

fn roster_text(r: &tasjil_sync::roster::Roster) -> String {
    use tasjil_sync::roster::day;
    let mut t = format!(
        "roster version {} issued {}: {} entries\n{:<14} {:<10} {:<18} {:<10} {:<10} {:<20} name",
        r.version(),
        day(r.roster.issued_ms),
        r.roster.entries.len(),
        "id",
        "role",
        "badge",
        "from",
        "until",
        "stations"
    );
    for e in &r.roster.entries {
        t.push_str(&format!(
            "\n{:<14} {:<10} {:<18} {:<10} {:<10} {:<20} {}{}",
            e.id,
            e.role.as_str(),
            format!("{}…", &e.badge[..16.min(e.badge.len())]),
            day(e.valid_from_ms),
            e.valid_until_ms.map_or("-".into(), day),
            e.stations.join(","),
            e.name,
            e.revoked.as_ref().map_or(String::new(), |r| format!(
                "  REVOKED {} ({})",
                day(r.at_ms),
                r.reason
            ))
        ));
    }
    t
}

fn station_group(dir: &Path, command: GroupCommand) -> anyhow::Result<Output> {
    let store = open_store(dir)?;
    let (group, station, add) = match command {
        GroupCommand::List => {
            let groups = store.station_groups()?;
            let mut human = String::new();
            for (name, stations) in &groups {
                human.push_str(&format!("@{name}: {}\n", stations.join(", ")));
            }
            if groups.is_empty() {
                human.push_str("no station groups");
            }
            return Ok(Output::ok(
                serde_json::to_value(&groups)?,
                human.trim_end().into(),
            ));
        }
        GroupCommand::Add { group, station } => (group, station, true),
        GroupCommand::Remove { group, station } => (group, station, false),
    };
    let roster = store.station_group_change(&group, &station, add, now_ms())?;
    let version = roster.as_ref().map(|r| r.version());
    Ok(Output::ok(
        json!({"group": group, "station": station, "added": add, "roster": version}),
        format!(
            "station {station} {} group @{group}{}",
            if add { "is in" } else { "left" },
            version.map_or(String::new(), |v| format!("; roster version {v} issued"))
        ),
    ))
}

/// `keys announce-tls` (`announce` is `Some`, with the files given if any) or `keys switch-tls`.
fn tls_change(dir: &Path, announce: Option<Option<(&Path, &Path)>>) -> anyhow::Result<Output> {
    let store = CentreStore::open(dir)?;
    let keys = CentreKeys::load(&dir.join("centre.key"))?;
    let now = now_ms();
    let change = match announce {
        Some(given) => tasjil_central::tls::announce(dir, &store, &keys.signing, given, now)?,
        None => tasjil_central::tls::switch(dir, &store, &keys.signing, now)?,
    };
    let current = change.current_sha256.clone().unwrap_or_default();
    let human = match announce {
        Some(_) => format!(
            "next TLS certificate announced as key set version {}\n  in service: {current}\n  next:       {}{}\n  `serve` keeps presenting the certificate in service. Vans take the announcement at their next sync or USB receipt (or `keys export` + `tasjil keys import`); once they all have, run `tasjil-central keys switch-tls`",
            change.version,
            change.next_sha256.join(", "),
            if change.generated {
                format!(" (self-signed, made now: {})", dir.join(tasjil_central::tls::NEXT_CERT_FILE).display())
            } else {
                String::new()
            }
        ),
        None => format!(
            "TLS certificate switched as key set version {}\n  in service: {current}\n  a running `tasjil-central serve` presents it from its next connection. A van that missed the announcement will refuse the centre until it imports the rotations: `tasjil-central keys export --out FILE`, then `tasjil keys import FILE` at the van",
            change.version
        ),
    };
    Ok(Output::ok(serde_json::to_value(&change)?, human))
}

/// `keys rotate`: see [`Command::Keys`]. The new keys are written beside the old file first,
/// the rotation recorded, then the file renamed into place: a run cut anywhere can be run again.
fn rotate_keys(dir: &Path) -> anyhow::Result<Output> {
    use tasjil_sync::rotation::KeyRotation;
    let (key_path, next_path, pub_path) = (
        dir.join("centre.key"),
        dir.join("centre.key.next"),
        dir.join("centre.pub"),
    );
    let store = CentreStore::open(dir)?;
    // A TLS change cut short is finished first: the new keys follow it.
    tasjil_central::tls::finish_recorded(dir, &store)?;
    let held = tasjil_sync::CentrePublic::load(&pub_path)?;
    let now = now_ms();
    let version = held.version + 1;
    // A run cut after recording its rotation: finish it with the keys it recorded.
    let recorded = store.rotations_after(held.version)?;
    let (new_keys, next) = match recorded.first() {
        Some(bytes) => {
            let rotation = KeyRotation::from_bytes(bytes)?;
            let keys = CentreKeys::load(&next_path).with_context(|| {
                format!(
                    "rotation to version {version} is recorded but {} is missing: restore it from the backup",
                    next_path.display()
                )
            })?;
            anyhow::ensure!(
                hex::encode(keys.signing.verifying_key().as_bytes())
                    == rotation.body.centre.ed25519,
                "{} does not hold the keys of the recorded rotation to version {version}",
                next_path.display()
            );
            (keys, rotation.body.centre)
        }
        None => {
            let keys = CentreKeys::load(&key_path)?;
            let outgoing = keys.signing.clone();
            let new_keys = keys.rotated();
            let mut previous = vec![held.ed25519.clone()];
            previous.extend(held.previous_ed25519.iter().cloned());
            let next = tasjil_sync::CentrePublic {
                kind: tasjil_sync::CentrePublic::KIND.into(),
                age_recipients: vec![new_keys.identity.to_public().to_string()],
                ed25519: hex::encode(new_keys.signing.verifying_key().as_bytes()),
                tls_cert_sha256: held.tls_cert_sha256.clone(),
                tls_next_sha256: held.tls_next_sha256.clone(),
                version,
                previous_ed25519: previous,
            };
            let rotation = KeyRotation::sign(next.clone(), now, &outgoing)?;
            let _ = std::fs::remove_file(&next_path);
            new_keys.save(&next_path)?;
            store.record_rotation(version, &rotation.to_bytes()?, now)?;
            (new_keys, next)
        }
    };
    drop(new_keys);
    std::fs::rename(&next_path, &key_path)
        .with_context(|| format!("cannot put the new keys in {}", key_path.display()))?;
    std::fs::write(&pub_path, next.to_json())
        .with_context(|| format!("cannot write {}", pub_path.display()))?;
    drop(store);
    // A roster signed by the new key, so vans that take the rotation get one at once.
    let roster = open_store(dir)?.roster_reissue(now)?.map(|r| r.version());
    Ok(Output::ok(
        json!({"version": version, "ed25519": next.ed25519, "age_recipients": next.age_recipients, "roster": roster}),
        format!(
            "centre keys rotated to version {version}\n  signing key {}\n  payloads now sealed to {}\n  the old keys stay in {} to open and verify what came before\n  restart `tasjil-central serve`; vans take the rotation at their next sync or USB receipt (or `keys export` + `tasjil keys import`)",
            next.ed25519,
            next.age_recipients.join(", "),
            key_path.display()
        ),
    ))
}

fn roster(dir: &Path, command: RosterCommand) -> anyhow::Result<Output> {
    use tasjil_sync::roster::{parse_day, RosterEntry};
    let store = open_store(dir)?;
    let now = tasjil_central::now_ms();
    match command {
        RosterCommand::Add {
            id,
            name,
            role,
            badge,
            stations,
            from,
            until,
        } => {
            let valid_from_ms = match from {
                Some(d) => parse_day(&d).map_err(anyhow::Error::msg)?,
                None => now,
            };
            // "until" names the last valid day: the badge stops at the end of it.
            let valid_until_ms = until
                .map(|d| parse_day(&d).map(|ms| ms + 86_400_000))
                .transpose()
                .map_err(anyhow::Error::msg)?;
            let entry = RosterEntry {
                id,
                name,
                role: role.parse().map_err(anyhow::Error::msg)?,
                badge: badge.trim().to_ascii_lowercase(),
                stations: stations.into_iter().map(|s| s.trim().to_string()).collect(),
                valid_from_ms,
                valid_until_ms,
                revoked: None,
            };
            let r = store.roster_add(&entry, now)?;
            Ok(Output::ok(
                serde_json::json!({"version": r.version(), "entry": entry}),
                format!(
                    "{} {} added to the roster: version {} issued; vans take it at their next sync or USB receipt (or `tasjil-central roster export`)",
                    entry.role.as_str(),
                    entry.id,
                    r.version()
                ),
            ))
        }
        RosterCommand::Revoke { id, reason } => {
            let r = store.roster_revoke(&id, &reason, now)?;
            Ok(Output::ok(
                serde_json::json!({"version": r.version(), "revoked": id, "reason": reason}),
                format!(
                    "badge of {id} revoked: version {} issued; each van refuses it once it holds that version (next sync or USB receipt)",
                    r.version()
                ),
            ))
        }
        RosterCommand::List => match store.roster_latest()? {
            Some(r) => Ok(Output::ok(
                serde_json::to_value(&r.roster)?,
                roster_text(&r),
            )),
            None => Ok(Output::ok(
                serde_json::json!({"version": null, "entries": []}),
                "the roster is empty: add badges with `tasjil-central roster add`".into(),
            )),
        },
        RosterCommand::Export { out } => {
            let r = store.roster_for_station(None, now)?.with_context(|| {
                "the roster is empty: add badges with `tasjil-central roster add` first"
            })?;
            let tmp = out.with_extension("partial");
            std::fs::write(&tmp, r.to_bytes())
                .and_then(|()| std::fs::rename(&tmp, &out))
                .with_context(|| format!("cannot write {}", out.display()))?;
            Ok(Output::ok(
                serde_json::json!({"version": r.version(), "out": out, "entries": r.roster.entries.len()}),
                format!(
                    "roster version {} ({} entries) written to {}",
                    r.version(),
                    r.roster.entries.len(),
                    out.display()
                ),
            ))
        }
    }
}

fn bench_console(
    records: u64,
    stations: u64,
    rounds: u32,
    keep: Option<PathBuf>,
) -> anyhow::Result<Output> {
    let dir = keep
        .clone()
        .unwrap_or_else(tasjil_central::bench::scratch_dir);
    let result = tasjil_central::bench::console(&dir, records, stations, rounds, &mut |line| {
        eprintln!("{line}")
    });
    if keep.is_none() {
        let _ = std::fs::remove_dir_all(&dir);
    }
    let b = result?;
    let profile = if cfg!(debug_assertions) {
        "debug"
    } else {
        "release"
    };
    let table = tasjil_central::bench::table(&b, profile);
    Ok(Output::ok(serde_json::to_value(&b)?, table))
}

fn serve(
    dir: &Path,
    listen: std::net::SocketAddr,
    plain_http: bool,
    limits: tasjil_central::conn::ConnLimits,
    cluster: Option<ClusterStore>,
) -> anyhow::Result<Output> {
    if plain_http && !listen.ip().is_loopback() {
        bail!("--plain-http is allowed on loopback addresses only; {listen} is not one (serve TLS instead)");
    }
    // The certificate in the data directory; a `keys switch-tls` is picked up without a restart.
    let tls = if plain_http {
        None
    } else {
        Some(tasjil_central::tls::server_config_in(dir)?)
    };
    let filter = tracing_subscriber::EnvFilter::try_from_env("TASJIL_LOG")
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .try_init();
    let (backend, store): (std::sync::Arc<dyn tasjil_central::CentreBackend>, _) = match cluster {
        Some(cluster) => {
            tracing::info!(cluster = %cluster.describe(), "serving from the cluster backend");
            (std::sync::Arc::new(cluster), None)
        }
        None => {
            let store = std::sync::Arc::new(open_store(dir)?);
            (store.clone(), Some(store))
        }
    };
    // The console needs the centre's secret keys (second factors, payloads, the access log's
    // signature). A centre without them here still serves stations; the console says why not.
    let keys = match CentreKeys::load(&dir.join("centre.key")) {
        Ok(k) => Some(k),
        Err(e) => {
            tracing::warn!(error = %e, "the console is unavailable: the centre key cannot be read");
            None
        }
    };
    // The console reads the embedded store; on a cluster only the station API is served.
    let console = store.map(|store| tasjil_central::console::Console::new(store, keys));
    let has_console = console.is_some();
    let app = tasjil_central::server::app(backend, console);
    let runtime = tokio::runtime::Runtime::new().context("cannot start the server runtime")?;
    runtime.block_on(async move {
        let listener = tokio::net::TcpListener::bind(listen)
            .await
            .with_context(|| format!("cannot listen on {listen}"))?;
        let addr = listener.local_addr()?;
        let scheme = if tls.is_some() { "https" } else { "http" };
        say(&format!("tasjil-central listening on {scheme}://{addr}"));
        if has_console {
            say(&format!("staff console: {scheme}://{addr}/console/"));
        }
        tasjil_central::notify::ready();
        let shutdown = async {
            let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()).ok();
            tokio::select! {
                _ = tokio::signal::ctrl_c() => {}
                _ = async { match term.as_mut() { Some(t) => { t.recv().await; } None => std::future::pending::<()>().await } } => {}
            }
            tasjil_central::notify::stopping();
        };
        match tls {
            Some(config) => {
                tasjil_central::server::serve_tls(listener, config, app, limits, shutdown).await
            }
            None => tasjil_central::server::serve(listener, app, limits, shutdown).await,
        }
        .context("server failed")
    })?;
    Ok(Output::ok(json!({"stopped": true}), "stopped".into()))
}

fn init(dir: &Path) -> anyhow::Result<Output> {
    tasjil_central::store::private_dir(dir)?;
    let keys = CentreKeys::generate();
    let secret = dir.join("centre.key");
    keys.save(&secret)?;
    let (cert, tls_key) = tasjil_central::tls::self_signed().map_err(anyhow::Error::msg)?;
    tasjil_sync::keys::write_new_file(&dir.join("tls-key.der"), &tls_key, 0o600)?;
    tasjil_sync::keys::write_new_file(&dir.join("tls-cert.der"), &cert, 0o644)?;
    let mut centre_pub = keys.public();
    centre_pub.tls_cert_sha256 = Some(tasjil_sync::tls::fingerprint(&cert));
    let public = dir.join("centre.pub");
    std::fs::write(&public, centre_pub.to_json())
        .with_context(|| format!("cannot write {}", public.display()))?;
    let store = CentreStore::open(dir)?;
    Ok(Output::ok(
        json!({
            "centre_key": secret,
            "centre_pub": public,
            "age_recipient": keys.public().age_recipients[0],
            "store": store.db_path(),
        }),
        format!(
            "centre initialised\n  secret keys: {}\n  public keys: {} (give this file to stations: tasjil init --central-key)\n  store:       {}",
            secret.display(),
            public.display(),
            store.db_path().display()
        ),
    ))
}

fn station_add(dir: &Path, id: &str, key: &Path, simulation: bool) -> anyhow::Result<Output> {
    let public = StationPublic::load(key)?;
    if public.station != id {
        bail!(
            "{} is the key of station {}, not {id}: check that you picked the right file",
            key.display(),
            public.station
        );
    }
    // Both sides must say it: a training station is never registered by accident, and a real
    // one never as a training one.
    match (public.simulation, simulation) {
        (true, false) => bail!(
            "{} is a training station (tasjil init --simulation): register it with --simulation, or initialise a real station",
            id
        ),
        (false, true) => bail!(
            "{} was not initialised as a training station: --simulation is refused for it",
            id
        ),
        _ => {}
    }
    let store = open_store(dir)?;
    let added = store.add_station(&public, now_ms())?;
    Ok(Output::ok(
        json!({"station": id, "key": public.ed25519, "added": added}),
        if added {
            format!("station {id} registered (key {})", public.ed25519)
        } else {
            format!("station {id} was already registered with this key; nothing changed")
        },
    ))
}

fn staff(dir: &Path, command: StaffCommand) -> anyhow::Result<Output> {
    let store = open_store(dir)?;
    match command {
        StaffCommand::Add { id, role, .. } => {
            let role = tasjil_central::staff::Role::parse(&role).context("unknown role")?;
            let mut password = String::new();
            std::io::stdin()
                .read_line(&mut password)
                .context("cannot read the password from standard input")?;
            let password = password.trim_end_matches(['\r', '\n']);
            let keys = CentreKeys::load(&dir.join("centre.key"))?;
            let secret =
                store.add_staff(&id, role, password, &keys.identity.to_public(), now_ms())?;
            let uri = tasjil_central::staff::otpauth_uri(&id, &secret);
            Ok(Output::ok(
                json!({"id": id, "role": role.as_str(), "otpauth_uri": uri}),
                format!(
                    "staff account {id} ({}) added\n  second factor (scan it now, it is not shown again):\n  {uri}",
                    role.as_str()
                ),
            ))
        }
        StaffCommand::List => {
            let staff = store.staff(now_ms())?;
            let mut human = format!("{:<24}  {:<9}  state", "staff", "role");
            for s in &staff {
                let state = if s.disabled {
                    "disabled"
                } else if s.locked_until_ms.is_some() {
                    "locked"
                } else {
                    "active"
                };
                human.push_str(&format!("\n{:<24}  {:<9}  {state}", s.id, s.role));
            }
            human.push_str(&format!("\n{} accounts", staff.len()));
            Ok(Output::ok(json!({ "staff": staff }), human))
        }
        StaffCommand::Disable { id } => {
            store.disable_staff(&id, now_ms())?;
            Ok(Output::ok(
                json!({"id": id, "disabled": true}),
                format!("staff account {id} disabled"),
            ))
        }
    }
}

fn station_state(
    dir: &Path,
    id: &str,
    state: StationState,
    reason: Option<&str>,
) -> anyhow::Result<Output> {
    if state == StationState::Revoked && reason.is_none_or(|r| r.trim().is_empty()) {
        bail!("say why the station is revoked with --reason");
    }
    let store = open_store(dir)?;
    let before = store.set_station_state(id, state, reason, now_ms())?;
    let now = store
        .stations()?
        .into_iter()
        .find(|s| s.id == id)
        .map(|s| s.state)
        .unwrap_or_default();
    Ok(Output::ok(
        json!({"station": id, "was": before, "state": now, "reason": reason}),
        format!("station {id}: {before} → {now}"),
    ))
}

fn station_list(dir: &Path) -> anyhow::Result<Output> {
    let stations = open_store(dir)?.stations()?;
    let mut human = format!(
        "{:<20}  {:<9}  {:>8}  {:>8}  key",
        "station", "state", "records", "last seq"
    );
    for s in &stations {
        human.push_str(&format!(
            "\n{:<20}  {:<9}  {:>8}  {:>8}  {}",
            s.id,
            if s.simulation {
                "training"
            } else {
                s.state.as_str()
            },
            s.records,
            s.last_seq,
            s.key_hex
        ));
    }
    human.push_str(&format!("\n{} stations", stations.len()));
    Ok(Output::ok(json!({ "stations": stations }), human))
}

fn import(dir: &Path, bundle: &Path, receipt_out: Option<PathBuf>) -> anyhow::Result<Output> {
    use tasjil_central::import::{import, Step};
    let store = open_store(dir)?;
    let keys = CentreKeys::load(&dir.join("centre.key"))?;
    let bar = progress_bar();
    let result = import(
        &store,
        &keys.signing,
        bundle,
        now_ms(),
        &mut |step, done, total| {
            if let Some(bar) = &bar {
                bar.set_length(total);
                bar.set_position(done);
                bar.set_message(match step {
                    Step::Verify => "verifying",
                    Step::Copy => "storing payloads",
                });
            }
        },
    );
    if let Some(bar) = bar {
        bar.finish_and_clear();
    }
    let report = match result {
        Ok(r) => r,
        Err(e) => match e.code() {
            Some(code) => {
                return Ok(Output {
                    ok: false,
                    json: json!({"imported": false, "check": code, "reason": e.to_string()}),
                    human: format!("{e}\nnothing was stored"),
                })
            }
            None => return Err(e.into()),
        },
    };
    let receipt_path = receipt_out.unwrap_or_else(|| {
        let mut name = bundle.as_os_str().to_owned();
        name.push(".receipt");
        PathBuf::from(name)
    });
    if let Some(receipt) = &report.receipt {
        tasjil_sync::bundle::write_atomically(&receipt_path, &receipt.to_bytes()?).with_context(
            || {
                format!(
                    "the bundle was imported, but the receipt could not be written to {} (read-only stick? pass --receipt-out FILE; importing again rewrites it)",
                    receipt_path.display()
                )
            },
        )?;
    }
    let mut human = match report.replay_of_ms {
        Some(_) => format!(
            "bundle {} from station {} was already imported: nothing new",
            report.bundle_id, report.station
        ),
        None => format!(
            "bundle {} from station {} (sequences {} to {}, countersigned by {})",
            report.bundle_id, report.station, report.first_seq, report.last_seq, report.supervisor
        ),
    };
    human.push_str(&format!(
        "\n  records:  {}\n  new:      {}\n  already:  {}\n  verified: {}\n  rejected: {}",
        report.records,
        report.stored,
        report.already,
        report.verified,
        report.rejected.len()
    ));
    for p in &report.rejected {
        human.push_str(&format!("\n  REJECTED {}: {}", p.id, p.reason));
    }
    human.push_str(&format!(
        "\nreceipt: {} (take it back to the station: tasjil receipt import FILE)",
        receipt_path.display()
    ));
    let mut value = serde_json::to_value(&report)?;
    value["imported"] = json!(true);
    value["replay"] = json!(report.replay_of_ms.is_some());
    value["receipt"] = json!(receipt_path);
    Ok(Output {
        ok: report.rejected.is_empty(),
        json: value,
        human,
    })
}

/// A progress bar on a terminal, none otherwise.
fn progress_bar() -> Option<indicatif::ProgressBar> {
    if !std::io::IsTerminal::is_terminal(&std::io::stderr()) {
        return None;
    }
    let bar = indicatif::ProgressBar::new(0);
    bar.set_style(
        indicatif::ProgressStyle::with_template("{msg:>18} [{bar:30}] {bytes}/{total_bytes}")
            .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar()),
    );
    Some(bar)
}

/// `list`: each record printed as it is read; JSON is `{"records":[...],"next":CURSOR|null}`
/// written incrementally.
fn list(dir: &Path, json: bool, limit: Option<u64>, after: Option<&str>) -> anyhow::Result<()> {
    use std::io::Write;
    let after = after
        .map(|a| {
            ListCursor::decode(a).with_context(|| format!("{a:?} is not a cursor from `list`"))
        })
        .transpose()?;
    let store = open_store(dir)?;
    let stdout = std::io::stdout();
    let mut out = std::io::BufWriter::new(stdout.lock());
    if json {
        out.write_all(b"{\"records\":[")?;
    } else {
        writeln!(
            out,
            "{:<20}  {:>6}  {:<26}  {:<10}  {:>10}",
            "station", "seq", "id", "status", "payload"
        )?;
    }
    let mut n = 0u64;
    let next = store.list_each(after.as_ref(), limit, |r| -> anyhow::Result<()> {
        if json {
            if n > 0 {
                out.write_all(b",")?;
            }
            serde_json::to_writer(&mut out, &r)?;
        } else {
            writeln!(
                out,
                "{:<20}  {:>6}  {:<26}  {:<10}  {:>10}",
                r.station, r.seq, r.id, r.status, r.payload_len
            )?;
        }
        n += 1;
        Ok(())
    })?;
    let next = next.map(|c| c.encode());
    if json {
        write!(out, "],\"next\":{}}}", serde_json::to_string(&next)?)?;
        writeln!(out)?;
    } else {
        writeln!(out, "{n} records")?;
        if let Some(next) = next {
            writeln!(out, "next page: --after {next}")?;
        }
    }
    out.flush()?;
    Ok(())
}

fn verify(dir: &Path, full: bool, sample: Option<u64>) -> anyhow::Result<Output> {
    let store = open_store(dir)?;
    let scope = if full {
        VerifyScope::Full
    } else {
        let sample = match sample {
            Some(n) => n,
            None => default_sample(store.stats()?.records),
        };
        VerifyScope::Incremental { sample }
    };
    let report = store.verify(scope)?;
    let c = &report.checked;
    let mut human = if full {
        format!(
            "{} of {} records valid (all checked)",
            report.valid, report.records
        )
    } else {
        format!(
            "{} of {} records valid ({} new and {} earlier ones checked; --full checks all)",
            report.valid, report.records, c.new, c.sampled
        )
    };
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

/// Write personal data for the AFIS: mode 0600 from the first byte (an existing file is
/// replaced whole through a temporary name, never left readable by others), fsynced.
fn write_private(out: &Path, bytes: &[u8]) -> std::io::Result<()> {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    let name = out
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let temp = out.with_file_name(format!(".{name}.{}.partial", std::process::id()));
    let written = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(&temp)
        .and_then(|mut f| {
            f.write_all(bytes)?;
            f.sync_all()
        })
        .and_then(|()| std::fs::rename(&temp, out));
    if written.is_err() {
        let _ = std::fs::remove_file(&temp);
    }
    written
}

/// Who runs this command, for the access log: the operating-system user.
fn operator() -> String {
    let user = std::env::var("USER")
        .or_else(|_| std::env::var("LOGNAME"))
        .unwrap_or_else(|_| "unknown".into());
    format!("os:{user}")
}

fn access_log(dir: &Path, verify: bool) -> anyhow::Result<Output> {
    let store = open_store(dir)?;
    if verify {
        let public = tasjil_sync::CentrePublic::load(&dir.join("centre.pub"))?;
        let report = store.verify_access_log(&public.verifying_keys())?;
        let mut human = format!("{} access-log entries checked", report.entries);
        for p in &report.problems {
            human.push_str(&format!("\n  PROBLEM {}: {}", p.id, p.reason));
        }
        if report.ok {
            human.push_str("\nall good");
        }
        return Ok(Output {
            ok: report.ok,
            json: serde_json::to_value(&report)?,
            human,
        });
    }
    let log = store.access_log()?;
    let mut human = format!(
        "{:>5}  {:<24}  {:<16}  {:<11}  record  reason",
        "seq", "when (UTC ms)", "who", "action"
    );
    for l in &log {
        let e = &l.entry;
        human.push_str(&format!(
            "\n{:>5}  {:<24}  {:<16}  {:<11}  {}/{}  {}",
            e.seq, e.at_ms, e.who, e.action, e.station, e.record, e.reason
        ));
    }
    human.push_str(&format!("\n{} entries", log.len()));
    Ok(Output::ok(json!({ "entries": log }), human))
}

fn export_nist(
    dir: &Path,
    station: Option<&str>,
    reason: &str,
    id: &str,
    out: &Path,
    tot: &str,
    dai: &str,
) -> anyhow::Result<Output> {
    let store = open_store(dir)?;
    let keys = CentreKeys::load(&dir.join("centre.key"))?;
    let (bytes, payload) = tasjil_central::nist::export(
        &store,
        &keys,
        &operator(),
        reason,
        station,
        id,
        tot,
        dai,
        now_ms(),
    )?;
    write_private(out, &bytes).with_context(|| format!("cannot write {}", out.display()))?;
    Ok(Output::ok(
        json!({
            "id": id,
            "out": out,
            "bytes": bytes.len(),
            "fingers": payload.fingers.len(),
            "finger_format": payload.fingers.first().map(|f| f.image.format.clone()),
        }),
        format!(
            "wrote {} ({} bytes): Type-1, Type-2, Type-10, {} Type-14, Type-8",
            out.display(),
            bytes.len(),
            payload.fingers.len()
        ),
    ))
}

use tasjil_central::cluster::{ClusterConfig, ClusterStore};

/// The cluster named by the options or the environment, if any (`migrate --to` names one too).
fn cluster_config(cli: &Cli) -> anyhow::Result<Option<ClusterConfig>> {
    let database = match &cli.command {
        Command::Migrate { to } => to.clone().or_else(|| cli.database.clone()),
        _ => cli.database.clone(),
    };
    ClusterConfig::from_options(database, cli.blobs.clone()).map_err(anyhow::Error::msg)
}

/// Open the cluster, with the centre's key (DATA_DIR/centre.key) signing verdicts.
fn open_cluster(dir: &Path, config: &ClusterConfig) -> anyhow::Result<ClusterStore> {
    if !dir.join("centre.pub").is_file() {
        bail!(
            "{} holds no centre keys: run `tasjil-central init` first (the keys stay in DATA_DIR on a cluster too), or pass the right --data-dir",
            dir.display()
        );
    }
    let store = ClusterStore::open(config)
        .with_context(|| "cannot open the cluster backend (--database / --blobs)".to_string())?;
    match CentreKeys::load(&dir.join("centre.key")) {
        Ok(keys) => store.sign_verdicts_with(keys.signing),
        Err(e) => {
            tracing::warn!(error = %e, "verdicts will go unsigned: the centre key cannot be read")
        }
    }
    Ok(store)
}

/// The subcommands that work on the cluster backend.
fn cluster_run(cli: Cli, config: ClusterConfig) -> anyhow::Result<Output> {
    let dir = data_dir(cli.data_dir)?;
    match cli.command {
        // The keys live in DATA_DIR whichever backend holds the records.
        Command::Init => init(&dir),
        Command::Serve {
            listen,
            plain_http,
            handshake_timeout,
            header_timeout,
            max_connections_per_peer,
        } => {
            let limits = tasjil_central::conn::ConnLimits {
                handshake: std::time::Duration::from_secs(handshake_timeout.max(1)),
                header: std::time::Duration::from_secs(header_timeout.max(1)),
                per_peer: max_connections_per_peer.max(1),
            };
            let cluster = open_cluster(&dir, &config)?;
            serve(&dir, listen, plain_http, limits, Some(cluster))
        }
        Command::Station {
            command:
                StationCommand::Add {
                    id,
                    key,
                    simulation,
                },
        } => {
            let public = StationPublic::load(&key)?;
            if public.station != id {
                bail!(
                    "{} is the key of station {}, not {id}: check that you picked the right file",
                    key.display(),
                    public.station
                );
            }
            if public.simulation != simulation {
                bail!(
                    "{id}: --simulation must be given exactly for a training station (tasjil init --simulation)"
                );
            }
            let added = open_cluster(&dir, &config)?.add_station(&public, now_ms())?;
            Ok(Output::ok(
                json!({"station": id, "key": public.ed25519, "added": added}),
                if added {
                    format!("station {id} registered (key {})", public.ed25519)
                } else {
                    format!("station {id} was already registered with this key; nothing changed")
                },
            ))
        }
        Command::Station {
            command: StationCommand::List,
        } => {
            let stations = open_cluster(&dir, &config)?.stations()?;
            let mut human = format!("{:<20}  {:>8}  {:>8}", "station", "records", "last seq");
            for s in &stations {
                human.push_str(&format!("\n{:<20}  {:>8}  {:>8}", s.id, s.records, s.last_seq));
            }
            Ok(Output::ok(json!({ "stations": stations }), human))
        }
        Command::Stats => {
            use tasjil_central::CentreBackend;
            let stats = open_cluster(&dir, &config)?.stats()?;
            Ok(Output::ok(
                serde_json::to_value(&stats)?,
                format!(
                    "stations: {}\nrecords:  {}\nverified: {}\nrejected: {}",
                    stats.stations, stats.records, stats.verified, stats.rejected
                ),
            ))
        }
        Command::List { limit, after } => {
            if limit.is_some() || after.is_some() {
                bail!("--limit and --after are not available on the cluster backend yet");
            }
            let records = open_cluster(&dir, &config)?.list()?;
            let mut human = format!(
                "{:<20}  {:>6}  {:<26}  {:<10}  {:>10}",
                "station", "seq", "id", "status", "payload"
            );
            for r in &records {
                human.push_str(&format!(
                    "\n{:<20}  {:>6}  {:<26}  {:<10}  {:>10}",
                    r.station, r.seq, r.id, r.status, r.payload_len
                ));
            }
            Ok(Output::ok(json!({ "records": records, "next": null }), human))
        }
        Command::Verify { .. } => {
            // Every record is checked on the cluster (the embedded store's sampling is not kept).
            let (records, problems) = open_cluster(&dir, &config)?.verify_full()?;
            let mut human = format!(
                "{} of {records} records valid (all checked)",
                records - problems.len() as u64
            );
            for (station, seq, what) in &problems {
                human.push_str(&format!("\n  PROBLEM {station} #{seq}: {what}"));
            }
            if problems.is_empty() {
                human.push_str("\nall good");
            }
            let problems: Vec<_> = problems
                .iter()
                .map(|(station, seq, reason)| json!({"station": station, "seq": seq, "reason": reason}))
                .collect();
            Ok(Output {
                ok: problems.is_empty(),
                json: json!({
                    "records": records,
                    "valid": records - problems.len() as u64,
                    "problems": problems,
                    "ok": problems.is_empty(),
                }),
                human,
            })
        }
        Command::Migrate { .. } => {
            let from = open_store(&dir)?;
            let to = open_cluster(&dir, &config)?;
            let report = tasjil_central::cluster::migrate_embedded(&from, &to)?;
            let mut human = format!(
                "{} records stored in the cluster, {} already there, {} restore links; {} stations, {} roster versions, {} key rotations, {} ledgers copied",
                report.stored,
                report.already_had,
                report.restore_links,
                report.stations,
                report.roster_versions,
                report.rotations,
                report.ledgers
            );
            for (station, seq, reason) in &report.refused {
                human.push_str(&format!("\n  REFUSED {station} #{seq}: {reason}"));
            }
            Ok(Output {
                ok: report.refused.is_empty(),
                json: serde_json::to_value(&report)?,
                human,
            })
        }
        _ => bail!(
            "this subcommand works on the embedded store only for now; on a cluster: init, serve, station add, station list, stats, list, verify, migrate (unset DATABASE_URL and BLOBS_URL for the embedded store)"
        ),
    }
}
