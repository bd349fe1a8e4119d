// SASL/OAUTHBEARER (RFC 7628) on the Kafka listener: the client presents a JSON Web Token
// (RFC 7519) that an identity provider signed (RFC 7515, compact form), and the broker checks it
// offline against the provider's public keys, held in a JWKS file (RFC 7517) on this node. No
// network call per login: a gateway must keep authenticating clients while its uplink is down.
//
// Client-first message (RFC 7628 §3.1), the only message: `n,[a=authzid],` %x01
// `auth=Bearer <token>` %x01 [key=value %x01]... %x01. Extensions (other key=value pairs) are
// accepted and ignored, as Kafka's broker does with ones it does not know.
//
// What a token must satisfy, in this order (the first failure is the refusal's reason):
//   - three base64url parts; header and payload JSON objects; no `crit` header (RFC 7515 §4.1.11:
//     a critical extension we do not understand must be refused);
//   - `alg` one of security.oauthbearer.algorithms (never `none`, never HMAC: a shared secret in
//     a file on every gateway would let any of them mint tokens for all);
//   - a key of the JWKS with the header's `kid` (or, without `kid`, the only key that fits the
//     algorithm) whose type fits `alg`, whose `use` (if present) is `sig` and whose `alg` (if
//     present) equals the header's; its signature verifies;
//   - `exp` present and not passed, `nbf` (if present) reached, both with clockSkewMs of slack
//     (a gateway's clock without NTP drifts);
//   - `iss` equal to security.oauthbearer.issuer when one is set; `aud` (a string or a list)
//     naming one of security.oauthbearer.audience when that is non-empty;
//   - the principal claim (security.oauthbearer.principalClaim, `sub` by default) a non-empty
//     string; an authzid, if sent, equal to it.
// The principal is `User:<claim>`, so ACLs and super-users name OAuth identities the way they name
// SCRAM users. The session ends when the token does (KIP-368: SaslAuthenticate's session lifetime
// is the shorter of security.reauthMs and the time to `exp`), so a client must bring a fresh
// token before then.
//
// Key rotation: a token whose `kid` is not in the keys held makes the node read the JWKS file
// again, at most once per KEYS_RELOAD_MIN_MS (a stream of forged kids cannot turn into a stream
// of file reads); an operator rotating keys writes the new set into the file, no restart.
// A JWKS file holding private key material is refused at start: this node only verifies.
import { createPublicKey, verify as verifySignature, constants, type KeyObject } from 'node:crypto';
import { readFileSync, statSync } from 'node:fs';

export const OAUTHBEARER_ALGORITHMS = ['RS256', 'RS384', 'RS512', 'PS256', 'PS384', 'PS512', 'ES256', 'ES384', 'ES512', 'EdDSA'] as const;
export type OAuthAlgorithm = (typeof OAUTHBEARER_ALGORITHMS)[number];

export interface OAuthBearerOptions {
  /** Path of the identity provider's public keys, a JWKS document ({"keys": [...]}). */
  jwksFile: string;
  /** Required `iss`; null = any issuer the keys verify. */
  issuer: string | null;
  /** Accepted audiences (`aud` must name one); [] = not checked. */
  audience: string[];
  /** The claim naming the principal. */
  principalClaim: string;
  /** Slack for `exp` and `nbf` against this node's clock. */
  clockSkewMs: number;
  /** Signature algorithms accepted. */
  algorithms: OAuthAlgorithm[];
}

/** Why a token or message was refused; the text goes into SASL_AUTHENTICATION_FAILED's message and the log. */
export class OAuthBearerError extends Error {}

/** A JWKS file that cannot serve: named in start-up errors with the key `security.oauthbearer.jwksFile`. */
export class JwksFileError extends Error {}

export interface VerifiedToken {
  /** The principal claim's value (the principal is `User:<name>`). */
  name: string;
  /** `exp` in ms since the epoch. */
  expiresAtMs: number;
}

