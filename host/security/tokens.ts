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
import { ANONYMOUS, parsePrincipal, type Principal } from './principal.js';
import { Operation, ResourceType } from './acl.js';

export interface TokenConfig {
  token: string;
  principal?: string;
  read?: string[];
  write?: string[];
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

/** The configured tokens, by value. */
export class TokenTable {
  private readonly byToken = new Map<string, { principal: Principal; scope: TokenScope }>();

  /** Throws naming `<key>[i].principal` when a principal is not `User:<name>`. */
  constructor(tokens: readonly TokenConfig[], key = 'http.tokens') {
    tokens.forEach((t, i) => {
      const principal = t.principal === undefined ? ANONYMOUS : parsePrincipal(t.principal);
      if (!principal) throw new Error(`${key}[${i}].principal: "${t.principal}" is not User:<name>`);
      this.byToken.set(t.token, { principal, scope: { read: matcher(t.read), write: matcher(t.write), admin: t.admin ?? false } });
    });
  }

  get size(): number {
    return this.byToken.size;
  }

  get(token: string): { principal: Principal; scope: TokenScope } | undefined {
    return this.byToken.get(token);
  }
}
