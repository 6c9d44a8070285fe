//! The discovery file `runtime.json`: written atomically once the listener is
//! bound, removed on clean shutdown.

use std::fs::{self, File, OpenOptions};
use std::io::{self, Write};
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};

pub const FILE_NAME: &str = "runtime.json";

/// The runtime file this process wrote, so shutdown removes only its own.
#[derive(Debug, Clone)]
pub struct RuntimeFile {
    path: PathBuf,
    content: String,
}

pub fn render(port: u16, pid: u32, token: &str) -> String {
    // serde_json escapes the token; the field order follows the contract.
    let token = serde_json::Value::from(token).to_string();
    format!("{{\"port\": {port}, \"pid\": {pid}, \"token\": {token}}}\n")
}

/// Writes `dir/runtime.json` with mode 0600: a temporary file in the same
/// directory, fsynced, then renamed over the final name, then the directory fsynced.
pub fn write(dir: &Path, port: u16, pid: u32, token: &str) -> io::Result<RuntimeFile> {
    fs::create_dir_all(dir)?;
    let content = render(port, pid, token);
    let path = dir.join(FILE_NAME);
    let tmp = dir.join(format!(".{FILE_NAME}.{pid}.tmp"));
    let result = (|| {
        let mut file = OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(true)
            .mode(0o600)
            .open(&tmp)?;
        // `mode` only applies on creation; a leftover temp file may differ.
        file.set_permissions(fs::Permissions::from_mode(0o600))?;
        file.write_all(content.as_bytes())?;
        file.sync_all()?;
        drop(file);
        fs::rename(&tmp, &path)
    })();
    if let Err(e) = result {
        let _ = fs::remove_file(&tmp);
        return Err(e);
    }
    // Make the rename itself durable; not every filesystem allows this.
    if let Ok(d) = File::open(dir) {
        let _ = d.sync_all();
    }
    Ok(RuntimeFile { path, content })
}

impl RuntimeFile {
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Removes the file if it is still the one this process wrote.
    pub fn remove(&self) {
        match fs::read_to_string(&self.path) {
            Ok(current) if current == self.content => match fs::remove_file(&self.path) {
                Err(e) if e.kind() != io::ErrorKind::NotFound => {
                    eprintln!("wb-engine: cannot remove {}: {e}", self.path.display());
                }
                _ => {}
            },
            Ok(_) => eprintln!(
                "wb-engine: {} was replaced by another process; leaving it",
                self.path.display()
            ),
            Err(e) if e.kind() == io::ErrorKind::NotFound => {}
            Err(e) => eprintln!("wb-engine: cannot read {}: {e}", self.path.display()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn render_is_json_with_contract_fields() {
        let text = render(4000, 7, "a\"b");
        assert_eq!(
            text,
            "{\"port\": 4000, \"pid\": 7, \"token\": \"a\\\"b\"}\n"
        );
        let v: serde_json::Value = serde_json::from_str(&text).unwrap();
        assert_eq!(v["token"], "a\"b");
    }
}
