//! Package version ordering with exactly pacman's semantics.
//!
//! This is a port of libalpm's `alpm_pkg_vercmp` (lib/libalpm/version.c). It is hand-ported
//! rather than taken from `alpm-types` because `alpm-types` 0.13 orders some versions differently
//! from pacman's `vercmp` (a missing pkgrel, an explicit `0:` epoch), and pacsync must agree with
//! the tool that actually decides what pacman upgrades. `tests/vercmp_differential.rs` checks this
//! port against the real `vercmp` binary on thousands of generated pairs.

use std::cmp::Ordering;

/// Why a version string is not one pacman would install.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum VersionError {
    /// The version is empty.
    #[error("version is empty")]
    Empty,
    /// The version is longer than any real package version.
    #[error("version is longer than 255 characters")]
    TooLong,
    /// The version contains whitespace, a slash or a non-printable character.
    #[error(
        "version {0:?} contains a character pacman does not allow (whitespace, '/' or non-ASCII)"
    )]
    BadCharacter(String),
    /// The epoch is present but not a number.
    #[error("version {0:?} has an epoch that is not a number")]
    BadEpoch(String),
    /// The pkgver part is empty.
    #[error("version {0:?} has an empty pkgver")]
    EmptyPkgver(String),
}

/// Checks that `version` has the shape `[epoch:]pkgver[-pkgrel]` that pacman accepts.
///
/// pacman itself is lenient; this rejects only what cannot come from a real package database,
/// so that garbage never reaches the content-addressed state store.
pub fn validate_version(version: &str) -> Result<(), VersionError> {
    if version.is_empty() {
        return Err(VersionError::Empty);
    }
    if version.len() > 255 {
        return Err(VersionError::TooLong);
    }
    if !version.bytes().all(|b| b.is_ascii_graphic() && b != b'/') {
        return Err(VersionError::BadCharacter(version.to_owned()));
    }
    let rest = match version.split_once(':') {
        Some((epoch, rest)) => {
            if epoch.is_empty() || !epoch.bytes().all(|b| b.is_ascii_digit()) {
                return Err(VersionError::BadEpoch(version.to_owned()));
            }
            rest
        }
        None => version,
    };
    let pkgver = rest.rsplit_once('-').map_or(rest, |(v, _)| v);
    if pkgver.is_empty() {
        return Err(VersionError::EmptyPkgver(version.to_owned()));
    }
    Ok(())
}

/// Compares two package versions as pacman's `vercmp` does: `Less` means `a` is older.
pub fn vercmp(a: &str, b: &str) -> Ordering {
    if a == b {
        return Ordering::Equal;
    }
    let (epoch_a, ver_a, rel_a) = parse_evr(a.as_bytes());
    let (epoch_b, ver_b, rel_b) = parse_evr(b.as_bytes());
    match rpmvercmp(epoch_a, epoch_b) {
        Ordering::Equal => {}
        other => return other,
    }
    match rpmvercmp(ver_a, ver_b) {
        Ordering::Equal => {}
        other => return other,
    }
    // pacman compares pkgrel only when both sides have one: "1.0" equals "1.0-5".
    match (rel_a, rel_b) {
        (Some(ra), Some(rb)) => rpmvercmp(ra, rb),
        _ => Ordering::Equal,
    }
}

/// Splits `[epoch:]version[-release]` the way libalpm's `parseEVR` does.
fn parse_evr(evr: &[u8]) -> (&[u8], &[u8], Option<&[u8]>) {
    let digits = evr.iter().take_while(|b| b.is_ascii_digit()).count();
    let after_epoch = &evr[digits..];
    // The release separator is the last '-' after the epoch digits.
    let release_sep = after_epoch
        .iter()
        .rposition(|&b| b == b'-')
        .map(|p| p + digits);
    let (epoch, version_start): (&[u8], usize) = if after_epoch.first() == Some(&b':') {
        let epoch = &evr[..digits];
        (if epoch.is_empty() { b"0" } else { epoch }, digits + 1)
    } else {
        (b"0", 0)
    };
    match release_sep {
        Some(sep) => (epoch, &evr[version_start..sep], Some(&evr[sep + 1..])),
        None => (epoch, &evr[version_start..], None),
    }
}

