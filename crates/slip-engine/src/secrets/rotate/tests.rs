use std::collections::BTreeMap;
use std::os::unix::fs::PermissionsExt;
use std::panic::AssertUnwindSafe;

use slip_core::names::AppName;

use super::*;
use crate::secrets::Scope;

/// (app, scope, key) → value: what the store must give back whatever happens.
type Expected = BTreeMap<(String, Scope, String), String>;

/// A store sealed with a fresh key file: secrets of two apps in both scopes, and one plain file written by hand.
fn fixture(dir: &Path) -> (PathBuf, PathBuf, Expected) {
    let storage = dir.join("state");
    let key_file = dir.join("secrets.key");
    let key = MasterKey::create_file(&key_file).unwrap();
    let store = SecretStore::new(&storage).with_key(key);
    let mut expected = Expected::new();
    for (app, scope, name, value) in [
        ("web", Scope::App, "DATABASE_URL", "postgres://u:hunter2@db/web"),
        ("web", Scope::App, "API_TOKEN", "tok-0123456789"),
        ("web", Scope::Preview, "DATABASE_URL", "postgres://preview/web"),
        ("api", Scope::App, "SLIP_SECRET", "webhook-key-for-api-0123456789"),
    ] {
        store.set(&app.parse().unwrap(), scope, &name.parse().unwrap(), value).unwrap();
        expected.insert((app.into(), scope, name.into()), value.into());
    }
    std::fs::write(storage.join("secrets/api/ECHOED"), "written-by-hand\n").unwrap();
    expected.insert(("api".into(), Scope::App, "ECHOED".into()), "written-by-hand".into());
    (storage, key_file, expected)
}

/// Every expected secret, read as slipd would read it at start-up (the key file and any `.new` key).
fn assert_readable(storage: &Path, key_file: &Path, expected: &Expected, context: &str) {
    let store = load_keys(key_file).unwrap_or_else(|e| panic!("{context}: {e}")).store(storage);
    for ((app, scope, name), value) in expected {
        let app: AppName = app.parse().unwrap();
        let got = store.value(&app, *scope, &name.parse().unwrap());
        let got = got.unwrap_or_else(|e| panic!("{context}: {app}/{scope}/{name}: {e:#}"));
        assert_eq!(got.map(|v| v.expose().to_owned()).as_deref(), Some(value.as_str()), "{context}: {name}");
    }
}

/// The key ids the store's files are sealed with (`plain` for a plain file).
fn sealed_ids(storage: &Path, expected: &Expected) -> Vec<String> {
    expected
        .keys()
        .map(|(app, scope, name)| {
            let dir = if *scope == Scope::Preview { format!("{app}/.preview") } else { app.clone() };
            let text = std::fs::read_to_string(storage.join("secrets").join(dir).join(name)).unwrap();
            crate::secrets::crypto::sealed_with(&text).unwrap_or("plain").to_owned()
        })
        .collect()
}

#[test]
fn a_rotation_reseals_every_secret_and_swaps_the_key_file() {
    let dir = tempfile::tempdir().unwrap();
    let (storage, key_file, expected) = fixture(dir.path());
    let old = MasterKey::load(&key_file).unwrap();
    let mut stages = Vec::new();
    let rotated = rotate(&storage, &key_file, &mut |stage| stages.push(stage)).unwrap();

    let new = MasterKey::load(&key_file).unwrap();
    assert_ne!(new.id(), old.id());
    assert_eq!(
        rotated,
        Rotated { old_id: old.id().into(), new_id: new.id().into(), resumed: false, resealed: 5, total: 5 }
    );
    assert_eq!(stages.first(), Some(&Stage::NewKeyWritten));
    assert_eq!(&stages[stages.len() - 2..], &[Stage::Verified, Stage::Swapped]);
    assert_eq!(sealed_ids(&storage, &expected), vec![new.id().to_owned(); 5], "the hand-written file is sealed too");
    assert_readable(&storage, &key_file, &expected, "after the rotation");
    assert_eq!(std::fs::metadata(&key_file).unwrap().permissions().mode() & 0o777, 0o600);
    let left: Vec<String> =
        std::fs::read_dir(dir.path()).unwrap().map(|e| e.unwrap().file_name().into_string().unwrap()).collect();
    assert!(!left.iter().any(|n| n.contains(".new")), "no pending key is left: {left:?}");

    let with_old = SecretStore::new(&storage).with_key(old);
    let err = with_old.value(&"web".parse().unwrap(), Scope::App, &"API_TOKEN".parse().unwrap()).unwrap_err();
    assert!(slip_core::error_chain::error_chain(&err).contains("was encrypted with key id"), "{err}");
}

