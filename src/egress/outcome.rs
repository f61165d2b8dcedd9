//! How an egress ends: its final status, error, code and details, decided from what
//! happened. A pure function, so each of LiveKit's cases is a row in a table test.

use crate::recording::EndReason;
use livekit_protocol::EgressStatus as S;
use std::time::Duration;

/// Why an egress was asked to stop.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum StopReason {
    /// StopEgress.
    Api,
    /// UpdateStream removed the last stream of an egress that only streams.
    AllStreamsStopped,
    /// The service is shutting down and its drain time is over.
    ProcessKilled,
}

impl StopReason {
    /// In LiveKit's words, as `EgressInfo.details` gives it ("End reason: ...").
    pub(crate) fn as_livekit(self) -> &'static str {
        match self {
            StopReason::Api => "StopEgress API",
            StopReason::AllStreamsStopped => "All streams stopped",
            StopReason::ProcessKilled => "Process killed",
        }
    }
}

/// What happened to a recording, as the job saw it.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Ran<'a> {
    /// The recording returned.
    Finished {
        ended_by: &'a EndReason,
        /// Any media went out (the output started and lasted).
        recorded: bool,
        /// The file output failed while the others went on.
        file_error: Option<&'a str>,
        /// Uploads given up on, described (where, why, what was kept instead).
        upload_failure: Option<&'a str>,
        /// Every stream failed and nothing else was recorded, described.
        streams_failure: Option<&'a str>,
    },
    /// Ended before anything was recorded (a page that never sent START_RECORDING).
    Aborted(&'a str),
    /// Failed, with LiveKit's code (400: the request's fault, 500: ours).
    Failed { why: &'a str, code: i32 },
}

/// The end of an egress, as EgressInfo carries it.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Outcome {
    pub status: S,
    pub error: String,
    pub error_code: i32,
    /// LiveKit's "End reason: ..." (None: leave `details` as it is).
    pub details: Option<String>,
}

impl Outcome {
    /// Writes the outcome into an EgressInfo.
    pub(crate) fn apply(&self, i: &mut livekit_protocol::EgressInfo) {
        i.status = self.status as i32;
        i.error = self.error.clone();
        i.error_code = self.error_code;
        if let Some(d) = &self.details {
            i.details = d.clone();
        }
    }
}

