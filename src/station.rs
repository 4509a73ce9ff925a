//! The station's data directory: keys, the centre's public keys, the store, and the lock that keeps
//! the store to one writing process.
//!
//! ```text
//! DATA_DIR/station.db      SQLite (WAL): envelopes, sealed payloads, audit chain, sync state
//! DATA_DIR/station.key     Ed25519 secret key (0600)
//! DATA_DIR/station.pub     public key for `tasjil-central station add --key`
//! DATA_DIR/centre.pub      the centre's public keys, copied at init
//! DATA_DIR/station.lock    held by the one process that writes
//! ```

use std::fs::{self, File};
use std::path::{Path, PathBuf};

use anyhow::{bail, Context};
use tasjil_sync::{CentrePublic, StationKey, StationPublic};

use crate::enrolment::record::{new_id, seal_and_sign, ChainPosition, FingerFormat, Sealed};
use crate::enrolment::{Completed, OfficerBadge};
use crate::schema::Schema;
use crate::store::Store;

/// Files of a station data directory.
#[derive(Debug, Clone)]
pub struct DataDir(pub PathBuf);

impl DataDir {
    /// `--data-dir`, else `$XDG_DATA_HOME/tasjil`, else `~/.local/share/tasjil`.
    pub fn resolve(arg: Option<PathBuf>) -> anyhow::Result<DataDir> {
        if let Some(d) = arg {
            return Ok(DataDir(d));
        }
        if let Some(d) = std::env::var_os("XDG_DATA_HOME").filter(|d| !d.is_empty()) {
            return Ok(DataDir(PathBuf::from(d).join("tasjil")));
        }
        let home = std::env::var_os("HOME")
            .context("neither --data-dir, XDG_DATA_HOME nor HOME is set")?;
        Ok(DataDir(PathBuf::from(home).join(".local/share/tasjil")))
    }
    pub fn db(&self) -> PathBuf {
        self.0.join("station.db")
    }
    pub fn key(&self) -> PathBuf {
        self.0.join("station.key")
    }
    pub fn public(&self) -> PathBuf {
        self.0.join("station.pub")
    }
    pub fn centre(&self) -> PathBuf {
        self.0.join("centre.pub")
    }
    pub(crate) fn lock(&self) -> PathBuf {
        self.0.join("station.lock")
    }
    pub(crate) fn require_initialised(&self) -> anyhow::Result<()> {
        if !self.db().exists() || !self.key().exists() {
            bail!(
                "no station in {}: run `tasjil init --station-id ID --central-key FILE` first (or pass --data-dir)",
                self.0.display()
            );
        }
        Ok(())
    }
}

/// Validate a station id: short, printable, safe in file names.
fn check_station_id(id: &str) -> anyhow::Result<()> {
    if id.is_empty()
        || id.len() > 40
        || !id
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
    {
        bail!("station id {id:?} must be 1-40 letters, digits, '-' or '_'");
    }
    Ok(())
}

/// What `init` produced.
#[derive(Debug, serde::Serialize)]
pub struct InitReport {
    pub station: String,
    pub data_dir: PathBuf,
    pub station_pub: PathBuf,
    pub public_key: String,
    pub simulation: bool,
}

/// Create a station: keys, store, copy of the centre's public keys, first audit entry.
pub fn init(
    dir: &DataDir,
    station_id: &str,
    central_key: &Path,
    simulation: bool,
) -> anyhow::Result<InitReport> {
    check_station_id(station_id)?;
    let centre = CentrePublic::load(central_key)?;
    if dir.key().exists() || dir.db().exists() {
        bail!(
            "{} already holds a station; refusing to overwrite it (use another --data-dir)",
            dir.0.display()
        );
    }
    create_private_dir(&dir.0)?;
    let _lock = lock(dir)?;
    let key = StationKey::generate();
    key.save(&dir.key())?;
    let public = StationPublic::new(station_id, &key);
    let public = if simulation {
        public.training()
    } else {
        public
    };
    write_synced(
        &dir.public(),
        format!("{}\n", serde_json::to_string_pretty(&public)?).as_bytes(),
    )?;
    write_synced(&dir.centre(), centre.to_json().as_bytes())?;
    let mut store = Store::open(&dir.db())?;
    store.set_config("station_id", station_id)?;
    store.set_config("station_public_key", &key.public_hex())?;
    store.set_config("centre_public", &centre.to_json())?;
    if simulation {
        store.set_config("simulation", "true")?;
    }
    store.audit(
        &key,
        "init",
        station_id,
        serde_json::json!({"station": station_id, "key": key.public_hex(), "centre_ed25519": centre.ed25519, "simulation": simulation}),
        crate::now_ms(),
    )?;
    Ok(InitReport {
        station: station_id.into(),
        data_dir: dir.0.clone(),
        station_pub: dir.public(),
        public_key: key.public_hex(),
        simulation,
    })
}

