use super::*;
use std::io::Write as _;
use std::os::unix::fs::{MetadataExt as _, PermissionsExt as _};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

fn seed() -> Deployment {
    crate::parse("seed.toml", crate::examples::SEED).expect("the seed validates")
}

const KEY: [u8; 32] = [
    0, 1, 2, 0xff, 0xfe, b'\'', b'$', b'{', b'\n', 9, 10, 11, 12, 13, 14, 15, 16, 17, 18, 19, 20,
    21, 22, 23, 24, 25, 26, 27, 28, 29, 30, 31,
];

/// Deployment text that an unquoted heredoc, a template or a careless
/// delimiter would change: expansions, backquotes, quotes, template
/// openers, the delimiter itself as a line, CRLF, and no final newline.
fn awkward_text() -> String {
    format!(
        "{}# $HOME ${{HOME}} `id` $(id) 'q' \"d\" \\ %{{ if x }} $${{y}} 50%\nHAFW_DEPLOYMENT_EOF\ncrlf\r\nlast line",
        crate::examples::SEED
    )
}

fn sh_n(script: &str) -> Result<(), String> {
    let mut child = Command::new("sh")
        .arg("-n")
        .stdin(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|e| e.to_string())?;
    child
        .stdin
        .take()
        .expect("piped")
        .write_all(script.as_bytes())
        .map_err(|e| e.to_string())?;
    let out = child.wait_with_output().map_err(|e| e.to_string())?;
    if out.status.success() {
        Ok(())
    } else {
        Err(String::from_utf8_lossy(&out.stderr).into_owned())
    }
}

/// What Terraform's `templatefile()` does with the template: `$${` and
/// `%%{` become `${` and `%{`, `${name}` the variable; any other
/// interpolation or directive is an error (it would be evaluated).
fn templatefile(t: &str, vars: &[(&str, &str)]) -> Result<String, String> {
    let mut out = String::new();
    let mut rest = t;
    while let Some(i) = rest.find(['$', '%']) {
        out.push_str(&rest[..i]);
        let tail = &rest[i..];
        let c = &tail[..1];
        if tail[1..].starts_with(&format!("{c}{{")) {
            out.push_str(&format!("{c}{{"));
            rest = &tail[3..];
        } else if tail[1..].starts_with('{') {
            let end = tail
                .find('}')
                .ok_or_else(|| format!("unclosed {c}{{ at {:?}", &tail[..20.min(tail.len())]))?;
            let name = &tail[2..end];
            let value = vars
                .iter()
                .find(|(k, _)| *k == name && c == "$")
                .ok_or_else(|| format!("template would evaluate {:?}", &tail[..=end]))?;
            out.push_str(value.1);
            rest = &tail[end + 1..];
        } else {
            out.push_str(c);
            rest = &tail[1..];
        }
    }
    out.push_str(rest);
    Ok(out)
}

#[test]
fn base64_matches_rfc_4648() {
    for (input, want) in [
        ("", ""),
        ("f", "Zg=="),
        ("fo", "Zm8="),
        ("foo", "Zm9v"),
        ("foob", "Zm9vYg=="),
        ("fooba", "Zm9vYmE="),
        ("foobar", "Zm9vYmFy"),
    ] {
        assert_eq!(base64(input.as_bytes()), want, "{input:?}");
    }
    assert_eq!(base64(&[0xff, 0xfe, 0xfd]), "//79");
}

#[test]
fn both_forms_parse_with_sh_n() {
    let dep = seed();
    for node in ["fw-a", "fw-b"] {
        let s = user_data(
            &dep,
            &awkward_text(),
            node,
            KeySource::Bytes(&KEY),
            &Bootstrap::default(),
        )
        .unwrap();
        sh_n(&s).unwrap_or_else(|e| panic!("{node}: {e}\n{s}"));
        let t = user_data(
            &dep,
            &awkward_text(),
            node,
            KeySource::Terraform,
            &Bootstrap::default(),
        )
        .unwrap();
        sh_n(&t).unwrap_or_else(|e| panic!("{node} template: {e}"));
    }
}

#[test]
fn the_body_has_no_template_openers() {
    assert!(!BODY.contains("${") && !BODY.contains("%{"));
}

