//! Any changed byte in a stored envelope, payload or audit entry makes `verify` exit 1 and name
//! what failed; a damaged database file gives a clear error, never a panic.

use std::path::{Path, PathBuf};

use serde_json::Value;

use crate::common::*;

/// A station with five records, copied afresh for each tampering.
struct Fixture {
    setup: Setup,
    ids: Vec<String>,
}

impl Fixture {
    fn new() -> Fixture {
        let setup = Setup::new();
        setup.enrol(5, 3);
        let (_, list) = setup.json(&["list"]);
        let ids = list["records"]
            .as_array()
            .unwrap()
            .iter()
            .map(|r| r["id"].as_str().unwrap().to_string())
            .collect();
        Fixture { setup, ids }
    }

    fn copy(&self, name: &str) -> PathBuf {
        let to = self.setup.tmp.path().join(name);
        std::fs::create_dir_all(&to).unwrap();
        for f in files(&self.setup.station) {
            std::fs::copy(&f, to.join(f.file_name().unwrap())).unwrap();
        }
        to
    }
}

fn flip_in_table(dir: &Path, sql_get: &str, sql_set: &str, key: i64, at: usize) {
    let conn = rusqlite::Connection::open(dir.join("station.db")).unwrap();
    let mut blob: Vec<u8> = conn.query_row(sql_get, [key], |r| r.get(0)).unwrap();
    let i = at % blob.len();
    blob[i] ^= 0x01;
    conn.execute(sql_set, rusqlite::params![blob, key]).unwrap();
}

fn problems(dir: &Path) -> (i32, Vec<(String, String)>) {
    let (code, v) = json_of(dir, &["verify"]);
    let list = v["problems"]
        .as_array()
        .unwrap_or_else(|| panic!("no problems array: {v}"))
        .iter()
        .map(|p: &Value| {
            (
                p["id"].as_str().unwrap().to_string(),
                p["reason"].as_str().unwrap().to_string(),
            )
        })
        .collect();
    (code, list)
}

#[test]
fn changed_bytes_in_envelopes_payloads_and_audit_are_named() {
    let fx = Fixture::new();
    let (code, p) = problems(&fx.setup.station);
    assert_eq!((code, p.len()), (0, 0), "{p:?}");

    // Envelope of seq 3: several positions spread over the signed JSON.
    for (n, at) in [0usize, 17, 101, 333, 640, 997, 1500, 2222]
        .into_iter()
        .enumerate()
    {
        let dir = fx.copy(&format!("env{n}"));
        flip_in_table(
            &dir,
            "SELECT envelope FROM envelopes WHERE seq = ?1",
            "UPDATE envelopes SET envelope = ?1 WHERE seq = ?2",
            3,
            at,
        );
        let (code, p) = problems(&dir);
        assert_eq!(code, 1, "flip at {at}");
        assert!(
            p.iter().any(|(id, _)| id == &fx.ids[2]),
            "flip at {at} not named: {p:?}"
        );
        assert!(
            !p.iter().any(|(id, _)| id == &fx.ids[3]),
            "the next record was blamed: {p:?}"
        );
    }

    // Sealed payload of seq 2.
    for (n, at) in [5usize, 200, 40_000, 123_456].into_iter().enumerate() {
        let dir = fx.copy(&format!("payload{n}"));
        let conn = rusqlite::Connection::open(dir.join("station.db")).unwrap();
        let sha: String = conn
            .query_row("SELECT payload FROM envelopes WHERE seq = 2", [], |r| {
                r.get(0)
            })
            .unwrap();
        let mut blob: Vec<u8> = conn
            .query_row(
                "SELECT sealed FROM payloads WHERE sha256 = ?1",
                [&sha],
                |r| r.get(0),
            )
            .unwrap();
        let i = at % blob.len();
        blob[i] ^= 0x80;
        conn.execute(
            "UPDATE payloads SET sealed = ?1 WHERE sha256 = ?2",
            rusqlite::params![blob, sha],
        )
        .unwrap();
        drop(conn);
        let (code, p) = problems(&dir);
        assert_eq!(code, 1);
        let hit = p
            .iter()
            .find(|(id, _)| id == &fx.ids[1])
            .unwrap_or_else(|| panic!("{p:?}"));
        assert!(hit.1.contains("payload hash"), "{hit:?}");
    }

    // Audit entry 4 (init, login, then enrolments).
    for (n, at) in [1usize, 50, 150].into_iter().enumerate() {
        let dir = fx.copy(&format!("audit{n}"));
        flip_in_table(
            &dir,
            "SELECT entry FROM audit WHERE seq = ?1",
            "UPDATE audit SET entry = ?1 WHERE seq = ?2",
            4,
            at,
        );
        let (code, p) = problems(&dir);
        assert_eq!(code, 1);
        assert!(p.iter().any(|(id, _)| id == "audit:4"), "{p:?}");
    }

    // Changed index column: the row claims another payload.
    let dir = fx.copy("index");
    let conn = rusqlite::Connection::open(dir.join("station.db")).unwrap();
    conn.execute(
        "UPDATE envelopes SET officer = 'SOMEONE-ELSE' WHERE seq = 4",
        [],
    )
    .unwrap();
    drop(conn);
    let (code, p) = problems(&dir);
    assert_eq!(code, 1);
    assert!(
        p.iter()
            .any(|(id, r)| id == &fx.ids[3] && r.contains("index")),
        "{p:?}"
    );

    // A deleted record is a chain gap on the next one.
    let dir = fx.copy("gap");
    let conn = rusqlite::Connection::open(dir.join("station.db")).unwrap();
    conn.execute("DELETE FROM envelopes WHERE seq = 2", [])
        .unwrap();
    drop(conn);
    let (code, p) = problems(&dir);
    assert_eq!(code, 1);
    assert!(
        p.iter()
            .any(|(id, r)| id == &fx.ids[2] && r.contains("chain gap")),
        "{p:?}"
    );
}

