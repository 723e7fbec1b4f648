//! A route's demands on a verified token: scopes (all-of and any-of, from `scp` arrays or
//! `scope` strings) and claim conditions in CEL over `claims` and `request`.
//!
//! Owns the decision and its explanation, check by check. It must never see a token that
//! has not been verified (explain's claims-only mode says so in its own output).

use portcullis_expr::Expression;
use serde_json::{Value, json};

use crate::config::{ConditionConfig, ScopeRequirement};
use crate::reject::Rejection;

/// What a caller refused by a condition without a message of its own is told.
pub const DEFAULT_CONDITION_MESSAGE: &str = "a claim condition of this route is not met";

/// A condition compiled once.
#[derive(Debug)]
pub struct Condition {
    expr: Expression,
    message: String,
}

/// What a route demands.
#[derive(Debug, Default)]
pub struct Requirements {
    pub all_of: Vec<String>,
    pub any_of: Vec<String>,
    pub conditions: Vec<Condition>,
}

/// The facts about the request a condition may use, as `request.*`.
pub struct RequestFacts<'a> {
    pub method: &'a str,
    pub path: &'a str,
    pub host: Option<&'a str>,
    pub params: &'a [(String, String)],
}

/// One check and its outcome, for `portcullis explain`.
#[derive(Debug, Clone)]
pub struct Check {
    pub what: String,
    pub passed: bool,
    pub detail: String,
}

impl Requirements {
    pub fn compile(
        scopes: Option<&ScopeRequirement>,
        conditions: &[ConditionConfig],
    ) -> Result<Requirements, String> {
        let scopes = scopes.cloned().unwrap_or_default();
        let conditions = conditions
            .iter()
            .map(|c| {
                let expr = Expression::compile(c.expr()).map_err(|e| e.to_string())?;
                let message = c
                    .message()
                    .map_or_else(|| format!("requires {}", c.expr()), String::from);
                Ok(Condition { expr, message })
            })
            .collect::<Result<_, String>>()?;
        Ok(Requirements {
            all_of: scopes.all_of,
            any_of: scopes.any_of,
            conditions,
        })
    }

    /// Checks `scopes` and `claims`; the first failure is the answer. With `trace`, every
    /// check is run and recorded.
    pub fn evaluate(
        &self,
        scopes: &[String],
        claims: &Value,
        request: &RequestFacts<'_>,
        trace: Option<&mut Vec<Check>>,
    ) -> Result<(), Rejection> {
        let mut out = Outcomes { first: None, trace };
        let has = |s: &String| scopes.iter().any(|g| g == s);
        // The texts of the checks are made only for `explain` (and for failures).
        if !self.all_of.is_empty() {
            let what = || format!("scopes: all of [{}]", self.all_of.join(", "));
            let missing: Vec<&str> = self
                .all_of
                .iter()
                .filter(|s| !has(s))
                .map(String::as_str)
                .collect();
            if missing.is_empty() {
                out.pass(what, || "granted".into());
            } else {
                let needed = missing.join(" ");
                out.fail(
                    what(),
                    format!("missing {needed}"),
                    Rejection::InsufficientScope { needed },
                );
            }
        }
        if !self.any_of.is_empty() {
            let what = || format!("scopes: any of [{}]", self.any_of.join(", "));
            match self.any_of.iter().find(|s| has(s)) {
                Some(s) => out.pass(what, || format!("{s} granted")),
                None => {
                    let needed = self.any_of.join(" ");
                    out.fail(
                        what(),
                        "none granted".into(),
                        Rejection::InsufficientScope { needed },
                    );
                }
            }
        }
        if !self.conditions.is_empty() && !out.settled() {
            let params: serde_json::Map<String, Value> = request
                .params
                .iter()
                .map(|(k, v)| (k.clone(), Value::String(v.clone())))
                .collect();
            let req = json!({
                "method": request.method,
                "path": request.path,
                "host": request.host,
                "params": params,
            });
            for c in &self.conditions {
                let what = format!("condition: {}", c.expr.source());
                let outcome = match c.expr.eval(&[("claims", claims), ("request", &req)]) {
                    Ok(Value::Bool(true)) => Ok("true".into()),
                    Ok(Value::Bool(false)) => Err("false".to_string()),
                    Ok(other) => Err(format!("not a boolean: {other}")),
                    // A missing claim is an error in CEL: the condition is not met.
                    Err(e) => Err(e.to_string()),
                };
                out.record(
                    what,
                    outcome.map_err(|d| {
                        (
                            d,
                            Rejection::ConditionFailed {
                                message: c.message.clone(),
                            },
                        )
                    }),
                );
                if out.settled() {
                    break;
                }
            }
        }
        match out.first {
            Some(r) => Err(r),
            None => Ok(()),
        }
    }

