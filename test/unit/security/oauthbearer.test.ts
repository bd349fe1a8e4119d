// Purpose: the OAUTHBEARER token check (host/security/oauthbearer.ts) accepts exactly the tokens
// RFC 7519/7515 and the configured issuer, audience and keys allow — every accepted algorithm,
// the clock-skew boundary on exp and nbf, key rotation through the JWKS file — and refuses each
// other case with a reason naming what is wrong; a JWKS file with private or symmetric keys
// never loads.
import t from 'tap';
import { mkdtemp, writeFile, utimes } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { OAuthBearerVerifier, OAuthBearerError, parseClientFirst, readJwks, JwksFileError, OAUTHBEARER_ALGORITHMS, type OAuthBearerOptions } from '../../../host/security/oauthbearer.js';
import { validateSecurityOptions, defaultSecurityOptions } from '../../../host/security/options.js';
import { claimsFor, jwks, signJwt, testKey, writeJwks, type TestKey } from '../../helpers/oauth-idp.js';

const dir = await mkdtemp(join(tmpdir(), 'oauth-unit-'));
const keys: Record<string, TestKey> = {
  rs: testKey('rs-1', 'RS256'),
  ps: testKey('ps-1', 'PS256'),
  es: testKey('es-1', 'ES256'),
  es384: testKey('es-2', 'ES384'),
  ed: testKey('ed-1', 'EdDSA'),
  rs512: testKey('rs-2', 'RS512'),
};
const jwksFile = await writeJwks(dir, Object.values(keys));
const options = (over: Partial<OAuthBearerOptions> = {}): OAuthBearerOptions => ({ jwksFile, issuer: 'https://idp.test', audience: ['tributary'], principalClaim: 'sub', clockSkewMs: 30_000, algorithms: [...OAUTHBEARER_ALGORITHMS], ...over });
const message = (token: string, authzid = '') => Buffer.from(`n,${authzid ? `a=${authzid}` : ''},\u0001auth=Bearer ${token}\u0001\u0001`);
const refusal = (f: () => unknown): string => {
  try {
    f();
    return 'accepted';
  } catch (err) {
    if (!(err instanceof OAuthBearerError)) throw err;
    return err.message;
  }
};

t.test('every accepted algorithm verifies; the principal and expiry come from the token', async (t) => {
  const v = new OAuthBearerVerifier(options());
  for (const k of Object.values(keys)) {
    const claims = claimsFor('sensor-7', 600);
    const got = v.verifyMessage(message(signJwt(k, claims)));
    t.same(got, { name: 'sensor-7', expiresAtMs: (claims.exp as number) * 1000 }, `${k.alg} (${k.kid})`);
  }
  t.equal(v.verifyMessage(message(signJwt(keys.rs, claimsFor('sensor-7', 600)), 'sensor-7')).name, 'sensor-7', 'an authzid equal to the principal is accepted');
  t.equal(v.verifyMessage(Buffer.from(`n,,\u0001auth=Bearer ${signJwt(keys.rs, claimsFor('x', 60))}\u0001traceId=abc\u0001\u0001`)).name, 'x', 'an extension beside auth is accepted and ignored');
});

