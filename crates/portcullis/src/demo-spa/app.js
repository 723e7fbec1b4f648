// The demo single-page app: authorization code flow with PKCE (S256) against the
// identity provider, tokens kept in memory and sessionStorage of this tab only, and the
// policy table's calls through the gateway (same origin as this page).
'use strict';
const rows = [
  { id: 'list-products', method: 'GET', path: '/api/v1/products', needs: 'products:read' },
  { id: 'update-product', method: 'PUT', path: '/api/v1/products/1', needs: 'products:write, admin role' },
  { id: 'create-order', method: 'POST', path: '/api/v1/orders', needs: 'orders:create, sales department' },
  { id: 'delete-admin-users', method: 'DELETE', path: '/api/v1/admin/users', needs: 'admin:full, sysadmin role' },
];
const b64url = (bytes) => btoa(String.fromCharCode(...new Uint8Array(bytes))).replace(/\+/g, '-').replace(/\//g, '_').replace(/=+$/, '');
const random = (n) => b64url(crypto.getRandomValues(new Uint8Array(n)));
const $ = (id) => document.getElementById(id);

async function main() {
  const cfg = await (await fetch('/app/config.json')).json();
  const params = new URLSearchParams(location.search);
  if (params.has('error')) $('error').textContent = `${params.get('error')}: ${params.get('error_description') || ''}`;
  if (params.has('code')) {
    const pending = JSON.parse(sessionStorage.getItem('pkce') || '{}');
    sessionStorage.removeItem('pkce');
    history.replaceState(null, '', cfg.redirect_uri);
    if (params.get('state') !== pending.state) { $('error').textContent = 'state mismatch'; }
    else if (params.get('iss') !== cfg.issuer) { $('error').textContent = 'issuer mismatch'; }
    else {
      const res = await fetch(cfg.token_endpoint, {
        method: 'POST',
        headers: { 'content-type': 'application/x-www-form-urlencoded' },
        body: new URLSearchParams({ grant_type: 'authorization_code', client_id: cfg.client_id, code: params.get('code'), redirect_uri: cfg.redirect_uri, code_verifier: pending.verifier }),
      });
      const body = await res.json();
      if (!res.ok) $('error').textContent = `${body.error}: ${body.error_description}`;
      else sessionStorage.setItem('tokens', JSON.stringify(body));
    }
  }
  const tokens = JSON.parse(sessionStorage.getItem('tokens') || 'null');
  $('signed-out').hidden = !!tokens;
  $('signed-in').hidden = !tokens;
  $('sign-in').onclick = async () => {
    const verifier = random(32);
    const challenge = b64url(await crypto.subtle.digest('SHA-256', new TextEncoder().encode(verifier)));
    const state = random(16);
    sessionStorage.setItem('pkce', JSON.stringify({ verifier, state }));
    const u = new URL(cfg.authorization_endpoint);
    u.search = new URLSearchParams({ client_id: cfg.client_id, response_type: 'code', redirect_uri: cfg.redirect_uri, scope: cfg.scope, state, nonce: random(16), code_challenge: challenge, code_challenge_method: 'S256' });
    location.assign(u);
  };
  if (!tokens) return;
  const claims = JSON.parse(atob(tokens.access_token.split('.')[1].replace(/-/g, '+').replace(/_/g, '/')));
  $('who').textContent = claims.sub;
  $('claims').textContent = `department ${claims.department_id ?? '-'}, roles ${(claims.user_roles || []).join(', ') || '-'}`;
  $('sign-out').onclick = () => {
    sessionStorage.removeItem('tokens');
    const u = new URL(cfg.end_session_endpoint);
    u.search = new URLSearchParams({ id_token_hint: tokens.id_token, post_logout_redirect_uri: cfg.redirect_uri });
    location.assign(u);
  };
  for (const r of rows) {
    const tr = document.createElement('tr');
    tr.innerHTML = `<td><code>${r.method} ${r.path}</code></td><td>${r.needs}</td><td><button id="call-${r.id}">Call</button></td><td id="result-${r.id}"></td>`;
    $('rows').appendChild(tr);
    $(`call-${r.id}`).onclick = async () => {
      const res = await fetch(r.path, { method: r.method, headers: { authorization: `Bearer ${tokens.access_token}`, 'content-type': 'application/json' }, body: r.method === 'GET' || r.method === 'DELETE' ? undefined : '{}' });
      const out = $(`result-${r.id}`);
      out.className = res.ok ? 'ok' : 'denied';
      out.dataset.status = String(res.status);
      out.textContent = `${res.status} ${res.ok ? 'allowed' : (res.headers.get('www-authenticate') || '')}`;
    };
  }
}
main().catch((e) => { $('error').textContent = String(e); });
