//! The centre's side of TLS: its self-signed certificate (made at `tasjil-central init`, pinned by
//! stations through `centre.pub`) and the server configuration that presents it. The station's
//! side (pinning client, loopback rule) is `tasjil_sync::tls`.
//!
//! A new certificate goes into service in two steps, each a key set signed by the centre's current
//! key and delivered like any key rotation: [`announce`] pins the next certificate beside the one
//! in service, [`switch`] (once vans have synced) makes it the only one.

use std::path::Path;

use anyhow::{bail, Context};
use ed25519_dalek::SigningKey;
use tasjil_sync::rotation::KeyRotation;
use tasjil_sync::CentrePublic;

use crate::CentreStore;

/// A new self-signed certificate: `(certificate DER, private key DER)`.
pub fn self_signed() -> Result<(Vec<u8>, Vec<u8>), String> {
    let made = rcgen::generate_simple_self_signed(vec![
        "tasjil-centre".to_string(),
        "localhost".to_string(),
    ])
    .map_err(|e| e.to_string())?;
    Ok((made.cert.der().to_vec(), made.signing_key.serialize_der()))
}

/// Server configuration presenting the centre's certificate.
pub fn server_config(
    cert_der: Vec<u8>,
    key_der: Vec<u8>,
) -> Result<rustls::ServerConfig, rustls::Error> {
    use rustls::pki_types::{PrivateKeyDer, PrivatePkcs8KeyDer};
    rustls::ServerConfig::builder_with_provider(tasjil_sync::tls::provider())
        .with_safe_default_protocol_versions()?
        .with_no_client_auth()
        .with_single_cert(
            vec![rustls::pki_types::CertificateDer::from(cert_der)],
            PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(key_der)),
        )
}

/// Server configuration presenting the certificate in `dir` (`tls-cert.der`, `tls-key.der`), and
/// the one found there later: after `keys switch-tls` the next handshake presents the new
/// certificate, without a restart (the files are looked at on each handshake; a pair that does not
/// load, such as one caught half-renamed, leaves the last good one in service).
pub fn server_config_in(dir: &Path) -> anyhow::Result<rustls::ServerConfig> {
    let resolver = DirCert {
        dir: dir.to_path_buf(),
        current: std::sync::Mutex::new(load_pair(dir)?),
    };
    Ok(
        rustls::ServerConfig::builder_with_provider(tasjil_sync::tls::provider())
            .with_safe_default_protocol_versions()?
            .with_no_client_auth()
            .with_cert_resolver(std::sync::Arc::new(resolver)),
    )
}

/// What identifies the certificate file's contents cheaply: inode and modification time (a
/// switch renames a new file into place).
type FileStamp = Option<(u64, std::time::SystemTime)>;

fn stamp(path: &Path) -> FileStamp {
    use std::os::unix::fs::MetadataExt;
    let m = std::fs::metadata(path).ok()?;
    Some((m.ino(), m.modified().ok()?))
}

type Loaded = (FileStamp, std::sync::Arc<rustls::sign::CertifiedKey>);

fn load_pair(dir: &Path) -> anyhow::Result<Loaded> {
    use rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer};
    let read = |name: &str| {
        std::fs::read(dir.join(name)).with_context(|| {
            format!(
                "cannot read {} (the centre's TLS certificate, made by tasjil-central init)",
                dir.join(name).display()
            )
        })
    };
    let before = stamp(&dir.join(CERT_FILE));
    let cert = read(CERT_FILE)?;
    let key = read(KEY_FILE)?;
    let certified = rustls::sign::CertifiedKey::from_der(
        vec![CertificateDer::from(cert)],
        PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(key)),
        &tasjil_sync::tls::provider(),
    )
    .map_err(|e| anyhow::anyhow!("the TLS certificate and key in {}: {e}", dir.display()))?;
    Ok((before, std::sync::Arc::new(certified)))
}

#[derive(Debug)]
struct DirCert {
    dir: std::path::PathBuf,
    current: std::sync::Mutex<Loaded>,
}

