// Who a schema-registry request is, and what it may do: the node's one authorizer (issue 13).
//
// Credentials, as Confluent's clients send them: `Authorization: Basic user:password` checked
// against the node's SCRAM user store (`tributary users add`; confluent_kafka's
// `basic.auth.user.info`, @kafkajs/confluent-schema-registry's `auth`), or `Bearer <token>` from
// `http.tokens` (the same tokens and scopes as the HTTP API). Failed Basic logins count against
// the source address in the node's one LoginLimiter. No credentials: `User:ANONYMOUS`, allowed
// when anonymous clients are (security.allowAnonymous; null = only while the registry listens on
// loopback), else 401 — as is any bad credential.
//
// Resources, Confluent's model mapped onto Kafka's ACLs: a subject is checked as the TOPIC
// resource of the same name, so a prefixed ACL `orders` covers the topic and its subjects
// `orders-key` and `orders-value` (TopicNameStrategy). GET → READ on the subject (a schema by id:
// READ on some subject that uses it; the subject list shows only describable subjects); register
// → WRITE; delete → DELETE; a subject's config → DESCRIBE (implied by READ and WRITE: a producer
// reads it before registering) / ALTER_CONFIGS on it; the global config and mode → DESCRIBE_CONFIGS / ALTER_CONFIGS on the cluster. Refused: 403 (40301).
import type { IncomingMessage } from 'node:http';
import { addressOf, ANONYMOUS, isLoopback, scopeAllows, TokenTable, UNLIMITED_SCOPE, userPrincipal, type DoorSecurity, type Principal, type TokenConfig, type TokenScope } from '../security/index.js';

export interface RegistryAuthOptions {
  security: DoorSecurity;
  tokens: readonly TokenConfig[];
  /** The registry's bind address (anonymous clients on loopback only, unless security.allowAnonymous says). */
  host: string;
}

export interface Caller {
  principal: Principal;
  scope: TokenScope;
  host: string;
}

export class RegistryAuth {
  private readonly tokens: TokenTable;
  private readonly anonymousOk: boolean;

  constructor(private readonly o: RegistryAuthOptions) {
    this.tokens = new TokenTable(o.tokens);
    this.anonymousOk = o.security.options.allowAnonymous ?? isLoopback(o.host);
  }

  /** The caller, or why it is refused (401). */
  async caller(req: IncomingMessage): Promise<Caller | string> {
    const host = addressOf(`${req.socket.remoteAddress ?? ''}:0`);
    const header = req.headers.authorization ?? '';
    const bearer = /^Bearer\s+(\S+)\s*$/i.exec(header);
    if (bearer) {
      const t = this.tokens.get(bearer[1]);
      return t ? { ...t, host } : 'unknown bearer token';
    }
    const basic = /^Basic\s+([A-Za-z0-9+/=]+)\s*$/i.exec(header);
    if (basic) return this.basic(Buffer.from(basic[1], 'base64').toString('utf8'), host);
    if (header !== '') return 'unsupported Authorization scheme (Basic or Bearer)';
    return this.anonymousOk ? { principal: ANONYMOUS, scope: UNLIMITED_SCOPE, host } : 'authentication required (Basic user:password or Bearer token): anonymous clients are not allowed (security.allowAnonymous)';
  }

  private async basic(pair: string, host: string): Promise<Caller | string> {
    const { limiter } = this.o.security;
    if (!limiter.allowed(host)) return `too many failed logins from ${host} (security.loginFailuresMax)`;
    const colon = pair.indexOf(':');
    const user = colon > 0 ? pair.slice(0, colon) : '';
    if (user !== '' && (await this.o.security.checkPassword(user, pair.slice(colon + 1)))) return { principal: userPrincipal(user), scope: UNLIMITED_SCOPE, host };
    limiter.failed(host);
    return 'invalid user name or password';
  }

  /** May the caller perform `operation` on the resource? (The token's scope and the one authorizer.) */
  can(c: Caller, operation: number, type: number, name: string): boolean {
    return scopeAllows(c.scope, operation, type, name) && this.o.security.authorizer.authorize(c.principal, operation, { type, name }, c.host);
  }
}
