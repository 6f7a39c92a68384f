//! compose-output, set-metadata, set-freight-alias, fail.

use super::{Effect, StepCtx, StepDone, StepError, StepResult, config};
use crate::BoxFuture;
use serde::Deserialize;
use serde_json::{Map, Value as Json};

pub(super) fn compose_output<'a>(_ctx: &'a StepCtx<'a>, cfg: Json) -> BoxFuture<'a, StepResult> {
    Box::pin(async move {
        match cfg {
            Json::Object(m) => super::done(m),
            _ => Err(StepError::Invalid(
                "compose-output: config must be a map of outputs".into(),
            )),
        }
    })
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct MetadataConfig {
    updates: Vec<MetadataUpdate>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct MetadataUpdate {
    kind: String,
    name: String,
    values: Map<String, Json>,
}

pub(super) fn set_metadata<'a>(_ctx: &'a StepCtx<'a>, cfg: Json) -> BoxFuture<'a, StepResult> {
    Box::pin(async move {
        let c: MetadataConfig = config("set-metadata", cfg)?;
        let effects = c
            .updates
            .into_iter()
            .map(|u| match u.kind.as_str() {
                "Stage" => Ok(Effect::StageMetadata {
                    stage: u.name,
                    values: u.values,
                }),
                "Freight" => Ok(Effect::FreightMetadata {
                    freight: u.name,
                    values: u.values,
                }),
                other => Err(StepError::Invalid(format!(
                    "set-metadata: kind `{other}` must be Stage or Freight"
                ))),
            })
            .collect::<Result<_, _>>()?;
        Ok(StepDone::Done {
            outputs: Map::new(),
            effects,
        })
    })
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct AliasConfig {
    #[serde(default)]
    name: Option<String>,
    alias: String,
}

pub(super) fn set_freight_alias<'a>(ctx: &'a StepCtx<'a>, cfg: Json) -> BoxFuture<'a, StepResult> {
    Box::pin(async move {
        let c: AliasConfig = config("set-freight-alias", cfg)?;
        let freight = c.name.unwrap_or_else(|| ctx.promotion.freight.metadata.name.clone());
        Ok(StepDone::Done {
            outputs: Map::new(),
            effects: vec![Effect::FreightAlias {
                freight,
                alias: c.alias,
            }],
        })
    })
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct FailConfig {
    #[serde(default)]
    message: Option<String>,
}

pub(super) fn fail<'a>(_ctx: &'a StepCtx<'a>, cfg: Json) -> BoxFuture<'a, StepResult> {
    Box::pin(async move {
        let c: FailConfig = config("fail", cfg)?;
        Err(StepError::Failed(c.message.unwrap_or_else(|| {
            "the promotion was failed on purpose (fail step)".into()
        })))
    })
}
