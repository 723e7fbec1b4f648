//! The real binary: `--help`, `up` with demo.json and restart, `token`, `apply` errors.

use std::path::Path;
use std::process::{Child, Command, Output, Stdio};
use std::time::Duration;

use crate::kit::{eventually, temp_dir};

fn bin() -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_portcullis"));
    c.env_remove("PORTCULLIS_DATABASE_URL")
        .env_remove("PORTCULLIS_MASTER_KEY")
        .env_remove("PORTCULLIS_DATA_DIR");
    c
}

fn run(args: &[&str]) -> Output {
    bin().args(args).output().unwrap()
}

#[test]
fn help_on_every_subcommand() {
    let top = run(&["--help"]);
    assert!(top.status.success());
    let text = String::from_utf8_lossy(&top.stdout);
    for sub in [
        "up", "serve", "migrate", "apply", "export", "keys", "users", "token", "gateway", "explain",
    ] {
        assert!(text.contains(sub), "{sub} missing from --help");
        let out = run(&[sub, "--help"]);
        assert!(out.status.success(), "{sub} --help failed");
        assert!(String::from_utf8_lossy(&out.stdout).contains("Usage"), "{sub}");
    }
    let out = run(&["keys", "rotate", "--help"]);
    assert!(String::from_utf8_lossy(&out.stdout).contains("--server"));
}

fn start_up(dir: &Path) -> Child {
    bin()
        .args(["up", "--idp-port", "0", "--gateway-port", "0", "--data-dir"])
        .arg(dir)
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap()
}

fn stop(mut child: Child) {
    let _ = Command::new("kill")
        .arg("-TERM")
        .arg(child.id().to_string())
        .status();
    let _ = child.wait();
}

async fn wait_for_demo(dir: &Path, previous: Option<&str>) -> serde_json::Value {
    let path = dir.join("demo.json");
    let mut found = serde_json::Value::Null;
    eventually("demo.json written by `up`", Duration::from_secs(30), || {
        let v: Option<serde_json::Value> = std::fs::read(&path)
            .ok()
            .and_then(|b| serde_json::from_slice(&b).ok());
        let ready = v
            .as_ref()
            .is_some_and(|v| Some(v["issuer"].as_str().unwrap_or("")) != previous);
        if let Some(v) = v.filter(|_| ready) {
            found = v;
        }
        async move { ready }
    })
    .await;
    // Wait until the server answers.
    let org = found["org_url"].as_str().unwrap().to_string();
    eventually("the sandbox answers", Duration::from_secs(30), || {
        let url = format!("{org}/health");
        async move { reqwest::get(url).await.is_ok_and(|r| r.status() == 200) }
    })
    .await;
    found
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn up_serves_the_sandbox_and_restart_keeps_it() {
    let dir = temp_dir("pc-up");
    let child = start_up(&dir);
    let demo = wait_for_demo(&dir, None).await;
    for key in ["org_url", "issuer", "audience"] {
        assert!(demo[key].as_str().is_some_and(|v| !v.is_empty()), "{key}");
    }
    let secret = demo["service_client"]["client_secret"]
        .as_str()
        .unwrap()
        .to_string();
    assert_eq!(demo["service_client"]["client_id"], "demo-service");
    use std::os::unix::fs::PermissionsExt;
    assert_eq!(
        std::fs::metadata(dir.join("demo.json"))
            .unwrap()
            .permissions()
            .mode()
            & 0o777,
        0o600
    );
    assert_eq!(
        std::fs::metadata(dir.join("master.key"))
            .unwrap()
            .permissions()
            .mode()
            & 0o777,
        0o600
    );

    let out = bin()
        .args(["token", "--scope", "products:read orders:create", "--data-dir"])
        .arg(&dir)
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let token = String::from_utf8(out.stdout).unwrap().trim().to_string();
    assert_eq!(token.split('.').count(), 3);
    let kid = jsonwebtoken::decode_header(&token).unwrap().kid.unwrap();
    let issuer = demo["issuer"].as_str().unwrap().to_string();
    the_gateway_serves_the_policy_table(&dir, &demo, &token).await;
    stop(child);

    // Restart on the same data dir: same client secret, same signing key.
    let child = start_up(&dir);
    let demo2 = wait_for_demo(&dir, Some(&issuer)).await;
    assert_eq!(demo2["service_client"]["client_secret"], secret.as_str());
    let out = bin()
        .args(["token", "--json", "--data-dir"])
        .arg(&dir)
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let body: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(body["scope"], "products:read", "default scope of the demo server");
    let kid2 = jsonwebtoken::decode_header(body["access_token"].as_str().unwrap())
        .unwrap()
        .kid
        .unwrap();
    assert_eq!(kid, kid2);

    // `keys rotate` from another process; the running server switches within seconds.
    // The next key was published moments ago: rotating onto it needs --force.
    let out = bin()
        .args(["keys", "rotate", "--server", "default", "--data-dir"])
        .arg(&dir)
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("published for only") && err.contains("--force"),
        "{err}"
    );
    let out = bin()
        .args(["keys", "rotate", "--force", "--server", "default", "--data-dir"])
        .arg(&dir)
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    eventually(
        "signing switches to the next key",
        Duration::from_secs(10),
        || {
            let out = bin().args(["token", "--data-dir"]).arg(&dir).output().unwrap();
            let t = String::from_utf8(out.stdout).unwrap();
            let k = jsonwebtoken::decode_header(t.trim()).ok().and_then(|h| h.kid);
            let kid = kid.clone();
            async move { k.is_some_and(|k| k != kid) }
        },
    )
    .await;
    // A wrong secret is reported as the server said it.
    let out = bin()
        .args(["token", "--client-secret", "wrong-secret-value", "--data-dir"])
        .arg(&dir)
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("invalid_client"));
    stop(child);
}

