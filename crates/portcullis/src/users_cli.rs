//! `portcullis users ...`: the directory from the command line — list, create, the
//! lifecycle operations (activate, deactivate, suspend, unsuspend, unlock), password
//! resets and factor resets. Passwords come from an environment variable or standard
//! input, never from a flag (flags show in `ps`).

use std::io::Read as _;

use clap::Subcommand;
use portcullis::CliError;
use portcullis::runtime::open_store;
use portcullis_core::Lifecycle;
use portcullis_idp::people::directory::{self, DirectoryError};
use portcullis_idp::{DEFAULT_ORG_ID, clock};

use crate::StoreArgs;

#[derive(Subcommand)]
pub enum UsersCommand {
    /// List users: login, status, groups.
    List {
        #[command(flatten)]
        store: StoreArgs,
    },
    /// Create a user (ACTIVE with a password, STAGED with --staged).
    Create {
        /// The login, e.g. an email address.
        login: String,
        /// Profile attributes as KEY=VALUE (email, firstName, lastName, department...).
        #[arg(long = "profile", short = 'p', value_name = "KEY=VALUE")]
        profile: Vec<String>,
        /// Read the password from this environment variable (else standard input).
        #[arg(long)]
        password_env: Option<String>,
        /// Create without a password and leave the user STAGED.
        #[arg(long)]
        staged: bool,
        #[command(flatten)]
        store: StoreArgs,
    },
    /// STAGED or PROVISIONED (or DEPROVISIONED) to ACTIVE.
    Activate(Target),
    /// Any status to DEPROVISIONED: sign-in stops and the user's sessions, refresh tokens
    /// and the access tokens issued with them are revoked at once.
    Deactivate(Target),
    /// ACTIVE to SUSPENDED, revoking as deactivate does.
    Suspend(Target),
    /// SUSPENDED to ACTIVE.
    Unsuspend(Target),
    /// LOCKED_OUT to ACTIVE before the lockout window ends.
    Unlock(Target),
    /// Set a new password (policy and history checked), unlock, end the user's sessions.
    ResetPassword {
        #[command(flatten)]
        target: Target,
        /// Read the new password from this environment variable (else standard input).
        #[arg(long)]
        password_env: Option<String>,
    },
    /// Remove the user's second factors and recovery codes (they enrol again at sign-in).
    ResetFactors(Target),
}

#[derive(clap::Args)]
pub struct Target {
    /// The user's login or id.
    user: String,
    #[command(flatten)]
    store: StoreArgs,
}

fn directory_error(e: DirectoryError) -> CliError {
    let hint = match &e {
        DirectoryError::NotFound(_) => "`portcullis users list` shows the users",
        DirectoryError::Password(_) => "choose a longer password that is not on breach lists",
        DirectoryError::NotAllowed(_) => "`portcullis users list` shows each user's status",
        DirectoryError::Store(_) => "check the database",
    };
    CliError::new(e.to_string()).hint(hint)
}

fn read_password(var: Option<&str>) -> Result<String, CliError> {
    match var {
        Some(v) => std::env::var(v).map_err(|_| {
            CliError::new(format!("the environment variable {v} is not set"))
                .hint(format!("export {v}=... first"))
        }),
        None => {
            let mut s = String::new();
            std::io::stdin()
                .take(1024)
                .read_to_string(&mut s)
                .map_err(|e| CliError::new(format!("cannot read the password from standard input: {e}")))?;
            let p = s.trim_end_matches(['\n', '\r']).to_owned();
            if p.is_empty() {
                return Err(CliError::new("no password given")
                    .hint("pipe it on standard input or use --password-env"));
            }
            Ok(p)
        }
    }
}

pub async fn run(command: UsersCommand) -> Result<(), CliError> {
    let now = clock::now();
    match command {
        UsersCommand::List { store } => {
            let store = open_store(&store.config()?.database_url()).await?;
            println!("{:<22} {:<32} {:<14} groups", "id", "login", "status");
            for u in store.list_users(DEFAULT_ORG_ID).await? {
                println!(
                    "{:<22} {:<32} {:<14} {}",
                    u.id,
                    u.login,
                    u.status.as_str(),
                    u.groups.join(",")
                );
            }
            Ok(())
        }
        UsersCommand::Create {
            login,
            profile,
            password_env,
            staged,
            store,
        } => {
            let mut map = serde_json::Map::new();
            for kv in &profile {
                let (k, v) = kv.split_once('=').ok_or_else(|| {
                    CliError::new(format!("'{kv}' is not KEY=VALUE")).hint("e.g. -p department=sales")
                })?;
                map.insert(k.to_owned(), v.into());
            }
            let password = if staged {
                None
            } else {
                Some(read_password(password_env.as_deref())?)
            };
            let store = open_store(&store.config()?.database_url()).await?;
            let u = directory::create_user(
                &store,
                DEFAULT_ORG_ID,
                &login,
                &map,
                password.as_deref(),
                !staged,
                now,
            )
            .await
            .map_err(directory_error)?;
            println!("created {} ({}) {}", u.login, u.id, u.status.as_str());
            Ok(())
        }
        UsersCommand::ResetPassword { target, password_env } => {
            let password = read_password(password_env.as_deref())?;
            let store = open_store(&target.store.config()?.database_url()).await?;
            let u = directory::find(&store, DEFAULT_ORG_ID, &target.user)
                .await
                .map_err(directory_error)?;
            directory::set_password(&store, DEFAULT_ORG_ID, &u, &password, now)
                .await
                .map_err(directory_error)?;
            println!(
                "password of {} reset; their sessions and refresh tokens are revoked",
                u.login
            );
            Ok(())
        }
        UsersCommand::ResetFactors(t) => {
            let store = open_store(&t.store.config()?.database_url()).await?;
            let u = directory::find(&store, DEFAULT_ORG_ID, &t.user)
                .await
                .map_err(directory_error)?;
            store.reset_factors(DEFAULT_ORG_ID, &u.id).await?;
            println!(
                "factors of {} removed; they enrol again at their next sign-in",
                u.login
            );
            Ok(())
        }
        UsersCommand::Activate(t) => lifecycle(t, Lifecycle::Activate, now).await,
        UsersCommand::Deactivate(t) => lifecycle(t, Lifecycle::Deactivate, now).await,
        UsersCommand::Suspend(t) => lifecycle(t, Lifecycle::Suspend, now).await,
        UsersCommand::Unsuspend(t) => lifecycle(t, Lifecycle::Unsuspend, now).await,
        UsersCommand::Unlock(t) => lifecycle(t, Lifecycle::Unlock, now).await,
    }
}

async fn lifecycle(t: Target, op: Lifecycle, now: i64) -> Result<(), CliError> {
    let store = open_store(&t.store.config()?.database_url()).await?;
    let u = directory::find(&store, DEFAULT_ORG_ID, &t.user)
        .await
        .map_err(directory_error)?;
    let to = directory::lifecycle(&store, DEFAULT_ORG_ID, &u, op, now)
        .await
        .map_err(directory_error)?;
    println!("{}: {} -> {}", u.login, u.status.as_str(), to.as_str());
    Ok(())
}
