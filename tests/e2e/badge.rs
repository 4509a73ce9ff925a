//! The station with a real officer badge: pcscd, vsmartcard's virtual reader and the test-only
//! OpenPGP card (`tasjil-vcard`). Personalise the card, enrol and approve with it, verify.

use std::io::Write;
use std::process::{Command, Output, Stdio};

use serde_json::Value;
use tasjil_vcard::{require_stack, VirtualCard, ADMIN_PIN, READER, USER_PIN};

use crate::common::{text, Setup, BIN};

fn with_stdin(s: &Setup, args: &[&str], input: &str) -> Output {
    let mut child = Command::new(BIN)
        .arg("--data-dir")
        .arg(&s.station)
        .args(args)
        .env_remove("TASJIL_DATA_DIR")
        .env_remove("TASJIL_BADGE")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    writeln!(child.stdin.take().unwrap(), "{input}").unwrap();
    child.wait_with_output().unwrap()
}

fn json(out: &Output) -> Value {
    serde_json::from_slice(&out.stdout).unwrap_or_else(|_| panic!("not JSON: {}", text(out)))
}

#[test]
fn officer_enrols_and_supervisor_approves_with_a_card_badge() {
    let Some(_stack) = require_stack("officer_enrols_and_supervisor_approves_with_a_card_badge")
    else {
        return;
    };
    let Some(bin) =
        tasjil_vcard::card_binary("officer_enrols_and_supervisor_approves_with_a_card_badge")
    else {
        return;
    };
    let s = Setup::new();
    let _card = VirtualCard::insert(&bin, 0x7A51_00E2);

    let out = with_stdin(
        &s,
        &[
            "badge",
            "personalise",
            "--officer-id",
            "OFF-0042",
            "--name",
            "Haddad<<Amina",
            "--json",
        ],
        ADMIN_PIN,
    );
    assert!(out.status.success(), "{}", text(&out));
    let key = json(&out)["public_key"].as_str().unwrap().to_string();
    assert_eq!(key.len(), 64);

    let out = with_stdin(&s, &["badge", "status", "--json"], "");
    let status = json(&out);
    let ours = status["readers"]
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["reader"] == READER)
        .unwrap_or_else(|| panic!("{status}"));
    assert_eq!(ours["badge"]["officer_id"], "OFF-0042");
    assert_eq!(ours["badge"]["public_key"], key.as_str());
    assert_eq!(ours["badge"]["pin_retries"], 3);

    // A wrong PIN: refused, and the card's counter shows it.
    let out = with_stdin(
        &s,
        &[
            "enrol",
            "--simulate",
            "--badge",
            "pcsc",
            "--pin-stdin",
            "--count",
            "1",
        ],
        "654321",
    );
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("wrong PIN: 2 attempts left"),
        "{}",
        text(&out)
    );

    // The right PIN: two enrolments co-signed on the card.
    let out = with_stdin(
        &s,
        &[
            "enrol",
            "--simulate",
            "--badge",
            "pcsc",
            "--pin-stdin",
            "--count",
            "2",
            "--json",
        ],
        USER_PIN,
    );
    assert!(out.status.success(), "{}", text(&out));
    assert_eq!(json(&out)["committed"], 2);

    let (_, list) = s.json(&["list"]);
    let records = list["records"].as_array().unwrap();
    assert_eq!(records.len(), 2);
    assert!(records.iter().all(|r| r["officer"] == "OFF-0042"), "{list}");

    // An officer's badge approves nothing: the card was registered as an officer's at its
    // first login.
    let out = with_stdin(&s, &["approve", "--all", "--pin-stdin", "--json"], USER_PIN);
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    assert!(
        String::from_utf8_lossy(&out.stderr)
            .contains("OFF-0042 is registered at this station as an officer, not as a supervisor"),
        "{}",
        text(&out)
    );
    assert_eq!(s.json(&["status"]).1["approved"], 0);
    // The crew's chief makes OFF-0042 a supervisor (same badge key), which is audited.
    let (code, promoted) = s.json(&["officer", "add", "--role", "supervisor", "--badge", "pcsc"]);
    assert_eq!(code, 0, "{promoted}");
    assert_eq!(
        (&promoted["promoted"], &promoted["role"], &promoted["new"]),
        (
            &serde_json::json!(true),
            &serde_json::json!("supervisor"),
            &serde_json::json!(false)
        )
    );

    // A supervisor cannot approve what they enrolled (`auto` finds the card in the reader):
    // nothing approved, and the output says another supervisor must.
    let out = with_stdin(&s, &["approve", "--all", "--pin-stdin", "--json"], USER_PIN);
    assert!(out.status.success(), "{}", text(&out));
    assert_eq!(json(&out)["approved"], 0);
    assert_eq!(json(&out)["supervisor"], "OFF-0042");
    assert_eq!(
        json(&out)["left_for_another_supervisor"]
            .as_array()
            .unwrap()
            .len(),
        2
    );
    let ids: Vec<String> = records
        .iter()
        .map(|r| r["id"].as_str().unwrap().to_string())
        .collect();
    let out = with_stdin(&s, &["approve", &ids[0], "--pin-stdin"], USER_PIN);
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("does not approve their own enrolments"),
        "{}",
        text(&out)
    );
    // Another supervisor approves them (here the simulated supervisor badge).
    let out = with_stdin(
        &s,
        &[
            "approve",
            "--all",
            "--badge",
            "sim",
            "--pin-stdin",
            "--json",
        ],
        USER_PIN,
    );
    assert!(out.status.success(), "{}", text(&out));
    assert_eq!(json(&out)["approved"], 2);
    assert_eq!(json(&out)["supervisor"], "SUP-SIM-1");

    // Every co-signature verifies against the badge key registered at first login.
    let (code, report) = s.json(&["verify"]);
    assert_eq!(code, 0, "{report}");
    assert_eq!(report["valid"], 2);
}

