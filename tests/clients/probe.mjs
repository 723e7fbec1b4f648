// Drives Portcullis with real client libraries and prints one JSON line with what they saw.
// usage: node probe.mjs ISSUER CLIENT_ID CLIENT_SECRET AUDIENCE
import * as client from 'openid-client';
import * as jose from 'jose';
import { createRequire } from 'node:module';

const require = createRequire(import.meta.url);
const OktaJwtVerifier = require('@okta/jwt-verifier');
const [issuer, clientId, clientSecret, audience] = process.argv.slice(2);

// openid-client: OIDC discovery, then the client_credentials grant with client_secret_basic.
const config = await client.discovery(new URL(issuer), clientId, undefined, client.ClientSecretBasic(clientSecret), {
  execute: [client.allowInsecureRequests],
});
const tokens = await client.clientCredentialsGrant(config, { scope: 'products:read' });

// jose: verify against the JWKS the discovery document names (RFC 9068 profile).
const jwks = jose.createRemoteJWKSet(new URL(config.serverMetadata().jwks_uri));
const { payload, protectedHeader } = await jose.jwtVerify(tokens.access_token, jwks, {
  issuer,
  audience,
  typ: 'at+jwt',
  requiredClaims: ['exp', 'iat', 'sub', 'client_id', 'jti'],
});

// Okta's own verifier: keys from {issuer}/v1/keys, RS256 only, exact issuer.
const okta = new OktaJwtVerifier({ issuer, testing: { disableHttpsCheck: true } });
const oktaJwt = await okta.verifyAccessToken(tokens.access_token, audience);

const before = await client.tokenIntrospection(config, tokens.access_token);
await client.tokenRevocation(config, tokens.access_token);
const after = await client.tokenIntrospection(config, tokens.access_token);

console.log(JSON.stringify({
  discovered_issuer: config.serverMetadata().issuer,
  jose_header: protectedHeader,
  jose_verified: payload,
  okta_verified: oktaJwt.claims,
  introspection_before: before,
  introspection_after: after,
}));
