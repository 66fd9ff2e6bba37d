//! `slipd --gen-key PATH` (SPEC §11.2): a new key file, mode 0600, never overwritten.

use std::os::unix::fs::PermissionsExt;
use std::process::Command;

#[test]
fn gen_key_writes_a_private_key_file_and_never_overwrites_it() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("master.key");
    let out = Command::new(env!("CARGO_BIN_EXE_slipd")).arg("--gen-key").arg(&path).output().unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{stdout}{}", String::from_utf8_lossy(&out.stderr));
    assert!(stdout.contains(&path.display().to_string()), "{stdout}");
    assert!(stdout.contains(&format!("[secrets]\nkey_file = \"{}\"", path.display())), "{stdout}");
    let meta = std::fs::metadata(&path).unwrap();
    assert_eq!(meta.permissions().mode() & 0o777, 0o600);
    let key = std::fs::read_to_string(&path).unwrap();
    assert_eq!(key.trim().len(), 64);
    assert!(!stdout.contains(key.trim()), "the key is never printed");
    slip_engine::secrets::MasterKey::load(&path).expect("slipd reads what --gen-key writes");

    let again = Command::new(env!("CARGO_BIN_EXE_slipd")).arg("--gen-key").arg(&path).output().unwrap();
    let stderr = String::from_utf8_lossy(&again.stderr);
    assert!(!again.status.success());
    assert!(stderr.contains("already exists; slipd --gen-key never overwrites a key"), "{stderr}");
    assert_eq!(std::fs::read_to_string(&path).unwrap(), key, "left as it was");
}
