//! A query string as Consul reads it. Go's `url.Values.Get` returns the first value of a
//! repeated key, so Consul takes `?index=5&index=9` as 5 and `?dc=a&dc=b` as `a` (its
//! `parseWait`, `parseDC`, and the rest); hera does the same on every route. Parameters that
//! are lists (`tag`) read every pair instead (`consul_reads`).

use std::collections::HashMap;

use axum::extract::FromRequestParts;
use axum::http::request::Parts;
use axum::http::Uri;

use super::ApiError;

type Pairs = Vec<(String, String)>;

/// Every key of a query string with its first value.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct FirstValues(pub HashMap<String, String>);

impl FirstValues {
    /// `pairs` in the order sent: of a repeated key, the first value counts.
    pub fn of(pairs: &[(String, String)]) -> FirstValues {
        let mut first = HashMap::with_capacity(pairs.len());
        for (key, value) in pairs {
            first.entry(key.clone()).or_insert_with(|| value.clone());
        }
        FirstValues(first)
    }

    /// The query of `uri`, or why it cannot be read.
    pub fn of_uri(uri: &Uri) -> Result<FirstValues, Malformed> {
        Ok(FirstValues::of(&pairs(uri.query().unwrap_or_default())?))
    }
}

impl<S: Send + Sync> FromRequestParts<S> for FirstValues {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, _state: &S) -> Result<Self, Self::Rejection> {
        FirstValues::of_uri(&parts.uri).map_err(|e| ApiError::bad_request(e.to_string()))
    }
}

/// Why a query string cannot be read. The guard refuses such a request with 400 before any
/// route sees it ([`super::guard::well_formed`]): axum's and `form_urlencoded`'s reading is
/// lossy (a bad escape is kept as text, bytes that are not UTF-8 become U+FFFD), so a route
/// would act on a value the client never sent.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Malformed {
    /// A `%` not followed by two hex digits: the text from it (at most 3 bytes), and where.
    BadEscape { escape: String, at: usize },
    /// A key or value whose decoded bytes are not UTF-8, and where its pair starts.
    NotUtf8 { at: usize },
}

impl std::fmt::Display for Malformed {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Malformed::BadEscape { escape, at } => write!(
                f,
                "malformed query string: {escape:?} at byte {at} is not a percent escape (a % \
                 is written %25)"
            ),
            Malformed::NotUtf8 { at } => write!(
                f,
                "malformed query string: the pair at byte {at} is not UTF-8 once \
                 percent-decoded"
            ),
        }
    }
}

impl std::error::Error for Malformed {}

/// The pairs of a query string (`application/x-www-form-urlencoded`, as `form_urlencoded`
/// reads it: `&` between pairs, empty ones skipped, the first `=` between key and value, `+`
/// for a space), refusing what that reading would take lossily.
pub fn pairs(query: &str) -> Result<Pairs, Malformed> {
    let mut pairs = Vec::new();
    let mut at: usize = 0;
    for pair in query.split('&') {
        let start = at;
        // `split` yields every piece, so the next starts one byte (the `&`) after this one.
        at = at.saturating_add(pair.len()).saturating_add(1);
        if pair.is_empty() {
            continue;
        }
        let (key, value) = pair.split_once('=').unwrap_or((pair, ""));
        let value_at = start.saturating_add(key.len()).saturating_add(1);
        let key = decode(key, start)?;
        let value = decode(value, value_at)?;
        match (String::from_utf8(key), String::from_utf8(value)) {
            (Ok(key), Ok(value)) => pairs.push((key, value)),
            _ => return Err(Malformed::NotUtf8 { at: start }),
        }
    }
    Ok(pairs)
}

/// Percent-decode `text` (which starts at byte `at` of the query), `+` as a space.
fn decode(text: &str, at: usize) -> Result<Vec<u8>, Malformed> {
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while let Some(&b) = bytes.get(i) {
        match b {
            b'%' => {
                let hex = |k: usize| bytes.get(k).and_then(|h| (*h as char).to_digit(16));
                let (Some(high), Some(low)) = (hex(i + 1), hex(i + 2)) else {
                    let end = bytes.len().min(i + 3);
                    return Err(Malformed::BadEscape {
                        escape: String::from_utf8_lossy(bytes.get(i..end).unwrap_or_default())
                            .into_owned(),
                        at: at.saturating_add(i),
                    });
                };
                // Two hex digits: at most 0xff.
                out.push(u8::try_from(high * 16 + low).unwrap_or(u8::MAX));
                i += 3;
            }
            b'+' => {
                out.push(b' ');
                i += 1;
            }
            _ => {
                out.push(b);
                i += 1;
            }
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_first_value_of_a_repeated_key_counts() {
        let uri: Uri = "/x?index=5&wait=1s&index=9&a=&a=z&wait=9s".parse().unwrap();
        let FirstValues(q) = FirstValues::of_uri(&uri).unwrap();
        assert_eq!(q.get("index").map(String::as_str), Some("5"));
        assert_eq!(q.get("wait").map(String::as_str), Some("1s"));
        assert_eq!(q.get("a").map(String::as_str), Some(""));
        assert_eq!(q.len(), 3);
    }

    #[test]
    fn pairs_read_as_form_urlencoded_reads_them() {
        let read = |q: &str| pairs(q).unwrap();
        assert_eq!(read(""), []);
        assert_eq!(
            read("a=1&&b&c=x=y&%C3%A9=%E2%82%AC&d=%41+b%2B"),
            [
                ("a".into(), "1".into()),
                ("b".into(), "".into()),
                ("c".into(), "x=y".into()),
                ("é".into(), "€".into()),
                ("d".into(), "A b+".into()),
            ]
        );
        // Where the lossy reading agrees, so does this one.
        let q = "x=%41%2b&y=caf%C3%A9&z=+";
        let lossy: Vec<(String, String)> = form_urlencoded_like(q);
        assert_eq!(read(q), lossy);
    }

    /// What axum's `Query` made of a well-formed query (serde_urlencoded over
    /// form_urlencoded).
    fn form_urlencoded_like(q: &str) -> Vec<(String, String)> {
        let uri: Uri = format!("/x?{q}").parse().unwrap();
        let axum::extract::Query(p) =
            axum::extract::Query::<Vec<(String, String)>>::try_from_uri(&uri).unwrap();
        p
    }

    #[test]
    fn bad_escapes_and_bytes_that_are_not_utf8_are_refused_saying_where() {
        let bad = |q: &str| pairs(q).unwrap_err();
        assert_eq!(
            bad("a=1&b=%ZZ"),
            Malformed::BadEscape {
                escape: "%ZZ".into(),
                at: 6
            }
        );
        assert_eq!(
            bad("ok&%4"),
            Malformed::BadEscape {
                escape: "%4".into(),
                at: 3
            }
        );
        assert_eq!(
            bad("%"),
            Malformed::BadEscape {
                escape: "%".into(),
                at: 0
            }
        );
        assert_eq!(bad("a=1&dc=%FF"), Malformed::NotUtf8 { at: 4 });
        assert_eq!(bad("%C3%28=1"), Malformed::NotUtf8 { at: 0 });
        let text = bad("x=%ZZ").to_string();
        assert!(
            text.starts_with("malformed query string: \"%ZZ\" at byte 2"),
            "{text}"
        );
        let uri: Uri = "/x?a=%ZZ".parse().unwrap();
        assert!(FirstValues::of_uri(&uri).is_err());
    }
}
