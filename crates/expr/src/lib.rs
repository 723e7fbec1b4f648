//! Expressions for claim values (and, later, route conditions), in Google's Common
//! Expression Language — the language Envoy, Kubernetes and cloud IAM use.
//!
//! Owns compiling an expression once and evaluating it against JSON variables. It must
//! never run anything but CEL: no I/O, no functions that reach outside the given values,
//! and a bounded source length.

use std::sync::Arc;

use serde_json::Value as Json;

/// Longest expression source accepted.
pub const MAX_SOURCE_LEN: usize = 4096;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ExprError {
    #[error("the expression is longer than {MAX_SOURCE_LEN} characters")]
    TooLong,
    #[error("the expression does not parse: {0}")]
    Parse(String),
    #[error("the expression failed: {0}")]
    Eval(String),
    #[error("the expression's result cannot be put in a token: {0}")]
    Unrepresentable(String),
}

/// A compiled expression, cheap to evaluate many times and to share between threads.
pub struct Expression {
    source: String,
    program: Arc<cel::Program>,
}

impl std::fmt::Debug for Expression {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_tuple("Expression").field(&self.source).finish()
    }
}

impl Expression {
    pub fn compile(source: &str) -> Result<Expression, ExprError> {
        if source.len() > MAX_SOURCE_LEN {
            return Err(ExprError::TooLong);
        }
        let program = cel::Program::compile(source).map_err(|e| ExprError::Parse(e.to_string()))?;
        Ok(Expression {
            source: source.to_owned(),
            program: Arc::new(program),
        })
    }

    pub fn source(&self) -> &str {
        &self.source
    }

    /// Evaluates with the given variables; `null` means "no value".
    pub fn eval(&self, vars: &[(&str, &Json)]) -> Result<Json, ExprError> {
        // The standard library is built once per process, not per evaluation.
        static STDLIB: std::sync::OnceLock<Arc<cel::Env>> = std::sync::OnceLock::new();
        let env = STDLIB.get_or_init(|| Arc::new(cel::Env::stdlib()));
        let mut ctx = cel::Context::with_env(env.clone());
        for (name, value) in vars {
            let v = cel::to_value(value).map_err(|e| ExprError::Eval(e.to_string()))?;
            ctx.add_variable_from_value(*name, v);
        }
        let out = self
            .program
            .execute(&ctx)
            .map_err(|e| ExprError::Eval(e.to_string()))?;
        out.json()
            .map_err(|e| ExprError::Unrepresentable(format!("{e:?}")))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn evaluates_okta_style_claims() {
        let user = json!({"profile": {"department": "IT", "roles": ["admin", "dev"]}});
        let e = Expression::compile(r#"user.profile.department == "IT" ? "admin" : "user""#).unwrap();
        assert_eq!(e.eval(&[("user", &user)]).unwrap(), json!("admin"));
        let e = Expression::compile(r#""admin" in user.profile.roles"#).unwrap();
        assert_eq!(e.eval(&[("user", &user)]).unwrap(), json!(true));
        let e = Expression::compile("user.profile.roles").unwrap();
        assert_eq!(e.eval(&[("user", &user)]).unwrap(), json!(["admin", "dev"]));
        assert!(Expression::compile("user.(").is_err());
        let e = Expression::compile("user.profile.missing").unwrap();
        assert!(e.eval(&[("user", &user)]).is_err());
    }

    #[test]
    fn user_or_app_claims_and_group_filters() {
        let user = json!({"profile": {"department": "sales"}, "groups": ["admin", "staff"]});
        let app = json!({"profile": {"department": "IT", "roles": ["sysadmin"]}});
        let null = json!(null);
        let dept =
            Expression::compile("user != null ? user.profile.department : app.profile.department").unwrap();
        assert_eq!(
            dept.eval(&[("app", &app), ("user", &user)]).unwrap(),
            json!("sales")
        );
        assert_eq!(dept.eval(&[("app", &app), ("user", &null)]).unwrap(), json!("IT"));
        let roles = Expression::compile(
            r#"user != null ? user.groups.filter(g, g in ["admin", "sysadmin"]) : app.profile.roles"#,
        )
        .unwrap();
        assert_eq!(
            roles.eval(&[("app", &app), ("user", &user)]).unwrap(),
            json!(["admin"])
        );
        assert_eq!(
            roles.eval(&[("app", &app), ("user", &null)]).unwrap(),
            json!(["sysadmin"])
        );
    }
}
