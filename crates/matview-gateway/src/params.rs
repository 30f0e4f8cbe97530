//! Query strings of the gateway's reads, parsed into typed values with 400
//! problems that say what is wrong. `after` may repeat, so the raw query is
//! parsed here rather than by a map-shaped extractor.

use axum::extract::FromRequestParts;
use axum::http::StatusCode;
use axum::http::request::Parts;

use matview_api::problem::Problem;

/// Largest page of a group scan.
pub const MAX_LIMIT: usize = 1000;
pub const DEFAULT_LIMIT: usize = 100;
/// Longest read-your-writes wait a caller may ask for.
pub const MAX_WAIT_MS: u64 = 30_000;
pub const DEFAULT_WAIT_MS: u64 = 5_000;

/// A position a writer knows its event landed at.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WritePosition {
    pub topic: String,
    pub partition: i32,
    pub offset: i64,
}

/// `topic:partition:offset` (topic names cannot hold ':').
pub fn parse_write_position(text: &str) -> Option<WritePosition> {
    let mut parts = text.rsplitn(3, ':');
    let offset = parts.next()?.parse().ok().filter(|o: &i64| *o >= 0)?;
    let partition = parts.next()?.parse().ok().filter(|p: &i32| *p >= 0)?;
    let topic = parts.next().filter(|t| !t.is_empty())?.to_string();
    Some(WritePosition {
        topic,
        partition,
        offset,
    })
}

/// Parameters of every read.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ReadParams {
    /// Read-your-writes: answer once these are applied.
    pub after: Vec<WritePosition>,
    pub wait_ms: u64,
    /// Scans only: an opaque cursor and a page size.
    pub cursor: Option<String>,
    pub limit: usize,
    /// Read this revision (the serving one or one waiting for promotion)
    /// instead of whichever serves now.
    pub revision: Option<String>,
}

fn bad(title: &'static str, detail: String) -> Problem {
    Problem::new(StatusCode::BAD_REQUEST, title, detail)
}

/// Parses a query string; `scan` allows `cursor` and `limit`.
pub fn parse_read_params(query: &str, scan: bool) -> Result<ReadParams, Problem> {
    let mut params = ReadParams {
        wait_ms: DEFAULT_WAIT_MS,
        limit: DEFAULT_LIMIT,
        ..Default::default()
    };
    for (name, value) in url::form_urlencoded::parse(query.as_bytes()) {
        match name.as_ref() {
            "after" => params
                .after
                .push(parse_write_position(&value).ok_or_else(|| {
                    bad(
                        "bad after",
                        format!("{value:?}: expected topic:partition:offset"),
                    )
                })?),
            "waitMs" => {
                params.wait_ms = value
                    .parse::<u64>()
                    .ok()
                    .filter(|w| *w <= MAX_WAIT_MS)
                    .ok_or_else(|| {
                        bad(
                            "bad waitMs",
                            format!("waitMs must be 0..={MAX_WAIT_MS}, got {value:?}"),
                        )
                    })?
            }
            "revision" => {
                if value.is_empty() || value.len() > 63 {
                    return Err(bad(
                        "bad revision",
                        format!(
                            "{value:?}: a revision as status.revision or status.rollout.pending.revision shows it"
                        ),
                    ));
                }
                params.revision = Some(value.into_owned())
            }
            "cursor" if scan => params.cursor = Some(value.into_owned()),
            "limit" if scan => {
                params.limit = value
                    .parse::<usize>()
                    .ok()
                    .filter(|n| (1..=MAX_LIMIT).contains(n))
                    .ok_or_else(|| {
                        bad(
                            "bad limit",
                            format!("limit must be 1..={MAX_LIMIT}, got {value:?}"),
                        )
                    })?
            }
            other => {
                let known = if scan {
                    "after, waitMs, revision, cursor, limit"
                } else {
                    "after, waitMs, revision"
                };
                return Err(bad(
                    "unknown parameter",
                    format!("{other:?}; this read takes {known}"),
                ));
            }
        }
    }
    Ok(params)
}

/// Extractor: the parameters of a row read.
pub struct RowParams(pub ReadParams);
/// Extractor: the parameters of a scan.
pub struct ScanParams(pub ReadParams);

impl<S: Send + Sync> FromRequestParts<S> for RowParams {
    type Rejection = Problem;
    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, Problem> {
        parse_read_params(parts.uri.query().unwrap_or_default(), false).map(RowParams)
    }
}

impl<S: Send + Sync> FromRequestParts<S> for ScanParams {
    type Rejection = Problem;
    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, Problem> {
        parse_read_params(parts.uri.query().unwrap_or_default(), true).map(ScanParams)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn write_positions_parse_strictly() {
        assert_eq!(
            parse_write_position("orders.v2:3:17"),
            Some(WritePosition {
                topic: "orders.v2".into(),
                partition: 3,
                offset: 17
            })
        );
        for bad in [
            "orders:3",
            ":1:2",
            "orders:x:1",
            "orders:1:-4",
            "orders:-1:4",
        ] {
            assert_eq!(parse_write_position(bad), None, "{bad}");
        }
    }

    #[test]
    fn reads_take_repeated_after_and_refuse_unknown_or_out_of_range() {
        let p = parse_read_params("after=o:0:5&after=o:1:9&waitMs=100", false).expect("ok");
        assert_eq!(p.after.len(), 2);
        assert_eq!(p.wait_ms, 100);
        assert_eq!(p.limit, DEFAULT_LIMIT);
        let e = parse_read_params("limit=5", false).expect_err("rows take no limit");
        assert_eq!(e.status, StatusCode::BAD_REQUEST);
        let s = parse_read_params("limit=5&cursor=c1.YQ", true).expect("ok");
        assert_eq!((s.limit, s.cursor.as_deref()), (5, Some("c1.YQ")));
        let r = parse_read_params("revision=abc123", false).expect("ok");
        assert_eq!(r.revision.as_deref(), Some("abc123"));
        for bad in [
            "limit=0",
            "limit=1001",
            "waitMs=-1",
            "waitMs=999999",
            "after=x",
            "revision=",
        ] {
            let e = parse_read_params(bad, true).expect_err(bad);
            assert_eq!(e.status, StatusCode::BAD_REQUEST, "{bad}");
        }
    }
}