/// `up`'s gateway in front of the demo API, and `explain` on its gateway file.
async fn the_gateway_serves_the_policy_table(dir: &Path, demo: &serde_json::Value, token: &str) {
    let gw = demo["gateway_url"]
        .as_str()
        .expect("demo.json names the gateway")
        .to_string();
    let http = reqwest::Client::new();
    let get = |path: &str, token: Option<&str>| {
        let mut r = http.get(format!("{gw}{path}"));
        if let Some(t) = token {
            r = r.bearer_auth(t);
        }
        r.send()
    };
    let r = get("/api/v1/products", Some(token)).await.unwrap();
    assert_eq!(r.status(), 200);
    let body: serde_json::Value = r.json().await.unwrap();
    assert_eq!(body["caller"]["sub"], "demo-service");
    assert_eq!(get("/api/v1/products", None).await.unwrap().status(), 401);
    let r = http
        .put(format!("{gw}/api/v1/products/1"))
        .bearer_auth(token)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 403, "the token has no products:write");
    let r = http
        .post(format!("{gw}/api/v1/orders"))
        .bearer_auth(token)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 201, "orders:create and department sales");
    // The sysadmin client, from demo.json through `token --client-id`.
    let out = bin()
        .args([
            "token",
            "--client-id",
            "demo-sysadmin",
            "--scope",
            "admin:full",
            "--data-dir",
        ])
        .arg(dir)
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let ops = String::from_utf8(out.stdout).unwrap().trim().to_string();
    let r = http
        .delete(format!("{gw}/api/v1/admin/users"))
        .bearer_auth(&ops)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);

    // explain: a real token, verified against the sandbox's keys.
    let out = bin()
        .args([
            "explain",
            "--token",
            token,
            "PUT",
            "/api/v1/products/1",
            "--data-dir",
        ])
        .arg(dir)
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(1), "denied: {text}");
    assert!(text.contains("pass route: update-product"), "{text}");
    assert!(text.contains("FAIL scopes: all of [products:write]"), "{text}");
    assert!(text.contains("decision: deny — 403 insufficient_scope"), "{text}");
    let out = bin()
        .args([
            "explain",
            "--token",
            token,
            "GET",
            "/api/v1/products?limit=1",
            "--data-dir",
        ])
        .arg(dir)
        .output()
        .unwrap();
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stdout)
    );
    assert!(String::from_utf8_lossy(&out.stdout).contains("decision: allow"));
    // explain: claims alone, the condition failing.
    let out = bin()
        .args([
            "explain",
            "--claims",
            r#"{"scp":["orders:create"],"department_id":"IT"}"#,
            "POST",
            "/api/v1/orders",
            "--data-dir",
        ])
        .arg(dir)
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(1), "{text}");
    assert!(
        text.contains("FAIL condition: claims.department_id == \"sales\""),
        "{text}"
    );
    // explain: no route, and a forged token.
    let out = bin()
        .args(["explain", "GET", "/nowhere", "--data-dir"])
        .arg(dir)
        .output()
        .unwrap();
    assert!(String::from_utf8_lossy(&out.stdout).contains("decision: deny — 404"));
    let sig_mid = token.rfind('.').unwrap() + 100;
    let flipped = if &token[sig_mid..sig_mid + 1] == "A" {
        "B"
    } else {
        "A"
    };
    let forged = format!("{}{flipped}{}", &token[..sig_mid], &token[sig_mid + 1..]);
    let out = bin()
        .args([
            "explain",
            "--token",
            &forged,
            "GET",
            "/api/v1/products",
            "--data-dir",
        ])
        .arg(dir)
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains("401 invalid_token"), "{text}");
}

