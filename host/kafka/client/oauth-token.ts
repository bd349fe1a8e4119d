// Where a Kafka client's SASL/OAUTHBEARER token comes from (the uplink toward a central cluster
// that logs clients in with OAuth: Confluent Cloud, Amazon MSK, Azure Event Hubs, Strimzi with
// Keycloak). Two sources:
//
//   - a token file: read again at every login, so whatever keeps it fresh (a sidecar, a cron
//     job, the device's provisioning agent) is the only thing that talks to the identity
//     provider; the file holds the JWT alone (surrounding whitespace ignored);
//   - a token endpoint (OAuth 2.0 client credentials grant, RFC 6749 §4.4, as Kafka's KIP-768
//     does): POST `grant_type=client_credentials[&scope=…]` with the client id and secret in
//     HTTP Basic (RFC 6749 §2.3.1: each form-urlencoded first); the answer's `access_token` is
//     reused while more than a refresh buffer of its life (`expires_in`, else the JWT's own
//     `exp`) is left, then fetched again at the next login. The buffer is 20 % of the life but at
//     least 5 minutes, and at most half the life (Kafka's Java login: refresh window 0.8, buffer
//     300 s): a login never starts a session on a token about to end, since a target that ends
//     sessions with their tokens would leave a renewal no time to happen. Logins therefore reuse
//     one token; a re-authentication (KIP-368) near the end of a session gets a fresh one.
//
// Bounds: the endpoint's answer may be at most `tokenBytesMax` bytes (a larger one is refused
// before it is gathered) and must arrive within `timeoutMs`. Failures throw with the endpoint's
// address and status; the client secret and the token never appear in an error or a log line.
import { readFile } from 'node:fs/promises';
import http from 'node:http';
import https from 'node:https';

export interface TokenFileSource {
  tokenFile: string;
}

export interface TokenEndpointSource {
  tokenUrl: string;
  clientId: string;
  clientSecret: string;
  /** Space-separated scopes to ask for; null = the endpoint's default. */
  scope: string | null;
}

export interface TokenSourceLimits {
  tokenBytesMax: number;
  timeoutMs: number;
}

/** The refresh buffer (file header): this share of the life, at least REFRESH_BUFFER_MIN_MS, at most half the life. */
const REFRESH_BUFFER_SHARE = 0.2;
const REFRESH_BUFFER_MIN_MS = 300_000;

function refreshBufferMs(lifetimeMs: number): number {
  return Math.min(Math.max(lifetimeMs * REFRESH_BUFFER_SHARE, REFRESH_BUFFER_MIN_MS), lifetimeMs / 2);
}

/** A JWT's `exp` (seconds), or null when the token is not a JWT or has none. */
function jwtExpiry(token: string): number | null {
  const parts = token.split('.');
  if (parts.length !== 3) return null;
  try {
    const exp = (JSON.parse(Buffer.from(parts[1], 'base64url').toString('utf8')) as { exp?: unknown }).exp;
    return typeof exp === 'number' && Number.isFinite(exp) ? exp : null;
  } catch {
    return null;
  }
}

export class OAuthTokenSource {
  private cached: { token: string; refreshAtMs: number } | null = null;
  private inFlight: Promise<string> | null = null;
  /** Tokens fetched from the endpoint (or read from the file). */
  fetched = 0;

  constructor(
    private readonly source: TokenFileSource | TokenEndpointSource,
    private readonly limits: TokenSourceLimits,
    private readonly now: () => number = Date.now,
  ) {}

  /** What the logs may say about this source (never the secret). */
  describe(): string {
    return 'tokenFile' in this.source ? `token file ${this.source.tokenFile}` : `client ${this.source.clientId} at ${this.source.tokenUrl}`;
  }

  /** A token to log in with: a cached one while it is fresh, else a new one (one fetch at a time). */
  async token(): Promise<string> {
    if ('tokenFile' in this.source) return this.readFile(this.source.tokenFile);
    if (this.cached && this.now() < this.cached.refreshAtMs) return this.cached.token;
    this.inFlight ??= this.fetchToken(this.source).finally(() => (this.inFlight = null));
    return this.inFlight;
  }

