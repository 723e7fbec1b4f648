-- People: users, groups, credentials and factors, sign-in sessions and flows, consents,
-- authorization codes and refresh tokens. Every row carries org_id. Times are unix
-- seconds. Codes, refresh tokens and session ids are stored as SHA-256 hashes only.
ALTER TABLE orgs ADD COLUMN sign_in_settings TEXT NOT NULL DEFAULT '{}';
ALTER TABLE clients ADD COLUMN sign_in TEXT NOT NULL DEFAULT '{}';
ALTER TABLE policy_rules ADD COLUMN settings TEXT NOT NULL DEFAULT '{}';

CREATE TABLE users (
    org_id TEXT NOT NULL REFERENCES orgs(id) ON DELETE CASCADE,
    id TEXT NOT NULL,
    login TEXT NOT NULL,
    -- lower-cased login: sign-in is case-insensitive, as Okta's is
    login_key TEXT NOT NULL,
    status TEXT NOT NULL,
    profile TEXT NOT NULL,
    password_hash TEXT,
    password_changed_at BIGINT,
    failed_attempts BIGINT NOT NULL DEFAULT 0,
    locked_until BIGINT,
    last_login_at BIGINT,
    created_at BIGINT NOT NULL,
    updated_at BIGINT NOT NULL,
    PRIMARY KEY (org_id, id),
    UNIQUE (org_id, login_key)
);

CREATE TABLE password_history (
    org_id TEXT NOT NULL,
    user_id TEXT NOT NULL,
    password_hash TEXT NOT NULL,
    created_at BIGINT NOT NULL,
    FOREIGN KEY (org_id, user_id) REFERENCES users(org_id, id) ON DELETE CASCADE
);
CREATE INDEX password_history_user ON password_history (org_id, user_id, created_at);

CREATE TABLE user_groups (
    org_id TEXT NOT NULL REFERENCES orgs(id) ON DELETE CASCADE,
    id TEXT NOT NULL,
    name TEXT NOT NULL,
    description TEXT NOT NULL,
    created_at BIGINT NOT NULL,
    PRIMARY KEY (org_id, id),
    UNIQUE (org_id, name)
);

CREATE TABLE group_members (
    org_id TEXT NOT NULL,
    group_id TEXT NOT NULL,
    user_id TEXT NOT NULL,
    PRIMARY KEY (org_id, group_id, user_id),
    FOREIGN KEY (org_id, group_id) REFERENCES user_groups(org_id, id) ON DELETE CASCADE,
    FOREIGN KEY (org_id, user_id) REFERENCES users(org_id, id) ON DELETE CASCADE
);
CREATE INDEX group_members_user ON group_members (org_id, user_id);

CREATE TABLE factors (
    org_id TEXT NOT NULL,
    id TEXT NOT NULL,
    user_id TEXT NOT NULL,
    factor_type TEXT NOT NULL,
    status TEXT NOT NULL,
    sealed_secret TEXT NOT NULL,
    -- the last TOTP time step accepted: a code is never accepted twice
    last_used_step BIGINT,
    created_at BIGINT NOT NULL,
    PRIMARY KEY (org_id, id),
    FOREIGN KEY (org_id, user_id) REFERENCES users(org_id, id) ON DELETE CASCADE
);
CREATE INDEX factors_user ON factors (org_id, user_id);

CREATE TABLE recovery_codes (
    org_id TEXT NOT NULL,
    user_id TEXT NOT NULL,
    code_hash TEXT NOT NULL,
    used_at BIGINT,
    PRIMARY KEY (org_id, user_id, code_hash),
    FOREIGN KEY (org_id, user_id) REFERENCES users(org_id, id) ON DELETE CASCADE
);

CREATE TABLE sessions (
    org_id TEXT NOT NULL,
    id_hash TEXT NOT NULL,
    -- the public id (`sid`), never the cookie value
    id TEXT NOT NULL,
    user_id TEXT NOT NULL,
    auth_time BIGINT NOT NULL,
    amr TEXT NOT NULL,
    created_at BIGINT NOT NULL,
    expires_at BIGINT NOT NULL,
    PRIMARY KEY (org_id, id_hash),
    FOREIGN KEY (org_id, user_id) REFERENCES users(org_id, id) ON DELETE CASCADE
);
CREATE INDEX sessions_user ON sessions (org_id, user_id);

