use super::*;

fn store(test: &str, keep: usize) -> RollbackStore {
    let dir = std::env::temp_dir().join(format!("pacsync-rollback-{test}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    RollbackStore::new(dir, keep)
}

fn put(store: &RollbackStore, file: &str, bytes: usize) {
    create_dir(&store.dir().join(PACKAGES)).unwrap();
    std::fs::write(store.dir().join(PACKAGES).join(file), vec![0; bytes]).unwrap();
}

fn pair(name: &str, version: &str) -> (String, String) {
    (name.to_owned(), version.to_owned())
}

#[test]
fn finds_lists_and_measures_kept_packages() {
    let store = store("find", 5);
    put(&store, "bk-2:1.0-3.pkg.tar.zst", 10);
    put(&store, "lib-foo-1.2-1.pkg.tar.xz", 5);
    put(&store, ".12-0.tmp", 7);
    put(&store, "notes.txt", 7);
    assert_eq!(
        store.find("bk", "2:1.0-3"),
        Some(store.dir().join("packages/bk-2:1.0-3.pkg.tar.zst"))
    );
    assert!(
        store
            .find("lib-foo", "1.2-1")
            .unwrap()
            .ends_with("lib-foo-1.2-1.pkg.tar.xz")
    );
    assert_eq!(store.find("bk", "2:1.0-4"), None);
    assert_eq!(store.find("../bk", "2:1.0-3"), None);
    assert_eq!(
        store.list(),
        [pair("bk", "2:1.0-3"), pair("lib-foo", "1.2-1")]
    );
    assert_eq!(store.usage(), (2, 15));
    assert_eq!(store.refusal("bk", "1-1"), None);
    create_dir(&store.dir().join(REFUSED)).unwrap();
    write_atomic(
        &store.dir().join("refused/bk-1-1.txt"),
        b"cannot keep bk 1-1: x\n",
    )
    .unwrap();
    assert_eq!(
        store.refusal("bk", "1-1").as_deref(),
        Some("cannot keep bk 1-1: x")
    );
    assert_eq!(stem(".x", "1-1"), None);
    assert_eq!(stem("x", "a/b"), None);
    assert_eq!(parse_stem("bk-2:1.0-3"), Some(pair("bk", "2:1.0-3")));
    assert_eq!(parse_stem("bk-3"), None);
    std::fs::remove_dir_all(store.dir()).unwrap();
}

#[test]
fn pruning_keeps_what_the_last_states_reference() {
    let store = store("prune", 2);
    put(&store, "a-1-1.pkg.tar.zst", 1);
    put(&store, "a-2-1.pkg.tar.zst", 1);
    put(&store, "b-1-1.pkg.tar.zst", 1);
    create_dir(&store.dir().join(REFUSED)).unwrap();
    write_atomic(&store.dir().join("refused/c-1-1.txt"), b"no").unwrap();
    let deleted = store
        .record_state_and_prune(&[pair("a", "1-1"), pair("c", "1-1")])
        .unwrap();
    assert_eq!(deleted, [pair("a", "2-1"), pair("b", "1-1")]);
    assert!(store.refusal("c", "1-1").is_some());
    // a 1-1 and c 1-1 stay while one of the last two states names them.
    assert!(
        store
            .record_state_and_prune(&[pair("a", "3-1")])
            .unwrap()
            .is_empty()
    );
    put(&store, "a-3-1.pkg.tar.zst", 1);
    // The same state again is not a new one: nothing moves out.
    assert!(
        store
            .record_state_and_prune(&[pair("a", "3-1")])
            .unwrap()
            .is_empty()
    );
    assert_eq!(
        store
            .record_state_and_prune(&[pair("a", "3-1"), pair("d", "1-1")])
            .unwrap(),
        [pair("a", "1-1"), pair("c", "1-1")]
    );
    assert_eq!(store.list(), [pair("a", "3-1")]);
    let states = entries(&store.dir().join(STATES)).unwrap();
    let mut names: Vec<_> = states.into_iter().map(|(f, _)| f).collect();
    names.sort();
    assert_eq!(names, [state_file(2), state_file(3)]);
    // A damaged record stops pruning instead of losing copies.
    std::fs::write(store.dir().join(STATES).join(state_file(3)), "{").unwrap();
    assert!(store.record_state_and_prune(&[]).is_err());
    assert_eq!(store.list(), [pair("a", "3-1")]);
    std::fs::remove_dir_all(store.dir()).unwrap();
}