/// The template, filled in the way `templatefile()` fills it, is the same
/// script as the one rendered with the key: so it embeds the file and the
/// unit byte for byte, and has no interpolation but its own three.
#[test]
fn the_template_filled_in_is_the_stand_alone_script() {
    let dep = seed();
    let text = awkward_text();
    let opts = Bootstrap {
        package_url: Some("https://example.com/hafw_1.0_amd64.deb".into()),
        package_sha256: Some("ab".repeat(32)),
    };
    let t = user_data(&dep, &text, "fw-a", KeySource::Terraform, &opts).unwrap();
    let filled = templatefile(
        &t,
        &[
            ("ha_key_b64", &base64(&KEY)),
            ("package_url", "https://example.com/hafw_1.0_amd64.deb"),
            ("package_sha256", &"ab".repeat(32)),
        ],
    )
    .unwrap();
    let s = user_data(&dep, &text, "fw-a", KeySource::Bytes(&KEY), &opts).unwrap();
    assert_eq!(filled, s);
    // A template opener that is not ours would be evaluated by Terraform.
    assert!(templatefile("x ${other} y", &[]).is_err());
    assert!(templatefile("x %{ if a }", &[]).is_err());
}

#[test]
fn refusals_name_the_field_and_the_fix() {
    let dep = seed();
    let text = crate::examples::SEED;
    let d = Bootstrap::default();
    let e = user_data(&dep, text, "fw-z", KeySource::Bytes(&KEY), &d).unwrap_err();
    assert!(e.contains("no [[node]] named `fw-z`"), "{e}");
    let e = user_data(&dep, text, "fw-a", KeySource::Bytes(&KEY[..16]), &d).unwrap_err();
    assert!(e.contains("16 bytes") && e.contains("hafw keygen"), "{e}");
    let bad_url = Bootstrap {
        package_url: Some("http://x/a b'; rm -rf /".into()),
        package_sha256: None,
    };
    let e = user_data(&dep, text, "fw-a", KeySource::Bytes(&KEY), &bad_url).unwrap_err();
    assert!(e.contains("--package-url"), "{e}");
    let bad_sha = Bootstrap {
        package_url: None,
        package_sha256: Some("zz".into()),
    };
    let e = user_data(&dep, text, "fw-a", KeySource::Bytes(&KEY), &bad_sha).unwrap_err();
    assert!(e.contains("64 hex digits"), "{e}");
    assert!(check_host_name("fw_a").is_err());
    assert!(check_host_name("-a").is_err());
    assert!(check_host_name(&"a".repeat(64)).is_err());
    assert!(check_host_name("fw-a").is_ok());
    assert!(check_host_name("fw.a").is_ok());
    assert!(check_host_name("fw..a").is_err());
    assert!(check_host_name("fw a").is_err());
}

#[test]
fn quoting_survives_any_single_quote() {
    assert_eq!(sh_quote("a'b"), r"'a'\''b'");
    assert_eq!(
        template_escape("$${a} ${b} %{c} $ % {"),
        "$$${a} $${b} %%{c} $ % {"
    );
}

// ---- running the script against a temporary root

struct TempRoot(PathBuf);

impl TempRoot {
    fn new(tag: &str) -> TempRoot {
        let p = std::env::temp_dir().join(format!(
            "hafw-bootstrap-{tag}-{}-{}",
            std::process::id(),
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map_or(0, |d| d.as_nanos())
        ));
        std::fs::create_dir_all(&p).unwrap();
        TempRoot(p)
    }
}

impl Drop for TempRoot {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// A stand-in for the hafw binary: answers `--version`.
fn fake_binary(dir: &Path) -> PathBuf {
    let p = dir.join("hafw-download");
    std::fs::write(&p, "#!/bin/sh\necho \"hafw 0.0.0-test\"\n").unwrap();
    std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o755)).unwrap();
    p
}

fn run(script: &str, root: &Path) -> std::process::Output {
    let path = root.join("user-data.sh");
    std::fs::write(&path, script).unwrap();
    Command::new("sh")
        .arg(&path)
        .env("HAFW_BOOTSTRAP_ROOT", root.join("fs"))
        .env("HAFW_BOOTSTRAP_NO_START", "1")
        .output()
        .unwrap()
}

fn mode(p: &Path) -> u32 {
    std::fs::metadata(p).unwrap().mode() & 0o7777
}

