// Username/password authentication and authorization for the MQTT gateway: one user store
// and one authorizer with every other door (host/security), plus the older per-user topic
// filters of `mqtt.auth.users`, which still work and narrow what such a user may do.
//
// Who a client is (MqttAccess.login):
//   - a user name in `mqtt.auth.users` (scrypt hash, below) or in the node's SCRAM user store
//     (`tributary users add`, Kafka AlterUserScramCredentials) with the right password →
//     principal `User:<name>`; a wrong password is refused (CONNACK 5 in 3.1.1 as Mosquitto
//     answers, v5 0x86 Bad user name or password) and counted against the source address in the
//     node's one LoginLimiter; past its limit every CONNECT from that address is refused
//     unchecked (CONNACK 5 / 0x87) until the window ends;
//   - no user name on a mutual-TLS connection (`mqtt.tls.requestCert`) that presented a verified
//     client certificate → the certificate's subject, as Kafka's SSL principal
//     (`User:CN=sensor-1,OU=plant,O=acme`, host/security/principal.ts), so the Kafka-style ACLs on
//     that principal apply to the device; a CONNECT with a user name logs in by password instead
//     (as Kafka's SASL_SSL replaces the certificate's principal);
//   - no user name (and no certificate) → `User:ANONYMOUS`, refused (CONNACK 5 / 0x87, as Mosquitto 2.0) when
//     `mqtt.auth.enabled`; with it off a user name nobody knows is ignored (anonymous) as before,
//     but a known user's name with a wrong password is refused: nobody poses as `alice`.
// What it may do (security.authorization, the same ACLs as Kafka; host/security/authorizer.ts):
//   PUBLISH   WRITE on the stream topic the MQTT topic routes to (routes.ts); a publish that
//             matches no route (`unrouted: mqtt-only`) is checked as WRITE on the topic resource
//             named by the MQTT topic itself, so a prefixed ACL `alerts/` covers `alerts/#`.
//   SUBSCRIBE READ on at least one stream topic the filter can reach (Router.streamTopicsFor;
//             a filter that can reach any topic — `#`, `+/x` — needs READ on some topic), and for
//             `$share/{group}/…` READ on the group. Refused: SUBACK 0x80 (3.1.1) / 0x87 (v5).
//   delivery  every message is checked again against the subscriber just before it is written
//             (aedes' authorizeForward): READ on the stream topic it came from. So a wildcard
//             filter accepted at SUBSCRIBE never carries a message from a topic the principal
//             may not read, and internal `__*` topics need an ACL naming them (finding 7).
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
import { filterMatches, type Router } from './routes.js';
import type { IncomingMessage } from 'node:http';
import { ANONYMOUS, Operation, originAllowed, ResourceType, userPrincipal, type DoorSecurity, type Principal } from '../../host/security/index.js';
import { ERRORS } from '../../host/errors/index.js';
import type { Counter } from '../../host/metrics/registry.js';

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
  /** The user is one of `mqtt.auth.users` (scrypt hash, topic filters). */
  has(username: string | undefined): boolean {
    return username !== undefined && this.users.has(username);
  }

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

/** The answer to a CONNECT: the principal's user name (undefined = anonymous), or the refusal. */
export type LoginResult = { ok: true; username: string | undefined } | { ok: false; returnCode: number; reason: string; counted: boolean; rateLimited: boolean };

// CONNACK return codes (MQTT 3.1.1 §3.2.2.3); aedes turns 4 into v5's 0x86, 5 into 0x87.
const CONNACK_BAD_CREDENTIALS = 4;
const CONNACK_NOT_AUTHORIZED = 5;

export interface MqttAccessDeps {
  security: DoorSecurity;
  /** `mqtt.auth.users` (scrypt hashes and topic filters), or undefined when there are none. */
  legacy: Authorizer | undefined;
  /** `mqtt.auth.enabled`: anonymous clients are refused. */
  required: boolean;
  router: Router;
}

/** The MQTT door's side of the one security model (see the header). */
export class MqttAccess {
  constructor(private readonly d: MqttAccessDeps) {}

  principalOf(username: string | undefined): Principal {
    return username === undefined ? ANONYMOUS : userPrincipal(username);
  }

