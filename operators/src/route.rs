//! `route`: declarative rules on DICOM attributes choose a branch and the model that should
//! see the instance, or drop it.
//!
//! Rules are tried in order; the first whose every condition matches wins. Conditions on lists
//! match when the attribute equals any listed value (case-insensitively, after trimming the
//! DICOM padding); an empty or absent list matches anything. When no rule matches, `default`
//! decides.
//!
//! A forwarding rule's `model` (a manifest's `name`) is set on the envelope: each
//! `preprocess`/`infer` pair of the chain takes only the instances routed to its model and
//! passes the others on untouched. A forwarding rule without a model forwards to every operator
//! of the chain. The runtime refuses to start when a rule names a model no `infer` runs.

use async_trait::async_trait;
use dicom_dictionary_std::tags;
use dicom_object::InMemDicomObject;
use regex::Regex;
use serde::{Deserialize, Serialize};

use crate::{element_text, ConfigError, Envelope, Operator, Outcome, Processed};

/// What a rule (or the default) does with an instance.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum RouteAction {
    /// Send the instance on, tagged with the rule's `branch` and `model`.
    Forward,
    /// Drop the instance (counted as an intentional drop).
    Drop,
}

/// One routing rule.
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct RouteRule {
    /// Name of the rule: shown by `radstream route --dry-run`, used as the drop metric label.
    pub name: String,
    /// Modality (0008,0060) values that match, e.g. `["CT"]`.
    #[serde(default)]
    pub modality: Vec<String>,
    /// BodyPartExamined (0018,0015) values that match, e.g. `["HEAD", "BRAIN"]`.
    #[serde(default)]
    pub body_part: Vec<String>,
    /// SOPClassUID (0008,0016) values that match.
    #[serde(default)]
    pub sop_class: Vec<String>,
    /// Regular expression that SeriesDescription (0008,103E) must match (an absent description
    /// never matches). Use `(?i)` for case-insensitive.
    #[serde(default)]
    pub series_description: Option<String>,
    /// Sources (sending AE titles) that match.
    #[serde(default)]
    pub source: Vec<String>,
    /// `forward` (default) or `drop`.
    #[serde(default = "default_forward")]
    pub action: RouteAction,
    /// Branch given to forwarded instances (an outcome label); a forwarding rule needs a branch
    /// or a model, and its branch is the model's name when it gives only the model.
    #[serde(default)]
    pub branch: Option<String>,
    /// The model (its manifest's `name`, e.g. `ct-head-bleed`) that the instance goes to; only
    /// that model's `preprocess` and `infer` take it. `forward` only.
    #[serde(default)]
    pub model: Option<String>,
}

impl RouteRule {
    /// The branch a forwarded instance gets: the rule's `branch`, else its `model`.
    fn effective_branch(&self) -> Option<String> {
        self.branch.clone().or_else(|| self.model.clone())
    }
}

fn default_forward() -> RouteAction {
    RouteAction::Forward
}

fn default_drop() -> RouteAction {
    RouteAction::Drop
}

/// Configuration of the `route` operator.
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct RouteConfig {
    /// Rules, tried in order.
    #[serde(default)]
    pub rules: Vec<RouteRule>,
    /// What happens when no rule matches: `drop` (default) or `forward`.
    #[serde(default = "default_drop")]
    pub default_action: RouteAction,
    /// Branch for instances forwarded by the default (the `default_model` when absent).
    #[serde(default)]
    pub default_branch: Option<String>,
    /// Model for instances forwarded by the default.
    #[serde(default)]
    pub default_model: Option<String>,
}

