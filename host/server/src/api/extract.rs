//! Request extractors that turn bad input into problem documents.

use axum::body::Bytes;
use axum::extract::multipart::MultipartError;
use axum::extract::{FromRequest, FromRequestParts, Multipart, Request};
use axum::http::request::Parts;
use axum::http::{HeaderMap, StatusCode, header};
use serde::de::DeserializeOwned;

use super::problem::Problem;
use voronka_core::service::Caller;

/// A JSON body; malformed JSON, wrong shapes, a wrong content type or an oversized body become
/// problem documents that say what is wrong (a wrong shape names the field by its path, e.g.
/// `fields.payments[1].amount`).
pub struct ApiJson<T>(pub T);

impl<T: DeserializeOwned, S: Send + Sync> FromRequest<S> for ApiJson<T> {
    type Rejection = Problem;

    async fn from_request(req: Request, state: &S) -> Result<Self, Problem> {
        if !is_json(req.headers()) {
            return Err(Problem::new(
                StatusCode::UNSUPPORTED_MEDIA_TYPE,
                "unsupported-media-type",
                "send the body as Content-Type: application/json",
            ));
        }
        let bytes = Bytes::from_request(req, state).await.map_err(|rejection| match rejection.status() {
            StatusCode::PAYLOAD_TOO_LARGE => Problem::new(
                StatusCode::PAYLOAD_TOO_LARGE,
                "payload-too-large",
                format!("the body is larger than {} bytes", super::MAX_BODY),
            ),
            _ => Problem::bad_request("bad-request", rejection.body_text()),
        })?;
        parse(&bytes).map(ApiJson)
    }
}

/// A `multipart/form-data` body (uploads); a body of another type, or one without a boundary,
/// becomes a problem document like every other bad input.
pub struct ApiMultipart(pub Multipart);

impl<S: Send + Sync> FromRequest<S> for ApiMultipart {
    type Rejection = Problem;

    async fn from_request(req: Request, state: &S) -> Result<Self, Problem> {
        let mime = req.headers().get(header::CONTENT_TYPE).and_then(|v| v.to_str().ok()?.parse::<mime::Mime>().ok());
        if !mime.is_some_and(|m| m.type_() == mime::MULTIPART && m.subtype() == mime::FORM_DATA) {
            return Err(Problem::new(
                StatusCode::UNSUPPORTED_MEDIA_TYPE,
                "unsupported-media-type",
                "send the upload as Content-Type: multipart/form-data (curl -F does; do not set another Content-Type)",
            ));
        }
        Multipart::from_request(req, state).await.map(ApiMultipart).map_err(|rejection| {
            Problem::bad_request(
                "bad-multipart",
                format!("the upload is not valid multipart/form-data: {}", rejection.body_text()),
            )
        })
    }
}

/// A multipart body that broke off while its parts were read: 413 `payload-too-large` past the
/// route's limit, 400 `bad-multipart` otherwise (a wrong boundary, a truncated part).
pub fn multipart_problem(error: MultipartError) -> Problem {
    match error.status() {
        StatusCode::PAYLOAD_TOO_LARGE => {
            Problem::new(StatusCode::PAYLOAD_TOO_LARGE, "payload-too-large", error.body_text())
        }
        _ => Problem::bad_request(
            "bad-multipart",
            format!("the upload is not valid multipart/form-data: {}", error.body_text()),
        ),
    }
}

/// Whether the request says its body is JSON (`application/json` or a `+json` type).
fn is_json(headers: &HeaderMap) -> bool {
    let Some(mime) = headers.get(header::CONTENT_TYPE).and_then(|v| v.to_str().ok()?.parse::<mime::Mime>().ok()) else {
        return false;
    };
    mime.type_() == mime::APPLICATION && (mime.subtype() == mime::JSON || mime.suffix() == Some(mime::JSON))
}

/// Reads a JSON document as `T`, keeping the path to the part that did not fit.
fn parse<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, Problem> {
    let mut document = serde_json::Deserializer::from_slice(bytes);
    let value = serde_path_to_error::deserialize(&mut document).map_err(|e| {
        // serde_json reports a value of the wrong kind where an enum is expected (`3` for
        // `"none"`) as a syntax error; a body that is valid JSON is of the wrong shape instead.
        let valid = !e.inner().is_data() && serde_json::from_slice::<serde::de::IgnoredAny>(bytes).is_ok();
        shape_problem(Some(e.path()), e.inner(), valid)
    })?;
    document.end().map_err(|e| shape_problem(None, &e, false))?;
    Ok(value)
}