#[test]
fn a_rotation_stopped_at_any_point_leaves_every_secret_readable_and_running_it_again_finishes_it() {
    // How many stages a whole rotation has.
    let probe = tempfile::tempdir().unwrap();
    let (storage, key_file, _) = fixture(probe.path());
    let mut stages = 0;
    rotate(&storage, &key_file, &mut |_| stages += 1).unwrap();
    assert_eq!(stages, 1 + 5 + 2);

    for stop in 0..stages {
        let dir = tempfile::tempdir().unwrap();
        let (storage, key_file, expected) = fixture(dir.path());
        let old = MasterKey::load(&key_file).unwrap();
        // As a crash would: the rotation goes no further than the stage, and nothing of it is undone.
        let mut seen = 0;
        let crashed = std::panic::catch_unwind(AssertUnwindSafe(|| {
            rotate(&storage, &key_file, &mut |stage| {
                if seen == stop {
                    panic!("crash at {stage:?}");
                }
                seen += 1;
            })
        }));
        assert!(crashed.is_err(), "stop {stop}: the rotation was interrupted");
        let context = format!("stopped at stage {stop}");
        assert_readable(&storage, &key_file, &expected, &context);
        let keys = load_keys(&key_file).unwrap();
        let new_id = keys.pending.as_ref().map(|(k, _)| k.id().to_owned());
        // The new key is `.new` until the swap, then the key file's.
        let on_disk = [Some(keys.current.id().to_owned()), new_id.clone()];
        for id in sealed_ids(&storage, &expected) {
            assert!(
                on_disk.contains(&Some(id.clone())) || id == "plain",
                "{context}: a file sealed with {id}, which no key file holds"
            );
        }
        assert_eq!(keys.current.id() == old.id(), stop < stages - 1, "{context}: the key file swaps last");

        let again = rotate(&storage, &key_file, &mut |_| {}).unwrap();
        let context = format!("{context}, then run again");
        let final_key = MasterKey::load(&key_file).unwrap();
        if stop < stages - 1 {
            assert!(again.resumed, "{context}");
            assert_eq!(Some(final_key.id().to_owned()), new_id, "{context}: it finishes with the key it started");
        }
        assert_eq!(sealed_ids(&storage, &expected), vec![final_key.id().to_owned(); 5], "{context}");
        assert_readable(&storage, &key_file, &expected, &context);
        assert!(load_keys(&key_file).unwrap().pending.is_none(), "{context}");
    }
}

#[test]
fn a_half_written_new_key_is_replaced_and_a_secret_no_key_opens_stops_before_the_swap() {
    let dir = tempfile::tempdir().unwrap();
    let (storage, key_file, mut expected) = fixture(dir.path());
    let old = MasterKey::load(&key_file).unwrap();
    // A crash while the new key was being written leaves only its temp file: no secret was sealed with it.
    std::fs::write(dir.path().join("secrets.key.new.tmp"), "0123").unwrap();
    // A file sealed with a key this host does not have cannot be re-sealed: the rotation must not go on.
    let stranger = SecretStore::new(&storage).with_key(MasterKey::from_bytes([9; 32]));
    stranger.set(&"web".parse().unwrap(), Scope::App, &"FOREIGN".parse().unwrap(), "from-another-host").unwrap();

    let err = rotate(&storage, &key_file, &mut |_| {}).unwrap_err();
    let text = slip_core::error_chain::error_chain(&err);
    assert!(text.contains("FOREIGN of app web was encrypted with key id"), "{text}");
    assert!(text.contains("run slipd --rotate-key again"), "{text}");
    assert!(!text.contains("from-another-host"), "{text}");
    assert_eq!(MasterKey::load(&key_file).unwrap().id(), old.id(), "the key file is untouched");
    assert!(!dir.path().join("secrets.key.new.tmp").exists(), "the stale temp file is gone");
    assert_readable(&storage, &key_file, &expected, "after the refused rotation");

    std::fs::remove_file(storage.join("secrets/web/FOREIGN")).unwrap();
    let pending = load_keys(&key_file).unwrap().pending.expect("the new key waits").0;
    let done = rotate(&storage, &key_file, &mut |_| {}).unwrap();
    assert!(done.resumed);
    assert_eq!(done.new_id, pending.id());
    expected.retain(|(_, _, name), _| name != "FOREIGN");
    assert_readable(&storage, &key_file, &expected, "after the second run");
}

#[test]
fn a_key_file_behind_a_symlink_is_replaced_where_it_lives() {
    let dir = tempfile::tempdir().unwrap();
    let (storage, real, expected) = fixture(dir.path());
    let link = dir.path().join("link.key");
    std::os::unix::fs::symlink(&real, &link).unwrap();
    let rotated = rotate(&storage, &link, &mut |_| {}).unwrap();
    assert!(std::fs::symlink_metadata(&link).unwrap().file_type().is_symlink(), "the link stays a link");
    assert_eq!(MasterKey::load(&real).unwrap().id(), rotated.new_id);
    assert_readable(&storage, &link, &expected, "through the link");
}

#[test]
fn rewritten_files_keep_the_stores_owner() {
    use std::os::unix::fs::MetadataExt;
    if !rustix::process::geteuid().is_root() {
        panic!("this test chowns files and needs root, as the rest of the suite does");
    }
    let dir = tempfile::tempdir().unwrap();
    let (storage, key_file, expected) = fixture(dir.path());
    // As after `chown -R slip:` of the store: slipd's user, not root who runs the rotation.
    let (uid, gid) = (4242, 4343);
    let mut pending = vec![storage.join("secrets")];
    while let Some(path) = pending.pop() {
        std::os::unix::fs::lchown(&path, Some(uid), Some(gid)).unwrap();
        if path.is_dir() {
            pending.extend(std::fs::read_dir(&path).unwrap().map(|e| e.unwrap().path()));
        }
    }
    rotate(&storage, &key_file, &mut |_| {}).unwrap();
    for (app, scope, name) in expected.keys() {
        let dir = if *scope == Scope::Preview { format!("{app}/.preview") } else { app.clone() };
        let meta = std::fs::metadata(storage.join("secrets").join(dir).join(name)).unwrap();
        assert_eq!((meta.uid(), meta.gid()), (uid, gid), "{app}/{name}");
    }
}
