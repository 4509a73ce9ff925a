//! Cross-check against a parser not written here: PyPI `nistitl` (installed by
//! `scripts/install-deps` into `.venv-xcheck`) must read our transaction and find, field by
//! field, the values we wrote; image data must arrive byte for byte (compared by SHA-256).
#![allow(clippy::unwrap_used)]

mod common;

use std::path::{Path, PathBuf};
use std::process::Command;

use serde_json::Value as Json;
use sha2::{Digest, Sha256};
use tasjil_nist::{Record, Transaction, Value};

fn xcheck_python() -> Result<PathBuf, String> {
    let python = std::env::var_os("TASJIL_XCHECK_PYTHON")
        .map(PathBuf::from)
        .unwrap_or_else(|| {
            Path::new(env!("CARGO_MANIFEST_DIR")).join("../.venv-xcheck/bin/python")
        });
    match Command::new(&python)
        .args(["-c", "import nistitl"])
        .output()
    {
        Ok(o) if o.status.success() => Ok(python),
        Ok(o) => Err(format!(
            "{} cannot import nistitl: {}",
            python.display(),
            String::from_utf8_lossy(&o.stderr)
        )),
        Err(e) => Err(format!("{}: {e}", python.display())),
    }
}

/// What `nistitl` makes of `bytes`, as printed by `tests/nistitl_xcheck.py`; `None` (after a loud
/// message) when the reader is not installed outside CI.
pub fn parse_with_nistitl(bytes: &[u8]) -> Option<Json> {
    let python = match xcheck_python() {
        Ok(p) => p,
        Err(why) => {
            if std::env::var("CI").is_ok_and(|v| v == "true") {
                panic!("nistitl cross-check cannot run in CI: {why} (scripts/install-deps installs it)");
            }
            eprintln!(
                "\n!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!"
            );
            eprintln!("!! SKIPPED: ANSI/NIST cross-check with nistitl: {why}");
            eprintln!("!! run scripts/install-deps to create .venv-xcheck");
            eprintln!(
                "!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!\n"
            );
            return None;
        }
    };
    let file = std::env::temp_dir().join(format!("tasjil-nist-xcheck-{}.an2", std::process::id()));
    std::fs::write(&file, bytes).unwrap();
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/nistitl_xcheck.py");
    let out = Command::new(python)
        .arg(script)
        .arg(&file)
        .output()
        .unwrap();
    let _ = std::fs::remove_file(&file);
    assert!(
        out.status.success(),
        "nistitl rejected our file: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    Some(serde_json::from_slice(&out.stdout).unwrap())
}

fn sha(b: &[u8]) -> String {
    hex::encode(Sha256::digest(b))
}

/// Compares one of our tagged records with nistitl's view of it.
fn assert_same(ours: &tasjil_nist::TaggedRecord, theirs: &Json, len: usize) {
    let fields = theirs["fields"].as_object().unwrap();
    let t = ours.record_type;
    assert_eq!(
        fields["1"],
        serde_json::json!([[len.to_string()]]),
        "{t}.001 LEN"
    );
    for f in &ours.fields {
        let got = &fields[&f.number.to_string()];
        match &f.value {
            Value::Text(sf) => {
                // nistitl reads IDCs (field 2 outside Type-1) as integers: "01" comes back as "1".
                let want: Vec<Vec<String>> = if t != 1 && f.number == 2 {
                    vec![vec![sf[0][0].parse::<u32>().unwrap().to_string()]]
                } else {
                    sf.clone()
                };
                assert_eq!(got, &serde_json::json!(want), "field {t}.{:03}", f.number);
            }
            Value::Binary(b) => {
                assert_eq!(got["len"], b.len(), "field {t}.{:03} length", f.number);
                assert_eq!(got["sha256"], sha(b), "field {t}.{:03} bytes", f.number);
            }
        }
    }
    assert_eq!(
        fields.len(),
        ours.fields.len() + 1,
        "record type {t}: nistitl found other fields"
    );
}

/// Checks every record of `t` (written as `bytes`) against nistitl's parse, if it can run.
pub fn check_with_nistitl(t: &Transaction, bytes: &[u8]) {
    let Some(parsed) = parse_with_nistitl(bytes) else {
        return;
    };
    let records = parsed["records"].as_array().unwrap();
    assert_eq!(records.len(), t.records.len() + 1);
    // Our own reader gives each record's length: re-encode one record at a time to learn it.
    let ours = Transaction::parse(bytes).unwrap();
    let mut header = ours.header.clone();
    header.fields.push(tasjil_nist::Field {
        number: 3,
        value: Value::Text(ours.content_list()),
    });
    header.fields.sort_by_key(|f| f.number);
    let lens = record_lengths(bytes, &ours);
    assert_same(&header, &records[0], lens[0]);
    for (i, r) in ours.records.iter().enumerate() {
        let theirs = &records[i + 1];
        assert_eq!(theirs["type"], r.record_type());
        match r {
            Record::Tagged(tr) => assert_same(tr, theirs, lens[i + 1]),
            Record::Binary(b) => {
                assert_eq!(theirs["idc"], b.idc);
                assert_eq!(theirs["len"], b.body.len() + 5);
                // nistitl keeps everything after the IDC as the record's value.
                assert_eq!(theirs["sha256"], sha(&b.body));
            }
        }
    }
}

/// Byte length of every record, read from the LEN fields.
fn record_lengths(bytes: &[u8], t: &Transaction) -> Vec<usize> {
    let mut pos = 0;
    let mut out = Vec::new();
    let types = std::iter::once(1).chain(t.records.iter().map(Record::record_type));
    for ty in types {
        let len = if (3..=8).contains(&ty) {
            u32::from_be_bytes(bytes[pos..pos + 4].try_into().unwrap()) as usize
        } else {
            let tag = format!("{ty}.001:");
            let digits: String = bytes[pos + tag.len()..]
                .iter()
                .take_while(|b| b.is_ascii_digit())
                .map(|&b| b as char)
                .collect();
            digits.parse().unwrap()
        };
        out.push(len);
        pos += len;
    }
    assert_eq!(pos, bytes.len());
    out
}

#[test]
fn nistitl_reads_our_transaction_field_by_field() {
    let t = common::sample();
    let bytes = t.to_bytes().unwrap();
    check_with_nistitl(&t, &bytes);
}