impl rustls::server::ResolvesServerCert for DirCert {
    fn resolve(
        &self,
        _hello: rustls::server::ClientHello<'_>,
    ) -> Option<std::sync::Arc<rustls::sign::CertifiedKey>> {
        let mut current = self.current.lock().unwrap_or_else(|p| p.into_inner());
        if stamp(&self.dir.join(CERT_FILE)) != current.0 {
            match load_pair(&self.dir) {
                Ok(loaded) => {
                    tracing::info!(
                        sha256 = %tasjil_sync::tls::fingerprint(loaded.1.end_entity_cert().map_or(&[][..], |c| c.as_ref())),
                        "TLS certificate in service changed"
                    );
                    *current = loaded;
                }
                Err(e) => {
                    tracing::warn!(error = %e, "the TLS certificate on disk does not load; the last good one stays in service")
                }
            }
        }
        Some(current.1.clone())
    }
}

/// The certificate `serve` presents, and its private key (PKCS#8), in the data directory.
pub const CERT_FILE: &str = "tls-cert.der";
pub const KEY_FILE: &str = "tls-key.der";
/// The announced next certificate and its key, until `keys switch-tls` puts them in service.
pub const NEXT_CERT_FILE: &str = "tls-cert.next.der";
pub const NEXT_KEY_FILE: &str = "tls-key.next.der";

/// A certificate file, PEM (`-----BEGIN CERTIFICATE-----`) or DER: its DER.
pub fn read_cert(path: &Path) -> anyhow::Result<Vec<u8>> {
    use rustls::pki_types::pem::PemObject;
    let bytes = std::fs::read(path).with_context(|| format!("cannot read {}", path.display()))?;
    if bytes.starts_with(b"-----BEGIN") {
        let cert = rustls::pki_types::CertificateDer::from_pem_slice(&bytes)
            .map_err(|e| anyhow::anyhow!("{} holds no PEM certificate: {e}", path.display()))?;
        Ok(cert.to_vec())
    } else {
        Ok(bytes)
    }
}

/// A private key file, PEM PKCS#8 (`-----BEGIN PRIVATE KEY-----`) or PKCS#8 DER: its DER.
pub fn read_key(path: &Path) -> anyhow::Result<Vec<u8>> {
    use rustls::pki_types::pem::PemObject;
    use rustls::pki_types::PrivateKeyDer;
    let bytes = std::fs::read(path).with_context(|| format!("cannot read {}", path.display()))?;
    if !bytes.starts_with(b"-----BEGIN") {
        return Ok(bytes);
    }
    match PrivateKeyDer::from_pem_slice(&bytes)
        .map_err(|e| anyhow::anyhow!("{} holds no PEM private key: {e}", path.display()))?
    {
        PrivateKeyDer::Pkcs8(k) => Ok(k.secret_pkcs8_der().to_vec()),
        _ => bail!(
            "{} is not a PKCS#8 key: convert it with `openssl pkcs8 -topk8 -nocrypt -in {} -out key.pem`",
            path.display(),
            path.display()
        ),
    }
}

/// The certificate and key make a working server configuration (the key is the certificate's).
fn check_pair(cert: &[u8], key: &[u8], what: &str) -> anyhow::Result<()> {
    server_config(cert.to_vec(), key.to_vec())
        .map(|_| ())
        .map_err(|e| {
            anyhow::anyhow!("{what}: the certificate and key cannot be served together: {e}")
        })
}

/// Replace `name` in `dir` with `bytes` (mode `mode`), through a temporary file and a rename.
fn put_file(dir: &Path, name: &str, bytes: &[u8], mode: u32) -> anyhow::Result<()> {
    let tmp = dir.join(format!("{name}.tmp"));
    let _ = std::fs::remove_file(&tmp);
    tasjil_sync::keys::write_new_file(&tmp, bytes, mode)?;
    std::fs::rename(&tmp, dir.join(name))
        .with_context(|| format!("cannot put {} in place", dir.join(name).display()))
}

