// The uplink's `uplink.sasl` block as the Kafka client's SASL options: a password mechanism as
// it is, OAUTHBEARER with its token source (host/kafka/client/oauth-token.ts) bounded by the
// block's tokenBytesMax and the link's uplink.requestTimeoutMs.
import type { SaslOptions } from '../kafka/client/connection.js';
import { OAuthTokenSource } from '../kafka/client/oauth-token.js';
import type { UplinkOAuthSasl, UplinkSasl } from './options.js';

/** Largest token file or token-endpoint answer by default: JWTs with many claims reach 8–16 KiB. */
export const OAUTH_TOKEN_BYTES_MAX = 64 * 1024;

export function clientSasl(options: { sasl: UplinkSasl | null; requestTimeoutMs: number }): SaslOptions | null {
  const s = options.sasl;
  if (!s) return null;
  if (s.mechanism !== 'OAUTHBEARER') return s;
  const source = tokenSource(s, options.requestTimeoutMs);
  return { mechanism: 'OAUTHBEARER', user: source.describe(), password: '', token: () => source.token() };
}

function tokenSource(s: UplinkOAuthSasl, timeoutMs: number): OAuthTokenSource {
  const limits = { tokenBytesMax: s.tokenBytesMax ?? OAUTH_TOKEN_BYTES_MAX, timeoutMs };
  if (s.tokenFile) return new OAuthTokenSource({ tokenFile: s.tokenFile }, limits);
  return new OAuthTokenSource({ tokenUrl: s.tokenUrl!, clientId: s.clientId!, clientSecret: s.clientSecret!, scope: s.scope ?? null }, limits);
}
