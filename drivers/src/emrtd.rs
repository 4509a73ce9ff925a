//! The citizen's previous eID card, read through its chip (ICAO Doc 9303 eMRTD application).
//!
//! For a renewal or a correction the kiosk reads the identity page the chip holds (data group 1,
//! the machine-readable zone) instead of trusting what is typed: the card number, names, sex,
//! dates and nationality as the issuer wrote them. Access is Basic Access Control (Doc 9303
//! part 11 §4.3): the key comes from the card number, date of birth and expiry date printed on the
//! card, so the chip answers only to someone holding the card; every later command and reply is
//! wrapped in secure messaging (3DES, retail MAC, send sequence counter), so a reply changed on
//! the way is refused as [`ChipError::Tampered`].
//!
//! Layers, each usable alone:
//! - [`AccessKey`] and the BAC key derivation, 3DES and retail MAC primitives;
//! - [`IdentityPage`] and its TD1 MRZ (Doc 9303 part 5), with [`check_digit`];
//! - [`read_identity`]: the reader's side of the protocol over any [`ChipTransport`];
//! - [`SoftChip`]: a chip in software (the simulation backend, the tests, and the virtual card
//!   `tasjil-vcard --emrtd` puts behind a real PC/SC reader);
//! - `PcscChip` and `read_from_pcsc` (feature `pcsc`): a chip in a PC/SC reader.
//!
//! This module owns the protocol and the MRZ; it knows nothing of records, the store or the UI,
//! and it never decides whether what the chip says matches what the officer typed.
//!
//! Not done: PACE (newer cards may refuse BAC), passive authentication (the SOD signature up to
//! the issuer's CSCA certificate) and chip/active authentication, so the data read is the chip's
//! word, not yet proven genuine. Document numbers longer than 9 characters (continued in the
//! optional data of line 1) are refused, and line 2's optional data is checked (it is under the
//! composite check digit) but not kept.

use des::cipher::{BlockDecrypt, BlockEncrypt, KeyInit};
use des::{Des, TdesEde2};
use rand_chacha::ChaCha20Rng;
use rand_core::{RngCore, SeedableRng};
use sha1::{Digest, Sha1};
use zeroize::Zeroize;

/// Application identifier of the ICAO eMRTD application (LDS1).
const EMRTD_AID: [u8; 7] = [0xA0, 0x00, 0x00, 0x02, 0x47, 0x10, 0x01];
const EF_COM: [u8; 2] = [0x01, 0x1E];
const EF_DG1: [u8; 2] = [0x01, 0x01];
/// Largest READ BINARY asked at once: its secure-messaging reply (padding, DO'87, DO'99, DO'8E)
/// still fits a short response APDU.
const CHUNK: usize = 0xDF;
/// Largest data group accepted: READ BINARY offsets are 15 bits.
const MAX_FILE: usize = 0x7FFF;

const SW_OK: u16 = 0x9000;
const SW_END_OF_FILE: u16 = 0x6282;
const SW_AUTH_FAILED: u16 = 0x6300;
const SW_WRONG_LENGTH: u16 = 0x6700;
const SW_SECURITY_NOT_SATISFIED: u16 = 0x6982;
const SW_CONDITIONS_NOT_SATISFIED: u16 = 0x6985;
const SW_NO_CURRENT_EF: u16 = 0x6986;
const SW_SM_MISSING: u16 = 0x6987;
const SW_SM_INCORRECT: u16 = 0x6988;
const SW_NOT_FOUND: u16 = 0x6A82;
const SW_WRONG_P1P2: u16 = 0x6A86;
const SW_WRONG_OFFSET: u16 = 0x6B00;
const SW_INS_NOT_SUPPORTED: u16 = 0x6D00;
const SW_CLA_NOT_SUPPORTED: u16 = 0x6E00;

// ---------------------------------------------------------------------------------------------
// Errors, keys, MRZ
// ---------------------------------------------------------------------------------------------

/// What opens the chip: the three MRZ fields printed on the card.
///
/// Build it with [`AccessKey::new`], which checks and normalises the fields; the fields are public
/// for reading, and [`read_identity`] checks them again whatever way the key was built.
#[derive(Clone, PartialEq, Eq)]
pub struct AccessKey {
    /// Card number as printed (up to 9 characters, `A-Z0-9`).
    pub document_number: String,
    /// Date of birth, `YYMMDD`.
    pub birth_date: String,
    /// Date of expiry, `YYMMDD`.
    pub expiry_date: String,
}

impl std::fmt::Debug for AccessKey {
    /// The key opens the chip: never printed, not even in logs.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AccessKey").finish_non_exhaustive()
    }
}

impl AccessKey {
    /// The access key from the card number (spaces around it are ignored, letters uppercased),
    /// the date of birth and the date of expiry (`YYMMDD`), as printed on the card.
    /// [`ChipError::BadKey`] names the field that is wrong.
    pub fn new(
        document_number: &str,
        birth_date: &str,
        expiry_date: &str,
    ) -> Result<AccessKey, ChipError> {
        let number = document_number.trim().to_ascii_uppercase();
        if number.is_empty() {
            return Err(ChipError::BadKey("the card number is empty".into()));
        }
        if !number
            .bytes()
            .all(|b| b.is_ascii_uppercase() || b.is_ascii_digit())
        {
            return Err(ChipError::BadKey(
                "the card number may hold only letters A-Z and digits 0-9".into(),
            ));
        }
        if number.len() > 9 {
            return Err(ChipError::BadKey(format!(
                "the card number has {} characters; cards with more than 9 are not supported",
                number.len()
            )));
        }
        Ok(AccessKey {
            document_number: number,
            birth_date: key_date("date of birth", birth_date)?,
            expiry_date: key_date("date of expiry", expiry_date)?,
        })
    }

    /// Doc 9303's "MRZ information": number padded to 9 + check digit, birth + check digit,
    /// expiry + check digit.
    fn mrz_information(&self) -> String {
        let number = format!("{:<<9}", self.document_number);
        format!(
            "{number}{}{}{}{}{}",
            check_digit(&number),
            self.birth_date,
            check_digit(&self.birth_date),
            self.expiry_date,
            check_digit(&self.expiry_date),
        )
    }
}

fn key_date(field: &str, value: &str) -> Result<String, ChipError> {
    let value = value.trim();
    if value.len() != 6 || !value.bytes().all(|b| b.is_ascii_digit()) {
        return Err(ChipError::BadKey(format!(
            "the {field} must be six digits, YYMMDD"
        )));
    }
    let two = |at: usize| {
        value
            .get(at..at + 2)
            .and_then(|s| s.parse::<u8>().ok())
            .unwrap_or(0)
    };
    if !(1..=12).contains(&two(2)) {
        return Err(ChipError::BadKey(format!(
            "the {field} has no month {:02}: it is YYMMDD, with the month 01 to 12",
            two(2)
        )));
    }
    if !(1..=31).contains(&two(4)) {
        return Err(ChipError::BadKey(format!(
            "the {field} has no day {:02}: it is YYMMDD, with the day 01 to 31",
            two(4)
        )));
    }
    Ok(value.to_owned())
}

/// The identity page a chip holds (DG1, a TD1 three-line MRZ), fields without filler `<`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IdentityPage {
    /// "I", "ID", "IR", ... (first two MRZ characters, filler removed).
    pub document_code: String,
    /// Three-letter issuing state, e.g. "MAR".
    pub issuing_state: String,
    pub document_number: String,
    /// `YYMMDD`.
    pub birth_date: String,
    /// "M", "F" or "" (unspecified).
    pub sex: String,
    /// `YYMMDD`.
    pub expiry_date: String,
    pub nationality: String,
    /// Primary identifier (family name), fillers turned to spaces.
    pub surname: String,
    /// Secondary identifier (given names), fillers turned to spaces.
    pub given_names: String,
    /// Line 1's optional data (national number on some cards), filler removed.
    pub optional_data: String,
}

/// The check digit of an MRZ field (Doc 9303 part 3 §4.9): weights 7, 3, 1 repeating; digits
/// count as their value, `A`–`Z` as 10–35, the filler `<` (and anything else) as 0.
pub fn check_digit(s: &str) -> char {
    let sum = s
        .bytes()
        .zip([7u32, 3, 1].iter().cycle())
        .fold(0u32, |sum, (b, w)| (sum + mrz_value(b) * w) % 10);
    char::from(b'0' + sum as u8)
}

fn mrz_value(b: u8) -> u32 {
    match b {
        b'0'..=b'9' => u32::from(b - b'0'),
        b'A'..=b'Z' => u32::from(b - b'A') + 10,
        _ => 0,
    }
}

fn is_mrz_char(c: char) -> bool {
    c.is_ascii_uppercase() || c.is_ascii_digit() || c == '<'
}

/// `s` as an MRZ field of `len` characters: uppercased, anything not `A-Z0-9` turned to the
/// filler, cut or padded with fillers to `len`.
fn mrz_field(s: &str, len: usize) -> String {
    let mut out: String = s
        .trim()
        .chars()
        .map(|c| c.to_ascii_uppercase())
        .map(|c| if is_mrz_char(c) { c } else { '<' })
        .take(len)
        .collect();
    while out.len() < len {
        out.push('<');
    }
    out
}

/// A name as MRZ characters: apostrophes dropped, anything not `A-Z` turned to the filler.
fn mrz_name(s: &str) -> String {
    s.trim()
        .chars()
        .filter(|c| *c != '\'')
        .map(|c| c.to_ascii_uppercase())
        .map(|c| if c.is_ascii_uppercase() { c } else { '<' })
        .collect()
}

/// Characters of a name that an MRZ can carry as they are.
fn is_name_char(c: char) -> bool {
    c.is_ascii_alphabetic() || c == ' ' || c == '-' || c == '\''
}

/// What the composite check digit of a TD1 covers (Doc 9303 part 5): line 1 from the document
/// number on, and line 2's birth date, expiry date and optional data with their check digits.
fn composite_field(line1: &str, line2: &str) -> String {
    format!(
        "{}{}{}{}",
        &line1[5..30],
        &line2[0..7],
        &line2[8..15],
        &line2[18..29]
    )
}

fn strip_filler(s: &str) -> String {
    s.trim_end_matches('<').to_owned()
}

impl IdentityPage {
    /// The TD1 MRZ of this page: 90 characters, the three 30-character lines one after the other,
    /// with every check digit computed. Total: a field too long for its place is cut and a
    /// character an MRZ cannot carry becomes the filler `<`, so use [`IdentityPage::try_to_mrz`]
    /// when the page does not come from [`IdentityPage::from_mrz`].
    pub fn to_mrz(&self) -> String {
        let number = mrz_field(&self.document_number, 9);
        let mut line1 = mrz_field(&self.document_code, 2);
        line1 += &mrz_field(&self.issuing_state, 3);
        line1 += &number;
        line1.push(check_digit(&number));
        line1 += &mrz_field(&self.optional_data, 15);

        let birth = mrz_field(&self.birth_date, 6);
        let expiry = mrz_field(&self.expiry_date, 6);
        let mut line2 = birth.clone();
        line2.push(check_digit(&birth));
        line2.push(match self.sex.as_str() {
            "M" => 'M',
            "F" => 'F',
            _ => '<',
        });
        line2 += &expiry;
        line2.push(check_digit(&expiry));
        line2 += &mrz_field(&self.nationality, 3);
        line2 += &"<".repeat(11);
        let composite = composite_field(&line1, &line2);
        line2.push(check_digit(&composite));

        let mut name = mrz_name(&self.surname);
        let given = mrz_name(&self.given_names);
        if !given.is_empty() {
            name += "<<";
            name += &given;
        }
        let line3 = mrz_field(&name, 30);
        format!("{line1}{line2}{line3}")
    }

