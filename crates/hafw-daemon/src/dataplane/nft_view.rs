//! The hafw table as the kernel lists it, live and as the plan would make
//! it. nft prints a table in its own canonical form, not as it was
//! written, so the plan's form is obtained the same way: committed in a
//! scratch namespace and listed there.

use hafw_kernel::nft::{self, Family};
use hafw_kernel::Error;
use hafw_model::render::nft::Ruleset;

/// The live table in namespace `ns`, counters removed; `None` when there
/// is no such table.
pub fn live(ns: Option<&str>, ruleset: &Ruleset) -> Result<Option<String>, Error> {
    match nft::list_table(ns, family(ruleset), &ruleset.table) {
        Ok(text) => Ok(Some(normalize(&text))),
        Err(Error::Nft { stderr, .. }) if stderr.contains("No such file or directory") => Ok(None),
        Err(e) => Err(e),
    }
}

/// The table `ruleset` makes, in the kernel's listing, counters removed.
/// Committed in an anonymous namespace that only a thread made for it
/// holds: it has no name under /run/netns, so it can never be left behind
/// (a daemon killed mid-check used to leave `hafw-scratch-*` entries), and
/// it vanishes with the thread. A ruleset the kernel refuses is an error.
pub fn expected(ruleset: &Ruleset) -> Result<String, Error> {
    let (text, family, table) = (ruleset.text.clone(), family(ruleset), ruleset.table.clone());
    std::thread::scope(|scope| {
        scope
            .spawn(move || {
                // SAFETY: unshare affects only this thread, made for it.
                if unsafe { libc::unshare(libc::CLONE_NEWNET) } != 0 {
                    return Err(Error::Nft {
                        ns: "a scratch namespace".into(),
                        status: "not started".into(),
                        stderr: format!("unshare: {}", std::io::Error::last_os_error()),
                    });
                }
                // nft runs as a child of this thread, so in its namespace.
                nft::apply(None, &text)?;
                nft::list_table(None, family, &table)
            })
            .join()
            .unwrap_or_else(|_| {
                Err(Error::Nft {
                    ns: "a scratch namespace".into(),
                    status: "panicked".into(),
                    stderr: String::new(),
                })
            })
    })
    .map(|listed| normalize(&listed))
}

pub fn family(ruleset: &Ruleset) -> Family {
    match ruleset.family {
        "ip6" => Family::Ip6,
        "inet" => Family::Inet,
        _ => Family::Ip,
    }
}

/// `listing` without the packet and byte counts, which change with traffic
/// and say nothing about configuration: those of rules (`counter packets
/// N bytes M`) and those of named counters (a line `packets N bytes M` in
/// a `counter NAME { }` block).
pub fn normalize(listing: &str) -> String {
    let mut out = String::with_capacity(listing.len());
    for line in listing.lines() {
        if let ["packets", p, "bytes", b] = line.split_whitespace().collect::<Vec<_>>()[..] {
            if is_number(p) && is_number(b) {
                continue;
            }
        }
        let indent = &line[..line.len() - line.trim_start().len()];
        out.push_str(indent);
        let words: Vec<&str> = line.split_whitespace().collect();
        let mut i = 0;
        let mut first = true;
        while i < words.len() {
            if !first {
                out.push(' ');
            }
            first = false;
            out.push_str(words[i]);
            let counts = words.get(i + 1..i + 5).is_some_and(|w| {
                w[0] == "packets" && is_number(w[1]) && w[2] == "bytes" && is_number(w[3])
            });
            i += if words[i] == "counter" && counts {
                5
            } else {
                1
            };
        }
        out.push('\n');
    }
    out
}

fn is_number(word: &str) -> bool {
    let word = word.trim_end_matches(',');
    !word.is_empty() && word.bytes().all(|b| b.is_ascii_digit())
}

/// The first line where `live` and `planned` differ, for a report.
pub fn first_difference(live: &str, planned: &str) -> String {
    let (l, p): (Vec<&str>, Vec<&str>) = (live.lines().collect(), planned.lines().collect());
    for i in 0..l.len().max(p.len()) {
        let (a, b) = (l.get(i), p.get(i));
        if a != b {
            return format!(
                "first difference at line {}: live `{}`, plan `{}`",
                i + 1,
                a.map_or("(end)", |s| s.trim()),
                b.map_or("(end)", |s| s.trim())
            );
        }
    }
    "no difference".into()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counters_are_dropped_and_nothing_else() {
        let listing = "table ip hafw {\n\t\tct state established counter packets 12 bytes 3400 accept\n\
            \t\t\t10.0.0.1 counter packets 0 bytes 0 comment \"rule a\",\n\
            \t\tcounter packets 3 bytes 9\n\t\tip daddr 10.0.0.1 counter comment \"packets 1 bytes 2\"\n}\n";
        assert_eq!(
            normalize(listing),
            "table ip hafw {\n\t\tct state established counter accept\n\
            \t\t\t10.0.0.1 counter comment \"rule a\",\n\
            \t\tcounter\n\t\tip daddr 10.0.0.1 counter comment \"packets 1 bytes 2\"\n}\n"
        );
    }

    #[test]
    fn named_counter_counts_are_dropped() {
        let listing = "table inet hafw {\n\tcounter ipv6_input_dropped {\n\t\tpackets 7 bytes 560\n\t}\n\n\
            \tchain input {\n\t\tmeta nfproto ipv6 counter name \"ipv6_input_dropped\" drop\n\t}\n}\n";
        let quiet = listing.replace("packets 7 bytes 560", "packets 0 bytes 0");
        assert_eq!(normalize(listing), normalize(&quiet));
        assert!(!normalize(listing).contains("packets"));
        assert!(normalize(listing).contains("counter name \"ipv6_input_dropped\" drop"));
    }

    #[test]
    fn first_difference_names_the_line() {
        assert_eq!(first_difference("a\nb\n", "a\nb\n"), "no difference");
        assert_eq!(
            first_difference("a\nb\n", "a\nc\nd\n"),
            "first difference at line 2: live `b`, plan `c`"
        );
    }
}