#[test]
fn the_script_runs_against_a_temporary_root_and_again() {
    let root = TempRoot::new("run");
    let bin = fake_binary(&root.0);
    let text = awkward_text();
    let opts = Bootstrap {
        package_url: Some(format!("file://{}", bin.display())),
        package_sha256: None,
    };
    let script = user_data(&seed(), &text, "fw-b", KeySource::Bytes(&KEY), &opts).unwrap();
    let fs = root.0.join("fs");
    for pass in 0..2 {
        let out = run(&script, &root.0);
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(out.status.success(), "pass {pass}: {stderr}");
        assert!(stderr.contains("hafw 0.0.0-test at"), "{stderr}");
        assert_eq!(
            std::fs::read(fs.join("etc/hafw/deployment.toml")).unwrap(),
            text.as_bytes()
        );
        assert_eq!(std::fs::read(fs.join("etc/hafw/ha.key")).unwrap(), KEY);
        assert_eq!(
            std::fs::read_to_string(fs.join("etc/hafw/hafw.env")).unwrap(),
            "NODE=fw-b\n"
        );
        assert_eq!(
            std::fs::read_to_string(fs.join("etc/hostname")).unwrap(),
            "fw-b\n"
        );
        assert_eq!(mode(&fs.join("etc/hafw")), 0o700);
        assert_eq!(mode(&fs.join("etc/hafw/ha.key")), 0o600);
        assert_eq!(mode(&fs.join("etc/hafw/deployment.toml")), 0o600);
        assert_eq!(mode(&fs.join("usr/bin/hafw")), 0o755);
        assert_eq!(
            std::fs::metadata(fs.join("etc/hafw/ha.key")).unwrap().uid(),
            0
        );
        let unit = std::fs::read_to_string(fs.join("etc/systemd/system/hafw.service")).unwrap();
        assert!(
            unit.lines()
                .any(|l| l.starts_with("ExecStart=/usr/bin/hafw run ")
                    && l.contains("--node ${NODE}")),
            "{unit}"
        );
        let log = std::fs::read_to_string(fs.join("var/log/hafw-bootstrap.log")).unwrap();
        assert!(log.contains("NO_START=1 (test only)"), "{log}");
        // Nothing half-written is left behind.
        let leftovers: Vec<_> = std::fs::read_dir(fs.join("etc/hafw"))
            .unwrap()
            .filter_map(|e| e.ok())
            .map(|e| e.file_name().to_string_lossy().into_owned())
            .filter(|n| n.contains(".new.") || n.contains(".tmp."))
            .collect();
        assert!(leftovers.is_empty(), "{leftovers:?}");
    }
    // An operator's HAFW_ARGS survive a rerun; a deployment file changed
    // since the first boot (config sync) is kept.
    std::fs::write(
        fs.join("etc/hafw/hafw.env"),
        "HAFW_ARGS=--api 10.0.0.11:9100\nNODE=old\n",
    )
    .unwrap();
    std::fs::write(fs.join("etc/hafw/deployment.toml"), "changed").unwrap();
    let out = run(&script, &root.0);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(
        std::fs::read_to_string(fs.join("etc/hafw/hafw.env")).unwrap(),
        "HAFW_ARGS=--api 10.0.0.11:9100\nNODE=fw-b\n"
    );
    assert_eq!(
        std::fs::read_to_string(fs.join("etc/hafw/deployment.toml")).unwrap(),
        "changed"
    );
    assert!(String::from_utf8_lossy(&out.stderr).contains("kept /etc/hafw/deployment.toml"));
}

/// A download whose checksum is wrong is not installed, and the failure
/// is loud: non-zero exit, FAILED on stderr and in the log.
#[test]
fn a_wrong_checksum_stops_the_script_before_anything_is_installed() {
    let root = TempRoot::new("sha");
    let bin = fake_binary(&root.0);
    let opts = Bootstrap {
        package_url: Some(format!("file://{}", bin.display())),
        package_sha256: Some("0".repeat(64)),
    };
    let script = user_data(
        &seed(),
        crate::examples::SEED,
        "fw-a",
        KeySource::Bytes(&KEY),
        &opts,
    )
    .unwrap();
    let out = run(&script, &root.0);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "{stderr}");
    assert!(
        stderr.contains("FAILED") && stderr.contains("package_sha256"),
        "{stderr}"
    );
    let fs = root.0.join("fs");
    assert!(!fs.join("usr/bin/hafw").exists());
    assert!(!fs.join("etc/hafw/ha.key").exists());
    let log = std::fs::read_to_string(fs.join("var/log/hafw-bootstrap.log")).unwrap();
    assert!(log.contains("FAILED"), "{log}");
}

/// With no package URL and no hafw installed, the script says what to do.
#[test]
fn no_package_and_no_hafw_fails_with_the_fix() {
    let root = TempRoot::new("none");
    let script = user_data(
        &seed(),
        crate::examples::SEED,
        "fw-a",
        KeySource::Bytes(&KEY),
        &Bootstrap::default(),
    )
    .unwrap();
    let path = root.0.join("user-data.sh");
    std::fs::write(&path, &script).unwrap();
    let out = Command::new("sh")
        .arg(&path)
        .env("HAFW_BOOTSTRAP_ROOT", root.0.join("fs"))
        .env("HAFW_BOOTSTRAP_NO_START", "1")
        // A PATH without hafw on it, whatever this machine has installed.
        .env("PATH", "/usr/sbin:/usr/bin:/sbin:/bin")
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    if Path::new("/usr/bin/hafw").exists() || Path::new("/bin/hafw").exists() {
        return; // this machine has hafw on the PATH: the case cannot arise here
    }
    assert!(!out.status.success(), "{stderr}");
    assert!(stderr.contains("set package_url"), "{stderr}");
}