#[test]
fn apply_reports_errors_with_lines_and_exit_code() {
    let dir = temp_dir("pc-apply");
    let file = dir.join("org.yaml");
    std::fs::write(&file, "version: 1\nclients:\n  - clientId: a\n    bogus: 1\n").unwrap();
    let out = bin()
        .args(["apply", "-f"])
        .arg(&file)
        .arg("--data-dir")
        .arg(dir.join("data"))
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("line 4") && err.contains("bogus"), "{err}");
    assert!(err.contains("hint:"), "{err}");

    // A valid file: dry run prints the plan and changes nothing; apply then export.
    std::fs::write(&file, crate::kit::ORG).unwrap();
    let mut cmd = bin();
    for (k, v) in crate::kit::secrets() {
        cmd.env(k, v);
    }
    let out = cmd
        .args(["apply", "--dry-run", "-f"])
        .arg(&file)
        .arg("--data-dir")
        .arg(dir.join("data"))
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let plan = String::from_utf8_lossy(&out.stdout);
    assert!(
        plan.contains("+ authorizationServer default") && plan.contains("+ client svc-basic"),
        "{plan}"
    );
    let out = bin()
        .args(["export", "--data-dir"])
        .arg(dir.join("data"))
        .output()
        .unwrap();
    assert!(out.status.success());
    assert!(
        !String::from_utf8_lossy(&out.stdout).contains("svc-basic"),
        "dry run changed nothing"
    );
}

#[test]
fn serve_rejects_a_bad_config_with_its_line() {
    let dir = temp_dir("pc-serve");
    let file = dir.join("portcullis.yaml");
    std::fs::write(
        &file,
        "version: 1\nidp:\n  listen: 127.0.0.1:0\n  jwksMaxAge: 10\n",
    )
    .unwrap();
    let out = bin().args(["serve", "--config"]).arg(&file).output().unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("line 4") && err.contains("jwksMaxAge"), "{err}");
    std::fs::write(&file, "version: 1\nidp:\n  listen: not-an-address\n").unwrap();
    let out = bin().args(["serve", "--config"]).arg(&file).output().unwrap();
    assert!(!out.status.success());
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("line 3"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_wrong_or_missing_master_key_is_refused() {
    let dir = temp_dir("pc-mk");
    let child = start_up(&dir);
    wait_for_demo(&dir, None).await;
    stop(child);
    let org = dir.join("org.yaml");
    std::fs::write(&org, "version: 1\n").unwrap();
    // Another key than the one the database was set up with.
    let out = bin()
        .env(
            "PORTCULLIS_MASTER_KEY",
            "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=",
        )
        .args(["apply", "-f"])
        .arg(&org)
        .arg("--data-dir")
        .arg(&dir)
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("does not match"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    // No key at all: no new one is made up for a database that has one.
    std::fs::remove_file(dir.join("master.key")).unwrap();
    let out = bin()
        .args(["keys", "rotate", "--force", "--server", "default", "--data-dir"])
        .arg(&dir)
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("no master key") && err.contains("PORTCULLIS_MASTER_KEY"),
        "{err}"
    );
    assert!(!dir.join("master.key").exists());
}

/// The whole story in a real browser: `up`'s demo single-page app, served through the
/// gateway, signs a demo user in with PKCE on the hosted page; its calls through the
/// gateway get 200 for an allowed row of the policy table and 403 for denied ones.
/// Headless Chromium driven by playwright-core (scripts/test installs both).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_demo_app_signs_in_and_calls_the_gateway_in_a_browser() {
    let chromium = std::env::var("CHROMIUM").unwrap_or_else(|_| "/usr/bin/chromium".into());
    assert!(
        Path::new(&chromium).exists(),
        "Chromium is missing at {chromium}: `apt-get install chromium` (scripts/test does), or set CHROMIUM"
    );
    let clients = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../tests/clients");
    assert!(
        clients.join("node_modules/playwright-core").exists(),
        "playwright-core is missing: run `npm ci --prefix tests/clients` (scripts/test does)"
    );
    let dir = temp_dir("pc-e2e");
    let child = start_up(&dir);
    let demo = wait_for_demo(&dir, None).await;
    let app = demo["spa_client"]["redirect_uri"].as_str().unwrap().to_string();
    assert!(app.starts_with(demo["gateway_url"].as_str().unwrap()));
    let alice = demo["users"]
        .as_array()
        .unwrap()
        .iter()
        .find(|u| u["login"] == "alice@example.com")
        .expect("demo.json lists the demo users")
        .clone();
    assert_eq!(alice["groups"], serde_json::json!(["admin"]));
    let password = alice["password"].as_str().unwrap().to_string();
    let out = tokio::task::spawn_blocking(move || {
        Command::new("node")
            .arg(clients.join("spa-e2e.mjs"))
            .args([&app, "alice@example.com", &password])
            .env("CHROMIUM", chromium)
            .env("NODE_NO_WARNINGS", "1")
            .output()
            .unwrap()
    })
    .await
    .unwrap();
    stop(child);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "the browser run failed:\n{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let r: serde_json::Value = serde_json::from_str(stdout.lines().last().unwrap_or("")).unwrap();
    assert!(r["signin_url"].as_str().unwrap().contains("/signin?flow="), "{r}");
    assert_eq!(r["signed_in_as"], "alice@example.com", "{r}");
    assert_eq!(r["list-products"]["status"], 200, "{r}");
    assert_eq!(
        r["update-product"]["status"], 200,
        "alice is in the admin group: {r}"
    );
    assert_eq!(
        r["delete-admin-users"]["status"], 403,
        "alice is no sysadmin: {r}"
    );
    assert!(
        r["delete-admin-users"]["text"]
            .as_str()
            .unwrap()
            .contains("insufficient_scope"),
        "{r}"
    );
    assert_eq!(r["console_errors"], serde_json::json!([]), "{r}");
}