#[test]
fn id_card_read_opens_a_citizen_s_chip_through_pcscd() {
    const TEST: &str = "id_card_read_opens_a_citizen_s_chip_through_pcscd";
    let Some(_stack) = require_stack(TEST) else {
        return;
    };
    let Some(bin) = tasjil_vcard::card_binary(TEST) else {
        return;
    };
    let s = Setup::new();
    let page = tasjil_drivers::emrtd::IdentityPage {
        document_code: "ID".into(),
        issuing_state: "MAR".into(),
        document_number: "BK482913".into(),
        birth_date: "850312".into(),
        sex: "M".into(),
        expiry_date: "310930".into(),
        nationality: "MAR".into(),
        surname: "OUAZZANI".into(),
        given_names: "YOUSSEF".into(),
        optional_data: String::new(),
    };
    let _chip = tasjil_vcard::VirtualChip::insert(&bin, &page);
    let read = |number: &str| {
        with_stdin(
            &s,
            &[
                "id-card",
                "read",
                "--number",
                number,
                "--birth",
                "1985-03-12",
                "--expiry",
                "2031-09-30",
                "--count",
                "20",
                "--json",
            ],
            "",
        )
    };
    // The printed number, typed in small letters: read, and the same page every time.
    let out = read("bk482913");
    assert!(out.status.success(), "{}", text(&out));
    let v = json(&out);
    assert_eq!(v["reader"], tasjil_vcard::CHIP_READER);
    assert_eq!(
        (&v["document_number"], &v["surname"], &v["given_names"]),
        (
            &Value::from("BK482913"),
            &Value::from("OUAZZANI"),
            &Value::from("YOUSSEF")
        )
    );
    assert_eq!(
        (&v["birth_date"], &v["sex"]),
        (&Value::from("850312"), &Value::from("M"))
    );
    assert_eq!(v["readings"], 20);
    eprintln!(
        "id-card read through pcscd: mean {:.1} ms, p95 {:.1} ms",
        v["mean_ms"].as_f64().unwrap(),
        v["p95_ms"].as_f64().unwrap()
    );
    // One character wrong: the chip refuses, exit 1, and the message says what to check.
    let out = read("BK482914");
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("the chip refused the access key"),
        "{}",
        text(&out)
    );
}
