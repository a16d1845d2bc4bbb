//! `hafw plan user-data` and `hafw plan terraform -o` as an operator runs
//! them: the script carries the key and parses; the Terraform directory
//! holds each node's template beside main.tf; bad input is refused with
//! the fix and exit 2.

mod common;

use std::path::PathBuf;
use std::process::Command;

use common::*;

struct TempDir(PathBuf);

impl TempDir {
    fn new(label: &str) -> TempDir {
        let p = std::env::temp_dir().join(unique(&format!("hafw-plan-{label}-")));
        std::fs::create_dir_all(&p).unwrap();
        TempDir(p)
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

#[test]
fn user_data_carries_the_key_and_parses() {
    let dir = TempDir::new("ud");
    let key = dir.0.join("ha.key");
    let out = Command::new(hafw())
        .arg("keygen")
        .arg(&key)
        .output()
        .unwrap();
    assert!(out.status.success(), "{out:?}");
    let out = Command::new(hafw())
        .args(["plan", "user-data"])
        .arg(example("alicloud-havip.toml"))
        .args(["--node", "fw-b", "--key-file"])
        .arg(&key)
        .args(["--package-url", "https://example.com/hafw_0.1.0_amd64.deb"])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let script = String::from_utf8(out.stdout).unwrap();
    assert!(script.starts_with("#!/bin/sh\n"));
    assert!(script.contains("HAFW_NODE='fw-b'\n"));
    assert!(script.contains("HAFW_PACKAGE_URL='https://example.com/hafw_0.1.0_amd64.deb'\n"));
    let b64 = Command::new("base64")
        .arg("-w0")
        .arg(&key)
        .output()
        .unwrap();
    let b64 = String::from_utf8(b64.stdout).unwrap();
    assert!(script.contains(&format!("HAFW_KEY_B64='{b64}'\n")));
    let path = dir.0.join("user-data.sh");
    std::fs::write(&path, &script).unwrap();
    let check = Command::new("sh").arg("-n").arg(&path).output().unwrap();
    assert!(check.status.success(), "{check:?}");

    // An unknown node and a short key are refused, with the fix.
    let out = Command::new(hafw())
        .args(["plan", "user-data"])
        .arg(example("alicloud-havip.toml"))
        .args(["--node", "fw-z", "--key-file"])
        .arg(&key)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("no [[node]] named `fw-z`"));
    let short = dir.0.join("short.key");
    std::fs::write(&short, [7u8; 16]).unwrap();
    let out = Command::new(hafw())
        .args(["plan", "user-data"])
        .arg(example("alicloud-havip.toml"))
        .args(["--node", "fw-a", "--key-file"])
        .arg(&short)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("hafw keygen"));
}

#[test]
fn terraform_writes_each_nodes_template_beside_main_tf() {
    let dir = TempDir::new("tf");
    let out = Command::new(hafw())
        .args(["plan", "terraform"])
        .arg(example("alicloud-one-arm.toml"))
        .arg("-o")
        .arg(&dir.0)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let mut names: Vec<String> = std::fs::read_dir(&dir.0)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    assert_eq!(
        names,
        [
            "main.tf",
            "outputs.tf",
            "user-data-fw-a.sh.tftpl",
            "user-data-fw-b.sh.tftpl",
            "variables.tf"
        ]
    );
    let main = std::fs::read_to_string(dir.0.join("main.tf")).unwrap();
    assert!(main.contains("\"user-data-fw-a.sh.tftpl\""));
    let t = std::fs::read_to_string(dir.0.join("user-data-fw-a.sh.tftpl")).unwrap();
    assert!(t.contains("HAFW_KEY_B64='${ha_key_b64}'\n"), "{t}");
}
