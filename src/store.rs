//! Local execution records: one JSON file per execution under `<data dir>/executions/`, so that a later
//! `ferrotype executions show` or `ferrotype redrive` (another process) finds them.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

use anyhow::{bail, Context as _};
use ferrotype_executor::{ExecutionObserver, ExecutionRecord, ExecutionStatus};
use time::OffsetDateTime;

pub struct ExecutionStore {
    dir: PathBuf,
    /// Makes every partial file's name unique: journal writes of one execution may overlap.
    writes: AtomicU64,
}

impl ExecutionStore {
    pub fn open(dir: impl Into<PathBuf>) -> anyhow::Result<ExecutionStore> {
        let dir = dir.into();
        std::fs::create_dir_all(&dir)
            .with_context(|| format!("cannot create {}", dir.display()))?;
        Ok(ExecutionStore {
            dir,
            writes: AtomicU64::new(0),
        })
    }

    /// What a process that was killed left: its RUNNING executions become ABORTED (as AWS shows an
    /// execution whose service stopped; `redrive` resumes them) and its partial files go. Only call it
    /// holding the data directory's lock, so no live process is running them. Returns the names.
    pub fn recover_interrupted(&self) -> anyhow::Result<Vec<String>> {
        for entry in std::fs::read_dir(&self.dir)? {
            let path = entry?.path();
            if path.extension().is_some_and(|ext| ext == "partial") {
                let _ = std::fs::remove_file(&path);
            }
        }
        let mut recovered = Vec::new();
        for mut record in self.list()? {
            if record.mark_interrupted(OffsetDateTime::now_utc()) {
                self.save(&record)?;
                recovered.push(record.options.name.clone());
            }
        }
        Ok(recovered)
    }

    /// Whether a record of this name exists.
    pub fn contains(&self, name: &str) -> bool {
        self.dir.join(format!("{name}.json")).is_file()
    }

    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// Writes the record atomically (a redrive replaces the earlier attempt's record, as AWS keeps one ARN).
    pub fn save(&self, record: &ExecutionRecord) -> anyhow::Result<()> {
        let path = self.dir.join(format!("{}.json", record.options.name));
        let write = self.writes.fetch_add(1, Ordering::Relaxed);
        let partial = self.dir.join(format!(
            "{}.{}-{write}.partial",
            record.options.name,
            std::process::id()
        ));
        let written = std::fs::write(&partial, serde_json::to_vec(record)?)
            .with_context(|| format!("cannot write {}", partial.display()))
            .and_then(|()| {
                std::fs::rename(&partial, &path)
                    .with_context(|| format!("cannot write {}", path.display()))
            });
        if written.is_err() {
            // A full disk: leave no partial file behind; the caller says what could not be kept.
            let _ = std::fs::remove_file(&partial);
        }
        written
    }

    /// Every stored execution, newest first.
    pub fn list(&self) -> anyhow::Result<Vec<ExecutionRecord>> {
        let mut records = Vec::new();
        for entry in std::fs::read_dir(&self.dir)? {
            let path = entry?.path();
            if path.extension().is_some_and(|ext| ext == "json") {
                records.push(read(&path)?);
            }
        }
        records.sort_by(|a, b| {
            b.start_date
                .cmp(&a.start_date)
                .then(b.options.name.cmp(&a.options.name))
        });
        Ok(records)
    }

    pub fn list_with_status(
        &self,
        status: Option<ExecutionStatus>,
    ) -> anyhow::Result<Vec<ExecutionRecord>> {
        let mut records = self.list()?;
        if let Some(status) = status {
            records.retain(|record| record.status == status);
        }
        Ok(records)
    }

