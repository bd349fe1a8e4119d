// Who an HTTP request or a WebSocket is, and what it may do: bearer tokens mapped to principals
// of the one security model (host/security), every decision made by the node's one authorizer.
//
// A token (`http.tokens[]`) names its principal (`User:<name>`; `User:ANONYMOUS` when omitted)
// and may declare a scope that narrows what the principal's ACLs give it (finding 5: a token is
// least-privilege by default):
//   read   topic patterns (exact, `*`, `prefix*`) this token may read and describe; omitted = any
//   write  topic patterns it may produce to; omitted = any
//   admin  true = it may also create/delete/alter topics, list and describe groups, read
//          /metrics and /stats (cluster and admin operations); default false
// A request is allowed when the scope allows it AND authorize(principal, operation, resource)
// does. With `security.authorization` off the authorizer allows everything but reading internal
// topics, so the scope alone limits the token, as before — except that `admin` is now off unless
// given. With no tokens configured every request is `User:ANONYMOUS` with an unlimited scope:
// exactly what the ACLs (or, with authorization off, the broker's defaults) give it.
import { ANONYMOUS, Operation, originAllowed, parsePrincipal, principalText, ResourceType, type DoorSecurity, type Principal } from '../../host/security/index.js';
import { BrokerError, ERRORS } from '../../host/errors/index.js';
import type { Logger } from '../../host/logging.js';
import type { Counter } from '../../host/metrics/registry.js';
import type { UwsTypes } from './uws-loader.js';
import type { WsAccessToken } from './options.js';

export interface Access {
  /** `User:<name>` of the token (or anonymous), for logs. */
  principal: string;
  /** READ on the topic (subscribe, snapshot read). */
  canRead(topic: string): boolean;
  /** WRITE on the topic (produce). */
  canWrite(topic: string): boolean;
  /** Any operation on any resource (host/security/acl.ts numbers). */
  can(operation: number, resourceType: number, name: string): boolean;
  /** Like can(), throwing the error of the table row for the resource type (HTTP 403, WS error frame). */
  check(operation: number, resourceType: number, name: string): void;
}

interface Scope {
  read: ((topic: string) => boolean) | undefined;
  write: ((topic: string) => boolean) | undefined;
  admin: boolean;
}

const UNLIMITED: Scope = { read: undefined, write: undefined, admin: true };

function matcher(patterns: string[] | undefined): ((topic: string) => boolean) | undefined {
  if (patterns === undefined) return undefined;
  const exact = new Set(patterns.filter((p) => !p.endsWith('*')));
  const prefixes = patterns.filter((p) => p.endsWith('*')).map((p) => p.slice(0, -1));
  return (topic) => exact.has(topic) || prefixes.some((p) => topic.startsWith(p));
}

/** The token's declared scope allows the operation (see the header). */
function scopeAllows(s: Scope, operation: number, type: number, name: string): boolean {
  if (type === ResourceType.TOPIC && (operation === Operation.READ || operation === Operation.DESCRIBE)) return s.read?.(name) ?? true;
  if (type === ResourceType.TOPIC && operation === Operation.WRITE) return s.write?.(name) ?? true;
  // a topic a token may write to it may also auto-create (the principal still needs CREATE)
  if (type === ResourceType.TOPIC && operation === Operation.CREATE) return s.admin || (s.write?.(name) ?? true);
  if (type === ResourceType.GROUP && operation === Operation.READ) return true; // consuming in a group: the topic's READ decides
  return s.admin;
}

const REFUSAL = { [ResourceType.TOPIC]: 'TOPIC_AUTHORIZATION_FAILED', [ResourceType.GROUP]: 'GROUP_AUTHORIZATION_FAILED' } as const;
const OPERATION_NAMES: Record<number, string> = Object.fromEntries(Object.entries(Operation).map(([k, v]) => [v, k.toLowerCase()]));

function accessOf(security: DoorSecurity, principal: Principal, scope: Scope, host: string): Access {
  const can = (operation: number, type: number, name: string) => scopeAllows(scope, operation, type, name) && security.authorizer.authorize(principal, operation, { type, name }, host);
  const who = principalText(principal);
  return {
    principal: who,
    can,
    canRead: (topic) => can(Operation.READ, ResourceType.TOPIC, topic),
    canWrite: (topic) => can(Operation.WRITE, ResourceType.TOPIC, topic),
    check(operation, type, name) {
      if (can(operation, type, name)) return;
      const code = REFUSAL[type as 2 | 3] ?? 'CLUSTER_AUTHORIZATION_FAILED';
      const what = type === ResourceType.CLUSTER ? 'the cluster' : `${type === ResourceType.GROUP ? 'group' : 'topic'} ${name}`;
      throw new BrokerError(code, `${who} is not allowed to ${OPERATION_NAMES[operation]} ${what}`);
    },
  };
}

export class Authenticator {
  private readonly byToken = new Map<string, { principal: Principal; scope: Scope }>();

  constructor(
    tokens: WsAccessToken[],
    private readonly security: DoorSecurity,
  ) {
    tokens.forEach((t, i) => {
      const principal = t.principal === undefined ? ANONYMOUS : parsePrincipal(t.principal);
      if (!principal) throw new Error(`http.tokens[${i}].principal: "${t.principal}" is not User:<name>`);
      this.byToken.set(t.token, { principal, scope: { read: matcher(t.read), write: matcher(t.write), admin: t.admin ?? false } });
    });
  }

  get enabled(): boolean {
    return this.byToken.size > 0;
  }

  /**
   * The access of a request from `host`: from `Authorization: Bearer <token>`, or the
   * `access_token` query parameter (browsers cannot set headers on a WebSocket). Undefined =
   * rejected (401 / close): tokens are configured and none or an unknown one came.
   */
  authenticate(authorizationHeader: string, queryToken: string, host = '*'): Access | undefined {
    if (!this.enabled) return accessOf(this.security, ANONYMOUS, UNLIMITED, host);
    let token = queryToken;
    const m = /^Bearer\s+(\S+)\s*$/i.exec(authorizationHeader);
    if (m) token = m[1];
    if (!token) return undefined;
    const t = this.byToken.get(token);
    return t ? accessOf(this.security, t.principal, t.scope, host) : undefined;
  }
}

/**
 * Finding 4: a WebSocket upgrade from a browser page on another origin is answered HTTP 403
 * before the upgrade (host/security/origin.ts has the rule), logged and counted. Reads the
 * request synchronously (uWS: req is valid only inside the upgrade callback). True = answered.
 */
export function refuseCrossOrigin(res: UwsTypes.HttpResponse, req: UwsTypes.HttpRequest, allowed: readonly string[], logger: Logger, refused: Counter): boolean {
  const origin = req.getHeader('origin');
  const host = req.getHeader('host');
  if (originAllowed(origin, host, allowed)) return false;
  const status = ERRORS.ORIGIN_NOT_ALLOWED.http;
  refused.inc({ code: String(status) });
  logger.warn({ origin, host }, 'websocket upgrade refused: Origin is neither this host nor in security.allowedOrigins (HTTP 403)');
  res.writeStatus(`${status} Forbidden`).writeHeader('content-type', 'text/plain').end(`origin ${origin} is not allowed (security.allowedOrigins)\n`);
  return true;
}