/// RPM's segment-wise comparison, as modified by pacman.
fn rpmvercmp(a: &[u8], b: &[u8]) -> Ordering {
    if a == b {
        return Ordering::Equal;
    }
    let (mut one, mut two) = (0usize, 0usize);
    let (mut ptr1, mut ptr2) = (0usize, 0usize);
    let at = |s: &[u8], i: usize| s.get(i).copied().unwrap_or(0);

    while at(a, one) != 0 && at(b, two) != 0 {
        while at(a, one) != 0 && !at(a, one).is_ascii_alphanumeric() {
            one += 1;
        }
        while at(b, two) != 0 && !at(b, two).is_ascii_alphanumeric() {
            two += 1;
        }
        if at(a, one) == 0 || at(b, two) == 0 {
            break;
        }
        // Separators of different lengths decide the comparison.
        if one - ptr1 != two - ptr2 {
            return if one - ptr1 < two - ptr2 {
                Ordering::Less
            } else {
                Ordering::Greater
            };
        }
        ptr1 = one;
        ptr2 = two;

        let is_num = at(a, ptr1).is_ascii_digit();
        if is_num {
            while at(a, ptr1).is_ascii_digit() {
                ptr1 += 1;
            }
            while at(b, ptr2).is_ascii_digit() {
                ptr2 += 1;
            }
        } else {
            while at(a, ptr1).is_ascii_alphabetic() {
                ptr1 += 1;
            }
            while at(b, ptr2).is_ascii_alphabetic() {
                ptr2 += 1;
            }
        }

        // A numeric segment is newer than an alpha one (the other side's segment is empty).
        if two == ptr2 {
            return if is_num {
                Ordering::Greater
            } else {
                Ordering::Less
            };
        }

        let (mut seg1, mut seg2) = (&a[one..ptr1], &b[two..ptr2]);
        if is_num {
            while seg1.first() == Some(&b'0') {
                seg1 = &seg1[1..];
            }
            while seg2.first() == Some(&b'0') {
                seg2 = &seg2[1..];
            }
            match seg1.len().cmp(&seg2.len()) {
                Ordering::Equal => {}
                other => return other,
            }
        }
        match seg1.cmp(seg2) {
            Ordering::Equal => {}
            other => return other,
        }
        one = ptr1;
        two = ptr2;
    }

    let (c1, c2) = (at(a, one), at(b, two));
    if c1 == 0 && c2 == 0 {
        return Ordering::Equal;
    }
    // A remaining alpha string never beats an empty one: "1.0a" < "1.0", but "1.0.1" > "1.0".
    if (c1 == 0 && !c2.is_ascii_alphabetic()) || c1.is_ascii_alphabetic() {
        Ordering::Less
    } else {
        Ordering::Greater
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use Ordering::*;

    #[test]
    fn orders_like_pacman_documentation() {
        // Examples from vercmp(8) and pacman's own test suite (test/util/vercmptest.sh).
        let cases = [
            ("1.0a", "1.0b", Less),
            ("1.0b", "1.0beta", Less),
            ("1.0beta", "1.0p", Less),
            ("1.0p", "1.0pre", Less),
            ("1.0pre", "1.0rc", Less),
            ("1.0rc", "1.0", Less),
            ("1.0", "1.0.a", Less),
            ("1.0.a", "1.0.1", Less),
            ("1", "1.0", Less),
            ("1.0", "1.1", Less),
            ("1.1", "1.1.1", Less),
            ("1.2", "2.0", Less),
            ("2.0", "3.0.0", Less),
            ("1.5.0", "1.5", Greater),
            ("1.5-1", "1.5", Equal),
            ("1.5", "1.5-2", Equal),
            ("0:1.0", "1.0", Equal),
            ("1:1.0", "2.0", Greater),
            (":1.0", "1.0", Equal),
            ("1.0-1", "1.0-2", Less),
            ("1.0.0-2", "1.0-1", Greater),
            ("1.5.a", "1.5", Greater),
            ("1.5..0", "1.5.0", Greater),
            ("1.5", "1.5_0", Less),
            ("001", "1", Equal),
        ];
        for (a, b, expected) in cases {
            assert_eq!(vercmp(a, b), expected, "vercmp({a}, {b})");
            assert_eq!(vercmp(b, a), expected.reverse(), "vercmp({b}, {a})");
        }
    }

    #[test]
    fn validates_shapes() {
        assert!(validate_version("1:2.3.4-1").is_ok());
        assert!(validate_version("2.3").is_ok());
        assert_eq!(validate_version(""), Err(VersionError::Empty));
        assert!(matches!(
            validate_version("1 2"),
            Err(VersionError::BadCharacter(_))
        ));
        assert!(matches!(
            validate_version("x:1.0"),
            Err(VersionError::BadEpoch(_))
        ));
        assert!(matches!(
            validate_version("1:-1"),
            Err(VersionError::EmptyPkgver(_))
        ));
    }
}
