// A real OpenID Connect client (openid-client) through the whole people flow against
// Portcullis: discovery, authorization code with PKCE (S256), state and nonce, the
// hosted sign-in page (driven with fetch and a cookie jar, as a browser would), code
// exchange with ID token validation, userinfo, refresh, and the end-session URL.
// usage: node people-probe.mjs ISSUER CLIENT_ID REDIRECT_URI LOGIN PASSWORD
// Prints one JSON line with what the library saw.
import * as client from 'openid-client';
import * as jose from 'jose';

const [issuer, clientId, redirectUri, login, password] = process.argv.slice(2);
const config = await client.discovery(new URL(issuer), clientId, undefined, client.None(), {
  execute: [client.allowInsecureRequests],
});

const verifier = client.randomPKCECodeVerifier();
const challenge = await client.calculatePKCECodeChallenge(verifier);
const state = client.randomState();
const nonce = client.randomNonce();
const authUrl = client.buildAuthorizationUrl(config, {
  redirect_uri: redirectUri,
  scope: 'openid profile email offline_access products:read',
  code_challenge: challenge,
  code_challenge_method: 'S256',
  state,
  nonce,
});

// The browser: a cookie jar and manual redirects.
const jar = new Map();
const keep = (res) => {
  for (const c of res.headers.getSetCookie()) {
    const [pair] = c.split(';');
    const [k, v] = pair.split('=');
    if (v === '') jar.delete(k); else jar.set(k, v);
  }
};
const cookie = () => [...jar].map(([k, v]) => `${k}=${v}`).join('; ');
const go = async (url, init = {}) => {
  const res = await fetch(url, { ...init, redirect: 'manual', headers: { ...(init.headers || {}), cookie: cookie() } });
  keep(res);
  return res;
};
const origin = new URL(issuer).origin;
let res = await go(authUrl.href);
while (res.status === 303 && res.headers.get('location').startsWith('/')) res = await go(origin + res.headers.get('location'));
const html = await res.text();
const unescape = (s) => s.replaceAll('&#x2f;', '/').replaceAll('&amp;', '&');
const action = origin + unescape(html.match(/action="([^"]+)"/)[1]);
const csrf = html.match(/name="csrf" value="([^"]+)"/)[1];
res = await go(action, {
  method: 'POST',
  headers: { 'content-type': 'application/x-www-form-urlencoded' },
  body: new URLSearchParams({ csrf, step: 'password', username: login, password }),
});
while (res.status === 303 && res.headers.get('location').startsWith('/')) res = await go(origin + res.headers.get('location'));
const callback = new URL(res.headers.get('location'));

// Back in the app: the library checks state and iss, exchanges the code with the verifier,
// and validates the ID token (issuer, audience, nonce, expiry).
const tokens = await client.authorizationCodeGrant(config, callback, {
  pkceCodeVerifier: verifier,
  expectedState: state,
  expectedNonce: nonce,
  idTokenExpected: true,
});
const idClaims = tokens.claims();
// And the ID token's signature with jose, against the discovered JWKS.
const jwks = jose.createRemoteJWKSet(new URL(config.serverMetadata().jwks_uri));
const { payload: idVerified } = await jose.jwtVerify(tokens.id_token, jwks, { issuer, audience: clientId });
const userinfo = await client.fetchUserInfo(config, tokens.access_token, idClaims.sub);
const refreshed = await client.refreshTokenGrant(config, tokens.refresh_token);
const endSession = client.buildEndSessionUrl(config, { id_token_hint: tokens.id_token, post_logout_redirect_uri: 'http://127.0.0.1:3000/' });
res = await go(endSession.href);

console.log(JSON.stringify({
  callback_iss: callback.searchParams.get('iss'),
  id_claims: idClaims,
  id_verified_sub: idVerified.sub,
  userinfo,
  refreshed_scope: refreshed.scope,
  refresh_rotated: refreshed.refresh_token !== tokens.refresh_token,
  logout_status: res.status,
  logout_location: res.headers.get('location'),
}));
