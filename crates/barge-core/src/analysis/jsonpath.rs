//! The Kubernetes JSONPath subset the web provider's `jsonPath` uses (`{$.data.ok}`, default
//! `{$}`): fields (`.a`, `['a']`), indexes (`[0]`, `[-1]`), wildcards (`[*]`, `.*`) and recursive
//! descent (`..a`). Rollouts uses the first match; filters (`[?()]`) and slices are refused with
//! a clear message instead of being misread.

use serde_json::Value;

#[derive(Clone, Debug, PartialEq)]
enum Segment {
    Field(String),
    Index(i64),
    Wildcard,
    Descend(String),
}

/// A parsed path.
#[derive(Clone, Debug, PartialEq)]
pub struct JsonPath(Vec<Segment>);

impl JsonPath {
    pub fn parse(text: &str) -> Result<JsonPath, String> {
        let t = text.trim();
        let inner = t
            .strip_prefix('{')
            .and_then(|x| x.strip_suffix('}'))
            .unwrap_or(t)
            .trim();
        let mut rest = inner.strip_prefix('$').unwrap_or(inner);
        let mut out = Vec::new();
        let ident_end = |s: &str| s.find(['.', '[']).unwrap_or(s.len());
        while !rest.is_empty() {
            if let Some(r) = rest.strip_prefix("..") {
                let end = ident_end(r);
                if end == 0 {
                    return Err(format!("jsonPath {text:?}: `..` must be followed by a field name"));
                }
                out.push(Segment::Descend(r[..end].to_string()));
                rest = &r[end..];
            } else if let Some(r) = rest.strip_prefix('.') {
                let end = ident_end(r);
                match &r[..end] {
                    "" => {}
                    "*" => out.push(Segment::Wildcard),
                    name => out.push(Segment::Field(name.to_string())),
                }
                rest = &r[end..];
            } else if let Some(r) = rest.strip_prefix('[') {
                let close = r
                    .find(']')
                    .ok_or_else(|| format!("jsonPath {text:?}: `[` is not closed"))?;
                let inside = r[..close].trim();
                let quoted = ['\'', '"']
                    .iter()
                    .find_map(|q| inside.strip_prefix(*q).and_then(|x| x.strip_suffix(*q)));
                out.push(if let Some(name) = quoted {
                    Segment::Field(name.to_string())
                } else if inside == "*" {
                    Segment::Wildcard
                } else if let Ok(i) = inside.parse::<i64>() {
                    Segment::Index(i)
                } else {
                    return Err(format!(
                        "jsonPath {text:?}: `[{inside}]` is not supported (barge reads fields, indexes, `*` and `..`; filters and slices are not supported)"
                    ));
                });
                rest = &r[close + 1..];
            } else {
                let end = ident_end(rest);
                out.push(Segment::Field(rest[..end].to_string()));
                rest = &rest[end..];
            }
        }
        Ok(JsonPath(out))
    }

    /// Every match, in document order.
    pub fn find<'a>(&self, root: &'a Value) -> Vec<&'a Value> {
        let mut current = vec![root];
        for seg in &self.0 {
            let mut next = Vec::new();
            for v in current {
                match seg {
                    Segment::Field(name) => next.extend(v.get(name.as_str())),
                    Segment::Index(i) => {
                        if let Value::Array(a) = v {
                            let idx = if *i < 0 { a.len() as i64 + i } else { *i };
                            next.extend(usize::try_from(idx).ok().and_then(|i| a.get(i)));
                        }
                    }
                    Segment::Wildcard => match v {
                        Value::Array(a) => next.extend(a.iter()),
                        Value::Object(o) => next.extend(o.values()),
                        _ => {}
                    },
                    Segment::Descend(name) => descend(v, name, &mut next),
                }
            }
            current = next;
        }
        current
    }
}

fn descend<'a>(v: &'a Value, name: &str, out: &mut Vec<&'a Value>) {
    match v {
        Value::Object(o) => {
            if let Some(x) = o.get(name) {
                out.push(x);
            }
            o.values().for_each(|x| descend(x, name, out));
        }
        Value::Array(a) => a.iter().for_each(|x| descend(x, name, out)),
        _ => {}
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn first(path: &str, v: &Value) -> Option<Value> {
        JsonPath::parse(path).unwrap().find(v).first().map(|x| (*x).clone())
    }

    #[test]
    fn kubernetes_style_paths() {
        let v = json!({"data": {"ok": true, "items": [{"name": "a"}, {"name": "b"}]}, "status": "healthy", "count": 3});
        assert_eq!(first("{$}", &v), Some(v.clone()));
        assert_eq!(first("{$.data.ok}", &v), Some(json!(true)));
        assert_eq!(first("{.status}", &v), Some(json!("healthy")));
        assert_eq!(first("$.count", &v), Some(json!(3)));
        assert_eq!(first("{$.data.items[1].name}", &v), Some(json!("b")));
        assert_eq!(first("{$.data.items[-1].name}", &v), Some(json!("b")));
        assert_eq!(first("{$['data']['ok']}", &v), Some(json!(true)));
        assert_eq!(first("{$.data.items[*].name}", &v), Some(json!("a")), "the first match");
        assert_eq!(first("{$..name}", &v), Some(json!("a")));
        assert_eq!(first("{$.missing}", &v), None);
        assert_eq!(first("{$.data.items[7]}", &v), None);
    }

    #[test]
    fn unsupported_syntax_is_refused_not_misread() {
        let err = JsonPath::parse("{$.items[?(@.name=='a')]}").unwrap_err();
        assert!(err.contains("filters and slices are not supported"), "{err}");
        assert!(JsonPath::parse("{$.items[1:2]}").is_err());
        assert!(JsonPath::parse("{$.items[0}").unwrap_err().contains("not closed"));
    }
}
