//! Which processing configuration a command uses: `--config PATH`, else a `ferrotype.json` in the
//! current folder (as cdk.json or Cargo.toml are found), else the one the binary was built with. Every
//! command that renders says which one it used.

use std::fmt;
use std::path::{Path, PathBuf};

use anyhow::Context as _;
use ferrotype::local::SHIPPED_CONFIG;
use ferrotype_core::config::Config;

/// The file name looked for in the current folder.
pub const CONFIG_FILE_NAME: &str = "ferrotype.json";

/// Where the configuration came from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ConfigOrigin {
    /// Given with `--config`.
    Flag(PathBuf),
    /// `./ferrotype.json`.
    CurrentFolder(PathBuf),
    /// Built into the binary (the repository's ferrotype.json when it was compiled).
    Shipped,
}

impl fmt::Display for ConfigOrigin {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ConfigOrigin::Flag(path) | ConfigOrigin::CurrentFolder(path) => {
                write!(f, "{}", path.display())
            }
            ConfigOrigin::Shipped => write!(
                f,
                "the built-in configuration (no ./{CONFIG_FILE_NAME}; --config PATH to use another)"
            ),
        }
    }
}

/// A configuration and where it came from.
#[derive(Debug, Clone)]
pub struct LoadedConfig {
    pub config: Config,
    pub origin: ConfigOrigin,
}

/// Loads the configuration the command line asks for (`explicit`), else `./ferrotype.json`, else the
/// shipped one. A file that exists but cannot be read or is invalid is an error, never silently skipped.
pub fn load_config(explicit: Option<&Path>) -> anyhow::Result<LoadedConfig> {
    let origin = match explicit {
        Some(path) => ConfigOrigin::Flag(path.to_path_buf()),
        None => {
            let local = Path::new(CONFIG_FILE_NAME);
            if local.exists() {
                ConfigOrigin::CurrentFolder(local.to_path_buf())
            } else {
                ConfigOrigin::Shipped
            }
        }
    };
    let config = match &origin {
        ConfigOrigin::Flag(path) | ConfigOrigin::CurrentFolder(path) => {
            let text = std::fs::read_to_string(path)
                .with_context(|| format!("cannot read the configuration {}", path.display()))?;
            Config::from_json(&text).with_context(|| format!("in {}", path.display()))?
        }
        ConfigOrigin::Shipped => {
            Config::from_json(SHIPPED_CONFIG).context("the built-in configuration")?
        }
    };
    Ok(LoadedConfig { config, origin })
}
