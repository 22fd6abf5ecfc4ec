//! Differential test: our `vercmp` against pacman's real `vercmp` binary.
//!
//! Requires pacman's `vercmp` on PATH (Debian: `pacman-package-manager`); `.ci/run` installs it.
//! The test fails rather than skips when the binary is missing, so CI cannot pass vacuously.

use std::cmp::Ordering;
use std::process::Command;

use pacsync_core::vercmp;

/// A small deterministic generator so failures reproduce from the printed pair.
struct XorShift(u64);

impl XorShift {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
    fn pick<'a>(&mut self, items: &[&'a str]) -> &'a str {
        items[(self.next() % items.len() as u64) as usize]
    }
}

fn random_version(rng: &mut XorShift) -> String {
    let epoch = rng.pick(&["", "", "", "", "0:", "1:", "2:", ":", "10:"]);
    let mut pkgver = String::new();
    let segments = 1 + rng.next() % 4;
    for i in 0..segments {
        if i > 0 {
            pkgver.push_str(rng.pick(&[".", ".", ".", "_", "+", "..", "~"]));
        }
        pkgver.push_str(rng.pick(&[
            "0", "1", "2", "9", "10", "01", "001", "100", "a", "b", "rc", "pre", "alpha", "beta",
            "1a", "2b", "r1", "git", "20240101",
        ]));
    }
    let pkgrel = rng.pick(&["", "", "-1", "-1", "-2", "-10", "-1.1", "-0", "-1.2"]);
    format!("{epoch}{pkgver}{pkgrel}")
}

/// Derives a near neighbour of `v`, so that many pairs differ in one small detail.
fn neighbour(rng: &mut XorShift, v: &str) -> String {
    match rng.next() % 6 {
        0 => format!("0:{v}"),
        1 => v
            .rsplit_once('-')
            .map_or_else(|| format!("{v}-1"), |(a, _)| a.to_owned()),
        2 => format!("{v}{}", rng.pick(&["a", ".1", "1", ".0", "_1", "rc1"])),
        3 => v.replacen('.', rng.pick(&["_", "..", "+"]), 1),
        4 => v.replacen('1', rng.pick(&["01", "2", "0"]), 1),
        _ => random_version(rng),
    }
}

fn real_vercmp(a: &str, b: &str) -> Ordering {
    let out = Command::new("vercmp")
        .arg(a)
        .arg(b)
        .output()
        .expect("pacman's `vercmp` must be installed (apt install pacman-package-manager)");
    let n: i32 = String::from_utf8_lossy(&out.stdout)
        .trim()
        .parse()
        .expect("vercmp prints a number");
    n.cmp(&0)
}

#[test]
fn agrees_with_pacman_vercmp_on_generated_pairs() {
    let mut rng = XorShift(0x5eed_1234_abcd_0042);
    let mut disagreements = Vec::new();
    let pairs = 3000;
    for _ in 0..pairs {
        let a = random_version(&mut rng);
        let b = if rng.next().is_multiple_of(2) {
            neighbour(&mut rng, &a)
        } else {
            random_version(&mut rng)
        };
        let expected = real_vercmp(&a, &b);
        let got = vercmp(&a, &b);
        if got != expected {
            disagreements.push(format!(
                "vercmp({a:?}, {b:?}): pacman {expected:?}, pacsync {got:?}"
            ));
        }
    }
    assert!(
        disagreements.is_empty(),
        "{} of {pairs} pairs disagree:\n{}",
        disagreements.len(),
        disagreements.join("\n")
    );
}

#[test]
fn agrees_on_the_known_alpm_types_disagreements() {
    // The cases where alpm-types 0.13 and pacman differ: missing pkgrel and explicit 0: epochs.
    for (a, b) in [
        ("1.0", "1.0-1"),
        ("1.0-1", "1.0"),
        ("0:1.0-1", "1.0-1"),
        ("0:1.0", "1.0-2"),
        ("1:1.0", "1.0"),
        ("1.0", "0:1.0"),
        ("2.0", "1.0-9"),
    ] {
        assert_eq!(vercmp(a, b), real_vercmp(a, b), "vercmp({a}, {b})");
    }
}
