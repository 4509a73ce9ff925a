//! `tasjil update`: install a new station release from a USB stick, with no network.
//!
//! A release is the `tasjil` Debian package (`scripts/package`) plus a detached signature next to
//! it, `FILE.sig`: a small JSON manifest (package, version, SHA-256 and size of the `.deb`) signed
//! with the project's Ed25519 release key (`tasjil update keygen`, `tasjil update sign`). A
//! station trusts exactly one release key, `/etc/tasjil/release.pub` (`--release-key` or
//! `TASJIL_RELEASE_KEY` elsewhere). Before anything is installed the `.deb` is copied off the
//! stick into a private file, and that copy is what is hashed, checked against the package's own
//! control fields and handed to the installer (`dpkg -i`, or `TASJIL_UPDATE_INSTALLER` for tests),
//! so a stick that changes under us cannot swap the bytes after the check.
//!
//! Refusals are named (`Refusal::name`): `no-release-key`, `unsigned`, `bad-signature-file`,
//! `untrusted-key`, `bad-signature`, `tampered`, `wrong-package`, `manifest-mismatch`,
//! `not-newer`. The store is never touched: the package's files live outside the data directory,
//! and `tasjil update` checks that the station's store is still there afterwards.
//!
//! Not done: the kiosk's supervisor view does not offer updates yet (the kiosk runs as the
//! unprivileged `tasjil` user and would need a privileged helper to run `dpkg`); there is no
//! rotation or revocation of the release key beyond replacing `/etc/tasjil/release.pub`.

use std::cmp::Ordering;
use std::io::Write;
use std::path::{Path, PathBuf};

use anyhow::{bail, Context};
use ed25519_dalek::{Signer, SigningKey, VerifyingKey};
use serde::{Deserialize, Serialize};
use serde_json::json;
use tasjil_sync::output::Output;

use crate::station::DataDir;

/// The release key a packaged station trusts.
pub const DEFAULT_RELEASE_KEY: &str = "/etc/tasjil/release.pub";
/// The only package a station installs this way.
pub const PACKAGE: &str = "tasjil";
const FORMAT: &str = "tasjil-update-v1";
const SECRET_HEADER: &str = "tasjil-release-secret-v1";
const PUBLIC_KIND: &str = "tasjil-release-key";
/// Larger than any station package will ever be; a bigger file is not read into memory.
const MAX_DEB_BYTES: u64 = 1 << 30;

#[derive(Debug, clap::Args)]
#[command(args_conflicts_with_subcommands = true, subcommand_negates_reqs = true)]
pub struct UpdateCommand {
    #[command(subcommand)]
    action: Option<UpdateAction>,
    /// The station package to install (`tasjil_<version>_<arch>.deb`); its signature is read
    /// from FILE.sig next to it.
    #[arg(value_name = "FILE", required = true)]
    file: Option<PathBuf>,
    /// The signature file (default: FILE.sig).
    #[arg(long, value_name = "SIG")]
    signature: Option<PathBuf>,
    /// The release public key this station trusts.
    #[arg(long, value_name = "KEY", env = "TASJIL_RELEASE_KEY", default_value = DEFAULT_RELEASE_KEY)]
    release_key: PathBuf,
    /// Check signature, hash and version, and install nothing.
    #[arg(long)]
    check: bool,
}

#[derive(Debug, clap::Subcommand)]
enum UpdateAction {
    /// Sign a station package with the release key: writes DEB.sig next to it.
    Sign {
        /// The release secret key (`tasjil update keygen`).
        #[arg(long, value_name = "KEYFILE")]
        key: PathBuf,
        /// The package to sign.
        #[arg(value_name = "DEB")]
        deb: PathBuf,
        /// Where to write the signature (default: DEB.sig).
        #[arg(long, value_name = "SIG")]
        out: Option<PathBuf>,
    },
    /// Make a release key pair: OUT (secret, mode 0600: keep it off every station) and OUT.pub
    /// (install it as /etc/tasjil/release.pub on every station).
    Keygen {
        #[arg(value_name = "OUT")]
        out: PathBuf,
    },
}

