// Purpose: the Kafka client's OAUTHBEARER token sources (host/kafka/client/oauth-token.ts) over a
// real HTTP socket: the client credentials POST (Basic, form-urlencoded), a token reused until
// its refresh buffer and then fetched again, one fetch for concurrent logins, tokenBytesMax at its
// boundary (answer and file), the endpoint's OAuth error named, a slow endpoint cut at the
// timeout; the token file read at each login. The secret is in no error.
import t from 'tap';
import { createServer } from 'node:http';
import { mkdtemp, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { OAuthTokenSource } from '../../../host/kafka/client/oauth-token.js';
import { clientSasl } from '../../../host/sync/sasl.js';

interface Seen {
  auth: string | undefined;
  body: string;
}

/** An endpoint answering `answer(n)` to its n-th request (0-based), recording each request. */
async function endpoint(t: { teardown(f: () => unknown): void }, answer: (n: number) => { status: number; body: string; delayMs?: number }) {
  const seen: Seen[] = [];
  const server = createServer((req, res) => {
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', () => {
      const a = answer(seen.length);
      seen.push({ auth: req.headers.authorization, body: Buffer.concat(chunks).toString() });
      setTimeout(() => {
        res.writeHead(a.status, { 'content-type': 'application/json' });
        res.end(a.body);
      }, a.delayMs ?? 0);
    });
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  t.teardown(() => server.close());
  return { url: `http://127.0.0.1:${(server.address() as { port: number }).port}/token`, seen };
}

const ok = (token: string, expiresIn = 100) => ({ status: 200, body: JSON.stringify({ access_token: token, token_type: 'Bearer', expires_in: expiresIn }) });

t.test('client credentials: Basic with form-urlencoded parts, reuse until the refresh buffer, one fetch at a time', async (t) => {
  let n = 0;
  const ep = await endpoint(t, () => ok(`tok-${n++}`, n === 3 ? 3600 : 100));
  let now = 1_000_000;
  const src = new OAuthTokenSource({ tokenUrl: ep.url, clientId: 'site 17', clientSecret: 'p@ss:word', scope: 'kafka write' }, { tokenBytesMax: 65536, timeoutMs: 5000 }, () => now);
  const [a, b] = await Promise.all([src.token(), src.token()]);
  t.same([a, b, ep.seen.length], ['tok-0', 'tok-0', 1], 'two logins at once: one fetch');
  t.equal(ep.seen[0].auth, `Basic ${Buffer.from('site%2017:p%40ss%3Aword').toString('base64')}`, 'id and secret form-urlencoded, then Basic (RFC 6749 §2.3.1)');
  t.same(Object.fromEntries(new URLSearchParams(ep.seen[0].body)), { grant_type: 'client_credentials', scope: 'kafka write' }, 'the grant and the scope in the form body');
  now += 49_999;
  t.equal(await src.token(), 'tok-0', 'a 100 s token at 49.999 s: the cached token (the buffer is 5 minutes, capped at half the life)');
  now += 1;
  t.equal(await src.token(), 'tok-1', 'at 50 s: a new one');
  now += 50_000;
  t.equal(await src.token(), 'tok-2', 'and at its half-life the next (an hour long)');
  now += 2_879_999;
  t.equal(await src.token(), 'tok-2', 'an hour-long token at 47:59.999: the cached one (buffer 20 % = 12 minutes)');
  now += 1;
  t.equal(await src.token(), 'tok-3', 'at 48:00: a new one');
  t.equal(src.fetched, 4);
});

t.test('tokenBytesMax at its boundary; OAuth errors; a slow endpoint; no secret in errors', async (t) => {
  const token = 'a'.repeat(1000);
  const body = JSON.stringify({ access_token: token, token_type: 'Bearer', expires_in: 60 });
  const exact = await endpoint(t, () => ({ status: 200, body }));
  t.equal(await new OAuthTokenSource({ tokenUrl: exact.url, clientId: 'c', clientSecret: 's3cr3t', scope: null }, { tokenBytesMax: body.length, timeoutMs: 5000 }).token(), token, `an answer of exactly tokenBytesMax (${body.length}) bytes: accepted`);
  await t.rejects(new OAuthTokenSource({ tokenUrl: exact.url, clientId: 'c', clientSecret: 's3cr3t', scope: null }, { tokenBytesMax: body.length - 1, timeoutMs: 5000 }).token(), /answered more than tokenBytesMax 1\d+ bytes/, 'one byte over: refused');
  const denied = await endpoint(t, () => ({ status: 401, body: JSON.stringify({ error: 'invalid_client', error_description: 'bad secret' }) }));
  const err = await new OAuthTokenSource({ tokenUrl: denied.url, clientId: 'c', clientSecret: 's3cr3t', scope: null }, { tokenBytesMax: 65536, timeoutMs: 5000 }).token().catch((e: Error) => e.message);
  t.match(err, /answered HTTP 401: invalid_client \(bad secret\)/, 'the OAuth error code and description');
  t.notMatch(err, /s3cr3t/, 'and not the secret');
  const notBearer = await endpoint(t, () => ({ status: 200, body: JSON.stringify({ access_token: 'x', token_type: 'mac' }) }));
  await t.rejects(new OAuthTokenSource({ tokenUrl: notBearer.url, clientId: 'c', clientSecret: 's', scope: null }, { tokenBytesMax: 65536, timeoutMs: 5000 }).token(), /token_type mac, not Bearer/);
  const slow = await endpoint(t, () => ({ ...ok('late'), delayMs: 2000 }));
  const started = Date.now();
  await t.rejects(new OAuthTokenSource({ tokenUrl: slow.url, clientId: 'c', clientSecret: 's', scope: null }, { tokenBytesMax: 65536, timeoutMs: 200 }).token(), /no answer within 200 ms/, 'a slow endpoint: cut at the timeout');
  t.ok(Date.now() - started < 1500, 'promptly');
});

t.test('a token file: read at each login, bounded, checked', async (t) => {
  const dir = await mkdtemp(join(tmpdir(), 'oauth-file-'));
  const file = join(dir, 'token');
  const src = new OAuthTokenSource({ tokenFile: file }, { tokenBytesMax: 1024, timeoutMs: 1000 });
  await t.rejects(src.token(), /cannot read the OAUTHBEARER token file .*ENOENT/, 'missing: named');
  await writeFile(file, 'first.token.x\n');
  t.equal(await src.token(), 'first.token.x', 'read, whitespace trimmed');
  await writeFile(file, 'second.token.y');
  t.equal(await src.token(), 'second.token.y', 'read again at the next login');
  await writeFile(file, 'b'.repeat(1024));
  t.equal((await src.token()).length, 1024, 'exactly tokenBytesMax: accepted');
  await writeFile(file, 'b'.repeat(1025));
  await t.rejects(src.token(), /holds 1025 bytes, over tokenBytesMax 1024/, 'one over: refused');
  await writeFile(file, 'two tokens');
  await t.rejects(src.token(), /does not hold one bearer token/);
  await writeFile(file, '  \n');
  await t.rejects(src.token(), /is empty/);
});

t.test('the uplink block as client SASL options', async (t) => {
  t.equal(clientSasl({ sasl: null, requestTimeoutMs: 1000 }), null);
  const pw = { mechanism: 'SCRAM-SHA-512' as const, user: 'alice', password: 'x' };
  t.equal(clientSasl({ sasl: pw, requestTimeoutMs: 1000 }), pw, 'a password mechanism as it is');
  const o = clientSasl({ sasl: { mechanism: 'OAUTHBEARER', tokenUrl: 'http://127.0.0.1:1/t', clientId: 'site-17', clientSecret: 'zz' }, requestTimeoutMs: 1000 })!;
  t.same({ mechanism: o.mechanism, user: o.user, password: o.password, token: typeof o.token }, { mechanism: 'OAUTHBEARER', user: 'client site-17 at http://127.0.0.1:1/t', password: '', token: 'function' }, 'OAUTHBEARER: a token source, named without its secret');
});
