// Who an HTTP request or a WebSocket is, and what it may do: bearer tokens mapped to principals
// of the one security model (host/security), every decision made by the node's one authorizer.
//
// A token (`http.tokens[]`) names its principal (`User:<name>`; `User:ANONYMOUS` when omitted)
// and may declare a scope (read/write topic patterns, admin: default false) that narrows what the
// principal's ACLs give it (host/security/tokens.ts, shared with the schema registry). With
// `security.authorization` off the authorizer allows everything but reading internal topics, so
// the scope alone limits a token, as before — except that `admin` is now off unless given. With
// no tokens configured every request is `User:ANONYMOUS` with an unlimited scope: exactly what
// the ACLs (or, with authorization off, the broker's defaults) give it.
import { ANONYMOUS, Operation, originAllowed, principalText, ResourceType, scopeAllows, TokenTable, UNLIMITED_SCOPE, type DoorSecurity, type Principal, type TokenScope } from '../../host/security/index.js';
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

const REFUSAL = { [ResourceType.TOPIC]: 'TOPIC_AUTHORIZATION_FAILED', [ResourceType.GROUP]: 'GROUP_AUTHORIZATION_FAILED' } as const;
const OPERATION_NAMES: Record<number, string> = Object.fromEntries(Object.entries(Operation).map(([k, v]) => [v, k.toLowerCase()]));

function accessOf(security: DoorSecurity, principal: Principal, scope: TokenScope, host: string): Access {
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
  private readonly tokens: TokenTable;

  constructor(
    tokens: WsAccessToken[],
    private readonly security: DoorSecurity,
  ) {
    this.tokens = new TokenTable(tokens);
  }

  get enabled(): boolean {
    return this.tokens.size > 0;
  }

  /**
   * The access of a request from `host`: from `Authorization: Bearer <token>`, or the
   * `access_token` query parameter (browsers cannot set headers on a WebSocket). Undefined =
   * rejected (401 / close): tokens are configured and none or an unknown one came.
   */
  authenticate(authorizationHeader: string, queryToken: string, host = '*', certificate: Principal | null = null): Access | undefined {
    let token = queryToken;
    const m = /^Bearer\s+(\S+)\s*$/i.exec(authorizationHeader);
    if (m) token = m[1];
    // A verified client certificate (http.tls.requestCert) is the principal unless a token is
    // presented (and tokens are configured), as a SASL login replaces the certificate on Kafka;
    // its scope is unlimited: the ACLs alone decide. A presented token must be a known one.
    if (!this.enabled || !token) {
      if (certificate) return accessOf(this.security, certificate, UNLIMITED_SCOPE, host);
      return this.enabled ? undefined : accessOf(this.security, ANONYMOUS, UNLIMITED_SCOPE, host);
    }
    const t = this.tokens.get(token);
    return t ? accessOf(this.security, t.principal, t.scope, host) : undefined;
  }
}

/**
 * The principal of the client certificate verified on the request's connection, or null. Only the
 * node engine can say (NodeHttpResponse.getPeerPrincipal); uWS has no such call, and the door
 * does not run mutual TLS on it (options.ts uwsTlsRefusal).
 */
export function certificatePrincipal(res: UwsTypes.HttpResponse): Principal | null {
  const peer = (res as unknown as { getPeerPrincipal?: () => Principal | null }).getPeerPrincipal;
  return typeof peer === 'function' ? peer.call(res) : null;
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
