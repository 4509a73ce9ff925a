//! The demographics form, generated from the schema: which fields the enrolment kind asks for,
//! their labels in the screen's language, the values typed so far, the field being edited and
//! the errors the schema found. Validation itself is the schema's (through the workflow).

use serde_json::{Map, Value};

use crate::schema::{FieldError, FieldType, Keyboard, Schema, Script};

/// How a field is edited on screen.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Editor {
    /// Free text with the on-screen keyboard of this layout.
    Text(Keyboard),
    /// One of a few choices (enum values, or yes/no).
    Choice,
}

/// One field as the screen shows it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Row {
    pub name: String,
    pub label: String,
    pub value: String,
    /// What the value looks like on screen (the choice's label for enums and yes/no).
    pub shown: String,
    pub required: bool,
    pub error: String,
    pub example: String,
    pub editor: Editor,
    pub arabic_value: bool,
}

#[derive(Debug, Clone)]
pub struct Form {
    schema: Schema,
    kind: String,
    names: Vec<String>,
    values: Vec<String>,
    errors: Vec<String>,
    current: usize,
}

/// Value of a yes/no field in the form: "true", "false" or "" (not answered).
const YES: &str = "true";
const NO: &str = "false";

impl Form {
    /// The fields asked for an enrolment of `kind`: every field but those reserved to other
    /// kinds (a new card has no previous card number; only a replacement has a reason).
    /// The enrolment kind the form is for ("new", "renewal", ...).
    pub fn kind(&self) -> &str {
        &self.kind
    }

    pub fn new(schema: &Schema, kind: &str) -> Form {
        let names: Vec<String> = schema
            .fields
            .iter()
            .filter(|f| f.required_for_kinds.is_empty() || f.is_required(kind))
            .map(|f| f.name.clone())
            .collect();
        Form {
            schema: schema.clone(),
            kind: kind.into(),
            values: vec![String::new(); names.len()],
            errors: vec![String::new(); names.len()],
            names,
            current: 0,
        }
    }

    pub fn len(&self) -> usize {
        self.names.len()
    }

    pub fn is_empty(&self) -> bool {
        self.names.is_empty()
    }

    pub fn current(&self) -> usize {
        self.current
    }

    pub fn select(&mut self, index: usize) {
        if index < self.names.len() {
            self.current = index;
        }
    }

    pub fn index_of(&self, name: &str) -> Option<usize> {
        self.names.iter().position(|n| n == name)
    }

    /// Set the value of field `index` (clears its error: the officer is fixing it).
    pub fn set(&mut self, index: usize, value: &str) {
        if let Some(v) = self.values.get_mut(index) {
            *v = value.to_string();
            self.errors[index].clear();
        }
    }

    /// A key of the on-screen keyboard on the current field. "«" erases one character.
    pub fn key(&mut self, key: &str) {
        let i = self.current;
        let mut value = self.values[i].clone();
        if key == BACKSPACE {
            value.pop();
        } else {
            value.push_str(key);
        }
        self.set(i, &value);
    }

    /// Fill from a JSON object (e.g. the previous card's data for a renewal, or a simulation).
    pub fn fill(&mut self, data: &Map<String, Value>) {
        for (i, name) in self.names.iter().enumerate() {
            self.values[i] = match data.get(name) {
                Some(Value::String(s)) => s.clone(),
                Some(Value::Bool(b)) => if *b { YES } else { NO }.into(),
                _ => String::new(),
            };
        }
    }

    /// The demographics as the schema wants them: unanswered fields are left out.
    pub fn data(&self) -> Map<String, Value> {
        let mut m = Map::new();
        for (name, value) in self.names.iter().zip(&self.values) {
            let value = value.trim();
            if value.is_empty() {
                continue;
            }
            let is_bool = self
                .schema
                .field(name)
                .is_some_and(|f| f.field_type == FieldType::Bool);
            let v = if is_bool {
                Value::Bool(value == YES)
            } else {
                Value::String(value.to_string())
            };
            m.insert(name.clone(), v);
        }
        m
    }

    /// Show the schema's verdict next to each field; the first field in error becomes current.
    pub fn show_errors(&mut self, errors: &[FieldError]) {
        self.errors.iter_mut().for_each(String::clear);
        let mut first = None;
        for e in errors {
            if let Some(i) = self.index_of(&e.field) {
                self.errors[i] = e.reason.clone();
                first = Some(first.map_or(i, |f: usize| f.min(i)));
            }
        }
        if let Some(i) = first {
            self.current = i;
        }
    }

