//! Sinks: for programs that read a file, the token (or the `Authorization` value) of a profile
//! written at every refresh — atomically (a temporary file in the same directory, flushed,
//! then renamed over the old one) and with mode 0600, so a reader never sees half a token and
//! nobody else can read it.

use std::{
    io::{self, Write as _},
    os::unix::fs::OpenOptionsExt as _,
    path::Path,
    sync::Arc,
};

use secrecy::ExposeSecret as _;

use super::{
    settings::{Sink, SinkFormat},
    tokens::Tokens,
};

/// Writes `contents` to `path` atomically, mode 0600.
pub(crate) fn write_atomically(path: &Path, contents: &[u8]) -> io::Result<()> {
    let dir = path
        .parent()
        .filter(|d| !d.as_os_str().is_empty())
        .unwrap_or_else(|| Path::new("."));
    let name = path
        .file_name()
        .ok_or_else(|| io::Error::new(io::ErrorKind::InvalidInput, "the sink has no file name"))?;
    let mut tmp_name = std::ffi::OsString::from(".");
    tmp_name.push(name);
    tmp_name.push(format!(".{}.tmp", std::process::id()));
    let tmp = dir.join(tmp_name);
    let _ = std::fs::remove_file(&tmp);
    let result = (|| {
        let mut file = std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(&tmp)?;
        file.write_all(contents)?;
        file.sync_all()?;
        std::fs::rename(&tmp, path)?;
        // the rename itself is durable once the directory is
        std::fs::File::open(dir)?.sync_all()
    })();
    if result.is_err() {
        let _ = std::fs::remove_file(&tmp);
    }
    result
}

/// Keeps one sink's file current until aborted.
pub(crate) async fn run(sink: Sink, tokens: Arc<Tokens>) {
    let mut changes = match tokens.changes(&sink.profile) {
        Ok(changes) => changes,
        Err(_) => {
            tracing::error!(profile = %sink.profile, path = %sink.path.display(), "the sink's profile is not served; nothing will be written");
            return;
        }
    };
    loop {
        let generation = *changes.borrow_and_update();
        if generation != 0 {
            write(&sink, &tokens).await;
        }
        if changes.changed().await.is_err() {
            return;
        }
    }
}

async fn write(sink: &Sink, tokens: &Tokens) {
    let token = match tokens.token(&sink.profile).await {
        Ok((_, token)) => token,
        Err(_) => return,
    };
    let mut contents = match sink.format {
        SinkFormat::Token => token.secret().expose_secret().as_bytes().to_vec(),
        SinkFormat::Header => token.header_value().as_bytes().to_vec(),
    };
    contents.push(b'\n');
    let path = sink.path.clone();
    let written = tokio::task::spawn_blocking(move || write_atomically(&path, &contents)).await;
    match written {
        Ok(Ok(())) => {
            tracing::info!(profile = %sink.profile, path = %sink.path.display(), "sink written");
        }
        Ok(Err(e)) => {
            tracing::error!(profile = %sink.profile, path = %sink.path.display(), error = %e, "cannot write the sink");
        }
        Err(_) => {}
    }
}

#[cfg(test)]
mod tests {
    use std::os::unix::fs::PermissionsExt as _;

    use super::*;

    #[test]
    fn writes_replace_the_file_whole_with_mode_0600() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("token");
        std::fs::write(&path, "old contents that are longer\n").unwrap();
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o644)).unwrap();
        write_atomically(&path, b"new\n").unwrap();
        assert_eq!(std::fs::read_to_string(&path).unwrap(), "new\n");
        let mode = std::fs::metadata(&path).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600);
        let leftovers: Vec<_> = std::fs::read_dir(dir.path())
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        assert_eq!(leftovers.len(), 1, "no temporary file left: {leftovers:?}");
    }

    #[test]
    fn a_missing_directory_is_an_error_not_a_panic() {
        let dir = tempfile::tempdir().unwrap();
        let err = write_atomically(&dir.path().join("nope/token"), b"x").unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::NotFound);
    }
}
