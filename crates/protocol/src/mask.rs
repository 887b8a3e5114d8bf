//! Activation codes (contract section 7): their grammar, and masking them wherever text may
//! reach a log, a result or the store: `A00000-K6QK03-KSG046-H6BK67-1GE201` becomes
//! `A00000-******-******-******-1GE201`.
//!
//! The scanner errs on the side of masking: a code glued to other letters
//! (`xA00000-K6QK03-KSG046`), with an over-long outer group, or inside a longer chain of
//! groups still has its inner groups masked. A false positive only hides a few characters;
//! a false negative leaks a licence.

const MIN_GROUP: usize = 4;
const MAX_GROUP: usize = 8;

fn is_code_char(b: u8) -> bool {
    b.is_ascii_uppercase() || b.is_ascii_digit()
}

/// A maximal run of ASCII letters and digits.
#[derive(Debug, Clone, Copy)]
struct Word {
    start: usize,
    end: usize,
}

impl Word {
    /// Exactly one group: `[A-Z0-9]{4,8}`.
    fn is_group(&self, text: &[u8]) -> bool {
        let w = &text[self.start..self.end];
        (MIN_GROUP..=MAX_GROUP).contains(&w.len()) && w.iter().all(|b| is_code_char(*b))
    }

    /// Could end with a code's first group (at least 4 code characters at its end).
    fn can_start(&self, text: &[u8]) -> bool {
        let w = &text[self.start..self.end];
        w.iter().rev().take_while(|b| is_code_char(**b)).count() >= MIN_GROUP
    }

    /// Could begin with a code's last group (at least 4 code characters at its start).
    fn can_end(&self, text: &[u8]) -> bool {
        let w = &text[self.start..self.end];
        w.iter().take_while(|b| is_code_char(**b)).count() >= MIN_GROUP
    }
}

/// Splits `text` into chains of words joined by exactly one `-`.
fn chains(text: &[u8]) -> Vec<Vec<Word>> {
    let mut chains: Vec<Vec<Word>> = Vec::new();
    let mut current: Vec<Word> = Vec::new();
    let mut i = 0;
    while i < text.len() {
        if !text[i].is_ascii_alphanumeric() {
            i += 1;
            continue;
        }
        let start = i;
        while i < text.len() && text[i].is_ascii_alphanumeric() {
            i += 1;
        }
        let word = Word { start, end: i };
        let linked = current
            .last()
            .is_some_and(|prev| start == prev.end + 1 && text[prev.end] == b'-');
        if !linked && !current.is_empty() {
            chains.push(std::mem::take(&mut current));
        }
        current.push(word);
    }
    if !current.is_empty() {
        chains.push(current);
    }
    chains
}

/// Replaces the middle groups of every activation code in `text` with `*`s
/// (codes: groups of 4–8 of `A-Z0-9`, 3–8 groups joined by `-`).
pub fn activation_codes(text: &str) -> String {
    let bytes = text.as_bytes();
    let mut masked = bytes.to_vec();
    let mut changed = false;
    for chain in chains(bytes) {
        let mut k = 0;
        while k < chain.len() {
            if !chain[k].is_group(bytes) {
                k += 1;
                continue;
            }
            // chain[a..=b] is a maximal run of whole groups; a neighbour may still carry
            // the first or last group of a code glued to other characters.
            let a = k;
            let mut b = k;
            while b + 1 < chain.len() && chain[b + 1].is_group(bytes) {
                b += 1;
            }
            let first = if a > 0 && chain[a - 1].can_start(bytes) {
                a - 1
            } else {
                a
            };
            let last = if b + 1 < chain.len() && chain[b + 1].can_end(bytes) {
                b + 1
            } else {
                b
            };
            if last >= first + 2 {
                for w in &chain[first + 1..last] {
                    masked[w.start..w.end].fill(b'*');
                    changed = true;
                }
            }
            k = b + 1;
        }
    }
    if !changed {
        return text.to_string();
    }
    // Only ASCII bytes were replaced by ASCII, so the text is still valid UTF-8.
    String::from_utf8(masked).unwrap_or_else(|e| String::from_utf8_lossy(e.as_bytes()).into_owned())
}

