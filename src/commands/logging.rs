//! The log on stderr, started by each command before its work.

/// The log level when neither the command nor TESSERA_LOG says otherwise.
pub const DEFAULT: &str = "warn,tessera=info";

/// The WebRTC stack (`webrtc` and its `rtc*` crates) warns about every passing state of a
/// healthy connection (SRTP keys not set yet, ICE checks with no pairs yet: dozens per room);
/// its errors still show, and Tessera's own messages say when a connection really fails.
const QUIET: &str = "rtc=error,webrtc=error";

/// Starts the log: `default` (with the WebRTC stack quiet) unless TESSERA_LOG sets a filter,
/// JSON lines when `json`.
pub fn init(default: &str, json: bool) {
    let filter = tracing_subscriber::EnvFilter::try_from_env("TESSERA_LOG")
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(format!("{default},{QUIET}")));
    // Colour only on a terminal: a log file or a pipeline gets plain text (or JSON lines).
    let ansi = std::io::IsTerminal::is_terminal(&std::io::stderr());
    let fmt = tracing_subscriber::fmt().with_env_filter(filter).with_writer(std::io::stderr).with_ansi(ansi);
    if json { fmt.json().flatten_event(true).init() } else { fmt.init() }
}