/// Create the data directory, or tighten an existing one, to 0700: it holds the station key and
/// sealed personal data.
pub(crate) fn create_private_dir(path: &Path) -> anyhow::Result<()> {
    use std::os::unix::fs::{DirBuilderExt, PermissionsExt};
    fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(path)
        .and_then(|()| fs::set_permissions(path, fs::Permissions::from_mode(0o700)))
        .with_context(|| format!("cannot create data directory {}", path.display()))
}

fn write_synced(path: &Path, bytes: &[u8]) -> anyhow::Result<()> {
    use std::io::Write;
    let mut f = File::create(path).with_context(|| format!("cannot write {}", path.display()))?;
    f.write_all(bytes)
        .and_then(|()| f.sync_all())
        .with_context(|| format!("cannot write {}", path.display()))
}

/// The station's one writer lock is held by another process (a kiosk, `sync --watch` in the
/// middle of a round, an enrolment or approval run).
#[derive(Debug, thiserror::Error)]
#[error(
    "another tasjil process is writing to {0} (a kiosk with an officer logged in, a sync round \
     or an enrolment run?); wait for it or stop it"
)]
pub struct WriterBusy(pub PathBuf);

/// Whether `e` is [`WriterBusy`]: worth waiting for, not a fault.
pub fn is_writer_busy(e: &anyhow::Error) -> bool {
    e.downcast_ref::<WriterBusy>().is_some()
}

pub(crate) fn lock(dir: &DataDir) -> anyhow::Result<File> {
    let file = fs::OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(dir.lock())
        .with_context(|| format!("cannot open {}", dir.lock().display()))?;
    match file.try_lock() {
        Ok(()) => Ok(file),
        Err(fs::TryLockError::WouldBlock) => Err(WriterBusy(dir.0.clone()).into()),
        Err(fs::TryLockError::Error(e)) => Err(e).context("cannot lock the data directory"),
    }
}

/// Take the writer lock, waiting up to `wait` for whoever holds it.
pub(crate) fn lock_waiting(dir: &DataDir, wait: std::time::Duration) -> anyhow::Result<File> {
    let deadline = std::time::Instant::now() + wait;
    loop {
        match lock(dir) {
            Err(e) if is_writer_busy(&e) && std::time::Instant::now() < deadline => {
                std::thread::sleep(std::time::Duration::from_millis(100));
            }
            other => return other,
        }
    }
}

/// Read-only view for `list`, `verify`, `status`.
#[derive(Debug)]
pub struct View {
    pub store: Store,
    pub station_id: String,
    pub public_key: String,
}

/// Why a simulated device or badge is refused on this station.
pub const NOT_TRAINING: &str = "this station was not initialised as a training station \
     (`tasjil init --simulation`): simulated devices and badges exist only there";

impl View {
    /// Whether this is a training or demonstration station (`tasjil init --simulation`), the
    /// only kind on which simulated devices and badges are allowed.
    pub fn simulation(&self) -> Result<bool, crate::store::StoreError> {
        Ok(self.store.config("simulation")?.as_deref() == Some("true"))
    }

    pub fn open(dir: &DataDir) -> anyhow::Result<View> {
        dir.require_initialised()?;
        let store = Store::open(&dir.db())?;
        let station_id = store
            .config("station_id")?
            .context("the station database has no station id: it was not made by `tasjil init`")?;
        let public_key = store
            .config("station_public_key")?
            .context("the station database has no station key")?;
        Ok(View {
            store,
            station_id,
            public_key,
        })
    }
}