/// The same, with the byte changed in the database file itself rather than through SQLite.
#[test]
fn a_byte_changed_in_the_file_names_the_record() {
    let fx = Fixture::new();
    for (n, id) in fx.ids.iter().enumerate() {
        let dir = fx.copy(&format!("raw{n}"));
        let db = dir.join("station.db");
        let mut bytes = std::fs::read(&db).unwrap();
        let needle = format!("\"id\":\"{id}\"");
        // Free pages may hold stale copies of the record: change every copy so the live one is hit.
        let hits: Vec<usize> = bytes
            .windows(needle.len())
            .enumerate()
            .filter(|(_, w)| *w == needle.as_bytes())
            .map(|(i, _)| i)
            .collect();
        assert!(!hits.is_empty(), "envelope {id} not found in the file");
        for at in hits {
            bytes[at + needle.len() + 25] ^= 0x04;
        }
        std::fs::write(&db, &bytes).unwrap();
        let (code, p) = problems(&dir);
        assert_eq!(code, 1);
        assert!(p.iter().any(|(pid, _)| pid == id), "{id} not named: {p:?}");
    }
}

#[test]
fn a_damaged_database_gives_a_clear_error_not_a_panic() {
    let fx = Fixture::new();
    type Damage = Box<dyn Fn(&mut Vec<u8>)>;
    let cases: Vec<(&str, Damage)> = vec![
        ("header", Box::new(|b: &mut Vec<u8>| b[..100].fill(0x5A))),
        (
            "truncated",
            Box::new(|b: &mut Vec<u8>| b.truncate(b.len() / 3)),
        ),
        (
            "zeroed pages",
            Box::new(|b: &mut Vec<u8>| {
                let n = b.len();
                b[4096..(4096 * 3).min(n)].fill(0);
            }),
        ),
        (
            "garbage",
            Box::new(|b: &mut Vec<u8>| {
                let n = b.len();
                for (i, x) in b[8192..n].iter_mut().enumerate().step_by(997) {
                    *x = (i % 251) as u8;
                }
            }),
        ),
    ];
    for (name, damage) in cases {
        let dir = fx.copy(&format!("damaged-{}", name.replace(' ', "-")));
        let db = dir.join("station.db");
        let mut bytes = std::fs::read(&db).unwrap();
        damage(&mut bytes);
        std::fs::write(&db, &bytes).unwrap();
        for cmd in ["verify", "list", "status"] {
            let out = run(&dir, &[cmd]);
            let all = text(&out);
            assert!(!all.contains("panicked"), "{name}/{cmd}: {all}");
            if cmd == "verify" {
                assert_eq!(out.status.code(), Some(1), "{name}: {all}");
            }
            if !out.status.success() {
                assert!(
                    all.contains("damaged") || all.contains("PROBLEM") || all.contains("malformed"),
                    "{name}/{cmd}: unclear message: {all}"
                );
            }
        }
    }
}
