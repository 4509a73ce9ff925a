//! The demographic schema: which fields an enrolment carries, how the kiosk labels them, and the
//! rules their values must meet.
//!
//! The schema is data (`assets/schema/cnie-v1.json`, documented in `assets/schema/README.md`) so
//! that a deployer can adjust it without rebuilding the validator. [`Schema::from_json`] checks the
//! file itself (unique names, patterns that compile, enums with values, ...); [`Schema::validate`]
//! checks one enrolment's demographics and returns every problem at once, each in plain words for
//! the officer. [`simulated_demographics`] makes deterministic, plausible Moroccan demographics for
//! `--simulate`.

use std::collections::HashSet;

use rand_chacha::ChaCha8Rng;
use rand_core::{RngCore, SeedableRng};
use regex::Regex;
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

/// The built-in schema for the CNIE.
pub const DEFAULT_SCHEMA_JSON: &str = include_str!("../assets/schema/cnie-v1.json");

/// The enrolment kinds a schema may name in `required_for_kinds`.
pub const ENROLMENT_KINDS: [&str; 4] = ["new", "renewal", "replacement", "correction"];

/// Phone pattern used when a `phone` field gives none.
const DEFAULT_PHONE_PATTERN: &str = r"\+?[0-9]{6,15}";

/// A text in the four languages of the kiosk.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct Labels {
    pub fr: String,
    pub ar: String,
    pub en: String,
    /// Standard Moroccan Tamazight, in Tifinagh.
    pub zgh: String,
}

impl Labels {
    /// The label in `lang` ("fr", "ar", "en", "zgh"); French for anything else.
    pub fn get(&self, lang: &str) -> &str {
        match lang {
            "ar" => &self.ar,
            "en" => &self.en,
            "zgh" => &self.zgh,
            _ => &self.fr,
        }
    }
}

/// What kind of value a field holds. Every type but `bool` is a JSON string.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum FieldType {
    Text,
    Date,
    Enum,
    Phone,
    Bool,
}

/// The characters a text field may be written in.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Script {
    Latin,
    Arabic,
    Digits,
    LatinOrArabic,
}

/// Which on-screen keyboard the kiosk opens for a field.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Keyboard {
    Latin,
    Arabic,
    Digits,
    Tifinagh,
}

/// The wizard page a field is shown on.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Group {
    Identity,
    Birth,
    Parents,
    Address,
    Contact,
    Card,
    Consent,
}

/// One allowed value of an `enum` field.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct EnumValue {
    pub value: String,
    pub label: Labels,
}

/// One field of the schema. Keys are described in `assets/schema/README.md`.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct Field {
    pub name: String,
    pub label: Labels,
    #[serde(rename = "type")]
    pub field_type: FieldType,
    #[serde(default)]
    pub required: bool,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub required_for_kinds: Vec<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub script: Option<Script>,
    /// Characters allowed in addition to `script` (e.g. digits in an address line).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub extra_chars: Option<String>,
    /// Regular expression the whole value must match (the validator anchors it).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pattern: Option<String>,
    /// A valid value, quoted to the officer when `pattern` does not match.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub example: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub min_len: Option<usize>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_len: Option<usize>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub values: Vec<EnumValue>,
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub must_be_true: bool,
    /// The law a `must_be_true` field refers to, quoted in the error (e.g. "law 09-08").
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub legal_basis: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub year_only_when: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub min_year: Option<i32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub group: Option<Group>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub keyboard: Option<Keyboard>,
}

impl Field {
    /// Whether the field must be filled in for an enrolment of `kind`.
    pub fn is_required(&self, kind: &str) -> bool {
        self.required || self.must_be_true || self.required_for_kinds.iter().any(|k| k == kind)
    }

    /// The pattern the whole value must match, anchored.
    fn anchored_pattern(&self) -> Option<String> {
        let pattern = match (&self.pattern, self.field_type) {
            (Some(p), _) => p.as_str(),
            (None, FieldType::Phone) => DEFAULT_PHONE_PATTERN,
            (None, _) => return None,
        };
        Some(format!("^(?:{pattern})$"))
    }
}

/// A demographic schema (see the module docs).
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct Schema {
    pub schema: String,
    pub version: u32,
    pub fields: Vec<Field>,
}

/// One problem with one field, in words for the officer.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct FieldError {
    pub field: String,
    pub reason: String,
}

impl FieldError {
    fn new(field: &str, reason: impl Into<String>) -> Self {
        Self {
            field: field.to_owned(),
            reason: reason.into(),
        }
    }
}

impl std::fmt::Display for FieldError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}: {}", self.field, self.reason)
    }
}