    /// [`IdentityPage::to_mrz`] for a page that fits a TD1 MRZ exactly; otherwise
    /// [`ChipError::Malformed`] naming the field that does not fit.
    pub fn try_to_mrz(&self) -> Result<String, ChipError> {
        let bad = |what: String| Err(ChipError::Malformed(what));
        let letters = |s: &str, max: usize| {
            !s.is_empty() && s.len() <= max && s.bytes().all(|b| b.is_ascii_uppercase())
        };
        if !letters(&self.document_code, 2) {
            return bad("the document code must be 1 or 2 letters A-Z".into());
        }
        if !letters(&self.issuing_state, 3) {
            return bad("the issuing state must be 1 to 3 letters A-Z".into());
        }
        if !letters(&self.nationality, 3) {
            return bad("the nationality must be 1 to 3 letters A-Z".into());
        }
        let n = &self.document_number;
        if n.is_empty()
            || !n
                .chars()
                .all(|c| c.is_ascii_uppercase() || c.is_ascii_digit())
        {
            return bad("the document number must be letters A-Z and digits 0-9".into());
        }
        if n.len() > 9 {
            return bad(format!(
                "the document number has {} characters; more than 9 is not supported",
                n.len()
            ));
        }
        for (field, date) in [
            ("date of birth", &self.birth_date),
            ("date of expiry", &self.expiry_date),
        ] {
            if date.len() != 6 || !date.bytes().all(|b| b.is_ascii_digit()) {
                return bad(format!("the {field} must be six digits, YYMMDD"));
            }
        }
        if !matches!(self.sex.as_str(), "" | "M" | "F") {
            return bad("the sex must be M, F or empty (unspecified)".into());
        }
        if self.optional_data.len() > 15 || !self.optional_data.chars().all(is_mrz_char) {
            return bad("the optional data must be at most 15 characters A-Z, 0-9 or <".into());
        }
        if self.surname.trim().is_empty() {
            return bad("the surname is empty".into());
        }
        if !self.surname.chars().all(is_name_char) || !self.given_names.chars().all(is_name_char) {
            return bad("the names must be transliterated to letters A-Z first".into());
        }
        Ok(self.to_mrz())
    }

    /// Parse a TD1 MRZ: 90 characters, or three lines of 30 separated by newlines. Every check
    /// digit is verified; [`ChipError::Malformed`] says which failed.
    pub fn from_mrz(mrz: &str) -> Result<IdentityPage, ChipError> {
        let text = mrz
            .strip_suffix('\n')
            .map(|t| t.strip_suffix('\r').unwrap_or(t))
            .unwrap_or(mrz);
        let lines: Vec<&str> = text
            .split('\n')
            .map(|l| l.strip_suffix('\r').unwrap_or(l))
            .collect();
        let m: String = match lines.as_slice() {
            [one] => (*one).to_owned(),
            [a, b, c] if [a, b, c].iter().all(|l| l.chars().count() == 30) => {
                format!("{a}{b}{c}")
            }
            _ => {
                return Err(ChipError::Malformed(
                    "an identity card's MRZ is three lines of 30 characters".into(),
                ))
            }
        };
        if m.chars().count() != 90 {
            return Err(ChipError::Malformed(format!(
                "an identity card's MRZ has 90 characters, not {}",
                m.chars().count()
            )));
        }
        if let Some((i, c)) = m.chars().enumerate().find(|(_, c)| !is_mrz_char(*c)) {
            return Err(ChipError::Malformed(format!(
                "{c:?} at line {}, position {} is not an MRZ character (A-Z, 0-9, <)",
                i / 30 + 1,
                i % 30 + 1
            )));
        }
        // Only ASCII from here: byte ranges are character ranges.
        let (line1, line2, line3) = (&m[0..30], &m[30..60], &m[60..90]);
        let at = |line: &str, i: usize| line.as_bytes()[i] as char;
        if at(line1, 14) == '<' {
            return Err(ChipError::Malformed(
                "the document number is longer than 9 characters, which is not supported".into(),
            ));
        }
        let verify = |field: &str, digit: char, what: &str| {
            if check_digit(field) == digit {
                Ok(())
            } else {
                Err(ChipError::Malformed(format!(
                    "the check digit of {what} is wrong: the MRZ was misread or altered"
                )))
            }
        };
        verify(
            &line1[5..14],
            at(line1, 14),
            "the document number (line 1, position 15)",
        )?;
        verify(
            &line2[0..6],
            at(line2, 6),
            "the date of birth (line 2, position 7)",
        )?;
        verify(
            &line2[8..14],
            at(line2, 14),
            "the date of expiry (line 2, position 15)",
        )?;
        let composite = composite_field(line1, line2);
        verify(
            &composite,
            at(line2, 29),
            "the whole MRZ (composite, line 2, position 30)",
        )?;

        for (what, date) in [
            ("date of birth", &line2[0..6]),
            ("date of expiry", &line2[8..14]),
        ] {
            if !date.bytes().all(|b| b.is_ascii_digit()) {
                return Err(ChipError::Malformed(format!(
                    "the {what} is not six digits"
                )));
            }
        }
        let document_number = strip_filler(&line1[5..14]);
        if document_number.is_empty() {
            return Err(ChipError::Malformed("the document number is empty".into()));
        }
        let sex = match at(line2, 7) {
            'M' => "M",
            'F' => "F",
            '<' | 'X' => "",
            other => {
                return Err(ChipError::Malformed(format!(
                    "the sex {other:?} (line 2, position 8) is not M, F, X or <"
                )))
            }
        };
        let name = line3.trim_end_matches('<');
        let (primary, secondary) = name.split_once("<<").unwrap_or((name, ""));
        let spaced = |s: &str| {
            s.split('<')
                .filter(|w| !w.is_empty())
                .collect::<Vec<_>>()
                .join(" ")
        };
        Ok(IdentityPage {
            document_code: strip_filler(&line1[0..2]),
            issuing_state: strip_filler(&line1[2..5]),
            document_number,
            birth_date: line2[0..6].to_owned(),
            sex: sex.to_owned(),
            expiry_date: line2[8..14].to_owned(),
            nationality: strip_filler(&line2[15..18]),
            surname: spaced(primary),
            given_names: spaced(secondary),
            optional_data: strip_filler(&line1[15..30]),
        })
    }
}

/// What can go wrong reading a chip, in words an officer can act on.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum ChipError {
    #[error("the smart-card service (pcscd) is not running or not reachable: {0}")]
    NoService(String),
    #[error("no card reader for the citizen's card is attached")]
    NoReader,
    #[error("no card on the reader: place the citizen's card on it")]
    NoCard,
    #[error("the card was taken away during the reading: place it again and retry")]
    Removed,
    #[error("this card has no eID chip application (is it the citizen's identity card?)")]
    NotAnIdCard,
    #[error("the chip refused the access key: check the card number, date of birth and expiry date typed against the card")]
    AccessDenied,
    #[error("the chip's reply failed its integrity check: the reading was refused")]
    Tampered,
    #[error("the access key is not valid: {0}")]
    BadKey(String),
    #[error("the chip's data is malformed: {0}")]
    Malformed(String),
    #[error("card error: {0}")]
    Card(String),
}

/// Anything that carries a command APDU to a chip and brings back its response (data + SW1 SW2).
pub trait ChipTransport {
    fn transmit(&mut self, apdu: &[u8]) -> Result<Vec<u8>, ChipError>;
}

// ---------------------------------------------------------------------------------------------
// Cryptography: BAC keys, 3DES-CBC, retail MAC
// ---------------------------------------------------------------------------------------------

/// A 3DES key pair for encryption and MAC (the BAC keys, or the session keys with the send
/// sequence counter). Zeroised on drop.
struct Keys {
    enc: [u8; 16],
    mac: [u8; 16],
}

impl Drop for Keys {
    fn drop(&mut self) {
        self.enc.zeroize();
        self.mac.zeroize();
    }
}

impl Keys {
    /// Doc 9303 part 11 §9.7.1: K = SHA-1(Kseed || counter), first 16 bytes, DES parity set;
    /// counter 1 for encryption, 2 for the MAC.
    fn from_seed(seed: &[u8; 16]) -> Keys {
        Keys {
            enc: derive_key(seed, 1),
            mac: derive_key(seed, 2),
        }
    }

    /// The document basic access keys from the MRZ information.
    fn from_mrz_information(info: &str) -> Keys {
        Keys::from_seed(&kseed(info))
    }
}

/// Kseed: the first 16 bytes of SHA-1 over the MRZ information.
fn kseed(info: &str) -> [u8; 16] {
    let digest = Sha1::digest(info.as_bytes());
    first16(&digest)
}

fn first16(bytes: &[u8]) -> [u8; 16] {
    let mut out = [0u8; 16];
    for (o, b) in out.iter_mut().zip(bytes) {
        *o = *b;
    }
    out
}

fn derive_key(seed: &[u8; 16], counter: u32) -> [u8; 16] {
    let mut h = Sha1::new();
    h.update(seed);
    h.update(counter.to_be_bytes());
    let mut key = first16(&h.finalize());
    for b in &mut key {
        // Odd parity in the low bit of each byte, as DES keys carry it.
        let ones = (*b >> 1).count_ones();
        *b = (*b & 0xFE) | u8::from(ones % 2 == 0);
    }
    key
}

/// ISO/IEC 9797-1 padding method 2: 0x80, then zeros up to a multiple of 8 bytes.
fn pad(data: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(data.len() + 8);
    out.extend_from_slice(data);
    out.push(0x80);
    while out.len() % 8 != 0 {
        out.push(0);
    }
    out
}

/// Undo [`pad`]; `None` when the padding is not there.
fn unpad(data: &[u8]) -> Option<&[u8]> {
    let end = data.iter().rposition(|b| *b != 0)?;
    (data[end] == 0x80 && data.len() - end <= 8).then_some(&data[..end])
}

/// 2-key 3DES in CBC mode with a zero IV, over whole 8-byte blocks (a trailing part is ignored;
/// callers pad first).
fn tdes_encrypt(key: &[u8; 16], data: &[u8]) -> Vec<u8> {
    let cipher = TdesEde2::new(key.into());
    let mut chain = [0u8; 8];
    let mut out = Vec::with_capacity(data.len());
    for block in data.chunks_exact(8) {
        for (c, b) in chain.iter_mut().zip(block) {
            *c ^= b;
        }
        cipher.encrypt_block((&mut chain).into());
        out.extend_from_slice(&chain);
    }
    out
}

fn tdes_decrypt(key: &[u8; 16], data: &[u8]) -> Vec<u8> {
    let cipher = TdesEde2::new(key.into());
    let mut previous = [0u8; 8];
    let mut out = Vec::with_capacity(data.len());
    for block in data.chunks_exact(8) {
        let mut b = [0u8; 8];
        b.copy_from_slice(block);
        let mut plain = b;
        cipher.decrypt_block((&mut plain).into());
        for (p, c) in plain.iter_mut().zip(previous) {
            *p ^= c;
        }
        out.extend_from_slice(&plain);
        previous = b;
    }
    out
}

/// ISO/IEC 9797-1 MAC algorithm 3 with DES ("retail MAC") and padding method 2: single-DES CBC
/// with the key's first half, then decrypt with the second half and encrypt with the first.
fn retail_mac(key: &[u8; 16], data: &[u8]) -> [u8; 8] {
    let mut ka = [0u8; 8];
    let mut kb = [0u8; 8];
    ka.copy_from_slice(&key[..8]);
    kb.copy_from_slice(&key[8..]);
    let a = Des::new(&ka.into());
    let b = Des::new(&kb.into());
    ka.zeroize();
    kb.zeroize();
    let mut h = [0u8; 8];
    for block in pad(data).chunks_exact(8) {
        for (x, y) in h.iter_mut().zip(block) {
            *x ^= y;
        }
        a.encrypt_block((&mut h).into());
    }
    b.decrypt_block((&mut h).into());
    a.encrypt_block((&mut h).into());
    h
}