/// Decides the end: a failure first, then nothing recorded (ABORTED), then a failed file,
/// failed uploads, every stream failed, the session limit, else COMPLETE. `asked` is why it
/// was asked to stop, in LiveKit's words; `limit` the session limit it ran under.
pub(crate) fn outcome(ran: &Ran<'_>, asked: Option<StopReason>, limit: Option<Duration>) -> Outcome {
    let end = |status, error: String, error_code, details| Outcome { status, error, error_code, details };
    let (ended_by, recorded, file_error, upload_failure, streams_failure) = match ran {
        Ran::Aborted(why) => return end(S::EgressAborted, why.to_string(), 412, None),
        Ran::Failed { why, code } => {
            return end(S::EgressFailed, why.to_string(), *code, Some("End reason: Failure".into()));
        }
        Ran::Finished { ended_by, recorded, file_error, upload_failure, streams_failure } => {
            (*ended_by, *recorded, *file_error, *upload_failure, *streams_failure)
        }
    };
    let details = Some(match (ended_by, asked) {
        (EndReason::Stopped, asked) => format!("End reason: {}", asked.unwrap_or(StopReason::Api).as_livekit()),
        (EndReason::DurationEnded, _) => "End reason: Session limit reached".into(),
        (EndReason::SourceClosed(why), _) => format!("End reason: Source closed ({why})"),
    });
    if !recorded {
        let why = "the room never became recordable: the egress ended before any media arrived";
        return end(S::EgressAborted, why.into(), 412, details);
    }
    if let Some(e) = file_error {
        // The other outputs went on; the file is what it was when it failed.
        let why = format!("the file output failed: {e}; the other outputs went on to the end");
        return end(S::EgressFailed, why, 0, details);
    }
    if let Some(e) = upload_failure {
        return end(S::EgressFailed, e.to_string(), 400, details);
    }
    if let Some(e) = streams_failure {
        // LiveKit: the last stream failing is Unavailable.
        return end(S::EgressFailed, format!("every stream failed: {e}"), 503, details);
    }
    if let (Some(limit), EndReason::DurationEnded) = (limit, ended_by) {
        let why = format!("session limit reached: file_output_max_duration is {}", humantime::format_duration(limit));
        return end(S::EgressLimitReached, why, 413, details);
    }
    end(S::EgressComplete, String::new(), 0, details)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A finished recording: how it ended, whether it recorded, and its file, upload and stream failures.
    fn done<'a>(ended_by: &'a EndReason, recorded: bool, failures: [Option<&'a str>; 3]) -> Ran<'a> {
        let [file_error, upload_failure, streams_failure] = failures;
        Ran::Finished { ended_by, recorded, file_error, upload_failure, streams_failure }
    }

    #[test]
    fn every_end_as_livekit_reports_it() {
        let (stopped, limit_end) = (EndReason::Stopped, EndReason::DurationEnded);
        let closed = EndReason::SourceClosed("the room was closed by the server".into());
        let hour = Some(Duration::from_secs(3600));
        let ok = [None; 3];
        let upload = Some("bucket unreachable; kept on disk instead: a.mp4");
        let streams = Some("rtmp://x (refused)");
        // (what ran, asked, limit) -> (status, code, the error contains, details)
        #[rustfmt::skip]
        let rows = [
            (done(&stopped, true, ok), None, None, S::EgressComplete, 0, "", Some("End reason: StopEgress API")),
            (done(&stopped, true, ok), Some(StopReason::ProcessKilled), None, S::EgressComplete, 0, "", Some("End reason: Process killed")),
            (done(&stopped, true, ok), Some(StopReason::AllStreamsStopped), None, S::EgressComplete, 0, "", Some("End reason: All streams stopped")),
            (done(&closed, true, ok), None, None, S::EgressComplete, 0, "", Some("End reason: Source closed (the room was closed by the server)")),
            // A duration without a session limit (the request's own) is COMPLETE; with one, LIMIT_REACHED.
            (done(&limit_end, true, ok), None, None, S::EgressComplete, 0, "", Some("End reason: Session limit reached")),
            (done(&limit_end, true, ok), None, hour, S::EgressLimitReached, 413, "file_output_max_duration is 1h", Some("End reason: Session limit reached")),
            // Nothing recorded comes before every failure of an output.
            (done(&stopped, false, [Some("disk full"), upload, streams]), None, hour, S::EgressAborted, 412, "never became recordable", Some("End reason: StopEgress API")),
            (done(&stopped, true, [Some("disk full"), upload, streams]), None, None, S::EgressFailed, 0, "the file output failed: disk full", None),
            (done(&limit_end, true, [None, upload, streams]), None, hour, S::EgressFailed, 400, "bucket unreachable", None),
            (done(&limit_end, true, [None, None, streams]), None, hour, S::EgressFailed, 503, "every stream failed: rtmp://x (refused)", None),
            (Ran::Aborted("Start signal not received"), None, None, S::EgressAborted, 412, "Start signal not received", None),
            (Ran::Failed { why: "page load error: 404", code: 400 }, Some(StopReason::Api), None, S::EgressFailed, 400, "page load error", Some("End reason: Failure")),
            (Ran::Failed { why: "the compositor thread failed", code: 500 }, None, hour, S::EgressFailed, 500, "compositor", Some("End reason: Failure")),
        ];
        for (ran, asked, limit, status, code, error, details) in rows {
            let o = outcome(&ran, asked, limit);
            assert_eq!((o.status, o.error_code), (status, code), "{ran:?}: {o:?}");
            assert!(o.error.contains(error), "{ran:?}: {o:?}");
            if let Some(d) = details {
                assert_eq!(o.details.as_deref(), Some(d), "{ran:?}");
            }
        }
        // ABORTED for want of a start signal leaves details as they were.
        assert_eq!(outcome(&Ran::Aborted("x"), None, None).details, None);
    }
}
