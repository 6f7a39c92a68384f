//! compose-output, set-metadata, set-freight-alias, fail.

use super::{Effect, StepCtx, StepDone, StepError, StepResult, config};
use crate::BoxFuture;
use barge_core::step_config::{Fail, SetFreightAlias, SetMetadata};
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

pub(super) fn set_metadata<'a>(_ctx: &'a StepCtx<'a>, cfg: Json) -> BoxFuture<'a, StepResult> {
    Box::pin(async move {
        let c: SetMetadata = config("set-metadata", cfg)?;
        let effects = c
            .updates
            .into_iter()
            .map(|u| match u.kind.as_str() {
                "Stage" => Ok(Effect::StageMetadata {
                    stage: u.name,
                    values: u.values.into_iter().collect(),
                }),
                "Freight" => Ok(Effect::FreightMetadata {
                    freight: u.name,
                    values: u.values.into_iter().collect(),
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

pub(super) fn set_freight_alias<'a>(ctx: &'a StepCtx<'a>, cfg: Json) -> BoxFuture<'a, StepResult> {
    Box::pin(async move {
        let c: SetFreightAlias = config("set-freight-alias", cfg)?;
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

pub(super) fn fail<'a>(_ctx: &'a StepCtx<'a>, cfg: Json) -> BoxFuture<'a, StepResult> {
    Box::pin(async move {
        let c: Fail = config("fail", cfg)?;
        Err(StepError::Failed(c.message.unwrap_or_else(|| {
            "the promotion was failed on purpose (fail step)".into()
        })))
    })
}
