//! Test harness for the PC/SC badge and eID chip tests: makes sure a pcscd with vsmartcard's
//! virtual readers is running, and inserts / pulls out virtual badges and chips (`tasjil-vcard`
//! processes): badges in [`READER`], chips in [`CHIP_READER`].
//!
//! - pcscd: used if one already answers with a "Virtual PCD" reader; otherwise started here as
//!   `pcscd --foreground --auto-exit` (it quits by itself a minute after its last client).
//! - Readiness is always asked of PC/SC (is the card in the reader?), never by connecting to
//!   vpcd's port: vpcd takes any connection there for a card insertion.
//! - When the stack is missing, [`require_stack`] prints a loud SKIPPED banner, or panics when
//!   `CI=true` so that a CI machine without pcscd fails instead of passing silently.
//!
//! This library does not link opcard; only the `tasjil-vcard` binary does.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Mutex, MutexGuard, OnceLock};
use std::time::{Duration, Instant};

use tasjil_drivers::card;
use tasjil_drivers::emrtd::IdentityPage;

/// vpcd's first reader; a card process connecting to port 35963 appears in it.
pub const READER: &str = "Virtual PCD 00 00";
pub const VPCD_PORT: u16 = 35963;

/// vpcd's second reader; a chip process (`tasjil-vcard --emrtd`) connecting to port 35964
/// appears in it.
pub const CHIP_READER: &str = "Virtual PCD 00 01";
pub const CHIP_PORT: u16 = 35964;

/// Admin PIN (PW3) and user PIN (PW1) of a fresh OpenPGP card.
pub const ADMIN_PIN: &str = "12345678";
pub const USER_PIN: &str = "123456";

/// Both virtual readers: card tests take turns.
static SLOT: Mutex<()> = Mutex::new(());
static STACK: OnceLock<Result<(), String>> = OnceLock::new();

/// Exclusive use of the virtual readers while a test runs.
#[derive(Debug)]
pub struct Stack {
    _slot: MutexGuard<'static, ()>,
}

/// The PC/SC stack for one test, or `None` (after a loud banner) when this machine has no
/// pcscd/vpcd. With `CI=true` a missing stack is a failure, not a skip.
pub fn require_stack(test: &str) -> Option<Stack> {
    let slot = SLOT.lock().unwrap_or_else(|p| p.into_inner());
    match STACK.get_or_init(ensure_pcscd) {
        Ok(()) => {
            // The previous test's card may still be on its way out of pcscd's view; a pcscd
            // that has just started may refuse a client for a moment.
            let deadline = Instant::now() + Duration::from_secs(10);
            loop {
                let free = card::wait_for_removal(READER, Duration::from_secs(10))
                    .and_then(|()| card::wait_for_removal(CHIP_READER, Duration::from_secs(10)));
                match free {
                    Ok(()) => break,
                    // The pcscd seen at first was another test binary's, and has since exited
                    // by itself (--auto-exit, 60 s after its last client): start ours.
                    Err(card::BadgeError::NoService(_)) if Instant::now() <= deadline => {
                        if let Err(e) = ensure_pcscd() {
                            panic!("pcscd went away and does not come back: {e}");
                        }
                    }
                    Err(e) if Instant::now() > deadline => {
                        panic!(
                            "the virtual reader is not free: {e} (pcscd log: {})",
                            log_path().display()
                        )
                    }
                    Err(_) => std::thread::sleep(Duration::from_millis(100)),
                }
            }
            Some(Stack { _slot: slot })
        }
        Err(why) => {
            if std::env::var("CI").is_ok_and(|v| v == "true") {
                panic!("CI=true and the PC/SC test stack is missing: {why}");
            }
            eprintln!(
                "\n{bar}\n!! SKIPPED {test}: PC/SC tests need pcscd and vsmartcard-vpcd\n!! ({why})\n\
                 !! install them with scripts/install-deps; CI=true turns this skip into a failure\n{bar}\n",
                bar = "!".repeat(78)
            );
            None
        }
    }
}

/// The `tasjil-vcard` binary that `cargo test --workspace` builds next to the calling test
/// binary (`target/<profile>/tasjil-vcard`). Missing, it is `None` after a loud SKIPPED banner
/// naming `test`, or a failure when `CI=true`.
pub fn card_binary(test: &str) -> Option<PathBuf> {
    let bin = std::env::current_exe()
        .ok()
        .and_then(|exe| Some(exe.parent()?.parent()?.join("tasjil-vcard")))
        .filter(|b| b.exists());
    if bin.is_none() {
        let why = "tasjil-vcard is not built: run `cargo test --workspace`";
        if std::env::var("CI").is_ok_and(|v| v == "true") {
            panic!("CI=true: {test}: {why}");
        }
        eprintln!("\n!!!!!!!! SKIPPED {test}: {why}\n");
    }
    bin
}

/// Where the pcscd started by the harness writes its log.
pub fn log_path() -> PathBuf {
    std::env::temp_dir().join("tasjil-test-pcscd.log")
}

fn has_virtual_reader() -> Result<bool, String> {
    match card::readers() {
        Ok(r) => Ok(r.iter().any(|r| r.name == READER)),
        Err(e) => Err(e.to_string()),
    }
}

