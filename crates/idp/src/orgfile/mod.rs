//! Declarative org files: the org's authorization servers (scopes, claims, policies,
//! rules), clients, groups, users and sign-in settings written as YAML and applied like infrastructure as code.
//!
//! `parse` reads and validates a file, reporting every problem at once with its line;
//! `plan` compares it with the store and yields a diff; `apply` makes the store match;
//! `export` writes the store back out in the same format. Client secrets never appear in
//! a file: a client names the environment variable that holds its secret (`secretEnv`),
//! or gets one generated on creation.

mod diff;
mod document;
mod validate;

pub use document::{FileError, OrgDocument, key_position, parse, yaml_error};

use std::collections::{BTreeSet, HashMap};

use portcullis_core::{
    AuthMethod, AuthorizationServer, Client, GroupSpec, SignInSettings, UserSpec, UserStatus,
};
use portcullis_jose::{MasterKey, SecretHasher};
use portcullis_store::{SecretUpdate, Store, StoreError};

use crate::keys;
use crate::view::ViewError;

/// Where `secretEnv` values come from; tests pass a map instead of the process environment.
pub trait SecretSource {
    fn get(&self, name: &str) -> Option<String>;
}

/// The process environment.
pub struct ProcessEnv;

impl SecretSource for ProcessEnv {
    fn get(&self, name: &str) -> Option<String> {
        std::env::var(name).ok()
    }
}

impl SecretSource for HashMap<String, String> {
    fn get(&self, name: &str) -> Option<String> {
        HashMap::get(self, name).cloned()
    }
}

/// Shortest secret accepted from the environment.
pub const MIN_SECRET_LEN: usize = 16;

