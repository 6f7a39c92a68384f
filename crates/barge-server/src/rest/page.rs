//! Pages of the lists the engine answers whole (Freight, promotions), as Kubernetes lists
//! page: `?limit=N` answers at most N items and a `continue` cursor when there may be more;
//! `?continue=` the next page. The cursor is the last item's sort key (its creation time and
//! name, newest first), not a position, so that items created or removed between two pages
//! neither shift nor repeat the next one. The web UI's Freight timeline pages by the same
//! cursors.

use super::{MAX_PAGE, Problem};
use serde_json::json;

/// A page request: `limit` and the previous page's `continue`.
pub(crate) struct PageRequest {
    pub(crate) limit: Option<i64>,
    pub(crate) after: Option<String>,
}

/// A page as the store reads it: its limit, and the cursor's Unix second and name.
pub(crate) type Keyset = (i64, Option<(i64, String)>);

impl PageRequest {
    fn limit(&self) -> Result<Option<usize>, Problem> {
        match self.limit {
            None => Ok(None),
            Some(l) if (1..=MAX_PAGE).contains(&l) => Ok(Some(l as usize)),
            Some(l) => Err(Problem::invalid(
                format!("limit must be between 1 and {MAX_PAGE}, not {l}"),
                json!({"limit": l}),
            )),
        }
    }

    fn cursor(&self) -> Result<Option<(String, String)>, Problem> {
        self.after
            .as_deref()
            .map(|after| decode(after).ok_or_else(not_a_cursor))
            .transpose()
    }

    /// This request as a page the store reads (keyset pagination), when it has a limit: the
    /// limit, and the cursor as the Unix second and name the store orders by.
    pub(crate) fn keyset(&self) -> Result<Option<Keyset>, Problem> {
        let Some(limit) = self.limit()? else {
            return Ok(None);
        };
        let after = match self.cursor()? {
            None => None,
            Some((at, name)) => {
                let at = chrono::DateTime::parse_from_rfc3339(&at).map_err(|_| not_a_cursor())?;
                Some((at.timestamp(), name))
            }
        };
        Ok(Some((limit as i64, after)))
    }
}

fn not_a_cursor() -> Problem {
    Problem::invalid(
        "continue is not a cursor this server gave: pass the previous page's `continue` as it is".into(),
        json!({}),
    )
}

/// The page of `items` this request asks for, newest first by `key` (creation time as RFC
/// 3339, name), and the cursor of the next page when there may be one. Without a limit or a
/// cursor, every item.
pub(crate) fn page<T>(
    mut items: Vec<T>,
    key: impl Fn(&T) -> (&str, &str),
    request: PageRequest,
) -> Result<(Vec<T>, Option<String>), Problem> {
    let limit = request.limit()?;
    // RFC 3339 times of one writer compare as text; the name breaks ties.
    items.sort_by(|a, b| key(b).cmp(&key(a)));
    if let Some((at, name)) = request.cursor()? {
        items.retain(|i| key(i) < (at.as_str(), name.as_str()));
    }
    let Some(limit) = limit else {
        return Ok((items, None));
    };
    if items.len() <= limit {
        return Ok((items, None));
    }
    items.truncate(limit);
    let next = items.last().map(|last| encode(key(last)));
    Ok((items, next))
}

/// The cursor as hex, so that it passes through a query string as it is.
fn encode((at, name): (&str, &str)) -> String {
    format!("{at}\n{name}").bytes().map(|b| format!("{b:02x}")).collect()
}

fn decode(cursor: &str) -> Option<(String, String)> {
    if !cursor.len().is_multiple_of(2) || cursor.len() > 1024 {
        return None;
    }
    let bytes: Option<Vec<u8>> = (0..cursor.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(cursor.get(i..i + 2)?, 16).ok())
        .collect();
    let text = String::from_utf8(bytes?).ok()?;
    let (at, name) = text.split_once('\n')?;
    Some((at.to_string(), name.to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn names(items: &[(String, String)]) -> Vec<&str> {
        items.iter().map(|(_, n)| n.as_str()).collect()
    }

    #[test]
    fn pages_follow_the_last_items_key_not_its_position() {
        let item = |at: &str, name: &str| (at.to_string(), name.to_string());
        let all = vec![
            item("2026-01-01T00:00:01Z", "a"),
            item("2026-01-01T00:00:03Z", "c"),
            item("2026-01-01T00:00:02Z", "b"),
        ];
        fn key(i: &(String, String)) -> (&str, &str) {
            (&i.0, &i.1)
        }
        let ask = |after: Option<String>| PageRequest { limit: Some(2), after };
        let (first, next) = page(all.clone(), key, ask(None)).unwrap_or_else(|p| panic!("{}", p.message));
        assert_eq!(names(&first), ["c", "b"]);
        // A newer item and a removed one between pages change nothing of the next page.
        let mut changed = all.clone();
        changed.push(item("2026-01-01T00:00:09Z", "z"));
        changed.retain(|i| i.1 != "c");
        let (second, last) = page(changed, key, ask(next)).unwrap_or_else(|p| panic!("{}", p.message));
        assert_eq!((names(&second), last), (vec!["a"], None));
        assert!(page(all.clone(), key, ask(Some("zz".into()))).is_err());
        assert!(
            page(
                all,
                key,
                PageRequest {
                    limit: Some(0),
                    after: None
                }
            )
            .is_err()
        );
    }

    #[test]
    fn a_limited_request_is_a_keyset_of_the_cursors_second_and_name() {
        let ask = |limit, after: Option<String>| PageRequest { limit, after };
        assert!(matches!(ask(None, None).keyset(), Ok(None)), "no limit: every item");
        let cursor = encode(("2026-01-01T00:00:03Z", "c"));
        let keyset = ask(Some(2), Some(cursor))
            .keyset()
            .unwrap_or_else(|p| panic!("{}", p.message));
        assert_eq!(keyset, Some((2, Some((1_767_225_603, "c".to_string())))));
        assert!(ask(Some(2), Some(encode(("yesterday", "c")))).keyset().is_err());
        assert!(ask(Some(0), None).keyset().is_err());
    }
}
