// Bearer tokens (`http.tokens`): each names a principal whose ACLs decide, and a scope that
// narrows them (issue 13 finding 5: a token is least-privilege by default). Shared by the HTTP
// API, the WebSocket door (gateway/ws/auth.ts) and the schema registry (host/schemas/auth.ts),
// so one token means the same on every HTTP listener.
//
// Scope: `read` topic patterns (exact, `*`, `prefix*`) a token may read and describe (omitted =
// any); `write` patterns it may produce to (omitted = any) and auto-create; `admin` (default
// false) — everything else: creating, deleting and altering topics, groups' listings, the cluster
// (/metrics, /stats, registry config). A request is allowed when the scope allows it AND
// authorize(principal, operation, resource) does.
//
// At rest: an entry gives either `token` (the secret in the clear; still accepted, with a warning
// at start) or `hash: "sha256:<64 hex>"` (`tributary tokens hash` prints one). A bearer token is a
// long random secret (256 bits from `tokens hash --new`), not a password a person chose: nobody
// can guess its way back from the digest, so a fast unsalted SHA-256 is enough — as for API keys —
// and a slow salted KDF would only cost every request its time. Both forms are kept as digests and
// a presented token's digest is compared with each in constant time (no early exit), so the
// timing of a refusal says nothing about which bytes matched. Neither tokens nor hashes are logged.
import { createHash, timingSafeEqual } from 'node:crypto';
import { ANONYMOUS, parsePrincipal, type Principal } from './principal.js';
import { Operation, ResourceType } from './acl.js';

/**
 * One bearer token: its principal (whose ACLs decide) and the scope it narrows them to (the
 * doors apply it). Topic patterns: exact names, `*` for all, or a `prefix*`.
 */
export interface TokenConfig {
  /** The secret in the clear (accepted, with a warning at start); prefer `hash`. */
  token?: string;
  /** `sha256:` + 64 hex digits of SHA-256(token) (`tributary tokens hash`); exactly one of token and hash. */
  hash?: string;
  /** `User:<name>` whose ACLs apply; default `User:ANONYMOUS`. */
  principal?: string;
  /** Topics this token may subscribe to and read over HTTP; omitted = any its principal may read. */
  read?: string[];
  /** Topics this token may produce to; omitted = any its principal may write. */
  write?: string[];
  /** May create/delete topics and see /metrics, /stats and /groups (default false: tokens are least-privilege; 403 there). */
  admin?: boolean;
}

export interface TokenScope {
  read: ((topic: string) => boolean) | undefined;
  write: ((topic: string) => boolean) | undefined;
  admin: boolean;
}

/** No token configured: anonymous, limited only by the ACLs. */
export const UNLIMITED_SCOPE: TokenScope = { read: undefined, write: undefined, admin: true };

function matcher(patterns: string[] | undefined): ((topic: string) => boolean) | undefined {
  if (patterns === undefined) return undefined;
  const exact = new Set(patterns.filter((p) => !p.endsWith('*')));
  const prefixes = patterns.filter((p) => p.endsWith('*')).map((p) => p.slice(0, -1));
  return (topic) => exact.has(topic) || prefixes.some((p) => topic.startsWith(p));
}

/** The token's declared scope allows the operation (see the header). */
export function scopeAllows(s: TokenScope, operation: number, type: number, name: string): boolean {
  if (type === ResourceType.TOPIC && (operation === Operation.READ || operation === Operation.DESCRIBE)) return s.read?.(name) ?? true;
  if (type === ResourceType.TOPIC && operation === Operation.WRITE) return s.write?.(name) ?? true;
  // a topic a token may write to it may also auto-create (the principal still needs CREATE)
  if (type === ResourceType.TOPIC && operation === Operation.CREATE) return s.admin || (s.write?.(name) ?? true);
  if (type === ResourceType.GROUP && operation === Operation.READ) return true; // consuming in a group: the topic's READ decides
  return s.admin;
}

export const TOKEN_HASH_PREFIX = 'sha256:';
/** A plain token's shortest length (the schema's minLength; `tokens hash --new` makes 43). */
export const TOKEN_CHARS_MIN = 8;
const DIGEST_HEX_CHARS = 64;

