//! People flows over HTTP with a cookie jar: sign-in, second factor, consent, the
//! authorization code with PKCE, ID tokens, userinfo, refresh rotation, sign-out — and
//! each negative path with its exact error. Both databases.

use std::collections::HashMap;

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use reqwest::redirect::Policy;

use crate::both_dbs;
use crate::kit::{Db, Env, ORG, PEOPLE, Server, secret};

pub const SPA: &str = "people-spa";
pub const SPA_CALLBACK: &str = "http://127.0.0.1:3000/callback";

/// A browser: cookies kept, redirects not followed (so each hop can be looked at).
pub struct Browser {
    pub http: reqwest::Client,
    pub base: String,
}

#[derive(Debug)]
pub struct Page {
    pub status: u16,
    pub location: Option<String>,
    pub headers: reqwest::header::HeaderMap,
    pub body: String,
}

impl Browser {
    pub fn new(s: &Server) -> Browser {
        Browser {
            http: reqwest::Client::builder()
                .cookie_store(true)
                .redirect(Policy::none())
                .build()
                .unwrap(),
            base: s.base.clone(),
        }
    }

    fn abs(&self, url: &str) -> String {
        if url.starts_with('/') {
            format!("{}{url}", self.base)
        } else {
            url.to_owned()
        }
    }

    async fn page(r: reqwest::Response) -> Page {
        Page {
            status: r.status().as_u16(),
            location: r
                .headers()
                .get("location")
                .map(|l| l.to_str().unwrap().to_owned()),
            headers: r.headers().clone(),
            body: r.text().await.unwrap(),
        }
    }

    pub async fn get(&self, url: &str) -> Page {
        Self::page(self.http.get(self.abs(url)).send().await.unwrap()).await
    }

    pub async fn post(&self, url: &str, form: &[(&str, &str)]) -> Page {
        Self::page(self.http.post(self.abs(url)).form(form).send().await.unwrap()).await
    }

    /// Follows redirects while they stay on the identity provider.
    pub async fn follow(&self, mut p: Page) -> Page {
        for _ in 0..10 {
            match &p.location {
                Some(l) if p.status == 303 && (l.starts_with('/') || l.starts_with(&self.base)) => {
                    p = self.get(&l.clone()).await;
                }
                _ => return p,
            }
        }
        panic!("redirect loop");
    }

    /// Submits the page's form with its CSRF token and these fields.
    pub async fn submit(&self, page: &Page, fields: &[(&str, &str)]) -> Page {
        let action = attr(&page.body, "action").expect("the page has a form");
        let csrf = attr_after(&page.body, "name=\"csrf\"", "value").expect("the form carries a CSRF token");
        let mut form: Vec<(&str, &str)> = vec![("csrf", &csrf)];
        let step = attr_after(&page.body, "name=\"step\"", "value").unwrap();
        form.push(("step", &step));
        form.extend_from_slice(fields);
        let p = self.post(&action, &form).await;
        self.follow(p).await
    }
}

/// The value of the first `name="..."` attribute in `html`, HTML entities decoded.
pub fn attr(html: &str, name: &str) -> Option<String> {
    let key = format!("{name}=\"");
    let start = html.find(&key)? + key.len();
    Some(unescape(&html[start..start + html[start..].find('"')?]))
}

/// The entities minijinja's HTML escaping writes.
pub fn unescape(s: &str) -> String {
    s.replace("&#x2f;", "/")
        .replace("&#x27;", "'")
        .replace("&quot;", "\"")
        .replace("&lt;", "<")
        .replace("&gt;", ">")
        .replace("&amp;", "&")
}

/// The value of attribute `name` in the tag that contains `marker`.
pub fn attr_after(html: &str, marker: &str, name: &str) -> Option<String> {
    let at = html.find(marker)?;
    let tag_start = html[..at].rfind('<')?;
    let tag_end = at + html[at..].find('>')?;
    attr(&html[tag_start..tag_end], name)
}

pub fn query(url: &str) -> HashMap<String, String> {
    let u = url::Url::parse(url).unwrap();
    u.query_pairs()
        .map(|(k, v)| (k.into_owned(), v.into_owned()))
        .collect()
}

/// RFC 7636: a verifier and its S256 challenge.
pub fn pkce() -> (String, String) {
    let verifier = format!(
        "{}{}",
        portcullis_core::ids::random_base62(30),
        portcullis_core::ids::random_base62(20)
    );
    let digest = aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, verifier.as_bytes());
    (verifier, URL_SAFE_NO_PAD.encode(digest.as_ref()))
}

pub struct Authorize {
    pub client_id: &'static str,
    pub redirect_uri: &'static str,
    pub scope: String,
    pub state: String,
    pub nonce: String,
    pub challenge: Option<String>,
    pub method: Option<&'static str>,
    pub extra: Vec<(&'static str, String)>,
}

impl Authorize {
    pub fn spa(scope: &str, challenge: &str) -> Authorize {
        Authorize {
            client_id: SPA,
            redirect_uri: SPA_CALLBACK,
            scope: scope.into(),
            state: portcullis_core::ids::random_base62(16),
            nonce: portcullis_core::ids::random_base62(16),
            challenge: Some(challenge.into()),
            method: Some("S256"),
            extra: vec![],
        }
    }

