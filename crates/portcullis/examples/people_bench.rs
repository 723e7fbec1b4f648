//! Load generator for `bench/people.sh`: sign-ins per second through the hosted sign-in
//! page, refresh-token grants per second (with rotation), and the machine's raw argon2id
//! hash rate with the same parameters, on as many threads as there are cores.
//!
//! usage: people_bench argon2 SECONDS
//!        people_bench signin ISSUER CLIENT_ID REDIRECT_URI PASSWORD USERS SECONDS CONCURRENCY
//!        people_bench refresh ISSUER CLIENT_ID REDIRECT_URI PASSWORD USERS SECONDS CONCURRENCY SCOPE
//! Prints one JSON line. USERS is a comma-separated list of logins sharing PASSWORD.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use reqwest::redirect::Policy;

struct Target {
    issuer: String,
    origin: String,
    client_id: String,
    redirect_uri: String,
    password: String,
    users: Vec<String>,
}

fn attr_after(html: &str, marker: &str, name: &str) -> Option<String> {
    let at = html.find(marker)?;
    let tag_start = html[..at].rfind('<')?;
    let tag_end = at + html[at..].find('>')?;
    let tag = &html[tag_start..tag_end];
    let key = format!("{name}=\"");
    let s = tag.find(&key)? + key.len();
    Some(
        tag[s..s + tag[s..].find('"')?]
            .replace("&#x2f;", "/")
            .replace("&amp;", "&"),
    )
}

/// The cookies of one simulated browser (a shared HTTP client keeps the connections;
/// building a client per sign-in would cost the load generator more than the server).
#[derive(Default)]
struct Cookies(Vec<(String, String)>);

impl Cookies {
    fn keep(&mut self, r: &reqwest::Response) {
        for v in r.headers().get_all("set-cookie") {
            let Some((pair, _)) = v.to_str().unwrap_or("").split_once(';') else {
                continue;
            };
            let Some((k, v)) = pair.split_once('=') else {
                continue;
            };
            self.0.retain(|(name, _)| name != k);
            if !v.is_empty() {
                self.0.push((k.to_owned(), v.to_owned()));
            }
        }
    }
    fn header(&self) -> String {
        self.0
            .iter()
            .map(|(k, v)| format!("{k}={v}"))
            .collect::<Vec<_>>()
            .join("; ")
    }
}

async fn send(jar: &mut Cookies, req: reqwest::RequestBuilder) -> Result<reqwest::Response, String> {
    let r = req
        .header("cookie", jar.header())
        .send()
        .await
        .map_err(|e| e.to_string())?;
    jar.keep(&r);
    Ok(r)
}

fn location(r: &reqwest::Response) -> Result<String, String> {
    r.headers()
        .get("location")
        .and_then(|l| l.to_str().ok())
        .map(String::from)
        .ok_or_else(|| format!("expected a redirect, got {}", r.status()))
}

/// One sign-in: authorize, the sign-in page, the password, back to the app with a code.
/// Returns the code and the PKCE verifier.
async fn sign_in(
    http: &reqwest::Client,
    t: &Target,
    login: &str,
    scope: &str,
) -> Result<(String, String), String> {
    let mut jar = Cookies::default();
    let verifier = format!(
        "{}{}",
        portcullis_core::ids::random_base62(32),
        portcullis_core::ids::random_base62(16)
    );
    let digest = aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, verifier.as_bytes());
    let challenge = URL_SAFE_NO_PAD.encode(digest.as_ref());
    let mut url = url::Url::parse(&format!("{}/v1/authorize", t.issuer)).map_err(|e| e.to_string())?;
    url.query_pairs_mut()
        .append_pair("client_id", &t.client_id)
        .append_pair("response_type", "code")
        .append_pair("redirect_uri", &t.redirect_uri)
        .append_pair("scope", scope)
        .append_pair("state", "bench-state")
        .append_pair("code_challenge", &challenge)
        .append_pair("code_challenge_method", "S256");
    let r = send(&mut jar, http.get(url)).await?;
    let loc = location(&r)?;
    let r = send(&mut jar, http.get(format!("{}{loc}", t.origin))).await?;
    let page = r.text().await.map_err(|e| e.to_string())?;
    let csrf = attr_after(&page, "name=\"csrf\"", "value").ok_or("no csrf on the sign-in page")?;
    let action = attr_after(&page, "method=\"post\"", "action").ok_or("no form action")?;
    let r = send(
        &mut jar,
        http.post(format!("{}{action}", t.origin)).form(&[
            ("csrf", csrf.as_str()),
            ("step", "password"),
            ("username", login),
            ("password", t.password.as_str()),
        ]),
    )
    .await?;
    if r.status() != 303 {
        return Err(format!("password step answered {}", r.status()));
    }
    let mut loc = location(&r)?;
    for _ in 0..4 {
        if !loc.starts_with('/') {
            break;
        }
        let r = send(&mut jar, http.get(format!("{}{loc}", t.origin))).await?;
        loc = location(&r)?;
    }
    let u = url::Url::parse(&loc).map_err(|e| e.to_string())?;
    let code = u
        .query_pairs()
        .find(|(k, _)| k == "code")
        .map(|(_, v)| v.into_owned())
        .ok_or(format!("no code in {loc}"))?;
    Ok((code, verifier))
}

fn client() -> reqwest::Client {
    reqwest::Client::builder()
        .redirect(Policy::none())
        .build()
        .expect("an HTTP client")
}