/// True when `code` is a well-formed activation code:
/// `^[A-Z0-9]{4,8}(-[A-Z0-9]{4,8}){2,7}$`.
pub fn is_activation_code(code: &str) -> bool {
    let mut groups = 0;
    for group in code.split('-') {
        let ok = (MIN_GROUP..=MAX_GROUP).contains(&group.len()) && group.bytes().all(is_code_char);
        if !ok {
            return false;
        }
        groups += 1;
    }
    (3..=8).contains(&groups)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    const CODE: &str = "A00000-K6QK03-KSG046-H6BK67-1GE201";
    const MASKED: &str = "A00000-******-******-******-1GE201";

    #[test]
    fn masks_the_example() {
        assert_eq!(activation_codes(CODE), MASKED);
        assert_eq!(
            activation_codes(&format!("installing {CODE}: done")),
            format!("installing {MASKED}: done")
        );
    }

    #[test]
    fn masks_codes_in_plesk_style_output() {
        let out = format!("Error: the activation code '{CODE}' is invalid.\n{CODE}\n");
        assert_eq!(
            activation_codes(&out),
            format!("Error: the activation code '{MASKED}' is invalid.\n{MASKED}\n")
        );
    }

    #[test]
    fn masks_shortest_and_longest_codes() {
        assert_eq!(activation_codes("AAAA-BBBB-CCCC"), "AAAA-****-CCCC");
        let eight = "AAAAAAAA-B-C-D-E-F-G-H";
        assert_eq!(activation_codes(eight), eight, "groups of 1 are not groups");
        let eight = "AAAA-BBBB-CCCC-DDDD-EEEE-FFFF-GGGG-HHHH";
        assert_eq!(activation_codes(eight), "AAAA-****-****-****-****-****-****-HHHH");
    }

    #[test]
    fn masks_codes_glued_to_other_characters() {
        assert_eq!(activation_codes("xA00000-K6QK03-KSG046"), "xA00000-******-KSG046");
        assert_eq!(activation_codes("A00000-K6QK03-KSG046x"), "A00000-******-KSG046x");
        assert_eq!(
            activation_codes("ABCDEFGHIJ-K6QK03-KSG046-ZZZZZZZZZZZZ"),
            "ABCDEFGHIJ-******-******-ZZZZZZZZZZZZ"
        );
        // Nine groups: longer than any code, but any code inside it is masked.
        assert_eq!(
            activation_codes("AAAA-BBBB-CCCC-DDDD-EEEE-FFFF-GGGG-HHHH-IIII"),
            "AAAA-****-****-****-****-****-****-****-IIII"
        );
        assert_eq!(activation_codes("code=A000-B000-C000;"), "code=A000-****-C000;");
    }

    #[test]
    fn leaves_other_text_alone() {
        for text in [
            "",
            "plesk-reseller-agent",
            "PLSK.12345678.0001",
            "EXT.12345678.0001",
            "Updating license key EXT.12345678.0001: Done",
            "AAAA-BBBB",
            "AAAA--BBBB--CCCC",
            "AAA-BBBB-CCC",
            "aaaa-bbbb-cccc",
            "AAAA-bbbb-CCCC",
            "AAAA BBBB CCCC",
            "AAAA-BBBBBBBBB-CCCC",
            "naïve-ÄÄÄÄ-ÖÖÖÖ-ÜÜÜÜ",
            "2024-09-19 11:00",
        ] {
            assert_eq!(activation_codes(text), text);
        }
    }

    #[test]
    fn non_ascii_neighbours_survive() {
        assert_eq!(activation_codes("«AAAA-BBBB-CCCC»—é"), "«AAAA-****-CCCC»—é");
    }

    #[test]
    fn validates_codes() {
        assert!(is_activation_code(CODE));
        assert!(is_activation_code("AAAA-BBBB-CCCC"));
        assert!(is_activation_code(
            "AAAAAAAA-BBBBBBBB-CCCCCCCC-D000-E000-F000-G000-H000"
        ));
        for bad in [
            "",
            "AAAA",
            "AAAA-BBBB",
            "AAAA-BBBB-CCCC-DDDD-EEEE-FFFF-GGGG-HHHH-IIII",
            "AAA-BBBB-CCCC",
            "AAAAAAAAA-BBBB-CCCC",
            "aaaa-BBBB-CCCC",
            "AAAA-BBBB-CCCC-",
            "-AAAA-BBBB-CCCC",
            "AAAA--BBBB-CCCC",
            "AAAA-BBBB-CCCC\n",
            " AAAA-BBBB-CCCC",
            "AAAA-BBBB-CÇCC",
            "AAAA_BBBB_CCCC",
            "AAAA-BBBB-CCCC; rm -rf /",
        ] {
            assert!(!is_activation_code(bad), "{bad:?}");
        }
    }

    fn code() -> impl Strategy<Value = Vec<String>> {
        prop::collection::vec("[A-Z0-9]{4,8}", 3..=8)
    }

    /// Text that cannot hold a group: only short upper-case runs, and separators.
    fn codeless_text() -> impl Strategy<Value = String> {
        let token = prop_oneof![
            "[A-Z0-9]{1,3}",
            "[a-z][a-zA-Z0-9]{0,10}",
            "[ .:_/\n\t]{1,3}",
            "[éüß€«»—]{1,2}",
        ];
        prop::collection::vec((token, prop_oneof![Just("-"), Just(" "), Just("--"), Just(".")]), 0..30)
            .prop_map(|parts| parts.into_iter().map(|(t, s)| format!("{t}{s}")).collect())
    }

    proptest! {
        #[test]
        fn generated_codes_are_valid(groups in code()) {
            prop_assert!(is_activation_code(&groups.join("-")));
        }

        #[test]
        fn any_code_in_any_text_is_masked(
            groups in code(),
            before in prop_oneof!["\\PC{0,40}", "[A-Za-z0-9 -]{0,20}"],
            after in prop_oneof!["\\PC{0,40}", "[A-Za-z0-9 -]{0,20}"],
        ) {
            let code = groups.join("-");
            let text = format!("{before}{code}{after}");
            let out = activation_codes(&text);
            prop_assert_eq!(out.len(), text.len());
            let mut pos = before.len();
            for (i, g) in groups.iter().enumerate() {
                let seen = &out.as_bytes()[pos..pos + g.len()];
                if i == 0 || i + 1 == groups.len() {
                    // The outer groups stay unless a longer chain around them was masked.
                    prop_assert!(seen == g.as_bytes() || seen.iter().all(|b| *b == b'*'));
                } else {
                    prop_assert!(seen.iter().all(|b| *b == b'*'), "group {} left in {:?}", g, out);
                }
                pos += g.len() + 1;
            }
        }

        #[test]
        fn a_lone_code_keeps_its_outer_groups(groups in code()) {
            let out = activation_codes(&groups.join("-"));
            let expect: Vec<String> = groups.iter().enumerate().map(|(i, g)| {
                if i == 0 || i + 1 == groups.len() { g.clone() } else { "*".repeat(g.len()) }
            }).collect();
            prop_assert_eq!(out, expect.join("-"));
        }

        #[test]
        fn text_without_codes_is_unchanged(text in codeless_text()) {
            prop_assert_eq!(activation_codes(&text), text);
        }

        #[test]
        fn masking_is_idempotent(
            parts in prop::collection::vec(prop_oneof![
                "\\PC{0,12}",
                "[A-Z0-9-]{0,30}",
                code().prop_map(|g| g.join("-")),
            ], 0..8)
        ) {
            let text = parts.concat();
            let once = activation_codes(&text);
            prop_assert_eq!(activation_codes(&once), once.clone());
        }
    }
}