impl RouteConfig {
    /// Checks the rules without building them.
    pub fn validate(&self) -> Result<(), ConfigError> {
        let mut names = std::collections::HashSet::new();
        for (i, rule) in self.rules.iter().enumerate() {
            let at = |k: &str| format!("rules[{i}].{k}");
            if rule.name.trim().is_empty() {
                return Err(ConfigError::new(at("name"), "every rule needs a non-empty name"));
            }
            if !names.insert(rule.name.as_str()) {
                return Err(ConfigError::new(at("name"), format!("rule name {:?} is used twice", rule.name)));
            }
            if let Some(re) = &rule.series_description {
                Regex::new(re).map_err(|e| {
                    ConfigError::new(at("series_description"), format!("not a valid regular expression: {e}"))
                })?;
            }
            if let Some(model) = &rule.model {
                if model.trim().is_empty() {
                    return Err(ConfigError::new(at("model"), "name the model's manifest name, or leave `model` out"));
                }
            }
            match (&rule.action, &rule.branch, &rule.model) {
                (RouteAction::Forward, None, None) => {
                    return Err(ConfigError::new(
                        at("branch"),
                        "a forwarding rule needs a branch or a model (the model's manifest name)",
                    ))
                }
                (RouteAction::Drop, Some(_), _) => {
                    return Err(ConfigError::new(at("branch"), "a dropping rule takes no branch"))
                }
                (RouteAction::Drop, _, Some(_)) => {
                    return Err(ConfigError::new(
                        at("model"),
                        "a dropping rule takes no model (use action = \"forward\" to send it to the model)",
                    ))
                }
                _ => {}
            }
        }
        match (&self.default_action, &self.default_branch, &self.default_model) {
            (_, _, Some(model)) if model.trim().is_empty() => {
                return Err(ConfigError::new("default_model", "name the model's manifest name, or leave it out"))
            }
            (RouteAction::Forward, None, None) => {
                return Err(ConfigError::new(
                    "default_branch",
                    "default_action = \"forward\" needs a default_branch or a default_model",
                ))
            }
            (RouteAction::Drop, _, Some(_)) => {
                return Err(ConfigError::new("default_model", "default_action = \"drop\" takes no default_model"))
            }
            _ => {}
        }
        Ok(())
    }

    /// Every model a rule or the default names, once each, in rule order.
    pub fn models(&self) -> Vec<String> {
        let mut models: Vec<String> = Vec::new();
        for model in self.rules.iter().map(|r| &r.model).chain([&self.default_model]).flatten() {
            if !models.contains(model) {
                models.push(model.clone());
            }
        }
        models
    }

    /// Builds the router.
    pub fn build(&self) -> Result<Router, ConfigError> {
        self.validate()?;
        let rules = self
            .rules
            .iter()
            .map(|r| CompiledRule {
                name: r.name.clone(),
                modality: upper(&r.modality),
                body_part: upper(&r.body_part),
                sop_class: r.sop_class.iter().map(|s| s.trim().to_string()).collect(),
                series_description: r.series_description.as_deref().map(|re| Regex::new(re).expect("validated above")),
                source: upper(&r.source),
                action: r.action.clone(),
                branch: r.effective_branch(),
                model: r.model.clone(),
            })
            .collect();
        Ok(Router {
            rules,
            default_action: self.default_action.clone(),
            default_branch: self.default_branch.clone().or_else(|| self.default_model.clone()),
            default_model: self.default_model.clone(),
        })
    }
}

fn upper(values: &[String]) -> Vec<String> {
    values.iter().map(|v| v.trim().to_ascii_uppercase()).collect()
}

#[derive(Debug)]
struct CompiledRule {
    name: String,
    modality: Vec<String>,
    body_part: Vec<String>,
    sop_class: Vec<String>,
    series_description: Option<Regex>,
    source: Vec<String>,
    action: RouteAction,
    branch: Option<String>,
    model: Option<String>,
}

/// The attributes routing looks at.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RouteAttributes {
    /// Modality.
    pub modality: Option<String>,
    /// BodyPartExamined.
    pub body_part: Option<String>,
    /// SOPClassUID.
    pub sop_class: Option<String>,
    /// SeriesDescription.
    pub series_description: Option<String>,
    /// Sending AE or source name.
    pub source: Option<String>,
}