/// Compare MACs without stopping at the first difference.
fn same(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |d, (x, y)| d | (x ^ y)) == 0
}

fn xor16(a: &[u8; 16], b: &[u8; 16]) -> [u8; 16] {
    let mut out = [0u8; 16];
    for (o, (x, y)) in out.iter_mut().zip(a.iter().zip(b)) {
        *o = x ^ y;
    }
    out
}

/// A secure-messaging session: session keys and the send sequence counter. Zeroised on drop.
struct Session {
    keys: Keys,
    ssc: u64,
}

impl Drop for Session {
    fn drop(&mut self) {
        self.ssc.zeroize();
    }
}

impl Session {
    /// Session keys from K.IFD xor K.ICC; SSC from the last 4 bytes of each challenge.
    fn new(k_ifd: &[u8; 16], k_icc: &[u8; 16], rnd_icc: &[u8; 8], rnd_ifd: &[u8; 8]) -> Session {
        let mut seed = xor16(k_ifd, k_icc);
        let keys = Keys::from_seed(&seed);
        seed.zeroize();
        let mut ssc = [0u8; 8];
        ssc[..4].copy_from_slice(&rnd_icc[4..]);
        ssc[4..].copy_from_slice(&rnd_ifd[4..]);
        Session {
            keys,
            ssc: u64::from_be_bytes(ssc),
        }
    }

    /// Next SSC, then the retail MAC over SSC || `data`.
    fn next_mac(&mut self, data: &[u8]) -> [u8; 8] {
        self.ssc = self.ssc.wrapping_add(1);
        let mut input = self.ssc.to_be_bytes().to_vec();
        input.extend_from_slice(data);
        retail_mac(&self.keys.mac, &input)
    }

    /// Protect a command (Doc 9303 part 11 §9.8.4): the CLA says "SM, header authenticated",
    /// data encrypted into DO'87, the expected length in DO'97, their MAC in DO'8E.
    fn wrap(&mut self, header: [u8; 4], data: &[u8], le: Option<u8>) -> Vec<u8> {
        let header = [header[0] | 0x0C, header[1], header[2], header[3]];
        let mut objects = Vec::new();
        if !data.is_empty() {
            let mut value = vec![0x01];
            value.extend(tdes_encrypt(&self.keys.enc, &pad(data)));
            push_tlv(&mut objects, 0x87, &value);
        }
        if let Some(le) = le {
            push_tlv(&mut objects, 0x97, &[le]);
        }
        let mut mac_input = pad(&header);
        mac_input.extend_from_slice(&objects);
        let mac = self.next_mac(&mac_input);
        push_tlv(&mut objects, 0x8E, &mac);
        let mut apdu = header.to_vec();
        // At most 8 bytes of data are ever sent protected here (a file identifier).
        apdu.push(objects.len() as u8);
        apdu.extend_from_slice(&objects);
        apdu.push(0x00);
        apdu
    }

    /// Check and open a protected response: DO'87 (optional), DO'99, DO'8E, nothing else. The
    /// status word is DO'99's, the authenticated one. A plain status word without secure
    /// messaging is passed on as the chip's refusal unless it says the chip found our secure
    /// messaging wrong (6987/6988) — that, a missing object or a wrong MAC is
    /// [`ChipError::Tampered`].
    fn unwrap(&mut self, response: &[u8]) -> Result<(Vec<u8>, u16), ChipError> {
        let (body, sw) = split_sw(response)?;
        if body.is_empty() {
            return match sw {
                SW_SM_MISSING | SW_SM_INCORRECT | SW_OK => Err(ChipError::Tampered),
                sw => Ok((Vec::new(), sw)),
            };
        }
        let mut rest = body;
        let mut do87 = None;
        let mut do99 = None;
        let mut mac = None;
        while !rest.is_empty() {
            let start = body.len() - rest.len();
            let (tag, value, after) = tlv(rest).ok_or(ChipError::Tampered)?;
            match tag {
                0x87 if do87.is_none() && do99.is_none() => do87 = Some(value),
                0x99 if do99.is_none() => do99 = Some(value),
                0x8E if do99.is_some() && after.is_empty() => mac = Some((value, &body[..start])),
                _ => return Err(ChipError::Tampered),
            }
            rest = after;
        }
        let (Some(status), Some((mac, covered))) = (do99, mac) else {
            return Err(ChipError::Tampered);
        };
        if !same(&self.next_mac(covered), mac) {
            return Err(ChipError::Tampered);
        }
        let [sw1, sw2] = status else {
            return Err(ChipError::Tampered);
        };
        let sw = u16::from_be_bytes([*sw1, *sw2]);
        let data = match do87 {
            None => Vec::new(),
            Some([0x01, cipher @ ..]) if !cipher.is_empty() && cipher.len() % 8 == 0 => {
                let plain = tdes_decrypt(&self.keys.enc, cipher);
                unpad(&plain)
                    .map(<[u8]>::to_vec)
                    .ok_or_else(|| ChipError::Malformed("a reply's padding is wrong".into()))?
            }
            Some(_) => {
                return Err(ChipError::Malformed(
                    "a reply's encrypted data is not 3DES blocks".into(),
                ))
            }
        };
        Ok((data, sw))
    }
}

// ---------------------------------------------------------------------------------------------
// TLV and APDU helpers
// ---------------------------------------------------------------------------------------------

fn push_tlv(out: &mut Vec<u8>, tag: u8, value: &[u8]) {
    out.push(tag);
    match value.len() {
        n @ 0..=0x7F => out.push(n as u8),
        n @ 0x80..=0xFF => out.extend_from_slice(&[0x81, n as u8]),
        n => {
            out.push(0x82);
            out.extend_from_slice(&(n.min(0xFFFF) as u16).to_be_bytes());
        }
    }
    out.extend_from_slice(value);
}

/// A BER-TLV tag (one or more bytes) and length: `(tag, header length, value length)`.
fn tlv_header(data: &[u8]) -> Option<(u32, usize, usize)> {
    let mut at = 0;
    let first = *data.first()?;
    let mut tag = u32::from(first);
    at += 1;
    if first & 0x1F == 0x1F {
        loop {
            let b = *data.get(at)?;
            at += 1;
            tag = (tag << 8) | u32::from(b);
            if b & 0x80 == 0 {
                break;
            }
            if at > 3 {
                return None;
            }
        }
    }
    let len = *data.get(at)?;
    at += 1;
    let len = match len {
        0..=0x7F => usize::from(len),
        0x81 => {
            at += 1;
            usize::from(*data.get(at - 1)?)
        }
        0x82 => {
            at += 2;
            usize::from(u16::from_be_bytes([*data.get(at - 2)?, *data.get(at - 1)?]))
        }
        _ => return None,
    };
    Some((tag, at, len))
}

/// One TLV: `(tag, value, what follows)`.
fn tlv(data: &[u8]) -> Option<(u32, &[u8], &[u8])> {
    let (tag, header, len) = tlv_header(data)?;
    let value = data.get(header..header.checked_add(len)?)?;
    Some((tag, value, &data[header + len..]))
}

fn split_sw(response: &[u8]) -> Result<(&[u8], u16), ChipError> {
    match response.len().checked_sub(2) {
        Some(n) => Ok((
            &response[..n],
            u16::from_be_bytes([response[n], response[n + 1]]),
        )),
        None => Err(ChipError::Card(format!(
            "the chip answered {} byte(s), not even a status word",
            response.len()
        ))),
    }
}

fn sw_bytes(sw: u16) -> Vec<u8> {
    sw.to_be_bytes().to_vec()
}

// ---------------------------------------------------------------------------------------------
// The reader's side
// ---------------------------------------------------------------------------------------------

/// Open the chip with `key` (BAC), then read and parse its identity page (EF.DG1).
pub fn read_identity(
    chip: &mut dyn ChipTransport,
    key: &AccessKey,
) -> Result<IdentityPage, ChipError> {
    let key = AccessKey::new(&key.document_number, &key.birth_date, &key.expiry_date)?;
    select_application(chip)?;
    let (rnd_ifd, k_ifd) = reader_randoms()?;
    read_selected(chip, &key, rnd_ifd, k_ifd)
}

/// RND.IFD and K.IFD from the operating system's generator.
fn reader_randoms() -> Result<([u8; 8], [u8; 16]), ChipError> {
    let mut rnd_ifd = [0u8; 8];
    let mut k_ifd = [0u8; 16];
    rand_core::OsRng
        .try_fill_bytes(&mut rnd_ifd)
        .and_then(|()| rand_core::OsRng.try_fill_bytes(&mut k_ifd))
        .map_err(|e| {
            ChipError::Card(format!(
                "this computer's random generator failed, so the chip cannot be opened: {e}"
            ))
        })?;
    Ok((rnd_ifd, k_ifd))
}

/// SELECT the eMRTD application; any refusal means this card has none.
fn select_application(chip: &mut dyn ChipTransport) -> Result<(), ChipError> {
    let mut apdu = vec![0x00, 0xA4, 0x04, 0x0C, EMRTD_AID.len() as u8];
    apdu.extend_from_slice(&EMRTD_AID);
    let response = chip.transmit(&apdu)?;
    match split_sw(&response)? {
        (_, SW_OK) => Ok(()),
        _ => Err(ChipError::NotAnIdCard),
    }
}

/// BAC with the reader's randoms given, then EF.DG1; the application is already selected.
fn read_selected(
    chip: &mut dyn ChipTransport,
    key: &AccessKey,
    rnd_ifd: [u8; 8],
    k_ifd: [u8; 16],
) -> Result<IdentityPage, ChipError> {
    let keys = Keys::from_mrz_information(&key.mrz_information());
    let mut session = authenticate(chip, &keys, rnd_ifd, k_ifd)?;
    drop(keys);
    let dg1 = read_file(chip, &mut session, EF_DG1, "the identity page (EF.DG1)")?;
    parse_dg1(&dg1)
}

/// BAC mutual authentication (Doc 9303 part 11 §4.3.4): GET CHALLENGE, then EXTERNAL
/// AUTHENTICATE with E.IFD || M.IFD; the chip's answer is checked (MAC, both challenges
/// echoed) before its key share is used.
fn authenticate(
    chip: &mut dyn ChipTransport,
    keys: &Keys,
    rnd_ifd: [u8; 8],
    k_ifd: [u8; 16],
) -> Result<Session, ChipError> {
    let response = chip.transmit(&[0x00, 0x84, 0x00, 0x00, 0x08])?;
    let rnd_icc: [u8; 8] = match split_sw(&response)? {
        (challenge, SW_OK) => challenge.try_into().map_err(|_| {
            ChipError::Malformed(format!(
                "the chip's challenge has {} bytes, not 8",
                challenge.len()
            ))
        })?,
        (_, sw) => {
            return Err(ChipError::Card(format!(
                "the chip refused to start Basic Access Control (status {sw:04X}); \
                 it may need PACE, which this station does not do yet"
            )))
        }
    };
    let mut s = Vec::with_capacity(32);
    s.extend_from_slice(&rnd_ifd);
    s.extend_from_slice(&rnd_icc);
    s.extend_from_slice(&k_ifd);
    let e_ifd = tdes_encrypt(&keys.enc, &s);
    s.zeroize();
    let m_ifd = retail_mac(&keys.mac, &e_ifd);
    let mut apdu = vec![0x00, 0x82, 0x00, 0x00, 0x28];
    apdu.extend_from_slice(&e_ifd);
    apdu.extend_from_slice(&m_ifd);
    apdu.push(0x28);
    let response = chip.transmit(&apdu)?;
    let reply = match split_sw(&response)? {
        (reply, SW_OK) => reply,
        _ => return Err(ChipError::AccessDenied),
    };
    if reply.len() != 40 {
        return Err(ChipError::Malformed(format!(
            "the chip's authentication answer has {} bytes, not 40",
            reply.len()
        )));
    }
    let (e_icc, m_icc) = reply.split_at(32);
    if !same(&retail_mac(&keys.mac, e_icc), m_icc) {
        return Err(ChipError::Tampered);
    }
    let mut r = tdes_decrypt(&keys.enc, e_icc);
    let echoed = same(&r[..8], &rnd_icc) && same(&r[8..16], &rnd_ifd);
    let mut k_icc = first16(&r[16..]);
    r.zeroize();
    if !echoed {
        k_icc.zeroize();
        return Err(ChipError::Tampered);
    }
    let mut k_ifd = k_ifd;
    let session = Session::new(&k_ifd, &k_icc, &rnd_icc, &rnd_ifd);
    k_ifd.zeroize();
    k_icc.zeroize();
    Ok(session)
}