t.test('claims: exp and nbf at the clock-skew boundary, iss, aud, the principal claim', async (t) => {
  const now = Date.now();
  const nowSec = Math.floor(now / 1000);
  const at = (ms: number) => new OAuthBearerVerifier(options({ clockSkewMs: 30_000 }), () => ms);
  const tok = (claims: Record<string, unknown>) => signJwt(keys.rs, { sub: 'u', iss: 'https://idp.test', aud: 'tributary', ...claims });
  t.equal(refusal(() => at(nowSec * 1000 + 29_999).verifyToken(tok({ exp: nowSec }))), 'accepted', 'exp passed by 29.999 s with 30 s of skew: accepted');
  t.match(refusal(() => at(nowSec * 1000 + 30_000).verifyToken(tok({ exp: nowSec }))), /^token expired at/, 'exp passed by exactly the skew: refused');
  t.equal(refusal(() => at(nowSec * 1000).verifyToken(tok({ exp: nowSec + 60, nbf: nowSec + 30 }))), 'accepted', 'nbf 30 s ahead with 30 s of skew: accepted');
  t.match(refusal(() => at(nowSec * 1000).verifyToken(tok({ exp: nowSec + 60, nbf: nowSec + 31 }))), /^token not valid before/, 'nbf 31 s ahead: refused');
  t.match(refusal(() => at(now).verifyToken(tok({}))), /no exp claim/, 'no exp: refused');
  t.match(refusal(() => at(now).verifyToken(tok({ exp: String(nowSec + 60) }))), /exp is not a number/, 'exp as a string: refused');
  t.match(refusal(() => at(now).verifyToken(tok({ exp: nowSec + 60, iss: 'https://evil.test' }))), /issuer "https:\/\/evil.test" is not security.oauthbearer.issuer/, 'another issuer: refused');
  t.match(refusal(() => at(now).verifyToken(tok({ exp: nowSec + 60, aud: ['other', 'more'] }))), /audience \["other","more"\] names none/, 'no accepted audience: refused');
  t.equal(refusal(() => at(now).verifyToken(tok({ exp: nowSec + 60, aud: ['other', 'tributary'] }))), 'accepted', 'an audience list naming ours: accepted');
  t.match(refusal(() => at(now).verifyToken(tok({ exp: nowSec + 60, sub: '' }))), /claim sub .* not a non-empty string/, 'an empty sub: refused');
  const anyIssuer = new OAuthBearerVerifier(options({ issuer: null, audience: [], principalClaim: 'client_id' }));
  t.equal(anyIssuer.verifyToken(signJwt(keys.es, { client_id: 'gw-3', exp: nowSec + 60, iss: 'whoever' })).name, 'gw-3', 'issuer null and audience [] are not checked; principalClaim picks the claim');
  t.match(refusal(() => new OAuthBearerVerifier(options()).verifyMessage(message(signJwt(keys.rs, claimsFor('alice', 60)), 'bob'))), /authzid "bob" is not the token's sub "alice"/, 'an authzid naming someone else: refused');
});

t.test('signatures and algorithms', async (t) => {
  const v = new OAuthBearerVerifier(options());
  const good = signJwt(keys.rs, claimsFor('u', 60));
  const [h, p, s] = good.split('.');
  const forged = Buffer.from(JSON.stringify({ ...claimsFor('admin', 60) })).toString('base64url');
  t.match(refusal(() => v.verifyToken(`${h}.${forged}.${s}`)), /signature does not verify/, 'a payload changed after signing: refused');
  t.match(refusal(() => v.verifyToken(`${h}.${p}.${Buffer.from('short').toString('base64url')}`)), /signature does not verify/, 'a signature of the wrong length: refused');
  const none = `${Buffer.from(JSON.stringify({ alg: 'none', kid: 'rs-1' })).toString('base64url')}.${p}.`;
  t.match(refusal(() => v.verifyToken(none)), /not a signed JWT/, 'alg none (empty signature): refused');
  const noneSigned = `${Buffer.from(JSON.stringify({ alg: 'none', kid: 'rs-1' })).toString('base64url')}.${p}.${s}`;
  t.match(refusal(() => v.verifyToken(noneSigned)), /algorithm "none" is not accepted/, 'alg none with a signature part: refused');
  t.match(refusal(() => v.verifyToken(signJwt(keys.rs, claimsFor('u', 60), { alg: 'HS256' }))), /algorithm "HS256" is not accepted/, 'HMAC: refused');
  t.match(refusal(() => v.verifyToken(signJwt(keys.rs, claimsFor('u', 60), { alg: 'ES256' }))), /no ES256 key with kid "rs-1"/, 'an RSA key named for ES256 (algorithm confusion): refused');
  t.match(refusal(() => v.verifyToken(signJwt(keys.es384, claimsFor('u', 60), { alg: 'ES256' }))), /no ES256 key with kid "es-2"/, 'a P-384 key named for ES256: refused');
  t.match(refusal(() => v.verifyToken(signJwt(keys.rs, claimsFor('u', 60), { kid: 'nobody' }))), /no RS256 key with kid "nobody"/, 'an unknown kid: refused');
  t.match(refusal(() => v.verifyToken(signJwt(keys.rs, claimsFor('u', 60), { crit: ['exp'] }))), /"crit" extensions/, 'a crit header: refused');
  const only = new OAuthBearerVerifier(options({ algorithms: ['EdDSA'] }));
  t.match(refusal(() => only.verifyToken(good)), /algorithm "RS256" is not accepted \(security.oauthbearer.algorithms: EdDSA\)/, 'an algorithm left out of the list: refused');
  t.equal(refusal(() => v.verifyToken(signJwt(keys.ed, claimsFor('u', 60), { kid: undefined }))), 'accepted', 'no kid: the one key that fits the algorithm');
  t.equal(refusal(() => v.verifyToken(signJwt(keys.rs, claimsFor('u', 60), { kid: undefined }))), 'accepted', 'no kid: of three RSA keys only one says alg RS256');
  const bare = join(dir, 'no-alg.json');
  await writeFile(bare, JSON.stringify(jwks([keys.rs, keys.rs512], false)));
  const noAlg = new OAuthBearerVerifier(options({ jwksFile: bare }));
  t.match(refusal(() => noAlg.verifyToken(signJwt(keys.rs, claimsFor('u', 60), { kid: undefined }))), /no kid and the JWKS does not hold exactly one RS256 key/, 'no kid where two RSA keys without alg fit: refused');
  t.equal(refusal(() => noAlg.verifyToken(signJwt(keys.rs512, claimsFor('u', 60)))), 'accepted', 'a key without alg verifies any algorithm of its type (RS512 here)');
  t.match(refusal(() => v.verifyToken('abc.def')), /three base64url parts/, 'two parts: refused');
  t.match(refusal(() => v.verifyToken(`${Buffer.from('[1]').toString('base64url')}.${p}.${s}`)), /header is not a JSON object/, 'a header that is no object: refused');
});

t.test('the client-first message (RFC 7628 §3.1)', async (t) => {
  const tok = signJwt(keys.rs, claimsFor('u', 60));
  t.same(parseClientFirst(message(tok)), { authzid: null, token: tok });
  for (const [text, why] of [
    [`n,,auth=Bearer ${tok}`, /malformed OAUTHBEARER message/],
    [`y,,\u0001auth=Bearer ${tok}\u0001\u0001`, /gs2 header/],
    [`p=tls-unique,,\u0001auth=Bearer ${tok}\u0001\u0001`, /gs2 header/],
    [`n,,\u0001auth=Basic abc\u0001\u0001`, /not "Bearer <token>"/],
    [`n,,\u0001host=x\u0001\u0001`, /without auth=Bearer/],
    [`n,,\u0001auth=Bearer ${tok}\u0001auth=Bearer ${tok}\u0001\u0001`, /auth twice/],
    [`n,,\u0001=x\u0001\u0001`, /key=value/],
  ] as const) {
    t.match(refusal(() => parseClientFirst(Buffer.from(text))), why, JSON.stringify(text.slice(0, 24)));
  }
});

t.test('key rotation: an unknown kid re-reads a changed JWKS file, at most once per 10 s', async (t) => {
  const rotDir = await mkdtemp(join(tmpdir(), 'oauth-rot-'));
  const oldKey = testKey('old', 'ES256');
  const newKey = testKey('new', 'ES256');
  const file = await writeJwks(rotDir, [oldKey]);
  let now = Date.now();
  const v = new OAuthBearerVerifier(options({ jwksFile: file }), () => now);
  const fresh = () => signJwt(newKey, { sub: 'u', iss: 'https://idp.test', aud: 'tributary', exp: Math.floor(now / 1000) + 600 });
  await writeFile(file, JSON.stringify(jwks([oldKey, newKey])));
  await utimes(file, new Date(), new Date(Date.now() + 5_000)); // a distinct mtime even on a coarse clock
  t.match(refusal(() => v.verifyToken(fresh())), /no ES256 key with kid "new"/, 'within 10 s of the last read: not re-read');
  now += 10_000;
  t.equal(refusal(() => v.verifyToken(fresh())), 'accepted', '10 s later: the new key is read and the token accepted');
  await writeFile(file, '{ broken');
  await utimes(file, new Date(), new Date(Date.now() + 10_000));
  now += 10_000;
  t.match(refusal(() => v.verifyToken(signJwt(newKey, { sub: 'u', exp: Math.floor(now / 1000) + 60, iss: 'https://idp.test', aud: 'tributary' }, { kid: 'other' }))), /kid "other"/, 'a broken file: the unknown kid refused');
  t.equal(refusal(() => v.verifyToken(fresh())), 'accepted', 'and the keys held before still verify');
});

t.test('JWKS files: what is refused at start, and the config cross-checks', async (t) => {
  const bad = async (name: string, content: string) => {
    const p = join(dir, name);
    await writeFile(p, content);
    try {
      readJwks(p);
      return 'loaded';
    } catch (err) {
      t.ok(err instanceof JwksFileError, `${name}: a JwksFileError`);
      return (err as Error).message;
    }
  };
  const priv = { ...keys.ed.privateKey.export({ format: 'jwk' }), kid: 'p' };
  t.match(await bad('private.json', JSON.stringify({ keys: [priv] })), /keys\[0\] holds private key material/);
  t.match(await bad('oct.json', JSON.stringify({ keys: [{ kty: 'oct', k: 'c2VjcmV0' }] })), /symmetric \(oct\) key/);
  t.match(await bad('empty.json', JSON.stringify({ keys: [] })), /needs a non-empty "keys" list/);
  t.match(await bad('junk.json', 'not json'), /cannot read the JWKS file/);
  t.match(await bad('badkey.json', JSON.stringify({ keys: [{ kty: 'RSA', n: 'AQAB' }] })), /keys\[0\] is not a usable public key/);
  const base = { ...defaultSecurityOptions };
  t.throws(() => validateSecurityOptions({ ...base, saslMechanisms: ['OAUTHBEARER'] }), /saslMechanisms: OAUTHBEARER needs security.oauthbearer/);
  t.throws(() => validateSecurityOptions({ ...base, oauthbearer: options() }), /oauthbearer: set, but security.saslMechanisms does not offer OAUTHBEARER/);
  t.throws(() => validateSecurityOptions({ ...base, saslMechanisms: ['OAUTHBEARER'], oauthbearer: { jwksFile: join(dir, 'missing.json') } as OAuthBearerOptions }), /oauthbearer.jwksFile: cannot read the JWKS file/);
  t.throws(() => validateSecurityOptions({ ...base, saslMechanisms: ['OAUTHBEARER'], oauthbearer: { jwksFile, clockSkewMs: 3_600_001 } as OAuthBearerOptions }), /clockSkewMs/);
  t.throws(() => validateSecurityOptions({ ...base, saslMechanisms: ['OAUTHBEARER'], oauthbearer: { jwksFile, algorithms: ['HS256'] } as unknown as OAuthBearerOptions }), /algorithms/);
  const ok = validateSecurityOptions({ ...base, saslMechanisms: ['OAUTHBEARER'], oauthbearer: { jwksFile, clockSkewMs: 3_600_000 } as OAuthBearerOptions });
  t.same(ok.oauthbearer, { jwksFile, issuer: null, audience: [], principalClaim: 'sub', clockSkewMs: 3_600_000, algorithms: [...OAUTHBEARER_ALGORITHMS] }, 'the defaults fill what the block leaves out; clockSkewMs 3600000 is the top of its range');
});
