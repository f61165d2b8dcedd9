//! Credentials and stream keys hidden wherever text leaves the service (answers, webhooks,
//! manifests, logs, metrics), as LiveKit hides them. A leaf: anything may use it.

/// The URL with its secrets hidden, in LiveKit's visible form: an RTMP stream key (the last
/// path segment, a ` live=1` suffix kept) and the key of `mux://KEY` and `twitch://KEY` keep
/// a few characters at each end (`{abc...xyz}`), every query value becomes `{...}` (SRT's
/// `streamid` and `passphrase`), and so does a password in the URL. Redacting a redacted URL
/// changes nothing.
pub(crate) fn redact(url: &str) -> String {
    if let Some((base, query)) = url.split_once('?') {
        let q: Vec<String> = query
            .split('&')
            .map(|kv| match kv.split_once('=') {
                Some((k, v)) if !v.is_empty() => format!("{k}={{...}}"),
                _ => kv.to_string(),
            })
            .collect();
        return format!("{}?{}", redact(base), q.join("&"));
    }
    let Some((scheme, rest)) = url.split_once("://") else { return url.to_string() };
    // user:password@host: the password goes, whatever the scheme.
    let rest = match rest.split_once('@') {
        Some((user, host)) if user.contains(':') && !user.contains('/') => {
            format!("{}:{{...}}@{host}", user.split(':').next().unwrap_or(""))
        }
        _ => rest.to_string(),
    };
    match scheme {
        // LiveKit's shortcuts: everything after the scheme is the stream key.
        "mux" | "twitch" if !rest.is_empty() => format!("{scheme}://{}", redact_identifier(&rest)),
        "rtmp" | "rtmps" => match rest.rsplit_once('/') {
            Some((base, key)) if base.contains('/') => {
                // A ` live=1` suffix (librtmp's option) is not part of the key.
                let (key, live) = key.strip_suffix(" live=1").map_or((key, ""), |k| (k, " live=1"));
                format!("{scheme}://{base}/{}{live}", redact_identifier(key))
            }
            _ => format!("{scheme}://{rest}"),
        },
        "srt" | "ws" | "wss" => format!("{scheme}://{rest}"),
        // A URL of no stream protocol (a mistake): where its key would be is unknown, so
        // only its host is shown.
        _ => match rest.split_once('/') {
            Some((host, path)) if !path.is_empty() => format!("{scheme}://{host}/{{...}}"),
            _ => format!("{scheme}://{rest}"),
        },
    }
}

/// Any text (a log line, an error) with every URL in it redacted.
pub(crate) fn redact_in(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(at) = rest.find("://") {
        // The scheme runs back to the first character a scheme cannot hold; the URL runs to
        // white space or a quote.
        let start =
            rest[..at].rfind(|c: char| !(c.is_ascii_alphanumeric() || "+.-".contains(c))).map(|i| i + 1).unwrap_or(0);
        let end =
            rest[at..].find(|c: char| c.is_whitespace() || "'\"<>".contains(c)).map(|i| at + i).unwrap_or(rest.len());
        out.push_str(&rest[..start]);
        out.push_str(&redact(&rest[start..end]));
        rest = &rest[end..];
    }
    out.push_str(rest);
    out
}

/// LiveKit's `RedactIdentifier`: the first and last three characters of a key of 9 or more,
/// two of 6 or more, one of 3 or more, none below. An already hidden key stays as it is.
fn redact_identifier(key: &str) -> String {
    if key.starts_with('{') && key.ends_with('}') {
        return key.to_string();
    }
    let chars: Vec<char> = key.chars().collect();
    let keep = (1..=3).rev().find(|i| chars.len() >= i * 3).unwrap_or(0);
    let head: String = chars[..keep].iter().collect();
    let tail: String = chars[chars.len() - keep..].iter().collect();
    format!("{{{head}...{tail}}}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_are_redacted_as_livekit_shows_them() {
        // LiveKit's own examples (protocol's egress/redact_test.go and utils).
        for (url, shown) in [
            ("rtmp://127.0.0.1:1935/live/sk_abcdef123", "rtmp://127.0.0.1:1935/live/{sk_...123}"),
            ("rtmps://foo.bar.com/app/secret_stream_key", "rtmps://foo.bar.com/app/{sec...key}"),
            ("rtmps://a.example/app/key", "rtmps://a.example/app/{k...y}"),
            ("rtmp://host/app/ab", "rtmp://host/app/{...}"),
            ("rtmp://host/app/abcdefghijkl live=1", "rtmp://host/app/{abc...jkl} live=1"),
            ("rtmp://host/a/b/c/streamkey123", "rtmp://host/a/b/c/{str...123}"),
            ("mux://8e0ab1c2d3e4f52ae", "mux://{8e0...2ae}"),
            ("twitch://abcdef", "twitch://{ab...ef}"),
            ("srt://foo.bar.com:9999", "srt://foo.bar.com:9999"),
            ("srt://h:1?streamid=abc&passphrase=s&latency=", "srt://h:1?streamid={...}&passphrase={...}&latency="),
            ("rtmp://user:pw@host/app/k", "rtmp://user:{...}@host/app/{...}"),
            ("http://h/app/streamkey", "http://h/{...}"),
        ] {
            assert_eq!(redact(url), shown, "{url}");
            assert_eq!(redact(shown), shown, "redacting {shown} again");
        }
        assert_eq!(
            redact_in("Connection to srt://h:1?passphrase=pw&pkt_size=1316 failed; 'rtmp://h/app/secretkey1'"),
            "Connection to srt://h:1?passphrase={...}&pkt_size={...} failed; 'rtmp://h/app/{sec...ey1}'"
        );
    }
}