/// One protected command, its checked reply.
fn secure(
    chip: &mut dyn ChipTransport,
    session: &mut Session,
    header: [u8; 4],
    data: &[u8],
    le: Option<u8>,
) -> Result<(Vec<u8>, u16), ChipError> {
    let apdu = session.wrap(header, data, le);
    let response = chip.transmit(&apdu)?;
    session.unwrap(&response)
}

/// SELECT the elementary file `fid`, then READ BINARY: the first 4 bytes give the TLV's length,
/// the rest comes in chunks.
fn read_file(
    chip: &mut dyn ChipTransport,
    session: &mut Session,
    fid: [u8; 2],
    name: &str,
) -> Result<Vec<u8>, ChipError> {
    match secure(chip, session, [0x00, 0xA4, 0x02, 0x0C], &fid, None)? {
        (_, SW_OK) => {}
        (_, SW_NOT_FOUND) => {
            return Err(ChipError::Malformed(format!("the chip holds no {name}")));
        }
        (_, sw) => {
            return Err(ChipError::Card(format!(
                "the chip refused to open {name} (status {sw:04X})"
            )))
        }
    }
    let mut read = |offset: usize, len: usize| -> Result<Vec<u8>, ChipError> {
        let [p1, p2] = (offset as u16).to_be_bytes();
        match secure(chip, session, [0x00, 0xB0, p1, p2], &[], Some(len as u8))? {
            (data, SW_OK | SW_END_OF_FILE) => Ok(data),
            (_, sw) => Err(ChipError::Card(format!(
                "the chip refused to read {name} at offset {offset} (status {sw:04X})"
            ))),
        }
    };
    let mut data = read(0, 4)?;
    let total = match tlv_header(&data) {
        Some((_, header, len)) => header + len,
        None => {
            return Err(ChipError::Malformed(format!(
                "{name} does not start with a tag and length"
            )))
        }
    };
    if total > MAX_FILE {
        return Err(ChipError::Malformed(format!(
            "{name} says it holds {total} bytes, more than a data group can"
        )));
    }
    while data.len() < total {
        let chunk = read(data.len(), (total - data.len()).min(CHUNK))?;
        if chunk.is_empty() {
            return Err(ChipError::Malformed(format!(
                "{name} ends after {} of its {total} bytes",
                data.len()
            )));
        }
        data.extend_from_slice(&chunk);
    }
    data.truncate(total);
    Ok(data)
}

/// DG1: tag 61 holding tag 5F1F, the MRZ as ASCII.
fn parse_dg1(dg1: &[u8]) -> Result<IdentityPage, ChipError> {
    let malformed = |what: &str| ChipError::Malformed(format!("EF.DG1 {what}"));
    let (tag, mut inner, _) = tlv(dg1).ok_or_else(|| malformed("is not a TLV"))?;
    if tag != 0x61 {
        return Err(malformed("does not start with tag 61"));
    }
    while !inner.is_empty() {
        let (tag, value, rest) = tlv(inner).ok_or_else(|| malformed("holds a broken TLV"))?;
        if tag == 0x5F1F {
            let mrz = std::str::from_utf8(value)
                .map_err(|_| malformed("holds an MRZ that is not text"))?;
            return IdentityPage::from_mrz(mrz);
        }
        inner = rest;
    }
    Err(malformed("holds no MRZ (tag 5F1F)"))
}

// ---------------------------------------------------------------------------------------------
// The chip's side, in software
// ---------------------------------------------------------------------------------------------

/// A chip in software holding one identity page. Answers SELECT of the eMRTD application,
/// GET CHALLENGE, EXTERNAL AUTHENTICATE (BAC), then only secure-messaging SELECT FILE / READ
/// BINARY of EF.COM and EF.DG1.
///
/// Before BAC anything else is refused with 6982; after it every command must carry secure
/// messaging with a right MAC: a plain command is refused with 6987, a wrong MAC with 6988, and
/// either drops the session (the reader must authenticate again). SELECT of the application
/// always succeeds and drops any session.
pub struct SoftChip {
    app: Option<Application>,
    rng: ChaCha20Rng,
    state: ChipState,
}

/// What the eMRTD application holds.
struct Application {
    keys: Keys,
    ef_com: Vec<u8>,
    dg1: Vec<u8>,
}

enum ChipState {
    /// Powered, the application not selected.
    Idle,
    /// The application selected; a challenge given, waiting for EXTERNAL AUTHENTICATE.
    Selected { challenge: Option<[u8; 8]> },
    /// After BAC: secure messaging, with the file last selected.
    Secure {
        session: Session,
        file: Option<[u8; 2]>,
    },
}

impl std::fmt::Debug for SoftChip {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let state = match self.state {
            ChipState::Idle => "idle",
            ChipState::Selected { .. } => "application selected",
            ChipState::Secure { .. } => "secure messaging",
        };
        f.debug_struct("SoftChip")
            .field("application", &self.app.is_some())
            .field("state", &state)
            .finish_non_exhaustive()
    }
}

/// A plain command APDU (short length only).
struct Command<'a> {
    cla: u8,
    ins: u8,
    p1: u8,
    p2: u8,
    data: &'a [u8],
    le: Option<usize>,
}

impl<'a> Command<'a> {
    fn parse(apdu: &'a [u8]) -> Option<Command<'a>> {
        let (&[cla, ins, p1, p2], body) = apdu.split_first_chunk::<4>()?;
        let (data, le) = match body {
            [] => (&body[..0], None),
            [le] => (&body[..0], Some(short_le(*le))),
            [lc, rest @ ..] if *lc != 0 => {
                let lc = usize::from(*lc);
                match rest.len().checked_sub(lc) {
                    Some(0) => (rest, None),
                    Some(1) => (&rest[..lc], Some(short_le(rest[lc]))),
                    _ => return None,
                }
            }
            _ => return None,
        };
        Some(Command {
            cla,
            ins,
            p1,
            p2,
            data,
            le,
        })
    }
}

fn short_le(le: u8) -> usize {
    if le == 0 {
        256
    } else {
        usize::from(le)
    }
}

impl SoftChip {
    /// A chip for `page`; `seed` drives its challenges (deterministic for tests and simulation).
    /// The page goes on the chip as [`IdentityPage::to_mrz`] writes it.
    pub fn new(page: &IdentityPage, seed: u64) -> SoftChip {
        let mrz = page.to_mrz();
        // The MRZ information as the chip sees it: straight from its own MRZ.
        let info = format!("{}{}{}", &mrz[5..15], &mrz[30..37], &mrz[38..45]);
        let mut ef_com = Vec::new();
        let mut com = Vec::new();
        // LDS version 1.7, Unicode 4.0.0, data groups present: DG1 only.
        com.extend_from_slice(&[0x5F, 0x01, 0x04]);
        com.extend_from_slice(b"0107");
        com.extend_from_slice(&[0x5F, 0x36, 0x06]);
        com.extend_from_slice(b"040000");
        com.extend_from_slice(&[0x5C, 0x01, 0x61]);
        push_tlv(&mut ef_com, 0x60, &com);
        let mut mrz_do = vec![0x5F, 0x1F, mrz.len() as u8];
        mrz_do.extend_from_slice(mrz.as_bytes());
        let mut dg1 = Vec::new();
        push_tlv(&mut dg1, 0x61, &mrz_do);
        SoftChip {
            app: Some(Application {
                keys: Keys::from_mrz_information(&info),
                ef_com,
                dg1,
            }),
            rng: ChaCha20Rng::seed_from_u64(seed),
            state: ChipState::Idle,
        }
    }

    /// A card without the eMRTD application (another kind of smart card): it answers 6A82 to
    /// the SELECT and refuses everything else.
    pub fn without_application() -> SoftChip {
        SoftChip {
            app: None,
            rng: ChaCha20Rng::seed_from_u64(0),
            state: ChipState::Idle,
        }
    }

    /// Power cycle: the application is deselected and any session forgotten.
    pub fn reset(&mut self) {
        self.state = ChipState::Idle;
    }

    /// Answer one command APDU with a response APDU (data + SW1 SW2). Never panics on any input.
    pub fn respond(&mut self, apdu: &[u8]) -> Vec<u8> {
        let Some(cmd) = Command::parse(apdu) else {
            if matches!(self.state, ChipState::Secure { .. }) {
                self.state = ChipState::Selected { challenge: None };
            }
            return sw_bytes(SW_WRONG_LENGTH);
        };
        let is_select_app = cmd.cla == 0x00 && cmd.ins == 0xA4 && cmd.p1 == 0x04;
        if is_select_app {
            return if self.app.is_some() && cmd.data == EMRTD_AID {
                self.state = ChipState::Selected { challenge: None };
                sw_bytes(SW_OK)
            } else {
                sw_bytes(SW_NOT_FOUND)
            };
        }
        if matches!(self.state, ChipState::Secure { .. }) {
            if cmd.cla == 0x0C {
                return self.secure_command(apdu, &cmd);
            }
            // An unprotected command ends the session.
            self.state = ChipState::Selected { challenge: None };
            return sw_bytes(SW_SM_MISSING);
        }
        match (cmd.cla, cmd.ins) {
            (0x00, 0x84) => self.get_challenge(&cmd),
            (0x00, 0x82) => self.external_authenticate(&cmd),
            (0x00 | 0x0C, _) => sw_bytes(SW_SECURITY_NOT_SATISFIED),
            _ => sw_bytes(SW_CLA_NOT_SUPPORTED),
        }
    }

    fn get_challenge(&mut self, cmd: &Command<'_>) -> Vec<u8> {
        if !matches!(self.state, ChipState::Selected { .. }) {
            return sw_bytes(SW_CONDITIONS_NOT_SATISFIED);
        }
        if cmd.p1 != 0 || cmd.p2 != 0 || !cmd.data.is_empty() || cmd.le != Some(8) {
            return sw_bytes(SW_WRONG_LENGTH);
        }
        let mut challenge = [0u8; 8];
        self.rng.fill_bytes(&mut challenge);
        self.state = ChipState::Selected {
            challenge: Some(challenge),
        };
        let mut out = challenge.to_vec();
        out.extend(sw_bytes(SW_OK));
        out
    }