async fn token(
    http: &reqwest::Client,
    t: &Target,
    form: &[(&str, &str)],
) -> Result<serde_json::Value, String> {
    let r = http
        .post(format!("{}/v1/token", t.issuer))
        .form(form)
        .send()
        .await
        .map_err(|e| e.to_string())?;
    let ok = r.status().is_success();
    let v: serde_json::Value = r.json().await.map_err(|e| e.to_string())?;
    if ok { Ok(v) } else { Err(v.to_string()) }
}

fn args() -> Vec<String> {
    std::env::args().skip(1).collect()
}

fn target(a: &[String]) -> Target {
    let issuer = a[1].trim_end_matches('/').to_owned();
    let u = url::Url::parse(&issuer).expect("ISSUER is a URL");
    Target {
        origin: u.origin().ascii_serialization(),
        issuer,
        client_id: a[2].clone(),
        redirect_uri: a[3].clone(),
        password: a[4].clone(),
        users: a[5].split(',').map(String::from).collect(),
    }
}

#[tokio::main]
async fn main() {
    let a = args();
    match a.first().map(String::as_str) {
        Some("argon2") => {
            let secs: u64 = a[1].parse().unwrap();
            let threads = std::thread::available_parallelism().map_or(1, |n| n.get());
            let count = Arc::new(AtomicU64::new(0));
            let deadline = Instant::now() + Duration::from_secs(secs);
            let handles: Vec<_> = (0..threads)
                .map(|_| {
                    let count = count.clone();
                    std::thread::spawn(move || {
                        while Instant::now() < deadline {
                            portcullis_idp::people::password::hash("correct horse battery staple");
                            count.fetch_add(1, Ordering::Relaxed);
                        }
                    })
                })
                .collect();
            let started = Instant::now();
            for h in handles {
                h.join().unwrap();
            }
            let n = count.load(Ordering::Relaxed);
            println!(
                "{}",
                serde_json::json!({"mode": "argon2", "threads": threads, "hashes": n, "per_second": n as f64 / started.elapsed().as_secs_f64(), "ms_per_hash_per_core": 1000.0 * started.elapsed().as_secs_f64() * threads as f64 / n as f64})
            );
        }
        Some(mode @ ("signin" | "refresh")) => {
            let t = Arc::new(target(&a));
            let secs: u64 = a[6].parse().unwrap();
            let concurrency: usize = a[7].parse().unwrap();
            let scope = if mode == "refresh" {
                a[8].clone()
            } else {
                "openid".to_owned()
            };
            let ok = Arc::new(AtomicU64::new(0));
            let errors = Arc::new(AtomicU64::new(0));
            let first_error = Arc::new(std::sync::Mutex::new(None::<String>));
            // Refresh: each worker signs in once and holds its own token family.
            let mut families = Vec::new();
            if mode == "refresh" {
                for w in 0..concurrency {
                    let login = &t.users[w % t.users.len()];
                    let http = client();
                    let (code, verifier) = sign_in(&http, &t, login, &scope).await.expect("setup sign-in");
                    let v = token(
                        &http,
                        &t,
                        &[
                            ("grant_type", "authorization_code"),
                            ("client_id", &t.client_id),
                            ("code", &code),
                            ("redirect_uri", &t.redirect_uri),
                            ("code_verifier", &verifier),
                        ],
                    )
                    .await
                    .expect("setup code exchange");
                    families.push(
                        v["refresh_token"]
                            .as_str()
                            .expect("a refresh token (offline_access)")
                            .to_owned(),
                    );
                }
            }
            let deadline = Instant::now() + Duration::from_secs(secs);
            let started = Instant::now();
            let mut tasks = Vec::new();
            for w in 0..concurrency {
                let (t, ok, errors, first_error, scope) = (
                    t.clone(),
                    ok.clone(),
                    errors.clone(),
                    first_error.clone(),
                    scope.clone(),
                );
                let mut rt = families.get(w).cloned();
                tasks.push(tokio::spawn(async move {
                    let http = client();
                    let mut i = w;
                    while Instant::now() < deadline {
                        let result = match &rt {
                            None => sign_in(&http, &t, &t.users[i % t.users.len()], &scope)
                                .await
                                .map(|_| None),
                            Some(r) => token(
                                &http,
                                &t,
                                &[
                                    ("grant_type", "refresh_token"),
                                    ("client_id", &t.client_id),
                                    ("refresh_token", r),
                                ],
                            )
                            .await
                            .map(|v| v["refresh_token"].as_str().map(String::from)),
                        };
                        match result {
                            Ok(next) => {
                                ok.fetch_add(1, Ordering::Relaxed);
                                if next.is_some() {
                                    rt = next;
                                }
                            }
                            Err(e) => {
                                errors.fetch_add(1, Ordering::Relaxed);
                                first_error.lock().unwrap().get_or_insert(e);
                            }
                        }
                        i += concurrency;
                    }
                }));
            }
            for task in tasks {
                task.await.unwrap();
            }
            let elapsed = started.elapsed().as_secs_f64();
            let n = ok.load(Ordering::Relaxed);
            println!(
                "{}",
                serde_json::json!({"mode": mode, "scope": scope, "concurrency": concurrency, "completed": n, "errors": errors.load(Ordering::Relaxed), "first_error": *first_error.lock().unwrap(), "per_second": n as f64 / elapsed})
            );
        }
        _ => {
            eprintln!("usage: see the top of crates/portcullis/examples/people_bench.rs");
            std::process::exit(2);
        }
    }
}
