//! The PC/SC officer badge through the real stack: pcscd, vsmartcard's vpcd reader, and an
//! opcard OpenPGP card in a separate process. Each test inserts a fresh card.

use std::path::Path;
use std::time::Duration;

use ed25519_dalek::{Signature, Verifier, VerifyingKey};
use sha2::{Digest, Sha256};
use tasjil_drivers::card::{self, BadgeError, OfficerBadge, PcscBadge, Personalisation};
use tasjil_vcard::{require_stack, VirtualCard, ADMIN_PIN, READER, USER_PIN};

fn bin() -> &'static Path {
    Path::new(env!("CARGO_BIN_EXE_tasjil-vcard"))
}

/// Insert a fresh card and personalise it as officer `id` through PC/SC admin commands.
fn badge_card(serial: u32, id: &str, name: &str) -> (VirtualCard, [u8; 32]) {
    let vc = VirtualCard::insert(bin(), serial);
    let key = card::personalise(
        READER,
        ADMIN_PIN,
        &Personalisation {
            officer_id: id,
            officer_name: name,
        },
    )
    .expect("personalise the virtual card");
    (vc, key)
}

#[test]
fn badge_reads_name_officer_id_and_key() {
    let Some(_stack) = require_stack("badge_reads_name_officer_id_and_key") else {
        return;
    };
    let (_card, key) = badge_card(0x7A51_0001, "OFF-0042", "Haddad<<Amina");
    let readers = card::readers().expect("readers");
    assert!(
        readers.iter().any(|r| r.name == READER && r.card_present),
        "{readers:?}"
    );
    let badge = PcscBadge::open(READER).expect("open badge");
    let info = badge.info();
    assert_eq!(info.officer_id, "OFF-0042");
    assert_eq!(info.officer_name, "Haddad<<Amina");
    assert_eq!(info.public_key, key);
    assert_eq!(info.pin_retries, 3);
    assert!(info.ident.ends_with("7A510001"), "{}", info.ident);
    assert_eq!(badge.officer_id(), "OFF-0042");
}

#[test]
fn wrong_pin_decrements_the_counter_and_right_pin_restores_it() {
    let Some(_stack) = require_stack("wrong_pin_decrements_the_counter_and_right_pin_restores_it")
    else {
        return;
    };
    let (_card, _) = badge_card(0x7A51_0002, "OFF-0043", "Benali<<Youssef");
    let mut badge = PcscBadge::open(READER).expect("open badge");
    assert_eq!(badge.pin_retries().expect("retries"), 3);
    match badge.verify_pin("000000") {
        Err(BadgeError::WrongPin { retries_left: 2 }) => {}
        other => panic!("expected WrongPin with 2 left, got {other:?}"),
    }
    assert_eq!(badge.pin_retries().expect("retries"), 2);
    match badge.verify_pin("999999") {
        Err(e @ BadgeError::WrongPin { retries_left: 1 }) => {
            assert!(e.to_string().contains("1 attempts left"), "{e}")
        }
        other => panic!("expected WrongPin with 1 left, got {other:?}"),
    }
    // Signing is refused while no right PIN was given.
    assert!(matches!(
        badge.sign(b"anything"),
        Err(BadgeError::PinNotVerified)
    ));
    badge.verify_pin(USER_PIN).expect("right PIN");
    assert_eq!(
        badge.pin_retries().expect("retries"),
        3,
        "a right PIN resets the counter"
    );
}

#[test]
fn pin_blocks_after_three_wrong_attempts() {
    let Some(_stack) = require_stack("pin_blocks_after_three_wrong_attempts") else {
        return;
    };
    let (_card, _) = badge_card(0x7A51_0003, "OFF-0044", "Idrissi<<Sara");
    let mut badge = PcscBadge::open(READER).expect("open badge");
    for left in [2, 1] {
        assert!(matches!(
            badge.verify_pin("111111"),
            Err(BadgeError::WrongPin { retries_left }) if retries_left == left
        ));
    }
    assert!(matches!(
        badge.verify_pin("111111"),
        Err(BadgeError::Blocked)
    ));
    // Even the right PIN no longer opens it.
    assert!(matches!(
        badge.verify_pin(USER_PIN),
        Err(BadgeError::Blocked)
    ));
}