/// Why a schema file was refused.
#[derive(Debug, thiserror::Error)]
pub enum SchemaError {
    /// The file parses but breaks a rule (all problems, separated by "; ").
    #[error("schema file is not valid: {0}")]
    Invalid(String),
    /// The file is not JSON of the schema's shape (syntax error, unknown key, wrong type).
    #[error("schema file is not valid JSON for a schema: {0}")]
    Json(#[from] serde_json::Error),
}

impl Schema {
    /// The built-in CNIE schema.
    pub fn default_cnie() -> Schema {
        Self::from_json(DEFAULT_SCHEMA_JSON)
            .expect("the built-in CNIE schema is valid (checked by the tests)")
    }

    /// Parse a schema file and check it.
    pub fn from_json(text: &str) -> Result<Schema, SchemaError> {
        let schema: Schema = serde_json::from_str(text)?;
        let problems = schema.problems();
        if problems.is_empty() {
            Ok(schema)
        } else {
            Err(SchemaError::Invalid(problems.join("; ")))
        }
    }

    /// Every rule the schema itself breaks.
    fn problems(&self) -> Vec<String> {
        let mut out = Vec::new();
        if !is_snake_case(&self.schema) {
            out.push(format!("schema name {:?} must be snake_case", self.schema));
        }
        if self.version == 0 {
            out.push("version must be 1 or more".into());
        }
        if self.fields.is_empty() {
            out.push("there are no fields".into());
        }
        let mut seen = HashSet::new();
        for f in &self.fields {
            let (n, ty) = (&f.name, f.field_type);
            let pattern_error = f.anchored_pattern().and_then(|p| Regex::new(&p).err());
            let pattern_error = pattern_error.map(|e| e.to_string());
            let mut values = HashSet::new();
            let bad_kind = |k: &String| !ENROLMENT_KINDS.contains(&k.as_str());
            let names_bool = |flag: &String| {
                self.fields
                    .iter()
                    .any(|g| &g.name == flag && g.field_type == FieldType::Bool)
            };
            let checks = [
                (!is_snake_case(n), "the name must be snake_case".to_owned()),
                (!seen.insert(n.as_str()), "appears twice".into()),
                (
                    f.required_for_kinds.iter().any(bad_kind),
                    "unknown enrolment kind".into(),
                ),
                (
                    pattern_error.is_some(),
                    format!(
                        "pattern does not compile: {}",
                        pattern_error.as_deref().unwrap_or("")
                    ),
                ),
                (
                    (f.script.is_some() || f.pattern.is_some())
                        && !matches!(ty, FieldType::Text | FieldType::Phone),
                    "script and pattern are only for text and phone fields".into(),
                ),
                (
                    f.min_len > f.max_len && f.max_len.is_some(),
                    "min_len is over max_len".into(),
                ),
                (
                    ty == FieldType::Enum && f.values.is_empty(),
                    "an enum needs values".into(),
                ),
                (
                    ty != FieldType::Enum && !f.values.is_empty(),
                    "only an enum has values".into(),
                ),
                (
                    f.values
                        .iter()
                        .any(|v| v.value.is_empty() || !values.insert(&v.value)),
                    "enum values must be distinct and not empty".into(),
                ),
                (
                    f.must_be_true && ty != FieldType::Bool,
                    "must_be_true is only for bool".into(),
                ),
                (
                    (f.year_only_when.is_some() || f.min_year.is_some()) && ty != FieldType::Date,
                    "year_only_when and min_year are only for dates".into(),
                ),
                (
                    f.year_only_when
                        .as_ref()
                        .is_some_and(|flag| !names_bool(flag)),
                    "year_only_when must name a bool field".into(),
                ),
            ];
            let failed = checks.into_iter().filter(|(bad, _)| *bad);
            out.extend(failed.map(|(_, why)| format!("field {n}: {why}")));
        }
        out
    }

    /// The schema's identifier, e.g. "cnie-v1".
    pub fn id(&self) -> String {
        format!("{}-v{}", self.schema, self.version)
    }

    /// The field called `name`.
    pub fn field(&self, name: &str) -> Option<&Field> {
        self.fields.iter().find(|f| f.name == name)
    }

    /// Validate one enrolment's demographics for an enrolment kind ("new", "renewal",
    /// "replacement", "correction"), against today's date from the system clock.
    /// Collects ALL errors (not just the first); unknown fields are an error ("not in the schema");
    /// wrong JSON types are errors.
    pub fn validate(
        &self,
        kind: &str,
        demographics: &Map<String, Value>,
    ) -> Result<(), Vec<FieldError>> {
        self.validate_at(kind, demographics, today())
    }

