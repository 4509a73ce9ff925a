use super::*;
use tasjil_sync::record::{
    CaptureTimes, CoSignature, EnrolmentKind, EnvelopeBody, PayloadRef, QualitySummary,
    ENVELOPE_VERSION,
};
use tasjil_sync::record::{Envelope, RecordError, Signed, GENESIS};
use tasjil_sync::{sha256_hex, StationKey, StationPublic};

const NOW: i64 = 1_750_000_000_000;

/// A registered station with its badge, making envelopes the way the station does.
struct Van {
    name: String,
    key: StationKey,
    officer: StationKey,
    /// Roster version the van holds (set by [`register`]).
    roster: std::cell::Cell<Option<u64>>,
}

/// The centre's signing key in these tests (verdicts and rosters).
fn centre_key() -> ed25519_dalek::SigningKey {
    ed25519_dalek::SigningKey::from_bytes(&[9; 32])
}

/// Register `van` and put its officer's badge on the roster for it, as central staff would.
fn register(store: &CentreStore, van: &Van) {
    assert!(store.add_station(&van.public(), NOW).unwrap());
    let r = store
        .roster_add(
            &tasjil_sync::roster::RosterEntry {
                id: van.officer_id(),
                name: "Officer".into(),
                role: tasjil_sync::roster::Role::Officer,
                badge: van.officer.public_hex(),
                stations: vec![van.name.clone()],
                valid_from_ms: 0,
                valid_until_ms: None,
                revoked: None,
            },
            NOW,
        )
        .unwrap();
    van.roster.set(Some(r.version()));
}

impl Van {
    fn new(name: &str) -> Van {
        Van {
            name: name.into(),
            key: StationKey::generate(),
            officer: StationKey::generate(),
            roster: std::cell::Cell::new(None),
        }
    }

    fn officer_id(&self) -> String {
        format!("OFF-{}", self.name)
    }

    fn public(&self) -> StationPublic {
        StationPublic::new(&self.name, &self.key)
    }

    fn body(&self, seq: u64, prev: &str, sealed: &[u8], salt: u128) -> EnvelopeBody {
        EnvelopeBody {
            v: ENVELOPE_VERSION,
            // Distinct per station, sequence and salt, and the same on every run.
            id: {
                let van = u128::from(tasjil_sync::canonical::sha256(self.name.as_bytes())[0]);
                ulid::Ulid::from_parts(
                    1_700_000_000_000 + seq,
                    van << 72 | salt << 16 | seq as u128,
                )
                .to_string()
            },
            kind: EnrolmentKind::New,
            station: self.name.clone(),
            officer: self.officer_id(),
            seq,
            prev: prev.into(),
            demographics_schema: "cnie-v1".into(),
            captured: CaptureTimes {
                started_ms: 1,
                face_ms: 2,
                fingers_ms: 3,
                signature_ms: 4,
                finished_ms: 5,
            },
            quality: QualitySummary {
                face: 80,
                face_attempts: 1,
                fingers: vec![],
                finger_exceptions: vec![],
                below_threshold: vec![],
            },
            payload: PayloadRef {
                sha256: sha256_hex(sealed),
                len: sealed.len() as u64,
            },
            simulation: false,
            roster: self.roster.get(),
        }
    }

    /// Co-signed by the badge, signed by `signer` (normally the station's own key).
    fn seal(&self, body: EnvelopeBody, signer: &StationKey) -> Envelope<Signed> {
        let env = Envelope::new(body).unwrap();
        let sig = self.officer.sign(&env.officer_message().unwrap());
        env.with_officer_signature(CoSignature {
            key: self.officer.public_hex(),
            sig: hex::encode(sig.to_bytes()),
        })
        .sign(signer)
        .unwrap()
    }

    fn envelope(&self, seq: u64, prev: &str, sealed: &[u8]) -> Envelope<Signed> {
        self.seal(self.body(seq, prev, sealed, 0), &self.key)
    }
}

fn payload(n: u8) -> Vec<u8> {
    (0..1000u32).map(|i| (i as u8).wrapping_mul(n)).collect()
}

/// Where the payload `sha` lives: `blobs/<first two hex digits>/<sha>`.
fn blob_file(dir: &std::path::Path, sha: &str) -> std::path::PathBuf {
    dir.join("blobs").join(&sha[..2]).join(sha)
}

fn upload(store: &CentreStore, sealed: &[u8]) {
    let state = store
        .put_blob_chunk(&sha256_hex(sealed), 0, sealed.len() as u64, sealed)
        .unwrap();
    assert_eq!(
        state,
        BlobState::Complete {
            len: sealed.len() as u64
        }
    );
}

fn setup() -> (tempfile::TempDir, CentreStore, Van) {
    let dir = tempfile::tempdir().unwrap();
    let store = CentreStore::open(dir.path()).unwrap();
    store.sign_verdicts_with(centre_key());
    let van = Van::new("VAN-07-A");
    register(&store, &van);
    (dir, store, van)
}

/// Store a chain of `n` envelopes with uploaded payloads; returns them.
fn chain(store: &CentreStore, van: &Van, n: u64) -> Vec<Envelope<Signed>> {
    let mut out: Vec<Envelope<Signed>> = Vec::new();
    for seq in 1..=n {
        let prev = out
            .last()
            .map_or(GENESIS.to_string(), |e| e.hash().unwrap());
        let sealed = payload(seq as u8);
        upload(store, &sealed);
        let env = van.envelope(seq, &prev, &sealed);
        let got = store
            .ingest(&env.to_bytes().unwrap(), NOW + seq as i64)
            .unwrap();
        assert_eq!(
            got,
            Ingested::Stored {
                id: env.body().id.clone(),
                station: van.name.clone(),
                seq
            }
        );
        out.push(env);
    }
    out
}

fn reason(outcome: Ingested) -> String {
    match outcome {
        Ingested::Rejected { reason, .. } => reason,
        other => panic!("expected a rejection, got {other:?}"),
    }
}

#[test]
fn store_is_shareable_between_threads() {
    fn shareable<T: Send + Sync>() {}
    shareable::<CentreStore>();
}

#[test]
fn three_record_chain_is_stored_and_re_ingest_is_harmless() {
    let (_dir, store, van) = setup();
    assert_eq!(store.head(&van.name).unwrap(), (0, GENESIS.to_string()));
    let envs = chain(&store, &van, 3);
    assert_eq!(store.head(&van.name).unwrap(), (3, envs[2].hash().unwrap()));
    let again = store
        .ingest(&envs[1].to_bytes().unwrap(), NOW + 10)
        .unwrap();
    assert_eq!(
        again,
        Ingested::AlreadyHave {
            id: envs[1].body().id.clone()
        }
    );
    let stats = store.stats().unwrap();
    assert_eq!(
        stats,
        Stats {
            stations: 1,
            records: 3,
            verified: 3,
            rejected: 0
        }
    );
    let infos = store.stations().unwrap();
    assert_eq!((infos[0].records, infos[0].last_seq), (3, 3));
    assert_eq!(infos[0].key_hex, van.key.public_hex());
    assert!(store.verify_all().unwrap().ok);
}

#[test]
fn envelope_from_an_unknown_station_is_refused_and_recorded() {
    let (_dir, store, _van) = setup();
    let stranger = Van::new("VAN-99-Z");
    let sealed = payload(1);
    upload(&store, &sealed);
    let env = stranger.envelope(1, GENESIS, &sealed);
    let got = store.ingest(&env.to_bytes().unwrap(), NOW).unwrap();
    assert_eq!(
        got,
        Ingested::Rejected {
            id: Some(env.body().id.clone()),
            station: Some("VAN-99-Z".into()),
            reason: "unknown station VAN-99-Z: it is not registered at the centre".into(),
        }
    );
    assert_eq!(store.stats().unwrap().rejected, 1);
    assert!(matches!(
        store.head("VAN-99-Z"),
        Err(CentreError::UnknownStation(s)) if s == "VAN-99-Z"
    ));
}

