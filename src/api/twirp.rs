//! Twirp's wire rules: POST only, JSON or protobuf bodies (the answer in the
//! request's encoding), errors as `{"code","msg"}` with exactly
//! `Content-Type: application/json` (LiveKit's Node SDK reads error fields only then)
//! and the HTTP status Twirp gives each code.

use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::Serialize;
use serde::de::DeserializeOwned;

/// Twirp error codes used here.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Code {
    InvalidArgument,
    Malformed,
    NotFound,
    BadRoute,
    PermissionDenied,
    Unauthenticated,
    ResourceExhausted,
    FailedPrecondition,
    Unimplemented,
    Internal,
    Unavailable,
    DeadlineExceeded,
}

impl Code {
    pub(crate) fn name(self) -> &'static str {
        match self {
            Code::InvalidArgument => "invalid_argument",
            Code::Malformed => "malformed",
            Code::NotFound => "not_found",
            Code::BadRoute => "bad_route",
            Code::PermissionDenied => "permission_denied",
            Code::Unauthenticated => "unauthenticated",
            Code::ResourceExhausted => "resource_exhausted",
            Code::FailedPrecondition => "failed_precondition",
            Code::Unimplemented => "unimplemented",
            Code::Internal => "internal",
            Code::Unavailable => "unavailable",
            Code::DeadlineExceeded => "deadline_exceeded",
        }
    }

    pub(crate) fn status(self) -> StatusCode {
        match self {
            Code::InvalidArgument | Code::Malformed => StatusCode::BAD_REQUEST,
            Code::NotFound | Code::BadRoute => StatusCode::NOT_FOUND,
            Code::PermissionDenied => StatusCode::FORBIDDEN,
            Code::Unauthenticated => StatusCode::UNAUTHORIZED,
            Code::ResourceExhausted => StatusCode::TOO_MANY_REQUESTS,
            Code::FailedPrecondition => StatusCode::PRECONDITION_FAILED,
            Code::Unimplemented => StatusCode::NOT_IMPLEMENTED,
            Code::Internal => StatusCode::INTERNAL_SERVER_ERROR,
            Code::DeadlineExceeded => StatusCode::REQUEST_TIMEOUT,
            Code::Unavailable => StatusCode::SERVICE_UNAVAILABLE,
        }
    }
}

#[derive(Debug, Clone)]
pub(crate) struct TwirpError {
    pub code: Code,
    pub msg: String,
}

impl TwirpError {
    pub(crate) fn new(code: Code, msg: impl Into<String>) -> Self {
        Self { code, msg: msg.into() }
    }
}

impl IntoResponse for TwirpError {
    fn into_response(self) -> Response {
        let body = serde_json::json!({ "code": self.code.name(), "msg": self.msg, "meta": {} });
        let mut r = (self.code.status(), body.to_string()).into_response();
        r.headers_mut().insert(header::CONTENT_TYPE, HeaderValue::from_static("application/json"));
        r
    }
}

/// How a request's body is encoded (and so its answer).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Encoding {
    Json,
    Protobuf,
}

impl Encoding {
    /// From the Content-Type; parameters such as `charset` are ignored.
    pub(crate) fn from_headers(headers: &HeaderMap) -> Result<Self, TwirpError> {
        let ct = headers.get(header::CONTENT_TYPE).and_then(|v| v.to_str().ok()).unwrap_or("");
        let essence = ct.split(';').next().unwrap_or("").trim().to_ascii_lowercase();
        match essence.as_str() {
            "application/json" => Ok(Encoding::Json),
            "application/protobuf" | "application/x-protobuf" => Ok(Encoding::Protobuf),
            _ => Err(TwirpError::new(
                Code::BadRoute,
                format!("unexpected Content-Type {ct:?}: send application/json or application/protobuf"),
            )),
        }
    }

    pub(crate) fn decode<T: prost::Message + DeserializeOwned + Default>(self, body: &[u8]) -> Result<T, TwirpError> {
        match self {
            Encoding::Json => {
                // An empty JSON body is an empty message, as in Twirp.
                let body = if body.iter().all(u8::is_ascii_whitespace) { b"{}".as_slice() } else { body };
                let de = &mut serde_json::Deserializer::from_slice(body);
                serde_path_to_error::deserialize(de).map_err(|e| {
                    let path = e.path().to_string();
                    let at = if path == "." { String::new() } else { format!(" at {path}") };
                    TwirpError::new(
                        Code::Malformed,
                        format!("the JSON body could not be decoded{at}: {}", without_strings(&e.inner().to_string())),
                    )
                })
            }
            Encoding::Protobuf => T::decode(body)
                .map_err(|e| TwirpError::new(Code::Malformed, format!("the protobuf body could not be decoded: {e}"))),
        }
    }

    pub(crate) fn encode<T: prost::Message + Serialize>(self, msg: &T) -> Response {
        let (ct, body) = match self {
            Encoding::Json => match serde_json::to_vec(msg) {
                Ok(b) => ("application/json", b),
                Err(e) => {
                    return TwirpError::new(Code::Internal, format!("cannot encode the answer: {e}")).into_response();
                }
            },
            Encoding::Protobuf => ("application/protobuf", msg.encode_to_vec()),
        };
        let mut r = (StatusCode::OK, body).into_response();
        r.headers_mut().insert(header::CONTENT_TYPE, HeaderValue::from_static(ct));
        r
    }
}

/// A decoder's message without the strings it quotes (`invalid type: string "...", expected
/// ...`): a misplaced credential must not come back in the error.
fn without_strings(msg: &str) -> String {
    let mut out = String::with_capacity(msg.len());
    let mut rest = msg;
    while let Some(i) = rest.find("string \"") {
        out.push_str(&rest[..i]);
        out.push_str("a string");
        let after = &rest[i + "string \"".len()..];
        // The quoted text ends at the next unescaped quote.
        let mut end = None;
        let mut escaped = false;
        for (k, ch) in after.char_indices() {
            match ch {
                '\\' if !escaped => escaped = true,
                '"' if !escaped => {
                    end = Some(k);
                    break;
                }
                _ => escaped = false,
            }
        }
        rest = end.map_or("", |k| &after[k + 1..]);
    }
    out.push_str(rest);
    out
}

#[cfg(test)]
mod tests {
    #[test]
    fn decode_errors_do_not_quote_strings() {
        let m = super::without_strings(r#"invalid type: string "AKIA-secret", expected i32 at line 1"#);
        assert_eq!(m, "invalid type: a string, expected i32 at line 1");
    }
}