    /// [`Schema::validate`] with an explicit "today" (year, month, day).
    pub fn validate_at(
        &self,
        kind: &str,
        demographics: &Map<String, Value>,
        today: (i32, u32, u32),
    ) -> Result<(), Vec<FieldError>> {
        let mut errors = Vec::new();
        if !ENROLMENT_KINDS.contains(&kind) {
            errors.push(FieldError::new(
                "kind",
                format!("is not one of: {}", ENROLMENT_KINDS.join(", ")),
            ));
        }
        for f in &self.fields {
            if let Err(reason) = check_field(f, kind, demographics, today) {
                errors.push(FieldError::new(&f.name, reason));
            }
        }
        for key in demographics.keys().filter(|k| self.field(k).is_none()) {
            errors.push(FieldError::new(key, "is not in the schema"));
        }
        if errors.is_empty() {
            Ok(())
        } else {
            Err(errors)
        }
    }
}

/// The first problem with one field, if any.
fn check_field(
    f: &Field,
    kind: &str,
    demo: &Map<String, Value>,
    today: (i32, u32, u32),
) -> Result<(), String> {
    let accept = || match &f.legal_basis {
        Some(law) => format!("must be accepted ({law})"),
        None => "must be accepted".to_owned(),
    };
    let blank = |v: &&Value| v.is_null() || v.as_str().is_some_and(|s| s.trim().is_empty());
    let Some(value) = demo.get(&f.name).filter(|v| !blank(v)) else {
        return match (f.must_be_true, f.is_required(kind)) {
            (true, _) => Err(accept()),
            (false, true) => Err("is required".into()),
            (false, false) => Ok(()),
        };
    };
    if f.field_type == FieldType::Bool {
        return match value.as_bool() {
            None => Err("must be yes or no (true or false)".into()),
            Some(false) if f.must_be_true => Err(accept()),
            Some(_) => Ok(()),
        };
    }
    let text = value.as_str().ok_or("must be text")?;
    if text.trim() != text {
        return Err("has leading or trailing spaces".into());
    }
    if text.chars().any(char::is_control) {
        return Err("contains characters that are not allowed".into());
    }
    match f.field_type {
        FieldType::Date => check_date(f, text, demo, today),
        FieldType::Enum if f.values.iter().any(|v| v.value == text) => Ok(()),
        FieldType::Enum => {
            let names: Vec<&str> = f.values.iter().map(|v| v.value.as_str()).collect();
            Err(format!("is not one of: {}", names.join(", ")))
        }
        _ => check_text(f, text),
    }
}

fn check_text(f: &Field, text: &str) -> Result<(), String> {
    let len = text.chars().count();
    if let Some(max) = f.max_len.filter(|&max| len > max) {
        return Err(format!("is too long (max {max} characters)"));
    }
    if let Some(min) = f.min_len.filter(|&min| len < min) {
        return Err(format!("is too short (min {min} characters)"));
    }
    if let Some(script) = f.script {
        let extra = f.extra_chars.as_deref().unwrap_or("");
        let written_in = |s: Script| text.chars().all(|c| extra.contains(c) || s.allows(c));
        let ok = match script {
            Script::LatinOrArabic => written_in(Script::Latin) || written_in(Script::Arabic),
            s => written_in(s),
        };
        if !ok {
            return Err(script.reason().into());
        }
    }
    if let Some(pattern) = f.anchored_pattern() {
        let re = Regex::new(&pattern)
            .map_err(|_| "cannot be checked: the schema's pattern is broken")?;
        if !re.is_match(text) {
            return Err(match &f.example {
                Some(e) => format!("does not match the expected format (e.g. {e})"),
                None => "does not match the expected format".into(),
            });
        }
    }
    Ok(())
}

fn check_date(
    f: &Field,
    text: &str,
    demo: &Map<String, Value>,
    today: (i32, u32, u32),
) -> Result<(), String> {
    let year_only_allowed = f
        .year_only_when
        .as_ref()
        .is_some_and(|flag| demo.get(flag) == Some(&Value::Bool(true)));
    let Some((y, md)) = parse_date(text) else {
        return Err(if f.year_only_when.is_some() {
            "must be written YYYY-MM-DD (or YYYY when unknown)".into()
        } else {
            "must be written YYYY-MM-DD".into()
        });
    };
    match md {
        None if f.year_only_when.is_none() => return Err("must be written YYYY-MM-DD".into()),
        None if !year_only_allowed => {
            let what = f.label.en.to_lowercase();
            return Err(format!(
                "may be given as a year only when the {what} is unknown"
            ));
        }
        Some((m, d)) if !is_real_date(y, m, d) => return Err("is not a real calendar date".into()),
        _ => {}
    }
    if let Some(min) = f.min_year.filter(|&min| y < min) {
        return Err(format!("is before {min}"));
    }
    let future = match md {
        Some((m, d)) => (y, m, d) > today,
        None => y > today.0,
    };
    if future {
        return Err("is in the future".into());
    }
    Ok(())
}

impl Script {
    fn allows(self, c: char) -> bool {
        match self {
            Script::Latin => is_latin_letter(c) || matches!(c, ' ' | '-' | '\'' | '\u{2019}' | '.'),
            Script::Arabic => c == ' ' || is_arabic(c),
            Script::Digits => c.is_ascii_digit(),
            Script::LatinOrArabic => Script::Latin.allows(c) || Script::Arabic.allows(c),
        }
    }