/// The writer: holds the lock, the station key and the centre's recipients.
#[derive(Debug)]
pub struct Station {
    pub view: View,
    key: std::sync::Arc<StationKey>,
    centre: CentrePublic,
    recipients: Vec<age::x25519::Recipient>,
    pub schema: Schema,
    /// How finger images are encoded in payloads (`[capture] finger_format`).
    pub finger_format: FingerFormat,
    /// A supervisor may approve their own enrolments (`[approval] self_approval`).
    pub self_approval: bool,
    /// How old the centre's roster may grow (`[roster]`).
    pub roster_policy: crate::config::RosterPolicy,
    dir: DataDir,
    /// The writer lock; `None` while released to another process ([`Self::release`]).
    lock: Option<File>,
}

/// What was committed.
#[derive(Debug, Clone, serde::Serialize)]
pub struct Committed {
    pub id: String,
    pub seq: u64,
    pub hash: String,
    pub sealed_len: usize,
    pub plain_len: usize,
    pub seal_us: u64,
    pub sign_us: u64,
    pub commit_us: u64,
}

impl Station {
    pub fn open(dir: &DataDir) -> anyhow::Result<Station> {
        dir.require_initialised()?;
        let lock = lock(dir)?;
        Self::open_locked(dir, lock)
    }

    /// Like [`Self::open`], waiting up to `wait` for another writer to finish (the kiosk
    /// starting while `sync --watch` is in a round).
    pub fn open_waiting(dir: &DataDir, wait: std::time::Duration) -> anyhow::Result<Station> {
        dir.require_initialised()?;
        let lock = lock_waiting(dir, wait)?;
        Self::open_locked(dir, lock)
    }

    fn open_locked(dir: &DataDir, lock: File) -> anyhow::Result<Station> {
        let view = View::open(dir)?;
        let key = std::sync::Arc::new(StationKey::load(&dir.key())?);
        if key.public_hex() != view.public_key {
            bail!(
                "{} does not belong to the station in {}: the key and the database do not match",
                dir.key().display(),
                dir.db().display()
            );
        }
        let centre_text = view
            .store
            .config("centre_public")?
            .context("the station database has no centre key")?;
        let centre = CentrePublic::parse(&centre_text)
            .map_err(|e| anyhow::anyhow!("stored centre key: {e}"))?;
        let recipients = centre.recipients().map_err(anyhow::Error::msg)?;
        let config = crate::config::Config::load(&dir.0)?;
        Ok(Station {
            view,
            key,
            centre,
            recipients,
            schema: Schema::default_cnie(),
            finger_format: config.finger_format,
            self_approval: config.approval.self_approval,
            roster_policy: config.roster,
            dir: dir.clone(),
            lock: Some(lock),
        })
    }

    /// Let another process write to the station until [`Self::reacquire`]: the kiosk does this
    /// while nobody is logged in, so `sync --watch` can deliver between citizens. Nothing may
    /// be written through this `Station` meanwhile (the kiosk takes it back before any write).
    pub fn release(&mut self) {
        self.lock = None;
    }

    /// Whether this `Station` holds the writer lock (not released).
    pub fn holds_lock(&self) -> bool {
        self.lock.is_some()
    }

    /// Take the writer lock back, waiting up to `wait` for a round of the other writer to end,
    /// then read the station afresh: the other writer may have stored a roster, a centre key
    /// rotation or acknowledgements meanwhile.
    pub fn reacquire(&mut self, wait: std::time::Duration) -> anyhow::Result<()> {
        if self.lock.is_some() {
            return Ok(());
        }
        let lock = lock_waiting(&self.dir, wait)?;
        *self = Self::open_locked(&self.dir.clone(), lock)?;
        Ok(())
    }

    pub fn station_id(&self) -> &str {
        &self.view.station_id
    }

    /// The centre's public keys, as copied at `init`.
    pub fn centre(&self) -> &CentrePublic {
        &self.centre
    }

    /// Hold `centre` as the centre's keys from now on (a key rotation this station checked):
    /// stored, and new payloads are sealed to its recipients.
    pub(crate) fn set_centre(&mut self, centre: CentrePublic) -> anyhow::Result<()> {
        let recipients = centre.recipients().map_err(anyhow::Error::msg)?;
        self.view
            .store
            .set_config("centre_public", &centre.to_json())?;
        self.centre = centre;
        self.recipients = recipients;
        Ok(())
    }