/** `sha256:<hex>` of a token: what a config entry's `hash` holds. */
export function tokenHash(token: string): string {
  return TOKEN_HASH_PREFIX + createHash('sha256').update(token, 'utf8').digest('hex');
}

/**
 * What is wrong with one entry, or null; the text names `<key>[i].<field>` and never quotes the
 * token or the hash (an error message ends up in logs).
 */
export function tokenEntryProblem(t: TokenConfig, key: string, i: number): string | null {
  const at = `${key}[${i}]`;
  if (t.token !== undefined && t.hash !== undefined) return `${at}: give either token or hash, not both (keep only hash: the token in the clear is what it replaces)`;
  if (t.token === undefined && t.hash === undefined) return `${at}: needs a hash ("sha256:" and 64 hex digits; \`tributary tokens hash\` prints one) or a token`;
  if (t.token !== undefined) return typeof t.token === 'string' && t.token.length >= TOKEN_CHARS_MIN ? null : `${at}.token must be a string of at least ${TOKEN_CHARS_MIN} characters`;
  if (typeof t.hash !== 'string') return `${at}.hash must be a string: "sha256:" and 64 hex digits`;
  if (!t.hash.startsWith(TOKEN_HASH_PREFIX)) return `${at}.hash must start with "sha256:" (the only digest accepted), then 64 hex digits`;
  const hex = t.hash.slice(TOKEN_HASH_PREFIX.length);
  if (hex.length !== DIGEST_HEX_CHARS) return `${at}.hash must have 64 hex digits after "sha256:", it has ${hex.length} characters`;
  if (!/^[0-9a-fA-F]*$/.test(hex)) return `${at}.hash must have only hex digits (0-9, a-f) after "sha256:"`;
  return null;
}

/** One warning per entry that keeps its token in the clear (logged at start; names the key only). */
export function plainTokenWarnings(tokens: readonly TokenConfig[], key = 'http.tokens'): string[] {
  return tokens.flatMap((t, i) =>
    t.token !== undefined ? [`${key}[${i}].token keeps a bearer token in the clear in the config; replace it with hash: (\`tributary tokens hash\` reads the token on standard input and prints it), see docs/security.md`] : [],
  );
}

interface Entry {
  digest: Buffer;
  principal: Principal;
  scope: TokenScope;
}

/** The configured tokens, kept as SHA-256 digests (see the header). */
export class TokenTable {
  private readonly entries: Entry[] = [];

  /** Throws naming `<key>[i]` for an entry with a bad token/hash, or a principal not `User:<name>`. */
  constructor(tokens: readonly TokenConfig[], key = 'http.tokens') {
    tokens.forEach((t, i) => {
      const problem = tokenEntryProblem(t, key, i);
      if (problem) throw new Error(problem);
      const principal = t.principal === undefined ? ANONYMOUS : parsePrincipal(t.principal);
      if (!principal) throw new Error(`${key}[${i}].principal: "${t.principal}" is not User:<name>`);
      const digest = Buffer.from((t.hash ?? tokenHash(t.token!)).slice(TOKEN_HASH_PREFIX.length), 'hex');
      const same = this.entries.findIndex((e) => e.digest.equals(digest));
      if (same >= 0) throw new Error(`${key}[${i}]: the same token as ${key}[${same}] (one token, one principal and scope)`);
      this.entries.push({ digest, principal, scope: { read: matcher(t.read), write: matcher(t.write), admin: t.admin ?? false } });
    });
  }

  get size(): number {
    return this.entries.length;
  }

  /** The entry whose digest is the presented token's; every entry compared in constant time. */
  get(token: string): { principal: Principal; scope: TokenScope } | undefined {
    const digest = createHash('sha256').update(token, 'utf8').digest();
    let found: Entry | undefined;
    for (const e of this.entries) if (timingSafeEqual(e.digest, digest) && !found) found = e;
    return found ? { principal: found.principal, scope: found.scope } : undefined;
  }
}