    fn reason(self) -> &'static str {
        match self {
            Script::Latin => "must be written in Latin letters",
            Script::Arabic => "must be written in Arabic script",
            Script::Digits => "must contain digits only",
            Script::LatinOrArabic => {
                "must be written in Latin letters or in Arabic script, not a mix"
            }
        }
    }
}

/// ASCII letters and the letters of Latin-1 Supplement and Latin Extended-A (é, è, ç, ï, ...).
fn is_latin_letter(c: char) -> bool {
    c.is_ascii_alphabetic()
        || matches!(c, '\u{C0}'..='\u{17F}') && !matches!(c, '\u{D7}' | '\u{F7}')
}

/// The Arabic blocks: Arabic, Arabic Supplement, Arabic Extended-A, Presentation Forms A and B.
fn is_arabic(c: char) -> bool {
    matches!(c, '\u{600}'..='\u{6FF}' | '\u{750}'..='\u{77F}' | '\u{8A0}'..='\u{8FF}')
        || matches!(c, '\u{FB50}'..='\u{FDFF}' | '\u{FE70}'..='\u{FEFF}')
}

fn is_snake_case(s: &str) -> bool {
    s.starts_with(|c: char| c.is_ascii_lowercase())
        && s.chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_')
}

// ---- civil dates (proleptic Gregorian), no external crate ---------------------------------------

/// "YYYY" => (year, None); "YYYY-MM-DD" => (year, Some((month, day))). Not yet checked as a real
/// date.
fn parse_date(s: &str) -> Option<(i32, Option<(u32, u32)>)> {
    let digits = |p: &str| !p.is_empty() && p.bytes().all(|b| b.is_ascii_digit());
    let parts: Vec<&str> = s.split('-').collect();
    match parts.as_slice() {
        [y] if y.len() == 4 && digits(y) => Some((y.parse().ok()?, None)),
        [y, m, d]
            if y.len() == 4
                && m.len() == 2
                && d.len() == 2
                && [y, m, d].iter().all(|p| digits(p)) =>
        {
            Some((y.parse().ok()?, Some((m.parse().ok()?, d.parse().ok()?))))
        }
        _ => None,
    }
}

fn is_leap(y: i32) -> bool {
    (y % 4 == 0 && y % 100 != 0) || y % 400 == 0
}

fn days_in_month(y: i32, m: u32) -> u32 {
    match m {
        1 | 3 | 5 | 7 | 8 | 10 | 12 => 31,
        4 | 6 | 9 | 11 => 30,
        2 if is_leap(y) => 29,
        2 => 28,
        _ => 0,
    }
}

fn is_real_date(y: i32, m: u32, d: u32) -> bool {
    d >= 1 && d <= days_in_month(y, m)
}

/// Days since 1970-01-01 => (year, month, day) (H. Hinnant's `civil_from_days`).
fn civil_from_days(z: i64) -> (i32, u32, u32) {
    let z = z + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + i64::from(m <= 2);
    (y as i32, m as u32, d as u32)
}

/// Today's date (UTC) from the system clock.
fn today() -> (i32, u32, u32) {
    let secs = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    civil_from_days((secs / 86_400) as i64)
}

// ---- simulated demographics ---------------------------------------------------------------------

#[rustfmt::skip]
const FAMILY_NAMES: [(&str, &str); 26] = [
    ("El Amrani", "العمراني"), ("Benali", "بنعلي"), ("Alaoui", "العلوي"),
    ("Idrissi", "الإدريسي"), ("Bennani", "بناني"), ("Tazi", "التازي"),
    ("Berrada", "برادة"), ("El Fassi", "الفاسي"), ("Chraïbi", "الشرايبي"),
    ("Benjelloun", "بنجلون"), ("Ouazzani", "الوزاني"), ("Lahlou", "لحلو"),
    ("Ait Taleb", "آيت الطالب"), ("Ouhaddou", "أوحدو"), ("Boutaleb", "بوطالب"),
    ("El Khattabi", "الخطابي"), ("Zerouali", "الزروالي"), ("Naciri", "الناصري"),
    ("Saidi", "السعيدي"), ("Kabbaj", "القباج"), ("Mansouri", "المنصوري"),
    ("Tahiri", "الطاهري"), ("Cherkaoui", "الشرقاوي"), ("Filali", "الفيلالي"),
    ("Ait Lahcen", "آيت لحسن"), ("Amazzal", "أمزال"),
];