    pub fn url(&self, s: &Server, server: &str) -> String {
        let mut u = url::Url::parse(&s.url(server, "/v1/authorize")).unwrap();
        {
            let mut q = u.query_pairs_mut();
            q.append_pair("client_id", self.client_id)
                .append_pair("response_type", "code")
                .append_pair("redirect_uri", self.redirect_uri)
                .append_pair("scope", &self.scope)
                .append_pair("state", &self.state)
                .append_pair("nonce", &self.nonce);
            if let Some(c) = &self.challenge {
                q.append_pair("code_challenge", c);
            }
            if let Some(m) = self.method {
                q.append_pair("code_challenge_method", m);
            }
            for (k, v) in &self.extra {
                q.append_pair(k, v);
            }
        }
        u.to_string()
    }
}

/// A server with the test org and the people org applied.
pub async fn start_people(db: Db) -> (Env, Server) {
    let env = Env::new(db).await;
    env.apply(ORG).await;
    env.apply(PEOPLE).await;
    let s = env.start().await;
    (env, s)
}

/// Signs in through the hosted page; returns the page after the password step.
pub async fn sign_in(b: &Browser, start: &str, login: &str, password: &str) -> Page {
    let page = b.follow(b.get(start).await).await;
    assert_eq!(page.status, 200, "sign-in page: {}", page.body);
    assert!(
        page.body.contains("autocomplete=\"current-password\""),
        "{}",
        page.body
    );
    b.submit(&page, &[("username", login), ("password", password)])
        .await
}

/// The code from a redirect to the client, checked against the request's state and issuer.
pub fn code_of(p: &Page, a: &Authorize, issuer: &str) -> String {
    assert_eq!(
        p.status, 303,
        "expected a redirect to the client: {} {}",
        p.status, p.body
    );
    let loc = p.location.as_deref().unwrap();
    assert!(loc.starts_with(a.redirect_uri), "{loc}");
    let q = query(loc);
    assert_eq!(q.get("state"), Some(&a.state), "{loc}");
    assert_eq!(
        q.get("iss").map(String::as_str),
        Some(issuer),
        "RFC 9207 iss: {loc}"
    );
    q.get("code").unwrap_or_else(|| panic!("no code: {loc}")).clone()
}

pub async fn exchange(
    s: &Server,
    server: &str,
    code: &str,
    verifier: Option<&str>,
) -> (u16, serde_json::Value) {
    let mut form = vec![
        ("grant_type", "authorization_code"),
        ("client_id", SPA),
        ("code", code),
        ("redirect_uri", SPA_CALLBACK),
    ];
    if let Some(v) = verifier {
        form.push(("code_verifier", v));
    }
    let r = s
        .http
        .post(s.url(server, "/v1/token"))
        .form(&form)
        .send()
        .await
        .unwrap();
    (r.status().as_u16(), r.json().await.unwrap())
}

pub async fn refresh(s: &Server, client: &str, token: &str) -> (u16, serde_json::Value) {
    let r = s
        .http
        .post(s.url("people", "/v1/token"))
        .form(&[
            ("grant_type", "refresh_token"),
            ("client_id", client),
            ("refresh_token", token),
        ])
        .send()
        .await
        .unwrap();
    (r.status().as_u16(), r.json().await.unwrap())
}

fn claims_of(jwt: &str) -> serde_json::Value {
    let payload = jwt.split('.').nth(1).unwrap();
    serde_json::from_slice(&URL_SAFE_NO_PAD.decode(payload).unwrap()).unwrap()
}

/// The whole flow: sign in, consent, code exchange, ID token, userinfo, refresh with
/// rotation, sign out.
async fn full_flow(db: Db) {
    let (_env, s) = start_people(db).await;
    let issuer = s.issuer("people");
    let b = Browser::new(&s);
    let (verifier, challenge) = pkce();
    let a = Authorize::spa(
        "openid profile email offline_access products:read orders:create",
        &challenge,
    );

    let after_password = sign_in(
        &b,
        &a.url(&s, "people"),
        "Alice@Example.com",
        &secret("ALICE_PASSWORD"),
    )
    .await;
    // orders:create needs consent: the page names the app and the scope.
    assert_eq!(after_password.status, 200, "{}", after_password.body);
    assert!(
        after_password
            .body
            .contains("People SPA wants to access your account"),
        "{}",
        after_password.body
    );
    assert!(after_password.body.contains("place orders on your behalf"));
    let csp = after_password.headers["content-security-policy"]
        .to_str()
        .unwrap();
    assert!(
        csp.contains("frame-ancestors 'none'") && csp.contains("default-src 'none'"),
        "{csp}"
    );
    assert_eq!(after_password.headers["x-frame-options"], "DENY");
    let done = b.submit(&after_password, &[("decision", "allow")]).await;
    let code = code_of(&done, &a, &issuer);

    let (st, tokens) = exchange(&s, "people", &code, Some(&verifier)).await;
    assert_eq!(st, 200, "{tokens}");
    let jwks = s.jwks("people").await;
    let at = crate::kit::verify_with_jwks(
        tokens["access_token"].as_str().unwrap(),
        &jwks,
        &issuer,
        "api://people",
    );
    assert_eq!(at["sub"], "alice@example.com");
    assert!(at["uid"].as_str().unwrap().starts_with("00u"));
    assert_eq!(at["cid"], SPA);
    assert_eq!(at["department_id"], "sales");
    assert_eq!(at["user_roles"], serde_json::json!(["admins"]));
    assert_eq!(
        at["scp"],
        serde_json::json!([
            "openid",
            "profile",
            "email",
            "offline_access",
            "products:read",
            "orders:create"
        ])
    );

    // ID token, verified independently: audience is the client, nonce and at_hash present.
    let id_token = tokens["id_token"].as_str().unwrap();
    let header = jsonwebtoken::decode_header(id_token).unwrap();
    let key =
        jsonwebtoken::DecodingKey::from_jwk(jwks.find(header.kid.as_deref().unwrap()).unwrap()).unwrap();
    let mut v = jsonwebtoken::Validation::new(header.alg);
    v.set_issuer(&[&issuer]);
    v.set_audience(&[SPA]);
    let id = jsonwebtoken::decode::<serde_json::Value>(id_token, &key, &v)
        .unwrap()
        .claims;
    assert_eq!(id["nonce"], a.nonce.as_str());
    assert_eq!(id["sub"], at["uid"]);
    assert_eq!(id["email"], "alice@example.com");
    assert_eq!(id["name"], "Alice Admin");
    assert_eq!(id["preferred_username"], "alice@example.com");
    assert_eq!(id["amr"], serde_json::json!(["pwd"]));
    assert_eq!(id["role"], "user");
    let at_digest = aws_lc_rs::digest::digest(
        &aws_lc_rs::digest::SHA256,
        tokens["access_token"].as_str().unwrap().as_bytes(),
    );
    assert_eq!(id["at_hash"], URL_SAFE_NO_PAD.encode(&at_digest.as_ref()[..16]));

    // userinfo
    let r = s
        .http
        .get(s.url("people", "/v1/userinfo"))
        .bearer_auth(tokens["access_token"].as_str().unwrap())
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let info: serde_json::Value = r.json().await.unwrap();
    assert_eq!(info["sub"], id["sub"]);
    assert_eq!(info["email"], "alice@example.com");
    assert_eq!(info["given_name"], "Alice");
    let r = s
        .http
        .get(s.url("people", "/v1/userinfo"))
        .bearer_auth("garbage")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 401);
    assert!(
        r.headers()["www-authenticate"]
            .to_str()
            .unwrap()
            .contains("invalid_token")
    );