    pub fn key(&self) -> std::sync::Arc<StationKey> {
        self.key.clone()
    }

    /// Append to the audit chain.
    pub fn audit(
        &mut self,
        action: &str,
        actor: &str,
        detail: serde_json::Value,
    ) -> anyhow::Result<()> {
        self.view
            .store
            .audit(&self.key, action, actor, detail, crate::now_ms())?;
        Ok(())
    }

    pub fn store(&mut self) -> &mut Store {
        &mut self.view.store
    }

    /// An officer logs in with a badge: the centre's roster must list it for this station (on
    /// a training station without a roster, its key is registered on first use). Audited.
    pub fn login(&mut self, badge: &dyn OfficerBadge) -> anyhow::Result<()> {
        use crate::roster::Authorised;
        let how = self.authorise(badge, tasjil_sync::roster::Role::Officer, "log in")?;
        let now = crate::now_ms();
        let id = badge.officer_id();
        let new = how == Authorised::Training
            && self.view.store.register_officer(
                &id,
                &badge.officer_name(),
                "officer",
                &badge.public_key_hex(),
                now,
            )?;
        let (roster, override_reason) = match &how {
            Authorised::Roster { version } => (Some(*version), None),
            Authorised::Override { reason } => (None, Some(reason.clone())),
            Authorised::Training => (None, None),
        };
        self.view.store.audit(
            &self.key,
            "login",
            &id,
            serde_json::json!({"badge": badge.public_key_hex(), "first_use": new,
                               "roster_version": roster, "override": override_reason}),
            now,
        )?;
        Ok(())
    }

    /// The badge about to approve or countersign an export must be a supervisor's on the centre's
    /// roster. Only on a training station without a roster: a badge registered as an officer is
    /// refused and an unknown one is registered as a supervisor on first use.
    pub fn register_supervisor(&mut self, badge: &dyn OfficerBadge) -> anyhow::Result<()> {
        let how = self.authorise(
            badge,
            tasjil_sync::roster::Role::Supervisor,
            "approve records or countersign an export",
        )?;
        if how != crate::roster::Authorised::Training {
            return Ok(());
        }
        let id = badge.officer_id();
        let known = self.view.store.officers()?.into_iter().find(|o| o.id == id);
        if let Some(o) = known.filter(|o| o.role != "supervisor") {
            anyhow::bail!(
                "{id} is registered at this station as {} {}, not as a supervisor: only a \
                 supervisor's badge approves records or signs an export (a supervisor registers \
                 with `tasjil officer add --role supervisor`)",
                if o.role.starts_with(['a', 'e', 'i', 'o', 'u']) {
                    "an"
                } else {
                    "a"
                },
                o.role
            );
        }
        self.view.store.register_officer(
            &id,
            &badge.officer_name(),
            "supervisor",
            &badge.public_key_hex(),
            crate::now_ms(),
        )?;
        Ok(())
    }

