//! A virtual X display per job: Xvfb picks a free display number itself and writes it
//! to a pipe once it accepts connections (`-displayfd`), so jobs never collide and
//! nothing has to poll for readiness.

use super::BrowserError;
use super::process::Owned;
use std::io::Read;
use std::os::fd::{AsRawFd, FromRawFd};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

pub(crate) struct Display {
    pub name: String,
    _xvfb: Owned,
}

impl Display {
    pub(crate) fn pid(&self) -> u32 {
        self._xvfb.pid()
    }

    /// A screen of `width` x `height` (24-bit).
    pub(crate) fn start(width: u32, height: u32) -> Result<Self, BrowserError> {
        let mut fds = [0; 2];
        if unsafe { libc::pipe(fds.as_mut_ptr()) } != 0 {
            return Err(BrowserError::Io { what: "Xvfb: pipe".into(), source: std::io::Error::last_os_error() });
        }
        let (read_fd, write_fd) = (fds[0], fds[1]);
        // SAFETY: fresh descriptors we own; the read end closes with `reader`.
        let mut reader = unsafe { std::fs::File::from_raw_fd(read_fd) };
        let mut cmd = Command::new("Xvfb");
        cmd.arg("-displayfd")
            .arg(write_fd.to_string())
            .args(["-screen", "0", &format!("{width}x{height}x24"), "-nolisten", "tcp", "-nolisten", "unix"])
            .args(["-noreset", "-ac"])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null());
        let xvfb = Owned::spawn("Xvfb", cmd).map_err(|e| BrowserError::Io {
            what: "cannot start Xvfb (is the xvfb package installed?)".into(),
            source: e,
        });
        unsafe { libc::close(write_fd) };
        let mut xvfb = xvfb?;
        // Xvfb writes "N\n" when ready; a closed pipe without it means it failed.
        let deadline = Instant::now() + Duration::from_secs(10);
        let mut text = String::new();
        set_nonblocking(reader.as_raw_fd());
        let mut buf = [0u8; 32];
        while !text.ends_with('\n') {
            match reader.read(&mut buf) {
                Ok(0) => return Err(BrowserError::Setup("Xvfb exited before it was ready".into())),
                Ok(n) => text.push_str(&String::from_utf8_lossy(&buf[..n])),
                Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {
                    if Instant::now() > deadline || !xvfb.alive() {
                        return Err(BrowserError::Setup("Xvfb did not become ready within 10 s".into()));
                    }
                    std::thread::sleep(Duration::from_millis(10));
                }
                Err(e) => return Err(BrowserError::Io { what: "Xvfb".into(), source: e }),
            }
        }
        Ok(Self { name: format!(":{}", text.trim()), _xvfb: xvfb })
    }
}

fn set_nonblocking(fd: i32) {
    unsafe {
        let flags = libc::fcntl(fd, libc::F_GETFL);
        libc::fcntl(fd, libc::F_SETFL, flags | libc::O_NONBLOCK);
    }
}