#[test]
fn forged_station_signature_is_refused() {
    let (_dir, store, van) = setup();
    let sealed = payload(1);
    upload(&store, &sealed);
    let forger = StationKey::generate();
    let env = van.seal(van.body(1, GENESIS, &sealed, 0), &forger);
    let got = store.ingest(&env.to_bytes().unwrap(), NOW).unwrap();
    assert_eq!(reason(got), RecordError::Signature.to_string());
    let st = store.statuses(&van.name, &[env.body().id.clone()]).unwrap();
    assert_eq!(st[0].status, "rejected");
    assert_eq!(
        st[0].reason.as_deref(),
        Some("station signature does not verify")
    );
    assert_eq!(store.stats().unwrap().records, 0);
}

#[test]
fn missing_or_wrong_officer_co_signature_is_refused() {
    let (_dir, store, van) = setup();
    let sealed = payload(1);
    upload(&store, &sealed);
    let bare = Envelope::new(van.body(1, GENESIS, &sealed, 0))
        .unwrap()
        .sign(&van.key)
        .unwrap();
    let got = store.ingest(&bare.to_bytes().unwrap(), NOW).unwrap();
    assert_eq!(
        reason(got),
        RecordError::OfficerSignatureMissing.to_string()
    );

    // Badge key of one officer, signature of another.
    let env = Envelope::new(van.body(1, GENESIS, &sealed, 1)).unwrap();
    let other = StationKey::generate();
    let sig = other.sign(&env.officer_message().unwrap());
    let env = env
        .with_officer_signature(CoSignature {
            key: van.officer.public_hex(),
            sig: hex::encode(sig.to_bytes()),
        })
        .sign(&van.key)
        .unwrap();
    let got = store.ingest(&env.to_bytes().unwrap(), NOW).unwrap();
    assert_eq!(reason(got), RecordError::OfficerSignature.to_string());
}

#[test]
fn chain_gap_is_refused_then_accepted_in_order() {
    let (_dir, store, van) = setup();
    let (p1, p2) = (payload(1), payload(2));
    upload(&store, &p1);
    upload(&store, &p2);
    let first = van.envelope(1, GENESIS, &p1);
    let second = van.envelope(2, &first.hash().unwrap(), &p2);
    let got = store.ingest(&second.to_bytes().unwrap(), NOW).unwrap();
    assert_eq!(reason(got), "chain gap: expected sequence 1, found 2");
    assert_eq!(store.stats().unwrap().rejected, 1);
    // Out of order is not fatal: once the gap is filled, the same envelope goes in.
    for env in [&first, &second] {
        assert!(matches!(
            store.ingest(&env.to_bytes().unwrap(), NOW).unwrap(),
            Ingested::Stored { .. }
        ));
    }
    let st = store
        .statuses(&van.name, &[second.body().id.clone(), "01JUNKNOWN".into()])
        .unwrap();
    assert_eq!(
        st,
        vec![
            RecordStatus {
                id: second.body().id.clone(),
                status: "verified".into(),
                reason: None
            },
            RecordStatus {
                id: "01JUNKNOWN".into(),
                status: "unknown".into(),
                reason: None
            },
        ]
    );
    assert_eq!(store.stats().unwrap().rejected, 0);
}

#[test]
fn chain_fork_is_refused() {
    let (_dir, store, van) = setup();
    let envs = chain(&store, &van, 1);
    let other = payload(9);
    upload(&store, &other);
    // Same sequence number, other content.
    let twin = van.seal(van.body(1, GENESIS, &other, 7), &van.key);
    let got = reason(store.ingest(&twin.to_bytes().unwrap(), NOW).unwrap());
    assert!(got.starts_with("chain fork: "), "{got}");
    assert!(got.contains(&envs[0].body().id), "{got}");
    // Same id, other content.
    let mut body = van.body(2, &envs[0].hash().unwrap(), &other, 0);
    body.id = envs[0].body().id.clone();
    let reuse = van.seal(body, &van.key);
    let got = reason(store.ingest(&reuse.to_bytes().unwrap(), NOW).unwrap());
    assert!(got.starts_with("chain fork: "), "{got}");
    // Next sequence number, but built on another history.
    let stray = van.envelope(2, GENESIS, &other);
    let got = reason(store.ingest(&stray.to_bytes().unwrap(), NOW).unwrap());
    assert!(got.starts_with("chain fork at sequence 2"), "{got}");
    assert_eq!(store.stats().unwrap().records, 1);
}

#[test]
fn envelope_before_its_payload_is_refused() {
    let (_dir, store, van) = setup();
    let sealed = payload(1);
    let env = van.envelope(1, GENESIS, &sealed);
    let got = reason(store.ingest(&env.to_bytes().unwrap(), NOW).unwrap());
    assert!(got.starts_with("payload not received"), "{got}");
    // Half an upload is still not received.
    store
        .put_blob_chunk(&sha256_hex(&sealed), 0, sealed.len() as u64, &sealed[..10])
        .unwrap();
    let got = reason(store.ingest(&env.to_bytes().unwrap(), NOW).unwrap());
    assert!(got.starts_with("payload not received"), "{got}");
    upload(&store, &sealed);
    assert!(matches!(
        store.ingest(&env.to_bytes().unwrap(), NOW).unwrap(),
        Ingested::Stored { .. }
    ));
}

#[test]
fn payload_that_does_not_match_the_envelope_is_refused() {
    let (dir, store, van) = setup();
    let sealed = payload(1);
    upload(&store, &sealed);
    let mut body = van.body(1, GENESIS, &sealed, 0);
    body.payload.len += 1;
    let env = van.seal(body, &van.key);
    let got = reason(store.ingest(&env.to_bytes().unwrap(), NOW).unwrap());
    assert!(got.starts_with("payload length mismatch"), "{got}");

    // A payload file damaged on disk after upload is not the payload: the station is told to
    // send it (again), never that its own record is wrong.
    let path = blob_file(dir.path(), &sha256_hex(&sealed));
    let mut bytes = fs::read(&path).unwrap();
    bytes[3] ^= 0x40;
    fs::write(&path, bytes).unwrap();
    let env = van.envelope(1, GENESIS, &sealed);
    let got = reason(store.ingest(&env.to_bytes().unwrap(), NOW).unwrap());
    assert!(got.starts_with("payload not received"), "{got}");
}

#[test]
fn garbage_envelope_is_refused_with_what_could_be_read() {
    let (_dir, store, _van) = setup();
    let got = store.ingest(b"not json", NOW).unwrap();
    assert!(
        matches!(got, Ingested::Rejected { id: None, station: None, ref reason }
        if reason.starts_with("envelope does not follow the schema"))
    );
    let claimed = br#"{"body":{"id":"01ABC","station":"VAN-07-A"},"extra":1}"#;
    let got = store.ingest(claimed, NOW).unwrap();
    assert!(
        matches!(got, Ingested::Rejected { id: Some(ref i), station: Some(ref s), .. }
        if i == "01ABC" && s == "VAN-07-A")
    );
    let st = store.statuses("VAN-07-A", &["01ABC".into()]).unwrap();
    assert_eq!(st[0].status, "rejected");
    let huge = vec![b' '; MAX_ENVELOPE + 1];
    assert!(matches!(
        store.ingest(&huge, NOW).unwrap(),
        Ingested::Rejected { .. }
    ));
}

