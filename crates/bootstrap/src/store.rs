//! The state file, `bootstrap.json`: read once at start, rewritten atomically after every change.

use std::collections::BTreeMap;
use std::fs::{self, File};
use std::io::{self, Write};
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::state::{State, Topology};
use crate::Error;

/// The state file's name inside the state directory.
pub const FILE_NAME: &str = "bootstrap.json";
/// The file written and synced before it is renamed over [`FILE_NAME`].
pub const TEMP_NAME: &str = "bootstrap.json.tmp";
/// The layout version written in the file; a file of another version is refused.
const FORMAT: u32 = 1;

/// The file's layout: a version, then the state's fields. (Spelled out rather than
/// `#[serde(flatten)]`, which cannot read the integer keys of `registered` back.)
#[derive(Serialize, Deserialize)]
struct OnDisk {
    format: u32,
    topology: Option<Topology>,
    #[serde(default)]
    join_order: Vec<u64>,
    #[serde(default)]
    registered: BTreeMap<u64, String>,
}

/// Where the state lives on disk.
#[derive(Debug, Clone)]
pub struct Store {
    path: PathBuf,
    temp: PathBuf,
}

impl Store {
    /// The store in `state_dir` (which must exist).
    pub fn new(state_dir: &Path) -> Self {
        Self {
            path: state_dir.join(FILE_NAME),
            temp: state_dir.join(TEMP_NAME),
        }
    }

    /// The state file's path.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Reads the saved state: `None` when there is no file yet (a fresh lab). An unreadable,
    /// unparsable or inconsistent file is an error, never an empty start.
    pub fn load(&self) -> Result<Option<State>, Error> {
        let bytes = match fs::read(&self.path) {
            Ok(bytes) => bytes,
            Err(err) if err.kind() == io::ErrorKind::NotFound => return Ok(None),
            Err(source) => {
                return Err(Error::ReadState {
                    path: self.path.clone(),
                    source,
                })
            }
        };
        let corrupt = |detail: String| Error::CorruptState {
            path: self.path.clone(),
            detail,
        };
        let on_disk: OnDisk =
            serde_json::from_slice(&bytes).map_err(|err| corrupt(err.to_string()))?;
        if on_disk.format != FORMAT {
            return Err(corrupt(format!(
                "format {} is not the supported format {FORMAT}",
                on_disk.format
            )));
        }
        let state = State {
            topology: on_disk.topology,
            join_order: on_disk.join_order,
            registered: on_disk.registered,
        };
        state.check().map_err(corrupt)?;
        Ok(Some(state))
    }

    /// The bytes [`Store::write`] puts on disk for `state`.
    pub fn encode(state: &State) -> Vec<u8> {
        let mut bytes = serde_json::to_vec_pretty(&OnDisk {
            format: FORMAT,
            topology: state.topology.clone(),
            join_order: state.join_order.clone(),
            registered: state.registered.clone(),
        })
        .expect("the state serialises: plain maps, lists, strings and integers");
        bytes.push(b'\n');
        bytes
    }

    /// Replaces the state file with `bytes` atomically: write the temporary file beside it, sync
    /// it, rename it over the state file, then sync the directory so the rename itself is
    /// durable. A crash leaves either the old file or the new one, never a torn one. Blocking:
    /// call it from a blocking thread.
    pub fn write(&self, bytes: &[u8]) -> Result<(), Error> {
        let wrote = |source| Error::WriteState {
            path: self.path.clone(),
            source,
        };
        let mut file = File::create(&self.temp).map_err(wrote)?;
        file.write_all(bytes).map_err(wrote)?;
        file.sync_all().map_err(wrote)?;
        drop(file);
        fs::rename(&self.temp, &self.path).map_err(wrote)?;
        #[cfg(unix)]
        if let Some(dir) = self.path.parent() {
            File::open(dir)
                .and_then(|dir| dir.sync_all())
                .map_err(wrote)?;
        }
        Ok(())
    }
}