fn ensure_pcscd() -> Result<(), String> {
    if has_virtual_reader() == Ok(true) {
        return Ok(());
    }
    let pcscd = ["/usr/sbin/pcscd", "/sbin/pcscd"]
        .iter()
        .map(PathBuf::from)
        .find(|p| p.exists())
        .ok_or("pcscd is not installed")?;
    if !Path::new("/usr/lib/pcsc/drivers/serial/libifdvpcd.so").exists() {
        return Err("vsmartcard-vpcd (the virtual reader driver) is not installed".into());
    }
    // Detached from the test: it must outlive this process's other tests, and exits by itself
    // 60 s after its last client (--auto-exit).
    let mut log = std::fs::File::create(log_path())
        .map_err(|e| format!("cannot write {}: {e}", log_path().display()))?;
    let mut args = vec!["--foreground", "--auto-exit"];
    // pcsc-lite 2.x built with polkit asks polkit about every client and answers a refused
    // SCardConnect with SCARD_W_SECURITY_VIOLATION ("security violation"); a test process has no
    // desktop session for polkit to authorise. Such builds have --disable-polkit; 1.9.x (Debian
    // 12) has neither polkit nor the option, and would refuse to start if given it.
    let polkit = polkit_option(&pcscd);
    if let Some(option) = polkit {
        args.push(option);
    }
    {
        use std::io::Write;
        let _ = writeln!(
            log,
            "tasjil-vcard harness: {} {}",
            pcscd.display(),
            args.join(" ")
        );
    }
    let err_log = log.try_clone().map_err(|e| e.to_string())?;
    Command::new(&pcscd)
        .args(&args)
        .stdin(Stdio::null())
        .stdout(log)
        .stderr(err_log)
        .spawn()
        .map_err(|e| format!("cannot start {}: {e}", pcscd.display()))?;
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        match has_virtual_reader() {
            Ok(true) => return Ok(()),
            Ok(false) if Instant::now() > deadline => {
                return Err(format!("pcscd runs but shows no {READER:?} reader"))
            }
            Err(e) if Instant::now() > deadline => {
                return Err(format!("pcscd did not come up: {e}"))
            }
            _ => std::thread::sleep(Duration::from_millis(50)),
        }
    }
}

/// `--disable-polkit` when this pcscd knows the option (pcsc-lite 2.x), else `None`.
fn polkit_option(pcscd: &Path) -> Option<&'static str> {
    let help = Command::new(pcscd).arg("--help").output().ok()?;
    let text = [help.stdout, help.stderr].concat();
    String::from_utf8_lossy(&text)
        .contains("--disable-polkit")
        .then_some("--disable-polkit")
}

/// A virtual badge in the reader: one `tasjil-vcard` process. Dropping it pulls it out.
#[derive(Debug)]
pub struct VirtualCard {
    child: Child,
}

impl VirtualCard {
    /// Start the card process `bin` and wait (through PC/SC) until the card is in the reader.
    pub fn insert(bin: &Path, serial: u32) -> VirtualCard {
        // A card left by an earlier test must be gone first, or the new one cannot connect.
        if let Err(e) = card::wait_for_removal(READER, Duration::from_secs(10)) {
            panic!("the virtual reader still holds a card: {e}");
        }
        let child = Command::new(bin)
            .args([
                "--port",
                &VPCD_PORT.to_string(),
                "--serial",
                &format!("{serial:08x}"),
            ])
            .stdin(Stdio::null())
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start {}: {e}", bin.display()));
        let mut card = VirtualCard { child };
        let t = Instant::now();
        match card::wait_for_card(Some(READER), Duration::from_secs(15)) {
            Ok(_) => {}
            Err(e) => {
                let status = card.child.try_wait();
                panic!(
                    "virtual card not seen in {READER} after {:?}: {e} (process: {status:?})",
                    t.elapsed()
                );
            }
        }
        card
    }

    /// Pull the card out: kill its process (vpcd sees the connection drop).
    pub fn pull(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for VirtualCard {
    fn drop(&mut self) {
        self.pull();
    }
}

/// A virtual eID chip in [`CHIP_READER`]: one `tasjil-vcard --emrtd` process. Dropping it pulls
/// it out.
#[derive(Debug)]
pub struct VirtualChip {
    child: Child,
}

impl VirtualChip {
    /// Start a chip process holding `page` and wait (through PC/SC) until it is in the reader.
    pub fn insert(bin: &Path, page: &IdentityPage) -> VirtualChip {
        let mrz = page
            .try_to_mrz()
            .unwrap_or_else(|e| panic!("the test's identity page has no TD1 MRZ: {e}"));
        // A chip left by an earlier test must be gone first, or the new one cannot connect.
        if let Err(e) = card::wait_for_removal(CHIP_READER, Duration::from_secs(10)) {
            panic!("the chip reader still holds a card: {e}");
        }
        let child = Command::new(bin)
            .args(["--emrtd", &mrz, "--port", &CHIP_PORT.to_string()])
            .stdin(Stdio::null())
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start {}: {e}", bin.display()));
        let mut chip = VirtualChip { child };
        let t = Instant::now();
        if let Err(e) = card::wait_for_card(Some(CHIP_READER), Duration::from_secs(15)) {
            let status = chip.child.try_wait();
            panic!(
                "virtual chip not seen in {CHIP_READER} after {:?}: {e} (process: {status:?})",
                t.elapsed()
            );
        }
        chip
    }

    /// Pull the chip out: kill its process, and wait (up to 10 s) until PC/SC no longer sees it.
    pub fn pull(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = card::wait_for_removal(CHIP_READER, Duration::from_secs(10));
    }
}

impl Drop for VirtualChip {
    fn drop(&mut self) {
        self.pull();
    }
}
