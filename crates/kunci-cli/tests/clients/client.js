// kunci agent client for Node: http.request over the agent's Unix socket (no dependency).
// `node client.js PROFILE` prints one JSON line; the functions are what an application copies.
const http = require('node:http');

function kunciAgent(method, path, { body, accept = 'application/json' } = {}) {
  const socketPath = process.env.KUNCI_AGENT || `${process.env.XDG_RUNTIME_DIR}/kunci/agent.sock`;
  return new Promise((resolve, reject) => {
    const req = http.request({ socketPath, path, method, headers: { Accept: accept }, timeout: 40000 }, (res) => {
      let text = '';
      res.setEncoding('utf8');
      res.on('data', (chunk) => { text += chunk; });
      res.on('end', () => {
        if (res.statusCode === 200) return resolve(text);
        // error: configuration, reauthenticate, rate_limited (see until), unavailable or protocol
        const { error, message, exit_code: exitCode, until } = JSON.parse(text);
        reject(Object.assign(new Error(`kunci agent: ${error}: ${message}`), { error, exitCode, until }));
      });
    });
    req.on('timeout', () => req.destroy(new Error('kunci agent: no answer')));
    req.on('error', reject);
    req.end(body);
  });
}

/** The token of a profile (cached and refreshed by the agent). */
const kunciToken = async (profile) =>
  JSON.parse(await kunciAgent('GET', `/v1/token/${encodeURIComponent(profile)}`)).token;

/** The ready-made Authorization value: "Bearer <token>" (or "Token <token>"). */
const kunciHeader = (profile) =>
  kunciAgent('GET', `/v1/header/${encodeURIComponent(profile)}`, { accept: 'text/plain' });

/** After the API answered 401 for token: one refresh, however many workers report it. */
const kunciInvalidate = async (profile, token) =>
  JSON.parse(await kunciAgent('POST', `/v1/invalidate/${encodeURIComponent(profile)}`, { body: token })).invalidated;

(async () => {
  const profile = process.argv[2] || 'stamps';
  const token = await kunciToken(profile);
  const header = await kunciHeader(profile);
  const invalidated = await kunciInvalidate(profile, token);
  console.log(JSON.stringify({ token, header, invalidated, after: await kunciToken(profile) }));
})().catch((e) => { console.error(e.message); process.exit(1); });