#[test]
fn blob_upload_resumes_in_chunks_and_checks_the_hash() {
    let (dir, store, _van) = setup();
    let sealed = payload(3);
    let sha = sha256_hex(&sealed);
    let total = sealed.len() as u64;
    assert_eq!(store.blob_state(&sha).unwrap(), BlobState::Absent);
    assert_eq!(
        store
            .put_blob_chunk(&sha, 0, total, &sealed[..400])
            .unwrap(),
        BlobState::Partial { have: 400 }
    );
    // Skipping ahead is refused and says where to resume.
    assert!(matches!(
        store.put_blob_chunk(&sha, 800, total, &sealed[800..]),
        Err(CentreError::OffsetMismatch { have: 400 })
    ));
    assert_eq!(
        store.blob_state(&sha).unwrap(),
        BlobState::Partial { have: 400 }
    );
    // An overlapping resend is fine: only the new bytes are written.
    assert_eq!(
        store
            .put_blob_chunk(&sha, 300, total, &sealed[300..800])
            .unwrap(),
        BlobState::Partial { have: 800 }
    );
    assert_eq!(
        store
            .put_blob_chunk(&sha, 800, total, &sealed[800..])
            .unwrap(),
        BlobState::Complete { len: total }
    );
    assert_eq!(store.read_blob(&sha).unwrap(), sealed);
    assert!(!dir.path().join("blobs/partial").join(&sha).exists());
    // Idempotent once complete.
    assert_eq!(
        store.put_blob_chunk(&sha, 0, total, &sealed[..10]).unwrap(),
        BlobState::Complete { len: total }
    );

    // Bytes that do not hash to their address are discarded at the last chunk.
    let other = payload(5);
    let claimed = sha256_hex(&payload(6));
    store
        .put_blob_chunk(&claimed, 0, total, &other[..500])
        .unwrap();
    let err = store
        .put_blob_chunk(&claimed, 500, total, &other[500..])
        .unwrap_err();
    assert!(
        matches!(err, CentreError::BlobHashMismatch { ref expected, ref found }
        if *expected == claimed && *found == sha256_hex(&other))
    );
    assert_eq!(store.blob_state(&claimed).unwrap(), BlobState::Absent);
    assert!(matches!(
        store.read_blob(&claimed),
        Err(CentreError::BlobMissing(_))
    ));
}

#[test]
fn blob_limits_are_enforced() {
    let (_dir, store, _van) = setup();
    let sha = sha256_hex(b"x");
    assert!(matches!(
        store.put_blob_chunk(&sha, 0, MAX_BLOB + 1, b"x"),
        Err(CentreError::BlobTooLarge { .. })
    ));
    assert!(matches!(
        store.put_blob_chunk(&sha, 0, 1, b"xy"),
        Err(CentreError::ChunkPastEnd {
            end: 2,
            total_len: 1
        })
    ));
    // A partial longer than the length now claimed cannot become this payload: start over.
    store.put_blob_chunk(&sha, 0, 10, b"abcdef").unwrap();
    assert!(matches!(
        store.put_blob_chunk(&sha, 0, 1, b"x"),
        Err(CentreError::OffsetMismatch { have: 0 })
    ));
    assert_eq!(
        store.put_blob_chunk(&sha, 0, 1, b"x").unwrap(),
        BlobState::Complete { len: 1 }
    );
    let empty = sha256_hex(b"");
    assert_eq!(
        store.put_blob_chunk(&empty, 0, 0, b"").unwrap(),
        BlobState::Complete { len: 0 }
    );
}

#[test]
fn blob_addresses_cannot_escape_the_blob_directory() {
    let (dir, store, _van) = setup();
    let upper = sha256_hex(b"x").to_uppercase();
    for bad in [
        "../x",
        "",
        "partial",
        &"a".repeat(63),
        &upper,
        &format!("../{}", &"a".repeat(61)),
    ] {
        assert!(
            matches!(store.blob_state(bad), Err(CentreError::BadAddress(_))),
            "{bad}"
        );
        assert!(matches!(
            store.put_blob_chunk(bad, 0, 1, b"x"),
            Err(CentreError::BadAddress(_))
        ));
        assert!(matches!(
            store.read_blob(bad),
            Err(CentreError::BadAddress(_))
        ));
    }
    assert!(!dir.path().join("x").exists());
}

#[test]
fn verify_all_names_a_damaged_payload_file_and_a_damaged_envelope_row() {
    let (dir, store, van) = setup();
    let envs = chain(&store, &van, 3);
    let report = store.verify_all().unwrap();
    assert_eq!((report.ok, report.records, report.valid), (true, 3, 3));

    let blob = blob_file(dir.path(), &sha256_hex(&payload(2)));
    let good = fs::read(&blob).unwrap();
    let mut bad = good.clone();
    bad[100] ^= 1;
    fs::write(&blob, &bad).unwrap();
    let report = store.verify_all().unwrap();
    assert_eq!((report.ok, report.valid), (false, 2));
    assert_eq!(report.problems.len(), 1);
    assert_eq!(report.problems[0].id, envs[1].body().id);
    assert!(report.problems[0]
        .reason
        .starts_with("payload hash mismatch"));
    fs::write(&blob, &good).unwrap();

    let raw = Connection::open(dir.path().join("centre.db")).unwrap();
    let mut row: Vec<u8> = raw
        .query_row("SELECT envelope FROM envelopes WHERE seq = 2", [], |r| {
            r.get(0)
        })
        .unwrap();
    let at = row.len() - 10; // inside the station signature
    row[at] = if row[at] == b'0' { b'1' } else { b'0' };
    raw.execute("UPDATE envelopes SET envelope = ?1 WHERE seq = 2", [&row])
        .unwrap();
    let report = store.verify_all().unwrap();
    assert_eq!((report.ok, report.records, report.valid), (false, 3, 2));
    assert_eq!(report.problems.len(), 1, "{:?}", report.problems);
    assert_eq!(report.problems[0].id, envs[1].body().id);
    let json = serde_json::to_value(&report).unwrap();
    assert_eq!(
        json.as_object().unwrap().keys().collect::<Vec<_>>(),
        ["checked", "ok", "orphans", "problems", "records", "repaired", "valid"]
    );
    assert!(json["problems"][0]["reason"].is_string());
}

#[test]
fn list_and_stats_count_what_is_stored_and_refused() {
    let (_dir, store, van) = setup();
    let other = Van::new("VAN-08-B");
    register(&store, &other);
    chain(&store, &van, 2);
    chain(&store, &other, 1);
    let sealed = payload(1);
    let forged = van.seal(van.body(3, GENESIS, &sealed, 3), &other.key);
    store.ingest(&forged.to_bytes().unwrap(), NOW).unwrap();
    store.ingest(&forged.to_bytes().unwrap(), NOW + 1).unwrap();
    assert_eq!(
        store.stats().unwrap(),
        Stats {
            stations: 2,
            records: 3,
            verified: 3,
            rejected: 1
        }
    );
    let list = store.list().unwrap();
    let keys: Vec<(&str, u64)> = list.iter().map(|r| (r.station.as_str(), r.seq)).collect();
    assert_eq!(keys, [("VAN-07-A", 1), ("VAN-07-A", 2), ("VAN-08-B", 1)]);
    assert!(list
        .iter()
        .all(|r| r.status == "verified" && r.payload_len == 1000));
    let json = serde_json::to_value(store.stats().unwrap()).unwrap();
    assert_eq!(
        json,
        serde_json::json!({"stations": 2, "records": 3, "verified": 3, "rejected": 1})
    );
}

