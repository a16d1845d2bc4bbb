//! Small pieces of nft syntax: lines, quoted strings, identifiers.

/// Appends one line indented by `depth` tabs (nft's own listing style).
pub(super) fn line(out: &mut String, depth: usize, text: impl AsRef<str>) {
    for _ in 0..depth {
        out.push('\t');
    }
    out.push_str(text.as_ref());
    out.push('\n');
}

/// nft keeps at most 128 bytes of a comment (NFTNL_UDATA_COMMENT_MAXLEN,
/// terminator included).
const COMMENT_MAX: usize = 127;

/// A double-quoted nft string. nft strings have no escapes, so a double
/// quote or a control character, which names should never hold, is
/// replaced; the text is cut to what a comment may hold.
pub(super) fn quote(s: &str) -> String {
    let mut body = String::with_capacity(s.len());
    for c in s.chars() {
        let c = match c {
            '"' => '\'',
            c if c.is_control() => ' ',
            c => c,
        };
        if body.len() + c.len_utf8() > COMMENT_MAX - 2 {
            break;
        }
        body.push(c);
    }
    format!("\"{body}\"")
}

/// A chain or set name made from a user's name: letters, digits and `_`,
/// starting with a letter.
pub(super) fn ident(s: &str) -> String {
    let mut out: String = s
        .chars()
        .map(|c| if c.is_ascii_alphanumeric() { c } else { '_' })
        .collect();
    if !out.starts_with(|c: char| c.is_ascii_alphabetic()) {
        out.insert(0, 'z');
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quote_removes_what_nft_cannot_hold() {
        assert_eq!(quote("a\"b\nc"), "\"a'b c\"");
        assert_eq!(quote(&"x".repeat(300)).len(), COMMENT_MAX);
    }

    #[test]
    fn ident_is_a_valid_nft_name() {
        assert_eq!(ident("dmz-1"), "dmz_1");
        assert_eq!(ident("1st"), "z1st");
        assert_eq!(ident(""), "z");
    }
}