/// What the signature vouches for.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Manifest {
    pub format: String,
    pub package: String,
    /// The Debian version of the package (`0.2.0-1`).
    pub version: String,
    /// Lower-case hex SHA-256 of the whole `.deb`.
    pub sha256: String,
    pub size: u64,
}

/// `FILE.sig`: the manifest, the public key that signed it, and the signature (hex) over the
/// manifest's RFC 8785 canonical JSON.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SignatureFile {
    pub manifest: Manifest,
    pub key: String,
    pub signature: String,
}

/// Why an update was refused. `name()` is what scripts and the JSON output rely on.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum Refusal {
    #[error("this station trusts no release key: {0} cannot be read (install the release public key there, see docs/INSTALL.md)")]
    NoReleaseKey(String),
    #[error("no signature: {0} is missing; an update is installed only with the release signature next to it")]
    Unsigned(String),
    #[error("the signature file {path} is not valid: {reason}")]
    BadSignatureFile { path: String, reason: String },
    #[error("signed by key {found}, but this station trusts only release key {trusted}")]
    UntrustedKey { found: String, trusted: String },
    #[error(
        "the signature does not match the manifest: the manifest or the signature was altered"
    )]
    BadSignature,
    #[error("the package does not match its signed manifest ({what}): the file was altered or damaged; ask for a new copy")]
    Tampered { what: String },
    #[error("the signed package is {0:?}, not the station package {PACKAGE:?}")]
    WrongPackage(String),
    #[error("the package says it is {found} but its manifest says {signed}: it was signed by mistake; ask for a correctly signed one")]
    ManifestMismatch { found: String, signed: String },
    #[error("version {candidate} is not newer than the installed {installed}: nothing to do (an older release is never installed over a newer one)")]
    NotNewer {
        candidate: String,
        installed: String,
    },
}

impl Refusal {
    pub fn name(&self) -> &'static str {
        match self {
            Refusal::NoReleaseKey(_) => "no-release-key",
            Refusal::Unsigned(_) => "unsigned",
            Refusal::BadSignatureFile { .. } => "bad-signature-file",
            Refusal::UntrustedKey { .. } => "untrusted-key",
            Refusal::BadSignature => "bad-signature",
            Refusal::Tampered { .. } => "tampered",
            Refusal::WrongPackage(_) => "wrong-package",
            Refusal::ManifestMismatch { .. } => "manifest-mismatch",
            Refusal::NotNewer { .. } => "not-newer",
        }
    }
}

/// The release signing key. `Debug` shows only the public half.
pub struct ReleaseKey(SigningKey);

impl std::fmt::Debug for ReleaseKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "ReleaseKey(public {})",
            hex::encode(self.0.verifying_key().as_bytes())
        )
    }
}

#[derive(Debug, Serialize, Deserialize)]
struct PublicFile {
    kind: String,
    ed25519: String,
}

impl ReleaseKey {
    pub fn generate() -> ReleaseKey {
        ReleaseKey(SigningKey::generate(&mut rand_core::OsRng))
    }

    pub fn public(&self) -> VerifyingKey {
        self.0.verifying_key()
    }

    /// Write `path` (secret, 0600) and `path.pub`; refuses to overwrite either.
    pub fn save(&self, path: &Path) -> anyhow::Result<PathBuf> {
        let public = pub_path(path);
        if public.exists() {
            bail!(
                "{} already exists; refusing to overwrite a key",
                public.display()
            );
        }
        let secret = format!("{SECRET_HEADER}\n{}\n", hex::encode(self.0.to_bytes()));
        tasjil_sync::keys::write_new_file(path, secret.as_bytes(), 0o600)?;
        let text = serde_json::to_string_pretty(&PublicFile {
            kind: PUBLIC_KIND.into(),
            ed25519: hex::encode(self.public().as_bytes()),
        })? + "\n";
        tasjil_sync::keys::write_new_file(&public, text.as_bytes(), 0o644)?;
        Ok(public)
    }

