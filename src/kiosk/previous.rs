//! The previous card, for a renewal or a correction: what the officer types to open its chip
//! (the card number, date of birth and expiry date printed on it), and what the chip's identity
//! page puts into the form. No window, no device: the adapter shows it, the worker reads the chip.
//!
//! Dates are typed as on the card, day first (`DDMMYYYY`, shown `DD/MM/YYYY`); the chip wants
//! `YYMMDD`. The four-digit year typed for the birth date is the one the form keeps: the chip's
//! two-digit year cannot tell 1925 from 2025.

use serde_json::{Map, Value};
use tasjil_drivers::emrtd::{AccessKey, IdentityPage};

/// The three fields, in the order they are shown.
pub const NUMBER: usize = 0;
pub const BIRTH: usize = 1;
pub const EXPIRY: usize = 2;

/// Longest card number an identity card's machine-readable zone holds.
const NUMBER_LEN: usize = 9;
/// `DDMMYYYY`.
const DATE_LEN: usize = 8;

/// Which typed field is wrong, as a `Tr.message` key the view translates.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KeyProblem {
    Number,
    Birth,
    Expiry,
}

impl KeyProblem {
    pub fn message_key(self) -> &'static str {
        match self {
            KeyProblem::Number => "card-bad-number",
            KeyProblem::Birth => "card-bad-birth",
            KeyProblem::Expiry => "card-bad-expiry",
        }
    }

    pub fn field(self) -> usize {
        match self {
            KeyProblem::Number => NUMBER,
            KeyProblem::Birth => BIRTH,
            KeyProblem::Expiry => EXPIRY,
        }
    }
}

/// What the officer has typed so far, and which field the keys go to.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct CardKeyEntry {
    typed: [String; 3],
    current: usize,
}

impl CardKeyEntry {
    pub fn new() -> CardKeyEntry {
        CardKeyEntry::default()
    }

    /// Start from values (the simulated card's, so a demonstration needs no typing).
    pub fn prefilled(number: &str, birth_ddmmyyyy: &str, expiry_ddmmyyyy: &str) -> CardKeyEntry {
        let mut e = CardKeyEntry::new();
        for (i, text) in [number, birth_ddmmyyyy, expiry_ddmmyyyy].iter().enumerate() {
            e.current = i;
            for c in text.chars() {
                e.key(&c.to_string());
            }
        }
        e.current = NUMBER;
        e
    }

    pub fn current(&self) -> usize {
        self.current
    }

    pub fn select(&mut self, field: usize) {
        if field < 3 {
            self.current = field;
        }
    }

    /// One key: a letter or digit for the card number (letters as capitals), a digit for a date.
    /// Anything else, or a full field, is ignored. A full field moves on to the next one.
    pub fn key(&mut self, key: &str) {
        let mut chars = key.chars();
        let (Some(c), None) = (chars.next(), chars.next()) else {
            return;
        };
        let c = c.to_ascii_uppercase();
        let field = &mut self.typed[self.current];
        let (fits, len) = match self.current {
            NUMBER => (c.is_ascii_uppercase() || c.is_ascii_digit(), NUMBER_LEN),
            _ => (c.is_ascii_digit(), DATE_LEN),
        };
        if !fits || field.len() >= len {
            return;
        }
        field.push(c);
        if field.len() == len && self.current < EXPIRY {
            self.current += 1;
        }
    }

    /// Erase the current field's last character; in an empty field, go back to the one before.
    pub fn erase(&mut self) {
        if self.typed[self.current].pop().is_none() && self.current > 0 {
            self.current -= 1;
            self.typed[self.current].pop();
        }
    }

    /// A field as shown: dates with their slashes and the rest still to type as `_`.
    pub fn shown(&self, field: usize) -> String {
        let text = &self.typed[field.min(2)];
        if field == NUMBER {
            return text.clone();
        }
        let mut out = String::new();
        for i in 0..DATE_LEN {
            if i == 2 || i == 4 {
                out.push('/');
            }
            out.push(text.chars().nth(i).unwrap_or('_'));
        }
        out
    }

    /// The chip's access key and the birth date as the form keeps it (`YYYY-MM-DD`), or the
    /// first field that is not right.
    pub fn access_key(&self) -> Result<(AccessKey, String), KeyProblem> {
        let number = &self.typed[NUMBER];
        if number.len() < 5 {
            return Err(KeyProblem::Number);
        }
        let birth = civil_date(&self.typed[BIRTH]).ok_or(KeyProblem::Birth)?;
        let expiry = civil_date(&self.typed[EXPIRY]).ok_or(KeyProblem::Expiry)?;
        let key = AccessKey::new(number, &yymmdd(birth), &yymmdd(expiry)).map_err(|e| {
            tracing::debug!("access key refused: {e}");
            KeyProblem::Number
        })?;
        let (y, m, d) = birth;
        Ok((key, format!("{y:04}-{m:02}-{d:02}")))
    }
}

