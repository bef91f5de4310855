'use strict';
// SehatMu's token API on the libraries the real server is built on: express and
// oauth2-server 3.x, with only the glue SehatMu's page implies:
//
// * POST /oauth/token?grant_type=client_credentials, body client_id and client_secret
//   (application/x-www-form-urlencoded). oauth2-server reads grant_type from the body, so the
//   glue moves it there from the query; the answer is the token object the model saved
//   (accessToken, accessTokenExpiresAt, clientId, client, userId, user).
// * Errors as a FHIR OperationOutcome, with the page's texts for a rejected client and for the
//   rate limit; a server error (5xx) as text/plain.
// * The page's rate limit: after a failed authentication of a client_id, one request per minute
//   for that client_id - every other request within the minute is refused with 429.
// * GET /api/ping: a protected resource, checked by oauth2-server's authenticate().
//
// Under /harness/ are routes the tests use to make their own clients; they are not part of
// SehatMu. Prints `ready http://127.0.0.1:PORT` once it listens; exits when its standard input
// closes (so it never outlives the `cargo xtask conformance` that started it).

const crypto = require('node:crypto');
const http = require('node:http');
const express = require('express');
const OAuth2Server = require('oauth2-server');

const { Request, Response, InvalidClientError } = OAuth2Server;

// The page's texts (document 004).
const CREDENTIALS_REJECTED =
  'The user or system was not able to be authenticated (either client_id or client_secret combination is unacceptable)';
const RATE_LIMITED =
  'Authentication temporarily cannot be performed due to the rate limit policy. Rate limit: 1 request per minute after a failed attempt.';
const RATE_LIMIT_WINDOW_MS = 60 * 1000;

// The in-memory model: clients by id, tokens by value.
const clients = new Map();
const tokens = new Map();

const model = {
  async getClient(clientId, clientSecret) {
    const client = clients.get(clientId);
    if (!client || client.secret !== clientSecret) {
      return null;
    }
    return client;
  },
  async getUserFromClient(client) {
    if (client.failing) {
      throw new Error('the user store is unavailable');
    }
    return client.user;
  },
  async saveToken(token, client, user) {
    const saved = {
      accessToken: token.accessToken,
      accessTokenExpiresAt: token.accessTokenExpiresAt,
      clientId: client.id,
      client: { name: client.name, email: client.email },
      userId: user.id,
      user,
    };
    tokens.set(token.accessToken, saved);
    return saved;
  },
  async getAccessToken(accessToken) {
    return tokens.get(accessToken) || null;
  },
};

const oauth = new OAuth2Server({ model, accessTokenLifetime: 60 * 60 });

function outcome(res, status, text) {
  res.status(status).json({
    resourceType: 'OperationOutcome',
    issue: [{ severity: 'invalid', code: 'value', details: { text } }],
  });
}

function failure(res, err) {
  const status = err.code || 500;
  if (status >= 500) {
    res.status(status).type('text/plain').send(http.STATUS_CODES[status] || 'Server Error');
  } else {
    outcome(res, status, err.message);
  }
}

// client_id -> time of its last failed authentication
const failedAt = new Map();

const app = express();
app.disable('x-powered-by');

app.post('/oauth/token', express.urlencoded({ extended: false }), async (req, res) => {
  const clientId = typeof req.body.client_id === 'string' ? req.body.client_id : '';
  const failed = failedAt.get(clientId);
  if (failed !== undefined && Date.now() - failed < RATE_LIMIT_WINDOW_MS) {
    outcome(res, 429, RATE_LIMITED);
    return;
  }
  const request = new Request({
    method: req.method,
    headers: req.headers,
    query: req.query,
    body: { ...req.body, grant_type: req.query.grant_type },
  });
  try {
    const token = await oauth.token(request, new Response(res));
    res.set('Cache-Control', 'no-store').json(token);
  } catch (err) {
    if (err instanceof InvalidClientError) {
      failedAt.set(clientId, Date.now());
      outcome(res, err.code, CREDENTIALS_REJECTED);
    } else {
      failure(res, err);
    }
  }
});

app.get('/api/ping', async (req, res) => {
  try {
    const token = await oauth.authenticate(new Request(req), new Response(res));
    res.json({ pong: true, clientId: token.clientId });
  } catch (err) {
    failure(res, err);
  }
});

// A new client: {"accessTokenLifetime": seconds} to shorten its tokens' life (oauth2-server's
// own per-client setting), {"failing": true} for one whose user lookup fails (a 503 from
// oauth2-server).
app.post('/harness/clients', express.json(), (req, res) => {
  const id = `${crypto.randomUUID()}.sehatmu.client`;
  const userId = crypto.randomBytes(12).toString('hex');
  const client = {
    id,
    secret: crypto.randomBytes(32).toString('hex'),
    grants: ['client_credentials'],
    name: 'kunci conformance',
    email: 'conformance@example.com',
    user: { id: userId, email: 'conformance@example.com', name: 'kunci conformance' },
    failing: Boolean(req.body && req.body.failing),
  };
  if (req.body && Number.isInteger(req.body.accessTokenLifetime)) {
    client.accessTokenLifetime = req.body.accessTokenLifetime;
  }
  clients.set(id, client);
  res.json({ clientId: id, clientSecret: client.secret });
});

const server = app.listen(0, '127.0.0.1', () => {
  process.stdout.write(`ready http://127.0.0.1:${server.address().port}\n`);
});
process.stdin.on('end', () => process.exit(0));
process.stdin.resume();
