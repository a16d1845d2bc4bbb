//! Input that is not a deployment: each case is an error with a clear
//! message (and a location where there is one), never a panic.

use std::path::PathBuf;

use hafw_model::{load, parse, Diagnostics, Location, MAX_FILE_BYTES};
use hafw_testkit::Rng;

const SEED: &str = include_str!("../../../examples/alicloud-havip.toml");
const ONE_ARM: &str = include_str!("../../../examples/alicloud-one-arm.toml");

fn edit(from: &str, to: &str) -> String {
    assert!(SEED.contains(from), "`{from}` is not in the example");
    SEED.replacen(from, to, 1)
}

/// The single diagnostic of a failed parse, as (line, column, message).
fn only(result: Result<hafw_model::Deployment, Diagnostics>) -> (Option<(usize, usize)>, String) {
    let d = result.expect_err("the input should be refused");
    assert_eq!(d.items.len(), 1, "{d}");
    let i = &d.items[0];
    assert!(!i.fix.is_empty(), "{d}");
    (
        i.location.map(|Location { line, column }| (line, column)),
        i.message.clone(),
    )
}

/// A file in the temporary directory, removed when dropped.
struct TempFile(PathBuf);

impl TempFile {
    fn new(name: &str, bytes: &[u8]) -> TempFile {
        let path =
            std::env::temp_dir().join(format!("hafw-malformed-{}-{name}", std::process::id()));
        std::fs::write(&path, bytes).unwrap();
        TempFile(path)
    }
}

impl Drop for TempFile {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.0);
    }
}

