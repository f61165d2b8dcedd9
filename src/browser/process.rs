//! Child processes of a browser job (Xvfb, PulseAudio, Chromium). Each starts in a
//! process group of its own, so stopping it stops what it started too (Chromium's
//! renderers), and with a parent-death signal, so if Tessera itself dies its children
//! die with it. The signal follows the thread that spawned the child, so a browser job
//! spawns from its own thread, which lives exactly as long as the job.

use std::os::unix::process::CommandExt;
use std::process::{Child, Command};
use std::time::{Duration, Instant};

/// A child that is stopped (SIGTERM to its group, SIGKILL after a grace) when dropped.
pub(crate) struct Owned {
    /// What it is ("Xvfb", "Chromium"), for the log.
    name: &'static str,
    child: Child,
}

impl Owned {
    pub(crate) fn spawn(name: &'static str, mut cmd: Command) -> std::io::Result<Self> {
        // SAFETY: only async-signal-safe calls between fork and exec.
        unsafe {
            cmd.pre_exec(|| {
                libc::setpgid(0, 0);
                libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL);
                Ok(())
            });
        }
        let child = cmd.spawn()?;
        Ok(Self { name, child })
    }

    pub(crate) fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Whether it is still running.
    pub(crate) fn alive(&mut self) -> bool {
        matches!(self.child.try_wait(), Ok(None))
    }

    /// Stops the whole group: SIGTERM, then SIGKILL after `grace`.
    pub(crate) fn stop(&mut self, grace: Duration) {
        let group = -(self.child.id() as i32);
        if matches!(self.child.try_wait(), Ok(None)) {
            tracing::debug!(process = self.name, pid = self.child.id(), "stopping");
            unsafe { libc::kill(group, libc::SIGTERM) };
            let deadline = Instant::now() + grace;
            while Instant::now() < deadline {
                if !matches!(self.child.try_wait(), Ok(None)) {
                    break;
                }
                std::thread::sleep(Duration::from_millis(20));
            }
        }
        // Whatever is left of the group (Chromium's helpers) goes too.
        unsafe { libc::kill(group, libc::SIGKILL) };
        let _ = self.child.wait();
    }
}

impl Drop for Owned {
    fn drop(&mut self) {
        self.stop(Duration::from_secs(2));
    }
}
