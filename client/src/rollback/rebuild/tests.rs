use super::mtree::{escape, joined_lines, unescape};
use super::*;
use crate::pacman::verbose_paths;

const DESC: &str = "%NAME%\nbk\n\n%VERSION%\n2:1.0-3\n\n%BASE%\nbk\n\n%DESC%\nbackup = test\n\n\
    %ARCH%\nany\n\n%BUILDDATE%\n1700000000\n\n%INSTALLDATE%\n1796216828\n\n%SIZE%\n4096\n\n\
    %REASON%\n1\n\n%GROUPS%\ng1\n\n%LICENSE%\nMIT\nGPL\n\n%VALIDATION%\nnone\n\n\
    %DEPENDS%\nlibfoo>=1\n\n%OPTDEPENDS%\napp: for stuff\n\n%PROVIDES%\nbk-virtual=2\n\n";
const FILES: &str = "%FILES%\netc/\netc/bk.conf\netc/my conf\nusr/\n\n\
    %BACKUP%\netc/bk.conf\tf3ea7c1edaeadb419b37f991d051ffb0\netc/my conf\t00\n\n";

#[test]
fn pkginfo_comes_from_desc_and_backup_list() {
    let info = pkginfo(DESC, FILES).unwrap();
    assert_eq!(
        info,
        "# rebuilt by pacsync from the local database\npkgname = bk\npkgbase = bk\n\
         pkgver = 2:1.0-3\npkgdesc = backup = test\nbuilddate = 1700000000\nsize = 4096\n\
         arch = any\nlicense = MIT\nlicense = GPL\ngroup = g1\ndepend = libfoo>=1\n\
         optdepend = app: for stuff\nprovides = bk-virtual=2\nbackup = etc/bk.conf\n\
         backup = etc/my conf\n"
    );
    assert!(pkginfo("%NAME%\nbk\n\n", FILES).is_err());
    // A value that looks like a header is still a value.
    assert_eq!(section("%DESC%\n%NAME%\n\n%NAME%\nx\n", "NAME"), ["x"]);
}

#[test]
fn spec_keeps_metadata_and_takes_dot_files_from_the_database() {
    let mtree = "#mtree\n/set type=file uid=0 gid=0 mode=644\n\
        ./.BUILDINFO time=1.5 size=26 md5digest=aa sha256digest=bb\n\
        ./.INSTALL time=1700000000.1 size=45 md5digest=aa sha256digest=bb\n\
        ./.PKGINFO time=1.5 size=158 md5digest=aa sha256digest=bb\n\
        ./.CHANGELOG time=1.5 size=3 md5digest=aa sha256digest=bb\n\
        ./etc time=1.5 mode=755 type=dir\n\
        ./etc/bk.conf time=1.5 size=6 md5digest=aa sha256digest=bb\n\
        ./etc/my\\040conf time=1.5 size=6 md5digest=aa sha256digest=bb\n\
        /set mode=755\n\
        ./usr/bin/bk time=1.5 mode=4755 uid=12 size=18 md5digest=aa sha256digest=bb\n\
        ./usr/bin/bk-link time=1.5 mode=777 type=link link=bk\n\
        /set type=dir\n./usr/lib time=1.5\n/unset all\n./README time=1.5 size=1\n";
    let dot = DotFiles {
        pkginfo: PathBuf::from("/store/tmp/1/.PKGINFO"),
        mtree: PathBuf::from("/var/lib/pacman/local/bk-2:1.0-3/mtree"),
        install: Some(PathBuf::from("/db dir/install")),
        changelog: None,
    };
    let backup = ["etc/bk.conf".to_owned(), "etc/my conf".to_owned()];
    assert_eq!(
        rewrite_spec(mtree, &backup, &dot, Path::new("/r oot/"), "1700000000"),
        "#mtree\n\
         .PKGINFO type=file uid=0 gid=0 mode=644 time=1700000000 contents=/store/tmp/1/.PKGINFO\n\
         .MTREE type=file uid=0 gid=0 mode=644 time=1700000000 \
         contents=/var/lib/pacman/local/bk-2:1.0-3/mtree\n\
         /set type=file uid=0 gid=0 mode=644\n\
         .INSTALL time=1700000000.1 contents=/db\\040dir/install\n..\n\
         etc time=1.5 mode=755 type=dir\n..\n\
         etc/bk.conf contents=/r\\040oot/etc/bk.conf\n\
         etc/my\\040conf contents=/r\\040oot/etc/my\\040conf\n\
         /set mode=755\n\
         usr/bin/bk time=1.5 mode=4755 uid=12 contents=/r\\040oot/usr/bin/bk\n\
         usr/bin/bk-link time=1.5 mode=777 type=link link=bk\n\
         /set type=dir\n\
         usr/lib time=1.5\n\
         /unset all\n\
         README time=1.5 contents=/r\\040oot/README\n..\n"
    );
}

#[test]
fn mtree_words_escape_and_unescape() {
    assert_eq!(
        escape(Path::new("/a b/c=d#\\é")),
        "/a\\040b/c\\075d\\043\\134\\303\\251"
    );
    assert_eq!(unescape("a\\040b\\075\\303\\251\\s"), "a b=é ".as_bytes());
    assert_eq!(joined_lines("a \\\nb\nc"), ["a b", "c"]);
}

#[test]
fn reads_pacman_output() {
    let header = "Root      : /tmp/r/\nConf File : r/pacman.conf\nDB Path   : /tmp/r/db/\n";
    assert_eq!(
        verbose_paths(header),
        Some((PathBuf::from("/tmp/r/"), PathBuf::from("/tmp/r/db/")))
    );
    assert_eq!(verbose_paths("bk: 7 total files, 0 altered files\n"), None);
    let failed = "warning: bk: /r/usr/bin/bk (MD5 checksum mismatch)\n\
                  warning: bk: /r/usr/bin/bk (SHA256 checksum mismatch)";
    assert_eq!(
        altered_detail(failed).unwrap(),
        "bk: /r/usr/bin/bk (MD5 checksum mismatch); bk: /r/usr/bin/bk (SHA256 checksum mismatch)"
    );
    assert_eq!(altered_detail("error: package 'bk' was not found"), None);
    assert!(summary(&"x\n".repeat(9)).ends_with("; and 4 more"));
}

#[test]
fn an_archived_file_must_carry_the_recorded_bytes() {
    let recorded = "#mtree\n/set type=file uid=0 gid=0 mode=644\n./.PKGINFO sha256digest=aa\n\
                    ./usr type=dir mode=755\n./usr/a sha256digest=11\n./usr/b sha256digest=11\n\
                    ./etc/x.conf sha256digest=22\n";
    let recorded = digests(recorded, &["etc/x.conf".to_owned()]);
    // Hard links: one name carries the bytes; a changed backup file is kept as it is.
    let same = digests(
        "#mtree\n./usr\n./usr/a\n./usr/b sha256digest=11\n./etc/x.conf sha256digest=99\n",
        &[],
    );
    assert_eq!(first_changed(&recorded, &same), None);
    let swapped = digests("#mtree\n./usr/a sha256digest=66\n./usr/b\n", &[]);
    assert_eq!(first_changed(&recorded, &swapped).as_deref(), Some("usr/a"));
    let missing = digests("#mtree\n./usr/a sha256digest=11\n", &[]);
    assert_eq!(first_changed(&recorded, &missing).as_deref(), Some("usr/b"));
}
