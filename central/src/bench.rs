//! `tasjil-central bench console`: how fast the console answers with a national archive behind
//! it. Fills an embedded store with N record rows spread over a year and S stations, starts the
//! real server with the console in this process, logs in as a staff member (password + TOTP) and
//! times the pages central staff use most, end to end over HTTP on loopback.
//!
//! The rows are written straight into the store's tables (one realistic signed envelope per
//! station, reused; ids, sequence numbers, times and statuses per row), because a million payload
//! files through the real ingest path would take hours and the pages timed here never read a
//! payload or check a signature. `tasjil-central verify` on such a store reports every reused
//! envelope: it is a benchmark store, removed at the end unless `--dir` names one to keep.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{bail, Context};
use rusqlite::params;
use serde::Serialize;
use tasjil_sync::{CentreKeys, StationKey, StationPublic};

use crate::console::Console;
use crate::staff::Role;
use crate::CentreStore;

/// The console's goal for each page, p95.
pub const GOAL_MS: f64 = 200.0;

#[derive(Debug, Clone, Serialize)]
pub struct Timing {
    pub request: String,
    pub p50_ms: f64,
    pub p95_ms: f64,
    pub max_ms: f64,
    /// Table rows the page showed, at the median (proof the page had something to show).
    pub rows: usize,
    /// p95 over the goal: below 1 meets it.
    pub p95_over_goal: f64,
}

#[derive(Debug, Clone, Serialize)]
pub struct ConsoleBench {
    pub records: u64,
    pub stations: u64,
    pub rounds: u32,
    pub fill_s: f64,
    pub db_bytes: u64,
    pub timings: Vec<Timing>,
}

const DAY_MS: i64 = 86_400_000;

/// A 26-character Crockford base32 id (ULID-shaped) from 128 bits.
pub fn ulid_like(v: u128) -> String {
    const A: &[u8; 32] = b"0123456789ABCDEFGHJKMNPQRSTVWXYZ";
    (0..26)
        .rev()
        .map(|i| A[((v >> (i * 5)) & 31) as usize] as char)
        .collect()
}

/// Where a benchmark envelope sits and what it names.
#[derive(Debug)]
pub struct BenchEnvelope<'a> {
    pub id: String,
    pub station: &'a str,
    pub officer: &'a str,
    pub seq: u64,
    pub prev: &'a str,
    pub payload: tasjil_sync::record::PayloadRef,
    pub roster: Option<u64>,
}

/// A signed envelope co-signed by `officer` (the shape and size of a real one: ten finger
/// scores, a face score, capture times).
pub fn signed_envelope(
    e: BenchEnvelope<'_>,
    officer: &StationKey,
    station: &StationKey,
) -> anyhow::Result<Vec<u8>> {
    use tasjil_sync::record::*;
    let body = EnvelopeBody {
        v: ENVELOPE_VERSION,
        id: e.id,
        kind: EnrolmentKind::New,
        station: e.station.into(),
        officer: e.officer.into(),
        seq: e.seq,
        prev: e.prev.into(),
        demographics_schema: "cnie-v1".into(),
        captured: CaptureTimes {
            started_ms: 1,
            face_ms: 2,
            fingers_ms: 3,
            signature_ms: 4,
            finished_ms: 5,
        },
        quality: QualitySummary {
            face: 91,
            face_attempts: 1,
            fingers: (1..=10)
                .map(|i| FingerQuality {
                    position: format!("finger_{i}"),
                    score: 80,
                })
                .collect(),
            finger_exceptions: vec![],
            below_threshold: vec![],
        },
        payload: e.payload,
        simulation: false,
        roster: e.roster,
    };
    let env = Envelope::new(body)?;
    let sig = officer.sign(&env.officer_message()?);
    let env = env
        .with_officer_signature(CoSignature {
            key: officer.public_hex(),
            sig: hex::encode(sig.to_bytes()),
        })
        .sign(station)?;
    Ok(env.to_bytes()?)
}

