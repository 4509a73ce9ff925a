//! The citizen's eID chip through the real stack: pcscd, vsmartcard's second vpcd reader, and the
//! station's software eMRTD chip in a separate process (`tasjil-vcard --emrtd`), read with the
//! station's own `read_from_pcsc` (BAC and secure messaging over PC/SC). An OpenPGP badge in the
//! first reader stands for the officer's badge next to it.

use std::path::Path;

use tasjil_drivers::card::{self, OfficerBadge, PcscBadge, Personalisation};
use tasjil_drivers::emrtd::{read_from_pcsc, AccessKey, ChipError, IdentityPage};
use tasjil_vcard::{
    require_stack, VirtualCard, VirtualChip, ADMIN_PIN, CHIP_READER, READER, USER_PIN,
};

fn bin() -> &'static Path {
    Path::new(env!("CARGO_BIN_EXE_tasjil-vcard"))
}

fn citizen() -> IdentityPage {
    IdentityPage {
        document_code: "ID".into(),
        issuing_state: "MAR".into(),
        document_number: "BK4711230".into(),
        birth_date: "880523".into(),
        sex: "M".into(),
        expiry_date: "290101".into(),
        nationality: "MAR".into(),
        surname: "BENJELLOUN".into(),
        given_names: "OMAR YASSINE".into(),
        optional_data: "".into(),
    }
}

fn key() -> AccessKey {
    AccessKey::new("BK4711230", "880523", "290101").expect("a valid key")
}

#[test]
fn the_chip_is_found_beside_an_officer_badge_which_is_left_untouched() {
    let Some(_stack) =
        require_stack("the_chip_is_found_beside_an_officer_badge_which_is_left_untouched")
    else {
        return;
    };
    let _badge_card = VirtualCard::insert(bin(), 0x7A51_0101);
    card::personalise(
        READER,
        ADMIN_PIN,
        &Personalisation {
            officer_id: "OFF-0101",
            officer_name: "Haddad<<Amina",
        },
    )
    .expect("personalise the badge");
    let mut badge = PcscBadge::open(READER).expect("open the badge");
    badge.verify_pin(USER_PIN).expect("PIN");
    let _chip = VirtualChip::insert(bin(), &citizen());

    // Any reader: the badge is tried and skipped, the chip is read.
    let (reader, page) = read_from_pcsc(None, &[], &key()).expect("read the chip");
    assert_eq!(reader, CHIP_READER);
    assert_eq!(page, citizen());
    // The badge's reader excluded: the same.
    let (reader, page) = read_from_pcsc(None, &[READER.to_owned()], &key()).expect("read the chip");
    assert_eq!((reader.as_str(), page), (CHIP_READER, citizen()));
    // The chip's reader excluded: only the badge is left, and it is no ID card.
    assert_eq!(
        read_from_pcsc(None, &[CHIP_READER.to_owned()], &key()),
        Err(ChipError::NotAnIdCard)
    );
    // Named readers.
    assert_eq!(
        read_from_pcsc(Some(READER), &[], &key()),
        Err(ChipError::NotAnIdCard)
    );
    let (reader, _) = read_from_pcsc(Some(CHIP_READER), &[CHIP_READER.to_owned()], &key())
        .expect("a named reader is used even when excluded");
    assert_eq!(reader, CHIP_READER);

    // The badge was left as it was (not reset): it still signs in the officer's session.
    let signature = badge.sign(b"after the chip was read");
    assert!(signature.is_ok(), "{signature:?}");
    assert_eq!(badge.officer_id(), "OFF-0101");
}

#[test]
fn a_wrong_access_key_is_access_denied_and_the_right_one_still_opens() {
    let Some(_stack) =
        require_stack("a_wrong_access_key_is_access_denied_and_the_right_one_still_opens")
    else {
        return;
    };
    let _chip = VirtualChip::insert(bin(), &citizen());
    let wrong = AccessKey::new("BK4711230", "880524", "290101").expect("a valid key");
    assert_eq!(
        read_from_pcsc(None, &[], &wrong),
        Err(ChipError::AccessDenied)
    );
    let (reader, page) = read_from_pcsc(None, &[], &key()).expect("read the chip");
    assert_eq!((reader.as_str(), page), (CHIP_READER, citizen()));
}

#[test]
fn after_the_chip_is_pulled_there_is_no_card() {
    let Some(_stack) = require_stack("after_the_chip_is_pulled_there_is_no_card") else {
        return;
    };
    let mut chip = VirtualChip::insert(bin(), &citizen());
    assert!(read_from_pcsc(Some(CHIP_READER), &[], &key()).is_ok());
    chip.pull();
    assert_eq!(read_from_pcsc(None, &[], &key()), Err(ChipError::NoCard));
    assert_eq!(
        read_from_pcsc(Some(CHIP_READER), &[], &key()),
        Err(ChipError::NoCard)
    );
    assert_eq!(
        read_from_pcsc(Some("No Such Reader 00 00"), &[], &key()),
        Err(ChipError::NoReader)
    );
}

#[test]
fn a_chip_pulled_out_while_being_read_gives_removed_or_no_card() {
    let Some(_stack) = require_stack("a_chip_pulled_out_while_being_read_gives_removed_or_no_card")
    else {
        return;
    };
    let mut chip = VirtualChip::insert(bin(), &citizen());
    // Read again and again from another thread while the chip is pulled out under it: every
    // reading either completes or fails as the card going away, and the loop ends (no hang).
    let (tx, rx) = std::sync::mpsc::channel();
    let worker = std::thread::spawn(move || {
        let mut read = 0u32;
        let err = loop {
            match read_from_pcsc(Some(CHIP_READER), &[], &key()) {
                Ok((_, page)) => {
                    assert_eq!(page, citizen());
                    read += 1;
                    if read == 3 {
                        let _ = tx.send(());
                    }
                }
                Err(e) => break e,
            }
        };
        (read, err)
    });
    rx.recv_timeout(std::time::Duration::from_secs(20))
        .expect("the chip is read before it is pulled");
    chip.pull();
    let (read, err) = worker.join().expect("no panic in the reading thread");
    assert!(read >= 3);
    assert!(
        matches!(err, ChipError::Removed | ChipError::NoCard),
        "expected Removed or NoCard, got {err:?}: {err}"
    );
}
