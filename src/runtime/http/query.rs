//! A query string as Consul reads it. Go's `url.Values.Get` returns the first value of a
//! repeated key, so Consul takes `?index=5&index=9` as 5 and `?dc=a&dc=b` as `a` (its
//! `parseWait`, `parseDC`, and the rest); hera does the same on every route. Parameters that
//! are lists (`tag`) read every pair instead (`consul_reads`).

use std::collections::HashMap;

use axum::extract::{FromRequestParts, Query};
use axum::http::request::Parts;
use axum::http::Uri;

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

    /// The query of `uri`; one that cannot be read gives no values (the handler refuses it).
    pub fn of_uri(uri: &Uri) -> FirstValues {
        Query::<Pairs>::try_from_uri(uri)
            .map_or_else(|_| FirstValues::default(), |Query(p)| FirstValues::of(&p))
    }
}

impl<S: Send + Sync> FromRequestParts<S> for FirstValues {
    type Rejection = <Query<Pairs> as FromRequestParts<S>>::Rejection;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        let Query(pairs) = Query::<Pairs>::from_request_parts(parts, state).await?;
        Ok(FirstValues::of(&pairs))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_first_value_of_a_repeated_key_counts() {
        let uri: Uri = "/x?index=5&wait=1s&index=9&a=&a=z&wait=9s".parse().unwrap();
        let FirstValues(q) = FirstValues::of_uri(&uri);
        assert_eq!(q.get("index").map(String::as_str), Some("5"));
        assert_eq!(q.get("wait").map(String::as_str), Some("1s"));
        assert_eq!(q.get("a").map(String::as_str), Some(""));
        assert_eq!(q.len(), 3);
        let bad: Uri = "/x?a=%ZZ".parse().unwrap();
        assert!(FirstValues::of_uri(&bad).0.len() <= 1);
    }
}
