//! Local execution records: one JSON file per execution under `<data dir>/executions/`, so that a later
//! `ferrotype executions show` or `ferrotype redrive` (another process) finds them.

use std::path::{Path, PathBuf};

use anyhow::{bail, Context as _};
use ferrotype_executor::{ExecutionRecord, ExecutionStatus};

pub struct ExecutionStore {
    dir: PathBuf,
}

impl ExecutionStore {
    pub fn open(dir: impl Into<PathBuf>) -> anyhow::Result<ExecutionStore> {
        let dir = dir.into();
        std::fs::create_dir_all(&dir)
            .with_context(|| format!("cannot create {}", dir.display()))?;
        Ok(ExecutionStore { dir })
    }

    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// Writes the record atomically (a redrive replaces the earlier attempt's record, as AWS keeps one ARN).
    pub fn save(&self, record: &ExecutionRecord) -> anyhow::Result<()> {
        let path = self.dir.join(format!("{}.json", record.options.name));
        let partial = path.with_extension("json.partial");
        std::fs::write(&partial, serde_json::to_vec(record)?)
            .with_context(|| format!("cannot write {}", partial.display()))?;
        std::fs::rename(&partial, &path)
            .with_context(|| format!("cannot write {}", path.display()))?;
        Ok(())
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

fn read(path: &Path) -> anyhow::Result<ExecutionRecord> {
    let bytes = std::fs::read(path).with_context(|| format!("cannot read {}", path.display()))?;
    serde_json::from_slice(&bytes)
        .with_context(|| format!("{} is not an execution record", path.display()))
}