CREATE TABLE login_flows (
    org_id TEXT NOT NULL,
    id TEXT NOT NULL,
    -- hash of the browser-binding cookie; the CSRF token the flow's forms carry
    bind_hash TEXT NOT NULL,
    csrf TEXT NOT NULL,
    server_id TEXT NOT NULL,
    params TEXT NOT NULL,
    -- the user signed in with a password during this flow (prompt=login, max_age), and
    -- allowed the request's scopes on its consent page (prompt=consent asks anew)
    signed_in BIGINT NOT NULL DEFAULT 0,
    consented BIGINT NOT NULL DEFAULT 0,
    created_at BIGINT NOT NULL,
    expires_at BIGINT NOT NULL,
    PRIMARY KEY (org_id, id)
);

CREATE TABLE consents (
    org_id TEXT NOT NULL,
    user_id TEXT NOT NULL,
    client_id TEXT NOT NULL,
    server_id TEXT NOT NULL,
    scopes TEXT NOT NULL,
    created_at BIGINT NOT NULL,
    PRIMARY KEY (org_id, user_id, client_id, server_id),
    FOREIGN KEY (org_id, user_id) REFERENCES users(org_id, id) ON DELETE CASCADE
);

CREATE TABLE authorization_codes (
    org_id TEXT NOT NULL,
    code_hash TEXT NOT NULL,
    family_id TEXT NOT NULL,
    client_id TEXT NOT NULL,
    server_id TEXT NOT NULL,
    user_id TEXT NOT NULL,
    session_id TEXT NOT NULL,
    redirect_uri TEXT NOT NULL,
    scopes TEXT NOT NULL,
    nonce TEXT,
    code_challenge TEXT,
    auth_time BIGINT NOT NULL,
    amr TEXT NOT NULL,
    expires_at BIGINT NOT NULL,
    used_at BIGINT,
    PRIMARY KEY (org_id, code_hash)
);
CREATE INDEX authorization_codes_expiry ON authorization_codes (expires_at);

CREATE TABLE refresh_tokens (
    org_id TEXT NOT NULL,
    token_hash TEXT NOT NULL,
    family_id TEXT NOT NULL,
    client_id TEXT NOT NULL,
    server_id TEXT NOT NULL,
    user_id TEXT NOT NULL,
    session_id TEXT NOT NULL,
    scopes TEXT NOT NULL,
    auth_time BIGINT NOT NULL,
    amr TEXT NOT NULL,
    issued_at BIGINT NOT NULL,
    -- the family's absolute end (NULL: unlimited) and this token's idle end
    family_expires_at BIGINT,
    idle_expires_at BIGINT NOT NULL,
    used_at BIGINT,
    revoked_at BIGINT,
    PRIMARY KEY (org_id, token_hash)
);
CREATE INDEX refresh_tokens_family ON refresh_tokens (org_id, family_id);
CREATE INDEX refresh_tokens_user ON refresh_tokens (org_id, user_id);

-- Access tokens issued from a code or refresh family, so that revoking the family
-- (code replay, refresh reuse, deactivation) revokes them too.
CREATE TABLE grant_access_tokens (
    org_id TEXT NOT NULL,
    family_id TEXT NOT NULL,
    jti TEXT NOT NULL,
    expires_at BIGINT NOT NULL,
    PRIMARY KEY (org_id, jti)
);
CREATE INDEX grant_access_tokens_family ON grant_access_tokens (org_id, family_id);
CREATE INDEX grant_access_tokens_expiry ON grant_access_tokens (expires_at);

-- Families revoked (code replay, refresh reuse, deactivation...): no token is issued into
-- one afterwards, even by a request that was already being served when it was revoked.
CREATE TABLE revoked_families (
    org_id TEXT NOT NULL,
    family_id TEXT NOT NULL,
    revoked_at BIGINT NOT NULL,
    PRIMARY KEY (org_id, family_id)
);