/// More than the cloud's 32 KB of user data is refused, with the fix.
#[test]
fn user_data_over_32_kb_is_refused() {
    let dep = seed();
    let big = format!("{}{}", crate::examples::SEED, "# padding\n".repeat(2000));
    for key in [KeySource::Bytes(&KEY), KeySource::Terraform] {
        let e = user_data(&dep, &big, "fw-a", key, &Bootstrap::default()).unwrap_err();
        assert!(e.contains("32768") && e.contains("shorten it"), "{e}");
    }
    let ok = user_data(
        &dep,
        crate::examples::SEED,
        "fw-a",
        KeySource::Terraform,
        &Bootstrap::default(),
    );
    assert!(ok.is_ok_and(|s| s.len() < USER_DATA_MAX));
}

fn script_for(root: &TempRoot, url: String, sha: Option<String>) -> String {
    let _ = root;
    let opts = Bootstrap {
        package_url: Some(url),
        package_sha256: sha,
    };
    user_data(
        &seed(),
        crate::examples::SEED,
        "fw-a",
        KeySource::Bytes(&KEY),
        &opts,
    )
    .unwrap()
}

/// What was downloaded decides how it is installed, not the URL: a Debian
/// package at a URL with no `.deb` ending (a signed URL ends in its query)
/// is taken for a package (refused under a test root, where apt cannot
/// run), and an error page is refused rather than installed as the binary.
#[test]
fn the_download_is_told_apart_by_its_first_bytes() {
    let root = TempRoot::new("magic");
    let deb = root.0.join("download-signed");
    std::fs::write(&deb, b"!<arch>\ndebian-binary   ").unwrap();
    let out = run(
        &script_for(&root, format!("file://{}", deb.display()), None),
        &root.0,
    );
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "{stderr}");
    assert!(stderr.contains("a .deb cannot be installed"), "{stderr}");

    let page = root.0.join("download-page");
    std::fs::write(&page, "<html>403 Forbidden</html>").unwrap();
    let out = run(
        &script_for(&root, format!("file://{}", page.display()), None),
        &root.0,
    );
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "{stderr}");
    assert!(
        stderr.contains("neither a Debian package nor an ELF binary"),
        "{stderr}"
    );
    assert!(!root.0.join("fs/usr/bin/hafw").exists());
}

/// Plain http with no checksum is refused when the script is rendered,
/// and by the script itself (Terraform's variables reach it unchecked).
#[test]
fn plain_http_needs_a_checksum() {
    let opts = Bootstrap {
        package_url: Some("http://mirror.example/hafw.deb".into()),
        package_sha256: None,
    };
    let e = user_data(
        &seed(),
        crate::examples::SEED,
        "fw-a",
        KeySource::Bytes(&KEY),
        &opts,
    )
    .unwrap_err();
    assert!(
        e.contains("plain http") && e.contains("--package-sha256"),
        "{e}"
    );
    let with_sha = Bootstrap {
        package_sha256: Some("a".repeat(64)),
        ..opts
    };
    assert!(user_data(
        &seed(),
        crate::examples::SEED,
        "fw-a",
        KeySource::Bytes(&KEY),
        &with_sha
    )
    .is_ok());

    let root = TempRoot::new("http");
    let script = user_data(
        &seed(),
        crate::examples::SEED,
        "fw-a",
        KeySource::Bytes(&KEY),
        &Bootstrap {
            package_url: None,
            package_sha256: None,
        },
    )
    .unwrap()
    .replace(
        "HAFW_PACKAGE_URL=''",
        "HAFW_PACKAGE_URL='http://192.0.2.1/hafw'",
    );
    assert!(
        script.contains("192.0.2.1"),
        "the parameter line moved: {script}"
    );
    let out = run(&script, &root.0);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "{stderr}");
    assert!(
        stderr.contains("plain http and no package_sha256"),
        "{stderr}"
    );
}

/// A key rotated by hand since the first boot is kept when the script
/// runs again: putting the old key back would split the pair.
#[test]
fn a_rerun_keeps_a_rotated_key() {
    let root = TempRoot::new("rotate");
    let bin = fake_binary(&root.0);
    let script = script_for(&root, format!("file://{}", bin.display()), None);
    assert!(run(&script, &root.0).status.success());
    let key = root.0.join("fs/etc/hafw/ha.key");
    assert_eq!(std::fs::read(&key).unwrap(), KEY);
    std::fs::write(&key, [7u8; 40]).unwrap();
    let out = run(&script, &root.0);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    assert!(stderr.contains("kept /etc/hafw/ha.key"), "{stderr}");
    assert_eq!(std::fs::read(&key).unwrap(), [7u8; 40]);
}

#[test]
fn a_one_letter_node_cannot_be_a_host_name() {
    assert!(check_host_name("a").is_err());
    assert!(check_host_name("fw-a").is_ok());
}