    // Refresh with rotation: a new refresh token each time, the old one retired.
    let rt1 = tokens["refresh_token"].as_str().unwrap().to_owned();
    let (st, t2) = refresh(&s, SPA, &rt1).await;
    assert_eq!(st, 200, "{t2}");
    let rt2 = t2["refresh_token"].as_str().unwrap().to_owned();
    assert_ne!(rt1, rt2);
    assert_eq!(claims_of(t2["id_token"].as_str().unwrap())["sub"], id["sub"]);
    let (st, t3) = refresh(&s, SPA, &rt2).await;
    assert_eq!(st, 200, "{t3}");

    // Single sign-on: a second authorization needs no password (consent remembered).
    let (v2, c2) = pkce();
    let a2 = Authorize::spa("openid products:read orders:create", &c2);
    let p = b.follow(b.get(&a2.url(&s, "people")).await).await;
    let code2 = code_of(&p, &a2, &issuer);
    assert_eq!(exchange(&s, "people", &code2, Some(&v2)).await.0, 200);

    // Sign out: back to the registered URI with the state, and the session is gone.
    let logout = format!(
        "{}?id_token_hint={id_token}&post_logout_redirect_uri={}&state=bye",
        s.url("people", "/v1/logout"),
        "http%3A%2F%2F127.0.0.1%3A3000%2F"
    );
    let p = b.get(&logout).await;
    assert_eq!(p.status, 303);
    assert_eq!(p.location.as_deref(), Some("http://127.0.0.1:3000/?state=bye"));
    let p = b.follow(b.get(&a2.url(&s, "people")).await).await;
    assert_eq!(p.status, 200);
    assert!(
        p.body.contains("current-password"),
        "signed out: the password is asked again"
    );
    // A post-logout URI that is not registered is refused on a page.
    let p = b
        .get(&format!(
            "{}?id_token_hint={id_token}&post_logout_redirect_uri=https%3A%2F%2Fevil.example%2F",
            s.url("people", "/v1/logout")
        ))
        .await;
    assert_eq!(p.status, 400);
    s.stop().await;
}
both_dbs!(full_flow);

/// PKCE and redirect URI errors, each exactly as RFC 6749 / 7636 / 9700 say.
async fn authorize_errors(db: Db) {
    let (_env, s) = start_people(db).await;
    let issuer = s.issuer("people");
    let b = Browser::new(&s);
    let (_, challenge) = pkce();

    // PKCE missing for a public client: an error at the redirect URI.
    let mut a = Authorize::spa("openid", &challenge);
    a.challenge = None;
    a.method = None;
    let p = b.get(&a.url(&s, "people")).await;
    let q = query(p.location.as_deref().unwrap());
    assert_eq!(q["error"], "invalid_request");
    assert!(q["error_description"].contains("PKCE is required"), "{q:?}");
    assert_eq!(q["state"], a.state);
    assert_eq!(q["iss"], issuer);

    // The plain method is refused.
    let mut a = Authorize::spa("openid", &challenge);
    a.method = Some("plain");
    let q = query(b.get(&a.url(&s, "people")).await.location.as_deref().unwrap());
    assert_eq!(q["error"], "invalid_request");
    assert!(q["error_description"].contains("plain"));

    // A redirect URI that is not registered exactly: a page, never a redirect.
    for bad in [
        "http://127.0.0.1:3000/callback/",
        "http://127.0.0.1:3000/callback?x=1",
        "https://evil.example/callback",
    ] {
        let mut u = url::Url::parse(&Authorize::spa("openid", &challenge).url(&s, "people")).unwrap();
        let pairs: Vec<(String, String)> = u
            .query_pairs()
            .map(|(k, v)| {
                let v = if k == "redirect_uri" {
                    bad.to_owned()
                } else {
                    v.into_owned()
                };
                (k.into_owned(), v)
            })
            .collect();
        u.query_pairs_mut().clear().extend_pairs(pairs);
        let p = b.get(u.as_str()).await;
        assert_eq!(p.status, 400, "{bad}");
        assert!(p.location.is_none());
        assert!(p.body.contains("redirect URIs registered"), "{}", p.body);
    }

    // Unknown client: a page.
    let p = b
        .get(&s.url(
            "people",
            "/v1/authorize?client_id=nope&response_type=code&redirect_uri=x",
        ))
        .await;
    assert_eq!(p.status, 400);
    // response_type token (implicit) is refused at the redirect URI.
    let mut a = Authorize::spa("openid", &challenge);
    a.extra.push(("response_type", "token".into()));
    let u = a.url(&s, "people").replace("response_type=code&", "");
    let q = query(b.get(&u).await.location.as_deref().unwrap());
    assert_eq!(q["error"], "unsupported_response_type");
    // prompt=none without a session: login_required.
    let mut a = Authorize::spa("openid", &challenge);
    a.extra.push(("prompt", "none".into()));
    let q = query(b.get(&a.url(&s, "people")).await.location.as_deref().unwrap());
    assert_eq!(q["error"], "login_required");
    // An unknown scope: invalid_scope before any sign-in.
    let a = Authorize::spa("openid nope:nope", &challenge);
    let q = query(b.get(&a.url(&s, "people")).await.location.as_deref().unwrap());
    assert_eq!(q["error"], "invalid_scope");
    s.stop().await;
}
both_dbs!(authorize_errors);