    /// The choices of field `index` as (value, label in `lang`).
    pub fn choices(&self, index: usize, lang: &str, yes_no: (&str, &str)) -> Vec<(String, String)> {
        let Some(f) = self.names.get(index).and_then(|n| self.schema.field(n)) else {
            return Vec::new();
        };
        match f.field_type {
            FieldType::Enum => f
                .values
                .iter()
                .map(|v| (v.value.clone(), v.label.get(lang).to_string()))
                .collect(),
            FieldType::Bool => vec![
                (YES.into(), yes_no.0.to_string()),
                (NO.into(), yes_no.1.to_string()),
            ],
            _ => Vec::new(),
        }
    }

    /// Every field as shown in `lang`.
    pub fn rows(&self, lang: &str, yes_no: (&str, &str)) -> Vec<Row> {
        self.names
            .iter()
            .enumerate()
            .filter_map(|(i, name)| {
                let f = self.schema.field(name)?;
                let value = self.values[i].clone();
                let editor = match f.field_type {
                    FieldType::Enum | FieldType::Bool => Editor::Choice,
                    FieldType::Date | FieldType::Phone => Editor::Text(Keyboard::Digits),
                    FieldType::Text => Editor::Text(f.keyboard.unwrap_or(match f.script {
                        Some(Script::Arabic) => Keyboard::Arabic,
                        Some(Script::Digits) => Keyboard::Digits,
                        _ => Keyboard::Latin,
                    })),
                };
                let shown = match editor {
                    Editor::Choice => self
                        .choices(i, lang, yes_no)
                        .into_iter()
                        .find(|(v, _)| *v == value)
                        .map(|(_, l)| l)
                        .unwrap_or_default(),
                    Editor::Text(_) => value.clone(),
                };
                Some(Row {
                    name: name.clone(),
                    label: f.label.get(lang).to_string(),
                    arabic_value: f.script == Some(Script::Arabic),
                    value,
                    shown,
                    required: f.is_required(&self.kind),
                    error: self.errors[i].clone(),
                    example: f.example.clone().unwrap_or_default(),
                    editor,
                })
            })
            .collect()
    }
}

pub const BACKSPACE: &str = "«";

