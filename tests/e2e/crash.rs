//! Power-cut safety: SIGKILL a running `tasjil enrol` at random moments; after every restart the
//! store verifies, the chain is unbroken, and every enrolment that was reported committed is there.

use std::collections::BTreeSet;
use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use crate::common::*;

#[test]
fn sigkill_at_random_moments_loses_no_committed_enrolment() {
    let s = Setup::new();
    let kills = 50;
    let mut rng = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_nanos() as u64
        | 1;
    eprintln!("crash test random seed: {rng}");
    let mut next = move || {
        rng ^= rng << 13;
        rng ^= rng >> 7;
        rng ^= rng << 17;
        rng
    };
    let mut promised: BTreeSet<String> = BTreeSet::new();
    for round in 0..kills {
        let mut child = Command::new(BIN)
            .env("TASJIL_BADGE", "sim") // the simulated badge, even while the card-badge test has a card in the reader
            .args([
                "--data-dir",
                s.station.to_str().unwrap(),
                "enrol",
                "--simulate",
                "--count",
                "1000",
            ])
            .args(["--seed", &round.to_string()])
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let stdout = child.stdout.take().unwrap();
        let (seen, committed) = std::sync::mpsc::channel::<String>();
        let reader = std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                if let Some(rest) = line.strip_prefix("committed ") {
                    let _ = seen.send(rest.split(' ').next().unwrap_or("").to_string());
                }
            }
        });
        // Every fifth round dies during start-up or the first enrolment; the others after 1-3
        // commits plus 0-40 ms, i.e. while sealing, inside a transaction, or just after a commit.
        // Waiting for commits (not wall time) keeps the test meaningful on a slow or busy machine.
        let mut got = Vec::new();
        if round % 5 == 0 {
            std::thread::sleep(Duration::from_millis(next() % 150));
        } else {
            let need = 1 + (next() % 3) as usize;
            let deadline = Instant::now() + Duration::from_secs(60);
            while got.len() < need && Instant::now() < deadline {
                match committed.recv_timeout(Duration::from_millis(100)) {
                    Ok(id) => got.push(id),
                    Err(std::sync::mpsc::RecvTimeoutError::Timeout) => {
                        if child.try_wait().unwrap().is_some() {
                            break;
                        }
                    }
                    Err(std::sync::mpsc::RecvTimeoutError::Disconnected) => break,
                }
            }
            std::thread::sleep(Duration::from_millis(next() % 40));
        }
        child.kill().unwrap();
        child.wait().unwrap();
        reader.join().unwrap();
        got.extend(committed.try_iter());
        promised.extend(got);

        let (code, v) = s.json(&["verify"]);
        assert_eq!(code, 0, "round {round}: verify failed after SIGKILL: {v}");
        assert_eq!(v["records"], v["valid"]);
        let (_, list) = s.json(&["list"]);
        let stored: BTreeSet<String> = list["records"]
            .as_array()
            .unwrap()
            .iter()
            .map(|r| r["id"].as_str().unwrap().to_string())
            .collect();
        let lost: Vec<_> = promised.difference(&stored).collect();
        assert!(
            lost.is_empty(),
            "round {round}: reported committed but lost: {lost:?}"
        );
        let seqs: Vec<u64> = list["records"]
            .as_array()
            .unwrap()
            .iter()
            .map(|r| r["seq"].as_u64().unwrap())
            .collect();
        assert_eq!(
            seqs,
            (1..=seqs.len() as u64).collect::<Vec<_>>(),
            "round {round}: chain has holes"
        );
    }
    assert!(
        promised.len() >= kills / 2,
        "too few enrolments committed to mean anything: {}",
        promised.len()
    );
    eprintln!(
        "crash test: {kills} kills, {} enrolments reported and all present",
        promised.len()
    );
}