#[test]
fn station_registration_refuses_a_second_key() {
    let (_dir, store, van) = setup();
    assert!(!store.add_station(&van.public(), NOW + 1).unwrap());
    let impostor = StationPublic::new(&van.name, &StationKey::generate());
    assert!(matches!(
        store.add_station(&impostor, NOW),
        Err(CentreError::StationKeyConflict { ref station }) if *station == van.name
    ));
    assert_eq!(
        store.station_key(&van.name).unwrap(),
        Some(van.key.verifying_key())
    );
    assert_eq!(store.station_key("VAN-00").unwrap(), None);
    let bad_id = StationPublic::new("../etc", &StationKey::generate());
    assert!(matches!(
        store.add_station(&bad_id, NOW),
        Err(CentreError::BadStationId(_))
    ));
    let mut bad_key = van.public();
    bad_key.station = "VAN-09".into();
    bad_key.ed25519 = "zz".into();
    assert!(matches!(
        store.add_station(&bad_key, NOW),
        Err(CentreError::BadStationKey { .. })
    ));
}

#[test]
fn store_survives_reopening_and_refuses_garbage() {
    let (dir, store, van) = setup();
    chain(&store, &van, 2);
    drop(store);
    let store = CentreStore::open(dir.path()).unwrap();
    assert_eq!(store.head(&van.name).unwrap().0, 2);
    let conn = lock(&store.conn);
    let mode: String = conn
        .query_row("PRAGMA journal_mode", [], |r| r.get(0))
        .unwrap();
    let sync: i64 = conn
        .query_row("PRAGMA synchronous", [], |r| r.get(0))
        .unwrap();
    let fk: i64 = conn
        .query_row("PRAGMA foreign_keys", [], |r| r.get(0))
        .unwrap();
    assert_eq!((mode.as_str(), sync, fk), ("wal", 2, 1));
    assert!(migrations().validate().is_ok());

    let other = tempfile::tempdir().unwrap();
    fs::write(other.path().join("centre.db"), vec![0x42; 8192]).unwrap();
    assert!(matches!(
        CentreStore::open(other.path()),
        Err(CentreError::Damaged { .. })
    ));
}

#[test]
fn concurrent_ingests_keep_one_chain() {
    let (_dir, store, van) = setup();
    let store = std::sync::Arc::new(store);
    let mut envs: Vec<Envelope<Signed>> = Vec::new();
    for seq in 1..=8u64 {
        let prev = envs
            .last()
            .map_or(GENESIS.to_string(), |e| e.hash().unwrap());
        let sealed = payload(seq as u8);
        upload(&store, &sealed);
        envs.push(van.envelope(seq, &prev, &sealed));
    }
    // Every thread offers the whole chain until it is in; each envelope is stored once.
    let bytes: Vec<Vec<u8>> = envs.iter().map(|e| e.to_bytes().unwrap()).collect();
    let handles: Vec<_> = (0..4)
        .map(|_| {
            let store = store.clone();
            let bytes = bytes.clone();
            std::thread::spawn(move || {
                let mut stored = 0;
                for b in &bytes {
                    if let Ingested::Stored { .. } = store.ingest(b, NOW).unwrap() {
                        stored += 1;
                    }
                }
                stored
            })
        })
        .collect();
    let total: u64 = handles.into_iter().map(|h| h.join().unwrap()).sum();
    assert_eq!(total, 8);
    assert!(store.verify_all().unwrap().ok);
}

/// Two stores on one directory stand for two processes (the server and `tasjil-central import`):
/// their OS file locks on `blobs/.writer.lock` conflict just as two processes' do. One uploads
/// payloads in chunks while the other stores the same payloads whole, round after round.
#[test]
fn two_writers_of_one_payload_never_leave_a_wrong_file() {
    let dir = tempfile::tempdir().unwrap();
    let server = std::sync::Arc::new(CentreStore::open(dir.path()).unwrap());
    let importer = std::sync::Arc::new(CentreStore::open(dir.path()).unwrap());
    for round in 0..40u8 {
        let sealed: Vec<u8> = (0..200_000u32)
            .map(|i| (i as u8).wrapping_mul(round | 1).wrapping_add(round))
            .collect();
        let sha = sha256_hex(&sealed);
        let (a, b) = (server.clone(), importer.clone());
        let (s1, s2, h1) = (sealed.clone(), sealed.clone(), sha.clone());
        let chunked = std::thread::spawn(move || {
            let mut offset = 0u64;
            while offset < s1.len() as u64 {
                let end = (offset as usize + 7_000).min(s1.len());
                match a.put_blob_chunk(&h1, offset, s1.len() as u64, &s1[offset as usize..end]) {
                    Ok(BlobState::Complete { .. }) => return,
                    Ok(BlobState::Partial { have }) => offset = have,
                    Err(CentreError::OffsetMismatch { have }) => offset = have,
                    Err(e) => panic!("chunk upload failed: {e}"),
                    Ok(BlobState::Absent) => offset = 0,
                }
            }
        });
        let sha2 = sha.clone();
        let whole = std::thread::spawn(move || b.put_blob_whole(&sha2, &s2).unwrap());
        chunked.join().unwrap();
        assert!(matches!(whole.join().unwrap(), BlobState::Complete { .. }));
        let on_disk = fs::read(blob_file(dir.path(), &sha)).unwrap();
        assert_eq!(
            sha256_hex(&on_disk),
            sha,
            "round {round}: the payload file holds other bytes"
        );
    }
    let report = server.verify_all().unwrap();
    assert!(report.ok, "{:?}", report.problems);
    assert_eq!(report.orphans.len(), 40);
    assert!(report.repaired.is_empty());
}

/// A payload file whose bytes were changed on disk is never trusted for its name: ingest treats
/// it as absent (so the station sends it again), the new upload replaces it, and the record then
/// stores; `verify` moves a damaged file no record names out of the way and says so.
#[test]
fn a_damaged_payload_file_is_replaced_not_trusted() {
    let (dir, store, van) = setup();
    let sealed = payload(9);
    upload(&store, &sealed);
    let blob = blob_file(dir.path(), &sha256_hex(&sealed));
    let mut bad = fs::read(&blob).unwrap();
    bad.extend_from_slice(&bad.clone());
    fs::write(&blob, &bad).unwrap();

    let env = van.envelope(1, GENESIS, &sealed);
    let got = store.ingest(&env.to_bytes().unwrap(), NOW).unwrap();
    assert!(reason(got).starts_with("payload not received"));
    assert_eq!(
        store.blob_state(&sha256_hex(&sealed)).unwrap(),
        BlobState::Absent
    );
    assert_eq!(
        fs::read_dir(dir.path().join("blobs/damaged"))
            .unwrap()
            .count(),
        1
    );

    upload(&store, &sealed);
    let got = store.ingest(&env.to_bytes().unwrap(), NOW + 1).unwrap();
    assert!(matches!(got, Ingested::Stored { seq: 1, .. }), "{got:?}");

    let stray = payload(10);
    upload(&store, &stray);
    let stray_file = blob_file(dir.path(), &sha256_hex(&stray));
    fs::write(&stray_file, b"not the payload").unwrap();
    let report = store.verify_all().unwrap();
    assert!(report.ok, "{:?}", report.problems);
    assert_eq!(report.repaired.len(), 1, "{:?}", report.repaired);
    assert!(report.repaired[0].contains(&sha256_hex(&stray)));
    assert!(!stray_file.exists());
    // Uploading it again is accepted: the damaged file no longer stands in the way.
    upload(&store, &stray);
}