  /** `certificate`: the principal of the connection's verified client certificate (mutual TLS), if any. */
  async login(username: string | undefined, password: Buffer | undefined, address: string, v5: boolean, certificate: Principal | null = null): Promise<LoginResult> {
    const { security, legacy, required } = this.d;
    if (!security.limiter.allowed(address)) return { ok: false, returnCode: CONNACK_NOT_AUTHORIZED, reason: `too many failed logins from ${address} (security.loginFailuresMax)`, counted: false, rateLimited: true };
    // the TLS handshake verified it against mqtt.tls.caFile: that is the authentication
    if (username === undefined && certificate) return { ok: true, username: certificate.name };
    const known = username !== undefined && (legacy?.has(username) || security.credentials(username) !== undefined);
    if (!known) {
      if (!required) return { ok: true, username: undefined };
      if (username === undefined) return { ok: false, returnCode: CONNACK_NOT_AUTHORIZED, reason: 'anonymous clients are not allowed (mqtt.auth.enabled)', counted: false, rateLimited: false };
    }
    const ok = known && password !== undefined && (legacy?.has(username) ? await legacy.authenticate(username, password) : await security.checkPassword(username!, password));
    if (ok) return { ok: true, username };
    security.limiter.failed(address);
    // Mosquitto answers 5 in 3.1.1 for a bad password; MQTT 5 has the precise 0x86
    return { ok: false, returnCode: v5 ? CONNACK_BAD_CREDENTIALS : CONNACK_NOT_AUTHORIZED, reason: 'bad user name or password', counted: true, rateLimited: false };
  }

  /** PUBLISH: the old per-user filters (if the user has them), then WRITE on the stream topic (or on the MQTT topic when unrouted). */
  canPublish(username: string | undefined, clientId: string, mqttTopic: string, streamTopic: string | undefined, host: string): boolean {
    const legacy = this.d.legacy;
    if (legacy?.has(username) && !legacy.canPublish(username, clientId, mqttTopic)) return false;
    return this.d.security.authorizer.authorize(this.principalOf(username), Operation.WRITE, { type: ResourceType.TOPIC, name: streamTopic ?? mqttTopic }, host);
  }

  /** SUBSCRIBE (see the header): old filters, READ on some reachable stream topic, READ on the share group. */
  canSubscribe(username: string | undefined, clientId: string, filter: string, host: string, group?: string): boolean {
    const { legacy, security, router } = this.d;
    if (legacy?.has(username) && !legacy.canSubscribe(username, clientId, filter)) return false;
    const principal = this.principalOf(username);
    const authz = security.authorizer;
    if (group !== undefined && !authz.authorize(principal, Operation.READ, { type: ResourceType.GROUP, name: group }, host)) return false;
    const topics = router.streamTopicsFor(filter);
    const candidates = topics !== 'all' && topics.size > 0 ? topics : topicsNamed(filter);
    for (const t of candidates) if (authz.authorize(principal, Operation.READ, { type: ResourceType.TOPIC, name: t }, host)) return true;
    // a filter that can reach any topic, or only unrouted MQTT topics: some READ grant is enough
    // here, every delivery is checked on its own
    return (topics === 'all' || candidates.size === 0) && authz.authorizeAny(principal, Operation.READ, ResourceType.TOPIC, host);
  }

  /**
   * MQTT over WebSocket (ws' verifyClient): a browser page on another origin is refused with HTTP
   * 403 before the upgrade (finding 4; host/security/origin.ts), logged and counted.
   */
  verifyOrigin(req: IncomingMessage, answer: (ok: boolean, status?: number, message?: string) => void, log: (kind: string, fields: Record<string, unknown>, msg: string) => void, denied: Counter): void {
    const origin = req.headers.origin ?? '';
    if (originAllowed(origin, req.headers.host ?? '', this.d.security.options.allowedOrigins)) return answer(true);
    denied.inc({ what: 'origin' });
    log('deny-origin', { origin, host: req.headers.host }, 'mqtt: WebSocket upgrade refused: Origin is neither this host nor in security.allowedOrigins (HTTP 403)');
    answer(false, ERRORS.ORIGIN_NOT_ALLOWED.http, `origin ${origin} is not allowed (security.allowedOrigins)`);
  }

  /** A delivery: READ on the stream topic the message came from (or its MQTT topic when it was never stored). */
  canReceive(username: string | undefined, streamTopic: string, host: string): boolean {
    return this.d.security.authorizer.authorize(this.principalOf(username), Operation.READ, { type: ResourceType.TOPIC, name: streamTopic }, host);
  }
}

/** A filter without wildcards names one MQTT topic (the resource of an unrouted publish). */
function topicsNamed(filter: string): Set<string> {
  return /[+#]/.test(filter) ? new Set() : new Set([filter]);
}
