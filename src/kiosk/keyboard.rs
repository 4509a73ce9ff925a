//! On-screen keyboard layouts: French AZERTY, Arabic (the usual Moroccan PC layout's letters),
//! Tifinagh (IRCAM letters) and digits. Rows are listed as the keys sit left to right on the
//! physical keyboard; the view lays them out as given, whatever the screen's direction.

use crate::schema::Keyboard;

const AZERTY: [&str; 4] = ["azertyuiop", "qsdfghjklm", "wxcvbn-'", "éèàçâêîôû"];
const ARABIC: [&str; 4] = ["ضصثقفغعهخحجد", "شسيبلاتنمكط", "ئءؤرىةوزظذ", "أإآ"];
const TIFINAGH: [&str; 4] = ["ⴰⴱⴳⴷⴹⴻⴼⴽⵀⵃ", "ⵄⵅⵇⵉⵊⵍⵎⵏⵓⵔ", "ⵕⵖⵙⵚⵛⵜⵟⵡⵢⵣ", "ⵥⵯ"];
const DIGITS: [&str; 4] = ["123", "456", "789", "+0/-"];

/// Keys of `layout`, row by row. `shift` gives capitals on the Latin layout.
pub fn rows(layout: Keyboard, shift: bool) -> Vec<Vec<String>> {
    let src = match layout {
        Keyboard::Latin => AZERTY,
        Keyboard::Arabic => ARABIC,
        Keyboard::Tifinagh => TIFINAGH,
        Keyboard::Digits => DIGITS,
    };
    src.iter()
        .map(|row| {
            row.chars()
                .map(|c| {
                    if shift {
                        c.to_uppercase().collect()
                    } else {
                        c.to_string()
                    }
                })
                .collect()
        })
        .collect()
}

pub fn layout_name(layout: Keyboard) -> &'static str {
    match layout {
        Keyboard::Latin => "AZERTY",
        Keyboard::Arabic => "أبجد",
        Keyboard::Tifinagh => "ⴰⴱⴳ",
        Keyboard::Digits => "123",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn layouts_hold_their_script_and_shift_capitalises_latin() {
        let azerty = rows(Keyboard::Latin, true);
        assert_eq!(azerty[0][0], "A");
        assert_eq!(azerty[3][0], "É");
        let ar = rows(Keyboard::Arabic, false);
        assert!(ar
            .iter()
            .flatten()
            .all(|k| k.chars().all(|c| ('\u{0600}'..='\u{06FF}').contains(&c))));
        let tfng = rows(Keyboard::Tifinagh, true);
        assert!(tfng
            .iter()
            .flatten()
            .all(|k| k.chars().all(|c| ('\u{2D30}'..='\u{2D7F}').contains(&c))));
        assert_eq!(rows(Keyboard::Digits, false).concat().len(), 13);
    }
}