    fn external_authenticate(&mut self, cmd: &Command<'_>) -> Vec<u8> {
        // The challenge is good for one attempt.
        let challenge = match &mut self.state {
            ChipState::Selected { challenge } => challenge.take(),
            _ => None,
        };
        let (Some(rnd_icc), Some(app)) = (challenge, &self.app) else {
            return sw_bytes(SW_CONDITIONS_NOT_SATISFIED);
        };
        if cmd.data.len() != 40 || cmd.le.is_some_and(|le| le != 40 && le != 256) {
            return sw_bytes(SW_WRONG_LENGTH);
        }
        let (e_ifd, m_ifd) = cmd.data.split_at(32);
        if !same(&retail_mac(&app.keys.mac, e_ifd), m_ifd) {
            return sw_bytes(SW_AUTH_FAILED);
        }
        let mut s = tdes_decrypt(&app.keys.enc, e_ifd);
        if !same(&s[8..16], &rnd_icc) {
            s.zeroize();
            return sw_bytes(SW_AUTH_FAILED);
        }
        let mut rnd_ifd = [0u8; 8];
        rnd_ifd.copy_from_slice(&s[..8]);
        let mut k_ifd = first16(&s[16..]);
        s.zeroize();
        let mut k_icc = [0u8; 16];
        self.rng.fill_bytes(&mut k_icc);
        let mut r = Vec::with_capacity(32);
        r.extend_from_slice(&rnd_icc);
        r.extend_from_slice(&rnd_ifd);
        r.extend_from_slice(&k_icc);
        let e_icc = tdes_encrypt(&app.keys.enc, &r);
        r.zeroize();
        let m_icc = retail_mac(&app.keys.mac, &e_icc);
        let session = Session::new(&k_ifd, &k_icc, &rnd_icc, &rnd_ifd);
        k_ifd.zeroize();
        k_icc.zeroize();
        self.state = ChipState::Secure {
            session,
            file: None,
        };
        let mut out = e_icc;
        out.extend_from_slice(&m_icc);
        out.extend(sw_bytes(SW_OK));
        out
    }

    /// A protected command: check its MAC, open it, run it, protect the answer. Anything wrong
    /// with the protection drops the session (6988).
    fn secure_command(&mut self, apdu: &[u8], cmd: &Command<'_>) -> Vec<u8> {
        let ChipState::Secure { session, file } = &mut self.state else {
            return sw_bytes(SW_SECURITY_NOT_SATISFIED);
        };
        let Some(app) = &self.app else {
            return sw_bytes(SW_SECURITY_NOT_SATISFIED);
        };
        let opened = open_command(session, apdu, cmd.data);
        let Some((data, le)) = opened else {
            self.state = ChipState::Selected { challenge: None };
            return sw_bytes(SW_SM_INCORRECT);
        };
        let (reply, sw) = run_file_command(app, file, cmd, &data, le);
        let mut objects = Vec::new();
        if !reply.is_empty() {
            let mut value = vec![0x01];
            value.extend(tdes_encrypt(&session.keys.enc, &pad(&reply)));
            push_tlv(&mut objects, 0x87, &value);
        }
        push_tlv(&mut objects, 0x99, &sw.to_be_bytes());
        let mac = session.next_mac(&objects);
        push_tlv(&mut objects, 0x8E, &mac);
        objects.extend(sw_bytes(sw));
        objects
    }
}

/// Check a protected command's MAC and decrypt its data; `None` when the protection is wrong.
/// Returns the plain data and the expected length.
fn open_command(
    session: &mut Session,
    apdu: &[u8],
    objects: &[u8],
) -> Option<(Vec<u8>, Option<usize>)> {
    let header = apdu.get(..4)?;
    let mut rest = objects;
    let mut do87 = None;
    let mut do97 = None;
    let mut mac = None;
    while !rest.is_empty() {
        let start = objects.len() - rest.len();
        let (tag, value, after) = tlv(rest)?;
        match tag {
            0x87 if do87.is_none() && do97.is_none() => do87 = Some(value),
            0x97 if do97.is_none() => do97 = Some(value),
            0x8E if after.is_empty() && value.len() == 8 => mac = Some((value, &objects[..start])),
            _ => return None,
        }
        rest = after;
    }
    let (mac, covered) = mac?;
    let mut input = pad(header);
    input.extend_from_slice(covered);
    if !same(&session.next_mac(&input), mac) {
        return None;
    }
    let data = match do87 {
        None => Vec::new(),
        Some([0x01, cipher @ ..]) if !cipher.is_empty() && cipher.len() % 8 == 0 => {
            unpad(&tdes_decrypt(&session.keys.enc, cipher))?.to_vec()
        }
        Some(_) => return None,
    };
    let le = match do97 {
        None => None,
        Some([0]) => Some(256),
        Some([n]) => Some(usize::from(*n)),
        Some([0, 0]) => Some(65536),
        Some([a, b]) => Some(usize::from(u16::from_be_bytes([*a, *b]))),
        Some(_) => return None,
    };
    Some((data, le))
}

/// SELECT FILE and READ BINARY inside secure messaging.
fn run_file_command(
    app: &Application,
    selected: &mut Option<[u8; 2]>,
    cmd: &Command<'_>,
    data: &[u8],
    le: Option<usize>,
) -> (Vec<u8>, u16) {
    let contents = |fid: [u8; 2]| match fid {
        EF_COM => Some(&app.ef_com),
        EF_DG1 => Some(&app.dg1),
        _ => None,
    };
    match cmd.ins {
        0xA4 => {
            if cmd.p1 != 0x02 && cmd.p1 != 0x00 {
                return (Vec::new(), SW_WRONG_P1P2);
            }
            let Ok(fid) = <[u8; 2]>::try_from(data) else {
                return (Vec::new(), SW_WRONG_LENGTH);
            };
            if contents(fid).is_none() {
                return (Vec::new(), SW_NOT_FOUND);
            }
            *selected = Some(fid);
            (Vec::new(), SW_OK)
        }
        0xB0 => {
            let (fid, offset) = if cmd.p1 & 0x80 != 0 {
                // Short file identifier in P1, offset in P2.
                let fid = match cmd.p1 & 0x1F {
                    0x01 => EF_DG1,
                    0x1E => EF_COM,
                    _ => return (Vec::new(), SW_NOT_FOUND),
                };
                *selected = Some(fid);
                (fid, usize::from(cmd.p2))
            } else {
                let Some(fid) = *selected else {
                    return (Vec::new(), SW_NO_CURRENT_EF);
                };
                (fid, usize::from(u16::from_be_bytes([cmd.p1, cmd.p2])))
            };
            let Some(le) = le else {
                return (Vec::new(), SW_WRONG_LENGTH);
            };
            let Some(file) = contents(fid) else {
                return (Vec::new(), SW_NOT_FOUND);
            };
            if offset > file.len() {
                return (Vec::new(), SW_WRONG_OFFSET);
            }
            let end = file.len().min(offset.saturating_add(le));
            let part = file.get(offset..end).unwrap_or_default().to_vec();
            let sw = if part.len() < le {
                SW_END_OF_FILE
            } else {
                SW_OK
            };
            (part, sw)
        }
        _ => (Vec::new(), SW_INS_NOT_SUPPORTED),
    }
}

impl ChipTransport for SoftChip {
    fn transmit(&mut self, apdu: &[u8]) -> Result<Vec<u8>, ChipError> {
        Ok(self.respond(apdu))
    }
}

// ---------------------------------------------------------------------------------------------
// A chip in a PC/SC reader
// ---------------------------------------------------------------------------------------------

#[cfg(feature = "pcsc")]
pub use self::pcsc_reader::{read_from_pcsc, PcscChip};

#[cfg(feature = "pcsc")]
mod pcsc_reader {
    use std::ffi::{CStr, CString};

    use super::{
        read_selected, reader_randoms, select_application, split_sw, AccessKey, ChipError,
        ChipTransport, IdentityPage,
    };
    use crate::card::{self, BadgeError};

    /// At most this many GET RESPONSE / re-sent commands for one APDU.
    const MAX_ROUNDS: usize = 32;

    /// A chip in a PC/SC reader, spoken to through a card handle (or a transaction on it) the
    /// caller holds. Answers 61xx (more data: GET RESPONSE) and 6Cxx (wrong Le: send again)
    /// itself, so the protocol above sees one response per command, on T=0 as on T=1.
    pub struct PcscChip<'a> {
        card: &'a pcsc::Card,
        reader: String,
    }

