// Bearer-token access: who may connect, read (subscribe, snapshot reads) and write (produce)
// which topics. With no tokens configured every client may do everything.
import type { WsAccessToken } from './options.js';

export interface Access {
  /** The token's identity for logs ('anonymous' when auth is off). */
  principal: string;
  canRead(topic: string): boolean;
  canWrite(topic: string): boolean;
  admin: boolean;
}

const OPEN: Access = { principal: 'anonymous', canRead: () => true, canWrite: () => true, admin: true };

function matcher(patterns: string[]): (topic: string) => boolean {
  const exact = new Set(patterns.filter((p) => !p.endsWith('*')));
  const prefixes = patterns.filter((p) => p.endsWith('*')).map((p) => p.slice(0, -1));
  return (topic) => exact.has(topic) || prefixes.some((p) => topic.startsWith(p));
}

export class Authenticator {
  private readonly byToken = new Map<string, Access>();

  constructor(tokens: WsAccessToken[]) {
    tokens.forEach((t, i) => {
      this.byToken.set(t.token, { principal: `token#${i}`, canRead: matcher(t.read), canWrite: matcher(t.write), admin: t.admin ?? true });
    });
  }

  get enabled(): boolean {
    return this.byToken.size > 0;
  }

  /**
   * The access of a request: from `Authorization: Bearer <token>`, or the `access_token`
   * query parameter (browsers cannot set headers on a WebSocket). Undefined = rejected.
   */
  authenticate(authorizationHeader: string, queryToken: string): Access | undefined {
    if (!this.enabled) return OPEN;
    let token = queryToken;
    const m = /^Bearer\s+(\S+)\s*$/i.exec(authorizationHeader);
    if (m) token = m[1];
    if (!token) return undefined;
    return this.byToken.get(token);
  }
}
