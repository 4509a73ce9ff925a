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
}