/// A wrong verifier, no verifier, and a replayed code (which revokes what it produced).
async fn code_exchange_errors(db: Db) {
    let (_env, s) = start_people(db).await;
    let issuer = s.issuer("people");
    let b = Browser::new(&s);
    let (verifier, challenge) = pkce();
    let a = Authorize::spa("openid offline_access products:read", &challenge);
    let p = sign_in(
        &b,
        &a.url(&s, "people"),
        "carol@example.com",
        &secret("CAROL_PASSWORD"),
    )
    .await;
    let code = code_of(&p, &a, &issuer);

    let (st, e) = exchange(&s, "people", &code, Some("x".repeat(43).as_str())).await;
    assert_eq!((st, e["error"].as_str()), (400, Some("invalid_grant")), "{e}");
    assert!(e["error_description"].as_str().unwrap().contains("PKCE"));
    // The failed attempt used the code up: single use means single use.
    let (st, e) = exchange(&s, "people", &code, Some(&verifier)).await;
    assert_eq!((st, e["error"].as_str()), (400, Some("invalid_grant")), "{e}");

    // A fresh code: no verifier is refused.
    let (verifier, challenge) = pkce();
    let a = Authorize::spa("openid offline_access products:read", &challenge);
    let code = code_of(&b.follow(b.get(&a.url(&s, "people")).await).await, &a, &issuer);
    let (st, e) = exchange(&s, "people", &code, None).await;
    assert_eq!((st, e["error"].as_str()), (400, Some("invalid_grant")), "{e}");
    assert!(e["error_description"].as_str().unwrap().contains("code_verifier"));

    // Replay: the code works once; a second use fails and revokes the tokens of the first.
    let (verifier2, challenge2) = pkce();
    let a = Authorize::spa("openid offline_access products:read", &challenge2);
    let code = code_of(&b.follow(b.get(&a.url(&s, "people")).await).await, &a, &issuer);
    let (st, tokens) = exchange(&s, "people", &code, Some(&verifier2)).await;
    assert_eq!(st, 200, "{tokens}");
    let access = tokens["access_token"].as_str().unwrap();
    assert_eq!(s.introspect("people", access).await["active"], true);
    let (st, e) = exchange(&s, "people", &code, Some(&verifier2)).await;
    assert_eq!((st, e["error"].as_str()), (400, Some("invalid_grant")));
    assert_eq!(
        s.introspect("people", access).await["active"],
        false,
        "the replay revoked the access token"
    );
    let (st, e) = refresh(&s, SPA, tokens["refresh_token"].as_str().unwrap()).await;
    assert_eq!(
        (st, e["error"].as_str()),
        (400, Some("invalid_grant")),
        "and the refresh token"
    );
    let _ = verifier;
    s.stop().await;
}
both_dbs!(code_exchange_errors);

async fn tokens_for(s: &Server, b: &Browser, login: &str, password: &str) -> serde_json::Value {
    let (verifier, challenge) = pkce();
    let a = Authorize::spa("openid offline_access products:read", &challenge);
    let p = sign_in(b, &a.url(s, "people"), login, password).await;
    let code = code_of(&p, &a, &s.issuer("people"));
    let (st, t) = exchange(s, "people", &code, Some(&verifier)).await;
    assert_eq!(st, 200, "{t}");
    t
}

/// Reuse of a rotated refresh token revokes the family; a deactivated user's tokens stop.
async fn refresh_reuse_and_deactivation(db: Db) {
    let (env, s) = start_people(db).await;
    let b = Browser::new(&s);
    let t = tokens_for(&s, &b, "carol@example.com", &secret("CAROL_PASSWORD")).await;
    let rt1 = t["refresh_token"].as_str().unwrap().to_owned();
    let (st, t2) = refresh(&s, SPA, &rt1).await;
    assert_eq!(st, 200);
    let rt2 = t2["refresh_token"].as_str().unwrap().to_owned();
    // rt1 again (no grace on this rule): reuse detected, the family is revoked.
    let (st, e) = refresh(&s, SPA, &rt1).await;
    assert_eq!((st, e["error"].as_str()), (400, Some("invalid_grant")), "{e}");
    let (st, _) = refresh(&s, SPA, &rt2).await;
    assert_eq!(st, 400, "the newest token of the family is revoked too");
    assert_eq!(
        s.introspect("people", t2["access_token"].as_str().unwrap()).await["active"],
        false
    );
    // Another client cannot use the token either.
    let (st, _) = refresh(&s, "people-mfa", &rt2).await;
    assert_eq!(st, 400);

    // Deactivation: refresh tokens stop at once and sign-in fails.
    let b2 = Browser::new(&s);
    let t = tokens_for(&s, &b2, "bob@example.com", &secret("BOB_PASSWORD")).await;
    let store = portcullis::runtime::open_store(&env.database_url).await.unwrap();
    let bob = portcullis_idp::people::directory::find(&store, "default", "bob@example.com")
        .await
        .unwrap();
    portcullis_idp::people::directory::lifecycle(
        &store,
        "default",
        &bob,
        portcullis_core::Lifecycle::Deactivate,
        portcullis_idp::clock::now(),
    )
    .await
    .unwrap();
    let (st, e) = refresh(&s, SPA, t["refresh_token"].as_str().unwrap()).await;
    assert_eq!((st, e["error"].as_str()), (400, Some("invalid_grant")), "{e}");
    assert_eq!(
        s.introspect("people", t["access_token"].as_str().unwrap()).await["active"],
        false
    );
    let b3 = Browser::new(&s);
    let (_, challenge) = pkce();
    let p = sign_in(
        &b3,
        &Authorize::spa("openid", &challenge).url(&s, "people"),
        "bob@example.com",
        &secret("BOB_PASSWORD"),
    )
    .await;
    assert_eq!(p.status, 401);
    assert!(p.body.contains("Unable to sign in."));
    store.close().await;
    s.stop().await;
}
both_dbs!(refresh_reuse_and_deactivation);