/// `DDMMYYYY` as (year, month, day) when it is a real calendar date after 1900.
fn civil_date(ddmmyyyy: &str) -> Option<(u32, u32, u32)> {
    if ddmmyyyy.len() != DATE_LEN || !ddmmyyyy.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let d: u32 = ddmmyyyy[0..2].parse().ok()?;
    let m: u32 = ddmmyyyy[2..4].parse().ok()?;
    let y: u32 = ddmmyyyy[4..8].parse().ok()?;
    let leap = (y.is_multiple_of(4) && !y.is_multiple_of(100)) || y.is_multiple_of(400);
    let days = match m {
        1 | 3 | 5 | 7 | 8 | 10 | 12 => 31,
        4 | 6 | 9 | 11 => 30,
        2 if leap => 29,
        2 => 28,
        _ => return None,
    };
    (y >= 1900 && (1..=days).contains(&d)).then_some((y, m, d))
}

fn yymmdd((y, m, d): (u32, u32, u32)) -> String {
    format!("{:02}{m:02}{d:02}", y % 100)
}

/// "BENALI" -> "Benali", "FATIMA ZAHRA" -> "Fatima Zahra": the chip writes names in capitals,
/// the form as people write them.
fn name_case(upper: &str) -> String {
    upper
        .split(' ')
        .filter(|w| !w.is_empty())
        .map(|w| {
            let mut cs = w.chars();
            cs.next()
                .map(|first| first.to_string() + &cs.as_str().to_lowercase())
                .unwrap_or_default()
        })
        .collect::<Vec<_>>()
        .join(" ")
}

/// What the chip's identity page puts into the form. `birth_iso` is the birth date the officer
/// typed (and the chip accepted, since it is part of the key).
pub fn form_data(page: &IdentityPage, birth_iso: &str) -> Map<String, Value> {
    let mut m = Map::new();
    let mut put = |k: &str, v: String| {
        if !v.is_empty() {
            m.insert(k.to_owned(), Value::String(v));
        }
    };
    put("previous_card_number", page.document_number.clone());
    put("family_name_latin", name_case(&page.surname));
    put("given_names_latin", name_case(&page.given_names));
    if page.sex == "M" || page.sex == "F" {
        put("sex", page.sex.clone());
    }
    put("birth_date", birth_iso.to_owned());
    m.insert("birth_date_unknown".into(), Value::Bool(false));
    m
}

#[cfg(test)]
mod tests {
    use super::*;

    fn typed(e: &mut CardKeyEntry, text: &str) {
        for c in text.chars() {
            e.key(&c.to_string());
        }
    }

    #[test]
    fn keys_fill_the_fields_in_turn_and_dates_show_their_slashes() {
        let mut e = CardKeyEntry::new();
        typed(&mut e, "ab12345");
        assert_eq!(e.shown(NUMBER), "AB12345");
        // A date key on the number field is a character of the number; a letter on a date is
        // ignored.
        e.select(BIRTH);
        typed(&mut e, "1x5");
        assert_eq!(e.shown(BIRTH), "15/__/____");
        typed(&mut e, "011990");
        assert_eq!(e.shown(BIRTH), "15/01/1990");
        // A full date moves on to the next field.
        assert_eq!(e.current(), EXPIRY);
        typed(&mut e, "3112203099");
        assert_eq!(e.shown(EXPIRY), "31/12/2030", "extra digits are ignored");
        // Erase in an empty field goes back to the one before.
        let mut f = CardKeyEntry::new();
        f.select(BIRTH);
        f.erase();
        assert_eq!(f.current(), NUMBER);
        let (key, birth) = e.access_key().unwrap();
        assert_eq!(birth, "1990-01-15");
        assert_eq!(key.document_number, "AB12345");
        assert_eq!(key.birth_date, "900115");
        assert_eq!(key.expiry_date, "301231");
    }

    #[test]
    fn a_wrong_field_is_named() {
        let short = CardKeyEntry::prefilled("AB1", "15011990", "31122030");
        assert_eq!(short.access_key().unwrap_err(), KeyProblem::Number);
        let feb30 = CardKeyEntry::prefilled("AB12345", "30021990", "31122030");
        assert_eq!(feb30.access_key().unwrap_err(), KeyProblem::Birth);
        let half = CardKeyEntry::prefilled("AB12345", "15011990", "3112");
        assert_eq!(half.access_key().unwrap_err(), KeyProblem::Expiry);
        let leap = CardKeyEntry::prefilled("AB12345", "29022000", "31122030");
        assert!(leap.access_key().is_ok(), "2000 is a leap year");
    }

    #[test]
    fn the_identity_page_fills_the_form_as_people_write_names() {
        let page = IdentityPage {
            document_code: "ID".into(),
            issuing_state: "MAR".into(),
            document_number: "AB123456".into(),
            birth_date: "900115".into(),
            sex: "F".into(),
            expiry_date: "301231".into(),
            nationality: "MAR".into(),
            surname: "EL IDRISSI".into(),
            given_names: "FATIMA ZAHRA".into(),
            optional_data: String::new(),
        };
        let m = form_data(&page, "1990-01-15");
        assert_eq!(m["previous_card_number"], "AB123456");
        assert_eq!(m["family_name_latin"], "El Idrissi");
        assert_eq!(m["given_names_latin"], "Fatima Zahra");
        assert_eq!(m["sex"], "F");
        assert_eq!(m["birth_date"], "1990-01-15");
        let unknown = IdentityPage {
            sex: String::new(),
            ..page
        };
        assert!(!form_data(&unknown, "1990-01-15").contains_key("sex"));
    }
}
