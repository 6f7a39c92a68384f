//! The job provider: each measurement creates a `batch/v1` Job from the metric's template and
//! follows it (a WATCH from its resourceVersion) until it completes, as Rollouts does: the
//! Job's `Complete` condition is a Successful measurement, `Failed` a Failed one, and a pod
//! that cannot pull its image (ErrImagePull, ImagePullBackOff, InvalidImageName) an
//! Inconclusive one at once. A Job whose name is taken (a run resumed after a crash) is
//! followed rather than created again.

use crate::MeasureError;
use barge_core::analysis::{MeasuredValue, Phase};
use barge_core::model::analysis::JobMetric;
use barge_kube::{Clusters, JOB, KubeError, Objects, POD, resource_version};
use serde_json::{Value, json};
use std::sync::Arc;
use std::time::Duration;

/// Where Job metrics run.
#[derive(Clone)]
pub struct JobTarget {
    pub clusters: Arc<Clusters>,
    /// A kubeconfig context; `None`: the current one.
    pub context: Option<String>,
    /// The namespace for Jobs whose template names none (Rollouts: the run's namespace).
    pub namespace: String,
    /// Names this run's Jobs (`<run>-<metric>-<n>`) and labels them.
    pub run: String,
}

fn kube_error(e: KubeError) -> MeasureError {
    match e.class() {
        barge_core::ErrorClass::Auth => MeasureError::Auth(e.to_string()),
        barge_core::ErrorClass::Invalid | barge_core::ErrorClass::NotFound => MeasureError::Invalid(e.to_string()),
        _ => MeasureError::Transient(e.to_string()),
    }
}

/// A DNS-1123 label (also a valid label value): lowercase, `-` for anything else, trimmed, at
/// most 63 characters.
fn dns_label(text: &str) -> String {
    let mut s: String = text
        .to_lowercase()
        .chars()
        .map(|c| if c.is_ascii_alphanumeric() { c } else { '-' })
        .collect();
    s.truncate(63);
    s.trim_matches('-').to_string()
}

/// The Job of measurement `n`: `<run>-<metric>-<n>`, shortened to a DNS label that keeps the
/// measurement number (which tells a metric's Jobs apart).
pub fn job_name(run: &str, metric: &str, n: u64) -> String {
    let suffix = format!("-{n}");
    let mut stem = dns_label(&format!("{run}-{metric}"));
    stem.truncate(63 - suffix.len());
    format!("{}{suffix}", stem.trim_end_matches('-'))
}

/// The Job's outcome, once it has one: (phase, value shown).
fn outcome(job: &Value) -> Option<(Phase, String)> {
    let conditions = job["status"]["conditions"].as_array()?;
    let is = |t: &str| conditions.iter().find(|c| c["type"] == t && c["status"] == "True");
    if is("Complete").is_some() {
        return Some((Phase::Successful, "Complete".into()));
    }
    is("Failed").map(|c| {
        let why = [c["reason"].as_str(), c["message"].as_str()]
            .into_iter()
            .flatten()
            .filter(|s| !s.is_empty())
            .collect::<Vec<_>>()
            .join(": ");
        (
            Phase::Failed,
            if why.is_empty() {
                "Failed".into()
            } else {
                format!("Failed ({why})")
            },
        )
    })
}

/// Runs measurement `n` of `metric` as a Job and waits for it; returns the decided phase and
/// the value shown (`Complete`, or `Failed (reason: message)`).
pub async fn measure(
    target: &JobTarget,
    metric: &str,
    n: u64,
    job: &JobMetric,
) -> Result<(Phase, MeasuredValue), MeasureError> {
    let spec = job
        .spec
        .clone()
        .ok_or_else(|| MeasureError::Invalid("job: no spec".into()))?;
    let meta = job.metadata.clone().unwrap_or(Value::Null);
    let namespace = meta["namespace"].as_str().unwrap_or(&target.namespace).to_string();
    let name = job_name(&target.run, metric, n);
    let mut labels = meta["labels"].clone();
    if !labels.is_object() {
        labels = json!({});
    }
    labels["analysis.barge.dev/run"] = json!(dns_label(&target.run));
    labels["analysis.barge.dev/metric"] = json!(dns_label(metric));
    let object = json!({
        "metadata": {"name": name, "namespace": namespace, "labels": labels, "annotations": meta["annotations"]},
        "spec": spec,
    });
    let client = target
        .clusters
        .client(target.context.as_deref())
        .await
        .map_err(kube_error)?;
    let jobs = Objects::new(client.clone(), JOB, &namespace);
    let pods = Objects::new(client, POD, &namespace);
    let mut current = match jobs.create(&object).await {
        Ok(j) => j,
        Err(KubeError::Conflict(_)) => jobs.get(&name).await.map_err(kube_error)?,
        Err(e) => return Err(kube_error(e)),
    };
    loop {
        if let Some((phase, shown)) = outcome(&current) {
            return Ok((phase, MeasuredValue::String(shown)));
        }
        // A pod that cannot pull its image will not get better by waiting: Inconclusive at
        // once, as in Rollouts.
        if let Ok(list) = pods.list(&format!("job-name={name}")).await
            && let Some(why) = list.iter().find_map(image_problem)
        {
            return Ok((Phase::Inconclusive, MeasuredValue::String(why)));
        }
        let rv = resource_version(&current).to_string();
        current = match jobs.next_change(&name, &rv, Duration::from_secs(5)).await {
            Ok(Some(changed)) => changed,
            // Nothing happened in a minute, or the watch expired: read it again.
            Ok(None) => jobs.get(&name).await.map_err(kube_error)?,
            Err(KubeError::NotFound(_)) => {
                return Err(MeasureError::Invalid(format!(
                    "job {namespace}/{name} was deleted before it finished"
                )));
            }
            Err(e) => return Err(kube_error(e)),
        };
    }
}

/// `ImagePullBackOff: <message>` when one of the pod's containers cannot get its image.
fn image_problem(pod: &Value) -> Option<String> {
    pod["status"]["containerStatuses"]
        .as_array()?
        .iter()
        .filter_map(|c| c["state"]["waiting"].as_object())
        .find(|w| {
            matches!(
                w.get("reason").and_then(Value::as_str),
                Some("ErrImagePull" | "ImagePullBackOff" | "InvalidImageName")
            )
        })
        .map(|w| {
            format!(
                "{}: {}",
                w.get("reason").and_then(Value::as_str).unwrap_or(""),
                w.get("message").and_then(Value::as_str).unwrap_or("")
            )
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn job_names_are_dns_labels() {
        assert_eq!(
            job_name("dev.75f1aac.1a2b", "Smoke Test", 3),
            "dev-75f1aac-1a2b-smoke-test-3"
        );
        let long = job_name(&"x".repeat(80), "metric", 12);
        assert!(long.len() <= 63 && long.ends_with("-12"), "{long}");
    }

    #[test]
    fn the_jobs_conditions_decide() {
        let done = json!({"status": {"conditions": [{"type": "Complete", "status": "True"}]}});
        assert_eq!(outcome(&done), Some((Phase::Successful, "Complete".into())));
        let failed = json!({"status": {"conditions": [{"type": "Failed", "status": "True", "reason": "BackoffLimitExceeded", "message": "Job has reached the specified backoff limit"}]}});
        assert_eq!(
            outcome(&failed),
            Some((
                Phase::Failed,
                "Failed (BackoffLimitExceeded: Job has reached the specified backoff limit)".into()
            ))
        );
        assert_eq!(outcome(&json!({"status": {"active": 1}})), None);
    }
}
