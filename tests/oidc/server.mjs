// A small, real OpenID Connect provider for hubgate's integration tests.
//
// One process per test. Configuration comes from OIDC_CLIENTS (see README.md).
// The process binds 127.0.0.1 on an OS-chosen port first, builds the Provider
// with issuer http://127.0.0.1:<port>, then prints exactly one stdout line:
//
//   READY http://127.0.0.1:<port>
//
// Everything else (oidc-provider notices included) goes to stderr.

import { createHash, generateKeyPairSync, randomBytes } from 'node:crypto';
import { createServer } from 'node:http';

// oidc-provider prints its NOTICE lines with console.info (stdout). stdout is
// reserved for the READY line, so every console method goes to stderr. This
// runs before oidc-provider is loaded (dynamic import below).
for (const method of ['log', 'info', 'debug']) {
  console[method] = (...args) => console.error(...args);
}

// Clean exit on SIGTERM/SIGINT, installed before anything slow happens.
const server = createServer();
let stopping = false;
function stop(signal) {
  if (stopping) return;
  stopping = true;
  console.error(`oidc test provider: ${signal}, shutting down`);
  if (!server.listening) process.exit(0);
  server.close(() => process.exit(0));
  server.closeAllConnections();
  setTimeout(() => process.exit(0), 1000).unref();
}
process.on('SIGTERM', () => stop('SIGTERM'));
process.on('SIGINT', () => stop('SIGINT'));

const { default: Provider, errors } = await import('oidc-provider');

const DEFAULT_CODE_TTL_SECS = 60;
const HOST = '127.0.0.1';

function fail(message) {
  console.error(`oidc test provider: ${message}`);
  process.exit(2);
}

// ---------------------------------------------------------------- clients --

function parseClients(raw) {
  let list;
  try {
    list = JSON.parse(raw ?? '[]');
  } catch (err) {
    fail(`OIDC_CLIENTS is not valid JSON: ${err.message}`);
  }
  if (!Array.isArray(list)) fail('OIDC_CLIENTS must be a JSON array');

  const codeTtl = new Map();
  const clients = list.map((c, i) => {
    if (!c || typeof c !== 'object') fail(`OIDC_CLIENTS[${i}] must be an object`);
    const { client_id, client_secret, redirect_uris } = c;
    if (typeof client_id !== 'string' || !client_id) fail(`OIDC_CLIENTS[${i}].client_id missing`);
    if (typeof client_secret !== 'string' || !client_secret) fail(`OIDC_CLIENTS[${i}].client_secret missing`);
    if (!Array.isArray(redirect_uris) || redirect_uris.length === 0) {
      fail(`OIDC_CLIENTS[${i}].redirect_uris must be a non-empty array`);
    }
    let ttl = DEFAULT_CODE_TTL_SECS;
    if (c.code_ttl_secs !== undefined) {
      if (!Number.isInteger(c.code_ttl_secs) || c.code_ttl_secs < 1) {
        fail(`OIDC_CLIENTS[${i}].code_ttl_secs must be a positive integer`);
      }
      ttl = c.code_ttl_secs;
    }
    codeTtl.set(client_id, ttl);
    const method = c.token_endpoint_auth_method ?? 'client_secret_basic';
    if (!['client_secret_basic', 'client_secret_post'].includes(method)) {
      fail(`OIDC_CLIENTS[${i}].token_endpoint_auth_method must be client_secret_basic or client_secret_post`);
    }
    return {
      client_id,
      client_secret,
      redirect_uris,
      grant_types: ['authorization_code'],
      response_types: ['code'],
      token_endpoint_auth_method: method,
    };
  });
  return { clients, codeTtl };
}

const { clients, codeTtl } = parseClients(process.env.OIDC_CLIENTS);

// --------------------------------------------------------------- accounts --

// accountId -> { email, name, email_verified }
const accounts = new Map();

function accountIdFor(email) {
  const digest = createHash('sha256').update(email.toLowerCase()).digest('hex');
  return `acc-${digest.slice(0, 16)}`;
}

async function findAccount(_ctx, sub) {
  const profile = accounts.get(sub);
  if (!profile) return undefined;
  return {
    accountId: sub,
    async claims() {
      const claims = { sub, email: profile.email, email_verified: profile.email_verified };
      if (profile.name) claims.name = profile.name;
      return claims;
    },
  };
}

// ------------------------------------------------------------------ html --

