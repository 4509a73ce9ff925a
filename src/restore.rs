//! `tasjil backup` and `tasjil restore`: a copy of the station that can be put back, and putting
//! it back so that the van still delivers.
//!
//! A backup is a directory: a consistent copy of the store (`VACUUM INTO`, taken while a kiosk
//! may be writing), the station key, its public file, the centre's public keys and the
//! configuration. Restoring moves whatever store is in the data directory aside (never deletes
//! it), puts the backup's store in its place, and signs a restore link
//! ([`tasjil_sync::RestoreLink`]) from the restored chain head: records enrolled from then on
//! continue from the link, so the ones the van made after the backup and already delivered (the
//! centre holds them) and the new ones never collide.
//!
//! Not done: records enrolled after the backup that had *not* reached the centre are lost with
//! the store they were in (unless that store still opens: it is kept aside, and `tasjil export`
//! run against it as its own data directory still delivers them).

use std::fs;
use std::path::{Path, PathBuf};

use anyhow::{bail, Context};
use serde::Serialize;
use tasjil_sync::{RestoreBody, RestoreLink, StationKey};

use crate::station::{create_private_dir, lock, DataDir, Station};
use crate::store::Store;

/// Files a backup holds besides the store (copied when present).
const KEY_FILES: [&str; 4] = ["station.key", "station.pub", "centre.pub", "config.toml"];

/// What `tasjil backup` wrote.
#[derive(Debug, Serialize)]
pub struct BackupReport {
    pub station: String,
    pub to: PathBuf,
    /// `(seq, hash)` of the chain head the backup holds.
    pub head_seq: u64,
    pub head_hash: String,
    pub records: u64,
    pub bytes: u64,
}

/// Copy the station in `dir` into the backup directory `to` (created 0700; it must not already
/// hold a backup). Safe while a kiosk or a sync runs: the store is copied from one read
/// transaction.
pub fn backup(dir: &DataDir, to: &Path) -> anyhow::Result<BackupReport> {
    dir.require_initialised()?;
    let db = to.join("station.db");
    if db.exists() {
        bail!(
            "{} already holds a backup; choose an empty directory",
            to.display()
        );
    }
    create_private_dir(to)?;
    let view = crate::station::View::open(dir)?;
    let partial = to.join("station.db.partial");
    let _ = fs::remove_file(&partial);
    view.store
        .vacuum_into(&partial)
        .with_context(|| format!("cannot write the backup to {}", partial.display()))?;
    set_private(&partial)?;
    flush(&partial)?;
    fs::rename(&partial, &db).with_context(|| format!("cannot write {}", db.display()))?;
    for name in KEY_FILES {
        let src = dir.0.join(name);
        if src.exists() {
            let dst = to.join(name);
            fs::copy(&src, &dst).with_context(|| format!("cannot copy {name} to the backup"))?;
            set_private(&dst)?;
            flush(&dst)?;
        }
    }
    flush(to)?;
    let (head_seq, head_hash) = view.store.chain_head()?;
    Ok(BackupReport {
        station: view.station_id.clone(),
        to: to.to_path_buf(),
        head_seq,
        head_hash,
        records: view.store.counts()?.records,
        bytes: fs::metadata(&db).map(|m| m.len()).unwrap_or(0),
    })
}

/// What `tasjil restore` did.
#[derive(Debug, Serialize)]
pub struct RestoreReport {
    pub station: String,
    /// The restored head the link starts from.
    pub from_seq: u64,
    pub from_hash: String,
    /// The link's place: the next record takes `link_seq + 1`.
    pub link_seq: u64,
    pub link_hash: String,
    /// Where the store that was in the data directory went (nothing is deleted).
    pub replaced: Option<PathBuf>,
    pub records: u64,
}

