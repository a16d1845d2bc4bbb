//! Text that came from the peer (a config-sync refusal, anything it sends
//! that ends up in a log line or `hafw status`), made safe to print.
//!
//! A peer, or whoever holds the key, must not be able to move an operator's
//! cursor, clear the screen, forge a line of status or a log record, or
//! flood a terminal: every control character (C0, DEL, C1, so every ANSI
//! escape sequence loses its ESC) and every bidirectional override is shown
//! escaped (`\u{1b}`), newlines included (`\n`), and the text is cut at
//! [`PEER_TEXT_MAX`] characters with a note of how much was cut.

/// The most characters of peer text shown (a diagnostic's few lines fit).
pub const PEER_TEXT_MAX: usize = 512;

/// `text` as it may be printed: escaped and capped (see the module docs).
pub fn peer_text(text: &str) -> String {
    let mut out = String::with_capacity(text.len().min(PEER_TEXT_MAX + 32));
    for (shown, (i, c)) in text.char_indices().enumerate() {
        if shown >= PEER_TEXT_MAX {
            let cut = text.len() - i;
            out.push_str(&format!("... ({cut} more bytes cut)"));
            return out;
        }
        match c {
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            '\\' => out.push_str("\\\\"),
            c if unsafe_char(c) => out.push_str(&format!("\\u{{{:x}}}", c as u32)),
            c => out.push(c),
        }
    }
    out
}

/// Characters a terminal or a log reader acts on rather than shows.
fn unsafe_char(c: char) -> bool {
    c.is_control()
        // Bidirectional embeddings, overrides and isolates reorder what
        // follows them ("Trojan Source").
        || matches!(c, '\u{202a}'..='\u{202e}' | '\u{2066}'..='\u{2069}' | '\u{200e}' | '\u{200f}')
        // Line and paragraph separators end a line for some readers.
        || matches!(c, '\u{2028}' | '\u{2029}')
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ansi_escapes_lose_their_escape() {
        let t = peer_text("bad rule \x1b[2J\x1b[31mred\x1b]0;title\x07 \u{9b}31m");
        assert_eq!(
            t,
            "bad rule \\u{1b}[2J\\u{1b}[31mred\\u{1b}]0;title\\u{7} \\u{9b}31m"
        );
        assert!(!t.chars().any(|c| c.is_control()), "{t:?}");
    }

    #[test]
    fn a_newline_cannot_forge_a_line() {
        let t = peer_text("x\nalarm     none\r\nnode      id 1  active");
        assert_eq!(t, "x\\nalarm     none\\r\\nnode      id 1  active");
        assert_eq!(t.lines().count(), 1);
        // An escaped backslash stays distinguishable from an escape.
        assert_eq!(peer_text("a\\nb"), "a\\\\nb");
    }

    #[test]
    fn bidi_overrides_are_escaped_and_plain_text_is_kept() {
        assert_eq!(peer_text("a\u{202e}b\u{2066}"), "a\\u{202e}b\\u{2066}");
        let plain = "dep.toml:4:1: policy.rules[0].ports: 70000 is not a port — ünïcode ok";
        assert_eq!(peer_text(plain), plain);
    }

    #[test]
    fn long_text_is_cut_with_a_note() {
        let t = peer_text(&"é".repeat(10_000));
        assert!(t.starts_with(&"é".repeat(PEER_TEXT_MAX)), "{t}");
        assert!(
            t.ends_with(&format!(
                "... ({} more bytes cut)",
                (10_000 - PEER_TEXT_MAX) * 2
            )),
            "{t}"
        );
        assert_eq!(peer_text(&"a".repeat(PEER_TEXT_MAX)).len(), PEER_TEXT_MAX);
    }
}