/// Within the grace window two refreshes with one token both succeed (an honest race).
async fn refresh_grace_window(db: Db) {
    let (_env, s) = start_people(db).await;
    let b = Browser::new(&s);
    let (verifier, challenge) = pkce();
    let mut a = Authorize::spa("openid offline_access", &challenge);
    a.client_id = "people-web";
    a.redirect_uri = "https://web.example.com/callback";
    let p = sign_in(
        &b,
        &a.url(&s, "people"),
        "carol@example.com",
        &secret("CAROL_PASSWORD"),
    )
    .await;
    let code = code_of(&p, &a, &s.issuer("people"));
    let r = s
        .http
        .post(s.url("people", "/v1/token"))
        .basic_auth("people-web", Some(secret("WEB_APP_SECRET")))
        .form(&[
            ("grant_type", "authorization_code"),
            ("code", code.as_str()),
            ("redirect_uri", a.redirect_uri),
            ("code_verifier", verifier.as_str()),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let t: serde_json::Value = r.json().await.unwrap();
    let rt = t["refresh_token"].as_str().unwrap();
    let web_refresh = || async {
        let r = s
            .http
            .post(s.url("people", "/v1/token"))
            .basic_auth("people-web", Some(secret("WEB_APP_SECRET")))
            .form(&[("grant_type", "refresh_token"), ("refresh_token", rt)])
            .send()
            .await
            .unwrap();
        r.status().as_u16()
    };
    let (a1, a2) = tokio::join!(web_refresh(), web_refresh());
    assert_eq!((a1, a2), (200, 200));
    s.stop().await;
}
both_dbs!(refresh_grace_window);

/// Wrong and missing passwords look the same; lockout after the org's limit; unlock.
async fn lockout_and_unlock(db: Db) {
    let (env, s) = start_people(db).await;
    let (_, challenge) = pkce();
    let start = Authorize::spa("openid", &challenge).url(&s, "people");
    let b = Browser::new(&s);
    let unknown = sign_in(&b, &start, "nobody@example.com", "whatever-password-1").await;
    assert_eq!(unknown.status, 401);
    for _ in 0..3 {
        let p = sign_in(&b, &start, "carol@example.com", "wrong-password-123").await;
        assert_eq!(p.status, 401);
        // The same words for an unknown user and a wrong password.
        assert_eq!(strip_tokens(&p.body), strip_tokens(&unknown.body));
    }
    let store = portcullis::runtime::open_store(&env.database_url).await.unwrap();
    crate::kit::eventually(
        "carol is locked out",
        std::time::Duration::from_secs(10),
        || async {
            store
                .user_by_login("default", "carol@example.com")
                .await
                .unwrap()
                .unwrap()
                .user
                .status
                == portcullis_core::UserStatus::LockedOut
        },
    )
    .await;
    let p = sign_in(&b, &start, "carol@example.com", &secret("CAROL_PASSWORD")).await;
    assert_eq!(p.status, 401, "locked out: even the right password fails");
    assert!(p.body.contains("Unable to sign in."));
    let carol = portcullis_idp::people::directory::find(&store, "default", "carol@example.com")
        .await
        .unwrap();
    portcullis_idp::people::directory::lifecycle(
        &store,
        "default",
        &carol,
        portcullis_core::Lifecycle::Unlock,
        portcullis_idp::clock::now(),
    )
    .await
    .unwrap();
    let p = sign_in(&b, &start, "carol@example.com", &secret("CAROL_PASSWORD")).await;
    assert_eq!(p.status, 303, "unlocked: {}", p.body);
    store.close().await;
    s.stop().await;
}
both_dbs!(lockout_and_unlock);

fn strip_tokens(html: &str) -> String {
    html.lines()
        .filter(|l| !l.contains("csrf") && !l.contains("nonce") && !l.contains("action="))
        .collect::<Vec<_>>()
        .join("\n")
}

/// CSRF: a form without the flow's token, or from another browser, is refused.
async fn csrf_and_flow_binding(db: Db) {
    let (_env, s) = start_people(db).await;
    let (_, challenge) = pkce();
    let start = Authorize::spa("openid", &challenge).url(&s, "people");
    let b = Browser::new(&s);
    let page = b.follow(b.get(&start).await).await;
    let action = attr(&page.body, "action").unwrap();
    let p = b
        .post(
            &action,
            &[
                ("step", "password"),
                ("username", "carol@example.com"),
                ("password", &secret("CAROL_PASSWORD")),
            ],
        )
        .await;
    assert_eq!(p.status, 403);
    assert!(p.body.contains("CSRF token is missing or wrong"), "{}", p.body);
    // The flow belongs to the browser that started it.
    let other = Browser::new(&s);
    let p = other.get(&action).await;
    assert_eq!(p.status, 400);
    s.stop().await;
}
both_dbs!(csrf_and_flow_binding);

/// TOTP: enrolment (QR and secret), a wrong code, a reused code, recovery codes, `amr`.
async fn totp_second_factor(db: Db) {
    let (_env, s) = start_people(db).await;
    let issuer = s.issuer("people");
    let b = Browser::new(&s);
    let (verifier, challenge) = pkce();
    let mut a = Authorize::spa("openid", &challenge);
    a.client_id = "people-mfa";
    a.redirect_uri = "http://127.0.0.1:3000/mfa";
    let p = sign_in(
        &b,
        &a.url(&s, "people"),
        "alice@example.com",
        &secret("ALICE_PASSWORD"),
    )
    .await;
    assert!(p.body.contains("Set up two-step verification"), "{}", p.body);
    assert!(p.body.contains("<svg"), "a QR code");
    let secret_b32 = unescape(&between(&p.body, "<code id=\"totp-secret\">", "</code>"));
    let key = totp_key(&secret_b32);
    let now = portcullis_idp::clock::now();

    let wrong = b.submit(&p, &[("code", "000000")]).await;
    let wrong = if wrong.body.contains("The code is not valid.") {
        wrong
    } else {
        b.submit(&p, &[("code", "999999")]).await
    };
    assert_eq!(wrong.status, 401);
    assert!(wrong.body.contains("The code is not valid."), "{}", wrong.body);
    let code = code_at(&key, now);
    let codes_page = b.submit(&wrong, &[("code", &code)]).await;
    assert!(
        codes_page.body.contains("Save your recovery codes"),
        "{}",
        codes_page.body
    );
    let recovery = unescape(&between(&codes_page.body, "<li><code>", "</code>"));
    let done = b
        .follow(
            b.get(&format!(
                "/signin?flow={}",
                attr_after(&codes_page.body, "name=\"flow\"", "value").unwrap()
            ))
            .await,
        )
        .await;
    let code_param = code_of(&done, &a, &issuer);
    let r = s
        .http
        .post(s.url("people", "/v1/token"))
        .form(&[
            ("grant_type", "authorization_code"),
            ("client_id", "people-mfa"),
            ("code", code_param.as_str()),
            ("redirect_uri", a.redirect_uri),
            ("code_verifier", verifier.as_str()),
        ])
        .send()
        .await
        .unwrap();
    let t: serde_json::Value = r.json().await.unwrap();
    assert_eq!(
        claims_of(t["id_token"].as_str().unwrap())["amr"],
        serde_json::json!(["pwd", "otp", "mfa"])
    );

    // A new browser: password, then the same code again is refused as reused.
    let b2 = Browser::new(&s);
    let (_, challenge) = pkce();
    let mut a2 = Authorize::spa("openid", &challenge);
    a2.client_id = "people-mfa";
    a2.redirect_uri = "http://127.0.0.1:3000/mfa";
    let p = sign_in(
        &b2,
        &a2.url(&s, "people"),
        "alice@example.com",
        &secret("ALICE_PASSWORD"),
    )
    .await;
    assert!(p.body.contains("Two-step verification"), "{}", p.body);
    let reused = b2.submit(&p, &[("code", &code)]).await;
    assert_eq!(reused.status, 401);
    assert!(reused.body.contains("already been used"), "{}", reused.body);
    // A recovery code works once.
    let done = b2.submit(&reused, &[("code", &recovery)]).await;
    code_of(&done, &a2, &issuer);
    let b3 = Browser::new(&s);
    let p = sign_in(
        &b3,
        &a2.url(&s, "people"),
        "alice@example.com",
        &secret("ALICE_PASSWORD"),
    )
    .await;
    let again = b3.submit(&p, &[("code", &recovery)]).await;
    assert_eq!(again.status, 401, "a recovery code is single-use");
    s.stop().await;
}
both_dbs!(totp_second_factor);

fn between(s: &str, start: &str, end: &str) -> String {
    let i = s.find(start).unwrap_or_else(|| panic!("{start} not in page")) + start.len();
    s[i..i + s[i..].find(end).unwrap()].to_owned()
}

/// RFC 6238 with SHA-1, six digits, 30 s: computed here with HMAC from aws-lc-rs, not
/// with the server's TOTP code.
fn totp_key(b32: &str) -> Vec<u8> {
    let alphabet = b"ABCDEFGHIJKLMNOPQRSTUVWXYZ234567";
    let mut bits = 0u64;
    let mut n = 0;
    let mut out = Vec::new();
    for c in b32.trim_end_matches('=').bytes() {
        bits = (bits << 5) | alphabet.iter().position(|a| *a == c).unwrap() as u64;
        n += 5;
        if n >= 8 {
            out.push((bits >> (n - 8)) as u8);
            n -= 8;
        }
    }
    out
}

fn code_at(key: &[u8], now: i64) -> String {
    let k = aws_lc_rs::hmac::Key::new(aws_lc_rs::hmac::HMAC_SHA1_FOR_LEGACY_USE_ONLY, key);
    let mac = aws_lc_rs::hmac::sign(&k, &((now / 30) as u64).to_be_bytes());
    let m = mac.as_ref();
    let off = (m[19] & 0xf) as usize;
    let v = u32::from_be_bytes([m[off] & 0x7f, m[off + 1], m[off + 2], m[off + 3]]) % 1_000_000;
    format!("{v:06}")
}

/// A user outside the rule's groups is denied by policy (at the redirect URI).
async fn policy_people_groups(db: Db) {
    let (_env, s) = start_people(db).await;
    let b = Browser::new(&s);
    let (_, challenge) = pkce();
    // mallory is not staff: the MFA rule applies to her, so she is asked to enrol.
    let a = Authorize::spa("openid", &challenge);
    let p = sign_in(
        &b,
        &a.url(&s, "people"),
        "mallory@example.com",
        &secret("MALLORY_PASSWORD"),
    )
    .await;
    assert!(p.body.contains("Set up two-step verification"), "{}", p.body);
    s.stop().await;
}
both_dbs!(policy_people_groups);

/// openid-client, a certified OpenID Connect relying party library, through the flow.
async fn real_oidc_client(db: Db) {
    let dir = std::path::PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../tests/clients");
    let (_env, s) = start_people(db).await;
    let issuer = s.issuer("people");
    let iss = issuer.clone();
    let password = secret("CAROL_PASSWORD");
    let out = tokio::task::spawn_blocking(move || {
        std::process::Command::new("node")
            .arg(dir.join("people-probe.mjs"))
            .args([&iss, SPA, SPA_CALLBACK, "carol@example.com", &password])
            .env("NODE_NO_WARNINGS", "1")
            .output()
            .unwrap()
    })
    .await
    .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "probe failed:\n{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let r: serde_json::Value = serde_json::from_str(stdout.lines().last().unwrap()).unwrap();
    assert_eq!(r["callback_iss"], issuer.as_str());
    assert_eq!(r["id_claims"]["email"], "carol@example.com");
    assert_eq!(r["id_verified_sub"], r["id_claims"]["sub"]);
    assert_eq!(r["userinfo"]["sub"], r["id_claims"]["sub"]);
    assert_eq!(r["refresh_rotated"], true);
    assert_eq!(r["logout_status"], 303);
    assert_eq!(r["logout_location"], "http://127.0.0.1:3000/");
    s.stop().await;
}
both_dbs!(real_oidc_client);

/// prompt=login and max_age ask for a fresh password once (and only once); prompt=consent
/// asks again even after consent was given, and once allowed, finishes.
async fn prompts_and_max_age(db: Db) {
    let (_env, s) = start_people(db).await;
    let issuer = s.issuer("people");
    let b = Browser::new(&s);
    let (_, challenge) = pkce();
    let a = Authorize::spa("openid orders:create", &challenge);
    let p = sign_in(
        &b,
        &a.url(&s, "people"),
        "carol@example.com",
        &secret("CAROL_PASSWORD"),
    )
    .await;
    let p = b.submit(&p, &[("decision", "allow")]).await;
    code_of(&p, &a, &issuer);
    for extra in [("prompt", "login"), ("max_age", "0")] {
        let mut a = Authorize::spa("openid orders:create", &challenge);
        a.extra.push((extra.0, extra.1.into()));
        let p = b.follow(b.get(&a.url(&s, "people")).await).await;
        assert!(
            p.body.contains("current-password"),
            "{extra:?} asks for the password again"
        );
        let p = b
            .submit(
                &p,
                &[
                    ("username", "carol@example.com"),
                    ("password", &secret("CAROL_PASSWORD")),
                ],
            )
            .await;
        code_of(&p, &a, &issuer);
    }
    // max_age long enough: single sign-on.
    let mut a = Authorize::spa("openid orders:create", &challenge);
    a.extra.push(("max_age", "3600".into()));
    code_of(&b.follow(b.get(&a.url(&s, "people")).await).await, &a, &issuer);
    // prompt=consent: the consent page again, then the code.
    let mut a = Authorize::spa("openid orders:create", &challenge);
    a.extra.push(("prompt", "consent".into()));
    let p = b.follow(b.get(&a.url(&s, "people")).await).await;
    assert!(p.body.contains("wants to access your account"), "{}", p.body);
    let p = b.submit(&p, &[("decision", "allow")]).await;
    code_of(&p, &a, &issuer);
    // Denying consent: access_denied at the redirect URI.
    let mut a = Authorize::spa("openid orders:create", &challenge);
    a.extra.push(("prompt", "consent".into()));
    let p = b.follow(b.get(&a.url(&s, "people")).await).await;
    let p = b.submit(&p, &[("decision", "deny")]).await;
    assert_eq!(query(p.location.as_deref().unwrap())["error"], "access_denied");
    s.stop().await;
}
both_dbs!(prompts_and_max_age);

/// A narrower scope on refresh narrows the access token, not the refresh token; a wider
/// one is refused. A locked-out user's refresh tokens keep working (lockout only stops
/// password sign-in).
async fn refresh_scope_and_lockout(db: Db) {
    let (env, s) = start_people(db).await;
    let b = Browser::new(&s);
    let t = tokens_for(&s, &b, "carol@example.com", &secret("CAROL_PASSWORD")).await;
    let rt = t["refresh_token"].as_str().unwrap();
    let narrow = |token: &str, scope: &'static str| {
        let token = token.to_owned();
        let s = &s;
        async move {
            let r = s
                .http
                .post(s.url("people", "/v1/token"))
                .form(&[
                    ("grant_type", "refresh_token"),
                    ("client_id", SPA),
                    ("refresh_token", token.as_str()),
                    ("scope", scope),
                ])
                .send()
                .await
                .unwrap();
            (r.status().as_u16(), r.json::<serde_json::Value>().await.unwrap())
        }
    };
    let (st, e) = narrow(rt, "openid orders:create").await;
    assert_eq!((st, e["error"].as_str()), (400, Some("invalid_scope")), "{e}");
    let (st, t2) = narrow(rt, "offline_access products:read").await;
    assert_eq!(st, 200, "{t2}");
    assert_eq!(t2["scope"], "offline_access products:read");
    let (st, t3) = refresh(&s, SPA, t2["refresh_token"].as_str().unwrap()).await;
    assert_eq!(st, 200, "{t3}");
    assert_eq!(
        t3["scope"], "openid offline_access products:read",
        "the refresh token kept its scope"
    );

    // Lock carol out with wrong passwords from another browser: her tokens still refresh.
    let other = Browser::new(&s);
    let (_, challenge) = pkce();
    for _ in 0..3 {
        sign_in(
            &other,
            &Authorize::spa("openid", &challenge).url(&s, "people"),
            "carol@example.com",
            "wrong-password-123",
        )
        .await;
    }
    let store = portcullis::runtime::open_store(&env.database_url).await.unwrap();
    crate::kit::eventually(
        "carol is locked out",
        std::time::Duration::from_secs(10),
        || async {
            store
                .user_by_login("default", "carol@example.com")
                .await
                .unwrap()
                .unwrap()
                .user
                .status
                == portcullis_core::UserStatus::LockedOut
        },
    )
    .await;
    let (st, t4) = refresh(&s, SPA, t3["refresh_token"].as_str().unwrap()).await;
    assert_eq!(st, 200, "a lockout does not log the user out: {t4}");
    store.close().await;
    s.stop().await;
}
both_dbs!(refresh_scope_and_lockout);

/// Guessing second-factor codes counts toward the lockout: the session ends.
async fn totp_guessing_locks_out(db: Db) {
    let (_env, s) = start_people(db).await;
    let b = Browser::new(&s);
    let (_, challenge) = pkce();
    let mut a = Authorize::spa("openid", &challenge);
    a.client_id = "people-mfa";
    a.redirect_uri = "http://127.0.0.1:3000/mfa";
    let mut p = sign_in(
        &b,
        &a.url(&s, "people"),
        "bob@example.com",
        &secret("BOB_PASSWORD"),
    )
    .await;
    assert!(p.body.contains("Set up two-step verification"));
    let mut last = 0;
    for _ in 0..3 {
        let next = b.submit(&p, &[("code", "000001")]).await;
        last = next.status;
        if next.status != 401 {
            p = next;
            break;
        }
        p = next;
    }
    assert_eq!(last, 403, "{}", p.body);
    assert!(p.body.contains("Sign-in is locked"), "{}", p.body);
    s.stop().await;
}
both_dbs!(totp_guessing_locks_out);

/// Logout without an id_token_hint asks first (no logout by a link); a client_id that
/// contradicts the hint is refused.
async fn logout_confirmation(db: Db) {
    let (_env, s) = start_people(db).await;
    let b = Browser::new(&s);
    let t = tokens_for(&s, &b, "carol@example.com", &secret("CAROL_PASSWORD")).await;
    let p = b.get(&s.url("people", "/v1/logout")).await;
    assert_eq!(p.status, 200);
    assert!(p.body.contains("Sign out?"), "{}", p.body);
    // Still signed in: a new authorization needs no password.
    let (_, challenge) = pkce();
    let a = Authorize::spa("openid", &challenge);
    code_of(
        &b.follow(b.get(&a.url(&s, "people")).await).await,
        &a,
        &s.issuer("people"),
    );
    let mismatch = format!(
        "{}?id_token_hint={}&client_id=people-web",
        s.url("people", "/v1/logout"),
        t["id_token"].as_str().unwrap()
    );
    assert_eq!(b.get(&mismatch).await.status, 400);
    // An access token is no id_token_hint.
    let at = format!(
        "{}?id_token_hint={}",
        s.url("people", "/v1/logout"),
        t["access_token"].as_str().unwrap()
    );
    assert_eq!(b.get(&at).await.status, 400);
    // Confirming signs out.
    let confirm = b.get(&s.url("people", "/v1/logout")).await;
    let csrf = attr_after(&confirm.body, "name=\"csrf\"", "value").unwrap();
    let p = b
        .post(&s.url("people", "/v1/logout"), &[("csrf", csrf.as_str())])
        .await;
    assert!(p.body.contains("You have been signed out"), "{}", p.body);
    let p = b.follow(b.get(&a.url(&s, "people")).await).await;
    assert!(p.body.contains("current-password"));
    s.stop().await;
}
both_dbs!(logout_confirmation);

/// A lockout ends by itself when its window has passed (simulated: a lockout recorded
/// with an end in the past).
async fn lockout_expires(db: Db) {
    let (env, s) = start_people(db).await;
    let store = portcullis::runtime::open_store(&env.database_url).await.unwrap();
    let now = portcullis_idp::clock::now();
    let carol = store
        .user_by_login("default", "carol@example.com")
        .await
        .unwrap()
        .unwrap()
        .user;
    for _ in 0..3 {
        store
            .record_failed_sign_in("default", &carol.id, 3, now - 1, now)
            .await
            .unwrap();
    }
    assert_eq!(
        store
            .user_by_login("default", "carol@example.com")
            .await
            .unwrap()
            .unwrap()
            .user
            .status,
        portcullis_core::UserStatus::LockedOut
    );
    let b = Browser::new(&s);
    let (_, challenge) = pkce();
    let p = sign_in(
        &b,
        &Authorize::spa("openid", &challenge).url(&s, "people"),
        "carol@example.com",
        &secret("CAROL_PASSWORD"),
    )
    .await;
    assert_eq!(p.status, 303, "the window passed: {}", p.body);
    assert_eq!(
        store
            .user_by_login("default", "carol@example.com")
            .await
            .unwrap()
            .unwrap()
            .user
            .status,
        portcullis_core::UserStatus::Active
    );
    store.close().await;
    s.stop().await;
}
both_dbs!(lockout_expires);