/// The problem document of a body that is not JSON (400) or not of the expected shape (422,
/// naming the field at `path`); `valid_json`: the body is JSON, whatever `error` says.
fn shape_problem(path: Option<&serde_path_to_error::Path>, error: &serde_json::Error, valid_json: bool) -> Problem {
    if !error.is_data() && !valid_json {
        return Problem::bad_request("malformed-json", format!("the body is not valid JSON: {error}"));
    }
    let field = field_at(path, error);
    let mut problem = Problem::new(
        StatusCode::UNPROCESSABLE_ENTITY,
        "validation-failed",
        format!("the body does not have the expected shape: {field}: {error}"),
    );
    problem.errors.push(voronka_model::FieldError::new(field, error.to_string()));
    problem
}

/// The field a shape error is about: its path in the document (`parents[0]`, or the unknown
/// key itself), extended for a missing field by the name serde gives only in its message (it
/// reports a missing field at the enclosing object).
fn field_at(path: Option<&serde_path_to_error::Path>, error: &serde_json::Error) -> String {
    let at = path.filter(|p| p.iter().next().is_some()).map(ToString::to_string).unwrap_or_default();
    let text = error.to_string();
    let missing = text.strip_prefix("missing field `").and_then(|rest| rest.split_once('`')).map(|(name, _)| name);
    match (at.is_empty(), missing) {
        (true, Some(name)) => name.to_string(),
        (false, Some(name)) => format!("{at}.{name}"),
        (true, None) => "body".to_string(),
        (false, None) => at,
    }
}

/// The caller the request's token authenticated (see `api::auth`).
pub struct Auth(pub Caller);

impl<S: Send + Sync> FromRequestParts<S> for Auth {
    type Rejection = Problem;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, Problem> {
        let caller = parts.extensions.get::<Caller>().cloned();
        caller.map(Auth).ok_or_else(|| Problem::unauthorized("a bearer token is required"))
    }
}

/// The request's `If-Match`: the ETags of the versions a change may apply to, compared
/// strongly (RFC 9110: a weak `W/"3"` matches no version), or `*` for any.
pub struct IfMatch(Option<headers::IfMatch>);

impl IfMatch {
    /// Whether a change may apply to `version` (always, without the header).
    pub fn accepts(&self, version: i64) -> bool {
        self.0.as_ref().is_none_or(|wanted| etag(version).is_some_and(|tag| wanted.precondition_passes(&tag)))
    }
}

impl<S: Send + Sync> FromRequestParts<S> for IfMatch {
    type Rejection = Problem;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, Problem> {
        let values = parts.headers.get_all(header::IF_MATCH);
        if values.iter().next().is_none() {
            return Ok(IfMatch(None));
        }
        let text = values.iter().map(|v| v.to_str().unwrap_or("\u{fffd}")).collect::<Vec<_>>().join(", ");
        // The header's decoder passes over list members that are not entity tags (they then
        // match nothing); a client sending one made a mistake worth a clear 400 instead.
        let well_formed = text.split(',').map(str::trim).all(|tag| tag == "*" || tag.parse::<headers::ETag>().is_ok());
        well_formed
            .then(|| <headers::IfMatch as headers::Header>::decode(&mut values.iter()).ok())
            .flatten()
            .map(|h| IfMatch(Some(h)))
            .ok_or_else(|| {
                Problem::bad_request(
                    "bad-if-match",
                    format!("If-Match `{text}` is not an ETag from this API, like \"3\""),
                )
            })
    }
}

/// The ETag of an item version, `"3"` (a quoted number always parses as one).
pub fn etag(version: i64) -> Option<headers::ETag> {
    format!("\"{version}\"").parse().ok()
}

/// Path parameters; a malformed one (e.g. a non-numeric id) becomes a problem document.
pub struct ApiPath<T>(pub T);

impl<T: DeserializeOwned + Send, S: Send + Sync> FromRequestParts<S> for ApiPath<T> {
    type Rejection = Problem;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Problem> {
        axum::extract::Path::<T>::from_request_parts(parts, state)
            .await
            .map(|axum::extract::Path(v)| ApiPath(v))
            .map_err(|e| Problem::new(StatusCode::NOT_FOUND, "not-found", format!("bad path: {}", e.body_text())))
    }
}

/// Query parameters; malformed ones become a problem document.
pub struct ApiQuery<T>(pub T);