#[test]
fn the_data_directory_and_its_blob_directories_are_private() {
    use std::os::unix::fs::PermissionsExt;
    let dir = tempfile::tempdir().unwrap();
    let centre = dir.path().join("centre");
    fs::create_dir(&centre).unwrap();
    fs::set_permissions(&centre, fs::Permissions::from_mode(0o755)).unwrap();
    let _store = CentreStore::open(&centre).unwrap();
    for d in ["", "blobs", "blobs/partial"] {
        let mode = fs::metadata(centre.join(d)).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o700, "{d:?} is {mode:o}");
    }
}

/// A station that copies another station's enrolment ids (read off receipts) never blocks the
/// rightful station's chain, whichever arrives first: the later record of an id is held, kept in
/// its own chain, and reported to its station as refused with the reason.
#[test]
fn an_id_reused_by_another_station_is_held_and_blocks_no_chain() {
    let (_dir, store, victim) = setup();
    let thief = Van::new("VAN-99-Z");
    register(&store, &thief);

    // The victim first: the thief's copy of id 1 is held; the victim's chain goes on.
    let v1 = victim.envelope(1, GENESIS, &payload(1));
    upload(&store, &payload(1));
    assert!(matches!(
        store.ingest(&v1.to_bytes().unwrap(), NOW).unwrap(),
        Ingested::Stored { .. }
    ));
    let mut copied = thief.body(1, GENESIS, &payload(2), 0);
    copied.id = v1.body().id.clone();
    let copy = thief.seal(copied, &thief.key);
    upload(&store, &payload(2));
    let got = store.ingest(&copy.to_bytes().unwrap(), NOW + 1).unwrap();
    assert!(
        matches!(&got, Ingested::Held { station, .. } if station == "VAN-99-Z"),
        "{got:?}"
    );
    let told = store.statuses("VAN-99-Z", &[v1.body().id.clone()]).unwrap();
    assert_eq!(told[0].status, "rejected");
    assert!(told[0]
        .reason
        .as_deref()
        .unwrap()
        .contains("already used by station VAN-07-A"));
    let mine = store.statuses("VAN-07-A", &[v1.body().id.clone()]).unwrap();
    assert_eq!(mine[0].status, "verified");

    // The thief first with the victim's next id: the victim's record still stores in its chain
    // (held), and the victim's later records deliver normally.
    let v2 = victim.envelope(2, &v1.hash().unwrap(), &payload(3));
    let mut early = thief.body(2, &copy.hash().unwrap(), &payload(4), 0);
    early.id = v2.body().id.clone();
    let early = thief.seal(early, &thief.key);
    upload(&store, &payload(4));
    // Nobody holds that id yet: the centre cannot know it is a copy.
    assert!(matches!(
        store.ingest(&early.to_bytes().unwrap(), NOW + 2).unwrap(),
        Ingested::Stored { .. }
    ));
    upload(&store, &payload(3));
    let got = store.ingest(&v2.to_bytes().unwrap(), NOW + 3).unwrap();
    assert!(
        matches!(&got, Ingested::Held { station, seq: 2, .. } if station == "VAN-07-A"),
        "{got:?}"
    );
    let v3 = victim.envelope(3, &v2.hash().unwrap(), &payload(5));
    upload(&store, &payload(5));
    let got = store.ingest(&v3.to_bytes().unwrap(), NOW + 4).unwrap();
    assert!(matches!(got, Ingested::Stored { seq: 3, .. }), "{got:?}");
    assert_eq!(store.head("VAN-07-A").unwrap().0, 3);
    let report = store.verify_all().unwrap();
    assert!(report.ok, "{:?}", report.problems);
    assert_eq!(report.records, 5);
}

#[test]
fn the_records_list_pages_by_cursor_and_filters_without_repeating_a_row() {
    let (_dir, store, van) = setup();
    chain(&store, &van, 7);
    use super::console::RecordFilter;
    let all = RecordFilter::default();
    let mut seen = Vec::new();
    let mut after = None;
    loop {
        let (rows, next) = store.records_page(&all, after.as_ref(), 3).unwrap();
        assert!(rows.len() <= 3);
        seen.extend(rows.into_iter().map(|r| r.seq));
        match next {
            Some(c) => after = Some(c),
            None => break,
        }
    }
    assert_eq!(
        seen,
        [7, 6, 5, 4, 3, 2, 1],
        "newest received first, each once"
    );
    let by_station = RecordFilter {
        station: Some("VAN-07-A".into()),
        day: Some("2025-06-15".into()),
        ..RecordFilter::default()
    };
    // NOW is 2025-06-15T15:06:40Z.
    assert_eq!(
        store.records_page(&by_station, None, 50).unwrap().0.len(),
        7
    );
    let other_day = RecordFilter {
        day: Some("2025-06-16".into()),
        ..RecordFilter::default()
    };
    assert!(store
        .records_page(&other_day, None, 50)
        .unwrap()
        .0
        .is_empty());
    let bad = RecordFilter {
        status: Some("lost".into()),
        ..RecordFilter::default()
    };
    assert!(matches!(
        store.records_page(&bad, None, 50),
        Err(CentreError::BadStaff(_))
    ));
}

#[test]
fn an_issuance_status_is_kept_with_its_history_and_written_into_the_stations_ledger() {
    use super::console::{Issuance, RecordFilter};
    let (_dir, store, van) = setup();
    let envs = chain(&store, &van, 3);
    let id = envs[0].body().id.clone();
    let pick = vec![(van.name.clone(), id.clone())];
    assert!(
        matches!(
            store.set_issuance(&pick, Issuance::Reenrol, Some("  "), "issa", NOW + 10),
            Err(CentreError::BadStaff(m)) if m.contains("say why")
        ),
        "re-enrol needs a reason"
    );
    store
        .set_issuance(&pick, Issuance::Accepted, None, "issa", NOW + 10)
        .unwrap();
    store
        .set_issuance(
            &pick,
            Issuance::Reenrol,
            Some("Photo not compliant"),
            "issa",
            NOW + 20,
        )
        .unwrap();
    let facts = store.record_facts(&van.name, &id).unwrap().unwrap();
    assert_eq!(facts.row.issuance.as_deref(), Some("reenrol"));
    assert_eq!(
        facts.issuance_reason.as_deref(),
        Some("Photo not compliant")
    );
    let history: Vec<_> = facts
        .issuance_history
        .iter()
        .map(|e| e.status.as_str())
        .collect();
    assert_eq!(history, ["accepted", "reenrol"]);

    // The van hears it through its ledger of that day.
    let day = tasjil_sync::ledger::day_of_ms(envs[0].body().captured.finished_ms);
    let name = tasjil_sync::ledger::doc_name(&van.name, &day);
    let ledger = store.ledger(&name).unwrap().unwrap();
    let current = ledger.status_history(&id).last().cloned().unwrap();
    assert_eq!(current.status, tasjil_sync::ledger::Status::ReenrolNeeded);
    assert_eq!(current.reason.as_deref(), Some("Photo not compliant"));
    assert!(store
        .issuance_ledgers(&van.name, NOW)
        .unwrap()
        .contains(&name));

    let reenrol = RecordFilter {
        status: Some("reenrol".into()),
        ..RecordFilter::default()
    };
    assert_eq!(store.records_page(&reenrol, None, 50).unwrap().0.len(), 1);
    let o = store.overview(NOW + 30).unwrap();
    assert_eq!((o.verified, o.awaiting_issuance, o.reenrol), (3, 2, 1));
    assert_eq!(o.stations[0].waiting, 2);
    assert_eq!(o.stations[0].last_contact_kind.as_deref(), Some("sync"));

    // A record the centre does not hold, or holds but did not verify, cannot be issued, and the
    // whole batch is refused with it.
    let mixed = vec![
        (van.name.clone(), envs[1].body().id.clone()),
        (van.name.clone(), "01JNOTHERE0000000000000000".into()),
    ];
    assert!(store
        .set_issuance(&mixed, Issuance::Issued, None, "issa", NOW + 40)
        .is_err());
    let facts = store
        .record_facts(&van.name, &envs[1].body().id)
        .unwrap()
        .unwrap();
    assert_eq!(
        facts.row.issuance, None,
        "nothing of a refused batch is kept"
    );
}