/// Put the backup in `from` (a directory written by [`backup`], or a `station.db` copy) back into
/// `dir` and sign the restore link. `reason` is recorded in the link and the audit chain.
pub fn restore(dir: &DataDir, from: &Path, reason: &str) -> anyhow::Result<RestoreReport> {
    if reason.trim().is_empty() {
        bail!("say why the station is restored (--reason): it goes into the signed restore link");
    }
    let (from_dir, from_db) = if from.is_dir() {
        (Some(from.to_path_buf()), from.join("station.db"))
    } else {
        (None, from.to_path_buf())
    };
    if !from_db.is_file() {
        bail!(
            "{} is not a backup: no station database there (make one with `tasjil backup --to DIR`)",
            from_db.display()
        );
    }
    create_private_dir(&dir.0)?;
    // The key files: from the backup when the data directory lost them (a new disk), else the
    // data directory's own, which must then be the backup's station.
    if let Some(src) = &from_dir {
        for name in KEY_FILES {
            let (s, d) = (src.join(name), dir.0.join(name));
            if s.exists() && !d.exists() {
                fs::copy(&s, &d).with_context(|| format!("cannot copy {name} from the backup"))?;
                set_private(&d)?;
                flush(&d)?;
            }
        }
    }
    if !dir.key().exists() {
        bail!(
            "{} has no station key and the backup holds none: copy station.key, station.pub and centre.pub back first",
            dir.0.display()
        );
    }
    let key = StationKey::load(&dir.key())?;

    let replaced = {
        let _writer = lock(dir)?;
        // Check the backup on a copy: opening a store may migrate it, and the backup itself stays
        // as it was.
        let incoming = dir.0.join("station.db.restoring");
        let _ = fs::remove_file(&incoming);
        fs::copy(&from_db, &incoming)
            .with_context(|| format!("cannot copy {}", from_db.display()))?;
        set_private(&incoming)?;
        let check = (|| -> anyhow::Result<()> {
            let store = Store::open(&incoming)
                .with_context(|| format!("{} is not a usable station store", from_db.display()))?;
            let public = store.config("station_public_key")?.unwrap_or_default();
            if public != key.public_hex() {
                let id = store.config("station_id")?.unwrap_or_default();
                bail!(
                    "the backup is of station {id:?} with another key than {}: refusing to restore it here",
                    dir.key().display()
                );
            }
            Ok(())
        })();
        if let Err(e) = check {
            let _ = fs::remove_file(&incoming);
            return Err(e);
        }
        flush(&incoming)?;
        let replaced = move_aside(dir)?;
        fs::rename(&incoming, dir.db())
            .with_context(|| format!("cannot put the backup in place at {}", dir.db().display()))?;
        flush(&dir.0)?;
        replaced
    };

    let mut station = Station::open(dir)?;
    let (from_seq, from_hash) = station.store().chain_head()?;
    let now = crate::now_ms();
    let link = RestoreLink::sign(
        RestoreBody {
            v: tasjil_sync::record::RESTORE_VERSION,
            station: station.station_id().to_string(),
            from_seq,
            from_hash: from_hash.clone(),
            seq: RestoreBody::place(from_seq, now),
            restored_ms: now,
            reason: reason.trim().to_string(),
        },
        &key,
    )?;
    let link_hash = link.hash()?;
    let detail = serde_json::json!({
        "from_seq": from_seq, "from_hash": from_hash, "link_seq": link.body().seq,
        "link": link_hash, "reason": reason.trim(),
        "backup": from.display().to_string(),
        "replaced": replaced.as_ref().map(|p| p.display().to_string()),
    });
    station
        .store()
        .record_restore(&key, &link, detail, now)
        .context("cannot record the restore link")?;
    Ok(RestoreReport {
        station: station.station_id().to_string(),
        from_seq,
        from_hash,
        link_seq: link.body().seq,
        link_hash,
        replaced,
        records: station.store().counts()?.records,
    })
}

/// Move the data directory's store files (if any) into `replaced-<ms>/`; returns that directory.
fn move_aside(dir: &DataDir) -> anyhow::Result<Option<PathBuf>> {
    let files: Vec<PathBuf> = ["station.db", "station.db-wal", "station.db-shm"]
        .iter()
        .map(|n| dir.0.join(n))
        .filter(|p| p.exists())
        .collect();
    if files.is_empty() {
        return Ok(None);
    }
    let aside = dir.0.join(format!("replaced-{}", crate::now_ms()));
    create_private_dir(&aside)?;
    for f in files {
        let name = f.file_name().map(PathBuf::from).unwrap_or_default();
        fs::rename(&f, aside.join(name))
            .with_context(|| format!("cannot move {} aside", f.display()))?;
    }
    flush(&aside)?;
    Ok(Some(aside))
}

fn set_private(path: &Path) -> anyhow::Result<()> {
    use std::os::unix::fs::PermissionsExt;
    fs::set_permissions(path, fs::Permissions::from_mode(0o600))
        .with_context(|| format!("cannot set the mode of {}", path.display()))
}

/// fsync a file or a directory (a rename is durable once its directory is flushed).
fn flush(path: &Path) -> anyhow::Result<()> {
    fs::File::open(path)
        .and_then(|f| f.sync_all())
        .with_context(|| format!("cannot flush {}", path.display()))
}
