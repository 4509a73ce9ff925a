//! `tasjil-central` through its command line, as centre staff meet it on a new machine.
//!
//! This is also what makes `cargo test --workspace` build the `tasjil-central` binary (with the
//! workspace's features), which the station's end-to-end tests then drive.
#![allow(clippy::unwrap_used)]

use std::path::Path;
use std::process::{Command, Output};

fn central(dir: &Path, args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_tasjil-central"))
        .arg("--data-dir")
        .arg(dir)
        .args(args)
        .env_remove("TASJIL_CENTRAL_DATA_DIR")
        .output()
        .unwrap()
}

fn json(out: &Output) -> serde_json::Value {
    let text = String::from_utf8_lossy(&out.stdout);
    serde_json::from_str(text.trim()).unwrap_or_else(|e| {
        panic!(
            "not one JSON object ({e}): {text}\n{}",
            String::from_utf8_lossy(&out.stderr)
        )
    })
}

#[test]
fn init_makes_keys_once_and_an_empty_store_that_verifies() {
    let dir = tempfile::tempdir().unwrap();
    // An operator's pre-made directory, readable by everyone: init tightens it.
    {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
    }
    let out = central(dir.path(), &["init"]);
    assert!(out.status.success(), "{out:?}");
    assert!(dir.path().join("centre.pub").is_file());
    {
        use std::os::unix::fs::PermissionsExt;
        for d in ["", "blobs"] {
            let mode = std::fs::metadata(dir.path().join(d))
                .unwrap()
                .permissions()
                .mode();
            assert_eq!(mode & 0o777, 0o700, "{d:?} is {mode:o}");
        }
    }
    let key = dir.path().join("centre.key");
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(&key).unwrap().permissions().mode();
        assert_eq!(
            mode & 0o077,
            0,
            "centre.key is readable by others: {mode:o}"
        );
    }
    let secret = std::fs::read(&key).unwrap();

    // A second init must not replace the keys stations already trust.
    let again = central(dir.path(), &["init"]);
    assert!(!again.status.success(), "a second init succeeded");
    assert_eq!(
        std::fs::read(&key).unwrap(),
        secret,
        "init overwrote the key"
    );

    let stats = central(dir.path(), &["stats", "--json"]);
    assert!(stats.status.success(), "{stats:?}");
    let stats = json(&stats);
    assert_eq!(stats["stations"], 0, "{stats}");
    assert_eq!(stats["records"], 0, "{stats}");
    let verify = central(dir.path(), &["verify", "--json"]);
    assert!(verify.status.success(), "{verify:?}");
}

#[test]
fn a_missing_store_and_a_missing_bundle_get_clear_errors() {
    let dir = tempfile::tempdir().unwrap();
    let out = central(&dir.path().join("nowhere"), &["stats"]);
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("init"), "no hint to run init: {err}");

    assert!(central(dir.path(), &["init"]).status.success());
    let out = central(dir.path(), &["import", "/nonexistent/x.tasjil"]);
    assert!(!out.status.success());
    let said = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        said.contains("x.tasjil"),
        "the refusal does not name the file: {said}"
    );
    assert!(said.contains("nothing was stored"), "{said}");
}

fn central_with_input(dir: &Path, args: &[&str], input: &str) -> Output {
    use std::io::Write;
    let mut child = Command::new(env!("CARGO_BIN_EXE_tasjil-central"))
        .arg("--data-dir")
        .arg(dir)
        .args(args)
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    child
        .stdin
        .take()
        .unwrap()
        .write_all(input.as_bytes())
        .unwrap();
    child.wait_with_output().unwrap()
}

#[test]
fn staff_accounts_are_added_listed_and_disabled() {
    let dir = tempfile::tempdir().unwrap();
    assert!(central(dir.path(), &["init"]).status.success());
    let add = [
        "staff",
        "add",
        "--id",
        "amina",
        "--role",
        "verifier",
        "--password-stdin",
        "--json",
    ];
    let out = central_with_input(dir.path(), &add, "a long enough password\n");
    assert!(out.status.success(), "{out:?}");
    let v = json(&out);
    let uri = v["otpauth_uri"].as_str().unwrap();
    assert!(
        uri.starts_with("otpauth://totp/Tasjil:amina?secret="),
        "{uri}"
    );
    assert_eq!(v["role"], "verifier");

    let again = central_with_input(dir.path(), &add, "a long enough password\n");
    assert_eq!(again.status.code(), Some(1), "{again:?}");
    assert!(
        String::from_utf8_lossy(&again.stderr).contains("already exists"),
        "{again:?}"
    );
    let short = [
        "staff",
        "add",
        "--id",
        "b",
        "--role",
        "viewer",
        "--password-stdin",
    ];
    let out = central_with_input(dir.path(), &short, "short\n");
    assert_eq!(out.status.code(), Some(1), "{out:?}");
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("at least 12"),
        "{out:?}"
    );
    let bad_role = central(
        dir.path(),
        &[
            "staff",
            "add",
            "--id",
            "c",
            "--role",
            "god",
            "--password-stdin",
        ],
    );
    assert_eq!(bad_role.status.code(), Some(2));

    let list = json(&central(dir.path(), &["staff", "list", "--json"]));
    assert_eq!(list["staff"][0]["id"], "amina");
    assert_eq!(list["staff"][0]["disabled"], false);
    assert!(list["staff"][0].get("password_hash").is_none());
    assert!(central(dir.path(), &["staff", "disable", "--id", "amina"])
        .status
        .success());
    let list = json(&central(dir.path(), &["staff", "list", "--json"]));
    assert_eq!(list["staff"][0]["disabled"], true);
    assert_eq!(
        central(dir.path(), &["staff", "disable", "--id", "nobody"])
            .status
            .code(),
        Some(1)
    );
}