    pub fn load(path: &Path) -> anyhow::Result<ReleaseKey> {
        let text = std::fs::read_to_string(path)
            .with_context(|| format!("cannot read the release key {}", path.display()))?;
        let mut lines = text.lines();
        if lines.next() != Some(SECRET_HEADER) {
            bail!(
                "{} is not a release secret key (first line must be {SECRET_HEADER})",
                path.display()
            );
        }
        let seed: [u8; 32] = hex::decode(lines.next().unwrap_or_default().trim())
            .ok()
            .and_then(|b| b.try_into().ok())
            .with_context(|| format!("{}: the key is not 32 bytes of hex", path.display()))?;
        Ok(ReleaseKey(SigningKey::from_bytes(&seed)))
    }

    /// The signature file for a package whose bytes are `deb` and control fields `control`.
    pub fn sign(&self, deb: &[u8], control: &Control) -> anyhow::Result<SignatureFile> {
        let manifest = Manifest {
            format: FORMAT.into(),
            package: control.package.clone(),
            version: control.version.clone(),
            sha256: tasjil_sync::sha256_hex(deb),
            size: deb.len() as u64,
        };
        let message = tasjil_sync::to_canonical(&manifest)?;
        Ok(SignatureFile {
            manifest,
            key: hex::encode(self.public().as_bytes()),
            signature: hex::encode(self.0.sign(&message).to_bytes()),
        })
    }
}

fn pub_path(secret: &Path) -> PathBuf {
    let mut name = secret.as_os_str().to_os_string();
    name.push(".pub");
    PathBuf::from(name)
}

/// The trusted release public key (`release.pub`).
pub fn load_public(path: &Path) -> Result<VerifyingKey, Refusal> {
    let text = std::fs::read_to_string(path)
        .map_err(|e| Refusal::NoReleaseKey(format!("{} ({e})", path.display())))?;
    let file: PublicFile = serde_json::from_str(&text).map_err(|e| {
        Refusal::NoReleaseKey(format!("{} (not a release key: {e})", path.display()))
    })?;
    if file.kind != PUBLIC_KIND {
        return Err(Refusal::NoReleaseKey(format!(
            "{} (kind {:?}, expected {PUBLIC_KIND:?})",
            path.display(),
            file.kind
        )));
    }
    tasjil_sync::keys::parse_verifying_key(&file.ed25519)
        .map_err(|e| Refusal::NoReleaseKey(format!("{} ({e})", path.display())))
}

/// A package's own `Package` and `Version` control fields.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Control {
    pub package: String,
    pub version: String,
}

/// `dpkg-deb --field FILE Package Version`.
pub fn read_control(deb: &Path) -> anyhow::Result<Control> {
    let out = std::process::Command::new("dpkg-deb")
        .arg("--field")
        .arg(deb)
        .args(["Package", "Version"])
        .output()
        .context("cannot run dpkg-deb (package dpkg) to read the package's control fields")?;
    if !out.status.success() {
        bail!(
            "{} is not a Debian package: {}",
            deb.display(),
            String::from_utf8_lossy(&out.stderr).trim()
        );
    }
    let text = String::from_utf8_lossy(&out.stdout);
    let field = |name: &str| {
        text.lines()
            .find_map(|l| l.strip_prefix(name)?.strip_prefix(':'))
            .map(|v| v.trim().to_string())
            .with_context(|| format!("{} has no {name} field", deb.display()))
    };
    Ok(Control {
        package: field("Package")?,
        version: field("Version")?,
    })
}