interface HeldKey {
  kid: string | null;
  alg: string | null;
  use: string | null;
  key: KeyObject;
}

/** Re-read the JWKS file for an unknown `kid` at most this often. */
const KEYS_RELOAD_MIN_MS = 10_000;

/** Which key type (and, for EC, which curve) each algorithm needs, and how it verifies. */
function algorithmSpec(alg: OAuthAlgorithm): { keyType: string; curve?: string; hash: string | null; pss?: boolean } {
  switch (alg) {
    case 'RS256': case 'RS384': case 'RS512': return { keyType: 'rsa', hash: `sha${alg.slice(2)}` };
    case 'PS256': case 'PS384': case 'PS512': return { keyType: 'rsa', hash: `sha${alg.slice(2)}`, pss: true };
    case 'ES256': return { keyType: 'ec', curve: 'prime256v1', hash: 'sha256' };
    case 'ES384': return { keyType: 'ec', curve: 'secp384r1', hash: 'sha384' };
    case 'ES512': return { keyType: 'ec', curve: 'secp521r1', hash: 'sha512' };
    case 'EdDSA': return { keyType: 'ed25519', hash: null };
  }
}

function keyFits(held: HeldKey, alg: OAuthAlgorithm): boolean {
  const spec = algorithmSpec(alg);
  if (held.use !== null && held.use !== 'sig') return false;
  if (held.alg !== null && held.alg !== alg) return false;
  if (alg === 'EdDSA') return held.key.asymmetricKeyType === 'ed25519' || held.key.asymmetricKeyType === 'ed448';
  if (held.key.asymmetricKeyType !== spec.keyType) return false;
  return spec.curve === undefined || held.key.asymmetricKeyDetails?.namedCurve === spec.curve;
}

/** Reads and checks a JWKS document; throws JwksFileError naming what is wrong. */
export function readJwks(path: string): HeldKey[] {
  let doc: unknown;
  try {
    doc = JSON.parse(readFileSync(path, 'utf8'));
  } catch (err) {
    throw new JwksFileError(`cannot read the JWKS file ${path}: ${(err as Error).message}`);
  }
  const keys = (doc as { keys?: unknown })?.keys;
  if (!Array.isArray(keys) || keys.length === 0) throw new JwksFileError(`${path} is not a JWKS document: it needs a non-empty "keys" list`);
  return keys.map((jwk: unknown, i) => {
    if (jwk === null || typeof jwk !== 'object') throw new JwksFileError(`${path}: keys[${i}] is not an object`);
    const k = jwk as Record<string, unknown>;
    // Private parts: d (RSA, EC, OKP), p/q (RSA); a verifier has no business holding them.
    if ('d' in k || 'p' in k || 'q' in k) throw new JwksFileError(`${path}: keys[${i}] holds private key material; give this node the public keys only`);
    if (k.kty === 'oct') throw new JwksFileError(`${path}: keys[${i}] is a symmetric (oct) key; only public keys (RSA, EC, OKP) are accepted`);
    let key: KeyObject;
    try {
      key = createPublicKey({ key: k as never, format: 'jwk' });
    } catch (err) {
      throw new JwksFileError(`${path}: keys[${i}] is not a usable public key: ${(err as Error).message}`);
    }
    const text = (name: string) => (typeof k[name] === 'string' ? (k[name] as string) : null);
    return { kid: text('kid'), alg: text('alg'), use: text('use'), key };
  });
}

