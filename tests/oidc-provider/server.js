// A real OpenID provider for auth/tests/oidc.rs: panva's OpenID-certified `oidc-provider`, with one
// confidential client and one user. FOR TESTS ONLY: the user is signed in and consents without being
// asked (see `interaction` below), and keys, sessions and grants live in memory.
//
//   node server.js [port]        port from argv, else $PORT, else 0 (a free port)
//
// Environment: CLIENT_ID, CLIENT_SECRET, REDIRECT_URI (the client); USER_SUB, USER_EMAIL, USER_NAME
// (the user); CONFORM_ID_TOKEN_CLAIMS=false puts the user's claims into the ID token as well (the
// library's default, true, leaves them to the userinfo endpoint when an access token is issued).
//
// Prints `listening <issuer>` on stdout when it accepts requests. oidc-provider prints its own notices
// on stdout too, so readers must look for that line rather than take the first one.

import { generateKeyPairSync, randomBytes } from 'node:crypto';
import { createServer } from 'node:http';
import Provider from 'oidc-provider';

const env = process.env;
const port = Number(process.argv[2] ?? env.PORT ?? 0);
if (!Number.isInteger(port) || port < 0 || port > 65535) {
  console.error(`invalid port ${process.argv[2] ?? env.PORT}`);
  process.exit(2);
}

const client = {
  client_id: env.CLIENT_ID ?? 'prism-test',
  client_secret: env.CLIENT_SECRET ?? 'prism-test-secret',
  redirect_uris: [env.REDIRECT_URI ?? 'http://127.0.0.1:9/oidc/callback'],
  grant_types: ['authorization_code'],
  response_types: ['code'],
  token_endpoint_auth_method: 'client_secret_basic',
};

const user = {
  sub: env.USER_SUB ?? 'test-user-1',
  email: env.USER_EMAIL ?? 'ada@example.org',
  email_verified: true,
  name: env.USER_NAME ?? 'Ada Lovelace',
};

// Fresh signing keys for every run: an RSA key (RS256, what clients get by default) and a P-256 key,
// so that the key set has more than one key and a relying party must pick the one the `kid` names.
const signingKeys = [
  generateKeyPairSync('rsa', { modulusLength: 2048 }).privateKey.export({ format: 'jwk' }),
  generateKeyPairSync('ec', { namedCurve: 'P-256' }).privateKey.export({ format: 'jwk' }),
];

const configuration = {
  clients: [client],
  jwks: { keys: signingKeys },
  cookies: { keys: [randomBytes(32).toString('base64url')] },
  // Standard claims per scope; `openid` alone discloses only `sub`.
  claims: {
    openid: ['sub'],
    email: ['email', 'email_verified'],
    profile: ['name'],
  },
  conformIdTokenClaims: env.CONFORM_ID_TOKEN_CLAIMS !== 'false',
  pkce: { required: () => true },
  features: { devInteractions: { enabled: false } },
  interactions: { url: (_ctx, interaction) => `/interaction/${interaction.uid}` },
  async findAccount(_ctx, sub) {
    if (sub !== user.sub) return undefined;
    return {
      accountId: user.sub,
      // The provider filters these by the granted scopes and claims.
      async claims() {
        return { ...user };
      },
    };
  },
};

// Completes the step a person would: the login prompt signs in the test user, the consent prompt
// grants what the client asked for. Everything else (cookies, the interaction's binding to the
// authorization request, resuming it) is the provider's own, through its documented
// interactionDetails / interactionFinished and Grant APIs.
async function interaction(provider, req, res) {
  const { prompt, params, session, grantId } = await provider.interactionDetails(req, res);
  switch (prompt.name) {
    case 'login':
      return provider.interactionFinished(
        req,
        res,
        { login: { accountId: user.sub } },
        { mergeWithLastSubmission: false },
      );
    case 'consent': {
      const grant = grantId
        ? await provider.Grant.find(grantId)
        : new provider.Grant({ accountId: session.accountId, clientId: params.client_id });
      const { details } = prompt;
      if (details.missingOIDCScope) grant.addOIDCScope(details.missingOIDCScope.join(' '));
      if (details.missingOIDCClaims) grant.addOIDCClaims(details.missingOIDCClaims);
      for (const [indicator, scopes] of Object.entries(details.missingResourceScopes ?? {})) {
        grant.addResourceScope(indicator, scopes.join(' '));
      }
      return provider.interactionFinished(
        req,
        res,
        { consent: { grantId: await grant.save() } },
        { mergeWithLastSubmission: true },
      );
    }
    default:
      res.statusCode = 501;
      return res.end(`prompt ${prompt.name} is not automated`);
  }
}

const server = createServer();
server.listen(port, '127.0.0.1', () => {
  const issuer = `http://127.0.0.1:${server.address().port}`;
  const provider = new Provider(issuer, configuration);
  provider.on('server_error', (_ctx, err) => console.error('server_error', err));
  const handle = provider.callback();
  server.on('request', (req, res) => {
    if (req.method === 'GET' && /^\/interaction\/[^/?]+(\?|$)/.test(req.url)) {
      interaction(provider, req, res).catch((err) => {
        console.error('interaction failed', err);
        if (!res.headersSent) res.statusCode = 500;
        res.end();
      });
    } else {
      handle(req, res);
    }
  });
  console.log(`listening ${issuer}`);
});

// The test kills this process when it is done; exit promptly on a polite signal too.
for (const signal of ['SIGINT', 'SIGTERM']) process.on(signal, () => process.exit(0));