/// `portcullis users`: create (password from the environment, policy enforced), list,
/// the lifecycle, password resets with history, and their errors.
#[test]
fn users_command_manages_the_directory() {
    let dir = temp_dir("pc-users");
    let users = |args: &[&str], env: &[(&str, &str)]| {
        let mut c = bin();
        c.arg("users").args(args).arg("--data-dir").arg(&dir);
        for (k, v) in env {
            c.env(k, v);
        }
        c.output().unwrap()
    };
    let ok = |o: &Output| {
        assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
        String::from_utf8_lossy(&o.stdout).to_string()
    };
    // A password on the breach list is refused, with a hint.
    let o = users(
        &["create", "dana@example.com", "--password-env", "PW"],
        &[("PW", "password1234")],
    );
    assert!(!o.status.success());
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(err.contains("breaches") && err.contains("hint:"), "{err}");
    let out = ok(&users(
        &[
            "create",
            "dana@example.com",
            "-p",
            "department=sales",
            "--password-env",
            "PW",
        ],
        &[("PW", "violet-harbor-engine-5")],
    ));
    assert!(out.contains("ACTIVE"), "{out}");
    let out = ok(&users(&["list"], &[]));
    assert!(
        out.contains("dana@example.com") && out.contains("ACTIVE"),
        "{out}"
    );
    let out = ok(&users(&["suspend", "DANA@example.com"], &[]));
    assert!(out.contains("ACTIVE -> SUSPENDED"), "{out}");
    // Not allowed from SUSPENDED: the error says what the status is.
    let o = users(&["unlock", "dana@example.com"], &[]);
    assert!(!o.status.success());
    assert!(String::from_utf8_lossy(&o.stderr).contains("SUSPENDED"));
    ok(&users(&["unsuspend", "dana@example.com"], &[]));
    // The last passwords cannot be used again.
    let o = users(
        &["reset-password", "dana@example.com", "--password-env", "PW"],
        &[("PW", "violet-harbor-engine-5")],
    );
    assert!(!o.status.success());
    assert!(String::from_utf8_lossy(&o.stderr).contains("used recently"));
    ok(&users(
        &["reset-password", "dana@example.com", "--password-env", "PW"],
        &[("PW", "copper-lantern-field-8")],
    ));
    let out = ok(&users(&["deactivate", "dana@example.com"], &[]));
    assert!(out.contains("DEPROVISIONED"), "{out}");
    let o = users(&["suspend", "nobody@example.com"], &[]);
    assert!(!o.status.success());
    assert!(String::from_utf8_lossy(&o.stderr).contains("users list"));
}