/** The client-first message's token and authzid; throws OAuthBearerError when malformed. */
export function parseClientFirst(bytes: Uint8Array): { authzid: string | null; token: string } {
  const text = Buffer.from(bytes).toString('utf8');
  const sep = text.indexOf('\u0001');
  if (sep < 0 || !text.endsWith('\u0001\u0001')) throw new OAuthBearerError('malformed OAUTHBEARER message (RFC 7628 §3.1: gs2 header, key=value pairs, each ended by 0x01, then 0x01)');
  const gs2 = /^n,(?:a=([^,]*))?,$/.exec(text.slice(0, sep));
  if (!gs2) throw new OAuthBearerError('malformed OAUTHBEARER gs2 header (expected "n,," or "n,a=<authzid>,"; channel binding is not supported)');
  let token: string | null = null;
  for (const pair of text.slice(sep + 1, -2).split('\u0001')) {
    const eq = pair.indexOf('=');
    if (eq <= 0) throw new OAuthBearerError('malformed OAUTHBEARER key=value pair');
    if (pair.slice(0, eq) !== 'auth') continue; // an extension: accepted, not used
    if (token !== null) throw new OAuthBearerError('OAUTHBEARER message carries auth twice');
    const m = /^Bearer ([A-Za-z0-9._~+/-]+=*)$/i.exec(pair.slice(eq + 1));
    if (!m) throw new OAuthBearerError('OAUTHBEARER auth value is not "Bearer <token>"');
    token = m[1];
  }
  if (token === null) throw new OAuthBearerError('OAUTHBEARER message without auth=Bearer <token>');
  return { authzid: gs2[1] ?? null, token };
}

function jsonPart(part: string, what: string): Record<string, unknown> {
  let v: unknown;
  try {
    v = JSON.parse(Buffer.from(part, 'base64url').toString('utf8'));
  } catch {
    throw new OAuthBearerError(`token ${what} is not base64url JSON`);
  }
  if (v === null || typeof v !== 'object' || Array.isArray(v)) throw new OAuthBearerError(`token ${what} is not a JSON object`);
  return v as Record<string, unknown>;
}

export class OAuthBearerVerifier {
  private keys: HeldKey[];
  private readAtMs: number;
  private fileMtimeMs: number;

  constructor(
    readonly options: OAuthBearerOptions,
    private readonly now: () => number = Date.now,
  ) {
    this.keys = readJwks(options.jwksFile);
    this.readAtMs = now();
    this.fileMtimeMs = statSync(options.jwksFile).mtimeMs;
  }

  /** Checks a client-first message's token (file header); throws OAuthBearerError with the reason. */
  verifyMessage(bytes: Uint8Array): VerifiedToken {
    const { authzid, token } = parseClientFirst(bytes);
    const verified = this.verifyToken(token);
    if (authzid !== null && authzid !== '' && authzid !== verified.name) throw new OAuthBearerError(`authzid "${authzid}" is not the token's ${this.options.principalClaim} "${verified.name}"`);
    return verified;
  }

  verifyToken(token: string): VerifiedToken {
    const parts = token.split('.');
    if (parts.length !== 3 || parts.some((p) => !/^[A-Za-z0-9_-]*$/.test(p)) || parts[2] === '') throw new OAuthBearerError('token is not a signed JWT (three base64url parts)');
    const header = jsonPart(parts[0], 'header');
    const claims = jsonPart(parts[1], 'payload');
    if ('crit' in header) throw new OAuthBearerError('token header has "crit" extensions, which this broker does not understand');
    const alg = header.alg;
    if (typeof alg !== 'string' || !(this.options.algorithms as readonly string[]).includes(alg)) {
      throw new OAuthBearerError(`token algorithm ${JSON.stringify(alg)} is not accepted (security.oauthbearer.algorithms: ${this.options.algorithms.join(', ')})`);
    }
    const kid = typeof header.kid === 'string' ? header.kid : null;
    const key = this.keyFor(kid, alg as OAuthAlgorithm);
    if (!this.signatureOk(alg as OAuthAlgorithm, key, `${parts[0]}.${parts[1]}`, Buffer.from(parts[2], 'base64url'))) throw new OAuthBearerError('token signature does not verify');
    return this.checkClaims(claims);
  }