/// Every check, in order, on bytes already read: the signature file against the trusted key,
/// the package bytes against the manifest, the package's control fields against the manifest,
/// and the version against the installed one. Pure: no file, no clock, no process.
pub fn check(
    sig_path: &str,
    sig_text: &str,
    trusted: &VerifyingKey,
    deb: &[u8],
    control: &Control,
    installed: &str,
) -> Result<Manifest, Refusal> {
    let bad_file = |reason: String| Refusal::BadSignatureFile {
        path: sig_path.to_string(),
        reason,
    };
    let sig: SignatureFile = serde_json::from_str(sig_text)
        .map_err(|e| bad_file(format!("not the expected JSON: {e}")))?;
    if sig.manifest.format != FORMAT {
        return Err(bad_file(format!(
            "format {:?}, expected {FORMAT:?}",
            sig.manifest.format
        )));
    }
    let trusted_hex = hex::encode(trusted.as_bytes());
    if !sig.key.eq_ignore_ascii_case(&trusted_hex) {
        return Err(Refusal::UntrustedKey {
            found: sig.key.clone(),
            trusted: trusted_hex,
        });
    }
    let signature = tasjil_sync::keys::parse_signature(&sig.signature).map_err(bad_file)?;
    let message =
        tasjil_sync::to_canonical(&sig.manifest).map_err(|e| bad_file(format!("manifest: {e}")))?;
    if !tasjil_sync::keys::verify(trusted, &message, &signature) {
        return Err(Refusal::BadSignature);
    }
    let m = sig.manifest;
    if deb.len() as u64 != m.size {
        return Err(Refusal::Tampered {
            what: format!("{} bytes, signed for {}", deb.len(), m.size),
        });
    }
    let sha = tasjil_sync::sha256_hex(deb);
    if !sha.eq_ignore_ascii_case(&m.sha256) {
        return Err(Refusal::Tampered {
            what: format!("SHA-256 {sha}, signed for {}", m.sha256),
        });
    }
    if m.package != PACKAGE {
        return Err(Refusal::WrongPackage(m.package));
    }
    if control.package != m.package || control.version != m.version {
        return Err(Refusal::ManifestMismatch {
            found: format!("{} {}", control.package, control.version),
            signed: format!("{} {}", m.package, m.version),
        });
    }
    if compare_versions(&m.version, installed) != Ordering::Greater {
        return Err(Refusal::NotNewer {
            candidate: m.version,
            installed: installed.to_string(),
        });
    }
    Ok(m)
}

/// Debian version order (deb-version(7)): epoch, then upstream version, then revision, each
/// compared as alternating runs of non-digits (letters before other characters, `~` before
/// everything, even the end) and numbers.
pub fn compare_versions(a: &str, b: &str) -> Ordering {
    fn split(v: &str) -> (u64, &str, &str) {
        let (epoch, rest) = match v.split_once(':') {
            Some((e, r)) if e.chars().all(|c| c.is_ascii_digit()) => (e.parse().unwrap_or(0), r),
            _ => (0, v),
        };
        match rest.rsplit_once('-') {
            Some((up, rev)) => (epoch, up, rev),
            None => (epoch, rest, ""),
        }
    }
    fn order(c: Option<u8>) -> i32 {
        match c {
            None => 0,
            Some(b'~') => -1,
            Some(c) if c.is_ascii_alphabetic() => i32::from(c),
            Some(c) => i32::from(c) + 256,
        }
    }
    fn part(mut a: &[u8], mut b: &[u8]) -> Ordering {
        while !a.is_empty() || !b.is_empty() {
            // Non-digit run.
            loop {
                let (ca, cb) = (a.first().copied(), b.first().copied());
                let da = ca.is_none_or(|c| c.is_ascii_digit());
                let db = cb.is_none_or(|c| c.is_ascii_digit());
                if da && db {
                    break;
                }
                let (oa, ob) = (
                    if da { 0 } else { order(ca) },
                    if db { 0 } else { order(cb) },
                );
                if oa != ob {
                    return oa.cmp(&ob);
                }
                a = &a[usize::from(!da)..];
                b = &b[usize::from(!db)..];
            }
            // Digit run, compared as a number (leading zeros do not count).
            let na = a.iter().take_while(|c| c.is_ascii_digit()).count();
            let nb = b.iter().take_while(|c| c.is_ascii_digit()).count();
            let (xa, xb) = (trim_zeros(&a[..na]), trim_zeros(&b[..nb]));
            let o = xa.len().cmp(&xb.len()).then_with(|| xa.cmp(xb));
            if o != Ordering::Equal {
                return o;
            }
            a = &a[na..];
            b = &b[nb..];
        }
        Ordering::Equal
    }
    fn trim_zeros(d: &[u8]) -> &[u8] {
        let n = d.iter().take_while(|&&c| c == b'0').count();
        &d[n..]
    }
    let (ea, ua, ra) = split(a);
    let (eb, ub, rb) = split(b);
    ea.cmp(&eb)
        .then_with(|| part(ua.as_bytes(), ub.as_bytes()))
        .then_with(|| part(ra.as_bytes(), rb.as_bytes()))
}