function esc(value) {
  return String(value ?? '')
    .replace(/&/g, '&amp;')
    .replace(/</g, '&lt;')
    .replace(/>/g, '&gt;')
    .replace(/"/g, '&quot;')
    .replace(/'/g, '&#39;');
}

function loginPage(uid, { email = '', name = '', error } = {}) {
  return `<!DOCTYPE html>
<html lang="vi">
<head>
<meta charset="utf-8">
<title>Đăng nhập (OpenID thử nghiệm)</title>
</head>
<body>
<h1>Đăng nhập (OpenID thử nghiệm)</h1>
${error ? `<p id="oidc-error">${esc(error)}</p>\n` : ''}<form method="post" action="/interaction/${esc(uid)}/login" id="oidc-login">
<p><label for="oidc-email">Email</label>
<input type="email" name="email" id="oidc-email" value="${esc(email)}" required></p>
<p><label for="oidc-name">Tên</label>
<input type="text" name="name" id="oidc-name" value="${esc(name)}"></p>
<p><input type="checkbox" name="email_verified" value="1" id="oidc-verified" checked>
<label for="oidc-verified">Email đã xác minh</label></p>
<p><button type="submit" id="oidc-submit">Đăng nhập</button></p>
</form>
</body>
</html>
`;
}

function send(res, status, body, type = 'text/plain; charset=utf-8') {
  const buf = Buffer.from(body, 'utf8');
  res.statusCode = status;
  res.setHeader('Content-Type', type);
  res.setHeader('Content-Length', String(buf.length));
  res.setHeader('Cache-Control', 'no-store');
  res.end(buf);
}

async function readForm(req, limit = 64 * 1024) {
  const chunks = [];
  let size = 0;
  for await (const chunk of req) {
    size += chunk.length;
    if (size > limit) throw new Error('request body too large');
    chunks.push(chunk);
  }
  return new URLSearchParams(Buffer.concat(chunks).toString('utf8'));
}

// ----------------------------------------------------------- interactions --

async function showInteraction(provider, req, res, uid) {
  const details = await provider.interactionDetails(req, res);
  if (details.uid !== uid) return send(res, 400, 'interaction mismatch\n');
  const { prompt, params } = details;

  switch (prompt.name) {
    case 'login':
      return send(res, 200, loginPage(uid, { email: params.login_hint ?? '' }), 'text/html; charset=utf-8');
    case 'consent':
      return grantConsent(provider, req, res, details);
    default:
      return send(res, 400, `unsupported prompt ${prompt.name}\n`);
  }
}

// Consent is granted automatically, following oidc-provider's own example
// (example/routes/koa.js, POST /interaction/:uid/confirm).
async function grantConsent(provider, req, res, details) {
  const { prompt: { details: missing }, params, session: { accountId } } = details;

  let { grantId } = details;
  let grant;
  if (grantId) {
    grant = await provider.Grant.find(grantId);
  } else {
    grant = new provider.Grant({ accountId, clientId: params.client_id });
  }
  if (missing.missingOIDCScope) grant.addOIDCScope(missing.missingOIDCScope.join(' '));
  if (missing.missingOIDCClaims) grant.addOIDCClaims(missing.missingOIDCClaims);
  if (missing.missingResourceScopes) {
    for (const [indicator, scope] of Object.entries(missing.missingResourceScopes)) {
      grant.addResourceScope(indicator, scope.join(' '));
    }
  }
  grantId = await grant.save();

  const consent = {};
  if (!details.grantId) consent.grantId = grantId;
  return provider.interactionFinished(req, res, { consent }, { mergeWithLastSubmission: true });
}

async function submitLogin(provider, req, res, uid) {
  const details = await provider.interactionDetails(req, res);
  if (details.uid !== uid) return send(res, 400, 'interaction mismatch\n');
  if (details.prompt.name !== 'login') return send(res, 400, `expected login prompt, got ${details.prompt.name}\n`);

  const form = await readForm(req);
  const email = (form.get('email') ?? '').trim();
  const name = (form.get('name') ?? '').trim();
  const emailVerified = form.get('email_verified') === '1';
  if (!email) {
    return send(res, 400, loginPage(uid, { name, error: 'Email là bắt buộc.' }), 'text/html; charset=utf-8');
  }

  const accountId = accountIdFor(email);
  accounts.set(accountId, { email, name, email_verified: emailVerified });
  console.error(`oidc test provider: login ${accountId} <${email}> verified=${emailVerified}`);

  return provider.interactionFinished(req, res, { login: { accountId } }, { mergeWithLastSubmission: false });
}

// ----------------------------------------------------------------- server --

let provider;

function route(req, res) {
  const url = new URL(req.url, 'http://127.0.0.1');
  let m;
  if (req.method === 'GET' && (m = /^\/interaction\/([^/]+)$/.exec(url.pathname))) {
    return showInteraction(provider, req, res, m[1]);
  }
  if (req.method === 'POST' && (m = /^\/interaction\/([^/]+)\/login$/.exec(url.pathname))) {
    return submitLogin(provider, req, res, m[1]);
  }
  return null;
}

let providerCallback;
server.on('request', (req, res) => {
  let handled;
  try {
    handled = route(req, res);
  } catch (err) {
    handled = Promise.reject(err);
  }
  if (handled === null) {
    providerCallback(req, res);
    return;
  }
  handled.catch((err) => {
    if (err instanceof errors.SessionNotFound) {
      console.error(`oidc test provider: ${err.message}: ${err.error_description ?? ''}`);
      if (!res.headersSent) send(res, 400, `${err.message}: ${err.error_description ?? ''}\n`);
      else res.end();
      return;
    }
    console.error('oidc test provider: interaction error', err);
    if (!res.headersSent) send(res, 500, 'internal error\n');
    else res.end();
  });
});

await new Promise((resolve, reject) => {
  server.once('error', reject);
  server.listen(0, HOST, () => {
    server.off('error', reject);
    resolve();
  });
});

const { port } = server.address();
const issuer = `http://${HOST}:${port}`;

const signingKey = {
  ...generateKeyPairSync('rsa', { modulusLength: 2048 }).privateKey.export({ format: 'jwk' }),
  kid: `test-${randomBytes(4).toString('hex')}`,
  use: 'sig',
  alg: 'RS256',
};

provider = new Provider(issuer, {
  clients,
  findAccount,
  jwks: { keys: [signingKey] },
  cookies: {
    keys: [randomBytes(32).toString('hex')],
    // Plain http: cookies are only marked Secure by oidc-provider when the
    // request is https, and SameSite=None without Secure is rejected by
    // browsers, so both cookie kinds use Lax.
    long: { httpOnly: true, sameSite: 'lax' },
    short: { httpOnly: true, sameSite: 'lax' },
  },
  interactions: {
    url(_ctx, interaction) {
      return `/interaction/${interaction.uid}`;
    },
  },
  features: {
    devInteractions: { enabled: false },
  },
  scopes: ['openid', 'email', 'profile'],
  claims: {
    openid: ['sub'],
    email: ['email', 'email_verified'],
    profile: ['name'],
  },
  // Put scope-requested claims in the ID token too, so a relying party that
  // reads only the ID token gets email, email_verified and name.
  conformIdTokenClaims: false,
  responseTypes: ['code'],
  clientAuthMethods: ['client_secret_basic', 'client_secret_post'],
  clientDefaults: {
    grant_types: ['authorization_code'],
    response_types: ['code'],
    token_endpoint_auth_method: 'client_secret_basic',
    id_token_signed_response_alg: 'RS256',
  },
  pkce: {
    methods: ['S256'],
    required: () => true,
  },
  ttl: {
    AuthorizationCode: (_ctx, _code, client) => codeTtl.get(client.clientId) ?? DEFAULT_CODE_TTL_SECS,
    AccessToken: 600,
    IdToken: 600,
    Interaction: 600,
    Session: 3600,
    Grant: 3600,
  },
  renderError(ctx, out) {
    ctx.type = 'text/plain; charset=utf-8';
    ctx.body = `${Object.entries(out).map(([k, v]) => `${k}: ${v}`).join('\n')}\n`;
  },
});
provider.proxy = false;
provider.on('server_error', (_ctx, err) => console.error('oidc test provider: server_error', err));
for (const event of ['authorization.error', 'grant.error', 'introspection.error', 'revocation.error', 'userinfo.error']) {
  provider.on(event, (_ctx, err) => console.error(`oidc test provider: ${event}: ${err.message} ${err.error_description ?? ''} ${err.error_detail ?? ''}`.trimEnd()));
}
providerCallback = provider.callback();

process.stdout.write(`READY ${issuer}\n`);
