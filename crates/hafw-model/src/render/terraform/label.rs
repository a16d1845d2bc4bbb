//! Resource labels derived from names in the deployment file.
//!
//! A Terraform label may hold letters, digits, `_` and `-` and must start
//! with a letter or `_`. The encoding keeps the common case readable
//! (`fw-a-untrust` stays `fw-a-untrust`) and is injective, so two different
//! names (or tuples of names) never share a label:
//!
//! - ASCII letters, digits and `-` are kept, except a leading digit or `-`;
//! - `_` becomes `__`;
//! - any other character, and a leading digit or `-`, becomes `_<hex>_`
//!   (its code point in lowercase hex);
//! - parts of a composite label are joined by `_-`;
//! - an empty label becomes `_`.
//!
//! Reading left to right, every `_` starts one of three tokens told apart by
//! the next character (`_` literal, `-` separator, hex digit escape), so the
//! label decodes to exactly one tuple of names.

/// The label for a tuple of names.
pub fn label(parts: &[&str]) -> String {
    let mut out = String::new();
    for (n, part) in parts.iter().enumerate() {
        if n > 0 {
            out.push_str("_-");
        }
        for c in part.chars() {
            let leading = out.is_empty();
            match c {
                '_' => out.push_str("__"),
                c if c.is_ascii_alphabetic() => out.push(c),
                c if (c.is_ascii_digit() || c == '-') && !leading => out.push(c),
                c => out.push_str(&format!("_{:x}_", c as u32)),
            }
        }
    }
    if out.is_empty() {
        out.push('_');
    }
    out
}

/// The label for one name.
pub fn name(s: &str) -> String {
    label(&[s])
}

/// A CIDR as label text: `0.0.0.0/0` reads `0-0-0-0-0`. Canonical CIDRs map
/// one to one onto this form, so it keeps labels injective.
pub fn cidr(c: &impl std::fmt::Display) -> String {
    c.to_string().replace(['.', '/'], "-")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::addr::Cidr;
    use std::collections::HashMap;

    fn valid(l: &str) -> bool {
        let mut chars = l.chars();
        let first_ok = chars
            .next()
            .is_some_and(|c| c.is_ascii_alphabetic() || c == '_');
        first_ok && chars.all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-')
    }

    /// Every string over an alphabet holding each kind of character the
    /// encoding treats differently, up to length 4.
    fn strings() -> Vec<String> {
        let alphabet = ['a', '1', '-', '_', '.', ' ', 'f', 'é'];
        let mut all = vec![String::new()];
        let mut layer = vec![String::new()];
        for _ in 0..4 {
            let mut next = Vec::new();
            for s in &layer {
                for c in alphabet {
                    next.push(format!("{s}{c}"));
                }
            }
            all.extend(next.iter().cloned());
            layer = next;
        }
        all
    }

    #[test]
    fn readable_names_stay_as_written() {
        assert_eq!(name("fw-a-untrust"), "fw-a-untrust");
        assert_eq!(name("servers"), "servers");
        assert_eq!(name("a_b"), "a__b");
    }

    #[test]
    fn leading_digits_and_odd_characters_are_escaped() {
        assert_eq!(name("1st"), "_31_st");
        assert_eq!(name("-x"), "_2d_x");
        assert_eq!(name("a.b"), "a_2e_b");
        assert_eq!(name(""), "_");
        assert_eq!(
            label(&["external", "fw-a-untrust"]),
            "external_-fw-a-untrust"
        );
    }

    #[test]
    fn single_names_never_collide_and_are_valid_labels() {
        let mut seen: HashMap<String, String> = HashMap::new();
        for s in strings() {
            let l = name(&s);
            assert!(valid(&l), "{s:?} gave invalid label {l:?}");
            if let Some(prev) = seen.insert(l.clone(), s.clone()) {
                panic!("{prev:?} and {s:?} both give {l:?}");
            }
        }
    }

    #[test]
    fn pairs_never_collide_with_pairs_or_single_names() {
        let words: Vec<String> = strings()
            .into_iter()
            .filter(|s| s.chars().count() <= 2)
            .collect();
        let mut seen: HashMap<String, Vec<String>> = HashMap::new();
        for w in &words {
            seen.insert(name(w), vec![w.clone()]);
        }
        for a in &words {
            for b in &words {
                let l = label(&[a, b]);
                assert!(valid(&l), "{a:?},{b:?} gave invalid label {l:?}");
                let parts = vec![a.clone(), b.clone()];
                if let Some(prev) = seen.insert(l.clone(), parts.clone()) {
                    panic!("{prev:?} and {parts:?} both give {l:?}");
                }
            }
        }
    }

    #[test]
    fn cidrs_read_as_dashes() {
        let c: Cidr = "10.0.10.0/24".parse().unwrap();
        assert_eq!(cidr(&c), "10-0-10-0-24");
        assert_eq!(label(&["rt", &cidr(&c)]), "rt_-10-0-10-0-24");
    }
}