/// The version a new package must beat: what dpkg has installed, else this binary's own.
fn installed_version() -> String {
    let dpkg = std::process::Command::new("dpkg-query")
        .args(["--show", "--showformat=${Version}", PACKAGE])
        .output();
    match dpkg {
        Ok(out) if out.status.success() && !out.stdout.is_empty() => {
            String::from_utf8_lossy(&out.stdout).trim().to_string()
        }
        _ => env!("CARGO_PKG_VERSION").to_string(),
    }
}

/// The installer command: `TASJIL_UPDATE_INSTALLER` (split on whitespace) or `dpkg -i`; the
/// package's path is appended.
fn installer() -> Vec<String> {
    match std::env::var("TASJIL_UPDATE_INSTALLER") {
        Ok(v) if !v.trim().is_empty() => v.split_whitespace().map(String::from).collect(),
        _ => vec!["dpkg".into(), "-i".into()],
    }
}

/// `tasjil update ...`
pub fn run(dir: &DataDir, command: UpdateCommand) -> anyhow::Result<Output> {
    match command.action {
        Some(UpdateAction::Keygen { out }) => {
            let key = ReleaseKey::generate();
            let public = key.save(&out)?;
            let hex_key = hex::encode(key.public().as_bytes());
            Ok(Output::ok(
                json!({"secret": out, "public": public, "ed25519": hex_key}),
                format!(
                    "release key made: {} (secret, keep it off the stations) and {}\n  public key: {hex_key}\n  install {} as {DEFAULT_RELEASE_KEY} on every station",
                    out.display(),
                    public.display(),
                    public.display()
                ),
            ))
        }
        Some(UpdateAction::Sign { key, deb, out }) => {
            let key = ReleaseKey::load(&key)?;
            let bytes = read_deb(&deb)?;
            let control = read_control(&deb)?;
            if control.package != PACKAGE {
                bail!(
                    "{} is the package {:?}; only {PACKAGE:?} is updated with `tasjil update`",
                    deb.display(),
                    control.package
                );
            }
            let sig = key.sign(&bytes, &control)?;
            let out = out.unwrap_or_else(|| sig_path(&deb));
            let text = serde_json::to_string_pretty(&sig)? + "\n";
            tasjil_sync::keys::write_new_file(&out, text.as_bytes(), 0o644)?;
            Ok(Output::ok(
                json!({"signature": out, "package": sig.manifest.package,
                       "version": sig.manifest.version, "sha256": sig.manifest.sha256}),
                format!(
                    "signed {} {} ({}): {}",
                    sig.manifest.package,
                    sig.manifest.version,
                    deb.display(),
                    out.display()
                ),
            ))
        }
        None => {
            let file = command
                .file
                .context("tasjil update needs the package FILE")?;
            let sig = command.signature.unwrap_or_else(|| sig_path(&file));
            install(dir, &file, &sig, &command.release_key, command.check)
        }
    }
}

fn sig_path(deb: &Path) -> PathBuf {
    let mut name = deb.as_os_str().to_os_string();
    name.push(".sig");
    PathBuf::from(name)
}

fn read_deb(path: &Path) -> anyhow::Result<Vec<u8>> {
    let meta =
        std::fs::metadata(path).with_context(|| format!("cannot read {}", path.display()))?;
    if meta.len() > MAX_DEB_BYTES {
        bail!(
            "{} is {} bytes: far larger than a station package",
            path.display(),
            meta.len()
        );
    }
    std::fs::read(path).with_context(|| format!("cannot read {}", path.display()))
}

