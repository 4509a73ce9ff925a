//! Enrol, sync to a real centre, export the ANSI/NIST-ITL transaction and read it back: with our
//! reader, and with the independent `nistitl` reader when `.venv-xcheck` has it.

use std::path::Path;
use std::process::Command;

use tasjil_nist::{Record, Transaction, Value};

use crate::centre::TestCentre;
use crate::common::*;

fn text(r: &tasjil_nist::TaggedRecord, field: u16) -> &str {
    r.text(field)
        .unwrap_or_else(|| panic!("{}.{field:03} missing", r.record_type))
}

#[test]
fn an_exported_enrolment_reads_back_as_ansi_nist() {
    let s = Setup::new();
    let centre = TestCentre::start(&s.tmp.path().join("centre"));
    centre.register(&s.station);
    s.enrol(1, 21);
    assert_eq!(s.json(&["sync", "--central", &centre.url]).0, 0);
    let record = centre.store.list().unwrap().remove(0);
    eprintln!(
        "sealed payload of one full enrolment (WSQ fingers): {} bytes",
        record.payload_len
    );

    let (bytes, payload) = tasjil_central::nist::export(
        &centre.store,
        &s.centre,
        "e2e",
        "AFIS test",
        None,
        &record.id,
        "NFUF",
        "AFIS",
        0,
    )
    .unwrap();
    let t = Transaction::parse(&bytes).unwrap();
    assert_eq!(
        t.header.text(9),
        Some(record.id.as_str()),
        "TCN is the enrolment id"
    );
    assert_eq!(t.header.text(8), Some("VAN-TEST"));
    assert_eq!(t.header.text(5), Some("19700101"));

    let Record::Tagged(demo) = &t.records[0] else {
        panic!("Type-2 first")
    };
    assert_eq!(demo.record_type, 2);
    let d = &payload.demographics;
    let s_of = |k: &str| d[k].as_str().unwrap().to_string();
    assert_eq!(
        text(demo, 18),
        format!(
            "{},{}",
            s_of("family_name_latin"),
            s_of("given_names_latin")
        )
    );
    assert_eq!(
        text(demo, 202),
        s_of("family_name_ar"),
        "Arabic text survives"
    );
    assert_eq!(text(demo, 24), s_of("sex"));
    assert_eq!(text(demo, 230), record.id);

    let Record::Tagged(face) = &t.records[1] else {
        panic!("Type-10 second")
    };
    assert_eq!((face.record_type, text(face, 11)), (10, "JPEGB"));
    assert_eq!(
        face.field(999),
        Some(&Value::Binary(payload.face.bytes.clone()))
    );

    let fingers: Vec<_> = t.records[2..t.records.len() - 1].iter().collect();
    assert_eq!(fingers.len(), payload.fingers.len());
    for (r, f) in fingers.iter().zip(&payload.fingers) {
        let Record::Tagged(r) = r else {
            panic!("Type-14 is tagged")
        };
        assert_eq!(
            (r.record_type, text(r, 11), text(r, 13)),
            (14, "WSQ20", f.code.to_string().as_str())
        );
        assert_eq!(text(r, 9), "500");
        let Some(Value::Binary(wsq)) = r.field(999) else {
            panic!("no image")
        };
        let img = tasjil_wsq::decode(wsq).unwrap();
        assert_eq!(
            (img.width, img.height, img.ppi),
            (f.image.width, f.image.height, Some(500))
        );
    }
    let Some(Record::Binary(sig)) = t.records.last() else {
        panic!("Type-8 last")
    };
    let sig = tasjil_nist::records::Signature::from_record(sig).unwrap();
    assert_eq!(
        sig.pixels.len(),
        usize::from(sig.width) * usize::from(sig.height)
    );

    check_with_nistitl(&bytes, t.records.len() + 1, &record.id);
}

/// The independent reader must parse the file and see the same TCN and record types.
fn check_with_nistitl(bytes: &[u8], records: usize, tcn: &str) {
    let python = std::env::var_os("TASJIL_XCHECK_PYTHON")
        .map(std::path::PathBuf::from)
        .unwrap_or_else(|| Path::new(env!("CARGO_MANIFEST_DIR")).join(".venv-xcheck/bin/python"));
    let available = Command::new(&python)
        .args(["-c", "import nistitl"])
        .output()
        .is_ok_and(|o| o.status.success());
    if !available {
        assert!(
            std::env::var("CI").map_or(true, |v| v != "true"),
            "nistitl is required in CI: scripts/install-deps installs it into .venv-xcheck"
        );
        eprintln!("\n!!!! SKIPPED: nistitl cross-check of the exported transaction ({} has no nistitl; run scripts/install-deps) !!!!\n", python.display());
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    let file = tmp.path().join("export.an2");
    std::fs::write(&file, bytes).unwrap();
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("nist/tests/nistitl_xcheck.py");
    let out = Command::new(&python)
        .arg(script)
        .arg(&file)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "nistitl rejected the export: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let parsed: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let recs = parsed["records"].as_array().unwrap();
    assert_eq!(recs.len(), records);
    assert_eq!(recs[0]["fields"]["9"], serde_json::json!([[tcn]]));
    let types: Vec<u64> = recs.iter().map(|r| r["type"].as_u64().unwrap()).collect();
    assert_eq!(types.first(), Some(&1));
    assert_eq!(types[1..3], [2, 10]);
    assert_eq!(types.last(), Some(&8));
}
