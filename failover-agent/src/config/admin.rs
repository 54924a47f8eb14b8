//! `[admin]`: the admin-state file and the control socket.

use std::path::PathBuf;

use super::file::AdminFile;
use crate::field::{FieldError, field_err};

/// Where the agent's control socket listens unless told otherwise.
pub const DEFAULT_CONTROL_SOCKET: &str = "/run/failover-agent.sock";

/// `[admin]`, validated.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Admin {
    pub state_file: Option<PathBuf>,
    /// None: no control socket.
    pub control_socket: Option<PathBuf>,
    /// `control_socket` is the default (another agent may hold it: then
    /// this one runs without, with a warning).
    pub control_socket_is_default: bool,
}

impl Default for Admin {
    fn default() -> Self {
        Admin {
            state_file: None,
            control_socket: Some(PathBuf::from(DEFAULT_CONTROL_SOCKET)),
            control_socket_is_default: true,
        }
    }
}

pub(super) fn admin_value(admin: &AdminFile) -> Result<Admin, FieldError> {
    let path = |field: &str, text: &str| -> Result<PathBuf, FieldError> {
        if text.contains('\0') {
            return Err(field_err(field, "a path cannot contain NUL"));
        }
        let path = PathBuf::from(text);
        if !path.is_absolute() {
            return Err(field_err(
                field,
                format!(
                    "{text} must be an absolute path (the agent may run from any directory)",
                    text = crate::field::quoted(text)
                ),
            ));
        }
        Ok(path)
    };
    let state_file = match admin.state_file.as_deref() {
        None => None,
        Some("") => {
            return Err(field_err(
                "admin.state_file",
                "empty path (leave the key out for none)",
            ));
        }
        Some(text) => {
            let file = path("admin.state_file", text)?;
            // The agent creates and rewrites it: only something that exists
            // and is not a file (a FIFO, a device, a directory) is wrong.
            if let Ok(metadata) = std::fs::metadata(&file)
                && !metadata.is_file()
            {
                return Err(field_err(
                    "admin.state_file",
                    format!("{} exists and is not a regular file", file.display()),
                ));
            }
            Some(file)
        }
    };
    let (control_socket, control_socket_is_default) = match admin.control_socket.as_deref() {
        None => (Admin::default().control_socket, true),
        Some("") => (None, false),
        Some(text) => (Some(path("admin.control_socket", text)?), false),
    };
    Ok(Admin {
        state_file,
        control_socket,
        control_socket_is_default,
    })
}