#[test]
fn every_delivery_is_a_batch_with_its_counts_and_reasons() {
    let (_dir, store, van) = setup();
    let envs = chain(&store, &van, 2);
    // The same two again, and a forged third.
    let again: Vec<Vec<u8>> = envs.iter().map(|e| e.to_bytes().unwrap()).collect();
    let refs: Vec<&[u8]> = again.iter().map(Vec::as_slice).collect();
    store.ingest_batch(&refs, NOW + 100).unwrap();
    let batches = store.batches(None, 10).unwrap();
    assert_eq!(batches.len(), 3, "two single ingests and one batch");
    assert_eq!((batches[0].stored, batches[0].already), (0, 2));
    assert_eq!(batches[0].kind, "sync");
    assert_eq!(batches[0].station, van.name);
    let older = store.batches(Some(batches[0].seq), 10).unwrap();
    assert_eq!(older.len(), 2);
}

#[test]
fn the_record_counters_follow_every_change_and_verify_rebuilds_them() {
    use super::console::Issuance;
    let (_dir, store, van) = setup();
    let envs = chain(&store, &van, 4);
    let pick = vec![(van.name.clone(), envs[0].body().id.clone())];
    store
        .set_issuance(&pick, Issuance::Issued, None, "issa", NOW)
        .unwrap();
    let o = store.overview(NOW).unwrap();
    assert_eq!((o.verified, o.awaiting_issuance), (4, 3));
    assert_eq!(store.stats().unwrap().records, 4);
    let report = store.verify_all().unwrap();
    assert!(report.ok && report.repaired.is_empty(), "{report:?}");
    // Counters damaged on disk are caught and rebuilt.
    {
        let conn = rusqlite::Connection::open(store.db_path()).unwrap();
        conn.execute("UPDATE record_counts SET n = n + 5", [])
            .unwrap();
    }
    assert_eq!(
        store.stats().unwrap().records,
        14,
        "two counter rows, five more each"
    );
    let report = store.verify_all().unwrap();
    assert_eq!(report.repaired.len(), 1, "{report:?}");
    assert_eq!(store.stats().unwrap().records, 4);
}

#[test]
fn verdicts_are_signed_for_the_exact_envelope_when_the_store_has_the_centre_key() {
    let (_dir, store, van) = setup();
    let key = centre_key();
    let envs = chain(&store, &van, 1);
    let id = envs[0].body().id.clone();
    let hash = sha256_hex(&envs[0].to_bytes().unwrap());
    let name = tasjil_sync::ledger::doc_name(&van.name, &tasjil_sync::ledger::day_of_ms(5));
    let entry = store
        .ledger(&name)
        .unwrap()
        .unwrap()
        .status_history(&id)
        .pop()
        .unwrap();
    assert_eq!(entry.status, tasjil_sync::ledger::Status::Verified);
    assert!(entry.verify(&key.verifying_key(), &van.name, &id, &hash));
    assert!(!entry.verify(&key.verifying_key(), &van.name, &id, &"0".repeat(64)));
    // An issuance status is a signed verdict too.
    store
        .set_issuance(
            &[(van.name.clone(), id.clone())],
            super::console::Issuance::Issued,
            None,
            "issa",
            NOW + 1,
        )
        .unwrap();
    let ledger = store.ledger(&name).unwrap().unwrap();
    let issued = ledger.status_history(&id).pop().unwrap();
    assert_eq!(issued.status, tasjil_sync::ledger::Status::Issued);
    assert!(issued.verify(&key.verifying_key(), &van.name, &id, &hash));
}

fn held_reason(outcome: Ingested) -> String {
    match outcome {
        Ingested::Held { reason, .. } => reason,
        other => panic!("expected a held record, got {other:?}"),
    }
}

#[test]
fn roster_versions_are_signed_in_order_and_a_revoked_badge_stays_revoked() {
    use tasjil_sync::roster::{Role, Roster, RosterEntry};
    let (_dir, store, van) = setup();
    let v1 = store.roster_latest().unwrap().unwrap();
    assert_eq!(v1.version(), 1);
    let bytes = v1.to_bytes();
    assert!(Roster::verify(&bytes, &[centre_key().verifying_key()]).is_ok());
    let sup = StationKey::generate();
    let entry = RosterEntry {
        id: "SUP-1".into(),
        name: "Supervisor".into(),
        role: Role::Supervisor,
        badge: sup.public_hex(),
        stations: vec!["*".into()],
        valid_from_ms: 0,
        valid_until_ms: None,
        revoked: None,
    };
    assert_eq!(store.roster_add(&entry, NOW + 1).unwrap().version(), 2);
    // The same id twice, or one badge for two ids, is refused.
    assert!(store.roster_add(&entry, NOW + 2).is_err());
    let twin = RosterEntry {
        id: "SUP-2".into(),
        ..entry.clone()
    };
    assert!(store.roster_add(&twin, NOW + 2).is_err());
    assert!(store.roster_revoke("SUP-1", "  ", NOW + 3).is_err());
    let v3 = store.roster_revoke("SUP-1", "lost", NOW + 3).unwrap();
    assert_eq!(v3.version(), 3);
    assert!(v3.entry("SUP-1").unwrap().revoked.is_some());
    assert!(store.roster_revoke("SUP-1", "again", NOW + 4).is_err());
    assert!(store.roster_revoke("NOBODY", "x", NOW + 4).is_err());
    // A revoked badge is never put back; the officer gets a new one.
    assert!(store.roster_add(&entry, NOW + 5).is_err());
    let new_badge = StationKey::generate();
    let renewed = RosterEntry {
        badge: new_badge.public_hex(),
        ..entry.clone()
    };
    assert_eq!(store.roster_add(&renewed, NOW + 5).unwrap().version(), 4);
    // ... and the old badge's revocation still counts, whatever version a station held.
    let refused = store
        .roster_allows(
            Some(2),
            "SUP-1",
            &sup.public_hex(),
            &van.name,
            Role::Supervisor,
            NOW + 10,
        )
        .unwrap()
        .unwrap_err();
    assert!(refused.contains("revoked"), "{refused}");
    assert!(store
        .roster_allows(
            Some(2),
            "SUP-1",
            &sup.public_hex(),
            &van.name,
            Role::Supervisor,
            NOW + 2
        )
        .unwrap()
        .is_ok());
    assert!(store
        .roster_allows(
            None,
            "SUP-1",
            &new_badge.public_hex(),
            &van.name,
            Role::Supervisor,
            NOW + 10
        )
        .unwrap()
        .is_ok());

    // A station gets the latest only when it holds an older one; a stale one is issued afresh.
    assert_eq!(store.roster_for_station(Some(4), NOW + 10).unwrap(), None);
    assert_eq!(
        store
            .roster_for_station(Some(1), NOW + 10)
            .unwrap()
            .unwrap()
            .version(),
        4
    );
    let later = NOW + 5 + super::roster::REISSUE_AFTER_MS + 1;
    let fresh = store.roster_for_station(Some(4), later).unwrap().unwrap();
    assert_eq!((fresh.version(), fresh.roster.issued_ms), (5, later));
    assert_eq!(
        fresh.roster.entries,
        store.roster_latest().unwrap().unwrap().roster.entries
    );
}