#[test]
fn on_card_signature_verifies_with_the_cards_public_key() {
    let Some(_stack) = require_stack("on_card_signature_verifies_with_the_cards_public_key") else {
        return;
    };
    let (_card, key) = badge_card(0x7A51_0004, "SUP-0007", "Tazi<<Karim");
    let mut badge = PcscBadge::open(READER).expect("open badge");
    badge.verify_pin(USER_PIN).expect("PIN");
    let public = VerifyingKey::from_bytes(&key).expect("an Ed25519 point");

    let digest: [u8; 32] = Sha256::digest(b"envelope body").into();
    let mut message = b"tasjil/officer/v1\0".to_vec();
    message.extend_from_slice(&digest);
    // Two signatures in a row: the PIN is verified again for each (PW1 valid for one signature).
    for m in [&message[..], &digest[..]] {
        let sig = badge.sign(m).expect("on-card signature");
        public
            .verify(m, &Signature::from_bytes(&sig))
            .expect("the card's signature verifies with its public key");
        // And it is bound to the message: a different one does not verify.
        let mut other = m.to_vec();
        other[0] ^= 1;
        assert!(public.verify(&other, &Signature::from_bytes(&sig)).is_err());
    }
    let again = PcscBadge::open(READER).expect("reopen");
    assert_eq!(
        again.info().signatures,
        2,
        "the card counted both signatures"
    );
    assert_eq!(badge.public_key_hex().len(), 64);
}

#[test]
fn card_pulled_out_during_a_transaction_gives_a_clean_error() {
    let Some(_stack) = require_stack("card_pulled_out_during_a_transaction_gives_a_clean_error")
    else {
        return;
    };
    let (mut vc, _) = badge_card(0x7A51_0005, "OFF-0045", "Alaoui<<Nadia");
    let mut badge = PcscBadge::open(READER).expect("open badge");
    badge.verify_pin(USER_PIN).expect("PIN");
    badge.sign(b"before").expect("signs while inserted");

    // Sign from another thread while the card is pulled out under it: every attempt either
    // completes or fails as Removed, and the loop ends promptly (no hang).
    let (tx, rx) = std::sync::mpsc::channel();
    let worker = std::thread::spawn(move || {
        let mut signed = 0u32;
        let err = loop {
            match badge.sign(b"during") {
                Ok(_) => {
                    signed += 1;
                    if signed == 5 {
                        let _ = tx.send(());
                    }
                }
                Err(e) => break e,
            }
        };
        (signed, err, badge)
    });
    rx.recv_timeout(Duration::from_secs(20))
        .expect("the card signs before it is pulled");
    vc.pull();
    let (signed, err, mut badge) = worker.join().expect("no panic in the signing thread");
    assert!(signed >= 5);
    assert!(
        matches!(err, BadgeError::Removed),
        "expected Removed, got {err:?}: {err}"
    );
    assert!(err.to_string().contains("insert it again"));
    // After the card is gone every call fails cleanly, never hangs.
    assert!(matches!(badge.sign(b"after"), Err(BadgeError::Removed)));
    assert!(matches!(PcscBadge::open(READER), Err(BadgeError::NoCard)));
    assert!(!card::readers()
        .expect("readers")
        .iter()
        .any(|r| r.name == READER && r.card_present));
}

#[test]
fn waiting_for_a_badge_times_out_cleanly_when_none_is_inserted() {
    let Some(_stack) = require_stack("waiting_for_a_badge_times_out_cleanly_when_none_is_inserted")
    else {
        return;
    };
    let t = std::time::Instant::now();
    assert!(matches!(
        card::wait_for_card(Some(READER), Duration::from_millis(600)),
        Err(BadgeError::NoCard)
    ));
    assert!(t.elapsed() < Duration::from_secs(5));
}