/// One signed envelope of `station` (the shape and size of a real one).
fn template_envelope(station: &str, key: &StationKey) -> anyhow::Result<Vec<u8>> {
    signed_envelope(
        BenchEnvelope {
            id: ulid_like(1),
            station,
            officer: "OFF-BENCH-1",
            seq: 1,
            prev: tasjil_sync::GENESIS,
            payload: tasjil_sync::record::PayloadRef {
                sha256: "0".repeat(64),
                len: 2_000_000,
            },
            roster: None,
        },
        &StationKey::generate(),
        key,
    )
}

/// Fill `dir`'s store with `records` rows over `stations` stations, received over the year
/// before `now_ms`. Returns the station ids.
fn fill(
    store: &CentreStore,
    records: u64,
    stations: u64,
    now_ms: i64,
    progress: &mut dyn FnMut(u64),
) -> anyhow::Result<Vec<String>> {
    let mut ids = Vec::new();
    let mut templates = Vec::new();
    for s in 0..stations {
        let id = format!("VAN-{:03}", s + 1);
        let key = StationKey::generate();
        store.add_station(&StationPublic::new(&id, &key), now_ms)?;
        templates.push(template_envelope(&id, &key)?);
        ids.push(id);
    }
    let mut conn = rusqlite::Connection::open(store.db_path())?;
    conn.pragma_update(None, "synchronous", "OFF")?;
    let span = 365 * DAY_MS;
    let mut seqs = vec![0u64; stations as usize];
    let batch = 50_000;
    let mut done = 0;
    while done < records {
        let tx = conn.transaction()?;
        {
            let mut insert = tx.prepare(
                "INSERT INTO envelopes (station, seq, id, hash, envelope, payload_sha256,
                     payload_len, received_ms, status, issuance, issuance_reason, issuance_ms)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12)",
            )?;
            for i in done..(done + batch).min(records) {
                let s = (i.wrapping_mul(2_654_435_761) % stations) as usize;
                seqs[s] += 1;
                let received = now_ms - span + (i as i64 * span) / records as i64;
                let h = tasjil_sync::sha256_hex(&i.to_le_bytes());
                // 1 % held, and of the verified: 60 % issued, 10 % accepted, 1 % re-enrol.
                let r = i % 100;
                let status = if r == 99 { "held" } else { "verified" };
                let issuance = match r {
                    0..=59 => Some("issued"),
                    60..=69 => Some("accepted"),
                    70 => Some("reenrol"),
                    _ => None,
                };
                insert.execute(params![
                    ids[s],
                    seqs[s] as i64,
                    ulid_like((received as u128) << 80 | i as u128),
                    h,
                    templates[s],
                    h,
                    2_000_000i64,
                    received,
                    status,
                    issuance,
                    (issuance == Some("reenrol")).then_some("Photo not compliant"),
                    issuance.map(|_| received + DAY_MS),
                ])?;
            }
        }
        tx.commit()?;
        done = (done + batch).min(records);
        progress(done);
    }
    conn.execute_batch("ANALYZE")?;
    Ok(ids)
}

struct Client {
    addr: String,
    cookie: String,
}

impl Client {
    fn request(
        &self,
        method: &str,
        path: &str,
        body: &str,
    ) -> anyhow::Result<(u16, String, String)> {
        let mut s = TcpStream::connect(&self.addr)?;
        s.set_read_timeout(Some(Duration::from_secs(60)))?;
        let req = format!(
            "{method} {path} HTTP/1.1\r\nhost: {}\r\nconnection: close\r\ncookie: {}\r\ncontent-type: application/x-www-form-urlencoded\r\ncontent-length: {}\r\n\r\n{body}",
            self.addr,
            self.cookie,
            body.len()
        );
        s.write_all(req.as_bytes())?;
        let mut raw = Vec::new();
        s.read_to_end(&mut raw)?;
        let raw = String::from_utf8_lossy(&raw).into_owned();
        let (head, body) = raw.split_once("\r\n\r\n").unwrap_or((&raw, ""));
        let status = head
            .split(' ')
            .nth(1)
            .and_then(|c| c.parse().ok())
            .unwrap_or(0);
        Ok((status, head.to_string(), body.to_string()))
    }

