//! A small spinner on stderr, drawn only when stderr is a terminal.

use std::{
    io::{IsTerminal as _, Write as _},
    time::Duration,
};

use tokio::task::JoinHandle;

/// A spinner; [`Spinner::stop`] (or dropping it) clears its line.
#[derive(Debug)]
pub(crate) struct Spinner {
    task: Option<JoinHandle<()>>,
}

impl Spinner {
    /// Starts spinning beside `message`, if stderr is a terminal.
    pub(crate) fn start(message: impl Into<String>) -> Self {
        if !std::io::stderr().is_terminal() {
            return Self { task: None };
        }
        let message = message.into();
        let task = tokio::spawn(async move {
            const FRAMES: [char; 4] = ['|', '/', '-', '\\'];
            let mut interval = tokio::time::interval(Duration::from_millis(100));
            for frame in FRAMES.iter().cycle() {
                interval.tick().await;
                let mut err = std::io::stderr().lock();
                let _ = write!(err, "\r  {frame} {message}");
                let _ = err.flush();
            }
        });
        Self { task: Some(task) }
    }

    /// Stops and clears the line.
    pub(crate) fn stop(mut self) {
        self.clear();
    }

    fn clear(&mut self) {
        if let Some(task) = self.task.take() {
            task.abort();
            let mut err = std::io::stderr().lock();
            let _ = write!(err, "\r\x1b[2K");
            let _ = err.flush();
        }
    }
}

impl Drop for Spinner {
    fn drop(&mut self) {
        self.clear();
    }
}
