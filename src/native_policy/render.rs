//! The generated CEL put into typed `admissionregistration.k8s.io/v1`
//! objects (k8s-openapi), and their YAML.

use super::cel::{self, Rule, Variable};
use super::{Options, PolicyError};
use crate::config::Config;
use crate::engine::Field;
use k8s_openapi::api::admissionregistration::v1 as ar;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{LabelSelector, LabelSelectorRequirement, ObjectMeta};
use serde_json::Value;

pub(super) fn objects(config: &Config, options: &Options, rules: &[(Field, Rule)]) -> Result<Vec<Value>, PolicyError> {
    let name = |suffix: &str| {
        let base = format!("{}{suffix}", options.name);
        if options.static_manifests {
            format!("{base}.static.k8s.io")
        } else {
            base
        }
    };
    let mut pod = Vec::new();
    let mut container = Vec::new();
    let mut spec = Vec::new();
    for (_, rule) in rules {
        match rule {
            Rule::Off | Rule::Within(_) => {}
            Rule::Spec(s) => spec.push(s.clone()),
            Rule::Pod(p) => pod.push(p.clone()),
            Rule::Container(c) => container.push(c.clone()),
            Rule::Both { pod: p, container: c } => {
                pod.push(p.clone());
                container.push(c.clone());
            }
        }
    }
    let mut variables = cel::variables(config);
    variables.push(Variable {
        name: "specAdds",
        expression: sum(&spec),
    });
    variables.push(Variable {
        name: "podAdds",
        expression: sum(&pod),
    });
    for (list, in_scope) in cel::LISTS {
        variables.push(Variable {
            name: cel::list_variable(list),
            expression: format!(
                "object.spec.?{list}.orValue([]).map(c, {in_scope} ?\n{}\n: [])",
                sum(&container)
            ),
        });
    }
    let conditions = cel::match_conditions(config);
    let mutating = ar::MutatingAdmissionPolicy {
        metadata: meta(name("")),
        spec: Some(ar::MutatingAdmissionPolicySpec {
            failure_policy: Some("Fail".into()),
            // Run again after a later mutator (a sidecar injector): add-only, so idempotent.
            reinvocation_policy: Some("IfNeeded".into()),
            match_constraints: Some(pod_rules()),
            match_conditions: Some(match_conditions(&conditions)),
            variables: Some(to_variables(variables)),
            mutations: Some(vec![ar::Mutation {
                patch_type: "JSONPatch".into(),
                json_patch: Some(ar::JSONPatch {
                    expression: Some(cel::mutation()),
                }),
                apply_configuration: None,
            }]),
            param_kind: None,
        }),
    };
    let mutating_binding = ar::MutatingAdmissionPolicyBinding {
        metadata: meta(name("")),
        spec: Some(ar::MutatingAdmissionPolicyBindingSpec {
            policy_name: Some(name("")),
            match_resources: Some(bound_namespaces(options)),
            param_ref: None,
        }),
    };
    let mut out = vec![json(&mutating)?, json(&mutating_binding)?];

    // Warnings about explicit values weaker than the baseline (the webhook's `kept`).
    let env = cel::Env { config };
    let mut warn = Vec::new();
    for (f, rule) in rules {
        if matches!(rule, Rule::Off) {
            continue;
        }
        if let Some(cond) = cel::kept(&env, *f) {
            warn.push(ar::Validation {
                expression: format!("!({cond})"),
                message: Some(format!(
                    "secure-defaults: {f} kept as written, weaker than the baseline (Pod Security \"restricted\" may reject it)"
                )),
                message_expression: None,
                reason: None,
            });
        }
    }
    let mut shared = cel::variables(config);
    shared.extend(cel::deny_variables().into_iter().filter(|v| v.name == "containers"));
    if !warn.is_empty() {
        out.extend(validating(
            &name("-warn"),
            "Warn",
            // A warning never blocks a pod, not even when its CEL fails.
            "Ignore",
            Some(match_conditions(&conditions)),
            to_variables(shared),
            warn,
            options,
        )?);
    }
    if !config.deny.is_empty() {
        let mut deny = Vec::new();
        for &check in &config.deny {
            deny.push(ar::Validation {
                expression: format!("!({})", cel::deny_check(check)?),
                message: Some(format!(
                    "secure-defaults: violates Pod Security \"restricted\" check this cluster denies: {}",
                    check.as_str()
                )),
                message_expression: None,
                reason: Some("Forbidden".into()),
            });
        }
        out.extend(validating(
            &name("-deny"),
            "Deny",
            "Fail",
            None,
            to_variables(cel::deny_variables()),
            deny,
            options,
        )?);
    }
    Ok(out)
}

