//! Making text from a deployment file (or a recipe, or the environment) safe to show on
//! a terminal: control characters (ESC, CR, C1), and the bidirectional controls that
//! reorder what a reader sees (U+202E …), become visible `\uXXXX` escapes. Newlines and
//! tabs stay. The kit's own colors (the four SGR codes it paints) are kept by
//! [`for_terminal`]; any other escape sequence is shown, never obeyed.

/// Whether `c` must not reach a terminal raw.
pub fn is_unsafe(c: char) -> bool {
    (c.is_control() && c != '\n' && c != '\t')
        || matches!(
            c,
            '\u{061c}' | '\u{200e}' | '\u{200f}' | '\u{202a}'..='\u{202e}' | '\u{2066}'..='\u{2069}'
        )
}

/// Every unsafe character as `\uXXXX` (valid inside a JSON string, readable on a
/// terminal). Text without one is returned as is.
pub fn escape(text: &str) -> String {
    if !text.chars().any(is_unsafe) {
        return text.to_string();
    }
    let mut out = String::with_capacity(text.len() + 16);
    for c in text.chars() {
        push(&mut out, c);
    }
    out
}

fn push(out: &mut String, c: char) {
    if is_unsafe(c) {
        out.push_str(&format!("\\u{:04x}", c as u32));
    } else {
        out.push(c);
    }
}

/// The SGR sequences the kit paints with (`ui::Ui::paint`, the validation report).
const OWN_SGR: [&str; 4] = ["\x1b[0m", "\x1b[1;31m", "\x1b[1;32m", "\x1b[1;33m"];

/// [`escape`], keeping the kit's own color sequences.
pub fn for_terminal(text: &str) -> String {
    if !text.chars().any(is_unsafe) {
        return text.to_string();
    }
    let mut out = String::with_capacity(text.len() + 16);
    let mut rest = text;
    while let Some(c) = rest.chars().next() {
        if c == '\x1b'
            && let Some(sgr) = OWN_SGR.iter().find(|s| rest.starts_with(**s))
        {
            out.push_str(sgr);
            rest = &rest[sgr.len()..];
            continue;
        }
        push(&mut out, c);
        rest = &rest[c.len_utf8()..];
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn controls_and_bidi_are_shown_not_obeyed() {
        assert_eq!(escape("a\x1b]0;x\x07b"), "a\\u001b]0;x\\u0007b");
        assert_eq!(escape("evil\u{202e}txt"), "evil\\u202etxt");
        assert_eq!(escape("two\nlines\tok"), "two\nlines\tok");
        assert_eq!(
            for_terminal("\x1b[1;31merror\x1b[0m: \x1b[8mhidden"),
            "\x1b[1;31merror\x1b[0m: \\u001b[8mhidden"
        );
    }
}
