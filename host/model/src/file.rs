//! Files of the file store: uploaded with forms or on their own, attached to an item.

use serde::Serialize;

use super::item::ItemRef;

/// A stored file's metadata, as the API shows it.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct StoredFile {
    /// Id (a `file` field holds `{"id": ..}`).
    pub id: i64,
    /// SHA-256 of the bytes, hex: the name they are stored under.
    pub sha256: String,
    /// Size in bytes, at most 25 MiB.
    pub size: i64,
    /// The name to save it as (made safe: no folders, no control characters).
    pub name: String,
    /// Media type it is served with.
    pub content_type: String,
    /// The item it is attached to; `null` while unattached (then only its uploader and
    /// administrators may read it).
    pub item: Option<ItemRef>,
    /// The user who uploaded it.
    pub created_by: i64,
    /// Upload time (RFC 3339).
    pub created_at: String,
}

/// Largest file, in bytes.
pub const MAX_FILE: u64 = 25 * 1024 * 1024;
/// Longest file name, in bytes.
const MAX_NAME: usize = 200;

/// A file name safe to store and to offer for download: the last path component (either kind
/// of slash), without control characters or leading dots, at most 200 bytes; `file` when
/// nothing is left.
pub fn safe_name(name: &str) -> String {
    let last = name.rsplit(['/', '\\']).next().unwrap_or("");
    let cleaned: String = last.chars().filter(|c| !c.is_control() && *c != '"').collect();
    let trimmed = cleaned.trim().trim_start_matches('.').trim();
    let mut out = String::new();
    for c in trimmed.chars() {
        if out.len() + c.len_utf8() > MAX_NAME {
            break;
        }
        out.push(c);
    }
    if out.is_empty() { "file".to_string() } else { out }
}

/// The media type to serve a file with: the uploader's when it is a well-formed `type/subtype`,
/// else one guessed from the name, else `application/octet-stream`; types a browser would run
/// (HTML, SVG, XML, scripts) become `application/octet-stream`.
pub fn content_type(given: Option<&str>, name: &str) -> String {
    let well_formed = |t: &str| {
        let token = |s: &str| !s.is_empty() && s.chars().all(|c| c.is_ascii_alphanumeric() || "!#$&-^_.+".contains(c));
        t.len() <= 100 && t.split_once('/').is_some_and(|(a, b)| token(a) && token(b))
    };
    let chosen = match given.map(|g| g.split(';').next().unwrap_or("").trim().to_ascii_lowercase()) {
        Some(t) if well_formed(&t) && t != "application/octet-stream" => t,
        _ => mime_guess::from_path(name).first_raw().unwrap_or("application/octet-stream").to_string(),
    };
    // Types a browser would run as a page or script are served as plain bytes.
    let active = ["html", "xml", "svg", "javascript", "ecmascript", "xhtml"];
    if active.iter().any(|a| chosen.contains(a)) { "application/octet-stream".to_string() } else { chosen }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_lose_folders_and_control_characters() {
        assert_eq!(safe_name("../../etc/passwd"), "passwd");
        assert_eq!(safe_name("C:\\Users\\me\\drawing.pdf"), "drawing.pdf");
        assert_eq!(safe_name(".hidden"), "hidden");
        assert_eq!(safe_name("a\u{0}b\nc.txt"), "abc.txt");
        assert_eq!(safe_name("../"), "file");
        assert_eq!(safe_name(""), "file");
        assert!(safe_name(&"ж".repeat(300)).len() <= 200);
    }

    #[test]
    fn content_types_are_checked_or_guessed() {
        assert_eq!(content_type(Some("application/pdf"), "x.bin"), "application/pdf");
        assert_eq!(content_type(Some("text/plain; charset=utf-8"), "x"), "text/plain");
        assert_eq!(content_type(Some("not a type"), "plan.pdf"), "application/pdf");
        assert_eq!(content_type(None, "photo.png"), "image/png");
        assert_eq!(content_type(Some("application/octet-stream"), "photo.png"), "image/png");
        assert_eq!(content_type(None, "noext"), "application/octet-stream");
        assert_eq!(content_type(Some("text/html"), "x.html"), "application/octet-stream");
        assert_eq!(content_type(None, "x.svg"), "application/octet-stream");
    }
}