  private async readFile(path: string): Promise<string> {
    let text: string;
    try {
      text = (await readFile(path, 'utf8')).trim();
    } catch (err) {
      throw new Error(`cannot read the OAUTHBEARER token file ${path}: ${(err as NodeJS.ErrnoException).code ?? (err as Error).message}`);
    }
    if (text === '') throw new Error(`the OAUTHBEARER token file ${path} is empty`);
    if (text.length > this.limits.tokenBytesMax) throw new Error(`the OAUTHBEARER token file ${path} holds ${text.length} bytes, over tokenBytesMax ${this.limits.tokenBytesMax}`);
    if (!/^[A-Za-z0-9._~+/-]+=*$/.test(text)) throw new Error(`the OAUTHBEARER token file ${path} does not hold one bearer token (RFC 6750 characters only)`);
    this.fetched++;
    return text;
  }

  private async fetchToken(s: TokenEndpointSource): Promise<string> {
    const startedMs = this.now();
    const answer = await this.post(s);
    let body: { access_token?: unknown; expires_in?: unknown; token_type?: unknown };
    try {
      body = JSON.parse(answer) as typeof body;
    } catch {
      throw new Error(`token endpoint ${s.tokenUrl} answered something that is not JSON`);
    }
    const token = body.access_token;
    if (typeof token !== 'string' || !/^[A-Za-z0-9._~+/-]+=*$/.test(token)) throw new Error(`token endpoint ${s.tokenUrl} answered without a usable access_token`);
    if (typeof body.token_type === 'string' && body.token_type.toLowerCase() !== 'bearer') throw new Error(`token endpoint ${s.tokenUrl} answered token_type ${body.token_type}, not Bearer`);
    const expiresIn = typeof body.expires_in === 'number' && body.expires_in > 0 ? body.expires_in * 1000 : null;
    const exp = jwtExpiry(token);
    const lifetimeMs = expiresIn ?? (exp !== null ? exp * 1000 - startedMs : 0);
    // A token with no stated lifetime is used for one login only.
    this.cached = lifetimeMs > 0 ? { token, refreshAtMs: startedMs + lifetimeMs - refreshBufferMs(lifetimeMs) } : null;
    this.fetched++;
    return token;
  }

  /** The client credentials POST; resolves with the body of a 200 answer. */
  private post(s: TokenEndpointSource): Promise<string> {
    const url = new URL(s.tokenUrl);
    const form = new URLSearchParams({ grant_type: 'client_credentials' });
    if (s.scope !== null) form.set('scope', s.scope);
    const body = Buffer.from(form.toString());
    const basic = Buffer.from(`${encodeURIComponent(s.clientId)}:${encodeURIComponent(s.clientSecret)}`).toString('base64');
    const max = this.limits.tokenBytesMax;
    return new Promise((resolve, reject) => {
      const request = (url.protocol === 'https:' ? https : http).request(
        url,
        { method: 'POST', timeout: this.limits.timeoutMs, headers: { 'content-type': 'application/x-www-form-urlencoded', 'content-length': body.length, accept: 'application/json', authorization: `Basic ${basic}` } },
        (res) => {
          const chunks: Buffer[] = [];
          let size = 0;
          res.on('data', (c: Buffer) => {
            size += c.length;
            if (size > max) {
              res.destroy();
              reject(new Error(`token endpoint ${s.tokenUrl} answered more than tokenBytesMax ${max} bytes`));
              return;
            }
            chunks.push(c);
          });
          res.on('end', () => {
            if (size > max) return;
            const text = Buffer.concat(chunks).toString('utf8');
            if (res.statusCode !== 200) {
              // OAuth's error answer (RFC 6749 §5.2) names what is wrong; nothing secret is in it.
              let why = '';
              try {
                const e = JSON.parse(text) as { error?: unknown; error_description?: unknown };
                why = typeof e.error === 'string' ? `: ${e.error}${typeof e.error_description === 'string' ? ` (${e.error_description.slice(0, 200)})` : ''}` : '';
              } catch {
                /* not JSON: the status says enough */
              }
              reject(new Error(`token endpoint ${s.tokenUrl} answered HTTP ${res.statusCode}${why}`));
              return;
            }
            resolve(text);
          });
          res.on('error', (err) => reject(new Error(`token endpoint ${s.tokenUrl}: ${err.message}`)));
        },
      );
      request.on('timeout', () => request.destroy(new Error(`no answer within ${this.limits.timeoutMs} ms`)));
      request.on('error', (err) => reject(new Error(`token endpoint ${s.tokenUrl}: ${err.message}`)));
      request.end(body);
    });
  }
}