#[derive(Debug, thiserror::Error)]
pub enum ApplyError {
    #[error("{}", .0.iter().map(|e| e.to_string()).collect::<Vec<_>>().join("\n"))]
    Invalid(Vec<FileError>),
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error(transparent)]
    Keys(#[from] ViewError),
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ChangeKind {
    Create,
    Update,
    Delete,
}

/// One resource's change and, for updates, the fields that differ.
#[derive(Debug, Clone)]
pub struct Change {
    pub kind: ChangeKind,
    pub resource: &'static str,
    pub id: String,
    pub details: Vec<String>,
}

/// What `apply` will do.
#[derive(Debug, Default)]
pub struct Plan {
    pub changes: Vec<Change>,
    servers: Vec<AuthorizationServer>,
    clients: Vec<(Client, SecretUpdate, Option<String>)>,
    delete_servers: Vec<String>,
    delete_clients: Vec<String>,
    sign_in: Option<SignInSettings>,
    groups: Vec<GroupSpec>,
    /// Users to create or update: the spec, the existing id, and a password to set.
    users: Vec<(UserSpec, Option<String>, Option<String>)>,
    delete_groups: Vec<String>,
    delete_users: Vec<String>,
}

impl Plan {
    pub fn is_empty(&self) -> bool {
        self.changes.is_empty()
    }

    /// The plan as a diff: `+` create, `~` update (with the fields), `-` delete.
    pub fn render(&self) -> String {
        if self.changes.is_empty() {
            return "No changes: the org already matches the file.\n".into();
        }
        let mut out = String::new();
        for c in &self.changes {
            let sign = match c.kind {
                ChangeKind::Create => '+',
                ChangeKind::Update => '~',
                ChangeKind::Delete => '-',
            };
            out.push_str(&format!("{sign} {} {}\n", c.resource, c.id));
            for d in &c.details {
                out.push_str(&format!("    {d}\n"));
            }
        }
        let count = |k: ChangeKind| self.changes.iter().filter(|c| c.kind == k).count();
        out.push_str(&format!(
            "Plan: {} to create, {} to update, {} to delete.\n",
            count(ChangeKind::Create),
            count(ChangeKind::Update),
            count(ChangeKind::Delete)
        ));
        out
    }
}

/// Compares the file with the store. With `prune`, servers and clients missing from the
/// file are deleted; without it they are left alone.
pub async fn plan(
    store: &Store,
    hasher: &SecretHasher,
    org_id: &str,
    doc: &OrgDocument,
    secrets: &dyn SecretSource,
    prune: bool,
) -> Result<Plan, ApplyError> {
    let current = store.load_org(org_id).await?;
    let known: BTreeSet<String> = current
        .clients
        .iter()
        .map(|c| c.client.client_id.clone())
        .collect();
    let current_groups = store.list_groups(org_id).await?;
    let known_groups: BTreeSet<String> = current_groups.iter().map(|g| g.name.clone()).collect();
    validate::references(doc, &known, &known_groups).map_err(ApplyError::Invalid)?;

    let mut plan = Plan::default();
    let mut errors = Vec::new();
    for s in &doc.authorization_servers {
        match current.servers.iter().find(|c| c.id == s.id) {
            None => plan.changes.push(Change {
                kind: ChangeKind::Create,
                resource: "authorizationServer",
                id: s.id.clone(),
                details: vec![],
            }),
            Some(old) if old != s => plan.changes.push(Change {
                kind: ChangeKind::Update,
                resource: "authorizationServer",
                id: s.id.clone(),
                details: diff::fields(old, s),
            }),
            Some(_) => continue,
        }
        plan.servers.push(s.clone());
    }
    for (i, c) in doc.clients.iter().enumerate() {
        let old = current.clients.iter().find(|o| o.client.client_id == c.client_id);
        let old_hash = old.and_then(|o| o.secret_hash.clone());
        let (secret, generated, secret_note) = if c.token_endpoint_auth_method == AuthMethod::None {
            match old_hash {
                Some(_) => (SecretUpdate::Clear, None, Some("secret: removed (public client)")),
                None => (SecretUpdate::Keep, None, None),
            }
        } else if let Some(var) = &c.secret_env {
            match secrets.get(var) {
                None => {
                    errors.push(FileError::at_path(
                        format!("clients[{i}].secretEnv"),
                        format!(
                            "the environment variable {var} is not set; export it with the client's secret"
                        ),
                    ));
                    continue;
                }
                Some(v) if v.len() < MIN_SECRET_LEN => {
                    errors.push(FileError::at_path(
                        format!("clients[{i}].secretEnv"),
                        format!("the secret in {var} is shorter than {MIN_SECRET_LEN} characters"),
                    ));
                    continue;
                }
                Some(v) => match old_hash {
                    Some(h) if hasher.verify(&v, &h) => (SecretUpdate::Keep, None, None),
                    Some(_) => (SecretUpdate::Set(hasher.hash(&v)), None, Some("secret: changed")),
                    None => (SecretUpdate::Set(hasher.hash(&v)), None, Some("secret: set")),
                },
            }
        } else if old_hash.is_some() {
            (SecretUpdate::Keep, None, None)
        } else {
            let s = SecretHasher::generate_secret();
            (
                SecretUpdate::Set(hasher.hash(&s)),
                Some(s),
                Some("secret: generated (printed once on apply)"),
            )
        };
        let mut details = match old {
            Some(o) if o.client != *c => {
                let d = diff::fields(&o.client, c);
                if d.is_empty() { vec!["(changed)".into()] } else { d }
            }
            _ => vec![],
        };
        details.extend(secret_note.map(String::from));
        let kind = match old {
            None => ChangeKind::Create,
            Some(_) if !details.is_empty() => ChangeKind::Update,
            Some(_) => continue,
        };
        plan.changes.push(Change {
            kind,
            resource: "client",
            id: c.client_id.clone(),
            details,
        });
        plan.clients.push((c.clone(), secret, generated));
    }
    let current_sign_in = store.sign_in_settings(org_id).await?;
    let wanted_sign_in = doc.sign_in.clone().unwrap_or_default();
    if wanted_sign_in != current_sign_in {
        plan.changes.push(Change {
            kind: ChangeKind::Update,
            resource: "signIn",
            id: "settings".into(),
            details: diff::fields(&current_sign_in, &wanted_sign_in),
        });
        plan.sign_in = Some(wanted_sign_in.clone());
    }
    for g in &doc.groups {
        match current_groups.iter().find(|c| c.name == g.name) {
            Some(c) if c == g => continue,
            Some(c) => plan.changes.push(Change {
                kind: ChangeKind::Update,
                resource: "group",
                id: g.name.clone(),
                details: diff::fields(c, g),
            }),
            None => plan.changes.push(Change {
                kind: ChangeKind::Create,
                resource: "group",
                id: g.name.clone(),
                details: vec![],
            }),
        }
        plan.groups.push(g.clone());
    }
    let current_users = store.list_users(org_id).await?;
    for (i, u) in doc.users.iter().enumerate() {
        let old = current_users
            .iter()
            .find(|c| c.login.eq_ignore_ascii_case(&u.login));
        let has_password = match old {
            Some(o) => store
                .user_by_id(org_id, &o.id)
                .await?
                .is_some_and(|c| c.password_hash.is_some()),
            None => false,
        };
        let password = match &u.password_env {
            Some(var) if !has_password => {
                match secrets.get(var) {
                    None => {
                        errors.push(FileError::at_path(
                        format!("users[{i}].passwordEnv"),
                        format!("the environment variable {var} is not set; export it with the user's password"),
                    ));
                        continue;
                    }
                    Some(p) => match crate::people::password::check_policy(&p, &u.login, &wanted_sign_in) {
                        Ok(()) => Some(p),
                        Err(why) => {
                            errors.push(FileError::at_path(
                                format!("users[{i}].passwordEnv"),
                                format!("{var}: {why}"),
                            ));
                            continue;
                        }
                    },
                }
            }
            _ => None,
        };
        let mut details = Vec::new();
        if let Some(o) = old {
            let mut groups = u.groups.clone();
            groups.sort();
            groups.dedup();
            if o.profile != u.profile {
                details.push("profile: changed".to_string());
            }
            if o.groups != groups {
                details.push(format!("groups: {:?} -> {:?}", o.groups, groups));
            }
            let status_matches = o.status == u.status
                || (u.status == UserStatus::Active
                    && matches!(o.status, UserStatus::LockedOut | UserStatus::Provisioned));
            if !status_matches {
                details.push(format!("status: {} -> {}", o.status.as_str(), u.status.as_str()));
            }
        }
        if password.is_some() {
            details.push("password: set".into());
        }
        let kind = match old {
            None => ChangeKind::Create,
            Some(_) if !details.is_empty() => ChangeKind::Update,
            Some(_) => continue,
        };
        plan.changes.push(Change {
            kind,
            resource: "user",
            id: u.login.clone(),
            details,
        });
        plan.users.push((u.clone(), old.map(|o| o.id.clone()), password));
    }
    if !errors.is_empty() {
        return Err(ApplyError::Invalid(errors));
    }
    if prune {
        for u in current_users
            .iter()
            .filter(|c| !doc.users.iter().any(|d| d.login.eq_ignore_ascii_case(&c.login)))
        {
            plan.changes.push(Change {
                kind: ChangeKind::Delete,
                resource: "user",
                id: u.login.clone(),
                details: vec![],
            });
            plan.delete_users.push(u.id.clone());
        }
        for g in current_groups
            .iter()
            .filter(|c| !doc.groups.iter().any(|d| d.name == c.name))
        {
            plan.changes.push(Change {
                kind: ChangeKind::Delete,
                resource: "group",
                id: g.name.clone(),
                details: vec![],
            });
            plan.delete_groups.push(g.name.clone());
        }
        for s in current
            .servers
            .iter()
            .filter(|s| !doc.authorization_servers.iter().any(|d| d.id == s.id))
        {
            plan.changes.push(Change {
                kind: ChangeKind::Delete,
                resource: "authorizationServer",
                id: s.id.clone(),
                details: vec![],
            });
            plan.delete_servers.push(s.id.clone());
        }
        for c in current
            .clients
            .iter()
            .filter(|c| !doc.clients.iter().any(|d| d.client_id == c.client.client_id))
        {
            plan.changes.push(Change {
                kind: ChangeKind::Delete,
                resource: "client",
                id: c.client.client_id.clone(),
                details: vec![],
            });
            plan.delete_clients.push(c.client.client_id.clone());
        }
    }
    Ok(plan)
}

/// What `apply` did that the operator must see once: generated client secrets.
#[derive(Debug, Default)]
pub struct Applied {
    pub generated_secrets: Vec<(String, String)>,
}

/// Makes the store match the plan, then gives new servers their signing keys (a server
/// whose algorithm changed gets its new key published `publish_ahead_secs` before use).
pub async fn apply(
    store: &Store,
    master: &MasterKey,
    org_id: &str,
    plan: Plan,
    now: i64,
    publish_ahead_secs: i64,
) -> Result<Applied, ApplyError> {
    let mut applied = Applied::default();
    // Clients first: policies may name them.
    for (client, secret, generated) in plan.clients {
        store.put_client(org_id, &client, secret, now).await?;
        if let Some(s) = generated {
            applied.generated_secrets.push((client.client_id.clone(), s));
        }
    }
    for s in &plan.servers {
        store.put_server(org_id, s, now).await?;
    }
    for id in &plan.delete_servers {
        store.delete_server(org_id, id).await?;
    }
    for id in &plan.delete_clients {
        store.delete_client(org_id, id).await?;
    }
    if let Some(si) = &plan.sign_in {
        store.put_sign_in_settings(org_id, si).await?;
    }
    for g in &plan.groups {
        store.put_group(org_id, g, now).await?;
    }
    for (spec, existing, password) in &plan.users {
        apply_user(store, org_id, spec, existing.as_deref(), password.as_deref(), now).await?;
    }
    for id in &plan.delete_users {
        store.delete_user(org_id, id, now).await?;
    }
    for name in &plan.delete_groups {
        store.delete_group(org_id, name).await?;
    }
    keys::ensure_keys(store, master, org_id, now, publish_ahead_secs).await?;
    Ok(applied)
}

/// Creates or updates one user from the file: profile, groups, password (when given),
/// and status (a status that ends access revokes the user's sessions and tokens).
async fn apply_user(
    store: &Store,
    org_id: &str,
    spec: &UserSpec,
    existing: Option<&str>,
    password: Option<&str>,
    now: i64,
) -> Result<(), ApplyError> {
    let id = match existing {
        Some(id) => {
            store.update_user_profile(org_id, id, &spec.profile, now).await?;
            id.to_owned()
        }
        None => {
            store
                .create_user(org_id, &spec.login, UserStatus::Staged, &spec.profile, now)
                .await?
        }
    };
    if let Some(p) = password {
        let settings = store.sign_in_settings(org_id).await?;
        let p = p.to_owned();
        let hash = tokio::task::spawn_blocking(move || crate::people::password::hash(&p))
            .await
            .map_err(|_| StoreError::Corrupt("password hashing was interrupted".into()))?;
        store
            .set_password(org_id, &id, &hash, settings.password_history, now)
            .await?;
    }
    store.set_user_groups(org_id, &id, &spec.groups).await?;
    let creds = store
        .user_by_id(org_id, &id)
        .await?
        .ok_or_else(|| StoreError::NotFound(format!("user {}", spec.login)))?;
    let wanted = match spec.status {
        UserStatus::Active if creds.password_hash.is_none() => UserStatus::Provisioned,
        s => s,
    };
    let keep = creds.user.status == wanted
        || (wanted == UserStatus::Active && creds.user.status == UserStatus::LockedOut);
    if !keep {
        store.set_user_status(org_id, &id, wanted, now).await?;
        if matches!(wanted, UserStatus::Suspended | UserStatus::Deprovisioned) {
            store.revoke_user_grants(org_id, &id, now).await?;
        }
    }
    Ok(())
}

/// The org's content as an org file.
pub async fn export(store: &Store, org_id: &str) -> Result<String, ApplyError> {
    let content = store.load_org(org_id).await?;
    let sign_in = store.sign_in_settings(org_id).await?;
    let users = store
        .list_users(org_id)
        .await?
        .into_iter()
        .map(|u| UserSpec {
            login: u.login,
            status: match u.status {
                UserStatus::LockedOut | UserStatus::Provisioned => UserStatus::Active,
                s => s,
            },
            profile: u.profile,
            groups: u.groups,
            password_env: None,
        })
        .collect();
    let doc = OrgDocument {
        version: Some(1),
        authorization_servers: content.servers,
        clients: content.clients.into_iter().map(|c| c.client).collect(),
        sign_in: (sign_in != SignInSettings::default()).then_some(sign_in),
        groups: store.list_groups(org_id).await?,
        users,
    };
    Ok(document::to_yaml(&doc))
}