fn validating(
    name: &str,
    action: &str,
    failure_policy: &str,
    conditions: Option<Vec<ar::MatchCondition>>,
    variables: Vec<ar::Variable>,
    validations: Vec<ar::Validation>,
    options: &Options,
) -> Result<Vec<Value>, PolicyError> {
    let policy = ar::ValidatingAdmissionPolicy {
        metadata: meta(name.to_string()),
        spec: Some(ar::ValidatingAdmissionPolicySpec {
            failure_policy: Some(failure_policy.into()),
            match_constraints: Some(pod_rules()),
            match_conditions: conditions,
            variables: Some(variables),
            validations: Some(validations),
            audit_annotations: None,
            param_kind: None,
        }),
        status: None,
    };
    let binding = ar::ValidatingAdmissionPolicyBinding {
        metadata: meta(name.to_string()),
        spec: ar::ValidatingAdmissionPolicyBindingSpec {
            policy_name: name.to_string(),
            validation_actions: vec![action.to_string()],
            match_resources: Some(bound_namespaces(options)),
            param_ref: None,
        },
    };
    Ok(vec![json(&policy)?, json(&binding)?])
}

/// `(a) + (b) + ...`, or `[]` for none.
fn sum(parts: &[String]) -> String {
    if parts.is_empty() {
        return "[]".into();
    }
    // One part per line: the generated YAML is reviewed as diffs.
    parts.iter().map(|p| format!("({p})")).collect::<Vec<_>>().join(" +\n")
}

fn meta(name: String) -> ObjectMeta {
    ObjectMeta {
        name: Some(name),
        labels: Some(
            [
                ("app.kubernetes.io/name", "secure-defaults"),
                ("app.kubernetes.io/component", "native-policy"),
            ]
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .into(),
        ),
        ..ObjectMeta::default()
    }
}

/// What the webhook registers for: pod creation and `kubectl debug`.
fn pod_rules() -> ar::MatchResources {
    let rule = |operation: &str, resource: &str| ar::NamedRuleWithOperations {
        api_groups: Some(vec![String::new()]),
        api_versions: Some(vec!["v1".into()]),
        operations: Some(vec![operation.into()]),
        resources: Some(vec![resource.into()]),
        ..Default::default()
    };
    ar::MatchResources {
        resource_rules: Some(vec![rule("CREATE", "pods"), rule("UPDATE", "pods/ephemeralcontainers")]),
        match_policy: Some("Equivalent".into()),
        ..Default::default()
    }
}

/// The webhook's namespaceSelector: all namespaces but the excluded ones.
fn bound_namespaces(options: &Options) -> ar::MatchResources {
    let not_in = |key: &str, values: Vec<String>| LabelSelectorRequirement {
        key: key.into(),
        operator: "NotIn".into(),
        values: Some(values),
    };
    let mut expressions = Vec::new();
    if !options.excluded_namespaces.is_empty() {
        expressions.push(not_in(
            "kubernetes.io/metadata.name",
            options.excluded_namespaces.clone(),
        ));
    }
    if let Some((key, value)) = &options.ignore_label {
        expressions.push(not_in(key, vec![value.clone()]));
    }
    ar::MatchResources {
        namespace_selector: Some(LabelSelector {
            match_expressions: Some(expressions),
            match_labels: None,
        }),
        ..Default::default()
    }
}

fn match_conditions(conditions: &[(&str, String)]) -> Vec<ar::MatchCondition> {
    conditions
        .iter()
        .map(|(name, expression)| ar::MatchCondition {
            name: name.to_string(),
            expression: expression.clone(),
        })
        .collect()
}

fn to_variables(variables: Vec<Variable>) -> Vec<ar::Variable> {
    variables
        .into_iter()
        .map(|v| ar::Variable {
            name: v.name.to_string(),
            expression: v.expression,
        })
        .collect()
}

fn json<T: k8s_openapi::Resource + serde::Serialize>(object: &T) -> Result<Value, PolicyError> {
    // Typed objects always serialize; the error arm keeps the library free of panics.
    serde_json::to_value(object).map_err(|e| PolicyError::Unsupported {
        setting: T::KIND.to_string(),
        reason: e.to_string(),
    })
}

/// The objects as one multi-document YAML stream, with a header saying where
/// they come from.
pub fn to_yaml(objects: &[Value], header: &str) -> String {
    let mut out = String::new();
    for line in header.lines() {
        out.push_str(&format!("# {line}\n").replace("# \n", "#\n"));
    }
    for object in objects {
        out.push_str("---\n");
        out.push_str(&serde_yaml::to_string(object).expect("a JSON value is always YAML"));
    }
    out
}
