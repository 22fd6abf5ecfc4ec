//! The names of package files: reading a cached file's name, and spelling where the archive
//! keeps a version.
//!
//! An archive location is a URL (or a `file://` path) that pacman downloads and installs as
//! root, built from a template and the plan's name and version. Each substituted value is
//! percent-encoded as one URL path segment, so that no value, however spelled, adds a path
//! segment, a query or a fragment to the location, or a `{placeholder}` for a later
//! substitution; a value that is empty or only dots (a `.`/`..` segment once a URL parser
//! decodes it) gives no location at all. Names and versions that pass `plan_check` need no
//! encoding: letters, digits and `-._~+@:` are left as they are, so the Arch Linux Archive's
//! epoch file names (`vim-2:9.1.0-1-x86_64.pkg.tar.zst`) and local `file://` archives are
//! found as before.

/// The location of `name` `version` for `arch` under an archive URL `template` (see
/// [`crate::config::DEFAULT_ARCHIVE`]), before anyone checks that it exists.
pub fn archive_location(template: &str, name: &str, version: &str, arch: &str) -> Option<String> {
    let first = name.chars().next()?.to_string();
    if [name, version, arch]
        .iter()
        .any(|value| value.is_empty() || value.bytes().all(|b| b == b'.'))
    {
        return None;
    }
    Some(
        template
            .replace("{first}", &path_segment(&first))
            .replace("{name}", &path_segment(name))
            .replace("{version}", &path_segment(version))
            .replace("{arch}", &path_segment(arch)),
    )
}

/// `value` percent-encoded as (part of) one URL path segment: every byte but letters, digits
/// and `-._~+@:` (characters package file names use and a path segment allows as they are).
fn path_segment(value: &str) -> String {
    let mut out = String::with_capacity(value.len());
    for byte in value.bytes() {
        if byte.is_ascii_alphanumeric() || b"-._~+@:".contains(&byte) {
            out.push(char::from(byte));
        } else {
            out.push_str(&format!("%{byte:02X}"));
        }
    }
    out
}

/// `name` and `version` of a package file name, `name-pkgver-pkgrel-arch.pkg.tar.*`; `None` for
/// signatures, partial downloads and anything else.
pub fn parse_package_file_name(file: &str) -> Option<(String, String)> {
    let (stem, compression) = file.split_once(".pkg.tar")?;
    if !(compression.is_empty()
        || [".zst", ".xz", ".gz", ".bz2", ".lz4", ".lzo", ".lrz", ".Z"].contains(&compression))
    {
        return None;
    }
    let mut parts = stem.rsplitn(4, '-');
    let (_arch, pkgrel, pkgver, name) =
        (parts.next()?, parts.next()?, parts.next()?, parts.next()?);
    let version = format!("{pkgver}-{pkgrel}");
    // The Arch Linux Archive and some mirrors spell the epoch colon percent-encoded.
    let version = version.replace("%3A", ":");
    pacsync_core::package::validate_name(name).ok()?;
    pacsync_core::validate_version(&version).ok()?;
    Some((name.to_owned(), version))
}

#[cfg(test)]
mod tests {
    use reqwest::Url;

    use super::*;
    use crate::config::DEFAULT_ARCHIVE;

    fn archive_url(name: &str, version: &str) -> Url {
        let location = archive_location(DEFAULT_ARCHIVE, name, version, "x86_64").unwrap();
        Url::parse(&location).unwrap()
    }

    #[test]
    fn a_real_package_is_located_where_the_arch_linux_archive_keeps_it() {
        assert_eq!(
            archive_url("vim", "2:9.1.0-1").as_str(),
            "https://archive.archlinux.org/packages/v/vim/vim-2:9.1.0-1-x86_64.pkg.tar.zst"
        );
        assert_eq!(
            archive_url("libsigc++", "2.12.1+r3.g1a2b_3~rc1-2.1").path(),
            "/packages/l/libsigc++/libsigc++-2.12.1+r3.g1a2b_3~rc1-2.1-x86_64.pkg.tar.zst"
        );
        assert_eq!(
            archive_location(
                "file:///srv/archive/{name}-{version}-{arch}.pkg.tar.zst",
                "foo",
                "1.0-1",
                "any"
            ),
            Some("file:///srv/archive/foo-1.0-1-any.pkg.tar.zst".into())
        );
    }

    #[test]
    fn no_version_changes_the_archive_path_or_adds_a_query() {
        for version in [
            "1-1%2f..%2f..%2fx",
            "1-1?x#",
            "1-1#frag",
            "1&x=1-1",
            "1-1/../../x",
            "1-1\\..\\x",
            "{name}-1",
        ] {
            let url = archive_url("foo", version);
            assert_eq!(url.host_str(), Some("archive.archlinux.org"), "{version}");
            assert_eq!((url.query(), url.fragment()), (None, None), "{version}");
            let segments: Vec<&str> = url.path_segments().unwrap().collect();
            assert_eq!(segments.len(), 4, "{version}: {url}");
            assert_eq!(&segments[..3], ["packages", "f", "foo"], "{version}: {url}");
            assert!(
                segments[3].starts_with("foo-") && segments[3].ends_with("-x86_64.pkg.tar.zst"),
                "{version}: {url}"
            );
        }
        assert!(
            archive_url("foo", "1-1%2f..").path().contains("1-1%252f.."),
            "a percent sign is itself encoded, never decoded into a slash"
        );
    }

    #[test]
    fn a_value_that_would_be_a_dot_segment_has_no_location() {
        let template = "https://archive.example/{name}/{version}/{name}.pkg.tar.zst";
        for version in ["..", ".", ""] {
            assert_eq!(archive_location(template, "foo", version, "any"), None);
        }
        assert_eq!(archive_location(template, "", "1-1", "any"), None);
    }

    #[test]
    fn package_file_names_give_name_and_version() {
        let parse = parse_package_file_name;
        assert_eq!(
            parse("foo-bar-1.2.3-1-x86_64.pkg.tar.zst"),
            Some(("foo-bar".into(), "1.2.3-1".into()))
        );
        assert_eq!(
            parse("vim-2:9.1.0-1-x86_64.pkg.tar.xz"),
            Some(("vim".into(), "2:9.1.0-1".into()))
        );
        assert_eq!(
            parse("vim-2%3A9.1.0-1-x86_64.pkg.tar.zst"),
            Some(("vim".into(), "2:9.1.0-1".into()))
        );
        assert_eq!(parse("foo-1-1-any.pkg.tar.zst.sig"), None);
        assert_eq!(parse("foo-1-1-any.pkg.tar.zst.part"), None);
        assert_eq!(parse("foo-1-any.pkg.tar.zst"), None);
        assert_eq!(parse("README"), None);
    }
}
