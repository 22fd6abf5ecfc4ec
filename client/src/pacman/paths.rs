//! Where pacman keeps its root and database: what the conflict dry run copies and a rollback
//! copy is rebuilt from.

use std::path::PathBuf;

use super::Pacman;

impl Pacman {
    /// The root and database path pacman really uses: what `pacman -v` says (a `--config` may
    /// set them with `RootDir` and `DBPath`), else what the arguments say.
    pub async fn paths(&self) -> (PathBuf, PathBuf) {
        match self.run(&["-v", "-T"]).await {
            Ok(out) => verbose_paths(&out),
            Err(_) => None,
        }
        .unwrap_or_else(|| pacman_paths(&self.config.args))
    }
}

/// The root and database path pacman uses under `args` (`--root X`/`--root=X`/`-r X`,
/// `--dbpath X`/`--dbpath=X`/`-b X`; defaults `/` and `<root>/var/lib/pacman`).
pub fn pacman_paths(args: &[String]) -> (PathBuf, PathBuf) {
    let (mut root, mut dbpath) = (None, None);
    let mut args = args.iter();
    while let Some(arg) = args.next() {
        // As getopt reads them: the last one counts, and `--` ends the options.
        let (slot, value) = match arg.as_str() {
            "--" => break,
            "--root" | "-r" => (&mut root, args.next().cloned()),
            "--dbpath" | "-b" => (&mut dbpath, args.next().cloned()),
            a => match (a.strip_prefix("--root="), a.strip_prefix("--dbpath=")) {
                (Some(v), _) => (&mut root, Some(v.to_owned())),
                (_, Some(v)) => (&mut dbpath, Some(v.to_owned())),
                _ if !a.starts_with("--") && a.len() > 2 && a.starts_with("-r") => {
                    (&mut root, Some(a[2..].to_owned()))
                }
                _ if !a.starts_with("--") && a.len() > 2 && a.starts_with("-b") => {
                    (&mut dbpath, Some(a[2..].to_owned()))
                }
                _ => continue,
            },
        };
        *slot = value.map(PathBuf::from);
    }
    let root = root.unwrap_or_else(|| PathBuf::from("/"));
    let dbpath = dbpath.unwrap_or_else(|| root.join("var/lib/pacman"));
    (root, dbpath)
}

/// `Root : /` and `DB Path : /var/lib/pacman/` from `pacman -v`'s header.
pub fn verbose_paths(stdout: &str) -> Option<(PathBuf, PathBuf)> {
    let field = |key: &str| {
        stdout.lines().find_map(|line| {
            let (k, v) = line.split_once(" : ")?;
            let v = v.trim();
            (k.trim() == key && v.starts_with('/')).then(|| PathBuf::from(v))
        })
    };
    Some((field("Root")?, field("DB Path")?))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_pacman_paths_as_pacman_does() {
        let args = |a: &[&str]| a.iter().map(|s| s.to_string()).collect::<Vec<_>>();
        let paths = |a: &[&str]| pacman_paths(&args(a));
        let p = PathBuf::from;
        assert_eq!(paths(&[]), (p("/"), p("/var/lib/pacman")));
        assert_eq!(paths(&["--root=/x"]), (p("/x"), p("/x/var/lib/pacman")));
        assert_eq!(paths(&["-r", "/x", "--dbpath", "/d"]), (p("/x"), p("/d")));
        assert_eq!(
            paths(&["--root", "/x", "-b/d", "--config=/c"]),
            (p("/x"), p("/d"))
        );
        assert_eq!(
            paths(&["--dbpath=/d", "--root=/y", "--cachedir=/r"]),
            (p("/y"), p("/d"))
        );
        assert_eq!(paths(&["--", "--root=/x"]), (p("/"), p("/var/lib/pacman")));
    }
}