#[test]
fn a_record_the_roster_did_not_allow_is_held_and_blocks_no_chain() {
    let (_dir, store, van) = setup();
    let envs = chain(&store, &van, 1);
    let mut prev = envs[0].hash().unwrap();

    // Co-signed by a badge the roster does not list for this officer.
    let stranger = Van {
        name: van.name.clone(),
        key: StationKey::from_seed([0; 32]),
        officer: StationKey::generate(),
        roster: std::cell::Cell::new(van.roster.get()),
    };
    let sealed = payload(2);
    upload(&store, &sealed);
    let env = stranger.seal(van.body(2, &prev, &sealed, 0), &van.key);
    let why = held_reason(store.ingest(&env.to_bytes().unwrap(), NOW + 2).unwrap());
    assert!(
        why.contains("roster") && why.contains("does not list"),
        "{why}"
    );
    prev = env.hash().unwrap();

    // No roster version on a station that is not a training station: held.
    let sealed = payload(3);
    upload(&store, &sealed);
    let mut body = van.body(3, &prev, &sealed, 0);
    body.roster = None;
    let env = van.seal(body, &van.key);
    let why = held_reason(store.ingest(&env.to_bytes().unwrap(), NOW + 3).unwrap());
    assert!(why.contains("names no roster version"), "{why}");
    prev = env.hash().unwrap();

    // A version the centre never issued: held.
    let sealed = payload(4);
    upload(&store, &sealed);
    let mut body = van.body(4, &prev, &sealed, 0);
    body.roster = Some(99);
    let env = van.seal(body, &van.key);
    let why = held_reason(store.ingest(&env.to_bytes().unwrap(), NOW + 4).unwrap());
    assert!(why.contains("never issued"), "{why}");
    prev = env.hash().unwrap();

    // The rightful badge again: stored, the chain went on through the held records.
    let sealed = payload(5);
    upload(&store, &sealed);
    let env = van.envelope(5, &prev, &sealed);
    assert!(matches!(
        store.ingest(&env.to_bytes().unwrap(), NOW + 5).unwrap(),
        Ingested::Stored { seq: 5, .. }
    ));
    prev = env.hash().unwrap();

    // Revoked at the centre: what the badge co-signs afterwards is held, even under the old
    // roster version the van still holds.
    store
        .roster_revoke(&van.officer_id(), "badge lost in the market", NOW + 6)
        .unwrap();
    let sealed = payload(6);
    upload(&store, &sealed);
    let mut body = van.body(6, &prev, &sealed, 0);
    body.captured.finished_ms = NOW + 7;
    let env = van.seal(body, &van.key);
    let why = held_reason(store.ingest(&env.to_bytes().unwrap(), NOW + 8).unwrap());
    assert!(why.contains("revoked") && why.contains("market"), "{why}");

    // The station is told, with the reason.
    let ids: Vec<String> = vec![env.body().id.clone()];
    let st = store.statuses(&van.name, &ids).unwrap();
    assert_eq!(st[0].status, "rejected", "{st:?}");
    assert!(st[0].reason.as_deref().unwrap_or("").contains("revoked"));
    assert!(store.verify_all().unwrap().ok);
}

/// A restored station: its link is refused when forged, sent by another station or in a place
/// an envelope holds; once stored, records continue from it, the old branch still grows (a late
/// USB bundle), and `verify` checks both branches and the link.
#[test]
fn a_restore_link_opens_a_branch_that_blocks_nothing() {
    let (_dir, store, van) = setup();
    let envs = chain(&store, &van, 4);
    let link_of = |from: &Envelope<Signed>, seq: u64, signer: &StationKey| {
        tasjil_sync::RestoreLink::sign(
            tasjil_sync::RestoreBody {
                v: tasjil_sync::record::RESTORE_VERSION,
                station: van.name.clone(),
                from_seq: from.body().seq,
                from_hash: from.hash().unwrap(),
                seq,
                restored_ms: NOW,
                reason: "disk replaced".into(),
            },
            signer,
        )
        .unwrap()
        .to_bytes()
        .unwrap()
    };
    let place = 2_000_000;
    // Restored from a backup that ended at record 2 (records 3 and 4 are here already).
    let forged = link_of(&envs[1], place, &StationKey::generate());
    assert!(matches!(
        store.store_restore_link(&van.name, &forged, NOW).unwrap(),
        LinkStored::Rejected { .. }
    ));
    let link = link_of(&envs[1], place, &van.key);
    let thief = Van::new("VAN-THIEF");
    register(&store, &thief);
    assert!(matches!(
        store.store_restore_link(&thief.name, &link, NOW).unwrap(),
        LinkStored::Rejected { .. }
    ));
    let taken = link_of(&envs[1], 4, &van.key);
    match store.store_restore_link(&van.name, &taken, NOW).unwrap() {
        LinkStored::Rejected { reason, .. } => assert!(reason.contains("chain fork"), "{reason}"),
        other => panic!("a link in an envelope's place was taken: {other:?}"),
    }
    assert_eq!(
        store.store_restore_link(&van.name, &link, NOW).unwrap(),
        LinkStored::Stored { seq: place }
    );
    assert_eq!(
        store.store_restore_link(&van.name, &link, NOW).unwrap(),
        LinkStored::AlreadyHave { seq: place }
    );
    assert_eq!(store.head(&van.name).unwrap().0, place);

    // The new branch continues from the link.
    let sealed = payload(40);
    upload(&store, &sealed);
    let after = van.seal(
        van.body(place + 1, &sha256_hex(&link), &sealed, 40),
        &van.key,
    );
    assert!(matches!(
        store.ingest(&after.to_bytes().unwrap(), NOW).unwrap(),
        Ingested::Stored { .. }
    ));
    // The old branch too: record 5 of the lost store, from a stick imported late.
    let sealed = payload(50);
    upload(&store, &sealed);
    let late = van.envelope(5, &envs[3].hash().unwrap(), &sealed);
    assert!(matches!(
        store.ingest(&late.to_bytes().unwrap(), NOW).unwrap(),
        Ingested::Stored { .. }
    ));
    // A record after nothing the centre holds is a gap, named as such.
    let sealed = payload(60);
    upload(&store, &sealed);
    let stray = van.envelope(place + 5, &sha256_hex(&link), &sealed);
    let got = reason(store.ingest(&stray.to_bytes().unwrap(), NOW).unwrap());
    assert!(got.starts_with("chain gap"), "{got}");

    let report = store.verify_all().unwrap();
    assert!(report.ok, "{report:?}");
    assert_eq!(report.valid, 6);
    assert_eq!(store.restore_links().unwrap().len(), 1);
}

