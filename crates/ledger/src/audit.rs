//! The optional audit trail (`LedgerConfig::record`): one JSON line per publish outcome,
//! expected revision and verdict, appended as it happens, so a failed soak run can be replayed
//! by reading the file rather than trusting the summary.

use std::fs::{File, OpenOptions};
use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::time::{SystemTime, UNIX_EPOCH};

use serde_json::{json, Value};
use tracing::warn;

use crate::LedgerError;

/// Appends JSON lines to a file, or does nothing when no file was asked for.
pub(crate) struct Audit {
    file: Option<(PathBuf, Mutex<File>)>,
}

impl Audit {
    pub(crate) fn open(path: Option<&Path>) -> Result<Audit, LedgerError> {
        let Some(path) = path else { return Ok(Audit { file: None }) };
        let file = OpenOptions::new()
            .create(true)
            .append(true)
            .open(path)
            .map_err(|source| LedgerError::Record { path: path.to_owned(), source })?;
        Ok(Audit { file: Some((path.to_owned(), Mutex::new(file))) })
    }

    /// Appends `event` with the time (ms since the epoch). A failed write is logged, not fatal:
    /// the trail is for people, the accounting lives in memory.
    pub(crate) fn write(&self, mut event: Value) {
        let Some((path, file)) = &self.file else { return };
        let ms = SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_millis() as u64).unwrap_or(0);
        if let Some(obj) = event.as_object_mut() {
            obj.insert("at_ms".into(), json!(ms));
        }
        let mut line = event.to_string();
        line.push('\n');
        let mut f = file.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
        // One write per line on an O_APPEND file: lines never interleave.
        if let Err(e) = f.write_all(line.as_bytes()) {
            warn!(path = %path.display(), error = %e, "cannot append to the ledger's record");
        }
    }
}
