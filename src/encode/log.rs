//! FFmpeg's own log, through tracing, with every URL in it redacted: FFmpeg prints the URLs
//! it opens ("Connection to srt://...?passphrase=... failed"), stream keys and SRT secrets
//! included. Written by hand because ffmpeg-next offers a level, not a callback.

use ffmpeg_next::ffi;
use std::ffi::CStr;
use std::os::raw::{c_char, c_int, c_void};

/// Routes FFmpeg's messages at `level` and above (more severe) through `tracing`.
pub(super) fn install() {
    // SAFETY: the callback is a plain function that only formats its arguments with FFmpeg's
    // own formatter into a local buffer; FFmpeg may call it from any thread.
    unsafe { ffi::av_log_set_callback(Some(callback)) };
}

unsafe extern "C" fn callback(avcl: *mut c_void, level: c_int, fmt: *const c_char, vl: *mut ffi::__va_list_tag) {
    // SAFETY: reading FFmpeg's global level has no preconditions.
    if level > unsafe { ffi::av_log_get_level() } {
        return;
    }
    let mut buf = [0 as c_char; 1024];
    let mut prefix: c_int = 1;
    // SAFETY: the arguments are the ones FFmpeg handed us; the buffer's size is given, and
    // FFmpeg always NUL-terminates what it writes.
    let line = unsafe {
        ffi::av_log_format_line2(avcl, level, fmt, vl, buf.as_mut_ptr(), buf.len() as c_int, &mut prefix);
        CStr::from_ptr(buf.as_ptr())
    };
    let line = crate::secrets::redact_in(line.to_string_lossy().trim_end());
    if line.is_empty() {
        return;
    }
    if level <= ffi::AV_LOG_ERROR {
        tracing::warn!(target: "tessera::ffmpeg", "{line}");
    } else {
        tracing::debug!(target: "tessera::ffmpeg", "{line}");
    }
}
