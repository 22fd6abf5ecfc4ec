//! Retention: which kept copies the endpoint's recent states still refer to.

use std::collections::HashSet;

use super::*;

impl RollbackStore {
    /// Remembers one reported state (its (name, version) pairs), keeping only the last
    /// `keep_states` records, then deletes kept packages (and refusals) whose (name, version)
    /// no remembered state references. Returns what was deleted.
    pub fn record_state_and_prune(
        &self,
        packages: &[(String, String)],
    ) -> io::Result<Vec<(String, String)>> {
        let states = self.dir.join(STATES);
        create_dir(&states)?;
        let mut numbers: Vec<u64> = entries(&states)?
            .iter()
            .filter_map(|(file, _)| file.strip_suffix(".json")?.parse().ok())
            .collect();
        numbers.sort_unstable();
        // The agent reports the same state many times (at start, after each hook): a state
        // counts once, or a few idle reports would push every real change out.
        let last = numbers.last().map(|n| states.join(state_file(*n)));
        let unchanged = last
            .and_then(|path| std::fs::read(path).ok())
            .and_then(|bytes| serde_json::from_slice::<Vec<(String, String)>>(&bytes).ok())
            .is_some_and(|recorded| recorded == packages);
        if !unchanged {
            let next = numbers.last().map_or(1, |n| n + 1);
            write_atomic(
                &states.join(state_file(next)),
                &serde_json::to_vec(packages)?,
            )?;
            numbers.push(next);
        }
        let (old, remembered) =
            numbers.split_at(numbers.len().saturating_sub(self.keep_states.max(1)));
        for number in old {
            remove(&states.join(state_file(*number)))?;
        }
        let mut referenced = HashSet::new();
        for number in remembered {
            let path = states.join(state_file(*number));
            let pairs: Vec<(String, String)> = serde_json::from_slice(&std::fs::read(&path)?)
                .map_err(|e| {
                    io::Error::new(
                        io::ErrorKind::InvalidData,
                        format!("{}: {e}", path.display()),
                    )
                })?;
            referenced.extend(pairs);
        }
        let mut deleted = Vec::new();
        for (pair, path) in self.kept().into_iter().chain(self.refusals()) {
            if !referenced.contains(&pair) {
                remove(&path)?;
                deleted.push(pair);
            }
        }
        self.remove_stale_work();
        deleted.sort();
        deleted.dedup();
        Ok(deleted)
    }

    /// Kept packages with their files.
    pub(super) fn kept(&self) -> Vec<((String, String), PathBuf)> {
        entries(&self.dir.join(PACKAGES))
            .unwrap_or_default()
            .into_iter()
            .filter_map(|(file, path)| {
                let (stem, suffix) = file.rsplit_once(".pkg.tar")?;
                SUFFIXES.contains(&suffix).then_some(())?;
                Some((parse_stem(stem)?, path))
            })
            .collect()
    }

    /// Recorded refusals with their files.
    fn refusals(&self) -> Vec<((String, String), PathBuf)> {
        entries(&self.dir.join(REFUSED))
            .unwrap_or_default()
            .into_iter()
            .filter_map(|(file, path)| Some((parse_stem(file.strip_suffix(".txt")?)?, path)))
            .collect()
    }

    /// Work directories a crashed agent left behind.
    fn remove_stale_work(&self) {
        for (_, path) in entries(&self.dir.join(WORK)).unwrap_or_default() {
            let age = std::fs::metadata(&path)
                .and_then(|m| m.modified())
                .ok()
                .and_then(|t| SystemTime::now().duration_since(t).ok());
            if age.is_some_and(|age| age > STALE_WORK) {
                let _ = std::fs::remove_dir_all(&path);
            }
        }
    }
}