    fn page(&self, path: &str) -> anyhow::Result<(f64, String)> {
        let t = Instant::now();
        let (status, _, body) = self.request("GET", path, "")?;
        let ms = t.elapsed().as_secs_f64() * 1000.0;
        if status != 200 {
            bail!(
                "GET {path} answered {status}: {}",
                body.chars().take(300).collect::<String>()
            );
        }
        Ok((ms, body))
    }
}

fn cookie_value(head: &str, name: &str) -> Option<String> {
    head.lines()
        .filter_map(|l| l.split_once(':'))
        .filter(|(k, _)| k.trim().eq_ignore_ascii_case("set-cookie"))
        .filter_map(|(_, v)| v.trim().split(';').next())
        .find_map(|pair| {
            let (k, v) = pair.split_once('=')?;
            (k == name && !v.is_empty()).then(|| v.to_string())
        })
}

fn percentile(sorted: &[f64], p: f64) -> f64 {
    if sorted.is_empty() {
        return 0.0;
    }
    let i = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[i.min(sorted.len() - 1)]
}

/// Run the benchmark; `dir` is the store to make (it must not exist yet).
pub fn console(
    dir: &Path,
    records: u64,
    stations: u64,
    rounds: u32,
    progress: &mut dyn FnMut(&str),
) -> anyhow::Result<ConsoleBench> {
    if dir.exists() {
        bail!(
            "{} exists: the benchmark makes a fresh store",
            dir.display()
        );
    }
    let now = crate::now_ms();
    let store = Arc::new(CentreStore::open(dir)?);
    let keys = CentreKeys::generate();
    let started = Instant::now();
    let station_ids = fill(&store, records, stations.max(1), now, &mut |n| {
        progress(&format!("filled {n} of {records} records"))
    })?;
    let fill_s = started.elapsed().as_secs_f64();
    let db_bytes = std::fs::metadata(store.db_path())?.len();
    let password = "bench-password-1";
    let secret = store.add_staff(
        "bench",
        Role::Viewer,
        password,
        &keys.identity.to_public(),
        now,
    )?;

    let runtime = tokio::runtime::Runtime::new()?;
    let listener = runtime.block_on(tokio::net::TcpListener::bind("127.0.0.1:0"))?;
    let addr = listener.local_addr()?.to_string();
    let app = crate::server::app(store.clone(), Some(Console::new(store.clone(), Some(keys))));
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let server = runtime.spawn(async move {
        crate::server::serve(listener, app, Default::default(), async move {
            let _ = stopped.await;
        })
        .await
    });

    // Log in as staff do: the login form's token, the password and the second factor.
    let anonymous = Client {
        addr: addr.clone(),
        cookie: String::new(),
    };
    let (_, head, form) = anonymous.request("GET", "/console/login", "")?;
    let login_cookie = cookie_value(&head, crate::console::session::LOGIN_COOKIE)
        .context("the login page set no form cookie")?;
    let csrf = form
        .split("name=\"csrf\" value=\"")
        .nth(1)
        .and_then(|r| r.split('"').next())
        .context("no token in the login form")?
        .to_string();
    let code = format!(
        "{:06}",
        crate::staff::totp_code(&secret, crate::staff::totp_step(crate::now_ms()))
    );
    let with_login = Client {
        addr: addr.clone(),
        cookie: format!("{}={login_cookie}", crate::console::session::LOGIN_COOKIE),
    };
    let body = form_urlencoded::Serializer::new(String::new())
        .append_pair("csrf", &csrf)
        .append_pair("id", "bench")
        .append_pair("password", password)
        .append_pair("code", &code)
        .finish();
    let (status, head, _) = with_login.request("POST", "/console/login", &body)?;
    let session = cookie_value(&head, crate::console::session::SESSION_COOKIE)
        .with_context(|| format!("login refused ({status})"))?;
    let client = Client {
        addr,
        cookie: format!("{}={session}", crate::console::session::SESSION_COOKIE),
    };

    // A cursor deep in the archive: the first page's, walked once to page 200.
    let mut deep = "/console/records".to_string();
    for _ in 0..200 {
        let (_, body) = client.page(&deep)?;
        match body
            .split("id=\"next\" href=\"")
            .nth(1)
            .and_then(|r| r.split('"').next())
        {
            Some(next) => deep = next.replace("&amp;", "&"),
            None => break,
        }
    }

    let names = [
        "overview",
        "records: station + day",
        "records: newest, first page",
        "records: re-enrol needed",
        "records: page 200 (cursor)",
        "record page (envelope facts)",
    ];
    let mut samples: Vec<Vec<f64>> = vec![Vec::new(); names.len()];
    let mut shown: Vec<Vec<usize>> = vec![Vec::new(); names.len()];
    let rows_of = |body: &str| body.matches("<tr").count().saturating_sub(1);
    let mut rng = 0x9E37_79B9_7F4A_7C15u64;
    let mut next = || {
        rng ^= rng << 13;
        rng ^= rng >> 7;
        rng ^= rng << 17;
        rng
    };
    for round in 0..rounds {
        let station = &station_ids[(next() % station_ids.len() as u64) as usize];
        let day_ms = now - (next() % 365) as i64 * DAY_MS;
        let (date, _) = crate::nist::utc_date_time(day_ms);
        let day = format!("{}-{}-{}", &date[..4], &date[4..6], &date[6..8]);
        let mut time = |i: usize, path: &str| -> anyhow::Result<String> {
            let (ms, body) = client.page(path)?;
            samples[i].push(ms);
            shown[i].push(rows_of(&body));
            Ok(body)
        };
        time(0, "/console/overview")?;
        let body = time(1, &format!("/console/records?station={station}&day={day}"))?;
        time(2, "/console/records")?;
        time(3, "/console/records?status=reenrol")?;
        time(4, &deep)?;
        let record = body
            .split("<a href=\"/console/records/")
            .nth(1)
            .and_then(|r| r.split('"').next())
            .map(|r| format!("/console/records/{r}"));
        if let Some(record) = record {
            time(5, &record)?;
        }
        if round % 20 == 19 {
            progress(&format!("round {} of {rounds}", round + 1));
        }
    }
    let _ = stop.send(());
    let _ = runtime.block_on(server);

    let timings = names
        .iter()
        .zip(samples)
        .zip(shown)
        .map(|((name, mut s), mut rows)| {
            s.sort_by(f64::total_cmp);
            rows.sort_unstable();
            let p95 = percentile(&s, 0.95);
            Timing {
                rows: rows.get(rows.len() / 2).copied().unwrap_or(0),
                request: name.to_string(),
                p50_ms: percentile(&s, 0.5),
                p95_ms: p95,
                max_ms: s.last().copied().unwrap_or(0.0),
                p95_over_goal: p95 / GOAL_MS,
            }
        })
        .collect();
    Ok(ConsoleBench {
        records,
        stations,
        rounds,
        fill_s,
        db_bytes,
        timings,
    })
}

/// The table `bench console` prints.
pub fn table(b: &ConsoleBench, profile: &str) -> String {
    let mut t = format!(
        "console with {} records over {} stations ({:.0} s to fill, {:.2} GB), {} rounds, {profile} build\n\n",
        b.records,
        b.stations,
        b.fill_s,
        b.db_bytes as f64 / 1e9,
        b.rounds
    );
    t.push_str(&format!(
        "{:<32} {:>6} {:>9} {:>9} {:>9} {:>18}\n",
        "request", "rows", "p50 ms", "p95 ms", "max ms", "p95 / 200 ms goal"
    ));
    for r in &b.timings {
        t.push_str(&format!(
            "{:<32} {:>6} {:>9.1} {:>9.1} {:>9.1} {:>17.2}×\n",
            r.request, r.rows, r.p50_ms, r.p95_ms, r.max_ms, r.p95_over_goal
        ));
    }
    t
}

/// A fresh directory for a benchmark store that is removed afterwards.
pub fn scratch_dir() -> PathBuf {
    std::env::temp_dir().join(format!(
        "tasjil-console-bench-{}-{}",
        std::process::id(),
        crate::now_ms()
    ))
}