fn refused(r: &Refusal) -> Output {
    Output {
        ok: false,
        json: json!({"ok": false, "installed": false, "refused": r.name(), "reason": r.to_string()}),
        human: format!("update REFUSED ({}): {r}", r.name()),
    }
}

fn install(
    dir: &DataDir,
    file: &Path,
    sig: &Path,
    release_key: &Path,
    check_only: bool,
) -> anyhow::Result<Output> {
    let trusted = match load_public(release_key) {
        Ok(k) => k,
        Err(r) => return Ok(refused(&r)),
    };
    let sig_text = match std::fs::read_to_string(sig) {
        Ok(t) => t,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            return Ok(refused(&Refusal::Unsigned(sig.display().to_string())))
        }
        Err(e) => return Err(e).with_context(|| format!("cannot read {}", sig.display())),
    };
    // The private copy is what gets checked and installed.
    let bytes = read_deb(file)?;
    let mut copy = tempfile::Builder::new()
        .prefix("tasjil-update-")
        .suffix(".deb")
        .tempfile()
        .context("cannot make a private copy of the package")?;
    copy.write_all(&bytes)
        .and_then(|()| copy.as_file().sync_all())
        .context("cannot make a private copy of the package")?;
    let control = match read_control(copy.path()) {
        Ok(c) => c,
        // Not even a package: the bytes are not what anyone signed, or the signature says so.
        Err(e) => Control {
            package: format!("(unreadable: {e:#})"),
            version: String::new(),
        },
    };
    let installed = installed_version();
    let manifest = match check(
        &sig.display().to_string(),
        &sig_text,
        &trusted,
        &bytes,
        &control,
        &installed,
    ) {
        Ok(m) => m,
        Err(r) => return Ok(refused(&r)),
    };
    let summary = json!({"package": manifest.package, "version": manifest.version,
                         "previous": installed, "sha256": manifest.sha256});
    if check_only {
        let mut j = summary;
        j["ok"] = json!(true);
        j["installed"] = json!(false);
        return Ok(Output::ok(
            j,
            format!(
                "{} {} is signed by the release key and newer than {installed}: it can be installed",
                manifest.package, manifest.version
            ),
        ));
    }
    let had_store = dir.db().exists();
    let mut cmd = installer();
    let program = cmd.remove(0);
    let out = std::process::Command::new(&program)
        .args(&cmd)
        .arg(copy.path())
        .output()
        .with_context(|| format!("cannot run the installer {program:?}"))?;
    if !out.status.success() {
        let stderr = String::from_utf8_lossy(&out.stderr);
        let tail: Vec<&str> = stderr.lines().rev().take(8).collect();
        bail!(
            "the installer ({program} {}) failed with {}: {}",
            cmd.join(" "),
            out.status,
            tail.into_iter().rev().collect::<Vec<_>>().join("\n")
        );
    }
    let store_kept = !had_store || dir.db().exists();
    let mut j = summary;
    j["ok"] = json!(store_kept);
    j["installed"] = json!(true);
    j["store"] = json!(if !had_store {
        "none"
    } else if store_kept {
        "kept"
    } else {
        "missing"
    });
    let mut human = format!(
        "installed {} {} (was {installed})",
        manifest.package, manifest.version
    );
    if had_store {
        human.push_str(&format!(
            "\n  store {}: {}",
            dir.0.display(),
            if store_kept {
                "kept"
            } else {
                "MISSING after the update: restore it from the backup (docs/OPERATIONS.md)"
            }
        ));
    }
    Ok(Output {
        ok: store_kept,
        json: j,
        human,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn control(version: &str) -> Control {
        Control {
            package: PACKAGE.into(),
            version: version.into(),
        }
    }

    #[test]
    fn debian_version_order() {
        use Ordering::*;
        for (a, b, o) in [
            ("0.1.0", "0.1.0", Equal),
            ("0.2.0-1", "0.1.0-1", Greater),
            ("0.1.0-1", "0.1.0", Greater),
            ("0.10.0", "0.9.9", Greater),
            ("1.0~rc1", "1.0", Less),
            ("1:0.1", "2.0", Greater),
            ("0.1.0-2", "0.1.0-10", Less),
            ("1.0a", "1.0", Greater),
            ("1.0+b1", "1.0a", Greater),
            ("01.0", "1.0", Equal),
        ] {
            assert_eq!(compare_versions(a, b), o, "{a} vs {b}");
            assert_eq!(compare_versions(b, a), o.reverse(), "{b} vs {a}");
        }
    }

    #[test]
    fn a_signed_newer_package_passes_and_every_alteration_is_named() {
        let key = ReleaseKey::generate();
        let deb = b"!<arch>\npretend package bytes".to_vec();
        let sig = serde_json::to_string(&key.sign(&deb, &control("0.2.0-1")).unwrap()).unwrap();
        let ok = check(
            "s",
            &sig,
            &key.public(),
            &deb,
            &control("0.2.0-1"),
            "0.1.0-1",
        )
        .unwrap();
        assert_eq!(ok.version, "0.2.0-1");

        let name = |r: Result<Manifest, Refusal>| r.unwrap_err().name();
        let mut tampered = deb.clone();
        tampered[10] ^= 1;
        assert_eq!(
            name(check(
                "s",
                &sig,
                &key.public(),
                &tampered,
                &control("0.2.0-1"),
                "0.1.0"
            )),
            "tampered"
        );
        assert_eq!(
            name(check(
                "s",
                &sig,
                &key.public(),
                &deb,
                &control("0.2.0-1"),
                "0.2.0-1"
            )),
            "not-newer"
        );
        assert_eq!(
            name(check(
                "s",
                &sig,
                &key.public(),
                &deb,
                &control("0.3.0-1"),
                "0.1.0"
            )),
            "manifest-mismatch"
        );
        let other = ReleaseKey::generate();
        assert_eq!(
            name(check(
                "s",
                &sig,
                &other.public(),
                &deb,
                &control("0.2.0-1"),
                "0.1.0"
            )),
            "untrusted-key"
        );
        // The signer's key swapped in with the manifest edited: the signature gives it away.
        let mut forged: SignatureFile = serde_json::from_str(&sig).unwrap();
        forged.manifest.version = "9.9.9-1".into();
        let forged = serde_json::to_string(&forged).unwrap();
        assert_eq!(
            name(check(
                "s",
                &forged,
                &key.public(),
                &deb,
                &control("9.9.9-1"),
                "0.1.0"
            )),
            "bad-signature"
        );
        assert_eq!(
            name(check(
                "s",
                "{",
                &key.public(),
                &deb,
                &control("0.2.0-1"),
                "0.1.0"
            )),
            "bad-signature-file"
        );
        let central = serde_json::to_string(
            &key.sign(
                &deb,
                &Control {
                    package: "tasjil-central".into(),
                    version: "0.2.0-1".into(),
                },
            )
            .unwrap(),
        )
        .unwrap();
        assert_eq!(
            name(check(
                "s",
                &central,
                &key.public(),
                &deb,
                &control("0.2.0-1"),
                "0.1.0"
            )),
            "wrong-package"
        );
    }

    #[test]
    fn keys_round_trip_and_never_overwrite() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("release.key");
        let key = ReleaseKey::generate();
        let public = key.save(&path).unwrap();
        assert_eq!(load_public(&public).unwrap(), key.public());
        assert_eq!(ReleaseKey::load(&path).unwrap().public(), key.public());
        assert!(ReleaseKey::generate().save(&path).is_err());
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(&path).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600);
        assert_eq!(
            load_public(&dir.path().join("missing.pub"))
                .unwrap_err()
                .name(),
            "no-release-key"
        );
        assert!(!format!("{key:?}").contains(&hex::encode(key.0.to_bytes())));
    }
}