/// Payload files live under `blobs/<first two hex digits>/`; a store from before the fan-out has
/// them flat in `blobs/`, and opening it moves them into place (once), where ingest, verify and
/// the orphan listing find them.
#[test]
fn payload_files_are_fanned_out_and_flat_ones_moved_into_place_at_open() {
    let (dir, store, van) = setup();
    chain(&store, &van, 2);
    let stray = payload(40);
    upload(&store, &stray);
    let sha = sha256_hex(&payload(1));
    let fanned = blob_file(dir.path(), &sha);
    assert!(fanned.is_file());
    drop(store);

    // As an older centre left them: flat.
    let flat = dir.path().join("blobs").join(&sha);
    fs::rename(&fanned, &flat).unwrap();
    let stray_flat = dir.path().join("blobs").join(sha256_hex(&stray));
    fs::rename(blob_file(dir.path(), &sha256_hex(&stray)), &stray_flat).unwrap();

    let store = CentreStore::open(dir.path()).unwrap();
    assert!(!flat.exists() && !stray_flat.exists());
    assert!(fanned.is_file());
    assert_eq!(
        store.blob_state(&sha).unwrap(),
        BlobState::Complete {
            len: payload(1).len() as u64
        }
    );
    let report = store.verify_all().unwrap();
    assert!(report.ok, "{:?}", report.problems);
    assert_eq!(report.orphans, vec![sha256_hex(&stray)]);
    assert!(dir.path().join("blobs/.writer.lock").is_file());
    assert!(dir.path().join("blobs/partial").is_dir());
}

/// `verify` checks what is new since its last run plus a rotating sample; a damaged record the
/// sample reaches keeps being reported until it is put right; `--full` always sees it.
#[test]
fn incremental_verify_checks_new_records_and_a_rotating_sample() {
    use super::{VerifyScope::Full, VerifyScope::Incremental};
    let (dir, store, van) = setup();
    let envs = chain(&store, &van, 3);
    let r = store.verify(Incremental { sample: 0 }).unwrap();
    assert!(r.ok, "{:?}", r.problems);
    assert_eq!((r.records, r.valid, r.checked.new), (3, 3, 3));
    let r = store.verify(Incremental { sample: 0 }).unwrap();
    assert_eq!((r.records, r.checked.new, r.checked.sampled), (3, 0, 0));

    // A fourth record is new; its chain is checked against the hash verified last time.
    let sealed = payload(4);
    upload(&store, &sealed);
    let env = van.envelope(4, &envs[2].hash().unwrap(), &sealed);
    store.ingest(&env.to_bytes().unwrap(), NOW + 4).unwrap();
    let r = store.verify(Incremental { sample: 0 }).unwrap();
    assert!(r.ok, "{:?}", r.problems);
    assert_eq!((r.records, r.checked.new), (4, 1));

    // Damage an old payload: no new record, no sample, not seen; the sample finds it, and from
    // then on every run reports it until it is put right.
    let blob = blob_file(dir.path(), &sha256_hex(&payload(2)));
    let good = fs::read(&blob).unwrap();
    let mut bad = good.clone();
    bad[7] ^= 1;
    fs::write(&blob, &bad).unwrap();
    assert!(store.verify(Incremental { sample: 0 }).unwrap().ok);
    let r = store.verify(Incremental { sample: 100 }).unwrap();
    assert!(!r.ok);
    assert_eq!(r.checked.sampled, 4);
    assert_eq!(r.problems.len(), 1, "{:?}", r.problems);
    assert_eq!(r.problems[0].id, envs[1].body().id);
    let r = store.verify(Incremental { sample: 0 }).unwrap();
    assert_eq!((r.ok, r.valid, r.checked.new), (false, 3, 3));
    let r = store.verify(Full).unwrap();
    assert_eq!((r.ok, r.valid, r.checked.full), (false, 3, 4));
    fs::write(&blob, &good).unwrap();
    let r = store.verify(Incremental { sample: 0 }).unwrap();
    assert!(r.ok, "{:?}", r.problems);
    assert_eq!(r.checked.new, 3);
    assert_eq!(
        store.verify(Incremental { sample: 0 }).unwrap().checked.new,
        0
    );

    // The sample rotates: two runs of two cover all four records.
    let a = store.verify(Incremental { sample: 2 }).unwrap();
    let b = store.verify(Incremental { sample: 2 }).unwrap();
    assert_eq!((a.checked.sampled, b.checked.sampled), (2, 2));
}

/// `list` pages by cursor in station and sequence order.
#[test]
fn list_pages_by_cursor() {
    let (_dir, store, van) = setup();
    chain(&store, &van, 5);
    let mut seen = Vec::new();
    let mut after = None;
    loop {
        let next = store
            .list_each(after.as_ref(), Some(2), |r| {
                seen.push(r.seq);
                Ok::<_, CentreError>(())
            })
            .unwrap();
        match next {
            Some(c) => after = Some(ListCursor::decode(&c.encode()).unwrap()),
            None => break,
        }
    }
    assert_eq!(seen, vec![1, 2, 3, 4, 5]);
    assert_eq!(store.list().unwrap().len(), 5);
}

#[test]
fn the_roster_governs_a_training_station_where_it_has_a_part() {
    use tasjil_sync::roster::{Role, RosterEntry};
    let (_dir, store, _van) = setup();
    // A training van nobody is listed for yet (the set-up's roster lists staff for its own van).
    let train = Van::new("VAN-TRAIN");
    assert!(store.add_station(&train.public(), NOW).unwrap());
    let here = train.name.as_str();
    let entry = |id: &str, role: Role, key: &StationKey, stations: &[&str]| RosterEntry {
        id: id.into(),
        name: id.into(),
        role,
        badge: key.public_hex(),
        stations: stations.iter().map(|s| s.to_string()).collect(),
        valid_from_ms: 0,
        valid_until_ms: None,
        revoked: None,
    };
    let (all, gone, sim) = (
        StationKey::generate(),
        StationKey::generate(),
        StationKey::generate(),
    );
    let governs = |station: &str, named: Option<u64>, id: &str, key: &StationKey| {
        store
            .roster_governs_training(station, named, id, &key.public_hex())
            .unwrap()
    };
    // A supervisor for every station does not bring a training van under the roster.
    store
        .roster_add(&entry("SUP-ALL", Role::Supervisor, &all, &["*"]), NOW + 1)
        .unwrap();
    assert_eq!(governs(here, None, "SUP-SIM", &sim), None);
    // Records that name a roster version: the van held one.
    assert!(governs(here, Some(2), "SUP-SIM", &sim)
        .unwrap()
        .contains("roster version 2"));
    // A badge the roster knows, by id or by key, is judged by its entry anywhere.
    assert!(governs(here, None, "SUP-ALL", &sim).is_some());
    assert!(governs(here, None, "SUP-SIM", &all).is_some());
    // A revoked badge, whichever id it now claims.
    store
        .roster_add(
            &entry("SUP-GONE", Role::Supervisor, &gone, &["VAN-X"]),
            NOW + 2,
        )
        .unwrap();
    store.roster_revoke("SUP-GONE", "lost", NOW + 3).unwrap();
    assert!(governs(here, None, "SUP-OTHER", &gone)
        .unwrap()
        .contains("revoked"));
    // Staff listed for the station, by name or through a group.
    assert_eq!(governs(here, None, "SUP-SIM", &sim), None);
    let off = StationKey::generate();
    store
        .roster_add(&entry("OFF-T", Role::Officer, &off, &["@school"]), NOW + 4)
        .unwrap();
    assert_eq!(governs(here, None, "SUP-SIM", &sim), None);
    store
        .station_group_change("school", here, true, NOW + 5)
        .unwrap();
    assert!(governs(here, None, "SUP-SIM", &sim)
        .unwrap()
        .contains(&format!("lists staff for station {here}")));
    assert_eq!(governs("VAN-OTHER", None, "SUP-SIM", &sim), None);
}