#[rustfmt::skip]
const MALE_NAMES: [(&str, &str); 20] = [
    ("Youssef", "يوسف"), ("Mohammed", "محمد"), ("Ahmed", "أحمد"), ("Hassan", "حسن"),
    ("Omar", "عمر"), ("Karim", "كريم"), ("Rachid", "رشيد"), ("Abdellah", "عبد الله"),
    ("Mustapha", "مصطفى"), ("Saïd", "سعيد"), ("Hamza", "حمزة"), ("Ayoub", "أيوب"),
    ("Mehdi", "المهدي"), ("Driss", "إدريس"), ("Brahim", "إبراهيم"), ("Lahcen", "لحسن"),
    ("Othmane", "عثمان"), ("Yassine", "ياسين"), ("Idir", "إيدير"), ("Mohamed Amine", "محمد أمين"),
];

#[rustfmt::skip]
const FEMALE_NAMES: [(&str, &str); 20] = [
    ("Fatima Zahra", "فاطمة الزهراء"), ("Khadija", "خديجة"), ("Aïcha", "عائشة"),
    ("Meryem", "مريم"), ("Salma", "سلمى"), ("Nadia", "نادية"),
    ("Samira", "سميرة"), ("Hafsa", "حفصة"), ("Zineb", "زينب"),
    ("Imane", "إيمان"), ("Hanane", "حنان"), ("Latifa", "لطيفة"),
    ("Malika", "مليكة"), ("Naïma", "نعيمة"), ("Houda", "هدى"),
    ("Soukaina", "سكينة"), ("Ghizlane", "غزلان"), ("Tilelli", "تيليلي"),
    ("Itto", "إطو"), ("Kenza", "كنزة"),
];

/// (place, place in Arabic, province).
#[rustfmt::skip]
const PLACES: [(&str, &str, &str); 16] = [
    ("Ouarzazate", "ورزازات", "Ouarzazate"), ("Skoura", "سكورة", "Ouarzazate"),
    ("Zagora", "زاكورة", "Zagora"), ("Errachidia", "الرشيدية", "Errachidia"),
    ("Tinghir", "تنغير", "Tinghir"), ("Azilal", "أزيلال", "Azilal"),
    ("Midelt", "ميدلت", "Midelt"), ("Taroudant", "تارودانت", "Taroudant"),
    ("Tiznit", "تيزنيت", "Tiznit"), ("Guelmim", "كلميم", "Guelmim"),
    ("Chefchaouen", "شفشاون", "Chefchaouen"), ("Ifrane", "إفران", "Ifrane"),
    ("Khénifra", "خنيفرة", "Khénifra"), ("Figuig", "فجيج", "Figuig"),
    ("Imzouren", "إمزورن", "Al Hoceïma"), ("Tata", "طاطا", "Tata"),
];

#[rustfmt::skip]
const STREETS: [(&str, &str); 6] = [
    ("Rue Ibn Battouta", "زنقة ابن بطوطة"), ("Avenue Hassan II", "شارع الحسن الثاني"),
    ("Rue Al Massira", "زنقة المسيرة"), ("Derb Moulay Ismail", "درب مولاي إسماعيل"),
    ("Douar Ait Ali", "دوار آيت علي"), ("Rue Oued Eddahab", "زنقة وادي الذهب"),
];

const CARD_PREFIXES: [&str; 10] = ["A", "B", "J", "X", "Z", "BE", "BK", "JC", "PA", "ZT"];

/// A uniform-enough index below `n` (n > 0).
fn below(rng: &mut ChaCha8Rng, n: usize) -> usize {
    (rng.next_u64() % n.max(1) as u64) as usize
}

fn pick<'a, T>(rng: &mut ChaCha8Rng, items: &'a [T]) -> &'a T {
    &items[below(rng, items.len())]
}

fn digits(rng: &mut ChaCha8Rng, n: usize) -> String {
    (0..n)
        .map(|_| char::from(b'0' + below(rng, 10) as u8))
        .collect()
}