fn pin_of_file(path: &Path) -> Option<String> {
    std::fs::read(path)
        .ok()
        .map(|der| tasjil_sync::tls::fingerprint(&der))
}

/// What `keys announce-tls` or `keys switch-tls` did.
#[derive(Debug, Clone, serde::Serialize)]
pub struct TlsChange {
    /// The key set version the change was issued as.
    pub version: u64,
    /// The certificate in service (what `serve` presents after its next start).
    pub current_sha256: Option<String>,
    /// The announced next certificate, if any.
    pub next_sha256: Vec<String>,
    /// The announced certificate was made here (not given with --cert/--key).
    pub generated: bool,
}

/// Finish a TLS change that was recorded as a rotation but whose files or `centre.pub` were not
/// all written (a run cut short): the rotation is already what vans receive, so the files follow
/// it. A recorded rotation of the signing keys is left to `keys rotate`.
pub fn finish_recorded(dir: &Path, store: &CentreStore) -> anyhow::Result<()> {
    let pub_path = dir.join("centre.pub");
    let held = CentrePublic::load(&pub_path)?;
    let Some(bytes) = store.rotations_after(held.version)?.into_iter().next() else {
        return Ok(());
    };
    let rotation = KeyRotation::from_bytes(&bytes)?;
    let next = rotation.body.centre;
    if next.ed25519 != held.ed25519 {
        return Ok(());
    }
    if next.tls_cert_sha256 != held.tls_cert_sha256 {
        let want = next.tls_cert_sha256.clone().unwrap_or_default();
        if pin_of_file(&dir.join(NEXT_CERT_FILE)).as_deref() == Some(want.as_str()) {
            // (A run cut between the two renames has moved the key already.)
            if dir.join(NEXT_KEY_FILE).exists() {
                std::fs::rename(dir.join(NEXT_KEY_FILE), dir.join(KEY_FILE))
                    .with_context(|| format!("cannot put {NEXT_KEY_FILE} in service"))?;
            }
            std::fs::rename(dir.join(NEXT_CERT_FILE), dir.join(CERT_FILE))
                .with_context(|| format!("cannot put {NEXT_CERT_FILE} in service"))?;
        } else if pin_of_file(&dir.join(CERT_FILE)).as_deref() != Some(want.as_str()) {
            bail!(
                "key set version {} switches to TLS certificate {want}, but neither {CERT_FILE} nor {NEXT_CERT_FILE} in {} is that certificate: restore it from the backup",
                next.version,
                dir.display()
            );
        }
    }
    std::fs::write(&pub_path, next.to_json())
        .with_context(|| format!("cannot write {}", pub_path.display()))?;
    Ok(())
}

/// The key set `centre.pub` holds, once nothing recorded is left unfinished.
fn held_set(dir: &Path, store: &CentreStore) -> anyhow::Result<CentrePublic> {
    finish_recorded(dir, store)?;
    let held = CentrePublic::load(&dir.join("centre.pub"))?;
    if let Some(bytes) = store.rotations_after(held.version)?.first() {
        let version = KeyRotation::from_bytes(bytes)?.body.centre.version;
        bail!(
            "a rotation of the centre's keys to version {version} is recorded but not finished: run `tasjil-central keys rotate` to finish it first"
        );
    }
    Ok(held)
}

/// Sign `next` with the current key, record it (what vans receive from now on), then write
/// `centre.pub`.
fn issue(
    dir: &Path,
    store: &CentreStore,
    signing: &SigningKey,
    next: CentrePublic,
    now_ms: i64,
) -> anyhow::Result<()> {
    let rotation = KeyRotation::sign(next.clone(), now_ms, signing)?;
    store.record_rotation(next.version, &rotation.to_bytes()?, now_ms)?;
    finish_recorded(dir, store)
}