impl<T: DeserializeOwned + Send, S: Send + Sync> FromRequestParts<S> for ApiQuery<T> {
    type Rejection = Problem;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Problem> {
        axum::extract::Query::<T>::from_request_parts(parts, state)
            .await
            .map(|axum::extract::Query(v)| ApiQuery(v))
            .map_err(|e| Problem::bad_request("bad-query", e.body_text()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug, serde::Deserialize)]
    #[serde(deny_unknown_fields)]
    #[allow(dead_code)]
    struct Amount {
        value: i64,
    }

    #[derive(Debug, serde::Deserialize)]
    #[serde(deny_unknown_fields)]
    #[allow(dead_code)]
    struct Body {
        title: String,
        amounts: Vec<Amount>,
        #[serde(default)]
        kind: Option<Kind>,
    }

    #[derive(Debug, serde::Deserialize)]
    #[serde(rename_all = "lowercase")]
    enum Kind {
        Small,
    }

    fn field(body: &str) -> (u16, Vec<String>) {
        match parse::<Body>(body.as_bytes()) {
            Ok(_) => (200, Vec::new()),
            Err(problem) => (problem.status.as_u16(), problem.errors.iter().map(|e| e.field.clone()).collect()),
        }
    }

    #[test]
    fn shape_errors_name_the_field_by_its_path() {
        assert_eq!(field(r#"{"amounts": []}"#), (422, vec!["title".to_string()]));
        assert_eq!(field(r#"{"title": "a", "amounts": [], "feilds": 1}"#), (422, vec!["feilds".to_string()]));
        assert_eq!(
            field(r#"{"title": "a", "amounts": [{"value": 1}, {"value": 1.5}]}"#),
            (422, vec!["amounts[1].value".to_string()])
        );
        assert_eq!(field(r#"{"title": "a", "amounts": [{}]}"#), (422, vec!["amounts[0].value".to_string()]));
        assert_eq!(field(r#""text""#), (422, vec!["body".to_string()]));
        assert_eq!(field(r#"{"title": "a", "amounts": []}"#), (200, Vec::new()));
        assert_eq!(field(r#"{"title": "a", "amounts": [], "kind": "small"}"#), (200, Vec::new()));
        assert_eq!(field(r#"{"title": "a", "amounts": [], "kind": "big"}"#), (422, vec!["kind".to_string()]));
        // serde_json calls a number where an enum is expected a syntax error; it is a shape one.
        assert_eq!(field(r#"{"title": "a", "amounts": [], "kind": 3}"#), (422, vec!["kind".to_string()]));
    }

    #[test]
    fn malformed_json_is_not_a_shape_error() {
        assert_eq!(field(r#"{"title": "#), (400, Vec::new()));
        assert_eq!(field(r#"{"title": "a", "amounts": []} trailing"#), (400, Vec::new()));
    }

    #[test]
    fn json_content_types() {
        let mut headers = HeaderMap::new();
        assert!(!is_json(&headers));
        for (value, json) in [
            ("application/json", true),
            ("application/json; charset=utf-8", true),
            ("application/problem+json", true),
            ("text/plain", false),
        ] {
            headers.insert(header::CONTENT_TYPE, value.parse().unwrap_or_else(|_| panic!("{value}")));
            assert_eq!(is_json(&headers), json, "{value}");
        }
    }

    async fn if_match(values: &[&str]) -> Result<IfMatch, u16> {
        let mut request = axum::http::Request::builder();
        for value in values {
            request = request.header(header::IF_MATCH, *value);
        }
        let (mut parts, ()) = request.body(()).map_err(|_| 0u16)?.into_parts();
        IfMatch::from_request_parts(&mut parts, &()).await.map_err(|p| p.status.as_u16())
    }

    #[tokio::test]
    async fn if_match_compares_etags_strongly() {
        let accepted = |m: &IfMatch| (1..=4).filter(|v| m.accepts(*v)).collect::<Vec<i64>>();
        let cases: [(&[&str], Vec<i64>); 5] = [
            (&[], vec![1, 2, 3, 4]),
            (&["*"], vec![1, 2, 3, 4]),
            (&["\"3\""], vec![3]),
            (&["\"2\", \"4\""], vec![2, 4]),
            (&["W/\"3\""], vec![]),
        ];
        for (values, versions) in cases {
            let parsed = if_match(values).await.unwrap_or_else(|status| panic!("{values:?}: {status}"));
            assert_eq!(accepted(&parsed), versions, "{values:?}");
        }
        assert_eq!(if_match(&["yesterday"]).await.err(), Some(400));
    }
}
