//! The kiosk's languages: which bundled translation to select, whether the screen reads right to
//! left, and which embedded font draws the script. No Slint types: the adapter applies these.

/// A language of the kiosk. French is the default.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Lang {
    #[default]
    Fr,
    Ar,
    Zgh,
    En,
}

impl Lang {
    pub const ALL: [Lang; 4] = [Lang::Fr, Lang::Ar, Lang::Zgh, Lang::En];

    /// The code used by the schema labels and the `lang/<code>` translation directories.
    pub fn code(self) -> &'static str {
        match self {
            Lang::Fr => "fr",
            Lang::Ar => "ar",
            Lang::Zgh => "zgh",
            Lang::En => "en",
        }
    }

    pub fn from_code(code: &str) -> Option<Lang> {
        Lang::ALL.into_iter().find(|l| l.code() == code)
    }

    /// Arabic reads right to left; the UI mirrors alignment and row order for it.
    pub fn is_rtl(self) -> bool {
        self == Lang::Ar
    }

    /// Family name of the embedded font that covers this language's script. An embedded font
    /// never stands in for a script it lacks, so every text names the family for its script.
    pub fn font_family(self) -> &'static str {
        match self {
            Lang::Ar => ARABIC_FONT,
            Lang::Zgh => TIFINAGH_FONT,
            Lang::Fr | Lang::En => LATIN_FONT,
        }
    }

    /// The language's own name, as shown on the language bar.
    pub fn endonym(self) -> &'static str {
        match self {
            Lang::Fr => "Français",
            Lang::Ar => "العربية",
            Lang::Zgh => "ⵜⴰⵎⴰⵣⵉⵖⵜ",
            Lang::En => "English",
        }
    }
}

pub const LATIN_FONT: &str = "Noto Sans";
pub const ARABIC_FONT: &str = "Noto Sans Arabic";
pub const TIFINAGH_FONT: &str = "Noto Sans Tifinagh";

/// The font for a piece of text whose script is not the UI language's (a name typed in Arabic
/// on a French screen): the first strong character decides.
pub fn font_for_text(text: &str) -> &'static str {
    for c in text.chars() {
        match c {
            '\u{0600}'..='\u{06FF}' | '\u{0750}'..='\u{077F}' | '\u{FB50}'..='\u{FEFF}' => {
                return ARABIC_FONT
            }
            '\u{2D30}'..='\u{2D7F}' => return TIFINAGH_FONT,
            c if c.is_alphabetic() => return LATIN_FONT,
            _ => {}
        }
    }
    LATIN_FONT
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_arabic_is_right_to_left_and_each_script_has_its_font() {
        assert!(Lang::Ar.is_rtl());
        assert!(!Lang::Fr.is_rtl() && !Lang::Zgh.is_rtl() && !Lang::En.is_rtl());
        assert_eq!(Lang::from_code("zgh"), Some(Lang::Zgh));
        assert_eq!(Lang::from_code("de"), None);
        assert_eq!(font_for_text("12 محمد"), ARABIC_FONT);
        assert_eq!(font_for_text("ⵜⴰⵎⴰⵣⵉⵖⵜ"), TIFINAGH_FONT);
        assert_eq!(font_for_text("  Benali"), LATIN_FONT);
        assert_eq!(font_for_text(""), LATIN_FONT);
    }

    /// The `@tr("...")` texts of every `.slint` file under `ui/` (the English msgids).
    fn slint_msgids() -> std::collections::BTreeSet<String> {
        fn walk(dir: &std::path::Path, out: &mut Vec<std::path::PathBuf>) {
            for e in std::fs::read_dir(dir).unwrap() {
                let p = e.unwrap().path();
                if p.is_dir() {
                    walk(&p, out);
                } else if p.extension().is_some_and(|x| x == "slint") {
                    out.push(p);
                }
            }
        }
        let mut files = Vec::new();
        walk(
            &std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("ui"),
            &mut files,
        );
        let mut ids = std::collections::BTreeSet::new();
        for f in files {
            let text = std::fs::read_to_string(&f).unwrap();
            for part in text.split("@tr(\"").skip(1) {
                let mut id = String::new();
                let mut chars = part.chars();
                while let Some(c) = chars.next() {
                    match c {
                        '\\' => id.extend(chars.next()),
                        '"' => break,
                        c => id.push(c),
                    }
                }
                ids.insert(id);
            }
        }
        ids
    }

    #[test]
    fn every_face_instruction_is_mapped_to_a_translated_text() {
        let ids = slint_msgids();
        let face = std::fs::read_to_string(
            std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("ui/views/face.slint"),
        )
        .unwrap();
        for advice in tasjil_drivers::face::advice::ALL {
            assert!(
                ids.contains(advice),
                "no @tr for the face instruction {advice:?}"
            );
            assert!(
                face.contains(&format!("if key == \"{advice}\"")),
                "FaceAdvice.text does not map {advice:?}"
            );
        }
    }

    /// msgid -> whether every msgstr of it is filled, from a `.po` file.
    fn po_entries(lang: &str) -> std::collections::BTreeMap<String, bool> {
        let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
            .join(format!("lang/{lang}/LC_MESSAGES/tasjil.po"));
        let text = std::fs::read_to_string(path).unwrap();
        let unquote = |l: &str| {
            l.split_once('"')
                .map(|(_, rest)| rest.trim_end().trim_end_matches('"').replace("\\\"", "\""))
                .unwrap_or_default()
        };
        let mut out = std::collections::BTreeMap::new();
        let mut id: Option<String> = None;
        for line in text.lines() {
            if line.starts_with("msgid ") {
                id = Some(unquote(line));
            } else if line.starts_with("msgstr") {
                if let Some(i) = id.clone().filter(|i| !i.is_empty()) {
                    let filled = !unquote(line).is_empty();
                    let e = out.entry(i).or_insert(true);
                    *e &= filled;
                }
            }
        }
        out
    }

    #[test]
    fn every_text_of_the_views_is_translated_in_french_arabic_and_tamazight() {
        let ids = slint_msgids();
        assert!(ids.len() > 100, "{} msgids found in ui/", ids.len());
        assert!(ids.contains("Supervisor"));
        for lang in ["fr", "ar", "zgh"] {
            let po = po_entries(lang);
            let missing: Vec<&String> =
                ids.iter().filter(|id| po.get(*id) != Some(&true)).collect();
            assert!(missing.is_empty(), "{lang}: untranslated {missing:?}");
        }
    }
}