    /// An execution by name, by ARN, or by a prefix of its name that only it has.
    pub fn load(&self, id: &str) -> anyhow::Result<ExecutionRecord> {
        let name = id.rsplit(':').next().unwrap_or(id);
        let exact = self.dir.join(format!("{name}.json"));
        if exact.is_file() {
            return read(&exact);
        }
        let matches: Vec<ExecutionRecord> = self
            .list()?
            .into_iter()
            .filter(|record| record.options.name.starts_with(name))
            .collect();
        match matches.len() {
            1 => Ok(matches.into_iter().next().expect("one match")),
            0 => bail!("no execution named {id:?} in {}", self.dir.display()),
            n => bail!(
                "{id:?} names {n} executions ({}…): give more of the name",
                matches
                    .iter()
                    .take(3)
                    .map(|r| r.options.name.as_str())
                    .collect::<Vec<_>>()
                    .join(", ")
            ),
        }
    }
}

/// Journals executions as they run, so a killed process leaves its executions listed and redrivable: the
/// first event at once, then at most one write per execution every [`JOURNAL_INTERVAL`], and the end at
/// once. Rewriting the record on every history event (about forty per execution) cost more than a render.
/// A journal that lags the execution by a few events only makes a redrive after a crash repeat those
/// steps, which every stage allows (docs/CONTRACTS.md).
pub struct Journal {
    store: std::sync::Arc<ExecutionStore>,
    last_write: std::sync::Mutex<std::collections::HashMap<String, std::time::Instant>>,
}

/// How far a running execution's journal may lag behind it.
pub const JOURNAL_INTERVAL: std::time::Duration = std::time::Duration::from_millis(200);

impl Journal {
    pub fn new(store: std::sync::Arc<ExecutionStore>) -> Journal {
        Journal {
            store,
            last_write: Default::default(),
        }
    }

    /// Whether this change of `record` is written now.
    fn due(&self, record: &ExecutionRecord) -> bool {
        let mut last_write = self.last_write.lock().unwrap_or_else(|e| e.into_inner());
        let name = &record.options.name;
        if record.status != ExecutionStatus::Running {
            last_write.remove(name);
            return true;
        }
        let now = std::time::Instant::now();
        match last_write.get(name) {
            Some(at) if now.duration_since(*at) < JOURNAL_INTERVAL => false,
            _ => {
                last_write.insert(name.clone(), now);
                true
            }
        }
    }
}

impl ExecutionObserver for Journal {
    fn record_changed(&self, record: &ExecutionRecord) {
        if !self.due(record) {
            return;
        }
        if let Err(err) = self.store.save(record) {
            tracing::warn!(
                execution = record.options.name,
                "cannot journal the execution: {err:#}"
            );
        }
    }
}

fn read(path: &Path) -> anyhow::Result<ExecutionRecord> {
    let bytes = std::fs::read(path).with_context(|| format!("cannot read {}", path.display()))?;
    serde_json::from_slice(&bytes)
        .with_context(|| format!("{} is not an execution record", path.display()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use ferrotype_executor::ExecutionOptions;

    fn record(name: &str, status: ExecutionStatus) -> ExecutionRecord {
        ExecutionRecord {
            status,
            ..ExecutionRecord::started(
                ExecutionOptions::local("pipeline", name),
                serde_json::json!({}),
                OffsetDateTime::UNIX_EPOCH,
            )
        }
    }

    #[test]
    fn the_journal_writes_a_start_at_once_then_at_most_every_interval_and_always_the_end() {
        let dir = tempfile::tempdir().unwrap();
        let journal = Journal::new(std::sync::Arc::new(
            ExecutionStore::open(dir.path()).unwrap(),
        ));
        let running = record("a", ExecutionStatus::Running);
        assert!(journal.due(&running), "the first event is written at once");
        assert!(
            !journal.due(&running),
            "the next one within the interval waits"
        );
        assert!(
            journal.due(&record("b", ExecutionStatus::Running)),
            "each execution has its own clock"
        );
        assert!(
            journal.due(&record("a", ExecutionStatus::Succeeded)),
            "the end is always written"
        );
        assert!(
            journal.due(&running),
            "a redrive of the ended execution starts at once again"
        );
        std::thread::sleep(JOURNAL_INTERVAL);
        assert!(journal.due(&record("b", ExecutionStatus::Running)));
    }
}