    pub fn is_empty(&self) -> bool {
        self.all_of.is_empty() && self.any_of.is_empty() && self.conditions.is_empty()
    }
}

/// The first failure, and every check when tracing.
struct Outcomes<'t> {
    first: Option<Rejection>,
    trace: Option<&'t mut Vec<Check>>,
}

impl Outcomes<'_> {
    fn pass(&mut self, what: impl FnOnce() -> String, detail: impl FnOnce() -> String) {
        if let Some(t) = self.trace.as_deref_mut() {
            t.push(Check {
                what: what(),
                passed: true,
                detail: detail(),
            });
        }
    }

    fn fail(&mut self, what: String, detail: String, rejection: Rejection) {
        self.record(what, Err((detail, rejection)));
    }

    fn record(&mut self, what: String, outcome: Result<String, (String, Rejection)>) {
        let passed = outcome.is_ok();
        let detail = match outcome {
            Ok(d) => d,
            Err((d, r)) => {
                self.first.get_or_insert(r);
                d
            }
        };
        if let Some(t) = self.trace.as_deref_mut() {
            t.push(Check { what, passed, detail });
        }
    }

    /// Decided, and nobody wants the remaining checks.
    fn settled(&self) -> bool {
        self.first.is_some() && self.trace.is_none()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn req() -> RequestFacts<'static> {
        RequestFacts {
            method: "PUT",
            path: "/api/v1/products/7",
            host: None,
            params: &[],
        }
    }

    #[test]
    fn scopes_and_conditions_decide() {
        let r = Requirements::compile(
            Some(&ScopeRequirement {
                all_of: vec!["products:write".into()],
                any_of: vec![],
            }),
            &[ConditionConfig::Expr("\"admin\" in claims.user_roles".into())],
        )
        .unwrap();
        let claims = |roles: Value| json!({"user_roles": roles});
        let w = vec!["products:write".to_string()];
        assert_eq!(r.evaluate(&w, &claims(json!(["admin"])), &req(), None), Ok(()));
        assert_eq!(
            r.evaluate(&[], &claims(json!(["admin"])), &req(), None),
            Err(Rejection::InsufficientScope {
                needed: "products:write".into()
            })
        );
        assert!(matches!(
            r.evaluate(&w, &claims(json!(["dev"])), &req(), None),
            Err(Rejection::ConditionFailed { .. })
        ));
        let none = json!({});
        assert!(matches!(
            r.evaluate(&w, &none, &req(), None),
            Err(Rejection::ConditionFailed { .. })
        ));
        let mut trace = Vec::new();
        let _ = r.evaluate(&[], &claims(json!(["dev"])), &req(), Some(&mut trace));
        assert_eq!(trace.len(), 2);
        assert!(!trace[0].passed && !trace[1].passed);
    }

    #[test]
    fn any_of_and_numbers() {
        let r = Requirements::compile(
            Some(&ScopeRequirement {
                all_of: vec![],
                any_of: vec!["a".into(), "b".into()],
            }),
            &[ConditionConfig::Expr(
                "claims.level >= 3 && request.method == 'PUT'".into(),
            )],
        )
        .unwrap();
        let c = json!({"level": 4});
        assert_eq!(r.evaluate(&["b".into()], &c, &req(), None), Ok(()));
        assert!(r.evaluate(&["c".into()], &c, &req(), None).is_err());
        let low = json!({"level": 2});
        assert!(r.evaluate(&["a".into()], &low, &req(), None).is_err());
    }
}