/// Deterministic plausible demographics for simulation, valid against [`Schema::default_cnie`] for
/// `kind` (previous card number for every kind but "new", replacement reason for "replacement").
/// Same seed and kind => same output; the output does not depend on the date.
pub fn simulated_demographics(seed: u64, kind: &str) -> Map<String, Value> {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let rng = &mut rng;
    let female = rng.next_u32() % 2 == 0;
    let (given, given_ar) = *pick(rng, if female { &FEMALE_NAMES } else { &MALE_NAMES });
    let (family, family_ar) = *pick(rng, &FAMILY_NAMES);
    let (father, father_ar) = *pick(rng, &MALE_NAMES);
    let (mother, mother_ar) = *pick(rng, &FEMALE_NAMES);
    let (mother_family, mother_family_ar) = *pick(rng, &FAMILY_NAMES);
    let (birth_place, birth_place_ar, _) = *pick(rng, &PLACES);
    let (commune, _, province) = *pick(rng, &PLACES);
    let (street, street_ar) = *pick(rng, &STREETS);
    let number = 1 + below(rng, 180);

    let year = 1940 + below(rng, 68) as i32;
    let unknown = below(rng, 20) == 0;
    let month = 1 + below(rng, 12) as u32;
    let day = 1 + below(rng, days_in_month(year, month) as usize) as u32;
    let birth_date = if unknown {
        format!("{year}")
    } else {
        format!("{year}-{month:02}-{day:02}")
    };

    let mut m = Map::new();
    let mut put = |k: &str, v: Value| {
        m.insert(k.to_owned(), v);
    };
    put("family_name_latin", family.into());
    put("family_name_ar", family_ar.into());
    put("given_names_latin", given.into());
    put("given_names_ar", given_ar.into());
    put("sex", if female { "F" } else { "M" }.into());
    put("birth_date_unknown", unknown.into());
    put("birth_date", birth_date.into());
    put("birth_place_latin", birth_place.into());
    put("birth_place_ar", birth_place_ar.into());
    put("father_given_name_latin", father.into());
    put("father_given_name_ar", father_ar.into());
    put(
        "mother_full_name_latin",
        format!("{mother} {mother_family}").into(),
    );
    put(
        "mother_full_name_ar",
        format!("{mother_ar} {mother_family_ar}").into(),
    );
    put("address_line_latin", format!("{number} {street}").into());
    put("address_line_ar", format!("{number} {street_ar}").into());
    put("commune", commune.into());
    put("province", province.into());
    put(
        "civil_act_number",
        format!("{}/{year}", 1 + below(rng, 9999)).into(),
    );
    // Drawn for every kind so that one seed is the same person whatever the kind.
    let card = format!("{}{}", pick(rng, &CARD_PREFIXES), digits(rng, 6));
    let reason = *pick(rng, &["lost", "stolen", "damaged"]);
    let phone = match below(rng, 10) {
        0..=3 => Some(format!("06{}", digits(rng, 8))),
        4..=6 => Some(format!("+2127{}", digits(rng, 8))),
        _ => None,
    };
    if kind != "new" {
        put("previous_card_number", card.into());
    }
    if kind == "replacement" {
        put("replacement_reason", reason.into());
    }
    if let Some(phone) = phone {
        put("phone", phone.into());
    }
    put("consent", true.into());
    m
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    const TODAY: (i32, u32, u32) = (2025, 6, 15);

    /// Generated demographics (seed 7) with `changes` (a JSON object) applied; "<remove>" removes.
    fn with(kind: &str, changes: &str) -> Map<String, Value> {
        let mut m = simulated_demographics(7, kind);
        let changes: Map<String, Value> = serde_json::from_str(changes).unwrap();
        for (k, v) in changes {
            match v.as_str() {
                Some("<remove>") => m.remove(&k),
                _ => m.insert(k, v),
            };
        }
        m
    }

    fn check(kind: &str, changes: &str) -> Result<(), Vec<FieldError>> {
        Schema::default_cnie().validate_at(kind, &with(kind, changes), TODAY)
    }

    #[rustfmt::skip]
    const REJECTED: &[(&str, &str, &str, &str)] = &[
        // kind, changes, field named, reason
        ("new", r#"{"family_name_ar": "El Amrani"}"#, "family_name_ar",
            "must be written in Arabic script"),
        ("new", r#"{"family_name_latin": "العمراني"}"#, "family_name_latin",
            "must be written in Latin letters"),
        ("new", r#"{"family_name_latin": " Tazi"}"#, "family_name_latin",
            "has leading or trailing spaces"),
        ("new", r#"{"given_names_latin":
            "Abdelkader Abdelkader Abdelkader Abdelkader Abdelkader Abdelkader"}"#,
            "given_names_latin", "is too long (max 60 characters)"),
        ("new", r#"{"birth_date": "2023-02-30"}"#, "birth_date", "is not a real calendar date"),
        ("new", r#"{"birth_date": "2025-06-16"}"#, "birth_date", "is in the future"),
        ("new", r#"{"birth_date": "2026", "birth_date_unknown": true}"#, "birth_date",
            "is in the future"),
        ("new", r#"{"birth_date": "1899-12-31"}"#, "birth_date", "is before 1900"),
        ("new", r#"{"birth_date": "15/06/1990"}"#, "birth_date",
            "must be written YYYY-MM-DD (or YYYY when unknown)"),
        ("new", r#"{"birth_date": "1970", "birth_date_unknown": false}"#, "birth_date",
            "may be given as a year only when the date of birth is unknown"),
        ("new", r#"{"birth_date": "1970", "birth_date_unknown": "<remove>"}"#, "birth_date",
            "may be given as a year only when the date of birth is unknown"),
        ("new", r#"{"consent": "<remove>"}"#, "consent", "must be accepted (law 09-08)"),
        ("new", r#"{"consent": false}"#, "consent", "must be accepted (law 09-08)"),
        ("renewal", r#"{"previous_card_number": "<remove>"}"#, "previous_card_number",
            "is required"),
        ("correction", r#"{"previous_card_number": ""}"#, "previous_card_number", "is required"),
        ("renewal", r#"{"previous_card_number": "ABC12345"}"#, "previous_card_number",
            "does not match the expected format (e.g. AB123456)"),
        ("replacement", r#"{"replacement_reason": "<remove>"}"#, "replacement_reason",
            "is required"),
        ("replacement", r#"{"replacement_reason": "burnt"}"#, "replacement_reason",
            "is not one of: lost, stolen, damaged"),
        ("new", r#"{"civil_act_number": "<remove>"}"#, "civil_act_number", "is required"),
        ("new", r#"{"civil_act_number": "1234-1990"}"#, "civil_act_number",
            "does not match the expected format (e.g. 1234/1990)"),
        ("new", r#"{"phone": "0512345678"}"#, "phone",
            "does not match the expected format (e.g. 0612345678)"),
        ("new", r#"{"phone": "+21261234567"}"#, "phone",
            "does not match the expected format (e.g. 0612345678)"),
        ("new", r#"{"phone": "06 12 34 56 78"}"#, "phone",
            "does not match the expected format (e.g. 0612345678)"),
        ("new", r#"{"sex": "X"}"#, "sex", "is not one of: M, F"),
        ("new", r#"{"nickname": "Jojo"}"#, "nickname", "is not in the schema"),
        ("new", r#"{"family_name_latin": 42}"#, "family_name_latin", "must be text"),
        ("new", r#"{"consent": "yes"}"#, "consent", "must be yes or no (true or false)"),
        ("new", r#"{"given_names_ar": null}"#, "given_names_ar", "is required"),
        ("new", r#"{"given_names_ar": "   "}"#, "given_names_ar", "is required"),
        ("new", r#"{"commune": "Tata\u0007"}"#, "commune",
            "contains characters that are not allowed"),
    ];

    #[rustfmt::skip]
    const ACCEPTED: &[(&str, &str)] = &[
        ("new", r#"{"birth_date": "1970", "birth_date_unknown": true}"#),
        ("new", r#"{"birth_date": "1970-01-01", "birth_date_unknown": true}"#),
        ("new", r#"{"birth_date": "2000-02-29", "phone": "+212712345678"}"#),
        ("new", r#"{"birth_date": "2025-06-15", "phone": "0798765432"}"#),
        ("new", r#"{"family_name_latin": "Aït-Bénézet O'Neil Jr.", "phone": "<remove>"}"#),
        ("new", r#"{"previous_card_number": "<remove>", "address_line_ar": "<remove>"}"#),
        ("new", r#"{"phone": null, "address_line_ar": ""}"#),
        ("renewal", r#"{"previous_card_number": "Z12345", "civil_act_number": "<remove>"}"#),
    ];

    #[test]
    fn default_schema_parses_and_has_the_required_fields() {
        let s = Schema::default_cnie();
        assert_eq!(s.id(), "cnie-v1");
        let names = "family_name_latin family_name_ar given_names_latin given_names_ar sex \
            birth_date birth_date_unknown birth_place_latin birth_place_ar father_given_name_latin \
            father_given_name_ar mother_full_name_latin mother_full_name_ar address_line_latin \
            address_line_ar commune province civil_act_number previous_card_number phone consent";
        for name in names.split_whitespace() {
            assert!(s.field(name).is_some(), "missing {name}");
        }
        let card = s.field("previous_card_number").unwrap();
        assert!(!card.is_required("new") && card.is_required("renewal"));
        assert!(card.is_required("replacement") && card.is_required("correction"));
        assert!(s.field("consent").unwrap().label.en.contains("09-08"));
        let tifinagh = |l: &Labels| {
            l.zgh
                .chars()
                .any(|c| ('\u{2D30}'..='\u{2D7F}').contains(&c))
        };
        assert!(s.fields.iter().all(|f| tifinagh(&f.label)));
        assert_eq!(s.field("sex").unwrap().values[1].label.get("ar"), "أنثى");
        // What a deployer would write back out is still a valid schema.
        Schema::from_json(&serde_json::to_string_pretty(&s).unwrap()).unwrap();
    }

    #[test]
    fn simulated_demographics_are_valid_and_deterministic() {
        let s = Schema::default_cnie();
        for kind in ENROLMENT_KINDS {
            for seed in 0..200 {
                let d = simulated_demographics(seed, kind);
                let result = s.validate_at(kind, &d, TODAY);
                assert_eq!(result, Ok(()), "seed {seed} kind {kind}: {d:?}");
                assert_eq!(s.validate(kind, &d), Ok(()));
            }
        }
        let same = simulated_demographics(42, "new");
        assert_eq!(same, simulated_demographics(42, "new"));
        assert_ne!(same, simulated_demographics(43, "new"));
        assert!(!same.contains_key("previous_card_number"));
        let renewal = simulated_demographics(42, "renewal");
        assert!(renewal.contains_key("previous_card_number"));
        assert_eq!(renewal["family_name_latin"], same["family_name_latin"]);
    }

    #[test]
    fn each_rule_rejects_with_the_field_named() {
        for (kind, changes, field, reason) in REJECTED {
            let errors = check(kind, changes).unwrap_err();
            let found: Vec<&FieldError> = errors.iter().filter(|e| e.field == *field).collect();
            assert_eq!(found.len(), 1, "{changes}: {errors:?}");
            assert_eq!(found[0].reason, *reason, "{changes}");
        }
        for (kind, changes) in ACCEPTED {
            assert_eq!(check(kind, changes), Ok(()), "{changes}");
        }
    }

    #[test]
    fn errors_are_collected_all_at_once() {
        let changes = r#"{"family_name_ar": "Tazi", "birth_date": "2023-02-30", "consent": false,
            "previous_card_number": "<remove>", "phone": "12", "extra": 1}"#;
        let errors = check("renewal", changes).unwrap_err();
        let fields: Vec<&str> = errors.iter().map(|e| e.field.as_str()).collect();
        let expected = "family_name_ar birth_date previous_card_number phone consent extra";
        assert_eq!(fields, expected.split(' ').collect::<Vec<_>>());
        let first = "family_name_ar: must be written in Arabic script";
        assert_eq!(errors[0].to_string(), first);
        let d = with("new", "{}");
        let bad_kind = Schema::default_cnie().validate_at("upgrade", &d, TODAY);
        assert_eq!(bad_kind.unwrap_err()[0].field, "kind");
    }

    type Edit = fn(&mut Map<String, Value>);

    /// The error from_json gives for the default schema with `field` edited by `edit`.
    fn broken(field: &str, edit: Edit) -> SchemaError {
        let mut v: Value = serde_json::from_str(DEFAULT_SCHEMA_JSON).unwrap();
        let fields = v["fields"].as_array_mut().unwrap();
        let f = fields.iter_mut().find(|f| f["name"] == field).unwrap();
        edit(f.as_object_mut().unwrap());
        Schema::from_json(&v.to_string()).unwrap_err()
    }

    #[test]
    fn from_json_rejects_broken_schemas() {
        let cases: [(&str, Edit, &str); 5] = [
            (
                "sex",
                |f| _ = f.insert("name".into(), "family_name_latin".into()),
                "appears twice",
            ),
            (
                "phone",
                |f| _ = f.insert("pattern".into(), "[0-9".into()),
                "does not compile",
            ),
            (
                "sex",
                |f| _ = f.remove("values"),
                "sex: an enum needs values",
            ),
            (
                "commune",
                |f| _ = f.insert("required_for_kinds".into(), json_list("lost")),
                "kind",
            ),
            (
                "birth_date",
                |f| _ = f.insert("year_only_when".into(), "sex".into()),
                "a bool",
            ),
        ];
        for (field, edit, expected) in cases {
            let err = broken(field, edit);
            assert!(matches!(err, SchemaError::Invalid(_)), "{err}");
            assert!(err.to_string().contains(expected), "{err}");
        }
        let typo = broken("sex", |f| _ = f.insert("colour".into(), "red".into()));
        assert!(matches!(typo, SchemaError::Json(_)), "{typo}");
        assert!(matches!(Schema::from_json("{"), Err(SchemaError::Json(_))));
    }

    fn json_list(item: &str) -> Value {
        Value::Array(vec![item.into()])
    }

    #[test]
    fn civil_dates() {
        assert_eq!(civil_from_days(0), (1970, 1, 1));
        assert_eq!(civil_from_days(11_016), (2000, 2, 29));
        assert_eq!(civil_from_days(-1), (1969, 12, 31));
        assert!(is_real_date(2024, 2, 29) && is_real_date(2000, 2, 29));
        assert!(!is_real_date(2023, 2, 29) && !is_real_date(1900, 2, 29));
        assert!(!is_real_date(2024, 13, 1) && !is_real_date(2024, 4, 31));
        assert!(!is_real_date(2024, 1, 0));
        assert!(today().0 >= 2025);
    }

    proptest! {
        #[test]
        fn any_string_with_a_digit_is_rejected_as_a_latin_family_name(
            before in ".{0,20}", digit in 0u8..10, after in ".{0,20}"
        ) {
            let mut d = simulated_demographics(3, "new");
            d.insert("family_name_latin".into(), format!("{before}{digit}{after}").into());
            let errors = Schema::default_cnie().validate_at("new", &d, TODAY).unwrap_err();
            prop_assert!(errors.iter().any(|e| e.field == "family_name_latin"));
        }
    }
}