#[test]
fn malformed_toml_is_located() {
    let (at, message) = only(parse(
        "d.toml",
        &edit(
            "[[cloud.havip]]\nname = \"internal\"",
            "[[cloud.havip]\nname = \"internal\"",
        ),
    ));
    assert_eq!(at, Some((73, 15)), "{message}");
    assert!(message.contains("array table"), "{message}");

    let (at, message) = only(parse(
        "d.toml",
        &edit(r#"region = "cn-hangzhou""#, r#"region = "cn-hangzhou"#),
    ));
    assert_eq!(at.map(|a| a.0), Some(9), "{message}");
    assert!(message.contains("string"), "{message}");
}

#[test]
fn a_wrong_type_names_the_type_wanted() {
    let (at, message) = only(parse(
        "d.toml",
        &edit("priority = 100", "priority = \"high\""),
    ));
    assert_eq!(at, Some((152, 12)));
    assert!(
        message.contains("invalid type: string \"high\", expected u8"),
        "{message}"
    );

    let (at, message) = only(parse("d.toml", &edit("priority = 100", "priority = 300")));
    assert_eq!(at, Some((152, 12)));
    assert!(message.contains("300"), "{message}");
}

#[test]
fn an_unknown_key_is_refused_with_its_location() {
    let (at, message) = only(parse("d.toml", &edit("priority = 100", "prority = 100")));
    assert_eq!(at, Some((152, 1)));
    assert!(message.contains("unknown field `prority`"), "{message}");
    assert!(
        message.contains("`priority`"),
        "the known names are listed: {message}"
    );
}

#[test]
fn a_missing_key_is_refused() {
    let (_, message) = only(parse("d.toml", &edit("region = \"cn-hangzhou\"\n", "")));
    assert!(message.contains("missing field `region`"), "{message}");
}

#[test]
fn ipv6_where_ipv4_is_required() {
    let (at, message) = only(parse(
        "d.toml",
        &edit(r#"ip = "10.0.1.100""#, r#"ip = "2001:db8::100""#),
    ));
    assert_eq!(at, Some((70, 6)));
    assert!(
        message.contains("`2001:db8::100` is an IPv6 address"),
        "{message}"
    );
    assert!(message.contains("IPv4 only"), "{message}");

    let (at, message) = only(parse(
        "d.toml",
        &edit(r#"cidr = "10.0.2.0/24""#, r#"cidr = "2001:db8:2::/64""#),
    ));
    assert_eq!(at, Some((28, 8)));
    assert!(message.contains("is an IPv6 prefix"), "{message}");
}

#[test]
fn a_ten_megabyte_file_is_refused_by_size() {
    let mut big = SEED.as_bytes().to_vec();
    while big.len() < 10 * 1024 * 1024 {
        big.extend_from_slice(
            b"# padding padding padding padding padding padding padding padding\n",
        );
    }
    let f = TempFile::new("big.toml", &big);
    let (_, message) = only(load(&f.0));
    assert_eq!(
        message,
        format!(
            "the file is {} bytes; a deployment file may be at most {MAX_FILE_BYTES} bytes",
            big.len()
        )
    );
    // The same bound holds for text handed to `parse` directly.
    let text = String::from_utf8(big).unwrap();
    let (_, message) = only(parse("big.toml", &text));
    assert!(
        message.contains(&format!("the limit is {MAX_FILE_BYTES}")),
        "{message}"
    );
}

#[test]
fn an_empty_file_is_refused() {
    for text in ["", "  \n\t\n"] {
        let (at, message) = only(parse("d.toml", text));
        assert_eq!(at, Some((1, 1)));
        assert_eq!(message, "the file is empty");
    }
    let f = TempFile::new("empty.toml", b"");
    let (_, message) = only(load(&f.0));
    assert_eq!(message, "the file is empty");
}

#[test]
fn a_missing_file_is_refused() {
    let (_, message) = only(load(std::path::Path::new(
        "/nonexistent/hafw/deployment.toml",
    )));
    assert!(message.starts_with("cannot read the file:"), "{message}");
}

#[test]
fn random_bytes_and_binary_files_are_refused() {
    let mut rng = Rng::new(0x9e37_79b9_7f4a_7c15);
    let mut binary = rng.bytes(4096);
    binary[0] = 0xff; // never valid UTF-8
    let f = TempFile::new("binary.bin", &binary);
    let (_, message) = only(load(&f.0));
    assert_eq!(message, "the file is not UTF-8 text");

    // Valid UTF-8 that is not TOML: refused with a message, never a panic.
    for _ in 0..200 {
        let len = rng.index(300) + 1;
        let text: String = (0..len)
            .map(|_| char::from_u32(rng.index(0x3000) as u32).unwrap_or('?'))
            .collect();
        let _ = parse("noise.toml", &text);
    }
    let (_, message) = only(parse("noise.toml", "\u{0}\u{1}\u{7f}garbage\u{fffd}"));
    assert!(!message.is_empty());
}

#[test]
fn deep_nesting_is_refused_not_a_stack_overflow() {
    // Shallow enough to parse: refused for its type.
    let (at, message) = only(parse(
        "deep.toml",
        &format!("name = {}1{}\n", "[".repeat(64), "]".repeat(64)),
    ));
    assert_eq!(at, Some((1, 8)), "{message}");
    assert!(message.contains("invalid type: sequence"), "{message}");
    for depth in [1_000, 10_000, 200_000] {
        let arrays = format!("name = {}1{}\n", "[".repeat(depth), "]".repeat(depth));
        let (at, message) = only(parse("deep.toml", &arrays));
        assert_eq!(at.map(|a| a.0), Some(1), "{message}");
        assert!(message.contains("recursion"), "{message}");
        let tables = format!("name = {}1{}\n", "{ a = ".repeat(depth), " }".repeat(depth));
        assert!(parse("deep.toml", &tables).is_err());
    }
    // Deep dotted keys and table headers are flat to the parser but deep in
    // the document; they must come back as errors too.
    let dotted = format!("{} = 1\n", vec!["a"; 5_000].join("."));
    assert!(parse("deep.toml", &dotted).is_err());
    let header = format!("[{}]\nb = 1\n", vec!["a"; 5_000].join("."));
    assert!(parse("deep.toml", &header).is_err());
}

/// Mutates the examples line by line (delete, duplicate, swap, truncate,
/// change a byte) and checks that parsing and validation never panic. A
/// failure prints the seed and the mutated text, so it can be replayed.
#[test]
fn mutated_examples_never_panic() {
    let mut rng = Rng::new(0x2545_f491_4f6c_dd1d);
    let mut refused = 0;
    for round in 0..4000 {
        let base = if round % 2 == 0 { SEED } else { ONE_ARM };
        let mut lines: Vec<String> = base.lines().map(str::to_string).collect();
        for _ in 0..(1 + rng.index(3)) {
            let n = lines.len();
            let i = rng.index(n);
            match rng.index(5) {
                0 => {
                    lines.remove(i);
                }
                1 => {
                    let l = lines[i].clone();
                    lines.insert(i, l);
                }
                2 => lines.swap(i, rng.index(n)),
                3 => {
                    let cut = rng.index(lines[i].len() + 1);
                    let cut = (0..=cut)
                        .rev()
                        .find(|c| lines[i].is_char_boundary(*c))
                        .unwrap_or(0);
                    lines[i].truncate(cut);
                }
                _ => {
                    let digits = b"0123456789./:\"[]{}=, abcxyz";
                    let mut bytes = lines[i].clone().into_bytes();
                    if !bytes.is_empty() {
                        let at = rng.index(bytes.len());
                        bytes[at] = digits[rng.index(digits.len())];
                    }
                    lines[i] = String::from_utf8(bytes).unwrap_or_default();
                }
            }
            if lines.is_empty() {
                break;
            }
        }
        let text = lines.join("\n");
        let outcome = std::panic::catch_unwind(|| parse("mutant.toml", &text).map(|_| ()));
        match outcome {
            Ok(Ok(())) => {}
            Ok(Err(d)) => {
                refused += 1;
                assert!(
                    !d.items.is_empty(),
                    "round {round}: an Err with no diagnostic"
                );
            }
            Err(_) => panic!("round {round}: parse panicked on:\n{text}"),
        }
    }
    // The mutations must actually exercise the error paths.
    assert!(
        refused > 1000,
        "only {refused} of 4000 mutants were refused"
    );
}