  private keyFor(kid: string | null, alg: OAuthAlgorithm): KeyObject {
    const find = () => {
      const fitting = this.keys.filter((k) => keyFits(k, alg));
      if (kid !== null) return fitting.find((k) => k.kid === kid);
      return fitting.length === 1 ? fitting[0] : undefined;
    };
    let held = find();
    if (!held && this.reloadIfChanged()) held = find();
    if (!held) throw new OAuthBearerError(kid !== null ? `no ${alg} key with kid "${kid}" in security.oauthbearer.jwksFile` : `token has no kid and the JWKS does not hold exactly one ${alg} key`);
    return held.key;
  }

  /** Reads the JWKS file again if it changed, at most once per KEYS_RELOAD_MIN_MS; a bad new file keeps the old keys. */
  private reloadIfChanged(): boolean {
    const now = this.now();
    if (now - this.readAtMs < KEYS_RELOAD_MIN_MS) return false;
    this.readAtMs = now;
    try {
      const mtime = statSync(this.options.jwksFile).mtimeMs;
      if (mtime === this.fileMtimeMs) return false;
      this.keys = readJwks(this.options.jwksFile);
      this.fileMtimeMs = mtime;
      return true;
    } catch {
      return false; // the caller's refusal says the kid is unknown; start-up already proved the path
    }
  }

  private signatureOk(alg: OAuthAlgorithm, key: KeyObject, signed: string, signature: Buffer): boolean {
    const spec = algorithmSpec(alg);
    const data = Buffer.from(signed, 'ascii');
    try {
      if (spec.keyType === 'rsa') {
        const padding = spec.pss ? constants.RSA_PKCS1_PSS_PADDING : constants.RSA_PKCS1_PADDING;
        return verifySignature(spec.hash, data, { key, padding, saltLength: constants.RSA_PSS_SALTLEN_DIGEST }, signature);
      }
      if (spec.keyType === 'ec') return verifySignature(spec.hash, data, { key, dsaEncoding: 'ieee-p1363' }, signature);
      return verifySignature(null, data, key, signature);
    } catch {
      return false; // a signature of the wrong length or shape is simply not valid
    }
  }

  private checkClaims(claims: Record<string, unknown>): VerifiedToken {
    const o = this.options;
    const now = this.now();
    const seconds = (name: string): number | null => {
      const v = claims[name];
      if (v === undefined) return null;
      if (typeof v !== 'number' || !Number.isFinite(v)) throw new OAuthBearerError(`token claim ${name} is not a number (NumericDate, RFC 7519 §2)`);
      return v;
    };
    const exp = seconds('exp');
    if (exp === null) throw new OAuthBearerError('token has no exp claim (a token that never expires is not accepted)');
    if (exp * 1000 + o.clockSkewMs <= now) throw new OAuthBearerError(`token expired at ${new Date(exp * 1000).toISOString()}`);
    const nbf = seconds('nbf');
    if (nbf !== null && nbf * 1000 - o.clockSkewMs > now) throw new OAuthBearerError(`token not valid before ${new Date(nbf * 1000).toISOString()}`);
    if (o.issuer !== null && claims.iss !== o.issuer) throw new OAuthBearerError(`token issuer ${JSON.stringify(claims.iss ?? null)} is not security.oauthbearer.issuer`);
    if (o.audience.length > 0) {
      const aud = typeof claims.aud === 'string' ? [claims.aud] : Array.isArray(claims.aud) ? claims.aud : [];
      if (!aud.some((a) => typeof a === 'string' && o.audience.includes(a))) throw new OAuthBearerError(`token audience ${JSON.stringify(claims.aud ?? null)} names none of security.oauthbearer.audience`);
    }
    const name = claims[o.principalClaim];
    if (typeof name !== 'string' || name === '') throw new OAuthBearerError(`token claim ${o.principalClaim} (security.oauthbearer.principalClaim) is not a non-empty string`);
    return { name, expiresAtMs: exp * 1000 };
  }
}
