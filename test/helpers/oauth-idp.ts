// A small identity provider for OAUTHBEARER tests: key pairs, a JWKS file with their public
// halves, a JWT signer (RFC 7515 compact form), and an OAuth 2.0 token endpoint (client
// credentials grant, RFC 6749 §4.4) on loopback. The broker under test only ever sees the JWKS
// file and the tokens, as it would with Keycloak or Azure AD.
import { createServer, type Server } from 'node:http';
import { generateKeyPairSync, sign, constants, type KeyObject } from 'node:crypto';
import { writeFile } from 'node:fs/promises';
import { join } from 'node:path';

export type TestAlg = 'RS256' | 'PS256' | 'ES256' | 'ES384' | 'EdDSA' | 'RS512';

export interface TestKey {
  kid: string;
  alg: TestAlg;
  privateKey: KeyObject;
  publicKey: KeyObject;
}

export function testKey(kid: string, alg: TestAlg): TestKey {
  const pair =
    alg === 'EdDSA'
      ? generateKeyPairSync('ed25519')
      : alg.startsWith('ES')
        ? generateKeyPairSync('ec', { namedCurve: alg === 'ES256' ? 'prime256v1' : 'secp384r1' })
        : generateKeyPairSync('rsa', { modulusLength: 2048 });
  return { kid, alg, privateKey: pair.privateKey, publicKey: pair.publicKey };
}

/** The JWKS document of `keys` (public halves; `withAlg` adds each key's alg and use). */
export function jwks(keys: TestKey[], withAlg = true): { keys: object[] } {
  return { keys: keys.map((k) => ({ ...k.publicKey.export({ format: 'jwk' }), kid: k.kid, ...(withAlg ? { alg: k.alg, use: 'sig' } : {}) })) };
}

export async function writeJwks(dir: string, keys: TestKey[], name = 'jwks.json'): Promise<string> {
  const path = join(dir, name);
  await writeFile(path, JSON.stringify(jwks(keys)));
  return path;
}

const b64 = (v: object | Buffer) => (Buffer.isBuffer(v) ? v : Buffer.from(JSON.stringify(v))).toString('base64url');

/** A JWT signed with `key` (header overrides and claims as given: tests make bad ones too). */
export function signJwt(key: TestKey, claims: Record<string, unknown>, header: Record<string, unknown> = {}): string {
  const h = { alg: key.alg, typ: 'JWT', kid: key.kid, ...header };
  const input = `${b64(h)}.${b64(claims)}`;
  const data = Buffer.from(input);
  let sig: Buffer;
  if (key.alg === 'EdDSA') sig = sign(null, data, key.privateKey);
  else if (key.alg.startsWith('ES')) sig = sign(key.alg === 'ES256' ? 'sha256' : 'sha384', data, { key: key.privateKey, dsaEncoding: 'ieee-p1363' });
  else if (key.alg === 'PS256') sig = sign('sha256', data, { key: key.privateKey, padding: constants.RSA_PKCS1_PSS_PADDING, saltLength: constants.RSA_PSS_SALTLEN_DIGEST });
  else sig = sign(key.alg === 'RS512' ? 'sha512' : 'sha256', data, key.privateKey);
  return `${input}.${sig.toString('base64url')}`;
}

/** The claims of a token for `sub` valid for `lifetimeSec` from now. */
export function claimsFor(sub: string, lifetimeSec: number, extra: Record<string, unknown> = {}): Record<string, unknown> {
  const now = Math.floor(Date.now() / 1000);
  return { sub, iat: now, exp: now + lifetimeSec, iss: 'https://idp.test', aud: 'tributary', ...extra };
}

export interface TokenEndpoint {
  url: string;
  /** Tokens issued so far. */
  issued: number;
  /** Requests refused (bad client credentials or grant). */
  refused: number;
  /** Tokens issued to one client. */
  issuedTo(clientId: string): number;
  close(): Promise<void>;
}

/**
 * A client credentials token endpoint: clients (id → { secret, sub }) get a JWT signed by `key`
 * for their sub, valid `lifetimeSec`; `expires_in` says so. Credentials in HTTP Basic
 * (form-urlencoded first, RFC 6749 §2.3.1) or in the form body (client_secret_post, which
 * librdkafka may use).
 */
export async function startTokenEndpoint(key: TestKey, clients: Record<string, { secret: string; sub: string; lifetimeSec?: number }>, lifetimeSec: number): Promise<TokenEndpoint> {
  const state = { issued: 0, refused: 0, byClient: new Map<string, number>() };
  const server: Server = createServer((req, res) => {
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', () => {
      const form = new URLSearchParams(Buffer.concat(chunks).toString('utf8'));
      let id = form.get('client_id');
      let secret = form.get('client_secret');
      const basic = /^Basic (.+)$/i.exec(req.headers.authorization ?? '');
      if (basic) {
        const [u, p] = Buffer.from(basic[1], 'base64').toString('utf8').split(':');
        id = decodeURIComponent(u ?? '');
        secret = decodeURIComponent(p ?? '');
      }
      const client = id ? clients[id] : undefined;
      const json = (status: number, body: object) => {
        res.writeHead(status, { 'content-type': 'application/json' });
        res.end(JSON.stringify(body));
      };
      if (req.method !== 'POST' || form.get('grant_type') !== 'client_credentials') {
        state.refused++;
        return json(400, { error: 'unsupported_grant_type' });
      }
      if (!client || client.secret !== secret) {
        state.refused++;
        return json(401, { error: 'invalid_client', error_description: 'unknown client or wrong secret' });
      }
      state.issued++;
      state.byClient.set(id!, (state.byClient.get(id!) ?? 0) + 1);
      const life = client.lifetimeSec ?? lifetimeSec;
      json(200, { access_token: signJwt(key, claimsFor(client.sub, life, form.get('scope') ? { scope: form.get('scope') } : {})), token_type: 'Bearer', expires_in: life });
    });
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as { port: number };
  return {
    url: `http://127.0.0.1:${port}/token`,
    get issued() {
      return state.issued;
    },
    get refused() {
      return state.refused;
    },
    issuedTo: (clientId) => state.byClient.get(clientId) ?? 0,
    close: () => new Promise<void>((resolve) => server.close(() => resolve())),
  };
}