impl RouteAttributes {
    /// Reads the attributes from a parsed header; `source` comes from the event.
    pub fn from_header(header: &InMemDicomObject, source: Option<&str>) -> Self {
        let text = |tag| element_text(header, tag);
        Self {
            modality: text(tags::MODALITY),
            body_part: text(tags::BODY_PART_EXAMINED),
            sop_class: text(tags::SOP_CLASS_UID),
            series_description: text(tags::SERIES_DESCRIPTION),
            source: source.map(str::to_string),
        }
    }
}

/// The routing decision for one instance.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RouteDecision {
    /// The rule that matched, or `None` for the default.
    pub rule: Option<String>,
    /// Forward or drop.
    pub action: RouteAction,
    /// The branch, for forwarded instances.
    pub branch: Option<String>,
    /// The model the instance goes to, for forwarded instances whose rule names one.
    pub model: Option<String>,
}

/// The `route` operator.
#[derive(Debug)]
pub struct Router {
    rules: Vec<CompiledRule>,
    default_action: RouteAction,
    default_branch: Option<String>,
    default_model: Option<String>,
}

fn any_of(allowed: &[String], value: Option<&str>, fold_case: bool) -> bool {
    if allowed.is_empty() {
        return true;
    }
    match value {
        None => false,
        Some(v) if fold_case => allowed.iter().any(|a| a.eq_ignore_ascii_case(v.trim())),
        Some(v) => allowed.iter().any(|a| a == v.trim()),
    }
}

impl Router {
    /// Evaluates the rules on one instance's attributes.
    pub fn decide(&self, attrs: &RouteAttributes) -> RouteDecision {
        for rule in &self.rules {
            let matches = any_of(&rule.modality, attrs.modality.as_deref(), true)
                && any_of(&rule.body_part, attrs.body_part.as_deref(), true)
                && any_of(&rule.sop_class, attrs.sop_class.as_deref(), false)
                && any_of(&rule.source, attrs.source.as_deref(), true)
                && rule
                    .series_description
                    .as_ref()
                    .is_none_or(|re| attrs.series_description.as_deref().is_some_and(|d| re.is_match(d)));
            if matches {
                return RouteDecision {
                    rule: Some(rule.name.clone()),
                    action: rule.action.clone(),
                    branch: rule.branch.clone(),
                    model: rule.model.clone(),
                };
            }
        }
        RouteDecision {
            rule: None,
            action: self.default_action.clone(),
            branch: self.default_branch.clone(),
            model: self.default_model.clone(),
        }
    }
}

#[async_trait]
impl Operator for Router {
    async fn process_batch(&mut self, batch: Vec<Envelope>) -> Vec<Processed> {
        batch
            .into_iter()
            .map(|mut envelope| {
                let attrs = RouteAttributes::from_header(envelope.header(), envelope.event.source.as_deref());
                let decision = self.decide(&attrs);
                match decision.action {
                    RouteAction::Forward => {
                        envelope.branch = decision.branch;
                        envelope.model = decision.model;
                        Processed::forward(envelope)
                    }
                    RouteAction::Drop => Processed {
                        envelope,
                        outcome: Outcome::Drop { rule: decision.rule.unwrap_or_else(|| "default".to_string()) },
                    },
                }
            })
            .collect()
    }
}

impl crate::contract::OperatorSpec for RouteConfig {
    const KIND: &'static str = "route";

    fn validate(&self) -> Result<(), crate::contract::ConfigError> {
        RouteConfig::validate(self)
    }

    fn build(
        &self,
        _ctx: &crate::contract::BuildContext,
    ) -> Result<Box<dyn crate::contract::Operator>, crate::contract::ConfigError> {
        Ok(Box::new(RouteConfig::build(self)?))
    }

    fn example() -> &'static str {
        r#"
default_action = "forward"
default_branch = "all"

[[rules]]
name = "chest"
modality = ["CR", "DX"]
model = "cxr"
"#
    }
}

#[cfg(test)]
mod tests;