    impl std::fmt::Debug for PcscChip<'_> {
        fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
            f.debug_struct("PcscChip")
                .field("reader", &self.reader)
                .finish_non_exhaustive()
        }
    }

    impl<'a> PcscChip<'a> {
        /// The chip behind `card`, connected in `reader` (the name is used to tell a pulled
        /// card from another transmission failure).
        pub fn new(card: &'a pcsc::Card, reader: &str) -> PcscChip<'a> {
            PcscChip {
                card,
                reader: reader.to_owned(),
            }
        }

        fn exchange(&self, apdu: &[u8]) -> Result<Vec<u8>, ChipError> {
            let mut buffer = vec![0u8; pcsc::MAX_BUFFER_SIZE_EXTENDED];
            match self.card.transmit(apdu, &mut buffer) {
                Ok(response) if response.len() >= 2 => Ok(response.to_vec()),
                // vpcd (and some readers) report a card pulled mid-command as an empty answer.
                Ok(response) => Err(gone_or(
                    &self.reader,
                    ChipError::Card(format!(
                        "the card in {} answered {} byte(s), not even a status word",
                        self.reader,
                        response.len()
                    )),
                )),
                Err(e) => Err(classify(&self.reader, e)),
            }
        }
    }

    impl ChipTransport for PcscChip<'_> {
        fn transmit(&mut self, apdu: &[u8]) -> Result<Vec<u8>, ChipError> {
            let mut data = Vec::new();
            let mut command = apdu.to_vec();
            for _ in 0..MAX_ROUNDS {
                let response = self.exchange(&command)?;
                let (body, sw) = split_sw(&response)?;
                data.extend_from_slice(body);
                let [sw1, sw2] = sw.to_be_bytes();
                match sw1 {
                    0x61 => command = vec![0x00, 0xC0, 0x00, 0x00, sw2],
                    0x6C => command = with_le(&command, sw2),
                    _ => {
                        data.extend_from_slice(&[sw1, sw2]);
                        return Ok(data);
                    }
                }
            }
            Err(ChipError::Card(format!(
                "the card in {} kept asking for more exchanges (61xx/6Cxx) without ending",
                self.reader
            )))
        }
    }

    /// `apdu` (short form) with its expected length set to `le`.
    fn with_le(apdu: &[u8], le: u8) -> Vec<u8> {
        let mut out = apdu.to_vec();
        match apdu.len() {
            0..=4 => out.push(le),
            5 => out[4] = le,
            n => {
                let lc = usize::from(apdu[4]);
                if n == 5 + lc {
                    out.push(le);
                } else if let Some(last) = out.last_mut() {
                    *last = le;
                }
            }
        }
        out
    }

    /// A PC/SC failure in words for the officer. A transmission that fails for no stated reason
    /// is checked against the reader: if the card is gone (or goes within a moment — pcscd and
    /// vpcd notice a removal a little after the failure), it was taken away.
    fn classify(reader: &str, e: pcsc::Error) -> ChipError {
        use pcsc::Error as E;
        match e {
            E::RemovedCard | E::ResetCard | E::NoSmartcard => ChipError::Removed,
            E::NoService | E::ServiceStopped | E::InvalidHandle => {
                ChipError::NoService(e.to_string())
            }
            E::UnknownReader | E::ReaderUnavailable => ChipError::NoReader,
            other => gone_or(reader, ChipError::Card(format!("{reader}: {other}"))),
        }
    }

    /// [`ChipError::Removed`] if the card leaves `reader` within a moment, else `otherwise`.
    fn gone_or(reader: &str, otherwise: ChipError) -> ChipError {
        match card::removed_within(reader, card::REMOVAL_SETTLE) {
            Ok(true) => ChipError::Removed,
            Ok(false) => otherwise,
            Err(e) => from_badge(e),
        }
    }

    fn from_badge(e: BadgeError) -> ChipError {
        match e {
            BadgeError::NoService(s) => ChipError::NoService(s),
            BadgeError::NoReader => ChipError::NoReader,
            BadgeError::NoCard => ChipError::NoCard,
            BadgeError::Removed => ChipError::Removed,
            other => ChipError::Card(other.to_string()),
        }
    }

    /// How one reader's card turned out when it did not give the page.
    enum Attempt {
        /// Not the citizen's card (or not readable as one): try the other readers.
        Skipped(ChipError),
        /// The card has the eMRTD application: its error is the answer.
        Citizen(ChipError),
    }

    /// Which of two skipped readers' errors tells the officer more: a real failure over "not an
    /// ID card" over "no card".
    fn rank(e: &ChipError) -> u8 {
        match e {
            ChipError::NoCard => 0,
            ChipError::NotAnIdCard => 1,
            _ => 2,
        }
    }

    /// Read the identity page from the citizen's card in a PC/SC reader, and say which reader.
    ///
    /// With `reader`, only that reader is used (`exclude` does not apply). Without it, every
    /// reader with a card that is not in `exclude` (e.g. the officer's badge reader) is tried
    /// in turn; a card without the eMRTD application (an officer's OpenPGP badge) is left as it
    /// was and skipped. The first card with the application is the citizen's: its result is
    /// the answer, right or wrong.
    ///
    /// Errors: [`ChipError::NoService`] when pcscd cannot be reached, [`ChipError::NoReader`]
    /// when no (non-excluded) reader is attached, [`ChipError::NoCard`] when none holds a card,
    /// [`ChipError::NotAnIdCard`] when the cards there have no eMRTD application,
    /// [`ChipError::Removed`] when the card goes during the reading, and the protocol's errors
    /// ([`ChipError::AccessDenied`], [`ChipError::Tampered`], ...) from the citizen's card.
    ///
    /// Each card is connected shared (T=0 or T=1) and read inside one PC/SC transaction. The
    /// citizen's card is reset when the reading ends, closing its secure-messaging session;
    /// other cards are left as they were (no reset: an officer's badge keeps its verified PIN).
    pub fn read_from_pcsc(
        reader: Option<&str>,
        exclude: &[String],
        key: &AccessKey,
    ) -> Result<(String, IdentityPage), ChipError> {
        let key = AccessKey::new(&key.document_number, &key.birth_date, &key.expiry_date)?;
        let ctx = card::context().map_err(from_badge)?;
        let candidates: Vec<CString> = card::reader_names(&ctx)
            .map_err(from_badge)?
            .into_iter()
            .filter(|n| match reader {
                Some(r) => n.to_bytes() == r.as_bytes(),
                None => !exclude.iter().any(|x| x.as_bytes() == n.to_bytes()),
            })
            .collect();
        if candidates.is_empty() {
            return Err(ChipError::NoReader);
        }
        let with_card: Vec<CString> = card::states(&ctx, &candidates)
            .map_err(from_badge)?
            .iter()
            .filter(|s| card::present(s))
            .map(|s| s.name().to_owned())
            .collect();
        let mut outcome = ChipError::NoCard;
        for name in with_card {
            let shown = name.to_string_lossy().into_owned();
            match try_reader(&ctx, &name, &shown, &key) {
                Ok(page) => return Ok((shown, page)),
                Err(Attempt::Citizen(e)) => return Err(e),
                Err(Attempt::Skipped(e)) => {
                    if rank(&e) > rank(&outcome) {
                        outcome = e;
                    }
                }
            }
        }
        Err(outcome)
    }

    fn try_reader(
        ctx: &pcsc::Context,
        name: &CStr,
        shown: &str,
        key: &AccessKey,
    ) -> Result<IdentityPage, Attempt> {
        let mut card = match ctx.connect(name, pcsc::ShareMode::Shared, pcsc::Protocols::ANY) {
            Ok(card) => card,
            Err(pcsc::Error::NoSmartcard | pcsc::Error::RemovedCard) => {
                return Err(Attempt::Skipped(ChipError::NoCard))
            }
            Err(e) => return Err(Attempt::Skipped(classify(shown, e))),
        };
        let result = match card.transaction() {
            Err(e) => Err(Attempt::Skipped(classify(shown, e))),
            Ok(tx) => {
                let mut chip = PcscChip::new(&tx, shown);
                match select_application(&mut chip) {
                    Err(e) => Err(Attempt::Skipped(e)),
                    Ok(()) => reader_randoms()
                        .and_then(|(rnd_ifd, k_ifd)| read_selected(&mut chip, key, rnd_ifd, k_ifd))
                        .map_err(Attempt::Citizen),
                }
                // The transaction ends here, leaving the card as it is.
            }
        };
        let disposition = match result {
            Err(Attempt::Skipped(_)) => pcsc::Disposition::LeaveCard,
            _ => pcsc::Disposition::ResetCard,
        };
        // A failed disconnect means the card or the service is gone: nothing left to do.
        let _ = card.disconnect(disposition);
        result
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn hex(s: &str) -> Vec<u8> {
        let s: String = s.split_whitespace().collect();
        (0..s.len())
            .step_by(2)
            .map(|i| u8::from_str_radix(&s[i..i + 2], 16).unwrap())
            .collect()
    }

    fn arr<const N: usize>(s: &str) -> [u8; N] {
        hex(s).try_into().unwrap()
    }

    const SPECIMEN: [&str; 3] = [
        "I<UTOD231458907<<<<<<<<<<<<<<<",
        "7408122F1204159UTO<<<<<<<<<<<6",
        "ERIKSSON<<ANNA<MARIA<<<<<<<<<<",
    ];

    fn specimen() -> IdentityPage {
        IdentityPage::from_mrz(&SPECIMEN.concat()).unwrap()
    }

    fn page() -> IdentityPage {
        IdentityPage {
            document_code: "ID".into(),
            issuing_state: "MAR".into(),
            document_number: "AB1234567".into(),
            birth_date: "900215".into(),
            sex: "F".into(),
            expiry_date: "310630".into(),
            nationality: "MAR".into(),
            surname: "EL AMRANI".into(),
            given_names: "FATIMA ZAHRA".into(),
            optional_data: "X123456".into(),
        }
    }

    fn key_for(p: &IdentityPage) -> AccessKey {
        AccessKey::new(&p.document_number, &p.birth_date, &p.expiry_date).unwrap()
    }

    // --- ICAO Doc 9303 part 11, Appendix D (worked example of BAC and secure messaging) ---

    #[test]
    fn appendix_d_bac_keys_from_the_mrz_information() {
        let key = AccessKey::new("L898902C", "690806", "940623").unwrap();
        assert_eq!(key.mrz_information(), "L898902C<369080619406236");
        let seed = kseed("L898902C<369080619406236");
        assert_eq!(seed, arr::<16>("239AB9CB282DAF66231DC5A4DF6BFBAE"));
        let keys = Keys::from_seed(&seed);
        assert_eq!(keys.enc, arr::<16>("AB94FDECF2674FDFB9B391F85D7F76F2"));
        assert_eq!(keys.mac, arr::<16>("7962D9ECE03D1ACD4C76089DCE131543"));
    }

    /// A chip that plays Appendix D's side of the authentication and checks the reader's.
    struct AppendixChip {
        keys: Keys,
        seen_external_authenticate: bool,
    }

    const RND_IC: &str = "4608F91988702212";
    const RND_IFD: &str = "781723860C06C226";
    const K_IFD: &str = "0B795240CB7049B01C19B33E32804F0B";
    const K_IC: &str = "0B4F80323EB3191CB04970CB4052790B";

    impl ChipTransport for AppendixChip {
        fn transmit(&mut self, apdu: &[u8]) -> Result<Vec<u8>, ChipError> {
            if apdu == [0x00, 0x84, 0x00, 0x00, 0x08] {
                let mut r = hex(RND_IC);
                r.extend([0x90, 0x00]);
                return Ok(r);
            }
            let expected = hex("0082000028 \
                 72C29C2371CC9BDB65B779B8E8D37B29ECC154AA56A8799FAE2F498F76ED92F2 \
                 5F1448EEA8AD90A7 28");
            assert_eq!(hex_string(apdu), hex_string(&expected), "E_IFD || M_IFD");
            self.seen_external_authenticate = true;
            let mut r = hex(RND_IC);
            r.extend(hex(RND_IFD));
            r.extend(hex(K_IC));
            let mut out = tdes_encrypt(&self.keys.enc, &r);
            let mac = retail_mac(&self.keys.mac, &out);
            out.extend(mac);
            assert_eq!(
                hex_string(&out),
                "46B9342A41396CD7386BF5803104D7CEDC122B9132139BAF2EEDC94EE178534F\
                 2F2D235D074D7449",
                "E_IC || M_IC"
            );
            out.extend([0x90, 0x00]);
            Ok(out)
        }
    }

    fn hex_string(b: &[u8]) -> String {
        b.iter().map(|b| format!("{b:02X}")).collect()
    }

    #[test]
    fn appendix_d_mutual_authentication_and_session_keys() {
        let keys = Keys::from_mrz_information("L898902C<369080619406236");
        let mut chip = AppendixChip {
            keys: Keys::from_mrz_information("L898902C<369080619406236"),
            seen_external_authenticate: false,
        };
        let session = authenticate(&mut chip, &keys, arr(RND_IFD), arr(K_IFD)).unwrap();
        assert!(chip.seen_external_authenticate);
        assert_eq!(
            session.keys.enc,
            arr::<16>("979EC13B1CBFE9DCD01AB0FED307EAE5")
        );
        assert_eq!(
            session.keys.mac,
            arr::<16>("F1CB1F1FB5ADF208806B89DC579DC1F8")
        );
        assert_eq!(session.ssc, u64::from_be_bytes(arr("887022120C06C226")));
    }

    fn appendix_session() -> Session {
        Session {
            keys: Keys {
                enc: arr("979EC13B1CBFE9DCD01AB0FED307EAE5"),
                mac: arr("F1CB1F1FB5ADF208806B89DC579DC1F8"),
            },
            ssc: u64::from_be_bytes(arr("887022120C06C226")),
        }
    }

    #[test]
    fn appendix_d_secure_messaging_select_ef_com() {
        let mut session = appendix_session();
        let apdu = session.wrap([0x00, 0xA4, 0x02, 0x0C], &[0x01, 0x1E], None);
        assert_eq!(
            hex_string(&apdu),
            "0CA4020C158709016375432908C044F68E08BF8B92D635FF24F800"
        );
    }

    #[test]
    fn appendix_d_secure_messaging_replies_and_read_binary_of_ef_com() {
        let mut session = appendix_session();
        let _ = session.wrap([0x00, 0xA4, 0x02, 0x0C], &[0x01, 0x1E], None);
        assert_eq!(
            session.unwrap(&hex("990290008E08FA855A5D4C50A8ED9000")),
            Ok((Vec::new(), SW_OK))
        );
        let apdu = session.wrap([0x00, 0xB0, 0x00, 0x00], &[], Some(4));
        assert_eq!(hex_string(&apdu), "0CB000000D9701048E08ED6705417E96BA5500");
        assert_eq!(
            session.unwrap(&hex(
                "8709019FF0EC34F9922651990290008E08AD55CC17140B2DED9000"
            )),
            Ok((hex("60145F01"), SW_OK))
        );
        let apdu = session.wrap([0x00, 0xB0, 0x00, 0x04], &[], Some(0x12));
        assert_eq!(hex_string(&apdu), "0CB000040D9701128E082EA28A70F3C7B53500");
        assert_eq!(
            session.unwrap(&hex("871901FB9235F4E4037F2327DCC8964F1F9B8C30F42C8E2FFF224A990290008E08C8B2787EAEA07D749000")),
            Ok((hex("04303130365F36063034303030305C026175"), SW_OK))
        );
    }

    #[test]
    fn a_chip_reply_with_a_wrong_mac_is_tampered() {
        let mut session = appendix_session();
        let mut chip_side = appendix_session();
        let _ = session.wrap([0x00, 0xA4, 0x02, 0x0C], &[0x01, 0x1E], None);
        chip_side.ssc += 1;
        let mut objects = Vec::new();
        push_tlv(&mut objects, 0x99, &[0x90, 0x00]);
        let mac = chip_side.next_mac(&objects);
        push_tlv(&mut objects, 0x8E, &mac);
        objects.extend([0x90, 0x00]);
        // The right reply opens; one changed bit in it does not.
        let mut reader = Session {
            keys: Keys {
                enc: session.keys.enc,
                mac: session.keys.mac,
            },
            ssc: session.ssc,
        };
        assert_eq!(session.unwrap(&objects), Ok((Vec::new(), SW_OK)));
        objects[3] ^= 0x01;
        assert_eq!(reader.unwrap(&objects), Err(ChipError::Tampered));
    }

    // --- Primitives ---

    #[test]
    fn check_digits_of_the_specimens() {
        assert_eq!(check_digit("D23145890"), '7');
        assert_eq!(check_digit("740812"), '2');
        assert_eq!(check_digit("120415"), '9');
        assert_eq!(check_digit("L898902C<"), '3');
        assert_eq!(check_digit("690806"), '1');
        assert_eq!(check_digit("940623"), '6');
        assert_eq!(check_digit(""), '0');
        assert_eq!(check_digit("<<<<"), '0');
    }

    #[test]
    fn padding_is_iso_9797_method_2() {
        assert_eq!(pad(&[]), hex("8000000000000000"));
        assert_eq!(pad(&[1, 2, 3, 4, 5, 6, 7]), hex("0102030405060780"));
        assert_eq!(pad(&[1; 8]).len(), 16);
        assert_eq!(unpad(&hex("0102800000000000")), Some(&[1u8, 2][..]));
        assert_eq!(unpad(&hex("0102030000000000")), None);
        assert_eq!(unpad(&hex("8000000000000000 0000000000000000")), None);
    }

    #[test]
    fn tdes_cbc_round_trips() {
        let key = arr::<16>("AB94FDECF2674FDFB9B391F85D7F76F2");
        let plain: Vec<u8> = (0..32).collect();
        let cipher = tdes_encrypt(&key, &plain);
        assert_ne!(cipher, plain);
        // CBC: the second block depends on the first.
        let mut changed = plain.clone();
        changed[0] ^= 1;
        assert_ne!(tdes_encrypt(&key, &changed)[8..16], cipher[8..16]);
        assert_eq!(tdes_decrypt(&key, &cipher), plain);
    }

    // --- MRZ ---

    #[test]
    fn the_specimen_td1_parses() {
        let p = specimen();
        assert_eq!(p.document_code, "I");
        assert_eq!(p.issuing_state, "UTO");
        assert_eq!(p.document_number, "D23145890");
        assert_eq!(p.birth_date, "740812");
        assert_eq!(p.sex, "F");
        assert_eq!(p.expiry_date, "120415");
        assert_eq!(p.nationality, "UTO");
        assert_eq!(p.surname, "ERIKSSON");
        assert_eq!(p.given_names, "ANNA MARIA");
        assert_eq!(p.optional_data, "");
        assert_eq!(p.to_mrz(), SPECIMEN.concat());
    }

    #[test]
    fn the_mrz_is_accepted_with_newlines_between_its_lines() {
        for sep in ["\n", "\r\n"] {
            let text = SPECIMEN.join(sep);
            assert_eq!(IdentityPage::from_mrz(&text).unwrap(), specimen());
            assert_eq!(
                IdentityPage::from_mrz(&format!("{text}{sep}")).unwrap(),
                specimen()
            );
        }
        assert!(matches!(
            IdentityPage::from_mrz(&SPECIMEN[..2].join("\n")),
            Err(ChipError::Malformed(_))
        ));
        assert!(matches!(
            IdentityPage::from_mrz(&SPECIMEN.concat()[..89]),
            Err(ChipError::Malformed(m)) if m.contains("90")
        ));
        assert!(matches!(
            IdentityPage::from_mrz(&SPECIMEN.concat().to_lowercase()),
            Err(ChipError::Malformed(m)) if m.contains("line 1, position 1")
        ));
    }

    #[test]
    fn a_wrong_check_digit_is_refused_naming_it() {
        let good = SPECIMEN.concat();
        for (at, what) in [
            (14, "document number"),
            (36, "date of birth"),
            (44, "date of expiry"),
            (59, "composite"),
        ] {
            let mut bad = good.clone().into_bytes();
            bad[at] = if bad[at] == b'0' { b'1' } else { b'0' };
            let bad = String::from_utf8(bad).unwrap();
            match IdentityPage::from_mrz(&bad) {
                Err(ChipError::Malformed(m)) => assert!(m.contains(what), "{what}: {m}"),
                other => panic!("{what}: {other:?}"),
            }
        }
        // A changed field (not its check digit) fails too: the birth date's digit.
        let mut bad = good.into_bytes();
        bad[31] = b'5';
        let err = IdentityPage::from_mrz(&String::from_utf8(bad).unwrap()).unwrap_err();
        assert!(err.to_string().contains("date of birth"), "{err}");
    }

    #[test]
    fn document_numbers_longer_than_nine_are_refused() {
        // Line 1 of a long document number: "<" in the check digit place, the rest in the
        // optional data.
        let mut line1 = "I<UTOD23145890<7890<<<<<<<<<<<".to_owned();
        line1.truncate(30);
        let text = format!("{line1}{}{}", SPECIMEN[1], SPECIMEN[2]);
        match IdentityPage::from_mrz(&text) {
            Err(ChipError::Malformed(m)) => assert!(m.contains("longer than 9"), "{m}"),
            other => panic!("{other:?}"),
        }
        let mut long = page();
        long.document_number = "AB12345678".into();
        assert!(
            matches!(long.try_to_mrz(), Err(ChipError::Malformed(m)) if m.contains("more than 9"))
        );
        assert!(matches!(
            AccessKey::new("AB12345678", "900215", "310630"),
            Err(ChipError::BadKey(m)) if m.contains("more than 9")
        ));
    }

    #[test]
    fn a_page_round_trips_through_its_mrz() {
        let p = page();
        let mrz = p.try_to_mrz().unwrap();
        assert_eq!(mrz.len(), 90);
        assert_eq!(&mrz[60..90], "EL<AMRANI<<FATIMA<ZAHRA<<<<<<<");
        assert_eq!(IdentityPage::from_mrz(&mrz).unwrap(), p);
        let unspecified = IdentityPage {
            sex: String::new(),
            given_names: String::new(),
            ..p
        };
        assert_eq!(
            IdentityPage::from_mrz(&unspecified.to_mrz()).unwrap(),
            unspecified
        );
    }

    #[test]
    fn try_to_mrz_names_the_field_that_does_not_fit() {
        type Change = fn(&mut IdentityPage);
        let cases: [(Change, &str); 4] = [
            (|p| p.birth_date = "9002".into(), "date of birth"),
            (|p| p.sex = "Q".into(), "sex"),
            (|p| p.nationality = "MARO".into(), "nationality"),
            (|p| p.surname = "ÉL AMRANI".into(), "transliterated"),
        ];
        for (change, what) in cases {
            let mut p = page();
            change(&mut p);
            match p.try_to_mrz() {
                Err(ChipError::Malformed(m)) => assert!(m.contains(what), "{what}: {m}"),
                other => panic!("{what}: {other:?}"),
            }
        }
    }

    // --- Access key ---

    #[test]
    fn access_key_normalises_the_card_number() {
        let k = AccessKey::new("  ab12345 ", "900215", "310630").unwrap();
        assert_eq!(k.document_number, "AB12345");
        // Check digits by hand: AB12345<< → 166 → 6; 900215 → 85 → 5; 310630 → 75 → 5.
        assert_eq!(k.mrz_information(), "AB12345<<690021553106305");
    }

    #[test]
    fn access_key_errors_name_the_field() {
        let cases = [
            (("", "900215", "310630"), "card number"),
            (("AB-123", "900215", "310630"), "card number"),
            (("AB123", "90021", "310630"), "date of birth"),
            (("AB123", "9002150", "310630"), "date of birth"),
            (("AB123", "90O215", "310630"), "date of birth"),
            (("AB123", "901315", "310630"), "month"),
            (("AB123", "900200", "310630"), "day"),
            (("AB123", "900132", "310630"), "day"),
            (("AB123", "900215", "311330"), "date of expiry"),
        ];
        for ((n, b, e), what) in cases {
            match AccessKey::new(n, b, e) {
                Err(ChipError::BadKey(m)) => assert!(m.contains(what), "{n} {b} {e}: {m}"),
                other => panic!("{n} {b} {e}: {other:?}"),
            }
        }
        let err = AccessKey::new("AB123", "900215", "311330").unwrap_err();
        assert!(
            err.to_string().contains("date of expiry has no month 13"),
            "{err}"
        );
    }

    #[test]
    fn access_key_debug_shows_no_value() {
        let k = AccessKey::new("AB1234567", "900215", "310630").unwrap();
        let shown = format!("{k:?}");
        assert_eq!(shown, "AccessKey { .. }");
    }

    // --- Reader against the software chip ---

    #[test]
    fn read_identity_from_the_soft_chip() {
        let p = page();
        let mut chip = SoftChip::new(&p, 7);
        assert_eq!(read_identity(&mut chip, &key_for(&p)).unwrap(), p);
        // Again on the same chip: selecting the application starts over.
        assert_eq!(read_identity(&mut chip, &key_for(&p)).unwrap(), p);
        let s = specimen();
        let mut chip = SoftChip::new(&s, 8);
        assert_eq!(read_identity(&mut chip, &key_for(&s)).unwrap(), s);
    }

    #[test]
    fn a_wrong_key_is_access_denied_and_the_right_one_still_opens() {
        let p = page();
        let mut chip = SoftChip::new(&p, 7);
        for (n, b, e) in [
            ("AB1234568", "900215", "310630"),
            ("AB1234567", "900216", "310630"),
            ("AB1234567", "900215", "310631"),
        ] {
            let wrong = AccessKey::new(n, b, e).unwrap();
            assert_eq!(
                read_identity(&mut chip, &wrong),
                Err(ChipError::AccessDenied)
            );
        }
        assert_eq!(read_identity(&mut chip, &key_for(&p)).unwrap(), p);
    }

    #[test]
    fn a_key_built_by_hand_is_checked_again() {
        let mut chip = SoftChip::new(&page(), 7);
        let key = AccessKey {
            document_number: "AB1234567".into(),
            birth_date: "901315".into(),
            expiry_date: "310630".into(),
        };
        assert!(matches!(
            read_identity(&mut chip, &key),
            Err(ChipError::BadKey(m)) if m.contains("month")
        ));
    }

    #[test]
    fn a_card_without_the_application_is_not_an_id_card() {
        let mut card = SoftChip::without_application();
        assert_eq!(
            read_identity(&mut card, &key_for(&page())),
            Err(ChipError::NotAnIdCard)
        );
        assert_eq!(card.respond(&hex("0084000008")), hex("6985"));
    }

    /// Passes commands through; changes the reply to command number `nth` (counted from 0).
    struct Meddler<'a> {
        chip: &'a mut SoftChip,
        count: usize,
        nth: usize,
        change: &'a dyn Fn(&mut Vec<u8>),
        reads: Vec<usize>,
    }

    impl ChipTransport for Meddler<'_> {
        fn transmit(&mut self, apdu: &[u8]) -> Result<Vec<u8>, ChipError> {
            let mut reply = self.chip.respond(apdu);
            if apdu.get(1) == Some(&0xB0) {
                // The expected length in DO'97 (97 01 Le) of a protected READ BINARY.
                if let Some(at) = apdu.windows(2).position(|w| w == [0x97, 0x01]) {
                    self.reads.push(usize::from(apdu[at + 2]));
                }
            }
            if self.count == self.nth {
                (self.change)(&mut reply);
            }
            self.count += 1;
            Ok(reply)
        }
    }

    /// The number of commands a whole reading sends: SELECT, GET CHALLENGE, EXTERNAL
    /// AUTHENTICATE, then protected SELECT EF.DG1 and two READ BINARY.
    const COMMANDS: usize = 6;

    fn read_meddled(nth: usize, change: &dyn Fn(&mut Vec<u8>)) -> Result<IdentityPage, ChipError> {
        let p = page();
        let mut chip = SoftChip::new(&p, 11);
        let mut m = Meddler {
            chip: &mut chip,
            count: 0,
            nth,
            change,
            reads: Vec::new(),
        };
        let r = read_identity(&mut m, &key_for(&p));
        assert_eq!(m.count, if r.is_ok() { COMMANDS } else { m.count });
        r
    }

    #[test]
    fn an_untouched_meddler_reads_the_page_in_six_commands() {
        assert_eq!(read_meddled(usize::MAX, &|_| {}).unwrap(), page());
    }

    #[test]
    fn any_changed_byte_in_a_protected_reply_is_tampered() {
        let p = page();
        let mut chip = SoftChip::new(&p, 11);
        let mut replies = Vec::new();
        let mut recorder = Recorder {
            chip: &mut chip,
            replies: &mut replies,
        };
        read_identity(&mut recorder, &key_for(&p)).unwrap();
        assert_eq!(replies.len(), COMMANDS);
        let mut tried = 0;
        for (nth, reply) in replies.iter().enumerate().skip(3) {
            // Every byte but the outer status word (DO'99 inside is the one that counts).
            for at in 0..reply.len() - 2 {
                let r = read_meddled(nth, &|r: &mut Vec<u8>| r[at] ^= 0x01);
                assert_eq!(r, Err(ChipError::Tampered), "reply {nth}, byte {at}");
                tried += 1;
            }
        }
        assert!(tried > 100, "{tried}");
    }

    struct Recorder<'a> {
        chip: &'a mut SoftChip,
        replies: &'a mut Vec<Vec<u8>>,
    }

    impl ChipTransport for Recorder<'_> {
        fn transmit(&mut self, apdu: &[u8]) -> Result<Vec<u8>, ChipError> {
            let r = self.chip.respond(apdu);
            self.replies.push(r.clone());
            Ok(r)
        }
    }

    #[test]
    fn a_reply_without_secure_messaging_is_tampered() {
        for plain in ["6987", "6988", "9000"] {
            let r = read_meddled(3, &|r: &mut Vec<u8>| *r = hex(plain));
            assert_eq!(r, Err(ChipError::Tampered), "{plain}");
        }
        // DO'99 and DO'8E cut off, DO'87 alone.
        let r = read_meddled(4, &|r: &mut Vec<u8>| {
            let n = usize::from(r[1]) + 2;
            r.drain(n..r.len() - 2);
        });
        assert_eq!(r, Err(ChipError::Tampered));
    }

    #[test]
    fn a_refused_authentication_is_access_denied_and_a_forged_one_tampered() {
        let r = read_meddled(2, &|r: &mut Vec<u8>| *r = hex("6300"));
        assert_eq!(r, Err(ChipError::AccessDenied));
        let r = read_meddled(2, &|r: &mut Vec<u8>| r[5] ^= 0x80);
        assert_eq!(r, Err(ChipError::Tampered));
    }

    #[test]
    fn a_dg1_longer_than_one_chunk_is_read_in_pieces() {
        let p = page();
        let mut chip = SoftChip::new(&p, 5);
        // DG1 with a large unknown object before the MRZ: 61 82 xx xx { 53 82 01 F4 .. 5F1F .. }.
        let mut inner = Vec::new();
        push_tlv(&mut inner, 0x53, &[0xAA; 500]);
        inner.extend_from_slice(&[0x5F, 0x1F, 90]);
        inner.extend_from_slice(p.to_mrz().as_bytes());
        let mut dg1 = Vec::new();
        push_tlv(&mut dg1, 0x61, &inner);
        assert!(dg1.len() > 2 * CHUNK);
        if let Some(app) = &mut chip.app {
            app.dg1 = dg1.clone();
        }
        let mut m = Meddler {
            chip: &mut chip,
            count: 0,
            nth: usize::MAX,
            change: &|_| {},
            reads: Vec::new(),
        };
        assert_eq!(read_identity(&mut m, &key_for(&p)).unwrap(), p);
        assert_eq!(m.reads.first(), Some(&4));
        assert!(m.reads.iter().all(|n| *n <= CHUNK), "{:?}", m.reads);
        assert_eq!(m.reads.iter().sum::<usize>(), dg1.len());
    }

    // --- The software chip's own rules ---

    /// A chip after BAC, with the reader's session to talk to it.
    fn opened_chip() -> (SoftChip, Session) {
        let p = page();
        let mut chip = SoftChip::new(&p, 3);
        select_application(&mut chip).unwrap();
        let keys = Keys::from_mrz_information(&key_for(&p).mrz_information());
        let session = authenticate(&mut chip, &keys, [1; 8], [2; 16]).unwrap();
        (chip, session)
    }

    #[test]
    fn before_bac_files_are_refused() {
        let mut chip = SoftChip::new(&page(), 3);
        assert_eq!(chip.respond(&hex("00A4020C020101")), hex("6982"));
        assert_eq!(chip.respond(&hex("00A4040C07A0000002471001")), hex("9000"));
        assert_eq!(chip.respond(&hex("00A4020C020101")), hex("6982"));
        assert_eq!(chip.respond(&hex("00B0000004")), hex("6982"));
        assert_eq!(chip.respond(&hex("00A4040C07A0000002471002")), hex("6A82"));
        // EXTERNAL AUTHENTICATE before any GET CHALLENGE.
        let mut early = hex("0082000028");
        early.extend([0u8; 40]);
        assert_eq!(chip.respond(&early), hex("6985"));
    }

    fn exchange(
        chip: &mut SoftChip,
        session: &mut Session,
        header: [u8; 4],
        data: &[u8],
        le: Option<u8>,
    ) -> Result<(Vec<u8>, u16), ChipError> {
        let apdu = session.wrap(header, data, le);
        let reply = chip.respond(&apdu);
        session.unwrap(&reply)
    }

    #[test]
    fn after_bac_a_plain_command_or_a_bad_mac_ends_the_session() {
        let (mut chip, mut session) = opened_chip();
        let (_, sw) = exchange(&mut chip, &mut session, [0, 0xA4, 2, 0x0C], &EF_COM, None).unwrap();
        assert_eq!(sw, SW_OK);
        let (com, sw) = exchange(&mut chip, &mut session, [0, 0xB0, 0, 0], &[], Some(0)).unwrap();
        assert_eq!(sw, SW_END_OF_FILE);
        assert_eq!(com[..2], [0x60, 0x13]);
        // An unknown file: a protected 6A82.
        let (_, sw) = exchange(
            &mut chip,
            &mut session,
            [0, 0xA4, 2, 0x0C],
            &[0x01, 0x0F],
            None,
        )
        .unwrap();
        assert_eq!(sw, SW_NOT_FOUND);
        // A wrong MAC: 6988, and the session is gone.
        let mut apdu = session.wrap([0, 0xA4, 2, 0x0C], &EF_DG1, None);
        let last_mac_byte = apdu.len() - 2;
        apdu[last_mac_byte] ^= 1;
        assert_eq!(chip.respond(&apdu), hex("6988"));
        let apdu = session.wrap([0, 0xA4, 2, 0x0C], &EF_DG1, None);
        assert_eq!(chip.respond(&apdu), hex("6982"));

        let (mut chip, mut session) = opened_chip();
        assert_eq!(chip.respond(&hex("00B0000004")), hex("6987"));
        let apdu = session.wrap([0, 0xA4, 2, 0x0C], &EF_DG1, None);
        assert_eq!(chip.respond(&apdu), hex("6982"));
    }

    #[test]
    fn a_challenge_is_good_for_one_attempt() {
        let p = page();
        let mut chip = SoftChip::new(&p, 3);
        let keys = Keys::from_mrz_information(&key_for(&p).mrz_information());
        select_application(&mut chip).unwrap();
        let challenge = chip.respond(&hex("0084000008"));
        assert_eq!(challenge.len(), 10);
        let external_authenticate = |mac_key: &[u8; 16]| {
            let mut s = vec![1u8; 8];
            s.extend_from_slice(&challenge[..8]);
            s.extend([2u8; 16]);
            let e = tdes_encrypt(&keys.enc, &s);
            let mut apdu = hex("0082000028");
            apdu.extend(&e);
            apdu.extend(retail_mac(mac_key, &e));
            apdu.push(0x28);
            apdu
        };
        // A wrong MAC key: refused, and the challenge is spent.
        assert_eq!(
            chip.respond(&external_authenticate(&[0x55; 16])),
            hex("6300")
        );
        assert_eq!(chip.respond(&external_authenticate(&keys.mac)), hex("6985"));
        // With a fresh challenge the reader gets in.
        let session = authenticate(&mut chip, &keys, [1; 8], [2; 16]);
        assert!(session.is_ok());
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(512))]

        #[test]
        fn the_soft_chip_answers_any_bytes_without_panicking(
            apdus in proptest::collection::vec(proptest::collection::vec(any::<u8>(), 0..300), 1..8)
        ) {
            let mut chip = SoftChip::new(&page(), 1);
            for apdu in &apdus {
                prop_assert!(chip.respond(apdu).len() >= 2);
            }
            let (mut chip, _) = opened_chip();
            for apdu in &apdus {
                prop_assert!(chip.respond(apdu).len() >= 2);
            }
        }

        #[test]
        fn the_soft_chip_answers_any_protected_looking_command(
            ins in any::<u8>(), p1 in any::<u8>(), p2 in any::<u8>(),
            body in proptest::collection::vec(any::<u8>(), 0..260),
        ) {
            let (mut chip, _) = opened_chip();
            let mut apdu = vec![0x0C, ins, p1, p2, body.len().min(255) as u8];
            apdu.extend(&body[..body.len().min(255)]);
            apdu.push(0);
            prop_assert!(chip.respond(&apdu).len() >= 2);
        }

        #[test]
        fn from_mrz_never_panics(s in "[A-Z0-9<\n]{0,100}") {
            let _ = IdentityPage::from_mrz(&s);
        }

        #[test]
        fn pages_round_trip_through_the_mrz(
            code in "[A-Z]{1,2}", state in "[A-Z]{1,3}", number in "[A-Z0-9]{1,9}",
            birth in "[0-9]{6}", sex in "(M|F|)", expiry in "[0-9]{6}", nat in "[A-Z]{1,3}",
            surname in "[A-Z]{1,8}( [A-Z]{1,5})?", given in "([A-Z]{1,6}( [A-Z]{1,5})?)?",
            optional in "([A-Z0-9]{1,15})?",
        ) {
            let p = IdentityPage {
                document_code: code, issuing_state: state, document_number: number,
                birth_date: birth, sex, expiry_date: expiry, nationality: nat,
                surname, given_names: given, optional_data: optional,
            };
            let mrz = p.try_to_mrz().unwrap();
            prop_assert_eq!(mrz.len(), 90);
            prop_assert_eq!(IdentityPage::from_mrz(&mrz).unwrap(), p);
        }
    }
}