/// `keys announce-tls`: keep `cert` and `key` (or a new self-signed pair) as the next certificate
/// and issue a key set, signed by the current key, that pins it as well as the one in service.
pub fn announce(
    dir: &Path,
    store: &CentreStore,
    signing: &SigningKey,
    given: Option<(&Path, &Path)>,
    now_ms: i64,
) -> anyhow::Result<TlsChange> {
    let held = held_set(dir, store)?;
    anyhow::ensure!(
        hex::encode(signing.verifying_key().as_bytes()) == held.ed25519,
        "centre.key does not hold the signing key of centre.pub"
    );
    let (cert, key, generated) = match given {
        Some((c, k)) => (read_cert(c)?, read_key(k)?, false),
        None => {
            let (c, k) = self_signed().map_err(anyhow::Error::msg)?;
            (c, k, true)
        }
    };
    check_pair(&cert, &key, "the next certificate")?;
    let pin = tasjil_sync::tls::fingerprint(&cert);
    if held.tls_cert_sha256.as_deref() == Some(pin.as_str()) {
        bail!("that certificate ({pin}) is the one in service already");
    }
    if held.tls_next_sha256 == [pin.clone()]
        && pin_of_file(&dir.join(NEXT_CERT_FILE)).as_deref() == Some(pin.as_str())
    {
        bail!("that certificate ({pin}) is announced already (key set version {}): once vans have synced, run `tasjil-central keys switch-tls`", held.version);
    }
    put_file(dir, NEXT_KEY_FILE, &key, 0o600)?;
    put_file(dir, NEXT_CERT_FILE, &cert, 0o644)?;
    let mut next = held.clone();
    next.version = held.version + 1;
    // A later announcement replaces an earlier one: only one certificate waits.
    next.tls_next_sha256 = vec![pin.clone()];
    issue(dir, store, signing, next.clone(), now_ms)?;
    Ok(TlsChange {
        version: next.version,
        current_sha256: next.tls_cert_sha256,
        next_sha256: next.tls_next_sha256,
        generated,
    })
}

