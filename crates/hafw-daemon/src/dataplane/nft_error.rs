//! Turns nft's refusal into the policy object that caused it: nft names a
//! line of the text it was fed (`/dev/stdin:37:3-58: Error: ...`); the
//! rendered ruleset comments every rule with `comment "rule <name>"`.

/// Where nft says a ruleset went wrong, and which rule that is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Culprit {
    /// 1-based line of the ruleset text.
    pub line: usize,
    /// nft's error message for that line ("Could not process rule: ...").
    pub message: String,
    /// The comment naming the culprit: the one on the line itself, or the
    /// nearest `rule <name>` comment above it in the same chain or set.
    pub object: Option<String>,
    /// The offending line, trimmed.
    pub text: String,
}

/// The first error nft reports. Later errors of one refused transaction
/// are usually echoes of the first (every rule after it fails with the
/// same errno), so the first is the one to name.
pub fn first_culprit(stderr: &str, ruleset: &str) -> Option<Culprit> {
    let lines: Vec<&str> = ruleset.lines().collect();
    stderr.lines().find_map(|l| {
        let (location, message) = l.split_once(": Error: ")?;
        // `<file>:<line>:<columns>`; the file name may itself hold colons.
        let mut parts = location.rsplitn(3, ':');
        let _columns = parts.next()?;
        let line: usize = parts.next()?.parse().ok()?;
        let text = lines.get(line.checked_sub(1)?)?;
        Some(Culprit {
            line,
            message: message.to_string(),
            object: name_at(&lines, line - 1),
            text: text.trim().to_string(),
        })
    })
}

/// The comment on line `index`, else the nearest `rule <name>` comment
/// above it, not crossing the start of the enclosing chain or set.
fn name_at(lines: &[&str], index: usize) -> Option<String> {
    if let Some(c) = comment(lines[index]) {
        return Some(c);
    }
    for l in lines[..index].iter().rev() {
        let t = l.trim_start();
        if t.starts_with("chain ") || t.starts_with("set ") || t.starts_with("map ") {
            return None;
        }
        if let Some(c) = comment(l).filter(|c| c.starts_with("rule ")) {
            return Some(c);
        }
    }
    None
}

fn comment(line: &str) -> Option<String> {
    let rest = &line[line.rfind("comment \"")? + "comment \"".len()..];
    Some(rest[..rest.find('"')?].to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    const RULESET: &str = "table ip hafw {\n\
        \tchain untrust_to_trust {\n\
        \t\tip daddr 10.0.10.10 tcp dport 80 counter snat to 1.2.3.4 comment \"rule web-in\"\n\
        \t\tcounter drop comment \"default deny untrust -> trust\"\n\
        \t}\n\
        \tset s {\n\
        \t\ttype ipv4_addr\n\
        \t\telements = {\n\
        \t\t\t10.0.0.1 comment \"rule a\",\n\
        \t\t\t10.0.0.2\n\
        \t\t}\n\
        \t}\n\
        \tchain c {\n\
        \t\tcounter bogus\n\
        \t}\n\
        }\n";

    #[test]
    fn names_the_rule_on_the_first_error_line() {
        let stderr = "/dev/stdin:3:3-58: Error: Could not process rule: Operation not supported\n\
            \t\tip daddr 10.0.10.10 tcp dport 80 counter snat to 1.2.3.4 comment \"rule web-in\"\n\
            \t\t^^^^^^^^\n\
            /dev/stdin:4:3-14: Error: Could not process rule: Operation not supported\n";
        let c = first_culprit(stderr, RULESET).unwrap();
        assert_eq!(c.line, 3);
        assert_eq!(c.object.as_deref(), Some("rule web-in"));
        assert_eq!(c.message, "Could not process rule: Operation not supported");
        assert!(c.text.starts_with("ip daddr 10.0.10.10"));
    }

    #[test]
    fn walks_up_to_the_nearest_rule_but_not_out_of_its_chain() {
        let stderr = "/dev/stdin:10:4-11: Error: interval overlaps with an existing one\n";
        assert_eq!(
            first_culprit(stderr, RULESET).unwrap().object.as_deref(),
            Some("rule a")
        );
        let stderr = "/dev/stdin:14:11-15: Error: syntax error, unexpected string\n";
        let c = first_culprit(stderr, RULESET).unwrap();
        assert_eq!((c.line, c.object), (14, None));
    }

    #[test]
    fn no_location_no_culprit() {
        assert_eq!(
            first_culprit("Error: Could not process rule: Permission denied", RULESET),
            None
        );
        assert_eq!(first_culprit("/dev/stdin:99:1-2: Error: x", RULESET), None);
    }
}