    /// Supervisor approval (`tasjil approve` and the kiosk's supervisor view): the badge, already
    /// unlocked with its PIN, signs the list of envelope hashes it approves; the signature goes
    /// into the audit. `ids` empty approves every record not yet approved. Returns `(id, hash)`
    /// of the records approved now. A supervisor does not approve records they enrolled
    /// themselves (left out of "every record", refused by id) unless `[approval] self_approval`.
    pub fn approve(
        &mut self,
        badge: &mut dyn OfficerBadge,
        ids: &[String],
    ) -> anyhow::Result<Vec<(String, String)>> {
        self.register_supervisor(badge)?;
        let supervisor = badge.officer_id();
        let badge = std::cell::RefCell::new(badge);
        let sign = |hashes: &[String]| -> Result<String, String> {
            let mut m = b"tasjil/approve/v1\0".to_vec();
            let list = serde_json::to_vec(hashes).map_err(|e| e.to_string())?;
            m.extend_from_slice(&tasjil_sync::canonical::sha256(&list));
            let sig = badge.borrow_mut().sign(&m).map_err(|e| e.to_string())?;
            Ok(hex::encode(sig))
        };
        // A record the supervisor put on hold or rejected is never part of "all"; a rejected one
        // cannot be approved at all.
        let decisions = self.view.store.station_decisions()?;
        if let Some(id) = ids.iter().find(|id| {
            decisions
                .get(*id)
                .is_some_and(|d| d.status == tasjil_sync::ledger::Status::Withdrawn)
        }) {
            anyhow::bail!("record {id} was rejected by a supervisor: it cannot be approved");
        }
        let all: Vec<String>;
        let ids = if ids.is_empty() && !decisions.is_empty() {
            all = self
                .view
                .store
                .envelopes()?
                .into_iter()
                .filter(|r| {
                    !r.approved
                        && !decisions.contains_key(&r.id)
                        && (self.self_approval || r.officer != supervisor)
                })
                .map(|r| r.id)
                .collect();
            if all.is_empty() {
                return Ok(Vec::new());
            }
            &all[..]
        } else {
            ids
        };
        let key = self.key();
        Ok(self.view.store.approve(
            &key,
            ids,
            &supervisor,
            self.self_approval,
            &sign,
            crate::now_ms(),
        )?)
    }

    /// Hold or reject record `id` with `reason`, signed by the supervisor's unlocked `badge`
    /// (same roles and four-eyes rule as [`Self::approve`]).
    pub fn review(
        &mut self,
        badge: &mut dyn OfficerBadge,
        id: &str,
        decision: crate::store::review::Decision,
        reason: &str,
    ) -> anyhow::Result<tasjil_sync::ledger::StatusEntry> {
        self.register_supervisor(badge)?;
        let supervisor = badge.officer_id();
        let badge = std::cell::RefCell::new(badge);
        let sign = |hashes: &[String]| -> Result<String, String> {
            let mut m = b"tasjil/review/v1\0".to_vec();
            let list = serde_json::to_vec(hashes).map_err(|e| e.to_string())?;
            m.extend_from_slice(&tasjil_sync::canonical::sha256(&list));
            let sig = badge.borrow_mut().sign(&m).map_err(|e| e.to_string())?;
            Ok(hex::encode(sig))
        };
        let key = self.key();
        Ok(self.view.store.review(
            &key,
            id,
            decision,
            reason,
            &supervisor,
            self.self_approval,
            &sign,
            crate::now_ms(),
        )?)
    }

    /// Records awaiting approval that `supervisor` enrolled themselves, which they may not
    /// approve (empty when `[approval] self_approval` allows it).
    pub fn own_awaiting(&self, supervisor: &str) -> anyhow::Result<Vec<String>> {
        if self.self_approval {
            return Ok(Vec::new());
        }
        Ok(self
            .view
            .store
            .envelopes()?
            .into_iter()
            .filter(|r| !r.approved && r.officer == supervisor)
            .map(|r| r.id)
            .collect())
    }

    /// Seal, co-sign, sign and durably store one enrolment. Returns only after the commit is on disk.
    pub fn commit(
        &mut self,
        done: &Completed,
        badge: &mut dyn OfficerBadge,
    ) -> anyhow::Result<Committed> {
        let (last_seq, prev) = self.view.store.chain_head()?;
        let at = ChainPosition {
            station: self.view.station_id.clone(),
            seq: last_seq + 1,
            prev,
            simulation: self.view.simulation()?,
            roster: self.roster_version()?,
        };
        let id = new_id(done.finished_ms);
        let Sealed {
            envelope,
            sealed,
            plain_len,
            seal_us,
            sign_us,
        } = seal_and_sign(
            done,
            &id,
            &self.schema.id(),
            &at,
            &self.recipients,
            badge,
            &self.key,
            self.finger_format,
        )?;
        let t = std::time::Instant::now();
        self.view
            .store
            .commit_enrolment(&self.key, &envelope, &sealed, crate::now_ms())?;
        Ok(Committed {
            id,
            seq: at.seq,
            hash: envelope.hash()?,
            sealed_len: sealed.len(),
            plain_len,
            seal_us,
            sign_us,
            commit_us: t.elapsed().as_micros() as u64,
        })
    }
}