/// `keys switch-tls`: put the announced certificate in service and issue a key set that pins it
/// alone. `serve` presents it from its next start.
pub fn switch(
    dir: &Path,
    store: &CentreStore,
    signing: &SigningKey,
    now_ms: i64,
) -> anyhow::Result<TlsChange> {
    let held = held_set(dir, store)?;
    anyhow::ensure!(
        hex::encode(signing.verifying_key().as_bytes()) == held.ed25519,
        "centre.key does not hold the signing key of centre.pub"
    );
    let (next_cert, next_key) = (dir.join(NEXT_CERT_FILE), dir.join(NEXT_KEY_FILE));
    let pin = match pin_of_file(&next_cert) {
        Some(pin) if held.tls_next_sha256.contains(&pin) => pin,
        Some(pin) => bail!(
            "{} ({pin}) was never announced to the vans: run `tasjil-central keys announce-tls` first",
            next_cert.display()
        ),
        None => bail!(
            "no announced certificate to switch to ({} is missing): run `tasjil-central keys announce-tls` first, and switch once the vans have synced",
            next_cert.display()
        ),
    };
    let key =
        std::fs::read(&next_key).with_context(|| format!("cannot read {}", next_key.display()))?;
    check_pair(
        &std::fs::read(&next_cert)?,
        &key,
        "the announced certificate",
    )?;
    let mut next = held.clone();
    next.version = held.version + 1;
    next.tls_cert_sha256 = Some(pin);
    next.tls_next_sha256.clear();
    issue(dir, store, signing, next.clone(), now_ms)?;
    Ok(TlsChange {
        version: next.version,
        current_sha256: next.tls_cert_sha256,
        next_sha256: next.tls_next_sha256,
        generated: false,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use tasjil_sync::CentreKeys;

    #[test]
    fn certificates_and_keys_read_alike_from_pem_and_der() {
        let dir = tempfile::tempdir().unwrap();
        let made = rcgen::generate_simple_self_signed(vec!["centre.example".into()]).unwrap();
        let p = |name: &str, bytes: &[u8]| {
            let path = dir.path().join(name);
            std::fs::write(&path, bytes).unwrap();
            path
        };
        let cert_pem = p("c.pem", made.cert.pem().as_bytes());
        let key_pem = p("k.pem", made.signing_key.serialize_pem().as_bytes());
        let cert_der = p("c.der", made.cert.der());
        assert_eq!(read_cert(&cert_pem).unwrap(), made.cert.der().to_vec());
        assert_eq!(read_cert(&cert_der).unwrap(), made.cert.der().to_vec());
        let key = read_key(&key_pem).unwrap();
        assert_eq!(key, made.signing_key.serialize_der());
        check_pair(&read_cert(&cert_pem).unwrap(), &key, "test").unwrap();
        let other = rcgen::generate_simple_self_signed(vec!["x".into()]).unwrap();
        let err = check_pair(made.cert.der(), &other.signing_key.serialize_der(), "test")
            .unwrap_err()
            .to_string();
        assert!(err.contains("cannot be served together"), "{err}");
        let junk = p(
            "junk.pem",
            b"-----BEGIN NOTHING-----\n-----END NOTHING-----\n",
        );
        assert!(read_cert(&junk).is_err());
        assert!(read_key(&junk).is_err());
    }

    /// A switch recorded (what vans receive) but cut before its files moved and centre.pub was
    /// written is finished by the next command, so `serve` presents what the vans were told.
    #[test]
    fn a_switch_cut_short_is_finished_by_the_next_run() {
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path();
        let store = CentreStore::open(dir).unwrap();
        let keys = CentreKeys::generate();
        let (cert, key) = self_signed().unwrap();
        std::fs::write(dir.join(CERT_FILE), &cert).unwrap();
        std::fs::write(dir.join(KEY_FILE), &key).unwrap();
        let mut public = keys.public();
        public.tls_cert_sha256 = Some(tasjil_sync::tls::fingerprint(&cert));
        std::fs::write(dir.join("centre.pub"), public.to_json()).unwrap();

        // Switching with nothing announced is refused; announcing issues version 1.
        assert!(switch(dir, &store, &keys.signing, 1).is_err());
        let a = announce(dir, &store, &keys.signing, None, 2).unwrap();
        assert_eq!((a.version, a.generated), (1, true));
        let next_cert = std::fs::read(dir.join(NEXT_CERT_FILE)).unwrap();
        assert_eq!(
            a.next_sha256,
            vec![tasjil_sync::tls::fingerprint(&next_cert)]
        );
        // Signed by another key: refused before anything is written.
        let stranger = CentreKeys::generate();
        assert!(announce(dir, &store, &stranger.signing, None, 3).is_err());
        assert_eq!(
            CentrePublic::load(&dir.join("centre.pub")).unwrap().version,
            1
        );

        // The switch's rotation recorded, then the run cut.
        let mut next = CentrePublic::load(&dir.join("centre.pub")).unwrap();
        next.version = 2;
        next.tls_cert_sha256 = next.tls_next_sha256.pop();
        let r = KeyRotation::sign(next.clone(), 4, &keys.signing).unwrap();
        store.record_rotation(2, &r.to_bytes().unwrap(), 4).unwrap();

        finish_recorded(dir, &store).unwrap();
        assert_eq!(CentrePublic::load(&dir.join("centre.pub")).unwrap(), next);
        assert_eq!(std::fs::read(dir.join(CERT_FILE)).unwrap(), next_cert);
        assert!(!dir.join(NEXT_CERT_FILE).exists() && !dir.join(NEXT_KEY_FILE).exists());
        check_pair(
            &std::fs::read(dir.join(CERT_FILE)).unwrap(),
            &std::fs::read(dir.join(KEY_FILE)).unwrap(),
            "switched",
        )
        .unwrap();
        // Finished once: nothing more to do.
        finish_recorded(dir, &store).unwrap();
        assert_eq!(
            CentrePublic::load(&dir.join("centre.pub")).unwrap().version,
            2
        );
    }
}