/// The schema's reason for refusing a field (English, `crate::schema`'s wording) as a message
/// key for `Tr.field-error` and the one value it carries. A reason this does not know gives
/// `"invalid"` ("this value is not accepted"): the screen never shows the English.
pub fn reason_key(reason: &str) -> (&'static str, String) {
    let none = String::new;
    let after = |prefix: &str, suffix: &str| {
        reason
            .strip_prefix(prefix)
            .and_then(|r| r.strip_suffix(suffix))
            .map(str::to_string)
    };
    let fixed = match reason {
        "is required" => Some("required"),
        "must be accepted" => Some("must-accept"),
        "must be yes or no (true or false)" => Some("yes-no"),
        "has leading or trailing spaces" => Some("spaces"),
        "contains characters that are not allowed" => Some("characters"),
        "must be written in Latin letters" => Some("latin"),
        "must be written in Arabic script" => Some("arabic"),
        "must contain digits only" => Some("digits"),
        "must be written in Latin letters or in Arabic script, not a mix" => {
            Some("latin-or-arabic")
        }
        "does not match the expected format" => Some("format"),
        "must be written YYYY-MM-DD" => Some("date"),
        "must be written YYYY-MM-DD (or YYYY when unknown)" => Some("date-or-year"),
        "is not a real calendar date" => Some("not-a-date"),
        "is in the future" => Some("future"),
        _ => None,
    };
    if let Some(key) = fixed {
        return (key, none());
    }
    let with_value = [
        ("must-accept-law", "must be accepted (", ")"),
        ("too-long", "is too long (max ", " characters)"),
        ("too-short", "is too short (min ", " characters)"),
        (
            "format-example",
            "does not match the expected format (e.g. ",
            ")",
        ),
        ("before", "is before ", ""),
        ("not-a-choice", "is not one of: ", ""),
        (
            "year-only",
            "may be given as a year only when the ",
            " is unknown",
        ),
    ];
    for (key, prefix, suffix) in with_value {
        if let Some(value) = after(prefix, suffix) {
            return (key, value);
        }
    }
    ("invalid", none())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::schema::simulated_demographics;

    #[test]
    fn the_kind_decides_which_fields_are_asked() {
        let schema = Schema::default_cnie();
        let new = Form::new(&schema, "new");
        assert!(new.index_of("civil_act_number").is_some());
        assert!(new.index_of("previous_card_number").is_none());
        let renewal = Form::new(&schema, "renewal");
        assert!(renewal.index_of("previous_card_number").is_some());
        assert!(renewal.index_of("replacement_reason").is_none());
        let rows = renewal.rows("ar", ("نعم", "لا"));
        let prev = rows
            .iter()
            .find(|r| r.name == "previous_card_number")
            .unwrap();
        assert_eq!(prev.label, "رقم البطاقة السابقة");
        assert!(prev.required);
        assert_eq!(rows.len(), schema.fields.len() - 2);
    }

    #[test]
    fn typed_values_round_trip_into_valid_demographics() {
        let schema = Schema::default_cnie();
        let mut form = Form::new(&schema, "new");
        let sample = simulated_demographics(4, "new");
        form.fill(&sample);
        assert_eq!(form.data(), sample);
        assert!(schema.validate("new", &form.data()).is_ok());
        // Typing on the keyboard edits the current field only.
        let i = form.index_of("family_name_latin").unwrap();
        form.select(i);
        form.set(i, "");
        for k in ["B", "e", "n", "x", BACKSPACE] {
            form.key(k);
        }
        assert_eq!(form.data()["family_name_latin"], "Ben");
    }

    #[test]
    fn every_reason_the_schema_gives_has_a_message_key() {
        let schema = Schema::default_cnie();
        let sample = simulated_demographics(4, "new");
        let mut reasons: Vec<String> = Vec::new();
        // Each field emptied, then given values each check refuses.
        let bad = [
            "",
            " x",
            "x\u{1}",
            "9",
            "ⵜⵜ",
            "محمد Ali",
            "1234567890123456789012345678901234567890",
            "1999-02-30",
            "2999-01-01",
            "1800-01-01",
            "1999",
            "99-1-1",
            "maybe",
        ];
        for f in &schema.fields {
            for v in bad {
                let mut data = sample.clone();
                data.insert(f.name.clone(), serde_json::Value::String(v.into()));
                if let Err(errors) = schema.validate("new", &data) {
                    reasons.extend(errors.into_iter().map(|e| e.reason));
                }
            }
            let mut data = sample.clone();
            data.remove(&f.name);
            if let Err(errors) = schema.validate("new", &data) {
                reasons.extend(errors.into_iter().map(|e| e.reason));
            }
        }
        reasons.sort();
        reasons.dedup();
        assert!(reasons.len() >= 8, "{reasons:?}");
        // Only a JSON type the form never sends may fall through to the generic message.
        let unknown: Vec<&String> = reasons
            .iter()
            .filter(|r| reason_key(r).0 == "invalid" && r.as_str() != "must be text")
            .collect();
        assert!(
            unknown.is_empty(),
            "reasons with no message key: {unknown:?}"
        );
        assert_eq!(
            reason_key("is too long (max 40 characters)"),
            ("too-long", "40".to_string())
        );
        assert_eq!(reason_key("is required"), ("required", String::new()));
    }

    #[test]
    fn schema_errors_land_on_their_field_and_choices_show_labels() {
        let schema = Schema::default_cnie();
        let mut form = Form::new(&schema, "new");
        form.fill(&simulated_demographics(4, "new"));
        let phone = form.index_of("phone").unwrap();
        form.set(phone, "12");
        let errors = schema.validate("new", &form.data()).unwrap_err();
        form.show_errors(&errors);
        assert_eq!(form.current(), phone);
        let row = &form.rows("fr", ("Oui", "Non"))[phone];
        assert!(!row.error.is_empty());
        let consent = form.index_of("consent").unwrap();
        assert_eq!(form.rows("fr", ("Oui", "Non"))[consent].shown, "Oui");
        form.set(phone, "0612345678");
        assert!(form.rows("fr", ("Oui", "Non"))[phone].error.is_empty());
    }
}
