// Username/password authentication and per-topic ACLs for the MQTT gateway.
//
// Stored password format (one string, safe in YAML/JSON/env):
//   scrypt$<N>$<r>$<p>$<salt, base64>$<derived key, base64>
// N, r, p are scrypt's cost parameters (RFC 7914); the derived key is 32 bytes. Generate one
// without any CLI of ours:
//   node -e "import('./dist/gateway/mqtt/auth.js').then(m => console.log(m.hashPasswordSync(process.argv[1])))" 's3cret'
//
// ACL filters may contain `{username}` and `{clientId}`, so one rule serves every device
// (`devices/{clientId}/#`). A subscription is allowed when every topic it can match lies
// inside one of the user's subscribe filters; a publish when its topic matches one of the
// publish filters.
import { randomBytes, scrypt, scryptSync, timingSafeEqual, createHash } from 'node:crypto';
import type { MqttUser } from './options.js';
import { filterMatches } from './routes.js';

const KEY_BYTES = 32;
const DEFAULT_COST = { N: 16384, r: 8, p: 1 }; // OWASP's minimum for scrypt; ~30 ms on a Pi 4

export function hashPasswordSync(password: string, cost = DEFAULT_COST): string {
  const salt = randomBytes(16);
  const key = scryptSync(password, salt, KEY_BYTES, { ...cost, maxmem: 256 * cost.N * cost.r });
  return `scrypt$${cost.N}$${cost.r}$${cost.p}$${salt.toString('base64')}$${key.toString('base64')}`;
}

export async function hashPassword(password: string, cost = DEFAULT_COST): Promise<string> {
  const salt = randomBytes(16);
  const key = await new Promise<Buffer>((resolve, reject) =>
    scrypt(password, salt, KEY_BYTES, { ...cost, maxmem: 256 * cost.N * cost.r }, (err, k) => (err ? reject(err) : resolve(k))),
  );
  return `scrypt$${cost.N}$${cost.r}$${cost.p}$${salt.toString('base64')}$${key.toString('base64')}`;
}

interface ParsedHash {
  N: number;
  r: number;
  p: number;
  salt: Buffer;
  key: Buffer;
}

export function parsePasswordHash(stored: string): ParsedHash {
  const parts = stored.split('$');
  if (parts.length !== 6 || parts[0] !== 'scrypt') throw new Error('password hash must look like scrypt$N$r$p$salt$key');
  const [N, r, p] = parts.slice(1, 4).map(Number);
  if (![N, r, p].every((v) => Number.isInteger(v) && v > 0) || (N & (N - 1)) !== 0) throw new Error('password hash: N must be a power of two, r and p positive integers');
  const salt = Buffer.from(parts[4], 'base64');
  const key = Buffer.from(parts[5], 'base64');
  if (salt.length < 8 || key.length < 16) throw new Error('password hash: salt or key too short');
  return { N, r, p, salt, key };
}

export async function verifyPassword(password: Buffer | string, stored: string | ParsedHash): Promise<boolean> {
  const h = typeof stored === 'string' ? parsePasswordHash(stored) : stored;
  const derived = await new Promise<Buffer>((resolve, reject) =>
    scrypt(password, h.salt, h.key.length, { N: h.N, r: h.r, p: h.p, maxmem: 256 * h.N * h.r }, (err, k) => (err ? reject(err) : resolve(k))),
  );
  return timingSafeEqual(derived, h.key);
}

/** True when every topic matching `sub` also matches `acl` (both MQTT filters). */
export function filterCovers(acl: string, sub: string): boolean {
  const a = acl.split('/');
  const s = sub.split('/');
  for (let i = 0; ; i++) {
    if (a[i] === '#') return true;
    if (s[i] === '#') return false;
    if (a[i] === undefined || s[i] === undefined) return a[i] === s[i];
    if (a[i] === '+') continue;
    if (s[i] === '+' || a[i] !== s[i]) return false;
  }
}

interface CompiledUser {
  username: string;
  hash: ParsedHash;
  publish: string[];
  subscribe: string[];
}

const VERIFIED_CACHE_MAX = 1024; // successful logins remembered so a reconnect storm costs no scrypt

export class Authorizer {
  private readonly users = new Map<string, CompiledUser>();
  /** sha256(username \0 password) of recent successful logins (bounded, oldest evicted). */
  private readonly verified = new Set<string>();

  constructor(users: MqttUser[]) {
    users.forEach((u, i) => {
      if (typeof u.username !== 'string' || u.username.length === 0) throw new Error(`mqtt.auth.users[${i}].username must be a non-empty string`);
      if (this.users.has(u.username)) throw new Error(`mqtt.auth.users[${i}]: user "${u.username}" listed twice`);
      let hash: ParsedHash;
      try {
        hash = parsePasswordHash(u.passwordHash);
      } catch (err) {
        throw new Error(`mqtt.auth.users[${i}].passwordHash: ${(err as Error).message}`);
      }
      this.users.set(u.username, { username: u.username, hash, publish: u.publish ?? [], subscribe: u.subscribe ?? [] });
    });
  }

  async authenticate(username: string | undefined, password: Buffer | undefined): Promise<boolean> {
    if (username === undefined || password === undefined) return false;
    const user = this.users.get(username);
    if (!user) return false;
    const fingerprint = createHash('sha256').update(username).update('\0').update(password).digest('base64');
    if (this.verified.has(fingerprint)) return true;
    if (!(await verifyPassword(password, user.hash))) return false;
    if (this.verified.size >= VERIFIED_CACHE_MAX) this.verified.delete(this.verified.values().next().value!);
    this.verified.add(fingerprint);
    return true;
  }

  canPublish(username: string | undefined, clientId: string, topic: string): boolean {
    const user = username === undefined ? undefined : this.users.get(username);
    if (!user) return false;
    return user.publish.some((f) => filterMatches(expand(f, user.username, clientId), topic));
  }

  canSubscribe(username: string | undefined, clientId: string, filter: string): boolean {
    const user = username === undefined ? undefined : this.users.get(username);
    if (!user) return false;
    return user.subscribe.some((f) => filterCovers(expand(f, user.username, clientId), filter));
  }
}

function expand(filter: string, username: string, clientId: string): string {
  if (!filter.includes('{')) return filter;
  // substituted values containing wildcards or '/' would widen the rule: refuse them by
  // substituting a value no topic can contain
  const safe = (v: string) => (/[+#/]/.test(v) ? '\u0000' : v);
  return filter.replaceAll('{username}', safe(username)).replaceAll('{clientId}', safe(clientId));
}
