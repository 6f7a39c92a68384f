//! The Prometheus provider: one instant query at the current time, its result mapped the way
//! Rollouts maps it (scalar → a number, vector → a list of numbers with labels dropped, matrix
//! → every sample of every series in one list, strings refused).

use crate::MeasureError;
use crate::http::{Body, Http, Request};
use barge_core::analysis::MeasuredValue;
use barge_core::model::analysis::PrometheusMetric;
use std::time::Duration;

/// Rollouts' fallback when a metric has no `address`.
pub const ADDRESS_ENV: &str = "ARGO_ROLLOUTS_PROMETHEUS_ADDRESS";

/// Rollouts' default query timeout.
const DEFAULT_TIMEOUT_SECS: i64 = 30;

/// A measured value and the warnings Prometheus attached to it.
#[derive(Debug, Clone, PartialEq)]
pub struct Measured {
    pub value: MeasuredValue,
    pub warnings: Vec<String>,
}

/// The address a metric queries (its own, else [`ADDRESS_ENV`]).
pub fn address(p: &PrometheusMetric) -> Option<String> {
    p.address
        .clone()
        .filter(|a| !a.trim().is_empty())
        .or_else(|| std::env::var(ADDRESS_ENV).ok().filter(|a| !a.trim().is_empty()))
}

pub async fn measure(http: &Http, p: &PrometheusMetric) -> Result<Measured, MeasureError> {
    let address = address(p).ok_or_else(|| {
        MeasureError::Invalid(format!(
            "prometheus: no address (set provider.prometheus.address, or {ADDRESS_ENV})"
        ))
    })?;
    let query = p
        .query
        .as_deref()
        .filter(|q| !q.trim().is_empty())
        .ok_or_else(|| MeasureError::Invalid("prometheus: no query".into()))?;
    if p.range_query.is_some() {
        return Err(MeasureError::Invalid(
            "prometheus: rangeQuery is not supported by barge; use an instant query over a range (e.g. max_over_time(x[5m]))"
                .into(),
        ));
    }
    let timeout = p.timeout.unwrap_or(DEFAULT_TIMEOUT_SECS);
    if timeout < 0 {
        return Err(MeasureError::Invalid("prometheus: timeout cannot be negative".into()));
    }
    let url = format!("{}/api/v1/query", address.trim_end_matches('/'));
    let body = http
        .send(Request {
            method: reqwest::Method::POST,
            url: &url,
            headers: &p.headers,
            body: Some(Body::Form(vec![("query".into(), query.to_string())])),
            timeout: Duration::from_secs(if timeout == 0 { DEFAULT_TIMEOUT_SECS } else { timeout } as u64),
            insecure: p.insecure == Some(true),
            authentication: p.authentication.as_ref(),
        })
        .await?;
    parse_answer(&body)
}

/// Reads an `/api/v1/query` answer.
pub fn parse_answer(body: &str) -> Result<Measured, MeasureError> {
    let v: serde_json::Value = serde_json::from_str(body)
        .map_err(|e| MeasureError::Unreadable(format!("prometheus: the answer is not JSON ({e})")))?;
    if v["status"] != "success" {
        return Err(MeasureError::Invalid(format!(
            "prometheus: {}: {}",
            v["errorType"].as_str().unwrap_or("error"),
            v["error"].as_str().unwrap_or("query failed")
        )));
    }
    let warnings = v["warnings"]
        .as_array()
        .map(|w| w.iter().filter_map(|x| x.as_str().map(str::to_string)).collect())
        .unwrap_or_default();
    let data = &v["data"];
    let result = &data["result"];
    let value = match data["resultType"].as_str() {
        Some("scalar") => MeasuredValue::Float(sample(&result[1])?),
        Some("vector") => MeasuredValue::Vector(
            result
                .as_array()
                .into_iter()
                .flatten()
                .map(|s| sample(&s["value"][1]))
                .collect::<Result<_, _>>()?,
        ),
        Some("matrix") => MeasuredValue::Vector(
            result
                .as_array()
                .into_iter()
                .flatten()
                .flat_map(|s| s["values"].as_array().into_iter().flatten())
                .map(|pair| sample(&pair[1]))
                .collect::<Result<_, _>>()?,
        ),
        other => {
            return Err(MeasureError::Unreadable(format!(
                "prometheus: metric type not supported ({})",
                other.unwrap_or("no resultType")
            )));
        }
    };
    Ok(Measured { value, warnings })
}

/// A sample value as Prometheus writes it: a decimal string, `NaN`, `+Inf` or `-Inf`.
fn sample(v: &serde_json::Value) -> Result<f64, MeasureError> {
    let s = v
        .as_str()
        .ok_or_else(|| MeasureError::Unreadable(format!("prometheus: sample value {v} is not a string")))?;
    match s {
        "NaN" => Ok(f64::NAN),
        "+Inf" | "Inf" => Ok(f64::INFINITY),
        "-Inf" => Ok(f64::NEG_INFINITY),
        _ => s
            .parse()
            .map_err(|_| MeasureError::Unreadable(format!("prometheus: sample value {s:?} is not a number"))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn result_types_map_as_in_rollouts() {
        let vector = r#"{"status":"success","data":{"resultType":"vector","result":[{"metric":{"a":"1"},"value":[1,"0.97"]},{"metric":{},"value":[1,"NaN"]}]}}"#;
        let m = parse_answer(vector).unwrap();
        match m.value {
            MeasuredValue::Vector(v) => {
                assert_eq!(v[0], 0.97);
                assert!(v[1].is_nan());
            }
            other => panic!("{other:?}"),
        }
        let scalar = r#"{"status":"success","data":{"resultType":"scalar","result":[1,"+Inf"]},"warnings":["w"]}"#;
        let m = parse_answer(scalar).unwrap();
        assert_eq!(m.value, MeasuredValue::Float(f64::INFINITY));
        assert_eq!(m.warnings, vec!["w"]);
        let matrix = r#"{"status":"success","data":{"resultType":"matrix","result":[{"metric":{},"values":[[1,"1"],[2,"2"]]},{"metric":{},"values":[[1,"3"]]}]}}"#;
        assert_eq!(
            parse_answer(matrix).unwrap().value,
            MeasuredValue::Vector(vec![1.0, 2.0, 3.0])
        );
        let empty = r#"{"status":"success","data":{"resultType":"vector","result":[]}}"#;
        assert_eq!(parse_answer(empty).unwrap().value, MeasuredValue::Vector(vec![]));
        let string = r#"{"status":"success","data":{"resultType":"string","result":[1,"x"]}}"#;
        assert!(
            parse_answer(string)
                .unwrap_err()
                .to_string()
                .contains("metric type not supported")
        );
        let error = r#"{"status":"error","errorType":"bad_data","error":"parse error"}"#;
        assert_eq!(
            parse_answer(error).unwrap_err().to_string(),
            "prometheus: bad_data: parse error"
        );
    }
}
